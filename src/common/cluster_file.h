/*
 * cluster_file: the file that names every node of a cluster.
 *
 * Both spectrad (which reads it to learn its peers and, on a brand-new
 * data directory, the first configuration) and the `spectra cluster` tools
 * (which write it) use this module, so there is exactly one parser and one
 * formatter. It parses and formats text and loads and saves one path; it
 * must not open sockets, resolve names or know what a node does with the
 * file. Nothing here talks to a running node.
 *
 * The format is line based; '#' starts a comment that runs to the end of
 * the line; blank lines are skipped; words are separated by spaces or tabs:
 *
 *   cluster NAME                             at most once; default "spectra"
 *   node ID HOST CLIENT_PORT PEER_PORT [http=PORT]
 *                                            one per node, 1..64 of them
 *   bootstrap [ID...]                        any number of lines
 *
 * NAME is 1..63 of [A-Za-z0-9._-]. ID is a decimal 1..2^63-1 without
 * leading zeros (spectrad's --node-id range; 0 means standalone there).
 * HOST is a numeric IPv4 or IPv6 address (inet_pton; no names: the file
 * must mean the same thing on every machine and at every moment), and
 * ports are 1..65535. The HTTP port is optional (a node started from the
 * file serves /metrics, /status and its dashboard there unless its own
 * http-port says otherwise); it is not checked against the other ports,
 * since only that node binds it. No two nodes share an id, and no two endpoints
 * (a node's client or peer address) share a host:port, a node's own two
 * included.
 *
 * The bootstrap lines, together, list the nodes that form the first
 * configuration when a cluster starts from empty data directories; nodes
 * not listed wait to be added (CLUSTER ADD). Every listed id must have a
 * node line and appear once. Without any bootstrap line every node listed
 * bootstraps (the common case: a cluster created whole); a `bootstrap`
 * line with no ids says that none does (a file for a running cluster whose
 * founding members have all been removed).
 */
#ifndef SP_COMMON_CLUSTER_FILE_H
#define SP_COMMON_CLUSTER_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define CLUSTER_FILE_MAX_NODES	  64
#define CLUSTER_FILE_DEFAULT_NAME "spectra"
/* The largest file cluster_file_load reads: 64 nodes take a few KB. */
#define CLUSTER_FILE_MAX_BYTES (1024 * 1024)

struct cluster_node {
	uint64_t id;	 /* 1..INT64_MAX */
	char host[64];	 /* numeric IPv4 or IPv6 address, as written */
	int client_port; /* RESP clients connect here */
	int peer_port;	 /* other nodes connect here */
	int http_port;	 /* its HTTP endpoint (metrics, status, dashboard); 0: none */
	bool bootstrap;	 /* a member of the first configuration */
};

struct cluster_file {
	char name[64];
	size_t n; /* nodes[0..n) in file order */
	struct cluster_node nodes[CLUSTER_FILE_MAX_NODES];
};

/*
 * cluster_file_parse parses len bytes of text (no NUL terminator needed;
 * a NUL byte inside is an error) into *cf, replacing what it held.
 * Returns 0, or SP_ERR_INVAL with "line N: why" in err (size errlen; err
 * may be NULL when errlen is 0). Errors that belong to no one line (no
 * node line at all) say only why. On error *cf is unspecified. Nothing is
 * allocated; text is only read.
 */
int cluster_file_parse(struct cluster_file *cf, const char *text, size_t len, char *err,
		       size_t errlen);

/*
 * cluster_file_load reads and parses the file at path. Returns 0; a
 * negated errno if it cannot be read; SP_ERR_TOOBIG if it is larger than
 * CLUSTER_FILE_MAX_BYTES; SP_ERR_INVAL for what cluster_file_parse
 * refuses. err then says "<path>: why" (for a parse error, "<path>: line
 * N: why").
 */
int cluster_file_load(struct cluster_file *cf, const char *path, char *err, size_t errlen);

/*
 * cluster_file_format appends cf as text to out: a comment, the cluster
 * line, the node lines in order, and one bootstrap line listing the
 * bootstrap nodes (possibly none), so cluster_file_parse gives back an
 * equal cluster_file. Returns 0, or SP_ERR_INVAL (out untouched) if cf
 * breaks a rule of the format (then parsing could not give it back).
 * out is the caller's.
 */
int cluster_file_format(const struct cluster_file *cf, struct sp_buf *out);

/*
 * cluster_file_save writes cf to path atomically: a temporary file in the
 * same directory, fsync, rename over path, fsync of the directory. A
 * reader sees the old file or the new one, never a mix. Returns 0,
 * SP_ERR_INVAL as cluster_file_format, or a negated errno (the temporary
 * file is then removed and path is unchanged).
 */
int cluster_file_save(const struct cluster_file *cf, const char *path);

/* cluster_file_find returns the node with id, or NULL. The pointer is into
 * cf and valid until cf changes. */
const struct cluster_node *cluster_file_find(const struct cluster_file *cf, uint64_t id);

/*
 * cluster_file_add appends a copy of node. Returns 0; SP_ERR_INVAL if one
 * of its fields breaks the format's rules; SP_ERR_EXISTS if its id, or
 * one of its two host:port endpoints, is already in cf; SP_ERR_FULL if cf
 * holds CLUSTER_FILE_MAX_NODES nodes. cf is unchanged on error.
 */
int cluster_file_add(struct cluster_file *cf, const struct cluster_node *node);

/* cluster_file_remove removes the node with id, keeping the others in
 * order. Returns 0 or SP_ERR_NOTFOUND. */
int cluster_file_remove(struct cluster_file *cf, uint64_t id);

#endif
