/*
 * test_linearizable: the linearizability checker (src/check/linearizable.c).
 *
 * Hand-made histories known to be linearizable (sequential runs,
 * overlapping writes and reads that admit either order, unknown writes
 * that did or did not happen, CAS chains, failed operations) and known not
 * to be (a stale read after a completed write, a read of a value never
 * written, two CAS that both won from the same value, an acknowledged
 * write lost under later reads, a new-then-old read inversion), each
 * checking the key and operation reported; input validation; the step
 * budget, which must give LIN_GAVE_UP and never a wrong verdict; and a
 * property: random sequential executions of registers, their intervals
 * stretched around the real linearization points so they overlap, are
 * always linearizable, and stop being so when one read is corrupted to a
 * value it cannot have seen. The property prints its seed; set
 * SPECTRA_SEED to replay it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../lib/testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check/linearizable.h"
#include "common/err.h"

/* ---------------------------------------------------------------------- */
/* Building histories                                                      */

/* NIL stands for "absent" wherever a value is expected. */
#define NIL ((const char *)NULL)
/* A return time for LIN_UNKNOWN ops, which the checker ignores. */
#define NEVER 0

static struct lin_value val(const char *s)
{
	if (s == NULL)
		return (struct lin_value){.nil = true};
	return (struct lin_value){.p = (const uint8_t *)s, .len = strlen(s)};
}

static struct lin_op op(enum lin_kind kind, const char *key, uint64_t call, uint64_t ret,
			enum lin_outcome outcome)
{
	return (struct lin_op){.key = (const uint8_t *)key,
			       .klen = strlen(key),
			       .kind = kind,
			       .call = call,
			       .ret = ret,
			       .outcome = outcome};
}

static struct lin_op wr(const char *key, const char *v, uint64_t call, uint64_t ret,
			enum lin_outcome outcome)
{
	struct lin_op o = op(LIN_WRITE, key, call, ret, outcome);
	o.arg = val(v);
	return o;
}

static struct lin_op rd(const char *key, const char *v, uint64_t call, uint64_t ret)
{
	struct lin_op o = op(LIN_READ, key, call, ret, LIN_OK);
	o.result = val(v);
	return o;
}

static struct lin_op cas(const char *key, const char *expect, const char *v, uint64_t call,
			 uint64_t ret, enum lin_outcome outcome)
{
	struct lin_op o = op(LIN_CAS, key, call, ret, outcome);
	o.expect = val(expect);
	o.arg = val(v);
	return o;
}

