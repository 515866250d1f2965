/*
 * cmd_conn: connection and server commands: PING, ECHO, HELLO, AUTH,
 * SELECT, QUIT, CLIENT, INFO, CONFIG, COMMAND, TIME, LASTSAVE, SHUTDOWN.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "server/cmd.h"

/* A subcommand and its arity, Redis's convention (n exact, -n at least). */
struct subcommand {
	const char *name;
	int arity;
};

/*
 * find_subcommand matches c->argv[1] against subs and checks its arity.
 * Returns the index, or -1 after replying with Redis 7.0's error text.
 */
static int find_subcommand(struct client *c, const char *parent, const struct subcommand *subs,
			   size_t n)
{
	struct slice sub = c->argv[1];
	for (size_t i = 0; i < n; i++) {
		if (!arg_equals(sub, subs[i].name))
			continue;
		int a = subs[i].arity;
		if ((a > 0 && c->argc != (size_t)a) || (a < 0 && c->argc < (size_t)-a)) {
			reply_errorf(c, "ERR wrong number of arguments for '%s|%s' command", parent,
				     subs[i].name);
			return -1;
		}
		return (int)i;
	}
	char upper[16];
	size_t k = 0;
	for (; parent[k] && k < sizeof(upper) - 1; k++)
		upper[k] = (char)(parent[k] - ('a' <= parent[k] && parent[k] <= 'z' ? 32 : 0));
	upper[k] = '\0';
	reply_errorf(c, "ERR unknown subcommand '%.*s'. Try %s HELP.",
		     (int)(sub.len > 128 ? 128 : sub.len), sub.p, upper);
	return -1;
}

void cmd_ping(struct client *c)
{
	if (c->argc > 2)
		reply_arity_error(c);
	else if (c->argc == 2)
		reply_bulk(c, c->argv[1].p, c->argv[1].len);
	else
		reply_simple(c, "PONG");
}

void cmd_echo(struct client *c)
{
	reply_bulk(c, c->argv[1].p, c->argv[1].len);
}

void cmd_select(struct client *c)
{
	int64_t db;
	if (arg_to_int64(c, c->argv[1], &db) < 0)
		return;
	if (db != 0)
		reply_error(c, "ERR DB index is out of range");
	else
		reply_ok(c);
}

void cmd_quit(struct client *c)
{
	reply_ok(c);
	c->flags |= CLIENT_CLOSE_AFTER_REPLY;
}

/* Constant-time comparison, so the reply time does not leak how much of
 * a guessed password was right. */
static int password_matches(const struct server *srv, struct slice given)
{
	const char *want = srv->cfg->requirepass;
	size_t wlen = strlen(want);
	unsigned char diff = (unsigned char)(wlen != given.len);
	for (size_t i = 0; i < given.len; i++)
		diff |= (unsigned char)(given.p[i] ^ want[i % (wlen ? wlen : 1)]);
	return diff == 0 && wlen > 0;
}

/* check_auth verifies [user] password. Returns 0, or -1 after replying. */
static int check_auth(struct client *c, struct slice *user, struct slice pass)
{
	if (c->srv->cfg->requirepass[0] == '\0' && !user) {
		reply_error(c, "ERR AUTH <password> called without any password configured for the "
			       "default user. Are you sure your configuration is correct?");
		return -1;
	}
	int ok = (!user || arg_equals(*user, "default")) &&
		 (c->srv->cfg->requirepass[0] == '\0' || password_matches(c->srv, pass));
	if (!ok) {
		reply_error(c, "WRONGPASS invalid username-password pair or user is disabled.");
		return -1;
	}
	c->flags |= CLIENT_AUTHED;
	return 0;
}

void cmd_auth(struct client *c)
{
	if (c->argc > 3) {
		reply_syntax_error(c);
		return;
	}
	if (check_auth(c, c->argc == 3 ? &c->argv[1] : NULL, c->argv[c->argc - 1]) == 0)
		reply_ok(c);
}

