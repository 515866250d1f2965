/*
 * cli_bench: `spectra bench`. See cli_bench.h.
 *
 * Flags are checked before anything is opened, so a usage error never
 * leaves a half-made run; --op may be given many times, which cli_parse
 * does not do, so those are taken out of argv first.
 */
#include "cli_bench.h"

#include "bench_hist.h"
#include "bench_http.h"
#include "bench_keys.h"
#include "bench_resp.h"
#include "bench_run.h"
#include "cli.h"

#include "common/alloc.h"
#include "common/err.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_HOSTS	"127.0.0.1:7379"
#define DEFAULT_ETCD	"127.0.0.1:2379"
#define MAX_TIMEOUT_MS	3600000
#define MAX_CLIENTS	10000
#define SPARE_FDS	64 /* descriptors besides the connections */
#define MAX_PIPELINE	1024
#define MAX_VALUE_SIZE	(64u * 1024 * 1024)
#define MAX_WEIGHT	1000000
#define MAX_RATE	10000000.0
#define DRAIN_S		5.0 /* open loop: longest wait for late ops */
#define LABEL_WIDTH_MAX 40

static const char *const default_ops[] = {"1:SET bench:{key} {value}", "1:GET bench:{key}"};
static const char *const default_etcd_ops[] = {"1:PUT bench:{key} {value}", "1:GET bench:{key}"};

struct bench_opts {
	const struct bench_driver *driver;
	char **hosts; /* "h:p", owned */
	struct sockaddr_storage *addrs;
	size_t nhosts;
	size_t clients, pipeline, value_size;
	double duration_s, warmup_s, rate, zipf_s;
	uint64_t requests, keys, seed;
	enum bench_dist dist;
	const char *name, *json;
	bool quiet;
	const char **op_texts; /* "WEIGHT:TEMPLATE", borrowed from argv */
	size_t nops;
	struct bench_op *ops; /* compiled, owned */
	unsigned timeout_ms;
	bool failover;
	const char *fault_cmd;
	double fault_at_s;
};

/* ---- flags -------------------------------------------------------------- */

static bool parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	if (*text == '-' || *text == '\0')
		return false;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_double(const char *text, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || end == text || *end || !(v >= min) || !(v <= max))
		return false;
	*out = v;
	return true;
}

/*
 * take_ops moves every "--op X" and "--op=X" out of argv into ops (argc
 * entries), leaving the other arguments, in order, in rest. Returns false
 * for an --op without a value.
 */
static bool take_ops(int argc, char **argv, const char **ops, size_t *nops, char **rest, int *nrest)
{
	*nops = 0;
	*nrest = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				rest[(*nrest)++] = argv[i++];
			break;
		}
		if (strncmp(argv[i], "--op=", 5) == 0) {
			ops[(*nops)++] = argv[i] + 5;
			continue;
		}
		if (strcmp(argv[i], "--op") == 0) {
			if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
				return false;
			ops[(*nops)++] = argv[++i];
			continue;
		}
		rest[(*nrest)++] = argv[i];
	}
	return true;
}

/*
 * resolve turns "host:port" ("[v6addr]:port" for IPv6) into an address.
 * Returns 0, SP_ERR_INVAL for text that is not host:port (msg says why), or
 * SP_ERR_NOTFOUND when the name does not resolve.
 */
