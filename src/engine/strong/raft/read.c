/*
 * read: linearizable reads without log entries (§6.4 ReadIndex) and with
 * leader leases (§6.4.1).
 *
 * Heartbeat rounds. The leader numbers its broadcasts: every APPEND it
 * sends carries the current round in ctx, every answer echoes it. When a
 * majority of voters have answered round k in the current term, the
 * leader knows it was still the leader when round k started. A read that
 * arrives records the commit index as its read index and waits for a
 * round that starts after it arrived; every read waiting at that moment
 * shares the round, so a burst of reads costs one round trip (batching).
 * A round starts at once when none is in flight, else right after the
 * one in flight completes, and at every heartbeat.
 *
 * Leases. A follower that answered round k heard from the leader at or
 * after the round's start, and will refuse to vote for anyone else for a
 * minimum election timeout of its own clock after that (see
 * raft__in_lease). No other leader can therefore be elected before the
 * round's start plus election_timeout / (1 + drift) of real time, which
 * the leader's clock, itself off by up to the drift, measures as at least
 * election_timeout * (1 - drift) / (1 + drift). Until then the leader may
 * answer reads from its own state without a round trip.
 */
#include "engine/strong/raft/raft_int.h"

#include <string.h>

#include "common/err.h"

static uint64_t lease_ms(const struct raft *r)
{
	uint64_t et = r->cfg.election_timeout_ms;
#if RAFT_CANARY == RAFT_CANARY_LEASE_NO_DRIFT
	return et;
#else
	uint64_t ppm = r->cfg.max_clock_drift_ppm;
	return et * (1000000 - ppm) / (1000000 + ppm);
#endif
}

static void finish_read(struct raft *r, const struct pending_read *pr)
{
	if (pr->from == RAFT_NONE) {
		struct raft_read rd = {.id = pr->id, .index = pr->index};
		VEC_PUSH(r->ready_reads, rd);
	} else {
		struct raft_msg m = {.type = RAFT_MSG_READ_INDEX_RESP,
				     .to = pr->from,
				     .ctx = pr->id,
				     .index = pr->index};
		raft__send(r, &m);
	}
}

static bool term_committed(const struct raft *r)
{
	return r->commit >= r->term_start_index;
}

void raft__start_round(struct raft *r)
{
	r->round++;
	r->round_start[r->round % RAFT_LEASE_RING] = r->now;
	r->round_wanted = false;
	r->stats.read_rounds++;
	for (uint32_t i = 0; i < r->n_prs; i++)
		r->prs[i].need_heartbeat = true;
	/* Reads that were waiting for a round not yet started join this one. */
	for (size_t i = 0; i < r->reads.n; i++)
		if (r->reads.v[i].index && !r->reads.v[i].round)
			r->reads.v[i].round = r->round;
	raft__round_acked(r);
}

/* raft__want_round asks for a round that starts after now: at once when
 * none is in flight, else as soon as the one in flight completes. */
void raft__want_round(struct raft *r)
{
	if (r->round_acked >= r->round)
		raft__start_round(r);
	else
		r->round_wanted = true;
}

/* raft__round_acked recomputes the latest round a majority of voters has
 * answered, renews the lease and releases the reads it confirms. */
void raft__round_acked(struct raft *r)
{
	uint64_t a[RAFT_MAX_MEMBERS + 1];
	uint32_t n = 0;
	if (raft__is_voter(r, r->id))
		a[n++] = r->round;
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].role == RAFT_VOTER)
			a[n++] = r->prs[i].acked_round;
	if (!n)
		return;
	uint64_t q = raft__quorum_value(a, n);
	if (q <= r->round_acked)
		return;
	r->round_acked = q;
	if (r->cfg.max_clock_drift_ppm && r->round - q < RAFT_LEASE_RING) {
		uint64_t until = r->round_start[q % RAFT_LEASE_RING] + lease_ms(r);
		if (until > r->lease_until)
			r->lease_until = until;
	}
	size_t keep = 0;
	for (size_t i = 0; i < r->reads.n; i++) {
		struct pending_read *pr = &r->reads.v[i];
		if (pr->round && pr->round <= q)
			finish_read(r, pr);
		else
			r->reads.v[keep++] = *pr;
	}
	r->reads.n = keep;
	if (r->round_wanted)
		raft__start_round(r);
}

