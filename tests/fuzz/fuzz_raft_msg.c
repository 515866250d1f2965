/*
 * fuzz_raft_msg: libFuzzer target for the Raft codec
 * (src/engine/strong/raft/codec.c).
 *
 * The input, copied to a buffer of exactly its size so ASan sees any read
 * past the end, is decoded as one message with room for MAX_ENTRIES
 * entries. Then:
 *  - the verdict must not depend on the room given, except as documented:
 *    a refused message (SP_ERR_PROTO) is refused with any room, and a
 *    message with n entries decodes with room n and is SP_ERR_TOOBIG with
 *    room n - 1;
 *  - a refused decode leaves the message all zero;
 *  - a decoded message's entries and data lie inside the input, its bools
 *    are 0 or 1 and its type has a name;
 *  - re-encoding gives back exactly the input (the format has one encoding
 *    per message), and decoding that gives the same fields again.
 * The same input is also decoded as a configuration, which must re-encode
 * to the input when accepted. Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "engine/strong/raft/raft.h"

#define MAX_ENTRIES 16

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_raft_msg: %s:%d: check failed: %s\n", __FILE__,      \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static int is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static int within(const uint8_t *p, size_t n, const uint8_t *in, size_t size)
{
	return n == 0 || (p >= in && p <= in + size && n <= (size_t)(in + size - p));
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
	if (!bytes_equal(a->data, b->data, a->len))
		return 0;
	for (uint32_t i = 0; i < a->n_entries; i++) {
		const struct raft_entry *x = &a->entries[i], *y = &b->entries[i];
		if (x->term != y->term || x->index != y->index || x->type != y->type ||
		    x->len != y->len || !bytes_equal(x->data, y->data, x->len))
			return 0;
	}
	return 1;
}

static void check_decoded(const struct raft_msg *m, const uint8_t *in, size_t size)
{
	uint8_t b;

	CHECK(m->type >= RAFT_MSG_APPEND && m->type < RAFT_MSG__LAST);
	CHECK(strcmp(raft_msg_type_name(m->type), "unknown") != 0);
	/* Read the bools as bytes: UBSan would stop on a bad bool load, and
	 * the point is to see whether the decoder wrote one. */
	memcpy(&b, &m->reject, 1);
	CHECK(b <= 1);
	memcpy(&b, &m->transfer, 1);
	CHECK(b <= 1);
	memcpy(&b, &m->last, 1);
	CHECK(b <= 1);
	CHECK(m->n_entries <= MAX_ENTRIES);
	CHECK((m->n_entries == 0) == (m->entries == NULL));
	for (uint32_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		CHECK(e->type >= RAFT_ENTRY_NORMAL && e->type <= RAFT_ENTRY_CONF);
		CHECK(within(e->data, e->len, in, size));
		if (e->type == RAFT_ENTRY_CONF) {
			struct raft_conf conf;
			CHECK(raft_conf_decode(e->data, e->len, &conf) == 0);
		}
	}
	CHECK(within(m->data, m->len, in, size));
	CHECK(m->snap.conf.n <= RAFT_MAX_MEMBERS);
	for (uint32_t i = 0; i < m->snap.conf.n; i++)
		CHECK(raft_conf_role(&m->snap.conf, m->snap.conf.members[i].id) ==
		      m->snap.conf.members[i].role);
}

static void fuzz_msg(const uint8_t *in, size_t size)
{
	struct raft_msg msg, again;
	struct raft_entry entries[MAX_ENTRIES], entries2[MAX_ENTRIES];

	int rc = raft_msg_decode(in, size, &msg, entries, MAX_ENTRIES);
	CHECK(rc == 0 || rc == SP_ERR_PROTO || rc == SP_ERR_TOOBIG);
	if (rc != 0) {
		CHECK(is_zero(&msg, sizeof(msg)));
		/* Less room changes nothing about a refusal. */
		CHECK(raft_msg_decode(in, size, &again, entries2, 0) == rc);
		CHECK(is_zero(&again, sizeof(again)));
		return;
	}
	check_decoded(&msg, in, size);

	/* Exactly enough room decodes; one slot less is too big. */
	CHECK(raft_msg_decode(in, size, &again, entries2, msg.n_entries) == 0);
	CHECK(msg_equal(&msg, &again));
	if (msg.n_entries > 0)
		CHECK(raft_msg_decode(in, size, &again, entries2, msg.n_entries - 1) ==
		      SP_ERR_TOOBIG);

	/* Canonical: re-encoding gives the input back, byte for byte. */
	struct sp_buf out;
	sp_buf_init(&out);
	raft_msg_encode(&msg, &out);
	CHECK(out.len == size);
	CHECK(bytes_equal((const uint8_t *)sp_buf_begin(&out), in, size));
	CHECK(raft_msg_decode((const uint8_t *)sp_buf_begin(&out), out.len, &again, entries2,
			      MAX_ENTRIES) == 0);
	CHECK(msg_equal(&msg, &again));
	sp_buf_free(&out);
}

static void fuzz_conf(const uint8_t *in, size_t size)
{
	struct raft_conf conf, again;

	memset(&conf, 0x5a, sizeof(conf));
	int rc = raft_conf_decode(in, size, &conf);
	CHECK(rc == 0 || rc == SP_ERR_PROTO);
	if (rc != 0)
		return;
	CHECK(conf.n <= RAFT_MAX_MEMBERS);
	for (uint32_t i = 0; i < conf.n; i++) {
		CHECK(conf.members[i].id != RAFT_NONE);
		CHECK(raft_conf_role(&conf, conf.members[i].id) == conf.members[i].role);
	}
	struct sp_buf out;
	sp_buf_init(&out);
	raft_conf_encode(&conf, &out);
	CHECK(out.len == size);
	CHECK(bytes_equal((const uint8_t *)sp_buf_begin(&out), in, size));
	CHECK(raft_conf_decode((const uint8_t *)sp_buf_begin(&out), out.len, &again) == 0);
	CHECK(conf_equal(&conf, &again));
	sp_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *in = malloc(size ? size : 1);
	CHECK(in);
	if (size)
		memcpy(in, data, size);
	fuzz_msg(in, size);
	fuzz_conf(in, size);
	free(in);
	return 0;
}
