/*
 * testnode: real nodes for tests, and the clients that talk to them.
 *
 * Node tests (tests/cluster) start real spectrad processes on loopback and
 * speak the real protocol to them, as Redis's own test suite does. This
 * module starts a node on a free 127.0.0.1 port with a fresh temporary data
 * directory (fork/exec of $SPECTRAD, default "bin/spectrad", its stdout and
 * stderr going to <tmp>/node.log), waits until it answers PING, restarts it
 * on the same directory and port, stops it with SIGTERM or kills it with
 * SIGKILL, and removes the directory when the test ends. It also gives
 * hiredis connections, a raw socket for byte-exact protocol tests, and
 * assertions over replies.
 *
 * Differential testing: with SPECTRA_TEST_AGAINST=redis in the environment
 * the same tests run against redis-server ($REDIS_SERVER, default
 * "redis-server"), started with --save '' --appendonly no --databases 1.
 * The few spectra settings that Redis has under another name are translated
 * (see tn_node_start); a setting Redis lacks fails the test with a message,
 * and a test that checks spectra-only behaviour says so with
 * TN_SPECTRA_ONLY(), which skips it against Redis. This is how the suite's
 * expectations are checked against real Redis 7 before spectrad runs them.
 *
 * Failure handling: these helpers are assertions, like cmocka's own: a
 * failure prints what was expected and what came back, dumps the tail of
 * every live node's log, and fails the current test. They must only be
 * called from a test run through TN_TEST (or between tn_test_begin and
 * tn_test_end), which registers every node and connection made during the
 * test so the teardown can release them even when the test fails halfway,
 * dump logs when it failed, and fail the test when a node died on its own.
 * A node's process gets SIGKILL if the test process dies (PR_SET_PDEATHSIG),
 * and every test has a time limit ($SPECTRA_TEST_TIMEOUT_S, default 120 s).
 *
 * What this module must not do: bind anything but 127.0.0.1, or leave a
 * process or a temporary directory behind on a normal exit.
 */
#ifndef SP_TESTS_TESTNODE_H
#define SP_TESTS_TESTNODE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#define TN_MAX_SETTINGS 32

/* One node: a spectrad (or redis-server) process and its directory. */
struct tn_node {
	pid_t pid;		       /* running process, 0 when stopped */
	int port;		       /* 127.0.0.1 port; kept across restarts */
	bool is_redis;		       /* started as redis-server (SPECTRA_TEST_AGAINST) */
	int exit_status;	       /* wait status of the last process that ended */
	bool crashed;		       /* a process exited without being stopped */
	int nsettings;		       /* extra settings, spectra names */
	char *names[TN_MAX_SETTINGS];  /* owned */
	char *values[TN_MAX_SETTINGS]; /* owned */
	char root[256];		       /* temporary directory, removed with the node */
	char dir[300];		       /* data directory: <root>/data */
	char log_path[300];	       /* <root>/node.log, appended to across restarts */
	char pid_path[300];	       /* <root>/node.pid, the --pidfile */
	struct tn_node *next;	       /* registry of the current test */
};

/* A raw client socket, for byte-exact protocol tests. */
struct tn_raw {
	int fd;	   /* -1 once closed */
	char *buf; /* received bytes not yet returned; owned */
	size_t len;
	size_t cap;
	struct tn_raw *next; /* registry of the current test */
};

/* ---------------------------------------------------------------------- */
/* Test cases                                                              */

/* Per-test state behind TN_TEST; tests reach it through tn_test_node. */
struct tn_case {
	CMUnitTestFunction fn; /* the test itself */
	bool start_node;       /* start a default node before the test */
	bool passed;	       /* set when fn returned */
	struct tn_node *node;  /* the default node, or NULL */
};

void tn__run(void **state);
int tn__setup(void **state);
int tn__teardown(void **state);

/*
 * TN_TEST(fn) is a cmocka test entry that runs fn with a fresh default
 * node (no extra settings) started before it; TN_TEST_BARE(fn) starts no
 * node, for tests that start their own. Either way everything the test
 * started is stopped and removed afterwards. Use inside the array given to
 * cmocka_run_group_tests, in a function (the case state is a compound
 * literal that lives as long as the enclosing block).
 */
