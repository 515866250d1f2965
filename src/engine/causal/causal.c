/*
 * causal: causal delivery of every node's writes to every node. See
 * causal.h.
 *
 * Stored (the engine's own LMDB environment):
 *   keys            key -> ts u64 | origin u64 | seq u64 | flags u8 | value
 *                   (a merged key, store type TYPE_MERGE: the same header,
 *                   flags FLAG_MERGE, then crdt type u8 | CRDT state)
 *   meta "applied"  the applied vector (vclock encoding)
 *   meta "l/<seq>"  this origin's update seq (16 hex digits), until every
 *                   peer holds it
 * An update on the wire and in the log:
 *   seq u64 | ts u64 | flags u8 | deps (vclock) | key (u32 len) | value (u32 len)
 * where a merge update (FLAG_MERGE: a batch of CRDT deltas, applied as one)
 * has as key its first op's key and as value
 *   crdt type u8 | count u32 | count x (key (u32 len) | delta (u32 len))
 * Messages (channel CAUSAL_CHANNEL):
 *   UPDATES  1 | count u32 | update*      from their origin only
 *   ACK      2 | applied (vclock) | stamp u64 | echo u64
 *                                         every ack_ms, to every peer; stamp
 *                                         is the sender's clock, echo the
 *                                         last stamp it had from the peer
 *   PEEK     3 | id u64 | klen u32 | key  the stale-read sampler asks ...
 *   SEEN     4 | id u64 | found u8 | ts u64 | origin u64 | seq u64
 *                                         ... for the peer's version of key
 */
#include "engine/causal/causal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/held.h"
#include "common/hlc.h"
#include "common/log.h"
#include "crdt/crdt.h"
#include "store/store.h"

#define CM_UPDATES    1
#define CM_ACK	      2
#define CM_PEEK	      3
#define CM_SEEN	      4
#define SEEN_LEN      34 /* 1 + 8 + 1 + 3 * 8 */
#define REC_HDR	      25 /* ts, origin, seq, flags */
#define FLAG_DEL      1u
#define FLAG_SIBLINGS 2u /* the key keeps concurrent values (MV-register) */
#define FLAG_MERGE    4u /* a batch of CRDT deltas, merged into their keys */
#define TYPE_LWW      1	 /* store type of a last-writer-wins record */
#define TYPE_SIBLINGS 2	 /* ... of a siblings record: (ts|origin|seq|vlen u32|value)* */
#define TYPE_MERGE    3	 /* ... of a merged record: header | crdt type u8 | state */
#define MAX_PEERS     64
#define SENT_UNKNOWN  UINT64_MAX /* until the peer's first ACK */
#define LOG_GC_STEP   1000	 /* log entries removed per tick, at most */

struct peer {
	uint64_t id;
	uint64_t sent;	/* last seq of ours sent (SENT_UNKNOWN: not yet known) */
	uint64_t acked; /* its applied[self] */
	uint64_t progress_ms;
	/* Its own updates: the latest seq its ACKs reported and a time of
	 * ours before that ACK was sent (the stamp it echoed: the ACK left
	 * after ours arrived), and that time when this node last held
	 * everything so reported (0: never). their_stamp: its clock, to echo. */
	uint64_t their_seq, their_seq_ms, caught_up_ms, their_stamp;
};

/* An update waiting for its dependencies: its sequence and encoding. */
struct pending {
	uint64_t seq;
	uint8_t *p;
	size_t len;
};

/* One origin's waiting updates, sorted by seq, unique; the live ones are
 * items[head .. n). Only the first can be next, so a drain looks at one
 * update per origin, not at every waiting one. */
struct origin_queue {
	uint64_t origin;
	struct pending *items;
	size_t head, n, cap;
};

struct causal_engine {
	struct causal_config cfg;
	char *dir;
	struct store *store;
	struct vclock applied;
	bool applied_dirty;
	struct hlc hlc;
	struct peer peers[MAX_PEERS];
	size_t npeers;
	struct sp_buf outbox; /* encoded updates of ours since the last commit */
	uint64_t outbox_first, outbox_n;
	struct held held; /* messages waiting for the store commit */
	struct origin_queue queues[MAX_PEERS + 1];
	size_t nqueues;
	size_t npending;
	uint64_t log_floor; /* log entries <= this are gone */
	uint64_t last_ack_ms;
	uint64_t batches_lost;
	struct causal_stats st;
	struct peek *peeks; /* causal_peek_peers asked, waiting for answers */
	uint64_t next_peek;
};

/* A causal_peek_peers call: the answers so far and who gave them. */
struct peek {
	struct peek *next;
	uint64_t id, deadline_ms;
	causal_peek_fn cb;
	void *arg;
	size_t got;
	uint64_t from[MAX_PEERS];
	struct causal_version v[MAX_PEERS];
};

static struct peer *peer_find(struct causal_engine *e, uint64_t id);
static void caught_up(struct causal_engine *e, struct peer *pe);

static uint64_t now_ms(const struct causal_engine *e)
{
	return sp_mono_ns(e->cfg.clock) / 1000000;
}

static void hold(struct causal_engine *e, uint64_t to, const void *p, size_t len)
{
	held_add(&e->held, to, p, len);
}

/* ---- the update codec ---- */

struct update {
	uint64_t seq, ts;
	uint8_t flags;
	struct vclock deps;
	const uint8_t *key, *v;
	size_t klen, vlen;
};

static void put_update(struct sp_buf *b, uint64_t seq, uint64_t ts, uint8_t flags,
		       const struct vclock *deps, const void *key, size_t klen, const void *v,
		       size_t vlen)
{
	sp_buf_put_le64(b, seq);
	sp_buf_put_le64(b, ts);
	sp_buf_put_u8(b, flags);
	vclock_encode(deps, b);
	sp_buf_put_le32(b, (uint32_t)klen);
	sp_buf_append(b, key, klen);
	sp_buf_put_le32(b, (uint32_t)vlen);
	if (vlen)
		sp_buf_append(b, v, vlen);
}

