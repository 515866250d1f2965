/*
 * linearizable: decides whether a recorded history of a key-value store is
 * linearizable (Herlihy & Wing 1990), key by key.
 *
 * Each key is a register that starts absent (nil). A history is a list of
 * operations, each with the interval of real time between its call and its
 * return and what the client saw. The history is linearizable when every
 * key's operations can be put in one total order that respects real time
 * (an operation that returned before another was called comes first) and
 * in which each operation's result is what the register would give.
 *
 * How: linearizability is compositional (P-compositionality, Herlihy &
 * Wing §3.3; Horn & Kroening 2015), so the history is split by key and each
 * key is searched on its own. The search is Wing & Gong's (1993) depth-first
 * search over the operations that may go next, in the just-in-time form of
 * Lowe ("Testing for linearizability", 2017): an operation is tried only
 * once every operation it must follow has been placed, and the search backs
 * up as soon as some operation's return is reached without it placed. It
 * remembers every (set of placed operations, register value) pair it has
 * seen and never explores one twice, as Porcupine (Athalye 2017) does;
 * values are interned to small integers so a state is one number.
 *
 * It must not: do I/O, read a clock, keep global state, or write to or
 * keep anything of the caller's. It is used by the deterministic Raft
 * simulator (tests/sim) and by `spectra check`.
 */
#ifndef SP_CHECK_LINEARIZABLE_H
#define SP_CHECK_LINEARIZABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lin_kind {
	LIN_READ = 1, /* GET: result is the value read */
	LIN_WRITE,    /* SET: arg is the value written */
	LIN_CAS,      /* compare-and-set: expect -> arg */
	LIN_DELETE,   /* DEL: the key becomes absent */
};

/*
 * What the client learned. LIN_FAIL means the operation definitely did not
 * change the register: for a READ, WRITE or DELETE that it never took
 * effect, for a CAS that its compare was unequal or that it never took
 * effect. LIN_UNKNOWN means it may or may not have taken effect (a
 * timeout, a lost connection): its return time is treated as +infinity.
 */
enum lin_outcome {
	LIN_OK = 1,
	LIN_FAIL,
	LIN_UNKNOWN,
};

/* A value, or nil for an absent key. p is ignored when nil. */
struct lin_value {
	bool nil;
	const uint8_t *p;
	size_t len;
};

/* One operation of the history. */
struct lin_op {
	uint64_t client; /* the process that issued it; not used by the check */
	const uint8_t *key;
	size_t klen;
	enum lin_kind kind;
	struct lin_value arg;	 /* WRITE: value written; CAS: new value */
	struct lin_value expect; /* CAS: expected old value */
	struct lin_value result; /* READ with LIN_OK: the value read */
	/* Times on one clock, in any unit. call <= ret, except that ret is
	 * ignored for LIN_UNKNOWN. An operation precedes another only when
	 * its ret is strictly less than the other's call: equal times count
	 * as concurrent. */
	uint64_t call, ret;
	enum lin_outcome outcome;
};

enum lin_verdict {
	LIN_LINEARIZABLE = 1, /* every key is linearizable */
	LIN_VIOLATION,	      /* some key is not (see key and bad_op) */
	LIN_GAVE_UP,	      /* no key is known bad, but a search hit max_steps or was stopped */
};

struct lin_result {
	enum lin_verdict verdict;
	/*
	 * The key the verdict is about: for LIN_VIOLATION the first key (in
	 * order of first appearance in ops) that is not linearizable, for
	 * LIN_GAVE_UP the first key whose search hit the budget or was
	 * stopped; NULL and 0 for LIN_LINEARIZABLE. Points into the caller's
	 * ops.
	 */
	const uint8_t *key;
	size_t klen;
	/*
	 * LIN_VIOLATION: the index in ops of an operation of that key that
	 * could not be linearized: the one whose return stopped the longest
	 * partial linearization the search built. SIZE_MAX for the other
	 * verdicts. When lin_check returns SP_ERR_INVAL, the malformed op.
	 */
	size_t bad_op;
	uint64_t steps;	      /* search steps taken, all keys together */
	size_t keys;	      /* distinct keys in the history */
	size_t keys_violated; /* keys found not linearizable */
	size_t keys_gave_up;  /* keys whose search hit max_steps or was stopped */
	/*
	 * lin_check_ex only: should_stop said stop. The key being searched
	 * then is counted in keys_gave_up, and so is every key after it in
	 * order of first appearance, none of which was searched; keys_skipped
	 * says how many those were.
	 */
	bool stopped;
	size_t keys_skipped;
};

