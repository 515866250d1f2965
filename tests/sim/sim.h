/*
 * sim: the deterministic simulator of spectra's Raft core.
 *
 * N cores (src/engine/strong/raft) run against a virtual clock, a simulated
 * network and a simulated disk; a nemesis crashes, restarts, pauses and
 * partitions them and changes their clocks and membership; sim clients run
 * reads and writes through them. After every event the Raft safety
 * properties (Ongaro's thesis Figure 3.2: election safety, leader
 * append-only, log matching, leader completeness, state machine safety)
 * are checked, and at the end of a run the clients' history is checked for
 * linearizability (src/check/linearizable.h).
 *
 * Everything is a function of the seed: one PRNG per concern, one event
 * queue ordered by (time, sequence number), no wall clock, no threads and
 * no iteration over anything whose order depends on addresses or hashing.
 * A failing seed therefore replays exactly with `raft_sim --seed S`.
 *
 * The simulator must not reach into the core's private state
 * (raft_int.h): it sees only what raft.h shows, as spectrad does.
 *
 * Files: rng.c (PRNG), heap.c (event queue), disk.c (the simulated disk),
 * net.c (partitions and delivery), kv.c (the state machine and its
 * snapshots), node.c (one core and the actions of its updates), check.c
 * (the invariants), client.c (clients and the history), nemesis.c
 * (faults), world.c (one seed from start to verdict), selftest.c, main.c.
 */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/strong/raft/raft.h"

#define SIM_MAX_NODES	10 /* node ids 1..SIM_MAX_NODES; slot 0 unused */
#define SIM_MAX_CLIENTS 8
#define SIM_MAX_KEYS	12
#define SIM_MAX_VAL	24
#define SIM_MS		1000ull
#define SIM_S		1000000ull
#define SIM_MAX_ENTRIES 4096 /* decode buffer: more than any max_entries_per_msg */
#define SIM_DRAIN_LIMIT 100000
#define SIM_SERVED	16

/* ---- rng.c: xoshiro256** seeded through splitmix64 ---- */

struct sim_rng {
	uint64_t s[4];
};

/* sim_rng_seed derives an independent stream for one concern of a run. */
void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream);
uint64_t sim_rng_next(struct sim_rng *r);
/* sim_rng_below returns a value in [0, n); n > 0. */
uint64_t sim_rng_below(struct sim_rng *r, uint64_t n);
/* sim_rng_range returns a value in [lo, hi]. */
uint64_t sim_rng_range(struct sim_rng *r, uint64_t lo, uint64_t hi);
double sim_rng_unit(struct sim_rng *r);
bool sim_rng_chance(struct sim_rng *r, double p);
/* sim_rng_logrange draws log-uniformly in [lo, hi] (lo >= 1). */
uint64_t sim_rng_logrange(struct sim_rng *r, uint64_t lo, uint64_t hi);
uint64_t sim_hash64(const void *p, size_t len, uint64_t seed);
uint64_t sim_mix64(uint64_t x);

/* ---- heap.c: the event queue ---- */

enum sim_ev_type {
	EV_TICK = 1,	   /* node: raft_tick */
	EV_DELIVER,	   /* node: a message arrives (ptr, len: its bytes) */
	EV_FSYNC,	   /* node: an fsync covering writes < a completes */
	EV_RESTART,	   /* node: come back up after a crash */
	EV_CRASH,	   /* node: crash now (a: incarnation it was aimed at) */
	EV_CLIENT_ISSUE,   /* client a: start the next operation */
	EV_CLIENT_ARRIVE,  /* node: client a's request b reaches it */
	EV_CLIENT_REPLY,   /* client a: the answer to request b arrives */
	EV_CLIENT_TIMEOUT, /* client a: request b took too long */
	EV_NEMESIS,	   /* the nemesis acts */
	EV_HEAL,	   /* partition generation a ends */
	EV_PHASE,	   /* the run moves to its next phase */
	EV_CHECK,	   /* periodic full checks */
};

