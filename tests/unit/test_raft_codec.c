/*
 * test_raft_codec: the Raft message and configuration codec
 * (src/engine/strong/raft/codec.c).
 *
 * A round-trip property over random messages of every type; the exact
 * bytes of one message of each kind of field, pinning the little-endian
 * layout; and the refusals: every truncation of a valid encoding, a
 * trailing byte, unknown versions and types, counts and lengths that
 * overrun, bad entry types, booleans other than 0/1, and configurations at
 * and past each edge. Randomised tests print their seed when they fail;
 * set SPECTRA_SEED to replay one.
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
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "engine/strong/raft/raft.h"

#define MAX_ENTRIES 8

/* ---------------------------------------------------------------------- */
/* Randomness                                                              */

/* rnd_u64 favours the edges (0, 1, small, maximum) as well as the middle,
 * so every byte of a field is exercised. */
static uint64_t rnd_u64(uint64_t *s)
{
	switch (tu_rnd(s, 5)) {
	case 0:
		return 0;
	case 1:
		return UINT64_MAX - tu_rnd(s, 2);
	case 2:
		return tu_rnd(s, 1000);
	default:
		return tu_splitmix(s);
	}
}

/* ---------------------------------------------------------------------- */
/* Random messages                                                         */

/* A generated message and the storage its pointers point into. */
struct sample {
	struct raft_msg msg;
	struct raft_entry entries[MAX_ENTRIES];
	uint8_t bytes[MAX_ENTRIES * 64 + 256];
	size_t used;
};

static uint8_t *sample_alloc(struct sample *s, size_t n)
{
	assert_true(s->used + n <= sizeof(s->bytes));
	uint8_t *p = s->bytes + s->used;
	s->used += n;
	return p;
}

static void random_conf(uint64_t *seed, struct raft_conf *conf, uint32_t n)
{
	memset(conf, 0, sizeof(*conf));
	conf->n = n;
	for (uint32_t i = 0; i < n; i++) {
		/* Distinct non-zero ids: a random high part plus the slot. */
		conf->members[i].id = (tu_rnd(seed, 2) ? tu_splitmix(seed) << 5 : 0) + i + 1;
		conf->members[i].role = (uint8_t)(1 + tu_rnd(seed, 2));
	}
}

static void random_bytes(uint64_t *seed, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)tu_splitmix(seed);
}

static void random_entry(uint64_t *seed, struct sample *s, struct raft_entry *e)
{
	e->term = rnd_u64(seed);
	e->index = rnd_u64(seed);
	e->type = (uint8_t)(1 + tu_rnd(seed, 3));
	if (e->type == RAFT_ENTRY_CONF) {
		struct raft_conf conf;
		struct sp_buf b;
		random_conf(seed, &conf, (uint32_t)tu_rnd(seed, 5));
		sp_buf_init(&b);
		raft_conf_encode(&conf, &b);
		e->len = (uint32_t)b.len;
		uint8_t *p = sample_alloc(s, b.len);
		memcpy(p, sp_buf_begin(&b), b.len);
		e->data = p;
		sp_buf_free(&b);
	} else {
		e->len = (uint32_t)tu_rnd(seed, 40);
		uint8_t *p = sample_alloc(s, e->len);
		random_bytes(seed, p, e->len);
		e->data = e->len ? p : NULL;
	}
}

/* random_msg fills s with a message of the given type whose every field
 * that type uses is random, and whose other fields are zero. */
static void random_msg(uint64_t *seed, int type, struct sample *s)
{
	struct raft_msg *m = &s->msg;

	memset(s, 0, sizeof(*s));
	m->type = (uint8_t)type;
	m->from = rnd_u64(seed);
	m->to = rnd_u64(seed);
	m->term = rnd_u64(seed);
	switch (type) {
	case RAFT_MSG_APPEND:
		m->prev_index = rnd_u64(seed);
		m->prev_term = rnd_u64(seed);
		m->commit = rnd_u64(seed);
		m->ctx = rnd_u64(seed);
		m->n_entries = (uint32_t)tu_rnd(seed, MAX_ENTRIES + 1);
		for (uint32_t i = 0; i < m->n_entries; i++)
			random_entry(seed, s, &s->entries[i]);
		m->entries = m->n_entries ? s->entries : NULL;
		break;
	case RAFT_MSG_APPEND_RESP:
		m->index = rnd_u64(seed);
		m->hint = rnd_u64(seed);
		m->ctx = rnd_u64(seed);
		m->reject = tu_rnd(seed, 2);
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		m->index = rnd_u64(seed);
		m->log_term = rnd_u64(seed);
		m->transfer = tu_rnd(seed, 2);
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		m->reject = tu_rnd(seed, 2);
		break;
	case RAFT_MSG_SNAPSHOT: {
		m->snap.index = rnd_u64(seed);
		m->snap.term = rnd_u64(seed);
		random_conf(seed, &m->snap.conf, (uint32_t)tu_rnd(seed, RAFT_MAX_MEMBERS + 1));
		m->offset = rnd_u64(seed);
		m->len = (uint32_t)tu_rnd(seed, 200);
		uint8_t *p = sample_alloc(s, m->len);
		random_bytes(seed, p, m->len);
		m->data = m->len ? p : NULL;
		m->last = tu_rnd(seed, 2);
		break;
	}
	case RAFT_MSG_SNAPSHOT_RESP:
		m->snap.index = rnd_u64(seed);
		m->snap.term = rnd_u64(seed);
		m->offset = rnd_u64(seed);
		m->hint = rnd_u64(seed);
		m->last = tu_rnd(seed, 2);
		m->reject = tu_rnd(seed, 2);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		break;
	case RAFT_MSG_READ_INDEX:
		m->ctx = rnd_u64(seed);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		m->ctx = rnd_u64(seed);
		m->index = rnd_u64(seed);
		m->reject = tu_rnd(seed, 2);
		break;
	default:
		fail_msg("no generator for type %d", type);
	}
}

