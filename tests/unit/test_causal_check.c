/*
 * test_causal_check: the causal-consistency checker (src/check/causal.c).
 *
 * Hand-built histories, in pairs: one with a bad pattern or a broken
 * session guarantee, and one that differs from it in one op and is
 * causal; each bad one must be reported once, under its name, with the
 * ops that explain it. Then: sessions ordered by invoke, not by place in
 * the array; the process as the session; failed and unknown ops; bad
 * input (a value written twice, malformed ops); the reader
 * (history_parse_ex with sessions and nodes, cc_ops_from_history).
 *
 * Randomised: a simulated causally consistent store (replicas applying
 * updates in causal order after random delays; sessions that move to
 * another replica only once it has caught up with what they have seen)
 * records histories that must check clean. The same histories with one
 * read changed must be judged as a plain reference implementation of the
 * definitions (explicit transitive closure) judges them, read by read,
 * and every violation's witnesses must hold. A large history checks in
 * well under seconds. The randomised tests print their seed; set
 * SPECTRA_SEED to replay.
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

#include "check/causal.h"
#include "check/history.h"
#include "common/alloc.h"
#include "common/err.h"

/* ---------------------------------------------------------------------- */
/* Building histories by hand                                              */

#define MAX_OPS 64

/* A hand-made history: string literals for sessions, keys and values. */
struct hist {
	struct cc_op ops[MAX_OPS];
	size_t n;
};

static size_t add(struct hist *h, const char *session, enum cc_op_kind kind, const char *key,
		  const char *value, uint64_t t, enum cc_result result)
{
	assert_true(h->n < MAX_OPS);
	struct cc_op *o = &h->ops[h->n];
	memset(o, 0, sizeof(*o));
	if (session != NULL) {
		o->session = (const uint8_t *)session;
		o->slen = strlen(session);
	}
	o->node = -1;
	o->kind = kind;
	o->key = (const uint8_t *)key;
	o->klen = strlen(key);
	if (value != NULL) {
		o->value = (const uint8_t *)value;
		o->vlen = strlen(value);
	}
	o->invoke = t;
	o->complete = t + 1;
	o->result = result;
	return h->n++;
}

/* W and R add an ok write or read at time t; R's value NULL is null. */
#define W(h, s, k, v, t) add((h), (s), CC_WRITE, (k), (v), (t), CC_OK)
#define R(h, s, k, v, t) add((h), (s), CC_READ, (k), (v), (t), CC_OK)

/* check runs cc_check, which must succeed, and returns the report. */
static struct cc_report check(const struct hist *h)
{
	struct cc_report r;
	int rc = cc_check(h->ops, h->n, &r);
	assert_int_equal(rc, 0);
	return r;
}

static void expect_causal(const struct hist *h)
{
	struct cc_report r = check(h);
	if (!r.causal)
		fail_msg("expected causal, got %zu violations, the first %s", r.n_violations,
			 cc_kind_name(r.v[0].kind));
	assert_int_equal(r.n_violations, 0);
	cc_report_free(&r);
}

/* expect_one checks that h has exactly one violation, of kind `kind`,
 * about read `read`, and returns it. */
static struct cc_violation expect_one(const struct hist *h, enum cc_kind kind, size_t read)
{
	struct cc_report r = check(h);
	assert_false(r.causal);
	if (r.n_violations != 1 || r.v[0].kind != kind)
		fail_msg("expected one %s, got %zu, the first %s", cc_kind_name(kind),
			 r.n_violations, r.n_violations ? cc_kind_name(r.v[0].kind) : "-");
	assert_int_equal(r.count[kind], 1);
	struct cc_violation v = r.v[0];
	assert_int_equal(v.read, read);
	cc_report_free(&r);
	return v;
}

/* ---------------------------------------------------------------------- */
/* The bad patterns, each with its good twin                               */

static void test_empty_and_simple(void **state)
{
	(void)state;
	struct hist h = {0};
	expect_causal(&h);
	R(&h, "s1", "k", NULL, 1);
	W(&h, "s1", "k", "v1", 2);
	R(&h, "s1", "k", "v1", 3);
	R(&h, "s2", "k", NULL, 1);
	R(&h, "s2", "k", "v1", 4);
	struct cc_report r = check(&h);
	assert_true(r.causal);
	assert_int_equal(r.sessions, 2);
	assert_int_equal(r.keys, 1);
	assert_int_equal(r.in_co, 5);
	cc_report_free(&r);
	cc_report_free(&r); /* twice is fine */
	cc_report_free(NULL);
}

/* Two sessions each read the other's later write. */
static void test_cyclic_co(void **state)
{
	(void)state;
	for (int good = 0; good < 2; good++) {
		struct hist h = {0};
		size_t a = R(&h, "s1", "x", good ? NULL : "y1", 1);
		size_t b = W(&h, "s1", "y", "x1", 2);
		size_t c = R(&h, "s2", "y", "x1", 1);
		size_t d = W(&h, "s2", "x", "y1", 2);
		if (good) {
			expect_causal(&h);
			continue;
		}
		struct cc_report r = check(&h);
		assert_int_equal(r.n_violations, 1);
		assert_int_equal(r.v[0].kind, CC_CYCLIC_CO);
		assert_int_equal(r.count[CC_CYCLIC_CO], 1);
		assert_int_equal(r.n_cycle, 4);
		/* Each op is causally before the next, cyclically. */
		size_t succ[4] = {[0] = b, [1] = c, [2] = d, [3] = a};
		for (size_t i = 0; i < 4; i++)
			assert_int_equal(succ[r.cycle[i]], r.cycle[(i + 1) % 4]);
		cc_report_free(&r);
	}
}

/* A session reads its own later write; a long run of one session in a
 * cycle is shown by its ends. */
static void test_cyclic_co_own_future(void **state)
{
	(void)state;
	struct hist h = {0};
	R(&h, "s1", "k", "v1", 1);
	for (int i = 0; i < 10; i++)
		R(&h, "s1", "j", NULL, 2 + (uint64_t)i);
	W(&h, "s1", "k", "v1", 20);
	struct cc_report r = check(&h);
	assert_int_equal(r.n_violations, 1);
	assert_int_equal(r.v[0].kind, CC_CYCLIC_CO);
	assert_int_equal(r.n_cycle, 2);
	assert_int_equal(r.cycle[0], 0);
	assert_int_equal(r.cycle[1], 11);
	cc_report_free(&r);
}

