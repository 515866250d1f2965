/*
 * cmd_causal: commands on causal keyspaces, and sessions.
 *
 * A connection is a session with a causal context (a vector clock of the
 * updates it has seen or made). GET, SET and DEL on a key of a causal
 * keyspace run on this node's copy (src/engine/causal):
 *
 *   causal (the default)  waits until this node has applied everything in
 *                         the session's context, up to request-timeout-ms,
 *                         then -TRYAGAIN (nothing done); writes wait too,
 *                         so no node applies a session's write before what
 *                         it saw
 *   local                 reads this node's copy at once
 *
 * After each, the context takes in everything this node has applied, so a
 * later read anywhere sees it (read-your-writes, monotonic reads and
 * writes, writes-follow-reads). SESSION TOKEN gives the context as text;
 * SESSION RESUME <token> on any connection, on any node, continues it.
 * A client's causal commands run in order: one that waits holds back the
 * ones after it, and replies keep command order through reply slots.
 *
 * It must not: send a causal command through Raft, or run one before the
 * session's context is applied here (unless its level is local).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "engine/causal/causal.h"
#include "server/cmd.h"
#include "server/entry.h"
#include "server/keyspace.h"
#include "obs/trace.h"
#include "server/route.h"

enum causal_op { CAUSAL_GET = 1, CAUSAL_SET, CAUSAL_DEL, CAUSAL_SESSION, CAUSAL_FEATURE };

/* A command waiting for its session's context to be applied here. */
struct causal_wait {
	struct causal_wait *next;
	struct server *srv;
	struct client *c; /* NULL once the client is gone */
	struct reply_slot *slot;
	uint8_t op, proto;
	uint8_t argc; /* CAUSAL_SESSION: 1..3 words, the 2nd and 3rd in data */
	bool siblings;
	bool batch;	/* CAUSAL_FEATURE: a MULTI of FEATURE.SETs */
	uint32_t ncmds; /* CAUSAL_FEATURE: commands in data (klen bytes,
			 * entry-encoded) */
	uint64_t deadline_ms;
	size_t klen, vlen;
	char data[]; /* key then value */
};

static uint64_t mono_ms(const struct server *srv)
{
	return sp_mono_ns(srv->clock) / 1000000;
}

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static struct vclock *session_of(struct client *c)
{
	if (!c->session) {
		c->session = sp_malloc(sizeof(*c->session));
		vclock_init(c->session);
		/* An id for traces, unique enough across nodes and restarts. */
		c->session_id = mix(c->srv->node_id * 0x9E3779B97F4A7C15ull ^ c->id ^
				    sp_mono_ns(c->srv->clock) ^ sp_wall_ms(c->srv->clock) << 20);
		if (!c->session_id)
			c->session_id = 1;
	}
	return c->session;
}

static void trace_op(struct server *srv, const char *ev, const char *key, size_t klen,
		     uint64_t session, const char *traceparent, uint64_t origin, uint64_t seq)
{
	if (!srv->trace)
		return;
	struct trace_event t = {
	    .node = srv->node_id,
	    .ms = sp_wall_ms(srv->clock),
	    .ev = ev,
	    .key = key,
	    .klen = klen,
	    .session = session,
	    .origin = origin,
	    .seq = seq,
	    .vc = causal_applied(srv->causal),
	    .traceparent = traceparent,
	};
	trace_event(srv->trace, &t);
}

void causal_too_big(struct server *srv, struct sp_buf *out)
{
	resp_write_errorf(out,
			  "ERR a causal write carries at most %" PRIu64
			  " bytes of keys and values (it goes to every node as one message); "
			  "nothing was done",
			  causal_max_write_bytes(srv->causal));
}

/* run_op runs one causal command here, now, and writes its reply. */
struct sib_ctx {
	struct sp_buf *out;
	uint64_t origin, seq; /* the last value's, for the trace */
};

static void put_sibling(void *ctx, const struct causal_value *v)
{
	struct sib_ctx *sc = ctx;
	resp_write_bulk(sc->out, v->v, v->vlen);
	sc->origin = v->origin;
	sc->seq = v->seq;
}

