/*
 * raft_sim: run the deterministic simulation over a range of seeds.
 *
 *   raft_sim --seeds A..B [--sim-seconds N] [-j N] [--keep-going]
 *   raft_sim --seed S [--trace]          replay one seed (trace: stderr)
 *   raft_sim --selftest                  check the simulator's own parts
 *
 * Each seed is a whole run (world.c) and depends on nothing but the seed
 * and the options, so -j N, which forks N workers that take every N-th
 * seed, gives the same verdicts as a single process. A failure prints the
 * seed, the check that failed and the command that replays it; the first
 * failing seed (the lowest) is the one reported, and the exit status is 1.
 * A worker that dies (the core crashed) or stops answering (a hang)
 * fails its seed the same way.
 */
#include "sim.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef RAFT_CANARY
#define RAFT_CANARY 0
#endif

#define SEED_WALL_LIMIT_S 300 /* a seed that runs this long is hung */

struct totals {
	uint64_t seeds, failed;
	struct sim_stats st;
	uint64_t first_fail_seed;
	bool have_fail;
	bool worker_failed; /* a worker failed outside any seed */
	char first_check[48];
	char first_msg[1100];
	uint64_t first_fail_time;
};

static struct sim_opts opts;
static uint64_t opt_lo = 1, opt_hi = 1;
static int opt_jobs = 1;
static bool opt_keep_going, opt_verbose;

/* For the signal handlers: what this process is running. */
static volatile sig_atomic_t cur_seed_valid;
static volatile uint64_t cur_seed;
static int report_fd = -1;

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: raft_sim [--seeds A..B | --seed S] [--sim-seconds N] [--quiet-seconds N]\n"
		"                [-j N] [--trace] [--keep-going] [--no-contract] [--lin-steps N]\n"
		"                [-v] | --selftest\n");
	exit(2);
}

static void replay_cmd(uint64_t seed, char *buf, size_t len)
{
	char extra[64] = "";
	if (opts.quiet_seconds != 5)
		snprintf(extra, sizeof(extra), " --quiet-seconds %" PRIu64, opts.quiet_seconds);
	snprintf(buf, len, "%s --seed %" PRIu64 " --sim-seconds %" PRIu64 "%s%s --trace",
		 opts.argv0, seed, opts.sim_seconds, extra, opts.contract ? "" : " --no-contract");
}

/* Codec drops seen by this process, reported once each on stderr. */
static char drops_seen[64][48];
static int n_drops_seen;

void sim_note_codec_drop(const char *type, const char *field)
{
	char key[48];
	snprintf(key, sizeof(key), "%s.%s", type, field);
	for (int i = 0; i < n_drops_seen; i++)
		if (!strcmp(drops_seen[i], key))
			return;
	if (n_drops_seen < 64)
		snprintf(drops_seen[n_drops_seen++], sizeof(drops_seen[0]), "%s", key);
	fprintf(stderr,
		"raft_sim: note: the core sets %s but the codec does not carry it (seed %" PRIu64
		")\n",
		key, (uint64_t)cur_seed);
}

static void add_stats(struct sim_stats *a, const struct sim_stats *b)
{
	a->sim_us += b->sim_us;
	a->events += b->events;
	a->elections += b->elections;
	a->leader_changes += b->leader_changes;
	a->committed += b->committed;
	a->ops_checked += b->ops_checked;
	a->ops_ok += b->ops_ok;
	a->ops_unknown += b->ops_unknown;
	a->ops_fail += b->ops_fail;
	a->crashes += b->crashes;
	a->restarts += b->restarts;
	a->partitions += b->partitions;
	a->pauses += b->pauses;
	a->snapshots_installed += b->snapshots_installed;
	a->snapshots_saved += b->snapshots_saved;
	a->membership_changes += b->membership_changes;
	a->transfers += b->transfers;
	a->msgs += b->msgs;
	a->msgs_lost += b->msgs_lost;
	a->msgs_dup += b->msgs_dup;
	a->lin_gave_up += b->lin_gave_up;
	a->torn += b->torn;
	a->writes_lost += b->writes_lost;
	a->lease_reads += b->lease_reads;
	a->index_reads += b->index_reads;
	a->snap_msgs_dropped += b->snap_msgs_dropped;
	if (b->max_msgs_window > a->max_msgs_window)
		a->max_msgs_window = b->max_msgs_window;
}

#define N_STATS (sizeof(struct sim_stats) / sizeof(uint64_t))

