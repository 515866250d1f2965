/*
 * local_node: one spectrad on this machine. See local_node.h.
 */
#include "local_node.h"

#include "cli.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS	       50
#define KILL_WAIT_S    5.0 /* after SIGKILL */
#define LOG_TAIL_LINES 20
#define LOG_TAIL_BYTES (64 * 1024)

/* ---- the data directory ------------------------------------------------ */

static char *path_join(const char *dir, const char *name)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;
	char *p = sp_malloc(len);
	snprintf(p, len, "%s/%s", dir, name);
	return p;
}

void local_node_init(struct local_node *n, const char *dir)
{
	char *abs = realpath(dir, NULL);
	n->dir = abs ? abs : sp_strdup(dir);
	n->pidfile = path_join(n->dir, "spectrad.pid");
	n->logfile = path_join(n->dir, "spectrad.log");
	n->nodeconf = path_join(n->dir, "node.conf");
}

void local_node_close(struct local_node *n)
{
	if (!n)
		return;
	free(n->dir);
	free(n->pidfile);
	free(n->logfile);
	free(n->nodeconf);
	n->dir = n->pidfile = n->logfile = n->nodeconf = NULL;
}

int local_node_mkdir(const char *dir)
{
	char *p = sp_strdup(dir);
	int rc = 0;
	for (char *cut = p + 1;; cut++) {
		char saved = *cut;
		if (saved != '/' && saved != '\0')
			continue;
		*cut = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*cut = saved;
		if (saved == '\0')
			break;
	}
	free(p);
	if (rc == 0) {
		struct stat st;
		if (stat(dir, &st) != 0)
			rc = -errno;
		else if (!S_ISDIR(st.st_mode))
			rc = -ENOTDIR;
	}
	return rc;
}

/* ---- the process ------------------------------------------------------- */

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

int local_node_read_pid(const char *pidfile, pid_t *pid)
{
	FILE *f = fopen(pidfile, "r");
	if (!f)
		return -errno;
	long v = 0;
	int n = fscanf(f, "%ld", &v);
	fclose(f);
	if (n != 1 || v <= 1 || v > INT_MAX)
		return SP_ERR_INVAL;
	*pid = (pid_t)v;
	return 0;
}

/*
 * A zombie has exited: where init is slow to reap (or, in a container,
 * never reaps) a stopped spectrad stays one for a while, and kill(pid, 0)
 * still succeeds on it. /proc tells the two apart.
 */
bool local_node_alive(pid_t pid)
{
	if (kill(pid, 0) != 0 && errno != EPERM)
		return false;
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return true; /* no /proc: trust kill() */
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	/* "pid (comm) S ...": comm may hold spaces and parentheses. */
	char *close = strrchr(stat, ')');
	return !(close && close[1] == ' ' && close[2] == 'Z');
}

enum local_node_state local_node_state(const struct local_node *n, pid_t *pid)
{
	*pid = 0;
	int rc = local_node_read_pid(n->pidfile, pid);
	if (rc == -ENOENT || rc == -ENOTDIR)
		return LOCAL_NODE_STOPPED;
	if (rc != 0)
		return LOCAL_NODE_STALE;
	return local_node_alive(*pid) ? LOCAL_NODE_RUNNING : LOCAL_NODE_STALE;
}

bool local_node_wait_gone(pid_t pid, double seconds)
{
	uint64_t deadline = now_ns() + (uint64_t)(seconds * 1e9);
	for (;;) {
		if (!local_node_alive(pid))
			return true;
		if (now_ns() >= deadline)
			return false;
		sleep_ms(POLL_MS);
	}
}

