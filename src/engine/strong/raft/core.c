/*
 * core: the Raft core's log in memory, its persistence bookkeeping, the
 * update queue (raft_take_update), event dispatch and read-only views.
 * The protocol rules live in election.c, replication.c, snapshot.c,
 * read.c and membership.c.
 */
#include "engine/strong/raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

/* splitmix64: the core's only randomness, seeded by the caller. */
uint64_t raft__rand(struct raft *r)
{
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Randomised election timeouts in [T, 2T) keep split votes rare (§3.4). */
void raft__reset_election_timer(struct raft *r)
{
	uint32_t t = r->cfg.election_timeout_ms;
	r->election_deadline = r->now + t + raft__rand(r) % (t ? t : 1);
}

void raft_config_default(struct raft_config *cfg, uint64_t id)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->id = id;
	cfg->seed = id * 0x2545f4914f6cdd1dULL + 1;
	cfg->election_timeout_ms = 150;
	cfg->heartbeat_ms = 50;
	cfg->max_clock_drift_ppm = 100000;
	cfg->max_entries_per_msg = 256;
	cfg->max_bytes_per_msg = 1 << 20;
	cfg->max_inflight_msgs = 64;
	cfg->max_snapshot_chunk = 64 << 10;
	cfg->max_uncommitted = 16384;
	cfg->catchup_entries = 256;
	cfg->compaction_trail = 1024;
}

/* ---- configurations ---- */

const struct raft_conf *raft__conf(const struct raft *r)
{
	return &r->confs.v[r->confs.n - 1].conf;
}

const struct raft_conf *raft__conf_at(const struct raft *r, uint64_t index)
{
	for (size_t i = r->confs.n; i-- > 0;)
		if (r->confs.v[i].index <= index)
			return &r->confs.v[i].conf;
	return &r->confs.v[0].conf;
}

bool raft__is_voter(const struct raft *r, uint64_t id)
{
	return raft_conf_role(raft__conf(r), id) == RAFT_VOTER;
}

uint32_t raft__n_voters(const struct raft *r)
{
	const struct raft_conf *c = raft__conf(r);
	uint32_t n = 0;
	for (uint32_t i = 0; i < c->n; i++)
		n += c->members[i].role == RAFT_VOTER;
	return n;
}

static void push_conf(struct raft *r, uint64_t index, const struct raft_conf *conf)
{
	struct conf_at c = {.index = index, .conf = *conf};
	VEC_PUSH(r->confs, c);
	if (r->role == RAFT_LEADER)
		raft__rebuild_progress(r);
}

/* ---- the log ---- */

uint64_t raft_last_index(const struct raft *r)
{
	return r->base_index + r->n_entries;
}

uint64_t raft_last_term(const struct raft *r)
{
	return r->n_entries ? r->entries[r->n_entries - 1].term : r->base_term;
}

uint64_t raft_term_at(const struct raft *r, uint64_t index)
{
	if (index == r->base_index)
		return r->base_term;
	if (r->has_snap && index == r->snap.index)
		return r->snap.term;
	if (index < r->base_index || index > raft_last_index(r))
		return 0;
	return r->entries[index - r->base_index - 1].term;
}

const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index)
{
	if (index <= r->base_index || index > raft_last_index(r))
		return NULL;
	return &r->entries[index - r->base_index - 1];
}

bool raft__log_up_to_date(const struct raft *r, uint64_t last_index, uint64_t last_term)
{
	/* §3.6.1: compare the terms of the last entries, then the lengths. */
	uint64_t my_term = raft_last_term(r);
	return last_term > my_term || (last_term == my_term && last_index >= raft_last_index(r));
}

/* raft__append adds one entry at the end of the log (copying data) and
 * applies a configuration entry at once: a server uses the latest
 * configuration in its log, committed or not (§4.1). */