static int valid_client_name(struct slice n)
{
	for (size_t i = 0; i < n.len; i++)
		if (n.p[i] < '!' || n.p[i] > '~')
			return 0;
	return 1;
}

static int set_name(struct client *c, struct slice n)
{
	if (!valid_client_name(n)) {
		reply_error(c, "ERR Client names cannot contain spaces, newlines or special "
			       "characters.");
		return -1;
	}
	free(c->name);
	c->name = n.len ? sp_memdup(n.p, n.len) : NULL;
	return 0;
}

/* CLIENT SETINFO LIB-NAME|LIB-VER <value>: kept and shown by CLIENT INFO. */
static void set_lib_info(struct client *c, struct slice attr, struct slice val)
{
	char **field = arg_equals(attr, "lib-name")  ? &c->lib_name
		       : arg_equals(attr, "lib-ver") ? &c->lib_ver
						     : NULL;
	if (!field) {
		reply_errorf(c, "ERR Unrecognized option '%.*s'",
			     (int)(attr.len > 64 ? 64 : attr.len), attr.p);
		return;
	}
	if (!valid_client_name(val)) {
		reply_errorf(c, "ERR %s cannot contain spaces, newlines or special characters.",
			     field == &c->lib_name ? "lib-name" : "lib-ver");
		return;
	}
	free(*field);
	*field = val.len ? sp_memdup(val.p, val.len) : NULL;
	reply_ok(c);
}

void cmd_hello(struct client *c)
{
	int64_t ver = c->proto;
	size_t i = 1;
	if (c->argc >= 2) {
		if (!sp_parse_int64(c->argv[1].p, c->argv[1].len, &ver)) {
			reply_error(c, "ERR Protocol version is not an integer or out of range");
			return;
		}
		i = 2;
		if (ver < 2 || ver > 3) {
			reply_error(c, "NOPROTO unsupported protocol version");
			return;
		}
	}
	struct slice *user = NULL, *pass = NULL, *name = NULL;
	for (; i < c->argc; i++) {
		int more = (int)(c->argc - i - 1);
		if (arg_equals(c->argv[i], "auth") && more >= 2) {
			user = &c->argv[i + 1];
			pass = &c->argv[i + 2];
			i += 2;
		} else if (arg_equals(c->argv[i], "setname") && more >= 1) {
			name = &c->argv[i + 1];
			i += 1;
		} else {
			reply_errorf(c, "ERR Syntax error in HELLO option '%.*s'",
				     (int)(c->argv[i].len > 128 ? 128 : c->argv[i].len),
				     c->argv[i].p);
			return;
		}
	}
	if (pass && check_auth(c, user, *pass) < 0)
		return;
	if (!(c->flags & CLIENT_AUTHED)) {
		reply_error(c,
			    "NOAUTH HELLO must be called with the client already authenticated, "
			    "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
			    "authenticate the client and select the RESP protocol version at the "
			    "same time");
		return;
	}
	if (name && set_name(c, *name) < 0)
		return;
	c->proto = (int)ver;
	reply_map(c, 8);
	reply_bulk_str(c, "server");
	reply_bulk_str(c, "redis");
	reply_bulk_str(c, "version");
	reply_bulk_str(c, SPECTRA_REDIS_COMPAT_VERSION);
	reply_bulk_str(c, "proto");
	reply_integer(c, ver);
	reply_bulk_str(c, "id");
	reply_integer(c, (int64_t)c->id);
	reply_bulk_str(c, "mode");
	reply_bulk_str(c, "standalone");
	reply_bulk_str(c, "role");
	reply_bulk_str(c, "master");
	reply_bulk_str(c, "modules");
	reply_array(c, 0);
	reply_bulk_str(c, "spectra");
	reply_bulk_str(c, SPECTRA_VERSION);
}

