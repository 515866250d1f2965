/*
 * local_cluster: a cluster of spectrad processes on this machine. See
 * local_cluster.h.
 */
#include "local_cluster.h"

#include "cli.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fileio.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS	    100
#define KILL_WAIT_S 5.0 /* after SIGKILL */
#define INFO_MS	    500 /* per CLUSTER INFO while waiting for a leader */

static char *path_join(const char *dir, const char *name)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;
	char *p = sp_malloc(len);
	snprintf(p, len, "%s/%s", dir, name);
	return p;
}

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

/* ---- the directory and its files --------------------------------------- */

/* fill_paths sets lc's strings for an existing directory dir. */
static int fill_paths(struct local_cluster *lc, const char *dir)
{
	char *abs = realpath(dir, NULL);
	if (!abs)
		return -errno;
	lc->dir = abs;
	lc->conf_path = path_join(abs, LOCAL_CLUSTER_CONF);
	return 0;
}

void local_cluster_close(struct local_cluster *lc)
{
	if (!lc)
		return;
	free(lc->dir);
	free(lc->conf_path);
	lc->dir = lc->conf_path = NULL;
}

int local_cluster_create(struct local_cluster *lc, const char *dir, int n, int base_port,
			 int peer_base_port, int http_base_port, const char *name)
{
	memset(lc, 0, sizeof(*lc));
	if (n < 1 || n > CLUSTER_FILE_MAX_NODES)
		return SP_ERR_RANGE;
	if (base_port < 1 || base_port > 65535 - (n - 1) || peer_base_port < 1 ||
	    peer_base_port > 65535 - (n - 1) || http_base_port < 0 ||
	    http_base_port > 65535 - (n - 1))
		return SP_ERR_RANGE;
	if (!name)
		name = CLUSTER_FILE_DEFAULT_NAME;
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen >= sizeof(lc->cf.name))
		return SP_ERR_INVAL;
	memcpy(lc->cf.name, name, nlen + 1);
	for (int i = 1; i <= n; i++) {
		struct cluster_node node = {.id = (uint64_t)i,
					    .client_port = base_port + i - 1,
					    .peer_port = peer_base_port + i - 1,
					    .http_port =
						http_base_port ? http_base_port + i - 1 : 0,
					    .bootstrap = true};
		snprintf(node.host, sizeof(node.host), "%s", LOCAL_CLUSTER_HOST);
		int rc = cluster_file_add(&lc->cf, &node);
		if (rc != 0)
			return rc == SP_ERR_EXISTS ? SP_ERR_INVAL : rc;
	}
	/* The name is checked by the formatter, before anything is made. */
	struct sp_buf probe;
	sp_buf_init(&probe);
	int rc = cluster_file_format(&lc->cf, &probe);
	sp_buf_free(&probe);
	if (rc != 0)
		return rc;

	rc = local_node_mkdir(dir);
	if (rc != 0)
		return rc;
	rc = fill_paths(lc, dir);
	if (rc != 0)
		return rc;
	/* Claim the name first (O_EXCL), so of two `up`s on one directory
	 * exactly one creates the cluster; then fill it atomically. */
	int fd = open(lc->conf_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = errno == EEXIST ? SP_ERR_EXISTS : -errno;
		goto close_lc;
	}
	close(fd);
	rc = local_cluster_save(lc);
	if (rc != 0) {
		unlink(lc->conf_path);
		goto close_lc;
	}
	return 0;
close_lc:
	local_cluster_close(lc);
	return rc;
}

int local_cluster_open_err(struct local_cluster *lc, const char *dir, char *err, size_t errlen)
{
	memset(lc, 0, sizeof(*lc));
	int rc = fill_paths(lc, dir);
	if (rc != 0) {
		if (err)
			snprintf(err, errlen, "%s: %s", dir, sp_strerror(rc));
		return rc;
	}
	char msg[512];
	rc = cluster_file_load(&lc->cf, lc->conf_path, msg, sizeof(msg));
	if (rc != 0) {
		if (err)
			snprintf(err, errlen, "%s", msg);
		local_cluster_close(lc);
	}
	return rc;
}

int local_cluster_open(struct local_cluster *lc, const char *dir)
{
	return local_cluster_open_err(lc, dir, NULL, 0);
}

