/*
 * observe: what a node says about itself over HTTP. It owns the node's
 * metrics registry (src/obs/metrics), times every data command by the
 * mode and level it was served at, keeps the sampler's stale-read
 * verdicts, and answers the HTTP endpoint (src/obs/http):
 *
 *   /metrics   Prometheus text: requests, errors and latency per class,
 *              mode and level; Raft, per-peer lag, hints, repair,
 *              anti-entropy, CRDT and stale-read counters
 *   /status    JSON for the dashboard and for scripts (schema in README)
 *   /          the dashboard page (src/obs/dashboard.html, compiled in)
 *
 * Engine counters are read when a scrape comes, so the hot path pays only
 * for the request metrics: one clock read at the start of a data command
 * and three metric updates at its end.
 *
 * It must not: change what a command does or answers, or block the loop.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/cluster_file.h"
#include "common/log.h"
#include "common/version.h"
#include "engine/causal/causal.h"
#include "engine/eventual/eventual.h"
#include "engine/strong/strong.h"
#include "net/resp.h"
#include "obs/http.h"
#include "obs/metrics.h"
#include "server/keyspace.h"
#include "server/server.h"

extern const unsigned char obs_dashboard_html[];
extern const size_t obs_dashboard_html_len;

/* Recent windows for /status: one snapshot a second, the last WIN_N kept;
 * rates and percentiles come from the difference with the snapshot
 * LEVEL_WIN (requests) or STALE_WIN (the sampler) seconds back. */
#define WIN_N	    11
#define LEVEL_WIN   5
#define STALE_WIN   10
#define MAX_BUCKETS 32

enum { CLASS_READ, CLASS_WRITE, NCLASSES };

struct level_series {
	struct metric *req, *err, *lat;
};

struct stale_series {
	struct metric *sampled, *stale, *failed, *ms, *versions;
};

struct snapshot {
	uint64_t t_ns;
	uint64_t req[NCLASSES][OBS_NLEVELS], err[NCLASSES][OBS_NLEVELS];
	uint64_t lat[NCLASSES][OBS_NLEVELS][MAX_BUCKETS];
	uint64_t sampled[OBS_NLEVELS], stale[OBS_NLEVELS];
	uint64_t ms[OBS_NLEVELS][MAX_BUCKETS], versions[OBS_NLEVELS][MAX_BUCKETS];
};

struct server_obs {
	struct metrics *reg;
	struct http_server *http;
	struct level_series lv[NCLASSES][OBS_NLEVELS];
	struct stale_series st[OBS_NLEVELS];
	uint64_t rng;
	/* Families read at scrape time. */
	struct metric_family *f_peer_up, *f_match, *f_raft_lag, *f_causal_unacked, *f_causal_behind,
	    *f_hints_pending;
	struct metric *commands, *connections, *connections_total, *errors_total;
	struct metric *raft_term, *raft_leader, *raft_is_leader, *raft_commit, *raft_applied;
	struct metric *causal_lag, *causal_pending, *causal_applied, *causal_concurrent;
	struct metric *hints_queued, *hints_delivered, *hints_dropped;
	struct metric *read_repairs, *ae_rounds, *ae_divergent, *ae_repaired;
	struct metric *crdt_merges, *lww_concurrent, *clock_skew;
	struct metric *siblings[2]; /* causal, eventual */
	struct snapshot win[WIN_N];
	size_t win_head, win_n; /* win[win_head] is the newest */
	uint64_t last_tick_ns;
};

static const char *const level_names[OBS_NLEVELS] = {
    [OBS_LINEARIZABLE] = "linearizable",
    [OBS_LEASE] = "lease",
    [OBS_STALE] = "stale",
    [OBS_CAUSAL] = "causal",
    [OBS_LOCAL] = "local",
    [OBS_ONE] = "one",
    [OBS_QUORUM] = "quorum",
    [OBS_ALL] = "all",
};

const char *obs_level_name(enum obs_level l)
{
	return l < OBS_NLEVELS ? level_names[l] : "?";
}

const char *obs_level_mode(enum obs_level l)
{
	return l <= OBS_STALE ? "strong" : l <= OBS_LOCAL ? "causal" : "eventual";
}

/* The levels a class is served at: writes have no lease, stale or local
 * level (a strong write is a Raft entry; a causal write is applied here). */
static bool class_has_level(int cls, int l)
{
	return cls == CLASS_READ || (l != OBS_LEASE && l != OBS_STALE && l != OBS_LOCAL);
}

/* The levels the sampler checks: every weak read level. */
static bool sampled_level(int l)
{
	return l != OBS_LINEARIZABLE && l != OBS_ALL;
}

static struct metric_family *family(struct metrics *m, const char *name, const char *unit,
				    const char *help, enum metric_type type,
				    const char *const *labels)
{
	const double *b = NULL;
	size_t nb = 0;
	if (type == METRIC_HISTOGRAM) {
		b = metrics_latency_buckets;
		nb = metrics_latency_nbuckets;
	}
	struct metric_family *f = metrics_family(m, name, unit, help, type, labels, b, nb);
	if (!f)
		sp_error("metrics: cannot register %s", name); /* a programming error */
	return f;
}

