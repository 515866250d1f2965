/*
 * chaos_eventual: the eventual workloads of `spectra chaos` and their
 * checks. See chaos_eventual.h.
 *
 * The client threads keep one connection per node, opened when first
 * needed and dropped after any error of the connection (a timeout
 * included, so that a late reply is never read as the next one's). The
 * checks index the history by (client, seq), which is what an element or
 * value names, so each final member costs one lookup.
 */
#include "chaos_eventual.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECONNECT_MS   20  /* pause after a failed connect, before the next op */
#define FINAL_PAUSE_MS 250 /* between attempts of one final read */
#define NEVER_WRITTEN  "never-written-by-chaos"

struct chaos_ev_worker {
	struct chaos_ev_workload *w;
	size_t index;
	pthread_t thread;
	uint64_t rng;
	redisContext *conns[CHAOS_MAX_NODES];
	struct chaos_ev_op *ops; /* ops[s - 1] is the op of seq s */
	size_t nops, cap;
	struct chaos_stats stats;
	/* Read-your-writes, per key, when writes and reads overlap. */
	bool check_own;
	int64_t *own_sum;   /* counter: this client's acknowledged increments */
	int64_t *own_ts;    /* lww: the timestamp of its last acknowledged write */
	uint32_t **own_add; /* set: the seqs of its acknowledged adds */
	size_t *nown_add, *capown_add;
	uint64_t stale;
	char stale_msg[256];
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

/* ---- names -------------------------------------------------------------- */

const char *chaos_ev_kind_name(enum chaos_ev_kind kind)
{
	switch (kind) {
	case CHAOS_EV_SET:
		return "set";
	case CHAOS_EV_COUNTER:
		return "counter";
	case CHAOS_EV_LWW:
		return "lww";
	}
	return "?";
}

const char *chaos_ev_level_name(enum chaos_ev_level level)
{
	switch (level) {
	case CHAOS_EV_ONE:
		return "one";
	case CHAOS_EV_QUORUM:
		return "quorum";
	case CHAOS_EV_ALL:
		return "all";
	}
	return "?";
}

int chaos_ev_parse_kind(const char *text, enum chaos_ev_kind *out)
{
	for (int k = CHAOS_EV_SET; k <= CHAOS_EV_LWW; k++)
		if (strcmp(text, chaos_ev_kind_name((enum chaos_ev_kind)k)) == 0) {
			*out = (enum chaos_ev_kind)k;
			return 0;
		}
	return SP_ERR_INVAL;
}

int chaos_ev_parse_level(const char *text, enum chaos_ev_level *out)
{
	for (int l = CHAOS_EV_ONE; l <= CHAOS_EV_ALL; l++)
		if (strcmp(text, chaos_ev_level_name((enum chaos_ev_level)l)) == 0) {
			*out = (enum chaos_ev_level)l;
			return 0;
		}
	return SP_ERR_INVAL;
}

void chaos_ev_key_name(size_t i, char *out, size_t outlen)
{
	snprintf(out, outlen, CHAOS_EV_KEYSPACE ":%zu", i);
}

/* element_name writes the element or value of client's op seq. */
static void element_name(uint64_t client, uint64_t seq, char *out, size_t outlen)
{
	snprintf(out, outlen, "c%" PRIu64 "-%" PRIu64, client, seq);
}

/* parse_element reads "c<client>-<seq>" (len bytes, exactly). */
static bool parse_element(const char *p, size_t len, uint64_t *client, uint64_t *seq)
{
	char buf[48];
	if (len < 4 || len >= sizeof(buf) || p[0] != 'c')
		return false;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (strlen(buf) != len)
		return false;
	char *end;
	if (buf[1] < '0' || buf[1] > '9')
		return false;
	errno = 0;
	unsigned long long c = strtoull(buf + 1, &end, 10);
	if (errno || *end != '-' || end[1] < '0' || end[1] > '9')
		return false;
	unsigned long long s = strtoull(end + 1, &end, 10);
	if (errno || *end)
		return false;
	*client = c;
	*seq = s;
	return true;
}

/* ---- the history -------------------------------------------------------- */

const struct chaos_ev_op *chaos_ev_history_find(const struct chaos_ev_history *h, uint64_t client,
						uint64_t seq)
{
	if (client >= h->clients || seq == 0)
		return NULL;
	if (seq > h->first[client + 1] - h->first[client])
		return NULL;
	return &h->ops[h->first[client] + seq - 1];
}

void chaos_ev_history_free(struct chaos_ev_history *h)
{
	free(h->ops);
	free(h->first);
	memset(h, 0, sizeof(*h));
}

static const char *op_name(enum chaos_ev_kind kind, bool write)
{
	switch (kind) {
	case CHAOS_EV_SET:
		return write ? "add" : "members";
	case CHAOS_EV_COUNTER:
		return write ? "incr" : "get";
	case CHAOS_EV_LWW:
		return write ? "set" : "get";
	}
	return write ? "write" : "read";
}

static const char *outcome_name(int outcome)
{
	return outcome == LIN_OK ? "ok" : outcome == LIN_FAIL ? "fail" : "info";
}

int chaos_ev_history_write(const struct chaos_ev_history *h, enum chaos_ev_kind kind,
			   const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	char key[32], value[48];
	for (size_t i = 0; i < h->n; i++) {
		const struct chaos_ev_op *op = &h->ops[i];
		chaos_ev_key_name(op->key, key, sizeof(key));
		fprintf(f, "{\"process\":%" PRIu32 ",\"op\":\"%s\",\"key\":\"%s\"", op->client,
			op_name(kind, op->write), key);
		if (op->write && kind != CHAOS_EV_COUNTER) {
			element_name(op->client, op->seq, value, sizeof(value));
			fprintf(f, ",\"value\":\"%s\"", value);
		}
		if (op->write || op->outcome == LIN_OK)
			fprintf(f, ",\"n\":%" PRId64, op->n);
		fprintf(f,
			",\"invoke\":%" PRIu64 ",\"complete\":%" PRIu64
			",\"result\":\"%s\",\"node\":%u%s}\n",
			op->call_us, op->ret_us, outcome_name(op->outcome), op->node + 1u,
			op->stale ? ",\"stale\":true" : "");
	}
	int rc = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* ---- one operation -------------------------------------------------------- */

static bool is_array(const redisReply *r)
{
	return r->type == REDIS_REPLY_ARRAY;
}

/* lww_reply reads an LWW.GET answer: [value, timestamp, node]. */
static bool lww_reply(const redisReply *r, const redisReply **value, int64_t *ts, int64_t *node)
{
	if (!is_array(r) || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_INTEGER ||
	    r->element[2]->type != REDIS_REPLY_INTEGER)
		return false;
	*value = r->element[0];
	*ts = r->element[1]->integer;
	*node = r->element[2]->integer;
	return true;
}

/*
 * classify says what reply r (NULL: none came) to a write or read of kind
 * means, following the contract in the header, and sets *n to what an ok
 * reply carries (see struct chaos_ev_op) and *expected to whether r has a
 * shape the contract names.
 */
static enum lin_outcome classify(enum chaos_ev_kind kind, bool write, const redisReply *r,
				 int64_t *n, bool *expected)
{
	*expected = true;
	if (!r)
		return LIN_UNKNOWN;
	if (r->type == REDIS_REPLY_ERROR) {
		if (strncmp(r->str, "UNKNOWN", 7) == 0)
			return LIN_UNKNOWN;
		return LIN_FAIL; /* TRYAGAIN, or refused before it ran */
	}
	if (write) {
		if (r->type == REDIS_REPLY_INTEGER) {
			if (kind == CHAOS_EV_LWW)
				*n = r->integer;
			/* An element new in the run is a member added. */
			*expected = kind != CHAOS_EV_SET || r->integer == 1;
			return LIN_OK;
		}
	} else if (kind == CHAOS_EV_SET && is_array(r)) {
		*n = (int64_t)r->elements;
		return LIN_OK;
	} else if (kind == CHAOS_EV_COUNTER && r->type == REDIS_REPLY_INTEGER) {
		*n = r->integer;
		return LIN_OK;
	} else if (kind == CHAOS_EV_LWW) {
		const redisReply *v;
		int64_t node;
		if (r->type == REDIS_REPLY_NIL) {
			*n = 0;
			return LIN_OK;
		}
		if (lww_reply(r, &v, n, &node))
			return LIN_OK;
	}
	*expected = false;
	return LIN_UNKNOWN;
}

static void push_op(struct chaos_ev_worker *wk, const struct chaos_ev_op *op)
{
	if (wk->nops == wk->cap) {
		wk->cap = wk->cap ? 2 * wk->cap : 1024;
		wk->ops = sp_realloc(wk->ops, wk->cap * sizeof(*wk->ops));
	}
	wk->ops[wk->nops++] = *op;
}

static void note_stale(struct chaos_ev_worker *wk, struct chaos_ev_op *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note_stale(struct chaos_ev_worker *wk, struct chaos_ev_op *op, const char *fmt, ...)
{
	op->stale = 1;
	if (wk->stale++ == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(wk->stale_msg, sizeof(wk->stale_msg), fmt, ap);
		va_end(ap);
	}
}

/* check_own_set: a QUORUM read r of key must hold every element this
 * client added there with an acknowledgement. */
static void check_own_set(struct chaos_ev_worker *wk, struct chaos_ev_op *op, const redisReply *r)
{
	size_t nown = wk->nown_add[op->key];
	if (nown == 0)
		return;
	size_t bits = wk->nops + 2;
	uint8_t *seen = sp_calloc(bits / 8 + 1, 1);
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *m = r->element[i];
		uint64_t client, seq;
		if (m->type == REDIS_REPLY_STRING && parse_element(m->str, m->len, &client, &seq) &&
		    client == wk->index && seq < bits)
			seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
	}
	for (size_t i = 0; i < nown; i++) {
		uint32_t seq = wk->own_add[op->key][i];
		if (!(seen[seq / 8] & (1u << (seq % 8)))) {
			note_stale(wk, op,
				   "client %zu's QUORUM read of " CHAOS_EV_KEYSPACE
				   ":%u (op %u, node %u, at %.3f s) lacks c%zu-%u, which it "
				   "added with an acknowledgement",
				   wk->index, op->key, op->seq, op->node + 1u,
				   (double)op->call_us / 1e6, wk->index, seq);
			break;
		}
	}
	free(seen);
}

/* remember_own records an acknowledged write, and check_own checks an ok
 * read, for read-your-writes. */
static void remember_own(struct chaos_ev_worker *wk, const struct chaos_ev_op *op)
{
	uint32_t k = op->key;
	switch (wk->w->cfg.kind) {
	case CHAOS_EV_SET:
		if (wk->nown_add[k] == wk->capown_add[k]) {
			wk->capown_add[k] = wk->capown_add[k] ? 2 * wk->capown_add[k] : 256;
			wk->own_add[k] =
			    sp_realloc(wk->own_add[k], wk->capown_add[k] * sizeof(*wk->own_add[k]));
		}
		wk->own_add[k][wk->nown_add[k]++] = op->seq;
		break;
	case CHAOS_EV_COUNTER:
		wk->own_sum[k] += op->n;
		break;
	case CHAOS_EV_LWW:
		if (op->n > wk->own_ts[k])
			wk->own_ts[k] = op->n;
		break;
	}
}

static void check_own(struct chaos_ev_worker *wk, struct chaos_ev_op *op, const redisReply *r)
{
	uint32_t k = op->key;
	switch (wk->w->cfg.kind) {
	case CHAOS_EV_SET:
		check_own_set(wk, op, r);
		break;
	case CHAOS_EV_COUNTER:
		if (op->n < wk->own_sum[k])
			note_stale(wk, op,
				   "client %zu's QUORUM read of " CHAOS_EV_KEYSPACE
				   ":%u (op %u, node %u, at %.3f s) gave %" PRId64
				   ", less than the %" PRId64
				   " this client alone added with acknowledgements",
				   wk->index, k, op->seq, op->node + 1u, (double)op->call_us / 1e6,
				   op->n, wk->own_sum[k]);
		break;
	case CHAOS_EV_LWW:
		if (op->n < wk->own_ts[k])
			note_stale(wk, op,
				   "client %zu's QUORUM read of " CHAOS_EV_KEYSPACE
				   ":%u (op %u, node %u, at %.3f s) gave timestamp %" PRId64
				   ", older than its own acknowledged write's %" PRId64,
				   wk->index, k, op->seq, op->node + 1u, (double)op->call_us / 1e6,
				   op->n, wk->own_ts[k]);
		break;
	}
}

/* one_op issues one operation on ctx, node `node`, and records it. */
static void one_op(struct chaos_ev_worker *wk, redisContext *ctx, size_t node)
{
	const struct chaos_ev_config *cfg = &wk->w->cfg;
	struct chaos_ev_op op = {.client = (uint32_t)wk->index,
				 .seq = (uint32_t)(wk->nops + 1),
				 .key = (uint32_t)chaos_rand_below(&wk->rng, cfg->keys),
				 .node = (uint8_t)node};
	op.write = chaos_rand_below(&wk->rng, 100) >= CHAOS_EV_READ_PCT;
	char key[32], value[48], incr[24];
	chaos_ev_key_name(op.key, key, sizeof(key));
	element_name(op.client, op.seq, value, sizeof(value));
	const char *argv[5] = {"LEVEL",
			       chaos_ev_level_name(op.write ? cfg->write_level : CHAOS_EV_QUORUM)};
	int argc = 2;
	switch (cfg->kind) {
	case CHAOS_EV_SET:
		argv[argc++] = op.write ? "ORSET.ADD" : "ORSET.MEMBERS";
		argv[argc++] = key;
		if (op.write)
			argv[argc++] = value;
		break;
	case CHAOS_EV_COUNTER:
		argv[argc++] = op.write ? "COUNTER.INCR" : "COUNTER.GET";
		argv[argc++] = key;
		if (op.write) {
			op.n = 1 + (int64_t)chaos_rand_below(&wk->rng, 5);
			snprintf(incr, sizeof(incr), "%" PRId64, op.n);
			argv[argc++] = incr;
		}
		break;
	case CHAOS_EV_LWW:
		argv[argc++] = op.write ? "LWW.SET" : "LWW.GET";
		argv[argc++] = key;
		if (op.write)
			argv[argc++] = value;
		break;
	}

	op.call_us = now_us(cfg->t0_ns);
	redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
	op.ret_us = now_us(cfg->t0_ns);
	bool expected;
	int64_t n = op.n;
	op.outcome = (uint8_t)classify(cfg->kind, op.write, r, &n, &expected);
	if (op.outcome == LIN_OK)
		op.n = n;

	int k = op.write ? LIN_WRITE : LIN_READ;
	wk->stats.invoked[k]++;
	wk->stats.outcome[k][op.outcome]++;
	if (!r)
		wk->stats.no_reply++;
	else if (r->type == REDIS_REPLY_ERROR)
		chaos_stats_count_error(&wk->stats, r->str, r->len);
	else if (!expected)
		wk->stats.surprises++;

	if (op.outcome == LIN_OK && wk->check_own) {
		if (op.write)
			remember_own(wk, &op);
		else
			check_own(wk, &op, r);
	}
	push_op(wk, &op);
	if (r)
		freeReplyObject(r);
}

static void *worker_main(void *arg)
{
	struct chaos_ev_worker *wk = arg;
	const struct chaos_ev_config *cfg = &wk->w->cfg;
	char err[256];
	while (!atomic_load(&wk->w->stop)) {
		size_t node = (size_t)chaos_rand_below(&wk->rng, cfg->nnodes);
		if (!wk->conns[node]) {
			wk->conns[node] = local_node_connect(&cfg->nodes[node], cfg->op_timeout_ms,
							     err, sizeof(err));
			if (!wk->conns[node]) {
				wk->stats.connect_failures++;
				sleep_ms(RECONNECT_MS);
				continue;
			}
		}
		one_op(wk, wk->conns[node], node);
		/* After a timeout or a broken connection a late reply must not
		 * be read as the next op's: reconnect. */
		if (wk->conns[node]->err) {
			redisFree(wk->conns[node]);
			wk->conns[node] = NULL;
		}
	}
	for (size_t i = 0; i < cfg->nnodes; i++)
		if (wk->conns[i]) {
			redisFree(wk->conns[i]);
			wk->conns[i] = NULL;
		}
	return NULL;
}

/* ---- the workload ------------------------------------------------------- */

int chaos_ev_workload_start(struct chaos_ev_workload *w, const struct chaos_ev_config *cfg)
{
	memset(w, 0, sizeof(*w));
	atomic_init(&w->stop, false);
	if (cfg->clients == 0 || cfg->keys == 0 || cfg->nnodes == 0 ||
	    cfg->nnodes > CHAOS_MAX_NODES || cfg->kind < CHAOS_EV_SET || cfg->kind > CHAOS_EV_LWW ||
	    cfg->write_level < CHAOS_EV_ONE || cfg->write_level > CHAOS_EV_ALL ||
	    cfg->keys > UINT32_MAX)
		return SP_ERR_INVAL;
	w->cfg = *cfg;
	/* Reads at QUORUM (2 of 3 replicas) meet writes at QUORUM or ALL
	 * (R + W > N); a write at ONE may be on the one replica not asked. */
	bool overlap = cfg->write_level != CHAOS_EV_ONE;
	w->workers = sp_calloc(cfg->clients, sizeof(*w->workers));
	uint64_t seeder = cfg->seed;
	for (size_t i = 0; i < cfg->clients; i++) {
		struct chaos_ev_worker *wk = &w->workers[i];
		wk->w = w;
		wk->index = i;
		wk->rng = chaos_rand(&seeder);
		wk->check_own = overlap;
		wk->own_sum = sp_calloc(cfg->keys, sizeof(*wk->own_sum));
		wk->own_ts = sp_calloc(cfg->keys, sizeof(*wk->own_ts));
		wk->own_add = sp_calloc(cfg->keys, sizeof(*wk->own_add));
		wk->nown_add = sp_calloc(cfg->keys, sizeof(*wk->nown_add));
		wk->capown_add = sp_calloc(cfg->keys, sizeof(*wk->capown_add));
	}
	for (size_t i = 0; i < cfg->clients; i++) {
		int rc = pthread_create(&w->workers[i].thread, NULL, worker_main, &w->workers[i]);
		if (rc != 0) {
			chaos_ev_workload_stop(w);
			return -rc;
		}
		w->started++;
	}
	return 0;
}

void chaos_ev_workload_stop(struct chaos_ev_workload *w)
{
	atomic_store(&w->stop, true);
	for (size_t i = 0; i < w->started; i++)
		pthread_join(w->workers[i].thread, NULL);
	w->started = 0;
}

void chaos_ev_workload_collect(struct chaos_ev_workload *w, struct chaos_ev_history *out,
			       struct chaos_stats *stats)
{
	size_t clients = w->workers ? w->cfg.clients : 0, total = 0;
	for (size_t i = 0; i < clients; i++)
		total += w->workers[i].nops;
	out->clients = clients;
	out->n = total;
	out->ops = sp_malloc((total ? total : 1) * sizeof(*out->ops));
	out->first = sp_calloc(clients + 1, sizeof(*out->first));
	size_t at = 0;
	for (size_t i = 0; i < clients; i++) {
		struct chaos_ev_worker *wk = &w->workers[i];
		out->first[i] = at;
		if (wk->nops)
			memcpy(out->ops + at, wk->ops, wk->nops * sizeof(*wk->ops));
		at += wk->nops;
		free(wk->ops);
		wk->ops = NULL;
		wk->nops = wk->cap = 0;
		chaos_stats_add(stats, &wk->stats);
		memset(&wk->stats, 0, sizeof(wk->stats));
	}
	out->first[clients] = at;
}

uint64_t chaos_ev_workload_stale(const struct chaos_ev_workload *w, char *msg, size_t msglen)
{
	uint64_t stale = 0;
	if (msglen)
		msg[0] = '\0';
	for (size_t i = 0; w->workers && i < w->cfg.clients; i++) {
		const struct chaos_ev_worker *wk = &w->workers[i];
		if (wk->stale && stale == 0 && msglen)
			snprintf(msg, msglen, "%s", wk->stale_msg);
		stale += wk->stale;
	}
	return stale;
}

void chaos_ev_workload_close(struct chaos_ev_workload *w)
{
	if (!w->workers)
		return;
	chaos_ev_workload_stop(w);
	for (size_t i = 0; i < w->cfg.clients; i++) {
		struct chaos_ev_worker *wk = &w->workers[i];
		for (size_t k = 0; k < w->cfg.keys; k++)
			free(wk->own_add[k]);
		free(wk->own_add);
		free(wk->nown_add);
		free(wk->capown_add);
		free(wk->own_sum);
		free(wk->own_ts);
		free(wk->ops);
	}
	free(w->workers);
	w->workers = NULL;
}

/* ---- setting up ---------------------------------------------------------- */

static bool replicas_ok(const redisReply *r)
{
	return is_array(r);
}

int chaos_ev_create_keyspace(const struct local_node_addr *nodes, size_t nnodes,
			     unsigned timeout_ms, double wait_s, char *err, size_t errlen)
{
	char rf[8], key[32];
	snprintf(rf, sizeof(rf), "%d", CHAOS_EV_RF);
	chaos_ev_key_name(0, key, sizeof(key));
	const char *create[] = {"KEYSPACE", "CREATE", CHAOS_EV_KEYSPACE, "MODE", "eventual",
				"RF",	    rf};
	/* Each node has applied the keyspace once it names a key's replicas. */
	const char *probe[] = {"EVENTUAL", "REPLICAS", key};
	return local_node_create_keyspace(nodes, nnodes, create, 7, probe, 3, replicas_ok,
					  timeout_ms, wait_s, err, errlen);
}

/* ---- convergence ---------------------------------------------------------- */

int chaos_ev_parse_range(const char *text, size_t len, struct chaos_ev_range *out)
{
	char buf[128];
	if (len >= sizeof(buf))
		return SP_ERR_INVAL;
	memcpy(buf, text, len);
	buf[len] = '\0';
	unsigned rf;
	uint64_t token, root, keys;
	int used = 0;
	if (sscanf(buf, "%u %" SCNx64 " %" SCNx64 " %" SCNu64 "%n", &rf, &token, &root, &keys,
		   &used) != 4 ||
	    (size_t)used != len)
		return SP_ERR_INVAL;
	out->rf = rf;
	out->token = token;
	out->root = root;
	out->keys = keys;
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct chaos_ev_range *x = a, *y = b;
	if (x->rf != y->rf)
		return x->rf < y->rf ? -1 : 1;
	if (x->token != y->token)
		return x->token < y->token ? -1 : 1;
	if (x->node != y->node)
		return x->node < y->node ? -1 : 1;
	return 0;
}

size_t chaos_ev_count_diverged(struct chaos_ev_range *ranges, size_t n,
			       struct chaos_ev_range *first, struct chaos_ev_range *other)
{
	if (n)
		qsort(ranges, n, sizeof(*ranges), range_cmp);
	size_t diverged = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		bool differ = false;
		for (; j < n && ranges[j].rf == ranges[i].rf && ranges[j].token == ranges[i].token;
		     j++) {
			if (ranges[j].root != ranges[i].root && !differ) {
				differ = true;
				if (diverged == 0 && first) {
					*first = ranges[i];
					*other = ranges[j];
				}
			}
		}
		diverged += differ;
		i = j;
	}
	return diverged;
}

/* read_digest appends node's EVENTUAL DIGEST to *ranges. Returns false
 * (with why) when it gives none. */
static bool read_digest(redisContext *ctx, size_t node, struct chaos_ev_range **ranges, size_t *n,
			size_t *cap, char *why, size_t whylen)
{
	redisReply *r = redisCommand(ctx, "EVENTUAL DIGEST");
	if (!r || !is_array(r)) {
		char text[200];
		local_node_reply_text(r, ctx, text, sizeof(text));
		snprintf(why, whylen, "node %zu: EVENTUAL DIGEST: %s", node + 1, text);
		if (r)
			freeReplyObject(r);
		return false;
	}
	bool ok = true;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		struct chaos_ev_range rg = {.node = node};
		if (e->type != REDIS_REPLY_STRING || chaos_ev_parse_range(e->str, e->len, &rg)) {
			snprintf(why, whylen,
				 "node %zu: EVENTUAL DIGEST line %zu is not \"rf token "
				 "root keys\"",
				 node + 1, i + 1);
			ok = false;
			break;
		}
		if (*n == *cap) {
			*cap = *cap ? 2 * *cap : 1024;
			*ranges = sp_realloc(*ranges, *cap * sizeof(**ranges));
		}
		(*ranges)[(*n)++] = rg;
	}
	freeReplyObject(r);
	return ok;
}

