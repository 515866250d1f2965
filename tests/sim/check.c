/*
 * check: the Raft safety properties, checked after every event.
 *
 * Ongaro's thesis, Figure 3.2, plus what follows from the contract in
 * raft.h. Each check is incremental so that it can run after every event:
 *
 *  - Election safety: at most one leader per term. term_leader[t] records
 *    the first node seen leading term t.
 *  - Leader append-only: a leader never truncates and the entry at the
 *    last index it had as leader keeps its term (checked at every event on
 *    the leader and at every persist it asks for).
 *  - Log matching: (index, term) -> (content hash, previous entry's term)
 *    for every entry any node ever persisted. The same (index, term) with
 *    different content, or with a different predecessor term, is a
 *    violation; by induction over the predecessor chain this covers the
 *    whole prefix. A periodic pairwise comparison of the logs in memory
 *    backs it up.
 *  - Leader completeness: committed[i] records (term, hash) of the entry
 *    committed at i and an upper bound on the term it was committed in
 *    (the observer's term when it first saw it committed). A leader of
 *    term T must hold every entry committed in a term < T: checked when a
 *    node is first seen leading T, and periodically.
 *  - State machine safety: every apply at i must match committed[i], and
 *    the state machine's digest after applying i must match every other
 *    node's digest at i (this also covers snapshots).
 *  - Per node: term and commit never decrease within an incarnation,
 *    applied <= commit, and committed entries are never truncated.
 *  - Reads (§6.4, §6.4.1): a read index must not be below any index known
 *    to be committed when the read arrived, and a leader may serve a lease
 *    read only while no leader of a later term has been elected.
 *  - Durable before acknowledged (raft.h: messages are safe to send): a
 *    granted vote, a successful append acknowledgement and an installed
 *    snapshot's answer may leave only once what they promise is on disk.
 *    Disabled with --no-contract, to see what the end-to-end checks catch
 *    on their own.
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

uint64_t sim_entry_hash(const struct raft_entry *e)
{
	return sim_hash64(e->data, e->len, 0x656e7472ull + e->type);
}

void sim_check_init(struct sim_world *w)
{
	w->cap_term_leader = 64;
	w->term_leader = sp_calloc(w->cap_term_leader, sizeof(*w->term_leader));
	w->cap_committed = 1024;
	w->committed = sp_calloc(w->cap_committed, sizeof(*w->committed));
	w->lm_cap = 4096;
	w->lm = sp_calloc(w->lm_cap, sizeof(*w->lm));
	w->lm_n = 0;
}

void sim_check_free(struct sim_world *w)
{
	free(w->term_leader);
	free(w->committed);
	free(w->lm);
	w->term_leader = NULL;
	w->committed = NULL;
	w->lm = NULL;
}

static struct sim_committed *committed_at(struct sim_world *w, uint64_t index)
{
	if (index >= w->cap_committed) {
		size_t cap = w->cap_committed;
		while (cap <= index)
			cap *= 2;
		w->committed = sp_realloc(w->committed, cap * sizeof(*w->committed));
		memset(w->committed + w->cap_committed, 0,
		       (cap - w->cap_committed) * sizeof(*w->committed));
		w->cap_committed = cap;
	}
	return &w->committed[index];
}

static void record_committed(struct sim_world *w, struct sim_node *n, uint64_t index, uint64_t term,
			     uint64_t hash, uint64_t observer_term)
{
	struct sim_committed *c = committed_at(w, index);
	if (!c->valid) {
		c->valid = true;
		c->term = term;
		c->hash = hash;
		c->commit_term = observer_term;
		if (index > w->max_committed)
			w->max_committed = index;
		w->st.committed++;
		return;
	}
	if (c->term != term || c->hash != hash) {
		sim_fail(
		    w, "state-machine-safety",
		    "index %llu committed as (term %llu, %016llx) but node %llu has (term %llu, "
		    "%016llx) there as committed",
		    (unsigned long long)index, (unsigned long long)c->term,
		    (unsigned long long)c->hash, (unsigned long long)n->id,
		    (unsigned long long)term, (unsigned long long)hash);
		return;
	}
	if (observer_term < c->commit_term)
		c->commit_term = observer_term;
}

void sim_check_leader_completeness(struct sim_world *w, struct sim_node *n)
{
	struct raft *r = n->core;
	uint64_t term = raft_term(r);
	uint64_t snap = raft_snapshot_index(r);
	uint64_t first = raft_first_index(r);
	uint64_t last = raft_last_index(r);
	uint64_t lo = first && first <= snap + 1 ? first : snap + 1;
	if (lo == 0)
		lo = 1;
	for (uint64_t i = lo; i <= w->max_committed; i++) {
		const struct sim_committed *c = &w->committed[i];
		if (!c->valid || c->commit_term >= term)
			continue;
		const struct raft_entry *e = i <= last ? raft_entry_at(r, i) : NULL;
		if (!e) {
			if (i <= snap)
				continue; /* covered by the snapshot */
			sim_fail(
			    w, "leader-completeness",
			    "node %llu leads term %llu without index %llu (term %llu), committed "
			    "in term <= %llu (its log: snapshot %llu, entries %llu..%llu)",
			    (unsigned long long)n->id, (unsigned long long)term,
			    (unsigned long long)i, (unsigned long long)c->term,
			    (unsigned long long)c->commit_term, (unsigned long long)snap,
			    (unsigned long long)first, (unsigned long long)last);
			return;
		}
		if (e->term != c->term || sim_entry_hash(e) != c->hash) {
			sim_fail(
			    w, "leader-completeness",
			    "node %llu leads term %llu with (term %llu) at index %llu where (term "
			    "%llu) was committed in term <= %llu",
			    (unsigned long long)n->id, (unsigned long long)term,
			    (unsigned long long)e->term, (unsigned long long)i,
			    (unsigned long long)c->term, (unsigned long long)c->commit_term);
			return;
		}
	}
}

