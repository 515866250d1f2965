/*
 * cli_chaos: `spectra chaos`, which starts a local cluster, drives it with
 * a workload while a nemesis kills, pauses and partitions its nodes, and
 * then checks what the workload recorded. The register workload (the
 * default) does reads, writes and compare-and-sets on a strong keyspace
 * and checks that the history is linearizable; the set, counter and lww
 * workloads write CRDTs of an eventual keyspace and check, once the nodes
 * have converged, that the final state agrees with what was acknowledged.
 *
 * The pieces live apart: chaos_plan (pure decisions), chaos_client (the
 * register workload and its history), chaos_eventual (the eventual
 * workloads and their checks), chaos_nemesis (the faults); this file runs
 * them in order, writes the history, checks it and reports. Like `spectra
 * check`, its exit status is its answer: 0 linearizable (or converged and
 * consistent) with at least --min-ops successful operations; 1 a
 * violation, or a cluster that did not recover once healed (a killed node
 * that would not restart, no leader; eventual: no convergence in time, a
 * final read that failed, nodes that disagree); 2 unknown (the check gave
 * up, too few operations, SIGINT or SIGTERM ended the run early, or the
 * cluster could not be run); 64 a usage error.
 *
 * It must not change how spectrad behaves beyond its flags and admin
 * commands, nor judge a history itself: the verdict is lin_check's, or
 * chaos_eventual's check.
 */
#ifndef SP_TOOLS_CLI_CHAOS_H
#define SP_TOOLS_CLI_CHAOS_H

enum cli_chaos_exit {
	CLI_CHAOS_OK = 0,
	CLI_CHAOS_VIOLATION = 1,
	CLI_CHAOS_UNKNOWN = 2,
	CLI_CHAOS_USAGE = 64, /* as sysexits.h's EX_USAGE */
};

/* cli_chaos_main runs `spectra chaos ...` (argv after "chaos") and returns
 * one of enum cli_chaos_exit. */
int cli_chaos_main(const char *path, int argc, char **argv);

#endif
