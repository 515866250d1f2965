/*
 * test_crdt: the CRDT value types (src/crdt).
 *
 * Properties, for every type: random states grown by random operations
 * at 3-5 replicas (random actor ids, a small member alphabet with empty
 * and binary members) and random merges between them; the merge is
 * commutative, associative and idempotent (bytes equal), an upper bound
 * of its inputs, has the empty state as identity, and always yields a
 * canonical state.
 *
 * Convergence, for every type: a random history of operations at several
 * replicas, with states gossiped between them in random order, delayed
 * and duplicated, then a final exchange; every replica must end with the
 * same bytes and the value a model of the history predicts: the sum of
 * the deltas, the union of adds, adds minus removes, for the OR-Set "an
 * add no remove observed" (causal histories tracked per event), the
 * largest write for LWW, the writes no other write observed for the
 * MV-Register, and for the feature record each field's `history` largest
 * event times, each with its largest (ts, node, value) write.
 *
 * Examples: add-wins on a concurrent add/remove, MV-Register siblings
 * appearing and collapsing, LWW tie-breaks, golden bytes of each layout,
 * descriptions; validation of truncated, permuted, duplicated and
 * otherwise non-canonical encodings (every cut and every single-byte
 * change of random states, each in a buffer of exactly its size so ASan
 * sees any read past the end); limits (SP_ERR_TOOBIG, output unchanged),
 * counter overflow (SP_ERR_RANGE); outputs are appended, never cleared.
 * Feature record (fvec): golden bytes of deltas, errors and limits;
 * any permutation or bracketing of a list of deltas, with duplicates,
 * merges to the same bytes, whose latest value per field is the put with
 * the largest (event_ms, ts, node, value); truncation to `history` and
 * "as of" reads; every corrupt encoding refused by every reader.
 * Randomised tests print their seed; set SPECTRA_SEED to replay one.
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

#include "common/buf.h"
#include "common/endian.h"
#include "common/err.h"
#include "crdt/crdt.h"

static uint64_t base_seed; /* printed once; SPECTRA_SEED replays */
static uint64_t rng;

/* seed_test gives each test its own stream (tu_stream). */
static void seed_test(const char *name)
{
	rng = tu_stream(base_seed, name);
}

static uint64_t rnd_below(uint64_t n)
{
	return tu_rnd(&rng, n);
}

/* S(lit) is a string literal and its length without the NUL. */
#define S(lit) (lit), (sizeof(lit) - 1)

static const uint8_t ALL_TYPES[] = {CRDT_GCOUNTER, CRDT_PNCOUNTER, CRDT_GSET,  CRDT_2PSET,
				    CRDT_ORSET,	   CRDT_LWW,	   CRDT_MVREG, CRDT_FVEC};
#define NTYPES (sizeof(ALL_TYPES) / sizeof(ALL_TYPES[0]))

/* Every random feature record shares this history bound, as the records
 * of one keyspace do (merge is associative only for equal bounds). */
#define FVEC_HISTORY 3

/* The member (and value) alphabet: empty, NUL, high bytes, prefixes. */
static const struct {
	const char *p;
	size_t n;
} ALPHA[] = {{"", 0}, {"a", 1}, {"ab", 2}, {"b", 1}, {"\0", 1}, {"\xff\x00", 2}, {"zzz", 3}};
#define NALPHA ((int)(sizeof(ALPHA) / sizeof(ALPHA[0])))

/* ---------------------------------------------------------------------- */
/* Buffers                                                                 */

static const uint8_t *B(const struct sp_buf *b)
{
	return (const uint8_t *)sp_buf_begin(b);
}

static void buf_set(struct sp_buf *b, const void *p, size_t n)
{
	sp_buf_clear(b);
	sp_buf_append(b, p, n);
}

static void buf_copy(struct sp_buf *dst, const struct sp_buf *src)
{
	buf_set(dst, B(src), src->len);
}

static bool buf_eq(const struct sp_buf *a, const struct sp_buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(B(a), B(b), a->len) == 0);
}

/* replace moves next into *state (the old bytes are freed). */
static void replace(struct sp_buf *state, struct sp_buf *next)
{
	sp_buf_free(state);
	*state = *next;
	sp_buf_init(next);
}

/* merge_new returns merge(a, b) in a new buffer, asserting success. */
static struct sp_buf merge_new(uint8_t type, const struct sp_buf *a, const struct sp_buf *b)
{
	struct sp_buf out;
	sp_buf_init(&out);
	assert_int_equal(crdt_merge(type, B(a), a->len, B(b), b->len, &out), 0);
	assert_int_equal(crdt_validate(type, B(&out), out.len), 0);
	return out;
}

/* merge_into sets *dst to merge(*dst, src). */
static void merge_into(uint8_t type, struct sp_buf *dst, const struct sp_buf *src)
{
	struct sp_buf m = merge_new(type, dst, src);
	replace(dst, &m);
}

/* fail_with prints both states so a failure can be read. */
static void fail_with(uint8_t type, const char *what, const struct sp_buf *a,
		      const struct sp_buf *b)
{
	struct sp_buf d;
	sp_buf_init(&d);
	crdt_describe(type, B(a), a->len, &d);
	sp_buf_append_str(&d, " | ");
	crdt_describe(type, B(b), b->len, &d);
	sp_buf_append(&d, "", 1);
	fail_msg("%s %s: %s", crdt_type_name(type), what, sp_buf_begin(&d));
}

static void assert_state_eq(uint8_t type, const char *what, const struct sp_buf *a,
			    const struct sp_buf *b)
{
	if (!buf_eq(a, b))
		fail_with(type, what, a, b);
}

/* ---------------------------------------------------------------------- */
/* Random operations                                                       */

enum op_kind { OP_ADD, OP_REMOVE };

struct op {
	enum op_kind kind; /* counters: OP_ADD; sets: add or remove; registers: set */
	int member;	   /* index in ALPHA (sets and registers; fvec: a field) */
	int64_t delta;	   /* counters */
	uint64_t ts;	   /* lww, fvec */
	bool tombstone;	   /* lww */
	int value;	   /* fvec: member's value (index in ALPHA) */
	int member2;	   /* fvec: a second put's field, 0 for none */
	int value2;	   /* fvec: its value */
	uint64_t event_ms; /* fvec */
};

static struct op rnd_op(uint8_t type)
{
	struct op op = {.kind = OP_ADD, .member = (int)rnd_below(NALPHA)};
	switch (type) {
	case CRDT_GCOUNTER:
		op.delta = (int64_t)rnd_below(1000);
		break;
	case CRDT_PNCOUNTER:
		op.delta = (int64_t)rnd_below(2001) - 1000;
		break;
	case CRDT_2PSET:
		op.kind = rnd_below(4) == 0 ? OP_REMOVE : OP_ADD;
		break;
	case CRDT_ORSET:
		op.kind = rnd_below(3) == 0 ? OP_REMOVE : OP_ADD;
		break;
	case CRDT_LWW:
		/* Few timestamps, so (ts, node) ties happen. */
		op.ts = 1 + rnd_below(12);
		op.tombstone = rnd_below(5) == 0;
		break;
	case CRDT_FVEC:
		/* Fields are non-empty (ALPHA[0] is not one); few event
		 * times and timestamps, so ties and truncation happen. A
		 * second put may name the same field: the last one wins. */
		op.member = 1 + (int)rnd_below(NALPHA - 1);
		op.value = (int)rnd_below(NALPHA);
		op.member2 = rnd_below(3) == 0 ? 1 + (int)rnd_below(NALPHA - 1) : 0;
		op.value2 = (int)rnd_below(NALPHA);
		op.event_ms = rnd_below(8);
		op.ts = 1 + rnd_below(4);
		break;
	default:
		break;
	}
	return op;
}

