/*
 * test_cluster_file: the cluster file's parser, formatter, editing and
 * atomic save.
 *
 * Covers every rule of the format with a file that breaks it (and the
 * line the message must name), comments, blank lines, CRLF and tabs, the
 * three bootstrap forms, the format -> parse round trip on random files,
 * and load/save of real files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../lib/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cluster_file.h"
#include "common/err.h"

#define assert_contains(hay, needle) assert_contains_at((hay), (needle), __FILE__, __LINE__)

static void assert_contains_at(const char *hay, const char *needle, const char *file, int line)
{
	if (hay && strstr(hay, needle))
		return;
	print_error("%s:%d: expected \"%s\" in \"%s\"\n", file, line, needle, hay ? hay : "(null)");
	fail();
}

static int parse(struct cluster_file *cf, const char *text, char *err, size_t errlen)
{
	return cluster_file_parse(cf, text, strlen(text), err, errlen);
}

/* expect_error parses text and requires SP_ERR_INVAL with want in the
 * message. */
#define expect_error(text, want) expect_error_at((text), (want), __FILE__, __LINE__)

static void expect_error_at(const char *text, const char *want, const char *file, int line)
{
	struct cluster_file cf;
	char err[512] = "";
	int rc = parse(&cf, text, err, sizeof(err));
	if (rc != SP_ERR_INVAL) {
		print_error("%s:%d: parse gave %d, not SP_ERR_INVAL, for:\n%s\n", file, line, rc,
			    text);
		fail();
	}
	assert_contains_at(err, want, file, line);
}

static struct cluster_node mknode(uint64_t id, const char *host, int cport, int pport, bool boot)
{
	struct cluster_node n = {.id = id, .client_port = cport, .peer_port = pport};
	snprintf(n.host, sizeof(n.host), "%s", host);
	n.bootstrap = boot;
	return n;
}

/* ---- parsing good files ------------------------------------------------ */

static void test_minimal(void **state)
{
	(void)state;
	struct cluster_file cf;
	char err[256];
	assert_int_equal(parse(&cf, "node 1 127.0.0.1 7379 17379", err, sizeof(err)), 0);
	assert_string_equal(cf.name, CLUSTER_FILE_DEFAULT_NAME);
	assert_int_equal(cf.n, 1);
	assert_int_equal(cf.nodes[0].id, 1);
	assert_string_equal(cf.nodes[0].host, "127.0.0.1");
	assert_int_equal(cf.nodes[0].client_port, 7379);
	assert_int_equal(cf.nodes[0].peer_port, 17379);
	assert_true(cf.nodes[0].bootstrap);
}

static void test_comments_blank_lines_crlf_tabs(void **state)
{
	(void)state;
	const char *text = "\xef\xbb\xbf# a cluster for tests\r\n"
			   "\r\n"
			   "   # indented comment\n"
			   "cluster\tmodels-prod.2 # trailing comment\r\n"
			   "\t\n"
			   "node 3 10.0.0.3 7000 8000\n"
			   "  node\t1   10.0.0.1\t7000  8000   # the first\n"
			   "node 2 ::1 7000 8000\n"
			   "node 9223372036854775807 0:0::1 7001 65535\n";
	struct cluster_file cf;
	char err[256] = "";
	assert_int_equal(parse(&cf, text, err, sizeof(err)), 0);
	assert_string_equal(cf.name, "models-prod.2");
	assert_int_equal(cf.n, 4);
	/* File order is kept. */
	assert_int_equal(cf.nodes[0].id, 3);
	assert_int_equal(cf.nodes[1].id, 1);
	assert_string_equal(cf.nodes[1].host, "10.0.0.1");
	assert_string_equal(cf.nodes[2].host, "::1");
	assert_int_equal(cf.nodes[3].id, INT64_MAX);
	assert_int_equal(cf.nodes[3].peer_port, 65535);
	for (size_t i = 0; i < cf.n; i++)
		assert_true(cf.nodes[i].bootstrap);
	assert_non_null(cluster_file_find(&cf, 2));
	assert_ptr_equal(cluster_file_find(&cf, 2), &cf.nodes[2]);
	assert_null(cluster_file_find(&cf, 4));
}