/*
 * lin_check decides whether the n operations in ops form a linearizable
 * history and fills *res.
 *
 * The model, per key: a register, initially nil. A WRITE sets it, a DELETE
 * sets it to nil, a READ returns it, a CAS sets it to arg when it equals
 * expect. Operations are weighed by outcome:
 *  - LIN_OK: took effect exactly once between call and ret. A READ's result
 *    must be the register's value at that point; an OK CAS must have found
 *    expect there.
 *  - LIN_FAIL: never changed the register. A failed CAS may have compared
 *    unequal, or never run; since a compare that changes nothing is as
 *    good as not running, a failed operation of any kind constrains
 *    nothing and is left out of the search.
 *  - LIN_UNKNOWN: took effect at most once, at any time after call. A READ
 *    whose result is unknown constrains nothing and is left out; a WRITE,
 *    DELETE or CAS may be placed anywhere after its call, or nowhere (an
 *    unknown CAS placed where expect does not hold is the same as placed
 *    nowhere). One whose new value no READ or CAS that may come after it
 *    looks at is left out as well: placing it can only make a read fail.
 *
 * Deciding linearizability is NP-complete (Gibbons & Korach 1997) and the
 * search is exponential at worst, in how many operations overlap and how
 * many LIN_UNKNOWN ones wait to be placed. A history from a handful of
 * clients, one operation each at a time, costs a few steps per operation.
 * max_steps bounds the search of each key (a step is one operation tried
 * at one point of the search, or one step back); 0 means no bound. A key
 * that hits it is reported as given up, never as a violation or as
 * linearizable. The search remembers what it has seen: its memory grows
 * with the steps taken (about 50 bytes each, plus a bit per LIN_UNKNOWN
 * operation of the key), so a bound also bounds memory.
 *
 * Returns 0 with the verdict in *res, SP_ERR_INVAL when an operation is
 * malformed (kind or outcome out of range, call > ret on an operation that
 * is not LIN_UNKNOWN, a NULL pointer with a non-zero length; res->bad_op
 * names it), or SP_ERR_TOOBIG for more than 2^30 operations.
 *
 * ops and every key and value they point to are borrowed for the call;
 * res->key points into them afterwards.
 */
int lin_check(const struct lin_op *ops, size_t n, uint64_t max_steps, struct lin_result *res);

/* Polls of should_stop, when lin_options.poll_steps is 0: one every this
 * many search steps of a key. */
#define LIN_POLL_STEPS 4096

/*
 * Options for lin_check_ex. A zeroed struct asks for what lin_check(ops,
 * n, 0, res) does: no bound.
 */
struct lin_options {
	/* Bounds the search of each key, as lin_check's max_steps; 0: none. */
	uint64_t max_steps;
	/*
	 * If set, called with stop_ctx every poll_steps steps of a key's
	 * search (never at a key's first step, so a key decided in fewer
	 * steps is decided whatever the function says). Returning true ends
	 * the check: the key being searched gives up, and so do the keys not
	 * yet searched, without being searched. This is how a caller bounds
	 * the check in time without the checker reading a clock: the
	 * function reads one. It must not change ops.
	 */
	bool (*should_stop)(void *stop_ctx);
	void *stop_ctx;
	/* Steps between polls of should_stop; 0: LIN_POLL_STEPS. */
	uint64_t poll_steps;
};

/*
 * lin_check_ex is lin_check with options: a step bound per key and a
 * caller's function that may stop the check (struct lin_options). With
 * opts NULL it is lin_check(ops, n, 0, res). Results, errors and
 * ownership are lin_check's; a check that was stopped and found no
 * violation gives LIN_GAVE_UP with res->stopped set, and res->key names
 * the key whose search was stopped (or the first key that gave up on
 * max_steps before it, if one did).
 */
int lin_check_ex(const struct lin_op *ops, size_t n, const struct lin_options *opts,
		 struct lin_result *res);

/*
 * lin_explain picks, for a violation found by lin_check, the operations a
 * person needs to see to understand it: all of them are of the violating
 * key and constrain the register (LIN_FAIL ops and reads of unknown
 * outcome never do, so they are left out). In order of priority:
 *  1. res->bad_op, the op that could not be placed;
 *  2. the last op called before bad_op returned that wrote the value
 *     bad_op needed (a READ's result, a CAS's expect), if bad_op needed
 *     one and such an op exists -- a value nobody wrote explains itself;
 *  3. the ops that immediately precede bad_op in real time: they returned
 *     before it was called, and no other op of the key came wholly
 *     between them and it;
 *  4. the ops whose intervals overlap bad_op's, equal times included (a
 *     LIN_UNKNOWN op's interval never ends).
 * That is enough to read e.g. "the read saw v1 during [t1,t2], but the
 * write of v2 returned at t0 < t1 and no write of v1 was called after
 * it".
 *
 * ops and n are what was given to lin_check, res what it filled with
 * LIN_VIOLATION. Writes up to cap indices into out_idx, in order of call
 * time (ties by index), the highest-priority ones when there are more
 * than cap; returns how many ops belong to the explanation, which may be
 * more than cap. Returns 0 when res is not a violation or res->bad_op is
 * not an op of ops. Borrows everything for the call; out_idx is the
 * caller's and may be NULL when cap is 0.
 */
size_t lin_explain(const struct lin_op *ops, size_t n, const struct lin_result *res,
		   size_t *out_idx, size_t cap);

/* lin_verdict_name returns "linearizable", "violation", "gave up" or
 * "unknown" (a static string). */
const char *lin_verdict_name(enum lin_verdict verdict);

#endif