void sim_check_leader_seen(struct sim_world *w, struct sim_node *n, uint64_t term)
{
	if (term >= w->cap_term_leader) {
		size_t cap = w->cap_term_leader;
		while (cap <= term)
			cap *= 2;
		w->term_leader = sp_realloc(w->term_leader, cap * sizeof(*w->term_leader));
		memset(w->term_leader + w->cap_term_leader, 0,
		       (cap - w->cap_term_leader) * sizeof(*w->term_leader));
		w->cap_term_leader = cap;
	}
	if (w->term_leader[term] == n->id)
		return;
	if (w->term_leader[term] != 0) {
		sim_fail(w, "election-safety", "term %llu has two leaders: node %llu and node %llu",
			 (unsigned long long)term, (unsigned long long)w->term_leader[term],
			 (unsigned long long)n->id);
		return;
	}
	w->term_leader[term] = n->id;
	if (term > w->max_leader_term)
		w->max_leader_term = term;
	w->st.leader_changes++;
	SIM_TRACE(w, "node %llu leads term %llu", (unsigned long long)n->id,
		  (unsigned long long)term);
	sim_nemesis_spring(w, n, TRAP_ELECTED);
	sim_check_leader_completeness(w, n);
}

void sim_check_node(struct sim_world *w, struct sim_node *n)
{
	if (!n->up)
		return;
	struct raft *r = n->core;
	uint64_t term = raft_term(r);
	uint64_t commit = raft_commit_index(r);
	if (term < n->ck_term)
		sim_fail(w, "term-regress", "node %llu: term went from %llu to %llu",
			 (unsigned long long)n->id, (unsigned long long)n->ck_term,
			 (unsigned long long)term);
	if (commit < n->ck_commit)
		sim_fail(w, "commit-regress", "node %llu: commit index went from %llu to %llu",
			 (unsigned long long)n->id, (unsigned long long)n->ck_commit,
			 (unsigned long long)commit);
	if (raft_applied_index(r) > commit || n->kv.applied > commit)
		sim_fail(w, "applied-beyond-commit",
			 "node %llu: applied %llu (core %llu) > commit %llu",
			 (unsigned long long)n->id, (unsigned long long)n->kv.applied,
			 (unsigned long long)raft_applied_index(r), (unsigned long long)commit);
	if (commit > n->ck_commit && raft_role_of(r) == RAFT_LEADER)
		sim_nemesis_spring(w, n, TRAP_COMMIT);
	n->ck_term = term;
	n->ck_commit = commit;

	enum raft_role role = raft_role_of(r);
	uint64_t last = raft_last_index(r);
	if (role == RAFT_LEADER) {
		sim_check_leader_seen(w, n, term);
		if (n->ck_lead_term == term) {
			uint64_t t = raft_term_at(r, n->ck_lead_idx);
			if (last < n->ck_lead_idx ||
			    (n->ck_lead_idx >= raft_first_index(r) && t != n->ck_lead_idx_term))
				sim_fail(
				    w, "leader-append-only",
				    "node %llu, leader of term %llu, had (%llu, term %llu) and "
				    "now has last index %llu, term %llu there",
				    (unsigned long long)n->id, (unsigned long long)term,
				    (unsigned long long)n->ck_lead_idx,
				    (unsigned long long)n->ck_lead_idx_term,
				    (unsigned long long)last, (unsigned long long)t);
		}
		n->ck_lead_term = term;
		n->ck_lead_idx = last;
		n->ck_lead_idx_term = raft_last_term(r);
	} else {
		n->ck_lead_term = 0;
	}

	/* Entries this node holds up to its commit index are committed. */
	uint64_t hi = commit < last ? commit : last;
	uint64_t i = n->ck_commit_recorded + 1;
	uint64_t first = raft_first_index(r);
	if (i < first)
		i = first;
	for (; i <= hi; i++) {
		const struct raft_entry *e = raft_entry_at(r, i);
		if (e)
			record_committed(w, n, i, e->term, sim_entry_hash(e), term);
	}
	if (hi > n->ck_commit_recorded)
		n->ck_commit_recorded = hi;
}

