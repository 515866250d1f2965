#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

char sp_buf_empty[1];

void sp_buf_init(struct sp_buf *b)
{
	b->data = NULL;
	b->start = b->len = b->cap = 0;
}

void sp_buf_free(struct sp_buf *b)
{
	free(b->data);
	sp_buf_init(b);
}

void sp_buf_reserve(struct sp_buf *b, size_t n)
{
	if (b->start + b->len + n <= b->cap)
		return;
	/* Compact first when the consumed prefix is worth reclaiming. */
	if (b->start > 0 && (b->len + n <= b->cap || b->start >= b->cap / 2)) {
		memmove(b->data, b->data + b->start, b->len);
		b->start = 0;
		if (b->len + n <= b->cap)
			return;
	}
	size_t want = b->start + b->len + n;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap = cap < (1u << 20) ? cap * 2 : cap + cap / 2;
	b->data = sp_realloc(b->data, cap);
	b->cap = cap;
}

void sp_buf_append(struct sp_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	sp_buf_reserve(b, n);
	memcpy(sp_buf_end(b), p, n);
	b->len += n;
}

void sp_buf_append_str(struct sp_buf *b, const char *s)
{
	sp_buf_append(b, s, strlen(s));
}

void sp_buf_appendf(struct sp_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char small[256];
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		sp_buf_append(b, small, (size_t)n);
		return;
	}
	sp_buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(sp_buf_end(b), (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void sp_buf_consume(struct sp_buf *b, size_t n)
{
	if (n >= b->len) {
		b->start = b->len = 0;
		return;
	}
	b->start += n;
	b->len -= n;
}

void sp_buf_clear(struct sp_buf *b)
{
	b->start = b->len = 0;
}
