/*
 * server: the client port and the loop's housekeeping.
 *
 * Binds the listener, and owns the handles that run around the commands:
 * the end-of-iteration check that commits and flushes (durability.c), the
 * cron timer (expiry proposals, idle timeouts, the ops/sec gauge), and the
 * signals that start a clean shutdown.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/cluster_file.h"
#include "server/cluster.h"
#include "server/keyspace.h"
#include "server/route.h"
#include "server/server.h"

void server_tick(struct server *srv)
{
	srv->now_ms = sp_wall_ms(srv->clock);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct server *srv = listener->data;
	server_tick(srv);
	if (status < 0) {
		sp_warn("accept: %s", uv_strerror(status));
		return;
	}
	client_accept(srv);
}

static void on_check(uv_check_t *h)
{
	durability_end_of_iteration(h->data);
}

/* Active expiry: the leader proposes an expiry entry when the store holds
 * keys whose time has passed; every replica removes the same keys when it
 * applies it, judged at the entry's time, so replicas never differ. */
static void expire_cycle(struct server *srv)
{
	uint64_t expired = 0;
	if (srv->role != RAFT_LEADER)
		return;
	if (store_count_expired(srv->store, server_now_ms(srv), 1, &expired) == 0 && expired)
		route_propose_expire(srv);
}

static void close_idle_clients(struct server *srv, uint64_t now)
{
	uint64_t limit = srv->cfg->timeout_s * 1000;
	struct client *c = srv->clients;
	while (c) {
		struct client *next = c->next;
		if (sp_elapsed_ms(now, c->last_active_ms) > limit && c->nslots == 0 &&
		    !c->writing) {
			sp_debug("client %llu: idle timeout", (unsigned long long)c->id);
			client_close(c);
		}
		c = next;
	}
}

