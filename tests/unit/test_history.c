/*
 * test_history: the history file format (src/check/history.c).
 *
 * The example line and every field's mapping; a property: random ops
 * (keys and values with NUL, quotes, control characters and multi-byte
 * UTF-8; every kind and outcome; unknown outcomes with and without a
 * return time) go through history_add, history_format_op and
 * history_parse unchanged, and formatting what was parsed gives the same
 * text; one test per kind of malformed line, each naming the line and
 * leaving the history as it was; "\u0000" inside keys; "info" ops
 * without "complete"; blank lines, CRLF and a missing final newline;
 * bytes that are not UTF-8; history_add's validation and copying; values
 * larger than a storage chunk; and a parsed history fed to lin_check.
 * The property prints its seed; set SPECTRA_SEED to replay it.
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

#include "check/history.h"
#include "check/linearizable.h"
#include "common/buf.h"
#include "common/err.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* parse_ok parses text (a C string) into a fresh history, which the
 * caller frees. */
static void parse_ok(struct history *h, const char *text)
{
	char err[256];
	history_init(h);
	int rc = history_parse(h, text, strlen(text), err, sizeof(err));
	if (rc != 0)
		fail_msg("parse failed: %s\ntext: %s", err, text);
}

static bool bytes_are(const uint8_t *p, size_t len, const char *s, size_t slen)
{
	return len == slen && (len == 0 || memcmp(p, s, len) == 0);
}

#define assert_bytes(p, len, lit) assert_true(bytes_are((p), (len), (lit), sizeof(lit) - 1))

/* ---------------------------------------------------------------------- */
/* Fields                                                                  */

static void test_example_line(void **state)
{
	(void)state;
	struct history h;
	parse_ok(&h, "{\"process\":3,\"op\":\"read\",\"key\":\"k1\",\"value\":\"v1\","
		     "\"invoke\":1200,\"complete\":1350,\"result\":\"ok\"}\n");
	assert_int_equal(h.n, 1);
	const struct lin_op *o = &h.ops[0];
	assert_int_equal(o->client, 3);
	assert_int_equal(o->kind, LIN_READ);
	assert_bytes(o->key, o->klen, "k1");
	assert_false(o->result.nil);
	assert_bytes(o->result.p, o->result.len, "v1");
	assert_int_equal(o->call, 1200);
	assert_int_equal(o->ret, 1350);
	assert_int_equal(o->outcome, LIN_OK);
	assert_int_equal(h.line[0], 1);
	history_free(&h);
	assert_int_equal(h.n, 0);
	assert_null(h.ops);
	history_free(&h); /* twice is fine */
	history_free(NULL);
}

static void test_every_kind_and_result(void **state)
{
	(void)state;
	struct history h;
	parse_ok(&h, "{\"process\":0,\"op\":\"write\",\"key\":\"a\",\"value\":\"x\",\"invoke\":1,"
		     "\"complete\":2,\"result\":\"ok\"}\n"
		     "{\"process\":1,\"op\":\"cas\",\"key\":\"a\",\"expected\":\"x\",\"new\":\"y\","
		     "\"invoke\":3,\"complete\":4,\"result\":\"fail\"}\n"
		     "{\"process\":2,\"op\":\"cas\",\"key\":\"a\",\"expected\":null,\"new\":null,"
		     "\"invoke\":5,\"complete\":6,\"result\":\"info\"}\n"
		     "{\"process\":3,\"op\":\"delete\",\"key\":\"a\",\"invoke\":7,\"complete\":7,"
		     "\"result\":\"ok\"}\n"
		     "{\"process\":4,\"op\":\"read\",\"key\":\"a\",\"value\":null,\"invoke\":8,"
		     "\"complete\":9,\"result\":\"ok\"}\n"
		     "{\"process\":5,\"op\":\"read\",\"key\":\"a\",\"invoke\":10,\"complete\":11,"
		     "\"result\":\"fail\"}\n"
		     "{\"result\":\"info\",\"key\":\"a\",\"op\":\"read\",\"value\":\"ignored\","
		     "\"process\":6,\"invoke\":12,\"node\":\"n3\",\"extra\":[1,{\"x\":2}]}\n");
	assert_int_equal(h.n, 7);

	assert_int_equal(h.ops[0].kind, LIN_WRITE);
	assert_bytes(h.ops[0].arg.p, h.ops[0].arg.len, "x");

	assert_int_equal(h.ops[1].kind, LIN_CAS);
	assert_int_equal(h.ops[1].outcome, LIN_FAIL);
	assert_bytes(h.ops[1].expect.p, h.ops[1].expect.len, "x");
	assert_bytes(h.ops[1].arg.p, h.ops[1].arg.len, "y");

	assert_int_equal(h.ops[2].outcome, LIN_UNKNOWN);
	assert_true(h.ops[2].expect.nil);
	assert_true(h.ops[2].arg.nil);
	assert_int_equal(h.ops[2].ret, 6);

	assert_int_equal(h.ops[3].kind, LIN_DELETE);
	assert_int_equal(h.ops[3].call, 7);
	assert_int_equal(h.ops[3].ret, 7);

	assert_true(h.ops[4].result.nil);
	/* A read that failed or is unknown saw nothing: no value needed,
	 * and one given is ignored. Other fields are ignored too. */
	assert_true(h.ops[5].result.nil);
	assert_int_equal(h.ops[5].outcome, LIN_FAIL);
	assert_true(h.ops[6].result.nil);
	assert_int_equal(h.ops[6].client, 6);
	assert_int_equal(h.ops[6].ret, UINT64_MAX);
	for (size_t i = 0; i < h.n; i++)
		assert_int_equal(h.line[i], i + 1);

	struct lin_result res;
	assert_int_equal(lin_check(h.ops, h.n, 0, &res), 0);
	assert_int_equal(res.verdict, LIN_LINEARIZABLE);
	history_free(&h);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(history_op_name(LIN_READ), "read");
	assert_string_equal(history_op_name(LIN_WRITE), "write");
	assert_string_equal(history_op_name(LIN_CAS), "cas");
	assert_string_equal(history_op_name(LIN_DELETE), "delete");
	assert_string_equal(history_op_name(0), "?");
	assert_string_equal(history_op_name(LIN_DELETE + 1), "?");
	assert_string_equal(history_result_name(LIN_OK), "ok");
	assert_string_equal(history_result_name(LIN_FAIL), "fail");
	assert_string_equal(history_result_name(LIN_UNKNOWN), "info");
	assert_string_equal(history_result_name(0), "?");
}

