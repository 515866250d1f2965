/*
 * bench_run: the load loop of `spectra bench`.
 *
 * One libuv loop on the calling thread drives every connection. Closed
 * loop (rate 0): each connection keeps up to `pipeline` ops in flight and
 * starts a new one as soon as one ends; an op's latency runs from its first
 * request's send to its last reply. Open loop (rate > 0): ops are given
 * start times rate apart, from the first connection attempt on, and handed
 * to connections in turn; a connection that has `pipeline` ops in flight
 * (or is reconnecting) queues the rest, and an op's latency runs from its
 * scheduled start, so a server that stalls shows as latency instead of as
 * fewer requests (no coordinated omission). Scheduling is driven by a
 * timerfd armed to the nanosecond, not by libuv's millisecond timers.
 *
 * Ops that end during the warm-up are not recorded; nor, in a closed loop,
 * ops that started during it. The warm-up lasts warmup_s, and beyond that
 * until every connection is up (at most 30 s), so a run measures the
 * clients it was asked for. With a duration, a closed loop records ops
 * that end before the window closes; an open loop records ops scheduled in
 * the window and waits up to drain_s after it for the late ones (those
 * still out are counted as unfinished). With a request count, exactly that
 * many ops are recorded (ok or not).
 *
 * A dropped connection fails its in-flight ops (error "conn_dropped"), is
 * reported on stderr (the first few times) and reconnected with backoff;
 * if no connection ever comes up, the run stops at once. SIGINT and SIGTERM
 * end the run early with what was recorded so far.
 *
 * The loop knows nothing of the protocol: requests and replies go through
 * cfg->driver (bench_driver.h).
 */
#ifndef SP_TOOLS_BENCH_RUN_H
#define SP_TOOLS_BENCH_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench_driver.h"
#include "bench_hist.h"
#include "bench_keys.h"

/* One kind of op, drawn per request with probability weight / sum. */
struct bench_op {
	const char *label; /* the template text, borrowed */
	void *compiled;	   /* the driver's op, borrowed */
	unsigned weight;
};

#define BENCH_ERR_WORDS	   16 /* distinct error words kept per op; then "OTHER" */
#define BENCH_ERR_WORD_MAX 48 /* bytes kept of each, with the NUL */

struct bench_err_count {
	char word[BENCH_ERR_WORD_MAX];
	uint64_t n;
};

struct bench_op_stats {
	struct bench_hist hist; /* latency of each ok op, microseconds */
	uint64_t ok;
	struct bench_err_count errors[BENCH_ERR_WORDS];
	size_t nerrors;
};

struct bench_config {
	const struct bench_driver *driver;
	const struct sockaddr_storage *addrs; /* nhosts; connection i uses i % nhosts */
	const char *const *host_names;	      /* nhosts, for messages */
	size_t nhosts;
	size_t clients;	 /* connections, >= 1 */
	size_t pipeline; /* ops in flight per connection, >= 1 */
	double duration_s;
	uint64_t requests; /* when > 0: record this many ops, not a duration */
	double warmup_s;
	double rate;	/* total ops/s of an open loop; 0 for a closed loop */
	double drain_s; /* open loop: longest wait for late ops */
	const struct bench_op *ops;
	size_t nops;
	struct bench_keys *keys; /* borrowed; the seq distribution advances */
	uint64_t seed;
	bool progress; /* a line on stdout every second */
	/*
	 * For availability runs. timeout_ms > 0: an op still unanswered that
	 * long fails as "timeout" and its connection is dropped (replies come
	 * in order, so one cannot be skipped). failover: a connection that
	 * drops or cannot connect moves to the next host, as a client with a
	 * list of endpoints would. fault_cmd (borrowed, may be NULL): run with
	 * /bin/sh -c fault_at_s seconds into the measured window, without
	 * stopping the load.
	 */
	unsigned timeout_ms;
	bool failover;
	const char *fault_cmd;
	double fault_at_s;
};

struct bench_result {
	struct bench_op_stats *ops; /* nops entries, owned */
	size_t nops;
	double seconds;		   /* the measured window */
	uint64_t connects;	   /* connections that came up */
	uint64_t reconnects;	   /* of those, ones after a drop */
	uint64_t drops;		   /* connections lost while up */
	uint64_t connect_failures; /* attempts that did not connect */
	uint64_t unfinished;	   /* open loop: recorded ops that never ended */
	bool connected;		   /* at least one connection came up */
	bool interrupted;	   /* SIGINT or SIGTERM ended the run */
	char first_error[160];	   /* the first connection error seen, or "" */
	/* The longest stretch of the measured window with no op succeeding,
	 * counting from the window's start and to its end, and where it
	 * began (seconds into the window). */
	double max_gap_s, max_gap_at_s;
	/* Ops that succeeded inside the window, recorded or not: what the
	 * servers delivered then. An overloaded open loop spends its window
	 * on ops queued during the warm-up, so its recorded ops alone
	 * understate it. */
	uint64_t window_ok;
	/* How long the warm-up lasted: --warmup, or longer until every
	 * connection was up (at most 30 s). */
	double warmup_s;
	/* The fault: whether it ran, when (seconds into the window), and its
	 * exit status (or -1 if it could not be started or was killed). */
	bool fault_ran;
	double fault_ran_at_s;
	int fault_status;
};

/*
 * bench_run runs the load described by cfg (borrowed for the call) and
 * fills *res (owned by the caller; release with bench_result_close, also
 * after an error). Returns 0 once the run has taken place, even if nothing
 * connected (res->connected says); or a negative libuv or errno code if the
 * loop could not be set up (too many open files for the clients, no
 * timerfd).
 */
int bench_run(const struct bench_config *cfg, struct bench_result *res);

/* bench_result_close releases what res owns; NULL is ok. */
void bench_result_close(struct bench_result *res);

#endif
