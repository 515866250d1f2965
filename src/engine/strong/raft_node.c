/*
 * raft_node: see raft_node.h. The loop: events (frames, ticks, proposals,
 * sync completions) only feed the core and mark the node dirty; a check
 * handle (after I/O) and a prepare handle (after timers) drain the core's
 * updates once per iteration.
 */
#include "engine/strong/raft_node.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "engine/strong/raft_log.h"

#define DECODE_MAX_ENTRIES 4096

struct waiter {
	uint64_t index, term;
	raft_node_cb cb;
	void *arg;
};

/* A completion to deliver once the update that caused it is handled:
 * callbacks may propose again, which changes the core's log that the
 * update points into. */
struct done {
	raft_node_cb cb;
	void *arg;
	int err;
	uint64_t index;
};

struct read_waiter {
	uint64_t id, index;
	bool ready;
	raft_node_cb cb;
	void *arg;
};

/* Something that becomes true once the log is synced past a write. */
struct durable_mark {
	uint64_t wgen;	  /* raft_log_write generation it needs */
	uint64_t seq;	  /* raft_persisted(seq), or 0 */
	uint64_t install; /* raft_snapshot_installed(index), or 0 */
};

struct raft_node {
	uv_loop_t *loop;
	struct peer_net *net;
	struct raft *core;
	struct raft_log *log;
	struct raft_node_fsm fsm;
	struct raft_node_config cfg;
	const struct sp_clock *clock;

	uv_timer_t tick;
	uv_prepare_t prepare;
	uv_check_t check;
	int handles_open;
	bool closing, failed, dirty, draining;

	/* Group commit. */
	uv_work_t sync_work;
	bool sync_inflight, compact_wanted, compact_running;
	int sync_rc;
	uint64_t wgen;	    /* raft_log_write calls that wrote something */
	uint64_t sync_wgen; /* generation the in-flight sync covers */
	uint64_t durable_wgen;
	uint64_t sync_entries_pending;
	struct durable_mark *marks;
	size_t n_marks, cap_marks;

	struct waiter *waiters;
	size_t n_waiters, cap_waiters;
	struct read_waiter *reads;
	size_t n_reads, cap_reads;
	struct done *done;
	size_t n_done, cap_done;
	uint64_t next_read_id;

	uint64_t applied, last_snapshot;
	uint64_t last_snapshot_ms; /* when the last snapshot was started */
	bool snapshot_running;	   /* snapshot_take returned 1, not done yet */
	uint64_t marker;	   /* the newest snapshot marker written to the log */
	bool sync_real;		   /* the sync in flight calls fdatasync */
	uint64_t last_real_sync_ms;
	struct sp_buf enc;
	uint8_t *chunk_buf;
	struct raft_entry *dec_entries;
	struct raft_node_stats stats;
};

static uint64_t now_ms(const struct raft_node *n)
{
	return sp_mono_ns(n->clock) / 1000000;
}

static void drain(struct raft_node *n);

static void mark_durable(struct raft_node *n, uint64_t seq, uint64_t install)
{
	if (n->n_marks == n->cap_marks) {
		n->cap_marks = n->cap_marks ? n->cap_marks * 2 : 64;
		n->marks = sp_realloc(n->marks, n->cap_marks * sizeof(*n->marks));
	}
	n->marks[n->n_marks++] =
	    (struct durable_mark){.wgen = n->wgen, .seq = seq, .install = install};
}

/* fail stops a node whose disk failed: it can no longer promise anything,
 * so it falls silent, as a crashed node would. */
static void fail(struct raft_node *n, const char *what, int rc)
{
	if (!n->failed)
		sp_error("raft: %s failed: %s; this node stops taking part", what, sp_strerror(rc));
	n->failed = true;
}

/* ---- group commit ---- */

static void sync_work_cb(uv_work_t *req)
{
	struct raft_node *n = req->data;
	n->sync_rc = n->sync_real ? raft_log_sync(n->log) : 0;
	if (n->sync_rc == 0 && n->compact_running) {
		int rc = raft_log_compact(n->log);
		if (rc)
			sp_warn("raft: log compaction failed: %s", sp_strerror(rc));
	}
}