/* apply_op performs op at a replica whose node id is actor. */
static void apply_op(uint8_t type, struct sp_buf *state, uint64_t actor, const struct op *op)
{
	struct sp_buf next;
	sp_buf_init(&next);
	const uint8_t *s = B(state);
	size_t len = state->len;
	const char *m = ALPHA[op->member].p;
	size_t mlen = ALPHA[op->member].n;
	int rc = -1, flag;
	switch (type) {
	case CRDT_GCOUNTER:
		rc = crdt_gcounter_add(s, len, actor, (uint64_t)op->delta, &next);
		break;
	case CRDT_PNCOUNTER:
		rc = crdt_pncounter_add(s, len, actor, op->delta, &next);
		break;
	case CRDT_GSET:
		rc = crdt_gset_add(s, len, m, mlen, NULL, &next, &flag);
		break;
	case CRDT_2PSET:
		rc = op->kind == OP_ADD ? crdt_tpset_add(s, len, m, mlen, NULL, &next, &flag)
					: crdt_tpset_remove(s, len, m, mlen, NULL, &next, &flag);
		break;
	case CRDT_ORSET:
		rc = op->kind == OP_ADD ? crdt_orset_add(s, len, actor, m, mlen, NULL, &next, &flag)
					: crdt_orset_remove(s, len, m, mlen, &next, &flag);
		break;
	case CRDT_LWW:
		rc = crdt_lww_set(s, len, op->ts, actor, m, op->tombstone ? 0 : mlen, op->tombstone,
				  &next, &flag);
		break;
	case CRDT_MVREG:
		rc = crdt_mvreg_set(s, len, actor, m, mlen, NULL, &next);
		break;
	case CRDT_FVEC: {
		/* A write is a delta merged into the state. */
		struct crdt_fvec_put puts[2] = {
		    {m, mlen, ALPHA[op->value].p, ALPHA[op->value].n},
		    {ALPHA[op->member2].p, ALPHA[op->member2].n, ALPHA[op->value2].p,
		     ALPHA[op->value2].n},
		};
		struct sp_buf d;
		sp_buf_init(&d);
		rc = crdt_fvec_delta(FVEC_HISTORY, op->event_ms, op->ts, actor, puts,
				     op->member2 ? 2 : 1, NULL, &d);
		if (rc == 0)
			rc = crdt_merge(type, s, len, B(&d), d.len, &next);
		sp_buf_free(&d);
		break;
	}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(crdt_validate(type, B(&next), next.len), 0);
	replace(state, &next);
}

/* rnd_actors fills ids with n distinct non-zero actor ids, edges
 * included, so that little-endian ids that sort differently as bytes are
 * exercised. */
static void rnd_actors(uint64_t *ids, int n)
{
	static const uint64_t pool[] = {1,	    2,
					3,	    7,
					255,	    256,
					1000,	    1ull << 40,
					UINT64_MAX, UINT64_MAX - 1,
					0x0100ull,  0x8000000000000000ull};
	int np = (int)(sizeof(pool) / sizeof(pool[0]));
	for (int i = 0; i < n; i++) {
		for (;;) {
			uint64_t id = pool[rnd_below((uint64_t)np)];
			bool dup = false;
			for (int j = 0; j < i; j++)
				dup |= ids[j] == id;
			if (!dup) {
				ids[i] = id;
				break;
			}
		}
	}
}

/* A pool of random states of one type, grown at a few replicas by random
 * operations and merges, snapshots taken along the way. */
#define POOL_MAX 48

struct pool {
	int n;
	struct sp_buf s[POOL_MAX];
};

static void pool_fill(uint8_t type, struct pool *p)
{
	int nrep = 3 + (int)rnd_below(3);
	uint64_t ids[5];
	struct sp_buf rep[5];
	rnd_actors(ids, nrep);
	for (int i = 0; i < nrep; i++)
		sp_buf_init(&rep[i]);
	p->n = 0;
	sp_buf_init(&p->s[p->n++]); /* the bottom state */
	int steps = 40 + (int)rnd_below(80);
	for (int k = 0; k < steps && p->n < POOL_MAX; k++) {
		int i = (int)rnd_below((uint64_t)nrep);
		if (rnd_below(3) == 0) {
			int j = (int)rnd_below((uint64_t)nrep);
			merge_into(type, &rep[i], &rep[j]);
		} else {
			struct op op = rnd_op(type);
			apply_op(type, &rep[i], ids[i], &op);
		}
		if (rnd_below(3) == 0) {
			sp_buf_init(&p->s[p->n]);
			buf_copy(&p->s[p->n], &rep[i]);
			p->n++;
		}
	}
	for (int i = 0; i < nrep; i++)
		sp_buf_free(&rep[i]);
}

static void pool_free(struct pool *p)
{
	for (int i = 0; i < p->n; i++)
		sp_buf_free(&p->s[i]);
	p->n = 0;
}

/* ---------------------------------------------------------------------- */
/* Merge is a join                                                         */

static void check_lattice(uint8_t type, const struct sp_buf *a, const struct sp_buf *b,
			  const struct sp_buf *c)
{
	struct sp_buf empty;
	sp_buf_init(&empty);
	struct sp_buf ab = merge_new(type, a, b), ba = merge_new(type, b, a);
	assert_state_eq(type, "commutative", &ab, &ba);

	struct sp_buf aa = merge_new(type, a, a);
	assert_state_eq(type, "idempotent", &aa, a);

	struct sp_buf a0 = merge_new(type, a, &empty), z0 = merge_new(type, &empty, a);
	assert_state_eq(type, "identity", &a0, a);
	assert_state_eq(type, "identity", &z0, a);

	struct sp_buf aba = merge_new(type, &ab, a), abb = merge_new(type, b, &ab);
	assert_state_eq(type, "upper bound of a", &aba, &ab);
	assert_state_eq(type, "upper bound of b", &abb, &ab);

	struct sp_buf ab_c = merge_new(type, &ab, c);
	struct sp_buf bc = merge_new(type, b, c);
	struct sp_buf a_bc = merge_new(type, a, &bc);
	assert_state_eq(type, "associative", &ab_c, &a_bc);

	struct sp_buf *all[] = {&ab, &ba, &aa, &a0, &z0, &aba, &abb, &ab_c, &bc, &a_bc};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		sp_buf_free(all[i]);
}

static void test_merge_is_join(void **st)
{
	(void)st;
	seed_test("merge_is_join");
	for (size_t t = 0; t < NTYPES; t++) {
		uint8_t type = ALL_TYPES[t];
		for (int round = 0; round < 12; round++) {
			struct pool p;
			pool_fill(type, &p);
			for (int k = 0; k < 60; k++) {
				const struct sp_buf *a = &p.s[rnd_below((uint64_t)p.n)];
				const struct sp_buf *b = &p.s[rnd_below((uint64_t)p.n)];
				const struct sp_buf *c = &p.s[rnd_below((uint64_t)p.n)];
				check_lattice(type, a, b, c);
			}
			pool_free(&p);
		}
	}
}

/* Two pools grown independently use the same actors and members for
 * different events, so their states are ones no single history produces
 * (one dot naming two members, say); the merge must still be a join. */
static void test_merge_is_join_across_histories(void **st)
{
	(void)st;
	seed_test("merge_is_join_across_histories");
	for (size_t t = 0; t < NTYPES; t++) {
		uint8_t type = ALL_TYPES[t];
		for (int round = 0; round < 8; round++) {
			struct pool p, q;
			pool_fill(type, &p);
			pool_fill(type, &q);
			for (int k = 0; k < 60; k++) {
				const struct sp_buf *a = &p.s[rnd_below((uint64_t)p.n)];
				const struct sp_buf *b = &q.s[rnd_below((uint64_t)q.n)];
				const struct sp_buf *c = rnd_below(2)
							     ? &p.s[rnd_below((uint64_t)p.n)]
							     : &q.s[rnd_below((uint64_t)q.n)];
				check_lattice(type, a, b, c);
			}
			pool_free(&p);
			pool_free(&q);
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Convergence under gossip, against a model of the history                */

#define MAX_REPLICAS 5
#define MAX_EVENTS   192
#define HWORDS	     (MAX_EVENTS / 64)

/* A causal history: the set of events a replica (or a message) has seen. */
struct hist {
	uint64_t w[HWORDS];
};

static void hist_add(struct hist *h, int e)
{
	h->w[e / 64] |= 1ull << (e % 64);
}

static bool hist_has(const struct hist *h, int e)
{
	return (h->w[e / 64] >> (e % 64)) & 1;
}

static void hist_union(struct hist *h, const struct hist *o)
{
	for (int i = 0; i < HWORDS; i++)
		h->w[i] |= o->w[i];
}

struct event {
	int replica;
	struct op op;
	struct hist seen; /* what the replica had seen before this event */
};

struct replica {
	uint64_t id;
	struct sp_buf state;
	struct hist seen;
};

struct msg {
	int to;
	struct sp_buf state;
	struct hist seen;
};

struct world {
	uint8_t type;
	int nrep;
	struct replica rep[MAX_REPLICAS];
	int nev;
	struct event ev[MAX_EVENTS];
	int nmsg, cap;
	struct msg *msgs;
};

static void send_state(struct world *w, int from, int to)
{
	if (w->nmsg == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 16;
		w->msgs = realloc(w->msgs, (size_t)w->cap * sizeof(*w->msgs));
		assert_non_null(w->msgs);
	}
	struct msg *m = &w->msgs[w->nmsg++];
	m->to = to;
	sp_buf_init(&m->state);
	buf_copy(&m->state, &w->rep[from].state);
	m->seen = w->rep[from].seen;
}

/* deliver merges message k into its replica; keep leaves it in flight,
 * to be delivered again (a duplicate). */
static void deliver(struct world *w, int k, bool keep)
{
	struct msg *m = &w->msgs[k];
	struct replica *r = &w->rep[m->to];
	merge_into(w->type, &r->state, &m->state);
	hist_union(&r->seen, &m->seen);
	if (!keep) {
		sp_buf_free(&m->state);
		w->msgs[k] = w->msgs[--w->nmsg];
	}
}

static void local_op(struct world *w, int i)
{
	struct replica *r = &w->rep[i];
	struct event *e = &w->ev[w->nev];
	e->replica = i;
	e->op = rnd_op(w->type);
	e->seen = r->seen;
	apply_op(w->type, &r->state, r->id, &e->op);
	hist_add(&r->seen, w->nev);
	w->nev++;
}

/* member_list collects what crdt_set_members / crdt_mvreg_values visit. */
struct member_list {
	int n;
	struct {
		uint8_t p[8];
		size_t n;
	} m[32];
};

static int collect(void *ctx, const uint8_t *m, size_t mlen)
{
	struct member_list *l = ctx;
	assert_true(l->n < 32);
	assert_true(mlen <= 8);
	if (mlen)
		memcpy(l->m[l->n].p, m, mlen);
	l->m[l->n].n = mlen;
	l->n++;
	return 0;
}

static int cmp_member(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	size_t n = an < bn ? an : bn;
	int c = n ? memcmp(a, b, n) : 0;
	return c ? c : (an > bn) - (an < bn);
}

/* check_set compares a set state with the live members the model
 * expects (by ALPHA index). */
static void check_set(uint8_t type, const struct sp_buf *s, const bool *expect)
{
	struct member_list l = {0};
	int n = crdt_set_members(type, B(s), s->len, collect, &l);
	assert_int_equal(n, l.n);
	int want = 0;
	for (int i = 0; i < NALPHA; i++) {
		want += expect[i];
		int has = crdt_set_contains(type, B(s), s->len, ALPHA[i].p, ALPHA[i].n);
		if (has != (int)expect[i]) {
			struct sp_buf d;
			sp_buf_init(&d);
			crdt_describe(type, B(s), s->len, &d);
			sp_buf_append(&d, "", 1);
			fail_msg("%s: member %d: contains %d, model %d: %s", crdt_type_name(type),
				 i, has, expect[i], sp_buf_begin(&d));
		}
	}
	assert_int_equal(n, want);
	uint64_t count = 99;
	assert_int_equal(crdt_set_count(type, B(s), s->len, &count), 0);
	assert_int_equal(count, (uint64_t)want);
	/* Visited in strictly ascending byte order. */
	for (int i = 1; i < l.n; i++)
		assert_true(cmp_member(l.m[i - 1].p, l.m[i - 1].n, l.m[i].p, l.m[i].n) < 0);
}

/* lww_cmp_events orders writes as the register must: ts, node, then the
 * (tombstone flag, value) bytes. */
static int lww_cmp_events(const struct world *w, const struct event *a, const struct event *b)
{
	uint64_t na = w->rep[a->replica].id, nb = w->rep[b->replica].id;
	if (a->op.ts != b->op.ts)
		return a->op.ts < b->op.ts ? -1 : 1;
	if (na != nb)
		return na < nb ? -1 : 1;
	if (a->op.tombstone != b->op.tombstone)
		return a->op.tombstone ? 1 : -1;
	if (a->op.tombstone)
		return 0;
	return cmp_member((const uint8_t *)ALPHA[a->op.member].p, ALPHA[a->op.member].n,
			  (const uint8_t *)ALPHA[b->op.member].p, ALPHA[b->op.member].n);
}

/* The feature record's model: per field (index in ALPHA), the winning
 * write of each event time seen, before truncation to the history. */
struct fvec_write {
	uint64_t event_ms, ts, node;
	const uint8_t *v;
	size_t vlen;
};

#define FVEC_MODEL_MAX 512

struct fvec_model {
	int n[NALPHA];
	struct fvec_write w[NALPHA][FVEC_MODEL_MAX];
};

/* fvec_write_cmp orders two writes of one event time: (ts, node), then
 * the value's bytes. */
static int fvec_write_cmp(const struct fvec_write *a, const struct fvec_write *b)
{
	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	if (a->node != b->node)
		return a->node < b->node ? -1 : 1;
	return cmp_member(a->v, a->vlen, b->v, b->vlen);
}

static void fvec_model_put(struct fvec_model *m, int field, uint64_t event_ms, uint64_t ts,
			   uint64_t node, int value)
{
	struct fvec_write w = {event_ms, ts, node, (const uint8_t *)ALPHA[value].p, ALPHA[value].n};
	for (int i = 0; i < m->n[field]; i++) {
		struct fvec_write *o = &m->w[field][i];
		if (o->event_ms == event_ms) {
			if (fvec_write_cmp(&w, o) > 0)
				*o = w;
			return;
		}
	}
	assert_true(m->n[field] < FVEC_MODEL_MAX);
	m->w[field][m->n[field]++] = w;
}

/* fvec_model_put_op records a random op's puts; of two puts naming one
 * field, the last wins. */
static void fvec_model_put_op(struct fvec_model *m, const struct op *op, uint64_t node)
{
	if (op->member2 != op->member)
		fvec_model_put(m, op->member, op->event_ms, op->ts, node, op->value);
	if (op->member2)
		fvec_model_put(m, op->member2, op->event_ms, op->ts, node, op->value2);
}

/* fvec_model_kept sorts a field's writes newest first and returns how
 * many of them a state of this history keeps. */
static int fvec_model_kept(struct fvec_model *m, int field, uint32_t history)
{
	struct fvec_write *w = m->w[field];
	for (int i = 1; i < m->n[field]; i++)
		for (int j = i; j > 0 && w[j].event_ms > w[j - 1].event_ms; j--) {
			struct fvec_write t = w[j];
			w[j] = w[j - 1];
			w[j - 1] = t;
		}
	return m->n[field] < (int)history ? m->n[field] : (int)history;
}

/* What crdt_fvec_walk visits, copied out of the state. */
struct fvec_seen {
	int n;
	struct {
		uint8_t f[8], v[8];
		size_t flen, idx;
		struct crdt_fvec_entry e; /* e.v points at v */
	} x[64];
};

static int fvec_collect(void *ctx, const uint8_t *field, size_t flen,
			const struct crdt_fvec_entry *e, size_t idx)
{
	struct fvec_seen *seen = ctx;
	assert_true(seen->n < 64);
	assert_true(flen >= 1 && flen <= 8 && e->vlen <= 8);
	assert_non_null(e->v);
	memcpy(seen->x[seen->n].f, field, flen);
	seen->x[seen->n].flen = flen;
	seen->x[seen->n].idx = idx;
	seen->x[seen->n].e = *e;
	if (e->vlen)
		memcpy(seen->x[seen->n].v, e->v, e->vlen);
	seen->x[seen->n].e.v = seen->x[seen->n].v;
	seen->n++;
	return 0;
}

static void assert_fvec_write(const struct crdt_fvec_entry *e, const struct fvec_write *w)
{
	assert_int_equal(e->event_ms, w->event_ms);
	assert_int_equal(e->ts, w->ts);
	assert_int_equal(e->node, w->node);
	assert_int_equal(cmp_member(e->v, e->vlen, w->v, w->vlen), 0);
}

/* fvec_check_model compares state s with the model: the walk visits, in
 * order, each field's kept writes newest first, and "as of" reads at and
 * around every event time (kept or dropped) find what the model keeps. */
static void fvec_check_model(struct fvec_model *m, uint32_t history, const struct sp_buf *s)
{
	struct fvec_seen *seen = calloc(1, sizeof(*seen));
	assert_non_null(seen);
	assert_int_equal(crdt_fvec_walk(B(s), s->len, fvec_collect, seen), 0);
	for (int i = 0; i < seen->n; i++) {
		if (seen->x[i].idx == 0) {
			if (i > 0)
				assert_true(cmp_member(seen->x[i - 1].f, seen->x[i - 1].flen,
						       seen->x[i].f, seen->x[i].flen) < 0);
		} else {
			assert_true(i > 0);
			assert_int_equal(cmp_member(seen->x[i - 1].f, seen->x[i - 1].flen,
						    seen->x[i].f, seen->x[i].flen),
					 0);
			assert_int_equal(seen->x[i].idx, seen->x[i - 1].idx + 1);
			assert_true(seen->x[i].e.event_ms < seen->x[i - 1].e.event_ms);
		}
	}
	int total = 0;
	for (int f = 1; f < NALPHA; f++) {
		const uint8_t *name = (const uint8_t *)ALPHA[f].p;
		size_t nlen = ALPHA[f].n;
		int kept = fvec_model_kept(m, f, history);
		int at = 0;
		while (at < seen->n && cmp_member(seen->x[at].f, seen->x[at].flen, name, nlen) != 0)
			at++;
		if (kept == 0)
			assert_int_equal(at, seen->n);
		for (int k = 0; k < kept; k++) {
			assert_true(at + k < seen->n);
			assert_int_equal(
			    cmp_member(seen->x[at + k].f, seen->x[at + k].flen, name, nlen), 0);
			assert_int_equal(seen->x[at + k].idx, (size_t)k);
			assert_fvec_write(&seen->x[at + k].e, &m->w[f][k]);
		}
		total += kept;
		/* As of reads: 0, UINT64_MAX, and every event time and the
		 * one before it. */
		for (int i = -2; i < 2 * m->n[f]; i++) {
			uint64_t asof = i == -2	  ? 0
					: i == -1 ? UINT64_MAX
					: i % 2	  ? m->w[f][i / 2].event_ms - 1
						  : m->w[f][i / 2].event_ms;
			int want = -1;
			for (int k = 0; k < kept && want < 0; k++)
				if (m->w[f][k].event_ms <= asof)
					want = k;
			struct crdt_fvec_entry e;
			int rc = crdt_fvec_find(B(s), s->len, name, nlen, asof, &e);
			if (want < 0) {
				assert_int_equal(rc, SP_ERR_NOTFOUND);
			} else {
				assert_int_equal(rc, 0);
				assert_fvec_write(&e, &m->w[f][want]);
			}
		}
	}
	assert_int_equal(seen->n, total);
	struct crdt_fvec_entry e;
	assert_int_equal(crdt_fvec_find(B(s), s->len, NULL, 0, UINT64_MAX, &e), SP_ERR_NOTFOUND);
	uint32_t h = 99;
	assert_int_equal(crdt_fvec_history(B(s), s->len, &h), 0);
	assert_int_equal(h, total ? history : 0);
	assert_true(total > 0 || s->len == 0);
	free(seen);
}

/* check_model compares the converged state s with what the history says. */
static void check_model(const struct world *w, const struct sp_buf *s)
{
	uint8_t type = w->type;
	switch (type) {
	case CRDT_GCOUNTER:
	case CRDT_PNCOUNTER: {
		int64_t sum = 0, v = -1;
		for (int e = 0; e < w->nev; e++)
			sum += w->ev[e].op.delta;
		int rc = type == CRDT_GCOUNTER ? crdt_gcounter_value(B(s), s->len, &v)
					       : crdt_pncounter_value(B(s), s->len, &v);
		assert_int_equal(rc, 0);
		assert_int_equal(v, sum);
		break;
	}
	case CRDT_GSET:
	case CRDT_2PSET: {
		bool added[NALPHA] = {0}, removed[NALPHA] = {0}, expect[NALPHA];
		for (int e = 0; e < w->nev; e++) {
			const struct op *op = &w->ev[e].op;
			(op->kind == OP_ADD ? added : removed)[op->member] = true;
		}
		for (int i = 0; i < NALPHA; i++)
			expect[i] = added[i] && !removed[i];
		check_set(type, s, expect);
		break;
	}
	case CRDT_ORSET: {
		/* Present iff some add of m is observed by no remove of m. */
		bool expect[NALPHA] = {0};
		for (int e = 0; e < w->nev; e++) {
			const struct event *add = &w->ev[e];
			if (add->op.kind != OP_ADD)
				continue;
			bool observed = false;
			for (int f = 0; f < w->nev && !observed; f++) {
				const struct event *rm = &w->ev[f];
				observed = rm->op.kind == OP_REMOVE &&
					   rm->op.member == add->op.member &&
					   hist_has(&rm->seen, e);
			}
			if (!observed)
				expect[add->op.member] = true;
		}
		check_set(type, s, expect);
		break;
	}
	case CRDT_LWW: {
		struct crdt_lww got;
		if (w->nev == 0) {
			assert_int_equal(crdt_lww_get(B(s), s->len, &got), SP_ERR_NOTFOUND);
			break;
		}
		const struct event *best = &w->ev[0];
		for (int e = 1; e < w->nev; e++)
			if (lww_cmp_events(w, &w->ev[e], best) > 0)
				best = &w->ev[e];
		assert_int_equal(crdt_lww_get(B(s), s->len, &got), 0);
		assert_int_equal(got.ts, best->op.ts);
		assert_int_equal(got.node, w->rep[best->replica].id);
		assert_int_equal(got.tombstone, best->op.tombstone);
		size_t vlen = best->op.tombstone ? 0 : ALPHA[best->op.member].n;
		assert_int_equal(got.vlen, vlen);
		assert_non_null(got.v);
		assert_int_equal(
		    cmp_member(got.v, got.vlen, (const uint8_t *)ALPHA[best->op.member].p, vlen),
		    0);
		break;
	}
	case CRDT_MVREG: {
		/* The siblings are the writes no other write observed, one
		 * per actor, listed by actor. */
		int want[MAX_REPLICAS], nwant = 0;
		for (int e = 0; e < w->nev; e++) {
			bool superseded = false;
			for (int f = 0; f < w->nev && !superseded; f++)
				superseded = hist_has(&w->ev[f].seen, e);
			if (!superseded)
				want[nwant++] = e;
		}
		for (int i = 0; i < nwant; i++)
			for (int j = i + 1; j < nwant; j++)
				if (w->rep[w->ev[want[j]].replica].id <
				    w->rep[w->ev[want[i]].replica].id) {
					int t = want[i];
					want[i] = want[j];
					want[j] = t;
				}
		struct member_list l = {0};
		assert_int_equal(crdt_mvreg_values(B(s), s->len, collect, &l), nwant);
		uint64_t count = 99;
		assert_int_equal(crdt_mvreg_count(B(s), s->len, &count), 0);
		assert_int_equal(count, (uint64_t)nwant);
		for (int i = 0; i < nwant; i++) {
			int m = w->ev[want[i]].op.member;
			assert_int_equal(
			    cmp_member(l.m[i].p, l.m[i].n, (const uint8_t *)ALPHA[m].p, ALPHA[m].n),
			    0);
		}
		break;
	}
	case CRDT_FVEC: {
		/* Each field's FVEC_HISTORY largest event times, each with
		 * its largest write, whatever the delivery order. */
		struct fvec_model *m = calloc(1, sizeof(*m));
		assert_non_null(m);
		for (int e = 0; e < w->nev; e++)
			fvec_model_put_op(m, &w->ev[e].op, w->rep[w->ev[e].replica].id);
		fvec_check_model(m, FVEC_HISTORY, s);
		free(m);
		break;
	}
	}
}

static void run_world(uint8_t type)
{
	struct world *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	w->type = type;
	w->nrep = 2 + (int)rnd_below(MAX_REPLICAS - 1);
	uint64_t ids[MAX_REPLICAS];
	rnd_actors(ids, w->nrep);
	for (int i = 0; i < w->nrep; i++) {
		w->rep[i].id = ids[i];
		sp_buf_init(&w->rep[i].state);
	}
	int max_ops = 10 + (int)rnd_below(MAX_EVENTS - 10);
	int steps = 3 * max_ops;
	for (int k = 0; k < steps; k++) {
		uint64_t r = rnd_below(10);
		if (r < 4 && w->nev < max_ops) {
			local_op(w, (int)rnd_below((uint64_t)w->nrep));
		} else if (r < 7) {
			int from = (int)rnd_below((uint64_t)w->nrep);
			int to = (int)rnd_below((uint64_t)w->nrep);
			if (from != to)
				send_state(w, from, to);
		} else if (w->nmsg > 0) {
			/* A random message in flight: delays are the ones
			 * not picked; a quarter are delivered twice. */
			deliver(w, (int)rnd_below((uint64_t)w->nmsg), rnd_below(4) == 0);
		}
	}
	/* Deliver what is still in flight, in random order. */
	while (w->nmsg > 0)
		deliver(w, (int)rnd_below((uint64_t)w->nmsg), false);
	/* A final exchange: everyone sends to everyone, delivered shuffled. */
	for (int i = 0; i < w->nrep; i++)
		for (int j = 0; j < w->nrep; j++)
			if (i != j)
				send_state(w, i, j);
	while (w->nmsg > 0)
		deliver(w, (int)rnd_below((uint64_t)w->nmsg), false);
	for (int i = 1; i < w->nrep; i++)
		assert_state_eq(type, "replicas converge", &w->rep[0].state, &w->rep[i].state);
	check_model(w, &w->rep[0].state);
	for (int i = 0; i < w->nrep; i++)
		sp_buf_free(&w->rep[i].state);
	free(w->msgs);
	free(w);
}

static void test_convergence(void **st)
{
	(void)st;
	seed_test("convergence");
	for (size_t t = 0; t < NTYPES; t++)
		for (int round = 0; round < 60; round++)
			run_world(ALL_TYPES[t]);
}

/* ---------------------------------------------------------------------- */
/* Examples                                                                */

static void orset_add(struct sp_buf *s, uint64_t actor, const char *m)
{
	struct sp_buf n;
	sp_buf_init(&n);
	assert_int_equal(crdt_orset_add(B(s), s->len, actor, m, strlen(m), NULL, &n, NULL), 0);
	replace(s, &n);
}

static void orset_remove(struct sp_buf *s, const char *m)
{
	struct sp_buf n;
	sp_buf_init(&n);
	assert_int_equal(crdt_orset_remove(B(s), s->len, m, strlen(m), &n, NULL), 0);
	replace(s, &n);
}

static int contains(uint8_t type, const struct sp_buf *s, const char *m)
{
	return crdt_set_contains(type, B(s), s->len, m, strlen(m));
}

static void test_orset_add_wins(void **st)
{
	(void)st;
	struct sp_buf r1, r2, x;
	sp_buf_init(&r1);
	sp_buf_init(&r2);
	sp_buf_init(&x);

	/* Adds keep the other members wherever the new one sorts. */
	orset_add(&x, 1, "m");
	orset_add(&x, 2, "a");
	orset_add(&x, 1, "z");
	orset_add(&x, 2, "b");
	uint64_t count = 0;
	assert_int_equal(crdt_set_count(CRDT_ORSET, B(&x), x.len, &count), 0);
	assert_int_equal(count, 4);
	orset_remove(&x, "b");
	assert_int_equal(contains(CRDT_ORSET, &x, "a"), 1);
	assert_int_equal(contains(CRDT_ORSET, &x, "b"), 0);
	assert_int_equal(contains(CRDT_ORSET, &x, "m"), 1);
	assert_int_equal(contains(CRDT_ORSET, &x, "z"), 1);

	/* r1 adds x; r2 learns it. */
	orset_add(&r1, 1, "x");
	merge_into(CRDT_ORSET, &r2, &r1);
	assert_int_equal(contains(CRDT_ORSET, &r2, "x"), 1);

	/* Concurrently: r2 removes x (the add it saw), r1 adds x again. */
	orset_remove(&r2, "x");
	assert_int_equal(contains(CRDT_ORSET, &r2, "x"), 0);
	orset_add(&r1, 1, "x");
	struct sp_buf m12 = merge_new(CRDT_ORSET, &r1, &r2);
	struct sp_buf m21 = merge_new(CRDT_ORSET, &r2, &r1);
	assert_true(buf_eq(&m12, &m21));
	assert_int_equal(contains(CRDT_ORSET, &m12, "x"), 1); /* add wins */

	/* A remove that saw every add wins over the older states. */
	orset_remove(&m12, "x");
	assert_int_equal(contains(CRDT_ORSET, &m12, "x"), 0);
	merge_into(CRDT_ORSET, &m12, &r1);
	merge_into(CRDT_ORSET, &m12, &r2);
	assert_int_equal(contains(CRDT_ORSET, &m12, "x"), 0);

	/* The removal is kept in the context alone: no tombstone entry. */
	buf_set(&x, "", 0);
	orset_add(&x, 5, "x");
	orset_remove(&x, "x");
	struct sp_buf want;
	sp_buf_init(&want);
	sp_buf_put_le32(&want, 1);
	sp_buf_put_le64(&want, 5);
	sp_buf_put_le64(&want, 1);
	assert_true(buf_eq(&x, &want));

	/* Concurrent adds of the same member by two actors keep both dots;
	 * removing it anywhere that saw both removes it. */
	struct sp_buf a, b;
	sp_buf_init(&a);
	sp_buf_init(&b);
	orset_add(&a, 1, "y");
	orset_add(&b, 2, "y");
	merge_into(CRDT_ORSET, &a, &b);
	struct sp_buf d;
	sp_buf_init(&d);
	assert_int_equal(crdt_describe(CRDT_ORSET, B(&a), a.len, &d), 0);
	sp_buf_append(&d, "", 1);
	assert_string_equal(sp_buf_begin(&d), "orset vv={1:1,2:1} {\"y\"@1:1@2:1}");
	orset_remove(&a, "y");
	merge_into(CRDT_ORSET, &a, &b);
	assert_int_equal(contains(CRDT_ORSET, &a, "y"), 0);

	struct sp_buf *all[] = {&r1, &r2, &x, &m12, &m21, &want, &a, &b, &d};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		sp_buf_free(all[i]);
}

static void mvreg_set(struct sp_buf *s, uint64_t actor, const char *v)
{
	struct sp_buf n;
	sp_buf_init(&n);
	assert_int_equal(crdt_mvreg_set(B(s), s->len, actor, v, strlen(v), NULL, &n), 0);
	replace(s, &n);
}

/* mv_values returns the sibling values joined with '|'. */
static void mv_values(const struct sp_buf *s, char *text, size_t cap)
{
	struct member_list l = {0};
	int n = crdt_mvreg_values(B(s), s->len, collect, &l);
	assert_int_equal(n, l.n);
	text[0] = '\0';
	for (int i = 0; i < l.n; i++) {
		size_t at = strlen(text);
		snprintf(text + at, cap - at, "%s%.*s", i ? "|" : "", (int)l.m[i].n,
			 (const char *)l.m[i].p);
	}
}

static void test_mvreg_siblings(void **st)
{
	(void)st;
	char text[64];
	struct sp_buf r1, r2;
	sp_buf_init(&r1);
	sp_buf_init(&r2);

	/* Sequential: r2 saw r1's write, so its write replaces it. */
	mvreg_set(&r1, 10, "a");
	merge_into(CRDT_MVREG, &r2, &r1);
	mvreg_set(&r2, 20, "b");
	merge_into(CRDT_MVREG, &r1, &r2);
	mv_values(&r1, text, sizeof(text));
	assert_string_equal(text, "b");

	/* Concurrent: both siblings, listed by actor. */
	mvreg_set(&r2, 20, "c");
	mvreg_set(&r1, 10, "d");
	struct sp_buf m = merge_new(CRDT_MVREG, &r2, &r1);
	mv_values(&m, text, sizeof(text));
	assert_string_equal(text, "d|c");
	uint64_t count = 0;
	assert_int_equal(crdt_mvreg_count(B(&m), m.len, &count), 0);
	assert_int_equal(count, 2);

	/* Concurrent writes of one value are two siblings. */
	struct sp_buf x, y;
	sp_buf_init(&x);
	sp_buf_init(&y);
	mvreg_set(&x, 1, "same");
	mvreg_set(&y, 2, "same");
	merge_into(CRDT_MVREG, &x, &y);
	mv_values(&x, text, sizeof(text));
	assert_string_equal(text, "same|same");

	/* A write that merged both collapses them, and older states do not
	 * bring them back. */
	mvreg_set(&m, 30, "e");
	mv_values(&m, text, sizeof(text));
	assert_string_equal(text, "e");
	merge_into(CRDT_MVREG, &m, &r1);
	merge_into(CRDT_MVREG, &m, &r2);
	mv_values(&m, text, sizeof(text));
	assert_string_equal(text, "e");

	struct sp_buf d;
	sp_buf_init(&d);
	assert_int_equal(crdt_describe(CRDT_MVREG, B(&m), m.len, &d), 0);
	sp_buf_append(&d, "", 1);
	assert_string_equal(sp_buf_begin(&d), "mvreg vv={10:2,20:2,30:1} {30:1=\"e\"}");

	/* The empty register has no values. */
	struct sp_buf e;
	sp_buf_init(&e);
	mv_values(&e, text, sizeof(text));
	assert_string_equal(text, "");

	struct sp_buf *all[] = {&r1, &r2, &m, &x, &y, &d, &e};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		sp_buf_free(all[i]);
}

static int lww_set(struct sp_buf *s, uint64_t ts, uint64_t node, const char *v, bool tomb)
{
	struct sp_buf n;
	sp_buf_init(&n);
	int won = -1;
	assert_int_equal(crdt_lww_set(B(s), s->len, ts, node, v, v ? strlen(v) : 0, tomb, &n, &won),
			 0);
	replace(s, &n);
	return won;
}

static void assert_lww(const struct sp_buf *s, uint64_t ts, uint64_t node, const char *v)
{
	struct crdt_lww r;
	assert_int_equal(crdt_lww_get(B(s), s->len, &r), 0);
	assert_int_equal(r.ts, ts);
	assert_int_equal(r.node, node);
	assert_int_equal(r.tombstone, v == NULL);
	assert_int_equal(r.vlen, v ? strlen(v) : 0);
	if (v)
		assert_memory_equal(r.v, v, r.vlen);
}

static void test_lww_order(void **st)
{
	(void)st;
	struct sp_buf s;
	sp_buf_init(&s);
	struct crdt_lww r;
	assert_int_equal(crdt_lww_get(B(&s), 0, &r), SP_ERR_NOTFOUND);
	assert_int_equal(crdt_lww_get(NULL, 0, &r), SP_ERR_NOTFOUND);

	assert_int_equal(lww_set(&s, 10, 2, "a", false), 1);
	assert_lww(&s, 10, 2, "a");
	assert_int_equal(lww_set(&s, 9, 9, "old", false), 0); /* smaller ts loses */
	assert_lww(&s, 10, 2, "a");
	assert_int_equal(lww_set(&s, 10, 1, "z", false), 0); /* equal ts, smaller node */
	assert_lww(&s, 10, 2, "a");
	assert_int_equal(lww_set(&s, 10, 3, "", false), 1); /* equal ts, larger node */
	assert_lww(&s, 10, 3, "");
	assert_int_equal(lww_set(&s, 10, 3, "b", false), 1); /* equal: longer bytes */
	assert_lww(&s, 10, 3, "b");
	assert_int_equal(lww_set(&s, 10, 3, "a", false), 0); /* equal: smaller bytes */
	assert_int_equal(lww_set(&s, 10, 3, "b", false), 1); /* the same write again */
	assert_lww(&s, 10, 3, "b");
	assert_int_equal(lww_set(&s, 10, 3, NULL, true), 1); /* tombstone beats value */
	assert_lww(&s, 10, 3, NULL);
	assert_int_equal(lww_set(&s, 10, 3, "zz", false), 0);
	assert_int_equal(lww_set(&s, 11, 1, "new", false), 1);
	assert_lww(&s, 11, 1, "new");
	assert_int_equal(lww_set(&s, UINT64_MAX, 1, NULL, true), 1);
	assert_lww(&s, UINT64_MAX, 1, NULL);

	/* Bad writes. */
	struct sp_buf out;
	sp_buf_init(&out);
	assert_int_equal(crdt_lww_set(NULL, 0, 1, 0, "x", 1, false, &out, NULL), SP_ERR_INVAL);
	assert_int_equal(crdt_lww_set(NULL, 0, 1, 1, "x", 1, true, &out, NULL), SP_ERR_INVAL);
	assert_int_equal(out.len, 0);

	/* Golden bytes: ts | node | flags | value. */
	assert_int_equal(crdt_lww_set(NULL, 0, 0x0102, 7, "hi", 2, false, &out, NULL), 0);
	static const uint8_t golden[] = {2, 1, 0, 0, 0, 0, 0, 0,   7,  0,
					 0, 0, 0, 0, 0, 0, 0, 'h', 'i'};
	assert_int_equal(out.len, sizeof(golden));
	assert_memory_equal(B(&out), golden, sizeof(golden));

	struct sp_buf d;
	sp_buf_init(&d);
	assert_int_equal(crdt_describe(CRDT_LWW, B(&out), out.len, &d), 0);
	assert_int_equal(crdt_describe(CRDT_LWW, NULL, 0, &d), 0);
	sp_buf_append_str(&d, "|");
	assert_int_equal(crdt_describe(CRDT_LWW, B(&s), s.len, &d), 0);
	sp_buf_append(&d, "", 1);
	assert_string_equal(sp_buf_begin(&d),
			    "lww ts=258 node=7 \"hi\"lww unset|lww ts=18446744073709551615 "
			    "node=1 tombstone");
	sp_buf_free(&s);
	sp_buf_free(&out);
	sp_buf_free(&d);
}

static void test_counters(void **st)
{
	(void)st;
	struct sp_buf s, t, out;
	sp_buf_init(&s);
	sp_buf_init(&t);
	sp_buf_init(&out);
	int64_t v = 0;

	/* Golden bytes and the value of a G-Counter. */
	assert_int_equal(crdt_gcounter_add(NULL, 0, 2, 3, &s), 0);
	assert_int_equal(crdt_gcounter_add(B(&s), s.len, 1, 5, &t), 0);
	replace(&s, &t);
	static const uint8_t golden[] = {1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0,
					 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(s.len, sizeof(golden));
	assert_memory_equal(B(&s), golden, sizeof(golden));
	assert_int_equal(crdt_gcounter_value(B(&s), s.len, &v), 0);
	assert_int_equal(v, 8);
	assert_int_equal(crdt_gcounter_value(NULL, 0, &v), 0);
	assert_int_equal(v, 0);
	/* Adding 0 changes nothing and records no actor. */
	assert_int_equal(crdt_gcounter_add(B(&s), s.len, 9, 0, &out), 0);
	assert_true(buf_eq(&out, &s));
	sp_buf_clear(&out);
	assert_int_equal(crdt_gcounter_add(B(&s), s.len, 0, 1, &out), SP_ERR_INVAL);

	/* G-Counter overflow: an actor's count and the total. */
	sp_buf_clear(&s);
	assert_int_equal(crdt_gcounter_add(NULL, 0, 1, (uint64_t)INT64_MAX + 1, &s), SP_ERR_RANGE);
	assert_int_equal(crdt_gcounter_add(NULL, 0, 1, INT64_MAX - 1, &s), 0);
	assert_int_equal(crdt_gcounter_add(B(&s), s.len, 1, 2, &out), SP_ERR_RANGE);
	assert_int_equal(crdt_gcounter_add(B(&s), s.len, 2, 2, &out), SP_ERR_RANGE);
	assert_int_equal(out.len, 0);
	assert_int_equal(crdt_gcounter_add(B(&s), s.len, 2, 1, &out), 0);
	assert_int_equal(crdt_gcounter_value(B(&out), out.len, &v), 0);
	assert_int_equal(v, INT64_MAX);
	/* Independent growth: the merge is fine, its value is not. */
	sp_buf_clear(&t);
	assert_int_equal(crdt_gcounter_add(NULL, 0, 3, INT64_MAX, &t), 0);
	struct sp_buf m = merge_new(CRDT_GCOUNTER, &s, &t);
	v = 42;
	assert_int_equal(crdt_gcounter_value(B(&m), m.len, &v), SP_ERR_RANGE);
	assert_int_equal(v, 42);
	sp_buf_clear(&out);
	assert_int_equal(crdt_gcounter_add(B(&m), m.len, 1, 0, &out), SP_ERR_RANGE);
	sp_buf_free(&m);

	/* PN-Counter. */
	sp_buf_clear(&s);
	sp_buf_clear(&out);
	assert_int_equal(crdt_pncounter_add(NULL, 0, 1, 5, &s), 0);
	assert_int_equal(crdt_pncounter_add(B(&s), s.len, 2, 3, &out), 0);
	replace(&s, &out);
	assert_int_equal(crdt_pncounter_add(B(&s), s.len, 1, -1, &out), 0);
	replace(&s, &out);
	assert_int_equal(crdt_pncounter_value(B(&s), s.len, &v), 0);
	assert_int_equal(v, 7);
	struct sp_buf d;
	sp_buf_init(&d);
	assert_int_equal(crdt_describe(CRDT_PNCOUNTER, B(&s), s.len, &d), 0);
	sp_buf_append(&d, "", 1);
	assert_string_equal(sp_buf_begin(&d), "pncounter p={1:5,2:3} n={1:1}");
	assert_int_equal(crdt_pncounter_add(B(&s), s.len, 3, -10, &out), 0);
	assert_int_equal(crdt_pncounter_value(B(&out), out.len, &v), 0);
	assert_int_equal(v, -3);
	sp_buf_clear(&out);
	assert_int_equal(crdt_pncounter_add(B(&s), s.len, 1, INT64_MIN, &out), SP_ERR_RANGE);
	assert_int_equal(crdt_pncounter_add(B(&s), s.len, 0, 1, &out), SP_ERR_INVAL);
	assert_int_equal(out.len, 0);

	/* PN overflow: P and N are each bounded by INT64_MAX. */
	sp_buf_clear(&s);
	assert_int_equal(crdt_pncounter_add(NULL, 0, 1, INT64_MAX, &s), 0);
	assert_int_equal(crdt_pncounter_add(B(&s), s.len, 2, 1, &out), SP_ERR_RANGE);
	assert_int_equal(crdt_pncounter_add(B(&s), s.len, 2, -INT64_MAX, &out), 0);
	replace(&s, &out);
	assert_int_equal(crdt_pncounter_value(B(&s), s.len, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(crdt_pncounter_add(B(&s), s.len, 2, -1, &out), SP_ERR_RANGE);
	sp_buf_clear(&t);
	assert_int_equal(crdt_pncounter_add(NULL, 0, 1, -INT64_MAX, &t), 0);
	assert_int_equal(crdt_pncounter_value(B(&t), t.len, &v), 0);
	assert_int_equal(v, -INT64_MAX);
	/* Merged P = 2 * INT64_MAX does not fit, but P - N does. */
	sp_buf_clear(&s);
	sp_buf_clear(&t);
	assert_int_equal(crdt_pncounter_add(NULL, 0, 1, INT64_MAX, &s), 0);
	assert_int_equal(crdt_pncounter_add(NULL, 0, 2, INT64_MAX, &t), 0);
	m = merge_new(CRDT_PNCOUNTER, &s, &t);
	assert_int_equal(crdt_pncounter_value(B(&m), m.len, &v), SP_ERR_RANGE);
	sp_buf_clear(&t);
	assert_int_equal(crdt_pncounter_add(NULL, 0, 3, -INT64_MAX, &t), 0);
	merge_into(CRDT_PNCOUNTER, &m, &t);
	assert_int_equal(crdt_pncounter_value(B(&m), m.len, &v), 0);
	assert_int_equal(v, INT64_MAX);
	/* And the lowest value, INT64_MIN, is reachable by merges. */
	sp_buf_clear(&s);
	sp_buf_clear(&t);
	assert_int_equal(crdt_pncounter_add(NULL, 0, 1, -INT64_MAX, &s), 0);
	assert_int_equal(crdt_pncounter_add(NULL, 0, 2, -1, &t), 0);
	merge_into(CRDT_PNCOUNTER, &s, &t);
	assert_int_equal(crdt_pncounter_value(B(&s), s.len, &v), 0);
	assert_int_equal(v, INT64_MIN);

	struct sp_buf *all[] = {&s, &t, &out, &m, &d};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		sp_buf_free(all[i]);
}

/* stop_at_3 counts its calls in *ctx and stops the walk at the third. */
static int stop_at_3(void *ctx, const uint8_t *m, size_t mlen)
{
	(void)m;
	(void)mlen;
	int *calls = ctx;
	return ++*calls == 3;
}

static void test_sets(void **st)
{
	(void)st;
	struct sp_buf s, out;
	sp_buf_init(&s);
	sp_buf_init(&out);
	int flag = -1;

	/* G-Set: golden bytes, idempotent add. */
	assert_int_equal(crdt_gset_add(NULL, 0, "b", 1, NULL, &s, &flag), 0);
	assert_int_equal(flag, 1);
	assert_int_equal(crdt_gset_add(B(&s), s.len, "", 0, NULL, &out, &flag), 0);
	replace(&s, &out);
	static const uint8_t golden[] = {0, 0, 0, 0, 1, 0, 0, 0, 'b'};
	assert_int_equal(s.len, sizeof(golden));
	assert_memory_equal(B(&s), golden, sizeof(golden));
	assert_int_equal(crdt_gset_add(B(&s), s.len, "b", 1, NULL, &out, &flag), 0);
	assert_int_equal(flag, 0);
	assert_true(buf_eq(&out, &s));
	sp_buf_clear(&out);
	assert_int_equal(contains(CRDT_GSET, &s, ""), 1);
	assert_int_equal(contains(CRDT_GSET, &s, "a"), 0);

	/* 2P-Set: a removed member never comes back; removing a member
	 * never added leaves a tombstone that blocks a later add. */
	sp_buf_clear(&s);
	assert_int_equal(crdt_tpset_add(NULL, 0, "x", 1, NULL, &s, &flag), 0);
	assert_int_equal(flag, 1);
	assert_int_equal(crdt_tpset_remove(B(&s), s.len, "x", 1, NULL, &out, &flag), 0);
	assert_int_equal(flag, 1);
	replace(&s, &out);
	assert_int_equal(crdt_tpset_add(B(&s), s.len, "x", 1, NULL, &out, &flag), 0);
	assert_int_equal(flag, 0);
	assert_true(buf_eq(&out, &s));
	sp_buf_clear(&out);
	assert_int_equal(crdt_tpset_remove(B(&s), s.len, "y", 1, NULL, &out, &flag), 0);
	assert_int_equal(flag, 0);
	replace(&s, &out);
	assert_int_equal(crdt_tpset_add(B(&s), s.len, "y", 1, NULL, &out, &flag), 0);
	assert_int_equal(flag, 0);
	replace(&s, &out);
	assert_int_equal(crdt_tpset_add(B(&s), s.len, "w", 1, NULL, &out, &flag), 0);
	replace(&s, &out);
	uint64_t count = 0;
	assert_int_equal(crdt_set_count(CRDT_2PSET, B(&s), s.len, &count), 0);
	assert_int_equal(count, 1);
	struct sp_buf d;
	sp_buf_init(&d);
	assert_int_equal(crdt_describe(CRDT_2PSET, B(&s), s.len, &d), 0);
	sp_buf_append(&d, "", 1);
	assert_string_equal(sp_buf_begin(&d), "2pset live={\"w\"} removed={\"x\",\"y\"}");

	/* Members stop early when fn says so. */
	sp_buf_clear(&s);
	for (int i = 0; i < NALPHA; i++) {
		assert_int_equal(
		    crdt_gset_add(B(&s), s.len, ALPHA[i].p, ALPHA[i].n, NULL, &out, NULL), 0);
		replace(&s, &out);
	}
	struct member_list l = {0};
	assert_int_equal(crdt_set_members(CRDT_GSET, B(&s), s.len, collect, &l), NALPHA);
	int calls = 0;
	assert_int_equal(crdt_set_members(CRDT_GSET, B(&s), s.len, stop_at_3, &calls), 3);
	assert_int_equal(calls, 3);
	sp_buf_clear(&d);
	assert_int_equal(crdt_describe(CRDT_GSET, B(&s), s.len, &d), 0);
	sp_buf_append(&d, "", 1);
	assert_string_equal(sp_buf_begin(&d),
			    "gset {\"\",\"\\x00\",\"a\",\"ab\",\"b\",\"zzz\",\"\\xff\\x00\"}");

	/* Not a set type. */
	assert_int_equal(crdt_set_members(CRDT_LWW, NULL, 0, collect, &l), SP_ERR_INVAL);
	assert_int_equal(crdt_set_contains(CRDT_MVREG, NULL, 0, "a", 1), SP_ERR_INVAL);
	assert_int_equal(crdt_set_count(CRDT_GCOUNTER, NULL, 0, &count), SP_ERR_INVAL);
	assert_int_equal(crdt_set_count(0, NULL, 0, &count), SP_ERR_INVAL);

	sp_buf_free(&s);
	sp_buf_free(&out);
	sp_buf_free(&d);
}

/* ---------------------------------------------------------------------- */
/* Limits                                                                  */

/* expect_toobig checks that rc is SP_ERR_TOOBIG and out still holds only
 * its "pre" prefix. */
static void expect_toobig(int rc, const struct sp_buf *out)
{
	assert_int_equal(rc, SP_ERR_TOOBIG);
	assert_int_equal(out->len, 3);
	assert_memory_equal(B(out), "pre", 3);
}

static void test_limits(void **st)
{
	(void)st;
	const struct crdt_limits lim = {.max_members = 2, .max_siblings = 1, .max_member_len = 3};
	struct sp_buf s, out;
	sp_buf_init(&s);
	sp_buf_init(&out);
	buf_set(&out, "pre", 3);
	int flag;

	/* G-Set. */
	expect_toobig(crdt_gset_add(NULL, 0, "abcd", 4, &lim, &out, &flag), &out);
	assert_int_equal(crdt_gset_add(NULL, 0, "abc", 3, &lim, &s, &flag), 0);
	struct sp_buf t;
	sp_buf_init(&t);
	assert_int_equal(crdt_gset_add(B(&s), s.len, "b", 1, &lim, &t, &flag), 0);
	replace(&s, &t);
	expect_toobig(crdt_gset_add(B(&s), s.len, "c", 1, &lim, &out, &flag), &out);
	assert_int_equal(crdt_gset_add(B(&s), s.len, "b", 1, &lim, &t, &flag), 0); /* present */
	assert_int_equal(flag, 0);
	sp_buf_clear(&t);

	/* 2P-Set: tombstones count. */
	sp_buf_clear(&s);
	assert_int_equal(crdt_tpset_add(NULL, 0, "a", 1, &lim, &s, &flag), 0);
	assert_int_equal(crdt_tpset_remove(B(&s), s.len, "zz", 2, &lim, &t, &flag), 0);
	replace(&s, &t);
	expect_toobig(crdt_tpset_add(B(&s), s.len, "b", 1, &lim, &out, &flag), &out);
	expect_toobig(crdt_tpset_remove(B(&s), s.len, "q", 1, &lim, &out, &flag), &out);
	expect_toobig(crdt_tpset_add(B(&s), s.len, "abcd", 4, &lim, &out, &flag), &out);
	/* Removing a live member does not grow the state. */
	assert_int_equal(crdt_tpset_remove(B(&s), s.len, "a", 1, &lim, &t, &flag), 0);
	assert_int_equal(flag, 1);
	sp_buf_clear(&t);

	/* OR-Set: live members count; a removed one frees its place. */
	sp_buf_clear(&s);
	assert_int_equal(crdt_orset_add(NULL, 0, 1, "a", 1, &lim, &s, &flag), 0);
	assert_int_equal(crdt_orset_add(B(&s), s.len, 2, "b", 1, &lim, &t, &flag), 0);
	replace(&s, &t);
	expect_toobig(crdt_orset_add(B(&s), s.len, 1, "c", 1, &lim, &out, &flag), &out);
	expect_toobig(crdt_orset_add(B(&s), s.len, 1, "abcd", 4, &lim, &out, &flag), &out);
	assert_int_equal(crdt_orset_add(B(&s), s.len, 1, "a", 1, &lim, &t, &flag), 0);
	assert_int_equal(flag, 0);
	sp_buf_clear(&t);
	assert_int_equal(crdt_orset_remove(B(&s), s.len, "a", 1, &t, &flag), 0);
	assert_int_equal(flag, 1);
	replace(&s, &t);
	assert_int_equal(crdt_orset_add(B(&s), s.len, 1, "c", 1, &lim, &t, &flag), 0);
	assert_int_equal(flag, 1);
	sp_buf_clear(&t);

	/* MV-Register: the value length; siblings are the caller's check. */
	expect_toobig(crdt_mvreg_set(NULL, 0, 1, "abcd", 4, &lim, &out), &out);
	sp_buf_clear(&s);
	assert_int_equal(crdt_mvreg_set(NULL, 0, 1, "abc", 3, &lim, &s), 0);
	assert_int_equal(crdt_mvreg_set(NULL, 0, 2, "x", 1, &lim, &t), 0);
	struct sp_buf m = merge_new(CRDT_MVREG, &s, &t); /* merge ignores limits */
	uint64_t count = 0;
	assert_int_equal(crdt_mvreg_count(B(&m), m.len, &count), 0);
	assert_true(count > lim.max_siblings);

	/* NULL limits and zero fields mean none. */
	const struct crdt_limits none = {0};
	sp_buf_clear(&s);
	sp_buf_clear(&t);
	for (int i = 0; i < 5; i++) {
		char mem[24];
		snprintf(mem, sizeof(mem), "m%dxxxx", i);
		assert_int_equal(crdt_gset_add(B(&s), s.len, mem, strlen(mem), &none, &t, NULL), 0);
		replace(&s, &t);
	}

	sp_buf_free(&s);
	sp_buf_free(&out);
	sp_buf_free(&t);
	sp_buf_free(&m);
}

/* Counter limits of the causal types: a VV counter at UINT64_MAX. */
static void test_dot_overflow(void **st)
{
	(void)st;
	struct sp_buf s, out;
	sp_buf_init(&s);
	sp_buf_init(&out);
	sp_buf_put_le32(&s, 1);
	sp_buf_put_le64(&s, 1);
	sp_buf_put_le64(&s, UINT64_MAX);
	assert_int_equal(crdt_validate(CRDT_ORSET, B(&s), s.len), 0);
	assert_int_equal(crdt_validate(CRDT_MVREG, B(&s), s.len), 0);
	assert_int_equal(crdt_orset_add(B(&s), s.len, 1, "a", 1, NULL, &out, NULL), SP_ERR_RANGE);
	assert_int_equal(crdt_mvreg_set(B(&s), s.len, 1, "a", 1, NULL, &out), SP_ERR_RANGE);
	assert_int_equal(out.len, 0);
	assert_int_equal(crdt_orset_add(B(&s), s.len, 2, "a", 1, NULL, &out, NULL), 0);
	sp_buf_clear(&out);
	assert_int_equal(crdt_mvreg_set(B(&s), s.len, 2, "a", 1, NULL, &out), 0);
	/* Actor 0 is refused. */
	assert_int_equal(crdt_orset_add(NULL, 0, 0, "a", 1, NULL, &out, NULL), SP_ERR_INVAL);
	assert_int_equal(crdt_mvreg_set(NULL, 0, 0, "a", 1, NULL, &out), SP_ERR_INVAL);
	sp_buf_free(&s);
	sp_buf_free(&out);
}

/* ---------------------------------------------------------------------- */
/* Validation                                                              */

static int fvec_count_calls(void *ctx, const uint8_t *field, size_t flen,
			    const struct crdt_fvec_entry *e, size_t idx)
{
	(void)field;
	(void)flen;
	(void)e;
	(void)idx;
	(*(int *)ctx)++;
	return 0;
}

/* validate_exact validates a copy of p[0..n) in a buffer of exactly n
 * bytes, so ASan sees any read past the end; it also runs a merge with
 * itself, the description and (fvec) the readers, which must agree. */
static int validate_exact(uint8_t type, const uint8_t *p, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	if (n)
		memcpy(copy, p, n);
	int rc = crdt_validate(type, copy, n);
	struct sp_buf out;
	sp_buf_init(&out);
	int mrc = crdt_merge(type, copy, n, copy, n, &out);
	assert_int_equal(mrc, rc);
	if (rc == 0) {
		assert_int_equal(out.len, n);
		assert_true(n == 0 || memcmp(B(&out), copy, n) == 0);
	} else {
		assert_int_equal(out.len, 0);
	}
	sp_buf_clear(&out);
	assert_int_equal(crdt_describe(type, copy, n, &out), rc);
	if (type == CRDT_FVEC) {
		uint32_t h = 12345;
		int calls = 0;
		struct crdt_fvec_entry e;
		assert_int_equal(crdt_fvec_history(copy, n, &h), rc);
		assert_int_equal(crdt_fvec_walk(copy, n, fvec_count_calls, &calls), rc);
		int f = crdt_fvec_find(copy, n, "a", 1, UINT64_MAX, &e);
		if (rc < 0) {
			assert_int_equal(h, 12345);
			assert_int_equal(calls, 0);
			assert_int_equal(f, rc);
		} else {
			assert_true(f == 0 || f == SP_ERR_NOTFOUND);
			assert_true(n == 0 ? calls == 0 && h == 0 : calls > 0 && h > 0);
		}
	}
	free(copy);
	sp_buf_free(&out);
	return rc;
}

static void expect_corrupt(uint8_t type, const struct sp_buf *b, const char *what)
{
	int rc = validate_exact(type, B(b), b->len);
	if (rc != SP_ERR_CORRUPT)
		fail_msg("%s: %s: validate gave %d, want SP_ERR_CORRUPT", crdt_type_name(type),
			 what, rc);
}

/* Hand-built non-canonical states, one family per type. */
static void test_validate_examples(void **st)
{
	(void)st;
	struct sp_buf b;
	sp_buf_init(&b);

	assert_int_equal(crdt_validate(0, NULL, 0), SP_ERR_INVAL);
	assert_int_equal(crdt_validate(CRDT_TYPE_MAX + 1, NULL, 0), SP_ERR_INVAL);
	assert_int_equal(crdt_merge(0, NULL, 0, NULL, 0, &b), SP_ERR_INVAL);
	assert_int_equal(crdt_describe(99, NULL, 0, &b), SP_ERR_INVAL);
	assert_null(crdt_type_name(0));
	assert_null(crdt_type_name(CRDT_TYPE_MAX + 1));
	assert_string_equal(crdt_type_name(CRDT_FVEC), "fvec");
	assert_string_equal(crdt_type_name(CRDT_2PSET), "2pset");
	for (size_t t = 0; t < NTYPES; t++) {
		assert_non_null(crdt_type_name(ALL_TYPES[t]));
		assert_int_equal(validate_exact(ALL_TYPES[t], NULL, 0), 0);
	}

	/* G-Counter: permuted, duplicated, zero count, actor 0, too big. */
#define GC(...)                                                                                    \
	do {                                                                                       \
		sp_buf_clear(&b);                                                                  \
		uint64_t v_[] = {__VA_ARGS__};                                                     \
		for (size_t i_ = 0; i_ < sizeof(v_) / sizeof(v_[0]); i_++)                         \
			sp_buf_put_le64(&b, v_[i_]);                                               \
	} while (0)
	GC(1, 5, 2, 3);
	assert_int_equal(validate_exact(CRDT_GCOUNTER, B(&b), b.len), 0);
	GC(2, 3, 1, 5);
	expect_corrupt(CRDT_GCOUNTER, &b, "permuted");
	GC(1, 5, 1, 5);
	expect_corrupt(CRDT_GCOUNTER, &b, "duplicated");
	GC(1, 5, 2, 0);
	expect_corrupt(CRDT_GCOUNTER, &b, "zero count");
	GC(0, 5);
	expect_corrupt(CRDT_GCOUNTER, &b, "actor 0");
	GC(1, (uint64_t)INT64_MAX + 1);
	expect_corrupt(CRDT_GCOUNTER, &b, "count past INT64_MAX");
	GC(1, 5);
	sp_buf_put_u8(&b, 0);
	expect_corrupt(CRDT_GCOUNTER, &b, "trailing byte");

	/* PN-Counter. */
	GC(1, 5, 0, 2, 0, 1);
	assert_int_equal(validate_exact(CRDT_PNCOUNTER, B(&b), b.len), 0);
	GC(2, 0, 1, 1, 5, 0);
	expect_corrupt(CRDT_PNCOUNTER, &b, "permuted");
	GC(1, 0, 0);
	expect_corrupt(CRDT_PNCOUNTER, &b, "zero entry");
	GC(1, 0, (uint64_t)INT64_MAX + 1);
	expect_corrupt(CRDT_PNCOUNTER, &b, "n past INT64_MAX");
	GC(1, 5, 0, 1, 5, 0);
	expect_corrupt(CRDT_PNCOUNTER, &b, "duplicated");
#undef GC

	/* G-Set. */
	sp_buf_clear(&b);
	sp_buf_put_le32(&b, 1);
	sp_buf_append(&b, "b", 1);
	sp_buf_put_le32(&b, 1);
	sp_buf_append(&b, "a", 1);
	expect_corrupt(CRDT_GSET, &b, "permuted");
	sp_buf_clear(&b);
	sp_buf_put_le32(&b, 1);
	sp_buf_append(&b, "a", 1);
	sp_buf_put_le32(&b, 1);
	sp_buf_append(&b, "a", 1);
	expect_corrupt(CRDT_GSET, &b, "duplicated");
	sp_buf_clear(&b);
	sp_buf_put_le32(&b, 2);
	sp_buf_append(&b, "a", 1);
	expect_corrupt(CRDT_GSET, &b, "length past the end");
	sp_buf_clear(&b);
	sp_buf_put_le32(&b, UINT32_MAX);
	expect_corrupt(CRDT_GSET, &b, "huge length");

	/* 2P-Set. */
	for (int status = 0; status < 4; status++) {
		sp_buf_clear(&b);
		sp_buf_put_u8(&b, (uint8_t)status);
		sp_buf_put_le32(&b, 1);
		sp_buf_append(&b, "a", 1);
		int rc = validate_exact(CRDT_2PSET, B(&b), b.len);
		assert_int_equal(rc, status == 1 || status == 2 ? 0 : SP_ERR_CORRUPT);
	}
	sp_buf_clear(&b);
	sp_buf_put_u8(&b, 1);
	sp_buf_put_le32(&b, 1);
	sp_buf_append(&b, "a", 1);
	sp_buf_put_u8(&b, 2);
	sp_buf_put_le32(&b, 1);
	sp_buf_append(&b, "a", 1);
	expect_corrupt(CRDT_2PSET, &b, "member twice with two statuses");

	/* OR-Set: VV then groups. */
	sp_buf_clear(&b);
	sp_buf_put_le32(&b, 0);
	expect_corrupt(CRDT_ORSET, &b, "empty VV spelled out");
	expect_corrupt(CRDT_MVREG, &b, "empty VV spelled out");
	sp_buf_clear(&b);
	sp_buf_put_le32(&b, 2);
	sp_buf_put_le64(&b, 2);
	sp_buf_put_le64(&b, 1);
	sp_buf_put_le64(&b, 1);
	sp_buf_put_le64(&b, 1);
	expect_corrupt(CRDT_ORSET, &b, "VV permuted");
	sp_buf_clear(&b);
	sp_buf_put_le32(&b, 1);
	sp_buf_put_le64(&b, 1);
	sp_buf_put_le64(&b, 0);
	expect_corrupt(CRDT_ORSET, &b, "VV zero counter");
	sp_buf_clear(&b);
	sp_buf_put_le32(&b, 3);
	sp_buf_put_le64(&b, 1);
	sp_buf_put_le64(&b, 1);
	expect_corrupt(CRDT_ORSET, &b, "VV count past the end");

	/* A base OR-Set state: VV {1:2, 2:1}, then groups appended below. */
#define ORSET_BASE()                                                                               \
	do {                                                                                       \
		sp_buf_clear(&b);                                                                  \
		sp_buf_put_le32(&b, 2);                                                            \
		sp_buf_put_le64(&b, 1);                                                            \
		sp_buf_put_le64(&b, 2);                                                            \
		sp_buf_put_le64(&b, 2);                                                            \
		sp_buf_put_le64(&b, 1);                                                            \
	} while (0)
#define GROUP(m, ...)                                                                              \
	do {                                                                                       \
		uint64_t d_[] = {__VA_ARGS__};                                                     \
		sp_buf_put_le32(&b, (uint32_t)strlen(m));                                          \
		sp_buf_append(&b, m, strlen(m));                                                   \
		sp_buf_put_le32(&b, (uint32_t)(sizeof(d_) / sizeof(d_[0]) / 2));                   \
		for (size_t i_ = 0; i_ < sizeof(d_) / sizeof(d_[0]); i_++)                         \
			sp_buf_put_le64(&b, d_[i_]);                                               \
	} while (0)
	ORSET_BASE();
	GROUP("a", 1, 2, 2, 1);
	GROUP("b", 1, 1);
	assert_int_equal(validate_exact(CRDT_ORSET, B(&b), b.len), 0);
	ORSET_BASE();
	assert_int_equal(validate_exact(CRDT_ORSET, B(&b), b.len), 0); /* all removed */
	ORSET_BASE();
	GROUP("b", 1, 1);
	GROUP("a", 1, 2);
	expect_corrupt(CRDT_ORSET, &b, "members permuted");
	ORSET_BASE();
	GROUP("a", 1, 2);
	GROUP("a", 2, 1);
	expect_corrupt(CRDT_ORSET, &b, "member duplicated");
	ORSET_BASE();
	GROUP("a", 2, 1, 1, 2);
	expect_corrupt(CRDT_ORSET, &b, "dots permuted");
	ORSET_BASE();
	GROUP("a", 1, 1, 1, 2);
	expect_corrupt(CRDT_ORSET, &b, "two dots of one actor");
	ORSET_BASE();
	GROUP("a", 1, 3);
	expect_corrupt(CRDT_ORSET, &b, "dot not covered");
	ORSET_BASE();
	GROUP("a", 3, 1);
	expect_corrupt(CRDT_ORSET, &b, "dot of an actor not in VV");
	ORSET_BASE();
	GROUP("a", 1, 0);
	expect_corrupt(CRDT_ORSET, &b, "dot counter 0");
	ORSET_BASE();
	sp_buf_put_le32(&b, 1);
	sp_buf_append(&b, "a", 1);
	sp_buf_put_le32(&b, 0);
	expect_corrupt(CRDT_ORSET, &b, "member without dots");
	ORSET_BASE();
	sp_buf_put_le32(&b, 1);
	sp_buf_append(&b, "a", 1);
	sp_buf_put_le32(&b, UINT32_MAX);
	sp_buf_put_le64(&b, 1);
	sp_buf_put_le64(&b, 1);
	expect_corrupt(CRDT_ORSET, &b, "dot count past the end");
#undef GROUP

	/* LWW. */
	uint8_t hdr[CRDT_LWW_HDR_LEN + 2] = {0};
	for (size_t n = 1; n < CRDT_LWW_HDR_LEN; n++)
		assert_int_equal(validate_exact(CRDT_LWW, hdr, n), SP_ERR_CORRUPT);
	assert_int_equal(validate_exact(CRDT_LWW, hdr, CRDT_LWW_HDR_LEN),
			 SP_ERR_CORRUPT); /*node 0*/
	hdr[8] = 1;
	assert_int_equal(validate_exact(CRDT_LWW, hdr, CRDT_LWW_HDR_LEN), 0);
	assert_int_equal(validate_exact(CRDT_LWW, hdr, CRDT_LWW_HDR_LEN + 2), 0);
	hdr[16] = 1;
	assert_int_equal(validate_exact(CRDT_LWW, hdr, CRDT_LWW_HDR_LEN), 0);
	assert_int_equal(validate_exact(CRDT_LWW, hdr, CRDT_LWW_HDR_LEN + 1), SP_ERR_CORRUPT);
	hdr[16] = 2;
	assert_int_equal(validate_exact(CRDT_LWW, hdr, CRDT_LWW_HDR_LEN), SP_ERR_CORRUPT);

	/* MV-Register. */
#define SIB(a, c, v)                                                                               \
	do {                                                                                       \
		sp_buf_put_le64(&b, a);                                                            \
		sp_buf_put_le64(&b, c);                                                            \
		sp_buf_put_le32(&b, (uint32_t)strlen(v));                                          \
		sp_buf_append(&b, v, strlen(v));                                                   \
	} while (0)
	ORSET_BASE();
	SIB(1, 2, "x");
	SIB(2, 1, "y");
	assert_int_equal(validate_exact(CRDT_MVREG, B(&b), b.len), 0);
	ORSET_BASE();
	assert_int_equal(validate_exact(CRDT_MVREG, B(&b), b.len), 0); /* no siblings */
	ORSET_BASE();
	SIB(2, 1, "y");
	SIB(1, 2, "x");
	expect_corrupt(CRDT_MVREG, &b, "siblings permuted");
	ORSET_BASE();
	SIB(1, 1, "x");
	SIB(1, 2, "y");
	expect_corrupt(CRDT_MVREG, &b, "two siblings of one actor");
	ORSET_BASE();
	SIB(1, 2, "x");
	SIB(1, 2, "x");
	expect_corrupt(CRDT_MVREG, &b, "sibling duplicated");
	ORSET_BASE();
	SIB(2, 2, "y");
	expect_corrupt(CRDT_MVREG, &b, "sibling not covered");
	ORSET_BASE();
	SIB(1, 2, "x");
	sp_buf_put_u8(&b, 0);
	expect_corrupt(CRDT_MVREG, &b, "trailing byte");
#undef SIB
#undef ORSET_BASE

	/* Errors leave out as it was; success appends after what is there. */
	buf_set(&b, "pre", 3);
	static const uint8_t bad[] = {1, 2, 3};
	assert_int_equal(crdt_merge(CRDT_GSET, NULL, 0, bad, 3, &b), SP_ERR_CORRUPT);
	assert_int_equal(crdt_merge(CRDT_GSET, bad, 3, NULL, 0, &b), SP_ERR_CORRUPT);
	assert_int_equal(crdt_gcounter_add(bad, 3, 1, 1, &b), SP_ERR_CORRUPT);
	assert_int_equal(crdt_pncounter_add(bad, 3, 1, 1, &b), SP_ERR_CORRUPT);
	assert_int_equal(crdt_gset_add(bad, 3, "a", 1, NULL, &b, NULL), SP_ERR_CORRUPT);
	assert_int_equal(crdt_tpset_add(bad, 3, "a", 1, NULL, &b, NULL), SP_ERR_CORRUPT);
	assert_int_equal(crdt_tpset_remove(bad, 3, "a", 1, NULL, &b, NULL), SP_ERR_CORRUPT);
	assert_int_equal(crdt_orset_add(bad, 3, 1, "a", 1, NULL, &b, NULL), SP_ERR_CORRUPT);
	assert_int_equal(crdt_orset_remove(bad, 3, "a", 1, &b, NULL), SP_ERR_CORRUPT);
	assert_int_equal(crdt_lww_set(bad, 3, 1, 1, "a", 1, false, &b, NULL), SP_ERR_CORRUPT);
	assert_int_equal(crdt_mvreg_set(bad, 3, 1, "a", 1, NULL, &b), SP_ERR_CORRUPT);
	assert_int_equal(crdt_describe(CRDT_ORSET, bad, 3, &b), SP_ERR_CORRUPT);
	assert_int_equal(b.len, 3);
	assert_memory_equal(B(&b), "pre", 3);
	int64_t v;
	uint64_t u;
	struct crdt_lww r;
	assert_int_equal(crdt_gcounter_value(bad, 3, &v), SP_ERR_CORRUPT);
	assert_int_equal(crdt_pncounter_value(bad, 3, &v), SP_ERR_CORRUPT);
	assert_int_equal(crdt_set_members(CRDT_ORSET, bad, 3, collect, NULL), SP_ERR_CORRUPT);
	assert_int_equal(crdt_set_contains(CRDT_2PSET, bad, 3, "a", 1), SP_ERR_CORRUPT);
	assert_int_equal(crdt_set_count(CRDT_GSET, bad, 3, &u), SP_ERR_CORRUPT);
	assert_int_equal(crdt_lww_get(bad, 3, &r), SP_ERR_CORRUPT);
	assert_int_equal(crdt_mvreg_values(bad, 3, collect, NULL), SP_ERR_CORRUPT);
	assert_int_equal(crdt_mvreg_count(bad, 3, &u), SP_ERR_CORRUPT);

	struct sp_buf one;
	sp_buf_init(&one);
	assert_int_equal(crdt_gset_add(NULL, 0, "a", 1, NULL, &one, NULL), 0);
	assert_int_equal(crdt_merge(CRDT_GSET, B(&one), one.len, NULL, 0, &b), 0);
	assert_int_equal(b.len, 3 + one.len);
	assert_memory_equal(B(&b), "pre", 3);
	assert_memory_equal(B(&b) + 3, B(&one), one.len);
	sp_buf_free(&one);
	sp_buf_free(&b);
}

/* Random valid states, cut at every length and changed at every byte:
 * validation never reads past the end, a cut inside the first entry is
 * never valid, and any changed state that is still valid merges with the
 * original as a join. */
static void test_validate_mutations(void **st)
{
	(void)st;
	seed_test("validate_mutations");
	struct sp_buf tmp;
	sp_buf_init(&tmp);
	for (size_t t = 0; t < NTYPES; t++) {
		uint8_t type = ALL_TYPES[t];
		struct pool p;
		pool_fill(type, &p);
		for (int k = 0; k < 10; k++) {
			const struct sp_buf *s = &p.s[rnd_below((uint64_t)p.n)];
			const uint8_t *b = B(s);
			for (size_t cut = 0; cut < s->len; cut++) {
				int rc = validate_exact(type, b, cut);
				assert_true(rc == 0 || rc == SP_ERR_CORRUPT);
				/* Every layout's first entry has at least 4
				 * bytes, so 1..3-byte prefixes are never states. */
				if (cut > 0 && cut < 4)
					assert_int_equal(rc, SP_ERR_CORRUPT);
			}
			for (size_t i = 0; i < s->len; i++) {
				buf_copy(&tmp, s);
				uint8_t *m = (uint8_t *)sp_buf_begin(&tmp);
				m[i] ^= (uint8_t)(1u << rnd_below(8));
				if (validate_exact(type, m, tmp.len) == 0) {
					check_lattice(type, s, &tmp, s);
					check_lattice(type, &tmp, s, &tmp);
				}
			}
			/* A list state written twice repeats its first
			 * entry out of order. (In LWW the copy is a value;
			 * in the causal types and fvec the bytes of the
			 * second header are read as entries, valid or not
			 * by chance.) */
			if (s->len > 0 && type != CRDT_LWW && type != CRDT_ORSET &&
			    type != CRDT_MVREG && type != CRDT_FVEC) {
				buf_copy(&tmp, s);
				sp_buf_append(&tmp, b, s->len);
				expect_corrupt(type, &tmp, "state twice");
			}
		}
		pool_free(&p);
	}
	sp_buf_free(&tmp);
}

/* ---------------------------------------------------------------------- */
/* Feature record                                                          */

/* fvec_delta_new returns the delta of one put, asserting success. */
static struct sp_buf fvec_delta_new(uint32_t history, uint64_t event_ms, uint64_t ts, uint64_t node,
				    const char *field, const char *v)
{
	struct crdt_fvec_put put = {field, strlen(field), v, strlen(v)};
	struct sp_buf d;
	sp_buf_init(&d);
	assert_int_equal(crdt_fvec_delta(history, event_ms, ts, node, &put, 1, NULL, &d), 0);
	assert_int_equal(crdt_validate(CRDT_FVEC, B(&d), d.len), 0);
	return d;
}

/* fvec_apply merges the delta of one put into *s. */
static void fvec_apply(struct sp_buf *s, uint32_t history, uint64_t event_ms, uint64_t ts,
		       uint64_t node, const char *field, const char *v)
{
	struct sp_buf d = fvec_delta_new(history, event_ms, ts, node, field, v);
	merge_into(CRDT_FVEC, s, &d);
	sp_buf_free(&d);
}

/* assert_fvec_find checks an "as of" read: v NULL means SP_ERR_NOTFOUND. */
static void assert_fvec_find(const struct sp_buf *s, const char *field, uint64_t asof,
			     uint64_t event_ms, const char *v)
{
	struct crdt_fvec_entry e;
	int rc = crdt_fvec_find(B(s), s->len, field, strlen(field), asof, &e);
	if (!v) {
		assert_int_equal(rc, SP_ERR_NOTFOUND);
		return;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(e.event_ms, event_ms);
	assert_int_equal(e.vlen, strlen(v));
	assert_memory_equal(e.v, v, e.vlen);
}

static void assert_describe(uint8_t type, const struct sp_buf *s, const char *want)
{
	struct sp_buf d;
	sp_buf_init(&d);
	assert_int_equal(crdt_describe(type, B(s), s->len, &d), 0);
	sp_buf_append(&d, "", 1);
	assert_string_equal(sp_buf_begin(&d), want);
	sp_buf_free(&d);
}

static void expect_fvec_error(int rc, int want, const struct sp_buf *out)
{
	assert_int_equal(rc, want);
	assert_int_equal(out->len, 3);
	assert_memory_equal(B(out), "pre", 3);
}

/* Golden bytes of deltas, their errors and limits, and descriptions. */
static void test_fvec_delta(void **st)
{
	(void)st;
	struct sp_buf out;
	sp_buf_init(&out);

	static const uint8_t one[] = {
	    8,	  0,	0,    0,				    /* history */
	    6,	  0,	0,    0,    'c',  'l',	'i', 'c', 'k', 's', /* field */
	    1,	  0,	0,    0,				    /* n */
	    0xf4, 0x69, 0xe5, 0xcf, 0x8b, 0x01, 0,   0,		    /* event_ms 1700000000500 */
	    42,	  0,	0,    0,    0,	  0,	0,   0,		    /* ts */
	    7,	  0,	0,    0,    0,	  0,	0,   0,		    /* node */
	    2,	  0,	0,    0,    '1',  '2',			    /* value */
	};
	struct crdt_fvec_put clicks = {S("clicks"), S("12")};
	buf_set(&out, "pre", 3);
	assert_int_equal(crdt_fvec_delta(8, 1700000000500ull, 42, 7, &clicks, 1, NULL, &out), 0);
	assert_int_equal(out.len, 3 + sizeof(one));
	assert_memory_equal(B(&out), "pre", 3);
	assert_memory_equal(B(&out) + 3, one, sizeof(one));

	/* Puts out of order, a field named twice (the last wins), an
	 * empty value given as NULL. */
	static const uint8_t two[] = {
	    2, 0, 0, 0,			 /* history */
	    1, 0, 0, 0, 'a', 1, 0, 0, 0, /* "a", n */
	    5, 0, 0, 0, 0,   0, 0, 0,	 /* event_ms */
	    1, 0, 0, 0, 0,   0, 0, 0,	 /* ts */
	    8, 7, 6, 5, 4,   3, 2, 1,	 /* node */
	    0, 0, 0, 0,			 /* "" */
	    1, 0, 0, 0, 'b', 1, 0, 0, 0, /* "b", n */
	    5, 0, 0, 0, 0,   0, 0, 0, 1, 0, 0, 0, 0,   0,   0,	 0,
	    8, 7, 6, 5, 4,   3, 2, 1, 3, 0, 0, 0, 'x', 'y', 'z', /* "xyz" */
	};
	struct crdt_fvec_put puts[] = {{S("b"), S("1")}, {S("a"), NULL, 0}, {S("b"), S("xyz")}};
	sp_buf_clear(&out);
	assert_int_equal(crdt_fvec_delta(2, 5, 1, 0x0102030405060708ull, puts, 3, NULL, &out), 0);
	assert_int_equal(out.len, sizeof(two));
	assert_memory_equal(B(&out), two, sizeof(two));

	/* Errors leave out as it was. */
	struct crdt_fvec_put empty_field[] = {{S("a"), S("1")}, {"", 0, S("2")}};
	buf_set(&out, "pre", 3);
	expect_fvec_error(crdt_fvec_delta(0, 1, 1, 1, &clicks, 1, NULL, &out), SP_ERR_INVAL, &out);
	expect_fvec_error(crdt_fvec_delta(8, 1, 1, 0, &clicks, 1, NULL, &out), SP_ERR_INVAL, &out);
	expect_fvec_error(crdt_fvec_delta(8, 1, 1, 1, &clicks, 0, NULL, &out), SP_ERR_INVAL, &out);
	expect_fvec_error(crdt_fvec_delta(8, 1, 1, 1, empty_field, 2, NULL, &out), SP_ERR_INVAL,
			  &out);
	const struct crdt_limits lim = {.max_members = 2, .max_member_len = 3};
	struct crdt_fvec_put long_field = {S("abcd"), S("1")};
	struct crdt_fvec_put long_value = {S("abc"), S("1234")};
	struct crdt_fvec_put three[] = {{S("a"), S("1")}, {S("b"), S("1")}, {S("c"), S("1")}};
	struct crdt_fvec_put repeated[] = {{S("a"), S("1")}, {S("b"), S("1")}, {S("a"), S("2")}};
	expect_fvec_error(crdt_fvec_delta(8, 1, 1, 1, &long_field, 1, &lim, &out), SP_ERR_TOOBIG,
			  &out);
	expect_fvec_error(crdt_fvec_delta(8, 1, 1, 1, &long_value, 1, &lim, &out), SP_ERR_TOOBIG,
			  &out);
	expect_fvec_error(crdt_fvec_delta(8, 1, 1, 1, three, 3, &lim, &out), SP_ERR_TOOBIG, &out);
	if (SIZE_MAX > UINT32_MAX) {
		/* Refused on its length alone: the bytes are never read. */
		struct crdt_fvec_put huge = {S("a"), "x", (size_t)UINT32_MAX + 1};
		expect_fvec_error(crdt_fvec_delta(8, 1, 1, 1, &huge, 1, NULL, &out), SP_ERR_TOOBIG,
				  &out);
	}
	/* Distinct fields count, not puts; no limits when lim is NULL. */
	assert_int_equal(crdt_fvec_delta(8, 1, 1, 1, repeated, 3, &lim, &out), 0);
	sp_buf_clear(&out);
	assert_int_equal(crdt_fvec_delta(8, 1, 1, 1, three, 3, NULL, &out), 0);
	sp_buf_clear(&out);
	const struct crdt_limits none = {0};
	assert_int_equal(crdt_fvec_delta(8, 1, 1, 1, &long_value, 1, &none, &out), 0);

	/* Descriptions: newest first, escaped, cut short. */
	sp_buf_clear(&out);
	assert_describe(CRDT_FVEC, &out, "fvec h=0 {}");
	fvec_apply(&out, 8, 1700000000000ull, 1, 1, "clicks", "9");
	fvec_apply(&out, 8, 1700000000500ull, 2, 1, "clicks", "12");
	fvec_apply(&out, 8, 3, 1, 1, "v\x01", "");
	assert_describe(CRDT_FVEC, &out,
			"fvec h=8 {\"clicks\":[1700000000500=\"12\",1700000000000=\"9\"],"
			"\"v\\x01\":[3=\"\"]}");
	sp_buf_clear(&out);
	char want[512] = "fvec h=20 {\"f\":[";
	for (int ms = 17; ms >= 1; ms--)
		fvec_apply(&out, 20, (uint64_t)ms, 1, 1, "f", "");
	for (int ms = 17; ms > 1; ms--)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%d=\"\"",
			 ms == 17 ? "" : ",", ms);
	snprintf(want + strlen(want), sizeof(want) - strlen(want), ",...+1]}");
	assert_describe(CRDT_FVEC, &out, want);
	sp_buf_free(&out);
}

/* One delta of the order test: its puts (fields and values by ALPHA
 * index) and its bytes. */
struct fvec_delta {
	uint64_t event_ms, ts, node;
	int nput, field[3], value[3];
	struct sp_buf bytes;
};

/* fvec_merge_list merges the deltas list[0..n) from bottom, in order. */
static struct sp_buf fvec_merge_list(const struct fvec_delta *d, const int *list, int n)
{
	struct sp_buf s;
	sp_buf_init(&s);
	for (int i = 0; i < n; i++)
		merge_into(CRDT_FVEC, &s, &d[list[i]].bytes);
	return s;
}

/* Any permutation of a list of deltas, with duplicates, and any
 * bracketing of their merges gives the same bytes; the latest value of
 * each field is the put with the largest event time, ties by (ts, node)
 * (then value), and replaying any delta changes nothing. */
static void test_fvec_order(void **st)
{
	(void)st;
	seed_test("fvec_order");
	for (int round = 0; round < 60; round++) {
		uint32_t history = 1 + (uint32_t)rnd_below(4);
		uint64_t ids[4];
		rnd_actors(ids, 4);
		struct fvec_delta d[16];
		int nd = 2 + (int)rnd_below(15);
		for (int i = 0; i < nd; i++) {
			d[i].event_ms = 1000 + rnd_below(6);
			d[i].ts = 1 + rnd_below(3);
			d[i].node = ids[rnd_below(4)];
			d[i].nput = 1 + (int)rnd_below(3);
			struct crdt_fvec_put puts[3];
			for (int k = 0; k < d[i].nput; k++) {
				d[i].field[k] = 1 + (int)rnd_below(NALPHA - 1);
				d[i].value[k] = (int)rnd_below(NALPHA);
				puts[k] = (struct crdt_fvec_put){
				    ALPHA[d[i].field[k]].p, ALPHA[d[i].field[k]].n,
				    ALPHA[d[i].value[k]].p, ALPHA[d[i].value[k]].n};
			}
			sp_buf_init(&d[i].bytes);
			assert_int_equal(crdt_fvec_delta(history, d[i].event_ms, d[i].ts, d[i].node,
							 puts, (size_t)d[i].nput, NULL,
							 &d[i].bytes),
					 0);
		}
		/* Every delta once, then duplicates. */
		int list[48], n = 0;
		for (int i = 0; i < nd; i++)
			list[n++] = i;
		for (int k = (int)rnd_below((uint64_t)nd + 1); k > 0; k--)
			list[n++] = (int)rnd_below((uint64_t)nd);
		struct sp_buf ref = fvec_merge_list(d, list, n);

		for (int perm = 0; perm < 20; perm++) {
			for (int i = n - 1; i > 0; i--) {
				int j = (int)rnd_below((uint64_t)i + 1), t = list[i];
				list[i] = list[j];
				list[j] = t;
			}
			struct sp_buf s = fvec_merge_list(d, list, n);
			assert_state_eq(CRDT_FVEC, "permutation", &s, &ref);
			sp_buf_free(&s);
			/* Another bracketing: merge two random states of a
			 * bag until one is left. */
			struct sp_buf bag[48];
			for (int i = 0; i < n; i++) {
				sp_buf_init(&bag[i]);
				buf_copy(&bag[i], &d[list[i]].bytes);
			}
			for (int left = n; left > 1; left--) {
				int i = (int)rnd_below((uint64_t)left);
				int j = (int)rnd_below((uint64_t)left - 1);
				j += j >= i;
				merge_into(CRDT_FVEC, &bag[i], &bag[j]);
				sp_buf_free(&bag[j]);
				bag[j] = bag[left - 1];
			}
			assert_state_eq(CRDT_FVEC, "bracketing", &bag[0], &ref);
			sp_buf_free(&bag[0]);
		}

		/* The model: truncation to history and as of reads. */
		struct fvec_model *m = calloc(1, sizeof(*m));
		assert_non_null(m);
		for (int i = 0; i < nd; i++)
			for (int k = 0; k < d[i].nput; k++) {
				bool later = false; /* a later put of the same field */
				for (int q = k + 1; q < d[i].nput; q++)
					later |= d[i].field[q] == d[i].field[k];
				if (!later)
					fvec_model_put(m, d[i].field[k], d[i].event_ms, d[i].ts,
						       d[i].node, d[i].value[k]);
			}
		fvec_check_model(m, history, &ref);
		free(m);

		/* The latest value, straight from the deltas: the largest
		 * (event_ms, ts, node, value) among each field's puts. */
		for (int f = 1; f < NALPHA; f++) {
			const struct fvec_delta *best = NULL;
			int best_v = 0;
			for (int i = 0; i < nd; i++)
				for (int k = 0; k < d[i].nput; k++) {
					/* A delta carries a field's last put. */
					bool later = false;
					for (int q = k + 1; q < d[i].nput; q++)
						later |= d[i].field[q] == f;
					if (d[i].field[k] != f || later)
						continue;
					int v = d[i].value[k];
					int c = 1;
					if (best && d[i].event_ms != best->event_ms)
						c = d[i].event_ms > best->event_ms ? 1 : -1;
					else if (best && d[i].ts != best->ts)
						c = d[i].ts > best->ts ? 1 : -1;
					else if (best && d[i].node != best->node)
						c = d[i].node > best->node ? 1 : -1;
					else if (best)
						c = cmp_member((const uint8_t *)ALPHA[v].p,
							       ALPHA[v].n,
							       (const uint8_t *)ALPHA[best_v].p,
							       ALPHA[best_v].n);
					if (c > 0) {
						best = &d[i];
						best_v = v;
					}
				}
			struct crdt_fvec_entry e;
			int rc = crdt_fvec_find(B(&ref), ref.len, ALPHA[f].p, ALPHA[f].n,
						UINT64_MAX, &e);
			if (!best) {
				assert_int_equal(rc, SP_ERR_NOTFOUND);
				continue;
			}
			assert_int_equal(rc, 0);
			assert_int_equal(e.event_ms, best->event_ms);
			assert_int_equal(e.ts, best->ts);
			assert_int_equal(e.node, best->node);
			assert_int_equal(cmp_member(e.v, e.vlen, (const uint8_t *)ALPHA[best_v].p,
						    ALPHA[best_v].n),
					 0);
		}

		/* A late or replayed delta changes nothing. */
		for (int i = 0; i < nd; i++) {
			struct sp_buf again = merge_new(CRDT_FVEC, &ref, &d[i].bytes);
			assert_state_eq(CRDT_FVEC, "replay", &again, &ref);
			sp_buf_free(&again);
		}
		sp_buf_free(&ref);
		for (int i = 0; i < nd; i++)
			sp_buf_free(&d[i].bytes);
	}
}

/* Examples: event time beats arrival order and HLC time; ties; the
 * newest `history` kept; as of reads; the walk; unequal histories. */
static void test_fvec_history(void **st)
{
	(void)st;
	struct sp_buf s, t;
	sp_buf_init(&s);
	sp_buf_init(&t);

	/* A newer event, then a late older one with a larger ts: the newer
	 * event stays the latest, the older is kept for as of reads. */
	fvec_apply(&s, 4, 200, 5, 1, "f", "new");
	fvec_apply(&s, 4, 100, 9, 2, "f", "old");
	assert_fvec_find(&s, "f", UINT64_MAX, 200, "new");
	assert_fvec_find(&s, "f", 199, 100, "old");
	/* One event time written twice: larger ts, then node, then value. */
	fvec_apply(&s, 4, 200, 4, 9, "f", "lower ts");
	assert_fvec_find(&s, "f", UINT64_MAX, 200, "new");
	fvec_apply(&s, 4, 200, 5, 3, "f", "higher node");
	assert_fvec_find(&s, "f", UINT64_MAX, 200, "higher node");
	fvec_apply(&s, 4, 200, 5, 3, "f", "higher nodf");
	assert_fvec_find(&s, "f", UINT64_MAX, 200, "higher nodf");
	fvec_apply(&s, 4, 200, 5, 3, "f", "higher noda");
	assert_fvec_find(&s, "f", UINT64_MAX, 200, "higher nodf");

	/* history 3: six events in a shuffled order keep the newest three. */
	sp_buf_clear(&s);
	static const uint64_t order[] = {30, 60, 10, 50, 20, 40};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		char v[8];
		snprintf(v, sizeof(v), "v%u", (unsigned)order[i]);
		fvec_apply(&s, 3, order[i], 1, 1, "f", v);
	}
	fvec_apply(&s, 3, 5, 1, 1, "g", "g5");
	assert_describe(CRDT_FVEC, &s,
			"fvec h=3 {\"f\":[60=\"v60\",50=\"v50\",40=\"v40\"],"
			"\"g\":[5=\"g5\"]}");
	assert_fvec_find(&s, "f", UINT64_MAX, 60, "v60");
	assert_fvec_find(&s, "f", 60, 60, "v60");
	assert_fvec_find(&s, "f", 59, 50, "v50");
	assert_fvec_find(&s, "f", 45, 40, "v40");
	assert_fvec_find(&s, "f", 40, 40, "v40");
	assert_fvec_find(&s, "f", 39, 0, NULL); /* 30 was truncated away */
	assert_fvec_find(&s, "f", 0, 0, NULL);
	assert_fvec_find(&s, "g", 5, 5, "g5");
	assert_fvec_find(&s, "g", 4, 0, NULL);
	assert_fvec_find(&s, "h", UINT64_MAX, 0, NULL);
	assert_fvec_find(&s, "", UINT64_MAX, 0, NULL);
	uint32_t h = 0;
	assert_int_equal(crdt_fvec_history(B(&s), s.len, &h), 0);
	assert_int_equal(h, 3);

	struct fvec_seen *seen = calloc(1, sizeof(*seen));
	assert_non_null(seen);
	assert_int_equal(crdt_fvec_walk(B(&s), s.len, fvec_collect, seen), 0);
	assert_int_equal(seen->n, 4);
	static const struct {
		const char *f;
		uint64_t ms;
		size_t idx;
	} walk[] = {{"f", 60, 0}, {"f", 50, 1}, {"f", 40, 2}, {"g", 5, 0}};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(seen->x[i].flen, 1);
		assert_memory_equal(seen->x[i].f, walk[i].f, 1);
		assert_int_equal(seen->x[i].e.event_ms, walk[i].ms);
		assert_int_equal(seen->x[i].idx, walk[i].idx);
	}
	int calls = 0;
	assert_int_equal(crdt_fvec_walk(B(&s), s.len, fvec_count_calls, &calls), 0);
	assert_int_equal(calls, 4);

	/* A late event older than every kept one changes nothing; a newer
	 * one pushes the oldest out. */
	buf_copy(&t, &s);
	fvec_apply(&t, 3, 35, 99, 99, "f", "late");
	assert_state_eq(CRDT_FVEC, "late and truncated", &t, &s);
	fvec_apply(&t, 3, 55, 1, 1, "f", "v55");
	assert_fvec_find(&t, "f", 54, 50, "v50");
	assert_fvec_find(&t, "f", 49, 0, NULL);

	/* Unequal histories: the larger wins, and the merge commutes. */
	struct sp_buf a, b;
	sp_buf_init(&a);
	sp_buf_init(&b);
	fvec_apply(&a, 2, 1, 1, 1, "f", "a1");
	fvec_apply(&a, 2, 3, 1, 1, "f", "a3");
	fvec_apply(&b, 4, 2, 1, 1, "f", "b2");
	fvec_apply(&b, 4, 4, 1, 1, "f", "b4");
	fvec_apply(&b, 4, 5, 1, 1, "f", "b5");
	struct sp_buf ab = merge_new(CRDT_FVEC, &a, &b), ba = merge_new(CRDT_FVEC, &b, &a);
	assert_state_eq(CRDT_FVEC, "unequal histories commute", &ab, &ba);
	assert_describe(CRDT_FVEC, &ab, "fvec h=4 {\"f\":[5=\"b5\",4=\"b4\",3=\"a3\",2=\"b2\"]}");

	/* Bottom. */
	sp_buf_clear(&s);
	h = 7;
	assert_int_equal(crdt_fvec_history(NULL, 0, &h), 0);
	assert_int_equal(h, 0);
	assert_fvec_find(&s, "f", UINT64_MAX, 0, NULL);
	calls = 0;
	assert_int_equal(crdt_fvec_walk(NULL, 0, fvec_count_calls, &calls), 0);
	assert_int_equal(calls, 0);

	free(seen);
	struct sp_buf *all[] = {&s, &t, &a, &b, &ab, &ba};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		sp_buf_free(all[i]);
}

static int fvec_stop(void *ctx, const uint8_t *field, size_t flen, const struct crdt_fvec_entry *e,
		     size_t idx)
{
	fvec_count_calls(ctx, field, flen, e, idx);
	return 1;
}

/* Hand-built non-canonical feature records, every cut of two valid ones,
 * and every entry point's answer to them. */
static void test_fvec_corrupt(void **st)
{
	(void)st;
	struct sp_buf b;
	sp_buf_init(&b);
#define FV_BEGIN(h)                                                                                \
	do {                                                                                       \
		sp_buf_clear(&b);                                                                  \
		sp_buf_put_le32(&b, h);                                                            \
	} while (0)
#define FV_FIELD(f, n)                                                                             \
	do {                                                                                       \
		sp_buf_put_le32(&b, (uint32_t)strlen(f));                                          \
		sp_buf_append(&b, f, strlen(f));                                                   \
		sp_buf_put_le32(&b, n);                                                            \
	} while (0)
#define FV_ENT(ms, ts, node, v)                                                                    \
	do {                                                                                       \
		sp_buf_put_le64(&b, ms);                                                           \
		sp_buf_put_le64(&b, ts);                                                           \
		sp_buf_put_le64(&b, node);                                                         \
		sp_buf_put_le32(&b, (uint32_t)strlen(v));                                          \
		sp_buf_append(&b, v, strlen(v));                                                   \
	} while (0)
	FV_BEGIN(3);
	FV_FIELD("a", 2);
	FV_ENT(20, 1, 1, "x");
	FV_ENT(10, 0, 2, "");
	FV_FIELD("b", 1);
	FV_ENT(0, 1, 1, "y");
	assert_int_equal(validate_exact(CRDT_FVEC, B(&b), b.len), 0);
	/* Every cut is refused but the one between the two fields. */
	size_t boundary = b.len - (4 + 1 + 4 + 28 + 1);
	for (size_t cut = 1; cut < b.len; cut++)
		assert_int_equal(validate_exact(CRDT_FVEC, B(&b), cut),
				 cut == boundary ? 0 : SP_ERR_CORRUPT);
	/* With one field, every cut is refused. */
	FV_BEGIN(UINT32_MAX);
	FV_FIELD("abc", 2);
	FV_ENT(UINT64_MAX, UINT64_MAX, UINT64_MAX, "value");
	FV_ENT(0, 0, 1, "");
	assert_int_equal(validate_exact(CRDT_FVEC, B(&b), b.len), 0);
	for (size_t cut = 1; cut < b.len; cut++)
		assert_int_equal(validate_exact(CRDT_FVEC, B(&b), cut), SP_ERR_CORRUPT);

	FV_BEGIN(0);
	FV_FIELD("a", 1);
	FV_ENT(1, 1, 1, "x");
	expect_corrupt(CRDT_FVEC, &b, "history 0");
	FV_BEGIN(3);
	expect_corrupt(CRDT_FVEC, &b, "history without fields (bottom spelled out)");
	FV_BEGIN(3);
	FV_FIELD("b", 1);
	FV_ENT(1, 1, 1, "x");
	FV_FIELD("a", 1);
	FV_ENT(1, 1, 1, "x");
	expect_corrupt(CRDT_FVEC, &b, "fields out of order");
	FV_BEGIN(3);
	FV_FIELD("a", 1);
	FV_ENT(1, 1, 1, "x");
	FV_FIELD("a", 1);
	FV_ENT(2, 1, 1, "x");
	expect_corrupt(CRDT_FVEC, &b, "field twice");
	FV_BEGIN(3);
	FV_FIELD("", 1);
	FV_ENT(1, 1, 1, "x");
	expect_corrupt(CRDT_FVEC, &b, "empty field");
	FV_BEGIN(3);
	FV_FIELD("a", 2);
	FV_ENT(10, 1, 1, "x");
	FV_ENT(20, 1, 1, "y");
	expect_corrupt(CRDT_FVEC, &b, "entries out of order");
	FV_BEGIN(3);
	FV_FIELD("a", 2);
	FV_ENT(10, 1, 1, "x");
	FV_ENT(10, 2, 1, "y");
	expect_corrupt(CRDT_FVEC, &b, "two entries of one event time");
	FV_BEGIN(3);
	FV_FIELD("a", 0);
	expect_corrupt(CRDT_FVEC, &b, "n = 0");
	FV_BEGIN(3);
	FV_FIELD("a", 0);
	FV_FIELD("b", 1);
	FV_ENT(1, 1, 1, "x");
	expect_corrupt(CRDT_FVEC, &b, "n = 0 before a field");
	FV_BEGIN(1);
	FV_FIELD("a", 2);
	FV_ENT(2, 1, 1, "x");
	FV_ENT(1, 1, 1, "x");
	expect_corrupt(CRDT_FVEC, &b, "n > history");
	FV_BEGIN(3);
	FV_FIELD("a", 1);
	FV_ENT(1, 1, 0, "x");
	expect_corrupt(CRDT_FVEC, &b, "node 0");
	FV_BEGIN(3);
	FV_FIELD("a", 2);
	FV_ENT(1, 1, 1, "x");
	expect_corrupt(CRDT_FVEC, &b, "n past the end");
	FV_BEGIN(UINT32_MAX);
	FV_FIELD("a", UINT32_MAX);
	FV_ENT(1, 1, 1, "x");
	expect_corrupt(CRDT_FVEC, &b, "huge n");
	FV_BEGIN(3);
	sp_buf_put_le32(&b, UINT32_MAX);
	sp_buf_append(&b, "a", 1);
	expect_corrupt(CRDT_FVEC, &b, "huge field length");
	FV_BEGIN(3);
	FV_FIELD("a", 1);
	FV_ENT(1, 1, 1, "x");
	sp_buf_patch_le32(&b, b.len - 5, 2);
	expect_corrupt(CRDT_FVEC, &b, "value length past the end");
	FV_BEGIN(3);
	FV_FIELD("a", 1);
	FV_ENT(1, 1, 1, "x");
	sp_buf_put_u8(&b, 0);
	expect_corrupt(CRDT_FVEC, &b, "trailing byte");
#undef FV_ENT
#undef FV_FIELD
#undef FV_BEGIN

	/* Every entry point refuses it and leaves out as it was. */
	struct sp_buf good, out;
	sp_buf_init(&good);
	sp_buf_init(&out);
	fvec_apply(&good, 3, 1, 1, 1, "a", "x");
	buf_set(&out, "pre", 3);
	assert_int_equal(crdt_merge(CRDT_FVEC, B(&good), good.len, B(&b), b.len, &out),
			 SP_ERR_CORRUPT);
	assert_int_equal(crdt_merge(CRDT_FVEC, B(&b), b.len, B(&good), good.len, &out),
			 SP_ERR_CORRUPT);
	assert_int_equal(crdt_merge(CRDT_FVEC, B(&b), b.len, NULL, 0, &out), SP_ERR_CORRUPT);
	assert_int_equal(crdt_describe(CRDT_FVEC, B(&b), b.len, &out), SP_ERR_CORRUPT);
	assert_int_equal(out.len, 3);
	assert_memory_equal(B(&out), "pre", 3);
	struct crdt_fvec_entry e = {.event_ms = 77};
	assert_int_equal(crdt_fvec_find(B(&b), b.len, "a", 1, UINT64_MAX, &e), SP_ERR_CORRUPT);
	assert_int_equal(e.event_ms, 77);
	int calls = 0;
	assert_int_equal(crdt_fvec_walk(B(&b), b.len, fvec_count_calls, &calls), SP_ERR_CORRUPT);
	assert_int_equal(calls, 0);
	uint32_t h = 77;
	assert_int_equal(crdt_fvec_history(B(&b), b.len, &h), SP_ERR_CORRUPT);
	assert_int_equal(h, 77);
	/* A walk stopped by its callback still succeeds. */
	fvec_apply(&good, 3, 2, 1, 1, "b", "y");
	assert_int_equal(crdt_fvec_walk(B(&good), good.len, fvec_stop, &calls), 0);
	assert_int_equal(calls, 1);
	/* Success appends after what is there. */
	assert_int_equal(crdt_merge(CRDT_FVEC, B(&good), good.len, NULL, 0, &out), 0);
	assert_int_equal(out.len, 3 + good.len);
	assert_memory_equal(B(&out) + 3, B(&good), good.len);
	sp_buf_free(&good);
	sp_buf_free(&out);
	sp_buf_free(&b);
}

int main(void)
{
	base_seed = tu_seed();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_merge_is_join),
	    cmocka_unit_test(test_merge_is_join_across_histories),
	    cmocka_unit_test(test_convergence),
	    cmocka_unit_test(test_orset_add_wins),
	    cmocka_unit_test(test_mvreg_siblings),
	    cmocka_unit_test(test_lww_order),
	    cmocka_unit_test(test_counters),
	    cmocka_unit_test(test_sets),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_dot_overflow),
	    cmocka_unit_test(test_validate_examples),
	    cmocka_unit_test(test_validate_mutations),
	    cmocka_unit_test(test_fvec_delta),
	    cmocka_unit_test(test_fvec_order),
	    cmocka_unit_test(test_fvec_history),
	    cmocka_unit_test(test_fvec_corrupt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
