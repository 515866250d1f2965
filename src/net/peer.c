/*
 * peer: the node-to-node transport (see peer.h for the contract).
 *
 * Objects and who frees them:
 *  - struct peer_net owns three handles (listener, flush prepare, hold
 *    timer), the peers, the connections and the held frames. It is freed by
 *    the last handle close callback after peer_net_close.
 *  - struct peer (one per configured node) owns its send queue and its
 *    backoff timer; it is freed by the timer's close callback.
 *  - struct conn (one per TCP connection, either direction) owns its
 *    handle, the bytes in flight and, for accepted connections, the frame
 *    decoder; it is freed by its handle's close callback. A conn outlives
 *    its peer when the peer is removed: conn->peer is then NULL.
 */
#include "net/peer.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

/* Reads on accepted connections ask for at least this much room. */
#define READ_CHUNK ((size_t)64 * 1024)
/* A connection's write buffer above this is released after its write. */
#define WBUF_KEEP_CAP  ((size_t)1 << 20)
#define LISTEN_BACKLOG 128

enum conn_state { CONN_CONNECTING, CONN_OPEN, CONN_CLOSING };

struct conn {
	uv_tcp_t tcp;
	struct peer_net *net;
	struct conn *prev, *next; /* every conn not yet freed, in net->conns */
	enum conn_state state;
	int outgoing;
	char addr[80]; /* remote address, for logs */
	/* Outgoing connections (dialed by us; only written to). */
	struct peer *peer; /* NULL once the peer is removed */
	uv_connect_t connect_req;
	uv_write_t write_req;
	int writing;
	int established;
	uint64_t opened_ms;   /* loop time when the connect completed */
	struct sp_buf wbuf;   /* bytes handed to uv_write (or the hello) */
	uint64_t wbuf_frames; /* data frames in wbuf */
	char scratch[64];     /* read buffer: nothing is expected */
	/* Accepted connections (only read from). */
	struct frame_decoder dec;
	uint64_t remote_id; /* 0 until the hello is accepted */
};

struct peer {
	struct peer_net *net;
	struct peer *next;
	uint64_t id;
	struct sockaddr_storage addr;
	char name[80];	   /* "host:port", for logs */
	struct conn *conn; /* the outgoing connection, or NULL */
	uv_timer_t backoff_timer;
	int backing_off;
	int removed;
	int ever_connected;
	int link_failed;       /* the last outgoing connection failed or broke */
	uint32_t backoff_ms;   /* ceiling of the next backoff wait */
	struct sp_buf queue;   /* encoded frames not yet handed to a write */
	uint64_t queue_frames; /* frames in queue */
	int has_faults;
	struct peer_faults faults;
};

/* A frame held back by the delay or reorder hook. */
struct held {
	uint64_t due_ns;
	uint64_t seq; /* ties on due_ns leave in sending order */
	uint64_t to;
	uint8_t channel;
	size_t len;
	uint8_t payload[];
};

struct peer_net {
	uv_loop_t *loop;
	uint64_t self_id;
	char *cluster;
	peer_frame_cb on_frame;
	void *ctx;
	uint32_t reconnect_min_ms, reconnect_max_ms;
	size_t max_queue_bytes;
	size_t max_payload;
	const struct sp_clock *clock;
	uint64_t rng;
	int port;

	uv_tcp_t listener;
	uv_prepare_t flush_prepare; /* started while some queue awaits a flush */
	uv_timer_t hold_timer;	    /* fires when the earliest held frame is due */
	unsigned open_handles;	    /* handles not yet through their close callback */
	int closing;

	struct peer *peers;
	struct conn *conns;
	struct held **held; /* binary min-heap on (due_ns, seq) */
	size_t nheld, held_cap;
	uint64_t held_seq;

	int has_faults;
	struct peer_faults faults; /* default for peers without their own */
	uint64_t *partition;
	size_t npartition;

	struct peer_net_stats stats;
};

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */

/* splitmix64 (Steele, Lea, Flood 2014): small, seedable, good enough for
 * deciding faults. */
