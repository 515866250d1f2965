/*
 * test_vclock: vector clocks. Set/get/increment against a plain model with
 * the sorted-entries invariant checked after every step; the lattice laws
 * of merge (commutative, associative, idempotent, least upper bound);
 * compare agreeing with covers and antisymmetric, increment making a clock
 * AFTER; the binary encoding's exact bytes, round trip (node ids near
 * UINT64_MAX, counts of UINT64_MAX), every truncation and every
 * non-canonical form refused; the token's round trip and its rejections;
 * the text format; and the behaviour at VCLOCK_MAX entries. Randomised
 * tests draw from tu_seed(); a failure prints the seed to replay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../lib/testutil.h"
#include "common/buf.h"
#include "common/err.h"
#include "engine/causal/vclock.h"

static uint64_t base_seed;

/* The node ids random clocks draw from: small ids, ids at the top of the
 * range (so deltas and varints reach 10 bytes), and a few scattered ones.
 * 48 of them, so any merge of random clocks fits in VCLOCK_MAX. */
#define POOL 48
static uint64_t pool[POOL];

static void init_pool(void)
{
	for (int i = 0; i < 16; i++) {
		pool[i] = (uint64_t)i + 1;
		pool[16 + i] = UINT64_MAX - (uint64_t)i;
	}
	uint64_t s = 0x5eed;
	for (int i = 32; i < POOL; i++)
		pool[i] = (tu_splitmix(&s) >> (i % 60)) | 1;
}

static void check_invariant(const struct vclock *v)
{
	assert_true(v->n <= VCLOCK_MAX);
	for (uint32_t i = 0; i < v->n; i++) {
		assert_true(v->e[i].node != 0);
		assert_true(v->e[i].count != 0);
		if (i > 0)
			assert_true(v->e[i - 1].node < v->e[i].node);
	}
}

static uint64_t rnd_count(uint64_t *rng)
{
	switch (tu_rnd(rng, 4)) {
	case 0:
		return UINT64_MAX - tu_rnd(rng, 3);
	case 1:
		return tu_splitmix(rng) | 1;
	default:
		return 1 + tu_rnd(rng, 6);
	}
}

static void rnd_clock(uint64_t *rng, struct vclock *v)
{
	vclock_init(v);
	uint64_t k = tu_rnd(rng, 12);
	for (uint64_t i = 0; i < k; i++)
		assert_int_equal(vclock_set(v, pool[tu_rnd(rng, POOL)], rnd_count(rng)), 0);
	check_invariant(v);
}

/* rnd_near returns a clock derived from a by a few raises, lowers,
 * removals and additions, so that BEFORE, AFTER and EQUAL come up as
 * often as CONCURRENT. */
static void rnd_near(uint64_t *rng, const struct vclock *a, struct vclock *b)
{
	*b = *a;
	uint64_t k = tu_rnd(rng, 3);
	bool up = tu_rnd(rng, 2);
	for (uint64_t i = 0; i < k; i++) {
		uint64_t node = pool[tu_rnd(rng, POOL)];
		uint64_t c = vclock_get(b, node);
		if (tu_rnd(rng, 4) == 0)
			up = !up;
		if (up && c < UINT64_MAX)
			assert_int_equal(vclock_set(b, node, c + 1 + tu_rnd(rng, UINT64_MAX - c)),
					 0);
		else if (!up && c > 0)
			assert_int_equal(vclock_set(b, node, tu_rnd(rng, c)), 0);
	}
	check_invariant(b);
}

static bool same(const struct vclock *a, const struct vclock *b)
{
	return a->n == b->n && memcmp(a->e, b->e, a->n * sizeof(a->e[0])) == 0;
}

