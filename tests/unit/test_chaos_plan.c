/*
 * test_chaos_plan: the pure decisions of `spectra chaos` (tools/chaos_plan.c).
 *
 * How each reply shape is classified for the history (the contract's
 * table, case by case); the operation mix; the fault-list parser; the
 * partition shapes, as properties over random cluster sizes (sides
 * disjoint and non-empty, dropping symmetric, a bridge seeing everyone,
 * the isolated node being the leader); the quorum rule on hand-made
 * worlds; and a random walk of the nemesis that injects and undoes faults
 * and must never leave the cluster without a live, connected majority nor
 * pick a fault that is not enabled. Randomised tests print their seed;
 * set SPECTRA_SEED to replay one.
 *
 * tools/ is linked only into bin/spectra, so the module under test is
 * compiled into this binary by including its source.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testutil.h"

#include <stdio.h>
#include <string.h>

#include "../../tools/chaos_plan.h"
#include "common/err.h"

/* ---- classification ---------------------------------------------------- */

static struct chaos_reply reply_of(enum chaos_reply_type type, const char *str)
{
	return (struct chaos_reply){.type = type, .str = str, .len = str ? strlen(str) : 0};
}

static struct chaos_reply integer(long long v)
{
	return (struct chaos_reply){.type = CHAOS_REPLY_INTEGER, .integer = v};
}

static void test_classify_no_reply(void **state)
{
	(void)state;
	struct chaos_reply none = reply_of(CHAOS_REPLY_NONE, NULL);
	/* A timeout or a dropped connection after sending: it may have run. */
	assert_int_equal(chaos_classify(LIN_READ, &none), LIN_UNKNOWN);
	assert_int_equal(chaos_classify(LIN_WRITE, &none), LIN_UNKNOWN);
	assert_int_equal(chaos_classify(LIN_CAS, &none), LIN_UNKNOWN);
	assert_int_equal(chaos_classify(LIN_DELETE, &none), LIN_UNKNOWN);
}

static void test_classify_errors(void **state)
{
	(void)state;
	struct chaos_reply tryagain = reply_of(CHAOS_REPLY_ERROR, "TRYAGAIN no leader");
	struct chaos_reply unknown = reply_of(CHAOS_REPLY_ERROR, "UNKNOWN leadership lost");
	struct chaos_reply bare_unknown = reply_of(CHAOS_REPLY_ERROR, "UNKNOWN");
	struct chaos_reply err = reply_of(CHAOS_REPLY_ERROR, "ERR wrong number of arguments");
	/* A word that merely starts like UNKNOWN is another error. */
	struct chaos_reply unknownish = reply_of(CHAOS_REPLY_ERROR, "UNKNOWNCOMMAND x");
	for (int k = LIN_READ; k <= LIN_DELETE; k++) {
		assert_int_equal(chaos_classify((enum lin_kind)k, &tryagain), LIN_FAIL);
		assert_int_equal(chaos_classify((enum lin_kind)k, &unknown), LIN_UNKNOWN);
		assert_int_equal(chaos_classify((enum lin_kind)k, &bare_unknown), LIN_UNKNOWN);
		assert_int_equal(chaos_classify((enum lin_kind)k, &err), LIN_FAIL);
		assert_int_equal(chaos_classify((enum lin_kind)k, &unknownish), LIN_FAIL);
		assert_true(chaos_reply_expected((enum lin_kind)k, &err));
	}
}