/*
 * merge_walk checks the framing of a merge update's value (type, count,
 * then that many key/delta pairs filling it exactly) and calls fn, when
 * not NULL, for each pair. Returns the count, SP_ERR_PROTO, or fn's first
 * error. get_update checks every value that arrives (fn NULL) before
 * anything applies it, and causal_merge builds its own, so a walk with fn
 * never meets a batch that is cut.
 */
typedef int (*merge_op_fn)(void *ctx, uint8_t type, const uint8_t *key, size_t klen,
			   const uint8_t *d, size_t dlen);

static int merge_walk(const uint8_t *p, size_t len, merge_op_fn fn, void *ctx)
{
	if (len < 5)
		return SP_ERR_PROTO;
	uint8_t type = p[0];
	uint32_t count = sp_get_le32(p + 1);
	if (count == 0 || count > CAUSAL_MAX_MERGE_OPS)
		return SP_ERR_PROTO;
	size_t pos = 5;
	for (uint32_t i = 0; i < count; i++) {
		if (len - pos < 4)
			return SP_ERR_PROTO;
		uint32_t kl = sp_get_le32(p + pos);
		pos += 4;
		if (kl == 0 || len - pos < kl)
			return SP_ERR_PROTO;
		const uint8_t *k = p + pos;
		pos += kl;
		if (len - pos < 4)
			return SP_ERR_PROTO;
		uint32_t dl = sp_get_le32(p + pos);
		pos += 4;
		if (len - pos < dl)
			return SP_ERR_PROTO;
		if (fn) {
			int rc = fn(ctx, type, k, kl, p + pos, dl);
			if (rc)
				return rc;
		}
		pos += dl;
	}
	return pos == len ? (int)count : SP_ERR_PROTO;
}

/* get_update decodes the update at p (len bytes available); sets *used. */
static int get_update(const uint8_t *p, size_t len, struct update *u, size_t *used)
{
	if (len < 17)
		return SP_ERR_PROTO;
	u->seq = sp_get_le64(p);
	u->ts = sp_get_le64(p + 8);
	u->flags = p[16];
	size_t pos = 17, n;
	if (u->flags & ~(FLAG_DEL | FLAG_SIBLINGS | FLAG_MERGE) ||
	    ((u->flags & FLAG_MERGE) && (u->flags & ~FLAG_MERGE)) ||
	    vclock_decode(p + pos, len - pos, &u->deps, &n))
		return SP_ERR_PROTO;
	pos += n;
	if (len - pos < 4)
		return SP_ERR_PROTO;
	u->klen = sp_get_le32(p + pos);
	pos += 4;
	if (len - pos < u->klen || u->klen == 0)
		return SP_ERR_PROTO;
	u->key = p + pos;
	pos += u->klen;
	if (len - pos < 4)
		return SP_ERR_PROTO;
	u->vlen = sp_get_le32(p + pos);
	pos += 4;
	if (len - pos < u->vlen)
		return SP_ERR_PROTO;
	u->v = p + pos;
	pos += u->vlen;
	*used = pos;
	if ((u->flags & FLAG_MERGE) && merge_walk(u->v, u->vlen, NULL, NULL) < 0)
		return SP_ERR_PROTO;
	return u->seq ? 0 : SP_ERR_PROTO;
}

/* ---- applying ---- */

/* put_rec_hdr starts a key's record: its version and flags (REC_HDR). */
static void put_rec_hdr(struct sp_buf *rec, uint64_t ts, uint64_t origin, uint64_t seq,
			uint8_t flags)
{
	sp_buf_put_le64(rec, ts);
	sp_buf_put_le64(rec, origin);
	sp_buf_put_le64(rec, seq);
	sp_buf_put_u8(rec, flags);
}

/* store_rec writes key's record. */
static int store_rec(struct causal_engine *e, const void *key, size_t klen, uint64_t ts,
		     uint64_t origin, uint64_t seq, uint8_t flags, const void *v, size_t vlen)
{
	struct sp_buf rec;
	sp_buf_init(&rec);
	put_rec_hdr(&rec, ts, origin, seq, flags);
	sp_buf_append(&rec, v, vlen);
	struct store_value sv = {.type = TYPE_LWW, .data = sp_buf_begin(&rec), .len = rec.len};
	int rc = store_put(e->store, key, klen, &sv);
	sp_buf_free(&rec);
	return rc;
}

/*
 * apply_siblings applies an update to a key that keeps concurrent values
 * (a multi-value register over causal delivery): every value the update
 * depends on (deps covers its (origin, seq)) is replaced, the others stay
 * beside the new one (none for a delete). Every node applies the same
 * updates, each after what it depends on, so every node ends with the
 * same set, whatever the order of concurrent ones. Values are kept sorted
 * by (origin, seq).
 */
static int apply_siblings(struct causal_engine *e, const void *key, size_t klen, uint64_t ts,
			  uint64_t origin, uint64_t seq, const struct vclock *deps, bool del,
			  const void *v, size_t vlen)
{
	struct store_value cur;
	int rc = store_get(e->store, key, klen, 0, &cur);
	if (rc && rc != SP_ERR_NOTFOUND)
		return rc;
	struct sp_buf out;
	sp_buf_init(&out);
	bool placed = del;
	size_t kept = 0;
	const uint8_t *p = rc == 0 && cur.type == TYPE_SIBLINGS ? cur.data : NULL;
	size_t left = p ? cur.len : 0;
	if (rc == SP_ERR_NOTFOUND)
		e->st.keys++;
	while (left >= 28) {
		uint64_t eo = sp_get_le64(p + 8), es = sp_get_le64(p + 16);
		uint32_t l = sp_get_le32(p + 24);
		if (left - 28 < l)
			break;
		if (!placed && (eo > origin || (eo == origin && es > seq))) {
			sp_buf_put_le64(&out, ts);
			sp_buf_put_le64(&out, origin);
			sp_buf_put_le64(&out, seq);
			sp_buf_put_le32(&out, (uint32_t)vlen);
			sp_buf_append(&out, v, vlen);
			placed = true;
		}
		if (vclock_get(deps, eo) < es) {
			sp_buf_append(&out, p, 28 + l);
			kept++;
		}
		p += 28 + l;
		left -= 28 + l;
	}
	if (!placed) {
		sp_buf_put_le64(&out, ts);
		sp_buf_put_le64(&out, origin);
		sp_buf_put_le64(&out, seq);
		sp_buf_put_le32(&out, (uint32_t)vlen);
		sp_buf_append(&out, v, vlen);
	}
	if (kept)
		e->st.concurrent_writes++;
	if (out.len) {
		struct store_value sv = {
		    .type = TYPE_SIBLINGS, .data = sp_buf_begin(&out), .len = out.len};
		rc = store_put(e->store, key, klen, &sv);
	} else {
		rc = store_del(e->store, key, klen, 0);
		rc = rc < 0 ? rc : 0;
	}
	sp_buf_free(&out);
	return rc;
}

