/*
 * cmd_feature: the feature store, on feature views.
 *
 * A feature view is a causal keyspace created with FEATURES yes; each key
 * in it is one entity, holding its features as an fvec record
 * (src/crdt/fvec.c): per feature, the values of the latest HISTORY event
 * times. A write merges a delta into the record, and merges commute, so a
 * value with a newer event time wins whatever order writes arrive in, on
 * every node: a late or replayed batch never replaces a fresher value
 * (it lands in the history, if it is recent enough to be kept).
 *
 *   FEATURE.SET key event_ms field value [field value ...]
 *       -> the number of these fields whose current value is now this
 *          write's (0 for a write older than what is held)
 *   FEATURE.GET key [ASOF ms] [WITHTIMES] [FIELDS field ...]
 *       -> every live feature as a map (RESP2: field, value, ...), or with
 *          FIELDS the values in that order, nil where absent; WITHTIMES
 *          makes each value [value, event_ms]
 *   FEATURE.MGET numkeys key [key ...] [ASOF ms] [WITHTIMES] [FIELDS ...]
 *       -> an array of FEATURE.GET replies, one per key
 *   FEATURE.HISTORY key field [COUNT n]
 *       -> [event_ms, value] pairs, newest first, as kept
 *
 * ASOF ms answers with each feature's value of the latest event time at or
 * before ms (point in time), as far back as the history reaches. The
 * view's TTL: a value whose event time is TTL or more before the reference
 * time (ASOF, else now) reads as absent. Several FEATURE.SETs between
 * MULTI and EXEC are one causal update: every node applies them together,
 * so no reader anywhere sees part of the batch.
 *
 * These run through the causal glue (cmd_causal.c), which makes them wait
 * for the session's context like any causal command; here they only parse
 * and run. It must not: write to a feature view in any other way, or read
 * the clock other than through server_now_ms and the engine's HLC.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "crdt/crdt.h"
#include "engine/causal/causal.h"
#include "server/cmd.h"
#include "server/entry.h"
#include "server/keyspace.h"

/* The most fields one FEATURE.SET may write. */
#define FEATURE_MAX_FIELDS 1024

/* FEATURE.GET / MGET options, after the key(s). */
struct get_opts {
	uint64_t asof; /* UINT64_MAX: latest */
	bool withtimes;
	size_t fields_at, nfields; /* FIELDS: argv[fields_at ..], nfields of them */
};

static bool is(const char *name, const char *lit)
{
	return strcmp(name, lit) == 0;
}

static int parse_ms(struct slice a, uint64_t *out)
{
	char buf[32];
	if (a.len == 0 || a.len >= sizeof(buf))
		return -1;
	memcpy(buf, a.p, a.len);
	buf[a.len] = '\0';
	char *end;
	if (buf[0] < '0' || buf[0] > '9')
		return -1;
	unsigned long long v = strtoull(buf, &end, 10);
	if (*end || v > (unsigned long long)INT64_MAX)
		return -1;
	*out = v;
	return 0;
}

/* parse_get_opts reads [ASOF ms] [WITHTIMES] [FIELDS f ...] from
 * argv[at..argc). Returns 0, or -1 with a message in err. */
static int parse_get_opts(const struct slice *argv, size_t argc, size_t at, struct get_opts *o,
			  const char **err)
{
	o->asof = UINT64_MAX;
	o->withtimes = false;
	o->fields_at = o->nfields = 0;
	for (size_t i = at; i < argc; i++) {
		if (arg_equals(argv[i], "asof") && i + 1 < argc) {
			if (parse_ms(argv[++i], &o->asof)) {
				*err = "ERR ASOF takes a time in Unix milliseconds (0 or more)";
				return -1;
			}
		} else if (arg_equals(argv[i], "withtimes")) {
			o->withtimes = true;
		} else if (arg_equals(argv[i], "fields") && i + 1 < argc) {
			o->fields_at = i + 1;
			o->nfields = argc - i - 1;
			return 0;
		} else {
			*err = "ERR syntax error (options: ASOF ms, WITHTIMES, FIELDS field ...; "
			       "FIELDS comes last)";
			return -1;
		}
	}
	return 0;
}

size_t feature_set_bytes(const struct client *c)
{
	size_t bytes = 0;
	for (size_t i = 1; i < c->argc; i++)
		bytes += c->argv[i].len;
	return bytes;
}