static void count_sibling(void *ctx, const struct causal_value *v)
{
	(void)v;
	(*(size_t *)ctx)++;
}

static void run_op(struct server *srv, struct client *c, uint8_t op, int proto, const char *key,
		   size_t klen, const char *val, size_t vlen, bool siblings, enum obs_level level,
		   struct op_obs *rc_op, struct sp_buf *out)
{
	struct vclock *session = c ? c->session : NULL;
	uint64_t sid = c ? c->session_id : 0;
	const char *tp = c ? c->traceparent : NULL;
	int rc;
	if (op == CAUSAL_GET && siblings) {
		size_t n = 0;
		rc = causal_read_siblings(srv->causal, key, klen, count_sibling, &n);
		if (rc >= 0) {
			struct sib_ctx sc = {out, 0, 0};
			observe_siblings(srv, false, n);
			resp_write_array_len(out, n);
			(void)causal_read_siblings(srv->causal, key, klen, put_sibling, &sc);
			trace_op(srv, "read", key, klen, sid, tp, sc.origin, sc.seq);
			rc = 0;
		}
	} else if (op == CAUSAL_GET) {
		struct causal_value v;
		rc = causal_read(srv->causal, key, klen, &v);
		if (rc == 0 || rc == SP_ERR_NOTFOUND)
			stale_causal_read(srv, level, key, klen);
		if (rc == 0 && rc_op)
			observe_receipt(rc_op, srv->node_id, 1, RCPT_CAUSAL, v.ts, v.origin, v.seq);
		else if (rc_op)
			observe_receipt(rc_op, srv->node_id, 1, RCPT_NONE, 0, 0, 0);
		if (rc == 0) {
			srv->stats.hits++;
			trace_op(srv, "read", key, klen, sid, tp, v.origin, v.seq);
			resp_write_bulk(out, v.v, v.vlen);
		} else if (rc == SP_ERR_NOTFOUND) {
			srv->stats.misses++;
			trace_op(srv, "read", key, klen, sid, tp, 0, 0);
			resp_write_null(out, proto);
		}
	} else {
		bool existed = false;
		if (op == CAUSAL_DEL) {
			struct causal_value v;
			size_t n = 0;
			existed = siblings ? causal_read_siblings(srv->causal, key, klen,
								  count_sibling, &n) > 0
					   : causal_read(srv->causal, key, klen, &v) == 0;
		}
		rc = causal_write(srv->causal, key, klen, val, vlen, op == CAUSAL_DEL, siblings);
		if (rc == 0)
			trace_op(srv, "write", key, klen, sid, tp, srv->node_id,
				 vclock_get(causal_applied(srv->causal), srv->node_id));
		/* Only for a receipt: the version costs a second store read. */
		if (rc == 0 && rc_op && rc_op->receipt) {
			struct causal_version w;
			if (causal_read_version(srv->causal, key, klen, &w) == 0)
				observe_receipt(rc_op, srv->node_id, 1, RCPT_CAUSAL, w.ts, w.origin,
						w.seq);
		}
		if (rc == 0) {
			if (op == CAUSAL_SET)
				resp_write_simple(out, "OK");
			else
				resp_write_integer(out, existed);
		}
	}
	if (rc && rc != SP_ERR_NOTFOUND) {
		srv->stats.errors++;
		if (rc == SP_ERR_TOOBIG)
			causal_too_big(srv, out);
		else
			resp_write_errorf(out, "ERR %s", sp_strerror(rc));
		return;
	}
	if (session && vclock_merge(session, causal_applied(srv->causal)))
		srv->stats.errors += 0; /* a context over VCLOCK_MAX nodes: cannot happen */
}

/* feature_done follows feature commands that ran here (feature_run*,
 * cmd_feature.c): their receipt, and what this node has applied taken
 * into the session, as run_op does. */
static void feature_done(struct server *srv, struct client *c, struct op_obs *rc_op)
{
	/* Served by this node alone; a record spans many writes, so the
	 * receipt names no one version. */
	if (rc_op)
		observe_receipt(rc_op, srv->node_id, 1, RCPT_NONE, 0, 0, 0);
	if (c && c->session)
		(void)vclock_merge(c->session, causal_applied(srv->causal));
}

