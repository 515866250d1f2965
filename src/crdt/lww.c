/*
 * lww.c: the last-writer-wins register (Shapiro et al. 2011,
 * Specification 8), the hot path of plain GET and SET in weak keyspaces,
 * so its state is a fixed header read in O(1): u64 ts | u64 node | u8
 * flags | value. Writes are totally ordered by (ts, node, flags byte,
 * value bytes) and merge keeps the larger, so replicas agree even when two
 * writes share a timestamp and a node.
 */
#include "crdt/crdt.h"

#include "crdt/crdt_int.h"

#define FLAG_TOMBSTONE 1

int crdt__lww_check(const uint8_t *s, size_t len)
{
	if (len == 0)
		return 0;
	if (len < CRDT_LWW_HDR_LEN)
		return SP_ERR_CORRUPT;
	uint8_t flags = s[16];
	if (sp_get_le64(s + 8) == 0 || (flags & ~FLAG_TOMBSTONE) != 0)
		return SP_ERR_CORRUPT;
	if ((flags & FLAG_TOMBSTONE) && len != CRDT_LWW_HDR_LEN)
		return SP_ERR_CORRUPT;
	return 0;
}

/* cmp orders two checked, non-empty states as writes. */
static int cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = crdt__cmp_u64(sp_get_le64(a), sp_get_le64(b));
	if (c == 0)
		c = crdt__cmp_u64(sp_get_le64(a + 8), sp_get_le64(b + 8));
	if (c == 0)
		c = crdt__cmp_bytes(a + 16, alen - 16, b + 16, blen - 16);
	return c;
}

int crdt__lww_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		    struct sp_buf *out)
{
	if (crdt__lww_check(a, alen) < 0 || crdt__lww_check(b, blen) < 0)
		return SP_ERR_CORRUPT;
	if (alen == 0 || (blen > 0 && cmp(a, alen, b, blen) < 0))
		sp_buf_append(out, b, blen);
	else
		sp_buf_append(out, a, alen);
	return 0;
}

int crdt_lww_set(const uint8_t *s, size_t len, uint64_t ts, uint64_t node, const void *v,
		 size_t vlen, bool tombstone, struct sp_buf *out, int *won)
{
	s = crdt__nn(s);
	v = crdt__nn(v);
	if (node == 0 || (tombstone && vlen > 0))
		return SP_ERR_INVAL;
	if (crdt__lww_check(s, len) < 0)
		return SP_ERR_CORRUPT;
	/* The write is compared as a state: its header on the stack, its
	 * value where the caller keeps it. */
	uint8_t hdr[CRDT_LWW_HDR_LEN];
	sp_put_le64(hdr, ts);
	sp_put_le64(hdr + 8, node);
	hdr[16] = tombstone ? FLAG_TOMBSTONE : 0;
	int c = 1;
	if (len > 0) {
		c = crdt__cmp_u64(ts, sp_get_le64(s));
		if (c == 0)
			c = crdt__cmp_u64(node, sp_get_le64(s + 8));
		if (c == 0)
			c = crdt__cmp_u64(hdr[16], s[16]);
		if (c == 0)
			c = crdt__cmp_bytes(v, vlen, s + CRDT_LWW_HDR_LEN, len - CRDT_LWW_HDR_LEN);
	}
	if (c >= 0) {
		sp_buf_append(out, hdr, sizeof(hdr));
		sp_buf_append(out, v, vlen);
	} else {
		sp_buf_append(out, s, len);
	}
	if (won)
		*won = c >= 0;
	return 0;
}

int crdt_lww_get(const uint8_t *s, size_t len, struct crdt_lww *out)
{
	s = crdt__nn(s);
	if (crdt__lww_check(s, len) < 0)
		return SP_ERR_CORRUPT;
	if (len == 0)
		return SP_ERR_NOTFOUND;
	out->ts = sp_get_le64(s);
	out->node = sp_get_le64(s + 8);
	out->tombstone = (s[16] & FLAG_TOMBSTONE) != 0;
	out->v = s + CRDT_LWW_HDR_LEN;
	out->vlen = len - CRDT_LWW_HDR_LEN;
	return 0;
}

int crdt__lww_describe(const uint8_t *s, size_t len, struct sp_buf *out)
{
	if (len == 0) {
		sp_buf_append_str(out, "lww unset");
		return 0;
	}
	sp_buf_appendf(out, "lww ts=%llu node=%llu ", (unsigned long long)sp_get_le64(s),
		       (unsigned long long)sp_get_le64(s + 8));
	if (s[16] & FLAG_TOMBSTONE)
		sp_buf_append_str(out, "tombstone");
	else
		crdt__describe_bytes(s + CRDT_LWW_HDR_LEN, len - CRDT_LWW_HDR_LEN, out);
	return 0;
}
