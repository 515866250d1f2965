/*
 * bench_http: the etcd v3 JSON-gateway driver of `spectra bench`. See
 * bench_http.h.
 *
 * A compiled op is its template as bench_tmpl parses it (words cut into
 * literal text, {key}, {value} and {rand}), plus, per command, its verb and
 * which words are its key and value. A word's raw length is known from the
 * lengths of {key} and {rand} this op, hence its base64 length, hence the
 * body's length: the request is written front to back in one pass, its
 * Content-Length first. A word with no {key} or {rand} never changes, so its
 * base64 is made once at compile time; any other is base64-encoded piece by
 * piece straight into the output.
 *
 * A reply is walked twice at most: once to find where it ends (which, when
 * it is not all there yet, is all that is done), then once more over the
 * body, only for a reply that may be an error, to find the top-level
 * "error" and "code" members.
 */
#include "bench_http.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_tmpl.h"
#include "common/alloc.h"
#include "common/err.h"

/* ---- base64 (RFC 4648 §4) ------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64_groups encodes n bytes, n a multiple of 3, at dst; returns the end. */
static char *b64_groups(char *dst, const unsigned char *src, size_t n)
{
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
		*dst++ = b64_alphabet[v >> 18];
		*dst++ = b64_alphabet[(v >> 12) & 63];
		*dst++ = b64_alphabet[(v >> 6) & 63];
		*dst++ = b64_alphabet[v & 63];
	}
	return dst;
}

/* b64_tail encodes the last 0, 1 or 2 bytes with their padding. */
static char *b64_tail(char *dst, const unsigned char *src, size_t n)
{
	if (n == 0)
		return dst;
	uint32_t v = (uint32_t)src[0] << 16 | (n == 2 ? (uint32_t)src[1] << 8 : 0);
	*dst++ = b64_alphabet[v >> 18];
	*dst++ = b64_alphabet[(v >> 12) & 63];
	*dst++ = n == 2 ? b64_alphabet[(v >> 6) & 63] : '=';
	*dst++ = '=';
	return dst;
}

size_t bench_http_base64(char *dst, const void *src, size_t n)
{
	const unsigned char *in = src;
	size_t whole = n - n % 3;
	char *end = b64_groups(dst, in, whole);
	end = b64_tail(end, in + whole, n - whole);
	return (size_t)(end - dst);
}

/* A base64 encoding fed in pieces: up to 2 bytes wait in carry for the
 * next piece to make a group of 3. */
struct b64_stream {
	char *out;
	unsigned char carry[3];
	size_t ncarry;
};

static void b64_feed(struct b64_stream *s, const char *src, size_t n)
{
	const unsigned char *in = (const unsigned char *)src;
	if (s->ncarry > 0) {
		while (s->ncarry < 3 && n > 0) {
			s->carry[s->ncarry++] = *in++;
			n--;
		}
		if (s->ncarry < 3)
			return;
		s->out = b64_groups(s->out, s->carry, 3);
		s->ncarry = 0;
	}
	size_t whole = n - n % 3;
	s->out = b64_groups(s->out, in, whole);
	for (size_t i = whole; i < n; i++)
		s->carry[s->ncarry++] = in[i];
}

static char *b64_finish(struct b64_stream *s)
{
	return b64_tail(s->out, s->carry, s->ncarry);
}

/* ---- templates ------------------------------------------------------------ */

enum verb {
	VERB_PUT,
	VERB_GET,
	VERB_GET_SERIALIZABLE,
	VERB_DEL,
};

#define LIT(s) s, sizeof(s) - 1

#define HEADERS " HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\nContent-Length: "

/* How each verb's request is laid out around its key and value. */
static const struct verb_layout {
	const char *head; /* up to the Content-Length digits */
	size_t head_len;
	const char *after_key; /* after the key's base64 (PUT: up to the value's) */
	size_t after_key_len;
} layouts[] = {
    [VERB_PUT] = {LIT("POST /v3/kv/put" HEADERS), LIT("\",\"value\":\"")},
    [VERB_GET] = {LIT("POST /v3/kv/range" HEADERS), LIT("\"}")},
    [VERB_GET_SERIALIZABLE] = {LIT("POST /v3/kv/range" HEADERS), LIT("\",\"serializable\":true}")},
    [VERB_DEL] = {LIT("POST /v3/kv/deleterange" HEADERS), LIT("\"}")},
};