static void test_set_get(void **state)
{
	(void)state;
	struct vclock v;
	v.n = 17; /* init must not rely on what was there */
	vclock_init(&v);
	assert_int_equal(v.n, 0);
	assert_int_equal(vclock_get(&v, 1), 0);
	assert_int_equal(vclock_get(&v, 0), 0);

	assert_int_equal(vclock_set(&v, 3, 2), 0);
	assert_int_equal(vclock_set(&v, 1, 5), 0);
	assert_int_equal(vclock_set(&v, UINT64_MAX, UINT64_MAX), 0);
	check_invariant(&v);
	assert_int_equal(v.n, 3);
	assert_int_equal(v.e[0].node, 1);
	assert_int_equal(vclock_get(&v, 1), 5);
	assert_int_equal(vclock_get(&v, 3), 2);
	assert_int_equal(vclock_get(&v, 2), 0);
	assert_int_equal(vclock_get(&v, UINT64_MAX), UINT64_MAX);

	/* Count 0 removes; removing an absent node is a no-op. */
	assert_int_equal(vclock_set(&v, 3, 0), 0);
	assert_int_equal(vclock_set(&v, 4, 0), 0);
	assert_int_equal(v.n, 2);
	assert_int_equal(vclock_get(&v, 3), 0);

	/* Node 0 is no node, even when removing. */
	struct vclock before = v;
	assert_int_equal(vclock_set(&v, 0, 1), SP_ERR_INVAL);
	assert_int_equal(vclock_set(&v, 0, 0), SP_ERR_INVAL);
	assert_true(same(&v, &before));

	/* Against a plain model: random sets keep the invariant and agree. */
	uint64_t rng = tu_stream(base_seed, "set_get");
	for (int round = 0; round < 2000; round++) {
		uint64_t model[POOL] = {0};
		vclock_init(&v);
		for (int k = 0; k < 60; k++) {
			uint64_t i = tu_rnd(&rng, POOL);
			uint64_t c = tu_rnd(&rng, 3) == 0 ? 0 : rnd_count(&rng);
			assert_int_equal(vclock_set(&v, pool[i], c), 0);
			model[i] = c;
			check_invariant(&v);
		}
		uint32_t nonzero = 0;
		for (int i = 0; i < POOL; i++) {
			assert_int_equal(vclock_get(&v, pool[i]), model[i]);
			nonzero += model[i] != 0;
		}
		assert_int_equal(v.n, nonzero);
	}
}

static void test_increment(void **state)
{
	(void)state;
	struct vclock v;
	uint64_t out = 0;
	vclock_init(&v);
	assert_int_equal(vclock_increment(&v, 7, &out), 0);
	assert_int_equal(out, 1);
	assert_int_equal(vclock_increment(&v, 7, &out), 0);
	assert_int_equal(out, 2);
	assert_int_equal(vclock_increment(&v, 2, NULL), 0);
	assert_int_equal(vclock_get(&v, 2), 1);
	check_invariant(&v);

	/* Errors leave v and *out alone. */
	struct vclock before = v;
	out = 99;
	assert_int_equal(vclock_increment(&v, 0, &out), SP_ERR_INVAL);
	assert_int_equal(vclock_set(&v, 9, UINT64_MAX), 0);
	before = v;
	assert_int_equal(vclock_increment(&v, 9, &out), SP_ERR_RANGE);
	assert_int_equal(out, 99);
	assert_true(same(&v, &before));
	assert_int_equal(vclock_set(&v, 9, UINT64_MAX - 1), 0);
	assert_int_equal(vclock_increment(&v, 9, &out), 0);
	assert_int_equal(out, UINT64_MAX);

	/* Increment makes a clock that is AFTER the one it came from. */
	uint64_t rng = tu_stream(base_seed, "increment");
	for (int round = 0; round < 20000; round++) {
		struct vclock a, b;
		rnd_clock(&rng, &a);
		b = a;
		uint64_t node = pool[tu_rnd(&rng, POOL)];
		uint64_t c = vclock_get(&a, node);
		int rc = vclock_increment(&b, node, &out);
		if (c == UINT64_MAX) {
			assert_int_equal(rc, SP_ERR_RANGE);
			assert_true(same(&a, &b));
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(out, c + 1);
		check_invariant(&b);
		assert_int_equal(vclock_compare(&b, &a), VCLOCK_AFTER);
		assert_int_equal(vclock_compare(&a, &b), VCLOCK_BEFORE);
		assert_true(vclock_covers(&b, &a));
		assert_false(vclock_covers(&a, &b));
	}
}

static void test_merge_laws(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "merge_laws");
	for (int round = 0; round < 20000; round++) {
		struct vclock a, b, c, ab, ba, ab_c, bc, a_bc, aa;
		rnd_clock(&rng, &a);
		if (tu_rnd(&rng, 2))
			rnd_near(&rng, &a, &b);
		else
			rnd_clock(&rng, &b);
		rnd_clock(&rng, &c);

		ab = a;
		assert_int_equal(vclock_merge(&ab, &b), 0);
		check_invariant(&ab);
		ba = b;
		assert_int_equal(vclock_merge(&ba, &a), 0);
		assert_true(same(&ab, &ba)); /* commutative */

		ab_c = ab;
		assert_int_equal(vclock_merge(&ab_c, &c), 0);
		bc = b;
		assert_int_equal(vclock_merge(&bc, &c), 0);
		a_bc = a;
		assert_int_equal(vclock_merge(&a_bc, &bc), 0);
		assert_true(same(&ab_c, &a_bc)); /* associative */

		aa = a;
		assert_int_equal(vclock_merge(&aa, &aa), 0); /* idempotent, aliased */
		assert_true(same(&aa, &a));
		aa = ab;
		assert_int_equal(vclock_merge(&aa, &b), 0);
		assert_true(same(&aa, &ab));

		/* An upper bound, and the least: pointwise max on every node. */
		assert_true(vclock_covers(&ab, &a));
		assert_true(vclock_covers(&ab, &b));
		for (int i = 0; i < POOL; i++) {
			uint64_t x = vclock_get(&a, pool[i]), y = vclock_get(&b, pool[i]);
			assert_int_equal(vclock_get(&ab, pool[i]), x > y ? x : y);
		}
		if (vclock_covers(&c, &a) && vclock_covers(&c, &b))
			assert_true(vclock_covers(&c, &ab));
	}
}

