/*
 * test_ring: the consistent-hash ring. Its token rule against a direct
 * computation, ranges and walks on hand-placed tokens (collisions, the
 * ends of the circle), and on real rings the properties the eventual
 * engine relies on: determinism, one walk per range, balance, and minimal
 * movement when a node joins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "common/endian.h"
#include "common/err.h"
#include "engine/eventual/ring.h"
#include "../lib/testutil.h"

static uint64_t base_seed;

#define MAXN 16

static void assert_walk(const uint64_t *got, size_t n, const uint64_t *want, size_t wn)
{
	assert_int_equal(n, wn);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(got[k], want[k]);
}

static void assert_distinct(const uint64_t *ids, size_t n)
{
	for (size_t a = 0; a < n; a++) {
		assert_int_not_equal(ids[a], 0);
		for (size_t b = a + 1; b < n; b++)
			assert_int_not_equal(ids[a], ids[b]);
	}
}

/* random_ids fills ids with n distinct non-zero random ids. */
static void random_ids(uint64_t *rng, uint64_t *ids, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		uint64_t id;
		int dup;
		do {
			id = tu_splitmix(rng);
			dup = id == 0;
			for (size_t j = 0; j < k; j++)
				dup |= ids[j] == id;
		} while (dup);
		ids[k] = id;
	}
}

/* random_key_hash hashes a random 16-byte key, as the engine would. */
static uint64_t random_key_hash(uint64_t *rng)
{
	uint8_t key[16];
	sp_put_le64(key, tu_splitmix(rng));
	sp_put_le64(key + 8, tu_splitmix(rng));
	return ring_key_hash(key, sizeof(key));
}

static void test_build_rejects_bad_input(void **state)
{
	(void)state;
	struct ring *r = (struct ring *)&r; /* any non-NULL value */
	uint64_t ids[] = {1, 2, 3, 2};
	uint64_t zero[] = {1, 0};
	assert_int_equal(ring_build(&r, ids, 0, 8), SP_ERR_INVAL);
	assert_null(r);
	r = (struct ring *)&r;
	assert_int_equal(ring_build(&r, ids, 3, 0), SP_ERR_INVAL);
	assert_null(r);
	assert_int_equal(ring_build(&r, ids, 4, 8), SP_ERR_INVAL); /* 2 twice */
	assert_null(r);
	assert_int_equal(ring_build(&r, zero, 2, 8), SP_ERR_INVAL);
	assert_null(r);
	uint64_t tok[] = {5, 6};
	assert_int_equal(ring__build_tokens(&r, tok, ids, 0), SP_ERR_INVAL);
	assert_int_equal(ring__build_tokens(&r, tok, zero, 2), SP_ERR_INVAL);
	assert_null(r);
	ring_free(NULL);

	assert_int_equal(ring_build(&r, ids, 3, 8), 0);
	assert_non_null(r);
	assert_int_equal(ring_nodes(r), 3);
	ring_free(r);
}

/* The token rule in ring.h, computed here independently, so the header's
 * words and the code cannot drift apart. */
static void test_token_rule(void **state)
{
	(void)state;
	const uint64_t id = 0x0102030405060708ull;
	const unsigned vn = 16;
	struct ring *r;
	assert_int_equal(ring_build(&r, &id, 1, vn), 0);
	assert_int_equal(ring_nodes(r), 1);
	assert_int_equal(ring_nranges(r), vn);

	uint8_t le[8] = {8, 7, 6, 5, 4, 3, 2, 1};
	uint64_t want[16];
	for (unsigned j = 0; j < vn; j++)
		want[j] = XXH3_64bits_withSeed(le, 8, j);
	/* Sort the expected tokens: insertion sort is plenty for 16. */
	for (unsigned a = 1; a < vn; a++)
		for (unsigned b = a; b > 0 && want[b - 1] > want[b]; b--) {
			uint64_t t = want[b];
			want[b] = want[b - 1];
			want[b - 1] = t;
		}
	for (unsigned j = 0; j < vn; j++) {
		assert_int_equal(ring_range_token(r, j), want[j]);
		size_t i = 999;
		assert_int_equal(ring_range_find(r, want[j], &i), 0);
		assert_int_equal(i, j);
	}
	ring_free(r);

	assert_int_equal(ring_key_hash("model:resnet", 12), XXH3_64bits("model:resnet", 12));
	assert_int_equal(ring_key_hash(NULL, 0), XXH3_64bits(NULL, 0));
}