static const char head_end[] = "\r\n\r\n";
static const char body_open[] = "{\"key\":\"";
static const char put_close[] = "\"}"; /* after PUT's value */

/* What a command of the template asks etcd for. */
struct command {
	enum verb verb;
	size_t key, value; /* indexes in tmpl.words; value only for PUT */
	size_t max_len;	   /* most bytes its request can take */
};

struct http_op {
	struct bench_tmpl tmpl;
	struct command *cmds; /* owned: one per command of tmpl */
	char *consts;	      /* owned: base64 of the constant words */
	size_t consts_len;
	size_t *b64_off; /* owned: per word of tmpl, a constant one's base64 at consts[b64_off] */
};

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* same_word compares n bytes of s with the lower-case word w, ignoring
 * ASCII case. */
static int same_word(const char *s, size_t n, const char *w)
{
	if (strlen(w) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != w[i])
			return 0;
	return 1;
}

/* check_command picks the verb of cmd, whose words are t->words[first ..
 * first+n), and checks its arity. */
static int check_command(const struct bench_tmpl *t, struct command *cmd, size_t first, size_t n,
			 char *err, size_t errlen)
{
	const struct bench_tmpl_word *w = &t->words[first];
	const char *verb = t->text + w[0].src_off;
	size_t verb_len = w[0].src_len;

	if (same_word(verb, verb_len, "put")) {
		if (n != 3) {
			snprintf(err, errlen, "etcd: PUT takes a key and a value");
			return SP_ERR_INVAL;
		}
		cmd->verb = VERB_PUT;
		cmd->value = first + 2;
	} else if (same_word(verb, verb_len, "get")) {
		if (n != 2 && n != 3) {
			snprintf(err, errlen, "etcd: GET takes a key and optionally SERIALIZABLE");
			return SP_ERR_INVAL;
		}
		cmd->verb = VERB_GET;
		if (n == 3) {
			if (!same_word(t->text + w[2].src_off, w[2].src_len, "serializable")) {
				snprintf(err, errlen,
					 "etcd: GET's optional third word is SERIALIZABLE, not "
					 "'%.*s'",
					 (int)w[2].src_len, t->text + w[2].src_off);
				return SP_ERR_INVAL;
			}
			cmd->verb = VERB_GET_SERIALIZABLE;
		}
	} else if (same_word(verb, verb_len, "del")) {
		if (n != 2) {
			snprintf(err, errlen, "etcd: DEL takes a key");
			return SP_ERR_INVAL;
		}
		cmd->verb = VERB_DEL;
	} else {
		snprintf(err, errlen, "etcd: unknown verb '%.*s' (known: PUT, GET, DEL)",
			 (int)verb_len, verb);
		return SP_ERR_INVAL;
	}
	cmd->key = first + 1;

	const struct verb_layout *l = &layouts[cmd->verb];
	cmd->max_len =
	    l->head_len + BENCH_TMPL_U64_DIGITS + sizeof(head_end) - 1 + sizeof(body_open) - 1 +
	    BENCH_HTTP_B64_LEN(bench_tmpl_word_max_len(&t->words[cmd->key])) + l->after_key_len;
	if (cmd->verb == VERB_PUT)
		cmd->max_len += BENCH_HTTP_B64_LEN(bench_tmpl_word_max_len(&t->words[cmd->value])) +
				sizeof(put_close) - 1;
	return 0;
}

/* add_command is bench_tmpl_parse's check: it gives command ci of t its
 * entry in op->cmds (arg is op) and checks it. Templates are short and
 * compiled once, so the array grows one entry at a time. */
