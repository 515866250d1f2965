/*
 * cli_chaos: `spectra chaos`. See cli_chaos.h.
 *
 * The run, in order: make a cluster directory and free ports, start every
 * node with admin commands and short Raft timings, wait for a leader;
 * run the workload and the nemesis for --duration seconds; stop both,
 * heal everything and wait for a leader again; read every key once more
 * through the leader; stop the cluster; write the history; check it; and
 * report. An eventual workload creates its keyspace once there is a
 * leader, and after healing waits for the nodes' digests to converge and
 * reads every key at ALL from every node instead (finish_eventual). The
 * directory is removed only after a clean run in a directory this command
 * made itself.
 */
#include "cli_chaos.h"

#include "chaos_causal.h"
#include "chaos_client.h"
#include "chaos_eventual.h"
#include "chaos_nemesis.h"
#include "chaos_plan.h"
#include "cli.h"
#include "local_cluster.h"
#include "local_node.h"

#include "check/history.h"
#include "check/linearizable.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define START_WAIT_S	 15.0  /* a node to answer PING after launch */
#define LEADER_WAIT_S	 30.0  /* the cluster to agree on a leader */
#define FINAL_READ_TRIES 10    /* per key, through the leader */
#define EXPLAIN_MAX	 16    /* ops shown for a violation */
#define PORT_LOW	 20000 /* free ports are looked for in [PORT_LOW, PORT_HIGH), */
#define PORT_HIGH	 60000 /* below the kernel's ephemeral range (ephemeral_low) */
#define CONVERGE_POLL_MS 100   /* EVENTUAL DIGEST polls, eventual workloads */
/* How long converged digests must stay the same: longer than spectrad's
 * longest peer redial backoff (1 s), so that what a node's peers queued
 * for it while it was down has reached it. */
#define CONVERGE_SETTLE_MS 1500
#define EV_FINAL_TRIES	   20 /* per key and node, reads at ALL */
#define EV_SHOWN	   10 /* violations shown */
#define EV_SET_SHOWN	   20 /* members of a set shown when nodes disagree */

/*
 * Flags every node gets before the caller's (which win, being later):
 * admin commands for DEBUG NET, and Raft timings short enough that a
 * kill or partition costs a second, not several, yet long enough that
 * five nodes sharing two cores do not call elections for nothing. A
 * request waits less for a leader than a client waits for its reply, so
 * a leaderless cluster answers -TRYAGAIN (a definite failure) rather
 * than leaving the client to time out (an unknown outcome).
 */
static const char *const node_defaults[] = {
    "--admin-commands", "yes", "--election-timeout-ms", "500",
    "--heartbeat-ms",	"50",  "--request-timeout-ms",	"1000",
};
#define NODE_DEFAULTS (int)(sizeof(node_defaults) / sizeof(node_defaults[0]))

/* Flags local_cluster sets for each node; passing them after "--" would
 * point a node at the wrong files or ports. */
static const char *const owned_flags[] = {"dir",     "port",	"bind",		"pidfile",
					  "logfile", "node-id", "cluster-file", "peer-port"};

/* --workload register: the strong keyspace's linearizability workload. */
#define WORKLOAD_REGISTER 0
/* --workload causal: sessions hopping between nodes (chaos_causal). */
#define WORKLOAD_CAUSAL 100
#define CZ_SETTLE_MS	1000 /* how long equal applied vectors must stay so */

struct chaos_opts {
	long nodes, duration_s, clients, keys, interval_ms, op_timeout_ms, min_ops;
	int reads;    /* CHAOS_READS_* */
	int workload; /* WORKLOAD_REGISTER, WORKLOAD_CAUSAL or an enum chaos_ev_kind */
	enum chaos_ev_level write_level; /* eventual workloads */
	double check_timeout_s;
	double converge_timeout_s; /* eventual workloads */
	unsigned faults;
	uint64_t seed;
	long base_port, peer_base_port; /* 0: pick free ones */
	const char *dir;		/* NULL: a temporary one */
	const char *history;		/* NULL: <dir>/history.jsonl */
	bool keep, self_test_bad;
	char **extra;
	int nextra;
};

/* Set by SIGINT or SIGTERM: end the run early, still checking it. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* ---- flags ----------------------------------------------------------- */

static bool parse_long(const char *text, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* ---- ports and directories ------------------------------------------- */

static bool port_free(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* ephemeral_low: the first port the kernel hands out as the local end of
 * outgoing connections (net.ipv4.ip_local_port_range; 32768 if unknown). */
static long ephemeral_low(void)
{
	long low = 32768, high;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &low, &high) != 2)
			low = 32768;
		fclose(f);
	}
	return low;
}

/* pick_ports finds 2n consecutive ports that can be bound now: the
 * clients' first, then the peers'. They lie below the ephemeral range: a
 * killed node's port in it could be taken, while the node is down, as the
 * local end of one of the many connections a run makes, and its restart
 * would fail (a CI run failed so). Another process may still take one
 * before the nodes bind it; the nodes' start then fails and says so. */