static bool same_digests(const struct chaos_ev_range *a, size_t na, const struct chaos_ev_range *b,
			 size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].rf != b[i].rf || a[i].token != b[i].token || a[i].root != b[i].root ||
		    a[i].node != b[i].node)
			return false;
	return true;
}

int chaos_ev_wait_converged(const struct local_node_addr *nodes, size_t nnodes, uint64_t since_ns,
			    unsigned timeout_ms, unsigned poll_ms, unsigned settle_ms,
			    struct chaos_ev_convergence *out, char *why, size_t whylen)
{
	redisContext *conns[CHAOS_MAX_NODES] = {0};
	struct chaos_ev_range *ranges = NULL, *streak = NULL, first, other;
	size_t cap = 0, nstreak = 0, cap_streak = 0;
	uint64_t streak_ns = 0; /* 0: no streak of agreeing polls */
	int rc = SP_ERR_AGAIN;
	char err[256];
	memset(out, 0, sizeof(*out));
	out->first_ms = UINT64_MAX;
	snprintf(why, whylen, "no poll was made");
	if (nnodes > CHAOS_MAX_NODES)
		return SP_ERR_INVAL;
	for (;;) {
		uint64_t poll_ns = sp_mono_ns(sp_clock_system());
		size_t n = 0;
		bool all = true;
		for (size_t i = 0; i < nnodes && all; i++) {
			if (!conns[i])
				conns[i] = local_node_connect(&nodes[i], 1000, err, sizeof(err));
			if (!conns[i]) {
				snprintf(why, whylen, "node %zu: %s", i + 1, err);
				all = false;
				break;
			}
			all = read_digest(conns[i], i, &ranges, &n, &cap, why, whylen);
			if (conns[i]->err) {
				redisFree(conns[i]);
				conns[i] = NULL;
			}
		}
		out->polls++;
		uint64_t done_ns = sp_mono_ns(sp_clock_system());
		size_t diverged = all ? chaos_ev_count_diverged(ranges, n, &first, &other) : 1;
		if (all && diverged)
			snprintf(why, whylen,
				 "%zu ranges differ, e.g. rf %u token %016" PRIx64
				 ": node %zu has root %016" PRIx64 " (%" PRIu64
				 " keys), node %zu %016" PRIx64 " (%" PRIu64 " keys)",
				 diverged, first.rf, first.token, first.node + 1, first.root,
				 first.keys, other.node + 1, other.root, other.keys);
		if (diverged == 0 && streak_ns && same_digests(streak, nstreak, ranges, n)) {
			if (done_ns - streak_ns >= (uint64_t)settle_ms * 1000000) {
				rc = 0;
				break;
			}
		} else if (diverged == 0) {
			/* A first agreement, or one on other data than before. */
			if (streak_ns)
				out->unsettled++;
			streak_ns = done_ns;
			out->elapsed_ms = done_ns > since_ns ? (done_ns - since_ns) / 1000000 : 0;
			if (out->first_ms == UINT64_MAX)
				out->first_ms = out->elapsed_ms;
			/* Keep these digests as the streak's; poll into the other array. */
			struct chaos_ev_range *t = streak;
			size_t tcap = cap_streak;
			streak = ranges;
			cap_streak = cap;
			nstreak = n;
			ranges = t;
			cap = tcap;
			if (settle_ms == 0) {
				rc = 0;
				break;
			}
		} else if (streak_ns) {
			out->unsettled++;
			streak_ns = 0;
		}
		if (!streak_ns && done_ns >= since_ns + (uint64_t)timeout_ms * 1000000)
			break;
		uint64_t next = poll_ns + (uint64_t)poll_ms * 1000000;
		if (next > done_ns)
			sleep_ms((unsigned)((next - done_ns) / 1000000));
	}
	for (size_t i = 0; i < nnodes; i++)
		if (conns[i])
			redisFree(conns[i]);
	free(ranges);
	free(streak);
	return rc;
}

