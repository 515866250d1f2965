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

/* cluster_init opens the transport and the engine; the client port and
 * bind address in cfg are overridden by the cluster file's line for this
 * node (see cluster_client_addr). Returns 0 or an error, logged. */
int cluster_init(struct server *srv);
/* cluster_close stops the engine and the transport (run the loop after). */
void cluster_close(struct server *srv);

/* cluster_client_addr gives the address clients should be served on: the
 * node's line of the cluster file, else cfg's bind and port. Call before
 * cluster_init (it reads the file). Returns 0 or SP_ERR_INVAL (logged). */
int cluster_client_addr(const struct sp_config *cfg, char *host, size_t hostlen, int *port);

#endif