static void test_compare_laws(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "compare_laws");
	int seen[4] = {0};
	for (int round = 0; round < 40000; round++) {
		struct vclock a, b;
		rnd_clock(&rng, &a);
		if (tu_rnd(&rng, 4))
			rnd_near(&rng, &a, &b);
		else
			rnd_clock(&rng, &b);
		enum vclock_order ab = vclock_compare(&a, &b), ba = vclock_compare(&b, &a);
		bool a_covers_b = vclock_covers(&a, &b), b_covers_a = vclock_covers(&b, &a);
		bool equal = same(&a, &b);
		assert_true(ab <= VCLOCK_CONCURRENT);
		seen[ab]++;

		assert_int_equal(ab == VCLOCK_EQUAL, equal);
		assert_int_equal(ab == VCLOCK_EQUAL, a_covers_b && b_covers_a);
		assert_int_equal(ab == VCLOCK_BEFORE, b_covers_a && !equal);
		assert_int_equal(ab == VCLOCK_AFTER, a_covers_b && !equal);
		assert_int_equal(ab == VCLOCK_CONCURRENT, !a_covers_b && !b_covers_a);

		/* Antisymmetric. */
		assert_int_equal(ab == VCLOCK_BEFORE, ba == VCLOCK_AFTER);
		assert_int_equal(ab == VCLOCK_AFTER, ba == VCLOCK_BEFORE);
		assert_int_equal(ab == VCLOCK_EQUAL, ba == VCLOCK_EQUAL);
		assert_int_equal(ab == VCLOCK_CONCURRENT, ba == VCLOCK_CONCURRENT);

		/* Reflexive; everything covers the empty clock. */
		struct vclock empty;
		vclock_init(&empty);
		assert_int_equal(vclock_compare(&a, &a), VCLOCK_EQUAL);
		assert_true(vclock_covers(&a, &empty));
		assert_int_equal(vclock_compare(&empty, &a), a.n ? VCLOCK_BEFORE : VCLOCK_EQUAL);
	}
	/* The generator reached every outcome. */
	for (int o = 0; o < 4; o++)
		assert_true(seen[o] > 100);

	assert_string_equal(vclock_order_name(VCLOCK_EQUAL), "equal");
	assert_string_equal(vclock_order_name(VCLOCK_BEFORE), "before");
	assert_string_equal(vclock_order_name(VCLOCK_AFTER), "after");
	assert_string_equal(vclock_order_name(VCLOCK_CONCURRENT), "concurrent");
	assert_string_equal(vclock_order_name((enum vclock_order)42), "invalid");
}

