/*
 * test_model: the model registry's record codec (src/server/model.c).
 *
 * A round-trip property over random models (1..60 versions of random
 * binary uris and metas, empty metas and NUL bytes included, 0..40
 * aliases set in random order, times and schemas at the edges): decode
 * gives back every field, and the bytes re-encode exactly. The exact
 * bytes of one small record pin the little-endian layout. The refusals a
 * decoder of stored bytes owes: every truncation of a valid record (each
 * cut copied to a buffer of exactly its size, so ASan under make check
 * sees any read past the end), trailing bytes, a bad format byte, no
 * versions, counts past the limits or past what the bytes could hold,
 * uri and alias-name lengths out of range, aliases out of order or
 * repeated, an alias pointing at no version, times and schemas above
 * INT64_MAX; and random byte flips of valid records, which must be
 * refused or re-encode to themselves. Last, the editing calls and their
 * limits: 100000 versions, 256 aliases, names and uris out of range.
 * Randomised tests print their seed when they fail; set SPECTRA_SEED to
 * replay one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../lib/testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "server/model.h"

static uint64_t base_seed; /* printed once; SPECTRA_SEED replays */
static uint64_t rng;

static void seed_test(const char *name)
{
	rng = tu_stream(base_seed, name);
}

static uint64_t rnd_below(uint64_t n)
{
	return tu_rnd(&rng, n);
}

/* rnd_i64 favours the edges (0, 1, INT64_MAX) as well as the middle. */
static uint64_t rnd_i64(void)
{
	switch (rnd_below(4)) {
	case 0:
		return rnd_below(2);
	case 1:
		return (uint64_t)INT64_MAX - rnd_below(2);
	case 2:
		return rnd_below(100000);
	default:
		return tu_splitmix(&rng) >> 1;
	}
}

/* rnd_bytes returns len random bytes (a quarter of them NUL), owned by
 * the caller; NULL when len is 0. */
static uint8_t *rnd_bytes(size_t len)
{
	if (len == 0)
		return NULL;
	uint8_t *p = malloc(len);
	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = rnd_below(4) == 0 ? 0 : (uint8_t)tu_splitmix(&rng);
	return p;
}

/* A random model with the bytes it points to, which the test owns. */
struct xmodel {
	struct model m;
	uint8_t **owned;
	size_t nowned;
};

static const uint8_t *own(struct xmodel *x, uint8_t *p)
{
	x->owned = realloc(x->owned, (x->nowned + 1) * sizeof(*x->owned));
	assert_non_null(x->owned);
	x->owned[x->nowned++] = p;
	return p;
}

static void rnd_model(struct xmodel *x, size_t max_versions, size_t max_aliases)
{
	memset(x, 0, sizeof(*x));
	model_init(&x->m);
	size_t nv = 1 + rnd_below(max_versions);
	for (size_t i = 0; i < nv; i++) {
		size_t ulen = rnd_below(8) == 0 ? MODEL_MAX_URI : 1 + rnd_below(64);
		size_t mlen = rnd_below(3) == 0 ? 0 : rnd_below(200);
		struct model_version v = {
		    rnd_i64(), rnd_i64(), own(x, rnd_bytes(ulen)), ulen, own(x, rnd_bytes(mlen)),
		    mlen};
		uint64_t n = 0;
		assert_int_equal(model_append_version(&x->m, &v, &n), 0);
		assert_int_equal(n, i + 1);
	}
	size_t na = rnd_below(max_aliases + 1);
	for (size_t i = 0; i < na; i++) {
		size_t len = rnd_below(8) == 0 ? MODEL_MAX_ALIAS_LEN : 1 + rnd_below(3);
		const uint8_t *name = own(x, rnd_bytes(len));
		assert_int_equal(
		    model_alias_set(&x->m, name, len, 1 + rnd_below(nv), rnd_i64(), rnd_i64()), 0);
	}
}

static void xmodel_free(struct xmodel *x)
{
	model_close(&x->m);
	for (size_t i = 0; i < x->nowned; i++)
		free(x->owned[i]);
	free(x->owned);
}

static void assert_bytes_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	assert_int_equal(alen, blen);
	if (alen)
		assert_memory_equal(a, b, alen);
}

