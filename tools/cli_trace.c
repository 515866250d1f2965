/*
 * cli_trace: `spectra trace merge` and `spectra trace graph`. See
 * cli_trace.h.
 *
 * Both load every FILE into one trace_model and compute its clocks; merge
 * then prints each event as ShiViz's two lines (description; host and
 * clock as JSON), graph draws the events of a time window as an SVG: a
 * lane per node, an event's column its depth in the happens-before graph
 * of the window (so concurrent events may share a column and a node's
 * events are left to right in its order), solid arrows from a write to the
 * applies and reads of it on other nodes, dashed ones for a session moving
 * to another node, coloured by session.
 */
#include "cli_trace.h"

#include "cli.h"
#include "trace_model.h"

#include "common/alloc.h"
#include "common/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_EVENTS 200
#define DESCRIPTION_MAX	   512

/* The parser regular expression ShiViz shows by default, which our two
 * lines per event match. */
static const char shiviz_regex[] = "(?<event>.*)\\n(?<host>\\S*) (?<clock>{.*})";

/* ---- arguments --------------------------------------------------------- */

/*
 * split_args moves the positional arguments of argv (FILE, or anything
 * after "--") into files and the flags, with the values of flags that take
 * one, into flags, for cli_parse. Both arrays hold argc entries.
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
		/* "-o" is the one short flag: cli_parse knows it as --output. */
		if (strcmp(a, "-o") == 0) {
			flags[*nflags - 1] = "--output";
			if (i + 1 < argc)
				flags[(*nflags)++] = argv[++i];
			continue;
		}
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

/* parse_count reads digits only into *out. Returns false if text is not a
 * number. */
static bool parse_count(const char *text, uint64_t *out)
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

/*
 * load_all loads files into m and computes its clocks, reporting on stderr
 * what went wrong or what was tolerated. Returns an exit code.
 */
static int load_all(struct trace_model *m, char **files, int nfiles)
{
	char why[512];
	for (int i = 0; i < nfiles; i++) {
		int err = trace_model_load_file(m, files[i], why, sizeof(why));
		if (err == SP_ERR_INVAL) {
			cli_error("%s", why);
			return CLI_TRACE_USAGE;
		}
		if (err != 0) {
			cli_error("%s", why);
			return CLI_TRACE_FAIL;
		}
	}
	if (m->n == 0) {
		cli_error("no events in %s%s", files[0], nfiles > 1 ? " and the other files" : "");
		return CLI_TRACE_FAIL;
	}
	if (trace_model_compute(m, why, sizeof(why)) != 0) {
		cli_error("%s", why);
		return CLI_TRACE_FAIL;
	}
	if (m->missing_writes > 0)
		cli_error("note: %zu applies/reads name a write that is not in these files "
			  "(no edge drawn for them)",
			  m->missing_writes);
	if (m->dropped_session_edges > 0)
		cli_error("note: %zu session edges contradicted the other edges (wall clocks "
			  "disagree?) and were left out",
			  m->dropped_session_edges);
	return CLI_TRACE_OK;
}

/* open_out opens OUT for writing, or returns stdout for NULL or "-". */
static FILE *open_out(const char *out)
{
	if (out == NULL || strcmp(out, "-") == 0)
		return stdout;
	FILE *f = fopen(out, "w");
	if (f == NULL)
		cli_error("%s: %s", out, strerror(errno));
	return f;
}

/* close_out flushes and closes f (not stdout). Returns an exit code. */
static int close_out(FILE *f, const char *out)
{
	bool bad = fflush(f) != 0 || ferror(f);
	if (f != stdout && fclose(f) != 0)
		bad = true;
	if (bad) {
		cli_error("%s: write failed", out ? out : "standard output");
		return CLI_TRACE_FAIL;
	}
	return CLI_TRACE_OK;
}

/* ---- merge ------------------------------------------------------------- */

/* print_clock prints event i's host and clock as ShiViz reads them:
 * `node2 {"node1":1,"node2":3}` (components that are 0 left out). */
