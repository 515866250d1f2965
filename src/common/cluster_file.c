/*
 * cluster_file: parsing, formatting, loading and saving the cluster file.
 * See cluster_file.h for the format.
 *
 * One set of rules (check_name, check_node) serves the parser, the
 * formatter and cluster_file_add, so a file this module writes is always
 * one it reads back, and a struct it accepts is always one it can write.
 */
#include "common/cluster_file.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/num.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024
/* The most words a line may have: "bootstrap" and an id per node. */
#define MAX_WORDS (CLUSTER_FILE_MAX_NODES + 1)

static void errorf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errorf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- the rules --------------------------------------------------------- */

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static bool check_name(const char *name, size_t len)
{
	if (len == 0 || len >= sizeof(((struct cluster_file *)0)->name))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char(name[i]))
			return false;
	return true;
}

/* An endpoint's address in binary form, so "::1" and "0::1" are one. */
struct endpoint {
	int family;
	unsigned char addr[16];
	int port;
};

static bool parse_host(const char *host, struct endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	if (inet_pton(AF_INET, host, ep->addr) == 1) {
		ep->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, host, ep->addr) == 1) {
		ep->family = AF_INET6;
		return true;
	}
	return false;
}

static bool same_endpoint(const struct endpoint *a, const struct endpoint *b)
{
	return a->family == b->family && a->port == b->port &&
	       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static void endpoint_text(const char *host, int port, char *out, size_t outlen)
{
	if (strchr(host, ':'))
		snprintf(out, outlen, "[%s]:%d", host, port);
	else
		snprintf(out, outlen, "%s:%d", host, port);
}

static bool valid_id(uint64_t id)
{
	return id >= 1 && id <= (uint64_t)INT64_MAX;
}

static bool valid_port(int port)
{
	return port >= 1 && port <= 65535;
}

/*
 * check_node says whether node may join cf->nodes[0..cf->n): its fields
 * follow the rules (else SP_ERR_INVAL) and neither its id nor an endpoint
 * is taken (else SP_ERR_EXISTS), with why in msg. lines, when not NULL,
 * gives the line of each existing node, for messages.
 */
static int check_node(const struct cluster_file *cf, const struct cluster_node *node,
		      const unsigned long *lines, char *msg, size_t msglen)
{
	struct endpoint mine[2];
	if (!valid_id(node->id)) {
		errorf(msg, msglen, "node id %llu is out of range (1..%lld)",
		       (unsigned long long)node->id, (long long)INT64_MAX);
		return SP_ERR_INVAL;
	}
	if (!memchr(node->host, '\0', sizeof(node->host)) || !parse_host(node->host, &mine[0])) {
		errorf(msg, msglen, "host '%.*s' is not a numeric IPv4 or IPv6 address",
		       (int)strnlen(node->host, sizeof(node->host)), node->host);
		return SP_ERR_INVAL;
	}
	if (!valid_port(node->client_port)) {
		errorf(msg, msglen, "client port %d is out of range (1..65535)", node->client_port);
		return SP_ERR_INVAL;
	}
	if (!valid_port(node->peer_port)) {
		errorf(msg, msglen, "peer port %d is out of range (1..65535)", node->peer_port);
		return SP_ERR_INVAL;
	}
	if (node->http_port && !valid_port(node->http_port)) {
		errorf(msg, msglen, "http port %d is out of range (1..65535)", node->http_port);
		return SP_ERR_INVAL;
	}
	mine[1] = mine[0];
	mine[0].port = node->client_port;
	mine[1].port = node->peer_port;
	char where[300];
	if (same_endpoint(&mine[0], &mine[1])) {
		endpoint_text(node->host, node->client_port, where, sizeof(where));
		errorf(msg, msglen, "node %llu's client and peer addresses are both %s",
		       (unsigned long long)node->id, where);
		return SP_ERR_EXISTS;
	}
	for (size_t i = 0; i < cf->n; i++) {
		const struct cluster_node *o = &cf->nodes[i];
		char on[32] = "";
		if (lines)
			snprintf(on, sizeof(on), " on line %lu", lines[i]);
		if (o->id == node->id) {
			errorf(msg, msglen, "node id %llu is listed twice (first%s)",
			       (unsigned long long)node->id, lines ? on : " in the file");
			return SP_ERR_EXISTS;
		}
		struct endpoint theirs;
		/* Nodes already in cf passed this check. */
		(void)parse_host(o->host, &theirs);
		const int ports[2] = {o->client_port, o->peer_port};
		for (int k = 0; k < 2; k++) {
			theirs.port = ports[k];
			for (int m = 0; m < 2; m++) {
				if (!same_endpoint(&mine[m], &theirs))
					continue;
				endpoint_text(node->host, mine[m].port, where, sizeof(where));
				errorf(msg, msglen,
				       "address %s is taken: it is node %llu's %s address%s", where,
				       (unsigned long long)o->id, k == 0 ? "client" : "peer", on);
				return SP_ERR_EXISTS;
			}
		}
	}
	return 0;
}

/* ---- parsing ----------------------------------------------------------- */

struct parser {
	struct cluster_file *cf;
	unsigned long node_line[CLUSTER_FILE_MAX_NODES];
	unsigned long name_line; /* 0: no cluster line yet */
	bool any_bootstrap_line;
	size_t nboot;
	uint64_t boot_id[CLUSTER_FILE_MAX_NODES];
	unsigned long boot_line[CLUSTER_FILE_MAX_NODES];
};

/* parse_uint reads a decimal number without sign or leading zeros. */
static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	int64_t v;
	if (!sp_parse_int64(s, strlen(s), &v) || v < 0 || (uint64_t)v > max)
		return false;
	*out = (uint64_t)v;
	return true;
}