/* ---------------------------------------------------------------------- */
/* Malformed lines                                                         */

#define GOOD                                                                                       \
	"{\"process\":1,\"op\":\"write\",\"key\":\"k\",\"value\":\"v\",\"invoke\":1,\"complete\":" \
	"2,\"result\":\"ok\"}\n"

/*
 * expect_error parses two good lines, a blank one and `line` (as line 4)
 * into a history that already holds one op, and checks the call fails
 * with "line 4: " and `why` in the message, and leaves the history with
 * its one op, bytes intact.
 */
static void expect_error(const char *line, const char *why)
{
	struct history h;
	char err[256], text[1024];

	parse_ok(&h, "{\"process\":9,\"op\":\"write\",\"key\":\"before\",\"value\":\"kept\","
		     "\"invoke\":1,\"complete\":2,\"result\":\"ok\"}");
	snprintf(text, sizeof(text), GOOD GOOD "  \t\n%s\n" GOOD, line);
	memset(err, 'x', sizeof(err));
	int rc = history_parse(&h, text, strlen(text), err, sizeof(err));
	if (rc != SP_ERR_INVAL)
		fail_msg("accepted: %s", line);
	if (strncmp(err, "line 4: ", 8) != 0 || strstr(err, why) == NULL)
		fail_msg("for %s\nwanted \"line 4: ...%s...\", got \"%s\"", line, why, err);
	assert_int_equal(h.n, 1);
	assert_bytes(h.ops[0].key, h.ops[0].klen, "before");
	assert_bytes(h.ops[0].arg.p, h.ops[0].arg.len, "kept");

	/* And the history still takes more. */
	rc = history_parse(&h, GOOD, strlen(GOOD), err, sizeof(err));
	assert_int_equal(rc, 0);
	assert_int_equal(h.n, 2);
	history_free(&h);
}

/* A line with one field changed: P(process) O(op) K(key) V(rest of the
 * value fields) I(invoke) C(complete) R(result). */
#define LINE(P, O, K, V, I, C, R) "{" P "," O "," K V "," I C "," R "}"
#define PROC			  "\"process\":1"
#define OPW			  "\"op\":\"write\""
#define KEY			  "\"key\":\"k\""
#define VAL			  ",\"value\":\"v\""
#define INV			  "\"invoke\":10"
#define CMP			  ",\"complete\":20"
#define RES			  "\"result\":\"ok\""

static void test_malformed_json(void **state)
{
	(void)state;
	expect_error("not json", "not JSON");
	expect_error("{\"process\":1", "not JSON");
	expect_error("{'process':1}", "not JSON");
	expect_error("[1,2]", "not a JSON object");
	expect_error("42", "not a JSON object");
	expect_error("\"a string\"", "not a JSON object");
	expect_error("null", "not a JSON object");
	/* Two objects on one line, and trailing garbage. */
	expect_error(LINE(PROC, OPW, KEY, VAL, INV, CMP, RES) " {}", "not JSON");
	/* A field twice. */
	expect_error("{\"process\":1,\"process\":2,\"op\":\"write\",\"key\":\"k\",\"value\":\"v\","
		     "\"invoke\":1,\"complete\":2,\"result\":\"ok\"}",
		     "duplicate");
	/* Invalid UTF-8 and raw control characters in a string. */
	expect_error("{\"process\":1,\"op\":\"write\",\"key\":\"\xff\",\"value\":\"v\","
		     "\"invoke\":1,\"complete\":2,\"result\":\"ok\"}",
		     "not JSON");
	expect_error("{\"process\":1,\"op\":\"write\",\"key\":\"a\tb\",\"value\":\"v\","
		     "\"invoke\":1,\"complete\":2,\"result\":\"ok\"}",
		     "not JSON");
}

