/*
 * route: requests, levels, forwarding and in-order replies. See route.h.
 */
#include "server/route.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "engine/eventual/eventual.h"
#include "engine/strong/strong.h"
#include "net/peer.h"
#include "server/cluster.h"
#include "server/cmd.h"
#include "server/entry.h"
#include "server/keyspace.h"

_Static_assert(sizeof(struct slice) == sizeof(struct entry_arg) &&
		   offsetof(struct slice, p) == offsetof(struct entry_arg, p) &&
		   offsetof(struct slice, len) == offsetof(struct entry_arg, len),
	       "a command's argv is encoded as it is");

#define BUCKETS	 4096 /* power of two */
#define TIMER_MS 10

/* A request answered while Raft still holds it as a callback argument is
 * kept (detached) until that callback. */
struct request_ext {
	struct request req;
	bool answered;
	bool raft_pending;
};

static void on_timer(uv_timer_t *t);

static uint64_t mono_ms(const struct server *srv)
{
	return sp_mono_ns(srv->clock) / 1000000;
}

/* ---- the request table ---- */

static struct request_ext *ext(struct request *r)
{
	return (struct request_ext *)r;
}

static struct request *req_new(struct server *srv)
{
	struct request_ext *e = sp_calloc(1, sizeof(*e));
	struct request *r = &e->req;
	r->srv = srv;
	r->id = ++srv->next_req_id;
	r->deadline_ms = mono_ms(srv) + srv->cfg->request_timeout_ms;
	sp_buf_init(&r->body);
	sp_buf_init(&r->reply);
	r->next = srv->requests;
	if (srv->requests)
		srv->requests->prev = r;
	srv->requests = r;
	struct request **b = &srv->req_buckets[r->id & (BUCKETS - 1)];
	r->hnext = *b;
	*b = r;
	srv->nrequests++;
	if (!uv_is_active((uv_handle_t *)&srv->req_timer))
		uv_timer_start(&srv->req_timer, on_timer, TIMER_MS, TIMER_MS);
	return r;
}

static struct request *req_find(struct server *srv, uint64_t id)
{
	for (struct request *r = srv->req_buckets[id & (BUCKETS - 1)]; r; r = r->hnext)
		if (r->id == id)
			return r;
	return NULL;
}

static void req_unlink(struct request *r)
{
	struct server *srv = r->srv;
	if (r->prev)
		r->prev->next = r->next;
	else
		srv->requests = r->next;
	if (r->next)
		r->next->prev = r->prev;
	struct request **b = &srv->req_buckets[r->id & (BUCKETS - 1)];
	while (*b != r)
		b = &(*b)->hnext;
	*b = r->hnext;
	srv->nrequests--;
}

static void req_destroy(struct request *r)
{
	sp_buf_free(&r->body);
	sp_buf_free(&r->reply);
	free(ext(r));
}

/* req_done takes r out of the table; its memory goes now, or when Raft's
 * callback for it comes. */
static void req_dispatch(struct request *r);

/* A client's reads wait for its writes sent before them (a pipeline reads
 * its own writes, as in Redis); release those behind r. */
static void release_blocked(struct client *c, uint64_t write_id)
{
	if (!c->nblocked)
		return;
	size_t n = 0, cap = 0;
	uint64_t *ids = NULL;
	for (struct reply_slot *s = c->slot_head; s; s = s->next) {
		struct request *q = s->req;
		if (q && q->state == REQ_BLOCKED && q->after == write_id) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				ids = sp_realloc(ids, cap * sizeof(*ids));
			}
			ids[n++] = q->id;
		}
	}
	/* By id: dispatching one may answer and free another. */
	struct server *srv = c->srv;
	for (size_t i = 0; i < n; i++) {
		struct request *q = req_find(srv, ids[i]);
		if (!q || q->state != REQ_BLOCKED)
			continue;
		q->after = 0;
		q->state = REQ_WAITING;
		c->nblocked--;
		req_dispatch(q);
	}
	free(ids);
}

static void req_done(struct request *r)
{
	struct client *c = r->c;
	if (c && r->state == REQ_BLOCKED)
		c->nblocked--;
	ext(r)->answered = true;
	req_unlink(r);
	if (r->slot)
		r->slot->req = NULL;
	r->slot = NULL;
	r->c = NULL;
	uint64_t id = r->id;
	bool write = r->cls == REQ_WRITE;
	if (!ext(r)->raft_pending)
		req_destroy(r);
	if (c && write)
		release_blocked(c, id);
}

