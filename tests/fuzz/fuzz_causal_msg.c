/*
 * fuzz_causal_msg: libFuzzer target for the causal engine's message
 * handling (causal_recv: UPDATES, ACK with its stamp and echo, PEEK,
 * SEEN), which reads bytes from peers.
 *
 * One engine (node 1 of 1, 2, 3) is opened once, on a real store in a
 * temporary directory, with a manual clock. Each input's first byte picks
 * the sender (node 2 or 3) and whether a peek is pending first; the rest,
 * copied to a buffer of exactly its size so ASan sees any read past the
 * end, is handed to causal_recv, then the clock moves on, the engine ticks
 * (deadlines, acks, resends) and commits. Bad messages must be dropped:
 * any crash, sanitizer report or broken invariant (a peek answered twice,
 * more answers than peers, the applied vector going backwards) is a
 * failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "engine/causal/causal.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_causal_msg: check failed: %s (line %d)\n", #cond,    \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static struct causal_engine *engine;
static struct sp_clock_manual clk;
static char dir[64];

static int drop_send(void *ctx, uint64_t to, const void *p, size_t len)
{
	(void)ctx, (void)to, (void)p, (void)len;
	return 0;
}

struct peek_seen {
	int calls;
	size_t n;
};

static void on_peek(void *arg, int err, const struct causal_version *v, size_t n)
{
	struct peek_seen *ps = arg;
	(void)err, (void)v;
	ps->calls++;
	ps->n = n;
}

static void cleanup(void)
{
	causal_close(engine);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_causal_msg: could not remove %s\n", dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	snprintf(dir, sizeof(dir), "/tmp/spectra-fuzz-causal-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	sp_clock_manual_init(&clk, 1700000000000ull);
	static const uint64_t nodes[] = {1, 2, 3};
	struct causal_config c = {
	    .self_id = 1,
	    .dir = dir,
	    .map_size = 256ull << 20,
	    .clock = &clk.clock,
	    .ack_ms = 20,
	    .resend_ms = 100,
	    .max_pending = 10000,
	    .send = drop_send,
	};
	CHECK(causal_open(&engine, &c, nodes, 3) == 0);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint64_t from = (data[0] & 1) ? 3 : 2;
	bool peek = (data[0] & 2) != 0;
	struct vclock before = *causal_applied(engine);
	struct peek_seen ps = {0};
	if (peek)
		CHECK(causal_peek_peers(engine, "cz:k", 4, 5, on_peek, &ps) == 0);
	uint8_t *msg = malloc(size - 1 ? size - 1 : 1);
	CHECK(msg != NULL);
	memcpy(msg, data + 1, size - 1);
	causal_recv(engine, from, msg, size - 1);
	free(msg);
	CHECK(ps.calls <= 1 && ps.n <= 2);
	/* The peek's deadline passes, the engine ticks and commits. */
	sp_clock_manual_advance(&clk, 10);
	causal_tick(engine);
	(void)causal_commit(engine); /* a full store is not the decoder's fault */
	if (peek)
		CHECK(ps.calls == 1);
	CHECK(vclock_compare(&before, causal_applied(engine)) != VCLOCK_AFTER);
	return 0;
}
