/*
 * chaos_nemesis: the fault injector of `spectra chaos`.
 *
 * One thread that, every interval (give or take a quarter), asks
 * chaos_plan which fault it may inject now and injects it into a local
 * cluster: kill -9 a node (the leader half the time) and restart it 1-3 s
 * later; SIGSTOP one and SIGCONT it 1-3 s later; or cut the cluster with
 * DEBUG NET PARTITION (a random majority/minority split, the leader
 * isolated, or a bridge) and heal it 2-5 s later with DEBUG NET HEAL. The
 * plan never takes down more than a minority. Every event is logged,
 * with the run's clock and the wall clock, to stdout and to a log file.
 *
 * A node learns its side of a partition only while it runs and answers:
 * a node killed or paused while a partition is in force is told again
 * once it is back, and healing reaches every node that answers.
 *
 * It must not: talk to the workload's clients or touch the history; the
 * cluster's files and the set of its members are not its to change.
 */
#ifndef SP_TOOLS_CHAOS_NEMESIS_H
#define SP_TOOLS_CHAOS_NEMESIS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "chaos_plan.h"
#include "local_cluster.h"

struct chaos_nemesis_config {
	struct local_cluster *lc; /* borrowed; only the nemesis uses it while it runs */
	unsigned enabled;	  /* mask of (1 << CHAOS_FAULT_*) */
	unsigned interval_ms;	  /* mean time between faults */
	uint64_t seed;
	uint64_t t0_ns;		/* the run's origin on the monotonic clock */
	char *const *node_args; /* extra spectrad flags for a restart; borrowed */
	int nnode_args;
	double start_wait_s; /* how long a restarted node may take to answer */
	FILE *log;	     /* nemesis.log, borrowed; events also go to stdout */
};

/* Per node, what the nemesis did to it and believes of it. */
struct chaos_nemesis_node {
	bool killed, paused;
	uint64_t undo_at_us; /* when to restart or resume it */
	bool net_known;	     /* net_applied is what the node holds */
	uint64_t net_applied;
	uint64_t net_retry_at_us; /* after a failed DEBUG NET, not before this */
};

struct chaos_nemesis {
	struct chaos_nemesis_config cfg;
	size_t n;
	struct chaos_nemesis_node nodes[CHAOS_MAX_NODES];
	bool partitioned;
	struct chaos_partition part;
	uint64_t heal_at_us;
	uint64_t rng;
	pthread_t thread;
	bool running;
	atomic_bool stop;
	pthread_mutex_t log_lock;
	/* Counts for the summary. */
	uint64_t injected[CHAOS_FAULT_COUNT];
	uint64_t splits[CHAOS_SPLIT_COUNT];
	uint64_t restart_failures; /* restarts that did not answer in time */
	uint64_t command_failures; /* DEBUG NET commands that got no +OK */
};

/*
 * chaos_nemesis_start copies cfg and starts the nemesis thread (with no
 * fault enabled it only idles). Returns 0, SP_ERR_INVAL when the cluster
 * has more than CHAOS_MAX_NODES nodes, or a negated errno from
 * pthread_create.
 */
int chaos_nemesis_start(struct chaos_nemesis *nm, const struct chaos_nemesis_config *cfg);

/* chaos_nemesis_stop stops the thread (after the step it is in) and
 * joins it; the faults in force stay in force. */
void chaos_nemesis_stop(struct chaos_nemesis *nm);

/*
 * chaos_nemesis_heal_all, after chaos_nemesis_stop, undoes every fault:
 * SIGCONT to every paused node, restarts every killed one, DEBUG NET HEAL
 * to every node. Returns 0, or -1 when a node could not be restarted or
 * healed (logged).
 */
int chaos_nemesis_heal_all(struct chaos_nemesis *nm);

/* chaos_nemesis_logf logs one event: "[   12.345s] <text>" to stdout and
 * the log file. Safe to call from any thread. */
void chaos_nemesis_logf(struct chaos_nemesis *nm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* chaos_nemesis_close releases what chaos_nemesis_start made (stopping
 * the thread if need be). */
void chaos_nemesis_close(struct chaos_nemesis *nm);

#endif