/* run_session runs a SESSION command that waited behind the client's
 * causal commands, with its own argv, capturing the reply into out. */
static void run_session(struct causal_wait *w, struct sp_buf *out)
{
	struct client *c = w->c;
	struct slice argv[3] = {{"SESSION", 7}, {w->data, w->klen}, {w->data + w->klen, w->vlen}};
	struct slice *saved_argv = c->argv;
	size_t saved_argc = c->argc;
	struct sp_buf saved_out = c->out;
	sp_buf_init(&c->out);
	uint32_t saved_waiting = c->causal_waiting;
	c->argv = argv;
	c->argc = w->argc;
	c->causal_waiting = 0; /* its turn: run, do not queue again */
	cmd_session(c);
	c->causal_waiting = saved_waiting;
	sp_buf_append(out, sp_buf_begin(&c->out), c->out.len);
	sp_buf_free(&c->out);
	c->out = saved_out;
	c->argv = saved_argv;
	c->argc = saved_argc;
}

static void wait_detach(void *ev)
{
	struct causal_wait *w = ev;
	w->c = NULL;
	w->slot = NULL;
}

/* finish answers a waiting command (run it, or refuse it) and frees it. */
static void finish(struct causal_wait *w, bool run)
{
	struct server *srv = w->srv;
	struct sp_buf out;
	sp_buf_init(&out);
	if (w->op == CAUSAL_SESSION && w->c) {
		run_session(w, &out);
	} else if (run && w->op == CAUSAL_FEATURE) {
		feature_run_encoded(srv, (const uint8_t *)w->data, w->klen, w->ncmds, w->batch,
				    w->proto, &out);
		feature_done(srv, w->c, w->slot ? &w->slot->obs : NULL);
	} else if (run) {
		run_op(srv, w->c, w->op, w->proto, w->data, w->klen, w->data + w->klen, w->vlen,
		       w->siblings, OBS_CAUSAL, w->slot ? &w->slot->obs : NULL, &out);
	} else {
		srv->stats.errors++;
		resp_write_error(&out,
				 "TRYAGAIN this node has not yet applied everything the "
				 "session has seen (nothing was done); retry, or read at level "
				 "local");
	}
	if (w->c) {
		w->c->causal_waiting--;
		route_slot_fill(w->c, w->slot, sp_buf_begin(&out), out.len);
	}
	sp_buf_free(&out);
	free(w);
}

/* causal_wake runs, in arrival order, every waiting command whose session
 * is now covered here; a client's later commands stay behind its first
 * one that still waits. Expired ones are refused. */
static void causal_wake(struct server *srv)
{
	uint64_t now = mono_ms(srv);
	struct causal_wait **pp = &srv->causal_waiters;
	/* Clients with an earlier command still waiting in this pass. */
	struct client *held[64];
	size_t nheld = 0;
	while (*pp) {
		struct causal_wait *w = *pp;
		bool behind = false;
		for (size_t i = 0; i < nheld && w->c; i++)
			behind |= held[i] == w->c;
		if (!w->c) {
			/* Its client is gone: nobody waits for it, so it is not run. */
			*pp = w->next;
			free(w);
			continue;
		}
		/* Past its deadline a command is refused even if it became
		 * ready, and even behind another: the client is told within
		 * request-timeout-ms, and nothing runs after it gave up. */
		bool expired = now >= w->deadline_ms && w->op != CAUSAL_SESSION;
		bool ready = w->op == CAUSAL_SESSION || !w->c->session ||
			     causal_ready(srv->causal, w->c->session);
		if (expired || (!behind && ready)) {
			*pp = w->next;
			finish(w, ready && !expired);
			continue;
		}
		if (w->c && !behind && nheld < 64)
			held[nheld++] = w->c;
		pp = &w->next;
	}
}

void causal_applied_changed(struct server *srv)
{
	if (srv->causal_waiters)
		causal_wake(srv);
}

void causal_timer_tick(struct server *srv)
{
	causal_tick(srv->causal);
	if (srv->causal_waiters)
		causal_wake(srv);
}

