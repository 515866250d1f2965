/*
 * nemesis: the faults of a run.
 *
 * At random intervals (a per-seed mean) it picks one action by per-seed
 * weights, so that different seeds stress different mixes ("swarm
 * testing", Groce et al. 2012): crash a node now or at its next persist
 * (while its writes are unsynced, which is where durability bugs show),
 * partition the network into one of net.c's shapes, pause a node (a GC
 * pause: no ticks, no deliveries), change a node's clock rate within the
 * drift bound, transfer leadership (§3.10), or add or remove a server
 * (§4.2.1), or set a trap that strikes the leader at a precise moment
 * (see set_trap). It draws only from its own PRNG.
 */
#include "sim.h"

#include <string.h>

#include "common/err.h"

static size_t live_ids(struct sim_world *w, uint64_t *ids, bool only_up)
{
	size_t k = 0;
	for (uint32_t i = 1; i <= w->n_ids; i++) {
		struct sim_node *n = &w->nodes[i];
		if (n->exists && !n->removed && (!only_up || n->up))
			ids[k++] = i;
	}
	return k;
}

static struct sim_node *pick_up(struct sim_world *w, double p_leader)
{
	struct sim_node *l = sim_leader(w);
	if (l && sim_rng_chance(&w->rng_nem, p_leader))
		return l;
	uint64_t ids[SIM_MAX_NODES];
	size_t k = live_ids(w, ids, true);
	return k ? &w->nodes[ids[sim_rng_below(&w->rng_nem, k)]] : NULL;
}

static void crash(struct sim_world *w)
{
	uint64_t all[SIM_MAX_NODES], up[SIM_MAX_NODES];
	size_t n_all = live_ids(w, all, false), n_up = live_ids(w, up, true);
	/* Keep at least one node running; more often a majority. */
	if (n_up <= 1 || (n_all - n_up >= n_all / 2 && sim_rng_chance(&w->rng_nem, 0.7)))
		return;
	struct sim_node *n = pick_up(w, 0.4);
	if (!n)
		return;
	/* Half the time prefer a node with writes not yet synced: that is
	 * where a missing fsync before an answer shows. */
	if (sim_rng_chance(&w->rng_nem, 0.5)) {
		uint64_t dirty[SIM_MAX_NODES];
		size_t k = 0;
		for (size_t i = 0; i < n_up; i++)
			if (sim_node_has_unsynced(&w->nodes[up[i]]))
				dirty[k++] = up[i];
		if (k)
			n = &w->nodes[dirty[sim_rng_below(&w->rng_nem, k)]];
	}
	if (sim_rng_chance(&w->rng_nem, w->p.p_arm_crash)) {
		SIM_TRACE(w, "nemesis: crash node %llu at its next persist",
			  (unsigned long long)n->id);
		n->crash_armed = true;
		return;
	}
	SIM_TRACE(w, "nemesis: crash node %llu", (unsigned long long)n->id);
	sim_node_crash(w, n, false);
	uint64_t down = sim_rng_logrange(&w->rng_nem, 5 * SIM_MS, 3 * SIM_S);
	struct sim_event ev = {0};
	ev.time = w->now + down;
	ev.type = EV_RESTART;
	ev.node = (uint32_t)n->id;
	ev.inc = n->inc;
	sim_heap_push(&w->heap, &ev);
}

static void partition(struct sim_world *w)
{
	uint64_t ids[SIM_MAX_NODES];
	size_t k = live_ids(w, ids, false);
	/* Isolating the leader is the most telling shape (leases,
	 * check-quorum, elections), so it is drawn most often. */
	static const int shapes[] = {SHAPE_ISOLATE, SHAPE_ISOLATE, SHAPE_ISOLATE, SHAPE_SPLIT,
				     SHAPE_SPLIT,   SHAPE_BRIDGE,  SHAPE_RING,	  SHAPE_ONEWAY};
	int shape = shapes[sim_rng_below(&w->rng_nem, sizeof(shapes) / sizeof(shapes[0]))];
	struct sim_node *l = sim_leader(w);
	uint64_t focus = 0;
	if ((shape == SHAPE_ISOLATE || shape == SHAPE_ONEWAY || shape == SHAPE_BRIDGE) && l &&
	    sim_rng_chance(&w->rng_nem, 0.8))
		focus = l->id;
	if (focus && shape == SHAPE_ISOLATE && w->p.w_clock && sim_rng_chance(&w->rng_nem, 0.5)) {
		/* Cut the leader off with its clock slow and the others'
		 * fast: the case a lease's drift bound is there for. */
		int64_t d = w->p.drift_actual_ppm;
		for (size_t i = 0; i < k; i++)
			sim_set_drift(w, &w->nodes[ids[i]], ids[i] == focus ? -d : d);
		SIM_TRACE(w, "nemesis: clocks skewed against leader %llu (%lld ppm)",
			  (unsigned long long)focus, (long long)d);
	}
	sim_net_partition(w, shape, ids, k, focus, &w->rng_nem);
	w->partition_gen++;
	w->st.partitions++;
	uint64_t len = sim_rng_logrange(&w->rng_nem, 50 * SIM_MS, 4 * SIM_S);
	SIM_TRACE(w, "nemesis: partition %s (focus %llu) for %.3f s", sim_shape_name(shape),
		  (unsigned long long)focus, (double)len / 1e6);
	if (w->opts->trace) {
		for (size_t i = 0; i < k; i++)
			for (size_t j = 0; j < k; j++)
				if (w->blocked[ids[i]][ids[j]])
					sim_trace(w, "  blocked %llu -> %llu",
						  (unsigned long long)ids[i],
						  (unsigned long long)ids[j]);
	}
	sim_schedule(w, w->now + len, EV_HEAL, 0, w->partition_gen, 0);
}