void raft__append(struct raft *r, uint64_t term, uint8_t type, const void *data, size_t len)
{
	if (r->n_entries == r->cap_entries) {
		r->cap_entries = r->cap_entries ? r->cap_entries * 2 : 256;
		r->entries = sp_realloc(r->entries, r->cap_entries * sizeof(*r->entries));
	}
	struct raft_entry *e = &r->entries[r->n_entries++];
	e->term = term;
	e->index = r->base_index + r->n_entries;
	e->type = type;
	e->len = (uint32_t)len;
	uint8_t *copy = NULL;
	if (len) {
		copy = sp_malloc(len);
		memcpy(copy, data, len);
	}
	e->data = copy;
	if (type == RAFT_ENTRY_CONF) {
		struct raft_conf conf;
		if (raft_conf_decode(data, len, &conf) == 0)
			push_conf(r, e->index, &conf);
	}
}

static void free_entry(struct raft_entry *e)
{
	free((void *)e->data);
	e->data = NULL;
}

/* raft__truncate_after drops every entry after index (a follower's
 * conflicting suffix, §3.5) along with the configurations they carried. */
void raft__truncate_after(struct raft *r, uint64_t index)
{
	uint64_t last = raft_last_index(r);
	if (index >= last)
		return;
	for (uint64_t i = index + 1; i <= last; i++)
		free_entry(&r->entries[i - r->base_index - 1]);
	r->n_entries = index - r->base_index;
	while (r->confs.n > 1 && r->confs.v[r->confs.n - 1].index > index)
		r->confs.n--;
	if (r->unstable_from > index + 1) {
		/* Entries already handed out for persistence are now gone. */
		if (r->trunc_after == UINT64_MAX || index < r->trunc_after)
			r->trunc_after = index;
		r->unstable_from = index + 1;
	}
	if (r->stable_index > index)
		r->stable_index = index;
	for (size_t i = 0; i < r->marks.n; i++)
		if (r->marks.v[i].last_index > index)
			r->marks.v[i].last_index = index;
}

/* compact drops entries up to and including index from memory. */
static void compact(struct raft *r, uint64_t index)
{
	if (index <= r->base_index)
		return;
	uint64_t n = index - r->base_index;
	uint64_t term = raft_term_at(r, index);
	for (uint64_t i = 0; i < n; i++)
		free_entry(&r->entries[i]);
	memmove(r->entries, r->entries + n, (r->n_entries - n) * sizeof(*r->entries));
	r->n_entries -= n;
	r->base_index = index;
	r->base_term = term;
}

/* ---- persistence and messages ---- */

/* raft__persist_pending says whether the core holds persist work not yet
 * handed out: a changed hard state, a truncation or new entries. */
bool raft__persist_pending(const struct raft *r)
{
	return r->hs_dirty || r->trunc_after != UINT64_MAX ||
	       r->unstable_from <= raft_last_index(r);
}

/* raft__need_seq is the persist seq that covers everything the core has
 * changed so far: the next one to be handed out when work is pending. */
uint64_t raft__need_seq(const struct raft *r)
{
	return r->seq_assigned + (raft__persist_pending(r) ? 1 : 0);
}

void raft__set_hard_state(struct raft *r, uint64_t term, uint64_t vote)
{
	if (term != r->term || vote != r->vote) {
		r->term = term;
		r->vote = vote;
		r->hs_dirty = true;
	}
}

void raft__send(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg copy = *m;
	copy.from = r->id;
	if (!copy.term)
		copy.term = r->term;
	VEC_PUSH(r->out, copy);
	r->stats.msgs_sent++;
}

/* raft__send_held sends m only once what it promises is durable: a vote
 * promises the persisted vote, an acknowledgement the persisted entries
 * (§3.8: "respond to RPCs" only after updating stable storage). */
void raft__send_held(struct raft *r, const struct raft_msg *m)
{
	uint64_t need = raft__need_seq(r);
	if (need <= r->seq_persisted) {
		raft__send(r, m);
		return;
	}
	struct held_msg h = {.msg = *m, .need_seq = need};
	h.msg.from = r->id;
	if (!h.msg.term)
		h.msg.term = r->term;
	VEC_PUSH(r->held, h);
}