static void test_malformed_fields(void **state)
{
	(void)state;
	/* The reference line is good. */
	struct history h;
	parse_ok(&h, LINE(PROC, OPW, KEY, VAL, INV, CMP, RES));
	assert_int_equal(h.n, 1);
	history_free(&h);

	/* process */
	expect_error("{" OPW "," KEY VAL "," INV CMP "," RES "}", "\"process\" is missing");
	expect_error(LINE("\"process\":\"1\"", OPW, KEY, VAL, INV, CMP, RES),
		     "\"process\" must be an integer");
	expect_error(LINE("\"process\":1.0", OPW, KEY, VAL, INV, CMP, RES),
		     "\"process\" must be an integer");
	expect_error(LINE("\"process\":-1", OPW, KEY, VAL, INV, CMP, RES), "out of range");
	expect_error(LINE("\"process\":null", OPW, KEY, VAL, INV, CMP, RES),
		     "\"process\" must be an integer");

	/* op */
	expect_error("{" PROC "," KEY VAL "," INV CMP "," RES "}", "\"op\" is missing");
	expect_error(LINE(PROC, "\"op\":1", KEY, VAL, INV, CMP, RES), "\"op\" must be a string");
	expect_error(LINE(PROC, "\"op\":\"get\"", KEY, VAL, INV, CMP, RES), "unknown op \"get\"");
	expect_error(LINE(PROC, "\"op\":\"READ\"", KEY, VAL, INV, CMP, RES), "unknown op");
	expect_error(LINE(PROC, "\"op\":\"write\\u0000\"", KEY, VAL, INV, CMP, RES),
		     "unknown op \"write?\"");
	expect_error(LINE(PROC, "\"op\":\"\"", KEY, VAL, INV, CMP, RES), "unknown op \"\"");

	/* result */
	expect_error("{" PROC "," OPW "," KEY VAL "," INV CMP "}", "\"result\" is missing");
	expect_error(LINE(PROC, OPW, KEY, VAL, INV, CMP, "\"result\":\"maybe\""),
		     "unknown result \"maybe\" (want ok, fail or info)");
	expect_error(LINE(PROC, OPW, KEY, VAL, INV, CMP, "\"result\":true"),
		     "\"result\" must be a string");

	/* key */
	expect_error("{" PROC "," OPW VAL "," INV CMP "," RES "}", "\"key\" is missing");
	expect_error(LINE(PROC, OPW, "\"key\":7", VAL, INV, CMP, RES), "\"key\" must be a string");
	expect_error(LINE(PROC, OPW, "\"key\":null", VAL, INV, CMP, RES),
		     "\"key\" must be a string");

	/* times */
	expect_error("{" PROC "," OPW "," KEY VAL CMP "," RES "}", "\"invoke\" is missing");
	expect_error(LINE(PROC, OPW, KEY, VAL, "\"invoke\":1.5", CMP, RES),
		     "\"invoke\" must be an integer");
	expect_error(LINE(PROC, OPW, KEY, VAL, "\"invoke\":\"10\"", CMP, RES),
		     "\"invoke\" must be an integer");
	expect_error(LINE(PROC, OPW, KEY, VAL, "\"invoke\":null", CMP, RES),
		     "\"invoke\" must be an integer");
	expect_error(LINE(PROC, OPW, KEY, VAL, "\"invoke\":-5", CMP, RES), "out of range");
	expect_error(LINE(PROC, OPW, KEY, VAL, "\"invoke\":1e3", CMP, RES),
		     "\"invoke\" must be an integer");
	expect_error(LINE(PROC, OPW, KEY, VAL, "\"invoke\":99999999999999999999", CMP, RES),
		     "not JSON");
	expect_error(LINE(PROC, OPW, KEY, VAL, INV, "", RES), "\"complete\" is missing");
	expect_error(LINE(PROC, OPW, KEY, VAL, INV, ",\"complete\":null", RES),
		     "\"complete\" must be an integer");
	expect_error(LINE(PROC, OPW, KEY, VAL, INV, ",\"complete\":9", RES),
		     "\"complete\" (9) is before \"invoke\" (10)");
	expect_error(LINE(PROC, OPW, KEY, VAL, INV, ",\"complete\":\"20\"", RES),
		     "\"complete\" must be an integer");
	/* A failed op must say when it returned too. */
	expect_error(LINE(PROC, OPW, KEY, VAL, INV, "", "\"result\":\"fail\""),
		     "\"complete\" is missing");
	/* An info op may leave complete out, but not give a bad one. */
	expect_error(LINE(PROC, OPW, KEY, VAL, INV, ",\"complete\":9", "\"result\":\"info\""),
		     "is before");
	expect_error(LINE(PROC, OPW, KEY, VAL, INV, ",\"complete\":1.5", "\"result\":\"info\""),
		     "\"complete\" must be an integer or null");

	/* values */
	expect_error(LINE(PROC, OPW, KEY, "", INV, CMP, RES), "\"value\" is missing");
	expect_error(LINE(PROC, OPW, KEY, ",\"value\":null", INV, CMP, RES),
		     "\"value\" must be a string");
	expect_error(LINE(PROC, OPW, KEY, ",\"value\":5", INV, CMP, RES),
		     "\"value\" must be a string");
	expect_error(LINE(PROC, "\"op\":\"read\"", KEY, "", INV, CMP, RES), "\"value\" is missing");
	expect_error(LINE(PROC, "\"op\":\"read\"", KEY, ",\"value\":[]", INV, CMP, RES),
		     "\"value\" must be a string or null");
	expect_error(LINE(PROC, "\"op\":\"cas\"", KEY, ",\"new\":\"b\"", INV, CMP, RES),
		     "\"expected\" is missing");
	expect_error(LINE(PROC, "\"op\":\"cas\"", KEY, ",\"expected\":\"a\"", INV, CMP, RES),
		     "\"new\" is missing");
	expect_error(
	    LINE(PROC, "\"op\":\"cas\"", KEY, ",\"expected\":1,\"new\":\"b\"", INV, CMP, RES),
	    "\"expected\" must be a string or null");
	expect_error(
	    LINE(PROC, "\"op\":\"cas\"", KEY, ",\"expected\":\"a\",\"new\":{}", INV, CMP, RES),
	    "\"new\" must be a string or null");
	/* A cas names its values "expected" and "new", not "value". */
	expect_error(LINE(PROC, "\"op\":\"cas\"", KEY, VAL, INV, CMP, RES),
		     "\"expected\" is missing");
}

