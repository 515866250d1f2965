/*
 * chaos_causal: the causal workload of `spectra chaos`. See
 * chaos_causal.h.
 *
 * A session thread holds one connection at a time. Each operation is
 * pipelined with SESSION TOKEN, so the token is fresh without a round
 * trip of its own. A connection with any error (a timeout included, so
 * that a late reply is never read as the next one's) is dropped, and the
 * session resumes on another node.
 */
#include "chaos_causal.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RECONNECT_MS   20  /* pause after a failed connect or resume */
#define FINAL_PAUSE_MS 250 /* between attempts of one final read */
#define HOP_MIN	       5   /* a session hops every HOP_MIN..HOP_MAX ops */
#define HOP_MAX	       20
#define TOKEN_MAX      1024 /* bytes of a session token, with its NUL */
#define VECTOR_MAX     CHAOS_MAX_NODES

struct chaos_cz_worker {
	struct chaos_cz_workload *w;
	size_t index;
	pthread_t thread;
	uint64_t rng;
	redisContext *conn; /* NULL between hops */
	size_t node;	    /* the node conn is to, or was last */
	bool been_somewhere;
	uint64_t process, connections;
	uint32_t gen, seq;
	unsigned until_hop;
	char token[TOKEN_MAX]; /* "" until the first one */
	struct chaos_cz_op *ops;
	size_t nops, cap;
	struct chaos_stats stats;
	uint64_t hops;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint64_t now_us(uint64_t t0_ns)
{
	uint64_t ns = sp_mono_ns(sp_clock_system());
	return ns > t0_ns ? (ns - t0_ns) / 1000 : 0;
}

static uint64_t mono_ms(void)
{
	return sp_mono_ns(sp_clock_system()) / 1000000;
}

static void key_name(size_t i, char *out, size_t outlen)
{
	snprintf(out, outlen, CHAOS_CZ_KEYSPACE ":%zu", i);
}

/* ---- the history -------------------------------------------------------- */

void chaos_cz_history_free(struct chaos_cz_history *h)
{
	free(h->ops);
	memset(h, 0, sizeof(*h));
}

/* json_string writes s as a JSON string: values come from the server, so
 * quotes, backslashes and control bytes are escaped. */
static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

int chaos_cz_history_write(const struct chaos_cz_history *h, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	char key[32];
	for (size_t i = 0; i < h->n; i++) {
		const struct chaos_cz_op *op = &h->ops[i];
		key_name(op->key, key, sizeof(key));
		fprintf(f,
			"{\"process\":%" PRIu64 ",\"session\":\"s%" PRIu32 ".%" PRIu32
			"\",\"node\":%u,\"op\":\"%s\",\"key\":\"%s\",\"value\":",
			op->process, op->session, op->gen, op->node + 1u,
			op->write ? "write" : "read", key);
		if (op->has_value)
			json_string(f, op->value);
		else
			fputs("null", f);
		fprintf(f, ",\"invoke\":%" PRIu64 ",\"complete\":%" PRIu64 ",\"result\":\"%s\"}\n",
			op->call_us, op->ret_us,
			op->outcome == LIN_OK	  ? "ok"
			: op->outcome == LIN_FAIL ? "fail"
						  : "info");
	}
	int rc = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

size_t chaos_cz_corrupt(struct chaos_cz_history *h, char *what, size_t whatlen)
{
	snprintf(what, whatlen, "nothing to corrupt");
	for (size_t i = 0; i < h->n; i++) {
		const struct chaos_cz_op *w = &h->ops[i];
		if (!w->write || w->outcome != LIN_OK)
			continue;
		/* The same session's next ok read of the key, before the
		 * session ends (ops of one session are contiguous). */
		for (size_t j = i + 1; j < h->n; j++) {
			struct chaos_cz_op *r = &h->ops[j];
			if (r->session != w->session || r->gen != w->gen)
				break;
			if (r->write || r->outcome != LIN_OK || r->key != w->key)
				continue;
			snprintf(what, whatlen,
				 "session s%" PRIu32 ".%" PRIu32 " wrote %s to " CHAOS_CZ_KEYSPACE
				 ":%" PRIu32 ", then its read of it (op %zu) now returns nil",
				 w->session, w->gen, w->value, w->key, j);
			r->has_value = 0;
			r->value[0] = '\0';
			return j;
		}
	}
	return SIZE_MAX;
}

/* ---- one operation -------------------------------------------------------- */

static void push_op(struct chaos_cz_worker *wk, const struct chaos_cz_op *op)
{
	if (wk->nops == wk->cap) {
		wk->cap = wk->cap ? 2 * wk->cap : 256;
		wk->ops = sp_realloc(wk->ops, wk->cap * sizeof(*wk->ops));
	}
	wk->ops[wk->nops++] = *op;
}

static void drop_conn(struct chaos_cz_worker *wk)
{
	if (wk->conn) {
		redisFree(wk->conn);
		wk->conn = NULL;
	}
}

/*
 * classify reads the reply r (NULL: none) to a SET (write) or GET into
 * op, and counts what it was.
 */
static void classify(struct chaos_cz_worker *wk, struct chaos_cz_op *op, const redisReply *r)
{
	if (!r) {
		op->outcome = LIN_UNKNOWN;
		wk->stats.no_reply++;
	} else if (r->type == REDIS_REPLY_ERROR) {
		op->outcome = LIN_FAIL; /* -TRYAGAIN and the like: nothing was done */
		chaos_stats_count_error(&wk->stats, r->str, r->len);
	} else if (op->write && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0) {
		op->outcome = LIN_OK;
	} else if (!op->write && r->type == REDIS_REPLY_NIL) {
		op->outcome = LIN_OK;
		op->has_value = 0;
	} else if (!op->write && r->type == REDIS_REPLY_STRING && r->len < CHAOS_CZ_VALUE_MAX &&
		   strlen(r->str) == r->len) {
		op->outcome = LIN_OK;
		op->has_value = 1;
		memcpy(op->value, r->str, r->len + 1);
	} else {
		/* A shape the contract does not name: the outcome is unknown. */
		op->outcome = LIN_UNKNOWN;
		wk->stats.surprises++;
	}
}

/* one_op sends one SET or GET with SESSION TOKEN behind it, records the
 * op and keeps the token. */
static void one_op(struct chaos_cz_worker *wk)
{
	const struct chaos_cz_config *cfg = &wk->w->cfg;
	struct chaos_cz_op op = {.process = wk->process,
				 .session = (uint32_t)wk->index,
				 .gen = wk->gen,
				 .key = (uint32_t)chaos_rand_below(&wk->rng, cfg->keys),
				 .node = (uint8_t)wk->node};
	op.write = chaos_rand_below(&wk->rng, 2) == 0;
	char key[32];
	key_name(op.key, key, sizeof(key));
	if (op.write) {
		op.has_value = 1;
		snprintf(op.value, sizeof(op.value), "s%zu-%" PRIu32, wk->index, ++wk->seq);
	}
	const char *argv[] = {op.write ? "SET" : "GET", key, op.value};
	const char *tok[] = {"SESSION", "TOKEN"};
	redisReply *r = NULL, *t = NULL;
	op.call_us = now_us(cfg->t0_ns);
	redisAppendCommandArgv(wk->conn, op.write ? 3 : 2, argv, NULL);
	redisAppendCommandArgv(wk->conn, 2, tok, NULL);
	if (redisGetReply(wk->conn, (void **)&r) != REDIS_OK)
		r = NULL;
	op.ret_us = now_us(cfg->t0_ns);
	if (r && redisGetReply(wk->conn, (void **)&t) != REDIS_OK)
		t = NULL;
	classify(wk, &op, r);
	int k = op.write ? LIN_WRITE : LIN_READ;
	wk->stats.invoked[k]++;
	wk->stats.outcome[k][op.outcome]++;
	push_op(wk, &op);

	bool fresh = t && (t->type == REDIS_REPLY_STRING || t->type == REDIS_REPLY_STATUS) &&
		     t->len > 0 && t->len < sizeof(wk->token);
	if (fresh) {
		memcpy(wk->token, t->str, t->len + 1);
	} else if (r && op.outcome == LIN_OK) {
		/* What this op saw or did is in no token we hold: carrying on
		 * under the same name would claim an order the server was never
		 * told of, so go on as a new session (from the last token). */
		wk->gen++;
		if (t && t->type == REDIS_REPLY_ERROR)
			chaos_stats_count_error(&wk->stats, t->str, t->len);
		drop_conn(wk);
	}
	/* A write of unknown outcome may yet take effect, after everything
	 * the session did before it, but the token we resume with does not
	 * cover it: the session's later writes are not ordered after it.
	 * The history must not claim they are, so a new session name. */
	if (op.write && op.outcome == LIN_UNKNOWN)
		wk->gen++;
	if (r)
		freeReplyObject(r);
	if (t)
		freeReplyObject(t);
}

/* hop connects the session to a node other than its last (when there is
 * another) and resumes it there. Returns false when it could not. */
static bool hop(struct chaos_cz_worker *wk)
{
	const struct chaos_cz_config *cfg = &wk->w->cfg;
	char err[256];
	size_t node = (size_t)chaos_rand_below(&wk->rng, cfg->nnodes);
	if (wk->been_somewhere && cfg->nnodes > 1 && node == wk->node)
		node =
		    (node + 1 + (size_t)chaos_rand_below(&wk->rng, cfg->nnodes - 1)) % cfg->nnodes;
	wk->node = node;
	wk->been_somewhere = true;
	wk->conn = local_node_connect(&cfg->nodes[node], cfg->op_timeout_ms, err, sizeof(err));
	if (!wk->conn) {
		wk->stats.connect_failures++;
		return false;
	}
	wk->connections++;
	wk->process = wk->index + 1 + cfg->sessions * wk->connections;
	if (wk->token[0]) {
		const char *argv[] = {"SESSION", "RESUME", wk->token};
		redisReply *r = redisCommandArgv(wk->conn, 3, argv, NULL);
		bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
		if (r && r->type == REDIS_REPLY_ERROR)
			chaos_stats_count_error(&wk->stats, r->str, r->len);
		if (r)
			freeReplyObject(r);
		if (!ok) {
			drop_conn(wk);
			return false;
		}
	}
	wk->hops++;
	wk->until_hop = HOP_MIN + (unsigned)chaos_rand_below(&wk->rng, HOP_MAX - HOP_MIN + 1);
	return true;
}

static void *worker_main(void *arg)
{
	struct chaos_cz_worker *wk = arg;
	while (!atomic_load(&wk->w->stop)) {
		if (!wk->conn && !hop(wk)) {
			sleep_ms(RECONNECT_MS);
			continue;
		}
		one_op(wk);
		/* After a timeout or a broken connection a late reply must not
		 * be read as the next op's, and the node may be gone: hop. */
		if (wk->conn && (wk->conn->err || --wk->until_hop == 0))
			drop_conn(wk);
	}
	drop_conn(wk);
	return NULL;
}

/* ---- the workload ------------------------------------------------------- */

int chaos_cz_workload_start(struct chaos_cz_workload *w, const struct chaos_cz_config *cfg)
{
	memset(w, 0, sizeof(*w));
	atomic_init(&w->stop, false);
	if (cfg->sessions == 0 || cfg->keys == 0 || cfg->nnodes == 0 ||
	    cfg->nnodes > CHAOS_MAX_NODES || cfg->keys > UINT32_MAX)
		return SP_ERR_INVAL;
	w->cfg = *cfg;
	w->workers = sp_calloc(cfg->sessions, sizeof(*w->workers));
	uint64_t seeder = cfg->seed;
	for (size_t i = 0; i < cfg->sessions; i++) {
		w->workers[i].w = w;
		w->workers[i].index = i;
		w->workers[i].rng = chaos_rand(&seeder);
	}
	for (size_t i = 0; i < cfg->sessions; i++) {
		int rc = pthread_create(&w->workers[i].thread, NULL, worker_main, &w->workers[i]);
		if (rc != 0) {
			chaos_cz_workload_stop(w);
			return -rc;
		}
		w->started++;
	}
	return 0;
}

void chaos_cz_workload_stop(struct chaos_cz_workload *w)
{
	atomic_store(&w->stop, true);
	for (size_t i = 0; i < w->started; i++)
		pthread_join(w->workers[i].thread, NULL);
	w->started = 0;
}

void chaos_cz_workload_collect(struct chaos_cz_workload *w, struct chaos_cz_history *out,
			       struct chaos_stats *stats, uint64_t *hops)
{
	size_t sessions = w->workers ? w->cfg.sessions : 0, total = 0;
	for (size_t i = 0; i < sessions; i++)
		total += w->workers[i].nops;
	out->n = total;
	out->ops = sp_malloc((total ? total : 1) * sizeof(*out->ops));
	*hops = 0;
	size_t at = 0;
	for (size_t i = 0; i < sessions; i++) {
		struct chaos_cz_worker *wk = &w->workers[i];
		if (wk->nops)
			memcpy(out->ops + at, wk->ops, wk->nops * sizeof(*wk->ops));
		at += wk->nops;
		free(wk->ops);
		wk->ops = NULL;
		wk->nops = wk->cap = 0;
		chaos_stats_add(stats, &wk->stats);
		memset(&wk->stats, 0, sizeof(wk->stats));
		*hops += wk->hops;
	}
}

void chaos_cz_workload_close(struct chaos_cz_workload *w)
{
	if (!w->workers)
		return;
	chaos_cz_workload_stop(w);
	for (size_t i = 0; i < w->cfg.sessions; i++)
		free(w->workers[i].ops);
	free(w->workers);
	w->workers = NULL;
}

/* ---- setting up ---------------------------------------------------------- */

static bool local_read_ok(const redisReply *r)
{
	return r->type == REDIS_REPLY_NIL || r->type == REDIS_REPLY_STRING;
}

int chaos_cz_create_keyspace(const struct local_node_addr *nodes, size_t nnodes,
			     unsigned timeout_ms, double wait_s, char *err, size_t errlen)
{
	char key[32];
	key_name(0, key, sizeof(key));
	const char *create[] = {"KEYSPACE", "CREATE", CHAOS_CZ_KEYSPACE, "MODE", "causal"};
	/* Each node has applied the keyspace once a local read of one of its
	 * keys answers (a local level exists only for causal keys). */
	const char *probe[] = {"LEVEL", "local", "GET", key};
	return local_node_create_keyspace(nodes, nnodes, create, 5, probe, 4, local_read_ok,
					  timeout_ms, wait_s, err, errlen);
}

/* ---- convergence ---------------------------------------------------------- */

/* One node's applied vector: counts by origin node id, absent ids 0. */
struct applied_vector {
	uint64_t id[VECTOR_MAX], count[VECTOR_MAX];
	size_t n;
	char text[512]; /* as the node gave it */
};

/* parse_vector reads "{1:5,2:3}" (up to a line's end). Entries of count 0
 * are dropped, and the rest sorted by id, so equal vectors compare equal
 * however they are printed. */
static bool parse_vector(const char *p, struct applied_vector *v)
{
	size_t len = strcspn(p, "\r\n");
	snprintf(v->text, sizeof(v->text), "%.*s", (int)len, p);
	v->n = 0;
	if (*p != '{')
		return false;
	p++;
	while (*p && *p != '}') {
		char *end;
		errno = 0;
		unsigned long long id = strtoull(p, &end, 10);
		if (errno || end == p || *end != ':')
			return false;
		p = end + 1;
		unsigned long long count = strtoull(p, &end, 10);
		if (errno || end == p)
			return false;
		p = *end == ',' ? end + 1 : end;
		if (count == 0)
			continue;
		if (v->n == VECTOR_MAX)
			return false;
		size_t at = v->n++;
		while (at > 0 && v->id[at - 1] > id) {
			v->id[at] = v->id[at - 1];
			v->count[at] = v->count[at - 1];
			at--;
		}
		v->id[at] = id;
		v->count[at] = count;
	}
	return *p == '}';
}

static bool same_vector(const struct applied_vector *a, const struct applied_vector *b)
{
	return a->n == b->n && memcmp(a->id, b->id, a->n * sizeof(a->id[0])) == 0 &&
	       memcmp(a->count, b->count, a->n * sizeof(a->count[0])) == 0;
}

/* read_vector asks a node for INFO causal. */
static bool read_vector(const struct local_node_addr *a, unsigned timeout_ms,
			struct applied_vector *v, char *why, size_t whylen)
{
	char err[256], at[300];
	redisContext *ctx = local_node_connect(a, timeout_ms, err, sizeof(err));
	if (!ctx) {
		snprintf(why, whylen, "%s: %s", local_node_addr_text(a, at, sizeof(at)), err);
		return false;
	}
	redisReply *r = redisCommand(ctx, "INFO causal");
	const char *line =
	    r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "causal_applied:") : NULL;
	bool ok = line && parse_vector(line + strlen("causal_applied:"), v);
	if (!ok) {
		local_node_reply_text(r, ctx, err, sizeof(err));
		snprintf(why, whylen, "%s: no causal_applied in INFO causal (%.120s)",
			 local_node_addr_text(a, at, sizeof(at)), err);
	}
	if (r)
		freeReplyObject(r);
	redisFree(ctx);
	return ok;
}

int chaos_cz_wait_converged(const struct local_node_addr *nodes, size_t nnodes, uint64_t since_ns,
			    unsigned timeout_ms, unsigned poll_ms, unsigned settle_ms,
			    uint64_t *elapsed_ms, char *why, size_t whylen)
{
	if (nnodes == 0 || nnodes > CHAOS_MAX_NODES)
		return SP_ERR_INVAL;
	uint64_t since_ms = since_ns / 1000000;
	struct applied_vector *cur = sp_calloc(nnodes, sizeof(*cur));
	struct applied_vector streak_vec = {0};
	bool streak = false;
	uint64_t streak_ms = 0;
	int rc = SP_ERR_AGAIN;
	snprintf(why, whylen, "no poll made");
	for (;;) {
		uint64_t t = mono_ms();
		bool agree = true;
		for (size_t i = 0; i < nnodes && agree; i++) {
			if (!read_vector(&nodes[i], 1000, &cur[i], why, whylen)) {
				agree = false;
			} else if (i > 0 && !same_vector(&cur[0], &cur[i])) {
				snprintf(why, whylen, "node 1 applied %s, node %zu applied %s",
					 cur[0].text, i + 1, cur[i].text);
				agree = false;
			}
		}
		if (agree && streak && same_vector(&streak_vec, &cur[0])) {
			if (t - streak_ms >= settle_ms) {
				*elapsed_ms = streak_ms > since_ms ? streak_ms - since_ms : 0;
				rc = 0;
				break;
			}
		} else if (agree) {
			streak = true;
			streak_ms = t;
			streak_vec = cur[0];
		} else {
			streak = false;
		}
		if (!streak && t > since_ms + timeout_ms)
			break;
		sleep_ms(poll_ms);
	}
	free(cur);
	return rc;
}

/* final_read reads key at LEVEL local from ctx into value (nil: ""),
 * trying `attempts` times. */
static bool final_read(redisContext **ctx, const struct local_node_addr *a, const char *key,
		       unsigned timeout_ms, int attempts, bool *nil, char *value, size_t vlen)
{
	const char *argv[] = {"LEVEL", "local", "GET", key};
	char err[256];
	for (int i = 0; i < attempts; i++) {
		if (i > 0)
			sleep_ms(FINAL_PAUSE_MS);
		if (!*ctx)
			*ctx = local_node_connect(a, timeout_ms, err, sizeof(err));
		if (!*ctx)
			continue;
		redisReply *r = redisCommandArgv(*ctx, 4, argv, NULL);
		bool ok = r && (r->type == REDIS_REPLY_NIL || r->type == REDIS_REPLY_STRING);
		if (ok) {
			*nil = r->type == REDIS_REPLY_NIL;
			snprintf(value, vlen, "%.*s", *nil ? 0 : (int)r->len, *nil ? "" : r->str);
		}
		if (r)
			freeReplyObject(r);
		if ((*ctx)->err) {
			redisFree(*ctx);
			*ctx = NULL;
		}
		if (ok)
			return true;
	}
	return false;
}

size_t chaos_cz_final_agree(const struct local_node_addr *nodes, size_t nnodes, size_t keys,
			    unsigned timeout_ms, int attempts, size_t *failed)
{
	redisContext **ctx = sp_calloc(nnodes, sizeof(*ctx));
	size_t bad = 0;
	char key[32], first[256], value[256];
	*failed = 0;
	for (size_t k = 0; k < keys; k++) {
		key_name(k, key, sizeof(key));
		bool have = false, first_nil = false, differ = false;
		size_t first_node = 0;
		for (size_t i = 0; i < nnodes; i++) {
			bool nil;
			if (!final_read(&ctx[i], &nodes[i], key, timeout_ms, attempts, &nil, value,
					sizeof(value))) {
				(*failed)++;
				if (!differ && bad == 0)
					printf("  final:   %s at LEVEL local from node %zu: no "
					       "answer\n",
					       key, i + 1);
				differ = true;
				continue;
			}
			if (!have) {
				have = true;
				first_nil = nil;
				first_node = i;
				snprintf(first, sizeof(first), "%s", value);
				continue;
			}
			if (nil == first_nil && strcmp(first, value) == 0)
				continue;
			if (!differ && bad == 0)
				printf(
				    "  disagreement: %s at LEVEL local: node %zu has %s%s%s, node "
				    "%zu has %s%s%s\n",
				    key, first_node + 1, first_nil ? "nil" : "\"",
				    first_nil ? "" : first, first_nil ? "" : "\"", i + 1,
				    nil ? "nil" : "\"", nil ? "" : value, nil ? "" : "\"");
			differ = true;
		}
		bad += differ;
	}
	for (size_t i = 0; i < nnodes; i++)
		if (ctx[i])
			redisFree(ctx[i]);
	free(ctx);
	return bad;
}

/* ---- the checker ----------------------------------------------------------- */

enum chaos_cz_check chaos_cz_run_checker(const char *history_path, const char *out_path)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return CHAOS_CZ_CHECK_ERROR;
	exe[n] = '\0';
	int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return CHAOS_CZ_CHECK_ERROR;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		close(fd);
		return CHAOS_CZ_CHECK_ERROR;
	}
	if (pid == 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		char *argv[] = {exe, "check", "--model", "causal", (char *)history_path, NULL};
		/* /proc/self/exe, not the path: the binary may have been
		 * replaced on disk (a rebuild) while the run went on. */
		execv("/proc/self/exe", argv);
		execv(exe, argv);
		_exit(127);
	}
	close(fd);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return CHAOS_CZ_CHECK_ERROR;

	/* Show what it said, and see whether it knew --model at all. */
	bool unknown_flag = false;
	FILE *f = fopen(out_path, "r");
	if (f) {
		char line[1024];
		while (fgets(line, sizeof(line), f)) {
			printf("  checker: %s", line);
			if (line[0] && line[strlen(line) - 1] != '\n')
				printf("\n");
			if (strstr(line, "unknown flag") && strstr(line, "model"))
				unknown_flag = true;
		}
		fclose(f);
	}
	if (!WIFEXITED(status))
		return CHAOS_CZ_CHECK_ERROR;
	switch (WEXITSTATUS(status)) {
	case 0:
		return CHAOS_CZ_CHECK_OK;
	case 1:
		return CHAOS_CZ_CHECK_VIOLATION;
	case 64:
		return unknown_flag ? CHAOS_CZ_CHECK_UNAVAILABLE : CHAOS_CZ_CHECK_BAD_INPUT;
	default:
		return CHAOS_CZ_CHECK_ERROR;
	}
}
