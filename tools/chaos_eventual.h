/*
 * chaos_eventual: the eventual-consistency workloads of `spectra chaos`
 * (--workload set, counter or lww) and the checks of what they leave.
 *
 * The cluster gets one eventual keyspace, "ev" (RF 3), and K client
 * threads send every operation to a node picked at random, on keys
 * "ev:0".."ev:<N-1>": ORSET.ADD of an element unique in the run, or
 * COUNTER.INCR by 1..5, or LWW.SET of a value unique in the run, at the
 * write level asked (LEVEL one|quorum|all), and about one read in ten
 * (ORSET.MEMBERS, COUNTER.GET, LWW.GET) at QUORUM. Every element or value
 * written is "c<client>-<seq>", where seq numbers the client's operations
 * from 1, so a name found in a final state leads straight back to the
 * operation that wrote it. Each thread records into its own array; the
 * arrays are merged after the threads are joined.
 *
 * What a reply means follows spectrad's contract: a reply of the expected
 * shape is ok; -TRYAGAIN, or any other error, is a definite failure
 * (nothing was done); -UNKNOWN, a timeout or a lost connection is
 * unknown (the write may or may not take effect).
 *
 * After the run and the healing, the cluster must converge: every node's
 * EVENTUAL DIGEST must give, for each ring range it lists, the same Merkle
 * root as every other node listing that range. Then every key is read at
 * ALL from every node, the nodes must agree, and the agreed state is
 * checked against the history:
 *   set      every acknowledged add's element is in the final set; every
 *            element of the final set was attempted, and not by an add
 *            that definitely failed;
 *   counter  sum(ok increments) <= final <= sum(ok) + sum(unknown);
 *   lww      the final value was written by some ok or unknown LWW.SET
 *            (not a failed one); its timestamp is at least that of every
 *            acknowledged write to the key; and when its write was
 *            acknowledged, the timestamp that write returned is the one
 *            LWW.GET gives.
 * While the run goes on, a client whose writes and reads overlap (write
 * level QUORUM or ALL, reads at QUORUM) also checks that each of its reads
 * sees its own acknowledged writes: every element it added, at least the
 * sum of its increments, a timestamp no older than its last write's.
 *
 * It must not: start, stop or signal nodes (the nemesis's job), nor judge
 * the register workload (lin_check's). The check functions do no I/O but
 * printing the violations they find on the stream they are given.
 */
#ifndef SP_TOOLS_CHAOS_EVENTUAL_H
#define SP_TOOLS_CHAOS_EVENTUAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "chaos_client.h"
#include "chaos_plan.h"
#include "local_node.h"

#define CHAOS_EV_KEYSPACE "ev"
#define CHAOS_EV_RF	  3
#define CHAOS_EV_READ_PCT 10 /* reads among all operations, in percent */

enum chaos_ev_kind {
	CHAOS_EV_SET = 1, /* ORSET.ADD / ORSET.MEMBERS */
	CHAOS_EV_COUNTER, /* COUNTER.INCR / COUNTER.GET */
	CHAOS_EV_LWW,	  /* LWW.SET / LWW.GET */
};

enum chaos_ev_level {
	CHAOS_EV_ONE = 1,
	CHAOS_EV_QUORUM,
	CHAOS_EV_ALL,
};

/* chaos_ev_kind_name is "set", "counter" or "lww"; chaos_ev_level_name is
 * "one", "quorum" or "all" (static strings; "?" for anything else). */
const char *chaos_ev_kind_name(enum chaos_ev_kind kind);
const char *chaos_ev_level_name(enum chaos_ev_level level);

/* chaos_ev_parse_kind and chaos_ev_parse_level read those names (text is
 * borrowed). Return 0, or SP_ERR_INVAL for any other text. */
int chaos_ev_parse_kind(const char *text, enum chaos_ev_kind *out);
int chaos_ev_parse_level(const char *text, enum chaos_ev_level *out);

