/*
 * test_peer: the frame codec (net/frame.c) and the peer transport with its
 * fault hooks (net/peer.c).
 *
 * Codec tests are properties over random frames and random chunking, and
 * exhaustive single-bit corruption. Transport tests run two or three
 * peer_nets on one uv loop over 127.0.0.1 ephemeral ports. Every wait is
 * bounded by a uv timer, and every test ends by closing everything and
 * checking that uv_loop_close finds no handle left (ASan/LSan check the
 * memory). Randomness comes from a seed printed at the start of each test;
 * set PEER_TEST_SEED to replay one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "net/frame.h"
#include "net/peer.h"
#include "../lib/testutil.h"

/* ---------------------------------------------------------------------- */
/* Seeded randomness                                                       */

static uint64_t test_seed(void)
{
	const char *env = getenv("PEER_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)clock();
	print_message("seed %llu (PEER_TEST_SEED to replay)\n", (unsigned long long)seed);
	return seed;
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Test payloads: a u32 sequence number, then bytes derived from it, so the
 * receiver can check every byte. */
static uint8_t pattern_byte(uint32_t seq, size_t i)
{
	return (uint8_t)(seq * 31u + i * 7u + (i >> 8));
}

static uint8_t *make_payload(uint32_t seq, size_t len)
{
	uint8_t *p = malloc(len < 4 ? 4 : len);
	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = pattern_byte(seq, i);
	if (len >= 4)
		memcpy(p, &seq, 4);
	return p;
}

static int payload_ok(const uint8_t *p, size_t len, uint32_t *seq)
{
	if (len < 4)
		return 0;
	memcpy(seq, p, 4);
	for (size_t i = 4; i < len; i++)
		if (p[i] != pattern_byte(*seq, i))
			return 0;
	return 1;
}

/* ---------------------------------------------------------------------- */
/* Frame codec                                                             */

struct sent_frame {
	uint8_t channel;
	uint64_t sender;
	uint8_t *payload;
	size_t len;
};

/* Random frames, encoded back to back, fed in random chunks through both
 * feed and reserve/commit: every frame comes out intact and in order. */
static void test_frame_roundtrip_random_chunks(void **state)
{
	(void)state;
	uint64_t s = test_seed();
	for (int round = 0; round < 40; round++) {
		size_t n = 1 + rnd(&s) % 60;
		struct sent_frame *fr = calloc(n, sizeof(*fr));
		struct sp_buf wire;
		sp_buf_init(&wire);
		for (size_t i = 0; i < n; i++) {
			uint64_t pick = rnd(&s) % 10;
			fr[i].len = pick == 0 ? 0 : pick < 8 ? rnd(&s) % 300 : rnd(&s) % 70000;
			fr[i].channel = (uint8_t)(rnd(&s) % 256);
			fr[i].sender = rnd(&s) | 1;
			fr[i].payload = malloc(fr[i].len + 1);
			for (size_t j = 0; j < fr[i].len; j++)
				fr[i].payload[j] = (uint8_t)rnd(&s);
			assert_int_equal(frame_encode(&wire, fr[i].channel, fr[i].sender,
						      fr[i].payload, fr[i].len),
					 0);
		}
		size_t total = 0;
		for (size_t i = 0; i < n; i++)
			total += frame_encoded_size(fr[i].len);
		assert_int_equal(wire.len, total);

		struct frame_decoder d;
		frame_decoder_init(&d, 0);
		const uint8_t *w = (const uint8_t *)sp_buf_begin(&wire);
		size_t off = 0, got = 0;
		while (off < wire.len || got < n) {
			size_t max_chunk = rnd(&s) % 2 ? 7 : 5000;
			size_t chunk = 1 + rnd(&s) % max_chunk;
			if (chunk > wire.len - off)
				chunk = wire.len - off;
			if (rnd(&s) % 2) {
				frame_decoder_feed(&d, w + off, chunk);
			} else {
				void *base;
				size_t room;
				frame_decoder_reserve(&d, chunk, &base, &room);
				assert_true(room >= chunk);
				memcpy(base, w + off, chunk);
				frame_decoder_commit(&d, chunk);
			}
			off += chunk;
			struct frame f;
			int rc;
			while ((rc = frame_decoder_next(&d, &f)) == 0) {
				assert_true(got < n);
				assert_int_equal(f.channel, fr[got].channel);
				assert_int_equal(f.sender, fr[got].sender);
				assert_int_equal(f.len, fr[got].len);
				assert_non_null(f.payload);
				assert_memory_equal(f.payload, fr[got].payload, f.len);
				got++;
			}
			assert_int_equal(rc, SP_ERR_AGAIN);
			if (off == wire.len)
				assert_int_equal(got, n);
		}
		assert_int_equal(frame_decoder_buffered(&d), 0);
		frame_decoder_close(&d);
		for (size_t i = 0; i < n; i++)
			free(fr[i].payload);
		free(fr);
		sp_buf_free(&wire);
	}
}

static void test_frame_empty_payload(void **state)
{
	(void)state;
	struct sp_buf wire;
	sp_buf_init(&wire);
	assert_int_equal(frame_encode(&wire, 1, 42, NULL, 0), 0);
	assert_int_equal(wire.len, FRAME_HEADER_SIZE);
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	frame_decoder_feed(&d, sp_buf_begin(&wire), wire.len);
	struct frame f;
	assert_int_equal(frame_decoder_next(&d, &f), 0);
	assert_int_equal(f.len, 0);
	assert_int_equal(f.sender, 42);
	assert_non_null(f.payload);
	assert_int_equal(frame_decoder_next(&d, &f), SP_ERR_AGAIN);
	frame_decoder_close(&d);
	/* A payload the length field cannot describe is refused untouched. */
	assert_int_equal(frame_encode(&wire, 1, 42, NULL, FRAME_MAX_PAYLOAD_LIMIT + 1),
			 SP_ERR_TOOBIG);
	assert_int_equal(wire.len, FRAME_HEADER_SIZE);
	sp_buf_free(&wire);
}

/* decode_all feeds len bytes at once and returns the first non-frame
 * result, counting the frames before it in *frames. */
static int decode_all(const uint8_t *p, size_t len, size_t max_payload, size_t *frames,
		      const char **why)
{
	struct frame_decoder d;
	frame_decoder_init(&d, max_payload);
	frame_decoder_feed(&d, p, len);
	struct frame f;
	int rc;
	*frames = 0;
	while ((rc = frame_decoder_next(&d, &f)) == 0)
		(*frames)++;
	*why = d.why;
	frame_decoder_close(&d);
	return rc;
}

/* Every single-bit flip anywhere in a frame is caught: the checksum covers
 * everything but the length, a flipped version is a bad version, and a
 * flipped length is too large, too short, a checksum mismatch, or (grown)
 * an incomplete frame that never completes. */
static void test_frame_every_bit_flip_detected(void **state)
{
	(void)state;
	struct sp_buf wire;
	sp_buf_init(&wire);
	uint8_t *payload = make_payload(7, 61);
	assert_int_equal(
	    frame_encode(&wire, FRAME_CHANNEL_RAFT, 0x1122334455667788ull, payload, 61), 0);
	size_t n = wire.len;
	uint8_t *buf = malloc(n);
	size_t frames;
	const char *why;
	memcpy(buf, sp_buf_begin(&wire), n);
	assert_int_equal(decode_all(buf, n, 0, &frames, &why), SP_ERR_AGAIN);
	assert_int_equal(frames, 1);
	for (size_t bit = 0; bit < n * 8; bit++) {
		memcpy(buf, sp_buf_begin(&wire), n);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int rc = decode_all(buf, n, 0, &frames, &why);
		assert_int_equal(frames, 0);
		if (bit / 8 < FRAME_LEN_SIZE && rc == SP_ERR_AGAIN)
			continue; /* length grew: waits for bytes that never come */
		assert_int_equal(rc, SP_ERR_PROTO);
		assert_non_null(why);
		if (bit / 8 == 4)
			assert_string_equal(why, "bad version");
		else if (bit / 8 >= 6)
			assert_string_equal(why, "bad checksum");
	}
	free(buf);
	free(payload);
	sp_buf_free(&wire);
}

static void test_frame_bad_version_early(void **state)
{
	(void)state;
	static const uint8_t versions[] = {0, 2, 255};
	for (size_t i = 0; i < sizeof(versions); i++) {
		struct sp_buf wire;
		sp_buf_init(&wire);
		assert_int_equal(frame_encode(&wire, 1, 5, "abc", 3), 0);
		uint8_t *p = (uint8_t *)sp_buf_begin(&wire);
		p[4] = versions[i];
		struct frame_decoder d;
		frame_decoder_init(&d, 0);
		struct frame f;
		frame_decoder_feed(&d, p, 4);
		assert_int_equal(frame_decoder_next(&d, &f), SP_ERR_AGAIN);
		/* Known bad from the fifth byte, without waiting for the body. */
		frame_decoder_feed(&d, p + 4, 1);
		assert_int_equal(frame_decoder_next(&d, &f), SP_ERR_PROTO);
		assert_string_equal(d.why, "bad version");
		/* Sticky: valid bytes after an error change nothing. */
		frame_decoder_feed(&d, p + 5, wire.len - 5);
		assert_int_equal(frame_decoder_next(&d, &f), SP_ERR_PROTO);
		frame_decoder_close(&d);
		sp_buf_free(&wire);
	}
}

static void test_frame_length_limits(void **state)
{
	(void)state;
	struct sp_buf wire;
	sp_buf_init(&wire);
	uint8_t *payload = make_payload(1, 1001);
	size_t frames;
	const char *why;
	/* Exactly the limit passes; one byte more is refused from the
	 * length field alone. */
	assert_int_equal(frame_encode(&wire, 1, 9, payload, 1000), 0);
	assert_int_equal(decode_all((uint8_t *)sp_buf_begin(&wire), wire.len, 1000, &frames, &why),
			 SP_ERR_AGAIN);
	assert_int_equal(frames, 1);
	sp_buf_clear(&wire);
	assert_int_equal(frame_encode(&wire, 1, 9, payload, 1001), 0);
	assert_int_equal(decode_all((uint8_t *)sp_buf_begin(&wire), 4, 1000, &frames, &why),
			 SP_ERR_PROTO);
	assert_string_equal(why, "frame too large");
	/* The default limit is 64 MiB; a length claiming 4 GiB is refused. */
	uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
	assert_int_equal(decode_all(huge, 4, 0, &frames, &why), SP_ERR_PROTO);
	assert_string_equal(why, "frame too large");
	uint8_t just_over[4];
	uint32_t body = (uint32_t)(FRAME_MAX_PAYLOAD_DEFAULT + FRAME_HEADER_SIZE - 4 + 1);
	memcpy(just_over, &body, 4);
	assert_int_equal(decode_all(just_over, 4, 0, &frames, &why), SP_ERR_PROTO);
	/* A body shorter than the header cannot be a frame. */
	for (uint32_t b = 0; b < FRAME_HEADER_SIZE - 4; b++) {
		uint8_t shortf[4];
		memcpy(shortf, &b, 4);
		assert_int_equal(decode_all(shortf, 4, 0, &frames, &why), SP_ERR_PROTO);
		assert_string_equal(why, "frame too short");
	}
	free(payload);
	sp_buf_free(&wire);
}

static void test_frame_hello(void **state)
{
	(void)state;
	struct sp_buf wire;
	sp_buf_init(&wire);
	assert_int_equal(frame_encode_hello(&wire, 3, 4, "prod-eu"), 0);
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	frame_decoder_feed(&d, sp_buf_begin(&wire), wire.len);
	struct frame f;
	assert_int_equal(frame_decoder_next(&d, &f), 0);
	assert_int_equal(f.channel, FRAME_CHANNEL_HELLO);
	struct frame_hello h;
	assert_int_equal(frame_parse_hello(&f, &h), 0);
	assert_int_equal(h.from, 3);
	assert_int_equal(h.to, 4);
	assert_int_equal(h.cluster_len, 7);
	assert_memory_equal(h.cluster, "prod-eu", 7);

	/* Wrong magic, wrong channel, wrong length: all refused. */
	uint8_t bad[64];
	memcpy(bad, f.payload, f.len);
	struct frame g = f;
	g.payload = bad;
	bad[0] ^= 1;
	assert_int_equal(frame_parse_hello(&g, &h), SP_ERR_PROTO);
	bad[0] ^= 1;
	g.channel = FRAME_CHANNEL_RAFT;
	assert_int_equal(frame_parse_hello(&g, &h), SP_ERR_PROTO);
	g.channel = FRAME_CHANNEL_HELLO;
	g.len = f.len - 1;
	assert_int_equal(frame_parse_hello(&g, &h), SP_ERR_PROTO);
	g.len = 5;
	assert_int_equal(frame_parse_hello(&g, &h), SP_ERR_PROTO);
	frame_decoder_close(&d);

	char long_name[FRAME_CLUSTER_MAX + 2];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	size_t before = wire.len;
	assert_int_equal(frame_encode_hello(&wire, 3, 4, long_name), SP_ERR_INVAL);
	assert_int_equal(wire.len, before);
	long_name[FRAME_CLUSTER_MAX] = '\0';
	assert_int_equal(frame_encode_hello(&wire, 3, 4, long_name), 0);
	sp_buf_free(&wire);
}

/* ---------------------------------------------------------------------- */
/* Transport harness                                                       */

#define MAX_NODES 3

struct rx_frame {
	uint64_t from;
	uint8_t channel;
	uint32_t seq;
	size_t len;
	uint64_t at_ms; /* loop time when delivered */
};

struct harness;

struct node {
	struct harness *h;
	struct peer_net *net;
	uint64_t id;
	int port;
	struct rx_frame *rx;
	size_t nrx, rx_cap;
	size_t corrupt;	    /* payloads whose bytes were wrong */
	int close_on_frame; /* close the net from inside the callback */
	const char *cluster;
	size_t max_queue_bytes;
};

struct ticker {
	uv_timer_t timer;
	struct node *from;
	uint64_t to;
	uint32_t next_seq;
	int on;
};

struct harness {
	uv_loop_t loop;
	struct ticker ticker; /* a periodic sender, closed by teardown */
	uv_timer_t deadline;
	int expired;
	uint64_t seed;
	struct node nodes[MAX_NODES];
};

static void on_deadline(uv_timer_t *t)
{
	struct harness *h = t->data;
	h->expired = 1;
	uv_stop(&h->loop);
}

static void deadline_start(struct harness *h, uint64_t ms)
{
	h->expired = 0;
	uv_update_time(&h->loop);
	uv_timer_start(&h->deadline, on_deadline, ms, 0);
}

/* RUN_UNTIL runs the loop until cond holds or ms pass. */
#define RUN_UNTIL(h, cond, ms)                                                                     \
	do {                                                                                       \
		deadline_start((h), (ms));                                                         \
		while (!(cond) && !(h)->expired)                                                   \
			uv_run(&(h)->loop, UV_RUN_ONCE);                                           \
		uv_timer_stop(&(h)->deadline);                                                     \
	} while (0)

static void run_for(struct harness *h, uint64_t ms)
{
	RUN_UNTIL(h, 0, ms);
}

static void on_frame(void *ctx, uint64_t from, uint8_t channel, const uint8_t *payload, size_t len)
{
	struct node *n = ctx;
	if (n->nrx == n->rx_cap) {
		n->rx_cap = n->rx_cap ? n->rx_cap * 2 : 64;
		n->rx = realloc(n->rx, n->rx_cap * sizeof(*n->rx));
		assert_non_null(n->rx);
	}
	struct rx_frame *r = &n->rx[n->nrx++];
	r->from = from;
	r->channel = channel;
	r->len = len;
	r->at_ms = uv_now(&n->h->loop);
	if (!payload_ok(payload, len, &r->seq))
		n->corrupt++;
	if (n->close_on_frame) {
		peer_net_close(n->net);
		n->net = NULL;
	}
}

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	assert_int_equal(uv_loop_init(&h->loop), 0);
	uv_timer_init(&h->loop, &h->deadline);
	h->deadline.data = h;
	h->seed = test_seed();
	for (int i = 0; i < MAX_NODES; i++) {
		h->nodes[i].h = h;
		h->nodes[i].id = (uint64_t)i + 1;
	}
	sp_log_setup(SP_LOG_ERROR, NULL);
	*state = h;
	return 0;
}

static void node_close(struct node *n)
{
	peer_net_close(n->net);
	n->net = NULL;
}

static void count_handle(uv_handle_t *hd, void *arg)
{
	if (!uv_is_closing(hd))
		(*(int *)arg)++;
}

static int teardown(void **state)
{
	struct harness *h = *state;
	for (int i = 0; i < MAX_NODES; i++)
		node_close(&h->nodes[i]);
	if (h->ticker.on)
		uv_close((uv_handle_t *)&h->ticker.timer, NULL);
	/* Everything must wind down by itself; the deadline only guards a
	 * hang, so it does not keep the loop alive. */
	deadline_start(h, 5000);
	uv_unref((uv_handle_t *)&h->deadline);
	uv_run(&h->loop, UV_RUN_DEFAULT);
	int expired = h->expired;
	uv_close((uv_handle_t *)&h->deadline, NULL);
	int live = 0;
	uv_walk(&h->loop, count_handle, &live);
	uv_run(&h->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&h->loop);
	for (int i = 0; i < MAX_NODES; i++)
		free(h->nodes[i].rx);
	free(h);
	assert_false(expired);
	assert_int_equal(live, 0);
	assert_int_equal(rc, 0);
	return 0;
}

/* node_open opens node n on `port` (0: ephemeral), retrying a while when
 * the port is still in use (a restart). */
static void node_open(struct node *n, int port)
{
	struct harness *h = n->h;
	struct peer_net_config cfg = {
	    .self_id = n->id,
	    .cluster = n->cluster,
	    .port = port,
	    .on_frame = on_frame,
	    .ctx = n,
	    .reconnect_min_ms = 5,
	    .reconnect_max_ms = 100,
	    .max_queue_bytes = n->max_queue_bytes,
	    .seed = h->seed + n->id,
	};
	int rc = 0;
	for (int attempt = 0; attempt < 50; attempt++) {
		rc = peer_net_open(&n->net, &h->loop, &cfg);
		if (rc != UV_EADDRINUSE)
			break;
		run_for(h, 20);
	}
	assert_int_equal(rc, 0);
	n->port = peer_net_port(n->net);
	assert_true(n->port > 0);
	n->nrx = 0;
	n->corrupt = 0;
}

/* connect_mesh makes each of the first k open nodes a peer of the others. */
static void connect_mesh(struct harness *h, int k)
{
	for (int i = 0; i < k; i++)
		for (int j = 0; j < k; j++)
			if (i != j && h->nodes[i].net)
				assert_int_equal(peer_net_add_peer(h->nodes[i].net, h->nodes[j].id,
								   "127.0.0.1", h->nodes[j].port),
						 0);
}

static void open_mesh(struct harness *h, int k)
{
	for (int i = 0; i < k; i++)
		node_open(&h->nodes[i], 0);
	connect_mesh(h, k);
}

static void send_seq(struct node *from, uint64_t to, uint32_t seq, size_t len)
{
	uint8_t *p = make_payload(seq, len);
	assert_int_equal(peer_net_send(from->net, to, FRAME_CHANNEL_RAFT, p, len), 0);
	free(p);
}

static struct peer_net_stats stats_of(const struct node *n)
{
	struct peer_net_stats s;
	peer_net_get_stats(n->net, &s);
	return s;
}

/* A port nothing listens on: one a node bound and then let go. */
static int free_port(struct harness *h)
{
	struct node *n = &h->nodes[MAX_NODES - 1];
	node_open(n, 0);
	int port = n->port;
	node_close(n);
	run_for(h, 5);
	return port;
}

/* ---------------------------------------------------------------------- */
/* Transport tests                                                         */

static void test_peer_api_errors(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	uint8_t x = 1;
	assert_int_equal(peer_net_send(a->net, 9, 1, &x, 1), SP_ERR_NOTFOUND);
	assert_int_equal(peer_net_send(a->net, a->id, 1, &x, 1), SP_ERR_INVAL);
	assert_int_equal(peer_net_send(a->net, b->id, FRAME_CHANNEL_HELLO, &x, 1), SP_ERR_INVAL);
	assert_int_equal(peer_net_send(a->net, b->id, 1, NULL, FRAME_MAX_PAYLOAD_DEFAULT + 1),
			 SP_ERR_TOOBIG);
	assert_int_equal(peer_net_add_peer(a->net, b->id, "127.0.0.1", b->port), SP_ERR_EXISTS);
	assert_int_equal(peer_net_add_peer(a->net, a->id, "127.0.0.1", 1000), SP_ERR_INVAL);
	assert_int_equal(peer_net_add_peer(a->net, 0, "127.0.0.1", 1000), SP_ERR_INVAL);
	assert_int_equal(peer_net_add_peer(a->net, 7, "not-an-ip", 1000), SP_ERR_INVAL);
	assert_int_equal(peer_net_add_peer(a->net, 7, "127.0.0.1", 0), SP_ERR_INVAL);
	assert_int_equal(peer_net_add_peer(a->net, 7, "::1", 1000), 0);
	assert_int_equal(peer_net_remove_peer(a->net, 7), 0);
	assert_int_equal(peer_net_remove_peer(a->net, 7), SP_ERR_NOTFOUND);
	assert_int_equal(peer_net_set_faults(a->net, 7, NULL), SP_ERR_NOTFOUND);

	struct peer_net_config cfg = {.self_id = 0, .on_frame = on_frame};
	struct peer_net *net = (struct peer_net *)&cfg;
	assert_int_equal(peer_net_open(&net, &h->loop, &cfg), SP_ERR_INVAL);
	assert_null(net);
	cfg.self_id = 5;
	cfg.bind_host = "localhost";
	assert_int_equal(peer_net_open(&net, &h->loop, &cfg), SP_ERR_INVAL);
	cfg.bind_host = NULL;
	cfg.reconnect_min_ms = 50;
	cfg.reconnect_max_ms = 10;
	assert_int_equal(peer_net_open(&net, &h->loop, &cfg), SP_ERR_INVAL);
	cfg.reconnect_min_ms = 0;
	cfg.reconnect_max_ms = 0;
	/* A port in use is the bind error, with nothing left open. */
	cfg.port = a->port;
	FILE *log = tu_log_capture_begin(SP_LOG_WARN);
	int rc = peer_net_open(&net, &h->loop, &cfg);
	char *text = tu_log_capture_end(log);
	assert_int_equal(rc, UV_EADDRINUSE);
	assert_null(net);
	assert_non_null(strstr(text, "address already in use"));
	free(text);
}

static void test_peer_delivers_in_order(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	const uint32_t n = 2000;
	for (uint32_t i = 0; i < n; i++) {
		send_seq(a, b->id, i, 4 + i % 200);
		send_seq(b, a->id, i, 4 + i % 50);
	}
	RUN_UNTIL(h, b->nrx == n && a->nrx == n, 5000);
	assert_int_equal(b->nrx, n);
	assert_int_equal(a->nrx, n);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(b->rx[i].seq, i);
		assert_int_equal(b->rx[i].from, a->id);
		assert_int_equal(b->rx[i].channel, FRAME_CHANNEL_RAFT);
		assert_int_equal(b->rx[i].len, 4 + i % 200);
		assert_int_equal(a->rx[i].seq, i);
		assert_int_equal(a->rx[i].from, b->id);
	}
	assert_int_equal(a->corrupt + b->corrupt, 0);
	RUN_UNTIL(h, stats_of(a).frames_sent == n, 2000);
	struct peer_net_stats sa = stats_of(a), sb = stats_of(b);
	assert_int_equal(sa.frames_sent, n);
	assert_int_equal(sb.frames_received, n);
	assert_int_equal(sa.connects, 1);
	assert_int_equal(sa.reconnects, 0);
	assert_int_equal(sb.accepts, 1);
	assert_int_equal(sa.frames_dropped + sa.frames_lost + sa.decode_errors, 0);
	assert_int_equal(sb.bytes_received, sa.bytes_sent);
}

