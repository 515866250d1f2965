/*
 * cmd_strong: the commands of strong keyspaces beyond Redis's: levels
 * (CONSISTENCY, LEVEL), revisions (GETREV, CAS), transactions (MULTI,
 * EXEC, DISCARD) and keyspaces (KEYSPACE).
 *
 * Commands that change data run only inside an entry's apply (route.c
 * proposes them); those that only read run wherever route.c decides.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "engine/eventual/eventual.h"
#include "server/entry.h"
#include "engine/causal/causal.h"
#include "server/keyspace.h"
#include "server/route.h"
#include "server/cmd.h"
#include "server/server.h"

static int parse_level_arg(struct client *c, struct slice a, uint8_t *level)
{
	int rc = level_parse(a.p, a.len, level);
	if (rc == SP_ERR_RANGE) {
		reply_errorf(c,
			     "ERR level '%.*s' belongs to another mode; strong keyspaces offer "
			     "linearizable, lease and stale",
			     (int)(a.len > 32 ? 32 : a.len), a.p);
		return -1;
	}
	if (rc) {
		reply_errorf(c, "ERR unknown level '%.*s' (linearizable, lease, stale, default)",
			     (int)(a.len > 32 ? 32 : a.len), a.p);
		return -1;
	}
	return 0;
}

static int parse_ev_level_arg(struct client *c, struct slice a, uint8_t *level)
{
	int rc = ev_level_parse(a.p, a.len, level);
	if (rc) {
		reply_errorf(c, "ERR %s level '%.*s' (eventual keyspaces offer one, quorum, all)",
			     rc == SP_ERR_RANGE ? "not an eventual" : "unknown",
			     (int)(a.len > 32 ? 32 : a.len), a.p);
		return -1;
	}
	return 0;
}

/* any_level reads a level of either mode: *strong or *eventual is set
 * (the other left 0); 0, or -1 after replying. */
static int any_level(struct client *c, struct slice a, uint8_t *strong, uint8_t *eventual,
		     uint8_t *causal)
{
	*strong = *eventual = *causal = 0;
	if (arg_equals(a, "default"))
		return parse_level_arg(c, a, strong);
	if (ev_level_parse(a.p, a.len, eventual) == 0)
		return 0;
	*eventual = 0;
	if (causal_level_parse(a.p, a.len, causal) == 0)
		return 0;
	*causal = 0;
	return parse_level_arg(c, a, strong);
}

/*
 * CONSISTENCY                      this connection's strong read level
 * CONSISTENCY <strong level>       set it
 * CONSISTENCY <one|quorum|all>     eventual reads and writes
 * CONSISTENCY READ|WRITE <level>   eventual reads or writes only
 * CONSISTENCY EVENTUAL             [read level, write level]
 * CONSISTENCY <causal|local>       causal keyspaces
 * CONSISTENCY LEVELS               every mode's level on this connection
 */
/* parse_maxstale reads a bound in ms (0..1 day) into *out as ms + 1. */
static int parse_maxstale(struct client *c, struct slice a, uint64_t *out)
{
	int64_t ms;
	if (!sp_parse_int64(a.p, a.len, &ms) || ms < 0 || ms > 86400000) {
		reply_error(c, "ERR maxstale is a number of milliseconds, 0..86400000");
		return -1;
	}
	*out = (uint64_t)ms + 1;
	return 0;
}

int64_t maxstale_bound(const struct client *c)
{
	uint64_t b = c->req_maxstale_ms ? c->req_maxstale_ms : c->maxstale_ms;
	return b ? (int64_t)(b - 1) : -1;
}

