/*
 * commands: the command table, lookup and dispatch.
 *
 * One table (name, arity, flags, key positions, handler, group, summary)
 * that dispatch, COMMAND and help share, as Redis keeps its table. Lookup
 * is case-insensitive by binary search over the names, sorted once.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/cmd.h"
#include "server/route.h"

#define W  CMD_WRITE
#define R  CMD_READONLY
#define F  CMD_FAST
#define NA CMD_NOAUTH
#define A  CMD_ADMIN
#define E  CMD_EVENTUAL

/* In name order, as COMMAND lists them. */
static const struct command table[] = {
    {"append", 3, W, 1, 1, 1, cmd_append, "string", "Append a value to a key"},
    {"auth", -2, NA | F, 0, 0, 0, cmd_auth, "connection", "Authenticate to the server"},
    {"cas", 4, W | F, 1, 1, 1, cmd_cas, "string",
     "Set a key to new only if its value is expected (1 if swapped, 0 if not)"},
    {"client", -2, 0, 0, 0, 0, cmd_client, "connection",
     "Client connection commands (ID, SETNAME, GETNAME, INFO, LIST, SETINFO)"},
    {"cluster", -2, 0, 0, 0, 0, cmd_cluster, "cluster",
     "Cluster state and membership (INFO NODES ADD REMOVE TRANSFER)"},
    {"command", -1, 0, 0, 0, 0, cmd_command, "server",
     "Details about commands (COUNT, INFO, DOCS, LIST)"},
    {"config", -2, A, 0, 0, 0, cmd_config, "server", "Read settings (GET pattern...)"},
    {"consistency", -1, F, 0, 0, 0, cmd_consistency, "connection",
     "Show or set this connection's read level (linearizable lease stale)"},
    {"counter.decr", -2, W | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "PN-Counter: subtract n (default 1); the value after, at the coordinator"},
    {"counter.get", 2, R | F | E, 1, 1, 1, cmd_crdt, "crdt", "PN-Counter: the value"},
    {"counter.incr", -2, W | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "PN-Counter: add n (default 1); the value after, at the coordinator"},
    {"dbsize", 1, R | F, 0, 0, 0, cmd_dbsize, "server", "Number of keys"},
    {"debug", -2, A, 0, 0, 0, cmd_debug, "server",
     "Fault injection (NET PARTITION HEAL FAULTS STATS); needs admin-commands"},
    {"decr", 2, W | F, 1, 1, 1, cmd_decr, "string", "Decrement the integer value of a key by one"},
    {"decrby", 3, W | F, 1, 1, 1, cmd_decrby, "string",
     "Decrement the integer value of a key by a number"},
    {"del", -2, W, 1, -1, 1, cmd_del, "keyspace", "Delete keys"},
    {"discard", 1, F, 0, 0, 0, cmd_discard, "transactions", "Forget the queued commands"},
    {"echo", 2, F, 0, 0, 0, cmd_echo, "connection", "Echo the given string"},
    {"eventual", -2, 0, 0, 0, 0, cmd_eventual, "cluster",
     "Eventual engine state (DIGEST, REPLICAS key)"},
    {"exec", 1, 0, 0, 0, 0, cmd_exec, "transactions",
     "Commit the queued commands atomically, as one Raft entry"},
    {"exists", -2, R | F, 1, -1, 1, cmd_exists, "keyspace", "Count the given keys that exist"},
    {"expire", -3, W | F, 1, 1, 1, cmd_expire, "keyspace", "Set a key's time to live in seconds"},
    {"expireat", -3, W | F, 1, 1, 1, cmd_expireat, "keyspace",
     "Set a key's expiry as a Unix time in seconds"},
    {"expiretime", 2, R | F, 1, 1, 1, cmd_expiretime, "keyspace",
     "A key's expiry as a Unix time in seconds"},
    {"feature.get", -2, R | F | CMD_FEATURE, 1, 1, 1, cmd_feature, "feature",
     "Feature view: an entity's features (ASOF ms, WITHTIMES, FIELDS f...)"},
    {"feature.history", -3, R | CMD_FEATURE, 1, 1, 1, cmd_feature, "feature",
     "Feature view: one feature's kept values, newest first ([COUNT n])"},
    {"feature.mget", -3, R | CMD_FEATURE, 2, 2, 1, cmd_feature, "feature",
     "Feature view: FEATURE.GET of several entities: numkeys key... [options]"},
    {"feature.set", -5, W | F | CMD_FEATURE, 1, 1, 1, cmd_feature, "feature",
     "Feature view: set features at an event time; a newer event time wins"},
    {"flushall", -1, W, 0, 0, 0, cmd_flushall, "server", "Remove all keys"},
    {"flushdb", -1, W, 0, 0, 0, cmd_flushall, "server", "Remove all keys (there is one database)"},
    {"gcounter.get", 2, R | F | E, 1, 1, 1, cmd_crdt, "crdt", "G-Counter: the value"},
    {"gcounter.incr", -2, W | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "G-Counter: add n > 0 (default 1); the value after, at the coordinator"},
    {"get", 2, R | F, 1, 1, 1, cmd_get, "string", "Get the value of a key"},
    {"getdel", 2, W | F, 1, 1, 1, cmd_getdel, "string", "Get the value of a key and delete it"},
    {"getex", -2, W | F, 1, 1, 1, cmd_getex, "string",
     "Get the value of a key and set or clear its expiry"},
    {"getrev", 2, R | F, 1, 1, 1, cmd_getrev, "string",
     "Get a key's value and revision (the Raft index that wrote it)"},
    {"getset", 3, W | F, 1, 1, 1, cmd_getset, "string", "Set a key and return its old value"},
    {"gset.add", -3, W | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "G-Set: add members; how many were new here"},
    {"gset.card", 2, R | F | E, 1, 1, 1, cmd_crdt, "crdt", "G-Set: number of members"},
    {"gset.contains", 3, R | F | E, 1, 1, 1, cmd_crdt, "crdt", "G-Set: 1 if member is in the set"},
    {"gset.members", 2, R | E, 1, 1, 1, cmd_crdt, "crdt", "G-Set: every member"},
    {"hello", -1, NA | F, 0, 0, 0, cmd_hello, "connection",
     "Handshake: protocol version, auth, client name"},
    {"incr", 2, W | F, 1, 1, 1, cmd_incr, "string", "Increment the integer value of a key by one"},
    {"incrby", 3, W | F, 1, 1, 1, cmd_incrby, "string",
     "Increment the integer value of a key by a number"},
    {"info", -1, 0, 0, 0, 0, cmd_info, "server", "Information and statistics about the node"},
    {"keys", 2, R, 0, 0, 0, cmd_keys, "keyspace", "Find all keys matching a pattern"},
    {"keyspace", -2, 0, 0, 0, 0, cmd_keyspace, "keyspace",
     "Declare and inspect keyspaces (CREATE LIST DESCRIBE)"},
    {"lastsave", 1, F, 0, 0, 0, cmd_lastsave, "server",
     "Unix time of the last completed sync to disk"},
    {"level", -3, 0, 0, 0, 0, cmd_level, "connection",
     "Run one command at a read level: LEVEL <level> <command> [args...]"},
    {"maxstale", -3, 0, 0, 0, 0, cmd_maxstale, "connection",
     "Run one read with bounded staleness: MAXSTALE <ms> <command> [args...]"},
    {"lww.get", 2, R | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "LWW register: [value, HLC timestamp, node] or nil"},
    {"lww.set", 3, W | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "LWW register: set; the write's HLC timestamp"},
    {"mget", -2, R | F, 1, -1, 1, cmd_mget, "string", "Get the values of keys"},
    {"model.alias", -4, W | CMD_STRONG, 1, 1, 1, cmd_model_alias, "model",
     "Point an alias at a version (IFVERSION v | IFNONE, SCHEMA n); 1 if set, 0 if not"},
    {"model.aliases", 2, R | CMD_STRONG, 1, 1, 1, cmd_model_aliases, "model",
     "A model's aliases: [alias, version, schema, set_ms] each"},
    {"model.get", -2, R | CMD_STRONG, 1, 1, 1, cmd_model_get, "model",
     "A model's latest version, or VERSION n, or ALIAS name; nil if none"},
    {"model.register", -3, W | CMD_STRONG, 1, 1, 1, cmd_model_register, "model",
     "Register a model's next version (META meta, SCHEMA n); its number"},
    {"model.unalias", -3, W | CMD_STRONG, 1, 1, 1, cmd_model_unalias, "model",
     "Remove an alias (IFVERSION v); 1 if removed, 0 if not"},
    {"model.versions", -2, R | CMD_STRONG, 1, 1, 1, cmd_model_versions, "model",
     "A model's versions from FROM n (default 1), at most COUNT c (default 1000)"},
    {"mset", -3, W, 1, -1, 2, cmd_mset, "string", "Set several keys"},
    {"msetnx", -3, W, 1, -1, 2, cmd_msetnx, "string", "Set several keys, only if none exists"},
    {"multi", 1, F, 0, 0, 0, cmd_multi, "transactions", "Start queueing a transaction"},
    {"mvreg.get", 2, R | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "MV-Register: every concurrent value (siblings)"},
    {"mvreg.set", 3, W | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "MV-Register: set, replacing the siblings seen here"},
    {"orset.add", -3, W | F | E, 1, 1, 1, cmd_crdt, "crdt", "OR-Set (add wins): add members"},
    {"orset.card", 2, R | F | E, 1, 1, 1, cmd_crdt, "crdt", "OR-Set: number of members"},
    {"orset.contains", 3, R | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "OR-Set: 1 if member is in the set"},
    {"orset.members", 2, R | E, 1, 1, 1, cmd_crdt, "crdt", "OR-Set: every member"},
    {"orset.rem", -3, W | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "OR-Set: remove the members as observed here"},
    {"persist", 2, W | F, 1, 1, 1, cmd_persist, "keyspace", "Remove a key's expiry"},
    {"pexpire", -3, W | F, 1, 1, 1, cmd_pexpire, "keyspace",
     "Set a key's time to live in milliseconds"},
    {"pexpireat", -3, W | F, 1, 1, 1, cmd_pexpireat, "keyspace",
     "Set a key's expiry as a Unix time in milliseconds"},
    {"pexpiretime", 2, R | F, 1, 1, 1, cmd_pexpiretime, "keyspace",
     "A key's expiry as a Unix time in milliseconds"},
    {"ping", -1, F, 0, 0, 0, cmd_ping, "connection", "Ping the server"},
    {"psetex", 4, W, 1, 1, 1, cmd_psetex, "string",
     "Set a key with a time to live in milliseconds"},
    {"pttl", 2, R | F, 1, 1, 1, cmd_pttl, "keyspace", "A key's time to live in milliseconds"},
    {"quit", -1, NA | F, 0, 0, 0, cmd_quit, "connection", "Close the connection"},
    {"scan", -2, R, 0, 0, 0, cmd_scan, "keyspace", "Iterate over keys"},
    {"select", 2, F, 0, 0, 0, cmd_select, "connection", "Select database 0 (the only one)"},
    {"session", -1, F, 0, 0, 0, cmd_session, "connection",
     "A causal session (TOKEN, RESUME token, RESET, TRACE traceparent)"},
    {"set", -3, W, 1, 1, 1, cmd_set, "string", "Set a key (EX PX EXAT PXAT KEEPTTL NX XX GET)"},
    {"setex", 4, W, 1, 1, 1, cmd_setex, "string", "Set a key with a time to live in seconds"},
    {"setnx", 3, W | F, 1, 1, 1, cmd_setnx, "string", "Set a key only if it does not exist"},
    {"shutdown", -1, A, 0, 0, 0, cmd_shutdown, "server", "Commit, sync and stop the node"},
    {"strlen", 2, R | F, 1, 1, 1, cmd_strlen, "string", "Length of a key's value"},
    {"time", 1, F, 0, 0, 0, cmd_time, "server", "The node's time"},
    {"tpset.add", -3, W | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "2P-Set: add members (a removed member never returns)"},
    {"tpset.card", 2, R | F | E, 1, 1, 1, cmd_crdt, "crdt", "2P-Set: number of members"},
    {"tpset.contains", 3, R | F | E, 1, 1, 1, cmd_crdt, "crdt",
     "2P-Set: 1 if member is in the set"},
    {"tpset.members", 2, R | E, 1, 1, 1, cmd_crdt, "crdt", "2P-Set: every member"},
    {"tpset.rem", -3, W | F | E, 1, 1, 1, cmd_crdt, "crdt", "2P-Set: remove members for good"},
    {"ttl", 2, R | F, 1, 1, 1, cmd_ttl, "keyspace", "A key's time to live in seconds"},
    {"type", 2, R | F, 1, 1, 1, cmd_type, "keyspace", "The type of a key's value"},
    {"unlink", -2, W | F, 1, -1, 1, cmd_del, "keyspace", "Delete keys"},
};

