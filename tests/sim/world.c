/*
 * world: one seed, from the draw of its parameters to its verdict.
 *
 * A run has three phases. FAULTS lasts --sim-seconds: the nemesis acts,
 * clients run. QUIET (--quiet-seconds): every fault is healed, crashed
 * nodes restart, loss and duplication stop; after a settling time every
 * client operation must be answered and some write must succeed. DRAIN:
 * clients stop; after it, a leader must exist and every member must have
 * applied up to the leader's commit index. Then the history is checked
 * for linearizability.
 */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

#define SETTLE_US (2 * SIM_S)
#define DRAIN_US  (3 * SIM_S)
#define CHECK_US  (100 * SIM_MS)
/* Far more pending events than any healthy run has (a few thousand). */
#define EVENT_STORM 200000

void sim_fail(struct sim_world *w, const char *check, const char *fmt, ...)
{
	if (w->res->failed)
		return;
	w->res->failed = true;
	w->res->fail_time = w->now;
	snprintf(w->res->check, sizeof(w->res->check), "%s", check);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->res->msg, sizeof(w->res->msg), fmt, ap);
	va_end(ap);
	if (w->opts->trace)
		sim_trace(w, "FAIL %s: %s", check, w->res->msg);
}

void sim_trace(struct sim_world *w, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "[%4llu.%06llu] %s\n", (unsigned long long)(w->now / SIM_S),
		(unsigned long long)(w->now % SIM_S), line);
}

void sim_schedule(struct sim_world *w, uint64_t at, uint8_t type, uint32_t node, uint64_t a,
		  uint64_t b)
{
	struct sim_event ev = {0};
	ev.time = at;
	ev.type = type;
	ev.node = node;
	ev.inc = node ? w->nodes[node].inc : 0;
	ev.a = a;
	ev.b = b;
	sim_heap_push(&w->heap, &ev);
}

uint64_t sim_node_local_us(const struct sim_world *w, const struct sim_node *n)
{
	int64_t dt = (int64_t)(w->now - n->anchor_global);
	return n->anchor_local + (uint64_t)(dt + dt * n->drift_ppm / 1000000);
}

uint64_t sim_node_global_delay(const struct sim_node *n, uint64_t local_us)
{
	uint64_t g = local_us * 1000000 / (uint64_t)(1000000 + n->drift_ppm);
	return g ? g : 1;
}

void sim_set_drift(struct sim_world *w, struct sim_node *n, int64_t ppm)
{
	n->anchor_local = sim_node_local_us(w, n);
	n->anchor_global = w->now;
	n->drift_ppm = ppm;
}

struct sim_node *sim_leader(struct sim_world *w)
{
	struct sim_node *best = NULL;
	for (uint32_t i = 1; i <= w->n_ids; i++) {
		struct sim_node *n = &w->nodes[i];
		if (!n->up || n->removed || raft_role_of(n->core) != RAFT_LEADER)
			continue;
		if (!best || raft_term(n->core) > raft_term(best->core))
			best = n;
	}
	return best;
}

static uint32_t pick(struct sim_rng *r, const uint32_t *v, size_t n)
{
	return v[sim_rng_below(r, n)];
}

/* The slack, in µs, between the earliest a follower can time out and the
 * latest a leader's lease can end, for clocks within +-actual when the
 * core assumes +-bound (§6.4.1). */
static double lease_slack_us(double et_us, double bound, double actual)
{
	double follower = et_us / (1 + actual);
	double lease = et_us * (1 - bound) / (1 + bound) / (1 - actual);
	return follower - lease;
}

