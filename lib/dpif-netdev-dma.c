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

/* Per-PMD accounting of the DMA offload: see dpif-netdev-dma.h.
 *
 * Records are allocated when a PMD thread starts and freed when it stops,
 * under 'pmd_dma_mutex', which pmd-dma-show holds while it reads them: a
 * record cannot go away under the command.  A record's port table only
 * grows, and a slot is published by storing 'n_ports' after the slot was
 * written, so the command reads complete slots without a lock. */

#include <config.h>

#include "dpif-netdev-dma.h"

#include "deferred-work.h"
#ifdef DPDK_NETDEV
#include "dpdk-dma.h"
#endif
#include "openvswitch/dynamic-string.h"
#include "openvswitch/list.h"
#include "openvswitch/vlog.h"
#include "ovs-thread.h"
#include "unixctl.h"
#include "util.h"

VLOG_DEFINE_THIS_MODULE(dpif_netdev_dma);

struct pmd_dma_thread {
    struct ovs_list node;       /* In 'pmd_dma_threads'. */
    unsigned int core_id;
    int numa_id;
    struct dw_queue *dwq;

    atomic_uint64_t counters[PMD_DMA_N_COUNTERS];
    atomic_uint64_t channels;   /* Devices used, a bit per dev_id. */

    struct pmd_dma_port ports[PMD_DMA_MAX_PORTS];
    atomic_uint32_t n_ports;
};

static struct ovs_mutex pmd_dma_mutex = OVS_MUTEX_INITIALIZER;
static struct ovs_list pmd_dma_threads OVS_GUARDED_BY(pmd_dma_mutex)
    = OVS_LIST_INITIALIZER(&pmd_dma_threads);

DEFINE_STATIC_PER_THREAD_DATA(struct pmd_dma_thread *, pmd_dma_self, NULL);

void
pmd_dma_thread_start(unsigned int core_id, int numa_id, struct dw_queue *dwq)
{
    struct pmd_dma_thread *t = xzalloc(sizeof *t);

    t->core_id = core_id;
    t->numa_id = numa_id;
    t->dwq = dwq;
    dw_queue_set_current(dwq);

    ovs_mutex_lock(&pmd_dma_mutex);
    ovs_list_push_back(&pmd_dma_threads, &t->node);
    ovs_mutex_unlock(&pmd_dma_mutex);
    *pmd_dma_self_get() = t;
}

void
pmd_dma_thread_stop(void)
{
    struct pmd_dma_thread *t = pmd_dma_current();

    if (t) {
        *pmd_dma_self_get() = NULL;
        dw_queue_set_current(NULL);
        ovs_mutex_lock(&pmd_dma_mutex);
        ovs_list_remove(&t->node);
        ovs_mutex_unlock(&pmd_dma_mutex);
        free(t);
    }
}

struct pmd_dma_thread *
pmd_dma_current(void)
{
    return *pmd_dma_self_get();
}

int
pmd_dma_numa_id(const struct pmd_dma_thread *t)
{
    return t ? t->numa_id : -1;
}

uint64_t
pmd_dma_port_id(void)
{
    static atomic_uint64_t next_id = ATOMIC_VAR_INIT(1);
    uint64_t id;

    atomic_add_relaxed(&next_id, 1, &id);
    return id;
}

void
pmd_dma_count(struct pmd_dma_thread *t, enum pmd_dma_counter c, uint64_t n)
{
    if (t && n) {
        uint64_t value;

        atomic_read_relaxed(&t->counters[c], &value);
        atomic_store_relaxed(&t->counters[c], value + n);
    }
}

void
pmd_dma_note_channel(struct pmd_dma_thread *t, int dev_id)
{
    if (t && dev_id >= 0 && dev_id < 64) {
        uint64_t bit = UINT64_C(1) << dev_id;
        uint64_t channels;

        atomic_read_relaxed(&t->channels, &channels);
        if (OVS_UNLIKELY(!(channels & bit))) {
            atomic_store_relaxed(&t->channels, channels | bit);
        }
    }
}

struct pmd_dma_port *
pmd_dma_port_get(struct pmd_dma_thread *t, uint64_t port_id,
                 const char *name)
{
    struct pmd_dma_port *p;
    uint32_t n;

    if (!t) {
        return NULL;
    }
    atomic_read_relaxed(&t->n_ports, &n);
    for (uint32_t i = 0; i < n; i++) {
        if (t->ports[i].port_id == port_id) {
            return &t->ports[i];
        }
    }
    if (n >= PMD_DMA_MAX_PORTS) {
        return NULL;
    }
    p = &t->ports[n];
    p->port_id = port_id;
    ovs_strlcpy(p->name, name, sizeof p->name);
    atomic_store_explicit(&t->n_ports, n + 1, memory_order_release);
    return p;
}

static uint64_t
pmd_dma_read(const atomic_uint64_t *counter_)
{
    atomic_uint64_t *counter = CONST_CAST(atomic_uint64_t *, counter_);
    uint64_t value;

    atomic_read_relaxed(counter, &value);
    return value;
}

