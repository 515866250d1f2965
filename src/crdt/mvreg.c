/*
 * mvreg.c: the multi-value register (Shapiro et al. 2011, Specification
 * 10), built like the optimized OR-Set (Bieniusa et al. 2012): each value
 * carries the dot of the write that made it, and a version vector VV
 * summarises every write the state has seen. A write at actor i makes the
 * dot (i, VV[i] + 1) and replaces every sibling (the writer saw them all);
 * merge keeps a sibling held by both states, or by one when the other's
 * VV does not cover its dot, so concurrent writes survive side by side and
 * a later write that saw them collapses them again.
 *
 * Layout: VV | (u64 actor | u64 counter | u32 len | bytes)*, siblings
 * strictly ascending by actor (a write replaces the writer's older
 * sibling, so one per actor), every dot covered by VV. Inside the merge
 * siblings are keyed by (actor, counter, value), so two states that give
 * one dot different values (no history does) still merge to a join.
 */
#include "crdt/crdt.h"

#include <limits.h>

#include "crdt/crdt_int.h"

struct view {
	struct crdt__vv vv; /* n = 0 for the empty state */
	const uint8_t *sib; /* the siblings */
	size_t sib_len;
	uint64_t count;
};

struct sibling {
	uint64_t actor, counter;
	const uint8_t *v;
	uint32_t vlen;
	const uint8_t *at; /* the sibling's first byte */
	size_t size;	   /* and its length */
};

static void next_sibling(struct crdt__rd *r, struct sibling *sb)
{
	sb->at = r->p;
	sb->actor = crdt__take_u64(r);
	sb->counter = crdt__take_u64(r);
	sb->vlen = crdt__take_u32(r);
	sb->v = crdt__take_bytes(r, sb->vlen);
	sb->size = (size_t)(r->p - sb->at);
}

/* parse checks s and fills v; 0 or SP_ERR_CORRUPT. */
static int parse(const uint8_t *s, size_t len, struct view *v)
{
	s = crdt__nn(s);
	*v = (struct view){.vv = {s, 0}, .sib = s, .sib_len = 0, .count = 0};
	if (len == 0)
		return 0;
	struct crdt__rd r;
	crdt__rd_init(&r, s, len);
	if (!crdt__vv_read(&r, &v->vv))
		return SP_ERR_CORRUPT;
	v->sib = r.p;
	v->sib_len = r.left;
	uint64_t prev_actor = 0;
	while (r.left > 0) {
		uint64_t actor, counter;
		uint32_t vlen;
		const uint8_t *val;
		if (!crdt__rd_u64(&r, &actor) || !crdt__rd_u64(&r, &counter) ||
		    !crdt__rd_u32(&r, &vlen) || !crdt__rd_bytes(&r, vlen, &val))
			return SP_ERR_CORRUPT;
		/* Ascending actors from 0; counter >= 1 and covered by VV. */
		if (actor <= prev_actor || counter == 0 || counter > crdt__vv_get(&v->vv, actor))
			return SP_ERR_CORRUPT;
		prev_actor = actor;
		v->count++;
	}
	return 0;
}

int crdt__mvreg_check(const uint8_t *s, size_t len)
{
	struct view v;
	return parse(s, len, &v);
}

static int sibling_cmp(const struct sibling *a, const struct sibling *b)
{
	int c = crdt__cmp_u64(a->actor, b->actor);
	if (c == 0)
		c = crdt__cmp_u64(a->counter, b->counter);
	if (c == 0)
		c = crdt__cmp_bytes(a->v, a->vlen, b->v, b->vlen);
	return c;
}