static void test_bootstrap_forms(void **state)
{
	(void)state;
	struct cluster_file cf;
	char err[256] = "";
	/* A bootstrap line may come before the nodes it names, and there may
	 * be several. */
	assert_int_equal(parse(&cf,
			       "bootstrap 2\n"
			       "node 1 127.0.0.1 1 2\n"
			       "node 2 127.0.0.1 3 4\n"
			       "node 3 127.0.0.1 5 6\n"
			       "bootstrap 3 # and this one\n",
			       err, sizeof(err)),
			 0);
	assert_false(cf.nodes[0].bootstrap);
	assert_true(cf.nodes[1].bootstrap);
	assert_true(cf.nodes[2].bootstrap);

	/* An empty bootstrap line: none bootstraps. */
	assert_int_equal(
	    parse(&cf, "node 1 127.0.0.1 1 2\nnode 2 127.0.0.1 3 4\nbootstrap\n", err, sizeof(err)),
	    0);
	assert_false(cf.nodes[0].bootstrap);
	assert_false(cf.nodes[1].bootstrap);
}

/* The same port on different hosts is fine. */
static void test_same_port_other_host(void **state)
{
	(void)state;
	struct cluster_file cf;
	char err[256] = "";
	assert_int_equal(parse(&cf,
			       "node 1 127.0.0.1 7379 17379\n"
			       "node 2 127.0.0.2 7379 17379\n"
			       "node 3 ::1 7379 17379\n",
			       err, sizeof(err)),
			 0);
	assert_int_equal(cf.n, 3);
}

/* ---- every error ------------------------------------------------------- */

