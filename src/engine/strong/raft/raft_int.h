/*
 * raft_int: the core's private state, shared by its files (core.c: log,
 * update queue and dispatch; election.c; replication.c; snapshot.c;
 * read.c; membership.c). Nothing outside src/engine/strong/raft includes
 * it. Functions here are prefixed raft__.
 */
#ifndef SP_ENGINE_STRONG_RAFT_INT_H
#define SP_ENGINE_STRONG_RAFT_INT_H

#include "engine/strong/raft/raft.h"
#include "common/alloc.h"
#include "common/err.h"

/* Canaries: bugs planted on purpose (-DRAFT_CANARY=k) to prove that the
 * simulator catches them. Never set in a real build. */
#define RAFT_CANARY_COMMIT_OLD_TERM	1
#define RAFT_CANARY_VOTE_BEFORE_PERSIST 2
#define RAFT_CANARY_LEASE_NO_DRIFT	3
#define RAFT_CANARY_ACK_BEFORE_PERSIST	4
#ifndef RAFT_CANARY
#define RAFT_CANARY 0
#endif

#define RAFT_MAX_INFLIGHT 1024
#define RAFT_LEASE_RING	  64

enum progress_state { PR_PROBE = 0, PR_REPLICATE, PR_SNAPSHOT };

/* The leader's view of one other member (§3.5 nextIndex / matchIndex,
 * plus the flow-control state of §10.2 in etcd's manner). */
struct progress {
	uint64_t id;
	uint8_t role; /* enum raft_member_role */
	enum progress_state state;
	uint64_t match, next;
	bool probe_sent; /* PR_PROBE: one APPEND out, wait for its answer */
	/* PR_REPLICATE: last index of each APPEND in flight, oldest first. */
	uint64_t inflight[RAFT_MAX_INFLIGHT];
	uint32_t inflight_head, inflight_n;
	uint64_t match_at_last_hb; /* to spot a stalled pipeline */
	/* PR_SNAPSHOT */
	struct raft_snapshot_meta snap_meta; /* the snapshot being sent */
	uint64_t snap_index, snap_offset;
	uint32_t snap_stalls; /* timeouts in a row without progress */
	bool snap_chunk_out, snap_installing;
	uint64_t snap_sent_ms;
	/* Liveness: check-quorum (§6.2) and heartbeat rounds (§6.4). */
	bool recent_active;
	uint64_t acked_round;
	bool need_heartbeat;
};

struct held_msg {
	struct raft_msg msg; /* no pointers: responses only */
	uint64_t need_seq;
};

struct pending_read {
	uint64_t id;
	uint64_t from; /* RAFT_NONE for a local read, else the follower */
	uint64_t index;
	uint64_t round; /* 0 until it joins a round */
};

struct forwarded_read {
	uint64_t id;
	uint64_t sent_ms;
};

struct seq_mark {
	uint64_t seq, last_index;
};

struct conf_at {
	uint64_t index;
	struct raft_conf conf;
};

/* A growable array of T, for the core's queues. */
#define VEC(T)                                                                                     \
	struct {                                                                                   \
		T *v;                                                                              \
		size_t n, cap;                                                                     \
	}

struct raft {
	struct raft_config cfg;
	uint64_t id;
	uint64_t rng;

	/* Persistent state (§3.8) as the core believes it. */
	uint64_t term, vote;
	enum raft_role role;
	uint64_t leader;

	/* The log in memory: entries[0] has index base_index + 1. */
	struct raft_entry *entries;
	size_t n_entries, cap_entries;
	uint64_t base_index, base_term;
	struct raft_snapshot_meta snap; /* latest snapshot (saved or installed) */
	bool has_snap;
	uint64_t commit, applied;

	/* Configurations of the entries in the log, oldest first; v[0] is the
	 * one in force at base (or the snapshot). Current = last. */
	VEC(struct conf_at) confs;

	/* Persistence (raft_update's persist part). */
	uint64_t unstable_from; /* first index not yet handed out to persist */
	uint64_t trunc_after;	/* UINT64_MAX when none pending */
	bool hs_dirty;
	uint64_t seq_assigned;	/* last persist_seq handed out */
	uint64_t seq_persisted; /* raft_persisted's latest */
	uint64_t stable_index;	/* last index known durable */
	VEC(struct seq_mark) marks;
	VEC(struct held_msg) held;

	/* Timers, in ms of the caller's clock. */
	uint64_t now;
	uint64_t election_deadline;
	uint64_t last_leader_contact; /* also the start time (see raft_open) */
	uint64_t next_heartbeat;
	uint64_t next_quorum_check;

	/* Elections. */
	uint64_t votes_granted[RAFT_MAX_MEMBERS];
	uint32_t n_votes;
	uint64_t self_vote_seq; /* candidate: seq that makes its own vote durable */

	/* Leader state. */
	/* Slots; role 0 marks a free one. A member keeps its slot while it
	 * stays in the configuration, so pointers to it stay valid. */
	struct progress prs[RAFT_MAX_MEMBERS];
	uint32_t n_prs;		   /* slots in use or used before: loop bound */
	uint64_t term_start_index; /* index of this term's no-op */
	uint64_t transferee;
	uint64_t transfer_deadline;
	bool timeout_now_sent;

