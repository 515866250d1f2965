/*
 * test_bench_http: the etcd v3 JSON-gateway driver of `spectra bench`.
 *
 *  - base64: the RFC 4648 §10 test vectors, and a round trip through this
 *    file's own decoder for random bytes.
 *  - templates: PUT, GET, GET SERIALIZABLE and DEL encode to the exact
 *    bytes, step by step for several commands; bad templates are refused
 *    with a message. Random templates with random keys, rands and value
 *    sizes (0..5000) give requests whose Content-Length is the body's length
 *    and whose body is JSON (read with jansson) holding, base64-decoded, the
 *    key and value the template expands to.
 *  - replies: responses captured from etcd 3.4.23 (Content-Length and
 *    chunked with a trailer) parse to the right verdict, and every proper
 *    prefix of them is incomplete; gRPC codes in error bodies are named;
 *    pipelined responses come apart at the right places; 100 Continue is
 *    skipped; chunk extensions and trailers are allowed; malformed framing
 *    and the size limits are refused. Random responses (random status,
 *    reason, headers, framing, chunking and error bodies), back to back and
 *    delivered in random pieces, parse to exactly their sizes and verdicts.
 *
 * Randomised tests print their seed; set SPECTRA_SEED to replay one.
 * tools/ is linked only into bin/spectra, so the Makefile links
 * bench_http.o into this binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/bench_http.h"
#include "common/buf.h"
#include "common/err.h"

/* ---- helpers -------------------------------------------------------------- */

/* b64_decode decodes padded standard base64 src[0..n) into *out (owned by
 * the caller, free()); returns its length, or -1 if src is not base64. */
static long b64_decode(const char *src, size_t n, unsigned char **out)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	if (n % 4 != 0)
		return -1;
	unsigned char *dst = malloc(n / 4 * 3 + 1);
	size_t len = 0;
	for (size_t i = 0; i < n; i += 4) {
		unsigned v = 0, pad = 0;
		for (size_t k = 0; k < 4; k++) {
			char c = src[i + k];
			const char *at = c ? strchr(alphabet, c) : NULL;
			if (c == '=' && i + 4 == n && k >= 2 && (k == 3 || src[i + 3] == '=')) {
				pad++;
				v <<= 6;
			} else if (at && pad == 0) {
				v = v << 6 | (unsigned)(at - alphabet);
			} else {
				free(dst);
				return -1;
			}
		}
		dst[len++] = (unsigned char)(v >> 16);
		if (pad < 2)
			dst[len++] = (unsigned char)(v >> 8);
		if (pad < 1)
			dst[len++] = (unsigned char)v;
	}
	*out = dst;
	return (long)len;
}

/* encode compiles tmpl and returns request `step` for key and rnd (owned by
 * the caller, free()). */
static char *encode(const char *tmpl, size_t value_size, size_t step, uint64_t key, uint32_t rnd,
		    size_t *steps)
{
	void *op;
	char err[256];
	assert_int_equal(bench_http_compile(tmpl, value_size, &op, err, sizeof(err)), 0);
	if (steps)
		*steps = bench_http_steps(op);
	struct sp_buf b;
	sp_buf_init(&b);
	struct bench_vars vars = {.key = key, .rand = rnd};
	bench_http_encode(op, step, &vars, &b);
	char *out = strndup(sp_buf_begin(&b), b.len);
	sp_buf_free(&b);
	bench_http_free(op);
	return out;
}

/* parse copies buf[0..len) to a buffer of exactly that size, so that the
 * sanitizers see any read past its end, and parses it. */
static int parse(const char *buf, size_t len, size_t *consumed, struct bench_reply *reply)
{
	char *copy = malloc(len ? len : 1);
	memcpy(copy, buf, len);
	int rc = bench_http_parse_reply(copy, len, consumed, reply);
	free(copy);
	return rc;
}

static void assert_word(const struct bench_reply *r, const char *word)
{
	if (!word) {
		assert_false(r->error);
		return;
	}
	assert_true(r->error);
	if (r->word_len != strlen(word) || memcmp(r->word, word, r->word_len) != 0) {
		fprintf(stderr, "word '%.*s', want '%s'\n", (int)r->word_len, r->word, word);
		fail();
	}
}

/* ---- base64 --------------------------------------------------------------- */

static void test_base64_vectors(void **state)
{
	(void)state;
	/* RFC 4648 §10. */
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		char out[16];
		size_t n = bench_http_base64(out, in[i], strlen(in[i]));
		assert_int_equal(n, strlen(want[i]));
		assert_int_equal(n, BENCH_HTTP_B64_LEN(strlen(in[i])));
		assert_memory_equal(out, want[i], n);
	}
	/* Every byte value, and the alphabet's last two letters. */
	const unsigned char high[] = {0xfb, 0xff, 0xbf};
	char out[8];
	assert_int_equal(bench_http_base64(out, high, 3), 4);
	assert_memory_equal(out, "+/+/", 4);
}

static void test_base64_roundtrip(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "base64_roundtrip");
	unsigned char src[300];
	char enc[BENCH_HTTP_B64_LEN(300)];
	for (int round = 0; round < 5000; round++) {
		size_t n = tu_rnd(&rng, sizeof(src) + 1);
		for (size_t i = 0; i < n; i++)
			src[i] = (unsigned char)tu_rnd(&rng, 256);
		size_t m = bench_http_base64(enc, src, n);
		assert_int_equal(m, BENCH_HTTP_B64_LEN(n));
		unsigned char *dec;
		assert_int_equal(b64_decode(enc, m, &dec), (long)n);
		assert_memory_equal(dec, src, n);
		free(dec);
	}
}

/* ---- templates ------------------------------------------------------------ */

#define REQ_HEAD(path, len)                                                                        \
	"POST " path                                                                               \
	" HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\nContent-Length: " len        \
	"\r\n\r\n"

static void test_encode_exact(void **state)
{
	(void)state;
	size_t steps;
	char *s = encode("PUT foo bar", 0, 0, 42, 7, &steps);
	assert_int_equal(steps, 1);
	assert_string_equal(s,
			    REQ_HEAD("/v3/kv/put", "29") "{\"key\":\"Zm9v\",\"value\":\"YmFy\"}");
	free(s);

	s = encode("get k{key}", 0, 0, 42, 7, NULL);
	assert_string_equal(s, REQ_HEAD("/v3/kv/range", "14") "{\"key\":\"azQy\"}");
	free(s);

	s = encode("GET k{key} Serializable", 0, 0, 42, 7, NULL);
	assert_string_equal(
	    s, REQ_HEAD("/v3/kv/range", "34") "{\"key\":\"azQy\",\"serializable\":true}");
	free(s);

	s = encode("Del {key}", 0, 0, 0, 7, NULL);
	assert_string_equal(s, REQ_HEAD("/v3/kv/deleterange", "14") "{\"key\":\"MA==\"}");
	free(s);

	/* The biggest key, {rand}, {value}, blanks around words. */
	s = encode(" \tPUT  k{key}:{rand}\t{value} ", 5, 0, UINT64_MAX, 7, NULL);
	assert_string_equal(s, REQ_HEAD("/v3/kv/put", "61") "{\"key\":\"azE4NDQ2NzQ0MDczNzA5NTUx"
							    "NjE1Ojc=\",\"value\":\"MDEyMzQ=\"}");
	free(s);

	/* Braces that are not a placeholder are text. */
	s = encode("PUT { x{", 0, 0, 1, 1, NULL);
	assert_string_equal(s,
			    REQ_HEAD("/v3/kv/put", "29") "{\"key\":\"ew==\",\"value\":\"eHs=\"}");
	free(s);

	/* A zero-byte value as the key and the value. */
	s = encode("PUT {value} {value}", 0, 0, 1, 1, NULL);
	assert_string_equal(s, REQ_HEAD("/v3/kv/put", "21") "{\"key\":\"\",\"value\":\"\"}");
	free(s);
}

