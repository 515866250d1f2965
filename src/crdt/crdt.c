/*
 * crdt.c: dispatch by type byte, and the helpers the type files share:
 * version vectors (the compacted causal context of Bieniusa et al. 2012)
 * and the escaping used by descriptions.
 */
#include "crdt/crdt.h"

#include "crdt/crdt_int.h"

const char *crdt_type_name(uint8_t type)
{
	switch (type) {
	case CRDT_GCOUNTER:
		return "gcounter";
	case CRDT_PNCOUNTER:
		return "pncounter";
	case CRDT_GSET:
		return "gset";
	case CRDT_2PSET:
		return "2pset";
	case CRDT_ORSET:
		return "orset";
	case CRDT_LWW:
		return "lww";
	case CRDT_MVREG:
		return "mvreg";
	case CRDT_FVEC:
		return "fvec";
	default:
		return NULL;
	}
}

int crdt_validate(uint8_t type, const uint8_t *s, size_t len)
{
	uint64_t a, b;
	s = crdt__nn(s);
	switch (type) {
	case CRDT_GCOUNTER:
		return crdt__gcounter_check(s, len);
	case CRDT_PNCOUNTER:
		return crdt__pncounter_check(s, len);
	case CRDT_GSET:
		return crdt__gset_check(s, len, &a);
	case CRDT_2PSET:
		return crdt__tpset_check(s, len, &a, &b);
	case CRDT_ORSET:
		return crdt__orset_check(s, len, &a);
	case CRDT_LWW:
		return crdt__lww_check(s, len);
	case CRDT_MVREG:
		return crdt__mvreg_check(s, len);
	case CRDT_FVEC:
		return crdt__fvec_check(s, len);
	default:
		return SP_ERR_INVAL;
	}
}

int crdt_merge(uint8_t type, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
	       struct sp_buf *out)
{
	size_t mark = out->len;
	int rc;
	a = crdt__nn(a);
	b = crdt__nn(b);
	switch (type) {
	case CRDT_GCOUNTER:
		rc = crdt__gcounter_merge(a, alen, b, blen, out);
		break;
	case CRDT_PNCOUNTER:
		rc = crdt__pncounter_merge(a, alen, b, blen, out);
		break;
	case CRDT_GSET:
		rc = crdt__gset_merge(a, alen, b, blen, out);
		break;
	case CRDT_2PSET:
		rc = crdt__tpset_merge(a, alen, b, blen, out);
		break;
	case CRDT_ORSET:
		rc = crdt__orset_merge(a, alen, b, blen, out);
		break;
	case CRDT_LWW:
		rc = crdt__lww_merge(a, alen, b, blen, out);
		break;
	case CRDT_MVREG:
		rc = crdt__mvreg_merge(a, alen, b, blen, out);
		break;
	case CRDT_FVEC:
		rc = crdt__fvec_merge(a, alen, b, blen, out);
		break;
	default:
		return SP_ERR_INVAL;
	}
	if (rc < 0)
		out->len = mark;
	return rc;
}

int crdt_describe(uint8_t type, const uint8_t *s, size_t len, struct sp_buf *out)
{
	s = crdt__nn(s);
	int rc = crdt_validate(type, s, len);
	if (rc < 0)
		return rc;
	switch (type) {
	case CRDT_GCOUNTER:
		return crdt__gcounter_describe(s, len, out);
	case CRDT_PNCOUNTER:
		return crdt__pncounter_describe(s, len, out);
	case CRDT_GSET:
		return crdt__gset_describe(s, len, out);
	case CRDT_2PSET:
		return crdt__tpset_describe(s, len, out);
	case CRDT_ORSET:
		return crdt__orset_describe(s, len, out);
	case CRDT_LWW:
		return crdt__lww_describe(s, len, out);
	case CRDT_FVEC:
		return crdt__fvec_describe(s, len, out);
	default:
		return crdt__mvreg_describe(s, len, out);
	}
}

int crdt_set_members(uint8_t type, const uint8_t *s, size_t len, crdt_member_fn fn, void *ctx)
{
	s = crdt__nn(s);
	switch (type) {
	case CRDT_GSET:
		return crdt__gset_members(s, len, fn, ctx);
	case CRDT_2PSET:
		return crdt__tpset_members(s, len, fn, ctx);
	case CRDT_ORSET:
		return crdt__orset_members(s, len, fn, ctx);
	default:
		return SP_ERR_INVAL;
	}
}

int crdt_set_contains(uint8_t type, const uint8_t *s, size_t len, const void *m, size_t mlen)
{
	s = crdt__nn(s);
	m = crdt__nn(m);
	switch (type) {
	case CRDT_GSET:
		return crdt__gset_contains(s, len, m, mlen);
	case CRDT_2PSET:
		return crdt__tpset_contains(s, len, m, mlen);
	case CRDT_ORSET:
		return crdt__orset_contains(s, len, m, mlen);
	default:
		return SP_ERR_INVAL;
	}
}

