/*
 * cluster: transport, engine, address book and the CLUSTER / DEBUG NET
 * commands. See cluster.h.
 */
#include "server/cluster.h"
#include "server/cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/cluster_file.h"
#include "common/err.h"
#include "common/log.h"
#include "engine/causal/causal.h"
#include "engine/eventual/eventual.h"
#include "engine/strong/strong.h"
#include "net/frame.h"
#include "net/peer.h"
#include "obs/trace.h"
#include "server/keyspace.h"
#include "server/route.h"

#define NODE_META_PREFIX "node."

/* ---- the address book ---- */

static int load_cluster_file(const struct sp_config *cfg, struct cluster_file *cf)
{
	char err[256];
	if (!cfg->cluster_file[0]) {
		/* Standalone: a cluster of one. */
		memset(cf, 0, sizeof(*cf));
		strcpy(cf->name, CLUSTER_FILE_DEFAULT_NAME);
		cf->n = 1;
		cf->nodes[0].id = 1;
		snprintf(cf->nodes[0].host, sizeof(cf->nodes[0].host), "%s", cfg->bind);
		cf->nodes[0].client_port = cfg->port;
		cf->nodes[0].peer_port =
		    cfg->peer_port ? cfg->peer_port : (cfg->port + 10000) % 65536;
		cf->nodes[0].bootstrap = true;
		return 0;
	}
	int rc = cluster_file_load(cf, cfg->cluster_file, err, sizeof(err));
	if (rc) {
		sp_error("cluster file %s: %s", cfg->cluster_file, err);
		return rc;
	}
	uint64_t id = cfg->node_id ? cfg->node_id : 1;
	if (!cluster_file_find(cf, id)) {
		sp_error("cluster file %s has no line for node %" PRIu64, cfg->cluster_file, id);
		return SP_ERR_INVAL;
	}
	return 0;
}

/* ring_update gives the eventual engine the nodes known now. */
static void ring_update(struct server *srv)
{
	if (!srv->eventual)
		return;
	uint64_t ids[CLUSTER_FILE_MAX_NODES];
	size_t n = 0;
	for (size_t i = 0; i < srv->cluster->n; i++)
		ids[n++] = srv->cluster->nodes[i].id;
	int rc = eventual_set_nodes(srv->eventual, ids, n);
	if (rc)
		sp_warn("eventual: cannot rebuild the ring for %zu nodes: %s", n, sp_strerror(rc));
	if (srv->causal && (rc = causal_set_nodes(srv->causal, ids, n)))
		sp_warn("causal: cannot take %zu nodes: %s", n, sp_strerror(rc));
}

static void learn_node(struct server *srv, const struct cluster_node *n)
{
	struct cluster_file *cf = srv->cluster;
	if (n->id == srv->node_id || cluster_file_find(cf, n->id))
		return;
	if (cf->n >= CLUSTER_FILE_MAX_NODES)
		return;
	cf->nodes[cf->n++] = *n;
	int rc = peer_net_add_peer(srv->net, n->id, n->host, n->peer_port);
	if (rc && rc != SP_ERR_EXISTS)
		sp_warn("cluster: cannot add peer %" PRIu64 " at %s:%d: %s", n->id, n->host,
			n->peer_port, sp_strerror(rc));
	if (srv->eventual && !eventual_has_node(srv->eventual, n->id))
		ring_update(srv);
}

static int parse_node_meta(uint64_t id, const void *val, size_t len, struct cluster_node *n)
{
	char text[128];
	if (len >= sizeof(text))
		return SP_ERR_INVAL;
	memcpy(text, val, len);
	text[len] = '\0';
	memset(n, 0, sizeof(*n));
	n->id = id;
	if (sscanf(text, "%63s %d %d", n->host, &n->client_port, &n->peer_port) != 3)
		return SP_ERR_INVAL;
	return 0;
}

static int load_node_meta(void *ctx, const char *name, const void *val, size_t len)
{
	struct server *srv = ctx;
	uint64_t id = strtoull(name + strlen(NODE_META_PREFIX), NULL, 10);
	struct cluster_node n;
	if (id && parse_node_meta(id, val, len, &n) == 0)
		learn_node(srv, &n);
	return 0;
}

