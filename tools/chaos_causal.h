/*
 * chaos_causal: the causal workload of `spectra chaos` (--workload
 * causal): sessions that hop between nodes carrying their session token,
 * what the run leaves for the causal checker, and the checks of the
 * cluster's state once healed.
 *
 * The cluster gets one causal keyspace, "cz". Each of K session threads
 * (named "s<i>") sends GET and SET (half each) at the default level,
 * causal, on keys "cz:0".."cz:<N-1>"; every value written is
 * "s<i>-<seq>", unique in the run. Every 5 to 20 operations, and after
 * any timeout or lost connection, a session hops: it connects to another
 * node at random and sends SESSION RESUME with the last token it holds
 * (it asks for SESSION TOKEN, pipelined, after every operation, so the
 * token it carries covers everything the session has seen that a node
 * answered). When the token misses an operation -- a write whose outcome
 * is unknown, or an ok operation whose SESSION TOKEN reply was lost --
 * the thread goes on, from the last token it holds, under a new session
 * name "s<i>.<gen+1>": the server was never told to order the session's
 * later operations after that one, so the history must not claim it.
 * What a reply means: a value, nil or +OK is ok; -TRYAGAIN
 * (the node had not yet applied what the session saw) or any other error
 * is a failure (nothing was done); no reply is unknown.
 *
 * After the run and the healing, every node's INFO causal applied vector
 * must become equal and stay so; every key is then read at LEVEL local
 * from every node and the answers must agree. The history is written as
 * JSON lines for `spectra check --model causal`, which this module runs
 * as a subprocess for the verdict: the verdict is the checker's, not this
 * module's.
 *
 * It must not start, stop or signal nodes (the nemesis's job), nor judge
 * a history itself.
 */
#ifndef SP_TOOLS_CHAOS_CAUSAL_H
#define SP_TOOLS_CHAOS_CAUSAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chaos_client.h"
#include "chaos_plan.h"
#include "local_node.h"

#define CHAOS_CZ_KEYSPACE  "cz"
#define CHAOS_CZ_VALUE_MAX 48 /* bytes of a value, with its NUL */

/* One operation as a session saw it. */
struct chaos_cz_op {
	uint64_t call_us, ret_us;	/* monotonic microseconds since the run began */
	uint64_t process;		/* the connection it ran on, unique in the run */
	uint32_t session, gen;		/* the session's name: "s<session>.<gen>" */
	uint32_t key;			/* index: "cz:<key>" */
	uint8_t write;			/* 1 SET, 0 GET */
	uint8_t outcome;		/* enum lin_outcome */
	uint8_t node;			/* index of the node asked */
	uint8_t has_value;		/* a write, or a read that found a value (else nil) */
	char value[CHAOS_CZ_VALUE_MAX]; /* written, or read when has_value */
};

/* Every session's operations, in each session's order, sessions one
 * after another. ops is owned by the history. */
struct chaos_cz_history {
	struct chaos_cz_op *ops;
	size_t n;
};

/* chaos_cz_history_free frees what h holds and empties it; a zeroed h is
 * fine. */
void chaos_cz_history_free(struct chaos_cz_history *h);

/*
 * chaos_cz_history_write writes h to path as JSON lines, one object per
 * operation: {"process", "session", "node" (1-based), "op" (read or
 * write), "key", "value" (null for a read of a missing key), "invoke",
 * "complete", "result" (ok, fail or info)}. Returns 0 or a negated errno.
 * h and path are borrowed.
 */
int chaos_cz_history_write(const struct chaos_cz_history *h, const char *path);

/*
 * chaos_cz_corrupt is --self-test-bad: it finds an ok read that follows,
 * in the same session, an ok write of the same key, and makes it read
 * nil: a read-your-writes violation. Returns its index in h, or SIZE_MAX
 * when there is none. Describes what it did in what (whatlen bytes).
 */
size_t chaos_cz_corrupt(struct chaos_cz_history *h, char *what, size_t whatlen);

/* ---- the workload ----------------------------------------------------- */

struct chaos_cz_config {
	size_t sessions;		     /* K threads */
	size_t keys;			     /* N keys, "cz:0".."cz:<N-1>" */
	const struct local_node_addr *nodes; /* sessions hop between them at random */
	size_t nnodes;			     /* at most CHAOS_MAX_NODES */
	unsigned op_timeout_ms;		     /* connect and reply timeout of each op */
	uint64_t seed;			     /* each thread's generator is derived from it */
	uint64_t t0_ns;			     /* the run's origin on the monotonic clock */
};