/* The update a merge op belongs to: its version goes on every key. */
struct merge_ctx {
	struct causal_engine *e;
	uint64_t ts, origin, seq;
};

/*
 * merge_one merges one delta into its key's state: the join of the state
 * held (none, or a record of another kind, counts as bottom) and the
 * delta. Merges commute, so every node reaches the same state whatever
 * order concurrent updates arrive in. The record's version is the larger
 * (ts, origin) of the held one and this update's. A delta that is not a
 * state of its type changes nothing (it cannot come from a spectra node;
 * it is logged, and the update still counts as applied so the origin's
 * later updates are not held up behind it).
 */
static int merge_one(void *ctx, uint8_t type, const uint8_t *key, size_t klen, const uint8_t *d,
		     size_t dlen)
{
	struct merge_ctx *m = ctx;
	struct causal_engine *e = m->e;
	struct store_value cur;
	int rc = store_get(e->store, key, klen, 0, &cur);
	if (rc && rc != SP_ERR_NOTFOUND)
		return rc;
	const uint8_t *held = NULL;
	size_t hlen = 0;
	uint64_t ts = m->ts, origin = m->origin, seq = m->seq;
	if (rc == SP_ERR_NOTFOUND) {
		e->st.keys++;
	} else if (cur.type == TYPE_MERGE && cur.len > REC_HDR &&
		   ((const uint8_t *)cur.data)[REC_HDR] == type) {
		const uint8_t *r = cur.data;
		uint64_t hts = sp_get_le64(r), horigin = sp_get_le64(r + 8);
		if (hts > ts || (hts == ts && horigin > origin))
			ts = hts, origin = horigin, seq = sp_get_le64(r + 16);
		held = r + REC_HDR + 1;
		hlen = cur.len - REC_HDR - 1;
	}
	struct sp_buf rec;
	sp_buf_init(&rec);
	put_rec_hdr(&rec, ts, origin, seq, FLAG_MERGE);
	sp_buf_put_u8(&rec, type);
	/* held is borrowed from the store: the merge copies it into rec
	 * before the store is called again. */
	rc = crdt_merge(type, held, hlen, d, dlen, &rec);
	if (rc) {
		sp_log(SP_LOG_WARN,
		       "causal: a merge update from node %" PRIu64
		       " holds a bad delta (%s); its key is left as it was",
		       m->origin, sp_strerror(rc));
		sp_buf_free(&rec);
		return 0;
	}
	struct store_value sv = {.type = TYPE_MERGE, .data = sp_buf_begin(&rec), .len = rec.len};
	rc = store_put(e->store, key, klen, &sv);
	sp_buf_free(&rec);
	return rc;
}

/* apply_remote applies update u of origin (its dependencies are held).
 * Last writer wins by (ts, origin); a write that replaces a value it did
 * not depend on was concurrent with it. */
static int apply_remote(struct causal_engine *e, uint64_t origin, const struct update *u)
{
	(void)hlc_observe(&e->hlc, u->ts, sp_wall_ms(e->cfg.clock), 0);
	struct store_value cur;
	int rc;
	bool write = true;
	if (u->flags & FLAG_MERGE) {
		struct merge_ctx m = {e, u->ts, origin, u->seq};
		rc = merge_walk(u->v, u->vlen, merge_one, &m);
		if (rc < 0)
			return rc;
		write = false;
		rc = SP_ERR_EXISTS; /* skip the register path below */
	} else if (u->flags & FLAG_SIBLINGS) {
		rc = apply_siblings(e, u->key, u->klen, u->ts, origin, u->seq, &u->deps,
				    u->flags & FLAG_DEL, u->v, u->vlen);
		if (rc)
			return rc;
		write = false;
		rc = SP_ERR_EXISTS; /* skip the register path below */
	} else {
		rc = store_get(e->store, u->key, u->klen, 0, &cur);
	}
	if (rc == SP_ERR_EXISTS) {
		/* applied above */
	} else if (rc == 0 && cur.len >= REC_HDR) {
		const uint8_t *r = cur.data;
		uint64_t ets = sp_get_le64(r), eorigin = sp_get_le64(r + 8),
			 eseq = sp_get_le64(r + 16);
		if (vclock_get(&u->deps, eorigin) < eseq)
			e->st.concurrent_writes++;
		write = u->ts > ets || (u->ts == ets && origin > eorigin);
	} else if (rc == SP_ERR_NOTFOUND) {
		e->st.keys++;
	} else if (rc) {
		return rc;
	}
	if (write) {
		rc = store_rec(e, u->key, u->klen, u->ts, origin, u->seq, u->flags, u->v, u->vlen);
		if (rc)
			return rc;
	}
	rc = vclock_set(&e->applied, origin, u->seq);
	if (rc)
		return rc;
	e->applied_dirty = true;
	e->st.updates_applied++;
	struct peer *pe = peer_find(e, origin);
	if (pe)
		caught_up(e, pe);
	if (e->cfg.apply_cb)
		e->cfg.apply_cb(e->cfg.ctx, origin, u->seq, u->key, u->klen);
	return 0;
}