static void assert_models_equal(const struct model *a, const struct model *b)
{
	assert_int_equal(a->nversions, b->nversions);
	assert_int_equal(a->naliases, b->naliases);
	for (size_t i = 0; i < a->nversions; i++) {
		const struct model_version *x = &a->versions[i], *y = &b->versions[i];
		assert_int_equal(x->registered_ms, y->registered_ms);
		assert_int_equal(x->schema, y->schema);
		assert_bytes_equal(x->uri, x->uri_len, y->uri, y->uri_len);
		assert_bytes_equal(x->meta, x->meta_len, y->meta, y->meta_len);
	}
	for (size_t i = 0; i < a->naliases; i++) {
		const struct model_alias *x = &a->aliases[i], *y = &b->aliases[i];
		assert_bytes_equal(x->name, x->name_len, y->name, y->name_len);
		assert_int_equal(x->version, y->version);
		assert_int_equal(x->schema, y->schema);
		assert_int_equal(x->set_ms, y->set_ms);
	}
}

/* decode_copy decodes p[0..len) from a heap buffer of exactly len bytes
 * (ASan sees any read past the end). */
static int decode_copy(struct model *m, const void *p, size_t len, uint8_t **copy)
{
	*copy = malloc(len ? len : 1);
	assert_non_null(*copy);
	if (len)
		memcpy(*copy, p, len);
	return model_decode(m, *copy, len);
}

/* ---------------------------------------------------------------------- */
/* Round trips                                                             */

static void test_prop_roundtrip(void **state)
{
	(void)state;
	seed_test(__func__);
	for (int round = 0; round < 300; round++) {
		struct xmodel x;
		rnd_model(&x, 60, 40);
		/* The aliases are in strict name order whatever order they
		 * were set in. */
		for (size_t i = 1; i < x.m.naliases; i++) {
			const struct model_alias *a = &x.m.aliases[i - 1], *b = &x.m.aliases[i];
			size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
			int c = memcmp(a->name, b->name, n);
			assert_true(c < 0 || (c == 0 && a->name_len < b->name_len));
		}
		struct sp_buf b;
		sp_buf_init(&b);
		model_encode(&x.m, &b);
		assert_int_equal(b.len, model_encoded_len(&x.m));
		struct model d;
		model_init(&d);
		uint8_t *copy;
		assert_int_equal(decode_copy(&d, sp_buf_begin(&b), b.len, &copy), 0);
		assert_models_equal(&x.m, &d);
		for (size_t i = 0; i < x.m.naliases; i++) {
			const struct model_alias *a = &x.m.aliases[i];
			const struct model_alias *f = model_alias_find(&d, a->name, a->name_len);
			assert_non_null(f);
			assert_int_equal(f->version, a->version);
		}
		struct sp_buf again;
		sp_buf_init(&again);
		model_encode(&d, &again);
		assert_bytes_equal(sp_buf_begin(&b), b.len, sp_buf_begin(&again), again.len);
		sp_buf_free(&again);
		model_close(&d);
		free(copy);
		sp_buf_free(&b);
		xmodel_free(&x);
	}
}

/* The exact bytes of one record: version 1 (uri "u", meta "m"), version 2
 * (uri "v2", no meta), alias "p" -> 2. */
static const uint8_t golden[] = {
    1,	  2,	0, 0, 0,   1,	0, 0, 0,		      /* format, 2 versions, 1 alias */
    0x10, 0x27, 0, 0, 0,   0,	0, 0,			      /* registered_ms 10000 */
    3,	  0,	0, 0, 0,   0,	0, 0,			      /* schema 3 */
    1,	  0,	0, 0, 'u',				      /* uri */
    1,	  0,	0, 0, 'm',				      /* meta */
    0x11, 0x27, 0, 0, 0,   0,	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10001, schema 0 */
    2,	  0,	0, 0, 'v', '2', 0, 0, 0, 0,		      /* uri "v2", meta "" */
    1,	  'p',						      /* alias name */
    2,	  0,	0, 0, 0,   0,	0, 0,			      /* version 2 */
    7,	  0,	0, 0, 0,   0,	0, 0,			      /* schema 7 */
    0x12, 0x27, 0, 0, 0,   0,	0, 0,			      /* set_ms 10002 */
};