/* s2 reads v1 and overwrites it with v2, then writes u1 elsewhere; s4
 * sees u1 and then reads v1: v1 <CO v2 <CO the read, by no session
 * guarantee's route. */
static void test_write_co_read(void **state)
{
	(void)state;
	for (int good = 0; good < 2; good++) {
		struct hist h = {0};
		size_t v1 = W(&h, "s1", "k", "v1", 1);
		R(&h, "s2", "k", "v1", 2);
		size_t v2 = W(&h, "s2", "k", "v2", 3);
		W(&h, "s2", "j", "u1", 4);
		R(&h, "s4", "j", "u1", 5);
		size_t r = R(&h, "s4", "k", good ? "v2" : "v1", 6);
		if (good) {
			expect_causal(&h);
			continue;
		}
		struct cc_violation v = expect_one(&h, CC_WRITE_CO_READ, r);
		assert_int_equal(v.write, v1);
		assert_int_equal(v.newer, v2);
	}
}

static void test_write_co_init_read(void **state)
{
	(void)state;
	for (int good = 0; good < 2; good++) {
		struct hist h = {0};
		size_t v1 = W(&h, "s1", "k", "v1", 1);
		W(&h, "s1", "j", "u1", 2);
		R(&h, "s2", "j", "u1", 3);
		size_t r = R(&h, "s2", "k", good ? "v1" : NULL, 4);
		if (good) {
			expect_causal(&h);
			continue;
		}
		struct cc_violation v = expect_one(&h, CC_WRITE_CO_INIT_READ, r);
		assert_int_equal(v.write, SIZE_MAX);
		assert_int_equal(v.newer, v1);
	}
}

static void test_thin_air_read(void **state)
{
	(void)state;
	/* A value nobody wrote. */
	struct hist h = {0};
	W(&h, "s1", "k", "v1", 1);
	size_t r = R(&h, "s2", "k", "ghost", 2);
	struct cc_violation v = expect_one(&h, CC_THIN_AIR_READ, r);
	assert_int_equal(v.write, SIZE_MAX);

	/* A value whose write failed; the good twin: it succeeded. An info
	 * write that is read is fine too. */
	for (int res = CC_OK; res <= CC_INFO; res++) {
		struct hist g = {0};
		size_t w = add(&g, "s1", CC_WRITE, "k", "v1", 1, (enum cc_result)res);
		r = R(&g, "s2", "k", "v1", 2);
		if (res != CC_FAIL) {
			expect_causal(&g);
			continue;
		}
		v = expect_one(&g, CC_THIN_AIR_READ, r);
		assert_int_equal(v.write, w);
	}

	/* A value written, but to another key. */
	struct hist o = {0};
	size_t w = W(&o, "s1", "j", "v1", 1);
	r = R(&o, "s2", "k", "v1", 2);
	v = expect_one(&o, CC_THIN_AIR_READ, r);
	assert_int_equal(v.write, w);
}

/* ---------------------------------------------------------------------- */
/* Session guarantees                                                      */

static void test_read_your_writes(void **state)
{
	(void)state;
	/* s2 reads v1, overwrites it with v2, and reads v1 again. */
	for (int good = 0; good < 2; good++) {
		struct hist h = {0};
		size_t v1 = W(&h, "s1", "k", "v1", 1);
		R(&h, "s2", "k", "v1", 2);
		size_t v2 = W(&h, "s2", "k", "v2", 3);
		size_t r = R(&h, "s2", "k", good ? "v2" : "v1", 4);
		if (good) {
			expect_causal(&h);
			continue;
		}
		struct cc_violation v = expect_one(&h, CC_READ_YOUR_WRITES, r);
		assert_int_equal(v.write, v1);
		assert_int_equal(v.newer, v2);
	}
	/* A session's own write, then the initial value. */
	for (int good = 0; good < 2; good++) {
		struct hist h = {0};
		size_t v1 = W(&h, "s1", "k", "v1", 1);
		size_t r = R(&h, "s1", "k", good ? "v1" : NULL, 2);
		if (good) {
			expect_causal(&h);
			continue;
		}
		struct cc_violation v = expect_one(&h, CC_READ_YOUR_WRITES, r);
		assert_int_equal(v.write, SIZE_MAX);
		assert_int_equal(v.newer, v1);
	}
	/* A concurrent write read after one's own is no violation. */
	struct hist h = {0};
	W(&h, "s1", "k", "mine", 1);
	W(&h, "s2", "k", "theirs", 1);
	R(&h, "s1", "k", "theirs", 2);
	expect_causal(&h);
}

static void test_monotonic_reads(void **state)
{
	(void)state;
	for (int good = 0; good < 2; good++) {
		struct hist h = {0};
		size_t v1 = W(&h, "s1", "k", "v1", 1);
		R(&h, "s2", "k", "v1", 2);
		size_t v2 = W(&h, "s2", "k", "v2", 3);
		size_t r1 = R(&h, "s3", "k", good ? "v1" : "v2", 4);
		size_t r2 = R(&h, "s3", "k", good ? "v2" : "v1", 5);
		if (good) {
			expect_causal(&h);
			continue;
		}
		struct cc_violation v = expect_one(&h, CC_MONOTONIC_READS, r2);
		assert_int_equal(v.write, v1);
		assert_int_equal(v.newer, v2);
		assert_int_equal(v.via_read, r1);
	}
	/* A value, then the initial value. */
	for (int good = 0; good < 2; good++) {
		struct hist h = {0};
		W(&h, "s1", "k", "v1", 1);
		size_t r1 = R(&h, "s3", "k", good ? NULL : "v1", 4);
		size_t r2 = R(&h, "s3", "k", good ? "v1" : NULL, 5);
		if (good) {
			expect_causal(&h);
			continue;
		}
		struct cc_violation v = expect_one(&h, CC_MONOTONIC_READS, r2);
		assert_int_equal(v.write, SIZE_MAX);
		assert_int_equal(v.via_read, r1);
	}
	/* Two concurrent values, in either order, are fine. */
	struct hist h = {0};
	W(&h, "s1", "k", "a", 1);
	W(&h, "s2", "k", "b", 1);
	R(&h, "s3", "k", "b", 2);
	R(&h, "s3", "k", "a", 3);
	R(&h, "s3", "k", "b", 4);
	expect_causal(&h);
}