int local_node_stop(const struct local_node *n, pid_t pid, double timeout_s, bool *killed)
{
	*killed = false;
	if (kill(pid, SIGTERM) != 0)
		return -errno;
	if (!local_node_wait_gone(pid, timeout_s)) {
		*killed = true;
		kill(pid, SIGKILL);
		if (!local_node_wait_gone(pid, KILL_WAIT_S))
			return SP_ERR_AGAIN;
	}
	/* spectrad removes its pidfile on a clean exit; after a crash on the
	 * way out or SIGKILL it is stale now. */
	pid_t left;
	if (local_node_read_pid(n->pidfile, &left) == 0 && left == pid)
		unlink(n->pidfile);
	return 0;
}

/* ---- the address ------------------------------------------------------- */

void local_node_addr_set(struct local_node_addr *a, const char *bind, int port)
{
	size_t len = strcspn(bind, " \t");
	if (len >= sizeof(a->host))
		len = 0;
	memcpy(a->host, bind, len);
	a->host[len] = '\0';
	if (len == 0 || strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "*") == 0)
		snprintf(a->host, sizeof(a->host), "127.0.0.1");
	else if (strcmp(a->host, "::") == 0 || strcmp(a->host, "::*") == 0)
		snprintf(a->host, sizeof(a->host), "::1");
	a->port = port;
}

const char *local_node_addr_text(const struct local_node_addr *a, char *out, size_t outlen)
{
	if (strchr(a->host, ':'))
		snprintf(out, outlen, "[%s]:%d", a->host, a->port);
	else
		snprintf(out, outlen, "%s:%d", a->host, a->port);
	return out;
}

void local_node_addr_read(const struct local_node *n, struct local_node_addr *a)
{
	struct sp_config c;
	sp_config_init(&c);
	(void)sp_config_load_file(&c, n->nodeconf, NULL, 0);
	local_node_addr_set(a, c.bind, c.port);
	sp_config_free(&c);
}

/* write_conf_value writes a value so that sp_config_load_file reads it
 * back: quoted, with \" and \\, when it is empty or holds a space. */
static void write_conf_value(FILE *f, const char *v)
{
	if (*v && !strpbrk(v, " \t\"\\#")) {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputc('"', f);
}

int local_node_addr_write(const struct local_node *n, int port, const char *bind)
{
	char *tmp = path_join(n->dir, "node.conf.tmp");
	int rc = 0;
	FILE *f = fopen(tmp, "w");
	if (!f) {
		rc = -errno;
		goto free_tmp;
	}
	fprintf(f, "# written by 'spectra node start'; read by 'spectra node stop|status'\n");
	fprintf(f, "port %d\nbind ", port);
	write_conf_value(f, bind);
	fputc('\n', f);
	if (fclose(f) != 0) {
		rc = -errno;
		goto remove_tmp;
	}
	if (rename(tmp, n->nodeconf) != 0) {
		rc = -errno;
		goto remove_tmp;
	}
	goto free_tmp;
remove_tmp:
	unlink(tmp);
free_tmp:
	free(tmp);
	return rc;
}

static struct timeval ms_timeval(unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

void local_node_reply_text(const redisReply *r, const redisContext *ctx, char *out, size_t outlen)
{
	if (!r)
		snprintf(out, outlen, "no reply (%s)", ctx && ctx->errstr[0] ? ctx->errstr : "?");
	else if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ||
		 r->type == REDIS_REPLY_STRING)
		snprintf(out, outlen, "%s%.*s", r->type == REDIS_REPLY_ERROR ? "-" : "",
			 (int)r->len, r->str);
	else
		snprintf(out, outlen, "a reply of type %d", r->type);
}

#define SETUP_PAUSE_MS 200 /* between rounds of keyspace setup that made no progress */

int local_node_create_keyspace(const struct local_node_addr *nodes, size_t nnodes,
			       const char *const *create, int ncreate, const char *const *probe,
			       int nprobe, bool (*probe_ok)(const redisReply *r),
			       unsigned timeout_ms, double wait_s, char *err, size_t errlen)
{
	uint64_t deadline = now_ns() / 1000000 + (uint64_t)(wait_s * 1000);
	snprintf(err, errlen, "no node answered");
	bool created = false;
	size_t i = 0, ready = 0;
	bool progressed = true;
	for (int round = 0; now_ns() / 1000000 < deadline || round == 0; round++) {
		if (!progressed)
			sleep_ms(SETUP_PAUSE_MS);
		progressed = false;
		redisContext *ctx = local_node_connect(&nodes[created ? ready : i % nnodes],
						       timeout_ms, err, errlen);
		if (!ctx) {
			i++;
			continue;
		}
		redisReply *r;
		if (!created) {
			r = redisCommandArgv(ctx, ncreate, (const char **)create, NULL);
			created =
			    r && ((r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0) ||
				  (r->type == REDIS_REPLY_ERROR && strstr(r->str, "exists")));
			if (created) {
				progressed = true;
			} else {
				local_node_reply_text(r, ctx, err, errlen);
				i++;
			}
		} else {
			r = redisCommandArgv(ctx, nprobe, (const char **)probe, NULL);
			if (r && probe_ok(r)) {
				ready++;
				progressed = true;
			} else {
				local_node_reply_text(r, ctx, err, errlen);
			}
		}
		if (r)
			freeReplyObject(r);
		redisFree(ctx);
		if (created && ready == nnodes)
			return 0;
	}
	return SP_ERR_AGAIN;
}

redisContext *local_node_connect(const struct local_node_addr *a, unsigned timeout_ms, char *err,
				 size_t errlen)
{
	redisContext *ctx = redisConnectWithTimeout(a->host, a->port, ms_timeval(timeout_ms));
	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (ctx->err) {
		snprintf(err, errlen, "%s", ctx->errstr);
		redisFree(ctx);
		return NULL;
	}
	redisSetTimeout(ctx, ms_timeval(timeout_ms));
	return ctx;
}

bool local_node_answers(const struct local_node_addr *a)
{
	char err[128];
	redisContext *ctx = local_node_connect(a, 250, err, sizeof(err));
	if (!ctx)
		return false;
	redisReply *r = redisCommand(ctx, "PING");
	bool up = r && !(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "LOADING", 7) == 0);
	if (r)
		freeReplyObject(r);
	redisFree(ctx);
	return up;
}