static void test_peer_large_frames(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	const size_t sizes[] = {5u << 20, 3u << 20, 17, 8u << 20};
	const size_t n = sizeof(sizes) / sizeof(sizes[0]);
	for (size_t i = 0; i < n; i++)
		send_seq(a, b->id, (uint32_t)i, sizes[i]);
	RUN_UNTIL(h, b->nrx == n, 10000);
	assert_int_equal(b->nrx, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(b->rx[i].seq, i);
		assert_int_equal(b->rx[i].len, sizes[i]);
	}
	assert_int_equal(b->corrupt, 0);
}

/* Many small frames sent from one callback leave in a handful of writes. */
static void test_peer_batches_small_frames(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	send_seq(a, b->id, 0, 8);
	RUN_UNTIL(h, b->nrx == 1 && stats_of(a).frames_sent == 1, 2000);
	assert_int_equal(b->nrx, 1);
	uint64_t writes0 = stats_of(a).writes;
	const uint32_t n = 20000;
	for (uint32_t i = 1; i <= n; i++)
		send_seq(a, b->id, i, 4 + i % 16);
	RUN_UNTIL(h, b->nrx == n + 1, 5000);
	assert_int_equal(b->nrx, n + 1);
	for (uint32_t i = 0; i <= n; i++)
		assert_int_equal(b->rx[i].seq, i);
	struct peer_net_stats sa = stats_of(a);
	assert_true(sa.writes - writes0 <= 3);
	print_message("%u frames in %llu writes\n", n, (unsigned long long)(sa.writes - writes0));
}