static void test_golden_bytes(void **state)
{
	(void)state;
	struct model m;
	model_init(&m);
	struct model_version v1 = {10000, 3, (const uint8_t *)"u", 1, (const uint8_t *)"m", 1};
	struct model_version v2 = {10001, 0, (const uint8_t *)"v2", 2, NULL, 0};
	uint64_t n;
	assert_int_equal(model_append_version(&m, &v1, &n), 0);
	assert_int_equal(model_append_version(&m, &v2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(model_alias_set(&m, "p", 1, 2, 7, 10002), 0);
	struct sp_buf b;
	sp_buf_init(&b);
	model_encode(&m, &b);
	assert_bytes_equal(sp_buf_begin(&b), b.len, golden, sizeof(golden));
	struct model d;
	model_init(&d);
	assert_int_equal(model_decode(&d, golden, sizeof(golden)), 0);
	assert_models_equal(&m, &d);
	assert_non_null(model_version(&d, 1));
	assert_non_null(model_version(&d, 2));
	assert_null(model_version(&d, 0));
	assert_null(model_version(&d, 3));
	assert_null(model_alias_find(&d, "q", 1));
	assert_null(model_alias_find(&d, "pp", 2));
	assert_int_equal(model_alias_find(&d, "p", 1)->schema, 7);
	model_close(&d);
	model_close(&m);
	sp_buf_free(&b);
}

/* ---------------------------------------------------------------------- */
/* Refusals                                                                */

static void assert_refused(const void *p, size_t len)
{
	struct model m;
	model_init(&m);
	uint8_t *copy;
	assert_int_equal(decode_copy(&m, p, len, &copy), SP_ERR_CORRUPT);
	/* A refused decode leaves the model empty. */
	assert_int_equal(m.nversions, 0);
	assert_int_equal(m.naliases, 0);
	assert_null(m.versions);
	model_close(&m);
	free(copy);
}

static void test_truncations(void **state)
{
	(void)state;
	seed_test(__func__);
	for (int round = 0; round < 20; round++) {
		struct xmodel x;
		rnd_model(&x, 4, 4);
		struct sp_buf b;
		sp_buf_init(&b);
		model_encode(&x.m, &b);
		for (size_t cut = 0; cut < b.len; cut++)
			assert_refused(sp_buf_begin(&b), cut);
		/* And any byte after the record. */
		sp_buf_put_u8(&b, (uint8_t)rnd_below(256));
		assert_refused(sp_buf_begin(&b), b.len);
		sp_buf_free(&b);
		xmodel_free(&x);
	}
	for (size_t cut = 0; cut < sizeof(golden); cut++)
		assert_refused(golden, cut);
}

/* Raw builders that write whatever they are given, valid or not. */
static void put_hdr(struct sp_buf *b, uint8_t format, uint32_t nv, uint32_t na)
{
	sp_buf_put_u8(b, format);
	sp_buf_put_le32(b, nv);
	sp_buf_put_le32(b, na);
}

static void put_version(struct sp_buf *b, uint64_t ms, uint64_t schema, uint32_t uri_len,
			uint32_t meta_len)
{
	sp_buf_put_le64(b, ms);
	sp_buf_put_le64(b, schema);
	sp_buf_put_le32(b, uri_len);
	for (uint32_t i = 0; i < uri_len; i++)
		sp_buf_put_u8(b, 'u');
	sp_buf_put_le32(b, meta_len);
	for (uint32_t i = 0; i < meta_len; i++)
		sp_buf_put_u8(b, 'm');
}

static void put_alias(struct sp_buf *b, uint8_t name_len, char first, uint64_t version,
		      uint64_t schema, uint64_t set_ms)
{
	sp_buf_put_u8(b, name_len);
	for (uint8_t i = 0; i < name_len; i++)
		sp_buf_put_u8(b, (uint8_t)(i == 0 ? first : 'a'));
	sp_buf_put_le64(b, version);
	sp_buf_put_le64(b, schema);
	sp_buf_put_le64(b, set_ms);
}

/* A record of two versions and the given aliases (name's first byte,
 * name length, version), for the alias refusals. */
static void alias_record(struct sp_buf *b, size_t n, const char *first, const uint8_t *len,
			 const uint64_t *version)
{
	sp_buf_clear(b);
	put_hdr(b, MODEL_FORMAT, 2, (uint32_t)n);
	put_version(b, 1, 0, 1, 0);
	put_version(b, 2, 0, 1, 0);
	for (size_t i = 0; i < n; i++)
		put_alias(b, len[i], first[i], version[i], 0, 5);
}

static void assert_accepted(const struct sp_buf *b)
{
	struct model m;
	model_init(&m);
	uint8_t *copy;
	assert_int_equal(decode_copy(&m, sp_buf_begin(b), b->len, &copy), 0);
	struct sp_buf again;
	sp_buf_init(&again);
	model_encode(&m, &again);
	assert_bytes_equal(sp_buf_begin(b), b->len, sp_buf_begin(&again), again.len);
	sp_buf_free(&again);
	model_close(&m);
	free(copy);
}

static void test_bad_records(void **state)
{
	(void)state;
	const uint64_t big = (uint64_t)INT64_MAX + 1;
	struct sp_buf b;
	sp_buf_init(&b);

	/* The smallest valid record, then each field made bad in turn. */
	put_hdr(&b, MODEL_FORMAT, 1, 0);
	put_version(&b, 0, 0, 1, 0);
	assert_accepted(&b);
	sp_buf_clear(&b);
	put_hdr(&b, 0, 1, 0);
	put_version(&b, 0, 0, 1, 0);
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT + 1, 1, 0);
	put_version(&b, 0, 0, 1, 0);
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, 0, 0); /* no versions */
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, 2, 0); /* one version short */
	put_version(&b, 0, 0, 1, 0);
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, MODEL_MAX_VERSIONS + 1, 0);
	for (int i = 0; i < MODEL_MAX_VERSIONS + 1; i++)
		put_version(&b, 0, 0, 1, 0);
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, UINT32_MAX, UINT32_MAX); /* counts past the bytes */
	put_version(&b, 0, 0, 1, 0);
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, 1, 0);
	put_version(&b, big, 0, 1, 0); /* registered_ms */
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, 1, 0);
	put_version(&b, 0, big, 1, 0); /* schema */
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, 1, 0);
	put_version(&b, 0, 0, 0, 0); /* empty uri */
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, 1, 0);
	put_version(&b, 0, 0, MODEL_MAX_URI + 1, 0);
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, 1, 0);
	put_version(&b, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX, MODEL_MAX_URI, 1000);
	assert_accepted(&b);
	/* A meta length past the end. */
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, 1, 0);
	put_version(&b, 0, 0, 1, 3);
	b.len--;
	assert_refused(sp_buf_begin(&b), b.len);

	/* Aliases. */
	{
		const char f[] = {'a', 'b'};
		const uint8_t l[] = {1, MODEL_MAX_ALIAS_LEN};
		const uint64_t v[] = {1, 2};
		alias_record(&b, 2, f, l, v);
		assert_accepted(&b);
	}
	{
		const char f[] = {'b', 'a'}; /* out of order */
		const uint8_t l[] = {1, 1};
		const uint64_t v[] = {1, 2};
		alias_record(&b, 2, f, l, v);
		assert_refused(sp_buf_begin(&b), b.len);
	}
	{
		const char f[] = {'a', 'a'}; /* "aa" before "a": a prefix comes first */
		const uint8_t l[] = {2, 1};
		const uint64_t v[] = {1, 2};
		alias_record(&b, 2, f, l, v);
		assert_refused(sp_buf_begin(&b), b.len);
	}
	{
		const char f[] = {'a', 'a'}; /* repeated */
		const uint8_t l[] = {1, 1};
		const uint64_t v[] = {1, 2};
		alias_record(&b, 2, f, l, v);
		assert_refused(sp_buf_begin(&b), b.len);
	}
	{
		const char f[] = {'a'};
		const uint8_t bad_len[] = {0, MODEL_MAX_ALIAS_LEN + 1};
		const uint64_t bad_version[] = {0, 3, big};
		for (size_t i = 0; i < 2; i++) {
			const uint64_t v[] = {1};
			alias_record(&b, 1, f, &bad_len[i], v);
			assert_refused(sp_buf_begin(&b), b.len);
		}
		for (size_t i = 0; i < 3; i++) {
			const uint8_t l[] = {1};
			alias_record(&b, 1, f, l, &bad_version[i]);
			assert_refused(sp_buf_begin(&b), b.len);
		}
	}
	/* An alias's schema and time above INT64_MAX. */
	for (int which = 0; which < 2; which++) {
		sp_buf_clear(&b);
		put_hdr(&b, MODEL_FORMAT, 1, 1);
		put_version(&b, 0, 0, 1, 0);
		put_alias(&b, 1, 'a', 1, which == 0 ? big : 0, which == 1 ? big : 0);
		assert_refused(sp_buf_begin(&b), b.len);
	}
	/* Too many aliases. */
	sp_buf_clear(&b);
	put_hdr(&b, MODEL_FORMAT, 1, MODEL_MAX_ALIASES + 1);
	put_version(&b, 0, 0, 1, 0);
	for (int i = 0; i < MODEL_MAX_ALIASES + 1; i++) {
		sp_buf_put_u8(&b, 2);
		sp_buf_put_u8(&b, (uint8_t)(i >> 8));
		sp_buf_put_u8(&b, (uint8_t)i);
		sp_buf_put_le64(&b, 1);
		sp_buf_put_le64(&b, 0);
		sp_buf_put_le64(&b, 0);
	}
	assert_refused(sp_buf_begin(&b), b.len);
	sp_buf_free(&b);
}

