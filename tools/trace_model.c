/*
 * trace_model: loading trace lines and computing the events' clocks. See
 * trace_model.h.
 *
 * The clocks are computed in one pass of Kahn's topological sort over the
 * four kinds of edge: an event's clock is the merge (component-wise max)
 * of its predecessors' clocks, which are all final when it is taken, with
 * its own component set to one more than its node's previous event's.
 * That is the vector-clock rule (Fidge 1988, Mattern 1989) applied to a
 * graph that is already known, instead of to messages as they arrive.
 */
#include "trace_model.h"

#include "common/err.h"

#include <jansson.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_SHOWN 64 /* bytes of a key in a description */

/*
 * Allocation that does not return NULL, as common/alloc's. This module
 * keeps its own: its unit test links this object after libspectra.a, so it
 * may call nothing of the library that the test does not pull in itself.
 */
static void *must(void *p)
{
	if (p == NULL) {
		fputs("spectra: out of memory\n", stderr);
		abort();
	}
	return p;
}

static void *alloc_bytes(size_t size)
{
	return must(malloc(size ? size : 1));
}

static void *alloc_zeroed(size_t n, size_t size)
{
	return must(calloc(n ? n : 1, size ? size : 1));
}

static void *resize(void *p, size_t size)
{
	return must(realloc(p, size ? size : 1));
}

static char *copy_string(const char *s)
{
	return must(strdup(s));
}

void trace_model_init(struct trace_model *m)
{
	memset(m, 0, sizeof(*m));
}

/* forget_computed frees what trace_model_compute set. */
static void forget_computed(struct trace_model *m)
{
	free(m->nodes);
	free(m->order);
	free(m->clock_block);
	m->nodes = NULL;
	m->order = NULL;
	m->clock_block = NULL;
	m->nnodes = 0;
	for (size_t i = 0; i < m->n; i++)
		m->ev[i].clock = NULL;
}

void trace_model_close(struct trace_model *m)
{
	if (m == NULL)
		return;
	forget_computed(m);
	for (size_t i = 0; i < m->n; i++) {
		free(m->ev[i].key);
		free(m->ev[i].session);
		free(m->ev[i].traceparent);
	}
	free(m->ev);
	for (size_t i = 0; i < m->nfiles; i++)
		free(m->files[i]);
	free(m->files);
	memset(m, 0, sizeof(*m));
}

const char *trace_kind_name(enum trace_kind kind)
{
	switch (kind) {
	case TRACE_WRITE:
		return "write";
	case TRACE_APPLY:
		return "apply";
	case TRACE_READ:
		return "read";
	}
	return "?";
}

/* ---- loading ----------------------------------------------------------- */

static void say(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t whylen, const char *fmt, ...)
{
	if (why == NULL || whylen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/*
 * key_bytes turns the key's decoded JSON string back into the key's bytes.
 * spectrad writes each byte outside printable ASCII as \u00XX, which JSON
 * decodes to the code point U+00XX, two bytes of UTF-8; this folds each
 * such code point back into its one byte. Other text is kept as it is.
 * Returns a NUL-terminated copy, owned by the caller, and its length.
 */
static char *key_bytes(const char *s, size_t len, size_t *out_len)
{
	char *out = alloc_bytes(len + 1);
	size_t k = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c == 0xc2 || c == 0xc3) && i + 1 < len &&
		    ((unsigned char)s[i + 1] & 0xc0) == 0x80) {
			out[k++] = (char)(((c & 0x03) << 6) | ((unsigned char)s[i + 1] & 0x3f));
			i++;
		} else {
			out[k++] = (char)c;
		}
	}
	out[k] = '\0';
	*out_len = k;
	return out;
}

/* get_uint reads member name of o as an unsigned integer into *out.
 * Returns false if it is missing or not one. */
