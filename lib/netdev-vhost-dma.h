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

#ifndef NETDEV_VHOST_DMA_H
#define NETDEV_VHOST_DMA_H 1

#include <stdbool.h>
#include <stdint.h>

/* vhost-user Tx (guest Rx) through DMA engines, for netdev-dpdk.
 *
 * netdev-dpdk keeps a 'struct netdev_vhost_dma *' per vhost port (NULL
 * until the port gets a 'tx-dma' option) and calls the functions below from
 * its configuration, vhost callbacks, send and statistics code.  Everything
 * about DMA lives here: netdev-dpdk only calls in.
 *
 * Sending: netdev_vhost_dma_send() submits the copies of a burst to the
 * calling PMD thread's DMA channel and records the pending completions in
 * the thread's deferred-work queue (lib/deferred-work.h), which the PMD
 * thread polls between Rx bursts.  The poll writes the used ring, notifies
 * the guest and frees the mbufs.  Packets go through the CPU instead
 * (rte_vhost_enqueue_burst) when they are shorter than 'tx-dma-threshold',
 * or when the thread has no channel, but only if the virtqueue has no DMA
 * copy in flight: mixing would reorder an in-order ring.
 *
 * Lifecycle: the vhost callbacks register the async channels of the
 * guest's Rx virtqueues and, before guest memory can go away (vring
 * disable, SET_MEM_TABLE, destroy), finish or clear the copies in flight.
 * Deferred work items name a port, a txq, a channel and the guest
 * connection they belong to, so work of an old connection (vids are reused)
 * is recognized and dropped from the queue.
 *
 * Thread-safety: the configuration functions run in the main thread, the
 * callbacks in DPDK's vhost thread, netdev_vhost_dma_send() in the thread
 * that holds the txq's lock, with the same rules as the rest of
 * netdev-dpdk. */

struct netdev;
struct netdev_custom_stats;
struct rte_mbuf;
struct smap;

struct netdev_vhost_dma;

/* Configuration, main thread.
 *
 * netdev_vhost_dma_set_config() applies the 'tx-dma' options of 'args'.
 * Options it cannot apply leave the port forwarding with CPU copies, and
 * netdev_vhost_dma_get_error() then returns why (a malloc()'d string for
 * the caller to free), for the Interface's 'error' column; otherwise
 * NULL. */
void netdev_vhost_dma_set_config(struct netdev_vhost_dma **, struct netdev *,
                                 const struct smap *args, bool iommu,
                                 bool postcopy);
char *netdev_vhost_dma_get_error(const struct netdev_vhost_dma *);
uint64_t netdev_vhost_dma_socket_flags(const struct netdev_vhost_dma *);
bool netdev_vhost_dma_needs_reregister(const struct netdev_vhost_dma *,
                                       uint64_t registered_flags);
void netdev_vhost_dma_socket_registered(struct netdev_vhost_dma *,
                                        uint64_t flags);
void netdev_vhost_dma_destroy(struct netdev_vhost_dma *);

/* Returns how many mbufs the DMA-enabled ports may hold in flight at most,
 * to be added to the size of mempools created now: the mbufs of packets
 * whose copies are in flight come from the mempools of the ports they were
 * received on. */
uint32_t netdev_vhost_dma_mbufs_in_flight(void);

/* vhost callbacks. */
void netdev_vhost_dma_new_device(struct netdev_vhost_dma *, int vid);
void netdev_vhost_dma_vring_state_changed(int vid, uint16_t queue_id,
                                          int enable);
void netdev_vhost_dma_destroy_device(int vid);

/* Data path. */
bool netdev_vhost_dma_enabled(const struct netdev_vhost_dma *);
int netdev_vhost_dma_send(struct netdev_vhost_dma *, int vid, int txq,
                          struct rte_mbuf **pkts, int cnt);

/* Statistics. */
void netdev_vhost_dma_get_custom_stats(const struct netdev_vhost_dma *,
                                       struct netdev_custom_stats *);

#endif /* netdev-vhost-dma.h */