static void record(struct totals *t, uint64_t seed, const struct sim_result *r)
{
	t->seeds++;
	add_stats(&t->st, &r->st);
	if (opt_verbose)
		fprintf(stderr,
			"seed %" PRIu64 ": %s, %" PRIu64 " events, %" PRIu64 " committed, %" PRIu64
			" ops, %" PRIu64 " leaders, %" PRIu64 " crashes, %" PRIu64
			" snapshots, peak %" PRIu64 " msgs/100ms\n",
			seed, r->failed ? "FAIL" : "ok", r->st.events, r->st.committed,
			r->st.ops_checked, r->st.leader_changes, r->st.crashes,
			r->st.snapshots_installed, r->st.max_msgs_window);
	if (!r->failed)
		return;
	t->failed++;
	if (!t->have_fail || seed < t->first_fail_seed) {
		t->have_fail = true;
		t->first_fail_seed = seed;
		t->first_fail_time = r->fail_time;
		snprintf(t->first_check, sizeof(t->first_check), "%s", r->check);
		snprintf(t->first_msg, sizeof(t->first_msg), "%s", r->msg);
	}
	char cmd[512];
	replay_cmd(seed, cmd, sizeof(cmd));
	fprintf(stderr, "FAIL seed %" PRIu64 " check %s at %.6f s: %s\n  replay: %s\n", seed,
		r->check, (double)r->fail_time / 1e6, r->msg, cmd);
}

/* ---- crash and hang reporting ---- */

static void write_str(int fd, const char *s)
{
	ssize_t rc = write(fd, s, strlen(s));
	(void)rc;
}

static void u64_str(uint64_t v, char *buf)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (int i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = 0;
}

static void on_fatal(int sig)
{
	if (cur_seed_valid) {
		char num[24];
		u64_str(cur_seed, num);
		if (report_fd >= 0) {
			/* Worker: tell the parent which seed died. */
			write_str(report_fd, sig == SIGALRM ? "H " : "D ");
			write_str(report_fd, num);
			write_str(report_fd, "\n");
		} else {
			write_str(2, sig == SIGALRM ? "FAIL seed " : "FAIL seed ");
			write_str(2, num);
			write_str(2, sig == SIGALRM ? " check hang: no verdict in time\n"
						    : " check crash: the process died\n");
			write_str(2, "  replay: ");
			write_str(2, opts.argv0);
			write_str(2, " --seed ");
			write_str(2, num);
			write_str(2, " --trace\n");
		}
	}
	signal(sig, SIG_DFL);
	if (sig == SIGALRM)
		_exit(3);
	raise(sig);
}

static void install_handlers(void)
{
	signal(SIGSEGV, on_fatal);
	signal(SIGABRT, on_fatal);
	signal(SIGBUS, on_fatal);
	signal(SIGFPE, on_fatal);
	signal(SIGILL, on_fatal);
	signal(SIGALRM, on_fatal);
}

static void run_one(uint64_t seed, struct sim_result *r)
{
	cur_seed = seed;
	cur_seed_valid = 1;
	if (!opts.trace)
		alarm(SEED_WALL_LIMIT_S);
	sim_run_seed(seed, &opts, r);
	alarm(0);
	cur_seed_valid = 0;
}

/* ---- workers ---- */

static void sanitize(char *s)
{
	for (; *s; s++)
		if (*s == '\n' || *s == '\t')
			*s = ' ';
}

static void worker(int fd, int index, int jobs)
{
	report_fd = fd;
	FILE *out = fdopen(fd, "w");
	for (uint64_t s = opt_lo + (uint64_t)index; s <= opt_hi; s += (uint64_t)jobs) {
		struct sim_result r;
		run_one(s, &r);
		sanitize(r.msg);
		sanitize(r.check);
		const uint64_t *v = (const uint64_t *)&r.st;
		fprintf(out, "R %" PRIu64 " %d %" PRIu64, s, r.failed ? 1 : 0, r.fail_time);
		for (size_t i = 0; i < N_STATS; i++)
			fprintf(out, " %" PRIu64, v[i]);
		fprintf(out, "\t%s\t%s\n", r.failed ? r.check : "-", r.failed ? r.msg : "-");
		fflush(out);
		if (r.failed && !opt_keep_going)
			break;
	}
	fclose(out);
	exit(0); /* not _exit: LeakSanitizer checks workers too */
}

struct wstate {
	pid_t pid;
	int fd;
	FILE *in;
	bool done;
	uint64_t next;	   /* the next seed it will report */
	bool died_on_seed; /* it reported its own death (D or H) */
};