struct sim_event {
	uint64_t time; /* global simulated time, microseconds */
	uint64_t seq;  /* tie-break: order of scheduling */
	uint8_t type;  /* enum sim_ev_type */
	uint32_t node;
	uint64_t inc; /* the node's incarnation it was scheduled for */
	uint64_t a, b;
	void *ptr; /* owned by the event (EV_DELIVER: message bytes) */
	uint32_t len;
};

struct sim_heap {
	struct sim_event *v;
	size_t n, cap;
	uint64_t next_seq;
};

void sim_heap_init(struct sim_heap *h);
/* sim_heap_free frees the heap and every pending event's ptr. */
void sim_heap_free(struct sim_heap *h);
/* sim_heap_push copies ev in, assigning its sequence number. */
void sim_heap_push(struct sim_heap *h, struct sim_event *ev);
/* sim_heap_pop moves the earliest event to *ev; false when empty. */
bool sim_heap_pop(struct sim_heap *h, struct sim_event *ev);

/* ---- disk.c: the simulated disk ---- */

/* An immutable snapshot file, shared by reference. */
struct sim_snapfile {
	struct raft_snapshot_meta meta;
	uint8_t *data;
	size_t len;
	uint32_t refs;
};

struct sim_snapfile *sim_snapfile_new(const struct raft_snapshot_meta *meta, const void *data,
				      size_t len);
struct sim_snapfile *sim_snapfile_ref(struct sim_snapfile *s);
void sim_snapfile_unref(struct sim_snapfile *s);

struct sim_dentry {
	uint64_t index, term;
	uint8_t type;
	uint32_t len;
	uint8_t *data; /* owned */
};

enum sim_write_kind {
	W_TRUNC = 1,	/* drop entries with index > after */
	W_APPEND,	/* append e */
	W_HS,		/* replace the hard state */
	W_SNAP_SAVE,	/* our own snapshot: keep it if newer, compact the log */
	W_SNAP_INSTALL, /* a received snapshot: replace snapshot and log */
	W_MARK,		/* end of persist action persist_seq */
};

struct sim_write {
	uint8_t kind;
	uint64_t persist_seq; /* W_MARK */
	uint64_t after;	      /* W_TRUNC */
	struct raft_hard_state hs;
	struct sim_dentry e;
	struct sim_snapfile *snap;
};

struct sim_disk {
	/* Durable state. */
	struct raft_hard_state hs;
	struct sim_dentry *log; /* contiguous, oldest first */
	size_t n_log, cap_log;
	struct sim_snapfile *snap; /* NULL when none */
	/* Unsynced writes, oldest first: q[i] is write number n_synced + i. */
	struct sim_write *q;
	size_t n_q, cap_q;
	uint64_t n_synced, n_issued;
	/* Last log index counting unsynced writes: where the next append
	 * must go. */
	uint64_t written_last;
};

struct sim_disk_stats {
	uint64_t crashes_with_unsynced, writes_lost, torn;
};

void sim_disk_init(struct sim_disk *d);
void sim_disk_free(struct sim_disk *d);
/* sim_disk_write queues w (taking its data and snapshot reference) and
 * returns its write number. */
uint64_t sim_disk_write(struct sim_disk *d, struct sim_write *w);
/* sim_disk_sync makes writes < upto durable. The synced writes are moved
 * to *out (n_out of them; the caller frees them with sim_write_free). */
void sim_disk_sync(struct sim_disk *d, uint64_t upto, struct sim_write **out, size_t *n_out);
void sim_write_free(struct sim_write *w);
/* sim_disk_crash loses the unsynced writes: none survive, or (keep > 0)
 * the first keep of them do, the last of which is torn when torn is set
 * (a torn write is detected on recovery and counts as not written). */
void sim_disk_crash(struct sim_disk *d, size_t keep, bool torn);
/* sim_disk_last returns the durable log's last index (the snapshot's when
 * the log is empty, 0 when there is neither). */
uint64_t sim_disk_last(const struct sim_disk *d);
/* sim_disk_term_at returns the durable term of index: from the log, or
 * the snapshot's term at its index; 0 when unknown. */
