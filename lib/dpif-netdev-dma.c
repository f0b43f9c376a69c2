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
 * record cannot go away under the command.  A record's port table grows
 * until it is full, a slot published by storing 'n_ports' after it was
 * written, so the command reads complete slots without a lock; then the
 * slots of deleted ports are reused, under the mutex. */

#include <config.h>

#include "dpif-netdev-dma.h"

#include <stdlib.h>

#include "deferred-work.h"
#include "openvswitch/dynamic-string.h"
#include "openvswitch/list.h"
#include "openvswitch/vlog.h"
#include "ovs-thread.h"
#include "unixctl.h"
#include "util.h"

VLOG_DEFINE_THIS_MODULE(dpif_netdev_dma);

/* The cumulative counters of a thread, as read at one time. */
struct pmd_dma_snap {
    uint64_t counters[PMD_DMA_N_COUNTERS];
    uint64_t polls, empty_polls, drains, drain_timeouts;    /* dw_stats. */
    struct {
        uint64_t cycles[PMD_DMA_N_COSTS];
        uint64_t calls[PMD_DMA_N_COSTS];
        uint64_t packets[PMD_DMA_N_PATHS];
    } ports[PMD_DMA_MAX_PORTS];
};

struct pmd_dma_thread {
    struct ovs_list node;       /* In 'pmd_dma_threads'. */
    unsigned int core_id;
    int numa_id;
    struct dw_queue *dwq;

    atomic_uint64_t counters[PMD_DMA_N_COUNTERS];
    atomic_uint64_t channels;   /* Devices used, a bit per dev_id. */

    struct pmd_dma_port ports[PMD_DMA_MAX_PORTS];
    atomic_uint32_t n_ports;

    /* The counters when dpif-netdev/pmd-dma-stats-clear last ran, which
     * pmd-dma-show subtracts: the PMD thread, the only writer of the
     * counters, never has to clear them.  Guarded by 'pmd_dma_mutex'. */
    struct pmd_dma_snap base;
};

/* How to name a channel, from the DMA device pool (pmd_dma_init()). */
static pmd_dma_format_channel_func *format_channel;

static struct ovs_mutex pmd_dma_mutex = OVS_MUTEX_INITIALIZER;
static struct ovs_list pmd_dma_threads OVS_GUARDED_BY(pmd_dma_mutex)
    = OVS_LIST_INITIALIZER(&pmd_dma_threads);

DEFINE_STATIC_PER_THREAD_DATA(struct pmd_dma_thread *, pmd_dma_self, NULL);

/* Returns the number of sources that OVS_PMD_DEFERRED_WORK_MAX sets for
 * tests, from 1 to 'capacity', or 0. */
static unsigned int
pmd_dma_dw_test_max(size_t capacity)
{
    const char *s = getenv("OVS_PMD_DEFERRED_WORK_MAX");
    unsigned int n;

    return s && str_to_uint(s, 10, &n) && n >= 1 && n <= capacity ? n : 0;
}

size_t
pmd_dma_dw_capacity(size_t capacity)
{
    unsigned int n = pmd_dma_dw_test_max(capacity);

    if (n) {
        VLOG_INFO("deferred-work queues hold %u sources "
                  "(OVS_PMD_DEFERRED_WORK_MAX)", n);
        return n;
    }
    return capacity;
}

