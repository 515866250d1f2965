/*
 * test_resp: the RESP codec (src/net/resp.c).
 *
 * Examples for every request form, every value type and every error path,
 * each also fed one byte at a time to show the result does not depend on
 * chunking; the exact bytes of every writer function in RESP2 and RESP3;
 * limits at and one past each edge; and two round-trip properties over
 * random inputs fed in random chunk sizes: value trees through
 * resp_write_value and the reader, and pipelined commands through the
 * request parser. The properties print their seed when they fail; set
 * SPECTRA_SEED to replay one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../lib/testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "net/resp.h"

#define KB (1024ull)
#define MB (1024ull * KB)

/* S(lit) is a string literal and its length without the NUL, for inputs
 * that contain NUL bytes. */
#define S(lit) (lit), (sizeof(lit) - 1)

static const struct resp_limits req_limits = {
    .max_bulk_len = 512 * MB,
    .max_args = 1024 * 1024,
    .max_inline_len = 64 * KB,
};

static const struct resp_reader_limits rd_limits = {
    .max_bulk_len = 512 * MB,
    .max_elems = 1024 * 1024,
    .max_depth = 64,
};

/* ---------------------------------------------------------------------- */
/* Randomness                                                              */

/* ---------------------------------------------------------------------- */
/* Request parser helpers                                                  */

/* expect_args checks the request just parsed from buf has exactly the
 * NULL-terminated argument list want. */
static void expect_args(const struct resp_request_parser *p, const char *buf,
			const char *const *want)
{
	size_t n = 0;
	while (want[n])
		n++;
	assert_int_equal(p->argc, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(p->args[i].len, strlen(want[i]));
		assert_memory_equal(resp_arg_ptr(p, buf, i), want[i], p->args[i].len);
	}
}

/* An outcome of parsing a whole input: the requests and how it ended. */
struct req_run {
	int rc;		 /* final return: SP_ERR_AGAIN when the input ran out */
	const char *msg; /* err.msg when rc is an error */
	size_t requests; /* requests completed before that */
	size_t consumed; /* bytes those requests used */
	size_t argc_sum; /* total arguments, a cheap fingerprint */
	uint64_t arg_hash;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* run_requests parses in[0..len) as a server would, making chunk more bytes
 * visible after each SP_ERR_AGAIN (0: all at once). */
static struct req_run run_requests(const struct resp_limits *lim, const char *in, size_t len,
				   size_t chunk)
{
	struct resp_request_parser p;
	struct req_run run = {.rc = SP_ERR_AGAIN, .arg_hash = 14695981039346656037ull};
	size_t base = 0, visible = chunk ? 0 : len;

	resp_request_parser_init(&p, lim);
	for (;;) {
		size_t consumed = 99;
		struct resp_error err = {NULL};
		int rc = resp_parse_request(&p, in + base, visible - base, &consumed, &err);
		if (rc == SP_ERR_AGAIN) {
			assert_int_equal(consumed, 0);
			if (visible == len)
				break;
			visible = visible + chunk < len ? visible + chunk : len;
			continue;
		}
		if (rc != 0) {
			run.rc = rc;
			run.msg = err.msg;
			assert_non_null(err.msg);
			break;
		}
		assert_true(consumed > 0 && consumed <= visible - base);
		run.requests++;
		run.argc_sum += p.argc;
		for (size_t i = 0; i < p.argc; i++) {
			run.arg_hash = fnv(run.arg_hash, &p.args[i].len, sizeof(p.args[i].len));
			run.arg_hash =
			    fnv(run.arg_hash, resp_arg_ptr(&p, in + base, i), p.args[i].len);
		}
		base += consumed;
		run.consumed = base;
	}
	resp_request_parser_close(&p);
	return run;
}

/* expect_request_error checks in ends in error rc with message msg, the
 * same whether it arrives whole, one byte at a time or in 5-byte chunks. */
static void expect_request_error(const struct resp_limits *lim, const char *in, size_t len, int rc,
				 const char *msg)
{
	size_t chunks[] = {0, 1, 5};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct req_run run = run_requests(lim, in, len, chunks[i]);
		if (run.rc != rc || strcmp(run.msg ? run.msg : "", msg) != 0)
			fail_msg("input \"%.*s\" chunk %zu: got %d \"%s\", want %d \"%s\"",
				 (int)(len < 60 ? len : 60), in, chunks[i], run.rc,
				 run.msg ? run.msg : "", rc, msg);
	}
}

/* ---------------------------------------------------------------------- */
/* Request parser: multibulk                                               */

static void test_req_multibulk(void **state)
{
	(void)state;
	const char in[] = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
	struct resp_request_parser p;
	struct resp_error err = {NULL};
	size_t consumed;

	resp_request_parser_init(&p, &req_limits);
	assert_int_equal(resp_parse_request(&p, S(in), &consumed, &err), 0);
	assert_int_equal(consumed, sizeof(in) - 1);
	assert_int_equal(p.is_inline, 0);
	expect_args(&p, in, (const char *const[]){"SET", "key", "value", NULL});
	/* Offsets count from the start of the request. */
	assert_int_equal(p.args[0].off, 8);
	assert_ptr_equal(resp_arg_ptr(&p, in, 2), in + 26);
	/* Nothing left: incomplete. */
	assert_int_equal(resp_parse_request(&p, in + consumed, 0, &consumed, &err), SP_ERR_AGAIN);
	assert_int_equal(consumed, 0);
	resp_request_parser_close(&p);
	resp_request_parser_close(&p); /* twice is fine */
	resp_request_parser_close(NULL);
}

static void test_req_pipelined(void **state)
{
	(void)state;
	const char in[] = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nECHO hi\r\n"
			  "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n";
	struct resp_request_parser p;
	struct resp_error err;
	size_t consumed, base = 0;

	resp_request_parser_init(&p, &req_limits);
	assert_int_equal(resp_parse_request(&p, in, sizeof(in) - 1, &consumed, &err), 0);
	expect_args(&p, in, (const char *const[]){"PING", NULL});
	base += consumed;
	assert_int_equal(resp_parse_request(&p, in + base, sizeof(in) - 1 - base, &consumed, &err),
			 0);
	expect_args(&p, in + base, (const char *const[]){"GET", "k", NULL});
	base += consumed;
	assert_int_equal(resp_parse_request(&p, in + base, sizeof(in) - 1 - base, &consumed, &err),
			 0);
	assert_int_equal(p.is_inline, 1);
	expect_args(&p, in + base, (const char *const[]){"ECHO", "hi", NULL});
	base += consumed;
	assert_int_equal(resp_parse_request(&p, in + base, sizeof(in) - 1 - base, &consumed, &err),
			 0);
	assert_int_equal(p.is_inline, 0);
	expect_args(&p, in + base, (const char *const[]){"ECHO", "", NULL});
	base += consumed;
	assert_int_equal(base, sizeof(in) - 1);
	resp_request_parser_close(&p);
}

/* Every prefix of a request is incomplete and the whole one is not. */
static void test_req_byte_at_a_time(void **state)
{
	(void)state;
	const char in[] = "*2\r\n$4\r\nECHO\r\n$12\r\nhello\r\nworld\r\n";
	struct resp_request_parser p;
	struct resp_error err;
	size_t consumed;

	resp_request_parser_init(&p, &req_limits);
	for (size_t n = 0; n < sizeof(in) - 1; n++) {
		assert_int_equal(resp_parse_request(&p, in, n, &consumed, &err), SP_ERR_AGAIN);
		assert_int_equal(consumed, 0);
	}
	assert_int_equal(resp_parse_request(&p, in, sizeof(in) - 1, &consumed, &err), 0);
	assert_int_equal(consumed, sizeof(in) - 1);
	expect_args(&p, in, (const char *const[]){"ECHO", "hello\r\nworld", NULL});
	resp_request_parser_close(&p);
}

/* A count <= 0 is consumed as an empty request, as Redis does. */
static void test_req_empty_multibulk(void **state)
{
	(void)state;
	const char *inputs[] = {"*0\r\n", "*-1\r\n", "*-5\r\n"};
	for (size_t i = 0; i < 3; i++) {
		struct resp_request_parser p;
		struct resp_error err;
		size_t consumed;
		resp_request_parser_init(&p, &req_limits);
		assert_int_equal(
		    resp_parse_request(&p, inputs[i], strlen(inputs[i]), &consumed, &err), 0);
		assert_int_equal(consumed, strlen(inputs[i]));
		assert_int_equal(p.argc, 0);
		assert_int_equal(p.is_inline, 0);
		resp_request_parser_close(&p);
	}
}