static int conf_equal(const struct raft_conf *a, const struct raft_conf *b)
{
	if (a->n != b->n)
		return 0;
	for (uint32_t i = 0; i < a->n; i++)
		if (a->members[i].id != b->members[i].id ||
		    a->members[i].role != b->members[i].role)
			return 0;
	return 1;
}

static int bytes_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

/* msg_equal compares every field; pointers are compared by what they point
 * to. */
static int msg_equal(const struct raft_msg *a, const struct raft_msg *b)
{
	if (a->type != b->type || a->from != b->from || a->to != b->to || a->term != b->term ||
	    a->prev_index != b->prev_index || a->prev_term != b->prev_term ||
	    a->commit != b->commit || a->n_entries != b->n_entries || a->index != b->index ||
	    a->hint != b->hint || a->reject != b->reject || a->log_term != b->log_term ||
	    a->transfer != b->transfer || a->ctx != b->ctx || a->snap.index != b->snap.index ||
	    a->snap.term != b->snap.term || !conf_equal(&a->snap.conf, &b->snap.conf) ||
	    a->offset != b->offset || a->len != b->len || a->last != b->last)
		return 0;
	if ((a->len != 0) && !bytes_equal(a->data, b->data, a->len))
		return 0;
	for (uint32_t i = 0; i < a->n_entries; i++) {
		const struct raft_entry *x = &a->entries[i], *y = &b->entries[i];
		if (x->term != y->term || x->index != y->index || x->type != y->type ||
		    x->len != y->len || !bytes_equal(x->data, y->data, x->len))
			return 0;
	}
	return 1;
}

/* decode_exact decodes len bytes from a heap copy of exactly that size, so
 * AddressSanitizer catches any read past the end. */
static int decode_exact(const uint8_t *p, size_t len, struct raft_msg *msg,
			struct raft_entry *entries, uint32_t max_entries, uint8_t **copy)
{
	*copy = malloc(len ? len : 1);
	assert_non_null(*copy);
	if (len)
		memcpy(*copy, p, len);
	return raft_msg_decode(*copy, len, msg, entries, max_entries);
}

static int decode_copy(const uint8_t *p, size_t len, uint32_t max_entries)
{
	struct raft_msg msg;
	struct raft_entry entries[MAX_ENTRIES + 1];
	uint8_t *copy;
	int rc = decode_exact(p, len, &msg, entries, max_entries, &copy);
	free(copy);
	return rc;
}

static int is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* ---------------------------------------------------------------------- */
/* Round trip                                                              */

/*
 * Every message of every type encodes and decodes to itself; decoded
 * entries and data point into the input; and the encoding is canonical:
 * garbage in fields the type does not use changes no byte and decodes as
 * zero.
 */
