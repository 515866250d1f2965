/*
 * route: where a data command runs, and how its answer finds its client.
 *
 * Every command that reads or writes data is in some keyspace; in a strong
 * keyspace (the only mode served so far) a write is a Raft entry and a
 * read is served at the level asked for:
 *
 *   linearizable  on the leader after a ReadIndex round (shared by every
 *                 read that arrives meanwhile); a follower forwards it.
 *   lease         on the leader at once while its lease holds, else as
 *                 linearizable (stronger, never weaker); followers forward.
 *   stale         on this node at once, from whatever it has applied.
 *
 * A command that cannot be answered at once becomes a request. Requests
 * wait for a leader (up to request-timeout-ms, then -TRYAGAIN: nothing was
 * done), are forwarded to the leader over the peer transport, or are
 * proposed / read here. A request whose fate cannot be known by its
 * deadline (forwarded or proposed, no answer) is answered -UNKNOWN, never
 * with a guess. A client's replies leave in the order its commands came,
 * through reply slots, however its requests finish.
 *
 * It must not: run a command's effects outside an entry's apply, or
 * report an unknown outcome as success or failure.
 */
#ifndef SP_SERVER_ROUTE_H
#define SP_SERVER_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "server/server.h"

enum req_class {
	REQ_LOCAL = 0, /* not data: runs here, now */
	REQ_READ,      /* reads data: by level */
	REQ_WRITE,     /* a Raft entry */
};

enum req_state {
	REQ_WAITING = 1, /* for a leader */
	REQ_FORWARDED,	 /* to the leader; its reply comes back */
	REQ_PROPOSED,	 /* an entry proposed here */
	REQ_READING,	 /* a ReadIndex round here */
	REQ_BLOCKED,	 /* a read behind its client's pending write */
};

struct request {
	struct server *srv;
	uint64_t id;
	struct request *prev, *next; /* srv->requests */
	struct request *hnext;	     /* hash bucket */
	struct client *c;	     /* local origin; NULL when gone or remote */
	struct reply_slot *slot;
	uint64_t from_node, from_req; /* remote origin: a follower forwarded it */
	uint64_t fwd_to;	      /* FORWARDED: the leader it went to */
	uint8_t cls, level, type, proto, state;
	bool applied;	      /* its entry was applied here: reply holds the answer */
	uint64_t deadline_ms; /* monotonic */
	uint64_t after;	      /* READ: the client's write it must follow */
	uint32_t ncmds;
	struct sp_buf body;  /* the commands, entry-encoded */
	struct sp_buf reply; /* set by apply */
};

/* route_init/route_close: the request table and its deadline timer. */
void route_init(struct server *srv);
void route_close(struct server *srv);

/* route_class says how cmd (with c->argv) is served. */
enum req_class route_class(const struct client *c, const struct command *cmd);

/* route_submit serves a READ or WRITE command of client c: at once when
 * it can, else as a request whose reply takes a slot. Errors (a keyspace
 * of another mode, a bad level) are answered at once. */
void route_submit(struct client *c, const struct command *cmd);

/* route_exec_multi submits c's queued MULTI commands as one entry. */
void route_exec_multi(struct client *c);

/* route_role_changed retries requests waiting for a leader. */
void route_role_changed(struct server *srv);

/* route_apply runs one committed entry (the strong engine's apply). */
void route_apply(struct server *srv, uint64_t index, const uint8_t *p, size_t len);

/* route_recv_forward handles a FWD_REQUEST or FWD_REPLY frame. */
void route_recv_forward(struct server *srv, uint64_t from, const uint8_t *p, size_t len);

/* route_client_gone detaches c's requests (their answers are dropped)
 * and frees its slots. */
void route_client_gone(struct client *c);

/* route_slot_reserve takes the next reply slot of c for an eventual or
 * causal op (ev: its request; detach(ev) is called if c goes first);
 * route_slot_fill puts the reply in it and releases what is ready, in
 * order. */
struct reply_slot *route_slot_reserve(struct client *c, void *ev, void (*detach)(void *ev));
void route_slot_fill(struct client *c, struct reply_slot *s, const void *p, size_t len);

/* route_capture_begin / route_capture_end bracket a command run for c
 * directly: when c has replies pending, what the command wrote is moved
 * into a slot of its own so it leaves in order. */
size_t route_capture_begin(struct client *c);
void route_capture_end(struct client *c, size_t mark);

/* route_propose_expire proposes an expiry entry (the leader's cron). */
void route_propose_expire(struct server *srv);

/* The most replies a client may have pending before its input waits. */
#define ROUTE_MAX_SLOTS 256

#endif
