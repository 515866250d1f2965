/*
 * cmd_eventual: the commands of eventual keyspaces, turned into engine
 * ops (src/engine/eventual) and their results into replies.
 *
 * A command on a key of an eventual keyspace never touches Raft: route.c
 * hands it here, it becomes one ev_op at the level asked (request, then
 * connection, then keyspace, then quorum), and its reply takes a reply
 * slot so that it leaves in command order however the op finishes.
 *
 * Commands (documented in README.md and in the command table):
 *   GET key / SET key value / DEL key     LWW registers (HLC timestamps)
 *   LWW.SET key value -> timestamp        LWW.GET key -> [value, ts, node]
 *   COUNTER.INCR|DECR key [n] -> value    COUNTER.GET key      (PN-Counter)
 *   GCOUNTER.INCR key [n] -> value        GCOUNTER.GET key     (G-Counter)
 *   GSET.ADD key m...  TPSET.ADD|REM key m...  ORSET.ADD|REM key m...
 *     -> members changed here;  <SET>.MEMBERS key, <SET>.CONTAINS key m,
 *     <SET>.CARD key
 *   MVREG.SET key value -> OK             MVREG.GET key -> [values...]
 *   EVENTUAL DIGEST | REPLICAS key | STATS
 *
 * It must not: run an eventual command through Raft, or answer an unknown
 * outcome as success or failure.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "engine/eventual/eventual.h"
#include "server/cmd.h"
#include "server/entry.h"
#include "server/keyspace.h"
#include "server/route.h"

/* How a finished op becomes a reply. */
enum fmt {
	FMT_GET = 1,  /* LWW value or nil */
	FMT_OK,	      /* +OK */
	FMT_N,	      /* :n */
	FMT_LWW_GET,  /* [value, ts, node] or nil */
	FMT_COUNTER,  /* :value of a gcounter/pncounter (0 when absent) */
	FMT_MEMBERS,  /* set members */
	FMT_CONTAINS, /* :1/:0 for the member kept in the request */
	FMT_CARD,     /* :members */
	FMT_MVGET,    /* [values...] */
	FMT_FEATURE,  /* FEATURE.GET / HISTORY: the command is kept in member */
};

struct ev_req {
	struct server *srv;
	struct client *c;
	struct reply_slot *slot;
	uint8_t proto, fmt, want; /* want: the CRDT type a read expects (0: LWW for GET) */
	struct stale_ev *sample;  /* the sampler checks this read (stale.c) */
	uint8_t kind;		  /* enum ev_op_kind */
	size_t mlen;
	char member[]; /* FMT_CONTAINS */
};

struct ev_cmd {
	const char *name;
	uint8_t kind, fmt, want;
	int min_args, max_args; /* after the key; -1: no maximum */
};

/* want for reads: which types the reply accepts. */
#define WANT_COUNTER 0xF0

_Static_assert(sizeof(struct slice) == sizeof(struct ev_bytes) &&
		   offsetof(struct slice, p) == offsetof(struct ev_bytes, p) &&
		   offsetof(struct slice, len) == offsetof(struct ev_bytes, len),
	       "a command's argv is passed to the engine as it is");

