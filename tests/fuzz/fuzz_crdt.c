/*
 * fuzz_crdt: libFuzzer target for the CRDT states (src/crdt).
 *
 * Input: byte 0 picks the type (mod CRDT_TYPE_MAX, plus 1: every type from
 * CRDT_GCOUNTER to CRDT_FVEC, with 0..6 still meaning the first seven as
 * the older seeds expect); bytes 1..2 (little-endian,
 * modulo the rest's length + 1) split the rest into two candidate states
 * a and b, each copied to a buffer of exactly its size so ASan sees any
 * read past the end. Then:
 *  - validation says 0 or SP_ERR_CORRUPT, and every reader (value,
 *    members, contains, count, describe, lww_get, mvreg values and count,
 *    fvec walk, find and history) agrees with it: SP_ERR_CORRUPT for a bad
 *    state, success otherwise, with set members visited in strictly
 *    ascending byte order and as many as the count says, and a feature
 *    record's entries walked fields ascending, newest first, at most
 *    history per field, find agreeing with the walk;
 *  - when both are valid: merge(a, b) and merge(b, a) are the same valid
 *    bytes, merge(a, a) is a, and merge(merge(a, b), a or b) is
 *    merge(a, b);
 *  - when a is valid: an operation of its type, with an actor, a member
 *    and limits taken from b's bytes, either fails leaving the output
 *    untouched, or gives a valid state that is an inflation of a
 *    (merging a into it changes nothing). For fvec the operation is a
 *    delta of up to three puts merged into a: the delta holds each
 *    field's last put, and the merge holds at that event time a write at
 *    least as large, or history newer entries.
 * Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/endian.h"
#include "common/err.h"
#include "crdt/crdt.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_crdt: %s:%d: check failed: %s\n", __FILE__,          \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static const uint8_t *bytes(const struct sp_buf *b)
{
	return (const uint8_t *)sp_buf_begin(b);
}

static int same(const uint8_t *a, size_t alen, const struct sp_buf *b)
{
	return alen == b->len && (alen == 0 || memcmp(a, bytes(b), alen) == 0);
}

static int is_set(uint8_t type)
{
	return type == CRDT_GSET || type == CRDT_2PSET || type == CRDT_ORSET;
}

/* The members walk checks order and counts visits. */
struct walk {
	const uint8_t *prev;
	size_t prev_len;
	uint64_t n;
};

static int cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	size_t n = an < bn ? an : bn;
	int c = n ? memcmp(a, b, n) : 0;
	return c ? c : (an > bn) - (an < bn);
}

static int visit_member(void *ctx, const uint8_t *m, size_t mlen)
{
	struct walk *w = ctx;
	CHECK(m != NULL);
	if (w->n > 0)
		CHECK(cmp_bytes(w->prev, w->prev_len, m, mlen) < 0);
	w->prev = m;
	w->prev_len = mlen;
	w->n++;
	return 0;
}

static int visit_value(void *ctx, const uint8_t *v, size_t vlen)
{
	struct walk *w = ctx;
	CHECK(v != NULL);
	(void)vlen;
	w->n++;
	return 0;
}

/* The fvec walk checks the order of fields and entries, and remembers
 * the probe field's newest entry and how many it has. */
struct fvec_walk {
	uint32_t history;
	const uint8_t *prev;
	size_t prev_len;
	uint64_t n, prev_ms;
	const uint8_t *probe;
	size_t probe_len;
	struct crdt_fvec_entry newest; /* the probe's idx 0 */
	uint64_t probe_n, oldest_ms;
};

static int visit_fvec(void *ctx, const uint8_t *field, size_t flen, const struct crdt_fvec_entry *e,
		      size_t idx)
{
	struct fvec_walk *w = ctx;
	CHECK(field != NULL && flen >= 1 && e->v != NULL && e->node != 0);
	CHECK(idx < w->history);
	if (idx == 0) {
		if (w->n > 0)
			CHECK(cmp_bytes(w->prev, w->prev_len, field, flen) < 0);
	} else {
		CHECK(cmp_bytes(w->prev, w->prev_len, field, flen) == 0);
		CHECK(e->event_ms < w->prev_ms);
	}
	if (cmp_bytes(field, flen, w->probe, w->probe_len) == 0) {
		if (idx == 0)
			w->newest = *e;
		w->probe_n++;
		w->oldest_ms = e->event_ms;
	}
	w->prev = field;
	w->prev_len = flen;
	w->prev_ms = e->event_ms;
	w->n++;
	return 0;
}