static struct lin_op del(const char *key, uint64_t call, uint64_t ret, enum lin_outcome outcome)
{
	return op(LIN_DELETE, key, call, ret, outcome);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct lin_result check(const struct lin_op *ops, size_t n)
{
	struct lin_result res;
	assert_int_equal(lin_check(ops, n, 0, &res), 0);
	return res;
}

static void expect_ok(const struct lin_op *ops, size_t n)
{
	struct lin_result res = check(ops, n);
	if (res.verdict != LIN_LINEARIZABLE)
		fail_msg("expected linearizable, got %s (bad op %zu)",
			 lin_verdict_name(res.verdict), res.bad_op);
	assert_null(res.key);
	assert_int_equal(res.bad_op, SIZE_MAX);
	assert_int_equal(res.keys_violated, 0);
	assert_int_equal(res.keys_gave_up, 0);
}

/* expect_bad checks the history is a violation on key, blamed on bad_op
 * (SIZE_MAX: any op of that key). */
static void expect_bad(const struct lin_op *ops, size_t n, const char *key, size_t bad_op)
{
	struct lin_result res = check(ops, n);
	if (res.verdict != LIN_VIOLATION)
		fail_msg("expected a violation, got %s", lin_verdict_name(res.verdict));
	assert_non_null(res.key);
	assert_int_equal(res.klen, strlen(key));
	assert_memory_equal(res.key, key, res.klen);
	assert_true(res.bad_op < n);
	assert_int_equal(ops[res.bad_op].klen, strlen(key));
	assert_memory_equal(ops[res.bad_op].key, key, res.klen);
	if (bad_op != SIZE_MAX && res.bad_op != bad_op)
		fail_msg("blamed op %zu, expected %zu", res.bad_op, bad_op);
	assert_true(res.keys_violated >= 1);
}

/* ---------------------------------------------------------------------- */
/* Linearizable histories                                                  */

static void test_empty_and_trivial(void **state)
{
	(void)state;
	struct lin_result res;
	assert_int_equal(lin_check(NULL, 0, 0, &res), 0);
	assert_int_equal(res.verdict, LIN_LINEARIZABLE);
	assert_int_equal(res.keys, 0);
	assert_int_equal(res.steps, 0);

	struct lin_op one[] = {rd("k", NIL, 1, 2)};
	expect_ok(one, N(one));
	struct lin_op w[] = {wr("k", "a", 1, 2, LIN_OK)};
	expect_ok(w, N(w));
	/* The empty key and the empty value are ordinary. */
	struct lin_op empty[] = {wr("", "", 1, 2, LIN_OK), rd("", "", 3, 4)};
	expect_ok(empty, N(empty));
	struct lin_op empty_bad[] = {wr("", "", 1, 2, LIN_OK), rd("", NIL, 3, 4)};
	expect_bad(empty_bad, N(empty_bad), "", 1);
}

static void test_sequential(void **state)
{
	(void)state;
	struct lin_op ops[] = {
	    rd("x", NIL, 0, 1),	  wr("x", "1", 2, 3, LIN_OK),
	    rd("x", "1", 4, 5),	  wr("x", "2", 6, 7, LIN_OK),
	    rd("x", "2", 8, 9),	  cas("x", "2", "3", 10, 11, LIN_OK),
	    rd("x", "3", 12, 13), del("x", 14, 15, LIN_OK),
	    rd("x", NIL, 16, 17), wr("x", "1", 18, 19, LIN_OK), /* a value may come back */
	    rd("x", "1", 20, 21),
	};
	expect_ok(ops, N(ops));
	struct lin_result res = check(ops, N(ops));
	assert_int_equal(res.keys, 1);
	assert_true(res.steps >= 8);
}

/* Two overlapping writes, then reads: either order is fine, but once a
 * read has shown which write came last, later reads must agree. */
static void test_concurrent_writes_either_order(void **state)
{
	(void)state;
	struct lin_op a_last[] = {
	    wr("k", "a", 0, 10, LIN_OK),
	    wr("k", "b", 2, 8, LIN_OK),
	    rd("k", "a", 11, 12),
	    rd("k", "a", 13, 14),
	};
	expect_ok(a_last, N(a_last));
	struct lin_op b_last[] = {
	    wr("k", "a", 0, 10, LIN_OK),
	    wr("k", "b", 2, 8, LIN_OK),
	    rd("k", "b", 11, 12),
	};
	expect_ok(b_last, N(b_last));
	struct lin_op flip[] = {
	    wr("k", "a", 0, 10, LIN_OK),
	    wr("k", "b", 2, 8, LIN_OK),
	    rd("k", "a", 11, 12),
	    rd("k", "b", 13, 14),
	};
	expect_bad(flip, N(flip), "k", 3);
}

/* A read overlapping a write may return the old value or the new one; but
 * once a read has returned the new value, a read that starts later must not
 * return the old. */
static void test_read_during_write(void **state)
{
	(void)state;
	struct lin_op ops[] = {
	    wr("k", "old", 0, 1, LIN_OK),
	    wr("k", "new", 2, 20, LIN_OK),
	    rd("k", "old", 3, 4),
	    rd("k", "new", 5, 6),
	    rd("k", "new", 7, 8),
	    rd("k", "old", 5, 30), /* overlaps the write: may precede it */
	};
	expect_ok(ops, N(ops));
	struct lin_op inversion[] = {
	    wr("k", "old", 0, 1, LIN_OK), wr("k", "new", 2, 20, LIN_OK), rd("k", "new", 5, 6),
	    rd("k", "old", 7, 8), /* after a read saw new: stale */
	};
	expect_bad(inversion, N(inversion), "k", 3);
}

/* Equal times are concurrent, not ordered. */
static void test_equal_times_concurrent(void **state)
{
	(void)state;
	struct lin_op ops[] = {
	    wr("k", "a", 0, 5, LIN_OK),
	    rd("k", NIL, 5, 6),
	};
	expect_ok(ops, N(ops));
	struct lin_op after[] = {
	    wr("k", "a", 0, 5, LIN_OK),
	    rd("k", NIL, 6, 7),
	};
	expect_bad(after, N(after), "k", 1);
}

static void test_unknown_writes(void **state)
{
	(void)state;
	/* It happened, at some point after its call... */
	struct lin_op happened[] = {
	    wr("k", "a", 0, NEVER, LIN_UNKNOWN),
	    rd("k", "a", 5, 6),
	};
	expect_ok(happened, N(happened));
	/* ...or it did not. */
	struct lin_op did_not[] = {
	    wr("k", "a", 0, NEVER, LIN_UNKNOWN),
	    rd("k", NIL, 5, 6),
	    rd("k", NIL, 7, 8),
	};
	expect_ok(did_not, N(did_not));
	/* It can take effect very late. */
	struct lin_op late[] = {
	    wr("k", "a", 0, NEVER, LIN_UNKNOWN),
	    rd("k", NIL, 5, 6),
	    rd("k", "a", 100, 101),
	};
	expect_ok(late, N(late));
	/* But only once: seen, then gone without another write, is wrong. */
	struct lin_op twice[] = {
	    wr("k", "a", 0, NEVER, LIN_UNKNOWN),
	    rd("k", "a", 5, 6),
	    rd("k", NIL, 7, 8),
	};
	expect_bad(twice, N(twice), "k", 2);
	/* And never before its call. */
	struct lin_op early[] = {
	    rd("k", "a", 0, 1),
	    wr("k", "a", 5, NEVER, LIN_UNKNOWN),
	};
	expect_bad(early, N(early), "k", 0);
	/* An unknown write may also be the one that overwrote another. */
	struct lin_op overwrote[] = {
	    wr("k", "a", 0, 1, LIN_OK), wr("k", "b", 2, NEVER, LIN_UNKNOWN), rd("k", "a", 3, 4),
	    rd("k", "b", 5, 6),		wr("k", "c", 7, 8, LIN_OK),	     rd("k", "c", 9, 10),
	};
	expect_ok(overwrote, N(overwrote));
	/* An unknown write nobody reads changes nothing either way. */
	struct lin_op unseen[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    wr("k", "zzz", 2, NEVER, LIN_UNKNOWN),
	    del("k", 3, NEVER, LIN_UNKNOWN),
	    rd("k", "a", 3, 4),
	};
	expect_ok(unseen, N(unseen));
	/* An unknown delete that did happen. */
	struct lin_op deleted[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    del("k", 2, NEVER, LIN_UNKNOWN),
	    rd("k", "a", 3, 4),
	    rd("k", NIL, 5, 6),
	};
	expect_ok(deleted, N(deleted));
	/* Unknown reads say nothing. */
	struct lin_op rd_unknown[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    rd("k", "nonsense", 2, 3),
	};
	rd_unknown[1].outcome = LIN_UNKNOWN;
	expect_ok(rd_unknown, N(rd_unknown));
}

static void test_failed_ops(void **state)
{
	(void)state;
	/* A failed write never took effect: its value may not be read. */
	struct lin_op ok[] = {
	    wr("k", "a", 0, 1, LIN_FAIL),
	    rd("k", NIL, 2, 3),
	    del("k", 4, 5, LIN_FAIL),
	};
	expect_ok(ok, N(ok));
	struct lin_op seen[] = {
	    wr("k", "a", 0, 1, LIN_FAIL),
	    rd("k", "a", 2, 3),
	};
	expect_bad(seen, N(seen), "k", 1);
	/* A failed delete did not delete. */
	struct lin_op kept[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    del("k", 2, 3, LIN_FAIL),
	    rd("k", NIL, 4, 5),
	};
	expect_bad(kept, N(kept), "k", 2);
	/* Failed reads say nothing. */
	struct lin_op rfail[] = {
	    rd("k", "nonsense", 0, 1),
	};
	rfail[0].outcome = LIN_FAIL;
	expect_ok(rfail, N(rfail));
}

static void test_cas_chains(void **state)
{
	(void)state;
	/* Overlapping CAS that succeed in a chain, in whatever order their
	 * expected values allow. */
	struct lin_op chain[] = {
	    cas("c", "2", "3", 0, 10, LIN_OK),
	    cas("c", NIL, "1", 1, 10, LIN_OK),
	    cas("c", "1", "2", 2, 10, LIN_OK),
	    rd("c", "3", 11, 12),
	};
	expect_ok(chain, N(chain));
	/* A failed CAS: the compare was unequal (or it did not run). */
	struct lin_op failed[] = {
	    wr("c", "a", 0, 1, LIN_OK),
	    cas("c", "b", "x", 2, 3, LIN_FAIL),
	    cas("c", "a", "x", 2, 3, LIN_FAIL), /* would have matched: it did not run */
	    rd("c", "a", 4, 5),
	};
	expect_ok(failed, N(failed));
	/* Losing a CAS does not make its new value visible. */
	struct lin_op fail_seen[] = {
	    wr("c", "a", 0, 1, LIN_OK),
	    cas("c", "b", "x", 2, 3, LIN_FAIL),
	    rd("c", "x", 4, 5),
	};
	expect_bad(fail_seen, N(fail_seen), "c", 2);
	/* An unknown CAS that won, and one that lost. */
	struct lin_op unknown[] = {
	    wr("c", "a", 0, 1, LIN_OK),
	    cas("c", "a", "b", 2, NEVER, LIN_UNKNOWN),
	    cas("c", "zz", "q", 2, NEVER, LIN_UNKNOWN),
	    rd("c", "b", 10, 11),
	};
	expect_ok(unknown, N(unknown));
	/* A CAS whose expected value never held cannot have won... */
	struct lin_op impossible[] = {
	    wr("c", "a", 0, 1, LIN_OK),
	    cas("c", "zz", "q", 2, NEVER, LIN_UNKNOWN),
	    rd("c", "q", 10, 11),
	};
	expect_bad(impossible, N(impossible), "c", 2);
	/* ...and an OK CAS needs its expected value at some point. */
	struct lin_op ok_impossible[] = {
	    wr("c", "a", 0, 1, LIN_OK),
	    cas("c", "b", "c", 2, 3, LIN_OK),
	};
	expect_bad(ok_impossible, N(ok_impossible), "c", 1);
	/* CAS on an absent key. */
	struct lin_op from_nil[] = {
	    cas("c", NIL, "a", 0, 1, LIN_OK),
	    cas("c", NIL, "b", 2, 3, LIN_FAIL),
	    rd("c", "a", 4, 5),
	};
	expect_ok(from_nil, N(from_nil));
}

/* Keys are independent: an order that works for one need not be shared
 * by the other (a history that is fine per key is fine). */
static void test_keys_independent(void **state)
{
	(void)state;
	struct lin_op ops[] = {
	    wr("x", "1", 0, 10, LIN_OK), wr("y", "1", 0, 10, LIN_OK), rd("x", NIL, 1, 2),
	    rd("y", "1", 1, 2),		 rd("x", "1", 3, 4),	      rd("y", "1", 3, 4),
	    rd("xy", NIL, 5, 6),
	};
	expect_ok(ops, N(ops));
	struct lin_result res = check(ops, N(ops));
	assert_int_equal(res.keys, 3);

	/* Two bad keys: the first to appear is reported, both counted. */
	struct lin_op two_bad[] = {
	    wr("good", "1", 0, 1, LIN_OK), rd("good", "1", 2, 3), wr("b2", "1", 0, 1, LIN_OK),
	    wr("b1", "1", 0, 1, LIN_OK),   rd("b1", "2", 2, 3),	  rd("b2", "2", 2, 3),
	};
	res = check(two_bad, N(two_bad));
	assert_int_equal(res.verdict, LIN_VIOLATION);
	assert_int_equal(res.klen, 2);
	assert_memory_equal(res.key, "b2", 2);
	assert_int_equal(res.bad_op, 5);
	assert_int_equal(res.keys, 3);
	assert_int_equal(res.keys_violated, 2);
}

/* ---------------------------------------------------------------------- */
/* Known-bad histories                                                     */

static void test_stale_read(void **state)
{
	(void)state;
	struct lin_op ops[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    wr("k", "b", 2, 3, LIN_OK),
	    rd("k", "a", 4, 5),
	};
	expect_bad(ops, N(ops), "k", 2);
	/* A read of nil after a write finished. */
	struct lin_op nil_after[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    rd("k", NIL, 2, 3),
	};
	expect_bad(nil_after, N(nil_after), "k", 1);
	/* Deleted, then the old value comes back without a write. */
	struct lin_op undead[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    del("k", 2, 3, LIN_OK),
	    rd("k", "a", 4, 5),
	};
	expect_bad(undead, N(undead), "k", 2);
}

static void test_read_never_written(void **state)
{
	(void)state;
	struct lin_op ops[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    rd("k", "a", 2, 3),
	    rd("k", "ghost", 4, 5),
	};
	expect_bad(ops, N(ops), "k", 2);
	/* Written to another key does not count. */
	struct lin_op other_key[] = {
	    wr("j", "a", 0, 1, LIN_OK),
	    rd("k", "a", 2, 3),
	};
	expect_bad(other_key, N(other_key), "k", 1);
	/* Same bytes, different length. */
	struct lin_op prefix[] = {
	    wr("k", "ab", 0, 1, LIN_OK),
	    rd("k", "a", 2, 3),
	};
	expect_bad(prefix, N(prefix), "k", 1);
}

static void test_two_cas_same_expect(void **state)
{
	(void)state;
	struct lin_op ops[] = {
	    wr("k", "0", 0, 1, LIN_OK),
	    cas("k", "0", "a", 2, 10, LIN_OK),
	    cas("k", "0", "b", 3, 9, LIN_OK),
	};
	expect_bad(ops, N(ops), "k", SIZE_MAX);
	/* With a write between them that restores the value, both may win. */
	struct lin_op restored[] = {
	    wr("k", "0", 0, 1, LIN_OK),
	    cas("k", "0", "a", 2, 10, LIN_OK),
	    cas("k", "0", "b", 3, 9, LIN_OK),
	    wr("k", "0", 4, 8, LIN_OK),
	};
	expect_ok(restored, N(restored));
}

static void test_lost_acknowledged_write(void **state)
{
	(void)state;
	struct lin_op ops[] = {
	    wr("k", "v1", 0, 1, LIN_OK), rd("k", "v1", 2, 3),
	    wr("k", "v2", 4, 5, LIN_OK), /* acknowledged... */
	    rd("k", "v1", 6, 7),	 /* ...and lost */
	    rd("k", "v1", 8, 9),
	};
	expect_bad(ops, N(ops), "k", 3);
}

/* ---------------------------------------------------------------------- */
/* Validation                                                              */

static void test_invalid_ops(void **state)
{
	(void)state;
	struct lin_result res;
	struct lin_op good = rd("k", NIL, 1, 2);
	struct lin_op ops[3] = {good, good, good};

	ops[1].kind = 0;
	assert_int_equal(lin_check(ops, 3, 0, &res), SP_ERR_INVAL);
	assert_int_equal(res.bad_op, 1);
	ops[1] = good;
	ops[1].kind = LIN_DELETE + 1;
	assert_int_equal(lin_check(ops, 3, 0, &res), SP_ERR_INVAL);
	ops[1] = good;
	ops[2].outcome = 0;
	assert_int_equal(lin_check(ops, 3, 0, &res), SP_ERR_INVAL);
	assert_int_equal(res.bad_op, 2);
	ops[2] = good;
	ops[2].outcome = LIN_UNKNOWN + 1;
	assert_int_equal(lin_check(ops, 3, 0, &res), SP_ERR_INVAL);
	ops[2] = good;
	ops[0].call = 5;
	ops[0].ret = 4;
	assert_int_equal(lin_check(ops, 3, 0, &res), SP_ERR_INVAL);
	assert_int_equal(res.bad_op, 0);
	ops[0].outcome = LIN_UNKNOWN; /* ret is ignored then */
	assert_int_equal(lin_check(ops, 3, 0, &res), 0);
	ops[0] = good;
	ops[0].key = NULL;
	assert_int_equal(lin_check(ops, 3, 0, &res), SP_ERR_INVAL);
	ops[0].klen = 0; /* NULL with length 0 is the empty key */
	assert_int_equal(lin_check(ops, 3, 0, &res), 0);
	ops[0] = good;
	ops[0].result = (struct lin_value){.p = NULL, .len = 3};
	assert_int_equal(lin_check(ops, 3, 0, &res), SP_ERR_INVAL);
	ops[0].outcome = LIN_FAIL; /* a failed read's result is not looked at */
	assert_int_equal(lin_check(ops, 3, 0, &res), 0);
	ops[0] = wr("k", "a", 1, 2, LIN_OK);
	ops[0].arg.p = NULL;
	assert_int_equal(lin_check(ops, 3, 0, &res), SP_ERR_INVAL);
	ops[0] = cas("k", "a", "b", 1, 2, LIN_OK);
	ops[0].expect.p = NULL;
	assert_int_equal(lin_check(ops, 3, 0, &res), SP_ERR_INVAL);
	/* Fields the kind does not use may hold anything. */
	ops[0] = del("k", 1, 2, LIN_OK);
	ops[0].arg = (struct lin_value){.p = NULL, .len = 99};
	ops[0].expect = ops[0].arg;
	ops[0].result = ops[0].arg;
	assert_int_equal(lin_check(ops, 3, 0, &res), 0);
	assert_int_equal(res.verdict, LIN_LINEARIZABLE);
}

static void test_verdict_names(void **state)
{
	(void)state;
	assert_string_equal(lin_verdict_name(LIN_LINEARIZABLE), "linearizable");
	assert_string_equal(lin_verdict_name(LIN_VIOLATION), "violation");
	assert_string_equal(lin_verdict_name(LIN_GAVE_UP), "gave up");
	assert_string_equal(lin_verdict_name(0), "unknown");
}

/* ---------------------------------------------------------------------- */
/* The step budget                                                         */

static const char *const names[] = {"v0",  "v1",  "v2",	 "v3",	"v4",  "v5",  "v6",
				    "v7",  "v8",  "v9",	 "v10", "v11", "v12", "v13",
				    "v14", "v15", "v16", "v17", "v18", "v19"};

/* hard_history fills ops with `writers` fully concurrent writes of
 * distinct values, then a read of `last` after all of them: the search
 * must consider many orders before it can answer. */
static size_t hard_history(struct lin_op *ops, const char *key, int writers, const char *last)
{
	size_t n = 0;
	for (int i = 0; i < writers; i++)
		ops[n++] = wr(key, names[i], 0, 100, LIN_OK);
	ops[n++] = rd(key, last, 101, 102);
	return n;
}

static void test_budget_gives_up(void **state)
{
	(void)state;
	struct lin_op ops[32];
	struct lin_result res;
	size_t n = hard_history(ops, "h", 12, "nowhere");

	/* Without a budget: a violation, after a long search. */
	assert_int_equal(lin_check(ops, n, 0, &res), 0);
	assert_int_equal(res.verdict, LIN_VIOLATION);
	uint64_t full = res.steps;
	assert_true(full > 10000);
	/* With less than it needs: gave up, not a verdict. */
	uint64_t budgets[] = {1, 2, 100, full / 2, full - 1};
	for (size_t i = 0; i < N(budgets); i++) {
		assert_int_equal(lin_check(ops, n, budgets[i], &res), 0);
		assert_int_equal(res.verdict, LIN_GAVE_UP);
		assert_int_equal(res.steps, budgets[i]);
		assert_int_equal(res.keys_gave_up, 1);
		assert_int_equal(res.keys_violated, 0);
		assert_int_equal(res.klen, 1);
		assert_memory_equal(res.key, "h", 1);
		assert_int_equal(res.bad_op, SIZE_MAX);
	}
	/* With exactly enough, the verdict again. */
	assert_int_equal(lin_check(ops, n, full, &res), 0);
	assert_int_equal(res.verdict, LIN_VIOLATION);

	/* A linearizable history with a budget of one step gives up too. */
	struct lin_op seq[] = {wr("k", "a", 0, 1, LIN_OK), rd("k", "a", 2, 3)};
	assert_int_equal(lin_check(seq, 2, 1, &res), 0);
	assert_int_equal(res.verdict, LIN_GAVE_UP);
	assert_int_equal(lin_check(seq, 2, 2, &res), 0);
	assert_int_equal(res.verdict, LIN_LINEARIZABLE);

	/* A violation in another key still wins over giving up. */
	n = hard_history(ops, "h", 12, "nowhere");
	ops[n++] = wr("z", "a", 0, 1, LIN_OK);
	ops[n++] = rd("z", "b", 2, 3);
	assert_int_equal(lin_check(ops, n, 1000, &res), 0);
	assert_int_equal(res.verdict, LIN_VIOLATION);
	assert_int_equal(res.klen, 1);
	assert_memory_equal(res.key, "z", 1);
	assert_int_equal(res.bad_op, n - 1);
	assert_int_equal(res.keys_gave_up, 1);
	assert_int_equal(res.keys_violated, 1);

	/* The same search, linearizable this time, also ends. */
	n = hard_history(ops, "h", 12, "v5");
	assert_int_equal(lin_check(ops, n, 0, &res), 0);
	assert_int_equal(res.verdict, LIN_LINEARIZABLE);
}

/* ---------------------------------------------------------------------- */
/* Property: real executions are linearizable, corrupted ones are not      */

static const char *const keys[] = {"k0", "k1", "k2", "k3"};
#define FRESH "never-written"

static int value_index(const struct lin_value *v)
{
	if (v->nil)
		return -1;
	for (int i = 0; i < (int)N(names); i++)
		if (v->len == strlen(names[i]) && memcmp(v->p, names[i], v->len) == 0)
			return i;
	return -2;
}

/*
 * gen_history runs a random sequential execution on a few registers and
 * records each op with an interval stretched randomly around the time it
 * really took effect. Mostly the ops come from a few clients, each with
 * one op at a time, as a real test's would; sometimes (short histories)
 * there are no clients and any number of ops overlap. Returns the op
 * count.
 */
static size_t gen_history(uint64_t *s, struct lin_op *ops, size_t max_ops)
{
	bool clients = tu_rnd(s, 4) != 0;
	int n_clients = 1 + (int)tu_rnd(s, 5);
	int n_keys = 1 + (int)tu_rnd(s, N(keys));
	/* Few values repeat a lot (the hard case), many rarely. */
	int n_vals = 1 + (int)tu_rnd(s, tu_rnd(s, 2) ? 6 : N(names));
	uint64_t stretch = 1 + tu_rnd(s, clients ? 200 : 120);
	size_t n = 1 + tu_rnd(s, clients ? max_ops : 40);
	uint64_t free_at[8] = {0};
	int reg[N(keys)]; /* -1 nil, else names index */
	for (size_t k = 0; k < N(keys); k++)
		reg[k] = -1;

	size_t i = 0;
	for (uint64_t slot = 0; i < n; slot++) {
		uint64_t at = 1000 + 10 * slot;
		int c = (int)tu_rnd(s, (uint64_t)n_clients);
		uint64_t call = at - tu_rnd(s, stretch), ret = at + tu_rnd(s, stretch);
		if (clients) {
			if (free_at[c] >= at)
				continue; /* that client is busy: nothing happens now */
			if (call <= free_at[c])
				call = free_at[c] + 1;
			free_at[c] = ret;
		}
		int k = (int)tu_rnd(s, (uint64_t)n_keys);
		const char *key = keys[k];
		int v = (int)tu_rnd(s, (uint64_t)n_vals);
		uint64_t dice = tu_rnd(s, 100);
		struct lin_op o;

		switch (tu_rnd(s, 4)) {
		case 0: /* read */
			o = rd(key, reg[k] < 0 ? NIL : names[reg[k]], call, ret);
			if (dice < 5)
				o.outcome = LIN_UNKNOWN;
			else if (dice < 8)
				o.outcome = LIN_FAIL;
			break;
		case 1: /* write; maybe timed out, maybe refused */
		case 2: {
			bool is_del = tu_rnd(s, 4) == 0;
			o = is_del ? del(key, call, ret, LIN_OK)
				   : wr(key, names[v], call, ret, LIN_OK);
			bool effect = true;
			if (dice < 10) {
				o.outcome = LIN_UNKNOWN;
				effect = tu_rnd(s, 2);
				o.ret = tu_rnd(s, 2) ? NEVER : UINT64_MAX;
			} else if (dice < 15) {
				o.outcome = LIN_FAIL;
				effect = false;
			}
			if (effect)
				reg[k] = is_del ? -1 : v;
			break;
		}
		default: { /* CAS, mostly from the current value */
			int expect =
			    tu_rnd(s, 3) ? reg[k] : (int)tu_rnd(s, (uint64_t)n_vals + 1) - 1;
			o = cas(key, expect < 0 ? NIL : names[expect], names[v], call, ret, LIN_OK);
			bool effect = expect == reg[k];
			if (!effect)
				o.outcome = LIN_FAIL;
			if (dice < 10) {
				o.outcome = LIN_UNKNOWN;
				o.ret = NEVER;
				effect = effect && tu_rnd(s, 2);
			}
			if (effect)
				reg[k] = v;
			break;
		}
		}
		o.client = clients ? (uint64_t)c : i;
		ops[i++] = o;
	}
	return n;
}

static bool same_key(const struct lin_op *a, const struct lin_op *b)
{
	return a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0;
}

/* may_set says whether op o could set its key to value index v (-1 nil). */
static bool may_set(const struct lin_op *o, int v)
{
	if (o->outcome == LIN_FAIL)
		return false;
	switch (o->kind) {
	case LIN_WRITE:
	case LIN_CAS:
		return value_index(&o->arg) == v;
	case LIN_DELETE:
		return v == -1;
	default:
		return false;
	}
}

/* surely_sets_other: o is acknowledged and sets its key to something other
 * than v. */
static bool surely_sets_other(const struct lin_op *o, int v)
{
	if (o->outcome != LIN_OK || o->kind == LIN_READ)
		return false;
	int w = o->kind == LIN_DELETE ? -1 : value_index(&o->arg);
	return w != v;
}

/*
 * cannot_read says whether read r can see value v in no linearization:
 * every op that may set v either starts after r returns, or returns
 * before some acknowledged op that sets another value, which itself
 * returns before r is called (the initial nil counts as set at -inf).
 */
static bool cannot_read(const struct lin_op *ops, size_t n, size_t r, int v)
{
	const struct lin_op *R = &ops[r];
	bool found_dominator_after_start = false;

	for (size_t j = 0; j < n; j++)
		if (same_key(&ops[j], R) && surely_sets_other(&ops[j], v) && ops[j].ret < R->call)
			found_dominator_after_start = true;
	if (v == -1 && !found_dominator_after_start)
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct lin_op *W = &ops[i];
		if (!same_key(W, R) || !may_set(W, v))
			continue;
		if (W->call > R->ret)
			continue;
		if (W->outcome == LIN_UNKNOWN)
			return false;
		bool dominated = false;
		for (size_t j = 0; j < n && !dominated; j++) {
			const struct lin_op *D = &ops[j];
			dominated = same_key(D, R) && surely_sets_other(D, v) && W->ret < D->call &&
				    D->ret < R->call;
		}
		if (!dominated)
			return false;
	}
	return true;
}