int local_cluster_save(const struct local_cluster *lc)
{
	return cluster_file_save(&lc->cf, lc->conf_path);
}

char *local_cluster_node_dir(const struct local_cluster *lc, uint64_t id)
{
	char name[40];
	snprintf(name, sizeof(name), "node-%llu", (unsigned long long)id);
	return path_join(lc->dir, name);
}

/* ---- spectrad.args ----------------------------------------------------- */

int local_cluster_args_write(const struct local_cluster *lc, char *const *args, int nargs)
{
	char *path = path_join(lc->dir, LOCAL_CLUSTER_ARGS);
	char *tmp = path_join(lc->dir, LOCAL_CLUSTER_ARGS ".tmp");
	struct sp_buf text;
	int rc = 0, fd = -1;
	sp_buf_init(&text);
	if (nargs == 0) {
		if (unlink(path) != 0 && errno != ENOENT)
			rc = -errno;
		goto free_text;
	}
	for (int i = 0; i < nargs; i++) {
		if (strchr(args[i], '\n')) {
			rc = SP_ERR_INVAL;
			goto free_text;
		}
		sp_buf_append_str(&text, args[i]);
		sp_buf_append_str(&text, "\n");
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto free_text;
	}
	rc = sp_write_all(fd, sp_buf_begin(&text), text.len);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
free_text:
	sp_buf_free(&text);
	free(tmp);
	free(path);
	return rc;
}

int local_cluster_args_read(const struct local_cluster *lc, char ***args, int *nargs)
{
	char *path = path_join(lc->dir, LOCAL_CLUSTER_ARGS);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int n = 0, rc = 0;
	char **list = sp_calloc(1, sizeof(*list));
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno != ENOENT)
			rc = -errno;
		goto done;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		list = sp_realloc(list, ((size_t)n + 2) * sizeof(*list));
		list[n++] = sp_memdup(line, (size_t)len);
		list[n] = NULL;
	}
	if (ferror(f))
		rc = -(errno ? errno : EIO);
	free(line);
	fclose(f);
done:
	free(path);
	if (rc != 0) {
		local_cluster_args_free(list, n);
		return rc;
	}
	*args = list;
	*nargs = n;
	return 0;
}

void local_cluster_args_free(char **args, int nargs)
{
	if (!args)
		return;
	for (int i = 0; i < nargs; i++)
		free(args[i]);
	free(args);
}

/* ---- one node ---------------------------------------------------------- */

int local_cluster_addr(struct local_cluster *lc, uint64_t id, struct local_node_addr *a)
{
	const struct cluster_node *nd = cluster_file_find(&lc->cf, id);
	if (!nd)
		return SP_ERR_NOTFOUND;
	local_node_addr_set(a, nd->host, nd->client_port);
	return 0;
}

pid_t local_cluster_pid(struct local_cluster *lc, uint64_t id)
{
	if (!cluster_file_find(&lc->cf, id))
		return 0;
	char *dir = local_cluster_node_dir(lc, id);
	struct local_node node;
	local_node_init(&node, dir);
	pid_t pid;
	enum local_node_state st = local_node_state(&node, &pid);
	local_node_close(&node);
	free(dir);
	return st == LOCAL_NODE_RUNNING ? pid : 0;
}