static void test_full(void **state)
{
	(void)state;
	struct vclock v, before;
	vclock_init(&v);
	for (uint64_t i = 1; i <= VCLOCK_MAX; i++)
		assert_int_equal(vclock_set(&v, i * 10, i), 0);
	assert_int_equal(v.n, VCLOCK_MAX);
	before = v;

	/* A new node does not fit; existing ones still change. */
	assert_int_equal(vclock_set(&v, 5, 1), SP_ERR_FULL);
	assert_int_equal(vclock_set(&v, UINT64_MAX, 1), SP_ERR_FULL);
	assert_int_equal(vclock_increment(&v, 5, NULL), SP_ERR_FULL);
	assert_true(same(&v, &before));
	assert_int_equal(vclock_set(&v, 5, 0), 0); /* removing an absent node */
	assert_int_equal(vclock_increment(&v, 10, NULL), 0);
	assert_int_equal(vclock_get(&v, 10), 2);
	/* Freeing an entry makes room again. */
	assert_int_equal(vclock_set(&v, 20, 0), 0);
	assert_int_equal(vclock_set(&v, 5, 1), 0);
	check_invariant(&v);
	assert_int_equal(v.n, VCLOCK_MAX);

	/* Merges: exactly VCLOCK_MAX fits, one more does not and leaves into
	 * as it was. */
	struct vclock lo, hi;
	vclock_init(&lo);
	vclock_init(&hi);
	for (uint64_t i = 1; i <= VCLOCK_MAX / 2; i++) {
		assert_int_equal(vclock_set(&lo, i, 1), 0);
		assert_int_equal(vclock_set(&hi, UINT64_MAX - i, 1), 0);
	}
	struct vclock m = lo;
	assert_int_equal(vclock_merge(&m, &hi), 0);
	assert_int_equal(m.n, VCLOCK_MAX);
	check_invariant(&m);
	assert_int_equal(vclock_set(&hi, 1000, 3), 0);
	m = lo;
	assert_int_equal(vclock_merge(&m, &hi), SP_ERR_FULL);
	assert_true(same(&m, &lo));
	m = hi;
	assert_int_equal(vclock_merge(&m, &lo), SP_ERR_FULL);
	assert_true(same(&m, &hi));

	/* A full clock encodes, decodes and makes a token. */
	struct sp_buf b;
	struct vclock d;
	size_t used = 0;
	sp_buf_init(&b);
	vclock_encode(&v, &b);
	assert_true(b.len <= VCLOCK_ENCODED_MAX);
	assert_int_equal(vclock_decode((const uint8_t *)sp_buf_begin(&b), b.len, &d, &used), 0);
	assert_int_equal(used, b.len);
	assert_true(same(&d, &v));
	sp_buf_clear(&b);
	vclock_to_token(&v, &b);
	assert_int_equal(vclock_from_token(sp_buf_begin(&b), b.len, &d), 0);
	assert_true(same(&d, &v));
	sp_buf_free(&b);
}

/* expect_bytes checks v's encoding byte for byte. */
static void expect_bytes(const struct vclock *v, const uint8_t *want, size_t n)
{
	struct sp_buf b;
	sp_buf_init(&b);
	sp_buf_append(&b, "x", 1); /* encode appends */
	vclock_encode(v, &b);
	assert_int_equal(b.len, n + 1);
	assert_memory_equal(sp_buf_begin(&b) + 1, want, n);
	sp_buf_free(&b);
}

static void test_encode_bytes(void **state)
{
	(void)state;
	struct vclock v;
	vclock_init(&v);
	expect_bytes(&v, (const uint8_t[]){0x00}, 1);

	assert_int_equal(vclock_set(&v, 1, 5), 0);
	assert_int_equal(vclock_set(&v, 3, 2), 0);
	expect_bytes(&v, (const uint8_t[]){0x02, 0x01, 0x05, 0x02, 0x02}, 5);

	vclock_init(&v);
	assert_int_equal(vclock_set(&v, 300, 128), 0);
	expect_bytes(&v, (const uint8_t[]){0x01, 0xac, 0x02, 0x80, 0x01}, 5);

	vclock_init(&v);
	assert_int_equal(vclock_set(&v, UINT64_MAX, UINT64_MAX), 0);
	uint8_t top[21] = {0x01};
	for (int i = 0; i < 2; i++) {
		memset(top + 1 + 10 * i, 0xff, 9);
		top[10 + 10 * i] = 0x01;
	}
	expect_bytes(&v, top, sizeof(top));
}

