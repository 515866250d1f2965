/*
 * causal: decides whether a recorded history of a key-value store is
 * causally consistent, and if not, names what went wrong.
 *
 * The model is causal consistency (CC) for registers whose written values
 * are unique, as in Bouajjani, Enea, Guerraoui and Hamza, "On verifying
 * causal consistency" (POPL 2017). Each key is a register that starts
 * absent (the read of it returns null). Operations are grouped in client
 * sessions, whose operations are sequential: session order is the order
 * of their invoke times. Because every written value is unique, each read
 * that returned a value reads from exactly one write. The causal order
 * (CO) is the transitive closure of session order and reads-from. A
 * history is causally consistent when CO is acyclic and no read misses a
 * write in its causal past; with unique values that is the absence of
 * the bad patterns of Bouajjani et al. for CC:
 *  - CyclicCO: CO has a cycle;
 *  - WriteCORead: a read r of k returns w1's value while some write w2 of
 *    k has w1 <CO w2 <CO r;
 *  - WriteCOInitRead: a read of k returns null while some write of k is
 *    CO-before it;
 *  - ThinAirRead: a read returns a value that no write of that key wrote,
 *    or one whose write failed.
 * The four session guarantees of Terry et al. (1994) are special cases of
 * the two middle patterns; a violation that is one of them is reported
 * under the guarantee's name instead (see enum cc_kind).
 *
 * How: a topological sort of the session-order and reads-from graph finds
 * a cycle, if any. Otherwise each operation gets, in topological order, a
 * vector clock over the sessions that write: for each such session, the
 * position of its latest operation in the operation's causal past. Then
 * "a <CO b" is one lookup, and a read misses a write when, for some
 * session, the latest write of the key in the read's past is CO-after
 * what the read returned. Time is O(n log n + n * W) and memory
 * O((writes + sessions) * W) for n operations and W writing sessions.
 *
 * It must not: do I/O, read a clock, keep global state, or write to or
 * keep anything of the caller's. Prefix cc_ (causal consistency): the
 * causal engine (src/engine/causal) owns causal_.
 */
#ifndef SP_CHECK_CAUSAL_H
#define SP_CHECK_CAUSAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check/history.h"

enum cc_op_kind {
	CC_READ = 1, /* value is what was read (NULL: the initial value) */
	CC_WRITE,    /* value is what was written (never NULL) */
};

/*
 * What the client learned. CC_FAIL: certainly not applied (a failed
 * write is not in CO, and a read of its value is a ThinAirRead; a failed
 * read is ignored). CC_INFO: unknown. A write with CC_INFO that some ok
 * read returned was applied: it is in CO at its place in its session. One
 * that no read returned may never have been applied, and is left out of
 * CO (counting it could only invent violations: a later read of its
 * session that misses it is no anomaly if it never happened). A read
 * with CC_INFO is ignored.
 */
enum cc_result {
	CC_OK = 1,
	CC_FAIL,
	CC_INFO,
};

/* One operation of the history. Byte strings are (pointer, length). */
struct cc_op {
	/* The session; NULL means none, and then the decimal process number
	 * is the session (so session "3" and process 3 without one are the
	 * same session). */
	const uint8_t *session;
	size_t slen;
	uint64_t process; /* the client process */
	int64_t node;	  /* the node that served it, -1 unknown; not used by the check */
	enum cc_op_kind kind;
	const uint8_t *key;
	size_t klen;
	const uint8_t *value; /* NULL: null */
	size_t vlen;
	/* Times on one clock. invoke orders a session (ties: the order in
	 * ops); complete is not used by the check. */
	uint64_t invoke, complete;
	enum cc_result result;
};

/*
 * Kinds of violation. The first four are Bouajjani et al.'s bad
 * patterns; the last four are session guarantees, each a WriteCORead or
 * WriteCOInitRead whose overwriting write reached the read in a
 * particular way. A bad read is reported once, under the first of these
 * that applies, tried in this order:
 *  1. read-your-writes: the newer write is an ok write of the read's own
 *     session, before the read in session order;
 *  2. monotonic-reads: the newer write was read by an earlier read of
 *     the same key in the read's session;
 *  3. monotonic-writes: the newer write is a later write of the same
 *     session as the write read (not for WriteCOInitRead);
 *  4. writes-follow-reads: the newer write was read by a read of some
 *     other session that then wrote something in the read's causal past;
 *  5. otherwise WriteCORead or WriteCOInitRead.
 * Steps 2 and 4 look at no more than a few thousand earlier reads per bad
 * read (the nearest first); past that a violation keeps its pattern name.
 * Detection never depends on that bound, only naming does.
 */
