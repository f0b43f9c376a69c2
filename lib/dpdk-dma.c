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
 * Ownership: 'owner' in struct dma_dev names the thread that may use a
 * device's data path.  A thread claims devices under 'dma_mutex' and keeps
 * the mask of its devices in thread-local storage, so its fast path reads
 * only that and 'usable_mask' (started and not drained), lock-free.  A
 * thread key's destructor releases a thread's devices when it exits.
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

#define DMA_RING_SIZE_DEFAULT 2048

struct dma_dev {
    bool known;                 /* In the pool. */
    bool started;               /* Configured, started, known to vhost. */
    bool drained;               /* Out of service (dpdk-dma/drain). */
    bool from_config;           /* Listed in other_config:dma-devices. */
    char *name;
    uint16_t ring_size;         /* Descriptors of vchan 0, once started. */
    char *error;                /* Why it could not be started, or NULL. */

    /* The thread that owns the device, if 'owned'. */
    bool owned;
    char *owner_name;
    int owner_cpu;
};

static struct ovs_mutex dma_mutex = OVS_MUTEX_INITIALIZER;
static struct dma_dev dma_devs[DPDK_DMA_MAX_DEVS] OVS_GUARDED_BY(dma_mutex);
static uint16_t dma_ring_size OVS_GUARDED_BY(dma_mutex)
    = DMA_RING_SIZE_DEFAULT;
static char *dma_devices_config OVS_GUARDED_BY(dma_mutex);

/* Devices that are started and not drained: a bit per dev_id. */
static atomic_uint64_t usable_mask = ATOMIC_VAR_INIT(0);

/* What a thread owns. */
struct dma_thread {
    uint64_t owned;             /* Devices it owns, a bit per dev_id. */
    uint64_t failed_allowed;    /* 'allowed' of its last failed claim, */
    uint64_t failed_usable;     /* 'usable_mask' then, */
    long long int next_claim;   /* and when to try again if unchanged. */
};

DEFINE_STATIC_PER_THREAD_DATA(struct dma_thread, dma_thread,
                              { 0, 0, 0, LLONG_MIN });
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
                  dev_id, dma_driver_name(info.dev_name), info.numa_node);
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
    if (dev->owned) {
        ds_put_format(s, "%s (cpu %d)\n", dev->owner_name, dev->owner_cpu);
    } else {
        ds_put_cstr(s, "none\n");
    }
    if (dev->started) {
        struct rte_dma_stats stats;

        if (!rte_dma_stats_get(dev_id, 0, &stats)) {
            ds_put_format(s, "  submitted: %"PRIu64", completed: %"PRIu64
                          ", errors: %"PRIu64"\n", stats.submitted,
                          stats.completed, stats.errors);
        }
    }
}

static void
dma_update_usable_mask(void)
    OVS_REQUIRES(dma_mutex)
{
    uint64_t mask = 0;

    for (int i = 0; i < DPDK_DMA_MAX_DEVS; i++) {
        if (dma_devs[i].started && !dma_devs[i].drained) {
            mask |= UINT64_C(1) << i;
        }
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
        }
        if (!dev->started && !dev->error) {
            dma_start(dev_id);
        }
    }
    dma_update_usable_mask();
}

/* Probes the device that 'spec' (a PCI address or a vdev name, either with
 * comma-separated arguments) describes, unless DPDK has it already. */