void cmd_consistency(struct client *c)
{
	if (c->argc == 1) {
		reply_bulk_str(c, level_name(c->level));
		return;
	}
	if (c->argc == 2 && arg_equals(c->argv[1], "eventual")) {
		reply_array(c, 2);
		reply_bulk_str(c, ev_level_name(c->ev_read));
		reply_bulk_str(c, ev_level_name(c->ev_write));
		return;
	}
	if (c->argc == 2 && arg_equals(c->argv[1], "levels")) {
		/* Every mode's level on this connection (CONSISTENCY alone shows
		 * the strong one, as it always has). */
		reply_map(c, 5);
		reply_bulk_str(c, "strong");
		reply_bulk_str(c, level_name(c->level));
		reply_bulk_str(c, "causal");
		reply_bulk_str(c, causal_level_name(c->causal_level));
		reply_bulk_str(c, "eventual-read");
		reply_bulk_str(c, ev_level_name(c->ev_read));
		reply_bulk_str(c, "eventual-write");
		reply_bulk_str(c, ev_level_name(c->ev_write));
		reply_bulk_str(c, "maxstale-ms");
		if (c->maxstale_ms)
			reply_integer(c, (int64_t)c->maxstale_ms - 1);
		else
			reply_null(c);
		return;
	}
	if (c->argc == 3 && arg_equals(c->argv[1], "maxstale")) {
		if (arg_equals(c->argv[2], "off"))
			c->maxstale_ms = 0;
		else if (parse_maxstale(c, c->argv[2], &c->maxstale_ms))
			return;
		reply_ok(c);
		return;
	}
	if (c->argc == 2 && arg_equals(c->argv[1], "maxstale")) {
		if (c->maxstale_ms)
			reply_integer(c, (int64_t)c->maxstale_ms - 1);
		else
			reply_null(c);
		return;
	}
	if (c->argc == 3 && (arg_equals(c->argv[1], "read") || arg_equals(c->argv[1], "write"))) {
		uint8_t level;
		if (parse_ev_level_arg(c, c->argv[2], &level))
			return;
		if (arg_equals(c->argv[1], "read"))
			c->ev_read = level;
		else
			c->ev_write = level;
		reply_ok(c);
		return;
	}
	if (c->argc != 2) {
		reply_arity_error(c);
		return;
	}
	uint8_t level, ev, causal;
	if (any_level(c, c->argv[1], &level, &ev, &causal))
		return;
	if (ev)
		c->ev_read = c->ev_write = ev;
	else if (causal)
		c->causal_level = causal;
	else
		c->level = level;
	reply_ok(c);
}

/* run_inner runs the command a two-word prefix (LEVEL x, MAXSTALE n)
 * wraps, with c's own argv restored after. */
static void run_inner(struct client *c)
{
	struct slice *argv = c->argv;
	size_t argc = c->argc;
	c->argv += 2;
	c->argc -= 2;
	command_execute(c);
	c->argv = argv;
	c->argc = argc;
}

/* LEVEL <level> <command> [args...]: one command at another level. */
void cmd_level(struct client *c)
{
	uint8_t level, ev, causal;
	if (any_level(c, c->argv[1], &level, &ev, &causal))
		return;
	if (c->req_level || c->req_ev_level || c->req_causal_level) {
		reply_error(c, "ERR LEVEL cannot be nested");
		return;
	}
	if (c->req_maxstale_ms) {
		reply_error(c, "ERR MAXSTALE cannot be nested or combined with LEVEL");
		return;
	}
	c->req_level = ev || causal ? 0 : level ? level : LEVEL_DEFAULT;
	c->req_ev_level = ev;
	c->req_causal_level = causal;
	run_inner(c);
	c->req_level = 0;
	c->req_ev_level = 0;
	c->req_causal_level = 0;
}

/* MAXSTALE <ms> <command> [args...]: one read that may be served from this
 * node's state only if that trails the cluster by at most ms; otherwise it
 * is forwarded (strong) or refused with TRYAGAIN (causal). */
void cmd_maxstale(struct client *c)
{
	uint64_t b;
	if (parse_maxstale(c, c->argv[1], &b))
		return;
	if (c->req_maxstale_ms || c->req_level || c->req_ev_level || c->req_causal_level) {
		reply_error(c, "ERR MAXSTALE cannot be nested or combined with LEVEL");
		return;
	}
	c->req_maxstale_ms = b;
	run_inner(c);
	c->req_maxstale_ms = 0;
}

/* GETREV key: [value, revision] or nil. */
void cmd_getrev(struct client *c)
{
	struct store_value v;
	int rc = store_get(c->srv->store, c->argv[1].p, c->argv[1].len, server_now_ms(c->srv), &v);
	if (rc == SP_ERR_NOTFOUND) {
		reply_null(c);
		return;
	}
	if (rc) {
		reply_store_error(c, rc);
		return;
	}
	if (v.type != STORE_STRING) {
		reply_error(c, "WRONGTYPE Operation against a key holding the wrong kind of value");
		return;
	}
	reply_array(c, 2);
	reply_bulk(c, v.data, v.len);
	reply_integer(c, (int64_t)v.rev);
}