static struct metric *scalar(struct metrics *m, const char *name, const char *unit,
			     const char *help, enum metric_type type)
{
	struct metric_family *f = family(m, name, unit, help, type, NULL);
	return f ? metrics_series(f, NULL) : NULL;
}

static void register_metrics(struct server_obs *o)
{
	struct metrics *m = o->reg;
	static const char *const cml[] = {"class", "mode", "level", NULL};
	static const char *const ml[] = {"mode", "level", NULL};
	static const char *const peer[] = {"peer", NULL};
	struct metric_family *req = family(
	    m, "spectra_requests_total", "",
	    "Data commands answered, by class (read or write), keyspace mode and level served",
	    METRIC_COUNTER, cml);
	struct metric_family *err =
	    family(m, "spectra_request_errors_total", "",
		   "Data commands answered with an error (TRYAGAIN, UNKNOWN and refusals included)",
		   METRIC_COUNTER, cml);
	struct metric_family *lat = family(
	    m, "spectra_request_duration_seconds", "seconds",
	    "Time from a data command's arrival to its reply being ready, by class, mode and level",
	    METRIC_HISTOGRAM, cml);
	for (int c = 0; c < NCLASSES; c++) {
		for (int l = 0; l < OBS_NLEVELS; l++) {
			if (!class_has_level(c, l))
				continue;
			const char *v[] = {c == CLASS_READ ? "read" : "write", obs_level_mode(l),
					   level_names[l]};
			o->lv[c][l].req = metrics_series(req, v);
			o->lv[c][l].err = metrics_series(err, v);
			o->lv[c][l].lat = metrics_series(lat, v);
		}
	}
	struct metric_family *sampled =
	    family(m, "spectra_stale_reads_sampled_total", "",
		   "Weak reads the sampler compared with a stronger read issued at the same moment",
		   METRIC_COUNTER, ml);
	struct metric_family *stale =
	    family(m, "spectra_stale_reads_total", "",
		   "Sampled reads that returned an older version than the stronger read found",
		   METRIC_COUNTER, ml);
	struct metric_family *failed =
	    family(m, "spectra_stale_read_checks_failed_total", "",
		   "Samples dropped because the stronger read failed or timed out (no verdict)",
		   METRIC_COUNTER, ml);
	struct metric_family *ms = metrics_family(
	    m, "spectra_stale_read_behind_milliseconds", "milliseconds",
	    "Stale sampled reads: how long before the read the newest version it missed was "
	    "written (HLC for causal and eventual, the Raft entry's time for strong)",
	    METRIC_HISTOGRAM, ml, metrics_staleness_ms_buckets, metrics_staleness_ms_nbuckets);
	struct metric_family *ver = metrics_family(
	    m, "spectra_stale_read_versions_behind", "",
	    "Stale sampled reads: versions of the key the read missed (writes committed after the "
	    "served one for strong; distinct newer versions the stronger read saw otherwise)",
	    METRIC_HISTOGRAM, ml, metrics_versions_buckets, metrics_versions_nbuckets);
	for (int l = 0; l < OBS_NLEVELS; l++) {
		if (!sampled_level(l))
			continue;
		const char *v[] = {obs_level_mode(l), level_names[l]};
		o->st[l].sampled = metrics_series(sampled, v);
		o->st[l].stale = metrics_series(stale, v);
		o->st[l].failed = metrics_series(failed, v);
		o->st[l].ms = metrics_series(ms, v);
		o->st[l].versions = metrics_series(ver, v);
	}
	o->commands = scalar(m, "spectra_commands_total", "", "Commands of every kind processed",
			     METRIC_COUNTER);
	o->errors_total = scalar(m, "spectra_error_replies_total", "",
				 "Error replies of every kind sent", METRIC_COUNTER);
	o->connections =
	    scalar(m, "spectra_connections", "", "Client connections open now", METRIC_GAUGE);
	o->connections_total = scalar(m, "spectra_connections_accepted_total", "",
				      "Client connections accepted", METRIC_COUNTER);
	o->raft_term = scalar(m, "spectra_raft_term", "", "Raft: current term", METRIC_GAUGE);
	o->raft_leader = scalar(m, "spectra_raft_leader_id", "",
				"Raft: the node this one believes leads (0: none)", METRIC_GAUGE);
	o->raft_is_leader =
	    scalar(m, "spectra_raft_is_leader", "", "Raft: 1 if this node leads", METRIC_GAUGE);
	o->raft_commit = scalar(m, "spectra_raft_commit_index", "",
				"Raft: highest index known committed", METRIC_GAUGE);
	o->raft_applied = scalar(m, "spectra_raft_applied_index", "",
				 "Raft: highest index applied to this node's store", METRIC_GAUGE);
	o->f_match = family(m, "spectra_raft_match_index", "",
			    "Raft, on the leader: highest index known replicated on each peer",
			    METRIC_GAUGE, peer);
	o->f_raft_lag = family(m, "spectra_raft_lag_entries", "",
			       "Raft, on the leader: entries each peer still lacks (last index - "
			       "match index)",
			       METRIC_GAUGE, peer);
	o->f_peer_up = family(m, "spectra_peer_up", "",
			      "1 while the peer answers this node's pings", METRIC_GAUGE, peer);
	o->f_causal_unacked = family(m, "spectra_causal_unacked_updates", "",
				     "Causal: this node's updates each peer has not acknowledged",
				     METRIC_GAUGE, peer);
	o->f_causal_behind =
	    family(m, "spectra_causal_behind_milliseconds", "milliseconds",
		   "Causal: this node holds every update each peer had reported this long ago",
		   METRIC_GAUGE, peer);
	o->causal_lag = scalar(m, "spectra_causal_lag_milliseconds", "milliseconds",
			       "Causal: the largest of spectra_causal_behind_milliseconds (-1: a "
			       "peer has not reported yet)",
			       METRIC_GAUGE);
	o->causal_pending =
	    scalar(m, "spectra_causal_pending_updates", "",
		   "Causal: updates received and waiting for their dependencies", METRIC_GAUGE);
	o->causal_applied = scalar(m, "spectra_causal_updates_applied_total", "",
				   "Causal: remote updates applied here", METRIC_COUNTER);
	o->causal_concurrent =
	    scalar(m, "spectra_causal_concurrent_writes_total", "",
		   "Causal: updates that replaced a value they did not depend on", METRIC_COUNTER);
	o->f_hints_pending = family(m, "spectra_hints_pending", "",
				    "Eventual: hints held here for each peer", METRIC_GAUGE, peer);
	o->hints_queued =
	    scalar(m, "spectra_hints_queued_total", "",
		   "Eventual: hints stored for a replica that did not answer", METRIC_COUNTER);
	o->hints_delivered = scalar(m, "spectra_hints_delivered_total", "",
				    "Eventual: hints replayed and acknowledged", METRIC_COUNTER);
	o->hints_dropped =
	    scalar(m, "spectra_hints_dropped_total", "",
		   "Eventual: hints dropped (too old or over hint-max-bytes)", METRIC_COUNTER);
	o->read_repairs = scalar(m, "spectra_read_repairs_total", "",
				 "Eventual: repair writes sent by reads", METRIC_COUNTER);
	o->ae_rounds = scalar(m, "spectra_anti_entropy_rounds_total", "",
			      "Eventual: Merkle-tree exchanges started", METRIC_COUNTER);
	o->ae_divergent =
	    scalar(m, "spectra_anti_entropy_divergent_keys_total", "",
		   "Eventual: keys found to differ by anti-entropy and sent", METRIC_COUNTER);
	o->ae_repaired = scalar(m, "spectra_anti_entropy_keys_repaired_total", "",
				"Eventual: keys anti-entropy changed here", METRIC_COUNTER);
	o->crdt_merges = scalar(m, "spectra_crdt_merges_total", "",
				"Eventual: states merged that changed a key", METRIC_COUNTER);
	o->lww_concurrent =
	    scalar(m, "spectra_lww_concurrent_overwrites_total", "",
		   "Eventual: LWW writes that overwrote, or lost to, one they had not seen",
		   METRIC_COUNTER);
	static const char *const mode_label[] = {"mode", NULL};
	struct metric_family *sib = metrics_family(
	    m, "spectra_read_siblings", "",
	    "Concurrent values (siblings) a read of a multi-value register returned: MVREG.GET, "
	    "or GET on a causal keyspace with SIBLINGS yes",
	    METRIC_HISTOGRAM, mode_label, metrics_versions_buckets, metrics_versions_nbuckets);
	const char *causal[] = {"causal"}, *eventual[] = {"eventual"};
	o->siblings[0] = metrics_series(sib, causal);
	o->siblings[1] = metrics_series(sib, eventual);
	o->clock_skew = scalar(m, "spectra_clock_skew_flagged_total", "",
			       "Eventual: LWW timestamps ahead of this clock by more than "
			       "max-clock-skew-ms",
			       METRIC_COUNTER);
}