/* fvec_probe walks s (valid) for what it holds of one field. */
static struct fvec_walk fvec_probe(const uint8_t *s, size_t len, const uint8_t *field, size_t flen)
{
	struct fvec_walk w = {.probe = field, .probe_len = flen};
	CHECK(crdt_fvec_history(s, len, &w.history) == 0);
	CHECK(crdt_fvec_walk(s, len, visit_fvec, &w) == 0);
	CHECK((len == 0) == (w.history == 0) && (len == 0) == (w.n == 0));
	return w;
}

static int same_entry(const struct crdt_fvec_entry *a, const struct crdt_fvec_entry *b)
{
	return a->event_ms == b->event_ms && a->ts == b->ts && a->node == b->node &&
	       cmp_bytes(a->v, a->vlen, b->v, b->vlen) == 0;
}

/* readers runs every reader of the type over s and checks they agree
 * with validation (rc); probe is a member to look up. */
static void readers(uint8_t type, const uint8_t *s, size_t len, int rc, const uint8_t *probe,
		    size_t probe_len)
{
	struct sp_buf d;
	sp_buf_init(&d);
	CHECK(crdt_describe(type, s, len, &d) == rc);
	if (rc < 0)
		CHECK(d.len == 0);
	sp_buf_free(&d);

	int64_t v;
	uint64_t count = 0;
	struct walk w = {0};
	int r;
	switch (type) {
	case CRDT_GCOUNTER:
		r = crdt_gcounter_value(s, len, &v);
		CHECK(rc < 0 ? r == rc : (r == 0 && v >= 0) || r == SP_ERR_RANGE);
		break;
	case CRDT_PNCOUNTER:
		r = crdt_pncounter_value(s, len, &v);
		CHECK(rc < 0 ? r == rc : r == 0 || r == SP_ERR_RANGE);
		break;
	case CRDT_LWW: {
		struct crdt_lww reg;
		r = crdt_lww_get(s, len, &reg);
		if (rc < 0) {
			CHECK(r == rc);
		} else if (len == 0) {
			CHECK(r == SP_ERR_NOTFOUND);
		} else {
			CHECK(r == 0 && reg.v == s + CRDT_LWW_HDR_LEN);
			CHECK(reg.vlen == len - CRDT_LWW_HDR_LEN && reg.node != 0);
			CHECK(!reg.tombstone || reg.vlen == 0);
		}
		break;
	}
	case CRDT_MVREG:
		r = crdt_mvreg_values(s, len, visit_value, &w);
		CHECK(crdt_mvreg_count(s, len, &count) == rc);
		if (rc < 0)
			CHECK(r == rc);
		else
			CHECK(r >= 0 && (uint64_t)r == w.n && w.n == count);
		break;
	case CRDT_FVEC: {
		struct crdt_fvec_entry e = {.event_ms = 7};
		uint32_t h = 7;
		r = crdt_fvec_find(s, len, probe, probe_len, UINT64_MAX, &e);
		if (rc < 0) {
			CHECK(r == rc && e.event_ms == 7);
			CHECK(crdt_fvec_history(s, len, &h) == rc && h == 7);
			CHECK(crdt_fvec_walk(s, len, visit_fvec, NULL) == rc);
			break;
		}
		struct fvec_walk fw = fvec_probe(s, len, probe, probe_len);
		/* The latest is the walk's newest; as of just before it,
		 * the next one, or nothing when it is the only one. */
		CHECK(r == (fw.probe_n ? 0 : SP_ERR_NOTFOUND));
		if (r == 0) {
			CHECK(same_entry(&e, &fw.newest));
			if (e.event_ms > 0) {
				r = crdt_fvec_find(s, len, probe, probe_len, e.event_ms - 1, &e);
				CHECK(r == (fw.probe_n > 1 ? 0 : SP_ERR_NOTFOUND));
				CHECK(r < 0 || e.event_ms < fw.newest.event_ms);
			}
		}
		break;
	}
	default:
		r = crdt_set_members(type, s, len, visit_member, &w);
		CHECK(crdt_set_count(type, s, len, &count) == rc);
		int has = crdt_set_contains(type, s, len, probe, probe_len);
		if (rc < 0) {
			CHECK(r == rc && has == rc);
		} else {
			CHECK(r >= 0 && (uint64_t)r == w.n && w.n == count);
			CHECK(has == 0 || has == 1);
		}
		break;
	}
}

/* merged returns merge(a, b), which must succeed and be valid. */
static struct sp_buf merged(uint8_t type, const uint8_t *a, size_t alen, const uint8_t *b,
			    size_t blen)
{
	struct sp_buf out;
	sp_buf_init(&out);
	CHECK(crdt_merge(type, a, alen, b, blen, &out) == 0);
	CHECK(crdt_validate(type, bytes(&out), out.len) == 0);
	return out;
}

