/*
 * node: one simulated server, a Raft core with its disk, state machine
 * and clock.
 *
 * The node performs each raft_update exactly as raft.h's comment on
 * struct raft_update says, in that order: persist (as unsynced disk
 * writes, with raft_persisted called once an fsync covers them), stage
 * snapshot chunks (made durable, loaded and reported with
 * raft_snapshot_installed), send messages (encoded with raft_msg_encode;
 * snapshot chunks filled from the snapshot the core was last told about),
 * apply committed entries and serve reads whose index has been applied.
 * It checks the core's side of that contract as it goes (appends follow
 * the stored log, committed entries come in order) and reports what it
 * sees to check.c.
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

static void process_update(struct sim_world *w, struct sim_node *n, const struct raft_update *u);
static void drop_served(struct sim_node *n);
static void set_served(struct sim_node *n, struct sim_snapfile *s);

static uint64_t local_ms(const struct sim_world *w, const struct sim_node *n)
{
	return sim_node_local_us(w, n) / 1000;
}

bool sim_node_has_unsynced(const struct sim_node *n)
{
	return n->disk.n_q > 0;
}

static void schedule_tick(struct sim_world *w, struct sim_node *n)
{
	uint64_t local = sim_rng_range(&w->rng_clock, w->p.tick_min_us, w->p.tick_max_us);
	struct sim_event ev = {0};
	ev.time = w->now + sim_node_global_delay(n, local);
	n->next_tick_at = ev.time;
	ev.type = EV_TICK;
	ev.node = (uint32_t)n->id;
	ev.inc = n->inc;
	sim_heap_push(&w->heap, &ev);
}

static void schedule_node_event(struct sim_world *w, struct sim_node *n, uint64_t at, uint8_t type,
				uint64_t a, uint64_t b)
{
	struct sim_event ev = {0};
	ev.time = at;
	ev.type = type;
	ev.node = (uint32_t)n->id;
	ev.inc = n->inc;
	ev.a = a;
	ev.b = b;
	sim_heap_push(&w->heap, &ev);
}

void sim_node_create(struct sim_world *w, uint64_t id, bool initial)
{
	struct sim_node *n = &w->nodes[id];
	memset(n, 0, sizeof(*n));
	n->id = id;
	n->exists = true;
	n->initial = initial;
	n->cfg = w->p.cfg;
	n->cfg.id = id;
	sim_disk_init(&n->disk);
	/* Clocks start at unrelated values and run at their own rates. */
	n->anchor_global = w->now;
	n->anchor_local = sim_rng_range(&w->rng_clock, 1, 1000) * SIM_S;
	int64_t d = w->p.drift_actual_ppm;
	n->drift_ppm = (int64_t)sim_rng_range(&w->rng_clock, 0, (uint64_t)(2 * d)) - d;
	/* Some clocks run right at the edge of the bound, where a lease
	 * that ignores drift is wrong soonest. */
	if (sim_rng_chance(&w->rng_clock, 0.3))
		n->drift_ppm = sim_rng_chance(&w->rng_clock, 0.5) ? d : -d;
	sim_node_start(w, n);
}

static void bootstrap_conf(struct sim_world *w, struct sim_node *n, struct raft_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	if (!n->initial)
		return;
	for (uint32_t i = 1; i <= w->p.n_init; i++) {
		conf->members[conf->n].id = i;
		conf->members[conf->n].role = RAFT_VOTER;
		conf->n++;
	}
}