/* CAS key expected new: 1 when the value was expected and is now new, 0
 * when it differed or the key was absent (nothing changed). The key's
 * expiry is kept. */
void cmd_cas(struct client *c)
{
	struct server *srv = c->srv;
	struct store_value v;
	int rc = store_get(srv->store, c->argv[1].p, c->argv[1].len, server_now_ms(srv), &v);
	if (rc == SP_ERR_NOTFOUND) {
		reply_integer(c, 0);
		return;
	}
	if (rc) {
		reply_store_error(c, rc);
		return;
	}
	if (v.type != STORE_STRING) {
		reply_error(c, "WRONGTYPE Operation against a key holding the wrong kind of value");
		return;
	}
	if (v.len != c->argv[2].len || memcmp(v.data, c->argv[2].p, v.len) != 0) {
		reply_integer(c, 0);
		return;
	}
	if (c->argv[3].len > srv->cfg->max_value_bytes) {
		reply_error(c, "ERR value is larger than max-value-bytes");
		return;
	}
	struct store_value nv = {STORE_STRING, 0, v.expire_at_ms, c->argv[3].p, c->argv[3].len, 0};
	rc = store_put(srv->store, c->argv[1].p, c->argv[1].len, &nv);
	if (rc) {
		reply_store_error(c, rc);
		return;
	}
	reply_integer(c, 1);
}

void cmd_multi(struct client *c)
{
	if (c->flags & CLIENT_MULTI) {
		reply_error(c, "ERR MULTI calls can not be nested");
		return;
	}
	c->flags |= CLIENT_MULTI;
	c->flags &= ~(CLIENT_MULTI_BAD | CLIENT_MULTI_FEATURE);
	sp_buf_clear(&c->multi);
	c->multi_n = 0;
	reply_ok(c);
}

void cmd_discard(struct client *c)
{
	if (!(c->flags & CLIENT_MULTI)) {
		reply_error(c, "ERR DISCARD without MULTI");
		return;
	}
	c->flags &= ~(CLIENT_MULTI | CLIENT_MULTI_BAD);
	sp_buf_clear(&c->multi);
	c->multi_n = 0;
	reply_ok(c);
}

void cmd_exec(struct client *c)
{
	if (!(c->flags & CLIENT_MULTI)) {
		reply_error(c, "ERR EXEC without MULTI");
		return;
	}
	bool bad = c->flags & CLIENT_MULTI_BAD;
	bool feature = c->flags & CLIENT_MULTI_FEATURE;
	c->flags &= ~(CLIENT_MULTI | CLIENT_MULTI_BAD | CLIENT_MULTI_FEATURE);
	if (bad) {
		sp_buf_clear(&c->multi);
		c->multi_n = 0;
		reply_error(c, "EXECABORT Transaction discarded because of previous errors.");
		return;
	}
	if (c->multi_n == 0) {
		reply_array(c, 0);
		return;
	}
	if (feature)
		causal_exec_features(c);
	else
		route_exec_multi(c);
}

/* multi_queue is called by command_execute for a command inside MULTI:
 * data commands of strong keyspaces are queued, anything else refuses
 * the transaction. */