static void maybe_free(struct raft_node *n);

static void sync_done_cb(uv_work_t *req, int status)
{
	struct raft_node *n = req->data;
	(void)status;
	n->sync_inflight = false;
	n->compact_running = false;
	if (n->closing) {
		maybe_free(n);
		return;
	}
	if (n->sync_rc) {
		fail(n, "log sync", n->sync_rc);
		return;
	}
	n->stats.syncs++;
	n->durable_wgen = n->sync_wgen;
	size_t keep = 0;
	for (size_t i = 0; i < n->n_marks; i++) {
		struct durable_mark *m = &n->marks[i];
		if (m->wgen > n->durable_wgen) {
			n->marks[keep++] = *m;
			continue;
		}
		if (m->seq)
			raft_persisted(n->core, m->seq);
		if (m->install) {
			n->stats.snapshots_installed++;
			raft_snapshot_installed(n->core, m->install);
		}
	}
	n->n_marks = keep;
	n->dirty = true;
	drain(n);
}

static void maybe_sync(struct raft_node *n)
{
	if (n->sync_inflight || n->failed || n->closing || n->durable_wgen >= n->wgen)
		return;
	n->sync_inflight = true;
	n->sync_wgen = n->wgen;
	/* Without per-group syncs (fsync batch), a group is still synced
	 * when the last real sync is sync_interval_ms old. */
	uint64_t now = now_ms(n);
	n->sync_real = !n->cfg.no_sync || (n->cfg.sync_interval_ms &&
					   now - n->last_real_sync_ms >= n->cfg.sync_interval_ms);
	if (n->sync_real)
		n->last_real_sync_ms = now;
	n->compact_running = n->compact_wanted;
	n->compact_wanted = false;
	n->stats.sync_entries += n->sync_entries_pending;
	n->sync_entries_pending = 0;
	n->sync_work.data = n;
	int rc = uv_queue_work(n->loop, &n->sync_work, sync_work_cb, sync_done_cb);
	if (rc) {
		n->sync_inflight = false;
		fail(n, "queueing a log sync", rc);
	}
}

static int write_log(struct raft_node *n)
{
	uint64_t before = raft_log_bytes(n->log);
	int rc = raft_log_write(n->log);
	if (rc)
		return rc;
	n->wgen++;
	n->stats.records_written++;
	n->stats.bytes_written += raft_log_bytes(n->log) - before;
	return 0;
}

/* ---- completions ---- */

static void complete(struct raft_node *n, raft_node_cb cb, void *arg, int err, uint64_t index)
{
	if (n->n_done == n->cap_done) {
		n->cap_done = n->cap_done ? n->cap_done * 2 : 256;
		n->done = sp_realloc(n->done, n->cap_done * sizeof(*n->done));
	}
	n->done[n->n_done++] = (struct done){.cb = cb, .arg = arg, .err = err, .index = index};
}

/* run_done delivers queued completions; those may queue more. */
static void run_done(struct raft_node *n)
{
	for (size_t i = 0; i < n->n_done; i++) {
		struct done d = n->done[i];
		d.cb(d.arg, d.err, d.index);
	}
	n->n_done = 0;
}

static void finish_waiters(struct raft_node *n, const struct raft_entry *batch, size_t count)
{
	uint64_t lo = batch[0].index, hi = batch[count - 1].index;
	size_t keep = 0;
	for (size_t i = 0; i < n->n_waiters; i++) {
		struct waiter w = n->waiters[i];
		if (w.index > hi) {
			n->waiters[keep++] = w;
			continue;
		}
		/* The entry applied at w.index is ours if its term is the one
		 * we proposed in; otherwise ours was overwritten (§5.3). */
		uint64_t term = w.index >= lo ? batch[w.index - lo].term : 0;
		complete(n, w.cb, w.arg, term == w.term ? 0 : SP_ERR_AGAIN, w.index);
	}
	n->n_waiters = keep;
}