void sim_node_start(struct sim_world *w, struct sim_node *n)
{
	struct raft_restore rs;
	struct raft_entry *entries;
	char why[256];
	if (sim_disk_restore(&n->disk, &rs, &entries, why, sizeof(why))) {
		sim_fail(w, "disk-restore", "node %llu: %s", (unsigned long long)n->id, why);
		return;
	}
	bootstrap_conf(w, n, &rs.bootstrap);
	n->cfg.seed = sim_mix64(w->seed ^ sim_mix64(n->id * 1000003 + n->inc));
	int rc = raft_open(&n->core, &n->cfg, &rs, local_ms(w, n));
	free(entries);
	if (rc) {
		sim_fail(w, "raft-open", "node %llu: raft_open: %s", (unsigned long long)n->id,
			 sp_strerror(rc));
		n->core = NULL;
		return;
	}
	n->up = true;
	sim_kv_init(&n->kv, w->p.n_keys);
	n->kv.conf = rs.bootstrap;
	drop_served(n);
	n->last_snap_index = 0;
	if (n->disk.snap) {
		if (sim_kv_load(&n->kv, n->disk.snap->data, n->disk.snap->len)) {
			sim_fail(w, "snapshot-corrupt",
				 "node %llu: durable snapshot %llu is corrupt",
				 (unsigned long long)n->id,
				 (unsigned long long)n->disk.snap->meta.index);
		}
		n->kv.applied = n->disk.snap->meta.index;
		n->kv.applied_term = n->disk.snap->meta.term;
		n->kv.conf = n->disk.snap->meta.conf;
		set_served(n, n->disk.snap);
	}
	/* The core must start from what the disk holds: its term is the
	 * durable one (a term never goes back below what was persisted). */
	if (raft_term(n->core) < n->disk.hs.term)
		sim_fail(w, "term-regress", "node %llu restarted at term %llu below durable %llu",
			 (unsigned long long)n->id, (unsigned long long)raft_term(n->core),
			 (unsigned long long)n->disk.hs.term);
	n->ck_term = raft_term(n->core);
	n->ck_commit = raft_commit_index(n->core);
	n->ck_lead_term = 0;
	n->ck_commit_recorded = sim_disk_snap_index(&n->disk);
	SIM_TRACE(
	    w, "node %llu up (inc %llu): term %llu vote %llu commit %llu snap %llu log %llu..%llu",
	    (unsigned long long)n->id, (unsigned long long)n->inc,
	    (unsigned long long)n->disk.hs.term, (unsigned long long)n->disk.hs.vote,
	    (unsigned long long)n->disk.hs.commit,
	    (unsigned long long)sim_disk_snap_index(&n->disk),
	    (unsigned long long)raft_first_index(n->core),
	    (unsigned long long)raft_last_index(n->core));
	schedule_tick(w, n);
	sim_node_drain(w, n);
	sim_check_node(w, n);
}

void sim_node_free(struct sim_node *n)
{
	if (n->core)
		raft_close(n->core);
	n->core = NULL;
	sim_disk_free(&n->disk);
	drop_served(n);
	free(n->stage);
	n->stage = NULL;
}

static void add_stats(struct raft_stats *acc, const struct raft_stats *s)
{
	acc->elections_started += s->elections_started;
	acc->prevotes_started += s->prevotes_started;
	acc->leader_changes += s->leader_changes;
	acc->transfers += s->transfers;
	acc->lease_reads += s->lease_reads;
}

static void fail_pending(struct sim_world *w, struct sim_node *n)
{
	for (uint32_t c = 0; c < SIM_MAX_CLIENTS; c++) {
		struct sim_pending *p = &n->pend[c];
		if (!p->used)
			continue;
		p->used = false;
		/* A write whose node died may yet commit; a read that was
		 * never served constrains nothing. */
		sim_client_answer(w, n, p->client, p->token, p->is_read ? OP_FAIL : OP_UNKNOWN,
				  NULL);
	}
}

void sim_node_crash(struct sim_world *w, struct sim_node *n, bool for_good)
{
	if (!n->up) {
		if (for_good)
			n->removed = true;
		return;
	}
	struct raft_stats st;
	raft_get_stats(n->core, &st);
	add_stats(&n->stats_acc, &st);
	fail_pending(w, n);
	raft_close(n->core);
	n->core = NULL;
	n->up = false;
	n->inc++;
	n->crashed_at = w->now;
	if (for_good) {
		n->removed = true;
	} else {
		w->st.crashes++;
		size_t unsynced = n->disk.n_q;
		size_t keep = 0;
		bool torn = false;
		if (unsynced && sim_rng_chance(&w->rng_disk, w->p.p_crash_keep)) {
			keep = (size_t)sim_rng_range(&w->rng_disk, 0, unsynced);
			torn = keep > 0 && sim_rng_chance(&w->rng_disk, w->p.p_torn);
		}
		w->st.writes_lost += unsynced - keep + (torn ? 1 : 0);
		w->st.torn += torn;
		SIM_TRACE(w, "node %llu crashes: %zu unsynced writes, %zu survive%s",
			  (unsigned long long)n->id, unsynced, keep, torn ? " (last torn)" : "");
		sim_disk_crash(&n->disk, keep, torn);
	}
	drop_served(n);
	n->staging = false;
	n->stage_len = 0;
	n->snap_saving = false;
	n->crash_armed = false;
	n->fsyncs_scheduled = 0;
	n->paused_until = 0;
	if (for_good)
		SIM_TRACE(w, "node %llu stopped (removed)", (unsigned long long)n->id);
}

/* ---- persistence ---- */

