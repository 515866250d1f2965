/*
 * eventual: the Dynamo-style engine of eventual keyspaces.
 *
 * Each key lives on the first rf nodes met walking the consistent-hash
 * ring clockwise from the key's hash (its preference list; ring.h). A
 * key's value is a CRDT state (src/crdt): plain GET/SET are LWW registers
 * ordered by hybrid logical clock (hlc.h) with node id as tie-break, and
 * counters and sets merge. Whichever node a request reaches coordinates
 * it:
 *
 *   writes  run on a replica: a node outside the key's preference list
 *           proxies the write to the first live replica. The coordinating
 *           replica applies the operation to its own state as actor
 *           (counters count per node, OR-Set dots are per node), then
 *           sends the whole new state to the other replicas, which merge
 *           it. The client is answered once `level` replicas (ONE, QUORUM,
 *           ALL) hold it, counting the coordinator.
 *   reads   go to as many live replicas as the level needs (this node's own
 *           copy first when it is one, then replicas in a random order);
 *           a read short of answers after EV_READ_SPECULATE_MS asks the
 *           rest. read_repair_percent of reads ask every live replica. The
 *           answer is the merge of the first `level` replies; replies that
 *           differ from the merge are repaired: before answering at QUORUM
 *           and ALL, in the background at ONE (read repair).
 *
 * A replica that does not acknowledge a write in time gets a hint: the
 * coordinator keeps the state durably (a meta record in this engine's
 * store) and replays it when the replica answers pings again (hinted
 * handoff). Hints count toward the level only with a sloppy quorum, which
 * keyspaces opt into (EV_OP_SLOPPY): then a fallback node past the
 * preference list takes the hint and its acknowledgement counts, which
 * gives up the R + W > N overlap.
 *
 * In the background, replicas compare Merkle trees of each ring range they
 * share (merkle.h): roots first, then the 64 leaves of ranges whose roots
 * differ, then the keys of differing leaves, which both sides merge
 * (anti-entropy), at most ae_max_keys keys per round.
 *
 * Outcomes are honest: a write refused before it was applied anywhere is
 * SP_ERR_AGAIN (not enough live replicas: nothing was done); one applied
 * at the coordinator but not acknowledged by enough replicas in time is
 * SP_ERR_UNKNOWN (it will spread by hints and anti-entropy, or may be lost
 * with the coordinator's disk).
 *
 * The engine owns its own LMDB store (cfg->dir), apart from the strong
 * engine's, so a Raft snapshot never replaces eventual data. Stored keys
 * are be64(ring hash) | rf | key, so a ring range is one contiguous scan.
 * Messages leave only after the store batch that they acknowledge is
 * committed (eventual_commit).
 *
 * It must not: block the loop, read the system clock (cfg->clock), or call
 * the server or other engines; I/O goes through cfg->send.
 */
#ifndef SP_ENGINE_EVENTUAL_EVENTUAL_H
#define SP_ENGINE_EVENTUAL_EVENTUAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "crdt/crdt.h"
#include "engine/eventual/msg.h"

/* A read short of answers this long asks the replicas it did not. */
#define EV_READ_SPECULATE_MS 50

/* The largest replication factor, and the levels. */
#define EV_MAX_RF 7
enum ev_level {
	EV_LEVEL_DEFAULT = 0,
	EV_LEVEL_ONE,
	EV_LEVEL_QUORUM,
	EV_LEVEL_ALL,
};

/* Operations. Reads return the merged state; the rest are writes. */
enum ev_op_kind {
	EV_OP_READ = 1,
	EV_OP_LWW_SET,	    /* args[0] = value; n = 0 */
	EV_OP_LWW_DEL,	    /* a tombstone */
	EV_OP_GCOUNTER_ADD, /* n > 0 */
	EV_OP_PNCOUNTER_ADD,
	EV_OP_GSET_ADD, /* args = members */
	EV_OP_TPSET_ADD,
	EV_OP_TPSET_REM,
	EV_OP_ORSET_ADD,
	EV_OP_ORSET_REM,
	EV_OP_MVREG_SET, /* args[0] = value */
	EV_OP_FVEC_SET,	 /* feature record: args[0] = event time (decimal Unix
			  * ms), then field, value pairs; n = the history kept */
	EV_OP__MAX,
};

