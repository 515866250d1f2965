/*
 * buf: a growable byte buffer with a consumed prefix.
 *
 * Used for client query and reply buffers and by the RESP writer. Bytes are
 * appended at the end and consumed from the front; consuming is O(1) and the
 * buffer compacts itself lazily. It does no I/O.
 */
#ifndef SP_COMMON_BUF_H
#define SP_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/endian.h"

struct sp_buf {
	char *data;   /* owned; data[start .. start+len) are the live bytes */
	size_t start; /* bytes consumed from the front, not yet compacted */
	size_t len;   /* live bytes */
	size_t cap;   /* allocated bytes */
};

void sp_buf_init(struct sp_buf *b);
/* sp_buf_free releases the memory; b may be reused after sp_buf_init. */
void sp_buf_free(struct sp_buf *b);
/* sp_buf_reserve makes room for n more bytes at the end (never fails). */
void sp_buf_reserve(struct sp_buf *b, size_t n);
void sp_buf_append(struct sp_buf *b, const void *p, size_t n);
void sp_buf_append_str(struct sp_buf *b, const char *s);
/* sp_buf_appendf appends printf-formatted text. */
void sp_buf_appendf(struct sp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* sp_buf_consume drops n live bytes from the front (n <= len). */
void sp_buf_consume(struct sp_buf *b, size_t n);
void sp_buf_clear(struct sp_buf *b);
/* Pointers to the first live byte and one past the last. Valid until the
 * next call that appends or reserves. A buffer that never allocated gives a
 * pointer to a static empty byte (never NULL + 0, which is undefined). */
extern char sp_buf_empty[1];
static inline char *sp_buf_begin(const struct sp_buf *b)
{
	return b->data ? b->data + b->start : sp_buf_empty;
}
static inline char *sp_buf_end(const struct sp_buf *b)
{
	return b->data ? b->data + b->start + b->len : sp_buf_empty;
}
/* sp_buf_commit marks n bytes written directly at sp_buf_end() as live
 * (after sp_buf_reserve(b, n)). */
static inline void sp_buf_commit(struct sp_buf *b, size_t n)
{
	b->len += n;
}

/* Fixed-width integers appended little-endian, as every spectra wire and
 * disk format lays them out; sp_buf_patch_le32 overwrites 4 bytes written
 * earlier at offset off from the first live byte (offsets survive the
 * buffer's growth). */
static inline void sp_buf_put_u8(struct sp_buf *b, uint8_t v)
{
	sp_buf_append(b, &v, 1);
}
static inline void sp_buf_put_le32(struct sp_buf *b, uint32_t v)
{
	uint8_t x[4];
	sp_put_le32(x, v);
	sp_buf_append(b, x, 4);
}
static inline void sp_buf_put_le64(struct sp_buf *b, uint64_t v)
{
	uint8_t x[8];
	sp_put_le64(x, v);
	sp_buf_append(b, x, 8);
}
static inline void sp_buf_patch_le32(struct sp_buf *b, size_t off, uint32_t v)
{
	sp_put_le32((uint8_t *)sp_buf_begin(b) + off, v);
}

#endif
