/*
 * stale: the stale-read sampler. One weak read in stale-sample-every
 * (picked at random) is compared with a stronger read of the same key
 * issued at the same moment, and the verdict goes to the metrics
 * (observe_stale): was the weak read stale, and by how much.
 *
 *   eventual ONE / QUORUM  against a read at QUORUM / ALL of the key's
 *                          replicas (LWW registers: GET);
 *   causal causal / local  against every peer's copy of the key;
 *   strong stale / lease   against the committed state: a ReadIndex
 *                          round gives the commit index at the read, and
 *                          the writes to the key between what the node
 *                          had applied and that index are what it missed.
 *
 * A read is stale when the stronger read found a newer version that was
 * written before the weak read began (a write that came after it is not
 * something the read should have seen). "Milliseconds behind" is how long
 * before the read that newest missed version was written: its HLC time
 * (causal, eventual) or its Raft entry's time (strong), so it measures the
 * window in which readers still got the old value. A truth read that fails
 * gives no verdict and is counted apart.
 *
 * The stronger read is a real read: an eventual one at QUORUM repairs
 * replicas behind, as any read does. It must not change what the client
 * that issued the weak read is answered, or when.
 */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/hlc.h"
#include "crdt/crdt.h"
#include "engine/causal/causal.h"
#include "engine/eventual/eventual.h"
#include "engine/strong/strong.h"
#include "store/store.h"
#include "server/server.h"

/* ---- eventual ---------------------------------------------------------- */

struct lww_version {
	bool found; /* a live value (not absent, not deleted) */
	bool known; /* the read succeeded */
	uint64_t ts, node;
};

struct stale_ev {
	struct server *srv;
	enum obs_level level;
	uint64_t t_read_ms; /* wall clock when the weak read began */
	struct lww_version served, truth;
	int pending; /* reads not yet back */
};

static void lww_of(const struct ev_result *r, struct lww_version *v)
{
	memset(v, 0, sizeof(*v));
	if (r->status)
		return;
	v->known = true;
	struct crdt_lww w;
	if (r->type != CRDT_LWW || crdt_lww_get(r->state, r->slen, &w))
		return;
	/* A delete is a version too: ordered, just without a value. */
	v->found = true;
	v->ts = w.ts;
	v->node = w.node;
}

static bool lww_newer(const struct lww_version *a, const struct lww_version *b)
{
	if (!a->found)
		return false;
	if (!b->found)
		return true;
	return a->ts > b->ts || (a->ts == b->ts && a->node > b->node);
}

static void ev_finish(struct stale_ev *s)
{
	if (--s->pending > 0)
		return;
	if (!s->served.known || !s->truth.known) {
		if (s->served.known) /* a failed weak read was answered as such */
			observe_stale_failed(s->srv, s->level);
	} else {
		bool stale = lww_newer(&s->truth, &s->served) && HLC_MS(s->truth.ts) < s->t_read_ms;
		uint64_t ms = stale && s->t_read_ms > HLC_MS(s->truth.ts)
				  ? s->t_read_ms - HLC_MS(s->truth.ts)
				  : 0;
		observe_stale(s->srv, s->level, stale, stale ? 1 : 0, ms);
	}
	free(s);
}

static void ev_truth_done(void *arg, const struct ev_result *r)
{
	struct stale_ev *s = arg;
	lww_of(r, &s->truth);
	ev_finish(s);
}

struct stale_ev *stale_ev_begin(struct server *srv, const struct ev_op *op)
{
	if (op->kind != EV_OP_READ || op->level == EV_LEVEL_ALL || op->rf < 2 ||
	    !observe_sample_pick(srv))
		return NULL;
	struct stale_ev *s = sp_calloc(1, sizeof(*s));
	s->srv = srv;
	s->level = op->level == EV_LEVEL_ONE ? OBS_ONE : OBS_QUORUM;
	s->t_read_ms = sp_wall_ms(srv->clock);
	s->pending = 2;
	return s;
}

void stale_ev_start(struct stale_ev *s, const struct ev_op *op)
{
	struct ev_op truth = *op;
	truth.level = op->level == EV_LEVEL_ONE ? EV_LEVEL_QUORUM : EV_LEVEL_ALL;
	eventual_submit(s->srv->eventual, &truth, ev_truth_done, s);
}

void stale_ev_served(struct stale_ev *s, const struct ev_result *r)
{
	lww_of(r, &s->served);
	ev_finish(s);
}

/* ---- strong ------------------------------------------------------------ */

/* Writes to a sampled key seen while waiting for the read index, at most
 * this many (more only add to the count). */
#define STRONG_WRITES_MAX 16

struct stale_strong {
	struct server *srv;
	struct stale_strong *next; /* srv->stale_strong */
	enum obs_level level;
	uint64_t t_read_ms;
	uint64_t applied; /* what the weak read was served from */
	bool done;	  /* the read index came back */
	size_t nwrites;
	uint64_t write_index[STRONG_WRITES_MAX], write_ms[STRONG_WRITES_MAX];
	size_t klen;
	char key[];
};

