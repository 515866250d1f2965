/*
 * libraft_node: one node of a Raft benchmark cluster, built on Debian's
 * libraft 0.15 (canonical/raft) and its libuv I/O backend. It exists so
 * that bench/raft_compare.sh can put spectra's own Raft beside a mature
 * one under the same load, the same timeouts and the same durability.
 * It must not grow features of its own: spectra's driver,
 * bench/raft/spectra_raft_node.c, implements the same command line and
 * output below, and the two must stay interchangeable.
 *
 * THE SHARED INTERFACE (also in bench/raft/README.md)
 *
 *   NODE --id N --cluster 1=127.0.0.1:P1,2=127.0.0.1:P2,... --dir DIR
 *        --out FILE [--election-ms 150] [--heartbeat-ms 50] [--inflight 1]
 *        [--duration-ms 5000] [--warmup-ms 1000] [--value-bytes 64]
 *        [--failover]
 *
 *   --id N           this node's id; must appear in --cluster. Ids are > 0.
 *   --cluster LIST   every voter, "ID=HOST:PORT" separated by commas, in the
 *                    same order on every node. The node listens on its own
 *                    entry's address.
 *   --dir DIR        this node's data directory (created if missing). On an
 *                    empty directory the node bootstraps LIST as the first
 *                    configuration; on a used one it restarts from disk.
 *   --election-ms    election timeout (the base; implementations randomise
 *                    it in [T, 2T)); --heartbeat-ms the leader's heartbeat.
 *   --inflight K     load mode: proposals the leader keeps outstanding.
 *   --warmup-ms W    load mode: load run before measuring starts.
 *   --duration-ms D  load mode: length of the measured window. Failover
 *                    mode: how long the node lives at most.
 *   --value-bytes B  payload size of each proposed entry (1..1048576).
 *   --out FILE       where results go (see below).
 *   --failover       failover mode instead of load mode.
 *
 * Durability: every entry is on stable storage on a majority before it
 * counts as committed. libraft's uv backend opens log segments O_DSYNC and
 * writes them with O_DIRECT through kernel AIO, so each write is durable
 * when it completes; appends that queue up behind a write in flight go out
 * together in the next one (spectra fsyncs each batch likewise). Term and
 * vote are fsync'd too. Snapshots are pushed out of the run's reach
 * (threshold 2^30 entries; libraft's default is 1024) so that no snapshot
 * lands inside a measurement.
 *
 * libraft-specific, not part of the shared interface:
 *  - libraft 0.15's TCP transport never sets TCP_NODELAY. This driver wraps
 *    it to set TCP_NODELAY on every connection, as spectra's peer transport
 *    does, so that Nagle's algorithm is not part of the comparison. Set
 *    LIBRAFT_NODE_NAGLE=1 in the environment to run libraft as shipped.
 *  - libraft 0.15 has no role-change callback; the node polls raft_state()
 *    once per event-loop iteration (a uv_check handle).
 *  - libraft runs its timers from one tick every --heartbeat-ms, so an
 *    election timeout is noticed up to one heartbeat late; and a follower
 *    refuses votes for as long as it still knows a leader, i.e. until its
 *    own randomised timeout fires (stricter than Raft §4.2.3's "minimum
 *    election timeout"). Both lengthen failover.
 *
 * Load mode. Every node starts, bootstraps and joins the election. The
 * node that becomes leader waits until an entry of its own term has
 * committed (here: a barrier), then keeps exactly K proposals of B bytes in
 * flight for W ms of warmup and D ms of measurement. A proposal's latency
 * runs from the call that proposes it to the leader learning it is
 * committed and applied (CLOCK_MONOTONIC); an entry counts when that
 * happens inside the measured window. The leader then writes ONE line to
 * FILE (atomically: FILE.tmp, then rename) and exits 0:
 *
 *   {"impl":"libraft","nodes":3,"inflight":16,"value_bytes":64,
 *    "duration_s":5.001,"committed":51234,"ops_per_s":10244.8,
 *    "p50_ms":1.412,"p95_ms":2.310,"p99_ms":3.020,"max_ms":9.870,
 *    "id":2,"term":2}
 *
 * "impl" is "libraft" here and "spectra" in spectra's driver; "id" and
 * "term" say which node and term produced the numbers. Percentiles are
 * nearest-rank over every measured entry. Followers write nothing and run
 * until killed. If the leader loses leadership mid-run it discards its
 * numbers and starts over whenever it leads again.
 *
 * Failover mode. Every node appends event lines to FILE (and echoes them
 * to stdout), with CLOCK_REALTIME in microseconds since the epoch:
 *
 *   leader ID TERM US           this node became leader of TERM
 *   commit ID TERM INDEX US     its first entry of TERM committed (once per
 *                               term)
 *
 * The leader proposes one B-byte entry at a time for as long as it leads.
 * The orchestrator kills the leader with SIGKILL and reads the survivors'
 * lines: elected_ms = first "leader" with a higher term - kill time, and
 * failover_ms = first "commit" with a higher term - kill time.
 *
 * Exit status: 0 after the load result is written; 1 on a bad command line;
 * 2 if Raft or its I/O could not be set up or failed; 3 when the node
 * outlives its bound (load mode: W + D + 90 s) without finishing.
 * Diagnostics go to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <raft.h>
#include <raft/uv.h>
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

#define MAX_NODES	9
#define MAX_ADDRESS	64
#define MAX_INFLIGHT	65536
#define MAX_VALUE_BYTES (1u << 20)
/* Entries between snapshots: far more than any run commits, so libraft
 * never snapshots (its default, 1024, would snapshot every second). */
