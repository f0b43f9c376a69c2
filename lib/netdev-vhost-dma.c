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

/* vhost-user Tx through DMA engines: see netdev-vhost-dma.h.
 *
 * Accounting per virtqueue ('struct vhost_dma_vq', indexed by txq):
 * 'inflight' counts copies submitted and not yet completed or cleared.  Any
 * thread that polls or clears a virtqueue gets back that virtqueue's
 * packets, whichever thread submitted them, so 'inflight' is per virtqueue,
 * atomically updated, and not per thread.  'channels' remembers every DMA
 * channel a virtqueue's copies went to, which is where a clear must look.
 *
 * A deferred-work item's 32-bit argument packs the txq (10 bits), the DMA
 * device (6 bits) and the low 16 bits of the guest connection's number
 * ('conn', incremented when a guest comes and goes): an item of an earlier
 * connection finds 'conn' changed and leaves the queue, its copies having
 * been cleared when that guest went away.
 *
 * The experimental vhost async API is used here and nowhere else in
 * netdev-dpdk. */

#define ALLOW_EXPERIMENTAL_API 1

#include <config.h>

#include "netdev-vhost-dma.h"

#include <sched.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_vhost.h>
#include <rte_vhost_async.h>

#include "coverage.h"
#include "deferred-work.h"
#include "dpdk-dma.h"
#include "dpif-netdev-dma.h"
#include "netdev-provider.h"
#include "openvswitch/vlog.h"
#include "ovs-atomic.h"
#include "ovs-rcu.h"
#include "ovs-thread.h"
#include "smap.h"
#include "timeval.h"
#include "util.h"

VLOG_DEFINE_THIS_MODULE(vhost_dma);

COVERAGE_DEFINE(vhost_dma_submit);
COVERAGE_DEFINE(vhost_dma_cpu_copy);
COVERAGE_DEFINE(vhost_dma_no_channel);
COVERAGE_DEFINE(vhost_dma_ring_full);
COVERAGE_DEFINE(vhost_dma_cleared);
COVERAGE_DEFINE(vhost_dma_defer_full);
COVERAGE_DEFINE(vhost_dma_order_wait);

#define VHOST_DMA_MAX_TXQ 1024          /* As OVS_VHOST_MAX_QUEUE_NUM. */
#define VHOST_DMA_MAX_VID 1024          /* As DPDK's MAX_VHOST_DEVICE. */
#define VHOST_DMA_THRESHOLD_DEFAULT 256
#define VHOST_DMA_BURST 32
#define VHOST_DMA_CLEAR_TIMEOUT_MS 1000
#define VHOST_DMA_ORDER_WAIT_MS 10     /* See vd_poll_own(). */

/* Mbufs that a DMA-enabled port may hold in flight, for mempool sizing:
 * enough for the copies of two full 1024-descriptor virtqueues (vhost
 * accepts no more copies for a virtqueue than it has descriptors). */
#define VHOST_DMA_MBUFS_PER_PORT 2048

enum vhost_dma_mode {
    VHOST_DMA_OFF,
    VHOST_DMA_AUTO,             /* Any device of the pool. */
    VHOST_DMA_LIST,             /* A device of 'allowed'. */
};

struct vhost_dma_vq {
    atomic_uint32_t inflight;   /* Copies submitted, not completed. */
    atomic_uint64_t channels;   /* Devices copies were submitted to. */
    atomic_bool registered;     /* Async channel registered with vhost. */

    atomic_uint64_t dma_packets;    /* Delivered by DMA. */
    atomic_uint64_t dma_bytes;
    atomic_uint64_t cpu_packets;    /* Delivered by the CPU. */
    atomic_uint64_t ring_full;      /* Dropped: DMA ring or vring full. */
    atomic_uint64_t no_channel;     /* Dropped: no channel, copies ahead. */
    atomic_uint64_t cleared;        /* Completed by a clear on teardown. */
    atomic_uint64_t errors;         /* vhost calls that failed. */
};

struct netdev_vhost_dma {
    struct ovs_refcount ref_cnt;    /* The port and deferred-work items. */
    char *name;
    uint64_t port_id;               /* For per-PMD accounting. */
    char *error;                    /* Why the options are not in effect. */