/* enqueue makes a command wait, behind the client's other waiting ones. */
static struct causal_wait *enqueue(struct client *c, uint8_t op, const char *key, size_t klen,
				   const char *val, size_t vlen)
{
	struct server *srv = c->srv;
	struct causal_wait *w = sp_calloc(1, sizeof(*w) + klen + vlen);
	w->srv = srv;
	w->c = c;
	w->op = op;
	w->proto = (uint8_t)c->proto;
	w->deadline_ms = mono_ms(srv) + srv->cfg->request_timeout_ms;
	w->klen = klen;
	w->vlen = vlen;
	if (klen)
		memcpy(w->data, key, klen);
	if (vlen)
		memcpy(w->data + klen, val, vlen);
	w->slot = route_slot_reserve(c, w, wait_detach);
	c->causal_waiting++;
	struct causal_wait **pp = &srv->causal_waiters;
	while (*pp)
		pp = &(*pp)->next;
	*pp = w;
	return w;
}

static uint8_t pick_level(const struct client *c)
{
	if (c->req_causal_level)
		return c->req_causal_level;
	return c->causal_level ? c->causal_level : CAUSAL_LEVEL_CAUSAL;
}

/*
 * submit_features runs feature commands for c now if its session allows,
 * else queues them like any causal command: with body NULL, c's own
 * command (encoded only if it must wait); else ncmds entry-encoded ones
 * (a MULTI batch). read: they only read (so level local runs them at
 * once).
 */
static void submit_features(struct client *c, const uint8_t *body, size_t len, uint32_t ncmds,
			    bool batch, bool read)
{
	struct server *srv = c->srv;
	uint8_t level = pick_level(c);
	observe_op_level(c, read && level == CAUSAL_LEVEL_LOCAL ? OBS_LOCAL : OBS_CAUSAL, !read);
	struct vclock *session = session_of(c);
	if (!c->causal_waiting &&
	    ((level == CAUSAL_LEVEL_LOCAL && read) || causal_ready(srv->causal, session))) {
		struct sp_buf out;
		sp_buf_init(&out);
		if (body)
			feature_run_encoded(srv, body, len, ncmds, batch, c->proto, &out);
		else
			feature_run(srv, c->argv, c->argc, c->proto, &out);
		feature_done(srv, c, &c->op);
		sp_buf_append(&c->out, sp_buf_begin(&out), out.len);
		sp_buf_free(&out);
		return;
	}
	struct sp_buf own;
	sp_buf_init(&own);
	if (!body) {
		entry_put_cmd(&own, (const struct entry_arg *)c->argv, c->argc);
		body = (const uint8_t *)sp_buf_begin(&own);
		len = own.len;
	}
	struct causal_wait *w = enqueue(c, CAUSAL_FEATURE, (const char *)body, len, NULL, 0);
	w->ncmds = ncmds;
	w->batch = batch;
	sp_buf_free(&own);
}

void causal_exec_features(struct client *c)
{
	uint32_t n = c->multi_n;
	struct sp_buf body = c->multi;
	sp_buf_init(&c->multi);
	c->multi_n = 0;
	submit_features(c, (const uint8_t *)sp_buf_begin(&body), body.len, n, true, false);
	sp_buf_free(&body);
}

