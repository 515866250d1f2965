/*
 * fvec.c: the feature record, one entity's features each with a bounded
 * history of values keyed by event time. Per (field, event time) it is a
 * last-writer-wins register (Shapiro et al. 2011, Specification 8) ordered
 * by (ts, node, value bytes); per field it keeps only the `history`
 * entries with the largest event times. Both are joins -- a maximum in a
 * total order, and "the h largest of a union" (top_h(top_h(A u B) u C) =
 * top_h(A u B u C)) -- so a newer event time wins whatever the arrival
 * order, and a late or replayed write never replaces it.
 *
 * Layout: u32 history | (u32 flen | field | u32 n | n x (u64 event_ms |
 * u64 ts | u64 node | u32 vlen | value))*, history >= 1, at least one
 * field (a record with none is bottom, and bottom is only the empty
 * string), fields strictly ascending in byte order and non-empty,
 * 1 <= n <= history, a field's entries strictly descending by event_ms,
 * node non-zero.
 */
#include "crdt/crdt.h"

#include <stdlib.h>

#include "common/alloc.h"
#include "crdt/crdt_int.h"

/* Fixed part of an entry: event_ms, ts, node and vlen. */
#define ENTRY_HDR 28

struct view {
	uint32_t history;   /* 0 for the empty state */
	const uint8_t *grp; /* the field groups */
	size_t grp_len;
	uint64_t fields;
};

struct group {
	const uint8_t *f;
	uint32_t flen;
	uint32_t n;
	const uint8_t *at;   /* the group's first byte */
	size_t size;	     /* and its length */
	struct crdt__rd ent; /* over its entries */
};

struct entry {
	struct crdt_fvec_entry e;
	const uint8_t *at; /* the entry's first byte */
	size_t size;	   /* and its length */
};

/* next_group reads the group at r (already checked). */
static void next_group(struct crdt__rd *r, struct group *g)
{
	g->at = r->p;
	g->flen = crdt__take_u32(r);
	g->f = crdt__take_bytes(r, g->flen);
	g->n = crdt__take_u32(r);
	const uint8_t *ent = r->p;
	for (uint32_t k = 0; k < g->n; k++) {
		crdt__take_bytes(r, ENTRY_HDR - 4);
		crdt__take_bytes(r, crdt__take_u32(r));
	}
	crdt__rd_init(&g->ent, ent, (size_t)(r->p - ent));
	g->size = (size_t)(r->p - g->at);
}

/* next_entry reads the entry at r (already checked). */
static void next_entry(struct crdt__rd *r, struct entry *en)
{
	en->at = r->p;
	en->e.event_ms = crdt__take_u64(r);
	en->e.ts = crdt__take_u64(r);
	en->e.node = crdt__take_u64(r);
	en->e.vlen = crdt__take_u32(r);
	en->e.v = crdt__take_bytes(r, en->e.vlen);
	en->size = (size_t)(r->p - en->at);
}

/* parse_entries checks a group's n entries at r. */
static bool parse_entries(struct crdt__rd *r, uint32_t n)
{
	uint64_t prev_ms = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t event_ms, ts, node;
		uint32_t vlen;
		const uint8_t *v;
		if (!crdt__rd_u64(r, &event_ms) || !crdt__rd_u64(r, &ts) ||
		    !crdt__rd_u64(r, &node) || !crdt__rd_u32(r, &vlen) ||
		    !crdt__rd_bytes(r, vlen, &v))
			return false;
		if (node == 0 || (k > 0 && event_ms >= prev_ms))
			return false;
		prev_ms = event_ms;
	}
	return true;
}

/* parse checks s and fills v; 0 or SP_ERR_CORRUPT. */
static int parse(const uint8_t *s, size_t len, struct view *v)
{
	s = crdt__nn(s);
	*v = (struct view){.history = 0, .grp = s, .grp_len = 0, .fields = 0};
	if (len == 0)
		return 0;
	struct crdt__rd r;
	crdt__rd_init(&r, s, len);
	if (!crdt__rd_u32(&r, &v->history) || v->history == 0 || r.left == 0)
		return SP_ERR_CORRUPT;
	v->grp = r.p;
	v->grp_len = r.left;
	const uint8_t *prev = NULL;
	uint32_t prev_len = 0;
	while (r.left > 0) {
		const uint8_t *f;
		uint32_t flen, n;
		if (!crdt__rd_u32(&r, &flen) || flen == 0 || !crdt__rd_bytes(&r, flen, &f) ||
		    !crdt__rd_u32(&r, &n) || n == 0 || n > v->history || n > r.left / ENTRY_HDR ||
		    !parse_entries(&r, n))
			return SP_ERR_CORRUPT;
		if (v->fields > 0 && crdt__cmp_bytes(prev, prev_len, f, flen) >= 0)
			return SP_ERR_CORRUPT;
		prev = f;
		prev_len = flen;
		v->fields++;
	}
	return 0;
}

int crdt__fvec_check(const uint8_t *s, size_t len)
{
	struct view v;
	return parse(s, len, &v);
}