#define PROP_MAX_OPS 160
/* Far more than any history the generator makes has needed. */
#define PROP_BUDGET 50000000

static void test_prop_real_executions(void **state)
{
	(void)state;
	uint64_t base = tu_seed();
	static struct lin_op ops[PROP_MAX_OPS];
	int stale_corruptions = 0, fresh_corruptions = 0;

	for (int iter = 0; iter < 1500; iter++) {
		uint64_t seed = base + (uint64_t)iter * 0x9e3779b97f4a7c15ull, s = seed;
		size_t n = gen_history(&s, ops, PROP_MAX_OPS);
		struct lin_result res;

		assert_int_equal(lin_check(ops, n, PROP_BUDGET, &res), 0);
		if (res.verdict != LIN_LINEARIZABLE) {
			fprintf(stderr,
				"real execution judged %s (op %zu, %" PRIu64
				" steps); SPECTRA_SEED=%" PRIu64 " iteration %d\n",
				lin_verdict_name(res.verdict), res.bad_op, res.steps, base, iter);
			fail();
		}

		/* Corrupt one acknowledged read. */
		size_t reads[PROP_MAX_OPS], n_reads = 0;
		for (size_t i = 0; i < n; i++)
			if (ops[i].kind == LIN_READ && ops[i].outcome == LIN_OK)
				reads[n_reads++] = i;
		if (n_reads == 0)
			continue;
		size_t r = reads[tu_rnd(&s, n_reads)];
		int candidates[N(names) + 2], n_cand = 0;
		for (int v = -1; v < (int)N(names); v++)
			if (v != value_index(&ops[r].result) && cannot_read(ops, n, r, v))
				candidates[n_cand++] = v;
		struct lin_op saved = ops[r];
		if (n_cand > 0 && tu_rnd(&s, 3) != 0) {
			int v = candidates[tu_rnd(&s, (uint64_t)n_cand)];
			ops[r].result = val(v < 0 ? NIL : names[v]);
			stale_corruptions++;
		} else {
			ops[r].result = val(FRESH);
			fresh_corruptions++;
		}
		assert_int_equal(lin_check(ops, n, PROP_BUDGET, &res), 0);
		if (res.verdict != LIN_VIOLATION || !same_key(&ops[res.bad_op], &ops[r])) {
			fprintf(stderr,
				"corrupted read %zu judged %s (op %zu); SPECTRA_SEED=%" PRIu64
				" iteration %d\n",
				r, lin_verdict_name(res.verdict), res.bad_op, base, iter);
			fail();
		}
		ops[r] = saved;
	}
	/* The stale case is the interesting one: make sure it is exercised. */
	assert_true(stale_corruptions > 100);
	assert_true(fresh_corruptions > 100);
}