/* chaos_ev_key_name writes key i's name ("ev:<i>") into out (outlen
 * bytes). */
void chaos_ev_key_name(size_t i, char *out, size_t outlen);

/* ---- the history ------------------------------------------------------ */

/* One operation as a client saw it. */
struct chaos_ev_op {
	uint64_t call_us, ret_us; /* monotonic microseconds since the run began */
	/* write: the counter increment, or the timestamp an ok LWW.SET
	 * returned; read (ok): the counter's value, the LWW timestamp (0 for
	 * nil), or the set's size. */
	int64_t n;
	uint32_t client, seq; /* the element or value written is "c<client>-<seq>" */
	uint32_t key;	      /* index: "ev:<key>" */
	uint8_t write;	      /* 1 for a write, 0 for a read */
	uint8_t outcome;      /* enum lin_outcome */
	uint8_t node;	      /* index of the node asked */
	uint8_t stale;	      /* a read that missed this client's own acknowledged write */
};

/*
 * Every client's operations: client c's operation of seq s (s >= 1) is
 * ops[first[c] + s - 1], for first[c] + s - 1 < first[c + 1]. ops, first
 * (clients + 1 entries) are owned by the history.
 */
struct chaos_ev_history {
	struct chaos_ev_op *ops;
	size_t n;
	size_t *first;
	size_t clients;
};

/* chaos_ev_history_find returns client's operation of seq, or NULL when
 * there is none. The pointer is into h, borrowed while h lives. */
const struct chaos_ev_op *chaos_ev_history_find(const struct chaos_ev_history *h, uint64_t client,
						uint64_t seq);

/* chaos_ev_history_free frees what h holds and empties it; a zeroed h is
 * fine. */
void chaos_ev_history_free(struct chaos_ev_history *h);

/*
 * chaos_ev_history_write writes h to path as JSON lines, one object per
 * operation: {"process", "op" (set: add, members; counter: incr, get; lww: set, get),
 * "key", "value" (the element or value written), "n", "invoke",
 * "complete", "result" (ok, fail, info), "node" (1-based), "stale"}.
 * Returns 0 or a negated errno. h and path are borrowed.
 */
int chaos_ev_history_write(const struct chaos_ev_history *h, enum chaos_ev_kind kind,
			   const char *path);

/* ---- the workload ----------------------------------------------------- */

struct chaos_ev_config {
	enum chaos_ev_kind kind;
	enum chaos_ev_level write_level;     /* reads are at QUORUM */
	size_t clients;			     /* K threads */
	size_t keys;			     /* N keys, "ev:0".."ev:<N-1>" */
	const struct local_node_addr *nodes; /* each op goes to one at random */
	size_t nnodes;			     /* at most CHAOS_MAX_NODES */
	unsigned op_timeout_ms;		     /* connect and reply timeout of each op */
	uint64_t seed;			     /* each thread's generator is derived from it */
	uint64_t t0_ns;			     /* the run's origin on the monotonic clock */
};

struct chaos_ev_worker;

struct chaos_ev_workload {
	struct chaos_ev_config cfg;
	struct chaos_ev_worker *workers; /* cfg.clients of them */
	size_t started;			 /* threads running or joined */
	atomic_bool stop;
};

/*
 * chaos_ev_workload_start copies cfg (cfg.nodes stays borrowed until
 * chaos_ev_workload_close) and starts its client threads. Returns 0;
 * SP_ERR_INVAL for zero clients, keys or nodes, more than CHAOS_MAX_NODES
 * nodes or an unknown kind or level; or a negated errno from
 * pthread_create (the threads already started are stopped and joined).
 * Call chaos_ev_workload_close in every case.
 */
int chaos_ev_workload_start(struct chaos_ev_workload *w, const struct chaos_ev_config *cfg);

/* chaos_ev_workload_stop asks every thread to stop after the operation in
 * flight (which may take up to the op timeout) and joins them. */
void chaos_ev_workload_stop(struct chaos_ev_workload *w);