    /* Configuration, written by the main thread. */
    enum vhost_dma_mode mode;
    uint64_t allowed;               /* VHOST_DMA_LIST: devices. */
    atomic_uint32_t threshold;

    atomic_bool socket_async;       /* Socket has RTE_VHOST_USER_ASYNC_COPY. */
    atomic_int vid;                 /* Guest connected, or -1. */
    atomic_uint32_t conn;           /* Guest connection number. */
    atomic_int max_txq;             /* Most Rx virtqueues of any guest. */

    struct vhost_dma_vq vqs[VHOST_DMA_MAX_TXQ];
};

/* Ports with 'tx-dma' on. */
static atomic_uint32_t n_dma_ports = ATOMIC_VAR_INIT(0);

/* vhost devices by vid, for the callbacks that only know a vid.  Written
 * and read by DPDK's vhost thread; port destruction clears entries. */
static struct ovs_mutex by_vid_mutex = OVS_MUTEX_INITIALIZER;
static struct netdev_vhost_dma *by_vid[VHOST_DMA_MAX_VID]
    OVS_GUARDED_BY(by_vid_mutex);

static inline void
vd_count(atomic_uint64_t *counter, uint64_t n)
{
    if (n) {
        atomic_add_relaxed(counter, n, &n);
    }
}

static uint64_t
vd_read(const atomic_uint64_t *counter_)
{
    atomic_uint64_t *counter = CONST_CAST(atomic_uint64_t *, counter_);
    uint64_t value;

    atomic_read_relaxed(counter, &value);
    return value;
}

static struct netdev_vhost_dma *
vd_ref(struct netdev_vhost_dma *vd)
{
    ovs_refcount_ref(&vd->ref_cnt);
    return vd;
}

static void
vd_unref(struct netdev_vhost_dma *vd)
{
    if (vd && ovs_refcount_unref(&vd->ref_cnt) == 1) {
        free(vd->error);
        free(vd->name);
        free(vd);
    }
}

/* Returns one more than the highest txq any guest of 'vd' had. */
static int
vd_max_txq(const struct netdev_vhost_dma *vd_)
{
    struct netdev_vhost_dma *vd = CONST_CAST(struct netdev_vhost_dma *, vd_);
    int n;

    atomic_read_relaxed(&vd->max_txq, &n);
    return n;
}

/* Configuration. */

void
netdev_vhost_dma_set_config(struct netdev_vhost_dma **vdp,
                            struct netdev *netdev, const struct smap *args,
                            bool iommu, bool postcopy)
{
    const char *tx_dma = smap_get_def(args, "tx-dma", "false");
    const char *threshold_s = smap_get(args, "tx-dma-threshold");
    struct netdev_vhost_dma *vd = *vdp;
    enum vhost_dma_mode mode;
    uint32_t threshold = VHOST_DMA_THRESHOLD_DEFAULT;
    uint64_t allowed = 0;
    char *error = NULL;

    if (!strcmp(tx_dma, "false")) {
        mode = VHOST_DMA_OFF;
    } else if (!strcmp(tx_dma, "auto")) {
        mode = VHOST_DMA_AUTO;
    } else {
        mode = VHOST_DMA_LIST;
        error = dpdk_dma_parse_list(tx_dma, &allowed);
        if (!error) {
            error = dpdk_dma_check_usable(allowed);
        }
    }
    if (!error && threshold_s) {
        char *end;
        unsigned long int n = strtoul(threshold_s, &end, 10);

        if (*end || !*threshold_s || n > UINT16_MAX) {
            error = xasprintf("tx-dma-threshold: '%s' is not a number of "
                              "bytes between 0 and 65535", threshold_s);
        } else {
            threshold = n;
        }
    }
    if (!error && mode != VHOST_DMA_OFF && (iommu || postcopy)) {
        error = xasprintf("tx-dma cannot be used with %s: DPDK refuses "
                          "async copies on such sockets",
                          iommu ? "vhost-iommu-support"
                                : "vhost-postcopy-support");
    }
    if (error) {
        /* The port keeps forwarding, with CPU copies. */
        mode = VHOST_DMA_OFF;
    }

    if (!vd && mode == VHOST_DMA_OFF && !error) {
        return;
    }
    if (!vd) {
        vd = *vdp = xzalloc(sizeof *vd);
        ovs_refcount_init(&vd->ref_cnt);
        vd->name = xstrdup(netdev_get_name(netdev));
        vd->port_id = pmd_dma_port_id();
        atomic_init(&vd->vid, -1);
    }
    if (!nullable_string_is_equal(error, vd->error)) {
        if (error) {
            VLOG_WARN("%s: %s; using CPU copies", vd->name, error);
        }
        free(vd->error);
        vd->error = error;
    } else {
        free(error);
    }
    if (vd->mode != mode || vd->allowed != allowed) {
        VLOG_INFO("%s: tx-dma %s", vd->name,
                  mode == VHOST_DMA_OFF ? "false" : tx_dma);
    }
    if ((vd->mode == VHOST_DMA_OFF) != (mode == VHOST_DMA_OFF)) {
        uint32_t orig;

        if (mode == VHOST_DMA_OFF) {
            atomic_sub_relaxed(&n_dma_ports, 1, &orig);
        } else {
            atomic_add_relaxed(&n_dma_ports, 1, &orig);
        }
    }
    vd->mode = mode;
    vd->allowed = allowed;
    atomic_store_relaxed(&vd->threshold, threshold);
}