int local_cluster_start_node(struct local_cluster *lc, uint64_t id, char *const *extra, int nextra,
			     double wait_s)
{
	const struct cluster_node *nd = cluster_file_find(&lc->cf, id);
	if (!nd) {
		cli_error("node %llu is not in %s", (unsigned long long)id, lc->conf_path);
		return -1;
	}
	int rc = -1, err;
	char *dir = local_cluster_node_dir(lc, id);
	char *spectrad = NULL;
	char **args = NULL;
	char addr[300], id_text[24], port_text[8];
	struct local_node node = {0};
	struct local_node_addr a;
	pid_t pid;

	err = local_node_mkdir(dir);
	if (err != 0) {
		cli_error("cannot create %s: %s", dir, sp_strerror(err));
		goto free_dir;
	}
	local_node_init(&node, dir);
	switch (local_node_state(&node, &pid)) {
	case LOCAL_NODE_RUNNING:
		rc = 0;
		goto close_node;
	case LOCAL_NODE_STALE:
		unlink(node.pidfile); /* left by a node that was killed */
		break;
	case LOCAL_NODE_STOPPED:
		break;
	}
	local_node_addr_set(&a, nd->host, nd->client_port);
	local_node_addr_text(&a, addr, sizeof(addr));
	if (local_node_answers(&a)) {
		cli_error("node %llu: something already answers on %s", (unsigned long long)id,
			  addr);
		goto close_node;
	}
	/* node.conf lets `spectra node status --dir <dir>/node-<id>` find it. */
	err = local_node_addr_write(&node, nd->client_port, nd->host);
	if (err != 0) {
		cli_error("cannot write %s: %s", node.nodeconf, sp_strerror(err));
		goto close_node;
	}

	spectrad = local_node_find_spectrad(NULL);
	snprintf(id_text, sizeof(id_text), "%llu", (unsigned long long)id);
	snprintf(port_text, sizeof(port_text), "%d", nd->client_port);
	args = sp_calloc((size_t)nextra + 20, sizeof(*args));
	int n = 0;
	args[n++] = spectrad;
	args[n++] = "--dir";
	args[n++] = node.dir;
	args[n++] = "--cluster-file";
	args[n++] = lc->conf_path;
	args[n++] = "--node-id";
	args[n++] = id_text;
	args[n++] = "--port";
	args[n++] = port_text;
	args[n++] = "--bind";
	args[n++] = (char *)nd->host;
	args[n++] = "--pidfile";
	args[n++] = node.pidfile;
	args[n++] = "--logfile";
	args[n++] = node.logfile;
	for (int i = 0; i < nextra; i++)
		args[n++] = extra[i];
	args[n] = NULL;

	/* Only what this start appends to the log is shown if it fails. */
	struct stat st;
	off_t log_from = stat(node.logfile, &st) == 0 ? st.st_size : 0;
	pid_t child = local_node_launch(args, node.logfile);
	if (child < 0)
		goto free_args;
	if (local_node_wait_ready(child, &node, &a, wait_s, log_from) != 0) {
		cli_error("node %llu did not start (dir %s)", (unsigned long long)id, node.dir);
		goto free_args;
	}
	rc = 0;
free_args:
	free(args);
	free(spectrad);
close_node:
	local_node_close(&node);
free_dir:
	free(dir);
	return rc;
}

/* reap collects pid's exit status if it is this process's child, so a
 * long-lived caller (spectra chaos) does not collect zombies. */
static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
		;
}

int local_cluster_stop_node_timed(struct local_cluster *lc, uint64_t id, bool kill9,
				  double timeout_s, pid_t *pid_out, bool *killed)
{
	*pid_out = 0;
	*killed = false;
	if (!cluster_file_find(&lc->cf, id))
		return SP_ERR_NOTFOUND;
	char *dir = local_cluster_node_dir(lc, id);
	struct local_node node;
	local_node_init(&node, dir);
	pid_t pid;
	int rc = 0;
	switch (local_node_state(&node, &pid)) {
	case LOCAL_NODE_STOPPED:
		goto close_node;
	case LOCAL_NODE_STALE:
		if (pid > 0)
			reap(pid);
		unlink(node.pidfile);
		goto close_node;
	case LOCAL_NODE_RUNNING:
		break;
	}
	*pid_out = pid;
	if (!kill9) {
		rc = local_node_stop(&node, pid, timeout_s, killed);
		reap(pid);
		goto close_node;
	}
	*killed = true;
	if (kill(pid, SIGKILL) != 0) {
		rc = -errno;
		goto close_node;
	}
	if (!local_node_wait_gone(pid, KILL_WAIT_S)) {
		rc = SP_ERR_AGAIN;
		goto close_node;
	}
	reap(pid);
	pid_t left;
	if (local_node_read_pid(node.pidfile, &left) == 0 && left == pid)
		unlink(node.pidfile);
close_node:
	local_node_close(&node);
	free(dir);
	return rc;
}

int local_cluster_stop_node(struct local_cluster *lc, uint64_t id, bool kill9)
{
	pid_t pid;
	bool killed;
	return local_cluster_stop_node_timed(lc, id, kill9, LOCAL_CLUSTER_STOP_S, &pid, &killed);
}

/* ---- CLUSTER INFO ------------------------------------------------------ */