/* ---- reply slots ---- */

static struct reply_slot *slot_push(struct client *c)
{
	struct reply_slot *s = sp_calloc(1, sizeof(*s));
	sp_buf_init(&s->bytes);
	if (c->slot_tail)
		c->slot_tail->next = s;
	else
		c->slot_head = s;
	c->slot_tail = s;
	c->nslots++;
	/* The first slot a timed command takes reports its time when filled. */
	s->obs.level = -1;
	if (c->op.level >= 0 && !c->op.slotted) {
		s->obs = c->op;
		c->op.slotted = true;
	}
	return s;
}

static void slots_drain(struct client *c)
{
	while (c->slot_head && c->slot_head->ready) {
		struct reply_slot *s = c->slot_head;
		sp_buf_append(&c->out, sp_buf_begin(&s->bytes), s->bytes.len);
		c->slot_bytes -= s->bytes.len;
		c->slot_head = s->next;
		if (!c->slot_head)
			c->slot_tail = NULL;
		c->nslots--;
		sp_buf_free(&s->bytes);
		free(s);
	}
	client_mark_pending(c);
}

struct reply_slot *route_slot_reserve(struct client *c, void *ev, void (*detach)(void *ev))
{
	struct reply_slot *s = slot_push(c);
	s->ev = ev;
	s->detach = detach;
	return s;
}

void route_slot_fill(struct client *c, struct reply_slot *s, const void *p, size_t len)
{
	size_t before = s->bytes.len;
	observe_wrap(c->srv, &s->obs, p, len, &s->bytes);
	c->slot_bytes += s->bytes.len - before;
	s->ready = true;
	observe_slot_done(c->srv, s);
	s->ev = NULL;
	slots_drain(c);
}

size_t route_capture_begin(struct client *c)
{
	return c->out.len;
}

void route_capture_end(struct client *c, size_t mark)
{
	if (!c->slot_head || c->out.len <= mark || (c->flags & CLIENT_VIRTUAL))
		return;
	struct reply_slot *s = slot_push(c);
	sp_buf_append(&s->bytes, sp_buf_begin(&c->out) + mark, c->out.len - mark);
	c->slot_bytes += c->out.len - mark;
	c->out.len = mark;
	s->ready = true;
}

void route_client_gone(struct client *c)
{
	struct reply_slot *s = c->slot_head;
	while (s) {
		struct reply_slot *next = s->next;
		if (s->req)
			s->req->c = NULL, s->req->slot = NULL;
		if (s->ev && s->detach)
			s->detach(s->ev);
		sp_buf_free(&s->bytes);
		free(s);
		s = next;
	}
	c->slot_head = c->slot_tail = NULL;
	c->nslots = 0;
	c->slot_bytes = 0;
	c->nblocked = 0;
	sp_buf_free(&c->multi);
}

/* ---- answering ---- */

static void send_reply_frame(struct server *srv, uint64_t to, uint64_t req_id, uint8_t status,
			     const void *p, size_t len)
{
	struct sp_buf *b = &srv->scratch;
	sp_buf_clear(b);
	uint8_t h[10];
	h[0] = FWD_REPLY;
	sp_put_le64(h + 1, req_id);
	h[9] = status;
	sp_buf_append(b, h, sizeof(h));
	if (len)
		sp_buf_append(b, p, len);
	int rc = peer_net_send(srv->net, to, CLUSTER_CHANNEL_FORWARD, sp_buf_begin(b), b->len);
	if (rc)
		sp_debug("route: reply to node %llu not sent: %s", (unsigned long long)to,
			 sp_strerror(rc));
}