static int add_command(void *arg, const struct bench_tmpl *t, size_t ci, char *err, size_t errlen)
{
	struct http_op *op = arg;
	op->cmds = sp_realloc(op->cmds, (ci + 1) * sizeof(*op->cmds));
	op->cmds[ci] = (struct command){0};
	return check_command(t, &op->cmds[ci], t->cmds[ci].first, t->cmds[ci].n, err, errlen);
}

static int is_constant(const struct bench_tmpl_word *w)
{
	return w->nkey == 0 && w->nrand == 0;
}

/* feed_word feeds word w's raw bytes, with vars substituted, to a base64
 * stream. */
static void feed_word(const struct bench_tmpl *t, const struct bench_tmpl_word *w,
		      struct b64_stream *s, const struct bench_tmpl_vars *vars)
{
	for (size_t pi = w->first; pi < w->first + w->n; pi++) {
		size_t n;
		const char *bytes = bench_tmpl_piece_bytes(t, &t->pieces[pi], vars, &n);
		b64_feed(s, bytes, n);
	}
}

/* encode_constants makes the base64 of every constant key and value word
 * once, into op->consts. */
static void encode_constants(struct http_op *op)
{
	const struct bench_tmpl *t = &op->tmpl;
	const struct bench_tmpl_vars none = {0}; /* no {key} or {rand} in a constant word */
	size_t total = 0;
	for (size_t wi = 0; wi < t->nwords; wi++)
		if (is_constant(&t->words[wi]))
			total += BENCH_HTTP_B64_LEN(t->words[wi].fixed);
	op->consts = sp_malloc(total);
	op->b64_off = sp_calloc(t->nwords, sizeof(*op->b64_off));
	char *p = op->consts;
	for (size_t wi = 0; wi < t->nwords; wi++) {
		const struct bench_tmpl_word *w = &t->words[wi];
		if (!is_constant(w))
			continue;
		struct b64_stream s = {.out = p};
		op->b64_off[wi] = (size_t)(p - op->consts);
		feed_word(t, w, &s, &none);
		p = b64_finish(&s);
		assert((size_t)(p - op->consts - op->b64_off[wi]) == BENCH_HTTP_B64_LEN(w->fixed));
	}
	op->consts_len = total;
}

int bench_http_compile(const char *text, size_t value_size, void **out, char *err, size_t errlen)
{
	struct http_op *op = sp_calloc(1, sizeof(*op));
	int rc =
	    bench_tmpl_parse(&op->tmpl, text, value_size, "etcd: ", add_command, op, err, errlen);
	if (rc < 0) {
		bench_http_free(op);
		return rc;
	}
	encode_constants(op);
	*out = op;
	return 0;
}

void bench_http_free(void *opaque)
{
	struct http_op *op = opaque;
	if (!op)
		return;
	bench_tmpl_free(&op->tmpl);
	free(op->cmds);
	free(op->consts);
	free(op->b64_off);
	free(op);
}

