/*
 * replication: the leader's side of log replication (§3.5) with
 * per-follower flow control, pipelining and batching (§10.2), the
 * follower's side of AppendEntries, commitment (§3.6.2) and the leader's
 * timers (heartbeats, check-quorum §6.2).
 */
#include "engine/strong/raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

struct progress *raft__progress(struct raft *r, uint64_t id)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].role && r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

static void pr_reset(struct raft *r, struct progress *pr)
{
	pr->state = PR_PROBE;
	pr->next = raft_last_index(r) + 1;
	pr->match = 0;
	pr->probe_sent = false;
	pr->inflight_n = 0;
	pr->inflight_head = 0;
	pr->match_at_last_hb = 0;
	pr->snap_chunk_out = false;
	pr->snap_installing = false;
	pr->recent_active = false;
	pr->acked_round = 0;
	pr->need_heartbeat = true;
}

/* raft__rebuild_progress makes the leader's progress table follow the
 * current configuration, keeping what it knew of members that stay (in
 * the same slots). */
void raft__rebuild_progress(struct raft *r)
{
	const struct raft_conf *c = raft__conf(r);
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];
		if (pr->role)
			pr->role = (uint8_t)raft_conf_role(c, pr->id);
	}
	for (uint32_t i = 0; i < c->n; i++) {
		uint64_t id = c->members[i].id;
		if (id == r->id || raft__progress(r, id))
			continue;
		uint32_t slot = 0;
		while (slot < RAFT_MAX_MEMBERS && r->prs[slot].role)
			slot++;
		if (slot == RAFT_MAX_MEMBERS)
			break; /* cannot happen: a conf holds at most that many */
		struct progress *pr = &r->prs[slot];
		memset(pr, 0, sizeof(*pr));
		pr->id = id;
		pr->role = c->members[i].role;
		pr_reset(r, pr);
		if (slot + 1 > r->n_prs)
			r->n_prs = slot + 1;
	}
}

/*
 * raft__become_leader: a candidate with a majority of votes (§3.4). It
 * appends a no-op entry of its own term at once: until an entry of the
 * current term commits, the leader does not know which entries are
 * committed, cannot answer reads (§6.4) and cannot change membership.
 */
void raft__become_leader(struct raft *r)
{
	r->role = RAFT_LEADER;
	r->leader = r->id;
	r->transferee = RAFT_NONE;
	r->timeout_now_sent = false;
	r->lease_until = 0;
	r->round = 0;
	r->round_acked = 0;
	r->round_wanted = false;
	r->stats.leader_changes++;
	memset(r->prs, 0, sizeof(r->prs));
	r->n_prs = 0;
	raft__rebuild_progress(r);
	raft__append(r, r->term, RAFT_ENTRY_NOOP, NULL, 0);
	r->term_start_index = raft_last_index(r);
	r->next_quorum_check = r->now + r->cfg.election_timeout_ms;
	r->next_heartbeat = r->now;
	raft__leader_tick(r);
}

static void inflight_push(struct progress *pr, uint64_t last)
{
	uint32_t at = (pr->inflight_head + pr->inflight_n) % RAFT_MAX_INFLIGHT;
	pr->inflight[at] = last;
	pr->inflight_n++;
}

static void inflight_free_to(struct progress *pr, uint64_t index)
{
	while (pr->inflight_n && pr->inflight[pr->inflight_head] <= index) {
		pr->inflight_head = (pr->inflight_head + 1) % RAFT_MAX_INFLIGHT;
		pr->inflight_n--;
	}
}

static void become_probe(struct raft *r, struct progress *pr, uint64_t next)
{
	(void)r;
	pr->state = PR_PROBE;
	pr->next = next > pr->match + 1 ? next : pr->match + 1;
	pr->probe_sent = false;
	pr->inflight_n = 0;
	pr->inflight_head = 0;
}

static void start_snapshot(struct raft *r, struct progress *pr)
{
	pr->state = PR_SNAPSHOT;
	pr->snap_meta = r->snap;
	pr->snap_index = r->snap.index;
	pr->snap_offset = 0;
	pr->snap_chunk_out = false;
	pr->snap_installing = false;
	pr->snap_stalls = 0;
	pr->inflight_n = 0;
	pr->inflight_head = 0;
}

/* An empty APPEND at what the follower is known to hold: a heartbeat
 * that carries the commit index and the current read round. */