/* ---- final reads ------------------------------------------------------ */

void chaos_ev_state_free(struct chaos_ev_state *s)
{
	for (size_t i = 0; i < s->nmembers; i++)
		free(s->members[i]);
	free(s->members);
	free(s->lww_value);
	memset(s, 0, sizeof(*s));
}

static int member_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* to_state fills s from an ok reply r to a final read of kind. Returns
 * false when r is not of the expected shape. */
static bool to_state(enum chaos_ev_kind kind, const redisReply *r, struct chaos_ev_state *s)
{
	switch (kind) {
	case CHAOS_EV_SET:
		if (!is_array(r))
			return false;
		for (size_t i = 0; i < r->elements; i++)
			if (r->element[i]->type != REDIS_REPLY_STRING)
				return false;
		s->members = sp_calloc(r->elements ? r->elements : 1, sizeof(*s->members));
		for (size_t i = 0; i < r->elements; i++)
			s->members[i] = sp_memdup(r->element[i]->str, r->element[i]->len);
		s->nmembers = r->elements;
		if (s->nmembers)
			qsort(s->members, s->nmembers, sizeof(*s->members), member_cmp);
		break;
	case CHAOS_EV_COUNTER:
		if (r->type != REDIS_REPLY_INTEGER)
			return false;
		s->value = r->integer;
		break;
	case CHAOS_EV_LWW: {
		const redisReply *v;
		if (r->type == REDIS_REPLY_NIL) {
			s->nil = true;
			break;
		}
		if (!lww_reply(r, &v, &s->ts, &s->writer))
			return false;
		s->lww_value = sp_memdup(v->str, v->len);
		break;
	}
	}
	s->read = true;
	return true;
}