enum cc_kind {
	CC_CYCLIC_CO = 1,
	CC_WRITE_CO_READ,
	CC_WRITE_CO_INIT_READ,
	CC_THIN_AIR_READ,
	CC_READ_YOUR_WRITES,
	CC_MONOTONIC_READS,
	CC_MONOTONIC_WRITES,
	CC_WRITES_FOLLOW_READS,
};
#define CC_KIND_MAX CC_WRITES_FOLLOW_READS

/*
 * One bad read, as indices into the caller's ops (SIZE_MAX: none). A
 * CyclicCO violation has none of these set: its ops are in
 * cc_report.cycle.
 */
struct cc_violation {
	enum cc_kind kind;
	size_t read;  /* the read that returned the wrong value */
	size_t write; /* the write it read from; SIZE_MAX for the initial value. For
			 ThinAirRead: a failed write of that value, or a write of it to
			 another key, if there is one */
	size_t newer; /* a write of the same key, CO-after write and CO-before read */
	/* How newer reached the read. monotonic-reads: via_read is the earlier
	 * read of the session that returned newer. writes-follow-reads:
	 * via_read returned newer and via_write followed it in its session and
	 * is CO-before the read. */
	size_t via_read, via_write;
};

/* The outcome of cc_check. Owned by the caller; release with cc_report_free. */
struct cc_report {
	bool causal;		       /* no violation */
	size_t n_violations;	       /* entries of v */
	size_t count[CC_KIND_MAX + 1]; /* violations by kind */
	/* Every violation, in the order of the read's index in ops (a
	 * CyclicCO first and alone: the check stops at a cycle). */
	struct cc_violation *v;
	/* For CyclicCO: indices of ops on one cycle of CO, each causally
	 * before the next and the last before the first. A run of ops of one
	 * session is shortened to its first and last op (session order
	 * implies the ones between). NULL and 0 otherwise. */
	size_t *cycle;
	size_t n_cycle;
	size_t sessions; /* distinct sessions */
	size_t keys;	 /* distinct keys */
	size_t in_co;	 /* ops in CO: ok reads and writes, info writes read */
	/* When cc_check returns SP_ERR_INVAL: the op at fault, the op it
	 * clashes with (a duplicate value's first write; else SIZE_MAX), and
	 * why (a static string). */
	size_t bad_op, bad_other;
	const char *why;
};

/* cc_check refuses a history whose vector clocks would take more than
 * this many bytes (writes and sessions times writing sessions, 4 bytes
 * each). */
#define CC_MAX_CLOCK_BYTES ((size_t)1 << 30)

/*
 * cc_check decides whether the n operations in ops form a causally
 * consistent history, and fills *out with the violations found.
 *
 * Returns 0 with the verdict in *out (which the caller then frees with
 * cc_report_free, violation or not), or:
 *  - SP_ERR_INVAL: an op is malformed (kind or result out of range, a
 *    write without a value, a NULL pointer with a non-zero length), or
 *    two writes (of any result) wrote the same value: out->bad_op,
 *    bad_other and why say which and why;
 *  - SP_ERR_TOOBIG: more than 2^31 ops, or vector clocks larger than
 *    CC_MAX_CLOCK_BYTES.
 * On an error *out holds no memory (cc_report_free is harmless).
 *
 * ops and what they point to are borrowed for the call; the report holds
 * indices into ops, no pointers.
 */
int cc_check(const struct cc_op *ops, size_t n, struct cc_report *out);

/* cc_report_free releases what r owns and zeroes it; r may be NULL. */
void cc_report_free(struct cc_report *r);

/* cc_kind_name returns a kind's name as reported ("CyclicCO", ...,
 * "read-your-writes"), or "?" out of range (static strings). */
const char *cc_kind_name(enum cc_kind kind);

/*
 * cc_ops_from_history converts a parsed history (best parsed with
 * HISTORY_SESSIONS, or every op is its process's session and no node is
 * known) into ops for cc_check: *out gets h->n ops, owned by the caller
 * (free()), whose strings point into h and are valid while h is.
 *
 * Returns 0, or SP_ERR_INVAL when an op is a cas or a delete, which this
 * model does not have; *bad (may be NULL) is then its index and *out is
 * NULL.
 */
int cc_ops_from_history(const struct history *h, struct cc_op **out, size_t *bad);

#endif