static void client_info_line(struct sp_buf *b, const struct client *c, uint64_t now)
{
	sp_buf_appendf(
	    b,
	    "id=%" PRIu64 " addr=%s laddr=? fd=-1 name=%s age=%" PRIu64 " idle=%" PRIu64
	    " flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=%zu "
	    "obl=0 oll=0 omem=%zu tot-mem=%zu events=r cmd=%s user=default lib-name=%s "
	    "lib-ver=%s resp=%d\n",
	    c->id, c->addr, c->name ? c->name : "", sp_elapsed_ms(now, c->created_ms) / 1000,
	    sp_elapsed_ms(now, c->last_active_ms) / 1000, c->query.len, c->out.len + c->wbuf.len,
	    c->query.cap + c->out.cap + c->wbuf.cap, c->cmd ? c->cmd->name : "NULL",
	    c->lib_name ? c->lib_name : "", c->lib_ver ? c->lib_ver : "", c->proto);
}

void cmd_client(struct client *c)
{
	enum { ID, GETNAME, SETNAME, SETINFO, INFO, LIST, NOEVICT, NOTOUCH, RECEIPTS, HELP };
	static const struct subcommand subs[] = {
	    [ID] = {"id", 2},
	    [GETNAME] = {"getname", 2},
	    [SETNAME] = {"setname", 3},
	    [SETINFO] = {"setinfo", 4},
	    [INFO] = {"info", 2},
	    [LIST] = {"list", 2},
	    [NOEVICT] = {"no-evict", 3},
	    [NOTOUCH] = {"no-touch", 3},
	    [RECEIPTS] = {"receipts", -2},
	    [HELP] = {"help", 2},
	};
	int which = find_subcommand(c, "client", subs, sizeof(subs) / sizeof(subs[0]));
	uint64_t now = server_now_ms(c->srv);
	struct sp_buf b;
	switch (which) {
	case ID:
		reply_integer(c, (int64_t)c->id);
		break;
	case GETNAME:
		if (c->name)
			reply_bulk_str(c, c->name);
		else
			reply_null(c);
		break;
	case SETNAME:
		if (set_name(c, c->argv[2]) == 0)
			reply_ok(c);
		break;
	case SETINFO:
		set_lib_info(c, c->argv[2], c->argv[3]);
		break;
	case INFO:
	case LIST:
		sp_buf_init(&b);
		if (which == INFO)
			client_info_line(&b, c, now);
		else
			for (const struct client *o = c->srv->clients; o; o = o->next)
				client_info_line(&b, o, now);
		reply_verbatim(c, sp_buf_begin(&b), b.len);
		sp_buf_free(&b);
		break;
	case NOEVICT:
	case NOTOUCH:
		reply_ok(c); /* nothing is evicted or tracked for LRU here */
		break;
	case RECEIPTS:
		if (c->argc == 2) {
			reply_bulk_str(c, c->flags & CLIENT_RECEIPTS ? "on" : "off");
		} else if (c->argc == 3 && arg_equals(c->argv[2], "on")) {
			c->flags |= CLIENT_RECEIPTS;
			reply_ok(c);
		} else if (c->argc == 3 && arg_equals(c->argv[2], "off")) {
			c->flags &= ~(uint32_t)CLIENT_RECEIPTS;
			reply_ok(c);
		} else {
			reply_error(c, "ERR usage: CLIENT RECEIPTS [ON|OFF]");
		}
		break;
	case HELP: {
		static const char *const lines[] = {
		    "CLIENT <subcommand> [<arg> ...]. Subcommands are:",
		    "ID",
		    "    Return the ID of the current connection.",
		    "GETNAME",
		    "    Return the name of the current connection.",
		    "SETNAME <name>",
		    "    Assign a name to the current connection.",
		    "SETINFO <LIB-NAME|LIB-VER> <value>",
		    "    Name the client library.",
		    "INFO",
		    "    Information about the current connection.",
		    "LIST",
		    "    Information about every connection.",
		    "RECEIPTS [ON|OFF]",
		    "    Staleness receipts on data replies: level served, node, replicas,",
		    "    version and the node's known lag (RESP3: an attribute before the",
		    "    reply; RESP2: the reply becomes [reply, receipt]).",
		};
		reply_array(c, sizeof(lines) / sizeof(lines[0]));
		for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
			reply_simple(c, lines[i]);
		break;
	}
	default:
		break; /* find_subcommand replied */
	}
}

