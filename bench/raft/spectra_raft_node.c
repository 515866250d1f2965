/*
 * spectra_raft_node: one node of a Raft benchmark cluster, built on
 * spectra's own Raft (src/engine/strong: the pure core, raft_node's libuv
 * binding with group commit, raft_log, and the peer transport). It is the
 * twin of bench/raft/libraft_node.c: the same command line, the same
 * output, the same workload; see that file's header (or
 * bench/raft/README.md) for the interface. Only the Raft underneath
 * differs.
 *
 * Durability: every entry is fdatasync'ed on a majority before it counts
 * as committed (raft_node syncs each group of writes on the thread pool
 * and the core holds acknowledgements until then). Snapshots are off for
 * the run, as in the libraft driver.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "engine/strong/raft_node.h"
#include "net/peer.h"

#define MAX_NODES	9
#define MAX_INFLIGHT	65536
#define MAX_VALUE_BYTES (1u << 20)
#define LOAD_GRACE_MS	90000

struct member {
	uint64_t id;
	char host[64];
	int port;
};

struct opts {
	uint64_t id;
	struct member members[MAX_NODES];
	unsigned n;
	const char *dir, *out;
	unsigned election_ms, heartbeat_ms, inflight, duration_ms, warmup_ms, value_bytes;
	bool failover;
};

enum phase { PHASE_FOLLOW, PHASE_BARRIER, PHASE_WARMUP, PHASE_MEASURE, PHASE_STEADY, PHASE_DONE };

struct bnode;
struct slot {
	struct bnode *node;
	uint64_t proposed_ns, term;
};

struct bnode {
	struct opts o;
	uv_loop_t loop;
	struct peer_net *net;
	struct raft_node *raft;
	uv_timer_t warmup_timer, end_timer, life_timer;
	enum phase phase;
	uint64_t lead_term;
	bool first_commit_seen;
	int exit_status;
	FILE *events;
	struct slot *slots;
	unsigned in_flight;
	uint8_t *value;
	uint64_t window_start_ns, window_end_ns, committed;
	uint64_t *lat;
	size_t n_lat, cap_lat;
	uint64_t applied, checksum;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t realtime_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: spectra_raft_node --id N --cluster 1=HOST:PORT,2=HOST:PORT,... --dir DIR\n"
	    "         --out FILE [--election-ms 150] [--heartbeat-ms 50] [--inflight 1]\n"
	    "         [--duration-ms 5000] [--warmup-ms 1000] [--value-bytes 64] [--failover]\n");
}

static int parse_cluster(struct opts *o, const char *s)
{
	char *copy = sp_strdup(s), *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct member *m = &o->members[o->n];
		unsigned long long id;
		char host[64];
		int port;
		if (o->n == MAX_NODES || sscanf(tok, "%llu=%63[^:]:%d", &id, host, &port) != 3 ||
		    !id || port <= 0 || port > 65535) {
			free(copy);
			return -1;
		}
		m->id = id;
		snprintf(m->host, sizeof(m->host), "%s", host);
		m->port = port;
		o->n++;
	}
	free(copy);
	return o->n ? 0 : -1;
}

static int parse(struct opts *o, int argc, char **argv)
{
	static const struct option longs[] = {
	    {"id", 1, 0, 'i'},		{"cluster", 1, 0, 'c'},	    {"dir", 1, 0, 'd'},
	    {"out", 1, 0, 'o'},		{"election-ms", 1, 0, 'e'}, {"heartbeat-ms", 1, 0, 'h'},
	    {"inflight", 1, 0, 'k'},	{"duration-ms", 1, 0, 'D'}, {"warmup-ms", 1, 0, 'w'},
	    {"value-bytes", 1, 0, 'b'}, {"failover", 0, 0, 'f'},    {0, 0, 0, 0}};
	memset(o, 0, sizeof(*o));
	o->election_ms = 150;
	o->heartbeat_ms = 50;
	o->inflight = 1;
	o->duration_ms = 5000;
	o->warmup_ms = 1000;
	o->value_bytes = 64;
	int c;
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'i':
			o->id = strtoull(optarg, NULL, 10);
			break;
		case 'c':
			if (parse_cluster(o, optarg))
				return -1;
			break;
		case 'd':
			o->dir = optarg;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'e':
			o->election_ms = (unsigned)atoi(optarg);
			break;
		case 'h':
			o->heartbeat_ms = (unsigned)atoi(optarg);
			break;
		case 'k':
			o->inflight = (unsigned)atoi(optarg);
			break;
		case 'D':
			o->duration_ms = (unsigned)atoi(optarg);
			break;
		case 'w':
			o->warmup_ms = (unsigned)atoi(optarg);
			break;
		case 'b':
			o->value_bytes = (unsigned)atoi(optarg);
			break;
		case 'f':
			o->failover = true;
			break;
		default:
			return -1;
		}
	}
	bool found = false;
	for (unsigned i = 0; i < o->n; i++)
		found |= o->members[i].id == o->id;
	if (!o->id || !found || !o->dir || !o->out || !o->inflight || o->inflight > MAX_INFLIGHT ||
	    !o->value_bytes || o->value_bytes > MAX_VALUE_BYTES || !o->election_ms ||
	    o->heartbeat_ms >= o->election_ms)
		return -1;
	return 0;
}

/* ---- the state machine: count and checksum the entries ---- */

