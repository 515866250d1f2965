/*
 * bench_http: the etcd v3 driver of `spectra bench` (see bench_driver.h). It
 * speaks HTTP/1.1 keep-alive to etcd 3.4's JSON gateway (grpc-gateway).
 *
 * A template is one or more commands separated by ';', each a list of words
 * separated by spaces, the first a verb (any case):
 *
 *   PUT <key> <value>           POST /v3/kv/put {"key":k,"value":v}
 *   GET <key> [SERIALIZABLE]    POST /v3/kv/range {"key":k[,"serializable":true]}
 *   DEL <key>                   POST /v3/kv/deleterange {"key":k}
 *
 * Words hold placeholders exactly as bench_resp's do: {key} (the op's key,
 * in decimal), {value} (value_size bytes of filler, the same filler as
 * bench_resp's) and {rand} (a random u32, in decimal); braces around any
 * other name are an error, other braces are literal. Keys and values go on
 * the wire base64-encoded (RFC 4648 §4, padded), as the gateway's JSON
 * mapping of protobuf bytes requires; a word without {key} or {rand} is
 * constant and is encoded once, at compile time. Each command is one
 * request, written in one pass straight into the connection's buffer with an
 * exact Content-Length: no allocation per op.
 *
 * Replies are recognised without being built (RFC 9112): the status line,
 * the header fields, and a body framed by Content-Length or by chunked
 * transfer coding (extensions and trailers allowed). The body is not parsed
 * as JSON; a small scan of its top-level object finds the "error" and "code"
 * members grpc-gateway writes on failure.
 *
 * Pure: no I/O, no clock, no globals beyond the driver table and constant
 * tables.
 */
#ifndef SP_TOOLS_BENCH_HTTP_H
#define SP_TOOLS_BENCH_HTTP_H

#include <stddef.h>

#include "bench_driver.h"

/* The driver table ("etcd"); its functions are the ones below. */
extern const struct bench_driver bench_etcd_driver;

/* Largest status line plus header section (and largest chunk-size line, and
 * largest trailer section) a reply may have, in bytes. */
#define BENCH_HTTP_MAX_HEADER (64u * 1024u)
/* Largest body a reply may have, in bytes (after chunked decoding). */
#define BENCH_HTTP_MAX_BODY (64u * 1024u * 1024u)

/* BENCH_HTTP_B64_LEN is the length of the padded base64 encoding of n
 * bytes. */
#define BENCH_HTTP_B64_LEN(n) (((n) + 2) / 3 * 4)

/*
 * bench_http_base64 writes the padded base64 encoding (standard alphabet)
 * of src[0..n) at dst, which must have room for BENCH_HTTP_B64_LEN(n) bytes,
 * and returns that length. No NUL is written. src and dst are borrowed.
 */
size_t bench_http_base64(char *dst, const void *src, size_t n);

/*
 * bench_http_compile parses a template (the driver's op_compile): returns 0
 * with *op (owned by the caller, release with bench_http_free), or
 * SP_ERR_INVAL with a message in err (errlen bytes, NUL-terminated) for an
 * empty template or command, an unknown verb, a verb with the wrong number
 * of words, GET's second word other than SERIALIZABLE, or an unknown
 * placeholder. text is borrowed.
 */
int bench_http_compile(const char *text, size_t value_size, void **op, char *err, size_t errlen);

/* bench_http_free releases an op from bench_http_compile; NULL is ok. */
void bench_http_free(void *op);

/* bench_http_steps returns the number of commands (requests) in op. */
size_t bench_http_steps(const void *op);

/*
 * bench_http_encode appends request `step` (< bench_http_steps) of op, with
 * vars substituted, to out:
 *
 *   POST <path> HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\n
 *   Content-Length: <n>\r\n\r\n<body>
 *
 * It reserves once and writes in place, so it allocates only when out must
 * grow. op and vars are borrowed.
 */
void bench_http_encode(const void *op, size_t step, const struct bench_vars *vars,
		       struct sp_buf *out);

/*
 * bench_http_parse_reply looks for one complete HTTP/1.x response at the
 * start of buf[0..len) (the driver's reply_parse). Lines must end in CRLF.
 * A 1xx, 204 or 304 response ends with its header section; any other must
 * say how long its body is, by Content-Length or by a Transfer-Encoding whose
 * last coding is chunked (which wins over Content-Length, RFC 9112 §6.3).
 *
 * Returns 0 with *consumed (the response's size, > 0) and *reply:
 *  - 1xx: reply->skip (an interim response answers no request);
 *  - 2xx: ok, unless the body is a JSON object with a top-level "error"
 *    member: then an error named by its top-level "code" (below), else
 *    "ERROR";
 *  - any other status: an error, named by the body's top-level "code" when
 *    it is a number 0..16 (the gRPC code's name: 14 is "UNAVAILABLE"), else
 *    "HTTP_<status>" ("HTTP_404").
 * reply->word points to static storage. Returns SP_ERR_AGAIN when the bytes
 * are a proper prefix of a response (call again from the same start once
 * more have arrived), or SP_ERR_PROTO when they cannot be one: a bad status
 * line, a field line without a name and a colon, a bare CR or LF, a NUL, a
 * folded line, a Content-Length that is not digits or that conflicts with
 * another, a Transfer-Encoding not ending in chunked or with chunked twice,
 * no framing where a body is due, a bad chunk-size line or a chunk not
 * followed by CRLF, a header section, chunk-size line or trailer section
 * over BENCH_HTTP_MAX_HEADER, or a body over BENCH_HTTP_MAX_BODY. It reads
 * no byte at or past buf[len], and on success none at or past
 * buf[*consumed]. buf is borrowed; nothing is allocated.
 */
int bench_http_parse_reply(const char *buf, size_t len, size_t *consumed,
			   struct bench_reply *reply);

/* bench_http_grpc_code_name returns the name of gRPC status code `code`
 * (0 "OK" .. 16 "UNAUTHENTICATED"), static, or NULL outside 0..16. */
const char *bench_http_grpc_code_name(long code);

#endif