static int resolve(const char *text, struct sockaddr_storage *out, char *msg, size_t msglen)
{
	char host[256];
	const char *port;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host)) {
			snprintf(msg, msglen, "'%s' is not [ADDRESS]:PORT", text);
			return SP_ERR_INVAL;
		}
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		port = close + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon || colon == text || (size_t)(colon - text) >= sizeof(host)) {
			snprintf(msg, msglen, "'%s' is not HOST:PORT", text);
			return SP_ERR_INVAL;
		}
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
		port = colon + 1;
	}
	uint64_t p;
	if (!parse_u64(port, 1, 65535, &p)) {
		snprintf(msg, msglen, "'%s': the port must be 1..65535", text);
		return SP_ERR_INVAL;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0 || !ai) {
		snprintf(msg, msglen, "cannot resolve '%s': %s", host, gai_strerror(rc));
		return SP_ERR_NOTFOUND;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

/* parse_hosts splits text at commas into o->hosts and resolves each.
 * Returns an exit code: CLI_EXIT_OK, _USAGE or _FAIL (message printed). */
static int parse_hosts(const char *path, const char *text, struct bench_opts *o)
{
	size_t n = 1;
	for (const char *p = text; *p; p++)
		n += *p == ',';
	o->hosts = sp_calloc(n, sizeof(*o->hosts));
	o->addrs = sp_calloc(n, sizeof(*o->addrs));
	const char *start = text;
	for (;;) {
		const char *comma = strchr(start, ',');
		size_t len = comma ? (size_t)(comma - start) : strlen(start);
		char *one = sp_memdup(start, len);
		o->hosts[o->nhosts] = one;
		if (len == 0)
			return cli_usage_error(path, "--hosts: an empty entry in '%s'", text);
		char msg[320];
		int rc = resolve(one, &o->addrs[o->nhosts], msg, sizeof(msg));
		o->nhosts++;
		if (rc == SP_ERR_INVAL)
			return cli_usage_error(path, "--hosts: %s", msg);
		if (rc < 0) {
			cli_error("bench: %s", msg);
			return CLI_EXIT_FAIL;
		}
		if (!comma)
			break;
		start = comma + 1;
	}
	return CLI_EXIT_OK;
}

/* compile_ops turns o->op_texts into o->ops with o->driver. */
static int compile_ops(const char *path, struct bench_opts *o)
{
	o->ops = sp_calloc(o->nops, sizeof(*o->ops));
	for (size_t i = 0; i < o->nops; i++) {
		const char *text = o->op_texts[i];
		const char *colon = strchr(text, ':');
		char weight[16];
		uint64_t w;
		if (!colon || (size_t)(colon - text) >= sizeof(weight))
			return cli_usage_error(path, "--op: '%s' is not WEIGHT:TEMPLATE", text);
		memcpy(weight, text, (size_t)(colon - text));
		weight[colon - text] = '\0';
		if (!parse_u64(weight, 1, MAX_WEIGHT, &w))
			return cli_usage_error(path, "--op: the weight in '%s' must be 1..%d", text,
					       MAX_WEIGHT);
		char err[256];
		void *compiled;
		if (o->driver->op_compile(colon + 1, o->value_size, &compiled, err, sizeof(err)) <
		    0)
			return cli_usage_error(path, "--op: %s", err);
		o->ops[i] = (struct bench_op){
		    .label = colon + 1, .compiled = compiled, .weight = (unsigned)w};
	}
	return CLI_EXIT_OK;
}

static void opts_free(struct bench_opts *o)
{
	for (size_t i = 0; i < o->nhosts; i++)
		free(o->hosts[i]);
	free(o->hosts);
	free(o->addrs);
	if (o->ops)
		for (size_t i = 0; i < o->nops; i++)
			o->driver->op_free(o->ops[i].compiled);
	free(o->ops);
	free(o->op_texts);
}

/*
 * raise_fd_limit lifts the soft limit on open files to the hard one and
 * checks that clients connections fit. Returns false (message printed)
 * when they cannot.
 */
static bool raise_fd_limit(size_t clients)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		cli_error("bench: getrlimit: %s", strerror(errno));
		return false;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)(clients + SPARE_FDS) > rl.rlim_cur) {
		cli_error("bench: --clients %zu needs %zu open files (connections + %d spare) but "
			  "the limit is %llu (hard limit %llu); lower --clients or raise the "
			  "limit (ulimit -Hn)",
			  clients, clients + SPARE_FDS, SPARE_FDS, (unsigned long long)rl.rlim_cur,
			  (unsigned long long)rl.rlim_max);
		return false;
	}
	return true;
}

/* ---- reporting ---------------------------------------------------------- */

static double ms(uint64_t us)
{
	return (double)us / 1000.0;
}

static uint64_t errors_of(const struct bench_op_stats *st)
{
	uint64_t n = 0;
	for (size_t i = 0; i < st->nerrors; i++)
		n += st->errors[i].n;
	return n;
}

/* label_of writes a template shortened to width columns into out. */
static void label_of(const char *text, int width, char *out, size_t outlen)
{
	if ((int)strlen(text) <= width)
		snprintf(out, outlen, "%s", text);
	else
		snprintf(out, outlen, "%.*s...", width - 3, text);
}