/* Flipping random bytes of valid records: every input is refused or
 * decodes to a model that re-encodes to exactly its bytes. */
static void test_random_flips(void **state)
{
	(void)state;
	seed_test(__func__);
	int accepted = 0;
	for (int round = 0; round < 2000; round++) {
		struct xmodel x;
		rnd_model(&x, 3, 3);
		struct sp_buf b;
		sp_buf_init(&b);
		model_encode(&x.m, &b);
		uint8_t *p = (uint8_t *)sp_buf_begin(&b);
		size_t flips = 1 + rnd_below(3);
		for (size_t i = 0; i < flips; i++)
			p[rnd_below(b.len)] = (uint8_t)tu_splitmix(&rng);
		struct model m;
		model_init(&m);
		uint8_t *copy;
		int rc = decode_copy(&m, p, b.len, &copy);
		assert_true(rc == 0 || rc == SP_ERR_CORRUPT);
		if (rc == 0) {
			struct sp_buf again;
			sp_buf_init(&again);
			model_encode(&m, &again);
			assert_bytes_equal(p, b.len, sp_buf_begin(&again), again.len);
			sp_buf_free(&again);
			accepted++;
		}
		model_close(&m);
		free(copy);
		sp_buf_free(&b);
		xmodel_free(&x);
	}
	/* Flips of uri, meta and time bytes keep a record valid. */
	assert_true(accepted > 0);
}

