/*
 * fuzz_crdt: libFuzzer target for the CRDT states (src/crdt).
 *
 * Input: byte 0 picks the type (mod 7, plus 1); bytes 1..2 (little-endian,
 * modulo the rest's length + 1) split the rest into two candidate states
 * a and b, each copied to a buffer of exactly its size so ASan sees any
 * read past the end. Then:
 *  - validation says 0 or SP_ERR_CORRUPT, and every reader (value,
 *    members, contains, count, describe, lww_get, mvreg values and count)
 *    agrees with it: SP_ERR_CORRUPT for a bad state, success otherwise,
 *    with set members visited in strictly ascending byte order and as
 *    many as the count says;
 *  - when both are valid: merge(a, b) and merge(b, a) are the same valid
 *    bytes, merge(a, a) is a, and merge(merge(a, b), a or b) is
 *    merge(a, b);
 *  - when a is valid: an operation of its type, with an actor, a member
 *    and limits taken from b's bytes, either fails leaving the output
 *    untouched, or gives a valid state that is an inflation of a
 *    (merging a into it changes nothing).
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
	struct sp_buf out;
	sp_buf_init(&out);
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
	default:
		rc = crdt_mvreg_set(a, alen, actor, m, mlen, limp, &out);
		break;
	}
	CHECK(rc == 0 || rc == SP_ERR_INVAL || rc == SP_ERR_RANGE || rc == SP_ERR_TOOBIG);
	if (rc == SP_ERR_INVAL)
		CHECK(actor == 0);
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
	}
	sp_buf_free(&out);
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