#define SNAPSHOT_THRESHOLD (1u << 30)
/* How long a load-mode node lives past W + D before giving up. */
#define LOAD_GRACE_MS 90000
/* First size of the latency sample array; it doubles when full. */
#define LATENCY_INITIAL (1u << 20)

struct peer {
	unsigned id;
	char address[MAX_ADDRESS];
};

struct bench_opts {
	unsigned id;
	struct peer peers[MAX_NODES];
	unsigned n_peers;
	const char *dir;
	const char *out;
	unsigned election_ms;
	unsigned heartbeat_ms;
	unsigned inflight;
	unsigned duration_ms;
	unsigned warmup_ms;
	unsigned value_bytes;
	bool failover;
};

/* Where the node is in its run. Followers stay in FOLLOW; a leader in load
 * mode goes BARRIER -> WARMUP -> MEASURE -> DONE, in failover mode STEADY. */
enum phase {
	PHASE_FOLLOW,
	PHASE_BARRIER,
	PHASE_WARMUP,
	PHASE_MEASURE,
	PHASE_STEADY,
	PHASE_DONE,
};

/* libraft's TCP transport wrapped so that every connection it makes or
 * accepts gets TCP_NODELAY, which libraft 0.15 never sets (see
 * nodelay_transport_init). "outer" is what libraft's uv I/O sees. */
struct nodelay_transport {
	struct raft_uv_transport outer;
	struct raft_uv_transport inner;
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	bool nodelay;
};

/* One outstanding connect through the wrapper. */
struct nodelay_connect {
	struct raft_uv_connect inner_req;
	struct raft_uv_connect *outer_req;
	struct nodelay_transport *transport;
};

struct node;

/* One proposal slot: a raft_apply request and when it was proposed. There
 * are K slots; a slot is busy from raft_apply() until its callback. */
struct proposal {
	struct raft_apply req;
	struct node *node;
	uint64_t proposed_ns;
	raft_term term;
	bool busy;
};

struct node {
	struct bench_opts opts;
	const char *address;

	uv_loop_t loop;
	struct nodelay_transport transport;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft raft;
	uv_check_t role_check;
	uv_timer_t warmup_timer;
	uv_timer_t end_timer;
	uv_timer_t life_timer;
	struct raft_barrier barrier;

	enum phase phase;
	raft_term lead_term;
	unsigned leadership_losses;
	bool first_commit_seen;
	bool closing;
	int events_fd;
	int exit_status;

	struct proposal *proposals;
	struct proposal **free_slots;
	unsigned n_free;
	unsigned in_flight;
	uint64_t next_seq;

	uint64_t window_start_ns;
	uint64_t window_end_ns;
	uint64_t committed;
	uint64_t *latencies_ns;
	size_t n_latencies;
	size_t cap_latencies;

