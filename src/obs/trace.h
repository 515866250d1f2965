/*
 * trace: a node's causal trace log, one JSON object per line, for
 * `spectra trace merge` (ShiViz) and `spectra trace graph` (SVG).
 *
 * Each line is one event on this node:
 *
 *   {"node":1,"ms":1764330000123,"ev":"write","key":"cz:a","session":"5f..e1",
 *    "origin":1,"seq":7,"vc":{"1":7,"2":3},"traceparent":"00-...-...-01"}
 *
 *   ev       "write" (a session's write here: origin is this node, seq its
 *            new sequence), "read" (a session's read here: origin/seq name
 *            the update whose value it returned, 0/0 for none), "apply"
 *            (another origin's update applied here; no session)
 *   vc       this node's applied vector after the event
 *   session  the session's id (16 hex digits), "" for apply
 *   traceparent  the W3C trace context the client gave (SESSION TRACE),
 *            omitted when none
 *
 * Keys are written as JSON strings with every byte outside printable ASCII
 * escaped as \u00XX, so binary keys survive. Writes go through stdio and
 * are flushed once per loop iteration (trace_flush); a trace is a
 * debugging aid, not a durable log. It must not be on unless asked for
 * (the trace-file setting).
 */
#ifndef SP_OBS_TRACE_H
#define SP_OBS_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/causal/vclock.h"

struct trace;

/* trace_open appends to the file at path (created). Returns 0 or a
 * negated errno. */
int trace_open(struct trace **out, const char *path);
void trace_close(struct trace *t); /* NULL accepted */

struct trace_event {
	uint64_t node, ms;
	const char *ev; /* "write", "read", "apply" */
	const void *key;
	size_t klen;
	uint64_t session; /* 0: none */
	uint64_t origin, seq;
	const struct vclock *vc;
	const char *traceparent; /* NULL or "" for none */
};

/* trace_event writes one line (t may be NULL: nothing happens). */
void trace_event(struct trace *t, const struct trace_event *e);
void trace_flush(struct trace *t);

#endif
