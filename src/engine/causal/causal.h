/*
 * causal: the engine of causal keyspaces.
 *
 * Every node holds every key of a causal keyspace and accepts writes to it
 * at any time, partitions included. Each node numbers its own writes
 * (its origin sequence) and keeps a vector clock `applied` of how many
 * updates of each origin it has applied. A write here:
 *
 *   - is applied to this node's store at once, stamped with the next
 *     sequence of this origin, an HLC timestamp, and as dependencies the
 *     whole `applied` vector at that moment (everything this node had
 *     seen: potential causality);
 *   - is logged, and shipped in batches to every peer; a peer applies an
 *     update of origin o only when it is o's next (seq = applied[o] + 1)
 *     and its dependencies are covered (applied >= deps), buffering it
 *     until then (causal delivery, as in vector-clock causal broadcast).
 *
 * Peers report their `applied` vectors every ack_ms; an origin resends
 * from what a peer has acknowledged when the peer stops progressing, and
 * drops log entries every peer holds. Concurrent writes to one key resolve
 * the same way everywhere: the larger (HLC timestamp, origin) wins; a
 * write that replaced a value it did not depend on is counted.
 *
 * Sessions are the caller's: a session's context is a vector clock, and
 * causal_ready says whether this node has applied all of it, which a
 * causal read or write waits for (the server bounds the wait).
 *
 * The engine owns its LMDB store (cfg->dir): keys, the applied vector
 * and this origin's log commit together. Messages leave after the commit
 * (causal_commit). It must not block the loop, read the system clock
 * (cfg->clock), or call the server; I/O goes through cfg->send.
 */
#ifndef SP_ENGINE_CAUSAL_CAUSAL_H
#define SP_ENGINE_CAUSAL_CAUSAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "engine/causal/vclock.h"

/* The peer-transport channel of the causal engine. */
#define CAUSAL_CHANNEL 4

struct causal_config {
	uint64_t self_id;
	const char *dir;   /* the engine's store directory (created) */
	uint64_t map_size; /* its LMDB map size */
	const struct sp_clock *clock;
	uint32_t ack_ms;      /* applied vectors sent to peers this often (50) */
	uint32_t resend_ms;   /* a peer silent on progress this long is resent to (500) */
	uint32_t batch_bytes; /* most bytes of updates in one message (256 KB) */
	uint64_t max_pending; /* updates buffered for their dependencies, at most */
	/* The largest update a peer message can carry (0: 64 MB less 4 KB, for
	 * the transport's default frame): a larger write is refused, since an
	 * update that cannot be sent would hold back every later one of its
	 * origin for good. */
	uint64_t max_update_bytes;
	int (*send)(void *ctx, uint64_t to, const void *p, size_t len);
	void *ctx;
	/* applied_cb: called after remote updates were applied (so waiting
	 * sessions may now be ready); may be NULL. */
	void (*applied_cb)(void *ctx);
	/* apply_cb: called for each remote update applied (for traces); may
	 * be NULL. key is borrowed for the call. */
	void (*apply_cb)(void *ctx, uint64_t origin, uint64_t seq, const void *key, size_t klen);
};

/* A value read: borrowed from the store until its next call. */
struct causal_value {
	const uint8_t *v;
	size_t vlen;
	uint64_t ts, origin, seq;
};

struct causal_stats {
	uint64_t writes, reads;
	uint64_t updates_sent, updates_received, updates_applied, updates_duplicate;
	uint64_t pending;	    /* buffered for dependencies now */
	uint64_t pending_dropped;   /* beyond max_pending: resent later */
	uint64_t concurrent_writes; /* an update replaced a value it did not depend on */
	uint64_t resends;	    /* rewinds to a peer's acknowledged point */
	uint64_t log_entries;	    /* this origin's updates not yet held by every peer */
	uint64_t keys;
};

struct causal_engine;

/* causal_open opens the store and state in cfg->dir for the given nodes
 * (self included). Returns 0, SP_ERR_INVAL or a store error. */
int causal_open(struct causal_engine **out, const struct causal_config *cfg, const uint64_t *nodes,
		size_t n);
void causal_close(struct causal_engine *e); /* NULL accepted */
int causal_set_nodes(struct causal_engine *e, const uint64_t *nodes, size_t n);

/* causal_applied: this node's applied vector (borrowed). */
const struct vclock *causal_applied(const struct causal_engine *e);
/* causal_ready: has this node applied everything in ctx? */
bool causal_ready(const struct causal_engine *e, const struct vclock *ctx);

/*
 * causal_write applies a write (del: a delete) here and queues it for
 * every peer. siblings: the key's keyspace keeps concurrent values (an
 * MV-register: the write replaces every value this node holds, and a
 * concurrent write elsewhere stays beside it) rather than letting the
 * later (HLC, origin) win. Returns 0, SP_ERR_KEYLEN, SP_ERR_TOOBIG (the
 * update would pass causal_max_write_bytes; nothing is done), or a store
 * error. key and value are borrowed for the call.
 */
int causal_write(struct causal_engine *e, const void *key, size_t klen, const void *v, size_t vlen,
		 bool del, bool siblings);

/* causal_max_write_bytes: the most bytes of keys and values one write or
 * merge may carry (what an update may hold, less its fixed parts). */