	uint64_t applied;
	uint64_t checksum;
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
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void note(const struct node *n, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "libraft_node[%u]: ", n->opts.id);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Failover mode: append one event line to --out and echo it to stdout. The
 * line goes out in one write(2) so that a reader never sees half of it. */
static void emit_event(struct node *n, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if ((size_t)len > sizeof(line) - 2)
		len = (int)sizeof(line) - 2;
	line[len++] = '\n';
	if (n->events_fd >= 0 && write(n->events_fd, line, (size_t)len) != len)
		note(n, "write %s: %s", n->opts.out, strerror(errno));
	fwrite(line, 1, (size_t)len, stdout);
	fflush(stdout);
}

/* ---- command line ---- */

static int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Parse "1=127.0.0.1:9001,2=127.0.0.1:9002" into opts->peers. */
static int parse_cluster(const char *list, struct bench_opts *opts)
{
	const char *p = list;

	opts->n_peers = 0;
	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		char item[MAX_ADDRESS + 16];
		char *eq;
		struct peer *peer;
		unsigned i;

		if (len == 0 || len >= sizeof(item) || opts->n_peers == MAX_NODES)
			return -1;
		memcpy(item, p, len);
		item[len] = '\0';
		eq = strchr(item, '=');
		if (eq == NULL || strchr(eq + 1, ':') == NULL || strlen(eq + 1) >= MAX_ADDRESS)
			return -1;
		*eq = '\0';
		peer = &opts->peers[opts->n_peers];
		if (parse_unsigned(item, 1, 1000000, &peer->id) != 0)
			return -1;
		for (i = 0; i < opts->n_peers; i++)
			if (opts->peers[i].id == peer->id)
				return -1;
		strcpy(peer->address, eq + 1);
		opts->n_peers++;
		p += len;
		if (*p == ',')
			p++;
	}
	return opts->n_peers > 0 ? 0 : -1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: libraft_node --id N --cluster 1=HOST:PORT,2=HOST:PORT,... --dir DIR\n"
		   "                    --out FILE [--election-ms 150] [--heartbeat-ms 50]\n"
		   "                    [--inflight 1] [--duration-ms 5000] [--warmup-ms 1000]\n"
		   "                    [--value-bytes 64] [--failover]\n"
		   "See the comment at the top of bench/raft/libraft_node.c or "
		   "bench/raft/README.md.\n");
}

static int parse_args(int argc, char **argv, struct bench_opts *opts)
{
	enum {
		OPT_ID = 256,
		OPT_CLUSTER,
		OPT_DIR,
		OPT_OUT,
		OPT_ELECTION,
		OPT_HEARTBEAT,
		OPT_INFLIGHT,
		OPT_DURATION,
		OPT_WARMUP,
		OPT_VALUE,
		OPT_FAILOVER,
		OPT_HELP
	};
	static const struct option longopts[] = {
	    {"id", required_argument, NULL, OPT_ID},
	    {"cluster", required_argument, NULL, OPT_CLUSTER},
	    {"dir", required_argument, NULL, OPT_DIR},
	    {"out", required_argument, NULL, OPT_OUT},
	    {"election-ms", required_argument, NULL, OPT_ELECTION},
	    {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
	    {"inflight", required_argument, NULL, OPT_INFLIGHT},
	    {"duration-ms", required_argument, NULL, OPT_DURATION},
	    {"warmup-ms", required_argument, NULL, OPT_WARMUP},
	    {"value-bytes", required_argument, NULL, OPT_VALUE},
	    {"failover", no_argument, NULL, OPT_FAILOVER},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	const char *cluster = NULL;
	int c, rv = 0;
	unsigned i;
	bool found = false;

	memset(opts, 0, sizeof(*opts));
	opts->election_ms = 150;
	opts->heartbeat_ms = 50;
	opts->inflight = 1;
	opts->duration_ms = 5000;
	opts->warmup_ms = 1000;
	opts->value_bytes = 64;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ID:
			rv |= parse_unsigned(optarg, 1, 1000000, &opts->id);
			break;
		case OPT_CLUSTER:
			cluster = optarg;
			break;
		case OPT_DIR:
			opts->dir = optarg;
			break;
		case OPT_OUT:
			opts->out = optarg;
			break;
		case OPT_ELECTION:
			rv |= parse_unsigned(optarg, 10, 60000, &opts->election_ms);
			break;
		case OPT_HEARTBEAT:
			rv |= parse_unsigned(optarg, 1, 60000, &opts->heartbeat_ms);
			break;
		case OPT_INFLIGHT:
			rv |= parse_unsigned(optarg, 1, MAX_INFLIGHT, &opts->inflight);
			break;
		case OPT_DURATION:
			rv |= parse_unsigned(optarg, 1, 86400000, &opts->duration_ms);
			break;
		case OPT_WARMUP:
			rv |= parse_unsigned(optarg, 0, 86400000, &opts->warmup_ms);
			break;
		case OPT_VALUE:
			rv |= parse_unsigned(optarg, 1, MAX_VALUE_BYTES, &opts->value_bytes);
			break;
		case OPT_FAILOVER:
			opts->failover = true;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
		if (rv != 0) {
			fprintf(stderr, "libraft_node: bad value for an option: %s\n", optarg);
			return -1;
		}
	}
	if (optind != argc || opts->id == 0 || cluster == NULL || opts->dir == NULL ||
	    opts->out == NULL) {
		fprintf(stderr, "libraft_node: --id, --cluster, --dir and --out are required\n");
		return -1;
	}
	if (parse_cluster(cluster, opts) != 0) {
		fprintf(stderr, "libraft_node: bad --cluster '%s' (want ID=HOST:PORT,...)\n",
			cluster);
		return -1;
	}
	for (i = 0; i < opts->n_peers; i++)
		found |= opts->peers[i].id == opts->id;
	if (!found) {
		fprintf(stderr, "libraft_node: --id %u is not in --cluster\n", opts->id);
		return -1;
	}
	if (opts->heartbeat_ms >= opts->election_ms) {
		fprintf(stderr, "libraft_node: --heartbeat-ms must be below --election-ms\n");
		return -1;
	}
	/* Failover mode measures one proposal at a time, by definition. */
	if (opts->failover)
		opts->inflight = 1;
	return 0;
}

/* ---- the state machine: counts entries and folds them into a checksum ---- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct node *n = fsm->data;
	const unsigned char *p = buf->base;
	size_t i, len = buf->len < 8 ? buf->len : 8;

	/* FNV-1a over the entry's sequence number: cheap, and it makes the
	 * state depend on every entry and their order. */
	for (i = 0; i < len; i++) {
		n->checksum ^= p[i];
		n->checksum *= 1099511628211ull;
	}
	n->applied++;
	*result = NULL;
	return 0;
}