static void reload_state(struct server *srv)
{
	keyspace_load(srv);
	(void)store_meta_scan(srv->store, NODE_META_PREFIX, load_node_meta, srv);
}

/* ---- engine and transport callbacks ---- */

static void on_apply(void *ctx, uint64_t index, const uint8_t *p, size_t len)
{
	route_apply(ctx, index, p, len);
}

static void on_restored(void *ctx)
{
	reload_state(ctx);
}

static void on_role(void *ctx, enum raft_role role, uint64_t term, uint64_t leader)
{
	struct server *srv = ctx;
	if (role != srv->role || leader != srv->leader)
		sp_info("raft: node %" PRIu64 " is %s in term %" PRIu64 ", leader %" PRIu64,
			srv->node_id, raft_role_name(role), term, leader);
	srv->role = role;
	srv->term = term;
	srv->leader = leader;
	if (role != RAFT_LEADER)
		srv->expire_inflight = false;
	route_role_changed(srv);
}

static void on_frame(void *ctx, uint64_t from, uint8_t channel, const uint8_t *p, size_t len)
{
	struct server *srv = ctx;
	if (channel == RAFT_NODE_CHANNEL)
		strong_recv(srv->strong, from, p, len);
	else if (channel == CLUSTER_CHANNEL_FORWARD)
		route_recv_forward(srv, from, p, len);
	else if (channel == EV_CHANNEL && srv->eventual)
		eventual_recv(srv->eventual, from, p, len);
	else if (channel == CAUSAL_CHANNEL && srv->causal)
		causal_recv(srv->causal, from, p, len);
}

static int causal_send_frame(void *ctx, uint64_t to, const void *p, size_t len)
{
	struct server *srv = ctx;
	return peer_net_send(srv->net, to, CAUSAL_CHANNEL, p, len);
}

static void on_causal_applied(void *ctx)
{
	causal_applied_changed(ctx);
}

static void on_causal_apply(void *ctx, uint64_t origin, uint64_t seq, const void *key, size_t klen)
{
	struct server *srv = ctx;
	if (!srv->trace)
		return;
	struct trace_event ev = {
	    .node = srv->node_id,
	    .ms = sp_wall_ms(srv->clock),
	    .ev = "apply",
	    .key = key,
	    .klen = klen,
	    .origin = origin,
	    .seq = seq,
	    .vc = causal_applied(srv->causal),
	};
	trace_event(srv->trace, &ev);
}

static void on_causal_timer(uv_timer_t *t)
{
	causal_timer_tick(t->data);
}

/* open_causal starts the causal engine on <dir>/causal. */
static int open_causal(struct server *srv, const struct cluster_file *file)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/causal", srv->cfg->dir);
	struct causal_config cc = {
	    .self_id = srv->node_id,
	    .dir = dir,
	    .map_size = srv->cfg->map_size,
	    .clock = srv->clock,
	    .send = causal_send_frame,
	    /* The peer transport's frames (its default size), less room for
	     * the frame's own header. */
	    .max_update_bytes = FRAME_MAX_PAYLOAD_DEFAULT - 4096,
	    .applied_cb = on_causal_applied,
	    .apply_cb = on_causal_apply,
	    .ctx = srv,
	};
	uint64_t ids[CLUSTER_FILE_MAX_NODES];
	size_t n = 0;
	for (size_t i = 0; i < file->n; i++)
		ids[n++] = file->nodes[i].id;
	int rc = causal_open(&srv->causal, &cc, ids, n);
	if (rc) {
		sp_error("cannot open the causal engine in %s: %s", dir, sp_strerror(rc));
		return rc;
	}
	if (srv->cfg->trace_file[0]) {
		/* A relative path is in the node's data directory. */
		char path[4096];
		if (srv->cfg->trace_file[0] == '/')
			snprintf(path, sizeof(path), "%s", srv->cfg->trace_file);
		else
			snprintf(path, sizeof(path), "%s/%s", srv->cfg->dir, srv->cfg->trace_file);
		rc = trace_open(&srv->trace, path);
		if (rc) {
			sp_error("cannot open the trace file %s: %s", srv->cfg->trace_file,
				 sp_strerror(rc));
			causal_close(srv->causal);
			srv->causal = NULL;
			return rc;
		}
	}
	uv_timer_init(srv->loop, &srv->causal_timer);
	srv->causal_timer.data = srv;
	uv_timer_start(&srv->causal_timer, on_causal_timer, 10, 10);
	return 0;
}

