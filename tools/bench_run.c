/*
 * bench_run: the load loop of `spectra bench`. See bench_run.h.
 *
 * Each connection owns `pipeline` op slots. An op in flight has exactly one
 * request outstanding (its current step), and replies come back in request
 * order, so a ring of slot numbers (the fifo) says which op each reply
 * answers. Reading goes through one 64 KB buffer shared by all connections
 * (the loop runs one callback at a time); only the unparsed tail of a reply
 * is copied into the connection's own buffer. Writing first tries a direct
 * write and hands libuv only what the socket would not take; requests made
 * while that write is pending wait in a second buffer. Nothing is allocated
 * per op once the buffers (and an open loop's queues) have grown to their
 * working size.
 */
#include "bench_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

#define READ_CHUNK	  (64 * 1024)
#define BACKOFF_FIRST_MS  100
#define BACKOFF_MAX_MS	  2000
#define MESSAGES_MAX	  10 /* connection messages printed before counting only */
#define DROPPED_WORD	  "conn_dropped"
#define NS_PER_S	  1000000000ull
#define PROGRESS_EVERY_MS 1000
#define TIMEOUT_WORD	  "timeout"
#define FAILOVER_FIRST_MS 10 /* first retry, at the next host, after a drop */
/* An open loop wakes at most once per TICK_MIN_NS: ops due sooner wait
 * for the next wake-up (their latency still counts from their scheduled
 * start). Waking once per op cost the generator a core at 100,000 ops/s,
 * which it then took from the servers it measures. */
#define TICK_MIN_NS	    100000
#define CONNECT_WAIT_MAX_NS (30 * 1000000000ull) /* longest wait for every connection */
#define WARM_RECHECK_MS	    100

struct slot {
	struct bench_vars vars;
	uint64_t start_ns; /* first send (closed loop) or scheduled start (open) */
	uint64_t sent_ns;  /* when its current request was made */
	uint32_t op;
	uint32_t step;
	bool measured;
};

/* An op scheduled for a connection that has not sent it yet (open loop). */
struct pending {
	uint64_t at_ns;
	bool measured;
};

enum conn_state {
	CONN_IDLE,	 /* no socket: waiting to (re)connect */
	CONN_CONNECTING, /* socket open, connect in progress */
	CONN_UP,
	CONN_CLOSING, /* uv_close called, its callback not yet run */
};

struct run;

struct conn {
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	uv_write_t write_req;
	uv_timer_t retry;
	struct run *run;
	size_t host;
	enum conn_state state;
	bool writing; /* write_req is in flight with wbuf */
	bool ever_up; /* this connection has been up before */
	bool tried;   /* its first attempt has ended, either way */
	unsigned backoff_ms;
	struct sp_buf out;  /* requests not yet written */
	struct sp_buf wbuf; /* bytes of the pending uv_write */
	struct sp_buf in;   /* an incomplete reply */
	struct slot *slots; /* pipeline of them */
	uint32_t *free_slots;
	uint32_t nfree;
	uint32_t *fifo; /* slots awaiting a reply, oldest first */
	uint32_t fifo_head, fifo_n;
	struct pending *pend; /* ring of ops waiting for a free slot */
	size_t pend_cap, pend_head, pend_n;
};

struct run {
	const struct bench_config *cfg;
	struct bench_result *res;
	uv_loop_t loop;
	struct conn *conns;
	uv_timer_t end_timer, drain_timer, progress_timer, timeout_timer, fault_timer, warm_timer;
	uv_process_t fault_proc;
	uv_signal_t sigint, sigterm;
	uv_prepare_t prepare;
	uv_poll_t tick;
	int tick_fd;
	uint64_t armed_ns;
	bool open_loop;
	bool stopping;
	bool warmed;	/* the warm-up time is over */
	bool measuring; /* the window has begun (t_measure is set) */
	uint64_t t0, t_measure, t_end, t_stop, now;
	uint64_t rng;
	uint64_t total_weight;
	/* closed loop with a request count */
	uint64_t measured_started, measured_done;
	/* open loop */
	uint64_t scheduled, measured_scheduled, outstanding, next_at;
	size_t next_conn;
	bool sched_done;
	uint64_t last_done_ns; /* latest end of a recorded op */
	uint64_t last_ok_ns;   /* latest success in the window (its start at first) */
	uint64_t max_gap_ns, max_gap_from;
	size_t up, tried;
	uint64_t completed, errors; /* every op, for the progress line */
	uint64_t progress_completed, progress_errors, progress_ns;
	unsigned messages;
	char read_space[READ_CHUNK];
};

