/*
 * cli_check: `spectra check [--model M] [--timeout S] [--json] FILE`. See
 * cli_check.h.
 *
 * Reading the file, the time bound and the report are here; the format is
 * src/check/history's, the search src/check/linearizable's and, with
 * --model causal, the causal checker src/check/causal's. The time bound
 * reaches the search as a should_stop function that reads the monotonic
 * clock, since the checker itself must not read one. The causal check
 * always finishes (it is polynomial), so it takes no bound.
 */
#include "cli_check.h"

#include "cli.h"

#include "check/causal.h"
#include "check/history.h"
#include "check/linearizable.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_S 60.0
#define EXPLAIN_MAX	  64 /* ops shown for a violation */
#define VALUE_SHOWN	  24 /* bytes of a key or value shown in the table */
#define CC_SHOWN_TEXT	  5  /* causal violations shown in text */
#define CC_SHOWN_JSON	  20 /* ... and in JSON */
#define CC_CYCLE_SHOWN	  32 /* ops of a cycle shown */

/* ---- input ------------------------------------------------------------- */

/* read_all reads fd to its end into out. Returns 0 or a negated errno. */
static int read_all(int fd, struct sp_buf *out)
{
	for (;;) {
		sp_buf_reserve(out, 64 * 1024);
		ssize_t k = read(fd, sp_buf_end(out), 64 * 1024);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return 0;
		sp_buf_commit(out, (size_t)k);
	}
}

/* read_history reads FILE ("-": stdin) into out. Returns 0 or a negated
 * errno. */
static int read_history(const char *file, struct sp_buf *out)
{
	if (strcmp(file, "-") == 0)
		return read_all(STDIN_FILENO, out);
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = read_all(fd, out);
	close(fd);
	return rc;
}

/* parse_timeout reads a number of seconds in [0, one week]; 0 means no
 * bound. Returns false if text is not one. */
static bool parse_timeout(const char *text, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || end == text || *end || !(v >= 0) || v > 7 * 86400)
		return false;
	*out = v;
	return true;
}

