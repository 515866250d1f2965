/*
 * test_config: the settings table, its parsers and its formatter.
 *
 * Covers the defaults, every type, both edges of every range (and one past
 * each), size suffixes, settings files good and bad, flags and their
 * precedence over files, and that every setting survives format -> set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"

#define KB (1024ull)
#define MB (1024ull * KB)
#define GB (1024ull * MB)
#define TB (1024ull * GB)

/* assert_contains fails with both strings shown when needle is not in hay. */
#define assert_contains(hay, needle) assert_contains_at((hay), (needle), __FILE__, __LINE__)

static void assert_contains_at(const char *hay, const char *needle, const char *file, int line)
{
	if (hay && strstr(hay, needle))
		return;
	print_error("%s:%d: expected \"%s\" in \"%s\"\n", file, line, needle, hay ? hay : "(null)");
	fail();
}

/* A config initialised before each test and freed after it. */
static int setup_config(void **state)
{
	struct sp_config *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	sp_config_init(c);
	*state = c;
	return 0;
}

static int teardown_config(void **state)
{
	sp_config_free(*state);
	free(*state);
	return 0;
}

/* write_temp writes text to a new temporary file and returns its path
 * (static storage; remove() it when done). */
static const char *write_temp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/test_config.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

/* formatted returns sp_config_format's text for name, compared and freed
 * by the caller via expect_format. */