static void test_req_binary_args(void **state)
{
	(void)state;
	const char in[] = "*3\r\n$3\r\n\0\r\n\r\n$0\r\n\r\n$2\r\n\xff\xfe\r\n";
	struct resp_request_parser p;
	struct resp_error err;
	size_t consumed;

	resp_request_parser_init(&p, &req_limits);
	assert_int_equal(resp_parse_request(&p, S(in), &consumed, &err), 0);
	assert_int_equal(consumed, sizeof(in) - 1);
	assert_int_equal(p.argc, 3);
	assert_int_equal(p.args[0].len, 3);
	assert_memory_equal(resp_arg_ptr(&p, in, 0), "\0\r\n", 3);
	assert_int_equal(p.args[1].len, 0);
	assert_int_equal(p.args[2].len, 2);
	assert_memory_equal(resp_arg_ptr(&p, in, 2), "\xff\xfe", 2);
	resp_request_parser_close(&p);
}

static void test_req_errors(void **state)
{
	(void)state;
	struct {
		const char *in;
		int rc;
		const char *msg;
	} cases[] = {
	    {"*abc\r\n", SP_ERR_PROTO, "invalid multibulk length"},
	    {"*\r\n", SP_ERR_PROTO, "invalid multibulk length"},
	    {"*01\r\n", SP_ERR_PROTO, "invalid multibulk length"},
	    {"*+1\r\n", SP_ERR_PROTO, "invalid multibulk length"},
	    {"*-0\r\n", SP_ERR_PROTO, "invalid multibulk length"},
	    {"*1 \r\n", SP_ERR_PROTO, "invalid multibulk length"},
	    {"*1\rx", SP_ERR_PROTO, "invalid multibulk length"},
	    {"*99999999999999999999\r\n", SP_ERR_PROTO, "invalid multibulk length"},
	    {"*3000000000\r\n", SP_ERR_TOOBIG, "invalid multibulk length"},
	    {"*1\r\nfoo\r\n", SP_ERR_PROTO, "expected '$', got 'f'"},
	    {"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", SP_ERR_PROTO, "expected '$', got 'f'"},
	    {"*1\r\n\r\n", SP_ERR_PROTO, "expected '$', got '\r'"},
	    {"*1\r\n:1\r\n", SP_ERR_PROTO, "expected '$', got ':'"},
	    {"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", SP_ERR_PROTO, "invalid bulk length"},
	    {"*1\r\n$-1\r\n", SP_ERR_PROTO, "invalid bulk length"},
	    {"*1\r\n$blabla\r\n", SP_ERR_PROTO, "invalid bulk length"},
	    {"*1\r\n$\r\n", SP_ERR_PROTO, "invalid bulk length"},
	    {"*1\r\n$03\r\nabc\r\n", SP_ERR_PROTO, "invalid bulk length"},
	    {"*1\r\n$3\rXabc\r\n", SP_ERR_PROTO, "invalid bulk length"},
	    {"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", SP_ERR_TOOBIG, "invalid bulk length"},
	    {"*1\r\n$3\r\nabcd\r\n", SP_ERR_PROTO, "bulk data not followed by CRLF"},
	    {"*1\r\n$3\r\nabc\n\r", SP_ERR_PROTO, "bulk data not followed by CRLF"},
	    {"*1\r\n$3\r\nabc\rx", SP_ERR_PROTO, "bulk data not followed by CRLF"},
	    {"set \"\"\"test-key\"\"\" test-value\r\nping\r\n", SP_ERR_PROTO,
	     "unbalanced quotes in request"},
	    /* Earlier complete requests do not hide a later error. */
	    {"PING\r\n*1\r\n$1\r\na\r\n*x\r\n", SP_ERR_PROTO, "invalid multibulk length"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_request_error(&req_limits, cases[i].in, strlen(cases[i].in), cases[i].rc,
				     cases[i].msg);
}

/* A count or length line may be 64KB long, as in Redis, and no longer. */
static void test_req_too_big_count_strings(void **state)
{
	(void)state;
	size_t n = 64 * KB + 16;
	char *in = malloc(n + 16);
	assert_non_null(in);

	in[0] = '*';
	memset(in + 1, '1', n);
	/* 64KB of digits is not yet too long... */
	struct req_run run = run_requests(&req_limits, in, 1 + 64 * KB, 0);
	assert_int_equal(run.rc, SP_ERR_AGAIN);
	/* ...and one more is. */
	expect_request_error(&req_limits, in, 2 + 64 * KB, SP_ERR_PROTO,
			     "too big mbulk count string");
	/* A CR after more than 64KB does not help. */
	memcpy(in + 1 + n - 2, "\r\n", 2);
	expect_request_error(&req_limits, in, 1 + n, SP_ERR_PROTO, "too big mbulk count string");
	/* Within the limit, a line that is no number is just invalid. */
	memcpy(in + 1 + 100, "\r\n", 2);
	expect_request_error(&req_limits, in, 103, SP_ERR_PROTO, "invalid multibulk length");

	memcpy(in, "*1\r\n$", 5);
	memset(in + 5, '7', n - 4);
	expect_request_error(&req_limits, in, 1 + n, SP_ERR_PROTO, "too big bulk count string");
	free(in);
}

static void test_req_limits(void **state)
{
	(void)state;
	struct resp_limits lim = {.max_bulk_len = 10, .max_args = 3, .max_inline_len = 64 * KB};
	struct req_run run;

	run = run_requests(&lim, S("*3\r\n$10\r\n0123456789\r\n$0\r\n\r\n$1\r\nx\r\n"), 1);
	assert_int_equal(run.rc, SP_ERR_AGAIN);
	assert_int_equal(run.requests, 1);
	assert_int_equal(run.argc_sum, 3);
	expect_request_error(&lim, S("*1\r\n$11\r\n"), SP_ERR_TOOBIG, "invalid bulk length");
	expect_request_error(&lim, S("*4\r\n"), SP_ERR_TOOBIG, "invalid multibulk length");
	/* The limit is on the count, not on what follows. */
	expect_request_error(&lim, S("*4\r\n$1\r\na\r\n"), SP_ERR_TOOBIG,
			     "invalid multibulk length");
}

/* A huge announced count reserves little; memory grows with the arguments
 * that arrive and is given back after a huge request. */
static void test_req_args_reservation(void **state)
{
	(void)state;
	struct resp_request_parser p;
	struct resp_error err;
	size_t consumed;
	const char announce[] = "*1000000\r\n$1\r\na\r\n";

	resp_request_parser_init(&p, &req_limits);
	assert_int_equal(resp_parse_request(&p, S(announce), &consumed, &err), SP_ERR_AGAIN);
	assert_true(p.args_cap <= 1024);
	resp_request_parser_close(&p);

	/* 5000 arguments, then a small request. */
	struct sp_buf b;
	sp_buf_init(&b);
	resp_write_array_len(&b, 5000);
	for (int i = 0; i < 5000; i++)
		resp_write_bulk_int(&b, i);
	resp_write_array_len(&b, 1);
	resp_write_bulk_str(&b, "PING");
	resp_request_parser_init(&p, &req_limits);
	assert_int_equal(resp_parse_request(&p, sp_buf_begin(&b), b.len, &consumed, &err), 0);
	assert_int_equal(p.argc, 5000);
	for (int i = 0; i < 5000; i += 997) {
		char want[16];
		snprintf(want, sizeof(want), "%d", i);
		assert_int_equal(p.args[i].len, strlen(want));
		assert_memory_equal(resp_arg_ptr(&p, sp_buf_begin(&b), (size_t)i), want,
				    strlen(want));
	}
	assert_true(p.args_cap >= 5000 && p.args_cap < 10000);
	const char *rest = sp_buf_begin(&b) + consumed;
	assert_int_equal(resp_parse_request(&p, rest, b.len - consumed, &consumed, &err), 0);
	expect_args(&p, rest, (const char *const[]){"PING", NULL});
	assert_true(p.args_cap <= 1024);
	resp_request_parser_close(&p);
	sp_buf_free(&b);
}

/* A 1 MB bulk fed 7 bytes at a time: each call only compares lengths, so
 * this is linear however small the chunks. */
static void test_req_large_bulk_chunked(void **state)
{
	(void)state;
	size_t n = 1 * MB;
	struct sp_buf b;
	sp_buf_init(&b);
	char *payload = malloc(n);
	assert_non_null(payload);
	for (size_t i = 0; i < n; i++)
		payload[i] = (char)(i * 131 + 7);
	resp_write_array_len(&b, 2);
	resp_write_bulk_str(&b, "SET");
	resp_write_bulk(&b, payload, n);

	struct resp_request_parser p;
	struct resp_error err;
	size_t consumed = 0, visible = 0, calls = 0;
	int rc = SP_ERR_AGAIN;
	resp_request_parser_init(&p, &req_limits);
	while (rc == SP_ERR_AGAIN) {
		assert_true(visible < b.len);
		visible = visible + 7 < b.len ? visible + 7 : b.len;
		rc = resp_parse_request(&p, sp_buf_begin(&b), visible, &consumed, &err);
		calls++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(consumed, b.len);
	assert_int_equal(calls, (b.len + 6) / 7);
	assert_int_equal(p.args[1].len, n);
	assert_memory_equal(resp_arg_ptr(&p, sp_buf_begin(&b), 1), payload, n);
	resp_request_parser_close(&p);
	sp_buf_free(&b);
	free(payload);
}

/* ---------------------------------------------------------------------- */
/* Request parser: inline                                                  */

static void expect_inline(const char *in, size_t len, const char *const *want)
{
	size_t chunks[] = {0, 1, 3};
	for (size_t c = 0; c < 3; c++) {
		struct resp_request_parser p;
		struct resp_error err = {NULL};
		size_t consumed = 0, visible = chunks[c] ? 0 : len;
		int rc;
		resp_request_parser_init(&p, &req_limits);
		while ((rc = resp_parse_request(&p, in, visible, &consumed, &err)) ==
		       SP_ERR_AGAIN) {
			assert_true(visible < len);
			visible = visible + chunks[c] < len ? visible + chunks[c] : len;
		}
		if (rc != 0)
			fail_msg("inline \"%.*s\": error %d %s", (int)len, in, rc, err.msg);
		assert_int_equal(consumed, len);
		assert_int_equal(p.is_inline, 1);
		expect_args(&p, in, want);
		resp_request_parser_close(&p);
	}
}

static void test_req_inline_basic(void **state)
{
	(void)state;
	expect_inline(S("PING\r\n"), (const char *const[]){"PING", NULL});
	expect_inline(S("PING\n"), (const char *const[]){"PING", NULL});
	expect_inline(S("set a b\r\n"), (const char *const[]){"set", "a", "b", NULL});
	expect_inline(S("  set\t a   b \t \r\n"), (const char *const[]){"set", "a", "b", NULL});
	expect_inline(S("\r\n"), (const char *const[]){NULL});
	expect_inline(S("\n"), (const char *const[]){NULL});
	expect_inline(S("  \t \r\n"), (const char *const[]){NULL});
	/* Only one CR before the LF is dropped; others are blanks. */
	expect_inline(S("a\r\r\n"), (const char *const[]){"a", NULL});
	/* \v and \f separate only where arguments start, as with isspace. */
	expect_inline(S("\va\vb\n"), (const char *const[]){"a\vb", NULL});
	/* A backslash outside quotes is a plain byte. */
	expect_inline(S("a\\tb\n"), (const char *const[]){"a\\tb", NULL});
	/* Binary safe: NUL and high bytes are data. */
	struct resp_request_parser p;
	struct resp_error err;
	size_t consumed;
	const char bin[] = "x\0y \xff\n";
	resp_request_parser_init(&p, &req_limits);
	assert_int_equal(resp_parse_request(&p, S(bin), &consumed, &err), 0);
	assert_int_equal(p.argc, 2);
	assert_int_equal(p.args[0].len, 3);
	assert_memory_equal(resp_arg_ptr(&p, bin, 0), "x\0y", 3);
	assert_memory_equal(resp_arg_ptr(&p, bin, 1), "\xff", 1);
	/* Arguments live in the parser's copy, not in the input. */
	assert_true(resp_arg_ptr(&p, bin, 0) < bin ||
		    resp_arg_ptr(&p, bin, 0) >= bin + sizeof(bin));
	resp_request_parser_close(&p);
}

static void test_req_inline_quotes(void **state)
{
	(void)state;
	expect_inline(S("set \"a b\" 'c d'\r\n"), (const char *const[]){"set", "a b", "c d", NULL});
	expect_inline(S("\"\\x41\\x4a\\x6b\\n\\r\\t\\b\\a\\\\\\\"z\"\n"),
		      (const char *const[]){"AJk\n\r\t\b\a\\\"z", NULL});
	/* \x without two hex digits is an escaped 'x'. */
	expect_inline(S("\"\\xZZ\" \"\\x4\"\n"), (const char *const[]){"xZZ", "x4", NULL});
	/* Unknown escapes keep the character. */
	expect_inline(S("\"\\q\\'\"\n"), (const char *const[]){"q'", NULL});
	expect_inline(S("'it\\'s'\n"), (const char *const[]){"it's", NULL});
	/* Single quotes take no other escapes. */
	expect_inline(S("'a\\nb' 'a\\\\b'\n"), (const char *const[]){"a\\nb", "a\\\\b", NULL});
	/* Quotes may start inside an argument and be empty. */
	expect_inline(S("a\"b c\" d''\n"), (const char *const[]){"ab c", "d", NULL});
	expect_inline(S("set k \"\" ''\r\n"), (const char *const[]){"set", "k", "", "", NULL});
	expect_inline(S("\"a\"\t'b'\n"), (const char *const[]){"a", "b", NULL});
	expect_inline(S("\"a\"\r\n"), (const char *const[]){"a", NULL});
	/* A NUL through \x00. */
	struct resp_request_parser p;
	struct resp_error err;
	size_t consumed;
	const char nul[] = "\"a\\x00b\"\n";
	resp_request_parser_init(&p, &req_limits);
	assert_int_equal(resp_parse_request(&p, S(nul), &consumed, &err), 0);
	assert_int_equal(p.argc, 1);
	assert_int_equal(p.args[0].len, 3);
	assert_memory_equal(resp_arg_ptr(&p, nul, 0), "a\0b", 3);
	resp_request_parser_close(&p);

	const char *bad[] = {
	    "\"abc\n",	   "'abc\n",	     "\"a\"b\n", "'a'b\n",
	    "\"abc\\\"\n", "x \"a\"\"b\"\n", "'a\\'\n",	 "\"\\\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_request_error(&req_limits, bad[i], strlen(bad[i]), SP_ERR_PROTO,
				     "unbalanced quotes in request");
}

static void test_req_inline_too_big(void **state)
{
	(void)state;
	struct resp_limits lim = req_limits;
	lim.max_inline_len = 16;

	/* 16 bytes before the newline is the most. */
	struct req_run run = run_requests(&lim, S("0123456789abcdef"), 1);
	assert_int_equal(run.rc, SP_ERR_AGAIN);
	run = run_requests(&lim, S("0123456789abcdef\n0123456789abcde\r\n"), 1);
	assert_int_equal(run.rc, SP_ERR_AGAIN);
	assert_int_equal(run.requests, 2);
	expect_request_error(&lim, S("0123456789abcdefg"), SP_ERR_TOOBIG, "too big inline request");
	/* Known too long even when the newline arrives in the same read. */
	expect_request_error(&lim, S("0123456789abcdefg\n"), SP_ERR_TOOBIG,
			     "too big inline request");
	expect_request_error(&lim, S("0123456789abcdef\r\n"), SP_ERR_TOOBIG,
			     "too big inline request");
	/* The inline limit does not apply to multibulk requests. */
	run = run_requests(&lim, S("*1\r\n$20\r\n01234567890123456789\r\n"), 0);
	assert_int_equal(run.requests, 1);
}

/* ---------------------------------------------------------------------- */
/* Value reader helpers                                                    */

/* read_all feeds in[0..len) in chunks (0: whole) and returns the values
 * read in *vals (count *nvals) and the final return code and message. */
static int read_all(const struct resp_reader_limits *lim, const char *in, size_t len, size_t chunk,
		    struct resp_value *vals, size_t max_vals, size_t *nvals, const char **msg)
{
	struct resp_reader r;
	size_t fed = 0;
	int rc;

	*nvals = 0;
	*msg = NULL;
	resp_reader_init(&r, lim);
	for (;;) {
		struct resp_error err = {NULL};
		struct resp_value v;
		rc = resp_reader_next(&r, &v, &err);
		if (rc == 0) {
			assert_true(*nvals < max_vals);
			vals[(*nvals)++] = v;
			continue;
		}
		if (rc != SP_ERR_AGAIN) {
			*msg = err.msg;
			break;
		}
		if (fed == len)
			break;
		size_t n = chunk && chunk < len - fed ? chunk : len - fed;
		resp_reader_feed(&r, in + fed, n);
		fed += n;
	}
	resp_reader_close(&r);
	return rc;
}

/* read_one reads exactly one value from in, checking every chunking gives
 * the same tree and that nothing is left. */
static struct resp_value read_one(const char *in, size_t len)
{
	struct resp_value first = {0};
	size_t chunks[] = {0, 1, 4};
	for (size_t c = 0; c < 3; c++) {
		struct resp_value v[2];
		size_t n;
		const char *msg;
		int rc = read_all(&rd_limits, in, len, chunks[c], v, 2, &n, &msg);
		if (rc != SP_ERR_AGAIN || n != 1)
			fail_msg("reading \"%.*s\": rc %d (%s), %zu values", (int)len, in, rc,
				 msg ? msg : "", n);
		if (c == 0) {
			first = v[0];
		} else {
			assert_true(resp_value_equal(&first, &v[0]));
			resp_value_free(&v[0]);
		}
	}
	return first;
}

static void expect_read_error(const struct resp_reader_limits *lim, const char *in, size_t len,
			      int want_rc, const char *want_msg)
{
	size_t chunks[] = {0, 1, 3};
	for (size_t c = 0; c < 3; c++) {
		struct resp_value v[8];
		size_t n;
		const char *msg;
		int rc = read_all(lim, in, len, chunks[c], v, 8, &n, &msg);
		for (size_t i = 0; i < n; i++)
			resp_value_free(&v[i]);
		if (rc != want_rc || strcmp(msg ? msg : "", want_msg) != 0)
			fail_msg("reading \"%.*s\" chunk %zu: got %d \"%s\", want %d \"%s\"",
				 (int)(len < 60 ? len : 60), in, chunks[c], rc, msg ? msg : "",
				 want_rc, want_msg);
	}
}

static void expect_str(const struct resp_value *v, enum resp_type t, const char *s, size_t n)
{
	assert_int_equal(v->type, t);
	assert_int_equal(v->len, n);
	assert_non_null(v->str);
	assert_memory_equal(v->str, s, n);
	assert_int_equal(v->str[n], '\0');
	assert_null(v->attr);
}

/* ---------------------------------------------------------------------- */
/* Value reader                                                            */

static void test_read_scalars(void **state)
{
	(void)state;
	struct resp_value v;

	v = read_one(S("+OK\r\n"));
	expect_str(&v, RESP_SIMPLE, "OK", 2);
	resp_value_free(&v);
	v = read_one(S("+\r\n"));
	expect_str(&v, RESP_SIMPLE, "", 0);
	resp_value_free(&v);
	v = read_one(S("-ERR unknown command\r\n"));
	expect_str(&v, RESP_ERROR, "ERR unknown command", 19);
	resp_value_free(&v);
	v = read_one(S(":-42\r\n"));
	assert_int_equal(v.type, RESP_INTEGER);
	assert_int_equal(v.integer, -42);
	v = read_one(S(":9223372036854775807\r\n"));
	assert_true(v.integer == INT64_MAX);
	v = read_one(S(":-9223372036854775808\r\n"));
	assert_true(v.integer == INT64_MIN);
	v = read_one(S("$5\r\nhe\r\no\r\n"));
	expect_str(&v, RESP_BULK, "he\r\no", 5);
	resp_value_free(&v);
	v = read_one(S("$0\r\n\r\n"));
	expect_str(&v, RESP_BULK, "", 0);
	resp_value_free(&v);
	v = read_one(S("$3\r\n\0\xff\n\r\n"));
	expect_str(&v, RESP_BULK, "\0\xff\n", 3);
	resp_value_free(&v);
	/* RESP2 nulls and the RESP3 one. */
	v = read_one(S("$-1\r\n"));
	assert_int_equal(v.type, RESP_NULL);
	v = read_one(S("*-1\r\n"));
	assert_int_equal(v.type, RESP_NULL);
	v = read_one(S("_\r\n"));
	assert_int_equal(v.type, RESP_NULL);
	v = read_one(S("#t\r\n"));
	assert_int_equal(v.type, RESP_BOOL);
	assert_int_equal(v.integer, 1);
	v = read_one(S("#f\r\n"));
	assert_int_equal(v.integer, 0);

	v = read_one(S(",1.5\r\n"));
	expect_str(&v, RESP_DOUBLE, "1.5", 3);
	assert_true(v.dbl == 1.5);
	resp_value_free(&v);
	v = read_one(S(",-10\r\n"));
	assert_true(v.dbl == -10.0);
	resp_value_free(&v);
	v = read_one(S(",1e300\r\n"));
	assert_true(v.dbl == 1e300);
	resp_value_free(&v);
	v = read_one(S(",inf\r\n"));
	assert_true(isinf(v.dbl) && v.dbl > 0);
	resp_value_free(&v);
	v = read_one(S(",-inf\r\n"));
	assert_true(isinf(v.dbl) && v.dbl < 0);
	resp_value_free(&v);
	v = read_one(S(",nan\r\n"));
	assert_true(isnan(v.dbl));
	resp_value_free(&v);

	v = read_one(S("(3492890328409238509324850943850943825024385\r\n"));
	expect_str(&v, RESP_BIGNUM, "3492890328409238509324850943850943825024385", 43);
	resp_value_free(&v);
	v = read_one(S("(-1\r\n"));
	expect_str(&v, RESP_BIGNUM, "-1", 2);
	resp_value_free(&v);
	v = read_one(S("!21\r\nSYNTAX invalid syntax\r\n"));
	expect_str(&v, RESP_BLOBERR, "SYNTAX invalid syntax", 21);
	resp_value_free(&v);
	v = read_one(S("=15\r\ntxt:Some string\r\n"));
	expect_str(&v, RESP_VERBATIM, "txt:Some string", 15);
	resp_value_free(&v);
	v = read_one(S("=4\r\nmkd:\r\n"));
	expect_str(&v, RESP_VERBATIM, "mkd:", 4);
	resp_value_free(&v);
}

static void test_read_aggregates(void **state)
{
	(void)state;
	struct resp_value v;

	v = read_one(S("*2\r\n:1\r\n$1\r\na\r\n"));
	assert_int_equal(v.type, RESP_ARRAY);
	assert_int_equal(v.n, 2);
	assert_int_equal(v.elems[0].integer, 1);
	expect_str(&v.elems[1], RESP_BULK, "a", 1);
	resp_value_free(&v);

	v = read_one(S("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n"));
	assert_int_equal(v.type, RESP_MAP);
	assert_int_equal(v.n, 2);
	expect_str(&v.elems[0], RESP_SIMPLE, "first", 5);
	assert_int_equal(v.elems[1].integer, 1);
	expect_str(&v.elems[2], RESP_SIMPLE, "second", 6);
	assert_int_equal(v.elems[3].integer, 2);
	resp_value_free(&v);

	v = read_one(S("~3\r\n+a\r\n#t\r\n_\r\n"));
	assert_int_equal(v.type, RESP_SET);
	assert_int_equal(v.n, 3);
	assert_int_equal(v.elems[2].type, RESP_NULL);
	resp_value_free(&v);

	v = read_one(S(">3\r\n+message\r\n+chan\r\n$5\r\nhello\r\n"));
	assert_int_equal(v.type, RESP_PUSH);
	assert_int_equal(v.n, 3);
	resp_value_free(&v);

	v = read_one(S("*0\r\n"));
	assert_int_equal(v.type, RESP_ARRAY);
	assert_int_equal(v.n, 0);
	resp_value_free(&v);
	v = read_one(S("%0\r\n"));
	assert_int_equal(v.type, RESP_MAP);
	assert_int_equal(v.n, 0);
	resp_value_free(&v);

	/* Nesting, with a RESP2 null inside. */
	v = read_one(S("*3\r\n*1\r\n*1\r\n:7\r\n%1\r\n~0\r\n$-1\r\n*-1\r\n"));
	assert_int_equal(v.n, 3);
	assert_int_equal(v.elems[0].elems[0].elems[0].integer, 7);
	assert_int_equal(v.elems[1].type, RESP_MAP);
	assert_int_equal(v.elems[1].elems[0].type, RESP_SET);
	assert_int_equal(v.elems[1].elems[1].type, RESP_NULL);
	assert_int_equal(v.elems[2].type, RESP_NULL);
	resp_value_free(&v);
}

static void test_read_attributes(void **state)
{
	(void)state;
	struct resp_value v;

	/* The RESP3 specification's example. */
	v = read_one(S("|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
		       "*2\r\n:2039123\r\n:9543892\r\n"));
	assert_int_equal(v.type, RESP_ARRAY);
	assert_int_equal(v.n, 2);
	assert_non_null(v.attr);
	assert_int_equal(v.attr->type, RESP_ATTR);
	assert_int_equal(v.attr->n, 1);
	expect_str(&v.attr->elems[0], RESP_SIMPLE, "key-popularity", 14);
	assert_int_equal(v.attr->elems[1].type, RESP_MAP);
	assert_true(v.attr->elems[1].elems[1].dbl == 0.1923);
	assert_null(v.elems[0].attr);
	resp_value_free(&v);

	/* Inside an aggregate, on one element, not counted as one. */
	v = read_one(S("*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n"));
	assert_int_equal(v.n, 2);
	assert_null(v.attr);
	assert_null(v.elems[0].attr);
	assert_non_null(v.elems[1].attr);
	assert_int_equal(v.elems[1].integer, 2);
	assert_int_equal(v.elems[1].attr->elems[1].integer, 3600);
	resp_value_free(&v);

	/* On strings, nulls and empty aggregates; empty attributes too. */
	v = read_one(S("|0\r\n$2\r\nhi\r\n"));
	assert_int_equal(v.type, RESP_BULK);
	assert_non_null(v.attr);
	assert_int_equal(v.attr->n, 0);
	resp_value_free(&v);
	v = read_one(S("|1\r\n+a\r\n+b\r\n$-1\r\n"));
	assert_int_equal(v.type, RESP_NULL);
	assert_non_null(v.attr);
	resp_value_free(&v);
	v = read_one(S("|1\r\n+a\r\n+b\r\n*0\r\n"));
	assert_int_equal(v.type, RESP_ARRAY);
	assert_non_null(v.attr);
	resp_value_free(&v);

	/* Attributes on an attribute's keys and values. */
	v = read_one(S("|1\r\n|1\r\n+x\r\n+y\r\n+k\r\n+v\r\n:5\r\n"));
	assert_int_equal(v.integer, 5);
	assert_non_null(v.attr);
	assert_non_null(v.attr->elems[0].attr);
	assert_null(v.attr->elems[1].attr);
	resp_value_free(&v);

	/* An attribute alone is not a value yet. */
	struct resp_value vals[2];
	size_t n;
	const char *msg;
	assert_int_equal(read_all(&rd_limits, S("|1\r\n+a\r\n+b\r\n"), 0, vals, 2, &n, &msg),
			 SP_ERR_AGAIN);
	assert_int_equal(n, 0);
}

static void test_read_pipelined(void **state)
{
	(void)state;
	const char in[] = "+OK\r\n:1\r\n*1\r\n$1\r\nx\r\n_\r\n$3\r\nab";
	struct resp_value v[8];
	size_t n;
	const char *msg;

	assert_int_equal(read_all(&rd_limits, S(in), 1, v, 8, &n, &msg), SP_ERR_AGAIN);
	assert_int_equal(n, 4);
	assert_int_equal(v[0].type, RESP_SIMPLE);
	assert_int_equal(v[1].type, RESP_INTEGER);
	assert_int_equal(v[2].type, RESP_ARRAY);
	assert_int_equal(v[3].type, RESP_NULL);
	for (size_t i = 0; i < n; i++)
		resp_value_free(&v[i]);
}

static void test_read_errors(void **state)
{
	(void)state;
	struct {
		const char *in;
		size_t len;
		int rc;
		const char *msg;
	} cases[] = {
#define C(lit, rc, msg) {lit, sizeof(lit) - 1, rc, msg}
	    C("x\r\n", SP_ERR_PROTO, "invalid type byte"),
	    C("\r\n", SP_ERR_PROTO, "invalid type byte"),
	    C("*1\r\nhello\r\n", SP_ERR_PROTO, "invalid type byte"),
	    C("$?\r\n;4\r\nHell\r\n;0\r\n", SP_ERR_PROTO, "streamed types not supported"),
	    C("*?\r\n", SP_ERR_PROTO, "streamed types not supported"),
	    C("%?\r\n", SP_ERR_PROTO, "streamed types not supported"),
	    C("~?\r\n", SP_ERR_PROTO, "streamed types not supported"),
	    C(">?\r\n", SP_ERR_PROTO, "streamed types not supported"),
	    C("!?\r\n", SP_ERR_PROTO, "streamed types not supported"),
	    C(";4\r\n", SP_ERR_PROTO, "streamed types not supported"),
	    C(".\r\n", SP_ERR_PROTO, "streamed types not supported"),
	    C(":abc\r\n", SP_ERR_PROTO, "invalid integer"),
	    C(":\r\n", SP_ERR_PROTO, "invalid integer"),
	    C(":9223372036854775808\r\n", SP_ERR_PROTO, "invalid integer"),
	    C("#x\r\n", SP_ERR_PROTO, "invalid boolean"),
	    C("#\r\n", SP_ERR_PROTO, "invalid boolean"),
	    C("#tt\r\n", SP_ERR_PROTO, "invalid boolean"),
	    C("_x\r\n", SP_ERR_PROTO, "invalid null"),
	    C(",abc\r\n", SP_ERR_PROTO, "invalid double"),
	    C(",\r\n", SP_ERR_PROTO, "invalid double"),
	    C(", 1\r\n", SP_ERR_PROTO, "invalid double"),
	    C(",1.5x\r\n", SP_ERR_PROTO, "invalid double"),
	    C(",1\0\r\n", SP_ERR_PROTO, "invalid double"),
	    C("(12a\r\n", SP_ERR_PROTO, "invalid big number"),
	    C("(\r\n", SP_ERR_PROTO, "invalid big number"),
	    C("(-\r\n", SP_ERR_PROTO, "invalid big number"),
	    C("=3\r\ntxt\r\n", SP_ERR_PROTO, "invalid verbatim string"),
	    C("=5\r\ntxt_x\r\n", SP_ERR_PROTO, "invalid verbatim string"),
	    C("$-2\r\n", SP_ERR_PROTO, "invalid bulk length"),
	    C("$x\r\n", SP_ERR_PROTO, "invalid bulk length"),
	    C("!-1\r\n", SP_ERR_PROTO, "invalid bulk length"),
	    C("=-1\r\n", SP_ERR_PROTO, "invalid bulk length"),
	    C("%-1\r\n", SP_ERR_PROTO, "invalid aggregate length"),
	    C("~-1\r\n", SP_ERR_PROTO, "invalid aggregate length"),
	    C("*-2\r\n", SP_ERR_PROTO, "invalid aggregate length"),
	    C("*\r\n", SP_ERR_PROTO, "invalid aggregate length"),
	    C("$3\r\nabcd\r\n", SP_ERR_PROTO, "bulk string not followed by CRLF"),
	    C("!1\r\nabc", SP_ERR_PROTO, "bulk string not followed by CRLF"),
	    C("+OK\rx", SP_ERR_PROTO, "line not terminated by CRLF"),
	    C("|1\r\n+a\r\n+b\r\n|0\r\n+c\r\n", SP_ERR_PROTO, "attribute followed by attribute"),
	    /* Values before the error are still read. */
	    C("+OK\r\n:1\r\n:x\r\n", SP_ERR_PROTO, "invalid integer"),
#undef C
	};
	struct resp_reader_limits lim = rd_limits;
	lim.max_bulk_len = 64;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_read_error(&lim, cases[i].in, cases[i].len, cases[i].rc, cases[i].msg);
}

static void test_read_limits(void **state)
{
	(void)state;
	struct resp_reader_limits lim = {.max_bulk_len = 10, .max_elems = 3, .max_depth = 3};
	struct resp_value v[4];
	size_t n;
	const char *msg;

	/* At each limit. */
	assert_int_equal(read_all(&lim,
				  S("$10\r\n0123456789\r\n+0123456789\r\n*3\r\n_\r\n_\r\n_\r\n"
				    "%3\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n"),
				  1, v, 4, &n, &msg),
			 SP_ERR_AGAIN);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		resp_value_free(&v[i]);
	assert_int_equal(read_all(&lim, S("*1\r\n*1\r\n*0\r\n"), 0, v, 4, &n, &msg), SP_ERR_AGAIN);
	assert_int_equal(n, 1);
	resp_value_free(&v[0]);

	/* One past each. */
	expect_read_error(&lim, S("$11\r\n"), SP_ERR_TOOBIG, "bulk string too long");
	expect_read_error(&lim, S("!11\r\n"), SP_ERR_TOOBIG, "bulk string too long");
	expect_read_error(&lim, S("+0123456789A"), SP_ERR_TOOBIG, "line too long");
	expect_read_error(&lim, S("+0123456789A\r\n"), SP_ERR_TOOBIG, "line too long");
	expect_read_error(&lim, S("*4\r\n"), SP_ERR_TOOBIG, "aggregate too large");
	expect_read_error(&lim, S("%4\r\n"), SP_ERR_TOOBIG, "aggregate too large");
	expect_read_error(&lim, S("|4\r\n"), SP_ERR_TOOBIG, "aggregate too large");
	expect_read_error(&lim, S("*1\r\n*1\r\n*1\r\n*1\r\n"), SP_ERR_TOOBIG, "nesting too deep");
	expect_read_error(&lim, S("*1\r\n%1\r\n|1\r\n~1\r\n"), SP_ERR_TOOBIG, "nesting too deep");
	expect_read_error(&lim, S("*1\r\n*1\r\n*1\r\n*0\r\n"), SP_ERR_TOOBIG, "nesting too deep");
	/* A null is no aggregate. */
	assert_int_equal(read_all(&lim, S("*1\r\n*1\r\n*1\r\n*-1\r\n"), 0, v, 4, &n, &msg),
			 SP_ERR_AGAIN);
	assert_int_equal(n, 1);
	resp_value_free(&v[0]);
}

/* A huge announced count is not trusted for allocation, and a reader
 * closed mid-value frees what it built. */
static void test_read_partial_close(void **state)
{
	(void)state;
	struct resp_reader r;
	struct resp_value v;
	struct resp_error err;
	const char in[] = "|1\r\n+a\r\n+b\r\n*1000000\r\n%2\r\n+k\r\n$3\r\nab";

	resp_reader_init(&r, &rd_limits);
	resp_reader_feed(&r, S(in));
	assert_int_equal(resp_reader_next(&r, &v, &err), SP_ERR_AGAIN);
	assert_int_equal(r.depth, 2);
	resp_reader_close(&r);
	resp_reader_close(&r);
	resp_reader_close(NULL);
}

static void test_read_large_bulk_chunked(void **state)
{
	(void)state;
	size_t n = 1 * MB;
	struct sp_buf b;
	char *payload = malloc(n);
	assert_non_null(payload);
	for (size_t i = 0; i < n; i++)
		payload[i] = (char)(i * 7 + 1);
	sp_buf_init(&b);
	resp_write_bulk(&b, payload, n);

	struct resp_reader r;
	struct resp_value v;
	struct resp_error err;
	int rc = SP_ERR_AGAIN;
	size_t fed = 0;
	resp_reader_init(&r, &rd_limits);
	while ((rc = resp_reader_next(&r, &v, &err)) == SP_ERR_AGAIN) {
		assert_true(fed < b.len);
		size_t c = b.len - fed < 7 ? b.len - fed : 7;
		resp_reader_feed(&r, sp_buf_begin(&b) + fed, c);
		fed += c;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(fed, b.len);
	assert_int_equal(v.len, n);
	assert_memory_equal(v.str, payload, n);
	resp_value_free(&v);
	resp_reader_close(&r);
	sp_buf_free(&b);
	free(payload);
}

static void test_value_equal(void **state)
{
	(void)state;
	struct resp_value a = read_one(S("*2\r\n$1\r\na\r\n,1.0\r\n"));
	struct resp_value b = read_one(S("*2\r\n$1\r\na\r\n,1\r\n"));
	struct resp_value c = read_one(S("*2\r\n+a\r\n,1.0\r\n"));
	struct resp_value d = read_one(S("|0\r\n*2\r\n$1\r\na\r\n,1.0\r\n"));
	struct resp_value e = read_one(S("*1\r\n$1\r\na\r\n"));
	assert_true(resp_value_equal(&a, &a));
	assert_false(resp_value_equal(&a, &b)); /* double text differs */
	assert_false(resp_value_equal(&a, &c)); /* bulk vs simple */
	assert_false(resp_value_equal(&a, &d)); /* attribute */
	assert_false(resp_value_equal(&a, &e)); /* count */
	assert_false(resp_value_equal(&a, NULL));
	/* Without text, doubles compare by value, NaN equal to NaN. */
	struct resp_value x = {.type = RESP_DOUBLE, .dbl = NAN};
	struct resp_value y = {.type = RESP_DOUBLE, .dbl = NAN};
	assert_true(resp_value_equal(&x, &y));
	y.dbl = 1;
	assert_false(resp_value_equal(&x, &y));
	resp_value_free(&a);
	resp_value_free(&b);
	resp_value_free(&c);
	resp_value_free(&d);
	resp_value_free(&e);
	resp_value_free(NULL);
}

/* ---------------------------------------------------------------------- */
/* Writer                                                                  */

#define expect_buf(b, lit) expect_buf_at((b), (lit), sizeof(lit) - 1, __FILE__, __LINE__)

static void expect_buf_at(struct sp_buf *b, const char *want, size_t n, const char *file, int line)
{
	if (b->len != n || memcmp(sp_buf_begin(b), want, n) != 0) {
		print_error("%s:%d: wrote \"%.*s\", want \"%.*s\"\n", file, line, (int)b->len,
			    sp_buf_begin(b), (int)n, want);
		fail();
	}
	sp_buf_clear(b);
}

static void test_write_functions(void **state)
{
	(void)state;
	struct sp_buf b;
	sp_buf_init(&b);

	resp_write_simple(&b, "OK");
	expect_buf(&b, "+OK\r\n");
	resp_write_error(&b, "ERR bad\r\nthing\n");
	expect_buf(&b, "-ERR bad  thing \r\n");
	resp_write_errorf(&b, "ERR unknown command '%s', with args beginning with: %d", "x", 3);
	expect_buf(&b, "-ERR unknown command 'x', with args beginning with: 3\r\n");
	char long_arg[600];
	memset(long_arg, 'a', sizeof(long_arg) - 1);
	long_arg[sizeof(long_arg) - 1] = '\0';
	long_arg[300] = '\n';
	resp_write_errorf(&b, "ERR %s!", long_arg);
	assert_int_equal(b.len, 1 + 4 + 599 + 1 + 2);
	assert_memory_equal(sp_buf_begin(&b) + 1 + 4 + 300, " ", 1);
	assert_memory_equal(sp_buf_begin(&b) + b.len - 3, "!\r\n", 3);
	sp_buf_clear(&b);
	resp_write_integer(&b, 0);
	expect_buf(&b, ":0\r\n");
	resp_write_integer(&b, -1234567);
	expect_buf(&b, ":-1234567\r\n");
	resp_write_integer(&b, INT64_MIN);
	expect_buf(&b, ":-9223372036854775808\r\n");
	resp_write_integer(&b, INT64_MAX);
	expect_buf(&b, ":9223372036854775807\r\n");
	resp_write_bulk(&b, "a\0b", 3);
	expect_buf(&b, "$3\r\na\0b\r\n");
	resp_write_bulk(&b, NULL, 0);
	expect_buf(&b, "$0\r\n\r\n");
	resp_write_bulk_str(&b, "hello");
	expect_buf(&b, "$5\r\nhello\r\n");
	resp_write_bulk_int(&b, -42);
	expect_buf(&b, "$3\r\n-42\r\n");
	resp_write_null(&b, 2);
	expect_buf(&b, "$-1\r\n");
	resp_write_null(&b, 3);
	expect_buf(&b, "_\r\n");
	resp_write_null_array(&b, 2);
	expect_buf(&b, "*-1\r\n");
	resp_write_null_array(&b, 3);
	expect_buf(&b, "_\r\n");
	resp_write_array_len(&b, 12);
	expect_buf(&b, "*12\r\n");
	resp_write_map_len(&b, 3, 2);
	expect_buf(&b, "*6\r\n");
	resp_write_map_len(&b, 3, 3);
	expect_buf(&b, "%3\r\n");
	resp_write_set_len(&b, 2, 2);
	expect_buf(&b, "*2\r\n");
	resp_write_set_len(&b, 2, 3);
	expect_buf(&b, "~2\r\n");
	resp_write_bool(&b, 1, 2);
	expect_buf(&b, ":1\r\n");
	resp_write_bool(&b, 0, 2);
	expect_buf(&b, ":0\r\n");
	resp_write_bool(&b, 7, 3);
	expect_buf(&b, "#t\r\n");
	resp_write_bool(&b, 0, 3);
	expect_buf(&b, "#f\r\n");
	resp_write_double(&b, 1.5, 3);
	expect_buf(&b, ",1.5\r\n");
	resp_write_double(&b, 1.5, 2);
	expect_buf(&b, "$3\r\n1.5\r\n");
	resp_write_double(&b, 0.1, 3);
	expect_buf(&b, ",0.10000000000000001\r\n");
	resp_write_double(&b, 3, 3);
	expect_buf(&b, ",3\r\n");
	resp_write_double(&b, -0.0, 3);
	expect_buf(&b, ",-0\r\n");
	resp_write_double(&b, INFINITY, 3);
	expect_buf(&b, ",inf\r\n");
	resp_write_double(&b, -INFINITY, 3);
	expect_buf(&b, ",-inf\r\n");
	resp_write_double(&b, -INFINITY, 2);
	expect_buf(&b, "$4\r\n-inf\r\n");
	resp_write_double(&b, NAN, 3);
	expect_buf(&b, ",nan\r\n");
	resp_write_double(&b, 1e22, 2);
	expect_buf(&b, "$5\r\n1e+22\r\n");
	resp_write_verbatim(&b, "txt", "Some string", 11, 3);
	expect_buf(&b, "=15\r\ntxt:Some string\r\n");
	resp_write_verbatim(&b, "txt", "Some string", 11, 2);
	expect_buf(&b, "$11\r\nSome string\r\n");
	sp_buf_free(&b);
}

/* Integers of every width against printf. */
static void test_write_integer_vs_printf(void **state)
{
	(void)state;
	struct sp_buf b;
	uint64_t seed = tu_seed();
	int64_t edges[] = {0,
			   1,
			   -1,
			   9,
			   10,
			   99,
			   100,
			   999,
			   1000,
			   9999,
			   10000,
			   99999,
			   100000,
			   INT64_MAX,
			   INT64_MIN,
			   INT64_MAX - 1,
			   INT64_MIN + 1,
			   1000000000000000000,
			   -999999999999999999};
	sp_buf_init(&b);
	for (size_t i = 0; i < 100000; i++) {
		int64_t v;
		if (i < sizeof(edges) / sizeof(edges[0]))
			v = edges[i];
		else
			v = (int64_t)(tu_splitmix(&seed) >> tu_rnd(&seed, 64));
		if ((i & 1) && v != INT64_MIN)
			v = -v;
		char want[32];
		int n = snprintf(want, sizeof(want), ":%" PRId64 "\r\n", v);
		resp_write_integer(&b, v);
		if (b.len != (size_t)n || memcmp(sp_buf_begin(&b), want, (size_t)n) != 0)
			fail_msg("integer %" PRId64 ": wrote %.*s", v, (int)b.len,
				 sp_buf_begin(&b));
		sp_buf_clear(&b);
		resp_write_bulk_int(&b, v);
		char bulk[48];
		int bn = snprintf(bulk, sizeof(bulk), "$%d\r\n%.*s\r\n", n - 3, n - 3, want + 1);
		if (b.len != (size_t)bn || memcmp(sp_buf_begin(&b), bulk, (size_t)bn) != 0)
			fail_msg("bulk integer %" PRId64 ": wrote %.*s", v, (int)b.len,
				 sp_buf_begin(&b));
		sp_buf_clear(&b);
	}
	sp_buf_free(&b);
}

/* Any double written reads back as exactly the same number. */
static void test_write_double_roundtrip(void **state)
{
	(void)state;
	uint64_t seed0 = tu_seed(), seed = seed0;
	struct sp_buf b;
	sp_buf_init(&b);
	for (int i = 0; i < 20000; i++) {
		uint64_t bits = tu_splitmix(&seed);
		double d;
		memcpy(&d, &bits, sizeof(d));
		if (i % 3 == 0)
			d = (double)(int64_t)bits / (double)(1 + tu_rnd(&seed, 1000000));
		int proto = 2 + (i & 1);
		resp_write_double(&b, d, proto);
		struct resp_reader r;
		struct resp_value v;
		struct resp_error err;
		resp_reader_init(&r, &rd_limits);
		resp_reader_feed(&r, sp_buf_begin(&b), b.len);
		assert_int_equal(resp_reader_next(&r, &v, &err), 0);
		double back = proto == 3 ? v.dbl : strtod(v.str, NULL);
		if (!(isnan(d) ? isnan(back) : memcmp(&d, &back, sizeof(d)) == 0))
			fail_msg("double %.17g wrote %.*s (seed %" PRIu64 ")", d, (int)b.len,
				 sp_buf_begin(&b), seed0);
		resp_value_free(&v);
		resp_reader_close(&r);
		sp_buf_clear(&b);
	}
	sp_buf_free(&b);
}

static void test_write_value(void **state)
{
	(void)state;
	const char in[] =
	    "|1\r\n+ttl\r\n:10\r\n*11\r\n+s\r\n-ERR e\r\n:-5\r\n$2\r\nab\r\n_\r\n#t\r\n"
	    ",1.50\r\n(-12\r\n!3\r\nerr\r\n=8\r\nmkd:text\r\n"
	    "%1\r\n~2\r\n>0\r\n#f\r\n|0\r\n*0\r\n";
	struct resp_value v = read_one(S(in));
	struct sp_buf b;
	sp_buf_init(&b);
	resp_write_value(&b, &v);
	expect_buf(&b, in);
	/* RESP2 nulls come back as RESP3 nulls. */
	struct resp_value n = read_one(S("*2\r\n$-1\r\n*-1\r\n"));
	resp_write_value(&b, &n);
	expect_buf(&b, "*2\r\n_\r\n_\r\n");
	/* A hand-built double without text is formatted. */
	struct resp_value d = {.type = RESP_DOUBLE, .dbl = -2.5};
	resp_write_value(&b, &d);
	expect_buf(&b, ",-2.5\r\n");
	resp_value_free(&v);
	resp_value_free(&n);
	sp_buf_free(&b);
}

/* ---------------------------------------------------------------------- */
/* Property: value trees survive write -> chunked read                     */

static void rand_bytes(uint64_t *s, char *p, size_t n, int allow_cr)
{
	for (size_t i = 0; i < n; i++) {
		char c;
		switch (tu_rnd(s, 4)) {
		case 0:
			c = (char)tu_rnd(s, 256);
			break;
		case 1:
			c = "\r\n\0 \"'\\$*:"[tu_rnd(s, 10)];
			break;
		default:
			c = (char)('a' + tu_rnd(s, 26));
			break;
		}
		if (!allow_cr && c == '\r')
			c = 'r';
		p[i] = c;
	}
}

static size_t rand_len(uint64_t *s)
{
	switch (tu_rnd(s, 8)) {
	case 0:
		return 0;
	case 1:
		return 100 + tu_rnd(s, 400);
	default:
		return tu_rnd(s, 12);
	}
}

static void gen_value(uint64_t *s, struct resp_value *v, int depth, int allow_attr);

static void gen_elems(uint64_t *s, struct resp_value *v, size_t count, int depth)
{
	v->elems = count ? calloc(count, sizeof(*v->elems)) : NULL;
	for (size_t i = 0; i < count; i++)
		gen_value(s, &v->elems[i], depth + 1, 1);
}

static void gen_value(uint64_t *s, struct resp_value *v, int depth, int allow_attr)
{
	static const enum resp_type scalars[] = {
	    RESP_SIMPLE, RESP_ERROR,  RESP_INTEGER, RESP_BULK,	  RESP_NULL,
	    RESP_BOOL,	 RESP_DOUBLE, RESP_BIGNUM,  RESP_BLOBERR, RESP_VERBATIM,
	};
	static const enum resp_type aggregates[] = {RESP_ARRAY, RESP_MAP, RESP_SET, RESP_PUSH};

	memset(v, 0, sizeof(*v));
	if (depth < 5 && tu_rnd(s, 3) == 0)
		v->type = aggregates[tu_rnd(s, 4)];
	else
		v->type = scalars[tu_rnd(s, 10)];

	switch (v->type) {
	case RESP_SIMPLE:
	case RESP_ERROR:
		v->len = rand_len(s);
		v->str = malloc(v->len + 1);
		rand_bytes(s, v->str, v->len, 0);
		v->str[v->len] = '\0';
		break;
	case RESP_BULK:
	case RESP_BLOBERR:
		v->len = rand_len(s);
		v->str = malloc(v->len + 1);
		rand_bytes(s, v->str, v->len, 1);
		v->str[v->len] = '\0';
		break;
	case RESP_VERBATIM:
		v->len = 4 + rand_len(s);
		v->str = malloc(v->len + 1);
		memcpy(v->str, tu_rnd(s, 2) ? "txt:" : "mkd:", 4);
		rand_bytes(s, v->str + 4, v->len - 4, 1);
		v->str[v->len] = '\0';
		break;
	case RESP_INTEGER:
		v->integer = (int64_t)(tu_splitmix(s) >> tu_rnd(s, 64));
		if (tu_rnd(s, 2) && v->integer != INT64_MIN)
			v->integer = -v->integer;
		if (tu_rnd(s, 20) == 0)
			v->integer = tu_rnd(s, 2) ? INT64_MIN : INT64_MAX;
		break;
	case RESP_NULL:
		break;
	case RESP_BOOL:
		v->integer = (int64_t)tu_rnd(s, 2);
		break;
	case RESP_DOUBLE: {
		static const char *texts[] = {"inf", "-inf", "nan",    "1.5",
					      "-0",  "1e10", "0.1923", "3.14159265358979"};
		char text[40];
		if (tu_rnd(s, 3) == 0) {
			snprintf(text, sizeof(text), "%s", texts[tu_rnd(s, 8)]);
		} else {
			uint64_t bits = tu_splitmix(s);
			double d;
			memcpy(&d, &bits, sizeof(d));
			if (isnan(d))
				d = 0.5;
			snprintf(text, sizeof(text), "%.17g", d);
		}
		v->str = strdup(text);
		v->len = strlen(text);
		v->dbl = strtod(text, NULL);
		break;
	}
	case RESP_BIGNUM: {
		size_t n = 1 + tu_rnd(s, 50);
		int neg = (int)tu_rnd(s, 2);
		v->len = n + (size_t)neg;
		v->str = malloc(v->len + 1);
		v->str[0] = '-';
		for (size_t i = 0; i < n; i++)
			v->str[neg + i] = (char)('0' + tu_rnd(s, 10));
		v->str[v->len] = '\0';
		break;
	}
	case RESP_ARRAY:
	case RESP_SET:
	case RESP_PUSH:
		v->n = tu_rnd(s, 6);
		gen_elems(s, v, v->n, depth);
		break;
	case RESP_MAP:
		v->n = tu_rnd(s, 4);
		gen_elems(s, v, 2 * v->n, depth);
		break;
	case RESP_ATTR:
		break;
	}
	if (allow_attr && depth < 5 && tu_rnd(s, 8) == 0) {
		v->attr = calloc(1, sizeof(*v->attr));
		v->attr->type = RESP_ATTR;
		v->attr->n = tu_rnd(s, 3);
		gen_elems(s, v->attr, 2 * v->attr->n, depth);
	}
}

/* next_chunk picks the next chunk size in one of several styles, one byte
 * at a time included. */
static size_t next_chunk(uint64_t *s, int style, size_t left)
{
	size_t n;
	switch (style) {
	case 0:
		n = 1;
		break;
	case 1:
		n = 1 + tu_rnd(s, 8);
		break;
	case 2:
		n = 1 + tu_rnd(s, 100);
		break;
	case 3:
		n = 1 + tu_rnd(s, left);
		break;
	default:
		n = left;
		break;
	}
	return n < left ? n : left;
}

static void test_prop_value_roundtrip(void **state)
{
	(void)state;
	uint64_t seed = tu_seed();
	struct sp_buf b;
	sp_buf_init(&b);

	for (int iter = 0; iter < 1500; iter++) {
		uint64_t iseed = seed + (uint64_t)iter, s = iseed;
		struct resp_value want[4];
		size_t nwant = 1 + tu_rnd(&s, 4);
		for (size_t i = 0; i < nwant; i++) {
			gen_value(&s, &want[i], 0, 1);
			resp_write_value(&b, &want[i]);
		}
		int style = (int)tu_rnd(&s, 5);

		struct resp_reader r;
		resp_reader_init(&r, &rd_limits);
		size_t fed = 0, got = 0;
		for (;;) {
			struct resp_value v;
			struct resp_error err = {NULL};
			int rc = resp_reader_next(&r, &v, &err);
			if (rc == SP_ERR_AGAIN) {
				if (fed == b.len)
					break;
				size_t n = next_chunk(&s, style, b.len - fed);
				resp_reader_feed(&r, sp_buf_begin(&b) + fed, n);
				fed += n;
				continue;
			}
			if (rc != 0)
				fail_msg("seed %" PRIu64 ": reader error %d %s", iseed, rc,
					 err.msg);
			if (got >= nwant || !resp_value_equal(&v, &want[got]))
				fail_msg("seed %" PRIu64 ": value %zu differs", iseed, got);
			resp_value_free(&v);
			got++;
		}
		if (got != nwant || r.in.len != 0)
			fail_msg("seed %" PRIu64 ": read %zu of %zu values", iseed, got, nwant);
		resp_reader_close(&r);
		for (size_t i = 0; i < nwant; i++)
			resp_value_free(&want[i]);
		sp_buf_clear(&b);
	}
	sp_buf_free(&b);
}

/* ---------------------------------------------------------------------- */
/* Property: pipelined commands survive chunked parsing                    */

struct gen_req {
	size_t argc;
	char *args[8];
	size_t lens[8];
};

/* encode_inline writes one argument in one of the quoting styles that can
 * carry it. */
static void encode_inline_arg(uint64_t *s, struct sp_buf *b, const char *a, size_t n, int first)
{
	int plain = n > 0, single = n == 0 || a[n - 1] != '\\';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
		    c == '"' || c == '\'' || (first && i == 0 && c == '*'))
			plain = 0;
		if (c == '\n')
			single = 0;
	}
	int style = (int)tu_rnd(s, 3);
	if (style == 0 && plain) {
		sp_buf_append(b, a, n);
	} else if (style == 1 && single) {
		sp_buf_append(b, "'", 1);
		for (size_t i = 0; i < n; i++) {
			if (a[i] == '\'')
				sp_buf_append(b, "\\'", 2);
			else
				sp_buf_append(b, &a[i], 1);
		}
		sp_buf_append(b, "'", 1);
	} else {
		sp_buf_append(b, "\"", 1);
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)a[i];
			if (c == '"' || c == '\\')
				sp_buf_appendf(b, "\\%c", c);
			else if (c == '\n' && tu_rnd(s, 2))
				sp_buf_append(b, "\\n", 2);
			else if (c >= 0x20 && c < 0x7f && tu_rnd(s, 4))
				sp_buf_append(b, &a[i], 1);
			else
				sp_buf_appendf(b, "\\x%02x", c);
		}
		sp_buf_append(b, "\"", 1);
	}
}

