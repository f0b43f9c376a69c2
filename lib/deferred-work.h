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

#ifndef DEFERRED_WORK_H
#define DEFERRED_WORK_H 1

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deferred-work queue.
 *
 * A thread that starts work it cannot finish at once (a PMD thread that
 * submitted packet copies to a DMA engine, say) records it here and comes
 * back to it later, without ever waiting for it on the spot.
 *
 * An item names a source of pending work: 'ops', an object 'obj' and a
 * 32-bit 'arg' (a netdev and a queue id, for instance).  Adding work for a
 * source that already has an item coalesces into it, so a queue holds at
 * most one item per source and its bound is a number of sources, not of
 * packets.  An item also carries a 64-bit 'mark' that the source defines
 * and each addition replaces: for a source whose work completes in order,
 * the position of the last unit added, so that the poll can tell when the
 * owner's own work is done even if others add work to the same source.
 * While an item exists, the queue holds a reference to 'obj' through
 * 'ops->ref'/'ops->unref', so the object outlives its work even if it was
 * deleted meanwhile.
 *
 * The owner polls the queue regularly (dw_queue_poll(), within a budget),
 * and drains it (dw_queue_drain()) before whatever the work depends on goes
 * away.  The queue allocates only when it grows (if dw_queue_set_max()
 * allows it to: the number of sources its owner feeds at once is not known
 * in advance, but it settles), never waits (only dw_queue_drain() does,
 * with a deadline) and never drops work: when it is full, dw_queue_add()
 * says so and the caller keeps the work.
 *
 * Thread-safety
 * =============
 *
 * A queue belongs to one thread, its owner, which is the only one to call
 * the functions below on it, except dw_queue_get_stats(), which may be
 * called from any thread and reads the counters without synchronization
 * (each counter is read atomically, not the set of them).
 *
 * Each thread has a "current" queue (dw_queue_current()), NULL unless the
 * thread set one with dw_queue_set_current(): so code far below the owner
 * (a netdev's send function) finds the queue of the thread it runs in. */

struct dw_queue;

/* What a source of deferred work can do.  Called by the queue's owner. */
struct dw_ops {
    const char *name;

    /* Makes progress on the work of 'obj'/'arg' up to 'mark' (the mark of
     * the latest addition), without waiting.  Returns how many units of
     * work are still pending afterwards: 0 when all of it is done, and the
     * item is removed.  The count may include work up to 'mark' that was
     * not added to this queue (another owner's); the queue counts no more
     * than was added to the item.  'drain' is true when the owner is
     * draining the queue: the source should then do everything it can. */
    unsigned int (*poll)(void *obj, uint32_t arg, uint64_t mark,
                         bool drain);

    /* Takes and releases a reference to 'obj'.  Either may be NULL. */
    void (*ref)(void *obj);
    void (*unref)(void *obj);
};

struct dw_stats {
    uint64_t added;          /* dw_queue_add() calls that succeeded. */
    uint64_t coalesced;      /* ...of which joined an existing item. */
    uint64_t full;           /* dw_queue_add() calls refused: queue full. */
    uint64_t grown;          /* Times the queue made room for more items. */
    uint64_t polls;          /* Items polled. */
    uint64_t empty_polls;    /* ...that made no progress. */
    uint64_t done;           /* Items whose work was all done. */
    uint64_t drains;         /* dw_queue_drain() calls with items. */
    uint64_t drain_timeouts; /* ...that hit their deadline. */
    uint64_t items;          /* Items in the queue now. */
    uint64_t pending;        /* Units of work pending on them now. */
};

/* Creates a queue for 'capacity' sources at once, which it holds without
 * allocating, and at most, unless dw_queue_set_max() lets it grow (doubling
 * its room each time it is full) up to 'max' sources. */
struct dw_queue *dw_queue_create(size_t capacity);
void dw_queue_set_max(struct dw_queue *, size_t max);
void dw_queue_destroy(struct dw_queue *);

/* Records that 'obj'/'arg' has 'n' more units of pending work, the last
 * of them at 'mark'.  Returns true if the queue has an item for it (new, or
 * existing and coalesced, which replaces its mark), false if the queue is
 * full: the caller then keeps the work and must complete it itself. */
bool dw_queue_add(struct dw_queue *, const struct dw_ops *, void *obj,
                  uint32_t arg, unsigned int n, uint64_t mark);

/* Polls at most 'budget' items, round robin, and removes those whose work
 * is done.  Returns the number of items left. */
size_t dw_queue_poll(struct dw_queue *, size_t budget);

/* Polls every item with 'drain' set until no work is left, or until
 * 'timeout_ms' milliseconds passed.  Items whose work is still pending then
 * stay in the queue.  Returns the number of items left. */
size_t dw_queue_drain(struct dw_queue *, long long int timeout_ms);

/* Drains and removes every item of 'obj' (all 'arg's, or one if 'arg' is
 * not UINT32_MAX) within 'timeout_ms'.  Returns the number of units of work
 * still pending on those items when they were removed: work the caller must
 * now clear by other means. */
unsigned int dw_queue_flush_obj(struct dw_queue *, const struct dw_ops *,
                                void *obj, uint32_t arg,
                                long long int timeout_ms);

/* Removes every item without polling it.  Returns the number of units of
 * work they still had: work that whoever owns it must now clear. */
unsigned int dw_queue_clear(struct dw_queue *);

size_t dw_queue_n_items(const struct dw_queue *);
unsigned int dw_queue_n_pending(const struct dw_queue *);
static inline bool dw_queue_is_empty(const struct dw_queue *q)
{
    return !dw_queue_n_items(q);
}
void dw_queue_get_stats(const struct dw_queue *, struct dw_stats *);

struct dw_queue *dw_queue_current(void);
void dw_queue_set_current(struct dw_queue *);

#endif /* deferred-work.h */
