/*
 * crdt: spectra's conflict-free replicated data types, as pure functions
 * over byte strings.
 *
 * Every value kind a weak keyspace may hold -- G-Counter, PN-Counter,
 * G-Set, 2P-Set, OR-Set, LWW-Register, MV-Register (Shapiro et al. 2011,
 * "A comprehensive study of Convergent and Commutative Replicated Data
 * Types"), and the feature record, a map of bounded, event-time-keyed
 * LWW histories -- is kept by the engines as an opaque *state*: a byte string
 * tagged, outside it, by a type byte (enum crdt_type). This module reads,
 * merges and updates those strings. It must not do I/O, read a clock, log,
 * or keep global state: it is a set of pure functions, tested by
 * properties (merge is commutative, associative and idempotent).
 *
 * Canonical states. Two states that are equal as CRDT states have
 * byte-identical encodings (entries sorted, no duplicates, no entries that
 * mean nothing), so equality is memcmp() of the bytes and of the lengths:
 * there is no equality function. The empty string (len 0) is every type's
 * bottom state (zero counter, empty set, unset register); no other
 * encoding means bottom. Every function that reads a state checks that it
 * is a canonical state of its type and returns SP_ERR_CORRUPT when it is
 * not; no input makes a function read out of bounds.
 *
 * Byte layout. Integers are fixed-width little-endian: u8, u32, u64.
 * "bytes" is a member or a value, of the length just before it. "Byte
 * order" of two byte strings is memcmp over their common prefix, then the
 * shorter first. A VV (version vector, the causal context of Bieniusa et
 * al. 2012) is "u32 n | n x (u64 actor | u64 counter)", actors strictly
 * ascending and non-zero, counters non-zero, n >= 1. A dot (actor,
 * counter) is covered by a VV when counter <= VV[actor] (0 if absent).
 *
 *   gcounter   (u64 actor | u64 count)*
 *              actors strictly ascending, non-zero; 1 <= count <= INT64_MAX
 *   pncounter  (u64 actor | u64 p | u64 n)*
 *              actors strictly ascending, non-zero; p, n <= INT64_MAX and
 *              not both 0 (P and N are two G-Counters stored side by side)
 *   gset       (u32 len | bytes)*
 *              members strictly ascending in byte order
 *   2pset      (u8 status | u32 len | bytes)*
 *              members strictly ascending; status 1 = live (in A, not in
 *              R), 2 = removed (in R; whether it was ever added no longer
 *              matters, so it is not kept)
 *   orset      VV | (u32 len | bytes | u32 ndots | ndots x (u64 actor |
 *              u64 counter))*
 *              members strictly ascending, ndots >= 1, a member's dots
 *              strictly ascending by actor (one dot per actor), every dot
 *              covered by the state's own VV
 *   lww        u64 ts | u64 node | u8 flags | bytes (to the end)
 *              node non-zero; flags bit 0 = tombstone, other bits 0; a
 *              tombstone has no value bytes
 *   mvreg      VV | (u64 actor | u64 counter | u32 len | bytes)*
 *              siblings strictly ascending by actor (one per actor),
 *              every dot covered by the state's own VV
 *   fvec       u32 history | (u32 flen | field | u32 n | n x (u64 event_ms |
 *              u64 ts | u64 node | u32 vlen | value))*
 *              history >= 1, at least one field (a record without fields
 *              is bottom, spelled only as the empty string); fields
 *              strictly ascending in byte order, flen >= 1; 1 <= n <=
 *              history; a field's entries strictly descending by event_ms;
 *              node non-zero
 *
 * Common rules for the functions below. A state argument (s, len) is
 * borrowed for the call; s may be NULL when len is 0. Functions that
 * produce a state append the new canonical state to `out` (caller-owned,
 * not cleared first) and never modify their inputs; on any error they
 * leave out's contents as they were. No input may point into out's
 * memory (appending may move it). Actor and node ids are non-zero; 0 is
 * SP_ERR_INVAL. A `lim` argument may be NULL, meaning no limits; a 0 in
 * any field of struct crdt_limits also means no limit. Limits are checked
 * only by operations: merge never fails on them.
 */