/* Op flags. */
#define EV_OP_SLOPPY 0x01u /* hinted writes count toward the level */

struct ev_op {
	uint8_t kind;  /* enum ev_op_kind */
	uint8_t level; /* enum ev_level, not DEFAULT */
	uint8_t rf;    /* the keyspace's replication factor, 1..EV_MAX_RF */
	uint8_t flags;
	int64_t n;
	const void *key;
	size_t klen;
	uint32_t nargs;
	const struct ev_bytes *args; /* nargs borrowed byte strings */
};

/*
 * The outcome of an op, handed to its done callback.
 *   status   0; SP_ERR_AGAIN (unavailable or timed out before anything
 *            was done: safe to retry); SP_ERR_UNKNOWN (a write applied at
 *            its coordinator that too few replicas acknowledged in time);
 *            SP_ERR_INVAL (the key holds another type: msg says which);
 *            SP_ERR_TOOBIG (a limit); SP_ERR_RANGE (counter overflow);
 *            another error from the store.
 *   n        counters: the value at the coordinator after the write; set
 *            adds/removes: how many members changed; LWW set: the write's
 *            timestamp
 *   type     the key's CRDT type (0: absent), and state its merged state
 *            (reads; writes: the coordinator's state after the write)
 *   acks     replicas that acknowledged (writes) or answered (reads)
 * Every pointer is borrowed for the duration of the callback.
 */
struct ev_result {
	int status;
	const char *msg;
	int64_t n;
	uint8_t type;
	const uint8_t *state;
	size_t slen;
	uint8_t acks, replicas;
};

typedef void (*ev_done_fn)(void *arg, const struct ev_result *res);

struct eventual_config {
	uint64_t self_id;
	const char *dir;   /* the engine's store directory (created) */
	uint64_t map_size; /* LMDB map size of that store */
	const struct sp_clock *clock;
	uint32_t request_timeout_ms;  /* an op's deadline */
	uint32_t ping_ms;	      /* liveness pings to every peer */
	uint32_t suspect_ms;	      /* a peer silent this long is down */
	uint32_t hint_max_age_ms;     /* older hints are dropped */
	uint64_t hint_max_bytes;      /* hints beyond this are dropped */
	uint32_t ae_interval_ms;      /* one anti-entropy round per interval; 0: off */
	uint32_t ae_max_keys;	      /* keys sent per round, at most */
	uint64_t max_clock_skew_ms;   /* LWW timestamps further ahead are flagged */
	uint32_t read_repair_percent; /* reads that ask every replica, not just
				       * enough for their level, to repair behind */
	uint64_t seed;		      /* the engine's PRNG (replica choice, repair) */
	struct crdt_limits limits;
	/* send one message (channel EV_CHANNEL) to node `to`. */
	int (*send)(void *ctx, uint64_t to, const void *p, size_t len);
	/* Optional (NULL: none): the transport's word that its link to node
	 * id is down (refused or reset), which makes the peer count as down at
	 * once instead of after suspect_ms of silence. */
	bool (*link_down)(void *ctx, uint64_t id);
	void *ctx;
};

/* Counters (INFO's eventual section). */
struct ev_stats {
	uint64_t reads, writes, proxied;	 /* ops coordinated here */
	uint64_t proxies_expired;		 /* proxied writes that arrived too late to run */
	uint64_t unavailable, timeouts, unknown; /* refused / timed out / unknown outcome */
	uint64_t replica_writes, replica_reads;	 /* served for coordinators */
	uint64_t merges;			 /* states merged that changed a key */
	uint64_t read_repairs;			 /* repair writes sent by reads */
	uint64_t read_repairs_blocking;		 /* ... before answering */
	uint64_t hints_queued, hints_delivered, hints_dropped, hints_pending;
	uint64_t hint_bytes;
	uint64_t ae_rounds, ae_ranges_differ, ae_keys_sent, ae_keys_repaired;
	uint64_t lww_concurrent; /* LWW writes that overwrote, or lost to, one they had not seen */
	uint64_t type_conflicts; /* a key written with two types; the larger type kept */
	uint64_t clock_skew_flagged; /* LWW timestamps ahead of this clock by > max skew */
	uint64_t keys;		     /* keys held here */
	uint64_t peers_alive, peers;
};

