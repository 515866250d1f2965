/*
 * chaos_client: the workload threads of `spectra chaos`. See chaos_client.h.
 */
#include "chaos_client.h"

#include "chaos_plan.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECONNECT_MS 100 /* pause before reconnecting to a node */

struct chaos_worker {
	struct chaos_workload *w;
	size_t index;
	pthread_t thread;
	uint64_t rng;
	uint64_t generation; /* process id is index + clients * generation */
	uint64_t seq;	     /* makes every value this thread writes unique */
	/* known[k]: a value this thread last saw in key k (read, written, or
	 * set by its CAS), to expect in a CAS; NULL when it knows none.
	 * Owned. */
	char **known;
	struct history ops;
	struct chaos_stats stats;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* now_us is microseconds since the run's origin t0_ns. */
static uint64_t now_us(uint64_t t0_ns)
{
	uint64_t ns = sp_mono_ns(sp_clock_system());
	return ns > t0_ns ? (ns - t0_ns) / 1000 : 0;
}

void chaos_key_name(size_t i, char *out, size_t outlen)
{
	snprintf(out, outlen, "k%zu", i);
}

/* ---- counting -------------------------------------------------------- */

static void count_error(struct chaos_stats *s, const char *msg, size_t len)
{
	size_t wlen = 0;
	while (wlen < len && msg[wlen] != ' ')
		wlen++;
	for (int i = 0; i < CHAOS_ERROR_WORDS; i++) {
		if (s->errors[i].word[0] == '\0') {
			if (wlen >= sizeof(s->errors[i].word))
				break;
			memcpy(s->errors[i].word, msg, wlen);
			s->errors[i].word[wlen] = '\0';
			s->errors[i].count = 1;
			return;
		}
		if (strlen(s->errors[i].word) == wlen &&
		    memcmp(s->errors[i].word, msg, wlen) == 0) {
			s->errors[i].count++;
			return;
		}
	}
	s->errors_other++;
}

void chaos_stats_count_error(struct chaos_stats *s, const char *msg, size_t len)
{
	count_error(s, msg, len);
}

void chaos_stats_add(struct chaos_stats *to, const struct chaos_stats *from)
{
	for (int k = 0; k <= LIN_DELETE; k++) {
		to->invoked[k] += from->invoked[k];
		for (int o = 0; o <= LIN_UNKNOWN; o++)
			to->outcome[k][o] += from->outcome[k][o];
	}
	to->no_reply += from->no_reply;
	to->surprises += from->surprises;
	to->connect_failures += from->connect_failures;
	to->errors_other += from->errors_other;
	for (int i = 0; i < CHAOS_ERROR_WORDS && from->errors[i].word[0]; i++) {
		const char *word = from->errors[i].word;
		int j;
		for (j = 0; j < CHAOS_ERROR_WORDS && to->errors[j].word[0]; j++)
			if (strcmp(to->errors[j].word, word) == 0)
				break;
		if (j == CHAOS_ERROR_WORDS) {
			to->errors_other += from->errors[i].count;
			continue;
		}
		if (!to->errors[j].word[0])
			snprintf(to->errors[j].word, sizeof(to->errors[j].word), "%s", word);
		to->errors[j].count += from->errors[i].count;
	}
}

uint64_t chaos_stats_total(const struct chaos_stats *s, int outcome)
{
	uint64_t total = 0;
	for (int k = 0; k <= LIN_DELETE; k++)
		total += outcome == 0 ? s->invoked[k] : s->outcome[k][outcome];
	return total;
}

/* ---- one operation ----------------------------------------------------- */

/* to_chaos_reply describes a hiredis reply (NULL: none came). */
static struct chaos_reply to_chaos_reply(const redisReply *r)
{
	struct chaos_reply c = {.type = CHAOS_REPLY_NONE};
	if (!r)
		return c;
	switch (r->type) {
	case REDIS_REPLY_STATUS:
		c.type = CHAOS_REPLY_STATUS;
		break;
	case REDIS_REPLY_ERROR:
		c.type = CHAOS_REPLY_ERROR;
		break;
	case REDIS_REPLY_INTEGER:
		c.type = CHAOS_REPLY_INTEGER;
		c.integer = r->integer;
		break;
	case REDIS_REPLY_STRING:
		c.type = CHAOS_REPLY_STRING;
		break;
	case REDIS_REPLY_NIL:
		c.type = CHAOS_REPLY_NIL;
		break;
	default:
		c.type = CHAOS_REPLY_OTHER;
		return c;
	}
	if (c.type != CHAOS_REPLY_INTEGER && c.type != CHAOS_REPLY_NIL) {
		c.str = r->str;
		c.len = r->len;
	}
	return c;
}

static struct lin_value text_value(const char *s)
{
	return (struct lin_value){.p = (const uint8_t *)s, .len = strlen(s)};
}

/*
 * run_op sends op (kind, key and values filled in) on ctx, fills its
 * times, outcome and (for an ok read) result, records it into ops and
 * counts it in stats. The read's result points into *reply_out, which
 * the caller frees after using it (NULL if no reply came). Returns the
 * outcome.
 */
static enum lin_outcome run_op(redisContext *ctx, struct lin_op *op, uint64_t t0_ns,
			       struct history *ops, struct chaos_stats *stats,
			       redisReply **reply_out)
{
	const char *argv[4];
	size_t argvlen[4];
	int argc = 0;
	switch (op->kind) {
	case LIN_READ:
		argv[argc] = "GET", argvlen[argc++] = 3;
		break;
	case LIN_WRITE:
		argv[argc] = "SET", argvlen[argc++] = 3;
		break;
	case LIN_CAS:
		argv[argc] = "CAS", argvlen[argc++] = 3;
		break;
	case LIN_DELETE:
		argv[argc] = "DEL", argvlen[argc++] = 3;
		break;
	}
	argv[argc] = (const char *)op->key, argvlen[argc++] = op->klen;
	if (op->kind == LIN_CAS)
		argv[argc] = (const char *)op->expect.p, argvlen[argc++] = op->expect.len;
	if (op->kind == LIN_WRITE || op->kind == LIN_CAS)
		argv[argc] = (const char *)op->arg.p, argvlen[argc++] = op->arg.len;

	op->call = now_us(t0_ns);
	redisReply *reply = redisCommandArgv(ctx, argc, argv, argvlen);
	op->ret = now_us(t0_ns);
	struct chaos_reply c = to_chaos_reply(reply);
	op->outcome = chaos_classify(op->kind, &c);
	op->result = (struct lin_value){.nil = true};
	if (op->kind == LIN_READ && op->outcome == LIN_OK && c.type == CHAOS_REPLY_STRING)
		op->result = (struct lin_value){.p = (const uint8_t *)c.str, .len = c.len};

	stats->invoked[op->kind]++;
	stats->outcome[op->kind][op->outcome]++;
	if (c.type == CHAOS_REPLY_NONE)
		stats->no_reply++;
	else if (c.type == CHAOS_REPLY_ERROR)
		count_error(stats, c.str, c.len);
	else if (!chaos_reply_expected(op->kind, &c))
		stats->surprises++;

	int rc = history_add(ops, op);
	(void)rc; /* op is well formed by construction */
	*reply_out = reply;
	return op->outcome;
}

/* ---- the client thread --------------------------------------------------- */

static void set_known(struct chaos_worker *wk, size_t key, const char *value, size_t len)
{
	free(wk->known[key]);
	wk->known[key] = value ? sp_memdup(value, len) : NULL;
}

static void *worker_main(void *arg)
{
	struct chaos_worker *wk = arg;
	const struct chaos_workload_config *cfg = &wk->w->cfg;
	const struct local_node_addr *addr = &cfg->nodes[wk->index % cfg->nnodes];
	redisContext *ctx = NULL;
	char err[256], key[32], value[64];

	while (!atomic_load(&wk->w->stop)) {
		if (!ctx) {
			ctx = local_node_connect(addr, cfg->op_timeout_ms, err, sizeof(err));
			if (!ctx) {
				wk->stats.connect_failures++;
				sleep_ms(RECONNECT_MS);
				continue;
			}
			/* Lease reads claim linearizability too: check them. */
			if (cfg->reads == CHAOS_READS_LEASE ||
			    (cfg->reads == CHAOS_READS_MIXED && wk->index % 2 == 1)) {
				redisReply *r = redisCommand(ctx, "CONSISTENCY lease");
				bool ok = r && r->type == REDIS_REPLY_STATUS;
				freeReplyObject(r);
				if (!ok) {
					redisFree(ctx);
					ctx = NULL;
					wk->stats.connect_failures++;
					sleep_ms(RECONNECT_MS);
					continue;
				}
			}
		}
		uint64_t process = wk->index + cfg->clients * wk->generation;
		size_t k = (size_t)chaos_rand_below(&wk->rng, cfg->keys);
		chaos_key_name(k, key, sizeof(key));
		struct lin_op op = {.client = process,
				    .key = (const uint8_t *)key,
				    .klen = strlen(key),
				    .kind = chaos_pick_op(&wk->rng, wk->known[k] != NULL)};
		if (op.kind == LIN_WRITE || op.kind == LIN_CAS) {
			snprintf(value, sizeof(value), "%c%llu-%llu",
				 op.kind == LIN_WRITE ? 'w' : 'c', (unsigned long long)process,
				 (unsigned long long)++wk->seq);
			op.arg = text_value(value);
		}
		if (op.kind == LIN_CAS)
			op.expect = text_value(wk->known[k]);

		redisReply *reply;
		enum lin_outcome outcome =
		    run_op(ctx, &op, cfg->t0_ns, &wk->ops, &wk->stats, &reply);
		if (outcome == LIN_OK && op.kind == LIN_READ)
			set_known(wk, k, op.result.nil ? NULL : (const char *)op.result.p,
				  op.result.len);
		else if (outcome == LIN_OK)
			set_known(wk, k, value, strlen(value));
		else if (outcome == LIN_FAIL && op.kind == LIN_CAS)
			set_known(wk, k, NULL, 0); /* it holds something else now */
		if (reply)
			freeReplyObject(reply);

		/* After an unknown outcome the op may still be pending: go on
		 * as a new process. After a timeout or a broken connection, a
		 * late reply must not be read as the next op's: reconnect. */
		if (outcome == LIN_UNKNOWN)
			wk->generation++;
		if (ctx->err) {
			redisFree(ctx);
			ctx = NULL;
			sleep_ms(RECONNECT_MS);
		}
	}
	if (ctx)
		redisFree(ctx);
	return NULL;
}

/* ---- the workload ---------------------------------------------------- */

int chaos_workload_start(struct chaos_workload *w, const struct chaos_workload_config *cfg)
{
	memset(w, 0, sizeof(*w));
	atomic_init(&w->stop, false);
	if (cfg->clients == 0 || cfg->keys == 0 || cfg->nnodes == 0)
		return SP_ERR_INVAL;
	w->cfg = *cfg;
	w->workers = sp_calloc(cfg->clients, sizeof(*w->workers));
	uint64_t seeder = cfg->seed;
	for (size_t i = 0; i < cfg->clients; i++) {
		struct chaos_worker *wk = &w->workers[i];
		wk->w = w;
		wk->index = i;
		wk->rng = chaos_rand(&seeder);
		wk->known = sp_calloc(cfg->keys, sizeof(*wk->known));
		history_init(&wk->ops);
	}
	for (size_t i = 0; i < cfg->clients; i++) {
		int rc = pthread_create(&w->workers[i].thread, NULL, worker_main, &w->workers[i]);
		if (rc != 0) {
			chaos_workload_stop(w);
			return -rc;
		}
		w->started++;
	}
	return 0;
}

void chaos_workload_stop(struct chaos_workload *w)
{
	atomic_store(&w->stop, true);
	for (size_t i = 0; i < w->started; i++)
		pthread_join(w->workers[i].thread, NULL);
	w->started = 0;
}

uint64_t chaos_workload_collect(struct chaos_workload *w, struct history *out,
				struct chaos_stats *stats)
{
	uint64_t next_generation = 0;
	for (size_t i = 0; w->workers && i < w->cfg.clients; i++) {
		struct chaos_worker *wk = &w->workers[i];
		for (size_t j = 0; j < wk->ops.n; j++) {
			int rc = history_add(out, &wk->ops.ops[j]);
			(void)rc; /* it was accepted once already */
		}
		chaos_stats_add(stats, &wk->stats);
		if (wk->generation + 1 > next_generation)
			next_generation = wk->generation + 1;
	}
	return w->cfg.clients * next_generation;
}

void chaos_workload_close(struct chaos_workload *w)
{
	if (!w->workers)
		return;
	chaos_workload_stop(w);
	for (size_t i = 0; i < w->cfg.clients; i++) {
		struct chaos_worker *wk = &w->workers[i];
		for (size_t k = 0; k < w->cfg.keys; k++)
			free(wk->known[k]);
		free(wk->known);
		history_free(&wk->ops);
	}
	free(w->workers);
	w->workers = NULL;
}

size_t chaos_final_reads(const struct local_node_addr *addr, size_t keys, unsigned timeout_ms,
			 int attempts, uint64_t t0_ns, uint64_t *process, struct history *out,
			 struct chaos_stats *stats)
{
	size_t read_ok = 0;
	redisContext *ctx = NULL;
	char err[256], key[32];
	for (size_t k = 0; k < keys; k++) {
		chaos_key_name(k, key, sizeof(key));
		for (int attempt = 0; attempt < attempts; attempt++) {
			if (attempt > 0)
				sleep_ms(200);
			if (!ctx) {
				ctx = local_node_connect(addr, timeout_ms, err, sizeof(err));
				if (!ctx) {
					stats->connect_failures++;
					continue;
				}
			}
			struct lin_op op = {.client = *process,
					    .key = (const uint8_t *)key,
					    .klen = strlen(key),
					    .kind = LIN_READ};
			redisReply *reply;
			enum lin_outcome outcome = run_op(ctx, &op, t0_ns, out, stats, &reply);
			if (reply)
				freeReplyObject(reply);
			if (outcome == LIN_UNKNOWN)
				++*process;
			if (ctx->err) {
				redisFree(ctx);
				ctx = NULL;
			}
			if (outcome == LIN_OK) {
				read_ok++;
				break;
			}
		}
	}
	if (ctx)
		redisFree(ctx);
	return read_ok;
}