static void release_held(struct raft *r)
{
	size_t keep = 0;
	for (size_t i = 0; i < r->held.n; i++) {
		if (r->held.v[i].need_seq <= r->seq_persisted)
			raft__send(r, &r->held.v[i].msg);
		else
			r->held.v[keep++] = r->held.v[i];
	}
	r->held.n = keep;
}

/* ---- open / close ---- */

static void conf_from_snapshot_or_bootstrap(struct raft *r, const struct raft_restore *rs)
{
	struct conf_at c = {0};
	if (rs->has_snapshot) {
		c.index = rs->snap.index;
		c.conf = rs->snap.conf;
	} else {
		c.index = 0;
		c.conf = rs->bootstrap;
	}
	VEC_PUSH(r->confs, c);
}

int raft_open(struct raft **out, const struct raft_config *cfg, const struct raft_restore *rs,
	      uint64_t now_ms)
{
	if (!cfg->id || !cfg->election_timeout_ms || !cfg->heartbeat_ms ||
	    cfg->heartbeat_ms >= cfg->election_timeout_ms || !cfg->max_entries_per_msg ||
	    !cfg->max_inflight_msgs || cfg->max_inflight_msgs > RAFT_MAX_INFLIGHT ||
	    !cfg->max_snapshot_chunk || !cfg->max_bytes_per_msg)
		return SP_ERR_INVAL;
	uint64_t base = rs->has_snapshot ? rs->snap.index : 0;
	size_t skip = 0;
	for (size_t i = 0; i < rs->n_entries; i++) {
		if (rs->entries[i].index <= base) {
			skip = i + 1;
			continue;
		}
		if (rs->entries[i].index != base + 1 + (i - skip))
			return SP_ERR_INVAL;
	}
	struct raft *r = sp_calloc(1, sizeof(*r));
	r->cfg = *cfg;
	r->id = cfg->id;
	r->rng = cfg->seed ^ 0x5bd1e995;
	r->now = now_ms;
	r->term = rs->hs.term;
	r->vote = rs->hs.vote;
	r->role = RAFT_FOLLOWER;
	r->trunc_after = UINT64_MAX;
	if (rs->has_snapshot) {
		r->snap = rs->snap;
		r->has_snap = true;
		r->base_index = rs->snap.index;
		r->base_term = rs->snap.term;
	}
	conf_from_snapshot_or_bootstrap(r, rs);
	for (size_t i = skip; i < rs->n_entries; i++) {
		const struct raft_entry *e = &rs->entries[i];
		raft__append(r, e->term, e->type, e->data, e->len);
	}
	r->unstable_from = raft_last_index(r) + 1;
	r->stable_index = raft_last_index(r);
	r->commit = rs->hs.commit > raft_last_index(r) ? raft_last_index(r) : rs->hs.commit;
	if (r->commit < base)
		r->commit = base;
	r->applied = base;
	/* A node that just started treats the start as the last time it
	 * heard from a leader: it neither votes for another candidate nor
	 * campaigns for a full election timeout, so a lease that a leader
	 * holds on this node's earlier promise stays sound (§6.4.1). */
	r->last_leader_contact = now_ms;
	raft__reset_election_timer(r);
	r->reported_role = RAFT_FOLLOWER;
	r->reported_term = r->term;
	sp_buf_init(&r->snap_rx_chunk);
	sp_buf_init(&r->snap_rx_taken);
	*out = r;
	return 0;
}

void raft_close(struct raft *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_entries; i++)
		free_entry(&r->entries[i]);
	free(r->entries);
	free(r->confs.v);
	free(r->marks.v);
	free(r->held.v);
	free(r->reads.v);
	free(r->fwd.v);
	free(r->out.v);
	free(r->out_taken.v);
	free(r->ready_reads.v);
	free(r->ready_reads_taken.v);
	sp_buf_free(&r->snap_rx_chunk);
	sp_buf_free(&r->snap_rx_taken);
	free(r);
}

/* ---- events ---- */