static bool pick_ports(long n, long *base, long *peer_base)
{
	uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ sp_mono_ns(sp_clock_system());
	long high = ephemeral_low();
	if (high > PORT_HIGH)
		high = PORT_HIGH;
	if (high - PORT_LOW < 4 * n)
		high = PORT_HIGH; /* an odd range: fall back, restarts may then fail */
	for (int attempt = 0; attempt < 500; attempt++) {
		long start =
		    PORT_LOW + (long)chaos_rand_below(&rng, (uint64_t)(high - PORT_LOW - 2 * n));
		long p;
		for (p = start; p < start + 2 * n && port_free((int)p); p++)
			;
		if (p == start + 2 * n) {
			*base = start;
			*peer_base = start + n;
			return true;
		}
	}
	return false;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void remove_tree(const char *dir)
{
	(void)nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the check --------------------------------------------------------- */

struct deadline {
	uint64_t at_ns; /* 0: none */
};

static bool should_stop(void *ctx)
{
	const struct deadline *d = ctx;
	return interrupted || (d->at_ns != 0 && sp_mono_ns(sp_clock_system()) >= d->at_ns);
}

static int write_history(const struct history *h, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	struct sp_buf line;
	sp_buf_init(&line);
	for (size_t i = 0; i < h->n; i++) {
		sp_buf_clear(&line);
		history_format_op(&h->ops[i], &line);
		fwrite(sp_buf_begin(&line), 1, line.len, f);
	}
	sp_buf_free(&line);
	int rc = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* corrupt_one_read copies h into *out with one ok read's value replaced
 * by a value nobody wrote (the checker's self-test). Returns the index
 * of that op, or SIZE_MAX when h has no ok read. */
static size_t corrupt_one_read(const struct history *h, uint64_t *rng, struct history *out)
{
	size_t reads = 0;
	for (size_t i = 0; i < h->n; i++)
		reads += h->ops[i].kind == LIN_READ && h->ops[i].outcome == LIN_OK;
	if (reads == 0)
		return SIZE_MAX;
	size_t pick = (size_t)chaos_rand_below(rng, reads), victim = SIZE_MAX;
	static const char never[] = "never-written-by-chaos";
	for (size_t i = 0; i < h->n; i++) {
		struct lin_op op = h->ops[i];
		if (op.kind == LIN_READ && op.outcome == LIN_OK && pick-- == 0) {
			victim = i;
			op.result = (struct lin_value){.p = (const uint8_t *)never,
						       .len = sizeof(never) - 1};
		}
		int rc = history_add(out, &op);
		(void)rc; /* h accepted it already */
	}
	return victim;
}

static void print_explanation(const struct history *h, const struct lin_result *res)
{
	size_t idx[EXPLAIN_MAX];
	size_t total = lin_explain(h->ops, h->n, res, idx, EXPLAIN_MAX);
	size_t shown = total < EXPLAIN_MAX ? total : EXPLAIN_MAX;
	struct sp_buf line;
	sp_buf_init(&line);
	printf("  the op that cannot be placed, and the ops that explain it (times in us):\n");
	for (size_t i = 0; i < shown; i++) {
		sp_buf_clear(&line);
		history_format_op(&h->ops[idx[i]], &line);
		printf("  %s %.*s", idx[i] == res->bad_op ? "=>" : "  ", (int)line.len,
		       sp_buf_begin(&line));
	}
	if (total > shown)
		printf("  ... and %zu more\n", total - shown);
	sp_buf_free(&line);
}

/* ---- the report ---------------------------------------------------------- */

static void print_kind(const char *name, const struct chaos_stats *s, enum lin_kind k)
{
	printf("  %-6s %8" PRIu64 " invoked %8" PRIu64 " ok %8" PRIu64 " fail %8" PRIu64 " info\n",
	       name, s->invoked[k], s->outcome[k][LIN_OK], s->outcome[k][LIN_FAIL],
	       s->outcome[k][LIN_UNKNOWN]);
}

static void print_stats(const struct chaos_stats *s, double seconds, bool cas)
{
	uint64_t ok = chaos_stats_total(s, LIN_OK);
	printf("ops:       %" PRIu64 " invoked, %" PRIu64 " ok, %" PRIu64 " fail, %" PRIu64
	       " info (%.0f ok/s)\n",
	       chaos_stats_total(s, 0), ok, chaos_stats_total(s, LIN_FAIL),
	       chaos_stats_total(s, LIN_UNKNOWN), seconds > 0 ? (double)ok / seconds : 0.0);
	print_kind("read", s, LIN_READ);
	print_kind("write", s, LIN_WRITE);
	if (cas)
		print_kind("cas", s, LIN_CAS);
	printf("errors:   ");
	for (int i = 0; i < CHAOS_ERROR_WORDS && s->errors[i].word[0]; i++)
		printf(" -%s %" PRIu64 ",", s->errors[i].word, s->errors[i].count);
	if (s->errors_other)
		printf(" other %" PRIu64 ",", s->errors_other);
	printf(" no reply %" PRIu64 ", unexpected replies %" PRIu64 ", failed connects %" PRIu64
	       "\n",
	       s->no_reply, s->surprises, s->connect_failures);
}

static void print_nemesis(const struct chaos_nemesis *nm)
{
	printf("nemesis:   kill %" PRIu64 ", pause %" PRIu64 ", partition %" PRIu64
	       " (halves %" PRIu64 ", isolate %" PRIu64 ", bridge %" PRIu64 ")",
	       nm->injected[CHAOS_FAULT_KILL], nm->injected[CHAOS_FAULT_PAUSE],
	       nm->injected[CHAOS_FAULT_PARTITION], nm->splits[CHAOS_SPLIT_HALVES],
	       nm->splits[CHAOS_SPLIT_ISOLATE], nm->splits[CHAOS_SPLIT_BRIDGE]);
	if (nm->restart_failures || nm->command_failures)
		printf("; %" PRIu64 " failed restarts, %" PRIu64 " failed DEBUG NET",
		       nm->restart_failures, nm->command_failures);
	printf("\n");
}

/*
 * check_and_report checks the history h (written to history_path), prints
 * the summary and returns the exit code. liveness names a way the cluster
 * failed to recover (a node that did not restart, no leader after
 * healing), or is NULL.
 */
static int check_and_report(const struct chaos_opts *o, const struct history *h,
			    const char *history_path, const struct chaos_stats *stats,
			    const struct chaos_nemesis *nm, double run_s, const char *liveness)
{
	struct deadline d = {0};
	uint64_t c0 = sp_mono_ns(sp_clock_system());
	if (o->check_timeout_s > 0)
		d.at_ns = c0 + (uint64_t)(o->check_timeout_s * 1e9);
	struct lin_options lopts = {.should_stop = should_stop, .stop_ctx = &d};
	struct lin_result res;
	int rc = lin_check_ex(h->ops, h->n, &lopts, &res);
	double check_s = (double)(sp_mono_ns(sp_clock_system()) - c0) / 1e9;

	printf("\n---- spectra chaos: summary (seed %" PRIu64 ") ----\n", o->seed);
	printf("duration:  %.1f s of workload, %.2f s to check\n", run_s, check_s);
	print_stats(stats, run_s, true);
	print_nemesis(nm);
	printf("history:   %s (%zu ops)\n", history_path, h->n);
	uint64_t ok = chaos_stats_total(stats, LIN_OK);
	if (rc != 0) {
		printf("verdict:   unknown: the checker refused op %zu: %s\n", res.bad_op,
		       sp_strerror(rc));
		return CLI_CHAOS_UNKNOWN;
	}
	if (res.verdict == LIN_VIOLATION) {
		printf("verdict:   VIOLATION: key %.*s is not linearizable (%zu of %zu keys)\n",
		       (int)res.klen, (const char *)res.key, res.keys_violated, res.keys);
		print_explanation(h, &res);
		printf("  replay:  spectra check %s\n", history_path);
		return CLI_CHAOS_VIOLATION;
	}
	if (res.verdict == LIN_GAVE_UP) {
		printf("verdict:   unknown: the check gave up after %.1f s on key %.*s (%zu of %zu "
		       "keys undecided)\n",
		       check_s, (int)res.klen, res.key ? (const char *)res.key : "",
		       res.keys_gave_up, res.keys);
		return CLI_CHAOS_UNKNOWN;
	}
	if (liveness) {
		printf("verdict:   linearizable, but %s (see nemesis.log)\n", liveness);
		return CLI_CHAOS_VIOLATION;
	}
	if (o->self_test_bad) {
		printf(
		    "verdict:   linearizable, yet one read was corrupted: the checker missed it\n");
		return CLI_CHAOS_OK;
	}
	if (interrupted) {
		printf("verdict:   linearizable as far as it went, but the run was interrupted\n");
		return CLI_CHAOS_UNKNOWN;
	}
	if (ok < (uint64_t)o->min_ops) {
		printf("verdict:   linearizable, but only %" PRIu64
		       " ops succeeded (--min-ops %ld)\n",
		       ok, o->min_ops);
		return CLI_CHAOS_UNKNOWN;
	}
	printf("verdict:   linearizable (%zu keys, %" PRIu64 " search steps)\n", res.keys,
	       res.steps);
	return CLI_CHAOS_OK;
}

/* ---- the run ------------------------------------------------------------- */

static void faults_text(unsigned faults, char *out, size_t outlen)
{
	size_t len = 0;
	out[0] = '\0';
	for (int f = 0; f < CHAOS_FAULT_COUNT; f++)
		if (faults & (1u << f))
			len += (size_t)snprintf(out + len, outlen - len, "%s%s", len ? "," : "",
						chaos_fault_name((enum chaos_fault)f));
	if (!faults)
		snprintf(out, outlen, "none");
}

/* stop_cluster stops every node (SIGTERM, then SIGKILL). */
static void stop_cluster(struct local_cluster *lc)
{
	for (size_t i = 0; i < lc->cf.n; i++) {
		uint64_t id = lc->cf.nodes[i].id;
		pid_t pid = local_cluster_pid(lc, id);
		if (pid > 0)
			kill(pid, SIGCONT); /* a paused node cannot act on SIGTERM */
		int rc = local_cluster_stop_node(lc, id, false);
		if (rc != 0)
			cli_error("cannot stop node %llu: %s", (unsigned long long)id,
				  sp_strerror(rc));
	}
}

/* ---- eventual workloads ---------------------------------------------------- */

/* The INFO eventual counters summed over the nodes for the summary. */
static const char *const ev_info_fields[] = {
    "ev_hints_queued",	   "ev_hints_delivered", "ev_hints_dropped",
    "ev_read_repairs",	   "ev_ae_rounds",	 "ev_ae_ranges_differ",
    "ev_ae_keys_repaired", "ev_unknown",	 "ev_unavailable",
};
#define EV_INFO_FIELDS (sizeof(ev_info_fields) / sizeof(ev_info_fields[0]))

/* write_finals writes what every node read for every key (states[node *
 * keys + key]) to path, one line per node and key. */
static int write_finals(enum chaos_ev_kind kind, const struct chaos_ev_state *states, size_t nnodes,
			size_t keys, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	char key[32];
	for (size_t k = 0; k < keys; k++)
		for (size_t i = 0; i < nnodes; i++) {
			chaos_ev_key_name(k, key, sizeof(key));
			fprintf(f, "node %zu %s ", i + 1, key);
			chaos_ev_state_print(kind, &states[i * keys + k], SIZE_MAX, f);
		}
	int rc = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* agree sets pick[k] to the index in states of the first successful
 * read of key k (node * keys + k), counts into *unread the reads that
 * failed, and returns how many keys some node read differently, showing
 * the first such pair of answers. */
static size_t agree(enum chaos_ev_kind kind, const struct chaos_ev_state *states, size_t nnodes,
		    size_t keys, size_t *pick, size_t *unread)
{
	size_t disagree = 0;
	char key[32];
	*unread = 0;
	for (size_t k = 0; k < keys; k++) {
		pick[k] = k;
		bool differ = false;
		for (size_t i = 0; i < nnodes; i++) {
			const struct chaos_ev_state *s = &states[i * keys + k];
			if (!s->read) {
				(*unread)++;
				continue;
			}
			if (!states[pick[k]].read)
				pick[k] = i * keys + k;
			if (chaos_ev_state_equal(kind, &states[pick[k]], s))
				continue;
			if (!differ && disagree == 0) {
				chaos_ev_key_name(k, key, sizeof(key));
				printf("  disagreement: %s at ALL through node %zu: ", key,
				       pick[k] / keys + 1);
				chaos_ev_state_print(kind, &states[pick[k]], EV_SET_SHOWN, stdout);
				printf("  disagreement: %s at ALL through node %zu: ", key, i + 1);
				chaos_ev_state_print(kind, s, EV_SET_SHOWN, stdout);
			}
			differ = true;
		}
		disagree += differ;
	}
	return disagree;
}

/*
 * finish_eventual ends an eventual run once its workload is stopped and
 * every fault healed (at healed_ns): waits for the nodes to converge,
 * reads every key at ALL from every node, stops the cluster, writes the
 * history and the final states, checks them and reports. Returns the
 * exit code.
 */
static int finish_eventual(const struct chaos_opts *o, struct local_cluster *lc,
			   const struct local_node_addr *addrs, struct chaos_nemesis *nm,
			   struct chaos_ev_workload *wl, uint64_t healed_ns, double run_s,
			   const char *liveness, const char *history_path)
{
	enum chaos_ev_kind kind = (enum chaos_ev_kind)o->workload;
	size_t nnodes = lc->cf.n, keys = (size_t)o->keys;
	struct chaos_ev_history h = {0};
	struct chaos_stats stats = {0};
	char stale_msg[256], why[512], path[4096], what[256];
	chaos_ev_workload_collect(wl, &h, &stats);
	uint64_t stale = chaos_ev_workload_stale(wl, stale_msg, sizeof(stale_msg));

	struct chaos_ev_convergence cv;
	unsigned timeout_ms = (unsigned)(o->converge_timeout_s * 1000);
	int crc = chaos_ev_wait_converged(addrs, nnodes, healed_ns, timeout_ms, CONVERGE_POLL_MS,
					  CONVERGE_SETTLE_MS, &cv, why, sizeof(why));
	if (crc == 0)
		chaos_nemesis_logf(nm, "converged in %" PRIu64 " ms after the last heal",
				   cv.elapsed_ms);
	else
		chaos_nemesis_logf(nm, "not converged %.1f s after the last heal: %s",
				   o->converge_timeout_s, why);
	uint64_t info[EV_INFO_FIELDS] = {0};
	size_t info_nodes = chaos_ev_info_sum(addrs, nnodes, (unsigned)o->op_timeout_ms,
					      ev_info_fields, EV_INFO_FIELDS, info);

	struct chaos_ev_state *states = sp_calloc(nnodes * keys, sizeof(*states));
	size_t *pick = sp_calloc(keys, sizeof(*pick));
	size_t read = chaos_ev_final_reads(kind, addrs, nnodes, keys, (unsigned)o->op_timeout_ms,
					   EV_FINAL_TRIES, states);
	chaos_nemesis_logf(nm, "final reads at ALL: %zu of %zu (every key from every node)", read,
			   nnodes * keys);
	stop_cluster(lc);

	int rc = chaos_ev_history_write(&h, kind, history_path);
	if (rc != 0)
		cli_error("cannot write %s: %s", history_path, sp_strerror(rc));
	const char *slash = strrchr(history_path, '/');
	snprintf(path, sizeof(path), "%.*sfinal.txt", slash ? (int)(slash - history_path + 1) : 0,
		 history_path);
	rc = write_finals(kind, states, nnodes, keys, path);
	if (rc != 0)
		cli_error("cannot write %s: %s", path, sp_strerror(rc));

	printf("\n---- spectra chaos: summary (seed %" PRIu64 ") ----\n", o->seed);
	printf("workload:  %s, %ld clients, %ld keys (" CHAOS_EV_KEYSPACE ":0..), rf %d, writes at "
	       "%s, reads at quorum\n",
	       chaos_ev_kind_name(kind), o->clients, o->keys, CHAOS_EV_RF,
	       chaos_ev_level_name(o->write_level));
	printf("duration:  %.1f s of workload\n", run_s);
	print_stats(&stats, run_s, false);
	print_nemesis(nm);
	if (info_nodes)
		printf("eventual:  hints queued %" PRIu64 ", delivered %" PRIu64
		       ", dropped %" PRIu64 "; read repairs %" PRIu64
		       "; anti-entropy rounds %" PRIu64 ", ranges differing %" PRIu64
		       ", keys repaired %" PRIu64 "; unknown %" PRIu64 ", unavailable %" PRIu64
		       " (summed over %zu nodes)\n",
		       info[0], info[1], info[2], info[3], info[4], info[5], info[6], info[7],
		       info[8], info_nodes);
	if (crc == 0)
		printf("converged in %" PRIu64 " ms after the last heal (digests then unchanged "
		       "for %d ms; %" PRIu64 " polls)\n",
		       cv.elapsed_ms, CONVERGE_SETTLE_MS, cv.polls);
	else
		printf("NOT converged within %.1f s after the last heal: %s\n",
		       o->converge_timeout_s, why);
	if (cv.unsettled)
		printf("  note:    the digests first agreed %" PRIu64 " ms after the heal, then "
		       "changed %" PRIu64 " time(s): data arrived after the nodes had agreed\n",
		       cv.first_ms, cv.unsettled);

	size_t unread;
	size_t disagree = agree(kind, states, nnodes, keys, pick, &unread);
	printf("final:     %zu keys read at ALL from each of %zu nodes: %zu reads failed, %zu keys "
	       "with answers that differ\n",
	       keys, nnodes, unread, disagree);
	/* finals: shallow copies of the agreed states, which states owns. */
	struct chaos_ev_state *finals = sp_calloc(keys, sizeof(*finals));
	bool all_read = true;
	for (size_t k = 0; k < keys; k++) {
		finals[k] = states[pick[k]];
		all_read = all_read && finals[k].read;
	}
	struct chaos_ev_verdict v = {0};
	if (all_read && o->self_test_bad) {
		size_t victim = chaos_ev_corrupt(kind, &h, finals, keys, what, sizeof(what));
		for (size_t k = 0; k < keys; k++)
			states[pick[k]] =
			    finals[k]; /* what corrupt freed or made, back to states */
		if (victim == SIZE_MAX)
			cli_error("--self-test-bad: found nothing to corrupt");
		else
			printf("self-test: %s\n", what);
	}
	if (all_read) {
		chaos_ev_check(kind, &h, finals, keys, EV_SHOWN, &v, stdout);
		switch (kind) {
		case CHAOS_EV_SET:
			printf("check:     %" PRIu64 " acknowledged adds, %" PRIu64
			       " lost; %" PRIu64 " unknown adds, %" PRIu64 " present; %" PRIu64
			       " elements never added, %" PRIu64 " of failed adds\n",
			       v.acked, v.lost, v.unknown, v.unknown_present, v.phantom,
			       v.failed_present);
			break;
		case CHAOS_EV_COUNTER:
		case CHAOS_EV_LWW:
			printf("check:     %" PRIu64 " acknowledged writes, %" PRIu64
			       " unknown; %" PRIu64 " of %zu keys wrong\n",
			       v.acked, v.unknown, v.bad_keys, keys);
			break;
		}
	}
	uint64_t reads = stats.outcome[LIN_READ][LIN_OK];
	if (o->write_level != CHAOS_EV_ONE)
		printf("own reads: %" PRIu64 " of %" PRIu64
		       " ok QUORUM reads missed their client's own acknowledged writes\n",
		       stale, reads);
	if (stale)
		printf("  violation: %s\n", stale_msg);
	printf("history:   %s (%zu ops), final states in %s\n", history_path, h.n, path);

	int code;
	uint64_t ok = chaos_stats_total(&stats, LIN_OK);
	if (crc != 0) {
		printf("verdict:   VIOLATION: the nodes did not converge within %.1f s of the last "
		       "heal\n",
		       o->converge_timeout_s);
		code = CLI_CHAOS_VIOLATION;
	} else if (!all_read || unread) {
		printf("verdict:   VIOLATION: %zu final reads at ALL failed after the cluster "
		       "converged\n",
		       unread);
		code = CLI_CHAOS_VIOLATION;
	} else if (disagree) {
		printf(
		    "verdict:   VIOLATION: the nodes give different answers at ALL for %zu keys\n",
		    disagree);
		code = CLI_CHAOS_VIOLATION;
	} else if (v.violations || stale) {
		printf("verdict:   VIOLATION: %" PRIu64 " violation(s) of the %s check%s\n",
		       v.violations, chaos_ev_kind_name(kind),
		       stale ? ", and reads that missed their own writes" : "");
		code = CLI_CHAOS_VIOLATION;
	} else if (liveness) {
		printf("verdict:   consistent, but %s (see nemesis.log)\n", liveness);
		code = CLI_CHAOS_VIOLATION;
	} else if (o->self_test_bad) {
		printf("verdict:   consistent, yet the final state was corrupted: the check missed "
		       "it\n");
		code = CLI_CHAOS_OK;
	} else if (interrupted) {
		printf("verdict:   consistent as far as it went, but the run was interrupted\n");
		code = CLI_CHAOS_UNKNOWN;
	} else if (ok < (uint64_t)o->min_ops) {
		printf("verdict:   consistent, but only %" PRIu64
		       " ops succeeded (--min-ops %ld)\n",
		       ok, o->min_ops);
		code = CLI_CHAOS_UNKNOWN;
	} else {
		printf("verdict:   consistent: converged, the nodes agree, and the %s check "
		       "passed\n",
		       chaos_ev_kind_name(kind));
		code = CLI_CHAOS_OK;
	}

	for (size_t i = 0; i < nnodes * keys; i++)
		chaos_ev_state_free(&states[i]);
	free(states);
	free(finals);
	free(pick);
	chaos_ev_history_free(&h);
	return code;
}

/* ---- the causal workload ------------------------------------------------ */

/*
 * finish_causal ends a causal run once its workload is stopped and every
 * fault healed (at healed_ns): waits for the applied vectors to converge,
 * compares every key read at LEVEL local on every node, stops the
 * cluster, writes the history, has `spectra check --model causal` judge
 * it and reports. Returns the exit code.
 */
static int finish_causal(const struct chaos_opts *o, struct local_cluster *lc,
			 const struct local_node_addr *addrs, struct chaos_nemesis *nm,
			 struct chaos_cz_workload *wl, uint64_t healed_ns, double run_s,
			 const char *liveness, const char *history_path)
{
	size_t nnodes = lc->cf.n;
	struct chaos_cz_history h = {0};
	struct chaos_stats stats = {0};
	uint64_t hops = 0, converged_ms = 0;
	char why[512], what[256], out_path[4096];
	chaos_cz_workload_collect(wl, &h, &stats, &hops);

	int crc = chaos_cz_wait_converged(
	    addrs, nnodes, healed_ns, (unsigned)(o->converge_timeout_s * 1000), CONVERGE_POLL_MS,
	    CZ_SETTLE_MS, &converged_ms, why, sizeof(why));
	if (crc == 0)
		chaos_nemesis_logf(nm, "converged in %" PRIu64 " ms after the last heal",
				   converged_ms);
	else
		chaos_nemesis_logf(nm, "not converged %.1f s after the last heal: %s",
				   o->converge_timeout_s, why);
	size_t failed = 0;
	size_t disagree = chaos_cz_final_agree(addrs, nnodes, (size_t)o->keys,
					       (unsigned)o->op_timeout_ms, EV_FINAL_TRIES, &failed);
	stop_cluster(lc);

	printf("\n---- spectra chaos: summary (seed %" PRIu64 ") ----\n", o->seed);
	printf("workload:  causal, %ld sessions hopping between nodes (%" PRIu64
	       " hops), %ld keys (" CHAOS_CZ_KEYSPACE ":0..)\n",
	       o->clients, hops, o->keys);
	printf("duration:  %.1f s of workload\n", run_s);
	print_stats(&stats, run_s, false);
	print_nemesis(nm);
	if (crc == 0)
		printf("converged in %" PRIu64 " ms after the last heal (applied vectors then "
		       "equal for %d ms)\n",
		       converged_ms, CZ_SETTLE_MS);
	else
		printf("NOT converged within %.1f s after the last heal: %s\n",
		       o->converge_timeout_s, why);
	printf("final:     %ld keys read at LEVEL local from each of %zu nodes: %zu reads failed, "
	       "%zu keys with answers that differ\n",
	       o->keys, nnodes, failed, disagree);

	if (o->self_test_bad) {
		if (chaos_cz_corrupt(&h, what, sizeof(what)) == SIZE_MAX)
			cli_error("--self-test-bad: found no read after its session's own write");
		else
			printf("self-test: %s\n", what);
	}
	int rc = chaos_cz_history_write(&h, history_path);
	if (rc != 0)
		cli_error("cannot write %s: %s", history_path, sp_strerror(rc));
	const char *slash = strrchr(history_path, '/');
	snprintf(out_path, sizeof(out_path), "%.*scheck.out",
		 slash ? (int)(slash - history_path + 1) : 0, history_path);
	enum chaos_cz_check check =
	    rc == 0 ? chaos_cz_run_checker(history_path, out_path) : CHAOS_CZ_CHECK_ERROR;
	printf("history:   %s (%zu ops), checker output in %s\n", history_path, h.n, out_path);

	int code;
	uint64_t ok = chaos_stats_total(&stats, LIN_OK);
	if (crc != 0) {
		printf("verdict:   VIOLATION: the nodes did not converge within %.1f s of the last "
		       "heal\n",
		       o->converge_timeout_s);
		code = CLI_CHAOS_VIOLATION;
	} else if (disagree) {
		printf("verdict:   VIOLATION: the nodes give different answers at LEVEL local for "
		       "%zu keys\n",
		       disagree);
		code = CLI_CHAOS_VIOLATION;
	} else if (check == CHAOS_CZ_CHECK_VIOLATION) {
		printf("verdict:   VIOLATION: the causal checker rejects the history\n");
		code = CLI_CHAOS_VIOLATION;
	} else if (liveness) {
		printf("verdict:   converged, but %s (see nemesis.log)\n", liveness);
		code = CLI_CHAOS_VIOLATION;
	} else if (check == CHAOS_CZ_CHECK_UNAVAILABLE) {
		printf("verdict:   converged and the nodes agree, but the checker is unavailable "
		       "(spectra check has no --model causal)\n");
		code = CLI_CHAOS_UNKNOWN;
	} else if (check != CHAOS_CZ_CHECK_OK) {
		printf("verdict:   unknown: the causal checker could not judge the history (%s)\n",
		       check == CHAOS_CZ_CHECK_BAD_INPUT ? "bad input" : "it did not run");
		code = CLI_CHAOS_UNKNOWN;
	} else if (o->self_test_bad) {
		printf("verdict:   consistent, yet the history was corrupted: the checker missed "
		       "it\n");
		code = CLI_CHAOS_OK;
	} else if (interrupted) {
		printf("verdict:   consistent as far as it went, but the run was interrupted\n");
		code = CLI_CHAOS_UNKNOWN;
	} else if (ok < (uint64_t)o->min_ops) {
		printf("verdict:   consistent, but only %" PRIu64
		       " ops succeeded (--min-ops %ld)\n",
		       ok, o->min_ops);
		code = CLI_CHAOS_UNKNOWN;
	} else {
		printf("verdict:   consistent: converged, the nodes agree, and the causal check "
		       "passed\n");
		code = CLI_CHAOS_OK;
	}
	chaos_cz_history_free(&h);
	return code;
}

static int run(const struct chaos_opts *o, const char *dir, const char *history_path)
{
	int code = CLI_CHAOS_UNKNOWN, rc;
	const char *liveness = NULL;
	struct local_cluster lc = {0};
	struct chaos_workload wl = {0};
	struct chaos_ev_workload ewl = {0};
	struct chaos_cz_workload czl = {0};
	bool causal = o->workload == WORKLOAD_CAUSAL;
	bool eventual = o->workload != WORKLOAD_REGISTER && !causal;
	uint64_t healed_ns = 0;
	struct chaos_nemesis nm;
	bool nemesis_made = false;
	struct history hist, bad;
	struct chaos_stats stats = {0};
	struct local_node_addr *addrs = NULL;
	char **node_args = NULL;
	int nnode_args = NODE_DEFAULTS + o->nextra;
	FILE *nemesis_log = NULL;
	char faults[64], log_path[4096];
	history_init(&hist);
	history_init(&bad);
	faults_text(o->faults, faults, sizeof(faults));

	long base = o->base_port, peer_base = o->peer_base_port;
	if (base == 0 && !pick_ports(o->nodes, &base, &peer_base)) {
		cli_error("found no %ld free consecutive ports in %d..%d", 2 * o->nodes, PORT_LOW,
			  PORT_HIGH);
		return CLI_CHAOS_UNKNOWN;
	}
	if (peer_base == 0)
		peer_base = base + o->nodes;
	rc = local_cluster_create(&lc, dir, (int)o->nodes, (int)base, (int)peer_base, 0, "chaos");
	if (rc != 0) {
		cli_error("cannot create a cluster in %s: %s", dir, sp_strerror(rc));
		return rc == SP_ERR_EXISTS || rc == SP_ERR_RANGE || rc == SP_ERR_INVAL
			   ? CLI_CHAOS_USAGE
			   : CLI_CHAOS_UNKNOWN;
	}

	/* nemesis.log goes beside the history. */
	const char *slash = strrchr(history_path, '/');
	snprintf(log_path, sizeof(log_path), "%.*snemesis.log",
		 slash ? (int)(slash - history_path + 1) : 0, history_path);
	nemesis_log = fopen(log_path, "w");
	if (!nemesis_log) {
		cli_error("cannot write %s: %s", log_path, strerror(errno));
		goto close_cluster;
	}

	node_args = sp_calloc((size_t)nnode_args + 1, sizeof(*node_args));
	for (int i = 0; i < NODE_DEFAULTS; i++)
		node_args[i] = (char *)node_defaults[i];
	for (int i = 0; i < o->nextra; i++)
		node_args[NODE_DEFAULTS + i] = o->extra[i];
	/* Kept so `spectra cluster` can restart the nodes of a kept directory
	 * as they ran; a failure to write it costs nothing else. */
	(void)local_cluster_args_write(&lc, node_args, nnode_args);

	printf("spectra chaos: %ld nodes (ports %ld.., peers %ld..), %ld clients, %ld keys, %ld s, "
	       "nemesis %s every ~%ld ms, seed %" PRIu64 "\n",
	       o->nodes, base, peer_base, o->clients, o->keys, o->duration_s, faults,
	       o->interval_ms, o->seed);
	if (eventual)
		printf("workload:  %s on keyspace " CHAOS_EV_KEYSPACE
		       " (eventual, rf %d), writes at "
		       "%s, reads at quorum\n",
		       chaos_ev_kind_name((enum chaos_ev_kind)o->workload), CHAOS_EV_RF,
		       chaos_ev_level_name(o->write_level));
	if (causal)
		printf("workload:  causal on keyspace " CHAOS_CZ_KEYSPACE
		       ", sessions hopping between nodes with their tokens\n");
	printf("directory: %s\n", lc.dir);
	fflush(stdout);

	for (size_t i = 0; i < lc.cf.n; i++) {
		if (local_cluster_start_node(&lc, lc.cf.nodes[i].id, node_args, nnode_args,
					     START_WAIT_S) != 0) {
			cli_error("node %llu did not start", (unsigned long long)lc.cf.nodes[i].id);
			goto stop_nodes;
		}
	}
	uint64_t leader = 0;
	rc = local_cluster_wait_leader(&lc, LEADER_WAIT_S, &leader);
	if (rc == SP_ERR_PROTO) {
		cli_error("spectrad does not answer CLUSTER INFO: it cannot run as a cluster yet");
		goto stop_nodes;
	}
	if (rc != 0) {
		cli_error("no leader within %.0f s of starting the cluster", LEADER_WAIT_S);
		goto stop_nodes;
	}
	printf("leader:    node %llu\n", (unsigned long long)leader);

	addrs = sp_calloc(lc.cf.n, sizeof(*addrs));
	for (size_t i = 0; i < lc.cf.n; i++)
		(void)local_cluster_addr(&lc, lc.cf.nodes[i].id, &addrs[i]);
	if (eventual) {
		char err[256];
		rc = chaos_ev_create_keyspace(addrs, lc.cf.n, (unsigned)o->op_timeout_ms,
					      LEADER_WAIT_S, err, sizeof(err));
		if (rc != 0) {
			cli_error("cannot create keyspace " CHAOS_EV_KEYSPACE ": %s", err);
			goto stop_nodes;
		}
	}
	if (causal) {
		char err[256];
		rc = chaos_cz_create_keyspace(addrs, lc.cf.n, (unsigned)o->op_timeout_ms,
					      LEADER_WAIT_S, err, sizeof(err));
		if (rc != 0) {
			cli_error("cannot create keyspace " CHAOS_CZ_KEYSPACE ": %s", err);
			goto stop_nodes;
		}
	}

	uint64_t t0_ns = sp_mono_ns(sp_clock_system());
	uint64_t seeder = o->seed;
	struct chaos_nemesis_config ncfg = {.lc = &lc,
					    .enabled = o->faults,
					    .interval_ms = (unsigned)o->interval_ms,
					    .seed = chaos_rand(&seeder),
					    .t0_ns = t0_ns,
					    .node_args = node_args,
					    .nnode_args = nnode_args,
					    .start_wait_s = START_WAIT_S,
					    .log = nemesis_log};
	struct chaos_workload_config wcfg = {.clients = (size_t)o->clients,
					     .keys = (size_t)o->keys,
					     .nodes = addrs,
					     .nnodes = lc.cf.n,
					     .op_timeout_ms = (unsigned)o->op_timeout_ms,
					     .reads = o->reads,
					     .seed = chaos_rand(&seeder),
					     .t0_ns = t0_ns};
	rc = chaos_nemesis_start(&nm, &ncfg);
	nemesis_made = true;
	if (rc != 0) {
		cli_error("cannot start the nemesis: %s", sp_strerror(rc));
		goto stop_threads;
	}
	struct chaos_ev_config ecfg = {.kind = (enum chaos_ev_kind)o->workload,
				       .write_level = o->write_level,
				       .clients = (size_t)o->clients,
				       .keys = (size_t)o->keys,
				       .nodes = addrs,
				       .nnodes = lc.cf.n,
				       .op_timeout_ms = (unsigned)o->op_timeout_ms,
				       .seed = wcfg.seed,
				       .t0_ns = t0_ns};
	struct chaos_cz_config zcfg = {.sessions = (size_t)o->clients,
				       .keys = (size_t)o->keys,
				       .nodes = addrs,
				       .nnodes = lc.cf.n,
				       .op_timeout_ms = (unsigned)o->op_timeout_ms,
				       .seed = wcfg.seed,
				       .t0_ns = t0_ns};
	rc = causal	? chaos_cz_workload_start(&czl, &zcfg)
	     : eventual ? chaos_ev_workload_start(&ewl, &ecfg)
			: chaos_workload_start(&wl, &wcfg);
	if (rc != 0) {
		cli_error("cannot start the clients: %s", sp_strerror(rc));
		goto stop_threads;
	}
	chaos_nemesis_logf(&nm, "workload started: %ld clients", o->clients);

	uint64_t end_ns = t0_ns + (uint64_t)o->duration_s * 1000000000ull;
	while (!interrupted && sp_mono_ns(sp_clock_system()) < end_ns) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (interrupted)
		chaos_nemesis_logf(&nm, "interrupted: ending the run early");

stop_threads:
	/* The nemesis first, so no fault outlives the workload's end. */
	chaos_nemesis_stop(&nm);
	chaos_workload_stop(&wl);
	chaos_ev_workload_stop(&ewl);
	chaos_cz_workload_stop(&czl);
	double run_s = (double)(sp_mono_ns(sp_clock_system()) - t0_ns) / 1e9;
	if (nemesis_made) {
		chaos_nemesis_logf(&nm, "workload stopped; healing");
		(void)chaos_nemesis_heal_all(&nm);
		for (size_t i = 0; i < nm.n; i++)
			if (nm.nodes[i].killed)
				liveness = "a killed node did not come back";
		healed_ns = sp_mono_ns(sp_clock_system());
	}
	if (causal && nemesis_made) {
		code = finish_causal(o, &lc, addrs, &nm, &czl, healed_ns, run_s, liveness,
				     history_path);
		goto close_log;
	}
	if (eventual && nemesis_made) {
		code = finish_eventual(o, &lc, addrs, &nm, &ewl, healed_ns, run_s, liveness,
				       history_path);
		goto close_log;
	}
	uint64_t process = chaos_workload_collect(&wl, &hist, &stats);

	if (nemesis_made) {
		rc = local_cluster_wait_leader(&lc, LEADER_WAIT_S, &leader);
		if (rc != 0) {
			chaos_nemesis_logf(&nm, "no leader within %.0f s after healing",
					   LEADER_WAIT_S);
			liveness = "the cluster had no leader 30 s after healing";
			goto stop_nodes;
		}
		struct local_node_addr la;
		(void)local_cluster_addr(&lc, leader, &la);
		size_t read = chaos_final_reads(&la, (size_t)o->keys, (unsigned)o->op_timeout_ms,
						FINAL_READ_TRIES, t0_ns, &process, &hist, &stats);
		chaos_nemesis_logf(&nm, "final reads through node %llu: %zu of %ld keys",
				   (unsigned long long)leader, read, o->keys);
	}

stop_nodes:
	stop_cluster(&lc);
	if (!nemesis_made)
		goto close_log;

	/* ---- the history and its check ---- */
	const struct history *checked = &hist;
	if (o->self_test_bad) {
		uint64_t rng = o->seed ^ 0x5e1f7e57ull;
		size_t victim = corrupt_one_read(&hist, &rng, &bad);
		if (victim == SIZE_MAX) {
			cli_error("--self-test-bad: the history has no successful read to corrupt");
			goto close_log;
		}
		printf("self-test: op %zu (a read of %.*s) now reads a value never written\n",
		       victim, (int)hist.ops[victim].klen, (const char *)hist.ops[victim].key);
		checked = &bad;
	}
	rc = write_history(checked, history_path);
	if (rc != 0)
		cli_error("cannot write %s: %s", history_path, sp_strerror(rc));

	code = check_and_report(o, checked, history_path, &stats, &nm, run_s, liveness);

close_log:
	if (nemesis_made)
		chaos_nemesis_close(&nm);
	chaos_workload_close(&wl);
	chaos_ev_workload_close(&ewl);
	chaos_cz_workload_close(&czl);
	if (nemesis_log)
		fclose(nemesis_log);
close_cluster:
	history_free(&bad);
	history_free(&hist);
	free(addrs);
	free(node_args);
	local_cluster_close(&lc);
	return code;
}

int cli_chaos_main(const char *path, int argc, char **argv)
{
	const char *nodes = NULL, *duration = NULL, *clients = NULL, *keys = NULL;
	const char *interval = NULL, *nemesis = NULL, *dir = NULL, *base_port = NULL;
	const char *peer_base_port = NULL, *history = NULL, *seed = NULL, *op_timeout = NULL;
	const char *reads = NULL, *workload = NULL, *level = NULL, *converge_timeout = NULL;
	const char *check_timeout = NULL, *min_ops = NULL;
	bool keep = false, self_test_bad = false;
	const struct cli_flag flags[] = {
	    {"nodes", "N", "cluster size (default 5)", &nodes, NULL},
	    {"duration", "SECONDS", "how long the workload runs (default 60)", &duration, NULL},
	    {"clients", "K", "client threads, bound to nodes round-robin (default 10)", &clients,
	     NULL},
	    {"keys", "N", "keys the clients share (default 5)", &keys, NULL},
	    {"interval-ms", "MS", "mean time between faults (default 3000)", &interval, NULL},
	    {"nemesis", "LIST", "faults: kill,pause,partition, all or none (default all)", &nemesis,
	     NULL},
	    {"dir", "DIR", "cluster directory (default: a new temporary one)", &dir, NULL},
	    {"base-port", "P", "client port of node 1; node i gets P+i-1 (default: free ports)",
	     &base_port, NULL},
	    {"peer-base-port", "Q", "peer port of node 1 (default: right after the client ports)",
	     &peer_base_port, NULL},
	    {"history", "FILE", "where the history goes (default DIR/history.jsonl)", &history,
	     NULL},
	    {"seed", "S", "seed of the workload and the nemesis (default: from the clock)", &seed,
	     NULL},
	    {"op-timeout-ms", "MS", "a client's wait for a reply (default 1500)", &op_timeout,
	     NULL},
	    {"reads", "LEVEL",
	     "read level: linearizable, lease, or mixed (half the clients lease; default)", &reads,
	     NULL},
	    {"check-timeout", "SECONDS", "bound on the linearizability check, 0 none (default 60)",
	     &check_timeout, NULL},
	    {"workload", "NAME",
	     "register (strong keyspace; default), eventual: set, counter or lww, or causal",
	     &workload, NULL},
	    {"level", "LEVEL", "eventual: write level one, quorum or all (default quorum)", &level,
	     NULL},
	    {"converge-timeout", "SECONDS",
	     "eventual, causal: the longest convergence after the last heal (default 10)",
	     &converge_timeout, NULL},
	    {"min-ops", "N", "successful ops needed to pass (default 1000)", &min_ops, NULL},
	    {"keep", NULL, "keep the temporary directory even after a clean run", NULL, &keep},
	    {"self-test-bad", NULL,
	     "(testing) corrupt one successful read (eventual: the final state) before the "
	     "check: must exit 1",
	     NULL, &self_test_bad},
	};
	const struct cli_spec spec = {
	    path,
	    "[--nodes N] [--duration SECONDS] [--clients K] [--keys N] [--interval-ms MS]\n"
	    "       [--nemesis LIST] [--dir DIR] [--base-port P] [--peer-base-port Q]\n"
	    "       [--history FILE] [--seed S] [--op-timeout-ms MS] [--reads LEVEL]\n"
	    "       [--check-timeout SECONDS] [--workload register|set|counter|lww|causal]\n"
	    "       [--level one|quorum|all] [--converge-timeout SECONDS]\n"
	    "       [--min-ops N] [--keep] [-- SPECTRAD-FLAGS...]",
	    "Start a local cluster, run K clients doing GET (50%), SET (30%) and CAS (20%) on a\n"
	    "few keys while a nemesis kills (-9), pauses (SIGSTOP) and partitions (DEBUG NET)\n"
	    "nodes, never more than a minority at once; then heal, read every key through the\n"
	    "leader, stop the cluster, and check that the history is linearizable. Nodes run\n"
	    "with --admin-commands yes --election-timeout-ms 500 --heartbeat-ms 50\n"
	    "--request-timeout-ms 1000; flags after '--' are passed on and win. The history\n"
	    "(JSON lines, see 'spectra check') and nemesis.log are kept in DIR, with each\n"
	    "node's log in DIR/node-<id>/spectrad.log. A temporary DIR is removed after a clean\n"
	    "run unless --keep is given; on any failure DIR is kept and named.\n"
	    "\n"
	    "--workload set, counter or lww runs on an eventual keyspace instead: once there is\n"
	    "a leader, KEYSPACE CREATE ev MODE eventual RF 3, then each client sends every op\n"
	    "to a random node on keys ev:0..ev:<N-1>, writes at --level and one op in ten a\n"
	    "read at quorum: ORSET.ADD of an element unique in the run, COUNTER.INCR by 1..5,\n"
	    "or LWW.SET of a unique value. -TRYAGAIN or another error is a failure, -UNKNOWN or\n"
	    "no reply an unknown outcome. After healing, every node's EVENTUAL DIGEST is polled\n"
	    "every 100 ms until all replicas of every range agree and the digests then stay the\n"
	    "same for 1.5 s (\"converged in N ms after the last heal\", N counted to the first of\n"
	    "those polls; failing if none comes within --converge-timeout); every key is read\n"
	    "at ALL from every node and the nodes must agree; then set: no acknowledged add is\n"
	    "missing and every element was added by an add that did not fail; counter: the\n"
	    "value lies between the sum of acknowledged increments and that plus the unknown\n"
	    "ones; lww: the value was written by a write that did not fail, its timestamp is at\n"
	    "least every acknowledged write's, and equals what its own write returned if\n"
	    "acknowledged. With writes at quorum or all, each quorum read must also hold its\n"
	    "client's own acknowledged writes. The history (eventual JSON lines) and final.txt\n"
	    "(what each node read at ALL) are kept in DIR. --self-test-bad corrupts the agreed\n"
	    "final state (drops an acknowledged element, adds 1000 to a counter, replaces an\n"
	    "LWW value) so that the check must fail.\n"
	    "\n"
	    "--workload causal creates a causal keyspace (KEYSPACE CREATE cz MODE causal);\n"
	    "each client is a session doing GET and SET (unique values) on cz:0..cz:<N-1> at\n"
	    "level causal, hopping every 5-20 ops, and after any timeout, to another node\n"
	    "with SESSION RESUME <token>. After healing, every node's INFO causal\n"
	    "causal_applied must become equal and stay so for 1 s (within\n"
	    "--converge-timeout), every key read at LEVEL local must agree on all nodes, and\n"
	    "'spectra check --model causal' must accept the history. --self-test-bad makes a\n"
	    "read after its session's own write of the key return nil (must exit 1).\n"
	    "\n"
	    "Exit status: 0 linearizable (eventual: converged and checked) and at least\n"
	    "--min-ops ops succeeded; 1 a violation, or a cluster that did not recover once\n"
	    "healed (a killed node that would not restart, no leader; eventual: no\n"
	    "convergence in time, a final read at ALL that failed, nodes that disagree);\n"
	    "2 unknown (the check ran out of time, too few ops, the run was interrupted, or\n"
	    "the cluster could not be run); 64 usage error.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    "flags passed to every spectrad",
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code == CLI_EXIT_OK ? CLI_CHAOS_OK : CLI_CHAOS_USAGE;

	struct chaos_opts o = {.nodes = 5,
			       .duration_s = 60,
			       .clients = 10,
			       .keys = 5,
			       .interval_ms = 3000,
			       .op_timeout_ms = 1500,
			       .min_ops = 1000,
			       .check_timeout_s = 60,
			       .workload = WORKLOAD_REGISTER,
			       .write_level = CHAOS_EV_QUORUM,
			       .converge_timeout_s = 10,
			       .faults = CHAOS_FAULTS_ALL,
			       .dir = dir,
			       .history = history,
			       .keep = keep,
			       .self_test_bad = self_test_bad,
			       .extra = argv + rest,
			       .nextra = argc - rest};
	const struct {
		const char *text, *name;
		long min, max;
		long *field;
	} numbers[] = {
	    {nodes, "nodes", 1, CHAOS_MAX_NODES, &o.nodes},
	    {duration, "duration", 1, 7 * 86400, &o.duration_s},
	    {clients, "clients", 1, 1000, &o.clients},
	    {keys, "keys", 1, 100000, &o.keys},
	    {interval, "interval-ms", 100, 3600000, &o.interval_ms},
	    {op_timeout, "op-timeout-ms", 10, 600000, &o.op_timeout_ms},
	    {min_ops, "min-ops", 0, 1000000000, &o.min_ops},
	    {base_port, "base-port", 1, 65535, &o.base_port},
	    {peer_base_port, "peer-base-port", 1, 65535, &o.peer_base_port},
	};
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		if (numbers[i].text && !parse_long(numbers[i].text, numbers[i].min, numbers[i].max,
						   numbers[i].field)) {
			cli_usage_error(path, "--%s: '%s' is not a number in %ld..%ld",
					numbers[i].name, numbers[i].text, numbers[i].min,
					numbers[i].max);
			return CLI_CHAOS_USAGE;
		}
	}
	if (reads) {
		if (strcmp(reads, "mixed") == 0) {
			o.reads = CHAOS_READS_MIXED;
		} else if (strcmp(reads, "linearizable") == 0) {
			o.reads = CHAOS_READS_LINEARIZABLE;
		} else if (strcmp(reads, "lease") == 0) {
			o.reads = CHAOS_READS_LEASE;
		} else {
			cli_usage_error(path, "--reads: '%s' is not linearizable, lease or mixed",
					reads);
			return CLI_CHAOS_USAGE;
		}
	}
	if (workload && strcmp(workload, "causal") == 0) {
		o.workload = WORKLOAD_CAUSAL;
	} else if (workload && strcmp(workload, "register") != 0) {
		enum chaos_ev_kind kind;
		if (chaos_ev_parse_kind(workload, &kind) != 0) {
			cli_usage_error(
			    path, "--workload: '%s' is not register, set, counter, lww or causal",
			    workload);
			return CLI_CHAOS_USAGE;
		}
		o.workload = (int)kind;
	}
	bool causal = o.workload == WORKLOAD_CAUSAL;
	bool eventual = o.workload != WORKLOAD_REGISTER && !causal;
	if (causal && level) {
		cli_usage_error(path, "--level is for the eventual workloads");
		return CLI_CHAOS_USAGE;
	}
	if (!eventual && !causal && (level || converge_timeout)) {
		cli_usage_error(path,
				"--%s is for the eventual workloads (--workload set, counter "
				"or lww)",
				level ? "level" : "converge-timeout");
		return CLI_CHAOS_USAGE;
	}
	if ((eventual || causal) && (reads || check_timeout)) {
		cli_usage_error(path, "--%s is for --workload register",
				reads ? "reads" : "check-timeout");
		return CLI_CHAOS_USAGE;
	}
	if (level && chaos_ev_parse_level(level, &o.write_level) != 0) {
		cli_usage_error(path, "--level: '%s' is not one, quorum or all", level);
		return CLI_CHAOS_USAGE;
	}
	if (converge_timeout && !cli_parse_seconds(converge_timeout, &o.converge_timeout_s)) {
		cli_usage_error(path, "--converge-timeout: '%s' is not a number of seconds",
				converge_timeout);
		return CLI_CHAOS_USAGE;
	}
	if (check_timeout && !cli_parse_seconds(check_timeout, &o.check_timeout_s)) {
		cli_usage_error(path, "--check-timeout: '%s' is not a number of seconds",
				check_timeout);
		return CLI_CHAOS_USAGE;
	}
	if (nemesis && chaos_parse_faults(nemesis, &o.faults) != 0) {
		cli_usage_error(path, "--nemesis: '%s' is not a list of kill, pause, partition",
				nemesis);
		return CLI_CHAOS_USAGE;
	}
	if (o.peer_base_port && !o.base_port) {
		cli_usage_error(path, "--peer-base-port needs --base-port");
		return CLI_CHAOS_USAGE;
	}
	if (seed) {
		char *end;
		errno = 0;
		o.seed = strtoull(seed, &end, 10);
		if (errno || end == seed || *end || *seed == '-') {
			cli_usage_error(path, "--seed: '%s' is not a number", seed);
			return CLI_CHAOS_USAGE;
		}
	} else {
		o.seed = sp_mono_ns(sp_clock_system()) ^ ((uint64_t)getpid() << 32);
		o.seed %= 1000000000000ull; /* short enough to type back */
	}
	for (int i = 0; i < o.nextra; i++)
		for (size_t f = 0; f < sizeof(owned_flags) / sizeof(owned_flags[0]); f++)
			if (cli_is_flag(o.extra[i], owned_flags[f])) {
				cli_usage_error(path,
						"--%s is set for each node by 'spectra chaos' and "
						"cannot be passed after '--'",
						owned_flags[f]);
				return CLI_CHAOS_USAGE;
			}

	char *made_dir = NULL, *history_path = NULL;
	if (!o.dir) {
		const char *tmp = getenv("TMPDIR");
		char tmpl[4096];
		snprintf(tmpl, sizeof(tmpl), "%s/spectra-chaos-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(tmpl)) {
			cli_error("cannot make a directory %s: %s", tmpl, strerror(errno));
			return CLI_CHAOS_UNKNOWN;
		}
		made_dir = sp_strdup(tmpl);
		o.dir = made_dir;
	} else {
		int rc = local_node_mkdir(o.dir);
		if (rc != 0) {
			cli_error("cannot create %s: %s", o.dir, sp_strerror(rc));
			return CLI_CHAOS_UNKNOWN;
		}
	}
	if (o.history) {
		history_path = sp_strdup(o.history);
	} else {
		size_t len = strlen(o.dir) + sizeof("/history.jsonl");
		history_path = sp_malloc(len);
		snprintf(history_path, len, "%s/history.jsonl", o.dir);
	}

	struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	code = run(&o, o.dir, history_path);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);

	if (made_dir && !o.keep && (code == CLI_CHAOS_OK || code == CLI_CHAOS_USAGE))
		remove_tree(made_dir);
	else if (code != CLI_CHAOS_USAGE)
		printf("kept:      %s (history, nemesis.log, node-<id>/spectrad.log)\n", o.dir);
	free(history_path);
	free(made_dir);
	return code;
}