static uint64_t rng_next(struct peer_net *net)
{
	uint64_t z = (net->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* rng_below returns a uniform-enough value in [0, n) (n > 0). */
static uint64_t rng_below(struct peer_net *net, uint64_t n)
{
	return rng_next(net) % n;
}

static int chance(struct peer_net *net, uint32_t ppm)
{
	return ppm > 0 && rng_below(net, 1000000) < ppm;
}

static int parse_addr(const char *host, int port, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0)
		return 0;
	if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0)
		return 0;
	return SP_ERR_INVAL;
}

static void format_addr(const struct sockaddr_storage *sa, char *out, size_t n)
{
	char ip[64] = "?";
	int port = 0;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uv_ip4_name(in, ip, sizeof(ip));
		port = ntohs(in->sin_port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		uv_ip6_name(in6, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
	}
	snprintf(out, n, "%s:%d", ip, port);
}

static int faults_active(const struct peer_faults *f)
{
	return f->drop_ppm || f->dup_ppm || f->reorder_ppm || f->delay_ms || f->delay_jitter_ms;
}

static int partitioned(const struct peer_net *net, uint64_t id)
{
	for (size_t i = 0; i < net->npartition; i++)
		if (net->partition[i] == id)
			return 1;
	return 0;
}

static struct peer *find_peer(const struct peer_net *net, uint64_t id)
{
	for (struct peer *p = net->peers; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

/* handle_closed runs at the end of every handle's close callback; the
 * last one after peer_net_close frees the transport. */
static void handle_closed(struct peer_net *net)
{
	net->open_handles--;
	if (net->closing && net->open_handles == 0) {
		free(net->cluster);
		free(net);
	}
}

static void on_net_handle_close(uv_handle_t *h)
{
	handle_closed(h->data);
}

/* ---------------------------------------------------------------------- */
/* Connections                                                             */

static void on_conn_close(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct peer_net *net = c->net;
	if (c->prev)
		c->prev->next = c->next;
	else
		net->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	frame_decoder_close(&c->dec);
	sp_buf_free(&c->wbuf);
	free(c);
	handle_closed(net);
}

static struct conn *conn_new(struct peer_net *net, int outgoing)
{
	struct conn *c = sp_calloc(1, sizeof(*c));
	c->net = net;
	c->outgoing = outgoing;
	sp_buf_init(&c->wbuf);
	frame_decoder_init(&c->dec, net->max_payload);
	uv_tcp_init(net->loop, &c->tcp);
	c->tcp.data = c;
	c->connect_req.data = c;
	c->write_req.data = c;
	net->open_handles++;
	c->next = net->conns;
	if (net->conns)
		net->conns->prev = c;
	net->conns = c;
	return c;
}

static void schedule_redial(struct peer *p, int reset);

/*
 * conn_close starts closing c (once). For an outgoing connection the frames
 * in flight are lost, and unless the peer is going away a redial is
 * scheduled: at the minimum backoff when the connection had lived long
 * enough to count as healthy, else at the next, doubled, backoff.
 */
static void conn_close(struct conn *c)
{
	struct peer_net *net = c->net;
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->outgoing) {
		net->stats.frames_lost += c->wbuf_frames;
		c->wbuf_frames = 0;
		if (c->established)
			net->stats.disconnects++;
		struct peer *p = c->peer;
		if (p) {
			p->conn = NULL;
			c->peer = NULL;
			p->link_failed = !net->closing;
			uint64_t lived = uv_now(net->loop) - c->opened_ms;
			if (!p->removed && !net->closing)
				schedule_redial(p,
						c->established && lived >= net->reconnect_max_ms);
		}
	}
	uv_close((uv_handle_t *)&c->tcp, on_conn_close);
}

static void set_socket_options(struct conn *c)
{
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, PEER_KEEPALIVE_S);
}

/* ---------------------------------------------------------------------- */
/* Sending: queue, flush, write                                            */

static void on_write(uv_write_t *req, int status);

/* flush hands the peer's queue to its connection in one uv_write, unless
 * a write is already in flight (on_write flushes again when it ends). */
static void flush(struct peer *p)
{
	struct conn *c = p->conn;
	if (c == NULL || c->state != CONN_OPEN || c->writing)
		return;
	if (c->wbuf.len == 0) {
		struct sp_buf t = c->wbuf;
		c->wbuf = p->queue;
		p->queue = t;
	} else {
		/* Only the hello is there: the first write of a connection. */
		sp_buf_append(&c->wbuf, sp_buf_begin(&p->queue), p->queue.len);
		sp_buf_clear(&p->queue);
	}
	c->wbuf_frames += p->queue_frames;
	p->queue_frames = 0;
	if (c->wbuf.len == 0)
		return;
	uv_buf_t b;
	b.base = sp_buf_begin(&c->wbuf);
	b.len = c->wbuf.len;
	p->net->stats.writes++;
	int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc < 0) {
		sp_warn("peer %llu (%s): write: %s", (unsigned long long)p->id, p->name,
			uv_strerror(rc));
		conn_close(c);
		return;
	}
	c->writing = 1;
}