static void test_error_buffer(void **state)
{
	(void)state;
	struct history h;
	const char *bad = GOOD "oops\n";
	history_init(&h);
	/* No buffer, and a buffer too small for the message: still the
	 * error, and a NUL-terminated prefix. */
	assert_int_equal(history_parse(&h, bad, strlen(bad), NULL, 0), SP_ERR_INVAL);
	char small[9];
	assert_int_equal(history_parse(&h, bad, strlen(bad), small, sizeof(small)), SP_ERR_INVAL);
	assert_string_equal(small, "line 2: ");
	char one[1] = {'x'};
	assert_int_equal(history_parse(&h, bad, strlen(bad), one, sizeof(one)), SP_ERR_INVAL);
	assert_int_equal(one[0], '\0');
	assert_int_equal(h.n, 0);
	/* The text need not end in NUL: only len bytes are read. */
	char buf[] = GOOD "garbage after the end";
	assert_int_equal(history_parse(&h, buf, strlen(GOOD), NULL, 0), 0);
	assert_int_equal(h.n, 1);
	history_free(&h);
}

/* ---------------------------------------------------------------------- */
/* NUL bytes, info ops, line handling                                      */

static void test_nul_in_keys_and_values(void **state)
{
	(void)state;
	struct history h;
	parse_ok(&h, "{\"process\":1,\"op\":\"write\",\"key\":\"a\\u0000b\",\"value\":\"\\u0000\","
		     "\"invoke\":1,\"complete\":2,\"result\":\"ok\"}\n"
		     "{\"process\":1,\"op\":\"write\",\"key\":\"a\",\"value\":\"\","
		     "\"invoke\":3,\"complete\":4,\"result\":\"ok\"}\n"
		     "{\"process\":2,\"op\":\"read\",\"key\":\"a\\u0000b\",\"value\":\"\\u0000\","
		     "\"invoke\":5,\"complete\":6,\"result\":\"ok\"}\n"
		     "{\"process\":2,\"op\":\"read\",\"key\":\"a\",\"value\":\"\","
		     "\"invoke\":7,\"complete\":8,\"result\":\"ok\"}\n");
	assert_int_equal(h.n, 4);
	assert_int_equal(h.ops[0].klen, 3);
	assert_memory_equal(h.ops[0].key, "a\0b", 3);
	assert_int_equal(h.ops[0].arg.len, 1);
	assert_int_equal(h.ops[0].arg.p[0], 0);
	assert_false(h.ops[1].arg.nil);
	assert_int_equal(h.ops[1].arg.len, 0);

	/* Two keys, not one: "a\0b" is not cut short at its NUL. */
	struct lin_result res;
	assert_int_equal(lin_check(h.ops, h.n, 0, &res), 0);
	assert_int_equal(res.verdict, LIN_LINEARIZABLE);
	assert_int_equal(res.keys, 2);

	/* And it formats back with the escape. */
	struct sp_buf out;
	sp_buf_init(&out);
	history_format_op(&h.ops[0], &out);
	sp_buf_append(&out, "", 1);
	assert_string_equal(sp_buf_begin(&out),
			    "{\"process\":1,\"op\":\"write\",\"key\":\"a\\u0000b\",\"value\":"
			    "\"\\u0000\",\"invoke\":1,\"complete\":2,\"result\":\"ok\"}\n");
	sp_buf_free(&out);

	/* A read of "a\0b" that saw the empty value is a violation. */
	history_free(&h);
	parse_ok(&h, "{\"process\":1,\"op\":\"write\",\"key\":\"a\\u0000b\",\"value\":\"\\u0000\","
		     "\"invoke\":1,\"complete\":2,\"result\":\"ok\"}\n"
		     "{\"process\":2,\"op\":\"read\",\"key\":\"a\\u0000b\",\"value\":\"\","
		     "\"invoke\":5,\"complete\":6,\"result\":\"ok\"}\n");
	assert_int_equal(lin_check(h.ops, h.n, 0, &res), 0);
	assert_int_equal(res.verdict, LIN_VIOLATION);
	assert_int_equal(res.klen, 3);
	history_free(&h);
}