static void run_stop(struct run *r);
static void try_begin(struct run *r);
static void conn_connect(struct conn *c);
static void conn_flush(struct conn *c);
static void conn_fill(struct conn *c);

/* ---- messages ------------------------------------------------------------ */

static void conn_message(struct conn *c, const char *what, int status)
{
	struct run *r = c->run;
	char text[sizeof(r->res->first_error)];
	if (status)
		snprintf(text, sizeof(text), "%s: %s: %s", r->cfg->host_names[c->host], what,
			 uv_strerror(status));
	else
		snprintf(text, sizeof(text), "%s: %s", r->cfg->host_names[c->host], what);
	if (!r->res->first_error[0])
		snprintf(r->res->first_error, sizeof(r->res->first_error), "%s", text);
	/* A failed first attempt is not printed: if no connection gets
	 * through, the run ends with the first error instead; if others
	 * do, this one's later failures are printed. */
	if (r->stopping || !c->tried)
		return;
	if (r->messages < MESSAGES_MAX)
		fprintf(stderr, "spectra bench: %s; reconnecting\n", text);
	else if (r->messages == MESSAGES_MAX)
		fprintf(stderr, "spectra bench: more connection errors are only counted\n");
	r->messages++;
}

/* ---- recording ------------------------------------------------------------ */

static void add_error(struct bench_op_stats *st, const char *word, size_t len)
{
	if (len == 0) {
		word = "(empty)";
		len = strlen(word);
	}
	if (len >= BENCH_ERR_WORD_MAX)
		len = BENCH_ERR_WORD_MAX - 1;
	for (size_t i = 0; i < st->nerrors; i++) {
		if (strlen(st->errors[i].word) == len &&
		    memcmp(st->errors[i].word, word, len) == 0) {
			st->errors[i].n++;
			return;
		}
	}
	struct bench_err_count *e;
	if (st->nerrors < BENCH_ERR_WORDS - 1) {
		e = &st->errors[st->nerrors++];
		memcpy(e->word, word, len);
		e->word[len] = '\0';
	} else {
		/* The last entry collects every word that found no room. */
		e = &st->errors[BENCH_ERR_WORDS - 1];
		if (st->nerrors < BENCH_ERR_WORDS) {
			st->nerrors = BENCH_ERR_WORDS;
			snprintf(e->word, sizeof(e->word), "OTHER");
		}
	}
	e->n++;
}

/*
 * finish_op ends the op in slot si: records it if it counts, and frees the
 * slot. ok says it succeeded; otherwise word/len name the error.
 */
static void finish_op(struct conn *c, uint32_t si, bool ok, const char *word, size_t len)
{
	struct run *r = c->run;
	const struct bench_config *cfg = r->cfg;
	struct slot *s = &c->slots[si];
	uint64_t now = r->now;

	c->free_slots[c->nfree++] = si;
	r->completed++;
	r->errors += !ok;
	/* Availability counts every success inside the window, whenever its
	 * op started. */
	if (ok && now >= r->t_measure && now <= r->t_end) {
		r->res->window_ok++;
		if (now - r->last_ok_ns > r->max_gap_ns) {
			r->max_gap_ns = now - r->last_ok_ns;
			r->max_gap_from = r->last_ok_ns;
		}
		r->last_ok_ns = now;
	}
	if (!s->measured)
		return;
	/* A closed loop's window ends at t_end sharp; the timer that stops
	 * it may fire a little later. */
	bool counts = r->open_loop || cfg->requests || now <= r->t_end;
	if (counts) {
		struct bench_op_stats *st = &r->res->ops[s->op];
		if (ok) {
			bench_hist_record(&st->hist, (now - s->start_ns) / 1000);
			st->ok++;
		} else {
			add_error(st, word, len);
		}
		if (now > r->last_done_ns)
			r->last_done_ns = now;
	}
	if (r->open_loop) {
		r->outstanding--;
		if (r->sched_done && r->outstanding == 0)
			run_stop(r);
	} else if (cfg->requests && ++r->measured_done >= cfg->requests) {
		run_stop(r);
	}
}

/* ---- starting ops --------------------------------------------------------- */

static uint32_t pick_op(struct run *r)
{
	const struct bench_config *cfg = r->cfg;
	if (cfg->nops == 1)
		return 0;
	uint64_t x = bench_rng_below(&r->rng, r->total_weight);
	for (size_t i = 0; i < cfg->nops; i++) {
		if (x < cfg->ops[i].weight)
			return (uint32_t)i;
		x -= cfg->ops[i].weight;
	}
	return (uint32_t)(cfg->nops - 1);
}

