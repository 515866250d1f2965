/*
 * test_raft_node: the Raft binding (engine/strong/raft_node.c) with
 * everything real: real log files (raft_log), real TCP on 127.0.0.1 (peer
 * transport), real fsync on the thread pool, and a real state machine.
 *
 * Each test runs a small cluster inside this process, on one uv loop: a
 * node is a peer_net on an ephemeral port (every other node added as a
 * peer) plus a raft_node on its own directory. The state machine is an
 * in-memory key -> value map (entries are "key=value") with streamed
 * snapshots: snapshot_take writes the map to kv-<index>.snap in the node's
 * directory (tmp file, fsync, rename, fsync of the directory),
 * snapshot_read serves it with pread, snapshot_write stages incoming bytes
 * in a temp file and snapshot_install renames that into place and loads
 * it. Raft settings are small so that elections, snapshots (several
 * chunks) and compaction happen within a test's few seconds.
 *
 * Besides what each test asserts, the harness checks invariants on every
 * event and fails the test at the next loop turn when one breaks:
 *  - election safety: at most one leader per term (role_changed);
 *  - state machine safety: every node applies the same entry (term, type,
 *    bytes) at an index, and applies indexes one by one, in order;
 *  - snapshots: taken at the applied index, installed only forward,
 *    received in contiguous chunks;
 *  - a proposal completes once.
 * Every wait is bounded (RUN_UNTIL fails on timeout) and every test ends
 * by closing every node and checking that the loop has no handle left and
 * no file of a node's directory open; ASan/LSan check the memory. The
 * Raft seeds come from a seed printed at the start of each test
 * (RAFT_NODE_TEST_SEED replays the choices, not the timing, which is
 * real). RAFT_NODE_TEST=pattern runs only matching tests;
 * RAFT_NODE_TEST_KEEP=1 keeps the node directories.
 *
 * Regressions these tests caught and now guard: SNAPSHOT_RESP losing its
 * snapshot index on the wire; a committed proposal reported as
 * overwritten after a snapshot install; a follower whose damaged log lost
 * acknowledged entries never repaired; a NULL memmove at install.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "../lib/testutil.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "engine/strong/raft/raft.h"
#include "engine/strong/raft_node.h"
#include "net/peer.h"

#define MAX_NODES      5
#define MAX_CLIENTS    6
#define ELECTION_MS    150
#define HEARTBEAT_MS   50
#define TICK_MS	       5
#define SNAPSHOT_EVERY 50
#define TRAIL	       10
#define CHUNK	       1024
#define ENTRY_MAX      512
#define ALL_NODES      0xffffffffu
#define MAX_OPS	       256

/* ---------------------------------------------------------------------- */
/* The key-value map                                                       */

struct kv {
	char *key, *val;
	size_t klen, vlen;
};

struct kv_map {
	struct kv *v;
	size_t n, cap;
};

static char *dup_bytes(const void *p, size_t len)
{
	char *s = malloc(len + 1);
	assert_non_null(s);
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static void map_clear(struct kv_map *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].val);
	}
	m->n = 0;
}

static void map_free(struct kv_map *m)
{
	map_clear(m);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

static struct kv *map_find(const struct kv_map *m, const char *key, size_t klen)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].klen == klen && memcmp(m->v[i].key, key, klen) == 0)
			return &m->v[i];
	return NULL;
}

static void map_set(struct kv_map *m, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct kv *e = map_find(m, key, klen);
	if (e) {
		free(e->val);
		e->val = dup_bytes(val, vlen);
		e->vlen = vlen;
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->v = realloc(m->v, m->cap * sizeof(*m->v));
		assert_non_null(m->v);
	}
	m->v[m->n++] = (struct kv){
	    .key = dup_bytes(key, klen), .val = dup_bytes(val, vlen), .klen = klen, .vlen = vlen};
}

static const char *map_get(const struct kv_map *m, const char *key)
{
	const struct kv *e = map_find(m, key, strlen(key));
	return e ? e->val : NULL;
}

static bool maps_equal(const struct kv_map *a, const struct kv_map *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct kv *o = map_find(b, a->v[i].key, a->v[i].klen);
		if (!o || o->vlen != a->v[i].vlen || memcmp(o->val, a->v[i].val, o->vlen) != 0)
			return false;
	}
	return true;
}

/* ---------------------------------------------------------------------- */
/* The harness                                                             */

struct harness;

struct tnode {
	struct harness *h;
	int idx;
	uint64_t id;
	bool configured, boot; /* boot: a member of the bootstrap configuration */
	int port;	       /* 0 until first started; kept across restarts */
	char dir[PATH_MAX + 16];
	struct peer_net *net;
	struct raft_node *raft;
	struct kv_map map;
	uint64_t applied;  /* the state machine's index: last applied or installed */
	uint64_t installs; /* snapshots loaded through snapshot_install, all lives */
	/* Snapshots reported done later (snapshot_take returns 1): the index
	 * of the one taken and not yet reported, and a timer that reports it
	 * right after the next install, while that install's log write may
	 * still be syncing. */
	bool defer_snapshots;
	uint64_t deferred;
	uv_timer_t report;
	bool report_init;
};

/* What the first node to apply an index applied there. */
struct applied_rec {
	bool set;
	uint8_t type;
	uint64_t term, hash, by;
};

struct prop;
struct client;

struct harness {
	uv_loop_t loop;
	uv_timer_t poke; /* keeps UV_RUN_ONCE from blocking long in RUN_UNTIL */
	uint64_t seed;
	char root[PATH_MAX];
	struct tnode nodes[MAX_NODES];
	int n_boot;
	struct applied_rec *history;
	size_t cap_history;
	uint64_t *term_leader;
	size_t cap_terms;
	char violation[768];
	bool stopping;
	struct client *clients[MAX_CLIENTS];
	int n_clients;
	struct op *ops; /* operations whose callbacks may outlive a test body */
	int n_ops;
};

static void violate(struct harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violate(struct harness *h, const char *fmt, ...)
{
	if (h->violation[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->violation, sizeof(h->violation), fmt, ap);
	va_end(ap);
}

static void check_violation(struct harness *h)
{
	if (h->violation[0])
		fail_msg("invariant broken: %s", h->violation);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
	uint64_t x = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		x ^= p[i];
		x *= 0x100000001b3ull;
	}
	return x;
}

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000;
}

static struct raft *core_of(const struct tnode *n)
{
	return raft_node_core(n->raft);
}