static void request_fsync(struct sim_world *w, struct sim_node *n)
{
	/* While an fsync is in flight, later writes usually wait for the
	 * next one, issued when it completes (group commit). */
	if (n->fsyncs_scheduled > 0 && !sim_rng_chance(&w->rng_disk, w->p.p_fsync_overlap))
		return;
	uint64_t lat = sim_rng_range(&w->rng_disk, w->p.disk_min_us, w->p.disk_max_us);
	if (w->p.p_disk_slow > 0 && sim_rng_chance(&w->rng_disk, w->p.p_disk_slow))
		lat += sim_rng_range(&w->rng_disk, 0, w->p.disk_slow_us);
	uint64_t at = w->now + lat;
	if (at < n->last_fsync_at)
		at = n->last_fsync_at; /* fsyncs complete in order */
	n->last_fsync_at = at;
	n->fsyncs_scheduled++;
	schedule_node_event(w, n, at, EV_FSYNC, n->disk.n_issued, 0);
}

static void flush_persisted(struct sim_world *w, struct sim_node *n, uint64_t *seq)
{
	if (*seq && n->up) {
		SIM_TRACE(w, "node %llu persisted seq %llu", (unsigned long long)n->id,
			  (unsigned long long)*seq);
		raft_persisted(n->core, *seq);
		sim_node_drain(w, n);
	}
	*seq = 0;
}

static void serve_reads(struct sim_world *w, struct sim_node *n)
{
	for (uint32_t c = 0; c < SIM_MAX_CLIENTS; c++) {
		struct sim_pending *p = &n->pend[c];
		if (!p->used || !p->is_read || !p->read_known || p->read_index > n->kv.applied)
			continue;
		struct sim_hist_op *op = sim_client_op(w, p->client, p->token);
		p->used = false;
		if (!op)
			continue;
		sim_client_answer(w, n, p->client, p->token, OP_OK, &n->kv.vals[op->key]);
	}
}

static void drop_served(struct sim_node *n)
{
	for (int i = 0; i < SIM_SERVED; i++) {
		sim_snapfile_unref(n->served[i]);
		n->served[i] = NULL;
	}
}

static void set_served(struct sim_node *n, struct sim_snapfile *s)
{
	sim_snapfile_unref(n->served[SIM_SERVED - 1]);
	memmove(n->served + 1, n->served, (SIM_SERVED - 1) * sizeof(*n->served));
	n->served[0] = sim_snapfile_ref(s);
	n->last_snap_index = s->meta.index;
}

static struct sim_snapfile *find_served(struct sim_node *n, uint64_t index)
{
	for (int i = 0; i < SIM_SERVED; i++)
		if (n->served[i] && n->served[i]->meta.index == index)
			return n->served[i];
	return NULL;
}

static void on_snap_saved(struct sim_world *w, struct sim_node *n, struct sim_snapfile *s)
{
	n->snap_saving = false;
	uint64_t idx = s->meta.index;
	int rc = raft_snapshot_saved(n->core, idx);
	if (rc == 0) {
		set_served(n, s);
		w->st.snapshots_saved++;
		SIM_TRACE(w, "node %llu snapshot %llu saved", (unsigned long long)n->id,
			  (unsigned long long)idx);
	} else if (idx > raft_snapshot_index(n->core)) {
		sim_fail(w, "snapshot-saved",
			 "node %llu: raft_snapshot_saved(%llu) = %s (applied %llu)",
			 (unsigned long long)n->id, (unsigned long long)idx, sp_strerror(rc),
			 (unsigned long long)raft_applied_index(n->core));
	}
	sim_node_drain(w, n);
}

static void on_snap_installed(struct sim_world *w, struct sim_node *n, struct sim_snapfile *s)
{
	uint64_t idx = s->meta.index;
	if (idx < n->kv.applied) {
		sim_fail(w, "snapshot-regress",
			 "node %llu installs snapshot %llu behind its applied index %llu",
			 (unsigned long long)n->id, (unsigned long long)idx,
			 (unsigned long long)n->kv.applied);
		return;
	}
	if (sim_kv_load(&n->kv, s->data, s->len)) {
		sim_fail(w, "snapshot-corrupt",
			 "node %llu: received snapshot %llu (%zu bytes) fails its checksum",
			 (unsigned long long)n->id, (unsigned long long)idx, s->len);
		return;
	}
	n->kv.applied = idx;
	n->kv.applied_term = s->meta.term;
	n->kv.conf = s->meta.conf;
	sim_check_snapshot_loaded(w, n);
	set_served(n, s);
	w->st.snapshots_installed++;
	/* Writes waiting at indices the snapshot covers: the entry there
	 * was applied, but not here, so whether it was ours is unknown. */
	for (uint32_t c = 0; c < SIM_MAX_CLIENTS; c++) {
		struct sim_pending *p = &n->pend[c];
		if (p->used && !p->is_read && p->index <= idx) {
			p->used = false;
			sim_client_answer(w, n, p->client, p->token, OP_UNKNOWN, NULL);
		}
	}
	SIM_TRACE(w, "node %llu snapshot %llu (term %llu) installed", (unsigned long long)n->id,
		  (unsigned long long)idx, (unsigned long long)s->meta.term);
	raft_snapshot_installed(n->core, idx);
	sim_node_drain(w, n);
	serve_reads(w, n);
}