/* Frames sent to a peer that is not up yet are queued; the transport
 * redials with backoff and delivers them once the peer starts. */
static void test_peer_late_start(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	int port = free_port(h);
	node_open(a, 0);
	assert_int_equal(peer_net_add_peer(a->net, b->id, "127.0.0.1", port), 0);
	for (uint32_t i = 0; i < 5; i++)
		send_seq(a, b->id, i, 100);
	run_for(h, 150);
	struct peer_net_stats sa = stats_of(a);
	assert_true(sa.dials >= 3);
	assert_int_equal(sa.connects, 0);
	/* Backoff, not a hot loop: 5 ms doubling to 100 ms gives at most
	 * about ten dials in 150 ms. */
	assert_true(sa.dials <= 12);
	node_open(b, port);
	assert_int_equal(peer_net_add_peer(b->net, a->id, "127.0.0.1", a->port), 0);
	RUN_UNTIL(h, b->nrx == 5, 3000);
	assert_int_equal(b->nrx, 5);
	for (uint32_t i = 0; i < 5; i++)
		assert_int_equal(b->rx[i].seq, i);
	assert_int_equal(stats_of(a).connects, 1);
}

static void on_tick(uv_timer_t *t)
{
	struct ticker *k = t->data;
	if (k->from->net)
		send_seq(k->from, k->to, k->next_seq++, 64);
}