static int ev_send_frame(void *ctx, uint64_t to, const void *p, size_t len)
{
	struct server *srv = ctx;
	return peer_net_send(srv->net, to, EV_CHANNEL, p, len);
}

static bool link_down(void *ctx, uint64_t id)
{
	struct server *srv = ctx;
	return peer_net_link_down(srv->net, id);
}

static void on_ev_timer(uv_timer_t *t)
{
	struct server *srv = t->data;
	eventual_tick(srv->eventual);
	observe_freshness_probe(srv);
}

/* open_eventual starts the eventual engine on <dir>/eventual with every
 * node of the cluster file on its ring. */
static int open_eventual(struct server *srv, const struct cluster_file *file)
{
	const struct sp_config *cfg = srv->cfg;
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/eventual", cfg->dir);
	srv->ev_limits = (struct crdt_limits){
	    .max_members = (uint32_t)cfg->max_set_members,
	    .max_siblings = (uint32_t)cfg->max_siblings,
	    .max_member_len = (uint32_t)cfg->max_member_bytes,
	};
	struct eventual_config ec = {
	    .self_id = srv->node_id,
	    .dir = dir,
	    .map_size = cfg->map_size,
	    .clock = srv->clock,
	    .request_timeout_ms = (uint32_t)cfg->request_timeout_ms,
	    .hint_max_age_ms =
		(uint32_t)(cfg->hint_max_age_ms > UINT32_MAX ? UINT32_MAX : cfg->hint_max_age_ms),
	    .hint_max_bytes = cfg->hint_max_bytes,
	    .ae_interval_ms = (uint32_t)cfg->anti_entropy_ms,
	    .ae_max_keys = (uint32_t)cfg->anti_entropy_keys,
	    .max_clock_skew_ms = cfg->max_clock_skew_ms,
	    .read_repair_percent = (uint32_t)cfg->read_repair_percent,
	    .seed = srv->node_id ^ sp_mono_ns(srv->clock),
	    .limits = srv->ev_limits,
	    .send = ev_send_frame,
	    .link_down = link_down,
	    .ctx = srv,
	};
	uint64_t ids[CLUSTER_FILE_MAX_NODES];
	size_t n = 0;
	for (size_t i = 0; i < file->n; i++)
		ids[n++] = file->nodes[i].id;
	int rc = eventual_open(&srv->eventual, &ec, ids, n);
	if (rc) {
		sp_error("cannot open the eventual engine in %s: %s", dir, sp_strerror(rc));
		return rc;
	}
	uv_timer_init(srv->loop, &srv->ev_timer);
	srv->ev_timer.data = srv;
	uv_timer_start(&srv->ev_timer, on_ev_timer, 10, 10);
	return 0;
}