/* entry_cmp orders two entries of one event time as writes: (ts, node),
 * then the value's bytes, so the pick is deterministic. */
static int entry_cmp(const struct crdt_fvec_entry *a, const struct crdt_fvec_entry *b)
{
	int c = crdt__cmp_u64(a->ts, b->ts);
	if (c == 0)
		c = crdt__cmp_u64(a->node, b->node);
	if (c == 0)
		c = crdt__cmp_bytes(a->v, a->vlen, b->v, b->vlen);
	return c;
}

/* merge_group appends the join of one field's two entry lists: newest
 * first, one entry per event time (the larger write), at most history. */
static void merge_group(const struct group *ga, const struct group *gb, uint32_t history,
			struct sp_buf *out)
{
	sp_buf_put_le32(out, ga->flen);
	sp_buf_append(out, ga->f, ga->flen);
	size_t n_at = out->len;
	sp_buf_put_le32(out, 0);
	struct crdt__rd ra = ga->ent, rb = gb->ent;
	struct entry ea = {0}, eb = {0};
	bool ha = ra.left > 0, hb = rb.left > 0;
	if (ha)
		next_entry(&ra, &ea);
	if (hb)
		next_entry(&rb, &eb);
	uint32_t n = 0;
	while ((ha || hb) && n < history) {
		/* Descending event times: the larger one goes first. */
		int c = !ha ? 1 : !hb ? -1 : crdt__cmp_u64(eb.e.event_ms, ea.e.event_ms);
		if (c < 0 || (c == 0 && entry_cmp(&ea.e, &eb.e) >= 0))
			sp_buf_append(out, ea.at, ea.size);
		else
			sp_buf_append(out, eb.at, eb.size);
		n++;
		if (c <= 0) {
			ha = ra.left > 0;
			if (ha)
				next_entry(&ra, &ea);
		}
		if (c >= 0) {
			hb = rb.left > 0;
			if (hb)
				next_entry(&rb, &eb);
		}
	}
	sp_buf_patch_le32(out, n_at, n);
}

int crdt__fvec_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		     struct sp_buf *out)
{
	struct view va, vb;
	if (parse(a, alen, &va) < 0 || parse(b, blen, &vb) < 0)
		return SP_ERR_CORRUPT;
	if (va.history == 0 && vb.history == 0)
		return 0; /* bottom and bottom */
	/* Within a keyspace both histories are equal; max keeps the merge
	 * commutative when they are not. A group from one side fits as it
	 * is: its n is within its own history, so within the max. */
	uint32_t history = va.history > vb.history ? va.history : vb.history;
	sp_buf_put_le32(out, history);
	struct crdt__rd ra, rb;
	crdt__rd_init(&ra, va.grp, va.grp_len);
	crdt__rd_init(&rb, vb.grp, vb.grp_len);
	struct group ga = {0}, gb = {0};
	bool ha = ra.left > 0, hb = rb.left > 0;
	if (ha)
		next_group(&ra, &ga);
	if (hb)
		next_group(&rb, &gb);
	while (ha || hb) {
		int c = !ha ? 1 : !hb ? -1 : crdt__cmp_bytes(ga.f, ga.flen, gb.f, gb.flen);
		if (c < 0)
			sp_buf_append(out, ga.at, ga.size);
		else if (c > 0)
			sp_buf_append(out, gb.at, gb.size);
		else
			merge_group(&ga, &gb, history, out);
		if (c <= 0) {
			ha = ra.left > 0;
			if (ha)
				next_group(&ra, &ga);
		}
		if (c >= 0) {
			hb = rb.left > 0;
			if (hb)
				next_group(&rb, &gb);
		}
	}
	return 0;
}

/* put_order sorts pointers to puts by field, then by position in the
 * caller's array, so the last put of a field ends its run. */
static int put_order(const void *x, const void *y)
{
	const struct crdt_fvec_put *a = *(const struct crdt_fvec_put *const *)x;
	const struct crdt_fvec_put *b = *(const struct crdt_fvec_put *const *)y;
	int c = crdt__cmp_bytes(a->field, a->flen, b->field, b->flen);
	if (c == 0)
		c = a < b ? -1 : a > b;
	return c;
}

