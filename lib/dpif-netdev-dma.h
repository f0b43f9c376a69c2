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

#ifndef DPIF_NETDEV_DMA_H
#define DPIF_NETDEV_DMA_H 1

#include <stdint.h>

#include "ovs-atomic.h"

/* Per-PMD accounting of the DMA offload, and dpif-netdev/pmd-dma-show.
 *
 * Each PMD thread registers its deferred-work queue here when it starts
 * (pmd_dma_thread_start()) and unregisters it before it exits.  In between,
 * code that runs in the PMD thread (the vhost DMA send and completion
 * paths) finds the thread's record with pmd_dma_current() and counts what
 * it does: packets submitted to and completed by DMA engines, fallbacks to
 * CPU copies, drops, and the TSC cycles spent in the vhost Tx path per port
 * and per path (DMA: submission plus completion; CPU: enqueue copy), which
 * gives the cycles per packet that pmd-dma-show reports.
 *
 * Thread-safety
 * =============
 *
 * A record has one writer, its PMD thread; its counters are atomics written
 * with relaxed stores (plain stores on the usual architectures) and read by
 * the main thread for pmd-dma-show.  The list of records is guarded by a
 * mutex, taken only at thread start and stop and by the command. */

struct ds;
struct dw_queue;

enum pmd_dma_counter {
    PMD_DMA_SUBMITTED,          /* Copies handed to DMA engines. */
    PMD_DMA_COMPLETED,          /* Copies completed by this thread. */
    PMD_DMA_CPU_FALLBACK,       /* Packets copied by the CPU instead. */
    PMD_DMA_RING_FULL,          /* Packets dropped: DMA ring or vring full. */
    PMD_DMA_NO_CHANNEL,         /* Packets copied by the CPU because the
                                 * thread had no channel (also in
                                 * PMD_DMA_CPU_FALLBACK). */
    PMD_DMA_FORCED_POLLS,       /* Completions harvested at once because the
                                 * deferred-work queue was full. */
    PMD_DMA_ERRORS,             /* Packets dropped: copies ahead of them
                                 * abandoned, or, without a channel, not
                                 * completed in time (stuck engine). */
    PMD_DMA_OVERFLOWS,          /* Times a queue switched to CPU copies for
                                 * a while: DMA or guest ring full. */
    PMD_DMA_N_COUNTERS
};

/* Where the cycles a PMD thread spends in the vhost Tx path of a port go.
 * The cycles per delivered packet of each path count only what delivered
 * packets: accepted submissions and completion polls that completed
 * packets for DMA, the enqueue copy for the CPU.  Submissions that were
 * refused entirely (DMA ring or guest ring full) and completion polls that
 * found nothing are accounted apart: under overload or at low load they
 * are most of the cost, and they deliver nothing. */
enum pmd_dma_cost {
    PMD_DMA_COST_SUBMIT,        /* Submissions vhost accepted packets of. */
    PMD_DMA_COST_COMPLETE,      /* Completion polls that completed some. */
    PMD_DMA_COST_CPU,           /* rte_vhost_enqueue_burst(). */
    PMD_DMA_COST_REFUSED,       /* Submissions that delivered nothing. */
    PMD_DMA_COST_EMPTY_POLL,    /* Completion polls that found nothing. */
    PMD_DMA_N_COSTS
};

enum pmd_dma_path {
    PMD_DMA_PATH_DMA,           /* Submission and completion. */
    PMD_DMA_PATH_CPU,           /* rte_vhost_enqueue_burst(). */
    PMD_DMA_N_PATHS
};

#define PMD_DMA_MAX_PORTS 32
#define PMD_DMA_PORT_NAME_LEN 64

/* One port as seen by one PMD thread. */
struct pmd_dma_port {
    uint64_t port_id;           /* pmd_dma_port_id() of the port; 0: free. */
    atomic_bool gone;           /* Port deleted: the slot may be reused. */
    char name[PMD_DMA_PORT_NAME_LEN];
    atomic_uint64_t cycles[PMD_DMA_N_COSTS];
    atomic_uint64_t calls[PMD_DMA_N_COSTS];
    atomic_uint64_t packets[PMD_DMA_N_PATHS];   /* Delivered. */
};