int cluster_init(struct server *srv)
{
	const struct sp_config *cfg = srv->cfg;
	srv->cluster = sp_calloc(1, sizeof(*srv->cluster));
	struct cluster_file *file = sp_malloc(sizeof(*file));
	int rc = load_cluster_file(cfg, file);
	if (rc)
		goto free_file;
	srv->node_id = cfg->node_id ? cfg->node_id : 1;
	strcpy(srv->cluster->name, file->name);
	const struct cluster_node *me = cluster_file_find(file, srv->node_id);
	srv->cluster->nodes[0] = *me;
	srv->cluster->n = 1;

	struct peer_net_config pc = {
	    .self_id = srv->node_id,
	    .cluster = file->name,
	    .bind_host = me->host,
	    .port = me->peer_port,
	    .on_frame = on_frame,
	    .ctx = srv,
	    .clock = srv->clock,
	    .seed = srv->node_id * 0x9E3779B97F4A7C15ull ^ sp_mono_ns(srv->clock),
	};
	rc = peer_net_open(&srv->net, srv->loop, &pc);
	if (rc) {
		sp_error("cannot listen for peers on %s:%d: %s", me->host, me->peer_port,
			 rc < SP_ERR__BASE ? sp_strerror(rc) : uv_strerror(rc));
		goto free_file;
	}
	rc = open_eventual(srv, file);
	if (rc == 0)
		rc = open_causal(srv, file);
	if (rc) {
		peer_net_close(srv->net);
		srv->net = NULL;
		goto free_file;
	}
	for (size_t i = 0; i < file->n; i++)
		learn_node(srv, &file->nodes[i]);

	struct strong_config sc;
	memset(&sc, 0, sizeof(sc));
	char raft_dir[4096];
	snprintf(raft_dir, sizeof(raft_dir), "%s/raft", cfg->dir);
	sc.dir = raft_dir;
	sc.id = srv->node_id;
	for (size_t i = 0; i < file->n; i++) {
		if (!file->nodes[i].bootstrap)
			continue;
		sc.bootstrap.members[sc.bootstrap.n].id = file->nodes[i].id;
		sc.bootstrap.members[sc.bootstrap.n].role = RAFT_VOTER;
		sc.bootstrap.n++;
	}
	/* A node outside the first configuration starts empty and waits. */
	if (!me->bootstrap)
		sc.bootstrap.n = 0;
	sc.election_timeout_ms = (uint32_t)cfg->election_timeout_ms;
	sc.heartbeat_ms = (uint32_t)cfg->heartbeat_ms;
	if (!cfg->cluster_file[0]) {
		/* A cluster of one has no one to wait for: elect itself at once
		 * rather than after a timeout sized for five nodes. */
		if (sc.election_timeout_ms > 100)
			sc.election_timeout_ms = 100;
		if (sc.heartbeat_ms > 30)
			sc.heartbeat_ms = 30;
	}
	sc.max_clock_drift_ppm = (uint32_t)cfg->max_clock_drift_ppm;
	sc.snapshot_every = cfg->snapshot_every;
	sc.snapshot_min_ms = (uint32_t)cfg->snapshot_interval_ms;
	sc.no_sync = cfg->fsync != SP_FSYNC_ALWAYS;
	sc.sync_interval_ms = cfg->fsync == SP_FSYNC_BATCH ? (uint32_t)cfg->fsync_interval_ms : 0;
	sc.clock = srv->clock;
	struct strong_ops ops = {
	    .ctx = srv, .apply = on_apply, .restored = on_restored, .role_changed = on_role};
	reload_state(srv);
	rc = strong_open(&srv->strong, srv->loop, srv->net, srv->store, &sc, &ops);
	if (rc) {
		sp_error("cannot start Raft in %s: %s", raft_dir, sp_strerror(rc));
		peer_net_close(srv->net);
		srv->net = NULL;
		goto free_file;
	}
	srv->role = strong_role(srv->strong);
	srv->leader = strong_leader(srv->strong);
	sp_info("node %" PRIu64 " of cluster '%s': peers on %s:%d, %zu nodes known", srv->node_id,
		file->name, me->host, me->peer_port, srv->cluster->n);
free_file:
	free(file);
	return rc;
}

void cluster_close(struct server *srv)
{
	strong_close(srv->strong);
	srv->strong = NULL;
	if (srv->eventual) {
		/* Pending ops are answered now; their messages are not sent. */
		uv_close((uv_handle_t *)&srv->ev_timer, NULL);
		eventual_close(srv->eventual);
		srv->eventual = NULL;
	}
	if (srv->causal) {
		uv_close((uv_handle_t *)&srv->causal_timer, NULL);
		causal_close(srv->causal);
		srv->causal = NULL;
	}
	trace_close(srv->trace);
	srv->trace = NULL;
	if (srv->net)
		peer_net_close(srv->net);
	srv->net = NULL;
	free(srv->cluster);
	srv->cluster = NULL;
	keyspace_free(srv);
}

/* ---- CLUSTER ---- */

