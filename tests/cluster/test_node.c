/*
 * test_node: one spectrad node, every client command, Redis 7's replies.
 *
 * Each test starts a fresh node (tests/lib/testnode) and checks replies and
 * error texts byte for byte against what Redis 7.0 answers. The expectations
 * were taken from real redis-server runs: run this binary with
 * SPECTRA_TEST_AGAINST=redis and it tests redis-server instead, which must
 * pass everything but the tests marked TN_SPECTRA_ONLY (spectra's own
 * settings and limits). RESP3 and protocol errors are tested over a raw
 * socket, since hiredis 0.14 parses neither RESP3 nor a server's reply to
 * malformed input.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/testnode.h"
#include "common/buf.h"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static redisContext *client(void **state)
{
	return tn_connect(tn_test_node(state));
}

/* A small seeded generator (xorshift64*), so failures replay. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static uint64_t rng_seed(unsigned salt)
{
	return ((uint64_t)tn_seed() << 20) ^ (salt * 0x9E3779B97F4A7C15ULL) ^ 0x5DEECE66DULL;
}

static int64_t unix_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Integer reply of a command; fails on any other reply type. */
static long long int_reply(redisContext *c, const char *cmd, const char *key)
{
	redisReply *r = tn_command(c, "%s %s", cmd, key);
	if (r->type != REDIS_REPLY_INTEGER) {
		char d[256];
		tn_reply_describe(r, d, sizeof(d));
		freeReplyObject(r);
		tn_fail("%s %s: expected an integer, got %s", cmd, key, d);
	}
	long long v = r->integer;
	freeReplyObject(r);
	return v;
}

#define assert_between(v, lo, hi)                                                                  \
	do {                                                                                       \
		long long v_ = (v);                                                                \
		if (v_ < (lo) || v_ > (hi))                                                        \
			tn_fail("%s = %lld, expected between %lld and %lld", #v, v_,               \
				(long long)(lo), (long long)(hi));                                 \
	} while (0)

/* Append one RESP multibulk command to b. */
static void resp_cmd(struct sp_buf *b, int argc, const char **argv, const size_t *lens)
{
	sp_buf_appendf(b, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		size_t len = lens != NULL ? lens[i] : strlen(argv[i]);
		sp_buf_appendf(b, "$%zu\r\n", len);
		sp_buf_append(b, argv[i], len);
		sp_buf_append(b, "\r\n", 2);
	}
}

static bool contains(const char *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle)) != NULL;
}

/* Whether an array reply holds a string or status element equal to s. */
static bool array_has(const redisReply *r, const char *s)
{
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *e = r->element[i];
		if ((e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) &&
		    strcmp(e->str, s) == 0)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------------- */
/* Connection commands                                                     */

static void test_ping_echo(void **state)
{
	redisContext *c = client(state);
	tn_expect_status(c, "PONG", "PING");
	tn_expect_status(c, "PONG", "ping");
	tn_expect_bulk(c, "hello", "PING hello");
	tn_expect_bulk(c, "", "PING %s", "");
	tn_expect_error(c, "ERR wrong number of arguments for 'ping' command", "PING a b");
	tn_expect_bulk(c, "hi there", "ECHO %s", "hi there");
	tn_expect_bulk(c, "", "ECHO %s", "");
	tn_expect_error(c, "ERR wrong number of arguments for 'echo' command", "ECHO");
	tn_expect_error(c, "ERR wrong number of arguments for 'echo' command", "ECHO a b");
}

static void test_select(void **state)
{
	redisContext *c = client(state);
	tn_expect_status(c, "OK", "SET k v");
	tn_expect_status(c, "OK", "SELECT 0");
	tn_expect_error(c, "ERR DB index is out of range", "SELECT 1");
	tn_expect_error(c, "ERR DB index is out of range", "SELECT 15");
	tn_expect_error(c, "ERR DB index is out of range", "SELECT -1");
	tn_expect_error(c, "ERR value is not an integer or out of range", "SELECT abc");
	tn_expect_error(c, "ERR wrong number of arguments for 'select' command", "SELECT");
	/* a refused SELECT leaves the client where it was */
	tn_expect_bulk(c, "v", "GET k");
}

static void test_unknown_command_and_arity(void **state)
{
	redisContext *c = client(state);
	tn_expect_error(c, "ERR unknown command 'FOO', with args beginning with: 'a' 'b' ",
			"FOO a b");
	tn_expect_error(c, "ERR unknown command 'foo', with args beginning with: ", "foo");
	tn_expect_error(
	    c, "ERR unknown command 'foo', with args beginning with: 'a b' 'c' 'd' 'e' 'f' ",
	    "foo %s c d e f", "a b");
	tn_expect_error(c, "ERR wrong number of arguments for 'get' command", "GET");
	tn_expect_error(c, "ERR wrong number of arguments for 'get' command", "GET a b");
	tn_expect_error(c, "ERR wrong number of arguments for 'set' command", "SET k");
	tn_expect_error(c, "ERR wrong number of arguments for 'incr' command", "INCR");
	tn_expect_error(c, "ERR wrong number of arguments for 'incr' command", "INCR a b");
	tn_expect_error(c, "ERR wrong number of arguments for 'mget' command", "MGET");
	tn_expect_error(c, "ERR wrong number of arguments for 'del' command", "DEL");
	tn_expect_error(c, "ERR wrong number of arguments for 'type' command", "TYPE");
	tn_expect_error(c, "ERR wrong number of arguments for 'dbsize' command", "DBSIZE x");
	tn_expect_error(c, "ERR wrong number of arguments for 'getdel' command", "GETDEL");
	tn_expect_error(c, "ERR wrong number of arguments for 'strlen' command", "STRLEN");
	tn_expect_error(c, "ERR wrong number of arguments for 'append' command", "APPEND k");
	tn_expect_error(c, "ERR wrong number of arguments for 'expire' command", "EXPIRE k");
	tn_expect_error(c, "ERR wrong number of arguments for 'ttl' command", "TTL");
	/* the connection is still fine after errors */
	tn_expect_status(c, "PONG", "PING");
}

/* ---------------------------------------------------------------------- */
/* Strings                                                                 */

static void test_set_get_basic(void **state)
{
	redisContext *c = client(state);
	tn_expect_nil(c, "GET k");
	tn_expect_status(c, "OK", "SET k v");
	tn_expect_bulk(c, "v", "GET k");
	tn_expect_status(c, "OK", "set k v2");
	tn_expect_bulk(c, "v2", "gEt k");
	tn_expect_status(c, "OK", "SET k %s", "");
	tn_expect_bulk(c, "", "GET k");
	tn_expect_nil(c, "GET missing");
	tn_expect_status(c, "OK", "SET %s %s", "key with spaces", "value with spaces");
	tn_expect_bulk(c, "value with spaces", "GET %s", "key with spaces");
	tn_expect_status(c, "OK", "SET n 12345");
	tn_expect_bulk(c, "12345", "GET n");
}

static void test_set_options(void **state)
{
	redisContext *c = client(state);

	/* NX and XX */
	tn_expect_status(c, "OK", "SET k v NX");
	tn_expect_nil(c, "SET k v2 NX");
	tn_expect_bulk(c, "v", "GET k");
	tn_expect_status(c, "OK", "SET k v3 XX");
	tn_expect_bulk(c, "v3", "GET k");
	tn_expect_nil(c, "SET nokey v XX");
	tn_expect_int(c, 0, "EXISTS nokey");
	tn_expect_nil(c, "set k v nx nx");

	/* GET, alone and with NX / XX (allowed together since Redis 7.0) */
	tn_expect_bulk(c, "v3", "SET k v4 GET");
	tn_expect_bulk(c, "v4", "GET k");
	tn_expect_nil(c, "SET g v GET");
	tn_expect_bulk(c, "v", "GET g");
	tn_expect_nil(c, "SET n1 v NX GET");
	tn_expect_bulk(c, "v", "GET n1");
	tn_expect_bulk(c, "v", "SET n1 v2 NX GET");
	tn_expect_bulk(c, "v", "GET n1");
	tn_expect_bulk(c, "v", "SET n1 v3 XX GET");
	tn_expect_bulk(c, "v3", "GET n1");
	tn_expect_nil(c, "SET x1 v XX GET");
	tn_expect_int(c, 0, "EXISTS x1");

	/* expirations */
	tn_expect_status(c, "OK", "SET e v EX 100");
	assert_between(int_reply(c, "TTL", "e"), 99, 100);
	tn_expect_status(c, "OK", "SET e v PX 100000");
	assert_between(int_reply(c, "PTTL", "e"), 99000, 100000);
	tn_expect_status(c, "OK", "SET e v EXAT %lld", (long long)(unix_ms() / 1000 + 200));
	assert_between(int_reply(c, "TTL", "e"), 198, 200);
	tn_expect_status(c, "OK", "SET e v PXAT %lld", (long long)(unix_ms() + 300000));
	assert_between(int_reply(c, "PTTL", "e"), 298000, 300000);
	tn_expect_status(c, "OK", "set e v px 100000 xx");
	assert_between(int_reply(c, "PTTL", "e"), 99000, 100000);
	/* a plain SET clears the TTL, KEEPTTL keeps it */
	tn_expect_status(c, "OK", "SET e v KEEPTTL");
	assert_between(int_reply(c, "PTTL", "e"), 99000, 100000);
	tn_expect_bulk(c, "v", "SET e v2 KEEPTTL GET");
	assert_between(int_reply(c, "PTTL", "e"), 99000, 100000);
	tn_expect_status(c, "OK", "SET e v3");
	tn_expect_int(c, -1, "TTL e");
	/* an absolute time in the past: accepted, and the key is gone */
	tn_expect_status(c, "OK", "SET past v EXAT 1");
	tn_expect_nil(c, "GET past");
	tn_expect_status(c, "OK", "SET past v PXAT 1");
	tn_expect_int(c, 0, "EXISTS past");

	/* errors */
	const char *syntax[] = {"SET k v EX",
				"SET k v EX 10 PX 100",
				"SET k v PX 100 EX 20",
				"SET k v NX XX",
				"SET k v KEEPTTL EX 10",
				"SET k v EX 10 KEEPTTL",
				"SET k v FOO",
				"SET k v PX",
				"SET k v EXAT",
				"SET k v EX 10 EXAT 5"};
	for (size_t i = 0; i < sizeof(syntax) / sizeof(syntax[0]); i++)
		tn_expect_error(c, "ERR syntax error", syntax[i]);
	tn_expect_error(c, "ERR value is not an integer or out of range", "SET k v EX abc");
	tn_expect_error(c, "ERR value is not an integer or out of range", "SET k v PX 1.5");
	tn_expect_error(c, "ERR value is not an integer or out of range",
			"SET k v PXAT 9999999999999999999");
	const char *badexp[] = {"SET k v EX 0",
				"SET k v EX -1",
				"SET k v PX 0",
				"SET k v PX -100",
				"SET k v EXAT 0",
				"SET k v PXAT -1",
				"SET k v EX 9999999999999999"};
	for (size_t i = 0; i < sizeof(badexp) / sizeof(badexp[0]); i++)
		tn_expect_error(c, "ERR invalid expire time in 'set' command", badexp[i]);
	/* a refused SET changes nothing */
	tn_expect_bulk(c, "v4", "GET k");
	tn_expect_int(c, -1, "TTL k");
}

static void test_getdel(void **state)
{
	redisContext *c = client(state);
	tn_expect_status(c, "OK", "SET k v EX 100");
	tn_expect_bulk(c, "v", "GETDEL k");
	tn_expect_int(c, 0, "EXISTS k");
	tn_expect_nil(c, "GETDEL k");
	tn_expect_int(c, -2, "TTL k");
	tn_expect_error(c, "ERR wrong number of arguments for 'getdel' command", "GETDEL a b");
}

static void test_getex(void **state)
{
	redisContext *c = client(state);
	tn_expect_nil(c, "GETEX missing EX 10");
	tn_expect_status(c, "OK", "SET k v");
	/* No option: a plain read that leaves the key as it is. */
	tn_expect_bulk(c, "v", "GETEX k");
	tn_expect_int(c, -1, "TTL k");
	tn_expect_bulk(c, "v", "GETEX k EX 100");
	tn_expect_int(c, 100, "TTL k");
	tn_expect_bulk(c, "v", "GETEX k PX 50000");
	tn_expect_int(c, 50, "TTL k");
	tn_expect_bulk(c, "v", "GETEX k PERSIST");
	tn_expect_int(c, -1, "TTL k");
	tn_expect_bulk(c, "v", "GETEX k EXAT 4102444800"); /* 2100-01-01 */
	tn_expect_int(c, 4102444800, "EXPIRETIME k");
	tn_expect_int(c, 4102444800000, "PEXPIRETIME k");
	tn_expect_int(c, -2, "EXPIRETIME missing");
	tn_expect_int(c, -2, "PEXPIRETIME missing");
	/* An absolute time already past deletes the key after reading it. */
	tn_expect_bulk(c, "v", "GETEX k PXAT 1");
	tn_expect_int(c, 0, "EXISTS k");
	tn_expect_status(c, "OK", "SET k v");
	tn_expect_error(c, "ERR syntax error", "GETEX k EX 10 PERSIST");
	tn_expect_error(c, "ERR syntax error", "GETEX k NX");
	tn_expect_error(c, "ERR syntax error", "GETEX k EX");
	tn_expect_error(c, "ERR invalid expire time in 'getex' command", "GETEX k EX 0");
	tn_expect_error(c, "ERR value is not an integer or out of range", "GETEX k PX x");
	tn_expect_int(c, -1, "TTL k");
	tn_expect_int(c, -1, "EXPIRETIME k");
	tn_expect_int(c, -1, "PEXPIRETIME k");
}

static void test_del_exists_duplicates(void **state)
{
	redisContext *c = client(state);
	tn_expect_status(c, "OK", "MSET a 1 b 2");
	tn_expect_int(c, 3, "EXISTS a a b c");
	tn_expect_int(c, 0, "EXISTS c");
	tn_expect_int(c, 2, "DEL a a b c");
	tn_expect_int(c, 0, "DEL a b");
	tn_expect_int(c, 0, "EXISTS a b");
	tn_expect_status(c, "OK", "SET a 1");
	tn_expect_int(c, 1, "DEL a");
	tn_expect_error(c, "ERR wrong number of arguments for 'exists' command", "EXISTS");
}

static void test_mget_mset(void **state)
{
	redisContext *c = client(state);
	tn_expect_status(c, "OK", "MSET a 1 b 2");
	redisReply *r = tn_command(c, "MGET a x b a");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 4);
	assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
	assert_string_equal(r->element[0]->str, "1");
	assert_int_equal(r->element[1]->type, REDIS_REPLY_NIL);
	assert_string_equal(r->element[2]->str, "2");
	assert_string_equal(r->element[3]->str, "1");
	freeReplyObject(r);
	r = tn_command(c, "MGET nope");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 1);
	assert_int_equal(r->element[0]->type, REDIS_REPLY_NIL);
	freeReplyObject(r);

	tn_expect_error(c, "ERR wrong number of arguments for 'mset' command", "MSET a");
	tn_expect_error(c, "ERR wrong number of arguments for 'mset' command", "MSET a 1 b");
	tn_expect_error(c, "ERR wrong number of arguments for 'mset' command", "MSET");
	/* the refused MSETs set nothing */
	tn_expect_bulk(c, "1", "GET a");
	/* the last of duplicate keys wins; MSET clears a TTL */
	tn_expect_status(c, "OK", "SET t x EX 100");
	tn_expect_status(c, "OK", "MSET d 1 d 2 t y");
	tn_expect_bulk(c, "2", "GET d");
	tn_expect_int(c, -1, "TTL t");
	tn_expect_int(c, 4, "DBSIZE");
}

