/*
 * merkle: per-range Merkle trees with XOR leaves. See merkle.h for the
 * hash definitions every replica must share.
 */
#include "engine/eventual/merkle.h"

#include <string.h>

/* The streaming XXH3 state lives on the stack, which needs its layout;
 * libxxhash-dev ships the header and the library as one version. */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "common/endian.h"

/* Fibonacci hashing's multiplier: 2^64 divided by the golden ratio, odd. */
#define LEAF_MULTIPLIER 0x9E3779B97F4A7C15ull
#define LEAF_SHIFT	58 /* 64 - log2(MERKLE_LEAVES) */

_Static_assert(MERKLE_LEAVES == 1u << (64 - LEAF_SHIFT), "leaf shift matches MERKLE_LEAVES");

void merkle_init(struct merkle_tree *t)
{
	memset(t, 0, sizeof(*t));
}

uint64_t merkle_item_hash(const void *key, size_t klen, uint8_t type, const void *state,
			  size_t slen)
{
	XXH3_state_t st;
	uint8_t len[8];
	XXH3_64bits_reset(&st);
	sp_put_le64(len, (uint64_t)klen);
	XXH3_64bits_update(&st, len, sizeof(len));
	if (klen > 0)
		XXH3_64bits_update(&st, key, klen);
	XXH3_64bits_update(&st, &type, 1);
	sp_put_le64(len, (uint64_t)slen);
	XXH3_64bits_update(&st, len, sizeof(len));
	if (slen > 0)
		XXH3_64bits_update(&st, state, slen);
	uint64_t h = XXH3_64bits_digest(&st);
	return h ? h : 1;
}

unsigned merkle_leaf_of(uint64_t key_hash)
{
	return (unsigned)((key_hash * LEAF_MULTIPLIER) >> LEAF_SHIFT);
}

void merkle_add(struct merkle_tree *t, uint64_t key_hash, uint64_t item_hash)
{
	t->leaf[merkle_leaf_of(key_hash)] ^= item_hash;
	t->count++;
}

void merkle_remove(struct merkle_tree *t, uint64_t key_hash, uint64_t item_hash)
{
	t->leaf[merkle_leaf_of(key_hash)] ^= item_hash;
	if (t->count > 0)
		t->count--;
}

/* parent hashes two children; an empty subtree (both 0) stays 0 so that
 * the root of an empty tree is 0. */
static uint64_t parent(uint64_t left, uint64_t right)
{
	if (left == 0 && right == 0)
		return 0;
	uint8_t b[16];
	sp_put_le64(b, left);
	sp_put_le64(b + 8, right);
	uint64_t h = XXH3_64bits(b, sizeof(b));
	return h ? h : 1;
}

uint64_t merkle_root(const struct merkle_tree *t)
{
	uint64_t level[MERKLE_LEAVES];
	memcpy(level, t->leaf, sizeof(level));
	for (unsigned n = MERKLE_LEAVES; n > 1; n /= 2)
		for (unsigned k = 0; k < n / 2; k++)
			level[k] = parent(level[2 * k], level[2 * k + 1]);
	return level[0];
}

unsigned merkle_diff(const struct merkle_tree *t, const uint64_t *other_leaves, unsigned *out)
{
	unsigned n = 0;
	for (unsigned k = 0; k < MERKLE_LEAVES; k++)
		if (t->leaf[k] != other_leaves[k])
			out[n++] = k;
	return n;
}