/* ---- launching --------------------------------------------------------- */

char *local_node_find_spectrad(const char *path)
{
	if (path && *path)
		return sp_strdup(path);
	const char *env = getenv("SPECTRAD");
	if (env && *env)
		return sp_strdup(env);
	/* The spectrad beside this spectra, so a build tree's bin/ works
	 * without PATH. */
	char self[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len > 0) {
		self[len] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			char *beside = path_join(self, "spectrad");
			if (access(beside, X_OK) == 0)
				return beside;
			free(beside);
		}
	}
	return sp_strdup("spectrad");
}

/* close_inherited closes every descriptor above stderr except keep, so the
 * node holds no pipe of whoever ran `spectra` (a shell's $(...) would
 * otherwise wait for the node to exit). Runs in the child after fork. */
static void close_inherited(int keep)
{
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = 3; fd < max; fd++)
		if (fd != keep)
			close(fd);
}

pid_t local_node_launch(char *const *args, const char *logfile)
{
	pid_t pid = -1;
	int pipefd[2] = {-1, -1};
	int logfd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0) {
		cli_error("cannot open %s: %s", logfile, strerror(errno));
		return -1;
	}
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0) {
		cli_error("cannot open /dev/null: %s", strerror(errno));
		goto close_log;
	}
	/* The child reports a failed exec through this pipe; a successful
	 * exec closes it (O_CLOEXEC), which the parent reads as EOF. */
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		cli_error("pipe: %s", strerror(errno));
		goto close_null;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		cli_error("fork: %s", strerror(errno));
		goto close_pipe;
	}
	if (pid == 0) {
		setsid();
		signal(SIGPIPE, SIG_DFL); /* spectra ignores it; spectrad decides */
		dup2(nullfd, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		close_inherited(pipefd[1]);
		execvp(args[0], args);
		int e = errno;
		ssize_t w = write(pipefd[1], &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	int exec_errno = 0;
	ssize_t got;
	while ((got = read(pipefd[0], &exec_errno, sizeof(exec_errno))) < 0 && errno == EINTR)
		;
	if (got == (ssize_t)sizeof(exec_errno)) {
		waitpid(pid, NULL, 0);
		cli_error("cannot run %s: %s", args[0], strerror(exec_errno));
		if (!strchr(args[0], '/'))
			cli_error("give its path with --spectrad or $SPECTRAD");
		pid = -1;
	}
close_pipe:
	close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
close_null:
	close(nullfd);
close_log:
	close(logfd);
	return pid;
}

void local_node_print_log_tail(const char *logfile, off_t from)
{
	FILE *f = fopen(logfile, "r");
	struct stat st;
	if (!f || fstat(fileno(f), &st) != 0) {
		fprintf(stderr, "  (cannot read %s: %s)\n", logfile, strerror(errno));
		if (f)
			fclose(f);
		return;
	}
	off_t start = from;
	if (st.st_size - start > LOG_TAIL_BYTES)
		start = st.st_size - LOG_TAIL_BYTES;
	size_t len = st.st_size > start ? (size_t)(st.st_size - start) : 0;
	char *text = sp_malloc(len + 1);
	if (fseeko(f, start, SEEK_SET) != 0)
		len = 0;
	len = fread(text, 1, len, f);
	fclose(f);
	text[len] = '\0';
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	if (len == 0) {
		fprintf(stderr, "  (nothing was written to %s)\n", logfile);
		free(text);
		return;
	}
	/* Step back over LOG_TAIL_LINES newlines from the end. */
	char *begin = text + len;
	int lines = 0;
	while (begin > text) {
		if (begin[-1] == '\n' && ++lines == LOG_TAIL_LINES)
			break;
		begin--;
	}
	fprintf(stderr, "last lines of %s:\n", logfile);
	for (char *line = begin; line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		fprintf(stderr, "  | %s\n", line);
		line = nl ? nl + 1 : NULL;
	}
	free(text);
}

static void describe_exit(int status, char *out, size_t outlen)
{
	if (WIFEXITED(status))
		snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, outlen, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(out, outlen, "stopped");
}

/*
 * Ready means both: PING answers (the port is spectrad's, not something
 * that was there before, which the caller has checked), and the pidfile
 * names the child, so a `status` or `stop` right after `start` finds it.
 */
int local_node_wait_ready(pid_t child, const struct local_node *n, const struct local_node_addr *a,
			  double wait_s, off_t log_from)
{
	uint64_t deadline = now_ns() + (uint64_t)(wait_s * 1e9);
	bool answered = false;
	char addr[300], how[128];
	for (;;) {
		int status;
		if (waitpid(child, &status, WNOHANG) == child) {
			describe_exit(status, how, sizeof(how));
			cli_error("spectrad %s before it was ready", how);
			local_node_print_log_tail(n->logfile, log_from);
			return -1;
		}
		if (!answered)
			answered = local_node_answers(a);
		pid_t pid;
		if (answered && local_node_read_pid(n->pidfile, &pid) == 0 && pid == child)
			return 0;
		if (now_ns() >= deadline)
			break;
		sleep_ms(POLL_MS);
	}
	local_node_addr_text(a, addr, sizeof(addr));
	if (answered)
		cli_error("spectrad (pid %d) answers on %s but wrote no pidfile %s in %g s; "
			  "stopping it",
			  (int)child, addr, n->pidfile, wait_s);
	else
		cli_error("spectrad (pid %d) did not answer PING on %s in %g s; stopping it",
			  (int)child, addr, wait_s);
	kill(child, SIGTERM);
	if (!local_node_wait_gone(child, KILL_WAIT_S))
		kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	local_node_print_log_tail(n->logfile, log_from);
	return -1;
}
