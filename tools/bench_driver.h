/*
 * bench_driver: what `spectra bench` needs to know about a protocol.
 *
 * The load loop (bench_run) opens connections, paces ops, keeps requests in
 * flight and times them; it never looks inside a request or a reply. A
 * driver does exactly that: it compiles an op template once, writes the
 * bytes of each request of an op into a connection's output buffer, and
 * recognises where one reply ends and whether it is an error. RESP is the
 * one driver today (bench_resp.h); an HTTP driver (etcd's JSON gateway)
 * would fill the same table.
 *
 * A driver must not do I/O, keep per-connection state, or allocate per op:
 * encoding appends to a buffer the loop reuses, and recognising a reply only
 * reads the bytes it is given.
 */
#ifndef SP_TOOLS_BENCH_DRIVER_H
#define SP_TOOLS_BENCH_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* What is drawn once per op and shared by all of its requests, so that
 * "SET k:{key} {value};GET k:{key}" reads the key it wrote. */
struct bench_vars {
	uint64_t key;  /* {key} */
	uint32_t rand; /* {rand} */
};

/* One reply as the load loop sees it. */
struct bench_reply {
	bool error; /* the server answered the request with an error */
	bool skip;  /* not a reply to any request (a RESP3 push): ignore it */
	/* For an error, its first word ("ERR", "TRYAGAIN"), borrowed from
	 * the parsed bytes: valid until the caller drops them. */
	const char *word;
	size_t word_len;
};

struct bench_driver {
	const char *name; /* "resp" */

	/*
	 * op_compile turns template text into an op for value_size-byte
	 * values. On success returns 0 and sets *op (owned by the caller,
	 * released with op_free). On bad text returns SP_ERR_INVAL and
	 * writes why into err (errlen bytes, NUL-terminated).
	 */
	int (*op_compile)(const char *text, size_t value_size, void **op, char *err, size_t errlen);
	/* op_free releases an op; NULL is ok. */
	void (*op_free)(void *op);
	/* op_steps returns how many requests the op sends, one after the
	 * other's reply (at least 1). */
	size_t (*op_steps)(const void *op);
	/* op_encode appends request `step` (< op_steps) of op, with vars, to
	 * out. Amortised: it allocates only when out must grow. */
	void (*op_encode)(const void *op, size_t step, const struct bench_vars *vars,
			  struct sp_buf *out);
	/*
	 * reply_parse looks for one complete reply at the start of
	 * buf[0..len). Returns 0 with *consumed (its size) and *reply set;
	 * SP_ERR_AGAIN when the reply is not complete yet (call again from
	 * the same start once more bytes have arrived); SP_ERR_PROTO when the
	 * bytes cannot be a reply (the connection must be dropped). buf is
	 * borrowed.
	 */
	int (*reply_parse)(const char *buf, size_t len, size_t *consumed,
			   struct bench_reply *reply);
};

#endif