struct chaos_cz_worker;

struct chaos_cz_workload {
	struct chaos_cz_config cfg;
	struct chaos_cz_worker *workers; /* cfg.sessions of them */
	size_t started;			 /* threads running or joined */
	atomic_bool stop;
};

/*
 * chaos_cz_workload_start copies cfg (cfg.nodes stays borrowed until
 * chaos_cz_workload_close) and starts the session threads. Returns 0;
 * SP_ERR_INVAL for zero sessions, keys or nodes, or more than
 * CHAOS_MAX_NODES nodes; or a negated errno from pthread_create (the
 * threads already started are stopped and joined). Call
 * chaos_cz_workload_close in every case.
 */
int chaos_cz_workload_start(struct chaos_cz_workload *w, const struct chaos_cz_config *cfg);

/* chaos_cz_workload_stop asks every thread to stop after the operation in
 * flight and joins them. */
void chaos_cz_workload_stop(struct chaos_cz_workload *w);

/*
 * chaos_cz_workload_collect, after chaos_cz_workload_stop, moves every
 * session's operations into *out (which must be empty; free it with
 * chaos_cz_history_free) and adds their counts to *stats (SET as
 * LIN_WRITE, GET as LIN_READ). *hops gets the number of hops made.
 */
void chaos_cz_workload_collect(struct chaos_cz_workload *w, struct chaos_cz_history *out,
			       struct chaos_stats *stats, uint64_t *hops);

/* chaos_cz_workload_close frees what w holds (stopping it first if need
 * be); w may be one whose start failed, or zeroed. */
void chaos_cz_workload_close(struct chaos_cz_workload *w);

/* ---- setting up, converging, reading back ------------------------------ */

/*
 * chaos_cz_create_keyspace sends KEYSPACE CREATE cz MODE causal to the
 * nodes in turn until one answers +OK (or that it exists), then waits
 * until every node answers a GET at LEVEL local of "cz:0", for at most
 * wait_s seconds in all. Returns 0, or SP_ERR_AGAIN with the last reply
 * in err (errlen bytes). nodes is borrowed.
 */
int chaos_cz_create_keyspace(const struct local_node_addr *nodes, size_t nnodes,
			     unsigned timeout_ms, double wait_s, char *err, size_t errlen);

/*
 * chaos_cz_wait_converged polls INFO causal on every node every poll_ms
 * until every node answers with the same causal_applied vector and the
 * answers then stay the same for settle_ms. *elapsed_ms is the time from
 * since_ns (monotonic: the last heal) to the first poll of that streak.
 * Gives up when no such streak has begun timeout_ms after since_ns.
 * Returns 0, or SP_ERR_AGAIN with why (whylen bytes) naming a node that
 * did not answer or two vectors that differ. nodes is borrowed.
 */
int chaos_cz_wait_converged(const struct local_node_addr *nodes, size_t nnodes, uint64_t since_ns,
			    unsigned timeout_ms, unsigned poll_ms, unsigned settle_ms,
			    uint64_t *elapsed_ms, char *why, size_t whylen);

/*
 * chaos_cz_final_agree reads every key at LEVEL local from every node
 * (each read tried up to `attempts` times) and returns how many keys were
 * read differently by two nodes or could not be read everywhere; the
 * first such key is described on stdout. *failed gets the reads that
 * failed. nodes is borrowed.
 */
size_t chaos_cz_final_agree(const struct local_node_addr *nodes, size_t nnodes, size_t keys,
			    unsigned timeout_ms, int attempts, size_t *failed);

/* How the checker answered. */
enum chaos_cz_check {
	CHAOS_CZ_CHECK_OK = 0,
	CHAOS_CZ_CHECK_VIOLATION = 1,
	CHAOS_CZ_CHECK_BAD_INPUT = 64,
	CHAOS_CZ_CHECK_UNAVAILABLE = -1, /* spectra check has no --model causal */
	CHAOS_CZ_CHECK_ERROR = -2,	 /* could not run, or another exit status */
};

/*
 * chaos_cz_run_checker runs `<this binary> check --model causal
 * history_path`, copying its output to stdout and to out_path, and
 * returns what it said. history_path and out_path are borrowed.
 */
enum chaos_cz_check chaos_cz_run_checker(const char *history_path, const char *out_path);

#endif
