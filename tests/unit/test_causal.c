/*
 * test_causal: the causal engine with its real store, but an in-process
 * network the test controls (deliver, hold, reorder, drop) and a manual
 * clock. Checks causal delivery (an update never applies before what it
 * depends on, whatever order the network delivers in), convergence of
 * concurrent writes, duplicates, resends after loss, restart, and the
 * log's collection once every peer holds it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "crdt/crdt.h"
#include "engine/causal/causal.h"
#include "../lib/testutil.h"

#define N 3

struct msg {
	int from, to;
	size_t len;
	uint8_t *p;
};

struct node_ctx {
	struct sim *sim;
	int idx;
};

struct sim {
	struct sp_clock_manual clk;
	struct causal_engine *e[N];
	struct node_ctx ctx[N];
	uint64_t ids[N];
	bool cut[N][N]; /* messages from a to b are dropped */
	struct msg *q;
	size_t nq, capq;
	char dir[128];
};

static int sim_send(void *ctx, uint64_t to, const void *p, size_t len)
{
	struct node_ctx *nc = ctx;
	struct sim *s = nc->sim;
	int t = (int)to - 1;
	if (s->cut[nc->idx][t])
		return 0;
	if (s->nq == s->capq) {
		s->capq = s->capq ? 2 * s->capq : 64;
		s->q = sp_realloc(s->q, s->capq * sizeof(*s->q));
	}
	struct msg *m = &s->q[s->nq++];
	m->from = nc->idx;
	m->to = t;
	m->len = len;
	m->p = sp_malloc(len ? len : 1);
	memcpy(m->p, p, len);
	return 0;
}

static void open_node(struct sim *s, int i)
{
	char d[200];
	snprintf(d, sizeof(d), "%s/n%d", s->dir, i + 1);
	s->ctx[i] = (struct node_ctx){s, i};
	struct causal_config c = {
	    .self_id = s->ids[i],
	    .dir = d,
	    .map_size = 32 << 20,
	    .clock = &s->clk.clock,
	    .ack_ms = 20,
	    .resend_ms = 100,
	    .send = sim_send,
	    .ctx = &s->ctx[i],
	};
	assert_int_equal(causal_open(&s->e[i], &c, s->ids, N), 0);
}

