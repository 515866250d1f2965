/*
 * spectra: the command-line tool for running and inspecting spectra.
 *
 * This file is only the root of the command tree; each group lives in its
 * own file (cli_node.c for `spectra node`) and adds itself to `commands`
 * below. Later groups (cluster, bench, check, chaos) join the same way.
 */
#include "cli.h"
#include "cli_bench.h"
#include "cli_chaos.h"
#include "cli_check.h"
#include "cli_cluster.h"
#include "cli_node.h"
#include "cli_trace.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct cli_command commands[] = {
    {"node", "start, stop and inspect one spectrad node on this machine", cli_node_main},
    {"cluster", "run a cluster of spectrad nodes on this machine", cli_cluster_main},
    {"check", "check that a recorded history is linearizable", cli_check_main},
    {"chaos", "drive a local cluster through faults and check its history", cli_chaos_main},
    {"trace", "merge and draw nodes' causal trace logs (ShiViz, SVG)", cli_trace_main},
    {"bench", "load a RESP server with a mix of ops: throughput and latency", cli_bench_main},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char about[] =
    "spectra runs and inspects spectrad, a replicated key-value store that\n"
    "speaks the Redis protocol.\n"
    "\n"
    "flags:\n"
    "  -h, --help      show this help\n"
    "  -V, --version   print the version";

int main(int argc, char **argv)
{
	/* A node that closes a connection mid-reply must not kill the CLI;
	 * hiredis reports the failed write instead. */
	signal(SIGPIPE, SIG_IGN);

	if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
		printf("spectra %s\n", SPECTRA_VERSION);
		return CLI_EXIT_OK;
	}
	return cli_dispatch("spectra", about, commands, NCOMMANDS, argc - 1, argv + 1);
}
