/*
 * bench_resp: the RESP driver of `spectra bench`. See bench_resp.h.
 *
 * A compiled op is its template as bench_tmpl parses it (words cut into
 * literal text, {key}, {value} and {rand}, each word knowing its fixed
 * length and how many keys and rands it holds, so a bulk string's length is
 * known before its bytes are written), plus, per command, the most bytes its
 * encoding can take, so encoding reserves once and writes in place.
 */
#include "bench_resp.h"

#include <stdlib.h>
#include <string.h>

#include "bench_tmpl.h"
#include "common/alloc.h"
#include "common/err.h"

/* ---- templates ------------------------------------------------------------ */

struct resp_op {
	struct bench_tmpl tmpl;
	size_t *max_len; /* owned: per command, the most bytes its encoding can take */
};

#define HEADER_MAX (1 + BENCH_TMPL_U64_DIGITS + 2) /* "*<n>\r\n" or "$<len>\r\n" */

/* command_max_len returns the most bytes command cmd of t can take as a
 * RESP array of bulk strings. */
static size_t command_max_len(const struct bench_tmpl *t, const struct bench_tmpl_command *cmd)
{
	size_t max_len = HEADER_MAX;
	for (size_t wi = cmd->first; wi < cmd->first + cmd->n; wi++)
		max_len += HEADER_MAX + bench_tmpl_word_max_len(&t->words[wi]) + 2;
	return max_len;
}

int bench_resp_compile(const char *text, size_t value_size, void **out, char *err, size_t errlen)
{
	struct resp_op *op = sp_calloc(1, sizeof(*op));
	int rc = bench_tmpl_parse(&op->tmpl, text, value_size, "", NULL, NULL, err, errlen);
	if (rc < 0) {
		free(op);
		return rc;
	}
	op->max_len = sp_malloc(op->tmpl.ncmds * sizeof(*op->max_len));
	for (size_t ci = 0; ci < op->tmpl.ncmds; ci++)
		op->max_len[ci] = command_max_len(&op->tmpl, &op->tmpl.cmds[ci]);
	*out = op;
	return 0;
}

void bench_resp_free(void *opaque)
{
	struct resp_op *op = opaque;
	if (!op)
		return;
	bench_tmpl_free(&op->tmpl);
	free(op->max_len);
	free(op);
}

size_t bench_resp_steps(const void *opaque)
{
	const struct resp_op *op = opaque;
	return op->tmpl.ncmds;
}

