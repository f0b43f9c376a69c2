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

/* Unit tests of lib/deferred-work.c, run by tests/dma-unit.at. */

#include <config.h>
#undef NDEBUG

#include "deferred-work.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command-line.h"
#include "ovs-thread.h"
#include "ovstest.h"
#include "util.h"

/* A source of work that completes 'per_poll' units per poll ('per_drain'
 * when draining) of each of its queues (an item's 'arg' is a queue index)
 * and counts references and polls.  The mark of an addition is the number
 * of units added to the queue so far, and a poll remembers the mark it was
 * given. */
#define FAKE_N_QUEUES 2
struct fake {
    unsigned int pending[FAKE_N_QUEUES];
    uint64_t added[FAKE_N_QUEUES];
    uint64_t polled_mark;
    unsigned int per_poll;
    unsigned int per_drain;
    unsigned int polls;
    int refs;
};

static unsigned int
fake_poll(void *obj, uint32_t arg, uint64_t mark, bool drain)
{
    struct fake *f = obj;
    unsigned int n = MIN(f->pending[arg], drain ? f->per_drain : f->per_poll);

    f->polls++;
    f->polled_mark = mark;
    f->pending[arg] -= n;
    return f->pending[arg];
}

static void
fake_ref(void *obj)
{
    ((struct fake *) obj)->refs++;
}

static void
fake_unref(void *obj)
{
    ((struct fake *) obj)->refs--;
}

static const struct dw_ops fake_ops = {
    .name = "fake",
    .poll = fake_poll,
    .ref = fake_ref,
    .unref = fake_unref,
};