static bool parse_id(const char *s, uint64_t *out)
{
	return parse_uint(s, (uint64_t)INT64_MAX, out) && *out >= 1;
}

static int parse_cluster(struct parser *p, unsigned long lineno, char **w, int nw, char *msg,
			 size_t msglen)
{
	if (nw != 2) {
		errorf(msg, msglen, "cluster takes one word, the cluster's name");
		return SP_ERR_INVAL;
	}
	if (p->name_line) {
		errorf(msg, msglen, "a second cluster line (the first is line %lu)", p->name_line);
		return SP_ERR_INVAL;
	}
	if (!check_name(w[1], strlen(w[1]))) {
		errorf(msg, msglen, "cluster name '%s' is not 1..63 of A-Z a-z 0-9 . _ -", w[1]);
		return SP_ERR_INVAL;
	}
	memcpy(p->cf->name, w[1], strlen(w[1]) + 1);
	p->name_line = lineno;
	return 0;
}

static int parse_node(struct parser *p, unsigned long lineno, char **w, int nw, char *msg,
		      size_t msglen)
{
	struct cluster_node node = {0};
	uint64_t v;
	if (nw != 5 && nw != 6) {
		errorf(msg, msglen,
		       "node takes four words and an optional fifth: ID HOST CLIENT_PORT PEER_PORT "
		       "[http=PORT]");
		return SP_ERR_INVAL;
	}
	if (nw == 6) {
		if (strncmp(w[5], "http=", 5) != 0 || !parse_uint(w[5] + 5, 65535, &v) || v == 0) {
			errorf(msg, msglen, "'%s' is not http=PORT with a port in 1..65535", w[5]);
			return SP_ERR_INVAL;
		}
		node.http_port = (int)v;
	}
	if (!parse_id(w[1], &node.id)) {
		errorf(msg, msglen, "node id '%s' is not a number in 1..%lld", w[1],
		       (long long)INT64_MAX);
		return SP_ERR_INVAL;
	}
	if (strlen(w[2]) >= sizeof(node.host)) {
		errorf(msg, msglen, "host '%s' is not a numeric IPv4 or IPv6 address", w[2]);
		return SP_ERR_INVAL;
	}
	memcpy(node.host, w[2], strlen(w[2]) + 1);
	for (int k = 0; k < 2; k++) {
		if (!parse_uint(w[3 + k], 65535, &v) || v == 0) {
			errorf(msg, msglen, "%s port '%s' is not a number in 1..65535",
			       k == 0 ? "client" : "peer", w[3 + k]);
			return SP_ERR_INVAL;
		}
		if (k == 0)
			node.client_port = (int)v;
		else
			node.peer_port = (int)v;
	}
	int rc = check_node(p->cf, &node, p->node_line, msg, msglen);
	if (rc != 0)
		return SP_ERR_INVAL;
	if (p->cf->n == CLUSTER_FILE_MAX_NODES) {
		errorf(msg, msglen, "more than %d nodes", CLUSTER_FILE_MAX_NODES);
		return SP_ERR_INVAL;
	}
	p->node_line[p->cf->n] = lineno;
	p->cf->nodes[p->cf->n++] = node;
	return 0;
}