static void test_monotonic_writes(void **state)
{
	(void)state;
	/* s1 writes v1, v2, then u1 elsewhere; s2 sees u1 and then v1. */
	for (int good = 0; good < 2; good++) {
		struct hist h = {0};
		size_t v1 = W(&h, "s1", "k", "v1", 1);
		size_t v2 = W(&h, "s1", "k", "v2", 2);
		W(&h, "s1", "j", "u1", 3);
		R(&h, "s2", "j", "u1", 4);
		size_t r = R(&h, "s2", "k", good ? "v2" : "v1", 5);
		if (good) {
			expect_causal(&h);
			continue;
		}
		struct cc_violation v = expect_one(&h, CC_MONOTONIC_WRITES, r);
		assert_int_equal(v.write, v1);
		assert_int_equal(v.newer, v2);
	}
	/* The same, through a third session that read v2 and wrote u1. */
	struct hist h = {0};
	W(&h, "s1", "k", "v1", 1);
	size_t v2 = W(&h, "s1", "k", "v2", 2);
	R(&h, "s3", "k", "v2", 3);
	W(&h, "s3", "j", "u1", 4);
	R(&h, "s2", "j", "u1", 5);
	size_t r = R(&h, "s2", "k", "v1", 6);
	struct cc_violation v = expect_one(&h, CC_MONOTONIC_WRITES, r);
	assert_int_equal(v.newer, v2);
}

static void test_writes_follow_reads(void **state)
{
	(void)state;
	/* s1 overwrites v0 with v1; s2 reads v1 and writes u1; s3 sees u1
	 * and then v0. */
	for (int good = 0; good < 2; good++) {
		struct hist h = {0};
		size_t v0 = W(&h, "s0", "k", "v0", 1);
		R(&h, "s1", "k", "v0", 2);
		size_t v1 = W(&h, "s1", "k", "v1", 3);
		size_t rd = R(&h, "s2", "k", "v1", 4);
		size_t u1 = W(&h, "s2", "j", "u1", 5);
		R(&h, "s3", "j", "u1", 6);
		size_t r = R(&h, "s3", "k", good ? "v1" : "v0", 7);
		if (good) {
			expect_causal(&h);
			continue;
		}
		struct cc_violation v = expect_one(&h, CC_WRITES_FOLLOW_READS, r);
		assert_int_equal(v.write, v0);
		assert_int_equal(v.newer, v1);
		assert_int_equal(v.via_read, rd);
		assert_int_equal(v.via_write, u1);
	}
	/* The initial value after a write that followed a read of v1. */
	for (int good = 0; good < 2; good++) {
		struct hist h = {0};
		W(&h, "s1", "k", "v1", 1);
		R(&h, "s2", "k", "v1", 2);
		W(&h, "s2", "j", "u1", 3);
		R(&h, "s3", "j", "u1", 4);
		size_t r = R(&h, "s3", "k", good ? "v1" : NULL, 5);
		if (good)
			expect_causal(&h);
		else
			expect_one(&h, CC_WRITES_FOLLOW_READS, r);
	}
}

/* Several bad reads: each reported once, in the order of the ops. */
static void test_many_violations(void **state)
{
	(void)state;
	struct hist h = {0};
	W(&h, "s1", "k", "v1", 1);
	W(&h, "s1", "k", "v2", 2);
	size_t a = R(&h, "s1", "k", "v1", 3); /* read-your-writes */
	size_t b = R(&h, "s2", "k", "v2", 4);
	size_t c = R(&h, "s2", "k", "v1", 5);	/* monotonic-reads */
	size_t d = R(&h, "s2", "k", "nope", 6); /* ThinAirRead */
	struct cc_report r = check(&h);
	assert_int_equal(r.n_violations, 3);
	assert_int_equal(r.v[0].read, a);
	assert_int_equal(r.v[0].kind, CC_READ_YOUR_WRITES);
	assert_int_equal(r.v[1].read, c);
	assert_int_equal(r.v[1].kind, CC_MONOTONIC_READS);
	assert_int_equal(r.v[1].via_read, b);
	assert_int_equal(r.v[2].read, d);
	assert_int_equal(r.v[2].kind, CC_THIN_AIR_READ);
	assert_int_equal(r.count[CC_READ_YOUR_WRITES] + r.count[CC_MONOTONIC_READS] +
			     r.count[CC_THIN_AIR_READ],
			 3);
	cc_report_free(&r);
}

/* ---------------------------------------------------------------------- */
/* Sessions, outcomes, input                                               */

static void test_session_order_is_invoke_order(void **state)
{
	(void)state;
	/* In the array the read comes first; by invoke it follows s1's own
	 * write: read-your-writes. */
	struct hist h = {0};
	size_t r = R(&h, "s1", "k", NULL, 9);
	W(&h, "s1", "k", "v1", 5);
	expect_one(&h, CC_READ_YOUR_WRITES, r);
	/* Reversed times: the read comes first, and is fine. */
	h.ops[0].invoke = 1;
	expect_causal(&h);
}

static void test_process_is_session(void **state)
{
	(void)state;
	struct hist h = {0};
	size_t w = W(&h, NULL, "k", "v1", 1);
	size_t r = R(&h, NULL, "k", NULL, 2);
	h.ops[w].process = 3;
	h.ops[r].process = 4;
	expect_causal(&h); /* two sessions */
	h.ops[r].process = 3;
	expect_one(&h, CC_READ_YOUR_WRITES, r);
	/* Session "3" is process 3's. */
	h.ops[r].session = (const uint8_t *)"3";
	h.ops[r].slen = 1;
	h.ops[r].process = 8;
	expect_one(&h, CC_READ_YOUR_WRITES, r);
}