void causal_submit(struct client *c, const struct command *cmd, const struct keyspace *ks)
{
	struct server *srv = c->srv;
	uint8_t op = 0;
	if (c->req_level || c->req_ev_level) {
		reply_errorf(c,
			     "ERR that level is not for causal keyspaces; '%s' offers causal "
			     "and local",
			     ks->name);
		return;
	}
	/* route.c keeps FEATURE.* to feature views. */
	if (ks->features) {
		if (!(cmd->flags & CMD_FEATURE)) {
			reply_errorf(
			    c,
			    "ERR '%s' is a feature view: it takes FEATURE.SET, FEATURE.GET, "
			    "FEATURE.MGET and FEATURE.HISTORY",
			    ks->name);
			return;
		}
		if (feature_check(c, cmd))
			return;
		submit_features(c, NULL, 0, 1, false, !(cmd->flags & CMD_WRITE));
		return;
	}
	if (strcmp(cmd->name, "get") == 0 && c->argc == 2)
		op = CAUSAL_GET;
	else if (strcmp(cmd->name, "set") == 0 && c->argc == 3)
		op = CAUSAL_SET;
	else if ((strcmp(cmd->name, "del") == 0 || strcmp(cmd->name, "unlink") == 0) &&
		 c->argc == 2)
		op = CAUSAL_DEL;
	if (!op) {
		reply_errorf(c,
			     "ERR causal keyspace '%s' takes GET key, SET key value and DEL key "
			     "(one key, no SET options)",
			     ks->name);
		return;
	}
	int64_t bound = op == CAUSAL_GET ? maxstale_bound(c) : -1;
	if (bound >= 0) {
		/* Bounded staleness: served here only if this node holds every
		 * update every peer had reported bound ms ago. */
		uint64_t lag = causal_lag_ms(srv->causal);
		if (lag > (uint64_t)bound) {
			srv->stats.errors++;
			if (lag == UINT64_MAX)
				reply_errorf(c,
					     "TRYAGAIN this node has not heard from every peer "
					     "yet, so its lag is unknown: over maxstale %" PRId64
					     " ms (nothing was done); retry on another node",
					     bound);
			else
				reply_errorf(c,
					     "TRYAGAIN this node trails its peers by %" PRIu64
					     " ms, over maxstale %" PRId64
					     " ms (nothing was done); retry on another node",
					     lag, bound);
			return;
		}
	}
	uint8_t level = pick_level(c);
	observe_op_level(c,
			 op == CAUSAL_GET && level == CAUSAL_LEVEL_LOCAL ? OBS_LOCAL : OBS_CAUSAL,
			 op != CAUSAL_GET);
	struct vclock *session = session_of(c);
	bool now = !c->causal_waiting && ((level == CAUSAL_LEVEL_LOCAL && op == CAUSAL_GET) ||
					  causal_ready(srv->causal, session));
	const char *key = c->argv[1].p;
	size_t klen = c->argv[1].len;
	const char *val = op == CAUSAL_SET ? c->argv[2].p : NULL;
	size_t vlen = op == CAUSAL_SET ? c->argv[2].len : 0;
	if (now) {
		struct sp_buf out;
		sp_buf_init(&out);
		run_op(srv, c, op, c->proto, key, klen, val, vlen, ks->siblings,
		       level == CAUSAL_LEVEL_LOCAL ? OBS_LOCAL : OBS_CAUSAL, &c->op, &out);
		sp_buf_append(&c->out, sp_buf_begin(&out), out.len);
		sp_buf_free(&out);
		return;
	}
	enqueue(c, op, key, klen, val, vlen)->siblings = ks->siblings;
}

/* A session token: the session's id (16 hex digits), '.', and its context
 * (vclock_to_token: "v1.<hex>"). */
#define SID_HEX 16

static int parse_token(const char *s, size_t len, uint64_t *sid, struct vclock *ctx)
{
	if (len < SID_HEX + 1 || s[SID_HEX] != '.')
		return -1;
	uint64_t id = 0;
	for (int i = 0; i < SID_HEX; i++) {
		char ch = s[i];
		int d = ch >= '0' && ch <= '9'	 ? ch - '0'
			: ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
						 : -1;
		if (d < 0)
			return -1;
		id = id << 4 | (uint64_t)d;
	}
	if (!id || vclock_from_token(s + SID_HEX + 1, len - SID_HEX - 1, ctx))
		return -1;
	*sid = id;
	return 0;
}

/* traceparent_valid: "00-<32 hex>-<16 hex>-<2 hex>" (W3C Trace Context). */
static bool traceparent_valid(const char *s, size_t len)
{
	static const char shape[] = "hh-hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh-hhhhhhhhhhhhhhhh-hh";
	if (len != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
		if (shape[i] == '-' ? s[i] != '-' : !hex)
			return false;
	}
	return true;
}