static void fifo_push(struct conn *c, uint32_t si)
{
	size_t cap = c->run->cfg->pipeline;
	c->fifo[(c->fifo_head + c->fifo_n) % cap] = si;
	c->fifo_n++;
}

static uint32_t fifo_pop(struct conn *c)
{
	size_t cap = c->run->cfg->pipeline;
	uint32_t si = c->fifo[c->fifo_head];
	c->fifo_head = (uint32_t)((c->fifo_head + 1) % cap);
	c->fifo_n--;
	return si;
}

static void start_op(struct conn *c, uint64_t start_ns, bool measured)
{
	struct run *r = c->run;
	const struct bench_config *cfg = r->cfg;
	uint32_t si = c->free_slots[--c->nfree];
	struct slot *s = &c->slots[si];
	s->op = pick_op(r);
	s->step = 0;
	s->start_ns = start_ns;
	s->sent_ns = uv_hrtime();
	s->measured = measured;
	s->vars.key = bench_keys_next(cfg->keys, &r->rng);
	s->vars.rand = (uint32_t)bench_rng_next(&r->rng);
	cfg->driver->op_encode(cfg->ops[s->op].compiled, 0, &s->vars, &c->out);
	fifo_push(c, si);
}

/* closed_may_start says whether a closed loop may start an op at now, and
 * whether it is recorded. */
static bool closed_may_start(struct run *r, uint64_t now, bool *measured)
{
	if (r->stopping)
		return false;
	if (now < r->t_measure) {
		*measured = false;
		return true;
	}
	if (r->cfg->requests) {
		if (r->measured_started >= r->cfg->requests)
			return false;
		r->measured_started++;
	} else if (now >= r->t_end) {
		return false;
	}
	*measured = true;
	return true;
}

static void pend_push(struct conn *c, uint64_t at_ns, bool measured)
{
	if (c->pend_n == c->pend_cap) {
		size_t cap = c->pend_cap ? c->pend_cap * 2 : 16;
		struct pending *p = sp_malloc(cap * sizeof(*p));
		for (size_t i = 0; i < c->pend_n; i++)
			p[i] = c->pend[(c->pend_head + i) % c->pend_cap];
		free(c->pend);
		c->pend = p;
		c->pend_cap = cap;
		c->pend_head = 0;
	}
	c->pend[(c->pend_head + c->pend_n) % c->pend_cap] = (struct pending){at_ns, measured};
	c->pend_n++;
}

/* conn_fill starts as many ops as the connection may have in flight. */
static void conn_fill(struct conn *c)
{
	struct run *r = c->run;
	if (c->state != CONN_UP || r->stopping)
		return;
	if (r->open_loop) {
		while (c->nfree > 0 && c->pend_n > 0) {
			struct pending p = c->pend[c->pend_head];
			c->pend_head = (c->pend_head + 1) % c->pend_cap;
			c->pend_n--;
			start_op(c, p.at_ns, p.measured);
		}
		return;
	}
	while (c->nfree > 0) {
		uint64_t now = uv_hrtime();
		bool measured;
		if (!closed_may_start(r, now, &measured))
			break;
		start_op(c, now, measured);
	}
}

/* ---- writing -------------------------------------------------------------- */

static void conn_drop(struct conn *c, const char *what, int status);
static void conn_drop_as(struct conn *c, const char *what, int status, const char *word);

static void on_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	c->writing = false;
	sp_buf_clear(&c->wbuf);
	if (status == UV_ECANCELED || c->state != CONN_UP)
		return;
	if (status < 0) {
		conn_drop(c, "write", status);
		return;
	}
	conn_flush(c);
}

static void conn_flush(struct conn *c)
{
	if (c->writing || c->out.len == 0 || c->state != CONN_UP)
		return;
	uv_buf_t b = uv_buf_init(sp_buf_begin(&c->out), (unsigned)c->out.len);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (n == UV_EAGAIN)
		n = 0;
	if (n < 0) {
		conn_drop(c, "write", n);
		return;
	}
	sp_buf_consume(&c->out, (size_t)n);
	if (c->out.len == 0)
		return;
	/* The rest goes out when the socket drains; new requests meanwhile
	 * collect in out. */
	struct sp_buf t = c->wbuf;
	c->wbuf = c->out;
	c->out = t;
	b = uv_buf_init(sp_buf_begin(&c->wbuf), (unsigned)c->wbuf.len);
	int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
	if (rc < 0) {
		conn_drop(c, "write", rc);
		return;
	}
	c->writing = true;
}

/* ---- reading -------------------------------------------------------------- */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = handle->data;
	*buf = uv_buf_init(c->run->read_space, sizeof(c->run->read_space));
}

