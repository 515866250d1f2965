/*
 * bench_resp: the RESP driver of `spectra bench` (see bench_driver.h).
 *
 * A template is one or more commands separated by ';', each a list of words
 * separated by spaces. A word may hold placeholders: {key} (the op's key, in
 * decimal), {value} (value_size bytes of filler) and {rand} (a random u32,
 * in decimal); each is drawn once per op, so every command of the op sees
 * the same ones. Braces around any other name are an error; other braces
 * are literal. A command is sent as a RESP array of bulk strings, written
 * straight into the connection's buffer: no allocation per op.
 *
 * Replies are recognised without being built: bench_resp_skip_reply walks
 * one RESP2 or RESP3 value (+ - : $ * and _ , # ( ! = % ~ > |), checking its
 * framing, and says whether it is an error and what the error's first word
 * is. The repo's resp_reader (src/net/resp.h) builds a tree with an
 * allocation per string, which a load generator cannot afford on every
 * reply; the tests check the two agree on where every value ends.
 *
 * Pure: no I/O, no clock, no globals beyond the driver table.
 */
#ifndef SP_TOOLS_BENCH_RESP_H
#define SP_TOOLS_BENCH_RESP_H

#include <stddef.h>

#include "bench_driver.h"

/* The driver table; its functions are the ones below. */
extern const struct bench_driver bench_resp_driver;

/* Deepest nesting of aggregates (and attributes) a reply may have. */
#define BENCH_RESP_MAX_DEPTH 64

/*
 * bench_resp_skip_reply finds the end of the reply that starts at buf[0]
 * (the driver's reply_parse). An attribute (|) is skipped along with the
 * value it annotates; a push (>) at the top is reported with reply->skip.
 * Returns 0 with *consumed and *reply; SP_ERR_AGAIN when incomplete; or
 * SP_ERR_PROTO for an unknown type byte, a bad length or count, a missing
 * CRLF after bulk data, a streamed string or aggregate ("$?", "*?"), or
 * nesting deeper than BENCH_RESP_MAX_DEPTH. buf is borrowed; reply->word
 * points into it.
 */
int bench_resp_skip_reply(const char *buf, size_t len, size_t *consumed, struct bench_reply *reply);

/*
 * bench_resp_compile parses a template (the driver's op_compile): returns
 * 0 with *op (owned by the caller, release with bench_resp_free), or
 * SP_ERR_INVAL with a message in err for an empty template or command, or
 * an unknown placeholder.
 */
int bench_resp_compile(const char *text, size_t value_size, void **op, char *err, size_t errlen);

/* bench_resp_free releases an op from bench_resp_compile; NULL is ok. */
void bench_resp_free(void *op);

/* bench_resp_steps returns the number of commands in op. */
size_t bench_resp_steps(const void *op);

/* bench_resp_encode appends command `step` of op, as a RESP array of bulk
 * strings with vars substituted, to out. */
void bench_resp_encode(const void *op, size_t step, const struct bench_vars *vars,
		       struct sp_buf *out);

#endif