static void send_heartbeat(struct raft *r, struct progress *pr)
{
	uint64_t prev = pr->match;
	if (prev < r->base_index || (prev && !raft_term_at(r, prev)))
		prev = r->base_index;
	struct raft_msg m = {.type = RAFT_MSG_APPEND,
			     .to = pr->id,
			     .prev_index = prev,
			     .prev_term = raft_term_at(r, prev),
			     .commit = r->commit,
			     .ctx = r->round};
	raft__send(r, &m);
}

/*
 * send_append sends what pr is missing, as far as flow control allows:
 * in PROBE one message at a time until the follower's match is found; in
 * REPLICATE up to max_inflight_msgs messages, each carrying up to
 * max_entries_per_msg / max_bytes_per_msg entries (§10.2.1 pipelining and
 * batching). heartbeat forces one message out even when nothing is new.
 */
static void send_append(struct raft *r, struct progress *pr, bool heartbeat)
{
	if (pr->state == PR_SNAPSHOT) {
		if (!pr->snap_chunk_out && !pr->snap_installing)
			raft__send_snapshot_chunk(r, pr);
		if (heartbeat)
			send_heartbeat(r, pr);
		return;
	}
	uint64_t last = raft_last_index(r);
	for (;;) {
		bool paused =
		    (pr->state == PR_PROBE && pr->probe_sent) ||
		    (pr->state == PR_REPLICATE && pr->inflight_n >= r->cfg.max_inflight_msgs);
		if (paused) {
			if (heartbeat)
				send_heartbeat(r, pr);
			return;
		}
		uint64_t prev = pr->next - 1;
		uint64_t prev_term = raft_term_at(r, prev);
		if (prev < r->base_index || (prev && !prev_term)) {
			if (r->has_snap && r->snap.index >= r->base_index) {
				start_snapshot(r, pr);
				raft__send_snapshot_chunk(r, pr);
			}
			if (heartbeat)
				send_heartbeat(r, pr);
			return;
		}
		uint32_t n = 0;
		uint64_t bytes = 0;
		while (pr->next + n <= last && n < r->cfg.max_entries_per_msg) {
			const struct raft_entry *e = raft_entry_at(r, pr->next + n);
			if (n && bytes + e->len > r->cfg.max_bytes_per_msg)
				break;
			bytes += e->len;
			n++;
		}
		if (!n && !heartbeat)
			return;
		struct raft_msg m = {.type = RAFT_MSG_APPEND,
				     .to = pr->id,
				     .prev_index = prev,
				     .prev_term = prev_term,
				     .commit = r->commit,
				     .ctx = r->round,
				     .n_entries = n};
		if (n) {
			m.entries = raft_entry_at(r, pr->next);
			r->stats.entries_sent += n;
			if (pr->state == PR_REPLICATE) {
				pr->next += n;
				inflight_push(pr, prev + n);
			} else {
				pr->probe_sent = true;
			}
		}
		raft__send(r, &m);
		heartbeat = false;
		if (pr->state != PR_REPLICATE || pr->next > last)
			return;
	}
}

void raft__flush_sends(struct raft *r)
{
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];
		if (!pr->role)
			continue;
		send_append(r, pr, pr->need_heartbeat);
		pr->need_heartbeat = false;
	}
}

/* raft__heartbeat: the leader's periodic round. Each one starts a new
 * read round (which also renews the lease), retries stalled probes and
 * pipelines whose messages were lost, and resends a lost snapshot chunk. */
void raft__heartbeat(struct raft *r)
{
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];
		if (!pr->role)
			continue;
		if (pr->state == PR_PROBE) {
			pr->probe_sent = false;
		} else if (pr->state == PR_REPLICATE) {
			if (pr->inflight_n && pr->match == pr->match_at_last_hb)
				become_probe(r, pr, pr->match + 1);
		} else if (pr->snap_chunk_out || pr->snap_installing) {
			if (r->now >= pr->snap_sent_ms + 2ULL * r->cfg.election_timeout_ms) {
				/* A lost chunk is sent again; a transfer of a
				 * snapshot that is no longer the latest restarts
				 * with the latest, in case the node dropped it,
				 * and so does one stalled twice in a row. */
				pr->snap_chunk_out = false;
				pr->snap_installing = false;
				if (pr->snap_meta.index != r->snap.index ||
				    ++pr->snap_stalls >= 2) {
					pr->snap_offset = 0;
					pr->snap_stalls = 0;
				}
			}
		}
		pr->match_at_last_hb = pr->match;
	}
	raft__start_round(r);
}

