/*
 * trace_model: the happens-before order of the events in spectrad's causal
 * trace logs (src/obs/trace.h), for `spectra trace merge` and `spectra
 * trace graph`.
 *
 * Events are loaded from one or more files of JSON lines; a node's events
 * are in the order its file holds them. trace_model_compute then gives
 * every event a vector clock over *events* (not over updates, as the
 * trace's own "vc" is), in the form ShiViz expects: a node's own component
 * counts that node's events up to and including this one, and an event
 * merges the clocks of the events that happen before it. Four edges make
 * the order (Lamport 1978's happens-before, with the trace's events as
 * sends and receives):
 *
 *   node order     a node's events, in file order;
 *   write->apply   the write that created update (origin, seq) happens
 *                  before every apply of it on another node;
 *   write->read    ... and before every read on another node that returned
 *                  it (a write missing from the trace adds no edge);
 *   session order  a session's events, ordered by "ms" (ties by load
 *                  order), each after the one before, which is what shows a
 *                  session hopping between nodes.
 *
 * Wall clocks of different machines can disagree, so session order, the
 * only edge taken from "ms", may contradict the others. Such a session
 * edge is dropped (and counted) rather than making a cycle.
 *
 * This module reads files and allocates; it does not print, and it knows
 * nothing of ShiViz's text or of SVG (tools/cli_trace.c).
 */
#ifndef SP_TOOLS_TRACE_MODEL_H
#define SP_TOOLS_TRACE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_NONE SIZE_MAX /* "no event" in the index fields below */

enum trace_kind {
	TRACE_WRITE, /* a session's write: creates update (origin = node, seq) */
	TRACE_APPLY, /* another origin's update applied here */
	TRACE_READ,  /* a session's read that returned update (origin, seq) */
};

/* One event of a trace. The strings are owned by the model. */
struct trace_event {
	uint64_t node, ms;
	enum trace_kind kind;
	char *key; /* the key's bytes (NUL-terminated; may hold NULs) */
	size_t klen;
	char *session;	   /* "" for none */
	char *traceparent; /* NULL for none */
	uint64_t origin, seq;
	size_t file; /* index into the model's files */
	size_t line; /* 1-based line in that file */

	/* Set by trace_model_compute: */
	size_t lane;	     /* index of node in the model's nodes */
	size_t node_prev;    /* the node's previous event, or TRACE_NONE */
	size_t write_of;     /* the write this apply/read follows, or TRACE_NONE */
	size_t session_prev; /* the session's previous event, or TRACE_NONE */
	uint64_t *clock;     /* nnodes components, owned by the model */
};

struct trace_model {
	struct trace_event *ev; /* in load order */
	size_t n, cap;
	char **files; /* the names given to trace_model_load_*, owned */
	size_t nfiles;

	/* Set by trace_model_compute: */
	uint64_t *nodes; /* node ids, ascending: the lanes */
	size_t nnodes;
	size_t *order;		      /* n event indices in a topological order */
	uint64_t *clock_block;	      /* the events' clocks, n * nnodes */
	size_t dropped_session_edges; /* session edges that contradicted the rest */
	size_t missing_writes;	      /* applies/reads whose write is not in the trace */
};

/* trace_model_init makes m an empty model; trace_model_close frees what it
 * holds (NULL accepted). */
void trace_model_init(struct trace_model *m);
void trace_model_close(struct trace_model *m);

/*
 * trace_model_load_text adds the events in text (len bytes of JSON lines;
 * blank lines are skipped) to m, naming them as from file `name` (copied).
 * Returns 0, or SP_ERR_INVAL with "name:line: reason" in why (whylen bytes)
 * for a line that is not an event; events of earlier lines stay loaded.
 * text is borrowed for the call.
 */
int trace_model_load_text(struct trace_model *m, const char *name, const char *text, size_t len,
			  char *why, size_t whylen);

/*
 * trace_model_load_file reads the file at path and loads it as
 * trace_model_load_text does. Returns 0, a negated errno (with the reason
 * in why) if it cannot be read, or SP_ERR_INVAL for a bad line.
 */
int trace_model_load_file(struct trace_model *m, const char *path, char *why, size_t whylen);

/*
 * trace_model_compute links the loaded events (the edges in the header
 * paragraph) and sets each one's lane, clock and m->order, a topological
 * order that, among the events it may put next, takes the one with the
 * smallest ms (then load order). May be called again after more loads.
 * Returns 0, or SP_ERR_INVAL with a reason in why if node order and
 * write->apply/read alone make a cycle (a trace that cannot have happened).
 */
int trace_model_compute(struct trace_model *m, char *why, size_t whylen);

/* trace_model_happens_before says whether event a happens before event b
 * (by their clocks: a's own component is at most b's). Needs compute. */
bool trace_model_happens_before(const struct trace_model *m, size_t a, size_t b);

/* trace_kind_name returns "write", "apply" or "read" (static). */
const char *trace_kind_name(enum trace_kind kind);

/*
 * trace_model_describe writes event i's one-line description into out
 * (outlen bytes, truncated, always terminated): "node2 write cz:b
 * session=70aaab7dbe949b38 origin=2 seq=1 traceparent=00-..", with the key's
 * bytes outside printable ASCII, and backslashes, escaped as \xNN. Returns
 * the length it wanted, as snprintf does.
 */
size_t trace_model_describe(const struct trace_model *m, size_t i, char *out, size_t outlen);

#endif
