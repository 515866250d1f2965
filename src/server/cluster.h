/*
 * cluster: a node's place in its cluster. Starts the peer transport and
 * the strong engine from the settings and the cluster file, keeps the
 * address book (the cluster file's nodes plus those added since, which are
 * strong data), follows role changes, and serves CLUSTER and DEBUG NET.
 *
 * A node without a cluster file is a cluster of one (id 1): every write
 * still goes through Raft, so one code path serves both.
 *
 * It must not: decide how a request is served (route.c does) or let the
 * fault hooks be used unless admin-commands is on.
 */
#ifndef SP_SERVER_CLUSTER_H
#define SP_SERVER_CLUSTER_H

#include "server/server.h"

/* The peer transport channel of forwarded requests (Raft is channel 1). */
#define CLUSTER_CHANNEL_FORWARD 2

/* cluster_init reads the cluster file and opens the transport and the
 * engine. srv->cluster->nodes[0] is this node's line afterwards: clients
 * are served at its host and client port (cfg's bind and port for a
 * standalone node). Returns 0 or an error, logged. */
int cluster_init(struct server *srv);
/* cluster_close stops the engine and the transport (run the loop after). */
void cluster_close(struct server *srv);

#endif