static bool deliverable(const struct causal_engine *e, uint64_t origin, const struct update *u)
{
	if (u->seq != vclock_get(&e->applied, origin) + 1)
		return false;
	/* The origin's own entry in deps is seq - 1, held by the test above. */
	for (uint32_t i = 0; i < u->deps.n; i++) {
		const struct vclock_entry *d = &u->deps.e[i];
		if (d->node != origin && vclock_get(&e->applied, d->node) < d->count)
			return false;
	}
	return true;
}

static struct origin_queue *queue_of(struct causal_engine *e, uint64_t origin, bool create)
{
	for (size_t i = 0; i < e->nqueues; i++)
		if (e->queues[i].origin == origin)
			return &e->queues[i];
	if (!create || e->nqueues == MAX_PEERS + 1)
		return NULL;
	struct origin_queue *q = &e->queues[e->nqueues++];
	memset(q, 0, sizeof(*q));
	q->origin = origin;
	return q;
}

static void queue_pop(struct causal_engine *e, struct origin_queue *q)
{
	free(q->items[q->head].p);
	q->head++;
	e->npending--;
	if (q->head == q->n) {
		q->head = q->n = 0;
	} else if (q->head > 64 && q->head * 2 > q->n) {
		memmove(q->items, q->items + q->head, (q->n - q->head) * sizeof(*q->items));
		q->n -= q->head;
		q->head = 0;
	}
}

/* drain_pending applies buffered updates until none is deliverable: it
 * looks only at each origin's lowest waiting seq. */
static void drain_pending(struct causal_engine *e)
{
	bool progress = true;
	while (progress && e->npending) {
		progress = false;
		for (size_t k = 0; k < e->nqueues; k++) {
			struct origin_queue *q = &e->queues[k];
			while (q->head < q->n) {
				struct pending *it = &q->items[q->head];
				uint64_t have = vclock_get(&e->applied, q->origin);
				struct update u;
				size_t used;
				if (it->seq <= have || get_update(it->p, it->len, &u, &used)) {
					queue_pop(e, q);
					continue;
				}
				if (!deliverable(e, q->origin, &u) ||
				    apply_remote(e, q->origin, &u))
					break;
				queue_pop(e, q);
				progress = true;
			}
		}
	}
	e->st.pending = e->npending;
}

static void buffer_update(struct causal_engine *e, uint64_t origin, const uint8_t *p, size_t len,
			  uint64_t seq)
{
	struct origin_queue *q = queue_of(e, origin, true);
	if (!q)
		return;
	/* Binary search for seq among the live items. */
	size_t lo = q->head, hi = q->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (q->items[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < q->n && q->items[lo].seq == seq)
		return; /* already waiting */
	if (e->npending >= e->cfg.max_pending) {
		/* The origin resends from what this node acknowledged. */
		e->st.pending_dropped++;
		return;
	}
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->items = sp_realloc(q->items, q->cap * sizeof(*q->items));
	}
	memmove(q->items + lo + 1, q->items + lo, (q->n - lo) * sizeof(*q->items));
	q->n++;
	struct pending *it = &q->items[lo];
	it->seq = seq;
	it->p = sp_malloc(len);
	memcpy(it->p, p, len);
	it->len = len;
	e->npending++;
	e->st.pending = e->npending;
}

static void recv_updates(struct causal_engine *e, uint64_t from, const uint8_t *p, size_t len)
{
	if (len < 5)
		return;
	uint32_t count = sp_get_le32(p + 1);
	size_t pos = 5;
	bool applied = false;
	for (uint32_t i = 0; i < count; i++) {
		struct update u;
		size_t used;
		if (get_update(p + pos, len - pos, &u, &used))
			break;
		e->st.updates_received++;
		if (u.seq <= vclock_get(&e->applied, from)) {
			e->st.updates_duplicate++;
		} else if (deliverable(e, from, &u)) {
			if (apply_remote(e, from, &u) == 0)
				applied = true;
		} else {
			buffer_update(e, from, p + pos, used, u.seq);
		}
		pos += used;
	}
	if (applied || e->npending)
		drain_pending(e);
	if (applied && e->cfg.applied_cb)
		e->cfg.applied_cb(e->cfg.ctx);
}

static struct peer *peer_find(struct causal_engine *e, uint64_t id)
{
	for (size_t i = 0; i < e->npeers; i++)
		if (e->peers[i].id == id)
			return &e->peers[i];
	return NULL;
}

/* caught_up notes that this node holds every update of pe's that pe had
 * reported by their_seq_ms: what causal_lag_ms measures from. */
static void caught_up(struct causal_engine *e, struct peer *pe)
{
	if (vclock_get(&e->applied, pe->id) >= pe->their_seq)
		pe->caught_up_ms = pe->their_seq_ms;
}

static void recv_ack(struct causal_engine *e, struct peer *pe, const uint8_t *p, size_t len)
{
	struct vclock v;
	size_t used;
	if (vclock_decode(p + 1, len - 1, &v, &used))
		return;
	uint64_t theirs = vclock_get(&v, pe->id);
	if (len - 1 - used >= 16) {
		pe->their_stamp = sp_get_le64(p + 1 + used);
		uint64_t echo = sp_get_le64(p + 1 + used + 8);
		/* Everything it had written by the time it sent this has a seq
		 * up to theirs, and it sent this after our ACK stamped echo
		 * arrived: so as of echo (our clock), at the latest. */
		if (echo && echo <= now_ms(e) && theirs >= pe->their_seq &&
		    echo >= pe->their_seq_ms) {
			pe->their_seq = theirs;
			pe->their_seq_ms = echo;
		}
	}
	caught_up(e, pe);
	uint64_t a = vclock_get(&v, e->cfg.self_id);
	uint64_t mine = vclock_get(&e->applied, e->cfg.self_id);
	if (a > mine)
		a = mine; /* it cannot hold more of ours than we made */
	if (pe->sent == SENT_UNKNOWN) {
		pe->sent = a;
		pe->acked = a;
		pe->progress_ms = now_ms(e);
		return;
	}
	if (a > pe->acked || a == pe->sent)
		pe->progress_ms = now_ms(e);
	if (a > pe->acked)
		pe->acked = a;
	if (pe->sent < pe->acked)
		pe->sent = pe->acked;
}

