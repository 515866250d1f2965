/*
 * strong: the Raft group whose state machine is the LMDB store. See
 * strong.h for what is owned here and why.
 */
#include "engine/strong/strong.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"

/* Followers a leader may stream snapshots to at once; one more evicts the
 * stream used least recently (its follower restarts from offset 0). */
#define SNAP_STREAMS 8

struct snap_stream {
	struct store_snap *snap;
	uint64_t index; /* the Raft snapshot index it is sent as */
	uint64_t pos;	/* next offset store_snap_read continues from */
	uint64_t used;	/* LRU stamp */
};

struct strong {
	uv_loop_t *loop;
	struct store *store;
	struct raft_node *node;
	struct strong_ops ops;
	char *dir;
	char *incoming; /* <dir>/snapshot.incoming */
	int incoming_fd;
	uint64_t applied;
	bool applied_dirty; /* applied moved since the meta record was written */

	struct snap_stream streams[SNAP_STREAMS];
	uint64_t stream_clock;
	uint8_t *skip_buf;

	/* The background sync that makes a snapshot durable. */
	uv_work_t sync_work;
	bool sync_running, close_wanted;
	uint64_t sync_index;
	int sync_rc;

	struct strong_stats stats;
};

static int write_applied(struct strong *s, uint64_t index)
{
	uint8_t b[8];
	sp_put_be64(b, index);
	return store_meta_put(s->store, STRONG_META_APPLIED, b, sizeof(b));
}

static uint64_t read_applied(struct store *store)
{
	const void *v;
	size_t len;
	if (store_meta_get(store, STRONG_META_APPLIED, &v, &len) != 0 || len != 8)
		return 0;
	return sp_get_be64(v);
}

/* ---- applying ---- */

static void fsm_apply(void *ctx, const struct raft_entry *e)
{
	struct strong *s = ctx;
	/* The store may already hold this entry's effects: it survived a
	 * restart ahead of the log's snapshot marker, or it came in a
	 * snapshot streamed from a state ahead of the index named. */
	if (e->index <= s->applied) {
		s->stats.skipped++;
		return;
	}
	if (e->type == RAFT_ENTRY_NORMAL) {
		store_set_revision(s->store, e->index);
		s->ops.apply(s->ops.ctx, e->index, e->data, e->len);
	}
	/* The meta record is written once per batch, before it commits
	 * (strong_flush_applied): one B-tree write per entry saved. */
	s->applied = e->index;
	s->applied_dirty = true;
}

void strong_flush_applied(struct strong *s)
{
	if (!s || !s->applied_dirty)
		return;
	int rc = write_applied(s, s->applied);
	if (rc) {
		/* The state machine can no longer follow the log: a node that
		 * went on would diverge from the others. */
		sp_error("strong: recording applied index %llu failed: %s; stopping",
			 (unsigned long long)s->applied, sp_strerror(rc));
		abort();
	}
	s->applied_dirty = false;
}

/* ---- taking a snapshot ---- */

static void sync_work_cb(uv_work_t *w)
{
	struct strong *s = w->data;
	s->sync_rc = store_sync(s->store);
}

static void free_engine(struct strong *s);

static void sync_done_cb(uv_work_t *w, int status)
{
	struct strong *s = w->data;
	s->sync_running = false;
	if (s->close_wanted) {
		free_engine(s);
		return;
	}
	int rc = status ? SP_ERR_IO : s->sync_rc;
	if (rc == 0)
		s->stats.snapshot_syncs++;
	raft_node_snapshot_done(s->node, s->sync_index, rc);
}

static void close_stream(struct snap_stream *st)
{
	store_snap_close(st->snap);
	memset(st, 0, sizeof(*st));
}

static int fsm_snapshot_take(void *ctx, uint64_t index)
{
	struct strong *s = ctx;
	if (s->sync_running)
		return SP_ERR_AGAIN;
	/* Everything up to index was applied into the open batch; commit it,
	 * then sync the tree off the loop. */
	strong_flush_applied(s);
	int rc = store_commit(s->store);
	if (rc)
		return rc;
	/* Streams of older snapshots will not be asked for again. */
	for (int i = 0; i < SNAP_STREAMS; i++)
		if (s->streams[i].snap && s->streams[i].index < index)
			close_stream(&s->streams[i]);
	s->sync_index = index;
	s->sync_running = true;
	s->sync_work.data = s;
	rc = uv_queue_work(s->loop, &s->sync_work, sync_work_cb, sync_done_cb);
	if (rc < 0) {
		s->sync_running = false;
		return SP_ERR_IO;
	}
	return 1;
}

/* ---- sending a snapshot ---- */