static const struct ev_cmd ev_cmds[] = {
    {"get", EV_OP_READ, FMT_GET, CRDT_LWW, 0, 0},
    {"set", EV_OP_LWW_SET, FMT_OK, 0, 1, 1},
    {"del", EV_OP_LWW_DEL, FMT_N, 0, 0, 0},
    {"unlink", EV_OP_LWW_DEL, FMT_N, 0, 0, 0},
    {"lww.set", EV_OP_LWW_SET, FMT_N, 0, 1, 1},
    {"lww.get", EV_OP_READ, FMT_LWW_GET, CRDT_LWW, 0, 0},
    {"counter.incr", EV_OP_PNCOUNTER_ADD, FMT_N, 0, 0, 1},
    {"counter.decr", EV_OP_PNCOUNTER_ADD, FMT_N, 0, 0, 1},
    {"counter.get", EV_OP_READ, FMT_COUNTER, CRDT_PNCOUNTER, 0, 0},
    {"gcounter.incr", EV_OP_GCOUNTER_ADD, FMT_N, 0, 0, 1},
    {"gcounter.get", EV_OP_READ, FMT_COUNTER, CRDT_GCOUNTER, 0, 0},
    {"gset.add", EV_OP_GSET_ADD, FMT_N, 0, 1, -1},
    {"gset.members", EV_OP_READ, FMT_MEMBERS, CRDT_GSET, 0, 0},
    {"gset.contains", EV_OP_READ, FMT_CONTAINS, CRDT_GSET, 1, 1},
    {"gset.card", EV_OP_READ, FMT_CARD, CRDT_GSET, 0, 0},
    {"tpset.add", EV_OP_TPSET_ADD, FMT_N, 0, 1, -1},
    {"tpset.rem", EV_OP_TPSET_REM, FMT_N, 0, 1, -1},
    {"tpset.members", EV_OP_READ, FMT_MEMBERS, CRDT_2PSET, 0, 0},
    {"tpset.contains", EV_OP_READ, FMT_CONTAINS, CRDT_2PSET, 1, 1},
    {"tpset.card", EV_OP_READ, FMT_CARD, CRDT_2PSET, 0, 0},
    {"orset.add", EV_OP_ORSET_ADD, FMT_N, 0, 1, -1},
    {"orset.rem", EV_OP_ORSET_REM, FMT_N, 0, 1, -1},
    {"orset.members", EV_OP_READ, FMT_MEMBERS, CRDT_ORSET, 0, 0},
    {"orset.contains", EV_OP_READ, FMT_CONTAINS, CRDT_ORSET, 1, 1},
    {"orset.card", EV_OP_READ, FMT_CARD, CRDT_ORSET, 0, 0},
    {"mvreg.set", EV_OP_MVREG_SET, FMT_OK, 0, 1, 1},
    {"mvreg.get", EV_OP_READ, FMT_MVGET, CRDT_MVREG, 0, 0},
    {"feature.set", EV_OP_FVEC_SET, FMT_N, 0, 3, -1},
    {"feature.get", EV_OP_READ, FMT_FEATURE, CRDT_FVEC, 0, -1},
    {"feature.history", EV_OP_READ, FMT_FEATURE, CRDT_FVEC, 1, 3},
};

#define NEV_CMDS (sizeof(ev_cmds) / sizeof(ev_cmds[0]))

static const struct ev_cmd *ev_cmd_find(const char *name)
{
	for (size_t i = 0; i < NEV_CMDS; i++)
		if (strcmp(ev_cmds[i].name, name) == 0)
			return &ev_cmds[i];
	return NULL;
}

/* ---- replies ---- */

static void put_error(struct server *srv, struct sp_buf *b, const struct ev_result *r)
{
	char msg[512];
	const char *m = r->msg ? r->msg : sp_strerror(r->status);
	switch (r->status) {
	case SP_ERR_AGAIN:
		snprintf(msg, sizeof(msg), "TRYAGAIN %s (nothing was done)", m);
		break;
	case SP_ERR_UNKNOWN:
		if (r->replicas)
			snprintf(msg, sizeof(msg),
				 "UNKNOWN %s: %u of %u replicas acknowledged; the write may or may "
				 "not take effect",
				 m, r->acks, r->replicas);
		else
			snprintf(msg, sizeof(msg),
				 "UNKNOWN %s; the write may or may not take effect", m);
		break;
	default:
		if (strncmp(m, "WRONGTYPE", 9) == 0)
			snprintf(msg, sizeof(msg), "%s", m);
		else
			snprintf(msg, sizeof(msg), "ERR %s", m);
	}
	srv->stats.errors++;
	resp_write_error(b, msg);
}

static void put_wrongtype(struct server *srv, struct sp_buf *b, uint8_t have, uint8_t want)
{
	char msg[200];
	snprintf(msg, sizeof(msg), "WRONGTYPE the key holds a %s; this command reads a %s",
		 crdt_type_name(have), want == WANT_COUNTER ? "counter" : crdt_type_name(want));
	srv->stats.errors++;
	resp_write_error(b, msg);
}

struct members_ctx {
	struct sp_buf *b;
};

