/*
 * server: one spectrad node's client-facing half.
 *
 * Owns the libuv loop's handles for the client port, the connected
 * clients and the command table. Commands run on the loop thread only.
 * Data commands go through route.c: writes become Raft entries of the
 * strong engine (cluster.c starts it), reads are served at their level,
 * and replies leave in the order the commands came (reply slots). Entries
 * are applied into the store's open batch, committed at the end of every
 * loop iteration (durability.c). Nothing here blocks the loop: fsync runs
 * on libuv's thread pool.
 *
 * It must not: parse RESP itself (src/net/resp does), touch LMDB directly
 * (src/store does), or read the system clock (it asks srv->clock).
 */
#ifndef SP_SERVER_SERVER_H
#define SP_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/num.h"
#include "common/version.h"
#include "crdt/crdt.h"
#include "engine/strong/raft/raft.h"
#include "net/resp.h"
#include "store/store.h"

struct server;
struct client;
struct request;
struct strong;
struct peer_net;
struct ev_engine;
struct causal_engine;
struct causal_wait;
struct vclock;
struct trace;

/* A borrowed byte string: an argument or a key. */
struct slice {
	const char *p;
	size_t len;
};

/* Command flags (Redis's names where they exist, for COMMAND). */
enum {
	CMD_WRITE = 1u << 0,	/* may modify data */
	CMD_READONLY = 1u << 1, /* reads data only */
	CMD_FAST = 1u << 2,	/* O(1) or O(log n) */
	CMD_NOAUTH = 1u << 3,	/* allowed before AUTH */
	CMD_ADMIN = 1u << 4,	/* administrative */
	CMD_NOSCRIPT = 1u << 5, /* not allowed in scripts (for COMMAND's sake) */
	CMD_EVENTUAL = 1u << 6, /* CRDT commands: eventual keyspaces only */
	CMD_STRONG = 1u << 7,	/* MODEL.* commands: strong keyspaces only */
	CMD_FEATURE = 1u << 9,	/* FEATURE.*: feature views only */
};

typedef void (*command_fn)(struct client *c);

struct command {
	const char *name; /* lower case */
	int arity;	  /* Redis convention: n exact, -n at least n */
	uint32_t flags;
	int first_key, last_key, key_step; /* key positions, 0 if none */
	command_fn fn;
	const char *group; /* "string", "keyspace", "connection", "server" */
	const char *summary;
};

enum {
	CLIENT_CLOSE_AFTER_REPLY = 1u << 0, /* QUIT or protocol error */
	CLIENT_CLOSING = 1u << 1,	    /* uv_close called */
	CLIENT_READ_PAUSED = 1u << 2,	    /* output over its limit */
	CLIENT_PENDING = 1u << 3,	    /* on srv->pending */
	CLIENT_AUTHED = 1u << 4,
	CLIENT_READING = 1u << 5,	 /* uv_read_start is active */
	CLIENT_VIRTUAL = 1u << 7,	 /* no socket: runs commands for apply/reads */
	CLIENT_MULTI = 1u << 8,		 /* between MULTI and EXEC/DISCARD */
	CLIENT_MULTI_BAD = 1u << 9,	 /* a queued command was refused: EXEC aborts */
	CLIENT_STALLED = 1u << 10,	 /* input left unparsed: too many replies pending */
	CLIENT_RECEIPTS = 1u << 11,	 /* CLIENT RECEIPTS ON: data replies carry a receipt */
	CLIENT_MULTI_FEATURE = 1u << 12, /* MULTI holds FEATURE.SETs: one causal batch */
};

/* Read levels of a strong keyspace (DESIGN.md "level"). */
enum read_level {
	LEVEL_DEFAULT = 0, /* the keyspace's default, else linearizable */
	LEVEL_LINEARIZABLE,
	LEVEL_LEASE,
	LEVEL_STALE,
};

/* The level a data command was served at, across the three modes: what
 * the request metrics and the stale-read sampler are labelled by. */
