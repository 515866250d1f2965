/*
 * ring: the consistent-hash ring of the eventual engine (Dynamo §4.2,
 * with Cassandra's virtual nodes): which replicas hold a key.
 *
 * Every node owns `vnodes` tokens, points on a 64-bit circle. A key hashes
 * to a point; walking clockwise from it, the first rf distinct nodes met
 * are the key's preference list and the ones after them its fallbacks
 * (where hinted handoff parks writes for a replica that is down). Because
 * a node's tokens come from its id alone, every node that knows the same
 * member ids builds the same ring with no coordination, and adding a node
 * moves only the keys that its new tokens take over.
 *
 * The ring is cut into ranges, one per distinct token; all the keys of one
 * range share one walk, so a range is the unit that anti-entropy compares
 * (one Merkle tree per range, see merkle.h) and that a range's token names
 * across nodes.
 *
 * Token j (0 <= j < vnodes) of node id is
 *     XXH3_64bits_withSeed(le64(id), 8, (uint64_t)j)
 * where le64(id) is the 8 bytes of id in little-endian order; a key's
 * point is XXH3_64bits(key bytes). Tokens sort by value, and equal tokens
 * (of two nodes or of one) by node id, so the order is total and two
 * implementations of this paragraph agree on every walk.
 *
 * It is pure: no I/O, no clock, no globals. A built ring is immutable, so
 * any number of readers may share it; membership changes build a new one.
 * It must not know about liveness: skipping nodes that are down is the
 * caller's business (walk further and use the fallbacks).
 */
#ifndef SP_ENGINE_EVENTUAL_RING_H
#define SP_ENGINE_EVENTUAL_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_VNODES_DEFAULT 64

struct ring;

/*
 * ring_build builds the ring of the n nodes whose ids are ids[0..n-1] (any
 * order; the result does not depend on it), each owning `vnodes` tokens as
 * the header describes.
 *
 *   out     receives the ring; set to NULL on error.
 *   ids     n distinct, non-zero node ids; borrowed for the call.
 *   n       number of nodes, at least 1.
 *   vnodes  tokens per node, at least 1 (RING_VNODES_DEFAULT is usual).
 *
 * Returns 0, or SP_ERR_INVAL when n is 0, vnodes is 0, an id is 0 or
 * appears twice, or n * vnodes does not fit in size_t. Out of memory
 * aborts (sp_malloc). The ring is owned by the caller; release it with
 * ring_free.
 */
int ring_build(struct ring **out, const uint64_t *ids, size_t n, unsigned vnodes);

/* ring_free releases a ring built by ring_build. Accepts NULL. */
void ring_free(struct ring *r);

/* ring_key_hash returns a key's point on the ring: XXH3_64bits of its len
 * bytes (key is borrowed for the call; it may be NULL when len is 0). */
uint64_t ring_key_hash(const void *key, size_t len);

/* ring_nodes returns how many distinct nodes the ring holds. */
size_t ring_nodes(const struct ring *r);

/*
 * ring_walk lists the first `want` distinct nodes met walking clockwise
 * from the first token >= hash, wrapping past 2^64-1 to the lowest token.
 * The first rf of them are the preference list of a key with that hash,
 * in order (the first is its primary); the ones after are its fallbacks.
 *
 *   r     the ring; borrowed.
 *   hash  the key's point (ring_key_hash).
 *   want  how many nodes the caller wants; 0 is allowed.
 *   out   room for min(want, ring_nodes(r)) ids, filled in walk order.
 *
 * Returns how many ids were written: min(want, ring_nodes(r)). Cannot
 * fail. Cost: O(log m) to find the start plus one step per token passed,
 * each step O(ids written so far).
 */
size_t ring_walk(const struct ring *r, uint64_t hash, unsigned want, uint64_t *out);

/*
 * Ranges. Let t_0 < t_1 < ... < t_{m-1} be the ring's distinct token
 * values. Range i is (t_{i-1}, t_i] for i > 0, and range 0 wraps:
 * (t_{m-1}, 2^64-1] U [0, t_0]. Every hash falls in exactly one range, and
 * all the hashes of one range have the same walk (so the same preference
 * list). Range indexes are local to one built ring; a range's token
 * t_i is what names it to another node that built the same ring.
 */

/* ring_nranges returns m, the number of ranges (distinct tokens). */
size_t ring_nranges(const struct ring *r);

/* ring_range_of returns the index of the range that holds hash, in
 * O(log m). */
size_t ring_range_of(const struct ring *r, uint64_t hash);

/* ring_range_token returns t_i, the token that ends range i; i must be
 * below ring_nranges(r) (asserted). */
uint64_t ring_range_token(const struct ring *r, size_t i);

/* ring_range_walk is ring_walk for every hash of range i (i below
 * ring_nranges(r), asserted): same parameters, result and cost. */
size_t ring_range_walk(const struct ring *r, size_t i, unsigned want, uint64_t *out);

/*
 * ring_range_find looks up the range whose token is t (as named by
 * another node). Sets *i to its index and returns 0, or returns
 * SP_ERR_NOTFOUND, leaving *i untouched, when no range ends at t (the
 * two nodes do not share a ring). O(log m).
 */
int ring_range_find(const struct ring *r, uint64_t t, size_t *i);

/*
 * ring__build_tokens is for tests and tools only: it builds a ring from m
 * explicit (tokens[k], owners[k]) pairs instead of deriving tokens from
 * ids, so a test can place tokens by hand (collisions included). Same
 * ordering rules, results and ownership as ring_build; returns
 * SP_ERR_INVAL when m is 0 or an owner is 0. A (token, owner) pair given
 * twice is kept once. tokens and owners are borrowed for the call.
 */
int ring__build_tokens(struct ring **out, const uint64_t *tokens, const uint64_t *owners, size_t m);

#endif