size_t chaos_ev_final_reads(enum chaos_ev_kind kind, const struct local_node_addr *nodes,
			    size_t nnodes, size_t keys, unsigned timeout_ms, int attempts,
			    struct chaos_ev_state *states)
{
	static const char *const cmd[] = {[CHAOS_EV_SET] = "ORSET.MEMBERS",
					  [CHAOS_EV_COUNTER] = "COUNTER.GET",
					  [CHAOS_EV_LWW] = "LWW.GET"};
	size_t ok = 0;
	char err[256], key[32];
	for (size_t i = 0; i < nnodes; i++) {
		redisContext *ctx = NULL;
		for (size_t k = 0; k < keys; k++) {
			chaos_ev_key_name(k, key, sizeof(key));
			const char *argv[] = {"LEVEL", "all", cmd[kind], key};
			struct chaos_ev_state *s = &states[i * keys + k];
			for (int attempt = 0; attempt < attempts && !s->read; attempt++) {
				if (attempt > 0)
					sleep_ms(FINAL_PAUSE_MS);
				if (!ctx)
					ctx = local_node_connect(&nodes[i], timeout_ms, err,
								 sizeof(err));
				if (!ctx)
					continue;
				redisReply *r = redisCommandArgv(ctx, 4, argv, NULL);
				if (r && r->type != REDIS_REPLY_ERROR && !to_state(kind, r, s))
					chaos_ev_state_free(s);
				if (r)
					freeReplyObject(r);
				if (ctx->err) {
					redisFree(ctx);
					ctx = NULL;
				}
			}
			ok += s->read;
		}
		if (ctx)
			redisFree(ctx);
	}
	return ok;
}

