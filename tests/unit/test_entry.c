/*
 * test_entry: the codec of Raft entries that carry client commands
 * (src/server/entry.c).
 *
 * A round-trip property over random headers and random command lists
 * (1..50 arguments of random binary bytes, empty ones and NUL bytes
 * included, some of ~100 KB); the exact bytes of one entry, pinning the
 * little-endian layout; and the refusals a decoder of peer input owes:
 * every truncation of a valid entry (each cut copied to a buffer of
 * exactly its size, so ASan under make check sees any read past the end),
 * every bad type and proto byte, argc 0, an argc more than the bytes could
 * hold, and length fields past the end. Last, the argv array grows from
 * NULL/0 capacity and is reused. Randomised tests print their seed when
 * they fail; set SPECTRA_SEED to replay one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../lib/testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "server/entry.h"

#define MAX_ARGC 50
#define BIG_ARG	 (100 * 1024)

static uint64_t base_seed; /* printed once; SPECTRA_SEED replays */
static uint64_t rng;

/* seed_test gives each test its own stream (tu_stream). */
static void seed_test(const char *name)
{
	rng = tu_stream(base_seed, name);
}

static uint64_t rnd_below(uint64_t n)
{
	return tu_rnd(&rng, n);
}

/* rnd_u64 favours the edges (0, 1, small, maximum) as well as the middle,
 * so every byte of a field is exercised. */
static uint64_t rnd_u64(void)
{
	switch (rnd_below(5)) {
	case 0:
		return 0;
	case 1:
		return UINT64_MAX - rnd_below(2);
	case 2:
		return rnd_below(1000);
	default:
		return tu_splitmix(&rng);
	}
}

/* ---------------------------------------------------------------------- */
/* Random commands                                                         */

/* A generated command; each argument owns its bytes (malloc'd, NULL when
 * empty so that a NULL pointer with length 0 is encoded too). */
struct xcmd {
	size_t argc;
	struct entry_arg argv[MAX_ARGC];
};

/* rnd_bytes fills an argument: mostly small, sometimes empty, sometimes all
 * NUL bytes, now and then ~100 KB when big is set. */
static struct entry_arg rnd_arg(int big)
{
	struct entry_arg a = {NULL, 0};
	switch (rnd_below(big ? 12 : 10)) {
	case 0:
		return a; /* empty */
	case 1:
		a.len = 1 + rnd_below(8);
		break;
	case 2:
		a.len = 1 + rnd_below(3);
		break;
	case 10:
	case 11:
		a.len = BIG_ARG - 512 + rnd_below(1024);
		break;
	default:
		a.len = rnd_below(64);
		break;
	}
	if (a.len == 0)
		return a;
	char *p = malloc(a.len);
	assert_non_null(p);
	int zeros = rnd_below(6) == 0;
	for (size_t i = 0; i < a.len; i++)
		p[i] = zeros ? 0 : (char)(rnd_below(4) == 0 ? 0 : tu_splitmix(&rng));
	a.p = p;
	return a;
}

/* rnd_cmd makes a command of 1..max_argc arguments; big allows large ones
 * (rarely, so that a run stays quick). */
static void rnd_cmd(struct xcmd *c, size_t max_argc, int big)
{
	c->argc = 1 + rnd_below(max_argc);
	for (size_t i = 0; i < c->argc; i++)
		c->argv[i] = rnd_arg(big && rnd_below(40) == 0);
}

static void cmd_free(struct xcmd *c)
{
	for (size_t i = 0; i < c->argc; i++)
		free((void *)c->argv[i].p);
	c->argc = 0;
}

static struct entry_hdr rnd_hdr(uint32_t ncmds)
{
	struct entry_hdr h = {
	    .type = (uint8_t)(ENTRY_COMMAND + rnd_below(3)),
	    .proto = (uint8_t)(2 + rnd_below(2)),
	    .origin = rnd_u64(),
	    .req_id = rnd_u64(),
	    .time_ms = rnd_u64(),
	    .ncmds = ncmds,
	};
	return h;
}