static void test_failed_and_unknown_ops(void **state)
{
	(void)state;
	struct hist h = {0};
	W(&h, "s1", "k", "v1", 1);
	/* Failed and unknown reads saw nothing: ignored, whatever they say. */
	add(&h, "s1", CC_READ, "k", "junk", 2, CC_FAIL);
	add(&h, "s1", CC_READ, "k", NULL, 3, CC_INFO);
	/* A failed write is not in CO: the initial value is fine after it. */
	add(&h, "s2", CC_WRITE, "k", "v2", 2, CC_FAIL);
	R(&h, "s2", "k", NULL, 3);
	/* An unknown write nobody read may never have happened. */
	add(&h, "s3", CC_WRITE, "k", "v3", 2, CC_INFO);
	R(&h, "s3", "k", "v1", 3);
	expect_causal(&h);
	struct cc_report r = check(&h);
	assert_int_equal(r.in_co, 3);
	cc_report_free(&r);

	/* An unknown write that was read did happen, at its place in its
	 * session: s5 read v1, overwrote it (unknown), and read v1 again. */
	struct hist u = {0};
	W(&u, "s1", "k", "v1", 1);
	R(&u, "s5", "k", "v1", 2);
	size_t v3 = add(&u, "s5", CC_WRITE, "k", "v3", 3, CC_INFO);
	size_t rd = R(&u, "s5", "k", "v1", 4);
	expect_causal(&u);
	R(&u, "s6", "k", "v3", 5);
	struct cc_violation v = expect_one(&u, CC_WRITE_CO_READ, rd);
	assert_int_equal(v.newer, v3);
}

static void test_bad_input(void **state)
{
	(void)state;
	struct hist h = {0};
	W(&h, "s1", "k", "v1", 1);
	R(&h, "s2", "k", "v1", 2);
	add(&h, "s3", CC_WRITE, "j", "v1", 3, CC_FAIL);
	struct cc_report r;
	assert_int_equal(cc_check(h.ops, h.n, &r), SP_ERR_INVAL);
	assert_int_equal(r.bad_op, 2);
	assert_int_equal(r.bad_other, 0);
	assert_non_null(r.why);
	assert_null(r.v);
	cc_report_free(&r);

	struct hist m = {0};
	W(&m, "s1", "k", "v1", 1);
	W(&m, "s1", "k", "v2", 2);
	m.ops[1].value = NULL;
	assert_int_equal(cc_check(m.ops, m.n, &r), SP_ERR_INVAL);
	assert_int_equal(r.bad_op, 1);
	assert_int_equal(r.bad_other, SIZE_MAX);
	m.ops[1].value = (const uint8_t *)"v2";
	m.ops[1].kind = (enum cc_op_kind)7;
	assert_int_equal(cc_check(m.ops, m.n, &r), SP_ERR_INVAL);
	m.ops[1].kind = CC_WRITE;
	m.ops[1].result = (enum cc_result)0;
	assert_int_equal(cc_check(m.ops, m.n, &r), SP_ERR_INVAL);
	m.ops[1].result = CC_OK;
	m.ops[1].key = NULL;
	assert_int_equal(cc_check(m.ops, m.n, &r), SP_ERR_INVAL);
	m.ops[1].klen = 0; /* the empty key */
	assert_int_equal(cc_check(m.ops, m.n, &r), 0);
	cc_report_free(&r);

	assert_string_equal(cc_kind_name(CC_CYCLIC_CO), "CyclicCO");
	assert_string_equal(cc_kind_name(CC_WRITES_FOLLOW_READS), "writes-follow-reads");
	assert_string_equal(cc_kind_name((enum cc_kind)0), "?");
	assert_string_equal(cc_kind_name((enum cc_kind)99), "?");
}

static void test_reader(void **state)
{
	(void)state;
	const char *text =
	    "{\"process\":3,\"session\":\"s1\",\"node\":2,\"op\":\"write\",\"key\":\"k1\","
	    "\"value\":\"v3-17\",\"invoke\":1200,\"complete\":1350,\"result\":\"ok\"}\n"
	    "{\"process\":4,\"session\":\"s1\",\"node\":5,\"op\":\"read\",\"key\":\"k1\","
	    "\"value\":\"v3-17\",\"invoke\":1400,\"complete\":1420,\"result\":\"ok\"}\n"
	    "{\"process\":5,\"session\":\"s9\",\"node\":1,\"op\":\"read\",\"key\":\"k1\","
	    "\"value\":null,\"invoke\":1500,\"complete\":1510,\"result\":\"ok\"}\n"
	    "{\"process\":6,\"op\":\"read\",\"key\":\"k1\",\"value\":null,\"invoke\":1,"
	    "\"result\":\"info\"}\n";
	struct history h;
	char err[256];
	history_init(&h);
	assert_int_equal(
	    history_parse_ex(&h, text, strlen(text), HISTORY_SESSIONS, err, sizeof(err)), 0);
	assert_int_equal(h.n, 4);
	assert_false(h.session[0].nil);
	assert_int_equal(h.session[0].len, 2);
	assert_memory_equal(h.session[0].p, "s1", 2);
	assert_int_equal(h.node[1], 5);
	assert_true(h.session[3].nil);
	assert_int_equal(h.node[3], -1);

	struct cc_op *ops;
	size_t bad = 0;
	assert_int_equal(cc_ops_from_history(&h, &ops, &bad), 0);
	assert_int_equal(ops[0].kind, CC_WRITE);
	assert_int_equal(ops[1].kind, CC_READ);
	assert_int_equal(ops[1].node, 5);
	assert_int_equal(ops[1].vlen, 5);
	assert_memory_equal(ops[1].value, "v3-17", 5);
	assert_null(ops[2].value);
	assert_null(ops[3].session);
	assert_int_equal(ops[3].result, CC_INFO);
	struct cc_report r;
	assert_int_equal(cc_check(ops, h.n, &r), 0);
	assert_true(r.causal);
	assert_int_equal(r.sessions, 3);
	cc_report_free(&r);
	free(ops);
	history_free(&h);

	/* Without the flag, the fields are not read (and not checked). */
	const char *odd = "{\"process\":1,\"session\":7,\"node\":\"n1\",\"op\":\"write\",\"key\":"
			  "\"k\",\"value\":\"v\",\"invoke\":1,\"complete\":2,\"result\":\"ok\"}\n";
	history_init(&h);
	assert_int_equal(history_parse(&h, odd, strlen(odd), err, sizeof(err)), 0);
	assert_true(h.session[0].nil);
	assert_int_equal(h.node[0], -1);
	history_free(&h);
	assert_int_equal(history_parse_ex(&h, odd, strlen(odd), HISTORY_SESSIONS, err, sizeof(err)),
			 SP_ERR_INVAL);
	assert_non_null(strstr(err, "line 1: \"session\" must be a string or null"));
	assert_int_equal(h.n, 0);
	const char *odd_node =
	    "{\"process\":1,\"node\":-1,\"op\":\"write\",\"key\":"
	    "\"k\",\"value\":\"v\",\"invoke\":1,\"complete\":2,\"result\":\"ok\"}\n";
	assert_int_equal(
	    history_parse_ex(&h, odd_node, strlen(odd_node), HISTORY_SESSIONS, err, sizeof(err)),
	    SP_ERR_INVAL);
	assert_non_null(strstr(err, "\"node\""));

	/* cas and delete are not in this model. */
	const char *cas = "{\"process\":1,\"op\":\"write\",\"key\":\"k\",\"value\":\"v\","
			  "\"invoke\":1,\"complete\":2,\"result\":\"ok\"}\n"
			  "{\"process\":1,\"op\":\"delete\",\"key\":\"k\",\"invoke\":3,"
			  "\"complete\":4,\"result\":\"ok\"}\n";
	assert_int_equal(history_parse_ex(&h, cas, strlen(cas), HISTORY_SESSIONS, err, sizeof(err)),
			 0);
	assert_int_equal(cc_ops_from_history(&h, &ops, &bad), SP_ERR_INVAL);
	assert_int_equal(bad, 1);
	assert_null(ops);
	history_free(&h);
}