/*
 * chaos_ev_workload_collect, after chaos_ev_workload_stop, moves every
 * thread's operations into *out (which must be empty; free it with
 * chaos_ev_history_free), and adds their counts to *stats (writes counted
 * as LIN_WRITE, reads as LIN_READ). Calling it twice gives nothing the
 * second time.
 */
void chaos_ev_workload_collect(struct chaos_ev_workload *w, struct chaos_ev_history *out,
			       struct chaos_stats *stats);

/* chaos_ev_workload_stale is how many reads missed their own client's
 * acknowledged writes, and writes into msg (msglen bytes) a description
 * of the first one ("" when none). */
uint64_t chaos_ev_workload_stale(const struct chaos_ev_workload *w, char *msg, size_t msglen);

/* chaos_ev_workload_close frees what w holds (stopping it first if need
 * be); w may be one whose start failed, or zeroed. */
void chaos_ev_workload_close(struct chaos_ev_workload *w);

/* ---- setting up, converging, reading back ------------------------------ */

/*
 * chaos_ev_create_keyspace sends KEYSPACE CREATE ev MODE eventual RF 3 to
 * the nodes in turn until one answers +OK (or that the keyspace exists,
 * as after a reply lost on the way), then waits until every node treats
 * "ev:0" as eventual (EVENTUAL REPLICAS answers), for at most wait_s
 * seconds in all. Returns 0, or SP_ERR_AGAIN with the last reply or
 * error in err (errlen bytes). nodes is borrowed.
 */
int chaos_ev_create_keyspace(const struct local_node_addr *nodes, size_t nnodes,
			     unsigned timeout_ms, double wait_s, char *err, size_t errlen);

/* One node's EVENTUAL DIGEST line. */
struct chaos_ev_range {
	unsigned rf;
	uint64_t token, root, keys;
	size_t node; /* index of the node that listed it */
};

/*
 * chaos_ev_parse_range reads one EVENTUAL DIGEST line ("rf token root
 * keys", token and root in hex) of len bytes into *out (node is left
 * alone). Returns 0 or SP_ERR_INVAL. text is borrowed.
 */
int chaos_ev_parse_range(const char *text, size_t len, struct chaos_ev_range *out);

/*
 * chaos_ev_count_diverged sorts ranges[0..n) by (rf, token, node) and
 * returns how many (rf, token) pairs are listed with more than one root.
 * When there is one and `first` is not NULL, *first is set to a listing
 * of the first such pair, and *other to a listing of it with another
 * root.
 */
size_t chaos_ev_count_diverged(struct chaos_ev_range *ranges, size_t n,
			       struct chaos_ev_range *first, struct chaos_ev_range *other);

/* How chaos_ev_wait_converged went. */
struct chaos_ev_convergence {
	uint64_t elapsed_ms; /* since_ns to the first poll of the settled streak */
	uint64_t polls;
	/* Times the digests, having agreed, disagreed again or changed: data
	 * that arrived after the nodes had first agreed. first_ms is when
	 * they first agreed at all (UINT64_MAX: never). */
	uint64_t unsettled, first_ms;
};

/*
 * chaos_ev_wait_converged polls EVENTUAL DIGEST on every node every
 * poll_ms until the nodes have converged and stayed so: every node
 * answers, no range is listed with two roots, and polls spanning at
 * least settle_ms since then gave the very same digests (so a message
 * still queued for a node that just came back, which would change the
 * data again, has had time to land). It gives up when no such streak has
 * begun timeout_ms after since_ns (on the monotonic clock: when the last
 * fault was healed). Returns 0 with *out filled; or SP_ERR_AGAIN on
 * timeout (out still filled), with why (whylen bytes) naming a node that
 * did not answer or a range whose roots differ; SP_ERR_INVAL for more
 * than CHAOS_MAX_NODES nodes. nodes is borrowed.
 */