static int parse_bootstrap(struct parser *p, unsigned long lineno, char **w, int nw, char *msg,
			   size_t msglen)
{
	p->any_bootstrap_line = true;
	for (int i = 1; i < nw; i++) {
		uint64_t id;
		if (!parse_id(w[i], &id)) {
			errorf(msg, msglen, "bootstrap id '%s' is not a number in 1..%lld", w[i],
			       (long long)INT64_MAX);
			return SP_ERR_INVAL;
		}
		for (size_t k = 0; k < p->nboot; k++) {
			if (p->boot_id[k] == id) {
				errorf(msg, msglen,
				       "bootstrap id %llu is listed twice (first on line %lu)",
				       (unsigned long long)id, p->boot_line[k]);
				return SP_ERR_INVAL;
			}
		}
		if (p->nboot == CLUSTER_FILE_MAX_NODES) {
			errorf(msg, msglen, "more than %d bootstrap ids", CLUSTER_FILE_MAX_NODES);
			return SP_ERR_INVAL;
		}
		p->boot_id[p->nboot] = id;
		p->boot_line[p->nboot++] = lineno;
	}
	return 0;
}

/* split cuts line into words at spaces and tabs, in place, storing at
 * most max of them in w. Returns the count, or max + 1 when there are
 * more (which no directive accepts). */
static int split(char *line, char **w, int max)
{
	int n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == max)
			return max + 1;
		w[n++] = t;
	}
	return n;
}

static int parse_line(struct parser *p, unsigned long lineno, char *line, char *msg, size_t msglen)
{
	char *hash = strchr(line, '#');
	if (hash)
		*hash = '\0';
	for (char *c = line; *c; c++) {
		if ((unsigned char)*c < 0x20 && *c != '\t') {
			errorf(msg, msglen, "control character 0x%02x", (unsigned char)*c);
			return SP_ERR_INVAL;
		}
	}
	char *w[MAX_WORDS];
	int nw = split(line, w, MAX_WORDS);
	if (nw == 0)
		return 0;
	if (strcmp(w[0], "cluster") == 0)
		return parse_cluster(p, lineno, w, nw, msg, msglen);
	if (strcmp(w[0], "node") == 0)
		return parse_node(p, lineno, w, nw, msg, msglen);
	if (strcmp(w[0], "bootstrap") == 0) {
		if (nw > MAX_WORDS) {
			errorf(msg, msglen, "more than %d bootstrap ids", CLUSTER_FILE_MAX_NODES);
			return SP_ERR_INVAL;
		}
		return parse_bootstrap(p, lineno, w, nw, msg, msglen);
	}
	errorf(msg, msglen, "unknown directive '%.40s' (expected cluster, node or bootstrap)",
	       w[0]);
	return SP_ERR_INVAL;
}