static int put_member(void *ctx, const uint8_t *m, size_t len)
{
	struct members_ctx *mc = ctx;
	resp_write_bulk(mc->b, m, len);
	return 0;
}

static int count_member(void *ctx, const uint8_t *m, size_t len)
{
	(void)m;
	(void)len;
	(*(size_t *)ctx)++;
	return 0;
}

static void format(struct ev_req *q, const struct ev_result *r, struct sp_buf *b)
{
	struct server *srv = q->srv;
	int proto = q->proto;
	if (r->status) {
		put_error(srv, b, r);
		return;
	}
	if (q->fmt == FMT_OK) {
		resp_write_simple(b, "OK");
		return;
	}
	if (q->fmt == FMT_N) {
		resp_write_integer(b, r->n);
		return;
	}
	/* Reads: the merged state must be of the type the command reads. */
	if (r->type && r->type != q->want) {
		put_wrongtype(srv, b, r->type, q->want);
		return;
	}
	const uint8_t *s = r->state;
	size_t sl = r->type ? r->slen : 0;
	switch (q->fmt) {
	case FMT_GET:
	case FMT_LWW_GET: {
		struct crdt_lww w;
		if (crdt_lww_get(s, sl, &w) || w.tombstone) {
			srv->stats.misses++;
			if (q->fmt == FMT_GET)
				resp_write_null(b, proto);
			else
				resp_write_null_array(b, proto);
			return;
		}
		srv->stats.hits++;
		if (q->fmt == FMT_GET) {
			resp_write_bulk(b, w.v, w.vlen);
			return;
		}
		resp_write_array_len(b, 3);
		resp_write_bulk(b, w.v, w.vlen);
		resp_write_integer(b, (int64_t)w.ts);
		resp_write_integer(b, (int64_t)w.node);
		return;
	}
	case FMT_COUNTER: {
		int64_t v = 0;
		int rc = q->want == CRDT_GCOUNTER ? crdt_gcounter_value(s, sl, &v)
						  : crdt_pncounter_value(s, sl, &v);
		if (rc) {
			struct ev_result e = {.status = rc};
			put_error(srv, b, &e);
			return;
		}
		resp_write_integer(b, v);
		return;
	}
	case FMT_MEMBERS: {
		size_t n = 0;
		(void)crdt_set_members(q->want, s, sl, count_member, &n);
		resp_write_set_len(b, n, proto);
		struct members_ctx mc = {b};
		(void)crdt_set_members(q->want, s, sl, put_member, &mc);
		return;
	}
	case FMT_CONTAINS: {
		int in = crdt_set_contains(q->want, s, sl, q->member, q->mlen);
		resp_write_integer(b, in > 0);
		return;
	}
	case FMT_CARD: {
		uint64_t n = 0;
		(void)crdt_set_count(q->want, s, sl, &n);
		resp_write_integer(b, (int64_t)n);
		return;
	}
	case FMT_FEATURE:
		feature_reply_state(srv, (const uint8_t *)q->member, q->mlen, s, sl, proto, b);
		return;
	case FMT_MVGET: {
		size_t n = 0;
		(void)crdt_mvreg_values(s, sl, count_member, &n);
		if (srv->ev_limits.max_siblings && n > srv->ev_limits.max_siblings) {
			char msg[160];
			snprintf(msg, sizeof(msg),
				 "ERR the register has %zu concurrent values, over max-siblings "
				 "%u; MVREG.SET resolves them",
				 n, srv->ev_limits.max_siblings);
			srv->stats.errors++;
			resp_write_error(b, msg);
			return;
		}
		observe_siblings(srv, true, n);
		resp_write_array_len(b, n);
		struct members_ctx mc = {b};
		(void)crdt_mvreg_values(s, sl, put_member, &mc);
		return;
	}
	}
}

/* receipt_of: the replicas that answered, and for an LWW register the
 * version read or written. */