/* ---- the HTTP endpoint ------------------------------------------------- */

static void http_answer(void *ctx, const char *path, struct http_response *out);

static int self_http_port(const struct server *srv)
{
	if (srv->cfg->http_port)
		return srv->cfg->http_port;
	const struct cluster_node *me = cluster_file_find(srv->cluster, srv->node_id);
	return me ? me->http_port : 0;
}

int observe_init(struct server *srv)
{
	struct server_obs *o = sp_calloc(1, sizeof(*o));
	srv->obs = o;
	o->reg = metrics_new();
	o->rng = sp_mono_ns(srv->clock) ^ (srv->node_id * 0x9E3779B97F4A7C15ull) ^ 1;
	register_metrics(o);
	int port = self_http_port(srv);
	if (!port)
		return 0;
	int rc = http_server_start(&o->http, srv->loop, srv->cfg->http_bind, (uint16_t)port,
				   http_answer, srv);
	if (rc)
		return rc;
	sp_info("http: /metrics, /status and the dashboard on %s:%d", srv->cfg->http_bind, port);
	return 0;
}

void observe_close(struct server *srv)
{
	struct server_obs *o = srv->obs;
	if (!o)
		return;
	http_server_stop(o->http);
	metrics_free(o->reg);
	free(o);
	srv->obs = NULL;
}

/* ---- timing data commands ---------------------------------------------- */

void observe_op_begin(struct client *c)
{
	c->op = (struct op_obs){.start_ns = sp_mono_ns(c->srv->clock),
				.level = -1,
				.receipt = (c->flags & CLIENT_RECEIPTS) != 0,
				.proto = (uint8_t)c->proto};
}