static void test_classify_success_shapes(void **state)
{
	(void)state;
	struct chaos_reply bulk = reply_of(CHAOS_REPLY_STRING, "w3-17");
	struct chaos_reply nil = reply_of(CHAOS_REPLY_NIL, NULL);
	struct chaos_reply ok = reply_of(CHAOS_REPLY_STATUS, "OK");
	struct chaos_reply queued = reply_of(CHAOS_REPLY_STATUS, "QUEUED");
	struct chaos_reply one = integer(1), zero = integer(0), two = integer(2);
	struct chaos_reply array = reply_of(CHAOS_REPLY_OTHER, NULL);

	assert_int_equal(chaos_classify(LIN_READ, &bulk), LIN_OK);
	assert_int_equal(chaos_classify(LIN_READ, &nil), LIN_OK);
	assert_int_equal(chaos_classify(LIN_WRITE, &ok), LIN_OK);
	assert_int_equal(chaos_classify(LIN_CAS, &one), LIN_OK);
	assert_int_equal(chaos_classify(LIN_CAS, &zero), LIN_FAIL);
	assert_int_equal(chaos_classify(LIN_DELETE, &one), LIN_OK);
	assert_int_equal(chaos_classify(LIN_DELETE, &zero), LIN_OK);

	/* Shapes the contract does not name are unknown, never ok or fail:
	 * a wrong guess either way could hide or invent a violation. */
	struct {
		enum lin_kind kind;
		struct chaos_reply *reply;
	} odd[] = {
	    {LIN_READ, &ok},   {LIN_READ, &one},     {LIN_READ, &array}, {LIN_WRITE, &bulk},
	    {LIN_WRITE, &nil}, {LIN_WRITE, &queued}, {LIN_WRITE, &one},	 {LIN_CAS, &two},
	    {LIN_CAS, &ok},    {LIN_CAS, &bulk},     {LIN_DELETE, &ok},	 {LIN_DELETE, &two},
	    {LIN_CAS, &array},
	};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		assert_int_equal(chaos_classify(odd[i].kind, odd[i].reply), LIN_UNKNOWN);
		assert_false(chaos_reply_expected(odd[i].kind, odd[i].reply));
	}
}

/* ---- the workload mix -------------------------------------------------- */

static void test_op_mix(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "op_mix");
	int counts[LIN_DELETE + 1] = {0};
	const int draws = 100000;
	for (int i = 0; i < draws; i++)
		counts[chaos_pick_op(&rng, true)]++;
	/* 50/30/20 within 2 points (the standard deviation is ~0.16). */
	assert_in_range(counts[LIN_READ], draws * 48 / 100, draws * 52 / 100);
	assert_in_range(counts[LIN_WRITE], draws * 28 / 100, draws * 32 / 100);
	assert_in_range(counts[LIN_CAS], draws * 18 / 100, draws * 22 / 100);
	assert_int_equal(counts[LIN_DELETE], 0);

	memset(counts, 0, sizeof(counts));
	for (int i = 0; i < draws; i++)
		counts[chaos_pick_op(&rng, false)]++;
	assert_int_equal(counts[LIN_CAS], 0);
	assert_in_range(counts[LIN_READ], draws * 68 / 100, draws * 72 / 100);
}

static void test_parse_faults(void **state)
{
	(void)state;
	unsigned m = 99;
	assert_int_equal(chaos_parse_faults("kill,pause,partition", &m), 0);
	assert_int_equal(m, CHAOS_FAULTS_ALL);
	assert_int_equal(chaos_parse_faults("all", &m), 0);
	assert_int_equal(m, CHAOS_FAULTS_ALL);
	assert_int_equal(chaos_parse_faults("partition", &m), 0);
	assert_int_equal(m, 1u << CHAOS_FAULT_PARTITION);
	assert_int_equal(chaos_parse_faults("pause,kill", &m), 0);
	assert_int_equal(m, (1u << CHAOS_FAULT_PAUSE) | (1u << CHAOS_FAULT_KILL));
	assert_int_equal(chaos_parse_faults("none", &m), 0);
	assert_int_equal(m, 0);
	assert_int_equal(chaos_parse_faults("", &m), 0);
	assert_int_equal(m, 0);
	m = 7;
	assert_int_equal(chaos_parse_faults("kill,clock", &m), SP_ERR_INVAL);
	assert_int_equal(chaos_parse_faults("partitions", &m), SP_ERR_INVAL);
	assert_int_equal(chaos_parse_faults("kil", &m), SP_ERR_INVAL);
	assert_int_equal(m, 7); /* untouched on error */
}