/* ------------------------------------------------------------------ */
/* INFO                                                                 */

static const char *fsync_name(enum sp_fsync f)
{
	return f == SP_FSYNC_ALWAYS ? "always" : f == SP_FSYNC_BATCH ? "batch" : "off";
}

static void info_server(struct server *srv, struct sp_buf *b)
{
	struct utsname u;
	if (uname(&u) != 0)
		strcpy(u.sysname, "?"), strcpy(u.release, "?"), strcpy(u.machine, "?");
	uint64_t up = sp_elapsed_ms(server_now_ms(srv), srv->start_ms) / 1000;
	sp_buf_appendf(
	    b,
	    "# Server\r\nredis_version:%s\r\nspectra_version:%s\r\nredis_mode:standalone\r\n"
	    "os:%s %s %s\r\narch_bits:%d\r\nmultiplexing_api:libuv %s\r\n"
	    "process_id:%d\r\nrun_id:%s\r\ntcp_port:%d\r\nuptime_in_seconds:%" PRIu64
	    "\r\nuptime_in_days:%" PRIu64 "\r\nconfig_file:%s\r\n\r\n",
	    SPECTRA_REDIS_COMPAT_VERSION, SPECTRA_VERSION, u.sysname, u.release, u.machine,
	    (int)(sizeof(void *) * 8), uv_version_string(), (int)getpid(), srv->run_id,
	    srv->cfg->port, up, up / 86400, srv->config_file ? srv->config_file : "");
}

static void info_clients(struct server *srv, struct sp_buf *b)
{
	uint64_t waiting = 0, paused = 0;
	for (const struct client *c = srv->clients; c; c = c->next) {
		/* replies waiting on the log: a Raft commit, and so its sync */
		waiting += c->nslots > 0;
		paused += (c->flags & CLIENT_READ_PAUSED) != 0;
	}
	sp_buf_appendf(b,
		       "# Clients\r\nconnected_clients:%" PRIu64 "\r\nmaxclients:%" PRIu64
		       "\r\nblocked_clients:0\r\nclients_waiting_for_sync:%" PRIu64
		       "\r\nclients_paused_by_output_limit:%" PRIu64 "\r\n\r\n",
		       srv->nclients, srv->cfg->maxclients, waiting, paused);
}

static void info_stats(struct server *srv, struct sp_buf *b)
{
	const struct server_stats *s = &srv->stats;
	sp_buf_appendf(
	    b,
	    "# Stats\r\ntotal_connections_received:%" PRIu64 "\r\ntotal_commands_processed:%" PRIu64
	    "\r\ninstantaneous_ops_per_sec:%" PRIu64 "\r\ntotal_net_input_bytes:%" PRIu64
	    "\r\ntotal_net_output_bytes:%" PRIu64 "\r\nrejected_connections:%" PRIu64
	    "\r\nexpired_keys:%" PRIu64 "\r\nkeyspace_hits:%" PRIu64 "\r\nkeyspace_misses:%" PRIu64
	    "\r\ntotal_error_replies:%" PRIu64 "\r\nprotocol_errors:%" PRIu64 "\r\n\r\n",
	    s->connections, s->commands, s->ops_per_sec, s->net_in, s->net_out, s->rejected,
	    s->expired, s->hits, s->misses, s->errors, s->protocol_errors);
}