static struct sim *sim_new(void)
{
	struct sim *s = sp_calloc(1, sizeof(*s));
	sp_clock_manual_init(&s->clk, 1700000000000ull);
	snprintf(s->dir, sizeof(s->dir), "/tmp/spectra-test-causal-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	for (int i = 0; i < N; i++)
		s->ids[i] = (uint64_t)i + 1;
	for (int i = 0; i < N; i++)
		open_node(s, i);
	return s;
}

static void drop_queue(struct sim *s)
{
	for (size_t i = 0; i < s->nq; i++)
		free(s->q[i].p);
	s->nq = 0;
}

static void sim_free(struct sim *s)
{
	for (int i = 0; i < N; i++)
		causal_close(s->e[i]);
	drop_queue(s);
	free(s->q);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", s->dir);
	assert_int_equal(system(cmd), 0);
	free(s);
}

static void commit_all(struct sim *s)
{
	for (int i = 0; i < N; i++)
		assert_int_equal(causal_commit(s->e[i]), 0);
}

/* deliver delivers every queued message, in a random order when rng is
 * given (else in order), until the queue is empty. */
static void deliver(struct sim *s, uint64_t *rng)
{
	commit_all(s);
	while (s->nq) {
		size_t k = rng ? (size_t)(tu_splitmix(rng) % s->nq) : 0;
		struct msg m = s->q[k];
		memmove(&s->q[k], &s->q[k + 1], (s->nq - k - 1) * sizeof(*s->q));
		s->nq--;
		if (!s->cut[m.from][m.to])
			causal_recv(s->e[m.to], (uint64_t)m.from + 1, m.p, m.len);
		free(m.p);
		commit_all(s);
	}
}

static void advance(struct sim *s, uint64_t ms, uint64_t *rng)
{
	for (uint64_t t = 0; t < ms; t += 10) {
		sp_clock_manual_advance(&s->clk, 10);
		for (int i = 0; i < N; i++)
			causal_tick(s->e[i]);
		deliver(s, rng);
	}
}

static void put(struct sim *s, int i, const char *key, const char *val)
{
	assert_int_equal(causal_write(s->e[i], key, strlen(key), val, strlen(val), false, false),
			 0);
}

static const char *get(struct sim *s, int i, const char *key)
{
	static char buf[64];
	struct causal_value v;
	if (causal_read(s->e[i], key, strlen(key), &v))
		return NULL;
	snprintf(buf, sizeof(buf), "%.*s", (int)v.vlen, v.v);
	return buf;
}

static bool same_applied(struct sim *s)
{
	for (int i = 1; i < N; i++)
		if (vclock_compare(causal_applied(s->e[0]), causal_applied(s->e[i])) !=
		    VCLOCK_EQUAL)
			return false;
	return true;
}

/* Node 1 writes x, node 2 reads it and writes y (so y depends on x); node
 * 3 gets y's batch before x's: y must wait in the buffer until x applies. */
static void test_causal_delivery_buffers(void **state)
{
	(void)state;
	struct sim *s = sim_new();
	advance(s, 50, NULL); /* first acks: everyone knows where peers stand */
	s->cut[0][2] = true;  /* x does not reach node 3 yet */
	put(s, 0, "cz:x", "x1");
	deliver(s, NULL);
	assert_string_equal(get(s, 1, "cz:x"), "x1");
	assert_null(get(s, 2, "cz:x"));
	put(s, 1, "cz:y", "y-after-x");
	deliver(s, NULL);
	/* Node 3 has y's update but not x's: y is held back. */
	assert_null(get(s, 2, "cz:y"));
	struct causal_stats st;
	causal_get_stats(s->e[2], &st);
	assert_int_equal(st.pending, 1);
	s->cut[0][2] = false;
	advance(s, 300, NULL); /* node 1 resends x; then y applies */
	assert_string_equal(get(s, 2, "cz:x"), "x1");
	assert_string_equal(get(s, 2, "cz:y"), "y-after-x");
	causal_get_stats(s->e[2], &st);
	assert_int_equal(st.pending, 0);
	assert_true(same_applied(s));
	sim_free(s);
}

struct peek_result {
	int calls, err;
	size_t n;
	struct causal_version v[N];
};

static void on_peek(void *arg, int err, const struct causal_version *v, size_t n)
{
	struct peek_result *r = arg;
	r->calls++;
	r->err = err;
	r->n = n;
	memcpy(r->v, v, n * sizeof(*v));
}

/* PEEK/SEEN (the stale-read sampler): a node asks its peers for their
 * version of a key and gets every answer; malformed or duplicate SEENs are
 * ignored; with too few answers by the deadline, SP_ERR_AGAIN. */
static void test_peek_peers(void **state)
{
	(void)state;
	struct sim *s = sim_new();
	advance(s, 50, NULL);
	s->cut[0][2] = true; /* node 3 misses node 1's write */
	put(s, 0, "cz:k", "v1");
	deliver(s, NULL);
	struct causal_version mine;
	assert_int_equal(causal_read_version(s->e[2], "cz:k", 4, &mine), 0);
	assert_false(mine.found);
	s->cut[0][2] = false; /* the write was dropped; the peek's answers pass */

	struct peek_result r = {0};
	assert_int_equal(causal_peek_peers(s->e[2], "cz:k", 4, 500, on_peek, &r), 0);
	commit_all(s);
	/* Before the answers: a SEEN of the wrong length and one with a bad
	 * flag are dropped without an answer being counted. */
	uint8_t bad[34] = {4};
	bad[1] = 1; /* id 1: the peek's */
	causal_recv(s->e[2], 1, bad, sizeof(bad) - 1);
	bad[9] = 7;
	causal_recv(s->e[2], 1, bad, sizeof(bad));
	assert_int_equal(r.calls, 0);
	deliver(s, NULL);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n, 2);
	for (size_t i = 0; i < r.n; i++) {
		assert_true(r.v[i].found);
		assert_int_equal(r.v[i].origin, 1);
		assert_int_equal(r.v[i].seq, 1);
	}