static void req_answer(struct request *r, const void *p, size_t len)
{
	if (ext(r)->answered)
		return;
	if (r->from_node) {
		send_reply_frame(r->srv, r->from_node, r->from_req, FWD_OK, p, len);
	} else if (r->c && r->slot) {
		size_t before = r->slot->bytes.len;
		if (r->state == REQ_FORWARDED)
			observe_receipt(&r->slot->obs, r->srv->leader, 0, RCPT_NONE, 0, 0, 0);
		observe_wrap(r->srv, &r->slot->obs, p, len, &r->slot->bytes);
		r->c->slot_bytes += r->slot->bytes.len - before;
		r->slot->ready = true;
		observe_slot_done(r->srv, r->slot);
		r->slot->req = NULL;
		struct client *c = r->c;
		r->slot = NULL;
		slots_drain(c);
	}
	req_done(r);
}

static void req_answer_error(struct request *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void req_answer_error(struct request *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct sp_buf b;
	sp_buf_init(&b);
	resp_write_error(&b, msg);
	r->srv->stats.errors++;
	req_answer(r, sp_buf_begin(&b), b.len);
	sp_buf_free(&b);
}

/* A remote request this node cannot serve: the follower routes it again.
 * Only for requests that were not proposed or read here. */
static void req_bounce(struct request *r)
{
	send_reply_frame(r->srv, r->from_node, r->from_req, FWD_RETRY, NULL, 0);
	req_done(r);
}

/* ---- running commands for a request ---- */

/* run_body runs the request's commands on the virtual client, at the
 * server's current time, leaving the reply in srv->vc->out. */
static void run_commands(struct server *srv, uint8_t type, uint8_t proto, const uint8_t *p,
			 size_t left, uint32_t ncmds)
{
	struct client *vc = srv->vc;
	sp_buf_clear(&vc->out);
	vc->proto = proto;
	if (type == ENTRY_MULTI)
		reply_array(vc, ncmds);
	for (uint32_t i = 0; i < ncmds; i++) {
		size_t argc = 0;
		if (entry_next_cmd(&p, &left, (struct entry_arg **)&vc->argv, &vc->argv_cap,
				   &argc)) {
			reply_error(vc, "ERR malformed replicated command");
			continue;
		}
		vc->argc = argc;
		const struct command *cmd = command_lookup(vc->argv[0].p, vc->argv[0].len);
		vc->cmd = cmd;
		if (!cmd) {
			reply_error(vc, "ERR unknown replicated command");
			continue;
		}
		cmd->fn(vc);
	}
	vc->argc = 0;
}

/* quorum: how many members a commit or a ReadIndex round rests on. */
static uint8_t quorum(const struct server *srv)
{
	const struct raft_conf *conf = strong_conf(srv->strong);
	return (uint8_t)(conf && conf->n ? conf->n / 2 + 1 : 1);
}

static void req_run_here(struct request *r)
{
	struct server *srv = r->srv;
	run_commands(srv, r->type, r->proto, (const uint8_t *)sp_buf_begin(&r->body), r->body.len,
		     r->ncmds);
	req_answer(r, sp_buf_begin(&srv->vc->out), srv->vc->out.len);
}

/* ---- Raft callbacks ---- */

static void on_proposed(void *arg, int err, uint64_t index)
{
	struct request *r = arg;
	(void)index;
	ext(r)->raft_pending = false;
	if (ext(r)->answered) {
		req_destroy(r);
		return;
	}
	if (err == 0 && r->applied) {
		if (r->slot)
			observe_receipt(&r->slot->obs, r->srv->node_id, quorum(r->srv), RCPT_INDEX,
					index, 0, 0);
		req_answer(r, sp_buf_begin(&r->reply), r->reply.len);
	} else if (err == SP_ERR_AGAIN) {
		/* Overwritten by another leader's entry: it never took effect. */
		if (r->from_node)
			req_bounce(r);
		else
			req_answer_error(r, "TRYAGAIN leadership changed before the write "
					    "committed; it was not applied");
	} else {
		req_answer_error(r,
				 "UNKNOWN the write may or may not have been applied "
				 "(%s); read it back before retrying",
				 err ? sp_strerror(err) : "no reply recorded");
	}
}

static void on_read_ready(void *arg, int err, uint64_t index)
{
	struct request *r = arg;
	(void)index;
	ext(r)->raft_pending = false;
	if (ext(r)->answered) {
		req_destroy(r);
		return;
	}
	if (err == 0) {
		if (r->slot)
			observe_receipt(&r->slot->obs, r->srv->node_id, quorum(r->srv), RCPT_INDEX,
					strong_applied_index(r->srv->strong), 0, 0);
		req_run_here(r);
		return;
	}
	/* The round failed (lost leadership): nothing was done; try again. */
	if (r->from_node) {
		req_bounce(r);
		return;
	}
	r->state = REQ_WAITING;
	req_dispatch(r);
}

/* ---- dispatch ---- */

static void forward(struct request *r)
{
	struct server *srv = r->srv;
	if (peer_net_link_down(srv->net, srv->leader)) {
		/* The leader's node refuses connections (killed, restarting):
		 * a request sent now would be lost with the frame. Hold it
		 * until a leader is reachable; at its deadline it is answered
		 * TRYAGAIN, not executed. */
		r->state = REQ_WAITING;
		return;
	}
	struct sp_buf *b = &srv->scratch;
	sp_buf_clear(b);
	uint8_t h[17];
	h[0] = FWD_REQUEST;
	sp_put_le64(h + 1, r->id);
	h[9] = r->cls;
	h[10] = r->level;
	h[11] = r->type;
	h[12] = r->proto;
	sp_put_le32(h + 13, r->ncmds);
	sp_buf_append(b, h, sizeof(h));
	sp_buf_append(b, sp_buf_begin(&r->body), r->body.len);
	int rc =
	    peer_net_send(srv->net, srv->leader, CLUSTER_CHANNEL_FORWARD, sp_buf_begin(b), b->len);
	if (rc == SP_ERR_TOOBIG) {
		req_answer_error(r, "ERR request too large to forward to the leader (node %llu)",
				 (unsigned long long)srv->leader);
		return;
	}
	r->state = REQ_FORWARDED;
	r->fwd_to = srv->leader;
}

static void propose(struct request *r)
{
	struct server *srv = r->srv;
	struct sp_buf *b = &srv->scratch;
	sp_buf_clear(b);
	struct entry_hdr h = {.type = r->type,
			      .proto = r->proto,
			      .origin = srv->node_id,
			      .req_id = r->id,
			      .time_ms = server_now_ms(srv),
			      .ncmds = r->ncmds};
	entry_put_hdr(b, &h);
	sp_buf_append(b, sp_buf_begin(&r->body), r->body.len);
	int rc = strong_propose(srv->strong, sp_buf_begin(b), b->len, on_proposed, r);
	if (rc == 0) {
		r->state = REQ_PROPOSED;
		ext(r)->raft_pending = true;
	} else if (rc == SP_ERR_FULL) {
		if (r->from_node)
			req_bounce(r);
		else
			req_answer_error(r, "TRYAGAIN too many writes waiting to commit; it was "
					    "not applied");
	} else {
		r->state = REQ_WAITING; /* lost leadership just now */
	}
}

static void req_dispatch(struct request *r)
{
	struct server *srv = r->srv;
	if (r->after) {
		if (req_find(srv, r->after)) {
			r->state = REQ_BLOCKED;
			if (r->c)
				r->c->nblocked++;
			return;
		}
		r->after = 0;
	}
	if (r->cls == REQ_READ && r->level == LEVEL_STALE) {
		req_run_here(r);
		return;
	}
	if (srv->role == RAFT_LEADER) {
		if (r->cls == REQ_WRITE) {
			propose(r);
			return;
		}
		if (r->level == LEVEL_LEASE && strong_read_lease(srv->strong) == 0) {
			req_run_here(r);
			return;
		}
		if (strong_read(srv->strong, on_read_ready, r) == 0) {
			r->state = REQ_READING;
			ext(r)->raft_pending = true;
			return;
		}
	}
	if (r->from_node) {
		/* A leader forwards no further: the follower knows more. */
		req_bounce(r);
		return;
	}
	if (srv->leader && srv->leader != srv->node_id && srv->role != RAFT_LEADER) {
		forward(r);
		return;
	}
	r->state = REQ_WAITING;
}

/* collect_ids returns the ids of the requests that pick() selects, oldest
 * first. Acting on a request can answer and free others (a write's
 * answer releases the reads blocked behind it), so callers act by id. */
static uint64_t *collect_ids(struct server *srv, bool (*pick)(const struct request *, uint64_t),
			     uint64_t now, size_t *n_out)
{
	size_t n = 0, cap = 0;
	uint64_t *ids = NULL;
	for (struct request *r = srv->requests; r; r = r->next) {
		if (!pick(r, now))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ids = sp_realloc(ids, cap * sizeof(*ids));
		}
		ids[n++] = r->id;
	}
	/* The list holds the newest first. */
	for (size_t i = 0; i < n / 2; i++) {
		uint64_t t = ids[i];
		ids[i] = ids[n - 1 - i];
		ids[n - 1 - i] = t;
	}
	*n_out = n;
	return ids;
}

