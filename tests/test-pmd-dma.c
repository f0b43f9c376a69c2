/*
 * Copyright (c) 2026 The ovs-vhost-dma authors.
 *
 * Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at:
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/* Unit tests of the per-PMD port table of lib/dpif-netdev-dma.c, run by
 * tests/dma-unit.at.  The test's own thread plays the PMD thread. */

#include <config.h>
#undef NDEBUG

#include "dpif-netdev-dma.h"

#include <stdio.h>
#include <stdlib.h>

#include "command-line.h"
#include "deferred-work.h"
#include "ovstest.h"
#include "util.h"

/* A PMD thread's table holds PMD_DMA_MAX_PORTS ports; once it is full, a
 * new port takes the slot of a deleted one, with its counters zeroed, and
 * finds no slot only while no port was deleted. */
static void
test_port_reuse(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct dw_queue *q = dw_queue_create(4);
    uint64_t ids[PMD_DMA_MAX_PORTS];
    struct pmd_dma_thread *t;
    struct pmd_dma_port *p, *q5;
    uint64_t id, value;

    pmd_dma_thread_start(1, 0, q);
    t = pmd_dma_current();
    ovs_assert(t);

    for (int i = 0; i < PMD_DMA_MAX_PORTS; i++) {
        ids[i] = pmd_dma_port_id();
        p = pmd_dma_port_get(t, ids[i], "vhu");
        ovs_assert(p && p->port_id == ids[i]);
        pmd_dma_port_count(p, PMD_DMA_COST_SUBMIT, 100, 1);
    }
    ovs_assert(pmd_dma_port_get(t, ids[7], "vhu") != NULL);

    /* Full: a new port finds no room. */
    id = pmd_dma_port_id();
    ovs_assert(!pmd_dma_port_get(t, id, "new"));

    /* Port 5 goes: the new port takes its slot, counters zeroed. */
    q5 = pmd_dma_port_get(t, ids[5], "vhu");
    pmd_dma_port_forget(ids[5]);
    p = pmd_dma_port_get(t, id, "new");
    ovs_assert(p == q5 && p->port_id == id);
    atomic_read_relaxed(&p->calls[PMD_DMA_COST_SUBMIT], &value);
    ovs_assert(value == 0);

    /* Full again. */
    ovs_assert(!pmd_dma_port_get(t, pmd_dma_port_id(), "newer"));

    pmd_dma_thread_stop();
    dw_queue_destroy(q);
    printf("port-reuse: ok\n");
}

static const struct ovs_cmdl_command commands[] = {
    {"port-reuse", NULL, 0, 0, test_port_reuse, OVS_RO},
    {NULL, NULL, 0, 0, NULL, OVS_RO},
};

static void
test_pmd_dma_main(int argc, char *argv[])
{
    struct ovs_cmdl_context ctx = {
        .argc = argc - 1,
        .argv = argv + 1,
    };

    set_program_name(argv[0]);
    ovs_cmdl_run_command(&ctx, commands);
}

OVSTEST_REGISTER("test-pmd-dma", test_pmd_dma_main);