void multi_queue(struct client *c, const struct command *cmd)
{
	if (route_class(c, cmd) == REQ_LOCAL) {
		c->flags |= CLIENT_MULTI_BAD;
		reply_errorf(c, "ERR '%s' cannot run inside MULTI (only data commands can)",
			     cmd->name);
		return;
	}
	/* A transaction is all strong (one Raft entry) or all FEATURE.SETs of
	 * feature views (one causal batch), as its first command decides. */
	bool feature = false;
	if (cmd->flags & CMD_FEATURE) {
		struct keyspace ks;
		keyspace_of_key(c->srv, c->argv[1].p, c->argv[1].len, &ks);
		feature = true;
		if (!(cmd->flags & CMD_WRITE) || !ks.features || ks.mode != SP_MODE_CAUSAL) {
			c->flags |= CLIENT_MULTI_BAD;
			reply_error(c, "ERR inside MULTI, causal feature views take FEATURE.SET "
				       "only (a batch is one causal update)");
			return;
		}
		if (feature_check(c, cmd)) {
			c->flags |= CLIENT_MULTI_BAD;
			return;
		}
		if (c->multi_n >= CAUSAL_MAX_MERGE_OPS ||
		    c->multi.len + feature_set_bytes(c) > FEATURE_BATCH_MAX_BYTES) {
			c->flags |= CLIENT_MULTI_BAD;
			reply_errorf(c,
				     "ERR a feature batch holds at most %d FEATURE.SETs and %zu MB "
				     "(it is one causal update)",
				     CAUSAL_MAX_MERGE_OPS, FEATURE_BATCH_MAX_BYTES >> 20);
			return;
		}
	} else if (route_check_keys(c, cmd)) {
		c->flags |= CLIENT_MULTI_BAD;
		return;
	}
	if (c->multi_n && feature != !!(c->flags & CLIENT_MULTI_FEATURE)) {
		c->flags |= CLIENT_MULTI_BAD;
		reply_error(c, "ERR a transaction is either strong commands or FEATURE.SETs, not "
			       "both");
		return;
	}
	if (feature)
		c->flags |= CLIENT_MULTI_FEATURE;
	entry_put_cmd(&c->multi, (const struct entry_arg *)c->argv, c->argc);
	c->multi_n++;
	reply_simple(c, "QUEUED");
}

/* ---- KEYSPACE ---- */

static void keyspace_describe_one(struct client *c, const struct keyspace *ks)
{
	bool ev = ks->mode == SP_MODE_EVENTUAL;
	reply_map(c, (ev ? 6 : 3) + (ks->features ? 2 : 0));
	reply_bulk_str(c, "name");
	reply_bulk_str(c, ks->name);
	reply_bulk_str(c, "mode");
	reply_bulk_str(c, mode_name(ks->mode));
	if (ks->mode == SP_MODE_CAUSAL && ks->features) {
		reply_bulk_str(c, "read-level");
		reply_bulk_str(c, "causal, feature view");
		reply_bulk_str(c, "feature-ttl-ms");
		reply_integer(c, (int64_t)ks->feature_ttl_ms);
		reply_bulk_str(c, "feature-history");
		reply_integer(c, ks->feature_history);
		return;
	}
	if (ks->mode == SP_MODE_CAUSAL) {
		reply_bulk_str(c, "read-level");
		reply_bulk_str(c, ks->siblings ? "causal, siblings" : "causal");
		return;
	}
	if (!ev) {
		reply_bulk_str(c, "read-level");
		reply_bulk_str(c, level_name(ks->read_level ? ks->read_level : LEVEL_LINEARIZABLE));
		return;
	}
	reply_bulk_str(c, "rf");
	reply_integer(c, ks->rf);
	reply_bulk_str(c, "read-level");
	reply_bulk_str(c, ev_level_name(ks->ev_read ? ks->ev_read : EV_LEVEL_QUORUM));
	reply_bulk_str(c, "write-level");
	reply_bulk_str(c, ev_level_name(ks->ev_write ? ks->ev_write : EV_LEVEL_QUORUM));
	reply_bulk_str(c, "sloppy-quorum");
	reply_bulk_str(c, ks->sloppy ? "yes" : "no");
	if (ks->features) {
		reply_bulk_str(c, "feature-ttl-ms");
		reply_integer(c, (int64_t)ks->feature_ttl_ms);
		reply_bulk_str(c, "feature-history");
		reply_integer(c, ks->feature_history);
	}
}

/* feature_option reads one feature-view option of KEYSPACE CREATE
 * (FEATURES yes|no, TTL ms, HISTORY n) into ks. 0, or -1 after replying. */