static void info_persistence(struct server *srv, struct sp_buf *b)
{
	struct store_stats st;
	store_get_stats(srv->store, &st);
	const struct durability_job *sy = &srv->sync, *cp = &srv->checkpoint;
	sp_buf_appendf(b,
		       "# Persistence\r\nloading:0\r\nstorage_engine:lmdb\r\nfsync:%s\r\n"
		       "fsync_interval_ms:%" PRIu64 "\r\nbatches_committed:%" PRIu64
		       "\r\nbatches_durable:%" PRIu64 "\r\nbatches_lost:%" PRIu64
		       "\r\nwal_bytes:%" PRIu64 "\r\nsyncs:%" PRIu64 "\r\nsync_in_progress:%d"
		       "\r\nsync_avg_us:%" PRIu64 "\r\nsync_max_us:%" PRIu64
		       "\r\ncheckpoints:%" PRIu64 "\r\ncheckpoint_in_progress:%d"
		       "\r\ncheckpoint_avg_us:%" PRIu64 "\r\ncheckpoint_max_us:%" PRIu64
		       "\r\nlast_sync_time:%" PRIu64 "\r\nstore_map_size:%" PRIu64
		       "\r\nstore_used_bytes:%" PRIu64 "\r\n\r\n",
		       fsync_name(srv->cfg->fsync), srv->cfg->fsync_interval_ms, srv->committed_seq,
		       srv->durable_seq, srv->stats.batch_failures, store_wal_bytes(srv->store),
		       sy->count, sy->running, sy->count ? sy->ns_total / sy->count / 1000 : 0,
		       sy->ns_max / 1000, cp->count, cp->running,
		       cp->count ? cp->ns_total / cp->count / 1000 : 0, cp->ns_max / 1000,
		       srv->last_sync_ms / 1000, st.map_size, st.used_bytes);
}

static void info_keyspace(struct server *srv, struct sp_buf *b)
{
	uint64_t keys = 0, expires = 0;
	live_key_counts(srv, &keys, &expires);
	sp_buf_append_str(b, "# Keyspace\r\n");
	if (keys)
		sp_buf_appendf(b, "db0:keys=%" PRIu64 ",expires=%" PRIu64 ",avg_ttl=0\r\n", keys,
			       expires);
	sp_buf_append_str(b, "\r\n");
}

static void info_eventual(struct server *srv, struct sp_buf *b)
{
	if (!srv->eventual)
		return;
	evcmd_info(srv, b);
	sp_buf_append_str(b, "\r\n");
}

static void info_causal(struct server *srv, struct sp_buf *b)
{
	if (!srv->causal)
		return;
	causal_info(srv, b);
	sp_buf_append_str(b, "\r\n");
}