/* ---------------------------------------------------------------------- */
/* A simulated causally consistent store                                   */

#define MAXR 6	/* replicas */
#define MAXK 8	/* keys */
#define MAXS 64 /* sessions */
#define STR  24

struct update {
	int origin;
	uint32_t deps[MAXR]; /* the origin's applied clock when written */
	int key;
	int value; /* index of the op that wrote it */
};

struct replica {
	uint32_t applied[MAXR]; /* updates applied, by origin */
	int store[MAXK];	/* the op whose value each key holds, -1: none */
};

/* A generated history: the ops and the strings they point to. */
struct gen {
	struct cc_op *ops;
	char (*str)[3][STR]; /* session, key, value per op */
	size_t n, cap;
};

struct sim {
	uint64_t rnd;
	int replicas, keys, sessions;
	struct replica rep[MAXR];
	struct update *upd; /* all updates; by origin: */
	size_t n_upd, cap_upd;
	size_t *by_origin[MAXR];
	size_t n_origin[MAXR], cap_origin[MAXR];
	int at[MAXS];		  /* the replica each session is at */
	uint32_t ctx[MAXS][MAXR]; /* what each session has seen */
	struct gen g;
	uint64_t now;
};

static struct cc_op *gen_push(struct gen *g, int session, enum cc_op_kind kind, int key,
			      const char *value, uint64_t t, enum cc_result res, int node)
{
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 256;
		g->ops = sp_realloc(g->ops, g->cap * sizeof(*g->ops));
		g->str = sp_realloc(g->str, g->cap * sizeof(*g->str));
	}
	size_t i = g->n++;
	snprintf(g->str[i][0], STR, "s%d", session);
	snprintf(g->str[i][1], STR, "k%d", key);
	struct cc_op *o = &g->ops[i];
	memset(o, 0, sizeof(*o));
	o->session = (const uint8_t *)g->str[i][0];
	o->slen = strlen(g->str[i][0]);
	o->process = (uint64_t)node * 100 + (uint64_t)session;
	o->node = node;
	o->kind = kind;
	o->key = (const uint8_t *)g->str[i][1];
	o->klen = strlen(g->str[i][1]);
	if (value != NULL) {
		snprintf(g->str[i][2], STR, "%s", value);
		o->value = (const uint8_t *)g->str[i][2];
		o->vlen = strlen(g->str[i][2]);
	}
	o->invoke = t;
	o->complete = t + 1;
	o->result = res;
	return o;
}

/* The op's pointers into g->str move when it grows: fix them up. */
static void gen_fix(struct gen *g)
{
	for (size_t i = 0; i < g->n; i++) {
		struct cc_op *o = &g->ops[i];
		o->session = (const uint8_t *)g->str[i][0];
		o->key = (const uint8_t *)g->str[i][1];
		if (o->value != NULL)
			o->value = (const uint8_t *)g->str[i][2];
	}
}

static void gen_free(struct gen *g)
{
	free(g->ops);
	free(g->str);
	memset(g, 0, sizeof(*g));
}

static void apply(struct sim *s, int r, const struct update *u)
{
	s->rep[r].applied[u->origin]++;
	s->rep[r].store[u->key] = u->value;
}

/* deliver tries to apply one pending update at a random replica. */
static void deliver(struct sim *s)
{
	int r = (int)tu_rnd(&s->rnd, (uint64_t)s->replicas);
	int o = (int)tu_rnd(&s->rnd, (uint64_t)s->replicas);
	if (o == r)
		return;
	uint32_t next = s->rep[r].applied[o];
	if (next >= s->n_origin[o])
		return;
	const struct update *u = &s->upd[s->by_origin[o][next]];
	for (int p = 0; p < s->replicas; p++)
		if (p != o && s->rep[r].applied[p] < u->deps[p])
			return;
	apply(s, r, u);
}

static bool caught_up(const struct sim *s, int r, int sess)
{
	for (int p = 0; p < s->replicas; p++)
		if (s->rep[r].applied[p] < s->ctx[sess][p])
			return false;
	return true;
}

static void see(struct sim *s, int sess)
{
	const struct replica *rep = &s->rep[s->at[sess]];
	for (int p = 0; p < s->replicas; p++)
		if (rep->applied[p] > s->ctx[sess][p])
			s->ctx[sess][p] = rep->applied[p];
}