/* clang-format off */
#define TN_TEST(f) \
	{#f, tn__run, tn__setup, tn__teardown, &(struct tn_case){f, true, false, NULL}}
#define TN_TEST_BARE(f) \
	{#f, tn__run, tn__setup, tn__teardown, &(struct tn_case){f, false, false, NULL}}
/* clang-format on */

/* tn_test_node returns the default node of a TN_TEST test (borrowed; it is
 * stopped and freed by the teardown). */
struct tn_node *tn_test_node(void **state);

/* tn_against_redis is true when SPECTRA_TEST_AGAINST=redis. */
bool tn_against_redis(void);

/* TN_SPECTRA_ONLY(why) skips the current test when running against Redis:
 * for behaviour only spectra has (its own settings and limits). */
#define TN_SPECTRA_ONLY(why)                                                                       \
	do {                                                                                       \
		if (tn_against_redis()) {                                                          \
			print_message("    spectra-only, skipped against redis: %s\n", (why));     \
			tn__mark_skipped();                                                        \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

/*
 * tn_seed returns the seed for this run's random choices: $SPECTRA_TEST_SEED
 * if set, else one drawn from the clock, printed once. Tests that fail
 * print it again with the node logs, so a failure can be replayed.
 */
unsigned tn_seed(void);

/* ---------------------------------------------------------------------- */
/* Nodes                                                                   */

/*
 * tn_node_start starts a node with extra settings given as name, value
 * pairs ending with NULL, spectra names without "--", e.g.
 * tn_node_start("maxclients", "3", "requirepass", "pw", NULL). bind, port,
 * dir and pidfile are set by this module. Returns once the node answers
 * PING. Against Redis, settings are translated: requirepass, maxclients,
 * timeout as is; max-bulk-len -> proto-max-bulk-len; max-query-buffer ->
 * client-query-buffer-limit; max-output-buffer -> client-output-buffer-limit
 * "normal <v> <v> 0"; active-expire-hz -> hz; fsync always|batch|off ->
 * appendonly yes with appendfsync always|everysec|no (Redis also writes its
 * AOF before replying); map-size, fsync-interval-ms, loglevel are dropped.
 * Any other setting fails the test (mark it TN_SPECTRA_ONLY).
 * Fails the test (with the log tail) if the process dies or does not answer
 * within $SPECTRA_TEST_START_TIMEOUT_S (default 20 s). The node is owned by
 * the current test and released by its teardown (or tn_node_free).
 */
struct tn_node *tn_node_start(const char *name, ...);

/* tn_node_start_argv is tn_node_start with n pairs in an array. */
struct tn_node *tn_node_start_argv(int n, const char *const *names, const char *const *values);

/* tn_node_restart stops the node with SIGTERM if it runs, then starts it
 * again with the same settings, directory and port. */
void tn_node_restart(struct tn_node *n);

/*
 * tn_node_stop sends SIGTERM and waits for the process (failing the test
 * after 20 s, when it is killed). Returns the wait status (see
 * waitpid(2)); tests check WIFEXITED && WEXITSTATUS == 0 for a clean
 * shutdown. A stopped node keeps its directory.
 */
int tn_node_stop(struct tn_node *n);

/* tn_node_kill sends SIGKILL and reaps the process. */
void tn_node_kill(struct tn_node *n);

/* tn_node_alive is false when the process has exited (it is then reaped and
 * its status kept in n->exit_status). */
bool tn_node_alive(struct tn_node *n);

/* tn_node_rss_kb returns the process's resident set size in KiB, or -1. */
long tn_node_rss_kb(const struct tn_node *n);

/* tn_node_dump_log prints the last `lines` lines of the node's log to
 * stderr. */
void tn_node_dump_log(const struct tn_node *n, int lines);

/*
 * tn_run_spectrad runs $SPECTRAD (or redis-server against Redis) with the
 * given NULL-terminated arguments (after argv[0]) and no node management,
 * for tests of start-up failures: it waits up to timeout_ms, captures
 * stdout and stderr into out (NUL-terminated, truncated to outlen), and
 * returns the wait status, or -1 if the process had to be killed at the
 * timeout (it is then reaped).
 */
int tn_run_spectrad(const char *const *args, char *out, size_t outlen, int timeout_ms);

/* tn_node_free kills the node if it runs, removes its directory, and
 * forgets it. NULL is ok. Tests rarely call it: the teardown does. */
void tn_node_free(struct tn_node *n);

/* ---------------------------------------------------------------------- */
/* hiredis clients (RESP2)                                                 */

/*
 * tn_connect connects a hiredis context to the node, with a 10 s I/O
 * timeout so a hung server fails the test rather than hanging it. RESP2:
 * hiredis 0.14 cannot parse RESP3, so RESP3 is tested with tn_raw. Fails the
 * test if it cannot connect. The context is owned by the current test and
 * freed by its teardown, or earlier by tn_disconnect.
 */
redisContext *tn_connect(const struct tn_node *n);

/* tn_disconnect frees a context from tn_connect. NULL is ok. */
void tn_disconnect(redisContext *c);

/*
 * tn_command runs a command (redisCommand's format) and returns the reply,
 * owned by the caller (freeReplyObject). Fails the test if the connection
 * broke (no reply). tn_command_argv is the same with an argument vector.
 */
#define tn_command(c, ...) tn__command(__FILE__, __LINE__, (c), __VA_ARGS__)
#define tn_command_argv(c, argc, argv, lens)                                                       \
	tn__command_argv(__FILE__, __LINE__, (c), (argc), (argv), (lens))

/*
 * Assertions over one command's reply: each runs the command given by a
 * redisCommand format and its arguments, checks the reply's type and value,
 * frees it, and on a mismatch prints the format, what was expected and
 * what came back, dumps the node logs and fails the test.
 *   tn_expect_status(c, "OK", fmt, ...)        +OK
 *   tn_expect_int(c, 5, fmt, ...)              :5
 *   tn_expect_bulk(c, "v", fmt, ...)           $1 v (a C string)
 *   tn_expect_bulk_len(c, p, len, fmt, ...)    any bytes
 *   tn_expect_nil(c, fmt, ...)                 $-1
 *   tn_expect_error(c, "ERR syntax error", fmt, ...)  the whole text
 *   tn_expect_error_prefix(c, "ERR key too long", fmt, ...)
 *   tn_expect_array_len(c, n, fmt, ...)        *n, any elements
 */
#define tn_expect_status(c, want, ...)                                                             \
	tn__expect_status(__FILE__, __LINE__, (c), (want), __VA_ARGS__)
#define tn_expect_int(c, want, ...) tn__expect_int(__FILE__, __LINE__, (c), (want), __VA_ARGS__)
#define tn_expect_bulk(c, want, ...)                                                               \
	tn__expect_bulk(__FILE__, __LINE__, (c), (want), strlen(want), __VA_ARGS__)
#define tn_expect_bulk_len(c, want, len, ...)                                                      \
	tn__expect_bulk(__FILE__, __LINE__, (c), (want), (len), __VA_ARGS__)
#define tn_expect_nil(c, ...) tn__expect_nil(__FILE__, __LINE__, (c), __VA_ARGS__)
#define tn_expect_error(c, want, ...)                                                              \
	tn__expect_error(__FILE__, __LINE__, (c), (want), false, __VA_ARGS__)
#define tn_expect_error_prefix(c, want, ...)                                                       \
	tn__expect_error(__FILE__, __LINE__, (c), (want), true, __VA_ARGS__)
#define tn_expect_array_len(c, n, ...)                                                             \
	tn__expect_array_len(__FILE__, __LINE__, (c), (n), __VA_ARGS__)

/* tn_reply_describe writes a one-line description of a reply (type and
 * value, escaped, shortened) to out. */
void tn_reply_describe(const redisReply *r, char *out, size_t outlen);

/* tn_fail prints a printf-style message, dumps the logs of the current
 * test's live nodes, and fails the test at file:line. Does not return. */
#define tn_fail(...) tn__fail(__FILE__, __LINE__, __VA_ARGS__)

/* ---------------------------------------------------------------------- */
/* Raw sockets                                                             */

/*
 * tn_raw_connect opens a plain TCP connection to the node with a 10 s
 * receive timeout. Owned by the current test (tn_raw_close frees early).
 * Fails the test if it cannot connect.
 */
struct tn_raw *tn_raw_connect(const struct tn_node *n);
void tn_raw_close(struct tn_raw *r);

/* tn_raw_send writes all len bytes (blocking). Fails the test on error. */
#define tn_raw_send(r, p, len) tn__raw_send(__FILE__, __LINE__, (r), (p), (len))
#define tn_raw_send_str(r, s)  tn__raw_send(__FILE__, __LINE__, (r), (s), strlen(s))

/*
 * tn_raw_read_reply reads exactly one complete RESP2 or RESP3 reply
 * (framing only; see tn_resp_frame) and returns its bytes, NUL-terminated
 * and owned by the caller (free()); *len gets its length. Returns NULL if
 * the server closed the connection first. Fails the test on a timeout or
 * bytes that are not RESP.
 */
#define tn_raw_read_reply(r, len) tn__raw_read_reply(__FILE__, __LINE__, (r), (len))

/* tn_raw_expect reads one reply and checks it equals the C string want
 * byte for byte (both are printed escaped on a mismatch). */
#define tn_raw_expect(r, want)		tn__raw_expect(__FILE__, __LINE__, (r), (want), strlen(want))
#define tn_raw_expect_len(r, want, len) tn__raw_expect(__FILE__, __LINE__, (r), (want), (len))

/*
 * tn_raw_closed waits up to timeout_ms for the server to close the
 * connection, discarding what it sends meanwhile. True on EOF or reset.
 */
bool tn_raw_closed(struct tn_raw *r, int timeout_ms);

/*
 * tn_raw_send_for writes the pattern p (len bytes) repeatedly without
 * reading, for up to ms milliseconds or max_bytes, whichever comes first,
 * never blocking longer than that. Returns the number of bytes written.
 * Stops early if the connection breaks.
 */
size_t tn_raw_send_for(struct tn_raw *r, const void *p, size_t len, int ms, size_t max_bytes);

/*
 * tn_resp_frame returns the length of the complete RESP2/RESP3 value at
 * p[0..len), 0 if more bytes are needed, or (size_t)-1 if the bytes are not
 * RESP. Handles every RESP3 type, including attributes (which frame
 * together with the value they precede).
 */
size_t tn_resp_frame(const char *p, size_t len);

/* tn_escape writes p[0..len) to out with \r \n \0 and non-printables escaped,
 * shortened with "..." to fit outlen. Returns out. */
char *tn_escape(const void *p, size_t len, char *out, size_t outlen);

/* ---------------------------------------------------------------------- */
/* Time                                                                    */

/* tn_now_ms is a monotonic clock in milliseconds; tn_sleep_ms sleeps. */
int64_t tn_now_ms(void);
void tn_sleep_ms(int ms);

/* ---------------------------------------------------------------------- */
/* Implementation entry points for the macros above.                       */

void tn__mark_skipped(void);
void tn__fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
redisReply *tn__command(const char *file, int line, redisContext *c, const char *fmt, ...);
redisReply *tn__command_argv(const char *file, int line, redisContext *c, int argc,
			     const char **argv, const size_t *lens);
void tn__expect_status(const char *file, int line, redisContext *c, const char *want,
		       const char *fmt, ...);
void tn__expect_int(const char *file, int line, redisContext *c, long long want, const char *fmt,
		    ...);
void tn__expect_bulk(const char *file, int line, redisContext *c, const char *want, size_t len,
		     const char *fmt, ...);
void tn__expect_nil(const char *file, int line, redisContext *c, const char *fmt, ...);
void tn__expect_error(const char *file, int line, redisContext *c, const char *want, bool prefix,
		      const char *fmt, ...);
void tn__expect_array_len(const char *file, int line, redisContext *c, size_t n, const char *fmt,
			  ...);
void tn__raw_send(const char *file, int line, struct tn_raw *r, const void *p, size_t len);
char *tn__raw_read_reply(const char *file, int line, struct tn_raw *r, size_t *len);
void tn__raw_expect(const char *file, int line, struct tn_raw *r, const char *want, size_t len);

#endif