/*
 * finish_waiters_at_snapshot decides the proposals a snapshot covers. The
 * snapshot's last entry (index S, term T) is committed; log terms never
 * decrease along a log, so:
 *  - T < the proposal's term: the committed entry at its index has an
 *    older term than ours: ours was overwritten;
 *  - T == its term: the leader of that term (this node) made entry S, so
 *    the committed prefix up to S is this node's own log of that term,
 *    which holds the proposal: it committed;
 *  - T > its term: no way to tell from here.
 */
static void finish_waiters_at_snapshot(struct raft_node *n, const struct raft_snapshot_meta *m)
{
	size_t keep = 0;
	for (size_t i = 0; i < n->n_waiters; i++) {
		struct waiter w = n->waiters[i];
		if (w.index > m->index) {
			n->waiters[keep++] = w;
			continue;
		}
		int err = m->term < w.term ? SP_ERR_AGAIN : m->term == w.term ? 0 : SP_ERR_UNKNOWN;
		complete(n, w.cb, w.arg, err, w.index);
	}
	n->n_waiters = keep;
}

static void finish_reads(struct raft_node *n)
{
	size_t keep = 0;
	for (size_t i = 0; i < n->n_reads; i++) {
		struct read_waiter rw = n->reads[i];
		if (rw.ready && rw.index <= n->applied)
			complete(n, rw.cb, rw.arg, 0, rw.index);
		else
			n->reads[keep++] = rw;
	}
	n->n_reads = keep;
}

static void read_answer(struct raft_node *n, const struct raft_read *rd)
{
	for (size_t i = 0; i < n->n_reads; i++) {
		struct read_waiter *rw = &n->reads[i];
		if (rw->id != rd->id)
			continue;
		if (rd->err) {
			complete(n, rw->cb, rw->arg, rd->err, 0);
			n->reads[i] = n->reads[--n->n_reads];
		} else {
			rw->ready = true;
			rw->index = rd->index;
		}
		return;
	}
}

/* ---- sending ---- */

static void send_msg(struct raft_node *n, struct raft_msg *m)
{
	if (m->type == RAFT_MSG_SNAPSHOT) {
		/* Stream the chunk from the state machine's snapshot. */
		bool last = false;
		int got =
		    n->fsm.snapshot_read
			? n->fsm.snapshot_read(n->fsm.ctx, m->snap.index, m->offset, n->chunk_buf,
					       n->cfg.raft.max_snapshot_chunk, &last)
			: SP_ERR_INVAL;
		if (got < 0) {
			sp_warn("raft: reading snapshot %llu at %llu failed: %s",
				(unsigned long long)m->snap.index, (unsigned long long)m->offset,
				sp_strerror(got));
			return;
		}
		m->data = n->chunk_buf;
		m->len = (uint32_t)got;
		m->last = last;
	}
	sp_buf_clear(&n->enc);
	raft_msg_encode(m, &n->enc);
	(void)peer_net_send(n->net, m->to, RAFT_NODE_CHANNEL, sp_buf_begin(&n->enc), n->enc.len);
}

/* ---- snapshots ---- */

static void snapshot_saved(struct raft_node *n, uint64_t index)
{
	struct raft_snapshot_meta meta = {.index = index,
					  .term = raft_term_at(n->core, index),
					  .conf = *raft_configuration(n->core)};
	if (raft_snapshot_saved(n->core, index) != 0)
		return;
	n->last_snapshot = index;
	n->stats.snapshots_taken++;
	/* The marker lets the log drop entries the snapshot covers; the
	 * segments go at the next sync. */
	raft_log_set_snapshot(n->log, &meta);
	n->marker = index;
	int wrc = write_log(n);
	if (wrc)
		fail(n, "log write", wrc);
	n->compact_wanted = true;
	n->dirty = true;
}