void sim_node_fsync(struct sim_world *w, struct sim_node *n, uint64_t upto)
{
	if (n->fsyncs_scheduled)
		n->fsyncs_scheduled--;
	struct sim_write *done;
	size_t k;
	sim_disk_sync(&n->disk, upto, &done, &k);
	uint64_t seq = 0;
	for (size_t i = 0; i < k && n->up; i++) {
		switch (done[i].kind) {
		case W_MARK:
			if (done[i].persist_seq > seq)
				seq = done[i].persist_seq;
			break;
		case W_SNAP_SAVE:
			flush_persisted(w, n, &seq);
			if (n->up)
				on_snap_saved(w, n, done[i].snap);
			break;
		case W_SNAP_INSTALL:
			flush_persisted(w, n, &seq);
			if (n->up)
				on_snap_installed(w, n, done[i].snap);
			break;
		default:
			break;
		}
	}
	flush_persisted(w, n, &seq);
	for (size_t i = 0; i < k; i++)
		sim_write_free(&done[i]);
	free(done);
	if (n->up && n->fsyncs_scheduled == 0 && n->disk.n_q > 0)
		request_fsync(w, n);
}

/* ---- events ---- */

/*
 * An event loop runs the timers that are due before it handles I/O (libuv
 * does, each iteration). A node coming out of a pause has its tick
 * overdue; it ticks before handling what waited for it, so that the core
 * never stamps a message with the time of its last tick before the pause.
 */
void sim_node_catch_up_tick(struct sim_world *w, struct sim_node *n)
{
	if (!n->up || n->next_tick_at >= w->now)
		return;
	raft_tick(n->core, local_ms(w, n));
	sim_node_drain(w, n);
}

/*
 * A leader that a later term has superseded must not hold a lease
 * (§6.4.1: the lease stands for "no other leader can have been elected
 * yet"). Such stale leaders are rare, so after any event on one the
 * simulator brings its clock up to date and asks: a lease it still
 * grants is a violation whether or not a client happens to read then.
 */
void sim_node_probe_lease(struct sim_world *w, struct sim_node *n)
{
	if (!n->up || !w->p.cfg.max_clock_drift_ppm || raft_role_of(n->core) != RAFT_LEADER ||
	    raft_term(n->core) >= w->max_leader_term)
		return;
	raft_tick(n->core, local_ms(w, n));
	sim_node_drain(w, n);
	uint64_t idx;
	if (n->up && raft_role_of(n->core) == RAFT_LEADER && raft_read_lease(n->core, &idx) == 0)
		sim_fail(
		    w, "lease-safety",
		    "node %llu holds a lease in term %llu after node %llu was elected for term "
		    "%llu",
		    (unsigned long long)n->id, (unsigned long long)raft_term(n->core),
		    (unsigned long long)w->term_leader[w->max_leader_term],
		    (unsigned long long)w->max_leader_term);
}

void sim_node_tick(struct sim_world *w, struct sim_node *n)
{
	raft_tick(n->core, local_ms(w, n));
	sim_node_drain(w, n);
	if (n->up)
		schedule_tick(w, n);
}

static void trace_msg(struct sim_world *w, const char *what, const struct raft_msg *m)
{
	SIM_TRACE(w,
		  "%s %s %llu->%llu term %llu prev (%llu,%llu) commit %llu n %u index %llu hint "
		  "%llu reject %d log_term %llu ctx %llu snap %llu off %llu len %u last %d",
		  what, raft_msg_type_name(m->type), (unsigned long long)m->from,
		  (unsigned long long)m->to, (unsigned long long)m->term,
		  (unsigned long long)m->prev_index, (unsigned long long)m->prev_term,
		  (unsigned long long)m->commit, m->n_entries, (unsigned long long)m->index,
		  (unsigned long long)m->hint, m->reject, (unsigned long long)m->log_term,
		  (unsigned long long)m->ctx, (unsigned long long)m->snap.index,
		  (unsigned long long)m->offset, m->len, m->last);
}