static void test_info_without_complete(void **state)
{
	(void)state;
	struct history h;
	parse_ok(&h, "{\"process\":1,\"op\":\"write\",\"key\":\"k\",\"value\":\"v\",\"invoke\":5,"
		     "\"result\":\"info\"}\n"
		     "{\"process\":1,\"op\":\"write\",\"key\":\"k\",\"value\":\"v\",\"invoke\":5,"
		     "\"complete\":null,\"result\":\"info\"}\n"
		     "{\"process\":1,\"op\":\"write\",\"key\":\"k\",\"value\":\"v\",\"invoke\":5,"
		     "\"complete\":9,\"result\":\"info\"}\n");
	assert_int_equal(h.n, 3);
	assert_int_equal(h.ops[0].outcome, LIN_UNKNOWN);
	assert_int_equal(h.ops[0].ret, UINT64_MAX);
	assert_int_equal(h.ops[1].ret, UINT64_MAX);
	assert_int_equal(h.ops[2].ret, 9);

	struct sp_buf out;
	sp_buf_init(&out);
	for (size_t i = 0; i < h.n; i++)
		history_format_op(&h.ops[i], &out);
	sp_buf_append(&out, "", 1);
	const char *want =
	    "{\"process\":1,\"op\":\"write\",\"key\":\"k\",\"value\":\"v\",\"invoke\":5,"
	    "\"complete\":null,\"result\":\"info\"}\n"
	    "{\"process\":1,\"op\":\"write\",\"key\":\"k\",\"value\":\"v\",\"invoke\":5,"
	    "\"complete\":null,\"result\":\"info\"}\n"
	    "{\"process\":1,\"op\":\"write\",\"key\":\"k\",\"value\":\"v\",\"invoke\":5,"
	    "\"complete\":9,\"result\":\"info\"}\n";
	assert_string_equal(sp_buf_begin(&out), want);

	/* An unknown op added with a return before its call (the checker's
	 * "never" of 0) is written with a null complete, which parses. */
	struct lin_op o = h.ops[0];
	o.ret = 0;
	sp_buf_clear(&out);
	history_format_op(&o, &out);
	assert_non_null(memmem(sp_buf_begin(&out), out.len, "\"complete\":null", 15));
	struct history back;
	history_init(&back);
	assert_int_equal(history_parse(&back, sp_buf_begin(&out), out.len, NULL, 0), 0);
	assert_int_equal(back.ops[0].ret, UINT64_MAX);
	history_free(&back);
	sp_buf_free(&out);
	history_free(&h);
}

static void test_blank_lines_crlf_and_last_line(void **state)
{
	(void)state;
	struct history h;
	const char *text = "\n"
			   "   \n"
			   "\r\n" GOOD "\t \r\n"
			   "{\"process\":2,\"op\":\"delete\",\"key\":\"k\",\"invoke\":3,"
			   "\"complete\":4,\"result\":\"ok\"}\r\n"
			   "\n"
			   "{\"process\":3,\"op\":\"delete\",\"key\":\"k\",\"invoke\":5,"
			   "\"complete\":6,\"result\":\"ok\"}";
	parse_ok(&h, text);
	assert_int_equal(h.n, 3);
	assert_int_equal(h.line[0], 4);
	assert_int_equal(h.line[1], 6);
	assert_int_equal(h.line[2], 8);
	assert_int_equal(h.ops[2].client, 3);
	history_free(&h);

	/* Nothing at all, or only blanks: an empty history. */
	parse_ok(&h, "");
	assert_int_equal(h.n, 0);
	history_free(&h);
	parse_ok(&h, "\n\n  \n");
	assert_int_equal(h.n, 0);
	history_free(&h);

	/* Parsing appends, with line numbers of its own text. */
	parse_ok(&h, GOOD);
	char err[128];
	assert_int_equal(history_parse(&h, "\n" GOOD, strlen(GOOD) + 1, err, sizeof(err)), 0);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.line[1], 2);
	history_free(&h);
}

