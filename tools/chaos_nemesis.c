/*
 * chaos_nemesis: the fault injector of `spectra chaos`. See chaos_nemesis.h.
 *
 * The thread wakes every TICK_MS, undoes the faults whose time has come,
 * injects a new one when the interval has passed, and then reconciles
 * what each running node has been told about the network with what the
 * partition in force (if any) wants it to hold.
 */
#include "chaos_nemesis.h"

#include "common/clock.h"
#include "common/err.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define TICK_MS		50
#define NET_TIMEOUT_MS	1000 /* DEBUG NET to a running node answers at once */
#define INFO_TIMEOUT_MS 300  /* CLUSTER INFO, to find the leader */
#define RETRY_MS	1000 /* a failed restart is tried again after this */

static uint64_t now_us(const struct chaos_nemesis *nm)
{
	uint64_t ns = sp_mono_ns(sp_clock_system());
	return ns > nm->cfg.t0_ns ? (ns - nm->cfg.t0_ns) / 1000 : 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint64_t node_id(const struct chaos_nemesis *nm, size_t i)
{
	return nm->cfg.lc->cf.nodes[i].id;
}

/* vlog writes one event to the log file and, unless file_only, stdout. */
static void vlog(struct chaos_nemesis *nm, bool file_only, const char *fmt, va_list ap)
{
	char text[1024], stamp[64];
	vsnprintf(text, sizeof(text), fmt, ap);

	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	size_t len = strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	snprintf(stamp + len, sizeof(stamp) - len, ".%03d", (int)(tv.tv_usec / 1000));
	double t = (double)now_us(nm) / 1e6;

	pthread_mutex_lock(&nm->log_lock);
	if (!file_only) {
		printf("[%9.3fs %s] nemesis: %s\n", t, stamp, text);
		fflush(stdout);
	}
	if (nm->cfg.log) {
		fprintf(nm->cfg.log, "%.6f %s %s\n", t, stamp, text);
		fflush(nm->cfg.log);
	}
	pthread_mutex_unlock(&nm->log_lock);
}

void chaos_nemesis_logf(struct chaos_nemesis *nm, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(nm, false, fmt, ap);
	va_end(ap);
}

/* detail logs what only the log file needs: each command sent. */
__attribute__((format(printf, 2, 3))) static void detail(struct chaos_nemesis *nm, const char *fmt,
							 ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(nm, true, fmt, ap);
	va_end(ap);
}

/* ids_text writes the ids of the nodes in set, separated by sep. */
static const char *ids_text(const struct chaos_nemesis *nm, uint64_t set, const char *sep,
			    char *out, size_t outlen)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < nm->n && len < outlen; i++)
		if (set & (1ull << i))
			len += (size_t)snprintf(out + len, outlen - len, "%s%llu", len ? sep : "",
						(unsigned long long)node_id(nm, i));
	return out;
}

static bool node_up(const struct chaos_nemesis *nm, size_t i)
{
	return !nm->nodes[i].killed && !nm->nodes[i].paused;
}

static uint64_t down_set(const struct chaos_nemesis *nm)
{
	uint64_t down = 0;
	for (size_t i = 0; i < nm->n; i++)
		if (!node_up(nm, i))
			down |= 1ull << i;
	return down;
}

/* ---- the network ------------------------------------------------------ */

/*
 * net_command sends node i "DEBUG NET HEAL" (drops == 0) or "DEBUG NET
 * PARTITION <ids of drops>" and says whether it answered +OK.
 */
