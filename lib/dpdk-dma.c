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

/* The pool of DMA devices OVS owns.
 *
 * DPDK probes dmadevs like any other device: PCI devices bound to a DPDK
 * driver (I/OAT, DSA), or virtual devices such as the software
 * 'dma_skeleton'.  They come from other_config:dpdk-extra at initialization
 * or from other_config:dma-devices at any time.  The main thread configures
 * each with one memory-to-memory vchan of 'dma-ring-size' descriptors,
 * starts it (a device's own threads, like the skeleton's copy thread,
 * inherit the affinity of the thread that starts it: never a PMD) and
 * registers it with vhost.
 *
 * Users: 'users' in struct dma_dev lists the threads that submit copies to
 * a device.  A thread claims a device that no other thread uses if there is
 * one, so that its fast path meets no contention; when threads outnumber
 * devices, it shares the device with the fewest users.  Sharing is safe:
 * DPDK 22.11's vhost library is the only caller of the device's data path
 * (rte_dma_copy(), rte_dma_submit(), rte_dma_completed()) and serializes
 * each vchan with a lock of its own ('dma_lock' of struct
 * async_dma_vchan_info, taken by vhost_async_dma_transfer() and
 * vhost_async_dma_check_completed() in lib/vhost/virtio_net.c), and every
 * device here has a single vchan.  A thread claims devices under
 * 'dma_mutex' and keeps the mask of its devices in thread-local storage, so
 * its fast path reads only that and 'usable_mask' (started, not drained,
 * not failed), lock-free.  A thread key's destructor releases a thread's
 * devices when it exits; a thread that claims a device because those it
 * owns went out of service releases those.  When a device becomes free
 * (one more in service, or its last user gone), 'free_seq' changes, and a
 * thread that shares its device moves to the free one at its next look:
 * sharing lasts no longer than a shortage does.
 *
 * Failures: a device that reports copy errors (rte_dma_stats_get()) or
 * whose copies did not complete in time is taken out of service for good
 * (state "failed"): DPDK 22.11's vhost library logs DMA errors but never
 * consumes the failed operation, so nothing submitted after it completes.
 *
 * The dmadev API is experimental in DPDK 22.11, so this file enables it with
 * ALLOW_EXPERIMENTAL_API, as only the files that call it do. */

#define ALLOW_EXPERIMENTAL_API 1

#include <config.h>

#include "dpdk-dma.h"

#include <sched.h>

#include <rte_dev.h>
#include <rte_dmadev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_vhost_async.h>

#include "coverage.h"
#include "dpif-netdev-dma.h"
#include "netdev-vhost-dma.h"
#include "openvswitch/dynamic-string.h"
#include "openvswitch/vlog.h"
#include "ovs-atomic.h"
#include "ovs-thread.h"
#include "smap.h"
#include "sset.h"
#include "timeval.h"
#include "unixctl.h"
#include "util.h"

VLOG_DEFINE_THIS_MODULE(dpdk_dma);

COVERAGE_DEFINE(dpdk_dma_claim);
COVERAGE_DEFINE(dpdk_dma_claim_failed);
COVERAGE_DEFINE(dpdk_dma_claim_relief);
COVERAGE_DEFINE(dpdk_dma_claim_shared);
COVERAGE_DEFINE(dpdk_dma_failed);

#define DMA_RING_SIZE_DEFAULT 2048

struct dma_dev {
    bool known;                 /* In the pool. */
    bool started;               /* Configured, started, known to vhost. */
    bool drained;               /* Out of service (dpdk-dma/drain). */
    bool from_config;           /* Listed in other_config:dma-devices. */
    char *name;
    int numa_id;                /* As DPDK reports it, SOCKET_ID_ANY if it
                                 * cannot tell (virtual devices). */
    uint16_t ring_size;         /* Descriptors of vchan 0, once started. */
    char *error;                /* Why it could not be started, or NULL. */

    struct ovs_list users;      /* Threads using it: "struct dma_user"s. */
    uint64_t errors;            /* Copy errors the device reported. */
};

/* A thread that submits copies to a device. */
struct dma_user {
    struct ovs_list node;       /* In 'users' of struct dma_dev. */
    const struct dma_thread *thread;
    char *name;
    int cpu;
};

static struct ovs_mutex dma_mutex = OVS_MUTEX_INITIALIZER;
static struct dma_dev dma_devs[DPDK_DMA_MAX_DEVS] OVS_GUARDED_BY(dma_mutex);
static uint16_t dma_ring_size OVS_GUARDED_BY(dma_mutex)
    = DMA_RING_SIZE_DEFAULT;
static char *dma_devices_config OVS_GUARDED_BY(dma_mutex);

/* Devices that are started and not drained: a bit per dev_id. */
static atomic_uint64_t usable_mask = ATOMIC_VAR_INIT(0);

