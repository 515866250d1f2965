/*
 * testnode: real nodes for tests. See testnode.h for what and why.
 *
 * Everything a test creates (nodes, hiredis contexts, raw sockets) goes on
 * a registry for the current test, so tn__teardown can release it even
 * after a failed assertion has longjmp'd out of the test body.
 */
#include "testnode.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_TAIL_LINES	40
#define IO_TIMEOUT_MS	10000
#define STOP_TIMEOUT_MS 20000
#define START_RETRIES	5

/* A hiredis context on the registry. */
struct conn_entry {
	redisContext *c;
	struct conn_entry *next;
};

/* The registry and the state of the test now running. */
static struct tn_node *reg_nodes;
static struct tn_raw *reg_raws;
static struct conn_entry *reg_conns;
static struct tn_case *current_case;
static bool current_skipped;
static bool logs_dumped;
static bool initialised;

/* ---------------------------------------------------------------------- */
/* Small utilities                                                         */

int64_t tn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tn_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static long env_long(const char *name, long def)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0')
		return def;
	char *end;
	long x = strtol(v, &end, 10);
	return (*end == '\0' && x > 0) ? x : def;
}

bool tn_against_redis(void)
{
	const char *v = getenv("SPECTRA_TEST_AGAINST");
	return v != NULL && strcmp(v, "redis") == 0;
}

unsigned tn_seed(void)
{
	static bool chosen;
	static unsigned seed;
	if (!chosen) {
		const char *v = getenv("SPECTRA_TEST_SEED");
		if (v != NULL && *v != '\0')
			seed = (unsigned)strtoul(v, NULL, 10);
		else
			seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
		chosen = true;
		print_message("    seed %u (replay with SPECTRA_TEST_SEED=%u)\n", seed, seed);
	}
	return seed;
}

char *tn_escape(const void *p, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = p;
	size_t o = 0;
	if (outlen == 0)
		return out;
	for (size_t i = 0; i < len; i++) {
		char tmp[8];
		unsigned char ch = s[i];
		if (ch == '\r')
			strcpy(tmp, "\\r");
		else if (ch == '\n')
			strcpy(tmp, "\\n");
		else if (ch == '\\')
			strcpy(tmp, "\\\\");
		else if (ch == '"')
			strcpy(tmp, "\\\"");
		else if (isprint(ch))
			tmp[0] = (char)ch, tmp[1] = '\0';
		else
			snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
		size_t tl = strlen(tmp);
		if (o + tl + 4 >= outlen) {
			if (o + 4 <= outlen - 1) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(out + o, tmp, tl);
		o += tl;
	}
	out[o] = '\0';
	return out;
}

/* ---------------------------------------------------------------------- */
/* Failure reporting                                                       */

static void dump_all_logs(void)
{
	for (struct tn_node *n = reg_nodes; n != NULL; n = n->next)
		tn_node_dump_log(n, LOG_TAIL_LINES);
	logs_dumped = true;
}

void tn__fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	char msg[4096];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	print_error("%s\n", msg);
	print_error("    (seed %u, against %s)\n", tn_seed(),
		    tn_against_redis() ? "redis" : "spectrad");
	if (!logs_dumped)
		dump_all_logs();
	_fail(file, line);
	abort(); /* _fail does not return while a test runs */
}

void tn__mark_skipped(void)
{
	current_skipped = true;
}

void tn_node_dump_log(const struct tn_node *n, int lines)
{
	FILE *f = fopen(n->log_path, "r");
	if (f == NULL) {
		fprintf(stderr, "    (no log at %s)\n", n->log_path);
		return;
	}
	/* Read at most the last 64 KiB and print its last `lines` lines. */
	static char tail[65536 + 1];
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	long from = size > 65536 ? size - 65536 : 0;
	fseek(f, from, SEEK_SET);
	size_t got = fread(tail, 1, 65536, f);
	fclose(f);
	tail[got] = '\0';
	size_t start = got;
	int seen = 0;
	while (start > 0) {
		if (tail[start - 1] == '\n' && start != got && ++seen >= lines)
			break;
		start--;
	}
	fprintf(stderr, "    ---- last %d lines of %s (port %d, %s) ----\n", lines, n->log_path,
		n->port, n->is_redis ? "redis-server" : "spectrad");
	fputs(tail + start, stderr);
	if (got > 0 && tail[got - 1] != '\n')
		fputc('\n', stderr);
	fprintf(stderr, "    ---- end of log ----\n");
}

/* ---------------------------------------------------------------------- */
/* Process-wide set-up: signals and a last-resort cleanup                  */

