/*
 * spectrad: one spectra node.
 *
 * Reads settings (file and flags), opens the store, serves the client port
 * on one libuv loop until SIGTERM/SIGINT or SHUTDOWN, then commits, syncs
 * and exits 0. A bad setting or an unusable data directory is reported on
 * stderr and exits 1 before anything listens.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "server/server.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: spectrad [--config FILE] [--<setting> <value> ...]\n"
		     "       spectrad --help | --version\n\n"
		     "Settings (also accepted as 'name value' lines in the config file):\n");
	for (size_t i = 0; i < sp_config_count(); i++)
		fprintf(out, "  --%-20s %s\n", sp_config_name(i), sp_config_help(i));
}

static int write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "%d\n", (int)getpid());
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

/* Where the SIGBUS handler writes (async-signal-safe: plain fds). */
static int fatal_fds[2] = {2, -1};

/*
 * The store writes into LMDB's memory map; when the filesystem cannot back
 * a page (the disk is full) the kernel raises SIGBUS at that write. Every
 * acknowledged write is already safe by then (committed pages had their
 * blocks; the write-ahead log holds the rest), so the node says why and
 * stops instead of dying silently.
 */
static void on_sigbus(int sig)
{
	static const char msg[] =
	    "spectrad: fatal: a write into the data file's memory map failed (SIGBUS): the "
	    "disk is probably full. Acknowledged writes are safe; free space and restart.\n";
	for (int i = 0; i < 2; i++)
		if (fatal_fds[i] >= 0 && write(fatal_fds[i], msg, sizeof(msg) - 1) < 0)
			continue;
	signal(sig, SIG_DFL);
	_exit(70); /* EX_SOFTWARE */
}

static enum sp_log_level parse_level(const char *s)
{
	if (strcmp(s, "debug") == 0)
		return SP_LOG_DEBUG;
	if (strcmp(s, "warn") == 0)
		return SP_LOG_WARN;
	if (strcmp(s, "error") == 0)
		return SP_LOG_ERROR;
	return SP_LOG_INFO;
}

static void close_handle(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int main(int argc, char **argv)
{
	int status = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-v") == 0) {
			printf("spectrad %s (libuv %s)\n", SPECTRA_VERSION, uv_version_string());
			return 0;
		}
	}

	struct sp_config cfg;
	sp_config_init(&cfg);
	char err[512];
	if (sp_config_load_args(&cfg, argc - 1, argv + 1, err, sizeof(err)) != 0) {
		fprintf(stderr, "spectrad: %s\n", err);
		fprintf(stderr,
			"spectrad: see 'spectrad --help' for every setting and its range\n");
		goto free_config;
	}
	const char *config_file = NULL; /* for INFO; "--config F" or "--config=F" */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config_file = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			config_file = argv[i] + 9;
	}

	FILE *logf = NULL;
	if (cfg.logfile[0]) {
		logf = fopen(cfg.logfile, "a");
		if (!logf) {
			fprintf(stderr, "spectrad: logfile %s: %s\n", cfg.logfile, strerror(errno));
			goto free_config;
		}
	}
	sp_log_setup(parse_level(cfg.loglevel), logf);
	signal(SIGPIPE, SIG_IGN);
	if (logf)
		fatal_fds[1] = fileno(logf);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigaction(SIGBUS, &sa, NULL);

	struct store *store = NULL;
	/* No write-ahead log in the store: the Raft log is one (strong.h). */
	struct store_options so = {cfg.dir, cfg.map_size, 0, 0};
	int rc = store_open(&store, &so);
	if (rc != 0) {
		sp_error("cannot open the store in %s: %s", cfg.dir, sp_strerror(rc));
		fprintf(stderr, "spectrad: cannot open the store in %s: %s\n", cfg.dir,
			sp_strerror(rc));
		goto close_log;
	}

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct server srv;
	rc = server_init(&srv, &loop, &cfg, sp_clock_system(), store);
	if (rc != 0) {
		fprintf(stderr,
			"spectrad: cannot start: %s (listening for clients on %s:%d, for peers, or "
			"for HTTP: the log names which)\n",
			rc < SP_ERR__BASE ? sp_strerror(rc) : uv_strerror(rc), cfg.bind, cfg.port);
		goto close_loop;
	}
	srv.config_file = config_file;
	if (cfg.pidfile[0] && (rc = write_pidfile(cfg.pidfile)) != 0) {
		sp_error("pidfile %s: %s", cfg.pidfile, sp_strerror(rc));
		fprintf(stderr, "spectrad: pidfile %s: %s\n", cfg.pidfile, sp_strerror(rc));
		server_shutdown(&srv);
		uv_run(&loop, UV_RUN_DEFAULT);
		server_close(&srv);
		goto close_loop;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	server_close(&srv);
	if (cfg.pidfile[0])
		unlink(cfg.pidfile);
	sp_info("bye");
	status = 0;

close_loop:
	/* Run the loop once more so every handle's close callback fires. */
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0) {
		/* A start that failed half-way leaves handles open: close them,
		 * so the loop (and what it holds) is released all the same. */
		uv_walk(&loop, close_handle, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		if (uv_loop_close(&loop) != 0)
			sp_warn("loop closed with handles still open");
	}
	store_close(store);
close_log:
	sp_log_setup(SP_LOG_INFO, NULL);
	if (logf)
		fclose(logf);
free_config:
	sp_config_free(&cfg);
	return status;
}
