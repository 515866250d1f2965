/*
 * vclock: vector clocks for the causal engine (Lamport 1978; Fidge 1988,
 * Mattern 1989), their order, merge, and their wire and token forms.
 *
 * A clock maps a node id (uint64, non-zero) to a count (uint64, > 0); a node
 * that is absent has count 0. The entries live inline in the struct, sorted
 * by node ascending, at most VCLOCK_MAX of them, so a clock needs no
 * allocation and copies with `=`. Pure: no I/O, no clock, no globals, no
 * allocation except through the caller's sp_buf. It must not know about
 * keys, replicas or sessions: the causal engine decides what a count means.
 * Decoding reads bytes from peers and clients, so it never reads past its
 * input and refuses anything but the one canonical encoding of a clock.
 */
#ifndef SP_ENGINE_CAUSAL_VCLOCK_H
#define SP_ENGINE_CAUSAL_VCLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* The most distinct nodes one clock holds. */
#define VCLOCK_MAX 64

/* The longest encoding of a clock: a 1-byte count, then per entry two
 * varints of at most 10 bytes each. */
#define VCLOCK_ENCODED_MAX (1 + VCLOCK_MAX * 20)

struct vclock_entry {
	uint64_t node;	/* non-zero */
	uint64_t count; /* > 0 */
};

/* Invariant (every function keeps it and may assume it of its inputs):
 * n <= VCLOCK_MAX, e[0..n) sorted by node strictly ascending, every node
 * non-zero and every count > 0. Entries at e[n..) are unspecified. */
struct vclock {
	uint32_t n;
	struct vclock_entry e[VCLOCK_MAX];
};

/* How two clocks relate: a BEFORE b means a happened before b (a <= b
 * pointwise and a != b); CONCURRENT means neither covers the other. */
enum vclock_order {
	VCLOCK_EQUAL,
	VCLOCK_BEFORE,
	VCLOCK_AFTER,
	VCLOCK_CONCURRENT,
};

/*
 * vclock_init makes v the empty clock (every count 0).
 * v: caller-owned storage, overwritten.
 */
void vclock_init(struct vclock *v);

/*
 * vclock_get returns node's count in v, 0 when v has no entry for node
 * (including node 0). v is borrowed for the call.
 */
uint64_t vclock_get(const struct vclock *v, uint64_t node);

/*
 * vclock_set sets node's count in v to count; a count of 0 removes node's
 * entry (a no-op if it has none).
 * v: the clock to change, borrowed for the call.
 * node: the node id; must be non-zero.
 * count: the new count, any value.
 * Returns 0, or:
 *   SP_ERR_INVAL  node is 0 (v unchanged);
 *   SP_ERR_FULL   node is new, count > 0 and v already has VCLOCK_MAX
 *                 entries (v unchanged).
 */
int vclock_set(struct vclock *v, uint64_t node, uint64_t count);

/*
 * vclock_increment adds one to node's count in v (an absent node goes to
 * 1): the step a node takes for each event it originates.
 * v: the clock to change, borrowed for the call.
 * node: the node id; must be non-zero.
 * out: receives the new count on success; may be NULL; untouched on error.
 * Returns 0, or (v unchanged in every case):
 *   SP_ERR_INVAL  node is 0;
 *   SP_ERR_RANGE  node's count is already UINT64_MAX;
 *   SP_ERR_FULL   node is new and v already has VCLOCK_MAX entries.
 */
int vclock_increment(struct vclock *v, uint64_t node, uint64_t *out);

/*
 * vclock_merge sets into to the pointwise maximum of into and other, the
 * least clock that covers both (the join of the lattice).
 * into: the clock to change, borrowed for the call.
 * other: borrowed for the call; may be the same object as into.
 * Returns 0, or:
 *   SP_ERR_FULL   the result would have more than VCLOCK_MAX entries
 *                 (into unchanged).
 */
int vclock_merge(struct vclock *into, const struct vclock *other);

/*
 * vclock_compare returns how a relates to b: EQUAL when every count is
 * the same, BEFORE when a <= b pointwise and a != b, AFTER when b <= a
 * pointwise and a != b, CONCURRENT otherwise. Both are borrowed for the
 * call. Never fails.
 */
enum vclock_order vclock_compare(const struct vclock *a, const struct vclock *b);

/*
 * vclock_covers returns true when a >= b pointwise, i.e. every entry of b
 * has a count no greater than a's count for that node: whoever has seen a
 * has seen everything b names. Every clock covers the empty clock and
 * itself. Both are borrowed for the call.
 */
bool vclock_covers(const struct vclock *a, const struct vclock *b);

/*
 * vclock_order_name returns "equal", "before", "after" or "concurrent" for
 * o, and "invalid" for any other value. The string is static; do not free.
 */
const char *vclock_order_name(enum vclock_order o);

/*
 * Binary encoding: varint(n), then for each entry in node order
 * varint(node - previous node) (the first entry: varint(node)) and
 * varint(count). A varint is unsigned LEB128: 7 bits per byte, least
 * significant group first, high bit set on every byte but the last, at
 * most 10 bytes. Every clock has exactly one encoding, so equal clocks
 * encode to equal bytes and a decoder can insist on it; the empty clock is
 * the single byte 0x00. At most VCLOCK_ENCODED_MAX bytes.
 */

/*
 * vclock_encode appends v's encoding to out. v is borrowed for the call;
 * out is the caller's buffer, which grows as needed. Never fails.
 */
void vclock_encode(const struct vclock *v, struct sp_buf *out);

/*
 * vclock_decode reads one clock's encoding from the front of p[0..len);
 * bytes after it are left for the caller.
 * p: the input, borrowed for the call; may be NULL when len is 0.
 * out: receives the clock on success; untouched on error.
 * used: receives the number of bytes the encoding took on success; may be
 *       NULL; untouched on error.
 * Returns 0, or:
 *   SP_ERR_PROTO  the input is not a canonical encoding: it ends early, a
 *                 varint is overlong (a needless 0x80/0x00 group) or over
 *                 64 bits, n > VCLOCK_MAX, the first node is 0, a later
 *                 delta is 0, a count is 0, or a node passes UINT64_MAX.
 */
int vclock_decode(const uint8_t *p, size_t len, struct vclock *out, size_t *used);

/*
 * Session tokens carry a clock as text: "v1." then the encoding in
 * lowercase hex (two digits per byte), nothing before or after.
 */

/*
 * vclock_to_token appends v's token to out, without a NUL terminator.
 * v is borrowed for the call; out is the caller's buffer. Never fails.
 */
void vclock_to_token(const struct vclock *v, struct sp_buf *out);

/*
 * vclock_from_token parses a whole token.
 * s, len: the token's bytes, borrowed for the call; need not be
 *         NUL-terminated; s may be NULL when len is 0.
 * out: receives the clock on success; untouched on error.
 * Returns 0, or:
 *   SP_ERR_PROTO  s[0..len) is not exactly the token vclock_to_token
 *                 writes for some clock: wrong prefix, an odd number of
 *                 hex digits, uppercase or non-hex characters, an encoding
 *                 vclock_decode refuses, or bytes after the encoding.
 */
int vclock_from_token(const char *s, size_t len, struct vclock *out);

/*
 * vclock_format appends v as text for logs and traces, "{1:5,3:2}" (node
 * and count in decimal, node order; "{}" when empty), without a NUL
 * terminator. v is borrowed for the call; out is the caller's buffer.
 * Never fails.
 */
void vclock_format(const struct vclock *v, struct sp_buf *out);

#endif