/* Changes when a device may have become free for a thread that shares one:
 * a device came into service or lost its last user. */
static atomic_uint32_t free_seq = ATOMIC_VAR_INIT(0);

/* The number of users of each device, for threads to read without
 * 'dma_mutex'. */
static atomic_uint32_t n_users[DPDK_DMA_MAX_DEVS];

/* What a thread owns. */
/* A claim that found no device: not tried again for the same device list
 * until 'usable_mask' changes or a second passed. */
struct dma_failed_claim {
    uint64_t allowed;           /* 'allowed' of the claim, */
    uint64_t usable;            /* 'usable_mask' then, */
    long long int next_claim;   /* and when to try again if unchanged. */
};

/* A thread remembers its last failed claims for this many device lists, so
 * that a thread sending to ports with different lists does not take
 * 'dma_mutex' for each burst. */
#define DMA_FAILED_CLAIMS 4

struct dma_thread {
    uint64_t owned;             /* Devices it owns, a bit per dev_id. */
    struct dma_failed_claim failed[DMA_FAILED_CLAIMS];
    unsigned int next_failed;   /* Slot of 'failed' to overwrite next. */
    unsigned int claims;        /* Claims tried, each under 'dma_mutex'. */
    uint32_t free_seq;          /* 'free_seq' at its last look. */
};

DEFINE_STATIC_PER_THREAD_DATA(struct dma_thread, dma_thread, { 0 });
static ovsthread_key_t dma_thread_key;

/* Names of the capabilities a dmadev reports, in the order of their bits. */
static const struct {
    uint64_t capa;
    const char *name;
} dma_capa_names[] = {
    { RTE_DMA_CAPA_MEM_TO_MEM, "mem2mem" },
    { RTE_DMA_CAPA_MEM_TO_DEV, "mem2dev" },
    { RTE_DMA_CAPA_DEV_TO_MEM, "dev2mem" },
    { RTE_DMA_CAPA_DEV_TO_DEV, "dev2dev" },
    { RTE_DMA_CAPA_SVA, "sva" },
    { RTE_DMA_CAPA_SILENT, "silent" },
    { RTE_DMA_CAPA_HANDLES_ERRORS, "handles-errors" },
    { RTE_DMA_CAPA_OPS_COPY, "copy" },
    { RTE_DMA_CAPA_OPS_COPY_SG, "copy-sg" },
    { RTE_DMA_CAPA_OPS_FILL, "fill" },
};

static void
dma_format_capa(struct ds *s, uint64_t capa)
{
    bool first = true;

    for (size_t i = 0; i < ARRAY_SIZE(dma_capa_names); i++) {
        if (capa & dma_capa_names[i].capa) {
            ds_put_format(s, "%s%s", first ? "" : ",", dma_capa_names[i].name);
            capa &= ~dma_capa_names[i].capa;
            first = false;
        }
    }
    if (capa) {
        ds_put_format(s, "%s0x%"PRIx64, first ? "" : ",", capa);
    }
}

/* Returns the name of the driver of the dmadev named 'dev_name', or "unknown"
 * if it is on none of the buses DMA devices are found on. */
static const char *
dma_driver_name(const char *dev_name)
{
    static const char *const buses[] = { "bus=vdev", "bus=pci", "bus=dsa" };
    const char *driver = "unknown";

    for (size_t i = 0; i < ARRAY_SIZE(buses); i++) {
        struct rte_dev_iterator it;
        struct rte_device *dev;

        /* rte_dev_iterator_init() returns -rte_errno even when it
         * succeeds, so a stale rte_errno would look like a failure. */
        rte_errno = 0;
        if (rte_dev_iterator_init(&it, buses[i])) {
            continue;
        }
        /* Iterate to the end, which frees the iterator's state. */
        while ((dev = rte_dev_iterator_next(&it)) != NULL) {
            const struct rte_driver *drv = rte_dev_driver(dev);

            if (drv && !strcmp(rte_dev_name(dev), dev_name)) {
                driver = rte_driver_name(drv);
            }
        }
    }
    return driver;
}

