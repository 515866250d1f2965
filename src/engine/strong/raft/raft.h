/*
 * raft: spectra's consensus core, a pure state machine (sans-I/O).
 *
 * The core implements Raft as described in Ongaro's thesis ("Consensus:
 * Bridging Theory and Practice", 2014; section numbers below are the
 * thesis's) and the extended paper ("In Search of an Understandable
 * Consensus Algorithm", 2014): elections with pre-vote (§9.6) and
 * check-quorum (§6.2), log replication with pipelining, batching and
 * per-follower flow control (§10.2), commitment only by counting entries
 * of the current term (§3.6.2, the paper's §5.4.2 / Figure 8) with a no-op
 * appended at election (§6.4), ReadIndex reads batched per heartbeat round
 * (§6.4), leader leases with an explicit clock-drift bound (§6.4.1),
 * snapshots streamed in chunks (§5), log compaction, single-server
 * membership changes with non-voting catch-up (§4.2.1) and leadership
 * transfer (§3.10).
 *
 * It must not: do I/O, read a clock, allocate randomness of its own, or
 * keep global state. Time comes in through raft_tick; randomness through
 * the seed in the config; everything the node must do comes out through
 * raft_update. The same code therefore runs in spectrad (bound to libuv,
 * a durable log and TCP) and in the deterministic simulator (tests/sim),
 * where every step is checked.
 *
 * The loop, in the spirit of etcd's raft "Ready":
 *
 *   events in:   raft_tick, raft_step (a message), raft_propose,
 *                raft_read_index, raft_persisted, raft_snapshot_saved,
 *                raft_snapshot_installed, raft_add/remove/transfer
 *   actions out: raft_take_update fills a struct raft_update with
 *                 1. hard state and entries to persist (group them; call
 *                    raft_persisted(seq) once they are durable),
 *                 2. snapshot chunks received, to be written,
 *                 3. messages to send (already safe to send: anything
 *                    that promises durable state is held inside the core
 *                    until raft_persisted says it is on disk),
 *                 4. committed entries to apply, in order,
 *                 5. reads that may now be served, and role changes.
 *
 * Everything an update points to is borrowed: valid until the next call
 * into the core. Entries are copied into the core on propose and on
 * receipt; the caller owns nothing the core returns.
 */
#ifndef SP_ENGINE_STRONG_RAFT_H
#define SP_ENGINE_STRONG_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Node ids are non-zero; 0 means "none". */
#define RAFT_NONE	 0
#define RAFT_MAX_MEMBERS 16

enum raft_role {
	RAFT_FOLLOWER = 0,
	RAFT_PRECANDIDATE, /* running a pre-vote (§9.6); term not yet bumped */
	RAFT_CANDIDATE,
	RAFT_LEADER,
};
const char *raft_role_name(enum raft_role role);

enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 1, /* opaque command for the state machine */
	RAFT_ENTRY_NOOP = 2,   /* appended by each new leader (§6.4) */
	RAFT_ENTRY_CONF = 3,   /* membership: data is raft_conf_encode's output */
};

struct raft_entry {
	uint64_t term;
	uint64_t index;
	uint8_t type; /* enum raft_entry_type */
	uint32_t len;
	const uint8_t *data; /* len bytes; borrowed (see the header comment) */
};

enum raft_member_role {
	RAFT_VOTER = 1,
	RAFT_LEARNER = 2, /* receives the log, does not vote or count (§4.2.1) */
};

/* A membership configuration. */
struct raft_conf {
	uint32_t n;
	struct {
		uint64_t id;
		uint8_t role; /* enum raft_member_role */
	} members[RAFT_MAX_MEMBERS];
};

/* raft_conf_encode appends conf's wire form to out. raft_conf_decode
 * parses it: 0, or SP_ERR_PROTO for bytes that are not a valid conf
 * (duplicate or zero id, too many members, bad role, trailing bytes). */