static struct snap_stream *find_stream(struct strong *s, uint64_t index, uint64_t offset)
{
	struct snap_stream *behind = NULL, *ahead = NULL;
	for (int i = 0; i < SNAP_STREAMS; i++) {
		struct snap_stream *st = &s->streams[i];
		if (!st->snap || st->index != index)
			continue;
		if (st->pos == offset)
			return st;
		if (st->pos < offset && (!behind || st->pos > behind->pos))
			behind = st;
		if (st->pos > offset)
			ahead = st;
	}
	if (offset == 0)
		return NULL; /* a follower starting over gets a fresh view */
	return behind ? behind : ahead;
}

static int fsm_snapshot_read(void *ctx, uint64_t index, uint64_t offset, uint8_t *buf, uint32_t cap,
			     bool *last)
{
	struct strong *s = ctx;
	struct snap_stream *st = find_stream(s, index, offset);
	if (!st) {
		if (offset != 0)
			return SP_ERR_INVAL; /* that stream is gone; the follower restarts */
		struct snap_stream *victim = &s->streams[0];
		for (int i = 0; i < SNAP_STREAMS; i++) {
			if (!s->streams[i].snap) {
				victim = &s->streams[i];
				break;
			}
			if (s->streams[i].used < victim->used)
				victim = &s->streams[i];
		}
		if (victim->snap)
			close_stream(victim);
		strong_flush_applied(s); /* store_snap_open commits the batch */
		int rc = store_snap_open(s->store, &victim->snap);
		if (rc)
			return rc;
		victim->index = index;
		victim->pos = 0;
		s->stats.snapshots_sent_streams++;
		st = victim;
	}
	st->used = ++s->stream_clock;
	/* A stream behind the offset asked for reads forward to it. */
	while (st->pos < offset) {
		bool end = false;
		uint64_t want = offset - st->pos;
		int got = store_snap_read(st->snap, st->pos, s->skip_buf,
					  want < 65536 ? (uint32_t)want : 65536, &end);
		if (got <= 0 || end) {
			close_stream(st);
			return got < 0 ? got : SP_ERR_INVAL;
		}
		st->pos += (uint64_t)got;
	}
	int got = store_snap_read(st->snap, offset, buf, cap, last);
	if (got < 0) {
		close_stream(st);
		return got;
	}
	st->pos = offset + (uint64_t)got;
	return got;
}

/* ---- receiving a snapshot ---- */

static int fsm_snapshot_write(void *ctx, const struct raft_snapshot_meta *m, uint64_t offset,
			      const uint8_t *p, uint32_t len)
{
	struct strong *s = ctx;
	(void)m;
	if (offset == 0 || s->incoming_fd < 0) {
		if (s->incoming_fd >= 0)
			close(s->incoming_fd);
		s->incoming_fd = open(s->incoming, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (s->incoming_fd < 0)
			return -errno;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(s->incoming_fd, p + done, len - done, (off_t)(offset + done));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)w;
	}
	return 0;
}

static int fsm_snapshot_install(void *ctx, const struct raft_snapshot_meta *m)
{
	struct strong *s = ctx;
	if (s->incoming_fd >= 0) {
		close(s->incoming_fd);
		s->incoming_fd = -1;
	}
	int rc = store_restore(s->store, s->incoming);
	if (rc)
		return rc;
	/* The log will restart at m->index once this returns: the state must
	 * be on disk first. A node this far behind is not serving anyway, so
	 * the sync runs here. */
	rc = store_sync(s->store);
	if (rc)
		return rc;
	unlink(s->incoming);
	s->applied = read_applied(s->store);
	if (s->applied < m->index) {
		sp_error("strong: snapshot %llu holds state only up to %llu",
			 (unsigned long long)m->index, (unsigned long long)s->applied);
		return SP_ERR_CORRUPT;
	}
	s->stats.snapshot_installs++;
	for (int i = 0; i < SNAP_STREAMS; i++)
		if (s->streams[i].snap)
			close_stream(&s->streams[i]);
	if (s->ops.restored)
		s->ops.restored(s->ops.ctx);
	return 0;
}

static void fsm_role_changed(void *ctx, enum raft_role role, uint64_t term, uint64_t leader)
{
	struct strong *s = ctx;
	if (s->ops.role_changed)
		s->ops.role_changed(s->ops.ctx, role, term, leader);
}

/* ---- public ---- */