static void
dma_show_device(struct ds *s, int16_t dev_id)
    OVS_REQUIRES(dma_mutex)
{
    struct dma_dev *dev = &dma_devs[dev_id];
    struct rte_dma_info info;

    if (rte_dma_info_get(dev_id, &info)) {
        ds_put_format(s, "dev_id %"PRId16": no information available\n",
                      dev_id);
        return;
    }
    ds_put_format(s, "%s:\n", info.dev_name);
    ds_put_format(s, "  dev_id: %"PRId16", driver: %s, numa_id: %d\n",
                  dev_id, dma_driver_name(info.dev_name),
                  dev->known ? dev->numa_id : info.numa_node);
    ds_put_cstr(s, "  capabilities: ");
    dma_format_capa(s, info.dev_capa);
    ds_put_format(s, "\n  descriptors: %"PRIu16"..%"PRIu16
                  ", vchans: %"PRIu16"\n",
                  info.min_desc, info.max_desc, info.max_vchans);

    if (!dev->known) {
        ds_put_cstr(s, "  state: not in the pool\n");
        return;
    }
    ds_put_format(s, "  state: %s",
                  dev->error ? "failed"
                  : !dev->started ? "stopped"
                  : dev->drained ? "drained" : "in service");
    if (dev->started) {
        ds_put_format(s, ", ring_size: %"PRIu16, dev->ring_size);
    }
    if (dev->error) {
        ds_put_format(s, " (%s)", dev->error);
    }
    ds_put_cstr(s, "\n  owner: ");
    if (ovs_list_is_empty(&dev->users)) {
        ds_put_cstr(s, "none");
    } else {
        const struct dma_user *u;

        LIST_FOR_EACH (u, node, &dev->users) {
            ds_put_format(s, "%s%s (cpu %d)",
                          &u->node == ovs_list_front(&dev->users) ? "" : ", ",
                          u->name, u->cpu);
        }
    }
    ds_put_char(s, '\n');
    netdev_vhost_dma_format_ports(s, dev_id);
    if (dev->started) {
        struct rte_dma_stats stats;

        if (!rte_dma_stats_get(dev_id, 0, &stats)) {
            ds_put_format(s, "  submitted: %"PRIu64", completed: %"PRIu64
                          ", errors: %"PRIu64"\n", stats.submitted,
                          stats.completed, stats.errors);
        }
    }
}

static uint64_t
dma_read_usable(void)
{
    uint64_t usable;

    atomic_read_relaxed(&usable_mask, &usable);
    return usable;
}

static void
dma_bump_free_seq(void)
{
    uint32_t orig;

    atomic_add_relaxed(&free_seq, 1, &orig);
}

static void
dma_update_usable_mask(void)
    OVS_REQUIRES(dma_mutex)
{
    uint64_t mask = 0;

    for (int i = 0; i < DPDK_DMA_MAX_DEVS; i++) {
        if (dma_devs[i].started && !dma_devs[i].drained
            && !dma_devs[i].error) {
            mask |= UINT64_C(1) << i;
        }
    }
    if (mask & ~dma_read_usable()) {
        dma_bump_free_seq();
    }
    atomic_store_relaxed(&usable_mask, mask);
}

static void
dma_set_error(struct dma_dev *dev, char *error)
    OVS_REQUIRES(dma_mutex)
{
    static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 5);

    VLOG_ERR_RL(&rl, "%s: %s", dev->name, error);
    free(dev->error);
    dev->error = error;
}

/* Configures device 'dev_id' with one memory-to-memory vchan of
 * 'dma_ring_size' descriptors, starts it and registers it with vhost. */
static void
dma_start(int16_t dev_id)
    OVS_REQUIRES(dma_mutex)
{
    struct dma_dev *dev = &dma_devs[dev_id];
    struct rte_dma_vchan_conf vconf = {
        .direction = RTE_DMA_DIR_MEM_TO_MEM,
        .nb_desc = dma_ring_size,
    };
    struct rte_dma_conf conf = { .nb_vchans = 1 };
    struct rte_dma_info info;
    int err;

    if (rte_dma_info_get(dev_id, &info)) {
        dma_set_error(dev, xstrdup("cannot get device information"));
        return;
    }
    if (!(info.dev_capa & RTE_DMA_CAPA_MEM_TO_MEM)
        || !(info.dev_capa & RTE_DMA_CAPA_OPS_COPY)) {
        dma_set_error(dev, xstrdup("device cannot copy memory to memory"));
        return;
    }
    if (rte_eal_iova_mode() != RTE_IOVA_VA) {
        dma_set_error(dev, xstrdup("vhost DMA copies need IOVA as VA "
                                   "(add --iova-mode=va to dpdk-extra)"));
        return;
    }
    if (dma_ring_size < info.min_desc || dma_ring_size > info.max_desc) {
        dma_set_error(dev, xasprintf("dma-ring-size %"PRIu16" is out of the "
                                     "device's range %"PRIu16"..%"PRIu16,
                                     dma_ring_size, info.min_desc,
                                     info.max_desc));
        return;
    }

    err = rte_dma_configure(dev_id, &conf);
    if (!err) {
        err = rte_dma_vchan_setup(dev_id, 0, &vconf);
    }
    if (!err) {
        err = rte_dma_start(dev_id);
    }
    if (err) {
        dma_set_error(dev, xasprintf("cannot start device: %s",
                                     rte_strerror(-err)));
        return;
    }
    if (rte_vhost_async_dma_configure(dev_id, 0)) {
        rte_dma_stop(dev_id);
        dma_set_error(dev, xstrdup("vhost refused the device"));
        return;
    }
    free(dev->error);
    dev->error = NULL;
    dev->ring_size = dma_ring_size;
    dev->started = true;
    VLOG_INFO("%s: started, dev_id %"PRId16", %"PRIu16" descriptors",
              dev->name, dev_id, dev->ring_size);
}

