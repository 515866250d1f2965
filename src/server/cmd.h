/*
 * cmd: the command handlers, one per table entry in commands.c. Keyspace
 * and string commands live in cmd_keys.c; connection and server commands
 * in cmd_conn.c. Each handler reads c->argv/c->argc (arity already
 * checked) and appends exactly one reply.
 */
#ifndef SP_SERVER_CMD_H
#define SP_SERVER_CMD_H

#include "server/server.h"

/* cmd_keys.c */
void cmd_get(struct client *c);
void cmd_set(struct client *c);
void cmd_setnx(struct client *c);
void cmd_setex(struct client *c);
void cmd_psetex(struct client *c);
void cmd_getset(struct client *c);
void cmd_getdel(struct client *c);
void cmd_getex(struct client *c);
void cmd_del(struct client *c);
void cmd_exists(struct client *c);
void cmd_mget(struct client *c);
void cmd_mset(struct client *c);
void cmd_msetnx(struct client *c);
void cmd_incr(struct client *c);
void cmd_decr(struct client *c);
void cmd_incrby(struct client *c);
void cmd_decrby(struct client *c);
void cmd_append(struct client *c);
void cmd_strlen(struct client *c);
void cmd_expire(struct client *c);
void cmd_pexpire(struct client *c);
void cmd_expireat(struct client *c);
void cmd_pexpireat(struct client *c);
void cmd_ttl(struct client *c);
void cmd_pttl(struct client *c);
void cmd_expiretime(struct client *c);
void cmd_pexpiretime(struct client *c);
void cmd_persist(struct client *c);
void cmd_type(struct client *c);
void cmd_scan(struct client *c);
void cmd_keys(struct client *c);
void cmd_dbsize(struct client *c);
void cmd_flushall(struct client *c);

/* cmd_conn.c */
void cmd_ping(struct client *c);
void cmd_echo(struct client *c);
void cmd_hello(struct client *c);
void cmd_auth(struct client *c);
void cmd_select(struct client *c);
void cmd_quit(struct client *c);
void cmd_client(struct client *c);
void cmd_info(struct client *c);
void cmd_config(struct client *c);
void cmd_command(struct client *c);
void cmd_time(struct client *c);
void cmd_lastsave(struct client *c);
void cmd_shutdown(struct client *c);

/* Helpers shared by the handlers. */
/* glob_match: Redis-style glob over binary-safe bytes (fnmatch(3) rules;
 * a subject or pattern with a NUL byte matches only the pattern "*"). */
int glob_match(const char *pat, size_t plen, const char *s, size_t slen);
/* live_key_counts: keys and keys with an expiry, leaving out expired keys
 * the expiry cycle has not removed yet. Returns 0 or a store error. */
int live_key_counts(struct server *srv, uint64_t *keys, uint64_t *expires);
/* command_reply_info appends COMMAND's entry for one command. */
void command_reply_info(struct client *c, const struct command *cmd);

/* cmd_strong.c, cluster.c */
void cmd_consistency(struct client *c);
void cmd_level(struct client *c);
void cmd_maxstale(struct client *c);
/* maxstale_bound: the staleness bound of c's command in ms, or -1. */
int64_t maxstale_bound(const struct client *c);
void cmd_getrev(struct client *c);
void cmd_cas(struct client *c);
void cmd_multi(struct client *c);
void cmd_exec(struct client *c);
void cmd_discard(struct client *c);
void cmd_keyspace(struct client *c);
void cmd_cluster(struct client *c);
void cmd_debug(struct client *c);
void multi_queue(struct client *c, const struct command *cmd);

/* cmd_eventual.c */
struct keyspace;
/* evcmd_submit serves c's command on keys of eventual keyspace ks. */
void evcmd_submit(struct client *c, const struct command *cmd, const struct keyspace *ks);
/* evcmd_detach: the client of an eventual op's reply slot went away. */
void evcmd_detach(void *ev);
/* evcmd_info appends INFO's eventual section. */
void evcmd_info(struct server *srv, struct sp_buf *b);
void cmd_crdt(struct client *c);
void cmd_eventual(struct client *c);

/* cmd_model.c: the model registry (MODEL.*), strong keyspaces only */
void cmd_model_register(struct client *c);
void cmd_model_get(struct client *c);
void cmd_model_versions(struct client *c);
void cmd_model_alias(struct client *c);
void cmd_model_unalias(struct client *c);
void cmd_model_aliases(struct client *c);

/* cmd_causal.c */
/* causal_submit serves c's command on a key of causal keyspace ks. */
void causal_submit(struct client *c, const struct command *cmd, const struct keyspace *ks);
/* causal_applied_changed / causal_timer_tick run waiting commands that are
 * ready (and the engine's tick, for the timer). */
void causal_applied_changed(struct server *srv);
void causal_timer_tick(struct server *srv);
void causal_info(struct server *srv, struct sp_buf *b);
void causal_client_gone(struct client *c);
void cmd_session(struct client *c);
/* causal_too_big writes the error of a causal write past the engine's
 * update size (SP_ERR_TOOBIG). */
void causal_too_big(struct server *srv, struct sp_buf *out);
/* causal_exec_features runs c's MULTI of FEATURE.SETs as one causal batch. */
void causal_exec_features(struct client *c);

/* cmd_feature.c */
/* The most bytes of arguments one FEATURE.SET, or one MULTI batch of them,
 * may carry: it travels to every node as one causal update, and a peer
 * frame holds 64 MB at most. */
#define FEATURE_BATCH_MAX_BYTES ((size_t)16 << 20)
void cmd_feature(struct client *c);
/* feature_set_bytes: the bytes of c's arguments after the command name
 * (what FEATURE_BATCH_MAX_BYTES bounds). */
size_t feature_set_bytes(const struct client *c);
/* feature_check answers an error and returns -1 when c's FEATURE.* command
 * is malformed (so it is refused before it waits or is queued). */
int feature_check(struct client *c, const struct command *cmd);
/* feature_run runs one FEATURE.* command (argv, borrowed for the call)
 * on this node's causal engine, appending the reply to out;
 * feature_run_encoded runs ncmds entry-encoded ones (a MULTI batch of
 * FEATURE.SETs when batch), as a command that waited for its session
 * keeps them. The commands passed feature_check. */
void feature_run(struct server *srv, const struct slice *argv, size_t argc, int proto,
		 struct sp_buf *out);
void feature_run_encoded(struct server *srv, const uint8_t *body, size_t len, uint32_t ncmds,
			 bool batch, int proto, struct sp_buf *out);
/* feature_reply_state writes the reply of one entry-encoded FEATURE.GET
 * or FEATURE.HISTORY (cmd, len) from the entity's fvec state s (slen 0:
 * none): the eventual engine's read path, which merged the state from
 * the replicas. */
void feature_reply_state(struct server *srv, const uint8_t *cmd, size_t len, const uint8_t *s,
			 size_t slen, int proto, struct sp_buf *out);
int route_check_keys(struct client *c, const struct command *cmd);

#endif