size_t bench_http_steps(const void *opaque)
{
	const struct http_op *op = opaque;
	return op->tmpl.ncmds;
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* put_word writes the base64 of word wi at p and returns the end. */
static char *put_word(const struct http_op *op, size_t wi, char *p,
		      const struct bench_tmpl_vars *vars)
{
	const struct bench_tmpl_word *w = &op->tmpl.words[wi];
	if (is_constant(w))
		return put(p, op->consts + op->b64_off[wi], BENCH_HTTP_B64_LEN(w->fixed));
	struct b64_stream s = {.out = p};
	feed_word(&op->tmpl, w, &s, vars);
	return b64_finish(&s);
}

void bench_http_encode(const void *opaque, size_t step, const struct bench_vars *vars,
		       struct sp_buf *out)
{
	const struct http_op *op = opaque;
	const struct command *cmd = &op->cmds[step];
	const struct verb_layout *l = &layouts[cmd->verb];
	const struct bench_tmpl_word *words = op->tmpl.words;
	bool has_value = cmd->verb == VERB_PUT;
	struct bench_tmpl_vars v;
	bench_tmpl_vars_format(&v, vars);

	size_t body_len =
	    sizeof(body_open) - 1 +
	    BENCH_HTTP_B64_LEN(bench_tmpl_word_len(&words[cmd->key], v.key_len, v.rand_len)) +
	    l->after_key_len;
	if (has_value)
		body_len += BENCH_HTTP_B64_LEN(
				bench_tmpl_word_len(&words[cmd->value], v.key_len, v.rand_len)) +
			    sizeof(put_close) - 1;

	sp_buf_reserve(out, cmd->max_len);
	char *start = sp_buf_end(out), *p = start;
	p = put(p, l->head, l->head_len);
	p += bench_tmpl_dec(p, body_len);
	p = put(p, head_end, sizeof(head_end) - 1);
	char *body = p;
	p = put(p, body_open, sizeof(body_open) - 1);
	p = put_word(op, cmd->key, p, &v);
	p = put(p, l->after_key, l->after_key_len);
	if (has_value) {
		p = put_word(op, cmd->value, p, &v);
		p = put(p, put_close, sizeof(put_close) - 1);
	}
	assert((size_t)(p - body) == body_len);
	assert((size_t)(p - start) <= cmd->max_len);
	sp_buf_commit(out, (size_t)(p - start));
}

/* ---- replies: the body's error members ----------------------------------- */

/*
 * grpc-gateway (v1, as in etcd 3.4) answers a failed call with a JSON object
 * {"error": msg, "message": msg, "code": grpc_code, "details": [...]}. The
 * scan below follows JSON's nesting (objects, arrays, strings with escapes)
 * only as far as needed to tell a member of the top-level object from
 * anything inside it or inside a string, and notes the "error" member and
 * the first numeric "code" member. It accepts any bytes and never fails:
 * what is not JSON simply has no members.
 */
enum scan_state {
	SCAN_VALUE,	  /* outside strings */
	SCAN_STRING,	  /* inside a string */
	SCAN_ESCAPE,	  /* after a backslash in a string */
	SCAN_AFTER_NAME,  /* after a string in the top-level object: a name if ':' follows */
	SCAN_CODE,	  /* after "code":, before its value */
	SCAN_CODE_DIGITS, /* in the digits of the code */
};

#define SCAN_NAME_MAX 8 /* bytes of a member name kept: enough for "error" and "code" */

struct json_scan {
	enum scan_state state;
	size_t depth;	 /* objects and arrays open */
	bool started;	 /* a non-blank byte has been seen */
	bool top_object; /* the first one opened the top-level object, still open */
	bool member;	 /* the string being read is directly in the top-level object */
	bool escaped;	 /* ... and holds an escape, so it is no name we look for */
	char name[SCAN_NAME_MAX];
	size_t name_len;
	long digits;
	bool has_error, has_code;
	long code;
};

static int is_json_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_name(const struct json_scan *s, const char *name)
{
	size_t n = strlen(name);
	return !s->escaped && s->name_len == n && memcmp(s->name, name, n) == 0;
}

/* scan_feed scans the next n body bytes. */
static void scan_feed(struct json_scan *s, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		char c = p[i];
		switch (s->state) {
		case SCAN_VALUE: {
			i++;
			if (is_json_blank(c))
				break;
			bool first = !s->started;
			s->started = true;
			if (c == '{' || c == '[') {
				if (first)
					s->top_object = c == '{';
				s->depth++;
			} else if (c == '}' || c == ']') {
				if (s->depth > 0 && --s->depth == 0)
					s->top_object = false; /* what follows is not in it */
			} else if (c == '"') {
				s->state = SCAN_STRING;
				s->member = s->top_object && s->depth == 1;
				s->escaped = false;
				s->name_len = 0;
			}
			break;
		}
		case SCAN_STRING: {
			size_t j = i;
			while (j < n && p[j] != '"' && p[j] != '\\')
				j++;
			if (s->member) {
				/* Past SCAN_NAME_MAX bytes it is no name we want. */
				for (size_t k = i; k < j && s->name_len < SCAN_NAME_MAX; k++)
					s->name[s->name_len++] = p[k];
			}
			i = j;
			if (i == n)
				break;
			if (p[i] == '\\') {
				s->state = SCAN_ESCAPE;
				s->escaped = true;
			} else {
				s->state = s->member ? SCAN_AFTER_NAME : SCAN_VALUE;
			}
			i++;
			break;
		}
		case SCAN_ESCAPE:
			/* The escaped byte ("\"" included) is part of the string;
			 * the hex digits of \uXXXX are plain string bytes. */
			i++;
			s->state = SCAN_STRING;
			break;
		case SCAN_AFTER_NAME:
			if (is_json_blank(c)) {
				i++;
				break;
			}
			s->state = SCAN_VALUE;
			if (c != ':')
				break; /* a value, not a name: c is seen again */
			i++;
			if (is_name(s, "error"))
				s->has_error = true;
			else if (is_name(s, "code") && !s->has_code)
				s->state = SCAN_CODE;
			break;
		case SCAN_CODE:
			if (is_json_blank(c)) {
				i++;
				break;
			}
			if (is_digit(c)) {
				s->state = SCAN_CODE_DIGITS;
				s->digits = 0;
			} else {
				s->state = SCAN_VALUE; /* not a number: c is seen again */
			}
			break;
		case SCAN_CODE_DIGITS:
			if (is_digit(c)) {
				if (s->digits < 1000000)
					s->digits = s->digits * 10 + (c - '0');
				i++;
				break;
			}
			/* A whole number ends at a blank, a comma or a bracket;
			 * "14.5" or "14e0" is no gRPC code. */
			if (is_json_blank(c) || c == ',' || c == '}' || c == ']') {
				s->has_code = true;
				s->code = s->digits;
			}
			s->state = SCAN_VALUE;
			break;
		}
	}
}