/* Tokens placed by hand: 10 (node 1), 20 (nodes 1 and 2: a collision),
 * 30 (node 3). Ranges: 0 = (30, max] U [0, 10], 1 = (10, 20], 2 = (20, 30]. */
static void test_hand_placed_ranges(void **state)
{
	(void)state;
	/* The colliding pair is given id-descending, and one pair twice, to
	 * show that the input order does not matter. */
	uint64_t tok[] = {30, 20, 10, 20, 30};
	uint64_t own[] = {3, 2, 1, 1, 3};
	struct ring *r;
	assert_int_equal(ring__build_tokens(&r, tok, own, 5), 0);
	assert_int_equal(ring_nodes(r), 3);
	assert_int_equal(ring_nranges(r), 3);
	assert_int_equal(ring_range_token(r, 0), 10);
	assert_int_equal(ring_range_token(r, 1), 20);
	assert_int_equal(ring_range_token(r, 2), 30);

	const struct {
		uint64_t hash;
		size_t range;
		uint64_t walk[3];
	} cases[] = {
	    {0, 0, {1, 2, 3}},		/* the bottom of the circle */
	    {9, 0, {1, 2, 3}},		/* below the lowest token */
	    {10, 0, {1, 2, 3}},		/* exactly t_0: range 0 ends there */
	    {11, 1, {1, 2, 3}},		/* (20,1) sorts before (20,2) */
	    {20, 1, {1, 2, 3}},		/* the colliding token */
	    {21, 2, {3, 1, 2}},		/* just past it */
	    {30, 2, {3, 1, 2}},		/* the top token */
	    {31, 0, {1, 2, 3}},		/* past the top: wraps */
	    {UINT64_MAX, 0, {1, 2, 3}}, /* the top of the circle */
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint64_t out[3];
		assert_int_equal(ring_range_of(r, cases[c].hash), cases[c].range);
		assert_walk(out, ring_walk(r, cases[c].hash, 3, out), cases[c].walk, 3);
		assert_walk(out, ring_range_walk(r, cases[c].range, 3, out), cases[c].walk, 3);
	}
	/* A shorter walk is a prefix. */
	uint64_t out[3];
	assert_int_equal(ring_walk(r, 25, 1, out), 1);
	assert_int_equal(out[0], 3);
	assert_int_equal(ring_walk(r, 25, 0, out), 0);

	size_t i = 77;
	assert_int_equal(ring_range_find(r, 20, &i), 0);
	assert_int_equal(i, 1);
	i = 77;
	assert_int_equal(ring_range_find(r, 15, &i), SP_ERR_NOTFOUND);
	assert_int_equal(ring_range_find(r, 0, &i), SP_ERR_NOTFOUND);
	assert_int_equal(ring_range_find(r, UINT64_MAX, &i), SP_ERR_NOTFOUND);
	assert_int_equal(i, 77);
	ring_free(r);

	/* Tokens at both ends of the circle. */
	uint64_t tok2[] = {UINT64_MAX, 0};
	uint64_t own2[] = {2, 1};
	assert_int_equal(ring__build_tokens(&r, tok2, own2, 2), 0);
	assert_int_equal(ring_nranges(r), 2);
	assert_int_equal(ring_range_of(r, 0), 0);
	assert_int_equal(ring_range_of(r, 1), 1);
	assert_int_equal(ring_range_of(r, UINT64_MAX), 1);
	uint64_t w01[] = {1, 2}, w10[] = {2, 1};
	assert_walk(out, ring_walk(r, 0, 2, out), w01, 2);
	assert_walk(out, ring_walk(r, 1, 2, out), w10, 2);
	assert_walk(out, ring_walk(r, UINT64_MAX, 5, out), w10, 2);
	assert_int_equal(ring_range_find(r, UINT64_MAX, &i), 0);
	assert_int_equal(i, 1);
	ring_free(r);
}

