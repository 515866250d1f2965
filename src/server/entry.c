/*
 * entry: encoding of Raft entries and forwarded requests. See entry.h.
 */
#include "server/entry.h"

#include <string.h>

#include "common/alloc.h"
#include "common/endian.h"
#include "common/err.h"

void entry_put_hdr(struct sp_buf *out, const struct entry_hdr *h)
{
	uint8_t b[2] = {h->type, h->proto};
	sp_buf_append(out, b, 2);
	sp_buf_put_le64(out, h->origin);
	sp_buf_put_le64(out, h->req_id);
	sp_buf_put_le64(out, h->time_ms);
	sp_buf_put_le32(out, h->ncmds);
}

void entry_put_cmd(struct sp_buf *out, const struct entry_arg *argv, size_t argc)
{
	sp_buf_put_le32(out, (uint32_t)argc);
	for (size_t i = 0; i < argc; i++) {
		sp_buf_put_le32(out, (uint32_t)argv[i].len);
		sp_buf_append(out, argv[i].p, argv[i].len);
	}
}

int entry_get_hdr(const uint8_t *p, size_t len, struct entry_hdr *h, const uint8_t **body,
		  size_t *body_len)
{
	if (len < ENTRY_HDR_LEN)
		return SP_ERR_PROTO;
	h->type = p[0];
	h->proto = p[1];
	h->origin = sp_get_le64(p + 2);
	h->req_id = sp_get_le64(p + 10);
	h->time_ms = sp_get_le64(p + 18);
	h->ncmds = sp_get_le32(p + 26);
	if (h->type < ENTRY_COMMAND || h->type > ENTRY_EXPIRE || (h->proto != 2 && h->proto != 3))
		return SP_ERR_PROTO;
	/* Every command takes at least 8 bytes (argc and one length): a count
	 * the body cannot hold is refused before anyone loops over it. */
	if (h->ncmds > (len - ENTRY_HDR_LEN) / 8)
		return SP_ERR_PROTO;
	*body = p + ENTRY_HDR_LEN;
	*body_len = len - ENTRY_HDR_LEN;
	return 0;
}

int entry_next_cmd(const uint8_t **p, size_t *left, struct entry_arg **argv, size_t *cap,
		   size_t *argc)
{
	const uint8_t *q = *p;
	size_t n = *left;
	if (n < 4)
		return SP_ERR_PROTO;
	uint32_t count = sp_get_le32(q);
	q += 4, n -= 4;
	/* Every argument takes at least its 4-byte length. */
	if (count == 0 || count > n / 4)
		return SP_ERR_PROTO;
	if (count > *cap) {
		*cap = count < 16 ? 16 : count;
		*argv = sp_realloc(*argv, *cap * sizeof(**argv));
	}
	for (uint32_t i = 0; i < count; i++) {
		if (n < 4)
			return SP_ERR_PROTO;
		uint32_t l = sp_get_le32(q);
		q += 4, n -= 4;
		if (l > n)
			return SP_ERR_PROTO;
		(*argv)[i].p = (const char *)q;
		(*argv)[i].len = l;
		q += l, n -= l;
	}
	*argc = count;
	*p = q;
	*left = n;
	return 0;
}