#ifndef SP_CRDT_CRDT_H
#define SP_CRDT_CRDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum crdt_type {
	CRDT_GCOUNTER = 1,
	CRDT_PNCOUNTER = 2,
	CRDT_GSET = 3,
	CRDT_2PSET = 4,
	CRDT_ORSET = 5,
	CRDT_LWW = 6,
	CRDT_MVREG = 7,
	CRDT_FVEC = 8,
};
#define CRDT_TYPE_MAX 8

/* Fixed part of an LWW state: ts, node and flags. */
#define CRDT_LWW_HDR_LEN 17

struct crdt_limits {
	uint32_t max_members;	 /* sets: most members a state may hold (0 = no limit);
				    see each set's add for what counts */
	uint32_t max_siblings;	 /* mvreg: most concurrent values (0 = no limit); checked
				    by the caller with crdt_mvreg_count */
	uint32_t max_member_len; /* longest member / value in bytes (0 = no limit) */
};

/*
 * crdt_member_fn receives one member (sets) or one value (MV-Register);
 * m is borrowed from the state for the call only and is never NULL, even
 * when mlen is 0. Returning non-zero stops the walk.
 */
typedef int (*crdt_member_fn)(void *ctx, const uint8_t *m, size_t mlen);

/* crdt_type_name: "gcounter", "pncounter", "gset", "2pset", "orset",
 * "lww", "mvreg", "fvec", or NULL for an unknown type. The string is
 * static. */
const char *crdt_type_name(uint8_t type);

/* ---------------------------------------------------------------------- */
/* Every type                                                              */

/*
 * crdt_validate checks that s[0..len) is a canonical state of `type`.
 * Returns 0, SP_ERR_CORRUPT (not a canonical state), or SP_ERR_INVAL
 * (unknown type). s is borrowed for the call.
 */
int crdt_validate(uint8_t type, const uint8_t *s, size_t len);

/*
 * crdt_merge appends to out the join (least upper bound) of states a and b
 * of `type`: commutative, associative and idempotent, so replicas that
 * exchange states in any order, with duplicates, converge to the same
 * bytes. It never fails on limits. Returns 0, SP_ERR_CORRUPT (a or b is
 * not a canonical state; out unchanged), or SP_ERR_INVAL (unknown type).
 * a and b are borrowed for the call and may be the same bytes.
 */
int crdt_merge(uint8_t type, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
	       struct sp_buf *out);

/*
 * crdt_describe appends a one-line, human-readable description of the
 * state for DEBUG output, e.g. "pncounter p={1:5,2:3} n={1:1}". Members
 * and values are quoted with non-printable bytes escaped as \xNN; long
 * ones and long lists are cut short with "...". Returns 0, SP_ERR_CORRUPT
 * or SP_ERR_INVAL (unknown type); out is unchanged on error.
 */
int crdt_describe(uint8_t type, const uint8_t *s, size_t len, struct sp_buf *out);

/* ---------------------------------------------------------------------- */
/* G-Counter: per-actor counts; value = sum; merge = per-actor maximum.     */

/*
 * crdt_gcounter_add appends state s with actor's count raised by n. n == 0
 * appends s unchanged (after the checks). Errors: SP_ERR_INVAL (actor 0),
 * SP_ERR_CORRUPT (s), SP_ERR_RANGE (actor's count or the counter's value
 * would exceed INT64_MAX; the value must stay a RESP integer).
 */
int crdt_gcounter_add(const uint8_t *s, size_t len, uint64_t actor, uint64_t n, struct sp_buf *out);

/*
 * crdt_gcounter_value stores the sum of the counts in *out. Errors:
 * SP_ERR_CORRUPT, SP_ERR_RANGE (the sum exceeds INT64_MAX: each count is
 * bounded, but a merge of states from different actors may add up past
 * it; *out is untouched then).
 */
int crdt_gcounter_value(const uint8_t *s, size_t len, int64_t *out);

/* ---------------------------------------------------------------------- */
/* PN-Counter: two G-Counters P and N; value = P - N.                       */

/*
 * crdt_pncounter_add appends s with delta added: a positive delta raises
 * actor's P count, a negative one raises its N count by -delta, 0 appends
 * s unchanged. Errors: SP_ERR_INVAL (actor 0), SP_ERR_CORRUPT,
 * SP_ERR_RANGE (delta is INT64_MIN, or the sum of the side it raises
 * would exceed INT64_MAX).
 */