void sim_nemesis_heal(struct sim_world *w, uint64_t gen)
{
	if (gen != w->partition_gen || w->phase != PHASE_FAULTS)
		return;
	SIM_TRACE(w, "nemesis: heal");
	sim_net_heal(w);
}

static void pause_node(struct sim_world *w)
{
	struct sim_node *n = pick_up(w, 0.5);
	if (!n || n->paused_until > w->now)
		return;
	uint64_t len = sim_rng_logrange(&w->rng_nem, 10 * SIM_MS, SIM_S);
	n->paused_until = w->now + len;
	w->st.pauses++;
	SIM_TRACE(w, "nemesis: pause node %llu for %.3f s", (unsigned long long)n->id,
		  (double)len / 1e6);
}

static void clock_change(struct sim_world *w)
{
	uint64_t ids[SIM_MAX_NODES];
	size_t k = live_ids(w, ids, false);
	if (!k)
		return;
	int64_t d = w->p.drift_actual_ppm;
	struct sim_node *l = sim_leader(w);
	if (l && sim_rng_chance(&w->rng_nem, 0.5)) {
		/* The worst case for leases (§6.4.1): the leader's clock runs
		 * slow, everyone else's fast, so the leader's lease lasts as
		 * long as possible in real time and the others' election
		 * timers as little. */
		SIM_TRACE(w, "nemesis: clocks skewed against leader %llu (%lld ppm)",
			  (unsigned long long)l->id, (long long)d);
		for (size_t i = 0; i < k; i++)
			sim_set_drift(w, &w->nodes[ids[i]], ids[i] == l->id ? -d : d);
		return;
	}
	struct sim_node *n = &w->nodes[ids[sim_rng_below(&w->rng_nem, k)]];
	int64_t ppm = (int64_t)sim_rng_range(&w->rng_nem, 0, (uint64_t)(2 * d)) - d;
	if (sim_rng_chance(&w->rng_nem, 0.4))
		ppm = sim_rng_chance(&w->rng_nem, 0.5) ? d : -d;
	SIM_TRACE(w, "nemesis: node %llu clock rate %+lld ppm", (unsigned long long)n->id,
		  (long long)ppm);
	sim_set_drift(w, n, ppm);
}

static void transfer(struct sim_world *w)
{
	struct sim_node *l = sim_leader(w);
	if (!l)
		return;
	const struct raft_conf *conf = raft_configuration(l->core);
	uint64_t target = RAFT_NONE;
	if (conf->n > 1 && sim_rng_chance(&w->rng_nem, 0.7)) {
		uint32_t i = (uint32_t)sim_rng_below(&w->rng_nem, conf->n);
		if (conf->members[i].id != l->id)
			target = conf->members[i].id;
	}
	int rc = raft_transfer_leadership(l->core, target);
	SIM_TRACE(w, "nemesis: node %llu transfers leadership to %llu: %s",
		  (unsigned long long)l->id, (unsigned long long)target,
		  rc ? sp_strerror(rc) : "ok");
	if (rc == 0)
		w->st.transfers++;
	sim_node_drain(w, l);
	sim_check_node(w, l);
}

