/*
 * resp: the RESP2/RESP3 codec. The contract is in resp.h; this file holds
 * the request parser, the value reader and the writer, in that order.
 *
 * Both parsers are incremental in the same way: each remembers where the
 * search for the end of the current line stopped (so a header arriving one
 * byte at a time is scanned once) and, once a length header is parsed, waits
 * for the whole payload by comparing lengths only, so an n-byte string costs
 * O(n) however it is chunked. Every decision depends only on the bytes before
 * the point where it is taken, so the result never depends on chunking.
 */
#include "net/resp.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/num.h"

/* Redis's PROTO_INLINE_MAX_SIZE: the longest "*<n>" or "$<len>" line a client
 * may send before Redis gives up on it ("too big mbulk count string"). */
#define RESP_MAX_COUNT_LINE (64 * 1024)
/* Multibulk argument slots reserved when a request starts: at least the
 * first, so the hot path never reallocates, at most the second, so a client
 * announcing "*1000000" and sending nothing costs little. More are added as
 * arguments actually arrive. */
#define RESP_ARGS_MIN	   16
#define RESP_ARGS_PREALLOC 1024
/* Longest double text the reader hands to strtod (which is slow on very long
 * inputs); real replies need at most 24 bytes. */
#define RESP_MAX_DOUBLE_TEXT 512

static int fail(struct resp_error *err, int code, const char *msg)
{
	if (err)
		err->msg = msg;
	return code;
}

/*
 * find_eol looks for the byte eol ending the line whose content starts at
 * buf[start], resuming at *scan (an index into buf, start <= *scan). The
 * content may be at most limit bytes; the search never looks further, so an
 * over-long line is detected as soon as limit + 1 bytes have arrived, however
 * they were chunked. With need_next, the byte after eol must also have
 * arrived (for the '\n' of a "\r\n").
 * Returns 0 with *at set, SP_ERR_AGAIN, or SP_ERR_TOOBIG.
 */
static int find_eol(const char *buf, size_t len, size_t start, size_t *scan, uint64_t limit,
		    char eol, int need_next, size_t *at)
{
	size_t avail = len - start;
	size_t end = avail > limit ? start + (size_t)limit + 1 : len;

	if (*scan < end) {
		const char *q = memchr(buf + *scan, eol, end - *scan);
		if (q) {
			*scan = (size_t)(q - buf);
			if (need_next && *scan + 1 >= len)
				return SP_ERR_AGAIN;
			*at = *scan;
			return 0;
		}
		*scan = end;
	}
	if (end - start > limit)
		return SP_ERR_TOOBIG;
	return SP_ERR_AGAIN;
}

/* ---------------------------------------------------------------------- */
/* Request parser                                                          */

enum req_state {
	REQ_START = 0, /* nothing of this request seen yet */
	REQ_COUNT,     /* reading the "*<n>\r\n" line */
	REQ_BULK_HDR,  /* reading a "$<len>\r\n" line at pos */
	REQ_BULK_DATA, /* waiting for bulk_len bytes and "\r\n" at pos */
	REQ_INLINE,    /* reading an inline line */
};

/* "expected '$', got 'c'" for every byte c, built at compile time so the
 * error message can stay a static string as resp.h promises. */
#define GOT1(c)                                                                                    \
	{                                                                                          \
		'e', 'x', 'p', 'e', 'c', 't', 'e', 'd', ' ', '\'', '$', '\'', ',', ' ', 'g', 'o',  \
		    't', ' ', '\'', (unsigned char)(c), '\'', '\0'                                 \
	}
#define GOT4(c)	 GOT1(c), GOT1((c) + 1), GOT1((c) + 2), GOT1((c) + 3)
#define GOT16(c) GOT4(c), GOT4((c) + 4), GOT4((c) + 8), GOT4((c) + 12)
#define GOT64(c) GOT16(c), GOT16((c) + 16), GOT16((c) + 32), GOT16((c) + 48)
static const unsigned char expected_dollar[256][22] = {GOT64(0), GOT64(64), GOT64(128), GOT64(192)};

void resp_request_parser_init(struct resp_request_parser *p, const struct resp_limits *limits)
{
	memset(p, 0, sizeof(*p));
	p->limits = *limits;
	p->state = REQ_START;
	p->bulk_len = -1;
}

void resp_request_parser_close(struct resp_request_parser *p)
{
	if (!p)
		return;
	free(p->args);
	free(p->inline_buf);
	p->args = NULL;
	p->inline_buf = NULL;
	p->args_cap = p->inline_cap = p->argc = 0;
}

