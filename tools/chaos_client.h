/*
 * chaos_client: the workload of `spectra chaos` and the history it records.
 *
 * K client threads, each bound to one node, issue GET, SET and CAS on a
 * few keys as fast as the cluster answers, and record every operation as
 * a struct lin_op: when it was called and when it returned (monotonic
 * microseconds since the run began) and what the reply means for the
 * history (chaos_plan.h's chaos_classify). A client whose operation ended
 * with an unknown outcome may still have it pending, so from then on it
 * records under a new process id, as Jepsen does: ids are the thread's
 * index plus K times its generation. Every written value is unique in the
 * run ("w<process>-<seq>", "c<process>-<seq>" for a CAS), which is what
 * lets a read name the write it saw.
 *
 * Each thread records into its own history; they are merged only after
 * the threads are joined, so no lock is taken on the hot path.
 *
 * It must not: start, stop or signal nodes (that is the nemesis's job),
 * or judge the history (the checker's).
 */
#ifndef SP_TOOLS_CHAOS_CLIENT_H
#define SP_TOOLS_CHAOS_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check/history.h"
#include "local_node.h"

/* Error replies are counted by their first word, this many words at most
 * (the rest count as "other"). */
#define CHAOS_ERROR_WORDS 8

/* What a client saw, for the summary. */
struct chaos_stats {
	uint64_t invoked[LIN_DELETE + 1];		   /* by kind */
	uint64_t outcome[LIN_DELETE + 1][LIN_UNKNOWN + 1]; /* by kind, then outcome */
	uint64_t no_reply;  /* timeouts and broken connections mid-operation */
	uint64_t surprises; /* replies of a shape the contract does not name */
	uint64_t connect_failures;
	struct {
		char word[24];
		uint64_t count;
	} errors[CHAOS_ERROR_WORDS];
	uint64_t errors_other;
};

/* chaos_stats_add adds what `from` counted to `to`. */
void chaos_stats_add(struct chaos_stats *to, const struct chaos_stats *from);

/* chaos_stats_count_error counts an error reply of len bytes (msg,
 * borrowed for the call, without its leading '-') under its first word. */
void chaos_stats_count_error(struct chaos_stats *s, const char *msg, size_t len);

/* chaos_stats_total is the number of operations with `outcome`, all
 * kinds together (0 for every outcome: invoked). */
uint64_t chaos_stats_total(const struct chaos_stats *s, int outcome);

enum { CHAOS_READS_MIXED = 0, CHAOS_READS_LINEARIZABLE, CHAOS_READS_LEASE };

struct chaos_workload_config {
	size_t clients;			     /* K threads */
	size_t keys;			     /* N keys, "k0".."k<N-1>" */
	const struct local_node_addr *nodes; /* client i talks to nodes[i % nnodes] */
	size_t nnodes;
	unsigned op_timeout_ms; /* connect and reply timeout of each op */
	/* Read level: CHAOS_READS_LINEARIZABLE, CHAOS_READS_LEASE, or
	 * CHAOS_READS_MIXED (odd-numbered clients read at lease level). */
	int reads;
	uint64_t seed;	/* each thread's generator is derived from it */
	uint64_t t0_ns; /* the run's origin on the monotonic clock */
};

struct chaos_worker;

struct chaos_workload {
	struct chaos_workload_config cfg;
	struct chaos_worker *workers; /* cfg.clients of them */
	size_t started;		      /* threads running or joined */
	atomic_bool stop;
};

/*
 * chaos_workload_start copies cfg (cfg.nodes stays borrowed until
 * chaos_workload_close) and starts its client threads. Returns 0, or
 * SP_ERR_INVAL for zero clients, keys or nodes, or a negated errno from
 * pthread_create (the threads already started are stopped and joined;
 * chaos_workload_close must still be called).
 */
int chaos_workload_start(struct chaos_workload *w, const struct chaos_workload_config *cfg);

/* chaos_workload_stop asks every thread to stop after its operation in
 * flight (which may take up to the op timeout) and joins them. */
void chaos_workload_stop(struct chaos_workload *w);

/*
 * chaos_workload_collect, after chaos_workload_stop, appends every
 * thread's operations to out (copies, in thread order), adds their
 * counts to *stats, and returns a process id no thread has used.
 */
uint64_t chaos_workload_collect(struct chaos_workload *w, struct history *out,
				struct chaos_stats *stats);

/* chaos_workload_close frees what w holds (stopping it first if need be);
 * w may be one whose start failed. */
void chaos_workload_close(struct chaos_workload *w);

/* chaos_key_name writes key i's name ("k<i>") into out (size outlen). */
void chaos_key_name(size_t i, char *out, size_t outlen);

/*
 * chaos_final_reads reads every one of `keys` keys through the node at
 * addr (the leader, once the cluster has healed) and records each read in
 * out as an ordinary operation of process *process, moving to a new
 * process id after an unknown outcome (*process is then advanced). A read
 * that fails is retried, up to `attempts` times per key, 200 ms apart.
 * Returns how many keys were read successfully.
 */
size_t chaos_final_reads(const struct local_node_addr *addr, size_t keys, unsigned timeout_ms,
			 int attempts, uint64_t t0_ns, uint64_t *process, struct history *out,
			 struct chaos_stats *stats);

#endif