int feature_check(struct client *c, const struct command *cmd)
{
	const char *name = cmd->name;
	struct get_opts o;
	const char *err = NULL;
	if (is(name, "feature.set")) {
		uint64_t ms;
		if ((c->argc - 3) % 2 != 0) {
			reply_error(c,
				    "ERR FEATURE.SET key event_ms field value [field value ...]");
			return -1;
		}
		if (parse_ms(c->argv[2], &ms)) {
			reply_error(c, "ERR event time must be Unix milliseconds (0 or more)");
			return -1;
		}
		if ((c->argc - 3) / 2 > FEATURE_MAX_FIELDS) {
			reply_errorf(c, "ERR at most %d fields in one FEATURE.SET",
				     FEATURE_MAX_FIELDS);
			return -1;
		}
		if (feature_set_bytes(c) > FEATURE_BATCH_MAX_BYTES) {
			reply_errorf(
			    c, "ERR a FEATURE.SET carries at most %zu MB of fields and values",
			    FEATURE_BATCH_MAX_BYTES >> 20);
			return -1;
		}
		for (size_t i = 3; i < c->argc; i += 2) {
			if (c->argv[i].len == 0) {
				reply_error(c, "ERR a feature name may not be empty");
				return -1;
			}
			if (c->argv[i].len > c->srv->cfg->max_value_bytes ||
			    c->argv[i + 1].len > c->srv->cfg->max_value_bytes) {
				reply_error(c, "ERR value is larger than max-value-bytes");
				return -1;
			}
		}
		return 0;
	}
	if (is(name, "feature.get")) {
		if (parse_get_opts(c->argv, c->argc, 2, &o, &err)) {
			reply_error(c, err);
			return -1;
		}
		return 0;
	}
	if (is(name, "feature.mget")) {
		uint64_t n;
		if (parse_ms(c->argv[1], &n) || n == 0 || n > c->argc - 2) {
			reply_error(c, "ERR numkeys must be 1 or more, and no more than the keys "
				       "given");
			return -1;
		}
		for (size_t i = 2; i < 2 + n; i++) {
			struct keyspace ks;
			keyspace_of_key(c->srv, c->argv[i].p, c->argv[i].len, &ks);
			if (!ks.features || ks.mode != SP_MODE_CAUSAL) {
				reply_errorf(
				    c,
				    "ERR every key of FEATURE.MGET must be in a causal feature "
				    "view; '%s' is not one",
				    ks.name);
				return -1;
			}
		}
		if (parse_get_opts(c->argv, c->argc, 2 + n, &o, &err)) {
			reply_error(c, err);
			return -1;
		}
		return 0;
	}
	/* feature.history key field [COUNT n] */
	uint64_t count;
	if (!(c->argc == 3 ||
	      (c->argc == 5 && arg_equals(c->argv[3], "count") && !parse_ms(c->argv[4], &count)))) {
		reply_error(c, "ERR FEATURE.HISTORY key field [COUNT n]");
		return -1;
	}
	return 0;
}

void cmd_feature(struct client *c)
{
	/* Feature views are causal: route.c and cmd_causal.c send FEATURE.*
	 * there; a handler reached any other way (a strong entry's apply,
	 * say) refuses rather than write outside the engine. */
	reply_error(c, "ERR FEATURE.* commands are for feature views (KEYSPACE CREATE <name> "
		       "MODE causal FEATURES yes)");
}

/* ---- reading ---- */

struct read_ctx {
	uint64_t ref_ms, ttl_ms;
};

/* live: does an entry of event time ms still count at the reference time? */
static bool live(const struct read_ctx *r, uint64_t ms)
{
	if (!r->ttl_ms)
		return true;
	return r->ref_ms < ms || r->ref_ms - ms < r->ttl_ms;
}

static void put_value(struct sp_buf *out, const struct crdt_fvec_entry *e, bool withtimes)
{
	if (withtimes) {
		resp_write_array_len(out, 2);
		resp_write_bulk(out, e->v, e->vlen);
		resp_write_integer(out, (int64_t)e->event_ms);
	} else {
		resp_write_bulk(out, e->v, e->vlen);
	}
}

/* Collects the live features of a record for a FEATURE.GET without FIELDS:
 * walk 1 counts them, walk 2 writes them. */