/* ---- log matching ---- */

static size_t lm_slot(const struct sim_world *w, uint64_t index, uint64_t term)
{
	return (size_t)(sim_mix64(index * 0x9e3779b97f4a7c15ull ^ term) & (w->lm_cap - 1));
}

static struct sim_lm_slot *lm_find(struct sim_world *w, uint64_t index, uint64_t term, bool add)
{
	size_t i = lm_slot(w, index, term);
	while (w->lm[i].index) {
		if (w->lm[i].index == index && w->lm[i].term == term)
			return &w->lm[i];
		i = (i + 1) & (w->lm_cap - 1);
	}
	if (!add)
		return NULL;
	if (2 * (w->lm_n + 1) > w->lm_cap) {
		struct sim_lm_slot *old = w->lm;
		size_t old_cap = w->lm_cap;
		w->lm_cap *= 2;
		w->lm = sp_calloc(w->lm_cap, sizeof(*w->lm));
		for (size_t k = 0; k < old_cap; k++) {
			if (!old[k].index)
				continue;
			size_t j = lm_slot(w, old[k].index, old[k].term);
			while (w->lm[j].index)
				j = (j + 1) & (w->lm_cap - 1);
			w->lm[j] = old[k];
		}
		free(old);
		return lm_find(w, index, term, true);
	}
	w->lm[i].index = index;
	w->lm[i].term = term;
	w->lm_n++;
	return &w->lm[i];
}

void sim_check_persist_entry(struct sim_world *w, struct sim_node *n, const struct raft_entry *e,
			     uint64_t prev_term)
{
	uint64_t h = sim_entry_hash(e);
	if (e->index == 0 || e->term == 0) {
		sim_fail(w, "log-matching", "node %llu persists an entry with index %llu term %llu",
			 (unsigned long long)n->id, (unsigned long long)e->index,
			 (unsigned long long)e->term);
		return;
	}
	if (e->index > 1 && prev_term > e->term) {
		sim_fail(w, "log-matching",
			 "node %llu: entry %llu has term %llu below its predecessor's %llu",
			 (unsigned long long)n->id, (unsigned long long)e->index,
			 (unsigned long long)e->term, (unsigned long long)prev_term);
		return;
	}
	struct sim_lm_slot *s = lm_find(w, e->index, e->term, false);
	if (!s) {
		s = lm_find(w, e->index, e->term, true);
		s->hash = h;
		s->prev_term = prev_term;
		return;
	}
	if (s->hash != h) {
		sim_fail(w, "log-matching",
			 "node %llu persists (%llu, term %llu) with content %016llx; another node "
			 "had %016llx",
			 (unsigned long long)n->id, (unsigned long long)e->index,
			 (unsigned long long)e->term, (unsigned long long)h,
			 (unsigned long long)s->hash);
		return;
	}
	if (prev_term && s->prev_term && prev_term != s->prev_term) {
		sim_fail(w, "log-matching",
			 "node %llu has (%llu, term %llu) after an entry of term %llu; another "
			 "node has it after term %llu",
			 (unsigned long long)n->id, (unsigned long long)e->index,
			 (unsigned long long)e->term, (unsigned long long)prev_term,
			 (unsigned long long)s->prev_term);
		return;
	}
	if (!s->prev_term)
		s->prev_term = prev_term;
}