int crdt_fvec_delta(uint32_t history, uint64_t event_ms, uint64_t ts, uint64_t node,
		    const struct crdt_fvec_put *puts, size_t n, const struct crdt_limits *lim,
		    struct sp_buf *out)
{
	if (history == 0 || node == 0 || n == 0)
		return SP_ERR_INVAL;
	for (size_t i = 0; i < n; i++)
		if (puts[i].flen == 0)
			return SP_ERR_INVAL;
	for (size_t i = 0; i < n; i++)
		if (!crdt__len_ok(lim, puts[i].flen) || !crdt__len_ok(lim, puts[i].vlen))
			return SP_ERR_TOOBIG;
	const struct crdt_fvec_put **order = sp_malloc(n * sizeof(*order));
	for (size_t i = 0; i < n; i++)
		order[i] = &puts[i];
	qsort(order, n, sizeof(*order), put_order);
	/* The last put of each field's run is the one kept. */
	uint64_t fields = 0;
	for (size_t i = 0; i < n; i++) {
		const struct crdt_fvec_put *p = order[i];
		const struct crdt_fvec_put *q = i + 1 < n ? order[i + 1] : NULL;
		if (q && crdt__cmp_bytes(p->field, p->flen, q->field, q->flen) == 0)
			order[i] = NULL;
		else
			fields++;
	}
	if (lim && lim->max_members != 0 && fields > lim->max_members) {
		free(order);
		return SP_ERR_TOOBIG;
	}
	sp_buf_put_le32(out, history);
	for (size_t i = 0; i < n; i++) {
		const struct crdt_fvec_put *p = order[i];
		if (!p)
			continue;
		sp_buf_put_le32(out, (uint32_t)p->flen);
		sp_buf_append(out, p->field, p->flen);
		sp_buf_put_le32(out, 1);
		sp_buf_put_le64(out, event_ms);
		sp_buf_put_le64(out, ts);
		sp_buf_put_le64(out, node);
		sp_buf_put_le32(out, (uint32_t)p->vlen);
		sp_buf_append(out, crdt__nn(p->v), p->vlen);
	}
	free(order);
	return 0;
}

/* find_group locates field in a checked view: true and *g set, or false. */
static bool find_group(const struct view *v, const uint8_t *field, size_t flen, struct group *g)
{
	struct crdt__rd r;
	crdt__rd_init(&r, v->grp, v->grp_len);
	while (r.left > 0) {
		next_group(&r, g);
		int c = crdt__cmp_bytes(g->f, g->flen, field, flen);
		if (c == 0)
			return true;
		if (c > 0)
			return false;
	}
	return false;
}

int crdt_fvec_find(const uint8_t *s, size_t len, const void *field, size_t flen, uint64_t asof_ms,
		   struct crdt_fvec_entry *out)
{
	struct view v;
	if (parse(s, len, &v) < 0)
		return SP_ERR_CORRUPT;
	struct group g;
	if (!find_group(&v, crdt__nn(field), flen, &g))
		return SP_ERR_NOTFOUND;
	/* Newest first: the first entry not later than asof_ms. */
	struct crdt__rd r = g.ent;
	while (r.left > 0) {
		struct entry en;
		next_entry(&r, &en);
		if (en.e.event_ms <= asof_ms) {
			*out = en.e;
			return 0;
		}
	}
	return SP_ERR_NOTFOUND;
}

int crdt_fvec_walk(const uint8_t *s, size_t len, crdt_fvec_fn fn, void *ctx)
{
	struct view v;
	if (parse(s, len, &v) < 0)
		return SP_ERR_CORRUPT;
	struct crdt__rd r;
	crdt__rd_init(&r, v.grp, v.grp_len);
	while (r.left > 0) {
		struct group g;
		next_group(&r, &g);
		struct crdt__rd re = g.ent;
		for (size_t idx = 0; re.left > 0; idx++) {
			struct entry en;
			next_entry(&re, &en);
			if (fn(ctx, g.f, g.flen, &en.e, idx) != 0)
				return 0;
		}
	}
	return 0;
}

int crdt_fvec_history(const uint8_t *s, size_t len, uint32_t *out)
{
	struct view v;
	if (parse(s, len, &v) < 0)
		return SP_ERR_CORRUPT;
	*out = v.history;
	return 0;
}

int crdt__fvec_describe(const uint8_t *s, size_t len, struct sp_buf *out)
{
	struct view v;
	if (parse(s, len, &v) < 0)
		return SP_ERR_CORRUPT;
	sp_buf_appendf(out, "fvec h=%u {", v.history);
	struct crdt__rd r;
	crdt__rd_init(&r, v.grp, v.grp_len);
	uint64_t shown = 0;
	while (r.left > 0) {
		struct group g;
		next_group(&r, &g);
		if (shown == CRDT__DESC_ENTRIES) {
			sp_buf_appendf(out, ",...+%llu", (unsigned long long)(v.fields - shown));
			break;
		}
		if (shown)
			sp_buf_append_str(out, ",");
		crdt__describe_bytes(g.f, g.flen, out);
		sp_buf_append_str(out, ":[");
		struct crdt__rd re = g.ent;
		for (uint32_t k = 0; re.left > 0; k++) {
			struct entry en;
			next_entry(&re, &en);
			if (k == CRDT__DESC_ENTRIES) {
				sp_buf_appendf(out, ",...+%u", g.n - k);
				break;
			}
			sp_buf_appendf(out, "%s%llu=", k ? "," : "",
				       (unsigned long long)en.e.event_ms);
			crdt__describe_bytes(en.e.v, en.e.vlen, out);
		}
		sp_buf_append_str(out, "]");
		shown++;
	}
	sp_buf_append_str(out, "}");
	return 0;
}
