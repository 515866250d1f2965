/*
 * gset.c: the grow-only set (Shapiro et al. 2011, Specification 11): add
 * only, merge is union. Members are (u32 len | bytes), strictly ascending
 * in byte order, so union is one ordered merge of the two lists.
 */
#include "crdt/crdt.h"

#include <limits.h>

#include "crdt/crdt_int.h"

/* next_member reads the member at r (already checked). */
static void next_member(struct crdt__rd *r, const uint8_t **m, uint32_t *mlen)
{
	*mlen = crdt__take_u32(r);
	*m = crdt__take_bytes(r, *mlen);
}

int crdt__gset_check(const uint8_t *s, size_t len, uint64_t *count)
{
	struct crdt__rd r;
	crdt__rd_init(&r, crdt__nn(s), len);
	const uint8_t *prev = NULL;
	uint32_t prev_len = 0;
	uint64_t n = 0;
	while (r.left > 0) {
		const uint8_t *m;
		uint32_t mlen;
		if (!crdt__rd_u32(&r, &mlen) || !crdt__rd_bytes(&r, mlen, &m))
			return SP_ERR_CORRUPT;
		if (n > 0 && crdt__cmp_bytes(prev, prev_len, m, mlen) >= 0)
			return SP_ERR_CORRUPT;
		prev = m;
		prev_len = mlen;
		n++;
	}
	*count = n;
	return 0;
}

int crdt__gset_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		     struct sp_buf *out)
{
	uint64_t n;
	if (crdt__gset_check(a, alen, &n) < 0 || crdt__gset_check(b, blen, &n) < 0)
		return SP_ERR_CORRUPT;
	struct crdt__rd ra, rb;
	crdt__rd_init(&ra, a, alen);
	crdt__rd_init(&rb, b, blen);
	const uint8_t *ma = NULL, *mb = NULL;
	uint32_t la = 0, lb = 0;
	bool ha = ra.left > 0, hb = rb.left > 0;
	if (ha)
		next_member(&ra, &ma, &la);
	if (hb)
		next_member(&rb, &mb, &lb);
	while (ha || hb) {
		int c = !ha ? 1 : !hb ? -1 : crdt__cmp_bytes(ma, la, mb, lb);
		/* Each entry is re-emitted from its own bytes (4 bytes of
		 * length before the member). */
		if (c <= 0)
			sp_buf_append(out, ma - 4, (size_t)la + 4);
		else
			sp_buf_append(out, mb - 4, (size_t)lb + 4);
		if (c <= 0) {
			ha = ra.left > 0;
			if (ha)
				next_member(&ra, &ma, &la);
		}
		if (c >= 0) {
			hb = rb.left > 0;
			if (hb)
				next_member(&rb, &mb, &lb);
		}
	}
	return 0;
}

/* find returns the byte offset of m's entry in a checked state, or of the
 * entry m would go before; *found says which. */
static size_t find(const uint8_t *s, size_t len, const uint8_t *m, size_t mlen, bool *found)
{
	struct crdt__rd r;
	crdt__rd_init(&r, s, len);
	*found = false;
	while (r.left > 0) {
		size_t off = len - r.left;
		const uint8_t *e;
		uint32_t elen;
		next_member(&r, &e, &elen);
		int c = crdt__cmp_bytes(e, elen, m, mlen);
		if (c >= 0) {
			*found = c == 0;
			return off;
		}
	}
	return len;
}

int crdt_gset_add(const uint8_t *s, size_t len, const void *m, size_t mlen,
		  const struct crdt_limits *lim, struct sp_buf *out, int *added)
{
	s = crdt__nn(s);
	m = crdt__nn(m);
	uint64_t count;
	if (crdt__gset_check(s, len, &count) < 0)
		return SP_ERR_CORRUPT;
	if (!crdt__len_ok(lim, mlen))
		return SP_ERR_TOOBIG;
	bool found;
	size_t off = find(s, len, m, mlen, &found);
	if (!found && !crdt__room(lim, count))
		return SP_ERR_TOOBIG;
	sp_buf_append(out, s, off);
	if (!found) {
		sp_buf_put_le32(out, (uint32_t)mlen);
		sp_buf_append(out, m, mlen);
	}
	sp_buf_append(out, s + off, len - off);
	if (added)
		*added = !found;
	return 0;
}

int crdt__gset_members(const uint8_t *s, size_t len, crdt_member_fn fn, void *ctx)
{
	uint64_t count;
	if (crdt__gset_check(s, len, &count) < 0)
		return SP_ERR_CORRUPT;
	struct crdt__rd r;
	crdt__rd_init(&r, s, len);
	int visited = 0;
	while (r.left > 0) {
		const uint8_t *m;
		uint32_t mlen;
		next_member(&r, &m, &mlen);
		if (visited == INT_MAX)
			return SP_ERR_RANGE;
		visited++;
		if (fn(ctx, m, mlen) != 0)
			break;
	}
	return visited;
}

int crdt__gset_contains(const uint8_t *s, size_t len, const uint8_t *m, size_t mlen)
{
	uint64_t count;
	if (crdt__gset_check(s, len, &count) < 0)
		return SP_ERR_CORRUPT;
	bool found;
	find(s, len, m, mlen, &found);
	return found;
}

int crdt__gset_describe(const uint8_t *s, size_t len, struct sp_buf *out)
{
	struct crdt__rd r;
	crdt__rd_init(&r, s, len);
	sp_buf_append_str(out, "gset {");
	size_t shown = 0, total = 0;
	while (r.left > 0) {
		const uint8_t *m;
		uint32_t mlen;
		next_member(&r, &m, &mlen);
		total++;
		if (shown == CRDT__DESC_ENTRIES)
			continue;
		if (shown)
			sp_buf_append_str(out, ",");
		crdt__describe_bytes(m, mlen, out);
		shown++;
	}
	if (total > shown)
		sp_buf_appendf(out, ",...+%zu", total - shown);
	sp_buf_append_str(out, "}");
	return 0;
}