void raft_tick(struct raft *r, uint64_t now_ms)
{
	if (now_ms > r->now)
		r->now = now_ms;
	if (r->role == RAFT_LEADER) {
		raft__leader_tick(r);
	} else if (r->now >= r->election_deadline) {
		/* Only voters campaign; a learner or a removed node waits. */
		if (raft__is_voter(r, r->id))
			raft__campaign(r, true, false);
		else
			raft__reset_election_timer(r);
	}
	raft__expire_forwarded(r);
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
	if (m->to != r->id || m->from == RAFT_NONE || m->from == r->id || m->type == 0 ||
	    m->type >= RAFT_MSG__LAST)
		return SP_ERR_INVAL;
	for (uint32_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		struct raft_conf c;
		if (e->type == RAFT_ENTRY_CONF && raft_conf_decode(e->data, e->len, &c) != 0)
			return SP_ERR_INVAL;
		if (e->index != m->prev_index + 1 + i || e->term > m->term)
			return SP_ERR_INVAL;
	}
	bool vote_req = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE;
	if (m->term > r->term) {
		/* Leader stickiness (§4.2.3, with check-quorum §6.2): a node
		 * that heard from a leader within the minimum election timeout
		 * ignores campaigns, unless the leader itself asked for one
		 * (transfer, §3.10). This is also what keeps leases sound. */
		if (vote_req && !m->transfer && raft__in_lease(r))
			return 0;
		if (m->type == RAFT_MSG_PREVOTE) {
			/* A pre-vote changes nothing here (§9.6). */
		} else if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) {
			/* A granted pre-vote carries the candidate's future term. */
		} else {
			bool from_leader = m->type == RAFT_MSG_APPEND ||
					   m->type == RAFT_MSG_SNAPSHOT ||
					   m->type == RAFT_MSG_TIMEOUT_NOW;
			raft__become_follower(r, m->term, from_leader ? m->from : RAFT_NONE);
		}
	} else if (m->term < r->term) {
		/* A stale leader learns of the new term from our answer and steps
		 * down; with pre-vote and check-quorum it would not otherwise. */
		if (m->type == RAFT_MSG_APPEND) {
			struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP,
						.to = m->from,
						.reject = true,
						.index = m->prev_index,
						.hint = raft_last_index(r),
						.ctx = m->ctx};
			raft__send(r, &resp);
		} else if (m->type == RAFT_MSG_SNAPSHOT) {
			struct raft_msg resp = {
			    .type = RAFT_MSG_SNAPSHOT_RESP, .to = m->from, .reject = true};
			raft__send(r, &resp);
		} else if (m->type == RAFT_MSG_PREVOTE) {
			struct raft_msg resp = {
			    .type = RAFT_MSG_PREVOTE_RESP, .to = m->from, .reject = true};
			raft__send(r, &resp);
		}
		return 0;
	}
	switch (m->type) {
	case RAFT_MSG_APPEND:
		raft__step_append(r, m);
		break;
	case RAFT_MSG_APPEND_RESP:
		raft__step_append_resp(r, m);
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		raft__step_vote(r, m);
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		raft__step_vote_resp(r, m);
		break;
	case RAFT_MSG_SNAPSHOT:
		raft__step_snapshot(r, m);
		break;
	case RAFT_MSG_SNAPSHOT_RESP:
		raft__step_snapshot_resp(r, m);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		raft__step_timeout_now(r, m);
		break;
	case RAFT_MSG_READ_INDEX:
		raft__step_read_index(r, m);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		raft__step_read_index_resp(r, m);
		break;
	}
	return 0;
}

int raft_propose(struct raft *r, const void *data, size_t len, uint64_t *index, uint64_t *term)
{
	if (r->role != RAFT_LEADER || r->transferee != RAFT_NONE) {
		r->stats.proposals_refused++;
		return SP_ERR_NOTLEADER;
	}
	if (raft_last_index(r) - r->commit >= r->cfg.max_uncommitted) {
		r->stats.proposals_refused++;
		return SP_ERR_FULL;
	}
	raft__append(r, r->term, RAFT_ENTRY_NORMAL, data, len);
	r->stats.proposals++;
	if (index)
		*index = raft_last_index(r);
	if (term)
		*term = r->term;
	return 0;
}