static bool net_command(struct chaos_nemesis *nm, size_t i, uint64_t drops)
{
	struct local_node_addr a;
	char err[256];
	const char *argv[3 + CHAOS_MAX_NODES];
	char ids[CHAOS_MAX_NODES][24], list[CHAOS_MAX_NODES * 24];
	int argc = 0;
	argv[argc++] = "DEBUG";
	argv[argc++] = "NET";
	argv[argc++] = drops ? "PARTITION" : "HEAL";
	for (size_t j = 0; j < nm->n; j++) {
		if (!(drops & (1ull << j)))
			continue;
		snprintf(ids[j], sizeof(ids[j]), "%llu", (unsigned long long)node_id(nm, j));
		argv[argc++] = ids[j];
	}
	if (local_cluster_addr(nm->cfg.lc, node_id(nm, i), &a) != 0)
		return false;
	redisContext *ctx = local_node_connect(&a, NET_TIMEOUT_MS, err, sizeof(err));
	if (!ctx) {
		chaos_nemesis_logf(nm, "node %llu: cannot connect for DEBUG NET: %s",
				   (unsigned long long)node_id(nm, i), err);
		nm->command_failures++;
		return false;
	}
	redisReply *reply = redisCommandArgv(ctx, argc, argv, NULL);
	bool ok = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0;
	if (!ok) {
		chaos_nemesis_logf(nm, "node %llu: DEBUG NET %s: %s",
				   (unsigned long long)node_id(nm, i), argv[2],
				   !reply			      ? ctx->errstr
				   : reply->type == REDIS_REPLY_ERROR ? reply->str
								      : "unexpected reply");
		nm->command_failures++;
	} else
		detail(nm, "node %llu: DEBUG NET %s%s%s", (unsigned long long)node_id(nm, i),
		       argv[2], drops ? " " : "",
		       drops ? ids_text(nm, drops, " ", list, sizeof(list)) : "");
	if (reply)
		freeReplyObject(reply);
	redisFree(ctx);
	return ok;
}

/* reconcile tells every running node what the partition in force wants
 * it to drop, where what it holds differs or is not known. */
static void reconcile(struct chaos_nemesis *nm, bool force)
{
	const struct chaos_partition *p = nm->partitioned ? &nm->part : NULL;
	for (size_t i = 0; i < nm->n; i++) {
		struct chaos_nemesis_node *node = &nm->nodes[i];
		if (!node_up(nm, i) || (!force && node->net_retry_at_us > now_us(nm)))
			continue;
		uint64_t want = chaos_partition_drops(p, i);
		if (node->net_known && node->net_applied == want)
			continue;
		/* PARTITION adds to what a node drops: start from nothing
		 * unless it is known to drop nothing now. */
		if (!node->net_known || node->net_applied != 0) {
			if (!net_command(nm, i, 0)) {
				node->net_known = false;
				node->net_retry_at_us = now_us(nm) + RETRY_MS * 1000ull;
				continue;
			}
			node->net_known = true;
			node->net_applied = 0;
		}
		if (want && !net_command(nm, i, want)) {
			node->net_retry_at_us = now_us(nm) + RETRY_MS * 1000ull;
			continue;
		}
		node->net_applied = want;
	}
}

/* ---- the leader ---------------------------------------------------------- */

/* find_leader asks every running node for CLUSTER INFO and returns the
 * index of the leader a majority agrees on, or nm->n if none. */
static size_t find_leader(struct chaos_nemesis *nm)
{
	struct local_cluster_info infos[CHAOS_MAX_NODES];
	for (size_t i = 0; i < nm->n; i++) {
		memset(&infos[i], 0, sizeof(infos[i]));
		infos[i].id = node_id(nm, i);
		if (node_up(nm, i))
			(void)local_cluster_info(nm->cfg.lc, node_id(nm, i), &infos[i],
						 INFO_TIMEOUT_MS);
	}
	uint64_t leader = local_cluster_agreed_leader(infos, nm->n);
	for (size_t i = 0; leader && i < nm->n; i++)
		if (node_id(nm, i) == leader)
			return i;
	return nm->n;
}

/* ---- faults ---------------------------------------------------------- */