uint64_t observe_strong_lag_ms(struct server *srv)
{
	if (srv->role == RAFT_LEADER)
		return 0;
	if (!srv->fresh_as_of_ns)
		return UINT64_MAX;
	/* Rounded up: a bound of 0 ms is met only by the leader. */
	return (sp_mono_ns(srv->clock) - srv->fresh_as_of_ns + 999999) / 1000000;
}

/* Probes: one every FRESH_PROBE_MS, at most FRESH_PROBES_OUT unanswered
 * (a partitioned follower's rounds wait for a leader). */
#define FRESH_PROBE_MS	 50
#define FRESH_PROBES_OUT 8

struct probe {
	struct server *srv;
	uint64_t sent_ns;
};

static void on_probe(void *arg, int err, uint64_t index)
{
	struct probe *p = arg;
	(void)index;
	/* Called once the state machine applied the read index: everything
	 * committed when the round was sent is here. */
	p->srv->probes_out--;
	if (!err && p->sent_ns > p->srv->fresh_as_of_ns)
		p->srv->fresh_as_of_ns = p->sent_ns;
	free(p);
}

void observe_freshness_probe(struct server *srv)
{
	if (!srv->strong || srv->role == RAFT_LEADER || srv->probes_out >= FRESH_PROBES_OUT)
		return;
	uint64_t now = sp_mono_ns(srv->clock);
	if (now - srv->last_probe_ns < FRESH_PROBE_MS * 1000000ull)
		return;
	srv->last_probe_ns = now;
	struct probe *p = sp_malloc(sizeof(*p));
	p->srv = srv;
	p->sent_ns = now;
	if (strong_read(srv->strong, on_probe, p) == 0)
		srv->probes_out++;
	else
		free(p);
}

void observe_op_level(struct client *c, enum obs_level level, bool write)
{
	if (c->op.level < 0 && !c->op.slotted) {
		c->op.level = (int8_t)level;
		c->op.write = write;
	}
}

static bool is_error(const char *p, size_t len)
{
	return len > 0 && (p[0] == '-' || p[0] == '!');
}

static void record(struct server *srv, const struct op_obs *op, bool error)
{
	struct server_obs *o = srv->obs;
	if (!o || op->level < 0 || op->level >= OBS_NLEVELS)
		return;
	int cls = op->write ? CLASS_WRITE : CLASS_READ;
	struct level_series *s = &o->lv[cls][op->level];
	if (!s->req)
		return;
	uint64_t now = sp_mono_ns(srv->clock);
	metric_inc(s->req);
	if (error)
		metric_inc(s->err);
	metric_observe(s->lat, (double)(now - op->start_ns) / 1e9);
}

void observe_op_end(struct client *c, const char *reply, size_t len)
{
	if (c->op.level >= 0 && !c->op.slotted)
		record(c->srv, &c->op, is_error(reply, len));
	c->op.level = -1;
}

void observe_slot_done(struct server *srv, const struct reply_slot *s)
{
	if (s->obs.level < 0)
		return;
	record(srv, &s->obs, is_error(sp_buf_begin(&s->bytes), s->bytes.len));
}

/* ---- the sampler's verdicts -------------------------------------------- */

bool observe_sample_pick(struct server *srv)
{
	struct server_obs *o = srv->obs;
	uint64_t every = srv->cfg->stale_sample_every;
	if (!o || every == 0)
		return false;
	/* xorshift64*: cheap, and good enough to spread the samples. */
	o->rng ^= o->rng >> 12;
	o->rng ^= o->rng << 25;
	o->rng ^= o->rng >> 27;
	return (o->rng * 0x2545F4914F6CDD1Dull) % every == 0;
}

void observe_stale(struct server *srv, enum obs_level level, bool stale, uint64_t versions_behind,
		   uint64_t ms_behind)
{
	struct server_obs *o = srv->obs;
	if (!o || level >= OBS_NLEVELS || !o->st[level].sampled)
		return;
	struct stale_series *s = &o->st[level];
	metric_inc(s->sampled);
	if (!stale)
		return;
	metric_inc(s->stale);
	metric_observe(s->ms, (double)ms_behind);
	metric_observe(s->versions, (double)versions_behind);
}

void observe_siblings(struct server *srv, bool eventual, size_t n)
{
	if (srv->obs && srv->obs->siblings[eventual])
		metric_observe(srv->obs->siblings[eventual], (double)n);
}

void observe_stale_failed(struct server *srv, enum obs_level level)
{
	struct server_obs *o = srv->obs;
	if (o && level < OBS_NLEVELS && o->st[level].failed)
		metric_inc(o->st[level].failed);
}

/* ---- windows ----------------------------------------------------------- */

static void snap_hist(const struct metric *m, uint64_t *out)
{
	if (m)
		metric_hist_read(m, out, MAX_BUCKETS);
}