static void kill_all_nodes(void)
{
	for (struct tn_node *n = reg_nodes; n != NULL; n = n->next) {
		if (n->pid > 0) {
			kill(n->pid, SIGKILL);
			waitpid(n->pid, NULL, 0);
			n->pid = 0;
		}
		if (getenv("SPECTRA_TEST_KEEP") == NULL)
			tu_remove_tree(n->root);
	}
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "\n[testnode] test exceeded its time limit "
				  "(SPECTRA_TEST_TIMEOUT_S); killing its nodes\n";
	if (write(2, msg, sizeof(msg) - 1) < 0) {
	}
	/* Not async-signal-safe, but the process is about to die and the
	 * logs are what the reader needs. */
	dump_all_logs();
	kill_all_nodes();
	_exit(3);
}

static void on_fatal_signal(int sig)
{
	kill_all_nodes();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void tn_init(void)
{
	if (initialised)
		return;
	initialised = true;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	atexit(kill_all_nodes);
}

/* ---------------------------------------------------------------------- */
/* Test cases                                                              */

int tn__setup(void **state)
{
	struct tn_case *tc = *state;
	tn_init();
	tc->passed = false;
	tc->node = NULL;
	current_case = tc;
	current_skipped = false;
	logs_dumped = false;
	alarm((unsigned)env_long("SPECTRA_TEST_TIMEOUT_S", 120));
	return 0;
}

void tn__run(void **state)
{
	struct tn_case *tc = *state;
	if (tc->start_node)
		tc->node = tn_node_start(NULL);
	tc->fn(state);
	tc->passed = true;
}

struct tn_node *tn_test_node(void **state)
{
	struct tn_case *tc = *state;
	assert_non_null(tc->node);
	return tc->node;
}

int tn__teardown(void **state)
{
	struct tn_case *tc = *state;
	int rc = 0;

	/* A node that died by itself is a failure even if every assertion
	 * held: bad input must never crash a node. */
	for (struct tn_node *n = reg_nodes; n != NULL; n = n->next) {
		if (n->pid > 0)
			tn_node_alive(n);
		if (n->crashed) {
			int st = n->exit_status;
			print_error("node on port %d exited during the test (%s %d)\n", n->port,
				    WIFSIGNALED(st) ? "signal" : "status",
				    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			rc = -1;
		}
	}
	/* Stop every live node the clean way and demand exit status 0: under
	 * `make check` spectrad is built with ASan/UBSan, so a leak or any
	 * sanitizer report at shutdown fails the test that ran the node. */
	for (struct tn_node *n = reg_nodes; n != NULL; n = n->next) {
		if (n->pid <= 0 || rc != 0 || !tc->passed)
			continue;
		pid_t pid = n->pid;
		kill(pid, SIGTERM);
		int64_t deadline = tn_now_ms() + STOP_TIMEOUT_MS;
		int st = 0;
		pid_t w;
		while ((w = waitpid(pid, &st, WNOHANG)) == 0 && tn_now_ms() < deadline)
			tn_sleep_ms(2);
		if (w != pid) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			print_error("node on port %d did not exit within %d ms of SIGTERM\n",
				    n->port, STOP_TIMEOUT_MS);
			rc = -1;
		} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			print_error(
			    "node on port %d did not shut down cleanly (%s %d): see its log "
			    "for a sanitizer report\n",
			    n->port, WIFSIGNALED(st) ? "signal" : "status",
			    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			rc = -1;
		}
		n->pid = 0;
		n->exit_status = st;
	}
	if ((rc != 0 || !tc->passed) && !current_skipped && !logs_dumped) {
		print_error("    (seed %u, against %s)\n", tn_seed(),
			    tn_against_redis() ? "redis" : "spectrad");
		dump_all_logs();
	}
	bool keep = (rc != 0 || !tc->passed) && getenv("SPECTRA_TEST_KEEP") != NULL;

	while (reg_raws != NULL)
		tn_raw_close(reg_raws);
	while (reg_conns != NULL)
		tn_disconnect(reg_conns->c);
	while (reg_nodes != NULL) {
		struct tn_node *n = reg_nodes;
		if (keep) {
			fprintf(stderr, "    kept %s\n", n->root);
			n->root[0] = '\0';
		}
		tn_node_free(n);
	}
	alarm(0);
	current_case = NULL;
	tc->node = NULL;
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Nodes                                                                   */

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	int port = -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static const char *spectrad_path(void)
{
	const char *p = getenv("SPECTRAD");
	return (p != NULL && *p != '\0') ? p : "bin/spectrad";
}

static const char *redis_server_path(void)
{
	const char *p = getenv("REDIS_SERVER");
	return (p != NULL && *p != '\0') ? p : "redis-server";
}

/* Argument vector under construction; strings are owned by the vector. */
struct argvec {
	char *v[160];
	int n;
};

static void av_add(struct argvec *a, const char *s)
{
	if (a->n < (int)(sizeof(a->v) / sizeof(a->v[0])) - 1)
		a->v[a->n++] = strdup(s);
	a->v[a->n] = NULL;
}

static void av_free(struct argvec *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

/* Canonical form of a setting name: lower case, '_' as '-'. */
static void canon_name(const char *in, char *out, size_t outlen)
{
	size_t i = 0;
	for (; in[i] != '\0' && i + 1 < outlen; i++)
		out[i] = in[i] == '_' ? '-' : (char)tolower((unsigned char)in[i]);
	out[i] = '\0';
}

/*
 * Translate one spectra setting into redis-server arguments. Returns 0, or
 * -1 with a message in why when Redis has no equivalent.
 */
static int redis_translate(struct argvec *a, const char *name, const char *value, char *why,
			   size_t whylen)
{
	char k[64];
	canon_name(name, k, sizeof(k));
	if (!strcmp(k, "requirepass") || !strcmp(k, "maxclients") || !strcmp(k, "timeout")) {
		av_add(a, strcmp(k, "requirepass") == 0	 ? "--requirepass"
			  : strcmp(k, "maxclients") == 0 ? "--maxclients"
							 : "--timeout");
		av_add(a, value);
	} else if (!strcmp(k, "max-bulk-len")) {
		av_add(a, "--proto-max-bulk-len");
		av_add(a, value);
	} else if (!strcmp(k, "max-query-buffer")) {
		av_add(a, "--client-query-buffer-limit");
		av_add(a, value);
	} else if (!strcmp(k, "max-output-buffer")) {
		char v[128];
		snprintf(v, sizeof(v), "normal %s %s 0", value, value);
		av_add(a, "--client-output-buffer-limit");
		av_add(a, v);
	} else if (!strcmp(k, "active-expire-hz")) {
		av_add(a, "--hz");
		av_add(a, value);
	} else if (!strcmp(k, "fsync")) {
		const char *mode = !strcmp(value, "always")  ? "always"
				   : !strcmp(value, "batch") ? "everysec"
				   : !strcmp(value, "off")   ? "no"
							     : NULL;
		if (mode == NULL) {
			snprintf(why, whylen, "fsync %s has no redis equivalent", value);
			return -1;
		}
		av_add(a, "--appendonly");
		av_add(a, "yes");
		av_add(a, "--appendfsync");
		av_add(a, mode);
	} else if (!strcmp(k, "map-size") || !strcmp(k, "fsync-interval-ms") ||
		   !strcmp(k, "loglevel")) {
		/* no effect on what a test can observe */
	} else {
		snprintf(why, whylen,
			 "setting '%s' has no redis-server equivalent: mark the test "
			 "TN_SPECTRA_ONLY",
			 name);
		return -1;
	}
	return 0;
}

static int build_argv(const struct tn_node *n, struct argvec *a, char *why, size_t whylen)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", n->port);
	a->n = 0;
	av_add(a, n->is_redis ? redis_server_path() : spectrad_path());
	av_add(a, "--bind");
	av_add(a, "127.0.0.1");
	av_add(a, "--port");
	av_add(a, port);
	av_add(a, "--dir");
	av_add(a, n->dir);
	av_add(a, "--pidfile");
	av_add(a, n->pid_path);
	if (n->is_redis) {
		static const char *const fixed[] = {"--save",	   "",	    "--appendonly", "no",
						    "--databases", "1",	    "--daemonize",  "no",
						    "--loglevel",  "notice"};
		for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
			av_add(a, fixed[i]);
	}
	for (int i = 0; i < n->nsettings; i++) {
		if (n->is_redis) {
			if (redis_translate(a, n->names[i], n->values[i], why, whylen) != 0)
				return -1;
		} else {
			char flag[80];
			snprintf(flag, sizeof(flag), "--%s", n->names[i]);
			av_add(a, flag);
			av_add(a, n->values[i]);
		}
	}
	return 0;
}

/* Fork and exec argv with stdout and stderr appended to log_path. */
static pid_t spawn(char *const *argv, const char *log_path)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* child */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(126);
	int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	int null = open("/dev/null", O_RDONLY);
	if (fd < 0 || null < 0)
		_exit(126);
	dup2(null, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	closefrom(3);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	alarm(0);
	execvp(argv[0], argv);
	dprintf(2, "[testnode] exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

static bool log_since_contains(const char *path, long from, const char *needle)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return false;
	fseek(f, from, SEEK_SET);
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strcasestr(line, needle) != NULL;
	fclose(f);
	return found;
}

static pid_t read_pidfile(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	long pid = 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

/* PING the node once; true on +PONG, or on -NOAUTH from a node that
 * wants a password (it is listening and serving). */
static bool ping_once(int port)
{
	struct timeval tv = {0, 250000};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	bool ok = false;
	if (c != NULL && c->err == 0) {
		struct timeval rt = {1, 0};
		redisSetTimeout(c, rt);
		redisReply *r = redisCommand(c, "PING");
		ok = r != NULL &&
		     ((r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0) ||
		      (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0));
		if (r != NULL)
			freeReplyObject(r);
	}
	if (c != NULL)
		redisFree(c);
	return ok;
}

enum start_result { START_OK, START_DIED, START_PORT_IN_USE, START_TIMEOUT };

/* Spawn the node's process and wait until it answers PING and has written
 * its pidfile. */
static enum start_result start_process(struct tn_node *n, char *why, size_t whylen)
{
	struct argvec a = {.n = 0};
	if (build_argv(n, &a, why, whylen) != 0) {
		av_free(&a);
		return START_DIED;
	}
	long log_from = file_size(n->log_path);
	FILE *lf = fopen(n->log_path, "a");
	if (lf != NULL) {
		fprintf(lf, "[testnode] start:");
		for (int i = 0; i < a.n; i++)
			fprintf(lf, " '%s'", a.v[i]);
		fprintf(lf, "\n");
		fclose(lf);
		log_from = file_size(n->log_path);
	}
	unlink(n->pid_path);
	n->crashed = false;
	n->pid = spawn(a.v, n->log_path);
	av_free(&a);
	if (n->pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		n->pid = 0;
		return START_DIED;
	}

	int64_t deadline = tn_now_ms() + env_long("SPECTRA_TEST_START_TIMEOUT_S", 20) * 1000;
	bool answered = false;
	while (tn_now_ms() < deadline) {
		int st;
		if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
			n->pid = 0;
			n->exit_status = st;
			bool in_use = log_since_contains(n->log_path, log_from, "in use");
			snprintf(why, whylen, "node exited during start-up (%s %d)",
				 WIFSIGNALED(st) ? "signal" : "status",
				 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			return in_use ? START_PORT_IN_USE : START_DIED;
		}
		if (!answered)
			answered = ping_once(n->port);
		if (answered && read_pidfile(n->pid_path) == n->pid)
			return START_OK;
		tn_sleep_ms(answered ? 5 : 10);
	}
	snprintf(why, whylen, "node did not %s within the start timeout",
		 answered ? "write its pidfile " : "answer PING");
	kill(n->pid, SIGKILL);
	waitpid(n->pid, &n->exit_status, 0);
	n->pid = 0;
	return START_TIMEOUT;
}

struct tn_node *tn_node_start_argv(int count, const char *const *names, const char *const *values)
{
	tn_init();
	struct tn_node *n = calloc(1, sizeof(*n));
	assert_non_null(n);
	n->is_redis = tn_against_redis();
	n->next = reg_nodes;
	reg_nodes = n;
	if (count > TN_MAX_SETTINGS)
		tn_fail("tn_node_start: more than %d settings", TN_MAX_SETTINGS);
	for (int i = 0; i < count; i++) {
		n->names[i] = strdup(names[i]);
		n->values[i] = strdup(values[i]);
	}
	n->nsettings = count;

	const char *tmp = getenv("TMPDIR");
	snprintf(n->root, sizeof(n->root), "%s/spectra-test-XXXXXX",
		 (tmp != NULL && *tmp != '\0') ? tmp : "/tmp");
	if (mkdtemp(n->root) == NULL) {
		n->root[0] = '\0';
		tn_fail("mkdtemp: %s", strerror(errno));
	}
	snprintf(n->dir, sizeof(n->dir), "%s/data", n->root);
	snprintf(n->log_path, sizeof(n->log_path), "%s/node.log", n->root);
	snprintf(n->pid_path, sizeof(n->pid_path), "%s/node.pid", n->root);
	if (mkdir(n->dir, 0755) != 0)
		tn_fail("mkdir %s: %s", n->dir, strerror(errno));

	char why[512] = "";
	for (int attempt = 0; attempt < START_RETRIES; attempt++) {
		n->port = free_port();
		if (n->port <= 0)
			tn_fail("no free port: %s", strerror(errno));
		enum start_result r = start_process(n, why, sizeof(why));
		if (r == START_OK)
			return n;
		if (r != START_PORT_IN_USE)
			break;
	}
	tn_fail("cannot start %s: %s", n->is_redis ? "redis-server" : spectrad_path(), why);
}

struct tn_node *tn_node_start(const char *name, ...)
{
	const char *names[TN_MAX_SETTINGS + 1];
	const char *values[TN_MAX_SETTINGS + 1];
	int count = 0;
	va_list ap;
	va_start(ap, name);
	for (const char *k = name; k != NULL; k = va_arg(ap, const char *)) {
		const char *v = va_arg(ap, const char *);
		if (v == NULL || count == TN_MAX_SETTINGS) {
			va_end(ap);
			tn_fail("tn_node_start: setting '%s' without a value, or too many", k);
		}
		names[count] = k;
		values[count] = v;
		count++;
	}
	va_end(ap);
	return tn_node_start_argv(count, names, values);
}

void tn_node_restart(struct tn_node *n)
{
	if (n->pid > 0)
		tn_node_stop(n);
	char why[512] = "";
	/* The port may still be held by a connection in TIME_WAIT on some
	 * systems; servers set SO_REUSEADDR, so retry briefly. */
	for (int attempt = 0; attempt < 20; attempt++) {
		enum start_result r = start_process(n, why, sizeof(why));
		if (r == START_OK)
			return;
		if (r != START_PORT_IN_USE)
			break;
		tn_sleep_ms(250);
	}
	tn_fail("cannot restart node on port %d: %s", n->port, why);
}

bool tn_node_alive(struct tn_node *n)
{
	if (n->pid <= 0)
		return false;
	int st;
	if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
		n->pid = 0;
		n->exit_status = st;
		n->crashed = true;
		return false;
	}
	return true;
}

int tn_node_stop(struct tn_node *n)
{
	if (n->pid <= 0)
		return n->exit_status;
	pid_t pid = n->pid;
	kill(pid, SIGTERM);
	int64_t deadline = tn_now_ms() + STOP_TIMEOUT_MS;
	int st = 0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (tn_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			n->pid = 0;
			n->exit_status = st;
			tn_fail("node on port %d did not exit within %d ms of SIGTERM", n->port,
				STOP_TIMEOUT_MS);
		}
		tn_sleep_ms(2);
	}
	n->pid = 0;
	n->exit_status = st;
	return st;
}

void tn_node_kill(struct tn_node *n)
{
	if (n->pid <= 0)
		return;
	kill(n->pid, SIGKILL);
	waitpid(n->pid, &n->exit_status, 0);
	n->pid = 0;
}

long tn_node_rss_kb(const struct tn_node *n)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)n->pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	long kb = -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

void tn_node_free(struct tn_node *n)
{
	if (n == NULL)
		return;
	for (struct tn_node **pp = &reg_nodes; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	tn_node_kill(n);
	tu_remove_tree(n->root);
	for (int i = 0; i < n->nsettings; i++) {
		free(n->names[i]);
		free(n->values[i]);
	}
	free(n);
}

int tn_run_spectrad(const char *const *args, char *out, size_t outlen, int timeout_ms)
{
	tn_init();
	char path[] = "/tmp/spectra-run-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		tn_fail("mkstemp: %s", strerror(errno));
	close(fd);
	struct argvec a = {.n = 0};
	av_add(&a, tn_against_redis() ? redis_server_path() : spectrad_path());
	for (int i = 0; args[i] != NULL; i++)
		av_add(&a, args[i]);
	pid_t pid = spawn(a.v, path);
	av_free(&a);
	int st = -1;
	int64_t deadline = tn_now_ms() + timeout_ms;
	for (;;) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		if (tn_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			st = -1;
			break;
		}
		tn_sleep_ms(5);
	}
	if (outlen > 0) {
		out[0] = '\0';
		FILE *f = fopen(path, "r");
		if (f != NULL) {
			size_t got = fread(out, 1, outlen - 1, f);
			out[got] = '\0';
			fclose(f);
		}
	}
	unlink(path);
	return st;
}

/* ---------------------------------------------------------------------- */
/* hiredis clients                                                         */

redisContext *tn_connect(const struct tn_node *n)
{
	struct timeval tv = {IO_TIMEOUT_MS / 1000, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", n->port, tv);
	if (c == NULL || c->err != 0) {
		char err[256];
		snprintf(err, sizeof(err), "%s", c != NULL ? c->errstr : "out of memory");
		if (c != NULL)
			redisFree(c);
		tn_fail("cannot connect to 127.0.0.1:%d: %s", n->port, err);
	}
	redisSetTimeout(c, tv);
	struct conn_entry *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	e->c = c;
	e->next = reg_conns;
	reg_conns = e;
	return c;
}

void tn_disconnect(redisContext *c)
{
	if (c == NULL)
		return;
	for (struct conn_entry **pp = &reg_conns; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->c == c) {
			struct conn_entry *e = *pp;
			*pp = e->next;
			free(e);
			break;
		}
	}
	redisFree(c);
}

void tn_reply_describe(const redisReply *r, char *out, size_t outlen)
{
	char esc[512];
	if (r == NULL) {
		snprintf(out, outlen, "(no reply: connection error)");
		return;
	}
	switch (r->type) {
	case REDIS_REPLY_STATUS:
		snprintf(out, outlen, "status \"%s\"", tn_escape(r->str, r->len, esc, sizeof(esc)));
		break;
	case REDIS_REPLY_ERROR:
		snprintf(out, outlen, "error \"%s\"", tn_escape(r->str, r->len, esc, sizeof(esc)));
		break;
	case REDIS_REPLY_STRING:
		snprintf(out, outlen, "bulk(%zu) \"%s\"", r->len,
			 tn_escape(r->str, r->len, esc, sizeof(esc)));
		break;
	case REDIS_REPLY_INTEGER:
		snprintf(out, outlen, "integer %lld", r->integer);
		break;
	case REDIS_REPLY_NIL:
		snprintf(out, outlen, "nil");
		break;
	case REDIS_REPLY_ARRAY: {
		size_t o = (size_t)snprintf(out, outlen, "array(%zu) [", r->elements);
		for (size_t i = 0; i < r->elements && i < 8 && o < outlen; i++) {
			char el[256];
			tn_reply_describe(r->element[i], el, sizeof(el));
			o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", el);
		}
		if (o < outlen)
			snprintf(out + o, outlen - o, "%s]", r->elements > 8 ? ", ..." : "");
		break;
	}
	default:
		snprintf(out, outlen, "reply type %d", r->type);
	}
}

redisReply *tn__command(const char *file, int line, redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (r == NULL)
		tn__fail(file, line, "command \"%s\": no reply: %s", fmt, c->errstr);
	return r;
}

redisReply *tn__command_argv(const char *file, int line, redisContext *c, int argc,
			     const char **argv, const size_t *lens)
{
	redisReply *r = redisCommandArgv(c, argc, argv, lens);
	if (r == NULL)
		tn__fail(file, line, "command \"%s ...\": no reply: %s", argc > 0 ? argv[0] : "",
			 c->errstr);
	return r;
}

/* Run a command from a va_list; fail at file:line if there is no reply. */
static redisReply *vcommand(const char *file, int line, redisContext *c, const char *fmt,
			    va_list ap)
{
	redisReply *r = redisvCommand(c, fmt, ap);
	if (r == NULL)
		tn__fail(file, line, "command \"%s\": no reply: %s", fmt, c->errstr);
	return r;
}

static void __attribute__((noreturn))
mismatch(const char *file, int line, const char *fmt, redisReply *r, const char *want)
{
	char got[1024];
	tn_reply_describe(r, got, sizeof(got));
	freeReplyObject(r);
	tn__fail(file, line, "command \"%s\":\n      expected %s\n      got      %s", fmt, want,
		 got);
}

void tn__expect_status(const char *file, int line, redisContext *c, const char *want,
		       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = vcommand(file, line, c, fmt, ap);
	va_end(ap);
	if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, want) != 0) {
		char w[512];
		snprintf(w, sizeof(w), "status \"%s\"", want);
		mismatch(file, line, fmt, r, w);
	}
	freeReplyObject(r);
}