static void print_row(const char *label, int width, uint64_t ok, uint64_t err, double seconds,
		      const struct bench_hist *h)
{
	double rate = seconds > 0 ? (double)ok / seconds : 0;
	printf("%-*s %10" PRIu64 " %8" PRIu64 " %11.1f %9.3f %9.3f %9.3f %9.3f %9.3f\n", width,
	       label, ok, err, rate, ms(bench_hist_percentile(h, 50)),
	       ms(bench_hist_percentile(h, 95)), ms(bench_hist_percentile(h, 99)),
	       ms(bench_hist_percentile(h, 99.9)), ms(bench_hist_max(h)));
}

static void print_table(const struct bench_opts *o, const struct bench_result *res)
{
	int width = 2;
	for (size_t i = 0; i < o->nops; i++) {
		int len = (int)strlen(o->ops[i].label);
		if (len > width)
			width = len;
	}
	if (width > LABEL_WIDTH_MAX)
		width = LABEL_WIDTH_MAX;
	printf("%-*s %10s %8s %11s %9s %9s %9s %9s %9s\n", width, "op", "ok", "err", "ops/s",
	       "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms");
	struct bench_hist all;
	bench_hist_init(&all);
	uint64_t ok = 0, err = 0;
	for (size_t i = 0; i < o->nops; i++) {
		const struct bench_op_stats *st = &res->ops[i];
		char label[LABEL_WIDTH_MAX + 1];
		label_of(o->ops[i].label, width, label, sizeof(label));
		print_row(label, width, st->ok, errors_of(st), res->seconds, &st->hist);
		bench_hist_merge(&all, &st->hist);
		ok += st->ok;
		err += errors_of(st);
	}
	if (o->nops > 1)
		print_row("all", width, ok, err, res->seconds, &all);
	bench_hist_close(&all);
	for (size_t i = 0; i < o->nops; i++) {
		const struct bench_op_stats *st = &res->ops[i];
		if (st->nerrors == 0)
			continue;
		printf("  errors of '%s':", o->ops[i].label);
		for (size_t e = 0; e < st->nerrors; e++)
			printf(" %s %" PRIu64, st->errors[e].word, st->errors[e].n);
		printf("\n");
	}
}

static void print_header(const struct bench_opts *o)
{
	printf("spectra bench (%s): %zu connection%s to", o->driver->name, o->clients,
	       o->clients == 1 ? "" : "s");
	for (size_t i = 0; i < o->nhosts; i++)
		printf("%s%s", i ? "," : " ", o->hosts[i]);
	if (o->rate > 0)
		printf("; open loop at %.0f ops/s", o->rate);
	else
		printf("; closed loop");
	printf(", pipeline %zu; ", o->pipeline);
	if (o->requests)
		printf("%" PRIu64 " ops", o->requests);
	else
		printf("%g s", o->duration_s);
	printf(" after %g s warm-up\n", o->warmup_s);
	static const char *const dist_names[] = {"uniform", "zipf", "seq"};
	printf("  keys %" PRIu64 " %s", o->keys, dist_names[o->dist]);
	if (o->dist == BENCH_DIST_ZIPF)
		printf(" (s %g)", o->zipf_s);
	printf(", values %zu bytes; ops:", o->value_size);
	for (size_t i = 0; i < o->nops; i++)
		printf("%s %s", i ? "," : "", o->op_texts[i]);
	printf("\n");
	if (o->timeout_ms || o->failover || o->fault_cmd) {
		printf(" ");
		if (o->timeout_ms)
			printf(" timeout %u ms;", o->timeout_ms);
		if (o->failover)
			printf(" failover to the next host;");
		if (o->fault_cmd)
			printf(" fault at %g s: %s", o->fault_at_s, o->fault_cmd);
		printf("\n");
	}
	fflush(stdout);
}

/* served_rate: ops/s that succeeded inside a timed window, recorded or
 * not (0 for a run of a request count). */
static double served_rate(const struct bench_opts *o, const struct bench_result *res)
{
	return o->duration_s > 0 && !o->requests ? (double)res->window_ok / o->duration_s : 0;
}

/* availability_of returns the share of an op's recorded attempts that
 * succeeded (1 when there were none). */
static double availability_of(const struct bench_op_stats *st)
{
	uint64_t all = st->ok + errors_of(st);
	return all ? (double)st->ok / (double)all : 1.0;
}