/* A read gets its index once the leader has committed an entry of its
 * term (§6.4 step 1), then joins the next round to start. */
static void place_read(struct raft *r, struct pending_read *pr)
{
	pr->index = r->commit;
	pr->round = 0;
	raft__want_round(r);
}

static void add_read(struct raft *r, uint64_t id, uint64_t from)
{
	struct pending_read pr = {.id = id, .from = from};
	r->stats.reads++;
	VEC_PUSH(r->reads, pr);
	if (term_committed(r))
		place_read(r, &r->reads.v[r->reads.n - 1]);
}

/* raft__reads_on_commit gives the reads that waited for the term's first
 * commit their read index and asks for a round for them. */
void raft__reads_on_commit(struct raft *r)
{
	bool any = false;
	for (size_t i = 0; i < r->reads.n; i++) {
		if (!r->reads.v[i].index) {
			r->reads.v[i].index = r->commit;
			any = true;
		}
	}
	if (any)
		raft__want_round(r);
}

void raft__fail_reads(struct raft *r)
{
	for (size_t i = 0; i < r->reads.n; i++) {
		struct pending_read *pr = &r->reads.v[i];
		if (pr->from == RAFT_NONE) {
			struct raft_read rd = {.id = pr->id, .err = SP_ERR_NOTLEADER};
			VEC_PUSH(r->ready_reads, rd);
		} else {
			struct raft_msg m = {.type = RAFT_MSG_READ_INDEX_RESP,
					     .to = pr->from,
					     .ctx = pr->id,
					     .reject = true};
			raft__send(r, &m);
		}
	}
	r->reads.n = 0;
	r->round_wanted = false;
}

int raft_read_index(struct raft *r, uint64_t id)
{
	if (r->role == RAFT_LEADER) {
		add_read(r, id, RAFT_NONE);
		return 0;
	}
	if (r->leader == RAFT_NONE)
		return SP_ERR_NOTLEADER;
	struct raft_msg m = {.type = RAFT_MSG_READ_INDEX, .to = r->leader, .ctx = id};
	raft__send(r, &m);
	struct forwarded_read f = {.id = id, .sent_ms = r->now};
	VEC_PUSH(r->fwd, f);
	return 0;
}

int raft_read_lease(struct raft *r, uint64_t *index)
{
	if (r->role != RAFT_LEADER || r->transferee != RAFT_NONE || r->timeout_now_sent ||
	    !term_committed(r) || r->now >= r->lease_until)
		return SP_ERR_NOTLEADER;
	r->stats.lease_reads++;
	*index = r->commit;
	return 0;
}

void raft__step_read_index(struct raft *r, const struct raft_msg *m)
{
	if (r->role != RAFT_LEADER) {
		struct raft_msg resp = {
		    .type = RAFT_MSG_READ_INDEX_RESP, .to = m->from, .ctx = m->ctx, .reject = true};
		raft__send(r, &resp);
		return;
	}
	add_read(r, m->ctx, m->from);
}

void raft__step_read_index_resp(struct raft *r, const struct raft_msg *m)
{
	for (size_t i = 0; i < r->fwd.n; i++) {
		if (r->fwd.v[i].id != m->ctx)
			continue;
		struct raft_read rd = {.id = m->ctx,
				       .index = m->reject ? 0 : m->index,
				       .err = m->reject ? SP_ERR_NOTLEADER : 0};
		VEC_PUSH(r->ready_reads, rd);
		r->fwd.v[i] = r->fwd.v[--r->fwd.n];
		return;
	}
}

void raft__expire_forwarded(struct raft *r)
{
	uint64_t limit = 2ULL * r->cfg.election_timeout_ms;
	size_t keep = 0;
	for (size_t i = 0; i < r->fwd.n; i++) {
		if (r->now >= r->fwd.v[i].sent_ms + limit) {
			struct raft_read rd = {.id = r->fwd.v[i].id, .err = SP_ERR_NOTLEADER};
			VEC_PUSH(r->ready_reads, rd);
		} else {
			r->fwd.v[keep++] = r->fwd.v[i];
		}
	}
	r->fwd.n = keep;
}