static void receipt_of(const struct ev_req *q, const struct ev_result *r, struct op_obs *op)
{
	struct crdt_lww w;
	uint64_t self = q->srv->node_id;
	if (q->kind == EV_OP_READ && r->type == CRDT_LWW && !crdt_lww_get(r->state, r->slen, &w))
		observe_receipt(op, self, r->acks, RCPT_HLC, w.ts, w.node, 0);
	else if (q->kind == EV_OP_LWW_SET && r->n > 0)
		observe_receipt(op, self, r->acks, RCPT_HLC, (uint64_t)r->n, self, 0);
	else
		observe_receipt(op, self, r->acks, RCPT_NONE, 0, 0, 0);
}

static void on_done(void *arg, const struct ev_result *r)
{
	struct ev_req *q = arg;
	if (q->sample)
		stale_ev_served(q->sample, r);
	if (q->c && q->slot && q->slot->obs.receipt)
		receipt_of(q, r, &q->slot->obs);
	if (q->c) {
		struct sp_buf b;
		sp_buf_init(&b);
		format(q, r, &b);
		route_slot_fill(q->c, q->slot, sp_buf_begin(&b), b.len);
		sp_buf_free(&b);
	}
	free(q);
}

void evcmd_detach(void *ev)
{
	struct ev_req *q = ev;
	q->c = NULL;
	q->slot = NULL;
}

/* ---- submitting ---- */

static uint8_t pick_level(const struct client *c, const struct keyspace *ks, bool write)
{
	if (c->req_ev_level)
		return c->req_ev_level;
	uint8_t l = write ? c->ev_write : c->ev_read;
	if (l)
		return l;
	l = write ? ks->ev_write : ks->ev_read;
	return l ? l : EV_LEVEL_QUORUM;
}