static void on_write(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	struct peer_net *net = c->net;
	c->writing = 0;
	if (status < 0) {
		if (c->state != CONN_CLOSING) {
			sp_debug("peer connection to %s: write: %s", c->addr, uv_strerror(status));
			conn_close(c);
		}
		return;
	}
	net->stats.frames_sent += c->wbuf_frames;
	net->stats.bytes_sent += c->wbuf.len;
	c->wbuf_frames = 0;
	if (c->wbuf.cap > WBUF_KEEP_CAP)
		sp_buf_free(&c->wbuf);
	else
		sp_buf_clear(&c->wbuf);
	if (c->state == CONN_OPEN && c->peer && c->peer->queue.len > 0)
		flush(c->peer);
}

/* on_flush runs once per loop iteration while frames wait: everything
 * queued since the last iteration leaves in one write per peer. */
static void on_flush(uv_prepare_t *h)
{
	struct peer_net *net = h->data;
	uv_prepare_stop(h);
	for (struct peer *p = net->peers; p; p = p->next)
		if (p->queue.len > 0)
			flush(p);
}

static void on_connect(uv_connect_t *req, int status);

/* dial starts an outgoing connection to p. */
static void dial(struct peer *p)
{
	struct peer_net *net = p->net;
	struct conn *c = conn_new(net, 1);
	c->peer = p;
	c->state = CONN_CONNECTING;
	snprintf(c->addr, sizeof(c->addr), "%s", p->name);
	p->conn = c;
	net->stats.dials++;
	int rc =
	    uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&p->addr, on_connect);
	if (rc < 0) {
		sp_debug("peer %llu (%s): connect: %s", (unsigned long long)p->id, p->name,
			 uv_strerror(rc));
		conn_close(c);
	}
}

static void on_out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	(void)suggested;
	buf->base = c->scratch;
	buf->len = sizeof(c->scratch);
}

/* The acceptor never writes on a connection we dialed: a read there is
 * either its close (EOF, error) or a protocol violation. */
static void on_out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	(void)buf;
	if (nread == 0 || c->state == CONN_CLOSING)
		return;
	if (nread > 0)
		sp_warn("peer connection to %s: unexpected data from the acceptor; closing",
			c->addr);
	else
		sp_debug("peer connection to %s: %s", c->addr, uv_strerror((int)nread));
	conn_close(c);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct peer_net *net = c->net;
	if (c->state == CONN_CLOSING)
		return;
	struct peer *p = c->peer;
	if (status < 0) {
		sp_debug("peer %llu (%s): connect: %s", (unsigned long long)p->id, p->name,
			 uv_strerror(status));
		conn_close(c);
		return;
	}
	c->state = CONN_OPEN;
	c->established = 1;
	c->opened_ms = uv_now(net->loop);
	set_socket_options(c);
	p->link_failed = 0;
	net->stats.connects++;
	if (p->ever_connected)
		net->stats.reconnects++;
	p->ever_connected = 1;
	sp_debug("peer %llu (%s): connected", (unsigned long long)p->id, p->name);
	int rc = uv_read_start((uv_stream_t *)&c->tcp, on_out_alloc, on_out_read);
	if (rc < 0) {
		conn_close(c);
		return;
	}
	/* The cluster name was checked at open, so this cannot fail. */
	frame_encode_hello(&c->wbuf, net->self_id, p->id, net->cluster);
	flush(p);
}

static void on_redial(uv_timer_t *t)
{
	struct peer *p = t->data;
	p->backing_off = 0;
	/* Nothing to say: stay idle, the next send dials. */
	if (p->queue.len > 0 && p->conn == NULL)
		dial(p);
}