static void scan_finish(struct json_scan *s)
{
	if (s->state == SCAN_CODE_DIGITS) {
		s->has_code = true;
		s->code = s->digits;
		s->state = SCAN_VALUE;
	}
}

/* ---- replies: status names ------------------------------------------------ */

static const char *const grpc_code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *bench_http_grpc_code_name(long code)
{
	if (code < 0 || (size_t)code >= sizeof(grpc_code_names) / sizeof(grpc_code_names[0]))
		return NULL;
	return grpc_code_names[code];
}

/* "HTTP_100" .. "HTTP_999" back to back, 8 bytes each, so an error word for
 * any status can point to static storage. */
#define HTTP_WORD(a, b, c) "HTTP_" #a #b #c
#define HTTP_WORDS10(a, b)                                                                         \
	HTTP_WORD(a, b, 0)                                                                         \
	HTTP_WORD(a, b, 1)                                                                         \
	HTTP_WORD(a, b, 2)                                                                         \
	HTTP_WORD(a, b, 3)                                                                         \
	HTTP_WORD(a, b, 4)                                                                         \
	HTTP_WORD(a, b, 5)                                                                         \
	HTTP_WORD(a, b, 6)                                                                         \
	HTTP_WORD(a, b, 7)                                                                         \
	HTTP_WORD(a, b, 8)                                                                         \
	HTTP_WORD(a, b, 9)
#define HTTP_WORDS100(a)                                                                           \
	HTTP_WORDS10(a, 0)                                                                         \
	HTTP_WORDS10(a, 1)                                                                         \
	HTTP_WORDS10(a, 2)                                                                         \
	HTTP_WORDS10(a, 3)                                                                         \
	HTTP_WORDS10(a, 4)                                                                         \
	HTTP_WORDS10(a, 5)                                                                         \
	HTTP_WORDS10(a, 6)                                                                         \
	HTTP_WORDS10(a, 7)                                                                         \
	HTTP_WORDS10(a, 8)                                                                         \
	HTTP_WORDS10(a, 9)
#define HTTP_WORD_LEN 8

static const char http_words[] = HTTP_WORDS100(1) HTTP_WORDS100(2) HTTP_WORDS100(3) HTTP_WORDS100(4)
    HTTP_WORDS100(5) HTTP_WORDS100(6) HTTP_WORDS100(7) HTTP_WORDS100(8) HTTP_WORDS100(9);

