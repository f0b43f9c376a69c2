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
 * calling PMD thread's DMA channel (its own, or one it shares when PMD
 * threads outnumber devices) and records the pending completions in the
 * thread's deferred-work queue (lib/deferred-work.h), which the PMD thread
 * polls between Rx bursts.  The poll writes the used ring, notifies the
 * guest and frees the mbufs.  Packets go through the CPU instead
 * (rte_vhost_enqueue_burst) when they are shorter than 'tx-dma-threshold',
 * when the thread has no channel, or for a while after the engine
 * overflowed, but only once the virtqueue has no DMA copy in flight:
 * mixing would reorder an in-order ring.  Several threads may send to one
 * virtqueue (under the txq's lock); each waits only for its own copies,
 * and any of them may complete the virtqueue's copies on any channel.
 *
 * Lifecycle: the vhost callbacks register the async channels of the
 * guest's Rx virtqueues (also of queues enabled after new_device) and,
 * before guest memory can go away (vring disable, SET_MEM_TABLE, destroy),
 * finish or clear the copies in flight, within a bound; copies of a stuck
 * engine are abandoned and the engine taken out of service.  Deferred work
 * names a port, a txq and the number of its thread's last copy there; work
 * of a guest that went away (vids are reused) is dropped from the queue.
 *
 * Thread-safety: the configuration functions run in the main thread, the
 * callbacks in DPDK's vhost thread, netdev_vhost_dma_send() in the thread
 * that holds the txq's lock, with the same rules as the rest of
 * netdev-dpdk. */

struct ds;
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

/* The options of a port, as netdev_vhost_dma_parse_options() reads them
 * from 'args'.  'iommu' and 'postcopy' say whether the port has
 * vhost-iommu-support or vhost-postcopy-support, with which DPDK refuses
 * async copies.  Returns NULL, or the message for the Interface's 'error'
 * column (malloc()'d, for the caller to free), and then 'mode' is
 * NETDEV_VHOST_DMA_OFF.  The pool of DMA devices checks the devices of a
 * list (dpdk_dma_parse_list()). */
enum netdev_vhost_dma_mode {
    NETDEV_VHOST_DMA_OFF,       /* tx-dma=false (the default). */
    NETDEV_VHOST_DMA_AUTO,      /* Any device of the pool. */
    NETDEV_VHOST_DMA_LIST,      /* A device of 'allowed'. */
};
struct netdev_vhost_dma_options {
    enum netdev_vhost_dma_mode mode;
    uint64_t allowed;           /* NETDEV_VHOST_DMA_LIST: dev_id bits. */
    uint32_t threshold;         /* tx-dma-threshold, in bytes. */
};
char *netdev_vhost_dma_parse_options(const struct smap *args, bool iommu,
                                     bool postcopy,
                                     struct netdev_vhost_dma_options *);
char *netdev_vhost_dma_get_error(const struct netdev_vhost_dma *);
uint64_t netdev_vhost_dma_socket_flags(const struct netdev_vhost_dma *);
bool netdev_vhost_dma_needs_reregister(const struct netdev_vhost_dma *,
                                       uint64_t registered_flags);
void netdev_vhost_dma_socket_registered(struct netdev_vhost_dma *,
                                        uint64_t flags);
void netdev_vhost_dma_destroy(struct netdev_vhost_dma *);

/* Before the socket of a port is unregistered: waits until DPDK's vhost
 * thread finished tearing down a connection of the port (see
 * destroy_device below), quiescent meanwhile. */
void netdev_vhost_dma_wait_teardown(struct netdev_vhost_dma *);

/* Returns how many mbufs the DMA-enabled ports may hold in flight at most,
 * to be added to the size of mempools created now: the mbufs of packets
 * whose copies are in flight come from the mempools of the ports they were
 * received on. */
uint32_t netdev_vhost_dma_mbufs_in_flight(void);

/* vhost callbacks, in DPDK's vhost thread (destroy_device also in the
 * thread that unregisters a socket).
 *
 * netdev_vhost_dma_new_connection() is vhost's new_connection callback, for
 * every socket: it follows the connection's vhost-user messages from the
 * first on, which the other callbacks need.  Returns 0.
 *
 * netdev_vhost_dma_new_device() is called by new_device before netdev-dpdk
 * publishes the guest's vid to the threads that send: it starts the
 * port's statistics afresh, as vhost does, and registers the async
 * channels the guest's queues are ready for.
 *
 * netdev_vhost_dma_vring_state_changed() must be called before the event
 * is handed to any other thread: when it returns, guest memory may go
 * away.  It returns false for the notifications that DPDK makes up around a
 * SET_MEM_TABLE on async sockets (every vring disabled, then enabled,
 * whatever the guest asked for): the caller must ignore those.
 *
 * netdev_vhost_dma_destroy_device() must be called for every
 * destroy_device, once no thread sends to 'vid' any more, whether
 * netdev-dpdk still knows the port or not (it is being deleted): it
 * finishes or clears the copies in flight.  It waits for every thread to
 * quiesce (RCU).
 *
 * destroy_device brackets its work with netdev_vhost_dma_teardown_start(),
 * given the port it found (or NULL), and netdev_vhost_dma_teardown_end(),
 * given what the former returned, so that netdev_vhost_dma_wait_teardown()
 * can keep a socket registered until its connection is torn down.
 *
 * netdev_vhost_dma_connection_closed() must be called from
 * destroy_connection, for the port whose socket it names: the port's
 * statistics restart with the next connection, as vhost's own do, and not
 * with a new_device that follows a guest's stop and restart of the device
 * on the same connection, which vhost counts on.  (A socket registered
 * again, see netdev_vhost_dma_socket_registered(), starts a new
 * connection too.) */
/* Appends to 's' a line "  ports: ..." that names the DMA-enabled ports
 * whose connected guest had copies of its queues (txqs) submitted to DMA
 * device 'dev_id' since it connected, or "none".  For dpdk-dma/show. */
void netdev_vhost_dma_format_ports(struct ds *, int dev_id);

int netdev_vhost_dma_new_connection(int vid);
void netdev_vhost_dma_new_device(struct netdev_vhost_dma *, int vid);
void netdev_vhost_dma_connection_closed(struct netdev_vhost_dma *);
bool netdev_vhost_dma_vring_state_changed(int vid, uint16_t queue_id,
                                          int enable);
void netdev_vhost_dma_destroy_device(int vid);
struct netdev_vhost_dma *netdev_vhost_dma_teardown_start(
    struct netdev_vhost_dma *);
void netdev_vhost_dma_teardown_end(struct netdev_vhost_dma *);

/* Data path. */
bool netdev_vhost_dma_enabled(const struct netdev_vhost_dma *);
int netdev_vhost_dma_send(struct netdev_vhost_dma *, int vid, int txq,
                          struct rte_mbuf **pkts, int cnt);

/* Statistics. */
void netdev_vhost_dma_get_custom_stats(const struct netdev_vhost_dma *,
                                       struct netdev_custom_stats *);

#endif /* netdev-vhost-dma.h */