static void schedule_redial(struct peer *p, int reset)
{
	struct peer_net *net = p->net;
	if (reset)
		p->backoff_ms = net->reconnect_min_ms;
	uint32_t cap = p->backoff_ms;
	uint64_t wait = cap / 2 + rng_below(net, cap - cap / 2 + 1);
	if (wait == 0)
		wait = 1;
	p->backoff_ms = cap >= net->reconnect_max_ms / 2 ? net->reconnect_max_ms : cap * 2;
	p->backing_off = 1;
	uv_timer_start(&p->backoff_timer, on_redial, wait, 0);
}

/* enqueue appends one frame to p's queue (or drops it when the queue is
 * full) and makes sure it will be flushed or a connection dialed. */
static void enqueue(struct peer *p, uint8_t channel, const void *payload, size_t len)
{
	struct peer_net *net = p->net;
	size_t size = frame_encoded_size(len);
	size_t pending = p->queue.len + (p->conn ? p->conn->wbuf.len : 0);
	if (pending + size > net->max_queue_bytes) {
		net->stats.frames_dropped++;
		return;
	}
	frame_encode(&p->queue, channel, net->self_id, payload, len);
	p->queue_frames++;
	if (p->conn == NULL) {
		if (!p->backing_off)
			dial(p);
		return;
	}
	if (p->conn->state == CONN_OPEN && !p->conn->writing &&
	    !uv_is_active((uv_handle_t *)&net->flush_prepare))
		uv_prepare_start(&net->flush_prepare, on_flush);
}

/* ---------------------------------------------------------------------- */
/* Held frames (delay and reorder hooks)                                   */

static int held_before(const struct held *a, const struct held *b)
{
	return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void heap_push(struct peer_net *net, struct held *h)
{
	if (net->nheld == net->held_cap) {
		net->held_cap = net->held_cap ? net->held_cap * 2 : 16;
		net->held = sp_realloc(net->held, net->held_cap * sizeof(*net->held));
	}
	size_t i = net->nheld++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!held_before(h, net->held[parent]))
			break;
		net->held[i] = net->held[parent];
		i = parent;
	}
	net->held[i] = h;
}

static struct held *heap_pop(struct peer_net *net)
{
	struct held *top = net->held[0];
	struct held *last = net->held[--net->nheld];
	size_t i = 0, n = net->nheld;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const struct held *best = last;
		if (l < n && held_before(net->held[l], best))
			m = l, best = net->held[l];
		if (r < n && held_before(net->held[r], best))
			m = r;
		if (m == i)
			break;
		net->held[i] = net->held[m];
		i = m;
	}
	if (n > 0)
		net->held[i] = last;
	return top;
}

static void on_hold_timer(uv_timer_t *t);

/* arm_hold_timer sets the timer for the earliest held frame. The wait is
 * rounded up to whole ms and is at least 1 ms, so a clock that does not
 * move (a manual clock in a test) makes the timer poll, not spin. */
static void arm_hold_timer(struct peer_net *net)
{
	if (net->nheld == 0) {
		uv_timer_stop(&net->hold_timer);
		return;
	}
	uint64_t now = sp_mono_ns(net->clock);
	uint64_t due = net->held[0]->due_ns;
	uint64_t wait = due > now ? (due - now + 999999) / 1000000 : 0;
	uv_timer_start(&net->hold_timer, on_hold_timer, wait, 0);
}

static void hold(struct peer_net *net, uint64_t to, uint8_t channel, const void *payload,
		 size_t len, uint64_t ms)
{
	struct held *h = sp_malloc(sizeof(*h) + len);
	h->due_ns = sp_mono_ns(net->clock) + ms * 1000000u;
	h->seq = net->held_seq++;
	h->to = to;
	h->channel = channel;
	h->len = len;
	if (len > 0)
		memcpy(h->payload, payload, len);
	heap_push(net, h);
	if (net->held[0] == h)
		arm_hold_timer(net);
}

static void on_hold_timer(uv_timer_t *t)
{
	struct peer_net *net = t->data;
	uint64_t now = sp_mono_ns(net->clock);
	while (net->nheld > 0 && net->held[0]->due_ns <= now) {
		struct held *h = heap_pop(net);
		struct peer *p = find_peer(net, h->to);
		if (partitioned(net, h->to))
			net->stats.partition_dropped++;
		else if (p == NULL)
			net->stats.frames_lost++;
		else
			enqueue(p, h->channel, h->payload, h->len);
		free(h);
	}
	arm_hold_timer(net);
}