void
pmd_dma_thread_start(unsigned int core_id, int numa_id, struct dw_queue *dwq)
{
    struct pmd_dma_thread *t = xzalloc(sizeof *t);

    t->core_id = core_id;
    t->numa_id = numa_id;
    t->dwq = dwq;
    dw_queue_set_current(dwq);
    if (!pmd_dma_dw_test_max(SIZE_MAX)) {
        /* A thread may send to more ports than the queue has room for
         * (each DMA-enabled port it sends to is a source): the queue grows
         * then, rather than leave the copies of those ports to be waited
         * for on the spot, or to complete only with their next send. */
        dw_queue_set_max(dwq, SIZE_MAX);
    }

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

static uint32_t
pmd_dma_n_ports(const struct pmd_dma_thread *t)
{
    uint32_t n;

    atomic_read_explicit(&CONST_CAST(struct pmd_dma_thread *, t)->n_ports,
                         &n, memory_order_acquire);
    return n;
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
    if (n < PMD_DMA_MAX_PORTS) {
        p = &t->ports[n];
        p->port_id = port_id;
        ovs_strlcpy(p->name, name, sizeof p->name);
        atomic_store_explicit(&t->n_ports, n + 1, memory_order_release);
        return p;
    }

    /* Every slot was taken once: reuse that of a deleted port, under the
     * mutex, so that pmd-dma-show never reads a slot half rewritten.  This
     * happens once per port and thread, not per burst. */
    p = NULL;
    ovs_mutex_lock(&pmd_dma_mutex);
    for (uint32_t i = 0; i < n; i++) {
        struct pmd_dma_port *slot = &t->ports[i];
        bool gone;

        atomic_read_relaxed(&slot->gone, &gone);
        if (gone) {
            for (int c = 0; c < PMD_DMA_N_COSTS; c++) {
                atomic_store_relaxed(&slot->cycles[c], 0);
                atomic_store_relaxed(&slot->calls[c], 0);
                t->base.ports[i].cycles[c] = 0;
                t->base.ports[i].calls[c] = 0;
            }
            for (int path = 0; path < PMD_DMA_N_PATHS; path++) {
                atomic_store_relaxed(&slot->packets[path], 0);
                t->base.ports[i].packets[path] = 0;
            }
            slot->port_id = port_id;
            ovs_strlcpy(slot->name, name, sizeof slot->name);
            atomic_store_relaxed(&slot->gone, false);
            p = slot;
            break;
        }
    }
    ovs_mutex_unlock(&pmd_dma_mutex);
    return p;
}

void
pmd_dma_port_forget(uint64_t port_id)
{
    struct pmd_dma_thread *t;

    ovs_mutex_lock(&pmd_dma_mutex);
    LIST_FOR_EACH (t, node, &pmd_dma_threads) {
        uint32_t n = pmd_dma_n_ports(t);

        for (uint32_t i = 0; i < n; i++) {
            if (t->ports[i].port_id == port_id) {
                atomic_store_relaxed(&t->ports[i].gone, true);
            }
        }
    }
    ovs_mutex_unlock(&pmd_dma_mutex);
}

static uint64_t
pmd_dma_read(const atomic_uint64_t *counter_)
{
    atomic_uint64_t *counter = CONST_CAST(atomic_uint64_t *, counter_);
    uint64_t value;

    atomic_read_relaxed(counter, &value);
    return value;
}

/* Reads the counters of 't' into 'snap'. */
static void
pmd_dma_snap_read(const struct pmd_dma_thread *t, struct pmd_dma_snap *snap)
{
    struct dw_stats dws;
    uint32_t n_ports = pmd_dma_n_ports(t);

    memset(snap, 0, sizeof *snap);
    for (int i = 0; i < PMD_DMA_N_COUNTERS; i++) {
        snap->counters[i] = pmd_dma_read(&t->counters[i]);
    }
    dw_queue_get_stats(t->dwq, &dws);
    snap->polls = dws.polls;
    snap->empty_polls = dws.empty_polls;
    snap->drains = dws.drains;
    snap->drain_timeouts = dws.drain_timeouts;
    for (uint32_t i = 0; i < n_ports; i++) {
        const struct pmd_dma_port *p = &t->ports[i];

        for (int c = 0; c < PMD_DMA_N_COSTS; c++) {
            snap->ports[i].cycles[c] = pmd_dma_read(&p->cycles[c]);
            snap->ports[i].calls[c] = pmd_dma_read(&p->calls[c]);
        }
        for (int path = 0; path < PMD_DMA_N_PATHS; path++) {
            snap->ports[i].packets[path] = pmd_dma_read(&p->packets[path]);
        }
    }
}

/* Subtracts 'base' from every counter of 'snap'. */
static void
pmd_dma_snap_sub(struct pmd_dma_snap *snap, const struct pmd_dma_snap *base)
{
    uint64_t *a = (uint64_t *) snap;
    const uint64_t *b = (const uint64_t *) base;

    BUILD_ASSERT_DECL(sizeof *snap % sizeof *a == 0);
    for (size_t i = 0; i < sizeof *snap / sizeof *a; i++) {
        a[i] = a[i] > b[i] ? a[i] - b[i] : 0;
    }
}

static void
pmd_dma_format_per_packet(struct ds *s, uint64_t cycles, uint64_t packets)
{
    if (packets) {
        ds_put_format(s, "%.1f", (double) cycles / packets);
    } else {
        ds_put_cstr(s, "-");
    }
}

/* Appends the vhost Tx accounting of port 'i' of 'snap'. */
static void
pmd_dma_format_port(struct ds *s, const struct pmd_dma_snap *snap, int i)
{
    const uint64_t *cycles = snap->ports[i].cycles;
    const uint64_t *calls = snap->ports[i].calls;
    uint64_t dma = snap->ports[i].packets[PMD_DMA_PATH_DMA];
    uint64_t cpu = snap->ports[i].packets[PMD_DMA_PATH_CPU];

    ds_put_format(s, "    dma: %"PRIu64" packets", dma);
    if (dma) {
        ds_put_cstr(s, ", ");
        pmd_dma_format_per_packet(s, cycles[PMD_DMA_COST_SUBMIT]
                                     + cycles[PMD_DMA_COST_COMPLETE], dma);
        ds_put_cstr(s, " cycles/packet (submit ");
        pmd_dma_format_per_packet(s, cycles[PMD_DMA_COST_SUBMIT], dma);
        ds_put_cstr(s, ", complete ");
        pmd_dma_format_per_packet(s, cycles[PMD_DMA_COST_COMPLETE], dma);
        ds_put_char(s, ')');
    }
    ds_put_format(s, "\n    cpu: %"PRIu64" packets", cpu);
    if (cpu) {
        ds_put_cstr(s, ", ");
        pmd_dma_format_per_packet(s, cycles[PMD_DMA_COST_CPU], cpu);
        ds_put_cstr(s, " cycles/packet");
    }
    ds_put_format(s, "\n    refused: %"PRIu64" calls, %"PRIu64" cycles; "
                  "empty polls: %"PRIu64" calls, %"PRIu64" cycles\n",
                  calls[PMD_DMA_COST_REFUSED], cycles[PMD_DMA_COST_REFUSED],
                  calls[PMD_DMA_COST_EMPTY_POLL],
                  cycles[PMD_DMA_COST_EMPTY_POLL]);
    ds_put_format(s, "    calls that delivered: submit %"PRIu64", complete %"
                  PRIu64", cpu %"PRIu64"\n",
                  calls[PMD_DMA_COST_SUBMIT], calls[PMD_DMA_COST_COMPLETE],
                  calls[PMD_DMA_COST_CPU]);
}

static void
pmd_dma_format_thread(struct ds *s, const struct pmd_dma_thread *t)
    OVS_REQUIRES(pmd_dma_mutex)
{
    uint64_t channels = pmd_dma_read(&t->channels);
    uint32_t n_ports = pmd_dma_n_ports(t);
    struct pmd_dma_snap *snap = xmalloc(sizeof *snap);
    const uint64_t *c = snap->counters;
    struct dw_stats dws;

    pmd_dma_snap_read(t, snap);
    pmd_dma_snap_sub(snap, &t->base);
    dw_queue_get_stats(t->dwq, &dws);

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
        if (format_channel) {
            format_channel(s, dev_id);
        } else {
            ds_put_format(s, "dev_id %d", dev_id);
        }
    }
    ds_put_format(s, "\n  deferred work: %"PRIu64" items, %"PRIu64
                  " copies in flight\n", dws.items, dws.pending);
    ds_put_format(s, "  submitted: %"PRIu64", completed: %"PRIu64
                  ", cpu fallbacks: %"PRIu64"\n",
                  c[PMD_DMA_SUBMITTED], c[PMD_DMA_COMPLETED],
                  c[PMD_DMA_CPU_FALLBACK]);
    ds_put_format(s, "  ring full: %"PRIu64", no channel: %"PRIu64
                  ", errors: %"PRIu64", overflows: %"PRIu64"\n",
                  c[PMD_DMA_RING_FULL], c[PMD_DMA_NO_CHANNEL],
                  c[PMD_DMA_ERRORS], c[PMD_DMA_OVERFLOWS]);
    ds_put_format(s, "  polls: %"PRIu64", empty polls: %"PRIu64
                  ", forced drains: %"PRIu64", drain timeouts: %"PRIu64"\n",
                  snap->polls, snap->empty_polls,
                  snap->drains + c[PMD_DMA_FORCED_POLLS],
                  snap->drain_timeouts);
    for (uint32_t i = 0; i < n_ports; i++) {
        bool gone;

        atomic_read_relaxed(&CONST_CAST(struct pmd_dma_thread *, t)
                            ->ports[i].gone, &gone);
        if (!gone) {
            ds_put_format(s, "  port: %s\n", t->ports[i].name);
            pmd_dma_format_port(s, snap, i);
        }
    }
    free(snap);
}