/* Snapshots are configured never to happen during a run; these exist so
 * that libraft has a complete FSM if one ever does. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct node *n = fsm->data;
	uint64_t *state;

	*bufs = raft_malloc(sizeof(**bufs));
	if (*bufs == NULL)
		return RAFT_NOMEM;
	state = raft_malloc(2 * sizeof(*state));
	if (state == NULL) {
		raft_free(*bufs);
		return RAFT_NOMEM;
	}
	state[0] = n->applied;
	state[1] = n->checksum;
	(*bufs)[0].base = state;
	(*bufs)[0].len = 2 * sizeof(*state);
	*n_bufs = 1;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct node *n = fsm->data;
	uint64_t state[2];

	if (buf->len != sizeof(state))
		return RAFT_MALFORMED;
	memcpy(state, buf->base, sizeof(state));
	n->applied = state[0];
	n->checksum = state[1];
	raft_free(buf->base);
	return 0;
}

/* ---- the load ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in milliseconds. */
static double percentile_ms(const uint64_t *sorted, size_t n, double q)
{
	size_t rank;

	if (n == 0)
		return 0.0;
	rank = (size_t)(q * (double)n + 0.999999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1e6;
}

static void record_latency(struct node *n, uint64_t ns)
{
	if (n->n_latencies == n->cap_latencies) {
		size_t cap = n->cap_latencies * 2;
		uint64_t *grown = realloc(n->latencies_ns, cap * sizeof(*grown));
		if (grown == NULL) {
			/* Out of memory: keep counting, stop sampling. The
			 * percentiles then cover the first cap_latencies. */
			return;
		}
		n->latencies_ns = grown;
		n->cap_latencies = cap;
	}
	n->latencies_ns[n->n_latencies++] = ns;
}

/* Write the result line to --out.tmp and rename it over --out, so that the
 * orchestrator, polling for the file, never reads a partial line. */
static int write_result(struct node *n)
{
	char tmp[4096];
	double secs = (double)(n->window_end_ns - n->window_start_ns) / 1e9;
	const uint64_t *s = n->latencies_ns;
	size_t k = n->n_latencies;
	FILE *f;

	qsort(n->latencies_ns, k, sizeof(*s), cmp_u64);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", n->opts.out) >= (int)sizeof(tmp)) {
		note(n, "--out path too long");
		return -1;
	}
	f = fopen(tmp, "w");
	if (f == NULL) {
		note(n, "open %s: %s", tmp, strerror(errno));
		return -1;
	}
	fprintf(f,
		"{\"impl\":\"libraft\",\"nodes\":%u,\"inflight\":%u,\"value_bytes\":%u,"
		"\"duration_s\":%.3f,\"committed\":%" PRIu64 ",\"ops_per_s\":%.1f,"
		"\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
		"\"id\":%u,\"term\":%llu}\n",
		n->opts.n_peers, n->opts.inflight, n->opts.value_bytes, secs, n->committed,
		secs > 0 ? (double)n->committed / secs : 0.0, percentile_ms(s, k, 0.50),
		percentile_ms(s, k, 0.95), percentile_ms(s, k, 0.99), percentile_ms(s, k, 1.0),
		n->opts.id, (unsigned long long)n->lead_term);
	if (fclose(f) != 0) {
		note(n, "write %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (rename(tmp, n->opts.out) != 0) {
		note(n, "rename %s: %s", tmp, strerror(errno));
		return -1;
	}
	note(n, "term %llu: %" PRIu64 " entries in %.3f s, %" PRIu64 " applied, losses %u",
	     (unsigned long long)n->lead_term, n->committed, secs, n->applied,
	     n->leadership_losses);
	return 0;
}

static void on_applied(struct raft_apply *req, int status, void *result);

/* Propose one B-byte entry from slot p. The payload starts with a sequence
 * number; its memory passes to libraft when raft_apply() succeeds. */
static int propose(struct node *n, struct proposal *p)
{
	struct raft_buffer buf;
	uint64_t seq = n->next_seq++;
	int rv;

	buf.len = n->opts.value_bytes;
	buf.base = raft_malloc(buf.len);
	if (buf.base == NULL)
		return RAFT_NOMEM;
	memset(buf.base, (int)(seq & 0xff), buf.len);
	memcpy(buf.base, &seq, buf.len < sizeof(seq) ? buf.len : sizeof(seq));
	p->req.data = p;
	p->term = n->lead_term;
	p->proposed_ns = mono_ns();
	rv = raft_apply(&n->raft, &p->req, &buf, 1, on_applied);
	if (rv != 0) {
		raft_free(buf.base);
		return rv;
	}
	p->busy = true;
	n->in_flight++;
	return 0;
}

/* Bring the proposals in flight back up to K. Runs from the check handle,
 * after libraft's callbacks of this loop iteration, never from inside one:
 * libraft is not documented as re-entrant from its apply callback. */
static void refill(struct node *n)
{
	while (n->in_flight < n->opts.inflight && n->n_free > 0) {
		struct proposal *p = n->free_slots[n->n_free - 1];
		int rv = propose(n, p);
		if (rv != 0) {
			note(n, "raft_apply: %s", raft_strerror(rv));
			return;
		}
		n->n_free--;
	}
}

static void lose_leadership(struct node *n, const char *why)
{
	if (n->phase == PHASE_FOLLOW || n->phase == PHASE_DONE)
		return;
	note(n, "lost leadership of term %llu (%s)%s", (unsigned long long)n->lead_term, why,
	     n->opts.failover ? "" : "; the run starts over if it leads again");
	uv_timer_stop(&n->warmup_timer);
	uv_timer_stop(&n->end_timer);
	n->leadership_losses++;
	n->phase = PHASE_FOLLOW;
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
	struct proposal *p = req->data;
	struct node *n = p->node;
	uint64_t now = mono_ns();

	(void)result;
	p->busy = false;
	n->free_slots[n->n_free++] = p;
	n->in_flight--;
	if (status != 0) {
		if (n->phase != PHASE_DONE)
			lose_leadership(n, raft_strerror(status));
		return;
	}
	if (p->term != n->lead_term)
		return;
	if (n->phase == PHASE_MEASURE) {
		n->committed++;
		record_latency(n, now - p->proposed_ns);
	} else if (n->phase == PHASE_STEADY && !n->first_commit_seen) {
		n->first_commit_seen = true;
		emit_event(n, "commit %u %llu %llu %" PRIu64, n->opts.id,
			   (unsigned long long)n->lead_term, (unsigned long long)req->index,
			   realtime_us());
	}
}

static void on_raft_closed(struct raft *raft)
{
	struct node *n = raft->data;

	raft_uv_close(&n->io);
	raft_uv_tcp_close(&n->transport.inner);
	uv_close((uv_handle_t *)&n->role_check, NULL);
	uv_close((uv_handle_t *)&n->warmup_timer, NULL);
	uv_close((uv_handle_t *)&n->end_timer, NULL);
	uv_close((uv_handle_t *)&n->life_timer, NULL);
}

static void on_end(uv_timer_t *timer)
{
	struct node *n = timer->data;

	n->window_end_ns = mono_ns();
	n->phase = PHASE_DONE;
	n->exit_status = write_result(n) == 0 ? 0 : 2;
}

static void on_warmup_done(uv_timer_t *timer)
{
	struct node *n = timer->data;

	n->phase = PHASE_MEASURE;
	n->window_start_ns = mono_ns();
	n->committed = 0;
	n->n_latencies = 0;
	uv_timer_start(&n->end_timer, on_end, n->opts.duration_ms, 0);
}

/* The barrier of the new term committed: everything before it is committed
 * and applied, so the load starts on a clean log. */
static void on_barrier(struct raft_barrier *req, int status)
{
	struct node *n = req->data;

	if (n->phase != PHASE_BARRIER)
		return;
	if (status != 0) {
		lose_leadership(n, raft_strerror(status));
		return;
	}
	note(n, "leader of term %llu; barrier committed, %u in flight for %u+%u ms",
	     (unsigned long long)n->lead_term, n->opts.inflight, n->opts.warmup_ms,
	     n->opts.duration_ms);
	n->phase = PHASE_WARMUP;
	if (n->opts.warmup_ms == 0)
		on_warmup_done(&n->warmup_timer);
	else
		uv_timer_start(&n->warmup_timer, on_warmup_done, n->opts.warmup_ms, 0);
}

static void become_leader(struct node *n)
{
	int rv;

	n->lead_term = n->raft.current_term;
	if (n->opts.failover) {
		emit_event(n, "leader %u %llu %" PRIu64, n->opts.id,
			   (unsigned long long)n->lead_term, realtime_us());
		n->first_commit_seen = false;
		n->phase = PHASE_STEADY;
		return;
	}
	n->phase = PHASE_BARRIER;
	n->barrier.data = n;
	rv = raft_barrier(&n->raft, &n->barrier, on_barrier);
	if (rv != 0)
		lose_leadership(n, raft_strerror(rv));
}

/* Runs once per loop iteration, after I/O callbacks: libraft 0.15 has no
 * role-change callback, so the node polls raft_state() here. */
static void on_check(uv_check_t *check)
{
	struct node *n = check->data;
	bool leading = raft_state(&n->raft) == RAFT_LEADER;

	if (n->phase == PHASE_DONE) {
		/* Close once nothing is in flight: libraft 0.15 crashes when
		 * closed with appends of its own still pending. */
		if (n->in_flight == 0 && !n->closing) {
			n->closing = true;
			raft_close(&n->raft, on_raft_closed);
		}
		return;
	}
	if (n->phase != PHASE_FOLLOW && (!leading || n->raft.current_term != n->lead_term))
		lose_leadership(n, "stepped down");
	if (leading && n->phase == PHASE_FOLLOW)
		become_leader(n);
	if (n->phase == PHASE_WARMUP || n->phase == PHASE_MEASURE || n->phase == PHASE_STEADY)
		refill(n);
}

static void on_life_over(uv_timer_t *timer)
{
	struct node *n = timer->data;

	note(n, "lifetime bound reached without finishing; exiting");
	exit(3);
}

/* ---- the transport: libraft's TCP one, plus TCP_NODELAY ---- */

static void set_nodelay(struct nodelay_transport *w, struct uv_stream_s *stream)
{
	if (w->nodelay && stream != NULL && stream->type == UV_TCP)
		uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

static int nodelay_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	struct nodelay_transport *w = t->impl;
	int rv = w->inner.init(&w->inner, id, address);

	if (rv != 0)
		memcpy(t->errmsg, w->inner.errmsg, sizeof(t->errmsg));
	return rv;
}

static void nodelay_accepted(struct raft_uv_transport *inner, raft_id id, const char *address,
			     struct uv_stream_s *stream)
{
	struct nodelay_transport *w = inner->data;

	set_nodelay(w, stream);
	w->accept_cb(&w->outer, id, address, stream);
}

static int nodelay_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	struct nodelay_transport *w = t->impl;
	int rv;

	w->accept_cb = cb;
	rv = w->inner.listen(&w->inner, nodelay_accepted);
	if (rv != 0)
		memcpy(t->errmsg, w->inner.errmsg, sizeof(t->errmsg));
	return rv;
}