void raft_persisted(struct raft *r, uint64_t seq)
{
	if (seq <= r->seq_persisted || seq > r->seq_assigned)
		return;
	r->seq_persisted = seq;
	size_t keep = 0;
	for (size_t i = 0; i < r->marks.n; i++) {
		struct seq_mark *mk = &r->marks.v[i];
		if (mk->seq <= seq) {
			if (mk->last_index > r->stable_index)
				r->stable_index = mk->last_index;
		} else {
			r->marks.v[keep++] = *mk;
		}
	}
	r->marks.n = keep;
	if (r->stable_index > raft_last_index(r))
		r->stable_index = raft_last_index(r);
	release_held(r);
	if (r->role == RAFT_LEADER)
		raft__maybe_commit(r);
	else if (r->role == RAFT_CANDIDATE)
		raft__maybe_win(r);
}

int raft_snapshot_saved(struct raft *r, uint64_t index)
{
	if (index > r->applied || (r->has_snap && index < r->snap.index) || index < r->base_index)
		return SP_ERR_INVAL;
	if (r->has_snap && index == r->snap.index)
		return 0;
	/* Read the term and configuration before moving snap.index:
	 * raft_term_at answers from the snapshot for its own index. */
	uint64_t term = raft_term_at(r, index);
	struct raft_conf conf = *raft__conf_at(r, index);
	r->snap.index = index;
	r->snap.term = term;
	r->snap.conf = conf;
	r->has_snap = true;
	/* Keep a trail so slow followers catch up from the log; never drop
	 * what has not been handed out for persistence or made durable. */
	uint64_t to = index > r->cfg.compaction_trail ? index - r->cfg.compaction_trail : 0;
	if (to + 1 > r->unstable_from)
		to = r->unstable_from - 1;
	if (to > r->stable_index)
		to = r->stable_index;
	/* Keep the log after any snapshot being sent, so that a follower that
	 * installs it continues from the log instead of needing yet another
	 * snapshot (which, under steady writes, it might never outrun). */
	if (r->role == RAFT_LEADER)
		for (uint32_t i = 0; i < r->n_prs; i++)
			if (r->prs[i].role && r->prs[i].state == PR_SNAPSHOT &&
			    r->prs[i].snap_meta.index < to)
				to = r->prs[i].snap_meta.index;
	if (to > r->base_index) {
		compact(r, to);
		/* Configurations older than the snapshot's are not needed. */
		size_t first = 0;
		for (size_t i = 0; i < r->confs.n; i++)
			if (r->confs.v[i].index <= r->base_index)
				first = i;
		if (first) {
			memmove(r->confs.v, r->confs.v + first,
				(r->confs.n - first) * sizeof(*r->confs.v));
			r->confs.n -= first;
		}
	}
	return 0;
}

/* ---- the update ---- */

static void note_role(struct raft *r)
{
	if (r->role != r->reported_role || r->term != r->reported_term ||
	    r->leader != r->reported_leader) {
		r->role_changed = true;
		r->reported_role = r->role;
		r->reported_term = r->term;
		r->reported_leader = r->leader;
	}
}