void evcmd_submit(struct client *c, const struct command *cmd, const struct keyspace *ks)
{
	struct server *srv = c->srv;
	const struct ev_cmd *ec = ev_cmd_find(cmd->name);
	/* route.c refused FEATURE.* outside feature views. */
	if (ks->features && !(cmd->flags & CMD_FEATURE)) {
		reply_errorf(c,
			     "ERR '%s' is a feature view: it takes FEATURE.SET, FEATURE.GET and "
			     "FEATURE.HISTORY",
			     ks->name);
		return;
	}
	if (ks->features && !ec) {
		reply_errorf(c,
			     "ERR %s is for causal feature views; '%s' is eventual: one "
			     "FEATURE.GET per entity",
			     cmd->name, ks->name);
		return;
	}
	if (ks->features && feature_check(c, cmd))
		return;
	if (!ec) {
		reply_errorf(c,
			     "ERR '%s' is not available on eventual keyspace '%s' (GET, SET, DEL, "
			     "LWW.*, COUNTER.*, GCOUNTER.*, GSET.*, TPSET.*, ORSET.*, MVREG.*)",
			     cmd->name, ks->name);
		return;
	}
	if (c->req_causal_level) {
		reply_errorf(c,
			     "ERR level %s is for causal keyspaces; '%s' is eventual (one, "
			     "quorum, all)",
			     causal_level_name(c->req_causal_level), ks->name);
		return;
	}
	if (c->req_level) {
		reply_errorf(c,
			     "ERR level %s is for strong keyspaces; '%s' is eventual (one, "
			     "quorum, all)",
			     level_name(c->req_level), ks->name);
		return;
	}
	size_t nargs = c->argc - 2;
	if ((int)nargs < ec->min_args || (ec->max_args >= 0 && (int)nargs > ec->max_args)) {
		if (strcmp(ec->name, "set") == 0)
			reply_errorf(c, "ERR SET options (EX, PX, NX, XX, GET, ...) are not "
					"available in eventual keyspaces: SET key value");
		else if (strcmp(ec->name, "del") == 0 || strcmp(ec->name, "unlink") == 0)
			reply_errorf(c, "ERR DEL takes one key in eventual keyspaces");
		else
			reply_arity_error(c);
		return;
	}
	struct ev_op op = {
	    .kind = ec->kind,
	    .rf = ks->rf,
	    .flags = ks->sloppy ? EV_OP_SLOPPY : 0,
	    .key = c->argv[1].p,
	    .klen = c->argv[1].len,
	};
	if (ec->kind == EV_OP_READ && maxstale_bound(c) >= 0) {
		reply_errorf(c,
			     "ERR MAXSTALE needs a node that knows its lag (strong and causal "
			     "keyspaces); '%s' is eventual: read at ONE, QUORUM or ALL",
			     ks->name);
		return;
	}
	op.level = pick_level(c, ks, ec->kind != EV_OP_READ);
	observe_op_level(c,
			 op.level == EV_LEVEL_ONE   ? OBS_ONE
			 : op.level == EV_LEVEL_ALL ? OBS_ALL
						    : OBS_QUORUM,
			 ec->kind != EV_OP_READ);
	if (ec->kind == EV_OP_PNCOUNTER_ADD || ec->kind == EV_OP_GCOUNTER_ADD) {
		int64_t n = 1;
		if (nargs == 1 && arg_to_int64(c, c->argv[2], &n))
			return;
		if (strcmp(ec->name, "counter.decr") == 0) {
			if (n == INT64_MIN) {
				reply_error(c, "ERR decrement would overflow");
				return;
			}
			n = -n;
		}
		if (ec->kind == EV_OP_GCOUNTER_ADD && n <= 0) {
			reply_error(c,
				    "ERR a G-Counter only grows: the increment must be positive");
			return;
		}
		op.n = n;
	} else if (ec->kind != EV_OP_READ) {
		op.nargs = (uint32_t)nargs;
		op.args = (const struct ev_bytes *)(c->argv + 2);
		if (ec->kind == EV_OP_FVEC_SET)
			op.n = ks->feature_history;
	}
	const struct crdt_limits *lim = &srv->ev_limits;
	for (uint32_t i = 0; i < op.nargs; i++)
		if (lim->max_member_len && c->argv[2 + i].len > lim->max_member_len) {
			reply_errorf(c, "ERR a member or value is %zu bytes; the limit is %u",
				     c->argv[2 + i].len, lim->max_member_len);
			return;
		}
	struct sp_buf fcmd;
	sp_buf_init(&fcmd);
	if (ec->fmt == FMT_FEATURE)
		entry_put_cmd(&fcmd, (const struct entry_arg *)c->argv, c->argc);
	size_t mlen = ec->fmt == FMT_CONTAINS ? c->argv[2].len : fcmd.len;
	struct ev_req *q = sp_calloc(1, sizeof(*q) + mlen + 1);
	q->srv = srv;
	q->c = c;
	q->proto = (uint8_t)c->proto;
	q->fmt = ec->fmt;
	q->kind = ec->kind;
	q->want = ec->want;
	q->mlen = mlen;
	if (mlen)
		memcpy(q->member, ec->fmt == FMT_FEATURE ? sp_buf_begin(&fcmd) : c->argv[2].p,
		       mlen);
	sp_buf_free(&fcmd);
	q->slot = route_slot_reserve(c, q, evcmd_detach);
	struct stale_ev *sample = ec->fmt == FMT_GET ? stale_ev_begin(srv, &op) : NULL;
	q->sample = sample;
	eventual_submit(srv->eventual, &op, on_done, q);
	if (sample)
		stale_ev_start(sample, &op);
}

/* A CRDT command reached a key of another mode's keyspace. */
void cmd_crdt(struct client *c)
{
	reply_errorf(c,
		     "ERR '%s' needs a key in an eventual keyspace (KEYSPACE CREATE <name> "
		     "MODE eventual)",
		     c->cmd ? c->cmd->name : "?");
}

/* ---- EVENTUAL ---- */

struct digest_ctx {
	struct client *c;
	size_t n;
};

static void digest_one(void *ctx, uint8_t rf, uint64_t token, uint64_t root, uint64_t keys)
{
	struct digest_ctx *d = ctx;
	char line[96];
	snprintf(line, sizeof(line), "%u %016" PRIx64 " %016" PRIx64 " %" PRIu64, rf, token, root,
		 keys);
	reply_bulk_str(d->c, line);
	d->n++;
}

static void count_digest(void *ctx, uint8_t rf, uint64_t token, uint64_t root, uint64_t keys)
{
	(void)rf, (void)token, (void)root, (void)keys;
	(*(size_t *)ctx)++;
}

