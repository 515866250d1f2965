/*
 * held: messages waiting for a store commit. See held.h.
 */
#include "common/held.h"

#include "common/endian.h"

void held_init(struct held *h)
{
	sp_buf_init(&h->buf);
}

void held_free(struct held *h)
{
	sp_buf_free(&h->buf);
}

void held_add(struct held *h, uint64_t to, const void *p, size_t len)
{
	sp_buf_put_le64(&h->buf, to);
	sp_buf_put_le32(&h->buf, (uint32_t)len);
	sp_buf_append(&h->buf, p, len);
}

void held_flush(struct held *h, held_send_fn send, void *ctx)
{
	const uint8_t *p = (const uint8_t *)sp_buf_begin(&h->buf);
	size_t len = h->buf.len, pos = 0;
	while (pos + 12 <= len) {
		uint64_t to = sp_get_le64(p + pos);
		uint32_t n = sp_get_le32(p + pos + 8);
		(void)send(ctx, to, p + pos + 12, n);
		pos += 12 + n;
	}
	sp_buf_clear(&h->buf);
}

void held_drop(struct held *h)
{
	sp_buf_clear(&h->buf);
}