/* A peer that restarts on the same port gets traffic again. */
static void test_peer_restart(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	struct ticker *k = &h->ticker;
	k->from = a;
	k->to = b->id;
	uv_timer_init(&h->loop, &k->timer);
	k->timer.data = k;
	k->on = 1;
	uv_timer_start(&k->timer, on_tick, 2, 2);
	RUN_UNTIL(h, b->nrx >= 10, 3000);
	assert_true(b->nrx >= 10);
	int port = b->port;
	node_close(b);
	run_for(h, 30);
	node_open(b, port);
	assert_int_equal(peer_net_add_peer(b->net, a->id, "127.0.0.1", a->port), 0);
	RUN_UNTIL(h, b->nrx >= 10, 3000);
	assert_true(b->nrx >= 10);
	for (size_t i = 1; i < b->nrx; i++)
		assert_true(b->rx[i].seq > b->rx[i - 1].seq);
	assert_int_equal(b->corrupt, 0);
	struct peer_net_stats sa = stats_of(a);
	assert_true(sa.reconnects >= 1);
	assert_true(sa.disconnects >= 1);
}

/* link_down: false until a dial fails, true at once when the peer's
 * process goes away (no failure detector timeout), false again once a
 * connection comes back; a partition does not make a link look down. */
static void test_peer_link_down(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	assert_false(peer_net_link_down(a->net, 999));
	assert_false(peer_net_link_down(a->net, b->id)); /* not dialled yet */
	send_seq(a, b->id, 0, 64);
	RUN_UNTIL(h, b->nrx == 1, 3000);
	assert_false(peer_net_link_down(a->net, b->id));
	uint64_t pid[] = {b->id};
	peer_net_partition(a->net, pid, 1);
	send_seq(a, b->id, 1, 64);
	run_for(h, 20);
	assert_false(peer_net_link_down(a->net, b->id));
	peer_net_heal(a->net);
	int port = b->port;
	node_close(b);
	RUN_UNTIL(h, peer_net_link_down(a->net, b->id), 1000);
	assert_true(peer_net_link_down(a->net, b->id));
	/* Dials to a closed port keep failing: still down. */
	send_seq(a, b->id, 2, 64);
	run_for(h, 50);
	assert_true(peer_net_link_down(a->net, b->id));
	node_open(b, port);
	assert_int_equal(peer_net_add_peer(b->net, a->id, "127.0.0.1", a->port), 0);
	send_seq(a, b->id, 3, 64);
	RUN_UNTIL(h, !peer_net_link_down(a->net, b->id) && b->nrx >= 1, 3000);
	assert_false(peer_net_link_down(a->net, b->id));
}