static void test_not_utf8_formatting(void **state)
{
	(void)state;
	const uint8_t key[] = {'k', 0xff, 0xc3, 'x', 0xe2, 0x98}; /* stray, truncated */
	const uint8_t val[] = {0xed, 0xa0, 0x80, 0xc0, 0xaf};	  /* surrogate, overlong */
	struct lin_op o = {.client = 1,
			   .key = key,
			   .klen = sizeof(key),
			   .kind = LIN_WRITE,
			   .arg = {.p = val, .len = sizeof(val)},
			   .call = 1,
			   .ret = 2,
			   .outcome = LIN_OK};
	struct sp_buf out;
	sp_buf_init(&out);
	history_format_op(&o, &out);
	sp_buf_append(&out, "", 1);
	assert_string_equal(
	    sp_buf_begin(&out),
	    "{\"process\":1,\"op\":\"write\",\"key\":\"k\\u00ff\\u00c3x\\u00e2"
	    "\\u0098\",\"value\":\"\\u00ed\\u00a0\\u0080\\u00c0\\u00af\",\"invoke\":"
	    "1,\"complete\":2,\"result\":\"ok\"}\n");
	/* It parses, as the Latin-1 reading of those bytes. */
	struct history h;
	parse_ok(&h, sp_buf_begin(&out));
	assert_bytes(h.ops[0].key, h.ops[0].klen, "k\xc3\xbf\xc3\x83x\xc3\xa2\xc2\x98");
	history_free(&h);

	/* The largest code point and every escape the writer uses. */
	const char snow[] = "\xf4\x8f\xbf\xbf\"\\\n\r\t\b\x7f";
	o.key = (const uint8_t *)snow;
	o.klen = sizeof(snow) - 1;
	sp_buf_clear(&out);
	history_format_op(&o, &out);
	sp_buf_append(&out, "", 1);
	assert_non_null(strstr(sp_buf_begin(&out),
			       "\"key\":\"\xf4\x8f\xbf\xbf\\\"\\\\\\n\\r\\t\\u0008\\u007f\""));
	parse_ok(&h, sp_buf_begin(&out));
	assert_bytes(h.ops[0].key, h.ops[0].klen, "\xf4\x8f\xbf\xbf\"\\\n\r\t\b\x7f");
	history_free(&h);
	sp_buf_free(&out);
}

/* ---------------------------------------------------------------------- */
/* history_add                                                             */

static void test_add_validates_and_copies(void **state)
{
	(void)state;
	struct history h;
	history_init(&h);
	char key[] = "key", val[] = "value";
	struct lin_op o = {.client = 4,
			   .key = (const uint8_t *)key,
			   .klen = 3,
			   .kind = LIN_WRITE,
			   .arg = {.p = (const uint8_t *)val, .len = 5},
			   .call = 10,
			   .ret = 20,
			   .outcome = LIN_OK};
	assert_int_equal(history_add(&h, &o), 0);
	/* The history owns copies. */
	memset(key, 'X', 3);
	memset(val, 'Y', 5);
	assert_bytes(h.ops[0].key, h.ops[0].klen, "key");
	assert_bytes(h.ops[0].arg.p, h.ops[0].arg.len, "value");
	assert_int_equal(h.line[0], 0);

	struct lin_op bad = o;
	bad.kind = 0;
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	bad = o;
	bad.kind = LIN_DELETE + 1;
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	bad = o;
	bad.outcome = 0;
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	bad = o;
	bad.outcome = LIN_UNKNOWN + 1;
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	bad = o;
	bad.ret = 9;
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	bad.outcome = LIN_FAIL;
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	bad = o;
	bad.key = NULL;
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	bad = o;
	bad.arg.p = NULL;
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	bad = o;
	bad.arg = (struct lin_value){.nil = true}; /* a write of nil: use delete */
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	bad = o;
	bad.kind = LIN_CAS;
	bad.expect = (struct lin_value){.p = NULL, .len = 2};
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	bad = o;
	bad.kind = LIN_READ;
	bad.result = (struct lin_value){.p = NULL, .len = 2};
	assert_int_equal(history_add(&h, &bad), SP_ERR_INVAL);
	assert_int_equal(h.n, 1);

	/* What the kind does not use may hold anything, and is not kept:
	 * an unknown read's garbage result, a delete's values. */
	struct lin_op ok = o;
	ok.kind = LIN_READ;
	ok.outcome = LIN_UNKNOWN;
	ok.ret = 0;
	ok.result = (struct lin_value){.p = NULL, .len = 7};
	assert_int_equal(history_add(&h, &ok), 0);
	assert_true(h.ops[1].result.nil);
	ok = o;
	ok.kind = LIN_DELETE;
	ok.expect = ok.result = (struct lin_value){.p = NULL, .len = 7};
	assert_int_equal(history_add(&h, &ok), 0);
	assert_true(h.ops[2].arg.nil && h.ops[2].expect.nil && h.ops[2].result.nil);
	/* The empty key, with a NULL pointer. */
	ok = o;
	ok.key = NULL;
	ok.klen = 0;
	assert_int_equal(history_add(&h, &ok), 0);
	assert_int_equal(h.ops[3].klen, 0);
	assert_int_equal(h.n, 4);
	history_free(&h);
}