void raft_conf_encode(const struct raft_conf *conf, struct sp_buf *out);
int raft_conf_decode(const uint8_t *p, size_t len, struct raft_conf *conf);
/* raft_conf_role returns the role of id in conf, or 0 when absent. */
int raft_conf_role(const struct raft_conf *conf, uint64_t id);

/* What must survive a crash besides the log (§3.8, Figure 3.1). */
struct raft_hard_state {
	uint64_t term;
	uint64_t vote;	 /* candidate voted for in term, or RAFT_NONE */
	uint64_t commit; /* a hint only: it may lag, never lead, the truth */
};

/* What a snapshot stands for: the state machine after applying every
 * entry up to and including index, under configuration conf. */
struct raft_snapshot_meta {
	uint64_t index;
	uint64_t term;
	struct raft_conf conf;
};

enum raft_msg_type {
	RAFT_MSG_APPEND = 1,	  /* AppendEntries (§3.5), also heartbeat when empty */
	RAFT_MSG_APPEND_RESP,	  /* its answer */
	RAFT_MSG_VOTE,		  /* RequestVote (§3.4) */
	RAFT_MSG_VOTE_RESP,	  /* its answer */
	RAFT_MSG_PREVOTE,	  /* pre-vote request (§9.6), at term+1, changes nothing */
	RAFT_MSG_PREVOTE_RESP,	  /* its answer */
	RAFT_MSG_SNAPSHOT,	  /* InstallSnapshot chunk (§5.3 / Figure 5.3) */
	RAFT_MSG_SNAPSHOT_RESP,	  /* its answer */
	RAFT_MSG_TIMEOUT_NOW,	  /* leadership transfer: campaign now (§3.10) */
	RAFT_MSG_READ_INDEX,	  /* follower asks the leader for a read index (§6.4) */
	RAFT_MSG_READ_INDEX_RESP, /* the leader's answer */
	RAFT_MSG__LAST,
};
const char *raft_msg_type_name(int type);

/*
 * One message. Which fields mean something depends on type; the rest are
 * zero. A message the core emits is borrowed until the next call into the
 * core (entries and data point into the core's log or into the caller's
 * chunk buffer); a message given to raft_step is borrowed for the call.
 */
struct raft_msg {
	uint8_t type; /* enum raft_msg_type */
	uint64_t from, to;
	uint64_t term;

	/* APPEND: entries follow (prev_index, prev_term); commit is the
	 * leader's commit index (capped at what the follower is known to
	 * hold). APPEND_RESP: index is the follower's last matching index
	 * on success; on reject, index echoes prev_index and hint is the
	 * follower's last index (a fast back-off hint). */
	uint64_t prev_index, prev_term;
	uint64_t commit;
	uint32_t n_entries;
	const struct raft_entry *entries;
	uint64_t index;
	uint64_t hint;
	bool reject;

	/* VOTE, PREVOTE: candidate's last log entry: its index in index,
	 * its term in log_term.
	 * transfer marks a campaign started by TIMEOUT_NOW, which voters
	 * grant even while they still hear from a leader (§3.10). The
	 * responses use reject = false for a granted vote. */
	uint64_t log_term;
	bool transfer;

	/* Heartbeat round (§6.4 ReadIndex, §6.4.1 leases): every APPEND
	 * carries the leader's current round in ctx, every APPEND_RESP
	 * echoes it. READ_INDEX / READ_INDEX_RESP carry the follower's
	 * request id in ctx and, in the response, the read index in index
	 * (reject when the leader cannot serve it). */
	uint64_t ctx;

	/* SNAPSHOT: a chunk of the snapshot (snap.index, snap.term,
	 * snap.conf) starting at byte offset; last marks the final chunk.
	 * SNAPSHOT_RESP: snap.index and snap.term name the snapshot; offset
	 * is the number of bytes the follower holds (the next chunk it
	 * wants); hint = 1 says it holds a whole snapshot and is installing
	 * it (send no more chunks); last says it has installed the snapshot
	 * (or already held its last entry); reject says it dropped the
	 * transfer (the leader restarts it at offset 0). A transfer keeps
	 * the snapshot it started with until it ends or restarts at offset
	 * 0, when it takes the latest: the node keeps a snapshot readable
	 * while a transfer of it runs, or drops the SNAPSHOT message when it
	 * cannot read it (the transfer then restarts after a timeout). */
	struct raft_snapshot_meta snap;
	uint64_t offset;
	uint32_t len;
	const uint8_t *data;
	bool last;
};