int crdt_pncounter_add(const uint8_t *s, size_t len, uint64_t actor, int64_t delta,
		       struct sp_buf *out);

/*
 * crdt_pncounter_value stores P - N in *out. Errors: SP_ERR_CORRUPT,
 * SP_ERR_RANGE (P or N exceeds UINT64_MAX, or P - N does not fit int64_t;
 * only merges of independently grown states can get there).
 */
int crdt_pncounter_value(const uint8_t *s, size_t len, int64_t *out);

/* ---------------------------------------------------------------------- */
/* G-Set: grow-only set of byte strings.                                   */

/*
 * crdt_gset_add appends s with member m[0..mlen) added; *added (may be
 * NULL) is 1 when m was not a member before, else 0. Errors:
 * SP_ERR_CORRUPT; SP_ERR_TOOBIG when mlen exceeds lim->max_member_len (or
 * UINT32_MAX), or m is new and the set already holds lim->max_members
 * members. m is borrowed for the call (NULL allowed when mlen is 0).
 */
int crdt_gset_add(const uint8_t *s, size_t len, const void *m, size_t mlen,
		  const struct crdt_limits *lim, struct sp_buf *out, int *added);

/* ---------------------------------------------------------------------- */
/* 2P-Set: add set A and remove set R; members = A \ R; a removed member    */
/* can never come back.                                                    */

/*
 * crdt_tpset_add appends s with m added; *changed (may be NULL) is 1 when
 * m became a live member, 0 when it already was one or was removed before
 * (a removed member stays removed). Limits: lim->max_member_len applies to
 * every add; lim->max_members counts the members the state records, live
 * and removed (|A u R|: the encoding keeps a removed member once), and is
 * checked only when m is new. Errors: SP_ERR_CORRUPT, SP_ERR_TOOBIG.
 */
int crdt_tpset_add(const uint8_t *s, size_t len, const void *m, size_t mlen,
		   const struct crdt_limits *lim, struct sp_buf *out, int *changed);

/*
 * crdt_tpset_remove appends s with m removed; *changed (may be NULL) is 1
 * only when m was a live member. Removing a member that was never added
 * is allowed: it records a tombstone (changed 0), so a later or concurrent
 * add of m has no effect. Limits apply only when a new tombstone would be
 * recorded (both max_member_len and max_members, as for an add). Errors:
 * SP_ERR_CORRUPT, SP_ERR_TOOBIG.
 */
int crdt_tpset_remove(const uint8_t *s, size_t len, const void *m, size_t mlen,
		      const struct crdt_limits *lim, struct sp_buf *out, int *changed);

/* ---------------------------------------------------------------------- */
/* OR-Set: add-wins observed-remove set with dots and a causal context,    */
/* compacted (Bieniusa et al. 2012, "An optimized conflict-free replicated  */
/* set"). Merge keeps an entry (member, dot) present in both states, or in  */
/* one whose dot the other state's VV does not cover; VV = pointwise max.   */

/*
 * crdt_orset_add appends s with m added by `actor`: a new dot (actor,
 * VV[actor] + 1) replaces every dot m has in s (all of them observed), and
 * VV[actor] is raised to it. *added (may be NULL) is 1 when m was not a
 * live member. Limits: lim->max_member_len applies to every add;
 * lim->max_members counts distinct live members and is checked when m is
 * new. Errors: SP_ERR_INVAL (actor 0), SP_ERR_CORRUPT, SP_ERR_TOOBIG,
 * SP_ERR_RANGE (VV[actor] is UINT64_MAX).
 */
int crdt_orset_add(const uint8_t *s, size_t len, uint64_t actor, const void *m, size_t mlen,
		   const struct crdt_limits *lim, struct sp_buf *out, int *added);

/*
 * crdt_orset_remove appends s with m's observed dots dropped; the VV is
 * unchanged, so the removal is remembered by the context and a merge with
 * an older state does not bring m back, while an add it has not observed
 * does (add wins). *removed (may be NULL) is 1 when m was a live member.
 * Errors: SP_ERR_CORRUPT.
 */