static void test_encode_steps(void **state)
{
	(void)state;
	const char *tmpl = "PUT k{key} {value}; GET k{key} SERIALIZABLE ;del k{key};GET k{key}";
	const char *want[] = {
	    REQ_HEAD("/v3/kv/put", "29") "{\"key\":\"azQy\",\"value\":\"MDEy\"}",
	    REQ_HEAD("/v3/kv/range", "34") "{\"key\":\"azQy\",\"serializable\":true}",
	    REQ_HEAD("/v3/kv/deleterange", "14") "{\"key\":\"azQy\"}",
	    REQ_HEAD("/v3/kv/range", "14") "{\"key\":\"azQy\"}",
	};
	void *op;
	char err[256];
	assert_int_equal(bench_http_compile(tmpl, 3, &op, err, sizeof(err)), 0);
	assert_int_equal(bench_http_steps(op), 4);
	struct sp_buf b;
	sp_buf_init(&b);
	sp_buf_append_str(&b, "earlier bytes stay");
	size_t at = b.len;
	struct bench_vars vars = {.key = 42, .rand = 9};
	for (size_t step = 0; step < 4; step++) {
		bench_http_encode(op, step, &vars, &b);
		assert_int_equal(b.len - at, strlen(want[step]));
		assert_memory_equal(sp_buf_begin(&b) + at, want[step], strlen(want[step]));
		at = b.len;
	}
	assert_memory_equal(sp_buf_begin(&b), "earlier bytes stay", 18);

	/* Once the buffer is big enough, encoding does not allocate. */
	sp_buf_clear(&b);
	bench_http_encode(op, 0, &vars, &b);
	char *data = b.data;
	size_t cap = b.cap;
	for (int i = 0; i < 100; i++) {
		sp_buf_clear(&b);
		vars.key = (uint64_t)i << 40;
		bench_http_encode(op, (size_t)i % 4, &vars, &b);
		assert_ptr_equal(b.data, data);
		assert_int_equal(b.cap, cap);
	}
	sp_buf_free(&b);
	bench_http_free(op);

	/* The driver table is these functions. */
	assert_string_equal(bench_etcd_driver.name, "etcd");
	assert_ptr_equal(bench_etcd_driver.op_compile, bench_http_compile);
	assert_ptr_equal(bench_etcd_driver.op_free, bench_http_free);
	assert_ptr_equal(bench_etcd_driver.op_steps, bench_http_steps);
	assert_ptr_equal(bench_etcd_driver.op_encode, bench_http_encode);
	assert_ptr_equal(bench_etcd_driver.reply_parse, bench_http_parse_reply);
}

