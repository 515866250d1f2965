/*
 * fuzz_resp: libFuzzer target for the RESP codec (src/net/resp.c).
 *
 * The first input byte picks how the rest is chunked; the rest is fed
 *  - to the request parser, as a server would (each call sees every
 *    unconsumed byte, copied to a buffer of exactly that size so ASan sees
 *    any read past the end), chunk by chunk and again all at once: both runs
 *    must give the same requests and the same final error, every argument
 *    must lie inside the request (or the parser's inline copy), and every
 *    completed request must consume at least one byte;
 *  - to the value reader, chunk by chunk and all at once, with the same
 *    requirement; every value read is written back with resp_write_value and
 *    must read back equal, using exactly the bytes written.
 * Limits are small so the limit paths are reached. Any violation abort()s.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "net/resp.h"

static const struct resp_limits req_limits = {
    .max_bulk_len = 128,
    .max_args = 16,
    .max_inline_len = 64,
};

static const struct resp_reader_limits rd_limits = {
    .max_bulk_len = 128,
    .max_elems = 16,
    .max_depth = 8,
};

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_resp: %s:%d: check failed: %s\n", __FILE__,          \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* The chunk sizes come from the input: byte k of the data, reduced modulo a
 * bound picked by the control byte (bound 1: one byte at a time; control
 * 255: everything at once). */
struct chunker {
	const uint8_t *data;
	size_t size, k;
	unsigned bound;
};

static void chunker_init(struct chunker *c, uint8_t ctl, const uint8_t *data, size_t size)
{
	c->data = data;
	c->size = size;
	c->k = ctl;
	c->bound = ctl == 255 ? 0 : 1u + (ctl % 64u);
}

static size_t chunker_next(struct chunker *c, size_t left)
{
	if (c->bound == 0 || c->size == 0)
		return left;
	size_t n = 1 + c->data[c->k++ % c->size] % c->bound;
	return n < left ? n : left;
}

/* What a run produced: a fingerprint of its results and how it ended. */
struct outcome {
	uint64_t hash;
	size_t count;
	int rc;
	const char *msg;
};

static struct outcome run_requests(const uint8_t *data, size_t size, struct chunker *ch)
{
	struct resp_request_parser p;
	struct outcome o = {.hash = 14695981039346656037ull, .rc = SP_ERR_AGAIN};
	size_t base = 0, visible = ch ? 0 : size;

	resp_request_parser_init(&p, &req_limits);
	for (;;) {
		size_t n = visible - base, consumed = 7;
		struct resp_error err = {NULL};
		char *in = malloc(n ? n : 1);
		CHECK(in);
		if (n)
			memcpy(in, data + base, n);
		int rc = resp_parse_request(&p, in, n, &consumed, &err);
		if (rc == SP_ERR_AGAIN) {
			free(in);
			CHECK(consumed == 0);
			if (visible == size)
				break;
			visible += ch ? chunker_next(ch, size - visible) : size - visible;
			continue;
		}
		if (rc != 0) {
			free(in);
			CHECK(rc == SP_ERR_PROTO || rc == SP_ERR_TOOBIG);
			CHECK(err.msg != NULL);
			o.rc = rc;
			o.msg = err.msg;
			break;
		}
		CHECK(consumed > 0 && consumed <= n);
		CHECK(p.argc <= p.args_cap || p.argc == 0);
		o.hash = mix(o.hash, &p.argc, sizeof(p.argc));
		o.hash = mix(o.hash, &p.is_inline, sizeof(p.is_inline));
		for (size_t i = 0; i < p.argc; i++) {
			const struct resp_arg *a = &p.args[i];
			if (p.is_inline) {
				CHECK(a->off <= p.inline_cap && a->len <= p.inline_cap - a->off);
			} else {
				CHECK(p.argc <= req_limits.max_args);
				CHECK(a->len <= req_limits.max_bulk_len);
				CHECK(a->off <= consumed && a->len <= consumed - a->off);
			}
			o.hash = mix(o.hash, &a->len, sizeof(a->len));
			o.hash = mix(o.hash, resp_arg_ptr(&p, in, i), a->len);
		}
		o.count++;
		free(in);
		base += consumed;
	}
	resp_request_parser_close(&p);
	return o;
}