static void test_errors(void **state)
{
	(void)state;
	expect_error("", "no node lines");
	expect_error("# only a comment\n\ncluster x\n", "no node lines");
	expect_error("node 1 127.0.0.1 1 2\nnodes 2 127.0.0.1 3 4\n",
		     "line 2: unknown directive 'nodes'");
	expect_error("NODE 1 127.0.0.1 1 2\n", "line 1: unknown directive 'NODE'");

	/* cluster */
	expect_error("cluster\nnode 1 127.0.0.1 1 2\n", "line 1: cluster takes one word");
	expect_error("cluster a b\nnode 1 127.0.0.1 1 2\n", "line 1: cluster takes one word");
	expect_error("cluster a/b\nnode 1 127.0.0.1 1 2\n", "line 1: cluster name 'a/b'");
	expect_error("cluster "
		     "a123456789012345678901234567890123456789012345678901234567890123\n"
		     "node 1 127.0.0.1 1 2\n",
		     "line 1: cluster name");
	expect_error("cluster a\n\ncluster b\nnode 1 127.0.0.1 1 2\n",
		     "line 3: a second cluster line (the first is line 1)");

	/* node: shape, id, host, ports */
	expect_error("node 1 127.0.0.1 1\n", "line 1: node takes four words");
	expect_error("node 1 127.0.0.1 1 2 3\n", "line 1: '3' is not http=PORT");
	expect_error("node 1 127.0.0.1 1 2 http=0\n", "line 1: 'http=0' is not http=PORT");
	expect_error("node 1 127.0.0.1 1 2 http=65536\n", "is not http=PORT");
	expect_error("node 1 127.0.0.1 1 2 http=9 x\n", "line 1: node takes four words");
	expect_error("node 0 127.0.0.1 1 2\n", "line 1: node id '0' is not a number");
	expect_error("node -1 127.0.0.1 1 2\n", "line 1: node id '-1'");
	expect_error("node 01 127.0.0.1 1 2\n", "line 1: node id '01'");
	expect_error("node x 127.0.0.1 1 2\n", "line 1: node id 'x'");
	expect_error("node 9223372036854775808 127.0.0.1 1 2\n", "node id '9223372036854775808'");
	expect_error("node 1 localhost 1 2\n",
		     "line 1: host 'localhost' is not a numeric IPv4 or IPv6 address");
	expect_error("node 1 127.0.0.256 1 2\n", "host '127.0.0.256'");
	expect_error("node 1 [::1] 1 2\n", "host '[::1]'");
	expect_error("node 1 "
		     "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee "
		     "1 2\n",
		     "is not a numeric IPv4 or IPv6 address");
	expect_error("node 1 127.0.0.1 0 2\n",
		     "line 1: client port '0' is not a number in 1..65535");
	expect_error("node 1 127.0.0.1 65536 2\n", "client port '65536'");
	expect_error("node 1 127.0.0.1 1 0\n", "line 1: peer port '0' is not a number in 1..65535");
	expect_error("node 1 127.0.0.1 1 70000\n", "peer port '70000'");
	expect_error("node 1 127.0.0.1 1x 2\n", "client port '1x'");
	expect_error("node 1 127.0.0.1 01 2\n", "client port '01'");
	expect_error("node 1 127.0.0.1 +1 2\n", "client port '+1'");

	/* duplicates */
	expect_error("node 1 127.0.0.1 1 2\n# x\nnode 1 127.0.0.2 1 2\n",
		     "line 3: node id 1 is listed twice (first on line 1)");
	expect_error("node 1 127.0.0.1 7379 17379\nnode 2 127.0.0.1 7379 17380\n",
		     "line 2: address 127.0.0.1:7379 is taken: it is node 1's client address on "
		     "line 1");
	expect_error("node 1 127.0.0.1 7379 17379\nnode 2 127.0.0.1 17379 7380\n",
		     "line 2: address 127.0.0.1:17379 is taken: it is node 1's peer address");
	expect_error("node 1 ::1 7379 17379\nnode 2 0:0:0::1 7380 17379\n",
		     "line 2: address [0:0:0::1]:17379 is taken: it is node 1's peer address");
	expect_error("node 1 127.0.0.1 7379 7379\n",
		     "line 1: node 1's client and peer addresses are both 127.0.0.1:7379");

	/* bootstrap */
	expect_error("node 1 127.0.0.1 1 2\n\nbootstrap 1 2\n",
		     "line 3: bootstrap id 2 has no node line");
	expect_error("bootstrap 7\nnode 1 127.0.0.1 1 2\n",
		     "line 1: bootstrap id 7 has no node line");
	expect_error("node 1 127.0.0.1 1 2\nbootstrap 1\nbootstrap 1\n",
		     "line 3: bootstrap id 1 is listed twice (first on line 2)");
	expect_error("node 1 127.0.0.1 1 2\nbootstrap one\n", "line 2: bootstrap id 'one'");
	expect_error("node 1 127.0.0.1 1 2\nbootstrap 0\n", "line 2: bootstrap id '0'");

	/* bytes */
	expect_error("node 1 127.0.0.1 1 2\nnode 2 127.0.0.1 3\x01 4\n",
		     "line 2: control character 0x01");
	char longline[2048];
	memset(longline, ' ', sizeof(longline));
	memcpy(longline + sizeof(longline) - 25, "node 1 127.0.0.1 1 2\n", 22);
	expect_error(longline, "line 1: longer than 1023 bytes");

	struct cluster_file cf;
	char err[256] = "";
	const char with_nul[] = "node 1 127.0.0.1 1 2\ncluster a\0b\n";
	assert_int_equal(cluster_file_parse(&cf, with_nul, sizeof(with_nul) - 1, err, sizeof(err)),
			 SP_ERR_INVAL);
	assert_contains(err, "line 2: contains a NUL byte");
	/* No room for a message is fine. */
	assert_int_equal(parse(&cf, "bogus", NULL, 0), SP_ERR_INVAL);
}

static void test_too_many(void **state)
{
	(void)state;
	struct sp_buf b;
	sp_buf_init(&b);
	for (int i = 1; i <= CLUSTER_FILE_MAX_NODES; i++)
		sp_buf_appendf(&b, "node %d 127.0.0.1 %d %d\n", i, 1000 + i, 2000 + i);
	sp_buf_append(&b, "", 1);
	struct cluster_file cf;
	char err[256] = "";
	assert_int_equal(parse(&cf, sp_buf_begin(&b), err, sizeof(err)), 0);
	assert_int_equal(cf.n, CLUSTER_FILE_MAX_NODES);

	b.len--; /* drop the NUL */
	sp_buf_appendf(&b, "node 65 127.0.0.1 3000 4000\n");
	sp_buf_append(&b, "", 1);
	expect_error(sp_buf_begin(&b), "line 65: more than 64 nodes");

	sp_buf_clear(&b);
	sp_buf_append_str(&b, "node 1 127.0.0.1 1 2\nbootstrap");
	for (int i = 0; i <= CLUSTER_FILE_MAX_NODES; i++)
		sp_buf_appendf(&b, " %d", i + 1);
	sp_buf_append(&b, "\n", 2);
	expect_error(sp_buf_begin(&b), "line 2: more than 64 bootstrap ids");
	sp_buf_free(&b);
}

