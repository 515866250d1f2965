/*
 * fuzz_entry: libFuzzer target for the codec of Raft entries that carry
 * client commands (src/server/entry.c), whose decoder reads bytes from
 * peers and from the Raft log.
 *
 * The input, copied to a buffer of exactly its size so ASan sees any read
 * past the end, is decoded as a header and then up to ncmds commands,
 * stopping at the first refusal, with the argv array grown from NULL/0.
 * Then:
 *  - a header is refused exactly when the input is shorter than
 *    ENTRY_HDR_LEN, its type or proto byte is not one of the documented
 *    values, or its command count is more than the body could hold (8
 *    bytes each at least), and an accepted header's body is the rest of
 *    the input;
 *  - every verdict is 0 or SP_ERR_PROTO, and a refused command moves
 *    neither the cursor nor *argc;
 *  - a decoded command has 1 <= argc <= capacity and its arguments lie
 *    inside its own bytes; the argv capacity stays in proportion to the
 *    input (at most 16 or a quarter of its bytes), refused or not;
 *  - re-encoding the header and the decoded commands gives back exactly
 *    the bytes consumed (the format has one encoding per entry);
 *  - the consumed bytes alone, in a buffer of their size, decode to the
 *    same commands (a command's decoding depends on its bytes only), and
 *    if the input held fewer commands than ncmds, the next one is refused
 *    there too.
 * Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/endian.h"
#include "server/entry.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_entry: %s:%d: check failed: %s\n", __FILE__,         \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static int within(const char *p, size_t n, const uint8_t *in, size_t size)
{
	const uint8_t *q = (const uint8_t *)p;
	return n == 0 || (q >= in && q <= in + size && n <= (size_t)(in + size - q));
}

/* decode_all decodes in[0..size) as a header and commands, checking each
 * step, and re-encodes what it decoded into out. Returns the number of
 * whole commands decoded (or -1 when the header is refused); *consumed is
 * how many bytes they and the header took. */
static long decode_all(const uint8_t *in, size_t size, struct entry_hdr *h, struct sp_buf *out,
		       size_t *consumed)
{
	const uint8_t *body;
	size_t body_len;

	memset(h, 0, sizeof(*h));
	int rc = entry_get_hdr(in, size, h, &body, &body_len);
	CHECK(rc == 0 || rc == SP_ERR_PROTO);
	int want_ok = size >= ENTRY_HDR_LEN && in[0] >= ENTRY_COMMAND && in[0] <= ENTRY_EXPIRE &&
		      (in[1] == 2 || in[1] == 3) &&
		      (uint64_t)sp_get_le32(in + 26) * 8 <= size - ENTRY_HDR_LEN;
	CHECK((rc == 0) == want_ok);
	if (rc != 0)
		return -1;
	CHECK(body == in + ENTRY_HDR_LEN);
	CHECK(body_len == size - ENTRY_HDR_LEN);
	CHECK(h->type == in[0] && h->proto == in[1]);
	entry_put_hdr(out, h);

	struct entry_arg *argv = NULL;
	size_t cap = 0;
	const uint8_t *p = body;
	size_t left = body_len;
	long whole = 0;
	for (uint32_t i = 0; i < h->ncmds; i++) {
		const uint8_t *before = p;
		size_t left_before = left, argc = (size_t)-1;
		rc = entry_next_cmd(&p, &left, &argv, &cap, &argc);
		CHECK(rc == 0 || rc == SP_ERR_PROTO);
		/* Allocation stays in proportion to the input, refused or not. */
		CHECK(cap <= 16 || cap <= size / 4);
		if (rc != 0) {
			CHECK(p == before && left == left_before && argc == (size_t)-1);
			break;
		}
		/* The smallest command is argc and one empty argument. */
		CHECK(p >= before + 8 && p <= in + size);
		CHECK(left == (size_t)(in + size - p));
		CHECK(argc >= 1 && argc <= cap && argv != NULL);
		for (size_t j = 0; j < argc; j++)
			CHECK(within(argv[j].p, argv[j].len, before, (size_t)(p - before)));
		entry_put_cmd(out, argv, argc);
		whole++;
	}
	free(argv);
	*consumed = (size_t)(p - in);
	return whole;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *in = malloc(size ? size : 1);
	CHECK(in);
	if (size)
		memcpy(in, data, size);

	struct entry_hdr h;
	struct sp_buf out;
	size_t consumed = 0;
	sp_buf_init(&out);
	long whole = decode_all(in, size, &h, &out, &consumed);
	if (whole < 0)
		goto free_in;

	/* Canonical: the re-encoding is the consumed input, byte for byte. */
	CHECK(out.len == consumed);
	CHECK(memcmp(sp_buf_begin(&out), in, consumed) == 0);

	/* The consumed prefix alone decodes the same way. */
	uint8_t *prefix = malloc(consumed);
	CHECK(prefix);
	memcpy(prefix, in, consumed);
	struct entry_hdr h2;
	struct sp_buf out2;
	size_t consumed2 = 0;
	sp_buf_init(&out2);
	long whole2 = decode_all(prefix, consumed, &h2, &out2, &consumed2);
	/* ... unless the prefix is too short for the header's command count,
	 * when it is refused at the header. */
	if (whole2 < 0) {
		CHECK((uint64_t)h.ncmds * 8 > consumed - ENTRY_HDR_LEN);
		goto free_prefix;
	}
	CHECK(whole2 == whole);
	CHECK(consumed2 == consumed);
	CHECK(h2.type == h.type && h2.proto == h.proto && h2.origin == h.origin &&
	      h2.req_id == h.req_id && h2.time_ms == h.time_ms && h2.ncmds == h.ncmds);
	CHECK(out2.len == out.len && memcmp(sp_buf_begin(&out2), sp_buf_begin(&out), out.len) == 0);
free_prefix:
	sp_buf_free(&out2);
	free(prefix);

free_in:
	sp_buf_free(&out);
	free(in);
	return 0;
}