static void test_prop_roundtrip(void **state)
{
	(void)state;
	uint64_t base = tu_seed();

	for (int iter = 0; iter < 3000; iter++) {
		uint64_t seed = base + (uint64_t)iter * 0x9e3779b97f4a7c15ull, s = seed;
		int type = RAFT_MSG_APPEND + iter % (RAFT_MSG__LAST - RAFT_MSG_APPEND);
		struct sample sample;
		struct sp_buf b, noisy_b;
		struct raft_msg back;
		struct raft_entry entries[MAX_ENTRIES];
		uint8_t *copy;

		random_msg(&s, type, &sample);
		sp_buf_init(&b);
		raft_msg_encode(&sample.msg, &b);
		int rc = decode_exact((const uint8_t *)sp_buf_begin(&b), b.len, &back, entries,
				      MAX_ENTRIES, &copy);
		if (rc != 0 || !msg_equal(&sample.msg, &back)) {
			fprintf(stderr,
				"round trip of %s failed (rc %d); SPECTRA_SEED=%" PRIu64
				" iteration %d (seed %" PRIu64 ")\n",
				raft_msg_type_name(type), rc, base, iter, seed);
			fail();
		}
		for (uint32_t i = 0; i < back.n_entries; i++) {
			const struct raft_entry *e = &back.entries[i];
			assert_ptr_equal(back.entries, entries);
			assert_true(e->data >= copy && e->data + e->len <= copy + b.len);
		}
		if (back.len)
			assert_true(back.data >= copy && back.data + back.len <= copy + b.len);
		free(copy);

		/* Unused fields: fill every byte of a copy with noise, put the
		 * used fields back, and expect the same bytes. */
		struct raft_msg noisy;
		random_bytes(&s, (uint8_t *)&noisy, sizeof(noisy));
		/* A bool holding anything but 0 or 1 may not even be read. */
		noisy.reject = tu_rnd(&s, 2);
		noisy.transfer = tu_rnd(&s, 2);
		noisy.last = tu_rnd(&s, 2);
		noisy.type = sample.msg.type;
		noisy.from = sample.msg.from;
		noisy.to = sample.msg.to;
		noisy.term = sample.msg.term;
		switch (type) {
		case RAFT_MSG_APPEND:
			noisy.prev_index = sample.msg.prev_index;
			noisy.prev_term = sample.msg.prev_term;
			noisy.commit = sample.msg.commit;
			noisy.ctx = sample.msg.ctx;
			noisy.n_entries = sample.msg.n_entries;
			noisy.entries = sample.msg.entries;
			break;
		case RAFT_MSG_APPEND_RESP:
			noisy.index = sample.msg.index;
			noisy.hint = sample.msg.hint;
			noisy.ctx = sample.msg.ctx;
			noisy.reject = sample.msg.reject;
			break;
		case RAFT_MSG_VOTE:
		case RAFT_MSG_PREVOTE:
			noisy.index = sample.msg.index;
			noisy.log_term = sample.msg.log_term;
			noisy.transfer = sample.msg.transfer;
			break;
		case RAFT_MSG_VOTE_RESP:
		case RAFT_MSG_PREVOTE_RESP:
			noisy.reject = sample.msg.reject;
			break;
		case RAFT_MSG_SNAPSHOT:
			noisy.snap = sample.msg.snap;
			noisy.offset = sample.msg.offset;
			noisy.len = sample.msg.len;
			noisy.data = sample.msg.data;
			noisy.last = sample.msg.last;
			break;
		case RAFT_MSG_SNAPSHOT_RESP:
			noisy.snap.index = sample.msg.snap.index;
			noisy.snap.term = sample.msg.snap.term;
			noisy.hint = sample.msg.hint;
			noisy.offset = sample.msg.offset;
			noisy.last = sample.msg.last;
			noisy.reject = sample.msg.reject;
			break;
		case RAFT_MSG_READ_INDEX:
			noisy.ctx = sample.msg.ctx;
			break;
		case RAFT_MSG_READ_INDEX_RESP:
			noisy.ctx = sample.msg.ctx;
			noisy.index = sample.msg.index;
			noisy.reject = sample.msg.reject;
			break;
		}
		sp_buf_init(&noisy_b);
		raft_msg_encode(&noisy, &noisy_b);
		if (noisy_b.len != b.len ||
		    memcmp(sp_buf_begin(&noisy_b), sp_buf_begin(&b), b.len)) {
			fprintf(
			    stderr,
			    "unused fields of %s leaked into the encoding; SPECTRA_SEED=%" PRIu64
			    " iteration %d\n",
			    raft_msg_type_name(type), base, iter);
			fail();
		}
		sp_buf_free(&noisy_b);
		sp_buf_free(&b);
	}
}

/* Encoding appends: two messages in one buffer, each decodable alone. */
static void test_encode_appends(void **state)
{
	(void)state;
	uint64_t s = 42;
	struct sample a, c;
	struct sp_buf b;
	struct raft_msg back;
	struct raft_entry entries[MAX_ENTRIES];

	random_msg(&s, RAFT_MSG_APPEND, &a);
	random_msg(&s, RAFT_MSG_SNAPSHOT, &c);
	sp_buf_init(&b);
	sp_buf_append(&b, "xy", 2);
	raft_msg_encode(&a.msg, &b);
	size_t mid = b.len;
	raft_msg_encode(&c.msg, &b);
	const uint8_t *p = (const uint8_t *)sp_buf_begin(&b);
	assert_int_equal(raft_msg_decode(p + 2, mid - 2, &back, entries, MAX_ENTRIES), 0);
	assert_true(msg_equal(&a.msg, &back));
	assert_int_equal(raft_msg_decode(p + mid, b.len - mid, &back, entries, MAX_ENTRIES), 0);
	assert_true(msg_equal(&c.msg, &back));
	sp_buf_free(&b);
}

/* ---------------------------------------------------------------------- */
/* Exact bytes                                                             */