int causal_read_version(struct causal_engine *e, const void *key, size_t klen,
			struct causal_version *out)
{
	memset(out, 0, sizeof(*out));
	struct store_value cur;
	int rc = store_get(e->store, key, klen, 0, &cur);
	if (rc == SP_ERR_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if ((cur.type != TYPE_LWW && cur.type != TYPE_MERGE) || cur.len < REC_HDR)
		return 0;
	out->found = true;
	out->ts = sp_get_le64(cur.data);
	out->origin = sp_get_le64(cur.data + 8);
	out->seq = sp_get_le64(cur.data + 16);
	return 0;
}

static void recv_peek(struct causal_engine *e, uint64_t from, const uint8_t *p, size_t len)
{
	if (len < 13)
		return;
	uint64_t id = sp_get_le64(p + 1);
	uint32_t klen = sp_get_le32(p + 9);
	if (klen != len - 13)
		return;
	struct causal_version v;
	if (causal_read_version(e, p + 13, klen, &v))
		return; /* no answer: the asker's deadline says so */
	uint8_t m[SEEN_LEN];
	m[0] = CM_SEEN;
	sp_put_le64(m + 1, id);
	m[9] = v.found;
	sp_put_le64(m + 10, v.ts);
	sp_put_le64(m + 18, v.origin);
	sp_put_le64(m + 26, v.seq);
	hold(e, from, m, sizeof(m));
}

static void peek_finish(struct causal_engine *e, struct peek *k, int err)
{
	struct peek **pp = &e->peeks;
	while (*pp != k)
		pp = &(*pp)->next;
	*pp = k->next;
	k->cb(k->arg, err, k->v, k->got);
	free(k);
}

static void recv_seen(struct causal_engine *e, uint64_t from, const uint8_t *p, size_t len)
{
	if (len != SEEN_LEN || p[9] > 1)
		return;
	uint64_t id = sp_get_le64(p + 1);
	struct peek *k = e->peeks;
	while (k && k->id != id)
		k = k->next;
	if (!k)
		return; /* late: its deadline passed */
	for (size_t i = 0; i < k->got; i++)
		if (k->from[i] == from)
			return; /* a duplicate */
	if (k->got == MAX_PEERS)
		return;
	k->from[k->got] = from;
	k->v[k->got] = (struct causal_version){.found = p[9] != 0,
					       .ts = sp_get_le64(p + 10),
					       .origin = sp_get_le64(p + 18),
					       .seq = sp_get_le64(p + 26)};
	k->got++;
	if (k->got == e->npeers)
		peek_finish(e, k, 0);
}

int causal_peek_peers(struct causal_engine *e, const void *key, size_t klen, uint32_t timeout_ms,
		      causal_peek_fn cb, void *arg)
{
	if (e->npeers == 0 || klen > UINT32_MAX)
		return SP_ERR_INVAL;
	struct peek *k = sp_calloc(1, sizeof(*k));
	k->id = ++e->next_peek;
	k->deadline_ms = now_ms(e) + timeout_ms;
	k->cb = cb;
	k->arg = arg;
	k->next = e->peeks;
	e->peeks = k;
	struct sp_buf m;
	sp_buf_init(&m);
	sp_buf_put_u8(&m, CM_PEEK);
	sp_buf_put_le64(&m, k->id);
	sp_buf_put_le32(&m, (uint32_t)klen);
	sp_buf_append(&m, key, klen);
	for (size_t i = 0; i < e->npeers; i++)
		hold(e, e->peers[i].id, sp_buf_begin(&m), m.len);
	sp_buf_free(&m);
	return 0;
}

/* peeks_expire answers the peeks past their deadline with what came:
 * enough when a majority of the cluster (this node included) answered. */
static void peeks_expire(struct causal_engine *e)
{
	uint64_t now = now_ms(e);
	struct peek *k = e->peeks;
	while (k) {
		struct peek *next = k->next;
		if (now >= k->deadline_ms)
			peek_finish(e, k, (k->got + 1) * 2 > e->npeers + 1 ? 0 : SP_ERR_AGAIN);
		k = next;
	}
}

void causal_recv(struct causal_engine *e, uint64_t from, const uint8_t *p, size_t len)
{
	struct peer *pe = peer_find(e, from);
	if (!pe || len < 1)
		return;
	if (p[0] == CM_UPDATES)
		recv_updates(e, from, p, len);
	else if (p[0] == CM_ACK)
		recv_ack(e, pe, p, len);
	else if (p[0] == CM_PEEK)
		recv_peek(e, from, p, len);
	else if (p[0] == CM_SEEN)
		recv_seen(e, from, p, len);
}

/* ---- writing here ---- */

static void log_name(char *out, size_t cap, uint64_t seq)
{
	snprintf(out, cap, "l/%016" PRIx64, seq);
}

static int log_local(struct causal_engine *e, uint64_t seq, uint64_t ts, uint8_t flags,
		     const void *key, size_t klen, const void *v, size_t vlen);

int causal_write(struct causal_engine *e, const void *key, size_t klen, const void *v, size_t vlen,
		 bool del, bool siblings)
{
	if (klen == 0 || klen > store_max_key_len(e->store))
		return SP_ERR_KEYLEN;
	if (vlen > UINT32_MAX - REC_HDR || klen + vlen > causal_max_write_bytes(e))
		return SP_ERR_TOOBIG;
	uint64_t seq = vclock_get(&e->applied, e->cfg.self_id) + 1;
	uint64_t ts = hlc_now(&e->hlc, sp_wall_ms(e->cfg.clock));
	uint8_t flags = (del ? FLAG_DEL : 0) | (siblings ? FLAG_SIBLINGS : 0);
	int rc;
	if (siblings) {
		/* This node's applied vector covers every value it holds: the
		 * write replaces them all. */
		rc = apply_siblings(e, key, klen, ts, e->cfg.self_id, seq, &e->applied, del, v,
				    del ? 0 : vlen);
	} else {
		struct store_value cur;
		rc = store_get(e->store, key, klen, 0, &cur);
		if (rc == SP_ERR_NOTFOUND)
			e->st.keys++;
		else if (rc)
			return rc;
		rc = store_rec(e, key, klen, ts, e->cfg.self_id, seq, flags, v, del ? 0 : vlen);
	}
	if (rc)
		return rc;
	return log_local(e, seq, ts, flags, key, klen, v, del ? 0 : vlen);
}

/* log_local logs this origin's update seq (applied here already), counts
 * it applied, and queues it for the peers at the next commit. */
static int log_local(struct causal_engine *e, uint64_t seq, uint64_t ts, uint8_t flags,
		     const void *key, size_t klen, const void *v, size_t vlen)
{
	struct sp_buf u;
	sp_buf_init(&u);
	put_update(&u, seq, ts, flags, &e->applied, key, klen, v, vlen);
	char name[32];
	log_name(name, sizeof(name), seq);
	int rc = store_meta_put(e->store, name, sp_buf_begin(&u), u.len);
	if (rc == 0)
		rc = vclock_set(&e->applied, e->cfg.self_id, seq);
	if (rc == 0) {
		e->applied_dirty = true;
		if (!e->outbox_n)
			e->outbox_first = seq;
		e->outbox_n++;
		sp_buf_append(&e->outbox, sp_buf_begin(&u), u.len);
		e->st.writes++;
		e->st.log_entries++;
	}
	sp_buf_free(&u);
	return rc;
}

int causal_read(struct causal_engine *e, const void *key, size_t klen, struct causal_value *out)
{
	struct store_value cur;
	int rc = store_get(e->store, key, klen, 0, &cur);
	if (rc)
		return rc;
	e->st.reads++;
	const uint8_t *r = cur.data;
	if (cur.type != TYPE_LWW || cur.len < REC_HDR || (r[24] & FLAG_DEL))
		return SP_ERR_NOTFOUND;
	out->ts = sp_get_le64(r);
	out->origin = sp_get_le64(r + 8);
	out->seq = sp_get_le64(r + 16);
	out->v = r + REC_HDR;
	out->vlen = cur.len - REC_HDR;
	return 0;
}

/* An update's parts besides its key and value: the message's type and
 * count, seq, ts, flags, the dependencies, the two lengths. */
#define UPDATE_OVERHEAD (5 + 17 + VCLOCK_ENCODED_MAX + 8)

uint64_t causal_max_write_bytes(const struct causal_engine *e)
{
	uint64_t m = e->cfg.max_update_bytes;
	return m > UPDATE_OVERHEAD ? m - UPDATE_OVERHEAD : 0;
}

uint64_t causal_now(struct causal_engine *e)
{
	return hlc_now(&e->hlc, sp_wall_ms(e->cfg.clock));
}

int causal_merge(struct causal_engine *e, uint64_t ts, uint8_t type,
		 const struct causal_merge_op *ops, size_t n)
{
	if (n == 0 || n > CAUSAL_MAX_MERGE_OPS || !crdt_type_name(type))
		return SP_ERR_INVAL;
	struct sp_buf v;
	sp_buf_init(&v);
	sp_buf_put_u8(&v, type);
	sp_buf_put_le32(&v, (uint32_t)n);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (ops[i].klen == 0 || ops[i].klen > store_max_key_len(e->store))
			rc = SP_ERR_KEYLEN;
		else if (ops[i].dlen > UINT32_MAX - REC_HDR - 1)
			rc = SP_ERR_TOOBIG;
		else if (crdt_validate(type, ops[i].delta, ops[i].dlen))
			rc = SP_ERR_INVAL;
		sp_buf_put_le32(&v, (uint32_t)ops[i].klen);
		sp_buf_append(&v, ops[i].key, ops[i].klen);
		sp_buf_put_le32(&v, (uint32_t)ops[i].dlen);
		sp_buf_append(&v, ops[i].delta, ops[i].dlen);
	}
	if (rc == 0 && v.len + ops[0].klen > causal_max_write_bytes(e))
		rc = SP_ERR_TOOBIG;
	if (rc) {
		sp_buf_free(&v);
		return rc;
	}
	/* Applied here first, as one update, in this one loop turn: no read
	 * on this node sees part of it, and every peer applies it whole. */
	uint64_t seq = vclock_get(&e->applied, e->cfg.self_id) + 1;
	struct merge_ctx m = {e, ts, e->cfg.self_id, seq};
	rc = merge_walk((const uint8_t *)sp_buf_begin(&v), v.len, merge_one, &m);
	if (rc >= 0)
		rc = log_local(e, seq, ts, FLAG_MERGE, ops[0].key, ops[0].klen, sp_buf_begin(&v),
			       v.len);
	sp_buf_free(&v);
	return rc;
}

