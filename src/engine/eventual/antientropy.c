/*
 * antientropy: replicas compare Merkle trees and merge what differs.
 *
 * Every ae_interval_ms this node picks the next live peer (round robin)
 * and, for each replication-factor class it holds keys of, sends the
 * roots of every ring range the two of them replicate (AE_ROOTS). The
 * peer answers with the 64 leaves of each range whose root differs
 * (AE_LEAVES); this node sends its keys in the differing leaves
 * (AE_ITEMS, want_reply) and the peer merges them and sends its own keys
 * of those leaves back, which this node merges. So one round repairs both
 * directions, at most ae_max_keys keys each way; what is left differs
 * next round. Trees are kept up to date on every write (merkle.h), so a
 * round costs a scan of the differing ranges only.
 */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/endian.h"
#include "common/err.h"
#include "engine/eventual/internal.h"

#define AE_MAX_LEAF_RANGES 64 /* ranges answered with leaves per message */

static bool shares(const struct ev_engine *e, size_t range, uint8_t rf, uint64_t peer)
{
	return ev_range_has(e, range, rf, e->cfg.self_id) && ev_range_has(e, range, rf, peer);
}

static void send_roots(struct ev_engine *e, uint64_t peer)
{
	size_t nr = ring_nranges(e->ring);
	struct sp_buf *m = &e->scratch2;
	for (uint8_t rf = 1; rf <= EV_MAX_RF; rf++) {
		if (!e->trees[rf])
			continue;
		sp_buf_clear(m);
		size_t at = ev_msg_ae_begin(m, EVM_AE_ROOTS, rf);
		uint32_t count = 0;
		for (size_t i = 0; i < nr && count < EV_MSG_MAX_RANGES; i++) {
			if (!shares(e, i, rf, peer))
				continue;
			uint8_t x[16];
			sp_put_le64(x, ring_range_token(e->ring, i));
			sp_put_le64(x + 8, merkle_root(&e->trees[rf][i]));
			sp_buf_append(m, x, sizeof(x));
			count++;
		}
		if (!count)
			continue;
		ev_msg_set_count(m, at, count);
		ev_send(e, peer, m);
	}
}

void ev_ae_tick(struct ev_engine *e)
{
	uint64_t now = ev_now_ms(e);
	if (!e->cfg.ae_interval_ms || !e->npeers || now - e->last_ae_ms < e->cfg.ae_interval_ms)
		return;
	e->last_ae_ms = now;
	for (size_t tries = 0; tries < e->npeers; tries++) {
		struct ev_peer *p = &e->peers[e->ae_next_peer++ % e->npeers];
		if (!p->last_heard_ms || now - p->last_heard_ms >= e->cfg.suspect_ms)
			continue;
		e->st.ae_rounds++;
		send_roots(e, p->id);
		return;
	}
}

static void recv_roots(struct ev_engine *e, uint64_t from, const struct ev_msg *m)
{
	if (m->rf < 1 || m->rf > EV_MAX_RF)
		return;
	struct sp_buf out;
	sp_buf_init(&out);
	size_t at = ev_msg_ae_begin(&out, EVM_AE_LEAVES, m->rf);
	uint32_t count = 0;
	for (uint32_t k = 0; k < m->count && count < AE_MAX_LEAF_RANGES; k++) {
		uint64_t token = sp_get_le64(m->body + 16 * k);
		uint64_t root = sp_get_le64(m->body + 16 * k + 8);
		size_t i;
		if (ring_range_find(e->ring, token, &i) || !shares(e, i, m->rf, from))
			continue;
		const struct merkle_tree *t = ev_tree(e, m->rf, i);
		if (merkle_root(t) == root)
			continue;
		uint8_t x[8];
		sp_put_le64(x, token);
		sp_buf_append(&out, x, 8);
		for (int l = 0; l < MERKLE_LEAVES; l++) {
			sp_put_le64(x, t->leaf[l]);
			sp_buf_append(&out, x, 8);
		}
		count++;
	}
	if (count) {
		ev_msg_set_count(&out, at, count);
		ev_send(e, from, &out);
	}
	sp_buf_free(&out);
}

/* ---- collecting a range's keys in some leaves ---- */

struct gather {
	struct ev_engine *e;
	uint8_t rf;
	uint64_t hi;	   /* last hash of the segment scanned */
	uint64_t leafmask; /* leaves wanted */
	uint32_t budget;   /* items still allowed */
	uint32_t count;
	struct sp_buf *out;
	struct sp_buf last;
	bool past; /* reached a hash beyond hi */
};

static int gather_one(void *ctx, const void *key, size_t klen, const struct store_value *v)
{
	struct gather *g = ctx;
	sp_buf_clear(&g->last);
	sp_buf_append(&g->last, key, klen);
	if (klen <= EV_PHYS_HDR)
		return 0;
	const uint8_t *k = key;
	uint64_t hash = sp_get_be64(k);
	if (hash > g->hi) {
		g->past = true;
		return 1;
	}
	if (k[8] != g->rf || !(g->leafmask & (1ull << merkle_leaf_of(hash))))
		return 0;
	struct ev_item it = {
	    .key = {k + EV_PHYS_HDR, klen - EV_PHYS_HDR},
	    .rf = g->rf,
	    .type = v->type,
	    .state = {v->data, v->len},
	};
	ev_msg_put_item(g->out, &it);
	g->count++;
	return --g->budget == 0;
}