static void on_reply(struct conn *c, const struct bench_reply *reply)
{
	struct run *r = c->run;
	const struct bench_config *cfg = r->cfg;
	uint32_t si = fifo_pop(c);
	struct slot *s = &c->slots[si];
	if (reply->error) {
		finish_op(c, si, false, reply->word, reply->word_len);
		return;
	}
	const void *op = cfg->ops[s->op].compiled;
	if (s->step + 1 < cfg->driver->op_steps(op)) {
		s->step++;
		s->sent_ns = r->now;
		cfg->driver->op_encode(op, s->step, &s->vars, &c->out);
		fifo_push(c, si);
		return;
	}
	finish_op(c, si, true, NULL, 0);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;
	struct run *r = c->run;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (nread == UV_EOF)
			conn_drop(c, "connection closed by the server", 0);
		else
			conn_drop(c, "read", (int)nread);
		return;
	}
	if (c->state != CONN_UP || r->stopping)
		return;
	r->now = uv_hrtime();

	bool buffered = c->in.len > 0;
	const char *p = buf->base;
	size_t n = (size_t)nread, used = 0;
	if (buffered) {
		sp_buf_append(&c->in, buf->base, n);
		p = sp_buf_begin(&c->in);
		n = c->in.len;
	}
	while (used < n && !r->stopping) {
		size_t len;
		struct bench_reply reply;
		int rc = r->cfg->driver->reply_parse(p + used, n - used, &len, &reply);
		if (rc == SP_ERR_AGAIN)
			break;
		if (rc < 0) {
			conn_drop(c, "malformed reply", 0);
			return;
		}
		used += len;
		if (reply.skip)
			continue;
		if (c->fifo_n == 0) {
			conn_drop(c, "reply to no request", 0);
			return;
		}
		on_reply(c, &reply);
	}
	if (buffered)
		sp_buf_consume(&c->in, used);
	else if (used < n)
		sp_buf_append(&c->in, p + used, n - used);
	conn_fill(c);
	conn_flush(c);
}

/* ---- connecting ----------------------------------------------------------- */

static void mark_tried(struct conn *c)
{
	struct run *r = c->run;
	if (c->tried)
		return;
	c->tried = true;
	r->tried++;
	/* Every connection has had its first try and none got through:
	 * waiting longer would only retry a wrong address or a dead server. */
	if (r->tried == r->cfg->clients && !r->res->connected)
		run_stop(r);
}

static void on_retry(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (!c->run->stopping && c->state == CONN_IDLE)
		conn_connect(c);
}

static void on_tcp_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct run *r = c->run;
	c->state = CONN_IDLE;
	c->writing = false;
	sp_buf_clear(&c->wbuf);
	if (r->stopping)
		return;
	uv_timer_start(&c->retry, on_retry, c->backoff_ms, 0);
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/*
 * conn_drop closes a connection that failed (what and status say how),
 * fails its in-flight ops, and lets on_tcp_closed schedule the reconnect.
 * Ops queued for it (open loop) stay queued.
 */
static void conn_drop(struct conn *c, const char *what, int status)
{
	conn_drop_as(c, what, status, DROPPED_WORD);
}

/* conn_drop_as is conn_drop failing the in-flight ops with word. With
 * failover, the reconnect goes to the next host. */
static void conn_drop_as(struct conn *c, const char *what, int status, const char *word)
{
	struct run *r = c->run;
	if (c->state != CONN_UP && c->state != CONN_CONNECTING)
		return;
	bool was_up = c->state == CONN_UP;
	c->state = CONN_CLOSING; /* before failing ops, so none is refilled */
	if (was_up) {
		r->up--;
		r->res->drops++;
	} else {
		r->res->connect_failures++;
	}
	conn_message(c, what, status);
	if (r->cfg->failover) {
		c->host = (c->host + 1) % r->cfg->nhosts;
		if (was_up)
			c->backoff_ms = FAILOVER_FIRST_MS;
	}
	r->now = uv_hrtime();
	while (c->fifo_n > 0)
		finish_op(c, fifo_pop(c), false, word, strlen(word));
	sp_buf_clear(&c->out);
	sp_buf_clear(&c->in);
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
	mark_tried(c);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct run *r = c->run;
	if (status == UV_ECANCELED || c->state != CONN_CONNECTING)
		return;
	if (status < 0) {
		conn_drop(c, "connect", status);
		return;
	}
	int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (rc < 0) {
		conn_drop(c, "read", rc);
		return;
	}
	c->state = CONN_UP;
	r->up++;
	r->res->connects++;
	r->res->connected = true;
	if (c->ever_up)
		r->res->reconnects++;
	c->ever_up = true;
	c->backoff_ms = BACKOFF_FIRST_MS;
	mark_tried(c);
	if (r->warmed && !r->measuring && r->up == r->cfg->clients)
		try_begin(r);
	conn_fill(c);
	conn_flush(c);
}