struct all_ctx {
	struct read_ctx r;
	uint64_t asof;
	const uint8_t *s;
	size_t len;
	bool withtimes, write;
	size_t n;
	struct sp_buf *out;
};

static int all_visit(void *ctx, const uint8_t *field, size_t flen, const struct crdt_fvec_entry *e,
		     size_t idx)
{
	struct all_ctx *a = ctx;
	(void)e;
	if (idx != 0)
		return 0; /* one lookup per field */
	struct crdt_fvec_entry f;
	if (crdt_fvec_find(a->s, a->len, field, flen, a->asof, &f) || !live(&a->r, f.event_ms))
		return 0;
	a->n++;
	if (a->write) {
		resp_write_bulk(a->out, field, flen);
		put_value(a->out, &f, a->withtimes);
	}
	return 0;
}

/* put_get writes one key's FEATURE.GET reply from its state s (len 0:
 * none). Returns 0, or SP_ERR_CORRUPT with nothing written. */
static int put_get(struct server *srv, const struct slice *argv, struct slice key,
		   const struct get_opts *o, const uint8_t *s, size_t len, int proto,
		   struct sp_buf *out)
{
	struct keyspace ks;
	keyspace_of_key(srv, key.p, key.len, &ks);
	struct read_ctx r = {o->asof == UINT64_MAX ? server_now_ms(srv) : o->asof,
			     ks.feature_ttl_ms};
	if (o->nfields) {
		resp_write_array_len(out, o->nfields);
		for (size_t i = 0; i < o->nfields; i++) {
			struct slice f = argv[o->fields_at + i];
			struct crdt_fvec_entry e;
			if (len && crdt_fvec_find(s, len, f.p, f.len, o->asof, &e) == 0 &&
			    live(&r, e.event_ms))
				put_value(out, &e, o->withtimes);
			else
				resp_write_null(out, proto);
		}
		return 0;
	}
	struct all_ctx a = {r, o->asof, s, len, o->withtimes, false, 0, out};
	if (len && crdt_fvec_walk(s, len, all_visit, &a))
		return SP_ERR_CORRUPT;
	resp_write_map_len(out, a.n, proto);
	a.write = true;
	if (len)
		(void)crdt_fvec_walk(s, len, all_visit, &a);
	return 0;
}

/* write_get writes one key's FEATURE.GET reply from this node's causal
 * engine. */
static int write_get(struct server *srv, const struct slice *argv, struct slice key,
		     const struct get_opts *o, int proto, struct sp_buf *out)
{
	struct causal_value v;
	int rc = causal_read_crdt(srv->causal, key.p, key.len, CRDT_FVEC, &v);
	if (rc && rc != SP_ERR_NOTFOUND)
		return rc;
	return put_get(srv, argv, key, o, rc ? NULL : v.v, rc ? 0 : v.vlen, proto, out);
}

struct hist_ctx {
	struct slice field;
	uint64_t count;
	size_t n;
	struct sp_buf *out; /* NULL: count only */
};

static int hist_visit(void *ctx, const uint8_t *field, size_t flen, const struct crdt_fvec_entry *e,
		      size_t idx)
{
	struct hist_ctx *h = ctx;
	if (flen != h->field.len || memcmp(field, h->field.p, flen) != 0 || idx >= h->count)
		return 0;
	h->n++;
	if (h->out) {
		resp_write_array_len(h->out, 2);
		resp_write_integer(h->out, (int64_t)e->event_ms);
		resp_write_bulk(h->out, e->v, e->vlen);
	}
	return 0;
}

/* put_history writes FEATURE.HISTORY's reply from the state s. */
static int put_history(const struct slice *argv, size_t argc, const uint8_t *s, size_t len,
		       struct sp_buf *out)
{
	struct hist_ctx h = {argv[2], UINT64_MAX, 0, NULL};
	if (argc == 5)
		(void)parse_ms(argv[4], &h.count);
	if (len && crdt_fvec_walk(s, len, hist_visit, &h))
		return SP_ERR_CORRUPT;
	resp_write_array_len(out, h.n);
	h.out = out;
	if (len)
		(void)crdt_fvec_walk(s, len, hist_visit, &h);
	return 0;
}