/* resolve_bootstrap marks the bootstrap nodes once every line is read
 * (a bootstrap line may come before the node lines it names). */
static int resolve_bootstrap(struct parser *p, char *err, size_t errlen)
{
	struct cluster_file *cf = p->cf;
	for (size_t i = 0; i < cf->n; i++)
		cf->nodes[i].bootstrap = !p->any_bootstrap_line;
	for (size_t k = 0; k < p->nboot; k++) {
		size_t i = 0;
		while (i < cf->n && cf->nodes[i].id != p->boot_id[k])
			i++;
		if (i == cf->n) {
			errorf(err, errlen, "line %lu: bootstrap id %llu has no node line",
			       p->boot_line[k], (unsigned long long)p->boot_id[k]);
			return SP_ERR_INVAL;
		}
		cf->nodes[i].bootstrap = true;
	}
	return 0;
}

int cluster_file_parse(struct cluster_file *cf, const char *text, size_t len, char *err,
		       size_t errlen)
{
	struct parser p = {.cf = cf};
	memset(cf, 0, sizeof(*cf));
	memcpy(cf->name, CLUSTER_FILE_DEFAULT_NAME, sizeof(CLUSTER_FILE_DEFAULT_NAME));

	char line[LINE_MAX_BYTES];
	char msg[256];
	unsigned long lineno = 0;
	size_t pos = 0;
	while (pos < len) {
		lineno++;
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl ? 1 : 0);
		/* Files written on Windows end lines with CRLF; some editors
		 * open them with a UTF-8 byte order mark. */
		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (lineno == 1 && n >= 3 && memcmp(start, "\xef\xbb\xbf", 3) == 0) {
			start += 3;
			n -= 3;
		}
		if (memchr(start, '\0', n)) {
			errorf(err, errlen, "line %lu: contains a NUL byte", lineno);
			return SP_ERR_INVAL;
		}
		if (n >= sizeof(line)) {
			errorf(err, errlen, "line %lu: longer than %zu bytes", lineno,
			       sizeof(line) - 1);
			return SP_ERR_INVAL;
		}
		memcpy(line, start, n);
		line[n] = '\0';
		if (parse_line(&p, lineno, line, msg, sizeof(msg)) != 0) {
			errorf(err, errlen, "line %lu: %s", lineno, msg);
			return SP_ERR_INVAL;
		}
	}
	if (cf->n == 0) {
		errorf(err, errlen, "no node lines (a cluster needs at least one node)");
		return SP_ERR_INVAL;
	}
	return resolve_bootstrap(&p, err, errlen);
}

int cluster_file_load(struct cluster_file *cf, const char *path, char *err, size_t errlen)
{
	int rc;
	uint8_t *text = NULL;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		errorf(err, errlen, "%s: %s", path, sp_strerror(rc));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		errorf(err, errlen, "%s: %s", path, sp_strerror(rc));
		goto close_fd;
	}
	if (st.st_size > CLUSTER_FILE_MAX_BYTES) {
		rc = SP_ERR_TOOBIG;
		errorf(err, errlen, "%s: larger than %d bytes", path, CLUSTER_FILE_MAX_BYTES);
		goto close_fd;
	}
	rc = sp_read_whole(fd, (uint64_t)st.st_size, &text);
	if (rc != 0) {
		errorf(err, errlen, "%s: %s", path, sp_strerror(rc));
		goto close_fd;
	}
	char msg[320];
	rc = cluster_file_parse(cf, (const char *)text, (size_t)st.st_size, msg, sizeof(msg));
	if (rc != 0)
		errorf(err, errlen, "%s: %s", path, msg);
	free(text);
close_fd:
	close(fd);
	return rc;
}

/* ---- formatting and saving --------------------------------------------- */

