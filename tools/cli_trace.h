/*
 * cli_trace: `spectra trace merge` and `spectra trace graph`, which read
 * the causal trace logs spectrad writes with --trace-file (one per node,
 * src/obs/trace.h) and show how their events are ordered: merge as one
 * log ShiViz can draw, graph as a standalone SVG of the happens-before
 * graph.
 *
 * The order itself is tools/trace_model's; this file only reads the
 * arguments and writes text. It does not touch a cluster. Exit status, as
 * `spectra check`'s: 0 done; 1 a failure (a FILE or OUT that cannot be
 * read or written, a trace with no events, or one that cannot have
 * happened); 64 a usage error or a FILE that is not a trace (the line is
 * named).
 */
#ifndef SP_TOOLS_CLI_TRACE_H
#define SP_TOOLS_CLI_TRACE_H

enum cli_trace_exit {
	CLI_TRACE_OK = 0,
	CLI_TRACE_FAIL = 1,
	CLI_TRACE_USAGE = 64, /* as sysexits.h's EX_USAGE */
};

/* cli_trace_main runs `spectra trace ...` (argv after "trace") and returns
 * one of enum cli_trace_exit (2 for an unknown subcommand, as cli_dispatch
 * does for every group). */
int cli_trace_main(const char *path, int argc, char **argv);

#endif