static char *put_header(char *p, char type, uint64_t n)
{
	*p++ = type;
	p += bench_tmpl_dec(p, n);
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

void bench_resp_encode(const void *opaque, size_t step, const struct bench_vars *vars,
		       struct sp_buf *out)
{
	const struct resp_op *op = opaque;
	const struct bench_tmpl *t = &op->tmpl;
	const struct bench_tmpl_command *cmd = &t->cmds[step];
	struct bench_tmpl_vars v;
	bench_tmpl_vars_format(&v, vars);

	sp_buf_reserve(out, op->max_len[step]);
	char *start = sp_buf_end(out), *p = start;
	p = put_header(p, '*', cmd->n);
	for (size_t wi = cmd->first; wi < cmd->first + cmd->n; wi++) {
		const struct bench_tmpl_word *w = &t->words[wi];
		p = put_header(p, '$', bench_tmpl_word_len(w, v.key_len, v.rand_len));
		for (size_t pi = w->first; pi < w->first + w->n; pi++) {
			size_t n;
			const char *bytes = bench_tmpl_piece_bytes(t, &t->pieces[pi], &v, &n);
			memcpy(p, bytes, n);
			p += n;
		}
		*p++ = '\r';
		*p++ = '\n';
	}
	sp_buf_commit(out, (size_t)(p - start));
}

/* ---- replies -------------------------------------------------------------- */

struct cursor {
	const char *buf;
	size_t len, pos;
};

/* read_line takes the line at c->pos up to its CRLF: *line and *n are its
 * content. RESP lines hold no CR, so the first CR must start the CRLF. */
static int read_line(struct cursor *c, const char **line, size_t *n)
{
	const char *start = c->buf + c->pos;
	const char *cr = memchr(start, '\r', c->len - c->pos);
	if (!cr || (size_t)(cr - c->buf) + 1 >= c->len)
		return SP_ERR_AGAIN;
	if (cr[1] != '\n')
		return SP_ERR_PROTO;
	*line = start;
	*n = (size_t)(cr - start);
	c->pos = (size_t)(cr - c->buf) + 2;
	return 0;
}

/* parse_count reads a length or count line: an optional '-' and 1..18
 * digits (so no overflow, and far beyond any real reply). */
static int parse_count(const char *s, size_t n, long long *out)
{
	size_t i = 0;
	int neg = 0;
	if (n > 0 && s[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == n || n - i > 18)
		return SP_ERR_PROTO;
	long long v = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return SP_ERR_PROTO;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

static void set_error(struct bench_reply *top, const char *text, size_t n)
{
	if (!top)
		return;
	size_t w = 0;
	while (w < n && text[w] != ' ')
		w++;
	top->error = true;
	top->word = text;
	top->word_len = w;
}

/*
 * skip_value steps over one value at c->pos. top is the reply being
 * described when this value is the reply itself (not a part of one).
 */
static int skip_value(struct cursor *c, int depth, struct bench_reply *top)
{
	if (depth > BENCH_RESP_MAX_DEPTH)
		return SP_ERR_PROTO;
	if (c->pos >= c->len)
		return SP_ERR_AGAIN;
	char type = c->buf[c->pos++];
	const char *line;
	size_t n;
	long long v;
	int rc = read_line(c, &line, &n);
	if (rc < 0)
		return rc;

	switch (type) {
	case '+':
	case ':':
	case '_':
	case ',':
	case '#':
	case '(':
		return 0;
	case '-':
		set_error(top, line, n);
		return 0;
	case '$':
	case '!':
	case '=':
		if (parse_count(line, n, &v) < 0)
			return SP_ERR_PROTO; /* includes the streamed "$?" */
		if (v == -1 && type == '$')
			return 0; /* RESP2 null bulk */
		if (v < 0)
			return SP_ERR_PROTO;
		if (c->len - c->pos < (size_t)v + 2)
			return SP_ERR_AGAIN;
		if (c->buf[c->pos + (size_t)v] != '\r' || c->buf[c->pos + (size_t)v + 1] != '\n')
			return SP_ERR_PROTO;
		if (type == '!')
			set_error(top, c->buf + c->pos, (size_t)v);
		c->pos += (size_t)v + 2;
		return 0;
	case '*':
	case '~':
	case '>':
	case '%':
	case '|': {
		if (parse_count(line, n, &v) < 0)
			return SP_ERR_PROTO; /* includes the streamed "*?" */
		if (v == -1 && type == '*')
			return 0; /* RESP2 null array */
		if (v < 0)
			return SP_ERR_PROTO;
		unsigned long long elems = (unsigned long long)v;
		if (type == '%' || type == '|')
			elems *= 2;
		for (unsigned long long i = 0; i < elems; i++) {
			rc = skip_value(c, depth + 1, NULL);
			if (rc < 0)
				return rc;
		}
		/* An attribute annotates the value after it, which is the
		 * reply (or element) proper. */
		if (type == '|')
			return skip_value(c, depth + 1, top);
		if (type == '>' && top)
			top->skip = true;
		return 0;
	}
	default:
		return SP_ERR_PROTO;
	}
}

int bench_resp_skip_reply(const char *buf, size_t len, size_t *consumed, struct bench_reply *reply)
{
	struct cursor c = {buf, len, 0};
	*reply = (struct bench_reply){0};
	int rc = skip_value(&c, 0, reply);
	if (rc < 0) {
		*reply = (struct bench_reply){0};
		return rc;
	}
	*consumed = c.pos;
	return 0;
}

const struct bench_driver bench_resp_driver = {
    .name = "resp",
    .op_compile = bench_resp_compile,
    .op_free = bench_resp_free,
    .op_steps = bench_resp_steps,
    .op_encode = bench_resp_encode,
    .reply_parse = bench_resp_skip_reply,
};
