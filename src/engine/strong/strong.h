/*
 * strong: the engine behind strong keyspaces. One Raft group (raft_node)
 * whose state machine is the node's LMDB store.
 *
 * What an entry means is the server's business: the engine hands every
 * committed NORMAL entry to the server's apply callback, after stamping
 * the store with the entry's index as the revision of whatever the entry
 * writes. What the engine owns is everything that makes the store a
 * faithful Raft state machine:
 *
 *  - The applied index lives in the store (a meta record written into
 *    the batch that holds the entries' effects, before it commits), so a restarted node, or one
 * that installed a snapshot, skips entries its state already holds. The store therefore needs no
 * write-ahead log of its own: the Raft log is one, and a state that is ahead of the log's snapshot
 * marker is fine.
 *  - Snapshots are the store itself. Taking one commits the open batch and
 *    syncs the tree on libuv's thread pool (the loop keeps serving); only
 *    then may Raft drop the log it covers. Sending one streams an LMDB
 *    read transaction's view (store_snap), chunk by chunk, to followers;
 *    its applied index may be ahead of the index Raft names, which the
 *    skip rule above makes harmless. Receiving one stages the bytes in a
 *    file and, when whole, replaces the store's contents in one write
 *    transaction.
 *
 * It must not: interpret entry payloads, talk to clients, or block the
 * loop on the disk outside a snapshot install (rare: a node far behind).
 */
#ifndef SP_ENGINE_STRONG_STRONG_H
#define SP_ENGINE_STRONG_STRONG_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/clock.h"
#include "engine/strong/raft_node.h"
#include "net/peer.h"
#include "store/store.h"

struct strong;

/* What the server supplies. Every callback runs on the loop thread. */
struct strong_ops {
	void *ctx;
	/* Apply one committed NORMAL entry (index > the store's applied
	 * index). The store's revision is set to index for its writes; the
	 * entry's bytes are borrowed for the call. */
	void (*apply)(void *ctx, uint64_t index, const uint8_t *p, size_t len);
	/* The store's contents were replaced by a snapshot: reload caches. */
	void (*restored)(void *ctx);
	/* Role, term or leader changed (leader 0: none known). */
	void (*role_changed)(void *ctx, enum raft_role role, uint64_t term, uint64_t leader);
};

struct strong_config {
	const char *dir;	    /* where the Raft log and staged snapshots live */
	uint64_t id;		    /* this node */
	struct raft_conf bootstrap; /* n == 0: join an existing cluster */
	uint32_t election_timeout_ms, heartbeat_ms, max_clock_drift_ppm;
	uint64_t snapshot_every;
	uint32_t snapshot_min_ms;
	bool no_sync;		   /* the Raft log is not synced per group */
	uint32_t sync_interval_ms; /* ... but at least this often (fsync batch) */
	const struct sp_clock *clock;
};

struct strong_stats {
	uint64_t applied_index; /* the store's */
	uint64_t skipped;	/* entries the store already held */
	uint64_t snapshots_sent_streams, snapshot_syncs, snapshot_installs;
	struct raft_node_stats node;
};

/*
 * strong_open starts the engine: reads the store's applied index, opens
 * the Raft log in cfg->dir and starts the node. store and net are
 * borrowed and must outlive the engine; frames on RAFT_NODE_CHANNEL go to
 * strong_recv. Returns 0 or an error from the log or the core.
 */
int strong_open(struct strong **out, uv_loop_t *loop, struct peer_net *net, struct store *store,
		const struct strong_config *cfg, const struct strong_ops *ops);
/* strong_close stops the node (pending callbacks get SP_ERR_NOTLEADER)
 * and frees the engine once a background snapshot sync has finished; run
 * the loop until its handles are closed. NULL is accepted. */
void strong_close(struct strong *s);

/* strong_flush_applied writes the applied index into the store's open
 * batch. Call it before every commit of the store, so the index and the
 * entries' effects land together (strong_close calls it too). NULL is
 * accepted. */
void strong_flush_applied(struct strong *s);

void strong_recv(struct strong *s, uint64_t from, const uint8_t *p, size_t len);

/* As raft_node_propose / raft_node_read / raft_node_read_lease. */
int strong_propose(struct strong *s, const void *p, size_t len, raft_node_cb cb, void *arg);
int strong_read(struct strong *s, raft_node_cb cb, void *arg);
int strong_read_lease(struct strong *s);

int strong_add_server(struct strong *s, uint64_t id);
int strong_remove_server(struct strong *s, uint64_t id);
int strong_transfer(struct strong *s, uint64_t id);

enum raft_role strong_role(const struct strong *s);
uint64_t strong_leader(const struct strong *s);
uint64_t strong_term(const struct strong *s);
uint64_t strong_commit_index(const struct strong *s);
const struct raft_conf *strong_conf(const struct strong *s);
void strong_get_stats(const struct strong *s, struct strong_stats *st);
/* strong_applied_index: the highest index applied to the store. */
uint64_t strong_applied_index(const struct strong *s);
/* strong_peer_match: as raft_peer_match, for the metrics. */
int strong_peer_match(const struct strong *s, uint64_t id, uint64_t *match);

/* The meta record holding the applied index (big-endian u64). */
#define STRONG_META_APPLIED "raft.applied"

#endif