static void test_incr_family(void **state)
{
	redisContext *c = client(state);
	tn_expect_int(c, 1, "INCR n");
	tn_expect_int(c, 11, "INCRBY n 10");
	tn_expect_int(c, 10, "DECR n");
	tn_expect_int(c, 5, "DECRBY n 5");
	tn_expect_int(c, 0, "INCRBY n -5");
	tn_expect_int(c, 7, "DECRBY n -7");
	tn_expect_bulk(c, "7", "GET n");
	tn_expect_int(c, -1, "DECR fresh");
	tn_expect_status(c, "OK", "SET neg -42");
	tn_expect_int(c, -41, "INCR neg");

	/* not integers */
	const char *bad[] = {"abc",
			     " 1",
			     "1 ",
			     "01",
			     "+1",
			     "-0",
			     "1.5",
			     "",
			     "0x10",
			     "123456789012345678901",
			     "9223372036854775808"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tn_expect_status(c, "OK", "SET s %s", bad[i]);
		tn_expect_error(c, "ERR value is not an integer or out of range", "INCR s");
		tn_expect_error(c, "ERR value is not an integer or out of range", "DECRBY s 1");
		tn_expect_bulk(c, bad[i], "GET s");
	}
	tn_expect_error(c, "ERR value is not an integer or out of range", "INCRBY n abc");
	tn_expect_error(c, "ERR value is not an integer or out of range",
			"INCRBY n 9223372036854775808");
	tn_expect_error(c, "ERR value is not an integer or out of range", "DECRBY n 1.0");

	/* overflow */
	tn_expect_status(c, "OK", "SET m 9223372036854775807");
	tn_expect_error(c, "ERR increment or decrement would overflow", "INCR m");
	tn_expect_error(c, "ERR increment or decrement would overflow", "INCRBY m 1");
	tn_expect_error(c, "ERR increment or decrement would overflow", "DECRBY m -1");
	tn_expect_bulk(c, "9223372036854775807", "GET m");
	tn_expect_status(c, "OK", "SET m -9223372036854775808");
	tn_expect_error(c, "ERR increment or decrement would overflow", "DECR m");
	tn_expect_error(c, "ERR increment or decrement would overflow", "DECRBY m 1");
	tn_expect_int(c, -9223372036854775807LL, "INCR m");
	tn_expect_status(c, "OK", "SET z 0");
	tn_expect_error(c, "ERR decrement would overflow", "DECRBY z -9223372036854775808");
	tn_expect_int(c, -9223372036854775807LL - 1, "INCRBY z -9223372036854775808");

	/* INCR keeps the key's TTL */
	tn_expect_status(c, "OK", "SET e 5 EX 100");
	tn_expect_int(c, 6, "INCR e");
	assert_between(int_reply(c, "TTL", "e"), 99, 100);
}

static void test_append_strlen(void **state)
{
	redisContext *c = client(state);
	tn_expect_int(c, 2, "APPEND a ab");
	tn_expect_int(c, 4, "APPEND a cd");
	tn_expect_bulk(c, "abcd", "GET a");
	tn_expect_int(c, 4, "STRLEN a");
	tn_expect_int(c, 0, "STRLEN nokey");
	tn_expect_int(c, 4, "APPEND a %s", "");
	tn_expect_int(c, 7, "APPEND a %b", "\0\r\n", (size_t)3);
	tn_expect_bulk_len(c, "abcd\0\r\n", 7, "GET a");
	tn_expect_int(c, 0, "APPEND empty %s", "");
	tn_expect_int(c, 1, "EXISTS empty");
	tn_expect_int(c, 0, "STRLEN empty");
	/* APPEND keeps the TTL */
	tn_expect_status(c, "OK", "SET t x EX 100");
	tn_expect_int(c, 2, "APPEND t y");
	assert_between(int_reply(c, "TTL", "t"), 99, 100);
	/* numbers are strings too */
	tn_expect_int(c, 10, "INCRBY num 10");
	tn_expect_int(c, 3, "APPEND num 5");
	tn_expect_int(c, 106, "INCR num");
	tn_expect_int(c, 3, "STRLEN num");
}

static void test_type(void **state)
{
	redisContext *c = client(state);
	tn_expect_status(c, "none", "TYPE k");
	tn_expect_status(c, "OK", "SET k v");
	tn_expect_status(c, "string", "TYPE k");
	tn_expect_int(c, 1, "INCR n");
	tn_expect_status(c, "string", "TYPE n");
}