uint64_t sim_disk_term_at(const struct sim_disk *d, uint64_t index);
uint64_t sim_disk_snap_index(const struct sim_disk *d);
/* sim_disk_restore fills r from durable state. entries (owned by the
 * caller, free it) holds the log after the snapshot. Returns 0, or -1 with
 * a reason in why when the durable log does not follow the snapshot. */
int sim_disk_restore(const struct sim_disk *d, struct raft_restore *r, struct raft_entry **entries,
		     char *why, size_t why_len);

/* ---- kv.c: the replicated state machine ---- */

enum sim_cmd_op {
	CMD_PUT = 1,
	CMD_CAS = 2,
	CMD_DEL = 3,
};

struct sim_val {
	bool nil;
	uint8_t len;
	char p[SIM_MAX_VAL];
};

/* A client command, as carried in a NORMAL entry. */
struct sim_cmd {
	uint8_t op;
	uint8_t key;
	uint32_t client;
	uint64_t op_id;	  /* unique in the run */
	struct sim_val a; /* PUT: value; CAS: expected */
	struct sim_val b; /* CAS: new value */
};

void sim_cmd_encode(const struct sim_cmd *c, uint8_t *out, size_t *len);
int sim_cmd_decode(const uint8_t *p, size_t len, struct sim_cmd *c);
#define SIM_CMD_MAX (1 + 1 + 4 + 8 + 2 * (2 + SIM_MAX_VAL))

struct sim_kv {
	uint32_t n_keys;
	struct sim_val vals[SIM_MAX_KEYS];
	uint64_t digest; /* XOR over keys of a hash of (key, value) */
	uint64_t applied, applied_term;
	struct raft_conf conf; /* last configuration applied */
};

void sim_kv_init(struct sim_kv *kv, uint32_t n_keys);
/* sim_kv_apply applies c; returns true unless it is a CAS whose compare
 * failed. */
bool sim_kv_apply(struct sim_kv *kv, const struct sim_cmd *c);
/* sim_kv_serialise writes the map (plus pad bytes of filler, so that
 * snapshots span several chunks) into a malloc'd buffer. */
uint8_t *sim_kv_serialise(const struct sim_kv *kv, uint32_t pad, size_t *len);
/* sim_kv_load parses a serialised map; -1 when it is corrupt. */
int sim_kv_load(struct sim_kv *kv, const uint8_t *p, size_t len);
bool sim_val_eq(const struct sim_val *a, const struct sim_val *b);

/* ---- the world ---- */

struct sim_world;

enum sim_phase {
	PHASE_FAULTS = 0, /* nemesis active */
	PHASE_QUIET,	  /* faults healed; clients run; liveness is expected */
	PHASE_DRAIN,	  /* clients stop; the cluster must converge */
	PHASE_DONE,
};

enum sim_read_level {
	READ_INDEX = 1,
	READ_LEASE,
};

/* A client operation outstanding at a node. */
struct sim_pending {
	bool used;
	uint32_t client;
	uint64_t token;
	bool is_read;
	/* writes */
	uint64_t index, term, op_id;
	/* reads */
	uint64_t read_id;
	uint64_t read_index;
	bool read_known;
	uint64_t read_floor; /* highest index known committed when it arrived */
};

struct sim_node {
	uint64_t id;
	bool exists;	    /* created (initially, or by add_server) */
	bool up;	    /* running */
	bool removed;	    /* stopped for good after its removal committed */
	bool initial;	    /* a member of the bootstrap configuration */
	uint64_t inc;	    /* incarnation: bumped by every crash */
	uint64_t add_index; /* index of the conf entry that added it */
	uint64_t paused_until;
	uint64_t crashed_at;   /* global time of the last crash */
	uint64_t next_tick_at; /* when its next tick was due */
	struct raft *core;
	struct raft_config cfg;

	/* Clock: local_us = anchor_local + (global - anchor_global) *
	 * (1e6 + drift_ppm) / 1e6. */
	int64_t drift_ppm;
	uint64_t anchor_global, anchor_local;

	struct sim_disk disk;
	uint32_t fsyncs_scheduled;
	uint64_t last_fsync_at;
	bool crash_armed; /* crash soon after the next persist */