static bool get_uint(json_t *o, const char *name, uint64_t *out)
{
	json_t *v = json_object_get(o, name);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

/* parse_line parses one line into e (its strings allocated). Returns false
 * with a reason in why if it is not an event. */
static bool parse_line(const char *line, size_t len, struct trace_event *e, char *why,
		       size_t whylen)
{
	json_error_t jerr;
	json_t *o = json_loadb(line, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
	bool ok = false;
	if (o == NULL) {
		say(why, whylen, "not JSON: %s", jerr.text);
		return false;
	}
	if (!json_is_object(o)) {
		say(why, whylen, "not a JSON object");
		goto free_json;
	}
	const char *missing = NULL;
	if (!get_uint(o, "node", &e->node))
		missing = "node";
	else if (!get_uint(o, "ms", &e->ms))
		missing = "ms";
	else if (!get_uint(o, "origin", &e->origin))
		missing = "origin";
	else if (!get_uint(o, "seq", &e->seq))
		missing = "seq";
	if (missing != NULL) {
		say(why, whylen, "\"%s\" is missing or not a non-negative integer", missing);
		goto free_json;
	}
	const char *ev = json_string_value(json_object_get(o, "ev"));
	if (ev != NULL && strcmp(ev, "write") == 0) {
		e->kind = TRACE_WRITE;
	} else if (ev != NULL && strcmp(ev, "apply") == 0) {
		e->kind = TRACE_APPLY;
	} else if (ev != NULL && strcmp(ev, "read") == 0) {
		e->kind = TRACE_READ;
	} else {
		say(why, whylen, "\"ev\" is not \"write\", \"apply\" or \"read\"");
		goto free_json;
	}
	json_t *key = json_object_get(o, "key");
	if (!json_is_string(key)) {
		say(why, whylen, "\"key\" is missing or not a string");
		goto free_json;
	}
	json_t *session = json_object_get(o, "session");
	if (session != NULL && !json_is_string(session)) {
		say(why, whylen, "\"session\" is not a string");
		goto free_json;
	}
	json_t *tp = json_object_get(o, "traceparent");
	if (tp != NULL && !json_is_string(tp) && !json_is_null(tp)) {
		say(why, whylen, "\"traceparent\" is not a string");
		goto free_json;
	}
	e->key = key_bytes(json_string_value(key), json_string_length(key), &e->klen);
	e->session = copy_string(session ? json_string_value(session) : "");
	e->traceparent = NULL;
	if (json_is_string(tp) && json_string_length(tp) > 0)
		e->traceparent = copy_string(json_string_value(tp));
	ok = true;
free_json:
	json_decref(o);
	return ok;
}

/* blank says whether the len bytes at p are all whitespace. */
static bool blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

int trace_model_load_text(struct trace_model *m, const char *name, const char *text, size_t len,
			  char *why, size_t whylen)
{
	m->files = resize(m->files, (m->nfiles + 1) * sizeof(*m->files));
	size_t file = m->nfiles++;
	m->files[file] = copy_string(name);

	size_t lineno = 0;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		lineno++;
		if (!blank(p, (size_t)(stop - p))) {
			struct trace_event e;
			memset(&e, 0, sizeof(e));
			char reason[256];
			if (!parse_line(p, (size_t)(stop - p), &e, reason, sizeof(reason))) {
				say(why, whylen, "%s:%zu: %s", name, lineno, reason);
				return SP_ERR_INVAL;
			}
			e.file = file;
			e.line = lineno;
			if (m->n == m->cap) {
				m->cap = m->cap ? 2 * m->cap : 256;
				m->ev = resize(m->ev, m->cap * sizeof(*m->ev));
			}
			m->ev[m->n++] = e;
		}
		p = stop + 1;
	}
	return 0;
}

int trace_model_load_file(struct trace_model *m, const char *path, char *why, size_t whylen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		/* strerror, not sp_strerror: see alloc_bytes. */
		int err = errno;
		say(why, whylen, "%s: %s", path, strerror(err));
		return -err;
	}
	size_t len = 0, cap = 64 * 1024;
	char *text = alloc_bytes(cap);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			text = resize(text, cap);
		}
		size_t k = fread(text + len, 1, cap - len, f);
		len += k;
		if (k == 0)
			break;
	}
	int rc = 0;
	if (ferror(f)) {
		rc = SP_ERR_IO;
		say(why, whylen, "%s: read error", path);
		goto free_text;
	}
	rc = trace_model_load_text(m, path, text, len, why, whylen);