static void expect_bytes(const struct sp_buf *b, const uint8_t *want, size_t n)
{
	if (b->len != n || memcmp(sp_buf_begin(b), want, n) != 0) {
		fprintf(stderr, "got %zu bytes:", b->len);
		for (size_t i = 0; i < b->len; i++)
			fprintf(stderr, " %02x", (uint8_t)sp_buf_begin(b)[i]);
		fprintf(stderr, "\n");
		fail();
	}
}

/* The layout is part of the protocol between versions of spectrad: pin it. */
static void test_golden_bytes(void **state)
{
	(void)state;
	struct sp_buf b;
	sp_buf_init(&b);

	struct raft_msg vote = {.type = RAFT_MSG_VOTE,
				.from = 1,
				.to = 0x0203,
				.term = 0x0102030405060708ull,
				.index = 9,
				.log_term = 7,
				.transfer = true};
	const uint8_t vote_want[] = {
	    1,	  3,					    /* version, type */
	    1,	  0,	0,    0,    0,	  0,	0,    0,    /* from */
	    0x03, 0x02, 0,    0,    0,	  0,	0,    0,    /* to */
	    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* term */
	    9,	  0,	0,    0,    0,	  0,	0,    0,    /* index */
	    7,	  0,	0,    0,    0,	  0,	0,    0,    /* log_term */
	    1,						    /* transfer */
	};
	raft_msg_encode(&vote, &b);
	expect_bytes(&b, vote_want, sizeof(vote_want));

	sp_buf_clear(&b);
	const uint8_t data[] = {0xaa, 0xbb};
	struct raft_entry e = {
	    .term = 2, .index = 3, .type = RAFT_ENTRY_NORMAL, .len = 2, .data = data};
	struct raft_msg app = {.type = RAFT_MSG_APPEND,
			       .from = 1,
			       .to = 2,
			       .term = 2,
			       .prev_index = 2,
			       .prev_term = 1,
			       .commit = 1,
			       .ctx = 5,
			       .n_entries = 1,
			       .entries = &e};
	const uint8_t app_want[] = {
	    1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,	 0,
	    0, 0, 0,		    /* hdr */
	    2, 0, 0, 0, 0, 0, 0, 0, /* prev_index */
	    1, 0, 0, 0, 0, 0, 0, 0, /* prev_term */
	    1, 0, 0, 0, 0, 0, 0, 0, /* commit */
	    5, 0, 0, 0, 0, 0, 0, 0, /* ctx */
	    1, 0, 0, 0,		    /* n_entries */
	    2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0xaa, 0xbb, /* entry */
	};
	raft_msg_encode(&app, &b);
	expect_bytes(&b, app_want, sizeof(app_want));

	sp_buf_clear(&b);
	struct raft_conf conf = {.n = 2};
	conf.members[0].id = 1;
	conf.members[0].role = RAFT_VOTER;
	conf.members[1].id = 0x100;
	conf.members[1].role = RAFT_LEARNER;
	const uint8_t conf_want[] = {1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 2};
	raft_conf_encode(&conf, &b);
	expect_bytes(&b, conf_want, sizeof(conf_want));

	/* A heartbeat is 62 bytes, as the format comment says. */
	sp_buf_clear(&b);
	struct raft_msg hb = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1};
	raft_msg_encode(&hb, &b);
	assert_int_equal(b.len, 62);
	sp_buf_free(&b);
}

/* ---------------------------------------------------------------------- */
/* Refusals                                                                */

/* Every proper prefix of every valid message is refused, and a refused
 * decode leaves the message all zero. */
static void test_truncations_refused(void **state)
{
	(void)state;
	uint64_t base = tu_seed();

	for (int iter = 0; iter < 600; iter++) {
		uint64_t seed = base + (uint64_t)iter * 0x9e3779b97f4a7c15ull, s = seed;
		int type = RAFT_MSG_APPEND + iter % (RAFT_MSG__LAST - RAFT_MSG_APPEND);
		struct sample sample;
		struct sp_buf b;

		random_msg(&s, type, &sample);
		sp_buf_init(&b);
		raft_msg_encode(&sample.msg, &b);
		const uint8_t *p = (const uint8_t *)sp_buf_begin(&b);
		for (size_t n = 0; n < b.len; n++) {
			struct raft_msg msg;
			struct raft_entry entries[MAX_ENTRIES];
			uint8_t *copy;
			memset(&msg, 0xa5, sizeof(msg));
			int rc = decode_exact(p, n, &msg, entries, MAX_ENTRIES, &copy);
			free(copy);
			if (rc != SP_ERR_PROTO || !is_zero(&msg, sizeof(msg))) {
				fprintf(stderr,
					"%s cut to %zu of %zu bytes: rc %d; SPECTRA_SEED=%" PRIu64
					" iteration %d\n",
					raft_msg_type_name(type), n, b.len, rc, base, iter);
				fail();
			}
		}
		sp_buf_free(&b);
	}
}