	struct sim_kv kv;
	/* Snapshots the core was told about, newest first: a transfer in
	 * progress may still read an older one. */
	struct sim_snapfile *served[SIM_SERVED];
	bool snap_saving;
	uint64_t last_snap_index;
	/* Incoming snapshot being staged. */
	struct raft_snapshot_meta stage_meta;
	uint8_t *stage;
	size_t stage_len, stage_cap;
	bool staging;

	struct sim_pending pend[SIM_MAX_CLIENTS];

	/* Invariant bookkeeping (check.c). */
	uint64_t ck_term, ck_commit;
	uint64_t ck_lead_term, ck_lead_idx, ck_lead_idx_term;
	uint64_t ck_commit_recorded;
	/* Stats from earlier incarnations. */
	struct raft_stats stats_acc;
};

struct sim_params {
	uint32_t n_init;
	struct raft_config cfg;	  /* id and seed are set per node */
	int64_t drift_actual_ppm; /* clocks run within +-this */
	uint32_t tick_min_us, tick_max_us;
	/* network */
	uint32_t net_base_us, net_jitter_us;
	double p_loss, p_dup, p_tail;
	uint32_t tail_max_us;
	/* A machine that crashes loses what it sent in the last
	 * crash_drop_us (still in its kernel's buffers). */
	uint32_t crash_drop_us;
	/* Links deliver in order (as TCP does) on some seeds; on the others
	 * random delays reorder messages. */
	bool fifo;
	/* disk */
	uint32_t disk_min_us, disk_max_us, disk_slow_us;
	double p_disk_slow, p_fsync_overlap, p_crash_keep, p_torn;
	/* state machine */
	uint32_t snap_every, snap_pad;
	/* clients */
	uint32_t n_clients, n_keys;
	uint32_t think_min_us, think_max_us, op_timeout_us;
	uint32_t client_net_us;
	double p_read, p_lease, p_to_leader;
	/* nemesis */
	uint32_t nemesis_mean_us;
	uint32_t w_crash, w_partition, w_pause, w_clock, w_transfer, w_member, w_churn;
	double p_arm_crash;
};

struct sim_opts {
	uint64_t sim_seconds;
	uint64_t quiet_seconds;
	bool trace;
	bool contract; /* check durable-before-ack at every send */
	uint64_t lin_steps;
	int canary; /* RAFT_CANARY the binary was built with */
	/* Self-test only: make the history wrong before checking it (1:
	 * a read returns a value nobody wrote; 2: an acknowledged write is
	 * reported as never made, while a later read saw it). */
	int corrupt_history;
	const char *argv0;
};

struct sim_stats {
	uint64_t sim_us;
	uint64_t events;
	uint64_t elections, leader_changes, committed;
	uint64_t ops_checked, ops_ok, ops_unknown, ops_fail;
	uint64_t crashes, restarts, partitions, pauses, snapshots_installed, snapshots_saved;
	uint64_t membership_changes, transfers;
	uint64_t msgs, msgs_lost, msgs_dup;
	uint64_t lin_gave_up;
	uint64_t torn, writes_lost;
	uint64_t lease_reads, index_reads;
	uint64_t snap_msgs_dropped;
	uint64_t max_msgs_window; /* most messages sent in one 100 ms window */
};

/* The outcome of one seed. */
struct sim_result {
	bool failed;
	char check[48];
	char msg[1024];
	uint64_t fail_time;
	struct sim_stats st;
};

enum sim_op_outcome {
	OP_PENDING = 0,
	OP_OK,
	OP_FAIL,    /* definitely had no effect */
	OP_UNKNOWN, /* may have had an effect */
};

enum sim_op_kind {
	OPK_READ = 1,
	OPK_PUT,
	OPK_CAS,
	OPK_DEL,
};

struct sim_hist_op {
	uint8_t kind;
	uint8_t key;
	uint8_t outcome;
	uint8_t level;
	uint32_t client;
	uint32_t node;
	uint64_t op_id;
	struct sim_val arg, expect, result;
	uint64_t call, ret;
};