	/* Node 3 cut off from both: nothing answers, and at the deadline
	 * the peek fails (one node of three is no majority). */
	s->cut[0][2] = s->cut[1][2] = true;
	memset(&r, 0, sizeof(r));
	assert_int_equal(causal_peek_peers(s->e[2], "cz:k", 4, 100, on_peek, &r), 0);
	advance(s, 200, NULL);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, SP_ERR_AGAIN);
	/* One of two peers answering is a majority with this node. */
	s->cut[1][2] = false;
	memset(&r, 0, sizeof(r));
	assert_int_equal(causal_peek_peers(s->e[2], "cz:k", 4, 100, on_peek, &r), 0);
	advance(s, 200, NULL);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n, 1);
	/* Pending at close: answered, not leaked. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(causal_peek_peers(s->e[2], "cz:k", 4, 100000, on_peek, &r), 0);
	causal_close(s->e[2]);
	s->e[2] = NULL;
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, SP_ERR_AGAIN);
	sim_free(s);
}

/* causal_lag_ms: small while ACKs flow both ways; grows while a peer's
 * ACKs cannot arrive (this node cannot prove it holds that peer's recent
 * writes), and small again after. */
static void test_lag_bound(void **state)
{
	(void)state;
	struct sim *s = sim_new();
	assert_int_equal(causal_lag_ms(s->e[0]), UINT64_MAX); /* no reports yet */
	advance(s, 200, NULL);
	assert_true(causal_lag_ms(s->e[0]) <= 60);
	s->cut[1][0] = true; /* node 2's messages do not reach node 1 */
	advance(s, 500, NULL);
	assert_true(causal_lag_ms(s->e[0]) >= 450);
	struct causal_peer_lag pl;
	assert_int_equal(causal_peer_lag(s->e[0], 2, &pl), 0);
	assert_true(pl.behind_ms >= 450);
	assert_int_equal(causal_peer_lag(s->e[0], 3, &pl), 0);
	assert_true(pl.behind_ms <= 60);
	s->cut[1][0] = false;
	advance(s, 200, NULL);
	assert_true(causal_lag_ms(s->e[0]) <= 60);
	sim_free(s);
}

/* Random delivery orders, duplicates and drops: every node ends with the
 * same applied vector and the same values, and no node ever shows a
 * value whose dependency it lacks (checked through a chain of writes
 * where each depends on the one before). */
static void test_random_orders_converge(void **state)
{
	(void)state;
	uint64_t seed = tu_seed();
	for (int run = 0; run < 20; run++) {
		uint64_t rng = tu_splitmix(&seed);
		struct sim *s = sim_new();
		advance(s, 50, &rng);
		char key[16], val[32];
		for (int k = 0; k < 60; k++) {
			int at = (int)(tu_splitmix(&rng) % N);
			snprintf(key, sizeof(key), "cz:%d", (int)(tu_splitmix(&rng) % 5));
			snprintf(val, sizeof(val), "n%d-%d", at, k);
			put(s, at, key, val);
			/* A chain: c<k> is written after reading c<k-1> here, so
			 * wherever c<k> is visible, c<k-1> must be too. */
			char chain[16];
			snprintf(chain, sizeof(chain), "c%d", k);
			if (k == 0 || get(s, at, (snprintf(key, sizeof(key), "c%d", k - 1), key)))
				put(s, at, chain, "1");
			if (tu_splitmix(&rng) % 3 == 0) {
				int a = (int)(tu_splitmix(&rng) % N),
				    b = (int)(tu_splitmix(&rng) % N);
				s->cut[a][b] = !s->cut[a][b] && a != b;
			}
			advance(s, 10, &rng);
			for (int i = 0; i < N; i++)
				for (int c = 1; c <= k; c++) {
					char ck[16], pk[16];
					snprintf(ck, sizeof(ck), "c%d", c);
					snprintf(pk, sizeof(pk), "c%d", c - 1);
					if (get(s, i, ck) && !get(s, i, pk))
						fail_msg("seed %llu: node %d shows %s without %s",
							 (unsigned long long)seed, i + 1, ck, pk);
				}
		}
		memset(s->cut, 0, sizeof(s->cut));
		advance(s, 2000, &rng);
		assert_true(same_applied(s));
		for (int k = 0; k < 5; k++) {
			snprintf(key, sizeof(key), "cz:%d", k);
			const char *v0 = get(s, 0, key);
			char first[32] = "";
			if (v0)
				snprintf(first, sizeof(first), "%s", v0);
			for (int i = 1; i < N; i++) {
				const char *vi = get(s, i, key);
				assert_string_equal(vi ? vi : "", first);
			}
		}
		/* Every peer holds everything: the logs are collected. */
		advance(s, 200, &rng);
		for (int i = 0; i < N; i++) {
			struct causal_stats st;
			causal_get_stats(s->e[i], &st);
			assert_int_equal(st.log_entries, 0);
		}
		sim_free(s);
	}
}