static void test_encode_roundtrip(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "encode_roundtrip");
	struct sp_buf b, b2;
	sp_buf_init(&b);
	sp_buf_init(&b2);
	for (int round = 0; round < 20000; round++) {
		struct vclock v, d;
		rnd_clock(&rng, &v);
		sp_buf_clear(&b);
		vclock_encode(&v, &b);
		size_t len = b.len;
		assert_true(len <= VCLOCK_ENCODED_MAX);
		/* Trailing bytes are left for the caller. */
		size_t extra = tu_rnd(&rng, 4);
		for (size_t i = 0; i < extra; i++)
			sp_buf_put_u8(&b, (uint8_t)tu_splitmix(&rng));
		const uint8_t *p = (const uint8_t *)sp_buf_begin(&b);

		size_t used = 0;
		assert_int_equal(vclock_decode(p, b.len, &d, &used), 0);
		assert_int_equal(used, len);
		assert_true(same(&d, &v));
		check_invariant(&d);
		sp_buf_clear(&b2);
		vclock_encode(&d, &b2);
		assert_int_equal(b2.len, len);
		assert_memory_equal(sp_buf_begin(&b2), p, len);
		assert_int_equal(vclock_decode(p, b.len, &d, NULL), 0);

		/* Every truncation fails, and leaves out and used alone. */
		for (size_t cut = 0; cut < len; cut++) {
			struct vclock keep = d;
			used = 12345;
			assert_int_equal(vclock_decode(p, cut, &d, &used), SP_ERR_PROTO);
			assert_int_equal(used, 12345);
			assert_true(same(&d, &keep));
		}
	}
	sp_buf_free(&b);
	sp_buf_free(&b2);
}

static void expect_refused(const uint8_t *p, size_t n)
{
	struct vclock d;
	vclock_init(&d);
	assert_int_equal(vclock_set(&d, 42, 42), 0);
	struct vclock keep = d;
	size_t used = 777;
	assert_int_equal(vclock_decode(p, n, &d, &used), SP_ERR_PROTO);
	assert_true(same(&d, &keep));
	assert_int_equal(used, 777);
}

