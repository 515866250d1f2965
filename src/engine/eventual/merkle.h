/*
 * merkle: the per-range Merkle trees that anti-entropy compares (Dynamo
 * §4.7), kept up to date on every write rather than rebuilt by scanning.
 *
 * Each ring range (ring.h) has one tree. A key falls into one of
 * MERKLE_LEAVES leaves by its ring hash; a leaf's hash is the XOR of the
 * hashes of its items (key, type and state), so a write changes it in O(1):
 * XOR the key's old item hash out and its new one in, and the result does
 * not depend on the order of writes. Internal nodes hash their two
 * children. Two replicas of a range compare roots; when they differ, they
 * compare the 64 leaves and exchange only the keys of the leaves that
 * differ.
 *
 * All hashes are XXH3 (libxxhash), little-endian where integers are
 * hashed, as defined below, so that every replica agrees. The module is
 * pure: no I/O, no clock, no globals, no allocation. It must not know
 * how items are stored: the caller hands it hashes.
 */
#ifndef SP_ENGINE_EVENTUAL_MERKLE_H
#define SP_ENGINE_EVENTUAL_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define MERKLE_LEAVES 64

struct merkle_tree {
	uint64_t leaf[MERKLE_LEAVES]; /* XOR of the item hashes of each leaf */
	uint64_t count;		      /* items in the tree, for stats */
};

/* merkle_init empties a tree: every leaf 0, count 0. */
void merkle_init(struct merkle_tree *t);

/*
 * merkle_item_hash returns the hash of one item: XXH3_64bits of the bytes
 *     le64(klen) | key[klen] | type | le64(slen) | state[slen]
 * (lengths included, so two items whose key and state bytes concatenate
 * alike still differ), except that a result of 0 becomes 1, so a leaf
 * holding items is 0 only by a chance of 2^-64. key and state are borrowed
 * for the call and may be NULL when their length is 0. Cannot fail.
 */
uint64_t merkle_item_hash(const void *key, size_t klen, uint8_t type, const void *state,
			  size_t slen);

/*
 * merkle_leaf_of returns the leaf (0..MERKLE_LEAVES-1) of a key from its
 * ring hash (ring_key_hash): the top 6 bits of
 * key_hash * 0x9E3779B97F4A7C15 (mod 2^64). A range covers one interval of
 * ring hashes, so the top bits of the hash itself would put all its keys in
 * a few leaves; the multiplication brings the hash's low bits, which vary
 * freely inside the interval, up to the top.
 */
unsigned merkle_leaf_of(uint64_t key_hash);

/* merkle_add puts an item into t: XORs item_hash into the leaf of
 * key_hash and counts it. */
void merkle_add(struct merkle_tree *t, uint64_t key_hash, uint64_t item_hash);

/* merkle_remove takes an item out of t: XORs item_hash out of the leaf of
 * key_hash and uncounts it. The item must have been added (the leaf is
 * wrong otherwise); count stays at 0 rather than wrapping. An update is a
 * remove of the old item hash and an add of the new one. */
void merkle_remove(struct merkle_tree *t, uint64_t key_hash, uint64_t item_hash);

/*
 * merkle_root returns the tree's root, computed bottom-up: the 64 leaves,
 * then 32 nodes, ... 1, each node the hash of its children (2k, 2k+1) at
 * the level below: 0 when both children are 0, else XXH3_64bits of
 * le64(left) | le64(right) with a 0 result made 1. So the root of an empty
 * tree is 0, and a root is 0 only when every leaf is. O(MERKLE_LEAVES).
 */
uint64_t merkle_root(const struct merkle_tree *t);

/*
 * merkle_diff lists the leaves whose hashes differ between t and another
 * replica's leaves (other_leaves: MERKLE_LEAVES hashes, borrowed), in
 * ascending order, into out (room for MERKLE_LEAVES indexes). Returns how
 * many it wrote.
 */
unsigned merkle_diff(const struct merkle_tree *t, const uint64_t *other_leaves, unsigned *out);

#endif