/* parse_steps reads a step count: digits only, 0 meaning no bound. */
static bool parse_steps(const char *text, uint64_t *out)
{
	char *end;
	if (*text < '0' || *text > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* ---- the time bound ---------------------------------------------------- */

struct deadline {
	const struct sp_clock *clock;
	uint64_t at_ns; /* 0: none */
};

static bool past_deadline(void *ctx)
{
	const struct deadline *d = ctx;
	return d->at_ns != 0 && sp_mono_ns(d->clock) >= d->at_ns;
}

/* ---- the report -------------------------------------------------------- */

struct summary {
	const char *file;
	const struct history *h;
	const struct lin_result *res;
	double timeout_s;
	double elapsed_s;
	size_t count[LIN_UNKNOWN + 1]; /* by outcome */
	uint64_t origin;	       /* the earliest invoke: times are shown from it */
	size_t origin_line;	       /* the line of that op */
	size_t explain[EXPLAIN_MAX];
	size_t n_explain, explain_total;
};

/* shown_bytes appends a short, quoted, printable form of a key or value
 * to out. */
static void shown_bytes(struct sp_buf *out, const uint8_t *p, size_t len)
{
	sp_buf_append(out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (i == VALUE_SHOWN) {
			sp_buf_append_str(out, "...");
			break;
		}
		if (p[i] == '"' || p[i] == '\\')
			sp_buf_appendf(out, "\\%c", p[i]);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			sp_buf_append(out, &p[i], 1);
		else
			sp_buf_appendf(out, "\\x%02x", p[i]);
	}
	sp_buf_append(out, "\"", 1);
}

static void shown_value(struct sp_buf *out, const struct lin_value *v)
{
	if (v->nil)
		sp_buf_append_str(out, "nil");
	else
		shown_bytes(out, v->p, v->len);
}

/* op_values appends what op o read or wrote, for the table. */
static void op_values(struct sp_buf *out, const struct lin_op *o)
{
	switch (o->kind) {
	case LIN_READ:
		if (o->outcome == LIN_OK)
			shown_value(out, &o->result);
		break;
	case LIN_WRITE:
		shown_value(out, &o->arg);
		break;
	case LIN_CAS:
		shown_value(out, &o->expect);
		sp_buf_append_str(out, " -> ");
		shown_value(out, &o->arg);
		break;
	case LIN_DELETE:
		break;
	}
}

/* text_of NUL-terminates b and returns its text. */
static const char *text_of(struct sp_buf *b)
{
	sp_buf_append(b, "", 1);
	return sp_buf_begin(b);
}

static bool ret_known(const struct lin_op *o)
{
	return !(o->outcome == LIN_UNKNOWN && (o->ret == UINT64_MAX || o->ret < o->call));
}

/* relation names how op o stands to the op that could not be placed. */
static const char *relation(const struct lin_op *o, const struct lin_op *bad, bool is_bad)
{
	if (is_bad)
		return "bad";
	if (o->outcome != LIN_UNKNOWN && o->ret < bad->call)
		return "before";
	return "during";
}

static void print_explanation(const struct summary *s)
{
	const struct lin_op *ops = s->h->ops;
	const struct lin_op *bad = &ops[s->res->bad_op];
	struct sp_buf b;
	sp_buf_init(&b);

	sp_buf_appendf(
	    &b, "The %s on line %zu (process %" PRIu64 ", from +%" PRIu64 " to +%" PRIu64 ")",
	    history_op_name(bad->kind), s->h->line[s->res->bad_op], bad->client,
	    bad->call - s->origin, bad->ret - s->origin);
	if (bad->kind == LIN_READ) {
		sp_buf_append_str(&b, " saw ");
		shown_value(&b, &bad->result);
	} else if (bad->kind == LIN_CAS) {
		sp_buf_append_str(&b, " found ");
		shown_value(&b, &bad->expect);
	}
	sp_buf_append_str(&b, ",\nand no order of the operations on key ");
	shown_bytes(&b, s->res->key, s->res->klen);
	printf("\n%s that respects real time allows it.\n"
	       "These are the ones that matter ('before': returned before it was called;\n"
	       "'during': overlaps it), with times in microseconds from the first call\n"
	       "(line %zu).\n\n",
	       text_of(&b), s->origin_line);
	/* The value column is as wide as its widest entry. */
	int width = (int)strlen("value");
	for (size_t i = 0; i < s->n_explain; i++) {
		sp_buf_clear(&b);
		op_values(&b, &ops[s->explain[i]]);
		if ((int)b.len > width)
			width = (int)b.len;
	}
	printf("  %-7s %8s %8s  %-6s  %-*s %12s %12s  %s\n", "", "line", "process", "op", width,
	       "value", "invoke", "complete", "result");
	for (size_t i = 0; i < s->n_explain; i++) {
		size_t k = s->explain[i];
		const struct lin_op *o = &ops[k];
		char invoke[32], complete[32];
		snprintf(invoke, sizeof(invoke), "+%" PRIu64, o->call - s->origin);
		if (ret_known(o))
			snprintf(complete, sizeof(complete), "+%" PRIu64, o->ret - s->origin);
		else
			snprintf(complete, sizeof(complete), "-");
		sp_buf_clear(&b);
		op_values(&b, o);
		printf("  %-7s %8zu %8" PRIu64 "  %-6s  %-*s %12s %12s  %s\n",
		       relation(o, bad, k == s->res->bad_op), s->h->line[k], o->client,
		       history_op_name(o->kind), width, text_of(&b), invoke, complete,
		       history_result_name(o->outcome));
	}
	sp_buf_free(&b);
	if (s->explain_total > s->n_explain)
		printf("  (and %zu more, left out)\n", s->explain_total - s->n_explain);
}

static void print_text(const struct summary *s)
{
	const struct lin_result *res = s->res;
	struct sp_buf key;
	sp_buf_init(&key);

	printf("history:  %s\n", s->file);
	printf("ops:      %zu (ok %zu, fail %zu, info %zu)\n", s->h->n, s->count[LIN_OK],
	       s->count[LIN_FAIL], s->count[LIN_UNKNOWN]);
	printf("keys:     %zu\n", res->keys);
	printf("checked:  %.3f s, %" PRIu64 " search steps\n", s->elapsed_s, res->steps);
	switch (res->verdict) {
	case LIN_LINEARIZABLE:
		printf("verdict:  linearizable\n");
		break;
	case LIN_VIOLATION:
		shown_bytes(&key, res->key, res->klen);
		printf("verdict:  NOT linearizable: key %s is the first of %zu key%s that %s not\n",
		       text_of(&key), res->keys_violated, res->keys_violated == 1 ? "" : "s",
		       res->keys_violated == 1 ? "is" : "are");
		print_explanation(s);
		break;
	case LIN_GAVE_UP:
		shown_bytes(&key, res->key, res->klen);
		printf("verdict:  unknown: gave up on key %s", text_of(&key));
		if (res->stopped)
			printf(" when the time bound (%g s) ran out;\n", s->timeout_s);
		else
			printf(" at the step bound;\n");
		printf("          %zu of %zu keys linearizable, %zu undecided (%zu not searched)\n",
		       res->keys - res->keys_gave_up, res->keys, res->keys_gave_up,
		       res->keys_skipped);
		break;
	}
	sp_buf_free(&key);
}

/* jstring makes a JSON string of bytes the parser accepted (so UTF-8). */
static json_t *jstring(const uint8_t *p, size_t len)
{
	json_t *s = json_stringn((const char *)p, len);
	return s ? s : json_string("(not UTF-8)");
}

static json_t *jvalue(const struct lin_value *v)
{
	return v->nil ? json_null() : jstring(v->p, v->len);
}

static json_t *op_json(const struct summary *s, size_t k)
{
	const struct lin_op *o = &s->h->ops[k];
	const struct lin_op *bad = &s->h->ops[s->res->bad_op];
	json_t *j = json_object();
	json_object_set_new(j, "line", json_integer((json_int_t)s->h->line[k]));
	json_object_set_new(j, "relation", json_string(relation(o, bad, k == s->res->bad_op)));
	json_object_set_new(j, "process", json_integer((json_int_t)o->client));
	json_object_set_new(j, "op", json_string(history_op_name(o->kind)));
	json_object_set_new(j, "key", jstring(o->key, o->klen));
	switch (o->kind) {
	case LIN_READ:
		if (o->outcome == LIN_OK)
			json_object_set_new(j, "value", jvalue(&o->result));
		break;
	case LIN_WRITE:
		json_object_set_new(j, "value", jvalue(&o->arg));
		break;
	case LIN_CAS:
		json_object_set_new(j, "expected", jvalue(&o->expect));
		json_object_set_new(j, "new", jvalue(&o->arg));
		break;
	case LIN_DELETE:
		break;
	}
	json_object_set_new(j, "invoke", json_integer((json_int_t)o->call));
	json_object_set_new(j, "complete",
			    ret_known(o) ? json_integer((json_int_t)o->ret) : json_null());
	json_object_set_new(j, "result", json_string(history_result_name(o->outcome)));
	return j;
}

static void print_json(const struct summary *s)
{
	const struct lin_result *res = s->res;
	static const char *const verdicts[] = {
	    [LIN_LINEARIZABLE] = "linearizable",
	    [LIN_VIOLATION] = "violation",
	    [LIN_GAVE_UP] = "unknown",
	};
	json_t *j = json_object();
	json_object_set_new(j, "file", json_string(s->file));
	json_object_set_new(j, "verdict", json_string(verdicts[res->verdict]));
	json_object_set_new(j, "ops", json_integer((json_int_t)s->h->n));
	json_object_set_new(j, "ok", json_integer((json_int_t)s->count[LIN_OK]));
	json_object_set_new(j, "fail", json_integer((json_int_t)s->count[LIN_FAIL]));
	json_object_set_new(j, "info", json_integer((json_int_t)s->count[LIN_UNKNOWN]));
	json_object_set_new(j, "keys", json_integer((json_int_t)res->keys));
	json_object_set_new(j, "keys_violated", json_integer((json_int_t)res->keys_violated));
	json_object_set_new(j, "keys_gave_up", json_integer((json_int_t)res->keys_gave_up));
	json_object_set_new(j, "steps", json_integer((json_int_t)res->steps));
	json_object_set_new(j, "seconds", json_real(s->elapsed_s));
	json_object_set_new(j, "timeout", json_real(s->timeout_s));
	if (res->verdict != LIN_LINEARIZABLE)
		json_object_set_new(j, "key", jstring(res->key, res->klen));
	if (res->verdict == LIN_GAVE_UP)
		json_object_set_new(j, "stopped", json_boolean(res->stopped));
	if (res->verdict == LIN_VIOLATION) {
		json_object_set_new(j, "bad_line",
				    json_integer((json_int_t)s->h->line[res->bad_op]));
		json_t *ex = json_array();
		for (size_t i = 0; i < s->n_explain; i++)
			json_array_append_new(ex, op_json(s, s->explain[i]));
		json_object_set_new(j, "explanation", ex);
		json_object_set_new(j, "explanation_total",
				    json_integer((json_int_t)s->explain_total));
	}
	json_dumpf(j, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	json_decref(j);
}

/* bad_input reports input that is not a history and returns the exit
 * code for it: as a JSON object on stdout with --json, on stderr too. */
static int bad_input(bool json, const char *file, const char *why)
{
	cli_error("%s: %s", file, why);
	if (json) {
		json_t *j = json_object();
		json_object_set_new(j, "file", json_string(file));
		json_object_set_new(j, "verdict", json_string("error"));
		json_object_set_new(j, "error", json_string(why));
		json_dumpf(j, stdout, JSON_COMPACT);
		fputc('\n', stdout);
		json_decref(j);
	}
	return CLI_CHECK_BAD_INPUT;
}

/* ---- the causal model -------------------------------------------------- */

/* A causal check to report: the history, its ops for the checker, and the
 * checker's report. */
struct cc_summary {
	const char *file;
	const struct history *h;
	const struct cc_op *ops;
	const struct cc_report *res;
	double elapsed_s;
	size_t count[LIN_UNKNOWN + 1]; /* by outcome */
	uint64_t origin;	       /* the earliest invoke: times are shown from it */
};

/* One op of a violation and the part it plays. */
struct cc_row {
	const char *role;
	size_t op;
};

/* cc_session appends op k's session: its "session", or its process
 * number when it has none. */
static void cc_session(struct sp_buf *out, const struct cc_op *o)
{
	if (o->session != NULL)
		shown_bytes(out, o->session, o->slen);
	else
		sp_buf_appendf(out, "%" PRIu64, o->process);
}

static void cc_value(struct sp_buf *out, const struct cc_op *o)
{
	if (o->value == NULL)
		sp_buf_append_str(out, o->kind == CC_READ ? "nil" : "-");
	else
		shown_bytes(out, o->value, o->vlen);
}

/* cc_rows lists the ops of violation v in the order they are shown. */
static size_t cc_rows(const struct cc_report *res, const struct cc_violation *v,
		      struct cc_row *rows, size_t cap)
{
	size_t k = 0;
	if (v->kind == CC_CYCLIC_CO) {
		for (size_t i = 0; i < res->n_cycle && k < cap; i++)
			rows[k++] = (struct cc_row){"cycle", res->cycle[i]};
		return k;
	}
	const struct cc_row all[] = {
	    {"read-from", v->write},	 {"newer", v->newer}, {"via-read", v->via_read},
	    {"via-write", v->via_write}, {"read", v->read},
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && k < cap; i++)
		if (all[i].op != SIZE_MAX)
			rows[k++] = all[i];
	return k;
}

/* cc_sentence appends what went wrong in violation v, in words. */
static void cc_sentence(const struct cc_summary *s, const struct cc_violation *v, struct sp_buf *b)
{
	const struct cc_op *ops = s->ops;
	const size_t *line = s->h->line;
	if (v->kind == CC_CYCLIC_CO) {
		sp_buf_append_str(b, "causal order has a cycle: each op below is causally before "
				     "the next\n  (session order, or a read of its write), and the "
				     "last before the first");
		return;
	}
	const struct cc_op *r = &ops[v->read];
	sp_buf_appendf(b, "the read on line %zu (session ", line[v->read]);
	cc_session(b, r);
	if (r->node >= 0)
		sp_buf_appendf(b, ", node %" PRId64, r->node);
	sp_buf_append_str(b, ") of key ");
	shown_bytes(b, r->key, r->klen);
	sp_buf_append_str(b, " saw ");
	cc_value(b, r);
	sp_buf_append_str(b, ",\n  ");
	const struct cc_op *nw = v->newer != SIZE_MAX ? &ops[v->newer] : NULL;
	size_t nl = v->newer != SIZE_MAX ? line[v->newer] : 0;
	switch (v->kind) {
	case CC_THIN_AIR_READ:
		if (v->write == SIZE_MAX)
			sp_buf_append_str(b, "a value no write wrote");
		else if (ops[v->write].result == CC_FAIL)
			sp_buf_appendf(b, "a value whose write failed (line %zu)", line[v->write]);
		else
			sp_buf_appendf(b, "a value written to another key (line %zu)",
				       line[v->write]);
		break;
	case CC_WRITE_CO_READ:
		sp_buf_append_str(b, "but the write of ");
		cc_value(b, nw);
		sp_buf_appendf(b,
			       " (line %zu), causally after that value's write, is causally "
			       "before the read",
			       nl);
		break;
	case CC_WRITE_CO_INIT_READ:
		sp_buf_append_str(b, "but the write of ");
		cc_value(b, nw);
		sp_buf_appendf(b, " (line %zu) is causally before the read", nl);
		break;
	case CC_READ_YOUR_WRITES:
		sp_buf_append_str(b, "but its own session had written ");
		cc_value(b, nw);
		sp_buf_appendf(b, " (line %zu) before it%s", nl,
			       v->write == SIZE_MAX ? "" : ", after the value read was written");
		break;
	case CC_MONOTONIC_READS:
		sp_buf_appendf(b, "but an earlier read of its session (line %zu) saw ",
			       line[v->via_read]);
		cc_value(b, nw);
		sp_buf_append_str(
		    b, v->write == SIZE_MAX ? "" : ", which is causally after the value read");
		break;
	case CC_MONOTONIC_WRITES:
		sp_buf_append_str(b, "but the same session's later write of ");
		cc_value(b, nw);
		sp_buf_appendf(b, " (line %zu) is causally before the read", nl);
		break;
	case CC_WRITES_FOLLOW_READS:
		sp_buf_appendf(b,
			       "but it causally follows the write on line %zu, whose session "
			       "had read ",
			       line[v->via_write]);
		cc_value(b, nw);
		sp_buf_appendf(b, " (line %zu)%s", line[v->via_read],
			       v->write == SIZE_MAX ? "" : ", causally after the value read");
		break;
	default:
		break;
	}
}

static void cc_print_violation(const struct cc_summary *s, const struct cc_violation *v)
{
	struct cc_row rows[CC_CYCLE_SHOWN];
	size_t nrows = cc_rows(s->res, v, rows, CC_CYCLE_SHOWN);
	struct sp_buf b;
	sp_buf_init(&b);
	cc_sentence(s, v, &b);
	printf("\n%s: %s.\n\n", cc_kind_name(v->kind), text_of(&b));

	int wsess = (int)strlen("session"), wval = (int)strlen("value"), wkey = (int)strlen("key");
	for (size_t i = 0; i < nrows; i++) {
		const struct cc_op *o = &s->ops[rows[i].op];
		sp_buf_clear(&b);
		cc_session(&b, o);
		wsess = (int)b.len > wsess ? (int)b.len : wsess;
		sp_buf_clear(&b);
		cc_value(&b, o);
		wval = (int)b.len > wval ? (int)b.len : wval;
		sp_buf_clear(&b);
		shown_bytes(&b, o->key, o->klen);
		wkey = (int)b.len > wkey ? (int)b.len : wkey;
	}
	printf("  %-9s %8s  %-*s %5s %8s  %-5s  %-*s  %-*s %12s %12s  %s\n", "", "line", wsess,
	       "session", "node", "process", "op", wkey, "key", wval, "value", "invoke", "complete",
	       "result");
	for (size_t i = 0; i < nrows; i++) {
		size_t k = rows[i].op;
		const struct cc_op *o = &s->ops[k];
		char node[24], invoke[32], complete[32], sess[128], val[128], key[128];
		snprintf(node, sizeof(node), o->node >= 0 ? "%" PRId64 : "-", o->node);
		snprintf(invoke, sizeof(invoke), "+%" PRIu64, o->invoke - s->origin);
		if (ret_known(&s->h->ops[k]))
			snprintf(complete, sizeof(complete), "+%" PRIu64, o->complete - s->origin);
		else
			snprintf(complete, sizeof(complete), "-");
		sp_buf_clear(&b);
		cc_session(&b, o);
		snprintf(sess, sizeof(sess), "%s", text_of(&b));
		sp_buf_clear(&b);
		cc_value(&b, o);
		snprintf(val, sizeof(val), "%s", text_of(&b));
		sp_buf_clear(&b);
		shown_bytes(&b, o->key, o->klen);
		snprintf(key, sizeof(key), "%s", text_of(&b));
		printf("  %-9s %8zu  %-*s %5s %8" PRIu64 "  %-5s  %-*s  %-*s %12s %12s  %s\n",
		       rows[i].role, s->h->line[k], wsess, sess, node, o->process,
		       o->kind == CC_READ ? "read" : "write", wkey, key, wval, val, invoke,
		       complete, history_result_name(s->h->ops[k].outcome));
	}
	if (v->kind == CC_CYCLIC_CO && s->res->n_cycle > nrows)
		printf("  (and %zu more, left out)\n", s->res->n_cycle - nrows);
	sp_buf_free(&b);
}

static void cc_print_text(const struct cc_summary *s)
{
	const struct cc_report *res = s->res;
	printf("history:  %s\n", s->file);
	printf("model:    causal\n");
	printf("ops:      %zu (ok %zu, fail %zu, info %zu)\n", s->h->n, s->count[LIN_OK],
	       s->count[LIN_FAIL], s->count[LIN_UNKNOWN]);
	printf("sessions: %zu\n", res->sessions);
	printf("keys:     %zu\n", res->keys);
	printf("checked:  %.3f s\n", s->elapsed_s);
	if (res->causal) {
		printf("verdict:  causal\n");
		return;
	}
	printf("verdict:  NOT causal: %zu violation%s (", res->n_violations,
	       res->n_violations == 1 ? "" : "s");
	const char *sep = "";
	for (int k = CC_CYCLIC_CO; k <= CC_KIND_MAX; k++) {
		if (res->count[k] == 0)
			continue;
		printf("%s%s %zu", sep, cc_kind_name((enum cc_kind)k), res->count[k]);
		sep = ", ";
	}
	printf(")\n");
	printf("Times are in microseconds from the first call.\n");
	for (size_t i = 0; i < res->n_violations && i < CC_SHOWN_TEXT; i++)
		cc_print_violation(s, &res->v[i]);
	if (res->n_violations > CC_SHOWN_TEXT)
		printf("\n(%zu more violations not shown; --json lists %d)\n",
		       res->n_violations - CC_SHOWN_TEXT, CC_SHOWN_JSON);
}

static json_t *cc_op_json(const struct cc_summary *s, const struct cc_row *row)
{
	const struct cc_op *o = &s->ops[row->op];
	json_t *j = json_object();
	json_object_set_new(j, "role", json_string(row->role));
	json_object_set_new(j, "line", json_integer((json_int_t)s->h->line[row->op]));
	if (o->session != NULL)
		json_object_set_new(j, "session", jstring(o->session, o->slen));
	else
		json_object_set_new(j, "session", json_sprintf("%" PRIu64, o->process));
	json_object_set_new(j, "node", o->node >= 0 ? json_integer(o->node) : json_null());
	json_object_set_new(j, "process", json_integer((json_int_t)o->process));
	json_object_set_new(j, "op", json_string(o->kind == CC_READ ? "read" : "write"));
	json_object_set_new(j, "key", jstring(o->key, o->klen));
	json_object_set_new(j, "value", o->value ? jstring(o->value, o->vlen) : json_null());
	json_object_set_new(j, "invoke", json_integer((json_int_t)o->invoke));
	json_object_set_new(j, "complete",
			    ret_known(&s->h->ops[row->op]) ? json_integer((json_int_t)o->complete)
							   : json_null());
	json_object_set_new(j, "result",
			    json_string(history_result_name(s->h->ops[row->op].outcome)));
	return j;
}

static void cc_print_json(const struct cc_summary *s)
{
	const struct cc_report *res = s->res;
	json_t *j = json_object();
	json_object_set_new(j, "file", json_string(s->file));
	json_object_set_new(j, "model", json_string("causal"));
	json_object_set_new(j, "verdict", json_string(res->causal ? "causal" : "violation"));
	json_object_set_new(j, "ops", json_integer((json_int_t)s->h->n));
	json_object_set_new(j, "ok", json_integer((json_int_t)s->count[LIN_OK]));
	json_object_set_new(j, "fail", json_integer((json_int_t)s->count[LIN_FAIL]));
	json_object_set_new(j, "info", json_integer((json_int_t)s->count[LIN_UNKNOWN]));
	json_object_set_new(j, "sessions", json_integer((json_int_t)res->sessions));
	json_object_set_new(j, "keys", json_integer((json_int_t)res->keys));
	json_object_set_new(j, "seconds", json_real(s->elapsed_s));
	json_object_set_new(j, "violations", json_integer((json_int_t)res->n_violations));
	json_t *counts = json_object();
	for (int k = CC_CYCLIC_CO; k <= CC_KIND_MAX; k++)
		if (res->count[k] > 0)
			json_object_set_new(counts, cc_kind_name((enum cc_kind)k),
					    json_integer((json_int_t)res->count[k]));
	json_object_set_new(j, "counts", counts);
	json_t *shown = json_array();
	for (size_t i = 0; i < res->n_violations && i < CC_SHOWN_JSON; i++) {
		struct cc_row rows[CC_CYCLE_SHOWN];
		size_t nrows = cc_rows(res, &res->v[i], rows, CC_CYCLE_SHOWN);
		json_t *v = json_object();
		json_object_set_new(v, "kind", json_string(cc_kind_name(res->v[i].kind)));
		json_t *list = json_array();
		for (size_t k = 0; k < nrows; k++)
			json_array_append_new(list, cc_op_json(s, &rows[k]));
		json_object_set_new(v, "ops", list);
		json_array_append_new(shown, v);
	}
	json_object_set_new(j, "shown", shown);
	json_dumpf(j, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	json_decref(j);
}

/* run_causal checks history text (parsed here, with sessions) for causal
 * consistency and reports; returns the exit code. */
static int run_causal(const char *file, const struct sp_buf *text, bool json)
{
	struct history h;
	struct cc_op *ops = NULL;
	struct cc_report res;
	char why[512];
	int rc;

	history_init(&h);
	memset(&res, 0, sizeof(res));
	if (history_parse_ex(&h, sp_buf_begin(text), text->len, HISTORY_SESSIONS, why,
			     sizeof(why)) != 0) {
		rc = bad_input(json, file, why);
		goto free_history;
	}
	size_t bad;
	if (cc_ops_from_history(&h, &ops, &bad) != 0) {
		snprintf(why, sizeof(why),
			 "line %zu: op \"%s\" is not in the causal model (read and write only)",
			 h.line[bad], history_op_name(h.ops[bad].kind));
		rc = bad_input(json, file, why);
		goto free_history;
	}

	struct cc_summary s = {.file = file, .h = &h, .ops = ops, .res = &res};
	for (size_t i = 0; i < h.n; i++) {
		s.count[h.ops[i].outcome]++;
		if (i == 0 || h.ops[i].call < s.origin)
			s.origin = h.ops[i].call;
	}
	const struct sp_clock *clock = sp_clock_system();
	uint64_t t0 = sp_mono_ns(clock);
	int err = cc_check(ops, h.n, &res);
	s.elapsed_s = (double)(sp_mono_ns(clock) - t0) / 1e9;
	if (err == SP_ERR_INVAL) {
		if (res.bad_other != SIZE_MAX)
			snprintf(why, sizeof(why), "line %zu: %s (first written on line %zu)",
				 h.line[res.bad_op], res.why, h.line[res.bad_other]);
		else
			snprintf(why, sizeof(why), "line %zu: %s", h.line[res.bad_op], res.why);
		rc = bad_input(json, file, why);
		goto free_ops;
	}
	if (err != 0) {
		/* Too large to check in the checker's memory bound: unknown. */
		cli_error("%s: %s (%zu operations)", file, sp_strerror(err), h.n);
		if (json) {
			json_t *j = json_object();
			json_object_set_new(j, "file", json_string(file));
			json_object_set_new(j, "model", json_string("causal"));
			json_object_set_new(j, "verdict", json_string("unknown"));
			json_object_set_new(j, "error", json_string(sp_strerror(err)));
			json_dumpf(j, stdout, JSON_COMPACT);
			fputc('\n', stdout);
			json_decref(j);
		} else {
			printf("verdict:  unknown: %s\n", sp_strerror(err));
		}
		rc = CLI_CHECK_UNKNOWN;
		goto free_ops;
	}
	if (json)
		cc_print_json(&s);
	else
		cc_print_text(&s);
	fflush(stdout);
	rc = res.causal ? CLI_CHECK_LINEARIZABLE : CLI_CHECK_VIOLATION;

free_ops:
	cc_report_free(&res);
	free(ops);
free_history:
	history_free(&h);
	return rc;
}

/* ---- the command ------------------------------------------------------- */

/*
 * split_args moves the positional arguments of argv (FILE, "-", or
 * anything after "--") into files, and the flags, with the values of
 * flags that take one, into flags, for cli_parse. Both arrays hold argc
 * entries.
 */
static void split_args(const struct cli_spec *spec, int argc, char **argv, char **flags,
		       int *nflags, char **files, int *nfiles)
{
	*nflags = *nfiles = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			while (++i < argc)
				files[(*nfiles)++] = argv[i];
			break;
		}
		if (a[0] != '-' || a[1] == '\0') {
			files[(*nfiles)++] = argv[i];
			continue;
		}
		flags[(*nflags)++] = argv[i];
		if (strncmp(a, "--", 2) != 0 || strchr(a, '=') != NULL)
			continue;
		for (size_t f = 0; f < spec->nflags; f++) {
			if (spec->flags[f].metavar && strcmp(spec->flags[f].name, a + 2) == 0 &&
			    i + 1 < argc) {
				flags[(*nflags)++] = argv[++i];
				break;
			}
		}
	}
}

int cli_check_main(const char *path, int argc, char **argv)
{
	const char *timeout_text = NULL, *steps_text = NULL, *model = NULL;
	bool json = false;
	const struct cli_flag flags[] = {
	    {"model", "MODEL", "linearizable (the default) or causal", &model, NULL},
	    {"timeout", "SECONDS", "give up after this long (default 60; 0: never; linearizable)",
	     &timeout_text, NULL},
	    {"max-steps", "N",
	     "give up on a key after N search steps (default 0: no bound; linearizable)",
	     &steps_text, NULL},
	    {"json", NULL, "print one JSON object instead of text", NULL, &json},
	};
	const struct cli_spec spec = {
	    path,
	    "[--model linearizable|causal] [--timeout SECONDS] [--max-steps N] [--json] FILE",
	    "Check that the history in FILE ('-': standard input) is linearizable: that\n"
	    "every key's operations can be put in one order, consistent with when each\n"
	    "was called and returned, in which each read sees the last write. FILE holds\n"
	    "JSON lines, one operation each, as 'spectra chaos' writes them:\n"
	    "\n"
	    "  {\"process\":3,\"op\":\"read\",\"key\":\"k1\",\"value\":\"v1\",\"invoke\":1200,\n"
	    "   \"complete\":1350,\"result\":\"ok\"}\n"
	    "\n"
	    "op is read, write, cas (with \"expected\" and \"new\") or delete; result is ok,\n"
	    "fail (certainly did not happen) or info (unknown: \"complete\" may be null).\n"
	    "A violation is shown with the operations that explain it.\n"
	    "\n"
	    "The search is exponential at worst. It gives up after --timeout, and on a key\n"
	    "after --max-steps steps; it remembers what it has seen, a few dozen bytes a\n"
	    "step (some 10 million steps a second), so --max-steps also bounds memory.\n"
	    "\n"
	    "With --model causal it checks causal consistency instead. Each op may name\n"
	    "its client \"session\" (a string; without one, the process is the session)\n"
	    "and the \"node\" that served it; a session's ops are ordered by invoke. Only\n"
	    "read and write are allowed, and every write must write a value of its own;\n"
	    "an info write counts only if some read returned it (else it may never have\n"
	    "happened), and then at its place in its session.\n"
	    "Causal order is session order plus reads-from (a read follows the write of\n"
	    "the value it returned); violations are named by pattern: CyclicCO,\n"
	    "WriteCORead (a read saw a value overwritten in its causal past),\n"
	    "WriteCOInitRead, ThinAirRead (a value nobody wrote, or whose write failed),\n"
	    "and, when one applies, the broken session guarantee: read-your-writes,\n"
	    "monotonic-reads, monotonic-writes or writes-follow-reads. The first few are\n"
	    "shown with their ops. The causal check always finishes: --timeout and\n"
	    "--max-steps do not apply to it.\n"
	    "\n"
	    "Exit status: 0 linearizable (or causal); 1 a violation; 2 unknown, the time or\n"
	    "step bound ran out first (causal: the history is too large to check); 64\n"
	    "usage error, or FILE is not a history (the line is named).",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};

	char **flag_args = sp_malloc(((size_t)argc + 1) * sizeof(*flag_args));
	char **files = sp_malloc(((size_t)argc + 1) * sizeof(*files));
	int nflag_args, nfiles, rest, code, rc = CLI_CHECK_BAD_INPUT;
	struct sp_buf text;
	struct history h;
	sp_buf_init(&text);
	history_init(&h);

	split_args(&spec, argc, argv, flag_args, &nflag_args, files, &nfiles);
	if (!cli_parse(&spec, nflag_args, flag_args, &rest, &code)) {
		rc = code == CLI_EXIT_OK ? CLI_CHECK_LINEARIZABLE : CLI_CHECK_BAD_INPUT;
		goto free_args;
	}
	double timeout_s = DEFAULT_TIMEOUT_S;
	if (timeout_text && !parse_timeout(timeout_text, &timeout_s)) {
		cli_usage_error(path, "--timeout: '%s' is not a number of seconds", timeout_text);
		goto free_args;
	}
	uint64_t max_steps = 0;
	if (steps_text && !parse_steps(steps_text, &max_steps)) {
		cli_usage_error(path, "--max-steps: '%s' is not a number of steps", steps_text);
		goto free_args;
	}
	bool causal = false;
	if (model != NULL && strcmp(model, "causal") == 0) {
		causal = true;
	} else if (model != NULL && strcmp(model, "linearizable") != 0) {
		cli_usage_error(path, "--model: '%s' is not linearizable or causal", model);
		goto free_args;
	}
	if (causal && (timeout_text != NULL || steps_text != NULL)) {
		cli_usage_error(path, "--%s does not apply to --model causal",
				timeout_text != NULL ? "timeout" : "max-steps");
		goto free_args;
	}
	if (nfiles != 1) {
		if (nfiles == 0)
			cli_usage_error(path, "which history? Give FILE, or '-' for stdin");
		else
			cli_usage_error(path, "one FILE at a time (got '%s' and '%s')", files[0],
					files[1]);
		goto free_args;
	}
	const char *file = files[0];

	int err = read_history(file, &text);
	if (err != 0) {
		rc = bad_input(json, file, sp_strerror(err));
		goto free_text;
	}
	if (causal) {
		rc = run_causal(file, &text, json);
		goto free_text;
	}
	char why[512];
	if (history_parse(&h, sp_buf_begin(&text), text.len, why, sizeof(why)) != 0) {
		rc = bad_input(json, file, why);
		goto free_history;
	}
	sp_buf_free(&text);

	struct summary s = {.file = file, .h = &h, .timeout_s = timeout_s};
	for (size_t i = 0; i < h.n; i++) {
		s.count[h.ops[i].outcome]++;
		if (i == 0 || h.ops[i].call < s.origin) {
			s.origin = h.ops[i].call;
			s.origin_line = h.line[i];
		}
	}

	const struct sp_clock *clock = sp_clock_system();
	uint64_t t0 = sp_mono_ns(clock);
	struct deadline d = {.clock = clock};
	if (timeout_s > 0)
		d.at_ns = t0 + (uint64_t)(timeout_s * 1e9);
	const struct lin_options opts = {
	    .max_steps = max_steps, .should_stop = past_deadline, .stop_ctx = &d};
	struct lin_result res;
	err = lin_check_ex(h.ops, h.n, &opts, &res);
	s.elapsed_s = (double)(sp_mono_ns(clock) - t0) / 1e9;
	if (err != 0) {
		char msg[600];
		if (err == SP_ERR_INVAL && res.bad_op < h.n)
			snprintf(msg, sizeof(msg), "line %zu: %s", h.line[res.bad_op],
				 sp_strerror(err));
		else
			snprintf(msg, sizeof(msg), "%s (%zu operations)", sp_strerror(err), h.n);
		rc = bad_input(json, file, msg);
		goto free_history;
	}
	s.res = &res;
	if (res.verdict == LIN_VIOLATION) {
		s.explain_total = lin_explain(h.ops, h.n, &res, s.explain, EXPLAIN_MAX);
		s.n_explain = s.explain_total < EXPLAIN_MAX ? s.explain_total : EXPLAIN_MAX;
	}
	if (json)
		print_json(&s);
	else
		print_text(&s);
	fflush(stdout);

	switch (res.verdict) {
	case LIN_LINEARIZABLE:
		rc = CLI_CHECK_LINEARIZABLE;
		break;
	case LIN_VIOLATION:
		rc = CLI_CHECK_VIOLATION;
		break;
	case LIN_GAVE_UP:
		rc = CLI_CHECK_UNKNOWN;
		break;
	}

free_history:
	history_free(&h);
free_text:
	sp_buf_free(&text);
free_args:
	free(files);
	free(flag_args);
	return rc;
}