bool chaos_ev_state_equal(enum chaos_ev_kind kind, const struct chaos_ev_state *a,
			  const struct chaos_ev_state *b)
{
	switch (kind) {
	case CHAOS_EV_SET:
		if (a->nmembers != b->nmembers)
			return false;
		for (size_t i = 0; i < a->nmembers; i++)
			if (strcmp(a->members[i], b->members[i]) != 0)
				return false;
		return true;
	case CHAOS_EV_COUNTER:
		return a->value == b->value;
	case CHAOS_EV_LWW:
		if (a->nil || b->nil)
			return a->nil == b->nil;
		return a->ts == b->ts && a->writer == b->writer &&
		       strcmp(a->lww_value, b->lww_value) == 0;
	}
	return false;
}

/* hlc_text writes the wall-clock time of an HLC timestamp (milliseconds
 * in its top 48 bits, a counter in the low 16: src/common/hlc.h)
 * as local "HH:MM:SS.mmm+counter", to match the nodes' logs. */
static const char *hlc_text(int64_t ts, char *out, size_t outlen)
{
	uint64_t ms = (uint64_t)ts >> 16;
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&sec, &tm);
	size_t len = strftime(out, outlen, "%H:%M:%S", &tm);
	snprintf(out + len, outlen - len, ".%03u+%u", (unsigned)(ms % 1000),
		 (unsigned)((uint64_t)ts & 0xffff));
	return out;
}

