/*
 * frame: encoder, hello frames and the incremental decoder. The format is
 * described in frame.h.
 */
#include "net/frame.h"

#include <string.h>
#include <zlib.h>

#include "common/endian.h"
#include "common/err.h"

/* Offsets of the header fields (frame.h). */
#define OFF_VERSION 4
#define OFF_CHANNEL 5
#define OFF_CRC	    6
#define OFF_SENDER  10
#define BODY_MIN    (FRAME_HEADER_SIZE - FRAME_LEN_SIZE)

/* A decoder whose buffer grew past this for a large frame gives the memory
 * back once it is empty again, so one big frame does not pin it forever. */
#define DECODER_KEEP_CAP ((size_t)1 << 20)

/* checksum covers version and channel, the sender id and the payload: every
 * byte after the length field except the checksum field itself. */
static uint32_t checksum(const uint8_t *frame, const uint8_t *payload, size_t len)
{
	uLong crc = crc32_z(0L, Z_NULL, 0);
	crc = crc32_z(crc, frame + OFF_VERSION, 2);
	crc = crc32_z(crc, frame + OFF_SENDER, 8);
	if (len > 0)
		crc = crc32_z(crc, payload, len);
	return (uint32_t)crc;
}

/* begin_frame appends a header for a payload of len bytes, leaving the
 * checksum to be filled in, and returns where the header starts. */
static uint8_t *begin_frame(struct sp_buf *out, uint8_t channel, uint64_t sender, size_t len)
{
	sp_buf_reserve(out, FRAME_HEADER_SIZE + len);
	uint8_t *h = (uint8_t *)sp_buf_end(out);
	sp_put_le32(h, (uint32_t)(BODY_MIN + len));
	h[OFF_VERSION] = FRAME_VERSION;
	h[OFF_CHANNEL] = channel;
	sp_put_le32(h + OFF_CRC, 0);
	sp_put_le64(h + OFF_SENDER, sender);
	return h;
}

int frame_encode(struct sp_buf *out, uint8_t channel, uint64_t sender, const void *payload,
		 size_t len)
{
	if (len > FRAME_MAX_PAYLOAD_LIMIT)
		return SP_ERR_TOOBIG;
	uint8_t *h = begin_frame(out, channel, sender, len);
	if (len > 0)
		memcpy(h + FRAME_HEADER_SIZE, payload, len);
	sp_put_le32(h + OFF_CRC, checksum(h, h + FRAME_HEADER_SIZE, len));
	sp_buf_commit(out, FRAME_HEADER_SIZE + len);
	return 0;
}

int frame_encode_hello(struct sp_buf *out, uint64_t from, uint64_t to, const char *cluster)
{
	size_t name_len = strlen(cluster);
	if (name_len > FRAME_CLUSTER_MAX)
		return SP_ERR_INVAL;
	size_t len = FRAME_HELLO_MAGIC_SZ + 8 + 1 + name_len;
	uint8_t *h = begin_frame(out, FRAME_CHANNEL_HELLO, from, len);
	uint8_t *p = h + FRAME_HEADER_SIZE;
	memcpy(p, FRAME_HELLO_MAGIC, FRAME_HELLO_MAGIC_SZ);
	sp_put_le64(p + FRAME_HELLO_MAGIC_SZ, to);
	p[FRAME_HELLO_MAGIC_SZ + 8] = (uint8_t)name_len;
	memcpy(p + FRAME_HELLO_MAGIC_SZ + 9, cluster, name_len);
	sp_put_le32(h + OFF_CRC, checksum(h, p, len));
	sp_buf_commit(out, FRAME_HEADER_SIZE + len);
	return 0;
}

int frame_parse_hello(const struct frame *f, struct frame_hello *out)
{
	const size_t fixed = FRAME_HELLO_MAGIC_SZ + 8 + 1;
	if (f->channel != FRAME_CHANNEL_HELLO || f->len < fixed ||
	    memcmp(f->payload, FRAME_HELLO_MAGIC, FRAME_HELLO_MAGIC_SZ) != 0)
		return SP_ERR_PROTO;
	size_t name_len = f->payload[FRAME_HELLO_MAGIC_SZ + 8];
	if (f->len != fixed + name_len)
		return SP_ERR_PROTO;
	out->from = f->sender;
	out->to = sp_get_le64(f->payload + FRAME_HELLO_MAGIC_SZ);
	out->cluster = (const char *)f->payload + fixed;
	out->cluster_len = name_len;
	return 0;
}