/* rf_classes: the replication factors of the eventual keyspaces known. */
static uint32_t rf_classes(const struct server *srv)
{
	uint32_t mask = 0;
	for (size_t i = 0; i < srv->nkeyspaces; i++)
		if (srv->keyspaces[i].mode == SP_MODE_EVENTUAL)
			mask |= 1u << srv->keyspaces[i].rf;
	if (srv->cfg->default_mode == SP_MODE_EVENTUAL)
		mask |= 1u << srv->cfg->eventual_rf;
	return mask;
}

void cmd_eventual(struct client *c)
{
	struct server *srv = c->srv;
	struct slice sub = c->argv[1];
	if (arg_equals(sub, "digest") && c->argc == 2) {
		size_t n = 0;
		uint32_t mask = rf_classes(srv);
		eventual_digest(srv->eventual, mask, count_digest, &n);
		reply_array(c, n);
		struct digest_ctx d = {c, 0};
		eventual_digest(srv->eventual, mask, digest_one, &d);
	} else if (arg_equals(sub, "replicas") && c->argc == 3) {
		struct keyspace ks;
		keyspace_of_key(srv, c->argv[2].p, c->argv[2].len, &ks);
		if (ks.mode != SP_MODE_EVENTUAL) {
			reply_errorf(c, "ERR the key is in %s keyspace '%s'", mode_name(ks.mode),
				     ks.name);
			return;
		}
		uint64_t ids[EV_MAX_RF];
		size_t n =
		    eventual_replicas(srv->eventual, c->argv[2].p, c->argv[2].len, ks.rf, ids);
		reply_array(c, n);
		for (size_t i = 0; i < n; i++)
			reply_integer(c, (int64_t)ids[i]);
	} else {
		reply_error(c, "ERR usage: EVENTUAL DIGEST | EVENTUAL REPLICAS <key>");
	}
}

void evcmd_info(struct server *srv, struct sp_buf *b)
{
	struct ev_stats s;
	eventual_get_stats(srv->eventual, &s);
	sp_buf_appendf(
	    b,
	    "# Eventual\r\n"
	    "ev_keys:%" PRIu64 "\r\nev_peers:%" PRIu64 "\r\nev_peers_alive:%" PRIu64 "\r\n"
	    "ev_reads:%" PRIu64 "\r\nev_writes:%" PRIu64 "\r\nev_proxied:%" PRIu64 "\r\n"
	    "ev_proxies_expired:%" PRIu64 "\r\n"
	    "ev_unavailable:%" PRIu64 "\r\nev_timeouts:%" PRIu64 "\r\nev_unknown:%" PRIu64 "\r\n"
	    "ev_replica_writes:%" PRIu64 "\r\nev_replica_reads:%" PRIu64 "\r\n"
	    "ev_merges:%" PRIu64 "\r\n"
	    "ev_read_repairs:%" PRIu64 "\r\nev_read_repairs_blocking:%" PRIu64 "\r\n"
	    "ev_hints_queued:%" PRIu64 "\r\nev_hints_delivered:%" PRIu64
	    "\r\nev_hints_dropped:%" PRIu64 "\r\nev_hints_pending:%" PRIu64
	    "\r\nev_hint_bytes:%" PRIu64 "\r\n"
	    "ev_ae_rounds:%" PRIu64 "\r\nev_ae_ranges_differ:%" PRIu64
	    "\r\nev_ae_keys_sent:%" PRIu64 "\r\nev_ae_keys_repaired:%" PRIu64 "\r\n"
	    "ev_lww_concurrent_overwrites:%" PRIu64 "\r\nev_type_conflicts:%" PRIu64
	    "\r\nev_clock_skew_flagged:%" PRIu64 "\r\n",
	    s.keys, s.peers, s.peers_alive, s.reads, s.writes, s.proxied, s.proxies_expired,
	    s.unavailable, s.timeouts, s.unknown, s.replica_writes, s.replica_reads, s.merges,
	    s.read_repairs, s.read_repairs_blocking, s.hints_queued, s.hints_delivered,
	    s.hints_dropped, s.hints_pending, s.hint_bytes, s.ae_rounds, s.ae_ranges_differ,
	    s.ae_keys_sent, s.ae_keys_repaired, s.lww_concurrent, s.type_conflicts,
	    s.clock_skew_flagged);
}