void sim_node_deliver(struct sim_world *w, struct sim_node *n, const uint8_t *p, size_t len)
{
	struct raft_msg m;
	int rc = raft_msg_decode(p, len, &m, w->dec_entries, SIM_MAX_ENTRIES);
	if (rc) {
		sim_fail(w, "codec",
			 "node %llu cannot decode a %zu-byte message the core encoded: %s",
			 (unsigned long long)n->id, len, sp_strerror(rc));
		return;
	}
	if (w->opts->trace)
		trace_msg(w, "recv", &m);
	rc = raft_step(n->core, &m);
	if (rc && rc != SP_ERR_INVAL)
		sim_fail(w, "raft-step", "node %llu: raft_step returned %s",
			 (unsigned long long)n->id, sp_strerror(rc));
	sim_node_drain(w, n);
}

void sim_node_client_request(struct sim_world *w, struct sim_node *n, uint32_t client,
			     uint64_t token)
{
	struct sim_hist_op *op = sim_client_op(w, client, token);
	if (!op)
		return;
	/* Bring the core's clock up to date first, as a server does before
	 * it asks about its lease. */
	raft_tick(n->core, local_ms(w, n));
	sim_node_drain(w, n);
	if (!n->up)
		return;
	op = sim_client_op(w, client, token);
	if (!op)
		return;
	struct sim_pending *p = &n->pend[client];
	memset(p, 0, sizeof(*p));
	p->client = client;
	p->token = token;
	if (op->kind == OPK_READ) {
		p->is_read = true;
		p->read_floor = w->max_committed;
		if (op->level == READ_LEASE) {
			uint64_t idx;
			int rc = raft_read_lease(n->core, &idx);
			if (rc == 0)
				sim_check_read_index(w, n, idx, p->read_floor, true);
			if (rc == 0 && n->kv.applied >= idx) {
				w->st.lease_reads++;
				SIM_TRACE(w, "node %llu lease read at %llu (applied %llu)",
					  (unsigned long long)n->id, (unsigned long long)idx,
					  (unsigned long long)n->kv.applied);
				sim_client_answer(w, n, client, token, OP_OK, &n->kv.vals[op->key]);
				return;
			}
			op->level = READ_INDEX; /* fell back (§6.4) */
		}
		w->st.index_reads++;
		p->read_id = ++w->next_read_id;
		int rc = raft_read_index(n->core, p->read_id);
		if (rc) {
			sim_client_answer(w, n, client, token, OP_FAIL, NULL);
			return;
		}
		p->used = true;
		sim_node_drain(w, n);
		return;
	}
	struct sim_cmd cmd = {0};
	cmd.op = op->kind == OPK_PUT ? CMD_PUT : op->kind == OPK_CAS ? CMD_CAS : CMD_DEL;
	cmd.key = op->key;
	cmd.client = client;
	cmd.op_id = op->op_id;
	if (op->kind == OPK_PUT) {
		cmd.a = op->arg;
		cmd.b.nil = true;
	} else if (op->kind == OPK_CAS) {
		cmd.a = op->expect;
		cmd.b = op->arg;
	} else {
		cmd.a.nil = cmd.b.nil = true;
	}
	uint8_t buf[SIM_CMD_MAX];
	size_t len;
	sim_cmd_encode(&cmd, buf, &len);
	uint64_t index = 0, term = 0;
	int rc = raft_propose(n->core, buf, len, &index, &term);
	if (rc) {
		/* Refused (not leader, or too many uncommitted): it never
		 * entered the log. */
		sim_client_answer(w, n, client, token, OP_FAIL, NULL);
		return;
	}
	SIM_TRACE(w, "node %llu proposes op %llu at (%llu, %llu)", (unsigned long long)n->id,
		  (unsigned long long)op->op_id, (unsigned long long)index,
		  (unsigned long long)term);
	p->used = true;
	p->index = index;
	p->term = term;
	p->op_id = op->op_id;
	sim_node_drain(w, n);
}

/* ---- the update ---- */

void sim_node_drain(struct sim_world *w, struct sim_node *n)
{
	struct raft_update u;
	uint32_t guard = 0;
	while (n->up && raft_take_update(n->core, &u)) {
		if (++guard > SIM_DRAIN_LIMIT) {
			sim_fail(w, "update-loop",
				 "node %llu: raft_take_update still has work after %u updates",
				 (unsigned long long)n->id, guard);
			return;
		}
		process_update(w, n, &u);
	}
}