void observe_tick(struct server *srv)
{
	struct server_obs *o = srv->obs;
	if (!o)
		return;
	uint64_t now = sp_mono_ns(srv->clock);
	if (o->win_n && now - o->last_tick_ns < 1000000000ull)
		return;
	o->last_tick_ns = now;
	o->win_head = (o->win_head + 1) % WIN_N;
	if (o->win_n < WIN_N)
		o->win_n++;
	struct snapshot *sn = &o->win[o->win_head];
	memset(sn, 0, sizeof(*sn));
	sn->t_ns = now;
	for (int c = 0; c < NCLASSES; c++) {
		for (int l = 0; l < OBS_NLEVELS; l++) {
			const struct level_series *s = &o->lv[c][l];
			if (!s->req)
				continue;
			sn->req[c][l] = (uint64_t)metric_value(s->req);
			sn->err[c][l] = (uint64_t)metric_value(s->err);
			snap_hist(s->lat, sn->lat[c][l]);
		}
	}
	for (int l = 0; l < OBS_NLEVELS; l++) {
		const struct stale_series *s = &o->st[l];
		if (!s->sampled)
			continue;
		sn->sampled[l] = (uint64_t)metric_value(s->sampled);
		sn->stale[l] = (uint64_t)metric_value(s->stale);
		snap_hist(s->ms, sn->ms[l]);
		snap_hist(s->versions, sn->versions[l]);
	}
}

/* window returns the snapshot about `back` seconds before the newest (the
 * oldest kept if there are fewer), or NULL with fewer than two. */
static const struct snapshot *window(const struct server_obs *o, size_t back)
{
	if (o->win_n < 2)
		return NULL;
	if (back > o->win_n - 1)
		back = o->win_n - 1;
	return &o->win[(o->win_head + WIN_N - back) % WIN_N];
}

static json_t *quantile_ms(const struct metric *m, const uint64_t *now, const uint64_t *then,
			   double q, double scale)
{
	size_t nb;
	const double *bounds = metric_hist_bounds(m, &nb);
	uint64_t d[MAX_BUCKETS];
	for (size_t i = 0; i <= nb && i < MAX_BUCKETS; i++)
		d[i] = now[i] - (then ? then[i] : 0);
	double v = metrics_quantile(bounds, d, nb, q);
	return isnan(v) ? json_null() : json_real(v * scale);
}

/* ---- scrape-time values ------------------------------------------------ */

static void set_counter(struct metric *m, uint64_t v)
{
	double have = metric_value(m);
	if ((double)v > have)
		metric_add(m, (double)v - have);
}

struct peer_view {
	uint64_t id;
	bool self, up_known, up;
	bool match_known;
	uint64_t match;
	bool causal_known;
	struct causal_peer_lag causal;
	bool hints_known;
	uint64_t hints;
};

static void view_peer(struct server *srv, uint64_t id, struct peer_view *v)
{
	memset(v, 0, sizeof(*v));
	v->id = id;
	v->self = id == srv->node_id;
	if (v->self) {
		v->up_known = v->up = true;
		return;
	}
	if (srv->strong && strong_peer_match(srv->strong, id, &v->match) == 0)
		v->match_known = true;
	if (srv->causal && causal_peer_lag(srv->causal, id, &v->causal) == 0)
		v->causal_known = true;
	struct ev_peer_info ei;
	if (srv->eventual && eventual_peer_info(srv->eventual, id, &ei) == 0) {
		v->up_known = true;
		v->up = ei.alive;
		v->hints_known = true;
		v->hints = ei.hints;
	}
}

static void refresh_metrics(struct server *srv)
{
	struct server_obs *o = srv->obs;
	set_counter(o->commands, srv->stats.commands);
	set_counter(o->errors_total, srv->stats.errors);
	set_counter(o->connections_total, srv->stats.connections);
	metric_set(o->connections, (double)srv->nclients);
	uint64_t applied = 0, last = 0;
	if (srv->strong) {
		applied = strong_applied_index(srv->strong);
		last = strong_commit_index(srv->strong);
		metric_set(o->raft_term, (double)strong_term(srv->strong));
		metric_set(o->raft_leader, (double)strong_leader(srv->strong));
		metric_set(o->raft_is_leader, srv->role == RAFT_LEADER);
		metric_set(o->raft_commit, (double)last);
		metric_set(o->raft_applied, (double)applied);
	}
	for (size_t i = 0; i < srv->cluster->n; i++) {
		struct peer_view v;
		view_peer(srv, srv->cluster->nodes[i].id, &v);
		if (v.self)
			continue;
		char id[24];
		snprintf(id, sizeof(id), "%" PRIu64, v.id);
		const char *lbl[] = {id};
		if (v.up_known)
			metric_set(metrics_series(o->f_peer_up, lbl), v.up);
		if (v.match_known) {
			metric_set(metrics_series(o->f_match, lbl), (double)v.match);
			metric_set(metrics_series(o->f_raft_lag, lbl),
				   (double)(last > v.match ? last - v.match : 0));
		}
		if (v.causal_known) {
			metric_set(metrics_series(o->f_causal_unacked, lbl),
				   (double)v.causal.unacked);
			metric_set(metrics_series(o->f_causal_behind, lbl),
				   v.causal.behind_ms == UINT64_MAX ? -1
								    : (double)v.causal.behind_ms);
		}
		if (v.hints_known) {
			metric_set(metrics_series(o->f_hints_pending, lbl), (double)v.hints);
		}
	}
	if (srv->causal) {
		struct causal_stats cs;
		causal_get_stats(srv->causal, &cs);
		uint64_t lag = causal_lag_ms(srv->causal);
		metric_set(o->causal_lag, lag == UINT64_MAX ? -1 : (double)lag);
		metric_set(o->causal_pending, (double)cs.pending);
		set_counter(o->causal_applied, cs.updates_applied);
		set_counter(o->causal_concurrent, cs.concurrent_writes);
	}
	if (srv->eventual) {
		struct ev_stats es;
		eventual_get_stats(srv->eventual, &es);
		set_counter(o->hints_queued, es.hints_queued);
		set_counter(o->hints_delivered, es.hints_delivered);
		set_counter(o->hints_dropped, es.hints_dropped);
		set_counter(o->read_repairs, es.read_repairs);
		set_counter(o->ae_rounds, es.ae_rounds);
		set_counter(o->ae_divergent, es.ae_keys_sent);
		set_counter(o->ae_repaired, es.ae_keys_repaired);
		set_counter(o->crdt_merges, es.merges);
		set_counter(o->lww_concurrent, es.lww_concurrent);
		set_counter(o->clock_skew, es.clock_skew_flagged);
	}
}

