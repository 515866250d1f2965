/*
 * cli_cluster: `spectra cluster up|down|status|add|remove|start|stop`, a
 * cluster of spectrad nodes on this machine.
 *
 * A cluster is known by its directory (default ./spectra-cluster): the
 * cluster file cluster.conf, the extra spectrad flags in spectrad.args and
 * one data directory per node, node-<id>/ (see local_cluster.h). The
 * commands here parse flags, print and choose exit codes; the mechanics
 * are local_cluster's. Membership changes go through the cluster itself
 * (CLUSTER ADD / CLUSTER REMOVE to a running member); cluster.conf follows.
 */
#ifndef SP_TOOLS_CLI_CLUSTER_H
#define SP_TOOLS_CLI_CLUSTER_H

/* cli_cluster_main runs `spectra cluster ...` (argv after "cluster"). */
int cli_cluster_main(const char *path, int argc, char **argv);

#endif