static void persist(struct sim_world *w, struct sim_node *n, const struct raft_update *u)
{
	bool wrote = false;
	struct sim_write wr;
	if (u->truncate_after != UINT64_MAX) {
		sim_check_truncate(w, n, u->truncate_after);
		memset(&wr, 0, sizeof(wr));
		wr.kind = W_TRUNC;
		wr.after = u->truncate_after;
		sim_disk_write(&n->disk, &wr);
		wrote = true;
	}
	for (size_t i = 0; i < u->n_entries; i++) {
		const struct raft_entry *e = &u->entries[i];
		if (e->index != n->disk.written_last + 1) {
			sim_fail(w, "persist-contract",
				 "node %llu: entry %llu to persist does not follow the stored log "
				 "(last %llu)",
				 (unsigned long long)n->id, (unsigned long long)e->index,
				 (unsigned long long)n->disk.written_last);
			return;
		}
		uint64_t prev_term = i > 0
					 ? u->entries[i - 1].term
					 : (e->index > 1 ? raft_term_at(n->core, e->index - 1) : 0);
		sim_check_persist_entry(w, n, e, prev_term);
		memset(&wr, 0, sizeof(wr));
		wr.kind = W_APPEND;
		wr.e.index = e->index;
		wr.e.term = e->term;
		wr.e.type = e->type;
		wr.e.len = e->len;
		wr.e.data = sp_malloc(e->len ? e->len : 1);
		if (e->len)
			memcpy(wr.e.data, e->data, e->len);
		sim_disk_write(&n->disk, &wr);
		wrote = true;
	}
	if (u->hs_changed) {
		memset(&wr, 0, sizeof(wr));
		wr.kind = W_HS;
		wr.hs = u->hs;
		sim_disk_write(&n->disk, &wr);
		wrote = true;
	}
	if (u->persist_seq) {
		memset(&wr, 0, sizeof(wr));
		wr.kind = W_MARK;
		wr.persist_seq = u->persist_seq;
		sim_disk_write(&n->disk, &wr);
		wrote = true;
	}
	if (!wrote)
		return;
	SIM_TRACE(w,
		  "node %llu writes: trunc %lld, entries %llu..%llu, hs %d (term %llu vote %llu), "
		  "seq %llu",
		  (unsigned long long)n->id,
		  u->truncate_after == UINT64_MAX ? -1ll : (long long)u->truncate_after,
		  (unsigned long long)(u->n_entries ? u->entries[0].index : 0),
		  (unsigned long long)(u->n_entries ? u->entries[u->n_entries - 1].index : 0),
		  u->hs_changed, (unsigned long long)u->hs.term, (unsigned long long)u->hs.vote,
		  (unsigned long long)u->persist_seq);
	request_fsync(w, n);
	if (u->n_entries && raft_role_of(n->core) == RAFT_LEADER)
		sim_nemesis_spring(w, n, TRAP_PERSIST);
	if (n->crash_armed && w->phase == PHASE_FAULTS) {
		/* Crash while these writes are still unsynced. */
		n->crash_armed = false;
		uint64_t until = n->last_fsync_at > w->now + 1 ? n->last_fsync_at - 1 : w->now;
		schedule_node_event(w, n, sim_rng_range(&w->rng_nem, w->now, until), EV_CRASH, 0,
				    0);
	}
}

static void stage_snapshot(struct sim_world *w, struct sim_node *n, const struct raft_update *u)
{
	if (!n->staging || n->stage_meta.index != u->snap_meta.index ||
	    n->stage_meta.term != u->snap_meta.term || (u->snap_offset == 0 && u->snap_chunk_len)) {
		n->staging = true;
		n->stage_meta = u->snap_meta;
		n->stage_len = 0;
	}
	if (u->snap_chunk_len) {
		size_t need = (size_t)u->snap_offset + u->snap_chunk_len;
		if (need > n->stage_cap) {
			n->stage_cap = need * 2;
			n->stage = sp_realloc(n->stage, n->stage_cap);
		}
		if (u->snap_offset > n->stage_len)
			memset(n->stage + n->stage_len, 0, (size_t)u->snap_offset - n->stage_len);
		memcpy(n->stage + u->snap_offset, u->snap_chunk, u->snap_chunk_len);
		if (need > n->stage_len)
			n->stage_len = need;
	}
	if (u->snap_complete) {
		struct sim_write wr = {0};
		wr.kind = W_SNAP_INSTALL;
		wr.snap = sim_snapfile_new(&u->snap_meta, n->stage, n->stage_len);
		SIM_TRACE(w, "node %llu snapshot %llu complete (%zu bytes), writing",
			  (unsigned long long)n->id, (unsigned long long)u->snap_meta.index,
			  n->stage_len);
		sim_disk_write(&n->disk, &wr);
		n->staging = false;
		n->stage_len = 0;
		request_fsync(w, n);
	}
}

