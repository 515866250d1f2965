/*
 * cli_node: `spectra node start|stop|status`, one spectrad on this machine.
 *
 * A node is known by its data directory: spectrad writes spectrad.pid and
 * spectrad.log there, and `start` records the address it listens on in
 * node.conf, so `stop` and `status` need only --dir.
 */
#ifndef SP_TOOLS_CLI_NODE_H
#define SP_TOOLS_CLI_NODE_H

/* cli_node_main runs `spectra node ...` (argv after "node"). */
int cli_node_main(const char *path, int argc, char **argv);

#endif
