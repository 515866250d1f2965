/*
 * crdt_int: what the CRDT type files share and nothing outside src/crdt
 * may use: a bounds-checked reader, byte-order comparison, version
 * vectors (causal contexts), output helpers and the per-type entry points
 * the dispatch in crdt.c calls. Pure, like the module.
 */
#ifndef SP_CRDT_CRDT_INT_H
#define SP_CRDT_CRDT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/endian.h"
#include "common/err.h"
#include "crdt/crdt.h"

/* Descriptions list at most this many entries, and this many bytes of a
 * member or value, before cutting short with "...". */
#define CRDT__DESC_ENTRIES 16
#define CRDT__DESC_BYTES   32

/* crdt__nn gives a pointer that is safe to offset by 0: the callers may
 * pass NULL with length 0, and NULL + 0 is undefined in C. */
static inline const uint8_t *crdt__nn(const void *p)
{
	return p ? (const uint8_t *)p : (const uint8_t *)"";
}

/* A reader over untrusted bytes: every take checks what is left. */
struct crdt__rd {
	const uint8_t *p;
	size_t left;
};

static inline void crdt__rd_init(struct crdt__rd *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->left = len;
}

static inline bool crdt__rd_u8(struct crdt__rd *r, uint8_t *v)
{
	if (r->left < 1)
		return false;
	*v = r->p[0];
	r->p++;
	r->left--;
	return true;
}

static inline bool crdt__rd_u32(struct crdt__rd *r, uint32_t *v)
{
	if (r->left < 4)
		return false;
	*v = sp_get_le32(r->p);
	r->p += 4;
	r->left -= 4;
	return true;
}

static inline bool crdt__rd_u64(struct crdt__rd *r, uint64_t *v)
{
	if (r->left < 8)
		return false;
	*v = sp_get_le64(r->p);
	r->p += 8;
	r->left -= 8;
	return true;
}

/* crdt__rd_bytes borrows n bytes. */
static inline bool crdt__rd_bytes(struct crdt__rd *r, size_t n, const uint8_t **p)
{
	if (r->left < n)
		return false;
	*p = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

/* The crdt__take_* reads are unchecked: for bytes a check already
 * walked (the caller knows they are there). */
static inline uint8_t crdt__take_u8(struct crdt__rd *r)
{
	uint8_t v = r->p[0];
	r->p++;
	r->left--;
	return v;
}

static inline uint32_t crdt__take_u32(struct crdt__rd *r)
{
	uint32_t v = sp_get_le32(r->p);
	r->p += 4;
	r->left -= 4;
	return v;
}

static inline uint64_t crdt__take_u64(struct crdt__rd *r)
{
	uint64_t v = sp_get_le64(r->p);
	r->p += 8;
	r->left -= 8;
	return v;
}

static inline const uint8_t *crdt__take_bytes(struct crdt__rd *r, size_t n)
{
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

/* crdt__cmp_bytes orders byte strings: memcmp over the common prefix, then
 * the shorter first. Either pointer may be NULL when its length is 0. */
static inline int crdt__cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	if (n > 0) {
		int c = memcmp(a, b, n);
		if (c != 0)
			return c;
	}
	return alen < blen ? -1 : alen > blen;
}

static inline int crdt__cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

/* crdt__len_ok says whether a member or value of mlen bytes is within the
 * encoding (u32) and lim->max_member_len. */
static inline bool crdt__len_ok(const struct crdt_limits *lim, size_t mlen)
{
	if (mlen > UINT32_MAX)
		return false;
	return !lim || lim->max_member_len == 0 || mlen <= lim->max_member_len;
}

/* crdt__room says whether a set holding `have` members may take one more. */
static inline bool crdt__room(const struct crdt_limits *lim, uint64_t have)
{
	return !lim || lim->max_members == 0 || have < lim->max_members;
}

/* ---------------------------------------------------------------------- */
/* Version vectors                                                         */

/* A checked VV inside a state: n entries of 16 bytes at p (n may be 0 for
 * the empty state). */
struct crdt__vv {
	const uint8_t *p;
	uint32_t n;
};

#define CRDT__VV_ENTRY 16

/* crdt__vv_read reads and checks "u32 n | entries" (n >= 1, actors
 * strictly ascending and non-zero, counters non-zero). */
bool crdt__vv_read(struct crdt__rd *r, struct crdt__vv *vv);
/* crdt__vv_get returns VV[actor], 0 when absent (binary search). */
uint64_t crdt__vv_get(const struct crdt__vv *vv, uint64_t actor);
/* crdt__vv_put_merge appends the pointwise maximum of a and b. */
void crdt__vv_put_merge(const struct crdt__vv *a, const struct crdt__vv *b, struct sp_buf *out);
/* crdt__vv_put_bump appends vv with VV[actor] set to counter (inserted
 * when absent). */
void crdt__vv_put_bump(const struct crdt__vv *vv, uint64_t actor, uint64_t counter,
		       struct sp_buf *out);
/* crdt__vv_describe appends "vv={1:3,2:1}". */
void crdt__vv_describe(const struct crdt__vv *vv, struct sp_buf *out);

/* crdt__describe_bytes appends p[0..n) quoted, escaped, cut short. */
void crdt__describe_bytes(const uint8_t *p, size_t n, struct sp_buf *out);

/* ---------------------------------------------------------------------- */
/* Per-type entry points for the dispatch in crdt.c. Each _check returns 0
 * or SP_ERR_CORRUPT; _merge and _describe check their inputs first. */

int crdt__gcounter_check(const uint8_t *s, size_t len);
int crdt__gcounter_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
			 struct sp_buf *out);