char *
netdev_vhost_dma_get_error(const struct netdev_vhost_dma *vd)
{
    return vd ? nullable_xstrdup(vd->error) : NULL;
}

uint64_t
netdev_vhost_dma_socket_flags(const struct netdev_vhost_dma *vd)
{
    return vd && vd->mode != VHOST_DMA_OFF ? RTE_VHOST_USER_ASYNC_COPY : 0;
}

/* Returns true if the socket, registered with 'registered_flags', must be
 * registered again for the configured 'tx-dma' to take effect. */
bool
netdev_vhost_dma_needs_reregister(const struct netdev_vhost_dma *vd,
                                  uint64_t registered_flags)
{
    bool has = (registered_flags & RTE_VHOST_USER_ASYNC_COPY) != 0;

    return vd && has != (netdev_vhost_dma_socket_flags(vd) != 0);
}

void
netdev_vhost_dma_socket_registered(struct netdev_vhost_dma *vd,
                                   uint64_t flags)
{
    if (vd) {
        atomic_store_relaxed(&vd->socket_async,
                             (flags & RTE_VHOST_USER_ASYNC_COPY) != 0);
    }
}

uint32_t
netdev_vhost_dma_mbufs_in_flight(void)
{
    uint32_t n;

    atomic_read_relaxed(&n_dma_ports, &n);
    return n * VHOST_DMA_MBUFS_PER_PORT;
}

void
netdev_vhost_dma_destroy(struct netdev_vhost_dma *vd)
{
    if (vd) {
        if (vd->mode != VHOST_DMA_OFF) {
            uint32_t orig;

            atomic_sub_relaxed(&n_dma_ports, 1, &orig);
        }
        ovs_mutex_lock(&by_vid_mutex);
        for (int i = 0; i < VHOST_DMA_MAX_VID; i++) {
            if (by_vid[i] == vd) {
                by_vid[i] = NULL;
            }
        }
        ovs_mutex_unlock(&by_vid_mutex);
        vd_unref(vd);
    }
}

/* Completion. */

/* Accounts for and frees 'n' packets of 'vq' whose copies are done. */
static void
vd_complete(struct vhost_dma_vq *vq, struct rte_mbuf **pkts, uint16_t n,
            bool cleared)
{
    uint64_t bytes = 0;
    uint32_t orig;

    for (uint16_t i = 0; i < n; i++) {
        bytes += rte_pktmbuf_pkt_len(pkts[i]);
        rte_pktmbuf_free(pkts[i]);
    }
    vd_count(&vq->dma_packets, n);
    vd_count(&vq->dma_bytes, bytes);
    if (cleared) {
        vd_count(&vq->cleared, n);
        COVERAGE_ADD(vhost_dma_cleared, n);
    }
    atomic_sub_relaxed(&vq->inflight, n, &orig);
}