/* ---------------------------------------------------------------------- */
/* Expiry                                                                  */

static void test_expire_ttl_persist(void **state)
{
	redisContext *c = client(state);
	tn_expect_int(c, 0, "EXPIRE nokey 10");
	tn_expect_int(c, 0, "PEXPIRE nokey 10");
	tn_expect_int(c, -2, "TTL nokey");
	tn_expect_int(c, -2, "PTTL nokey");
	tn_expect_status(c, "OK", "SET k v");
	tn_expect_int(c, -1, "TTL k");
	tn_expect_int(c, -1, "PTTL k");
	tn_expect_int(c, 1, "EXPIRE k 100");
	assert_between(int_reply(c, "TTL", "k"), 99, 100);
	assert_between(int_reply(c, "PTTL", "k"), 99000, 100000);
	tn_expect_int(c, 1, "PEXPIRE k 1500");
	assert_between(int_reply(c, "PTTL", "k"), 1000, 1500);
	assert_between(int_reply(c, "TTL", "k"), 1, 2);
	tn_expect_int(c, 1, "PERSIST k");
	tn_expect_int(c, -1, "TTL k");
	tn_expect_int(c, 0, "PERSIST k");
	tn_expect_int(c, 0, "PERSIST nokey");
	tn_expect_bulk(c, "v", "GET k");

	/* NX / XX / GT / LT (Redis 7.0); no TTL counts as an infinite one */
	tn_expect_int(c, 0, "EXPIRE k 10 XX");
	tn_expect_int(c, 0, "EXPIRE k 10 GT");
	tn_expect_int(c, 1, "EXPIRE k 10 NX");
	tn_expect_int(c, 0, "EXPIRE k 20 NX");
	tn_expect_int(c, 0, "EXPIRE k 5 GT");
	tn_expect_int(c, 1, "EXPIRE k 50 GT");
	tn_expect_int(c, 0, "EXPIRE k 60 LT");
	tn_expect_int(c, 1, "EXPIRE k 5 LT");
	tn_expect_int(c, 1, "EXPIRE k 30 XX");
	assert_between(int_reply(c, "TTL", "k"), 29, 30);
	tn_expect_status(c, "OK", "SET p v");
	tn_expect_int(c, 1, "PEXPIRE p 10000 LT");
	tn_expect_error(c, "ERR NX and XX, GT or LT options at the same time are not compatible",
			"EXPIRE k 5 NX XX");
	tn_expect_error(c, "ERR Unsupported option foo", "EXPIRE k 5 foo");

	/* errors */
	tn_expect_error(c, "ERR value is not an integer or out of range", "EXPIRE k abc");
	tn_expect_error(c, "ERR value is not an integer or out of range", "PEXPIRE k 1.5");
	tn_expect_error(c, "ERR invalid expire time in 'expire' command",
			"EXPIRE k 9223372036854775807");
	tn_expect_error(c, "ERR invalid expire time in 'pexpire' command",
			"PEXPIRE k 9223372036854775807");

	/* zero and negative times delete at once */
	tn_expect_int(c, 1, "EXPIRE k 0");
	tn_expect_int(c, 0, "EXISTS k");
	tn_expect_status(c, "OK", "SET k v");
	tn_expect_int(c, 1, "EXPIRE k -1");
	tn_expect_int(c, 0, "EXISTS k");
	tn_expect_status(c, "OK", "SET k v");
	tn_expect_int(c, 1, "PEXPIRE k -5");
	tn_expect_nil(c, "GET k");
	tn_expect_int(c, -2, "TTL k");
}

static void test_keys_expire(void **state)
{
	redisContext *c = client(state);
	tn_expect_status(c, "OK", "SET a v PX 100");
	tn_expect_status(c, "OK", "SET b v");
	tn_expect_int(c, 1, "PEXPIRE b 150");
	tn_expect_status(c, "OK", "SET keep v");
	tn_expect_status(c, "OK", "SET later v PX 60000");
	tn_expect_bulk(c, "v", "GET a");
	tn_sleep_ms(300);
	tn_expect_nil(c, "GET a");
	tn_expect_int(c, 0, "EXISTS b");
	tn_expect_int(c, -2, "TTL a");
	tn_expect_int(c, -2, "PTTL b");
	tn_expect_status(c, "none", "TYPE a");
	tn_expect_int(c, 0, "STRLEN a");
	tn_expect_nil(c, "GETDEL b");
	tn_expect_int(c, 0, "DEL a b");
	tn_expect_int(c, 0, "PERSIST a");
	/* an expired key behaves as missing for writers too */
	tn_expect_status(c, "OK", "SET x 5 PX 50");
	tn_sleep_ms(120);
	tn_expect_int(c, 1, "INCR x");
	tn_expect_int(c, -1, "TTL x");
	tn_expect_status(c, "OK", "SET y v PX 50");
	tn_sleep_ms(120);
	tn_expect_status(c, "OK", "SET y v2 NX");
	tn_expect_int(c, 2, "APPEND z ab");
	tn_expect_bulk(c, "v", "GET keep");
	tn_expect_bulk(c, "v", "GET later");
}

/* An expired key is gone as soon as anyone touches it (Redis's lazy
 * expiry): after GET says nil, DBSIZE and INFO no longer count it, without
 * waiting for the active cycle (slowed to 1 Hz here). */
static void test_expired_key_reclaimed_on_access(void **state)
{
	(void)state;
	struct tn_node *n = tn_node_start("active-expire-hz", "1", NULL);
	redisContext *c = tn_connect(n);
	tn_expect_status(c, "OK", "SET k v PX 50");
	tn_expect_status(c, "OK", "SET j v");
	tn_sleep_ms(100);
	tn_expect_nil(c, "GET k");
	tn_expect_int(c, 1, "DBSIZE");
	redisReply *r = tn_command(c, "INFO keyspace");
	if (!contains(r->str, r->len, "db0:keys=1,expires=0,"))
		tn_fail("INFO keyspace after reading an expired key: expected "
			"db0:keys=1,expires=0, got %s",
			r->str);
	freeReplyObject(r);
	tn_expect_status(c, "OK", "SET k2 v PX 50");
	tn_sleep_ms(100);
	tn_expect_int(c, 0, "EXISTS k2");
	tn_expect_int(c, 1, "DBSIZE");
}

/* Keys nobody reads again are removed by the active expiry cycle. */
static void test_active_expire(void **state)
{
	redisContext *c = client(state);
	for (int i = 0; i < 200; i++)
		redisAppendCommand(c, "SET vol:%d v PX 100", i);
	for (int i = 0; i < 10; i++)
		redisAppendCommand(c, "SET keep:%d v", i);
	for (int i = 0; i < 210; i++) {
		redisReply *r = NULL;
		assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
		assert_int_equal(r->type, REDIS_REPLY_STATUS);
		freeReplyObject(r);
	}
	int64_t deadline = tn_now_ms() + 5000;
	long long size = -1;
	while (tn_now_ms() < deadline) {
		redisReply *r = tn_command(c, "DBSIZE");
		size = r->integer;
		freeReplyObject(r);
		if (size == 10)
			break;
		tn_sleep_ms(50);
	}
	if (size != 10)
		tn_fail("DBSIZE is %lld 5 s after 200 keys expired; expected 10 (active expiry)",
			size);
}

/* ---------------------------------------------------------------------- */
/* Keyspace                                                                */

static void test_dbsize_flush(void **state)
{
	redisContext *c = client(state);
	tn_expect_int(c, 0, "DBSIZE");
	tn_expect_status(c, "OK", "MSET a 1 b 2 c 3");
	tn_expect_status(c, "OK", "SET e v EX 100");
	tn_expect_int(c, 4, "DBSIZE");
	tn_expect_status(c, "OK", "FLUSHDB");
	tn_expect_int(c, 0, "DBSIZE");
	tn_expect_nil(c, "GET a");
	tn_expect_int(c, -2, "TTL e");
	tn_expect_status(c, "OK", "MSET a 1 b 2");
	tn_expect_status(c, "OK", "FLUSHALL");
	tn_expect_int(c, 0, "DBSIZE");
	tn_expect_int(c, 0, "EXISTS a b");
	tn_expect_status(c, "OK", "SET a 1");
	tn_expect_status(c, "OK", "FLUSHALL SYNC");
	tn_expect_int(c, 0, "DBSIZE");
	tn_expect_status(c, "OK", "FLUSHALL ASYNC");
	tn_expect_status(c, "OK", "FLUSHDB SYNC");
	tn_expect_error(c, "ERR syntax error", "FLUSHALL foo");
	/* writes work after a flush */
	tn_expect_status(c, "OK", "SET a 2");
	tn_expect_bulk(c, "2", "GET a");
	tn_expect_int(c, 1, "DBSIZE");
}

/* Run SCAN to the end with the given options (NULL = absent), calling
 * on_key for each key and between() after every round. Checks the shape
 * of each reply. Returns the number of rounds. */
static int scan_all(redisContext *c, const char *match, const char *count, const char *type,
		    void (*on_key)(const char *key, size_t len, void *arg),
		    void (*between)(void *arg), void *arg)
{
	char cursor[32] = "0";
	int rounds = 0;
	do {
		const char *argv[8];
		int argc = 0;
		argv[argc++] = "SCAN";
		argv[argc++] = cursor;
		if (match != NULL) {
			argv[argc++] = "MATCH";
			argv[argc++] = match;
		}
		if (count != NULL) {
			argv[argc++] = "COUNT";
			argv[argc++] = count;
		}
		if (type != NULL) {
			argv[argc++] = "TYPE";
			argv[argc++] = type;
		}
		redisReply *r = tn_command_argv(c, argc, argv, NULL);
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY ||
		    r->element[0]->len >= sizeof(cursor)) {
			char d[512];
			tn_reply_describe(r, d, sizeof(d));
			freeReplyObject(r);
			tn_fail("SCAN %s: malformed reply %s", cursor, d);
		}
		memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			const redisReply *k = r->element[1]->element[i];
			if (k->type != REDIS_REPLY_STRING)
				tn_fail("SCAN returned a key that is not a bulk string");
			on_key(k->str, k->len, arg);
		}
		freeReplyObject(r);
		rounds++;
		if (rounds > 100000)
			tn_fail("SCAN did not finish after 100000 rounds");
		if (between != NULL)
			between(arg);
	} while (strcmp(cursor, "0") != 0);
	return rounds;
}