/* ---------------------------------------------------------------------- */
/* Property: the checker agrees with brute force on small histories        */

/*
 * A reference checker that knows none of lin_check's shortcuts: it tries
 * every sequence of every subset of the ops, with the semantics written
 * out literally. An OK op must appear, between its call and its return;
 * a FAIL op of any kind may appear only as a CAS whose compare failed
 * (within its interval) or not at all; an UNKNOWN op may appear anywhere
 * after its call, a CAS then either swapping or failing its compare, or
 * not at all. Every key is its own register.
 */
#define BF_MAX 7

struct bf {
	const struct lin_op *ops;
	size_t n;
	int state[BF_MAX]; /* per op's key: -1 nil, else a value code */
	int key_of[BF_MAX];
	bool placed[BF_MAX];
};

static int bf_code(const struct lin_value *v)
{
	return v->nil ? -1 : (int)v->p[0];
}

static bool bf_required(const struct lin_op *o)
{
	return o->outcome == LIN_OK;
}

static uint64_t bf_ret(const struct lin_op *o)
{
	return o->outcome == LIN_UNKNOWN ? UINT64_MAX : o->ret;
}

/* bf_may_go says op i may be next: nothing still to come had to precede
 * it, and nothing already placed had to follow it. */
static bool bf_may_go(const struct bf *b, size_t i)
{
	for (size_t j = 0; j < b->n; j++) {
		if (j == i)
			continue;
		if (!b->placed[j] && bf_required(&b->ops[j]) && bf_ret(&b->ops[j]) < b->ops[i].call)
			return false;
		if (b->placed[j] && bf_ret(&b->ops[i]) < b->ops[j].call)
			return false;
	}
	return true;
}

