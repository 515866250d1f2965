/*
 * chaos_plan: the decisions of `spectra chaos` that need no cluster.
 *
 * Which operation a client issues next, what a reply means for the
 * history (done, definitely not done, or unknown), which fault the nemesis
 * may inject given what is already broken, and how a partition splits n
 * nodes. Keeping them here, apart from the threads and sockets that act on
 * them, lets tests/unit/test_chaos_plan.c check them on thousands of
 * random cases.
 *
 * It must not: do I/O, read a clock, keep global state, or allocate.
 * Randomness comes from a splitmix64 state the caller owns, so a run is
 * replayed from its seed. Nodes are named by index, 0..n-1 (n at most
 * CHAOS_MAX_NODES); sets of nodes are bit masks of indices.
 */
#ifndef SP_TOOLS_CHAOS_PLAN_H
#define SP_TOOLS_CHAOS_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check/linearizable.h"

#define CHAOS_MAX_NODES 64

/* chaos_rand steps the splitmix64 generator whose state is *state and
 * returns its next number; chaos_rand_below returns one in [0, n) (0 when
 * n is 0). */
uint64_t chaos_rand(uint64_t *state);
uint64_t chaos_rand_below(uint64_t *state, uint64_t n);

/* chaos_popcount is the number of nodes in set. */
int chaos_popcount(uint64_t set);

/* ---- the workload ------------------------------------------------------ */

/*
 * chaos_pick_op picks the next operation's kind: LIN_READ about half the
 * time, LIN_WRITE 30%, LIN_CAS 20%. A CAS needs a value to expect; when
 * the client knows none for the key (can_cas false) the CAS share goes to
 * reads, which will teach it one.
 */
enum lin_kind chaos_pick_op(uint64_t *rng, bool can_cas);

/* What came back for one command, independent of the client library. */
enum chaos_reply_type {
	CHAOS_REPLY_NONE = 0, /* nothing: timeout, closed or broken connection */
	CHAOS_REPLY_STATUS,   /* +OK */
	CHAOS_REPLY_ERROR,    /* -PREFIX message */
	CHAOS_REPLY_INTEGER,  /* :n */
	CHAOS_REPLY_STRING,   /* a bulk string */
	CHAOS_REPLY_NIL,      /* a nil bulk string */
	CHAOS_REPLY_OTHER,    /* anything else (an array, a double, ...) */
};

struct chaos_reply {
	enum chaos_reply_type type;
	long long integer; /* CHAOS_REPLY_INTEGER */
	const char *str;   /* STATUS, ERROR, STRING: borrowed, len bytes */
	size_t len;
};

/*
 * chaos_classify says what a reply to a command of `kind` (GET for
 * LIN_READ, SET for LIN_WRITE, CAS for LIN_CAS, DEL for LIN_DELETE) tells
 * the history, following spectrad's contract:
 *  - no reply at all (the command may have been sent): LIN_UNKNOWN;
 *  - -TRYAGAIN (no leader in time, not executed): LIN_FAIL;
 *  - -UNKNOWN (the node cannot tell whether it was applied): LIN_UNKNOWN;
 *  - any other error: LIN_FAIL (refused before it ran);
 *  - GET: a bulk string or nil is LIN_OK (the value is the reply's);
 *  - SET: +OK is LIN_OK;
 *  - CAS: :1 is LIN_OK, :0 LIN_FAIL (compared unequal, changed nothing);
 *  - DEL: :0 or :1 is LIN_OK;
 *  - a reply of any other shape: LIN_UNKNOWN, which is always safe (the
 *    checker assumes nothing about it); the caller counts these as
 *    protocol surprises.
 * reply is borrowed for the call.
 */
enum lin_outcome chaos_classify(enum lin_kind kind, const struct chaos_reply *reply);

/* chaos_reply_expected says whether reply has a shape the contract names
 * for kind (so chaos_classify did not fall back to LIN_UNKNOWN for want of
 * knowing it). */
bool chaos_reply_expected(enum lin_kind kind, const struct chaos_reply *reply);

/* ---- partitions ------------------------------------------------------- */