static void inject(struct chaos_nemesis *nm, uint64_t now)
{
	struct chaos_world w = {.n = nm->n,
				.down = down_set(nm),
				.partitioned = nm->partitioned,
				.part = nm->part,
				.leader = find_leader(nm)};
	struct chaos_choice c;
	if (chaos_choose_fault(nm->cfg.enabled, &w, &nm->rng, &c) != 0) {
		chaos_nemesis_logf(nm, "nothing can be injected now (down: %d, partitioned: %s)",
				   chaos_popcount(w.down), w.partitioned ? "yes" : "no");
		return;
	}
	char a[256], b[256], mid[256];
	uint64_t id = node_id(nm, c.target);
	const char *who = c.target == w.leader ? "the leader" : "a follower";
	if (w.leader >= w.n)
		who = "no leader known";
	struct chaos_nemesis_node *node = &nm->nodes[c.target];

	switch (c.fault) {
	case CHAOS_FAULT_KILL: {
		pid_t pid = local_cluster_pid(nm->cfg.lc, id);
		int rc = local_cluster_stop_node(nm->cfg.lc, id, true);
		if (rc != 0) {
			chaos_nemesis_logf(nm, "kill -9 node %llu failed: %s",
					   (unsigned long long)id, sp_strerror(rc));
			return;
		}
		node->killed = true;
		node->undo_at_us = now + (uint64_t)c.duration_ms * 1000;
		node->net_known = true; /* a restarted node drops nothing */
		node->net_applied = 0;
		chaos_nemesis_logf(nm, "kill -9 node %llu (pid %d, %s); restart in %.1fs",
				   (unsigned long long)id, (int)pid, who, c.duration_ms / 1e3);
		break;
	}
	case CHAOS_FAULT_PAUSE: {
		pid_t pid = local_cluster_pid(nm->cfg.lc, id);
		if (pid <= 0 || kill(pid, SIGSTOP) != 0) {
			chaos_nemesis_logf(nm, "SIGSTOP node %llu failed: %s",
					   (unsigned long long)id,
					   pid <= 0 ? "not running" : strerror(errno));
			return;
		}
		node->paused = true;
		node->undo_at_us = now + (uint64_t)c.duration_ms * 1000;
		chaos_nemesis_logf(nm, "SIGSTOP node %llu (pid %d, %s); resume in %.1fs",
				   (unsigned long long)id, (int)pid, who, c.duration_ms / 1e3);
		break;
	}
	case CHAOS_FAULT_PARTITION: {
		uint64_t all = nm->n >= 64 ? UINT64_MAX : (1ull << nm->n) - 1;
		uint64_t middle = all & ~(c.part.a | c.part.b);
		nm->partitioned = true;
		nm->part = c.part;
		nm->heal_at_us = now + (uint64_t)c.duration_ms * 1000;
		nm->splits[c.part.kind]++;
		chaos_nemesis_logf(
		    nm, "partition (%s) {%s} | {%s}%s%s%s; heal in %.1fs",
		    chaos_split_name(c.part.kind), ids_text(nm, c.part.a, ",", a, sizeof(a)),
		    ids_text(nm, c.part.b, ",", b, sizeof(b)), middle ? ", bridge {" : "",
		    middle ? ids_text(nm, middle, ",", mid, sizeof(mid)) : "", middle ? "}" : "",
		    c.duration_ms / 1e3);
		reconcile(nm, true);
		break;
	}
	case CHAOS_FAULT_COUNT:
		return;
	}
	nm->injected[c.fault]++;
}

/* restart brings a killed node back; false (logged) if it did not come up. */
static bool restart(struct chaos_nemesis *nm, size_t i)
{
	uint64_t id = node_id(nm, i);
	int rc = local_cluster_start_node(nm->cfg.lc, id, nm->cfg.node_args, nm->cfg.nnode_args,
					  nm->cfg.start_wait_s);
	if (rc != 0) {
		nm->restart_failures++;
		chaos_nemesis_logf(nm, "restart of node %llu FAILED (see its spectrad.log)",
				   (unsigned long long)id);
		return false;
	}
	nm->nodes[i].killed = false;
	nm->nodes[i].net_known = true;
	nm->nodes[i].net_applied = 0;
	chaos_nemesis_logf(nm, "restarted node %llu (pid %d)", (unsigned long long)id,
			   (int)local_cluster_pid(nm->cfg.lc, id));
	return true;
}

static bool resume(struct chaos_nemesis *nm, size_t i)
{
	uint64_t id = node_id(nm, i);
	pid_t pid = local_cluster_pid(nm->cfg.lc, id);
	if (pid <= 0 || kill(pid, SIGCONT) != 0) {
		chaos_nemesis_logf(nm, "SIGCONT node %llu failed: %s", (unsigned long long)id,
				   pid <= 0 ? "not running" : strerror(errno));
		return false;
	}
	nm->nodes[i].paused = false;
	chaos_nemesis_logf(nm, "SIGCONT node %llu (pid %d)", (unsigned long long)id, (int)pid);
	return true;
}

