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

/* Unit tests of the DMA device pool (lib/dpdk-dma.c), run by
 * tests/dma-unit.at: device lists and how devices are assigned to threads.
 * DPDK runs in this process, without hugepages, with two dma_skeleton
 * devices; the test's threads play PMD threads. */

#define ALLOW_EXPERIMENTAL_API 1

#include <config.h>
#undef NDEBUG

#include "dpdk-dma.h"
#include "netdev-vhost-dma.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_dmadev.h>
#include <rte_eal.h>

#include "command-line.h"
#include "openvswitch/vlog.h"
#include "ovs-thread.h"
#include "ovstest.h"
#include "smap.h"
#include "util.h"

static int dev0, dev1;          /* dev_ids of dma_skeleton0 and 1. */

static void
init_dpdk(void)
{
    char *args[] = {
        "ovstest", "--no-pci", "--no-huge", "--no-shconf", "-m", "128",
        "--iova-mode=va", "-l", "0", "--log-level=*:error",
        "--vdev=dma_skeleton0,lcore=0", "--vdev=dma_skeleton1,lcore=0",
    };
    struct smap config = SMAP_INITIALIZER(&config);

    if (rte_eal_init(ARRAY_SIZE(args), args) < 0) {
        ovs_fatal(0, "rte_eal_init failed");
    }
    dpdk_dma_init();
    smap_add(&config, "dma-ring-size", "64");
    dpdk_dma_set_config(&config);
    smap_destroy(&config);
    dev0 = rte_dma_get_dev_id_by_name("dma_skeleton0");
    dev1 = rte_dma_get_dev_id_by_name("dma_skeleton1");
    ovs_assert(dev0 >= 0 && dev1 >= 0 && dev0 != dev1);
}

static void
check_list(const char *list, uint64_t expected_mask,
           const char *expected_error)
{
    uint64_t mask = UINT64_MAX;
    char *error = dpdk_dma_parse_list(list, &mask);

    if (!nullable_string_is_equal(error, expected_error)
        || mask != expected_mask) {
        ovs_fatal(0, "'%s': got mask %#"PRIx64" and error '%s', expected "
                  "%#"PRIx64" and '%s'", list, mask,
                  error ? error : "(none)", expected_mask,
                  expected_error ? expected_error : "(none)");
    }
    free(error);
}

/* tx-dma lists: names separated by single commas, each a device DPDK
 * knows, none twice; the exact messages land in the Interface's 'error'
 * column. */
static void
test_lists(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    uint64_t both;

    init_dpdk();
    both = (UINT64_C(1) << dev0) | (UINT64_C(1) << dev1);
    check_list("dma_skeleton0,dma_skeleton1", both, NULL);
    check_list("dma_skeleton1", UINT64_C(1) << dev1, NULL);
    check_list("dma_skeleton0,,dma_skeleton1", 0,
               "malformed list of DMA devices 'dma_skeleton0,,dma_skeleton1'"
               ": expected device names separated by commas");
    check_list("dma_skeleton0,", 0,
               "malformed list of DMA devices 'dma_skeleton0,': expected "
               "device names separated by commas");
    check_list("dma_skeleton0 dma_skeleton1", 0,
               "malformed list of DMA devices 'dma_skeleton0 dma_skeleton1'"
               ": expected device names separated by commas");
    check_list("dma_nonexistent", 0, "unknown DMA device 'dma_nonexistent'");
    check_list("dma_skeleton1,dma_skeleton1", 0,
               "DMA device 'dma_skeleton1' is listed twice");
    printf("lists: ok\n");
}

static void
check_options(const char *tx_dma, const char *threshold, bool iommu,
              bool postcopy, enum netdev_vhost_dma_mode mode,
              uint64_t allowed, uint32_t expected_threshold,
              const char *expected_error)
{
    struct smap args = SMAP_INITIALIZER(&args);
    struct netdev_vhost_dma_options opts;
    char *error;

    if (tx_dma) {
        smap_add(&args, "tx-dma", tx_dma);
    }
    if (threshold) {
        smap_add(&args, "tx-dma-threshold", threshold);
    }
    error = netdev_vhost_dma_parse_options(&args, iommu, postcopy, &opts);
    if (!nullable_string_is_equal(error, expected_error)
        || opts.mode != mode || opts.allowed != allowed
        || (!error && opts.threshold != expected_threshold)) {
        ovs_fatal(0, "tx-dma '%s', tx-dma-threshold '%s', iommu %d, postcopy "
                  "%d: got mode %d, devices %#"PRIx64", threshold %"PRIu32
                  " and error '%s', expected %d, %#"PRIx64", %"PRIu32
                  " and '%s'", tx_dma ? tx_dma : "(none)",
                  threshold ? threshold : "(none)", iommu, postcopy,
                  opts.mode, opts.allowed, opts.threshold,
                  error ? error : "(none)", mode, allowed,
                  expected_threshold,
                  expected_error ? expected_error : "(none)");
    }
    free(error);
    smap_destroy(&args);
}