static bool bf_search(struct bf *b)
{
	bool done = true;
	for (size_t i = 0; i < b->n; i++)
		if (!b->placed[i] && bf_required(&b->ops[i]))
			done = false;
	if (done)
		return true;
	for (size_t i = 0; i < b->n; i++) {
		const struct lin_op *o = &b->ops[i];
		if (b->placed[i] || !bf_may_go(b, i))
			continue;
		int *st = &b->state[b->key_of[i]], old = *st;
		/* The ways op i can take effect here, as new values (or -2
		 * for "leaves the value alone"). */
		int outcomes[2], n_out = 0;
		switch (o->kind) {
		case LIN_READ:
			if (o->outcome == LIN_UNKNOWN ||
			    (o->outcome == LIN_OK && bf_code(&o->result) == old))
				outcomes[n_out++] = -2;
			break;
		case LIN_WRITE:
			if (o->outcome != LIN_FAIL)
				outcomes[n_out++] = bf_code(&o->arg);
			break;
		case LIN_DELETE:
			if (o->outcome != LIN_FAIL)
				outcomes[n_out++] = -1;
			break;
		case LIN_CAS:
			if (bf_code(&o->expect) == old && o->outcome != LIN_FAIL)
				outcomes[n_out++] = bf_code(&o->arg);
			if (bf_code(&o->expect) != old && o->outcome != LIN_OK)
				outcomes[n_out++] = -2;
			break;
		}
		for (int k = 0; k < n_out; k++) {
			b->placed[i] = true;
			*st = outcomes[k] == -2 ? old : outcomes[k];
			bool ok = bf_search(b);
			*st = old;
			b->placed[i] = false;
			if (ok)
				return true;
		}
	}
	return false;
}

