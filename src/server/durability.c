/*
 * durability: group commit, and when a reply may leave the node.
 *
 * Every write a command makes goes into the store's open batch. At the end
 * of each loop iteration the batch is committed (store_commit: no fsync,
 * but the data is then in the OS page cache and survives kill -9 of the
 * process). A reply is held until the state it reveals is as durable as
 * the fsync setting promises:
 *
 *   off     released after the commit; the OS writes to disk when it likes.
 *   batch   released after the commit; a timer syncs every
 *           fsync-interval-ms, so a power loss loses at most that window.
 *   always  released only after a sync that covers the batch completed.
 *           One sync runs at a time on libuv's thread pool and covers every
 *           batch committed before it started, so many writes share one
 *           fsync (group commit) and the loop never waits on the disk.
 *
 * "Reveals" includes reads: under `always`, a read that sees a committed
 * but not yet synced value is answered only after that sync, so no client
 * can observe a write that a crash could still take back.
 */
#include <stdlib.h>

#include "common/err.h"
#include "common/log.h"
#include "server/server.h"

uint64_t durability_visible_seq(const struct server *srv)
{
	return store_has_batch(srv->store) ? srv->open_seq : srv->committed_seq;
}

uint64_t durability_releasable_seq(const struct server *srv)
{
	return srv->cfg->fsync == SP_FSYNC_ALWAYS ? srv->durable_seq : srv->committed_seq;
}

void durability_batch_lost(struct server *srv, int err)
{
	/* The store aborted the open batch. Any earlier command of this
	 * iteration whose reply depends on it must not be answered as if it
	 * succeeded; those clients are dropped at the end of the iteration.
	 * The batch number is not reused. */
	sp_error("store: write batch %llu lost: %s", (unsigned long long)srv->open_seq,
		 sp_strerror(err));
	srv->stats.batch_failures++;
	if (srv->lost_lo == 0)
		srv->lost_lo = srv->open_seq;
	srv->lost_hi = srv->open_seq;
	srv->open_seq++;
}

static void sync_work(uv_work_t *w)
{
	struct server *srv = w->data;
	uint64_t t0 = sp_mono_ns(srv->clock);
	srv->sync_rc = store_sync(srv->store);
	uint64_t ns = sp_mono_ns(srv->clock) - t0;
	srv->sync_ns_total += ns;
	if (ns > srv->sync_ns_max)
		srv->sync_ns_max = ns;
}

static void sync_done(uv_work_t *w, int status)
{
	struct server *srv = w->data;
	srv->sync_running = 0;
	if (status != 0 || srv->sync_rc != 0) {
		/* After a failed fsync the kernel may have dropped the dirty
		 * pages; retrying could report success for data that is gone
		 * (the PostgreSQL "fsyncgate" lesson). The only honest move is
		 * to stop the node; its replicas and a restart take over. */
		sp_error("store: sync failed: %s; stopping the node to avoid acknowledging "
			 "writes that may not be on disk",
			 status != 0 ? uv_strerror(status) : sp_strerror(srv->sync_rc));
		abort();
	}
	srv->durable_seq = srv->sync_target;
	server_tick(srv);
	srv->last_sync_ms = server_now_ms(srv);
	client_release_waiting(srv);
	if (srv->cfg->fsync == SP_FSYNC_ALWAYS || srv->shutting_down)
		durability_maybe_sync(srv);
	if (srv->shutting_down && !srv->sync_running)
		server_finish_shutdown(srv);
}

void durability_maybe_sync(struct server *srv)
{
	if (srv->sync_running || srv->durable_seq >= srv->committed_seq)
		return;
	srv->sync_running = 1;
	srv->sync_target = srv->committed_seq;
	srv->sync_work.data = srv;
	int rc = uv_queue_work(srv->loop, &srv->sync_work, sync_work, sync_done);
	if (rc < 0) {
		sp_error("store: cannot queue sync: %s", uv_strerror(rc));
		abort();
	}
}

void durability_end_of_iteration(struct server *srv)
{
	if (store_has_batch(srv->store)) {
		int rc = store_commit(srv->store);
		if (rc == 0) {
			srv->committed_seq = srv->open_seq;
			srv->open_seq++;
		} else {
			durability_batch_lost(srv, rc);
		}
	}
	if (srv->lost_lo) {
		client_drop_lost(srv, srv->lost_lo, srv->lost_hi);
		srv->lost_lo = srv->lost_hi = 0;
	}
	/* A lost batch number will never commit and nobody waits on it any
	 * more: count it as passed, so later batches are not held behind it. */
	if (srv->committed_seq + 1 < srv->open_seq && !store_has_batch(srv->store))
		srv->committed_seq = srv->open_seq - 1;
	if (srv->cfg->fsync == SP_FSYNC_ALWAYS)
		durability_maybe_sync(srv);

	struct client *c = srv->pending;
	srv->pending = NULL;
	while (c) {
		struct client *next = c->pending_next;
		c->flags &= ~CLIENT_PENDING;
		c->pending_next = NULL;
		client_flush(c);
		c = next;
	}
}