static void nodelay_connected(struct raft_uv_connect *inner_req, struct uv_stream_s *stream,
			      int status)
{
	struct nodelay_connect *c = inner_req->data;
	struct raft_uv_connect *outer_req = c->outer_req;

	if (status == 0)
		set_nodelay(c->transport, stream);
	free(c);
	outer_req->cb(outer_req, stream, status);
}

static int nodelay_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
			   const char *address, raft_uv_connect_cb cb)
{
	struct nodelay_transport *w = t->impl;
	struct nodelay_connect *c = malloc(sizeof(*c));
	int rv;

	if (c == NULL)
		return RAFT_NOMEM;
	c->inner_req.data = c;
	c->outer_req = req;
	c->transport = w;
	req->cb = cb;
	rv = w->inner.connect(&w->inner, &c->inner_req, id, address, nodelay_connected);
	if (rv != 0) {
		memcpy(t->errmsg, w->inner.errmsg, sizeof(t->errmsg));
		free(c);
	}
	return rv;
}

static void nodelay_inner_closed(struct raft_uv_transport *inner)
{
	struct nodelay_transport *w = inner->data;

	if (w->close_cb != NULL)
		w->close_cb(&w->outer);
}

static void nodelay_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct nodelay_transport *w = t->impl;

	w->close_cb = cb;
	w->inner.close(&w->inner, nodelay_inner_closed);
}