/* ---- /status ----------------------------------------------------------- */

static json_t *opt_uint(bool known, uint64_t v)
{
	return known ? json_integer((json_int_t)v) : json_null();
}

static json_t *status_members(struct server *srv, uint64_t last)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < srv->cluster->n; i++) {
		const struct cluster_node *nd = &srv->cluster->nodes[i];
		struct peer_view v;
		view_peer(srv, nd->id, &v);
		char addr[96], http[96];
		snprintf(addr, sizeof(addr), "%s:%d", nd->host, nd->client_port);
		snprintf(http, sizeof(http), "%s:%d", nd->host, nd->http_port);
		json_t *m = json_object();
		json_object_set_new(m, "id", json_integer((json_int_t)nd->id));
		json_object_set_new(m, "self", json_boolean(v.self));
		json_object_set_new(m, "addr", json_string(addr));
		json_object_set_new(m, "http", nd->http_port ? json_string(http) : json_null());
		json_object_set_new(m, "up", v.up_known ? json_boolean(v.up) : json_null());
		json_object_set_new(m, "leader", json_boolean(nd->id == srv->leader));
		if (v.self && srv->role == RAFT_LEADER) {
			json_object_set_new(m, "match_index", json_integer((json_int_t)last));
			json_object_set_new(m, "raft_lag_entries", json_integer(0));
		} else {
			json_object_set_new(m, "match_index", opt_uint(v.match_known, v.match));
			json_object_set_new(
			    m, "raft_lag_entries",
			    opt_uint(v.match_known, last > v.match ? last - v.match : 0));
		}
		json_object_set_new(m, "causal_lag", opt_uint(v.causal_known, v.causal.unacked));
		json_object_set_new(m, "causal_behind_ms",
				    opt_uint(v.causal_known && v.causal.behind_ms != UINT64_MAX,
					     v.causal.behind_ms));
		json_object_set_new(m, "hints_pending", opt_uint(v.hints_known, v.hints));
		json_array_append_new(arr, m);
	}
	return arr;
}

static json_t *status_levels(struct server_obs *o)
{
	json_t *arr = json_array();
	const struct snapshot *now = window(o, 0), *then = window(o, LEVEL_WIN);
	for (int c = 0; c < NCLASSES; c++) {
		for (int l = 0; l < OBS_NLEVELS; l++) {
			const struct level_series *s = &o->lv[c][l];
			if (!s->req || metric_value(s->req) == 0)
				continue;
			json_t *e = json_object();
			json_object_set_new(e, "mode", json_string(obs_level_mode(l)));
			json_object_set_new(e, "level", json_string(level_names[l]));
			json_object_set_new(e, "kind",
					    json_string(c == CLASS_READ ? "read" : "write"));
			json_object_set_new(e, "total",
					    json_integer((json_int_t)metric_value(s->req)));
			if (now && then && now->t_ns > then->t_ns) {
				double secs = (double)(now->t_ns - then->t_ns) / 1e9;
				json_object_set_new(
				    e, "ops_per_sec",
				    json_real((double)(now->req[c][l] - then->req[c][l]) / secs));
				json_object_set_new(
				    e, "errors_per_sec",
				    json_real((double)(now->err[c][l] - then->err[c][l]) / secs));
				json_object_set_new(e, "p50_ms",
						    quantile_ms(s->lat, now->lat[c][l],
								then->lat[c][l], 0.50, 1000));
				json_object_set_new(e, "p95_ms",
						    quantile_ms(s->lat, now->lat[c][l],
								then->lat[c][l], 0.95, 1000));
				json_object_set_new(e, "p99_ms",
						    quantile_ms(s->lat, now->lat[c][l],
								then->lat[c][l], 0.99, 1000));
			}
			json_array_append_new(arr, e);
		}
	}
	return arr;
}