/* check_roundtrip writes v and reads it back: one value, equal, using every
 * byte written. */
static void check_roundtrip(const struct resp_value *v)
{
	struct sp_buf b;
	struct resp_reader r;
	struct resp_value back;
	struct resp_error err = {NULL};

	sp_buf_init(&b);
	resp_write_value(&b, v);
	resp_reader_init(&r, &rd_limits);
	resp_reader_feed(&r, sp_buf_begin(&b), b.len);
	int rc = resp_reader_next(&r, &back, &err);
	if (rc != 0)
		fprintf(stderr, "fuzz_resp: re-read failed: %d %s\n", rc, err.msg);
	CHECK(rc == 0);
	CHECK(resp_value_equal(v, &back));
	CHECK(r.in.len == 0);
	resp_value_free(&back);
	resp_reader_close(&r);

	/* A double also survives the writer's own formatting. */
	if (v->type == RESP_DOUBLE) {
		sp_buf_clear(&b);
		resp_write_double(&b, v->dbl, 3);
		resp_reader_init(&r, &rd_limits);
		resp_reader_feed(&r, sp_buf_begin(&b), b.len);
		CHECK(resp_reader_next(&r, &back, &err) == 0);
		CHECK(isnan(v->dbl) ? isnan(back.dbl)
				    : memcmp(&back.dbl, &v->dbl, sizeof(double)) == 0);
		resp_value_free(&back);
		resp_reader_close(&r);
	}
	sp_buf_free(&b);
}

static struct outcome run_values(const uint8_t *data, size_t size, struct chunker *ch)
{
	struct resp_reader r;
	struct outcome o = {.hash = 14695981039346656037ull, .rc = SP_ERR_AGAIN};
	size_t fed = 0;
	struct sp_buf out;

	sp_buf_init(&out);
	resp_reader_init(&r, &rd_limits);
	for (;;) {
		struct resp_value v;
		struct resp_error err = {NULL};
		int rc = resp_reader_next(&r, &v, &err);
		if (rc == SP_ERR_AGAIN) {
			if (fed == size)
				break;
			size_t n = ch ? chunker_next(ch, size - fed) : size - fed;
			resp_reader_feed(&r, data + fed, n);
			fed += n;
			continue;
		}
		if (rc != 0) {
			CHECK(rc == SP_ERR_PROTO || rc == SP_ERR_TOOBIG);
			CHECK(err.msg != NULL);
			o.rc = rc;
			o.msg = err.msg;
			break;
		}
		check_roundtrip(&v);
		sp_buf_clear(&out);
		resp_write_value(&out, &v);
		o.hash = mix(o.hash, sp_buf_begin(&out), out.len);
		o.count++;
		resp_value_free(&v);
	}
	resp_reader_close(&r);
	sp_buf_free(&out);
	return o;
}

static void check_same(struct outcome a, struct outcome b)
{
	CHECK(a.count == b.count);
	CHECK(a.hash == b.hash);
	CHECK(a.rc == b.rc);
	CHECK((a.msg == NULL) == (b.msg == NULL));
	CHECK(a.msg == NULL || strcmp(a.msg, b.msg) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	data++;
	size--;

	struct chunker ch;
	chunker_init(&ch, ctl, data, size);
	struct outcome chunked = run_requests(data, size, &ch);
	check_same(chunked, run_requests(data, size, NULL));

	chunker_init(&ch, ctl, data, size);
	chunked = run_values(data, size, &ch);
	check_same(chunked, run_values(data, size, NULL));
	return 0;
}