enum obs_level {
	OBS_LINEARIZABLE = 0, /* strong */
	OBS_LEASE,
	OBS_STALE,
	OBS_CAUSAL, /* causal */
	OBS_LOCAL,
	OBS_ONE, /* eventual */
	OBS_QUORUM,
	OBS_ALL,
	OBS_NLEVELS,
};

/* One data command being timed (observe.c): set when it starts, its level
 * once an engine took it, and carried by its reply slot if it went
 * asynchronous. */
struct op_obs {
	uint64_t start_ns; /* monotonic */
	int8_t level;	   /* enum obs_level; -1: not a data command (yet) */
	bool write;
	bool slotted; /* its reply took a slot, which reports it when filled */
	/* The staleness receipt (CLIENT RECEIPTS ON), filled by the engine
	 * path that serves the command (observe_receipt). */
	bool receipt;	  /* the client asked for one */
	uint8_t proto;	  /* its protocol when the command came */
	uint8_t vkind;	  /* enum receipt_version */
	uint8_t replicas; /* nodes whose answer the reply rests on */
	uint64_t node;	  /* the node that served it (0: unknown) */
	uint64_t v1, v2, v3;
};

/* What identifies the state a receipt's reply came from. */
enum receipt_version {
	RCPT_NONE = 0,
	RCPT_INDEX,  /* strong: the Raft index the node's state was at (v1) */
	RCPT_HLC,    /* eventual: the value's HLC timestamp (v1) and writer (v2) */
	RCPT_CAUSAL, /* causal: the value's HLC (v1), origin (v2) and seq (v3) */
};

/* A reply that must wait for its turn: one per command of a client that
 * went asynchronous (Raft) or came after one, so replies leave in the
 * order the commands came. */
struct reply_slot {
	struct reply_slot *next;
	struct request *req;	  /* the request that fills it; NULL once ready */
	void *ev;		  /* or the eventual/causal op that fills it, and ... */
	void (*detach)(void *ev); /* ... what tells that op its client is gone */
	bool ready;
	struct sp_buf bytes;
	struct op_obs obs; /* the command it answers, when timed */
};

struct client {
	struct server *srv;
	uv_tcp_t tcp;
	uint64_t id;
	uint32_t flags;
	int proto; /* 2 or 3 */
	char *name;
	char *lib_name, *lib_ver; /* CLIENT SETINFO */
	char addr[64];
	uint64_t created_ms, last_active_ms;
	uint64_t commands;
	struct client *prev, *next;  /* srv->clients */
	struct client *pending_next; /* srv->pending */

	/* Input: unparsed bytes and the parser's progress over them. */
	struct sp_buf query;
	struct resp_request_parser parser;
	/* The command being executed: argv borrowed from query. */
	struct slice *argv;
	size_t argc, argv_cap;
	const struct command *cmd;

	/* Output: replies not yet handed to the socket. */
	struct sp_buf out;
	uint64_t out_taken; /* bytes ever taken from out for the socket; bytes
			     * ever appended are out_taken + out.len */
	/* A uv_write in flight owns wbuf until its callback. */
	uv_write_t wreq;
	struct sp_buf wbuf;
	int writing;

	/* Replies in command order while some are pending (route.c). */
	struct reply_slot *slot_head, *slot_tail;
	size_t nslots;
	size_t slot_bytes;	   /* reply bytes waiting in slots */
	uint32_t nblocked;	   /* its reads waiting behind its writes */
	uint8_t level;		   /* CONSISTENCY: enum read_level */
	uint8_t req_level;	   /* LEVEL prefix: for the command being run */
	uint8_t ev_read, ev_write; /* CONSISTENCY for eventual keyspaces: enum ev_level */
	uint8_t req_ev_level;	   /* LEVEL prefix with an eventual level */
	uint8_t causal_level;	   /* CONSISTENCY causal|local */
	uint8_t req_causal_level;  /* LEVEL prefix with a causal level */
	uint64_t maxstale_ms;	   /* CONSISTENCY MAXSTALE: ms + 1 (0: none) */
	uint64_t req_maxstale_ms;  /* MAXSTALE prefix: ms + 1 (0: none) */
	struct vclock *session;	   /* causal context (cmd_causal.c); NULL until used */
	uint32_t causal_waiting;   /* its causal commands waiting */
	uint64_t session_id;	   /* the session's id (0 until used; tokens carry it) */
	char traceparent[64];	   /* SESSION TRACE: W3C trace context, "" none */
	uint64_t last_write;	   /* id of its latest write request */
	struct sp_buf multi;	   /* MULTI: queued commands, entry-encoded */
	uint32_t multi_n;
	struct op_obs op; /* the data command running now (observe.c) */
};