/* encoded_len is what one command takes on the wire. */
static size_t encoded_len(const struct xcmd *c)
{
	size_t n = 4;
	for (size_t i = 0; i < c->argc; i++)
		n += 4 + c->argv[i].len;
	return n;
}

static void assert_arg_equal(const struct entry_arg *got, const struct entry_arg *want)
{
	assert_int_equal(got->len, want->len);
	if (want->len)
		assert_memory_equal(got->p, want->p, want->len);
}

/* copy_exact copies n bytes into a heap block of exactly n bytes (one byte
 * when n is 0, never read), so ASan flags a read past the end. */
static uint8_t *copy_exact(const void *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);
	assert_non_null(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

/* ---------------------------------------------------------------------- */
/* Round trip                                                              */

/* Random headers and command lists survive encode then decode: every
 * field, every argument's bytes; the arguments point into the input; the
 * body is consumed exactly (what trails it is left for the caller). */
static void test_prop_roundtrip(void **state)
{
	(void)state;
	seed_test(__func__);
	for (int iter = 0; iter < 300; iter++) {
		uint32_t n = (uint32_t)(1 + rnd_below(iter % 10 == 0 ? 12 : 4));
		struct xcmd *cmds = calloc(n, sizeof(*cmds));
		assert_non_null(cmds);
		for (uint32_t i = 0; i < n; i++)
			rnd_cmd(&cmds[i], MAX_ARGC, 1);
		if (iter == 0) {
			/* At least one run carries a large argument. */
			struct entry_arg *a = &cmds[0].argv[cmds[0].argc - 1];
			free((void *)a->p);
			a->len = BIG_ARG;
			char *big = malloc(a->len);
			assert_non_null(big);
			for (size_t i = 0; i < a->len; i++)
				big[i] = (char)tu_splitmix(&rng);
			a->p = big;
		}
		struct entry_hdr h = rnd_hdr(n);

		struct sp_buf b;
		sp_buf_init(&b);
		entry_put_hdr(&b, &h);
		assert_int_equal(b.len, ENTRY_HDR_LEN);
		size_t want_len = ENTRY_HDR_LEN;
		for (uint32_t i = 0; i < n; i++) {
			entry_put_cmd(&b, cmds[i].argv, cmds[i].argc);
			want_len += encoded_len(&cmds[i]);
			assert_int_equal(b.len, want_len);
		}
		size_t trailing = rnd_below(4) == 0 ? 1 + rnd_below(9) : 0;
		for (size_t i = 0; i < trailing; i++)
			sp_buf_append(&b, "\x01", 1);

		const uint8_t *in = (const uint8_t *)sp_buf_begin(&b);
		struct entry_hdr got;
		const uint8_t *body;
		size_t body_len;
		memset(&got, 0xa5, sizeof(got));
		assert_int_equal(entry_get_hdr(in, b.len, &got, &body, &body_len), 0);
		assert_int_equal(got.type, h.type);
		assert_int_equal(got.proto, h.proto);
		assert_int_equal(got.origin, h.origin);
		assert_int_equal(got.req_id, h.req_id);
		assert_int_equal(got.time_ms, h.time_ms);
		assert_int_equal(got.ncmds, n);
		assert_ptr_equal(body, in + ENTRY_HDR_LEN);
		assert_int_equal(body_len, b.len - ENTRY_HDR_LEN);

		struct entry_arg *argv = NULL;
		size_t cap = 0;
		const uint8_t *p = body;
		size_t left = body_len;
		for (uint32_t i = 0; i < got.ncmds; i++) {
			const uint8_t *start = p;
			size_t argc = 0;
			assert_int_equal(entry_next_cmd(&p, &left, &argv, &cap, &argc), 0);
			assert_int_equal(argc, cmds[i].argc);
			assert_true(cap >= argc);
			assert_int_equal((size_t)(p - start), encoded_len(&cmds[i]));
			assert_int_equal(left, (size_t)(in + b.len - p));
			/* Each argument lies just after its length field. */
			const uint8_t *q = start + 4;
			for (size_t j = 0; j < argc; j++) {
				assert_ptr_equal((const uint8_t *)argv[j].p, q + 4);
				assert_arg_equal(&argv[j], &cmds[i].argv[j]);
				q += 4 + argv[j].len;
			}
			assert_ptr_equal(q, p);
		}
		assert_int_equal(left, trailing);
		assert_ptr_equal(p, in + b.len - trailing);

		free(argv);
		sp_buf_free(&b);
		for (uint32_t i = 0; i < n; i++)
			cmd_free(&cmds[i]);
		free(cmds);
	}
}

/* entry_put_hdr and entry_put_cmd append: bytes already in the buffer, and
 * a consumed prefix, are left alone. */
static void test_put_appends(void **state)
{
	(void)state;
	struct sp_buf b;
	sp_buf_init(&b);
	sp_buf_append(&b, "xxprefix", 8);
	sp_buf_consume(&b, 2);
	struct entry_hdr h = {ENTRY_MULTI, 3, 7, 8, 9, 1};
	struct entry_arg argv[] = {{"GET", 3}, {"k", 1}};
	entry_put_hdr(&b, &h);
	entry_put_cmd(&b, argv, 2);
	assert_int_equal(b.len, 6 + ENTRY_HDR_LEN + 4 + 4 + 3 + 4 + 1);
	const uint8_t *in = (const uint8_t *)sp_buf_begin(&b);
	assert_memory_equal(in, "prefix", 6);

	struct entry_hdr got;
	const uint8_t *body;
	size_t body_len;
	assert_int_equal(entry_get_hdr(in + 6, b.len - 6, &got, &body, &body_len), 0);
	assert_int_equal(got.type, ENTRY_MULTI);
	assert_int_equal(got.ncmds, 1);
	sp_buf_free(&b);
}

/* The exact bytes of one entry: the documented layout, little-endian. */
static void test_golden_bytes(void **state)
{
	(void)state;
	static const uint8_t want[] = {
	    0x02, 0x03,					    /* MULTI, RESP3 */
	    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* origin */
	    0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, /* req_id */
	    0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, /* time_ms */
	    0x02, 0x00, 0x00, 0x00,			    /* ncmds */
	    0x03, 0x00, 0x00, 0x00,			    /* argc 3 */
	    0x03, 0x00, 0x00, 0x00, 'S',  'E',	'T',	    /* "SET" */
	    0x02, 0x00, 0x00, 0x00, 'k',  0x00,		    /* "k\0" */
	    0x00, 0x00, 0x00, 0x00,			    /* "" */
	    0x01, 0x00, 0x00, 0x00,			    /* argc 1 */
	    0x04, 0x00, 0x00, 0x00, 'P',  'I',	'N',  'G',  /* "PING" */
	};
	struct entry_hdr h = {
	    .type = ENTRY_MULTI,
	    .proto = 3,
	    .origin = 0x0102030405060708ull,
	    .req_id = 0x8899aabbccddeeffull,
	    .time_ms = 0xfedcba9876543210ull,
	    .ncmds = 2,
	};
	struct entry_arg set[] = {{"SET", 3}, {"k\0", 2}, {NULL, 0}};
	struct entry_arg ping[] = {{"PING", 4}};
	struct sp_buf b;
	sp_buf_init(&b);
	entry_put_hdr(&b, &h);
	entry_put_cmd(&b, set, 3);
	entry_put_cmd(&b, ping, 1);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(sp_buf_begin(&b), want, sizeof(want));
	sp_buf_free(&b);

	struct entry_hdr got;
	const uint8_t *body;
	size_t body_len;
	assert_int_equal(entry_get_hdr(want, sizeof(want), &got, &body, &body_len), 0);
	assert_int_equal(got.origin, h.origin);
	assert_int_equal(got.req_id, h.req_id);
	assert_int_equal(got.time_ms, h.time_ms);
	assert_int_equal(body_len, sizeof(want) - ENTRY_HDR_LEN);
}

/* ---------------------------------------------------------------------- */
/* Truncations                                                             */

/* Every prefix of a valid entry, alone in a buffer of its exact size:
 * shorter than the header is refused; otherwise exactly the commands that
 * end inside the prefix decode, equal to the originals, and the next one
 * is refused without moving the cursor. ASan checks no byte past the cut
 * is read. */
/* Regression: a header whose command count the body cannot hold was
 * accepted, and the apply then looped (and, for MULTI, sized a reply)
 * over up to 4 billion commands on every replica. */
static void test_count_beyond_body(void **state)
{
	(void)state;
	struct sp_buf b;
	sp_buf_init(&b);
	struct entry_hdr h = {.type = ENTRY_MULTI, .proto = 2, .ncmds = UINT32_MAX};
	entry_put_hdr(&b, &h);
	struct entry_hdr got;
	const uint8_t *body;
	size_t body_len;
	assert_int_equal(
	    entry_get_hdr((const uint8_t *)sp_buf_begin(&b), b.len, &got, &body, &body_len),
	    SP_ERR_PROTO);
	/* One 8-byte command's room holds a count of one, not two. */
	struct entry_arg a = {"", 0};
	sp_buf_clear(&b);
	h.ncmds = 2;
	entry_put_hdr(&b, &h);
	entry_put_cmd(&b, &a, 1);
	assert_int_equal(
	    entry_get_hdr((const uint8_t *)sp_buf_begin(&b), b.len, &got, &body, &body_len),
	    SP_ERR_PROTO);
	sp_buf_free(&b);
}

static void test_truncations(void **state)
{
	(void)state;
	seed_test(__func__);
	for (int iter = 0; iter < 40; iter++) {
		uint32_t n = (uint32_t)(1 + rnd_below(4));
		struct xcmd cmds[4];
		size_t ends[4]; /* offset just past each command */
		struct sp_buf b;
		sp_buf_init(&b);
		struct entry_hdr h = rnd_hdr(n);
		entry_put_hdr(&b, &h);
		for (uint32_t i = 0; i < n; i++) {
			rnd_cmd(&cmds[i], iter < 4 ? MAX_ARGC : 6, 0);
			entry_put_cmd(&b, cmds[i].argv, cmds[i].argc);
			ends[i] = b.len;
		}

		struct entry_arg *argv = NULL;
		size_t cap = 0;
		for (size_t cut = 0; cut < b.len; cut++) {
			uint8_t *in = copy_exact(sp_buf_begin(&b), cut);
			struct entry_hdr got;
			const uint8_t *body;
			size_t body_len;
			int rc = entry_get_hdr(in, cut, &got, &body, &body_len);
			/* A header, and a body that could hold its commands
			 * (8 bytes each at least), or it is refused at once. */
			if (cut < ENTRY_HDR_LEN || (uint64_t)n * 8 > cut - ENTRY_HDR_LEN) {
				assert_int_equal(rc, SP_ERR_PROTO);
				free(in);
				continue;
			}
			assert_int_equal(rc, 0);
			assert_int_equal(got.ncmds, n);
			const uint8_t *p = body;
			size_t left = body_len;
			uint32_t whole = 0;
			while (whole < n && ends[whole] <= cut)
				whole++;
			assert_true(whole < n);
			for (uint32_t i = 0; i < whole; i++) {
				size_t argc = 0;
				assert_int_equal(entry_next_cmd(&p, &left, &argv, &cap, &argc), 0);
				assert_int_equal(argc, cmds[i].argc);
				for (size_t j = 0; j < argc; j++)
					assert_arg_equal(&argv[j], &cmds[i].argv[j]);
			}
			assert_ptr_equal(p, in + (whole ? ends[whole - 1] : ENTRY_HDR_LEN));
			const uint8_t *before = p;
			size_t left_before = left, argc = 12345;
			assert_int_equal(entry_next_cmd(&p, &left, &argv, &cap, &argc),
					 SP_ERR_PROTO);
			/* A refusal moves nothing the caller would go on from. */
			assert_ptr_equal(p, before);
			assert_int_equal(left, left_before);
			assert_int_equal(argc, 12345);
			free(in);
		}
		free(argv);
		sp_buf_free(&b);
		for (uint32_t i = 0; i < n; i++)
			cmd_free(&cmds[i]);
	}
}

/* ---------------------------------------------------------------------- */
/* Header refusals                                                         */

/* Only types 1..3 and protos 2 and 3 are accepted, every other byte is
 * refused; nothing else in the header is judged. */
static void test_bad_type_and_proto(void **state)
{
	(void)state;
	struct entry_hdr h = {ENTRY_COMMAND, 2, 1, 2, 3, 0};
	struct sp_buf b;
	sp_buf_init(&b);
	entry_put_hdr(&b, &h);
	uint8_t in[ENTRY_HDR_LEN];
	memcpy(in, sp_buf_begin(&b), ENTRY_HDR_LEN);
	sp_buf_free(&b);

	struct entry_hdr got;
	const uint8_t *body;
	size_t body_len;
	for (int v = 0; v < 256; v++) {
		uint8_t t[ENTRY_HDR_LEN];
		memcpy(t, in, sizeof(t));
		t[0] = (uint8_t)v;
		int ok = v >= ENTRY_COMMAND && v <= ENTRY_EXPIRE;
		assert_int_equal(entry_get_hdr(t, sizeof(t), &got, &body, &body_len),
				 ok ? 0 : SP_ERR_PROTO);
		if (ok) {
			assert_int_equal(got.type, v);
			assert_ptr_equal(body, t + ENTRY_HDR_LEN);
			assert_int_equal(body_len, 0);
		}
		memcpy(t, in, sizeof(t));
		t[1] = (uint8_t)v;
		ok = v == 2 || v == 3;
		assert_int_equal(entry_get_hdr(t, sizeof(t), &got, &body, &body_len),
				 ok ? 0 : SP_ERR_PROTO);
		if (ok)
			assert_int_equal(got.proto, v);
	}
	/* Both bad at once, and an empty input (NULL pointer, length 0). */
	in[0] = 0;
	in[1] = 0;
	assert_int_equal(entry_get_hdr(in, sizeof(in), &got, &body, &body_len), SP_ERR_PROTO);
	assert_int_equal(entry_get_hdr(NULL, 0, &got, &body, &body_len), SP_ERR_PROTO);
}

/* ---------------------------------------------------------------------- */
/* Command refusals                                                        */

/* put appends a little-endian u32 to a byte array under construction. */
static size_t put32(uint8_t *p, size_t at, uint32_t v)
{
	p[at] = (uint8_t)v;
	p[at + 1] = (uint8_t)(v >> 8);
	p[at + 2] = (uint8_t)(v >> 16);
	p[at + 3] = (uint8_t)(v >> 24);
	return at + 4;
}

/* decode_exact decodes one command from a copy of exactly n bytes. */
static int decode_exact(const uint8_t *bytes, size_t n, struct entry_arg **argv, size_t *cap,
			size_t *argc, size_t *left_after)
{
	uint8_t *in = copy_exact(bytes, n);
	const uint8_t *p = in;
	size_t left = n;
	int rc = entry_next_cmd(&p, &left, argv, cap, argc);
	if (rc != 0) {
		assert_ptr_equal(p, in);
		assert_int_equal(left, n);
	} else {
		assert_ptr_equal(p, in + n - left);
	}
	if (left_after)
		*left_after = left;
	free(in);
	return rc;
}

/* argc 0 is refused, whatever follows it; so is an input shorter than the
 * argc field. */
static void test_argc_zero_refused(void **state)
{
	(void)state;
	uint8_t b[64];
	memset(b, 0, sizeof(b));
	struct entry_arg *argv = NULL;
	size_t cap = 0, argc = 99;
	for (size_t n = 0; n <= sizeof(b); n++)
		assert_int_equal(decode_exact(b, n, &argv, &cap, &argc, NULL), SP_ERR_PROTO);
	/* argc 0 followed by what would be a valid command. */
	size_t at = put32(b, 0, 0);
	at = put32(b, at, 1);
	at = put32(b, at, 1);
	b[at++] = 'x';
	assert_int_equal(decode_exact(b, at, &argv, &cap, &argc, NULL), SP_ERR_PROTO);
	assert_int_equal(argc, 99);
	/* The same command without the zero decodes. */
	assert_int_equal(decode_exact(b + 4, at - 4, &argv, &cap, &argc, NULL), 0);
	assert_int_equal(argc, 1);
	free(argv);
}

/* An argc the bytes cannot hold (each argument needs its 4-byte length) is
 * refused, up to UINT32_MAX, and the decoder allocates nothing out of
 * proportion to the input. argc exactly what fits (all empty) decodes. */
static void test_argc_too_large(void **state)
{
	(void)state;
	enum { K = 40 };
	uint8_t b[4 + 4 * K];
	memset(b, 0, sizeof(b));
	struct entry_arg *argv = NULL;
	size_t cap = 0, argc = 0, left = 0;

	static const uint32_t huge[] = {K + 1,	     K + 2,	  1u << 20,    0x3fffffffu,
					0x40000000u, 0x7fffffffu, 0x80000000u, UINT32_MAX};
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		put32(b, 0, huge[i]);
		assert_int_equal(decode_exact(b, sizeof(b), &argv, &cap, &argc, NULL),
				 SP_ERR_PROTO);
		assert_true(cap <= (sizeof(b) / 4 > 16 ? sizeof(b) / 4 : 16));
	}
	/* K arguments of length 0 fit exactly; K with one byte less do not. */
	put32(b, 0, K);
	assert_int_equal(decode_exact(b, sizeof(b), &argv, &cap, &argc, &left), 0);
	assert_int_equal(argc, K);
	assert_int_equal(left, 0);
	for (size_t j = 0; j < K; j++)
		assert_int_equal(argv[j].len, 0);
	assert_int_equal(decode_exact(b, sizeof(b) - 1, &argv, &cap, &argc, NULL), SP_ERR_PROTO);
	/* argc 2 where the bytes hold one argument of 4 bytes: the count
	 * check passes (8 bytes left), the second length field is missing. */
	size_t at = put32(b, 0, 2);
	at = put32(b, at, 4);
	memcpy(b + at, "abcd", 4);
	at += 4;
	assert_int_equal(decode_exact(b, at, &argv, &cap, &argc, NULL), SP_ERR_PROTO);
	free(argv);
}

