/*
 * membership: single-server configuration changes (§4.1-§4.2) and
 * leadership transfer (§3.10).
 *
 * A configuration takes effect as soon as its entry is in a server's log
 * (§4.1); the leader allows one change at a time, only once the previous
 * one has committed and once an entry of its own term has committed (the
 * fix to single-server changes described on raft-dev in 2015). A new
 * server joins as a learner that receives the log but neither votes nor
 * counts; the leader promotes it to voter once it has caught up (§4.2.1),
 * so adding a server never leaves the cluster waiting on a node that
 * holds nothing. A leader that removes itself keeps leading until the
 * change commits, without counting itself, then steps down (§4.2.2).
 */
#include "engine/strong/raft/raft_int.h"

#include <string.h>

#include "common/err.h"

static int can_change(const struct raft *r)
{
	if (r->role != RAFT_LEADER || r->transferee != RAFT_NONE)
		return SP_ERR_NOTLEADER;
	if (r->commit < r->term_start_index || r->confs.v[r->confs.n - 1].index > r->commit)
		return SP_ERR_AGAIN;
	return 0;
}

static void propose_conf(struct raft *r, const struct raft_conf *conf)
{
	struct sp_buf b;
	sp_buf_init(&b);
	raft_conf_encode(conf, &b);
	raft__append(r, r->term, RAFT_ENTRY_CONF, sp_buf_begin(&b), b.len);
	sp_buf_free(&b);
}

int raft_add_server(struct raft *r, uint64_t id)
{
	int rc = can_change(r);
	if (rc)
		return rc;
	if (id == RAFT_NONE)
		return SP_ERR_INVAL;
	struct raft_conf c = *raft__conf(r);
	if (raft_conf_role(&c, id))
		return SP_ERR_EXISTS;
	if (c.n >= RAFT_MAX_MEMBERS)
		return SP_ERR_INVAL;
	c.members[c.n].id = id;
	c.members[c.n].role = RAFT_LEARNER;
	c.n++;
	propose_conf(r, &c);
	return 0;
}

int raft_remove_server(struct raft *r, uint64_t id)
{
	int rc = can_change(r);
	if (rc)
		return rc;
	struct raft_conf c = *raft__conf(r);
	uint32_t voters = 0, at = c.n;
	for (uint32_t i = 0; i < c.n; i++) {
		voters += c.members[i].role == RAFT_VOTER;
		if (c.members[i].id == id)
			at = i;
	}
	if (at == c.n)
		return SP_ERR_NOTFOUND;
	if (c.members[at].role == RAFT_VOTER && voters == 1)
		return SP_ERR_INVAL; /* the last voter */
	c.members[at] = c.members[c.n - 1];
	c.n--;
	propose_conf(r, &c);
	return 0;
}

/* raft__maybe_promote: a learner that has caught up becomes a voter. */
void raft__maybe_promote(struct raft *r, struct progress *pr)
{
	if (pr->role != RAFT_LEARNER || can_change(r))
		return;
	if (pr->match + r->cfg.catchup_entries < raft_last_index(r))
		return;
	struct raft_conf c = *raft__conf(r);
	for (uint32_t i = 0; i < c.n; i++)
		if (c.members[i].id == pr->id)
			c.members[i].role = RAFT_VOTER;
	propose_conf(r, &c);
}

void raft__after_commit_conf(struct raft *r)
{
	if (r->role != RAFT_LEADER)
		return;
	if (r->confs.v[r->confs.n - 1].index <= r->commit &&
	    !raft_conf_role(raft__conf(r), r->id)) {
		/* §4.2.2: a removed leader steps down once the change commits. */
		raft__become_follower(r, r->term, RAFT_NONE);
		return;
	}
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].role == RAFT_LEARNER) {
			raft__maybe_promote(r, &r->prs[i]);
			break;
		}
}

/*
 * raft_transfer_leadership (§3.10): stop accepting proposals, bring the
 * target's log up to date, then tell it to campaign at once. The leader
 * gives up after an election timeout. Once it has sent TIMEOUT_NOW it
 * serves no lease reads for the rest of its term: the target's campaign
 * is granted by voters that still honour this leader.
 */
int raft_transfer_leadership(struct raft *r, uint64_t id)
{
	if (r->role != RAFT_LEADER)
		return SP_ERR_NOTLEADER;
	if (r->transferee != RAFT_NONE)
		return SP_ERR_AGAIN;
	if (id == RAFT_NONE) {
		uint64_t best = 0;
		for (uint32_t i = 0; i < r->n_prs; i++)
			if (r->prs[i].role == RAFT_VOTER && (!id || r->prs[i].match > best)) {
				id = r->prs[i].id;
				best = r->prs[i].match;
			}
		if (id == RAFT_NONE)
			return SP_ERR_NOTFOUND;
	}
	if (id == r->id)
		return SP_ERR_INVAL;
	struct progress *pr = raft__progress(r, id);
	if (!pr || pr->role != RAFT_VOTER)
		return SP_ERR_NOTFOUND;
	r->transferee = id;
	r->transfer_deadline = r->now + r->cfg.election_timeout_ms;
	r->lease_until = 0;
	r->stats.transfers++;
	raft__maybe_transfer(r, pr);
	return 0;
}

void raft__maybe_transfer(struct raft *r, struct progress *pr)
{
	if (r->transferee != pr->id || pr->match != raft_last_index(r))
		return;
	struct raft_msg m = {.type = RAFT_MSG_TIMEOUT_NOW, .to = pr->id};
	raft__send(r, &m);
	r->timeout_now_sent = true;
	r->lease_until = 0;
}

void raft__step_timeout_now(struct raft *r, const struct raft_msg *m)
{
	if (r->role == RAFT_LEADER || m->from != r->leader || !raft__is_voter(r, r->id))
		return;
	raft__campaign(r, false, true);
}