/* Keys named <p>:<i> for p in {a, o, s, v, n} and i < SEEN_MAX. */
#define SEEN_MAX 4096
struct seen {
	int count[5][SEEN_MAX];
	int other; /* keys of any other shape */
};

static int prefix_slot(char p)
{
	const char *slots = "aosvn";
	const char *at = strchr(slots, p);
	return (p != '\0' && at != NULL) ? (int)(at - slots) : -1;
}

static void count_key(const char *key, size_t len, void *arg)
{
	struct seen *s = arg;
	int slot = len >= 3 && key[1] == ':' ? prefix_slot(key[0]) : -1;
	int i = slot >= 0 ? atoi(key + 2) : -1;
	if (slot < 0 || i < 0 || i >= SEEN_MAX)
		s->other++;
	else
		s->count[slot][i]++;
}

static void check_exactly_once(const struct seen *s, char prefix, int n, const char *what)
{
	int slot = prefix_slot(prefix);
	for (int i = 0; i < n; i++)
		if (s->count[slot][i] != 1)
			tn_fail("%s: key %c:%d returned %d times, expected once", what, prefix, i,
				s->count[slot][i]);
}

static void populate(redisContext *c, char prefix, int from, int to)
{
	for (int i = from; i < to; i += 100) {
		struct sp_buf cmd;
		sp_buf_init(&cmd);
		sp_buf_append_str(&cmd, "MSET");
		for (int j = i; j < to && j < i + 100; j++)
			sp_buf_appendf(&cmd, " %c:%d %d", prefix, j, j);
		sp_buf_append(&cmd, "", 1);
		tn_expect_status(c, "OK", sp_buf_begin(&cmd));
		sp_buf_free(&cmd);
	}
}

static void test_scan_full(void **state)
{
	redisContext *c = client(state);
	populate(c, 'a', 0, 1000);
	populate(c, 'o', 0, 100);
	tn_expect_int(c, 1100, "DBSIZE");

	const char *counts[] = {NULL, "1", "10", "100", "5000"};
	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		struct seen *s = calloc(1, sizeof(*s));
		int rounds = scan_all(c, NULL, counts[k], NULL, count_key, NULL, s);
		check_exactly_once(s, 'a', 1000, "SCAN");
		check_exactly_once(s, 'o', 100, "SCAN");
		assert_int_equal(s->other, 0);
		if (counts[k] != NULL && strcmp(counts[k], "5000") == 0 && rounds > 3)
			tn_fail("SCAN COUNT 5000 over 1100 keys took %d rounds", rounds);
		free(s);
	}

	struct seen *s = calloc(1, sizeof(*s));
	scan_all(c, "a:*", "50", NULL, count_key, NULL, s);
	check_exactly_once(s, 'a', 1000, "SCAN MATCH a:*");
	for (int i = 0; i < 100; i++)
		assert_int_equal(s->count[prefix_slot('o')][i], 0);
	memset(s, 0, sizeof(*s));
	/* o:1, o:10 .. o:19 */
	scan_all(c, "o:1*", NULL, NULL, count_key, NULL, s);
	int matched = 0;
	for (int i = 0; i < 100; i++) {
		int want = (i == 1 || (i >= 10 && i <= 19)) ? 1 : 0;
		if (s->count[prefix_slot('o')][i] != want)
			tn_fail("SCAN MATCH o:1*: o:%d seen %d times, expected %d", i,
				s->count[prefix_slot('o')][i], want);
		matched += want;
	}
	assert_int_equal(matched, 11);
	memset(s, 0, sizeof(*s));
	scan_all(c, "o:?", "7", NULL, count_key, NULL, s);
	for (int i = 0; i < 10; i++)
		assert_int_equal(s->count[prefix_slot('o')][i], 1);
	assert_int_equal(s->count[prefix_slot('a')][5], 0);
	memset(s, 0, sizeof(*s));
	scan_all(c, "nomatch*", "100", NULL, count_key, NULL, s);
	assert_int_equal(s->other, 0);
	memset(s, 0, sizeof(*s));
	scan_all(c, NULL, "100", "string", count_key, NULL, s);
	check_exactly_once(s, 'a', 1000, "SCAN TYPE string");
	memset(s, 0, sizeof(*s));
	scan_all(c, NULL, "100", "list", count_key, NULL, s);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(s->count[prefix_slot('a')][i], 0);
	free(s);

	tn_expect_error(c, "ERR invalid cursor", "SCAN abc");
	tn_expect_error(c, "ERR syntax error", "SCAN 0 COUNT 0");
	tn_expect_error(c, "ERR value is not an integer or out of range", "SCAN 0 COUNT abc");
	tn_expect_error(c, "ERR syntax error", "SCAN 0 FOO");
	tn_expect_error(c, "ERR syntax error", "SCAN 0 MATCH");
	tn_expect_error(c, "ERR syntax error", "SCAN 0 TYPE");
	tn_expect_error(c, "ERR wrong number of arguments for 'scan' command", "SCAN");
}

/* SCAN while other keys come and go: every key present for the whole scan
 * is returned exactly once, and no key more than once. The total number of
 * keys stays level, so Redis's table does not resize mid-scan (a resize is
 * the one case where Redis may repeat keys). */
struct churn {
	struct seen seen; /* first: count_key gets the churn as its seen */
	redisContext *c;
	uint64_t rng;
	bool vol_alive[500];
	int next_new;
};

static void churn_step(void *arg)
{
	struct churn *ch = arg;
	for (int k = 0; k < 5; k++) {
		int v = (int)(rng_next(&ch->rng) % 500);
		if (ch->vol_alive[v]) {
			tn_expect_int(ch->c, 1, "DEL v:%d", v);
			ch->vol_alive[v] = false;
		}
		if (ch->next_new < SEEN_MAX)
			tn_expect_status(ch->c, "OK", "SET n:%d x", ch->next_new++);
	}
}

static void test_scan_while_changing(void **state)
{
	redisContext *c = client(state);
	struct churn *ch = calloc(1, sizeof(*ch));
	ch->c = c;
	ch->rng = rng_seed(1);
	populate(c, 's', 0, 1000);
	populate(c, 'v', 0, 500);
	for (int i = 0; i < 500; i++)
		ch->vol_alive[i] = true;
	scan_all(c, NULL, "20", NULL, count_key, churn_step, ch);
	check_exactly_once(&ch->seen, 's', 1000, "SCAN while changing, stable keys");
	for (int p = 0; p < 5; p++)
		for (int i = 0; i < SEEN_MAX; i++)
			if (ch->seen.count[p][i] > 1)
				tn_fail("SCAN while changing: key %c:%d returned %d times",
					"aosvn"[p], i, ch -> seen.count[p][i]);
	assert_int_equal(ch->seen.other, 0);
	/* Keys are only in the known families. */
	for (int i = ch->next_new; i < SEEN_MAX; i++)
		assert_int_equal(ch->seen.count[prefix_slot('n')][i], 0);
	free(ch);
}

/* ---------------------------------------------------------------------- */
/* Binary safety and size                                                  */

static void test_binary_safe(void **state)
{
	redisContext *c = client(state);
	const char key[] = "a\0b\r\nc d";
	size_t klen = sizeof(key) - 1;
	char val[256];
	for (int i = 0; i < 256; i++)
		val[i] = (char)i;
	tn_expect_status(c, "OK", "SET %b %b", key, klen, val, sizeof(val));
	tn_expect_bulk_len(c, val, sizeof(val), "GET %b", key, klen);
	tn_expect_int(c, 256, "STRLEN %b", key, klen);
	tn_expect_int(c, 1, "EXISTS %b", key, klen);
	/* keys that differ only after a NUL are different keys */
	tn_expect_int(c, 0, "EXISTS %b", "a", (size_t)1);
	tn_expect_int(c, 0, "EXISTS %b", "a\0b", (size_t)3);
	tn_expect_status(c, "OK", "SET %b x", "a\0c", (size_t)3);
	tn_expect_int(c, 2, "DBSIZE");
	tn_expect_bulk(c, "x", "GET %b", "a\0c", (size_t)3);

	/* the empty key and the empty value */
	tn_expect_status(c, "OK", "SET %s %s", "", "empty-key");
	tn_expect_bulk(c, "empty-key", "GET %s", "");
	tn_expect_status(c, "OK", "SET ev %s", "");
	tn_expect_bulk_len(c, "", 0, "GET ev");
	tn_expect_int(c, 0, "STRLEN ev");
	tn_expect_int(c, 1, "EXISTS ev");
	tn_expect_int(c, 4, "DBSIZE");
	tn_expect_int(c, 1, "DEL %s", "");
	tn_expect_nil(c, "GET %s", "");

	/* MGET/MSET with binary keys and values */
	tn_expect_status(c, "OK", "MSET %b %b %b %b", "\x01\x02", (size_t)2, "\0", (size_t)1,
			 "\xff", (size_t)1, "\r\n\r\n", (size_t)4);
	redisReply *r = tn_command(c, "MGET %b %b", "\x01\x02", (size_t)2, "\xff", (size_t)1);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 2);
	assert_int_equal(r->element[0]->len, 1);
	assert_memory_equal(r->element[0]->str, "\0", 1);
	assert_int_equal(r->element[1]->len, 4);
	assert_memory_equal(r->element[1]->str, "\r\n\r\n", 4);
	freeReplyObject(r);
	/* SCAN returns binary keys intact */
	r = tn_command(c, "SCAN 0 COUNT 1000");
	bool found = false;
	for (size_t i = 0; i < r->element[1]->elements; i++) {
		const redisReply *k = r->element[1]->element[i];
		found |= k->len == klen && memcmp(k->str, key, klen) == 0;
	}
	freeReplyObject(r);
	if (!found)
		tn_fail("SCAN did not return the key with NUL and CRLF bytes intact");
}