/* Takes every device DPDK knows into the pool and starts those that are not
 * started. */
static void
dma_refresh_pool(void)
    OVS_REQUIRES(dma_mutex)
{
    int16_t dev_id;

    RTE_DMA_FOREACH_DEV (dev_id) {
        struct dma_dev *dev;
        struct rte_dma_info info;

        if (dev_id >= DPDK_DMA_MAX_DEVS) {
            continue;
        }
        dev = &dma_devs[dev_id];
        if (!dev->known) {
            if (rte_dma_info_get(dev_id, &info)) {
                continue;
            }
            dev->known = true;
            dev->name = xstrdup(info.dev_name);
            dev->numa_id = info.numa_node;
            ovs_list_init(&dev->users);
        }
        if (!dev->started && !dev->error) {
            dma_start(dev_id);
        }
    }
    dma_update_usable_mask();
}

/* Probes the device that 'spec' (a PCI address or a vdev name, either with
 * comma-separated arguments) describes, unless DPDK has it already.  Not
 * under 'dma_mutex': a probe may take a while, and PMD threads take the
 * mutex to claim devices. */
static void
dma_probe(const char *spec)
    OVS_EXCLUDED(dma_mutex)
{
    char *name = xmemdup0(spec, strcspn(spec, ","));
    int16_t dev_id;
    int err;

    if (rte_dma_get_dev_id_by_name(name) < 0) {
        err = rte_dev_probe(spec);
        dev_id = rte_dma_get_dev_id_by_name(name);
        if (err) {
            VLOG_ERR("dma-devices: cannot probe %s: %s%s", spec,
                     rte_strerror(-err),
                     rte_eal_iova_mode() != RTE_IOVA_VA
                     ? " (DPDK uses IOVA as PA: software DMA devices such as "
                       "dma_skeleton need --iova-mode=va in dpdk-extra)"
                     : "");
        } else if (dev_id < 0 || dev_id >= DPDK_DMA_MAX_DEVS) {
            /* Some other kind of device: leave it to nobody. */
            VLOG_ERR("dma-devices: %s was probed but is no DMA device OVS "
                     "can use; removed", spec);
            rte_eal_hotplug_remove(strchr(name, ':') ? "pci" : "vdev", name);
        } else {
            VLOG_INFO("dma-devices: probed %s", spec);
        }
    }
    free(name);
}

/* Returns the ring size that 'ring' (other_config:dma-ring-size) asks for,
 * logging why if it is not valid. */
static uint16_t
dma_parse_ring_size(const char *ring)
{
    unsigned long int n;
    char *end;

    if (!ring) {
        return DMA_RING_SIZE_DEFAULT;
    }
    n = strtoul(ring, &end, 10);
    if (*end || !*ring || !n || n > 32768 || !is_pow2(n)) {
        VLOG_ERR("dma-ring-size: %s is not a power of two between 1 and "
                 "32768; using %d", ring, DMA_RING_SIZE_DEFAULT);
        return DMA_RING_SIZE_DEFAULT;
    }
    return n;
}

/* Takes device 'dev_id' out of service for good because of 'why'. */
static void
dma_fail(int dev_id, char *why)
    OVS_REQUIRES(dma_mutex)
{
    struct dma_dev *dev = &dma_devs[dev_id];

    if (!dev->error) {
        COVERAGE_INC(dpdk_dma_failed);
        dma_set_error(dev, why);
        dma_update_usable_mask();
    } else {
        free(why);
    }
}

/* Takes every started device that reported copy errors since the last
 * check out of service.  Checks at most once a second. */
static void
dma_check_errors(void)
    OVS_REQUIRES(dma_mutex)
{
    static long long int next_check = LLONG_MIN;
    long long int now = time_msec();

    if (now < next_check) {
        return;
    }
    next_check = now + 1000;
    for (int i = 0; i < DPDK_DMA_MAX_DEVS; i++) {
        struct dma_dev *dev = &dma_devs[i];
        struct rte_dma_stats stats;

        if (dev->started && !rte_dma_stats_get(i, 0, &stats)
            && stats.errors > dev->errors) {
            dev->errors = stats.errors;
            dma_fail(i, xasprintf("the device reported %"PRIu64" copy "
                                  "errors; vhost does not recover the "
                                  "copies submitted after an error",
                                  stats.errors));
        }
    }
}

