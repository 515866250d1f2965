/*
 * test_hlc: the hybrid logical clock. Monotonicity under a wall clock that
 * stands still or steps back, merging remote timestamps, the skew bound,
 * counter overflow and saturation, formatting, and a simulation of three
 * nodes with skewed clocks exchanging messages in which happens-before
 * must always mean a smaller timestamp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../lib/testutil.h"
#include "common/err.h"
#include "common/hlc.h"

static uint64_t base_seed;

static void test_layout(void **state)
{
	(void)state;
	uint64_t ts = HLC_MAKE(1700000000123ull, 7);
	assert_int_equal(HLC_MS(ts), 1700000000123ull);
	assert_int_equal(HLC_LOGICAL(ts), 7);
	assert_int_equal(ts, (1700000000123ull << 16) | 7);
	/* The counter is cut to 16 bits and cannot spill into the ms. */
	assert_int_equal(HLC_MAKE(5, 0x1FFFF), HLC_MAKE(5, 0xFFFF));
	assert_int_equal(HLC_MS(HLC_MAKE(HLC_MS_MAX, 0xFFFF)), HLC_MS_MAX);
	assert_int_equal(HLC_MAKE(HLC_MS_MAX, 0xFFFF), UINT64_MAX);

	struct hlc h;
	h.last = 99;
	hlc_init(&h);
	assert_int_equal(h.last, 0);
}

/* A wall clock that stands still, then steps back (NTP), never makes the
 * clock repeat or go back; once the wall clock passes the clock again, the
 * counter resets. */
static void test_monotonic_when_wall_steps_back(void **state)
{
	(void)state;
	struct hlc h;
	hlc_init(&h);
	assert_int_equal(hlc_now(&h, 1000), HLC_MAKE(1000, 0));
	assert_int_equal(hlc_now(&h, 1000), HLC_MAKE(1000, 1));
	assert_int_equal(hlc_now(&h, 1000), HLC_MAKE(1000, 2));
	assert_int_equal(hlc_now(&h, 400), HLC_MAKE(1000, 3)); /* stepped back */
	assert_int_equal(hlc_now(&h, 999), HLC_MAKE(1000, 4));
	assert_int_equal(hlc_now(&h, 1001), HLC_MAKE(1001, 0));

	uint64_t rng = tu_stream(base_seed, "monotonic"), wall = 5000, prev = 0;
	hlc_init(&h);
	for (int k = 0; k < 100000; k++) {
		/* Mostly forward, sometimes still, sometimes back by up to 2 s. */
		uint64_t r = tu_rnd(&rng, 10);
		if (r < 6)
			wall += tu_rnd(&rng, 3);
		else if (r == 6 && wall > 2000)
			wall -= tu_rnd(&rng, 2000);
		uint64_t ts = hlc_now(&h, wall);
		assert_true(ts > prev);
		assert_true(HLC_MS(ts) >= wall);
		prev = ts;
	}
}

/* Observing a remote timestamp ahead of this node puts every later local
 * timestamp above it, even if the wall clock has not got there. */
static void test_observe_later_remote(void **state)
{
	(void)state;
	struct hlc h;
	hlc_init(&h);
	assert_int_equal(hlc_now(&h, 1000), HLC_MAKE(1000, 0));
	uint64_t remote = HLC_MAKE(1500, 9);
	assert_int_equal(hlc_observe(&h, remote, 1001, 0), 0);
	uint64_t ts = hlc_now(&h, 1002);
	assert_true(ts > remote);
	assert_int_equal(ts, HLC_MAKE(1500, 10));
	/* Once the wall clock is past it, time is the wall clock again. */
	assert_int_equal(hlc_now(&h, 1600), HLC_MAKE(1600, 0));

	/* An older remote changes nothing. */
	assert_int_equal(hlc_observe(&h, HLC_MAKE(1200, 3), 1600, 0), 0);
	assert_int_equal(h.last, HLC_MAKE(1600, 0));
	assert_int_equal(hlc_now(&h, 1600), HLC_MAKE(1600, 1));

	/* The same millisecond with a larger counter is later. */
	assert_int_equal(hlc_observe(&h, HLC_MAKE(1600, 40), 1600, 100), 0);
	assert_int_equal(hlc_now(&h, 1600), HLC_MAKE(1600, 41));
}