void chaos_ev_state_print(enum chaos_ev_kind kind, const struct chaos_ev_state *s, size_t max,
			  FILE *out)
{
	char when[48];
	if (!s->read) {
		fprintf(out, "(not read)\n");
		return;
	}
	switch (kind) {
	case CHAOS_EV_SET:
		fprintf(out, "%zu members:", s->nmembers);
		for (size_t i = 0; i < s->nmembers && i < max; i++)
			fprintf(out, " %s", s->members[i]);
		fprintf(out, "%s\n", s->nmembers > max ? " ..." : "");
		break;
	case CHAOS_EV_COUNTER:
		fprintf(out, "%" PRId64 "\n", s->value);
		break;
	case CHAOS_EV_LWW:
		if (s->nil)
			fprintf(out, "nil\n");
		else
			fprintf(out, "%s (timestamp %" PRId64 " = %s, node %" PRId64 ")\n",
				s->lww_value, s->ts, hlc_text(s->ts, when, sizeof(when)),
				s->writer);
		break;
	}
}

size_t chaos_ev_info_sum(const struct local_node_addr *nodes, size_t nnodes, unsigned timeout_ms,
			 const char *const *names, size_t nnames, uint64_t *sums)
{
	size_t answered = 0;
	char err[256];
	for (size_t i = 0; i < nnodes; i++) {
		redisContext *ctx = local_node_connect(&nodes[i], timeout_ms, err, sizeof(err));
		if (!ctx)
			continue;
		redisReply *r = redisCommand(ctx, "INFO eventual");
		if (r && r->type == REDIS_REPLY_STRING) {
			answered++;
			for (size_t f = 0; f < nnames; f++) {
				size_t len = strlen(names[f]);
				for (const char *p = r->str; p && *p; p = strchr(p, '\n')) {
					if (*p == '\n')
						p++;
					if (strncmp(p, names[f], len) == 0 && p[len] == ':') {
						sums[f] += strtoull(p + len + 1, NULL, 10);
						break;
					}
				}
			}
		}
		if (r)
			freeReplyObject(r);
		redisFree(ctx);
	}
	return answered;
}