_Static_assert(sizeof(http_words) == 900 * HTTP_WORD_LEN + 1, "one word per status 100..999");

static void set_word(struct bench_reply *reply, const char *word, size_t len)
{
	reply->error = true;
	reply->word = word;
	reply->word_len = len;
}

static void set_name(struct bench_reply *reply, const char *name)
{
	set_word(reply, name, strlen(name));
}

/* ---- replies: framing (RFC 9112) ------------------------------------------ */

struct cursor {
	const char *buf;
	size_t len, pos;
};

static size_t add_limit(size_t pos, size_t n)
{
	return pos > SIZE_MAX - n ? SIZE_MAX : pos + n;
}

/*
 * take_line takes the line at c->pos, up to its CRLF: *line and *n are its
 * content. Its LF must lie before buf[limit]: a line not ended there is
 * SP_ERR_PROTO once limit bytes are in, SP_ERR_AGAIN before. A bare LF, a
 * CR not before the LF, or a NUL is SP_ERR_PROTO (RFC 9112 §2.2 lets us
 * reject them).
 */
static int take_line(struct cursor *c, size_t limit, const char **line, size_t *n)
{
	size_t end = c->len < limit ? c->len : limit;
	const char *start = c->buf + c->pos;
	const char *lf = c->pos < end ? memchr(start, '\n', end - c->pos) : NULL;
	if (!lf)
		return c->len >= limit ? SP_ERR_PROTO : SP_ERR_AGAIN;
	size_t k = (size_t)(lf - start);
	if (k == 0 || start[k - 1] != '\r')
		return SP_ERR_PROTO;
	if (memchr(start, '\r', k - 1) || memchr(start, '\0', k - 1))
		return SP_ERR_PROTO;
	*line = start;
	*n = k - 1;
	c->pos += k + 1;
	return 0;
}

/* parse_status_line reads "HTTP/1.x NNN reason" (RFC 9112 §4); the reason
 * may be empty, and so may the space before it. */
static int parse_status_line(const char *s, size_t n, int *status)
{
	if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || !is_digit(s[7]) || s[8] != ' ')
		return SP_ERR_PROTO;
	if (s[9] < '1' || s[9] > '9' || !is_digit(s[10]) || !is_digit(s[11]))
		return SP_ERR_PROTO;
	if (n > 12 && s[12] != ' ')
		return SP_ERR_PROTO;
	*status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	return 0;
}

/* is_tchar: a byte of a token (RFC 9110 §5.6.2), so of a field name. */
static int is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* parse_field splits a field line "name: value" (RFC 9112 §5): the name is
 * a token right before the colon, the value is trimmed of blanks. A line
 * that starts with a blank (an obsolete fold) has no name. */
static int parse_field(const char *s, size_t n, const char **name, size_t *name_len,
		       const char **value, size_t *value_len)
{
	size_t i = 0;
	while (i < n && is_tchar(s[i]))
		i++;
	if (i == 0 || i == n || s[i] != ':')
		return SP_ERR_PROTO;
	*name = s;
	*name_len = i;
	size_t a = i + 1, b = n;
	while (a < b && is_ows(s[a]))
		a++;
	while (b > a && is_ows(s[b - 1]))
		b--;
	*value = s + a;
	*value_len = b - a;
	return 0;
}

/* What the header section says about the body. */
struct framing {
	bool has_length;
	uint64_t length; /* saturated at BENCH_HTTP_MAX_BODY + 1 */
	bool has_te;
	bool last_chunked; /* the last transfer coding seen is chunked */
	unsigned nchunked; /* how many times chunked was seen */
};

/* parse_length reads a Content-Length value: one or more decimal numbers
 * separated by commas, all equal (RFC 9110 §8.6), and equal to any earlier
 * Content-Length. */