/* A SCAN cursor: the last key returned, so the next call resumes after it. */
struct scan_cursor {
	uint64_t id;
	char *key;
	size_t len;
};
#define SCAN_CURSORS 4096

/* A background job that makes committed batches durable (durability.c). */
struct durability_job {
	struct server *srv;
	uv_work_t work;
	int checkpoint; /* 1: store_checkpoint, 0: store_sync */
	int running;
	uint64_t target; /* committed_seq when it started: what it covers */
	int rc;
	uint64_t ns; /* duration of the last run */
	uint64_t count, ns_total, ns_max;
};

struct server_stats {
	uint64_t connections; /* accepted */
	uint64_t rejected;    /* refused at maxclients */
	uint64_t commands;
	uint64_t errors; /* error replies */
	uint64_t protocol_errors;
	uint64_t net_in, net_out;
	uint64_t hits, misses;
	uint64_t expired;	 /* removed by the active expiry cycle */
	uint64_t batch_failures; /* commits that failed */
	uint64_t ops_window_start_ms, ops_window_count, ops_per_sec;
};

struct server {
	uv_loop_t *loop;
	const struct sp_config *cfg;
	const struct sp_clock *clock;
	struct store *store;
	struct resp_limits limits;
	size_t max_key_len;
	char run_id[41];
	const char *config_file;

	uv_tcp_t listener;
	uv_check_t commit_check; /* end of each loop iteration: commit + flush */
	uv_timer_t cron;	 /* expiry, idle timeouts, stats */
	uv_signal_t sigterm, sigint;
	int shutting_down;
	int shutdown_finished;

	struct client *clients;
	uint64_t nclients;
	uint64_t next_client_id;
	struct client *pending; /* clients with output to consider */

	/* The store's batches (durability.c), numbered from 1 in the order
	 * they were opened; open_seq is the batch applies go into now. A batch
	 * the store loses stops the node (route_apply, durability.c). */
	uint64_t open_seq;
	uint64_t committed_seq;
	uint64_t durable_seq;
	uint64_t lost_seen;		  /* store_batches_lost when last checked */
	struct durability_job sync;	  /* fdatasync of the write-ahead log */
	struct durability_job checkpoint; /* fdatasync of the tree, log trimmed */
	uint64_t last_sync_ms, last_checkpoint_ms;

	struct scan_cursor cursors[SCAN_CURSORS];
	uint64_t next_cursor;

	/* Replication (cluster.c, route.c). */
	uint64_t node_id;
	struct peer_net *net;
	struct strong *strong;
	struct ev_engine *eventual;   /* eventual keyspaces' engine (cluster.c) */
	struct causal_engine *causal; /* causal keyspaces' engine (cluster.c) */
	uv_timer_t causal_timer;
	struct causal_wait *causal_waiters; /* cmd_causal.c */
	struct trace *trace;		    /* causal trace log (trace-file), or NULL */
	uv_timer_t ev_timer;
	struct crdt_limits ev_limits;
	enum raft_role role;
	uint64_t leader, term;
	struct request *requests; /* every live request */
	struct request **req_buckets;
	uint64_t next_req_id;
	uint64_t nrequests;
	uv_timer_t req_timer;
	struct client *vc;	    /* runs commands for apply and reads */
	struct sp_buf scratch;	    /* entry encoding */
	bool applying;		    /* inside an entry's apply */
	bool expire_inflight;	    /* an expiry entry is proposed */
	struct keyspace *keyspaces; /* strong data: from the store's meta */
	size_t nkeyspaces;
	struct cluster_file *cluster;
	uint64_t now_ms; /* see server_now_ms */
	uint64_t start_ms;
	struct server_stats stats;
	struct server_obs *obs;		   /* metrics, HTTP endpoint, sampler (observe.c) */
	struct stale_strong *stale_strong; /* strong reads the sampler checks (stale.c) */
	/* A follower's freshness (observe.c): its state holds every write
	 * committed before fresh_as_of_ns (monotonic), as a ReadIndex round
	 * sent then proved; probes_out are in flight. */
	uint64_t fresh_as_of_ns, last_probe_ns;
	uint32_t probes_out;
};