bool raft_take_update(struct raft *r, struct raft_update *u)
{
	memset(u, 0, sizeof(*u));
	u->truncate_after = UINT64_MAX;
	/* What the last update handed out is released now; what was queued
	 * since sits in the accumulating vectors, which are swapped out. */
	r->out_taken.n = 0;
	r->ready_reads_taken.n = 0;
	sp_buf_clear(&r->snap_rx_taken);

	if (r->role == RAFT_LEADER)
		raft__flush_sends(r);

	/* 1. persist */
	uint64_t last = raft_last_index(r);
	if (raft__persist_pending(r)) {
		u->persist_seq = ++r->seq_assigned;
		u->hs_changed = r->hs_dirty;
		u->hs.term = r->term;
		u->hs.vote = r->vote;
		u->hs.commit = r->commit;
		u->truncate_after = r->trunc_after;
		if (r->unstable_from <= last) {
			u->entries = raft_entry_at(r, r->unstable_from);
			u->n_entries = last - r->unstable_from + 1;
		}
		struct seq_mark mk = {.seq = u->persist_seq, .last_index = last};
		VEC_PUSH(r->marks, mk);
		r->hs_dirty = false;
		r->trunc_after = UINT64_MAX;
		r->unstable_from = last + 1;
	}

	/* 2. snapshot chunks received */
	if (r->snap_rx_chunk.len ||
	    (r->snap_rx_active && r->snap_rx_complete && !r->snap_rx_handed)) {
		struct sp_buf t = r->snap_rx_taken;
		r->snap_rx_taken = r->snap_rx_chunk;
		r->snap_rx_chunk = t;
		u->snap_chunk = (const uint8_t *)sp_buf_begin(&r->snap_rx_taken);
		u->snap_chunk_len = (uint32_t)r->snap_rx_taken.len;
		u->snap_offset = r->snap_rx_chunk_offset;
		u->snap_meta = r->snap_rx;
		if (r->snap_rx_complete) {
			u->snap_complete = true;
			r->snap_rx_handed = true; /* wait for raft_snapshot_installed */
		}
		r->snap_rx_chunk_offset += r->snap_rx_taken.len;
	}

	/* 3. messages: everything queued so far is safe to send */
	{
		VEC(struct raft_msg) t;
		memcpy(&t, &r->out_taken, sizeof(t));
		memcpy(&r->out_taken, &r->out, sizeof(t));
		memcpy(&r->out, &t, sizeof(t));
	}
	u->msgs = r->out_taken.v;
	u->n_msgs = r->out_taken.n;

	/* 4. committed entries, up to what is durable here too */
	uint64_t upto = r->commit < r->stable_index ? r->commit : r->stable_index;
	if (upto > r->applied && r->applied >= r->base_index) {
		u->committed = raft_entry_at(r, r->applied + 1);
		u->n_committed = upto - r->applied;
		r->applied = upto;
	}

	/* 5. reads and role */
	if (r->ready_reads.n) {
		/* Swap the two vectors: the taken one stays valid for the caller. */
		VEC(struct raft_read) t;
		memcpy(&t, &r->ready_reads_taken, sizeof(t));
		memcpy(&r->ready_reads_taken, &r->ready_reads, sizeof(t));
		memcpy(&r->ready_reads, &t, sizeof(t));
		u->reads = r->ready_reads_taken.v;
		u->n_reads = r->ready_reads_taken.n;
	}
	note_role(r);
	u->role_changed = r->role_changed;
	r->role_changed = false;
	u->role = r->role;
	u->term = r->term;
	u->leader = r->leader;

	bool any = u->persist_seq || u->snap_chunk_len || u->snap_complete || u->n_msgs ||
		   u->n_committed || u->n_reads || u->role_changed;
	return any;
}

/* ---- views ---- */

enum raft_role raft_role_of(const struct raft *r)
{
	return r->role;
}
uint64_t raft_id(const struct raft *r)
{
	return r->id;
}
uint64_t raft_term(const struct raft *r)
{
	return r->term;
}
uint64_t raft_leader(const struct raft *r)
{
	return r->leader;
}
uint64_t raft_vote(const struct raft *r)
{
	return r->vote;
}
uint64_t raft_commit_index(const struct raft *r)
{
	return r->commit;
}
uint64_t raft_applied_index(const struct raft *r)
{
	return r->applied;
}
uint64_t raft_first_index(const struct raft *r)
{
	return r->base_index + 1;
}
uint64_t raft_snapshot_index(const struct raft *r)
{
	return r->has_snap ? r->snap.index : 0;
}
const struct raft_conf *raft_configuration(const struct raft *r)
{
	return raft__conf(r);
}
int raft_peer_match(const struct raft *r, uint64_t id, uint64_t *match)
{
	if (r->role != RAFT_LEADER)
		return SP_ERR_NOTLEADER;
	for (uint32_t i = 0; i < r->n_prs; i++) {
		if (r->prs[i].role && r->prs[i].id == id && id != r->id) {
			*match = r->prs[i].match;
			return 0;
		}
	}
	return SP_ERR_NOTFOUND;
}

void raft_get_stats(const struct raft *r, struct raft_stats *st)
{
	*st = r->stats;
}
