/*
 * raft_node: the Raft core bound to a node: a libuv loop for time, the
 * peer transport for messages, raft_log for durability and a state
 * machine given by the caller.
 *
 * Why: the core (raft/raft.h) is pure; something has to carry out its
 * updates. This module does, once per loop iteration (a uv_prepare
 * handle), which is what batches: every proposal, message and tick of an
 * iteration ends in one update, whose persist actions become one log
 * record and whose entries go out in as few messages as flow control
 * allows. Durability is group commit: one fdatasync on the thread pool
 * covers every record written before it started; while it runs the loop
 * keeps writing, and the next sync covers what came meanwhile. The core
 * holds back votes and acknowledgements until raft_persisted says so, so
 * nothing is promised before it is on disk.
 *
 * Snapshots stream: the state machine gives bytes at an offset of its
 * snapshot when a chunk is due to a follower, and takes bytes at an
 * offset when one arrives; nothing builds the whole snapshot in memory
 * here.
 *
 * It must not: block the loop (fsync runs on the thread pool), or know
 * what the state machine's entries mean.
 */
#ifndef SP_ENGINE_STRONG_RAFT_NODE_H
#define SP_ENGINE_STRONG_RAFT_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "common/clock.h"
#include "engine/strong/raft/raft.h"
#include "net/peer.h"

/* The peer transport channel Raft traffic travels on. */
#define RAFT_NODE_CHANNEL 1

/*
 * The state machine. Every callback runs on the loop thread; ctx is
 * passed back. Pointers given to a callback are borrowed for the call.
 */
struct raft_node_fsm {
	void *ctx;
	/* Apply one committed entry, in index order (NORMAL entries; NOOP
	 * and CONF entries are passed too, for the applied index). */
	void (*apply)(void *ctx, const struct raft_entry *e);
	/* Make the state up to index (the applied index) durable as a
	 * snapshot that snapshot_read can stream. Returns 0 (done), 1 (started
	 * in the background: call raft_node_snapshot_done once it is durable;
	 * no other snapshot is asked for meanwhile), or an error (the node
	 * then keeps its log and tries later). May be NULL: no snapshots, the
	 * log grows. */
	int (*snapshot_take)(void *ctx, uint64_t index);
	/* Copy up to cap bytes of the snapshot at index from offset into
	 * buf; set *last when they reach the end. Returns the byte count, or
	 * a negative error (the chunk is not sent; the leader retries). */
	int (*snapshot_read)(void *ctx, uint64_t index, uint64_t offset, uint8_t *buf, uint32_t cap,
			     bool *last);
	/* Store len bytes at offset of an incoming snapshot (offset 0 starts
	 * a new one). Returns 0 or an error. */
	int (*snapshot_write)(void *ctx, const struct raft_snapshot_meta *m, uint64_t offset,
			      const uint8_t *p, uint32_t len);
	/* The incoming snapshot is whole: make it durable and load it as the
	 * state machine's state. Returns 0 or an error. */
	int (*snapshot_install)(void *ctx, const struct raft_snapshot_meta *m);
	/* Told of role, term and leader changes. May be NULL. */
	void (*role_changed)(void *ctx, enum raft_role role, uint64_t term, uint64_t leader);
};

struct raft_node_config {
	const char *dir;	    /* the log's directory; created if missing */
	struct raft_config raft;    /* the core's settings (id, timeouts, ...) */
	struct raft_conf bootstrap; /* initial members for a new cluster */
	uint32_t tick_ms;	    /* how often the core's timers are checked */
	uint64_t snapshot_every;    /* entries applied between snapshots; 0: never */
	/* ... but no sooner than this many ms after the last one, unless
	 * 8 x snapshot_every entries piled up (they are held in memory): a
	 * snapshot syncs the whole state machine, which is not free. */
	uint32_t snapshot_min_ms;
	const struct sp_clock *clock; /* NULL: the system clock; borrowed */
	bool no_sync;		      /* skip fdatasync: acknowledged entries
				       * survive a process kill, not power loss */
	uint32_t sync_interval_ms;    /* with no_sync: still sync a group when the
				       * last real sync is this old (0: never) */
};

/* Completion of a proposal or read. err: 0 (committed and applied);
 * SP_ERR_NOTLEADER (the read could not be confirmed, or the node closed
 * first); SP_ERR_AGAIN: the entry was overwritten by another leader's (it
 * did not and will not commit); SP_ERR_UNKNOWN: the node caught up by a
 * snapshot that covers the entry's index and cannot tell whether the
 * entry is in it (report the outcome as unknown; never retry blindly).
 * index is the entry's or read's index. For a read, serve it now: the
 * state machine has applied index. */
typedef void (*raft_node_cb)(void *arg, int err, uint64_t index);

struct raft_node_stats {
	uint64_t syncs, sync_entries, records_written, bytes_written;
	uint64_t applied, snapshots_taken, snapshots_installed;
	uint64_t recv_bad; /* frames that failed to decode */
	struct raft_stats core;
};

struct raft_node;

/*
 * raft_node_open recovers the log in cfg->dir (a torn tail is cut; see
 * raft_log.h), replays nothing into the state machine itself (the core
 * hands committed entries after the last snapshot to apply again: the
 * state machine must be at its snapshot when opened), and starts the
 * timers. net is borrowed and must outlive the node; frames on
 * RAFT_NODE_CHANNEL must be passed to raft_node_recv. Returns 0 and sets
 * *out, or an error from the log or the core. Release with raft_node_close.
 */
int raft_node_open(struct raft_node **out, uv_loop_t *loop, struct peer_net *net,
		   const struct raft_node_config *cfg, const struct raft_node_fsm *fsm);
/* raft_node_close stops timers and waits for an in-flight sync; pending
 * callbacks get SP_ERR_NOTLEADER. The caller then runs the loop until
 * its handles are closed. */
void raft_node_close(struct raft_node *n);

/* raft_node_recv hands one frame from a peer to the core. */
void raft_node_recv(struct raft_node *n, uint64_t from, const uint8_t *payload, size_t len);

/* raft_node_propose proposes data; cb fires once the entry is applied
 * (err 0) or known lost. Returns 0, SP_ERR_NOTLEADER or SP_ERR_FULL (cb
 * is not called then). */
int raft_node_propose(struct raft_node *n, const void *data, size_t len, raft_node_cb cb,
		      void *arg);
/* raft_node_read asks for a linearizable read (ReadIndex); cb fires when
 * the state machine has applied the read index. Returns 0 or
 * SP_ERR_NOTLEADER. */
int raft_node_read(struct raft_node *n, raft_node_cb cb, void *arg);
/* raft_node_read_lease: 0 when the leader's lease covers a read now and
 * the state machine has applied its index; SP_ERR_NOTLEADER otherwise. */
int raft_node_read_lease(struct raft_node *n);

/* raft_node_snapshot_done finishes a snapshot whose snapshot_take returned
 * 1: err 0 means the state up to index is durable, and the log may drop
 * what it covers. */
void raft_node_snapshot_done(struct raft_node *n, uint64_t index, int err);

/* Membership and transfer, as the core's functions of the same names. */
int raft_node_add_server(struct raft_node *n, uint64_t id);
int raft_node_remove_server(struct raft_node *n, uint64_t id);
int raft_node_transfer(struct raft_node *n, uint64_t id);

struct raft *raft_node_core(struct raft_node *n);
void raft_node_get_stats(const struct raft_node *n, struct raft_node_stats *st);

#endif
