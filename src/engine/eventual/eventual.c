/*
 * eventual: coordinating ops, serving replicas, liveness. See eventual.h.
 */
#include "engine/eventual/eventual.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "engine/eventual/internal.h"

#define BUCKETS 1024 /* power of two */

enum pending_role {
	P_WRITE = 1,
	P_READ,
	P_PROXY,
};

/* The op flag a proxied write carries, so it is never proxied again. */
#define EV_OP_PROXIED 0x80u

struct ev_pending {
	uint64_t id;
	struct ev_pending *hnext, *prev, *next;
	uint8_t role, kind, level, rf, need, flags;
	bool answered;
	ev_done_fn done;
	void *arg;
	uint64_t deadline_ms; /* answer by */
	uint64_t start_ms;
	struct sp_buf key;
	uint64_t hash;
	uint64_t targets[EV_MAX_RF];
	uint64_t fallback[EV_MAX_RF]; /* sloppy: the node holding target i's hint */
	uint8_t ntargets;
	uint8_t sent;	  /* targets a message went to (or self) */
	uint8_t acked;	  /* writes: targets holding the state */
	uint8_t hinted;	  /* writes: a hint is kept for it (here or at a fallback) */
	uint8_t fb_acked; /* sloppy: fallbacks that took target i's hint */
	/* Writes: the coordinator's new state. Reads: the merge so far. */
	uint8_t type;
	struct sp_buf state;
	int64_t n;
	uint64_t seen_ts;
	/* Reads: each target's answer. */
	uint8_t responded;
	uint8_t repair_wait; /* blocking read repair: acks still awaited */
	uint8_t rtype[EV_MAX_RF];
	struct sp_buf resp[EV_MAX_RF];
	/* Proxies: where the write went. */
	uint64_t proxy_to;
};

/* ---- small helpers ---- */

uint64_t ev_now_ms(const struct ev_engine *e)
{
	return sp_mono_ns(e->cfg.clock) / 1000000;
}

const char *ev_level_name(uint8_t level)
{
	switch (level) {
	case EV_LEVEL_ONE:
		return "one";
	case EV_LEVEL_QUORUM:
		return "quorum";
	case EV_LEVEL_ALL:
		return "all";
	default:
		return "default";
	}
}

