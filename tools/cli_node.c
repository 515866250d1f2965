/*
 * cli_node: `spectra node start|stop|status`. See cli_node.h.
 *
 * The commands only: their flags, their messages and exit codes, and the
 * status report. Launching, waiting and stopping are local_node's.
 */
#include "cli_node.h"

#include "cli.h"
#include "local_node.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/err.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_DIR  "./spectra-data"
#define START_WAIT_S 10.0 /* for PING after launch */
#define STOP_WAIT_S  10.0 /* after SIGTERM, before SIGKILL */

/* ---- start ------------------------------------------------------------- */

/* last_flag_value returns the value of the last --name in args, or NULL. */
static const char *last_flag_value(int argc, char **argv, const char *name)
{
	const char *value = NULL;
	for (int i = 0; i < argc; i++) {
		if (!cli_is_flag(argv[i], name))
			continue;
		const char *eq = strchr(argv[i], '=');
		if (eq)
			value = eq + 1;
		else if (i + 1 < argc)
			value = argv[++i];
	}
	return value;
}

static bool has_flag(int argc, char **argv, const char *name)
{
	for (int i = 0; i < argc; i++)
		if (cli_is_flag(argv[i], name))
			return true;
	return false;
}

static int node_start(const char *path, int argc, char **argv)
{
	const char *dir = DEFAULT_DIR, *port = NULL, *bind = NULL, *config = NULL;
	const char *spectrad_flag = NULL, *wait_text = NULL;
	const struct cli_flag flags[] = {
	    {"dir", "DIR", "data directory (default " DEFAULT_DIR ")", &dir, NULL},
	    {"port", "PORT", "client port (default 7379, or the --config file's)", &port, NULL},
	    {"bind", "ADDR", "listen address (default 127.0.0.1, or the --config file's)", &bind,
	     NULL},
	    {"config", "FILE", "spectrad settings file", &config, NULL},
	    {"spectrad", "PATH",
	     "server binary (default $SPECTRAD, else the one beside spectra, "
	     "else PATH)",
	     &spectrad_flag, NULL},
	    {"wait", "SECONDS", "how long to wait for the node to answer (default 10)", &wait_text,
	     NULL},
	};
	const struct cli_spec spec = {
	    path,
	    "[--dir DIR] [--port PORT] [--bind ADDR] [--config FILE] [--spectrad PATH]\n"
	    "       [--wait SECONDS] [-- SPECTRAD-FLAGS...]",
	    "Start spectrad in the background with its data, pidfile (spectrad.pid) and log\n"
	    "(spectrad.log) in DIR, and wait until it answers PING. The address is saved in\n"
	    "DIR/node.conf, so 'stop' and 'status' need only --dir. Flags after '--' go to\n"
	    "spectrad as they are (e.g. -- --fsync batch --maxclients 100); run 'spectrad --help'\n"
	    "for the list.\n"
	    "\n"
	    "Exit status: 0 started; 1 already running, or spectrad failed to start (its\n"
	    "last log lines are shown); 2 usage error.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    "flags passed to spectrad as they are",
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code;
	int nextra = argc - rest;
	char **extra = argv + rest;

	double wait_s = START_WAIT_S;
	if (wait_text && !cli_parse_seconds(wait_text, &wait_s))
		return cli_usage_error(path, "--wait: '%s' is not a number of seconds", wait_text);
	if (!*dir)
		return cli_usage_error(path, "--dir must not be empty");
	static const char *const owned[] = {"dir", "pidfile", "logfile"};
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
		if (has_flag(nextra, extra, owned[i]))
			return cli_usage_error(path,
					       "--%s is set by 'spectra node start' and cannot be "
					       "passed after '--'%s",
					       owned[i], i == 0 ? "; use --dir" : "");

	int rc = CLI_EXIT_FAIL, err_code;
	char err[512], addr[300], port_text[16];
	struct sp_config eff;
	struct local_node node = {0};
	struct local_node_addr a;
	char *config_abs = NULL, *spectrad = NULL;
	char **args = NULL;
	pid_t pid;
	sp_config_init(&eff);

	/*
	 * Work out the address spectrad will listen on, as spectrad will:
	 * its settings file, then our flags, then the flags after "--". Bad
	 * values in the file or after "--" are left for spectrad to report in
	 * its own words; ours are checked here.
	 */
	if (config) {
		config_abs = realpath(config, NULL);
		if (!config_abs)
			config_abs = sp_strdup(config);
		(void)sp_config_load_file(&eff, config_abs, NULL, 0);
	}
	if (port && sp_config_set(&eff, "port", port, err, sizeof(err)) != 0) {
		rc = cli_usage_error(path, "--%s", err);
		goto free_config;
	}
	if (bind && sp_config_set(&eff, "bind", bind, err, sizeof(err)) != 0) {
		rc = cli_usage_error(path, "--%s", err);
		goto free_config;
	}
	const char *extra_port = last_flag_value(nextra, extra, "port");
	const char *extra_bind = last_flag_value(nextra, extra, "bind");
	if (extra_port)
		(void)sp_config_set(&eff, "port", extra_port, NULL, 0);
	if (extra_bind)
		(void)sp_config_set(&eff, "bind", extra_bind, NULL, 0);

	err_code = local_node_mkdir(dir);
	if (err_code != 0) {
		cli_error("cannot create %s: %s", dir, sp_strerror(err_code));
		goto free_config;
	}
	local_node_init(&node, dir);

	switch (local_node_state(&node, &pid)) {
	case LOCAL_NODE_RUNNING:
		cli_error("node already running (pid %d, dir %s)", (int)pid, node.dir);
		goto close_dir;
	case LOCAL_NODE_STALE:
		unlink(node.pidfile); /* left by a node that was killed */
		break;
	case LOCAL_NODE_STOPPED:
		break;
	}

	local_node_addr_set(&a, eff.bind, eff.port);
	local_node_addr_text(&a, addr, sizeof(addr));
	if (local_node_answers(&a)) {
		cli_error("something already answers on %s; choose another --port", addr);
		goto close_dir;
	}
	err_code = local_node_addr_write(&node, eff.port, eff.bind);
	if (err_code != 0) {
		cli_error("cannot write %s: %s", node.nodeconf, sp_strerror(err_code));
		goto close_dir;
	}

	/* spectrad --dir D --port P --bind A --pidfile F --logfile L
	 *          [--config C] extra... */
	spectrad = local_node_find_spectrad(spectrad_flag);
	snprintf(port_text, sizeof(port_text), "%d", eff.port);
	args = sp_calloc((size_t)nextra + 16, sizeof(*args));
	int n = 0;
	args[n++] = spectrad;
	args[n++] = "--dir";
	args[n++] = node.dir;
	args[n++] = "--port";
	args[n++] = port_text;
	args[n++] = "--bind";
	args[n++] = eff.bind;
	args[n++] = "--pidfile";
	args[n++] = node.pidfile;
	args[n++] = "--logfile";
	args[n++] = node.logfile;
	if (config_abs) {
		args[n++] = "--config";
		args[n++] = config_abs;
	}
	for (int i = 0; i < nextra; i++)
		args[n++] = extra[i];
	args[n] = NULL;

	/* Only what this start appends to the log is shown if it fails. */
	struct stat st;
	off_t log_from = stat(node.logfile, &st) == 0 ? st.st_size : 0;
	pid_t child = local_node_launch(args, node.logfile);
	if (child < 0)
		goto free_args;
	if (local_node_wait_ready(child, &node, &a, wait_s, log_from) != 0)
		goto free_args;
	printf("spectra: node started (pid %d, %s, dir %s)\n", (int)child, addr, node.dir);
	rc = CLI_EXIT_OK;

free_args:
	free(args);
	free(spectrad);
close_dir:
	local_node_close(&node);
free_config:
	free(config_abs);
	sp_config_free(&eff);
	return rc;
}

/* ---- stop -------------------------------------------------------------- */

static int node_stop(const char *path, int argc, char **argv)
{
	const char *dir = DEFAULT_DIR, *timeout_text = NULL;
	const struct cli_flag flags[] = {
	    {"dir", "DIR", "data directory (default " DEFAULT_DIR ")", &dir, NULL},
	    {"timeout", "SECONDS", "wait this long after SIGTERM before SIGKILL (default 10)",
	     &timeout_text, NULL},
	};
	const struct cli_spec spec = {
	    path,
	    "[--dir DIR] [--timeout SECONDS]",
	    "Stop the node whose data is in DIR: send SIGTERM to the pid in DIR/spectrad.pid,\n"
	    "wait for it to exit, and send SIGKILL if it has not within the timeout.\n"
	    "\n"
	    "Exit status: 0 stopped, or was not running (stopping a stopped node is not an\n"
	    "error; the message says 'not running'), or was killed after the timeout (the\n"
	    "message says so); 1 the process could not be signalled or would not die;\n"
	    "2 usage error.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code;
	double timeout_s = STOP_WAIT_S;
	if (timeout_text && !cli_parse_seconds(timeout_text, &timeout_s))
		return cli_usage_error(path, "--timeout: '%s' is not a number of seconds",
				       timeout_text);

	int rc = CLI_EXIT_FAIL;
	struct local_node node;
	local_node_init(&node, dir);
	pid_t pid;
	switch (local_node_state(&node, &pid)) {
	case LOCAL_NODE_STOPPED:
		printf("spectra: node not running (dir %s)\n", node.dir);
		rc = CLI_EXIT_OK;
		goto close_dir;
	case LOCAL_NODE_STALE:
		unlink(node.pidfile);
		printf("spectra: node not running (dir %s; removed a stale pidfile)\n", node.dir);
		rc = CLI_EXIT_OK;
		goto close_dir;
	case LOCAL_NODE_RUNNING:
		break;
	}

	bool killed;
	int err = local_node_stop(&node, pid, timeout_s, &killed);
	if (err == SP_ERR_AGAIN) {
		cli_error("pid %d is still alive after SIGKILL", (int)pid);
		goto close_dir;
	}
	if (err != 0) {
		cli_error("cannot stop pid %d: %s", (int)pid, sp_strerror(err));
		goto close_dir;
	}
	if (killed)
		printf("spectra: node did not stop within %g s; killed it (pid %d, dir %s)\n",
		       timeout_s, (int)pid, node.dir);
	else
		printf("spectra: node stopped (pid %d, dir %s)\n", (int)pid, node.dir);
	rc = CLI_EXIT_OK;
close_dir:
	local_node_close(&node);
	return rc;
}

/* ---- status ------------------------------------------------------------ */

struct node_report {
	enum local_node_state state;
	pid_t pid;
	struct local_node_addr addr;
	bool answering;
	char error[256]; /* why it is not answering, or why INFO failed */
	double ping_ms;
	char spectra_version[64]; /* "" from a server that is not spectrad */
	char redis_version[64];	  /* the Redis version it claims to be */
	long long uptime_s;	  /* -1 where unknown */
	long long clients;
	long long keys;
	char fsync[32];
};

/* info_field copies field `key` of an INFO reply into out; false if absent. */
static bool info_field(const char *info, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	for (const char *line = info; line && *line;) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			const char *v = line + klen + 1;
			size_t vlen = strcspn(v, "\r\n");
			if (vlen >= outlen)
				vlen = outlen - 1;
			memcpy(out, v, vlen);
			out[vlen] = '\0';
			return true;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return false;
}

static long long info_number(const char *info, const char *key)
{
	char v[32];
	if (!info_field(info, key, v, sizeof(v)))
		return -1;
	char *end;
	long long n = strtoll(v, &end, 10);
	return end != v && n >= 0 ? n : -1;
}

/* inspect asks a running node how it is doing, filling r. */
static void inspect(struct node_report *r)
{
	char err[256];
	redisContext *ctx = local_node_connect(&r->addr, 2000, err, sizeof(err));
	if (!ctx) {
		snprintf(r->error, sizeof(r->error), "%s", err);
		return;
	}
	const struct sp_clock *clock = sp_clock_system();
	uint64_t t0 = sp_mono_ns(clock);
	redisReply *reply = redisCommand(ctx, "PING");
	r->ping_ms = (double)(sp_mono_ns(clock) - t0) / 1e6;
	if (!reply) {
		snprintf(r->error, sizeof(r->error), "%s", ctx->errstr);
		goto free_ctx;
	}
	r->answering = true;
	freeReplyObject(reply);

	reply = redisCommand(ctx, "INFO");
	if (reply && reply->type == REDIS_REPLY_STRING) {
		info_field(reply->str, "spectra_version", r->spectra_version,
			   sizeof(r->spectra_version));
		info_field(reply->str, "redis_version", r->redis_version, sizeof(r->redis_version));
		r->uptime_s = info_number(reply->str, "uptime_in_seconds");
		r->clients = info_number(reply->str, "connected_clients");
	} else if (reply && reply->type == REDIS_REPLY_ERROR) {
		snprintf(r->error, sizeof(r->error), "INFO: %s", reply->str);
	}
	if (reply)
		freeReplyObject(reply);

	reply = redisCommand(ctx, "DBSIZE");
	if (reply && reply->type == REDIS_REPLY_INTEGER)
		r->keys = reply->integer;
	if (reply)
		freeReplyObject(reply);

	reply = redisCommand(ctx, "CONFIG GET fsync");
	if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
	    reply->element[1]->type == REDIS_REPLY_STRING)
		snprintf(r->fsync, sizeof(r->fsync), "%s", reply->element[1]->str);
	if (reply)
		freeReplyObject(reply);
free_ctx:
	redisFree(ctx);
}

static void print_json(const struct node_report *r, const char *dir)
{
	char addr[300];
	printf("{\"running\":%s,\"pid\":", r->state == LOCAL_NODE_RUNNING ? "true" : "false");
	cli_json_number(r->state == LOCAL_NODE_RUNNING ? (long long)r->pid : -1);
	printf(",\"dir\":");
	cli_json_string(dir);
	printf(",\"address\":");
	cli_json_string(local_node_addr_text(&r->addr, addr, sizeof(addr)));
	printf(",\"host\":");
	cli_json_string(r->addr.host);
	printf(",\"port\":%d,\"answering\":%s,\"ping_ms\":", r->addr.port,
	       r->answering ? "true" : "false");
	if (r->answering)
		printf("%.3f", r->ping_ms);
	else
		fputs("null", stdout);
	printf(",\"spectra_version\":");
	cli_json_string(r->spectra_version);
	printf(",\"redis_version\":");
	cli_json_string(r->redis_version);
	printf(",\"uptime_s\":");
	cli_json_number(r->uptime_s);
	printf(",\"connected_clients\":");
	cli_json_number(r->clients);
	printf(",\"keys\":");
	cli_json_number(r->keys);
	printf(",\"fsync\":");
	cli_json_string(r->fsync);
	printf(",\"error\":");
	cli_json_string(r->error);
	printf("}\n");
}

static void print_uptime(long long s)
{
	if (s < 0) {
		printf("?\n");
		return;
	}
	if (s >= 86400)
		printf("%lldd ", s / 86400);
	if (s >= 3600)
		printf("%lldh ", s / 3600 % 24);
	if (s >= 60)
		printf("%lldm ", s / 60 % 60);
	printf("%llds\n", s % 60);
}

static void print_count(const char *label, long long v)
{
	if (v >= 0)
		printf("%s%lld\n", label, v);
	else
		printf("%s?\n", label);
}

static void print_text(const struct node_report *r, const char *dir)
{
	char addr[300];
	local_node_addr_text(&r->addr, addr, sizeof(addr));
	if (r->state != LOCAL_NODE_RUNNING) {
		printf("status:   not running%s\n",
		       r->state == LOCAL_NODE_STALE ? " (stale pidfile)" : "");
		printf("dir:      %s\n", dir);
		return;
	}
	printf("status:   running (pid %d)%s\n", (int)r->pid,
	       r->answering ? "" : ", not answering");
	printf("address:  %s\n", addr);
	printf("dir:      %s\n", dir);
	if (!r->answering) {
		printf("error:    %s\n", r->error);
		return;
	}
	printf("ping:     %.3f ms\n", r->ping_ms);
	if (r->error[0])
		printf("error:    %s\n", r->error);
	if (r->spectra_version[0])
		printf("version:  spectra %s", r->spectra_version);
	else if (r->redis_version[0])
		printf("version:  not spectrad");
	else
		printf("version:  ?");
	if (r->redis_version[0])
		printf(" (redis_version %s)", r->redis_version);
	printf("\nuptime:   ");
	print_uptime(r->uptime_s);
	print_count("clients:  ", r->clients);
	print_count("keys:     ", r->keys);
	printf("fsync:    %s\n", r->fsync[0] ? r->fsync : "?");
}

static int node_status(const char *path, int argc, char **argv)
{
	const char *dir = DEFAULT_DIR;
	bool json = false;
	const struct cli_flag flags[] = {
	    {"dir", "DIR", "data directory (default " DEFAULT_DIR ")", &dir, NULL},
	    {"json", NULL, "print one JSON object instead of text", NULL, &json},
	};
	const struct cli_spec spec = {
	    path,
	    "[--dir DIR] [--json]",
	    "Say whether the node whose data is in DIR is running and, if it is, how it is\n"
	    "doing: PING latency, version, uptime, clients, keys (DBSIZE) and fsync.\n"
	    "With --json, one object: running, pid, dir, address, host, port, answering,\n"
	    "ping_ms, spectra_version, redis_version, uptime_s, connected_clients, keys,\n"
	    "fsync, error (null where unknown).\n"
	    "\n"
	    "Exit status: 0 running and answering; 1 running but not answering; 2 usage\n"
	    "error; 3 not running.",
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};
	int rest, code;
	if (!cli_parse(&spec, argc, argv, &rest, &code))
		return code;

	struct local_node node;
	local_node_init(&node, dir);
	struct node_report r = {.uptime_s = -1, .clients = -1, .keys = -1};
	r.state = local_node_state(&node, &r.pid);
	local_node_addr_read(&node, &r.addr);
	if (r.state == LOCAL_NODE_RUNNING)
		inspect(&r);
	if (json)
		print_json(&r, node.dir);
	else
		print_text(&r, node.dir);
	local_node_close(&node);
	if (r.state != LOCAL_NODE_RUNNING)
		return CLI_EXIT_NOT_RUNNING;
	return r.answering ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- the group --------------------------------------------------------- */

static const struct cli_command node_commands[] = {
    {"start", "start spectrad in the background and wait until it answers", node_start},
    {"stop", "stop the node (SIGTERM, then SIGKILL after a timeout)", node_stop},
    {"status", "is the node running, and how is it doing", node_status},
};

int cli_node_main(const char *path, int argc, char **argv)
{
	return cli_dispatch(path, "Start, stop and inspect one spectrad node on this machine.",
			    node_commands, sizeof(node_commands) / sizeof(node_commands[0]), argc,
			    argv);
}