/* ---------------------------------------------------------------------- */
/* Receiving on accepted connections                                       */

static void on_in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	(void)suggested;
	void *base;
	size_t len;
	frame_decoder_reserve(&c->dec, READ_CHUNK, &base, &len);
	buf->base = base;
	buf->len = len;
}

static void refuse(struct conn *c, const char *why)
{
	c->net->stats.decode_errors++;
	sp_warn("peer connection from %s (node %llu): %s; closing", c->addr,
		(unsigned long long)c->remote_id, why);
	conn_close(c);
}

/* accept_hello judges the first frame of an accepted connection. */
static int accept_hello(struct conn *c, const struct frame *f)
{
	struct peer_net *net = c->net;
	struct frame_hello h;
	if (frame_parse_hello(f, &h) < 0) {
		refuse(c, "first frame is not a hello");
		return -1;
	}
	size_t name_len = strlen(net->cluster);
	if (h.cluster_len != name_len || memcmp(h.cluster, net->cluster, name_len) != 0) {
		refuse(c, "hello from another cluster");
		return -1;
	}
	if (h.to != net->self_id) {
		refuse(c, "hello meant for another node id");
		return -1;
	}
	if (h.from == 0 || h.from == net->self_id) {
		refuse(c, "hello with a bad sender id");
		return -1;
	}
	c->remote_id = h.from;
	net->stats.accepts++;
	sp_debug("peer connection from %s: node %llu", c->addr, (unsigned long long)h.from);
	return 0;
}

static void on_in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct peer_net *net = c->net;
	(void)buf;
	if (c->state == CONN_CLOSING)
		return;
	if (nread < 0) {
		if (nread != UV_EOF)
			sp_debug("peer connection from %s: %s", c->addr, uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	frame_decoder_commit(&c->dec, (size_t)nread);
	net->stats.bytes_received += (uint64_t)nread;
	for (;;) {
		struct frame f;
		int rc = frame_decoder_next(&c->dec, &f);
		if (rc == SP_ERR_AGAIN)
			return;
		if (rc < 0) {
			refuse(c, c->dec.why);
			return;
		}
		if (c->remote_id == 0) {
			if (accept_hello(c, &f) < 0)
				return;
			continue;
		}
		if (f.channel == FRAME_CHANNEL_HELLO) {
			refuse(c, "second hello");
			return;
		}
		if (f.sender != c->remote_id) {
			refuse(c, "frame sender differs from the hello's");
			return;
		}
		if (partitioned(net, c->remote_id)) {
			net->stats.partition_dropped++;
			continue;
		}
		net->stats.frames_received++;
		net->on_frame(net->ctx, c->remote_id, f.channel, f.payload, f.len);
		/* The callback may have closed this connection or the net. */
		if (c->state == CONN_CLOSING)
			return;
	}
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct peer_net *net = listener->data;
	if (status < 0) {
		sp_warn("peer listener: accept: %s", uv_strerror(status));
		return;
	}
	struct conn *c = conn_new(net, 0);
	c->state = CONN_OPEN;
	int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
	if (rc == 0) {
		struct sockaddr_storage sa;
		int n = sizeof(sa);
		if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &n) == 0)
			format_addr(&sa, c->addr, sizeof(c->addr));
		set_socket_options(c);
		rc = uv_read_start((uv_stream_t *)&c->tcp, on_in_alloc, on_in_read);
	}
	if (rc < 0) {
		sp_warn("peer listener: accept: %s", uv_strerror(rc));
		conn_close(c);
	}
}

/* ---------------------------------------------------------------------- */
/* Public API                                                              */