int crdt_orset_remove(const uint8_t *s, size_t len, const void *m, size_t mlen, struct sp_buf *out,
		      int *removed);

/* ---------------------------------------------------------------------- */
/* Readers shared by the three sets (CRDT_GSET, CRDT_2PSET, CRDT_ORSET).    */

/*
 * crdt_set_members calls fn for each live member of s, once each, in byte
 * order, and stops after the first call that returns non-zero. Returns the
 * number of calls made (the stopping one included), or SP_ERR_CORRUPT
 * (checked before any call), SP_ERR_INVAL (not a set type), SP_ERR_RANGE
 * (more than INT_MAX members would be visited; the walk stops there).
 */
int crdt_set_members(uint8_t type, const uint8_t *s, size_t len, crdt_member_fn fn, void *ctx);

/* crdt_set_contains returns 1 when m is a live member of s, 0 when not,
 * or SP_ERR_CORRUPT, SP_ERR_INVAL (not a set type). */
int crdt_set_contains(uint8_t type, const uint8_t *s, size_t len, const void *m, size_t mlen);

/* crdt_set_count stores the number of live members in *out. Returns 0,
 * SP_ERR_CORRUPT, SP_ERR_INVAL (not a set type). */
int crdt_set_count(uint8_t type, const uint8_t *s, size_t len, uint64_t *out);

/* ---------------------------------------------------------------------- */
/* LWW-Register: one value (or a tombstone) with a timestamp and a node id. */

/* A register's contents; v borrows from the state it was read from. */
struct crdt_lww {
	uint64_t ts;
	uint64_t node;
	bool tombstone;	  /* a delete: no value */
	const uint8_t *v; /* never NULL, even when vlen is 0 */
	size_t vlen;
};

/*
 * crdt_lww_set appends the merge of s and the write (ts, node, v or
 * tombstone); *won (may be NULL) is 1 when the write is the result. The
 * order: larger ts wins; equal ts, larger node wins; equal (ts, node), the
 * byte-wise larger (flags byte, value) wins -- a tombstone beats a value,
 * a longer value beats its prefix -- so the merge stays deterministic.
 * Merging two LWW states picks the larger by the same order. Errors:
 * SP_ERR_INVAL (node 0, or a tombstone with vlen > 0), SP_ERR_CORRUPT.
 * v is borrowed for the call (NULL allowed when vlen is 0).
 */
int crdt_lww_set(const uint8_t *s, size_t len, uint64_t ts, uint64_t node, const void *v,
		 size_t vlen, bool tombstone, struct sp_buf *out, int *won);

/*
 * crdt_lww_get reads the register in O(1). Returns 0, SP_ERR_NOTFOUND (s
 * is the empty state: never written), SP_ERR_CORRUPT. A tombstone is
 * returned as found, with out->tombstone set. out->v borrows from s.
 */
int crdt_lww_get(const uint8_t *s, size_t len, struct crdt_lww *out);

/* ---------------------------------------------------------------------- */
/* MV-Register: concurrent values kept as siblings with dots and a VV.      */

/*
 * crdt_mvreg_set appends the state after `actor` writes v: a new dot
 * (actor, VV[actor] + 1) replaces every sibling of s (all observed) and
 * VV[actor] is raised to it, so the result has one sibling. Merge keeps a
 * sibling present in both states, or in one whose dot the other's VV does
 * not cover. Errors: SP_ERR_INVAL (actor 0), SP_ERR_CORRUPT, SP_ERR_TOOBIG
 * (vlen exceeds lim->max_member_len or UINT32_MAX), SP_ERR_RANGE
 * (VV[actor] is UINT64_MAX). v is borrowed for the call.
 */
int crdt_mvreg_set(const uint8_t *s, size_t len, uint64_t actor, const void *v, size_t vlen,
		   const struct crdt_limits *lim, struct sp_buf *out);

/*
 * crdt_mvreg_values calls fn for each sibling value in canonical order
 * (by dot, i.e. by actor), stopping after a non-zero return; equal values
 * written concurrently are distinct siblings. Returns the number of calls
 * made, or SP_ERR_CORRUPT (checked before any call). The empty state has
 * no values; so may a non-empty one (its writes were all superseded).
 */