/* session_op runs one op of a random session at its replica. */
static void session_op(struct sim *s)
{
	int sess = (int)tu_rnd(&s->rnd, (uint64_t)s->sessions);
	uint64_t dice = tu_rnd(&s->rnd, 100);
	if (dice < 15) {
		/* Move, if the target has caught up with the session. */
		int to = (int)tu_rnd(&s->rnd, (uint64_t)s->replicas);
		if (caught_up(s, to, sess))
			s->at[sess] = to;
		return;
	}
	int r = s->at[sess], key = (int)tu_rnd(&s->rnd, (uint64_t)s->keys);
	uint64_t t = s->now += 2;
	struct replica *rep = &s->rep[r];
	if (dice < 55) {
		char value[STR];
		snprintf(value, sizeof(value), "v%zu", s->g.n);
		uint64_t out = tu_rnd(&s->rnd, 100);
		enum cc_result res = out < 90 ? CC_OK : out < 97 ? CC_INFO : CC_FAIL;
		bool applied = res == CC_OK || (res == CC_INFO && out < 94);
		int op = (int)s->g.n;
		gen_push(&s->g, sess, CC_WRITE, key, value, t, res, r);
		if (!applied)
			return;
		if (s->n_upd == s->cap_upd) {
			s->cap_upd = s->cap_upd ? 2 * s->cap_upd : 256;
			s->upd = sp_realloc(s->upd, s->cap_upd * sizeof(*s->upd));
		}
		struct update *u = &s->upd[s->n_upd];
		u->origin = r;
		memcpy(u->deps, rep->applied, sizeof(u->deps));
		u->key = key;
		u->value = op;
		if (s->n_origin[r] == s->cap_origin[r]) {
			s->cap_origin[r] = s->cap_origin[r] ? 2 * s->cap_origin[r] : 64;
			s->by_origin[r] = sp_realloc(s->by_origin[r],
						     s->cap_origin[r] * sizeof(*s->by_origin[r]));
		}
		s->by_origin[r][s->n_origin[r]++] = s->n_upd++;
		apply(s, r, u);
		/* An applied write joins the session's context even when the
		 * client did not hear back: the checker places an unknown
		 * write that was read at its place in its session, which is
		 * only right for a store that does this. */
		see(s, sess);
		return;
	}
	uint64_t out = tu_rnd(&s->rnd, 100);
	enum cc_result res = out < 94 ? CC_OK : out < 97 ? CC_INFO : CC_FAIL;
	int held = rep->store[key];
	const char *value = NULL;
	char seen[STR]; /* a copy: gen_push may move g.str */
	if (res != CC_OK) {
		snprintf(seen, sizeof(seen), "junk%zu", s->g.n);
		value = seen;
	} else if (held >= 0) {
		snprintf(seen, sizeof(seen), "%s", s->g.str[held][2]);
		value = seen;
	}
	gen_push(&s->g, sess, CC_READ, key, value, t, res, r);
	if (res == CC_OK)
		see(s, sess);
}

/* simulate records a history of about n_ops ops from a causal store. */
static void simulate(struct gen *out, uint64_t *rnd, size_t n_ops, int replicas, int keys,
		     int sessions)
{
	struct sim *s = sp_calloc(1, sizeof(*s));
	s->rnd = *rnd;
	s->replicas = replicas;
	s->keys = keys;
	s->sessions = sessions;
	for (int r = 0; r < MAXR; r++)
		for (int k = 0; k < MAXK; k++)
			s->rep[r].store[k] = -1;
	for (int i = 0; i < sessions; i++)
		s->at[i] = (int)tu_rnd(&s->rnd, (uint64_t)replicas);
	while (s->g.n < n_ops) {
		if (tu_rnd(&s->rnd, 2) == 0)
			deliver(s);
		else
			session_op(s);
	}
	gen_fix(&s->g);
	*out = s->g;
	*rnd = s->rnd;
	free(s->upd);
	for (int r = 0; r < MAXR; r++)
		free(s->by_origin[r]);
	free(s);
}

/* shuffle puts the ops in a random order (the checker orders sessions by
 * invoke, not by place). Pointers into the strings stay right. */
static void shuffle(struct gen *g, uint64_t *rnd)
{
	for (size_t i = g->n; i > 1; i--) {
		size_t j = (size_t)tu_rnd(rnd, i);
		struct cc_op t = g->ops[i - 1];
		g->ops[i - 1] = g->ops[j];
		g->ops[j] = t;
	}
}

/* ---------------------------------------------------------------------- */
/* A reference: the definitions, with an explicit transitive closure       */

struct ref {
	size_t n;
	uint8_t *past; /* past[i * n + j]: op j <CO op i (j != i) */
	bool cyclic;
	bool *bad; /* bad[i]: read i is a violation */
};