static void maybe_snapshot(struct raft_node *n)
{
	if (!n->cfg.snapshot_every || !n->fsm.snapshot_take || n->snapshot_running ||
	    n->applied < n->last_snapshot + n->cfg.snapshot_every)
		return;
	uint64_t now = now_ms(n);
	if (n->cfg.snapshot_min_ms && now - n->last_snapshot_ms < n->cfg.snapshot_min_ms &&
	    n->applied < n->last_snapshot + 8 * n->cfg.snapshot_every)
		return;
	n->last_snapshot_ms = now;
	uint64_t index = n->applied;
	int rc = n->fsm.snapshot_take(n->fsm.ctx, index);
	if (rc == 1) {
		n->snapshot_running = true;
		n->last_snapshot = index; /* the next is due a period later */
		return;
	}
	if (rc) {
		sp_warn("raft: snapshot at %llu failed: %s", (unsigned long long)index,
			sp_strerror(rc));
		n->last_snapshot = index; /* try again after another period */
		return;
	}
	snapshot_saved(n, index);
}

void raft_node_snapshot_done(struct raft_node *n, uint64_t index, int err)
{
	n->snapshot_running = false;
	if (n->failed || n->closing)
		return;
	if (err) {
		sp_warn("raft: snapshot at %llu failed: %s", (unsigned long long)index,
			sp_strerror(err));
		return;
	}
	/* A snapshot installed from the leader meanwhile may have moved past:
	 * its marker is in the log already, though the core learns of it only
	 * when that write is durable, so the log's marker is what to compare
	 * with (an older marker after it would be refused). */
	if (index <= n->marker || index <= raft_snapshot_index(n->core))
		return;
	snapshot_saved(n, index);
}

/* ---- the drain ---- */

static void handle_update(struct raft_node *n, struct raft_update *u)
{
	if (u->persist_seq) {
		if (u->truncate_after != UINT64_MAX)
			raft_log_truncate_after(n->log, u->truncate_after);
		if (u->n_entries)
			raft_log_append(n->log, u->entries, u->n_entries);
		if (u->hs_changed)
			raft_log_set_hard_state(n->log, &u->hs);
		int rc = write_log(n);
		if (rc) {
			fail(n, "log write", rc);
			return;
		}
		n->sync_entries_pending += u->n_entries;
		mark_durable(n, u->persist_seq, 0);
	}
	if (u->snap_chunk_len && n->fsm.snapshot_write) {
		int rc = n->fsm.snapshot_write(n->fsm.ctx, &u->snap_meta, u->snap_offset,
					       u->snap_chunk, u->snap_chunk_len);
		if (rc)
			sp_warn("raft: storing snapshot chunk failed: %s", sp_strerror(rc));
	}
	if (u->snap_complete && n->fsm.snapshot_install) {
		int rc = n->fsm.snapshot_install(n->fsm.ctx, &u->snap_meta);
		if (rc) {
			fail(n, "installing a snapshot", rc);
			return;
		}
		/* The log restarts at the snapshot: durable before the core
		 * tells the leader it has it. */
		raft_log_set_snapshot(n->log, &u->snap_meta);
		n->marker = u->snap_meta.index;
		raft_log_truncate_after(n->log, u->snap_meta.index);
		rc = write_log(n);
		if (rc) {
			fail(n, "log write", rc);
			return;
		}
		mark_durable(n, 0, u->snap_meta.index);
		n->applied = u->snap_meta.index;
		finish_waiters_at_snapshot(n, &u->snap_meta);
		n->last_snapshot = u->snap_meta.index;
	}
	for (size_t i = 0; i < u->n_msgs; i++) {
		struct raft_msg m = u->msgs[i];
		send_msg(n, &m);
	}
	if (u->n_committed) {
		for (size_t i = 0; i < u->n_committed; i++) {
			n->fsm.apply(n->fsm.ctx, &u->committed[i]);
			n->applied = u->committed[i].index;
		}
		n->stats.applied += u->n_committed;
		finish_waiters(n, u->committed, u->n_committed);
	}
	for (size_t i = 0; i < u->n_reads; i++)
		read_answer(n, &u->reads[i]);
	if (u->role_changed && n->fsm.role_changed)
		n->fsm.role_changed(n->fsm.ctx, u->role, u->term, u->leader);
}