static void
dma_probe(const char *spec)
    OVS_REQUIRES(dma_mutex)
{
    char *name = xmemdup0(spec, strcspn(spec, ","));
    int16_t dev_id;
    int err;

    if (rte_dma_get_dev_id_by_name(name) < 0) {
        err = rte_dev_probe(spec);
        dev_id = rte_dma_get_dev_id_by_name(name);
        if (err) {
            VLOG_ERR("dma-devices: cannot probe %s: %s", spec,
                     rte_strerror(-err));
        } else if (dev_id < 0 || dev_id >= DPDK_DMA_MAX_DEVS) {
            VLOG_ERR("dma-devices: %s was probed but is no DMA device OVS "
                     "can use", spec);
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

void
dpdk_dma_set_config(const struct smap *ovs_other_config)
{
    const char *devices = smap_get_def(ovs_other_config, "dma-devices", "");
    const char *ring = smap_get(ovs_other_config, "dma-ring-size");
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

    ovs_mutex_lock(&dma_mutex);
    changed = ring_size != dma_ring_size
              || !nullable_string_is_equal(devices, dma_devices_config);
    if (changed) {
        struct sset listed = SSET_INITIALIZER(&listed);
        char *copy = xstrdup(devices), *save_ptr = NULL;

        if (ring_size != dma_ring_size) {
            /* Applies to devices started from now on. */
            VLOG_INFO("dma-ring-size: %"PRIu16" descriptors", ring_size);
            dma_ring_size = ring_size;
            for (int i = 0; i < DPDK_DMA_MAX_DEVS; i++) {
                if (dma_devs[i].error) {
                    free(dma_devs[i].error);
                    dma_devs[i].error = NULL;
                }
            }
        }
        for (char *spec = strtok_r(copy, " ", &save_ptr); spec;
             spec = strtok_r(NULL, " ", &save_ptr)) {
            char *name = xmemdup0(spec, strcspn(spec, ","));

            dma_probe(spec);
            sset_add(&listed, name);
            free(name);
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
        sset_destroy(&listed);
        free(copy);
    }
    ovs_mutex_unlock(&dma_mutex);
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

/* Claims a free device of 'allowed' (any if 0) for the calling thread,
 * preferring NUMA node 'numa_id'.  Returns its dev_id, or -1. */
static int
dma_claim(uint64_t allowed, int numa_id)
    OVS_EXCLUDED(dma_mutex)
{
    struct dma_thread *t = dma_thread_get();
    uint64_t usable;
    int best = -1;

    ovs_mutex_lock(&dma_mutex);
    atomic_read_relaxed(&usable_mask, &usable);
    for (int i = 0; i < DPDK_DMA_MAX_DEVS; i++) {
        uint64_t bit = UINT64_C(1) << i;
        struct rte_dma_info info;

        if (!(usable & bit) || (allowed && !(allowed & bit))
            || dma_devs[i].owned) {
            continue;
        }
        if (best < 0) {
            best = i;
        }
        if (!rte_dma_info_get(i, &info) && info.numa_node == numa_id) {
            best = i;
            break;
        }
    }
    if (best >= 0) {
        struct dma_dev *dev = &dma_devs[best];

        dev->owned = true;
        dev->owner_name = xstrdup(get_subprogram_name());
        dev->owner_cpu = sched_getcpu();
        t->owned |= UINT64_C(1) << best;
        ovsthread_setspecific(dma_thread_key, t);
        COVERAGE_INC(dpdk_dma_claim);
        VLOG_INFO("%s: now owned by %s (cpu %d)", dev->name,
                  dev->owner_name, dev->owner_cpu);
    } else {
        COVERAGE_INC(dpdk_dma_claim_failed);
    }
    ovs_mutex_unlock(&dma_mutex);
    return best;
}

int
dpdk_dma_thread_get_channel(uint64_t allowed, int numa_id)
{
    struct dma_thread *t = dma_thread_get();
    uint64_t usable, fit;
    long long int now;
    int dev_id;

    atomic_read_relaxed(&usable_mask, &usable);
    fit = t->owned & usable & (allowed ? allowed : UINT64_MAX);
    if (OVS_LIKELY(fit)) {
        return raw_ctz(fit);
    }

    now = time_msec();
    if (allowed == t->failed_allowed && usable == t->failed_usable
        && now < t->next_claim) {
        return -1;
    }
    dev_id = dma_claim(allowed, numa_id);
    if (dev_id < 0) {
        t->failed_allowed = allowed;
        t->failed_usable = usable;
        t->next_claim = now + 1000;
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
    for (int i = 0; i < DPDK_DMA_MAX_DEVS; i++) {
        struct dma_dev *dev = &dma_devs[i];

        if (t->owned & (UINT64_C(1) << i)) {
            VLOG_INFO("%s: released by %s", dev->name, dev->owner_name);
            dev->owned = false;
            free(dev->owner_name);
            dev->owner_name = NULL;
        }
    }
    t->owned = 0;
    ovs_mutex_unlock(&dma_mutex);
}

uint64_t
dpdk_dma_thread_owned(void)
{
    return dma_thread_get()->owned;
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

/* dpdk-dma/drain DEVICE and dpdk-dma/undrain DEVICE: 'aux' is non-NULL for
 * drain. */
static void
dpdk_dma_unixctl_drain(struct unixctl_conn *conn, int argc OVS_UNUSED,
                       const char *argv[], void *aux)
    OVS_EXCLUDED(dma_mutex)
{
    int16_t dev_id = rte_dma_get_dev_id_by_name(argv[1]);
    bool drain = aux != NULL;
    struct dma_dev *dev;

    if (dev_id < 0 || dev_id >= DPDK_DMA_MAX_DEVS) {
        unixctl_command_reply_error(conn, "no such DMA device");
        return;
    }
    ovs_mutex_lock(&dma_mutex);
    dev = &dma_devs[dev_id];
    if (!dev->known) {
        ovs_mutex_unlock(&dma_mutex);
        unixctl_command_reply_error(conn, "device is not in the pool");
        return;
    }
    if (dev->drained != drain) {
        dev->drained = drain;
        dma_update_usable_mask();
        VLOG_INFO("%s: %s", dev->name,
                  drain ? "drained: out of service" : "back in service");
    }
    ovs_mutex_unlock(&dma_mutex);
    unixctl_command_reply(conn, NULL);
}

void
dpdk_dma_init(void)
{
    VLOG_INFO("%"PRIu16" DMA device(s) available", rte_dma_count_avail());
    ovsthread_key_create(&dma_thread_key, dma_thread_destructor);
    ovs_mutex_lock(&dma_mutex);
    dma_refresh_pool();
    ovs_mutex_unlock(&dma_mutex);
    unixctl_command_register("dpdk-dma/show", "[device]", 0, 1,
                             dpdk_dma_unixctl_show, NULL);
    unixctl_command_register("dpdk-dma/drain", "device", 1, 1,
                             dpdk_dma_unixctl_drain, "drain");
    unixctl_command_register("dpdk-dma/undrain", "device", 1, 1,
                             dpdk_dma_unixctl_drain, NULL);
    pmd_dma_init();
}