free_text:
	free(text);
	fclose(f);
	return rc;
}

/* ---- linking ----------------------------------------------------------- */

/* The model the sort comparators below read (qsort takes no context). */
static const struct trace_model *sorting;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* by_update orders write events by (origin, seq), then load order. */
static int by_update(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const struct trace_event *x = &sorting->ev[i], *y = &sorting->ev[j];
	if (x->origin != y->origin)
		return x->origin < y->origin ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* by_session orders events by session, then ms, then load order. */
static int by_session(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const struct trace_event *x = &sorting->ev[i], *y = &sorting->ev[j];
	int c = strcmp(x->session, y->session);
	if (c != 0)
		return c;
	if (x->ms != y->ms)
		return x->ms < y->ms ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* find_write returns the first write of (origin, seq) among the sorted
 * writes, or TRACE_NONE. */
static size_t find_write(const struct trace_model *m, const size_t *writes, size_t nw,
			 uint64_t origin, uint64_t seq)
{
	size_t lo = 0, hi = nw;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct trace_event *w = &m->ev[writes[mid]];
		if (w->origin < origin || (w->origin == origin && w->seq < seq))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < nw && m->ev[writes[lo]].origin == origin && m->ev[writes[lo]].seq == seq)
		return writes[lo];
	return TRACE_NONE;
}

/* link sets every event's lane and its three kinds of predecessor. */
static void link(struct trace_model *m)
{
	/* Lanes: the distinct node ids, ascending. */
	uint64_t *ids = alloc_bytes((m->n + 1) * sizeof(*ids));
	for (size_t i = 0; i < m->n; i++)
		ids[i] = m->ev[i].node;
	qsort(ids, m->n, sizeof(*ids), cmp_u64);
	m->nnodes = 0;
	for (size_t i = 0; i < m->n; i++)
		if (m->nnodes == 0 || ids[m->nnodes - 1] != ids[i])
			ids[m->nnodes++] = ids[i];
	m->nodes = ids;

	/* Node order: load order within a node. */
	size_t *last = alloc_bytes((m->nnodes + 1) * sizeof(*last));
	for (size_t l = 0; l < m->nnodes; l++)
		last[l] = TRACE_NONE;
	for (size_t i = 0; i < m->n; i++) {
		struct trace_event *e = &m->ev[i];
		uint64_t *at = bsearch(&e->node, m->nodes, m->nnodes, sizeof(*m->nodes), cmp_u64);
		e->lane = (size_t)(at - m->nodes);
		e->node_prev = last[e->lane];
		last[e->lane] = i;
	}
	free(last);

	/* write -> apply/read, on other nodes (on the same node, node order
	 * already puts the write first). */
	size_t *idx = alloc_bytes((m->n + 1) * sizeof(*idx));
	size_t nw = 0;
	for (size_t i = 0; i < m->n; i++)
		if (m->ev[i].kind == TRACE_WRITE)
			idx[nw++] = i;
	sorting = m;
	qsort(idx, nw, sizeof(*idx), by_update);
	m->missing_writes = 0;
	for (size_t i = 0; i < m->n; i++) {
		struct trace_event *e = &m->ev[i];
		e->write_of = TRACE_NONE;
		if (e->kind == TRACE_WRITE || (e->origin == 0 && e->seq == 0))
			continue;
		size_t w = find_write(m, idx, nw, e->origin, e->seq);
		if (w == TRACE_NONE)
			m->missing_writes++;
		else if (m->ev[w].node != e->node)
			e->write_of = w;
	}

	/* Session order, by ms. */
	size_t ns = 0;
	for (size_t i = 0; i < m->n; i++) {
		m->ev[i].session_prev = TRACE_NONE;
		if (m->ev[i].session[0] != '\0')
			idx[ns++] = i;
	}
	qsort(idx, ns, sizeof(*idx), by_session);
	for (size_t k = 1; k < ns; k++)
		if (strcmp(m->ev[idx[k - 1]].session, m->ev[idx[k]].session) == 0)
			m->ev[idx[k]].session_prev = idx[k - 1];
	free(idx);
}

/* ---- the sort ---------------------------------------------------------- */

/* A binary min-heap of event indices, smallest (ms, index) first. */
struct ready_heap {
	size_t *a;
	size_t n;
	const struct trace_event *ev;
};

static bool before(const struct ready_heap *h, size_t i, size_t j)
{
	const struct trace_event *x = &h->ev[i], *y = &h->ev[j];
	return x->ms != y->ms ? x->ms < y->ms : i < j;
}

static void heap_push(struct ready_heap *h, size_t v)
{
	size_t k = h->n++;
	while (k > 0 && before(h, v, h->a[(k - 1) / 2])) {
		h->a[k] = h->a[(k - 1) / 2];
		k = (k - 1) / 2;
	}
	h->a[k] = v;
}

static size_t heap_pop(struct ready_heap *h)
{
	size_t top = h->a[0], v = h->a[--h->n], k = 0;
	for (;;) {
		size_t c = 2 * k + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(h, h->a[c + 1], h->a[c]))
			c++;
		if (!before(h, h->a[c], v))
			break;
		h->a[k] = h->a[c];
		k = c;
	}
	if (h->n > 0)
		h->a[k] = v;
	return top;
}