static void print_clock(FILE *f, const struct trace_model *m, size_t i)
{
	const struct trace_event *e = &m->ev[i];
	fprintf(f, "node%" PRIu64 " {", e->node);
	bool first = true;
	for (size_t l = 0; l < m->nnodes; l++) {
		if (e->clock[l] == 0)
			continue;
		fprintf(f, "%s\"node%" PRIu64 "\":%" PRIu64, first ? "" : ",", m->nodes[l],
			e->clock[l]);
		first = false;
	}
	fputs("}\n", f);
}

static int run_merge(const char *path, int argc, char **argv)
{
	const char *out = NULL;
	const struct cli_flag flags[] = {
	    {"output", "OUT", "write the log to OUT (default: standard output); also -o OUT", &out,
	     NULL},
	};
	const struct cli_spec spec = {
	    path,
	    "FILE... [-o OUT]",
	    "Merge the trace logs of a cluster's nodes (spectrad --trace-file; FILE holds\n"
	    "JSON lines, one event each) into one log for ShiViz\n"
	    "(https://distributedclocks.github.io/shiviz/). Each event becomes two lines,\n"
	    "its description and then its node with a vector clock over events:\n"
	    "\n"
	    "  node2 write cz:b session=70aaab7dbe949b38 origin=2 seq=1\n"
	    "  node2 {\"node1\":1,\"node2\":3}\n"
	    "\n"
	    "A write happens before every apply and read of it on other nodes, a node's\n"
	    "events are in its file's order, and a session's events are in the order of\n"
	    "their \"ms\", across nodes. Events are written in an order consistent with\n"
	    "that. The log opens with '#' comment lines (which ShiViz's parser skips) giving\n"
	    "the parser regular expression to use, ShiViz's default:\n"
	    "\n"
	    "  (?<event>.*)\\n(?<host>\\S*) (?<clock>{.*})\n"
	    "\n"
	    "Exit status: 0 written; 1 a file could not be read or written, or the trace\n"
	    "is empty or impossible; 64 usage error, or a FILE that is not a trace (the\n"
	    "line is named).",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};

	char **flag_args = sp_malloc(((size_t)argc + 1) * sizeof(*flag_args));
	char **files = sp_malloc(((size_t)argc + 1) * sizeof(*files));
	int nflag_args, nfiles, rest, code, rc = CLI_TRACE_USAGE;
	struct trace_model m;
	trace_model_init(&m);

	split_args(&spec, argc, argv, flag_args, &nflag_args, files, &nfiles);
	if (!cli_parse(&spec, nflag_args, flag_args, &rest, &code)) {
		rc = code == CLI_EXIT_OK ? CLI_TRACE_OK : CLI_TRACE_USAGE;
		goto free_args;
	}
	if (nfiles == 0) {
		cli_usage_error(path, "which trace files? Give one FILE per node");
		goto free_args;
	}
	rc = load_all(&m, files, nfiles);
	if (rc != CLI_TRACE_OK)
		goto free_model;
	FILE *f = open_out(out);
	if (f == NULL) {
		rc = CLI_TRACE_FAIL;
		goto free_model;
	}
	fprintf(f,
		"# spectra trace merge: %zu events on %zu nodes, in a happens-before order.\n"
		"# For ShiViz (https://distributedclocks.github.io/shiviz/): paste this text in\n"
		"# its log box, with this log parsing regular expression (ShiViz's default)\n"
		"#   %s\n"
		"# and no multiple-executions delimiter. Each event is two lines: what\n"
		"# happened, then the node and its vector clock over events. To upload it as\n"
		"# a file instead, replace these comment lines with two lines: the regular\n"
		"# expression, then an empty line.\n",
		m.n, m.nnodes, shiviz_regex);
	char desc[DESCRIPTION_MAX];
	for (size_t k = 0; k < m.n; k++) {
		size_t i = m.order[k];
		trace_model_describe(&m, i, desc, sizeof(desc));
		fprintf(f, "%s\n", desc);
		print_clock(f, &m, i);
	}
	rc = close_out(f, out);

free_model:
	trace_model_close(&m);
free_args:
	free(files);
	free(flag_args);
	return rc;
}