static void test_trailing_byte_refused(void **state)
{
	(void)state;
	uint64_t s = tu_seed();

	for (int type = RAFT_MSG_APPEND; type < RAFT_MSG__LAST; type++) {
		struct sample sample;
		struct sp_buf b;
		random_msg(&s, type, &sample);
		sp_buf_init(&b);
		raft_msg_encode(&sample.msg, &b);
		assert_int_equal(decode_copy((const uint8_t *)sp_buf_begin(&b), b.len, MAX_ENTRIES),
				 0);
		sp_buf_append(&b, "\0", 1);
		assert_int_equal(decode_copy((const uint8_t *)sp_buf_begin(&b), b.len, MAX_ENTRIES),
				 SP_ERR_PROTO);
		sp_buf_free(&b);
	}
}

static void test_bad_version_and_type(void **state)
{
	(void)state;
	struct raft_msg m = {.type = RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 2, .term = 3};
	struct sp_buf b;
	sp_buf_init(&b);
	raft_msg_encode(&m, &b);
	uint8_t *p = (uint8_t *)sp_buf_begin(&b);
	assert_int_equal(b.len, 26);
	assert_int_equal(decode_copy(p, b.len, 0), 0);

	const uint8_t versions[] = {0, 2, 0x81, 255};
	for (size_t i = 0; i < sizeof(versions); i++) {
		p[0] = versions[i];
		assert_int_equal(decode_copy(p, b.len, 0), SP_ERR_PROTO);
	}
	p[0] = 1;
	const uint8_t types[] = {0, RAFT_MSG__LAST, RAFT_MSG__LAST + 1, 0x80, 255};
	for (size_t i = 0; i < sizeof(types); i++) {
		p[1] = types[i];
		assert_int_equal(decode_copy(p, b.len, 0), SP_ERR_PROTO);
	}
	/* TIMEOUT_NOW's bytes read as another type are too short for it. */
	for (int t = RAFT_MSG_APPEND; t < RAFT_MSG__LAST; t++) {
		p[1] = (uint8_t)t;
		assert_int_equal(decode_copy(p, b.len, 0),
				 t == RAFT_MSG_TIMEOUT_NOW ? 0 : SP_ERR_PROTO);
	}
	sp_buf_free(&b);
}

/* Booleans decode only from 0 and 1. */
static void test_bools_strict(void **state)
{
	(void)state;
	struct {
		struct raft_msg msg;
		size_t bool_at; /* offset of a bool byte from the end */
	} cases[] = {
	    {{.type = RAFT_MSG_APPEND_RESP, .reject = true}, 1},
	    {{.type = RAFT_MSG_VOTE, .transfer = true}, 1},
	    {{.type = RAFT_MSG_VOTE_RESP, .reject = true}, 1},
	    {{.type = RAFT_MSG_PREVOTE_RESP, .reject = true}, 1},
	    {{.type = RAFT_MSG_SNAPSHOT, .last = true}, 1},
	    {{.type = RAFT_MSG_SNAPSHOT_RESP, .last = true}, 2},
	    {{.type = RAFT_MSG_SNAPSHOT_RESP, .reject = true}, 1},
	    {{.type = RAFT_MSG_READ_INDEX_RESP, .reject = true}, 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_buf b;
		struct raft_msg back;
		sp_buf_init(&b);
		raft_msg_encode(&cases[i].msg, &b);
		uint8_t *p = (uint8_t *)sp_buf_begin(&b);
		uint8_t *flag = p + b.len - cases[i].bool_at;
		assert_int_equal(*flag, 1);
		assert_int_equal(raft_msg_decode(p, b.len, &back, NULL, 0), 0);
		assert_true(msg_equal(&cases[i].msg, &back));
		const uint8_t bad[] = {2, 3, 0x80, 0xff};
		for (size_t j = 0; j < sizeof(bad); j++) {
			*flag = bad[j];
			assert_int_equal(decode_copy(p, b.len, 0), SP_ERR_PROTO);
		}
		sp_buf_free(&b);
	}
}

/* put_le writes v as n little-endian bytes at p. */
static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

#define APPEND_COUNT_AT 58 /* offset of n_entries in an APPEND */

/* Entry counts: at the limit, one past it (TOOBIG), and counts that claim
 * more entries than the bytes hold (PROTO), up to UINT32_MAX. */
static void test_entry_counts(void **state)
{
	(void)state;
	struct raft_entry src[MAX_ENTRIES + 1], out[MAX_ENTRIES + 1];
	for (int i = 0; i < MAX_ENTRIES + 1; i++)
		src[i] = (struct raft_entry){.term = 1,
					     .index = (uint64_t)i + 1,
					     .type = 1,
					     .len = 1,
					     .data = (const uint8_t *)"z"};
	struct raft_msg m = {.type = RAFT_MSG_APPEND,
			     .from = 1,
			     .to = 2,
			     .term = 1,
			     .n_entries = MAX_ENTRIES,
			     .entries = src};
	struct raft_msg back;
	struct sp_buf b;

	sp_buf_init(&b);
	raft_msg_encode(&m, &b);
	uint8_t *p = (uint8_t *)sp_buf_begin(&b);
	assert_int_equal(raft_msg_decode(p, b.len, &back, out, MAX_ENTRIES), 0);
	assert_int_equal(back.n_entries, MAX_ENTRIES);
	/* One fewer slot than entries: well formed but too big. */
	memset(&back, 0x5a, sizeof(back));
	assert_int_equal(raft_msg_decode(p, b.len, &back, out, MAX_ENTRIES - 1), SP_ERR_TOOBIG);
	assert_true(is_zero(&back, sizeof(back)));
	assert_int_equal(decode_copy(p, b.len, 0), SP_ERR_TOOBIG);
	/* Too big and also malformed is malformed. */
	sp_buf_append(&b, "", 1);
	p = (uint8_t *)sp_buf_begin(&b);
	assert_int_equal(decode_copy(p, b.len, MAX_ENTRIES - 1), SP_ERR_PROTO);
	b.len--;

	/* Counts that overrun what follows. */
	const uint32_t counts[] = {MAX_ENTRIES + 1, MAX_ENTRIES * 2, 0x10000, 0x7fffffff,
				   UINT32_MAX};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		put_le(p + APPEND_COUNT_AT, counts[i], 4);
		assert_int_equal(decode_copy(p, b.len, MAX_ENTRIES), SP_ERR_PROTO);
		assert_int_equal(decode_copy(p, b.len, 0), SP_ERR_PROTO);
	}
	/* A count smaller than the entries present leaves trailing bytes. */
	put_le(p + APPEND_COUNT_AT, MAX_ENTRIES - 1, 4);
	assert_int_equal(decode_copy(p, b.len, MAX_ENTRIES), SP_ERR_PROTO);
	sp_buf_free(&b);

	/* A huge entry count on an empty body must fail fast, not loop. */
	struct raft_msg hb = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1};
	sp_buf_init(&b);
	raft_msg_encode(&hb, &b);
	p = (uint8_t *)sp_buf_begin(&b);
	put_le(p + APPEND_COUNT_AT, UINT32_MAX, 4);
	assert_int_equal(decode_copy(p, b.len, MAX_ENTRIES), SP_ERR_PROTO);
	sp_buf_free(&b);
}