void raft__leader_tick(struct raft *r)
{
	if (r->now >= r->next_quorum_check) {
		/* Check-quorum (§6.2): a leader that has not heard from a
		 * majority within an election timeout steps down, so a
		 * partitioned leader stops serving. */
		uint32_t active = raft__is_voter(r, r->id) ? 1 : 0;
		for (uint32_t i = 0; i < r->n_prs; i++) {
			if (r->prs[i].role == RAFT_VOTER && r->prs[i].recent_active)
				active++;
			r->prs[i].recent_active = false;
		}
		if (active < raft__n_voters(r) / 2 + 1) {
			raft__become_follower(r, r->term, RAFT_NONE);
			return;
		}
		r->next_quorum_check = r->now + r->cfg.election_timeout_ms;
	}
	if (r->transferee != RAFT_NONE && r->now >= r->transfer_deadline)
		r->transferee = RAFT_NONE; /* §3.10: give up, resume normal work */
	if (r->now >= r->next_heartbeat) {
		r->next_heartbeat = r->now + r->cfg.heartbeat_ms;
		raft__heartbeat(r);
	}
}

/*
 * raft__maybe_commit advances the commit index to the highest index held
 * by a majority of voters (the leader counts what is durable on its own
 * disk) -- but only when that entry is of the current term (§3.6.2; the
 * paper's §5.4.2 and Figure 8): an entry of an earlier term may be on a
 * majority and still be overwritten by a future leader. Earlier entries
 * commit indirectly, with the first entry of this term.
 */
void raft__maybe_commit(struct raft *r)
{
	uint64_t m[RAFT_MAX_MEMBERS + 1];
	uint32_t n = 0;
	if (raft__is_voter(r, r->id))
		m[n++] = r->stable_index;
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].role == RAFT_VOTER)
			m[n++] = r->prs[i].match;
	if (!n)
		return;
	uint64_t idx = raft__quorum_value(m, n);
	if (idx <= r->commit)
		return;
#if RAFT_CANARY != RAFT_CANARY_COMMIT_OLD_TERM
	if (raft_term_at(r, idx) != r->term)
		return;
#endif
	bool term_was_committed = r->commit >= r->term_start_index;
	r->commit = idx;
	/* Reads that came before the term's first commit get their index
	 * now (§6.4 step 1); later reads are placed as they arrive, so no
	 * later commit needs to look at them. */
	if (!term_was_committed && r->commit >= r->term_start_index)
		raft__reads_on_commit(r);
	raft__after_commit_conf(r);
}

/* Accepting a leader for the current term: a candidate steps down, and
 * the contact resets the election timer and the stickiness window. */
void raft__accept_leader(struct raft *r, uint64_t from)
{
	if (r->role != RAFT_FOLLOWER || r->leader != from)
		raft__become_follower(r, r->term, from);
	r->last_leader_contact = r->now;
	raft__reset_election_timer(r);
}

/*
 * raft__step_append: the receiver's rules for AppendEntries (§3.5,
 * Figure 3.1): refuse when the log has no entry at prev_index with
 * prev_term; otherwise delete a conflicting suffix, append what is new,
 * and advance the commit index to min(leader commit, last new entry).
 * The acknowledgement waits until the entries are durable (§3.8).
 */