struct pmd_dma_thread;

/* PMD thread start and stop, called by the PMD thread itself.  Start makes
 * 'dwq' the thread's current deferred-work queue. */
void pmd_dma_thread_start(unsigned int core_id, int numa_id,
                          struct dw_queue *dwq);
void pmd_dma_thread_stop(void);

/* Returns the calling thread's record, or NULL if it is not a PMD thread. */
struct pmd_dma_thread *pmd_dma_current(void);

/* Returns the NUMA node of the PMD thread of 't', or -1 if 't' is NULL. */
int pmd_dma_numa_id(const struct pmd_dma_thread *t);

/* Returns a new identifier for a port, never 0 and never reused. */
uint64_t pmd_dma_port_id(void);

/* Counting, by the owner of 't' (which may be NULL: nothing is counted). */
void pmd_dma_count(struct pmd_dma_thread *t, enum pmd_dma_counter, uint64_t);
void pmd_dma_note_channel(struct pmd_dma_thread *t, int dev_id);

/* Returns the record of port 'port_id' (named 'name') in 't', creating it if
 * needed (in the slot of a deleted port once all are taken), or NULL if 't'
 * is NULL or has no room left (PMD_DMA_MAX_PORTS ports, none deleted). */
struct pmd_dma_port *pmd_dma_port_get(struct pmd_dma_thread *t,
                                      uint64_t port_id, const char *name);

/* Port 'port_id' is being deleted: its records go, and their slots may be
 * reused by other ports.  Any thread. */
void pmd_dma_port_forget(uint64_t port_id);

static inline void
pmd_dma_add__(atomic_uint64_t *counter, uint64_t n)
{
    uint64_t value;

    atomic_read_relaxed(counter, &value);
    atomic_store_relaxed(counter, value + n);
}

/* Accounts 'cycles' spent by 'calls' calls of kind 'cost' for port 'p'
 * (which may be NULL: nothing is counted), which delivered 'packets' (for
 * PMD_DMA_COST_COMPLETE and PMD_DMA_COST_CPU). */
static inline void
pmd_dma_port_count_calls(struct pmd_dma_port *p, enum pmd_dma_cost cost,
                         uint64_t calls, uint64_t cycles, uint64_t packets)
{
    if (p) {
        pmd_dma_add__(&p->cycles[cost], cycles);
        pmd_dma_add__(&p->calls[cost], calls);
        if (packets) {
            pmd_dma_add__(&p->packets[cost == PMD_DMA_COST_CPU
                                      ? PMD_DMA_PATH_CPU
                                      : PMD_DMA_PATH_DMA], packets);
        }
    }
}

/* Accounts 'cycles' spent by one call of kind 'cost' for port 'p', as
 * pmd_dma_port_count_calls() does. */
static inline void
pmd_dma_port_count(struct pmd_dma_port *p, enum pmd_dma_cost cost,
                   uint64_t cycles, uint64_t packets)
{
    pmd_dma_port_count_calls(p, cost, 1, cycles, packets);
}

/* Returns the capacity for a PMD thread's deferred-work queue: 'capacity',
 * unless the environment variable OVS_PMD_DEFERRED_WORK_MAX holds a number
 * from 1 to 'capacity'.  The queue grows beyond 'capacity' when it must
 * (pmd_dma_thread_start()), except with OVS_PMD_DEFERRED_WORK_MAX set: that
 * is for tests only, which make the queue fill up with a few ports. */
size_t pmd_dma_dw_capacity(size_t capacity);

/* Registers dpif-netdev/pmd-dma-show.  'format' appends the name of the DMA
 * device with the given dev_id to a string, for the channels the command
 * lists: the pool of DMA devices, which calls this, knows the names. */
typedef void pmd_dma_format_channel_func(struct ds *, int dev_id);
void pmd_dma_init(pmd_dma_format_channel_func *format);

#endif /* dpif-netdev-dma.h */