static int feature_option(struct client *c, struct keyspace *ks, struct slice opt, struct slice val)
{
	int64_t n = 0;
	if (arg_equals(opt, "features")) {
		if (!arg_equals(val, "yes") && !arg_equals(val, "no")) {
			reply_error(c, "ERR FEATURES takes yes or no");
			return -1;
		}
		ks->features = arg_equals(val, "yes");
		return 0;
	}
	if (arg_to_int64(c, val, &n))
		return -1;
	if (arg_equals(opt, "ttl")) {
		if (n < 0) {
			reply_error(c, "ERR TTL is in milliseconds, 0 (never) or more");
			return -1;
		}
		ks->feature_ttl_ms = (uint64_t)n;
		return 0;
	}
	if (n < 1 || n > FEATURE_HISTORY_MAX) {
		reply_errorf(c, "ERR HISTORY must be 1..%d", FEATURE_HISTORY_MAX);
		return -1;
	}
	ks->feature_history = (uint32_t)n;
	return 0;
}

/* feature_view_done checks a keyspace's feature options as a whole (had:
 * TTL or HISTORY was given) and fills the default history. */
static int feature_view_done(struct client *c, struct keyspace *ks, bool had)
{
	if (had && !ks->features) {
		reply_error(c, "ERR TTL and HISTORY are for feature views: add FEATURES yes");
		return -1;
	}
	if (ks->features && ks->siblings) {
		reply_error(c, "ERR a feature view resolves by event time: it takes no SIBLINGS");
		return -1;
	}
	if (ks->features && !ks->feature_history)
		ks->feature_history = FEATURE_HISTORY_DEFAULT;
	return 0;
}

/* The options of a causal keyspace: SIBLINGS yes|no, or FEATURES yes
 * with TTL ms and HISTORY n (a feature view). 0, or -1 after replying. */
static int causal_keyspace_options(struct client *c, struct keyspace *ks)
{
	bool had = false;
	for (size_t i = 5; i < c->argc; i += 2) {
		struct slice opt = c->argv[i];
		if (i + 1 < c->argc && arg_equals(opt, "siblings") &&
		    (arg_equals(c->argv[i + 1], "yes") || arg_equals(c->argv[i + 1], "no"))) {
			ks->siblings = arg_equals(c->argv[i + 1], "yes");
		} else if (i + 1 < c->argc &&
			   (arg_equals(opt, "features") || arg_equals(opt, "ttl") ||
			    arg_equals(opt, "history"))) {
			had |= !arg_equals(opt, "features");
			if (feature_option(c, ks, opt, c->argv[i + 1]))
				return -1;
		} else {
			reply_error(c, "ERR causal keyspaces take SIBLINGS yes|no, or FEATURES yes "
				       "[TTL ms] [HISTORY n] for a feature view (levels: "
				       "CONSISTENCY causal|local)");
			return -1;
		}
	}
	return feature_view_done(c, ks, had);
}

/* The options after MODE: READ for strong; RF, READ, WRITE, SLOPPY for
 * eventual. 0, or -1 after replying. */
static int keyspace_options(struct client *c, struct keyspace *ks)
{
	bool ev = ks->mode == SP_MODE_EVENTUAL;
	if (ks->mode == SP_MODE_CAUSAL)
		return causal_keyspace_options(c, ks);
	bool ev_view_opts = false;
	for (size_t i = 5; i < c->argc; i += 2) {
		if (i + 1 >= c->argc) {
			reply_syntax_error(c);
			return -1;
		}
		ev_view_opts |= arg_equals(c->argv[i], "ttl") || arg_equals(c->argv[i], "history");
		struct slice opt = c->argv[i], val = c->argv[i + 1];
		if (arg_equals(opt, "read") && !ev) {
			if (parse_level_arg(c, val, &ks->read_level))
				return -1;
		} else if (arg_equals(opt, "read") || arg_equals(opt, "write")) {
			uint8_t level;
			if (parse_ev_level_arg(c, val, &level))
				return -1;
			if (arg_equals(opt, "read"))
				ks->ev_read = level;
			else
				ks->ev_write = level;
		} else if (arg_equals(opt, "rf") && ev) {
			int64_t rf;
			if (arg_to_int64(c, val, &rf))
				return -1;
			if (rf < 1 || rf > EV_MAX_RF) {
				reply_errorf(c, "ERR RF must be 1..%d", EV_MAX_RF);
				return -1;
			}
			ks->rf = (uint8_t)rf;
		} else if (arg_equals(opt, "sloppy") && ev) {
			if (!arg_equals(val, "yes") && !arg_equals(val, "no")) {
				reply_error(c, "ERR SLOPPY takes yes or no");
				return -1;
			}
			ks->sloppy = arg_equals(val, "yes");
		} else if (ev && (arg_equals(opt, "features") || arg_equals(opt, "ttl") ||
				  arg_equals(opt, "history"))) {
			if (feature_option(c, ks, opt, val))
				return -1;
		} else {
			reply_errorf(c, "ERR unknown option '%.*s' for a %s keyspace",
				     (int)(opt.len > 32 ? 32 : opt.len), opt.p,
				     mode_name(ks->mode));
			return -1;
		}
	}
	return feature_view_done(c, ks, ev_view_opts);
}