static void append_ids(char *out, size_t cap, const struct raft_conf *conf, int role)
{
	size_t n = strlen(out);
	bool first = true;
	for (uint32_t i = 0; i < conf->n; i++) {
		if (conf->members[i].role != role)
			continue;
		n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%" PRIu64,
				      first ? "" : ",", conf->members[i].id);
		first = false;
	}
}

static void cluster_info(struct client *c)
{
	struct server *srv = c->srv;
	const struct raft_conf *conf = strong_conf(srv->strong);
	struct strong_stats st;
	strong_get_stats(srv->strong, &st);
	int my_role = raft_conf_role(conf, srv->node_id);
	const char *role = srv->role == RAFT_LEADER	    ? "leader"
			   : srv->role == RAFT_CANDIDATE    ? "candidate"
			   : srv->role == RAFT_PRECANDIDATE ? "candidate"
			   : my_role == RAFT_LEARNER	    ? "learner"
			   : my_role == 0		    ? "none"
							    : "follower";
	char voters[1024] = "", learners[1024] = "";
	append_ids(voters, sizeof(voters), conf, RAFT_VOTER);
	append_ids(learners, sizeof(learners), conf, RAFT_LEARNER);
	char text[4096];
	int n = snprintf(
	    text, sizeof(text),
	    "cluster_name:%s\r\nnode_id:%" PRIu64 "\r\nrole:%s\r\nterm:%" PRIu64
	    "\r\nleader_id:%" PRIu64 "\r\ncommit_index:%" PRIu64 "\r\napplied_index:%" PRIu64
	    "\r\nmembers:%s\r\nlearners:%s\r\nrequests_pending:%" PRIu64
	    "\r\nentries_skipped:%" PRIu64 "\r\nsnapshots_taken:%" PRIu64
	    "\r\nsnapshots_installed:%" PRIu64 "\r\nsnapshot_streams:%" PRIu64
	    "\r\nelections_started:%" PRIu64 "\r\nleader_changes:%" PRIu64
	    "\r\nread_rounds:%" PRIu64 "\r\nlease_reads:%" PRIu64 "\r\nlog_syncs:%" PRIu64 "\r\n",
	    srv->cluster->name, srv->node_id, role, srv->term, srv->leader,
	    strong_commit_index(srv->strong), st.applied_index, voters, learners, srv->nrequests,
	    st.skipped, st.node.snapshots_taken, st.node.snapshots_installed,
	    st.snapshots_sent_streams, st.node.core.elections_started, st.node.core.leader_changes,
	    st.node.core.read_rounds, st.node.core.lease_reads, st.node.syncs);
	reply_verbatim(c, text, n > 0 ? (size_t)n : 0);
}

static void cluster_nodes(struct client *c)
{
	struct server *srv = c->srv;
	const struct raft_conf *conf = strong_conf(srv->strong);
	struct sp_buf b;
	sp_buf_init(&b);
	for (size_t i = 0; i < srv->cluster->n; i++) {
		const struct cluster_node *n = &srv->cluster->nodes[i];
		int role = raft_conf_role(conf, n->id);
		char line[256];
		int len = snprintf(line, sizeof(line), "%" PRIu64 " %s:%d@%d %s%s%s\n", n->id,
				   n->host, n->client_port, n->peer_port,
				   role == RAFT_VOTER	  ? "voter"
				   : role == RAFT_LEARNER ? "learner"
							  : "none",
				   n->id == srv->leader ? " leader" : "",
				   n->id == srv->node_id ? " self" : "");
		sp_buf_append(&b, line, (size_t)len);
	}
	reply_verbatim(c, sp_buf_begin(&b), b.len);
	sp_buf_free(&b);
}

static int parse_id(struct client *c, struct slice a, uint64_t *id)
{
	int64_t v;
	if (arg_to_int64(c, a, &v))
		return -1;
	if (v <= 0) {
		reply_error(c, "ERR node ids are positive integers");
		return -1;
	}
	*id = (uint64_t)v;
	return 0;
}

/* Membership changes take effect on the leader, at apply time: the node
 * that is leader when the entry commits carries them out (a stale entry,
 * applied long after, by a node that became leader since, does not). */