static void gen_request(uint64_t *s, struct gen_req *q, struct sp_buf *b)
{
	int is_inline = tu_rnd(s, 3) == 0;
	q->argc = tu_rnd(s, 10) == 0 ? 0 : 1 + tu_rnd(s, 6);
	for (size_t i = 0; i < q->argc; i++) {
		q->lens[i] = rand_len(s);
		q->args[i] = malloc(q->lens[i] + 1);
		rand_bytes(s, q->args[i], q->lens[i], 1);
	}
	if (!is_inline) {
		if (q->argc == 0) {
			sp_buf_append_str(b, tu_rnd(s, 2) ? "*0\r\n" : "*-1\r\n");
			return;
		}
		resp_write_array_len(b, q->argc);
		for (size_t i = 0; i < q->argc; i++)
			resp_write_bulk(b, q->args[i], q->lens[i]);
		return;
	}
	static const char *blanks[] = {" ", "\t", "  ", " \t "};
	size_t line_start = b->len;
	if (tu_rnd(s, 4) == 0)
		sp_buf_append_str(b, blanks[tu_rnd(s, 4)]);
	for (size_t i = 0; i < q->argc; i++) {
		if (i > 0)
			sp_buf_append_str(b, blanks[tu_rnd(s, 4)]);
		encode_inline_arg(s, b, q->args[i], q->lens[i], b->len == line_start);
	}
	if (tu_rnd(s, 4) == 0)
		sp_buf_append_str(b, blanks[tu_rnd(s, 4)]);
	sp_buf_append_str(b, tu_rnd(s, 2) ? "\r\n" : "\n");
}

