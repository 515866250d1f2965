/*
 * test_merkle: per-range Merkle trees. The item hash against its
 * documented byte layout, order independence, add/remove inverses, one
 * change showing as one differing leaf, the empty root, and how keys of
 * one narrow ring range spread over the leaves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "../lib/testutil.h"
#include "common/endian.h"
#include "engine/eventual/merkle.h"
#include "engine/eventual/ring.h"

static uint64_t base_seed;

struct item {
	uint64_t key_hash;
	uint64_t item_hash;
};

/* random_items makes n items from random keys and states, hashed the way
 * the engine would hash them. */
static void random_items(uint64_t *rng, struct item *it, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		uint8_t key[12], st[20];
		size_t klen = 1 + (size_t)tu_rnd(rng, sizeof(key));
		size_t slen = (size_t)tu_rnd(rng, sizeof(st) + 1);
		for (size_t j = 0; j < sizeof(key); j++)
			key[j] = (uint8_t)tu_splitmix(rng);
		for (size_t j = 0; j < sizeof(st); j++)
			st[j] = (uint8_t)tu_splitmix(rng);
		it[k].key_hash = ring_key_hash(key, klen);
		it[k].item_hash = merkle_item_hash(key, klen, (uint8_t)tu_rnd(rng, 8), st, slen);
	}
}

static void shuffle(uint64_t *rng, struct item *it, size_t n)
{
	for (size_t k = n; k > 1; k--) {
		size_t j = (size_t)tu_rnd(rng, k);
		struct item t = it[k - 1];
		it[k - 1] = it[j];
		it[j] = t;
	}
}

/* The item hash is exactly XXH3 over the layout merkle.h documents, and
 * moving bytes between key and state, or changing the type, changes it. */
static void test_item_hash_layout(void **state)
{
	(void)state;
	uint8_t buf[64];
	size_t n = 0;
	sp_put_le64(buf + n, 5);
	n += 8;
	memcpy(buf + n, "model", 5);
	n += 5;
	buf[n++] = 3;
	sp_put_le64(buf + n, 4);
	n += 8;
	memcpy(buf + n, "v1.2", 4);
	n += 4;
	uint64_t want = XXH3_64bits(buf, n);
	assert_int_equal(merkle_item_hash("model", 5, 3, "v1.2", 4), want ? want : 1);

	uint64_t a = merkle_item_hash("ab", 2, 0, "c", 1);
	uint64_t b = merkle_item_hash("a", 1, 0, "bc", 2);
	uint64_t c = merkle_item_hash("ab", 2, 1, "c", 1);
	assert_int_not_equal(a, b);
	assert_int_not_equal(a, c);
	assert_int_not_equal(merkle_item_hash("k", 1, 0, NULL, 0), 0);
	assert_int_equal(merkle_item_hash("k", 1, 0, NULL, 0), merkle_item_hash("k", 1, 0, "x", 0));
}

static void test_empty_root(void **state)
{
	(void)state;
	struct merkle_tree t;
	memset(&t, 0xAA, sizeof(t));
	merkle_init(&t);
	assert_int_equal(t.count, 0);
	for (unsigned k = 0; k < MERKLE_LEAVES; k++)
		assert_int_equal(t.leaf[k], 0);
	assert_int_equal(merkle_root(&t), 0);
	merkle_add(&t, 12345, 777);
	assert_int_not_equal(merkle_root(&t), 0);
	merkle_remove(&t, 12345, 777);
	assert_int_equal(merkle_root(&t), 0);
	assert_int_equal(t.count, 0);
	merkle_remove(&t, 12345, 777); /* a caller's bug: the count stays at 0 */
	assert_int_equal(t.count, 0);
}

/* The root mixes the leaves in order: the same leaf values in other
 * places give another root, and it is a function of the leaves alone. */
static void test_root_depends_on_position(void **state)
{
	(void)state;
	struct merkle_tree a, b;
	merkle_init(&a);
	merkle_init(&b);
	a.leaf[0] = 1;
	a.leaf[1] = 2;
	b.leaf[0] = 2;
	b.leaf[1] = 1;
	assert_int_not_equal(merkle_root(&a), merkle_root(&b));
	b.leaf[0] = 1;
	b.leaf[1] = 2;
	b.count = 99; /* stats only */
	assert_int_equal(merkle_root(&a), merkle_root(&b));
	merkle_init(&a);
	a.leaf[MERKLE_LEAVES - 1] = 1;
	assert_int_not_equal(merkle_root(&a), 0);
}

/* The same items in any order give the same leaves and root. */
static void test_order_independence(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "order_independence");
	static struct item it[5000];
	for (int round = 0; round < 10; round++) {
		size_t n = 1 + (size_t)tu_rnd(&rng, 5000);
		random_items(&rng, it, n);
		struct merkle_tree a, b;
		merkle_init(&a);
		merkle_init(&b);
		for (size_t k = 0; k < n; k++)
			merkle_add(&a, it[k].key_hash, it[k].item_hash);
		shuffle(&rng, it, n);
		for (size_t k = 0; k < n; k++)
			merkle_add(&b, it[k].key_hash, it[k].item_hash);
		assert_int_equal(a.count, n);
		assert_int_equal(b.count, n);
		assert_memory_equal(a.leaf, b.leaf, sizeof(a.leaf));
		assert_int_equal(merkle_root(&a), merkle_root(&b));
		unsigned diff[MERKLE_LEAVES];
		assert_int_equal(merkle_diff(&a, b.leaf, diff), 0);
	}
}