/* ---- the checks ---------------------------------------------------------- */

size_t chaos_ev_corrupt(enum chaos_ev_kind kind, const struct chaos_ev_history *h,
			struct chaos_ev_state *finals, size_t keys, char *what, size_t whatlen)
{
	snprintf(what, whatlen, "nothing");
	switch (kind) {
	case CHAOS_EV_SET:
		for (size_t k = 0; k < keys; k++) {
			struct chaos_ev_state *s = &finals[k];
			for (size_t i = 0; i < s->nmembers; i++) {
				uint64_t client, seq;
				const struct chaos_ev_op *op;
				if (!parse_element(s->members[i], strlen(s->members[i]), &client,
						   &seq) ||
				    !(op = chaos_ev_history_find(h, client, seq)) ||
				    op->outcome != LIN_OK || !op->write)
					continue;
				snprintf(what, whatlen,
					 "element %s (an acknowledged add) dropped from the final "
					 "set of " CHAOS_EV_KEYSPACE ":%zu",
					 s->members[i], k);
				free(s->members[i]);
				memmove(&s->members[i], &s->members[i + 1],
					(s->nmembers - i - 1) * sizeof(*s->members));
				s->nmembers--;
				return k;
			}
		}
		return SIZE_MAX;
	case CHAOS_EV_COUNTER:
		if (keys == 0)
			return SIZE_MAX;
		finals[0].value += 1000;
		snprintf(what, whatlen, "1000 added to the final value of " CHAOS_EV_KEYSPACE ":0");
		return 0;
	case CHAOS_EV_LWW:
		if (keys == 0)
			return SIZE_MAX;
		free(finals[0].lww_value);
		finals[0].lww_value = sp_strdup(NEVER_WRITTEN);
		finals[0].nil = false;
		snprintf(what, whatlen,
			 "the final value of " CHAOS_EV_KEYSPACE ":0 replaced by \"" NEVER_WRITTEN
			 "\"");
		return 0;
	}
	return SIZE_MAX;
}