/* The same ids in any order build the same ring: same ranges, same walk
 * from every range. */
static void test_determinism(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "determinism");
	for (int round = 0; round < 20; round++) {
		size_t n = 1 + (size_t)tu_rnd(&rng, MAXN);
		unsigned vn = 1 + (unsigned)tu_rnd(&rng, 40);
		uint64_t ids[MAXN], shuffled[MAXN];
		random_ids(&rng, ids, n);
		memcpy(shuffled, ids, sizeof(ids));
		for (size_t k = n; k > 1; k--) {
			size_t j = (size_t)tu_rnd(&rng, k);
			uint64_t t = shuffled[k - 1];
			shuffled[k - 1] = shuffled[j];
			shuffled[j] = t;
		}
		struct ring *a, *b;
		assert_int_equal(ring_build(&a, ids, n, vn), 0);
		assert_int_equal(ring_build(&b, shuffled, n, vn), 0);
		assert_int_equal(ring_nodes(a), n);
		assert_int_equal(ring_nodes(b), n);
		assert_int_equal(ring_nranges(a), ring_nranges(b));
		for (size_t i = 0; i < ring_nranges(a); i++) {
			uint64_t wa[MAXN], wb[MAXN];
			assert_int_equal(ring_range_token(a, i), ring_range_token(b, i));
			if (i > 0)
				assert_true(ring_range_token(a, i - 1) < ring_range_token(a, i));
			size_t na = ring_range_walk(a, i, MAXN, wa);
			assert_int_equal(na, n);
			assert_distinct(wa, na);
			assert_walk(wb, ring_range_walk(b, i, MAXN, wb), wa, na);
		}
		ring_free(a);
		ring_free(b);
	}
}

/* Every hash walks as its range does, and lies inside that range. */
static void test_walk_is_range_walk(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "walk_is_range_walk");
	uint64_t ids[5];
	random_ids(&rng, ids, 5);
	struct ring *r;
	assert_int_equal(ring_build(&r, ids, 5, RING_VNODES_DEFAULT), 0);
	size_t m = ring_nranges(r);
	assert_int_equal(m, 5 * RING_VNODES_DEFAULT); /* collisions: 2^-50 */

	uint64_t probes[20000];
	size_t np = 0;
	probes[np++] = 0;
	probes[np++] = UINT64_MAX;
	for (size_t i = 0; i < m; i++) {
		uint64_t t = ring_range_token(r, i);
		probes[np++] = t;
		probes[np++] = t - 1;
		probes[np++] = t + 1;
	}
	while (np < sizeof(probes) / sizeof(probes[0]))
		probes[np++] = tu_splitmix(&rng);

	for (size_t p = 0; p < np; p++) {
		uint64_t h = probes[p];
		size_t i = ring_range_of(r, h);
		assert_true(i < m);
		uint64_t t = ring_range_token(r, i);
		if (i > 0)
			assert_true(ring_range_token(r, i - 1) < h && h <= t);
		else
			assert_true(h <= t || h > ring_range_token(r, m - 1));
		for (unsigned want = 1; want <= 6; want++) {
			uint64_t w[6], rw[6];
			size_t n = ring_walk(r, h, want, w);
			assert_int_equal(n, want < 5 ? want : 5);
			assert_distinct(w, n);
			assert_walk(rw, ring_range_walk(r, i, want, rw), w, n);
		}
	}
	ring_free(r);
}

/* With 5 nodes of 64 vnodes each and rf = 3, every node should replicate
 * about 3/5 of the keys. */