/* Entry fields: type outside 1..3, a length that overruns, a CONF entry
 * whose data is not a conf. */
static void test_entry_fields(void **state)
{
	(void)state;
	const uint8_t conf_bytes[] = {1, 1, 5, 0, 0, 0, 0, 0, 0, 0, 1};
	struct raft_entry e = {.term = 1,
			       .index = 1,
			       .type = RAFT_ENTRY_CONF,
			       .len = sizeof(conf_bytes),
			       .data = conf_bytes};
	struct raft_msg m = {
	    .type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1, .n_entries = 1, .entries = &e};
	struct raft_entry out[1];
	struct raft_msg back;
	struct sp_buf b;

	sp_buf_init(&b);
	raft_msg_encode(&m, &b);
	uint8_t *p = (uint8_t *)sp_buf_begin(&b);
	uint8_t *entry = p + APPEND_COUNT_AT + 4;
	assert_int_equal(raft_msg_decode(p, b.len, &back, out, 1), 0);
	assert_true(msg_equal(&m, &back));

	const uint8_t types[] = {0, 4, 0x80, 255};
	for (size_t i = 0; i < sizeof(types); i++) {
		entry[16] = types[i];
		assert_int_equal(decode_copy(p, b.len, 1), SP_ERR_PROTO);
	}
	for (uint8_t t = RAFT_ENTRY_NORMAL; t <= RAFT_ENTRY_NOOP; t++) {
		entry[16] = t;
		assert_int_equal(decode_copy(p, b.len, 1), 0);
	}
	entry[16] = RAFT_ENTRY_CONF;
	/* The conf inside names member 0: refused. */
	entry[21 + 2] = 0;
	assert_int_equal(decode_copy(p, b.len, 1), SP_ERR_PROTO);
	entry[21 + 2] = 5;
	assert_int_equal(decode_copy(p, b.len, 1), 0);

	const uint32_t lens[] = {sizeof(conf_bytes) + 1, 0x10000, UINT32_MAX};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		put_le(entry + 17, lens[i], 4);
		assert_int_equal(decode_copy(p, b.len, 1), SP_ERR_PROTO);
	}
	sp_buf_free(&b);
}