/* violation prints one violation while fewer than max were shown. */
static void violation(struct chaos_ev_verdict *v, size_t max, FILE *out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void violation(struct chaos_ev_verdict *v, size_t max, FILE *out, const char *fmt, ...)
{
	if (v->violations++ < max) {
		va_list ap;
		va_start(ap, fmt);
		fprintf(out, "  violation: ");
		vfprintf(out, fmt, ap);
		fprintf(out, "\n");
		va_end(ap);
	} else if (v->violations == max + 1) {
		fprintf(out, "  (further violations not shown)\n");
	}
}

static void describe_op(const struct chaos_ev_op *op, char *out, size_t outlen)
{
	snprintf(out, outlen, "client %" PRIu32 " op %" PRIu32 " via node %u, %.3f..%.3f s, %s",
		 op->client, op->seq, op->node + 1u, (double)op->call_us / 1e6,
		 (double)op->ret_us / 1e6, outcome_name(op->outcome));
}

static void check_set(const struct chaos_ev_history *h, const struct chaos_ev_state *finals,
		      size_t keys, size_t max, struct chaos_ev_verdict *v, FILE *out)
{
	uint8_t *found = sp_calloc(h->n ? h->n : 1, 1);
	char desc[160];
	for (size_t k = 0; k < keys; k++) {
		const struct chaos_ev_state *s = &finals[k];
		for (size_t i = 0; i < s->nmembers; i++) {
			uint64_t client, seq;
			const struct chaos_ev_op *op = NULL;
			if (parse_element(s->members[i], strlen(s->members[i]), &client, &seq))
				op = chaos_ev_history_find(h, client, seq);
			if (!op || !op->write || op->key != k) {
				v->phantom++;
				violation(v, max, out,
					  "%s is in the final set of " CHAOS_EV_KEYSPACE
					  ":%zu, but no client ever added it there",
					  s->members[i], k);
				continue;
			}
			found[op - h->ops] = 1;
			if (op->outcome == LIN_FAIL) {
				v->failed_present++;
				describe_op(op, desc, sizeof(desc));
				violation(v, max, out,
					  "%s is in the final set of " CHAOS_EV_KEYSPACE
					  ":%zu, but its add definitely failed (%s)",
					  s->members[i], k, desc);
			} else if (op->outcome == LIN_UNKNOWN) {
				v->unknown_present++;
			}
		}
	}
	for (size_t i = 0; i < h->n; i++) {
		const struct chaos_ev_op *op = &h->ops[i];
		if (!op->write)
			continue;
		if (op->outcome == LIN_UNKNOWN)
			v->unknown++;
		if (op->outcome != LIN_OK)
			continue;
		v->acked++;
		if (!found[i]) {
			v->lost++;
			describe_op(op, desc, sizeof(desc));
			violation(v, max, out,
				  "acknowledged add c%" PRIu32 "-%" PRIu32
				  " (%s) is missing from the "
				  "final set of " CHAOS_EV_KEYSPACE ":%" PRIu32,
				  op->client, op->seq, desc, op->key);
		}
	}
	free(found);
}

static void check_counter(const struct chaos_ev_history *h, const struct chaos_ev_state *finals,
			  size_t keys, size_t max, struct chaos_ev_verdict *v, FILE *out)
{
	int64_t *ok = sp_calloc(keys, sizeof(*ok)), *unknown = sp_calloc(keys, sizeof(*unknown));
	for (size_t i = 0; i < h->n; i++) {
		const struct chaos_ev_op *op = &h->ops[i];
		if (!op->write || op->key >= keys)
			continue;
		if (op->outcome == LIN_OK) {
			ok[op->key] += op->n;
			v->acked++;
		} else if (op->outcome == LIN_UNKNOWN) {
			unknown[op->key] += op->n;
			v->unknown++;
		}
	}
	for (size_t k = 0; k < keys; k++) {
		int64_t value = finals[k].value;
		if (value < ok[k] || value > ok[k] + unknown[k]) {
			v->bad_keys++;
			violation(v, max, out,
				  CHAOS_EV_KEYSPACE ":%zu = %" PRId64 ", outside [%" PRId64
						    ", %" PRId64
						    "] (acknowledged increments sum to %" PRId64
						    ", unknown ones to %" PRId64 ")%s",
				  k, value, ok[k], ok[k] + unknown[k], ok[k], unknown[k],
				  value < ok[k] ? ": acknowledged increments were lost" : "");
		}
	}
	free(ok);
	free(unknown);
}

static void check_lww(const struct chaos_ev_history *h, const struct chaos_ev_state *finals,
		      size_t keys, size_t max, struct chaos_ev_verdict *v, FILE *out)
{
	int64_t *max_ts = sp_calloc(keys, sizeof(*max_ts));
	const struct chaos_ev_op **max_op = sp_calloc(keys, sizeof(*max_op));
	char desc[160];
	for (size_t i = 0; i < h->n; i++) {
		const struct chaos_ev_op *op = &h->ops[i];
		if (!op->write || op->key >= keys)
			continue;
		if (op->outcome == LIN_UNKNOWN)
			v->unknown++;
		if (op->outcome != LIN_OK)
			continue;
		v->acked++;
		if (!max_op[op->key] || op->n > max_ts[op->key]) {
			max_ts[op->key] = op->n;
			max_op[op->key] = op;
		}
	}
	for (size_t k = 0; k < keys; k++) {
		const struct chaos_ev_state *s = &finals[k];
		if (s->nil) {
			if (max_op[k]) {
				v->bad_keys++;
				describe_op(max_op[k], desc, sizeof(desc));
				violation(v, max, out,
					  CHAOS_EV_KEYSPACE
					  ":%zu is nil, yet c%" PRIu32 "-%" PRIu32
					  " (%s) was written there with an acknowledgement",
					  k, max_op[k]->client, max_op[k]->seq, desc);
			}
			continue;
		}
		uint64_t client, seq;
		const struct chaos_ev_op *op = NULL;
		if (parse_element(s->lww_value, strlen(s->lww_value), &client, &seq))
			op = chaos_ev_history_find(h, client, seq);
		bool bad = false;
		if (!op || !op->write || op->key != k) {
			bad = true;
			violation(v, max, out,
				  CHAOS_EV_KEYSPACE ":%zu holds \"%s\" (timestamp %" PRId64
						    "), which no client wrote there",
				  k, s->lww_value, s->ts);
		} else if (op->outcome == LIN_FAIL) {
			bad = true;
			describe_op(op, desc, sizeof(desc));
			violation(v, max, out,
				  CHAOS_EV_KEYSPACE ":%zu holds \"%s\", whose write definitely "
						    "failed (%s)",
				  k, s->lww_value, desc);
		} else if (op->outcome == LIN_OK && op->n != s->ts) {
			bad = true;
			describe_op(op, desc, sizeof(desc));
			violation(v, max, out,
				  CHAOS_EV_KEYSPACE
				  ":%zu holds \"%s\" with timestamp %" PRId64
				  ", but its write (%s) returned timestamp %" PRId64,
				  k, s->lww_value, s->ts, desc, op->n);
		}
		if (max_op[k] && s->ts < max_ts[k]) {
			bad = true;
			describe_op(max_op[k], desc, sizeof(desc));
			violation(v, max, out,
				  CHAOS_EV_KEYSPACE ":%zu holds \"%s\" with timestamp %" PRId64
						    ", older than acknowledged write c%" PRIu32
						    "-%" PRIu32 " (%s) with timestamp %" PRId64
						    ": that write was lost",
				  k, s->lww_value, s->ts, max_op[k]->client, max_op[k]->seq, desc,
				  max_ts[k]);
		}
		v->bad_keys += bad;
	}
	free(max_ts);
	free(max_op);
}

uint64_t chaos_ev_check(enum chaos_ev_kind kind, const struct chaos_ev_history *h,
			const struct chaos_ev_state *finals, size_t keys, size_t max_shown,
			struct chaos_ev_verdict *v, FILE *out)
{
	memset(v, 0, sizeof(*v));
	switch (kind) {
	case CHAOS_EV_SET:
		check_set(h, finals, keys, max_shown, v, out);
		break;
	case CHAOS_EV_COUNTER:
		check_counter(h, finals, keys, max_shown, v, out);
		break;
	case CHAOS_EV_LWW:
		check_lww(h, finals, keys, max_shown, v, out);
		break;
	}
	return v->violations;
}