static void test_compile_errors(void **state)
{
	(void)state;
	const struct {
		const char *tmpl, *msg;
	} bad[] = {
	    {"", "empty command"},
	    {"   ", "empty command"},
	    {";", "empty command"},
	    {"GET a;", "empty command"},
	    {";GET a", "empty command"},
	    {"PUT a b;;GET b", "empty command"},
	    {"GET {foo}", "unknown placeholder '{foo}'"},
	    {"GET x{KEY}", "unknown placeholder"},
	    {"PUT {key} {values}", "unknown placeholder"},
	    {"PUT a", "PUT takes a key and a value"},
	    {"PUT", "PUT takes a key and a value"},
	    {"PUT a b c", "PUT takes a key and a value"},
	    {"GET", "GET takes a key"},
	    {"GET a SERIALIZABLE b", "GET takes a key"},
	    {"GET a b", "not 'b'"},
	    {"GET a {key}", "not '{key}'"},
	    {"DEL", "DEL takes a key"},
	    {"DEL a b", "DEL takes a key"},
	    {"SET a b", "unknown verb 'SET'"},
	    {"{key} a", "unknown verb '{key}'"},
	    {"PUTS a b", "unknown verb"},
	    {"GET a;RANGE a", "unknown verb 'RANGE'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *op = (void *)1;
		char err[256] = "";
		int rc = bench_http_compile(bad[i].tmpl, 8, &op, err, sizeof(err));
		if (rc != SP_ERR_INVAL || strncmp(err, "etcd: ", 6) != 0 ||
		    !strstr(err, bad[i].msg)) {
			fprintf(stderr, "'%s': rc %d, err '%s'\n", bad[i].tmpl, rc, err);
			fail();
		}
	}
	bench_http_free(NULL);
}

/* A random template's command as this test expands it. */
struct want_cmd {
	const char *path;
	bool serializable, has_value;
	struct sp_buf key, value;
};

/* gen_word appends a random word of parts to tmpl and its expansion to
 * word. */
static void gen_word(uint64_t *rng, struct sp_buf *tmpl, struct sp_buf *word, uint64_t key,
		     uint32_t rnd, const char *value)
{
	static const char *const parts[] = {"{key}", "{value}", "{rand}", "a", ":",
					    "{",     "}",	"xyz",	  "é", "\"\\"};
	size_t nparts = 1 + tu_rnd(rng, 3);
	for (size_t p = 0; p < nparts; p++) {
		const char *part = parts[tu_rnd(rng, sizeof(parts) / sizeof(parts[0]))];
		sp_buf_append_str(tmpl, part);
		if (strcmp(part, "{key}") == 0)
			sp_buf_appendf(word, "%llu", (unsigned long long)key);
		else if (strcmp(part, "{rand}") == 0)
			sp_buf_appendf(word, "%u", rnd);
		else if (strcmp(part, "{value}") == 0)
			sp_buf_append_str(word, value);
		else
			sp_buf_append_str(word, part);
	}
}

/* check_b64_member: obj[name] is a base64 string decoding to want. */
static void check_b64_member(json_t *obj, const char *name, const struct sp_buf *want)
{
	json_t *v = json_object_get(obj, name);
	assert_non_null(v);
	assert_true(json_is_string(v));
	unsigned char *dec;
	long n = b64_decode(json_string_value(v), json_string_length(v), &dec);
	assert_int_equal(n, (long)want->len);
	assert_memory_equal(dec, sp_buf_begin(want), want->len);
	free(dec);
}

/* check_request: req[0..len) is one request for want, with an exact
 * Content-Length and a JSON body. */
static void check_request(const char *req, size_t len, const struct want_cmd *want)
{
	char head[256];
	int head_len = snprintf(head, sizeof(head),
				"POST %s HTTP/1.1\r\nHost: etcd\r\nContent-Type: "
				"application/json\r\nContent-Length: ",
				want->path);
	assert_true(len > (size_t)head_len);
	assert_memory_equal(req, head, (size_t)head_len);
	const char *p = req + head_len, *end = req + len;
	unsigned long long clen = 0;
	size_t digits = 0;
	while (p < end && *p >= '0' && *p <= '9') {
		clen = clen * 10 + (unsigned long long)(*p++ - '0');
		digits++;
	}
	assert_true(digits > 0 && digits < 20);
	assert_true(end - p >= 4);
	assert_memory_equal(p, "\r\n\r\n", 4);
	p += 4;
	assert_int_equal(clen, (unsigned long long)(end - p));

	json_error_t jerr;
	json_t *body = json_loadb(p, (size_t)(end - p), 0, &jerr);
	if (!body) {
		fprintf(stderr, "body is not JSON: %s: %.*s\n", jerr.text, (int)(end - p), p);
		fail();
	}
	assert_true(json_is_object(body));
	check_b64_member(body, "key", &want->key);
	size_t members = 1;
	if (want->has_value) {
		check_b64_member(body, "value", &want->value);
		members++;
	}
	if (want->serializable) {
		assert_true(json_is_true(json_object_get(body, "serializable")));
		members++;
	}
	assert_int_equal(json_object_size(body), members);
	json_decref(body);
}

static void test_encode_random(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "encode_random");
	static const char *const verbs[] = {"PUT", "put", "Put", "GET", "get", "DEL", "dEl"};
	static const char *const serializable[] = {"SERIALIZABLE", "serializable", "Serializable"};
	static const char *const blanks[] = {"", " ", "\t", "  "};
	enum { MAX_CMDS = 3 };
	char *value = malloc(5001);
	struct want_cmd want[MAX_CMDS];
	for (int round = 0; round < 3000; round++) {
		size_t ncmds = 1 + tu_rnd(&rng, MAX_CMDS);
		size_t value_size = tu_rnd(&rng, 4) ? tu_rnd(&rng, 64) : tu_rnd(&rng, 5001);
		uint64_t key = tu_splitmix(&rng) >> tu_rnd(&rng, 64);
		uint32_t rnd = (uint32_t)tu_splitmix(&rng);
		for (size_t i = 0; i < value_size; i++)
			value[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i % 36];
		value[value_size] = '\0';

		struct sp_buf tmpl;
		sp_buf_init(&tmpl);
		for (size_t c = 0; c < ncmds; c++) {
			struct want_cmd *w = &want[c];
			sp_buf_init(&w->key);
			sp_buf_init(&w->value);
			const char *verb = verbs[tu_rnd(&rng, sizeof(verbs) / sizeof(verbs[0]))];
			sp_buf_appendf(&tmpl, "%s%s%s ", c ? ";" : "", blanks[tu_rnd(&rng, 4)],
				       verb);
			gen_word(&rng, &tmpl, &w->key, key, rnd, value);
			w->has_value = verb[0] == 'P' || verb[0] == 'p';
			w->serializable = false;
			if (w->has_value) {
				w->path = "/v3/kv/put";
				sp_buf_append_str(&tmpl, blanks[1 + tu_rnd(&rng, 3)]);
				gen_word(&rng, &tmpl, &w->value, key, rnd, value);
			} else if (verb[0] == 'G' || verb[0] == 'g') {
				w->path = "/v3/kv/range";
				w->serializable = tu_rnd(&rng, 2);
				if (w->serializable)
					sp_buf_appendf(&tmpl, " %s", serializable[tu_rnd(&rng, 3)]);
			} else {
				w->path = "/v3/kv/deleterange";
			}
			sp_buf_append_str(&tmpl, blanks[tu_rnd(&rng, 4)]);
		}
		sp_buf_append(&tmpl, "", 1);

		void *op;
		char err[256];
		/* "{", "a" and "}" in a row make an unknown placeholder, which
		 * must be refused; every other template must compile. */
		int rc = bench_http_compile(sp_buf_begin(&tmpl), value_size, &op, err, sizeof(err));
		if (rc < 0) {
			if (!strstr(err, "unknown placeholder")) {
				fprintf(stderr, "'%s': %s\n", sp_buf_begin(&tmpl), err);
				fail();
			}
		} else {
			assert_int_equal(bench_http_steps(op), ncmds);
			struct sp_buf b;
			sp_buf_init(&b);
			struct bench_vars vars = {.key = key, .rand = rnd};
			for (size_t c = 0; c < ncmds; c++) {
				sp_buf_clear(&b);
				bench_http_encode(op, c, &vars, &b);
				check_request(sp_buf_begin(&b), b.len, &want[c]);
			}
			sp_buf_free(&b);
			bench_http_free(op);
		}
		for (size_t c = 0; c < ncmds; c++) {
			sp_buf_free(&want[c].key);
			sp_buf_free(&want[c].value);
		}
		sp_buf_free(&tmpl);
	}
	free(value);
}

/* ---- replies: captured from etcd 3.4.23 ----------------------------------- */

#define ETCD_CORS                                                                                  \
	"Access-Control-Allow-Headers: accept, content-type, authorization\r\n"                    \
	"Access-Control-Allow-Methods: POST, GET, OPTIONS, PUT, DELETE\r\n"                        \
	"Access-Control-Allow-Origin: *\r\n"

static const char etcd_put[] =
    "HTTP/1.1 200 OK\r\n" ETCD_CORS "Content-Type: application/json\r\n"
    "Grpc-Metadata-Content-Type: application/grpc\r\n"
    "Date: Sat, 28 Nov 2026 17:39:25 GMT\r\n"
    "Content-Length: 114\r\n"
    "\r\n"
    "{\"header\":{\"cluster_id\":\"17368989521238926805\",\"member_id\":\"17628310501313495538\","
    "\"revision\":\"4\",\"raft_term\":\"2\"}}";

static const char etcd_range[] =
    "HTTP/1.1 200 OK\r\n" ETCD_CORS "Content-Type: application/json\r\n"
    "Grpc-Metadata-Content-Type: application/grpc\r\n"
    "Date: Sat, 28 Nov 2026 17:39:26 GMT\r\n"
    "Content-Length: 219\r\n"
    "\r\n"
    "{\"header\":{\"cluster_id\":\"17368989521238926805\",\"member_id\":\"17628310501313495538\","
    "\"revision\":\"4\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"4\","
    "\"mod_revision\":\"4\",\"version\":\"1\",\"value\":\"YmFy\"}],\"count\":\"1\"}";

static const char etcd_del[] =
    "HTTP/1.1 200 OK\r\n" ETCD_CORS "Content-Type: application/json\r\n"
    "Grpc-Metadata-Content-Type: application/grpc\r\n"
    "Date: Sat, 28 Nov 2026 17:39:29 GMT\r\n"
    "Content-Length: 128\r\n"
    "\r\n"
    "{\"header\":{\"cluster_id\":\"17368989521238926805\",\"member_id\":\"17628310501313495538\","
    "\"revision\":\"5\",\"raft_term\":\"2\"},\"deleted\":\"1\"}";