static void test_balance(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "balance");
	/* Fixed ids keep the check free of chance in the ring itself; the
	 * keys are random. Node ids as a deployment might number them. */
	const uint64_t ids[5] = {1, 2, 3, 4, 5};
	struct ring *r;
	assert_int_equal(ring_build(&r, ids, 5, RING_VNODES_DEFAULT), 0);
	const unsigned nkeys = 200000, rf = 3;
	unsigned held[5] = {0}, primary[5] = {0};
	for (unsigned k = 0; k < nkeys; k++) {
		uint64_t pref[3];
		assert_int_equal(ring_walk(r, random_key_hash(&rng), rf, pref), rf);
		assert_distinct(pref, rf);
		for (unsigned j = 0; j < rf; j++)
			held[pref[j] - 1]++;
		primary[pref[0] - 1]++;
	}
	for (unsigned n = 0; n < 5; n++) {
		double share = (double)held[n] / nkeys;
		fprintf(stderr, "    node %u: replica of %.3f, primary of %.3f\n", n + 1, share,
			(double)primary[n] / nkeys);
		assert_true(share >= 0.45 && share <= 0.75);
	}
	ring_free(r);
}

/* Adding a sixth node moves about 1/6 of the primaries, and a key's new
 * preference list is its old one with at most the new node put in (and
 * the old list's last node pushed out). */
static void test_minimal_movement(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "minimal_movement");
	const uint64_t ids[6] = {1, 2, 3, 4, 5, 6};
	struct ring *before, *after;
	assert_int_equal(ring_build(&before, ids, 5, RING_VNODES_DEFAULT), 0);
	assert_int_equal(ring_build(&after, ids, 6, RING_VNODES_DEFAULT), 0);
	const unsigned nkeys = 200000, rf = 3;
	unsigned moved = 0, gained = 0;
	for (unsigned k = 0; k < nkeys; k++) {
		uint64_t h = random_key_hash(&rng), old[3], now[3], rest[3];
		assert_int_equal(ring_walk(before, h, rf, old), rf);
		assert_int_equal(ring_walk(after, h, rf, now), rf);
		moved += old[0] != now[0];
		/* now without node 6 must be a prefix of old, in order. */
		size_t nrest = 0;
		for (unsigned j = 0; j < rf; j++)
			if (now[j] != 6)
				rest[nrest++] = now[j];
		assert_true(nrest == rf || nrest == rf - 1);
		gained += nrest < rf;
		for (size_t j = 0; j < nrest; j++)
			assert_int_equal(rest[j], old[j]);
		if (old[0] != now[0])
			assert_int_equal(now[0], 6);
	}
	double share = (double)moved / nkeys;
	fprintf(stderr, "    primaries moved: %.3f; lists gaining node 6: %.3f\n", share,
		(double)gained / nkeys);
	assert_true(share > 0.08 && share < 0.25);
	ring_free(before);
	ring_free(after);
}

/* Asking for more nodes than the ring holds returns them all. */
static void test_want_more_than_nodes(void **state)
{
	(void)state;
	const uint64_t ids[3] = {42, 7, 1000};
	struct ring *r;
	assert_int_equal(ring_build(&r, ids, 3, 2), 0);
	uint64_t out[10];
	memset(out, 0xAB, sizeof(out));
	assert_int_equal(ring_walk(r, 12345, 10, out), 3);
	assert_distinct(out, 3);
	assert_int_equal(out[3], 0xABABABABABABABABull); /* nothing past the count */
	uint64_t sum = out[0] + out[1] + out[2];
	assert_int_equal(sum, 42 + 7 + 1000);
	ring_free(r);

	/* One node: every walk is that node. */
	assert_int_equal(ring_build(&r, ids, 1, 1), 0);
	assert_int_equal(ring_nranges(r), 1);
	assert_int_equal(ring_walk(r, 0, 3, out), 1);
	assert_int_equal(out[0], 42);
	assert_int_equal(ring_walk(r, UINT64_MAX, 3, out), 1);
	assert_int_equal(out[0], 42);
	ring_free(r);
}

int main(void)
{
	base_seed = tu_seed();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_build_rejects_bad_input),
	    cmocka_unit_test(test_token_rule),
	    cmocka_unit_test(test_hand_placed_ranges),
	    cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_walk_is_range_walk),
	    cmocka_unit_test(test_balance),
	    cmocka_unit_test(test_minimal_movement),
	    cmocka_unit_test(test_want_more_than_nodes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
