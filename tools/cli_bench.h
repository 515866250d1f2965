/*
 * cli_bench: `spectra bench`, a load generator for anything that speaks
 * RESP (spectrad, redis-server).
 *
 * It reads its flags, resolves the hosts, raises the open-file limit for
 * the connections, compiles the op templates with the RESP driver, runs the
 * load loop (bench_run) and reports: a table on stdout (ok, errors, ops/s
 * and latency percentiles per op type) and, with --json, one JSON object
 * line per op type appended to a file. It must not start or stop servers:
 * the scripts under bench/ do that.
 *
 * Exit status: 0 some op succeeded; 1 no op succeeded, nothing could be
 * connected to, or the run could not be set up; 2 a usage error.
 */
#ifndef SP_TOOLS_CLI_BENCH_H
#define SP_TOOLS_CLI_BENCH_H

/* cli_bench_main runs `spectra bench ...` (argv after "bench"; path is
 * "spectra bench") and returns an exit status (enum cli_exit). */
int cli_bench_main(const char *path, int argc, char **argv);

#endif