static void print_summary(const struct bench_opts *o, const struct bench_result *res)
{
	printf("\n%.3f s measured; connections: %" PRIu64 " came up, %" PRIu64 " dropped, %" PRIu64
	       " reconnected, %" PRIu64 " failed attempts",
	       res->seconds, res->connects, res->drops, res->reconnects, res->connect_failures);
	if (o->rate > 0)
		printf("; %" PRIu64 " ops unfinished after %.0f s of drain", res->unfinished,
		       DRAIN_S);
	if (res->interrupted)
		printf("; interrupted");
	printf("\n");
	uint64_t ok = 0, err = 0;
	for (size_t i = 0; i < res->nops; i++) {
		ok += res->ops[i].ok;
		err += errors_of(&res->ops[i]);
	}
	if (o->rate > 0 && !o->requests)
		printf("served: %.1f ops/s succeeded inside the window (of %.0f offered), queued "
		       "ops included\n",
		       served_rate(o, res), o->rate);
	printf("availability: %.4f%% of %" PRIu64 " ops succeeded; longest gap without a success "
	       "%.1f ms, from %.3f s into the window\n",
	       ok + err ? 100.0 * (double)ok / (double)(ok + err) : 100.0, ok + err,
	       res->max_gap_s * 1000, res->max_gap_at_s);
	if (o->fault_cmd) {
		if (res->fault_ran)
			printf("fault ran at %.3f s, exit status %d\n", res->fault_ran_at_s,
			       res->fault_status);
		else
			printf("fault did not run (the window ended first)\n");
	}
}