void frame_decoder_init(struct frame_decoder *d, size_t max_payload)
{
	if (max_payload == 0)
		max_payload = FRAME_MAX_PAYLOAD_DEFAULT;
	if (max_payload > FRAME_MAX_PAYLOAD_LIMIT)
		max_payload = FRAME_MAX_PAYLOAD_LIMIT;
	d->max_payload = max_payload;
	sp_buf_init(&d->in);
	d->done = 0;
	d->err = 0;
	d->why = NULL;
}

void frame_decoder_close(struct frame_decoder *d)
{
	if (d == NULL)
		return;
	sp_buf_free(&d->in);
	d->done = 0;
}

/* drop_done forgets the frame returned last (its payload pointer dies). */
static void drop_done(struct frame_decoder *d)
{
	if (d->done == 0)
		return;
	sp_buf_consume(&d->in, d->done);
	d->done = 0;
	if (d->in.len == 0 && d->in.cap > DECODER_KEEP_CAP)
		sp_buf_free(&d->in);
}

void frame_decoder_feed(struct frame_decoder *d, const void *data, size_t n)
{
	drop_done(d);
	sp_buf_append(&d->in, data, n);
}

void frame_decoder_reserve(struct frame_decoder *d, size_t want, void **base, size_t *len)
{
	drop_done(d);
	size_t have = d->in.len;
	if (have >= FRAME_LEN_SIZE && d->err == 0) {
		/* Room for the rest of the frame being received, but never more
		 * than twice what has arrived: a peer cannot make us allocate a
		 * large buffer by sending only a length. */
		uint64_t total =
		    (uint64_t)FRAME_LEN_SIZE + sp_get_le32((const uint8_t *)sp_buf_begin(&d->in));
		if (total > have) {
			uint64_t rest = total - have;
			if (rest > have)
				rest = have;
			if (rest > want)
				want = (size_t)rest;
		}
	}
	sp_buf_reserve(&d->in, want);
	*base = sp_buf_end(&d->in);
	*len = d->in.cap - d->in.start - d->in.len;
}

void frame_decoder_commit(struct frame_decoder *d, size_t n)
{
	sp_buf_commit(&d->in, n);
}

static int fail(struct frame_decoder *d, const char *why)
{
	d->err = SP_ERR_PROTO;
	d->why = why;
	return d->err;
}

int frame_decoder_next(struct frame_decoder *d, struct frame *out)
{
	if (d->err)
		return d->err;
	drop_done(d);
	size_t have = d->in.len;
	if (have < FRAME_LEN_SIZE)
		return SP_ERR_AGAIN;
	const uint8_t *h = (const uint8_t *)sp_buf_begin(&d->in);
	uint32_t body = sp_get_le32(h);
	/* Checked in this order so the reason never depends on chunking: the
	 * length is judged from 4 bytes, the version from the 5th. */
	if (body < BODY_MIN)
		return fail(d, "frame too short");
	if ((size_t)body - BODY_MIN > d->max_payload)
		return fail(d, "frame too large");
	if (have > OFF_VERSION && h[OFF_VERSION] != FRAME_VERSION)
		return fail(d, "bad version");
	if (have < (size_t)FRAME_LEN_SIZE + body)
		return SP_ERR_AGAIN;
	size_t len = (size_t)body - BODY_MIN;
	const uint8_t *payload = h + FRAME_HEADER_SIZE;
	if (sp_get_le32(h + OFF_CRC) != checksum(h, payload, len))
		return fail(d, "bad checksum");
	out->channel = h[OFF_CHANNEL];
	out->sender = sp_get_le64(h + OFF_SENDER);
	out->payload = payload;
	out->len = len;
	d->done = (size_t)FRAME_LEN_SIZE + body;
	return 0;
}

size_t frame_decoder_buffered(const struct frame_decoder *d)
{
	return d->in.len - d->done;
}