static bool is_expired(const struct request *r, uint64_t now)
{
	return now >= r->deadline_ms;
}

/* is_forward_lost: forwarded to a leader that is no longer the leader, or
 * whose node went down, so no answer may ever come. */
static bool is_forward_lost(const struct request *r)
{
	if (r->state != REQ_FORWARDED)
		return false;
	const struct server *srv = r->srv;
	return (srv->leader && srv->leader != r->fwd_to) || peer_net_link_down(srv->net, r->fwd_to);
}

/* needs_route: waiting for a leader, or forwarded and lost. */
static bool needs_route(const struct request *r, uint64_t now)
{
	(void)now;
	return r->state == REQ_WAITING || is_forward_lost(r);
}

void route_role_changed(struct server *srv)
{
	size_t n;
	uint64_t *ids = collect_ids(srv, needs_route, 0, &n);
	for (size_t i = 0; i < n; i++) {
		struct request *r = req_find(srv, ids[i]);
		if (!r)
			continue;
		if (is_forward_lost(r)) {
			/* A read lost with its leader is routed again (it changed
			 * nothing); a write may have been committed, so it is
			 * answered UNKNOWN now rather than at its deadline. */
			if (r->cls != REQ_READ) {
				req_answer_error(
				    r,
				    "UNKNOWN the leader (node %llu) was lost before it "
				    "answered; the write may or may not have been applied",
				    (unsigned long long)r->fwd_to);
				continue;
			}
			r->state = REQ_WAITING;
		}
		if (r->state == REQ_WAITING)
			req_dispatch(r);
	}
	free(ids);
}

