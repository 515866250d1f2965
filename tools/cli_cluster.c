/*
 * cli_cluster: `spectra cluster ...`. See cli_cluster.h.
 *
 * The commands only: their flags, their messages and exit codes, and the
 * status report. Files, launching, stopping and CLUSTER INFO are
 * local_cluster's.
 */
#include "cli_cluster.h"

#include "cli.h"
#include "local_cluster.h"
#include "local_node.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/cluster_file.h"
#include "common/err.h"
#include "common/num.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_DIR	       "./spectra-cluster"
#define DEFAULT_BASE_PORT      7379
#define DEFAULT_PEER_BASE_PORT 17379
#define START_WAIT_S	       10.0 /* per node, for PING after launch */
#define LEADER_WAIT_S	       30.0 /* for a leader, a membership change */
#define INFO_TIMEOUT_MS	       1000
#define CMD_TIMEOUT_MS	       5000 /* CLUSTER ADD / REMOVE */
#define RETRY_MS	       250

/* ---- shared helpers ---------------------------------------------------- */

static uint64_t now_ns(void)
{
	return sp_mono_ns(sp_clock_system());
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* parse_int reads a decimal integer in min..max. */
static bool parse_int(const char *text, int64_t min, int64_t max, int64_t *out)
{
	int64_t v;
	if (!sp_parse_int64(text, strlen(text), &v) || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_id(const char *text, uint64_t *id)
{
	int64_t v;
	if (!parse_int(text, 1, INT64_MAX, &v))
		return false;
	*id = (uint64_t)v;
	return true;
}

/* parse_id_and_wait reads the --id (required) and --wait flags most
 * subcommands take; on a bad one it reports it and sets *code. */
static bool parse_id_and_wait(const char *path, const char *id_text, const char *wait_text,
			      uint64_t *id, double *wait_s, int *code)
{
	if (!id_text) {
		*code = cli_usage_error(path, "--id is required");
		return false;
	}
	if (!parse_id(id_text, id)) {
		*code = cli_usage_error(path, "--id: '%s' is not a node id (1..%lld)", id_text,
					(long long)INT64_MAX);
		return false;
	}
	if (wait_text && !cli_parse_seconds(wait_text, wait_s)) {
		*code = cli_usage_error(path, "--wait: '%s' is not a number of seconds", wait_text);
		return false;
	}
	return true;
}

/* The spectrad flags every node gets from its node line and directory;
 * passing them after "--" would contradict the cluster file. */
static const char *const owned_flags[] = {"dir",     "pidfile", "logfile", "cluster-file",
					  "node-id", "port",	"bind",	   "peer-port"};

/* check_extra refuses spectrad flags that cannot be kept or would
 * contradict cluster.conf. Returns 0 or the usage error's exit code. */
static int check_extra(const char *path, int nextra, char **extra)
{
	for (int i = 0; i < nextra; i++) {
		for (size_t k = 0; k < sizeof(owned_flags) / sizeof(owned_flags[0]); k++)
			if (cli_is_flag(extra[i], owned_flags[k]))
				return cli_usage_error(
				    path,
				    "--%s is set for each node from cluster.conf and cannot be "
				    "passed after '--'",
				    owned_flags[k]);
		if (strchr(extra[i], '\n'))
			return cli_usage_error(path, "a spectrad flag holds a newline");
	}
	return 0;
}

/* open_cluster opens the cluster in dir, printing why not. */
static bool open_cluster(struct local_cluster *lc, const char *dir)
{
	char err[600];
	int rc = local_cluster_open_err(lc, dir, err, sizeof(err));
	if (rc == 0)
		return true;
	if (rc == -ENOENT)
		cli_error("no cluster in %s (no %s); create one with 'spectra cluster up "
			  "--nodes N --dir %s'",
			  dir, LOCAL_CLUSTER_CONF, dir);
	else
		cli_error("%s", err);
	return false;
}

/* read_args reads the stored spectrad flags, printing why not. */
static bool read_args(const struct local_cluster *lc, char ***args, int *nargs)
{
	int rc = local_cluster_args_read(lc, args, nargs);
	if (rc != 0)
		cli_error("cannot read %s/%s: %s", lc->dir, LOCAL_CLUSTER_ARGS, sp_strerror(rc));
	return rc == 0;
}

static const char *addr_of(struct local_cluster *lc, uint64_t id, char *out, size_t outlen)
{
	struct local_node_addr a;
	if (local_cluster_addr(lc, id, &a) != 0) {
		snprintf(out, outlen, "?");
		return out;
	}
	return local_node_addr_text(&a, out, outlen);
}

/* print_nodes prints one line per node: id, client address, pid, data
 * directory. */
static void print_nodes(struct local_cluster *lc)
{
	printf("spectra: cluster %s in %s (%zu node%s)\n", lc->cf.name, lc->dir, lc->cf.n,
	       lc->cf.n == 1 ? "" : "s");
	for (size_t i = 0; i < lc->cf.n; i++) {
		uint64_t id = lc->cf.nodes[i].id;
		char addr[300], pid[24];
		char *dir = local_cluster_node_dir(lc, id);
		pid_t p = local_cluster_pid(lc, id);
		if (p > 0)
			snprintf(pid, sizeof(pid), "pid %d", (int)p);
		else
			snprintf(pid, sizeof(pid), "not running");
		printf("  node %-4llu %-21s %-12s %s\n", (unsigned long long)id,
		       addr_of(lc, id, addr, sizeof(addr)), pid, dir);
		free(dir);
	}
}

/* Why a membership command did not go through. */
enum change_outcome {
	CHANGE_OK,
	CHANGE_REFUSED,	    /* every member answered with an error: nothing changed */
	CHANGE_UNKNOWN,	    /* a request may have been applied (no reply came) */
	CHANGE_NOT_CAPABLE, /* the members do not know the command */
	CHANGE_NO_MEMBER,   /* no member other than `skip` is running */
};

/* retryable: errors that say "not now" rather than "no". */
static bool retryable(const char *msg)
{
	static const char *const prefixes[] = {"TRYAGAIN", "NOTLEADER", "LOADING", "CLUSTERDOWN",
					       "MOVED"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/*
 * change_membership sends argv (CLUSTER ADD ... or CLUSTER REMOVE ...) to
 * each running member other than `skip` until one answers +OK (*via is
 * then that member). Errors that mean "not now" (TRYAGAIN and the like)
 * and members that do not answer are tried again until wait_s passes; when
 * every member refuses outright it stops at once. last_err gets the last
 * error seen.
 */
static enum change_outcome change_membership(struct local_cluster *lc, uint64_t skip, int argc,
					     const char **argv, double wait_s, uint64_t *via,
					     char *last_err, size_t errlen)
{
	uint64_t deadline = now_ns() + (uint64_t)(wait_s * 1e9);
	bool maybe_applied = false;
	snprintf(last_err, errlen, "no answer");
	for (;;) {
		bool any_member = false, again = false;
		for (size_t i = 0; i < lc->cf.n; i++) {
			uint64_t id = lc->cf.nodes[i].id;
			struct local_node_addr a;
			char err[256];
			if (id == skip || local_cluster_pid(lc, id) == 0)
				continue;
			any_member = true;
			local_cluster_addr(lc, id, &a);
			redisContext *ctx =
			    local_node_connect(&a, CMD_TIMEOUT_MS, err, sizeof(err));
			if (!ctx) {
				snprintf(last_err, errlen, "node %llu: %s", (unsigned long long)id,
					 err);
				again = true;
				continue;
			}
			redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
			if (!r) {
				snprintf(last_err, errlen, "node %llu: %s", (unsigned long long)id,
					 ctx->errstr);
				maybe_applied = again = true;
				redisFree(ctx);
				continue;
			}
			bool ok =
			    (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
			    strcmp(r->str, "OK") == 0;
			bool not_capable =
			    r->type == REDIS_REPLY_ERROR && (strstr(r->str, "unknown command") ||
							     strstr(r->str, "unknown subcommand"));
			if (r->type == REDIS_REPLY_ERROR) {
				snprintf(last_err, errlen, "node %llu: %s", (unsigned long long)id,
					 r->str);
				if (retryable(r->str))
					again = true;
			} else if (!ok) {
				snprintf(last_err, errlen, "node %llu: unexpected reply",
					 (unsigned long long)id);
			}
			freeReplyObject(r);
			redisFree(ctx);
			if (ok) {
				*via = id;
				return CHANGE_OK;
			}
			if (not_capable)
				return CHANGE_NOT_CAPABLE;
		}
		if (!any_member)
			return CHANGE_NO_MEMBER;
		if (!again || now_ns() >= deadline)
			return maybe_applied ? CHANGE_UNKNOWN : CHANGE_REFUSED;
		sleep_ms(RETRY_MS);
	}
}

/* leader_info asks every node for CLUSTER INFO and returns the agreed
 * leader (0: none), with its answer in *out. */
static uint64_t leader_info(struct local_cluster *lc, struct local_cluster_info *out)
{
	struct local_cluster_info *infos = sp_calloc(CLUSTER_FILE_MAX_NODES, sizeof(*infos));
	for (size_t i = 0; i < lc->cf.n; i++)
		(void)local_cluster_info(lc, lc->cf.nodes[i].id, &infos[i], INFO_TIMEOUT_MS);
	uint64_t leader = local_cluster_agreed_leader(infos, lc->cf.n);
	for (size_t i = 0; leader && i < lc->cf.n; i++)
		if (infos[i].id == leader)
			*out = infos[i];
	free(infos);
	return leader;
}

/* ---- up ---------------------------------------------------------------- */

static int cluster_up(const char *path, int argc, char **argv)
{
	const char *dir = DEFAULT_DIR, *nodes_text = NULL, *base_text = NULL, *peer_text = NULL;
	const char *name = NULL, *wait_text = NULL, *http_text = NULL;
	const struct cli_flag flags[] = {
	    {"nodes", "N", "number of nodes of a new cluster, 1..64", &nodes_text, NULL},
	    {"dir", "DIR", "the cluster's directory (default " DEFAULT_DIR ")", &dir, NULL},
	    {"base-port", "PORT", "client port of node 1; node i gets PORT+i-1 (default 7379)",
	     &base_text, NULL},
	    {"peer-base-port", "PORT", "peer port of node 1; node i gets PORT+i-1 (default 17379)",
	     &peer_text, NULL},
	    {"http-base-port", "PORT",
	     "HTTP port (metrics, status, dashboard) of node 1; node i gets PORT+i-1 (default "
	     "base-port + 2000; 0: no HTTP endpoint)",
	     &http_text, NULL},
	    {"name", "NAME", "cluster name (default " CLUSTER_FILE_DEFAULT_NAME ")", &name, NULL},
	    {"wait", "SECONDS", "how long to wait for a leader (default 30)", &wait_text, NULL},
	};
	const struct cli_spec spec = {
	    path,
	    "--nodes N [--dir DIR] [--base-port PORT] [--peer-base-port PORT]\n"
	    "       [--http-base-port PORT] [--name NAME] [--wait SECONDS] [-- SPECTRAD-FLAGS...]",
	    "Create a cluster of N spectrad nodes on 127.0.0.1 in DIR (DIR/cluster.conf and\n"
	    "one data directory DIR/node-<id> per node), start every node, and wait until\n"
	    "they have elected a leader. If DIR/cluster.conf exists, that cluster is used as\n"
	    "it is (--nodes, the ports and --name then change nothing) and its stopped nodes\n"
	    "are started. Prints one line per node (id, client address, pid, data directory)\n"
	    "and the leader.\n"
	    "\n"
	    "Flags after '--' go to every spectrad (e.g. -- --fsync batch --admin-commands yes)\n"
	    "and are kept in DIR/spectrad.args, so 'add' and 'start' use them too; an 'up'\n"
	    "without them uses the kept ones.\n"
	    "\n"
	    "Exit status: 0 every node runs and a leader is agreed; 1 a node failed to start\n"
	    "(its last log lines are shown), or no leader within the wait (the nodes are left\n"
	    "running: see 'status', stop them with 'down'); 2 usage error.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    "flags passed to every spectrad as they are",
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code;
	int nextra = argc - rest;
	char **extra = argv + rest;

	int64_t nodes = 0, base = DEFAULT_BASE_PORT, peer_base = DEFAULT_PEER_BASE_PORT;
	double wait_s = LEADER_WAIT_S;
	if (nodes_text && !parse_int(nodes_text, 1, CLUSTER_FILE_MAX_NODES, &nodes))
		return cli_usage_error(path, "--nodes: '%s' is not a number in 1..%d", nodes_text,
				       CLUSTER_FILE_MAX_NODES);
	if (base_text && !parse_int(base_text, 1, 65535, &base))
		return cli_usage_error(path, "--base-port: '%s' is not a port (1..65535)",
				       base_text);
	if (peer_text && !parse_int(peer_text, 1, 65535, &peer_base))
		return cli_usage_error(path, "--peer-base-port: '%s' is not a port (1..65535)",
				       peer_text);
	int64_t http_base = base + 2000 <= 65535 - CLUSTER_FILE_MAX_NODES ? base + 2000 : 0;
	if (http_text && !parse_int(http_text, 0, 65535, &http_base))
		return cli_usage_error(path, "--http-base-port: '%s' is not a port (0..65535)",
				       http_text);
	if (wait_text && !cli_parse_seconds(wait_text, &wait_s))
		return cli_usage_error(path, "--wait: '%s' is not a number of seconds", wait_text);
	if (!*dir)
		return cli_usage_error(path, "--dir must not be empty");
	code = check_extra(path, nextra, extra);
	if (code != 0)
		return code;

	struct local_cluster lc;
	char conf[4096];
	struct stat st;
	snprintf(conf, sizeof(conf), "%s/%s", dir, LOCAL_CLUSTER_CONF);
	bool reuse = stat(conf, &st) == 0;
	if (reuse) {
		if (!open_cluster(&lc, dir))
			return CLI_EXIT_FAIL;
		if (nodes_text || base_text || peer_text || http_text || name)
			printf("spectra: using the existing %s (%zu nodes); --nodes, the ports and "
			       "--name apply only to a new cluster\n",
			       lc.conf_path, lc.cf.n);
	} else {
		if (!nodes_text)
			return cli_usage_error(path,
					       "--nodes is required for a new cluster "
					       "(there is no %s)",
					       conf);
		if (base + nodes - 1 > 65535 || peer_base + nodes - 1 > 65535 ||
		    http_base + nodes - 1 > 65535)
			return cli_usage_error(path,
					       "%lld nodes from port %lld (peers %lld) go "
					       "past port 65535",
					       (long long)nodes, (long long)base,
					       (long long)peer_base);
		if (base < peer_base + nodes && peer_base < base + nodes)
			return cli_usage_error(path,
					       "client ports %lld..%lld and peer ports "
					       "%lld..%lld overlap",
					       (long long)base, (long long)(base + nodes - 1),
					       (long long)peer_base,
					       (long long)(peer_base + nodes - 1));
		if (http_base && ((http_base < base + nodes && base < http_base + nodes) ||
				  (http_base < peer_base + nodes && peer_base < http_base + nodes)))
			return cli_usage_error(path,
					       "HTTP ports %lld..%lld overlap the client or peer "
					       "ports",
					       (long long)http_base,
					       (long long)(http_base + nodes - 1));
		int rc = local_cluster_create(&lc, dir, (int)nodes, (int)base, (int)peer_base,
					      (int)http_base, name);
		if (rc == SP_ERR_INVAL && name)
			return cli_usage_error(
			    path, "--name: '%s' is not 1..63 of A-Z a-z 0-9 . _ -", name);
		if (rc != 0) {
			cli_error("cannot create a cluster in %s: %s", dir, sp_strerror(rc));
			return CLI_EXIT_FAIL;
		}
		printf("spectra: created %s (%lld nodes)\n", lc.conf_path, (long long)nodes);
	}

	int rc = CLI_EXIT_FAIL, err;
	char **args = NULL;
	int nargs = 0;
	if (nextra > 0) {
		err = local_cluster_args_write(&lc, extra, nextra);
		if (err != 0) {
			cli_error("cannot write %s/%s: %s", lc.dir, LOCAL_CLUSTER_ARGS,
				  sp_strerror(err));
			goto close_cluster;
		}
	}
	if (!read_args(&lc, &args, &nargs))
		goto close_cluster;

	size_t failed = 0;
	for (size_t i = 0; i < lc.cf.n; i++)
		if (local_cluster_start_node(&lc, lc.cf.nodes[i].id, args, nargs, START_WAIT_S) !=
		    0)
			failed++;
	print_nodes(&lc);
	if (failed) {
		cli_error("%zu of %zu nodes did not start; the others are running (stop them with "
			  "'spectra cluster down --dir %s')",
			  failed, lc.cf.n, dir);
		goto free_args;
	}
	uint64_t leader = 0;
	char addr[300];
	err = local_cluster_wait_leader(&lc, wait_s, &leader);
	if (err == SP_ERR_PROTO) {
		cli_error(
		    "the nodes do not know CLUSTER INFO: this spectrad is not cluster-capable; "
		    "they are running (stop them with 'spectra cluster down --dir %s')",
		    dir);
		goto free_args;
	}
	if (err != 0) {
		cli_error("no leader agreed within %g s; see 'spectra cluster status --dir %s' and "
			  "%s/node-*/spectrad.log",
			  wait_s, dir, lc.dir);
		goto free_args;
	}
	printf("leader: node %llu (%s)\n", (unsigned long long)leader,
	       addr_of(&lc, leader, addr, sizeof(addr)));
	rc = CLI_EXIT_OK;
free_args:
	local_cluster_args_free(args, nargs);
close_cluster:
	local_cluster_close(&lc);
	return rc;
}

/* ---- down -------------------------------------------------------------- */

/* stop_one stops node id and prints what happened. Returns whether it is
 * no longer running. */
static bool stop_one(struct local_cluster *lc, uint64_t id, bool kill9, double timeout_s)
{
	pid_t pid;
	bool killed;
	int err = local_cluster_stop_node_timed(lc, id, kill9, timeout_s, &pid, &killed);
	unsigned long long nid = (unsigned long long)id;
	if (err == SP_ERR_AGAIN) {
		cli_error("node %llu: pid %d is still alive after SIGKILL", nid, (int)pid);
		return false;
	}
	if (err != 0) {
		cli_error("node %llu: cannot stop pid %d: %s", nid, (int)pid, sp_strerror(err));
		return false;
	}
	if (pid == 0)
		printf("node %llu: not running\n", nid);
	else if (kill9)
		printf("node %llu: killed (pid %d)\n", nid, (int)pid);
	else if (killed)
		printf("node %llu: did not stop within %g s; killed (pid %d)\n", nid, timeout_s,
		       (int)pid);
	else
		printf("node %llu: stopped (pid %d)\n", nid, (int)pid);
	return true;
}

static int cluster_down(const char *path, int argc, char **argv)
{
	const char *dir = DEFAULT_DIR, *timeout_text = NULL;
	const struct cli_flag flags[] = {
	    {"dir", "DIR", "the cluster's directory (default " DEFAULT_DIR ")", &dir, NULL},
	    {"timeout", "SECONDS", "wait this long after SIGTERM before SIGKILL (default 10)",
	     &timeout_text, NULL},
	};
	const struct cli_spec spec = {
	    path,
	    "[--dir DIR] [--timeout SECONDS]",
	    "Stop every node of the cluster in DIR: SIGTERM, then SIGKILL for a node that has\n"
	    "not exited within the timeout. The cluster's files and data stay; 'up' starts it\n"
	    "again.\n"
	    "\n"
	    "Exit status: 0 no node is left running (nodes that were not running are fine);\n"
	    "1 no cluster in DIR, or a node could not be stopped; 2 usage error.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code;
	double timeout_s = LOCAL_CLUSTER_STOP_S;
	if (timeout_text && !cli_parse_seconds(timeout_text, &timeout_s))
		return cli_usage_error(path, "--timeout: '%s' is not a number of seconds",
				       timeout_text);
	struct local_cluster lc;
	if (!open_cluster(&lc, dir))
		return CLI_EXIT_FAIL;
	size_t left = 0;
	for (size_t i = 0; i < lc.cf.n; i++)
		if (!stop_one(&lc, lc.cf.nodes[i].id, false, timeout_s))
			left++;
	if (left)
		cli_error("%zu node%s still running", left, left == 1 ? " is" : "s are");
	else
		printf("spectra: cluster %s in %s is down\n", lc.cf.name, lc.dir);
	local_cluster_close(&lc);
	return left ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- status ------------------------------------------------------------ */

static void json_ids(const uint64_t *ids, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)ids[i]);
	putchar(']');
}

/* What status found about one node: rc is local_cluster_info's. */
struct node_status {
	struct local_cluster_info info;
	int rc;
};

static bool answering(const struct node_status *s)
{
	return s->rc == 0 || s->rc == SP_ERR_PROTO;
}

static void status_json(struct local_cluster *lc, const struct node_status *st, uint64_t leader,
			size_t up, bool healthy)
{
	char addr[300];
	printf("{\"cluster\":");
	cli_json_string(lc->cf.name);
	printf(",\"dir\":");
	cli_json_string(lc->dir);
	printf(",\"nodes\":[");
	for (size_t i = 0; i < lc->cf.n; i++) {
		const struct cluster_node *nd = &lc->cf.nodes[i];
		const struct local_cluster_info *in = &st[i].info;
		char *dir = local_cluster_node_dir(lc, nd->id);
		printf("%s{\"id\":%llu,\"address\":", i ? "," : "", (unsigned long long)nd->id);
		cli_json_string(addr_of(lc, nd->id, addr, sizeof(addr)));
		printf(",\"host\":");
		cli_json_string(nd->host);
		printf(",\"client_port\":%d,\"peer_port\":%d,\"bootstrap\":%s,\"dir\":",
		       nd->client_port, nd->peer_port, nd->bootstrap ? "true" : "false");
		cli_json_string(dir);
		printf(",\"running\":%s,\"pid\":", in->pid ? "true" : "false");
		cli_json_number(in->pid ? in->pid : -1);
		printf(",\"answering\":%s,\"cluster_info\":%s,\"role\":",
		       answering(&st[i]) ? "true" : "false", st[i].rc == 0 ? "true" : "false");
		cli_json_string(in->role);
		printf(",\"term\":");
		cli_json_number(in->term);
		printf(",\"leader_id\":");
		cli_json_number(in->leader_id ? (int64_t)in->leader_id : -1);
		printf(",\"commit_index\":");
		cli_json_number(in->commit_index);
		printf(",\"applied_index\":");
		cli_json_number(in->applied_index);
		printf(",\"members\":");
		json_ids(in->members, in->nmembers);
		printf(",\"learners\":");
		json_ids(in->learners, in->nlearners);
		printf(",\"error\":");
		cli_json_string(in->pid ? in->error : "");
		putchar('}');
		free(dir);
	}
	printf("],\"leader\":");
	cli_json_number(leader ? (int64_t)leader : -1);
	printf(",\"up\":%zu,\"total\":%zu,\"healthy\":%s}\n", up, lc->cf.n,
	       healthy ? "true" : "false");
}

static void text_number(char *out, size_t outlen, int64_t v)
{
	if (v < 0)
		snprintf(out, outlen, "-");
	else
		snprintf(out, outlen, "%lld", (long long)v);
}

static void status_text(struct local_cluster *lc, const struct node_status *st, uint64_t leader,
			size_t up)
{
	char addr[300];
	printf("cluster %s in %s\n", lc->cf.name, lc->dir);
	printf("%-5s %-21s %-8s %-8s %-10s %-6s %-7s %-8s %s\n", "ID", "ADDRESS", "STATE", "PID",
	       "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED");
	for (size_t i = 0; i < lc->cf.n; i++) {
		const struct local_cluster_info *in = &st[i].info;
		char pid[16], term[24], lead[24], commit[24], applied[24];
		addr_of(lc, in->id, addr, sizeof(addr));
		printf("%-5llu %-21s ", (unsigned long long)in->id, addr);
		if (!in->pid) {
			printf("stopped\n");
			continue;
		}
		snprintf(pid, sizeof(pid), "%d", (int)in->pid);
		if (st[i].rc == SP_ERR_PROTO) {
			printf("%-8s %-8s no CLUSTER INFO (%s)\n", "running", pid, in->error);
			continue;
		}
		if (st[i].rc != 0) {
			printf("%-8s %-8s unreachable (%s)\n", "running", pid, in->error);
			continue;
		}
		text_number(term, sizeof(term), in->term);
		text_number(lead, sizeof(lead), in->leader_id ? (int64_t)in->leader_id : -1);
		text_number(commit, sizeof(commit), in->commit_index);
		text_number(applied, sizeof(applied), in->applied_index);
		printf("%-8s %-8s %-10s %-6s %-7s %-8s %s\n", "running", pid,
		       in->role[0] ? in->role : "?", term, lead, commit, applied);
	}
	if (leader)
		printf("leader: node %llu (%s); ", (unsigned long long)leader,
		       addr_of(lc, leader, addr, sizeof(addr)));
	else
		printf("leader: none agreed; ");
	printf("members up %zu/%zu\n", up, lc->cf.n);
}

static int cluster_status(const char *path, int argc, char **argv)
{
	const char *dir = DEFAULT_DIR;
	bool json = false;
	const struct cli_flag flags[] = {
	    {"dir", "DIR", "the cluster's directory (default " DEFAULT_DIR ")", &dir, NULL},
	    {"json", NULL, "print one JSON object instead of text", NULL, &json},
	};
	const struct cli_spec spec = {
	    path,
	    "[--dir DIR] [--json]",
	    "For each node of the cluster in DIR: running or stopped, pid, and what its\n"
	    "CLUSTER INFO says: role, term, leader, commit and applied index ('unreachable'\n"
	    "if it does not answer). Then the leader (one that a majority of the running\n"
	    "nodes agree on) and how many members are up (running and answering).\n"
	    "With --json, one object: cluster, dir, nodes (id, address, host, client_port,\n"
	    "peer_port, bootstrap, dir, running, pid, answering, cluster_info, role, term,\n"
	    "leader_id, commit_index, applied_index, members, learners, error), leader, up,\n"
	    "total, healthy (null where unknown).\n"
	    "\n"
	    "Exit status: 0 a leader is agreed and a majority of the nodes is up; 1 not, or\n"
	    "no cluster in DIR; 2 usage error.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code;
	struct local_cluster lc;
	if (!open_cluster(&lc, dir))
		return CLI_EXIT_FAIL;
	struct node_status *st = sp_calloc(lc.cf.n, sizeof(*st));
	struct local_cluster_info *infos = sp_calloc(lc.cf.n, sizeof(*infos));
	size_t up = 0;
	for (size_t i = 0; i < lc.cf.n; i++) {
		st[i].rc = local_cluster_info(&lc, lc.cf.nodes[i].id, &st[i].info, INFO_TIMEOUT_MS);
		infos[i] = st[i].info;
		if (answering(&st[i]))
			up++;
	}
	uint64_t leader = local_cluster_agreed_leader(infos, lc.cf.n);
	bool healthy = leader != 0 && up * 2 > lc.cf.n;
	if (json)
		status_json(&lc, st, leader, up, healthy);
	else
		status_text(&lc, st, leader, up);
	free(infos);
	free(st);
	local_cluster_close(&lc);
	return healthy ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- add --------------------------------------------------------------- */

/* pick_node chooses the new node's id (max + 1 unless given), host (node
 * 1's, or the first node's) and ports (one past the highest in use, moved
 * on while they collide). Returns 0 or cluster_file_add's error. */
static int pick_node(struct local_cluster *lc, uint64_t want_id, struct cluster_node *node)
{
	uint64_t max_id = 0;
	int max_c = 0, max_p = 0, max_h = 0;
	for (size_t i = 0; i < lc->cf.n; i++) {
		const struct cluster_node *nd = &lc->cf.nodes[i];
		if (nd->id > max_id)
			max_id = nd->id;
		if (nd->client_port > max_c)
			max_c = nd->client_port;
		if (nd->peer_port > max_p)
			max_p = nd->peer_port;
		if (nd->http_port > max_h)
			max_h = nd->http_port;
	}
	memset(node, 0, sizeof(*node));
	node->id = want_id ? want_id : max_id + 1;
	memcpy(node->host, lc->cf.nodes[0].host, sizeof(node->host));
	node->client_port = max_c + 1;
	node->peer_port = max_p + 1;
	/* The cluster's nodes have HTTP endpoints: so does the new one. */
	node->http_port = max_h && max_h < 65535 ? max_h + 1 : 0;
	node->bootstrap = false;
	if (cluster_file_find(&lc->cf, node->id))
		return SP_ERR_EXISTS;
	for (int tries = 0; tries < 1000; tries++) {
		int rc = cluster_file_add(&lc->cf, node);
		if (rc != SP_ERR_EXISTS)
			return rc;
		node->client_port++;
		node->peer_port++;
		if (node->client_port > 65535 || node->peer_port > 65535)
			return SP_ERR_RANGE;
	}
	return SP_ERR_EXISTS;
}

/* forget_node takes a node that never joined back out: stops it and
 * removes its line. */
static void forget_node(struct local_cluster *lc, uint64_t id)
{
	(void)local_cluster_stop_node(lc, id, false);
	(void)cluster_file_remove(&lc->cf, id);
	int err = local_cluster_save(lc);
	if (err != 0)
		cli_error("cannot write %s: %s; remove node %llu's line by hand", lc->conf_path,
			  sp_strerror(err), (unsigned long long)id);
	else
		cli_error("node %llu was not added; %s is as it was", (unsigned long long)id,
			  lc->conf_path);
}

static int cluster_add(const char *path, int argc, char **argv)
{
	const char *dir = DEFAULT_DIR, *id_text = NULL, *wait_text = NULL;
	const struct cli_flag flags[] = {
	    {"dir", "DIR", "the cluster's directory (default " DEFAULT_DIR ")", &dir, NULL},
	    {"id", "N", "the new node's id (default: the highest id + 1)", &id_text, NULL},
	    {"wait", "SECONDS", "how long to wait for the cluster to take it (default 30)",
	     &wait_text, NULL},
	};
	const struct cli_spec spec = {
	    path,
	    "[--dir DIR] [--id N] [--wait SECONDS]",
	    "Add a node to the running cluster in DIR: pick its id and ports (one past the\n"
	    "highest in use), add its node line (not bootstrap) to DIR/cluster.conf, start it\n"
	    "with the kept spectrad flags, send CLUSTER ADD <id> <host> <client-port>\n"
	    "<peer-port> to a running member (retrying while members answer TRYAGAIN), and\n"
	    "wait until the leader's CLUSTER INFO lists it as a member or learner.\n"
	    "If the cluster refuses it, the node is stopped and its line removed again.\n"
	    "\n"
	    "Exit status: 0 added; 1 no cluster, the node did not start, the cluster refused\n"
	    "or did not take it in time; 2 usage error.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code;
	uint64_t want_id = 0;
	double wait_s = LEADER_WAIT_S;
	if (id_text && !parse_id(id_text, &want_id))
		return cli_usage_error(path, "--id: '%s' is not a node id (1..%lld)", id_text,
				       (long long)INT64_MAX);
	if (wait_text && !cli_parse_seconds(wait_text, &wait_s))
		return cli_usage_error(path, "--wait: '%s' is not a number of seconds", wait_text);

	struct local_cluster lc;
	if (!open_cluster(&lc, dir))
		return CLI_EXIT_FAIL;
	int rc = CLI_EXIT_FAIL, err;
	char **args = NULL;
	int nargs = 0;
	struct cluster_node node;
	char addr[300], last_err[512];
	if (!read_args(&lc, &args, &nargs))
		goto close_cluster;
	err = pick_node(&lc, want_id, &node);
	if (err == SP_ERR_EXISTS && want_id) {
		cli_error("node %llu is already in %s", (unsigned long long)want_id, lc.conf_path);
		goto free_args;
	}
	if (err != 0) {
		cli_error("no room for another node in %s: %s", lc.conf_path, sp_strerror(err));
		goto free_args;
	}
	unsigned long long id = (unsigned long long)node.id;
	err = local_cluster_save(&lc);
	if (err != 0) {
		cli_error("cannot write %s: %s", lc.conf_path, sp_strerror(err));
		goto free_args;
	}
	if (local_cluster_start_node(&lc, node.id, args, nargs, START_WAIT_S) != 0) {
		forget_node(&lc, node.id);
		goto free_args;
	}

	char id_arg[24], cport[8], pport[8];
	snprintf(id_arg, sizeof(id_arg), "%llu", id);
	snprintf(cport, sizeof(cport), "%d", node.client_port);
	snprintf(pport, sizeof(pport), "%d", node.peer_port);
	const char *cmd[] = {"CLUSTER", "ADD", id_arg, node.host, cport, pport};
	uint64_t via = 0;
	uint64_t deadline = now_ns() + (uint64_t)(wait_s * 1e9);
	switch (change_membership(&lc, node.id, 6, cmd, wait_s, &via, last_err, sizeof(last_err))) {
	case CHANGE_OK:
		break;
	case CHANGE_NOT_CAPABLE:
		cli_error("the members do not know CLUSTER ADD (%s): this spectrad is not "
			  "cluster-capable",
			  last_err);
		forget_node(&lc, node.id);
		goto free_args;
	case CHANGE_NO_MEMBER:
		cli_error("no member of the cluster is running to add node %llu through", id);
		forget_node(&lc, node.id);
		goto free_args;
	case CHANGE_REFUSED:
		cli_error("the cluster refused node %llu: %s", id, last_err);
		forget_node(&lc, node.id);
		goto free_args;
	case CHANGE_UNKNOWN:
		cli_error("CLUSTER ADD %llu got no answer in %g s (%s); it may yet take effect. "
			  "Node %llu is running and in %s; 'spectra cluster remove --id %llu --dir "
			  "%s' undoes this",
			  id, wait_s, last_err, id, lc.conf_path, id, dir);
		goto free_args;
	}

	/* The change is in once the leader lists the node. */
	struct local_cluster_info li;
	for (;;) {
		uint64_t leader = leader_info(&lc, &li);
		if (leader && local_cluster_info_lists(&li, node.id))
			break;
		if (now_ns() >= deadline) {
			cli_error(
			    "node %llu was accepted (CLUSTER ADD via node %llu) but the leader "
			    "does not list it after %g s; see 'spectra cluster status --dir %s'",
			    id, (unsigned long long)via, wait_s, dir);
			goto free_args;
		}
		sleep_ms(RETRY_MS);
	}
	char *ndir = local_cluster_node_dir(&lc, node.id);
	printf("spectra: node %llu added (%s, peer port %d, pid %d, dir %s)\n", id,
	       addr_of(&lc, node.id, addr, sizeof(addr)), node.peer_port,
	       (int)local_cluster_pid(&lc, node.id), ndir);
	free(ndir);
	rc = CLI_EXIT_OK;
free_args:
	local_cluster_args_free(args, nargs);
close_cluster:
	local_cluster_close(&lc);
	return rc;
}

/* ---- remove ------------------------------------------------------------ */

static int cluster_remove(const char *path, int argc, char **argv)
{
	const char *dir = DEFAULT_DIR, *id_text = NULL, *wait_text = NULL;
	const struct cli_flag flags[] = {
	    {"id", "N", "the node to remove (required)", &id_text, NULL},
	    {"dir", "DIR", "the cluster's directory (default " DEFAULT_DIR ")", &dir, NULL},
	    {"wait", "SECONDS", "how long to retry CLUSTER REMOVE (default 30)", &wait_text, NULL},
	};
	const struct cli_spec spec = {
	    path,
	    "--id N [--dir DIR] [--wait SECONDS]",
	    "Remove node N from the running cluster in DIR: send CLUSTER REMOVE N to a\n"
	    "running member other than N (retrying while members answer TRYAGAIN), then stop\n"
	    "node N and remove its line from DIR/cluster.conf. Its data directory is kept\n"
	    "(the message says where).\n"
	    "\n"
	    "Exit status: 0 removed; 1 no cluster, N is not in it or is its only node, no\n"
	    "other member runs, or the cluster refused; 2 usage error.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code;
	uint64_t id = 0;
	double wait_s = LEADER_WAIT_S;
	if (!parse_id_and_wait(path, id_text, wait_text, &id, &wait_s, &code))
		return code;

	struct local_cluster lc;
	if (!open_cluster(&lc, dir))
		return CLI_EXIT_FAIL;
	int rc = CLI_EXIT_FAIL, err;
	unsigned long long nid = (unsigned long long)id;
	char last_err[512], id_arg[24];
	if (!cluster_file_find(&lc.cf, id)) {
		cli_error("node %llu is not in %s", nid, lc.conf_path);
		goto close_cluster;
	}
	if (lc.cf.n == 1) {
		cli_error("node %llu is the cluster's only node; stop it with 'spectra cluster "
			  "down --dir %s'",
			  nid, dir);
		goto close_cluster;
	}
	snprintf(id_arg, sizeof(id_arg), "%llu", nid);
	const char *cmd[] = {"CLUSTER", "REMOVE", id_arg};
	uint64_t via = 0;
	switch (change_membership(&lc, id, 3, cmd, wait_s, &via, last_err, sizeof(last_err))) {
	case CHANGE_OK:
		break;
	case CHANGE_NOT_CAPABLE:
		cli_error("the members do not know CLUSTER REMOVE (%s): this spectrad is not "
			  "cluster-capable; nothing was changed",
			  last_err);
		goto close_cluster;
	case CHANGE_NO_MEMBER:
		cli_error("no member other than node %llu is running to remove it through", nid);
		goto close_cluster;
	case CHANGE_REFUSED:
		cli_error("the cluster refused to remove node %llu: %s; nothing was changed", nid,
			  last_err);
		goto close_cluster;
	case CHANGE_UNKNOWN:
		cli_error("CLUSTER REMOVE %llu got no answer in %g s (%s); it may yet take effect. "
			  "Node %llu was left running and in %s; run this again to finish",
			  nid, wait_s, last_err, nid, lc.conf_path);
		goto close_cluster;
	}
	printf("spectra: the cluster removed node %llu (CLUSTER REMOVE via node %llu)\n", nid,
	       (unsigned long long)via);
	bool stopped = stop_one(&lc, id, false, LOCAL_CLUSTER_STOP_S);
	char *ndir = local_cluster_node_dir(&lc, id);
	(void)cluster_file_remove(&lc.cf, id);
	err = local_cluster_save(&lc);
	if (err != 0) {
		cli_error("cannot write %s: %s; remove node %llu's line by hand", lc.conf_path,
			  sp_strerror(err), nid);
	} else {
		printf("spectra: node %llu removed from %s; its data stays in %s\n", nid,
		       lc.conf_path, ndir);
		rc = stopped ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	free(ndir);
close_cluster:
	local_cluster_close(&lc);
	return rc;
}

/* ---- start and stop one node ------------------------------------------- */

static int cluster_start(const char *path, int argc, char **argv)
{
	const char *dir = DEFAULT_DIR, *id_text = NULL, *wait_text = NULL;
	const struct cli_flag flags[] = {
	    {"id", "N", "the node to start (required)", &id_text, NULL},
	    {"dir", "DIR", "the cluster's directory (default " DEFAULT_DIR ")", &dir, NULL},
	    {"wait", "SECONDS", "how long to wait for the node to answer (default 10)", &wait_text,
	     NULL},
	};
	const struct cli_spec spec = {
	    path,
	    "--id N [--dir DIR] [--wait SECONDS]",
	    "Start node N of the cluster in DIR, with the kept spectrad flags\n"
	    "(DIR/spectrad.args), and wait until it answers PING. A node already running is\n"
	    "left alone.\n"
	    "\n"
	    "Exit status: 0 running; 1 no cluster, N is not in it, or it failed to start (its\n"
	    "last log lines are shown); 2 usage error.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code;
	uint64_t id = 0;
	double wait_s = START_WAIT_S;
	if (!parse_id_and_wait(path, id_text, wait_text, &id, &wait_s, &code))
		return code;

	struct local_cluster lc;
	if (!open_cluster(&lc, dir))
		return CLI_EXIT_FAIL;
	int rc = CLI_EXIT_FAIL;
	char **args = NULL;
	int nargs = 0;
	char addr[300];
	unsigned long long nid = (unsigned long long)id;
	if (!cluster_file_find(&lc.cf, id)) {
		cli_error("node %llu is not in %s", nid, lc.conf_path);
		goto close_cluster;
	}
	pid_t before = local_cluster_pid(&lc, id);
	if (before) {
		printf("spectra: node %llu already running (pid %d)\n", nid, (int)before);
		rc = CLI_EXIT_OK;
		goto close_cluster;
	}
	if (!read_args(&lc, &args, &nargs))
		goto close_cluster;
	if (local_cluster_start_node(&lc, id, args, nargs, wait_s) == 0) {
		char *ndir = local_cluster_node_dir(&lc, id);
		printf("spectra: node %llu started (pid %d, %s, dir %s)\n", nid,
		       (int)local_cluster_pid(&lc, id), addr_of(&lc, id, addr, sizeof(addr)), ndir);
		free(ndir);
		rc = CLI_EXIT_OK;
	}
	local_cluster_args_free(args, nargs);
close_cluster:
	local_cluster_close(&lc);
	return rc;
}

static int cluster_stop(const char *path, int argc, char **argv)
{
	const char *dir = DEFAULT_DIR, *id_text = NULL, *timeout_text = NULL;
	bool kill9 = false;
	const struct cli_flag flags[] = {
	    {"id", "N", "the node to stop (required)", &id_text, NULL},
	    {"dir", "DIR", "the cluster's directory (default " DEFAULT_DIR ")", &dir, NULL},
	    {"kill", NULL, "SIGKILL at once (a crash), not SIGTERM", NULL, &kill9},
	    {"timeout", "SECONDS", "wait this long after SIGTERM before SIGKILL (default 10)",
	     &timeout_text, NULL},
	};
	const struct cli_spec spec = {
	    path,
	    "--id N [--dir DIR] [--kill] [--timeout SECONDS]",
	    "Stop node N of the cluster in DIR: SIGTERM, then SIGKILL if it has not exited\n"
	    "within the timeout; with --kill, SIGKILL at once. The node stays in the cluster\n"
	    "(this is not 'remove'); 'start' brings it back.\n"
	    "\n"
	    "Exit status: 0 stopped, or was not running; 1 no cluster, N is not in it, or it\n"
	    "could not be stopped; 2 usage error.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code;
	uint64_t id = 0;
	double timeout_s = LOCAL_CLUSTER_STOP_S;
	if (!id_text)
		return cli_usage_error(path, "--id is required");
	if (!parse_id(id_text, &id))
		return cli_usage_error(path, "--id: '%s' is not a node id (1..%lld)", id_text,
				       (long long)INT64_MAX);
	if (timeout_text && !cli_parse_seconds(timeout_text, &timeout_s))
		return cli_usage_error(path, "--timeout: '%s' is not a number of seconds",
				       timeout_text);
	struct local_cluster lc;
	if (!open_cluster(&lc, dir))
		return CLI_EXIT_FAIL;
	int rc = CLI_EXIT_FAIL;
	if (!cluster_file_find(&lc.cf, id))
		cli_error("node %llu is not in %s", (unsigned long long)id, lc.conf_path);
	else if (stop_one(&lc, id, kill9, timeout_s))
		rc = CLI_EXIT_OK;
	local_cluster_close(&lc);
	return rc;
}

/* ---- the group --------------------------------------------------------- */

static const struct cli_command cluster_commands[] = {
    {"up", "create or reuse a local cluster, start it and wait for a leader", cluster_up},
    {"down", "stop every node (SIGTERM, then SIGKILL after a timeout)", cluster_down},
    {"status", "each node's role, term, leader and indexes; is there a leader", cluster_status},
    {"add", "add a node to the running cluster", cluster_add},
    {"remove", "remove a node from the running cluster", cluster_remove},
    {"start", "start one node of the cluster", cluster_start},
    {"stop", "stop one node of the cluster", cluster_stop},
};

int cli_cluster_main(const char *path, int argc, char **argv)
{
	return cli_dispatch(path,
			    "Run a spectra cluster on this machine: one directory holding the\n"
			    "cluster file and a data directory per node.",
			    cluster_commands,
			    sizeof(cluster_commands) / sizeof(cluster_commands[0]), argc, argv);
}