/* Parses the arguments of the pmd-dma commands: none, or "-pmd CORE".
 * Returns false, after replying with an error, if they are wrong. */
static bool
pmd_dma_parse_args(struct unixctl_conn *conn, int argc, const char *argv[],
                   unsigned int *core_id)
{
    *core_id = UINT_MAX;
    if (argc == 3 && !strcmp(argv[1], "-pmd")) {
        if (!str_to_uint(argv[2], 10, core_id)) {
            unixctl_command_reply_error(conn, "Invalid pmd core id");
            return false;
        }
    } else if (argc != 1) {
        unixctl_command_reply_error(conn, "Usage: dpif-netdev/pmd-dma-show "
                                    "[-pmd core]");
        return false;
    }
    return true;
}

/* dpif-netdev/pmd-dma-stats-clear [-pmd CORE] */
static void
pmd_dma_unixctl_clear(struct unixctl_conn *conn, int argc,
                      const char *argv[], void *aux OVS_UNUSED)
    OVS_EXCLUDED(pmd_dma_mutex)
{
    struct pmd_dma_thread *t;
    unsigned int core_id;

    if (!pmd_dma_parse_args(conn, argc, argv, &core_id)) {
        return;
    }
    ovs_mutex_lock(&pmd_dma_mutex);
    LIST_FOR_EACH (t, node, &pmd_dma_threads) {
        if (core_id == UINT_MAX || t->core_id == core_id) {
            pmd_dma_snap_read(t, &t->base);
        }
    }
    ovs_mutex_unlock(&pmd_dma_mutex);
    unixctl_command_reply(conn, "PMD DMA stats cleared");
}

/* dpif-netdev/pmd-dma-show [-pmd CORE] */
static void
pmd_dma_unixctl_show(struct unixctl_conn *conn, int argc, const char *argv[],
                     void *aux OVS_UNUSED)
    OVS_EXCLUDED(pmd_dma_mutex)
{
    struct ds s = DS_EMPTY_INITIALIZER;
    const struct pmd_dma_thread *t;
    unsigned int core_id;
    bool found = false;

    if (!pmd_dma_parse_args(conn, argc, argv, &core_id)) {
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
pmd_dma_init(pmd_dma_format_channel_func *format)
{
    static struct ovsthread_once once = OVSTHREAD_ONCE_INITIALIZER;

    if (ovsthread_once_start(&once)) {
        format_channel = format;
        unixctl_command_register("dpif-netdev/pmd-dma-show", "[-pmd core]",
                                 0, 2, pmd_dma_unixctl_show, NULL);
        unixctl_command_register("dpif-netdev/pmd-dma-stats-clear",
                                 "[-pmd core]", 0, 2, pmd_dma_unixctl_clear,
                                 NULL);
        ovsthread_once_done(&once);
    }
}