static void conn_connect(struct conn *c)
{
	struct run *r = c->run;
	int rc = uv_tcp_init(&r->loop, &c->tcp);
	if (rc < 0) {
		/* No handle to close: count the failure and try again later. */
		r->res->connect_failures++;
		conn_message(c, "socket", rc);
		mark_tried(c);
		if (!r->stopping)
			uv_timer_start(&c->retry, on_retry, c->backoff_ms, 0);
		return;
	}
	c->tcp.data = c;
	c->state = CONN_CONNECTING;
	(void)uv_tcp_nodelay(&c->tcp, 1);
	const struct sockaddr *addr = (const struct sockaddr *)&r->cfg->addrs[c->host];
	rc = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connect);
	if (rc < 0)
		conn_drop(c, "connect", rc);
}

/* ---- open-loop schedule ----------------------------------------------------- */

static void arm_tick(struct run *r, uint64_t at_ns)
{
	/* A wake-up already due no later is kept: re-arming a timer costs a
	 * system call (a hypercall in a VM), and the loop would otherwise do
	 * it on every iteration. */
	if (r->armed_ns && r->armed_ns <= at_ns)
		return;
	struct itimerspec its = {0};
	its.it_value.tv_sec = (time_t)(at_ns / NS_PER_S);
	its.it_value.tv_nsec = (long)(at_ns % NS_PER_S);
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1; /* zero would disarm it */
	if (timerfd_settime(r->tick_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		r->armed_ns = at_ns;
}

static void on_drain_timeout(uv_timer_t *t)
{
	run_stop(t->data);
}

/*
 * schedule_due gives every op whose start time has come to its connection,
 * then arms the timer for the next one. The k-th op starts at
 * t0 + k / rate, computed from k so that rounding never accumulates.
 */
static void schedule_due(struct run *r)
{
	const struct bench_config *cfg = r->cfg;
	if (r->stopping || r->sched_done)
		return;
	uint64_t now = uv_hrtime();
	while (r->next_at <= now && !r->sched_done) {
		uint64_t at = r->next_at;
		bool measured = at >= r->t_measure;
		if (measured) {
			r->outstanding++;
			r->measured_scheduled++;
		}
		struct conn *c = &r->conns[r->next_conn];
		r->next_conn = (r->next_conn + 1) % cfg->clients;
		pend_push(c, at, measured);
		r->scheduled++;
		r->next_at =
		    r->t0 + (uint64_t)((double)r->scheduled * (double)NS_PER_S / cfg->rate);
		if (cfg->requests ? r->measured_scheduled == cfg->requests : r->next_at >= r->t_end)
			r->sched_done = true;
		if (c->state == CONN_UP && c->nfree > 0) {
			conn_fill(c);
			conn_flush(c);
		}
	}
	if (!r->sched_done) {
		arm_tick(r, r->next_at - now < TICK_MIN_NS ? now + TICK_MIN_NS : r->next_at);
		return;
	}
	if (r->outstanding == 0)
		run_stop(r);
	else if (!r->stopping)
		uv_timer_start(&r->drain_timer, on_drain_timeout, (uint64_t)(cfg->drain_s * 1000),
			       0);
}

static void on_tick(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	struct run *r = p->data;
	uint64_t expirations;
	if (read(r->tick_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		return;
	r->armed_ns = 0;
	schedule_due(r);
}

static void on_prepare(uv_prepare_t *p)
{
	schedule_due(p->data);
}

/* ---- availability: timeouts and the fault ------------------------------------ */

/*
 * fail_pending ends an open-loop op that never got sent (its connection
 * was down for the whole timeout) as a failure of a drawn op type, so an
 * outage counts against availability even when no request could be made.
 */
static void fail_pending(struct conn *c, const struct pending *p)
{
	struct run *r = c->run;
	r->completed++;
	r->errors++;
	if (!p->measured)
		return;
	add_error(&r->res->ops[pick_op(r)], TIMEOUT_WORD, strlen(TIMEOUT_WORD));
	r->outstanding--;
	if (r->sched_done && r->outstanding == 0)
		run_stop(r);
}

/* on_timeout_check drops every connection whose oldest request has waited
 * longer than the timeout, failing its ops as "timeout"; in an open loop,
 * ops queued that long for a connection that is not up fail too. */
static void on_timeout_check(uv_timer_t *t)
{
	struct run *r = t->data;
	uint64_t now = uv_hrtime();
	uint64_t limit = (uint64_t)r->cfg->timeout_ms * 1000000u;
	for (size_t i = 0; i < r->cfg->clients && !r->stopping; i++) {
		struct conn *c = &r->conns[i];
		if (c->state == CONN_UP && c->fifo_n > 0 &&
		    now - c->slots[c->fifo[c->fifo_head]].sent_ns > limit)
			conn_drop_as(c, "no reply in time", 0, TIMEOUT_WORD);
		while (c->state != CONN_UP && c->pend_n > 0 && !r->stopping &&
		       now > c->pend[c->pend_head].at_ns + limit) {
			struct pending p = c->pend[c->pend_head];
			c->pend_head = (c->pend_head + 1) % c->pend_cap;
			c->pend_n--;
			fail_pending(c, &p);
		}
	}
}

static void on_fault_exit(uv_process_t *p, int64_t status, int signum)
{
	struct run *r = p->data;
	r->res->fault_status = signum ? -1 : (int)status;
	uv_close((uv_handle_t *)p, NULL);
}

/* on_fault runs the fault command; the run goes on meanwhile, and ends
 * only once the command has. */
static void on_fault(uv_timer_t *t)
{
	struct run *r = t->data;
	if (r->stopping)
		return;
	char *args[] = {"sh", "-c", (char *)r->cfg->fault_cmd, NULL};
	uv_stdio_container_t stdio[3] = {
	    {.flags = UV_IGNORE},
	    {.flags = UV_INHERIT_FD, .data.fd = 1},
	    {.flags = UV_INHERIT_FD, .data.fd = 2},
	};
	uv_process_options_t opts = {
	    .exit_cb = on_fault_exit,
	    .file = "/bin/sh",
	    .args = args,
	    .stdio = stdio,
	    .stdio_count = 3,
	};
	uint64_t now = uv_hrtime();
	r->res->fault_ran = true;
	r->res->fault_ran_at_s = now > r->t_measure ? (double)(now - r->t_measure) / 1e9 : 0.0;
	r->fault_proc.data = r;
	int rc = uv_spawn(&r->loop, &r->fault_proc, &opts);
	if (rc < 0) {
		fprintf(stderr, "spectra bench: cannot run the fault command: %s\n",
			uv_strerror(rc));
		r->res->fault_status = -1;
		uv_close((uv_handle_t *)&r->fault_proc, NULL);
	}
}

/* ---- phases --------------------------------------------------------------- */

static void on_end(uv_timer_t *t);

/*
 * try_begin opens the measured window once the warm-up time is over and
 * every connection is up (a burst of connections can overflow a server's
 * accept queue, and the kernel retries a dropped SYN only after a second:
 * a window opened earlier would measure fewer clients than asked for), or
 * after CONNECT_WAIT_MAX_NS with whatever came up.
 */
static void try_begin(struct run *r)
{
	const struct bench_config *cfg = r->cfg;
	if (r->measuring || r->stopping)
		return;
	uint64_t now = uv_hrtime();
	if (r->up < cfg->clients && now - r->t0 < CONNECT_WAIT_MAX_NS)
		return;
	if (r->up < cfg->clients)
		fprintf(stderr,
			"spectra bench: only %zu of %zu connections up after %.0f s; measuring "
			"anyway\n",
			r->up, cfg->clients, (double)CONNECT_WAIT_MAX_NS / 1e9);
	r->measuring = true;
	uv_timer_stop(&r->warm_timer);
	r->t_measure = now;
	r->t_end = cfg->requests ? UINT64_MAX : now + (uint64_t)(cfg->duration_s * 1e9);
	r->last_ok_ns = now;
	r->res->warmup_s = (double)(now - r->t0) / 1e9;
	if (!r->open_loop && !cfg->requests)
		uv_timer_start(&r->end_timer, on_end, (r->t_end - now + 999999) / 1000000, 0);
	if (cfg->fault_cmd)
		uv_timer_start(&r->fault_timer, on_fault, (uint64_t)(cfg->fault_at_s * 1000), 0);
}

static void on_warm(uv_timer_t *t)
{
	struct run *r = t->data;
	r->warmed = true;
	try_begin(r);
	if (!r->measuring && !r->stopping)
		uv_timer_start(&r->warm_timer, on_warm, WARM_RECHECK_MS, 0);
}

static void on_end(uv_timer_t *t)
{
	struct run *r = t->data;
	uint64_t now = uv_hrtime();
	if (now < r->t_end) {
		/* libuv's clock is in whole milliseconds: the timer can fire
		 * a fraction of one early. */
		uv_timer_start(t, on_end, 1, 0);
		return;
	}
	run_stop(r);
}

static void on_progress(uv_timer_t *t)
{
	struct run *r = t->data;
	uint64_t now = uv_hrtime();
	double dt = (double)(now - r->progress_ns) / 1e9;
	if (dt <= 0)
		return;
	double elapsed = (double)(now - r->t0) / 1e9;
	printf("  %6.1fs  %10.0f ops/s  %8.0f err/s  %zu/%zu connected%s\n", elapsed,
	       (double)(r->completed - r->progress_completed) / dt,
	       (double)(r->errors - r->progress_errors) / dt, r->up, r->cfg->clients,
	       now < r->t_measure ? "  (warm-up)" : "");
	fflush(stdout);
	r->progress_completed = r->completed;
	r->progress_errors = r->errors;
	r->progress_ns = now;
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)signum;
	struct run *r = s->data;
	r->res->interrupted = true;
	run_stop(r);
}

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	c->state = CONN_IDLE;
}

static void run_stop(struct run *r)
{
	if (r->stopping)
		return;
	r->stopping = true;
	r->t_stop = uv_hrtime();
	if (r->open_loop)
		r->res->unfinished = r->outstanding;
	for (size_t i = 0; i < r->cfg->clients; i++) {
		struct conn *c = &r->conns[i];
		if (c->state == CONN_UP || c->state == CONN_CONNECTING) {
			c->state = CONN_CLOSING;
			uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
		}
		close_handle((uv_handle_t *)&c->retry);
	}
	close_handle((uv_handle_t *)&r->end_timer);
	close_handle((uv_handle_t *)&r->drain_timer);
	close_handle((uv_handle_t *)&r->progress_timer);
	close_handle((uv_handle_t *)&r->timeout_timer);
	close_handle((uv_handle_t *)&r->fault_timer);
	close_handle((uv_handle_t *)&r->warm_timer);
	close_handle((uv_handle_t *)&r->sigint);
	close_handle((uv_handle_t *)&r->sigterm);
	if (r->open_loop) {
		close_handle((uv_handle_t *)&r->prepare);
		close_handle((uv_handle_t *)&r->tick);
	}
}

/* ---- the run -------------------------------------------------------------- */

/* window_seconds: how long the recorded ops had to happen in. */
static double window_seconds(const struct run *r)
{
	const struct bench_config *cfg = r->cfg;
	uint64_t end;
	if (cfg->requests)
		end = r->last_done_ns;
	else if (r->open_loop)
		end = r->t_end < r->last_done_ns ? r->last_done_ns : r->t_end;
	else
		end = r->t_end;
	if (r->res->interrupted && r->t_stop < end)
		end = r->t_stop;
	return end > r->t_measure ? (double)(end - r->t_measure) / 1e9 : 0.0;
}

static void conn_init(struct run *r, struct conn *c, size_t i)
{
	size_t p = r->cfg->pipeline;
	c->run = r;
	c->host = i % r->cfg->nhosts;
	c->state = CONN_IDLE;
	c->backoff_ms = BACKOFF_FIRST_MS;
	sp_buf_init(&c->out);
	sp_buf_init(&c->wbuf);
	sp_buf_init(&c->in);
	c->slots = sp_calloc(p, sizeof(*c->slots));
	c->free_slots = sp_malloc(p * sizeof(*c->free_slots));
	c->fifo = sp_malloc(p * sizeof(*c->fifo));
	for (size_t s = 0; s < p; s++)
		c->free_slots[s] = (uint32_t)(p - 1 - s);
	c->nfree = (uint32_t)p;
	c->connect_req.data = c;
	c->write_req.data = c;
	c->tcp.data = c;
	uv_timer_init(&r->loop, &c->retry);
	c->retry.data = c;
}

static void conn_free(struct conn *c)
{
	sp_buf_free(&c->out);
	sp_buf_free(&c->wbuf);
	sp_buf_free(&c->in);
	free(c->slots);
	free(c->free_slots);
	free(c->fifo);
	free(c->pend);
}

int bench_run(const struct bench_config *cfg, struct bench_result *res)
{
	*res = (struct bench_result){0};
	res->nops = cfg->nops;
	res->ops = sp_calloc(cfg->nops, sizeof(*res->ops));
	for (size_t i = 0; i < cfg->nops; i++)
		bench_hist_init(&res->ops[i].hist);

	struct run *r = sp_calloc(1, sizeof(*r));
	r->cfg = cfg;
	r->res = res;
	r->open_loop = cfg->rate > 0;
	r->rng = cfg->seed;
	r->tick_fd = -1;
	for (size_t i = 0; i < cfg->nops; i++)
		r->total_weight += cfg->ops[i].weight;

	int rc = uv_loop_init(&r->loop);
	if (rc < 0)
		goto free_run;
	if (r->open_loop) {
		/* Open-loop start times are kept to the microsecond: ask the
		 * kernel not to batch this thread's timer wake-ups. */
		(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
		r->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (r->tick_fd < 0) {
			rc = -errno;
			goto close_loop;
		}
		rc = uv_poll_init(&r->loop, &r->tick, r->tick_fd);
		if (rc < 0)
			goto close_loop;
		r->tick.data = r;
		uv_prepare_init(&r->loop, &r->prepare);
		r->prepare.data = r;
	}
	uv_timer_init(&r->loop, &r->end_timer);
	uv_timer_init(&r->loop, &r->drain_timer);
	uv_timer_init(&r->loop, &r->progress_timer);
	uv_timer_init(&r->loop, &r->timeout_timer);
	uv_timer_init(&r->loop, &r->fault_timer);
	uv_timer_init(&r->loop, &r->warm_timer);
	uv_signal_init(&r->loop, &r->sigint);
	uv_signal_init(&r->loop, &r->sigterm);
	r->end_timer.data = r->drain_timer.data = r->progress_timer.data = r;
	r->timeout_timer.data = r->fault_timer.data = r->warm_timer.data = r;
	r->sigint.data = r->sigterm.data = r;

	r->conns = sp_calloc(cfg->clients, sizeof(*r->conns));
	for (size_t i = 0; i < cfg->clients; i++)
		conn_init(r, &r->conns[i], i);

	/* uv_hrtime is CLOCK_MONOTONIC in nanoseconds, the timerfd's clock. */
	r->t0 = uv_hrtime();
	/* The window opens in try_begin. */
	r->t_measure = UINT64_MAX;
	r->t_end = UINT64_MAX;
	r->progress_ns = r->t0;
	r->next_at = r->t0;

	uv_signal_start(&r->sigint, on_signal, SIGINT);
	uv_signal_start(&r->sigterm, on_signal, SIGTERM);
	if (cfg->progress)
		uv_timer_start(&r->progress_timer, on_progress, PROGRESS_EVERY_MS,
			       PROGRESS_EVERY_MS);
	uv_timer_start(&r->warm_timer, on_warm, (uint64_t)(cfg->warmup_s * 1000), 0);
	if (cfg->timeout_ms > 0) {
		uint64_t every = cfg->timeout_ms / 4 < 10 ? 10 : cfg->timeout_ms / 4;
		uv_timer_start(&r->timeout_timer, on_timeout_check, every, every);
	}
	if (r->open_loop) {
		uv_poll_start(&r->tick, UV_READABLE, on_tick);
		uv_prepare_start(&r->prepare, on_prepare);
	}
	for (size_t i = 0; i < cfg->clients && !r->stopping; i++)
		conn_connect(&r->conns[i]);
	if (r->open_loop)
		schedule_due(r);

	uv_run(&r->loop, UV_RUN_DEFAULT);
	/* The signal handles keep the loop running until run_stop closes
	 * everything; this only makes sure of it. */
	run_stop(r);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	res->seconds = window_seconds(r);
	/* The stretch from the last success to the window's end is a gap too. */
	if (r->measuring) {
		/* Successes are tracked up to t_end: an open loop's drain
		 * after it is not part of the window. */
		uint64_t window_end = r->t_measure + (uint64_t)(res->seconds * 1e9);
		if (window_end > r->t_end)
			window_end = r->t_end;
		if (window_end > r->last_ok_ns && window_end - r->last_ok_ns > r->max_gap_ns) {
			r->max_gap_ns = window_end - r->last_ok_ns;
			r->max_gap_from = r->last_ok_ns;
		}
		res->max_gap_s = (double)r->max_gap_ns / 1e9;
		res->max_gap_at_s = (double)(r->max_gap_from - r->t_measure) / 1e9;
	}
	rc = 0;
	for (size_t i = 0; i < cfg->clients; i++)
		conn_free(&r->conns[i]);
	free(r->conns);
close_loop:
	(void)uv_loop_close(&r->loop);
	if (r->tick_fd >= 0)
		close(r->tick_fd);
free_run:
	free(r);
	return rc;
}

void bench_result_close(struct bench_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->nops && res->ops; i++)
		bench_hist_close(&res->ops[i].hist);
	free(res->ops);
	res->ops = NULL;
	res->nops = 0;
}
