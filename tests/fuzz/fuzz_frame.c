/*
 * fuzz_frame: libFuzzer target for the peer frame codec (src/net/frame.c).
 *
 * Input: byte 0 picks how the stream is chunked (as in fuzz_resp), byte 1
 * holds flags -- bit 0: recompute the checksum of every frame the stream
 * describes, so the fuzzer reaches valid frames and hellos without having
 * to guess CRCs; bits 1..7: the decoder's max_payload (0: the default,
 * else n * 16 bytes, so the limit path is reached). The rest is the byte
 * stream, fed
 *  - all at once, and
 *  - in chunks, alternating frame_decoder_feed and reserve/commit,
 * and both runs must give the same frames and end the same way (the same
 * error and reason, or SP_ERR_AGAIN with the same bytes left over). Every
 * frame must respect the limit, and re-encoding it must give back exactly
 * the bytes it was decoded from; a hello that parses must re-encode the
 * same way. Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "net/frame.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_frame: %s:%d: check failed: %s\n", __FILE__,         \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

struct outcome {
	uint64_t hash;
	size_t count;
	size_t consumed; /* bytes of the stream inside returned frames */
	int rc;
	const char *why;
	size_t left; /* frame_decoder_buffered at the end */
};

/* check_frame verifies one frame against the stream it came from, at the
 * offset where it must have started. */
static void check_frame(const struct frame *f, const uint8_t *stream, size_t size, size_t off,
			size_t max_payload)
{
	CHECK(f->payload != NULL);
	CHECK(f->len <= max_payload);
	size_t n = frame_encoded_size(f->len);
	CHECK(off <= size && n <= size - off);
	struct sp_buf again;
	sp_buf_init(&again);
	CHECK(frame_encode(&again, f->channel, f->sender, f->payload, f->len) == 0);
	CHECK(again.len == n);
	CHECK(memcmp(sp_buf_begin(&again), stream + off, n) == 0);
	sp_buf_clear(&again);

	struct frame_hello h;
	if (frame_parse_hello(f, &h) == 0) {
		CHECK(f->channel == FRAME_CHANNEL_HELLO);
		CHECK(h.from == f->sender);
		CHECK(h.cluster_len <= FRAME_CLUSTER_MAX);
		CHECK(h.cluster >= (const char *)f->payload &&
		      h.cluster + h.cluster_len == (const char *)f->payload + f->len);
		if (memchr(h.cluster, '\0', h.cluster_len) == NULL) {
			char name[FRAME_CLUSTER_MAX + 1];
			memcpy(name, h.cluster, h.cluster_len);
			name[h.cluster_len] = '\0';
			CHECK(frame_encode_hello(&again, h.from, h.to, name) == 0);
			CHECK(again.len == n);
			CHECK(memcmp(sp_buf_begin(&again), stream + off, n) == 0);
		}
	}
	sp_buf_free(&again);
}

static void take_frames(struct frame_decoder *d, struct outcome *o, const uint8_t *stream,
			size_t size)
{
	struct frame f;
	int rc;
	while ((rc = frame_decoder_next(d, &f)) == 0) {
		check_frame(&f, stream, size, o->consumed, d->max_payload);
		o->hash = mix(o->hash, &f.channel, sizeof(f.channel));
		o->hash = mix(o->hash, &f.sender, sizeof(f.sender));
		o->hash = mix(o->hash, &f.len, sizeof(f.len));
		o->hash = mix(o->hash, f.payload, f.len);
		o->consumed += frame_encoded_size(f.len);
		o->count++;
	}
	CHECK(rc == SP_ERR_AGAIN || rc == SP_ERR_PROTO);
	o->rc = rc;
	o->why = d->why;
	if (rc == SP_ERR_PROTO)
		CHECK(d->why != NULL);
}

/* run decodes the stream; chunked when ctl says so. */
static struct outcome run(const uint8_t *stream, size_t size, size_t max_payload, int chunked,
			  uint8_t ctl)
{
	struct outcome o = {.hash = 14695981039346656037ull, .rc = SP_ERR_AGAIN};
	struct frame_decoder d;
	frame_decoder_init(&d, max_payload);
	unsigned bound = ctl == 255 ? 0 : 1u + (ctl % 64u);
	size_t off = 0, k = ctl;
	while (off < size) {
		size_t n = size - off;
		if (chunked && bound && size > 0) {
			size_t c = 1 + stream[k++ % size] % bound;
			n = c < n ? c : n;
		}
		if (chunked && (k & 1)) {
			void *base;
			size_t room;
			frame_decoder_reserve(&d, n, &base, &room);
			CHECK(room >= n);
			memcpy(base, stream + off, n);
			frame_decoder_commit(&d, n);
		} else {
			frame_decoder_feed(&d, stream + off, n);
		}
		off += n;
		take_frames(&d, &o, stream, size);
		if (o.rc == SP_ERR_PROTO)
			break;
	}
	if (size == 0)
		take_frames(&d, &o, stream, size);
	o.left = frame_decoder_buffered(&d);
	if (o.rc == SP_ERR_AGAIN)
		CHECK(o.consumed + o.left == size);
	frame_decoder_close(&d);
	return o;
}

/* fix_checksums rewrites the checksum of every whole frame the stream
 * describes, stopping at the first length that does not fit. */
static void fix_checksums(uint8_t *s, size_t size)
{
	size_t off = 0;
	struct sp_buf tmp;
	sp_buf_init(&tmp);
	while (size - off >= FRAME_HEADER_SIZE) {
		uint8_t *h = s + off;
		uint32_t body = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
				(uint32_t)h[3] << 24;
		if (body < FRAME_HEADER_SIZE - FRAME_LEN_SIZE || body > size - off - FRAME_LEN_SIZE)
			break;
		size_t len = body - (FRAME_HEADER_SIZE - FRAME_LEN_SIZE);
		uint64_t sender = 0;
		for (int i = 7; i >= 0; i--)
			sender = sender << 8 | h[10 + i];
		sp_buf_clear(&tmp);
		/* The checksum also covers the version byte: encode with version
		 * 1 only when the stream says 1. */
		CHECK(frame_encode(&tmp, h[5], sender, h + FRAME_HEADER_SIZE, len) == 0);
		if (h[4] == FRAME_VERSION)
			memcpy(h + 6, sp_buf_begin(&tmp) + 6, 4);
		off += FRAME_HEADER_SIZE + len;
	}
	sp_buf_free(&tmp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t ctl = data[0], flags = data[1];
	size_t n = size - 2;
	/* An exact-size copy, so ASan sees any read past the end. */
	uint8_t *stream = malloc(n ? n : 1);
	CHECK(stream != NULL);
	if (n)
		memcpy(stream, data + 2, n);
	if (flags & 1)
		fix_checksums(stream, n);
	size_t max_payload = (size_t)(flags >> 1) * 16;
	struct outcome whole = run(stream, n, max_payload, 0, ctl);
	struct outcome parts = run(stream, n, max_payload, 1, ctl);
	CHECK(whole.hash == parts.hash);
	CHECK(whole.count == parts.count);
	CHECK(whole.consumed == parts.consumed);
	CHECK(whole.rc == parts.rc);
	CHECK(whole.why == parts.why ||
	      (whole.why && parts.why && strcmp(whole.why, parts.why) == 0));
	if (whole.rc == SP_ERR_AGAIN)
		CHECK(whole.left == parts.left);
	free(stream);
	return 0;
}