static uint32_t
vd_inflight(const struct vhost_dma_vq *vq_)
{
    struct vhost_dma_vq *vq = CONST_CAST(struct vhost_dma_vq *, vq_);
    uint32_t n;

    atomic_read_relaxed(&vq->inflight, &n);
    return n;
}

static inline uint32_t
vd_arg(uint32_t conn, int dma_id, int txq)
{
    return (conn & 0xffff) << 16 | (uint32_t) dma_id << 10 | txq;
}

/* Harvests the completions of 'txq' on channel 'dma_id': at most 'rounds'
 * bursts.  Runs in the thread that owns the channel, which accounts for the
 * cycles.  Returns the copies of 'txq' still in flight. */
static uint32_t
vd_poll(struct netdev_vhost_dma *vd, int vid, int txq, int dma_id,
        int rounds)
{
    struct pmd_dma_thread *pmd = pmd_dma_current();
    uint64_t start = rte_get_tsc_cycles();
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    struct rte_mbuf *pkts[VHOST_DMA_BURST];
    uint32_t done = 0;
    uint16_t n;

    do {
        n = rte_vhost_poll_enqueue_completed(vid, txq * 2, pkts,
                                             VHOST_DMA_BURST, dma_id, 0);
        vd_complete(vq, pkts, n, false);
        done += n;
    } while (n == VHOST_DMA_BURST && --rounds);

    if (pmd) {
        pmd_dma_count(pmd, PMD_DMA_COMPLETED, done);
        pmd_dma_port_count(pmd_dma_port_get(pmd, vd->port_id, vd->name),
                           PMD_DMA_PATH_DMA,
                           rte_get_tsc_cycles() - start, done);
    }
    return vd_inflight(vq);
}

/* dw_ops 'poll': harvests the completions of one txq on one channel, in the
 * thread that owns the channel. */
static unsigned int
vhost_dma_dw_poll(void *vd_, uint32_t arg, bool drain)
{
    struct netdev_vhost_dma *vd = vd_;
    uint32_t conn;
    int vid;

    atomic_read_relaxed(&vd->vid, &vid);
    atomic_read_relaxed(&vd->conn, &conn);
    if (vid < 0 || (conn & 0xffff) != arg >> 16) {
        /* The guest went away: its copies were cleared then. */
        return 0;
    }
    return vd_poll(vd, vid, arg & 0x3ff, (arg >> 10) & 0x3f, drain ? 8 : 1);
}

static void
vhost_dma_dw_ref(void *vd)
{
    vd_ref(vd);
}

static void
vhost_dma_dw_unref(void *vd)
{
    vd_unref(vd);
}

static const struct dw_ops vhost_dma_dw_ops = {
    .name = "vhost-dma",
    .poll = vhost_dma_dw_poll,
    .ref = vhost_dma_dw_ref,
    .unref = vhost_dma_dw_unref,
};

/* Finishes every copy in flight on 'txq' of device 'vid', polling each
 * channel it used, within VHOST_DMA_CLEAR_TIMEOUT_MS.  'locked' says whether
 * the caller holds the virtqueue's lock (a vring_state_changed callback for
 * SET_MEM_TABLE and the like).  Returns false if copies are still in
 * flight. */
static bool
vd_clear_vq(struct netdev_vhost_dma *vd, int vid, int txq, bool locked)
{
    static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 5);
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    long long int deadline = time_msec() + VHOST_DMA_CLEAR_TIMEOUT_MS;
    struct rte_mbuf *pkts[VHOST_DMA_BURST];
    uint64_t channels;

    atomic_read_relaxed(&vq->channels, &channels);
    while (vd_inflight(vq)) {
        for (uint64_t c = channels; c; c = zero_rightmost_1bit(c)) {
            int dma_id = raw_ctz(c);
            uint16_t n;

            n = (locked ? rte_vhost_clear_queue_thread_unsafe
                        : rte_vhost_clear_queue)(vid, txq * 2, pkts,
                                                 VHOST_DMA_BURST, dma_id, 0);
            if (n > VHOST_DMA_BURST) {
                /* -1 as a uint16_t: vhost refused. */
                vd_count(&vq->errors, 1);
                VLOG_WARN_RL(&rl, "%s: vhost refused to clear txq %d",
                             vd->name, txq);
                return false;
            }
            vd_complete(vq, pkts, n, true);
        }
        if (time_msec() >= deadline) {
            VLOG_WARN_RL(&rl, "%s: %"PRIu32" DMA copies of txq %d did not "
                         "complete in %d ms", vd->name, vd_inflight(vq), txq,
                         VHOST_DMA_CLEAR_TIMEOUT_MS);
            return false;
        }
    }
    return true;
}