int chaos_ev_wait_converged(const struct local_node_addr *nodes, size_t nnodes, uint64_t since_ns,
			    unsigned timeout_ms, unsigned poll_ms, unsigned settle_ms,
			    struct chaos_ev_convergence *out, char *why, size_t whylen);

/* What a key holds, as one node read it at ALL. */
struct chaos_ev_state {
	bool read; /* the read succeeded; nothing else is set otherwise */
	/* set: the members, sorted (bytes compared, then length). Owned. */
	char **members;
	size_t nmembers;
	int64_t value; /* counter */
	/* lww: nil, or value (owned), timestamp and node. */
	bool nil;
	char *lww_value;
	int64_t ts, writer;
};

/* chaos_ev_state_free frees what s holds and zeroes it. */
void chaos_ev_state_free(struct chaos_ev_state *s);

/*
 * chaos_ev_final_reads reads every one of `keys` keys at level ALL from
 * every node, each read tried up to `attempts` times, 250 ms apart, into
 * states[node * keys + key] (nnodes * keys of them, zeroed by the caller;
 * free each with chaos_ev_state_free). Returns how many reads succeeded.
 * nodes is borrowed.
 */
size_t chaos_ev_final_reads(enum chaos_ev_kind kind, const struct local_node_addr *nodes,
			    size_t nnodes, size_t keys, unsigned timeout_ms, int attempts,
			    struct chaos_ev_state *states);

/* chaos_ev_state_equal says whether two successful reads of the same kind
 * hold the same thing (sets as sets). */
bool chaos_ev_state_equal(enum chaos_ev_kind kind, const struct chaos_ev_state *a,
			  const struct chaos_ev_state *b);

/* chaos_ev_state_print writes s as one line of text, a set's members
 * shown up to max of them, to out. */
void chaos_ev_state_print(enum chaos_ev_kind kind, const struct chaos_ev_state *s, size_t max,
			  FILE *out);

/*
 * chaos_ev_info_sum asks every node for INFO eventual and adds, into
 * sums[i], field names[i]'s value at each node that answers (nnames
 * fields). Returns how many nodes answered. nodes and names are
 * borrowed.
 */
size_t chaos_ev_info_sum(const struct local_node_addr *nodes, size_t nnodes, unsigned timeout_ms,
			 const char *const *names, size_t nnames, uint64_t *sums);

/* ---- the checks ----------------------------------------------------------- */

/*
 * chaos_ev_corrupt is --self-test-bad: it breaks finals[0..keys) (the
 * agreed final states) the way the check must notice: a set loses one
 * element of an acknowledged add, a counter gains 1000, an LWW register
 * holds a value nobody wrote. Returns the index of the key it broke, or
 * SIZE_MAX when it found nothing to break (a set workload without an
 * acknowledged add). Describes what it did in what (whatlen bytes).
 */
size_t chaos_ev_corrupt(enum chaos_ev_kind kind, const struct chaos_ev_history *h,
			struct chaos_ev_state *finals, size_t keys, char *what, size_t whatlen);

/* What chaos_ev_check counted. */
struct chaos_ev_verdict {
	uint64_t violations;
	/* set: acknowledged adds, of them lost; unknown adds, of them present;
	 * elements found that nobody tried, or whose add definitely failed. */
	uint64_t acked, lost, unknown, unknown_present, phantom, failed_present;
	/* counter: keys out of bounds. lww: keys whose value or timestamp is
	 * wrong. */
	uint64_t bad_keys;
};

/*
 * chaos_ev_check checks the agreed final states finals[0..keys) (each
 * read successfully) against history h, as the header describes, counts
 * into *v (zeroed first), and prints each of the first max_shown
 * violations on out as "  violation: ..." lines. Returns v->violations.
 * h and finals are borrowed.
 */
uint64_t chaos_ev_check(enum chaos_ev_kind kind, const struct chaos_ev_history *h,
			const struct chaos_ev_state *finals, size_t keys, size_t max_shown,
			struct chaos_ev_verdict *v, FILE *out);

#endif
