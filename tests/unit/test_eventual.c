/*
 * test_eventual: the eventual engine with its real store, ring, CRDTs and
 * codec, but an in-process network and a manual clock, so every delivery
 * and every timeout is decided by the test.
 *
 * Five engines exchange messages through one FIFO queue; a node can be
 * "down" (everything to and from it dropped) or "silent" (messages to it
 * dropped while it still counts as alive, to force timeouts). After each
 * step the test commits every engine (which releases the messages held for
 * the commit) and delivers until the queue is empty.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "engine/eventual/eventual.h"
#include "../lib/testutil.h"

#define N 5

struct msg {
	struct msg *next;
	int from, to;
	size_t len;
	uint8_t p[];
};

struct node_ctx {
	struct sim *sim;
	int idx;
};

struct sim {
	struct sp_clock_manual clk;
	struct ev_engine *e[N];
	struct node_ctx ctx[N];
	uint64_t ids[N];
	bool down[N], silent[N], hold[N];
	struct msg *head, *tail;
	struct msg *held; /* messages to nodes on hold, released by release() */
	char dir[256];
	uint64_t delivered;
};

struct outcome {
	bool done;
	int status;
	int64_t n;
	uint8_t type;
	uint8_t acks;
	struct sp_buf state;
};

static int sim_send(void *ctx, uint64_t to, const void *p, size_t len)
{
	struct node_ctx *nc = ctx;
	struct sim *s = nc->sim;
	int t = (int)to - 1;
	if (s->down[nc->idx] || s->down[t] || s->silent[t])
		return 0;
	struct msg *m = sp_malloc(sizeof(*m) + len);
	m->next = NULL;
	m->from = nc->idx;
	m->to = t;
	m->len = len;
	memcpy(m->p, p, len);
	if (s->hold[t]) {
		/* Kept, as a peer transport keeps frames for a peer it cannot
		 * reach, to be delivered when release() says. */
		struct msg **p = &s->held;
		while (*p)
			p = &(*p)->next;
		*p = m;
		return 0;
	}
	if (s->tail)
		s->tail->next = m;
	else
		s->head = m;
	s->tail = m;
	return 0;
}

/* release delivers what was held, in order. */
static void release(struct sim *s)
{
	while (s->held) {
		struct msg *m = s->held;
		s->held = m->next;
		m->next = NULL;
		if (s->tail)
			s->tail->next = m;
		else
			s->head = m;
		s->tail = m;
	}
}

static void commit_all(struct sim *s)
{
	for (int i = 0; i < N; i++)
		assert_int_equal(eventual_commit(s->e[i]), 0);
}

/* pump commits every engine and delivers until nothing moves. */
static void pump(struct sim *s)
{
	commit_all(s);
	while (s->head) {
		struct msg *m = s->head;
		s->head = m->next;
		if (!s->head)
			s->tail = NULL;
		if (!s->down[m->to] && !s->down[m->from] && !s->silent[m->to]) {
			eventual_recv(s->e[m->to], (uint64_t)m->from + 1, m->p, m->len);
			s->delivered++;
		}
		free(m);
		commit_all(s);
	}
}

/* advance moves the clock ms milliseconds in steps of 10, ticking and
 * pumping at each. */
static void advance(struct sim *s, uint64_t ms)
{
	for (uint64_t t = 0; t < ms; t += 10) {
		sp_clock_manual_advance(&s->clk, 10);
		for (int i = 0; i < N; i++)
			if (!s->down[i])
				eventual_tick(s->e[i]);
		pump(s);
	}
}

static void open_node(struct sim *s, int i, uint32_t hint_age_ms, uint32_t ae_ms)
{
	char d[300];
	snprintf(d, sizeof(d), "%s/n%d", s->dir, i + 1);
	s->ctx[i] = (struct node_ctx){s, i};
	struct eventual_config c = {
	    .self_id = s->ids[i],
	    .dir = d,
	    .map_size = 64 << 20,
	    .clock = &s->clk.clock,
	    .request_timeout_ms = 1000,
	    .ping_ms = 100,
	    .suspect_ms = 500,
	    .hint_max_age_ms = hint_age_ms,
	    .ae_interval_ms = ae_ms,
	    .ae_max_keys = 1000,
	    .max_clock_skew_ms = 5000,
	    .read_repair_percent = 100,
	    .seed = 42,
	    .limits = {.max_members = 1000, .max_member_len = 1024},
	    .send = sim_send,
	    .ctx = &s->ctx[i],
	};
	assert_int_equal(eventual_open(&s->e[i], &c, s->ids, N), 0);
}