static void expire(struct request *r)
{
	struct server *srv = r->srv;
	if (r->state == REQ_WAITING || r->state == REQ_BLOCKED) {
		if (r->from_node)
			req_bounce(r);
		else
			req_answer_error(r,
					 "TRYAGAIN no leader was reachable within %llu ms; the "
					 "request was not executed",
					 (unsigned long long)srv->cfg->request_timeout_ms);
	} else if (r->cls == REQ_WRITE) {
		req_answer_error(r,
				 "UNKNOWN no answer within %llu ms from %s; the write may or "
				 "may not have been applied",
				 (unsigned long long)srv->cfg->request_timeout_ms,
				 r->state == REQ_FORWARDED ? "the leader" : "the cluster");
	} else {
		req_answer_error(r, "TRYAGAIN the read could not be confirmed within %llu ms",
				 (unsigned long long)srv->cfg->request_timeout_ms);
	}
}

static void on_timer(uv_timer_t *t)
{
	struct server *srv = t->data;
	if (!srv->requests) {
		uv_timer_stop(t);
		return;
	}
	server_tick(srv);
	size_t n;
	uint64_t *ids = collect_ids(srv, is_expired, mono_ms(srv), &n);
	for (size_t i = 0; i < n; i++) {
		struct request *r = req_find(srv, ids[i]);
		if (r)
			expire(r);
	}
	free(ids);
	/* A node that learns of a leader only by a role change already
	 * retried; one whose leader is known but unreachable, whose
	 * request the leader sent back, or whose leader's node went down,
	 * retries here. */
	route_role_changed(srv);
}

/* ---- submitting ---- */

enum req_class route_class(const struct client *c, const struct command *cmd)
{
	if (strcmp(cmd->name, "cluster") == 0) {
		if (c->argc >= 2 &&
		    (arg_equals(c->argv[1], "add") || arg_equals(c->argv[1], "remove") ||
		     arg_equals(c->argv[1], "transfer")))
			return REQ_WRITE;
		return REQ_LOCAL;
	}
	if (strcmp(cmd->name, "keyspace") == 0) {
		if (c->argc >= 2 && arg_equals(c->argv[1], "create"))
			return REQ_WRITE;
		return c->argc >= 2 && (arg_equals(c->argv[1], "list") ||
					arg_equals(c->argv[1], "describe"))
			   ? REQ_READ
			   : REQ_LOCAL;
	}
	if (cmd->flags & CMD_WRITE)
		return REQ_WRITE;
	if (cmd->flags & CMD_READONLY)
		return REQ_READ;
	return REQ_LOCAL;
}