/* preds lists event i's predecessors into p (at most 3); returns how many. */
static size_t preds(const struct trace_event *e, size_t p[3])
{
	size_t k = 0;
	if (e->node_prev != TRACE_NONE)
		p[k++] = e->node_prev;
	if (e->write_of != TRACE_NONE)
		p[k++] = e->write_of;
	if (e->session_prev != TRACE_NONE)
		p[k++] = e->session_prev;
	return k;
}

/* take gives event i its clock from its predecessors' (all taken). */
static void take(struct trace_model *m, size_t i)
{
	struct trace_event *e = &m->ev[i];
	size_t p[3], np = preds(e, p);
	memset(e->clock, 0, m->nnodes * sizeof(*e->clock));
	for (size_t k = 0; k < np; k++) {
		const uint64_t *c = m->ev[p[k]].clock;
		for (size_t l = 0; l < m->nnodes; l++)
			if (c[l] > e->clock[l])
				e->clock[l] = c[l];
	}
	e->clock[e->lane] = e->node_prev == TRACE_NONE ? 1 : m->ev[e->node_prev].clock[e->lane] + 1;
}

int trace_model_compute(struct trace_model *m, char *why, size_t whylen)
{
	forget_computed(m);
	link(m);
	m->dropped_session_edges = 0;
	m->order = alloc_bytes((m->n + 1) * sizeof(*m->order));
	m->clock_block = alloc_zeroed(m->n * m->nnodes + 1, sizeof(*m->clock_block));
	for (size_t i = 0; i < m->n; i++)
		m->ev[i].clock = m->clock_block + i * m->nnodes;

	/* Successor lists (CSR: succ[start[i] .. start[i + 1])). */
	size_t *start = alloc_zeroed(m->n + 2, sizeof(*start));
	size_t *indeg = alloc_zeroed(m->n + 1, sizeof(*indeg));
	bool *taken = alloc_zeroed(m->n + 1, sizeof(*taken));
	for (size_t i = 0; i < m->n; i++) {
		size_t p[3], np = preds(&m->ev[i], p);
		indeg[i] = np;
		for (size_t k = 0; k < np; k++)
			start[p[k] + 2]++;
	}
	for (size_t i = 2; i < m->n + 2; i++)
		start[i] += start[i - 1];
	size_t *succ = alloc_bytes((start[m->n + 1] + 1) * sizeof(*succ));
	for (size_t i = 0; i < m->n; i++) {
		size_t p[3], np = preds(&m->ev[i], p);
		for (size_t k = 0; k < np; k++)
			succ[start[p[k] + 1]++] = i;
	}
	/* Now start[i + 1] is where i's successors end, start[i] where they
	 * begin. */

	int rc = 0;
	struct ready_heap h = {alloc_bytes((m->n + 1) * sizeof(size_t)), 0, m->ev};
	for (size_t i = 0; i < m->n; i++)
		if (indeg[i] == 0)
			heap_push(&h, i);
	size_t done = 0;
	while (done < m->n) {
		if (h.n == 0) {
			/* Stuck on a cycle. Session order is the only edge taken
			 * from wall clocks: drop the session edge into the
			 * earliest event that waits only on one. */
			size_t pick = TRACE_NONE;
			for (size_t i = 0; i < m->n; i++) {
				const struct trace_event *e = &m->ev[i];
				if (taken[i] || e->session_prev == TRACE_NONE ||
				    taken[e->session_prev])
					continue;
				size_t waiting = indeg[i] - 1;
				if (waiting == 0 && (pick == TRACE_NONE || before(&h, i, pick)))
					pick = i;
			}
			if (pick == TRACE_NONE) {
				const struct trace_event *e = NULL;
				for (size_t i = 0; i < m->n && e == NULL; i++)
					if (!taken[i])
						e = &m->ev[i];
				say(why, whylen,
				    "%s:%zu: this event is on a cycle of node order and "
				    "write->apply/read edges: the trace cannot have happened",
				    m->files[e->file], e->line);
				rc = SP_ERR_INVAL;
				goto free_sort;
			}
			m->ev[pick].session_prev = TRACE_NONE;
			indeg[pick] = 0;
			m->dropped_session_edges++;
			heap_push(&h, pick);
		}
		size_t i = heap_pop(&h);
		take(m, i);
		taken[i] = true;
		m->order[done++] = i;
		for (size_t k = start[i]; k < start[i + 1]; k++) {
			size_t s = succ[k];
			/* A dropped session edge no longer counts. */
			const struct trace_event *se = &m->ev[s];
			if (taken[s] ||
			    (se->node_prev != i && se->write_of != i && se->session_prev != i))
				continue;
			if (--indeg[s] == 0)
				heap_push(&h, s);
		}
	}
free_sort:
	free(h.a);
	free(succ);
	free(taken);
	free(indeg);
	free(start);
	return rc;
}