/* Set up libraft's TCP transport inside a wrapper that turns Nagle's
 * algorithm off on each of its connections when nodelay is true. Spectra's
 * peer transport sets TCP_NODELAY; without it here the comparison would
 * partly measure Nagle and delayed ACKs instead of the two Rafts. With
 * nodelay false the wrapper changes nothing. Returns 0 or a RAFT_* code. */
static int nodelay_transport_init(struct nodelay_transport *w, uv_loop_t *loop, bool nodelay)
{
	int rv;

	memset(w, 0, sizeof(*w));
	rv = raft_uv_tcp_init(&w->inner, loop);
	if (rv != 0)
		return rv;
	w->inner.data = w;
	w->nodelay = nodelay;
	w->outer.impl = w;
	w->outer.init = nodelay_init;
	w->outer.listen = nodelay_listen;
	w->outer.connect = nodelay_connect;
	w->outer.close = nodelay_close;
	return 0;
}

/* ---- setup ---- */

static int bootstrap(struct node *n)
{
	struct raft_configuration conf;
	unsigned i;
	int rv = 0;

	raft_configuration_init(&conf);
	for (i = 0; i < n->opts.n_peers && rv == 0; i++)
		rv = raft_configuration_add(&conf, n->opts.peers[i].id, n->opts.peers[i].address,
					    RAFT_VOTER);
	if (rv == 0) {
		rv = raft_bootstrap(&n->raft, &conf);
		/* A used directory restarts from what it holds. */
		if (rv == RAFT_CANTBOOTSTRAP) {
			note(n, "%s is not empty: restarting from disk", n->opts.dir);
			rv = 0;
		}
	}
	if (rv != 0)
		note(n, "bootstrap: %s (%s)", raft_strerror(rv), raft_errmsg(&n->raft));
	raft_configuration_close(&conf);
	return rv;
}