/* A length field that reaches past the end is refused, in the first, a
 * middle and the last argument, by one byte and by the most a u32 says;
 * the same length that ends exactly at the end decodes. */
static void test_len_past_end(void **state)
{
	(void)state;
	uint8_t b[128];
	struct entry_arg *argv = NULL;
	size_t cap = 0, argc = 0, left = 0;
	for (size_t which = 0; which < 3; which++) {
		/* argc 3: "ab", "cde", "f", with argument `which` made to claim
		 * more than what remains. */
		static const char *args[] = {"ab", "cde", "f"};
		for (int mode = 0; mode < 4; mode++) {
			size_t at = put32(b, 0, 3);
			size_t len_at = 0;
			for (size_t j = 0; j < 3; j++) {
				if (j == which)
					len_at = at;
				at = put32(b, at, (uint32_t)strlen(args[j]));
				memcpy(b + at, args[j], strlen(args[j]));
				at += strlen(args[j]);
			}
			/* Bytes from argument `which`'s data to the end. */
			uint32_t rest = (uint32_t)(at - (len_at + 4));
			uint32_t claim = mode == 0   ? rest + 1
					 : mode == 1 ? UINT32_MAX
					 : mode == 2 ? 0x80000000u
						     : rest;
			put32(b, len_at, claim);
			int rc = decode_exact(b, at, &argv, &cap, &argc, &left);
			if (mode < 3) {
				assert_int_equal(rc, SP_ERR_PROTO);
				continue;
			}
			/* Claiming exactly the rest swallows the later arguments'
			 * bytes; with a later argument still due there is no
			 * length field left for it. */
			if (which == 2) {
				assert_int_equal(rc, 0);
				assert_int_equal(argc, 3);
				assert_int_equal(left, 0);
			} else {
				assert_int_equal(rc, SP_ERR_PROTO);
			}
		}
	}
	/* A length field itself cut short. */
	size_t at = put32(b, 0, 1);
	put32(b, at, 0);
	for (size_t n = 4; n < at + 4; n++)
		assert_int_equal(decode_exact(b, n, &argv, &cap, &argc, NULL), SP_ERR_PROTO);
	assert_int_equal(decode_exact(b, at + 4, &argv, &cap, &argc, NULL), 0);
	free(argv);
}