static bool brute_force(const struct lin_op *ops, size_t n)
{
	struct bf b = {.ops = ops, .n = n};
	for (size_t i = 0; i < n; i++) {
		b.key_of[i] = (int)i;
		for (size_t j = 0; j < i; j++)
			if (same_key(&ops[i], &ops[j])) {
				b.key_of[i] = b.key_of[j];
				break;
			}
		b.state[i] = -1;
	}
	return bf_search(&b);
}

static struct lin_value bf_value(uint64_t *s)
{
	static const char *const vals[] = {NIL, "a", "b"};
	return val(vals[tu_rnd(s, 3)]);
}

static void test_prop_matches_brute_force(void **state)
{
	(void)state;
	uint64_t base = tu_seed();
	int verdicts[4] = {0};

	for (int iter = 0; iter < 20000; iter++) {
		uint64_t seed = base + (uint64_t)iter * 0x9e3779b97f4a7c15ull, s = seed;
		struct lin_op ops[BF_MAX];
		size_t n = 1 + tu_rnd(&s, BF_MAX - 1 + (iter % 4 == 0));
		int n_keys = 1 + (int)tu_rnd(&s, 2);

		for (size_t i = 0; i < n; i++) {
			const char *key = keys[tu_rnd(&s, (uint64_t)n_keys)];
			uint64_t call = tu_rnd(&s, 12), ret = call + tu_rnd(&s, 8);
			enum lin_outcome out = (enum lin_outcome)(
			    LIN_OK + (tu_rnd(&s, 4) == 0 ? 1 + tu_rnd(&s, 2) : 0));
			switch (tu_rnd(&s, 4)) {
			case 0:
				ops[i] = op(LIN_READ, key, call, ret, out);
				ops[i].result = bf_value(&s);
				break;
			case 1:
				ops[i] = op(LIN_WRITE, key, call, ret, out);
				ops[i].arg = bf_value(&s);
				break;
			case 2:
				ops[i] = op(LIN_CAS, key, call, ret, out);
				ops[i].expect = bf_value(&s);
				ops[i].arg = bf_value(&s);
				break;
			default:
				ops[i] = op(LIN_DELETE, key, call, ret, out);
				break;
			}
		}
		struct lin_result res;
		assert_int_equal(lin_check(ops, n, 0, &res), 0);
		bool want = brute_force(ops, n);
		verdicts[res.verdict]++;
		if ((res.verdict == LIN_LINEARIZABLE) != want || res.verdict == LIN_GAVE_UP) {
			fprintf(stderr,
				"%zu ops: checker says %s, brute force %s; SPECTRA_SEED=%" PRIu64
				" iteration %d\n",
				n, lin_verdict_name(res.verdict),
				want ? "linearizable" : "violation", base, iter);
			fail();
		}
	}
	/* Both verdicts must be common for the comparison to mean much. */
	assert_true(verdicts[LIN_LINEARIZABLE] > 3000);
	assert_true(verdicts[LIN_VIOLATION] > 3000);
}

/*
 * Scale: a few thousand ops on one key and ~5000 over 20 keys, with
 * unique values and a dozen clients overlapping, as the simulator makes
 * them. The search should stay near-linear in the op count.
 */
static void test_scale(void **state)
{
	(void)state;
	enum { N_OPS = 5000 };
	static struct lin_op ops[N_OPS];
	static char vals[N_OPS][24];
	static char keybuf[20][16];
	uint64_t s = 12345;

	for (int key_count = 1; key_count <= 20; key_count += 19) {
		int reg[20];
		for (int k = 0; k < 20; k++) {
			reg[k] = -1;
			snprintf(keybuf[k], sizeof(keybuf[k]), "key%d", k);
		}
		for (int i = 0; i < N_OPS; i++) {
			uint64_t at = 1000 + 10 * (uint64_t)i;
			int k = (int)tu_rnd(&s, (uint64_t)key_count);
			uint64_t call = at - tu_rnd(&s, 120), ret = at + tu_rnd(&s, 120);
			snprintf(vals[i], sizeof(vals[i]), "v%d", i);
			if (tu_rnd(&s, 2)) {
				ops[i] = rd(keybuf[k], reg[k] < 0 ? NIL : vals[reg[k]], call, ret);
			} else {
				ops[i] = wr(keybuf[k], vals[i], call, ret, LIN_OK);
				if (tu_rnd(&s, 20) == 0) {
					ops[i].outcome = LIN_UNKNOWN;
					if (tu_rnd(&s, 2))
						continue; /* never took effect */
				}
				reg[k] = i;
			}
		}
		struct lin_result res;
		clock_t t0 = clock();
		assert_int_equal(lin_check(ops, N_OPS, 0, &res), 0);
		double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
		fprintf(stderr, "    %d keys, %d ops: %s, %" PRIu64 " steps, %.3f s\n", key_count,
			N_OPS, lin_verdict_name(res.verdict), res.steps, secs);
		assert_int_equal(res.verdict, LIN_LINEARIZABLE);
		assert_int_equal(res.keys, (size_t)key_count);
		assert_true(res.steps < 200ull * N_OPS);
	}
}

/* ---------------------------------------------------------------------- */
/* The caller's stop function (lin_check_ex)                               */

/* A should_stop that counts its polls and says stop at the stop_at-th
 * (never when 0). */
struct stopper {
	uint64_t polls;
	uint64_t stop_at;
};

static bool stop_at_poll(void *ctx)
{
	struct stopper *st = ctx;
	st->polls++;
	return st->stop_at != 0 && st->polls >= st->stop_at;
}

static struct lin_result check_stopping(const struct lin_op *ops, size_t n, uint64_t poll,
					uint64_t max_steps, struct stopper *st)
{
	struct lin_options opts = {.max_steps = max_steps,
				   .should_stop = stop_at_poll,
				   .stop_ctx = st,
				   .poll_steps = poll};
	struct lin_result res;
	assert_int_equal(lin_check_ex(ops, n, &opts, &res), 0);
	return res;
}

