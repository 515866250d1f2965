/*
 * orset.c: the add-wins observed-remove set, optimized (Bieniusa et al.
 * 2012, "An optimized conflict-free replicated set"): no tombstones, but
 * a version vector VV that summarises every add the state has seen.
 *
 * Each live member carries the dots (actor, counter) of the adds that put
 * it there and that no remove has observed. An add at actor i makes the
 * dot (i, VV[i] + 1) and replaces the member's dots (the adder observed
 * them); a remove drops the member's dots and leaves VV alone, so the
 * removal is remembered: those dots are covered by VV but absent. Merge
 * (the paper's Algorithm 2) keeps (m, d) when both states hold it, or
 * when one holds it and the other's VV does not cover d (the other has
 * not seen that add, so cannot have removed it); VV is the pointwise max.
 * Per (member, dot) that is the join of the chain unseen < present <
 * removed, which is why the merge is a join even for states no history
 * produces.
 *
 * Layout: VV | (u32 len | bytes | u32 ndots | ndots x (u64 actor | u64
 * counter))*, members strictly ascending, a member's dots strictly
 * ascending by actor (an add replaces the adder's older dot, so one per
 * actor), every dot covered by VV.
 */
#include "crdt/crdt.h"

#include <limits.h>

#include "crdt/crdt_int.h"

#define DOT 16

struct view {
	struct crdt__vv vv; /* n = 0 for the empty state */
	const uint8_t *ent; /* the member groups */
	size_t ent_len;
	uint64_t groups; /* live members */
};

struct group {
	const uint8_t *m;
	uint32_t mlen;
	uint32_t ndots;
	const uint8_t *dots;
	size_t off, end; /* the group's bytes within view.ent */
};

/* next_group reads the group at r (already checked); base is view.ent. */
static void next_group(struct crdt__rd *r, const uint8_t *base, struct group *g)
{
	g->off = (size_t)(r->p - base);
	g->mlen = crdt__take_u32(r);
	g->m = crdt__take_bytes(r, g->mlen);
	g->ndots = crdt__take_u32(r);
	g->dots = crdt__take_bytes(r, (size_t)g->ndots * DOT);
	g->end = (size_t)(r->p - base);
}

/* parse checks s and fills v; 0 or SP_ERR_CORRUPT. */
static int parse(const uint8_t *s, size_t len, struct view *v)
{
	s = crdt__nn(s);
	*v = (struct view){.vv = {s, 0}, .ent = s, .ent_len = 0, .groups = 0};
	if (len == 0)
		return 0;
	struct crdt__rd r;
	crdt__rd_init(&r, s, len);
	if (!crdt__vv_read(&r, &v->vv))
		return SP_ERR_CORRUPT;
	v->ent = r.p;
	v->ent_len = r.left;
	const uint8_t *prev = NULL;
	uint32_t prev_len = 0;
	while (r.left > 0) {
		const uint8_t *m;
		uint32_t mlen, ndots;
		if (!crdt__rd_u32(&r, &mlen) || !crdt__rd_bytes(&r, mlen, &m) ||
		    !crdt__rd_u32(&r, &ndots) || ndots == 0 || ndots > r.left / DOT)
			return SP_ERR_CORRUPT;
		const uint8_t *dots = crdt__take_bytes(&r, (size_t)ndots * DOT);
		if (v->groups > 0 && crdt__cmp_bytes(prev, prev_len, m, mlen) >= 0)
			return SP_ERR_CORRUPT;
		uint64_t prev_actor = 0;
		for (uint32_t k = 0; k < ndots; k++) {
			uint64_t actor = sp_get_le64(dots + (size_t)k * DOT);
			uint64_t counter = sp_get_le64(dots + (size_t)k * DOT + 8);
			/* counter >= 1 and covered: an actor absent from VV
			 * (VV[actor] = 0) fails, actor 0 included. */
			if (actor <= prev_actor || counter == 0 ||
			    counter > crdt__vv_get(&v->vv, actor))
				return SP_ERR_CORRUPT;
			prev_actor = actor;
		}
		prev = m;
		prev_len = mlen;
		v->groups++;
	}
	return 0;
}

int crdt__orset_check(const uint8_t *s, size_t len, uint64_t *live)
{
	struct view v;
	if (parse(s, len, &v) < 0)
		return SP_ERR_CORRUPT;
	*live = v.groups;
	return 0;
}