static void test_large_value(void **state)
{
	redisContext *c = client(state);
	size_t n = 20u << 20;
	char *big = malloc(n);
	assert_non_null(big);
	uint64_t rng = rng_seed(2);
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = rng_next(&rng);
		memcpy(big + i, &x, 8);
	}
	struct timeval tv = {60, 0};
	redisSetTimeout(c, tv);
	tn_expect_status(c, "OK", "SET big %b", big, n);
	tn_expect_int(c, (long long)n, "STRLEN big");
	redisReply *r = tn_command(c, "GET big");
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	assert_int_equal(r->len, n);
	if (memcmp(r->str, big, n) != 0)
		tn_fail("GET big: 20 MiB value came back different");
	freeReplyObject(r);
	tn_expect_int(c, (long long)n + 5, "APPEND big tail!");
	r = tn_command(c, "GETDEL big");
	assert_int_equal(r->len, n + 5);
	assert_memory_equal(r->str + n, "tail!", 5);
	assert_int_equal(memcmp(r->str, big, n), 0);
	freeReplyObject(r);
	tn_expect_int(c, 0, "EXISTS big");
	free(big);
}

/* ---------------------------------------------------------------------- */
/* Protocol: RESP3, pipelining, inline, errors                            */

static void test_resp3_hello(void **state)
{
	struct tn_node *n = tn_test_node(state);
	struct tn_raw *r = tn_raw_connect(n);
	size_t len;

	tn_raw_send_str(r, "SET a 1\r\n");
	tn_raw_expect(r, "+OK\r\n");
	tn_raw_send_str(r, "HELLO 3\r\n");
	char *hello = tn_raw_read_reply(r, &len);
	assert_non_null(hello);
	if (hello[0] != '%' || !contains(hello, len, "$5\r\nproto\r\n:3\r\n") ||
	    !contains(hello, len, "$6\r\nserver\r\n") ||
	    !contains(hello, len, "$7\r\nversion\r\n") || !contains(hello, len, "$2\r\nid\r\n:") ||
	    !contains(hello, len, "$4\r\nmode\r\n") || !contains(hello, len, "$4\r\nrole\r\n")) {
		char esc[1024];
		tn_fail("HELLO 3: expected a map with server, version, proto 3, id, mode, role; "
			"got \"%s\"",
			tn_escape(hello, len, esc, sizeof(esc)));
	}
	free(hello);
	/* RESP3 nulls, maps and verbatim strings */
	tn_raw_send_str(r, "GET nokey\r\n");
	tn_raw_expect(r, "_\r\n");
	tn_raw_send_str(r, "MGET a nokey\r\n");
	tn_raw_expect(r, "*2\r\n$1\r\n1\r\n_\r\n");
	tn_raw_send_str(r, "SET a 2 GET\r\n");
	tn_raw_expect(r, "$1\r\n1\r\n");
	tn_raw_send_str(r, "SET b 2 XX\r\n");
	tn_raw_expect(r, "_\r\n");
	tn_raw_send_str(r, "EXISTS a\r\n");
	tn_raw_expect(r, ":1\r\n");
	char want[128];
	snprintf(want, sizeof(want), "%%1\r\n$4\r\nport\r\n$%d\r\n%d\r\n",
		 snprintf(NULL, 0, "%d", n->port), n->port);
	tn_raw_send_str(r, "CONFIG GET port\r\n");
	tn_raw_expect(r, want);
	tn_raw_send_str(r, "INFO keyspace\r\n");
	char *info = tn_raw_read_reply(r, &len);
	assert_non_null(info);
	if (info[0] != '=' || !contains(info, len, "txt:# Keyspace"))
		tn_fail("INFO in RESP3: expected a verbatim string \"=...txt:# Keyspace...\"");
	free(info);
	tn_raw_send_str(r, "PING\r\n");
	tn_raw_expect(r, "+PONG\r\n");
	tn_raw_send_str(r, "HELLO\r\n");
	hello = tn_raw_read_reply(r, &len);
	assert_true(hello[0] == '%' && contains(hello, len, "$5\r\nproto\r\n:3\r\n"));
	free(hello);

	/* errors leave the protocol as it was */
	tn_raw_send_str(r, "HELLO 4\r\n");
	tn_raw_expect(r, "-NOPROTO unsupported protocol version\r\n");
	tn_raw_send_str(r, "HELLO 1\r\n");
	tn_raw_expect(r, "-NOPROTO unsupported protocol version\r\n");
	tn_raw_send_str(r, "HELLO abc\r\n");
	tn_raw_expect(r, "-ERR Protocol version is not an integer or out of range\r\n");
	tn_raw_send_str(r, "HELLO 3 foo\r\n");
	tn_raw_expect(r, "-ERR Syntax error in HELLO option 'foo'\r\n");
	tn_raw_send_str(r, "GET nokey\r\n");
	tn_raw_expect(r, "_\r\n");

	/* back to RESP2 */
	tn_raw_send_str(r, "HELLO 2\r\n");
	hello = tn_raw_read_reply(r, &len);
	if (hello[0] != '*' || !contains(hello, len, "$5\r\nproto\r\n:2\r\n"))
		tn_fail("HELLO 2: expected a flat array with proto 2");
	free(hello);
	tn_raw_send_str(r, "GET nokey\r\n");
	tn_raw_expect(r, "$-1\r\n");
	tn_raw_send_str(r, "MGET nokey\r\n");
	tn_raw_expect(r, "*1\r\n$-1\r\n");
	tn_raw_send_str(r, "CONFIG GET port\r\n");
	snprintf(want, sizeof(want), "*2\r\n$4\r\nport\r\n$%d\r\n%d\r\n",
		 snprintf(NULL, 0, "%d", n->port), n->port);
	tn_raw_expect(r, want);

	/* HELLO with SETNAME */
	struct tn_raw *r2 = tn_raw_connect(n);
	tn_raw_send_str(r2, "HELLO 3 SETNAME worker-1\r\n");
	hello = tn_raw_read_reply(r2, &len);
	assert_true(hello[0] == '%');
	free(hello);
	tn_raw_send_str(r2, "CLIENT GETNAME\r\n");
	tn_raw_expect(r2, "$8\r\nworker-1\r\n");
	tn_raw_send_str(r2, "HELLO 2 SETNAME a\r\n");
	hello = tn_raw_read_reply(r2, &len);
	free(hello);
	tn_raw_send_str(r2, "CLIENT GETNAME\r\n");
	tn_raw_expect(r2, "$1\r\na\r\n");
}

static void test_pipelining(void **state)
{
	struct tn_node *n = tn_test_node(state);
	struct tn_raw *r = tn_raw_connect(n);
	struct sp_buf b;
	sp_buf_init(&b);

	/* 1000 commands in one write, 1000 replies in order */
	for (int i = 0; i < 1000; i++) {
		const char *argv[] = {"INCR", "ctr"};
		resp_cmd(&b, 2, argv, NULL);
	}
	tn_raw_send(r, sp_buf_begin(&b), b.len);
	for (int i = 1; i <= 1000; i++) {
		char want[32];
		snprintf(want, sizeof(want), ":%d\r\n", i);
		tn_raw_expect(r, want);
	}

	/* SET and GET interleaved, sent in random small pieces */
	sp_buf_clear(&b);
	for (int i = 0; i < 500; i++) {
		char key[32], val[32];
		snprintf(key, sizeof(key), "p:%d", i);
		snprintf(val, sizeof(val), "val-%d", i * 7);
		const char *set[] = {"SET", key, val};
		const char *get[] = {"GET", key};
		resp_cmd(&b, 3, set, NULL);
		resp_cmd(&b, 2, get, NULL);
	}
	uint64_t rng = rng_seed(3);
	size_t off = 0;
	int pieces = 0;
	while (off < b.len) {
		size_t chunk = 1 + rng_next(&rng) % 64;
		if (chunk > b.len - off)
			chunk = b.len - off;
		tn_raw_send(r, sp_buf_begin(&b) + off, chunk);
		off += chunk;
		if (++pieces % 16 == 0)
			tn_sleep_ms(1);
	}
	for (int i = 0; i < 500; i++) {
		char want[64];
		snprintf(want, sizeof(want), "val-%d", i * 7);
		char bulk[80];
		snprintf(bulk, sizeof(bulk), "$%zu\r\n%s\r\n", strlen(want), want);
		tn_raw_expect(r, "+OK\r\n");
		tn_raw_expect(r, bulk);
	}

	/* inline commands pipelined too */
	sp_buf_clear(&b);
	for (int i = 0; i < 200; i++)
		sp_buf_appendf(&b, "ECHO e%d\r\n", i);
	tn_raw_send(r, sp_buf_begin(&b), b.len);
	for (int i = 0; i < 200; i++) {
		char want[32];
		snprintf(want, sizeof(want), "$%d\r\ne%d\r\n", snprintf(NULL, 0, "e%d", i), i);
		tn_raw_expect(r, want);
	}
	sp_buf_free(&b);

	redisContext *c = tn_connect(n);
	tn_expect_bulk(c, "1000", "GET ctr");
	tn_expect_int(c, 501, "DBSIZE");
}