struct ev_engine;

/*
 * eventual_open opens the engine's store in cfg->dir and builds its ring
 * and Merkle trees from the node ids (self included). Returns 0 and sets
 * *out, SP_ERR_INVAL, or a store error. cfg is copied (strings included);
 * cfg->clock must outlive the engine.
 */
int eventual_open(struct ev_engine **out, const struct eventual_config *cfg, const uint64_t *nodes,
		  size_t nnodes);
/* eventual_close commits, syncs and frees; pending ops are answered
 * SP_ERR_UNKNOWN or SP_ERR_AGAIN first. NULL is accepted. */
void eventual_close(struct ev_engine *e);

/* eventual_set_nodes rebuilds the ring for a new membership (and the
 * Merkle trees, by one scan of the store). */
int eventual_set_nodes(struct ev_engine *e, const uint64_t *nodes, size_t n);

/* eventual_has_node: is id on the ring? */
bool eventual_has_node(const struct ev_engine *e, uint64_t id);

/*
 * eventual_submit coordinates op. done(arg, result) is called exactly
 * once, possibly before eventual_submit returns, and at the latest at the
 * op's deadline. op and what it points to are borrowed for the call only.
 */
void eventual_submit(struct ev_engine *e, const struct ev_op *op, ev_done_fn done, void *arg);

/* eventual_recv handles one message from node `from`. Bad messages are
 * counted and dropped. */
void eventual_recv(struct ev_engine *e, uint64_t from, const uint8_t *p, size_t len);

/* eventual_tick runs deadlines, pings, hint replay and anti-entropy; call
 * it every few milliseconds. */
void eventual_tick(struct ev_engine *e);

/* eventual_commit commits the store batch and then sends the messages
 * that waited for it. Returns 0 or a store error: the commit failed, or a
 * write earlier in the batch failed and the store dropped the batch (so
 * writes already acknowledged are gone). Nothing held is sent then, and
 * the caller stops the node, as for the strong store. */
int eventual_commit(struct ev_engine *e);

/* eventual_sync makes committed batches durable (may run on another
 * thread, like store_sync). */
int eventual_sync(struct ev_engine *e);

void eventual_get_stats(struct ev_engine *e, struct ev_stats *out);

/* What this node knows of one peer: whether it answers pings, and the
 * hints held here for it. */
struct ev_peer_info {
	bool alive;
	uint64_t hints;
};
/* eventual_peer_info fills out for peer id: 0 or SP_ERR_NOTFOUND. */
int eventual_peer_info(const struct ev_engine *e, uint64_t id, struct ev_peer_info *out);

/*
 * eventual_digest calls fn for every (rf, range) this node replicates, for
 * each rf in rf_mask (bit rf set) and each rf it holds keys of: the
 * range's token and Merkle root (0 when it holds none). Replicas of one
 * range agree on its root once converged. The caller names the rf classes
 * its keyspaces use, so a replica that holds nothing of a class still
 * lists its (empty) ranges and shows as behind. Returns the number of
 * calls.
 */
typedef void (*ev_digest_fn)(void *ctx, uint8_t rf, uint64_t token, uint64_t root, uint64_t keys);
size_t eventual_digest(struct ev_engine *e, uint32_t rf_mask, ev_digest_fn fn, void *ctx);

/* eventual_replicas writes the preference list (rf nodes) of key to out
 * (room for EV_MAX_RF) and returns how many. */
size_t eventual_replicas(struct ev_engine *e, const void *key, size_t klen, uint8_t rf,
			 uint64_t *out);

/* ev_level_name: "one", "quorum", "all" ("default" for 0). */
const char *ev_level_name(uint8_t level);

#endif
