/*
 * model: the model registry's record codec. See model.h.
 */
#include "server/model.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/endian.h"
#include "common/err.h"

#define HDR_LEN		9u		    /* format, nversions, naliases */
#define VERSION_MIN_LEN (8 + 8 + 4 + 1 + 4) /* a 1-byte uri, no meta */
#define ALIAS_FIXED_LEN (1 + 8 + 8 + 8)	    /* all but the name */
#define MAX_INT64	((uint64_t)INT64_MAX)

void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
}

void model_close(struct model *m)
{
	if (!m)
		return;
	free(m->versions);
	free(m->aliases);
	model_init(m);
}

/* name_cmp orders alias names: memcmp over the common length, then the
 * shorter first. */
static int name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* A cursor over bytes being decoded: every take checks what is left. */
struct reader {
	const uint8_t *p;
	size_t left;
};

static int take(struct reader *r, size_t n, const uint8_t **out)
{
	if (n > r->left)
		return -1;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

static int take_u8(struct reader *r, uint8_t *v)
{
	const uint8_t *p;
	if (take(r, 1, &p))
		return -1;
	*v = p[0];
	return 0;
}

static int take_u32(struct reader *r, uint32_t *v)
{
	const uint8_t *p;
	if (take(r, 4, &p))
		return -1;
	*v = sp_get_le32(p);
	return 0;
}

/* take_i64 reads a u64 that must be at most INT64_MAX. */
static int take_i64(struct reader *r, uint64_t *v)
{
	const uint8_t *p;
	if (take(r, 8, &p))
		return -1;
	*v = sp_get_le64(p);
	return *v > MAX_INT64 ? -1 : 0;
}

static int decode_version(struct reader *r, struct model_version *v)
{
	uint32_t len;
	if (take_i64(r, &v->registered_ms) || take_i64(r, &v->schema) || take_u32(r, &len) ||
	    len == 0 || len > MODEL_MAX_URI || take(r, len, &v->uri))
		return -1;
	v->uri_len = len;
	if (take_u32(r, &len) || take(r, len, &v->meta))
		return -1;
	v->meta_len = len;
	if (len == 0)
		v->meta = NULL;
	return 0;
}

static int decode_alias(struct reader *r, uint64_t nversions, struct model_alias *a)
{
	uint8_t len;
	if (take_u8(r, &len) || len == 0 || len > MODEL_MAX_ALIAS_LEN || take(r, len, &a->name))
		return -1;
	a->name_len = len;
	if (take_i64(r, &a->version) || a->version == 0 || a->version > nversions ||
	    take_i64(r, &a->schema) || take_i64(r, &a->set_ms))
		return -1;
	return 0;
}

int model_decode(struct model *m, const void *p, size_t len)
{
	model_close(m);
	struct reader r = {p, len};
	uint8_t format;
	uint32_t nversions, naliases;
	if (take_u8(&r, &format) || format != MODEL_FORMAT || take_u32(&r, &nversions) ||
	    take_u32(&r, &naliases))
		return SP_ERR_CORRUPT;
	/* The counts are checked against what the bytes could hold before
	 * anything is allocated for them. */
	if (nversions == 0 || nversions > MODEL_MAX_VERSIONS || naliases > MODEL_MAX_ALIASES ||
	    (uint64_t)nversions * VERSION_MIN_LEN + (uint64_t)naliases * (ALIAS_FIXED_LEN + 1) >
		r.left)
		return SP_ERR_CORRUPT;
	m->versions = sp_calloc(nversions, sizeof(*m->versions));
	m->versions_cap = nversions;
	for (uint32_t i = 0; i < nversions; i++) {
		if (decode_version(&r, &m->versions[i]))
			goto corrupt;
		m->nversions++;
	}
	if (naliases) {
		m->aliases = sp_calloc(naliases, sizeof(*m->aliases));
		m->aliases_cap = naliases;
	}
	for (uint32_t i = 0; i < naliases; i++) {
		struct model_alias *a = &m->aliases[i];
		if (decode_alias(&r, nversions, a))
			goto corrupt;
		if (i > 0 && name_cmp(a[-1].name, a[-1].name_len, a->name, a->name_len) >= 0)
			goto corrupt;
		m->naliases++;
	}
	if (r.left != 0)
		goto corrupt;
	return 0;
corrupt:
	model_close(m);
	return SP_ERR_CORRUPT;
}

uint64_t model_encoded_len(const struct model *m)
{
	uint64_t n = HDR_LEN;
	for (size_t i = 0; i < m->nversions; i++)
		n += 8 + 8 + 4 + m->versions[i].uri_len + 4 + m->versions[i].meta_len;
	for (size_t i = 0; i < m->naliases; i++)
		n += ALIAS_FIXED_LEN + m->aliases[i].name_len;
	return n;
}

void model_encode(const struct model *m, struct sp_buf *out)
{
	sp_buf_reserve(out, (size_t)model_encoded_len(m));
	sp_buf_put_u8(out, MODEL_FORMAT);
	sp_buf_put_le32(out, (uint32_t)m->nversions);
	sp_buf_put_le32(out, (uint32_t)m->naliases);
	for (size_t i = 0; i < m->nversions; i++) {
		const struct model_version *v = &m->versions[i];
		sp_buf_put_le64(out, v->registered_ms);
		sp_buf_put_le64(out, v->schema);
		sp_buf_put_le32(out, (uint32_t)v->uri_len);
		sp_buf_append(out, v->uri, v->uri_len);
		sp_buf_put_le32(out, (uint32_t)v->meta_len);
		if (v->meta_len)
			sp_buf_append(out, v->meta, v->meta_len);
	}
	for (size_t i = 0; i < m->naliases; i++) {
		const struct model_alias *a = &m->aliases[i];
		sp_buf_put_u8(out, (uint8_t)a->name_len);
		sp_buf_append(out, a->name, a->name_len);
		sp_buf_put_le64(out, a->version);
		sp_buf_put_le64(out, a->schema);
		sp_buf_put_le64(out, a->set_ms);
	}
}

const struct model_version *model_version(const struct model *m, uint64_t n)
{
	if (n == 0 || n > m->nversions)
		return NULL;
	return &m->versions[n - 1];
}

/* alias_search returns the index of the alias named name, or of the place
 * where it would go, with *found set accordingly (binary search). */
static size_t alias_search(const struct model *m, const void *name, size_t len, int *found)
{
	size_t lo = 0, hi = m->naliases;
	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct model_alias *a = &m->aliases[mid];
		int c = name_cmp(a->name, a->name_len, name, len);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct model_alias *model_alias_find(const struct model *m, const void *name, size_t len)
{
	int found;
	size_t i = alias_search(m, name, len, &found);
	return found ? &m->aliases[i] : NULL;
}

int model_append_version(struct model *m, const struct model_version *v, uint64_t *number)
{
	if (m->nversions >= MODEL_MAX_VERSIONS)
		return SP_ERR_FULL;
	if (v->uri_len == 0 || v->uri_len > MODEL_MAX_URI || !v->uri || (v->meta_len && !v->meta) ||
	    v->meta_len > UINT32_MAX || v->registered_ms > MAX_INT64 || v->schema > MAX_INT64)
		return SP_ERR_INVAL;
	if (m->nversions == m->versions_cap) {
		size_t cap = m->versions_cap ? m->versions_cap * 2 : 8;
		m->versions = sp_realloc(m->versions, cap * sizeof(*m->versions));
		m->versions_cap = cap;
	}
	m->versions[m->nversions] = *v;
	if (v->meta_len == 0)
		m->versions[m->nversions].meta = NULL;
	m->nversions++;
	*number = m->nversions;
	return 0;
}

int model_alias_set(struct model *m, const void *name, size_t len, uint64_t version,
		    uint64_t schema, uint64_t set_ms)
{
	if (len == 0 || len > MODEL_MAX_ALIAS_LEN || !name || version == 0 ||
	    version > m->nversions || schema > MAX_INT64 || set_ms > MAX_INT64)
		return SP_ERR_INVAL;
	int found;
	size_t i = alias_search(m, name, len, &found);
	if (!found) {
		if (m->naliases >= MODEL_MAX_ALIASES)
			return SP_ERR_FULL;
		if (m->naliases == m->aliases_cap) {
			size_t cap = m->aliases_cap ? m->aliases_cap * 2 : 4;
			m->aliases = sp_realloc(m->aliases, cap * sizeof(*m->aliases));
			m->aliases_cap = cap;
		}
		memmove(&m->aliases[i + 1], &m->aliases[i],
			(m->naliases - i) * sizeof(*m->aliases));
		m->naliases++;
	}
	struct model_alias *a = &m->aliases[i];
	a->name = name;
	a->name_len = len;
	a->version = version;
	a->schema = schema;
	a->set_ms = set_ms;
	return 0;
}

int model_alias_remove(struct model *m, const void *name, size_t len)
{
	int found;
	size_t i = alias_search(m, name, len, &found);
	if (!found)
		return 0;
	memmove(&m->aliases[i], &m->aliases[i + 1], (m->naliases - i - 1) * sizeof(*m->aliases));
	m->naliases--;
	return 1;
}