int crdt__gcounter_describe(const uint8_t *s, size_t len, struct sp_buf *out);

int crdt__pncounter_check(const uint8_t *s, size_t len);
int crdt__pncounter_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
			  struct sp_buf *out);
int crdt__pncounter_describe(const uint8_t *s, size_t len, struct sp_buf *out);

/* The set types also provide what crdt_set_* needs: _members (count
 * visited or error), _contains (1/0/error), _count. */
int crdt__gset_check(const uint8_t *s, size_t len, uint64_t *count);
int crdt__gset_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		     struct sp_buf *out);
int crdt__gset_describe(const uint8_t *s, size_t len, struct sp_buf *out);
int crdt__gset_members(const uint8_t *s, size_t len, crdt_member_fn fn, void *ctx);
int crdt__gset_contains(const uint8_t *s, size_t len, const uint8_t *m, size_t mlen);

int crdt__tpset_check(const uint8_t *s, size_t len, uint64_t *entries, uint64_t *live);
int crdt__tpset_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		      struct sp_buf *out);
int crdt__tpset_describe(const uint8_t *s, size_t len, struct sp_buf *out);
int crdt__tpset_members(const uint8_t *s, size_t len, crdt_member_fn fn, void *ctx);
int crdt__tpset_contains(const uint8_t *s, size_t len, const uint8_t *m, size_t mlen);

int crdt__orset_check(const uint8_t *s, size_t len, uint64_t *live);
int crdt__orset_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		      struct sp_buf *out);
int crdt__orset_describe(const uint8_t *s, size_t len, struct sp_buf *out);
int crdt__orset_members(const uint8_t *s, size_t len, crdt_member_fn fn, void *ctx);
int crdt__orset_contains(const uint8_t *s, size_t len, const uint8_t *m, size_t mlen);

int crdt__lww_check(const uint8_t *s, size_t len);
int crdt__lww_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		    struct sp_buf *out);
int crdt__lww_describe(const uint8_t *s, size_t len, struct sp_buf *out);

int crdt__mvreg_check(const uint8_t *s, size_t len);
int crdt__mvreg_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		      struct sp_buf *out);
int crdt__mvreg_describe(const uint8_t *s, size_t len, struct sp_buf *out);

int crdt__fvec_check(const uint8_t *s, size_t len);
int crdt__fvec_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		     struct sp_buf *out);
int crdt__fvec_describe(const uint8_t *s, size_t len, struct sp_buf *out);

#endif