#undef W
#undef R
#undef F
#undef NA
#undef A
#undef E

#define NCOMMANDS (sizeof(table) / sizeof(table[0]))

size_t command_count(void)
{
	return NCOMMANDS;
}

const struct command *command_at(size_t i)
{
	return i < NCOMMANDS ? &table[i] : NULL;
}

/*
 * Lookup is on every request's path, so names go into an open-addressing
 * hash table of lower-case names, built once by command_table_init: one
 * hash of the (lower-cased) name and usually one memcmp.
 */
#define LOOKUP_SLOTS 256 /* power of two, well over twice the table */
static const struct command *lookup_slots[LOOKUP_SLOTS];
static uint8_t name_lens[NCOMMANDS];

static uint32_t name_hash(const char *lower, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)lower[i]) * 16777619u;
	return h;
}

void command_table_init(void)
{
	if (lookup_slots[0] || name_lens[0])
		return;
	for (size_t i = 0; i < NCOMMANDS; i++) {
		size_t len = strlen(table[i].name);
		name_lens[i] = (uint8_t)len;
		uint32_t h = name_hash(table[i].name, len);
		while (lookup_slots[h & (LOOKUP_SLOTS - 1)])
			h++;
		lookup_slots[h & (LOOKUP_SLOTS - 1)] = &table[i];
	}
}