static void keyspace_create_cmd(struct client *c)
{
	struct server *srv = c->srv;
	if (c->argc < 5 || !arg_equals(c->argv[3], "mode")) {
		reply_error(c, "ERR usage: KEYSPACE CREATE <name> MODE strong [READ "
			       "linearizable|lease|stale] | MODE causal [SIBLINGS yes|no] "
			       "[FEATURES yes [TTL ms] [HISTORY n]] | MODE eventual [RF n] [READ "
			       "one|quorum|all] [WRITE one|quorum|all] [SLOPPY yes|no] "
			       "[FEATURES yes [TTL ms] [HISTORY n]]");
		return;
	}
	struct slice name = c->argv[2];
	if (!keyspace_name_valid(name.p, name.len) ||
	    (name.len == 7 && !memcmp(name.p, "default", 7))) {
		reply_error(c, "ERR keyspace names are 1..63 of [A-Za-z0-9_.-], and not 'default'");
		return;
	}
	struct keyspace ks;
	memset(&ks, 0, sizeof(ks));
	memcpy(ks.name, name.p, name.len);
	ks.rf = 3;
	if (arg_equals(c->argv[4], "strong")) {
		ks.mode = SP_MODE_STRONG;
	} else if (arg_equals(c->argv[4], "eventual")) {
		ks.mode = SP_MODE_EVENTUAL;
	} else if (arg_equals(c->argv[4], "causal")) {
		ks.mode = SP_MODE_CAUSAL;
	} else {
		reply_error(c, "ERR mode must be strong, causal or eventual");
		return;
	}
	if (keyspace_options(c, &ks))
		return;
	if (!srv->applying) {
		reply_error(c, "ERR KEYSPACE CREATE runs through the log");
		return;
	}
	if (keyspace_find(srv, name.p, name.len)) {
		reply_errorf(c, "ERR keyspace '%.*s' exists", (int)name.len, name.p);
		return;
	}
	int rc = keyspace_create(srv, &ks);
	if (rc) {
		reply_store_error(c, rc);
		return;
	}
	reply_ok(c);
}

void cmd_keyspace(struct client *c)
{
	struct server *srv = c->srv;
	struct slice sub = c->argv[1];
	if (arg_equals(sub, "create")) {
		keyspace_create_cmd(c);
	} else if (arg_equals(sub, "list")) {
		reply_array(c, srv->nkeyspaces + 1);
		reply_bulk_str(c, "default");
		for (size_t i = 0; i < srv->nkeyspaces; i++)
			reply_bulk_str(c, srv->keyspaces[i].name);
	} else if (arg_equals(sub, "describe")) {
		if (c->argc != 3) {
			reply_error(c, "ERR usage: KEYSPACE DESCRIBE <name>");
			return;
		}
		struct keyspace ks;
		const struct keyspace *found = keyspace_find(srv, c->argv[2].p, c->argv[2].len);
		if (found) {
			ks = *found;
		} else if (arg_equals(c->argv[2], "default")) {
			keyspace_default(srv, &ks);
		} else {
			reply_errorf(c, "ERR no keyspace '%.*s'",
				     (int)(c->argv[2].len > 64 ? 64 : c->argv[2].len),
				     c->argv[2].p);
			return;
		}
		keyspace_describe_one(c, &ks);
	} else {
		reply_error(c, "ERR unknown KEYSPACE subcommand (CREATE, LIST, DESCRIBE)");
	}
}