/* Adding items and removing them again, in any order, restores the root. */
static void test_add_remove_restores(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "add_remove");
	static struct item base[1000], extra[500];
	random_items(&rng, base, 1000);
	random_items(&rng, extra, 500);
	struct merkle_tree t;
	merkle_init(&t);
	for (size_t k = 0; k < 1000; k++)
		merkle_add(&t, base[k].key_hash, base[k].item_hash);
	uint64_t root = merkle_root(&t);
	struct merkle_tree saved = t;
	for (size_t k = 0; k < 500; k++) {
		merkle_add(&t, extra[k].key_hash, extra[k].item_hash);
		assert_int_not_equal(merkle_root(&t), root);
	}
	shuffle(&rng, extra, 500);
	for (size_t k = 0; k < 500; k++)
		merkle_remove(&t, extra[k].key_hash, extra[k].item_hash);
	assert_int_equal(merkle_root(&t), root);
	assert_memory_equal(&t, &saved, sizeof(t));
}

/* Two replicas agree but for one key's state: the roots differ, and the
 * leaves differ in exactly that key's leaf. */
static void test_one_change_one_leaf(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "one_change");
	static struct item it[3000];
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + (size_t)tu_rnd(&rng, 3000);
		random_items(&rng, it, n);
		struct merkle_tree a, b;
		merkle_init(&a);
		merkle_init(&b);
		for (size_t k = 0; k < n; k++) {
			merkle_add(&a, it[k].key_hash, it[k].item_hash);
			merkle_add(&b, it[k].key_hash, it[k].item_hash);
		}
		unsigned diff[MERKLE_LEAVES];
		assert_int_equal(merkle_root(&a), merkle_root(&b));
		assert_int_equal(merkle_diff(&a, b.leaf, diff), 0);

		/* b takes a newer write to item j. */
		size_t j = (size_t)tu_rnd(&rng, n);
		uint64_t v = tu_splitmix(&rng);
		uint64_t newer = merkle_item_hash("key", 3, 0, &v, sizeof(v));
		merkle_remove(&b, it[j].key_hash, it[j].item_hash);
		merkle_add(&b, it[j].key_hash, newer);
		assert_int_equal(b.count, n);
		assert_int_not_equal(merkle_root(&a), merkle_root(&b));
		assert_int_equal(merkle_diff(&a, b.leaf, diff), 1);
		assert_int_equal(diff[0], merkle_leaf_of(it[j].key_hash));
		assert_int_equal(merkle_diff(&b, a.leaf, diff), 1);
		assert_int_equal(diff[0], merkle_leaf_of(it[j].key_hash));
	}
}

static void test_diff_lists_ascending(void **state)
{
	(void)state;
	struct merkle_tree t;
	merkle_init(&t);
	uint64_t other[MERKLE_LEAVES] = {0};
	other[3] = 1;
	other[40] = 2;
	other[63] = 3;
	t.leaf[0] = 4;
	unsigned diff[MERKLE_LEAVES];
	assert_int_equal(merkle_diff(&t, other, diff), 4);
	assert_int_equal(diff[0], 0);
	assert_int_equal(diff[1], 3);
	assert_int_equal(diff[2], 40);
	assert_int_equal(diff[3], 63);
	for (unsigned k = 0; k < MERKLE_LEAVES; k++)
		other[k] = t.leaf[k] + 1;
	assert_int_equal(merkle_diff(&t, other, diff), MERKLE_LEAVES);
	assert_int_equal(diff[MERKLE_LEAVES - 1], MERKLE_LEAVES - 1);
}

/* 64k keys fill every leaf, evenly; also when their ring hashes all fall
 * in one narrow range, as a range's keys do (5 x 64 tokens make a range
 * about 2^56 wide; 2^50 is narrower still). */
static void test_leaf_distribution(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "leaf_distribution");
	const unsigned nkeys = 65536, per = nkeys / MERKLE_LEAVES;
	for (int narrow = 0; narrow < 2; narrow++) {
		unsigned fill[MERKLE_LEAVES] = {0};
		uint64_t base = tu_splitmix(&rng);
		for (unsigned k = 0; k < nkeys; k++) {
			uint8_t key[8];
			sp_put_le64(key, tu_splitmix(&rng));
			uint64_t h = ring_key_hash(key, sizeof(key));
			if (narrow)
				h = base + (h >> 14);
			unsigned leaf = merkle_leaf_of(h);
			assert_true(leaf < MERKLE_LEAVES);
			fill[leaf]++;
		}
		for (unsigned l = 0; l < MERKLE_LEAVES; l++) {
			/* Expected 1024 a leaf, standard deviation about 32. */
			if (fill[l] < per / 2 || fill[l] > per * 3 / 2)
				fail_msg("%s keys: leaf %u holds %u of %u",
					 narrow ? "narrow" : "all", l, fill[l], nkeys);
		}
	}
	/* The documented formula. */
	assert_int_equal(merkle_leaf_of(0), 0);
	assert_int_equal(merkle_leaf_of(1), 0x9E3779B97F4A7C15ull >> 58);
	assert_int_equal(merkle_leaf_of(UINT64_MAX), (0ull - 0x9E3779B97F4A7C15ull) >> 58);
}

int main(void)
{
	base_seed = tu_seed();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_item_hash_layout),
	    cmocka_unit_test(test_empty_root),
	    cmocka_unit_test(test_root_depends_on_position),
	    cmocka_unit_test(test_order_independence),
	    cmocka_unit_test(test_add_remove_restores),
	    cmocka_unit_test(test_one_change_one_leaf),
	    cmocka_unit_test(test_diff_lists_ascending),
	    cmocka_unit_test(test_leaf_distribution),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