/* check_file says whether cf follows every rule of the format. */
static bool check_file(const struct cluster_file *cf)
{
	if (!memchr(cf->name, '\0', sizeof(cf->name)) || !check_name(cf->name, strlen(cf->name)))
		return false;
	if (cf->n == 0 || cf->n > CLUSTER_FILE_MAX_NODES)
		return false;
	struct cluster_file prefix;
	prefix.n = 0;
	for (size_t i = 0; i < cf->n; i++) {
		if (check_node(&prefix, &cf->nodes[i], NULL, NULL, 0) != 0)
			return false;
		prefix.nodes[prefix.n++] = cf->nodes[i];
	}
	return true;
}

int cluster_file_format(const struct cluster_file *cf, struct sp_buf *out)
{
	if (!check_file(cf))
		return SP_ERR_INVAL;
	sp_buf_append_str(out, "# spectra cluster file: cluster NAME; node ID HOST CLIENT_PORT "
			       "PEER_PORT [http=PORT]; bootstrap IDS\n");
	sp_buf_appendf(out, "cluster %s\n", cf->name);
	for (size_t i = 0; i < cf->n; i++) {
		const struct cluster_node *nd = &cf->nodes[i];
		sp_buf_appendf(out, "node %llu %s %d %d", (unsigned long long)nd->id, nd->host,
			       nd->client_port, nd->peer_port);
		if (nd->http_port)
			sp_buf_appendf(out, " http=%d", nd->http_port);
		sp_buf_append_str(out, "\n");
	}
	sp_buf_append_str(out, "bootstrap");
	for (size_t i = 0; i < cf->n; i++)
		if (cf->nodes[i].bootstrap)
			sp_buf_appendf(out, " %llu", (unsigned long long)cf->nodes[i].id);
	sp_buf_append_str(out, "\n");
	return 0;
}

/* sync_parent fsyncs the directory holding path, so a rename in it is
 * durable. */
static int sync_parent(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

int cluster_file_save(const struct cluster_file *cf, const char *path)
{
	struct sp_buf text;
	sp_buf_init(&text);
	int rc = cluster_file_format(cf, &text);
	if (rc != 0)
		goto free_text;
	size_t tlen = strlen(path) + sizeof(".XXXXXX");
	char *tmp = sp_malloc(tlen);
	snprintf(tmp, tlen, "%s.XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto free_tmp;
	}
	if (fchmod(fd, 0644) != 0) {
		rc = -errno;
		goto close_fd;
	}
	rc = sp_write_all(fd, sp_buf_begin(&text), text.len);
	if (rc != 0)
		goto close_fd;
	if (fsync(fd) != 0) {
		rc = -errno;
		goto close_fd;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		goto unlink_tmp;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = -errno;
		goto unlink_tmp;
	}
	rc = sync_parent(path);
	goto free_tmp;
close_fd:
	close(fd);
unlink_tmp:
	unlink(tmp);
free_tmp:
	free(tmp);
free_text:
	sp_buf_free(&text);
	return rc;
}

/* ---- editing ----------------------------------------------------------- */

const struct cluster_node *cluster_file_find(const struct cluster_file *cf, uint64_t id)
{
	for (size_t i = 0; i < cf->n; i++)
		if (cf->nodes[i].id == id)
			return &cf->nodes[i];
	return NULL;
}

int cluster_file_add(struct cluster_file *cf, const struct cluster_node *node)
{
	int rc = check_node(cf, node, NULL, NULL, 0);
	if (rc != 0)
		return rc;
	if (cf->n >= CLUSTER_FILE_MAX_NODES)
		return SP_ERR_FULL;
	cf->nodes[cf->n++] = *node;
	return 0;
}

int cluster_file_remove(struct cluster_file *cf, uint64_t id)
{
	for (size_t i = 0; i < cf->n; i++) {
		if (cf->nodes[i].id != id)
			continue;
		memmove(&cf->nodes[i], &cf->nodes[i + 1], (cf->n - i - 1) * sizeof(cf->nodes[0]));
		cf->n--;
		return 0;
	}
	return SP_ERR_NOTFOUND;
}