static void fsm_apply(void *ctx, const struct raft_entry *e)
{
	struct bnode *n = ctx;
	n->applied = e->index;
	if (e->type == RAFT_ENTRY_NORMAL && e->len >= 8) {
		uint64_t v;
		memcpy(&v, e->data, 8);
		n->checksum += v;
	}
}

/* ---- results ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(const uint64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / 1e6;
}

static int write_result(struct bnode *n)
{
	qsort(n->lat, n->n_lat, sizeof(*n->lat), cmp_u64);
	double secs = (double)(n->window_end_ns - n->window_start_ns) / 1e9;
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", n->o.out);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f,
		"{\"impl\":\"spectra\",\"nodes\":%u,\"inflight\":%u,\"value_bytes\":%u,"
		"\"duration_s\":%.3f,\"committed\":%" PRIu64 ",\"ops_per_s\":%.1f,"
		"\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
		"\"id\":%" PRIu64 ",\"term\":%" PRIu64 "}\n",
		n->o.n, n->o.inflight, n->o.value_bytes, secs, n->committed,
		secs > 0 ? (double)n->committed / secs : 0, pct_ms(n->lat, n->n_lat, 50),
		pct_ms(n->lat, n->n_lat, 95), pct_ms(n->lat, n->n_lat, 99),
		n->n_lat ? (double)n->lat[n->n_lat - 1] / 1e6 : 0, n->o.id, n->lead_term);
	if (fclose(f) != 0 || rename(tmp, n->o.out) != 0)
		return -1;
	return 0;
}

static void event(struct bnode *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(struct bnode *n, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fputs(line, n->events);
	fflush(n->events);
	fputs(line, stdout);
	fflush(stdout);
}

/* ---- load ---- */

static void propose_one(struct bnode *n, struct slot *s);

static void proposal_done(void *arg, int err, uint64_t index)
{
	struct slot *s = arg;
	struct bnode *n = s->node;
	n->in_flight--;
	if (n->phase == PHASE_DONE || n->phase == PHASE_FOLLOW)
		return;
	uint64_t t = mono_ns();
	if (err == 0) {
		if (n->o.failover && !n->first_commit_seen && s->term == n->lead_term) {
			n->first_commit_seen = true;
			event(n, "commit %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
			      n->o.id, n->lead_term, index, realtime_us());
		}
		if (n->phase == PHASE_BARRIER) {
			n->phase = n->o.failover ? PHASE_STEADY : PHASE_WARMUP;
		}
		if (n->phase == PHASE_MEASURE && t <= n->window_end_ns) {
			n->committed++;
			if (n->n_lat == n->cap_lat) {
				n->cap_lat = n->cap_lat ? n->cap_lat * 2 : 1 << 20;
				n->lat = sp_realloc(n->lat, n->cap_lat * sizeof(*n->lat));
			}
			n->lat[n->n_lat++] = t - s->proposed_ns;
		}
	}
	if (n->phase == PHASE_WARMUP || n->phase == PHASE_MEASURE || n->phase == PHASE_STEADY)
		propose_one(n, s);
}

static void propose_one(struct bnode *n, struct slot *s)
{
	s->proposed_ns = mono_ns();
	s->term = n->lead_term;
	uint64_t seq = s->proposed_ns;
	memcpy(n->value, &seq, 8);
	int rc = raft_node_propose(n->raft, n->value, n->o.value_bytes, proposal_done, s);
	if (rc == 0)
		n->in_flight++;
}

static void warmup_done(uv_timer_t *t)
{
	struct bnode *n = t->data;
	if (n->phase != PHASE_WARMUP)
		return;
	n->phase = PHASE_MEASURE;
	n->window_start_ns = mono_ns();
	n->window_end_ns = n->window_start_ns + (uint64_t)n->o.duration_ms * 1000000u;
	n->committed = 0;
	n->n_lat = 0;
}

static void end_done(uv_timer_t *t)
{
	struct bnode *n = t->data;
	if (n->phase != PHASE_MEASURE)
		return;
	n->phase = PHASE_DONE;
	if (write_result(n) != 0) {
		fprintf(stderr, "spectra_raft_node: writing %s: %s\n", n->o.out, strerror(errno));
		n->exit_status = 2;
	}
	uv_stop(&n->loop);
}

static void life_done(uv_timer_t *t)
{
	struct bnode *n = t->data;
	fprintf(stderr, "spectra_raft_node %" PRIu64 ": outlived its bound\n", n->o.id);
	n->exit_status = n->o.failover ? 0 : 3;
	uv_stop(&n->loop);
}

static void start_load(struct bnode *n)
{
	/* The barrier: the first proposal of the term; when it commits, the
	 * no-op of the term has too. */
	n->phase = PHASE_BARRIER;
	n->first_commit_seen = false;
	struct slot *s = &n->slots[0];
	propose_one(n, s);
}