static json_t *status_stale(struct server_obs *o)
{
	json_t *arr = json_array();
	const struct snapshot *now = window(o, 0), *then = window(o, STALE_WIN);
	for (int l = 0; l < OBS_NLEVELS; l++) {
		const struct stale_series *s = &o->st[l];
		if (!s->sampled || metric_value(s->sampled) == 0)
			continue;
		double sampled = metric_value(s->sampled), stale = metric_value(s->stale);
		json_t *e = json_object();
		json_object_set_new(e, "mode", json_string(obs_level_mode(l)));
		json_object_set_new(e, "level", json_string(level_names[l]));
		json_object_set_new(e, "sampled_total", json_integer((json_int_t)sampled));
		json_object_set_new(e, "stale_total", json_integer((json_int_t)stale));
		json_object_set_new(e, "failed_total",
				    json_integer((json_int_t)metric_value(s->failed)));
		json_object_set_new(e, "rate", json_real(stale / sampled));
		if (now && then && now->sampled[l] > then->sampled[l]) {
			json_object_set_new(
			    e, "window_rate",
			    json_real((double)(now->stale[l] - then->stale[l]) /
				      (double)(now->sampled[l] - then->sampled[l])));
			json_object_set_new(
			    e, "window_sampled",
			    json_integer((json_int_t)(now->sampled[l] - then->sampled[l])));
		} else {
			json_object_set_new(e, "window_rate", json_null());
		}
		/* Percentiles of the stale reads over the whole run: over a
		 * window they would vanish whenever nothing was stale. */
		json_object_set_new(e, "p95_ms_behind",
				    now ? quantile_ms(s->ms, now->ms[l], NULL, 0.95, 1)
					: json_null());
		/* Versions are whole: the bucket interpolation's 0.95 is 1. */
		json_t *pv =
		    now ? quantile_ms(s->versions, now->versions[l], NULL, 0.95, 1) : json_null();
		if (json_is_real(pv)) {
			double v = json_real_value(pv);
			uint64_t whole = (uint64_t)v;
			json_decref(pv);
			pv = json_integer((json_int_t)(whole + ((double)whole < v)));
		}
		json_object_set_new(e, "p95_versions_behind", pv);
		json_array_append_new(arr, e);
	}
	return arr;
}

static void status_json(struct server *srv, struct sp_buf *out)
{
	struct server_obs *o = srv->obs;
	uint64_t last = srv->strong ? strong_commit_index(srv->strong) : 0;
	uint64_t applied = srv->strong ? strong_applied_index(srv->strong) : 0;
	static const char *const roles[] = {
	    [RAFT_FOLLOWER] = "follower", [RAFT_CANDIDATE] = "candidate", [RAFT_LEADER] = "leader"};
	json_t *j = json_object();
	json_object_set_new(j, "node", json_integer((json_int_t)srv->node_id));
	json_object_set_new(j, "version", json_string(SPECTRA_VERSION));
	json_object_set_new(
	    j, "uptime_s",
	    json_integer((json_int_t)(sp_elapsed_ms(server_now_ms(srv), srv->start_ms) / 1000)));
	json_object_set_new(
	    j, "role",
	    json_string((size_t)srv->role < sizeof(roles) / sizeof(roles[0]) && roles[srv->role]
			    ? roles[srv->role]
			    : "none"));
	json_object_set_new(j, "leader", json_integer((json_int_t)srv->leader));
	json_object_set_new(j, "term", json_integer((json_int_t)srv->term));
	json_object_set_new(j, "commit_index", json_integer((json_int_t)last));
	json_object_set_new(j, "applied_index", json_integer((json_int_t)applied));
	json_object_set_new(j, "connections", json_integer((json_int_t)srv->nclients));
	json_object_set_new(j, "ops_per_sec", json_integer((json_int_t)srv->stats.ops_per_sec));
	if (srv->causal) {
		uint64_t lag = causal_lag_ms(srv->causal);
		json_object_set_new(j, "causal_lag_ms",
				    lag == UINT64_MAX ? json_null()
						      : json_integer((json_int_t)lag));
	}
	json_object_set_new(j, "members", status_members(srv, last));
	json_object_set_new(j, "levels", status_levels(o));
	json_object_set_new(j, "stale", status_stale(o));
	uint64_t every = srv->cfg->stale_sample_every;
	json_object_set_new(j, "sample_rate", json_real(every ? 1.0 / (double)every : 0));
	if (srv->eventual) {
		struct ev_stats es;
		eventual_get_stats(srv->eventual, &es);
		json_t *h = json_object();
		json_object_set_new(h, "pending", json_integer((json_int_t)es.hints_pending));
		json_object_set_new(h, "queued", json_integer((json_int_t)es.hints_queued));
		json_object_set_new(h, "delivered", json_integer((json_int_t)es.hints_delivered));
		json_object_set_new(h, "dropped", json_integer((json_int_t)es.hints_dropped));
		json_object_set_new(j, "hints", h);
		json_t *ae = json_object();
		json_object_set_new(ae, "rounds", json_integer((json_int_t)es.ae_rounds));
		json_object_set_new(ae, "divergent_keys_found",
				    json_integer((json_int_t)es.ae_keys_sent));
		json_object_set_new(ae, "keys_fixed",
				    json_integer((json_int_t)es.ae_keys_repaired));
		json_object_set_new(j, "anti_entropy", ae);
		json_object_set_new(j, "read_repairs", json_integer((json_int_t)es.read_repairs));
	}
	json_t *ks = json_array();
	json_t *def = json_object();
	json_object_set_new(def, "name", json_string("default"));
	json_object_set_new(def, "mode", json_string(mode_name((uint8_t)srv->cfg->default_mode)));
	json_array_append_new(ks, def);
	for (size_t i = 0; i < srv->nkeyspaces; i++) {
		json_t *k = json_object();
		json_object_set_new(k, "name", json_string(srv->keyspaces[i].name));
		json_object_set_new(k, "mode", json_string(mode_name(srv->keyspaces[i].mode)));
		json_array_append_new(ks, k);
	}
	json_object_set_new(j, "keyspaces", ks);
	char *text = json_dumps(j, JSON_COMPACT);
	if (text) {
		sp_buf_append_str(out, text);
		sp_buf_append_str(out, "\n");
		free(text);
	}
	json_decref(j);
}

