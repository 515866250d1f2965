/*
 * client: simulated clients and the history they record.
 *
 * Each client has one operation outstanding at a time, sent to the node
 * it believes leads (or, sometimes, any node): put, compare-and-set and
 * delete go through raft_propose; reads through raft_read_index or
 * raft_read_lease (§6.4, §6.4.1). Stale reads are never made, so every
 * answer a client gets belongs in a linearizable history. Call and return
 * are stamped in global simulated time; at the end of the run the whole
 * history goes to lin_check.
 *
 * Outcomes: OK when the node applied our entry (same index, same term);
 * FAIL when it never entered the log or a different entry took its index
 * (and for a CAS whose compare failed); UNKNOWN when the node crashed or
 * the client gave up waiting first.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/linearizable.h"
#include "common/alloc.h"
#include "common/err.h"

static const char *const key_names[SIM_MAX_KEYS] = {"k0", "k1", "k2", "k3", "k4",  "k5",
						    "k6", "k7", "k8", "k9", "k10", "k11"};

static uint64_t client_delay(struct sim_world *w)
{
	uint64_t base = w->p.client_net_us;
	return base / 2 + sim_rng_below(&w->rng_client, base + 1);
}

void sim_clients_start(struct sim_world *w)
{
	for (uint32_t i = 0; i < w->p.n_clients; i++) {
		struct sim_client *c = &w->clients[i];
		memset(c, 0, sizeof(*c));
		c->id = i;
		sim_schedule(w, w->now + sim_rng_range(&w->rng_client, 1, 20 * SIM_MS),
			     EV_CLIENT_ISSUE, 0, i, 0);
	}
}

static void fresh_value(struct sim_world *w, struct sim_client *c, struct sim_val *v)
{
	memset(v, 0, sizeof(*v));
	int n =
	    snprintf(v->p, sizeof(v->p), "c%u.%llu", c->id, (unsigned long long)++w->next_op_id);
	v->len = (uint8_t)n;
}

/* The value a CAS expects: what the last operation on the key saw or
 * wrote, so that many succeed; sometimes nil or something stale. */
static void expected_value(struct sim_world *w, uint8_t key, struct sim_val *v)
{
	*v = w->key_last[key];
	if (sim_rng_chance(&w->rng_client, 0.1)) {
		memset(v, 0, sizeof(*v));
		v->nil = true;
	}
}

static uint64_t pick_node(struct sim_world *w, struct sim_client *c)
{
	if (c->leader_guess && sim_rng_chance(&w->rng_client, w->p.p_to_leader)) {
		struct sim_node *n = &w->nodes[c->leader_guess];
		if (n->exists && !n->removed)
			return c->leader_guess;
	}
	uint64_t ids[SIM_MAX_NODES];
	size_t k = 0;
	for (uint32_t i = 1; i <= w->n_ids; i++)
		if (w->nodes[i].exists && !w->nodes[i].removed)
			ids[k++] = i;
	return k ? ids[sim_rng_below(&w->rng_client, k)] : 1;
}

void sim_client_issue(struct sim_world *w, struct sim_client *c)
{
	if (w->phase >= PHASE_DRAIN || c->busy)
		return;
	if (w->n_hist == w->cap_hist) {
		w->cap_hist = w->cap_hist ? w->cap_hist * 2 : 1024;
		w->hist = sp_realloc(w->hist, w->cap_hist * sizeof(*w->hist));
	}
	struct sim_hist_op *op = &w->hist[w->n_hist];
	memset(op, 0, sizeof(*op));
	struct sim_rng *rng = &w->rng_client;
	/* A few hot keys take half the traffic: contention is where
	 * linearizability bugs show. */
	op->key = (uint8_t)(sim_rng_chance(rng, 0.5) ? sim_rng_below(rng, w->p.n_keys < 2 ? 1 : 2)
						     : sim_rng_below(rng, w->p.n_keys));
	if (sim_rng_chance(rng, w->p.p_read)) {
		op->kind = OPK_READ;
		op->level = sim_rng_chance(rng, w->p.p_lease) ? READ_LEASE : READ_INDEX;
	} else {
		uint64_t r = sim_rng_below(rng, 10);
		op->kind = r < 5 ? OPK_PUT : r < 8 ? OPK_CAS : OPK_DEL;
		op->op_id = ++w->next_op_id;
		op->arg.nil = true;
		op->expect.nil = true;
		if (op->kind != OPK_DEL)
			fresh_value(w, c, &op->arg);
		if (op->kind == OPK_CAS)
			expected_value(w, op->key, &op->expect);
	}
	op->result.nil = true;
	op->client = c->id;
	op->node = (uint32_t)pick_node(w, c);
	op->call = w->now;
	op->outcome = OP_PENDING;
	c->hist = w->n_hist++;
	c->token++;
	c->busy = true;
	c->replied = false;
	sim_schedule(w, w->now + client_delay(w), EV_CLIENT_ARRIVE, op->node, c->id, c->token);
	sim_schedule(w, w->now + w->p.op_timeout_us, EV_CLIENT_TIMEOUT, 0, c->id, c->token);
}

