/*
 * local_node: one spectrad on this machine, known by its data directory.
 *
 * The mechanics behind `spectra node` (and, later, `spectra cluster`, which
 * runs several): where a node keeps its files, whether it is running,
 * launching it detached and waiting until it answers, and stopping it.
 * It prints only what a failed launch leaves behind (spectrad's last log
 * lines, on stderr); deciding what to tell the user is the caller's job.
 *
 * In the data directory:
 *   spectrad.pid  written by spectrad once it listens, removed on clean exit
 *   spectrad.log  spectrad's log, plus its stdout and stderr
 *   node.conf     "port P" and "bind A", in the settings-file format
 * A node is running when spectrad.pid names a live process. That process is
 * trusted to be spectrad: like pg_ctl, we do not guard against its pid
 * having been reused after a kill -9.
 */
#ifndef SP_TOOLS_LOCAL_NODE_H
#define SP_TOOLS_LOCAL_NODE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <sys/types.h>

struct local_node {
	char *dir;	/* absolute when the directory exists, else as given */
	char *pidfile;	/* <dir>/spectrad.pid */
	char *logfile;	/* <dir>/spectrad.log */
	char *nodeconf; /* <dir>/node.conf */
};

/* local_node_init fills n's paths for data directory dir (which need not
 * exist); local_node_close frees them. The strings are owned by n. */
void local_node_init(struct local_node *n, const char *dir);
void local_node_close(struct local_node *n);

/* local_node_mkdir creates dir and its missing parents (mkdir -p).
 * Returns 0 or a negated errno (-ENOTDIR if dir exists but is a file). */
int local_node_mkdir(const char *dir);

enum local_node_state {
	LOCAL_NODE_STOPPED, /* no pidfile */
	LOCAL_NODE_STALE,   /* a pidfile whose process is gone, or no pid in it */
	LOCAL_NODE_RUNNING, /* the pidfile names a live process */
};

/* local_node_state reads n's pidfile; *pid is the pid it names (0 if none). */
enum local_node_state local_node_state(const struct local_node *n, pid_t *pid);

/* local_node_read_pid reads a pidfile. Returns 0, a negated errno, or
 * SP_ERR_INVAL when the file holds no pid. */
int local_node_read_pid(const char *pidfile, pid_t *pid);

/* local_node_alive says whether pid is a process that has not exited
 * (a zombie has exited). */
bool local_node_alive(pid_t pid);

/* local_node_wait_gone polls until pid has exited or `seconds` pass;
 * returns whether it exited. */
bool local_node_wait_gone(pid_t pid, double seconds);

/*
 * local_node_stop sends pid SIGTERM, waits up to timeout_s for it to exit,
 * then sends SIGKILL (setting *killed) and waits a little more. A pidfile
 * left naming pid is removed. Returns 0 once the process is gone, or a
 * negated errno if it could not be signalled, or SP_ERR_AGAIN if it
 * outlived SIGKILL.
 */
int local_node_stop(const struct local_node *n, pid_t pid, double timeout_s, bool *killed);

/* Where a node is reached. */
struct local_node_addr {
	char host[256]; /* the bind address, or loopback for a wildcard */
	int port;
};

/* local_node_addr_set picks the address to connect to for a node bound to
 * `bind` (which, as in Redis, may list several addresses: the first is
 * used). */
void local_node_addr_set(struct local_node_addr *a, const char *bind, int port);

/* local_node_addr_text writes "host:port" ("[::1]:port" for IPv6) to out
 * and returns out. */
const char *local_node_addr_text(const struct local_node_addr *a, char *out, size_t outlen);

/* local_node_addr_read reads n's node.conf; without one, the defaults
 * (127.0.0.1:7379). local_node_addr_write replaces it atomically; returns
 * 0 or a negated errno. */
void local_node_addr_read(const struct local_node *n, struct local_node_addr *a);
int local_node_addr_write(const struct local_node *n, int port, const char *bind);

/* local_node_connect opens a hiredis connection with connect and command
 * timeouts of timeout_ms. Returns it (the caller redisFree()s it), or NULL
 * with the reason in err. */
redisContext *local_node_connect(const struct local_node_addr *a, unsigned timeout_ms, char *err,
				 size_t errlen);

/* local_node_reply_text describes a reply (or its absence, with the
 * connection's error) in out, for error messages. */
void local_node_reply_text(const redisReply *r, const redisContext *ctx, char *out, size_t outlen);

/*
 * local_node_create_keyspace declares a keyspace through any node, then
 * waits until every node has applied the definition (strong data: each
 * node learns it from the Raft log).
 *   create     the KEYSPACE CREATE command, ncreate words; OK or an
 *              "exists" error both count as created
 *   probe      a command each node must answer in a way probe_ok accepts
 *              once it has the keyspace (nprobe words)
 * Nodes are tried in turn, pausing between rounds that made no progress,
 * until wait_s seconds have passed. Returns 0, or SP_ERR_AGAIN with the
 * last failure in err.
 */
int local_node_create_keyspace(const struct local_node_addr *nodes, size_t nnodes,
			       const char *const *create, int ncreate, const char *const *probe,
			       int nprobe, bool (*probe_ok)(const redisReply *r),
			       unsigned timeout_ms, double wait_s, char *err, size_t errlen);

/* local_node_answers says whether something at a answers PING (any reply
 * but LOADING counts: a node that wants AUTH is up). */
bool local_node_answers(const struct local_node_addr *a);

/* local_node_find_spectrad picks the server binary: `path` if set, else
 * $SPECTRAD, else the spectrad beside the running executable, else plain
 * "spectrad" for PATH. Returns a string the caller frees. */
char *local_node_find_spectrad(const char *path);

/*
 * local_node_launch starts args (args[0] is the binary, searched on PATH
 * if it has no '/') detached: in its own session, stdin from /dev/null,
 * stdout and stderr appended to logfile, no other descriptor inherited.
 * Returns the child's pid, or -1 with the reason printed on stderr if it
 * could not be executed. The child is not waited for.
 */
pid_t local_node_launch(char *const *args, const char *logfile);

/*
 * local_node_wait_ready waits up to wait_s seconds until child answers
 * PING at a and n's pidfile names it. Returns 0, or -1 after printing why
 * not (it exited: how; it did not answer in time: then it is stopped) and
 * the log lines it wrote at or after byte offset log_from.
 */
int local_node_wait_ready(pid_t child, const struct local_node *n, const struct local_node_addr *a,
			  double wait_s, off_t log_from);

/* local_node_print_log_tail prints on stderr the last lines of logfile
 * written at or after byte offset `from`. */
void local_node_print_log_tail(const char *logfile, off_t from);

#endif