static void strong_unlink(struct stale_strong *s)
{
	struct stale_strong **pp = &s->srv->stale_strong;
	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (*pp)
		*pp = s->next;
}

/* strong_read_index: the ReadIndex round came back; the node has applied
 * up to index, so every write to the key at or below it has been seen. */
static void strong_read_index(void *arg, int err, uint64_t index)
{
	struct stale_strong *s = arg;
	strong_unlink(s);
	if (err) {
		observe_stale_failed(s->srv, s->level);
		free(s);
		return;
	}
	uint64_t versions = 0, newest_ms = 0;
	for (size_t i = 0; i < s->nwrites && i < STRONG_WRITES_MAX; i++) {
		if (s->write_index[i] > index || s->write_ms[i] >= s->t_read_ms)
			continue;
		versions++;
		newest_ms = s->write_ms[i]; /* in index order: the last is the newest */
	}
	if (s->nwrites > STRONG_WRITES_MAX)
		versions += s->nwrites - STRONG_WRITES_MAX;
	observe_stale(s->srv, s->level, versions > 0, versions,
		      versions && s->t_read_ms > newest_ms ? s->t_read_ms - newest_ms : 0);
	free(s);
}

void stale_strong_read(struct server *srv, enum obs_level level, const void *key, size_t klen)
{
	if (!srv->strong || !observe_sample_pick(srv))
		return;
	struct stale_strong *s = sp_calloc(1, sizeof(*s) + klen + 1);
	s->srv = srv;
	s->level = level;
	s->t_read_ms = sp_wall_ms(srv->clock);
	s->applied = strong_applied_index(srv->strong);
	s->klen = klen;
	memcpy(s->key, key, klen);
	s->next = srv->stale_strong;
	srv->stale_strong = s;
	if (strong_read(srv->strong, strong_read_index, s) != 0) {
		/* No leader known: no verdict either. */
		strong_unlink(s);
		observe_stale_failed(srv, level);
		free(s);
	}
}

void stale_strong_applied(struct server *srv, uint64_t index, uint64_t time_ms)
{
	for (struct stale_strong *s = srv->stale_strong; s; s = s->next) {
		if (index <= s->applied)
			continue;
		struct store_value v;
		if (store_get(srv->store, s->key, s->klen, time_ms, &v) != 0 || v.rev != index)
			continue;
		if (s->nwrites < STRONG_WRITES_MAX) {
			s->write_index[s->nwrites] = index;
			s->write_ms[s->nwrites] = time_ms;
		}
		s->nwrites++;
	}
}

/* ---- causal ------------------------------------------------------------ */

/* How long the peers have to answer a causal sample. */
#define CAUSAL_PEEK_MS 1000

struct stale_causal {
	struct server *srv;
	enum obs_level level;
	uint64_t t_read_ms;
	struct causal_version served;
};

/* causal_newer: is a after b in the order causal keys resolve by (HLC,
 * then origin), as the engine's apply does? */
static bool causal_newer(const struct causal_version *a, const struct causal_version *b)
{
	if (!a->found)
		return false;
	if (!b->found)
		return true;
	return a->ts > b->ts || (a->ts == b->ts && a->origin > b->origin);
}

static void causal_seen(void *arg, int err, const struct causal_version *v, size_t n)
{
	struct stale_causal *s = arg;
	if (err) {
		observe_stale_failed(s->srv, s->level);
		free(s);
		return;
	}
	/* Distinct versions newer than the served one, written before the
	 * read began; the newest of them dates the miss. */
	uint64_t versions = 0;
	const struct causal_version *newest = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!causal_newer(&v[i], &s->served) || HLC_MS(v[i].ts) >= s->t_read_ms)
			continue;
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = v[j].found && v[j].origin == v[i].origin && v[j].seq == v[i].seq &&
			      causal_newer(&v[j], &s->served) && HLC_MS(v[j].ts) < s->t_read_ms;
		if (dup)
			continue;
		versions++;
		if (!newest || causal_newer(&v[i], newest))
			newest = &v[i];
	}
	observe_stale(s->srv, s->level, versions > 0, versions,
		      newest ? s->t_read_ms - HLC_MS(newest->ts) : 0);
	free(s);
}

void stale_causal_read(struct server *srv, enum obs_level level, const void *key, size_t klen)
{
	if (!srv->causal || !observe_sample_pick(srv))
		return;
	struct stale_causal *s = sp_calloc(1, sizeof(*s));
	s->srv = srv;
	s->level = level;
	s->t_read_ms = sp_wall_ms(srv->clock);
	if (causal_read_version(srv->causal, key, klen, &s->served)) {
		free(s);
		return;
	}
	if (causal_peek_peers(srv->causal, key, klen, CAUSAL_PEEK_MS, causal_seen, s) != 0)
		free(s); /* no peers: nothing to be stale against */
}