static void test_peer_drop_all(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	struct peer_faults f = {.drop_ppm = 1000000};
	assert_int_equal(peer_net_set_faults(a->net, 0, &f), 0);
	for (uint32_t i = 0; i < 100; i++)
		send_seq(a, b->id, i, 32);
	run_for(h, 100);
	assert_int_equal(b->nrx, 0);
	assert_int_equal(stats_of(a).fault_dropped, 100);
	peer_net_heal(a->net);
	send_seq(a, b->id, 100, 32);
	RUN_UNTIL(h, b->nrx == 1, 2000);
	assert_int_equal(b->nrx, 1);
	assert_int_equal(b->rx[0].seq, 100);
}

static size_t count_from(const struct node *n, uint64_t from)
{
	size_t c = 0;
	for (size_t i = 0; i < n->nrx; i++)
		c += n->rx[i].from == from;
	return c;
}

/* A partition on A blocks A->B (on send) and B->A (on receive), leaves
 * A<->C alone, and heal restores A<->B. */
static void test_peer_partition_and_heal(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1], *c = &h->nodes[2];
	open_mesh(h, 3);
	uint64_t cut[] = {b->id, a->id}; /* own id is ignored */
	peer_net_partition(a->net, cut, 2);
	for (uint32_t i = 0; i < 20; i++) {
		send_seq(a, b->id, i, 16);
		send_seq(b, a->id, i, 16);
		send_seq(a, c->id, i, 16);
		send_seq(c, a->id, i, 16);
	}
	RUN_UNTIL(h,
		  count_from(c, a->id) == 20 && count_from(a, c->id) == 20 &&
		      stats_of(b).frames_sent == 20 && stats_of(a).partition_dropped == 40,
		  3000);
	assert_int_equal(count_from(c, a->id), 20);
	assert_int_equal(count_from(a, c->id), 20);
	assert_int_equal(count_from(b, a->id), 0);
	assert_int_equal(count_from(a, b->id), 0);
	/* 20 refused on send, 20 that B did send dropped on receipt. */
	assert_int_equal(stats_of(b).frames_sent, 20);
	assert_int_equal(stats_of(a).partition_dropped, 40);

	peer_net_heal(a->net);
	send_seq(a, b->id, 100, 16);
	send_seq(b, a->id, 100, 16);
	RUN_UNTIL(h, count_from(b, a->id) == 1 && count_from(a, b->id) == 1, 3000);
	assert_int_equal(count_from(b, a->id), 1);
	assert_int_equal(count_from(a, b->id), 1);
}