const struct command *command_lookup(const char *name, size_t len)
{
	char lower[32];
	if (len == 0 || len > sizeof(lower))
		return NULL;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		lower[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
	}
	uint32_t h = name_hash(lower, len);
	for (;;) {
		const struct command *cmd = lookup_slots[h & (LOOKUP_SLOTS - 1)];
		if (!cmd)
			return NULL;
		if (name_lens[cmd - table] == len && memcmp(cmd->name, lower, len) == 0)
			return cmd;
		h++;
	}
}

static void reply_unknown(struct client *c)
{
	/* Redis: "unknown command 'x', with args beginning with: 'a' 'b' " */
	char msg[512];
	size_t n = (size_t)snprintf(
	    msg, sizeof(msg), "ERR unknown command '%.*s', with args beginning with: ",
	    (int)(c->argv[0].len > 128 ? 128 : c->argv[0].len), c->argv[0].p);
	for (size_t i = 1; i < c->argc && n < sizeof(msg) - 1; i++) {
		int l = (int)(c->argv[i].len > 128 ? 128 : c->argv[i].len);
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, "'%.*s' ", l, c->argv[i].p);
	}
	reply_error(c, msg);
}

/* wrap_receipt puts the receipt around the reply c wrote at once (from
 * mark on). */
static void wrap_receipt(struct client *c, size_t mark)
{
	struct sp_buf reply;
	sp_buf_init(&reply);
	sp_buf_append(&reply, sp_buf_begin(&c->out) + mark, c->out.len - mark);
	c->out.len = mark;
	observe_wrap(c->srv, &c->op, sp_buf_begin(&reply), reply.len, &c->out);
	sp_buf_free(&reply);
}