#define CHECK_EQ(ACTUAL, EXPECTED)                                      \
    do {                                                                \
        long long int actual_ = (ACTUAL), expected_ = (EXPECTED);       \
        if (actual_ != expected_) {                                     \
            fprintf(stderr, "%s:%d: %s is %lld, expected %lld\n",       \
                    __FILE__, __LINE__, #ACTUAL, actual_, expected_);   \
            exit(EXIT_FAILURE);                                         \
        }                                                               \
    } while (0)

static void
fake_add(struct dw_queue *q, struct fake *f, uint32_t arg, unsigned int n)
{
    f->pending[arg] += n;
    f->added[arg] += n;
    CHECK_EQ(dw_queue_add(q, &fake_ops, f, arg, n, f->added[arg]), true);
}

/* Work for one source coalesces into one item, which holds one reference,
 * is polled with the mark of the latest addition and goes away when its
 * work is done. */
static void
test_coalesce(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct dw_queue *q = dw_queue_create(4);
    struct fake f = { .per_poll = 3, .per_drain = 3 };
    struct dw_stats s;

    fake_add(q, &f, 0, 4);
    fake_add(q, &f, 0, 4);
    CHECK_EQ(dw_queue_n_items(q), 1);
    CHECK_EQ(dw_queue_n_pending(q), 8);
    CHECK_EQ(f.refs, 1);

    CHECK_EQ(dw_queue_poll(q, 8), 1);       /* 8 - 3 */
    CHECK_EQ(f.polled_mark, 8);
    CHECK_EQ(dw_queue_n_pending(q), 5);
    dw_queue_get_stats(q, &s);
    CHECK_EQ(s.items, 1);
    CHECK_EQ(s.pending, 5);
    CHECK_EQ(dw_queue_poll(q, 8), 1);       /* 5 - 3 */
    CHECK_EQ(dw_queue_poll(q, 8), 0);       /* 2 - 2 */
    CHECK_EQ(f.pending[0], 0);
    CHECK_EQ(f.refs, 0);
    CHECK_EQ(f.polls, 3);

    dw_queue_get_stats(q, &s);
    CHECK_EQ(s.added, 2);
    CHECK_EQ(s.coalesced, 1);
    CHECK_EQ(s.polls, 3);
    CHECK_EQ(s.done, 1);
    CHECK_EQ(s.empty_polls, 0);
    CHECK_EQ(s.items, 0);
    CHECK_EQ(s.pending, 0);
    dw_queue_destroy(q);
    printf("coalesce: ok\n");
}

/* Two owners share a source whose marks cover each other's work (two PMD
 * threads sending to one virtqueue): each owner's queue counts only what
 * it added, never the other's work that its poll also reports. */
static void
test_shared_mark(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct dw_queue *q1 = dw_queue_create(4);
    struct dw_queue *q2 = dw_queue_create(4);
    struct fake f = { .per_poll = 0, .per_drain = 0 };

    /* 3 units by the first owner, then 5 by the second: a poll with the
     * second's mark reports all 8 as pending. */
    f.pending[0] = 3;
    CHECK_EQ(dw_queue_add(q1, &fake_ops, &f, 0, 3, 3), true);
    f.pending[0] = 8;
    CHECK_EQ(dw_queue_add(q2, &fake_ops, &f, 0, 5, 8), true);
    CHECK_EQ(dw_queue_poll(q1, 8), 1);
    CHECK_EQ(dw_queue_poll(q2, 8), 1);
    CHECK_EQ(dw_queue_n_pending(q1), 3);
    CHECK_EQ(dw_queue_n_pending(q2), 5);

    /* 4 complete: the second owner's item still counts at most its own. */
    f.pending[0] = 4;
    CHECK_EQ(dw_queue_poll(q2, 8), 1);
    CHECK_EQ(dw_queue_n_pending(q2), 4);
    f.pending[0] = 0;
    CHECK_EQ(dw_queue_poll(q1, 8), 0);
    CHECK_EQ(dw_queue_poll(q2, 8), 0);
    CHECK_EQ(f.refs, 0);
    dw_queue_destroy(q1);
    dw_queue_destroy(q2);
    printf("shared-mark: ok\n");
}

/* A full queue refuses new sources, never drops work, and still takes work
 * for sources it has. */
static void
test_full(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct dw_queue *q = dw_queue_create(2);
    struct fake f[3] = { [0 ... 2] = { .per_poll = 1, .per_drain = 1 } };
    struct dw_stats s;

    fake_add(q, &f[0], 0, 1);
    fake_add(q, &f[1], 0, 1);
    CHECK_EQ(dw_queue_add(q, &fake_ops, &f[2], 0, 1, 1), false);
    CHECK_EQ(f[2].refs, 0);
    fake_add(q, &f[1], 0, 1);               /* Coalesces: accepted. */
    CHECK_EQ(dw_queue_n_items(q), 2);

    /* The same object with another 'arg' is another source. */
    CHECK_EQ(dw_queue_add(q, &fake_ops, &f[0], 1, 1, 1), false);

    dw_queue_get_stats(q, &s);
    CHECK_EQ(s.full, 2);
    CHECK_EQ(dw_queue_drain(q, 1000), 0);
    CHECK_EQ(f[0].refs + f[1].refs, 0);
    dw_queue_destroy(q);
    printf("full: ok\n");
}

/* A queue allowed to grow takes new sources beyond its capacity, doubling
 * its room, up to its maximum, keeping every item's work. */
static void
test_grow(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct dw_queue *q = dw_queue_create(2);
    struct fake f[6] = { [0 ... 5] = { .per_poll = 1, .per_drain = 1 } };
    struct dw_stats s;

    dw_queue_set_max(q, 5);
    for (int i = 0; i < 5; i++) {
        fake_add(q, &f[i], 0, i + 1);
    }
    CHECK_EQ(dw_queue_add(q, &fake_ops, &f[5], 0, 1, 1), false);
    CHECK_EQ(dw_queue_n_items(q), 5);
    CHECK_EQ(dw_queue_n_pending(q), 1 + 2 + 3 + 4 + 5);
    dw_queue_get_stats(q, &s);
    CHECK_EQ(s.grown, 2);                   /* 2 -> 4 -> 5. */
    CHECK_EQ(s.full, 1);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(f[i].refs, 1);
    }
    CHECK_EQ(dw_queue_drain(q, 1000), 0);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(f[i].pending[0], 0);
        CHECK_EQ(f[i].refs, 0);
    }
    dw_queue_destroy(q);
    printf("grow: ok\n");
}