int strong_open(struct strong **out, uv_loop_t *loop, struct peer_net *net, struct store *store,
		const struct strong_config *cfg, const struct strong_ops *ops)
{
	struct strong *s = sp_calloc(1, sizeof(*s));
	s->loop = loop;
	s->store = store;
	s->ops = *ops;
	s->dir = sp_strdup(cfg->dir);
	size_t n = strlen(cfg->dir) + 32;
	s->incoming = sp_malloc(n);
	snprintf(s->incoming, n, "%s/snapshot.incoming", cfg->dir);
	s->incoming_fd = -1;
	s->skip_buf = sp_malloc(65536);
	s->applied = read_applied(store);
	s->stats.applied_index = s->applied;

	struct raft_node_config nc;
	memset(&nc, 0, sizeof(nc));
	nc.dir = cfg->dir;
	raft_config_default(&nc.raft, cfg->id);
	nc.raft.seed ^= sp_mono_ns(cfg->clock ? cfg->clock : sp_clock_system());
	if (cfg->election_timeout_ms)
		nc.raft.election_timeout_ms = cfg->election_timeout_ms;
	if (cfg->heartbeat_ms)
		nc.raft.heartbeat_ms = cfg->heartbeat_ms;
	nc.raft.max_clock_drift_ppm = cfg->max_clock_drift_ppm;
	nc.raft.max_uncommitted = 65536;
	nc.bootstrap = cfg->bootstrap;
	nc.snapshot_every = cfg->snapshot_every;
	nc.snapshot_min_ms = cfg->snapshot_min_ms;
	nc.clock = cfg->clock;
	nc.no_sync = cfg->no_sync;
	nc.sync_interval_ms = cfg->sync_interval_ms;
	struct raft_node_fsm fsm = {
	    .ctx = s,
	    .apply = fsm_apply,
	    .snapshot_take = fsm_snapshot_take,
	    .snapshot_read = fsm_snapshot_read,
	    .snapshot_write = fsm_snapshot_write,
	    .snapshot_install = fsm_snapshot_install,
	    .role_changed = fsm_role_changed,
	};
	int rc = raft_node_open(&s->node, loop, net, &nc, &fsm);
	if (rc) {
		free(s->skip_buf);
		free(s->incoming);
		free(s->dir);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static void free_engine(struct strong *s)
{
	for (int i = 0; i < SNAP_STREAMS; i++)
		if (s->streams[i].snap)
			close_stream(&s->streams[i]);
	if (s->incoming_fd >= 0)
		close(s->incoming_fd);
	free(s->skip_buf);
	free(s->incoming);
	free(s->dir);
	free(s);
}

void strong_close(struct strong *s)
{
	if (!s)
		return;
	raft_node_close(s->node);
	strong_flush_applied(s);
	s->node = NULL;
	if (s->sync_running) {
		s->close_wanted = true; /* freed by sync_done_cb */
		return;
	}
	free_engine(s);
}

void strong_recv(struct strong *s, uint64_t from, const uint8_t *p, size_t len)
{
	raft_node_recv(s->node, from, p, len);
}

int strong_propose(struct strong *s, const void *p, size_t len, raft_node_cb cb, void *arg)
{
	return raft_node_propose(s->node, p, len, cb, arg);
}

int strong_read(struct strong *s, raft_node_cb cb, void *arg)
{
	return raft_node_read(s->node, cb, arg);
}

int strong_read_lease(struct strong *s)
{
	return raft_node_read_lease(s->node);
}

int strong_add_server(struct strong *s, uint64_t id)
{
	return raft_node_add_server(s->node, id);
}

int strong_remove_server(struct strong *s, uint64_t id)
{
	return raft_node_remove_server(s->node, id);
}

int strong_transfer(struct strong *s, uint64_t id)
{
	return raft_node_transfer(s->node, id);
}

enum raft_role strong_role(const struct strong *s)
{
	return raft_role_of(raft_node_core(s->node));
}

uint64_t strong_leader(const struct strong *s)
{
	return raft_leader(raft_node_core(s->node));
}

uint64_t strong_term(const struct strong *s)
{
	return raft_term(raft_node_core(s->node));
}

uint64_t strong_commit_index(const struct strong *s)
{
	return raft_commit_index(raft_node_core(s->node));
}

int strong_peer_match(const struct strong *s, uint64_t id, uint64_t *match)
{
	return raft_peer_match(raft_node_core(s->node), id, match);
}

const struct raft_conf *strong_conf(const struct strong *s)
{
	return raft_configuration(raft_node_core(s->node));
}

uint64_t strong_applied_index(const struct strong *s)
{
	return s->applied;
}

void strong_get_stats(const struct strong *s, struct strong_stats *st)
{
	*st = s->stats;
	st->applied_index = s->applied;
	raft_node_get_stats(s->node, &st->node);
}