static void params_draw(struct sim_world *w)
{
	struct sim_rng *r = &w->rng_cfg;
	struct sim_params *p = &w->p;
	memset(p, 0, sizeof(*p));
	p->n_init = sim_rng_chance(r, 0.5) ? 3 : 5;

	struct raft_config *c = &p->cfg;
	raft_config_default(c, 1);
	c->election_timeout_ms = (uint32_t)sim_rng_range(r, 100, 300);
	c->heartbeat_ms = c->election_timeout_ms / (uint32_t)sim_rng_range(r, 3, 6);
	static const uint32_t drift[] = {0, 50000, 100000, 100000, 200000, 200000};
	c->max_clock_drift_ppm = pick(r, drift, sizeof(drift) / sizeof(drift[0]));
	static const uint32_t entries[] = {1, 1, 2, 4, 16, 64, 256};
	c->max_entries_per_msg = pick(r, entries, sizeof(entries) / sizeof(entries[0]));
	static const uint32_t bytes[] = {128, 1024, 65536, 1 << 20};
	c->max_bytes_per_msg = pick(r, bytes, sizeof(bytes) / sizeof(bytes[0]));
	static const uint32_t inflight[] = {1, 2, 8, 64};
	c->max_inflight_msgs = pick(r, inflight, sizeof(inflight) / sizeof(inflight[0]));
	static const uint32_t chunk[] = {32, 100, 512, 4096};
	c->max_snapshot_chunk = pick(r, chunk, sizeof(chunk) / sizeof(chunk[0]));
	static const uint32_t uncommitted[] = {8, 64, 1024, 16384};
	c->max_uncommitted = pick(r, uncommitted, sizeof(uncommitted) / sizeof(uncommitted[0]));
	static const uint32_t catchup[] = {1, 8, 64, 256};
	c->catchup_entries = pick(r, catchup, sizeof(catchup) / sizeof(catchup[0]));
	static const uint32_t trail[] = {1, 4, 16, 100};
	c->compaction_trail = pick(r, trail, sizeof(trail) / sizeof(trail[0]));

	/* Real clocks stay inside the bound the core assumes, with enough
	 * slack for the simulator's millisecond clocks. */
	double bound = c->max_clock_drift_ppm / 1e6;
	double actual = bound;
	if (bound == 0) {
		actual = 0.05; /* leases are off; drift only shifts timers */
	} else {
		while (actual > 0 &&
		       lease_slack_us(c->election_timeout_ms * 1000.0, bound, actual) < 4000)
			actual -= bound / 40;
		if (actual < 0)
			actual = 0;
	}
	p->drift_actual_ppm = (int64_t)(actual * 1e6);
	p->tick_min_us = (uint32_t)sim_rng_range(r, 500, 2000);
	p->tick_max_us = p->tick_min_us + (uint32_t)sim_rng_range(r, 500, 4000);

	p->net_base_us = (uint32_t)sim_rng_logrange(r, 50, 2000);
	p->net_jitter_us = (uint32_t)sim_rng_logrange(r, 10, 10000);
	p->p_loss = sim_rng_chance(r, 0.3) ? 0 : sim_rng_unit(r) * 0.05;
	p->p_dup = sim_rng_chance(r, 0.5) ? 0 : sim_rng_unit(r) * 0.03;
	p->p_tail = sim_rng_chance(r, 0.5) ? 0 : sim_rng_unit(r) * 0.02;
	p->tail_max_us = (uint32_t)sim_rng_logrange(r, 20000, 800000);
	p->crash_drop_us = sim_rng_chance(r, 0.5) ? 0 : (uint32_t)sim_rng_logrange(r, 50, 3000);
	p->fifo = sim_rng_chance(r, 0.5);

	p->disk_min_us = (uint32_t)sim_rng_logrange(r, 20, 2000);
	p->disk_max_us = p->disk_min_us + (uint32_t)sim_rng_logrange(r, 10, 5000);
	p->p_disk_slow = sim_rng_chance(r, 0.5) ? 0 : sim_rng_unit(r) * 0.05;
	p->disk_slow_us = (uint32_t)sim_rng_logrange(r, 5000, 100000);
	p->p_fsync_overlap = sim_rng_unit(r) * 0.5;
	p->p_crash_keep = sim_rng_unit(r);
	p->p_torn = sim_rng_unit(r) * 0.5;

	static const uint32_t snap_every[] = {5, 20, 100, 500};
	p->snap_every = pick(r, snap_every, sizeof(snap_every) / sizeof(snap_every[0]));
	p->snap_pad = (uint32_t)sim_rng_logrange(r, 1, 3000);

	p->n_clients = (uint32_t)sim_rng_range(r, 2, 6);
	p->n_keys = (uint32_t)sim_rng_range(r, 1, SIM_MAX_KEYS);
	p->think_min_us = (uint32_t)sim_rng_logrange(r, 100, 20000);
	p->think_max_us = p->think_min_us + (uint32_t)sim_rng_logrange(r, 1000, 60000);
	p->op_timeout_us = (uint32_t)sim_rng_range(r, 1000, 2000) * 1000;
	p->client_net_us = (uint32_t)sim_rng_logrange(r, 50, 2000);
	p->p_read = 0.2 + 0.5 * sim_rng_unit(r);
	p->p_lease = sim_rng_unit(r);
	p->p_to_leader = 0.6 + 0.4 * sim_rng_unit(r);

	p->nemesis_mean_us = (uint32_t)sim_rng_logrange(r, 50000, 1000000);
	/* Each kind of fault is on or off for the whole seed, with its own
	 * weight. */
	uint32_t *weights[] = {&p->w_crash,    &p->w_partition, &p->w_pause, &p->w_clock,
			       &p->w_transfer, &p->w_member,	&p->w_churn};
	uint32_t total = 0;
	for (size_t i = 0; i < sizeof(weights) / sizeof(weights[0]); i++) {
		*weights[i] = sim_rng_chance(r, 0.75) ? (uint32_t)sim_rng_range(r, 1, 10) : 0;
		total += *weights[i];
	}
	if (!total)
		p->w_crash = p->w_partition = 1;
	p->p_arm_crash = sim_rng_unit(r);
}