static void undo_due(struct chaos_nemesis *nm, uint64_t now)
{
	bool healed = false;
	for (size_t i = 0; i < nm->n; i++) {
		struct chaos_nemesis_node *node = &nm->nodes[i];
		if (node->killed && node->undo_at_us <= now && !restart(nm, i))
			node->undo_at_us = now_us(nm) + RETRY_MS * 1000ull;
		if (node->paused && node->undo_at_us <= now)
			(void)resume(nm, i);
	}
	if (nm->partitioned && nm->heal_at_us <= now) {
		nm->partitioned = false;
		healed = true;
		chaos_nemesis_logf(nm, "heal the partition");
	}
	if (healed)
		reconcile(nm, true);
}

/* next_interval_us is the interval, give or take a quarter, in µs. */
static uint64_t next_interval_us(struct chaos_nemesis *nm)
{
	uint64_t base = (uint64_t)nm->cfg.interval_ms * 1000;
	uint64_t spread = base / 2;
	return base - base / 4 + chaos_rand_below(&nm->rng, spread + 1);
}

static void *nemesis_main(void *arg)
{
	struct chaos_nemesis *nm = arg;
	uint64_t next_fault = now_us(nm) + next_interval_us(nm);
	while (!atomic_load(&nm->stop)) {
		uint64_t now = now_us(nm);
		undo_due(nm, now);
		if (nm->cfg.enabled && now >= next_fault) {
			inject(nm, now);
			next_fault = now_us(nm) + next_interval_us(nm);
		}
		reconcile(nm, false);
		sleep_ms(TICK_MS);
	}
	return NULL;
}

/* ---- the object ------------------------------------------------------ */

int chaos_nemesis_start(struct chaos_nemesis *nm, const struct chaos_nemesis_config *cfg)
{
	memset(nm, 0, sizeof(*nm));
	nm->cfg = *cfg;
	atomic_init(&nm->stop, false);
	pthread_mutex_init(&nm->log_lock, NULL);
	nm->n = cfg->lc->cf.n;
	if (nm->n > CHAOS_MAX_NODES)
		return SP_ERR_INVAL;
	nm->rng = cfg->seed;
	/* Nodes start knowing no partition: tell each once. */
	for (size_t i = 0; i < nm->n; i++)
		nm->nodes[i].net_known = false;
	int rc = pthread_create(&nm->thread, NULL, nemesis_main, nm);
	if (rc != 0)
		return -rc;
	nm->running = true;
	return 0;
}

void chaos_nemesis_stop(struct chaos_nemesis *nm)
{
	if (!nm->running)
		return;
	atomic_store(&nm->stop, true);
	pthread_join(nm->thread, NULL);
	nm->running = false;
}

int chaos_nemesis_heal_all(struct chaos_nemesis *nm)
{
	int rc = 0;
	for (size_t i = 0; i < nm->n; i++)
		if (nm->nodes[i].paused && !resume(nm, i))
			rc = -1;
	for (size_t i = 0; i < nm->n; i++) {
		if (!nm->nodes[i].killed)
			continue;
		bool up = false;
		for (int attempt = 0; attempt < 3 && !up; attempt++)
			up = restart(nm, i);
		if (!up)
			rc = -1;
	}
	if (nm->partitioned)
		chaos_nemesis_logf(nm, "heal the partition");
	nm->partitioned = false;
	/* HEAL everyone, whatever we believe they hold. */
	for (size_t i = 0; i < nm->n; i++)
		nm->nodes[i].net_known = false;
	reconcile(nm, true);
	for (size_t i = 0; i < nm->n; i++)
		if (node_up(nm, i) && !nm->nodes[i].net_known)
			rc = -1;
	chaos_nemesis_logf(nm, "healed: every node running, no partition%s",
			   rc ? " (with failures above)" : "");
	return rc;
}

void chaos_nemesis_close(struct chaos_nemesis *nm)
{
	chaos_nemesis_stop(nm);
	pthread_mutex_destroy(&nm->log_lock);
}
