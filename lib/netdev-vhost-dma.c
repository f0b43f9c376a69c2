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
 * Accounting per virtqueue ('struct vhost_dma_vq', indexed by txq)
 * ==================================================================
 *
 * DPDK 22.11's vhost library gives a virtqueue's packets back in the order
 * they were submitted, whichever DMA channel copied them and whichever
 * thread polls (vhost_poll_enqueue_completed() in lib/vhost/virtio_net.c
 * returns the run of completed packets from the oldest one in flight).  So
 * copies of a virtqueue are numbered: 'submitted' counts the copies handed
 * to vhost since the port was created, 'completed' those given back,
 * completed or cleared, and copy number N is done once 'completed' > N.
 * A thread that submitted copies up to number M knows that its own work is
 * done when 'completed' >= M, even while other threads keep the virtqueue
 * busy: that is the 'mark' of its deferred-work item.
 *
 * 'submitted' is written only by the thread that holds the txq's
 * 'tx_lock' in netdev-dpdk, which serializes every sender of a virtqueue.
 * It is raised before rte_vhost_submit_enqueue_burst() and lowered by what
 * vhost refused after, so that it never falls behind vhost's own count: a
 * vring_state_changed callback that holds the virtqueue's lock while a
 * sender waits for it then sees too much in flight, never too little.  For
 * the same reason 'channels', every DMA channel that copies of the
 * virtqueue went to, gets its bit before the submission.
 *
 * Any thread may complete any virtqueue's copies on any channel: DPDK
 * serializes each channel with a lock of its own (see lib/dpdk-dma.c).  A
 * thread that must not overtake copies in flight (a CPU copy is about to
 * follow) polls every channel of 'channels' itself, so it never depends on
 * another thread, which may be waiting for the 'tx_lock' it holds.
 *
 * Lock context of DPDK's vhost callbacks (DPDK 22.11, lib/vhost)
 * ================================================================
 *
 * - new_device and destroy_device: no virtqueue lock is held
 *   (vhost_user_msg_handler() calls new_device after
 *   vhost_user_unlock_all_queue_pairs(); destroy_device comes from
 *   vhost_destroy_device_notify() for GET_VRING_BASE and RESET_OWNER, which
 *   take no lock, or from the connection's teardown).
 *
 * - vring_state_changed: it depends on the message being handled.
 *   vhost_user_msg_handler() takes every virtqueue lock of the device
 *   (vhost_user_lock_all_queue_pairs()) for the requests listed in
 *   vd_request_locks_vqs(), handles the message, then notifies the
 *   changes of readiness with the locks still held; for other requests
 *   (GET_VRING_BASE, for instance) it notifies without them.  The
 *   notifications from within handlers (vhost_user_set_vring_call(),
 *   vhost_user_set_vring_kick(), and vhost_user_set_mem_table() for async
 *   devices) all come from requests of that list.  So the callback asks
 *   which message is being handled: each new connection registers
 *   vd_pre_msg() and vd_post_msg() (rte_vhost_extern_callback_register(),
 *   which vhost calls before and after each message's handler, locks
 *   already taken) to record it per thread, from the first message on.
 *
 * The experimental vhost async API is used here and nowhere else in
 * netdev-dpdk. */

#define ALLOW_EXPERIMENTAL_API 1

#include <config.h>

#include "netdev-vhost-dma.h"

#include <ctype.h>
#include <sched.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_vhost.h>
#include <rte_vhost_async.h>

#include "coverage.h"
#include "deferred-work.h"
#include "dpdk-dma.h"
#include "dpif-netdev-dma.h"
#include "netdev-provider.h"
#include "openvswitch/dynamic-string.h"
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
COVERAGE_DEFINE(vhost_dma_clear_timeout);
COVERAGE_DEFINE(vhost_dma_mem_table);
COVERAGE_DEFINE(vhost_dma_overflow);
COVERAGE_DEFINE(vhost_dma_reserve_full);
COVERAGE_DEFINE(vhost_dma_call_failed);

#define VHOST_DMA_MAX_TXQ 1024          /* As OVS_VHOST_MAX_QUEUE_NUM. */
#define VHOST_DMA_MAX_VID 1024          /* As DPDK's MAX_VHOST_DEVICE. */
#define VHOST_DMA_THRESHOLD_DEFAULT 1024
#define VHOST_DMA_BURST 32
#define VHOST_DMA_CLEAR_TIMEOUT_MS 1000

/* How long after a destroy_device returned netdev_vhost_dma_wait_teardown()
 * still waits: DPDK's vhost thread goes on tearing the connection down
 * after the callback. */
#define VHOST_DMA_TEARDOWN_SETTLE_MS 100

#define VHOST_DMA_ORDER_WAIT_MS 10     /* See vd_complete_up_to(). */
#define VHOST_DMA_OVERFLOW_MIN_US 100  /* See vd_overflow(). */
#define VHOST_DMA_ENGINE_ROOM 128      /* See netdev_vhost_dma_send(). */
#define VHOST_DMA_OVERFLOW_MAX_US 1000000
#define VHOST_DMA_PROBE_WINDOW 16      /* See vd_overflow(). */
#define VHOST_DMA_WINDOW_MAX 1024

/* Mbufs that a DMA-enabled port may hold in copies in flight, reserved in
 * every mempool (netdev_vhost_dma_mbufs_in_flight()): the copies of two
 * full 1024-descriptor virtqueues.  A guest with more queues, or larger
 * ones, could hold more (vhost accepts as many copies for a virtqueue as it
 * has descriptors), so the port keeps within the reserve itself: see
 * vd_within_reserve(). */
#define VHOST_DMA_MBUFS_PER_PORT 2048

struct vhost_dma_vq {
    /* Copy numbers, see the comment at the top of the file. */
    atomic_uint64_t submitted;
    atomic_uint64_t completed;
    atomic_uint64_t channels;   /* Devices copies were submitted to. */
    atomic_bool registered;     /* Async channel registered with vhost. */
    atomic_bool wedged;         /* Copies did not complete when they had
                                 * to: see vd_clear_vq(). */

    atomic_uint64_t dma_packets;    /* Delivered by DMA. */
    atomic_uint64_t dma_bytes;
    atomic_uint64_t cpu_packets;    /* Delivered by the CPU. */
    atomic_uint64_t ring_full;      /* Dropped: DMA ring or vring full. */
    atomic_uint64_t no_channel;     /* Copied by the CPU: no channel. */
    atomic_uint64_t cleared;        /* Completed by a clear on teardown. */
    atomic_uint64_t errors;         /* Abandoned copies and packets
                                     * dropped behind copies that did not
                                     * complete. */
    atomic_uint64_t overflow;       /* Copied by the CPU: engine full. */

    /* Overflow, see vd_overflow(): written by the holder of the txq's
     * 'tx_lock' only. */
    uint64_t cpu_until;         /* TSC: CPU copies until then, if nonzero. */
    uint64_t dma_since;         /* TSC: back to DMA since then. */
    uint64_t backoff;           /* TSC cycles of the last CPU period. */
    uint32_t window;            /* Copies in flight allowed; 0: any. */
    bool stalled;               /* A wait for the engine timed out... */
    uint64_t stalled_completed; /* ...with 'completed' at this value. */
};

struct netdev_vhost_dma {
    struct ovs_refcount ref_cnt;    /* The port and deferred-work items. */
    char *name;
    uint64_t port_id;               /* For per-PMD accounting. */
    char *error;                    /* Why the options are not in effect. */

    /* Configuration, written by the main thread. */
    enum netdev_vhost_dma_mode mode;
    uint64_t allowed;               /* NETDEV_VHOST_DMA_LIST: devices. */
    atomic_uint32_t threshold;

    atomic_bool socket_async;       /* Socket has RTE_VHOST_USER_ASYNC_COPY. */
    atomic_int vid;                 /* Guest connected, or -1. */
    atomic_int max_txq;             /* Most Rx virtqueues of any guest. */
    atomic_bool new_connection;     /* Next new_device starts a connection. */

    /* Connection teardowns, see netdev_vhost_dma_wait_teardown(). */
    atomic_uint32_t teardowns;      /* destroy_device calls in progress. */
    atomic_llong teardown_end;      /* time_msec() when the last returned. */

    struct vhost_dma_vq vqs[VHOST_DMA_MAX_TXQ];
};

/* Ports with 'tx-dma' on. */
static atomic_uint32_t n_dma_ports = ATOMIC_VAR_INIT(0);

/* vhost devices by vid, for the callbacks that only know a vid.  Written
 * and read by DPDK's vhost thread; port destruction clears entries. */
static struct ovs_mutex by_vid_mutex = OVS_MUTEX_INITIALIZER;
static struct netdev_vhost_dma *by_vid[VHOST_DMA_MAX_VID]
    OVS_GUARDED_BY(by_vid_mutex);

/* The vhost-user message that DPDK's vhost thread is handling, recorded by
 * vd_pre_msg() and vd_post_msg(). */
struct vd_msg {
    int vid;                    /* Device, or -1 before any message. */
    uint32_t request;           /* Its VHOST_USER_* request. */
    bool in_handler;            /* Between pre and post handling (or after
                                 * a handler that failed: vhost skips
                                 * post_msg_handle then). */
    uint32_t mem_table_notes;   /* Made-up notifications seen, see
                                 * vd_mem_table_note(). */
};
DEFINE_STATIC_PER_THREAD_DATA(struct vd_msg, vd_msg, { -1, 0, false, 0 });

/* vhost-user requests, numbered by the vhost-user protocol (the order of
 * enum vhost_user_request in DPDK's lib/vhost/vhost_user.h). */
enum {
    VD_REQ_SET_FEATURES = 2,
    VD_REQ_SET_OWNER = 3,
    VD_REQ_SET_MEM_TABLE = 5,
    VD_REQ_SET_LOG_BASE = 6,
    VD_REQ_SET_LOG_FD = 7,
    VD_REQ_SET_VRING_NUM = 8,
    VD_REQ_SET_VRING_ADDR = 9,
    VD_REQ_SET_VRING_BASE = 10,
    VD_REQ_SET_VRING_KICK = 12,
    VD_REQ_SET_VRING_CALL = 13,
    VD_REQ_SET_VRING_ERR = 14,
    VD_REQ_SET_PROTOCOL_FEATURES = 16,
    VD_REQ_SET_VRING_ENABLE = 18,
    VD_REQ_SEND_RARP = 19,
    VD_REQ_NET_SET_MTU = 20,
    VD_REQ_SET_SLAVE_REQ_FD = 21,
};

/* Returns true if DPDK 22.11's vhost_user_msg_handler() holds every
 * virtqueue lock of the device while it handles 'request' and notifies the
 * changes it caused: the requests of its lock switch.  (The exception, a
 * device with a configured vDPA driver, does not occur in OVS.) */
static bool
vd_request_locks_vqs(uint32_t request)
{
    switch (request) {
    case VD_REQ_SET_FEATURES:
    case VD_REQ_SET_PROTOCOL_FEATURES:
    case VD_REQ_SET_OWNER:
    case VD_REQ_SET_MEM_TABLE:
    case VD_REQ_SET_LOG_BASE:
    case VD_REQ_SET_LOG_FD:
    case VD_REQ_SET_VRING_NUM:
    case VD_REQ_SET_VRING_ADDR:
    case VD_REQ_SET_VRING_BASE:
    case VD_REQ_SET_VRING_KICK:
    case VD_REQ_SET_VRING_CALL:
    case VD_REQ_SET_VRING_ERR:
    case VD_REQ_SET_VRING_ENABLE:
    case VD_REQ_SEND_RARP:
    case VD_REQ_NET_SET_MTU:
    case VD_REQ_SET_SLAVE_REQ_FD:
        return true;
    default:
        return false;
    }
}

/* rte_vhost_user_extern_ops 'pre_msg_handle': 'msg' starts with the
 * vhost-user message, whose first 32-bit field is the request. */
static enum rte_vhost_msg_result
vd_pre_msg(int vid, void *msg)
{
    struct vd_msg *m = vd_msg_get();

    m->vid = vid;
    memcpy(&m->request, msg, sizeof m->request);
    m->in_handler = true;
    m->mem_table_notes = 0;
    return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

/* rte_vhost_user_extern_ops 'post_msg_handle': the message's own handler
 * succeeded; vhost notifies the changes of readiness next. */
static enum rte_vhost_msg_result
vd_post_msg(int vid OVS_UNUSED, void *msg OVS_UNUSED)
{
    vd_msg_get()->in_handler = false;
    return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

static const struct rte_vhost_user_extern_ops vd_msg_ops = {
    .pre_msg_handle = vd_pre_msg,
    .post_msg_handle = vd_post_msg,
};

/* Returns true if the notification of vring 'queue_id' of 'vid' ('enable')
 * is one that vhost_user_set_mem_table() makes up, 'm' being a
 * SET_MEM_TABLE.  In DPDK 22.11 (lib/vhost/vhost_user.c), the handler of
 * an async device with memory already mapped notifies vrings 0 to
 * nr_vring - 1 as disabled, in that order, before it unmaps the memory,
 * and, if it mapped the new memory, the same vrings as enabled, whatever
 * the guest asked for.  Then vhost_user_msg_handler() may notify real
 * changes of readiness.  After a handler that succeeded, vd_post_msg()
 * tells those apart; after one that failed halfway, which vhost does not
 * report to vd_post_msg(), their order does: the made-up enables never
 * came. */
static bool
vd_mem_table_note(struct vd_msg *m, int vid, uint16_t queue_id, int enable)
{
    uint32_t nr_vring = rte_vhost_get_vring_num(vid);
    uint32_t k = m->mem_table_notes;

    if (m->in_handler
        && (k < nr_vring
            ? !enable && queue_id == k
            : k < 2 * nr_vring && enable && queue_id == k - nr_vring)) {
        m->mem_table_notes++;
        return true;
    }
    return false;
}

int
netdev_vhost_dma_new_connection(int vid)
{
    static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 5);

    /* Cheap, and harmless for a socket without async copies (vhost makes
     * up no notification for those): so for every connection, from its
     * first message on, before any DMA port could know its vid. */
    if (rte_vhost_extern_callback_register(vid, &vd_msg_ops, NULL)) {
        VLOG_WARN_RL(&rl, "vid %d: cannot follow the vhost-user messages",
                     vid);
    }
    return 0;
}

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

static uint64_t
vd_seq(const atomic_uint64_t *seq_)
{
    atomic_uint64_t *seq = CONST_CAST(atomic_uint64_t *, seq_);
    uint64_t value;

    atomic_read_explicit(seq, &value, memory_order_acquire);
    return value;
}

/* Returns the number of copies of 'vq' in flight, never less than vhost
 * has: 'completed' is read before 'submitted'. */
static uint32_t
vd_inflight(const struct vhost_dma_vq *vq)
{
    uint64_t completed = vd_seq(&vq->completed);
    uint64_t submitted = vd_seq(&vq->submitted);

    return submitted > completed ? submitted - completed : 0;
}

/* Returns the number of copies of 'vq' up to copy number 'mark' that are
 * not completed yet: 0 when they all are. */
static uint32_t
vd_pending(const struct vhost_dma_vq *vq, uint64_t mark)
{
    uint64_t completed = vd_seq(&vq->completed);

    return mark > completed ? MIN(mark - completed, UINT32_MAX) : 0;
}

static bool
vd_flag(const atomic_bool *flag_)
{
    atomic_bool *flag = CONST_CAST(atomic_bool *, flag_);
    bool value;

    atomic_read_explicit(flag, &value, memory_order_acquire);
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

char *
netdev_vhost_dma_parse_options(const struct smap *args, bool iommu,
                               bool postcopy,
                               struct netdev_vhost_dma_options *opts)
{
    const char *tx_dma = smap_get_def(args, "tx-dma", "false");
    const char *threshold_s = smap_get(args, "tx-dma-threshold");
    char *error = NULL;

    opts->allowed = 0;
    opts->threshold = VHOST_DMA_THRESHOLD_DEFAULT;
    if (!strcmp(tx_dma, "false")) {
        opts->mode = NETDEV_VHOST_DMA_OFF;
    } else if (!strcmp(tx_dma, "auto")) {
        opts->mode = NETDEV_VHOST_DMA_AUTO;
    } else {
        opts->mode = NETDEV_VHOST_DMA_LIST;
        error = dpdk_dma_parse_list(tx_dma, &opts->allowed);
        if (!error) {
            error = dpdk_dma_check_usable(opts->allowed);
        }
    }
    if (!error && threshold_s) {
        char *end;
        unsigned long int n = strtoul(threshold_s, &end, 10);

        if (*end || !*threshold_s || n > UINT16_MAX
            || !isdigit((unsigned char) *threshold_s)) {
            error = xasprintf("tx-dma-threshold: '%s' is not a number of "
                              "bytes between 0 and 65535", threshold_s);
        } else {
            opts->threshold = n;
        }
    }
    if (!error && opts->mode != NETDEV_VHOST_DMA_OFF && (iommu || postcopy)) {
        error = xasprintf("tx-dma cannot be used with %s: DPDK refuses "
                          "async copies on such sockets",
                          iommu ? "vhost-iommu-support"
                                : "vhost-postcopy-support");
    }
    if (error) {
        /* The port keeps forwarding, with CPU copies. */
        opts->mode = NETDEV_VHOST_DMA_OFF;
    }
    return error;
}

void
netdev_vhost_dma_set_config(struct netdev_vhost_dma **vdp,
                            struct netdev *netdev, const struct smap *args,
                            bool iommu, bool postcopy)
{
    const char *tx_dma = smap_get_def(args, "tx-dma", "false");
    struct netdev_vhost_dma *vd = *vdp;
    struct netdev_vhost_dma_options opts;
    char *error = netdev_vhost_dma_parse_options(args, iommu, postcopy,
                                                 &opts);
    enum netdev_vhost_dma_mode mode = opts.mode;
    uint32_t threshold = opts.threshold;
    uint64_t allowed = opts.allowed;

    if (!vd && mode == NETDEV_VHOST_DMA_OFF && !error) {
        return;
    }
    if (!vd) {
        vd = *vdp = xzalloc(sizeof *vd);
        ovs_refcount_init(&vd->ref_cnt);
        vd->name = xstrdup(netdev_get_name(netdev));
        vd->port_id = pmd_dma_port_id();
        atomic_init(&vd->vid, -1);
        atomic_init(&vd->new_connection, true);
        atomic_init(&vd->teardowns, 0);
        atomic_init(&vd->teardown_end, LLONG_MIN / 2);
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
                  mode == NETDEV_VHOST_DMA_OFF ? "false" : tx_dma);
    }
    if ((vd->mode == NETDEV_VHOST_DMA_OFF) != (mode == NETDEV_VHOST_DMA_OFF)) {
        uint32_t orig;

        if (mode == NETDEV_VHOST_DMA_OFF) {
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
    return vd && vd->mode != NETDEV_VHOST_DMA_OFF ? RTE_VHOST_USER_ASYNC_COPY : 0;
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
        /* rte_vhost_driver_unregister() (lib/vhost/socket.c, DPDK 22.11)
         * closes the socket's connections without destroy_connection:
         * whatever comes next is a new connection. */
        atomic_store_relaxed(&vd->new_connection, true);
    }
}

/* Waits until no connection of the socket of 'vd' is being torn down, and
 * the last teardown ended VHOST_DMA_TEARDOWN_SETTLE_MS ago, quiescent
 * meanwhile.  To be called before the socket is unregistered.
 *
 * In DPDK 22.11, vhost_user_read_cb() (lib/vhost/socket.c) tears down a
 * connection that went away: destroy_device, then, for a client socket, a
 * new connection attempt that, when it fails, adds the socket to the
 * reconnection list, and only then it removes the connection from the
 * socket.  rte_vhost_driver_unregister() removes the socket from the
 * reconnection list before it looks at its connections, and retries
 * both while the callback runs.  An attempt made between these two steps
 * outlives the socket, which is freed: seen as a second connection to the
 * next guest, and then as rte_vhost_driver_unregister() never returning.
 * A teardown can take long (destroy_device waits for every thread to
 * quiesce), so a 'tx-dma' change made meanwhile would meet its end.  What
 * follows destroy_device in the callback is a few system calls. */
void
netdev_vhost_dma_wait_teardown(struct netdev_vhost_dma *vd)
{
    static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(1, 5);
    long long int start = time_msec();
    bool warned = false;

    if (!vd) {
        return;
    }
    for (;;) {
        long long int end, now = time_msec();
        uint32_t n;

        atomic_read_explicit(&vd->teardowns, &n, memory_order_acquire);
        atomic_read_relaxed(&vd->teardown_end, &end);
        if (!n && now >= end + VHOST_DMA_TEARDOWN_SETTLE_MS) {
            break;
        }
        if (!warned && now - start >= 5000) {
            VLOG_WARN_RL(&rl, "%s: waited %lld ms for its guest's "
                         "connection to be torn down", vd->name,
                         now - start);
            warned = true;
        }
        /* Quiescent: the teardown may wait for this thread. */
        xnanosleep(1000 * 1000);
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
netdev_vhost_dma_format_ports(struct ds *s, int dev_id)
{
    uint64_t bit = UINT64_C(1) << dev_id;
    bool any = false;

    ds_put_cstr(s, "  ports: ");
    ovs_mutex_lock(&by_vid_mutex);
    for (int vid = 0; vid < VHOST_DMA_MAX_VID; vid++) {
        const struct netdev_vhost_dma *vd = by_vid[vid];
        bool listed = false;

        for (int txq = 0; vd && txq < vd_max_txq(vd); txq++) {
            if (vd_read(&vd->vqs[txq].channels) & bit) {
                if (!listed) {
                    ds_put_format(s, "%s%s (txq %d", any ? ", " : "",
                                  vd->name, txq);
                    listed = any = true;
                } else {
                    ds_put_format(s, ", %d", txq);
                }
            }
        }
        if (listed) {
            ds_put_char(s, ')');
        }
    }
    ovs_mutex_unlock(&by_vid_mutex);
    ds_put_cstr(s, any ? "\n" : "none\n");
}

void
netdev_vhost_dma_destroy(struct netdev_vhost_dma *vd)
{
    if (vd) {
        if (vd->mode != NETDEV_VHOST_DMA_OFF) {
            uint32_t orig;

            atomic_sub_relaxed(&n_dma_ports, 1, &orig);
        }
        pmd_dma_port_forget(vd->port_id);
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
    uint64_t orig;

    if (!n) {
        return;
    }
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
    atomic_add_explicit(&vq->completed, n, &orig, memory_order_release);
}

/* The most bursts of packets that one completion poll harvests. */
#define VHOST_DMA_POLL_ROUNDS 8

/* Harvests the completions of 'txq' on channel 'dma_id': at most 'rounds'
 * bursts (up to VHOST_DMA_POLL_ROUNDS), in one call to vhost.  Any thread
 * may call it (see the top of the file); a PMD thread accounts for the
 * cycles.  Returns the number of packets completed.
 *
 * One call, because each call that completes packets notifies the guest
 * (in DPDK 22.11, vhost_poll_enqueue_completed() writes the used ring and
 * calls vhost_vring_call_split() or vhost_vring_call_packed(), which
 * signal the guest's call eventfd unless it asked not to be): so a poll
 * notifies the guest once at most, however much it completes.  The call
 * looks at up to VHOST_DMA_MAX_COPY_COMPLETE (128) of the engine's
 * completed copies; what it leaves, the next poll takes. */
static uint32_t
vd_poll(struct netdev_vhost_dma *vd, int vid, int txq, int dma_id,
        int rounds)
{
    struct pmd_dma_thread *pmd = pmd_dma_current();
    uint64_t start = rte_get_tsc_cycles();
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    struct rte_mbuf *pkts[VHOST_DMA_BURST * VHOST_DMA_POLL_ROUNDS];
    uint32_t done;

    if (!vd_flag(&vq->registered)) {
        /* Torn down: destroy_device clears what was in flight. */
        return 0;
    }
    rounds = MAX(1, MIN(rounds, VHOST_DMA_POLL_ROUNDS));
    /* A trylock: 0 may also mean that the virtqueue is busy. */
    done = rte_vhost_poll_enqueue_completed(vid, txq * 2, pkts,
                                            VHOST_DMA_BURST * rounds,
                                            dma_id, 0);
    vd_complete(vq, pkts, done, false);

    if (pmd) {
        pmd_dma_count(pmd, PMD_DMA_COMPLETED, done);
        pmd_dma_port_count(pmd_dma_port_get(pmd, vd->port_id, vd->name),
                           done ? PMD_DMA_COST_COMPLETE
                                : PMD_DMA_COST_EMPTY_POLL,
                           rte_get_tsc_cycles() - start, done);
    }
    return done;
}

/* Polls each channel of 'channels' once for 'txq'.  Returns the number of
 * packets completed. */
static uint32_t
vd_poll_channels(struct netdev_vhost_dma *vd, int vid, int txq,
                 uint64_t channels, int rounds)
{
    uint32_t done = 0;

    for (uint64_t c = channels; c; c = zero_rightmost_1bit(c)) {
        done += vd_poll(vd, vid, txq, raw_ctz(c), rounds);
    }
    return done;
}

/* A duration, in milliseconds, that a test may set through an environment
 * variable (1 to 10000), read once.  vd_knob_ms() returns it: 'dflt' if
 * 'var' is not set or out of range; it logs "WHAT N ms (VAR)" when the
 * variable is used. */
struct vd_knob {
    const char *var;
    int dflt;
    const char *what;
    struct ovsthread_once once;
    int ms;
};

#define VD_KNOB_INITIALIZER(VAR, DFLT, WHAT) \
    { VAR, DFLT, WHAT, OVSTHREAD_ONCE_INITIALIZER, 0 }

static int
vd_knob_ms(struct vd_knob *knob)
{
    if (ovsthread_once_start(&knob->once)) {
        const char *s = getenv(knob->var);
        int n;

        knob->ms = knob->dflt;
        if (s && str_to_int(s, 10, &n) && n >= 1 && n <= 10000) {
            VLOG_INFO("%s %d ms (%s)", knob->what, n, knob->var);
            knob->ms = n;
        }
        ovsthread_once_done(&knob->once);
    }
    return knob->ms;
}

/* Returns how long a thread waits for copies in flight ahead of packets it
 * must not let overtake them: VHOST_DMA_ORDER_WAIT_MS, or for tests, the
 * OVS_VHOST_DMA_ORDER_WAIT_MS environment variable, which lets a test stop
 * the engine for longer than that and resume it while a thread waits. */
static int
vd_order_wait_ms(void)
{
    static struct vd_knob knob = VD_KNOB_INITIALIZER(
        "OVS_VHOST_DMA_ORDER_WAIT_MS", VHOST_DMA_ORDER_WAIT_MS,
        "copies in flight are waited for up to");

    return vd_knob_ms(&knob);
}

/* Returns how long a clear waits for copies in flight before it abandons
 * them (see vd_clear_vq()): VHOST_DMA_CLEAR_TIMEOUT_MS, or for tests, the
 * OVS_VHOST_DMA_CLEAR_TIMEOUT_MS environment variable, which widens the
 * window in which a test acts on an engine while a clear waits for it. */
static int
vd_clear_timeout_ms(void)
{
    static struct vd_knob knob = VD_KNOB_INITIALIZER(
        "OVS_VHOST_DMA_CLEAR_TIMEOUT_MS", VHOST_DMA_CLEAR_TIMEOUT_MS,
        "copies in flight are cleared within");

    return vd_knob_ms(&knob);
}

/* For tests: while the file named by the OVS_VHOST_DMA_NEW_DEVICE_HOLD
 * environment variable exists, netdev_vhost_dma_new_device() waits once it
 * set up a connection, before it returns (at most a minute).  That holds
 * open the window in which a thread that saw the connection before the
 * offload was done with it could send (none can: netdev-dpdk publishes the
 * vid after new_device returns), for as long as a test needs to send in it,
 * however slow the machine. */
static void
vd_new_device_hold(const struct netdev_vhost_dma *vd, int vid)
{
    static struct ovsthread_once once = OVSTHREAD_ONCE_INITIALIZER;
    static const char *file;

    if (ovsthread_once_start(&once)) {
        file = getenv("OVS_VHOST_DMA_NEW_DEVICE_HOLD");
        ovsthread_once_done(&once);
    }
    if (!file || access(file, F_OK)) {
        return;
    }

    VLOG_INFO("%s: new_device set up vid %d; held while %s exists",
              vd->name, vid, file);
    for (int i = 0; i < 6000 && !access(file, F_OK); i++) {
        xnanosleep_no_quiesce(10 * 1000 * 1000);
    }
    VLOG_INFO("%s: new_device released", vd->name);
}

/* Completes the copies of 'txq' up to copy number 'mark', polling every
 * channel they may be on, for at most 'wait_ms' milliseconds (none: one
 * pass).  The calling thread depends on no other thread for that, so it
 * may hold the txq's 'tx_lock'.  A thread that is not a PMD thread yields
 * the CPU between passes: the DMA engine may share it.  Returns true if
 * they are all complete. */
static bool
vd_complete_up_to(struct netdev_vhost_dma *vd, int vid, int txq,
                  uint64_t mark, int wait_ms)
{
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    long long int deadline = LLONG_MIN;

    while (vd_pending(vq, mark)) {
        vd_poll_channels(vd, vid, txq, vd_read(&vq->channels),
                         VHOST_DMA_POLL_ROUNDS);
        if (!vd_pending(vq, mark)) {
            break;
        }
        if (deadline == LLONG_MIN) {
            if (!wait_ms) {
                return false;
            }
            COVERAGE_INC(vhost_dma_order_wait);
            deadline = time_msec() + wait_ms;
        } else if (time_msec() > deadline) {
            return false;
        }
        if (!pmd_dma_current()) {
            sched_yield();
        }
    }
    return true;
}

/* dw_ops 'poll': completes the copies of one txq up to 'mark', those of the
 * calling PMD thread, without waiting.  The thread's own channels come
 * first; if they give nothing while copies up to 'mark' are still in
 * flight, those are on other channels (another thread's, or one this
 * thread used before) and it polls those too. */
static unsigned int
vhost_dma_dw_poll(void *vd_, uint32_t txq, uint64_t mark, bool drain)
{
    struct netdev_vhost_dma *vd = vd_;
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    int rounds = drain ? VHOST_DMA_POLL_ROUNDS : 1;
    uint64_t channels, own;
    int vid;

    atomic_read_relaxed(&vd->vid, &vid);
    if (vid < 0 || !vd_pending(vq, mark)) {
        /* Done, or the guest went away: destroy_device cleared its
         * copies. */
        return 0;
    }
    channels = vd_read(&vq->channels);
    own = channels & dpdk_dma_thread_owned();
    if (!vd_poll_channels(vd, vid, txq, own, rounds)
        && vd_pending(vq, mark)) {
        vd_poll_channels(vd, vid, txq, channels & ~own, rounds);
    }
    return vd_pending(vq, mark);
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

/* Returns the copies of 'txq' that vhost has in flight, or -1 if it cannot
 * tell (not registered, or busy: the thread-safe call is a trylock).
 * 'locked': the caller holds the virtqueue's lock. */
static int
vd_vhost_inflight(int vid, int txq, bool locked)
{
    return (locked ? rte_vhost_async_get_inflight_thread_unsafe
                   : rte_vhost_async_get_inflight)(vid, txq * 2);
}

/* Logs the state of the guest's Rx vring of 'txq' as vhost and the guest
 * see it, and this module's copy numbers: what it takes to tell a stuck
 * engine from lost bookkeeping. */
static void
vd_log_vring(const struct netdev_vhost_dma *vd, int vid, int txq)
{
    static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 5);
    const struct vhost_dma_vq *vq = &vd->vqs[txq];
    uint16_t last_avail = 0, last_used = 0;
    struct rte_vhost_vring vring;

    if (rte_vhost_get_vhost_vring(vid, txq * 2, &vring)
        || !vring.avail || !vring.used) {
        return;
    }
    rte_vhost_get_vring_base(vid, txq * 2, &last_avail, &last_used);
    VLOG_INFO_RL(&rl, "%s: txq %d: vring of %"PRIu16" descriptors, avail "
                 "index %"PRIu16" (vhost at %"PRIu16"), used index %"PRIu16
                 " (vhost at %"PRIu16"); copies submitted %"PRIu64", "
                 "completed %"PRIu64, vd->name, txq, vring.size,
                 vring.avail->idx, last_avail, vring.used->idx, last_used,
                 vd_seq(&vq->submitted), vd_seq(&vq->completed));
}

/* Finishes every copy in flight on 'txq' of device 'vid', polling each
 * channel it used, within vd_clear_timeout_ms(): guest memory may go
 * away when the caller returns.  'locked' says whether the caller holds
 * the virtqueue's lock (see the top of the file); then vhost's own count
 * says what is in flight, since senders may be waiting for the lock with
 * 'submitted' already raised.
 *
 * If copies are still in flight at the deadline, the engine is stuck:
 * waiting longer would hang the vhost thread, and with it every guest.
 * The copies are abandoned: vhost keeps their mbufs (they may still be
 * read), they are counted in 'errors', the devices that still have copies
 * outstanding and completed none meanwhile are taken out of service (a
 * device shared with other queues may be busy with their copies, not
 * stuck), and the virtqueue is marked wedged, so that senders drop at once
 * instead of waiting for copies that may never complete, until the next
 * guest connection starts afresh.
 * Returns false in that case. */
static bool
vd_clear_vq(struct netdev_vhost_dma *vd, int vid, int txq, bool locked)
{
    static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 5);
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    long long int deadline = time_msec() + vd_clear_timeout_ms();
    struct rte_mbuf *pkts[VHOST_DMA_BURST];
    uint64_t channels = vd_read(&vq->channels);
    uint64_t completed[DPDK_DMA_MAX_DEVS];
    int n_inflight;

    if (vd_flag(&vq->wedged)) {
        /* Abandoned already: waiting again would not help. */
        return false;
    }
    dpdk_dma_read_completed(channels, completed);
    for (;;) {
        n_inflight = vd_vhost_inflight(vid, txq, locked);
        if (n_inflight < 0 && (locked || !vd_inflight(vq))) {
            /* Not registered (locked), or nothing in flight as far as
             * this module knows while vhost is busy. */
            return true;
        } else if (!n_inflight) {
            return true;
        }
        for (uint64_t c = channels; c; c = zero_rightmost_1bit(c)) {
            uint16_t n;

            n = (locked ? rte_vhost_clear_queue_thread_unsafe
                        : rte_vhost_clear_queue)(vid, txq * 2, pkts,
                                                 VHOST_DMA_BURST,
                                                 raw_ctz(c), 0);
            if (n > VHOST_DMA_BURST) {
                /* (uint16_t) -1: called without the lock after all.  The
                 * lock context comes from the DPDK source, so this is a
                 * bug: never loop on it. */
                COVERAGE_INC(vhost_dma_call_failed);
                VLOG_ERR_RL(&rl, "%s: vhost refused to clear txq %d",
                            vd->name, txq);
                n = 0;
                locked = false;
            }
            vd_complete(vq, pkts, n, true);
        }
        if (time_msec() >= deadline) {
            break;
        }
    }

    if (n_inflight < 0) {
        /* vhost was busy at the last look: this module's own count. */
        n_inflight = vd_inflight(vq);
    }
    COVERAGE_INC(vhost_dma_clear_timeout);
    vd_count(&vq->errors, n_inflight);
    atomic_store_explicit(&vq->wedged, true, memory_order_release);
    VLOG_WARN_RL(&rl, "%s: %d DMA copies of txq %d did not complete in %d "
                 "ms: abandoned; taking stuck DMA devices out of service",
                 vd->name, n_inflight, txq, vd_clear_timeout_ms());
    vd_log_vring(vd, vid, txq);
    if (!dpdk_dma_fail_stuck(channels, completed)) {
        VLOG_WARN_RL(&rl, "%s: the DMA devices of txq %d completed copies "
                     "meanwhile, or every copy they were given: vhost lost "
                     "track of these", vd->name, txq);
    }
    return false;
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

/* Zeroes the statistics of 'vq' for a new guest connection: vhost counts
 * the packets of each connection ('tx_packets') from 0 (a connection gets
 * new virtqueues, whose counters init_vring_queue() in DPDK 22.11's
 * lib/vhost/vhost.c zeroes; a device stopped by GET_VRING_BASE and started
 * again keeps them), and the invariant tx_packets = tx_dma_packets +
 * tx_cpu_packets must hold for any of them.  No thread sends to the guest
 * yet (see netdev_vhost_dma_new_device()). */
static void
vd_reset_stats(struct vhost_dma_vq *vq)
{
    atomic_uint64_t *counters[] = {
        &vq->dma_packets, &vq->dma_bytes, &vq->cpu_packets, &vq->ring_full,
        &vq->no_channel, &vq->cleared, &vq->errors, &vq->overflow,
    };

    for (size_t i = 0; i < ARRAY_SIZE(counters); i++) {
        atomic_store_relaxed(counters[i], 0);
    }
}

/* Starts the accounting of 'txq' afresh for a new connection or a new
 * virtqueue: whatever was in flight was cleared (or abandoned) when the
 * previous one went away, except the copies that vhost still has, 'n'. */
static void
vd_rebase_vq(struct vhost_dma_vq *vq, uint32_t n)
{
    uint64_t submitted = vd_seq(&vq->submitted);

    atomic_store_explicit(&vq->completed, submitted - MIN(n, submitted),
                          memory_order_release);
    atomic_store_relaxed(&vq->wedged, false);
}

/* Registers the async channel of the guest's Rx virtqueue of 'txq'.
 * 'locked': the caller holds the virtqueue's lock (see the top of the
 * file).  Returns false if vhost refused: the virtqueue is not set up. */
static bool
vd_register_vq(struct netdev_vhost_dma *vd, int vid, int txq, bool locked)
{
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    int inflight = 0;
    int err;

    if (vd_flag(&vq->registered)) {
        return true;
    }
    err = (locked ? rte_vhost_async_channel_register_thread_unsafe
                  : rte_vhost_async_channel_register)(vid, txq * 2);
    if (err) {
        /* Registered already, if vhost can tell what it has in flight: a
         * guest that reset the device without closing the socket keeps its
         * virtqueues. */
        inflight = vd_vhost_inflight(vid, txq, locked);
        if (inflight < 0) {
            return false;
        }
    }
    vd_rebase_vq(vq, inflight);
    atomic_store_explicit(&vq->registered, true, memory_order_release);
    return true;
}

void
netdev_vhost_dma_new_device(struct netdev_vhost_dma *vd, int vid)
{
    bool new_connection;
    bool async;
    int n_txq;

    if (!vd || vid < 0 || vid >= VHOST_DMA_MAX_VID) {
        return;
    }
    atomic_read_relaxed(&vd->socket_async, &async);
    if (!async) {
        return;
    }
    /* From now on, vring_state_changed can tell its lock context. */
    if (rte_vhost_extern_callback_register(vid, &vd_msg_ops, NULL)) {
        VLOG_WARN("%s: cannot follow the vhost-user messages of the guest; "
                  "using CPU copies", vd->name);
        return;
    }
    ovs_mutex_lock(&by_vid_mutex);
    by_vid[vid] = vd;
    ovs_mutex_unlock(&by_vid_mutex);

    /* The guest's Rx virtqueues are the even ones, one per txq.  Whatever
     * an earlier connection left in flight is gone with it; publishing the
     * vid before any virtqueue is registered (and so used) means that
     * deferred work of this connection always finds it. */
    n_txq = MIN((rte_vhost_get_vring_num(vid) + 1) / 2, VHOST_DMA_MAX_TXQ);
    atomic_read_relaxed(&vd->new_connection, &new_connection);
    atomic_store_relaxed(&vd->new_connection, false);
    for (int txq = 0; txq < MAX(n_txq, vd_max_txq(vd)); txq++) {
        if (new_connection) {
            /* Copies abandoned on a stuck engine went with the last
             * connection's virtqueues: its channels are no longer this
             * virtqueue's to poll or clear. */
            vd_reset_stats(&vd->vqs[txq]);
            atomic_store_relaxed(&vd->vqs[txq].channels, 0);
        }
        vd_rebase_vq(&vd->vqs[txq], 0);
    }
    if (n_txq > vd_max_txq(vd)) {
        atomic_store_relaxed(&vd->max_txq, n_txq);
    }
    atomic_store_explicit(&vd->vid, vid, memory_order_release);
    for (int txq = 0; txq < n_txq; txq++) {
        if (!vd_register_vq(vd, vid, txq, false)) {
            /* Not set up yet: registered when the guest enables it. */
            VLOG_DBG("%s: txq %d is not ready yet", vd->name, txq);
        }
    }
    vd_new_device_hold(vd, vid);
}

/* Runs on DPDK's vhost thread, in destroy_connection, which
 * vhost_user_read_cb() (lib/vhost/socket.c, DPDK 22.11) calls once the
 * connection is closed, after vhost_destroy_device_notify(): no virtqueue
 * lock is held. */
void
netdev_vhost_dma_connection_closed(struct netdev_vhost_dma *vd)
{
    if (vd) {
        atomic_store_relaxed(&vd->new_connection, true);
    }
}

bool
netdev_vhost_dma_vring_state_changed(int vid, uint16_t queue_id, int enable)
{
    static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 5);
    struct vd_msg *m = vd_msg_get();
    bool known = m->vid == vid;
    bool locked = known && vd_request_locks_vqs(m->request);
    /* vhost_user_set_mem_table() of an async device notifies every vring
     * as disabled before it unmaps guest memory and as enabled after it
     * mapped the new memory, whatever the guest asked for: also before
     * new_device, when no port knows 'vid' yet. */
    bool mem_table = (known && m->request == VD_REQ_SET_MEM_TABLE
                      && vd_mem_table_note(m, vid, queue_id, enable));
    struct netdev_vhost_dma *vd = vd_by_vid(vid);
    int txq = queue_id / 2;

    if (mem_table) {
        COVERAGE_INC(vhost_dma_mem_table);
    }
    if (!vd || queue_id % 2 || txq >= VHOST_DMA_MAX_TXQ) {
        return !mem_table;
    }
    if (!known) {
        /* new_connection registered vd_msg_ops for this vid, so this does
         * not happen.  Without the lock context, do nothing that could
         * deadlock. */
        VLOG_WARN_RL(&rl, "%s: vring %"PRIu16" %s outside of any vhost-user "
                     "message", vd->name, queue_id,
                     enable ? "enabled" : "disabled");
    }
    if (enable) {
        if (!mem_table && known) {
            /* A queue the guest set up after new_device. */
            if (txq >= vd_max_txq(vd)) {
                atomic_store_relaxed(&vd->max_txq, txq + 1);
            }
            if (!vd_register_vq(vd, vid, txq, locked)) {
                COVERAGE_INC(vhost_dma_call_failed);
                VLOG_WARN_RL(&rl, "%s: cannot register the async channel of "
                             "txq %d; using CPU copies", vd->name, txq);
            }
        }
    } else if (vd_inflight(&vd->vqs[txq])
               || (locked && vd_vhost_inflight(vid, txq, true) > 0)) {
        /* Guest memory may go away when this returns. */
        vd_clear_vq(vd, vid, txq, locked);
    }
    return !mem_table;
}

void
netdev_vhost_dma_destroy_device(int vid)
{
    struct netdev_vhost_dma *vd = NULL;

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

    /* No thread starts a submission or a poll for this guest after this:
     * deferred work checks 'vid', senders 'registered'.  Once every thread
     * quiesced, none is still inside one.  (The main thread is quiescent
     * while it waits for this callback in rte_vhost_driver_unregister(), see
     * dpdk_vhost_driver_unregister() in netdev-dpdk.) */
    atomic_store_explicit(&vd->vid, -1, memory_order_release);
    for (int txq = 0; txq < vd_max_txq(vd); txq++) {
        atomic_store_explicit(&vd->vqs[txq].registered, false,
                              memory_order_release);
    }
    ovsrcu_synchronize();
    ovsrcu_quiesce_start();

    for (int txq = 0; txq < vd_max_txq(vd); txq++) {
        struct vhost_dma_vq *vq = &vd->vqs[txq];

        if (vd_clear_vq(vd, vid, txq, false)) {
            atomic_store_relaxed(&vq->channels, 0);
        }
        /* Fails for a virtqueue that was never registered, harmlessly, and
         * for one with copies abandoned, which vhost then frees with the
         * device, or keeps for a guest that only reset it. */
        rte_vhost_async_channel_unregister(vid, txq * 2);
    }
    vd_unref(vd);
}

struct netdev_vhost_dma *
netdev_vhost_dma_teardown_start(struct netdev_vhost_dma *vd)
{
    uint32_t orig;

    if (vd) {
        vd_ref(vd);
        atomic_add_explicit(&vd->teardowns, 1, &orig, memory_order_release);
    }
    return vd;
}

void
netdev_vhost_dma_teardown_end(struct netdev_vhost_dma *vd)
{
    uint32_t orig;

    if (vd) {
        atomic_store_relaxed(&vd->teardown_end, time_msec());
        atomic_sub_explicit(&vd->teardowns, 1, &orig, memory_order_release);
        vd_unref(vd);
    }
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
 * delivered, counted as ring full: vhost's CPU copy fails only when the
 * guest's ring has no room (or the guest disabled it). */
static int
vd_cpu_send(struct netdev_vhost_dma *vd, struct pmd_dma_thread *pmd,
            int vid, int txq, struct rte_mbuf **pkts, int cnt)
{
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    uint64_t start = rte_get_tsc_cycles();
    int sent = 0, calls = 0;

    for (; sent < cnt && calls < 8; calls++) {
        /* Each call that delivers notifies the guest (DPDK 22.11:
         * virtio_dev_rx_split() calls vhost_vring_call_split()). */
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
    vd_count(&vq->ring_full, cnt - sent);
    COVERAGE_ADD(vhost_dma_cpu_copy, sent);
    COVERAGE_ADD(vhost_dma_ring_full, cnt - sent);
    if (pmd) {
        pmd_dma_count(pmd, PMD_DMA_CPU_FALLBACK, sent);
        pmd_dma_count(pmd, PMD_DMA_RING_FULL, cnt - sent);
        /* Each enqueue that delivered counts as a call; if none did, the
         * attempt counts as one refused call. */
        pmd_dma_port_count_calls(pmd_dma_port_get(pmd, vd->port_id,
                                                  vd->name),
                                 sent ? PMD_DMA_COST_CPU
                                      : PMD_DMA_COST_REFUSED,
                                 MAX(calls, 1), rte_get_tsc_cycles() - start,
                                 sent);
    }
    return cnt - sent;
}

/* Drops 'cnt' packets, counting them as 'why' (PMD_DMA_RING_FULL or
 * PMD_DMA_ERRORS) in 'vq' and in 'pmd'.  Returns 'cnt'. */
static int
vd_drop(struct vhost_dma_vq *vq, struct pmd_dma_thread *pmd,
        enum pmd_dma_counter why, struct rte_mbuf **pkts, int cnt)
{
    for (int i = 0; i < cnt; i++) {
        rte_pktmbuf_free(pkts[i]);
    }
    pmd_dma_count(pmd, why, cnt);
    if (why == PMD_DMA_RING_FULL) {
        vd_count(&vq->ring_full, cnt);
        COVERAGE_ADD(vhost_dma_ring_full, cnt);
    } else {
        vd_count(&vq->errors, cnt);
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

/* Submits 'cnt' packets to channel 'dma_id' and records the pending
 * completions in 'dwq'.  The caller holds the txq's 'tx_lock'.  Returns how
 * many vhost accepted; those belong to vhost until they complete. */
static int
vd_submit(struct netdev_vhost_dma *vd, struct dw_queue *dwq,
          struct pmd_dma_thread *pmd, int vid, int txq, int dma_id,
          struct rte_mbuf **pkts, int cnt)
{
    static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 5);
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    uint64_t start = rte_get_tsc_cycles();
    uint64_t bit = UINT64_C(1) << dma_id;
    uint64_t submitted, orig;
    uint16_t n;

    /* Published before vhost takes the virtqueue's lock: see the top of
     * the file. */
    if (OVS_UNLIKELY(!(vd_read(&vq->channels) & bit))) {
        atomic_or_relaxed(&vq->channels, bit, &orig);
    }
    submitted = vd_seq(&vq->submitted);
    atomic_store_explicit(&vq->submitted, submitted + cnt,
                          memory_order_release);
    n = rte_vhost_submit_enqueue_burst(vid, txq * 2, pkts, cnt, dma_id, 0);
    if (n < cnt) {
        atomic_store_explicit(&vq->submitted, submitted + n,
                              memory_order_release);
    }
    if (n) {
        COVERAGE_ADD(vhost_dma_submit, n);
        pmd_dma_count(pmd, PMD_DMA_SUBMITTED, n);
        if (!dw_queue_add(dwq, &vhost_dma_dw_ops, vd, txq, n,
                          submitted + n)) {
            /* The thread's queue is full, which only a queue capped for
             * tests is (pmd_dma_thread_start() lets it grow otherwise):
             * complete these copies now, within a bound, depending on no
             * other thread.  What is left completes with the next send to
             * this txq, or when the guest goes away. */
            COVERAGE_INC(vhost_dma_defer_full);
            pmd_dma_count(pmd, PMD_DMA_FORCED_POLLS, 1);
            if (!vd_complete_up_to(vd, vid, txq, submitted + n,
                                   vd_order_wait_ms())) {
                VLOG_WARN_RL(&rl, "%s: deferred-work queue full and copies "
                             "of txq %d still in flight", vd->name, txq);
            }
        }
    }
    if (pmd) {
        /* The packets are counted when their copies complete. */
        pmd_dma_port_count(pmd_dma_port_get(pmd, vd->port_id, vd->name),
                           n ? PMD_DMA_COST_SUBMIT : PMD_DMA_COST_REFUSED,
                           rte_get_tsc_cycles() - start, 0);
    }
    return n;
}

/* Waits, up to the order wait, for every copy of 'txq' in flight to
 * complete, before packets that must not overtake them.  Returns true if
 * they did.  A wait that timed out is remembered: until the engines
 * complete a copy of 'txq', later calls only poll once, since waiting
 * again would stall the PMD thread (and every thread waiting for this
 * txq's 'tx_lock', which the caller holds) for nothing. */
static bool
vd_wait_inflight(struct netdev_vhost_dma *vd, int vid, int txq)
{
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    bool wait = !vq->stalled
                || vd_seq(&vq->completed) != vq->stalled_completed;
    bool done = vd_complete_up_to(vd, vid, txq, vd_seq(&vq->submitted),
                                  wait ? vd_order_wait_ms() : 0);

    if (done) {
        vq->stalled = false;
    } else if (wait) {
        vq->stalled = true;
        vq->stalled_completed = vd_seq(&vq->completed);
    }
    return done;
}

/* Copies 'cnt' packets of 'txq' with the CPU because the DMA engine is
 * full (see vd_overflow()), once the copies in flight ahead of them are
 * complete.  Returns the number not delivered: the CPU copy fails too when
 * it is the guest's ring that is full. */
static int
vd_overflow_send(struct netdev_vhost_dma *vd, struct pmd_dma_thread *pmd,
                 int vid, int txq, struct rte_mbuf **pkts, int cnt)
{
    struct vhost_dma_vq *vq = &vd->vqs[txq];
    int dropped;

    if (!vd_wait_inflight(vd, vid, txq)) {
        return vd_drop(vq, pmd, PMD_DMA_RING_FULL, pkts, cnt);
    }
    dropped = vd_cpu_send(vd, pmd, vid, txq, pkts, cnt);
    vd_count(&vq->overflow, cnt - dropped);
    COVERAGE_ADD(vhost_dma_overflow, cnt - dropped);
    return dropped;
}

/* Returns true if 'cnt' more copies on 'vq' keep 'vd' within its share of
 * the mbufs reserved for copies in flight.  Each virtqueue has an equal
 * share, which holds without looking at the others; beyond it, the sum
 * over the port's virtqueues decides.  (Senders of different virtqueues
 * may pass at the same time: the port may exceed the reserve by a burst
 * per PMD thread, which the mempools' slack covers.) */
static bool
vd_within_reserve(const struct netdev_vhost_dma *vd,
                  const struct vhost_dma_vq *vq, int cnt)
{
    int n_txq = MAX(vd_max_txq(vd), 1);
    uint64_t total = cnt;

    if (vd_inflight(vq) + cnt <= VHOST_DMA_MBUFS_PER_PORT / n_txq) {
        return true;
    }
    for (int txq = 0; txq < n_txq; txq++) {
        total += vd_inflight(&vd->vqs[txq]);
    }
    return total <= VHOST_DMA_MBUFS_PER_PORT;
}

/* The DMA engine is not keeping up with 'txq': a submission was refused
 * even after a harvest, and either the engine has fewer than
 * VHOST_DMA_ENGINE_ROOM descriptors free or at least as many copies of
 * 'txq' are in flight (they hold the guest's ring until they complete).
 * The CPU could still deliver the packets, so rather than drop them, 'txq'
 * switches to CPU copies for a while, once what is in flight completed
 * (the order is kept).  (With few copies in flight and room in the engine,
 * it is the guest that does not take its packets: a CPU copy would fail
 * too, so those are dropped as 'ring_full' and nothing switches.)  The
 * period doubles each time the engine overflows again soon after the
 * previous one ended, from VHOST_DMA_OVERFLOW_MIN_US up to
 * VHOST_DMA_OVERFLOW_MAX_US, and starts over once DMA ran without overflow
 * for four periods: at a load the engine does not sustain, the queue
 * settles on the CPU with a short DMA try now and then, and at one it
 * sustains, on DMA.
 *
 * A try must be short.  Before the CPU may copy again, the copies of the
 * try must complete (the order is kept), and the thread waits for them,
 * holding the txq's 'tx_lock': a try that filled the engine's ring held
 * the thread, and every port it polls, for as long as the engine takes to
 * work through it (tens of milliseconds for a software engine on a shared
 * core, often more than the order wait, after which packets are dropped).
 * So a try starts with a window of VHOST_DMA_PROBE_WINDOW copies in
 * flight, which doubles each time the engine completed all that was in
 * flight by the time the next burst comes, up to VHOST_DMA_WINDOW_MAX,
 * beyond which the window is lifted; a burst that finds the window full is
 * an overflow again.  The holder of the txq's 'tx_lock' calls this. */
static void
vd_overflow(struct vhost_dma_vq *vq, struct pmd_dma_thread *pmd)
{
    uint64_t now = rte_get_tsc_cycles();
    uint64_t us = rte_get_tsc_hz() / 1000000;

    if (!vq->backoff || now - vq->dma_since > 4 * vq->backoff) {
        vq->backoff = VHOST_DMA_OVERFLOW_MIN_US * us;
    } else {
        vq->backoff = MIN(2 * vq->backoff, VHOST_DMA_OVERFLOW_MAX_US * us);
    }
    vq->cpu_until = now + vq->backoff;
    vq->window = VHOST_DMA_PROBE_WINDOW;
    pmd_dma_count(pmd, PMD_DMA_OVERFLOWS, 1);
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
    int dma_id = -1;
    int sent;

    if (OVS_UNLIKELY(!cnt)) {
        return 0;
    }
    /* netdev-dpdk's vhost txqs are below OVS_VHOST_MAX_QUEUE_NUM. */
    ovs_assert(txq < VHOST_DMA_MAX_TXQ);
    vq = &vd->vqs[txq];

    if (OVS_UNLIKELY(vd_flag(&vq->wedged))) {
        /* Copies abandoned on this virtqueue may never complete: nothing
         * can be delivered in order behind them. */
        return vd_drop(vq, pmd, PMD_DMA_ERRORS, pkts, cnt);
    }
    if (dwq && vd_flag(&vq->registered) && vd->mode != NETDEV_VHOST_DMA_OFF) {
        /* A device on the PMD thread's NUMA node, preferably, shared with
         * other threads if there are not enough. */
        dma_id = dpdk_dma_thread_get_channel(
            vd->mode == NETDEV_VHOST_DMA_LIST ? vd->allowed : 0,
            pmd_dma_numa_id(pmd));
        pmd_dma_note_channel(pmd, dma_id);
    }
    atomic_read_relaxed(&vd->threshold, &threshold);
    if (dma_id < 0 || vd_below_threshold(pkts, cnt, threshold)) {
        /* The CPU copy is order-safe only if nothing of this virtqueue is in
         * flight.  With no channel there is no other way: complete what is
         * in flight first, waiting a little if need be.  Short packets may
         * as well go through DMA behind copies in flight. */
        bool idle = (dma_id < 0
                     ? vd_wait_inflight(vd, vid, txq)
                     : vd_complete_up_to(vd, vid, txq,
                                         vd_seq(&vq->submitted), 0));

        if (dma_id < 0) {
            int dropped;

            if (!idle) {
                /* The copies ahead did not complete in time: a stuck
                 * engine.  A CPU copy would overtake them. */
                VLOG_WARN_RL(&rl, "%s: txq %d: no DMA channel and copies "
                             "in flight did not complete: dropping %d "
                             "packets", vd->name, txq, cnt);
                return vd_drop(vq, pmd, PMD_DMA_ERRORS, pkts, cnt);
            }
            dropped = vd_cpu_send(vd, pmd, vid, txq, pkts, cnt);
            vd_count(&vq->no_channel, cnt - dropped);
            pmd_dma_count(pmd, PMD_DMA_NO_CHANNEL, cnt - dropped);
            COVERAGE_ADD(vhost_dma_no_channel, cnt - dropped);
            return dropped;
        }
        if (idle) {
            return vd_cpu_send(vd, pmd, vid, txq, pkts, cnt);
        }
    }

    if (OVS_UNLIKELY(vq->cpu_until)) {
        uint64_t now = rte_get_tsc_cycles();

        if (now < vq->cpu_until) {
            return vd_overflow_send(vd, pmd, vid, txq, pkts, cnt);
        }
        vq->cpu_until = 0;
        vq->dma_since = now;
    }
    if (OVS_UNLIKELY(vq->window)) {
        uint32_t inflight = vd_inflight(vq);

        if (!inflight) {
            /* The engine kept up with the window so far. */
            vq->window = (vq->window >= VHOST_DMA_WINDOW_MAX
                          ? 0 : 2 * vq->window);
        }
        if (vq->window && inflight + cnt > vq->window) {
            vd_overflow(vq, pmd);
            return vd_overflow_send(vd, pmd, vid, txq, pkts, cnt);
        }
    }
    if (OVS_UNLIKELY(!vd_within_reserve(vd, vq, cnt))) {
        /* As many packets wait for their copies as the mempools have room
         * for: more would starve the ports that receive. */
        COVERAGE_INC(vhost_dma_reserve_full);
        vd_overflow(vq, pmd);
        return vd_overflow_send(vd, pmd, vid, txq, pkts, cnt);
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
        if (vd_inflight(vq) < VHOST_DMA_ENGINE_ROOM
            && dpdk_dma_free_descriptors(dma_id) >= VHOST_DMA_ENGINE_ROOM) {
            /* Few copies hold the guest's ring and the engine has room:
             * the guest's ring is full of packets the guest did not take
             * yet, and a CPU copy would fail as well. */
            return vd_drop(vq, pmd, PMD_DMA_RING_FULL, pkts + sent,
                           cnt - sent);
        }
        vd_overflow(vq, pmd);
        return vd_overflow_send(vd, pmd, vid, txq, pkts + sent, cnt - sent);
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
        "tx_dma_cleared", "tx_dma_errors", "tx_dma_overflow",
    };
    uint64_t values[ARRAY_SIZE(names)] = { 0 };

    /* With tx-dma off the socket is not registered for async copies, the
     * counters are not reset for a new guest connection, and they would
     * describe an earlier one: the port shows none. */
    if (!netdev_vhost_dma_enabled(vd)) {
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
        values[8] += vd_read(&vq->overflow);
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