static int parse_length(const char *v, size_t n, struct framing *f)
{
	size_t i = 0;
	for (;;) {
		while (i < n && is_ows(v[i]))
			i++;
		size_t digits = 0;
		uint64_t x = 0;
		while (i < n && is_digit(v[i])) {
			if (x <= BENCH_HTTP_MAX_BODY)
				x = x * 10 + (uint64_t)(v[i] - '0');
			digits++;
			i++;
		}
		if (digits == 0)
			return SP_ERR_PROTO;
		if (x > BENCH_HTTP_MAX_BODY)
			x = BENCH_HTTP_MAX_BODY + 1;
		if (f->has_length && f->length != x)
			return SP_ERR_PROTO;
		f->has_length = true;
		f->length = x;
		while (i < n && is_ows(v[i]))
			i++;
		if (i == n)
			return 0;
		if (v[i] != ',')
			return SP_ERR_PROTO;
		i++;
	}
}

/* parse_codings reads a Transfer-Encoding value: a list of codings, each
 * perhaps with parameters (RFC 9112 §6.1); empty elements are ignored. */
static void parse_codings(const char *v, size_t n, struct framing *f)
{
	f->has_te = true;
	size_t i = 0;
	while (i < n) {
		while (i < n && (is_ows(v[i]) || v[i] == ','))
			i++;
		size_t start = i;
		while (i < n && is_tchar(v[i]))
			i++;
		if (i > start) {
			f->last_chunked = same_word(v + start, i - start, "chunked");
			f->nchunked += f->last_chunked;
		}
		while (i < n && v[i] != ',')
			i++; /* parameters, or whatever else is not a token */
	}
}

/* take_fields takes field lines up to and including the empty line that
 * ends them; its CRLF must end before buf[limit]. With f, it notes the
 * framing fields. */