/* check_keys answers an error and returns -1 when a key of the command is
 * in a keyspace whose mode is not served, or the keys span modes; else
 * fills *first with the first key's keyspace. */
static int check_keys(struct client *c, const struct command *cmd, struct keyspace *first)
{
	keyspace_default(c->srv, first);
	if (cmd->first_key <= 0)
		return 0;
	size_t last =
	    cmd->last_key < 0 ? c->argc + (size_t)(cmd->last_key + 1) - 1 : (size_t)cmd->last_key;
	size_t step = cmd->key_step > 0 ? (size_t)cmd->key_step : 1;
	for (size_t i = (size_t)cmd->first_key; i <= last && i < c->argc; i += step) {
		struct keyspace ks;
		keyspace_of_key(c->srv, c->argv[i].p, c->argv[i].len, &ks);
		if (i == (size_t)cmd->first_key)
			*first = ks;
		if (ks.mode != first->mode) {
			reply_errorf(c,
				     "ERR the keys of one command must be in keyspaces of one mode "
				     "('%s' is %s, '%s' is %s)",
				     first->name, mode_name(first->mode), ks.name,
				     mode_name(ks.mode));
			return -1;
		}
	}
	return 0;
}

int route_check_keys(struct client *c, const struct command *cmd)
{
	struct keyspace ks;
	if (check_keys(c, cmd, &ks))
		return -1;
	if (ks.mode != SP_MODE_STRONG || (cmd->flags & CMD_EVENTUAL)) {
		reply_errorf(c, "ERR MULTI/EXEC is for strong keyspaces; '%s' is %s", ks.name,
			     mode_name(ks.mode));
		return -1;
	}
	return 0;
}

static struct request *req_from_client(struct client *c, enum req_class cls, uint8_t level)
{
	struct request *r = req_new(c->srv);
	r->c = c;
	r->cls = (uint8_t)cls;
	r->level = level;
	r->proto = (uint8_t)c->proto;
	r->slot = slot_push(c);
	r->slot->req = r;
	return r;
}