/* ---- formatting -------------------------------------------------------- */

static void test_format_text(void **state)
{
	(void)state;
	struct cluster_file cf;
	char err[256] = "";
	assert_int_equal(parse(&cf,
			       "cluster c1\nnode 2 ::1 5 6\nnode 1 127.0.0.1 3 4\nbootstrap 1\n",
			       err, sizeof(err)),
			 0);
	struct sp_buf b;
	sp_buf_init(&b);
	assert_int_equal(cluster_file_format(&cf, &b), 0);
	sp_buf_append(&b, "", 1);
	const char *text = sp_buf_begin(&b);
	assert_true(text[0] == '#');
	assert_contains(text, "\ncluster c1\nnode 2 ::1 5 6\nnode 1 127.0.0.1 3 4\nbootstrap 1\n");
	sp_buf_free(&b);
}

/* A struct that breaks a rule is not written, and out is untouched. */
static void test_format_refuses(void **state)
{
	(void)state;
	struct cluster_file cf = {.name = "ok"};
	struct sp_buf b;
	sp_buf_init(&b);
	assert_int_equal(cluster_file_format(&cf, &b), SP_ERR_INVAL); /* no nodes */
	cf.nodes[0] = mknode(1, "127.0.0.1", 1, 2, true);
	cf.n = 1;
	assert_int_equal(cluster_file_format(&cf, &b), 0);
	sp_buf_clear(&b);
	snprintf(cf.name, sizeof(cf.name), "has space");
	assert_int_equal(cluster_file_format(&cf, &b), SP_ERR_INVAL);
	snprintf(cf.name, sizeof(cf.name), "ok");
	cf.nodes[1] = mknode(1, "127.0.0.1", 3, 4, true);
	cf.n = 2;
	assert_int_equal(cluster_file_format(&cf, &b), SP_ERR_INVAL); /* dup id */
	cf.nodes[1] = mknode(2, "127.0.0.1", 2, 4, true);
	assert_int_equal(cluster_file_format(&cf, &b), SP_ERR_INVAL); /* dup endpoint */
	cf.nodes[1] = mknode(2, "example.com", 3, 4, true);
	assert_int_equal(cluster_file_format(&cf, &b), SP_ERR_INVAL);
	cf.nodes[1] = mknode(2, "127.0.0.1", 3, 65536, true);
	assert_int_equal(cluster_file_format(&cf, &b), SP_ERR_INVAL);
	cf.nodes[1] = mknode(0, "127.0.0.1", 3, 4, true);
	assert_int_equal(cluster_file_format(&cf, &b), SP_ERR_INVAL);
	assert_int_equal(b.len, 0);
	assert_int_equal(cluster_file_save(&cf, "/nonexistent/never"), SP_ERR_INVAL);
	sp_buf_free(&b);
}

static const char *const hosts[] = {"127.0.0.1", "127.0.0.2", "10.1.2.3",   "::1",
				    "fe80::1",	 "0.0.0.0",   "2001:db8::7"};

/* random_file fills cf with 1..64 random nodes, by cluster_file_add (which
 * refuses the duplicates a random draw makes now and then). */