static void on_cron(uv_timer_t *t)
{
	struct server *srv = t->data;
	server_tick(srv);
	uint64_t now = server_now_ms(srv);
	expire_cycle(srv);
	if (srv->cfg->timeout_s > 0)
		close_idle_clients(srv, now);
	struct server_stats *st = &srv->stats;
	uint64_t span = sp_elapsed_ms(now, st->ops_window_start_ms);
	if (span >= 1000 || now < st->ops_window_start_ms) {
		st->ops_per_sec = (st->commands - st->ops_window_count) * 1000 / (span ? span : 1);
		st->ops_window_start_ms = now;
		st->ops_window_count = st->commands;
	}
	observe_tick(srv);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct server *srv = s->data;
	sp_info("received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	server_shutdown(srv);
}

static void random_hex(char *out, size_t n)
{
	unsigned char raw[32];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t got = fd >= 0 ? read(fd, raw, sizeof(raw)) : -1;
	if (fd >= 0)
		close(fd);
	if (got != (ssize_t)sizeof(raw)) {
		uint64_t x = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
		for (size_t i = 0; i < sizeof(raw); i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			raw[i] = (unsigned char)x;
		}
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++)
		out[i] = hex[(raw[i / 2 % sizeof(raw)] >> ((i & 1) * 4)) & 15];
	out[n] = '\0';
}

int server_init(struct server *srv, uv_loop_t *loop, const struct sp_config *cfg,
		const struct sp_clock *clock, struct store *store)
{
	memset(srv, 0, sizeof(*srv));
	srv->loop = loop;
	srv->cfg = cfg;
	srv->clock = clock;
	srv->store = store;
	srv->limits.max_bulk_len = cfg->max_bulk_len;
	srv->limits.max_args = cfg->max_args;
	srv->limits.max_inline_len = cfg->max_inline_len;
	srv->max_key_len = store_max_key_len(store);
	srv->open_seq = 1;
	srv->lost_seen = store_batches_lost(store, NULL);
	command_table_init();
	server_tick(srv);
	srv->start_ms = server_now_ms(srv);
	srv->checkpoint.checkpoint = 1;
	srv->last_checkpoint_ms = srv->start_ms;
	srv->stats.ops_window_start_ms = srv->start_ms;
	random_hex(srv->run_id, 40);
	uint64_t epoch = 0;
	for (int i = 0; i < 3; i++)
		epoch = epoch * 16 + (uint64_t)(srv->run_id[i] % 16);
	/* SCAN cursors are < 2^53 (exact in every client's number type) and
	 * start from a per-run offset so a cursor from before a restart is
	 * unlikely to be mistaken for a live one. */
	srv->next_cursor = (epoch + 1) << 40;

	/* Started before the strong engine's check handle, so it runs after
	 * it in each iteration (libuv runs the newest first): replies to the
	 * entries the engine applied leave in the same iteration, rather
	 * than when the next event wakes the loop. */
	uv_check_init(loop, &srv->commit_check);
	srv->commit_check.data = srv;
	uv_check_start(&srv->commit_check, on_check);
	route_init(srv);
	int rc = cluster_init(srv);
	if (rc) {
		uv_close((uv_handle_t *)&srv->commit_check, NULL);
		route_close(srv);
		return rc;
	}
	rc = observe_init(srv);
	if (rc) {
		observe_close(srv);
		uv_close((uv_handle_t *)&srv->commit_check, NULL);
		cluster_close(srv);
		route_close(srv);
		return rc;
	}
	/* Clients are served where this node's line of the cluster file says
	 * (cfg's bind and port for a standalone node). */
	const char *host = srv->cluster->nodes[0].host;
	int port = srv->cluster->nodes[0].client_port;
	struct sockaddr_storage addr;
	rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
	if (rc < 0)
		rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
	if (rc < 0) {
		sp_error("bind: '%s' is not an IPv4 or IPv6 address", host);
		observe_close(srv);
		uv_close((uv_handle_t *)&srv->commit_check, NULL);
		cluster_close(srv);
		route_close(srv);
		return rc;
	}
	uv_tcp_init(loop, &srv->listener);
	srv->listener.data = srv;
	rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&srv->listener, cfg->tcp_backlog, on_connection);
	if (rc < 0) {
		sp_error("listen on %s:%d: %s", host, port, uv_strerror(rc));
		uv_close((uv_handle_t *)&srv->listener, NULL);
		observe_close(srv);
		uv_close((uv_handle_t *)&srv->commit_check, NULL);
		cluster_close(srv);
		route_close(srv);
		return rc;
	}

	uv_timer_init(loop, &srv->cron);
	srv->cron.data = srv;
	uint64_t period = 1000 / cfg->active_expire_hz;
	uv_timer_start(&srv->cron, on_cron, period ? period : 1, period ? period : 1);

	uv_signal_init(loop, &srv->sigterm);
	srv->sigterm.data = srv;
	uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
	uv_signal_init(loop, &srv->sigint);
	srv->sigint.data = srv;
	uv_signal_start(&srv->sigint, on_signal, SIGINT);
	sp_info("spectrad %s listening on %s:%d, fsync %s, data in %s", SPECTRA_VERSION, host, port,
		cfg->fsync == SP_FSYNC_ALWAYS  ? "always"
		: cfg->fsync == SP_FSYNC_BATCH ? "batch"
					       : "off",
		cfg->dir);
	return 0;
}

void server_shutdown(struct server *srv)
{
	if (srv->shutting_down)
		return;
	srv->shutting_down = 1;
	uv_close((uv_handle_t *)&srv->listener, NULL);
	uv_timer_stop(&srv->cron);
	/* Commit what is open, answer what may be answered, and make it all
	 * durable whatever the fsync setting before closing. */
	durability_end_of_iteration(srv);
	durability_maybe_sync(srv);
	if (!srv->sync.running && !srv->checkpoint.running)
		server_finish_shutdown(srv);
}

void server_finish_shutdown(struct server *srv)
{
	if (srv->shutdown_finished)
		return;
	srv->shutdown_finished = 1;
	while (srv->clients)
		client_close(srv->clients);
	observe_close(srv);
	uv_close((uv_handle_t *)&srv->commit_check, NULL);
	uv_close((uv_handle_t *)&srv->cron, NULL);
	uv_close((uv_handle_t *)&srv->sigterm, NULL);
	uv_close((uv_handle_t *)&srv->sigint, NULL);
	uv_close((uv_handle_t *)&srv->req_timer, NULL);
	cluster_close(srv);
	route_close(srv);
	sp_info("shutdown: %llu batches committed and synced",
		(unsigned long long)srv->committed_seq);
}

void server_close(struct server *srv)
{
	for (size_t i = 0; i < SCAN_CURSORS; i++) {
		free(srv->cursors[i].key);
		srv->cursors[i].key = NULL;
	}
}