/* ---- graph ------------------------------------------------------------- */

#define LANE_H	 70 /* px between lanes */
#define COL_W	 26 /* px between columns */
#define LEFT	 90 /* px before the first column (the lane labels) */
#define TOP	 80 /* px above the first lane (title and legend) */
#define DOT_R	 6
#define NCOLOURS 10

/* Session colours: distinct on white, none of them the edges' grey. */
static const char *const session_colour[NCOLOURS] = {
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
    "#17becf", "#e377c2", "#8c564b", "#bcbd22", "#393b79",
};

/* Fill colours of the three kinds of event. */
static const char *kind_fill(enum trace_kind kind)
{
	switch (kind) {
	case TRACE_WRITE:
		return "#222222";
	case TRACE_APPLY:
		return "#ffffff";
	case TRACE_READ:
		return "#7fc97f";
	}
	return "#ffffff";
}

/* put_xml prints s with XML's special characters escaped. */
static void put_xml(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

/* What the graph shows of each event. */
struct shown {
	bool in;     /* in the window */
	size_t col;  /* depth in the window's graph */
	int session; /* colour index, -1 for none */
};

/* arrow draws an edge from event a to event b, ending at b's dot's rim. A
 * session edge is dashed, coloured and bent, so it stays apart from a
 * write edge between the same two dots. */
static void arrow(FILE *f, double x1, double y1, double x2, double y2, int session)
{
	double dx = x2 - x1, dy = y2 - y1, len = dx * dx + dy * dy;
	if (len <= 0)
		return;
	double d = 1.0;
	for (int k = 0; k < 30; k++) /* a square root without libm */
		d = 0.5 * (d + len / d);
	double ux = dx / d, uy = dy / d;
	double sx = x1 + ux * DOT_R, sy = y1 + uy * DOT_R;
	double ex = x2 - ux * (DOT_R + 2), ey = y2 - uy * (DOT_R + 2);
	if (session < 0) {
		fprintf(f,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#777777\" "
			"stroke-width=\"1.2\" marker-end=\"url(#arrow)\"/>\n",
			sx, sy, ex, ey);
		return;
	}
	double cx = (sx + ex) / 2 - uy * 18, cy = (sy + ey) / 2 + ux * 18;
	fprintf(f,
		"<path d=\"M%.1f,%.1f Q%.1f,%.1f %.1f,%.1f\" fill=\"none\" stroke=\"%s\" "
		"stroke-width=\"1.6\" stroke-dasharray=\"5,3\" marker-end=\"url(#arrow%d)\"/>\n",
		sx, sy, cx, cy, ex, ey, session_colour[session], session);
}

/* draw writes the SVG of the events marked in s. */
static void draw(FILE *f, const struct trace_model *m, const struct shown *s, size_t nshown,
		 size_t ninwindow, size_t ncols, const char **sessions, size_t nsessions)
{
	double width = LEFT + (double)(ncols ? ncols : 1) * COL_W + 40;
	double height = TOP + (double)m->nnodes * LANE_H + 10;
	if (width < 560)
		width = 560;
	uint64_t ms_lo = UINT64_MAX, ms_hi = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (!s[i].in)
			continue;
		if (m->ev[i].ms < ms_lo)
			ms_lo = m->ev[i].ms;
		if (m->ev[i].ms > ms_hi)
			ms_hi = m->ev[i].ms;
	}

	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		"viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
		width, height, width, height);
	fputs("<defs>\n"
	      "<marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
	      "markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" "
	      "fill=\"#777777\"/></marker>\n",
	      f);
	for (int c = 0; c < NCOLOURS; c++)
		fprintf(f,
			"<marker id=\"arrow%d\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" "
			"markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 "
			"L10,5 L0,10 z\" fill=\"%s\"/></marker>\n",
			c, session_colour[c]);
	fputs("</defs>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n", f);

	fprintf(f,
		"<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">spectra trace: "
		"%zu events",
		nshown);
	if (nshown < ninwindow)
		fprintf(f, " (the first %zu of %zu in the window)", nshown, ninwindow);
	if (nshown > 0)
		fprintf(f, ", ms %" PRIu64 " to %" PRIu64 " (+%" PRIu64 ")", ms_lo, ms_hi,
			ms_hi - ms_lo);
	fputs("</text>\n", f);
	/* The legend. */
	fprintf(
	    f,
	    "<g font-size=\"11\">"
	    "<circle cx=\"16\" cy=\"40\" r=\"5\" fill=\"%s\" stroke=\"#000\"/>"
	    "<text x=\"26\" y=\"44\">write</text>"
	    "<circle cx=\"76\" cy=\"40\" r=\"5\" fill=\"%s\" stroke=\"#000\"/>"
	    "<text x=\"86\" y=\"44\">apply</text>"
	    "<circle cx=\"136\" cy=\"40\" r=\"5\" fill=\"%s\" stroke=\"#000\"/>"
	    "<text x=\"146\" y=\"44\">read</text>"
	    "<line x1=\"190\" y1=\"40\" x2=\"220\" y2=\"40\" stroke=\"#777777\" "
	    "marker-end=\"url(#arrow)\"/><text x=\"226\" y=\"44\">write to its apply/read</text>"
	    "<line x1=\"370\" y1=\"40\" x2=\"400\" y2=\"40\" stroke=\"%s\" "
	    "stroke-dasharray=\"5,3\" marker-end=\"url(#arrow0)\"/>"
	    "<text x=\"406\" y=\"44\">session moves node (ring: session)</text></g>\n",
	    kind_fill(TRACE_WRITE), kind_fill(TRACE_APPLY), kind_fill(TRACE_READ),
	    session_colour[0]);
	if (nsessions > 0) {
		fputs("<g font-size=\"10\">", f);
		for (size_t k = 0; k < nsessions && k < NCOLOURS; k++)
			fprintf(f, "<text x=\"%zu\" y=\"62\" fill=\"%s\">session %s</text>",
				10 + k * 150, session_colour[k], sessions[k]);
		fputs("</g>\n", f);
	}

	/* Lanes. */
	for (size_t l = 0; l < m->nnodes; l++) {
		double y = TOP + (double)l * LANE_H + LANE_H / 2.0;
		fprintf(f,
			"<g class=\"lane\" id=\"lane-node%" PRIu64 "\"><text x=\"10\" y=\"%.1f\" "
			"font-weight=\"bold\">node%" PRIu64 "</text><line x1=\"%d\" y1=\"%.1f\" "
			"x2=\"%.0f\" y2=\"%.1f\" stroke=\"#cccccc\" stroke-width=\"2\"/></g>\n",
			m->nodes[l], y + 4, m->nodes[l], LEFT - 20, y, width - 20, y);
	}

	/* Edges, under the dots. */
	for (size_t i = 0; i < m->n; i++) {
		if (!s[i].in)
			continue;
		const struct trace_event *e = &m->ev[i];
		double x = LEFT + (double)s[i].col * COL_W;
		double y = TOP + (double)e->lane * LANE_H + LANE_H / 2.0;
		size_t w = e->write_of;
		if (w != TRACE_NONE && s[w].in)
			arrow(f, LEFT + (double)s[w].col * COL_W,
			      TOP + (double)m->ev[w].lane * LANE_H + LANE_H / 2.0, x, y, -1);
		size_t p = e->session_prev;
		if (p != TRACE_NONE && s[p].in && m->ev[p].lane != e->lane)
			arrow(f, LEFT + (double)s[p].col * COL_W,
			      TOP + (double)m->ev[p].lane * LANE_H + LANE_H / 2.0, x, y,
			      s[i].session < 0 ? 0 : s[i].session % NCOLOURS);
	}

	/* Dots, each with its description as a tooltip. */
	char desc[DESCRIPTION_MAX];
	for (size_t k = 0; k < m->n; k++) {
		size_t i = m->order[k];
		if (!s[i].in)
			continue;
		const struct trace_event *e = &m->ev[i];
		double x = LEFT + (double)s[i].col * COL_W;
		double y = TOP + (double)e->lane * LANE_H + LANE_H / 2.0;
		const char *ring =
		    s[i].session < 0 ? "#555555" : session_colour[s[i].session % NCOLOURS];
		fprintf(f,
			"<circle class=\"event\" cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\" "
			"stroke=\"%s\" stroke-width=\"%s\"><title>",
			x, y, DOT_R, kind_fill(e->kind), ring, s[i].session < 0 ? "1" : "2.5");
		trace_model_describe(m, i, desc, sizeof(desc));
		put_xml(f, desc);
		fprintf(f, "&#10;ms %" PRIu64 " (+%" PRIu64 "), clock {", e->ms, e->ms - ms_lo);
		bool first = true;
		for (size_t l = 0; l < m->nnodes; l++) {
			if (e->clock[l] == 0)
				continue;
			fprintf(f, "%snode%" PRIu64 ":%" PRIu64, first ? "" : ", ", m->nodes[l],
				e->clock[l]);
			first = false;
		}
		fputs("}</title></circle>\n", f);
	}
	fputs("</svg>\n", f);
}