static void enter_quiet(struct sim_world *w)
{
	w->phase = PHASE_QUIET;
	w->quiet_start = w->now;
	w->settle_at = w->now + SETTLE_US;
	w->partition_gen++;
	sim_net_heal(w);
	SIM_TRACE(w, "phase: quiet (faults healed)");
	for (uint32_t i = 1; i <= w->n_ids; i++) {
		struct sim_node *n = &w->nodes[i];
		n->crash_armed = false;
		/* Pauses run out by themselves (within the settling time):
		 * cutting one short here would leave the node handling
		 * messages with its tick still deferred. */
		if (n->exists && !n->removed && !n->up) {
			sim_node_start(w, n);
			w->st.restarts++;
		}
	}
	sim_schedule(w, w->now + w->opts->quiet_seconds * SIM_S, EV_PHASE, 0, PHASE_DRAIN, 0);
}

static void final_checks(struct sim_world *w)
{
	struct sim_node *l = sim_leader(w);
	if (!l) {
		sim_fail(w, "liveness", "no leader at the end of the quiet period");
		return;
	}
	uint64_t commit = raft_commit_index(l->core);
	const struct raft_conf *conf = raft_configuration(l->core);
	for (uint32_t i = 0; i < conf->n; i++) {
		uint64_t id = conf->members[i].id;
		struct sim_node *n = id <= SIM_MAX_NODES ? &w->nodes[id] : NULL;
		if (!n || !n->exists || !n->up) {
			sim_fail(w, "liveness",
				 "member %llu of the final configuration is not running",
				 (unsigned long long)id);
			return;
		}
		if (raft_commit_index(n->core) != commit || n->kv.applied != commit) {
			sim_fail(
			    w, "liveness",
			    "node %llu has commit %llu applied %llu; leader %llu (term %llu) "
			    "has commit %llu",
			    (unsigned long long)id, (unsigned long long)raft_commit_index(n->core),
			    (unsigned long long)n->kv.applied, (unsigned long long)l->id,
			    (unsigned long long)raft_term(l->core), (unsigned long long)commit);
			return;
		}
	}
}

static void phase_event(struct sim_world *w, uint64_t phase)
{
	switch (phase) {
	case PHASE_QUIET:
		enter_quiet(w);
		break;
	case PHASE_DRAIN:
		w->phase = PHASE_DRAIN;
		SIM_TRACE(w, "phase: drain (clients stop)");
		if (w->quiet_writes_ok == 0)
			sim_fail(w, "liveness", "no write succeeded in the quiet period");
		sim_schedule(w, w->now + DRAIN_US, EV_PHASE, 0, PHASE_DONE, 0);
		break;
	case PHASE_DONE:
		final_checks(w);
		w->phase = PHASE_DONE;
		break;
	}
}

static bool node_event(uint8_t type)
{
	return type == EV_TICK || type == EV_DELIVER || type == EV_FSYNC ||
	       type == EV_CLIENT_ARRIVE || type == EV_CRASH || type == EV_RESTART;
}

