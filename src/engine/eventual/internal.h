/*
 * internal: the eventual engine's state, shared by its files only:
 * eventual.c (ops, replicas, liveness), hints.c (hinted handoff) and
 * antientropy.c (Merkle exchange). Nothing outside src/engine/eventual
 * includes this.
 */
#ifndef SP_ENGINE_EVENTUAL_INTERNAL_H
#define SP_ENGINE_EVENTUAL_INTERNAL_H

#include "common/buf.h"
#include "common/held.h"
#include "engine/eventual/eventual.h"
#include "common/hlc.h"
#include "engine/eventual/merkle.h"
#include "engine/eventual/msg.h"
#include "engine/eventual/ring.h"
#include "store/store.h"

#define EV_PHYS_HDR  9 /* be64(hash) | rf */
#define EV_MAX_PEERS 64

struct ev_peer {
	uint64_t id;
	uint64_t last_heard_ms; /* monotonic; 0 never */
	uint64_t hints;		/* hint records held for it */
	uint64_t hint_replay_after_ms;
	uint64_t hint_inflight; /* replayed, not yet acknowledged */
};

struct ev_pending;

struct ev_engine {
	struct eventual_config cfg;
	char *dir;
	struct store *store;
	struct ring *ring;
	uint64_t *nodes;
	size_t nnodes;
	struct hlc hlc;
	struct ev_peer peers[EV_MAX_PEERS];
	size_t npeers;
	uint64_t start_ms, last_ping_ms, last_hint_ms, last_ae_ms;
	size_t ae_next_peer;

	/* Merkle trees per rf class (1..EV_MAX_RF) and ring range; NULL
	 * until a key of that class is held. */
	struct merkle_tree *trees[EV_MAX_RF + 1];

	/* Ops coordinated here, by id. */
	struct ev_pending **buckets;
	struct ev_pending *ops; /* list of all, for deadlines */
	uint64_t next_id;
	uint64_t nops;

	struct held held; /* messages waiting for the store commit */
	struct sp_buf scratch, scratch2;

	uint64_t rng; /* splitmix64 state, from cfg.seed */
	uint64_t hint_seq;
	uint64_t batches_lost; /* store_batches_lost when last committed */
	struct ev_stats st;
};

/* eventual.c */
uint64_t ev_now_ms(const struct ev_engine *e);
bool ev_peer_alive(const struct ev_engine *e, uint64_t id);
struct ev_peer *ev_peer_find(struct ev_engine *e, uint64_t id);
/* ev_send queues a message to leave after the next commit. */
void ev_send(struct ev_engine *e, uint64_t to, const struct sp_buf *msg);
/* ev_phys_key builds the stored key of (key, rf) into out (cleared). */
void ev_phys_key(struct sp_buf *out, uint64_t hash, uint8_t rf, const void *key, size_t klen);
/*
 * ev_merge_item merges a state received from another node into the local
 * state of the key. Returns 1 if the local state changed, 0 if not, or a
 * store error. seen_ts: for LWW writes, the timestamp the writer had seen
 * (0 unknown), to count concurrent overwrites.
 */
int ev_merge_item(struct ev_engine *e, const struct ev_item *it, uint64_t seen_ts);
/* ev_tree returns the Merkle tree of (rf, range), allocating the class. */
struct merkle_tree *ev_tree(struct ev_engine *e, uint8_t rf, size_t range);
/* ev_rebuild_trees recomputes every tree from the store. */
int ev_rebuild_trees(struct ev_engine *e);
/* ev_is_replica: is node id among the first rf of range i's walk? */
bool ev_range_has(const struct ev_engine *e, size_t range, uint8_t rf, uint64_t id);

/* hints.c */
int ev_hints_load(struct ev_engine *e);
/* ev_hint_store keeps the item for node target. Returns 0 or an error
 * (SP_ERR_FULL when over hint_max_bytes: the hint is dropped, counted). */
int ev_hint_store(struct ev_engine *e, uint64_t target, const struct ev_item *it);
void ev_hints_tick(struct ev_engine *e);
/* ev_hint_acked removes a delivered hint (the ack's id carries its seq). */
void ev_hint_acked(struct ev_engine *e, uint64_t from, uint64_t id);
#define EV_HINT_ID_BIT (1ull << 63)

/* antientropy.c */
void ev_ae_tick(struct ev_engine *e);
void ev_ae_recv(struct ev_engine *e, uint64_t from, const struct ev_msg *m);

#endif