static bool same(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* ref_writer returns the write whose value read i returned, or -1. */
static long ref_writer(const struct cc_op *ops, size_t n, size_t i)
{
	if (ops[i].value == NULL)
		return -1;
	for (size_t j = 0; j < n; j++)
		if (ops[j].kind == CC_WRITE &&
		    same(ops[j].value, ops[j].vlen, ops[i].value, ops[i].vlen))
			return (long)j;
	return -1;
}

static bool ref_in_co(const struct cc_op *ops, size_t n, size_t i)
{
	const struct cc_op *o = &ops[i];
	if (o->result == CC_OK)
		return true;
	if (o->kind != CC_WRITE || o->result != CC_INFO)
		return false;
	for (size_t j = 0; j < n; j++)
		if (ops[j].kind == CC_READ && ops[j].result == CC_OK &&
		    ref_writer(ops, n, j) == (long)i &&
		    same(ops[j].key, ops[j].klen, o->key, o->klen))
			return true;
	return false;
}

static void ref_check(const struct cc_op *ops, size_t n, struct ref *r)
{
	r->n = n;
	r->past = sp_calloc(n * n + 1, 1);
	r->bad = sp_calloc(n + 1, sizeof(*r->bad));
	r->cyclic = false;
	bool *in = sp_calloc(n + 1, sizeof(*in));
	long *wr = sp_malloc((n + 1) * sizeof(*wr));
	for (size_t i = 0; i < n; i++)
		in[i] = ref_in_co(ops, n, i);
	for (size_t i = 0; i < n; i++) {
		wr[i] = -1;
		if (ops[i].kind == CC_READ && ops[i].result == CC_OK) {
			long w = ref_writer(ops, n, i);
			if (w >= 0 && in[w] &&
			    same(ops[w].key, ops[w].klen, ops[i].key, ops[i].klen))
				wr[i] = w;
			else if (ops[i].value != NULL)
				r->bad[i] = true; /* thin air */
		}
	}
	in[n] = false;
	/* Direct edges, then closure (Warshall). */
	for (size_t i = 0; i < n; i++) {
		if (!in[i])
			continue;
		for (size_t j = 0; j < n; j++) {
			if (!in[j] || j == i)
				continue;
			if (same(ops[i].session, ops[i].slen, ops[j].session, ops[j].slen) &&
			    (ops[j].invoke < ops[i].invoke ||
			     (ops[j].invoke == ops[i].invoke && j < i)))
				r->past[i * n + j] = 1;
		}
		if (wr[i] >= 0)
			r->past[i * n + (size_t)wr[i]] = 1;
	}
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < n; i++)
			if (r->past[i * n + k])
				for (size_t j = 0; j < n; j++)
					r->past[i * n + j] |= r->past[k * n + j];
	for (size_t i = 0; i < n; i++)
		if (r->past[i * n + i])
			r->cyclic = true;
	if (!r->cyclic) {
		for (size_t i = 0; i < n; i++) {
			if (!in[i] || ops[i].kind != CC_READ || r->bad[i])
				continue;
			for (size_t j = 0; j < n; j++) {
				if (!in[j] || ops[j].kind != CC_WRITE || !r->past[i * n + j] ||
				    (long)j == wr[i] ||
				    !same(ops[j].key, ops[j].klen, ops[i].key, ops[i].klen))
					continue;
				if (wr[i] < 0 || r->past[j * n + (size_t)wr[i]])
					r->bad[i] = true;
			}
		}
	}
	free(in);
	free(wr);
}

static void ref_free(struct ref *r)
{
	free(r->past);
	free(r->bad);
}

static bool before(const struct ref *r, size_t a, size_t b)
{
	return a != SIZE_MAX && b != SIZE_MAX && r->past[b * r->n + a];
}

static bool same_session(const struct cc_op *ops, size_t a, size_t b)
{
	return same(ops[a].session, ops[a].slen, ops[b].session, ops[b].slen);
}

/* agree checks cc_check's report on ops against the reference: the same
 * verdict, the same bad reads, and witnesses that hold. */
static void agree(const struct cc_op *ops, size_t n, uint64_t seed, int iter)
{
	struct ref ref;
	struct cc_report rep;
	ref_check(ops, n, &ref);
	assert_int_equal(cc_check(ops, n, &rep), 0);
	if (ref.cyclic) {
		if (rep.n_violations != 1 || rep.v[0].kind != CC_CYCLIC_CO)
			fail_msg("seed %" PRIu64 " iteration %d: the reference finds a cycle", seed,
				 iter);
		for (size_t i = 0; i < rep.n_cycle; i++)
			assert_true(before(&ref, rep.cycle[i], rep.cycle[(i + 1) % rep.n_cycle]) ||
				    rep.n_cycle == 1);
		goto done;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool got = k < rep.n_violations && rep.v[k].read == i;
		if (got != ref.bad[i])
			fail_msg("seed %" PRIu64 " iteration %d: op %zu: checker says %s, the "
				 "reference %s",
				 seed, iter, i, got ? cc_kind_name(rep.v[k].kind) : "fine",
				 ref.bad[i] ? "bad" : "fine");
		if (!got)
			continue;
		const struct cc_violation *v = &rep.v[k++];
		assert_int_equal(ops[i].kind, CC_READ);
		if (v->kind == CC_THIN_AIR_READ)
			continue;
		/* newer is a write of the key, after what was read, before the read. */
		assert_true(v->newer < n);
		assert_int_equal(ops[v->newer].kind, CC_WRITE);
		assert_true(same(ops[v->newer].key, ops[v->newer].klen, ops[i].key, ops[i].klen));
		assert_true(before(&ref, v->newer, i));
		if (v->write != SIZE_MAX)
			assert_true(before(&ref, v->write, v->newer));
		else
			assert_null(ops[i].value);
		switch (v->kind) {
		case CC_READ_YOUR_WRITES:
			assert_true(same_session(ops, v->newer, i));
			assert_int_equal(ops[v->newer].result, CC_OK);
			break;
		case CC_MONOTONIC_READS:
			assert_true(same_session(ops, v->via_read, i));
			assert_true(before(&ref, v->via_read, i));
			assert_true(before(&ref, v->newer, v->via_read));
			break;
		case CC_MONOTONIC_WRITES:
			assert_true(same_session(ops, v->write, v->newer));
			break;
		case CC_WRITES_FOLLOW_READS:
			assert_true(same_session(ops, v->via_read, v->via_write));
			assert_true(before(&ref, v->via_read, v->via_write));
			assert_true(before(&ref, v->via_write, i));
			assert_true(before(&ref, v->newer, v->via_read));
			break;
		case CC_WRITE_CO_READ:
		case CC_WRITE_CO_INIT_READ:
			break;
		default:
			fail_msg("unexpected kind %d", v->kind);
		}
	}
	assert_int_equal(k, rep.n_violations);
done:
	cc_report_free(&rep);
	ref_free(&ref);
}

/* The simulated store's histories are causal. */
static void test_random_clean(void **state)
{
	(void)state;
	uint64_t seed = tu_stream(tu_seed(), "causal_random_clean");
	uint64_t rnd = seed;
	for (int iter = 0; iter < 300; iter++) {
		struct gen g;
		int replicas = 2 + (int)tu_rnd(&rnd, MAXR - 1);
		simulate(&g, &rnd, 20 + tu_rnd(&rnd, 200), replicas, 1 + (int)tu_rnd(&rnd, 4),
			 1 + (int)tu_rnd(&rnd, 8));
		shuffle(&g, &rnd);
		struct cc_report rep;
		assert_int_equal(cc_check(g.ops, g.n, &rep), 0);
		if (!rep.causal)
			fail_msg("seed %" PRIu64 " iteration %d: %s in a causal history", seed,
				 iter, cc_kind_name(rep.v[0].kind));
		cc_report_free(&rep);
		if (iter % 10 == 0)
			agree(g.ops, g.n, seed, iter);
		gen_free(&g);
	}
}