static void test_inline_commands(void **state)
{
	struct tn_node *n = tn_test_node(state);
	struct tn_raw *r = tn_raw_connect(n);
	tn_raw_send_str(r, "SET foo bar\r\n");
	tn_raw_expect(r, "+OK\r\n");
	tn_raw_send_str(r, "GET foo\n");
	tn_raw_expect(r, "$3\r\nbar\r\n");
	tn_raw_send_str(r, "  GET   foo  \r\n");
	tn_raw_expect(r, "$3\r\nbar\r\n");
	tn_raw_send_str(r, "ECHO\thello\r\n");
	tn_raw_expect(r, "$5\r\nhello\r\n");
	/* double quotes with escapes, single quotes verbatim */
	tn_raw_send_str(r, "SET \"a b\" \"c\\x41d\"\r\n");
	tn_raw_expect(r, "+OK\r\n");
	tn_raw_send_str(r, "GET 'a b'\r\n");
	tn_raw_expect(r, "$3\r\ncAd\r\n");
	tn_raw_send_str(r, "ECHO \"line\\nbreak\\t\\\"q\\\"\"\r\n");
	tn_raw_expect(r, "$14\r\nline\nbreak\t\"q\"\r\n");
	tn_raw_send_str(r, "ECHO 'it\\'s'\r\n");
	tn_raw_expect(r, "$4\r\nit's\r\n");
	tn_raw_send_str(r, "ECHO \"\"\r\n");
	tn_raw_expect(r, "$0\r\n\r\n");
	tn_raw_send_str(r, "ECHO \"\\x00\\xff\"\r\n");
	tn_raw_expect_len(r, "$2\r\n\0\xff\r\n", 8);
	/* empty lines are ignored */
	tn_raw_send_str(r, "\r\n\n\r\nPING\r\n");
	tn_raw_expect(r, "+PONG\r\n");
	/* errors in inline commands are ordinary errors */
	tn_raw_send_str(r, "NOSUCH x\r\n");
	tn_raw_expect(r, "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n");
	tn_raw_send_str(r, "GET\r\n");
	tn_raw_expect(r, "-ERR wrong number of arguments for 'get' command\r\n");
	/* unbalanced quotes are a protocol error that closes the connection */
	tn_raw_send_str(r, "SET \"abc\r\n");
	tn_raw_expect(r, "-ERR Protocol error: unbalanced quotes in request\r\n");
	assert_true(tn_raw_closed(r, 2000));
	r = tn_raw_connect(n);
	tn_raw_send_str(r, "GET \"a b\"x\r\n");
	tn_raw_expect(r, "-ERR Protocol error: unbalanced quotes in request\r\n");
	assert_true(tn_raw_closed(r, 2000));

	/* an inline line longer than 64 KiB (Redis's fixed limit, spectra's
	 * default max-inline-len) */
	r = tn_raw_connect(n);
	char *line = malloc(70000);
	memset(line, 'a', 70000);
	tn_raw_send(r, line, 70000);
	free(line);
	tn_raw_expect(r, "-ERR Protocol error: too big inline request\r\n");
	assert_true(tn_raw_closed(r, 2000));

	redisContext *c = tn_connect(n);
	tn_expect_bulk(c, "bar", "GET foo");
}

/* Malformed RESP closes that connection only; others and the data stay. */
static void test_protocol_errors_isolated(void **state)
{
	struct tn_node *n = tn_test_node(state);
	redisContext *c = tn_connect(n);
	tn_expect_status(c, "OK", "SET keep intact");
	struct {
		const char *in;
		const char *reply;
	} cases[] = {
	    {"*1\r\n$abc\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
	    {"*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
	    {"*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'\r\n"},
	    {"*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
	    {"*1\r\n$999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
	    {"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n:5\r\n",
	     "-ERR Protocol error: expected '$', got ':'\r\n"},
	    {"SET \"abc\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
	    {"*2\r\n$3\r\nGET\r\n$4\r\nkeep\r\n*1\r\n$x\r\n",
	     "$6\r\nintact\r\n-ERR Protocol error: invalid bulk length\r\n"},
	    {"PING\r\n*-5x\r\n", "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tn_raw *r = tn_raw_connect(n);
		tn_raw_send_str(r, cases[i].in);
		/* the expected text may hold two replies */
		const char *want = cases[i].reply;
		while (*want != '\0') {
			size_t wl = tn_resp_frame(want, strlen(want));
			assert_true(wl > 0 && wl != (size_t)-1);
			tn_raw_expect_len(r, want, wl);
			want += wl;
		}
		if (!tn_raw_closed(r, 2000)) {
			char esc[256];
			tn_fail("connection not closed after a protocol error on \"%s\"",
				tn_escape(cases[i].in, strlen(cases[i].in), esc, sizeof(esc)));
		}
		tn_raw_close(r);
		tn_expect_bulk(c, "intact", "GET keep");
	}
	/* Empty multibulks are ignored, as Redis does. */
	struct tn_raw *r = tn_raw_connect(n);
	tn_raw_send_str(r, "*0\r\n*-1\r\nPING\r\n");
	tn_raw_expect(r, "+PONG\r\n");
	tn_expect_status(c, "PONG", "PING");
	tn_expect_int(c, 1, "DBSIZE");
	tn_expect_bulk(c, "intact", "GET keep");
}

static void test_quit(void **state)
{
	struct tn_node *n = tn_test_node(state);
	struct tn_raw *r = tn_raw_connect(n);
	tn_raw_send_str(r, "QUIT\r\n");
	tn_raw_expect(r, "+OK\r\n");
	assert_true(tn_raw_closed(r, 2000));
	/* commands pipelined after QUIT are not run */
	r = tn_raw_connect(n);
	tn_raw_send_str(r, "*1\r\n$4\r\nQUIT\r\n*3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\n1\r\n");
	tn_raw_expect(r, "+OK\r\n");
	assert_true(tn_raw_closed(r, 2000));
	redisContext *c = tn_connect(n);
	tn_expect_int(c, 0, "EXISTS after");
	tn_expect_status(c, "OK", "QUIT");
	redisReply *reply = redisCommand(c, "PING");
	if (reply != NULL) {
		freeReplyObject(reply);
		tn_fail("PING after QUIT got a reply");
	}
}

/* ---------------------------------------------------------------------- */
/* Server commands                                                         */

static void test_client_commands(void **state)
{
	struct tn_node *n = tn_test_node(state);
	redisContext *c = tn_connect(n);
	redisContext *c2 = tn_connect(n);
	tn_expect_nil(c, "CLIENT GETNAME");
	tn_expect_status(c, "OK", "CLIENT SETNAME foo");
	tn_expect_bulk(c, "foo", "CLIENT GETNAME");
	tn_expect_nil(c2, "CLIENT GETNAME");
	tn_expect_error(c,
			"ERR Client names cannot contain spaces, newlines or special characters.",
			"CLIENT SETNAME %s", "a b");
	tn_expect_error(c,
			"ERR Client names cannot contain spaces, newlines or special characters.",
			"CLIENT SETNAME %s", "a\nb");
	tn_expect_bulk(c, "foo", "CLIENT GETNAME");
	tn_expect_error(c, "ERR unknown subcommand 'foo'. Try CLIENT HELP.", "CLIENT foo");
	tn_expect_error(c, "ERR wrong number of arguments for 'client|setname' command",
			"CLIENT SETNAME");

	long long id1 = int_reply(c, "CLIENT", "ID");
	long long id2 = int_reply(c2, "CLIENT", "ID");
	assert_true(id1 > 0);
	assert_true(id2 > id1);
	tn_expect_int(c, id1, "CLIENT ID");

	redisReply *r = tn_command(c, "CLIENT INFO");
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	char idfield[64];
	snprintf(idfield, sizeof(idfield), "id=%lld ", id1);
	if (strncmp(r->str, idfield, strlen(idfield)) != 0 ||
	    !contains(r->str, r->len, " name=foo ") ||
	    !contains(r->str, r->len, " addr=127.0.0.1:") || r->str[r->len - 1] != '\n')
		tn_fail(
		    "CLIENT INFO: expected \"%s... addr=127.0.0.1:... name=foo ...\\n\", got %s",
		    idfield, r->str);
	freeReplyObject(r);
	/* an empty name clears it */
	tn_expect_status(c, "OK", "CLIENT SETNAME %s", "");
	tn_expect_nil(c, "CLIENT GETNAME");
}

static void test_client_setinfo(void **state)
{
	TN_SPECTRA_ONLY("CLIENT SETINFO is Redis 7.2; the reference is 7.0");
	redisContext *c = client(state);
	tn_expect_status(c, "OK", "CLIENT SETINFO lib-name mylib");
	tn_expect_status(c, "OK", "CLIENT SETINFO lib-ver 1.2.3");
	redisReply *r = tn_command(c, "CLIENT INFO");
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	if (!contains(r->str, r->len, "lib-name=mylib") ||
	    !contains(r->str, r->len, "lib-ver=1.2.3"))
		tn_fail("CLIENT INFO lacks lib-name=mylib lib-ver=1.2.3: %s", r->str);
	freeReplyObject(r);
}

static void test_config_get(void **state)
{
	struct tn_node *n = tn_test_node(state);
	redisContext *c = tn_connect(n);
	char port[16];
	snprintf(port, sizeof(port), "%d", n->port);
	redisReply *r = tn_command(c, "CONFIG GET port");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 2);
	assert_string_equal(r->element[0]->str, "port");
	assert_string_equal(r->element[1]->str, port);
	freeReplyObject(r);
	/* the two redis-benchmark asks for */
	const char *names[] = {"save", "appendonly"};
	for (int i = 0; i < 2; i++) {
		r = tn_command(c, "CONFIG GET %s", names[i]);
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[1]->type != REDIS_REPLY_STRING ||
		    strcmp(r->element[0]->str, names[i]) != 0) {
			char d[256];
			tn_reply_describe(r, d, sizeof(d));
			tn_fail("CONFIG GET %s: expected [\"%s\", value], got %s", names[i],
				names[i], d);
		}
		freeReplyObject(r);
	}
	tn_expect_array_len(c, 0, "CONFIG GET nosuchsetting");
	r = tn_command(c, "CONFIG GET maxclient*");
	assert_int_equal(r->elements, 2);
	assert_string_equal(r->element[0]->str, "maxclients");
	assert_string_equal(r->element[1]->str, "10000");
	freeReplyObject(r);
	r = tn_command(c, "CONFIG GET bind");
	assert_int_equal(r->elements, 2);
	assert_string_equal(r->element[1]->str, "127.0.0.1");
	freeReplyObject(r);
	/* several patterns (Redis 7) */
	r = tn_command(c, "CONFIG GET port bind");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 4);
	assert_true(array_has(r, "port") && array_has(r, "bind"));
	freeReplyObject(r);
	tn_expect_error(c, "ERR wrong number of arguments for 'config|get' command", "CONFIG GET");
}

static void test_command_command(void **state)
{
	redisContext *c = client(state);
	long long count = int_reply(c, "COMMAND", "COUNT");
	assert_true(count > 0);

	redisReply *r = tn_command(c, "COMMAND INFO get");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 1);
	redisReply *g = r->element[0];
	assert_int_equal(g->type, REDIS_REPLY_ARRAY);
	assert_true(g->elements >= 6);
	assert_string_equal(g->element[0]->str, "get");
	assert_int_equal(g->element[1]->integer, 2);
	assert_true(array_has(g->element[2], "readonly"));
	assert_int_equal(g->element[3]->integer, 1);
	assert_int_equal(g->element[4]->integer, 1);
	assert_int_equal(g->element[5]->integer, 1);
	freeReplyObject(r);

	r = tn_command(c, "COMMAND INFO set mget nosuch ping");
	assert_int_equal(r->elements, 4);
	assert_string_equal(r->element[0]->element[0]->str, "set");
	assert_int_equal(r->element[0]->element[1]->integer, -3);
	assert_true(array_has(r->element[0]->element[2], "write"));
	assert_string_equal(r->element[1]->element[0]->str, "mget");
	assert_int_equal(r->element[1]->element[1]->integer, -2);
	assert_int_equal(r->element[1]->element[4]->integer, -1);
	assert_int_equal(r->element[2]->type, REDIS_REPLY_NIL);
	assert_int_equal(r->element[3]->element[1]->integer, -1);
	freeReplyObject(r);

	r = tn_command(c, "COMMAND LIST");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	/* LIST names subcommands too ("config|get"); COUNT does not */
	assert_true((long long)r->elements >= count);
	const char *must[] = {"get", "set", "scan", "hello", "command", "config", "client", "incr"};
	for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
		if (!array_has(r, must[i]))
			tn_fail("COMMAND LIST lacks %s", must[i]);
	freeReplyObject(r);

	r = tn_command(c, "COMMAND");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal((long long)r->elements, count);
	freeReplyObject(r);

	r = tn_command(c, "COMMAND DOCS get");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 2);
	assert_string_equal(r->element[0]->str, "get");
	assert_true(array_has(r->element[1], "summary"));
	freeReplyObject(r);
}

static void test_info(void **state)
{
	redisContext *c = client(state);
	tn_expect_status(c, "OK", "SET a 1");
	tn_expect_status(c, "OK", "SET b 1 EX 100");
	redisReply *r = tn_command(c, "INFO");
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	const char *need[] = {
	    "# Server\r\n",   "# Clients\r\n",	    "# Stats\r\n",	    "# Persistence\r\n",
	    "# Keyspace\r\n", "connected_clients:", "db0:keys=2,expires=1,"};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!contains(r->str, r->len, need[i]))
			tn_fail("INFO lacks \"%s\"", need[i]);
	freeReplyObject(r);
	r = tn_command(c, "INFO server");
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	assert_true(contains(r->str, r->len, "# Server\r\n"));
	assert_false(contains(r->str, r->len, "# Keyspace"));
	freeReplyObject(r);
	r = tn_command(c, "INFO keyspace");
	assert_true(contains(r->str, r->len, "# Keyspace\r\ndb0:keys=2,expires=1,"));
	assert_false(contains(r->str, r->len, "# Server"));
	freeReplyObject(r);
	tn_expect_status(c, "OK", "FLUSHALL");
	r = tn_command(c, "INFO keyspace");
	assert_false(contains(r->str, r->len, "db0:"));
	freeReplyObject(r);
}