/* server.c ------------------------------------------------------------- */

/*
 * server_init binds the client port and prepares every handle on loop.
 * cfg, clock and store are borrowed for the server's life. Returns 0 or a
 * negative libuv/SP_ERR code, with a message logged.
 */
int server_init(struct server *srv, uv_loop_t *loop, const struct sp_config *cfg,
		const struct sp_clock *clock, struct store *store);
/* server_shutdown starts a clean stop: stop accepting, commit, sync, send
 * what can be sent, close every client and handle. The loop then ends. */
void server_shutdown(struct server *srv);
/* server_finish_shutdown runs once the final sync is done: it closes every
 * client and handle so the loop ends. */
void server_finish_shutdown(struct server *srv);
/* server_close frees what server_init allocated (after the loop ended). */
void server_close(struct server *srv);

/* server_now_ms is the wall-clock time commands see: read from srv->clock
 * once per batch of input (server_tick), not per command, as Redis
 * snapshots its command time. */
static inline uint64_t server_now_ms(const struct server *srv)
{
	return srv->now_ms;
}
/* server_tick refreshes srv->now_ms from the clock. */
void server_tick(struct server *srv);

/* observe.c ------------------------------------------------------------ */

/* observe_init builds the node's metrics and, when http-port (or the
 * cluster file's http=) names a port, starts the HTTP endpoint. Returns 0
 * or the endpoint's error. observe_close stops and frees it all. */
int observe_init(struct server *srv);
void observe_close(struct server *srv);
/* Timing of data commands: begin before route_submit, level once the
 * engine knows it, end after it returned (reply: what it wrote at once). */
void observe_op_begin(struct client *c);
void observe_op_level(struct client *c, enum obs_level level, bool write);
void observe_op_end(struct client *c, const char *reply, size_t len);
/* observe_strong_lag_ms: 0 on the leader; on a follower, how long ago the
 * newest write it may be missing could have committed (UINT64_MAX: not
 * known yet). Every 50 ms a follower sends a ReadIndex round; when its
 * state reaches the index that round returns, it holds every write
 * committed before the round was sent, however slow the network was. */
uint64_t observe_strong_lag_ms(struct server *srv);
/* observe_freshness_probe sends that round when one is due (call it
 * every few ms). */
void observe_freshness_probe(struct server *srv);
/* observe_slot_done: a timed reply slot was filled with its bytes. */
void observe_slot_done(struct server *srv, const struct reply_slot *s);
/* observe_receipt records what a receipt says of op's reply. */
void observe_receipt(struct op_obs *op, uint64_t node, uint8_t replicas, enum receipt_version vkind,
		     uint64_t v1, uint64_t v2, uint64_t v3);
/* observe_wrap appends reply p[0..len) to out, with op's receipt when the
 * client asked for one: a RESP3 attribute before it, or in RESP2 a
 * two-element array [reply, receipt]. Error replies carry none. */
void observe_wrap(struct server *srv, const struct op_obs *op, const void *p, size_t len,
		  struct sp_buf *out);
/* observe_tick keeps the recent windows /status reports (call it often;
 * it acts once a second). */
void observe_tick(struct server *srv);
/* The sampler's verdict on one weak read at level: stale or not, and by
 * how much; or that the stronger read it was compared with failed. */
void observe_stale(struct server *srv, enum obs_level level, bool stale, uint64_t versions_behind,
		   uint64_t ms_behind);