void
dpdk_dma_read_completed(uint64_t mask, uint64_t completed[DPDK_DMA_MAX_DEVS])
{
    for (uint64_t m = mask; m; m = zero_rightmost_1bit(m)) {
        int dev_id = raw_ctz(m);
        struct rte_dma_stats stats;

        if (dev_id < DPDK_DMA_MAX_DEVS) {
            completed[dev_id] = (rte_dma_stats_get(dev_id, 0, &stats)
                                 ? 0 : stats.completed);
        }
    }
}

uint64_t
dpdk_dma_fail_stuck(uint64_t mask,
                    const uint64_t completed[DPDK_DMA_MAX_DEVS])
    OVS_EXCLUDED(dma_mutex)
{
    uint64_t failed = 0;

    ovs_mutex_lock(&dma_mutex);
    for (uint64_t m = mask; m; m = zero_rightmost_1bit(m)) {
        int dev_id = raw_ctz(m);
        struct rte_dma_stats stats;

        if (dev_id < DPDK_DMA_MAX_DEVS && dma_devs[dev_id].started
            && !rte_dma_stats_get(dev_id, 0, &stats)
            && stats.submitted > stats.completed + stats.errors
            && stats.completed == completed[dev_id]) {
            dma_fail(dev_id, xasprintf("%"PRIu64" copies did not complete",
                                       stats.submitted - stats.completed
                                       - stats.errors));
            failed |= UINT64_C(1) << dev_id;
        }
    }
    ovs_mutex_unlock(&dma_mutex);
    return failed;
}

void
dpdk_dma_set_config(const struct smap *ovs_other_config)
{
    const char *devices = smap_get_def(ovs_other_config, "dma-devices", "");
    const char *ring = smap_get(ovs_other_config, "dma-ring-size");
    struct sset listed = SSET_INITIALIZER(&listed);
    char *copy, *save_ptr = NULL;
    static char *ring_config;
    uint16_t ring_size;
    bool changed;

    /* Parse (and complain) only when the setting changes. */
    if (nullable_string_is_equal(ring, ring_config)) {
        ovs_mutex_lock(&dma_mutex);
        ring_size = dma_ring_size;
        ovs_mutex_unlock(&dma_mutex);
    } else {
        free(ring_config);
        ring_config = nullable_xstrdup(ring);
        ring_size = dma_parse_ring_size(ring);
    }

    /* Only this (the main) thread writes 'dma_devices_config'. */
    ovs_mutex_lock(&dma_mutex);
    changed = !nullable_string_is_equal(devices, dma_devices_config);
    ovs_mutex_unlock(&dma_mutex);

    /* Probing, if the list changed, happens outside of the mutex. */
    copy = xstrdup(devices);
    for (char *spec = strtok_r(copy, " ", &save_ptr); spec;
         spec = strtok_r(NULL, " ", &save_ptr)) {
        char *name = xmemdup0(spec, strcspn(spec, ","));

        if (!changed) {
            sset_add(&listed, name);
        } else if (sset_contains(&listed, name)) {
            VLOG_WARN("dma-devices: %s is listed twice", name);
        } else {
            dma_probe(spec);
            sset_add(&listed, name);
        }
        free(name);
    }
    free(copy);

    ovs_mutex_lock(&dma_mutex);
    dma_check_errors();
    changed = changed || ring_size != dma_ring_size;
    if (changed) {
        if (ring_size != dma_ring_size) {
            /* Applies to devices started from now on: those that could
             * not start may now.  A started device that failed (stuck, or
             * copy errors) stays out of service. */
            VLOG_INFO("dma-ring-size: %"PRIu16" descriptors", ring_size);
            dma_ring_size = ring_size;
            for (int i = 0; i < DPDK_DMA_MAX_DEVS; i++) {
                if (dma_devs[i].error && !dma_devs[i].started) {
                    free(dma_devs[i].error);
                    dma_devs[i].error = NULL;
                }
            }
        }
        free(dma_devices_config);
        dma_devices_config = xstrdup(devices);
        dma_refresh_pool();

        /* A device that left the list goes out of service: its owner
         * finishes its copies and falls back to the CPU.  One that comes
         * back returns to service. */
        for (int i = 0; i < DPDK_DMA_MAX_DEVS; i++) {
            struct dma_dev *dev = &dma_devs[i];
            bool is_listed = dev->known && sset_contains(&listed, dev->name);

            if (dev->from_config != is_listed) {
                dev->drained = !is_listed;
                VLOG_INFO("%s: %s dma-devices: %s", dev->name,
                          is_listed ? "added to" : "removed from",
                          is_listed ? "in service" : "drained");
            }
            dev->from_config = is_listed;
        }
        dma_update_usable_mask();
    }
    ovs_mutex_unlock(&dma_mutex);
    sset_destroy(&listed);
}