/* SNAPSHOT's data length and embedded conf are checked like the rest. */
static void test_snapshot_fields(void **state)
{
	(void)state;
	uint64_t s = 99;
	struct sample sample;
	struct sp_buf b;

	random_msg(&s, RAFT_MSG_SNAPSHOT, &sample);
	sample.msg.snap.conf.n = 1;
	sample.msg.snap.conf.members[0].id = 3;
	sample.msg.snap.conf.members[0].role = RAFT_VOTER;
	sp_buf_init(&b);
	raft_msg_encode(&sample.msg, &b);
	uint8_t *p = (uint8_t *)sp_buf_begin(&b);
	size_t conf_at = 26 + 16, len_at = conf_at + 11 + 8;
	assert_int_equal(decode_copy(p, b.len, 0), 0);

	p[conf_at] = 2; /* conf version */
	assert_int_equal(decode_copy(p, b.len, 0), SP_ERR_PROTO);
	p[conf_at] = 1;
	p[conf_at + 10] = 3; /* member role */
	assert_int_equal(decode_copy(p, b.len, 0), SP_ERR_PROTO);
	p[conf_at + 10] = RAFT_LEARNER;
	assert_int_equal(decode_copy(p, b.len, 0), 0);
	p[conf_at + 1] = 2; /* two members, but the second is not there */
	assert_int_equal(decode_copy(p, b.len, 0), SP_ERR_PROTO);
	p[conf_at + 1] = 1;

	put_le(p + len_at, (uint64_t)sample.msg.len + 1, 4);
	assert_int_equal(decode_copy(p, b.len, 0), SP_ERR_PROTO);
	put_le(p + len_at, UINT32_MAX, 4);
	assert_int_equal(decode_copy(p, b.len, 0), SP_ERR_PROTO);
	sp_buf_free(&b);
}

/* ---------------------------------------------------------------------- */
/* Configurations                                                          */

static void conf_bytes(struct sp_buf *b, uint32_t n, const uint64_t *ids, const uint8_t *roles)
{
	uint8_t m[9];
	sp_buf_clear(b);
	sp_buf_append(b, &(uint8_t){1}, 1);
	sp_buf_append(b, &(uint8_t){(uint8_t)n}, 1);
	for (uint32_t i = 0; i < n; i++) {
		put_le(m, ids[i], 8);
		m[8] = roles[i];
		sp_buf_append(b, m, 9);
	}
}

static int conf_decode_copy(const struct sp_buf *b, struct raft_conf *conf)
{
	uint8_t *copy = malloc(b->len ? b->len : 1);
	assert_non_null(copy);
	memcpy(copy, sp_buf_begin(b), b->len);
	int rc = raft_conf_decode(copy, b->len, conf);
	free(copy);
	return rc;
}

static void test_conf_edges(void **state)
{
	(void)state;
	uint64_t ids[RAFT_MAX_MEMBERS + 1];
	uint8_t roles[RAFT_MAX_MEMBERS + 1];
	struct raft_conf back;
	struct sp_buf b;

	for (int i = 0; i <= RAFT_MAX_MEMBERS; i++) {
		ids[i] = 0x1000 + (uint64_t)i;
		roles[i] = (uint8_t)(i % 3 == 0 ? RAFT_LEARNER : RAFT_VOTER);
	}
	sp_buf_init(&b);

	/* 0 members: valid (a joining node's empty configuration). */
	conf_bytes(&b, 0, ids, roles);
	memset(&back, 0xee, sizeof(back));
	assert_int_equal(conf_decode_copy(&b, &back), 0);
	assert_int_equal(back.n, 0);
	for (int i = 0; i < RAFT_MAX_MEMBERS; i++)
		assert_true(back.members[i].id == 0 && back.members[i].role == 0);

	/* 16 members: valid, and what raft_conf_encode writes. */
	conf_bytes(&b, RAFT_MAX_MEMBERS, ids, roles);
	assert_int_equal(conf_decode_copy(&b, &back), 0);
	assert_int_equal(back.n, RAFT_MAX_MEMBERS);
	for (int i = 0; i < RAFT_MAX_MEMBERS; i++) {
		assert_int_equal(back.members[i].id, ids[i]);
		assert_int_equal(back.members[i].role, roles[i]);
		assert_int_equal(raft_conf_role(&back, ids[i]), roles[i]);
	}
	assert_int_equal(raft_conf_role(&back, ids[RAFT_MAX_MEMBERS]), 0);
	assert_int_equal(raft_conf_role(&back, RAFT_NONE), 0);
	struct sp_buf again;
	sp_buf_init(&again);
	raft_conf_encode(&back, &again);
	assert_int_equal(again.len, b.len);
	assert_memory_equal(sp_buf_begin(&again), sp_buf_begin(&b), b.len);
	sp_buf_free(&again);

	/* 17 members: refused. */
	conf_bytes(&b, RAFT_MAX_MEMBERS + 1, ids, roles);
	memset(&back, 0xee, sizeof(back));
	assert_int_equal(conf_decode_copy(&b, &back), SP_ERR_PROTO);
	/* A refused decode leaves *conf alone. */
	assert_int_equal(back.n, 0xeeeeeeee);

	/* Duplicate ids, wherever the second one sits. */
	for (int at = 1; at < RAFT_MAX_MEMBERS; at++) {
		uint64_t dup[RAFT_MAX_MEMBERS];
		memcpy(dup, ids, sizeof(dup));
		dup[at] = dup[at / 2];
		conf_bytes(&b, RAFT_MAX_MEMBERS, dup, roles);
		assert_int_equal(conf_decode_copy(&b, &back), SP_ERR_PROTO);
	}
	/* Zero id. */
	uint64_t zero[2] = {7, 0};
	conf_bytes(&b, 2, zero, roles);
	assert_int_equal(conf_decode_copy(&b, &back), SP_ERR_PROTO);
	/* Bad roles. */
	const uint8_t bad_roles[] = {0, 3, 255};
	for (size_t i = 0; i < sizeof(bad_roles); i++) {
		conf_bytes(&b, 1, ids, &bad_roles[i]);
		assert_int_equal(conf_decode_copy(&b, &back), SP_ERR_PROTO);
	}
	/* Version, truncation, trailing byte. */
	conf_bytes(&b, 3, ids, roles);
	assert_int_equal(conf_decode_copy(&b, &back), 0);
	for (size_t n = 0; n < b.len; n++) {
		struct sp_buf cut;
		sp_buf_init(&cut);
		sp_buf_append(&cut, sp_buf_begin(&b), n);
		assert_int_equal(conf_decode_copy(&cut, &back), SP_ERR_PROTO);
		sp_buf_free(&cut);
	}
	sp_buf_append(&b, "", 1);
	assert_int_equal(conf_decode_copy(&b, &back), SP_ERR_PROTO);
	conf_bytes(&b, 3, ids, roles);
	sp_buf_begin(&b)[0] = 2;
	assert_int_equal(conf_decode_copy(&b, &back), SP_ERR_PROTO);
	sp_buf_free(&b);
}