/*
 * layout marks the events to show (in [from, to], the first max_events of
 * them in the model's order), gives each its column (its depth among the
 * shown events) and its session's colour. Returns how many are shown and
 * sets *ninwindow, *ncols and the sessions (names borrowed from m).
 */
static size_t layout(const struct trace_model *m, uint64_t from, uint64_t to, uint64_t max_events,
		     struct shown *s, size_t *ninwindow, size_t *ncols, const char **sessions,
		     size_t *nsessions)
{
	size_t nshown = 0;
	*ninwindow = *ncols = *nsessions = 0;
	for (size_t k = 0; k < m->n; k++) {
		size_t i = m->order[k];
		const struct trace_event *e = &m->ev[i];
		s[i].session = -1;
		if (e->ms < from || e->ms > to)
			continue;
		(*ninwindow)++;
		if (nshown == max_events)
			continue;
		nshown++;
		s[i].in = true;
		/* In topological order every shown predecessor has its column. */
		size_t col = 0;
		size_t pred[3] = {e->node_prev, e->write_of, e->session_prev};
		for (int p = 0; p < 3; p++)
			if (pred[p] != TRACE_NONE && s[pred[p]].in && s[pred[p]].col + 1 > col)
				col = s[pred[p]].col + 1;
		s[i].col = col;
		if (col + 1 > *ncols)
			*ncols = col + 1;
		if (e->session[0] != '\0') {
			size_t c = 0;
			while (c < *nsessions && strcmp(sessions[c], e->session) != 0)
				c++;
			if (c == *nsessions)
				sessions[(*nsessions)++] = e->session;
			s[i].session = (int)c;
		}
	}
	return nshown;
}