char *
dpdk_dma_parse_list(const char *list, uint64_t *maskp)
{
    const char *p = list;
    char *error = NULL;
    uint64_t mask = 0;

    /* Names separated by single commas: "a,b", not "a,,b", ",a" or "a,". */
    for (;;) {
        size_t len = strcspn(p, ",");
        char *name = xmemdup0(p, len);
        int dev_id;

        if (!len || strchr(name, ' ')) {
            error = xasprintf("malformed list of DMA devices '%s': expected "
                              "device names separated by commas", list);
        } else if ((dev_id = rte_dma_get_dev_id_by_name(name)) < 0
                   || dev_id >= DPDK_DMA_MAX_DEVS) {
            error = xasprintf("unknown DMA device '%s'", name);
        } else if (mask & (UINT64_C(1) << dev_id)) {
            error = xasprintf("DMA device '%s' is listed twice", name);
        } else {
            mask |= UINT64_C(1) << dev_id;
        }
        free(name);
        if (error || !p[len]) {
            break;
        }
        p += len + 1;
    }
    *maskp = error ? 0 : mask;
    return error;
}

char *
dpdk_dma_check_usable(uint64_t mask)
    OVS_EXCLUDED(dma_mutex)
{
    char *error = NULL;

    ovs_mutex_lock(&dma_mutex);
    for (uint64_t m = mask; m && !error; m = zero_rightmost_1bit(m)) {
        struct dma_dev *dev = &dma_devs[raw_ctz(m)];

        if (!dev->known) {
            struct rte_dma_info info;

            error = xasprintf("DMA device '%s' is owned by another user of "
                              "DPDK, not by Open vSwitch",
                              rte_dma_info_get(raw_ctz(m), &info)
                              ? "?" : info.dev_name);
        } else if (dev->error) {
            error = xasprintf("DMA device '%s' failed: %s", dev->name,
                              dev->error);
        }
    }
    ovs_mutex_unlock(&dma_mutex);
    return error;
}

void
dpdk_dma_format_device(struct ds *s, int dev_id)
    OVS_EXCLUDED(dma_mutex)
{
    struct dma_dev *dev;

    if (dev_id < 0 || dev_id >= DPDK_DMA_MAX_DEVS) {
        ds_put_format(s, "dev_id %d", dev_id);
        return;
    }
    ovs_mutex_lock(&dma_mutex);
    dev = &dma_devs[dev_id];
    ds_put_format(s, "%s (dev_id %d, %s)", dev->name ? dev->name : "?",
                  dev_id, dev->drained ? "drained" : "in service");
    ovs_mutex_unlock(&dma_mutex);
}

static void
dma_thread_destructor(void *aux OVS_UNUSED)
{
    dpdk_dma_thread_release();
}

/* Returns how much better device 'a' is than device 'b' for a thread on NUMA
 * node 'numa_id': fewer users first, then the same NUMA node. */
static int
dma_compare_for_claim(int a, int b, int numa_id)
    OVS_REQUIRES(dma_mutex)
{
    size_t users_a = ovs_list_size(&dma_devs[a].users);
    size_t users_b = ovs_list_size(&dma_devs[b].users);
    bool local_a, local_b;

    if (users_a != users_b) {
        return users_a < users_b ? 1 : -1;
    }
    local_a = dma_devs[a].numa_id == numa_id;
    local_b = dma_devs[b].numa_id == numa_id;
    return local_a - local_b;
}

/* Removes thread 't' from the users of the devices in 'devices'. */
static void
dma_release(struct dma_thread *t, uint64_t devices)
    OVS_REQUIRES(dma_mutex)
{
    for (uint64_t m = devices & t->owned; m; m = zero_rightmost_1bit(m)) {
        struct dma_dev *dev = &dma_devs[raw_ctz(m)];
        struct dma_user *u;

        LIST_FOR_EACH_SAFE (u, node, &dev->users) {
            if (u->thread == t) {
                VLOG_INFO("%s: released by %s", dev->name, u->name);
                ovs_list_remove(&u->node);
                free(u->name);
                free(u);
            }
        }
        atomic_store_relaxed(&n_users[dev - dma_devs],
                             ovs_list_size(&dev->users));
        if (ovs_list_is_empty(&dev->users)) {
            dma_bump_free_seq();
        }
    }
    t->owned &= ~devices;
}

/* Claims a usable device of 'allowed' (any if 0) for the calling thread: one
 * that no thread uses if there is one, otherwise the one with the fewest
 * users, on NUMA node 'numa_id' if possible.  Returns its dev_id, or -1 if
 * no usable device fits.
 *
 * With 'shared' >= 0, the thread owns device 'shared' and looks for a free
 * device only, to move there: if 'shared' still has other users and a free
 * device fits, it claims that one and releases 'shared'; otherwise it
 * changes nothing and returns -1. */