/* Random configurations round-trip. */
static void test_prop_conf_roundtrip(void **state)
{
	(void)state;
	uint64_t base = tu_seed();
	for (int iter = 0; iter < 2000; iter++) {
		uint64_t s = base + (uint64_t)iter * 0x9e3779b97f4a7c15ull;
		struct raft_conf conf, back;
		struct sp_buf b;
		random_conf(&s, &conf, (uint32_t)tu_rnd(&s, RAFT_MAX_MEMBERS + 1));
		sp_buf_init(&b);
		raft_conf_encode(&conf, &b);
		if (conf_decode_copy(&b, &back) != 0 || !conf_equal(&conf, &back)) {
			fprintf(stderr,
				"conf round trip failed; SPECTRA_SEED=%" PRIu64 " iteration %d\n",
				base, iter);
			fail();
		}
		sp_buf_free(&b);
	}
}

/* ---------------------------------------------------------------------- */
/* Names                                                                   */

static void test_names(void **state)
{
	(void)state;
	for (int t = RAFT_MSG_APPEND; t < RAFT_MSG__LAST; t++) {
		const char *name = raft_msg_type_name(t);
		assert_non_null(name);
		assert_string_not_equal(name, "unknown");
		for (int u = RAFT_MSG_APPEND; u < t; u++)
			assert_string_not_equal(name, raft_msg_type_name(u));
	}
	assert_string_equal(raft_msg_type_name(RAFT_MSG_APPEND), "append");
	assert_string_equal(raft_msg_type_name(RAFT_MSG_READ_INDEX_RESP), "read_index_resp");
	assert_string_equal(raft_msg_type_name(0), "unknown");
	assert_string_equal(raft_msg_type_name(RAFT_MSG__LAST), "unknown");
	assert_string_equal(raft_msg_type_name(-1), "unknown");

	assert_string_equal(raft_role_name(RAFT_FOLLOWER), "follower");
	assert_string_equal(raft_role_name(RAFT_PRECANDIDATE), "precandidate");
	assert_string_equal(raft_role_name(RAFT_CANDIDATE), "candidate");
	assert_string_equal(raft_role_name(RAFT_LEADER), "leader");
	assert_string_equal(raft_role_name((enum raft_role)9), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prop_roundtrip),
	    cmocka_unit_test(test_encode_appends),
	    cmocka_unit_test(test_golden_bytes),
	    cmocka_unit_test(test_truncations_refused),
	    cmocka_unit_test(test_trailing_byte_refused),
	    cmocka_unit_test(test_bad_version_and_type),
	    cmocka_unit_test(test_bools_strict),
	    cmocka_unit_test(test_entry_counts),
	    cmocka_unit_test(test_entry_fields),
	    cmocka_unit_test(test_snapshot_fields),
	    cmocka_unit_test(test_conf_edges),
	    cmocka_unit_test(test_prop_conf_roundtrip),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