/* A budget smaller than the number of items reaches each item in turn. */
static void
test_round_robin(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct dw_queue *q = dw_queue_create(8);
    struct fake f[3] = { [0 ... 2] = { .per_poll = 0, .per_drain = 100 } };
    struct dw_stats s;

    for (int i = 0; i < 3; i++) {
        fake_add(q, &f[i], 0, 10);
    }
    for (int round = 0; round < 6; round++) {
        CHECK_EQ(dw_queue_poll(q, 1), 3);
    }
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(f[i].polls, 2);
    }
    dw_queue_get_stats(q, &s);
    CHECK_EQ(s.empty_polls, 6);

    /* Removing an item in the middle of a round keeps the others in turn. */
    f[1].per_poll = 10;
    for (int round = 0; round < 3; round++) {
        dw_queue_poll(q, 1);
    }
    CHECK_EQ(dw_queue_n_items(q), 2);
    CHECK_EQ(f[0].polls + f[2].polls, 6);
    CHECK_EQ(dw_queue_drain(q, 1000), 0);
    dw_queue_destroy(q);
    printf("round-robin: ok\n");
}

/* Draining gives up at its deadline and keeps what is stuck; flushing an
 * object removes its items and reports the work left. */
static void
test_drain_deadline(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct dw_queue *q = dw_queue_create(8);
    struct fake stuck = { .per_poll = 0, .per_drain = 0 };
    struct fake fine = { .per_poll = 0, .per_drain = 1 };
    struct dw_stats s;

    fake_add(q, &stuck, 0, 5);
    fake_add(q, &stuck, 1, 2);
    fake_add(q, &fine, 0, 3);
    CHECK_EQ(dw_queue_drain(q, 20), 2);
    CHECK_EQ(fine.pending[0], 0);
    CHECK_EQ(fine.refs, 0);
    CHECK_EQ(stuck.refs, 2);

    CHECK_EQ(dw_queue_flush_obj(q, &fake_ops, &stuck, 1, 10), 2);
    CHECK_EQ(stuck.refs, 1);
    CHECK_EQ(dw_queue_flush_obj(q, &fake_ops, &stuck, UINT32_MAX, 10), 5);
    CHECK_EQ(stuck.refs, 0);
    CHECK_EQ(dw_queue_n_items(q), 0);

    dw_queue_get_stats(q, &s);
    CHECK_EQ(s.drains, 1);
    CHECK_EQ(s.drain_timeouts, 3);
    dw_queue_destroy(q);
    printf("drain-deadline: ok\n");
}

static void *
current_thread(void *q)
{
    CHECK_EQ(dw_queue_current() == NULL, true);
    dw_queue_set_current(q);
    CHECK_EQ(dw_queue_current() == q, true);
    return NULL;
}

/* Each thread has its own current queue. */
static void
test_current(struct ovs_cmdl_context *ctx OVS_UNUSED)
{
    struct dw_queue *a = dw_queue_create(1), *b = dw_queue_create(1);

    CHECK_EQ(dw_queue_current() == NULL, true);
    dw_queue_set_current(a);
    xpthread_join(ovs_thread_create("dw_current", current_thread, b), NULL);
    CHECK_EQ(dw_queue_current() == a, true);
    dw_queue_destroy(a);
    CHECK_EQ(dw_queue_current() == NULL, true);
    dw_queue_destroy(b);
    printf("current: ok\n");
}

static const struct ovs_cmdl_command commands[] = {
    {"coalesce", NULL, 0, 0, test_coalesce, OVS_RO},
    {"shared-mark", NULL, 0, 0, test_shared_mark, OVS_RO},
    {"full", NULL, 0, 0, test_full, OVS_RO},
    {"grow", NULL, 0, 0, test_grow, OVS_RO},
    {"round-robin", NULL, 0, 0, test_round_robin, OVS_RO},
    {"drain-deadline", NULL, 0, 0, test_drain_deadline, OVS_RO},
    {"current", NULL, 0, 0, test_current, OVS_RO},
    {NULL, NULL, 0, 0, NULL, OVS_RO},
};

static void
test_deferred_work_main(int argc, char *argv[])
{
    struct ovs_cmdl_context ctx = {
        .argc = argc - 1,
        .argv = argv + 1,
    };

    set_program_name(argv[0]);
    ovs_cmdl_run_command(&ctx, commands);
}

OVSTEST_REGISTER("test-deferred-work", test_deferred_work_main);
