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

#ifndef DPDK_DMA_H
#define DPDK_DMA_H 1

#include <stdbool.h>
#include <stdint.h>

struct ds;
struct smap;

/* The pool of DMA devices (DPDK dmadevs) Open vSwitch owns.
 *
 * This module is the only user of DPDK's experimental dmadev API in OVS: the
 * rest of OVS sees DMA devices only through the functions declared here.
 *
 * A device in the pool is configured with one virtual channel (vchan 0,
 * memory to memory), started, and made known to vhost
 * (rte_vhost_async_dma_configure()) by the main thread.  Only DPDK's vhost
 * library then drives the device's data path, serializing it per vchan.  A
 * PMD thread claims a device the first time it needs one and keeps it
 * until it exits; it has the device to itself when there are enough
 * devices, and shares one when PMD threads outnumber devices.  Any thread
 * may poll any device for the completions of a virtqueue.  Device ids fit in
 * a 64-bit mask, as they do in vhost's own table.
 *
 * Thread-safety
 * =============
 *
 * dpdk_dma_init() and dpdk_dma_set_config() run in the main thread.  The
 * dpdk_dma_thread_*() functions act for the calling thread and may be called
 * from any thread; the fast path among them takes no lock. */

#define DPDK_DMA_MAX_DEVS 64

/* Registers the "dpdk-dma/" unixctl commands.  Called once, from
 * dpdk_init(), after the EAL was initialized.  The devices DPDK probed at
 * initialization (through other_config:dpdk-extra) are taken into the pool
 * and started by the first dpdk_dma_set_config(), with the configured
 * dma-ring-size. */
void dpdk_dma_init(void);

/* Applies other_config:dma-devices and other_config:dma-ring-size from
 * 'ovs_other_config': probes devices that are new and starts every device of
 * the pool that is not started yet.  Cheap when nothing changed. */
void dpdk_dma_set_config(const struct smap *ovs_other_config);

/* Parses 'list', a comma-separated list of DMA device names, into '*mask'
 * (a bit per dev_id).  Returns NULL on success, otherwise a malloc()'d
 * message saying what is wrong, for the caller to free. */
char *dpdk_dma_parse_list(const char *list, uint64_t *mask);

/* Returns NULL if every device of 'mask' is in the pool and has not failed,
 * otherwise a malloc()'d message about one that is not, to be freed by the
 * caller.  A device DPDK knows but OVS did not take into its pool belongs
 * to some other user of DPDK. */
char *dpdk_dma_check_usable(uint64_t mask);

/* Appends "NAME (dev_id N, STATE)" for device 'dev_id' to 's'. */
void dpdk_dma_format_device(struct ds *s, int dev_id);

/* Returns the dev_id of a device the calling thread owns and may use for a
 * port that allows the devices of 'allowed' (0 means any device, as for
 * 'tx-dma=auto'), preferring NUMA node 'numa_id'.  If the thread owns none
 * that fits, it claims one: a device no other thread uses if there is one,
 * otherwise it shares the device with the fewest users (DPDK's vhost
 * library serializes each vchan, see dpdk-dma.c), and lets go of the
 * devices it owns that went out of service.  After a failed claim it tries
 * again for the same 'allowed' (it remembers a few lists) only once a
 * device went into or out of service, or a second later, so that a thread
 * that finds none does not take the pool's lock on every packet.  Returns
 * -1 if no usable device fits: the caller copies with the CPU.  A drained
 * or failed device is never returned. */
int dpdk_dma_thread_get_channel(uint64_t allowed, int numa_id);

/* Releases every device the calling thread owns.  The caller must have no
 * copy in flight on them.  Called at thread exit automatically. */
void dpdk_dma_thread_release(void);

/* Returns the mask of the devices the calling thread owns. */
uint64_t dpdk_dma_thread_owned(void);

/* Returns how many times the calling thread looked for a device in the pool
 * (taking its lock) since it started: what the failed-claim backoff of
 * dpdk_dma_thread_get_channel() keeps low. */
unsigned int dpdk_dma_thread_claims(void);

/* Takes device 'name' out of service ('drain') or back into it, as
 * dpdk-dma/drain and dpdk-dma/undrain do.  Returns NULL, or an error
 * message for the caller to free. */
char *dpdk_dma_set_drained(const char *name, bool drain);

/* Makes the pool take device 'name' for one on NUMA node 'numa_id', for
 * tests: DPDK reports no node for virtual devices (rte_dma_info_get() gives
 * the bus device's, SOCKET_ID_ANY for any vdev in DPDK 22.11).  Returns
 * NULL, or an error message for the caller to free. */
char *dpdk_dma_set_numa_id(const char *name, int numa_id);

/* Returns how many more copies device 'dev_id' (in the pool) can take now:
 * close to 0 when copies come in faster than it completes them.  Lock-free,
 * possibly a little stale. */
uint16_t dpdk_dma_free_descriptors(int dev_id);

/* Stores in completed[dev_id] the copies that each device of 'mask' has
 * completed so far (its statistics), for dpdk_dma_fail_stuck().  May be
 * called from any thread. */
void dpdk_dma_read_completed(uint64_t mask,
                             uint64_t completed[DPDK_DMA_MAX_DEVS]);

/* Takes the devices of 'mask' that are stuck out of service for good: they
 * have copies outstanding (their statistics count more copies submitted
 * than completed or failed) and have completed none since
 * dpdk_dma_read_completed() stored 'completed', which the caller did long
 * enough before, polling them meanwhile.  A device that completed copies
 * in the meantime is slow or busy with other users, not stuck, and stays.
 * dpdk-dma/show shows the failed ones as such.  May be called from any
 * thread.  Returns the mask of the devices taken out of service. */
uint64_t dpdk_dma_fail_stuck(uint64_t mask,
                             const uint64_t completed[DPDK_DMA_MAX_DEVS]);

#endif /* dpdk-dma.h */