/* ---------------------------------------------------------------------- */
/* Editing                                                                 */

static void test_version_limits(void **state)
{
	(void)state;
	struct model m;
	model_init(&m);
	uint64_t n = 0;
	struct model_version v = {1, 0, (const uint8_t *)"u", 1, NULL, 0};
	struct model_version bad = v;
	bad.uri_len = 0;
	assert_int_equal(model_append_version(&m, &bad, &n), SP_ERR_INVAL);
	bad.uri_len = MODEL_MAX_URI + 1;
	assert_int_equal(model_append_version(&m, &bad, &n), SP_ERR_INVAL);
	bad = v;
	bad.schema = (uint64_t)INT64_MAX + 1;
	assert_int_equal(model_append_version(&m, &bad, &n), SP_ERR_INVAL);
	bad = v;
	bad.registered_ms = UINT64_MAX;
	assert_int_equal(model_append_version(&m, &bad, &n), SP_ERR_INVAL);
	assert_int_equal(m.nversions, 0);
	for (uint64_t i = 1; i <= MODEL_MAX_VERSIONS; i++) {
		assert_int_equal(model_append_version(&m, &v, &n), 0);
		assert_int_equal(n, i);
	}
	assert_int_equal(model_append_version(&m, &v, &n), SP_ERR_FULL);
	assert_int_equal(m.nversions, MODEL_MAX_VERSIONS);
	/* The fullest model round-trips. */
	struct sp_buf b;
	sp_buf_init(&b);
	model_encode(&m, &b);
	struct model d;
	model_init(&d);
	assert_int_equal(model_decode(&d, sp_buf_begin(&b), b.len), 0);
	assert_int_equal(d.nversions, MODEL_MAX_VERSIONS);
	assert_non_null(model_version(&d, MODEL_MAX_VERSIONS));
	model_close(&d);
	sp_buf_free(&b);
	model_close(&m);
	model_close(NULL);
}