static void dispatch(struct sim_world *w, struct sim_event *ev)
{
	struct sim_node *n = ev->node && ev->node <= SIM_MAX_NODES ? &w->nodes[ev->node] : NULL;
	if (node_event(ev->type)) {
		if (!n || !n->exists)
			return;
		/* A paused process sees nothing until it resumes; what
		 * arrives meanwhile waits (the kernel buffers it). */
		if (n->up && n->paused_until > w->now && ev->type != EV_CRASH) {
			ev->time = n->paused_until;
			sim_heap_push(&w->heap, ev);
			ev->ptr = NULL;
			return;
		}
	}
	if (n && (ev->type == EV_DELIVER || ev->type == EV_FSYNC || ev->type == EV_CLIENT_ARRIVE))
		sim_node_catch_up_tick(w, n);
	switch (ev->type) {
	case EV_TICK:
		if (n->up && ev->inc == n->inc)
			sim_node_tick(w, n);
		break;
	case EV_DELIVER:
		if (sim_net_lost_in_crash(w, ev->a, ev->inc, ev->b))
			w->st.msgs_lost++;
		else if (n->up && !sim_net_blocked(w, ev->a, ev->node))
			sim_node_deliver(w, n, ev->ptr, ev->len);
		break;
	case EV_FSYNC:
		if (n->up && ev->inc == n->inc)
			sim_node_fsync(w, n, ev->a);
		break;
	case EV_CRASH:
		if (ev->b) {
			sim_node_crash(w, n, true);
		} else if (n->up && ev->inc == n->inc && w->phase == PHASE_FAULTS) {
			SIM_TRACE(w, "nemesis: crash node %llu with %zu unsynced writes",
				  (unsigned long long)n->id, n->disk.n_q);
			sim_node_crash(w, n, false);
			sim_schedule(w,
				     w->now + sim_rng_logrange(&w->rng_nem, 5 * SIM_MS, 2 * SIM_S),
				     EV_RESTART, n->id, 0, 0);
		}
		break;
	case EV_RESTART:
		if (!n->up && !n->removed && ev->inc == n->inc) {
			w->st.restarts++;
			sim_node_start(w, n);
		}
		break;
	case EV_CLIENT_ISSUE:
		sim_client_issue(w, &w->clients[ev->a]);
		break;
	case EV_CLIENT_ARRIVE:
		sim_client_arrive(w, ev->node, (uint32_t)ev->a, ev->b);
		break;
	case EV_CLIENT_REPLY:
		sim_client_reply_event(w, (uint32_t)ev->a, ev->b);
		break;
	case EV_CLIENT_TIMEOUT:
		sim_client_timeout(w, (uint32_t)ev->a, ev->b);
		break;
	case EV_NEMESIS:
		sim_nemesis_act(w);
		break;
	case EV_HEAL:
		sim_nemesis_heal(w, ev->a);
		break;
	case EV_PHASE:
		phase_event(w, ev->a);
		break;
	case EV_CHECK:
		sim_check_periodic(w);
		if (w->phase != PHASE_DONE)
			sim_schedule(w, w->now + CHECK_US, EV_CHECK, 0, 0, 0);
		break;
	}
	if (n && n->up) {
		sim_node_probe_lease(w, n);
		sim_check_node(w, n);
	}
}