/* The options of a vhost port: 'tx-dma', 'tx-dma-threshold' and the
 * socket options that rule DMA out, with the exact messages of the
 * Interface's 'error' column.  A port whose options are in error copies
 * with the CPU (mode off). */
static void
test_options(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    const enum netdev_vhost_dma_mode off = NETDEV_VHOST_DMA_OFF;
    const enum netdev_vhost_dma_mode list = NETDEV_VHOST_DMA_LIST;
    const enum netdev_vhost_dma_mode any = NETDEV_VHOST_DMA_AUTO;
    const char *bad_threshold = "is not a number of bytes between 0 and "
                                "65535";
    uint64_t bit1;

    init_dpdk();
    bit1 = UINT64_C(1) << dev1;
    check_options(NULL, NULL, false, false, off, 0, 1024, NULL);
    check_options("false", NULL, false, false, off, 0, 1024, NULL);
    check_options("auto", NULL, false, false, any, 0, 1024, NULL);
    check_options("dma_skeleton1", "0", false, false, list, bit1, 0, NULL);
    check_options("auto", "65535", false, false, any, 0, 65535, NULL);
    check_options("nosuch", NULL, false, false, off, 0, 0,
                  "unknown DMA device 'nosuch'");
    check_options("dma_skeleton0,", NULL, false, false, off, 0, 0,
                  "malformed list of DMA devices 'dma_skeleton0,': expected "
                  "device names separated by commas");
    for (int i = 0; i < 6; i++) {
        static const char *bad[] = {"65536", "abc", "", "-1", "+5", " 5"};
        char *msg = xasprintf("tx-dma-threshold: '%s' %s", bad[i],
                              bad_threshold);

        check_options("auto", bad[i], false, false, off, 0, 0, msg);
        free(msg);
    }
    check_options("auto", NULL, true, false, off, 0, 0,
                  "tx-dma cannot be used with vhost-iommu-support: DPDK "
                  "refuses async copies on such sockets");
    check_options("dma_skeleton1", NULL, false, true, off, bit1, 0,
                  "tx-dma cannot be used with vhost-postcopy-support: DPDK "
                  "refuses async copies on such sockets");
    /* Without DMA, those socket options are no concern of tx-dma. */
    check_options("false", NULL, true, true, off, 0, 1024, NULL);
    printf("options: ok\n");
}

/* A second thread, which claims a device on request and stays alive (it
 * keeps its devices) until told to exit. */
struct helper {
    struct ovs_mutex mutex;
    pthread_cond_t cond;
    int numa_id;                    /* The thread's NUMA node. */
    uint64_t allowed OVS_GUARDED;   /* What to claim... */
    bool request OVS_GUARDED;       /* ...when this is set. */
    bool exit OVS_GUARDED;
    int dev OVS_GUARDED;            /* Result. */
    uint64_t owned OVS_GUARDED;
};

static void *
helper_main(void *h_)
{
    struct helper *h = h_;

    ovs_mutex_lock(&h->mutex);
    while (!h->exit) {
        if (h->request) {
            h->dev = dpdk_dma_thread_get_channel(h->allowed, h->numa_id);
            h->owned = dpdk_dma_thread_owned();
            h->request = false;
            xpthread_cond_broadcast(&h->cond);
        }
        ovs_mutex_cond_wait(&h->cond, &h->mutex);
    }
    ovs_mutex_unlock(&h->mutex);
    return NULL;
}

static int
helper_claim(struct helper *h, uint64_t allowed, uint64_t *owned)
{
    int dev;

    ovs_mutex_lock(&h->mutex);
    h->allowed = allowed;
    h->request = true;
    xpthread_cond_broadcast(&h->cond);
    while (h->request) {
        ovs_mutex_cond_wait(&h->cond, &h->mutex);
    }
    dev = h->dev;
    *owned = h->owned;
    ovs_mutex_unlock(&h->mutex);
    return dev;
}

static void
helper_start(struct helper *h, int numa_id, pthread_t *thread)
{
    memset(h, 0, sizeof *h);
    h->dev = -1;
    h->numa_id = numa_id;
    ovs_mutex_init(&h->mutex);
    xpthread_cond_init(&h->cond, NULL);
    *thread = ovs_thread_create("helper", helper_main, h);
}