int causal_read_crdt(struct causal_engine *e, const void *key, size_t klen, uint8_t type,
		     struct causal_value *out)
{
	struct store_value cur;
	int rc = store_get(e->store, key, klen, 0, &cur);
	if (rc)
		return rc;
	e->st.reads++;
	const uint8_t *r = cur.data;
	if (cur.type != TYPE_MERGE || cur.len <= REC_HDR || r[REC_HDR] != type)
		return SP_ERR_NOTFOUND;
	out->ts = sp_get_le64(r);
	out->origin = sp_get_le64(r + 8);
	out->seq = sp_get_le64(r + 16);
	out->v = r + REC_HDR + 1;
	out->vlen = cur.len - REC_HDR - 1;
	return 0;
}

int causal_read_siblings(struct causal_engine *e, const void *key, size_t klen, causal_value_fn fn,
			 void *ctx)
{
	struct store_value cur;
	int rc = store_get(e->store, key, klen, 0, &cur);
	if (rc == SP_ERR_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	e->st.reads++;
	if (cur.type != TYPE_SIBLINGS)
		return 0;
	const uint8_t *p = cur.data;
	size_t left = cur.len;
	int n = 0;
	while (left >= 28) {
		uint32_t l = sp_get_le32(p + 24);
		if (left - 28 < l)
			return SP_ERR_CORRUPT;
		struct causal_value v = {.v = p + 28,
					 .vlen = l,
					 .ts = sp_get_le64(p),
					 .origin = sp_get_le64(p + 8),
					 .seq = sp_get_le64(p + 16)};
		fn(ctx, &v);
		n++;
		p += 28 + l;
		left -= 28 + l;
	}
	return n;
}

const struct vclock *causal_applied(const struct causal_engine *e)
{
	return &e->applied;
}

bool causal_ready(const struct causal_engine *e, const struct vclock *ctx)
{
	return vclock_covers(&e->applied, ctx);
}

/* ---- shipping ---- */

/* send_updates sends `n` encoded updates (bytes p) to peer. */
static void send_updates(struct causal_engine *e, struct peer *pe, const uint8_t *p, size_t len,
			 uint32_t n)
{
	struct sp_buf m;
	sp_buf_init(&m);
	sp_buf_put_u8(&m, CM_UPDATES);
	sp_buf_put_le32(&m, n);
	sp_buf_append(&m, p, len);
	hold(e, pe->id, sp_buf_begin(&m), m.len);
	e->st.updates_sent += n;
	sp_buf_free(&m);
}

/* catch_up sends a lagging peer the next updates from the log. */
static void catch_up(struct causal_engine *e, struct peer *pe)
{
	uint64_t mine = vclock_get(&e->applied, e->cfg.self_id);
	if (pe->sent == SENT_UNKNOWN || pe->sent >= mine)
		return;
	if (e->outbox_n && pe->sent + 1 >= e->outbox_first)
		return; /* the outbox will carry the rest at the commit */
	struct sp_buf batch;
	sp_buf_init(&batch);
	uint32_t n = 0;
	uint64_t seq = pe->sent + 1;
	for (; seq <= mine && batch.len < e->cfg.batch_bytes; seq++) {
		if (e->outbox_n && seq >= e->outbox_first)
			break;
		char name[32];
		log_name(name, sizeof(name), seq);
		const void *val;
		size_t len;
		if (store_meta_get(e->store, name, &val, &len))
			break; /* collected: every peer had it, this one must too */
		sp_buf_append(&batch, val, len);
		n++;
	}
	if (n) {
		send_updates(e, pe, (const uint8_t *)sp_buf_begin(&batch), batch.len, n);
		pe->sent += n;
	}
	sp_buf_free(&batch);
}

/* gc_log drops log entries every peer holds. */
static void gc_log(struct causal_engine *e)
{
	uint64_t floor = vclock_get(&e->applied, e->cfg.self_id);
	for (size_t i = 0; i < e->npeers; i++) {
		if (e->peers[i].sent == SENT_UNKNOWN)
			return;
		if (e->peers[i].acked < floor)
			floor = e->peers[i].acked;
	}
	for (int k = 0; k < LOG_GC_STEP && e->log_floor < floor; k++) {
		char name[32];
		log_name(name, sizeof(name), ++e->log_floor);
		if (store_meta_del(e->store, name) == 1 && e->st.log_entries)
			e->st.log_entries--;
	}
}

void causal_tick(struct causal_engine *e)
{
	uint64_t now = now_ms(e);
	if (now - e->last_ack_ms >= e->cfg.ack_ms) {
		e->last_ack_ms = now;
		struct sp_buf m;
		sp_buf_init(&m);
		sp_buf_put_u8(&m, CM_ACK);
		vclock_encode(&e->applied, &m);
		size_t base = m.len;
		for (size_t i = 0; i < e->npeers; i++) {
			m.len = base;
			sp_buf_put_le64(&m, now);
			sp_buf_put_le64(&m, e->peers[i].their_stamp);
			hold(e, e->peers[i].id, sp_buf_begin(&m), m.len);
		}
		sp_buf_free(&m);
	}
	for (size_t i = 0; i < e->npeers; i++) {
		struct peer *pe = &e->peers[i];
		if (pe->sent != SENT_UNKNOWN && pe->acked < pe->sent &&
		    now - pe->progress_ms >= e->cfg.resend_ms) {
			/* Sent but not taken (lost with a connection, or dropped
			 * from a full buffer): start again where it stands. */
			pe->sent = pe->acked;
			pe->progress_ms = now;
			e->st.resends++;
		}
		catch_up(e, pe);
	}
	peeks_expire(e);
	gc_log(e);
}

/* flush_applied puts the applied vector into the open batch, so it
 * commits with the writes it counts. */
static int flush_applied(struct causal_engine *e)
{
	if (!e->applied_dirty)
		return 0;
	struct sp_buf v;
	sp_buf_init(&v);
	vclock_encode(&e->applied, &v);
	int rc = store_meta_put(e->store, "applied", sp_buf_begin(&v), v.len);
	sp_buf_free(&v);
	if (rc == 0)
		e->applied_dirty = false;
	return rc;
}

int causal_commit(struct causal_engine *e)
{
	int rc = flush_applied(e);
	if (rc)
		return rc;
	rc = store_commit_checked(e->store, &e->batches_lost);
	if (rc) {
		held_drop(&e->held);
		return rc;
	}
	/* Peers in step get this commit's writes now; the rest catch up. */
	if (e->outbox_n) {
		for (size_t i = 0; i < e->npeers; i++) {
			struct peer *pe = &e->peers[i];
			if (pe->sent + 1 != e->outbox_first)
				continue;
			send_updates(e, pe, (const uint8_t *)sp_buf_begin(&e->outbox),
				     e->outbox.len, (uint32_t)e->outbox_n);
			pe->sent += e->outbox_n;
		}
		sp_buf_clear(&e->outbox);
		e->outbox_n = 0;
	}
	held_flush(&e->held, e->cfg.send, e->cfg.ctx);
	return 0;
}

/* ---- lifetime ---- */

int causal_set_nodes(struct causal_engine *e, const uint64_t *nodes, size_t n)
{
	if (n > MAX_PEERS)
		return SP_ERR_INVAL;
	struct peer old[MAX_PEERS];
	size_t nold = e->npeers;
	memcpy(old, e->peers, nold * sizeof(*old));
	e->npeers = 0;
	for (size_t i = 0; i < n; i++) {
		if (nodes[i] == e->cfg.self_id)
			continue;
		struct peer *pe = &e->peers[e->npeers++];
		*pe = (struct peer){.id = nodes[i], .sent = SENT_UNKNOWN};
		for (size_t j = 0; j < nold; j++)
			if (old[j].id == nodes[i])
				*pe = old[j];
	}
	return 0;
}

static int first_log(void *ctx, const char *name, const void *val, size_t len)
{
	uint64_t *first = ctx;
	(void)val, (void)len;
	*first = strtoull(name + 2, NULL, 16);
	return 1;
}

static int count_log(void *ctx, const char *name, const void *val, size_t len)
{
	(void)name, (void)val, (void)len;
	(*(uint64_t *)ctx)++;
	return 0;
}

int causal_open(struct causal_engine **out, const struct causal_config *cfg, const uint64_t *nodes,
		size_t n)
{
	*out = NULL;
	if (!cfg->self_id || !cfg->dir || !cfg->send || !cfg->clock)
		return SP_ERR_INVAL;
	struct causal_engine *e = sp_calloc(1, sizeof(*e));
	e->cfg = *cfg;
	e->dir = strdup(cfg->dir);
	e->cfg.dir = e->dir;
	if (!e->cfg.ack_ms)
		e->cfg.ack_ms = 50;
	if (!e->cfg.resend_ms)
		e->cfg.resend_ms = 500;
	if (!e->cfg.batch_bytes)
		e->cfg.batch_bytes = 256 << 10;
	if (!e->cfg.max_pending)
		e->cfg.max_pending = 100000;
	if (!e->cfg.max_update_bytes)
		e->cfg.max_update_bytes = (64u << 20) - 4096;
	vclock_init(&e->applied);
	hlc_init(&e->hlc);
	sp_buf_init(&e->outbox);
	held_init(&e->held);
	struct store_options so = {.dir = e->dir, .map_size = cfg->map_size, .wal = 0};
	int rc = store_open(&e->store, &so);
	if (rc)
		goto fail;
	const void *val;
	size_t len, used;
	rc = store_meta_get(e->store, "applied", &val, &len);
	if (rc == 0)
		rc = vclock_decode(val, len, &e->applied, &used) ? SP_ERR_CORRUPT : 0;
	else if (rc == SP_ERR_NOTFOUND)
		rc = 0;
	if (rc)
		goto fail;
	uint64_t first = 0;
	if (store_meta_scan(e->store, "l/", first_log, &first) > 0)
		e->log_floor = first - 1;
	else
		e->log_floor = vclock_get(&e->applied, cfg->self_id);
	(void)store_meta_scan(e->store, "l/", count_log, &e->st.log_entries);
	struct store_stats ss;
	store_get_stats(e->store, &ss);
	e->st.keys = ss.keys;
	rc = causal_set_nodes(e, nodes, n);
	if (rc)
		goto fail;
	*out = e;
	return 0;
fail:
	causal_close(e);
	return rc;
}

void causal_close(struct causal_engine *e)
{
	if (!e)
		return;
	if (e->store) {
		/* Nothing is sent at close: peers catch up from the log. */
		if (flush_applied(e) == 0)
			(void)store_commit(e->store);
		store_close(e->store);
	}
	for (size_t k = 0; k < e->nqueues; k++) {
		for (size_t i = e->queues[k].head; i < e->queues[k].n; i++)
			free(e->queues[k].items[i].p);
		free(e->queues[k].items);
	}
	sp_buf_free(&e->outbox);
	held_free(&e->held);
	while (e->peeks)
		peek_finish(e, e->peeks, SP_ERR_AGAIN);
	free(e->dir);
	free(e);
}

void causal_get_stats(const struct causal_engine *e, struct causal_stats *out)
{
	*out = e->st;
}

int causal_peer_lag(const struct causal_engine *e, uint64_t id, struct causal_peer_lag *out)
{
	for (size_t i = 0; i < e->npeers; i++) {
		const struct peer *pe = &e->peers[i];
		if (pe->id != id)
			continue;
		uint64_t mine = vclock_get(&e->applied, e->cfg.self_id);
		out->unacked = pe->sent == SENT_UNKNOWN || pe->acked > mine ? 0 : mine - pe->acked;
		out->acked_known = pe->sent != SENT_UNKNOWN;
		uint64_t now = now_ms(e);
		out->behind_ms = pe->caught_up_ms ? now - pe->caught_up_ms : UINT64_MAX;
		return 0;
	}
	return SP_ERR_NOTFOUND;
}

uint64_t causal_lag_ms(const struct causal_engine *e)
{
	uint64_t now = now_ms(e), worst = 0;
	for (size_t i = 0; i < e->npeers; i++) {
		const struct peer *pe = &e->peers[i];
		if (!pe->caught_up_ms)
			return UINT64_MAX;
		if (now - pe->caught_up_ms > worst)
			worst = now - pe->caught_up_ms;
	}
	return worst;
}
