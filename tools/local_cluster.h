/*
 * local_cluster: a cluster of spectrad processes on this machine, kept in
 * one directory.
 *
 * The mechanics behind `spectra cluster` and `spectra chaos`: creating
 * and reading the cluster's files, starting and stopping one node,
 * asking a node for CLUSTER INFO and waiting for a leader. Layout:
 *   <dir>/cluster.conf     the cluster file (src/common/cluster_file.h)
 *   <dir>/spectrad.args    extra spectrad flags, one per line (optional)
 *   <dir>/node-<id>/       node id's data directory in the sense of
 *                          local_node.h: spectrad.pid, spectrad.log,
 *                          node.conf (so `spectra node status --dir` works)
 * Each node is launched with --dir, --cluster-file, --node-id, --port and
 * --bind from its node line (so a spectrad that reads its client port from
 * the cluster file and one that does not both listen where the file says),
 * --pidfile, --logfile, then the caller's extra flags.
 *
 * It prints only what local_node prints (a failed launch's reason and log
 * tail, on stderr); what to tell the user is the caller's job. It must not
 * change cluster membership by itself: CLUSTER ADD / REMOVE are the
 * caller's decisions.
 */
#ifndef SP_TOOLS_LOCAL_CLUSTER_H
#define SP_TOOLS_LOCAL_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/cluster_file.h"
#include "local_node.h"

#define LOCAL_CLUSTER_CONF   "cluster.conf"
#define LOCAL_CLUSTER_ARGS   "spectrad.args"
#define LOCAL_CLUSTER_STOP_S 10.0 /* SIGTERM to SIGKILL, by default */
#define LOCAL_CLUSTER_HOST   "127.0.0.1"

struct local_cluster {
	char *dir;	 /* absolute; owned */
	char *conf_path; /* <dir>/cluster.conf; owned */
	struct cluster_file cf;
};

/*
 * local_cluster_create creates dir (mkdir -p) and writes cluster.conf for
 * nodes 1..n on 127.0.0.1, node i with client port base_port+i-1 and peer
 * port peer_base_port+i-1, HTTP port http_base_port+i-1 (http_base_port 0:
 * none), all bootstrap, cluster name `name` (NULL: the
 * default, "spectra"). Fills lc (close it with local_cluster_close).
 * Returns 0; SP_ERR_EXISTS if cluster.conf exists (nothing is changed);
 * SP_ERR_RANGE if n is not 1..CLUSTER_FILE_MAX_NODES or a port falls
 * outside 1..65535; SP_ERR_INVAL for a bad name or port ranges that
 * overlap; a negated errno if a file cannot be written. On error lc holds
 * nothing.
 */
int local_cluster_create(struct local_cluster *lc, const char *dir, int n, int base_port,
			 int peer_base_port, int http_base_port, const char *name);

/*
 * local_cluster_open loads <dir>/cluster.conf into lc. Returns 0, or what
 * cluster_file_load returns (a negated errno such as -ENOENT when there is
 * no cluster in dir, SP_ERR_INVAL for a bad file), with the reason in err
 * when err is not NULL. On error lc holds nothing.
 */
int local_cluster_open_err(struct local_cluster *lc, const char *dir, char *err, size_t errlen);
int local_cluster_open(struct local_cluster *lc, const char *dir);

/* local_cluster_close frees lc's strings; lc may be NULL or zeroed. */
void local_cluster_close(struct local_cluster *lc);

/* local_cluster_save writes lc->cf to lc->conf_path atomically (see
 * cluster_file_save). Returns 0 or its error. */
int local_cluster_save(const struct local_cluster *lc);

/* local_cluster_node_dir returns <dir>/node-<id>, owned by the caller
 * (free()). The directory need not exist. */
char *local_cluster_node_dir(const struct local_cluster *lc, uint64_t id);

/*
 * local_cluster_start_node launches spectrad for node id (detached, via
 * local_node_launch; the binary is local_node_find_spectrad(NULL)'s) with
 * the flags described above plus extra[0..nextra) (borrowed), and waits up
 * to wait_s seconds until it answers PING and has written its pidfile. A
 * node already running is left alone. Returns 0, or -1 with the reason
 * printed on stderr (id not in the file, its directory cannot be made,
 * something else answers on its client address, it exited or did not
 * answer in time: then its last log lines are shown too).
 */
int local_cluster_start_node(struct local_cluster *lc, uint64_t id, char *const *extra, int nextra,
			     double wait_s);