static void test_large_values(void **state)
{
	(void)state;
	/* Values larger than a chunk, and many small ones after them: every
	 * pointer stays valid as the history grows. */
	enum { BIG = 200 * 1024, SMALL = 5000 };
	char *big = malloc(BIG);
	assert_non_null(big);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (char)('a' + i % 26);
	struct history h;
	history_init(&h);
	struct lin_op o = {.key = (const uint8_t *)"big",
			   .klen = 3,
			   .kind = LIN_WRITE,
			   .arg = {.p = (const uint8_t *)big, .len = BIG},
			   .call = 1,
			   .ret = 2,
			   .outcome = LIN_OK};
	assert_int_equal(history_add(&h, &o), 0);
	char small[32];
	for (int i = 0; i < SMALL; i++) {
		snprintf(small, sizeof(small), "value-%d", i);
		o.arg = (struct lin_value){.p = (const uint8_t *)small, .len = strlen(small)};
		o.call = o.ret = 3 + (uint64_t)i;
		assert_int_equal(history_add(&h, &o), 0);
	}
	assert_int_equal(h.n, SMALL + 1);
	assert_int_equal(h.ops[0].arg.len, BIG);
	assert_memory_equal(h.ops[0].arg.p, big, BIG);
	for (int i = 0; i < SMALL; i++) {
		snprintf(small, sizeof(small), "value-%d", i);
		assert_true(
		    bytes_are(h.ops[i + 1].arg.p, h.ops[i + 1].arg.len, small, strlen(small)));
	}

	/* Through the text and back. */
	struct sp_buf out;
	sp_buf_init(&out);
	for (size_t i = 0; i < h.n; i++)
		history_format_op(&h.ops[i], &out);
	struct history back;
	history_init(&back);
	assert_int_equal(history_parse(&back, sp_buf_begin(&out), out.len, NULL, 0), 0);
	assert_int_equal(back.n, h.n);
	assert_memory_equal(back.ops[0].arg.p, big, BIG);
	assert_true(
	    bytes_are(back.ops[SMALL].arg.p, back.ops[SMALL].arg.len, small, strlen(small)));
	struct lin_result res;
	assert_int_equal(lin_check(back.ops, back.n, 0, &res), 0);
	assert_int_equal(res.verdict, LIN_LINEARIZABLE);
	history_free(&back);
	sp_buf_free(&out);
	history_free(&h);
	free(big);
}

/* ---------------------------------------------------------------------- */
/* Property: add, format, parse and format again change nothing            */

/* Pieces keys and values are made of: plain text, the characters JSON
 * must escape, NUL, and UTF-8 of two, three and four bytes. */
static const char *const pieces[] = {
    "a",  "k",	"v1",	"\"",	"\\",	"/",	    "\n",	    "\r",
    "\t", "\b", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x98\x83", "\xf0\x9f\x98\x80",
    " ",  "{}",
};

/* rnd_bytes fills buf with a random string of pieces (and NULs) and
 * returns its length. */
static size_t rnd_bytes(uint64_t *s, char *buf, size_t cap)
{
	size_t len = 0, parts = tu_rnd(s, 6);
	for (size_t i = 0; i < parts; i++) {
		if (tu_rnd(s, 6) == 0) {
			if (len + 1 <= cap)
				buf[len++] = '\0';
			continue;
		}
		const char *p = pieces[tu_rnd(s, N(pieces))];
		size_t n = strlen(p);
		if (len + n > cap)
			break;
		memcpy(buf + len, p, n);
		len += n;
	}
	return len;
}

struct rnd_op {
	struct lin_op op;
	char key[64], arg[64], expect[64], result[64];
};

static struct lin_value rnd_value(uint64_t *s, char *buf, bool nil_ok)
{
	if (nil_ok && tu_rnd(s, 4) == 0)
		return (struct lin_value){.nil = true};
	size_t len = rnd_bytes(s, buf, 64);
	return (struct lin_value){.p = (const uint8_t *)buf, .len = len};
}

