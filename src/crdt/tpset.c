/*
 * tpset.c: the two-phase set (Shapiro et al. 2011, Specification 12): an
 * add set A and a remove set R, members = A \ R, merge = union of each,
 * and a removed member can never come back.
 *
 * Compacted: once m is in R, whether it is also in A changes nothing, so
 * each member has one status, live (in A only) or removed (in R), and the
 * merge of a member's statuses is their maximum in absent < live <
 * removed. Entries are (u8 status | u32 len | bytes), members strictly
 * ascending in byte order.
 */
#include "crdt/crdt.h"

#include <limits.h>

#include "crdt/crdt_int.h"

enum { LIVE = 1, REMOVED = 2 };

struct entry {
	uint8_t status;
	const uint8_t *m;
	uint32_t mlen;
	size_t off, end; /* the entry's bytes in the state */
};

/* next_entry reads the entry at r (already checked); base is the state. */
static void next_entry(struct crdt__rd *r, const uint8_t *base, struct entry *e)
{
	e->off = (size_t)(r->p - base);
	e->status = crdt__take_u8(r);
	e->mlen = crdt__take_u32(r);
	e->m = crdt__take_bytes(r, e->mlen);
	e->end = (size_t)(r->p - base);
}

int crdt__tpset_check(const uint8_t *s, size_t len, uint64_t *entries, uint64_t *live)
{
	struct crdt__rd r;
	crdt__rd_init(&r, crdt__nn(s), len);
	const uint8_t *prev = NULL;
	uint32_t prev_len = 0;
	uint64_t n = 0, l = 0;
	while (r.left > 0) {
		uint8_t status;
		uint32_t mlen;
		const uint8_t *m;
		if (!crdt__rd_u8(&r, &status) || !crdt__rd_u32(&r, &mlen) ||
		    !crdt__rd_bytes(&r, mlen, &m))
			return SP_ERR_CORRUPT;
		if (status != LIVE && status != REMOVED)
			return SP_ERR_CORRUPT;
		if (n > 0 && crdt__cmp_bytes(prev, prev_len, m, mlen) >= 0)
			return SP_ERR_CORRUPT;
		prev = m;
		prev_len = mlen;
		n++;
		l += status == LIVE;
	}
	*entries = n;
	*live = l;
	return 0;
}

int crdt__tpset_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		      struct sp_buf *out)
{
	uint64_t n, l;
	if (crdt__tpset_check(a, alen, &n, &l) < 0 || crdt__tpset_check(b, blen, &n, &l) < 0)
		return SP_ERR_CORRUPT;
	struct crdt__rd ra, rb;
	crdt__rd_init(&ra, a, alen);
	crdt__rd_init(&rb, b, blen);
	struct entry ea = {0}, eb = {0};
	bool ha = ra.left > 0, hb = rb.left > 0;
	if (ha)
		next_entry(&ra, a, &ea);
	if (hb)
		next_entry(&rb, b, &eb);
	while (ha || hb) {
		int c = !ha ? 1 : !hb ? -1 : crdt__cmp_bytes(ea.m, ea.mlen, eb.m, eb.mlen);
		if (c < 0)
			sp_buf_append(out, a + ea.off, ea.end - ea.off);
		else if (c > 0)
			sp_buf_append(out, b + eb.off, eb.end - eb.off);
		else if (ea.status >= eb.status)
			sp_buf_append(out, a + ea.off, ea.end - ea.off);
		else
			sp_buf_append(out, b + eb.off, eb.end - eb.off);
		if (c <= 0) {
			ha = ra.left > 0;
			if (ha)
				next_entry(&ra, a, &ea);
		}
		if (c >= 0) {
			hb = rb.left > 0;
			if (hb)
				next_entry(&rb, b, &eb);
		}
	}
	return 0;
}

/* find locates m in a checked state: true and *e set when present, else
 * false and e->off the offset m's entry would take. */
static bool find(const uint8_t *s, size_t len, const uint8_t *m, size_t mlen, struct entry *e)
{
	struct crdt__rd r;
	crdt__rd_init(&r, s, len);
	while (r.left > 0) {
		next_entry(&r, s, e);
		int c = crdt__cmp_bytes(e->m, e->mlen, m, mlen);
		if (c >= 0)
			return c == 0;
	}
	e->off = e->end = len;
	return false;
}

