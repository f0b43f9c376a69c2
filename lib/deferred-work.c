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

/* Deferred-work queue: see deferred-work.h for the contract.
 *
 * The items live in an array allocated once: items[0 .. n_items).  A queue
 * holds one item per source of work and a thread sends to few sources, so a
 * linear search finds an item faster than any index would.  Removal moves
 * the last item into the hole, which keeps the array dense; polling goes
 * round robin from a cursor so that a budget smaller than the number of
 * items still reaches every item in turn.
 *
 * Counters have a single writer, the owner, and are read by other threads
 * (unixctl commands): they are atomics accessed with relaxed ordering, which
 * costs the owner plain loads and stores. */

#include <config.h>

#include "deferred-work.h"

#include "ovs-atomic.h"
#include "ovs-thread.h"
#include "timeval.h"
#include "util.h"

struct dw_item {
    const struct dw_ops *ops;
    void *obj;
    uint32_t arg;
    uint64_t mark;              /* Of the latest dw_queue_add(). */
    unsigned int pending;       /* Units of work not known to be done. */
};

struct dw_counters {
    atomic_uint64_t added;
    atomic_uint64_t coalesced;
    atomic_uint64_t full;
    atomic_uint64_t grown;
    atomic_uint64_t polls;
    atomic_uint64_t empty_polls;
    atomic_uint64_t done;
    atomic_uint64_t drains;
    atomic_uint64_t drain_timeouts;
    atomic_uint64_t items;      /* Gauges: copies of 'n_items'... */
    atomic_uint64_t pending;    /* ...and of 'pending', for readers. */
};

struct dw_queue {
    struct dw_item *items;
    size_t n_items;
    size_t capacity;            /* Items allocated... */
    size_t max;                 /* ...and at most, see dw_queue_set_max(). */
    size_t cursor;              /* Next item to poll. */
    unsigned int pending;       /* Sum of the items' 'pending'. */
    struct dw_counters c;
};

DEFINE_STATIC_PER_THREAD_DATA(struct dw_queue *, dw_current, NULL);

static inline void
dw_count(atomic_uint64_t *counter, uint64_t n)
{
    uint64_t value;

    atomic_read_relaxed(counter, &value);
    atomic_store_relaxed(counter, value + n);
}

/* Publishes the queue's occupancy for dw_queue_get_stats(). */
static inline void
dw_publish(struct dw_queue *q)
{
    atomic_store_relaxed(&q->c.items, q->n_items);
    atomic_store_relaxed(&q->c.pending, q->pending);
}

struct dw_queue *
dw_queue_create(size_t capacity)
{
    struct dw_queue *q = xzalloc(sizeof *q);

    ovs_assert(capacity > 0);
    q->items = xcalloc(capacity, sizeof *q->items);
    q->capacity = capacity;
    q->max = capacity;
    return q;
}

void
dw_queue_set_max(struct dw_queue *q, size_t max)
{
    q->max = MAX(max, q->capacity);
}

/* Destroys 'q', which must be empty: work still pending would otherwise be
 * forgotten. */
void
dw_queue_destroy(struct dw_queue *q)
{
    if (q) {
        ovs_assert(!q->n_items);
        if (dw_queue_current() == q) {
            dw_queue_set_current(NULL);
        }
        free(q->items);
        free(q);
    }
}

static struct dw_item *
dw_find(struct dw_queue *q, const struct dw_ops *ops, void *obj, uint32_t arg)
{
    for (size_t i = 0; i < q->n_items; i++) {
        struct dw_item *item = &q->items[i];

        if (item->obj == obj && item->arg == arg && item->ops == ops) {
            return item;
        }
    }
    return NULL;
}

/* Makes room for more items, up to 'q->max'.  Rare: the number of sources
 * that a queue's owner feeds at once settles. */
static bool
dw_grow(struct dw_queue *q)
{
    size_t capacity = q->max / 2 < q->capacity ? q->max : 2 * q->capacity;

    q->items = xrealloc(q->items, capacity * sizeof *q->items);
    q->capacity = capacity;
    dw_count(&q->c.grown, 1);
    return true;
}

bool
dw_queue_add(struct dw_queue *q, const struct dw_ops *ops, void *obj,
             uint32_t arg, unsigned int n, uint64_t mark)
{
    struct dw_item *item = dw_find(q, ops, obj, arg);

    if (item) {
        item->mark = mark;
        item->pending += n;
        q->pending += n;
        dw_count(&q->c.coalesced, 1);
    } else if (q->n_items < q->capacity
               || (q->capacity < q->max && dw_grow(q))) {
        item = &q->items[q->n_items++];
        item->ops = ops;
        item->obj = obj;
        item->arg = arg;
        item->mark = mark;
        item->pending = n;
        q->pending += n;
        if (ops->ref) {
            ops->ref(obj);
        }
    } else {
        dw_count(&q->c.full, 1);
        return false;
    }
    dw_count(&q->c.added, 1);
    dw_publish(q);
    return true;
}