/* An iterator over the (member, dot) entries of a checked view, in
 * canonical order. */
struct entry_it {
	struct crdt__rd r;
	const uint8_t *base;
	struct group g;
	uint32_t k; /* next dot of g */
	bool has;
	uint64_t actor, counter;
};

static void it_next(struct entry_it *it)
{
	if (it->k == it->g.ndots) {
		if (it->r.left == 0) {
			it->has = false;
			return;
		}
		next_group(&it->r, it->base, &it->g);
		it->k = 0;
	}
	it->actor = sp_get_le64(it->g.dots + (size_t)it->k * DOT);
	it->counter = sp_get_le64(it->g.dots + (size_t)it->k * DOT + 8);
	it->k++;
	it->has = true;
}

static void it_init(struct entry_it *it, const struct view *v)
{
	crdt__rd_init(&it->r, v->ent, v->ent_len);
	it->base = v->ent;
	it->g = (struct group){0};
	it->k = 0;
	it_next(it);
}

static int it_cmp(const struct entry_it *a, const struct entry_it *b)
{
	int c = crdt__cmp_bytes(a->g.m, a->g.mlen, b->g.m, b->g.mlen);
	if (c == 0)
		c = crdt__cmp_u64(a->actor, b->actor);
	if (c == 0)
		c = crdt__cmp_u64(a->counter, b->counter);
	return c;
}

/* Writes member groups one dot at a time, opening a group when the
 * member changes and patching its dot count when it closes. */
struct group_writer {
	struct sp_buf *out;
	const uint8_t *m;
	uint32_t mlen;
	bool open;
	size_t ndots_at; /* offset of the open group's ndots */
	uint32_t ndots;
};

static void gw_close(struct group_writer *w)
{
	if (w->open)
		sp_buf_patch_le32(w->out, w->ndots_at, w->ndots);
	w->open = false;
}

static void gw_dot(struct group_writer *w, const uint8_t *m, uint32_t mlen, uint64_t actor,
		   uint64_t counter)
{
	if (!w->open || crdt__cmp_bytes(w->m, w->mlen, m, mlen) != 0) {
		gw_close(w);
		sp_buf_put_le32(w->out, mlen);
		sp_buf_append(w->out, m, mlen);
		w->ndots_at = w->out->len;
		sp_buf_put_le32(w->out, 0);
		w->m = m;
		w->mlen = mlen;
		w->ndots = 0;
		w->open = true;
	}
	sp_buf_put_le64(w->out, actor);
	sp_buf_put_le64(w->out, counter);
	w->ndots++;
}

int crdt__orset_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		      struct sp_buf *out)
{
	struct view va, vb;
	if (parse(a, alen, &va) < 0 || parse(b, blen, &vb) < 0)
		return SP_ERR_CORRUPT;
	if (va.vv.n == 0 && vb.vv.n == 0)
		return 0; /* bottom and bottom */
	crdt__vv_put_merge(&va.vv, &vb.vv, out);
	struct entry_it ia, ib;
	it_init(&ia, &va);
	it_init(&ib, &vb);
	struct group_writer w = {.out = out};
	while (ia.has || ib.has) {
		int c = !ia.has ? 1 : !ib.has ? -1 : it_cmp(&ia, &ib);
		if (c == 0) {
			gw_dot(&w, ia.g.m, ia.g.mlen, ia.actor, ia.counter);
			it_next(&ia);
			it_next(&ib);
		} else if (c < 0) {
			if (ia.counter > crdt__vv_get(&vb.vv, ia.actor))
				gw_dot(&w, ia.g.m, ia.g.mlen, ia.actor, ia.counter);
			it_next(&ia);
		} else {
			if (ib.counter > crdt__vv_get(&va.vv, ib.actor))
				gw_dot(&w, ib.g.m, ib.g.mlen, ib.actor, ib.counter);
			it_next(&ib);
		}
	}
	gw_close(&w);
	return 0;
}

/* find locates m's group in a checked view: true and *g set when m is
 * live, else false and g->off = g->end the offset its group would take. */
static bool find(const struct view *v, const uint8_t *m, size_t mlen, struct group *g)
{
	struct crdt__rd r;
	crdt__rd_init(&r, v->ent, v->ent_len);
	while (r.left > 0) {
		next_group(&r, v->ent, g);
		int c = crdt__cmp_bytes(g->m, g->mlen, m, mlen);
		if (c == 0)
			return true;
		if (c > 0) {
			g->end = g->off; /* m goes before this group */
			return false;
		}
	}
	g->off = g->end = v->ent_len;
	return false;
}