static uint64_t rnd(struct ev_engine *e)
{
	uint64_t z = (e->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static unsigned popcount8(uint8_t v)
{
	return (unsigned)__builtin_popcount(v);
}

static uint8_t level_need(uint8_t level, uint8_t n)
{
	switch (level) {
	case EV_LEVEL_ONE:
		return 1;
	case EV_LEVEL_ALL:
		return n;
	default:
		return (uint8_t)(n / 2 + 1);
	}
}

static uint8_t op_type(uint8_t kind)
{
	switch (kind) {
	case EV_OP_LWW_SET:
	case EV_OP_LWW_DEL:
		return CRDT_LWW;
	case EV_OP_GCOUNTER_ADD:
		return CRDT_GCOUNTER;
	case EV_OP_PNCOUNTER_ADD:
		return CRDT_PNCOUNTER;
	case EV_OP_GSET_ADD:
		return CRDT_GSET;
	case EV_OP_TPSET_ADD:
	case EV_OP_TPSET_REM:
		return CRDT_2PSET;
	case EV_OP_ORSET_ADD:
	case EV_OP_ORSET_REM:
		return CRDT_ORSET;
	case EV_OP_MVREG_SET:
		return CRDT_MVREG;
	case EV_OP_FVEC_SET:
		return CRDT_FVEC;
	default:
		return 0;
	}
}

struct ev_peer *ev_peer_find(struct ev_engine *e, uint64_t id)
{
	for (size_t i = 0; i < e->npeers; i++)
		if (e->peers[i].id == id)
			return &e->peers[i];
	return NULL;
}

bool ev_peer_alive(const struct ev_engine *e, uint64_t id)
{
	if (id == e->cfg.self_id)
		return true;
	if (e->cfg.link_down && e->cfg.link_down(e->cfg.ctx, id))
		return false;
	uint64_t now = ev_now_ms(e);
	for (size_t i = 0; i < e->npeers; i++) {
		if (e->peers[i].id != id)
			continue;
		const struct ev_peer *p = &e->peers[i];
		/* Until a first round of pings could have come back, every
		 * peer is presumed up: a node that just started must not
		 * refuse writes for want of news. */
		if (now - e->start_ms < e->cfg.suspect_ms)
			return true;
		return p->last_heard_ms && now - p->last_heard_ms < e->cfg.suspect_ms;
	}
	return false;
}

void ev_send(struct ev_engine *e, uint64_t to, const struct sp_buf *msg)
{
	held_add(&e->held, to, sp_buf_begin(msg), msg->len);
}

void ev_phys_key(struct sp_buf *out, uint64_t hash, uint8_t rf, const void *key, size_t klen)
{
	sp_buf_clear(out);
	uint8_t h[EV_PHYS_HDR];
	sp_put_be64(h, hash);
	h[8] = rf;
	sp_buf_append(out, h, sizeof(h));
	sp_buf_append(out, key, klen);
}

bool ev_range_has(const struct ev_engine *e, size_t range, uint8_t rf, uint64_t id)
{
	uint64_t walk[EV_MAX_RF];
	size_t n = ring_range_walk(e->ring, range, rf, walk);
	for (size_t i = 0; i < n; i++)
		if (walk[i] == id)
			return true;
	return false;
}

struct merkle_tree *ev_tree(struct ev_engine *e, uint8_t rf, size_t range)
{
	if (!e->trees[rf]) {
		size_t n = ring_nranges(e->ring);
		e->trees[rf] = sp_malloc(n * sizeof(struct merkle_tree));
		for (size_t i = 0; i < n; i++)
			merkle_init(&e->trees[rf][i]);
	}
	return &e->trees[rf][range];
}

/* ---- the local store ---- */

/* local_get reads (key, rf)'s state: 0 with *type and *state borrowed from the
 * store until its next call, or SP_ERR_NOTFOUND (type 0, empty). */
static int local_get(struct ev_engine *e, uint64_t hash, uint8_t rf, const void *key, size_t klen,
		     uint8_t *type, const uint8_t **state, size_t *slen)
{
	ev_phys_key(&e->scratch, hash, rf, key, klen);
	struct store_value v;
	int rc = store_get(e->store, sp_buf_begin(&e->scratch), e->scratch.len, 0, &v);
	*type = 0;
	*state = NULL;
	*slen = 0;
	if (rc)
		return rc;
	*type = v.type;
	*state = v.data;
	*slen = v.len;
	return 0;
}

/* local_put stores the new state of a key and moves its Merkle leaf: the
 * old item (old_type 0: none) out, the new one in. */
static int local_put(struct ev_engine *e, uint64_t hash, uint8_t rf, const void *key, size_t klen,
		     uint8_t old_type, const uint8_t *old, size_t oldlen, uint8_t type,
		     const uint8_t *state, size_t slen)
{
	struct merkle_tree *t = ev_tree(e, rf, ring_range_of(e->ring, hash));
	uint64_t old_hash = old_type ? merkle_item_hash(key, klen, old_type, old, oldlen) : 0;
	uint64_t new_hash = merkle_item_hash(key, klen, type, state, slen);
	struct sp_buf phys;
	sp_buf_init(&phys);
	ev_phys_key(&phys, hash, rf, key, klen);
	struct store_value v = {.type = type, .data = state, .len = slen};
	int rc = store_put(e->store, sp_buf_begin(&phys), phys.len, &v);
	sp_buf_free(&phys);
	if (rc)
		return rc;
	if (old_type)
		merkle_remove(t, hash, old_hash);
	else
		e->st.keys++;
	merkle_add(t, hash, new_hash);
	return 0;
}

static void observe_lww(struct ev_engine *e, const uint8_t *state, size_t slen)
{
	struct crdt_lww w;
	if (crdt_lww_get(state, slen, &w))
		return;
	uint64_t wall = sp_wall_ms(e->cfg.clock);
	if (hlc_observe(&e->hlc, w.ts, wall, e->cfg.max_clock_skew_ms) == SP_ERR_RANGE) {
		if (e->st.clock_skew_flagged++ % 1000 == 0)
			sp_warn("eventual: a write from node %" PRIu64 " is timestamped %" PRIu64
				" ms ahead of this clock (bound %" PRIu64 " ms); flagged",
				w.node, HLC_MS(w.ts) - wall, e->cfg.max_clock_skew_ms);
	}
}

int ev_merge_item(struct ev_engine *e, const struct ev_item *it, uint64_t seen_ts)
{
	if (it->rf < 1 || it->rf > EV_MAX_RF || it->type < 1 || it->type > CRDT_TYPE_MAX ||
	    it->key.len == 0 || it->key.len + EV_PHYS_HDR > store_max_key_len(e->store))
		return SP_ERR_PROTO;
	if (crdt_validate(it->type, it->state.p, it->state.len))
		return SP_ERR_PROTO;
	if (it->type == CRDT_LWW)
		observe_lww(e, it->state.p, it->state.len);
	uint64_t hash = ring_key_hash(it->key.p, it->key.len);
	uint8_t type;
	const uint8_t *cur;
	size_t clen;
	int rc = local_get(e, hash, it->rf, it->key.p, it->key.len, &type, &cur, &clen);
	if (rc && rc != SP_ERR_NOTFOUND)
		return rc;
	if (type && type != it->type) {
		/* Two writers gave the key different types. Every replica
		 * keeps the larger type, so they still converge. */
		e->st.type_conflicts++;
		if (type > it->type)
			return 0;
		rc = local_put(e, hash, it->rf, it->key.p, it->key.len, type, cur, clen, it->type,
			       it->state.p, it->state.len);
		return rc ? rc : 1;
	}
	if (!type) {
		rc = local_put(e, hash, it->rf, it->key.p, it->key.len, 0, NULL, 0, it->type,
			       it->state.p, it->state.len);
		return rc ? rc : 1;
	}
	struct sp_buf merged;
	sp_buf_init(&merged);
	rc = crdt_merge(type, cur, clen, it->state.p, it->state.len, &merged);
	if (rc)
		goto out;
	if (type == CRDT_LWW && seen_ts) {
		/* The writer had seen the value stamped seen_ts - 1; a different
		 * value stamped later was concurrent with its write, and one of
		 * the two is now silently gone. */
		struct crdt_lww a, b;
		if (crdt_lww_get(cur, clen, &a) == 0 &&
		    crdt_lww_get(it->state.p, it->state.len, &b) == 0 &&
		    (a.ts != b.ts || a.node != b.node) && a.ts > seen_ts - 1)
			e->st.lww_concurrent++;
	}
	if (merged.len == clen && memcmp(sp_buf_begin(&merged), cur, clen) == 0) {
		rc = 0;
		goto out;
	}
	/* cur is the store's memory: copy it out before writing. */
	struct sp_buf old;
	sp_buf_init(&old);
	sp_buf_append(&old, cur, clen);
	rc = local_put(e, hash, it->rf, it->key.p, it->key.len, type,
		       (const uint8_t *)sp_buf_begin(&old), old.len, type,
		       (const uint8_t *)sp_buf_begin(&merged), merged.len);
	sp_buf_free(&old);
	if (rc == 0) {
		e->st.merges++;
		rc = 1;
	}
out:
	sp_buf_free(&merged);
	return rc;
}

struct rebuild_ctx {
	struct ev_engine *e;
	struct sp_buf last; /* the last key visited: the next page starts after it */
};

static int rebuild_one(void *ctx, const void *key, size_t klen, const struct store_value *v)
{
	struct rebuild_ctx *rc = ctx;
	struct ev_engine *e = rc->e;
	sp_buf_clear(&rc->last);
	sp_buf_append(&rc->last, key, klen);
	if (klen <= EV_PHYS_HDR)
		return 0;
	const uint8_t *k = key;
	uint64_t hash = sp_get_be64(k);
	uint8_t rf = k[8];
	if (rf < 1 || rf > EV_MAX_RF)
		return 0;
	struct merkle_tree *t = ev_tree(e, rf, ring_range_of(e->ring, hash));
	merkle_add(t, hash,
		   merkle_item_hash(k + EV_PHYS_HDR, klen - EV_PHYS_HDR, v->type, v->data, v->len));
	e->st.keys++;
	return 0;
}

int ev_rebuild_trees(struct ev_engine *e)
{
	for (int rf = 0; rf <= EV_MAX_RF; rf++) {
		free(e->trees[rf]);
		e->trees[rf] = NULL;
	}
	e->st.keys = 0;
	struct rebuild_ctx ctx = {.e = e};
	sp_buf_init(&ctx.last);
	int rc = 0, more = 1;
	while (more) {
		struct sp_buf after;
		sp_buf_init(&after);
		sp_buf_append(&after, sp_buf_begin(&ctx.last), ctx.last.len);
		rc = store_scan(e->store, after.len ? sp_buf_begin(&after) : NULL, after.len, 4096,
				0, rebuild_one, &ctx, &more);
		sp_buf_free(&after);
		if (rc <= 0)
			break;
	}
	sp_buf_free(&ctx.last);
	return rc < 0 ? rc : 0;
}

/* ---- the op table ---- */

static struct ev_pending *op_find(struct ev_engine *e, uint64_t id)
{
	for (struct ev_pending *p = e->buckets[id & (BUCKETS - 1)]; p; p = p->hnext)
		if (p->id == id)
			return p;
	return NULL;
}

static struct ev_pending *op_new(struct ev_engine *e, uint8_t role, const struct ev_op *op,
				 ev_done_fn done, void *arg)
{
	struct ev_pending *p = sp_calloc(1, sizeof(*p));
	p->id = ++e->next_id & ~EV_HINT_ID_BIT;
	p->role = role;
	p->kind = op->kind;
	p->level = op->level;
	p->rf = op->rf;
	p->flags = op->flags;
	p->done = done;
	p->arg = arg;
	p->start_ms = ev_now_ms(e);
	p->deadline_ms = p->start_ms + e->cfg.request_timeout_ms;
	sp_buf_init(&p->key);
	sp_buf_append(&p->key, op->key, op->klen);
	sp_buf_init(&p->state);
	for (int i = 0; i < EV_MAX_RF; i++)
		sp_buf_init(&p->resp[i]);
	struct ev_pending **b = &e->buckets[p->id & (BUCKETS - 1)];
	p->hnext = *b;
	*b = p;
	p->next = e->ops;
	if (e->ops)
		e->ops->prev = p;
	e->ops = p;
	e->nops++;
	return p;
}

static void op_free(struct ev_engine *e, struct ev_pending *p)
{
	struct ev_pending **b = &e->buckets[p->id & (BUCKETS - 1)];
	while (*b != p)
		b = &(*b)->hnext;
	*b = p->hnext;
	if (p->prev)
		p->prev->next = p->next;
	else
		e->ops = p->next;
	if (p->next)
		p->next->prev = p->prev;
	e->nops--;
	sp_buf_free(&p->key);
	sp_buf_free(&p->state);
	for (int i = 0; i < EV_MAX_RF; i++)
		sp_buf_free(&p->resp[i]);
	free(p);
}

static void answer(struct ev_engine *e, struct ev_pending *p, int status, const char *msg)
{
	if (p->answered)
		return;
	p->answered = true;
	struct ev_result r = {
	    .status = status,
	    .msg = msg,
	    .n = p->n,
	    .type = p->type,
	    .state = (const uint8_t *)sp_buf_begin(&p->state),
	    .slen = p->state.len,
	    .acks = (uint8_t)(p->role == P_READ ? popcount8(p->responded) : popcount8(p->acked)),
	    /* A proxy that timed out knows nothing of the replicas. */
	    .replicas = p->role == P_PROXY && status == SP_ERR_UNKNOWN ? 0 : p->ntargets,
	};
	if (status == SP_ERR_AGAIN)
		e->st.timeouts++;
	else if (status == SP_ERR_UNKNOWN)
		e->st.unknown++;
	p->done(p->arg, &r);
}

/* Answer at once without an op record (refusals). */
static void answer_now(ev_done_fn done, void *arg, int status, const char *msg, uint8_t replicas)
{
	struct ev_result r = {.status = status, .msg = msg, .replicas = replicas};
	done(arg, &r);
}

static int target_index(const struct ev_pending *p, uint64_t id)
{
	for (int i = 0; i < p->ntargets; i++)
		if (p->targets[i] == id)
			return i;
	return -1;
}

/* ---- writes ---- */

static void write_item(const struct ev_pending *p, struct ev_item *it)
{
	it->key.p = (const uint8_t *)sp_buf_begin(&p->key);
	it->key.len = p->key.len;
	it->rf = p->rf;
	it->type = p->type;
	it->state.p = (const uint8_t *)sp_buf_begin(&p->state);
	it->state.len = p->state.len;
}

static unsigned write_acks(const struct ev_pending *p)
{
	uint8_t have = p->acked;
	if (p->flags & EV_OP_SLOPPY)
		have |= p->fb_acked;
	return popcount8(have);
}

/* write_progress answers a write once enough replicas hold it and frees
 * it once every target holds it or has a hint. */
static void write_progress(struct ev_engine *e, struct ev_pending *p)
{
	if (!p->answered && write_acks(p) >= p->need)
		answer(e, p, 0, NULL);
	uint8_t all = (uint8_t)((1u << p->ntargets) - 1);
	if (p->answered && ((p->acked | p->hinted) & all) == all)
		op_free(e, p);
}

/* hint_missing keeps a hint for every target that neither acknowledged
 * nor has one. */
static void hint_missing(struct ev_engine *e, struct ev_pending *p)
{
	struct ev_item it;
	write_item(p, &it);
	for (int i = 0; i < p->ntargets; i++) {
		uint8_t bit = (uint8_t)(1u << i);
		if ((p->acked | p->hinted) & bit)
			continue;
		if (ev_hint_store(e, p->targets[i], &it) == 0)
			p->hinted |= bit;
	}
}

/*
 * apply_fvec merges a feature write (EV_OP_FVEC_SET) into cur: a delta of
 * its fields at its event time, stamped with this coordinator's HLC, so
 * the newer event time wins at every replica whatever the arrival order.
 * Sets p->n to how many of its fields hold its value afterwards.
 */
static int apply_fvec(struct ev_engine *e, const struct ev_op *op, struct ev_pending *p,
		      const uint8_t *cur, size_t clen, struct sp_buf *out)
{
	if (op->nargs < 3 || (op->nargs - 1) % 2 || op->n < 1 || op->n > UINT32_MAX ||
	    op->args[0].len == 0 || op->args[0].len > 19)
		return SP_ERR_INVAL;
	uint64_t ms = 0;
	for (size_t i = 0; i < op->args[0].len; i++) {
		char ch = ((const char *)op->args[0].p)[i];
		if (ch < '0' || ch > '9' || ms > (UINT64_MAX - 9) / 10)
			return SP_ERR_INVAL;
		ms = ms * 10 + (uint64_t)(ch - '0');
	}
	size_t np = (op->nargs - 1) / 2;
	struct crdt_fvec_put *puts = sp_calloc(np, sizeof(*puts));
	for (size_t i = 0; i < np; i++)
		puts[i] = (struct crdt_fvec_put){op->args[1 + 2 * i].p, op->args[1 + 2 * i].len,
						 op->args[2 + 2 * i].p, op->args[2 + 2 * i].len};
	uint64_t ts = hlc_now(&e->hlc, sp_wall_ms(e->cfg.clock));
	struct sp_buf delta;
	sp_buf_init(&delta);
	int rc = crdt_fvec_delta((uint32_t)op->n, ms, ts, e->cfg.self_id, puts, np, &e->cfg.limits,
				 &delta);
	size_t mark = out->len;
	if (rc == 0)
		rc = crdt_merge(CRDT_FVEC, cur, clen, (const uint8_t *)sp_buf_begin(&delta),
				delta.len, out);
	p->n = 0;
	for (size_t i = 0; rc == 0 && i < np; i++) {
		struct crdt_fvec_entry got;
		bool again = false; /* a field named twice counts once */
		for (size_t j = 0; j < i && !again; j++)
			again = puts[j].flen == puts[i].flen &&
				memcmp(puts[j].field, puts[i].field, puts[i].flen) == 0;
		if (!again &&
		    crdt_fvec_find((const uint8_t *)sp_buf_begin(out) + mark, out->len - mark,
				   puts[i].field, puts[i].flen, UINT64_MAX, &got) == 0 &&
		    got.event_ms == ms && got.ts == ts && got.node == e->cfg.self_id)
			p->n++;
	}
	sp_buf_free(&delta);
	free(puts);
	return rc;
}

/* apply_op computes the key's new state from cur into out, as this node
 * (the coordinator) is the actor. Sets p->n. */
static int apply_op(struct ev_engine *e, const struct ev_op *op, struct ev_pending *p,
		    const uint8_t *cur, size_t clen, struct sp_buf *out)
{
	const struct crdt_limits *lim = &e->cfg.limits;
	uint64_t self = e->cfg.self_id;
	int rc = 0, changed = 0;
	switch (op->kind) {
	case EV_OP_LWW_SET:
	case EV_OP_LWW_DEL: {
		struct crdt_lww old;
		bool had = crdt_lww_get(cur, clen, &old) == 0;
		p->seen_ts = had ? old.ts + 1 : 1;
		uint64_t ts = hlc_now(&e->hlc, sp_wall_ms(e->cfg.clock));
		bool del = op->kind == EV_OP_LWW_DEL;
		if (!del && lim->max_member_len && op->args[0].len > lim->max_member_len)
			return SP_ERR_TOOBIG;
		int won;
		rc = crdt_lww_set(cur, clen, ts, self, del ? NULL : op->args[0].p,
				  del ? 0 : op->args[0].len, del, out, &won);
		p->n = del ? (had && !old.tombstone) : (int64_t)ts;
		return rc;
	}
	case EV_OP_GCOUNTER_ADD:
		rc = crdt_gcounter_add(cur, clen, self, (uint64_t)op->n, out);
		if (rc == 0)
			rc = crdt_gcounter_value((const uint8_t *)sp_buf_begin(out), out->len,
						 &p->n);
		return rc;
	case EV_OP_PNCOUNTER_ADD:
		rc = crdt_pncounter_add(cur, clen, self, op->n, out);
		if (rc == 0)
			rc = crdt_pncounter_value((const uint8_t *)sp_buf_begin(out), out->len,
						  &p->n);
		return rc;
	case EV_OP_MVREG_SET:
		return crdt_mvreg_set(cur, clen, self, op->args[0].p, op->args[0].len, lim, out);
	case EV_OP_FVEC_SET:
		return apply_fvec(e, op, p, cur, clen, out);
	default:
		break;
	}
	/* Set operations take several members: chain them through two
	 * buffers, starting from cur. */
	struct sp_buf a, b;
	sp_buf_init(&a);
	sp_buf_init(&b);
	sp_buf_append(&a, cur, clen);
	p->n = 0;
	for (uint32_t i = 0; i < op->nargs && rc == 0; i++) {
		const uint8_t *s = (const uint8_t *)sp_buf_begin(&a);
		const void *m = op->args[i].p;
		size_t ml = op->args[i].len;
		sp_buf_clear(&b);
		switch (op->kind) {
		case EV_OP_GSET_ADD:
			rc = crdt_gset_add(s, a.len, m, ml, lim, &b, &changed);
			break;
		case EV_OP_TPSET_ADD:
			rc = crdt_tpset_add(s, a.len, m, ml, lim, &b, &changed);
			break;
		case EV_OP_TPSET_REM:
			rc = crdt_tpset_remove(s, a.len, m, ml, lim, &b, &changed);
			break;
		case EV_OP_ORSET_ADD:
			rc = crdt_orset_add(s, a.len, self, m, ml, lim, &b, &changed);
			break;
		case EV_OP_ORSET_REM:
			rc = crdt_orset_remove(s, a.len, m, ml, &b, &changed);
			break;
		default:
			rc = SP_ERR_INVAL;
		}
		if (rc == 0) {
			p->n += changed;
			struct sp_buf t = a;
			a = b;
			b = t;
		}
	}
	if (rc == 0)
		sp_buf_append(out, sp_buf_begin(&a), a.len);
	sp_buf_free(&a);
	sp_buf_free(&b);
	return rc;
}

static size_t targets_of(struct ev_engine *e, uint64_t hash, uint8_t rf, uint64_t *out)
{
	return ring_walk(e->ring, hash, rf, out);
}

/* sloppy_fallback: the first live node past the preference list not yet
 * holding a hint for this write. */
static uint64_t sloppy_fallback(struct ev_engine *e, struct ev_pending *p)
{
	uint64_t walk[EV_MAX_PEERS + 1];
	size_t n = ring_walk(e->ring, p->hash, (unsigned)e->nnodes, walk);
	for (size_t i = p->ntargets; i < n; i++) {
		if (!ev_peer_alive(e, walk[i]))
			continue;
		bool used = false;
		for (int j = 0; j < p->ntargets; j++)
			used |= p->fallback[j] == walk[i];
		if (!used)
			return walk[i];
	}
	return 0;
}

static void proxy_write(struct ev_engine *e, const struct ev_op *op, uint64_t hash,
			const uint64_t *targets, size_t nt, ev_done_fn done, void *arg)
{
	uint64_t to = 0;
	for (size_t i = 0; i < nt && !to; i++)
		if (ev_peer_alive(e, targets[i]))
			to = targets[i];
	if (!to || (op->flags & EV_OP_PROXIED)) {
		e->st.unavailable++;
		answer_now(done, arg, SP_ERR_AGAIN, "no replica of the key is reachable",
			   (uint8_t)nt);
		return;
	}
	struct ev_pending *p = op_new(e, P_PROXY, op, done, arg);
	p->hash = hash;
	p->ntargets = (uint8_t)nt;
	memcpy(p->targets, targets, nt * sizeof(*targets));
	p->proxy_to = to;
	struct sp_buf args, *m = &e->scratch2;
	sp_buf_init(&args);
	for (uint32_t i = 0; i < op->nargs; i++)
		ev_op_put_arg(&args, op->args[i].p, op->args[i].len);
	struct ev_wire_op w = {
	    .kind = op->kind,
	    .level = op->level,
	    .rf = op->rf,
	    .flags = (uint8_t)(op->flags | EV_OP_PROXIED),
	    .n = op->n,
	    /* The origin answers UNKNOWN at its deadline; a write held up in
	     * the transport (its target down, the frame queued) must not run
	     * after that with a fresh timestamp. */
	    .expires_ms = sp_wall_ms(e->cfg.clock) + e->cfg.request_timeout_ms,
	    .key = {op->key, op->klen},
	    .nargs = op->nargs,
	    .args = {(const uint8_t *)sp_buf_begin(&args), args.len},
	};
	sp_buf_clear(m);
	ev_msg_proxy(m, p->id, &w);
	ev_send(e, to, m);
	sp_buf_free(&args);
	e->st.proxied++;
}

static void coord_write(struct ev_engine *e, const struct ev_op *op, ev_done_fn done, void *arg)
{
	uint64_t hash = ring_key_hash(op->key, op->klen);
	uint64_t targets[EV_MAX_RF];
	size_t nt = targets_of(e, hash, op->rf, targets);
	int self = -1, alive = 0;
	for (size_t i = 0; i < nt; i++) {
		if (targets[i] == e->cfg.self_id)
			self = (int)i;
		alive += ev_peer_alive(e, targets[i]);
	}
	if (self < 0) {
		proxy_write(e, op, hash, targets, nt, done, arg);
		return;
	}
	uint8_t need = level_need(op->level, (uint8_t)nt);
	bool sloppy = op->flags & EV_OP_SLOPPY;
	if (!sloppy && alive < need) {
		e->st.unavailable++;
		char msg[128];
		snprintf(msg, sizeof(msg), "%d of %zu replicas reachable, level %s needs %u", alive,
			 nt, ev_level_name(op->level), need);
		answer_now(done, arg, SP_ERR_AGAIN, msg, (uint8_t)nt);
		return;
	}
	uint8_t type;
	const uint8_t *cur;
	size_t clen;
	int rc = local_get(e, hash, op->rf, op->key, op->klen, &type, &cur, &clen);
	if (rc && rc != SP_ERR_NOTFOUND) {
		answer_now(done, arg, rc, NULL, (uint8_t)nt);
		return;
	}
	uint8_t want = op_type(op->kind);
	if (type && type != want) {
		char msg[160];
		snprintf(msg, sizeof(msg),
			 "WRONGTYPE the key holds a %s, not a %s (a key keeps its first type)",
			 crdt_type_name(type), crdt_type_name(want));
		answer_now(done, arg, SP_ERR_INVAL, msg, (uint8_t)nt);
		return;
	}
	struct ev_pending *p = op_new(e, P_WRITE, op, done, arg);
	e->st.writes++;
	p->hash = hash;
	p->ntargets = (uint8_t)nt;
	p->need = need;
	memcpy(p->targets, targets, nt * sizeof(*targets));
	p->type = want;
	rc = apply_op(e, op, p, cur, clen, &p->state);
	if (rc == 0) {
		/* cur may be stale after apply_op (no store call was made, but
		 * local_put needs the old bytes after its own store calls). */
		struct sp_buf old;
		sp_buf_init(&old);
		sp_buf_append(&old, cur, clen);
		rc = local_put(e, hash, op->rf, op->key, op->klen, type,
			       (const uint8_t *)sp_buf_begin(&old), old.len, want,
			       (const uint8_t *)sp_buf_begin(&p->state), p->state.len);
		sp_buf_free(&old);
	}
	if (rc) {
		const char *msg = rc == SP_ERR_TOOBIG  ? "a size limit of the value was reached"
				  : rc == SP_ERR_RANGE ? "increment or decrement would overflow"
						       : NULL;
		p->answered = true;
		answer_now(done, arg, rc, msg, (uint8_t)nt);
		op_free(e, p);
		return;
	}
	p->acked = (uint8_t)(1u << self);
	p->sent = p->acked;
	struct ev_item it;
	write_item(p, &it);
	struct sp_buf *m = &e->scratch2;
	for (size_t i = 0; i < nt; i++) {
		uint8_t bit = (uint8_t)(1u << i);
		if ((int)i == self)
			continue;
		if (ev_peer_alive(e, targets[i])) {
			sp_buf_clear(m);
			ev_msg_write(m, p->id, 0, p->seen_ts, &it);
			ev_send(e, targets[i], m);
			p->sent |= bit;
			continue;
		}
		/* A replica known down: hand its copy to a fallback node
		 * (sloppy) or keep the hint here. */
		uint64_t fb = sloppy ? sloppy_fallback(e, p) : 0;
		if (fb) {
			p->fallback[i] = fb;
			sp_buf_clear(m);
			ev_msg_write(m, p->id, targets[i], p->seen_ts, &it);
			ev_send(e, fb, m);
		} else if (ev_hint_store(e, targets[i], &it) == 0) {
			p->hinted |= bit;
		}
	}
	write_progress(e, p);
}

static void recv_write_ack(struct ev_engine *e, uint64_t from, const struct ev_msg *m)
{
	if (m->id & EV_HINT_ID_BIT) {
		if (m->status == 0)
			ev_hint_acked(e, from, m->id);
		return;
	}
	struct ev_pending *p = op_find(e, m->id);
	if (!p || m->status != 0)
		return;
	int i = target_index(p, from);
	if (p->role == P_READ) {
		if (i >= 0 && (p->repair_wait & (1u << i))) {
			p->repair_wait &= (uint8_t) ~(1u << i);
			if (!p->repair_wait && !p->answered)
				answer(e, p, 0, NULL);
		}
		return;
	}
	if (p->role != P_WRITE)
		return;
	if (i >= 0) {
		p->acked |= (uint8_t)(1u << i);
	} else {
		for (int j = 0; j < p->ntargets; j++)
			if (p->fallback[j] == from) {
				p->fb_acked |= (uint8_t)(1u << j);
				p->hinted |= (uint8_t)(1u << j);
			}
	}
	write_progress(e, p);
}

/* ---- reads ---- */

/* read_merge folds every answer received into p->type / p->state. */
static void read_merge(struct ev_pending *p)
{
	sp_buf_clear(&p->state);
	p->type = 0;
	struct sp_buf tmp;
	sp_buf_init(&tmp);
	for (int i = 0; i < p->ntargets; i++) {
		if (!(p->responded & (1u << i)) || !p->rtype[i])
			continue;
		if (p->type && p->rtype[i] != p->type) {
			/* As ev_merge_item: the larger type wins everywhere. */
			if (p->rtype[i] < p->type)
				continue;
			sp_buf_clear(&p->state);
			p->type = 0;
		}
		if (!p->type) {
			p->type = p->rtype[i];
			sp_buf_append(&p->state, sp_buf_begin(&p->resp[i]), p->resp[i].len);
			continue;
		}
		sp_buf_clear(&tmp);
		if (crdt_merge(p->type, (const uint8_t *)sp_buf_begin(&p->state), p->state.len,
			       (const uint8_t *)sp_buf_begin(&p->resp[i]), p->resp[i].len,
			       &tmp) == 0) {
			sp_buf_clear(&p->state);
			sp_buf_append(&p->state, sp_buf_begin(&tmp), tmp.len);
		}
	}
	sp_buf_free(&tmp);
}

static bool same_as_merge(const struct ev_pending *p, int i)
{
	return p->rtype[i] == p->type && p->resp[i].len == p->state.len &&
	       memcmp(sp_buf_begin(&p->resp[i]), sp_buf_begin(&p->state), p->state.len) == 0;
}

/* repair sends the merge to every answer that differs from it (or merges
 * it here, for this node's own answer). With `block`, the read waits for
 * those acknowledgements before answering. */
static void repair(struct ev_engine *e, struct ev_pending *p, bool block)
{
	if (!p->type)
		return;
	struct ev_item it;
	write_item(p, &it);
	struct sp_buf *m = &e->scratch2;
	for (int i = 0; i < p->ntargets; i++) {
		if (!(p->responded & (1u << i)) || same_as_merge(p, i))
			continue;
		if (p->targets[i] == e->cfg.self_id) {
			(void)ev_merge_item(e, &it, 0);
		} else {
			sp_buf_clear(m);
			ev_msg_write(m, p->id, 0, 0, &it);
			ev_send(e, p->targets[i], m);
			if (block)
				p->repair_wait |= (uint8_t)(1u << i);
		}
		if (block)
			e->st.read_repairs_blocking++;
		else
			e->st.read_repairs++;
		/* It holds the merge now (or will): no second repair. */
		p->rtype[i] = p->type;
		sp_buf_clear(&p->resp[i]);
		sp_buf_append(&p->resp[i], sp_buf_begin(&p->state), p->state.len);
	}
}

static void read_progress(struct ev_engine *e, struct ev_pending *p)
{
	if (!p->answered && popcount8(p->responded) >= p->need && !p->repair_wait) {
		read_merge(p);
		if (p->level == EV_LEVEL_ONE) {
			answer(e, p, 0, NULL);
		} else {
			repair(e, p, true);
			if (!p->repair_wait)
				answer(e, p, 0, NULL);
		}
	}
	/* Everyone asked has answered: repair the rest in the background. */
	if (p->answered && (p->responded & p->sent) == p->sent) {
		read_merge(p);
		repair(e, p, false);
		if (!p->repair_wait)
			op_free(e, p);
	}
}

/* read_ask sends the read to target i. */
static void read_ask(struct ev_engine *e, struct ev_pending *p, int i)
{
	struct sp_buf *m = &e->scratch2;
	sp_buf_clear(m);
	ev_msg_read(m, p->id, p->rf, sp_buf_begin(&p->key), p->key.len);
	ev_send(e, p->targets[i], m);
	p->sent |= (uint8_t)(1u << i);
}

/* read_ask_more asks live targets not asked yet, starting at a random one,
 * until `want` have been asked (all of them for want >= ntargets). */
static void read_ask_more(struct ev_engine *e, struct ev_pending *p, unsigned want)
{
	unsigned start = (unsigned)(rnd(e) % p->ntargets);
	for (unsigned k = 0; k < p->ntargets && popcount8(p->sent) < want; k++) {
		int i = (int)((start + k) % p->ntargets);
		if (!(p->sent & (1u << i)) && ev_peer_alive(e, p->targets[i]))
			read_ask(e, p, i);
	}
}

static void coord_read(struct ev_engine *e, const struct ev_op *op, ev_done_fn done, void *arg)
{
	uint64_t hash = ring_key_hash(op->key, op->klen);
	uint64_t targets[EV_MAX_RF];
	size_t nt = targets_of(e, hash, op->rf, targets);
	uint8_t need = level_need(op->level, (uint8_t)nt);
	int alive = 0;
	for (size_t i = 0; i < nt; i++)
		alive += ev_peer_alive(e, targets[i]);
	if (alive < need) {
		e->st.unavailable++;
		char msg[128];
		snprintf(msg, sizeof(msg), "%d of %zu replicas reachable, level %s needs %u", alive,
			 nt, ev_level_name(op->level), need);
		answer_now(done, arg, SP_ERR_AGAIN, msg, (uint8_t)nt);
		return;
	}
	struct ev_pending *p = op_new(e, P_READ, op, done, arg);
	e->st.reads++;
	p->hash = hash;
	p->ntargets = (uint8_t)nt;
	p->need = need;
	memcpy(p->targets, targets, nt * sizeof(*targets));
	for (size_t i = 0; i < nt; i++) {
		if (targets[i] != e->cfg.self_id)
			continue;
		/* This node's own copy answers first, at once. */
		uint8_t type;
		const uint8_t *cur;
		size_t clen;
		int rc = local_get(e, hash, op->rf, op->key, op->klen, &type, &cur, &clen);
		if (rc && rc != SP_ERR_NOTFOUND)
			break;
		p->rtype[i] = type;
		sp_buf_append(&p->resp[i], cur, clen);
		p->responded |= (uint8_t)(1u << i);
		p->sent |= (uint8_t)(1u << i);
	}
	bool everyone = rnd(e) % 100 < e->cfg.read_repair_percent;
	read_ask_more(e, p, everyone ? (unsigned)nt : need);
	read_progress(e, p);
}

static void recv_read_reply(struct ev_engine *e, uint64_t from, const struct ev_msg *m)
{
	struct ev_pending *p = op_find(e, m->id);
	if (!p || p->role != P_READ)
		return;
	int i = target_index(p, from);
	if (i < 0 || (p->responded & (1u << i)) || m->status > 1)
		return;
	if (m->status == 0 && (m->item.type < 1 || m->item.type > CRDT_TYPE_MAX ||
			       crdt_validate(m->item.type, m->item.state.p, m->item.state.len)))
		return;
	p->rtype[i] = m->status == 0 ? m->item.type : 0;
	sp_buf_clear(&p->resp[i]);
	if (m->status == 0)
		sp_buf_append(&p->resp[i], m->item.state.p, m->item.state.len);
	p->responded |= (uint8_t)(1u << i);
	read_progress(e, p);
}

/* ---- proxies ---- */

struct proxy_origin {
	struct ev_engine *e;
	uint64_t from, id;
};

static void proxy_done(void *arg, const struct ev_result *r)
{
	struct proxy_origin *o = arg;
	struct sp_buf *m = &o->e->scratch2;
	sp_buf_clear(m);
	ev_msg_proxy_reply(m, o->id, r->status, r->n, r->acks, r->replicas, r->type, r->state,
			   r->slen, r->msg);
	ev_send(o->e, o->from, m);
	free(o);
}

static void recv_proxy(struct ev_engine *e, uint64_t from, const struct ev_msg *m)
{
	const struct ev_wire_op *w = &m->op;
	struct proxy_origin *o = sp_malloc(sizeof(*o));
	o->e = e;
	o->from = from;
	o->id = m->id;
	if (w->kind <= EV_OP_READ || w->kind >= EV_OP__MAX || w->rf < 1 || w->rf > EV_MAX_RF ||
	    w->level < EV_LEVEL_ONE || w->level > EV_LEVEL_ALL || w->key.len == 0) {
		answer_now(proxy_done, o, SP_ERR_PROTO, "malformed proxied write", 0);
		return;
	}
	if (sp_wall_ms(e->cfg.clock) > w->expires_ms) {
		/* Its origin has given up on it (and said UNKNOWN): running it
		 * now would land a write nobody waits for, stamped later than
		 * writes acknowledged since. Clocks apart by s ms shift this
		 * cut-off by s. */
		e->st.proxies_expired++;
		answer_now(proxy_done, o, SP_ERR_AGAIN, "the proxied write expired in transit", 0);
		return;
	}
	struct ev_bytes *args = sp_calloc(w->nargs ? w->nargs : 1, sizeof(*args));
	size_t pos = 0;
	for (uint32_t i = 0; i < w->nargs; i++)
		(void)ev_op_arg(&w->args, &pos, &args[i]); /* checked by decode */
	struct ev_op op = {
	    .kind = w->kind,
	    .level = w->level,
	    .rf = w->rf,
	    .flags = w->flags,
	    .n = w->n,
	    .key = w->key.p,
	    .klen = w->key.len,
	    .nargs = w->nargs,
	    .args = args,
	};
	eventual_submit(e, &op, proxy_done, o);
	free(args);
}

static void recv_proxy_reply(struct ev_engine *e, uint64_t from, const struct ev_msg *m)
{
	struct ev_pending *p = op_find(e, m->id);
	if (!p || p->role != P_PROXY || p->proxy_to != from)
		return;
	p->n = m->n;
	p->type = m->item.type;
	sp_buf_clear(&p->state);
	sp_buf_append(&p->state, m->item.state.p, m->item.state.len);
	char text[256];
	size_t tl = m->text.len < sizeof(text) - 1 ? m->text.len : sizeof(text) - 1;
	memcpy(text, m->text.p, tl);
	text[tl] = '\0';
	int status = m->rstatus;
	if (status > 0 || status < SP_ERR__LAST)
		status = SP_ERR_PROTO;
	p->acked = (uint8_t)((1u << (m->acks < 8 ? m->acks : 7)) - 1);
	answer(e, p, status, tl ? text : NULL);
	op_free(e, p);
}

/* ---- replica side ---- */

static void recv_write(struct ev_engine *e, uint64_t from, const struct ev_msg *m)
{
	int rc;
	if (m->hint_for && m->hint_for != e->cfg.self_id)
		rc = ev_hint_store(e, m->hint_for, &m->item);
	else
		rc = ev_merge_item(e, &m->item, m->seen_ts) < 0 ? -1 : 0;
	e->st.replica_writes++;
	struct sp_buf *b = &e->scratch2;
	sp_buf_clear(b);
	ev_msg_write_ack(b, m->id, rc == 0 ? 0 : 1);
	ev_send(e, from, b);
}

static void recv_read(struct ev_engine *e, uint64_t from, const struct ev_msg *m)
{
	e->st.replica_reads++;
	uint8_t type = 0;
	const uint8_t *cur = NULL;
	size_t clen = 0;
	int rc = SP_ERR_PROTO;
	if (m->item.rf >= 1 && m->item.rf <= EV_MAX_RF && m->item.key.len)
		rc = local_get(e, ring_key_hash(m->item.key.p, m->item.key.len), m->item.rf,
			       m->item.key.p, m->item.key.len, &type, &cur, &clen);
	struct sp_buf *b = &e->scratch2;
	sp_buf_clear(b);
	ev_msg_read_reply(b, m->id, rc == 0 ? 0 : rc == SP_ERR_NOTFOUND ? 1 : 2, type, cur, clen);
	ev_send(e, from, b);
}

void eventual_recv(struct ev_engine *e, uint64_t from, const uint8_t *p, size_t len)
{
	struct ev_msg m;
	struct ev_peer *peer = ev_peer_find(e, from);
	if (!peer)
		return;
	peer->last_heard_ms = ev_now_ms(e);
	if (ev_msg_decode(p, len, &m)) {
		sp_debug("eventual: malformed message from node %" PRIu64, from);
		return;
	}
	switch (m.type) {
	case EVM_PING: {
		struct sp_buf *b = &e->scratch2;
		sp_buf_clear(b);
		ev_msg_ping(b, true);
		ev_send(e, from, b);
		break;
	}
	case EVM_PONG:
		break;
	case EVM_WRITE:
		recv_write(e, from, &m);
		break;
	case EVM_WRITE_ACK:
		recv_write_ack(e, from, &m);
		break;
	case EVM_READ:
		recv_read(e, from, &m);
		break;
	case EVM_READ_REPLY:
		recv_read_reply(e, from, &m);
		break;
	case EVM_PROXY:
		recv_proxy(e, from, &m);
		break;
	case EVM_PROXY_REPLY:
		recv_proxy_reply(e, from, &m);
		break;
	default:
		ev_ae_recv(e, from, &m);
		break;
	}
}

/* ---- submit, tick, commit ---- */

void eventual_submit(struct ev_engine *e, const struct ev_op *op, ev_done_fn done, void *arg)
{
	if (op->rf < 1 || op->rf > EV_MAX_RF || op->klen == 0 ||
	    op->klen + EV_PHYS_HDR > store_max_key_len(e->store)) {
		answer_now(done, arg, SP_ERR_INVAL, "bad key or replication factor", 0);
		return;
	}
	if (op->kind == EV_OP_READ)
		coord_read(e, op, done, arg);
	else
		coord_write(e, op, done, arg);
}

static void expire_ops(struct ev_engine *e, uint64_t now)
{
	struct ev_pending *p = e->ops;
	while (p) {
		struct ev_pending *next = p->next;
		if (p->role == P_READ && !p->answered &&
		    now - p->start_ms >= EV_READ_SPECULATE_MS && popcount8(p->sent) < p->ntargets) {
			/* A replica asked is slow or gone: ask the others. */
			read_ask_more(e, p, p->ntargets);
		}
		if (p->role == P_PROXY && !ev_peer_alive(e, p->proxy_to)) {
			/* Its coordinator went down: waiting for the deadline
			 * would only hold the client longer. */
			answer(e, p, SP_ERR_UNKNOWN,
			       "the replica coordinating the write went down before it answered");
			op_free(e, p);
			p = next;
			continue;
		}
		if (now < p->deadline_ms) {
			p = next;
			continue;
		}
		switch (p->role) {
		case P_WRITE:
			/* Applied here but short of its level: the outcome is
			 * unknown to the client, and the missing replicas get
			 * hints. */
			answer(e, p, SP_ERR_UNKNOWN,
			       "the write reached fewer replicas than its level in time");
			hint_missing(e, p);
			op_free(e, p);
			break;
		case P_READ:
			answer(e, p, SP_ERR_AGAIN, "too few replicas answered in time");
			op_free(e, p);
			break;
		case P_PROXY:
			answer(e, p, SP_ERR_UNKNOWN,
			       "the replica coordinating the write did not answer in time");
			op_free(e, p);
			break;
		}
		p = next;
	}
}

static void ping_peers(struct ev_engine *e, uint64_t now)
{
	if (now - e->last_ping_ms < e->cfg.ping_ms)
		return;
	e->last_ping_ms = now;
	struct sp_buf *b = &e->scratch2;
	sp_buf_clear(b);
	ev_msg_ping(b, false);
	for (size_t i = 0; i < e->npeers; i++)
		ev_send(e, e->peers[i].id, b);
}

void eventual_tick(struct ev_engine *e)
{
	uint64_t now = ev_now_ms(e);
	ping_peers(e, now);
	expire_ops(e, now);
	ev_hints_tick(e);
	ev_ae_tick(e);
}

int eventual_commit(struct ev_engine *e)
{
	/* A batch the store dropped (a write in it failed: map full, I/O)
	 * took writes already answered or acknowledged: nothing held may
	 * leave. */
	int rc = store_commit_checked(e->store, &e->batches_lost);
	if (rc) {
		held_drop(&e->held);
		return rc;
	}
	held_flush(&e->held, e->cfg.send, e->cfg.ctx);
	return 0;
}

int eventual_sync(struct ev_engine *e)
{
	return store_sync(e->store);
}

/* ---- lifetime ---- */

static int set_nodes(struct ev_engine *e, const uint64_t *nodes, size_t n)
{
	if (n == 0 || n > EV_MAX_PEERS)
		return SP_ERR_INVAL;
	struct ring *r;
	int rc = ring_build(&r, nodes, n, RING_VNODES_DEFAULT);
	if (rc)
		return rc;
	ring_free(e->ring);
	e->ring = r;
	free(e->nodes);
	e->nodes = sp_malloc(n * sizeof(*nodes));
	memcpy(e->nodes, nodes, n * sizeof(*nodes));
	e->nnodes = n;
	/* Keep what is known of peers that stay. */
	struct ev_peer old[EV_MAX_PEERS];
	size_t nold = e->npeers;
	memcpy(old, e->peers, nold * sizeof(*old));
	e->npeers = 0;
	for (size_t i = 0; i < n; i++) {
		if (nodes[i] == e->cfg.self_id)
			continue;
		struct ev_peer *p = &e->peers[e->npeers++];
		memset(p, 0, sizeof(*p));
		p->id = nodes[i];
		for (size_t j = 0; j < nold; j++)
			if (old[j].id == nodes[i])
				*p = old[j];
	}
	return ev_rebuild_trees(e);
}

bool eventual_has_node(const struct ev_engine *e, uint64_t id)
{
	for (size_t i = 0; i < e->nnodes; i++)
		if (e->nodes[i] == id)
			return true;
	return false;
}

int eventual_set_nodes(struct ev_engine *e, const uint64_t *nodes, size_t n)
{
	return set_nodes(e, nodes, n);
}

int eventual_open(struct ev_engine **out, const struct eventual_config *cfg, const uint64_t *nodes,
		  size_t nnodes)
{
	*out = NULL;
	if (!cfg->self_id || !cfg->dir || !cfg->send || !cfg->clock)
		return SP_ERR_INVAL;
	struct ev_engine *e = sp_calloc(1, sizeof(*e));
	e->cfg = *cfg;
	e->dir = strdup(cfg->dir);
	e->cfg.dir = e->dir;
	if (!e->cfg.request_timeout_ms)
		e->cfg.request_timeout_ms = 2000;
	if (!e->cfg.ping_ms)
		e->cfg.ping_ms = 200;
	if (!e->cfg.suspect_ms)
		e->cfg.suspect_ms = 1000;
	if (!e->cfg.ae_max_keys)
		e->cfg.ae_max_keys = 1000;
	e->buckets = sp_calloc(BUCKETS, sizeof(*e->buckets));
	held_init(&e->held);
	sp_buf_init(&e->scratch);
	sp_buf_init(&e->scratch2);
	hlc_init(&e->hlc);
	e->rng = cfg->seed ^ (cfg->self_id * 0x9E3779B97F4A7C15ull);
	e->start_ms = ev_now_ms(e);
	struct store_options so = {.dir = e->dir, .map_size = cfg->map_size, .wal = 0};
	int rc = store_open(&e->store, &so);
	if (rc)
		goto fail;
	rc = set_nodes(e, nodes, nnodes);
	if (rc)
		goto fail;
	rc = ev_hints_load(e);
	if (rc)
		goto fail;
	*out = e;
	return 0;
fail:
	eventual_close(e);
	return rc;
}

void eventual_close(struct ev_engine *e)
{
	if (!e)
		return;
	while (e->ops) {
		struct ev_pending *p = e->ops;
		answer(e, p, p->role == P_READ ? SP_ERR_AGAIN : SP_ERR_UNKNOWN,
		       "the node is stopping");
		if (p->role == P_WRITE)
			hint_missing(e, p);
		op_free(e, p);
	}
	if (e->store) {
		(void)store_commit(e->store);
		store_close(e->store);
	}
	ring_free(e->ring);
	for (int rf = 0; rf <= EV_MAX_RF; rf++)
		free(e->trees[rf]);
	free(e->nodes);
	free(e->buckets);
	held_free(&e->held);
	sp_buf_free(&e->scratch);
	sp_buf_free(&e->scratch2);
	free(e->dir);
	free(e);
}

void eventual_get_stats(struct ev_engine *e, struct ev_stats *out)
{
	*out = e->st;
	out->peers = e->npeers;
	out->peers_alive = 0;
	for (size_t i = 0; i < e->npeers; i++)
		out->peers_alive += ev_peer_alive(e, e->peers[i].id);
}

size_t eventual_digest(struct ev_engine *e, uint32_t rf_mask, ev_digest_fn fn, void *ctx)
{
	size_t calls = 0, nr = ring_nranges(e->ring);
	for (uint8_t rf = 1; rf <= EV_MAX_RF; rf++) {
		if (!e->trees[rf] && !(rf_mask & (1u << rf)))
			continue;
		(void)ev_tree(e, rf, 0);
		for (size_t i = 0; i < nr; i++) {
			if (!ev_range_has(e, i, rf, e->cfg.self_id))
				continue;
			const struct merkle_tree *t = &e->trees[rf][i];
			fn(ctx, rf, ring_range_token(e->ring, i), merkle_root(t), t->count);
			calls++;
		}
	}
	return calls;
}

size_t eventual_replicas(struct ev_engine *e, const void *key, size_t klen, uint8_t rf,
			 uint64_t *out)
{
	if (rf < 1 || rf > EV_MAX_RF)
		return 0;
	return ring_walk(e->ring, ring_key_hash(key, klen), rf, out);
}

int eventual_peer_info(const struct ev_engine *e, uint64_t id, struct ev_peer_info *out)
{
	for (size_t i = 0; i < e->npeers; i++) {
		if (e->peers[i].id != id)
			continue;
		out->alive = ev_peer_alive(e, id);
		out->hints = e->peers[i].hints;
		return 0;
	}
	return SP_ERR_NOTFOUND;
}