static void random_file(uint64_t *s, struct cluster_file *cf)
{
	static const char chars[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
	memset(cf, 0, sizeof(*cf));
	size_t nlen = 1 + tu_rnd(s, 63);
	for (size_t i = 0; i < nlen; i++)
		cf->name[i] = chars[tu_rnd(s, sizeof(chars) - 1)];
	size_t want = 1 + tu_rnd(s, CLUSTER_FILE_MAX_NODES);
	bool any_boot = tu_rnd(s, 4) != 0;
	while (cf->n < want) {
		uint64_t id =
		    tu_rnd(s, 3) == 0 ? (uint64_t)INT64_MAX - tu_rnd(s, 100) : 1 + tu_rnd(s, 200);
		int lowport = tu_rnd(s, 5) == 0;
		struct cluster_node n =
		    mknode(id, hosts[tu_rnd(s, sizeof(hosts) / sizeof(hosts[0]))],
			   lowport ? 1 + (int)tu_rnd(s, 20) : 1 + (int)tu_rnd(s, 65535),
			   1 + (int)tu_rnd(s, 65535), any_boot && tu_rnd(s, 2));
		int rc = cluster_file_add(cf, &n);
		assert_true(rc == 0 || rc == SP_ERR_EXISTS);
	}
}

static bool file_equal(const struct cluster_file *a, const struct cluster_file *b)
{
	if (strcmp(a->name, b->name) != 0 || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct cluster_node *x = &a->nodes[i], *y = &b->nodes[i];
		if (x->id != y->id || strcmp(x->host, y->host) != 0 ||
		    x->client_port != y->client_port || x->peer_port != y->peer_port ||
		    x->http_port != y->http_port || x->bootstrap != y->bootstrap)
			return false;
	}
	return true;
}

static void test_prop_roundtrip(void **state)
{
	(void)state;
	uint64_t base = tu_stream(tu_seed(), "cluster_file_roundtrip");
	for (int iter = 0; iter < 2000; iter++) {
		uint64_t s = base + (uint64_t)iter * 0x9e3779b97f4a7c15ull;
		struct cluster_file cf, back;
		struct sp_buf b;
		char err[256] = "";
		random_file(&s, &cf);
		sp_buf_init(&b);
		int rc = cluster_file_format(&cf, &b);
		if (rc == 0)
			rc = cluster_file_parse(&back, sp_buf_begin(&b), b.len, err, sizeof(err));
		if (rc != 0 || !file_equal(&cf, &back)) {
			fprintf(stderr, "round trip failed (rc %d, %s) at iteration %d\n%.*s\n", rc,
				err, iter, (int)b.len, sp_buf_begin(&b));
			fail();
		}
		/* Formatting what was parsed gives the same bytes. */
		struct sp_buf again;
		sp_buf_init(&again);
		assert_int_equal(cluster_file_format(&back, &again), 0);
		assert_int_equal(again.len, b.len);
		assert_memory_equal(sp_buf_begin(&again), sp_buf_begin(&b), b.len);
		sp_buf_free(&again);
		sp_buf_free(&b);
	}
}

/* ---- editing ----------------------------------------------------------- */

static void test_add_remove(void **state)
{
	(void)state;
	struct cluster_file cf = {.name = "edit"};
	struct cluster_node a = mknode(1, "127.0.0.1", 7001, 17001, true);
	struct cluster_node b = mknode(2, "127.0.0.1", 7002, 17002, true);
	struct cluster_node c = mknode(3, "::1", 7001, 17001, false);
	assert_int_equal(cluster_file_add(&cf, &a), 0);
	assert_int_equal(cluster_file_add(&cf, &b), 0);
	assert_int_equal(cluster_file_add(&cf, &c), 0); /* same ports, other host */

	struct cluster_node bad = mknode(2, "127.0.0.2", 1, 2, false);
	assert_int_equal(cluster_file_add(&cf, &bad), SP_ERR_EXISTS); /* id */
	bad = mknode(4, "127.0.0.1", 17002, 9, false);
	assert_int_equal(cluster_file_add(&cf, &bad), SP_ERR_EXISTS); /* b's peer port */
	bad = mknode(4, "0::1", 9, 7001, false);
	assert_int_equal(cluster_file_add(&cf, &bad), SP_ERR_EXISTS); /* c's client port */
	bad = mknode(4, "127.0.0.1", 9, 9, false);
	assert_int_equal(cluster_file_add(&cf, &bad), SP_ERR_EXISTS); /* itself */
	bad = mknode(4, "127.0.0.1", 0, 9, false);
	assert_int_equal(cluster_file_add(&cf, &bad), SP_ERR_INVAL);
	bad = mknode(4, "127.0.0.1", 9, 65536, false);
	assert_int_equal(cluster_file_add(&cf, &bad), SP_ERR_INVAL);
	bad = mknode(4, "node4.example", 9, 10, false);
	assert_int_equal(cluster_file_add(&cf, &bad), SP_ERR_INVAL);
	bad = mknode(0, "127.0.0.1", 9, 10, false);
	assert_int_equal(cluster_file_add(&cf, &bad), SP_ERR_INVAL);
	bad = mknode((uint64_t)INT64_MAX + 1, "127.0.0.1", 9, 10, false);
	assert_int_equal(cluster_file_add(&cf, &bad), SP_ERR_INVAL);
	assert_int_equal(cf.n, 3);

	assert_int_equal(cluster_file_remove(&cf, 2), 0);
	assert_int_equal(cf.n, 2);
	assert_int_equal(cf.nodes[0].id, 1);
	assert_int_equal(cf.nodes[1].id, 3);
	assert_null(cluster_file_find(&cf, 2));
	assert_int_equal(cluster_file_remove(&cf, 2), SP_ERR_NOTFOUND);
	/* Its endpoints are free again. */
	assert_int_equal(cluster_file_add(&cf, &b), 0);
	assert_int_equal(cf.nodes[2].id, 2);

	/* Full. */
	while (cf.n < CLUSTER_FILE_MAX_NODES) {
		struct cluster_node n =
		    mknode(100 + cf.n, "10.0.0.1", 1000 + (int)cf.n, 2000 + (int)cf.n, false);
		assert_int_equal(cluster_file_add(&cf, &n), 0);
	}
	struct cluster_node more = mknode(999, "10.0.0.2", 1, 2, false);
	assert_int_equal(cluster_file_add(&cf, &more), SP_ERR_FULL);
	assert_int_equal(cluster_file_remove(&cf, 1), 0);
	assert_int_equal(cluster_file_add(&cf, &more), 0);
}

/* ---- files ------------------------------------------------------------- */

struct tmpdir {
	char path[64];
};

static int setup_dir(void **state)
{
	struct tmpdir *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	snprintf(t->path, sizeof(t->path), "/tmp/test_cluster_file.XXXXXX");
	if (!mkdtemp(t->path)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown_dir(void **state)
{
	struct tmpdir *t = *state;
	tu_remove_tree(t->path);
	free(t);
	return 0;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_save_load(void **state)
{
	struct tmpdir *t = *state;
	char path[128], err[512] = "";
	snprintf(path, sizeof(path), "%s/cluster.conf", t->path);

	struct cluster_file cf = {.name = "saved"}, back;
	for (int i = 1; i <= 5; i++) {
		struct cluster_node n =
		    mknode((uint64_t)i, "127.0.0.1", 7378 + i, 17378 + i, i <= 3);
		n.http_port = i % 2 ? 9378 + i : 0; /* optional: some have one */
		assert_int_equal(cluster_file_add(&cf, &n), 0);
	}
	assert_int_equal(cluster_file_save(&cf, path), 0);
	assert_int_equal(count_entries(t->path), 1); /* no temporary file left */
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(cluster_file_load(&back, path, err, sizeof(err)), 0);
	assert_true(file_equal(&cf, &back));

	/* Saving again replaces the file whole. */
	assert_int_equal(cluster_file_remove(&cf, 4), 0);
	assert_int_equal(cluster_file_save(&cf, path), 0);
	assert_int_equal(count_entries(t->path), 1);
	assert_int_equal(cluster_file_load(&back, path, err, sizeof(err)), 0);
	assert_int_equal(back.n, 4);
	assert_true(file_equal(&cf, &back));

	/* A parse error names the path and the line. */
	write_file(path, "node 1 127.0.0.1 1 2\nnode 1 127.0.0.1 3 4\n", 42);
	assert_int_equal(cluster_file_load(&back, path, err, sizeof(err)), SP_ERR_INVAL);
	assert_contains(err, path);
	assert_contains(err, ": line 2: node id 1 is listed twice");

	/* Missing file, missing directory. */
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/nope/cluster.conf", t->path);
	assert_int_equal(cluster_file_load(&back, missing, err, sizeof(err)), -ENOENT);
	assert_contains(err, missing);
	assert_int_equal(cluster_file_save(&cf, missing), -ENOENT);

	/* Too big. */
	size_t big = CLUSTER_FILE_MAX_BYTES + 1;
	char *text = malloc(big);
	assert_non_null(text);
	memset(text, '\n', big);
	write_file(path, text, big);
	free(text);
	assert_int_equal(cluster_file_load(&back, path, err, sizeof(err)), SP_ERR_TOOBIG);
	assert_contains(err, "larger than");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal),
	    cmocka_unit_test(test_comments_blank_lines_crlf_tabs),
	    cmocka_unit_test(test_bootstrap_forms),
	    cmocka_unit_test(test_same_port_other_host),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_too_many),
	    cmocka_unit_test(test_format_text),
	    cmocka_unit_test(test_format_refuses),
	    cmocka_unit_test(test_prop_roundtrip),
	    cmocka_unit_test(test_add_remove),
	    cmocka_unit_test_setup_teardown(test_save_load, setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