static void membership(struct sim_world *w)
{
	struct sim_node *l = sim_leader(w);
	if (!l)
		return;
	const struct raft_conf *conf = raft_configuration(l->core);
	uint32_t voters = 0;
	for (uint32_t i = 0; i < conf->n; i++)
		voters += conf->members[i].role == RAFT_VOTER;
	bool can_add = w->n_ids < SIM_MAX_NODES && conf->n < 7;
	bool can_remove = voters > 3 || conf->n > voters;
	if (!can_add && !can_remove)
		return;
	if (can_remove && (!can_add || sim_rng_chance(&w->rng_nem, 0.5))) {
		uint64_t id = conf->members[sim_rng_below(&w->rng_nem, conf->n)].id;
		/* Keep at least three voters. */
		if (raft_conf_role(conf, id) == RAFT_VOTER && voters <= 3)
			return;
		int rc = raft_remove_server(l->core, id);
		SIM_TRACE(w, "nemesis: node %llu removes %llu: %s", (unsigned long long)l->id,
			  (unsigned long long)id, rc ? sp_strerror(rc) : "ok");
		if (rc == 0)
			w->st.membership_changes++;
		sim_node_drain(w, l);
		sim_check_node(w, l);
		return;
	}
	uint64_t id = w->n_ids + 1;
	int rc = raft_add_server(l->core, id);
	SIM_TRACE(w, "nemesis: node %llu adds %llu: %s", (unsigned long long)l->id,
		  (unsigned long long)id, rc ? sp_strerror(rc) : "ok");
	if (rc == 0) {
		w->st.membership_changes++;
		w->n_ids = (uint32_t)id;
		uint64_t at = raft_last_index(l->core);
		sim_node_drain(w, l);
		sim_check_node(w, l);
		sim_node_create(w, id, false);
		w->nodes[id].add_index = at;
		return;
	}
	sim_node_drain(w, l);
	sim_check_node(w, l);
}

/* Cut a node off from every other one for a while; messages it has in
 * flight are lost too (net.c checks links again at delivery). */
static void isolate(struct sim_world *w, uint64_t id)
{
	uint64_t ids[SIM_MAX_NODES];
	size_t k = live_ids(w, ids, false);
	sim_net_partition(w, SHAPE_ISOLATE, ids, k, id, &w->rng_nem);
	w->partition_gen++;
	w->st.partitions++;
	uint64_t len = sim_rng_logrange(&w->rng_nem, 50 * SIM_MS, 3 * SIM_S);
	SIM_TRACE(w, "nemesis: isolate node %llu for %.3f s", (unsigned long long)id,
		  (double)len / 1e6);
	sim_schedule(w, w->now + len, EV_HEAL, 0, w->partition_gen, 0);
}

/*
 * Traps strike a leader at the moments the paper's Figure 8 is made of:
 * just after it wins an election (its no-op not yet out), just after it
 * writes new entries (not yet replicated) and just after it advances its
 * commit index (the next entries not yet out). A trap either isolates
 * the leader at once or crashes it before its writes are synced.
 */
static void set_trap(struct sim_world *w)
{
	w->trap_chain = sim_rng_chance(&w->rng_nem, 0.5);
	if (w->trap_chain) {
		/* Figure 8 in three strokes: isolate a leader that has just
		 * written entries (A), then the leader elected without them
		 * just after it wins (B, whose no-op stays with it); A,
		 * elected again, replicates its old entry to a majority and
		 * is isolated just after it commits it; B can then win with
		 * a later last term and overwrite the entry. Each isolation
		 * heals the one before. */
		w->trap = TRAP_PERSIST;
		w->trap_crash = false;
	} else {
		w->trap = (uint8_t)sim_rng_range(&w->rng_nem, TRAP_ELECTED, TRAP_COMMIT);
		w->trap_crash = sim_rng_chance(&w->rng_nem, 0.3);
	}
	SIM_TRACE(w, "nemesis: trap %d (%s%s)", w->trap, w->trap_crash ? "crash" : "isolate",
		  w->trap_chain ? ", chain" : "");
}

void sim_nemesis_spring(struct sim_world *w, struct sim_node *n, int trap)
{
	if (w->trap != trap || w->phase != PHASE_FAULTS)
		return;
	w->trap = TRAP_NONE;
	if (w->trap_chain && trap != TRAP_COMMIT)
		w->trap = (uint8_t)(trap == TRAP_PERSIST ? TRAP_ELECTED : TRAP_COMMIT);
	SIM_TRACE(w, "nemesis: trap %d springs on node %llu", trap, (unsigned long long)n->id);
	if (w->trap_crash)
		n->crash_armed = true; /* at its next persist, before the sync */
	else
		isolate(w, n->id);
}

void sim_nemesis_act(struct sim_world *w)
{
	if (w->phase != PHASE_FAULTS)
		return;
	const struct sim_params *p = &w->p;
	uint32_t total = p->w_crash + p->w_partition + p->w_pause + p->w_clock + p->w_transfer +
			 p->w_member + p->w_churn;
	if (total) {
		uint32_t r = (uint32_t)sim_rng_below(&w->rng_nem, total);
		if (r < p->w_crash)
			crash(w);
		else if ((r -= p->w_crash) < p->w_partition)
			partition(w);
		else if ((r -= p->w_partition) < p->w_pause)
			pause_node(w);
		else if ((r -= p->w_pause) < p->w_clock)
			clock_change(w);
		else if ((r -= p->w_clock) < p->w_transfer)
			transfer(w);
		else if ((r -= p->w_transfer) < p->w_member)
			membership(w);
		else
			set_trap(w);
	}
	uint64_t next =
	    sim_rng_logrange(&w->rng_nem, p->nemesis_mean_us / 4, p->nemesis_mean_us * 3);
	sim_schedule(w, w->now + next, EV_NEMESIS, 0, 0, 0);
}