static void check_join(uint8_t type, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	struct sp_buf ab = merged(type, a, alen, b, blen);
	struct sp_buf ba = merged(type, b, blen, a, alen);
	CHECK(same(bytes(&ab), ab.len, &ba));
	struct sp_buf aa = merged(type, a, alen, a, alen);
	CHECK(same(a, alen, &aa));
	struct sp_buf aba = merged(type, bytes(&ab), ab.len, a, alen);
	CHECK(same(bytes(&ab), ab.len, &aba));
	struct sp_buf abb = merged(type, b, blen, bytes(&ab), ab.len);
	CHECK(same(bytes(&ab), ab.len, &abb));
	sp_buf_free(&ab);
	sp_buf_free(&ba);
	sp_buf_free(&aa);
	sp_buf_free(&aba);
	sp_buf_free(&abb);
}

/* check_fvec_puts checks a delta d of puts[0..n) at (event_ms, ts, node)
 * and the state s it was merged into: the delta holds each field's last
 * put and nothing else; s holds, at event_ms, a write at least as large
 * (by ts, node, value), or history entries all newer. */
static void check_fvec_puts(const uint8_t *s, size_t len, const uint8_t *d, size_t dlen,
			    const struct crdt_fvec_put *puts, size_t n, uint64_t event_ms,
			    uint64_t ts, uint64_t node)
{
	size_t distinct = 0;
	for (size_t k = 0; k < n; k++) {
		const uint8_t *f = puts[k].field;
		int later = 0;
		for (size_t q = k + 1; q < n; q++)
			later |= cmp_bytes(f, puts[k].flen, puts[q].field, puts[q].flen) == 0;
		if (later)
			continue;
		distinct++;
		struct crdt_fvec_entry put = {event_ms, ts, node, puts[k].v, puts[k].vlen};
		struct crdt_fvec_entry e;
		CHECK(crdt_fvec_find(d, dlen, f, puts[k].flen, UINT64_MAX, &e) == 0);
		CHECK(same_entry(&e, &put));
		int r = crdt_fvec_find(s, len, f, puts[k].flen, event_ms, &e);
		if (r == 0 && e.event_ms == event_ms) {
			int c = e.ts != ts	 ? (e.ts > ts ? 1 : -1)
				: e.node != node ? (e.node > node ? 1 : -1)
						 : cmp_bytes(e.v, e.vlen, put.v, put.vlen);
			CHECK(c >= 0);
		} else {
			struct fvec_walk w = fvec_probe(s, len, f, puts[k].flen);
			CHECK(w.probe_n == w.history && w.oldest_ms > event_ms);
		}
	}
	struct fvec_walk all = fvec_probe(d, dlen, NULL, 0);
	CHECK(all.n == distinct);
}

/* operate applies one operation to the valid state a, its arguments
 * drawn from p[0..n). */
