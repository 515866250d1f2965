/*
 * fuzz_model: libFuzzer target for the model registry's record codec
 * (src/server/model.c), whose decoder reads values from the store, which
 * snapshots from other nodes fill.
 *
 * The input, copied to a buffer of exactly its size so ASan sees any read
 * past the end, is decoded. Then:
 *  - the verdict is 0 or SP_ERR_CORRUPT, and a refused input leaves the
 *    model empty;
 *  - an accepted input re-encodes to exactly its bytes (one encoding per
 *    record), model_encoded_len says so, and every version and alias it
 *    holds is found by number and by name;
 *  - editing an accepted model as the commands do (a new version, an
 *    alias pointed at it, the first alias removed) gives a record that
 *    decodes again, with the new version last.
 * Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "server/model.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_model: %s:%d: check failed: %s\n", __FILE__,         \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* edit_and_check applies the commands' edits to m and checks the result
 * decodes. */
static void edit_and_check(struct model *m)
{
	struct model_version v = {1, 2, (const uint8_t *)"s3://fuzz", 9, (const uint8_t *)"{}", 2};
	uint64_t n = 0;
	int rc = model_append_version(m, &v, &n);
	CHECK(rc == 0 || (rc == SP_ERR_FULL && m->nversions == MODEL_MAX_VERSIONS));
	if (rc == 0)
		CHECK(n == m->nversions);
	rc = model_alias_set(m, "production", 10, m->nversions, 3, 4);
	CHECK(rc == 0 || (rc == SP_ERR_FULL && m->naliases == MODEL_MAX_ALIASES));
	if (m->naliases)
		CHECK(model_alias_remove(m, m->aliases[0].name, m->aliases[0].name_len) == 1);

	struct sp_buf b;
	sp_buf_init(&b);
	model_encode(m, &b);
	CHECK(b.len == model_encoded_len(m));
	struct model d;
	model_init(&d);
	CHECK(model_decode(&d, sp_buf_begin(&b), b.len) == 0);
	CHECK(d.nversions == m->nversions && d.naliases == m->naliases);
	const struct model_version *last = model_version(&d, d.nversions);
	CHECK(last != NULL);
	model_close(&d);
	sp_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *in = malloc(size ? size : 1);
	CHECK(in);
	if (size)
		memcpy(in, data, size);

	struct model m;
	model_init(&m);
	int rc = model_decode(&m, in, size);
	CHECK(rc == 0 || rc == SP_ERR_CORRUPT);
	if (rc != 0) {
		CHECK(m.nversions == 0 && m.naliases == 0 && m.versions == NULL &&
		      m.aliases == NULL);
		goto free_in;
	}

	/* Canonical: the re-encoding is the input, byte for byte. */
	struct sp_buf out;
	sp_buf_init(&out);
	model_encode(&m, &out);
	CHECK(out.len == size && model_encoded_len(&m) == size);
	CHECK(memcmp(sp_buf_begin(&out), in, size) == 0);
	sp_buf_free(&out);

	CHECK(m.nversions >= 1 && m.nversions <= MODEL_MAX_VERSIONS);
	for (size_t i = 0; i < m.nversions; i++)
		CHECK(model_version(&m, i + 1) == &m.versions[i]);
	CHECK(model_version(&m, 0) == NULL && model_version(&m, m.nversions + 1) == NULL);
	for (size_t i = 0; i < m.naliases; i++) {
		const struct model_alias *a = &m.aliases[i];
		CHECK(model_alias_find(&m, a->name, a->name_len) == a);
		CHECK(model_version(&m, a->version) != NULL);
	}

	edit_and_check(&m);
	model_close(&m);
free_in:
	free(in);
	return 0;
}