/* Fields the core set that do not survive the codec: the core may be
 * relying on something the wire does not carry. Reported once per kind of
 * field (see sim_report_codec_drops), not a failure in itself; a real
 * problem shows up as a safety or liveness failure. */
static void codec_compare(struct sim_world *w, const struct raft_msg *m, const struct sp_buf *buf)
{
	struct raft_msg d;
	int rc = raft_msg_decode((const uint8_t *)sp_buf_begin(buf), buf->len, &d, w->dec_entries,
				 SIM_MAX_ENTRIES);
	if (rc) {
		sim_fail(w, "codec", "a %s message the core emitted does not decode: %s",
			 raft_msg_type_name(m->type), sp_strerror(rc));
		return;
	}
	struct {
		const char *name;
		bool differs;
	} f[] = {
	    {"from", d.from != m->from},
	    {"to", d.to != m->to},
	    {"term", d.term != m->term},
	    {"prev_index", d.prev_index != m->prev_index},
	    {"prev_term", d.prev_term != m->prev_term},
	    {"commit", d.commit != m->commit},
	    {"n_entries", d.n_entries != m->n_entries},
	    {"index", d.index != m->index},
	    {"hint", d.hint != m->hint},
	    {"reject", d.reject != m->reject},
	    {"log_term", d.log_term != m->log_term},
	    {"transfer", d.transfer != m->transfer},
	    {"ctx", d.ctx != m->ctx},
	    {"snap.index", d.snap.index != m->snap.index},
	    {"snap.term", d.snap.term != m->snap.term},
	    {"snap.conf", d.snap.conf.n != m->snap.conf.n},
	    {"offset", d.offset != m->offset},
	    {"len", d.len != m->len},
	    {"last", d.last != m->last},
	};
	for (uint32_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (!f[i].differs)
			continue;
		uint64_t bit = 1ull << i;
		if (m->type < RAFT_MSG__LAST && !(w->codec_drops[m->type] & bit)) {
			w->codec_drops[m->type] |= bit;
			SIM_TRACE(w, "codec drops %s.%s", raft_msg_type_name(m->type), f[i].name);
			sim_note_codec_drop(raft_msg_type_name(m->type), f[i].name);
		}
	}
}

static void send_msg(struct sim_world *w, struct sim_node *n, const struct raft_msg *orig,
		     struct sp_buf *buf)
{
	struct raft_msg m = *orig;
	if (m.from != n->id) {
		sim_fail(w, "send-contract", "node %llu sends a message from %llu",
			 (unsigned long long)n->id, (unsigned long long)m.from);
		return;
	}
	sim_check_send(w, n, &m);
	if (m.type == RAFT_MSG_SNAPSHOT && m.data == NULL) {
		struct sim_snapfile *s = find_served(n, m.snap.index);
		if (!s) {
			/* raft.h: a node that can no longer read the snapshot
			 * drops the message; the transfer restarts later. */
			w->st.snap_msgs_dropped++;
			return;
		}
		if (m.offset > s->len) {
			sim_fail(
			    w, "snapshot-source",
			    "node %llu sends snapshot %llu at offset %llu beyond its %zu bytes",
			    (unsigned long long)n->id, (unsigned long long)m.snap.index,
			    (unsigned long long)m.offset, s->len);
			return;
		}
		size_t left = s->len - (size_t)m.offset;
		size_t chunk = n->cfg.max_snapshot_chunk;
		m.len = (uint32_t)(left < chunk ? left : chunk);
		m.data = s->data + m.offset;
		m.last = m.offset + m.len == s->len;
	}
	if (w->opts->trace)
		trace_msg(w, "send", &m);
	sp_buf_clear(buf);
	raft_msg_encode(&m, buf);
	codec_compare(w, &m, buf);
	sim_net_send(w, n->id, m.to, (const uint8_t *)sp_buf_begin(buf), buf->len);
}

static void maybe_snapshot(struct sim_world *w, struct sim_node *n)
{
	if (n->snap_saving || n->kv.applied == 0 ||
	    n->kv.applied < n->last_snap_index + w->p.snap_every)
		return;
	struct raft_snapshot_meta meta = {0};
	meta.index = n->kv.applied;
	meta.term = n->kv.applied_term;
	meta.conf = n->kv.conf;
	size_t len;
	uint8_t *data = sim_kv_serialise(&n->kv, w->p.snap_pad, &len);
	struct sim_write wr = {0};
	wr.kind = W_SNAP_SAVE;
	wr.snap = sim_snapfile_new(&meta, data, len);
	free(data);
	sim_disk_write(&n->disk, &wr);
	n->snap_saving = true;
	request_fsync(w, n);
}