static int node_init(struct node *n)
{
	unsigned i;
	int rv;

	for (i = 0; i < n->opts.n_peers; i++)
		if (n->opts.peers[i].id == n->opts.id)
			n->address = n->opts.peers[i].address;
	n->events_fd = -1;
	n->phase = PHASE_FOLLOW;

	n->proposals = calloc(n->opts.inflight, sizeof(*n->proposals));
	n->free_slots = calloc(n->opts.inflight, sizeof(*n->free_slots));
	n->cap_latencies = LATENCY_INITIAL;
	n->latencies_ns = malloc(n->cap_latencies * sizeof(*n->latencies_ns));
	if (n->proposals == NULL || n->free_slots == NULL || n->latencies_ns == NULL) {
		note(n, "out of memory");
		return -1;
	}
	for (i = 0; i < n->opts.inflight; i++) {
		n->proposals[i].node = n;
		n->free_slots[n->n_free++] = &n->proposals[i];
	}

	if (mkdir(n->opts.dir, 0755) != 0 && errno != EEXIST) {
		note(n, "mkdir %s: %s", n->opts.dir, strerror(errno));
		return -1;
	}
	if (n->opts.failover) {
		n->events_fd = open(n->opts.out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (n->events_fd < 0) {
			note(n, "open %s: %s", n->opts.out, strerror(errno));
			return -1;
		}
	}

	rv = uv_loop_init(&n->loop);
	if (rv != 0) {
		note(n, "uv_loop_init: %s", uv_strerror(rv));
		return -1;
	}
	rv = nodelay_transport_init(&n->transport, &n->loop, getenv("LIBRAFT_NODE_NAGLE") == NULL);
	if (rv != 0) {
		note(n, "raft_uv_tcp_init: %s", raft_strerror(rv));
		return -1;
	}
	rv = raft_uv_init(&n->io, &n->loop, n->opts.dir, &n->transport.outer);
	if (rv != 0) {
		note(n, "raft_uv_init: %s (%s)", raft_strerror(rv), n->io.errmsg);
		return -1;
	}
	n->fsm.version = 1;
	n->fsm.data = n;
	n->fsm.apply = fsm_apply;
	n->fsm.snapshot = fsm_snapshot;
	n->fsm.restore = fsm_restore;
	rv = raft_init(&n->raft, &n->io, &n->fsm, n->opts.id, n->address);
	if (rv != 0) {
		note(n, "raft_init: %s (%s)", raft_strerror(rv), raft_errmsg(&n->raft));
		return -1;
	}
	n->raft.data = n;
	raft_set_election_timeout(&n->raft, n->opts.election_ms);
	raft_set_heartbeat_timeout(&n->raft, n->opts.heartbeat_ms);
	raft_set_snapshot_threshold(&n->raft, SNAPSHOT_THRESHOLD);
	if (bootstrap(n) != 0)
		return -1;
	rv = raft_start(&n->raft);
	if (rv != 0) {
		note(n, "raft_start: %s (%s)", raft_strerror(rv), raft_errmsg(&n->raft));
		return -1;
	}

	uv_check_init(&n->loop, &n->role_check);
	n->role_check.data = n;
	uv_check_start(&n->role_check, on_check);
	uv_timer_init(&n->loop, &n->warmup_timer);
	n->warmup_timer.data = n;
	uv_timer_init(&n->loop, &n->end_timer);
	n->end_timer.data = n;
	uv_timer_init(&n->loop, &n->life_timer);
	n->life_timer.data = n;
	uv_timer_start(&n->life_timer, on_life_over,
		       n->opts.failover
			   ? n->opts.duration_ms
			   : (uint64_t)n->opts.warmup_ms + n->opts.duration_ms + LOAD_GRACE_MS,
		       0);
	return 0;
}

int main(int argc, char **argv)
{
	struct node *n;
	int rv;

	n = calloc(1, sizeof(*n));
	if (n == NULL)
		return 2;
	if (parse_args(argc, argv, &n->opts) != 0) {
		usage(stderr);
		free(n);
		return 1;
	}
	/* A peer that dies mid-write must be an error on the socket, not a
	 * SIGPIPE that takes this node down with it; libuv leaves that to us. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stderr, NULL, _IOLBF, 0);

	if (node_init(n) != 0)
		return 2;
	note(n, "%s node %u of %u at %s, dir %s", n->opts.failover ? "failover" : "load",
	     n->opts.id, n->opts.n_peers, n->address, n->opts.dir);
	uv_run(&n->loop, UV_RUN_DEFAULT);

	rv = uv_loop_close(&n->loop);
	if (rv != 0)
		note(n, "uv_loop_close: %s", uv_strerror(rv));
	if (n->events_fd >= 0)
		close(n->events_fd);
	rv = n->exit_status;
	free(n->latencies_ns);
	free(n->free_slots);
	free(n->proposals);
	free(n);
	return rv;
}
