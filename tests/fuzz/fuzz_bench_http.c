/*
 * fuzz_bench_http: libFuzzer target for the etcd driver of `spectra bench`
 * (tools/bench_http.c).
 *
 * The first input byte c splits the rest: its next c % 64 bytes are a
 * template (up to any NUL), the remainder is what a server sent.
 *  - Replies: the remainder is parsed reply after reply, each call seeing
 *    every unconsumed byte copied to a buffer of exactly that size (so ASan
 *    sees any read past its end), until one is incomplete or malformed. A
 *    success must consume at least one byte and no more than it was given,
 *    be an error or a skip or neither, name an error with an upper-case
 *    word; the reply's bytes alone must parse to the same, and any proper
 *    prefix of them must be incomplete. A failure must leave *consumed and
 *    the reply alone.
 *  - Templates: the template is compiled; if it compiles, every step is
 *    encoded with vars drawn from the input, after bytes already in the
 *    buffer, and each request must be a POST to /v3/kv/ whose Content-Length
 *    is exactly its body's length, a JSON object of printable ASCII.
 * Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/bench_http.h"
#include "common/buf.h"
#include "common/err.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_bench_http: %s:%d: check failed: %s\n", __FILE__,    \
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

/* parse_copy parses a copy of buf[0..len) of exactly len bytes. */
static int parse_copy(const uint8_t *buf, size_t len, size_t *consumed, struct bench_reply *r)
{
	char *in = malloc(len ? len : 1);
	CHECK(in);
	if (len)
		memcpy(in, buf, len);
	int rc = bench_etcd_driver.reply_parse(in, len, consumed, r);
	free(in);
	return rc;
}

static void check_word(const struct bench_reply *r)
{
	CHECK(!(r->error && r->skip));
	if (!r->error)
		return;
	/* The word is static (parse_copy freed the bytes already) and names
	 * a gRPC code, HTTP_<status> or ERROR. */
	CHECK(r->word != NULL && r->word_len > 0 && r->word_len < 32);
	for (size_t i = 0; i < r->word_len; i++) {
		char c = r->word[i];
		CHECK((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
	}
}

static void run_replies(const uint8_t *data, size_t size, uint64_t h)
{
	size_t off = 0;
	for (;;) {
		size_t n = size - off, consumed = (size_t)-1;
		struct bench_reply r = {.error = true, .skip = true};
		int rc = parse_copy(data + off, n, &consumed, &r);
		if (rc != 0) {
			CHECK(rc == SP_ERR_AGAIN || rc == SP_ERR_PROTO);
			CHECK(consumed == (size_t)-1);
			CHECK(!r.error && !r.skip && r.word == NULL);
			return;
		}
		CHECK(consumed > 0 && consumed <= n);
		check_word(&r);

		/* Complete in itself: the same from its own bytes alone. */
		size_t again;
		struct bench_reply alone;
		CHECK(parse_copy(data + off, consumed, &again, &alone) == 0);
		CHECK(again == consumed);
		CHECK(alone.error == r.error && alone.skip == r.skip);
		CHECK(alone.word_len == r.word_len);
		CHECK(r.word_len == 0 || memcmp(alone.word, r.word, r.word_len) == 0);

		/* Not complete before its last byte. */
		size_t cuts[] = {0, consumed - 1, (size_t)(h % consumed)};
		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			struct bench_reply part;
			CHECK(parse_copy(data + off, cuts[i], &again, &part) == SP_ERR_AGAIN);
		}
		off += consumed;
		h = mix(h, &off, sizeof(off));
	}
}

/* check_request: req[0..len) is one request with an exact Content-Length. */
static void check_request(const char *req, size_t len)
{
	static const char post[] = "POST /v3/kv/";
	static const char clen[] = "\r\nContent-Length: ";
	CHECK(len > sizeof(post) && memcmp(req, post, sizeof(post) - 1) == 0);
	const char *end = memmem(req, len, "\r\n\r\n", 4);
	CHECK(end);
	const char *cl = memmem(req, (size_t)(end - req), clen, sizeof(clen) - 1);
	CHECK(cl);
	const char *p = cl + sizeof(clen) - 1;
	unsigned long long n = 0;
	CHECK(p < end);
	for (; p < end; p++) {
		CHECK(*p >= '0' && *p <= '9' && n < 1000000000000ull);
		n = n * 10 + (unsigned long long)(*p - '0');
	}
	const char *body = end + 4;
	size_t body_len = len - (size_t)(body - req);
	CHECK(n == body_len);
	CHECK(body_len >= 10 && memcmp(body, "{\"key\":\"", 8) == 0 && body[body_len - 1] == '}');
	for (size_t i = 0; i < body_len; i++)
		CHECK(body[i] > ' ' && body[i] < 127);
}

static void run_template(const char *tmpl, uint64_t h)
{
	size_t value_size = (size_t)(h % 3001);
	void *op;
	char err[256] = "";
	int rc = bench_etcd_driver.op_compile(tmpl, value_size, &op, err, sizeof(err));
	if (rc != 0) {
		CHECK(rc == SP_ERR_INVAL && err[0] != '\0');
		return;
	}
	size_t steps = bench_etcd_driver.op_steps(op);
	CHECK(steps >= 1);
	struct sp_buf b;
	sp_buf_init(&b);
	sp_buf_append_str(&b, "previous");
	struct bench_vars vars = {.key = h >> (h % 64), .rand = (uint32_t)(h >> 17)};
	for (size_t step = 0; step < steps; step++) {
		size_t before = b.len;
		bench_etcd_driver.op_encode(op, step, &vars, &b);
		CHECK(b.len > before);
		check_request(sp_buf_begin(&b) + before, b.len - before);
	}
	CHECK(memcmp(sp_buf_begin(&b), "previous", 8) == 0);
	sp_buf_free(&b);
	bench_etcd_driver.op_free(op);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t tlen = data[0] % 64u;
	data++;
	size--;
	if (tlen > size)
		tlen = size;
	char tmpl[64];
	memcpy(tmpl, data, tlen);
	tmpl[tlen] = '\0';
	uint64_t h = mix(14695981039346656037ull, data, size);

	run_replies(data + tlen, size - tlen, h);
	run_template(tmpl, h);
	return 0;
}