static void
pmd_dma_format_path(struct ds *s, const struct pmd_dma_port *p,
                    enum pmd_dma_path path)
{
    uint64_t packets = pmd_dma_read(&p->packets[path]);
    uint64_t cycles = pmd_dma_read(&p->cycles[path]);

    ds_put_format(s, "    %s: %"PRIu64" packets", 
                  path == PMD_DMA_PATH_DMA ? "dma" : "cpu", packets);
    if (packets) {
        ds_put_format(s, ", %.1f cycles/packet",
                      (double) cycles / packets);
    }
    ds_put_char(s, '\n');
}

static void
pmd_dma_format_thread(struct ds *s, const struct pmd_dma_thread *t)
    OVS_REQUIRES(pmd_dma_mutex)
{
    uint64_t c[PMD_DMA_N_COUNTERS];
    uint64_t channels;
    struct dw_stats dws;
    uint32_t n_ports;

    for (int i = 0; i < PMD_DMA_N_COUNTERS; i++) {
        c[i] = pmd_dma_read(&t->counters[i]);
    }
    channels = pmd_dma_read(&t->channels);
    dw_queue_get_stats(t->dwq, &dws);
    atomic_read_explicit(&CONST_CAST(struct pmd_dma_thread *, t)->n_ports,
                         &n_ports, memory_order_acquire);

    ds_put_format(s, "pmd thread numa_id %d core_id %u:\n",
                  t->numa_id, t->core_id);
    ds_put_cstr(s, "  channels: ");
    if (!channels) {
        ds_put_cstr(s, "none");
    }
    for (uint64_t m = channels; m; m = zero_rightmost_1bit(m)) {
        int dev_id = raw_ctz(m);

        if (m != channels) {
            ds_put_cstr(s, ", ");
        }
#ifdef DPDK_NETDEV
        dpdk_dma_format_device(s, dev_id);
#else
        ds_put_format(s, "dev_id %d", dev_id);
#endif
    }
    ds_put_format(s, "\n  deferred work: %"PRIu64" items, %"PRIu64
                  " copies in flight\n", dws.items, dws.pending);
    ds_put_format(s, "  submitted: %"PRIu64", completed: %"PRIu64
                  ", cpu fallbacks: %"PRIu64"\n",
                  c[PMD_DMA_SUBMITTED], c[PMD_DMA_COMPLETED],
                  c[PMD_DMA_CPU_FALLBACK]);
    ds_put_format(s, "  ring full: %"PRIu64", no channel: %"PRIu64"\n",
                  c[PMD_DMA_RING_FULL], c[PMD_DMA_NO_CHANNEL]);
    ds_put_format(s, "  polls: %"PRIu64", empty polls: %"PRIu64
                  ", forced drains: %"PRIu64"\n", dws.polls,
                  dws.empty_polls, dws.drains + c[PMD_DMA_FORCED_POLLS]);
    for (uint32_t i = 0; i < n_ports; i++) {
        const struct pmd_dma_port *p = &t->ports[i];

        ds_put_format(s, "  port: %s\n", p->name);
        pmd_dma_format_path(s, p, PMD_DMA_PATH_DMA);
        pmd_dma_format_path(s, p, PMD_DMA_PATH_CPU);
    }
}

/* dpif-netdev/pmd-dma-show [-pmd CORE] */
static void
pmd_dma_unixctl_show(struct unixctl_conn *conn, int argc, const char *argv[],
                     void *aux OVS_UNUSED)
    OVS_EXCLUDED(pmd_dma_mutex)
{
    struct ds s = DS_EMPTY_INITIALIZER;
    const struct pmd_dma_thread *t;
    unsigned int core_id = UINT_MAX;
    bool found = false;

    if (argc == 3 && !strcmp(argv[1], "-pmd")) {
        if (!str_to_uint(argv[2], 10, &core_id)) {
            unixctl_command_reply_error(conn, "Invalid pmd core id");
            return;
        }
    } else if (argc != 1) {
        unixctl_command_reply_error(conn, "Usage: dpif-netdev/pmd-dma-show "
                                    "[-pmd core]");
        return;
    }

    ovs_mutex_lock(&pmd_dma_mutex);
    LIST_FOR_EACH (t, node, &pmd_dma_threads) {
        if (core_id == UINT_MAX || t->core_id == core_id) {
            pmd_dma_format_thread(&s, t);
            found = true;
        }
    }
    ovs_mutex_unlock(&pmd_dma_mutex);

    if (!found) {
        ds_put_cstr(&s, core_id == UINT_MAX ? "No pmd threads.\n"
                                            : "No such pmd thread.\n");
    }
    unixctl_command_reply(conn, ds_cstr(&s));
    ds_destroy(&s);
}

void
pmd_dma_init(void)
{
    static struct ovsthread_once once = OVSTHREAD_ONCE_INITIALIZER;

    if (ovsthread_once_start(&once)) {
        unixctl_command_register("dpif-netdev/pmd-dma-show", "[-pmd core]",
                                 0, 2, pmd_dma_unixctl_show, NULL);
        ovsthread_once_done(&once);
    }
}