/* vhost callbacks. */

static struct netdev_vhost_dma *
vd_by_vid(int vid)
{
    struct netdev_vhost_dma *vd = NULL;

    if (vid >= 0 && vid < VHOST_DMA_MAX_VID) {
        ovs_mutex_lock(&by_vid_mutex);
        vd = by_vid[vid];
        ovs_mutex_unlock(&by_vid_mutex);
    }
    return vd;
}

/* Registers the async channel of the guest's Rx virtqueue of 'txq'.
 * 'locked' as for vd_clear_vq(). */
static void
vd_register_vq(struct netdev_vhost_dma *vd, int vid, int txq, bool locked)
{
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    bool registered;
    int err;

    atomic_read_relaxed(&vq->registered, &registered);
    if (registered) {
        return;
    }
    err = locked
          ? rte_vhost_async_channel_register_thread_unsafe(vid, txq * 2)
          : rte_vhost_async_channel_register(vid, txq * 2);
    if (err && locked) {
        /* Called without the lock after all (see vd_clear_vq()). */
        err = rte_vhost_async_channel_register(vid, txq * 2);
    }
    if (err && rte_vhost_async_get_inflight(vid, txq * 2) >= 0) {
        /* Registered already: a guest that rebooted without closing the
         * socket keeps its virtqueues. */
        err = 0;
    }
    if (err) {
        vd_count(&vq->errors, 1);
        VLOG_WARN("%s: cannot register the async channel of txq %d; "
                  "using CPU copies", vd->name, txq);
        return;
    }
    atomic_store_relaxed(&vq->registered, true);
}

void
netdev_vhost_dma_new_device(struct netdev_vhost_dma *vd, int vid)
{
    uint32_t conn;
    bool async;
    int n_txq;

    if (!vd || vid < 0 || vid >= VHOST_DMA_MAX_VID) {
        return;
    }
    atomic_read_relaxed(&vd->socket_async, &async);
    if (!async) {
        return;
    }
    ovs_mutex_lock(&by_vid_mutex);
    by_vid[vid] = vd;
    ovs_mutex_unlock(&by_vid_mutex);

    /* The guest's Rx virtqueues are the even ones, one per txq. */
    n_txq = MIN((rte_vhost_get_vring_num(vid) + 1) / 2, VHOST_DMA_MAX_TXQ);
    if (n_txq > vd_max_txq(vd)) {
        atomic_store_relaxed(&vd->max_txq, n_txq);
    }
    for (int txq = 0; txq < n_txq; txq++) {
        atomic_store_relaxed(&vd->vqs[txq].registered, false);
        vd_register_vq(vd, vid, txq, false);
    }
    atomic_add_relaxed(&vd->conn, 1, &conn);
    atomic_store_relaxed(&vd->vid, vid);
}

void
netdev_vhost_dma_vring_state_changed(int vid, uint16_t queue_id, int enable)
{
    struct netdev_vhost_dma *vd = vd_by_vid(vid);
    int txq = queue_id / 2;
    bool locked;

    if (!vd || queue_id % 2 || txq >= VHOST_DMA_MAX_TXQ) {
        return;
    }
    if (txq >= vd_max_txq(vd)) {
        /* Enabled after new_device: a guest may add queues later. */
        atomic_store_relaxed(&vd->max_txq, txq + 1);
    }
    /* This callback runs with every virtqueue lock held for SET_MEM_TABLE,
     * SET_VRING_* and the like, but without any after GET_VRING_BASE: the
     * '_thread_unsafe' calls tell which by failing in the latter case. */
    locked = rte_vhost_async_get_inflight_thread_unsafe(vid, queue_id) >= 0;
    if (enable) {
        vd_register_vq(vd, vid, txq, locked);
    } else if (vd_inflight(&vd->vqs[txq])) {
        /* Guest memory may go away when this returns. */
        vd_clear_vq(vd, vid, txq, locked);
    }
}