#define REFUSED(...)                                                                               \
	expect_refused((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static void test_decode_refuses(void **state)
{
	(void)state;
	struct vclock d;
	expect_refused(NULL, 0);
	REFUSED(0x80);			       /* truncated varint */
	REFUSED(0x80, 0x00);		       /* overlong n */
	REFUSED(0x01, 0x81, 0x00, 0x01);       /* overlong node */
	REFUSED(0x01, 0x01, 0x80, 0x80, 0x00); /* overlong count */
	REFUSED(0x41);			       /* 65 entries */
	REFUSED(0xc1, 0x00);		       /* 65 entries, 2-byte varint */
	REFUSED(0x01, 0x00, 0x01);	       /* first node 0 */
	REFUSED(0x02, 0x01, 0x01, 0x00, 0x01); /* repeated node */
	REFUSED(0x01, 0x01, 0x00);	       /* zero count */
	REFUSED(0x01, 0x01);		       /* missing count */
	REFUSED(0x02, 0x01, 0x01);	       /* missing entry */
	/* A varint of 11 bytes, and a 10th byte past bit 63. */
	REFUSED(0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x01);
	REFUSED(0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02);
	/* Node overflow: UINT64_MAX, then a delta of 1. */
	REFUSED(0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x01, 0x01);
	/* ... while UINT64_MAX - 1 then 1 is fine. */
	const uint8_t ok[] = {0x02, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff,
			      0xff, 0xff, 0xff, 0x01, 0x01, 0x01, 0x01};
	size_t used = 0;
	assert_int_equal(vclock_decode(ok, sizeof(ok), &d, &used), 0);
	assert_int_equal(used, sizeof(ok));
	assert_int_equal(vclock_get(&d, UINT64_MAX), 1);
	assert_int_equal(vclock_get(&d, UINT64_MAX - 1), 1);
}

static void expect_bad_token(const char *s, size_t n)
{
	struct vclock d;
	vclock_init(&d);
	assert_int_equal(vclock_set(&d, 42, 42), 0);
	struct vclock keep = d;
	assert_int_equal(vclock_from_token(s, n, &d), SP_ERR_PROTO);
	assert_true(same(&d, &keep));
}

#define BAD_TOKEN(lit) expect_bad_token(lit, sizeof(lit) - 1)

static void test_token(void **state)
{
	(void)state;
	struct vclock v, d;
	struct sp_buf b;
	sp_buf_init(&b);

	vclock_init(&v);
	vclock_to_token(&v, &b);
	assert_int_equal(b.len, 5);
	assert_memory_equal(sp_buf_begin(&b), "v1.00", 5);
	assert_int_equal(vclock_set(&v, 300, 128), 0);
	assert_int_equal(vclock_set(&v, 301, 1), 0);
	sp_buf_clear(&b);
	vclock_to_token(&v, &b);
	assert_int_equal(b.len, 17);
	assert_memory_equal(sp_buf_begin(&b), "v1.02ac0280010101", 17);
	assert_int_equal(vclock_from_token("v1.02ac0280010101", 17, &d), 0);
	assert_true(same(&d, &v));

	expect_bad_token(NULL, 0);
	BAD_TOKEN("");
	BAD_TOKEN("v");
	BAD_TOKEN("v1");
	BAD_TOKEN("v1.");		/* no encoding */
	BAD_TOKEN("v2.00");		/* other version */
	BAD_TOKEN("V1.00");		/* prefix case */
	BAD_TOKEN("v1:00");		/* prefix separator */
	BAD_TOKEN(" v1.00");		/* leading space */
	BAD_TOKEN("v1.00 ");		/* trailing space */
	BAD_TOKEN("v1.0");		/* odd digit count */
	BAD_TOKEN("v1.000");		/* odd digit count */
	BAD_TOKEN("v1.0000");		/* trailing byte */
	BAD_TOKEN("v1.0g");		/* not hex */
	BAD_TOKEN("v1.02AC0280010101"); /* uppercase hex */
	BAD_TOKEN("v1.0101");		/* truncated encoding */
	BAD_TOKEN("v1.0100");		/* node 0 */
	BAD_TOKEN("v1.010100");		/* count 0 */
	BAD_TOKEN("v1.0181000101");	/* overlong node */
	expect_bad_token("v1.00\0", 6); /* NUL inside */
	expect_bad_token("v1.01\0"
			 "101",
			 9); /* NUL among digits */

	/* Too long to be any clock: 64 entries of 20 bytes and then some. */
	char longtok[3 + 2 * (VCLOCK_ENCODED_MAX + 1)];
	memcpy(longtok, "v1.", 3);
	memset(longtok + 3, '0', sizeof(longtok) - 3);
	expect_bad_token(longtok, sizeof(longtok));

	uint64_t rng = tu_stream(base_seed, "token");
	for (int round = 0; round < 20000; round++) {
		rnd_clock(&rng, &v);
		sp_buf_clear(&b);
		sp_buf_append(&b, "<", 1); /* to_token appends */
		vclock_to_token(&v, &b);
		const char *t = sp_buf_begin(&b) + 1;
		size_t n = b.len - 1;
		assert_memory_equal(t, "v1.", 3);
		for (size_t i = 3; i < n; i++)
			assert_non_null(strchr("0123456789abcdef", t[i]));
		assert_int_equal(vclock_from_token(t, n, &d), 0);
		assert_true(same(&d, &v));
		/* Dropping or adding a character breaks it; so does flipping
		 * one hex digit to uppercase. */
		expect_bad_token(t, n - 1 - tu_rnd(&rng, n - 1));
		char tmp[3 + 2 * VCLOCK_ENCODED_MAX + 1];
		memcpy(tmp, t, n);
		tmp[n] = "0a"[tu_rnd(&rng, 2)];
		expect_bad_token(tmp, n + 1);
		size_t at = 3 + tu_rnd(&rng, n - 3);
		if (tmp[at] >= 'a') {
			tmp[at] = (char)(tmp[at] - 'a' + 'A');
			expect_bad_token(tmp, n);
		}
	}
	sp_buf_free(&b);
}

static void expect_format(const struct vclock *v, const char *want)
{
	struct sp_buf b;
	sp_buf_init(&b);
	sp_buf_append(&b, "vc=", 3);
	vclock_format(v, &b);
	assert_int_equal(b.len, 3 + strlen(want));
	assert_memory_equal(sp_buf_begin(&b) + 3, want, strlen(want));
	sp_buf_free(&b);
}

static void test_format(void **state)
{
	(void)state;
	struct vclock v;
	vclock_init(&v);
	expect_format(&v, "{}");
	assert_int_equal(vclock_set(&v, 3, 2), 0);
	assert_int_equal(vclock_set(&v, 1, 5), 0);
	expect_format(&v, "{1:5,3:2}");
	vclock_init(&v);
	assert_int_equal(vclock_set(&v, UINT64_MAX, UINT64_MAX), 0);
	expect_format(&v, "{18446744073709551615:18446744073709551615}");
}

int main(void)
{
	base_seed = tu_seed();
	init_pool();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_set_get),
	    cmocka_unit_test(test_increment),
	    cmocka_unit_test(test_merge_laws),
	    cmocka_unit_test(test_compare_laws),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_encode_bytes),
	    cmocka_unit_test(test_encode_roundtrip),
	    cmocka_unit_test(test_decode_refuses),
	    cmocka_unit_test(test_token),
	    cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