static void http_answer(void *ctx, const char *path, struct http_response *out)
{
	struct server *srv = ctx;
	if (strcmp(path, "/metrics") == 0) {
		refresh_metrics(srv);
		out->content_type = "text/plain; version=0.0.4; charset=utf-8";
		metrics_render(srv->obs->reg, &out->body);
	} else if (strcmp(path, "/status") == 0) {
		out->content_type = "application/json";
		status_json(srv, &out->body);
	} else if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
		out->content_type = "text/html; charset=utf-8";
		sp_buf_append(&out->body, obs_dashboard_html, obs_dashboard_html_len);
	} else {
		out->status = 404;
		sp_buf_appendf(&out->body, "no such page; try /metrics, /status or /\n");
	}
}

/* ---- staleness receipts ------------------------------------------------ */

void observe_receipt(struct op_obs *op, uint64_t node, uint8_t replicas, enum receipt_version vkind,
		     uint64_t v1, uint64_t v2, uint64_t v3)
{
	op->node = node;
	op->replicas = replicas;
	op->vkind = (uint8_t)vkind;
	op->v1 = v1;
	op->v2 = v2;
	op->v3 = v3;
}

/* node_lag_ms: what the serving node knows of its own lag in op's mode,
 * or -1 when it cannot know (an eventual replica does not know what it
 * has not received). */
static int64_t node_lag_ms(struct server *srv, const struct op_obs *op)
{
	const char *mode = obs_level_mode((enum obs_level)op->level);
	if (mode[0] == 's') {
		if (op->node != srv->node_id || srv->role == RAFT_LEADER)
			return 0; /* served by the leader */
		uint64_t lag = observe_strong_lag_ms(srv);
		return lag == UINT64_MAX ? -1 : (int64_t)lag;
	}
	if (mode[0] == 'c' && srv->causal) {
		uint64_t lag = causal_lag_ms(srv->causal);
		return lag == UINT64_MAX ? -1 : (int64_t)lag;
	}
	return -1;
}

static void put_key(struct sp_buf *b, const char *k, int proto)
{
	if (proto == 3)
		resp_write_simple(b, k);
	else
		resp_write_bulk_str(b, k);
}

void observe_wrap(struct server *srv, const struct op_obs *op, const void *p, size_t len,
		  struct sp_buf *out)
{
	if (!op->receipt || op->level < 0 || is_error(p, len)) {
		sp_buf_append(out, p, len);
		return;
	}
	int proto = op->proto == 3 ? 3 : 2;
	size_t pairs = 5 + (op->vkind == RCPT_INDEX    ? 1
			    : op->vkind == RCPT_HLC    ? 2
			    : op->vkind == RCPT_CAUSAL ? 3
						       : 0);
	struct sp_buf r;
	sp_buf_init(&r);
	if (proto == 3)
		sp_buf_appendf(&r, "|%zu\r\n", pairs);
	else
		resp_write_array_len(&r, pairs * 2);
	put_key(&r, "mode", proto);
	put_key(&r, obs_level_mode((enum obs_level)op->level), proto);
	put_key(&r, "level", proto);
	put_key(&r, obs_level_name((enum obs_level)op->level), proto);
	put_key(&r, "node", proto);
	resp_write_integer(&r, (int64_t)op->node);
	put_key(&r, "replicas", proto);
	resp_write_integer(&r, op->replicas);
	put_key(&r, "lag-ms", proto);
	int64_t lag = node_lag_ms(srv, op);
	if (lag < 0)
		resp_write_null(&r, proto);
	else
		resp_write_integer(&r, lag);
	if (op->vkind == RCPT_INDEX) {
		put_key(&r, "index", proto);
		resp_write_integer(&r, (int64_t)op->v1);
	} else if (op->vkind == RCPT_HLC) {
		put_key(&r, "hlc", proto);
		resp_write_integer(&r, (int64_t)op->v1);
		put_key(&r, "writer", proto);
		resp_write_integer(&r, (int64_t)op->v2);
	} else if (op->vkind == RCPT_CAUSAL) {
		put_key(&r, "hlc", proto);
		resp_write_integer(&r, (int64_t)op->v1);
		put_key(&r, "origin", proto);
		resp_write_integer(&r, (int64_t)op->v2);
		put_key(&r, "seq", proto);
		resp_write_integer(&r, (int64_t)op->v3);
	}
	if (proto == 3) {
		sp_buf_append(out, sp_buf_begin(&r), r.len);
		sp_buf_append(out, p, len);
	} else {
		resp_write_array_len(out, 2);
		sp_buf_append(out, p, len);
		sp_buf_append(out, sp_buf_begin(&r), r.len);
	}
	sp_buf_free(&r);
}
