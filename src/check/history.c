/*
 * history: JSON lines to struct lin_op and back (see the header).
 *
 * Parsing uses jansson, one line at a time, with JSON_ALLOW_NUL so that
 * "\u0000" in a key or value is a byte like any other, and reads strings
 * by their length, never as C strings. Formatting writes the line by
 * hand: it is on the chaos tool's path for every op, and it must decide
 * what to do with bytes that are not UTF-8, which jansson refuses.
 *
 * The bytes of keys and values live in chunks that are never moved, so
 * the ops' pointers stay valid as the history grows; the ops array may
 * move, and holds only pointers into the chunks.
 */
#include "check/history.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

#define CHUNK_MIN ((size_t)64 * 1024)
/* The largest time the format holds: a JSON integer jansson reads. */
#define TIME_MAX ((uint64_t)INT64_MAX)

struct history_chunk {
	struct history_chunk *next; /* older chunks */
	size_t used, cap;
	uint8_t data[];
};

void history_init(struct history *h)
{
	memset(h, 0, sizeof(*h));
}

void history_free(struct history *h)
{
	if (h == NULL)
		return;
	struct history_chunk *c = h->chunks;
	while (c != NULL) {
		struct history_chunk *next = c->next;
		free(c);
		c = next;
	}
	free(h->ops);
	free(h->line);
	free(h->session);
	free(h->node);
	history_init(h);
}

/* ---------------------------------------------------------------------- */
/* Owned storage                                                           */

/* keep copies len bytes into h's chunks and returns where they are (never
 * NULL, even for len 0). */
static const uint8_t *keep(struct history *h, const void *p, size_t len)
{
	struct history_chunk *c = h->chunks;
	if (c == NULL || c->cap - c->used < len) {
		size_t cap = len > CHUNK_MIN ? len : CHUNK_MIN;
		c = sp_malloc(sizeof(*c) + cap);
		c->used = 0;
		c->cap = cap;
		c->next = h->chunks;
		h->chunks = c;
	}
	uint8_t *at = c->data + c->used;
	if (len > 0)
		memcpy(at, p, len);
	c->used += len;
	return at;
}

static struct lin_value keep_value(struct history *h, const struct lin_value *v)
{
	if (v->nil)
		return (struct lin_value){.nil = true};
	return (struct lin_value){.p = keep(h, v->p, v->len), .len = v->len};
}

/* A point to roll h's storage back to (see rollback). */
struct mark {
	size_t n;
	struct history_chunk *chunk;
	size_t used;
};

static struct mark mark_of(const struct history *h)
{
	return (struct mark){
	    .n = h->n, .chunk = h->chunks, .used = h->chunks ? h->chunks->used : 0};
}

/* rollback forgets every op and byte added since mark m was taken. */
static void rollback(struct history *h, struct mark m)
{
	while (h->chunks != m.chunk) {
		struct history_chunk *next = h->chunks->next;
		free(h->chunks);
		h->chunks = next;
	}
	if (h->chunks != NULL)
		h->chunks->used = m.used;
	h->n = m.n;
}

/* push appends op (whose bytes h already owns) with its line number,
 * session (bytes owned by h, or nil) and node (-1: unknown). */
static void push(struct history *h, const struct lin_op *op, size_t line,
		 const struct lin_value *session, int64_t node)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		h->ops = sp_realloc(h->ops, cap * sizeof(*h->ops));
		h->line = sp_realloc(h->line, cap * sizeof(*h->line));
		h->session = sp_realloc(h->session, cap * sizeof(*h->session));
		h->node = sp_realloc(h->node, cap * sizeof(*h->node));
		h->cap = cap;
	}
	h->ops[h->n] = *op;
	h->line[h->n] = line;
	h->session[h->n] = *session;
	h->node[h->n] = node;
	h->n++;
}

/* ---------------------------------------------------------------------- */
/* Names                                                                   */

static const char *const op_names[] = {
    [LIN_READ] = "read",
    [LIN_WRITE] = "write",
    [LIN_CAS] = "cas",
    [LIN_DELETE] = "delete",
};

static const char *const result_names[] = {
    [LIN_OK] = "ok",
    [LIN_FAIL] = "fail",
    [LIN_UNKNOWN] = "info",
};

const char *history_op_name(enum lin_kind kind)
{
	if (kind < LIN_READ || kind > LIN_DELETE)
		return "?";
	return op_names[kind];
}

const char *history_result_name(enum lin_outcome outcome)
{
	if (outcome < LIN_OK || outcome > LIN_UNKNOWN)
		return "?";
	return result_names[outcome];
}

