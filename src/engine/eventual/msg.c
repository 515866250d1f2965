/*
 * msg: the eventual engine's message codec. See msg.h for the layout.
 */
#include "engine/eventual/msg.h"

#include <string.h>

#include "common/endian.h"
#include "common/err.h"

/* ---- reading ---- */

struct rd {
	const uint8_t *p;
	size_t len, pos;
	int err;
};

static bool need(struct rd *r, size_t n)
{
	if (r->err || r->len - r->pos < n) {
		r->err = SP_ERR_PROTO;
		return false;
	}
	return true;
}

static uint8_t rd_u8(struct rd *r)
{
	return need(r, 1) ? r->p[r->pos++] : 0;
}

static uint32_t rd_u32(struct rd *r)
{
	if (!need(r, 4))
		return 0;
	uint32_t v = sp_get_le32(r->p + r->pos);
	r->pos += 4;
	return v;
}

static uint64_t rd_u64(struct rd *r)
{
	if (!need(r, 8))
		return 0;
	uint64_t v = sp_get_le64(r->p + r->pos);
	r->pos += 8;
	return v;
}

static struct ev_bytes rd_bytes(struct rd *r)
{
	struct ev_bytes b = {NULL, 0};
	uint32_t n = rd_u32(r);
	if (!need(r, n))
		return b;
	b.p = r->p + r->pos;
	b.len = n;
	r->pos += n;
	return b;
}

static void rd_item(struct rd *r, struct ev_item *it)
{
	it->key = rd_bytes(r);
	it->rf = rd_u8(r);
	it->type = rd_u8(r);
	it->state = rd_bytes(r);
}

int ev_msg_next_item(const struct ev_msg *m, size_t *pos, struct ev_item *out)
{
	struct rd r = {m->body, m->body_len, *pos, 0};
	rd_item(&r, out);
	if (r.err)
		return r.err;
	*pos = r.pos;
	return 0;
}

int ev_op_arg(const struct ev_bytes *args, size_t *pos, struct ev_bytes *out)
{
	struct rd r = {args->p, args->len, *pos, 0};
	*out = rd_bytes(&r);
	if (r.err)
		return r.err;
	*pos = r.pos;
	return 0;
}

int ev_msg_decode(const uint8_t *p, size_t len, struct ev_msg *m)
{
	memset(m, 0, sizeof(*m));
	struct rd r = {p, len, 0, 0};
	m->type = rd_u8(&r);
	switch (m->type) {
	case EVM_PING:
	case EVM_PONG:
		break;
	case EVM_WRITE:
		m->id = rd_u64(&r);
		m->hint_for = rd_u64(&r);
		m->seen_ts = rd_u64(&r);
		rd_item(&r, &m->item);
		break;
	case EVM_WRITE_ACK:
		m->id = rd_u64(&r);
		m->status = rd_u8(&r);
		break;
	case EVM_READ:
		m->id = rd_u64(&r);
		m->item.rf = rd_u8(&r);
		m->item.key = rd_bytes(&r);
		break;
	case EVM_READ_REPLY:
		m->id = rd_u64(&r);
		m->status = rd_u8(&r);
		m->item.type = rd_u8(&r);
		m->item.state = rd_bytes(&r);
		break;
	case EVM_PROXY: {
		m->id = rd_u64(&r);
		m->op.kind = rd_u8(&r);
		m->op.level = rd_u8(&r);
		m->op.rf = rd_u8(&r);
		m->op.flags = rd_u8(&r);
		m->op.n = (int64_t)rd_u64(&r);
		m->op.expires_ms = rd_u64(&r);
		m->op.key = rd_bytes(&r);
		m->op.nargs = rd_u32(&r);
		if (r.err || m->op.nargs > EV_MSG_MAX_ARGS)
			return SP_ERR_PROTO;
		m->op.args.p = p + r.pos;
		m->op.args.len = len - r.pos;
		size_t pos = 0;
		struct ev_bytes a;
		for (uint32_t i = 0; i < m->op.nargs; i++)
			if (ev_op_arg(&m->op.args, &pos, &a))
				return SP_ERR_PROTO;
		m->op.args.len = pos;
		r.pos += pos;
		break;
	}
	case EVM_PROXY_REPLY:
		m->id = rd_u64(&r);
		m->rstatus = (int32_t)rd_u32(&r);
		m->n = (int64_t)rd_u64(&r);
		m->acks = rd_u8(&r);
		m->replicas = rd_u8(&r);
		m->item.type = rd_u8(&r);
		m->item.state = rd_bytes(&r);
		m->text = rd_bytes(&r);
		break;
	case EVM_AE_ROOTS:
	case EVM_AE_LEAVES: {
		m->rf = rd_u8(&r);
		m->count = rd_u32(&r);
		size_t each = m->type == EVM_AE_ROOTS ? 16 : 8 + 8 * EV_AE_LEAVES;
		if (r.err || m->count > EV_MSG_MAX_RANGES || !need(&r, (size_t)m->count * each))
			return SP_ERR_PROTO;
		m->body = p + r.pos;
		m->body_len = (size_t)m->count * each;
		r.pos += m->body_len;
		break;
	}
	case EVM_AE_ITEMS: {
		m->rf = rd_u8(&r);
		m->token = rd_u64(&r);
		m->leafmask = rd_u64(&r);
		m->want_reply = rd_u8(&r);
		m->count = rd_u32(&r);
		if (r.err || m->want_reply > 1)
			return SP_ERR_PROTO;
		m->body = p + r.pos;
		m->body_len = len - r.pos;
		size_t pos = 0;
		struct ev_item it;
		for (uint32_t i = 0; i < m->count; i++)
			if (ev_msg_next_item(m, &pos, &it))
				return SP_ERR_PROTO;
		m->body_len = pos;
		r.pos += pos;
		break;
	}
	default:
		return SP_ERR_PROTO;
	}
	if (r.err || r.pos != len)
		return SP_ERR_PROTO;
	return 0;
}

