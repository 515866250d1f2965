/*
 * hints: hinted handoff. A write a replica did not acknowledge is kept
 * here, durably, as a meta record of the engine's store named
 *
 *   h/<target id, 16 hex>/<seq, 16 hex>  ->  created_ms u64 | item
 *
 * (item as in msg.h), and replayed to the target, oldest first, once it
 * answers pings again. A replayed hint is an ordinary WRITE whose id is
 * EV_HINT_ID_BIT | seq; the target's acknowledgement deletes the record.
 * Replays are idempotent (states merge), so a lost acknowledgement only
 * means the hint is sent again. Hints older than hint_max_age_ms are
 * dropped at replay, and a new hint that would take the total past
 * hint_max_bytes is dropped at once: both are counted, and anti-entropy
 * repairs what they would have.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "engine/eventual/internal.h"

#define HINT_PREFIX    "h/"
#define HINT_BATCH     512  /* hints sent per target per replay */
#define HINT_TICK_MS   100  /* how often replay runs */
#define HINT_RESEND_MS 1000 /* unacknowledged hints are sent again after this */
#define HINT_NAME_MAX  40

static void hint_name(char *out, uint64_t target, uint64_t seq)
{
	snprintf(out, HINT_NAME_MAX, HINT_PREFIX "%016" PRIx64 "/%016" PRIx64, target, seq);
}

static int parse_name(const char *name, uint64_t *target, uint64_t *seq)
{
	char *end;
	const char *p = name + strlen(HINT_PREFIX);
	*target = strtoull(p, &end, 16);
	if (*end != '/')
		return -1;
	*seq = strtoull(end + 1, &end, 16);
	return *end ? -1 : 0;
}

static int load_one(void *ctx, const char *name, const void *val, size_t len)
{
	struct ev_engine *e = ctx;
	uint64_t target, seq;
	(void)val;
	if (parse_name(name, &target, &seq))
		return 0;
	if (seq > e->hint_seq)
		e->hint_seq = seq;
	struct ev_peer *p = ev_peer_find(e, target);
	if (p)
		p->hints++;
	e->st.hints_pending++;
	e->st.hint_bytes += len;
	return 0;
}

int ev_hints_load(struct ev_engine *e)
{
	int rc = store_meta_scan(e->store, HINT_PREFIX, load_one, e);
	return rc < 0 ? rc : 0;
}

int ev_hint_store(struct ev_engine *e, uint64_t target, const struct ev_item *it)
{
	struct sp_buf v;
	sp_buf_init(&v);
	uint8_t created[8];
	sp_put_le64(created, sp_wall_ms(e->cfg.clock));
	sp_buf_append(&v, created, sizeof(created));
	ev_msg_put_item(&v, it);
	if (e->cfg.hint_max_bytes && e->st.hint_bytes + v.len > e->cfg.hint_max_bytes) {
		e->st.hints_dropped++;
		sp_buf_free(&v);
		return SP_ERR_FULL;
	}
	char name[HINT_NAME_MAX];
	hint_name(name, target, ++e->hint_seq);
	int rc = store_meta_put(e->store, name, sp_buf_begin(&v), v.len);
	if (rc == 0) {
		e->st.hints_queued++;
		e->st.hints_pending++;
		e->st.hint_bytes += v.len;
		struct ev_peer *p = ev_peer_find(e, target);
		if (p)
			p->hints++;
	}
	sp_buf_free(&v);
	return rc;
}

static void forget(struct ev_engine *e, uint64_t target, const char *name, size_t len)
{
	if (store_meta_del(e->store, name) != 1)
		return;
	e->st.hints_pending--;
	e->st.hint_bytes -= len <= e->st.hint_bytes ? len : e->st.hint_bytes;
	struct ev_peer *p = ev_peer_find(e, target);
	if (p && p->hints)
		p->hints--;
}

void ev_hint_acked(struct ev_engine *e, uint64_t from, uint64_t id)
{
	char name[HINT_NAME_MAX];
	hint_name(name, from, id & ~EV_HINT_ID_BIT);
	const void *val;
	size_t len;
	if (store_meta_get(e->store, name, &val, &len))
		return;
	forget(e, from, name, len);
	e->st.hints_delivered++;
	/* A batch fully acknowledged: the next one may go at once. */
	struct ev_peer *p = ev_peer_find(e, from);
	if (p && p->hint_inflight && --p->hint_inflight == 0)
		p->hint_replay_after_ms = 0;
}

/* A page of one target's hints, copied out of the scan. */
struct batch {
	struct sp_buf names; /* NUL-terminated names, one after another */
	struct sp_buf vals;  /* (len u32 | value)* */
	size_t n;
};

static int collect(void *ctx, const char *name, const void *val, size_t len)
{
	struct batch *b = ctx;
	sp_buf_append(&b->names, name, strlen(name) + 1);
	uint8_t l[4];
	sp_put_le32(l, (uint32_t)len);
	sp_buf_append(&b->vals, l, 4);
	sp_buf_append(&b->vals, val, len);
	return ++b->n >= HINT_BATCH;
}

static void replay(struct ev_engine *e, struct ev_peer *peer, uint64_t now)
{
	char prefix[HINT_NAME_MAX];
	snprintf(prefix, sizeof(prefix), HINT_PREFIX "%016" PRIx64 "/", peer->id);
	struct batch b = {.n = 0};
	sp_buf_init(&b.names);
	sp_buf_init(&b.vals);
	(void)store_meta_scan(e->store, prefix, collect, &b);
	uint64_t wall = sp_wall_ms(e->cfg.clock);
	const char *name = sp_buf_begin(&b.names);
	const uint8_t *v = (const uint8_t *)sp_buf_begin(&b.vals);
	struct sp_buf *m = &e->scratch2;
	for (size_t i = 0; i < b.n; i++) {
		uint32_t len = sp_get_le32(v);
		const uint8_t *val = v + 4;
		v += 4 + len;
		const char *this_name = name;
		name += strlen(name) + 1;
		uint64_t target, seq;
		if (parse_name(this_name, &target, &seq) || len < 8)
			continue;
		uint64_t created = sp_get_le64(val);
		struct ev_msg holder = {.body = val + 8, .body_len = len - 8};
		struct ev_item it;
		size_t pos = 0;
		bool stale = e->cfg.hint_max_age_ms && wall > created &&
			     wall - created > e->cfg.hint_max_age_ms;
		if (stale || ev_msg_next_item(&holder, &pos, &it)) {
			forget(e, target, this_name, len);
			e->st.hints_dropped++;
			continue;
		}
		sp_buf_clear(m);
		ev_msg_write(m, EV_HINT_ID_BIT | seq, 0, 0, &it);
		ev_send(e, peer->id, m);
	}
	peer->hint_inflight = b.n;
	peer->hint_replay_after_ms = now + HINT_RESEND_MS;
	sp_buf_free(&b.names);
	sp_buf_free(&b.vals);
}

void ev_hints_tick(struct ev_engine *e)
{
	uint64_t now = ev_now_ms(e);
	if (now - e->last_hint_ms < HINT_TICK_MS)
		return;
	e->last_hint_ms = now;
	for (size_t i = 0; i < e->npeers; i++) {
		struct ev_peer *p = &e->peers[i];
		/* Replay only to a peer heard from lately, not one merely
		 * presumed up at start. */
		if (!p->hints || now < p->hint_replay_after_ms || !p->last_heard_ms ||
		    now - p->last_heard_ms >= e->cfg.suspect_ms)
			continue;
		replay(e, p, now);
	}
}
