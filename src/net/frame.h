/*
 * frame: the codec for frames between spectra nodes (the peer transport's
 * wire format).
 *
 * Pure: no I/O, no clock, no globals. The codec knows nothing of what a
 * payload means; a channel byte says which engine a frame is for, and the
 * engines own their payloads' encodings.
 *
 * A frame on the wire (integers little-endian):
 *
 *   offset size field
 *        0    4 body length: the bytes after this field, so
 *                FRAME_HEADER_SIZE - 4 + payload length
 *        4    1 format version, FRAME_VERSION (1)
 *        5    1 channel: FRAME_CHANNEL_HELLO (0), FRAME_CHANNEL_RAFT (1),
 *                others reserved for later engines
 *        6    4 checksum: zlib's CRC-32 (the IEEE polynomial) of bytes
 *                4..5 (version, channel), then 10..17 (sender id), then
 *                the payload -- every byte after the length field except
 *                the checksum itself, so a flipped bit in the header is
 *                caught as well as one in the payload
 *       10    8 sender: the sending node's id (non-zero)
 *       18    n payload (n = body length - 14; may be 0)
 *
 * The checksum covers the header bytes besides the payload on purpose: a
 * corrupted sender id or channel would otherwise deliver a frame to the
 * wrong engine as if from the wrong node.
 *
 * Every connection opens with one hello frame (channel 0) from the dialer.
 * Its sender field is the dialer's id and its payload is
 *
 *   0  8 magic "spectra\0"
 *   8  8 the id the dialer means to reach (so a misconfigured address is
 *        refused rather than talked to as the wrong node)
 *  16  1 cluster name length (0..FRAME_CLUSTER_MAX)
 *  17  k cluster name bytes
 *
 * so a stray connection -- another program, another cluster, a node
 * dialing the wrong address -- is refused before any frame reaches an
 * engine.
 */
#ifndef SP_NET_FRAME_H
#define SP_NET_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define FRAME_VERSION	     1
#define FRAME_HEADER_SIZE    18 /* bytes before the payload */
#define FRAME_LEN_SIZE	     4	/* the body length field */
#define FRAME_CHANNEL_HELLO  0
#define FRAME_CHANNEL_RAFT   1
#define FRAME_CLUSTER_MAX    255
#define FRAME_HELLO_MAGIC    "spectra\0"
#define FRAME_HELLO_MAGIC_SZ 8
/* The default and the largest payload limit a decoder may have. The body
 * length field is a u32, so a payload is at most 2^32 - 1 - 14 bytes. */
#define FRAME_MAX_PAYLOAD_DEFAULT ((size_t)64 << 20)
#define FRAME_MAX_PAYLOAD_LIMIT	  ((size_t)UINT32_MAX - (FRAME_HEADER_SIZE - FRAME_LEN_SIZE))

/* One decoded frame. payload points into the decoder's buffer (or is a
 * pointer to a static empty byte when len == 0, never NULL). */
struct frame {
	uint8_t channel;
	uint64_t sender;
	const uint8_t *payload;
	size_t len;
};

/* The fields of a hello frame's payload. cluster points into the frame's
 * payload (not NUL-terminated) and lives as long as the frame does. */
struct frame_hello {
	uint64_t from; /* the frame's sender: the dialer */
	uint64_t to;   /* the node the dialer means to reach */
	const char *cluster;
	size_t cluster_len;
};

/*
 * frame_encode appends one frame to out.
 *   out      buffer appended to (borrowed)
 *   channel  any value; FRAME_CHANNEL_HELLO is for frame_encode_hello
 *   sender   the sending node's id
 *   payload  len bytes copied (may be NULL when len is 0)
 * Returns 0, or SP_ERR_TOOBIG when len > FRAME_MAX_PAYLOAD_LIMIT (out is
 * then unchanged).
 */
int frame_encode(struct sp_buf *out, uint8_t channel, uint64_t sender, const void *payload,
		 size_t len);

/* frame_encoded_size is the number of bytes frame_encode appends for a
 * payload of len bytes. */
static inline size_t frame_encoded_size(size_t len)
{
	return FRAME_HEADER_SIZE + len;
}

/*
 * frame_encode_hello appends a hello frame from node `from` to node `to` of
 * cluster `cluster` (a NUL-terminated string, borrowed). Returns 0, or
 * SP_ERR_INVAL when cluster is longer than FRAME_CLUSTER_MAX bytes.
 */
int frame_encode_hello(struct sp_buf *out, uint64_t from, uint64_t to, const char *cluster);

/*
 * frame_parse_hello reads the hello carried by f. Returns 0 and fills *out
 * (borrowing from f's payload), or SP_ERR_PROTO when f is not on channel 0,
 * its magic is wrong, or its length disagrees with the cluster name length.
 * It does not judge the ids or the name: that is the transport's policy.
 */
int frame_parse_hello(const struct frame *f, struct frame_hello *out);

/*
 * The incremental decoder. Bytes are fed in chunks of any size; complete
 * frames come out one at a time, pointing into the decoder's buffer.
 * Fields are private except through the functions below.
 */
struct frame_decoder {
	size_t max_payload; /* frames with a longer payload are refused */
	struct sp_buf in;   /* bytes fed and not yet consumed */
	size_t done;	    /* bytes of the last frame returned, dropped on the next call */
	int err;	    /* the error returned once, returned again ever after */
	const char *why;    /* after SP_ERR_PROTO: a static phrase saying why */
};

/*
 * frame_decoder_init prepares d. max_payload is the largest payload
 * accepted; 0 means FRAME_MAX_PAYLOAD_DEFAULT, and values above
 * FRAME_MAX_PAYLOAD_LIMIT are clamped to it.
 */
void frame_decoder_init(struct frame_decoder *d, size_t max_payload);
/* frame_decoder_close releases the buffer; NULL is accepted. */
void frame_decoder_close(struct frame_decoder *d);

/* frame_decoder_feed copies n bytes into the decoder. */
void frame_decoder_feed(struct frame_decoder *d, const void *data, size_t n);

/*
 * frame_decoder_reserve gives a place to write at least `want` bytes (the
 * decoder may offer more: it grows toward the end of a large frame being
 * received, so a socket read can land there without a copy). *len is the
 * room at *base. Follow with frame_decoder_commit(d, n) for the n <= *len
 * bytes written; nothing else may be called on d in between.
 */
void frame_decoder_reserve(struct frame_decoder *d, size_t want, void **base, size_t *len);
void frame_decoder_commit(struct frame_decoder *d, size_t n);

/*
 * frame_decoder_next takes the next complete frame.
 * Returns:
 *   0             *out is filled; out->payload is owned by the decoder and
 *                 valid until the next call on d (any of them).
 *   SP_ERR_AGAIN  more bytes are needed.
 *   SP_ERR_PROTO  the input is not a valid frame stream: a version other
 *                 than FRAME_VERSION, a body shorter than the header, a
 *                 payload over max_payload, or a checksum mismatch. The
 *                 error is sticky (every later call returns it) and
 *                 d->why names the fault ("bad version", "bad checksum",
 *                 "frame too large", "frame too short"); the connection
 *                 should be closed.
 * The outcome depends only on the bytes, never on how they were chunked.
 * A version or length error is reported as soon as the header bytes that
 * show it have arrived, without waiting for the body.
 */
int frame_decoder_next(struct frame_decoder *d, struct frame *out);

/* frame_decoder_buffered is the number of bytes fed and not yet returned
 * as part of a frame. */
size_t frame_decoder_buffered(const struct frame_decoder *d);

#endif