int crdt_mvreg_values(const uint8_t *s, size_t len, crdt_member_fn fn, void *ctx);

/*
 * crdt_mvreg_count stores the number of siblings in *out, so the caller
 * can refuse a state over lim->max_siblings after a merge (which cannot
 * fail). Returns 0 or SP_ERR_CORRUPT.
 */
int crdt_mvreg_count(const uint8_t *s, size_t len, uint64_t *out);

/* ---------------------------------------------------------------------- */
/* Feature record: one entity's features, each a history of values keyed  */
/* by event time. Per (field, event_ms) an LWW-Register ordered by (ts,     */
/* node, value bytes); per field only the `history` largest event times    */
/* are kept. Merge is the union, the larger write for an event time both   */
/* sides hold, then the newest `history` per field, so a newer event time  */
/* wins whatever the arrival order and a late or replayed write never      */
/* replaces it. history is fixed when the keyspace is created; a merge of  */
/* states of different history takes the larger (commutative, idempotent,  */
/* but associative only for equal histories).                              */

/* One field's new value; field and v are borrowed for the call (v may be
 * NULL when vlen is 0). */
struct crdt_fvec_put {
	const void *field;
	size_t flen;
	const void *v;
	size_t vlen;
};

/* One kept value of a field; v borrows from the state it was read from
 * and is never NULL, even when vlen is 0. */
struct crdt_fvec_entry {
	uint64_t event_ms; /* when the feature was observed (the key) */
	uint64_t ts;	   /* HLC timestamp of the write */
	uint64_t node;	   /* the writing node, non-zero */
	const uint8_t *v;
	size_t vlen;
};

/*
 * crdt_fvec_delta appends the state holding exactly these puts, all at
 * event_ms with HLC timestamp ts from node: the delta a write ships and
 * merges (there is no update in place: the writer merges the delta into
 * its state). history is the keyspace's bound, recorded in the delta. A
 * field named twice: the last put wins. Errors: SP_ERR_INVAL (history 0,
 * node 0, n 0, a field of length 0), SP_ERR_TOOBIG (a field or value
 * longer than lim->max_member_len or UINT32_MAX, or more than
 * lim->max_members distinct fields); out is unchanged on error. puts[0..n)
 * and the bytes they point to are borrowed for the call.
 */
int crdt_fvec_delta(uint32_t history, uint64_t event_ms, uint64_t ts, uint64_t node,
		    const struct crdt_fvec_put *puts, size_t n, const struct crdt_limits *lim,
		    struct sp_buf *out);

/*
 * crdt_fvec_find stores in *out field's kept entry with the largest
 * event_ms <= asof_ms (UINT64_MAX: the latest), an "as of" read. Returns
 * 0, SP_ERR_NOTFOUND (no such field, or every kept entry is later than
 * asof_ms: the value then has been truncated away or was never written),
 * SP_ERR_CORRUPT. out->v borrows from s; field is borrowed for the call
 * (NULL allowed when flen is 0, which finds nothing).
 */
int crdt_fvec_find(const uint8_t *s, size_t len, const void *field, size_t flen, uint64_t asof_ms,
		   struct crdt_fvec_entry *out);

/*
 * crdt_fvec_fn receives one entry of field[0..flen); idx is the entry's
 * position in its field (0 = newest). field and e (and e->v) are borrowed
 * for the call only. Returning non-zero stops the walk.
 */
typedef int (*crdt_fvec_fn)(void *ctx, const uint8_t *field, size_t flen,
			    const struct crdt_fvec_entry *e, size_t idx);

/*
 * crdt_fvec_walk calls fn once per kept entry: fields ascending in byte
 * order, a field's entries newest first; it stops after the first call
 * that returns non-zero. Returns 0 (whether or not fn stopped it), or
 * SP_ERR_CORRUPT (checked before any call).
 */
int crdt_fvec_walk(const uint8_t *s, size_t len, crdt_fvec_fn fn, void *ctx);

/* crdt_fvec_history stores the state's history bound in *out (0 for the
 * empty state). Returns 0 or SP_ERR_CORRUPT (*out untouched). */
int crdt_fvec_history(const uint8_t *s, size_t len, uint32_t *out);

#endif