void
netdev_vhost_dma_destroy_device(int vid)
{
    struct netdev_vhost_dma *vd = NULL;
    uint32_t conn;

    if (vid >= 0 && vid < VHOST_DMA_MAX_VID) {
        ovs_mutex_lock(&by_vid_mutex);
        vd = by_vid[vid];
        by_vid[vid] = NULL;
        if (vd) {
            vd_ref(vd);
        }
        ovs_mutex_unlock(&by_vid_mutex);
    }
    if (!vd) {
        return;
    }

    /* No thread polls or submits for this guest after this. */
    atomic_store_relaxed(&vd->vid, -1);
    atomic_add_relaxed(&vd->conn, 1, &conn);
    ovsrcu_synchronize();
    ovsrcu_quiesce_start();

    for (int txq = 0; txq < vd_max_txq(vd); txq++) {
        struct vhost_dma_vq *vq = &vd->vqs[txq];
        bool registered;

        atomic_read_relaxed(&vq->registered, &registered);
        if (!registered) {
            continue;
        }
        vd_clear_vq(vd, vid, txq, false);
        if (rte_vhost_async_channel_unregister(vid, txq * 2)) {
            vd_count(&vq->errors, 1);
        }
        atomic_store_relaxed(&vq->registered, false);
        atomic_store_relaxed(&vq->channels, 0);
    }
    vd_unref(vd);
}

/* Data path. */

bool
netdev_vhost_dma_enabled(const struct netdev_vhost_dma *vd)
{
    bool async = false;

    if (vd) {
        atomic_read_relaxed(&CONST_CAST(struct netdev_vhost_dma *,
                                        vd)->socket_async, &async);
    }
    return async;
}

/* Copies 'cnt' packets with the CPU; frees them.  Returns the number not
 * delivered. */
static int
vd_cpu_send(struct netdev_vhost_dma *vd, struct pmd_dma_thread *pmd,
            int vid, int txq, struct rte_mbuf **pkts, int cnt)
{
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    uint64_t start = rte_get_tsc_cycles();
    int sent = 0;

    for (int tries = 0; sent < cnt && tries < 8; tries++) {
        uint16_t n = rte_vhost_enqueue_burst(vid, txq * 2, pkts + sent,
                                             cnt - sent);
        if (!n) {
            break;
        }
        sent += n;
    }
    for (int i = 0; i < cnt; i++) {
        rte_pktmbuf_free(pkts[i]);
    }
    vd_count(&vq->cpu_packets, sent);
    COVERAGE_ADD(vhost_dma_cpu_copy, sent);
    if (pmd) {
        pmd_dma_count(pmd, PMD_DMA_CPU_FALLBACK, sent);
        pmd_dma_port_count(pmd_dma_port_get(pmd, vd->port_id, vd->name),
                           PMD_DMA_PATH_CPU,
                           rte_get_tsc_cycles() - start, sent);
    }
    return cnt - sent;
}

/* Drops 'cnt' packets, counting them as 'why' (PMD_DMA_NO_CHANNEL or
 * PMD_DMA_RING_FULL) in 'vq' and in 'pmd'.  Returns 'cnt'. */
static int
vd_drop(struct vhost_dma_vq *vq, struct pmd_dma_thread *pmd,
        enum pmd_dma_counter why, struct rte_mbuf **pkts, int cnt)
{
    for (int i = 0; i < cnt; i++) {
        rte_pktmbuf_free(pkts[i]);
    }
    pmd_dma_count(pmd, why, cnt);
    if (why == PMD_DMA_NO_CHANNEL) {
        vd_count(&vq->no_channel, cnt);
        COVERAGE_ADD(vhost_dma_no_channel, cnt);
    } else {
        vd_count(&vq->ring_full, cnt);
        COVERAGE_ADD(vhost_dma_ring_full, cnt);
    }
    return cnt;
}

static bool
vd_below_threshold(struct rte_mbuf **pkts, int cnt, uint32_t threshold)
{
    for (int i = 0; i < cnt; i++) {
        if (rte_pktmbuf_pkt_len(pkts[i]) >= threshold) {
            return false;
        }
    }
    return true;
}