static struct sim *sim_new(uint32_t hint_age_ms, uint32_t ae_ms)
{
	struct sim *s = sp_calloc(1, sizeof(*s));
	sp_clock_manual_init(&s->clk, 1700000000000ull);
	snprintf(s->dir, sizeof(s->dir), "/tmp/spectra-test-eventual-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	for (int i = 0; i < N; i++)
		s->ids[i] = (uint64_t)i + 1;
	for (int i = 0; i < N; i++)
		open_node(s, i, hint_age_ms, ae_ms);
	advance(s, 200); /* first pings: everyone heard from */
	return s;
}

static void sim_free(struct sim *s)
{
	for (int i = 0; i < N; i++)
		eventual_close(s->e[i]);
	release(s);
	while (s->head) {
		struct msg *m = s->head;
		s->head = m->next;
		free(m);
	}
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", s->dir);
	assert_int_equal(system(cmd), 0);
	free(s);
}

static void on_done(void *arg, const struct ev_result *r)
{
	struct outcome *o = arg;
	assert_false(o->done);
	o->done = true;
	o->status = r->status;
	o->n = r->n;
	o->type = r->type;
	o->acks = r->acks;
	sp_buf_init(&o->state);
	sp_buf_append(&o->state, r->state, r->slen);
}

static void outcome_free(struct outcome *o)
{
	if (o->done)
		sp_buf_free(&o->state);
	memset(o, 0, sizeof(*o));
}

/* run submits one op at node i and pumps; the op may still be pending. */
static void run(struct sim *s, int i, uint8_t kind, uint8_t level, const char *key, const char *arg,
		int64_t n, struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	struct ev_bytes a = {(const uint8_t *)arg, arg ? strlen(arg) : 0};
	struct ev_op op = {
	    .kind = kind,
	    .level = level,
	    .rf = 3,
	    .n = n,
	    .key = key,
	    .klen = strlen(key),
	    .nargs = arg ? 1 : 0,
	    .args = &a,
	};
	eventual_submit(s->e[i], &op, on_done, o);
	pump(s);
}

/* get reads key at node i and level; returns the LWW value (static). */
static const char *get(struct sim *s, int i, uint8_t level, const char *key)
{
	static char val[256];
	struct outcome o;
	run(s, i, EV_OP_READ, level, key, NULL, 0, &o);
	assert_true(o.done);
	assert_int_equal(o.status, 0);
	struct crdt_lww w;
	if (o.type == 0 || crdt_lww_get((const uint8_t *)sp_buf_begin(&o.state), o.state.len, &w) ||
	    w.tombstone) {
		outcome_free(&o);
		return NULL;
	}
	snprintf(val, sizeof(val), "%.*s", (int)w.vlen, w.v);
	outcome_free(&o);
	return val;
}

/* replicas of key as node indexes. */
static size_t replicas(struct sim *s, const char *key, int *out)
{
	uint64_t ids[EV_MAX_RF];
	size_t n = eventual_replicas(s->e[0], key, strlen(key), 3, ids);
	for (size_t i = 0; i < n; i++)
		out[i] = (int)ids[i] - 1;
	return n;
}

/* a node that is not a replica of key */
static int outsider(struct sim *s, const char *key)
{
	int r[3];
	replicas(s, key, r);
	for (int i = 0; i < N; i++)
		if (i != r[0] && i != r[1] && i != r[2])
			return i;
	return -1;
}

struct digest {
	uint64_t keys[64][3];
	size_t n;
};

static void digest_one(void *ctx, uint8_t rf, uint64_t token, uint64_t root, uint64_t keys)
{
	struct sp_buf *b = ctx;
	uint64_t x[3] = {rf, token, root};
	(void)keys;
	sp_buf_append(b, x, sizeof(x));
}

/* converged: every (rf, token) has one root across the nodes. */
static bool converged(struct sim *s)
{
	struct sp_buf all;
	sp_buf_init(&all);
	for (int i = 0; i < N; i++)
		eventual_digest(s->e[i], 1u << 3, digest_one, &all);
	const uint64_t *x = (const uint64_t *)sp_buf_begin(&all);
	size_t n = all.len / 24;
	bool ok = true;
	for (size_t a = 0; a < n && ok; a++)
		for (size_t b = a + 1; b < n && ok; b++)
			if (x[3 * a] == x[3 * b] && x[3 * a + 1] == x[3 * b + 1] &&
			    x[3 * a + 2] != x[3 * b + 2])
				ok = false;
	sp_buf_free(&all);
	return ok;
}

static void test_write_read_everywhere(void **state)
{
	(void)state;
	struct sim *s = sim_new(0, 0);
	struct outcome o;
	char key[32], val[32];
	for (int k = 0; k < 30; k++) {
		snprintf(key, sizeof(key), "ev:%d", k);
		snprintf(val, sizeof(val), "v%d", k);
		run(s, k % N, EV_OP_LWW_SET, EV_LEVEL_QUORUM, key, val, 0, &o);
		assert_true(o.done);
		assert_int_equal(o.status, 0);
		outcome_free(&o);
		for (int i = 0; i < N; i++) {
			const char *got = get(s, i, EV_LEVEL_ONE, key);
			assert_non_null(got);
			assert_string_equal(got, val);
		}
	}
	/* A write through a node outside the preference list is proxied. */
	struct ev_stats st;
	int out = outsider(s, "ev:proxy");
	run(s, out, EV_OP_LWW_SET, EV_LEVEL_ALL, "ev:proxy", "p", 0, &o);
	assert_int_equal(o.status, 0);
	outcome_free(&o);
	eventual_get_stats(s->e[out], &st);
	assert_true(st.proxied >= 1);
	assert_true(converged(s));
	sim_free(s);
}

static void test_counters_and_sets_merge(void **state)
{
	(void)state;
	struct sim *s = sim_new(0, 0);
	struct outcome o;
	int64_t sum = 0;
	for (int k = 0; k < 40; k++) {
		int64_t d = (k % 7) - 2;
		sum += d;
		run(s, k % N, EV_OP_PNCOUNTER_ADD, EV_LEVEL_QUORUM, "ev:c", NULL, d, &o);
		assert_int_equal(o.status, 0);
		outcome_free(&o);
		char m[16];
		snprintf(m, sizeof(m), "m%d", k % 9);
		run(s, (k + 2) % N, k % 4 == 3 ? EV_OP_ORSET_REM : EV_OP_ORSET_ADD, EV_LEVEL_QUORUM,
		    "ev:s", m, 0, &o);
		assert_int_equal(o.status, 0);
		outcome_free(&o);
	}
	for (int i = 0; i < N; i++) {
		run(s, i, EV_OP_READ, EV_LEVEL_ALL, "ev:c", NULL, 0, &o);
		assert_int_equal(o.type, CRDT_PNCOUNTER);
		int64_t v;
		assert_int_equal(
		    crdt_pncounter_value((const uint8_t *)sp_buf_begin(&o.state), o.state.len, &v),
		    0);
		assert_int_equal(v, sum);
		outcome_free(&o);
	}
	/* A key keeps its first type. */
	run(s, 1, EV_OP_LWW_SET, EV_LEVEL_QUORUM, "ev:c", "x", 0, &o);
	if (o.status != SP_ERR_INVAL) {
		/* proxied: the replica refused it all the same */
		assert_int_equal(o.status, SP_ERR_INVAL);
	}
	outcome_free(&o);
	sim_free(s);
}

static void test_unavailable_does_nothing(void **state)
{
	(void)state;
	struct sim *s = sim_new(0, 0);
	int r[3];
	replicas(s, "ev:u", r);
	struct outcome o;
	run(s, r[0], EV_OP_LWW_SET, EV_LEVEL_ALL, "ev:u", "before", 0, &o);
	assert_int_equal(o.status, 0);
	outcome_free(&o);
	s->down[r[1]] = s->down[r[2]] = true;
	advance(s, 700); /* past suspect_ms */
	run(s, r[0], EV_OP_LWW_SET, EV_LEVEL_QUORUM, "ev:u", "after", 0, &o);
	assert_int_equal(o.status, SP_ERR_AGAIN);
	outcome_free(&o);
	assert_string_equal(get(s, r[0], EV_LEVEL_ONE, "ev:u"), "before");
	run(s, r[0], EV_OP_READ, EV_LEVEL_QUORUM, "ev:u", NULL, 0, &o);
	assert_int_equal(o.status, SP_ERR_AGAIN);
	outcome_free(&o);
	/* ONE is served, and hints wait for the two that are down. */
	run(s, r[0], EV_OP_LWW_SET, EV_LEVEL_ONE, "ev:u", "one", 0, &o);
	assert_int_equal(o.status, 0);
	outcome_free(&o);
	struct ev_stats st;
	eventual_get_stats(s->e[r[0]], &st);
	assert_int_equal(st.hints_pending, 2);
	s->down[r[1]] = s->down[r[2]] = false;
	advance(s, 1000);
	eventual_get_stats(s->e[r[0]], &st);
	assert_int_equal(st.hints_pending, 0);
	assert_int_equal(st.hints_delivered, 2);
	assert_string_equal(get(s, r[1], EV_LEVEL_ONE, "ev:u"), "one");
	assert_string_equal(get(s, r[2], EV_LEVEL_ONE, "ev:u"), "one");
	assert_true(converged(s));
	sim_free(s);
}

static void test_timeout_is_unknown_and_hinted(void **state)
{
	(void)state;
	struct sim *s = sim_new(0, 0);
	int r[3];
	replicas(s, "ev:t", r);
	/* Both other replicas alive by their pings' last word, but every
	 * message to them is lost: the coordinator applied the write and
	 * cannot know more. */
	s->silent[r[1]] = s->silent[r[2]] = true;
	struct outcome o;
	run(s, r[0], EV_OP_LWW_SET, EV_LEVEL_QUORUM, "ev:t", "x", 0, &o);
	assert_false(o.done);
	advance(s, 1100);
	assert_true(o.done);
	assert_int_equal(o.status, SP_ERR_UNKNOWN);
	outcome_free(&o);
	struct ev_stats st;
	eventual_get_stats(s->e[r[0]], &st);
	assert_int_equal(st.hints_queued, 2);
	s->silent[r[1]] = s->silent[r[2]] = false;
	advance(s, 1500);
	assert_string_equal(get(s, r[2], EV_LEVEL_ONE, "ev:t"), "x");
	sim_free(s);
}

/* stale_on makes replica r[2] of key miss a QUORUM write of value. */
static void stale_on(struct sim *s, const int *r, const char *key, const char *value)
{
	struct outcome o;
	s->down[r[2]] = true;
	advance(s, 700);
	run(s, r[0], EV_OP_LWW_SET, EV_LEVEL_QUORUM, key, value, 0, &o);
	assert_int_equal(o.status, 0);
	outcome_free(&o);
	s->down[r[2]] = false;
	advance(s, 300); /* hints (age 1 ms) are dropped at replay */
}

static void test_read_repair(void **state)
{
	(void)state;
	struct sim *s = sim_new(1, 0); /* hints dropped, no anti-entropy */
	int r[3];
	struct ev_stats st;
	/* ONE at the stale replica answers from its own copy at once, and
	 * repairs it behind the answer from the others'. */
	replicas(s, "ev:rr", r);
	stale_on(s, r, "ev:rr", "new");
	assert_null(get(s, r[2], EV_LEVEL_ONE, "ev:rr"));
	eventual_get_stats(s->e[r[2]], &st);
	assert_int_equal(st.read_repairs, 1);
	assert_string_equal(get(s, r[2], EV_LEVEL_ONE, "ev:rr"), "new");
	/* ALL from another replica repairs it before answering. */
	replicas(s, "ev:rr2", r);
	stale_on(s, r, "ev:rr2", "v2");
	assert_string_equal(get(s, r[0], EV_LEVEL_ALL, "ev:rr2"), "v2");
	eventual_get_stats(s->e[r[0]], &st);
	assert_int_equal(st.read_repairs_blocking, 1);
	assert_string_equal(get(s, r[2], EV_LEVEL_ONE, "ev:rr2"), "v2");
	sim_free(s);
}

static void test_anti_entropy_converges(void **state)
{
	(void)state;
	struct sim *s = sim_new(1, 200);
	s->down[3] = true;
	advance(s, 700);
	struct outcome o;
	char key[32];
	for (int k = 0; k < 200; k++) {
		snprintf(key, sizeof(key), "ev:ae%d", k);
		int at = k % N == 3 ? 0 : k % N;
		run(s, at, EV_OP_GSET_ADD, EV_LEVEL_QUORUM, key, "m", 0, &o);
		assert_int_equal(o.status, 0);
		outcome_free(&o);
	}
	s->down[3] = false;
	advance(s, 300);
	assert_false(converged(s));
	advance(s, 3000);
	assert_true(converged(s));
	struct ev_stats st;
	uint64_t repaired = 0;
	for (int i = 0; i < N; i++) {
		eventual_get_stats(s->e[i], &st);
		repaired += st.ae_keys_repaired;
	}
	assert_true(repaired > 0);
	sim_free(s);
}

static void test_concurrent_lww_counted_and_agreed(void **state)
{
	(void)state;
	struct sim *s = sim_new(0, 0);
	int r[3];
	replicas(s, "ev:cc", r);
	/* r[0] and r[1] each coordinate a write before hearing of the
	 * other's: one of the two is silently lost, and counted. */
	s->silent[r[0]] = s->silent[r[1]] = true;
	struct outcome a, b;
	run(s, r[0], EV_OP_LWW_SET, EV_LEVEL_ONE, "ev:cc", "A", 0, &a);
	run(s, r[1], EV_OP_LWW_SET, EV_LEVEL_ONE, "ev:cc", "B", 0, &b);
	assert_int_equal(a.status, 0);
	assert_int_equal(b.status, 0);
	s->silent[r[0]] = s->silent[r[1]] = false;
	advance(s, 1500); /* the writes' timeouts hint the lost copies */
	const char *v0 = get(s, r[0], EV_LEVEL_ALL, "ev:cc");
	assert_non_null(v0);
	char first[8];
	snprintf(first, sizeof(first), "%s", v0);
	for (int i = 0; i < 3; i++)
		assert_string_equal(get(s, r[i], EV_LEVEL_ONE, "ev:cc"), first);
	uint64_t conc = 0;
	for (int i = 0; i < N; i++) {
		struct ev_stats st;
		eventual_get_stats(s->e[i], &st);
		conc += st.lww_concurrent;
	}
	assert_true(conc >= 1);
	outcome_free(&a);
	outcome_free(&b);
	sim_free(s);
}

/* Regression: a write proxied to a replica whose link was down sat in the
 * transport's queue and ran when the link came back, seconds after its
 * client had been told UNKNOWN, with a fresh timestamp that beat writes
 * acknowledged since. A proxied write now carries its expiry. */
static void test_proxied_write_expires_in_transit(void **state)
{
	(void)state;
	struct sim *s = sim_new(0, 0);
	int r[3];
	replicas(s, "ev:late", r);
	int out = outsider(s, "ev:late");
	struct outcome o;
	run(s, r[1], EV_OP_LWW_SET, EV_LEVEL_ALL, "ev:late", "first", 0, &o);
	assert_int_equal(o.status, 0);
	outcome_free(&o);
	s->hold[r[0]] = true;
	run(s, out, EV_OP_LWW_SET, EV_LEVEL_QUORUM, "ev:late", "late", 0, &o);
	assert_false(o.done);
	advance(s, 1100);
	assert_true(o.done);
	assert_int_equal(o.status, SP_ERR_UNKNOWN);
	outcome_free(&o);
	advance(s, 2000);
	s->hold[r[0]] = false;
	release(s);
	pump(s);
	struct ev_stats st;
	eventual_get_stats(s->e[r[0]], &st);
	assert_int_equal(st.proxies_expired, 1);
	for (int i = 0; i < 3; i++)
		assert_string_equal(get(s, r[i], EV_LEVEL_ONE, "ev:late"), "first");
	sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_write_read_everywhere),
	    cmocka_unit_test(test_counters_and_sets_merge),
	    cmocka_unit_test(test_unavailable_does_nothing),
	    cmocka_unit_test(test_timeout_is_unknown_and_hinted),
	    cmocka_unit_test(test_read_repair),
	    cmocka_unit_test(test_anti_entropy_converges),
	    cmocka_unit_test(test_concurrent_lww_counted_and_agreed),
	    cmocka_unit_test(test_proxied_write_expires_in_transit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