static int write_history(struct server *srv, const struct slice *argv, size_t argc,
			 struct sp_buf *out)
{
	struct causal_value v;
	int rc = causal_read_crdt(srv->causal, argv[1].p, argv[1].len, CRDT_FVEC, &v);
	if (rc && rc != SP_ERR_NOTFOUND)
		return rc;
	return put_history(argv, argc, rc ? NULL : v.v, rc ? 0 : v.vlen, out);
}

/* ---- writing ---- */

/* A decoded command: its arguments point into the encoded body. */
struct fcmd {
	struct slice *argv;
	size_t argc;
};

/* named_before: is field argv[k] also one of argv[first], argv[first +
 * 2], ... before k? (A field named twice counts once.) */
static bool named_before(const struct slice *argv, size_t first, size_t k)
{
	for (size_t j = first; j < k; j += 2)
		if (argv[j].len == argv[k].len && memcmp(argv[j].p, argv[k].p, argv[k].len) == 0)
			return true;
	return false;
}

/*
 * run_sets merges n FEATURE.SETs as one causal update and writes their
 * replies (an array of them when batch). A write's reply counts the
 * fields whose current value is now its own.
 */
static int run_sets(struct server *srv, const struct fcmd *cmds, size_t n, bool batch,
		    struct sp_buf *out)
{
	uint64_t ts = causal_now(srv->causal);
	struct sp_buf *deltas = sp_calloc(n, sizeof(*deltas));
	struct causal_merge_op *ops = sp_calloc(n, sizeof(*ops));
	size_t most = 1; /* fields in the largest FEATURE.SET */
	for (size_t i = 0; i < n; i++)
		if ((cmds[i].argc - 3) / 2 > most)
			most = (cmds[i].argc - 3) / 2;
	struct crdt_fvec_put *puts = sp_malloc(most * sizeof(*puts));
	struct crdt_limits lim = {.max_members = FEATURE_MAX_FIELDS,
				  .max_member_len = (uint32_t)srv->cfg->max_value_bytes};
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct slice *a = cmds[i].argv;
		struct keyspace ks;
		keyspace_of_key(srv, a[1].p, a[1].len, &ks);
		uint64_t ms = 0;
		(void)parse_ms(a[2], &ms);
		size_t np = (cmds[i].argc - 3) / 2;
		for (size_t k = 0; k < np; k++)
			puts[k] = (struct crdt_fvec_put){a[3 + 2 * k].p, a[3 + 2 * k].len,
							 a[4 + 2 * k].p, a[4 + 2 * k].len};
		sp_buf_init(&deltas[i]);
		rc = crdt_fvec_delta(ks.feature_history ? ks.feature_history
							: FEATURE_HISTORY_DEFAULT,
				     ms, ts, srv->node_id, puts, np, &lim, &deltas[i]);
		ops[i] = (struct causal_merge_op){a[1].p, a[1].len, sp_buf_begin(&deltas[i]),
						  deltas[i].len};
	}
	if (rc == 0)
		rc = causal_merge(srv->causal, ts, CRDT_FVEC, ops, n);
	if (rc == 0) {
		if (batch)
			resp_write_array_len(out, n);
		for (size_t i = 0; i < n; i++) {
			const struct slice *a = cmds[i].argv;
			uint64_t ms = 0;
			(void)parse_ms(a[2], &ms);
			struct causal_value v;
			int64_t current = 0;
			if (causal_read_crdt(srv->causal, a[1].p, a[1].len, CRDT_FVEC, &v) == 0) {
				for (size_t k = 3; k < cmds[i].argc; k += 2) {
					struct crdt_fvec_entry e;
					if (named_before(a, 3, k))
						continue;
					if (crdt_fvec_find(v.v, v.vlen, a[k].p, a[k].len,
							   UINT64_MAX, &e) == 0 &&
					    e.event_ms == ms && e.ts == ts &&
					    e.node == srv->node_id)
						current++;
				}
			}
			resp_write_integer(out, current);
		}
	}
	for (size_t i = 0; i < n; i++)
		sp_buf_free(&deltas[i]);
	free(deltas);
	free(ops);
	free(puts);
	return rc;
}

/* decode_cmds splits an entry-encoded body into ncmds commands (their
 * argument arrays allocated here, freed by free_cmds). */