void tn__expect_int(const char *file, int line, redisContext *c, long long want, const char *fmt,
		    ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = vcommand(file, line, c, fmt, ap);
	va_end(ap);
	if (r->type != REDIS_REPLY_INTEGER || r->integer != want) {
		char w[64];
		snprintf(w, sizeof(w), "integer %lld", want);
		mismatch(file, line, fmt, r, w);
	}
	freeReplyObject(r);
}

void tn__expect_bulk(const char *file, int line, redisContext *c, const char *want, size_t len,
		     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = vcommand(file, line, c, fmt, ap);
	va_end(ap);
	if (r->type != REDIS_REPLY_STRING || r->len != len || memcmp(r->str, want, len) != 0) {
		char w[600], esc[512];
		snprintf(w, sizeof(w), "bulk(%zu) \"%s\"", len,
			 tn_escape(want, len, esc, sizeof(esc)));
		mismatch(file, line, fmt, r, w);
	}
	freeReplyObject(r);
}

void tn__expect_nil(const char *file, int line, redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = vcommand(file, line, c, fmt, ap);
	va_end(ap);
	if (r->type != REDIS_REPLY_NIL)
		mismatch(file, line, fmt, r, "nil");
	freeReplyObject(r);
}

void tn__expect_error(const char *file, int line, redisContext *c, const char *want, bool prefix,
		      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = vcommand(file, line, c, fmt, ap);
	va_end(ap);
	bool ok = r->type == REDIS_REPLY_ERROR &&
		  (prefix ? strncmp(r->str, want, strlen(want)) == 0 : strcmp(r->str, want) == 0);
	if (!ok) {
		char w[512];
		snprintf(w, sizeof(w), "error \"%s%s\"", want, prefix ? "..." : "");
		mismatch(file, line, fmt, r, w);
	}
	freeReplyObject(r);
}

