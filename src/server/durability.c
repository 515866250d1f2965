/*
 * durability: the store's batches, and when output leaves the node.
 *
 * Every write is a Raft entry, durable in the Raft log (on a majority,
 * under fsync always) before any node applies it. Applying writes into the
 * store's open batch; at the end of each loop iteration the batch is
 * committed (store_commit: no fsync; the data is in the OS page cache),
 * with the applied index recorded in it (strong_flush_applied), and the
 * clients with output are flushed. Nothing a reply reveals can be taken
 * back by a crash, since a restart re-applies the log after the store's
 * applied index, so replies are never held for the store's own sync: the
 * store is synced only for snapshots (strong.c) and at shutdown.
 *
 * A commit that fails would lose applied entries on this replica alone,
 * so it stops the node; a restart re-applies them.
 */
#include <stdlib.h>

#include "common/err.h"
#include "common/log.h"
#include "engine/causal/causal.h"
#include "engine/eventual/eventual.h"
#include "engine/strong/strong.h"
#include "obs/trace.h"
#include "server/route.h"
#include "server/server.h"

static void job_done(uv_work_t *w, int status);

/*
 * Two kinds of background job make batches durable, each covering every
 * batch committed before it started: a sync (fdatasync of the write-ahead
 * log: small and sequential, so `always` replies wait little), and a
 * checkpoint (fdatasync of the tree's file, after which the log segments
 * before it are deleted). They may run at the same time, at most one of
 * each; a checkpoint starts only after a sync finished, when a new log
 * segment can begin with no job touching the log.
 */
#define CHECKPOINT_BYTES (64ull << 20) /* log size that calls for a checkpoint */
#define CHECKPOINT_MS	 10000	       /* ... or time since the last one */

static void job_failed(const char *what, int status, int rc)
{
	/* After a failed fsync the kernel may have dropped the dirty pages;
	 * retrying could report success for data that is gone (the
	 * PostgreSQL "fsyncgate" lesson). The only honest move is to stop
	 * the node; a restart replays the log, and replicas take over. */
	sp_error("store: %s failed: %s; stopping the node so that no write is acknowledged "
		 "that may not be on disk",
		 what, status != 0 ? uv_strerror(status) : sp_strerror(rc));
	abort();
}

static void job_run(uv_work_t *w)
{
	struct durability_job *job = w->data;
	struct server *srv = job->srv;
	uint64_t t0 = sp_mono_ns(srv->clock);
	job->rc = job->checkpoint ? store_checkpoint(srv->store) : store_sync(srv->store);
	job->ns = sp_mono_ns(srv->clock) - t0;
}

static void start_job(struct server *srv, struct durability_job *job)
{
	job->srv = srv;
	job->running = 1;
	job->target = srv->committed_seq;
	job->work.data = job;
	int rc = uv_queue_work(srv->loop, &job->work, job_run, job_done);
	if (rc < 0) {
		sp_error("store: cannot queue a %s: %s", job->checkpoint ? "checkpoint" : "sync",
			 uv_strerror(rc));
		abort();
	}
}

static int checkpoint_due(const struct server *srv)
{
	if (srv->cfg->fsync == SP_FSYNC_OFF && !srv->shutting_down)
		return 0;
	uint64_t bytes = store_wal_bytes(srv->store);
	return bytes >= CHECKPOINT_BYTES ||
	       (bytes > 4096 && server_now_ms(srv) - srv->last_checkpoint_ms >= CHECKPOINT_MS);
}

static void maybe_checkpoint(struct server *srv)
{
	if (srv->checkpoint.running || srv->sync.running || !checkpoint_due(srv))
		return;
	int rc = store_checkpoint_begin(srv->store);
	if (rc < 0) {
		sp_warn("store: cannot start a checkpoint: %s", sp_strerror(rc));
		return;
	}
	start_job(srv, &srv->checkpoint);
}

static void job_done(uv_work_t *w, int status)
{
	struct durability_job *job = w->data;
	struct server *srv = job->srv;
	job->running = 0;
	if (status != 0 || job->rc != 0)
		job_failed(job->checkpoint ? "checkpoint" : "sync", status, job->rc);
	server_tick(srv);
	job->count++;
	job->ns_total += job->ns;
	if (job->ns > job->ns_max)
		job->ns_max = job->ns;
	if (job->target > srv->durable_seq)
		srv->durable_seq = job->target;
	srv->last_sync_ms = server_now_ms(srv);
	if (job->checkpoint)
		srv->last_checkpoint_ms = srv->last_sync_ms;
	maybe_checkpoint(srv);
	if (srv->cfg->fsync == SP_FSYNC_ALWAYS || srv->shutting_down)
		durability_maybe_sync(srv);
	if (srv->shutting_down && !srv->sync.running && !srv->checkpoint.running)
		server_finish_shutdown(srv);
}

void durability_maybe_sync(struct server *srv)
{
	if (srv->sync.running || srv->durable_seq >= srv->committed_seq)
		return;
	/* A checkpoint in flight covers what was committed when it began. */
	if (srv->checkpoint.running && srv->checkpoint.target >= srv->committed_seq)
		return;
	start_job(srv, &srv->sync);
}

void durability_end_of_iteration(struct server *srv)
{
	if (store_has_batch(srv->store)) {
		strong_flush_applied(srv->strong);
		int rc = store_commit(srv->store);
		if (rc) {
			/* The batch held applied Raft entries; without them this
			 * replica would differ from the others. A restart applies
			 * them again from the log. */
			sp_error("store: committing applied entries failed: %s; stopping so "
				 "that this replica never diverges (a restart re-applies them)",
				 sp_strerror(rc));
			abort();
		}
		srv->committed_seq = srv->open_seq;
		srv->open_seq++;
	}
	/* The eventual engine's batch: its acknowledgements leave only once
	 * it is committed, and so do the replies flushed below. */
	if (srv->eventual) {
		int rc = eventual_commit(srv->eventual);
		if (rc) {
			sp_error("eventual store: commit failed: %s; stopping so that no write "
				 "is acknowledged that this node does not hold",
				 sp_strerror(rc));
			abort();
		}
	}
	if (srv->causal) {
		int rc = causal_commit(srv->causal);
		if (rc) {
			sp_error("causal store: commit failed: %s; stopping so that no write is "
				 "acknowledged that this node does not hold",
				 sp_strerror(rc));
			abort();
		}
	}
	trace_flush(srv->trace);
	struct client *c = srv->pending;
	srv->pending = NULL;
	while (c) {
		struct client *next = c->pending_next;
		c->flags &= ~CLIENT_PENDING;
		c->pending_next = NULL;
		client_flush(c);
		/* Input left unparsed while too many replies were pending. */
		if ((c->flags & CLIENT_STALLED) && c->nslots < ROUTE_MAX_SLOTS / 2 &&
		    c->out.len + c->slot_bytes <= srv->cfg->max_output_buffer / 2 &&
		    !(c->flags & CLIENT_CLOSING)) {
			c->flags &= ~CLIENT_STALLED;
			client_process_input(c);
			client_flush(c);
		}
		c = next;
	}
}