/* One read changed: to an older value of its key, the initial value, a
 * value nobody wrote, or a later write of its own session. The checker
 * must agree with the reference, and find each anomaly the reference
 * finds. */
static void test_random_injected(void **state)
{
	(void)state;
	uint64_t seed = tu_stream(tu_seed(), "causal_random_injected");
	uint64_t rnd = seed;
	int caught = 0, by_kind[CC_KIND_MAX + 1] = {0};
	for (int iter = 0; iter < 400; iter++) {
		struct gen g;
		simulate(&g, &rnd, 30 + tu_rnd(&rnd, 150), 2 + (int)tu_rnd(&rnd, MAXR - 1),
			 1 + (int)tu_rnd(&rnd, 3), 2 + (int)tu_rnd(&rnd, 6));
		/* Pick an ok read and a write of its key to return instead. */
		size_t reads[4096], nr = 0;
		for (size_t i = 0; i < g.n && nr < 4096; i++)
			if (g.ops[i].kind == CC_READ && g.ops[i].result == CC_OK)
				reads[nr++] = i;
		if (nr == 0) {
			gen_free(&g);
			continue;
		}
		size_t r = reads[tu_rnd(&rnd, nr)];
		uint64_t how = tu_rnd(&rnd, 10);
		if (how == 0) {
			snprintf(g.str[r][2], STR, "ghost");
			g.ops[r].value = (const uint8_t *)g.str[r][2];
			g.ops[r].vlen = 5;
		} else if (how == 1) {
			g.ops[r].value = NULL;
			g.ops[r].vlen = 0;
		} else {
			/* Any write of the key (earlier ones are the likely
			 * anomalies; later ones of the session make cycles). */
			size_t cand[4096], nc = 0;
			for (size_t j = 0; j < g.n && nc < 4096; j++)
				if (g.ops[j].kind == CC_WRITE && g.ops[j].result != CC_FAIL &&
				    same(g.ops[j].key, g.ops[j].klen, g.ops[r].key, g.ops[r].klen))
					cand[nc++] = j;
			if (nc == 0) {
				gen_free(&g);
				continue;
			}
			size_t w = cand[tu_rnd(&rnd, nc)];
			if (how < 5 && nc > 1 && w > r)
				w = cand[tu_rnd(&rnd, nc)]; /* lean towards the past */
			g.ops[r].value = g.ops[w].value;
			g.ops[r].vlen = g.ops[w].vlen;
		}
		shuffle(&g, &rnd);
		agree(g.ops, g.n, seed, iter);
		struct cc_report rep;
		assert_int_equal(cc_check(g.ops, g.n, &rep), 0);
		if (!rep.causal) {
			caught++;
			for (int k = CC_CYCLIC_CO; k <= CC_KIND_MAX; k++)
				by_kind[k] += rep.count[k] > 0;
		}
		cc_report_free(&rep);
		gen_free(&g);
	}
	fprintf(stderr, "injected: %d of 400 histories became non-causal;", caught);
	for (int k = CC_CYCLIC_CO; k <= CC_KIND_MAX; k++)
		fprintf(stderr, " %s %d", cc_kind_name((enum cc_kind)k), by_kind[k]);
	fprintf(stderr, "\n");
	/* Most changes are anomalies, and the common ones show up every run
	 * (the rarer kinds, a few per run, have their own tests above). */
	assert_true(caught > 100);
	assert_true(by_kind[CC_CYCLIC_CO] > 0);
	assert_true(by_kind[CC_THIN_AIR_READ] > 0);
	assert_true(by_kind[CC_READ_YOUR_WRITES] > 0);
	assert_true(by_kind[CC_MONOTONIC_READS] > 0);
}

/* A long history from many sessions checks quickly. */
static void test_large_history(void **state)
{
	(void)state;
	uint64_t rnd = tu_stream(tu_seed(), "causal_large");
	struct gen g;
	simulate(&g, &rnd, 200000, MAXR, MAXK, MAXS);
	shuffle(&g, &rnd);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct cc_report rep;
	assert_int_equal(cc_check(g.ops, g.n, &rep), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "200,000 ops, %zu sessions: %.3f s\n", rep.sessions, s);
	assert_true(rep.causal);
	assert_true(s < 10.0);
	cc_report_free(&rep);

	/* One stale read at the end of a session is found among them. */
	size_t last_read = SIZE_MAX;
	for (size_t i = 0; i < g.n; i++)
		if (g.ops[i].kind == CC_READ && g.ops[i].result == CC_OK)
			last_read = i;
	assert_true(last_read != SIZE_MAX);
	g.ops[last_read].value = (const uint8_t *)"never-written";
	g.ops[last_read].vlen = strlen("never-written");
	assert_int_equal(cc_check(g.ops, g.n, &rep), 0);
	assert_int_equal(rep.n_violations, 1);
	assert_int_equal(rep.v[0].kind, CC_THIN_AIR_READ);
	cc_report_free(&rep);
	gen_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_and_simple),
	    cmocka_unit_test(test_cyclic_co),
	    cmocka_unit_test(test_cyclic_co_own_future),
	    cmocka_unit_test(test_write_co_read),
	    cmocka_unit_test(test_write_co_init_read),
	    cmocka_unit_test(test_thin_air_read),
	    cmocka_unit_test(test_read_your_writes),
	    cmocka_unit_test(test_monotonic_reads),
	    cmocka_unit_test(test_monotonic_writes),
	    cmocka_unit_test(test_writes_follow_reads),
	    cmocka_unit_test(test_many_violations),
	    cmocka_unit_test(test_session_order_is_invoke_order),
	    cmocka_unit_test(test_process_is_session),
	    cmocka_unit_test(test_failed_and_unknown_ops),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_reader),
	    cmocka_unit_test(test_random_clean),
	    cmocka_unit_test(test_random_injected),
	    cmocka_unit_test(test_large_history),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