static void test_peer_duplicate(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	struct peer_faults f = {.dup_ppm = 1000000};
	assert_int_equal(peer_net_set_faults(a->net, b->id, &f), 0);
	for (uint32_t i = 0; i < 50; i++)
		send_seq(a, b->id, i, 24);
	RUN_UNTIL(h, b->nrx == 100, 3000);
	run_for(h, 20); /* nothing more arrives */
	assert_int_equal(b->nrx, 100);
	for (uint32_t i = 0; i < 50; i++) {
		assert_int_equal(b->rx[2 * i].seq, i);
		assert_int_equal(b->rx[2 * i + 1].seq, i);
	}
	assert_int_equal(stats_of(a).fault_duplicated, 50);
}

/* Delayed frames arrive no sooner than delay_ms after they were sent (on
 * the loop's clock); faults set for B do not touch C. */
static void test_peer_delay(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1], *c = &h->nodes[2];
	open_mesh(h, 3);
	/* Connect first, so the delay is all that is measured. */
	send_seq(a, b->id, 0, 8);
	send_seq(a, c->id, 0, 8);
	RUN_UNTIL(h, b->nrx == 1 && c->nrx == 1, 2000);
	struct peer_faults f = {.delay_ms = 60, .delay_jitter_ms = 20};
	assert_int_equal(peer_net_set_faults(a->net, b->id, &f), 0);
	uv_update_time(&h->loop);
	uint64_t t0 = uv_now(&h->loop);
	for (uint32_t i = 1; i <= 20; i++) {
		send_seq(a, b->id, i, 8);
		send_seq(a, c->id, i, 8);
	}
	RUN_UNTIL(h, b->nrx == 21 && c->nrx == 21, 3000);
	assert_int_equal(b->nrx, 21);
	assert_int_equal(c->nrx, 21);
	for (size_t i = 1; i < 21; i++)
		assert_true(b->rx[i].at_ms >= t0 + 60);
	struct peer_net_stats sa = stats_of(a);
	assert_int_equal(sa.fault_delayed, 20);
	/* Nothing held back toward C. */
	for (size_t i = 1; i < 21; i++)
		assert_int_equal(c->rx[i].seq, i);
}