int crdt__mvreg_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		      struct sp_buf *out)
{
	struct view va, vb;
	if (parse(a, alen, &va) < 0 || parse(b, blen, &vb) < 0)
		return SP_ERR_CORRUPT;
	if (va.vv.n == 0 && vb.vv.n == 0)
		return 0;
	crdt__vv_put_merge(&va.vv, &vb.vv, out);
	struct crdt__rd ra, rb;
	crdt__rd_init(&ra, va.sib, va.sib_len);
	crdt__rd_init(&rb, vb.sib, vb.sib_len);
	struct sibling sa = {0}, sb = {0};
	bool ha = ra.left > 0, hb = rb.left > 0;
	if (ha)
		next_sibling(&ra, &sa);
	if (hb)
		next_sibling(&rb, &sb);
	while (ha || hb) {
		int c = !ha ? 1 : !hb ? -1 : sibling_cmp(&sa, &sb);
		if (c == 0)
			sp_buf_append(out, sa.at, sa.size);
		else if (c < 0 && sa.counter > crdt__vv_get(&vb.vv, sa.actor))
			sp_buf_append(out, sa.at, sa.size);
		else if (c > 0 && sb.counter > crdt__vv_get(&va.vv, sb.actor))
			sp_buf_append(out, sb.at, sb.size);
		if (c <= 0) {
			ha = ra.left > 0;
			if (ha)
				next_sibling(&ra, &sa);
		}
		if (c >= 0) {
			hb = rb.left > 0;
			if (hb)
				next_sibling(&rb, &sb);
		}
	}
	return 0;
}

int crdt_mvreg_set(const uint8_t *s, size_t len, uint64_t actor, const void *v, size_t vlen,
		   const struct crdt_limits *lim, struct sp_buf *out)
{
	v = crdt__nn(v);
	if (actor == 0)
		return SP_ERR_INVAL;
	struct view view;
	if (parse(s, len, &view) < 0)
		return SP_ERR_CORRUPT;
	if (!crdt__len_ok(lim, vlen))
		return SP_ERR_TOOBIG;
	uint64_t counter = crdt__vv_get(&view.vv, actor);
	if (counter == UINT64_MAX)
		return SP_ERR_RANGE;
	crdt__vv_put_bump(&view.vv, actor, counter + 1, out);
	sp_buf_put_le64(out, actor);
	sp_buf_put_le64(out, counter + 1);
	sp_buf_put_le32(out, (uint32_t)vlen);
	sp_buf_append(out, v, vlen);
	return 0;
}

int crdt_mvreg_values(const uint8_t *s, size_t len, crdt_member_fn fn, void *ctx)
{
	struct view view;
	if (parse(s, len, &view) < 0)
		return SP_ERR_CORRUPT;
	struct crdt__rd r;
	crdt__rd_init(&r, view.sib, view.sib_len);
	int visited = 0;
	while (r.left > 0) {
		struct sibling sb;
		next_sibling(&r, &sb);
		if (visited == INT_MAX)
			return SP_ERR_RANGE;
		visited++;
		if (fn(ctx, sb.v, sb.vlen) != 0)
			break;
	}
	return visited;
}

int crdt_mvreg_count(const uint8_t *s, size_t len, uint64_t *out)
{
	struct view view;
	if (parse(s, len, &view) < 0)
		return SP_ERR_CORRUPT;
	*out = view.count;
	return 0;
}

int crdt__mvreg_describe(const uint8_t *s, size_t len, struct sp_buf *out)
{
	struct view view;
	if (parse(s, len, &view) < 0)
		return SP_ERR_CORRUPT;
	sp_buf_append_str(out, "mvreg ");
	crdt__vv_describe(&view.vv, out);
	sp_buf_append_str(out, " {");
	struct crdt__rd r;
	crdt__rd_init(&r, view.sib, view.sib_len);
	uint64_t shown = 0;
	while (r.left > 0) {
		struct sibling sb;
		next_sibling(&r, &sb);
		if (shown == CRDT__DESC_ENTRIES) {
			sp_buf_appendf(out, ",...+%llu", (unsigned long long)(view.count - shown));
			break;
		}
		sp_buf_appendf(out, "%s%llu:%llu=", shown ? "," : "", (unsigned long long)sb.actor,
			       (unsigned long long)sb.counter);
		crdt__describe_bytes(sb.v, sb.vlen, out);
		shown++;
	}
	sp_buf_append_str(out, "}");
	return 0;
}