static void parse_line(struct totals *t, struct wstate *ws, int jobs, char *line)
{
	if (line[0] == 'R') {
		struct sim_result r;
		memset(&r, 0, sizeof(r));
		char *p = line + 2, *end;
		uint64_t seed = strtoull(p, &end, 10);
		r.failed = strtol(end, &end, 10) != 0;
		r.fail_time = strtoull(end, &end, 10);
		uint64_t *v = (uint64_t *)&r.st;
		for (size_t i = 0; i < N_STATS; i++)
			v[i] = strtoull(end, &end, 10);
		char *check = strchr(end, '\t');
		if (check) {
			check++;
			char *msg = strchr(check, '\t');
			if (msg) {
				*msg++ = 0;
				char *nl = strchr(msg, '\n');
				if (nl)
					*nl = 0;
				snprintf(r.msg, sizeof(r.msg), "%s", msg);
			}
			snprintf(r.check, sizeof(r.check), "%s", check);
		}
		record(t, seed, &r);
		ws->next = seed + (uint64_t)jobs;
	} else if (line[0] == 'D' || line[0] == 'H') {
		struct sim_result r;
		memset(&r, 0, sizeof(r));
		uint64_t seed = strtoull(line + 2, NULL, 10);
		r.failed = true;
		snprintf(r.check, sizeof(r.check), "%s", line[0] == 'D' ? "crash" : "hang");
		snprintf(r.msg, sizeof(r.msg), "%s",
			 line[0] == 'D' ? "the simulator process died (see replay)"
					: "no verdict within the wall-time limit");
		record(t, seed, &r);
		ws->next = seed + (uint64_t)jobs;
		ws->died_on_seed = true;
	}
}

/* Every seed below the first failure is accounted for: stop the rest. */
static bool settled(const struct totals *t, const struct wstate *ws, int jobs)
{
	if (!t->have_fail || opt_keep_going)
		return false;
	for (int i = 0; i < jobs; i++)
		if (!ws[i].done && ws[i].next < t->first_fail_seed)
			return false;
	return true;
}

static void run_parallel(struct totals *t, int jobs)
{
	struct wstate ws[64];
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < jobs; i++) {
		int fds[2];
		if (pipe(fds)) {
			perror("pipe");
			exit(2);
		}
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			exit(2);
		}
		if (pid == 0) {
			close(fds[0]);
			for (int k = 0; k < i; k++)
				fclose(ws[k].in);
			worker(fds[1], i, jobs);
		}
		close(fds[1]);
		ws[i].pid = pid;
		ws[i].fd = fds[0];
		ws[i].in = fdopen(fds[0], "r");
		ws[i].done = false;
		ws[i].died_on_seed = false;
		ws[i].next = opt_lo + (uint64_t)i;
	}
	char line[4096];
	int live = jobs;
	while (live > 0 && !settled(t, ws, jobs)) {
		struct pollfd pfd[64];
		int map[64], np = 0;
		for (int i = 0; i < jobs; i++) {
			if (ws[i].done)
				continue;
			pfd[np].fd = ws[i].fd;
			pfd[np].events = POLLIN;
			map[np++] = i;
		}
		if (poll(pfd, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			exit(2);
		}
		for (int k = 0; k < np; k++) {
			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			struct wstate *w = &ws[map[k]];
			if (fgets(line, sizeof(line), w->in)) {
				parse_line(t, w, jobs, line);
				continue;
			}
			/* EOF: the worker is finished, or died between seeds. */
			w->done = true;
			live--;
			int status;
			waitpid(w->pid, &status, 0);
			w->pid = 0;
			bool bad = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
			if (bad && !w->died_on_seed && w->next <= opt_hi) {
				/* Died without naming a seed: blame the next one. */
				struct sim_result r;
				memset(&r, 0, sizeof(r));
				r.failed = true;
				snprintf(r.check, sizeof(r.check), "crash");
				snprintf(r.msg, sizeof(r.msg), "worker exited with status %d",
					 status);
				record(t, w->next, &r);
			} else if (bad && !w->died_on_seed) {
				/* After its last seed (LeakSanitizer, say). */
				fprintf(stderr, "raft_sim: worker %d exited with status %d\n",
					map[k], status);
				t->worker_failed = true;
			}
		}
	}
	for (int i = 0; i < jobs; i++) {
		if (ws[i].pid > 0) {
			kill(ws[i].pid, SIGTERM);
			waitpid(ws[i].pid, NULL, 0);
		}
		if (ws[i].in)
			fclose(ws[i].in);
	}
}

static void run_serial(struct totals *t)
{
	for (uint64_t s = opt_lo; s <= opt_hi; s++) {
		struct sim_result r;
		run_one(s, &r);
		record(t, s, &r);
		if (r.failed && !opt_keep_going)
			break;
	}
}