int crdt_set_count(uint8_t type, const uint8_t *s, size_t len, uint64_t *out)
{
	s = crdt__nn(s);
	uint64_t entries;
	switch (type) {
	case CRDT_GSET:
		return crdt__gset_check(s, len, out);
	case CRDT_2PSET:
		return crdt__tpset_check(s, len, &entries, out);
	case CRDT_ORSET:
		return crdt__orset_check(s, len, out);
	default:
		return SP_ERR_INVAL;
	}
}

/* ---------------------------------------------------------------------- */
/* Version vectors                                                         */

bool crdt__vv_read(struct crdt__rd *r, struct crdt__vv *vv)
{
	uint32_t n;
	if (!crdt__rd_u32(r, &n) || n == 0 || n > r->left / CRDT__VV_ENTRY)
		return false;
	vv->p = r->p;
	vv->n = n;
	uint64_t prev = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t actor = crdt__take_u64(r);
		uint64_t counter = crdt__take_u64(r);
		/* Strictly ascending from 0 also refuses actor 0. */
		if (actor <= prev || counter == 0)
			return false;
		prev = actor;
	}
	return true;
}

uint64_t crdt__vv_get(const struct crdt__vv *vv, uint64_t actor)
{
	uint32_t lo = 0, hi = vv->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint64_t a = sp_get_le64(vv->p + (size_t)mid * CRDT__VV_ENTRY);
		if (a == actor)
			return sp_get_le64(vv->p + (size_t)mid * CRDT__VV_ENTRY + 8);
		if (a < actor)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

void crdt__vv_put_merge(const struct crdt__vv *a, const struct crdt__vv *b, struct sp_buf *out)
{
	size_t count_at = out->len;
	uint32_t i = 0, j = 0, n = 0;
	sp_buf_put_le32(out, 0);
	while (i < a->n || j < b->n) {
		const uint8_t *ea = i < a->n ? a->p + (size_t)i * CRDT__VV_ENTRY : NULL;
		const uint8_t *eb = j < b->n ? b->p + (size_t)j * CRDT__VV_ENTRY : NULL;
		int c = !ea ? 1 : !eb ? -1 : crdt__cmp_u64(sp_get_le64(ea), sp_get_le64(eb));
		if (c < 0) {
			sp_buf_append(out, ea, CRDT__VV_ENTRY);
			i++;
		} else if (c > 0) {
			sp_buf_append(out, eb, CRDT__VV_ENTRY);
			j++;
		} else {
			uint64_t ca = sp_get_le64(ea + 8), cb = sp_get_le64(eb + 8);
			sp_buf_append(out, ca >= cb ? ea : eb, CRDT__VV_ENTRY);
			i++;
			j++;
		}
		n++;
	}
	sp_buf_patch_le32(out, count_at, n);
}

void crdt__vv_put_bump(const struct crdt__vv *vv, uint64_t actor, uint64_t counter,
		       struct sp_buf *out)
{
	uint32_t i = 0;
	while (i < vv->n && sp_get_le64(vv->p + (size_t)i * CRDT__VV_ENTRY) < actor)
		i++;
	bool present = i < vv->n && sp_get_le64(vv->p + (size_t)i * CRDT__VV_ENTRY) == actor;
	sp_buf_put_le32(out, vv->n + (present ? 0 : 1));
	sp_buf_append(out, vv->p, (size_t)i * CRDT__VV_ENTRY);
	sp_buf_put_le64(out, actor);
	sp_buf_put_le64(out, counter);
	uint32_t rest = i + (present ? 1 : 0);
	sp_buf_append(out, vv->p + (size_t)rest * CRDT__VV_ENTRY,
		      (size_t)(vv->n - rest) * CRDT__VV_ENTRY);
}

void crdt__vv_describe(const struct crdt__vv *vv, struct sp_buf *out)
{
	sp_buf_append_str(out, "vv={");
	for (uint32_t i = 0; i < vv->n; i++) {
		if (i == CRDT__DESC_ENTRIES) {
			sp_buf_appendf(out, ",...+%u", vv->n - i);
			break;
		}
		const uint8_t *e = vv->p + (size_t)i * CRDT__VV_ENTRY;
		sp_buf_appendf(out, "%s%llu:%llu", i ? "," : "", (unsigned long long)sp_get_le64(e),
			       (unsigned long long)sp_get_le64(e + 8));
	}
	sp_buf_append_str(out, "}");
}

void crdt__describe_bytes(const uint8_t *p, size_t n, struct sp_buf *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t shown = n < CRDT__DESC_BYTES ? n : CRDT__DESC_BYTES;
	sp_buf_append_str(out, "\"");
	for (size_t i = 0; i < shown; i++) {
		uint8_t c = p[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			sp_buf_append(out, &c, 1);
		} else {
			char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
			sp_buf_append(out, esc, 4);
		}
	}
	if (shown < n)
		sp_buf_append_str(out, "...");
	sp_buf_append_str(out, "\"");
}