static void set_args_cap(struct resp_request_parser *p, size_t cap)
{
	p->args = sp_realloc(p->args, cap * sizeof(*p->args));
	p->args_cap = cap;
}

/* reserve_args prepares slots for a multibulk of want arguments, trusting
 * want only up to RESP_ARGS_PREALLOC, and gives back the memory of an
 * earlier huge request. */
static void reserve_args(struct resp_request_parser *p, uint64_t want)
{
	size_t cap = RESP_ARGS_PREALLOC;
	if (want < RESP_ARGS_MIN)
		cap = RESP_ARGS_MIN;
	else if (want < RESP_ARGS_PREALLOC)
		cap = (size_t)want;
	if (p->args_cap < cap || p->args_cap > 4 * RESP_ARGS_PREALLOC)
		set_args_cap(p, cap > p->args_cap ? cap : RESP_ARGS_PREALLOC);
}

/* grow_args adds slots when every reserved one is used, doubling but never
 * beyond the announced count (limit). */
static void grow_args(struct resp_request_parser *p, uint64_t limit)
{
	size_t cap = p->args_cap ? p->args_cap * 2 : RESP_ARGS_MIN;
	if (cap > limit)
		cap = (size_t)limit;
	if (cap <= p->args_cap)
		cap = p->args_cap + 1;
	set_args_cap(p, cap);
}

static int complete(struct resp_request_parser *p, size_t n, size_t *consumed)
{
	*consumed = n;
	p->state = REQ_START;
	p->pos = 0;
	p->scan = 0;
	p->nargs = 0;
	p->bulk_len = -1;
	return 0;
}

/* isspace() in the C locale, as sdssplitargs uses to skip blanks. */
static int is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void add_arg(struct resp_request_parser *p, size_t off, size_t len, uint64_t limit)
{
	if (p->argc == p->args_cap)
		grow_args(p, limit);
	p->args[p->argc].off = off;
	p->args[p->argc].len = len;
	p->argc++;
}

/*
 * split_inline splits line[0..n) into arguments as Redis's sdssplitargs
 * does, writing the unquoted bytes to p->inline_buf: blanks separate
 * arguments; an unquoted argument ends at space, tab, CR or LF; "double
 * quotes" take \xHH, \n, \r, \t, \b, \a and \<any> escapes; 'single quotes'
 * take only \'; a closing quote must be followed by a blank or the end of the
 * line. Unlike sdssplitargs it is binary safe: a NUL byte is ordinary data.
 * Returns 0, or -1 for unbalanced quotes.
 */
static int split_inline(struct resp_request_parser *p, const char *line, size_t n)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t i = 0, out = 0;

	/* Unquoting only shrinks, so n bytes always suffice. */
	if (p->inline_cap < n) {
		free(p->inline_buf);
		p->inline_buf = sp_malloc(n);
		p->inline_cap = n;
	}
	char *dst = p->inline_buf;
	p->argc = 0;
	for (;;) {
		while (i < n && is_blank(s[i]))
			i++;
		if (i == n)
			return 0;
		size_t start = out;
		int in_dq = 0, in_sq = 0, done = 0;
		while (!done) {
			if (in_dq) {
				if (i == n)
					return -1;
				if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x' &&
				    hex_value(s[i + 2]) >= 0 && hex_value(s[i + 3]) >= 0) {
					dst[out++] =
					    (char)(hex_value(s[i + 2]) * 16 + hex_value(s[i + 3]));
					i += 4;
				} else if (s[i] == '\\' && i + 1 < n) {
					char c;
					switch (s[i + 1]) {
					case 'n':
						c = '\n';
						break;
					case 'r':
						c = '\r';
						break;
					case 't':
						c = '\t';
						break;
					case 'b':
						c = '\b';
						break;
					case 'a':
						c = '\a';
						break;
					default:
						c = (char)s[i + 1];
						break;
					}
					dst[out++] = c;
					i += 2;
				} else if (s[i] == '"') {
					if (i + 1 < n && !is_blank(s[i + 1]))
						return -1;
					done = 1;
					i++;
				} else {
					dst[out++] = (char)s[i++];
				}
			} else if (in_sq) {
				if (i == n)
					return -1;
				if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\'') {
					dst[out++] = '\'';
					i += 2;
				} else if (s[i] == '\'') {
					if (i + 1 < n && !is_blank(s[i + 1]))
						return -1;
					done = 1;
					i++;
				} else {
					dst[out++] = (char)s[i++];
				}
			} else if (i == n) {
				done = 1;
			} else {
				switch (s[i]) {
				case ' ':
				case '\n':
				case '\r':
				case '\t':
					done = 1;
					break;
				case '"':
					in_dq = 1;
					break;
				case '\'':
					in_sq = 1;
					break;
				default:
					dst[out++] = (char)s[i];
					break;
				}
				i++;
			}
		}
		add_arg(p, start, out - start, UINT64_MAX);
	}
}