/* ---- partitions --------------------------------------------------------- */

static uint64_t all_of(size_t n)
{
	return n >= 64 ? UINT64_MAX : (1ull << n) - 1;
}

/* check_partition asserts what every partition of n nodes must be. */
static void check_partition(const struct chaos_partition *p, size_t n, enum chaos_split kind,
			    size_t leader)
{
	uint64_t all = all_of(n);
	assert_int_equal(p->kind, kind);
	assert_true(p->a != 0 && p->b != 0);
	assert_int_equal(p->a & p->b, 0);
	assert_int_equal((p->a | p->b) & ~all, 0);
	for (size_t i = 0; i < n; i++) {
		uint64_t di = chaos_partition_drops(p, i);
		assert_int_equal(di & (1ull << i), 0); /* never itself */
		for (size_t j = 0; j < n; j++) {
			bool ij = di & (1ull << j);
			bool ji = chaos_partition_drops(p, j) & (1ull << i);
			assert_int_equal(ij, ji); /* symmetric */
		}
	}
	uint64_t middle = all & ~(p->a | p->b);
	switch (kind) {
	case CHAOS_SPLIT_HALVES: {
		assert_int_equal(middle, 0);
		int a = chaos_popcount(p->a), b = chaos_popcount(p->b);
		if (n >= 3) {
			assert_true(a <= (int)(n - 1) / 2); /* a is a minority ... */
			assert_true(b > (int)n / 2);	    /* ... b a majority */
		} else {
			assert_true(a == 1 && b == 1);
		}
		break;
	}
	case CHAOS_SPLIT_ISOLATE:
		assert_int_equal(middle, 0);
		assert_int_equal(chaos_popcount(p->a), 1);
		if (leader < n)
			assert_int_equal(p->a, 1ull << leader);
		break;
	case CHAOS_SPLIT_BRIDGE: {
		assert_int_equal(chaos_popcount(middle), 1);
		size_t m = (size_t)__builtin_ctzll(middle);
		assert_int_equal(chaos_partition_drops(p, m), 0);
		int d = chaos_popcount(p->a) - chaos_popcount(p->b);
		assert_true(d >= -1 && d <= 1);
		break;
	}
	case CHAOS_SPLIT_COUNT:
		fail();
	}
}

static void test_partition_shapes_property(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "partition_shapes");
	for (int round = 0; round < 20000; round++) {
		size_t n = 2 + (size_t)tu_rnd(&rng, CHAOS_MAX_NODES - 1);
		enum chaos_split kind = (enum chaos_split)tu_rnd(&rng, CHAOS_SPLIT_COUNT);
		size_t leader = (size_t)tu_rnd(&rng, n + 2); /* sometimes unknown */
		struct chaos_partition p;
		int rc = chaos_plan_partition(kind, n, leader, &rng, &p);
		if (kind == CHAOS_SPLIT_BRIDGE && n < 3) {
			assert_int_equal(rc, SP_ERR_INVAL);
			continue;
		}
		assert_int_equal(rc, 0);
		check_partition(&p, n, kind, leader);
	}
}