struct sim_client {
	uint32_t id;
	uint64_t token; /* current request; stale replies and timeouts are ignored */
	bool busy;
	bool replied; /* the node has answered the current request */
	size_t hist;  /* index of the current op */
	uint64_t leader_guess;
	uint64_t reply_leader;
};

struct sim_world {
	uint64_t seed;
	const struct sim_opts *opts;
	struct sim_params p;
	struct sim_rng rng_net, rng_disk, rng_nem, rng_client, rng_clock, rng_cfg;
	uint64_t now;
	enum sim_phase phase;
	uint64_t quiet_start, settle_at;
	struct sim_heap heap;
	struct sim_node nodes[SIM_MAX_NODES + 1];
	uint32_t n_ids;

	/* Network: blocked[a][b] drops messages from a to b. */
	bool blocked[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1];
	uint64_t partition_gen;
	bool partitioned;
	uint64_t storm_window_start, storm_msgs;
	uint64_t link_last[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1]; /* fifo: last arrival */

	struct sim_client clients[SIM_MAX_CLIENTS];
	struct sim_hist_op *hist;
	size_t n_hist, cap_hist;
	uint64_t next_op_id, next_read_id;
	uint64_t quiet_writes_ok;
	struct sim_val key_last[SIM_MAX_KEYS]; /* last value seen, for CAS */

	/* Global invariant records (check.c). */
	uint64_t *term_leader; /* term -> the leader of that term */
	size_t cap_term_leader;
	struct sim_committed *committed; /* index -> what was committed there */
	size_t cap_committed;
	uint64_t max_committed;
	struct sim_lm_slot *lm; /* (index, term) -> entry hash, prev term */
	size_t lm_cap, lm_n;
	uint64_t max_leader_term; /* highest term any node has led */
	/* A trap the nemesis set: strike the leader at its next moment of
	 * the given kind (see nemesis.c). */
	uint8_t trap;
	bool trap_crash;
	bool trap_chain; /* Figure 8: persist, then elected, then commit */

	struct sim_stats st;
	struct sim_result *res;
	struct raft_entry dec_entries[SIM_MAX_ENTRIES];
	uint64_t codec_drops[RAFT_MSG__LAST]; /* bit per field, see node.c */
};

struct sim_committed {
	uint64_t term, hash, commit_term, digest;
	bool valid, has_digest;
};

struct sim_lm_slot {
	uint64_t index, term, hash, prev_term;
};