static int
dma_claim(uint64_t allowed, int numa_id, int shared)
    OVS_EXCLUDED(dma_mutex)
{
    struct dma_thread *t = dma_thread_get();
    uint64_t usable;
    int best = -1;

    t->claims++;
    ovs_mutex_lock(&dma_mutex);
    usable = dma_read_usable();
    if (shared >= 0 && ovs_list_size(&dma_devs[shared].users) < 2) {
        ovs_mutex_unlock(&dma_mutex);
        return -1;
    }
    for (int i = 0; i < DPDK_DMA_MAX_DEVS; i++) {
        uint64_t bit = UINT64_C(1) << i;

        if (!(usable & bit) || (allowed && !(allowed & bit))
            || t->owned & bit) {
            continue;
        }
        if (best < 0 || dma_compare_for_claim(i, best, numa_id) > 0) {
            best = i;
        }
    }
    if (best >= 0 && shared >= 0
        && !ovs_list_is_empty(&dma_devs[best].users)) {
        best = -1;
    }
    if (best >= 0) {
        struct dma_dev *dev = &dma_devs[best];
        struct dma_user *u = xmalloc(sizeof *u);
        size_t others = ovs_list_size(&dev->users);

        u->thread = t;
        u->name = xstrdup(get_subprogram_name());
        u->cpu = sched_getcpu();
        ovs_list_push_back(&dev->users, &u->node);
        atomic_store_relaxed(&n_users[best], others + 1);
        t->owned |= UINT64_C(1) << best;
        ovsthread_setspecific(dma_thread_key, t);
        COVERAGE_INC(dpdk_dma_claim);
        if (others) {
            COVERAGE_INC(dpdk_dma_claim_shared);
            VLOG_INFO("%s: now owned by %s (cpu %d) too, shared with %"
                      PRIuSIZE" other thread(s): no device is free",
                      dev->name, u->name, u->cpu, others);
        } else {
            VLOG_INFO("%s: now owned by %s (cpu %d)", dev->name, u->name,
                      u->cpu);
        }
        /* Devices it owns that are out of service (drained, failed) go:
         * it has a replacement, and completing the copies still on them
         * needs no ownership.  Otherwise, once drained devices return to
         * service, it would keep more devices than it needs while other
         * threads share. */
        dma_release(t, t->owned & ~usable);
        if (shared >= 0) {
            COVERAGE_INC(dpdk_dma_claim_relief);
            VLOG_INFO("%s: left by %s for %s, which no thread used",
                      dma_devs[shared].name, u->name, dev->name);
            dma_release(t, UINT64_C(1) << shared);
        }
    } else if (shared < 0) {
        COVERAGE_INC(dpdk_dma_claim_failed);
    }
    ovs_mutex_unlock(&dma_mutex);
    return best;
}

int
dpdk_dma_thread_get_channel(uint64_t allowed, int numa_id)
{
    struct dma_thread *t = dma_thread_get();
    struct dma_failed_claim *failed;
    uint64_t usable, fit;
    long long int now;
    int dev_id;

    atomic_read_relaxed(&usable_mask, &usable);
    fit = t->owned & usable & (allowed ? allowed : UINT64_MAX);
    if (OVS_LIKELY(fit)) {
        uint32_t seq, users;

        dev_id = raw_ctz(fit);
        atomic_read_relaxed(&free_seq, &seq);
        if (OVS_UNLIKELY(seq != t->free_seq)) {
            /* A device may have become free: stop sharing, if this thread
             * does. */
            t->free_seq = seq;
            atomic_read_relaxed(&n_users[dev_id], &users);
            if (users > 1) {
                int free_id = dma_claim(allowed, numa_id, dev_id);

                if (free_id >= 0) {
                    return free_id;
                }
            }
        }
        return dev_id;
    }

    now = time_msec();
    failed = NULL;
    for (int i = 0; i < DMA_FAILED_CLAIMS && !failed; i++) {
        if (t->failed[i].allowed == allowed) {
            failed = &t->failed[i];
        }
    }
    if (failed && failed->usable == usable && now < failed->next_claim) {
        return -1;
    }
    dev_id = dma_claim(allowed, numa_id, -1);
    if (dev_id < 0) {
        /* A list has at most one slot: the one found above, if any. */
        if (!failed) {
            failed = &t->failed[t->next_failed++ % DMA_FAILED_CLAIMS];
        }
        failed->allowed = allowed;
        failed->usable = usable;
        failed->next_claim = now + 1000;
    }
    return dev_id;
}

void
dpdk_dma_thread_release(void)
{
    struct dma_thread *t = dma_thread_get();

    if (!t->owned) {
        return;
    }
    ovs_mutex_lock(&dma_mutex);
    dma_release(t, t->owned);
    ovs_mutex_unlock(&dma_mutex);
}

uint64_t
dpdk_dma_thread_owned(void)
{
    return dma_thread_get()->owned;
}