void route_submit(struct client *c, const struct command *cmd)
{
	struct server *srv = c->srv;
	enum req_class cls = route_class(c, cmd);
	struct keyspace ks;
	if (check_keys(c, cmd, &ks))
		return;
	if ((cmd->flags & CMD_STRONG) && ks.mode != SP_MODE_STRONG) {
		reply_errorf(c, "ERR MODEL.* commands need a strong keyspace; '%s' is %s", ks.name,
			     mode_name(ks.mode));
		return;
	}
	if ((cmd->flags & CMD_FEATURE) && !ks.features) {
		reply_errorf(c,
			     "ERR FEATURE.* commands are for feature views; '%s' is not one "
			     "(KEYSPACE CREATE <name> MODE causal FEATURES yes [TTL ms] "
			     "[HISTORY n])",
			     ks.name);
		return;
	}
	if (ks.mode == SP_MODE_EVENTUAL) {
		evcmd_submit(c, cmd, &ks);
		return;
	}
	if (cmd->flags & CMD_EVENTUAL) {
		cmd_crdt(c);
		return;
	}
	if (ks.mode == SP_MODE_CAUSAL) {
		causal_submit(c, cmd, &ks);
		return;
	}
	if (c->req_causal_level) {
		reply_errorf(c, "ERR level %s is for causal keyspaces; '%s' is strong",
			     causal_level_name(c->req_causal_level), ks.name);
		return;
	}
	if (c->req_ev_level) {
		reply_errorf(c,
			     "ERR level %s is for eventual keyspaces; '%s' is strong "
			     "(linearizable, lease, stale)",
			     ev_level_name(c->req_ev_level), ks.name);
		return;
	}
	uint8_t level = c->req_level ? c->req_level : c->level;
	if (!level)
		level = ks.read_level ? ks.read_level : LEVEL_LINEARIZABLE;
	int64_t bound = cls == REQ_READ ? maxstale_bound(c) : -1;
	if (bound >= 0) {
		/* Bounded staleness: here if this node trails the leader by no
		 * more than the bound (the leader itself under its lease), else
		 * on the leader, linearizable. Never weaker than asked. */
		uint64_t lag = observe_strong_lag_ms(srv);
		bool here = srv->role == RAFT_LEADER ? strong_read_lease(srv->strong) == 0
						     : lag <= (uint64_t)bound;
		level = !here			   ? LEVEL_LINEARIZABLE
			: srv->role == RAFT_LEADER ? LEVEL_LEASE
						   : LEVEL_STALE;
	}
	observe_op_level(c,
			 cls == REQ_WRITE	? OBS_LINEARIZABLE
			 : level == LEVEL_STALE ? OBS_STALE
			 : level == LEVEL_LEASE ? OBS_LEASE
						: OBS_LINEARIZABLE,
			 cls == REQ_WRITE);
	if (cls == REQ_READ) {
		/* Served at once when the level allows it and nothing of the
		 * client's is pending ahead of it. */
		if (!c->slot_head &&
		    (level == LEVEL_STALE || (level == LEVEL_LEASE && srv->role == RAFT_LEADER &&
					      strong_read_lease(srv->strong) == 0))) {
			size_t mark = route_capture_begin(c);
			cmd->fn(c);
			route_capture_end(c, mark);
			observe_receipt(&c->op, srv->node_id, 1, RCPT_INDEX,
					strong_applied_index(srv->strong), 0, 0);
			if (cmd->fn == cmd_get)
				stale_strong_read(srv, level == LEVEL_STALE ? OBS_STALE : OBS_LEASE,
						  c->argv[1].p, c->argv[1].len);
			return;
		}
	}
	struct request *r = req_from_client(c, cls, level);
	if (cls == REQ_WRITE)
		c->last_write = r->id;
	else if (c->last_write && req_find(srv, c->last_write))
		r->after = c->last_write;
	r->type = ENTRY_COMMAND;
	r->ncmds = 1;
	entry_put_cmd(&r->body, (const struct entry_arg *)c->argv, c->argc);
	req_dispatch(r);
}

void route_exec_multi(struct client *c)
{
	struct request *r = req_from_client(c, REQ_WRITE, LEVEL_LINEARIZABLE);
	c->last_write = r->id;
	r->type = ENTRY_MULTI;
	r->ncmds = c->multi_n;
	sp_buf_append(&r->body, sp_buf_begin(&c->multi), c->multi.len);
	sp_buf_clear(&c->multi);
	c->multi_n = 0;
	req_dispatch(r);
}

static void on_expire_done(void *arg, int err, uint64_t index)
{
	/* The apply cleared expire_inflight; a lost entry is retried by cron. */
	struct server *srv = arg;
	(void)index;
	if (err)
		srv->expire_inflight = false;
}

void route_propose_expire(struct server *srv)
{
	if (srv->expire_inflight || srv->role != RAFT_LEADER)
		return;
	struct sp_buf *b = &srv->scratch;
	sp_buf_clear(b);
	struct entry_hdr h = {.type = ENTRY_EXPIRE,
			      .proto = 2,
			      .origin = srv->node_id,
			      .req_id = 0,
			      .time_ms = server_now_ms(srv),
			      .ncmds = 0};
	entry_put_hdr(b, &h);
	if (strong_propose(srv->strong, sp_buf_begin(b), b->len, on_expire_done, srv) == 0)
		srv->expire_inflight = true;
}

/* ---- applying ---- */