int crdt_orset_add(const uint8_t *s, size_t len, uint64_t actor, const void *m, size_t mlen,
		   const struct crdt_limits *lim, struct sp_buf *out, int *added)
{
	m = crdt__nn(m);
	if (actor == 0)
		return SP_ERR_INVAL;
	struct view v;
	if (parse(s, len, &v) < 0)
		return SP_ERR_CORRUPT;
	if (!crdt__len_ok(lim, mlen))
		return SP_ERR_TOOBIG;
	uint64_t counter = crdt__vv_get(&v.vv, actor);
	if (counter == UINT64_MAX)
		return SP_ERR_RANGE;
	struct group g;
	bool found = find(&v, m, mlen, &g);
	if (!found && !crdt__room(lim, v.groups))
		return SP_ERR_TOOBIG;
	crdt__vv_put_bump(&v.vv, actor, counter + 1, out);
	sp_buf_append(out, v.ent, g.off);
	sp_buf_put_le32(out, (uint32_t)mlen);
	sp_buf_append(out, m, mlen);
	sp_buf_put_le32(out, 1);
	sp_buf_put_le64(out, actor);
	sp_buf_put_le64(out, counter + 1);
	sp_buf_append(out, v.ent + g.end, v.ent_len - g.end);
	if (added)
		*added = !found;
	return 0;
}

int crdt_orset_remove(const uint8_t *s, size_t len, const void *m, size_t mlen, struct sp_buf *out,
		      int *removed)
{
	s = crdt__nn(s);
	m = crdt__nn(m);
	struct view v;
	if (parse(s, len, &v) < 0)
		return SP_ERR_CORRUPT;
	struct group g;
	bool found = find(&v, m, mlen, &g);
	if (found) {
		/* Everything before the group (VV included), then after it. */
		size_t head = (size_t)(v.ent - s) + g.off;
		sp_buf_append(out, s, head);
		sp_buf_append(out, v.ent + g.end, v.ent_len - g.end);
	} else {
		sp_buf_append(out, s, len);
	}
	if (removed)
		*removed = found;
	return 0;
}

int crdt__orset_members(const uint8_t *s, size_t len, crdt_member_fn fn, void *ctx)
{
	struct view v;
	if (parse(s, len, &v) < 0)
		return SP_ERR_CORRUPT;
	struct crdt__rd r;
	crdt__rd_init(&r, v.ent, v.ent_len);
	int visited = 0;
	while (r.left > 0) {
		struct group g;
		next_group(&r, v.ent, &g);
		if (visited == INT_MAX)
			return SP_ERR_RANGE;
		visited++;
		if (fn(ctx, g.m, g.mlen) != 0)
			break;
	}
	return visited;
}

int crdt__orset_contains(const uint8_t *s, size_t len, const uint8_t *m, size_t mlen)
{
	struct view v;
	if (parse(s, len, &v) < 0)
		return SP_ERR_CORRUPT;
	struct group g;
	return find(&v, m, mlen, &g);
}

int crdt__orset_describe(const uint8_t *s, size_t len, struct sp_buf *out)
{
	struct view v;
	if (parse(s, len, &v) < 0)
		return SP_ERR_CORRUPT;
	sp_buf_append_str(out, "orset ");
	crdt__vv_describe(&v.vv, out);
	sp_buf_append_str(out, " {");
	struct crdt__rd r;
	crdt__rd_init(&r, v.ent, v.ent_len);
	uint64_t shown = 0;
	while (r.left > 0) {
		struct group g;
		next_group(&r, v.ent, &g);
		if (shown == CRDT__DESC_ENTRIES) {
			sp_buf_appendf(out, ",...+%llu", (unsigned long long)(v.groups - shown));
			break;
		}
		if (shown)
			sp_buf_append_str(out, ",");
		crdt__describe_bytes(g.m, g.mlen, out);
		for (uint32_t k = 0; k < g.ndots; k++) {
			const uint8_t *d = g.dots + (size_t)k * DOT;
			sp_buf_appendf(out, "@%llu:%llu", (unsigned long long)sp_get_le64(d),
				       (unsigned long long)sp_get_le64(d + 8));
		}
		shown++;
	}
	sp_buf_append_str(out, "}");
	return 0;
}