static bool acting_leader(const struct server *srv)
{
	return srv->role == RAFT_LEADER &&
	       sp_elapsed_ms(sp_wall_ms(srv->clock), server_now_ms(srv)) <
		   srv->cfg->request_timeout_ms;
}

static void cluster_add(struct client *c)
{
	struct server *srv = c->srv;
	uint64_t id;
	int64_t cport, pport;
	if (c->argc != 6) {
		reply_error(c, "ERR usage: CLUSTER ADD <id> <host> <client-port> <peer-port>");
		return;
	}
	if (parse_id(c, c->argv[2], &id) || arg_to_int64(c, c->argv[4], &cport) ||
	    arg_to_int64(c, c->argv[5], &pport))
		return;
	struct cluster_node n;
	memset(&n, 0, sizeof(n));
	n.id = id;
	if (c->argv[3].len >= sizeof(n.host) || cport < 1 || cport > 65535 || pport < 1 ||
	    pport > 65535) {
		reply_error(c, "ERR bad host or port");
		return;
	}
	memcpy(n.host, c->argv[3].p, c->argv[3].len);
	n.client_port = (int)cport;
	n.peer_port = (int)pport;
	struct sockaddr_in6 a6;
	struct sockaddr_in a4;
	if (uv_ip4_addr(n.host, 1, &a4) != 0 && uv_ip6_addr(n.host, 1, &a6) != 0) {
		reply_error(c, "ERR host must be a numeric IPv4 or IPv6 address");
		return;
	}
	if (!srv->applying) {
		reply_error(c, "ERR CLUSTER ADD runs through the log");
		return;
	}
	char name[64], val[128];
	snprintf(name, sizeof(name), NODE_META_PREFIX "%" PRIu64, id);
	int len = snprintf(val, sizeof(val), "%s %d %d", n.host, n.client_port, n.peer_port);
	int rc = store_meta_put(srv->store, name, val, (size_t)len);
	if (rc) {
		reply_store_error(c, rc);
		return;
	}
	learn_node(srv, &n);
	if (acting_leader(srv)) {
		rc = strong_add_server(srv->strong, id);
		if (rc && rc != SP_ERR_EXISTS) {
			reply_errorf(c, "ERR cannot add node %" PRIu64 ": %s", id, sp_strerror(rc));
			return;
		}
	}
	reply_ok(c);
}

static void cluster_remove(struct client *c)
{
	struct server *srv = c->srv;
	uint64_t id;
	if (c->argc != 3) {
		reply_error(c, "ERR usage: CLUSTER REMOVE <id>");
		return;
	}
	if (parse_id(c, c->argv[2], &id))
		return;
	if (!raft_conf_role(strong_conf(srv->strong), id)) {
		reply_errorf(c, "ERR node %" PRIu64 " is not a member", id);
		return;
	}
	if (acting_leader(srv)) {
		int rc = strong_remove_server(srv->strong, id);
		if (rc) {
			reply_errorf(c, "ERR cannot remove node %" PRIu64 ": %s", id,
				     sp_strerror(rc));
			return;
		}
	}
	reply_ok(c);
}

static void cluster_transfer(struct client *c)
{
	struct server *srv = c->srv;
	uint64_t id;
	if (c->argc != 3) {
		reply_error(c, "ERR usage: CLUSTER TRANSFER <id>");
		return;
	}
	if (parse_id(c, c->argv[2], &id))
		return;
	if (raft_conf_role(strong_conf(srv->strong), id) != RAFT_VOTER) {
		reply_errorf(c, "ERR node %" PRIu64 " is not a voting member", id);
		return;
	}
	if (acting_leader(srv) && id != srv->node_id) {
		int rc = strong_transfer(srv->strong, id);
		if (rc) {
			reply_errorf(c, "ERR cannot transfer to node %" PRIu64 ": %s", id,
				     sp_strerror(rc));
			return;
		}
	}
	reply_ok(c);
}