static void drain(struct raft_node *n)
{
	if (n->draining || n->failed || n->closing)
		return;
	n->draining = true;
	struct raft_update u;
	while (raft_take_update(n->core, &u) && !n->failed) {
		handle_update(n, &u);
		finish_reads(n);
		run_done(n);
	}
	if (!n->failed)
		maybe_snapshot(n);
	n->dirty = false;
	n->draining = false;
	maybe_sync(n);
}

static void prepare_cb(uv_prepare_t *h)
{
	struct raft_node *n = h->data;
	if (n->dirty)
		drain(n);
}

static void check_cb(uv_check_t *h)
{
	struct raft_node *n = h->data;
	if (n->dirty)
		drain(n);
}

static void tick_cb(uv_timer_t *t)
{
	struct raft_node *n = t->data;
	if (n->failed)
		return;
	raft_tick(n->core, now_ms(n));
	n->dirty = true;
}

/* ---- public ---- */

int raft_node_open(struct raft_node **out, uv_loop_t *loop, struct peer_net *net,
		   const struct raft_node_config *cfg, const struct raft_node_fsm *fsm)
{
	struct raft_node *n = sp_calloc(1, sizeof(*n));
	n->loop = loop;
	n->net = net;
	n->fsm = *fsm;
	n->cfg = *cfg;
	n->clock = cfg->clock ? cfg->clock : sp_clock_system();
	if (!n->cfg.tick_ms)
		n->cfg.tick_ms = 5;
	sp_buf_init(&n->enc);
	int rc = raft_log_open(&n->log, cfg->dir);
	if (rc)
		goto free_node;
	struct raft_restore rs;
	struct raft_log_recovery rec;
	rc = raft_log_load(n->log, &rs, &rec);
	if (rc)
		goto close_log;
	if (rec.torn_bytes)
		sp_warn("raft: cut %llu torn bytes from the log's tail",
			(unsigned long long)rec.torn_bytes);
	rs.bootstrap = cfg->bootstrap;
	rc = raft_open(&n->core, &cfg->raft, &rs, now_ms(n));
	if (rc)
		goto close_log;
	n->applied = rs.has_snapshot ? rs.snap.index : 0;
	n->last_snapshot = n->applied;
	n->marker = n->applied;
	n->chunk_buf = sp_malloc(cfg->raft.max_snapshot_chunk ? cfg->raft.max_snapshot_chunk : 1);
	n->dec_entries = sp_calloc(DECODE_MAX_ENTRIES, sizeof(*n->dec_entries));
	uv_timer_init(loop, &n->tick);
	uv_prepare_init(loop, &n->prepare);
	uv_check_init(loop, &n->check);
	n->tick.data = n->prepare.data = n->check.data = n;
	n->handles_open = 3;
	uv_timer_start(&n->tick, tick_cb, n->cfg.tick_ms, n->cfg.tick_ms);
	uv_prepare_start(&n->prepare, prepare_cb);
	uv_check_start(&n->check, check_cb);
	n->dirty = true;
	*out = n;
	return 0;
close_log:
	raft_log_close(n->log);
free_node:
	sp_buf_free(&n->enc);
	free(n);
	return rc;
}

static void maybe_free(struct raft_node *n)
{
	if (n->handles_open || n->sync_inflight)
		return;
	raft_log_close(n->log);
	raft_close(n->core);
	sp_buf_free(&n->enc);
	free(n->chunk_buf);
	free(n->dec_entries);
	free(n->marks);
	free(n->waiters);
	free(n->reads);
	free(n->done);
	free(n);
}

static void handle_closed(uv_handle_t *h)
{
	struct raft_node *n = h->data;
	n->handles_open--;
	maybe_free(n);
}