static void
helper_stop(struct helper *h, pthread_t thread)
{
    ovs_mutex_lock(&h->mutex);
    h->exit = true;
    xpthread_cond_broadcast(&h->cond);
    ovs_mutex_unlock(&h->mutex);
    xpthread_join(thread, NULL);
    ovs_mutex_destroy(&h->mutex);
    xpthread_cond_destroy(&h->cond);
}

static uint64_t
bit(int dev)
{
    return UINT64_C(1) << dev;
}

/* Device assignment: a free device first, then sharing; a list restricts
 * the choice, also to a device another thread has; a drained device is
 * let go for another one and is not taken back when it returns. */
static void
test_assignment(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct helper h;
    pthread_t thread;
    uint64_t owned;
    int mine, other;
    char *error;

    init_dpdk();
    helper_start(&h, -1, &thread);

    /* Two threads, two devices: one each. */
    mine = dpdk_dma_thread_get_channel(0, -1);
    ovs_assert(mine == dev0 || mine == dev1);
    other = helper_claim(&h, 0, &owned);
    ovs_assert(other >= 0 && other != mine && owned == bit(other));

    /* Asked for the device the first thread has, the helper shares it. */
    ovs_assert(helper_claim(&h, bit(mine), &owned) == mine);
    ovs_assert(owned == (bit(mine) | bit(other)));

    /* The first thread's device is drained: it shares the other one and
     * lets the drained one go. */
    ovs_assert(dpdk_dma_thread_get_channel(0, -1) == mine);
    error = dpdk_dma_set_drained(mine == dev0 ? "dma_skeleton0"
                                              : "dma_skeleton1", true);
    ovs_assert(!error);
    ovs_assert(dpdk_dma_thread_get_channel(0, -1) == other);
    ovs_assert(dpdk_dma_thread_owned() == bit(other));

    /* Only the drained device fits a list: nothing, and CPU copies. */
    ovs_assert(dpdk_dma_thread_get_channel(bit(mine), -1) == -1);

    /* Back in service: the thread keeps the one device it has. */
    error = dpdk_dma_set_drained(mine == dev0 ? "dma_skeleton0"
                                              : "dma_skeleton1", false);
    ovs_assert(!error);
    ovs_assert(dpdk_dma_thread_get_channel(0, -1) == other);
    ovs_assert(dpdk_dma_thread_owned() == bit(other));

    /* Errors of the drain command. */
    error = dpdk_dma_set_drained("dma_nonexistent", true);
    ovs_assert(error && !strcmp(error, "no such DMA device"));
    free(error);

    helper_stop(&h, thread);
    dpdk_dma_thread_release();
    ovs_assert(!dpdk_dma_thread_owned());
    printf("assignment: ok\n");
}

/* NUMA preference: a free device before a shared one, and among devices
 * with as many users, one on the thread's node, whatever the dev_ids.
 * DPDK reports no NUMA node for virtual devices, so the test says which
 * node each is on (dpdk_dma_set_numa_id()). */
static void
test_numa(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct helper a, b;
    pthread_t ta, tb;
    uint64_t owned;
    char *error;

    init_dpdk();
    ovs_assert(dev1 > dev0);
    ovs_assert(!dpdk_dma_set_numa_id("dma_skeleton0", 1));
    ovs_assert(!dpdk_dma_set_numa_id("dma_skeleton1", 0));
    error = dpdk_dma_set_numa_id("dma_nonexistent", 0);
    ovs_assert(error && !strcmp(error, "no such DMA device"));
    free(error);

    /* The local device, although the other one comes first. */
    ovs_assert(dpdk_dma_thread_get_channel(0, 0) == dev1);
    /* A free device, even on another node, before a shared local one. */
    helper_start(&a, 0, &ta);
    ovs_assert(helper_claim(&a, 0, &owned) == dev0);
    /* One user each: the local one is shared... */
    helper_start(&b, 0, &tb);
    ovs_assert(helper_claim(&b, 0, &owned) == dev1 && owned == bit(dev1));
    helper_stop(&b, tb);
    /* ...and for a thread on node 1, the one on node 1. */
    helper_start(&b, 1, &tb);
    ovs_assert(helper_claim(&b, 0, &owned) == dev0 && owned == bit(dev0));
    helper_stop(&b, tb);

    helper_stop(&a, ta);
    dpdk_dma_thread_release();
    printf("numa: ok\n");
}

static void
drain(int dev, bool drained)
{
    char *error = dpdk_dma_set_drained(dev == dev0 ? "dma_skeleton0"
                                                   : "dma_skeleton1",
                                       drained);
    ovs_assert(!error);
}

static void
check_claims(unsigned int expected, const char *when)
{
    unsigned int claims = dpdk_dma_thread_claims();

    if (claims != expected) {
        ovs_fatal(0, "%s: %u claims, expected %u", when, claims, expected);
    }
}