/* ---------------------------------------------------------------------- */
/* argv capacity                                                           */

/* The argv array starts as NULL/0 and grows to hold whatever argc comes,
 * keeping the capacity across calls; a caller's own malloc'd array with a
 * small capacity is grown (realloc'd) too. */
static void test_argv_growth(void **state)
{
	(void)state;
	static const size_t sizes[] = {1, 3, 16, 17, 2, 50, 49, 200, 1, 1000};
	struct sp_buf b;
	sp_buf_init(&b);
	struct entry_arg args[1000];
	char text[1000][8];
	for (size_t j = 0; j < 1000; j++) {
		int len = snprintf(text[j], sizeof(text[j]), "a%zu", j);
		args[j].p = text[j];
		args[j].len = (size_t)len;
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		entry_put_cmd(&b, args, sizes[i]);

	for (int own = 0; own < 2; own++) {
		struct entry_arg *argv = NULL;
		size_t cap = 0;
		if (own) {
			cap = 2;
			argv = malloc(cap * sizeof(*argv));
			assert_non_null(argv);
		}
		const uint8_t *p = (const uint8_t *)sp_buf_begin(&b);
		size_t left = b.len, max_seen = cap;
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t argc = 0, cap_before = cap;
			assert_int_equal(entry_next_cmd(&p, &left, &argv, &cap, &argc), 0);
			assert_int_equal(argc, sizes[i]);
			assert_non_null(argv);
			assert_true(cap >= argc);
			/* Never shrinks; grows only when it must. */
			assert_true(cap >= cap_before);
			if (argc <= cap_before)
				assert_int_equal(cap, cap_before);
			if (cap > max_seen)
				max_seen = cap;
			/* Every slot up to argc is written (ASan sees any slot
			 * past the allocation). */
			for (size_t j = 0; j < argc; j++)
				assert_arg_equal(&argv[j], &args[j]);
			/* The whole capacity is usable. */
			memset(&argv[cap - 1], 0, sizeof(*argv));
		}
		assert_int_equal(left, 0);
		assert_int_equal(cap, max_seen);
		free(argv);
	}
	sp_buf_free(&b);
}

int main(void)
{
	base_seed = tu_seed();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prop_roundtrip),     cmocka_unit_test(test_put_appends),
	    cmocka_unit_test(test_golden_bytes),       cmocka_unit_test(test_truncations),
	    cmocka_unit_test(test_bad_type_and_proto), cmocka_unit_test(test_argc_zero_refused),
	    cmocka_unit_test(test_argc_too_large),     cmocka_unit_test(test_len_past_end),
	    cmocka_unit_test(test_argv_growth),	       cmocka_unit_test(test_count_beyond_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