void sim_check_truncate(struct sim_world *w, struct sim_node *n, uint64_t after)
{
	struct raft *r = n->core;
	if (raft_role_of(r) == RAFT_LEADER && n->ck_lead_term == raft_term(r) &&
	    after < n->ck_lead_idx)
		sim_fail(
		    w, "leader-append-only",
		    "node %llu, leader of term %llu, truncates its log after %llu (it had %llu)",
		    (unsigned long long)n->id, (unsigned long long)raft_term(r),
		    (unsigned long long)after, (unsigned long long)n->ck_lead_idx);
	if (after < n->ck_commit)
		sim_fail(w, "state-machine-safety",
			 "node %llu truncates its log after %llu below its commit index %llu",
			 (unsigned long long)n->id, (unsigned long long)after,
			 (unsigned long long)n->ck_commit);
}

void sim_check_apply(struct sim_world *w, struct sim_node *n, const struct raft_entry *e)
{
	record_committed(w, n, e->index, e->term, sim_entry_hash(e), raft_term(n->core));
	struct sim_committed *c = committed_at(w, e->index);
	if (!c->has_digest) {
		c->has_digest = true;
		c->digest = n->kv.digest;
	} else if (c->digest != n->kv.digest) {
		sim_fail(w, "state-machine-safety",
			 "node %llu's state after applying %llu differs from another node's",
			 (unsigned long long)n->id, (unsigned long long)e->index);
	}
}

void sim_check_snapshot_loaded(struct sim_world *w, struct sim_node *n)
{
	struct sim_committed *c = committed_at(w, n->kv.applied);
	if (!c->has_digest) {
		c->has_digest = true;
		c->digest = n->kv.digest;
	} else if (c->digest != n->kv.digest) {
		sim_fail(w, "state-machine-safety",
			 "node %llu's state from snapshot %llu differs from what others applied",
			 (unsigned long long)n->id, (unsigned long long)n->kv.applied);
	}
}

void sim_check_send(struct sim_world *w, struct sim_node *n, const struct raft_msg *m)
{
	if (!w->opts->contract)
		return;
	const struct sim_disk *d = &n->disk;
	switch (m->type) {
	case RAFT_MSG_VOTE_RESP:
		if (m->reject)
			return;
		/* A durable later term also makes the vote safe: the node
		 * can never vote in m->term again. */
		if (d->hs.term < m->term || (d->hs.term == m->term && d->hs.vote != m->to))
			sim_fail(
			    w, "vote-not-durable",
			    "node %llu grants its vote to %llu in term %llu while its disk holds "
			    "term %llu vote %llu",
			    (unsigned long long)n->id, (unsigned long long)m->to,
			    (unsigned long long)m->term, (unsigned long long)d->hs.term,
			    (unsigned long long)d->hs.vote);
		return;
	case RAFT_MSG_APPEND_RESP: {
		if (m->reject)
			return;
		uint64_t i = m->index;
		if (d->hs.term < m->term) {
			sim_fail(
			    w, "ack-not-durable",
			    "node %llu acknowledges in term %llu while its disk holds term %llu",
			    (unsigned long long)n->id, (unsigned long long)m->term,
			    (unsigned long long)d->hs.term);
			return;
		}
		/* A held answer released after the node moved to a later
		 * term is stale (the leader ignores it), and the log may
		 * since have changed under the later leader: only an answer
		 * of the current term says something about today's log. */
		if (raft_term(n->core) > m->term || d->hs.term > m->term)
			return;
		if (i <= sim_disk_snap_index(d))
			return;
		uint64_t dt = sim_disk_term_at(d, i);
		uint64_t mt = raft_term_at(n->core, i);
		if (dt == 0 || dt != mt)
			sim_fail(
			    w, "ack-not-durable",
			    "node %llu acknowledges index %llu (term %llu) to %llu but its disk "
			    "holds %s (durable last %llu)",
			    (unsigned long long)n->id, (unsigned long long)i,
			    (unsigned long long)mt, (unsigned long long)m->to,
			    dt ? "another term there" : "no such entry",
			    (unsigned long long)sim_disk_last(d));
		return;
	}
	case RAFT_MSG_SNAPSHOT_RESP:
		if (m->reject || !m->last)
			return;
		if (sim_disk_snap_index(d) < raft_snapshot_index(n->core))
			sim_fail(w, "ack-not-durable",
				 "node %llu reports snapshot %llu installed; its disk has %llu",
				 (unsigned long long)n->id,
				 (unsigned long long)raft_snapshot_index(n->core),
				 (unsigned long long)sim_disk_snap_index(d));
		return;
	default:
		return;
	}
}