static void rnd_op(uint64_t *s, struct rnd_op *r)
{
	struct lin_op *o = &r->op;
	memset(o, 0, sizeof(*o));
	o->arg = o->expect = o->result = (struct lin_value){.nil = true};
	o->client = tu_rnd(s, 3) ? tu_rnd(s, 100) : tu_splitmix(s) >> 1;
	o->kind = (enum lin_kind)(LIN_READ + tu_rnd(s, 4));
	o->outcome = (enum lin_outcome)(LIN_OK + tu_rnd(s, 3));
	o->klen = rnd_bytes(s, r->key, sizeof(r->key));
	o->key = (const uint8_t *)r->key;
	o->call = tu_rnd(s, 2) ? tu_rnd(s, 1000000) : tu_splitmix(s) >> 2;
	o->ret = o->call + tu_rnd(s, 5000);
	if (o->outcome == LIN_UNKNOWN) {
		switch (tu_rnd(s, 3)) {
		case 0:
			o->ret = UINT64_MAX;
			break;
		case 1:
			o->ret = o->call ? tu_rnd(s, o->call) : UINT64_MAX;
			break;
		default:
			break;
		}
	}
	switch (o->kind) {
	case LIN_READ:
		o->result = rnd_value(s, r->result, true);
		break;
	case LIN_WRITE:
		o->arg = rnd_value(s, r->arg, false);
		break;
	case LIN_CAS:
		o->expect = rnd_value(s, r->expect, true);
		o->arg = rnd_value(s, r->arg, true);
		break;
	case LIN_DELETE:
		break;
	}
}

static bool value_eq(const struct lin_value *a, const struct lin_value *b)
{
	if (a->nil || b->nil)
		return a->nil == b->nil;
	return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* same_op compares an op as added with the op read back: every field,
 * with an unknown op's missing return time as UINT64_MAX and a result
 * only for acknowledged reads. */
static bool same_op(const struct lin_op *a, const struct lin_op *b)
{
	uint64_t a_ret = a->ret;
	if (a->outcome == LIN_UNKNOWN && a->ret < a->call)
		a_ret = UINT64_MAX;
	struct lin_value nil = {.nil = true};
	const struct lin_value *a_result =
	    a->kind == LIN_READ && a->outcome == LIN_OK ? &a->result : &nil;
	return a->client == b->client && a->kind == b->kind && a->outcome == b->outcome &&
	       a->call == b->call && a_ret == b->ret && a->klen == b->klen &&
	       (a->klen == 0 || memcmp(a->key, b->key, a->klen) == 0) &&
	       value_eq(&a->arg, &b->arg) && value_eq(&a->expect, &b->expect) &&
	       value_eq(a_result, &b->result);
}

static void test_prop_round_trip(void **state)
{
	(void)state;
	uint64_t base = tu_stream(tu_seed(), "history_round_trip");
	enum { ROUNDS = 300, MAX_OPS = 60 };
	static struct rnd_op ops[MAX_OPS];

	for (int round = 0; round < ROUNDS; round++) {
		uint64_t s = base + (uint64_t)round;
		size_t n = 1 + tu_rnd(&s, MAX_OPS);
		struct history h, back;
		history_init(&h);
		history_init(&back);
		struct sp_buf text, again;
		sp_buf_init(&text);
		sp_buf_init(&again);

		for (size_t i = 0; i < n; i++) {
			rnd_op(&s, &ops[i]);
			assert_int_equal(history_add(&h, &ops[i].op), 0);
			if (tu_rnd(&s, 4) == 0)
				sp_buf_append_str(&text, tu_rnd(&s, 2) ? "\n" : " \t\r\n");
			history_format_op(&h.ops[i], &text);
			/* One op, one line, ending in its only newline. */
			assert_int_equal(sp_buf_end(&text)[-1], '\n');
		}
		char err[256];
		int rc = history_parse(&back, sp_buf_begin(&text), text.len, err, sizeof(err));
		if (rc != 0)
			fail_msg("round %d: %s; SPECTRA_SEED replays it", round, err);
		assert_int_equal(back.n, n);
		for (size_t i = 0; i < n; i++) {
			if (!same_op(&ops[i].op, &back.ops[i]))
				fail_msg("round %d: op %zu changed on the way through", round, i);
			assert_true(back.line[i] >= i + 1);
		}
		/* What was parsed formats to the same lines. */
		for (size_t i = 0; i < n; i++)
			history_format_op(&back.ops[i], &again);
		struct sp_buf plain;
		sp_buf_init(&plain);
		for (size_t i = 0; i < n; i++)
			history_format_op(&h.ops[i], &plain);
		assert_int_equal(again.len, plain.len);
		assert_memory_equal(sp_buf_begin(&again), sp_buf_begin(&plain), plain.len);

		sp_buf_free(&plain);
		sp_buf_free(&again);
		sp_buf_free(&text);
		history_free(&back);
		history_free(&h);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_example_line),
	    cmocka_unit_test(test_every_kind_and_result),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_malformed_json),
	    cmocka_unit_test(test_malformed_fields),
	    cmocka_unit_test(test_error_buffer),
	    cmocka_unit_test(test_nul_in_keys_and_values),
	    cmocka_unit_test(test_info_without_complete),
	    cmocka_unit_test(test_blank_lines_crlf_and_last_line),
	    cmocka_unit_test(test_not_utf8_formatting),
	    cmocka_unit_test(test_add_validates_and_copies),
	    cmocka_unit_test(test_large_values),
	    cmocka_unit_test(test_prop_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