/* raft_msg_encode appends msg's wire form to out (one frame body; the
 * transport adds its own framing). */
void raft_msg_encode(const struct raft_msg *msg, struct sp_buf *out);
/*
 * raft_msg_decode parses one message from exactly len bytes. Entries and
 * chunk data point into p (no copy): the entry array is written to
 * entries_buf, which must hold max_entries, and the message is refused if
 * it carries more. Returns 0, or SP_ERR_PROTO for bytes that are not one
 * valid message (unknown type or version, truncated, trailing bytes,
 * lengths that overrun), or SP_ERR_TOOBIG for too many entries.
 */
int raft_msg_decode(const uint8_t *p, size_t len, struct raft_msg *msg,
		    struct raft_entry *entries_buf, uint32_t max_entries);

struct raft_config {
	uint64_t id;   /* this node; non-zero */
	uint64_t seed; /* randomises election timeouts; differs per node */

	/* Times in milliseconds of the clock passed to raft_tick. */
	uint32_t election_timeout_ms; /* minimum; each timeout is in [T, 2T) */
	uint32_t heartbeat_ms;	      /* leader's heartbeat interval */
	/* Bound on how much faster or slower any node's clock may run than
	 * real time, in parts per million (100000 = 10%). Leader leases are
	 * shortened by it (§6.4.1); 0 disables leases altogether. */
	uint32_t max_clock_drift_ppm;

	/* Replication flow control (§10.2). */
	uint32_t max_entries_per_msg; /* also bounded by max_bytes_per_msg */
	uint32_t max_bytes_per_msg;
	uint32_t max_inflight_msgs;  /* APPENDs in flight per follower */
	uint32_t max_snapshot_chunk; /* bytes per SNAPSHOT message */

	/* Proposals waiting to commit beyond this many entries are refused
	 * with SP_ERR_FULL (back-pressure for the caller). */
	uint32_t max_uncommitted;
	/* A learner within this many entries of the leader's last index
	 * after a round is promoted to voter (§4.2.1). */
	uint32_t catchup_entries;
	/* Entries kept after a compaction so slow followers can catch up
	 * from the log instead of a snapshot. */
	uint32_t compaction_trail;
};

/* raft_config_default fills defaults for id (seed, timeouts 150/50 ms,
 * 10% drift, 256 entries / 1 MiB per message, 64 in flight, 64 KiB
 * chunks, 16384 uncommitted, 256 catch-up, 1024 trail). */
void raft_config_default(struct raft_config *cfg, uint64_t id);

/* What the node read back from storage at start. All borrowed for the
 * call. entries are the log after snap.index, contiguous and in order. */
struct raft_restore {
	struct raft_hard_state hs;
	bool has_snapshot;
	struct raft_snapshot_meta snap;
	const struct raft_entry *entries;
	size_t n_entries;
	/* For a brand-new cluster with no snapshot and no log: the initial
	 * configuration (every node of the new cluster is given the same). A
	 * node joining an existing cluster starts with conf.n == 0 and learns
	 * its configuration from the leader. */
	struct raft_conf bootstrap;
};

/* A linearizable read whose index is known: serve it once the state
 * machine has applied index (§6.4 step 4). */
struct raft_read {
	uint64_t id;	/* the caller's id from raft_read_index */
	uint64_t index; /* read index; 0 with err set when it failed */
	int err;	/* 0, or SP_ERR_NOTLEADER (retry elsewhere or later) */
};