/* ---------------------------------------------------------------------- */
/* history_add                                                             */

static bool value_ok(const struct lin_value *v)
{
	return v->nil || v->len == 0 || v->p != NULL;
}

/* add_ok says whether history_add takes op: lin_check's rules, and a
 * WRITE must write a value (a write of nil is a DELETE). */
static bool add_ok(const struct lin_op *o)
{
	if (o->kind < LIN_READ || o->kind > LIN_DELETE)
		return false;
	if (o->outcome < LIN_OK || o->outcome > LIN_UNKNOWN)
		return false;
	if (o->outcome != LIN_UNKNOWN && o->call > o->ret)
		return false;
	if (o->klen != 0 && o->key == NULL)
		return false;
	switch (o->kind) {
	case LIN_READ:
		return o->outcome != LIN_OK || value_ok(&o->result);
	case LIN_WRITE:
		return !o->arg.nil && value_ok(&o->arg);
	case LIN_CAS:
		return value_ok(&o->arg) && value_ok(&o->expect);
	case LIN_DELETE:
		return true;
	}
	return false;
}

int history_add(struct history *h, const struct lin_op *op)
{
	if (!add_ok(op))
		return SP_ERR_INVAL;
	struct lin_value nil = {.nil = true};
	struct lin_op o = {
	    .client = op->client,
	    .kind = op->kind,
	    .arg = nil,
	    .expect = nil,
	    .result = nil,
	    .call = op->call,
	    .ret = op->ret,
	    .outcome = op->outcome,
	};
	o.key = keep(h, op->key, op->klen);
	o.klen = op->klen;
	switch (op->kind) {
	case LIN_READ:
		/* A read that failed or may not have happened saw nothing
		 * anyone can rely on; its result may be garbage. */
		if (op->outcome == LIN_OK)
			o.result = keep_value(h, &op->result);
		break;
	case LIN_WRITE:
		o.arg = keep_value(h, &op->arg);
		break;
	case LIN_CAS:
		o.expect = keep_value(h, &op->expect);
		o.arg = keep_value(h, &op->arg);
		break;
	case LIN_DELETE:
		break;
	}
	push(h, &o, 0, &nil, -1);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* history_parse                                                           */

/* A line being parsed: where errors go, and the history that keeps its
 * bytes. */
struct line_ctx {
	struct history *h;
	json_t *obj;
	size_t line;
	unsigned flags; /* enum history_parse_flags */
	char *err;
	size_t errlen;
};

static int line_error(struct line_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int line_error(struct line_ctx *c, const char *fmt, ...)
{
	if (c->err != NULL && c->errlen > 0) {
		int k = snprintf(c->err, c->errlen, "line %zu: ", c->line);
		if (k >= 0 && (size_t)k < c->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
			va_end(ap);
		}
	}
	return SP_ERR_INVAL;
}

/* shown writes a short, printable rendering of a string from the input
 * into out, for error messages. */
static void shown(const json_t *s, char *out, size_t cap)
{
	const char *p = json_string_value(s);
	size_t len = json_string_length(s), k = 0;
	for (size_t i = 0; i < len && k + 4 < cap; i++) {
		if (i == 24) {
			memcpy(out + k, "...", 3);
			k += 3;
			break;
		}
		unsigned char ch = (unsigned char)p[i];
		out[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	out[k] = '\0';
}

static bool string_is(const json_t *s, const char *word)
{
	size_t len = strlen(word);
	return json_string_length(s) == len && memcmp(json_string_value(s), word, len) == 0;
}

/* get_value reads field name as a string (or null, when nullable) into
 * *out, copied into the history. A missing field is an error when
 * required, else leaves *out nil. */
static int get_value(struct line_ctx *c, const char *name, bool required, bool nullable,
		     const char *what, struct lin_value *out)
{
	json_t *v = json_object_get(c->obj, name);
	*out = (struct lin_value){.nil = true};
	if (v == NULL) {
		if (required)
			return line_error(c, "\"%s\" is missing (%s)", name, what);
		return 0;
	}
	if (json_is_null(v)) {
		if (!nullable)
			return line_error(c, "\"%s\" must be a string (%s), not null", name, what);
		return 0;
	}
	if (!json_is_string(v))
		return line_error(c, "\"%s\" must be a string%s", name, nullable ? " or null" : "");
	out->nil = false;
	out->len = json_string_length(v);
	out->p = keep(c->h, json_string_value(v), out->len);
	return 0;
}

/* get_uint reads field name as an integer in [0, max]. *present says
 * whether it was there and not null (null is allowed only when
 * nullable; absence only when !required). */
static int get_uint(struct line_ctx *c, const char *name, bool required, bool nullable,
		    uint64_t max, uint64_t *out, bool *present)
{
	json_t *v = json_object_get(c->obj, name);
	*present = false;
	*out = 0;
	if (v == NULL) {
		if (required)
			return line_error(c, "\"%s\" is missing", name);
		return 0;
	}
	if (json_is_null(v) && nullable)
		return 0;
	if (!json_is_integer(v))
		return line_error(c, "\"%s\" must be an integer%s", name,
				  nullable ? " or null" : "");
	json_int_t i = json_integer_value(v);
	if (i < 0 || (uint64_t)i > max)
		return line_error(c, "\"%s\" is %" PRId64 ", out of range [0, %" PRIu64 "]", name,
				  (int64_t)i, max);
	*out = (uint64_t)i;
	*present = true;
	return 0;
}

static int get_word(struct line_ctx *c, const char *name, const char *const *words, int lo, int hi,
		    const char *want, int *out)
{
	json_t *v = json_object_get(c->obj, name);
	if (v == NULL)
		return line_error(c, "\"%s\" is missing", name);
	if (!json_is_string(v))
		return line_error(c, "\"%s\" must be a string (%s)", name, want);
	for (int i = lo; i <= hi; i++) {
		if (string_is(v, words[i])) {
			*out = i;
			return 0;
		}
	}
	char text[40];
	shown(v, text, sizeof(text));
	return line_error(c, "unknown %s \"%s\" (want %s)", name, text, want);
}

/* parse_object turns the object of one line into an op of h. */
static int parse_object(struct line_ctx *c)
{
	struct lin_op o = {0};
	struct lin_value nil = {.nil = true};
	uint64_t process, invoke, complete;
	bool present, has_complete;
	int kind, outcome, rc;

	o.arg = o.expect = o.result = nil;
	rc = get_uint(c, "process", true, false, TIME_MAX, &process, &present);
	if (rc != 0)
		return rc;
	rc = get_word(c, "op", op_names, LIN_READ, LIN_DELETE, "read, write, cas or delete", &kind);
	if (rc != 0)
		return rc;
	rc = get_word(c, "result", result_names, LIN_OK, LIN_UNKNOWN, "ok, fail or info", &outcome);
	if (rc != 0)
		return rc;
	json_t *key = json_object_get(c->obj, "key");
	if (key == NULL)
		return line_error(c, "\"key\" is missing");
	if (!json_is_string(key))
		return line_error(c, "\"key\" must be a string");
	rc = get_uint(c, "invoke", true, false, TIME_MAX, &invoke, &present);
	if (rc != 0)
		return rc;
	bool info = outcome == LIN_UNKNOWN;
	rc = get_uint(c, "complete", !info, info, TIME_MAX, &complete, &has_complete);
	if (rc != 0)
		return rc;
	if (has_complete && complete < invoke)
		return line_error(c,
				  "\"complete\" (%" PRIu64 ") is before \"invoke\" (%" PRIu64 ")",
				  complete, invoke);

	o.client = process;
	o.kind = (enum lin_kind)kind;
	o.outcome = (enum lin_outcome)outcome;
	o.call = invoke;
	o.ret = has_complete ? complete : UINT64_MAX;
	o.klen = json_string_length(key);
	o.key = keep(c->h, json_string_value(key), o.klen);

	switch (o.kind) {
	case LIN_READ:
		/* Only an acknowledged read saw something. */
		if (o.outcome == LIN_OK)
			rc = get_value(c, "value", true, true, "the value read, or null for none",
				       &o.result);
		break;
	case LIN_WRITE:
		rc = get_value(c, "value", true, false, "the value written", &o.arg);
		break;
	case LIN_CAS:
		rc = get_value(c, "expected", true, true, "the value compared with", &o.expect);
		if (rc == 0)
			rc = get_value(c, "new", true, true, "the value set", &o.arg);
		break;
	case LIN_DELETE:
		break;
	}
	if (rc != 0)
		return rc;

	struct lin_value session = nil;
	int64_t node = -1;
	if (c->flags & HISTORY_SESSIONS) {
		uint64_t v;
		rc = get_value(c, "session", false, true, "the client session", &session);
		if (rc == 0)
			rc = get_uint(c, "node", false, true, TIME_MAX, &v, &present);
		if (rc != 0)
			return rc;
		if (present)
			node = (int64_t)v;
	}
	push(c->h, &o, c->line, &session, node);
	return 0;
}

static bool blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

int history_parse(struct history *h, const char *text, size_t len, char *err, size_t errlen)
{
	return history_parse_ex(h, text, len, 0, err, errlen);
}

int history_parse_ex(struct history *h, const char *text, size_t len, unsigned flags, char *err,
		     size_t errlen)
{
	struct mark m = mark_of(h);
	struct line_ctx c = {.h = h, .err = err, .errlen = errlen, .flags = flags};
	size_t at = 0;
	int rc = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	while (at < len) {
		const char *p = text + at;
		const char *nl = memchr(p, '\n', len - at);
		size_t n = nl ? (size_t)(nl - p) : len - at;
		at += n + (nl != NULL);
		c.line++;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (blank(p, n))
			continue;

		json_error_t jerr;
		c.obj = json_loadb(p, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
				   &jerr);
		if (c.obj == NULL) {
			rc = line_error(&c, "not JSON: %s (column %d)", jerr.text, jerr.column);
			goto undo;
		}
		if (!json_is_object(c.obj))
			rc = line_error(&c, "not a JSON object");
		else
			rc = parse_object(&c);
		json_decref(c.obj);
		if (rc != 0)
			goto undo;
	}
	return 0;

undo:
	rollback(h, m);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* history_format_op                                                       */

/* utf8_len returns the length of the valid UTF-8 sequence at p (at most
 * n bytes), or 0 when there is none: a stray continuation byte, a
 * truncated or overlong sequence, a surrogate, or more than U+10FFFF. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
	uint32_t cp;
	size_t len;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* append_string writes bytes as a JSON string: quotes, backslashes and
 * control characters escaped, valid UTF-8 as it is, other bytes as
 * \u00XX. */
static void append_string(struct sp_buf *out, const uint8_t *p, size_t len)
{
	sp_buf_reserve(out, len + 2);
	sp_buf_append(out, "\"", 1);
	for (size_t i = 0; i < len;) {
		uint8_t ch = p[i];
		size_t run = 0;
		/* Copy runs of plain bytes at once. */
		while (i + run < len && p[i + run] >= 0x20 && p[i + run] < 0x7f &&
		       p[i + run] != '"' && p[i + run] != '\\')
			run++;
		if (run > 0) {
			sp_buf_append(out, p + i, run);
			i += run;
			continue;
		}
		switch (ch) {
		case '"':
			sp_buf_append(out, "\\\"", 2);
			i++;
			continue;
		case '\\':
			sp_buf_append(out, "\\\\", 2);
			i++;
			continue;
		case '\n':
			sp_buf_append(out, "\\n", 2);
			i++;
			continue;
		case '\r':
			sp_buf_append(out, "\\r", 2);
			i++;
			continue;
		case '\t':
			sp_buf_append(out, "\\t", 2);
			i++;
			continue;
		default:
			break;
		}
		size_t seq = ch >= 0x80 ? utf8_len(p + i, len - i) : 0;
		if (seq > 0) {
			sp_buf_append(out, p + i, seq);
			i += seq;
		} else {
			sp_buf_appendf(out, "\\u%04x", ch);
			i++;
		}
	}
	sp_buf_append(out, "\"", 1);
}

static void append_value(struct sp_buf *out, const char *name, const struct lin_value *v)
{
	sp_buf_appendf(out, ",\"%s\":", name);
	if (v->nil)
		sp_buf_append(out, "null", 4);
	else
		append_string(out, v->p, v->len);
}

void history_format_op(const struct lin_op *op, struct sp_buf *out)
{
	sp_buf_appendf(out, "{\"process\":%" PRIu64 ",\"op\":\"%s\",\"key\":", op->client,
		       history_op_name(op->kind));
	append_string(out, op->key, op->klen);
	switch (op->kind) {
	case LIN_READ:
		if (op->outcome == LIN_OK)
			append_value(out, "value", &op->result);
		break;
	case LIN_WRITE:
		append_value(out, "value", &op->arg);
		break;
	case LIN_CAS:
		append_value(out, "expected", &op->expect);
		append_value(out, "new", &op->arg);
		break;
	case LIN_DELETE:
		break;
	}
	sp_buf_appendf(out, ",\"invoke\":%" PRIu64 ",\"complete\":", op->call);
	if (op->outcome == LIN_UNKNOWN && (op->ret == UINT64_MAX || op->ret < op->call))
		sp_buf_append(out, "null", 4);
	else
		sp_buf_appendf(out, "%" PRIu64, op->ret);
	sp_buf_appendf(out, ",\"result\":\"%s\"}\n", history_result_name(op->outcome));
}
