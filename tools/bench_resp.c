/*
 * bench_resp: the RESP driver of `spectra bench`. See bench_resp.h.
 *
 * A compiled op is its template cut into pieces: literal text, {key},
 * {value} and {rand}. Each word knows its fixed length (text and value
 * bytes) and how many keys and rands it holds, so a bulk string's length is
 * known before its bytes are written, and each command knows the most bytes
 * it can take, so encoding reserves once and writes in place.
 */
#include "bench_resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

/* ---- templates ------------------------------------------------------------ */

enum piece_kind {
	PIECE_TEXT,
	PIECE_KEY,
	PIECE_VALUE,
	PIECE_RAND,
};

struct piece {
	enum piece_kind kind;
	size_t off, len; /* PIECE_TEXT: bytes text[off .. off+len) */
};

struct word {
	size_t first, n;      /* pieces[first .. first+n) */
	size_t fixed;	      /* bytes of text and value */
	unsigned nkey, nrand; /* placeholders whose length varies */
};

struct command {
	size_t first, n; /* words[first .. first+n) */
	size_t max_len;	 /* most bytes its encoding can take */
};

struct resp_op {
	char *text; /* owned copy of the template; TEXT pieces point into it */
	struct piece *pieces;
	size_t npieces, pieces_cap;
	struct word *words;
	size_t nwords, words_cap;
	struct command *cmds;
	size_t ncmds, cmds_cap;
	char *value; /* owned: value_size bytes of filler */
	size_t value_size;
};

#define U64_DIGITS 20 /* decimal digits of the largest uint64_t */
#define U32_DIGITS 10
#define HEADER_MAX (1 + U64_DIGITS + 2) /* "*<n>\r\n" or "$<len>\r\n" */

/* grow makes room for one more element in a growable array. */
static void *grow(void *arr, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return arr;
	*cap = *cap ? *cap * 2 : 8;
	return sp_realloc(arr, *cap * size);
}

static void add_piece(struct resp_op *op, enum piece_kind kind, size_t off, size_t len)
{
	op->pieces = grow(op->pieces, op->npieces, &op->pieces_cap, sizeof(*op->pieces));
	op->pieces[op->npieces++] = (struct piece){kind, off, len};
	struct word *w = &op->words[op->nwords - 1];
	w->n++;
	if (kind == PIECE_TEXT)
		w->fixed += len;
	else if (kind == PIECE_VALUE)
		w->fixed += op->value_size;
	else if (kind == PIECE_KEY)
		w->nkey++;
	else
		w->nrand++;
}

static const struct {
	const char *name; /* with its braces */
	enum piece_kind kind;
} placeholders[] = {
    {"{key}", PIECE_KEY},
    {"{value}", PIECE_VALUE},
    {"{rand}", PIECE_RAND},
};

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* placeholder_at says whether text[i] starts a placeholder: returns its
 * length and sets *kind, returns 0 for a literal '{', or -1 (with a
 * message in err) for braces around an unknown name. */
