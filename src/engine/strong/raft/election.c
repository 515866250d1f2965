/*
 * election: roles, pre-vote (§9.6), voting (§3.4, §3.6.1) and leader
 * stickiness (§4.2.3). Becoming leader lives in replication.c.
 */
#include "engine/strong/raft/raft_int.h"

#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

/* raft__in_lease says whether this node still honours a leader: it heard
 * from one less than the minimum election timeout ago (or is the leader).
 * Such a node ignores campaigns, which is what stops a partitioned node
 * from disrupting a healthy cluster (§4.2.3) and what leader leases rest
 * on (§6.4.1). */
bool raft__in_lease(const struct raft *r)
{
	if (r->role == RAFT_LEADER)
		return true;
	return r->now < r->last_leader_contact + r->cfg.election_timeout_ms;
}

static void fail_forwarded(struct raft *r)
{
	for (size_t i = 0; i < r->fwd.n; i++) {
		struct raft_read rd = {.id = r->fwd.v[i].id, .err = SP_ERR_NOTLEADER};
		VEC_PUSH(r->ready_reads, rd);
	}
	r->fwd.n = 0;
}

void raft__become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
	bool was_leader = r->role == RAFT_LEADER;
	if (term > r->term)
		raft__set_hard_state(r, term, RAFT_NONE);
	if (was_leader) {
		raft__fail_reads(r);
		r->transferee = RAFT_NONE;
		r->lease_until = 0;
	}
	if (leader != r->leader)
		fail_forwarded(r);
	r->role = RAFT_FOLLOWER;
	r->leader = leader;
	if (leader != RAFT_NONE)
		r->last_leader_contact = r->now;
	r->n_votes = 0;
	raft__reset_election_timer(r);
}

static void send_to_voters(struct raft *r, const struct raft_msg *tmpl)
{
	const struct raft_conf *c = raft__conf(r);
	for (uint32_t i = 0; i < c->n; i++) {
		if (c->members[i].id == r->id || c->members[i].role != RAFT_VOTER)
			continue;
		struct raft_msg m = *tmpl;
		m.to = c->members[i].id;
		raft__send(r, &m);
	}
}

/*
 * raft__campaign starts a pre-vote (§9.6: ask whether an election could be
 * won, at term+1, without changing any state) or a real election (§3.4:
 * increment the term, vote for self, request votes). transfer marks an
 * election asked for by the leader (§3.10), which voters grant even while
 * they still hear from it.
 */
void raft__campaign(struct raft *r, bool prevote, bool transfer)
{
	if (r->role == RAFT_LEADER)
		raft__fail_reads(r);
	fail_forwarded(r);
	r->leader = RAFT_NONE;
	r->n_votes = 0;
	r->transferee = RAFT_NONE;
	r->lease_until = 0;
	raft__reset_election_timer(r);
	struct raft_msg m = {
	    .index = raft_last_index(r), .log_term = raft_last_term(r), .transfer = transfer};
	if (prevote) {
		r->role = RAFT_PRECANDIDATE;
		r->stats.prevotes_started++;
		m.type = RAFT_MSG_PREVOTE;
		m.term = r->term + 1;
	} else {
		r->role = RAFT_CANDIDATE;
		r->stats.elections_started++;
		raft__set_hard_state(r, r->term + 1, r->id);
		/* The candidate's own vote counts only once it is durable:
		 * otherwise a crash could let it vote again in this term. */
		r->self_vote_seq = raft__need_seq(r);
		m.type = RAFT_MSG_VOTE;
		m.term = r->term;
	}
	send_to_voters(r, &m);
	raft__maybe_win(r);
}

static bool already_voted(const struct raft *r, uint64_t id)
{
	for (uint32_t i = 0; i < r->n_votes; i++)
		if (r->votes_granted[i] == id)
			return true;
	return false;
}

/* raft__maybe_win counts votes: a majority of the voters of the current
 * configuration (§3.4, §4.1). */
void raft__maybe_win(struct raft *r)
{
	uint32_t voters = raft__n_voters(r);
	uint32_t have = r->n_votes;
	if (raft__is_voter(r, r->id)) {
		if (r->role == RAFT_PRECANDIDATE ||
		    (r->role == RAFT_CANDIDATE && r->seq_persisted >= r->self_vote_seq))
			have++;
	}
	if (have < voters / 2 + 1)
		return;
	if (r->role == RAFT_PRECANDIDATE)
		raft__campaign(r, false, false);
	else if (r->role == RAFT_CANDIDATE)
		raft__become_leader(r);
}

/*
 * raft__step_vote answers VOTE and PREVOTE. A vote is granted to a
 * candidate whose log is at least as up to date as ours (§3.6.1) when we
 * have not voted for another in this term; it is persisted before the
 * answer leaves (§3.8). A pre-vote is granted on the same log test, when
 * its term is beyond ours, and changes nothing here.
 */
void raft__step_vote(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = {.to = m->from};
	bool log_ok = raft__log_up_to_date(r, m->index, m->log_term);
	if (m->type == RAFT_MSG_PREVOTE) {
		resp.type = RAFT_MSG_PREVOTE_RESP;
		bool grant = m->term > r->term && log_ok;
		resp.reject = !grant;
		resp.term = grant ? m->term : r->term;
		raft__send(r, &resp);
		return;
	}
	resp.type = RAFT_MSG_VOTE_RESP;
	bool grant =
	    (r->vote == RAFT_NONE || r->vote == m->from) && log_ok && r->role == RAFT_FOLLOWER;
	resp.reject = !grant;
	if (!grant) {
		raft__send(r, &resp);
		return;
	}
	raft__set_hard_state(r, r->term, m->from);
	raft__reset_election_timer(r);
#if RAFT_CANARY == RAFT_CANARY_VOTE_BEFORE_PERSIST
	raft__send(r, &resp);
#else
	raft__send_held(r, &resp);
#endif
}

void raft__step_vote_resp(struct raft *r, const struct raft_msg *m)
{
	if (m->type == RAFT_MSG_PREVOTE_RESP) {
		if (r->role != RAFT_PRECANDIDATE || m->term != r->term + 1 || m->reject)
			return;
	} else {
		if (r->role != RAFT_CANDIDATE || m->term != r->term || m->reject)
			return;
	}
	if (!raft__is_voter(r, m->from) || already_voted(r, m->from))
		return;
	if (r->n_votes < RAFT_MAX_MEMBERS)
		r->votes_granted[r->n_votes++] = m->from;
	raft__maybe_win(r);
}