static void test_prop_request_roundtrip(void **state)
{
	(void)state;
	uint64_t seed = tu_seed();
	struct sp_buf b;
	sp_buf_init(&b);

	for (int iter = 0; iter < 1500; iter++) {
		uint64_t iseed = seed + (uint64_t)iter, s = iseed;
		struct gen_req want[6];
		size_t nwant = 1 + tu_rnd(&s, 6);
		for (size_t i = 0; i < nwant; i++)
			gen_request(&s, &want[i], &b);
		int style = (int)tu_rnd(&s, 5);
		int copy = tu_rnd(&s, 4) == 0;

		struct resp_request_parser p;
		resp_request_parser_init(&p, &req_limits);
		size_t base = 0, visible = 0, got = 0;
		char *scratch[2] = {NULL, NULL};
		int flip = 0;
		for (;;) {
			size_t consumed;
			struct resp_error err = {NULL};
			const char *in = sp_buf_begin(&b) + base;
			if (copy) {
				/* A fresh copy each call: the parser may keep
				 * offsets, never pointers. */
				flip ^= 1;
				free(scratch[flip]);
				scratch[flip] = malloc(visible - base + 1);
				memcpy(scratch[flip], in, visible - base);
				in = scratch[flip];
			}
			int rc = resp_parse_request(&p, in, visible - base, &consumed, &err);
			if (rc == SP_ERR_AGAIN) {
				if (visible == b.len)
					break;
				visible += next_chunk(&s, style, b.len - visible);
				continue;
			}
			if (rc != 0)
				fail_msg("seed %" PRIu64 ": parser error %d %s", iseed, rc,
					 err.msg);
			if (got >= nwant || p.argc != want[got].argc)
				fail_msg("seed %" PRIu64 ": request %zu has %zu args", iseed, got,
					 p.argc);
			for (size_t i = 0; i < p.argc; i++) {
				if (p.args[i].len != want[got].lens[i] ||
				    memcmp(resp_arg_ptr(&p, in, i), want[got].args[i],
					   p.args[i].len) != 0)
					fail_msg("seed %" PRIu64 ": request %zu arg %zu differs",
						 iseed, got, i);
				if (!p.is_inline)
					assert_true(p.args[i].off + p.args[i].len <= consumed);
			}
			got++;
			base += consumed;
		}
		if (got != nwant || base != b.len)
			fail_msg("seed %" PRIu64 ": parsed %zu of %zu requests", iseed, got, nwant);
		free(scratch[0]);
		free(scratch[1]);
		resp_request_parser_close(&p);
		for (size_t i = 0; i < nwant; i++)
			for (size_t j = 0; j < want[i].argc; j++)
				free(want[i].args[j]);
		sp_buf_clear(&b);
	}
	sp_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_req_multibulk),
	    cmocka_unit_test(test_req_pipelined),
	    cmocka_unit_test(test_req_byte_at_a_time),
	    cmocka_unit_test(test_req_empty_multibulk),
	    cmocka_unit_test(test_req_binary_args),
	    cmocka_unit_test(test_req_errors),
	    cmocka_unit_test(test_req_too_big_count_strings),
	    cmocka_unit_test(test_req_limits),
	    cmocka_unit_test(test_req_args_reservation),
	    cmocka_unit_test(test_req_large_bulk_chunked),
	    cmocka_unit_test(test_req_inline_basic),
	    cmocka_unit_test(test_req_inline_quotes),
	    cmocka_unit_test(test_req_inline_too_big),
	    cmocka_unit_test(test_read_scalars),
	    cmocka_unit_test(test_read_aggregates),
	    cmocka_unit_test(test_read_attributes),
	    cmocka_unit_test(test_read_pipelined),
	    cmocka_unit_test(test_read_errors),
	    cmocka_unit_test(test_read_limits),
	    cmocka_unit_test(test_read_partial_close),
	    cmocka_unit_test(test_read_large_bulk_chunked),
	    cmocka_unit_test(test_value_equal),
	    cmocka_unit_test(test_write_functions),
	    cmocka_unit_test(test_write_integer_vs_printf),
	    cmocka_unit_test(test_write_double_roundtrip),
	    cmocka_unit_test(test_write_value),
	    cmocka_unit_test(test_prop_value_roundtrip),
	    cmocka_unit_test(test_prop_request_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