/* world.c */
void sim_run_seed(uint64_t seed, const struct sim_opts *opts, struct sim_result *res);
/* sim_fail records the first failure of the run (later ones are dropped). */
void sim_fail(struct sim_world *w, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sim_trace(struct sim_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define SIM_TRACE(w, ...)                                                                          \
	do {                                                                                       \
		if ((w)->opts->trace)                                                              \
			sim_trace((w), __VA_ARGS__);                                               \
	} while (0)
void sim_schedule(struct sim_world *w, uint64_t at, uint8_t type, uint32_t node, uint64_t a,
		  uint64_t b);
uint64_t sim_node_local_us(const struct sim_world *w, const struct sim_node *n);
uint64_t sim_node_global_delay(const struct sim_node *n, uint64_t local_us);
void sim_set_drift(struct sim_world *w, struct sim_node *n, int64_t ppm);
struct sim_node *sim_leader(struct sim_world *w);

/* node.c */
void sim_node_create(struct sim_world *w, uint64_t id, bool initial);
void sim_node_start(struct sim_world *w, struct sim_node *n);
void sim_node_crash(struct sim_world *w, struct sim_node *n, bool for_good);
void sim_node_free(struct sim_node *n);
void sim_node_tick(struct sim_world *w, struct sim_node *n);
void sim_node_deliver(struct sim_world *w, struct sim_node *n, const uint8_t *p, size_t len);
void sim_node_fsync(struct sim_world *w, struct sim_node *n, uint64_t upto);
void sim_node_client_request(struct sim_world *w, struct sim_node *n, uint32_t client,
			     uint64_t token);
void sim_node_drain(struct sim_world *w, struct sim_node *n);
bool sim_node_has_unsynced(const struct sim_node *n);
void sim_node_probe_lease(struct sim_world *w, struct sim_node *n);
void sim_node_catch_up_tick(struct sim_world *w, struct sim_node *n);

/* net.c */
void sim_net_send(struct sim_world *w, uint64_t from, uint64_t to, const uint8_t *p, size_t len);
bool sim_net_blocked(const struct sim_world *w, uint64_t from, uint64_t to);
/* sim_net_lost_in_crash: a message sent at sent_at by incarnation inc of
 * from was still in the sender's buffers when it crashed. */
bool sim_net_lost_in_crash(const struct sim_world *w, uint64_t from, uint64_t inc,
			   uint64_t sent_at);
void sim_net_heal(struct sim_world *w);
enum sim_shape {
	SHAPE_SPLIT = 1,
	SHAPE_ISOLATE,
	SHAPE_BRIDGE,
	SHAPE_RING,
	SHAPE_ONEWAY,
	SHAPE__N,
};
const char *sim_shape_name(int shape);
/* sim_net_partition applies a shape over the listed live ids; focus is
 * the node to isolate (SHAPE_ISOLATE) or the one-way node, 0 for a random
 * one. */
void sim_net_partition(struct sim_world *w, int shape, const uint64_t *ids, size_t n,
		       uint64_t focus, struct sim_rng *rng);

/* check.c */
void sim_check_init(struct sim_world *w);
void sim_check_free(struct sim_world *w);
void sim_check_node(struct sim_world *w, struct sim_node *n);
void sim_check_leader_seen(struct sim_world *w, struct sim_node *n, uint64_t term);
void sim_check_persist_entry(struct sim_world *w, struct sim_node *n, const struct raft_entry *e,
			     uint64_t prev_term);
void sim_check_truncate(struct sim_world *w, struct sim_node *n, uint64_t after);
void sim_check_apply(struct sim_world *w, struct sim_node *n, const struct raft_entry *e);
void sim_check_snapshot_loaded(struct sim_world *w, struct sim_node *n);
void sim_check_send(struct sim_world *w, struct sim_node *n, const struct raft_msg *m);
void sim_check_periodic(struct sim_world *w);
void sim_check_read_index(struct sim_world *w, struct sim_node *n, uint64_t index, uint64_t floor,
			  bool lease);
void sim_check_leader_completeness(struct sim_world *w, struct sim_node *n);
uint64_t sim_entry_hash(const struct raft_entry *e);

/* client.c */
void sim_clients_start(struct sim_world *w);
void sim_client_issue(struct sim_world *w, struct sim_client *c);
void sim_client_arrive(struct sim_world *w, uint32_t node, uint32_t client, uint64_t token);
void sim_client_reply_event(struct sim_world *w, uint32_t client, uint64_t token);
void sim_client_timeout(struct sim_world *w, uint32_t client, uint64_t token);
/* sim_client_answer: the node answered client's request token. */
void sim_client_answer(struct sim_world *w, struct sim_node *n, uint32_t client, uint64_t token,
		       enum sim_op_outcome outcome, const struct sim_val *result);
struct sim_hist_op *sim_client_op(struct sim_world *w, uint32_t client, uint64_t token);
void sim_history_check(struct sim_world *w);

/* nemesis.c */
enum sim_trap {
	TRAP_NONE = 0,
	TRAP_ELECTED, /* a node has just won an election */
	TRAP_PERSIST, /* a leader has just written entries (unreplicated yet) */
	TRAP_COMMIT,  /* a leader has just advanced its commit index */
};
void sim_nemesis_act(struct sim_world *w);
/* sim_nemesis_spring fires the armed trap of that kind on n, if any. */
void sim_nemesis_spring(struct sim_world *w, struct sim_node *n, int trap);
void sim_nemesis_heal(struct sim_world *w, uint64_t gen);

/* main.c: a field the core set that the codec did not carry. */
void sim_note_codec_drop(const char *type, const char *field);

/* selftest.c */
int sim_selftest(void);

#endif