/* parse_inline reads an inline command: a line ending in "\n", with an
 * optional "\r" before it, of at most max_inline_len bytes before the "\n". */
static int parse_inline(struct resp_request_parser *p, const char *buf, size_t len,
			size_t *consumed, struct resp_error *err)
{
	size_t nl;
	int rc = find_eol(buf, len, 0, &p->scan, p->limits.max_inline_len, '\n', 0, &nl);
	if (rc == SP_ERR_TOOBIG)
		return fail(err, rc, "too big inline request");
	if (rc)
		return rc;
	size_t line_len = nl;
	if (line_len > 0 && buf[line_len - 1] == '\r')
		line_len--;
	if (split_inline(p, buf, line_len))
		return fail(err, SP_ERR_PROTO, "unbalanced quotes in request");
	p->is_inline = 1;
	return complete(p, nl + 1, consumed);
}

/*
 * The multibulk rules follow Redis 7 (networking.c, processMultibulkBuffer):
 * a count <= 0 is an empty request; a count or length line longer than 64KB
 * is "too big ... count string"; the count and lengths must be canonical
 * decimals. We are stricter in one place: the bytes after a header's "\r" and
 * after bulk data must be "\n" and "\r\n", where Redis skips them unread.
 */
int resp_parse_request(struct resp_request_parser *p, const char *buf, size_t len, size_t *consumed,
		       struct resp_error *err)
{
	size_t cr;
	int64_t ll;
	int rc;

	*consumed = 0;
	for (;;) {
		switch (p->state) {
		case REQ_START:
			if (len == 0)
				return SP_ERR_AGAIN;
			p->argc = 0;
			p->is_inline = 0;
			p->bulk_len = -1;
			if (buf[0] != '*') {
				p->state = REQ_INLINE;
				p->scan = 0;
				return parse_inline(p, buf, len, consumed, err);
			}
			p->state = REQ_COUNT;
			p->scan = 1;
			/* fall through */
		case REQ_COUNT:
			rc = find_eol(buf, len, 1, &p->scan, RESP_MAX_COUNT_LINE, '\r', 1, &cr);
			if (rc == SP_ERR_TOOBIG)
				return fail(err, SP_ERR_PROTO, "too big mbulk count string");
			if (rc)
				return rc;
			if (!sp_parse_int64(buf + 1, cr - 1, &ll) || buf[cr + 1] != '\n')
				return fail(err, SP_ERR_PROTO, "invalid multibulk length");
			if (ll <= 0)
				return complete(p, cr + 2, consumed);
			if ((uint64_t)ll > p->limits.max_args)
				return fail(err, SP_ERR_TOOBIG, "invalid multibulk length");
			reserve_args(p, (uint64_t)ll);
			p->nargs = ll;
			p->pos = cr + 2;
			p->scan = p->pos;
			p->state = REQ_BULK_HDR;
			/* fall through */
		case REQ_BULK_HDR:
			rc =
			    find_eol(buf, len, p->pos, &p->scan, RESP_MAX_COUNT_LINE, '\r', 1, &cr);
			if (rc == SP_ERR_TOOBIG)
				return fail(err, SP_ERR_PROTO, "too big bulk count string");
			if (rc)
				return rc;
			if (buf[p->pos] != '$')
				return fail(
				    err, SP_ERR_PROTO,
				    (const char *)expected_dollar[(unsigned char)buf[p->pos]]);
			if (!sp_parse_int64(buf + p->pos + 1, cr - p->pos - 1, &ll) || ll < 0 ||
			    buf[cr + 1] != '\n')
				return fail(err, SP_ERR_PROTO, "invalid bulk length");
			if ((uint64_t)ll > p->limits.max_bulk_len)
				return fail(err, SP_ERR_TOOBIG, "invalid bulk length");
			p->bulk_len = ll;
			p->pos = cr + 2;
			p->state = REQ_BULK_DATA;
			/* fall through */
		case REQ_BULK_DATA: {
			if (len - p->pos < (uint64_t)p->bulk_len + 2)
				return SP_ERR_AGAIN;
			size_t end = p->pos + (size_t)p->bulk_len;
			if (buf[end] != '\r' || buf[end + 1] != '\n')
				return fail(err, SP_ERR_PROTO, "bulk data not followed by CRLF");
			add_arg(p, p->pos, (size_t)p->bulk_len, (uint64_t)p->nargs);
			p->pos = end + 2;
			p->bulk_len = -1;
			if ((int64_t)p->argc == p->nargs)
				return complete(p, p->pos, consumed);
			p->scan = p->pos;
			p->state = REQ_BULK_HDR;
			break;
		}
		case REQ_INLINE:
			return parse_inline(p, buf, len, consumed, err);
		default:
			assert(!"resp: bad request parser state");
			return fail(err, SP_ERR_PROTO, "internal parser state");
		}
	}
}

