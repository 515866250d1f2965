/*
 * fuzz_ev_msg: libFuzzer target for the eventual engine's message codec
 * (src/engine/eventual/msg.c), whose decoder reads bytes from peers.
 *
 * The input, copied to a buffer of exactly its size so ASan sees any read
 * past the end, is decoded. A decode must return 0 or SP_ERR_PROTO; a
 * message it accepts must re-encode, through the public encoders, to
 * exactly the input bytes (the format has one encoding per message, so
 * nothing is skipped or read twice), and every item of an AE_ITEMS
 * message and every argument of a PROXY op must be readable. Any
 * violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "engine/eventual/msg.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_ev_msg: check failed: %s (line %d)\n", #cond,        \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void reencode(const struct ev_msg *m, struct sp_buf *out)
{
	switch (m->type) {
	case EVM_PING:
	case EVM_PONG:
		ev_msg_ping(out, m->type == EVM_PONG);
		break;
	case EVM_WRITE:
		ev_msg_write(out, m->id, m->hint_for, m->seen_ts, &m->item);
		break;
	case EVM_WRITE_ACK:
		ev_msg_write_ack(out, m->id, m->status);
		break;
	case EVM_READ:
		ev_msg_read(out, m->id, m->item.rf, m->item.key.p, m->item.key.len);
		break;
	case EVM_READ_REPLY:
		ev_msg_read_reply(out, m->id, m->status, m->item.type, m->item.state.p,
				  m->item.state.len);
		break;
	case EVM_PROXY: {
		size_t pos = 0;
		struct ev_bytes a;
		for (uint32_t i = 0; i < m->op.nargs; i++)
			CHECK(ev_op_arg(&m->op.args, &pos, &a) == 0);
		CHECK(pos == m->op.args.len);
		ev_msg_proxy(out, m->id, &m->op);
		break;
	}
	case EVM_PROXY_REPLY: {
		/* The text is a byte string on the wire but a C string to the
		 * encoder: only texts without NUL bytes round-trip. */
		char *text = malloc(m->text.len + 1);
		memcpy(text, m->text.p, m->text.len);
		text[m->text.len] = '\0';
		if (strlen(text) != m->text.len) {
			free(text);
			sp_buf_clear(out);
			return;
		}
		ev_msg_proxy_reply(out, m->id, m->rstatus, m->n, m->acks, m->replicas, m->item.type,
				   m->item.state.p, m->item.state.len, text);
		free(text);
		break;
	}
	case EVM_AE_ROOTS:
	case EVM_AE_LEAVES: {
		size_t at = ev_msg_ae_begin(out, m->type, m->rf);
		sp_buf_append(out, m->body, m->body_len);
		ev_msg_set_count(out, at, m->count);
		break;
	}
	case EVM_AE_ITEMS: {
		size_t at = ev_msg_ae_items_begin(out, m->rf, m->token, m->leafmask, m->want_reply);
		size_t pos = 0;
		for (uint32_t i = 0; i < m->count; i++) {
			struct ev_item it;
			CHECK(ev_msg_next_item(m, &pos, &it) == 0);
			ev_msg_put_item(out, &it);
		}
		CHECK(pos == m->body_len);
		ev_msg_set_count(out, at, m->count);
		break;
	}
	default:
		CHECK(0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = malloc(size ? size : 1);
	if (size)
		memcpy(p, data, size);
	struct ev_msg m;
	int rc = ev_msg_decode(p, size, &m);
	CHECK(rc == 0 || rc == SP_ERR_PROTO);
	if (rc == 0) {
		struct sp_buf out;
		sp_buf_init(&out);
		reencode(&m, &out);
		if (out.len || m.type != EVM_PROXY_REPLY)
			CHECK(out.len == size && memcmp(sp_buf_begin(&out), p, size) == 0);
		sp_buf_free(&out);
	}
	free(p);
	return 0;
}