static void test_should_stop(void **state)
{
	(void)state;
	struct lin_op ops[40];
	struct lin_result res;
	size_t n = hard_history(ops, "h", 12, "nowhere");
	assert_int_equal(lin_check(ops, n, 0, &res), 0);
	uint64_t full = res.steps;
	assert_true(full > 2 * LIN_POLL_STEPS);

	/* Polled every poll_steps steps, never at step 0; a function that
	 * never says stop changes nothing. */
	struct stopper st = {0};
	res = check_stopping(ops, n, 100, 0, &st);
	assert_int_equal(res.verdict, LIN_VIOLATION);
	assert_int_equal(res.steps, full);
	assert_false(res.stopped);
	assert_int_equal(st.polls, (full - 1) / 100);

	/* Stopped at the third poll: gave up there, on that key. */
	st = (struct stopper){.stop_at = 3};
	res = check_stopping(ops, n, 100, 0, &st);
	assert_int_equal(res.verdict, LIN_GAVE_UP);
	assert_true(res.stopped);
	assert_int_equal(st.polls, 3);
	assert_int_equal(res.steps, 300);
	assert_int_equal(res.keys_gave_up, 1);
	assert_int_equal(res.keys_skipped, 0);
	assert_int_equal(res.keys_violated, 0);
	assert_int_equal(res.bad_op, SIZE_MAX);
	assert_int_equal(res.klen, 1);
	assert_memory_equal(res.key, "h", 1);

	/* poll_steps 0 polls every LIN_POLL_STEPS. */
	st = (struct stopper){.stop_at = 1};
	res = check_stopping(ops, n, 0, 0, &st);
	assert_int_equal(res.verdict, LIN_GAVE_UP);
	assert_int_equal(res.steps, LIN_POLL_STEPS);

	/* The step bound, reached before any poll, is not a stop. */
	st = (struct stopper){.stop_at = 1};
	res = check_stopping(ops, n, 100, 50, &st);
	assert_int_equal(res.verdict, LIN_GAVE_UP);
	assert_false(res.stopped);
	assert_int_equal(st.polls, 0);
	assert_int_equal(res.steps, 50);

	/* A key decided in fewer steps than a poll is decided, however
	 * eager the function is to stop. */
	struct lin_op seq[] = {wr("k", "a", 0, 1, LIN_OK), rd("k", "a", 2, 3)};
	st = (struct stopper){.stop_at = 1};
	res = check_stopping(seq, N(seq), 100, 0, &st);
	assert_int_equal(res.verdict, LIN_LINEARIZABLE);
	assert_int_equal(st.polls, 0);
	struct lin_op stale[] = {wr("k", "a", 0, 1, LIN_OK), rd("k", NIL, 2, 3)};
	res = check_stopping(stale, N(stale), 100, 0, &st);
	assert_int_equal(res.verdict, LIN_VIOLATION);
	assert_int_equal(st.polls, 0);

	/* Once stopped, the keys after are not searched: "z" is a plain
	 * violation, but it comes after the stopped key. */
	n = hard_history(ops, "h", 12, "nowhere");
	ops[n++] = wr("z", "a", 0, 1, LIN_OK);
	ops[n++] = rd("z", "b", 2, 3);
	ops[n++] = wr("y", "a", 0, 1, LIN_OK);
	st = (struct stopper){.stop_at = 1};
	res = check_stopping(ops, n, 100, 0, &st);
	assert_int_equal(res.verdict, LIN_GAVE_UP);
	assert_true(res.stopped);
	assert_int_equal(res.keys, 3);
	assert_int_equal(res.keys_gave_up, 3);
	assert_int_equal(res.keys_skipped, 2);
	assert_int_equal(res.keys_violated, 0);
	assert_memory_equal(res.key, "h", 1);
	assert_int_equal(st.polls, 1);

	/* A violation found before the stop still wins. */
	struct lin_op first[40];
	size_t m = 0;
	first[m++] = wr("z", "a", 0, 1, LIN_OK);
	first[m++] = rd("z", "b", 2, 3);
	m += hard_history(first + m, "h", 12, "nowhere");
	st = (struct stopper){.stop_at = 1};
	res = check_stopping(first, m, 100, 0, &st);
	assert_int_equal(res.verdict, LIN_VIOLATION);
	assert_true(res.stopped);
	assert_memory_equal(res.key, "z", 1);
	assert_int_equal(res.bad_op, 1);
	assert_int_equal(res.keys_violated, 1);
	assert_int_equal(res.keys_gave_up, 1);

	/* No options is lin_check with no bound. */
	assert_int_equal(lin_check_ex(ops, n, NULL, &res), 0);
	assert_int_equal(res.verdict, LIN_VIOLATION);
	assert_false(res.stopped);
	assert_int_equal(res.keys_skipped, 0);
}

struct deadline_ctx {
	struct timespec at;
};

static bool past(void *ctx)
{
	const struct deadline_ctx *d = ctx;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > d->at.tv_sec ||
	       (now.tv_sec == d->at.tv_sec && now.tv_nsec >= d->at.tv_nsec);
}

/* A search that would take far longer than the test ends soon after a
 * deadline the caller's function reads from the clock. */