/* Removes the item at index 'i', releasing its object. */
static void
dw_remove(struct dw_queue *q, size_t i)
{
    struct dw_item item = q->items[i];

    q->pending -= item.pending;
    q->items[i] = q->items[--q->n_items];
    if (q->cursor > q->n_items) {
        q->cursor = 0;
    }
    if (item.ops->unref) {
        item.ops->unref(item.obj);
    }
    dw_publish(q);
}

/* Polls the item at index 'i'.  Returns true if it was removed. */
static bool
dw_poll_item(struct dw_queue *q, size_t i, bool drain)
{
    struct dw_item *item = &q->items[i];
    unsigned int left = item->ops->poll(item->obj, item->arg, item->mark,
                                        drain);

    dw_count(&q->c.polls, 1);
    if (left >= item->pending && left) {
        dw_count(&q->c.empty_polls, 1);
    }
    /* 'left' may count work of other queues that the same mark covers
     * (another thread's copies, ahead of this thread's last one): an item
     * never counts more than was added to it. */
    left = MIN(left, item->pending);
    q->pending = q->pending - item->pending + left;
    item->pending = left;
    atomic_store_relaxed(&q->c.pending, q->pending);
    if (!left) {
        dw_count(&q->c.done, 1);
        dw_remove(q, i);
        return true;
    }
    return false;
}

size_t
dw_queue_poll(struct dw_queue *q, size_t budget)
{
    budget = MIN(budget, q->n_items);
    while (budget--) {
        if (q->cursor >= q->n_items) {
            q->cursor = 0;
        }
        /* After a removal the cursor already names the next item. */
        if (!dw_poll_item(q, q->cursor, false)) {
            q->cursor++;
        }
    }
    return q->n_items;
}

size_t
dw_queue_drain(struct dw_queue *q, long long int timeout_ms)
{
    long long int deadline;

    if (!q->n_items) {
        return 0;
    }
    dw_count(&q->c.drains, 1);
    deadline = time_msec() + timeout_ms;
    for (;;) {
        for (size_t i = 0; i < q->n_items; ) {
            if (!dw_poll_item(q, i, true)) {
                i++;
            }
        }
        if (!q->n_items) {
            return 0;
        }
        if (time_msec() >= deadline) {
            dw_count(&q->c.drain_timeouts, 1);
            return q->n_items;
        }
    }
}

unsigned int
dw_queue_flush_obj(struct dw_queue *q, const struct dw_ops *ops, void *obj,
                   uint32_t arg, long long int timeout_ms)
{
    long long int deadline = time_msec() + timeout_ms;
    unsigned int left = 0;
    bool timed_out = false;

    for (size_t i = 0; i < q->n_items; ) {
        struct dw_item *item = &q->items[i];

        if (item->ops != ops || item->obj != obj
            || (arg != UINT32_MAX && item->arg != arg)) {
            i++;
        } else if (dw_poll_item(q, i, true)) {
            /* Done and removed: another item moved to index 'i'. */
        } else if (time_msec() >= deadline) {
            /* Out of time: the caller clears what is left. */
            timed_out = true;
            left += item->pending;
            dw_remove(q, i);
        }
    }
    if (timed_out) {
        dw_count(&q->c.drain_timeouts, 1);
    }
    return left;
}

unsigned int
dw_queue_clear(struct dw_queue *q)
{
    unsigned int left = dw_queue_n_pending(q);

    while (q->n_items) {
        dw_remove(q, q->n_items - 1);
    }
    return left;
}

size_t
dw_queue_n_items(const struct dw_queue *q)
{
    return q->n_items;
}

unsigned int
dw_queue_n_pending(const struct dw_queue *q)
{
    return q->pending;
}

void
dw_queue_get_stats(const struct dw_queue *q_, struct dw_stats *s)
{
    struct dw_queue *q = CONST_CAST(struct dw_queue *, q_);

    atomic_read_relaxed(&q->c.added, &s->added);
    atomic_read_relaxed(&q->c.coalesced, &s->coalesced);
    atomic_read_relaxed(&q->c.grown, &s->grown);
    atomic_read_relaxed(&q->c.full, &s->full);
    atomic_read_relaxed(&q->c.polls, &s->polls);
    atomic_read_relaxed(&q->c.empty_polls, &s->empty_polls);
    atomic_read_relaxed(&q->c.done, &s->done);
    atomic_read_relaxed(&q->c.drains, &s->drains);
    atomic_read_relaxed(&q->c.drain_timeouts, &s->drain_timeouts);
    atomic_read_relaxed(&q->c.items, &s->items);
    atomic_read_relaxed(&q->c.pending, &s->pending);
}

struct dw_queue *
dw_queue_current(void)
{
    return *dw_current_get();
}

void
dw_queue_set_current(struct dw_queue *q)
{
    *dw_current_get() = q;
}