void route_apply(struct server *srv, uint64_t index, const uint8_t *p, size_t len)
{
	struct entry_hdr h;
	const uint8_t *body;
	size_t body_len;
	if (entry_get_hdr(p, len, &h, &body, &body_len)) {
		/* Every node skips it alike, so the replicas stay equal. */
		sp_error("route: entry %llu is malformed; skipped", (unsigned long long)index);
		return;
	}
	uint64_t saved_now = srv->now_ms;
	srv->now_ms = h.time_ms;
	srv->applying = true;
	if (h.type == ENTRY_EXPIRE) {
		for (int i = 0; i < 64; i++) {
			int n = store_expire_cycle(srv->store, h.time_ms, 256);
			if (n > 0)
				srv->stats.expired += (uint64_t)n;
			if (n < 256)
				break;
		}
		if (h.origin == srv->node_id)
			srv->expire_inflight = false;
	} else {
		run_commands(srv, h.type, h.proto, body, body_len, h.ncmds);
	}
	srv->applying = false;
	srv->now_ms = saved_now;
	if (srv->stale_strong)
		stale_strong_applied(srv, index, h.time_ms);
	if (store_batches_lost(srv->store, NULL) != srv->lost_seen) {
		/* A write of a committed entry failed (the map is full): going
		 * on would leave this replica different from the others. */
		sp_error("route: applying entry %llu failed in the store (is the map full?); "
			 "stopping so that this replica never diverges",
			 (unsigned long long)index);
		abort();
	}
	if (h.origin != srv->node_id || h.type == ENTRY_EXPIRE)
		return;
	struct request *r = req_find(srv, h.req_id);
	if (!r || r->state != REQ_PROPOSED)
		return;
	sp_buf_clear(&r->reply);
	sp_buf_append(&r->reply, sp_buf_begin(&srv->vc->out), srv->vc->out.len);
	r->applied = true;
}

/* ---- forwarding ---- */

static void recv_request(struct server *srv, uint64_t from, const uint8_t *p, size_t len)
{
	if (len < 17)
		return;
	struct request *r = req_new(srv);
	r->from_node = from;
	r->from_req = sp_get_le64(p + 1);
	r->cls = p[9];
	r->level = p[10];
	r->type = p[11];
	r->proto = p[12];
	r->ncmds = sp_get_le32(p + 13);
	if ((r->cls != REQ_READ && r->cls != REQ_WRITE) ||
	    (r->type != ENTRY_COMMAND && r->type != ENTRY_MULTI) ||
	    (r->proto != 2 && r->proto != 3) || r->ncmds == 0 || r->ncmds > (len - 17) / 8) {
		sp_warn("route: malformed request forwarded by node %llu",
			(unsigned long long)from);
		req_bounce(r);
		return;
	}
	sp_buf_append(&r->body, p + 17, len - 17);
	req_dispatch(r);
}

static void recv_reply(struct server *srv, const uint8_t *p, size_t len)
{
	if (len < 10)
		return;
	struct request *r = req_find(srv, sp_get_le64(p + 1));
	if (!r || r->state != REQ_FORWARDED)
		return;
	if (p[9] == FWD_RETRY) {
		r->state = REQ_WAITING;
		return; /* the timer routes it again */
	}
	req_answer(r, p + 10, len - 10);
}

void route_recv_forward(struct server *srv, uint64_t from, const uint8_t *p, size_t len)
{
	if (len < 1)
		return;
	server_tick(srv);
	if (p[0] == FWD_REQUEST)
		recv_request(srv, from, p, len);
	else if (p[0] == FWD_REPLY)
		recv_reply(srv, p, len);
}

/* ---- life ---- */

void route_init(struct server *srv)
{
	srv->req_buckets = sp_calloc(BUCKETS, sizeof(*srv->req_buckets));
	uv_timer_init(srv->loop, &srv->req_timer);
	srv->req_timer.data = srv;
	sp_buf_init(&srv->scratch);
	struct client *vc = sp_calloc(1, sizeof(*vc));
	vc->srv = srv;
	vc->flags = CLIENT_VIRTUAL | CLIENT_AUTHED;
	vc->proto = 2;
	sp_buf_init(&vc->out);
	sp_buf_init(&vc->query);
	sp_buf_init(&vc->wbuf);
	srv->vc = vc;
}

void route_close(struct server *srv)
{
	while (srv->requests) {
		struct request *r = srv->requests;
		req_done(r);
	}
	free(srv->req_buckets);
	srv->req_buckets = NULL;
	sp_buf_free(&srv->scratch);
	if (srv->vc) {
		sp_buf_free(&srv->vc->out);
		sp_buf_free(&srv->vc->query);
		sp_buf_free(&srv->vc->wbuf);
		free(srv->vc->argv);
		free(srv->vc);
		srv->vc = NULL;
	}
}