/* A remote timestamp too far ahead of this node's wall clock is refused
 * and leaves the clock exactly as it was; at the bound it is accepted. */
static void test_skew_refused(void **state)
{
	(void)state;
	struct hlc h;
	hlc_init(&h);
	hlc_now(&h, 10000);
	hlc_now(&h, 10000);
	struct hlc before = h;
	assert_int_equal(hlc_observe(&h, HLC_MAKE(10501, 0), 10000, 500), SP_ERR_RANGE);
	assert_memory_equal(&h, &before, sizeof(h));
	assert_int_equal(hlc_now(&h, 10000), HLC_MAKE(10000, 2));

	assert_int_equal(hlc_observe(&h, HLC_MAKE(10500, 0xFFFF), 10000, 500), 0);
	assert_int_equal(h.last, HLC_MAKE(10500, 0xFFFF));

	/* A bound so large that wall + bound would wrap refuses nothing. */
	assert_int_equal(hlc_observe(&h, HLC_MAKE(HLC_MS_MAX, 0), 10000, UINT64_MAX), 0);
	/* And a huge wall clock with a bound cannot wrap either. */
	hlc_init(&h);
	assert_int_equal(hlc_observe(&h, HLC_MAKE(HLC_MS_MAX, 0), UINT64_MAX - 5, 10), 0);

	/* No bound: anything goes. */
	hlc_init(&h);
	assert_int_equal(hlc_observe(&h, HLC_MAKE(1ull << 40, 0), 0, 0), 0);
	assert_int_equal(h.last, HLC_MAKE(1ull << 40, 0));
}

/* 65,536 events in one millisecond fill the counter; the next carries
 * into the millisecond part, still strictly increasing; the wall clock
 * takes over when it passes. */
static void test_logical_overflow(void **state)
{
	(void)state;
	struct hlc h;
	hlc_init(&h);
	uint64_t prev = 0;
	for (unsigned k = 0; k <= 0xFFFF; k++) {
		uint64_t ts = hlc_now(&h, 2000);
		assert_int_equal(ts, HLC_MAKE(2000, k));
		assert_true(ts > prev);
		prev = ts;
	}
	uint64_t ts = hlc_now(&h, 2000);
	assert_int_equal(ts, HLC_MAKE(2001, 0));
	assert_true(ts > prev);
	assert_int_equal(hlc_now(&h, 2001), HLC_MAKE(2001, 1)); /* wall not past yet */
	assert_int_equal(hlc_now(&h, 2002), HLC_MAKE(2002, 0));

	/* An observed timestamp with a full counter carries the same way. */
	assert_int_equal(hlc_observe(&h, HLC_MAKE(3000, 0xFFFF), 2002, 0), 0);
	assert_int_equal(hlc_now(&h, 2002), HLC_MAKE(3001, 0));

	/* Beyond 48 bits of milliseconds: the wall clock is clamped, and at the
	 * very top the clock saturates instead of wrapping to 0. */
	hlc_init(&h);
	assert_int_equal(hlc_now(&h, UINT64_MAX), HLC_MAKE(HLC_MS_MAX, 0));
	assert_int_equal(hlc_observe(&h, UINT64_MAX - 1, 0, 0), 0);
	assert_int_equal(hlc_now(&h, 0), UINT64_MAX);
	assert_int_equal(hlc_now(&h, 0), UINT64_MAX);
}