static bool parse_range(const char *s, uint64_t *lo, uint64_t *hi)
{
	char *end;
	*lo = strtoull(s, &end, 10);
	if (end == s)
		return false;
	if (*end == 0) {
		*hi = *lo;
		return true;
	}
	if (strncmp(end, "..", 2) != 0)
		return false;
	const char *b = end + 2;
	*hi = strtoull(b, &end, 10);
	return end != b && *end == 0 && *hi >= *lo;
}

int main(int argc, char **argv)
{
	opts.sim_seconds = 60;
	opts.quiet_seconds = 5;
	opts.contract = true;
	opts.lin_steps = 2000000;
	opts.canary = RAFT_CANARY;
	opts.argv0 = argv[0];
	bool selftest = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--seeds") && v) {
			if (!parse_range(v, &opt_lo, &opt_hi))
				usage();
			i++;
		} else if (!strcmp(a, "--seed") && v) {
			if (!parse_range(v, &opt_lo, &opt_hi) || opt_lo != opt_hi)
				usage();
			i++;
		} else if (!strcmp(a, "--sim-seconds") && v) {
			opts.sim_seconds = strtoull(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "--quiet-seconds") && v) {
			opts.quiet_seconds = strtoull(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "--lin-steps") && v) {
			opts.lin_steps = strtoull(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "-j") && v) {
			opt_jobs = atoi(v);
			i++;
		} else if (!strcmp(a, "--trace")) {
			opts.trace = true;
		} else if (!strcmp(a, "--keep-going")) {
			opt_keep_going = true;
		} else if (!strcmp(a, "--no-contract")) {
			opts.contract = false;
		} else if (!strcmp(a, "-v")) {
			opt_verbose = true;
		} else if (!strcmp(a, "--selftest")) {
			selftest = true;
		} else {
			usage();
		}
	}
	if (selftest)
		return sim_selftest() ? 1 : 0;
	if (opts.quiet_seconds < 3)
		opts.quiet_seconds = 3;
	if (opt_jobs < 1)
		opt_jobs = 1;
	if (opt_jobs > 64)
		opt_jobs = 64;
	if ((uint64_t)opt_jobs > opt_hi - opt_lo + 1)
		opt_jobs = (int)(opt_hi - opt_lo + 1);
	if (opts.trace && opt_lo != opt_hi)
		usage();
	install_handlers();

	double t0 = wall_now();
	struct totals t;
	memset(&t, 0, sizeof(t));
	if (opt_jobs > 1)
		run_parallel(&t, opt_jobs);
	else
		run_serial(&t);
	double wall = wall_now() - t0;

	const struct sim_stats *s = &t.st;
	printf(
	    "raft_sim%s: %" PRIu64 " seeds (%" PRIu64 "..%" PRIu64 "), %" PRIu64
	    " failed; %.0f sim-seconds; %" PRIu64 " elections, %" PRIu64 " leader changes, %" PRIu64
	    " committed entries, %" PRIu64 " client ops checked (%" PRIu64 " ok, %" PRIu64
	    " unknown; %" PRIu64 " lease reads; lin gave up on %" PRIu64 " seeds), %" PRIu64
	    " crashes (%" PRIu64 " writes lost, %" PRIu64 " torn), %" PRIu64 " partitions, %" PRIu64
	    " pauses, %" PRIu64 " snapshots installed (%" PRIu64 " saved), %" PRIu64
	    " membership changes, %" PRIu64 " transfers, %" PRIu64 " messages (%" PRIu64
	    " lost, %" PRIu64 " duplicated); wall %.1f s\n",
	    opts.canary ? " (canary build)" : "", t.seeds, opt_lo, opt_hi, t.failed,
	    (double)s->sim_us / 1e6, s->elections, s->leader_changes, s->committed, s->ops_checked,
	    s->ops_ok, s->ops_unknown, s->lease_reads, s->lin_gave_up, s->crashes, s->writes_lost,
	    s->torn, s->partitions, s->pauses, s->snapshots_installed, s->snapshots_saved,
	    s->membership_changes, s->transfers, s->msgs, s->msgs_lost, s->msgs_dup, wall);
	if (t.worker_failed && !t.have_fail)
		return 1;
	if (t.have_fail) {
		char cmd[512];
		replay_cmd(t.first_fail_seed, cmd, sizeof(cmd));
		printf("FIRST FAILURE: seed %" PRIu64 " check %s at %.6f s: %s\n  replay: %s\n",
		       t.first_fail_seed, t.first_check, (double)t.first_fail_time / 1e6,
		       t.first_msg, cmd);
		return 1;
	}
	return 0;
}