static void test_should_stop_wall_clock(void **state)
{
	(void)state;
	/* hard_history's shape with more writers than names[] has. */
	enum { WRITERS = 34 };
	static char values[WRITERS][16];
	struct lin_op ops[WRITERS + 1];
	size_t n = 0;
	for (int i = 0; i < WRITERS; i++) {
		snprintf(values[i], sizeof(values[i]), "w%d", i);
		ops[n++] = wr("h", values[i], 0, 100, LIN_OK);
	}
	ops[n++] = rd("h", "nowhere", 101, 102);
	struct deadline_ctx d;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	d.at = t0;
	d.at.tv_nsec += 100 * 1000000L;
	if (d.at.tv_nsec >= 1000000000L) {
		d.at.tv_sec++;
		d.at.tv_nsec -= 1000000000L;
	}
	struct lin_options opts = {.should_stop = past, .stop_ctx = &d};
	struct lin_result res;
	assert_int_equal(lin_check_ex(ops, n, &opts, &res), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_int_equal(res.verdict, LIN_GAVE_UP);
	assert_true(res.stopped);
	assert_true(secs >= 0.1);
	assert_true(secs < 5);
}

/* ---------------------------------------------------------------------- */
/* lin_explain                                                             */

/* explain checks lin_explain's answer for a violating history is exactly
 * want (indices in call order), terminated by SIZE_MAX. */
static void expect_explained(const struct lin_op *ops, size_t n, const size_t *want)
{
	struct lin_result res = check(ops, n);
	assert_int_equal(res.verdict, LIN_VIOLATION);
	size_t got[64], k = 0;
	size_t total = lin_explain(ops, n, &res, got, N(got));
	while (want[k] != SIZE_MAX)
		k++;
	bool same = total == k;
	for (size_t i = 0; same && i < k; i++)
		same = got[i] == want[i];
	if (!same) {
		for (size_t i = 0; i < total && i < N(got); i++)
			print_error("got %zu\n", got[i]);
		fail_msg("explanation differs (%zu ops, wanted %zu)", total, k);
	}
}

static void test_explain(void **state)
{
	(void)state;
	/* A stale read: the write it should have seen returned before it was
	 * called. The explanation: the write of the value read, the write
	 * that overwrote it, and the read. */
	struct lin_op stale[] = {
	    wr("k", "v0", 0, 1, LIN_OK), /* long ago: not shown */
	    rd("k", "v0", 2, 3),	 /* likewise */
	    wr("k", "v1", 4, 5, LIN_OK), /* wrote what the read saw */
	    wr("k", "v2", 6, 7, LIN_OK), /* immediately precedes it */
	    rd("k", "v1", 8, 9),	 /* bad */
	    wr("j", "v1", 8, 9, LIN_OK), /* another key */
	};
	expect_explained(stale, N(stale), (size_t[]){2, 3, 4, SIZE_MAX});

	/* Everything that overlaps the bad op, equal times included, and
	 * every immediate predecessor; not failed ops, unknown reads or ops
	 * wholly after it. */
	struct lin_op overlap[] = {
	    wr("k", "a", 0, 10, LIN_OK),	    /* 0: writes what it saw */
	    wr("k", "b", 20, 30, LIN_OK),	    /* 1: immediate predecessor */
	    rd("k", "b", 25, 40),		    /* 2: immediate predecessor */
	    wr("k", "c", 35, 55, LIN_OK),	    /* 3: overlaps, from before */
	    rd("k", "a", 50, 60),		    /* 4: bad */
	    wr("k", "d", 60, 70, LIN_OK),	    /* 5: overlaps at its end */
	    wr("k", "a", 61, 62, LIN_OK),	    /* 6: after it */
	    wr("k", "e", 52, 53, LIN_FAIL),	    /* 7: failed: constrains nothing */
	    op(LIN_READ, "k", 51, 52, LIN_UNKNOWN), /* 8: likewise */
	    wr("k", "f", 45, NEVER, LIN_UNKNOWN),   /* 9: unknown: overlaps forever */
	    wr("k", "g", 70, NEVER, LIN_UNKNOWN),   /* 10: called after it returned */
	};
	expect_explained(overlap, N(overlap), (size_t[]){0, 1, 2, 3, 9, 4, 5, SIZE_MAX});

	/* A value nobody wrote: no writer to show. */
	struct lin_op ghost[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    rd("k", "a", 2, 3),
	    rd("k", "ghost", 4, 5),
	};
	expect_explained(ghost, N(ghost), (size_t[]){1, 2, SIZE_MAX});

	/* Two CAS won from the same value. */
	struct lin_op cas2[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    cas("k", "a", "b", 2, 10, LIN_OK),
	    cas("k", "a", "c", 3, 11, LIN_OK),
	};
	expect_explained(cas2, N(cas2), (size_t[]){0, 1, 2, SIZE_MAX});

	/* A lost delete: the read of nil's writer is the delete, and the
	 * initial nil needs none. */
	struct lin_op undead[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    del("k", 2, 3, LIN_OK),
	    rd("k", "a", 4, 5),
	};
	expect_explained(undead, N(undead), (size_t[]){0, 1, 2, SIZE_MAX});
	struct lin_op lost[] = {
	    wr("k", "a", 0, 1, LIN_OK),
	    rd("k", NIL, 2, 3),
	};
	expect_explained(lost, N(lost), (size_t[]){0, 1, SIZE_MAX});

	/* The writer is the last one called before the bad op returned. */
	struct lin_op last_writer[] = {
	    wr("k", "a", 0, 1, LIN_OK),				      /* an older write of "a" */
	    wr("k", "b", 2, 3, LIN_OK),	  wr("k", "a", 4, 5, LIN_OK), /* the last one */
	    wr("k", "c", 6, 7, LIN_OK),	  rd("k", "a", 8, 9),
	    wr("k", "a", 10, 11, LIN_OK), /* too late */
	};
	expect_explained(last_writer, N(last_writer), (size_t[]){2, 3, 4, SIZE_MAX});

	/* cap: the bad op first, then the writer; the total either way. */
	struct lin_result res = check(overlap, N(overlap));
	size_t one[1], two[2];
	assert_int_equal(lin_explain(overlap, N(overlap), &res, one, 1), 7);
	assert_int_equal(one[0], 4);
	assert_int_equal(lin_explain(overlap, N(overlap), &res, two, 2), 7);
	assert_int_equal(two[0], 0);
	assert_int_equal(two[1], 4);
	assert_int_equal(lin_explain(overlap, N(overlap), &res, NULL, 0), 7);

	/* Nothing to explain but a violation. */
	struct lin_op fine[] = {wr("k", "a", 0, 1, LIN_OK), rd("k", "a", 2, 3)};
	res = check(fine, N(fine));
	assert_int_equal(lin_explain(fine, N(fine), &res, one, 1), 0);
	res.verdict = LIN_VIOLATION;
	res.bad_op = 7;
	assert_int_equal(lin_explain(fine, N(fine), &res, one, 1), 0);
	assert_int_equal(lin_explain(fine, N(fine), NULL, one, 1), 0);
}

/*
 * Property: on random violating histories (real executions with one read
 * corrupted, as above), lin_explain gives what its contract says, checked
 * by brute force: the bad op; the last writer of the value it needed;
 * every op of the key that returned before it with nothing wholly in
 * between; every op that overlaps it; nothing else; in call order.
 */
static void test_prop_explain(void **state)
{
	(void)state;
	uint64_t s = tu_stream(tu_seed(), "explain");
	static struct lin_op ops[PROP_MAX_OPS];
	int checked = 0;

	for (int iter = 0; iter < 1500; iter++) {
		size_t n = gen_history(&s, ops, 60);
		size_t reads[PROP_MAX_OPS], n_reads = 0;
		for (size_t i = 0; i < n; i++)
			if (ops[i].kind == LIN_READ && ops[i].outcome == LIN_OK)
				reads[n_reads++] = i;
		if (n_reads == 0)
			continue;
		ops[reads[tu_rnd(&s, n_reads)]].result = val(names[tu_rnd(&s, N(names))]);
		struct lin_result res;
		assert_int_equal(lin_check(ops, n, PROP_BUDGET, &res), 0);
		if (res.verdict != LIN_VIOLATION)
			continue;
		checked++;

		size_t got[PROP_MAX_OPS];
		size_t total = lin_explain(ops, n, &res, got, N(got));
		assert_true(total >= 1 && total <= n);
		bool in[PROP_MAX_OPS] = {false};
		for (size_t i = 0; i < total; i++) {
			assert_false(in[got[i]]);
			in[got[i]] = true;
			if (i > 0)
				assert_true(ops[got[i - 1]].call < ops[got[i]].call ||
					    (ops[got[i - 1]].call == ops[got[i]].call &&
					     got[i - 1] < got[i]));
		}
		const struct lin_op *B = &ops[res.bad_op];
		assert_true(in[res.bad_op]);
		uint64_t b_ret = B->ret;

		/* The writer of what it needed. */
		bool needs_value = B->kind == LIN_READ || B->kind == LIN_CAS;
		int need =
		    needs_value ? value_index(B->kind == LIN_READ ? &B->result : &B->expect) : -3;
		size_t writer = SIZE_MAX;
		for (size_t i = 0; needs_value && i < n; i++) {
			const struct lin_op *W = &ops[i];
			if (i == res.bad_op || !same_key(W, B) || !may_set(W, need) ||
			    W->call > b_ret)
				continue;
			if (writer == SIZE_MAX || W->call >= ops[writer].call)
				writer = i;
		}

		for (size_t i = 0; i < n; i++) {
			const struct lin_op *o = &ops[i];
			if (i == res.bad_op)
				continue;
			bool counts = same_key(o, B) && o->outcome != LIN_FAIL &&
				      !(o->kind == LIN_READ && o->outcome == LIN_UNKNOWN);
			uint64_t o_ret = o->outcome == LIN_UNKNOWN ? UINT64_MAX : o->ret;
			bool overlaps = o->call <= b_ret && o_ret >= B->call;
			bool immediate = o_ret < B->call;
			for (size_t j = 0; immediate && j < n; j++) {
				const struct lin_op *q = &ops[j];
				bool q_counts = same_key(q, B) && q->outcome == LIN_OK;
				if (q_counts && j != res.bad_op && q->call > o_ret &&
				    q->ret < B->call)
					immediate = false;
			}
			bool want = counts && (i == writer || overlaps || immediate);
			if (in[i] != want)
				fail_msg("iteration %d: op %zu %s, wanted %s (bad op %zu)", iter, i,
					 in[i] ? "shown" : "not shown", want ? "shown" : "not",
					 res.bad_op);
		}
	}
	assert_true(checked > 300);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_and_trivial),
	    cmocka_unit_test(test_sequential),
	    cmocka_unit_test(test_concurrent_writes_either_order),
	    cmocka_unit_test(test_read_during_write),
	    cmocka_unit_test(test_equal_times_concurrent),
	    cmocka_unit_test(test_unknown_writes),
	    cmocka_unit_test(test_failed_ops),
	    cmocka_unit_test(test_cas_chains),
	    cmocka_unit_test(test_keys_independent),
	    cmocka_unit_test(test_stale_read),
	    cmocka_unit_test(test_read_never_written),
	    cmocka_unit_test(test_two_cas_same_expect),
	    cmocka_unit_test(test_lost_acknowledged_write),
	    cmocka_unit_test(test_invalid_ops),
	    cmocka_unit_test(test_verdict_names),
	    cmocka_unit_test(test_budget_gives_up),
	    cmocka_unit_test(test_prop_real_executions),
	    cmocka_unit_test(test_prop_matches_brute_force),
	    cmocka_unit_test(test_scale),
	    cmocka_unit_test(test_should_stop),
	    cmocka_unit_test(test_should_stop_wall_clock),
	    cmocka_unit_test(test_explain),
	    cmocka_unit_test(test_prop_explain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