/* gather_segment appends the items with hashes in [lo, hi]. */
static void gather_segment(struct gather *g, uint64_t lo, uint64_t hi)
{
	g->hi = hi;
	g->past = false;
	sp_buf_clear(&g->last);
	if (lo > 0) {
		uint8_t start[8];
		sp_put_be64(start, lo);
		/* Keys are be64(hash) | rf | key: every key with hash >= lo
		 * sorts strictly after the bare 8 bytes be64(lo) (no key is
		 * that short), and every key with a smaller hash before. */
		sp_buf_append(&g->last, start, sizeof(start));
	}
	int more = 1;
	while (more && g->budget && !g->past) {
		struct sp_buf after;
		sp_buf_init(&after);
		sp_buf_append(&after, sp_buf_begin(&g->last), g->last.len);
		int n = store_scan(g->e->store, after.len ? sp_buf_begin(&after) : NULL, after.len,
				   1024, 0, gather_one, g, &more);
		sp_buf_free(&after);
		if (n <= 0)
			break;
	}
}

/* gather_range appends range i's items of rf in the leaves of mask. */
static uint32_t gather_range(struct ev_engine *e, uint8_t rf, size_t i, uint64_t mask,
			     uint32_t budget, struct sp_buf *out)
{
	struct gather g = {.e = e, .rf = rf, .leafmask = mask, .budget = budget, .out = out};
	sp_buf_init(&g.last);
	size_t nr = ring_nranges(e->ring);
	uint64_t t = ring_range_token(e->ring, i);
	uint64_t prev = ring_range_token(e->ring, i ? i - 1 : nr - 1);
	if (i > 0) {
		gather_segment(&g, prev + 1, t);
	} else {
		/* Range 0 wraps: (t_last, max] then [0, t_0]. */
		if (prev != UINT64_MAX)
			gather_segment(&g, prev + 1, UINT64_MAX);
		if (g.budget)
			gather_segment(&g, 0, t);
	}
	sp_buf_free(&g.last);
	return g.count;
}

static void send_items(struct ev_engine *e, uint64_t to, uint8_t rf, size_t i, uint64_t mask,
		       bool want_reply)
{
	struct sp_buf out;
	sp_buf_init(&out);
	size_t at = ev_msg_ae_items_begin(&out, rf, ring_range_token(e->ring, i), mask, want_reply);
	uint32_t n = gather_range(e, rf, i, mask, e->cfg.ae_max_keys, &out);
	ev_msg_set_count(&out, at, n);
	e->st.ae_keys_sent += n;
	ev_send(e, to, &out);
	sp_buf_free(&out);
}

static void recv_leaves(struct ev_engine *e, uint64_t from, const struct ev_msg *m)
{
	if (m->rf < 1 || m->rf > EV_MAX_RF)
		return;
	size_t each = 8 + 8 * MERKLE_LEAVES;
	for (uint32_t k = 0; k < m->count; k++) {
		const uint8_t *p = m->body + each * k;
		uint64_t token = sp_get_le64(p);
		size_t i;
		if (ring_range_find(e->ring, token, &i) || !shares(e, i, m->rf, from))
			continue;
		uint64_t leaves[MERKLE_LEAVES];
		for (int l = 0; l < MERKLE_LEAVES; l++)
			leaves[l] = sp_get_le64(p + 8 + 8 * l);
		unsigned diff[MERKLE_LEAVES];
		unsigned nd = merkle_diff(ev_tree(e, m->rf, i), leaves, diff);
		if (!nd)
			continue;
		uint64_t mask = 0;
		for (unsigned d = 0; d < nd; d++)
			mask |= 1ull << diff[d];
		e->st.ae_ranges_differ++;
		send_items(e, from, m->rf, i, mask, true);
	}
}

static void recv_items(struct ev_engine *e, uint64_t from, const struct ev_msg *m)
{
	size_t pos = 0;
	struct ev_item it;
	for (uint32_t k = 0; k < m->count; k++) {
		if (ev_msg_next_item(m, &pos, &it))
			return;
		if (it.rf != m->rf)
			continue;
		if (ev_merge_item(e, &it, 0) == 1)
			e->st.ae_keys_repaired++;
	}
	size_t i;
	if (!m->want_reply || m->rf < 1 || m->rf > EV_MAX_RF ||
	    ring_range_find(e->ring, m->token, &i) || !shares(e, i, m->rf, from))
		return;
	send_items(e, from, m->rf, i, m->leafmask, false);
}

void ev_ae_recv(struct ev_engine *e, uint64_t from, const struct ev_msg *m)
{
	switch (m->type) {
	case EVM_AE_ROOTS:
		recv_roots(e, from, m);
		break;
	case EVM_AE_LEAVES:
		recv_leaves(e, from, m);
		break;
	case EVM_AE_ITEMS:
		recv_items(e, from, m);
		break;
	default:
		break;
	}
}