/* ---- writing ---- */

static void put_bytes(struct sp_buf *b, const void *p, size_t len)
{
	sp_buf_put_le32(b, (uint32_t)len);
	if (len)
		sp_buf_append(b, p, len);
}

void ev_msg_put_item(struct sp_buf *out, const struct ev_item *it)
{
	put_bytes(out, it->key.p, it->key.len);
	sp_buf_put_u8(out, it->rf);
	sp_buf_put_u8(out, it->type);
	put_bytes(out, it->state.p, it->state.len);
}

void ev_op_put_arg(struct sp_buf *out, const void *p, size_t len)
{
	put_bytes(out, p, len);
}

void ev_msg_ping(struct sp_buf *out, bool pong)
{
	sp_buf_put_u8(out, pong ? EVM_PONG : EVM_PING);
}

void ev_msg_write(struct sp_buf *out, uint64_t id, uint64_t hint_for, uint64_t seen_ts,
		  const struct ev_item *it)
{
	sp_buf_put_u8(out, EVM_WRITE);
	sp_buf_put_le64(out, id);
	sp_buf_put_le64(out, hint_for);
	sp_buf_put_le64(out, seen_ts);
	ev_msg_put_item(out, it);
}

void ev_msg_write_ack(struct sp_buf *out, uint64_t id, uint8_t status)
{
	sp_buf_put_u8(out, EVM_WRITE_ACK);
	sp_buf_put_le64(out, id);
	sp_buf_put_u8(out, status);
}

void ev_msg_read(struct sp_buf *out, uint64_t id, uint8_t rf, const void *key, size_t klen)
{
	sp_buf_put_u8(out, EVM_READ);
	sp_buf_put_le64(out, id);
	sp_buf_put_u8(out, rf);
	put_bytes(out, key, klen);
}

void ev_msg_read_reply(struct sp_buf *out, uint64_t id, uint8_t status, uint8_t type,
		       const void *state, size_t slen)
{
	sp_buf_put_u8(out, EVM_READ_REPLY);
	sp_buf_put_le64(out, id);
	sp_buf_put_u8(out, status);
	sp_buf_put_u8(out, type);
	put_bytes(out, state, slen);
}

void ev_msg_proxy(struct sp_buf *out, uint64_t id, const struct ev_wire_op *op)
{
	sp_buf_put_u8(out, EVM_PROXY);
	sp_buf_put_le64(out, id);
	sp_buf_put_u8(out, op->kind);
	sp_buf_put_u8(out, op->level);
	sp_buf_put_u8(out, op->rf);
	sp_buf_put_u8(out, op->flags);
	sp_buf_put_le64(out, (uint64_t)op->n);
	sp_buf_put_le64(out, op->expires_ms);
	put_bytes(out, op->key.p, op->key.len);
	sp_buf_put_le32(out, op->nargs);
	if (op->args.len)
		sp_buf_append(out, op->args.p, op->args.len);
}

void ev_msg_proxy_reply(struct sp_buf *out, uint64_t id, int32_t status, int64_t n, uint8_t acks,
			uint8_t replicas, uint8_t type, const void *state, size_t slen,
			const char *text)
{
	sp_buf_put_u8(out, EVM_PROXY_REPLY);
	sp_buf_put_le64(out, id);
	sp_buf_put_le32(out, (uint32_t)status);
	sp_buf_put_le64(out, (uint64_t)n);
	sp_buf_put_u8(out, acks);
	sp_buf_put_u8(out, replicas);
	sp_buf_put_u8(out, type);
	put_bytes(out, state, slen);
	put_bytes(out, text, text ? strlen(text) : 0);
}

size_t ev_msg_ae_begin(struct sp_buf *out, uint8_t type, uint8_t rf)
{
	sp_buf_put_u8(out, type);
	sp_buf_put_u8(out, rf);
	size_t at = out->len;
	sp_buf_put_le32(out, 0);
	return at;
}

void ev_msg_set_count(struct sp_buf *out, size_t at, uint32_t count)
{
	sp_buf_patch_le32(out, at, count);
}

size_t ev_msg_ae_items_begin(struct sp_buf *out, uint8_t rf, uint64_t token, uint64_t leafmask,
			     bool want_reply)
{
	sp_buf_put_u8(out, EVM_AE_ITEMS);
	sp_buf_put_u8(out, rf);
	sp_buf_put_le64(out, token);
	sp_buf_put_le64(out, leafmask);
	sp_buf_put_u8(out, want_reply ? 1 : 0);
	size_t at = out->len;
	sp_buf_put_le32(out, 0);
	return at;
}