static int run_graph(const char *path, int argc, char **argv)
{
	const char *out = NULL, *from_text = NULL, *to_text = NULL, *max_text = NULL;
	const struct cli_flag flags[] = {
	    {"from", "MS", "leave out events before this wall-clock time (ms, as in \"ms\")",
	     &from_text, NULL},
	    {"to", "MS", "leave out events after this time", &to_text, NULL},
	    {"max-events", "N", "draw at most the first N events of the window (default 200)",
	     &max_text, NULL},
	    {"output", "OUT.svg", "write the SVG to OUT.svg (default: standard output); also -o",
	     &out, NULL},
	};
	const struct cli_spec spec = {
	    path,
	    "FILE... [--from MS] [--to MS] [--max-events N] [-o OUT.svg]",
	    "Draw the happens-before graph of the events in the trace logs FILE...\n"
	    "(spectrad --trace-file, one per node) as a standalone SVG: a lane per node,\n"
	    "its events as dots left to right in its order (a column is an event's depth\n"
	    "in the graph, so events side by side in a column are concurrent), solid\n"
	    "arrows from a write to the applies and reads of it on other nodes, dashed\n"
	    "arrows where a session's next event is on another node, coloured and ringed\n"
	    "by session. Hover over a dot for its description, time and clock. Only the\n"
	    "events with \"ms\" in [--from, --to] are drawn, the first --max-events of them\n"
	    "in happens-before order; edges from events outside are left out.\n"
	    "\n"
	    "Exit status: 0 written; 1 a file could not be read or written, or the trace\n"
	    "is empty or impossible; 64 usage error, or a FILE that is not a trace.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};

	char **flag_args = sp_malloc(((size_t)argc + 1) * sizeof(*flag_args));
	char **files = sp_malloc(((size_t)argc + 1) * sizeof(*files));
	int nflag_args, nfiles, rest, code, rc = CLI_TRACE_USAGE;
	struct trace_model m;
	struct shown *s = NULL;
	const char **sessions = NULL;
	trace_model_init(&m);

	split_args(&spec, argc, argv, flag_args, &nflag_args, files, &nfiles);
	if (!cli_parse(&spec, nflag_args, flag_args, &rest, &code)) {
		rc = code == CLI_EXIT_OK ? CLI_TRACE_OK : CLI_TRACE_USAGE;
		goto free_args;
	}
	uint64_t from = 0, to = UINT64_MAX, max_events = DEFAULT_MAX_EVENTS;
	if (from_text && !parse_count(from_text, &from)) {
		cli_usage_error(path, "--from: '%s' is not a time in ms", from_text);
		goto free_args;
	}
	if (to_text && !parse_count(to_text, &to)) {
		cli_usage_error(path, "--to: '%s' is not a time in ms", to_text);
		goto free_args;
	}
	if (max_text && (!parse_count(max_text, &max_events) || max_events == 0)) {
		cli_usage_error(path, "--max-events: '%s' is not a positive number", max_text);
		goto free_args;
	}
	if (from > to) {
		cli_usage_error(path, "--from is after --to");
		goto free_args;
	}
	if (nfiles == 0) {
		cli_usage_error(path, "which trace files? Give one FILE per node");
		goto free_args;
	}
	rc = load_all(&m, files, nfiles);
	if (rc != CLI_TRACE_OK)
		goto free_model;

	s = sp_calloc(m.n + 1, sizeof(*s));
	sessions = sp_calloc(m.n + 1, sizeof(*sessions));
	size_t ninwindow, ncols, nsessions;
	size_t nshown =
	    layout(&m, from, to, max_events, s, &ninwindow, &ncols, sessions, &nsessions);
	if (nshown == 0)
		cli_error("note: no events in the window; the SVG shows only the lanes");
	else if (nshown < ninwindow)
		cli_error("note: drawing the first %zu of the %zu events in the window "
			  "(see --from, --to, --max-events)",
			  nshown, ninwindow);
	FILE *f = open_out(out);
	if (f == NULL) {
		rc = CLI_TRACE_FAIL;
		goto free_model;
	}
	draw(f, &m, s, nshown, ninwindow, ncols, sessions, nsessions);
	rc = close_out(f, out);

free_model:
	free(sessions);
	free(s);
	trace_model_close(&m);
free_args:
	free(files);
	free(flag_args);
	return rc;
}

/* ---- the group --------------------------------------------------------- */

static const struct cli_command trace_commands[] = {
    {"merge", "merge nodes' trace logs into one log for ShiViz", run_merge},
    {"graph", "draw the happens-before graph of trace logs as an SVG", run_graph},
};

int cli_trace_main(const char *path, int argc, char **argv)
{
	return cli_dispatch(path,
			    "spectra trace reads the causal trace logs spectrad writes with\n"
			    "--trace-file (one per node) and shows how their events are ordered.",
			    trace_commands, sizeof(trace_commands) / sizeof(trace_commands[0]),
			    argc, argv);
}