/* A PUT with an empty key: etcd's errors from the server proper come
 * chunked, with a trailer. */
static const char etcd_no_key[] =
    "HTTP/1.1 400 Bad Request\r\n" ETCD_CORS "Content-Type: application/json\r\n"
    "Trailer: Grpc-Trailer-Content-Type\r\n"
    "Date: Sat, 28 Nov 2026 17:39:30 GMT\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "60\r\n"
    "{\"error\":\"etcdserver: key is not provided\",\"message\":\"etcdserver: key is not "
    "provided\",\"code\":3}\r\n"
    "0\r\n"
    "Grpc-Trailer-Content-Type: application/grpc\r\n"
    "\r\n";

/* A range at a compacted revision. */
static const char etcd_compacted[] =
    "HTTP/1.1 400 Bad Request\r\n" ETCD_CORS "Content-Type: application/json\r\n"
    "Trailer: Grpc-Trailer-Content-Type\r\n"
    "Date: Sat, 28 Nov 2026 17:39:40 GMT\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "8f\r\n"
    "{\"error\":\"etcdserver: mvcc: required revision has been compacted\",\"message\":"
    "\"etcdserver: mvcc: required revision has been compacted\",\"code\":11}\r\n"
    "0\r\n"
    "Grpc-Trailer-Content-Type: application/grpc\r\n"
    "\r\n";

/* A key that is not base64: the gateway's own error, with a length. */
static const char etcd_bad_base64[] =
    "HTTP/1.1 400 Bad Request\r\n" ETCD_CORS "Content-Type: application/json\r\n"
    "Date: Sat, 28 Nov 2026 17:39:31 GMT\r\n"
    "Content-Length: 104\r\n"
    "\r\n"
    "{\"error\":\"illegal base64 data at input byte 0\",\"message\":\"illegal base64 data at "
    "input byte 0\",\"code\":3}";

static const char etcd_not_found[] =
    "HTTP/1.1 404 Not Found\r\n" ETCD_CORS "Content-Type: text/plain; charset=utf-8\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Date: Sat, 28 Nov 2026 17:39:32 GMT\r\n"
    "Content-Length: 10\r\n"
    "\r\n"
    "Not Found\n";

/* A PUT sent with "Expect: 100-continue". */
static const char etcd_continue[] = "HTTP/1.1 100 Continue\r\n"
				    "\r\n";
static const char etcd_after_continue[] =
    "HTTP/1.1 200 OK\r\n" ETCD_CORS "Content-Type: application/json\r\n"
    "Grpc-Metadata-Content-Type: application/grpc\r\n"
    "Date: Sat, 28 Nov 2026 17:39:34 GMT\r\n"
    "Content-Length: 114\r\n"
    "\r\n"
    "{\"header\":{\"cluster_id\":\"17368989521238926805\",\"member_id\":\"17628310501313495538\","
    "\"revision\":\"7\",\"raft_term\":\"2\"}}";

struct reply_case {
	const char *bytes;
	bool skip;
	const char *word; /* NULL: not an error */
};

/* check_case: c parses alone, followed by another response, and not from
 * any proper prefix. */
static void check_case(const struct reply_case *c)
{
	size_t len = strlen(c->bytes), consumed = 0;
	struct bench_reply r;
	int rc = parse(c->bytes, len, &consumed, &r);
	if (rc != 0) {
		fprintf(stderr, "rc %d for:\n%s\n", rc, c->bytes);
		fail();
	}
	assert_int_equal(consumed, len);
	assert_int_equal(r.skip, c->skip);
	assert_word(&r, c->word);

	struct sp_buf b;
	sp_buf_init(&b);
	sp_buf_append(&b, c->bytes, len);
	sp_buf_append_str(&b, etcd_put);
	assert_int_equal(parse(sp_buf_begin(&b), b.len, &consumed, &r), 0);
	assert_int_equal(consumed, len);
	assert_int_equal(r.skip, c->skip);
	assert_word(&r, c->word);
	sp_buf_free(&b);

	for (size_t cut = 0; cut < len; cut++) {
		rc = parse(c->bytes, cut, &consumed, &r);
		if (rc != SP_ERR_AGAIN) {
			fprintf(stderr, "prefix of %zu bytes: rc %d\n", cut, rc);
			fail();
		}
		assert_false(r.error || r.skip);
	}
}