uint64_t causal_max_write_bytes(const struct causal_engine *e);

/* causal_now reads (and advances) this node's hybrid logical clock: the
 * timestamp a causal_merge stamps, and its deltas carry. */
uint64_t causal_now(struct causal_engine *e);

/* The most deltas one causal_merge may carry. */
#define CAUSAL_MAX_MERGE_OPS 4096

/* One key's CRDT delta in a causal_merge: borrowed for the call. */
struct causal_merge_op {
	const void *key;
	size_t klen;
	const void *delta;
	size_t dlen;
};

/*
 * causal_merge merges n deltas of CRDT type `type` (src/crdt) into their
 * keys here and ships them to every peer as ONE update, timestamped ts
 * (from causal_now): each node applies the whole batch in one step, after
 * what it depends on, so no read anywhere sees part of it (a batch is
 * atomic to every session). Merges commute, so concurrent batches converge
 * whatever their order. A key's stored state is the join of every delta
 * merged into it; a key holding a register value is replaced (a keyspace
 * holds one kind: the server keeps feature views apart). Returns 0,
 * SP_ERR_INVAL (n 0 or over CAUSAL_MAX_MERGE_OPS, unknown type, a delta that is not a
 * state of the type), SP_ERR_KEYLEN, SP_ERR_TOOBIG (past
 * causal_max_write_bytes, or a delta over 4 GB; nothing is done), or a
 * store error.
 */
int causal_merge(struct causal_engine *e, uint64_t ts, uint8_t type,
		 const struct causal_merge_op *ops, size_t n);

/* causal_read_crdt reads a merged key's state (out->v, out->vlen: the CRDT
 * state, borrowed until the next call; ts/origin/seq: the latest update
 * merged into it). 0, SP_ERR_NOTFOUND (absent, or not a state of type),
 * or a store error. */
int causal_read_crdt(struct causal_engine *e, const void *key, size_t klen, uint8_t type,
		     struct causal_value *out);

/* causal_read_siblings calls fn for each concurrent value of a siblings
 * key, in (origin, seq) order, and returns how many (0: none), or a store
 * error. Values are borrowed for the call. */
typedef void (*causal_value_fn)(void *ctx, const struct causal_value *v);
int causal_read_siblings(struct causal_engine *e, const void *key, size_t klen, causal_value_fn fn,
			 void *ctx);

/* causal_read looks key up here: 0 (out filled), SP_ERR_NOTFOUND (absent
 * or deleted), or a store error. */
int causal_read(struct causal_engine *e, const void *key, size_t klen, struct causal_value *out);

void causal_recv(struct causal_engine *e, uint64_t from, const uint8_t *p, size_t len);
void causal_tick(struct causal_engine *e);
/* causal_commit commits the batch, then sends what waited for it. Returns 0
 * or a store error (the caller stops the node). */
int causal_commit(struct causal_engine *e);
void causal_get_stats(const struct causal_engine *e, struct causal_stats *out);

/* A key's version as one node holds it (found false: never written). */
struct causal_version {
	bool found;
	uint64_t ts, origin, seq;
};
/* causal_read_version reads key's version here, a delete included (found
 * false only when the key was never written): 0 or a store error. */
int causal_read_version(struct causal_engine *e, const void *key, size_t klen,
			struct causal_version *out);
/* causal_peek_fn gets the peers' answers: v[0..n) (borrowed for the call);
 * err is 0, or SP_ERR_AGAIN when fewer than a majority of the cluster
 * (this node counted) answered in time. */
typedef void (*causal_peek_fn)(void *arg, int err, const struct causal_version *v, size_t n);
/*
 * causal_peek_peers asks every peer for its version of key (for the
 * stale-read sampler: what a read here missed). cb is called once, when
 * every peer answered or timeout_ms passed (causal_tick runs the
 * deadline), or at causal_close with SP_ERR_AGAIN. key is copied. Returns
 * 0, or SP_ERR_INVAL with no peers (cb is not called then).
 */
int causal_peek_peers(struct causal_engine *e, const void *key, size_t klen, uint32_t timeout_ms,
		      causal_peek_fn cb, void *arg);

/* How far one peer and this node are apart. */
struct causal_peer_lag {
	uint64_t unacked;   /* this node's updates the peer has not acknowledged */
	bool acked_known;   /* the peer has acknowledged at all since start */
	uint64_t behind_ms; /* this node holds every update of the peer's that the
			     * peer had reported this many ms ago (UINT64_MAX: never) */
};
/* causal_peer_lag fills out for peer id: 0 or SP_ERR_NOTFOUND. */
int causal_peer_lag(const struct causal_engine *e, uint64_t id, struct causal_peer_lag *out);

/*
 * causal_lag_ms bounds how stale this node's reads may be: it holds every
 * update every peer had made by that many milliseconds ago. Each ACK (every
 * ack_ms) reports the peer's own sequence and echoes the stamp of the last
 * ACK it had from this node, so the report is known to describe the peer at
 * or after that stamp: the bound holds whatever the network delay (it is
 * about a round trip plus ack_ms in a healthy cluster). UINT64_MAX while
 * some peer has not reported yet (a node that just started, or a peer down
 * since); 0 with no peers.
 */
uint64_t causal_lag_ms(const struct causal_engine *e);

#endif