static void test_partition_five_nodes(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "partition_five");
	int bridge_seen[5] = {0}, minority_sizes[3] = {0}, isolated[5] = {0};
	for (int round = 0; round < 5000; round++) {
		struct chaos_partition p;
		assert_int_equal(chaos_plan_partition(CHAOS_SPLIT_BRIDGE, 5, 9, &rng, &p), 0);
		/* {1,2}|{4,5} with 3 seeing everyone, in some numbering. */
		assert_int_equal(chaos_popcount(p.a), 2);
		assert_int_equal(chaos_popcount(p.b), 2);
		bridge_seen[__builtin_ctzll(0x1f & ~(p.a | p.b))]++;

		assert_int_equal(chaos_plan_partition(CHAOS_SPLIT_HALVES, 5, 9, &rng, &p), 0);
		minority_sizes[chaos_popcount(p.a)]++;

		assert_int_equal(chaos_plan_partition(CHAOS_SPLIT_ISOLATE, 5, 9, &rng, &p), 0);
		isolated[__builtin_ctzll(p.a)]++;
		assert_int_equal(chaos_plan_partition(CHAOS_SPLIT_ISOLATE, 5, 3, &rng, &p), 0);
		assert_int_equal(p.a, 1u << 3);
		assert_int_equal(p.b, 0x1f & ~(1u << 3));
	}
	/* Every node gets to be the bridge and the isolated one, and both
	 * minority sizes (1 and 2) come up. */
	for (int i = 0; i < 5; i++) {
		assert_true(bridge_seen[i] > 500);
		assert_true(isolated[i] > 500);
	}
	assert_int_equal(minority_sizes[0], 0);
	assert_true(minority_sizes[1] > 1000 && minority_sizes[2] > 1000);

	struct chaos_partition p;
	assert_int_equal(chaos_plan_partition(CHAOS_SPLIT_HALVES, 1, 0, &rng, &p), SP_ERR_INVAL);
	assert_int_equal(chaos_plan_partition(CHAOS_SPLIT_HALVES, CHAOS_MAX_NODES + 1, 0, &rng, &p),
			 SP_ERR_INVAL);
	assert_int_equal(chaos_plan_partition(CHAOS_SPLIT_COUNT, 5, 0, &rng, &p), SP_ERR_INVAL);
	assert_int_equal(chaos_partition_drops(NULL, 0), 0);
}

static void test_quorum(void **state)
{
	(void)state;
	/* Five nodes: any two may go, not three. */
	assert_true(chaos_has_quorum(5, 0, NULL));
	assert_true(chaos_has_quorum(5, 0x3, NULL));
	assert_true(chaos_has_quorum(5, 0x11, NULL));
	assert_false(chaos_has_quorum(5, 0x7, NULL));
	assert_false(chaos_has_quorum(4, 0x3, NULL));
	assert_true(chaos_has_quorum(4, 0x1, NULL));

	/* {0,1} | {2,3,4}: the majority side holds, until one of it dies. */
	struct chaos_partition halves = {CHAOS_SPLIT_HALVES, 0x3, 0x1c};
	assert_true(chaos_has_quorum(5, 0, &halves));
	assert_true(chaos_has_quorum(5, 0x1, &halves));
	assert_false(chaos_has_quorum(5, 0x4, &halves));

	/* {0,1} | {3,4}, 2 the bridge: {0,1,2} and {2,3,4} are majorities;
	 * without the bridge nobody has one. */
	struct chaos_partition bridge = {CHAOS_SPLIT_BRIDGE, 0x3, 0x18};
	assert_true(chaos_has_quorum(5, 0, &bridge));
	assert_true(chaos_has_quorum(5, 0x1, &bridge));
	assert_false(chaos_has_quorum(5, 0x4, &bridge));
	assert_false(chaos_has_quorum(5, 0x9, &bridge));

	/* Two nodes split one and one: no majority anywhere. */
	struct chaos_partition pair = {CHAOS_SPLIT_HALVES, 0x1, 0x2};
	assert_false(chaos_has_quorum(2, 0, &pair));
}

/* ---- the nemesis -------------------------------------------------------- */

/* A random walk: inject what chaos_choose_fault picks, undo a random
 * active fault now and then, and check each pick against the rules. */