void raft_node_close(struct raft_node *n)
{
	if (!n)
		return;
	n->closing = true;
	for (size_t i = 0; i < n->n_waiters; i++)
		n->waiters[i].cb(n->waiters[i].arg, SP_ERR_NOTLEADER, n->waiters[i].index);
	n->n_waiters = 0;
	for (size_t i = 0; i < n->n_reads; i++)
		n->reads[i].cb(n->reads[i].arg, SP_ERR_NOTLEADER, 0);
	n->n_reads = 0;
	uv_close((uv_handle_t *)&n->tick, handle_closed);
	uv_close((uv_handle_t *)&n->prepare, handle_closed);
	uv_close((uv_handle_t *)&n->check, handle_closed);
}

void raft_node_recv(struct raft_node *n, uint64_t from, const uint8_t *payload, size_t len)
{
	if (n->failed || n->closing)
		return;
	struct raft_msg m;
	int rc = raft_msg_decode(payload, len, &m, n->dec_entries, DECODE_MAX_ENTRIES);
	if (rc || m.from != from) {
		n->stats.recv_bad++;
		return;
	}
	/* The core stamps what it hears with its clock (a follower's last
	 * contact with the leader bounds when it may vote again, which leases
	 * rely on): bring the clock up to now first, in case the loop
	 * stalled since the last tick. */
	raft_tick(n->core, now_ms(n));
	raft_step(n->core, &m);
	n->dirty = true;
}

int raft_node_propose(struct raft_node *n, const void *data, size_t len, raft_node_cb cb, void *arg)
{
	if (n->failed || n->closing)
		return SP_ERR_NOTLEADER;
	uint64_t index, term;
	int rc = raft_propose(n->core, data, len, &index, &term);
	if (rc)
		return rc;
	if (n->n_waiters == n->cap_waiters) {
		n->cap_waiters = n->cap_waiters ? n->cap_waiters * 2 : 256;
		n->waiters = sp_realloc(n->waiters, n->cap_waiters * sizeof(*n->waiters));
	}
	n->waiters[n->n_waiters++] =
	    (struct waiter){.index = index, .term = term, .cb = cb, .arg = arg};
	n->dirty = true;
	return 0;
}

int raft_node_read(struct raft_node *n, raft_node_cb cb, void *arg)
{
	if (n->failed || n->closing)
		return SP_ERR_NOTLEADER;
	uint64_t id = ++n->next_read_id;
	int rc = raft_read_index(n->core, id);
	if (rc)
		return rc;
	if (n->n_reads == n->cap_reads) {
		n->cap_reads = n->cap_reads ? n->cap_reads * 2 : 64;
		n->reads = sp_realloc(n->reads, n->cap_reads * sizeof(*n->reads));
	}
	n->reads[n->n_reads++] = (struct read_waiter){.id = id, .cb = cb, .arg = arg};
	n->dirty = true;
	return 0;
}

int raft_node_read_lease(struct raft_node *n)
{
	uint64_t index;
	if (n->failed || n->closing)
		return SP_ERR_NOTLEADER;
	raft_tick(n->core, now_ms(n));
	n->dirty = true;
	int rc = raft_read_lease(n->core, &index);
	if (rc)
		return rc;
	return index <= n->applied ? 0 : SP_ERR_NOTLEADER;
}

int raft_node_add_server(struct raft_node *n, uint64_t id)
{
	n->dirty = true;
	return raft_add_server(n->core, id);
}

int raft_node_remove_server(struct raft_node *n, uint64_t id)
{
	n->dirty = true;
	return raft_remove_server(n->core, id);
}

int raft_node_transfer(struct raft_node *n, uint64_t id)
{
	n->dirty = true;
	return raft_transfer_leadership(n->core, id);
}

struct raft *raft_node_core(struct raft_node *n)
{
	return n->core;
}

void raft_node_get_stats(const struct raft_node *n, struct raft_node_stats *st)
{
	*st = n->stats;
	raft_get_stats(n->core, &st->core);
}