/* Submits 'cnt' packets to channel 'dma_id'.  Returns how many vhost
 * accepted; those belong to vhost until they complete. */
static int
vd_submit(struct netdev_vhost_dma *vd, struct dw_queue *dwq,
          struct pmd_dma_thread *pmd, int vid, int txq, int dma_id,
          struct rte_mbuf **pkts, int cnt)
{
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    uint64_t start = rte_get_tsc_cycles();
    uint64_t orig_channels;
    uint32_t orig, conn;
    uint16_t n;

    n = rte_vhost_submit_enqueue_burst(vid, txq * 2, pkts, cnt, dma_id, 0);
    if (n) {
        COVERAGE_ADD(vhost_dma_submit, n);
        atomic_add_relaxed(&vq->inflight, n, &orig);
        atomic_or_relaxed(&vq->channels, UINT64_C(1) << dma_id,
                          &orig_channels);
        atomic_read_relaxed(&vd->conn, &conn);
        while (!dw_queue_add(dwq, &vhost_dma_dw_ops, vd,
                             vd_arg(conn, dma_id, txq), n)) {
            /* The thread's queue is full: complete these copies now. */
            COVERAGE_INC(vhost_dma_defer_full);
            pmd_dma_count(pmd, PMD_DMA_FORCED_POLLS, 1);
            if (!vd_poll(vd, vid, txq, dma_id, 8)) {
                break;
            }
        }
        pmd_dma_count(pmd, PMD_DMA_SUBMITTED, n);
    }
    if (pmd) {
        /* The packets are counted when their copies complete. */
        pmd_dma_port_count(pmd_dma_port_get(pmd, vd->port_id, vd->name),
                           PMD_DMA_PATH_DMA,
                           rte_get_tsc_cycles() - start, 0);
    }
    return n;
}

/* Completes the copies of 'txq' in flight on the channels that the calling
 * thread owns.  If 'wait', keeps at it for up to VHOST_DMA_ORDER_WAIT_MS
 * until nothing of 'txq' is in flight: a thread whose channel was drained
 * copies with the CPU from then on, but only behind the copies it
 * submitted before.  Returns the copies of 'txq' still in flight. */
static uint32_t
vd_poll_own(struct netdev_vhost_dma *vd, int vid, int txq, bool wait)
{
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    long long int deadline = LLONG_MIN;
    uint64_t channels;
    uint32_t n;

    atomic_read_relaxed(&vq->channels, &channels);
    channels &= dpdk_dma_thread_owned();
    for (;;) {
        for (uint64_t c = channels; c; c = zero_rightmost_1bit(c)) {
            vd_poll(vd, vid, txq, raw_ctz(c), 8);
        }
        n = vd_inflight(vq);
        if (!n || !channels || !wait) {
            return n;
        }
        if (deadline == LLONG_MIN) {
            COVERAGE_INC(vhost_dma_order_wait);
            deadline = time_msec() + VHOST_DMA_ORDER_WAIT_MS;
        } else if (time_msec() > deadline) {
            return n;
        }
    }
}

/* A thread that is not a PMD thread (the main thread's packet-outs) has no
 * channel and no deferred-work queue.  It may still copy with the CPU once
 * the copies of 'txq' ahead of its packets completed: the PMD threads that
 * own them complete them without waiting for more traffic.  Waits for that
 * at most VHOST_DMA_ORDER_WAIT_MS, yielding the CPU, which the DMA engine
 * may share.  Returns true if nothing is in flight any more. */
static bool
vd_non_pmd_wait(const struct vhost_dma_vq *vq)
{
    long long int deadline = time_msec() + VHOST_DMA_ORDER_WAIT_MS;

    COVERAGE_INC(vhost_dma_order_wait);
    while (vd_inflight(vq)) {
        if (time_msec() > deadline) {
            return false;
        }
        sched_yield();
    }
    return true;
}