static void expect_format(const struct sp_config *c, const char *name, const char *want)
{
	char *got = sp_config_format(c, name);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_defaults(void **state)
{
	struct sp_config *c = *state;
	assert_string_equal(c->bind, "127.0.0.1");
	assert_int_equal(c->port, 7379);
	assert_int_equal(c->tcp_backlog, 511);
	assert_int_equal(c->maxclients, 10000);
	assert_int_equal(c->timeout_s, 0);
	assert_string_equal(c->dir, "./spectra-data");
	assert_true(c->map_size == 8 * GB);
	assert_int_equal(c->fsync, SP_FSYNC_ALWAYS);
	assert_int_equal(c->fsync_interval_ms, 100);
	assert_int_equal(c->active_expire_hz, 10);
	assert_true(c->max_bulk_len == 512 * MB);
	assert_int_equal(c->max_args, 1048576);
	assert_true(c->max_inline_len == 64 * KB);
	assert_true(c->max_value_bytes == 512 * MB);
	assert_true(c->max_query_buffer == 1 * GB);
	assert_true(c->max_output_buffer == 64 * MB);
	/* cluster: a standalone node, timings for 5 nodes on 2 cores */
	assert_true(c->node_id == 0);
	assert_string_equal(c->cluster_file, "");
	assert_true(c->election_timeout_ms == 1000 && c->heartbeat_ms == 100);
	assert_true(c->request_timeout_ms == 2000);
	assert_false(c->admin_commands);
	assert_int_equal(c->default_mode, SP_MODE_STRONG);
	assert_string_equal(c->requirepass, "");
	assert_string_equal(c->logfile, "");
	assert_string_equal(c->loglevel, "info");
	assert_string_equal(c->pidfile, "");
}

static void test_string(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	assert_int_equal(sp_config_set(c, "bind", "0.0.0.0", err, sizeof(err)), 0);
	assert_string_equal(c->bind, "0.0.0.0");
	assert_int_equal(sp_config_set(c, "requirepass", "s3cret with spaces", err, sizeof(err)),
			 0);
	assert_string_equal(c->requirepass, "s3cret with spaces");
	assert_int_equal(sp_config_set(c, "requirepass", "", err, sizeof(err)), 0);
	assert_string_equal(c->requirepass, "");

	/* dir and bind may not be empty; the old value stays. */
	assert_int_equal(sp_config_set(c, "dir", "", err, sizeof(err)), SP_ERR_INVAL);
	assert_contains(err, "dir: must not be empty");
	assert_string_equal(c->dir, "./spectra-data");

	/* 4096 bytes is the longest string. */
	char *longest = malloc(4098);
	memset(longest, 'a', 4097);
	longest[4096] = '\0';
	assert_int_equal(sp_config_set(c, "logfile", longest, err, sizeof(err)), 0);
	longest[4096] = 'a';
	longest[4097] = '\0';
	assert_int_equal(sp_config_set(c, "logfile", longest, err, sizeof(err)), SP_ERR_RANGE);
	assert_contains(err, "logfile: '");
	assert_contains(err, "...' is too long (4097 bytes; at most 4096)");
	assert_int_equal(strlen(c->logfile), 4096);
	free(longest);
}

static void test_choice_string(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	assert_int_equal(sp_config_set(c, "loglevel", "DEBUG", err, sizeof(err)), 0);
	assert_string_equal(c->loglevel, "debug");
	assert_int_equal(sp_config_set(c, "loglevel", "verbose", err, sizeof(err)), SP_ERR_INVAL);
	assert_string_equal(err, "loglevel: 'verbose' is not one of debug|info|warn|error");
	assert_string_equal(c->loglevel, "debug");
}

static void test_enum(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	assert_int_equal(sp_config_set(c, "fsync", "batch", err, sizeof(err)), 0);
	assert_int_equal(c->fsync, SP_FSYNC_BATCH);
	assert_int_equal(sp_config_set(c, "fsync", "OFF", err, sizeof(err)), 0);
	assert_int_equal(c->fsync, SP_FSYNC_OFF);
	expect_format(c, "fsync", "off");
	assert_int_equal(sp_config_set(c, "fsync", "always", err, sizeof(err)), 0);
	assert_int_equal(c->fsync, SP_FSYNC_ALWAYS);

	assert_int_equal(sp_config_set(c, "fsync", "sometimes", err, sizeof(err)), SP_ERR_INVAL);
	assert_string_equal(err, "fsync: 'sometimes' is not one of always|batch|off");
	assert_int_equal(sp_config_set(c, "fsync", "", err, sizeof(err)), SP_ERR_INVAL);
	assert_int_equal(sp_config_set(c, "fsync", "alwaysx", err, sizeof(err)), SP_ERR_INVAL);
	assert_int_equal(sp_config_set(c, "fsync", "alway", err, sizeof(err)), SP_ERR_INVAL);
	assert_int_equal(c->fsync, SP_FSYNC_ALWAYS);
}

static void test_int_and_uint(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	assert_int_equal(sp_config_set(c, "port", "7400", err, sizeof(err)), 0);
	assert_int_equal(c->port, 7400);
	assert_int_equal(sp_config_set(c, "port", "007401", err, sizeof(err)), 0);
	assert_int_equal(c->port, 7401);

	assert_int_equal(sp_config_set(c, "port", "70000", err, sizeof(err)), SP_ERR_RANGE);
	assert_string_equal(err, "port: '70000' is out of range (1..65535)");
	assert_int_equal(sp_config_set(c, "port", "abc", err, sizeof(err)), SP_ERR_INVAL);
	assert_string_equal(err, "port: 'abc' is not an integer (1..65535)");
	/* No signs, spaces, fractions, hex or suffixes on plain integers. */
	static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "1.0", "0x10", "1k", "1e3"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sp_config_set(c, "port", bad[i], err, sizeof(err)), SP_ERR_INVAL);
	/* Larger than 64 bits is out of range, not a crash or a wrap. */
	assert_int_equal(sp_config_set(c, "port", "99999999999999999999999", err, sizeof(err)),
			 SP_ERR_RANGE);
	assert_int_equal(sp_config_set(c, "maxclients", "18446744073709551616", err, sizeof(err)),
			 SP_ERR_RANGE);
	assert_int_equal(c->port, 7401);

	assert_int_equal(sp_config_set(c, "timeout", "300", err, sizeof(err)), 0);
	assert_int_equal(c->timeout_s, 300);
}

static void test_size(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	assert_int_equal(sp_config_set(c, "map-size", "10gb", err, sizeof(err)), 0);
	assert_true(c->map_size == 10 * GB);
	expect_format(c, "map-size", "10737418240");
	assert_int_equal(sp_config_set(c, "max-value-bytes", "1234567", err, sizeof(err)), 0);
	assert_int_equal(c->max_value_bytes, 1234567);

	assert_int_equal(sp_config_set(c, "map-size", "2tb", err, sizeof(err)), SP_ERR_RANGE);
	assert_string_equal(err, "map-size: '2tb' is out of range (1mb..1tb)");
	assert_int_equal(sp_config_set(c, "map-size", "10xb", err, sizeof(err)), SP_ERR_INVAL);
	assert_contains(err, "map-size: '10xb' is not a size (1mb..1tb;");
	assert_int_equal(sp_config_set(c, "map-size", "99999999tb", err, sizeof(err)),
			 SP_ERR_RANGE);
	assert_string_equal(err, "map-size: '99999999tb' is out of range (1mb..1tb)");
	assert_true(c->map_size == 10 * GB);
}