/* The counters a node reports (INFO, bench). */
struct raft_stats {
	uint64_t elections_started, prevotes_started, leader_changes;
	uint64_t msgs_sent, entries_sent, snapshots_sent, snapshot_chunks_sent;
	uint64_t proposals, proposals_refused, reads, read_rounds, lease_reads;
	uint64_t transfers;
};

/*
 * The actions a call produced; see the header comment. Borrowed until the
 * next call into the core. The caller performs them in this order:
 *  - persist: if truncate_after != UINT64_MAX, drop every stored entry
 *    with index > truncate_after; then append entries (indices are
 *    contiguous and follow the stored log); then store hs if hs_changed.
 *    When persist_seq != 0, call raft_persisted(persist_seq) once all
 *    of that (and everything before it) is durable. Persist calls may be
 *    grouped: raft_persisted(s) covers every seq <= s.
 *  - snapshot chunks: write snap_chunk (len bytes at snap_offset of the
 *    snapshot described by snap_meta) to a staging area; when
 *    snap_complete, the staged snapshot is whole: make it durable, load
 *    it into the state machine, replace the log, then call
 *    raft_snapshot_installed(snap_meta.index).
 *  - send every message in msgs (loss and reordering are tolerated). A
 *    SNAPSHOT message comes with data == NULL and len == 0: the sender
 *    fills up to max_snapshot_chunk bytes from offset of
 *    the snapshot at snap.index, and sets last when that reaches the end.
 *  - apply committed entries in order (NORMAL to the state machine; NOOP
 *    and CONF are informational).
 *  - answer reads whose index the state machine has now applied.
 */
struct raft_update {
	uint64_t persist_seq;
	bool hs_changed;
	struct raft_hard_state hs;
	uint64_t truncate_after;
	const struct raft_entry *entries;
	size_t n_entries;

	const uint8_t *snap_chunk;
	uint32_t snap_chunk_len;
	uint64_t snap_offset;
	bool snap_complete;
	struct raft_snapshot_meta snap_meta;

	struct raft_msg *msgs;
	size_t n_msgs;

	const struct raft_entry *committed;
	size_t n_committed;

	const struct raft_read *reads;
	size_t n_reads;

	bool role_changed; /* role, term or leader changed */
	enum raft_role role;
	uint64_t term, leader;
};

struct raft;

/*
 * raft_open makes a core from cfg and what storage held (restore). now_ms
 * is the caller's clock at start: the node treats it as the last time it
 * heard from a leader, so a node that just restarted does not vote or
 * lead before a full election timeout (this keeps other leaders' leases
 * sound). Returns 0 and sets *out, or SP_ERR_INVAL for a bad config or a
 * restore whose entries are not contiguous. Owned by the caller; release
 * with raft_close.
 */
int raft_open(struct raft **out, const struct raft_config *cfg, const struct raft_restore *restore,
	      uint64_t now_ms);
void raft_close(struct raft *r);

/* raft_tick moves the core's clock to now_ms (never backwards; a smaller
 * value is ignored) and fires the election, heartbeat and check-quorum
 * timers that are due. Call it every few milliseconds. */
void raft_tick(struct raft *r, uint64_t now_ms);

/* raft_step handles one message from a peer. The core stamps it with the
 * time of the last raft_tick (a follower's last contact with its leader,
 * which leases rely on): after a stall, tick with the current time before
 * stepping. Returns 0, or SP_ERR_INVAL
 * for a message that is not for this node or is malformed; the message
 * is then ignored and no state changes. */
int raft_step(struct raft *r, const struct raft_msg *msg);

/*
 * raft_propose appends a NORMAL entry with a copy of data on the leader
 * and sets *index to its index (the caller watches for it among the
 * committed entries, and for its term to be the one it proposed in).
 * Returns 0, SP_ERR_NOTLEADER (not leader, or a leadership transfer is
 * under way), or SP_ERR_FULL (too many uncommitted entries).
 */
int raft_propose(struct raft *r, const void *data, size_t len, uint64_t *index, uint64_t *term);