/* write_json appends one line per op type to o->json. */
static int write_json(const struct bench_opts *o, const struct bench_result *res)
{
	FILE *f = fopen(o->json, "a");
	if (!f) {
		cli_error("bench: %s: %s", o->json, strerror(errno));
		return CLI_EXIT_FAIL;
	}
	static const char *const dist_names[] = {"uniform", "zipf", "seq"};
	char hosts[1024] = "";
	for (size_t i = 0; i < o->nhosts; i++) {
		size_t used = strlen(hosts);
		snprintf(hosts + used, sizeof(hosts) - used, "%s%s", i ? "," : "", o->hosts[i]);
	}
	int rc = CLI_EXIT_OK;
	for (size_t i = 0; i < o->nops && rc == CLI_EXIT_OK; i++) {
		const struct bench_op_stats *st = &res->ops[i];
		const struct bench_hist *h = &st->hist;
		json_t *errors = json_object();
		for (size_t e = 0; e < st->nerrors; e++)
			json_object_set_new(errors, st->errors[e].word,
					    json_integer((json_int_t)st->errors[e].n));
		json_t *j = json_object();
		json_object_set_new(j, "name", o->name ? json_string(o->name) : json_null());
		json_object_set_new(j, "op", json_string(o->ops[i].label));
		json_object_set_new(j, "clients", json_integer((json_int_t)o->clients));
		json_object_set_new(j, "pipeline", json_integer((json_int_t)o->pipeline));
		json_object_set_new(j, "rate", o->rate > 0 ? json_real(o->rate) : json_null());
		json_object_set_new(j, "ok", json_integer((json_int_t)st->ok));
		json_object_set_new(j, "errors", errors);
		json_object_set_new(j, "seconds", json_real(res->seconds));
		json_object_set_new(
		    j, "ops_per_s",
		    json_real(res->seconds > 0 ? (double)st->ok / res->seconds : 0));
		json_object_set_new(j, "p50_us",
				    json_integer((json_int_t)bench_hist_percentile(h, 50)));
		json_object_set_new(j, "p95_us",
				    json_integer((json_int_t)bench_hist_percentile(h, 95)));
		json_object_set_new(j, "p99_us",
				    json_integer((json_int_t)bench_hist_percentile(h, 99)));
		json_object_set_new(j, "p999_us",
				    json_integer((json_int_t)bench_hist_percentile(h, 99.9)));
		json_object_set_new(j, "max_us", json_integer((json_int_t)bench_hist_max(h)));
		json_object_set_new(j, "availability", json_real(availability_of(st)));
		json_object_set_new(j, "served_ops_per_s", json_real(served_rate(o, res)));
		json_object_set_new(j, "max_gap_ms", json_real(res->max_gap_s * 1000));
		json_object_set_new(j, "max_gap_at_s", json_real(res->max_gap_at_s));
		json_object_set_new(j, "driver", json_string(o->driver->name));
		json_object_set_new(j, "timeout_ms", json_integer((json_int_t)o->timeout_ms));
		json_object_set_new(j, "failover", json_boolean(o->failover));
		json_object_set_new(j, "fault",
				    o->fault_cmd ? json_string(o->fault_cmd) : json_null());
		json_object_set_new(j, "fault_ran_at_s",
				    res->fault_ran ? json_real(res->fault_ran_at_s) : json_null());
		json_object_set_new(j, "fault_status",
				    res->fault_ran ? json_integer(res->fault_status) : json_null());
		/* Beyond the table: what the run was, and how it went. */
		json_object_set_new(j, "hosts", json_string(hosts));
		json_object_set_new(j, "mode", json_string(o->rate > 0 ? "open" : "closed"));
		json_object_set_new(j, "weight", json_integer((json_int_t)o->ops[i].weight));
		json_object_set_new(j, "keys", json_integer((json_int_t)o->keys));
		json_object_set_new(j, "dist", json_string(dist_names[o->dist]));
		json_object_set_new(j, "value_size", json_integer((json_int_t)o->value_size));
		json_object_set_new(j, "warmup_s", json_real(res->warmup_s));
		json_object_set_new(j, "connects", json_integer((json_int_t)res->connects));
		json_object_set_new(j, "connect_failures",
				    json_integer((json_int_t)res->connect_failures));
		json_object_set_new(j, "drops", json_integer((json_int_t)res->drops));
		json_object_set_new(j, "reconnects", json_integer((json_int_t)res->reconnects));
		json_object_set_new(j, "unfinished", json_integer((json_int_t)res->unfinished));
		json_object_set_new(j, "interrupted", json_boolean(res->interrupted));
		if (json_dumpf(j, f, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
		    fputc('\n', f) == EOF)
			rc = CLI_EXIT_FAIL;
		json_decref(j);
	}
	if (fclose(f) != 0)
		rc = CLI_EXIT_FAIL;
	if (rc != CLI_EXIT_OK)
		cli_error("bench: writing %s failed", o->json);
	return rc;
}

/* ---- the command ---------------------------------------------------------- */

static const char description[] =
    "Drive RESP servers (spectrad, redis-server), or etcd through its v3 JSON\n"
    "gateway (--driver etcd), with a mix of ops and report throughput and latency\n"
    "per op type. Connections are spread round-robin over --hosts.\n"
    "\n"
    "An op is WEIGHT:TEMPLATE (--op, repeatable; ops are drawn per request by\n"
    "weight). TEMPLATE is one or more commands separated by ';', each a list of\n"
    "words separated by spaces, with placeholders {key} (a key number from the key\n"
    "distribution), {value} (--value-size bytes) and {rand} (a random u32), drawn\n"
    "once per op. The commands of an op go over one connection, each after the\n"
    "reply to the one before; an error reply ends the op as an error. Default:\n"
    "--op '1:SET bench:{key} {value}' --op '1:GET bench:{key}'. Example, SET then\n"
    "WAIT on the same key: --op '1:SET k:{key} {value};WAIT 2 0'.\n"
    "\n"
    "With --driver etcd a command is PUT KEY VALUE, GET KEY (linearizable),\n"
    "GET KEY SERIALIZABLE or DEL KEY, sent as HTTP/1.1 POSTs to /v3/kv/...; keys\n"
    "and values are base64-encoded as the gateway wants; a non-2xx answer is an\n"
    "error named by its gRPC code (UNAVAILABLE, ...) or HTTP_<status>. Default\n"
    "--hosts " DEFAULT_ETCD ", ops PUT and GET.\n"
    "\n"
    "Availability: every run reports the share of ops that succeeded and the\n"
    "longest stretch of the window without a success. --timeout fails an op that\n"
    "waits longer (and drops its connection, replies being in order); --failover\n"
    "moves a connection that drops or cannot connect to the next host; --fault CMD\n"
    "runs CMD with /bin/sh --fault-at seconds into the window (after warm-up),\n"
    "e.g. a kill -9 of one server, without pausing the load.\n"
    "\n"
    "Closed loop (default): each connection keeps --pipeline ops in flight; an op's\n"
    "latency runs from its first command's send to its last reply. Open loop\n"
    "(--rate): ops are scheduled at a fixed total rate and handed to connections in\n"
    "turn; an op waits while its connection has --pipeline ops in flight, and its\n"
    "latency runs from its scheduled start, so a stalled server shows as latency\n"
    "(no coordinated omission). After the window, an open loop waits up to 5 s for\n"
    "ops still out.\n"
    "\n"
    "Ops that end during --warmup are not recorded; the warm-up lasts until every\n"
    "connection is up (at most 30 s more). Errors are counted per error\n"
    "word (ERR, TRYAGAIN, ...); an op lost with a dropped connection counts as\n"
    "conn_dropped, and the connection is made again. Latencies are kept in a\n"
    "histogram with 2 significant digits, 1 us to 60 s. SIGINT ends the run early\n"
    "and reports it. With --json, one JSON object per op type is appended to FILE:\n"
    "name, op, clients, pipeline, rate, ok, errors, seconds, ops_per_s, p50_us,\n"
    "p95_us, p99_us, p999_us, max_us (and hosts, mode, keys, dist, ...).\n"
    "\n"
    "Exit status: 0 some op succeeded; 1 none did, or no connection could be made;\n"
    "2 usage error.";

int cli_bench_main(const char *path, int argc, char **argv)
{
	const char *hosts = NULL, *clients = NULL, *duration = NULL, *requests = NULL;
	const char *warmup = NULL, *op_dummy = NULL, *keys = NULL, *dist = NULL, *zipf_s = NULL;
	const char *value_size = NULL, *pipeline = NULL, *rate = NULL, *seed = NULL;
	const char *driver = NULL, *timeout = NULL, *fault_at = NULL;
	struct bench_opts o = {0};
	const struct cli_flag flags[] = {
	    {"hosts", "H:P[,H:P...]",
	     "servers; connections go round-robin (default " DEFAULT_HOSTS ")", &hosts, NULL},
	    {"clients", "N", "connections, 1..10000 (default 50)", &clients, NULL},
	    {"duration", "SECONDS", "how long to measure (default 10)", &duration, NULL},
	    {"requests", "N", "measure N ops instead of a duration", &requests, NULL},
	    {"warmup", "SECONDS", "run first without recording, 0 for none (default 1)", &warmup,
	     NULL},
	    {"op", "WEIGHT:TEMPLATE", "an op and its weight; repeatable (see above)", &op_dummy,
	     NULL},
	    {"keys", "N", "key space size (default 100000)", &keys, NULL},
	    {"dist", "D", "key distribution: uniform, zipf, or seq (each key in turn)", &dist,
	     NULL},
	    {"zipf-s", "S", "zipf exponent (default 0.99)", &zipf_s, NULL},
	    {"value-size", "BYTES", "size of {value} (default 64)", &value_size, NULL},
	    {"pipeline", "P", "ops in flight per connection, 1..1024 (default 1)", &pipeline, NULL},
	    {"rate", "OPS_PER_S", "open loop at this total rate (default: closed loop)", &rate,
	     NULL},
	    {"name", "LABEL", "a name for the result (JSON \"name\")", &o.name, NULL},
	    {"json", "FILE", "append one JSON line per op type to FILE", &o.json, NULL},
	    {"seed", "N", "seed of keys and op choice (default: from the clock)", &seed, NULL},
	    {"driver", "D", "protocol: resp (default) or etcd", &driver, NULL},
	    {"timeout", "MS", "fail an op unanswered this long (default: none)", &timeout, NULL},
	    {"failover", NULL, "reconnect to the next host after a drop", NULL, &o.failover},
	    {"fault", "CMD", "run CMD (sh -c) during the window, at --fault-at", &o.fault_cmd,
	     NULL},
	    {"fault-at", "SECONDS", "when to run --fault, into the window (default 0)", &fault_at,
	     NULL},
	    {"quiet", NULL, "print only the table", NULL, &o.quiet},
	};
	const struct cli_spec spec = {
	    path,
	    "[--hosts H:P[,H:P...]] [--clients N] [--duration SECONDS | --requests N]\n"
	    "       [--warmup SECONDS] [--op WEIGHT:TEMPLATE]... [--keys N] [--dist D]\n"
	    "       [--zipf-s S] [--value-size BYTES] [--pipeline P] [--rate OPS_PER_S]\n"
	    "       [--name LABEL] [--json FILE] [--seed N] [--driver resp|etcd]\n"
	    "       [--timeout MS] [--failover] [--fault CMD [--fault-at SECONDS]] [--quiet]",
	    description,
	    flags,
	    sizeof(flags) / sizeof(flags[0]),
	    NULL,
	};

	int code = CLI_EXIT_USAGE, rest;
	struct bench_keys keyspace;
	struct bench_result res = {0};
	char **flag_args = sp_calloc((size_t)argc + 1, sizeof(*flag_args));
	o.op_texts = sp_calloc((size_t)argc + 1, sizeof(*o.op_texts));
	int nflag_args;
	if (!take_ops(argc, argv, o.op_texts, &o.nops, flag_args, &nflag_args)) {
		code = cli_usage_error(path, "--op needs a value (WEIGHT:TEMPLATE)");
		goto free_opts;
	}
	if (!cli_parse(&spec, nflag_args, flag_args, &rest, &code))
		goto free_opts;
	code = CLI_EXIT_USAGE;

	uint64_t u;
	o.driver = &bench_resp_driver;
	if (driver && strcmp(driver, "etcd") == 0) {
		o.driver = &bench_etcd_driver;
	} else if (driver && strcmp(driver, "resp") != 0) {
		cli_usage_error(path, "--driver: '%s' is not resp or etcd", driver);
		goto free_opts;
	}
	if (timeout) {
		if (!parse_u64(timeout, 1, MAX_TIMEOUT_MS, &u)) {
			cli_usage_error(path, "--timeout: '%s' is not 1..%d ms", timeout,
					MAX_TIMEOUT_MS);
			goto free_opts;
		}
		o.timeout_ms = (unsigned)u;
	}
	if (o.fault_cmd && !*o.fault_cmd) {
		cli_usage_error(path, "--fault must not be empty");
		goto free_opts;
	}
	if (fault_at && !o.fault_cmd) {
		cli_usage_error(path, "--fault-at needs --fault");
		goto free_opts;
	}
	if (fault_at && !parse_double(fault_at, 0, 86400, &o.fault_at_s)) {
		cli_usage_error(path, "--fault-at: '%s' is not a number of seconds", fault_at);
		goto free_opts;
	}
	o.clients = 50;
	if (clients) {
		if (!parse_u64(clients, 1, MAX_CLIENTS, &u)) {
			cli_usage_error(path, "--clients: '%s' is not 1..%d", clients, MAX_CLIENTS);
			goto free_opts;
		}
		o.clients = (size_t)u;
	}
	if (duration && requests) {
		cli_usage_error(path, "give --duration or --requests, not both");
		goto free_opts;
	}
	o.duration_s = 10;
	if (duration && !cli_parse_seconds(duration, &o.duration_s)) {
		cli_usage_error(path, "--duration: '%s' is not a number of seconds", duration);
		goto free_opts;
	}
	if (requests && !parse_u64(requests, 1, UINT64_C(1000000000000), &o.requests)) {
		cli_usage_error(path, "--requests: '%s' is not a count from 1", requests);
		goto free_opts;
	}
	o.warmup_s = 1;
	if (warmup && !parse_double(warmup, 0, 86400, &o.warmup_s)) {
		cli_usage_error(path, "--warmup: '%s' is not a number of seconds", warmup);
		goto free_opts;
	}
	o.keys = 100000;
	if (keys && !parse_u64(keys, 1, UINT64_MAX, &o.keys)) {
		cli_usage_error(path, "--keys: '%s' is not a count from 1", keys);
		goto free_opts;
	}
	o.dist = BENCH_DIST_UNIFORM;
	if (dist && bench_keys_parse_dist(dist, &o.dist) < 0) {
		cli_usage_error(path, "--dist: '%s' is not uniform, zipf or seq", dist);
		goto free_opts;
	}
	o.zipf_s = 0.99;
	if (zipf_s && !(parse_double(zipf_s, 0, 100, &o.zipf_s) && o.zipf_s > 0)) {
		cli_usage_error(path, "--zipf-s: '%s' is not a number in (0, 100]", zipf_s);
		goto free_opts;
	}
	o.value_size = 64;
	if (value_size) {
		if (!parse_u64(value_size, 0, MAX_VALUE_SIZE, &u)) {
			cli_usage_error(path, "--value-size: '%s' is not 0..%u bytes", value_size,
					MAX_VALUE_SIZE);
			goto free_opts;
		}
		o.value_size = (size_t)u;
	}
	o.pipeline = 1;
	if (pipeline) {
		if (!parse_u64(pipeline, 1, MAX_PIPELINE, &u)) {
			cli_usage_error(path, "--pipeline: '%s' is not 1..%d", pipeline,
					MAX_PIPELINE);
			goto free_opts;
		}
		o.pipeline = (size_t)u;
	}
	if (rate && !(parse_double(rate, 0, MAX_RATE, &o.rate) && o.rate > 0)) {
		cli_usage_error(path, "--rate: '%s' is not a rate in (0, %.0f] ops/s", rate,
				MAX_RATE);
		goto free_opts;
	}
	if (seed) {
		if (!parse_u64(seed, 0, UINT64_MAX, &o.seed)) {
			cli_usage_error(path, "--seed: '%s' is not a number", seed);
			goto free_opts;
		}
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		o.seed = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
			 (uint64_t)getpid() << 32;
	}
	if (o.name && !*o.name) {
		cli_usage_error(path, "--name must not be empty");
		goto free_opts;
	}
	if (o.json && !*o.json) {
		cli_usage_error(path, "--json must not be empty");
		goto free_opts;
	}
	if (o.nops == 0) {
		bool etcd = o.driver == &bench_etcd_driver;
		const char *const *defaults = etcd ? default_etcd_ops : default_ops;
		o.nops = 2;
		for (size_t i = 0; i < o.nops; i++)
			o.op_texts[i] = defaults[i];
	}
	code = compile_ops(path, &o);
	if (code != CLI_EXIT_OK)
		goto free_opts;
	code = parse_hosts(
	    path, hosts ? hosts : (o.driver == &bench_etcd_driver ? DEFAULT_ETCD : DEFAULT_HOSTS),
	    &o);
	if (code != CLI_EXIT_OK)
		goto free_opts;
	if (bench_keys_init(&keyspace, o.dist, o.keys, o.zipf_s) < 0) {
		code = cli_usage_error(path, "--keys/--dist: not a usable key distribution");
		goto free_opts;
	}

	code = CLI_EXIT_FAIL;
	if (!raise_fd_limit(o.clients))
		goto close_keys;
	const char **names = sp_calloc(o.nhosts, sizeof(*names));
	for (size_t i = 0; i < o.nhosts; i++)
		names[i] = o.hosts[i];
	struct bench_config cfg = {
	    .driver = o.driver,
	    .addrs = o.addrs,
	    .host_names = names,
	    .nhosts = o.nhosts,
	    .clients = o.clients,
	    .pipeline = o.pipeline,
	    .duration_s = o.duration_s,
	    .requests = o.requests,
	    .warmup_s = o.warmup_s,
	    .rate = o.rate,
	    .drain_s = DRAIN_S,
	    .ops = o.ops,
	    .nops = o.nops,
	    .keys = &keyspace,
	    .seed = o.seed,
	    .progress = !o.quiet,
	    .timeout_ms = o.timeout_ms,
	    .failover = o.failover,
	    .fault_cmd = o.fault_cmd,
	    .fault_at_s = o.fault_at_s,
	};
	if (!o.quiet)
		print_header(&o);
	int rc = bench_run(&cfg, &res);
	free(names);
	if (rc < 0) {
		cli_error("bench: could not set up the run: %s", sp_strerror(rc));
		goto close_result;
	}
	if (!res.connected) {
		cli_error("bench: could not connect to any host (%s)",
			  res.first_error[0] ? res.first_error : "no attempt finished");
		goto close_result;
	}
	if (!o.quiet)
		printf("\n");
	print_table(&o, &res);
	if (!o.quiet)
		print_summary(&o, &res);
	fflush(stdout);
	code = CLI_EXIT_OK;
	if (o.json)
		code = write_json(&o, &res);
	uint64_t ok = 0;
	for (size_t i = 0; i < res.nops; i++)
		ok += res.ops[i].ok;
	if (ok == 0) {
		cli_error("bench: no op succeeded");
		code = CLI_EXIT_FAIL;
	}
close_result:
	bench_result_close(&res);
close_keys:
	bench_keys_close(&keyspace);
free_opts:
	opts_free(&o);
	free(flag_args);
	return code;
}