struct sim_hist_op *sim_client_op(struct sim_world *w, uint32_t client, uint64_t token)
{
	struct sim_client *c = &w->clients[client];
	if (c->token != token || c->replied || !c->busy)
		return NULL;
	return &w->hist[c->hist];
}

void sim_client_arrive(struct sim_world *w, uint32_t node, uint32_t client, uint64_t token)
{
	if (!sim_client_op(w, client, token))
		return;
	struct sim_node *n = &w->nodes[node];
	if (!n->up || n->removed) {
		/* Connection refused: nothing was done. */
		sim_client_answer(w, NULL, client, token, OP_FAIL, NULL);
		return;
	}
	sim_node_client_request(w, n, client, token);
}

void sim_client_answer(struct sim_world *w, struct sim_node *n, uint32_t client, uint64_t token,
		       enum sim_op_outcome outcome, const struct sim_val *result)
{
	struct sim_hist_op *op = sim_client_op(w, client, token);
	if (!op)
		return;
	struct sim_client *c = &w->clients[client];
	op->outcome = (uint8_t)outcome;
	if (result)
		op->result = *result;
	c->replied = true;
	c->reply_leader = n && n->up ? raft_leader(n->core) : 0;
	SIM_TRACE(w, "client %u op %zu (%s k%u) answered %s by node %llu", client, c->hist,
		  op->kind == OPK_READ	? "read"
		  : op->kind == OPK_PUT ? "put"
		  : op->kind == OPK_CAS ? "cas"
					: "del",
		  op->key,
		  outcome == OP_OK     ? "ok"
		  : outcome == OP_FAIL ? "fail"
				       : "unknown",
		  (unsigned long long)(n ? n->id : 0));
	sim_schedule(w, w->now + client_delay(w), EV_CLIENT_REPLY, 0, client, token);
}

static void next_op(struct sim_world *w, struct sim_client *c)
{
	c->busy = false;
	c->token++;
	sim_schedule(w,
		     w->now + sim_rng_range(&w->rng_client, w->p.think_min_us, w->p.think_max_us),
		     EV_CLIENT_ISSUE, 0, c->id, 0);
}

void sim_client_reply_event(struct sim_world *w, uint32_t client, uint64_t token)
{
	struct sim_client *c = &w->clients[client];
	if (c->token != token || !c->replied)
		return;
	struct sim_hist_op *op = &w->hist[c->hist];
	op->ret = w->now;
	if (op->outcome == OP_OK && op->kind != OPK_READ && w->phase == PHASE_QUIET &&
	    op->call >= w->settle_at)
		w->quiet_writes_ok++;
	if (op->outcome == OP_OK) {
		if (op->kind == OPK_READ)
			w->key_last[op->key] = op->result;
		else if (op->kind == OPK_DEL)
			w->key_last[op->key] = (struct sim_val){.nil = true};
		else
			w->key_last[op->key] = op->arg;
	}
	if (c->reply_leader)
		c->leader_guess = c->reply_leader;
	else if (op->outcome != OP_OK)
		c->leader_guess = 0;
	next_op(w, c);
}

void sim_client_timeout(struct sim_world *w, uint32_t client, uint64_t token)
{
	struct sim_client *c = &w->clients[client];
	if (c->token != token || c->replied || !c->busy)
		return;
	struct sim_hist_op *op = &w->hist[c->hist];
	op->outcome = op->kind == OPK_READ ? OP_FAIL : OP_UNKNOWN;
	SIM_TRACE(w, "client %u op %zu timed out at node %u", client, c->hist, op->node);
	if (w->phase >= PHASE_QUIET && op->call >= w->settle_at)
		sim_fail(w, "liveness",
			 "client %u's %s sent to node %u at %.6f s in the quiet period got no "
			 "answer within %.3f s",
			 client, op->kind == OPK_READ ? "read" : "write", op->node,
			 (double)op->call / 1e6, (double)w->p.op_timeout_us / 1e6);
	c->leader_guess = 0;
	next_op(w, c);
}

static void to_lin_value(const struct sim_val *v, struct lin_value *out)
{
	out->nil = v->nil;
	out->p = v->nil ? NULL : (const uint8_t *)v->p;
	out->len = v->nil ? 0 : v->len;
}

static const char *kind_name(int kind)
{
	switch (kind) {
	case OPK_READ:
		return "read";
	case OPK_PUT:
		return "put";
	case OPK_CAS:
		return "cas";
	case OPK_DEL:
		return "del";
	}
	return "?";
}

static void fmt_val(const struct sim_val *v, char *buf, size_t len)
{
	if (v->nil)
		snprintf(buf, len, "nil");
	else
		snprintf(buf, len, "\"%.*s\"", (int)v->len, v->p);
}