unsigned int
dpdk_dma_thread_claims(void)
{
    return dma_thread_get()->claims;
}

uint16_t
dpdk_dma_free_descriptors(int dev_id)
{
    /* rte_dma_burst_capacity() is a data-path call, which vhost makes
     * under the vchan's lock and this does not take: the skeleton, ioat and
     * idxd drivers of DPDK 22.11 only read ring indexes there
     * (skeldma_burst_capacity(), ioat_burst_capacity(),
     * idxd_burst_capacity()), so a concurrent copy can only make the value
     * a little stale. */
    return rte_dma_burst_capacity(dev_id, 0);
}

static void
dpdk_dma_unixctl_show(struct unixctl_conn *conn, int argc,
                      const char *argv[], void *aux OVS_UNUSED)
    OVS_EXCLUDED(dma_mutex)
{
    struct ds s = DS_EMPTY_INITIALIZER;
    int16_t dev_id;

    ovs_mutex_lock(&dma_mutex);
    if (argc > 1) {
        dev_id = rte_dma_get_dev_id_by_name(argv[1]);
        if (dev_id < 0 || dev_id >= DPDK_DMA_MAX_DEVS) {
            ovs_mutex_unlock(&dma_mutex);
            unixctl_command_reply_error(conn, "no such DMA device");
            return;
        }
        dma_show_device(&s, dev_id);
    } else if (!rte_dma_count_avail()) {
        ds_put_cstr(&s, "No DMA devices.  DPDK probed none: create them "
                    "with --vdev or PCI addresses in "
                    "other_config:dpdk-extra.\n");
    } else {
        RTE_DMA_FOREACH_DEV (dev_id) {
            if (dev_id < DPDK_DMA_MAX_DEVS) {
                dma_show_device(&s, dev_id);
            }
        }
    }
    ovs_mutex_unlock(&dma_mutex);
    unixctl_command_reply(conn, ds_cstr(&s));
    ds_destroy(&s);
}

char *
dpdk_dma_set_drained(const char *name, bool drain)
    OVS_EXCLUDED(dma_mutex)
{
    int16_t dev_id = rte_dma_get_dev_id_by_name(name);
    struct dma_dev *dev;

    if (dev_id < 0 || dev_id >= DPDK_DMA_MAX_DEVS) {
        return xstrdup("no such DMA device");
    }
    ovs_mutex_lock(&dma_mutex);
    dev = &dma_devs[dev_id];
    if (!dev->known) {
        ovs_mutex_unlock(&dma_mutex);
        return xstrdup("device is not in the pool");
    }
    if (dev->drained != drain) {
        dev->drained = drain;
        dma_update_usable_mask();
        VLOG_INFO("%s: %s", dev->name,
                  drain ? "drained: out of service" : "back in service");
    }
    ovs_mutex_unlock(&dma_mutex);
    return NULL;
}

char *
dpdk_dma_set_numa_id(const char *name, int numa_id)
    OVS_EXCLUDED(dma_mutex)
{
    int16_t dev_id = rte_dma_get_dev_id_by_name(name);
    char *error = NULL;

    if (dev_id < 0 || dev_id >= DPDK_DMA_MAX_DEVS) {
        return xstrdup("no such DMA device");
    }
    ovs_mutex_lock(&dma_mutex);
    if (dma_devs[dev_id].known) {
        dma_devs[dev_id].numa_id = numa_id;
    } else {
        error = xstrdup("device is not in the pool");
    }
    ovs_mutex_unlock(&dma_mutex);
    return error;
}

/* dpdk-dma/drain DEVICE and dpdk-dma/undrain DEVICE: 'aux' is non-NULL for
 * drain. */
static void
dpdk_dma_unixctl_drain(struct unixctl_conn *conn, int argc OVS_UNUSED,
                       const char *argv[], void *aux)
{
    char *error = dpdk_dma_set_drained(argv[1], aux != NULL);

    if (error) {
        unixctl_command_reply_error(conn, error);
        free(error);
    } else {
        unixctl_command_reply(conn, NULL);
    }
}

void
dpdk_dma_init(void)
{
    VLOG_INFO("%"PRIu16" DMA device(s) available", rte_dma_count_avail());
    ovsthread_key_create(&dma_thread_key, dma_thread_destructor);
    /* The devices are started by the dpdk_dma_set_config() that follows,
     * with the configured dma-ring-size. */
    unixctl_command_register("dpdk-dma/show", "[device]", 0, 1,
                             dpdk_dma_unixctl_show, NULL);
    unixctl_command_register("dpdk-dma/drain", "device", 1, 1,
                             dpdk_dma_unixctl_drain, "drain");
    unixctl_command_register("dpdk-dma/undrain", "device", 1, 1,
                             dpdk_dma_unixctl_drain, NULL);
    pmd_dma_init(dpdk_dma_format_device);
}