/* A node restarted from its store keeps its applied vector and sequence,
 * and catches up on what it missed while down. */
static void test_restart_catches_up(void **state)
{
	(void)state;
	struct sim *s = sim_new();
	advance(s, 50, NULL);
	put(s, 2, "cz:a", "before");
	advance(s, 100, NULL);
	causal_close(s->e[2]);
	for (int i = 0; i < N; i++)
		s->cut[i][2] = s->cut[2][i] = true;
	s->e[2] = NULL;
	put(s, 0, "cz:a", "while-down");
	put(s, 1, "cz:b", "b");
	/* Node 3 comes back. */
	for (int i = 0; i < N; i++)
		s->cut[i][2] = s->cut[2][i] = false;
	open_node(s, 2);
	assert_string_equal(get(s, 2, "cz:a"), "before");
	put(s, 2, "cz:c", "c"); /* its own sequence continues */
	advance(s, 1000, NULL);
	assert_string_equal(get(s, 2, "cz:a"), "while-down");
	assert_string_equal(get(s, 2, "cz:b"), "b");
	assert_string_equal(get(s, 0, "cz:c"), "c");
	assert_int_equal(vclock_get(causal_applied(s->e[0]), 3), 2);
	assert_true(same_applied(s));
	sim_free(s);
}

/* merge_fvec writes one feature of n keys at event time ms on node i as
 * one causal batch. */
static void merge_fvec(struct sim *s, int i, const char *const *keys, size_t n, uint64_t ms,
		       const char *val)
{
	uint64_t ts = causal_now(s->e[i]);
	struct sp_buf d[8];
	struct causal_merge_op ops[8];
	assert_true(n <= 8);
	for (size_t k = 0; k < n; k++) {
		struct crdt_fvec_put put = {"f", 1, val, strlen(val)};
		sp_buf_init(&d[k]);
		assert_int_equal(crdt_fvec_delta(4, ms, ts, s->ids[i], &put, 1, NULL, &d[k]), 0);
		ops[k] = (struct causal_merge_op){keys[k], strlen(keys[k]), sp_buf_begin(&d[k]),
						  d[k].len};
	}
	assert_int_equal(causal_merge(s->e[i], ts, CRDT_FVEC, ops, n), 0);
	for (size_t k = 0; k < n; k++)
		sp_buf_free(&d[k]);
}

/* feature_at: key's feature f at node i ("" when absent), and its event
 * time in *ms. */
static const char *feature_at(struct sim *s, int i, const char *key, uint64_t *ms)
{
	static char buf[64];
	struct causal_value v;
	struct crdt_fvec_entry e;
	buf[0] = '\0';
	*ms = 0;
	if (causal_read_crdt(s->e[i], key, strlen(key), CRDT_FVEC, &v) == 0 &&
	    crdt_fvec_find(v.v, v.vlen, "f", 1, UINT64_MAX, &e) == 0) {
		snprintf(buf, sizeof(buf), "%.*s", (int)e.vlen, e.v);
		*ms = e.event_ms;
	}
	return buf;
}

/* Feature batches (causal_merge) from every node, with event times in a
 * random order and some replayed, delivered in random orders with links
 * cut and healed: after a batch is visible on a node, all of its keys are
 * (a batch applies whole); every node ends with the value of the largest
 * event time; a register and a merged key do not mix. */