static void test_parse_size(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		uint64_t bytes;
	} good[] = {
	    {"0", 0},
	    {"1", 1},
	    {"1b", 1},
	    {"1B", 1},
	    {"1k", KB},
	    {"1kb", KB},
	    {"1KB", KB},
	    {"1Kb", KB},
	    {"64kb", 64 * KB},
	    {"1m", MB},
	    {"10mb", 10 * MB},
	    {"10MB", 10 * MB},
	    {"1g", GB},
	    {"8gb", 8 * GB},
	    {"1t", TB},
	    {"1tb", TB},
	    {"1TB", TB},
	    {"16777215tb", 16777215ull * TB},
	    {"18446744073709551615", UINT64_MAX},
	    {"17179869183gb", 17179869183ull * GB},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 12345;
		assert_int_equal(sp_parse_size(good[i].text, &v), 0);
		assert_true(v == good[i].bytes);
	}

	static const char *const bad[] = {
	    "",
	    "kb",
	    "b",
	    "1x",
	    "1kbb",
	    "1bb",
	    " 1",
	    "1 ",
	    "1 kb",
	    "-1",
	    "+1",
	    "1.5mb",
	    "0x10",
	    "1kib",
	    "1pb",
	    "1e3",
	    "16777216tb",	    /* 2^64: one past the largest */
	    "18446744073709551616", /* likewise, in bytes */
	    "17179869184gb",
	    "99999999999999999999999999mb",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 12345;
		int rc = sp_parse_size(bad[i], &v);
		if (rc != SP_ERR_RANGE)
			print_error("sp_parse_size(\"%s\") = %d\n", bad[i], rc);
		assert_int_equal(rc, SP_ERR_RANGE);
		assert_true(v == 12345);
	}
}

/*
 * Every numeric setting, at both ends of its range and one past each. The
 * ranges here are copied from config.h by hand, so a change to the table
 * that the header does not document fails this test.
 */
static void test_range_boundaries(void **state)
{
	struct sp_config *c = *state;
	static const struct {
		const char *name;
		uint64_t min, max;
	} ranges[] = {
	    {"port", 1, 65535},
	    {"tcp-backlog", 1, 65535},
	    {"maxclients", 1, 100000},
	    {"timeout", 0, 2147483647},
	    {"map-size", 1 * MB, 1 * TB},
	    {"fsync-interval-ms", 1, 60000},
	    {"active-expire-hz", 1, 500},
	    {"max-bulk-len", 1 * KB, 2 * GB},
	    {"max-args", 1, 8 * 1048576},
	    {"max-inline-len", 1 * KB, 16 * MB},
	    {"max-value-bytes", 1, 2 * GB},
	    {"max-query-buffer", 1 * MB, 4 * GB},
	    {"max-output-buffer", 64 * KB, 4 * GB},
	};
	char err[256], text[32];
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		const char *name = ranges[i].name;
		const uint64_t edges[] = {ranges[i].min, ranges[i].max};
		for (size_t e = 0; e < 2; e++) {
			snprintf(text, sizeof(text), "%llu", (unsigned long long)edges[e]);
			int rc = sp_config_set(c, name, text, err, sizeof(err));
			if (rc)
				print_error("%s %s: %s\n", name, text, err);
			assert_int_equal(rc, 0);
			expect_format(c, name, text);
		}
		/* max+1 */
		snprintf(text, sizeof(text), "%llu", (unsigned long long)ranges[i].max + 1);
		assert_int_equal(sp_config_set(c, name, text, err, sizeof(err)), SP_ERR_RANGE);
		assert_contains(err, name);
		assert_contains(err, "is out of range");
		/* min-1: below zero is not a number at all. */
		if (ranges[i].min > 0) {
			snprintf(text, sizeof(text), "%llu", (unsigned long long)ranges[i].min - 1);
			assert_int_equal(sp_config_set(c, name, text, err, sizeof(err)),
					 SP_ERR_RANGE);
			assert_contains(err, "is out of range");
		} else {
			assert_int_equal(sp_config_set(c, name, "-1", err, sizeof(err)),
					 SP_ERR_INVAL);
		}
		/* The value after the refusals is still the max. */
		snprintf(text, sizeof(text), "%llu", (unsigned long long)ranges[i].max);
		expect_format(c, name, text);
	}
}