int peer_net_open(struct peer_net **out, uv_loop_t *loop, const struct peer_net_config *cfg)
{
	*out = NULL;
	const char *cluster = cfg->cluster ? cfg->cluster : PEER_CLUSTER_DEFAULT;
	const char *host = cfg->bind_host ? cfg->bind_host : PEER_BIND_DEFAULT;
	uint32_t rmin =
	    cfg->reconnect_min_ms ? cfg->reconnect_min_ms : PEER_RECONNECT_MIN_MS_DEFAULT;
	uint32_t rmax =
	    cfg->reconnect_max_ms ? cfg->reconnect_max_ms : PEER_RECONNECT_MAX_MS_DEFAULT;
	struct sockaddr_storage addr;
	if (cfg->self_id == 0 || cfg->on_frame == NULL || strlen(cluster) > FRAME_CLUSTER_MAX ||
	    rmin > rmax || cfg->port < 0 || cfg->port > 65535 ||
	    parse_addr(host, cfg->port, &addr) < 0)
		return SP_ERR_INVAL;

	struct peer_net *net = sp_calloc(1, sizeof(*net));
	net->loop = loop;
	net->self_id = cfg->self_id;
	net->cluster = sp_strdup(cluster);
	net->on_frame = cfg->on_frame;
	net->ctx = cfg->ctx;
	net->reconnect_min_ms = rmin;
	net->reconnect_max_ms = rmax;
	net->max_queue_bytes = cfg->max_queue_bytes ? cfg->max_queue_bytes : PEER_MAX_QUEUE_DEFAULT;
	net->max_payload = cfg->max_payload ? cfg->max_payload : FRAME_MAX_PAYLOAD_DEFAULT;
	if (net->max_payload > FRAME_MAX_PAYLOAD_LIMIT)
		net->max_payload = FRAME_MAX_PAYLOAD_LIMIT;
	net->clock = cfg->clock ? cfg->clock : sp_clock_system();
	net->rng = cfg->seed ^ (cfg->self_id * 0xD1B54A32D192ED03ull);

	uv_tcp_init(loop, &net->listener);
	net->listener.data = net;
	uv_prepare_init(loop, &net->flush_prepare);
	net->flush_prepare.data = net;
	uv_timer_init(loop, &net->hold_timer);
	net->hold_timer.data = net;
	net->open_handles = 3;

	int rc = uv_tcp_bind(&net->listener, (const struct sockaddr *)&addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&net->listener, LISTEN_BACKLOG, on_connection);
	if (rc == 0) {
		struct sockaddr_storage bound;
		int n = sizeof(bound);
		rc = uv_tcp_getsockname(&net->listener, (struct sockaddr *)&bound, &n);
		if (rc == 0)
			net->port = bound.ss_family == AF_INET6
					? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
					: ntohs(((struct sockaddr_in *)&bound)->sin_port);
	}
	if (rc < 0) {
		sp_error("peer listener on %s:%d: %s", host, cfg->port, uv_strerror(rc));
		peer_net_close(net);
		return rc;
	}
	sp_info("peer transport: node %llu listening on %s:%d", (unsigned long long)net->self_id,
		host, net->port);
	*out = net;
	return 0;
}

static void on_peer_timer_close(uv_handle_t *h)
{
	struct peer *p = h->data;
	struct peer_net *net = p->net;
	sp_buf_free(&p->queue);
	free(p);
	handle_closed(net);
}

/* peer_release closes what p owns; p is freed by its timer's close
 * callback. p must already be unlinked from net->peers. */
static void peer_release(struct peer *p)
{
	struct peer_net *net = p->net;
	p->removed = 1;
	net->stats.frames_lost += p->queue_frames;
	p->queue_frames = 0;
	sp_buf_free(&p->queue);
	if (p->conn)
		conn_close(p->conn);
	uv_timer_stop(&p->backoff_timer);
	uv_close((uv_handle_t *)&p->backoff_timer, on_peer_timer_close);
}

void peer_net_close(struct peer_net *net)
{
	if (net == NULL)
		return;
	net->closing = 1;
	while (net->peers) {
		struct peer *p = net->peers;
		net->peers = p->next;
		peer_release(p);
	}
	for (struct conn *c = net->conns; c; c = c->next)
		conn_close(c);
	while (net->nheld > 0)
		free(heap_pop(net));
	free(net->held);
	net->held = NULL;
	free(net->partition);
	net->partition = NULL;
	net->npartition = 0;
	uv_close((uv_handle_t *)&net->listener, on_net_handle_close);
	uv_close((uv_handle_t *)&net->flush_prepare, on_net_handle_close);
	uv_close((uv_handle_t *)&net->hold_timer, on_net_handle_close);
}

int peer_net_port(const struct peer_net *net)
{
	return net->port;
}