static void test_reply_etcd(void **state)
{
	(void)state;
	const struct reply_case cases[] = {
	    {etcd_put, false, NULL},
	    {etcd_range, false, NULL},
	    {etcd_del, false, NULL},
	    {etcd_no_key, false, "INVALID_ARGUMENT"},
	    {etcd_compacted, false, "OUT_OF_RANGE"},
	    {etcd_bad_base64, false, "INVALID_ARGUMENT"},
	    {etcd_not_found, false, "HTTP_404"},
	    {etcd_continue, true, NULL},
	    {etcd_after_continue, false, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
}

/* Responses sent back to back come apart where each ends. */
static void test_reply_pipelined(void **state)
{
	(void)state;
	const char *seq[] = {etcd_continue, etcd_after_continue, etcd_put,	 etcd_no_key,
			     etcd_range,    etcd_not_found,	 etcd_compacted, etcd_del};
	const bool skip[] = {true, false, false, false, false, false, false, false};
	const char *word[] = {NULL, NULL,	NULL,		"INVALID_ARGUMENT",
			      NULL, "HTTP_404", "OUT_OF_RANGE", NULL};
	struct sp_buf b;
	sp_buf_init(&b);
	for (size_t i = 0; i < 8; i++)
		sp_buf_append_str(&b, seq[i]);
	size_t off = 0;
	for (size_t i = 0; i < 8; i++) {
		size_t consumed;
		struct bench_reply r;
		assert_int_equal(parse(sp_buf_begin(&b) + off, b.len - off, &consumed, &r), 0);
		assert_int_equal(consumed, strlen(seq[i]));
		assert_int_equal(r.skip, skip[i]);
		assert_word(&r, word[i]);
		off += consumed;
	}
	assert_int_equal(off, b.len);
	sp_buf_free(&b);
}

/* ---- replies: made up ----------------------------------------------------- */

static void test_reply_error_names(void **state)
{
	(void)state;
	static const char *const names[] = {
	    "OK",
	    "CANCELLED",
	    "UNKNOWN",
	    "INVALID_ARGUMENT",
	    "DEADLINE_EXCEEDED",
	    "NOT_FOUND",
	    "ALREADY_EXISTS",
	    "PERMISSION_DENIED",
	    "RESOURCE_EXHAUSTED",
	    "FAILED_PRECONDITION",
	    "ABORTED",
	    "OUT_OF_RANGE",
	    "UNIMPLEMENTED",
	    "INTERNAL",
	    "UNAVAILABLE",
	    "DATA_LOSS",
	    "UNAUTHENTICATED",
	};
	char resp[512];
	for (long code = 0; code <= 17; code++) {
		char body[128];
		int n = snprintf(body, sizeof(body),
				 "{\"error\":\"etcdserver: request timed out\",\"message\":"
				 "\"etcdserver: request timed out\",\"code\":%ld}",
				 code);
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n%s", n,
			 body);
		struct reply_case c = {resp, false, code <= 16 ? names[code] : "HTTP_503"};
		check_case(&c);
		if (code <= 16)
			assert_string_equal(bench_http_grpc_code_name(code), names[code]);
	}
	assert_null(bench_http_grpc_code_name(17));
	assert_null(bench_http_grpc_code_name(-1));

	const struct {
		const char *status, *body, *word;
	} cases[] = {
	    /* Only a top-level numeric "code" names the error. */
	    {"500 Internal", "{\"code\":14}", "UNAVAILABLE"},
	    {"500 Internal", "{ \"code\" :\t4 , \"error\": \"x\" }", "DEADLINE_EXCEEDED"},
	    {"500 Internal", "{\"code\":\"14\"}", "HTTP_500"},
	    {"500 Internal", "{\"code\":-1}", "HTTP_500"},
	    {"500 Internal", "{\"code\":14.5}", "HTTP_500"},
	    {"500 Internal", "{\"code\":1e1}", "HTTP_500"},
	    {"500 Internal", "{\"code\":99999999999999}", "HTTP_500"},
	    {"500 Internal", "{\"details\":[{\"code\":5}],\"x\":{\"code\":6}}", "HTTP_500"},
	    {"500 Internal", "{\"details\":[{\"code\":5}],\"code\":7}", "PERMISSION_DENIED"},
	    {"500 Internal", "{\"message\":\"\\\"code\\\":9\"}", "HTTP_500"},
	    {"500 Internal", "{\"message\":\"code\",\"code\":10}", "ABORTED"},
	    {"500 Internal", "{\"\\u0063ode\":9}", "HTTP_500"},
	    {"500 Internal", "{\"codex\":9,\"xcode\":8}", "HTTP_500"},
	    {"500 Internal", "{\"code\":2,\"code\":3}", "UNKNOWN"},
	    {"500 Internal", "[\"code\",\"code\":3]", "HTTP_500"},
	    {"500 Internal", "{}{\"code\":3}", "HTTP_500"},
	    {"500 Internal", "{\"code\":12", "UNIMPLEMENTED"},
	    {"500 Internal", "{\"code\"", "HTTP_500"},
	    {"500 Internal", "not json \"code\":5", "HTTP_500"},
	    {"500 Internal", "", "HTTP_500"},
	    /* A 2xx is an error only with a top-level "error". */
	    {"200 OK", "{\"error\":\"boom\"}", "ERROR"},
	    {"200 OK", "{\"result\":{},\"error\":{\"code\":9,\"message\":\"x\"}}", "ERROR"},
	    {"200 OK", "{\"error\":\"boom\",\"code\":14}", "UNAVAILABLE"},
	    {"201 Created", "{\"code\":14}", NULL},
	    {"200 OK", "{\"result\":{\"error\":\"x\"}}", NULL},
	    {"200 OK", "{\"result\":\"\\\"error\\\":1\"}", NULL},
	    {"200 OK", "{\"errors\":1}", NULL},
	    {"200 OK", "\"error\":1", NULL},
	    /* Statuses without a JSON code. */
	    {"404 Not Found", "Not Found\n", "HTTP_404"},
	    {"599 Weird", "", "HTTP_599"},
	    {"999 Weirder", "", "HTTP_999"},
	    {"100 Continue", "", NULL},
	    {"299 OK", "", NULL},
	    {"300 Multiple", "", "HTTP_300"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(resp, sizeof(resp), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n\r\n%s",
			 cases[i].status, strlen(cases[i].body), cases[i].body);
		/* 1xx responses end at their header section. */
		if (cases[i].status[0] == '1')
			snprintf(resp, sizeof(resp), "HTTP/1.1 %s\r\n\r\n", cases[i].status);
		struct reply_case c = {resp, cases[i].status[0] == '1', cases[i].word};
		check_case(&c);
	}

	/* 204 and 304 end at their header section whatever their fields. */
	const struct reply_case bodiless[] = {
	    {"HTTP/1.1 204 No Content\r\n\r\n", false, NULL},
	    {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false, NULL},
	    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 123\r\n\r\n", false, "HTTP_304"},
	    {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip\r\n\r\n", false, "HTTP_304"},
	    {"HTTP/1.0 102 Processing\r\nX: y\r\n\r\n", true, NULL},
	    {"HTTP/1.1 199\r\n\r\n", true, NULL},
	};
	for (size_t i = 0; i < sizeof(bodiless) / sizeof(bodiless[0]); i++)
		check_case(&bodiless[i]);
}

static void test_reply_chunked(void **state)
{
	(void)state;
	const struct reply_case cases[] = {
	    /* Extensions, with and without values, quoted, after blanks. */
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "5;name=value\r\nhello\r\n"
	     "6 ; a ; b=\"quoted; \\\"string\\\"\"\r\n world\r\n"
	     "0;last\r\n\r\n",
	     false, NULL},
	    /* Trailers; hex in either case, leading zeros. */
	    {"HTTP/1.1 500 Oops\r\ntransfer-encoding: CHUNKED\r\n\r\n"
	     "000A\r\n{\"code\":14\r\n"
	     "1\r\n}\r\n"
	     "00\r\nGrpc-Status: 14\r\nGrpc-Message: unavailable\r\n\r\n",
	     false, "UNAVAILABLE"},
	    /* A member name and a number split across chunks. */
	    {"HTTP/1.1 503 Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "4\r\n{\"co\r\n"
	     "6\r\nde\": 1\r\n"
	     "2\r\n4}\r\n"
	     "0\r\n\r\n",
	     false, "UNAVAILABLE"},
	    /* Chunked wins over Content-Length (RFC 9112 §6.3). */
	    {"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
	     "3\r\nabc\r\n0\r\n\r\n",
	     false, NULL},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: ,chunked\r\n\r\n"
	     "0\r\n\r\n",
	     false, NULL},
	    /* "error" at the top of a chunked 200. */
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "3\r\n{\"e\r\n"
	     "a\r\nrror\":\"x\"}\r\n"
	     "0\r\n\r\n",
	     false, "ERROR"},
	    /* Other fields with odd but valid names and values. */
	    {"HTTP/1.1 404 \r\nX-!#$%&'*+-.^_`|~: \t\x80\xff value\t\r\nEmpty:\r\n"
	     "Content-Length: 0\r\n\r\n",
	     false, "HTTP_404"},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\ncontent-length:3\r\n\r\nabc", false, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
}

static void test_reply_malformed(void **state)
{
	(void)state;
	const char *bad[] = {
	    /* Not an HTTP/1 status line. */
	    "X",
	    "HTTP/2 200 OK\r\n\r\n",
	    "HTTP/1.1  200 OK\r\n\r\n",
	    "HTTP/1.x 200 OK\r\n\r\n",
	    "http/1.1 200 OK\r\n\r\n",
	    "HTTP/1.1 20 OK\r\n\r\n",
	    "HTTP/1.1 2000 OK\r\n\r\n",
	    "HTTP/1.1 099 Low\r\n\r\n",
	    "HTTP/1.1 2x0 OK\r\n\r\n",
	    "HTTP/1.1 200OK\r\n\r\n",
	    "+OK\r\n",
	    /* Line ends. */
	    "HTTP/1.1 200 OK\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n",
	    "HTTP/1.1 200 O\rK\r\n",
	    "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
	    /* Field lines. */
	    "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
	    "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX(y): a\r\nContent-Length: 0\r\n\r\n",
	    /* Content-Length. */
	    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 1 1\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 67108865\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
	    "HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n",
	    /* No framing where a body is due. */
	    "HTTP/1.1 200 OK\r\n\r\n",
	    "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nNot Found",
	    "HTTP/1.0 200 OK\r\n\r\n",
	    /* Transfer codings. */
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
	    /* Chunks. */
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ng\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;x\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000001\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff1\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t consumed = 12345;
		struct bench_reply r;
		int rc = parse(bad[i], strlen(bad[i]), &consumed, &r);
		if (rc != SP_ERR_PROTO) {
			fprintf(stderr, "case %zu: rc %d for:\n%s\n", i, rc, bad[i]);
			fail();
		}
		assert_false(r.error || r.skip);
		assert_int_equal(consumed, 12345);
	}
	/* A NUL in a line. */
	static const char nul[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n";
	size_t consumed;
	struct bench_reply r;
	assert_int_equal(parse(nul, sizeof(nul) - 1, &consumed, &r), SP_ERR_PROTO);
	assert_int_equal(bench_http_parse_reply(NULL, 0, &consumed, &r), SP_ERR_AGAIN);
}

/* A response whose header section takes exactly n bytes. */
static void header_of_size(struct sp_buf *b, size_t n)
{
	const char *start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n";
	sp_buf_clear(b);
	sp_buf_append_str(b, start);
	size_t left = n - strlen(start) - 2;
	while (left > 0) {
		/* "X: " + filler + CRLF, at least 5 bytes a line. */
		size_t line = left > 1000 ? 1000 : left;
		if (left - line > 0 && left - line < 5)
			line -= 5;
		sp_buf_append_str(b, "X: ");
		for (size_t i = 0; i < line - 5; i++)
			sp_buf_append(b, "v", 1);
		sp_buf_append_str(b, "\r\n");
		left -= line;
	}
	sp_buf_append_str(b, "\r\n");
	assert_int_equal(b->len, n);
}

static void test_reply_limits(void **state)
{
	(void)state;
	struct sp_buf b;
	size_t consumed;
	struct bench_reply r;
	sp_buf_init(&b);

	/* A header section of BENCH_HTTP_MAX_HEADER bytes is fine, one more
	 * byte is not, complete or not. */
	header_of_size(&b, BENCH_HTTP_MAX_HEADER);
	assert_int_equal(parse(sp_buf_begin(&b), b.len, &consumed, &r), 0);
	assert_int_equal(consumed, BENCH_HTTP_MAX_HEADER);
	assert_int_equal(parse(sp_buf_begin(&b), b.len - 1, &consumed, &r), SP_ERR_AGAIN);
	header_of_size(&b, BENCH_HTTP_MAX_HEADER + 1);
	assert_int_equal(parse(sp_buf_begin(&b), b.len, &consumed, &r), SP_ERR_PROTO);
	assert_int_equal(parse(sp_buf_begin(&b), b.len - 1, &consumed, &r), SP_ERR_PROTO);
	assert_int_equal(parse(sp_buf_begin(&b), b.len - 2, &consumed, &r), SP_ERR_AGAIN);

	/* A line that never ends. */
	sp_buf_clear(&b);
	sp_buf_append_str(&b, "HTTP/1.1 200 ");
	while (b.len < BENCH_HTTP_MAX_HEADER)
		sp_buf_append(&b, "x", 1);
	assert_int_equal(parse(sp_buf_begin(&b), b.len - 1, &consumed, &r), SP_ERR_AGAIN);
	assert_int_equal(parse(sp_buf_begin(&b), b.len, &consumed, &r), SP_ERR_PROTO);

	/* A trailer section, and a chunk-size line, are held to the same. */
	sp_buf_clear(&b);
	sp_buf_append_str(&b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
	size_t trailers = b.len;
	while (b.len - trailers < BENCH_HTTP_MAX_HEADER)
		sp_buf_append_str(&b, "T: 0123456789\r\n");
	assert_int_equal(parse(sp_buf_begin(&b), b.len, &consumed, &r), SP_ERR_PROTO);
	sp_buf_clear(&b);
	sp_buf_append_str(&b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0;");
	while (b.len < 2 * BENCH_HTTP_MAX_HEADER)
		sp_buf_append(&b, "e", 1);
	assert_int_equal(parse(sp_buf_begin(&b), b.len, &consumed, &r), SP_ERR_PROTO);

	/* A body of BENCH_HTTP_MAX_BODY bytes is waited for; one more byte,
	 * by length or in chunks, is refused. */
	sp_buf_clear(&b);
	sp_buf_appendf(&b, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", BENCH_HTTP_MAX_BODY);
	assert_int_equal(parse(sp_buf_begin(&b), b.len, &consumed, &r), SP_ERR_AGAIN);
	sp_buf_clear(&b);
	sp_buf_appendf(&b, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n",
		       BENCH_HTTP_MAX_BODY + 1);
	assert_int_equal(parse(sp_buf_begin(&b), b.len, &consumed, &r), SP_ERR_PROTO);

	sp_buf_clear(&b);
	sp_buf_appendf(&b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n",
		       BENCH_HTTP_MAX_BODY - 1);
	size_t data = b.len;
	sp_buf_reserve(&b, BENCH_HTTP_MAX_BODY + 64);
	memset(sp_buf_end(&b), 'x', BENCH_HTTP_MAX_BODY - 1);
	sp_buf_commit(&b, BENCH_HTTP_MAX_BODY - 1);
	sp_buf_append_str(&b, "\r\n1\r\nx\r\n");
	size_t at_limit = b.len;
	sp_buf_append_str(&b, "1\r\n");
	/* Straight on the buffer: a copy of 64 MiB per call is slow. */
	assert_int_equal(bench_http_parse_reply(sp_buf_begin(&b), b.len, &consumed, &r),
			 SP_ERR_PROTO);
	b.len = at_limit;
	sp_buf_append_str(&b, "0\r\n\r\n");
	assert_int_equal(bench_http_parse_reply(sp_buf_begin(&b), b.len, &consumed, &r), 0);
	assert_int_equal(consumed, b.len);
	assert_false(r.error);
	assert_int_equal(bench_http_parse_reply(sp_buf_begin(&b), data + 10, &consumed, &r),
			 SP_ERR_AGAIN);
	sp_buf_free(&b);
}

/* ---- replies: random ------------------------------------------------------ */

/* What a random response must parse to. */
struct want_reply {
	size_t len;
	bool skip;
	char word[32]; /* "" when not an error */
};

static void rand_bytes(uint64_t *rng, struct sp_buf *b, size_t n, const char *alphabet)
{
	size_t k = strlen(alphabet);
	for (size_t i = 0; i < n; i++)
		sp_buf_append(b, &alphabet[tu_rnd(rng, k)], 1);
}

static const char field_value_chars[] = "abcXYZ019 \t:;,\"'{}=/\\\x80\xfe";
static const char blank_chars[] = " \t";

static void rand_blanks(uint64_t *rng, struct sp_buf *b)
{
	rand_bytes(rng, b, tu_rnd(rng, 3), blank_chars);
}

/* rand_case appends s with each letter in a random case. */
static void rand_case(uint64_t *rng, struct sp_buf *b, const char *s)
{
	for (; *s; s++) {
		char c = *s;
		if (c >= 'a' && c <= 'z' && tu_rnd(rng, 2))
			c = (char)(c - 'a' + 'A');
		sp_buf_append(b, &c, 1);
	}
}

static void rand_field(uint64_t *rng, struct sp_buf *b)
{
	sp_buf_append_str(b, "X-");
	rand_bytes(rng, b, tu_rnd(rng, 12), "abcXYZ019!#$%&'*+-.^_`|~");
	sp_buf_append_str(b, ":");
	rand_blanks(rng, b);
	if (tu_rnd(rng, 3))
		sp_buf_append(b, "v", 1); /* not all blanks */
	rand_bytes(rng, b, tu_rnd(rng, 40), field_value_chars);
	sp_buf_append_str(b, "\r\n");
}

/* rand_json_blank appends JSON whitespace (0..2 bytes). */
static void rand_json_blank(uint64_t *rng, struct sp_buf *b)
{
	rand_bytes(rng, b, tu_rnd(rng, 3), " \t\r\n");
}

/* rand_json_string appends a JSON string that holds no member names we
 * look for at the top level (it may mention them, escaped). */
static void rand_json_string(uint64_t *rng, struct sp_buf *b)
{
	static const char *const bits[] = {"etcdserver: request timed out",
					   "\\\"code\\\":5",
					   "\\\"error\\\"",
					   "\\\\",
					   "{[",
					   "]}",
					   "é",
					   ":",
					   ","};
	sp_buf_append(b, "\"", 1);
	for (size_t i = tu_rnd(rng, 4); i > 0; i--)
		sp_buf_append_str(b, bits[tu_rnd(rng, sizeof(bits) / sizeof(bits[0]))]);
	sp_buf_append(b, "\"", 1);
}

/* rand_json_value appends a JSON value; nested objects may hold "code"
 * and "error" members, which are not top-level ones. */
static void rand_json_value(uint64_t *rng, struct sp_buf *b, int depth)
{
	switch (depth < 3 ? tu_rnd(rng, 6) : tu_rnd(rng, 3)) {
	case 0:
		rand_json_string(rng, b);
		break;
	case 1:
		sp_buf_appendf(b, "%lld", (long long)tu_rnd(rng, 100000) - 50);
		break;
	case 2:
		sp_buf_append_str(b, tu_rnd(rng, 2) ? "true" : "null");
		break;
	case 3:
	case 4: {
		static const char *const names[] = {"code", "error", "message", "details", "x"};
		sp_buf_append(b, "{", 1);
		for (size_t i = tu_rnd(rng, 4), first = 1; i > 0; i--, first = 0) {
			if (!first)
				sp_buf_append(b, ",", 1);
			rand_json_blank(rng, b);
			sp_buf_appendf(b, "\"%s\"", names[tu_rnd(rng, 5)]);
			rand_json_blank(rng, b);
			sp_buf_append(b, ":", 1);
			rand_json_blank(rng, b);
			rand_json_value(rng, b, depth + 1);
		}
		sp_buf_append(b, "}", 1);
		break;
	}
	default:
		sp_buf_append(b, "[", 1);
		for (size_t i = tu_rnd(rng, 4), first = 1; i > 0; i--, first = 0) {
			if (!first)
				sp_buf_append(b, ",", 1);
			rand_json_value(rng, b, depth + 1);
		}
		sp_buf_append(b, "]", 1);
		break;
	}
}

/* rand_body appends a body: text, or a JSON object whose top-level "error"
 * and "code" members (if any) are recorded in *has_error and *code (-1:
 * none, or not a number). */
static void rand_body(uint64_t *rng, struct sp_buf *b, bool *has_error, long *code)
{
	*has_error = false;
	*code = -1;
	switch (tu_rnd(rng, 4)) {
	case 0:
		return; /* empty */
	case 1:
		sp_buf_append_str(b, "Text "); /* not JSON: nothing in it counts */
		rand_bytes(rng, b, tu_rnd(rng, 60), "abc \r\n{}\":,");
		sp_buf_append_str(b, "\"code\":5 {\"error\":1}");
		return;
	default:
		break;
	}
	/* An object with members in random order. */
	enum { ERROR, MESSAGE, CODE, DETAILS, OTHER, ESCAPED, NMEMBERS };
	bool used[NMEMBERS] = {false};
	bool first = true;
	rand_json_blank(rng, b);
	sp_buf_append(b, "{", 1);
	for (size_t i = tu_rnd(rng, 7); i > 0; i--) {
		size_t m = tu_rnd(rng, NMEMBERS);
		if (used[m] && m != OTHER)
			continue;
		used[m] = true;
		if (!first)
			sp_buf_append(b, ",", 1);
		first = false;
		rand_json_blank(rng, b);
		switch (m) {
		case ERROR:
			sp_buf_append_str(b, "\"error\"");
			*has_error = true;
			break;
		case MESSAGE:
			sp_buf_append_str(b, "\"message\"");
			break;
		case CODE:
			sp_buf_append_str(b, "\"code\"");
			break;
		case DETAILS:
			sp_buf_append_str(b, "\"details\"");
			break;
		case OTHER:
			sp_buf_append_str(b, tu_rnd(rng, 2) ? "\"header\"" : "\"codes\"");
			break;
		default:
			sp_buf_append_str(b, tu_rnd(rng, 2) ? "\"\\u0063ode\"" : "\"err\\u006fr\"");
			break;
		}
		rand_json_blank(rng, b);
		sp_buf_append(b, ":", 1);
		rand_json_blank(rng, b);
		if (m == CODE && tu_rnd(rng, 5)) {
			long c = (long)tu_rnd(rng, 21);
			sp_buf_appendf(b, "%ld", c);
			*code = c;
		} else if (m == CODE) {
			rand_json_string(rng, b); /* "code":"14" names nothing */
		} else {
			rand_json_value(rng, b, 1);
		}
		rand_json_blank(rng, b);
	}
	sp_buf_append(b, "}", 1);
	rand_json_blank(rng, b);
}

/* rand_chunks appends body[0..n) chunked, with extensions and trailers. */
static void rand_chunks(uint64_t *rng, struct sp_buf *b, const char *body, size_t n)
{
	static const char *const exts[] = {
	    "", "", ";a", ";name=value", " ; q=\"x ; \\\"y\\\"\"", ";a;b=c"};
	size_t at = 0;
	for (;;) {
		size_t size = n - at;
		if (size > 0 && tu_rnd(rng, 3))
			size = 1 + tu_rnd(rng, size);
		for (size_t z = tu_rnd(rng, 4) == 0 ? tu_rnd(rng, 3) : 0; z > 0; z--)
			sp_buf_append(b, "0", 1);
		char hex[32];
		snprintf(hex, sizeof(hex), tu_rnd(rng, 2) ? "%zx" : "%zX", size);
		sp_buf_append_str(b, hex);
		sp_buf_append_str(b, exts[tu_rnd(rng, sizeof(exts) / sizeof(exts[0]))]);
		sp_buf_append_str(b, "\r\n");
		if (size == 0)
			break;
		sp_buf_append(b, body + at, size);
		sp_buf_append_str(b, "\r\n");
		at += size;
	}
	for (size_t t = tu_rnd(rng, 3); t > 0; t--)
		rand_field(rng, b);
	sp_buf_append_str(b, "\r\n");
}

/* gen_response appends a random valid response to out and says what it
 * must parse to. */
static void gen_response(uint64_t *rng, struct sp_buf *out, struct want_reply *want)
{
	static const int statuses[] = {100, 200, 200, 200, 201, 204, 304,
				       400, 404, 408, 500, 503, 504};
	size_t start = out->len;
	int status = tu_rnd(rng, 4) ? statuses[tu_rnd(rng, sizeof(statuses) / sizeof(statuses[0]))]
				    : 100 + (int)tu_rnd(rng, 900);
	bool bodiless = status < 200 || status == 204 || status == 304;

	sp_buf_appendf(out, "HTTP/1.%d %03d", (int)tu_rnd(rng, 2), status);
	if (tu_rnd(rng, 4)) {
		sp_buf_append(out, " ", 1);
		rand_bytes(rng, out, tu_rnd(rng, 20), "Some reason \t\x80");
	}
	sp_buf_append_str(out, "\r\n");

	struct sp_buf body;
	sp_buf_init(&body);
	bool has_error = false;
	long code = -1;
	if (!bodiless)
		rand_body(rng, &body, &has_error, &code);

	/* Framing fields go among the others. */
	size_t nfields = tu_rnd(rng, 8);
	size_t framing_at = tu_rnd(rng, nfields + 1);
	bool chunked = !bodiless && tu_rnd(rng, 2);
	for (size_t i = 0; i <= nfields; i++) {
		if (i == framing_at) {
			if (chunked) {
				static const char *const codings[] = {"chunked", "gzip, chunked",
								      "chunked;", ",chunked,"};
				rand_case(rng, out, "transfer-encoding:");
				rand_blanks(rng, out);
				rand_case(rng, out, codings[tu_rnd(rng, 4)]);
				rand_blanks(rng, out);
				sp_buf_append_str(out, "\r\n");
				if (tu_rnd(rng, 4) == 0) /* ignored */
					sp_buf_appendf(out, "Content-Length: %zu\r\n",
						       tu_rnd(rng, 100000));
			} else if (!bodiless || tu_rnd(rng, 4) == 0) {
				size_t n = bodiless ? tu_rnd(rng, 1000) : body.len;
				for (size_t k = 1 + (tu_rnd(rng, 4) == 0); k > 0; k--) {
					rand_case(rng, out, "content-length:");
					rand_blanks(rng, out);
					sp_buf_appendf(out, "%s%zu", tu_rnd(rng, 4) ? "" : "00", n);
					if (tu_rnd(rng, 5) == 0)
						sp_buf_appendf(out, " ,%zu", n);
					rand_blanks(rng, out);
					sp_buf_append_str(out, "\r\n");
				}
			}
		}
		if (i < nfields)
			rand_field(rng, out);
	}
	sp_buf_append_str(out, "\r\n");
	if (chunked)
		rand_chunks(rng, out, sp_buf_begin(&body), body.len);
	else
		sp_buf_append(out, sp_buf_begin(&body), body.len);
	sp_buf_free(&body);

	*want = (struct want_reply){.len = out->len - start, .skip = status < 200};
	const char *name = code >= 0 ? bench_http_grpc_code_name(code) : NULL;
	if (status < 200)
		return;
	if (status < 300) {
		if (has_error)
			snprintf(want->word, sizeof(want->word), "%s", name ? name : "ERROR");
	} else if (name) {
		snprintf(want->word, sizeof(want->word), "%s", name);
	} else {
		snprintf(want->word, sizeof(want->word), "HTTP_%03d", status);
	}
}

/* Random responses back to back, arriving in random pieces: each parses
 * once all of it is in, to its exact size and verdict, and not before. */
static void test_reply_random(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "reply_random");
	enum { MAX_SEQ = 6 };
	for (int round = 0; round < 4000; round++) {
		struct sp_buf b;
		struct want_reply want[MAX_SEQ];
		size_t nseq = 1 + tu_rnd(&rng, MAX_SEQ);
		sp_buf_init(&b);
		for (size_t i = 0; i < nseq; i++)
			gen_response(&rng, &b, &want[i]);

		/* Pieces of 1 byte up to everything at once. */
		size_t bound = tu_rnd(&rng, 4) == 0 ? b.len : 1 + tu_rnd(&rng, 64);
		size_t received = 0, off = 0, idx = 0;
		while (idx < nseq) {
			size_t consumed;
			struct bench_reply r;
			int rc = parse(sp_buf_begin(&b) + off, received - off, &consumed, &r);
			if (rc == SP_ERR_AGAIN) {
				/* Incomplete: there must be more to come. */
				if (received - off >= want[idx].len) {
					fprintf(stderr,
						"round %d reply %zu: AGAIN with all in:\n%.*s\n",
						round, idx, (int)want[idx].len,
						sp_buf_begin(&b) + off);
					fail();
				}
				size_t piece = 1 + tu_rnd(&rng, bound);
				received = received + piece > b.len ? b.len : received + piece;
				continue;
			}
			if (rc != 0 || consumed != want[idx].len) {
				fprintf(stderr,
					"round %d reply %zu: rc %d consumed %zu want %zu:\n%.*s\n",
					round, idx, rc, consumed, want[idx].len, (int)want[idx].len,
					sp_buf_begin(&b) + off);
				fail();
			}
			assert_int_equal(r.skip, want[idx].skip);
			assert_word(&r, want[idx].word[0] ? want[idx].word : NULL);
			off += consumed;
			idx++;
		}
		assert_int_equal(off, b.len);
		sp_buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_base64_vectors),    cmocka_unit_test(test_base64_roundtrip),
	    cmocka_unit_test(test_encode_exact),      cmocka_unit_test(test_encode_steps),
	    cmocka_unit_test(test_compile_errors),    cmocka_unit_test(test_encode_random),
	    cmocka_unit_test(test_reply_etcd),	      cmocka_unit_test(test_reply_pipelined),
	    cmocka_unit_test(test_reply_error_names), cmocka_unit_test(test_reply_chunked),
	    cmocka_unit_test(test_reply_malformed),   cmocka_unit_test(test_reply_limits),
	    cmocka_unit_test(test_reply_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