static void test_size_boundaries_with_suffixes(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	assert_int_equal(sp_config_set(c, "map-size", "1mb", err, sizeof(err)), 0);
	assert_int_equal(sp_config_set(c, "map-size", "1tb", err, sizeof(err)), 0);
	assert_int_equal(sp_config_set(c, "map-size", "1023kb", err, sizeof(err)), SP_ERR_RANGE);
	assert_int_equal(sp_config_set(c, "map-size", "1025gb", err, sizeof(err)), SP_ERR_RANGE);
	assert_int_equal(sp_config_set(c, "max-output-buffer", "64k", err, sizeof(err)), 0);
	assert_int_equal(sp_config_set(c, "max-output-buffer", "63k", err, sizeof(err)),
			 SP_ERR_RANGE);
	assert_string_equal(err, "max-output-buffer: '63k' is out of range (64kb..4gb)");
	assert_int_equal(sp_config_set(c, "max-value-bytes", "0", err, sizeof(err)), SP_ERR_RANGE);
	assert_string_equal(err, "max-value-bytes: '0' is out of range (1..2gb)");
}

static void test_names(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	/* Case-insensitive, '_' and '-' equal. */
	assert_int_equal(sp_config_set(c, "MAP_SIZE", "2gb", err, sizeof(err)), 0);
	assert_true(c->map_size == 2 * GB);
	assert_int_equal(sp_config_set(c, "Fsync-Interval_MS", "7", err, sizeof(err)), 0);
	assert_int_equal(c->fsync_interval_ms, 7);
	char *v = sp_config_format(c, "max_bulk_len");
	assert_non_null(v);
	free(v);

	assert_int_equal(sp_config_set(c, "prot", "1", err, sizeof(err)), SP_ERR_NOTFOUND);
	assert_string_equal(err, "unknown setting 'prot' (did you mean 'port'?)");
	assert_int_equal(sp_config_set(c, "zzzzzz", "1", err, sizeof(err)), SP_ERR_NOTFOUND);
	assert_string_equal(err, "unknown setting 'zzzzzz'");
	/* The field name is not an alias of "timeout". */
	assert_int_equal(sp_config_set(c, "timeout_s", "1", err, sizeof(err)), SP_ERR_NOTFOUND);
	assert_int_equal(sp_config_set(c, "", "1", err, sizeof(err)), SP_ERR_NOTFOUND);
	assert_null(sp_config_format(c, "nope"));

	assert_int_equal(sp_config_set(c, "port", NULL, err, sizeof(err)), SP_ERR_INVAL);
	assert_string_equal(err, "port: missing value");

	/* A NULL or empty error buffer is allowed. */
	assert_int_equal(sp_config_set(c, "port", "0", NULL, 0), SP_ERR_RANGE);
	assert_int_equal(sp_config_set(c, "nope", "0", err, 0), SP_ERR_NOTFOUND);

	/* A long bad value is quoted cut short, and the buffer never overflows. */
	char big[300];
	memset(big, '9', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char small[40];
	assert_int_equal(sp_config_set(c, "port", big, small, sizeof(small)), SP_ERR_RANGE);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_int_equal(sp_config_set(c, "port", big, err, sizeof(err)), SP_ERR_RANGE);
	assert_contains(err, "...' is out of range (1..65535)");
}

static void test_file_good(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	const char *path = write_temp("# spectrad settings\n"
				      "\n"
				      "   # an indented comment\n"
				      "port 7400\n"
				      "\tbind   0.0.0.0  \n"
				      "map_size 16gb\n"
				      "FSYNC batch\n"
				      "requirepass \"two words # not a comment\"\n"
				      "logfile \"\"\n"
				      "dir \"/tmp/a \\\"quoted\\\" \\\\ dir\"\n"
				      "port 7401\n"	/* the last of a name wins */
				      "loglevel warn"); /* no newline at the end */
	int rc = sp_config_load_file(c, path, err, sizeof(err));
	remove(path);
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	assert_int_equal(c->port, 7401);
	assert_string_equal(c->bind, "0.0.0.0");
	assert_true(c->map_size == 16 * GB);
	assert_int_equal(c->fsync, SP_FSYNC_BATCH);
	assert_string_equal(c->requirepass, "two words # not a comment");
	assert_string_equal(c->logfile, "");
	assert_string_equal(c->dir, "/tmp/a \"quoted\" \\ dir");
	assert_string_equal(c->loglevel, "warn");
}

static void test_file_crlf_and_bom(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	const char *path = write_temp("\xef\xbb\xbfport 7500\r\n"
				      "# comment\r\n"
				      "\r\n"
				      "requirepass \"pw\"\r\n"
				      "fsync off\r\n");
	int rc = sp_config_load_file(c, path, err, sizeof(err));
	remove(path);
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	assert_int_equal(c->port, 7500);
	assert_string_equal(c->requirepass, "pw");
	assert_int_equal(c->fsync, SP_FSYNC_OFF);
}

/* load_bad loads text as a file, expects error rc, and checks that the
 * message is "<path>:<line>: <want>". */
static void load_bad(struct sp_config *c, const char *text, int want_rc, int line, const char *want)
{
	char err[256], expected[512];
	const char *path = write_temp(text);
	int rc = sp_config_load_file(c, path, err, sizeof(err));
	snprintf(expected, sizeof(expected), "%s:%d: %s", path, line, want);
	remove(path);
	if (rc != want_rc || strcmp(err, expected) != 0)
		print_error("rc %d, \"%s\"; wanted %d, \"%s\"\n", rc, err, want_rc, expected);
	assert_int_equal(rc, want_rc);
	assert_string_equal(err, expected);
}

static void test_file_bad(void **state)
{
	struct sp_config *c = *state;
	load_bad(c, "port 7400\nprot 7401\n", SP_ERR_NOTFOUND, 2,
		 "unknown setting 'prot' (did you mean 'port'?)");
	load_bad(c, "# x\n\nport 70000\n", SP_ERR_RANGE, 3,
		 "port: '70000' is out of range (1..65535)");
	load_bad(c, "fsync sometimes\r\n", SP_ERR_INVAL, 1,
		 "fsync: 'sometimes' is not one of always|batch|off");
	load_bad(c, "port\n", SP_ERR_INVAL, 1, "port: missing value");
	load_bad(c, "port   \t\r\n", SP_ERR_INVAL, 1, "port: missing value");
	load_bad(c, "requirepass two words\n", SP_ERR_INVAL, 1,
		 "requirepass: unexpected text after the value: 'words' (quote a value "
		 "that contains spaces)");
	load_bad(c, "port 7400 # client port\n", SP_ERR_INVAL, 1,
		 "port: unexpected text after the value: '# client port' (quote a value "
		 "that contains spaces)");
	load_bad(c, "requirepass \"open\n", SP_ERR_INVAL, 1,
		 "requirepass: unterminated quoted value");
	load_bad(c, "requirepass \"a\"b\n", SP_ERR_INVAL, 1,
		 "requirepass: unexpected text after the value: 'b' (quote a value that "
		 "contains spaces)");
	load_bad(c, "dir \"a\\nb\"\n", SP_ERR_INVAL, 1,
		 "dir: unknown escape '\\n' in quoted value (only \\\" and \\\\ are allowed)");
	load_bad(c, "port \"\"\n", SP_ERR_INVAL, 1, "port: '' is not an integer (1..65535)");
	load_bad(c, "port=7400\n", SP_ERR_NOTFOUND, 1, "unknown setting 'port=7400'");

	/* Nothing after the first bad line is applied; what came before is. */
	char err[256];
	const char *path = write_temp("port 7600\nbogus 1\nport 7700\n");
	assert_int_equal(sp_config_load_file(c, path, err, sizeof(err)), SP_ERR_NOTFOUND);
	remove(path);
	assert_int_equal(c->port, 7600);
}

static void test_file_missing(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	int rc = sp_config_load_file(c, "/nonexistent/spectra.conf", err, sizeof(err));
	assert_int_equal(rc, -ENOENT);
	assert_string_equal(err, "/nonexistent/spectra.conf: No such file or directory");
	/* A directory is not a settings file. */
	rc = sp_config_load_file(c, "/tmp", err, sizeof(err));
	assert_int_equal(rc, -EISDIR);
	assert_contains(err, "/tmp: ");
}

static void test_file_nul_byte(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	char path[] = "/tmp/test_config.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "port 1\nport 2\0\n", 15), 15);
	close(fd);
	assert_int_equal(sp_config_load_file(c, path, err, sizeof(err)), SP_ERR_INVAL);
	remove(path);
	assert_contains(err, ":2: line contains a NUL byte");
}

static int load_args(struct sp_config *c, char *err, size_t errlen, int argc, ...)
{
	char *argv[32];
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc && i < 32; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	return sp_config_load_args(c, argc, argv, err, errlen);
}

static void test_args(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	assert_int_equal(load_args(c, err, sizeof(err), 0), 0);
	assert_int_equal(load_args(c, err, sizeof(err), 6, "--port", "7400", "--map-size=2gb",
				   "--requirepass", "", "--fsync=batch"),
			 0);
	assert_int_equal(c->port, 7400);
	assert_true(c->map_size == 2 * GB);
	assert_string_equal(c->requirepass, "");
	assert_int_equal(c->fsync, SP_FSYNC_BATCH);
	/* The last of a name wins; "=" may be part of the value. */
	assert_int_equal(
	    load_args(c, err, sizeof(err), 4, "--port=7401", "--port", "7402", "--requirepass=a=b"),
	    0);
	assert_int_equal(c->port, 7402);
	assert_string_equal(c->requirepass, "a=b");
	/* A value starting with "--" needs the "=" form. */
	assert_int_equal(load_args(c, err, sizeof(err), 1, "--requirepass=--x"), 0);
	assert_string_equal(c->requirepass, "--x");
}

static void test_args_bad(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	assert_int_equal(load_args(c, err, sizeof(err), 2, "--port", "70000"), SP_ERR_RANGE);
	assert_string_equal(err, "--port: '70000' is out of range (1..65535)");
	assert_int_equal(load_args(c, err, sizeof(err), 2, "--fsync", "sometimes"), SP_ERR_INVAL);
	assert_string_equal(err, "--fsync: 'sometimes' is not one of always|batch|off");
	assert_int_equal(load_args(c, err, sizeof(err), 2, "--prot", "1"), SP_ERR_NOTFOUND);
	assert_string_equal(err, "unknown setting '--prot' (did you mean '--port'?)");
	assert_int_equal(load_args(c, err, sizeof(err), 1, "--port"), SP_ERR_INVAL);
	assert_string_equal(err, "--port: missing value");
	assert_int_equal(load_args(c, err, sizeof(err), 3, "--port", "--bind", "x"), SP_ERR_INVAL);
	assert_string_equal(err, "--port: missing value");
	assert_int_equal(load_args(c, err, sizeof(err), 1, "--config"), SP_ERR_INVAL);
	assert_string_equal(err, "--config: missing value");
	assert_int_equal(load_args(c, err, sizeof(err), 1, "spectrad"), SP_ERR_INVAL);
	assert_string_equal(err, "unexpected argument 'spectrad' (settings are given as --name "
				 "value)");
	assert_int_equal(load_args(c, err, sizeof(err), 2, "-p", "1"), SP_ERR_INVAL);
	assert_int_equal(load_args(c, err, sizeof(err), 1, "--"), SP_ERR_INVAL);
	assert_int_equal(load_args(c, err, sizeof(err), 1, "--=1"), SP_ERR_INVAL);
	assert_int_equal(load_args(c, err, sizeof(err), 2, "--nope", "1"), SP_ERR_NOTFOUND);
	assert_int_equal(load_args(c, err, sizeof(err), 1, "--nope"), SP_ERR_NOTFOUND);
	assert_string_equal(err, "unknown setting '--nope'");
	assert_int_equal(load_args(c, err, sizeof(err), 2, "--config", "/nonexistent.conf"),
			 -ENOENT);
	assert_string_equal(err, "/nonexistent.conf: No such file or directory");
	assert_int_equal(c->port, 7379);
}

static void test_args_override_file(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	const char *path = write_temp("port 7000\nfsync off\nbind 0.0.0.0\n");
	char *p = strdup(path);
	/* --config comes last, yet the flags before it win over the file. */
	int rc = load_args(c, err, sizeof(err), 4, "--port", "7100", "--config", p);
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	assert_int_equal(c->port, 7100);
	assert_int_equal(c->fsync, SP_FSYNC_OFF);
	assert_string_equal(c->bind, "0.0.0.0");

	/* --config=FILE works too; a bad value in the file names file and line. */
	const char *bad = write_temp("port 7000\nfsync sometimes\n");
	char *b = strdup(bad);
	char flag[128];
	snprintf(flag, sizeof(flag), "--config=%s", b);
	rc = load_args(c, err, sizeof(err), 3, "--port", "7200", flag);
	assert_int_equal(rc, SP_ERR_INVAL);
	char want[256];
	snprintf(want, sizeof(want), "%s:2: fsync: 'sometimes' is not one of always|batch|off", b);
	assert_string_equal(err, want);
	remove(p);
	remove(b);
	free(p);
	free(b);
}

/* round_trip checks that every setting's formatted value, set again on a
 * fresh config, formats the same. */
static void round_trip(const struct sp_config *from)
{
	char err[256];
	struct sp_config to;
	sp_config_init(&to);
	for (size_t i = 0; i < sp_config_count(); i++) {
		const char *name = sp_config_name(i);
		char *text = sp_config_format(from, name);
		assert_non_null(text);
		int rc = sp_config_set(&to, name, text, err, sizeof(err));
		if (rc)
			print_error("%s '%s': %s\n", name, text, err);
		assert_int_equal(rc, 0);
		char *again = sp_config_format(&to, name);
		assert_string_equal(again, text);
		free(again);
		free(text);
	}
	/* The fields themselves agree, not just their text. */
	assert_string_equal(to.bind, from->bind);
	assert_int_equal(to.port, from->port);
	assert_int_equal(to.tcp_backlog, from->tcp_backlog);
	assert_true(to.maxclients == from->maxclients);
	assert_true(to.timeout_s == from->timeout_s);
	assert_string_equal(to.dir, from->dir);
	assert_true(to.map_size == from->map_size);
	assert_int_equal(to.fsync, from->fsync);
	assert_true(to.fsync_interval_ms == from->fsync_interval_ms);
	assert_true(to.active_expire_hz == from->active_expire_hz);
	assert_true(to.max_bulk_len == from->max_bulk_len);
	assert_true(to.max_args == from->max_args);
	assert_true(to.max_inline_len == from->max_inline_len);
	assert_true(to.max_value_bytes == from->max_value_bytes);
	assert_true(to.max_query_buffer == from->max_query_buffer);
	assert_true(to.max_output_buffer == from->max_output_buffer);
	assert_string_equal(to.requirepass, from->requirepass);
	assert_string_equal(to.logfile, from->logfile);
	assert_string_equal(to.loglevel, from->loglevel);
	assert_string_equal(to.pidfile, from->pidfile);
	assert_true(to.node_id == from->node_id);
	assert_string_equal(to.cluster_file, from->cluster_file);
	assert_int_equal(to.peer_port, from->peer_port);
	assert_true(to.election_timeout_ms == from->election_timeout_ms);
	assert_true(to.heartbeat_ms == from->heartbeat_ms);
	assert_true(to.max_clock_drift_ppm == from->max_clock_drift_ppm);
	assert_true(to.request_timeout_ms == from->request_timeout_ms);
	assert_true(to.snapshot_every == from->snapshot_every);
	assert_true(to.snapshot_interval_ms == from->snapshot_interval_ms);
	assert_int_equal(to.admin_commands, from->admin_commands);
	assert_int_equal(to.default_mode, from->default_mode);
	sp_config_free(&to);
}

static void test_format_round_trip(void **state)
{
	struct sp_config *c = *state;
	char err[256];
	round_trip(c); /* the defaults */

	/* Then a value other than the default for every setting. */
	static const char *const changed[][2] = {
	    {"bind", "::1"},
	    {"port", "65535"},
	    {"tcp-backlog", "1"},
	    {"maxclients", "100000"},
	    {"timeout", "2147483647"},
	    {"dir", "/var/lib/spectra data"},
	    {"map-size", "1tb"},
	    {"fsync", "batch"},
	    {"fsync-interval-ms", "60000"},
	    {"active-expire-hz", "500"},
	    {"max-bulk-len", "1kb"},
	    {"max-args", "8388608"},
	    {"max-inline-len", "16mb"},
	    {"max-value-bytes", "1"},
	    {"max-query-buffer", "4gb"},
	    {"max-output-buffer", "65537"},
	    {"requirepass", "pass word \"quoted\""},
	    {"logfile", "/tmp/spectra.log"},
	    {"loglevel", "error"},
	    {"pidfile", "/tmp/spectra.pid"},
	    {"node-id", "7"},
	    {"cluster-file", "/etc/spectra/cluster.conf"},
	    {"peer-port", "17000"},
	    {"election-timeout-ms", "60000"},
	    {"heartbeat-ms", "10000"},
	    {"max-clock-drift-ppm", "0"},
	    {"request-timeout-ms", "600000"},
	    {"snapshot-every", "0"},
	    {"snapshot-interval-ms", "0"},
	    {"admin-commands", "yes"},
	    {"default-mode", "eventual"},
	    {"eventual-rf", "5"},
	    {"hint-max-age-ms", "0"},
	    {"hint-max-bytes", "10mb"},
	    {"anti-entropy-ms", "0"},
	    {"anti-entropy-keys", "7"},
	    {"max-clock-skew-ms", "0"},
	    {"max-set-members", "12"},
	    {"max-member-bytes", "1kb"},
	    {"max-siblings", "3"},
	    {"trace-file", "trace.jsonl"},
	    {"read-repair-percent", "100"},
	    {"http-port", "9379"},
	    {"http-bind", "0.0.0.0"},
	    {"stale-sample-every", "7"},
	};
	size_t n = sizeof(changed) / sizeof(changed[0]);
	assert_int_equal(n, sp_config_count());
	for (size_t i = 0; i < n; i++) {
		char *before = sp_config_format(c, changed[i][0]);
		int rc = sp_config_set(c, changed[i][0], changed[i][1], err, sizeof(err));
		if (rc)
			print_error("%s: %s\n", changed[i][0], err);
		assert_int_equal(rc, 0);
		char *after = sp_config_format(c, changed[i][0]);
		assert_string_not_equal(before, after);
		free(before);
		free(after);
	}
	expect_format(c, "map-size", "1099511627776");
	expect_format(c, "max-bulk-len", "1024");
	expect_format(c, "fsync", "batch");
	round_trip(c);
}

static void test_iteration(void **state)
{
	struct sp_config *c = *state;
	static const char *const expected[] = {
	    "bind",
	    "port",
	    "tcp-backlog",
	    "maxclients",
	    "timeout",
	    "dir",
	    "map-size",
	    "fsync",
	    "fsync-interval-ms",
	    "active-expire-hz",
	    "max-bulk-len",
	    "max-args",
	    "max-inline-len",
	    "max-value-bytes",
	    "max-query-buffer",
	    "max-output-buffer",
	    "requirepass",
	    "logfile",
	    "loglevel",
	    "pidfile",
	    "node-id",
	    "cluster-file",
	    "peer-port",
	    "election-timeout-ms",
	    "heartbeat-ms",
	    "max-clock-drift-ppm",
	    "request-timeout-ms",
	    "snapshot-every",
	    "snapshot-interval-ms",
	    "admin-commands",
	    "default-mode",
	    "eventual-rf",
	    "hint-max-age-ms",
	    "hint-max-bytes",
	    "anti-entropy-ms",
	    "anti-entropy-keys",
	    "max-clock-skew-ms",
	    "max-set-members",
	    "max-member-bytes",
	    "max-siblings",
	    "trace-file",
	    "read-repair-percent",
	    "http-port",
	    "http-bind",
	    "stale-sample-every",
	};
	size_t n = sizeof(expected) / sizeof(expected[0]);
	assert_int_equal(sp_config_count(), n);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(sp_config_name(i), expected[i]);
		const char *help = sp_config_help(i);
		assert_non_null(help);
		assert_contains(help, ", default ");
		assert_true(strlen(help) > 20);
		assert_null(strchr(help, '\n'));
		char *v = sp_config_format(c, expected[i]);
		assert_non_null(v);
		free(v);
	}
	assert_null(sp_config_name(n));
	assert_null(sp_config_help(n));
	/* The help line carries type, range and default from the table. */
	assert_string_equal(sp_config_help(1),
			    "integer 1..65535, default 7379: TCP port for clients");
	assert_contains(sp_config_help(6), "size 1mb..1tb, default 8gb: ");
	assert_contains(sp_config_help(7), "always|batch|off, default always: ");
	assert_contains(sp_config_help(16), "string, default \"\": ");
	assert_contains(sp_config_help(18), "debug|info|warn|error, default info: ");
}

static void test_config_free(void **state)
{
	(void)state;
	struct sp_config c;
	sp_config_init(&c);
	sp_config_free(&c);
	assert_null(c.bind);
	sp_config_free(&c); /* twice is harmless */
	sp_config_free(NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_config, teardown_config)
	const struct CMUnitTest tests[] = {
	    T(test_defaults),
	    T(test_string),
	    T(test_choice_string),
	    T(test_enum),
	    T(test_int_and_uint),
	    T(test_size),
	    T(test_parse_size),
	    T(test_range_boundaries),
	    T(test_size_boundaries_with_suffixes),
	    T(test_names),
	    T(test_file_good),
	    T(test_file_crlf_and_bom),
	    T(test_file_bad),
	    T(test_file_missing),
	    T(test_file_nul_byte),
	    T(test_args),
	    T(test_args_bad),
	    T(test_args_override_file),
	    T(test_format_round_trip),
	    T(test_iteration),
	    T(test_config_free),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