/* For the self-test: break the history in a way lin_check must see. */
static void corrupt(struct sim_world *w, struct lin_op *ops, size_t n)
{
	static const uint8_t bogus[] = "never-written";
	for (size_t i = n / 2; i < n; i++) {
		struct lin_op *o = &ops[i];
		if (o->kind != LIN_READ || o->outcome != LIN_OK)
			continue;
		if (w->opts->corrupt_history == 1) {
			o->result.nil = false;
			o->result.p = bogus;
			o->result.len = sizeof(bogus) - 1;
			return;
		}
		if (o->result.nil)
			continue;
		/* Drop the write whose value this read saw (as if the node had
		 * never applied it). */
		for (size_t j = 0; j < n; j++) {
			struct lin_op *x = &ops[j];
			if ((x->kind == LIN_WRITE || x->kind == LIN_CAS) && x->klen == o->klen &&
			    !memcmp(x->key, o->key, o->klen) && !x->arg.nil &&
			    x->arg.len == o->result.len &&
			    !memcmp(x->arg.p, o->result.p, o->result.len)) {
				x->outcome = LIN_FAIL;
				return;
			}
		}
	}
}

void sim_history_check(struct sim_world *w)
{
	struct lin_op *ops = sp_calloc(w->n_hist ? w->n_hist : 1, sizeof(*ops));
	size_t *from = sp_calloc(w->n_hist ? w->n_hist : 1, sizeof(*from));
	size_t n = 0;
	for (size_t i = 0; i < w->n_hist; i++) {
		const struct sim_hist_op *h = &w->hist[i];
		uint8_t outcome = h->outcome;
		if (outcome == OP_PENDING)
			outcome = h->kind == OPK_READ ? OP_FAIL : OP_UNKNOWN;
		/* Operations that surely did nothing constrain nothing. */
		if (outcome == OP_FAIL)
			continue;
		struct lin_op *o = &ops[n];
		o->client = h->client;
		o->key = (const uint8_t *)key_names[h->key];
		o->klen = strlen(key_names[h->key]);
		o->kind = h->kind == OPK_READ  ? LIN_READ
			  : h->kind == OPK_PUT ? LIN_WRITE
			  : h->kind == OPK_CAS ? LIN_CAS
					       : LIN_DELETE;
		to_lin_value(&h->arg, &o->arg);
		to_lin_value(&h->expect, &o->expect);
		to_lin_value(&h->result, &o->result);
		o->call = h->call;
		o->ret = outcome == OP_UNKNOWN ? UINT64_MAX : h->ret;
		o->outcome = outcome == OP_OK ? LIN_OK : LIN_UNKNOWN;
		from[n] = i;
		n++;
		if (outcome == OP_OK)
			w->st.ops_ok++;
		else
			w->st.ops_unknown++;
	}
	w->st.ops_checked += n;
	w->st.ops_fail += w->n_hist - n;
	if (w->opts->corrupt_history)
		corrupt(w, ops, n);
	struct lin_result res;
	int rc = lin_check(ops, n, w->opts->lin_steps, &res);
	if (rc) {
		sim_fail(w, "history", "lin_check refused the history: %s (op %zu)",
			 sp_strerror(rc), res.bad_op);
	} else if (res.verdict == LIN_VIOLATION) {
		const struct sim_hist_op *h = res.bad_op < n ? &w->hist[from[res.bad_op]] : NULL;
		char a[48] = "", e[48] = "", r[48] = "";
		if (h) {
			fmt_val(&h->arg, a, sizeof(a));
			fmt_val(&h->expect, e, sizeof(e));
			fmt_val(&h->result, r, sizeof(r));
		}
		sim_fail(
		    w, "linearizability",
		    "key %.*s is not linearizable; stuck at op %zu: client %u %s%s at node %u, "
		    "arg %s expect %s result %s, %s, call %.6f s ret %.6f s",
		    (int)res.klen, (const char *)res.key, h ? from[res.bad_op] : 0,
		    h ? h->client : 0, h ? kind_name(h->kind) : "?",
		    h && h->kind == OPK_READ ? (h->level == READ_LEASE ? " (lease)" : " (index)")
					     : "",
		    h ? h->node : 0, a, e, r, h && h->outcome == OP_OK ? "ok" : "unknown",
		    h ? (double)h->call / 1e6 : 0, h ? (double)h->ret / 1e6 : 0);
		if (w->opts->trace && h) {
			/* The key's history, for the replay. */
			for (size_t i = 0; i < w->n_hist; i++) {
				const struct sim_hist_op *x = &w->hist[i];
				if (x->key != h->key || x->outcome == OP_FAIL ||
				    x->outcome == OP_PENDING)
					continue;
				fmt_val(&x->arg, a, sizeof(a));
				fmt_val(&x->expect, e, sizeof(e));
				fmt_val(&x->result, r, sizeof(r));
				sim_trace(w,
					  "history op %zu: client %u %s node %u arg %s expect %s "
					  "result %s %s call %.6f ret %.6f",
					  i, x->client, kind_name(x->kind), x->node, a, e, r,
					  x->outcome == OP_OK ? "ok" : "unknown",
					  (double)x->call / 1e6,
					  x->outcome == OP_OK ? (double)x->ret / 1e6 : -1.0);
			}
		}
	} else if (res.verdict == LIN_GAVE_UP) {
		w->st.lin_gave_up++;
	}
	free(ops);
	free(from);
}