void raft__step_append(struct raft *r, const struct raft_msg *m)
{
	raft__accept_leader(r, m->from);
	if (r->snap_rx_active && r->snap_rx_complete) {
		/* A whole snapshot is being installed and will replace the log:
		 * entries taken now would be discarded after being
		 * acknowledged. Stay silent; the leader retries. */
		return;
	}
	struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from, .ctx = m->ctx};
	if (m->prev_index < r->commit) {
		/* Everything up to our commit index is known to match. Take
		 * only what lies beyond it. */
		uint64_t skip = r->commit - m->prev_index;
		if (skip >= m->n_entries) {
			resp.index = r->commit;
			raft__send_held(r, &resp);
			return;
		}
		struct raft_msg sub = *m;
		sub.prev_index = r->commit;
		sub.prev_term = m->entries[skip - 1].term;
		sub.entries = m->entries + skip;
		sub.n_entries = m->n_entries - (uint32_t)skip;
		raft__step_append(r, &sub);
		return;
	}
	uint64_t last = raft_last_index(r);
	if (m->prev_index > last || raft_term_at(r, m->prev_index) != m->prev_term) {
		resp.reject = true;
		resp.index = m->prev_index;
		resp.hint = last < m->prev_index ? last : m->prev_index - 1;
		raft__send(r, &resp);
		return;
	}
	for (uint32_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		if (e->index <= raft_last_index(r)) {
			if (raft_term_at(r, e->index) == e->term)
				continue;
			/* A conflict: only uncommitted entries can conflict in a
			 * correct cluster. If a planted bug made it otherwise,
			 * move commit and applied back so the simulator sees the
			 * divergence when the new entry is applied. */
			if (e->index <= r->commit)
				r->commit = e->index - 1;
			if (e->index <= r->applied)
				r->applied = e->index - 1;
			raft__truncate_after(r, e->index - 1);
		}
		raft__append(r, e->term, e->type, e->data, e->len);
	}
	uint64_t new_last = m->prev_index + m->n_entries;
	uint64_t c = m->commit < new_last ? m->commit : new_last;
	if (c > r->commit)
		r->commit = c;
	resp.index = new_last;
#if RAFT_CANARY == RAFT_CANARY_ACK_BEFORE_PERSIST
	raft__send(r, &resp);
#else
	raft__send_held(r, &resp);
#endif
}

/* raft__responder is the progress of the member an answer came from, now
 * marked active for check-quorum; NULL unless this node leads and knows
 * the member. */
struct progress *raft__responder(struct raft *r, const struct raft_msg *m)
{
	if (r->role != RAFT_LEADER)
		return NULL;
	struct progress *pr = raft__progress(r, m->from);
	if (pr)
		pr->recent_active = true;
	return pr;
}

/* raft__quorum_value sorts v (n values, one per voter) and returns the
 * largest value that a majority of them reach: the (n/2+1)-th largest. */
uint64_t raft__quorum_value(uint64_t *v, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++)
		for (uint32_t j = i; j > 0 && v[j] > v[j - 1]; j--) {
			uint64_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[n / 2];
}

/* raft__step_append_resp: the leader learns what a follower holds. */
void raft__step_append_resp(struct raft *r, const struct raft_msg *m)
{
	struct progress *pr = raft__responder(r, m);
	if (!pr)
		return;
	if (m->ctx > pr->acked_round && m->ctx <= r->round) {
		pr->acked_round = m->ctx;
		raft__round_acked(r);
	}
	if (r->role != RAFT_LEADER)
		return;
	if (m->index > raft_last_index(r))
		return; /* not something we sent */
	if (m->reject) {
		if (pr->state != PR_SNAPSHOT && m->hint < pr->match && m->index == pr->match) {
			/* The follower refuses the very entry it acknowledged
			 * and says its log ends before it: its disk lost what
			 * it had made durable (a damaged record was cut at
			 * recovery). Forget the match and find the real one;
			 * the commit index never moves back. */
			pr->match = m->hint;
			become_probe(r, pr, m->hint + 1);
			return;
		}
		if (pr->state == PR_SNAPSHOT || m->index <= pr->match)
			return; /* stale */
		if (pr->state == PR_PROBE && m->index != pr->next - 1)
			return; /* answer to an older probe */
		uint64_t next = m->hint + 1 < m->index ? m->hint + 1 : m->index;
		become_probe(r, pr, next);
		return;
	}
	pr->probe_sent = false;
	if (m->index > pr->match) {
		pr->match = m->index;
		if (pr->next < m->index + 1)
			pr->next = m->index + 1;
	}
	inflight_free_to(pr, m->index);
	if (pr->state == PR_SNAPSHOT && pr->match >= pr->snap_index) {
		become_probe(r, pr, pr->match + 1);
	}
	if (pr->state == PR_PROBE) {
		pr->state = PR_REPLICATE;
		pr->next = pr->match + 1;
		pr->inflight_n = 0;
		pr->inflight_head = 0;
	}
	raft__maybe_commit(r);
	if (r->role != RAFT_LEADER)
		return;
	raft__maybe_transfer(r, pr);
	raft__maybe_promote(r, pr); /* last: it may rebuild the progress table */
}