/* The reorder hook changes the order but loses nothing. */
static void test_peer_reorder(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	struct peer_faults f = {.reorder_ppm = 300000};
	assert_int_equal(peer_net_set_faults(a->net, 0, &f), 0);
	const uint32_t n = 300;
	for (uint32_t i = 0; i < n; i++)
		send_seq(a, b->id, i, 16);
	RUN_UNTIL(h, b->nrx == n, 3000);
	assert_int_equal(b->nrx, n);
	uint8_t *seen = calloc(n, 1);
	size_t inversions = 0;
	for (size_t i = 0; i < n; i++) {
		assert_true(b->rx[i].seq < n);
		assert_false(seen[b->rx[i].seq]);
		seen[b->rx[i].seq] = 1;
		if (i > 0 && b->rx[i].seq < b->rx[i - 1].seq)
			inversions++;
	}
	free(seen);
	assert_true(inversions > 0);
	assert_true(stats_of(a).fault_reordered > 0);
}

/* A full queue drops frames and counts them rather than growing. */
static void test_peer_queue_limit(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	int port = free_port(h);
	a->max_queue_bytes = 8192;
	node_open(a, 0);
	assert_int_equal(peer_net_add_peer(a->net, b->id, "127.0.0.1", port), 0);
	for (uint32_t i = 0; i < 100; i++)
		send_seq(a, b->id, i, 1000);
	/* 8 frames of 1018 bytes fit in 8192. */
	assert_int_equal(stats_of(a).frames_dropped, 92);
	node_open(b, port);
	RUN_UNTIL(h, b->nrx == 8, 3000);
	assert_int_equal(b->nrx, 8);
	for (uint32_t i = 0; i < 8; i++)
		assert_int_equal(b->rx[i].seq, i);
	/* Removing a peer loses what is queued for it, without leaking. */
	for (uint32_t i = 0; i < 3; i++)
		send_seq(a, b->id, i, 1000);
	assert_int_equal(peer_net_remove_peer(a->net, b->id), 0);
	assert_int_equal(peer_net_send(a->net, b->id, 1, "x", 1), SP_ERR_NOTFOUND);
	run_for(h, 10);
	assert_true(stats_of(a).frames_lost >= 3);
}

/* The receive callback may close its own transport mid-batch. */
static void test_peer_close_from_callback(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	b->close_on_frame = 1;
	for (uint32_t i = 0; i < 100; i++)
		send_seq(a, b->id, i, 16);
	RUN_UNTIL(h, b->nrx == 1 && stats_of(a).disconnects == 1, 3000);
	run_for(h, 20);
	assert_int_equal(b->nrx, 1);
	assert_null(b->net);
	assert_int_equal(stats_of(a).disconnects, 1);
}

/* A raw TCP client that writes some bytes and waits to be closed. */
struct raw_client {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	char rbuf[256];
	struct sp_buf data;
	int eof, closed;
};

static void on_raw_close(uv_handle_t *hd)
{
	struct raw_client *r = hd->data;
	r->closed = 1;
}

static void on_raw_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	struct raw_client *r = hd->data;
	(void)suggested;
	buf->base = r->rbuf;
	buf->len = sizeof(r->rbuf);
}

static void on_raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct raw_client *r = s->data;
	(void)buf;
	if (nread < 0 && !r->eof) {
		r->eof = 1;
		uv_close((uv_handle_t *)&r->tcp, on_raw_close);
	}
}

static void on_raw_write(uv_write_t *req, int status)
{
	(void)req;
	(void)status;
}

static void on_raw_connect(uv_connect_t *req, int status)
{
	struct raw_client *r = req->data;
	assert_int_equal(status, 0);
	uv_buf_t b = uv_buf_init(sp_buf_begin(&r->data), (unsigned)r->data.len);
	assert_int_equal(uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, on_raw_write), 0);
	assert_int_equal(uv_read_start((uv_stream_t *)&r->tcp, on_raw_alloc, on_raw_read), 0);
}