void tn__expect_array_len(const char *file, int line, redisContext *c, size_t n, const char *fmt,
			  ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = vcommand(file, line, c, fmt, ap);
	va_end(ap);
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		char w[64];
		snprintf(w, sizeof(w), "array of %zu", n);
		mismatch(file, line, fmt, r, w);
	}
	freeReplyObject(r);
}

/* ---------------------------------------------------------------------- */
/* Raw sockets                                                             */

struct tn_raw *tn_raw_connect(const struct tn_node *n)
{
	tn_init();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		tn_fail("socket: %s", strerror(errno));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)n->port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;
		close(fd);
		tn_fail("connect 127.0.0.1:%d: %s", n->port, strerror(e));
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {IO_TIMEOUT_MS / 1000, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct tn_raw *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->fd = fd;
	r->next = reg_raws;
	reg_raws = r;
	return r;
}

void tn_raw_close(struct tn_raw *r)
{
	if (r == NULL)
		return;
	for (struct tn_raw **pp = &reg_raws; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	free(r);
}

void tn__raw_send(const char *file, int line, struct tn_raw *r, const void *p, size_t len)
{
	const char *s = p;
	while (len > 0) {
		ssize_t w = send(r->fd, s, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			tn__fail(file, line, "raw send: %s",
				 w < 0 ? strerror(errno) : "short write");
		s += w;
		len -= (size_t)w;
	}
}

size_t tn_raw_send_for(struct tn_raw *r, const void *p, size_t len, int ms, size_t max_bytes)
{
	const char *s = p;
	size_t off = 0, total = 0;
	int64_t deadline = tn_now_ms() + ms;
	while (total < max_bytes) {
		int64_t left = deadline - tn_now_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = {.fd = r->fd, .events = POLLOUT};
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			break;
		if (pfd.revents & (POLLERR | POLLHUP))
			break;
		size_t chunk = len - off;
		if (chunk > max_bytes - total)
			chunk = max_bytes - total;
		ssize_t w = send(r->fd, s + off, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			break;
		}
		total += (size_t)w;
		off = (off + (size_t)w) % len;
	}
	return total;
}

/* Parse the decimal in p[0..len) (optional '-'); false if not one. */
static bool parse_num(const char *p, size_t len, long long *out)
{
	if (len == 0 || len > 20)
		return false;
	char tmp[24];
	memcpy(tmp, p, len);
	tmp[len] = '\0';
	char *end;
	errno = 0;
	long long v = strtoll(tmp, &end, 10);
	if (*end != '\0' || errno != 0)
		return false;
	*out = v;
	return true;
}

/* Frame the value at p[pos..len): its end offset, 0 if incomplete, or
 * (size_t)-1 if malformed. */
static size_t frame_at(const char *p, size_t len, size_t pos, int depth)
{
	const size_t BAD = (size_t)-1;
	if (depth > 64)
		return BAD;
	if (pos >= len)
		return 0;
	const char *cr = memchr(p + pos, '\r', len - pos);
	if (cr == NULL || (size_t)(cr - p) + 1 >= len)
		return 0;
	if (cr[1] != '\n')
		return BAD;
	size_t line_end = (size_t)(cr - p); /* index of '\r' */
	const char *body = p + pos + 1;
	size_t blen = line_end - pos - 1;
	size_t next = line_end + 2;
	long long n;
	switch (p[pos]) {
	case '+':
	case '-':
	case ':':
	case ',':
	case '(':
		return next;
	case '_':
		return blen == 0 ? next : BAD;
	case '#':
		return (blen == 1 && (body[0] == 't' || body[0] == 'f')) ? next : BAD;
	case '$':
	case '!':
	case '=':
		if (!parse_num(body, blen, &n) || n < -1 || (n == -1 && p[pos] != '$'))
			return BAD;
		if (n == -1)
			return next;
		if (len - next < (size_t)n + 2)
			return 0;
		if (p[next + (size_t)n] != '\r' || p[next + (size_t)n + 1] != '\n')
			return BAD;
		return next + (size_t)n + 2;
	case '*':
	case '~':
	case '>':
	case '%':
	case '|': {
		if (!parse_num(body, blen, &n) || n < -1 || (n == -1 && p[pos] != '*'))
			return BAD;
		long long elems = (p[pos] == '%' || p[pos] == '|') ? 2 * n : n;
		size_t at = next;
		for (long long i = 0; i < elems; i++) {
			at = frame_at(p, len, at, depth + 1);
			if (at == 0 || at == BAD)
				return at;
		}
		/* An attribute frames together with the value it annotates. */
		if (p[pos] == '|')
			return frame_at(p, len, at, depth + 1);
		return at;
	}
	default:
		return BAD;
	}
}

size_t tn_resp_frame(const char *p, size_t len)
{
	return frame_at(p, len, 0, 0);
}

char *tn__raw_read_reply(const char *file, int line, struct tn_raw *r, size_t *lenp)
{
	for (;;) {
		size_t n = tn_resp_frame(r->buf, r->len);
		if (n == (size_t)-1) {
			char esc[512];
			tn__fail(file, line, "raw reply is not RESP: \"%s\"",
				 tn_escape(r->buf, r->len, esc, sizeof(esc)));
		}
		if (n > 0) {
			char *out = malloc(n + 1);
			assert_non_null(out);
			memcpy(out, r->buf, n);
			out[n] = '\0';
			memmove(r->buf, r->buf + n, r->len - n);
			r->len -= n;
			if (lenp != NULL)
				*lenp = n;
			return out;
		}
		if (r->cap - r->len < 65536) {
			r->cap = r->cap * 2 + 65536;
			r->buf = realloc(r->buf, r->cap);
			assert_non_null(r->buf);
		}
		ssize_t got = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got == 0 || (got < 0 && errno == ECONNRESET)) {
			if (r->len > 0) {
				char esc[512];
				tn__fail(file, line,
					 "connection closed in the middle of a reply: \"%s\"",
					 tn_escape(r->buf, r->len, esc, sizeof(esc)));
			}
			return NULL;
		}
		if (got < 0) {
			char esc[512];
			tn__fail(file, line, "raw read: %s (have \"%s\")",
				 (errno == EAGAIN || errno == EWOULDBLOCK) ? "timed out"
									   : strerror(errno),
				 tn_escape(r->buf, r->len, esc, sizeof(esc)));
		}
		r->len += (size_t)got;
	}
}

void tn__raw_expect(const char *file, int line, struct tn_raw *r, const char *want, size_t len)
{
	size_t got_len = 0;
	char *got = tn__raw_read_reply(file, line, r, &got_len);
	char ew[1024], eg[1024];
	if (got == NULL)
		tn__fail(file, line, "raw: expected \"%s\", got the connection closed",
			 tn_escape(want, len, ew, sizeof(ew)));
	if (got_len != len || memcmp(got, want, len) != 0) {
		tn_escape(want, len, ew, sizeof(ew));
		tn_escape(got, got_len, eg, sizeof(eg));
		free(got);
		tn__fail(file, line,
			 "raw reply mismatch:\n      expected \"%s\"\n      got      \"%s\"", ew,
			 eg);
	}
	free(got);
}

bool tn_raw_closed(struct tn_raw *r, int timeout_ms)
{
	int64_t deadline = tn_now_ms() + timeout_ms;
	char sink[65536];
	for (;;) {
		int64_t left = deadline - tn_now_ms();
		if (left <= 0)
			return false;
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return false;
		ssize_t got = recv(r->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (got == 0 || (got < 0 && errno == ECONNRESET))
			return true;
		if (got < 0 && errno != EAGAIN && errno != EINTR)
			return true;
	}
}