/* ---------------------------------------------------------------------- */
/* Security and limits                                                     */

static void test_auth(void **state)
{
	(void)state;
	struct tn_node *n = tn_node_start("requirepass", "s3cret", NULL);
	redisContext *c = tn_connect(n);
	tn_expect_error(c, "NOAUTH Authentication required.", "GET k");
	tn_expect_error(c, "NOAUTH Authentication required.", "PING");
	tn_expect_error(c, "NOAUTH Authentication required.", "SET k v");
	tn_expect_error(c, "WRONGPASS invalid username-password pair or user is disabled.",
			"AUTH wrong");
	tn_expect_error(c, "WRONGPASS invalid username-password pair or user is disabled.",
			"AUTH default wrong");
	tn_expect_error(c, "ERR syntax error", "AUTH a b c");
	tn_expect_error(c, "NOAUTH Authentication required.", "GET k");
	tn_expect_status(c, "OK", "AUTH s3cret");
	tn_expect_nil(c, "GET k");
	tn_expect_status(c, "OK", "SET k v");

	redisContext *c2 = tn_connect(n);
	tn_expect_error(c2, "NOAUTH Authentication required.", "GET k");
	tn_expect_status(c2, "OK", "AUTH default s3cret");
	tn_expect_bulk(c2, "v", "GET k");

	/* HELLO before AUTH, with and without credentials */
	struct tn_raw *r = tn_raw_connect(n);
	tn_raw_send_str(r, "HELLO 3\r\n");
	size_t len;
	char *reply = tn_raw_read_reply(r, &len);
	assert_true(strncmp(reply, "-NOAUTH ", 8) == 0);
	free(reply);
	tn_raw_send_str(r, "HELLO 3 AUTH default wrong\r\n");
	tn_raw_expect(r, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
	tn_raw_send_str(r, "HELLO 3 AUTH default s3cret\r\n");
	reply = tn_raw_read_reply(r, &len);
	assert_true(reply[0] == '%');
	free(reply);
	tn_raw_send_str(r, "GET k\r\n");
	tn_raw_expect(r, "$1\r\nv\r\n");
}

static void test_auth_without_password(void **state)
{
	redisContext *c = client(state);
	tn_expect_error(c,
			"ERR AUTH <password> called without any password configured for the "
			"default user. Are you sure your configuration is correct?",
			"AUTH x");
	tn_expect_status(c, "PONG", "PING");
}

static void test_limit_maxclients(void **state)
{
	(void)state;
	struct tn_node *n = tn_node_start("maxclients", "3", NULL);
	redisContext *cs[3];
	for (int i = 0; i < 3; i++) {
		/* the start-up PING's connection may not be reaped yet */
		for (int attempt = 0;; attempt++) {
			cs[i] = tn_connect(n);
			redisReply *r = tn_command(cs[i], "PING");
			bool ok = r->type == REDIS_REPLY_STATUS;
			freeReplyObject(r);
			if (ok)
				break;
			tn_disconnect(cs[i]);
			if (attempt == 40)
				tn_fail("client %d of 3 refused with maxclients 3", i + 1);
			tn_sleep_ms(25);
		}
	}
	struct tn_raw *r = tn_raw_connect(n);
	tn_raw_expect(r, "-ERR max number of clients reached\r\n");
	assert_true(tn_raw_closed(r, 2000));
	tn_raw_close(r);
	for (int i = 0; i < 3; i++)
		tn_expect_status(cs[i], "PONG", "PING");
	/* a freed slot can be used again */
	tn_disconnect(cs[0]);
	bool ok = false;
	for (int attempt = 0; attempt < 40 && !ok; attempt++) {
		r = tn_raw_connect(n);
		tn_raw_send_str(r, "PING\r\n");
		size_t len;
		char *reply = tn_raw_read_reply(r, &len);
		ok = reply != NULL && strcmp(reply, "+PONG\r\n") == 0;
		free(reply);
		tn_raw_close(r);
		if (!ok)
			tn_sleep_ms(25);
	}
	assert_true(ok);
}

static void test_limit_bulk_len(void **state)
{
	(void)state;
	/* 1mb is Redis's smallest proto-max-bulk-len */
	struct tn_node *n = tn_node_start("max-bulk-len", "1mb", NULL);
	redisContext *c = tn_connect(n);
	size_t ok_len = 1000000;
	char *v = malloc(ok_len);
	memset(v, 'x', ok_len);
	tn_expect_status(c, "OK", "SET k %b", v, ok_len);
	free(v);
	struct tn_raw *r = tn_raw_connect(n);
	tn_raw_send_str(r, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
	tn_raw_expect(r, "-ERR Protocol error: invalid bulk length\r\n");
	assert_true(tn_raw_closed(r, 2000));
	tn_expect_int(c, (long long)ok_len, "STRLEN k");
}

static void test_limit_max_args(void **state)
{
	(void)state;
	TN_SPECTRA_ONLY("max-args has no redis-server setting");
	struct tn_node *n = tn_node_start("max-args", "8", NULL);
	redisContext *c = tn_connect(n);
	tn_expect_status(c, "OK", "MSET a 1 b 2 c 3");
	tn_expect_int(c, 3, "DEL a b c d e f g");
	tn_expect_status(c, "OK", "MSET a 1 b 2 c 3");
	struct tn_raw *r = tn_raw_connect(n);
	tn_raw_send_str(r, "*9\r\n");
	tn_raw_expect(r, "-ERR Protocol error: invalid multibulk length\r\n");
	assert_true(tn_raw_closed(r, 2000));
	tn_expect_bulk(c, "3", "GET c");
}

static void test_limit_inline_len(void **state)
{
	(void)state;
	TN_SPECTRA_ONLY("max-inline-len has no redis-server setting");
	struct tn_node *n = tn_node_start("max-inline-len", "1kb", NULL);
	struct tn_raw *r = tn_raw_connect(n);
	char line[1100];
	memset(line, 'y', sizeof(line));
	memcpy(line, "ECHO ", 5);
	memcpy(line + 900, "\r\n", 2);
	tn_raw_send(r, line, 902);
	char want[1000];
	snprintf(want, sizeof(want), "$895\r\n%.895s\r\n", line + 5);
	tn_raw_expect(r, want);
	memset(line, 'y', sizeof(line));
	tn_raw_send(r, line, sizeof(line));
	tn_raw_expect(r, "-ERR Protocol error: too big inline request\r\n");
	assert_true(tn_raw_closed(r, 2000));
}

static void test_limit_value_bytes(void **state)
{
	(void)state;
	TN_SPECTRA_ONLY("max-value-bytes has no redis-server setting");
	struct tn_node *n = tn_node_start("max-value-bytes", "1000", NULL);
	redisContext *c = tn_connect(n);
	char v[1001];
	memset(v, 'v', sizeof(v));
	const char *err = "ERR string exceeds maximum allowed size (max-value-bytes)";
	tn_expect_status(c, "OK", "SET k %b", v, (size_t)1000);
	tn_expect_error(c, err, "SET k2 %b", v, (size_t)1001);
	tn_expect_int(c, 0, "EXISTS k2");
	tn_expect_error(c, err, "APPEND k x");
	tn_expect_int(c, 1000, "STRLEN k");
	tn_expect_status(c, "OK", "SET s %b", v, (size_t)999);
	tn_expect_int(c, 1000, "APPEND s x");
	tn_expect_error(c, err, "APPEND s x");
	tn_expect_error(c, err, "SET k3 %b EX 100", v, (size_t)1001);
	tn_expect_error(c, err, "MSET m1 small m2 %b", v, (size_t)1001);
	tn_expect_int(c, 0, "EXISTS m1 m2");
	tn_expect_int(c, 2, "DBSIZE");
}

static void test_key_too_long(void **state)
{
	TN_SPECTRA_ONLY("Redis keys have no length limit; LMDB's is ~500 bytes");
	redisContext *c = client(state);
	char key[600];
	memset(key, 'k', sizeof(key));
	tn_expect_status(c, "OK", "SET %b v", key, (size_t)400);
	tn_expect_bulk(c, "v", "GET %b", key, (size_t)400);
	tn_expect_error_prefix(c, "ERR key too long", "SET %b v", key, sizeof(key));
	tn_expect_error_prefix(c, "ERR key too long", "MSET a 1 %b v", key, sizeof(key));
	tn_expect_error_prefix(c, "ERR key too long", "INCR %b", key, sizeof(key));
	tn_expect_int(c, 1, "DBSIZE");
	tn_expect_status(c, "PONG", "PING");
}

/* A client whose unparsed input outgrows max-query-buffer (here one 3 MB
 * bulk with a 1 MB limit) is disconnected; nobody else notices. */
static void test_limit_query_buffer(void **state)
{
	(void)state;
	struct tn_node *n = tn_node_start("max-query-buffer", "1mb", NULL);
	redisContext *c = tn_connect(n);
	tn_expect_status(c, "OK", "SET keep v");
	struct tn_raw *r = tn_raw_connect(n);
	tn_raw_send_str(r, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n");
	char chunk[8192];
	memset(chunk, 'q', sizeof(chunk));
	size_t sent = tn_raw_send_for(r, chunk, sizeof(chunk), 3000, 3000000);
	if (!tn_raw_closed(r, 3000))
		tn_fail("client not disconnected after %zu bytes of one bulk with "
			"max-query-buffer 1mb",
			sent);
	tn_expect_int(c, 0, "EXISTS k");
	tn_expect_bulk(c, "v", "GET keep");
	assert_true(tn_node_alive(n));
}

/* Settings from a file, with flags winning over it. */
static void test_config_file(void **state)
{
	(void)state;
	TN_SPECTRA_ONLY("spectrad's config file");
	char path[] = "/tmp/spectra-conf-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "# a comment\n\nrequirepass \"pw with space\"\nmaxclients 5\n"
			   "max_value_bytes 10kb\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct tn_node *n = tn_node_start("config", path, "maxclients", "9", NULL);
	unlink(path);
	redisContext *c = tn_connect(n);
	tn_expect_error(c, "NOAUTH Authentication required.", "GET k");
	tn_expect_status(c, "OK", "AUTH %s", "pw with space");
	redisReply *r = tn_command(c, "CONFIG GET maxclients");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 2);
	assert_string_equal(r->element[1]->str, "9");
	freeReplyObject(r);
	char v[10241];
	memset(v, 'v', sizeof(v));
	tn_expect_status(c, "OK", "SET k %b", v, (size_t)10240);
	tn_expect_error(c, "ERR string exceeds maximum allowed size (max-value-bytes)", "SET k %b",
			v, sizeof(v));
}

/* A client that pipelines without reading must not grow the server without
 * bound: spectra stops reading from it once max-output-buffer bytes of
 * replies are pending (Redis, given the same limit, disconnects it). */
static void test_output_buffer_bounded(void **state)
{
	(void)state;
	struct tn_node *n =
	    tn_node_start("max-output-buffer", "1mb", "max-query-buffer", "1mb", NULL);
	redisContext *c = tn_connect(n);
	size_t vlen = 100000;
	char *v = malloc(vlen);
	memset(v, 'b', vlen);
	tn_expect_status(c, "OK", "SET big %b", v, vlen);
	free(v);
	long rss_before = tn_node_rss_kb(n);

	struct tn_raw *hog = tn_raw_connect(n);
	const char *get = "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n";
	/* Unbounded, this would ask for ~35 GB of replies. */
	size_t sent = tn_raw_send_for(hog, get, strlen(get), 2000, (size_t)8 << 20);
	print_message("    hog sent %zu bytes of GETs without reading\n", sent);
	long rss_during = tn_node_rss_kb(n);

	assert_true(tn_node_alive(n));
	tn_expect_status(c, "PONG", "PING");
	tn_expect_int(c, (long long)vlen, "STRLEN big");
	tn_expect_status(c, "OK", "SET after hog");
	redisContext *c2 = tn_connect(n);
	tn_expect_bulk(c2, "hog", "GET after");
	print_message("    server RSS %ld KiB before, %ld KiB while the hog waits\n", rss_before,
		      rss_during);
	if (rss_during > rss_before + 256 * 1024)
		tn_fail("server RSS grew from %ld to %ld KiB for one client that does not read",
			rss_before, rss_during);
	tn_raw_close(hog);
	tn_sleep_ms(100);
	tn_expect_status(c, "PONG", "PING");
	assert_true(tn_node_alive(n));
}

static void test_idle_timeout(void **state)
{
	(void)state;
	struct tn_node *n = tn_node_start("timeout", "1", NULL);
	struct tn_raw *r = tn_raw_connect(n);
	tn_raw_send_str(r, "PING\r\n");
	tn_raw_expect(r, "+PONG\r\n");
	int64_t t0 = tn_now_ms();
	if (!tn_raw_closed(r, 5000))
		tn_fail("idle client not closed 5 s after the 1 s timeout");
	assert_true(tn_now_ms() - t0 >= 900);
}

/* ---------------------------------------------------------------------- */
/* Process                                                                 */

static void test_sigterm_clean_exit(void **state)
{
	struct tn_node *n = tn_test_node(state);
	redisContext *c = tn_connect(n);
	tn_expect_status(c, "OK", "SET k v");
	int st = tn_node_stop(n);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tn_fail("SIGTERM: expected exit status 0, got %s %d",
			WIFSIGNALED(st) ? "signal" : "status",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void test_bad_settings_refused(void **state)
{
	(void)state;
	TN_SPECTRA_ONLY("spectrad's own flags");
	char dir[] = "/tmp/spectra-badcfg-XXXXXX";
	assert_non_null(mkdtemp(dir));
	const char *cases[][4] = {
	    {"--port", "abc", NULL, NULL},
	    {"--port", "70000", NULL, NULL},
	    {"--fsync", "sometimes", NULL, NULL},
	    {"--nosuchsetting", "1", NULL, NULL},
	    {"--maxclients", "0", NULL, NULL},
	    {"--max-bulk-len", "12", NULL, NULL},
	    {"--config", "/nonexistent/spectra.conf", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[8] = {"--dir",	    dir,	 "--bind", "127.0.0.1",
				       cases[i][0], cases[i][1], NULL};
		char out[2048];
		int st = tn_run_spectrad(args, out, sizeof(out), 5000);
		if (st == -1)
			tn_fail("spectrad %s %s: still running after 5 s", cases[i][0],
				cases[i][1]);
		if (!WIFEXITED(st) || WEXITSTATUS(st) == 0 || out[0] == '\0')
			tn_fail("spectrad %s %s: expected a non-zero exit and a message, got "
				"status %d and \"%s\"",
				cases[i][0], cases[i][1], st, out);
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TN_TEST(test_ping_echo),
	    TN_TEST(test_select),
	    TN_TEST(test_unknown_command_and_arity),
	    TN_TEST(test_set_get_basic),
	    TN_TEST(test_set_options),
	    TN_TEST(test_getdel),
	    TN_TEST(test_getex),
	    TN_TEST(test_del_exists_duplicates),
	    TN_TEST(test_mget_mset),
	    TN_TEST(test_incr_family),
	    TN_TEST(test_append_strlen),
	    TN_TEST(test_type),
	    TN_TEST(test_expire_ttl_persist),
	    TN_TEST(test_keys_expire),
	    TN_TEST_BARE(test_expired_key_reclaimed_on_access),
	    TN_TEST(test_active_expire),
	    TN_TEST(test_dbsize_flush),
	    TN_TEST(test_scan_full),
	    TN_TEST(test_scan_while_changing),
	    TN_TEST(test_binary_safe),
	    TN_TEST(test_large_value),
	    TN_TEST(test_resp3_hello),
	    TN_TEST(test_pipelining),
	    TN_TEST(test_inline_commands),
	    TN_TEST(test_protocol_errors_isolated),
	    TN_TEST(test_quit),
	    TN_TEST(test_client_commands),
	    TN_TEST(test_client_setinfo),
	    TN_TEST(test_config_get),
	    TN_TEST(test_command_command),
	    TN_TEST(test_info),
	    TN_TEST_BARE(test_auth),
	    TN_TEST(test_auth_without_password),
	    TN_TEST_BARE(test_limit_maxclients),
	    TN_TEST_BARE(test_limit_bulk_len),
	    TN_TEST_BARE(test_limit_max_args),
	    TN_TEST_BARE(test_limit_inline_len),
	    TN_TEST_BARE(test_limit_value_bytes),
	    TN_TEST(test_key_too_long),
	    TN_TEST_BARE(test_limit_query_buffer),
	    TN_TEST_BARE(test_config_file),
	    TN_TEST_BARE(test_output_buffer_bounded),
	    TN_TEST_BARE(test_idle_timeout),
	    TN_TEST(test_sigterm_clean_exit),
	    TN_TEST_BARE(test_bad_settings_refused),
	};
	return cmocka_run_group_tests_name("node", tests, NULL, NULL);
}