/* A committed CONF entry: nodes it leaves out, added before it, stop. */
static void conf_applied(struct sim_world *w, struct sim_node *n, const struct raft_entry *e)
{
	for (uint32_t id = 1; id <= w->n_ids; id++) {
		struct sim_node *m = &w->nodes[id];
		if (!m->exists || m->removed || m->add_index > e->index)
			continue;
		if (raft_conf_role(&n->kv.conf, id) != 0)
			continue;
		/* Stop it from the event loop, not from inside this
		 * node's update. */
		m->removed = true;
		schedule_node_event(w, m, w->now, EV_CRASH, 0, 1);
	}
}

static void apply_entry(struct sim_world *w, struct sim_node *n, const struct raft_entry *e)
{
	if (e->index != n->kv.applied + 1) {
		sim_fail(w, "apply-order", "node %llu: committed entry %llu after applied %llu",
			 (unsigned long long)n->id, (unsigned long long)e->index,
			 (unsigned long long)n->kv.applied);
		return;
	}
	struct sim_cmd cmd;
	bool have_cmd = false, cmd_ok = false;
	if (e->type == RAFT_ENTRY_NORMAL) {
		if (sim_cmd_decode(e->data, e->len, &cmd)) {
			sim_fail(w, "entry-data", "node %llu: entry %llu is not a command",
				 (unsigned long long)n->id, (unsigned long long)e->index);
			return;
		}
		have_cmd = true;
		cmd_ok = sim_kv_apply(&n->kv, &cmd);
	} else if (e->type == RAFT_ENTRY_CONF) {
		struct raft_conf conf;
		if (raft_conf_decode(e->data, e->len, &conf)) {
			sim_fail(w, "entry-data", "node %llu: entry %llu is not a configuration",
				 (unsigned long long)n->id, (unsigned long long)e->index);
			return;
		}
		n->kv.conf = conf;
	}
	n->kv.applied = e->index;
	n->kv.applied_term = e->term;
	sim_check_apply(w, n, e);
	if (e->type == RAFT_ENTRY_CONF)
		conf_applied(w, n, e);
	for (uint32_t c = 0; c < SIM_MAX_CLIENTS; c++) {
		struct sim_pending *p = &n->pend[c];
		if (!p->used || p->is_read || p->index != e->index)
			continue;
		p->used = false;
		if (e->term != p->term) {
			/* Another entry took the index: ours never will. */
			sim_client_answer(w, n, p->client, p->token, OP_FAIL, NULL);
		} else if (!have_cmd || cmd.op_id != p->op_id) {
			sim_fail(w, "log-matching",
				 "node %llu: op %llu proposed at (%llu, %llu) but that entry "
				 "carries something else",
				 (unsigned long long)n->id, (unsigned long long)p->op_id,
				 (unsigned long long)p->index, (unsigned long long)p->term);
		} else {
			sim_client_answer(w, n, p->client, p->token, cmd_ok ? OP_OK : OP_FAIL,
					  NULL);
		}
	}
}

static void process_update(struct sim_world *w, struct sim_node *n, const struct raft_update *u)
{
	if (u->role_changed) {
		SIM_TRACE(w, "node %llu is %s, term %llu, leader %llu", (unsigned long long)n->id,
			  raft_role_name(u->role), (unsigned long long)u->term,
			  (unsigned long long)u->leader);
		if (u->role == RAFT_LEADER)
			sim_check_leader_seen(w, n, u->term);
	}
	persist(w, n, u);
	if (u->snap_chunk_len || u->snap_complete)
		stage_snapshot(w, n, u);
	if (u->n_msgs) {
		struct sp_buf buf;
		sp_buf_init(&buf);
		for (size_t i = 0; i < u->n_msgs; i++)
			send_msg(w, n, &u->msgs[i], &buf);
		sp_buf_free(&buf);
	}
	for (size_t i = 0; i < u->n_committed; i++)
		apply_entry(w, n, &u->committed[i]);
	for (size_t i = 0; i < u->n_reads; i++) {
		const struct raft_read *rd = &u->reads[i];
		for (uint32_t c = 0; c < SIM_MAX_CLIENTS; c++) {
			struct sim_pending *p = &n->pend[c];
			if (!p->used || !p->is_read || p->read_id != rd->id)
				continue;
			if (rd->err) {
				p->used = false;
				sim_client_answer(w, n, p->client, p->token, OP_FAIL, NULL);
			} else {
				sim_check_read_index(w, n, rd->index, p->read_floor, false);
				p->read_index = rd->index;
				p->read_known = true;
			}
		}
	}
	serve_reads(w, n);
	maybe_snapshot(w, n);
}