bool trace_model_happens_before(const struct trace_model *m, size_t a, size_t b)
{
	if (a == b)
		return false;
	size_t l = m->ev[a].lane;
	return m->ev[a].clock[l] <= m->ev[b].clock[l];
}

/* ---- descriptions ------------------------------------------------------ */

/* An snprintf-like appender that keeps counting past the end. */
struct out_text {
	char *p;
	size_t cap, len;
};

static void put(struct out_text *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out_text *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = o->len < o->cap ? o->cap - o->len : 0;
	int k = vsnprintf(room ? o->p + o->len : NULL, room, fmt, ap);
	va_end(ap);
	if (k > 0)
		o->len += (size_t)k;
}

/* put_escaped appends the len bytes at s, at most limit of them, with
 * every byte outside printable ASCII (space included) and backslash
 * written as \xNN, so a description stays one line of one token each. */
static void put_escaped(struct out_text *o, const char *s, size_t len, size_t limit)
{
	for (size_t k = 0; k < len; k++) {
		unsigned char c = (unsigned char)s[k];
		if (k == limit) {
			put(o, "...");
			break;
		}
		if (c > 0x20 && c < 0x7f && c != '\\')
			put(o, "%c", c);
		else
			put(o, "\\x%02x", c);
	}
}

size_t trace_model_describe(const struct trace_model *m, size_t i, char *out, size_t outlen)
{
	const struct trace_event *e = &m->ev[i];
	struct out_text o = {out, outlen, 0};
	if (outlen > 0)
		out[0] = '\0';
	put(&o, "node%" PRIu64 " %s ", e->node, trace_kind_name(e->kind));
	if (e->klen == 0)
		put(&o, "\"\"");
	put_escaped(&o, e->key, e->klen, KEY_SHOWN);
	if (e->session[0] != '\0') {
		put(&o, " session=");
		put_escaped(&o, e->session, strlen(e->session), KEY_SHOWN);
	}
	put(&o, " origin=%" PRIu64 " seq=%" PRIu64, e->origin, e->seq);
	if (e->traceparent != NULL) {
		put(&o, " traceparent=");
		put_escaped(&o, e->traceparent, strlen(e->traceparent), 2 * KEY_SHOWN);
	}
	return o.len;
}