static void role_changed(void *ctx, enum raft_role role, uint64_t term, uint64_t leader)
{
	struct bnode *n = ctx;
	(void)leader;
	if (n->phase == PHASE_DONE)
		return;
	if (role == RAFT_LEADER && (n->phase == PHASE_FOLLOW || term != n->lead_term)) {
		n->lead_term = term;
		if (n->o.failover)
			event(n, "leader %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", n->o.id, term,
			      realtime_us());
		start_load(n);
	} else if (role != RAFT_LEADER && n->phase != PHASE_FOLLOW) {
		/* Lost leadership: discard the numbers; start over if it
		 * leads again. */
		n->phase = PHASE_FOLLOW;
		uv_timer_stop(&n->warmup_timer);
		uv_timer_stop(&n->end_timer);
	}
}

/* After the barrier commits, the remaining K-1 slots join and the
 * warmup and measurement timers start. */
static void barrier_check(uv_check_t *h)
{
	struct bnode *n = h->data;
	if (n->phase != PHASE_WARMUP || uv_is_active((uv_handle_t *)&n->end_timer))
		return;
	for (unsigned i = 1; i < n->o.inflight; i++)
		propose_one(n, &n->slots[i]);
	uv_timer_start(&n->warmup_timer, warmup_done, n->o.warmup_ms, 0);
	uv_timer_start(&n->end_timer, end_done, (uint64_t)n->o.warmup_ms + n->o.duration_ms, 0);
}

static void on_frame(void *ctx, uint64_t from, uint8_t channel, const uint8_t *p, size_t len)
{
	struct bnode *n = ctx;
	if (channel == RAFT_NODE_CHANNEL && n->raft)
		raft_node_recv(n->raft, from, p, len);
}

int main(int argc, char **argv)
{
	static struct bnode node;
	struct bnode *n = &node;
	if (parse(&n->o, argc, argv)) {
		usage(stderr);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sp_log_setup(SP_LOG_WARN, NULL);
	mkdir(n->o.dir, 0755);
	n->events = fopen(n->o.failover ? n->o.out : "/dev/null", "a");
	if (!n->events)
		return 2;
	uv_loop_init(&n->loop);
	struct member *self = NULL;
	for (unsigned i = 0; i < n->o.n; i++)
		if (n->o.members[i].id == n->o.id)
			self = &n->o.members[i];
	struct peer_net_config pc = {.self_id = n->o.id,
				     .bind_host = self->host,
				     .port = self->port,
				     .on_frame = on_frame,
				     .ctx = n,
				     .seed = n->o.id};
	if (peer_net_open(&n->net, &n->loop, &pc)) {
		fprintf(stderr, "spectra_raft_node: cannot listen on %s:%d\n", self->host,
			self->port);
		return 2;
	}
	struct raft_node_config rc = {.dir = n->o.dir, .tick_ms = 5};
	raft_config_default(&rc.raft, n->o.id);
	rc.raft.election_timeout_ms = n->o.election_ms;
	rc.raft.heartbeat_ms = n->o.heartbeat_ms;
	rc.raft.seed = n->o.id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	for (unsigned i = 0; i < n->o.n; i++) {
		struct member *m = &n->o.members[i];
		rc.bootstrap.members[i].id = m->id;
		rc.bootstrap.members[i].role = RAFT_VOTER;
		if (m->id != n->o.id)
			peer_net_add_peer(n->net, m->id, m->host, m->port);
	}
	rc.bootstrap.n = n->o.n;
	struct raft_node_fsm fsm = {.ctx = n, .apply = fsm_apply, .role_changed = role_changed};
	n->slots = sp_calloc(n->o.inflight, sizeof(*n->slots));
	for (unsigned i = 0; i < n->o.inflight; i++)
		n->slots[i].node = n;
	n->value = sp_calloc(1, n->o.value_bytes < 8 ? 8 : n->o.value_bytes);
	uv_timer_init(&n->loop, &n->warmup_timer);
	uv_timer_init(&n->loop, &n->end_timer);
	uv_timer_init(&n->loop, &n->life_timer);
	n->warmup_timer.data = n->end_timer.data = n->life_timer.data = n;
	uv_check_t chk;
	uv_check_init(&n->loop, &chk);
	chk.data = n;
	uv_check_start(&chk, barrier_check);
	int err = raft_node_open(&n->raft, &n->loop, n->net, &rc, &fsm);
	if (err) {
		fprintf(stderr, "spectra_raft_node: raft: %s\n", sp_strerror(err));
		return 2;
	}
	uv_timer_start(&n->life_timer, life_done,
		       n->o.failover ? n->o.duration_ms
				     : (uint64_t)n->o.warmup_ms + n->o.duration_ms + LOAD_GRACE_MS,
		       0);
	uv_run(&n->loop, UV_RUN_DEFAULT);
	/* Exit without tearing down: the cluster is killed by the driver. */
	fflush(NULL);
	_exit(n->exit_status);
}