static int take_fields(struct cursor *c, size_t limit, struct framing *f)
{
	for (;;) {
		const char *line, *name, *value;
		size_t n, name_len, value_len;
		int rc = take_line(c, limit, &line, &n);
		if (rc < 0)
			return rc;
		if (n == 0)
			return 0;
		rc = parse_field(line, n, &name, &name_len, &value, &value_len);
		if (rc < 0)
			return rc;
		if (!f)
			continue;
		if (same_word(name, name_len, "content-length"))
			rc = parse_length(value, value_len, f);
		else if (same_word(name, name_len, "transfer-encoding"))
			parse_codings(value, value_len, f);
		if (rc < 0)
			return rc;
	}
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* parse_chunk_size reads a chunk-size line: hex digits, then optionally
 * blanks and chunk extensions (";name=value...", RFC 9112 §7.1.1). A size
 * over BENCH_HTTP_MAX_BODY is SP_ERR_PROTO. */
static int parse_chunk_size(const char *s, size_t n, uint64_t *size)
{
	size_t i = 0;
	uint64_t v = 0;
	int d;
	while (i < n && (d = hex_digit(s[i])) >= 0) {
		v = v * 16 + (uint64_t)d;
		if (v > BENCH_HTTP_MAX_BODY)
			return SP_ERR_PROTO;
		i++;
	}
	if (i == 0)
		return SP_ERR_PROTO;
	while (i < n && is_ows(s[i]))
		i++;
	if (i < n && s[i] != ';')
		return SP_ERR_PROTO;
	*size = v;
	return 0;
}

/*
 * walk_chunks steps over a chunked body at c->pos, through its last chunk
 * and trailer section (RFC 9112 §7.1). With scan, feeds the chunks' data to
 * it (a second walk over bytes already found whole).
 */
static int walk_chunks(struct cursor *c, struct json_scan *scan)
{
	uint64_t total = 0;
	for (;;) {
		const char *line;
		size_t n;
		uint64_t size;
		int rc = take_line(c, add_limit(c->pos, BENCH_HTTP_MAX_HEADER), &line, &n);
		if (rc < 0)
			return rc;
		rc = parse_chunk_size(line, n, &size);
		if (rc < 0)
			return rc;
		if (size > BENCH_HTTP_MAX_BODY - total)
			return SP_ERR_PROTO;
		total += size;
		if (size == 0)
			break;
		if (c->len - c->pos < size + 2)
			return SP_ERR_AGAIN;
		const char *data = c->buf + c->pos;
		if (data[size] != '\r' || data[size + 1] != '\n')
			return SP_ERR_PROTO;
		if (scan)
			scan_feed(scan, data, (size_t)size);
		c->pos += (size_t)size + 2;
	}
	return take_fields(c, add_limit(c->pos, BENCH_HTTP_MAX_HEADER), NULL);
}

/* judge sets the verdict of a final response from its status and, when
 * the body may name an error, its body (scanned by the caller). */
static void judge(int status, const struct json_scan *scan, struct bench_reply *reply)
{
	const char *code_name = scan->has_code ? bench_http_grpc_code_name(scan->code) : NULL;
	if (status >= 200 && status < 300) {
		if (scan->has_error)
			set_name(reply, code_name ? code_name : "ERROR");
		return;
	}
	if (code_name)
		set_name(reply, code_name);
	else
		set_word(reply, http_words + (size_t)(status - 100) * HTTP_WORD_LEN, HTTP_WORD_LEN);
}

static int parse_reply(struct cursor *c, struct bench_reply *reply)
{
	if (c->len == 0)
		return SP_ERR_AGAIN;
	/* Refuse what is not HTTP/1 at once, without waiting for a line. */
	size_t k = c->len < 7 ? c->len : 7;
	if (memcmp(c->buf, "HTTP/1.", k) != 0)
		return SP_ERR_PROTO;

	const char *line;
	size_t n;
	int status;
	int rc = take_line(c, BENCH_HTTP_MAX_HEADER, &line, &n);
	if (rc < 0)
		return rc;
	rc = parse_status_line(line, n, &status);
	if (rc < 0)
		return rc;
	struct framing f = {0};
	rc = take_fields(c, BENCH_HTTP_MAX_HEADER, &f);
	if (rc < 0)
		return rc;

	/* RFC 9112 §6.3: these have no body, whatever their fields say. */
	if (status < 200) {
		reply->skip = true;
		return 0;
	}
	struct json_scan scan = {0};
	if (status == 204 || status == 304) {
		judge(status, &scan, reply);
		return 0;
	}
	bool ok = status >= 200 && status < 300;
	if (f.has_te) {
		if (!f.last_chunked || f.nchunked > 1)
			return SP_ERR_PROTO; /* length known only at close */
		size_t body = c->pos;
		rc = walk_chunks(c, NULL);
		if (rc < 0)
			return rc;
		struct cursor again = {c->buf, c->len, body};
		rc = walk_chunks(&again, &scan);
		assert(rc == 0 && again.pos == c->pos);
	} else if (f.has_length) {
		if (f.length > BENCH_HTTP_MAX_BODY)
			return SP_ERR_PROTO;
		if (c->len - c->pos < f.length)
			return SP_ERR_AGAIN;
		const char *body = c->buf + c->pos;
		c->pos += (size_t)f.length;
		/* A success is an error only with an "error" member: most
		 * bodies are passed over by memmem alone. */
		if (!ok || memmem(body, (size_t)f.length, "\"error\"", 7))
			scan_feed(&scan, body, (size_t)f.length);
	} else {
		return SP_ERR_PROTO; /* etcd always frames its bodies */
	}
	scan_finish(&scan);
	judge(status, &scan, reply);
	return 0;
}

int bench_http_parse_reply(const char *buf, size_t len, size_t *consumed, struct bench_reply *reply)
{
	struct cursor c = {buf, len, 0};
	*reply = (struct bench_reply){0};
	int rc = parse_reply(&c, reply);
	if (rc < 0) {
		*reply = (struct bench_reply){0};
		return rc;
	}
	*consumed = c.pos;
	return 0;
}

const struct bench_driver bench_etcd_driver = {
    .name = "etcd",
    .op_compile = bench_http_compile,
    .op_free = bench_http_free,
    .op_steps = bench_http_steps,
    .op_encode = bench_http_encode,
    .reply_parse = bench_http_parse_reply,
};