/* SESSION [TOKEN | RESUME token | RESET | TRACE traceparent|OFF] */
void cmd_session(struct client *c)
{
	if (c->causal_waiting && c->argc <= 3) {
		/* A token taken (or a context changed) while the client's causal
		 * commands wait must come after them, or it would miss what they
		 * see and do. */
		struct causal_wait *w =
		    enqueue(c, CAUSAL_SESSION, c->argc > 1 ? c->argv[1].p : NULL,
			    c->argc > 1 ? c->argv[1].len : 0, c->argc > 2 ? c->argv[2].p : NULL,
			    c->argc > 2 ? c->argv[2].len : 0);
		w->argc = (uint8_t)c->argc;
		return;
	}
	struct vclock *s = session_of(c);
	struct sp_buf b;
	sp_buf_init(&b);
	if (c->argc == 1) {
		sp_buf_appendf(&b, "%016" PRIx64 " ", c->session_id);
		vclock_format(s, &b);
		reply_bulk(c, sp_buf_begin(&b), b.len);
	} else if (c->argc == 2 && arg_equals(c->argv[1], "token")) {
		sp_buf_appendf(&b, "%016" PRIx64 ".", c->session_id);
		vclock_to_token(s, &b);
		reply_bulk(c, sp_buf_begin(&b), b.len);
	} else if (c->argc == 3 && arg_equals(c->argv[1], "resume")) {
		struct vclock t;
		uint64_t sid;
		if (parse_token(c->argv[2].p, c->argv[2].len, &sid, &t)) {
			reply_error(c, "ERR not a session token (SESSION TOKEN gives one)");
		} else if (vclock_merge(s, &t)) {
			reply_error(c, "ERR the token names more nodes than a session can hold");
		} else {
			c->session_id = sid;
			reply_ok(c);
		}
	} else if (c->argc == 2 && arg_equals(c->argv[1], "reset")) {
		vclock_init(s);
		reply_ok(c);
	} else if (c->argc == 3 && arg_equals(c->argv[1], "trace")) {
		if (arg_equals(c->argv[2], "off")) {
			c->traceparent[0] = '\0';
			reply_ok(c);
		} else if (!traceparent_valid(c->argv[2].p, c->argv[2].len)) {
			reply_error(c, "ERR not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)");
		} else {
			memcpy(c->traceparent, c->argv[2].p, c->argv[2].len);
			c->traceparent[c->argv[2].len] = '\0';
			reply_ok(c);
		}
	} else {
		reply_error(c, "ERR usage: SESSION [TOKEN | RESUME <token> | RESET | TRACE "
			       "<traceparent>|OFF]");
	}
	sp_buf_free(&b);
}

void causal_info(struct server *srv, struct sp_buf *b)
{
	struct causal_stats s;
	causal_get_stats(srv->causal, &s);
	struct sp_buf v;
	sp_buf_init(&v);
	vclock_format(causal_applied(srv->causal), &v);
	sp_buf_appendf(
	    b,
	    "# Causal\r\n"
	    "causal_applied:%.*s\r\n"
	    "causal_keys:%" PRIu64 "\r\ncausal_writes:%" PRIu64 "\r\ncausal_reads:%" PRIu64 "\r\n"
	    "causal_updates_sent:%" PRIu64 "\r\ncausal_updates_received:%" PRIu64
	    "\r\ncausal_updates_applied:%" PRIu64 "\r\ncausal_updates_duplicate:%" PRIu64 "\r\n"
	    "causal_pending:%" PRIu64 "\r\ncausal_pending_dropped:%" PRIu64
	    "\r\ncausal_concurrent_writes:%" PRIu64 "\r\ncausal_resends:%" PRIu64
	    "\r\ncausal_log_entries:%" PRIu64 "\r\n",
	    (int)v.len, sp_buf_begin(&v), s.keys, s.writes, s.reads, s.updates_sent,
	    s.updates_received, s.updates_applied, s.updates_duplicate, s.pending,
	    s.pending_dropped, s.concurrent_writes, s.resends, s.log_entries);
	sp_buf_free(&v);
}

void causal_client_gone(struct client *c)
{
	free(c->session);
	c->session = NULL;
}
