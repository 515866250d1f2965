/*
 * fuzz_vclock: libFuzzer target for the vector clock's binary and token
 * decoders (src/engine/causal/vclock.c), which read bytes from peers and
 * session tokens from clients.
 *
 * The input, copied to a buffer of exactly its size so ASan sees any read
 * past the end, is decoded as a binary clock. A decode must return 0 or
 * SP_ERR_PROTO. A clock it accepts must keep the struct's invariant,
 * re-encode to exactly the bytes it consumed (the encoding is canonical),
 * compare EQUAL to itself, and survive a token round trip, and the
 * consumed bytes must then also decode as a whole. The input is also
 * parsed as a token, which must return 0 or SP_ERR_PROTO and, when it
 * accepts, re-print to exactly the input. Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "engine/causal/vclock.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_vclock: check failed: %s (line %d)\n", #cond,        \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void check_invariant(const struct vclock *v)
{
	CHECK(v->n <= VCLOCK_MAX);
	for (uint32_t i = 0; i < v->n; i++) {
		CHECK(v->e[i].node != 0 && v->e[i].count != 0);
		CHECK(i == 0 || v->e[i - 1].node < v->e[i].node);
	}
}

static int same(const struct vclock *a, const struct vclock *b)
{
	return a->n == b->n && memcmp(a->e, b->e, a->n * sizeof(a->e[0])) == 0;
}

static void check_decoded(const struct vclock *v, const uint8_t *p, size_t used)
{
	struct sp_buf out;
	struct vclock back;
	size_t used2 = 0;
	check_invariant(v);
	CHECK(vclock_compare(v, v) == VCLOCK_EQUAL);
	CHECK(vclock_covers(v, v));

	sp_buf_init(&out);
	vclock_encode(v, &out);
	CHECK(out.len == used && memcmp(sp_buf_begin(&out), p, used) == 0);
	CHECK(vclock_decode(p, used, &back, &used2) == 0 && used2 == used && same(&back, v));

	sp_buf_clear(&out);
	vclock_to_token(v, &out);
	CHECK(out.len == 3 + 2 * used);
	CHECK(vclock_from_token(sp_buf_begin(&out), out.len, &back) == 0 && same(&back, v));
	sp_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = malloc(size ? size : 1);
	if (size)
		memcpy(p, data, size);

	struct vclock v;
	size_t used = 0;
	int rc = vclock_decode(p, size, &v, &used);
	CHECK(rc == 0 || rc == SP_ERR_PROTO);
	if (rc == 0) {
		CHECK(used >= 1 && used <= size && used <= VCLOCK_ENCODED_MAX);
		check_decoded(&v, p, used);
	}

	rc = vclock_from_token((const char *)p, size, &v);
	CHECK(rc == 0 || rc == SP_ERR_PROTO);
	if (rc == 0) {
		struct sp_buf out;
		check_invariant(&v);
		sp_buf_init(&out);
		vclock_to_token(&v, &out);
		CHECK(out.len == size && memcmp(sp_buf_begin(&out), p, size) == 0);
		sp_buf_free(&out);
	}
	free(p);
	return 0;
}