static int decode_cmds(const uint8_t *body, size_t len, uint32_t ncmds, struct fcmd *cmds)
{
	for (uint32_t i = 0; i < ncmds; i++) {
		struct entry_arg *args = NULL;
		size_t cap = 0, argc = 0;
		if (entry_next_cmd(&body, &len, &args, &cap, &argc)) {
			free(args);
			return SP_ERR_PROTO;
		}
		/* struct entry_arg and struct slice have one layout (entry.h). */
		cmds[i].argv = (struct slice *)args;
		cmds[i].argc = argc;
	}
	return 0;
}

static void free_cmds(struct fcmd *cmds, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		free(cmds[i].argv);
	free(cmds);
}

/* put_error writes the reply of a feature command that failed with rc. */
static void put_error(struct server *srv, int rc, struct sp_buf *out)
{
	srv->stats.errors++;
	if (rc == SP_ERR_TOOBIG)
		causal_too_big(srv, out);
	else
		resp_write_errorf(out, "ERR %s", sp_strerror(rc));
}

/* run_cmds runs n FEATURE.* commands (a batch of FEATURE.SETs, or one
 * command) on the causal engine and writes the reply. */
static void run_cmds(struct server *srv, const struct fcmd *cmds, size_t n, bool batch, int proto,
		     struct sp_buf *out)
{
	int rc;
	const struct slice *a = cmds[0].argv;
	size_t argc = cmds[0].argc;
	struct get_opts o;
	const char *err;
	if (batch || arg_equals(a[0], "feature.set")) {
		rc = run_sets(srv, cmds, n, batch, out);
	} else if (arg_equals(a[0], "feature.get")) {
		(void)parse_get_opts(a, argc, 2, &o, &err);
		rc = write_get(srv, a, a[1], &o, proto, out);
	} else if (arg_equals(a[0], "feature.mget")) {
		uint64_t nk = 0;
		(void)parse_ms(a[1], &nk);
		(void)parse_get_opts(a, argc, 2 + nk, &o, &err);
		/* A corrupt record fails the whole reply: write into a scratch
		 * buffer first. */
		struct sp_buf tmp;
		sp_buf_init(&tmp);
		resp_write_array_len(&tmp, nk);
		rc = 0;
		for (uint64_t k = 0; k < nk && rc == 0; k++)
			rc = write_get(srv, a, a[2 + k], &o, proto, &tmp);
		if (rc == 0)
			sp_buf_append(out, sp_buf_begin(&tmp), tmp.len);
		sp_buf_free(&tmp);
	} else {
		rc = write_history(srv, a, argc, out);
	}
	if (rc)
		put_error(srv, rc, out);
}

void feature_run(struct server *srv, const struct slice *argv, size_t argc, int proto,
		 struct sp_buf *out)
{
	/* run_cmds only reads the arguments. */
	struct fcmd cmd = {(struct slice *)argv, argc};
	run_cmds(srv, &cmd, 1, false, proto, out);
}

void feature_run_encoded(struct server *srv, const uint8_t *body, size_t len, uint32_t ncmds,
			 bool batch, int proto, struct sp_buf *out)
{
	struct fcmd *cmds = sp_calloc(ncmds ? ncmds : 1, sizeof(*cmds));
	int rc = decode_cmds(body, len, ncmds, cmds);
	if (rc == 0 && ncmds)
		run_cmds(srv, cmds, ncmds, batch, proto, out);
	else
		put_error(srv, rc ? rc : SP_ERR_PROTO, out);
	free_cmds(cmds, ncmds);
}

void feature_reply_state(struct server *srv, const uint8_t *cmd, size_t len, const uint8_t *s,
			 size_t slen, int proto, struct sp_buf *out)
{
	struct fcmd *cmds = sp_calloc(1, sizeof(*cmds));
	int rc = decode_cmds(cmd, len, 1, cmds);
	if (rc == 0) {
		const struct slice *a = cmds[0].argv;
		struct get_opts o;
		const char *err;
		if (arg_equals(a[0], "feature.get")) {
			(void)parse_get_opts(a, cmds[0].argc, 2, &o, &err);
			rc = put_get(srv, a, a[1], &o, s, slen, proto, out);
		} else {
			rc = put_history(a, cmds[0].argc, s, slen, out);
		}
	}
	if (rc)
		put_error(srv, rc, out);
	free_cmds(cmds, 1);
}