/*
 * local_cluster_stop_node stops node id: SIGTERM, then SIGKILL after
 * LOCAL_CLUSTER_STOP_S; with kill9, SIGKILL at once and its (now stale)
 * pidfile removed. A node not running is fine (a stale pidfile is
 * removed). The process is reaped if it is this process's child. Returns
 * 0 once it is gone; SP_ERR_NOTFOUND if id is not in the file; a negated
 * errno if it could not be signalled; SP_ERR_AGAIN if it outlived SIGKILL.
 */
int local_cluster_stop_node(struct local_cluster *lc, uint64_t id, bool kill9);

/*
 * local_cluster_stop_node_timed is local_cluster_stop_node with the
 * SIGTERM timeout given, and telling what happened: *pid the process
 * stopped (0 if none was running), *killed whether SIGKILL was needed.
 */
int local_cluster_stop_node_timed(struct local_cluster *lc, uint64_t id, bool kill9,
				  double timeout_s, pid_t *pid, bool *killed);

/* local_cluster_pid returns node id's pid, or 0 if it is not running (or
 * not in the file). */
pid_t local_cluster_pid(struct local_cluster *lc, uint64_t id);

/* local_cluster_addr sets *a to node id's client address. Returns 0 or
 * SP_ERR_NOTFOUND. */
int local_cluster_addr(struct local_cluster *lc, uint64_t id, struct local_node_addr *a);

/*
 * What one node says about the cluster (CLUSTER INFO). The reply is read
 * as "field:value" lines (or field/value pairs of an array). Fields read:
 * role; term; leader_id (0 or absent: none known); commit_index;
 * applied_index; members and learners (ids, separated by commas or
 * spaces; each item's leading digits are its id, so "2@127.0.0.1:7380"
 * is node 2). Unknown fields are ignored.
 */
struct local_cluster_info {
	uint64_t id;	 /* the node asked */
	pid_t pid;	 /* 0: not running; then nothing below is set */
	char error[256]; /* why CLUSTER INFO gave nothing, else "" */
	char role[32];	 /* "" if not reported */
	int64_t term;	 /* -1 where not reported */
	uint64_t leader_id;
	int64_t commit_index;
	int64_t applied_index;
	size_t nmembers, nlearners;
	uint64_t members[CLUSTER_FILE_MAX_NODES];
	uint64_t learners[CLUSTER_FILE_MAX_NODES];
};

/*
 * local_cluster_info asks node id for CLUSTER INFO, waiting at most
 * timeout_ms for the connection and the reply, and fills *info. Returns
 * 0; SP_ERR_NOTFOUND if id is not in the file; -ESRCH if the node is not
 * running; SP_ERR_IO if it did not answer or answered with an error;
 * SP_ERR_PROTO if it does not know the command (a spectrad that is not
 * cluster-capable). info->error says why for each error but the first.
 */
int local_cluster_info(struct local_cluster *lc, uint64_t id, struct local_cluster_info *info,
		       unsigned timeout_ms);

/* local_cluster_info_lists says whether info names node id among its
 * members or learners. */
bool local_cluster_info_lists(const struct local_cluster_info *info, uint64_t id);

/*
 * local_cluster_agreed_leader picks the leader from infos[0..n), one per
 * node asked: the node reporting role "leader" (the highest term's, if
 * several do) when a majority of the running nodes among infos (pid != 0)
 * name it as leader_id (it counts for itself). Returns its id, or 0.
 */
uint64_t local_cluster_agreed_leader(const struct local_cluster_info *infos, size_t n);

/*
 * local_cluster_wait_leader polls CLUSTER INFO on every running node until
 * one reports role:leader and a majority of the running nodes agree on its
 * id (local_cluster_agreed_leader), or wait_s passes (at least one round
 * is made). Returns 0 with *leader set; SP_ERR_AGAIN on timeout; or
 * SP_ERR_PROTO at once when every node that answered does not know
 * CLUSTER INFO (waiting would not help).
 */
int local_cluster_wait_leader(struct local_cluster *lc, double wait_s, uint64_t *leader);

/*
 * The extra spectrad flags kept in <dir>/spectrad.args, one per line.
 * local_cluster_args_write replaces the file atomically (no args: the file
 * is removed); an argument holding a newline cannot be kept (SP_ERR_INVAL).
 * local_cluster_args_read sets *args to a NULL-terminated array of *nargs
 * strings (no file: none), freed with local_cluster_args_free. Both
 * return 0 or a negated errno.
 */
int local_cluster_args_write(const struct local_cluster *lc, char *const *args, int nargs);
int local_cluster_args_read(const struct local_cluster *lc, char ***args, int *nargs);
void local_cluster_args_free(char **args, int nargs);

#endif