static void test_format(void **state)
{
	(void)state;
	char buf[HLC_FORMAT_SIZE];
	assert_string_equal(hlc_format(HLC_MAKE(1700000000123ull, 42), buf, sizeof(buf)),
			    "1700000000123.42");
	assert_string_equal(hlc_format(0, buf, sizeof(buf)), "0.0");
	assert_string_equal(hlc_format(UINT64_MAX, buf, sizeof(buf)), "281474976710655.65535");
	assert_true(strlen(buf) < HLC_FORMAT_SIZE);
	char small[6];
	assert_ptr_equal(hlc_format(HLC_MAKE(123456, 1), small, sizeof(small)), small);
	assert_string_equal(small, "12345");
	assert_ptr_equal(hlc_format(1, small, 0), small); /* writes nothing */
}

/*
 * Three nodes whose wall clocks are offset from true time by up to +-500
 * ms (and jitter, sometimes stepping back) send each other messages that
 * arrive after random delays. Kulkarni et al.'s guarantees, checked on
 * every event:
 *  - each node's timestamps strictly increase;
 *  - e happens-before f implies ts(e) < ts(f): for a message, the receive
 *    event (observe, then now) is later than the send;
 *  - the millisecond part is always some node's wall reading, so it never
 *    exceeds the largest wall reading so far (no counter carries here).
 */
#define SIM_NODES 3
#define SIM_QUEUE 64

struct sim_msg {
	unsigned to;
	uint64_t ts;	     /* the send event's timestamp */
	uint64_t deliver_at; /* true time of arrival */
};

static void test_three_nodes_happens_before(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "three_nodes");
	for (int run = 0; run < 50; run++) {
		struct hlc h[SIM_NODES];
		int64_t offset[SIM_NODES];
		uint64_t last[SIM_NODES] = {0};
		for (unsigned n = 0; n < SIM_NODES; n++) {
			hlc_init(&h[n]);
			offset[n] = (int64_t)tu_rnd(&rng, 1001) - 500;
		}
		struct sim_msg q[SIM_QUEUE];
		unsigned nq = 0;
		uint64_t now = 1000000, max_wall = 0;
		for (int step = 0; step < 5000; step++) {
			now += tu_rnd(&rng, 4);
			unsigned n = (unsigned)tu_rnd(&rng, SIM_NODES);
			int64_t jitter = (int64_t)tu_rnd(&rng, 21) - 10;
			uint64_t wall = (uint64_t)((int64_t)now + offset[n] + jitter);
			if (wall > max_wall)
				max_wall = wall;
			uint64_t ts;
			/* Deliver a message that has arrived at n, if any. */
			unsigned k = 0;
			while (k < nq && !(q[k].to == n && q[k].deliver_at <= now))
				k++;
			if (k < nq && tu_rnd(&rng, 2)) {
				assert_int_equal(hlc_observe(&h[n], q[k].ts, wall, 0), 0);
				ts = hlc_now(&h[n], wall);
				if (ts <= q[k].ts)
					fail_msg("run %d step %d: receive %llu not after send %llu",
						 run, step, (unsigned long long)ts,
						 (unsigned long long)q[k].ts);
				q[k] = q[--nq];
			} else {
				ts = hlc_now(&h[n], wall);
				if (nq < SIM_QUEUE && tu_rnd(&rng, 2)) {
					unsigned to =
					    (n + 1 + (unsigned)tu_rnd(&rng, SIM_NODES - 1)) %
					    SIM_NODES;
					q[nq++] =
					    (struct sim_msg){.to = to,
							     .ts = ts,
							     .deliver_at = now + tu_rnd(&rng, 50)};
				}
			}
			assert_true(ts > last[n]);
			assert_true(HLC_MS(ts) >= wall);
			assert_true(HLC_MS(ts) <= max_wall);
			last[n] = ts;
		}
	}
}

int main(void)
{
	base_seed = tu_seed();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_monotonic_when_wall_steps_back),
	    cmocka_unit_test(test_observe_later_remote),
	    cmocka_unit_test(test_skew_refused),
	    cmocka_unit_test(test_logical_overflow),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_three_nodes_happens_before),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