static long placeholder_at(const char *text, size_t i, size_t end, enum piece_kind *kind, char *err,
			   size_t errlen)
{
	for (size_t p = 0; p < sizeof(placeholders) / sizeof(placeholders[0]); p++) {
		size_t n = strlen(placeholders[p].name);
		if (end - i >= n && memcmp(text + i, placeholders[p].name, n) == 0) {
			*kind = placeholders[p].kind;
			return (long)n;
		}
	}
	size_t j = i + 1;
	while (j < end && is_name_char(text[j]))
		j++;
	if (j > i + 1 && j < end && text[j] == '}') {
		snprintf(err, errlen, "unknown placeholder '%.*s' (known: {key}, {value}, {rand})",
			 (int)(j + 1 - i), text + i);
		return -1;
	}
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* compile_command adds the command text[start .. end) to op. */
static int compile_command(struct resp_op *op, size_t start, size_t end, char *err, size_t errlen)
{
	const char *text = op->text;
	op->cmds = grow(op->cmds, op->ncmds, &op->cmds_cap, sizeof(*op->cmds));
	struct command *cmd = &op->cmds[op->ncmds];
	*cmd = (struct command){.first = op->nwords, .max_len = HEADER_MAX};
	size_t i = start;
	for (;;) {
		while (i < end && is_blank(text[i]))
			i++;
		if (i == end)
			break;
		op->words = grow(op->words, op->nwords, &op->words_cap, sizeof(*op->words));
		op->words[op->nwords++] = (struct word){.first = op->npieces};
		size_t lit = i;
		while (i < end && !is_blank(text[i])) {
			enum piece_kind kind;
			long n =
			    text[i] == '{' ? placeholder_at(text, i, end, &kind, err, errlen) : 0;
			if (n < 0)
				return SP_ERR_INVAL;
			if (n == 0) {
				i++;
				continue;
			}
			if (i > lit)
				add_piece(op, PIECE_TEXT, lit, i - lit);
			add_piece(op, kind, 0, 0);
			i += (size_t)n;
			lit = i;
		}
		if (i > lit)
			add_piece(op, PIECE_TEXT, lit, i - lit);
		const struct word *w = &op->words[op->nwords - 1];
		cmd->max_len +=
		    HEADER_MAX + w->fixed + w->nkey * U64_DIGITS + w->nrand * U32_DIGITS + 2;
		cmd->n++;
	}
	if (cmd->n == 0) {
		snprintf(err, errlen, "empty command in template '%s'", text);
		return SP_ERR_INVAL;
	}
	op->ncmds++;
	return 0;
}

int bench_resp_compile(const char *text, size_t value_size, void **out, char *err, size_t errlen)
{
	struct resp_op *op = sp_calloc(1, sizeof(*op));
	op->text = sp_strdup(text);
	op->value_size = value_size;
	op->value = sp_malloc(value_size + 1);
	/* Filler that is plainly filler when someone reads a key by hand. */
	for (size_t i = 0; i < value_size; i++)
		op->value[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i % 36];

	size_t len = strlen(text), start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && text[i] != ';')
			continue;
		int rc = compile_command(op, start, i, err, errlen);
		if (rc < 0) {
			bench_resp_free(op);
			return rc;
		}
		start = i + 1;
	}
	*out = op;
	return 0;
}

void bench_resp_free(void *opaque)
{
	struct resp_op *op = opaque;
	if (!op)
		return;
	free(op->text);
	free(op->pieces);
	free(op->words);
	free(op->cmds);
	free(op->value);
	free(op);
}

size_t bench_resp_steps(const void *opaque)
{
	const struct resp_op *op = opaque;
	return op->ncmds;
}

/* dec writes v in decimal at dst (no NUL) and returns its length. */
static size_t dec(char *dst, uint64_t v)
{
	char tmp[U64_DIGITS];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

static char *put_header(char *p, char type, uint64_t n)
{
	*p++ = type;
	p += dec(p, n);
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

void bench_resp_encode(const void *opaque, size_t step, const struct bench_vars *vars,
		       struct sp_buf *out)
{
	const struct resp_op *op = opaque;
	const struct command *cmd = &op->cmds[step];
	char key[U64_DIGITS], rnd[U32_DIGITS];
	size_t key_len = dec(key, vars->key), rnd_len = dec(rnd, vars->rand);

	sp_buf_reserve(out, cmd->max_len);
	char *start = sp_buf_end(out), *p = start;
	p = put_header(p, '*', cmd->n);
	for (size_t wi = cmd->first; wi < cmd->first + cmd->n; wi++) {
		const struct word *w = &op->words[wi];
		p = put_header(p, '$', w->fixed + w->nkey * key_len + w->nrand * rnd_len);
		for (size_t pi = w->first; pi < w->first + w->n; pi++) {
			const struct piece *pc = &op->pieces[pi];
			switch (pc->kind) {
			case PIECE_TEXT:
				memcpy(p, op->text + pc->off, pc->len);
				p += pc->len;
				break;
			case PIECE_KEY:
				memcpy(p, key, key_len);
				p += key_len;
				break;
			case PIECE_RAND:
				memcpy(p, rnd, rnd_len);
				p += rnd_len;
				break;
			case PIECE_VALUE:
				memcpy(p, op->value, op->value_size);
				p += op->value_size;
				break;
			}
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