static void test_nemesis_walk(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "nemesis_walk");
	int picked[CHAOS_FAULT_COUNT] = {0}, leader_hits = 0, node_picks = 0, again = 0;
	for (int run = 0; run < 400; run++) {
		size_t n = 1 + (size_t)tu_rnd(&rng, 9);
		unsigned enabled = (unsigned)tu_rnd(&rng, CHAOS_FAULTS_ALL + 1);
		struct chaos_world w = {.n = n, .leader = (size_t)tu_rnd(&rng, n + 1)};
		for (int step = 0; step < 200; step++) {
			if (tu_rnd(&rng, 3) == 0) {
				/* undo something */
				if (w.partitioned && tu_rnd(&rng, 2) == 0)
					w.partitioned = false;
				else if (w.down)
					w.down &= w.down - 1;
				continue;
			}
			struct chaos_choice c;
			int rc = chaos_choose_fault(enabled, &w, &rng, &c);
			if (rc == SP_ERR_AGAIN) {
				again++;
				continue;
			}
			assert_int_equal(rc, 0);
			assert_true(enabled & (1u << c.fault));
			picked[c.fault]++;
			if (c.fault == CHAOS_FAULT_PARTITION) {
				assert_false(w.partitioned);
				check_partition(&c.part, n, c.part.kind, w.leader);
				assert_in_range(c.duration_ms, 2000, 5000);
				w.partitioned = true;
				w.part = c.part;
			} else {
				assert_true(c.target < n);
				assert_false(w.down & (1ull << c.target));
				assert_in_range(c.duration_ms, 1000, 3000);
				node_picks++;
				leader_hits += c.target == w.leader;
				w.down |= 1ull << c.target;
			}
			/* Never more than a minority lost. */
			assert_true(chaos_popcount(w.down) <= (int)(n - 1) / 2);
			assert_true(chaos_has_quorum(n, w.down, w.partitioned ? &w.part : NULL));
		}
	}
	for (int f = 0; f < CHAOS_FAULT_COUNT; f++)
		assert_true(picked[f] > 100);
	assert_true(again > 0);
	/* The leader is aimed at about half the time, more than chance. */
	assert_true(leader_hits * 4 > node_picks);
}

static void test_nemesis_limits(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "nemesis_limits");
	struct chaos_choice c;
	/* Five nodes with two down: no more kills or pauses. */
	struct chaos_world w = {.n = 5, .down = 0x5, .leader = 1};
	assert_int_equal(chaos_choose_fault(1u << CHAOS_FAULT_KILL, &w, &rng, &c), SP_ERR_AGAIN);
	assert_int_equal(chaos_choose_fault(1u << CHAOS_FAULT_PAUSE, &w, &rng, &c), SP_ERR_AGAIN);
	/* Nothing enabled, or a single node: nothing to do. */
	w.down = 0;
	assert_int_equal(chaos_choose_fault(0, &w, &rng, &c), SP_ERR_AGAIN);
	struct chaos_world one = {.n = 1, .leader = 0};
	assert_int_equal(chaos_choose_fault(CHAOS_FAULTS_ALL, &one, &rng, &c), SP_ERR_AGAIN);
	/* A partition in force: no second one. */
	w.partitioned = true;
	w.part = (struct chaos_partition){CHAOS_SPLIT_HALVES, 0x3, 0x1c};
	assert_int_equal(chaos_choose_fault(1u << CHAOS_FAULT_PARTITION, &w, &rng, &c),
			 SP_ERR_AGAIN);
	/* ... and under {0,1}|{2,3,4} only nodes 0 and 1 may be killed:
	 * losing any of 2, 3, 4 would leave no majority. */
	for (int i = 0; i < 200; i++) {
		assert_int_equal(chaos_choose_fault(1u << CHAOS_FAULT_KILL, &w, &rng, &c), 0);
		assert_true(c.target == 0 || c.target == 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classify_no_reply),
	    cmocka_unit_test(test_classify_errors),
	    cmocka_unit_test(test_classify_success_shapes),
	    cmocka_unit_test(test_op_mix),
	    cmocka_unit_test(test_parse_faults),
	    cmocka_unit_test(test_partition_shapes_property),
	    cmocka_unit_test(test_partition_five_nodes),
	    cmocka_unit_test(test_quorum),
	    cmocka_unit_test(test_nemesis_walk),
	    cmocka_unit_test(test_nemesis_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