int peer_net_add_peer(struct peer_net *net, uint64_t id, const char *host, int port)
{
	struct sockaddr_storage addr;
	if (id == 0 || id == net->self_id || port < 1 || port > 65535 ||
	    parse_addr(host, port, &addr) < 0)
		return SP_ERR_INVAL;
	if (find_peer(net, id))
		return SP_ERR_EXISTS;
	struct peer *p = sp_calloc(1, sizeof(*p));
	p->net = net;
	p->id = id;
	p->addr = addr;
	format_addr(&addr, p->name, sizeof(p->name));
	p->backoff_ms = net->reconnect_min_ms;
	sp_buf_init(&p->queue);
	uv_timer_init(net->loop, &p->backoff_timer);
	p->backoff_timer.data = p;
	net->open_handles++;
	p->next = net->peers;
	net->peers = p;
	return 0;
}

int peer_net_remove_peer(struct peer_net *net, uint64_t id)
{
	struct peer **link = &net->peers;
	while (*link && (*link)->id != id)
		link = &(*link)->next;
	struct peer *p = *link;
	if (p == NULL)
		return SP_ERR_NOTFOUND;
	*link = p->next;
	peer_release(p);
	return 0;
}

int peer_net_send(struct peer_net *net, uint64_t to, uint8_t channel, const void *payload,
		  size_t len)
{
	if (to == net->self_id || channel == FRAME_CHANNEL_HELLO)
		return SP_ERR_INVAL;
	if (len > net->max_payload)
		return SP_ERR_TOOBIG;
	struct peer *p = find_peer(net, to);
	if (p == NULL)
		return SP_ERR_NOTFOUND;
	if (partitioned(net, to)) {
		net->stats.partition_dropped++;
		return 0;
	}
	const struct peer_faults *f = p->has_faults	? &p->faults
				      : net->has_faults ? &net->faults
							: NULL;
	if (f == NULL) {
		enqueue(p, channel, payload, len);
		return 0;
	}
	if (chance(net, f->drop_ppm)) {
		net->stats.fault_dropped++;
		return 0;
	}
	int copies = 1;
	if (chance(net, f->dup_ppm)) {
		copies = 2;
		net->stats.fault_duplicated++;
	}
	for (int i = 0; i < copies; i++) {
		uint64_t ms = 0;
		if (f->delay_ms || f->delay_jitter_ms) {
			ms = f->delay_ms + rng_below(net, (uint64_t)f->delay_jitter_ms + 1);
			net->stats.fault_delayed++;
		}
		if (chance(net, f->reorder_ppm)) {
			ms += 1 + rng_below(net, PEER_REORDER_MAX_MS);
			net->stats.fault_reordered++;
		}
		if (ms > 0)
			hold(net, to, channel, payload, len, ms);
		else
			enqueue(p, channel, payload, len);
	}
	return 0;
}

bool peer_net_link_down(const struct peer_net *net, uint64_t id)
{
	const struct peer *p = net ? find_peer(net, id) : NULL;
	return p && p->link_failed;
}

void peer_net_get_stats(const struct peer_net *net, struct peer_net_stats *out)
{
	*out = net->stats;
}

int peer_net_set_faults(struct peer_net *net, uint64_t peer_id, const struct peer_faults *faults)
{
	struct peer_faults none = {0};
	if (faults == NULL)
		faults = &none;
	if (peer_id == 0) {
		net->faults = *faults;
		net->has_faults = faults_active(faults);
		return 0;
	}
	struct peer *p = find_peer(net, peer_id);
	if (p == NULL)
		return SP_ERR_NOTFOUND;
	p->faults = *faults;
	p->has_faults = faults_active(faults);
	return 0;
}

void peer_net_partition(struct peer_net *net, const uint64_t *ids, size_t n)
{
	free(net->partition);
	net->partition = NULL;
	net->npartition = 0;
	if (n == 0)
		return;
	net->partition = sp_malloc(n * sizeof(*net->partition));
	for (size_t i = 0; i < n; i++)
		if (ids[i] != net->self_id)
			net->partition[net->npartition++] = ids[i];
}

void peer_net_heal(struct peer_net *net)
{
	peer_net_partition(net, NULL, 0);
	peer_net_set_faults(net, 0, NULL);
	for (struct peer *p = net->peers; p; p = p->next) {
		memset(&p->faults, 0, sizeof(p->faults));
		p->has_faults = 0;
	}
}