/* raw_send connects to port, writes the bytes in data (taken over) and
 * waits for the node to close the connection. */
static void raw_send(struct harness *h, int port, struct sp_buf *data)
{
	struct raw_client r;
	memset(&r, 0, sizeof(r));
	r.data = *data;
	uv_tcp_init(&h->loop, &r.tcp);
	r.tcp.data = &r;
	r.creq.data = &r;
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", port, &sa);
	assert_int_equal(uv_tcp_connect(&r.creq, &r.tcp, (struct sockaddr *)&sa, on_raw_connect),
			 0);
	RUN_UNTIL(h, r.closed, 3000);
	int closed = r.closed;
	if (!closed) {
		uv_close((uv_handle_t *)&r.tcp, on_raw_close);
		RUN_UNTIL(h, r.closed, 1000);
	}
	sp_buf_free(&r.data);
	assert_true(closed);
}

/* Garbage, corrupt frames and wrong hellos get the connection closed and
 * counted; the node goes on serving its real peers. */
static void test_peer_garbage_closes_connection(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	open_mesh(h, 2);
	struct sp_buf d;
	uint64_t s = h->seed;
	FILE *log = tu_log_capture_begin(SP_LOG_WARN);

	sp_buf_init(&d);
	sp_buf_append_str(&d, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	raw_send(h, b->port, &d);

	sp_buf_init(&d);
	for (int i = 0; i < 4096; i++) {
		uint8_t byte = (uint8_t)rnd(&s);
		sp_buf_append(&d, &byte, 1);
	}
	/* Make sure it is refused at the first frame: a short length. */
	memset(sp_buf_begin(&d), 0, 4);
	raw_send(h, b->port, &d);

	/* A good hello, then a frame with a flipped payload bit. */
	sp_buf_init(&d);
	frame_encode_hello(&d, a->id, b->id, PEER_CLUSTER_DEFAULT);
	size_t at = d.len;
	frame_encode(&d, 1, a->id, "hello there", 11);
	sp_buf_begin(&d)[at + FRAME_HEADER_SIZE + 3] ^= 0x10;
	raw_send(h, b->port, &d);

	/* Data before any hello. */
	sp_buf_init(&d);
	frame_encode(&d, 1, a->id, "abcd", 4);
	raw_send(h, b->port, &d);

	/* Hellos from another cluster and for another node. */
	sp_buf_init(&d);
	frame_encode_hello(&d, a->id, b->id, "another-cluster");
	raw_send(h, b->port, &d);
	sp_buf_init(&d);
	frame_encode_hello(&d, a->id, 99, PEER_CLUSTER_DEFAULT);
	raw_send(h, b->port, &d);

	/* A frame claiming another sender than the hello's. */
	sp_buf_init(&d);
	frame_encode_hello(&d, a->id, b->id, PEER_CLUSTER_DEFAULT);
	frame_encode(&d, 1, 77, "abcd", 4);
	raw_send(h, b->port, &d);

	/* Each refusal is one warning naming its reason. */
	char *text = tu_log_capture_end(log);
	static const char *const reasons[] = {
	    "frame too large",
	    "frame too short",
	    "bad checksum",
	    "first frame is not a hello",
	    "hello from another cluster",
	    "hello meant for another node id",
	    "frame sender differs",
	};
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		assert_non_null(strstr(text, reasons[i]));
	assert_non_null(strstr(text, " warn "));
	free(text);
	assert_int_equal(stats_of(b).decode_errors, 7);
	assert_int_equal(b->nrx, 0);
	send_seq(a, b->id, 1, 40);
	RUN_UNTIL(h, b->nrx == 1, 2000);
	assert_int_equal(b->nrx, 1);
	assert_int_equal(b->rx[0].seq, 1);
}

/* A node of another cluster is refused by the acceptor and backs off. */
static void test_peer_refuses_other_cluster(void **state)
{
	struct harness *h = *state;
	struct node *a = &h->nodes[0], *b = &h->nodes[1];
	a->cluster = "blue";
	b->cluster = "green";
	open_mesh(h, 2);
	for (uint32_t i = 0; i < 5; i++)
		send_seq(a, b->id, i, 16);
	RUN_UNTIL(h, stats_of(b).decode_errors >= 1 && stats_of(a).disconnects >= 1, 3000);
	assert_int_equal(stats_of(b).decode_errors, 1);
	assert_int_equal(stats_of(a).disconnects, 1);
	/* The next send redials, and is refused again. */
	send_seq(a, b->id, 5, 16);
	RUN_UNTIL(h, stats_of(b).decode_errors >= 2, 3000);
	assert_int_equal(stats_of(b).decode_errors, 2);
	assert_int_equal(b->nrx, 0);
	assert_int_equal(stats_of(b).accepts, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frame_roundtrip_random_chunks),
	    cmocka_unit_test(test_frame_empty_payload),
	    cmocka_unit_test(test_frame_every_bit_flip_detected),
	    cmocka_unit_test(test_frame_bad_version_early),
	    cmocka_unit_test(test_frame_length_limits),
	    cmocka_unit_test(test_frame_hello),
	    cmocka_unit_test_setup_teardown(test_peer_api_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_delivers_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_large_frames, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_batches_small_frames, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_late_start, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_link_down, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_drop_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_partition_and_heal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_duplicate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_delay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_reorder, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_queue_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_close_from_callback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_garbage_closes_connection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_refuses_other_cluster, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