/* update appends s with m's status raised to `status` (LIVE for an add,
 * REMOVED for a remove); *changed is 1 when m's liveness changed. */
static int update(const uint8_t *s, size_t len, const uint8_t *m, size_t mlen, uint8_t status,
		  const struct crdt_limits *lim, struct sp_buf *out, int *changed)
{
	uint64_t entries, live;
	if (crdt__tpset_check(s, len, &entries, &live) < 0)
		return SP_ERR_CORRUPT;
	struct entry e;
	bool found = find(s, len, m, mlen, &e);
	if (!found || status == LIVE) {
		/* An add always checks the length, as the member is input;
		 * a remove only when it would record a new tombstone. */
		if (!crdt__len_ok(lim, mlen))
			return SP_ERR_TOOBIG;
	}
	if (!found && !crdt__room(lim, entries))
		return SP_ERR_TOOBIG;
	int c = 0;
	if (!found) {
		sp_buf_append(out, s, e.off);
		sp_buf_put_u8(out, status);
		sp_buf_put_le32(out, (uint32_t)mlen);
		sp_buf_append(out, m, mlen);
		sp_buf_append(out, s + e.off, len - e.off);
		c = status == LIVE;
	} else if (e.status < status) {
		/* live -> removed: only the status byte changes. */
		sp_buf_append(out, s, e.off);
		sp_buf_put_u8(out, status);
		sp_buf_append(out, s + e.off + 1, len - e.off - 1);
		c = 1;
	} else {
		sp_buf_append(out, s, len);
	}
	if (changed)
		*changed = c;
	return 0;
}

int crdt_tpset_add(const uint8_t *s, size_t len, const void *m, size_t mlen,
		   const struct crdt_limits *lim, struct sp_buf *out, int *changed)
{
	return update(crdt__nn(s), len, crdt__nn(m), mlen, LIVE, lim, out, changed);
}

int crdt_tpset_remove(const uint8_t *s, size_t len, const void *m, size_t mlen,
		      const struct crdt_limits *lim, struct sp_buf *out, int *changed)
{
	return update(crdt__nn(s), len, crdt__nn(m), mlen, REMOVED, lim, out, changed);
}

int crdt__tpset_members(const uint8_t *s, size_t len, crdt_member_fn fn, void *ctx)
{
	uint64_t entries, live;
	if (crdt__tpset_check(s, len, &entries, &live) < 0)
		return SP_ERR_CORRUPT;
	struct crdt__rd r;
	crdt__rd_init(&r, s, len);
	int visited = 0;
	while (r.left > 0) {
		struct entry e;
		next_entry(&r, s, &e);
		if (e.status != LIVE)
			continue;
		if (visited == INT_MAX)
			return SP_ERR_RANGE;
		visited++;
		if (fn(ctx, e.m, e.mlen) != 0)
			break;
	}
	return visited;
}

int crdt__tpset_contains(const uint8_t *s, size_t len, const uint8_t *m, size_t mlen)
{
	uint64_t entries, live;
	if (crdt__tpset_check(s, len, &entries, &live) < 0)
		return SP_ERR_CORRUPT;
	struct entry e;
	return find(s, len, m, mlen, &e) && e.status == LIVE;
}

int crdt__tpset_describe(const uint8_t *s, size_t len, struct sp_buf *out)
{
	sp_buf_append_str(out, "2pset");
	for (uint8_t status = LIVE; status <= REMOVED; status++) {
		sp_buf_append_str(out, status == LIVE ? " live={" : " removed={");
		struct crdt__rd r;
		crdt__rd_init(&r, s, len);
		size_t shown = 0, total = 0;
		while (r.left > 0) {
			struct entry e;
			next_entry(&r, s, &e);
			if (e.status != status)
				continue;
			total++;
			if (shown == CRDT__DESC_ENTRIES)
				continue;
			if (shown)
				sp_buf_append_str(out, ",");
			crdt__describe_bytes(e.m, e.mlen, out);
			shown++;
		}
		if (total > shown)
			sp_buf_appendf(out, ",...+%zu", total - shown);
		sp_buf_append_str(out, "}");
	}
	return 0;
}