	/* Heartbeat rounds (§6.4, §6.4.1). */
	uint64_t round;	      /* latest round started */
	uint64_t round_acked; /* latest round a quorum acknowledged */
	bool round_wanted;    /* reads wait for a round not yet started */
	uint64_t round_start[RAFT_LEASE_RING];
	uint64_t lease_until;		/* leader clock; 0: no lease */
	VEC(struct pending_read) reads; /* leader: waiting for index or round */
	VEC(struct forwarded_read) fwd; /* follower: sent to the leader */

	/* Receiving a snapshot. */
	bool snap_rx_active, snap_rx_complete, snap_rx_handed;
	struct raft_snapshot_meta snap_rx;
	uint64_t snap_rx_bytes;
	struct sp_buf snap_rx_chunk; /* bytes received since the last update */
	struct sp_buf snap_rx_taken; /* the bytes the last update handed out */
	uint64_t snap_rx_chunk_offset;
	uint64_t snap_rx_leader;

	/* Outputs accumulated for the next raft_take_update. */
	VEC(struct raft_msg) out;
	VEC(struct raft_msg) out_taken;
	VEC(struct raft_read) ready_reads;
	VEC(struct raft_read) ready_reads_taken;
	bool role_changed;
	uint64_t reported_term, reported_leader;
	enum raft_role reported_role;

	struct raft_stats stats;
};

#define VEC_PUSH(vec, item)                                                                        \
	do {                                                                                       \
		if ((vec).n == (vec).cap) {                                                        \
			(vec).cap = (vec).cap ? (vec).cap * 2 : 16;                                \
			(vec).v = sp_realloc((vec).v, (vec).cap * sizeof(*(vec).v));               \
		}                                                                                  \
		(vec).v[(vec).n++] = (item);                                                       \
	} while (0)

/* core.c */
uint64_t raft__rand(struct raft *r);
void raft__reset_election_timer(struct raft *r);
const struct raft_conf *raft__conf(const struct raft *r);
const struct raft_conf *raft__conf_at(const struct raft *r, uint64_t index);
bool raft__is_voter(const struct raft *r, uint64_t id);
uint32_t raft__n_voters(const struct raft *r);
void raft__append(struct raft *r, uint64_t term, uint8_t type, const void *data, size_t len);
void raft__truncate_after(struct raft *r, uint64_t index);
void raft__send(struct raft *r, const struct raft_msg *m);
void raft__send_held(struct raft *r, const struct raft_msg *m);
bool raft__persist_pending(const struct raft *r);
uint64_t raft__need_seq(const struct raft *r);
void raft__set_hard_state(struct raft *r, uint64_t term, uint64_t vote);
bool raft__log_up_to_date(const struct raft *r, uint64_t last_index, uint64_t last_term);
void raft__rebuild_progress(struct raft *r);
struct progress *raft__progress(struct raft *r, uint64_t id);

/* election.c */
void raft__become_follower(struct raft *r, uint64_t term, uint64_t leader);
void raft__campaign(struct raft *r, bool prevote, bool transfer);
void raft__step_vote(struct raft *r, const struct raft_msg *m);
void raft__step_vote_resp(struct raft *r, const struct raft_msg *m);
void raft__maybe_win(struct raft *r);
bool raft__in_lease(const struct raft *r);

/* replication.c */
void raft__become_leader(struct raft *r);
void raft__accept_leader(struct raft *r, uint64_t from);
void raft__step_append(struct raft *r, const struct raft_msg *m);
void raft__step_append_resp(struct raft *r, const struct raft_msg *m);
void raft__maybe_commit(struct raft *r);
struct progress *raft__responder(struct raft *r, const struct raft_msg *m);
uint64_t raft__quorum_value(uint64_t *v, uint32_t n);
void raft__flush_sends(struct raft *r);
void raft__heartbeat(struct raft *r);
void raft__leader_tick(struct raft *r);

/* snapshot.c */
void raft__send_snapshot_chunk(struct raft *r, struct progress *pr);
void raft__step_snapshot(struct raft *r, const struct raft_msg *m);
void raft__step_snapshot_resp(struct raft *r, const struct raft_msg *m);

/* read.c */
void raft__start_round(struct raft *r);
void raft__want_round(struct raft *r);
void raft__round_acked(struct raft *r);
void raft__fail_reads(struct raft *r);
void raft__reads_on_commit(struct raft *r);
void raft__step_read_index(struct raft *r, const struct raft_msg *m);
void raft__step_read_index_resp(struct raft *r, const struct raft_msg *m);
void raft__expire_forwarded(struct raft *r);

/* membership.c */
void raft__maybe_promote(struct raft *r, struct progress *pr);
void raft__maybe_transfer(struct raft *r, struct progress *pr);
void raft__after_commit_conf(struct raft *r);
void raft__step_timeout_now(struct raft *r, const struct raft_msg *m);

#endif