/* Compare two logs in memory over the indices both hold: from the highest
 * index where they agree on the term, everything below must be equal. */
static void compare_logs(struct sim_world *w, struct sim_node *a, struct sim_node *b)
{
	uint64_t lo_a = raft_first_index(a->core), lo_b = raft_first_index(b->core);
	uint64_t hi_a = raft_last_index(a->core), hi_b = raft_last_index(b->core);
	uint64_t lo = lo_a > lo_b ? lo_a : lo_b, hi = hi_a < hi_b ? hi_a : hi_b;
	if (lo == 0)
		lo = 1;
	bool matched = false;
	for (uint64_t i = hi; i >= lo && i > 0; i--) {
		const struct raft_entry *ea = raft_entry_at(a->core, i);
		const struct raft_entry *eb = raft_entry_at(b->core, i);
		if (!ea || !eb)
			break;
		if (!matched && ea->term != eb->term)
			continue;
		matched = true;
		if (ea->term != eb->term || ea->type != eb->type || ea->len != eb->len ||
		    (ea->len && memcmp(ea->data, eb->data, ea->len))) {
			sim_fail(w, "log-matching",
				 "nodes %llu and %llu agree at a later index but differ at %llu "
				 "(terms %llu and %llu)",
				 (unsigned long long)a->id, (unsigned long long)b->id,
				 (unsigned long long)i, (unsigned long long)ea->term,
				 (unsigned long long)eb->term);
			return;
		}
	}
}

void sim_check_periodic(struct sim_world *w)
{
	for (uint32_t i = 1; i <= w->n_ids; i++) {
		struct sim_node *a = &w->nodes[i];
		if (!a->up)
			continue;
		if (raft_role_of(a->core) == RAFT_LEADER)
			sim_check_leader_completeness(w, a);
		for (uint32_t j = i + 1; j <= w->n_ids; j++) {
			struct sim_node *b = &w->nodes[j];
			if (b->up)
				compare_logs(w, a, b);
		}
	}
}

void sim_check_read_index(struct sim_world *w, struct sim_node *n, uint64_t index, uint64_t floor,
			  bool lease)
{
	if (index < floor)
		sim_fail(w, "read-index",
			 "node %llu: %s read at index %llu, but %llu was committed before the read "
			 "arrived",
			 (unsigned long long)n->id, lease ? "lease" : "ReadIndex",
			 (unsigned long long)index, (unsigned long long)floor);
	if (lease && w->max_leader_term > raft_term(n->core))
		sim_fail(
		    w, "lease-safety",
		    "node %llu serves a lease read in term %llu after node %llu was elected for "
		    "term %llu",
		    (unsigned long long)n->id, (unsigned long long)raft_term(n->core),
		    (unsigned long long)w->term_leader[w->max_leader_term],
		    (unsigned long long)w->max_leader_term);
}