static const char *ev_name(uint8_t type)
{
	static const char *const names[] = {
	    "?",       "tick",	       "deliver",	"fsync",	"restart",
	    "crash",   "client-issue", "client-arrive", "client-reply", "client-timeout",
	    "nemesis", "heal",	       "phase",		"check",
	};
	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

void sim_run_seed(uint64_t seed, const struct sim_opts *opts, struct sim_result *res)
{
	memset(res, 0, sizeof(*res));
	struct sim_world *w = sp_calloc(1, sizeof(*w));
	w->seed = seed;
	w->opts = opts;
	w->res = res;
	sim_rng_seed(&w->rng_cfg, seed, 1);
	sim_rng_seed(&w->rng_net, seed, 2);
	sim_rng_seed(&w->rng_disk, seed, 3);
	sim_rng_seed(&w->rng_nem, seed, 4);
	sim_rng_seed(&w->rng_client, seed, 5);
	sim_rng_seed(&w->rng_clock, seed, 6);
	params_draw(w);
	sim_heap_init(&w->heap);
	sim_check_init(w);
	for (uint32_t k = 0; k < SIM_MAX_KEYS; k++)
		w->key_last[k].nil = true;
	if (opts->trace) {
		const struct sim_params *p = &w->p;
		const struct raft_config *c = &p->cfg;
		sim_trace(
		    w,
		    "seed %llu: %u nodes, election %u ms, heartbeat %u ms, drift bound %u ppm "
		    "(clocks within %lld), entries/msg %u, bytes/msg %u, inflight %u, chunk %u, "
		    "uncommitted %u, catchup %u, trail %u",
		    (unsigned long long)seed, p->n_init, c->election_timeout_ms, c->heartbeat_ms,
		    c->max_clock_drift_ppm, (long long)p->drift_actual_ppm, c->max_entries_per_msg,
		    c->max_bytes_per_msg, c->max_inflight_msgs, c->max_snapshot_chunk,
		    c->max_uncommitted, c->catchup_entries, c->compaction_trail);
		sim_trace(
		    w,
		    "net %u+%u us%s loss %.3f dup %.3f tail %.3f<=%u us; disk %u..%u us slow "
		    "%.3f<=%u; snap every %u pad %u; %u clients %u keys think %u..%u us; "
		    "nemesis every %u us weights crash %u part %u pause %u clock %u transfer %u "
		    "member %u churn %u arm %.2f",
		    p->net_base_us, p->net_jitter_us, p->fifo ? " fifo" : "", p->p_loss, p->p_dup,
		    p->p_tail, p->tail_max_us, p->disk_min_us, p->disk_max_us, p->p_disk_slow,
		    p->disk_slow_us, p->snap_every, p->snap_pad, p->n_clients, p->n_keys,
		    p->think_min_us, p->think_max_us, p->nemesis_mean_us, p->w_crash,
		    p->w_partition, p->w_pause, p->w_clock, p->w_transfer, p->w_member, p->w_churn,
		    p->p_arm_crash);
	}

	w->n_ids = w->p.n_init;
	for (uint32_t i = 1; i <= w->p.n_init; i++)
		sim_node_create(w, i, true);
	sim_clients_start(w);
	sim_schedule(w, sim_rng_range(&w->rng_nem, 1, w->p.nemesis_mean_us), EV_NEMESIS, 0, 0, 0);
	sim_schedule(w, CHECK_US, EV_CHECK, 0, 0, 0);
	sim_schedule(w, opts->sim_seconds * SIM_S, EV_PHASE, 0, PHASE_QUIET, 0);

	struct sim_event ev;
	while (!res->failed && w->phase != PHASE_DONE && sim_heap_pop(&w->heap, &ev)) {
		if (ev.time < w->now) {
			sim_fail(w, "simulator", "event %s at %llu before now %llu",
				 ev_name(ev.type), (unsigned long long)ev.time,
				 (unsigned long long)w->now);
			free(ev.ptr);
			break;
		}
		w->now = ev.time;
		w->st.events++;
		if (w->heap.n > EVENT_STORM) {
			/* Something multiplies messages or timers: fail the seed
			 * now rather than run out of memory or time. */
			size_t deliver = 0;
			for (size_t i = 0; i < w->heap.n; i++)
				deliver += w->heap.v[i].type == EV_DELIVER;
			sim_fail(w, "event-storm",
				 "%zu events pending (%zu of them messages in flight)", w->heap.n,
				 deliver);
			free(ev.ptr);
			break;
		}
		if (opts->trace && ev.type != EV_DELIVER && ev.type != EV_CHECK)
			sim_trace(w, "event %s node %u a %llu b %llu", ev_name(ev.type), ev.node,
				  (unsigned long long)ev.a, (unsigned long long)ev.b);
		dispatch(w, &ev);
		free(ev.ptr);
	}
	if (!res->failed)
		sim_history_check(w);

	w->st.sim_us = w->now;
	for (uint32_t i = 1; i <= w->n_ids; i++) {
		struct sim_node *n = &w->nodes[i];
		if (n->up) {
			struct raft_stats st;
			raft_get_stats(n->core, &st);
			n->stats_acc.elections_started += st.elections_started;
		}
		w->st.elections += n->stats_acc.elections_started;
		for (uint32_t c = 0; c < SIM_MAX_CLIENTS; c++)
			n->pend[c].used = false;
		sim_node_free(n);
	}
	res->st = w->st;
	sim_heap_free(&w->heap);
	sim_check_free(w);
	free(w->hist);
	free(w);
}