static bool is_multi_control(const struct command *cmd)
{
	return cmd->fn == cmd_exec || cmd->fn == cmd_discard || cmd->fn == cmd_multi;
}

/*
 * command_execute checks c->argv against the table and runs it: data
 * commands through route.c (a Raft entry, a confirmed read, or a local
 * read, as the level says), the rest here. Replies keep the order of the
 * commands even when some finish later (route_capture_*). Commands run by
 * an entry's apply come in on the virtual client and run as they are.
 */
void command_execute(struct client *c)
{
	struct server *srv = c->srv;
	size_t mark = route_capture_begin(c);
	c->commands++;
	srv->stats.commands++;
	const struct command *cmd = command_lookup(c->argv[0].p, c->argv[0].len);
	c->cmd = cmd;
	if (!cmd) {
		reply_unknown(c);
	} else if ((cmd->arity > 0 && c->argc != (size_t)cmd->arity) ||
		   (cmd->arity < 0 && c->argc < (size_t)-cmd->arity)) {
		reply_arity_error(c);
	} else if (!(c->flags & CLIENT_AUTHED) && !(cmd->flags & CMD_NOAUTH)) {
		reply_error(c, "NOAUTH Authentication required.");
	} else if ((c->flags & CLIENT_MULTI) && !is_multi_control(cmd)) {
		multi_queue(c, cmd);
		route_capture_end(c, mark);
		return;
	} else if (route_class(c, cmd) != REQ_LOCAL && !(c->flags & CLIENT_VIRTUAL)) {
		observe_op_begin(c);
		route_submit(c, cmd);
		if (c->op.receipt && !c->op.slotted && c->out.len > mark)
			wrap_receipt(c, mark);
		observe_op_end(c, sp_buf_begin(&c->out) + mark, c->out.len - mark);
		route_capture_end(c, mark);
		return;
	} else {
		cmd->fn(c);
		route_capture_end(c, mark);
		return;
	}
	/* The command was refused before it ran. */
	if (c->flags & CLIENT_MULTI)
		c->flags |= CLIENT_MULTI_BAD;
	route_capture_end(c, mark);
}