void cmd_info(struct client *c)
{
	static const struct {
		const char *name;
		void (*fn)(struct server *, struct sp_buf *);
	} sections[] = {
	    {"server", info_server},	 {"clients", info_clients},
	    {"stats", info_stats},	 {"persistence", info_persistence},
	    {"keyspace", info_keyspace}, {"eventual", info_eventual},
	    {"causal", info_causal},
	};
	const size_t nsec = sizeof(sections) / sizeof(sections[0]);
	struct sp_buf b;
	sp_buf_init(&b);
	for (size_t s = 0; s < nsec; s++) {
		int want = c->argc == 1;
		for (size_t i = 1; i < c->argc && !want; i++)
			want = arg_equals(c->argv[i], sections[s].name) ||
			       arg_equals(c->argv[i], "all") || arg_equals(c->argv[i], "default") ||
			       arg_equals(c->argv[i], "everything");
		if (want)
			sections[s].fn(c->srv, &b);
	}
	/* Drop the blank line after the last section, as Redis does. */
	if (b.len >= 2)
		b.len -= 2;
	reply_verbatim(c, sp_buf_begin(&b), b.len);
	sp_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* CONFIG                                                               */

/* Settings Redis clients ask for that spectra answers in Redis's terms. */
static const char *compat_value(const struct server *srv, const char *name)
{
	if (strcmp(name, "save") == 0)
		return "";
	if (strcmp(name, "appendonly") == 0)
		return srv->cfg->fsync == SP_FSYNC_OFF ? "no" : "yes";
	if (strcmp(name, "appendfsync") == 0)
		return srv->cfg->fsync == SP_FSYNC_ALWAYS  ? "always"
		       : srv->cfg->fsync == SP_FSYNC_BATCH ? "everysec"
							   : "no";
	if (strcmp(name, "databases") == 0)
		return "1";
	return NULL;
}

void cmd_config(struct client *c)
{
	enum { GET, SET, RESETSTAT, HELP };
	static const struct subcommand subs[] = {
	    [GET] = {"get", -3},
	    [SET] = {"set", -4},
	    [RESETSTAT] = {"resetstat", 2},
	    [HELP] = {"help", 2},
	};
	static const char *const compat[] = {"save", "appendonly", "appendfsync", "databases"};
	switch (find_subcommand(c, "config", subs, sizeof(subs) / sizeof(subs[0]))) {
	case GET: {
		struct sp_buf b;
		sp_buf_init(&b);
		size_t pairs = 0;
		size_t nset = sp_config_count();
		size_t total = nset + sizeof(compat) / sizeof(compat[0]);
		for (size_t i = 0; i < total; i++) {
			const char *name = i < nset ? sp_config_name(i) : compat[i - nset];
			int hit = 0;
			for (size_t a = 2; a < c->argc && !hit; a++)
				hit = glob_match(c->argv[a].p, c->argv[a].len, name, strlen(name));
			if (!hit)
				continue;
			char *val = i < nset ? sp_config_format(c->srv->cfg, name) : NULL;
			const char *shown = val ? val : compat_value(c->srv, name);
			resp_write_bulk_str(&b, name);
			resp_write_bulk_str(&b, shown ? shown : "");
			free(val);
			pairs++;
		}
		reply_map(c, pairs);
		sp_buf_append(&c->out, sp_buf_begin(&b), b.len);
		sp_buf_free(&b);
		break;
	}
	case SET:
		reply_error(c, "ERR CONFIG SET is not supported yet: change the setting in the "
			       "config file or flags and restart the node");
		break;
	case RESETSTAT:
		memset(&c->srv->stats, 0, sizeof(c->srv->stats));
		c->srv->stats.ops_window_start_ms = server_now_ms(c->srv);
		reply_ok(c);
		break;
	case HELP:
		reply_array(c, 3);
		reply_simple(c, "CONFIG <subcommand> [<arg> ...]. Subcommands are:");
		reply_simple(c, "GET <pattern> [<pattern> ...]");
		reply_simple(c, "RESETSTAT");
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* COMMAND                                                              */

void command_reply_info(struct client *c, const struct command *cmd)
{
	static const struct {
		uint32_t flag;
		const char *name;
	} names[] = {
	    {CMD_WRITE, "write"},    {CMD_READONLY, "readonly"}, {CMD_FAST, "fast"},
	    {CMD_NOAUTH, "no_auth"}, {CMD_ADMIN, "admin"},
	};
	size_t nflags = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		nflags += (cmd->flags & names[i].flag) != 0;
	reply_array(c, 10);
	reply_bulk_str(c, cmd->name);
	reply_integer(c, cmd->arity);
	resp_write_set_len(&c->out, nflags, c->proto);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (cmd->flags & names[i].flag)
			reply_simple(c, names[i].name);
	reply_integer(c, cmd->first_key);
	reply_integer(c, cmd->last_key);
	reply_integer(c, cmd->key_step);
	resp_write_set_len(&c->out, 0, c->proto); /* ACL categories */
	reply_array(c, 0);			  /* tips */
	reply_array(c, 0);			  /* key specs */
	reply_array(c, 0);			  /* subcommands */
}

/* docs_wanted: does COMMAND DOCS's argument list name cmd (or name none)? */
static int docs_wanted(const struct client *c, const struct command *cmd)
{
	if (c->argc == 2)
		return 1;
	for (size_t a = 2; a < c->argc; a++)
		if (arg_equals(c->argv[a], cmd->name))
			return 1;
	return 0;
}

void cmd_command(struct client *c)
{
	enum { COUNT, INFO, DOCS, LIST, HELP };
	static const struct subcommand subs[] = {
	    [COUNT] = {"count", 2}, [INFO] = {"info", -2}, [DOCS] = {"docs", -2},
	    [LIST] = {"list", -2},  [HELP] = {"help", 2},
	};
	size_t n = command_count();
	if (c->argc == 1) {
		reply_array(c, n);
		for (size_t i = 0; i < n; i++)
			command_reply_info(c, command_at(i));
		return;
	}
	switch (find_subcommand(c, "command", subs, sizeof(subs) / sizeof(subs[0]))) {
	case COUNT:
		reply_integer(c, (int64_t)n);
		break;
	case INFO:
		if (c->argc == 2) {
			reply_array(c, n);
			for (size_t i = 0; i < n; i++)
				command_reply_info(c, command_at(i));
			break;
		}
		reply_array(c, c->argc - 2);
		for (size_t i = 2; i < c->argc; i++) {
			const struct command *cmd = command_lookup(c->argv[i].p, c->argv[i].len);
			if (cmd)
				command_reply_info(c, cmd);
			else
				reply_null_array(c);
		}
		break;
	case DOCS: {
		/* Summary and group of the named commands (or all), which
		 * redis-cli shows in its help. */
		size_t want = 0;
		for (size_t i = 0; i < n; i++)
			want += docs_wanted(c, command_at(i));
		reply_map(c, want);
		for (size_t i = 0; i < n; i++) {
			const struct command *cmd = command_at(i);
			if (!docs_wanted(c, cmd))
				continue;
			reply_bulk_str(c, cmd->name);
			reply_map(c, 3);
			reply_bulk_str(c, "summary");
			reply_bulk_str(c, cmd->summary);
			reply_bulk_str(c, "since");
			reply_bulk_str(c, "0.1.0");
			reply_bulk_str(c, "group");
			reply_bulk_str(c, cmd->group);
		}
		break;
	}
	case LIST:
		reply_array(c, n);
		for (size_t i = 0; i < n; i++)
			reply_bulk_str(c, command_at(i)->name);
		break;
	case HELP:
		reply_array(c, 4);
		reply_simple(c, "COMMAND [<subcommand>]. Subcommands are:");
		reply_simple(c, "(no subcommand): every command's details");
		reply_simple(c, "COUNT | LIST | INFO [<name> ...] | DOCS [<name> ...]");
		reply_simple(c, "Each entry: name, arity, flags, first key, last key, step, ...");
		break;
	default:
		break;
	}
}

void cmd_time(struct client *c)
{
	uint64_t ns = sp_wall_ms(c->srv->clock);
	reply_array(c, 2);
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRIu64, ns / 1000);
	reply_bulk_str(c, buf);
	snprintf(buf, sizeof(buf), "%" PRIu64, (ns % 1000) * 1000);
	reply_bulk_str(c, buf);
}

void cmd_lastsave(struct client *c)
{
	reply_integer(c, (int64_t)(c->srv->last_sync_ms / 1000));
}

void cmd_shutdown(struct client *c)
{
	/* NOSAVE/SAVE/NOW/FORCE are accepted; spectra always commits and
	 * syncs before it stops. Like Redis, no reply: the connection closes. */
	for (size_t i = 1; i < c->argc; i++) {
		if (!arg_equals(c->argv[i], "nosave") && !arg_equals(c->argv[i], "save") &&
		    !arg_equals(c->argv[i], "now") && !arg_equals(c->argv[i], "force") &&
		    !arg_equals(c->argv[i], "abort")) {
			reply_syntax_error(c);
			return;
		}
		if (arg_equals(c->argv[i], "abort")) {
			reply_error(c, "ERR No shutdown in progress.");
			return;
		}
	}
	server_shutdown(c->srv);
}