static void test_alias_edits(void **state)
{
	(void)state;
	struct model m;
	model_init(&m);
	uint64_t n;
	struct model_version v = {1, 4, (const uint8_t *)"u", 1, NULL, 0};
	assert_int_equal(model_append_version(&m, &v, &n), 0);
	assert_int_equal(model_append_version(&m, &v, &n), 0);
	/* Bad names, versions, numbers. */
	assert_int_equal(model_alias_set(&m, "x", 0, 1, 0, 0), SP_ERR_INVAL);
	char longname[MODEL_MAX_ALIAS_LEN + 1];
	memset(longname, 'n', sizeof(longname));
	assert_int_equal(model_alias_set(&m, longname, sizeof(longname), 1, 0, 0), SP_ERR_INVAL);
	assert_int_equal(model_alias_set(&m, longname, MODEL_MAX_ALIAS_LEN, 1, 0, 0), 0);
	assert_int_equal(model_alias_set(&m, "x", 1, 0, 0, 0), SP_ERR_INVAL);
	assert_int_equal(model_alias_set(&m, "x", 1, 3, 0, 0), SP_ERR_INVAL);
	assert_int_equal(model_alias_set(&m, "x", 1, 1, UINT64_MAX, 0), SP_ERR_INVAL);
	assert_int_equal(model_alias_set(&m, "x", 1, 1, 0, UINT64_MAX), SP_ERR_INVAL);
	assert_int_equal(m.naliases, 1);
	/* Set, move, remove. */
	assert_int_equal(model_alias_set(&m, "prod", 4, 1, 4, 100), 0);
	assert_int_equal(model_alias_set(&m, "canary", 6, 2, 5, 101), 0);
	assert_int_equal(m.naliases, 3);
	assert_int_equal(model_alias_set(&m, "prod", 4, 2, 6, 102), 0);
	assert_int_equal(m.naliases, 3);
	const struct model_alias *a = model_alias_find(&m, "prod", 4);
	assert_non_null(a);
	assert_int_equal(a->version, 2);
	assert_int_equal(a->schema, 6);
	assert_int_equal(a->set_ms, 102);
	assert_memory_equal(m.aliases[0].name, "canary", 6);
	assert_int_equal(model_alias_remove(&m, "prod", 4), 1);
	assert_int_equal(model_alias_remove(&m, "prod", 4), 0);
	assert_int_equal(model_alias_remove(&m, "pro", 3), 0);
	assert_null(model_alias_find(&m, "prod", 4));
	assert_int_equal(m.naliases, 2);
	assert_int_equal(model_alias_remove(&m, "canary", 6), 1);
	assert_int_equal(model_alias_remove(&m, longname, MODEL_MAX_ALIAS_LEN), 1);
	assert_int_equal(m.naliases, 0);
	/* At most MODEL_MAX_ALIASES; moving an existing one is still fine. */
	char names[MODEL_MAX_ALIASES + 1][2];
	for (int i = 0; i <= MODEL_MAX_ALIASES; i++) {
		/* In descending order, so every insert moves the others. */
		names[i][0] = (char)(255 - i / 256);
		names[i][1] = (char)(255 - i % 256);
	}
	for (int i = 0; i < MODEL_MAX_ALIASES; i++)
		assert_int_equal(model_alias_set(&m, names[i], 2, 1, 0, (uint64_t)i), 0);
	assert_int_equal(model_alias_set(&m, names[MODEL_MAX_ALIASES], 2, 1, 0, 0), SP_ERR_FULL);
	assert_int_equal(model_alias_set(&m, names[7], 2, 2, 0, 0), 0);
	assert_int_equal(m.naliases, MODEL_MAX_ALIASES);
	struct sp_buf b;
	sp_buf_init(&b);
	model_encode(&m, &b);
	assert_accepted(&b);
	sp_buf_free(&b);
	model_close(&m);
}

int main(void)
{
	base_seed = tu_seed();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prop_roundtrip), cmocka_unit_test(test_golden_bytes),
	    cmocka_unit_test(test_truncations),	   cmocka_unit_test(test_bad_records),
	    cmocka_unit_test(test_random_flips),   cmocka_unit_test(test_version_limits),
	    cmocka_unit_test(test_alias_edits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