/* The failed-claim backoff: a thread that sends to ports with different
 * device lists, none of which has a usable device, looks for one (under the
 * pool's lock) once per list, not once per burst; it looks again at once
 * when a device returns to service, and after a second otherwise. */
static void
test_backoff(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    uint64_t a, b;

    init_dpdk();
    a = bit(dev0);
    b = bit(dev1);
    drain(dev0, true);
    drain(dev1, true);

    /* Two ports, one list each, alternating: a claim per list. */
    for (int i = 0; i < 100; i++) {
        ovs_assert(dpdk_dma_thread_get_channel(a, -1) == -1);
        ovs_assert(dpdk_dma_thread_get_channel(b, -1) == -1);
        ovs_assert(dpdk_dma_thread_get_channel(0, -1) == -1);
    }
    check_claims(3, "three lists, nothing usable");

    /* A device back in service: each list looks again, once. */
    drain(dev1, false);
    for (int i = 0; i < 100; i++) {
        ovs_assert(dpdk_dma_thread_get_channel(a, -1) == -1);
        ovs_assert(dpdk_dma_thread_get_channel(b, -1) == dev1);
        ovs_assert(dpdk_dma_thread_get_channel(0, -1) == dev1);
    }
    check_claims(5, "after an undrain");

    /* A second later, a list is looked for again, once. */
    xsleep(1);
    for (int i = 0; i < 100; i++) {
        ovs_assert(dpdk_dma_thread_get_channel(a, -1) == -1);
    }
    check_claims(6, "a second later");

    drain(dev0, false);
    drain(dev1, false);
    dpdk_dma_thread_release();
    printf("backoff: ok\n");
}

/* Sharing lasts no longer than the shortage: a thread that shares its
 * device moves to one that becomes free (back in service, or left by the
 * thread that had it), at its next look and without taking the pool's lock
 * when it does not share. */
static void
test_relief(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct helper a, b;
    pthread_t ta, tb;
    unsigned int claims;
    uint64_t owned;

    init_dpdk();
    drain(dev1, true);
    ovs_assert(dpdk_dma_thread_get_channel(0, -1) == dev0);
    helper_start(&a, -1, &ta);
    ovs_assert(helper_claim(&a, 0, &owned) == dev0);

    /* A device comes back into service: the first thread to look moves to
     * it, and the other one keeps its device, alone now. */
    drain(dev1, false);
    ovs_assert(dpdk_dma_thread_get_channel(0, -1) == dev1);
    ovs_assert(dpdk_dma_thread_owned() == bit(dev1));
    ovs_assert(helper_claim(&a, 0, &owned) == dev0 && owned == bit(dev0));

    /* Nobody shares: looks take no lock. */
    claims = dpdk_dma_thread_claims();
    for (int i = 0; i < 100; i++) {
        ovs_assert(dpdk_dma_thread_get_channel(0, -1) == dev1);
    }
    check_claims(claims, "no sharing");

    /* A third thread shares a device (the first of two with one user
     * each); the thread of the other device lets it go (as at its exit):
     * the sharer moves there. */
    ovs_assert(dev0 < dev1);
    helper_start(&b, -1, &tb);
    ovs_assert(helper_claim(&b, 0, &owned) == dev0);
    dpdk_dma_thread_release();
    ovs_assert(helper_claim(&b, 0, &owned) == dev1 && owned == bit(dev1));
    ovs_assert(helper_claim(&a, 0, &owned) == dev0 && owned == bit(dev0));

    helper_stop(&b, tb);
    helper_stop(&a, ta);
    dpdk_dma_thread_release();
    printf("relief: ok\n");
}

static const struct ovs_cmdl_command commands[] = {
    {"lists", NULL, 0, 0, test_lists, OVS_RO},
    {"options", NULL, 0, 0, test_options, OVS_RO},
    {"assignment", NULL, 0, 0, test_assignment, OVS_RO},
    {"numa", NULL, 0, 0, test_numa, OVS_RO},
    {"backoff", NULL, 0, 0, test_backoff, OVS_RO},
    {"relief", NULL, 0, 0, test_relief, OVS_RO},
    {NULL, NULL, 0, 0, NULL, OVS_RO},
};

static void
test_dpdk_dma_main(int argc, char *argv[])
{
    struct ovs_cmdl_context ctx = {
        .argc = argc - 1,
        .argv = argv + 1,
    };

    set_program_name(argv[0]);
    vlog_set_levels(NULL, VLF_ANY_DESTINATION, VLL_OFF);
    ovs_cmdl_run_command(&ctx, commands);
}

OVSTEST_REGISTER("test-dpdk-dma", test_dpdk_dma_main);