static void operate(uint8_t type, const uint8_t *a, size_t alen, const uint8_t *p, size_t n)
{
	uint8_t arg[16] = {0};
	memcpy(arg, p, n < sizeof(arg) ? n : sizeof(arg));
	const uint8_t *m = n > 16 ? p + 16 : p;
	size_t mlen = n > 16 ? (n - 16) % 24 : 0;
	uint64_t x = sp_get_le64(arg);
	/* Small actor ids and limits, so they meet the state's. */
	uint64_t actor = arg[8] % 8;
	struct crdt_limits lim = {.max_members = arg[9] % 6, .max_member_len = arg[10] % 12};
	const struct crdt_limits *limp = arg[11] & 1 ? &lim : NULL;
	int removing = (type == CRDT_2PSET || type == CRDT_ORSET) && (arg[12] & 1);
	int flag = -1;
	struct crdt_fvec_put puts[3];
	size_t nput = 0;
	int empty_field = 0;
	uint32_t history = 0;
	struct sp_buf out, delta;
	sp_buf_init(&out);
	sp_buf_init(&delta);
	sp_buf_append(&out, "pre", 3);
	int rc;
	switch (type) {
	case CRDT_GCOUNTER:
		rc = crdt_gcounter_add(a, alen, actor, arg[12] & 1 ? x : x % 1000, &out);
		break;
	case CRDT_PNCOUNTER:
		rc = crdt_pncounter_add(
		    a, alen, actor, arg[12] & 1 ? (int64_t)x : (int64_t)(x % 2001) - 1000, &out);
		break;
	case CRDT_GSET:
		rc = crdt_gset_add(a, alen, m, mlen, limp, &out, &flag);
		break;
	case CRDT_2PSET:
		rc = removing ? crdt_tpset_remove(a, alen, m, mlen, limp, &out, &flag)
			      : crdt_tpset_add(a, alen, m, mlen, limp, &out, &flag);
		break;
	case CRDT_ORSET:
		rc = removing ? crdt_orset_remove(a, alen, m, mlen, &out, &flag)
			      : crdt_orset_add(a, alen, actor, m, mlen, limp, &out, &flag);
		break;
	case CRDT_LWW:
		rc = crdt_lww_set(a, alen, x % 64, actor, m, arg[12] & 1 ? 0 : mlen, arg[12] & 1,
				  &out, &flag);
		break;
	case CRDT_FVEC:
		/* Up to three puts whose fields overlap in m, so a field is
		 * often named twice; an empty field or no put is
		 * SP_ERR_INVAL. */
		nput = arg[15] % 4;
		for (size_t k = 0; k < nput; k++) {
			size_t flen = (arg[15] >> (2 + 2 * k)) & 3;
			puts[k].field = m + (k < mlen ? k : 0);
			puts[k].flen = k < mlen ? (flen < mlen - k ? flen : mlen - k) : 0;
			puts[k].v = m + (k + 1 < mlen ? k + 1 : 0);
			puts[k].vlen = k + 1 < mlen ? (mlen - k - 1) % 6 : 0;
			empty_field |= puts[k].flen == 0;
		}
		history = 1 + arg[13] % 4;
		rc = crdt_fvec_delta(history, x % 16, arg[14] % 4, actor, puts, nput, limp, &delta);
		if (rc == 0)
			CHECK(crdt_merge(type, a, alen, bytes(&delta), delta.len, &out) == 0);
		break;
	default:
		rc = crdt_mvreg_set(a, alen, actor, m, mlen, limp, &out);
		break;
	}
	CHECK(rc == 0 || rc == SP_ERR_INVAL || rc == SP_ERR_RANGE || rc == SP_ERR_TOOBIG);
	if (rc == SP_ERR_INVAL)
		CHECK(actor == 0 || (type == CRDT_FVEC && (nput == 0 || empty_field)));
	if (rc == SP_ERR_TOOBIG)
		CHECK(limp != NULL);
	CHECK(out.len >= 3 && memcmp(bytes(&out), "pre", 3) == 0);
	if (rc < 0) {
		CHECK(out.len == 3);
	} else {
		const uint8_t *s = bytes(&out) + 3;
		size_t len = out.len - 3;
		CHECK(crdt_validate(type, s, len) == 0);
		struct sp_buf up = merged(type, s, len, a, alen);
		CHECK(same(s, len, &up));
		sp_buf_free(&up);
		/* What the operation says it did is what the state holds. */
		if (is_set(type) && (flag == 1 || type == CRDT_ORSET))
			CHECK(crdt_set_contains(type, s, len, m, mlen) == !removing);
		if (type == CRDT_MVREG) {
			uint64_t count;
			CHECK(crdt_mvreg_count(s, len, &count) == 0 && count == 1);
		}
		if (type == CRDT_FVEC)
			check_fvec_puts(s, len, bytes(&delta), delta.len, puts, nput, x % 16,
					arg[14] % 4, actor);
	}
	sp_buf_free(&out);
	sp_buf_free(&delta);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	uint8_t type = (uint8_t)(data[0] % CRDT_TYPE_MAX + 1);
	size_t n = size - 3;
	size_t split = ((size_t)data[1] | (size_t)data[2] << 8) % (n + 1);
	uint8_t *a = malloc(split ? split : 1);
	uint8_t *b = malloc(n - split ? n - split : 1);
	CHECK(a != NULL && b != NULL);
	memcpy(a, data + 3, split);
	memcpy(b, data + 3 + split, n - split);
	size_t alen = split, blen = n - split;

	int va = crdt_validate(type, a, alen);
	int vb = crdt_validate(type, b, blen);
	CHECK(va == 0 || va == SP_ERR_CORRUPT);
	CHECK(vb == 0 || vb == SP_ERR_CORRUPT);
	readers(type, a, alen, va, b, blen < 8 ? blen : 8);
	readers(type, b, blen, vb, a, alen < 8 ? alen : 8);

	struct sp_buf out;
	sp_buf_init(&out);
	int rc = crdt_merge(type, a, alen, b, blen, &out);
	CHECK(rc == (va < 0 ? va : vb));
	if (rc < 0)
		CHECK(out.len == 0);
	sp_buf_free(&out);

	if (va == 0 && vb == 0)
		check_join(type, a, alen, b, blen);
	if (va == 0)
		operate(type, a, alen, b, blen);
	free(a);
	free(b);
	return 0;
}