void observe_stale_failed(struct server *srv, enum obs_level level);
/* observe_siblings: a read of a multi-value key returned n values. */
void observe_siblings(struct server *srv, bool eventual, size_t n);
/* observe_sample_pick: should this read be checked? (one in
 * stale-sample-every, at random) */
bool observe_sample_pick(struct server *srv);
const char *obs_level_name(enum obs_level l);
const char *obs_level_mode(enum obs_level l);

/* stale.c -------------------------------------------------------------- */

struct ev_op;
struct ev_result;
struct stale_ev;
/* stale_ev_begin: when the sampler picks this eventual read (a GET at ONE
 * or QUORUM), a sample to pass the weak read's result to (stale_ev_served)
 * once stale_ev_start has issued the stronger read; else NULL. Submit the
 * weak read between the two, so the stronger read cannot repair what the
 * weak one reads. The sample frees itself when both are back. */
struct stale_ev *stale_ev_begin(struct server *srv, const struct ev_op *op);
void stale_ev_start(struct stale_ev *s, const struct ev_op *op);
void stale_ev_served(struct stale_ev *s, const struct ev_result *r);
/* stale_strong_read: a strong GET of key was just served at a stale or
 * lease level from this node's store; when the sampler picks it, a
 * ReadIndex round finds the commit index at this moment, and the writes
 * to key applied up to it that the read had not seen are counted. */
void stale_strong_read(struct server *srv, enum obs_level level, const void *key, size_t klen);
/* stale_causal_read: a causal GET of key was just served here; when the
 * sampler picks it, every peer is asked for its version of key, and newer
 * ones written before the read count. */
void stale_causal_read(struct server *srv, enum obs_level level, const void *key, size_t klen);
/* stale_strong_applied: route_apply applied entry index (its time). */
void stale_strong_applied(struct server *srv, uint64_t index, uint64_t time_ms);

/* client.c ------------------------------------------------------------- */

void client_accept(struct server *srv);
void client_close(struct client *c);
/* client_mark_pending queues c for the end-of-iteration flush. */
void client_mark_pending(struct client *c);
/* client_flush hands every releasable output byte to the socket. */
void client_flush(struct client *c);
/* client_process_input parses and runs buffered commands. */
void client_process_input(struct client *c);

/* durability.c --------------------------------------------------------- */

/* Called at the end of each loop iteration: commit the open batch and
 * flush the clients with output. */
void durability_end_of_iteration(struct server *srv);
/* Start a background sync of the store if one is needed and none is
 * running (at shutdown). */
void durability_maybe_sync(struct server *srv);

/* commands.c ----------------------------------------------------------- */

/* command_table_init builds the lookup table; call once before serving. */
void command_table_init(void);
const struct command *command_lookup(const char *name, size_t len);
size_t command_count(void);
const struct command *command_at(size_t i);
/* command_execute runs c->argv against the table: arity, auth, dispatch. */
void command_execute(struct client *c);

/* reply helpers (reply.c): append to c->out in c->proto's form. */
void reply_ok(struct client *c);
void reply_simple(struct client *c, const char *s);
void reply_error(struct client *c, const char *msg);
void reply_errorf(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_integer(struct client *c, int64_t v);
void reply_bulk(struct client *c, const void *p, size_t len);
void reply_bulk_str(struct client *c, const char *s);
void reply_null(struct client *c);
void reply_null_array(struct client *c);
void reply_array(struct client *c, size_t n);
void reply_map(struct client *c, size_t pairs);
void reply_verbatim(struct client *c, const char *text, size_t len);
void reply_arity_error(struct client *c);
void reply_syntax_error(struct client *c);
/* reply_store_error answers a failed store call in words a client can act
 * on (a batch the store dropped is noticed by durability_check_lost). */
void reply_store_error(struct client *c, int err);

/* Parsing of command arguments (args.c). Each returns 0 or -1 after
 * replying with Redis's error text. */
int arg_to_int64(struct client *c, struct slice a, int64_t *out);
int arg_equals(struct slice a, const char *lit); /* case-insensitive */

#endif