static struct raft_node_stats node_stats(const struct tnode *n)
{
	struct raft_node_stats st;
	raft_node_get_stats(n->raft, &st);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Clients: keep a window of proposals in flight on the leader             */

struct prop {
	struct client *c;
	int seq;
	bool done;
	int err;
	uint64_t index;
};

struct client {
	struct harness *h;
	char prefix[16];
	int total, window, nkeys, vlen;
	bool retry; /* re-propose after an error instead of counting a failure */
	struct prop *props;
	int *idle; /* seqs still to propose, next on top */
	int n_idle;
	int inflight, ok, failed, retries, first_err;
};

static int leader_idx(struct harness *h);

/* client_entry writes proposal seq's "key=value" into buf. */
static size_t client_entry(const struct client *c, int seq, char *buf, size_t cap)
{
	int len = snprintf(buf, cap, "%s%d=v%d-", c->prefix, seq % c->nkeys, seq);
	assert_true(len > 0 && (size_t)len < cap);
	while (len < c->vlen && (size_t)len + 1 < cap) {
		buf[len] = (char)('a' + (seq + len) % 26);
		len++;
	}
	buf[len] = '\0';
	return (size_t)len;
}

static void client_pump(struct client *c);

static void prop_done(void *arg, int err, uint64_t index)
{
	struct prop *p = arg;
	struct client *c = p->c;
	if (p->done) {
		violate(c->h, "proposal %s#%d completed twice (err %d, index %" PRIu64 ")",
			c->prefix, p->seq, err, index);
		return;
	}
	c->inflight--;
	if (err == 0) {
		p->done = true;
		p->index = index;
		c->ok++;
	} else if (c->retry && !c->h->stopping) {
		c->retries++;
		c->idle[c->n_idle++] = p->seq;
	} else {
		p->done = true;
		p->err = err;
		p->index = index;
		c->failed++;
		if (!c->first_err)
			c->first_err = err;
	}
	client_pump(c);
}

/* client_pump proposes idle entries on the current leader until the
 * window is full. Refusals (not leader, full) leave them idle. */
static void client_pump(struct client *c)
{
	struct harness *h = c->h;
	if (h->stopping || !c->n_idle || c->inflight >= c->window)
		return;
	int l = leader_idx(h);
	if (l < 0)
		return;
	struct tnode *n = &h->nodes[l];
	while (c->n_idle && c->inflight < c->window) {
		int seq = c->idle[c->n_idle - 1];
		char buf[ENTRY_MAX];
		size_t len = client_entry(c, seq, buf, sizeof(buf));
		int rc = raft_node_propose(n->raft, buf, len, prop_done, &c->props[seq]);
		if (rc == SP_ERR_NOTLEADER || rc == SP_ERR_FULL)
			return;
		if (rc != 0) {
			violate(h, "raft_node_propose: unexpected %s", sp_strerror(rc));
			return;
		}
		c->n_idle--;
		c->inflight++;
	}
}

static struct client *client_new(struct harness *h, const char *prefix, int total, int window,
				 int nkeys, int vlen, bool retry)
{
	assert_true(h->n_clients < MAX_CLIENTS);
	struct client *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->h = h;
	snprintf(c->prefix, sizeof(c->prefix), "%s", prefix);
	c->total = total;
	c->window = window;
	c->nkeys = nkeys;
	c->vlen = vlen;
	c->retry = retry;
	c->props = calloc((size_t)total, sizeof(*c->props));
	c->idle = calloc((size_t)total, sizeof(*c->idle));
	assert_non_null(c->props);
	assert_non_null(c->idle);
	for (int i = 0; i < total; i++) {
		c->props[i].c = c;
		c->props[i].seq = i;
		c->idle[i] = total - 1 - i;
	}
	c->n_idle = total;
	h->clients[h->n_clients++] = c;
	client_pump(c);
	return c;
}

static bool client_finished(const struct client *c)
{
	return c->ok + c->failed == c->total;
}

/* The value the last write to key seq % nkeys left, when proposals were
 * made (and so committed) in seq order. */
static void client_expected(const struct client *c, int key, char *kbuf, size_t kcap, char *vbuf,
			    size_t vcap)
{
	int last = key;
	while (last + c->nkeys < c->total)
		last += c->nkeys;
	char buf[ENTRY_MAX];
	client_entry(c, last, buf, sizeof(buf));
	char *eq = strchr(buf, '=');
	assert_non_null(eq);
	*eq = '\0';
	snprintf(kbuf, kcap, "%s", buf);
	snprintf(vbuf, vcap, "%s", eq + 1);
}

/* A single operation (proposal or read) and what its callback saw. */
struct op {
	struct tnode *node; /* for a read: whose map to read at completion */
	const char *key;
	bool done;
	int err;
	uint64_t index;
	uint64_t applied_at_cb;
	char value[ENTRY_MAX];
	bool found;
};

/* Where proposals that must be refused would report, were they taken. */
static struct op stray_op;

/* op_new hands out n zeroed operations owned by the harness: a callback
 * may fire in teardown, after a failed test body has unwound its stack. */
static struct op *op_new(struct harness *h, int n)
{
	assert_true(h->n_ops + n <= MAX_OPS);
	struct op *o = &h->ops[h->n_ops];
	h->n_ops += n;
	memset(o, 0, (size_t)n * sizeof(*o));
	return o;
}

static bool ops_done(const struct op *ops, int n)
{
	for (int i = 0; i < n; i++)
		if (!ops[i].done)
			return false;
	return true;
}

static void op_cb(void *arg, int err, uint64_t index)
{
	struct op *o = arg;
	if (o->done && o->node)
		violate(o->node->h, "an operation completed twice");
	o->done = true;
	o->err = err;
	o->index = index;
	if (o->node && o->node->raft && err == 0) {
		o->applied_at_cb = o->node->applied;
		if (o->key) {
			const char *v = map_get(&o->node->map, o->key);
			o->found = v != NULL;
			snprintf(o->value, sizeof(o->value), "%s", v ? v : "");
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Running the loop                                                        */

static void dump_cluster(struct harness *h);

static void pump_clients(struct harness *h)
{
	for (int i = 0; i < h->n_clients; i++)
		client_pump(h->clients[i]);
}

static void poke_cb(uv_timer_t *t)
{
	(void)t;
}

/* RUN_WAIT runs the loop until cond holds or ms pass, and sets ok to
 * whether it held; RUN_UNTIL fails the test when it did not. Both fail it
 * at once when an invariant breaks. */
#define RUN_WAIT(h, cond, ms, ok)                                                                  \
	do {                                                                                       \
		uint64_t until_ = now_ms() + (ms);                                                 \
		(ok) = false;                                                                      \
		uv_timer_start(&(h)->poke, poke_cb, 10, 10);                                       \
		while (!(h)->violation[0] && !((ok) = (cond)) && now_ms() < until_) {              \
			uv_run(&(h)->loop, UV_RUN_ONCE);                                           \
			pump_clients(h);                                                           \
		}                                                                                  \
		uv_timer_stop(&(h)->poke);                                                         \
		check_violation(h);                                                                \
		if (!(ok))                                                                         \
			dump_cluster(h);                                                           \
	} while (0)

#define RUN_UNTIL(h, cond, ms)                                                                     \
	do {                                                                                       \
		bool held_;                                                                        \
		RUN_WAIT(h, cond, ms, held_);                                                      \
		if (!held_)                                                                        \
			fail_msg("%s:%d: not true within %d ms: %s", __FILE__, __LINE__,           \
				 (int)(ms), #cond);                                                \
	} while (0)

static void run_for(struct harness *h, uint64_t ms)
{
	uint64_t until = now_ms() + ms;
	uv_timer_start(&h->poke, poke_cb, 10, 10);
	while (!h->violation[0] && now_ms() < until) {
		uv_run(&h->loop, UV_RUN_ONCE);
		pump_clients(h);
	}
	uv_timer_stop(&h->poke);
	check_violation(h);
}

/* ---------------------------------------------------------------------- */
/* Invariant records                                                       */

static void record_applied(struct harness *h, struct tnode *n, const struct raft_entry *e)
{
	if (e->index >= h->cap_history) {
		size_t cap = h->cap_history ? h->cap_history : 1024;
		while (cap <= e->index)
			cap *= 2;
		h->history = realloc(h->history, cap * sizeof(*h->history));
		assert_non_null(h->history);
		memset(h->history + h->cap_history, 0,
		       (cap - h->cap_history) * sizeof(*h->history));
		h->cap_history = cap;
	}
	struct applied_rec *a = &h->history[e->index];
	uint64_t hash = fnv1a(e->data, e->len);
	if (!a->set) {
		*a = (struct applied_rec){
		    .set = true, .type = e->type, .term = e->term, .hash = hash, .by = n->id};
		return;
	}
	if (a->term != e->term || a->type != e->type || a->hash != hash)
		violate(h,
			"state machine safety: node %" PRIu64 " applied index %" PRIu64
			" as (term %" PRIu64 ", type %u, %.*s), node %" PRIu64 " as (term %" PRIu64
			", type %u)",
			n->id, e->index, e->term, e->type, (int)(e->len < 40 ? e->len : 40),
			e->data ? (const char *)e->data : "", a->by, a->term, a->type);
}

static void record_leader(struct harness *h, struct tnode *n, uint64_t term)
{
	if (term >= h->cap_terms) {
		size_t cap = h->cap_terms ? h->cap_terms : 64;
		while (cap <= term)
			cap *= 2;
		h->term_leader = realloc(h->term_leader, cap * sizeof(*h->term_leader));
		assert_non_null(h->term_leader);
		memset(h->term_leader + h->cap_terms, 0,
		       (cap - h->cap_terms) * sizeof(*h->term_leader));
		h->cap_terms = cap;
	}
	if (h->term_leader[term] && h->term_leader[term] != n->id)
		violate(h,
			"election safety: nodes %" PRIu64 " and %" PRIu64 " both led term %" PRIu64,
			h->term_leader[term], n->id, term);
	h->term_leader[term] = n->id;
}

/* ---------------------------------------------------------------------- */
/* The state machine                                                       */

#define SNAP_MAGIC "SPKVSNP1"

static void snap_path(const struct tnode *n, uint64_t index, char *out, size_t cap)
{
	snprintf(out, cap, "%s/kv-%016" PRIx64 ".snap", n->dir, index);
}

static void staging_path(const struct tnode *n, char *out, size_t cap)
{
	snprintf(out, cap, "%s/kv-incoming.part", n->dir);
}

static void put_u32(struct sp_buf *b, uint32_t v)
{
	uint8_t p[4];
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	sp_buf_append(b, p, 4);
}

static void put_u64(struct sp_buf *b, uint64_t v)
{
	uint8_t p[8];
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	sp_buf_append(b, p, 8);
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

static int write_all(int fd, const void *p, size_t len, uint64_t offset)
{
	const uint8_t *b = p;
	while (len) {
		ssize_t w = pwrite(fd, b, len, (off_t)offset);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		len -= (size_t)w;
		offset += (uint64_t)w;
	}
	return 0;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	uint8_t *p = malloc((size_t)st.st_size + 1);
	assert_non_null(p);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = pread(fd, p + got, (size_t)st.st_size - got, (off_t)got);
		if (r <= 0) {
			int rc = r < 0 ? -errno : SP_ERR_IO;
			free(p);
			close(fd);
			return rc;
		}
		got += (size_t)r;
	}
	close(fd);
	*out = p;
	*len = got;
	return 0;
}

/* snap_load replaces n's map with the snapshot file at path, which must
 * stand for index. */
static int snap_load(struct tnode *n, const char *path, uint64_t index)
{
	uint8_t *p;
	size_t len;
	int rc = read_file(path, &p, &len);
	if (rc)
		return rc;
	rc = SP_ERR_CORRUPT;
	if (len < 20 || memcmp(p, SNAP_MAGIC, 8) != 0 || get_le(p + 8, 8) != index)
		goto free_bytes;
	uint64_t count = get_le(p + 16, 4);
	size_t pos = 20;
	struct kv_map m = {0};
	for (uint64_t i = 0; i < count; i++) {
		if (len - pos < 8)
			goto free_map;
		size_t kl = get_le(p + pos, 4), vl = get_le(p + pos + 4, 4);
		pos += 8;
		if (len - pos < kl + vl)
			goto free_map;
		map_set(&m, (const char *)p + pos, kl, (const char *)p + pos + kl, vl);
		pos += kl + vl;
	}
	if (pos != len)
		goto free_map;
	map_free(&n->map);
	n->map = m;
	free(p);
	return 0;
free_map:
	map_free(&m);
free_bytes:
	free(p);
	return rc;
}

static void fsm_apply(void *ctx, const struct raft_entry *e)
{
	struct tnode *n = ctx;
	struct harness *h = n->h;
	if (e->index != n->applied + 1)
		violate(h, "node %" PRIu64 " applied index %" PRIu64 " after %" PRIu64, n->id,
			e->index, n->applied);
	n->applied = e->index;
	record_applied(h, n, e);
	if (e->type != RAFT_ENTRY_NORMAL)
		return;
	const uint8_t *eq = e->len ? memchr(e->data, '=', e->len) : NULL;
	if (!eq) {
		violate(h, "node %" PRIu64 " applied a malformed entry at %" PRIu64, n->id,
			e->index);
		return;
	}
	size_t kl = (size_t)(eq - e->data);
	map_set(&n->map, (const char *)e->data, kl, (const char *)eq + 1, e->len - kl - 1);
}

static int fsm_snapshot_take(void *ctx, uint64_t index)
{
	struct tnode *n = ctx;
	if (index != n->applied) {
		violate(n->h,
			"node %" PRIu64 " asked for a snapshot at %" PRIu64 ", applied %" PRIu64,
			n->id, index, n->applied);
		return SP_ERR_INVAL;
	}
	struct sp_buf b;
	sp_buf_init(&b);
	sp_buf_append(&b, SNAP_MAGIC, 8);
	put_u64(&b, index);
	put_u32(&b, (uint32_t)n->map.n);
	for (size_t i = 0; i < n->map.n; i++) {
		put_u32(&b, (uint32_t)n->map.v[i].klen);
		put_u32(&b, (uint32_t)n->map.v[i].vlen);
		sp_buf_append(&b, n->map.v[i].key, n->map.v[i].klen);
		sp_buf_append(&b, n->map.v[i].val, n->map.v[i].vlen);
	}
	char path[PATH_MAX + 64], tmp[PATH_MAX + 80];
	snap_path(n, index, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto free_buf;
	}
	rc = write_all(fd, sp_buf_begin(&b), b.len, 0);
	if (!rc && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	if (!rc)
		rc = fsync_dir(n->dir);
free_buf:
	sp_buf_free(&b);
	if (rc == 0 && n->defer_snapshots) {
		n->deferred = index;
		return 1;
	}
	return rc;
}

static void report_deferred(uv_timer_t *t)
{
	struct tnode *n = t->data;
	if (n->deferred && n->raft)
		raft_node_snapshot_done(n->raft, n->deferred, 0);
	n->deferred = 0;
}

static int fsm_snapshot_read(void *ctx, uint64_t index, uint64_t offset, uint8_t *buf, uint32_t cap,
			     bool *last)
{
	struct tnode *n = ctx;
	char path[PATH_MAX + 64];
	snap_path(n, index, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto close_fd;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (offset > size) {
		rc = SP_ERR_INVAL;
		goto close_fd;
	}
	uint64_t want = size - offset < cap ? size - offset : cap;
	uint64_t got = 0;
	while (got < want) {
		ssize_t r = pread(fd, buf + got, want - got, (off_t)(offset + got));
		if (r <= 0) {
			rc = r < 0 ? -errno : SP_ERR_IO;
			goto close_fd;
		}
		got += (uint64_t)r;
	}
	*last = offset + got >= size;
	rc = (int)got;
close_fd:
	close(fd);
	return rc;
}

static int fsm_snapshot_write(void *ctx, const struct raft_snapshot_meta *m, uint64_t offset,
			      const uint8_t *p, uint32_t len)
{
	struct tnode *n = ctx;
	char path[PATH_MAX + 64];
	staging_path(n, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (offset == 0 ? O_TRUNC : 0), 0644);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = fstat(fd, &st) ? -errno : 0;
	if (!rc && (uint64_t)st.st_size != offset)
		violate(n->h,
			"node %" PRIu64 ": snapshot %" PRIu64 " chunk at %" PRIu64 " but %" PRIu64
			" bytes staged",
			n->id, m->index, offset, (uint64_t)st.st_size);
	if (!rc)
		rc = write_all(fd, p, len, offset);
	close(fd);
	return rc;
}

static int fsm_snapshot_install(void *ctx, const struct raft_snapshot_meta *m)
{
	struct tnode *n = ctx;
	char staged[PATH_MAX + 64], path[PATH_MAX + 64];
	staging_path(n, staged, sizeof(staged));
	snap_path(n, m->index, path, sizeof(path));
	int fd = open(staged, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	if (rc)
		return rc;
	if (rename(staged, path) != 0)
		return -errno;
	rc = fsync_dir(n->dir);
	if (rc)
		return rc;
	if (m->index <= n->applied)
		violate(n->h,
			"node %" PRIu64 " told to install snapshot %" PRIu64 " at applied %" PRIu64,
			n->id, m->index, n->applied);
	rc = snap_load(n, path, m->index);
	if (rc) {
		violate(n->h, "node %" PRIu64 ": received snapshot %" PRIu64 " does not load: %s",
			n->id, m->index, sp_strerror(rc));
		return rc;
	}
	n->applied = m->index;
	n->installs++;
	if (n->defer_snapshots && n->deferred) {
		if (!n->report_init) {
			uv_timer_init(&n->h->loop, &n->report);
			n->report.data = n;
			n->report_init = true;
		}
		uv_timer_start(&n->report, report_deferred, 0, 0);
	}
	return 0;
}

static void fsm_role_changed(void *ctx, enum raft_role role, uint64_t term, uint64_t leader)
{
	struct tnode *n = ctx;
	if (role == RAFT_LEADER) {
		if (leader != n->id)
			violate(n->h,
				"node %" PRIu64 " leads term %" PRIu64 " naming leader %" PRIu64,
				n->id, term, leader);
		record_leader(n->h, n, term);
	}
}

static void on_frame(void *ctx, uint64_t from, uint8_t channel, const uint8_t *payload, size_t len)
{
	struct tnode *n = ctx;
	if (channel == RAFT_NODE_CHANNEL && n->raft)
		raft_node_recv(n->raft, from, payload, len);
}

/* ---------------------------------------------------------------------- */
/* Nodes                                                                   */

static void node_config(struct harness *h, int i, bool boot)
{
	struct tnode *n = &h->nodes[i];
	n->h = h;
	n->idx = i;
	n->id = (uint64_t)i + 1;
	n->configured = true;
	n->boot = boot;
	snprintf(n->dir, sizeof(n->dir), "%s/n%d", h->root, i + 1);
}

/* node_start opens node i's transport (on its old port after a restart)
 * and its raft_node on its directory, then loads the snapshot the log
 * says the state machine is at (raft_node.h: "the state machine must be
 * at its snapshot when opened"). rc_out, when not NULL, receives
 * raft_node_open's result instead of it being asserted. */
static void node_start_rc(struct harness *h, int i, int *rc_out)
{
	struct tnode *n = &h->nodes[i];
	assert_true(n->configured);
	assert_null(n->net);
	struct peer_net_config pc = {
	    .self_id = n->id,
	    .port = n->port,
	    .on_frame = on_frame,
	    .ctx = n,
	    .reconnect_min_ms = 5,
	    .reconnect_max_ms = 100,
	    .seed = h->seed + n->id,
	};
	int rc = 0;
	for (int attempt = 0; attempt < 100; attempt++) {
		rc = peer_net_open(&n->net, &h->loop, &pc);
		if (rc != UV_EADDRINUSE)
			break;
		run_for(h, 20);
	}
	assert_int_equal(rc, 0);
	n->port = peer_net_port(n->net);
	assert_true(n->port > 0);
	for (int j = 0; j < MAX_NODES; j++) {
		struct tnode *o = &h->nodes[j];
		if (j == i || !o->configured || !o->port)
			continue;
		assert_int_equal(peer_net_add_peer(n->net, o->id, "127.0.0.1", o->port), 0);
		if (o->net) {
			rc = peer_net_add_peer(o->net, n->id, "127.0.0.1", n->port);
			assert_true(rc == 0 || rc == SP_ERR_EXISTS);
		}
	}

	struct raft_node_config cfg = {
	    .dir = n->dir, .tick_ms = TICK_MS, .snapshot_every = SNAPSHOT_EVERY};
	raft_config_default(&cfg.raft, n->id);
	uint64_t seed_state = h->seed ^ (n->id * 7919);
	cfg.raft.seed = rnd(&seed_state);
	cfg.raft.election_timeout_ms = ELECTION_MS;
	cfg.raft.heartbeat_ms = HEARTBEAT_MS;
	cfg.raft.max_snapshot_chunk = CHUNK;
	cfg.raft.compaction_trail = TRAIL;
	if (n->boot) {
		for (int j = 0; j < MAX_NODES; j++)
			if (h->nodes[j].configured && h->nodes[j].boot) {
				cfg.bootstrap.members[cfg.bootstrap.n].id = h->nodes[j].id;
				cfg.bootstrap.members[cfg.bootstrap.n].role = RAFT_VOTER;
				cfg.bootstrap.n++;
			}
	}
	struct raft_node_fsm fsm = {
	    .ctx = n,
	    .apply = fsm_apply,
	    .snapshot_take = fsm_snapshot_take,
	    .snapshot_read = fsm_snapshot_read,
	    .snapshot_write = fsm_snapshot_write,
	    .snapshot_install = fsm_snapshot_install,
	    .role_changed = fsm_role_changed,
	};
	map_clear(&n->map);
	n->applied = 0;
	rc = raft_node_open(&n->raft, &h->loop, n->net, &cfg, &fsm);
	if (rc_out) {
		*rc_out = rc;
		if (rc)
			return;
	} else {
		assert_int_equal(rc, 0);
	}
	uint64_t s = raft_snapshot_index(core_of(n));
	if (s) {
		char path[PATH_MAX + 64];
		snap_path(n, s, path, sizeof(path));
		rc = snap_load(n, path, s);
		if (rc)
			fail_msg("node %" PRIu64 ": the log says snapshot %" PRIu64
				 " but it does not load: %s",
				 n->id, s, sp_strerror(rc));
	}
	n->applied = s;
}

static void node_start(struct harness *h, int i)
{
	node_start_rc(h, i, NULL);
}

/* dir_has_open_fd says whether this process holds a file under dir open
 * (the log's segments): a closed node must have let go of them all. */
static bool dir_has_open_fd(const char *dir)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return false;
	size_t len = strlen(dir);
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d)) != NULL) {
		char p[300], target[PATH_MAX];
		snprintf(p, sizeof(p), "/proc/self/fd/%s", de->d_name);
		ssize_t r = readlink(p, target, sizeof(target) - 1);
		if (r <= 0)
			continue;
		target[r] = '\0';
		if (strncmp(target, dir, len) == 0 && (target[len] == '/' || target[len] == '\0'))
			found = true;
	}
	closedir(d);
	return found;
}

/* node_stop closes node i (as a crash would leave its files: raft_node
 * drops what it had not written) and waits until its files are closed. */
static void node_stop(struct harness *h, int i)
{
	struct tnode *n = &h->nodes[i];
	struct raft_node *r = n->raft;
	n->raft = NULL;
	if (n->report_init) {
		uv_close((uv_handle_t *)&n->report, NULL);
		n->report_init = false;
	}
	raft_node_close(r);
	peer_net_close(n->net);
	n->net = NULL;
	RUN_UNTIL(h, !dir_has_open_fd(n->dir), 5000);
}

static void start_cluster(struct harness *h, int n)
{
	for (int i = 0; i < n; i++)
		node_config(h, i, true);
	h->n_boot = n;
	for (int i = 0; i < n; i++)
		node_start(h, i);
}

/* leader_idx is the running node that leads the highest term, or -1. */
static int leader_idx(struct harness *h)
{
	int best = -1;
	uint64_t term = 0;
	for (int i = 0; i < MAX_NODES; i++) {
		struct tnode *n = &h->nodes[i];
		if (!n->raft || raft_role_of(core_of(n)) != RAFT_LEADER)
			continue;
		if (best < 0 || raft_term(core_of(n)) > term) {
			best = i;
			term = raft_term(core_of(n));
		}
	}
	return best;
}

static int count_leaders(struct harness *h)
{
	int k = 0;
	for (int i = 0; i < MAX_NODES; i++)
		if (h->nodes[i].raft && raft_role_of(core_of(&h->nodes[i])) == RAFT_LEADER)
			k++;
	return k;
}

/* one_leader: exactly one running node leads, and every running member
 * of the configuration follows it in its term. */
static bool one_leader(struct harness *h)
{
	if (count_leaders(h) != 1)
		return false;
	struct tnode *l = &h->nodes[leader_idx(h)];
	for (int i = 0; i < MAX_NODES; i++) {
		struct tnode *n = &h->nodes[i];
		if (!n->raft || !raft_conf_role(raft_configuration(core_of(l)), n->id))
			continue;
		if (raft_leader(core_of(n)) != l->id ||
		    raft_term(core_of(n)) != raft_term(core_of(l)))
			return false;
	}
	return true;
}

static int follower_of(struct harness *h, int leader, uint64_t pick)
{
	int cand[MAX_NODES], k = 0;
	for (int i = 0; i < MAX_NODES; i++)
		if (i != leader && h->nodes[i].raft && h->nodes[i].boot)
			cand[k++] = i;
	assert_true(k > 0);
	return cand[pick % (uint64_t)k];
}

/* converged: the leader has applied everything it committed, and every
 * running node in mask has applied as far. */
static bool converged(struct harness *h, uint32_t mask)
{
	int l = leader_idx(h);
	if (l < 0 || !(mask & (1u << l)))
		return false;
	struct tnode *ln = &h->nodes[l];
	if (ln->applied != raft_commit_index(core_of(ln)))
		return false;
	for (int i = 0; i < MAX_NODES; i++) {
		struct tnode *n = &h->nodes[i];
		if ((mask & (1u << i)) && n->raft && n->applied != ln->applied)
			return false;
	}
	return true;
}

static void assert_maps_equal(struct harness *h, uint32_t mask)
{
	int l = leader_idx(h);
	assert_true(l >= 0);
	struct tnode *ln = &h->nodes[l];
	for (int i = 0; i < MAX_NODES; i++) {
		struct tnode *n = &h->nodes[i];
		if (i == l || !(mask & (1u << i)) || !n->raft)
			continue;
		if (!maps_equal(&ln->map, &n->map))
			fail_msg("node %" PRIu64 "'s map (%zu keys, applied %" PRIu64
				 ") differs from leader %" PRIu64 "'s (%zu keys, applied %" PRIu64
				 ")",
				 n->id, n->map.n, n->applied, ln->id, ln->map.n, ln->applied);
	}
}

/* dump_cluster prints every node's view, for a failed wait. */
static void dump_cluster(struct harness *h)
{
	for (int i = 0; i < MAX_NODES; i++) {
		struct tnode *n = &h->nodes[i];
		if (!n->raft)
			continue;
		struct raft *r = core_of(n);
		struct raft_node_stats st = node_stats(n);
		const struct raft_conf *c = raft_configuration(r);
		char conf[128] = "";
		size_t off = 0;
		for (uint32_t k = 0; k < c->n && off < sizeof(conf) - 24; k++)
			off += (size_t)snprintf(conf + off, sizeof(conf) - off, "%s%" PRIu64 "%s",
						k ? "," : "", c->members[k].id,
						c->members[k].role == RAFT_VOTER ? "" : "(l)");
		print_message("  node %" PRIu64 ": %s term %" PRIu64 " leader %" PRIu64
			      " commit %" PRIu64 " applied %" PRIu64 "/%" PRIu64 " log %" PRIu64
			      "..%" PRIu64 " snap %" PRIu64 " conf {%s} installed %" PRIu64
			      "/%" PRIu64 " taken %" PRIu64 " syncs %" PRIu64 " keys %zu\n",
			      n->id, raft_role_name(raft_role_of(r)), raft_term(r), raft_leader(r),
			      raft_commit_index(r), raft_applied_index(r), n->applied,
			      raft_first_index(r), raft_last_index(r), raft_snapshot_index(r), conf,
			      st.snapshots_installed, n->installs, st.snapshots_taken, st.syncs,
			      n->map.n);
	}
	for (int i = 0; i < h->n_clients; i++) {
		struct client *c = h->clients[i];
		print_message("  client %s: %d ok, %d failed, %d in flight, %d idle, %d retries\n",
			      c->prefix, c->ok, c->failed, c->inflight, c->n_idle, c->retries);
	}
}

static void wait_client(struct harness *h, struct client *c, int ms)
{
	RUN_UNTIL(h, client_finished(c), ms);
	if (c->failed)
		fail_msg("client %s: %d of %d proposals failed (first: %s)", c->prefix, c->failed,
			 c->total, sp_strerror(c->first_err));
}

/* ---------------------------------------------------------------------- */
/* Setup and teardown                                                      */

static uint64_t test_seed(void)
{
	const char *env = getenv("RAFT_NODE_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ uv_hrtime();
	print_message("seed %" PRIu64 " (RAFT_NODE_TEST_SEED to replay)\n", seed);
	return seed;
}

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	assert_int_equal(uv_loop_init(&h->loop), 0);
	uv_timer_init(&h->loop, &h->poke);
	h->poke.data = h;
	h->ops = calloc(MAX_OPS, sizeof(*h->ops));
	assert_non_null(h->ops);
	h->seed = test_seed();
	const char *tmp = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/spectra-raft-node-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(tmpl));
	/* The canonical path, so that /proc/self/fd links compare equal. */
	assert_non_null(realpath(tmpl, h->root));
	sp_log_setup(SP_LOG_ERROR, NULL);
	*state = h;
	return 0;
}

static void guard_cb(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void count_handle(uv_handle_t *hd, void *arg)
{
	if (!uv_is_closing(hd))
		(*(int *)arg)++;
}

static int teardown(void **state)
{
	struct harness *h = *state;
	h->stopping = true;
	for (int i = 0; i < MAX_NODES; i++) {
		struct tnode *n = &h->nodes[i];
		struct raft_node *r = n->raft;
		n->raft = NULL;
		if (n->report_init) {
			uv_close((uv_handle_t *)&n->report, NULL);
			n->report_init = false;
		}
		raft_node_close(r);
		peer_net_close(n->net);
		n->net = NULL;
	}
	/* Everything must wind down by itself: no timer may be left running.
	 * The guard (unreferenced, so it keeps nothing alive) only stops a
	 * loop that would not end. */
	uv_timer_start(&h->poke, guard_cb, 5000, 0);
	uv_unref((uv_handle_t *)&h->poke);
	uv_run(&h->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&h->poke, NULL);
	int live = 0;
	uv_walk(&h->loop, count_handle, &live);
	uv_run(&h->loop, UV_RUN_NOWAIT);
	int rc = uv_loop_close(&h->loop);
	bool fds_left = false;
	for (int i = 0; i < MAX_NODES; i++) {
		if (h->nodes[i].configured && dir_has_open_fd(h->nodes[i].dir))
			fds_left = true;
		map_free(&h->nodes[i].map);
	}
	for (int i = 0; i < h->n_clients; i++) {
		free(h->clients[i]->props);
		free(h->clients[i]->idle);
		free(h->clients[i]);
	}
	free(h->history);
	free(h->ops);
	free(h->term_leader);
	if (getenv("RAFT_NODE_TEST_KEEP"))
		print_message("kept %s\n", h->root);
	else
		tu_remove_tree(h->root);
	free(h);
	assert_int_equal(live, 0);
	assert_int_equal(rc, 0);
	assert_false(fds_left);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Log files                                                               */

/* newest_segment finds the highest-numbered rlog-*.seg in dir. */
static void newest_segment(const char *dir, char *out, size_t cap, uint64_t *size)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	char best[256] = "";
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (strncmp(de->d_name, "rlog-", 5) != 0 || l < 9 ||
		    strcmp(de->d_name + l - 4, ".seg") != 0)
			continue;
		if (strcmp(de->d_name, best) > 0)
			snprintf(best, sizeof(best), "%s", de->d_name);
	}
	closedir(d);
	assert_true(best[0] != '\0');
	snprintf(out, cap, "%s/%s", dir, best);
	struct stat st;
	assert_int_equal(stat(out, &st), 0);
	*size = (uint64_t)st.st_size;
}

/* restart_expecting_cut restarts node i and checks that recovery said it
 * cut the log's tail. It returns raft_node_open's result (the node is
 * not running unless it is 0); the recovery log is printed when the open
 * failed or cut nothing. */
static int restart_expecting_cut(struct harness *h, int i)
{
	FILE *cap = tu_log_capture_begin(SP_LOG_WARN);
	int rc;
	node_start_rc(h, i, &rc);
	char *text = tu_log_capture_end(cap);
	bool cut = strstr(text, "dropping the rest of that segment") != NULL;
	if (rc || !cut)
		print_message("node %" PRIu64 " recovery (raft_node_open: %s):\n%s", h->nodes[i].id,
			      rc ? sp_strerror(rc) : "ok", text);
	free(text);
	if (rc == 0)
		assert_true(cut);
	return rc;
}

/* catch_up_or_finding waits, with no new writes, until every node has
 * applied what the leader committed; a restarted node whose log lost
 * entries it had acknowledged must be repaired by the leader. */
static void catch_up_or_finding(struct harness *h, const char *what)
{
	bool ok;
	RUN_WAIT(h, converged(h, ALL_NODES), 3000, ok);
	if (!ok)
		fail_msg(
		    "a follower whose log lost acknowledged entries was not repaired: after %s "
		    "the restarted node did not catch up within 3 s",
		    what);
	assert_maps_equal(h, ALL_NODES);
}

/* ---------------------------------------------------------------------- */
/* 1. Election and replication                                             */

static void test_elect_and_replicate(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	assert_int_equal(count_leaders(h), 1);
	int l = leader_idx(h);
	uint64_t term = raft_term(core_of(&h->nodes[l]));

	struct client *c = client_new(h, "k", 200, 32, 50, 16, false);
	wait_client(h, c, 10000);
	RUN_UNTIL(h, converged(h, ALL_NODES), 3000);
	assert_maps_equal(h, ALL_NODES);

	/* One leader all along: proposals went in seq order, so each key
	 * holds its last write. */
	assert_int_equal(leader_idx(h), l);
	assert_int_equal(raft_term(core_of(&h->nodes[l])), term);
	assert_int_equal(count_leaders(h), 1);
	assert_int_equal(h->nodes[l].map.n, 50);
	for (int k = 0; k < 50; k++) {
		char key[ENTRY_MAX], val[ENTRY_MAX];
		client_expected(c, k, key, sizeof(key), val, sizeof(val));
		const char *got = map_get(&h->nodes[l].map, key);
		assert_non_null(got);
		assert_string_equal(got, val);
	}
	/* Group commit: fewer syncs than entries on the leader. */
	struct raft_node_stats st = node_stats(&h->nodes[l]);
	print_message("leader %" PRIu64 ": %" PRIu64 " syncs for %" PRIu64 " entries, %" PRIu64
		      " records, %" PRIu64 " snapshots taken\n",
		      h->nodes[l].id, st.syncs, st.sync_entries, st.records_written,
		      st.snapshots_taken);
	assert_true(st.syncs > 0);
	assert_true(st.snapshots_taken > 0);
	assert_int_equal(st.recv_bad, 0);
}

/* ---------------------------------------------------------------------- */
/* 2. Linearizable reads                                                   */

static struct op *write_wait(struct harness *h, int node, const char *entry)
{
	struct op *o = op_new(h, 1);
	o->node = &h->nodes[node];
	assert_int_equal(raft_node_propose(h->nodes[node].raft, entry, strlen(entry), op_cb, o), 0);
	RUN_UNTIL(h, o->done, 3000);
	assert_int_equal(o->err, 0);
	return o;
}

static struct op *read_wait(struct harness *h, int node, const char *key)
{
	struct op *o = op_new(h, 1);
	o->node = &h->nodes[node];
	o->key = key;
	assert_int_equal(raft_node_read(h->nodes[node].raft, op_cb, o), 0);
	RUN_UNTIL(h, o->done, 3000);
	assert_int_equal(o->err, 0);
	assert_true(o->applied_at_cb >= o->index);
	return o;
}

static void test_linearizable_reads(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	int l = leader_idx(h);
	int f = follower_of(h, l, h->seed);

	struct op *w = write_wait(h, l, "x=1");
	struct op *r = read_wait(h, l, "x");
	assert_true(r->index >= w->index);
	assert_string_equal(r->value, "1");
	r = read_wait(h, f, "x");
	assert_true(r->index >= w->index);
	assert_string_equal(r->value, "1");

	/* A read on a follower issued right after a write completed on the
	 * leader sees it, though the follower may not have applied it yet. */
	for (int round = 2; round < 12; round++) {
		char entry[32], want[16];
		snprintf(entry, sizeof(entry), "x=%d", round);
		snprintf(want, sizeof(want), "%d", round);
		w = write_wait(h, l, entry);
		r = read_wait(h, round % 2 ? l : f, "x");
		assert_true(r->index >= w->index);
		assert_string_equal(r->value, want);
	}

	/* A burst of reads on both shares heartbeat rounds; all complete. */
	struct op *burst = op_new(h, 40);
	for (int i = 0; i < 40; i++) {
		int node = i % 2 ? l : f;
		burst[i].node = &h->nodes[node];
		burst[i].key = "x";
		assert_int_equal(raft_node_read(h->nodes[node].raft, op_cb, &burst[i]), 0);
	}
	RUN_UNTIL(h, ops_done(burst, 40), 3000);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(burst[i].err, 0);
		assert_string_equal(burst[i].value, "11");
	}

	/* Leases: the leader serves one once a heartbeat round is acked; a
	 * follower never does. */
	RUN_UNTIL(h, raft_node_read_lease(h->nodes[l].raft) == 0, 1000);
	assert_string_equal(map_get(&h->nodes[l].map, "x"), "11");
	assert_int_equal(raft_node_read_lease(h->nodes[f].raft), SP_ERR_NOTLEADER);
	struct raft_node_stats st = node_stats(&h->nodes[l]);
	assert_true(st.core.read_rounds > 0);
	assert_true(st.core.reads > 0);
}

/* ---------------------------------------------------------------------- */
/* 3. Partitioned leader                                                   */

static void partition_off(struct harness *h, int victim)
{
	uint64_t others[MAX_NODES];
	size_t k = 0;
	for (int i = 0; i < MAX_NODES; i++) {
		if (i == victim || !h->nodes[i].configured)
			continue;
		others[k++] = h->nodes[i].id;
		if (h->nodes[i].net)
			peer_net_partition(h->nodes[i].net, &h->nodes[victim].id, 1);
	}
	peer_net_partition(h->nodes[victim].net, others, k);
}

/* new_leader_elected: a node other than old leads a later term and the
 * majority follows it. While waiting it checks the lease: once another
 * leader exists, old must not serve a lease read. */
static bool new_leader_elected(struct harness *h, int old, uint64_t old_term)
{
	int l = leader_idx(h);
	if (l < 0 || l == old || raft_term(core_of(&h->nodes[l])) <= old_term)
		return false;
	if (raft_node_read_lease(h->nodes[old].raft) == 0)
		violate(h,
			"old leader %" PRIu64 " serves a lease read while %" PRIu64
			" leads term %" PRIu64,
			h->nodes[old].id, h->nodes[l].id, raft_term(core_of(&h->nodes[l])));
	for (int i = 0; i < MAX_NODES; i++) {
		struct tnode *n = &h->nodes[i];
		if (i == old || !n->raft)
			continue;
		if (raft_leader(core_of(n)) != h->nodes[l].id)
			return false;
	}
	return true;
}

#define N_STALE 5

/*
 * partition_round cuts the leader off, makes N_STALE proposals on it that
 * cannot commit, waits for the majority to elect another leader (checking
 * leases meanwhile) and for the old one to step down, commits `writes`
 * entries on the new leader, heals and waits until every map is the
 * same. The stale proposals' completions are left to the caller: they
 * come once the old leader learns the entries at their indexes.
 */
static struct op *partition_round(struct harness *h, const char *prefix, int writes,
				  char keys[N_STALE][24])
{
	int old = leader_idx(h);
	assert_true(old >= 0);
	struct tnode *on = &h->nodes[old];
	uint64_t old_term = raft_term(core_of(on));
	partition_off(h, old);
	/* The old leader does not know yet: it takes proposals that can
	 * never commit. */
	struct op *stale = op_new(h, N_STALE);
	for (int i = 0; i < N_STALE; i++) {
		char entry[64];
		snprintf(keys[i], 24, "%s-stale%d", prefix, i);
		snprintf(entry, sizeof(entry), "%s=from-old-leader", keys[i]);
		assert_int_equal(
		    raft_node_propose(on->raft, entry, strlen(entry), op_cb, &stale[i]), 0);
	}
	uint64_t t0 = now_ms();
	RUN_UNTIL(h, new_leader_elected(h, old, old_term), 1500);
	uint64_t elected_ms = now_ms() - t0;
	int nl = leader_idx(h);
	print_message("node %" PRIu64 " cut off; node %" PRIu64 " leads term %" PRIu64
		      " after %" PRIu64 " ms\n",
		      on->id, h->nodes[nl].id, raft_term(core_of(&h->nodes[nl])), elected_ms);
	assert_true(elected_ms <= 1200);

	/* Check-quorum: the old leader steps down by itself, and its lease
	 * is gone. */
	RUN_UNTIL(h, raft_role_of(core_of(on)) != RAFT_LEADER, 1000);
	assert_int_equal(raft_node_read_lease(on->raft), SP_ERR_NOTLEADER);

	/* The majority keeps committing; nothing of the old leader's does. */
	struct client *c = client_new(h, prefix, writes, 8, writes, 8, false);
	wait_client(h, c, 5000);
	for (int i = 0; i < N_STALE; i++)
		assert_false(stale[i].done);

	for (int i = 0; i < MAX_NODES; i++)
		if (h->nodes[i].net)
			peer_net_heal(h->nodes[i].net);
	RUN_UNTIL(h, converged(h, ALL_NODES) && one_leader(h), 3000);
	assert_maps_equal(h, ALL_NODES);
	return stale;
}

/* check_stale: a stale proposal reports success only if it committed,
 * and otherwise SP_ERR_AGAIN (raft_node.h: overwritten by another
 * leader's entry). */
static void check_stale(struct harness *h, const struct op *stale, char keys[N_STALE][24])
{
	struct tnode *ln = &h->nodes[leader_idx(h)];
	for (int i = 0; i < N_STALE; i++) {
		/* 0 must mean committed and SP_ERR_AGAIN never committed;
		 * SP_ERR_UNKNOWN (a snapshot covered it) is honest either way. */
		if (stale[i].err == 0) {
			assert_non_null(map_get(&ln->map, keys[i]));
		} else if (stale[i].err != SP_ERR_UNKNOWN) {
			assert_int_equal(stale[i].err, SP_ERR_AGAIN);
			assert_null(map_get(&ln->map, keys[i]));
		}
	}
}

static void test_partitioned_leader(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 5);
	RUN_UNTIL(h, one_leader(h), 3000);
	struct client *c1 = client_new(h, "a", 20, 8, 20, 8, false);
	wait_client(h, c1, 5000);
	RUN_UNTIL(h, converged(h, ALL_NODES), 3000);

	/* Round 1: few writes, no snapshot yet: the old leader learns the
	 * new entries from the log, overwriting its stale ones. */
	char keys1[N_STALE][24];
	struct op *stale1 = partition_round(h, "b", 5, keys1);
	RUN_UNTIL(h, ops_done(stale1, N_STALE), 3000);
	check_stale(h, stale1, keys1);

	/* Round 2: enough writes that the new leader snapshots and compacts
	 * past the old leader's log: it catches up by snapshot, which covers
	 * the indexes of its stale proposals. They must still complete. */
	char keys2[N_STALE][24];
	struct op *stale2 = partition_round(h, "c", 40, keys2);
	int l = leader_idx(h);
	print_message("leader snapshot %" PRIu64 ", log from %" PRIu64 "\n",
		      raft_snapshot_index(core_of(&h->nodes[l])),
		      raft_first_index(core_of(&h->nodes[l])));
	bool done;
	RUN_WAIT(h, ops_done(stale2, N_STALE), 3000, done);
	if (!done)
		fail_msg("%d of %d stale proposals on the old leader never completed after it "
			 "caught up by snapshot",
			 N_STALE - (int)(stale2[0].done + stale2[1].done + stale2[2].done +
					 stale2[3].done + stale2[4].done),
			 N_STALE);
	check_stale(h, stale2, keys2);
}

/*
 * A proposal that commits while its leader is cut off. The followers
 * receive the entry and acknowledge it, but their answers to the leader
 * are held back (a 100 ms delay) and then dropped by a partition, so the
 * leader never learns that it committed. The majority elects a new leader,
 * which commits the entry with its no-op, writes on until it snapshots and
 * compacts past it; after healing, the old leader catches up by snapshot.
 * Its proposal did commit, so it must not report SP_ERR_AGAIN ("it did not
 * and will not commit", raft_node.h).
 */
static void test_commit_unseen_by_old_leader(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	struct client *c1 = client_new(h, "a", 10, 8, 10, 8, false);
	wait_client(h, c1, 5000);
	RUN_UNTIL(h, converged(h, ALL_NODES), 3000);
	int old = leader_idx(h);
	struct tnode *on = &h->nodes[old];
	uint64_t old_term = raft_term(core_of(on));

	struct peer_faults slow = {.delay_ms = 100};
	for (int i = 0; i < 3; i++)
		if (i != old)
			assert_int_equal(peer_net_set_faults(h->nodes[i].net, on->id, &slow), 0);
	struct op *o = op_new(h, 1);
	assert_int_equal(raft_node_propose(on->raft, "unseen=committed", 16, op_cb, o), 0);
	uint64_t index = raft_last_index(core_of(on));
	RUN_UNTIL(h,
		  raft_last_index(core_of(&h->nodes[(old + 1) % 3])) >= index &&
		      raft_last_index(core_of(&h->nodes[(old + 2) % 3])) >= index,
		  1000);
	partition_off(h, old);
	assert_false(o->done);

	RUN_UNTIL(h, new_leader_elected(h, old, old_term), 1500);
	struct client *c2 = client_new(h, "b", 60, 8, 60, 16, false);
	wait_client(h, c2, 8000);
	int l = leader_idx(h);
	assert_non_null(map_get(&h->nodes[l].map, "unseen")); /* it committed */
	RUN_UNTIL(h, raft_first_index(core_of(&h->nodes[l])) > index + 1, 3000);
	assert_false(o->done);

	for (int i = 0; i < 3; i++)
		peer_net_heal(h->nodes[i].net);
	RUN_UNTIL(h, converged(h, ALL_NODES) && one_leader(h), 4000);
	assert_maps_equal(h, ALL_NODES);
	print_message("old leader %" PRIu64 ": %" PRIu64
		      " snapshots installed; proposal at %" PRIu64 " %s (%s)\n",
		      on->id, node_stats(on).snapshots_installed, index,
		      o->done ? "completed" : "pending", o->done ? sp_strerror(o->err) : "-");
	/* Another write, in case the completion waits for an entry after the
	 * snapshot. */
	struct client *c3 = client_new(h, "c", 3, 3, 3, 8, false);
	wait_client(h, c3, 3000);
	bool done;
	RUN_WAIT(h, o->done, 2000, done);
	if (!done)
		fail_msg("the old leader's committed proposal at %" PRIu64 " never completed",
			 index);
	/* The entry committed (the map holds it) but the old leader caught
	 * up by a snapshot of a later term: it cannot tell, and says so. It
	 * must never claim the entry failed (a client would retry it). */
	if (o->err == SP_ERR_AGAIN)
		fail_msg("the proposal at %" PRIu64
			 " committed (the map holds it) but completed with SP_ERR_AGAIN",
			 index);
	assert_true(o->err == 0 || o->err == SP_ERR_UNKNOWN);
}

/* ---------------------------------------------------------------------- */
/* 4. Catching up by snapshot                                              */

/* outrun_follower commits enough through leader l, while a follower that
 * stopped at f_last hears nothing, for the leader to snapshot and compact
 * past f_last; returns the leader's core. */
static struct raft *outrun_follower(struct harness *h, int l, uint64_t f_last)
{
	struct client *c = client_new(h, "b", 160, 16, 120, 40, false);
	wait_client(h, c, 10000);
	struct raft *lc = core_of(&h->nodes[l]);
	RUN_UNTIL(h, raft_snapshot_index(lc) > f_last && raft_first_index(lc) > f_last + 1, 3000);
	return lc;
}

static void test_snapshot_catch_up(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	int l = leader_idx(h);
	int f = follower_of(h, l, h->seed);
	struct client *c1 = client_new(h, "a", 30, 8, 30, 24, false);
	wait_client(h, c1, 5000);
	RUN_UNTIL(h, converged(h, ALL_NODES), 3000);

	uint64_t f_last = raft_last_index(core_of(&h->nodes[f]));
	/* While f is down the others drop what they would send it instead of
	 * queueing it (peer.h: frames queued for an unreachable peer go out
	 * when it is back): replayed APPENDs from before the compaction would
	 * otherwise catch it up from the log. */
	for (int i = 0; i < MAX_NODES; i++)
		if (i != f && h->nodes[i].net)
			peer_net_partition(h->nodes[i].net, &h->nodes[f].id, 1);
	node_stop(h, f);

	/* Enough for the leader to snapshot and compact past f's log. */
	struct raft *lc = outrun_follower(h, l, f_last);
	char path[PATH_MAX + 64];
	snap_path(&h->nodes[l], raft_snapshot_index(lc), path, sizeof(path));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	print_message("follower %" PRIu64 " stopped at %" PRIu64 "; leader snapshot %" PRIu64
		      " (%lld bytes), log from %" PRIu64 "\n",
		      h->nodes[f].id, f_last, raft_snapshot_index(lc), (long long)st.st_size,
		      raft_first_index(lc));
	assert_true(st.st_size > 2 * CHUNK); /* several chunks */

	struct raft_node_stats before = node_stats(&h->nodes[l]);
	node_start(h, f);
	for (int i = 0; i < MAX_NODES; i++)
		if (i != f && h->nodes[i].net)
			peer_net_heal(h->nodes[i].net);
	RUN_UNTIL(h, node_stats(&h->nodes[f]).snapshots_installed > 0 && converged(h, ALL_NODES),
		  4000);
	assert_maps_equal(h, ALL_NODES);
	struct raft_node_stats after = node_stats(&h->nodes[l]);
	assert_true(after.core.snapshots_sent > before.core.snapshots_sent);
	assert_true(after.core.snapshot_chunks_sent >= before.core.snapshot_chunks_sent + 3);
	assert_true(h->nodes[f].installs > 0);

	/* And it keeps up from the log afterwards. */
	struct client *c3 = client_new(h, "c", 20, 8, 20, 8, false);
	wait_client(h, c3, 5000);
	RUN_UNTIL(h, converged(h, ALL_NODES), 3000);
	assert_maps_equal(h, ALL_NODES);
}

/*
 * Regression: a follower's own snapshot, taken in the background, that
 * finishes just after the leader's newer snapshot was installed must be
 * dropped. It once wrote an older snapshot marker after the installed one
 * (the core had not yet heard the install was durable); the log refused
 * it and the node stopped taking part for good.
 */
static void test_background_snapshot_overtaken_by_install(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	int l = leader_idx(h);
	int f = follower_of(h, l, h->seed);
	struct tnode *fn = &h->nodes[f];
	fn->defer_snapshots = true;
	/* Enough for f to start (and hold) a snapshot of its own. */
	struct client *c1 = client_new(h, "a", 120, 16, 100, 24, false);
	wait_client(h, c1, 8000);
	RUN_UNTIL(h, converged(h, ALL_NODES) && fn->deferred > 0, 4000);
	uint64_t held = fn->deferred;
	uint64_t f_last = raft_last_index(core_of(fn));

	/* Cut f off while the others snapshot and compact past its log. */
	for (int i = 0; i < MAX_NODES; i++)
		if (i != f && h->nodes[i].net)
			peer_net_partition(h->nodes[i].net, &fn->id, 1);
	peer_net_partition(fn->net, &h->nodes[l].id, 1);
	(void)outrun_follower(h, l, f_last);

	for (int i = 0; i < MAX_NODES; i++)
		if (h->nodes[i].net)
			peer_net_heal(h->nodes[i].net);
	RUN_UNTIL(h, fn->installs > 0 && fn->deferred == 0, 5000);
	print_message("follower %" PRIu64 " held its snapshot at %" PRIu64
		      " and installed the leader's at %" PRIu64 "\n",
		      fn->id, held, fn->applied);

	/* f must still follow. */
	fn->defer_snapshots = false;
	struct client *c3 = client_new(h, "c", 20, 8, 20, 8, false);
	wait_client(h, c3, 5000);
	RUN_UNTIL(h, converged(h, ALL_NODES), 3000);
	assert_maps_equal(h, ALL_NODES);
}

/* ---------------------------------------------------------------------- */
/* 5. Crash recovery with a damaged log                                    */

static void commit_and_converge(struct harness *h, const char *prefix, int n)
{
	struct client *c = client_new(h, prefix, n, 8, n, 24, false);
	wait_client(h, c, 8000);
	RUN_UNTIL(h, converged(h, ALL_NODES), 4000);
	assert_maps_equal(h, ALL_NODES);
}

static void test_torn_tail_recovery(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	int l = leader_idx(h);
	int f = follower_of(h, l, h->seed);
	struct tnode *fn = &h->nodes[f];
	commit_and_converge(h, "a", 30);
	char seg[PATH_MAX + 300];
	uint64_t size;

	/* (a) A crash in the middle of a write: a record header and part of
	 * its payload after the last whole record. Nothing acknowledged is
	 * lost. */
	node_stop(h, f);
	newest_segment(fn->dir, seg, sizeof(seg), &size);
	{
		int fd = open(seg, O_WRONLY | O_APPEND | O_CLOEXEC);
		assert_true(fd >= 0);
		uint8_t partial[28] = {200, 0, 0, 0, 0x78, 0x56, 0x34, 0x12};
		memset(partial + 8, 'E', sizeof(partial) - 8);
		assert_int_equal(write(fd, partial, sizeof(partial)), (ssize_t)sizeof(partial));
		close(fd);
	}
	assert_int_equal(restart_expecting_cut(h, f), 0);
	commit_and_converge(h, "b", 5);

	/* (b) The last record loses its last few bytes: its entries, which
	 * the node had acknowledged, are gone after the restart. The leader
	 * still holds them in its log (no snapshot has compacted it yet: the
	 * cluster is below snapshot_every entries) and must bring the node
	 * back up to date before anything new is written. */
	node_stop(h, f);
	newest_segment(fn->dir, seg, sizeof(seg), &size);
	assert_true(size > 16);
	assert_int_equal(truncate(seg, (off_t)(size - 3)), 0);
	assert_int_equal(restart_expecting_cut(h, f), 0);
	catch_up_or_finding(h, "the last record was cut short");
	commit_and_converge(h, "c", 30);
}

static void test_flipped_byte_recovery(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	int l = leader_idx(h);
	int f = follower_of(h, l, h->seed);
	struct tnode *fn = &h->nodes[f];
	commit_and_converge(h, "a", 40);
	char seg[PATH_MAX + 300];
	uint64_t size;
	/* A restart, so that the newest segment holds only what came since,
	 * then enough for a snapshot and a compaction of older segments. */
	node_stop(h, f);
	node_start(h, f);
	commit_and_converge(h, "b", 60);

	/* A flipped byte in the middle of the newest segment: the log ends
	 * there and the node catches up from the leader, never applying what
	 * followed the damage (the harness compares every applied entry with
	 * what the other nodes applied at that index). */
	node_stop(h, f);
	newest_segment(fn->dir, seg, sizeof(seg), &size);
	print_message("flipping a byte at %" PRIu64 " of %s (%" PRIu64 " bytes)\n", size / 2, seg,
		      size);
	assert_true(size > 256);
	{
		int fd = open(seg, O_RDWR | O_CLOEXEC);
		assert_true(fd >= 0);
		uint8_t b;
		assert_int_equal(pread(fd, &b, 1, (off_t)(size / 2)), 1);
		b ^= 0x5a;
		assert_int_equal(pwrite(fd, &b, 1, (off_t)(size / 2)), 1);
		close(fd);
	}
	int rc = restart_expecting_cut(h, f);
	if (rc) {
		/* The damage fell before the snapshot marker that let older
		 * segments go: the node refuses to start rather than serve a
		 * log that begins with entries nobody holds (see
		 * test_flip_before_snapshot_marker). */
		assert_int_equal(rc, SP_ERR_CORRUPT);
		commit_and_converge(h, "d", 30);
		return;
	}
	catch_up_or_finding(h, "a byte flipped in the middle of the newest segment");
	commit_and_converge(h, "d", 30);
}

/* seg_record_before_marker finds, in the segment file at path (format in
 * raft_log.h), the last record holding entries before the first record
 * that holds a snapshot marker ('S') after the segment's base record, and
 * returns its offset, or 0 when there is none. */
static uint64_t seg_record_before_marker(const char *path)
{
	uint8_t *b;
	size_t len;
	assert_int_equal(read_file(path, &b, &len), 0);
	uint64_t pos = 8, candidate = 0, found = 0;
	bool first = true;
	while (!found && pos + 8 <= len) {
		uint64_t plen = get_le(b + pos, 4);
		if (pos + 8 + plen > len)
			break;
		const uint8_t *p = b + pos + 8;
		bool entries = false, marker = false;
		for (uint64_t i = 0; i < plen;) {
			uint8_t kind = p[i];
			if (kind == 'T' || kind == 'B')
				i += 9;
			else if (kind == 'H')
				i += 25;
			else if (kind == 'E' && i + 22 <= plen)
				i += 22 + get_le(p + i + 18, 4), entries = true;
			else if (kind == 'S' && i + 21 <= plen)
				i += 21 + 9 * get_le(p + i + 17, 4), marker = true;
			else
				break;
		}
		if (marker && !first && candidate)
			found = candidate;
		if (entries)
			candidate = pos;
		first = false;
		pos += 8 + plen;
	}
	free(b);
	return found;
}

/*
 * The byte flipped lies before the snapshot marker on whose strength the
 * log deleted its older segments: recovery cuts the marker away with the
 * rest. The node must still open (what is left is a prefix the leader can
 * repair or replace with a snapshot).
 */
static void test_flip_before_snapshot_marker(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	int l = leader_idx(h);
	int f = follower_of(h, l, h->seed);
	struct tnode *fn = &h->nodes[f];
	commit_and_converge(h, "a", 30);
	/* A fresh segment; then a snapshot whose marker lands in it, and the
	 * compaction that deletes the first segment. */
	node_stop(h, f);
	node_start(h, f);
	char first_seg[PATH_MAX + 64];
	snprintf(first_seg, sizeof(first_seg), "%s/rlog-%016x.seg", fn->dir, 1);
	commit_and_converge(h, "b", 30);
	RUN_UNTIL(h, access(first_seg, F_OK) != 0, 3000);
	node_stop(h, f);

	char seg[PATH_MAX + 300];
	uint64_t size;
	newest_segment(fn->dir, seg, sizeof(seg), &size);
	uint64_t at = seg_record_before_marker(seg);
	assert_true(at > 0);
	print_message("flipping a byte in the record at %" PRIu64 " of %s\n", at, seg);
	{
		int fd = open(seg, O_RDWR | O_CLOEXEC);
		assert_true(fd >= 0);
		uint8_t byte;
		assert_int_equal(pread(fd, &byte, 1, (off_t)(at + 12)), 1);
		byte ^= 0x5a;
		assert_int_equal(pwrite(fd, &byte, 1, (off_t)(at + 12)), 1);
		close(fd);
	}
	/* Damage to a synced record before the marker that let the first
	 * segment go: cutting there would leave a log that starts with
	 * entries nobody holds. The node must refuse to start (it never
	 * serves from a log it cannot read) with an error that says why; the
	 * operator's path is to wipe the node and add it back. The cluster
	 * goes on without it. */
	FILE *cap = tu_log_capture_begin(SP_LOG_WARN);
	int rc;
	node_start_rc(h, f, &rc);
	char *text = tu_log_capture_end(cap);
	assert_int_equal(rc, SP_ERR_CORRUPT);
	assert_non_null(strstr(text, "corrupt"));
	free(text);
	commit_and_converge(h, "c", 20);
}

/* ---------------------------------------------------------------------- */
/* 6. A lossy, duplicating, reordering, slow network                       */

static struct peer_net_stats fault_sum(struct harness *h, int n)
{
	struct peer_net_stats sum = {0};
	for (int i = 0; i < n; i++) {
		struct peer_net_stats st;
		peer_net_get_stats(h->nodes[i].net, &st);
		sum.fault_dropped += st.fault_dropped;
		sum.fault_duplicated += st.fault_duplicated;
		sum.fault_reordered += st.fault_reordered;
		sum.fault_delayed += st.fault_delayed;
	}
	return sum;
}

static bool every_fault_seen(struct harness *h, int n)
{
	struct peer_net_stats sum = fault_sum(h, n);
	return sum.fault_dropped && sum.fault_duplicated && sum.fault_reordered &&
	       sum.fault_delayed;
}

static void test_faulty_network(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	struct peer_faults faults = {.drop_ppm = 100000,
				     .dup_ppm = 100000,
				     .reorder_ppm = 100000,
				     .delay_ms = 1,
				     .delay_jitter_ms = 4};
	for (int i = 0; i < 3; i++)
		assert_int_equal(peer_net_set_faults(h->nodes[i].net, 0, &faults), 0);

	/* A client that retries elsewhere when a leader changes: a lost
	 * election under 10% loss is legitimate, a lost write is not. */
	struct client *c = client_new(h, "k", 300, 32, 100, 16, true);
	wait_client(h, c, 20000);
	assert_int_equal(c->ok, 300);
	RUN_UNTIL(h, converged(h, ALL_NODES), 5000);
	assert_maps_equal(h, ALL_NODES);
	/* Every write is in the map (each key's value is one of its writes). */
	assert_int_equal(h->nodes[leader_idx(h)].map.n, 100);

	/* The faults really fired: raft batches many entries per frame, so
	 * a run may send only tens of frames; heartbeats add more while the
	 * loop keeps running (with the faults on) until each kind is seen. */
	RUN_UNTIL(h, every_fault_seen(h, 3), 3000);
	struct peer_net_stats sum = fault_sum(h, 3);
	print_message("faults: %" PRIu64 " dropped, %" PRIu64 " duplicated, %" PRIu64
		      " reordered, %" PRIu64 " delayed; %d retries\n",
		      sum.fault_dropped, sum.fault_duplicated, sum.fault_reordered,
		      sum.fault_delayed, c->retries);
	RUN_UNTIL(h, converged(h, ALL_NODES), 3000);
	assert_maps_equal(h, ALL_NODES);
}

/* ---------------------------------------------------------------------- */
/* 7. Leadership transfer                                                  */

static bool transfer_done(struct harness *h, int old, int target)
{
	struct tnode *on = &h->nodes[old];
	/* While the transfer runs the old leader takes no proposals. */
	if (raft_role_of(core_of(on)) == RAFT_LEADER) {
		int rc = raft_node_propose(on->raft, "t=x", 3, op_cb, &stray_op);
		if (rc != SP_ERR_NOTLEADER)
			violate(h, "old leader took a proposal during a transfer: %s",
				rc ? sp_strerror(rc) : "accepted");
	}
	return raft_role_of(core_of(&h->nodes[target])) == RAFT_LEADER;
}

static void test_leadership_transfer(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	int l = leader_idx(h);
	int t = follower_of(h, l, h->seed);
	struct client *c1 = client_new(h, "a", 40, 8, 40, 8, false);
	wait_client(h, c1, 5000);

	assert_int_equal(raft_node_transfer(h->nodes[l].raft, h->nodes[t].id), 0);
	assert_int_equal(raft_node_propose(h->nodes[l].raft, "t=y", 3, op_cb, &stray_op),
			 SP_ERR_NOTLEADER);
	uint64_t t0 = now_ms();
	RUN_UNTIL(h, transfer_done(h, l, t), 1000);
	print_message("leadership moved %" PRIu64 " -> %" PRIu64 " in %" PRIu64 " ms\n",
		      h->nodes[l].id, h->nodes[t].id, now_ms() - t0);
	assert_int_equal(node_stats(&h->nodes[l]).core.transfers, 1);
	RUN_UNTIL(h, one_leader(h), 1000);
	assert_int_equal(leader_idx(h), t);

	struct client *c2 = client_new(h, "b", 40, 8, 40, 8, false);
	wait_client(h, c2, 5000);
	RUN_UNTIL(h, converged(h, ALL_NODES), 3000);
	assert_maps_equal(h, ALL_NODES);
}

/* ---------------------------------------------------------------------- */
/* 8. Membership                                                           */

static bool try_change(struct harness *h, int l, uint64_t id, bool add)
{
	struct raft_node *r = h->nodes[l].raft;
	int rc = add ? raft_node_add_server(r, id) : raft_node_remove_server(r, id);
	if (rc != 0 && rc != SP_ERR_AGAIN)
		violate(h, "%s server %" PRIu64 ": %s", add ? "adding" : "removing", id,
			sp_strerror(rc));
	return rc == 0;
}

static int voters_in(const struct raft_conf *c)
{
	int k = 0;
	for (uint32_t i = 0; i < c->n; i++)
		k += c->members[i].role == RAFT_VOTER;
	return k;
}

static void test_membership(void **state)
{
	struct harness *h = *state;
	start_cluster(h, 3);
	RUN_UNTIL(h, one_leader(h), 3000);
	int l = leader_idx(h);
	/* Enough that the leader has compacted: the newcomer needs a snapshot. */
	struct client *c1 = client_new(h, "a", 120, 16, 60, 24, false);
	wait_client(h, c1, 8000);
	RUN_UNTIL(h, converged(h, ALL_NODES), 3000);

	node_config(h, 3, false);
	node_start(h, 3);
	struct tnode *nn = &h->nodes[3];
	RUN_UNTIL(h, try_change(h, l, nn->id, true), 2000);
	struct raft *lc = core_of(&h->nodes[l]);
	RUN_UNTIL(h,
		  raft_conf_role(raft_configuration(lc), nn->id) == RAFT_VOTER &&
		      converged(h, ALL_NODES),
		  4000);
	assert_int_equal(leader_idx(h), l);
	assert_maps_equal(h, ALL_NODES);
	assert_int_equal(voters_in(raft_configuration(lc)), 4);
	RUN_UNTIL(h, raft_conf_role(raft_configuration(core_of(nn)), nn->id) == RAFT_VOTER, 2000);
	print_message("node %" PRIu64 " joined: %" PRIu64 " snapshots installed\n", nn->id,
		      nn->installs);

	/* Writes commit with four voters (a majority of three). */
	struct client *c2 = client_new(h, "b", 30, 8, 30, 8, false);
	wait_client(h, c2, 5000);
	RUN_UNTIL(h, converged(h, ALL_NODES), 3000);
	assert_maps_equal(h, ALL_NODES);

	int r = follower_of(h, l, h->seed);
	uint64_t rid = h->nodes[r].id;
	RUN_UNTIL(h, try_change(h, l, rid, false), 2000);
	RUN_UNTIL(h, raft_conf_role(raft_configuration(lc), rid) == 0, 2000);
	assert_int_equal(voters_in(raft_configuration(lc)), 3);
	uint32_t rest = ALL_NODES & ~(1u << r);
	struct client *c3 = client_new(h, "c", 30, 8, 30, 8, false);
	wait_client(h, c3, 5000);
	RUN_UNTIL(h, converged(h, rest), 3000);
	assert_maps_equal(h, rest);
	assert_int_equal(leader_idx(h), l);
	for (int i = 0; i < 4; i++)
		if (i != r)
			assert_int_equal(
			    raft_conf_role(raft_configuration(core_of(&h->nodes[i])), rid), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_elect_and_replicate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_linearizable_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partitioned_leader, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_background_snapshot_overtaken_by_install, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_commit_unseen_by_old_leader, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_catch_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_tail_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flipped_byte_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flip_before_snapshot_marker, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_faulty_network, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leadership_transfer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_membership, setup, teardown),
	};
	/* RAFT_NODE_TEST=pattern runs only the matching tests. */
	if (getenv("RAFT_NODE_TEST"))
		cmocka_set_test_filter(getenv("RAFT_NODE_TEST"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