/*
 * raft_read_index asks for a linearizable read (§6.4). On the leader the
 * read joins the next heartbeat round: many reads share one round. On a
 * follower the request goes to the leader. The answer comes back in a
 * later update's reads with this id. Returns 0, or SP_ERR_NOTLEADER when
 * no leader is known (retry later).
 */
int raft_read_index(struct raft *r, uint64_t id);

/*
 * raft_read_lease returns, in *index, the commit index the leader may
 * serve a read at without a round trip, while its lease holds (§6.4.1):
 * a majority acknowledged a heartbeat sent at time t, and now is before
 * t + election_timeout * (1 - drift) / (1 + drift). Returns 0, or
 * SP_ERR_NOTLEADER (not leader, no lease, lease expired, or a transfer
 * under way; the caller falls back to raft_read_index).
 */
int raft_read_lease(struct raft *r, uint64_t *index);

/* raft_persisted reports that every persist action up to seq is durable.
 * Held messages (votes, append acknowledgements) go out in the next
 * update; the leader counts its own log for commitment from here. */
void raft_persisted(struct raft *r, uint64_t seq);

/*
 * raft_snapshot_saved reports that the state machine up to index (<= the
 * applied index) is durable and can be streamed to followers. The core
 * compacts its log, keeping compaction_trail entries. Returns 0 or
 * SP_ERR_INVAL (index beyond applied or before the current snapshot).
 */
int raft_snapshot_saved(struct raft *r, uint64_t index);

/* raft_snapshot_installed reports that a received snapshot is durable and
 * loaded; the core resets its log to it and answers the leader. */
void raft_snapshot_installed(struct raft *r, uint64_t index);

/*
 * Membership (§4.2.1, one server at a time). raft_add_server adds id as a
 * learner; the leader promotes it to voter once it has caught up.
 * raft_remove_server removes id (a leader that removes itself steps down
 * once the change commits, §4.2.2). raft_transfer_leadership hands the
 * leadership to id (§3.10; RAFT_NONE picks the most up-to-date voter).
 * Each returns 0, SP_ERR_NOTLEADER, SP_ERR_AGAIN (another change is not
 * yet committed, or no entry of this term is committed yet), SP_ERR_EXISTS
 * / SP_ERR_NOTFOUND (id already in / not in the configuration), or
 * SP_ERR_INVAL.
 */
int raft_add_server(struct raft *r, uint64_t id);
int raft_remove_server(struct raft *r, uint64_t id);
int raft_transfer_leadership(struct raft *r, uint64_t id);

/*
 * raft_take_update fills *u with the actions accumulated since the last
 * call and returns true when there is any. Everything it points to stays
 * valid until the next call into the core.
 */
bool raft_take_update(struct raft *r, struct raft_update *u);

/* Read-only views, for the node, the simulator's invariant checks and
 * tests. raft_entry_at returns NULL for an index outside the log. */
enum raft_role raft_role_of(const struct raft *r);
uint64_t raft_id(const struct raft *r);
uint64_t raft_term(const struct raft *r);
uint64_t raft_leader(const struct raft *r);
uint64_t raft_vote(const struct raft *r);
uint64_t raft_commit_index(const struct raft *r);
uint64_t raft_applied_index(const struct raft *r);
uint64_t raft_first_index(const struct raft *r); /* first entry in memory */
uint64_t raft_last_index(const struct raft *r);
uint64_t raft_last_term(const struct raft *r);
uint64_t raft_snapshot_index(const struct raft *r);
uint64_t raft_term_at(const struct raft *r, uint64_t index); /* 0 unknown */
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index);
const struct raft_conf *raft_configuration(const struct raft *r);
void raft_get_stats(const struct raft *r, struct raft_stats *st);
/* raft_peer_match: on a leader, the highest index known replicated on
 * member id (§3.5 matchIndex). Returns 0, or SP_ERR_NOTLEADER (not the
 * leader) or SP_ERR_NOTFOUND (id is not another member). */
int raft_peer_match(const struct raft *r, uint64_t id, uint64_t *match);

#endif