void cmd_cluster(struct client *c)
{
	struct slice sub = c->argv[1];
	if (arg_equals(sub, "info"))
		cluster_info(c);
	else if (arg_equals(sub, "nodes"))
		cluster_nodes(c);
	else if (arg_equals(sub, "add"))
		cluster_add(c);
	else if (arg_equals(sub, "remove"))
		cluster_remove(c);
	else if (arg_equals(sub, "transfer"))
		cluster_transfer(c);
	else
		reply_errorf(c,
			     "ERR unknown CLUSTER subcommand '%.*s' (INFO, NODES, ADD, REMOVE, "
			     "TRANSFER)",
			     (int)(sub.len > 32 ? 32 : sub.len), sub.p);
}

/* ---- DEBUG NET ---- */

static void debug_net(struct client *c)
{
	struct server *srv = c->srv;
	if (c->argc < 3) {
		reply_error(c, "ERR usage: DEBUG NET PARTITION <id>... | HEAL | FAULTS <drop_ppm> "
			       "<dup_ppm> <reorder_ppm> <delay_ms> <jitter_ms> [TO <id>] | STATS");
		return;
	}
	struct slice op = c->argv[2];
	if (arg_equals(op, "partition")) {
		size_t n = c->argc - 3;
		uint64_t *ids = sp_calloc(n ? n : 1, sizeof(*ids));
		for (size_t i = 0; i < n; i++) {
			if (parse_id(c, c->argv[3 + i], &ids[i])) {
				free(ids);
				return;
			}
		}
		peer_net_partition(srv->net, ids, n);
		free(ids);
		sp_warn("DEBUG NET PARTITION: dropping traffic with %zu node(s)", n);
		reply_ok(c);
	} else if (arg_equals(op, "heal")) {
		peer_net_heal(srv->net);
		sp_warn("DEBUG NET HEAL");
		reply_ok(c);
	} else if (arg_equals(op, "faults")) {
		int64_t v[5];
		uint64_t to = 0; /* every peer without faults of its own */
		if (c->argc == 10 && arg_equals(c->argv[8], "to")) {
			if (parse_id(c, c->argv[9], &to))
				return;
		} else if (c->argc != 8) {
			reply_error(c, "ERR usage: DEBUG NET FAULTS <drop_ppm> <dup_ppm> "
				       "<reorder_ppm> <delay_ms> <jitter_ms> [TO <id>]");
			return;
		}
		for (int i = 0; i < 5; i++) {
			if (arg_to_int64(c, c->argv[3 + i], &v[i]))
				return;
			if (v[i] < 0 || v[i] > 1000000) {
				reply_error(c, "ERR fault values are 0..1000000");
				return;
			}
		}
		struct peer_faults f = {(uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2],
					(uint32_t)v[3], (uint32_t)v[4]};
		if (peer_net_set_faults(srv->net, to, &f)) {
			reply_errorf(c, "ERR node %llu is not a peer of this node",
				     (unsigned long long)to);
			return;
		}
		sp_warn("DEBUG NET FAULTS set%s", to ? " for one peer" : "");
		reply_ok(c);
	} else if (arg_equals(op, "stats")) {
		struct peer_net_stats st;
		peer_net_get_stats(srv->net, &st);
		char text[1024];
		int n =
		    snprintf(text, sizeof(text),
			     "frames_sent:%" PRIu64 "\r\nframes_received:%" PRIu64
			     "\r\nframes_dropped:%" PRIu64 "\r\nframes_lost:%" PRIu64
			     "\r\nfault_dropped:%" PRIu64 "\r\npartition_dropped:%" PRIu64
			     "\r\nreconnects:%" PRIu64 "\r\n",
			     st.frames_sent, st.frames_received, st.frames_dropped, st.frames_lost,
			     st.fault_dropped, st.partition_dropped, st.reconnects);
		reply_verbatim(c, text, (size_t)n);
	} else {
		reply_error(c, "ERR unknown DEBUG NET operation (PARTITION, HEAL, FAULTS, STATS)");
	}
}

void cmd_debug(struct client *c)
{
	if (!arg_equals(c->argv[1], "net")) {
		reply_error(c, "ERR unknown DEBUG subcommand (NET)");
		return;
	}
	if (!c->srv->cfg->admin_commands) {
		reply_error(c,
			    "ERR DEBUG NET is disabled: start the node with --admin-commands yes "
			    "to allow fault injection");
		return;
	}
	debug_net(c);
}