const char *resp_arg_ptr(const struct resp_request_parser *p, const char *buf, size_t i)
{
	return (p->is_inline ? p->inline_buf : buf) + p->args[i].off;
}

/* ---------------------------------------------------------------------- */
/* Values                                                                  */

static int is_pairs(enum resp_type t)
{
	return t == RESP_MAP || t == RESP_ATTR;
}

/* elem_count is how many entries of v->elems are in use. */
static size_t elem_count(const struct resp_value *v)
{
	return is_pairs(v->type) ? 2 * v->n : v->n;
}

static void free_attr(struct resp_value *attr)
{
	if (attr) {
		resp_value_free(attr);
		free(attr);
	}
}

void resp_value_free(struct resp_value *v)
{
	if (!v)
		return;
	free(v->str);
	if (v->elems) {
		size_t n = elem_count(v);
		for (size_t i = 0; i < n; i++)
			resp_value_free(&v->elems[i]);
		free(v->elems);
	}
	free_attr(v->attr);
	v->str = NULL;
	v->elems = NULL;
	v->attr = NULL;
	v->len = v->n = 0;
}

static int bytes_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int resp_value_equal(const struct resp_value *a, const struct resp_value *b)
{
	if (a == b)
		return 1;
	if (!a || !b || a->type != b->type)
		return 0;
	if (!resp_value_equal(a->attr, b->attr))
		return 0;
	switch (a->type) {
	case RESP_SIMPLE:
	case RESP_ERROR:
	case RESP_BULK:
	case RESP_BLOBERR:
	case RESP_VERBATIM:
	case RESP_BIGNUM:
		return bytes_equal(a->str, a->len, b->str, b->len);
	case RESP_DOUBLE:
		/* The text as sent when both have one, so "1.0" is not "1"; else
		 * the number, with NaN equal to NaN. */
		if (a->str && b->str)
			return bytes_equal(a->str, a->len, b->str, b->len);
		return a->dbl == b->dbl || (isnan(a->dbl) && isnan(b->dbl));
	case RESP_INTEGER:
	case RESP_BOOL:
		return a->integer == b->integer;
	case RESP_NULL:
		return 1;
	case RESP_ARRAY:
	case RESP_SET:
	case RESP_PUSH:
	case RESP_MAP:
	case RESP_ATTR: {
		if (a->n != b->n)
			return 0;
		size_t n = elem_count(a);
		for (size_t i = 0; i < n; i++)
			if (!resp_value_equal(&a->elems[i], &b->elems[i]))
				return 0;
		return 1;
	}
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Value reader                                                            */

/* One aggregate being built. */
struct frame {
	struct resp_value v; /* elems has cap slots, have of them filled */
	size_t want;	     /* elements expected: 2n for maps and attributes */
	size_t have;
	size_t cap;
};

void resp_reader_init(struct resp_reader *r, const struct resp_reader_limits *limits)
{
	memset(r, 0, sizeof(*r));
	r->limits = *limits;
	sp_buf_init(&r->in);
	r->bulk_len = -1;
}

static void frame_free(struct frame *f)
{
	for (size_t i = 0; i < f->have; i++)
		resp_value_free(&f->v.elems[i]);
	free(f->v.elems);
	free_attr(f->v.attr);
}

void resp_reader_close(struct resp_reader *r)
{
	if (!r)
		return;
	struct frame *frames = r->stack;
	for (size_t i = 0; i < r->depth; i++)
		frame_free(&frames[i]);
	free(frames);
	r->stack = NULL;
	r->depth = r->stack_cap = 0;
	free_attr(r->pending_attr);
	r->pending_attr = NULL;
	sp_buf_free(&r->in);
}

void resp_reader_feed(struct resp_reader *r, const void *data, size_t n)
{
	sp_buf_append(&r->in, data, n);
}

/* take_attr hands the pending attribute to the value that follows it. */
static struct resp_value *take_attr(struct resp_reader *r)
{
	struct resp_value *a = r->pending_attr;
	r->pending_attr = NULL;
	return a;
}

static int valid_bignum(const char *s, size_t n)
{
	size_t i = n > 0 && s[0] == '-';
	if (i == n)
		return 0;
	for (; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* parse_double reads the NUL-terminated text s[0..n): anything strtod takes
 * whole ("1.5", "1e300", "inf", "-inf", "nan"), without leading blanks. */
static int parse_double(const char *s, size_t n, double *out)
{
	char *end;
	if (n == 0 || n > RESP_MAX_DOUBLE_TEXT || is_blank((unsigned char)s[0]))
		return 0;
	*out = strtod(s, &end);
	return end == s + n;
}

static int is_streamed(const char *line, size_t n)
{
	return n == 1 && line[0] == '?';
}

/* read_string finishes a bulk, blob error or verbatim string whose header
 * has been consumed. */
static int read_string(struct resp_reader *r, struct resp_value *v, struct resp_error *err)
{
	size_t n = (size_t)r->bulk_len;
	if (r->in.len < (uint64_t)r->bulk_len + 2)
		return SP_ERR_AGAIN;
	const char *s = sp_buf_begin(&r->in);
	if (s[n] != '\r' || s[n + 1] != '\n')
		return fail(err, SP_ERR_PROTO, "bulk string not followed by CRLF");
	if (r->bulk_type == RESP_VERBATIM && (n < 4 || s[3] != ':'))
		return fail(err, SP_ERR_PROTO, "invalid verbatim string");
	memset(v, 0, sizeof(*v));
	v->type = r->bulk_type;
	v->str = sp_memdup(s, n);
	v->len = n;
	v->attr = take_attr(r);
	sp_buf_consume(&r->in, n + 2);
	r->bulk_len = -1;
	return 0;
}

/*
 * read_token reads one header or scalar from the front of the input.
 * Returns 0 with *v set to a complete value (a scalar, a null or an empty
 * aggregate), 1 when it opened an aggregate frame or a string header (the
 * caller reads on), SP_ERR_AGAIN, or an error.
 */
static int read_token(struct resp_reader *r, struct resp_value *v, struct resp_error *err)
{
	if (r->bulk_len >= 0)
		return read_string(r, v, err);

	size_t len = r->in.len, cr;
	if (len == 0)
		return SP_ERR_AGAIN;
	const char *s = sp_buf_begin(&r->in);
	enum resp_type type = (enum resp_type)(unsigned char)s[0];
	switch (s[0]) {
	case RESP_SIMPLE:
	case RESP_ERROR:
	case RESP_INTEGER:
	case RESP_BULK:
	case RESP_ARRAY:
	case RESP_NULL:
	case RESP_BOOL:
	case RESP_DOUBLE:
	case RESP_BIGNUM:
	case RESP_BLOBERR:
	case RESP_VERBATIM:
	case RESP_MAP:
	case RESP_SET:
	case RESP_ATTR:
	case RESP_PUSH:
		break;
	case ';': /* streamed string chunk */
	case '.': /* end of a streamed aggregate */
		return fail(err, SP_ERR_PROTO, "streamed types not supported");
	default:
		return fail(err, SP_ERR_PROTO, "invalid type byte");
	}
	if (r->scan < 1)
		r->scan = 1;
	int rc = find_eol(s, len, 1, &r->scan, r->limits.max_bulk_len, '\r', 1, &cr);
	if (rc == SP_ERR_TOOBIG)
		return fail(err, rc, "line too long");
	if (rc)
		return rc;
	if (s[cr + 1] != '\n')
		return fail(err, SP_ERR_PROTO, "line not terminated by CRLF");
	const char *line = s + 1;
	size_t n = cr - 1;
	int64_t ll;

	int keep_text = 0;

	memset(v, 0, sizeof(*v));
	v->type = type;
	switch (type) {
	case RESP_SIMPLE:
	case RESP_ERROR:
		keep_text = 1;
		break;
	case RESP_INTEGER:
		if (!sp_parse_int64(line, n, &v->integer))
			return fail(err, SP_ERR_PROTO, "invalid integer");
		break;
	case RESP_NULL:
		if (n != 0)
			return fail(err, SP_ERR_PROTO, "invalid null");
		break;
	case RESP_BOOL:
		if (n != 1 || (line[0] != 't' && line[0] != 'f'))
			return fail(err, SP_ERR_PROTO, "invalid boolean");
		v->integer = line[0] == 't';
		break;
	case RESP_BIGNUM:
		if (!valid_bignum(line, n))
			return fail(err, SP_ERR_PROTO, "invalid big number");
		keep_text = 1;
		break;
	case RESP_DOUBLE:
		/* Checked below, once str is NUL-terminated. */
		keep_text = 1;
		break;
	case RESP_BULK:
	case RESP_BLOBERR:
	case RESP_VERBATIM:
		if (is_streamed(line, n))
			return fail(err, SP_ERR_PROTO, "streamed types not supported");
		if (!sp_parse_int64(line, n, &ll) || ll < -1 || (ll == -1 && type != RESP_BULK))
			return fail(err, SP_ERR_PROTO, "invalid bulk length");
		if (ll >= 0 && (uint64_t)ll > r->limits.max_bulk_len)
			return fail(err, SP_ERR_TOOBIG, "bulk string too long");
		sp_buf_consume(&r->in, cr + 2);
		r->scan = 0;
		if (ll == -1) { /* RESP2 null bulk string */
			v->type = RESP_NULL;
			v->attr = take_attr(r);
			return 0;
		}
		r->bulk_len = ll;
		r->bulk_type = type;
		return 1;
	case RESP_ARRAY:
	case RESP_SET:
	case RESP_PUSH:
	case RESP_MAP:
	case RESP_ATTR: {
		if (is_streamed(line, n))
			return fail(err, SP_ERR_PROTO, "streamed types not supported");
		if (!sp_parse_int64(line, n, &ll) || ll < -1 || (ll == -1 && type != RESP_ARRAY))
			return fail(err, SP_ERR_PROTO, "invalid aggregate length");
		if (ll >= 0 && (uint64_t)ll > r->limits.max_elems)
			return fail(err, SP_ERR_TOOBIG, "aggregate too large");
		if (ll >= 0 && r->depth >= r->limits.max_depth)
			return fail(err, SP_ERR_TOOBIG, "nesting too deep");
		/* An attribute must precede a value; a second one in a row would
		 * need attributes of attributes, which nothing sends. */
		if (type == RESP_ATTR && r->pending_attr)
			return fail(err, SP_ERR_PROTO, "attribute followed by attribute");
		sp_buf_consume(&r->in, cr + 2);
		r->scan = 0;
		if (ll == -1) { /* RESP2 null array */
			v->type = RESP_NULL;
			v->attr = take_attr(r);
			return 0;
		}
		if (type != RESP_ATTR)
			v->attr = take_attr(r);
		size_t want = (size_t)ll * (is_pairs(type) ? 2 : 1);
		if (want == 0)
			return 0;
		if (r->depth == r->stack_cap) {
			r->stack_cap = r->stack_cap ? r->stack_cap * 2 : 8;
			r->stack = sp_realloc(r->stack, r->stack_cap * sizeof(struct frame));
		}
		struct frame *f = (struct frame *)r->stack + r->depth++;
		f->v = *v;
		f->want = want;
		f->have = 0;
		f->cap = 0;
		return 1;
	}
	}

	if (keep_text) {
		v->str = sp_memdup(line, n);
		v->len = n;
		if (type == RESP_DOUBLE && !parse_double(v->str, n, &v->dbl)) {
			free(v->str);
			v->str = NULL;
			return fail(err, SP_ERR_PROTO, "invalid double");
		}
	}
	v->attr = take_attr(r);
	sp_buf_consume(&r->in, cr + 2);
	r->scan = 0;
	return 0;
}

/* frame_add appends a finished element; the element array grows as
 * elements arrive rather than trusting the announced count. */
static void frame_add(struct frame *f, struct resp_value *v)
{
	if (f->have == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		if (cap > f->want)
			cap = f->want;
		f->v.elems = sp_realloc(f->v.elems, cap * sizeof(*f->v.elems));
		f->cap = cap;
	}
	f->v.elems[f->have++] = *v;
}

int resp_reader_next(struct resp_reader *r, struct resp_value *out, struct resp_error *err)
{
	struct resp_value v;

	for (;;) {
		int rc = read_token(r, &v, err);
		if (rc < 0)
			return rc;
		if (rc == 1)
			continue;
		/* A complete value: hand it up through every aggregate it
		 * completes. */
		for (;;) {
			if (v.type == RESP_ATTR) {
				/* Every value since the attribute's header took its
				 * pending attribute, so none is left over. */
				assert(r->pending_attr == NULL);
				r->pending_attr = sp_malloc(sizeof(*r->pending_attr));
				*r->pending_attr = v;
				break;
			}
			if (r->depth == 0) {
				*out = v;
				return 0;
			}
			struct frame *f = (struct frame *)r->stack + r->depth - 1;
			frame_add(f, &v);
			if (f->have < f->want)
				break;
			v = f->v;
			v.n = is_pairs(v.type) ? f->want / 2 : f->want;
			r->depth--;
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Writer                                                                  */

static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324"
				     "25262728293031323334353637383940414243444546474849"
				     "50515253545556575859606162636465666768697071727374"
				     "75767778798081828384858687888990919293949596979899";

static unsigned digits10(uint64_t v)
{
	unsigned n = 1;
	for (;;) {
		if (v < 10)
			return n;
		if (v < 100)
			return n + 1;
		if (v < 1000)
			return n + 2;
		if (v < 10000)
			return n + 3;
		v /= 10000;
		n += 4;
	}
}

/* u64_to_dec writes v in decimal at dst (up to 20 bytes), two digits per
 * division, and returns the length. */
static size_t u64_to_dec(char *dst, uint64_t v)
{
	unsigned n = digits10(v);
	char *p = dst + n;
	while (v >= 100) {
		unsigned i = (unsigned)(v % 100) * 2;
		v /= 100;
		p -= 2;
		p[0] = digit_pairs[i];
		p[1] = digit_pairs[i + 1];
	}
	if (v >= 10) {
		unsigned i = (unsigned)v * 2;
		p[-2] = digit_pairs[i];
		p[-1] = digit_pairs[i + 1];
	} else {
		p[-1] = (char)('0' + v);
	}
	return n;
}

static size_t i64_to_dec(char *dst, int64_t v)
{
	if (v < 0) {
		*dst = '-';
		return 1 + u64_to_dec(dst + 1, (uint64_t)0 - (uint64_t)v);
	}
	return u64_to_dec(dst, (uint64_t)v);
}

/* Room for a type byte, a 20-character number and "\r\n". */
#define HEADER_MAX 24

/* put_header writes "<type><n>\r\n" at p (HEADER_MAX bytes reserved) and
 * returns the end. */
static char *put_header(char *p, char type, int64_t n)
{
	*p++ = type;
	p += i64_to_dec(p, n);
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

static void write_header(struct sp_buf *b, char type, int64_t n)
{
	sp_buf_reserve(b, HEADER_MAX);
	char *p = sp_buf_end(b);
	sp_buf_commit(b, (size_t)(put_header(p, type, n) - p));
}

/* write_line writes "<type><s>\r\n" as is. */
static void write_line(struct sp_buf *b, char type, const char *s, size_t n)
{
	sp_buf_reserve(b, n + 3);
	char *p = sp_buf_end(b);
	*p++ = type;
	if (n)
		memcpy(p, s, n);
	p += n;
	*p++ = '\r';
	*p++ = '\n';
	sp_buf_commit(b, n + 3);
}

/* write_blob writes "<type><len>\r\n", the bytes and "\r\n" with one
 * reserve; prefix (pn bytes) goes before the bytes and counts in len. */
static void write_blob(struct sp_buf *b, char type, const char *prefix, size_t pn, const void *s,
		       size_t n)
{
	sp_buf_reserve(b, HEADER_MAX + pn + n + 2);
	char *start = sp_buf_end(b);
	char *p = put_header(start, type, (int64_t)(pn + n));
	if (pn) {
		memcpy(p, prefix, pn);
		p += pn;
	}
	if (n) {
		memcpy(p, s, n);
		p += n;
	}
	*p++ = '\r';
	*p++ = '\n';
	sp_buf_commit(b, (size_t)(p - start));
}

void resp_write_simple(struct sp_buf *b, const char *s)
{
	write_line(b, RESP_SIMPLE, s, strlen(s));
}

static void write_error_len(struct sp_buf *b, const char *msg, size_t n)
{
	size_t at = b->len;
	write_line(b, RESP_ERROR, msg, n);
	/* An error is one line: a CR or LF inside would end it early. */
	char *p = sp_buf_begin(b) + at + 1;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n')
			p[i] = ' ';
}

void resp_write_error(struct sp_buf *b, const char *msg)
{
	write_error_len(b, msg, strlen(msg));
}

void resp_write_errorf(struct sp_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		write_error_len(b, small, (size_t)n);
		return;
	}
	char *big = sp_malloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	write_error_len(b, big, (size_t)n);
	free(big);
}

void resp_write_integer(struct sp_buf *b, int64_t v)
{
	write_header(b, RESP_INTEGER, v);
}

void resp_write_bulk(struct sp_buf *b, const void *p, size_t len)
{
	write_blob(b, RESP_BULK, NULL, 0, p, len);
}

void resp_write_bulk_str(struct sp_buf *b, const char *s)
{
	write_blob(b, RESP_BULK, NULL, 0, s, strlen(s));
}

void resp_write_bulk_int(struct sp_buf *b, int64_t v)
{
	char digits[20];
	write_blob(b, RESP_BULK, NULL, 0, digits, i64_to_dec(digits, v));
}

void resp_write_null(struct sp_buf *b, int proto)
{
	if (proto >= 3)
		sp_buf_append(b, "_\r\n", 3);
	else
		sp_buf_append(b, "$-1\r\n", 5);
}

void resp_write_null_array(struct sp_buf *b, int proto)
{
	if (proto >= 3)
		sp_buf_append(b, "_\r\n", 3);
	else
		sp_buf_append(b, "*-1\r\n", 5);
}

void resp_write_array_len(struct sp_buf *b, size_t n)
{
	write_header(b, RESP_ARRAY, (int64_t)n);
}

void resp_write_map_len(struct sp_buf *b, size_t pairs, int proto)
{
	if (proto >= 3)
		write_header(b, RESP_MAP, (int64_t)pairs);
	else
		write_header(b, RESP_ARRAY, (int64_t)(2 * pairs));
}

void resp_write_set_len(struct sp_buf *b, size_t n, int proto)
{
	write_header(b, proto >= 3 ? RESP_SET : RESP_ARRAY, (int64_t)n);
}

void resp_write_bool(struct sp_buf *b, int v, int proto)
{
	if (proto >= 3)
		sp_buf_append(b, v ? "#t\r\n" : "#f\r\n", 4);
	else
		sp_buf_append(b, v ? ":1\r\n" : ":0\r\n", 4);
}

/* double_text writes the shortest form that reads back to exactly v:
 * "%.17g", or "inf", "-inf", "nan" as RESP3 spells them. dst has 32 bytes. */
static size_t double_text(char *dst, double v)
{
	if (isnan(v)) {
		memcpy(dst, "nan", 3);
		return 3;
	}
	if (isinf(v)) {
		if (v > 0) {
			memcpy(dst, "inf", 3);
			return 3;
		}
		memcpy(dst, "-inf", 4);
		return 4;
	}
	int n = snprintf(dst, 32, "%.17g", v);
	return n > 0 && n < 32 ? (size_t)n : 0;
}

void resp_write_double(struct sp_buf *b, double v, int proto)
{
	char text[32];
	size_t n = double_text(text, v);
	if (proto >= 3)
		write_line(b, RESP_DOUBLE, text, n);
	else
		write_blob(b, RESP_BULK, NULL, 0, text, n);
}

void resp_write_verbatim(struct sp_buf *b, const char *fmt3, const void *p, size_t len, int proto)
{
	if (proto >= 3) {
		char prefix[4];
		assert(strlen(fmt3) == 3);
		memcpy(prefix, fmt3, 3);
		prefix[3] = ':';
		write_blob(b, RESP_VERBATIM, prefix, 4, p, len);
	} else {
		write_blob(b, RESP_BULK, NULL, 0, p, len);
	}
}

void resp_write_value(struct sp_buf *b, const struct resp_value *v)
{
	if (v->attr)
		resp_write_value(b, v->attr);
	switch (v->type) {
	case RESP_SIMPLE:
	case RESP_ERROR:
	case RESP_BIGNUM:
		write_line(b, (char)v->type, v->str, v->len);
		return;
	case RESP_DOUBLE:
		if (v->str) {
			write_line(b, RESP_DOUBLE, v->str, v->len);
		} else {
			char text[32];
			write_line(b, RESP_DOUBLE, text, double_text(text, v->dbl));
		}
		return;
	case RESP_INTEGER:
		resp_write_integer(b, v->integer);
		return;
	case RESP_BULK:
	case RESP_BLOBERR:
	case RESP_VERBATIM:
		write_blob(b, (char)v->type, NULL, 0, v->str, v->len);
		return;
	case RESP_NULL:
		sp_buf_append(b, "_\r\n", 3);
		return;
	case RESP_BOOL:
		sp_buf_append(b, v->integer ? "#t\r\n" : "#f\r\n", 4);
		return;
	case RESP_ARRAY:
	case RESP_SET:
	case RESP_PUSH:
	case RESP_MAP:
	case RESP_ATTR: {
		write_header(b, (char)v->type, (int64_t)v->n);
		size_t n = elem_count(v);
		for (size_t i = 0; i < n; i++)
			resp_write_value(b, &v->elems[i]);
		return;
	}
	}
	assert(!"resp_write_value: bad type");
}