int
netdev_vhost_dma_send(struct netdev_vhost_dma *vd, int vid, int txq,
                      struct rte_mbuf **pkts, int cnt)
{
    static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 5);
    struct dw_queue *dwq = dw_queue_current();
    struct pmd_dma_thread *pmd = pmd_dma_current();
    struct vhost_dma_vq *vq;
    uint32_t threshold;
    bool registered;
    int dma_id = -1;
    int sent;

    if (OVS_UNLIKELY(!cnt)) {
        return 0;
    }
    /* netdev-dpdk's vhost txqs are below OVS_VHOST_MAX_QUEUE_NUM. */
    ovs_assert(txq < VHOST_DMA_MAX_TXQ);
    vq = &vd->vqs[txq];

    atomic_read_relaxed(&vq->registered, &registered);
    if (dwq && registered && vd->mode != VHOST_DMA_OFF) {
        /* A device on the PMD thread's NUMA node, preferably. */
        dma_id = dpdk_dma_thread_get_channel(
            vd->mode == VHOST_DMA_LIST ? vd->allowed : 0,
            pmd_dma_numa_id(pmd));
        pmd_dma_note_channel(pmd, dma_id);
    }
    atomic_read_relaxed(&vd->threshold, &threshold);
    if (dma_id < 0 || vd_below_threshold(pkts, cnt, threshold)) {
        /* The CPU copy is order-safe only if nothing of this virtqueue is
         * in flight: complete what this thread can first. */
        bool idle = !vd_inflight(vq)
                    || (dwq ? !vd_poll_own(vd, vid, txq, dma_id < 0)
                            : vd_non_pmd_wait(vq));

        if (dma_id < 0) {
            if (!idle) {
                /* Copies of another thread, or of a channel this thread
                 * cannot poll, are ahead of these packets: a CPU copy would
                 * overtake them. */
                VLOG_INFO_RL(&rl, "%s: txq %d: no DMA channel and copies in "
                             "flight: dropping %d packets", vd->name, txq,
                             cnt);
                return vd_drop(vq, pmd, PMD_DMA_NO_CHANNEL, pkts, cnt);
            }
            vd_count(&vq->no_channel, cnt);
            COVERAGE_ADD(vhost_dma_no_channel, cnt);
            return vd_cpu_send(vd, pmd, vid, txq, pkts, cnt);
        }
        if (idle) {
            return vd_cpu_send(vd, pmd, vid, txq, pkts, cnt);
        }
        /* Short packets behind copies in flight go through DMA too. */
    }

    sent = vd_submit(vd, dwq, pmd, vid, txq, dma_id, pkts, cnt);
    if (sent < cnt) {
        /* The DMA ring or the virtqueue is full: harvest what is done and
         * try once more. */
        vd_poll(vd, vid, txq, dma_id, 1);
        sent += vd_submit(vd, dwq, pmd, vid, txq, dma_id, pkts + sent,
                          cnt - sent);
    }
    if (sent < cnt) {
        return vd_drop(vq, pmd, PMD_DMA_RING_FULL, pkts + sent,
                       cnt - sent);
    }
    return 0;
}

/* Statistics. */

void
netdev_vhost_dma_get_custom_stats(const struct netdev_vhost_dma *vd,
                                  struct netdev_custom_stats *stats)
{
    static const char *names[] = {
        "tx_dma_packets", "tx_dma_bytes", "tx_cpu_packets",
        "tx_dma_inflight", "tx_dma_ring_full", "tx_dma_no_channel",
        "tx_dma_cleared", "tx_dma_errors",
    };
    uint64_t values[ARRAY_SIZE(names)] = { 0 };

    if (!vd) {
        return;
    }
    for (int txq = 0; txq < vd_max_txq(vd); txq++) {
        const struct vhost_dma_vq *vq = &vd->vqs[txq];

        values[0] += vd_read(&vq->dma_packets);
        values[1] += vd_read(&vq->dma_bytes);
        values[2] += vd_read(&vq->cpu_packets);
        values[3] += vd_inflight(vq);
        values[4] += vd_read(&vq->ring_full);
        values[5] += vd_read(&vq->no_channel);
        values[6] += vd_read(&vq->cleared);
        values[7] += vd_read(&vq->errors);
    }
    stats->counters = xrealloc(stats->counters,
                               (stats->size + ARRAY_SIZE(names))
                               * sizeof *stats->counters);
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        struct netdev_custom_counter *c = &stats->counters[stats->size++];

        ovs_strlcpy(c->name, names[i], NETDEV_CUSTOM_STATS_NAME_SIZE);
        c->value = values[i];
    }
}