static int64_t parse_number(const char *v, size_t len)
{
	int64_t n = 0;
	size_t i = 0;
	if (len == 0 || v[0] < '0' || v[0] > '9')
		return -1;
	for (; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
		if (n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

/* parse_ids reads a list of ids: items separated by ',', ' ', ';' or
 * tabs, each item's leading digits its id. */
static bool id_separator(char c)
{
	return c == ',' || c == ' ' || c == ';' || c == '\t';
}

static size_t parse_ids(const char *v, size_t len, uint64_t *out, size_t max)
{
	size_t n = 0, i = 0;
	while (i < len && n < max) {
		size_t item = 0;
		while (i + item < len && !id_separator(v[i + item]))
			item++;
		int64_t id = parse_number(v + i, item);
		if (id > 0)
			out[n++] = (uint64_t)id;
		i += item + 1;
	}
	return n;
}

static bool key_is(const char *key, size_t klen, const char *name)
{
	return strlen(name) == klen && strncmp(key, name, klen) == 0;
}

static void info_set(struct local_cluster_info *info, const char *key, size_t klen, const char *v,
		     size_t vlen)
{
	if (key_is(key, klen, "role")) {
		if (vlen >= sizeof(info->role))
			vlen = sizeof(info->role) - 1;
		memcpy(info->role, v, vlen);
		info->role[vlen] = '\0';
	} else if (key_is(key, klen, "term")) {
		info->term = parse_number(v, vlen);
	} else if (key_is(key, klen, "leader_id")) {
		int64_t l = parse_number(v, vlen);
		info->leader_id = l > 0 ? (uint64_t)l : 0;
	} else if (key_is(key, klen, "commit_index")) {
		info->commit_index = parse_number(v, vlen);
	} else if (key_is(key, klen, "applied_index")) {
		info->applied_index = parse_number(v, vlen);
	} else if (key_is(key, klen, "members")) {
		info->nmembers = parse_ids(v, vlen, info->members, CLUSTER_FILE_MAX_NODES);
	} else if (key_is(key, klen, "learners")) {
		info->nlearners = parse_ids(v, vlen, info->learners, CLUSTER_FILE_MAX_NODES);
	}
}

/* info_parse_text reads "field:value" lines (CRLF or LF; '#' lines are
 * section headers). */
static void info_parse_text(struct local_cluster_info *info, const char *text, size_t len)
{
	size_t i = 0;
	while (i < len) {
		const char *line = text + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t n = nl ? (size_t)(nl - line) : len - i;
		i += n + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		const char *colon = memchr(line, ':', n);
		if (n == 0 || line[0] == '#' || !colon)
			continue;
		info_set(info, line, (size_t)(colon - line), colon + 1,
			 n - (size_t)(colon - line) - 1);
	}
}

/* reply_text gives a scalar reply's text: strings as they are, integers
 * in decimal (in buf). */
static bool reply_text(const redisReply *r, char *buf, size_t buflen, const char **s, size_t *len)
{
	switch (r->type) {
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
		*s = r->str;
		*len = r->len;
		return true;
	case REDIS_REPLY_INTEGER:
		snprintf(buf, buflen, "%lld", r->integer);
		*s = buf;
		*len = strlen(buf);
		return true;
	default:
		return false;
	}
}

/* info_parse_pairs reads an array of field, value, ...; a value
 * that is itself an array is a list of ids. */
static void info_parse_pairs(struct local_cluster_info *info, const redisReply *r)
{
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *k = r->element[i], *v = r->element[i + 1];
		char kbuf[32], vbuf[32];
		const char *ks, *vs;
		size_t klen, vlen;
		if (!reply_text(k, kbuf, sizeof(kbuf), &ks, &klen))
			continue;
		if (v->type == REDIS_REPLY_ARRAY) {
			struct sp_buf list;
			sp_buf_init(&list);
			for (size_t j = 0; j < v->elements; j++)
				if (reply_text(v->element[j], vbuf, sizeof(vbuf), &vs, &vlen)) {
					sp_buf_append(&list, vs, vlen);
					sp_buf_append_str(&list, ",");
				}
			info_set(info, ks, klen, sp_buf_begin(&list), list.len);
			sp_buf_free(&list);
		} else if (reply_text(v, vbuf, sizeof(vbuf), &vs, &vlen)) {
			info_set(info, ks, klen, vs, vlen);
		}
	}
}

static bool unknown_command(const char *msg)
{
	return strstr(msg, "unknown command") || strstr(msg, "unknown subcommand");
}

int local_cluster_info(struct local_cluster *lc, uint64_t id, struct local_cluster_info *info,
		       unsigned timeout_ms)
{
	memset(info, 0, sizeof(*info));
	info->id = id;
	info->term = info->commit_index = info->applied_index = -1;
	struct local_node_addr a;
	if (local_cluster_addr(lc, id, &a) != 0) {
		snprintf(info->error, sizeof(info->error), "not in the cluster file");
		return SP_ERR_NOTFOUND;
	}
	info->pid = local_cluster_pid(lc, id);
	if (info->pid == 0) {
		snprintf(info->error, sizeof(info->error), "not running");
		return -ESRCH;
	}
	char err[256];
	redisContext *ctx = local_node_connect(&a, timeout_ms, err, sizeof(err));
	if (!ctx) {
		snprintf(info->error, sizeof(info->error), "%s", err);
		return SP_ERR_IO;
	}
	int rc = 0;
	redisReply *r = redisCommand(ctx, "CLUSTER INFO");
	if (!r) {
		snprintf(info->error, sizeof(info->error), "%s", ctx->errstr);
		rc = SP_ERR_IO;
		goto free_ctx;
	}
	const char *s;
	size_t len;
	char num[32];
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(info->error, sizeof(info->error), "%s", r->str);
		rc = unknown_command(r->str) ? SP_ERR_PROTO : SP_ERR_IO;
	} else if (r->type == REDIS_REPLY_ARRAY) {
		info_parse_pairs(info, r);
	} else if (reply_text(r, num, sizeof(num), &s, &len)) {
		info_parse_text(info, s, len);
	} else {
		snprintf(info->error, sizeof(info->error), "CLUSTER INFO: unexpected reply type %d",
			 r->type);
		rc = SP_ERR_IO;
	}
	freeReplyObject(r);
free_ctx:
	redisFree(ctx);
	return rc;
}

bool local_cluster_info_lists(const struct local_cluster_info *info, uint64_t id)
{
	for (size_t i = 0; i < info->nmembers; i++)
		if (info->members[i] == id)
			return true;
	for (size_t i = 0; i < info->nlearners; i++)
		if (info->learners[i] == id)
			return true;
	return false;
}

uint64_t local_cluster_agreed_leader(const struct local_cluster_info *infos, size_t n)
{
	const struct local_cluster_info *leader = NULL;
	size_t running = 0;
	for (size_t i = 0; i < n; i++) {
		if (infos[i].pid == 0)
			continue;
		running++;
		if (strcmp(infos[i].role, "leader") == 0 &&
		    (!leader || infos[i].term > leader->term))
			leader = &infos[i];
	}
	if (!leader)
		return 0;
	size_t agree = 0;
	for (size_t i = 0; i < n; i++) {
		if (infos[i].pid == 0)
			continue;
		if (&infos[i] == leader || infos[i].leader_id == leader->id)
			agree++;
	}
	return agree * 2 > running ? leader->id : 0;
}

int local_cluster_wait_leader(struct local_cluster *lc, double wait_s, uint64_t *leader)
{
	uint64_t deadline = now_ns() + (uint64_t)(wait_s * 1e9);
	struct local_cluster_info *infos = sp_calloc(CLUSTER_FILE_MAX_NODES, sizeof(*infos));
	int rc = SP_ERR_AGAIN;
	for (;;) {
		size_t answered = 0, unknown = 0;
		for (size_t i = 0; i < lc->cf.n; i++) {
			int r = local_cluster_info(lc, lc->cf.nodes[i].id, &infos[i], INFO_MS);
			if (r == 0 || r == SP_ERR_PROTO)
				answered++;
			if (r == SP_ERR_PROTO)
				unknown++;
		}
		uint64_t id = local_cluster_agreed_leader(infos, lc->cf.n);
		if (id != 0) {
			*leader = id;
			rc = 0;
			break;
		}
		if (answered > 0 && unknown == answered) {
			rc = SP_ERR_PROTO;
			break;
		}
		if (now_ns() >= deadline)
			break;
		sleep_ms(POLL_MS);
	}
	free(infos);
	return rc;
}