static void test_merge_batches(void **state)
{
	(void)state;
	uint64_t seed = tu_seed();
	static const char *const keys[] = {"fv:a", "fv:b", "fv:c", "fv:d"};
	for (int run = 0; run < 10; run++) {
		uint64_t rng = tu_splitmix(&seed);
		struct sim *s = sim_new();
		advance(s, 50, &rng);
		uint64_t best = 0;
		for (int k = 0; k < 40; k++) {
			int at = (int)(tu_splitmix(&rng) % N);
			uint64_t ms = 1000 + tu_splitmix(&rng) % 100;
			char val[32];
			snprintf(val, sizeof(val), "v%llu", (unsigned long long)ms);
			merge_fvec(s, at, keys, 4, ms, val);
			if (ms > best)
				best = ms;
			if (tu_splitmix(&rng) % 3 == 0) {
				int a = (int)(tu_splitmix(&rng) % N),
				    b = (int)(tu_splitmix(&rng) % N);
				s->cut[a][b] = !s->cut[a][b] && a != b;
			}
			advance(s, 10, &rng);
			for (int i = 0; i < N; i++) {
				uint64_t ms0, msk;
				char first[64];
				snprintf(first, sizeof(first), "%s",
					 feature_at(s, i, keys[0], &ms0));
				for (int j = 1; j < 4; j++)
					if (strcmp(feature_at(s, i, keys[j], &msk), first) != 0)
						fail_msg("seed %llu: node %d shows part of a batch",
							 (unsigned long long)seed, i + 1);
			}
		}
		memset(s->cut, 0, sizeof(s->cut));
		advance(s, 2000, &rng);
		assert_true(same_applied(s));
		for (int i = 0; i < N; i++)
			for (int j = 0; j < 4; j++) {
				uint64_t ms;
				feature_at(s, i, keys[j], &ms);
				if (ms != best)
					fail_msg("seed %llu: node %d key %s holds %llu, want %llu",
						 (unsigned long long)seed, i + 1, keys[j],
						 (unsigned long long)ms, (unsigned long long)best);
			}
		/* A register read of a merged key finds none, and bad input is
		 * refused before anything is applied. */
		struct causal_value v;
		assert_int_equal(causal_read(s->e[0], "fv:a", 4, &v), SP_ERR_NOTFOUND);
		struct causal_merge_op bad = {"fv:x", 4, "junk", 4};
		assert_int_equal(causal_merge(s->e[0], causal_now(s->e[0]), CRDT_FVEC, &bad, 1),
				 SP_ERR_INVAL);
		assert_int_equal(causal_merge(s->e[0], causal_now(s->e[0]), CRDT_FVEC, &bad, 0),
				 SP_ERR_INVAL);
		assert_int_equal(causal_read_crdt(s->e[0], "fv:x", 4, CRDT_FVEC, &v),
				 SP_ERR_NOTFOUND);
		sim_free(s);
	}
}

/* Regression: a write too large for one peer message was applied here
 * and logged, then resent forever, holding back every later update of
 * its origin. It is refused now, before anything is done. */
static void test_write_too_big(void **state)
{
	(void)state;
	struct sim *s = sim_new();
	advance(s, 50, NULL);
	uint64_t most = causal_max_write_bytes(s->e[0]);
	assert_true(most > (60u << 20) && most < (64u << 20));
	size_t vlen = (size_t)most; /* with the key, one byte over */
	char *big = sp_calloc(1, vlen);
	assert_int_equal(causal_write(s->e[0], "cz:big", 6, big, vlen, false, false),
			 SP_ERR_TOOBIG);
	struct sp_buf d;
	sp_buf_init(&d);
	struct crdt_fvec_put fput = {"f", 1, big, vlen - 64};
	assert_int_equal(crdt_fvec_delta(4, 1, causal_now(s->e[0]), 1, &fput, 1, NULL, &d), 0);
	struct causal_merge_op op = {"fv:big", 6, sp_buf_begin(&d), d.len};
	assert_int_equal(causal_merge(s->e[0], causal_now(s->e[0]), CRDT_FVEC, &op, 1),
			 SP_ERR_TOOBIG);
	sp_buf_free(&d);
	free(big);
	assert_int_equal(vclock_get(causal_applied(s->e[0]), 1), 0);
	put(s, 0, "cz:after", "1");
	advance(s, 100, NULL);
	for (int i = 0; i < N; i++)
		assert_string_equal(get(s, i, "cz:after"), "1");
	sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_causal_delivery_buffers),
	    cmocka_unit_test(test_random_orders_converge),
	    cmocka_unit_test(test_merge_batches),
	    cmocka_unit_test(test_write_too_big),
	    cmocka_unit_test(test_restart_catches_up),
	    cmocka_unit_test(test_peek_peers),
	    cmocka_unit_test(test_lag_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