enum chaos_split {
	CHAOS_SPLIT_HALVES = 0, /* a random minority against the majority */
	CHAOS_SPLIT_ISOLATE,	/* one node (the leader, when known) alone */
	CHAOS_SPLIT_BRIDGE,	/* two halves that both see one middle node */
	CHAOS_SPLIT_COUNT,
};

/*
 * A partition: the nodes in a and the nodes in b drop every frame between
 * them; a node in neither (the bridge) sees everyone. a and b are
 * disjoint and neither is empty.
 */
struct chaos_partition {
	enum chaos_split kind;
	uint64_t a, b;
};

/* chaos_split_name is "halves", "isolate" or "bridge" (static). */
const char *chaos_split_name(enum chaos_split kind);

/*
 * chaos_plan_partition draws a partition of kind over n nodes into *out.
 * HALVES: a is a random set of 1..(n-1)/2 nodes (1 when n is 2), b the
 * rest. ISOLATE: a is the leader (index `leader`, or a random node when
 * leader >= n), b the rest. BRIDGE: one random middle node, the others
 * dealt at random into a and b, their sizes differing by at most one.
 *
 * Returns 0, or SP_ERR_INVAL when n is out of 2..CHAOS_MAX_NODES, when
 * kind is unknown, or for BRIDGE with n < 3.
 */
int chaos_plan_partition(enum chaos_split kind, size_t n, size_t leader, uint64_t *rng,
			 struct chaos_partition *out);

/* chaos_partition_drops is the set of nodes that node i drops frames to
 * and from under p (empty for a bridge node or a NULL p). */
uint64_t chaos_partition_drops(const struct chaos_partition *p, size_t i);

/*
 * chaos_has_quorum says whether n nodes, with the nodes in `down` killed
 * or paused and partition p in force (NULL for none), still hold a
 * majority that is alive and fully connected, so a leader can be elected
 * and commit: a group of more than n/2 live nodes that drop nothing
 * between them.
 */
bool chaos_has_quorum(size_t n, uint64_t down, const struct chaos_partition *p);

/* ---- the nemesis -------------------------------------------------------- */

enum chaos_fault {
	CHAOS_FAULT_KILL = 0, /* kill -9 a node, restart it later */
	CHAOS_FAULT_PAUSE,    /* SIGSTOP a node, SIGCONT it later */
	CHAOS_FAULT_PARTITION,
	CHAOS_FAULT_COUNT,
};

#define CHAOS_FAULTS_ALL ((1u << CHAOS_FAULT_COUNT) - 1)

/* chaos_fault_name is "kill", "pause" or "partition" (static). */
const char *chaos_fault_name(enum chaos_fault fault);

/*
 * chaos_parse_faults reads a comma-separated list of fault names ("kill",
 * "pause", "partition", or "all") into a mask of (1 << CHAOS_FAULT_*)
 * bits; "none" or "" gives 0. Returns 0, or SP_ERR_INVAL naming nothing
 * known (text is borrowed).
 */
int chaos_parse_faults(const char *text, unsigned *mask);

/* What is broken now, as the nemesis sees it. */
struct chaos_world {
	size_t n;		     /* nodes, 1..CHAOS_MAX_NODES */
	uint64_t down;		     /* killed or paused */
	bool partitioned;	     /* a partition is in force ... */
	struct chaos_partition part; /* ... this one */
	size_t leader;		     /* index of the leader, or >= n if unknown */
};

/* One fault to inject, and for how long. */
struct chaos_choice {
	enum chaos_fault fault;
	size_t target;		     /* KILL, PAUSE: the node */
	struct chaos_partition part; /* PARTITION */
	uint32_t duration_ms;	     /* until it is undone */
};

/*
 * chaos_choose_fault picks, among the faults in `enabled`, one that can be
 * injected in world w without leaving the cluster short of a live,
 * connected majority (chaos_has_quorum holds afterwards), so a minority
 * at most is ever lost: KILL and PAUSE take the leader half the time when
 * it is known and up, else a random live node, and last 1-3 s; PARTITION
 * (only when none is in force) draws a random kind and lasts 2-5 s.
 * Returns 0 with *out filled, or SP_ERR_AGAIN when nothing enabled can be
 * injected now. w is borrowed for the call.
 */
int chaos_choose_fault(unsigned enabled, const struct chaos_world *w, uint64_t *rng,
		       struct chaos_choice *out);

#endif
