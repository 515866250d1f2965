/*
 * Tests for the store's recovery through its write-ahead log (opts.wal = 1).
 *
 * The point of the log is that a batch survives once store_commit returned,
 * with no store_checkpoint after it. These tests check that the only honest
 * way: a forked child does the work and reports each committed batch over a
 * pipe, the parent kills it with SIGKILL at an arbitrary moment, reopens
 * the store and compares every key (value, type, flags, expiry) against an
 * in-memory model. Child and parent run the same seeded program, so the
 * parent can rebuild the model state after any number of batches without
 * the child sending data. A kill can land between a commit and its report,
 * so after "n reported" the state must be that after n or n + 1 batches.
 *
 * Other tests damage the log after the kill (a torn final record, a torn
 * tail anywhere in the last segment), make the log's write fail with
 * RLIMIT_FSIZE, kill the process again while it replays, and run sessions
 * of commits, aborts, syncs, checkpoints, clean reopens and crashes against
 * the model.
 *
 * Every test uses a fresh directory under /tmp, removed afterwards; a child
 * still running when a test fails is killed by the teardown. The seed is
 * printed at the start; SPECTRA_SEED=<n> replays it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "../lib/testutil.h"
#include "common/log.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define NOW	 1000000000ull /* the time every operation is judged at */
#define MAP_SIZE (64u << 20)
#define NKEYS	 40
#define VMAX	 3000 /* longest value the programs write (LMDB overflow pages) */

/* ---- fixture ---- */

struct fixture {
	char dir[64];
	char wal[96]; /* <dir>/wal, the store's log directory */
};

static pid_t child_pid; /* a child still running; the teardown kills it */

/* What a test holds that its teardown releases when it failed halfway, so
 * that a leak report (and the leak check in test_open_with_undecodable_log)
 * shows only real leaks. */
static struct store *held_stores[4];
static void *held_mem[16];

static void *hold(void *p)
{
	assert_non_null(p);
	for (size_t i = 0; i < sizeof(held_mem) / sizeof(held_mem[0]); i++) {
		if (!held_mem[i]) {
			held_mem[i] = p;
			return p;
		}
	}
	fail_msg("hold: too many blocks");
	return NULL;
}

static void release(void *p)
{
	for (size_t i = 0; i < sizeof(held_mem) / sizeof(held_mem[0]); i++)
		if (p && held_mem[i] == p)
			held_mem[i] = NULL;
	free(p);
}

static int setup_dir(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/spectra-store-wal-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->wal, sizeof(f->wal), "%s/wal", f->dir);
	*state = f;
	return 0;
}

static int teardown_dir(void **state)
{
	struct fixture *f = *state;
	for (size_t i = 0; i < sizeof(held_stores) / sizeof(held_stores[0]); i++) {
		store_close(held_stores[i]);
		held_stores[i] = NULL;
	}
	for (size_t i = 0; i < sizeof(held_mem) / sizeof(held_mem[0]); i++) {
		free(held_mem[i]);
		held_mem[i] = NULL;
	}
	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
		child_pid = 0;
	}
	tu_remove_tree(f->dir);
	free(f);
	return 0;
}

/* reset_dir empties the test's directory between rounds. */
static void reset_dir(const struct fixture *f)
{
	tu_remove_tree(f->dir);
	assert_int_equal(mkdir(f->dir, 0700), 0);
}

static uint64_t base_seed;

static uint64_t prng(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* test_seed derives a test's own seed from the file's. */
static uint64_t test_seed(const char *name)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	uint64_t s = base_seed ^ h;
	return s ? s : 1;
}

/* ---- stores ---- */

static int open_store_err(const char *dir, int wal, struct store **out)
{
	struct store_options o = {.dir = dir, .map_size = MAP_SIZE, .wal = wal};
	*out = NULL;
	return store_open(out, &o);
}

/* open_store opens a store the test holds until close_store. */
static struct store *open_store(const char *dir, int wal)
{
	struct store *s;
	int err = open_store_err(dir, wal, &s);
	if (err)
		fail_msg("store_open(%s): %s", dir, sp_strerror(err));
	for (size_t i = 0; i < sizeof(held_stores) / sizeof(held_stores[0]); i++) {
		if (!held_stores[i]) {
			held_stores[i] = s;
			return s;
		}
	}
	fail_msg("too many open stores");
	return NULL;
}

static void close_store(struct store *s)
{
	for (size_t i = 0; i < sizeof(held_stores) / sizeof(held_stores[0]); i++)
		if (s && held_stores[i] == s)
			held_stores[i] = NULL;
	store_close(s);
}

/* ---- the model ---- */

static unsigned char keys[NKEYS][8];
static size_t klens[NKEYS];

/* init_keys makes NKEYS distinct binary keys: the empty key, and keys of 1
 * to 7 bytes whose first byte is their index, NUL bytes included. */
static void init_keys(void)
{
	for (int i = 0; i < NKEYS; i++) {
		klens[i] = i == 0 ? 0 : 1 + (size_t)(i % 7);
		for (size_t j = 0; j < klens[i]; j++)
			keys[i][j] = j == 0		? (unsigned char)i
				     : (i + j) % 3 == 0 ? 0
							: (unsigned char)(i * 31 + j * 7);
	}
}

static int key_index(const void *key, size_t klen)
{
	if (klen == 0)
		return 0;
	int i = ((const unsigned char *)key)[0];
	if (i >= NKEYS || klens[i] != klen || memcmp(keys[i], key, klen) != 0)
		return -1;
	return i;
}

struct mentry {
	int present; /* stored, expired or not */
	uint8_t type, flags;
	uint64_t exp;
	size_t len;
	unsigned char data[VMAX];
};

struct state {
	struct mentry e[NKEYS];
};

/* A program: a seeded stream of writes, the state it leads to with and
 * without the open batch, and how many batches it committed. */
struct prog {
	uint64_t rng;
	struct state cur, committed;
	uint32_t commits;
	int no_flush; /* never FLUSH: replaying a FLUSH rebuilds the whole state */
};

/* prog_new returns a program the test holds (release it). */
static struct prog *prog_new(uint64_t seed)
{
	struct prog *p = hold(calloc(1, sizeof(*p)));
	p->rng = seed ? seed : 1;
	return p;
}

static int expired(const struct mentry *e)
{
	return e->exp != 0 && e->exp <= NOW;
}

static uint64_t random_exp(struct prog *p)
{
	uint64_t r = prng(&p->rng) % 10;
	if (r < 5)
		return 0;
	if (r < 7)
		return NOW - 1 - prng(&p->rng) % 1000; /* already expired */
	return NOW + 1 + prng(&p->rng) % 1000000;
}

/*
 * data_op makes one random write in the model's open batch and, when s is
 * not NULL, in the store's, checking the store's answer against the model.
 * It draws the same random numbers either way, so a parent running it with
 * s == NULL follows a child running it on a store. Returns 0, or the source
 * line of the first disagreement.
 */
static int data_op(struct prog *p, struct store *s)
{
	uint64_t r = prng(&p->rng) % 100;
	int k = (int)(prng(&p->rng) % NKEYS);
	struct mentry *e = &p->cur.e[k];
	int live = e->present && !expired(e);
	if (r < 60) {
		static struct mentry n;
		memset(&n, 0, sizeof(n));
		n.present = 1;
		n.type = (uint8_t)prng(&p->rng);
		n.flags = (uint8_t)prng(&p->rng);
		n.exp = random_exp(p);
		uint64_t lr = prng(&p->rng) % 20;
		n.len = lr == 0	  ? 0
			: lr == 1 ? 2000 + prng(&p->rng) % (VMAX - 2000)
				  : 1 + prng(&p->rng) % 64;
		uint64_t x = prng(&p->rng);
		for (size_t i = 0; i < n.len; i++, x = x * 6364136223846793005ull + 1)
			n.data[i] = (unsigned char)(x >> 56);
		if (s) {
			struct store_value v = {n.type, n.flags, n.exp, n.data, n.len, 0};
			if (store_put(s, keys[k], klens[k], &v) != 0)
				return __LINE__;
		}
		*e = n;
	} else if (r < 72) {
		if (s && store_del(s, keys[k], klens[k], NOW) != live)
			return __LINE__;
		e->present = 0;
	} else if (r < 84) {
		uint64_t exp = random_exp(p);
		if (s && store_set_expire(s, keys[k], klens[k], exp, NOW) != live)
			return __LINE__;
		if (live)
			e->exp = exp;
	} else if (r < 86 && !p->no_flush) {
		if (s && store_flush(s) != 0)
			return __LINE__;
		for (int i = 0; i < NKEYS; i++)
			p->cur.e[i].present = 0;
	} else {
		int n = 0;
		for (int i = 0; i < NKEYS; i++)
			n += p->cur.e[i].present && expired(&p->cur.e[i]);
		if (s && store_expire_cycle(s, NOW, 1000) != n)
			return __LINE__;
		for (int i = 0; i < NKEYS; i++)
			if (p->cur.e[i].present && expired(&p->cur.e[i]))
				p->cur.e[i].present = 0;
	}
	return 0;
}

/* gen_batch makes one batch of 1..6 writes and commits it. */
static int gen_batch(struct prog *p, struct store *s)
{
	int n = 1 + (int)(prng(&p->rng) % 6);
	for (int i = 0; i < n; i++) {
		int line = data_op(p, s);
		if (line)
			return line;
	}
	if (s && store_commit(s) != 0)
		return __LINE__;
	p->committed = p->cur;
	p->commits++;
	return 0;
}

/* ---- reading the store back ---- */

struct read_ctx {
	struct state *out;
	int bad;
};

static int read_cb(void *ctx, const void *key, size_t klen, const struct store_value *v)
{
	struct read_ctx *c = ctx;
	int i = key_index(key, klen);
	if (i < 0 || v->len > VMAX || c->out->e[i].present) {
		c->bad = 1;
		return 1;
	}
	struct mentry *e = &c->out->e[i];
	e->present = 1;
	e->type = v->type;
	e->flags = v->flags;
	e->exp = v->expire_at_ms;
	e->len = v->len;
	if (v->len)
		memcpy(e->data, v->data, v->len);
	return 0;
}

/* read_state reads every stored key, expired ones included (a scan at time
 * 0 sees them all), as the store's current view shows them. */
static void read_state(struct store *s, struct state *out)
{
	memset(out, 0, sizeof(*out));
	struct read_ctx c = {out, 0};
	int more = 0;
	int n = store_scan(s, NULL, 0, 1000, 0, read_cb, &c, &more);
	if (n < 0)
		fail_msg("store_scan: %s", sp_strerror(n));
	assert_false(c.bad);
	assert_false(more);
}

static int entry_equal(const struct mentry *a, const struct mentry *b)
{
	if (a->present != b->present)
		return 0;
	if (!a->present)
		return 1;
	return a->type == b->type && a->flags == b->flags && a->exp == b->exp && a->len == b->len &&
	       memcmp(a->data, b->data, a->len) == 0;
}

/* state_diff counts the keys on which a and b differ; *first is the first. */
static int state_diff(const struct state *a, const struct state *b, int *first)
{
	int n = 0;
	*first = -1;
	for (int i = 0; i < NKEYS; i++) {
		if (!entry_equal(&a->e[i], &b->e[i])) {
			if (n++ == 0)
				*first = i;
		}
	}
	return n;
}

static void describe(char *out, size_t n, const struct mentry *e)
{
	if (!e->present)
		snprintf(out, n, "absent");
	else
		snprintf(out, n, "len %zu exp %" PRIu64 " type %u flags %u first byte %02x", e->len,
			 e->exp, e->type, e->flags, e->len ? e->data[0] : 0);
}

/* expect_state fails the test, naming one key, unless got equals want. */
static void expect_state(const struct state *got, const struct state *want, const char *what)
{
	int first;
	int n = state_diff(got, want, &first);
	if (n == 0)
		return;
	char g[128], w[128];
	describe(g, sizeof(g), &got->e[first]);
	describe(w, sizeof(w), &want->e[first]);
	fail_msg("%s: %d keys differ; key #%d: store has %s, model %s (seed %" PRIu64 ")", what, n,
		 first, g, w, base_seed);
}

/* ---- children ---- */

enum { MSG_COMMIT = 1, MSG_FAIL, MSG_DONE, MSG_RC };

struct msg {
	uint32_t tag, val;
};

static void child_send(int fd, uint32_t tag, uint32_t val)
{
	struct msg m = {tag, val};
	if (write(fd, &m, sizeof(m)) != sizeof(m))
		_exit(4);
}

/* child_fail reports the line that failed and ends the child. */
static void child_fail(int fd, int line)
{
	child_send(fd, MSG_FAIL, (uint32_t)line);
	_exit(3);
}

/* child_wait_for_death parks a child that is to be killed. */
static void child_wait_for_death(void)
{
	for (;;)
		pause();
}

typedef void (*child_fn)(void *arg, int out);

/* spawn forks a child that runs fn and never returns into cmocka; *in is
 * the read end of its report pipe. */
static pid_t spawn(child_fn fn, void *arg, int *in)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		fn(arg, p[1]);
		_exit(0);
	}
	close(p[1]);
	child_pid = pid;
	*in = p[0];
	return pid;
}

/* read_msg returns 1 with a message, 0 at end of file; a child's failure
 * report fails the test. */
static int read_msg(int fd, struct msg *m)
{
	size_t got = 0;
	while (got < sizeof(*m)) {
		ssize_t r = read(fd, (char *)m + got, sizeof(*m) - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		got += (size_t)r;
	}
	if (m->tag == MSG_FAIL)
		fail_msg("the child failed at tests/unit/test_store_wal.c:%u (seed %" PRIu64 ")",
			 m->val, base_seed);
	return 1;
}

/* wait_for reads reports until one with tag (and, for MSG_COMMIT, a count
 * of at least val); *last is the last commit count seen. */
static void wait_for(int fd, uint32_t tag, uint32_t val, uint32_t *last)
{
	struct msg m;
	while (read_msg(fd, &m)) {
		if (m.tag == MSG_COMMIT)
			*last = m.val;
		if (m.tag == tag && (tag != MSG_COMMIT || m.val >= val))
			return;
	}
	int status = 0;
	waitpid(child_pid, &status, 0);
	child_pid = 0;
	fail_msg("the child ended early (status 0x%x)", status);
}

/* kill_child kills the child and reads what it reported before dying. */
static void kill_child(int fd, uint32_t *last)
{
	assert_true(child_pid > 0);
	kill(child_pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(child_pid, &status, 0), child_pid);
	child_pid = 0;
	struct msg m;
	while (read_msg(fd, &m)) /* a failure report fails the test here */
		if (m.tag == MSG_COMMIT)
			*last = m.val;
	close(fd);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("the child ended before the kill (status 0x%x)", status);
}

/* A child that commits batches from a seeded program, reporting each. */
struct batch_run {
	const char *dir;
	uint64_t seed;
	uint32_t stop_at;	   /* 0: run until killed; else report DONE and wait */
	uint32_t checkpoint_every; /* 0: none */
	uint32_t sync_every;	   /* 0: none */
	uint32_t skip;		   /* batches an earlier run already committed */
	int no_flush;		   /* see struct prog */
};

/* batch_prog starts the run's program, past the batches it skips. */
static struct prog *batch_prog(const struct batch_run *r)
{
	struct prog *p = prog_new(r->seed);
	p->no_flush = r->no_flush;
	while (p->commits < r->skip)
		gen_batch(p, NULL);
	return p;
}

static void batch_child(void *arg, int out)
{
	struct batch_run *r = arg;
	struct store *s;
	if (open_store_err(r->dir, 1, &s) != 0)
		child_fail(out, __LINE__);
	struct prog *p = batch_prog(r);
	for (;;) {
		int line = gen_batch(p, s);
		if (line)
			child_fail(out, line);
		child_send(out, MSG_COMMIT, p->commits);
		if (r->checkpoint_every && p->commits % r->checkpoint_every == 0 &&
		    (store_checkpoint_begin(s) != 0 || store_checkpoint(s) != 0))
			child_fail(out, __LINE__);
		if (r->sync_every && p->commits % r->sync_every == 0 && store_sync(s) != 0)
			child_fail(out, __LINE__);
		if (r->stop_at && p->commits == r->stop_at) {
			child_send(out, MSG_DONE, p->commits);
			child_wait_for_death();
		}
	}
}

/* model_after returns (owned by the caller) the program's state after n
 * batches, and in *next the state after n + 1. */
static struct prog *model_after(uint64_t seed, uint32_t n, struct state *next)
{
	struct prog *p = prog_new(seed);
	while (p->commits < n)
		assert_int_equal(gen_batch(p, NULL), 0);
	if (next) {
		struct prog *q = hold(malloc(sizeof(*q)));
		*q = *p;
		assert_int_equal(gen_batch(q, NULL), 0);
		*next = q->committed;
		release(q);
	}
	return p;
}

/* expect_after_kill checks that the store in dir holds the program's state
 * after n or n + 1 batches, and passes store_check. */
static void expect_after_kill(const char *dir, int wal, uint64_t seed, uint32_t n)
{
	struct state *next = hold(malloc(sizeof(*next))), *got = hold(malloc(sizeof(*got)));
	struct prog *p = model_after(seed, n, next);
	struct store *s = open_store(dir, wal);
	read_state(s, got);
	int first;
	if (state_diff(got, next, &first) != 0)
		expect_state(got, &p->committed, "after the kill");
	assert_int_equal(store_check(s), 0);
	close_store(s);
	release(p);
	release(next);
	release(got);
}

/* ---- files of the log ---- */

/* newest_segment names the log's newest segment file; returns its size. */
static long long newest_segment(const struct fixture *f, char *path, size_t n)
{
	DIR *d = opendir(f->wal);
	assert_non_null(d);
	char best[64] = "";
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strlen(e->d_name) == 24 && strncmp(e->d_name, "wal-", 4) == 0 &&
		    strcmp(e->d_name, best) > 0)
			memcpy(best, e->d_name, 25); /* 24 characters and the NUL */
	closedir(d);
	assert_true(best[0] != '\0');
	snprintf(path, n, "%s/%s", f->wal, best);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (long long)st.st_size;
}

/* log_bytes is the size of every file in the log directory. */
static uint64_t log_bytes(const struct fixture *f)
{
	DIR *d = opendir(f->wal);
	assert_non_null(d);
	uint64_t total = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		struct stat st;
		assert_int_equal(fstatat(dirfd(d), e->d_name, &st, 0), 0);
		total += (uint64_t)st.st_size;
	}
	closedir(d);
	return total;
}

static void append_bytes(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* torn_record appends the first half of a plausible record: a header that
 * promises `len` payload bytes, then fewer. This is what write(2) leaves
 * when SIGKILL interrupts a large append. */
static void append_torn_record(const char *path, uint32_t len)
{
	unsigned char *b = calloc(1, 8 + len / 2);
	assert_non_null(b);
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(len >> (8 * i));
	b[4] = 0x12, b[5] = 0x34, b[6] = 0x56, b[7] = 0x78;
	b[8] = 'P';
	append_bytes(path, b, 8 + len / 2);
	free(b);
}

/* ---- kill -9 ---- */

/* Batches committed with no checkpoint after them, then SIGKILL at an
 * arbitrary moment: every committed batch is there after the reopen, with
 * the log (and, the log being replayed either way, without it). */
static void test_kill_replays_committed(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = test_seed("kill_replays_committed");
	for (int round = 0; round < 4; round++) {
		reset_dir(f);
		struct batch_run r = {.dir = f->dir, .seed = prng(&rng)};
		int in;
		spawn(batch_child, &r, &in);
		uint32_t last = 0;
		wait_for(in, MSG_COMMIT, 200 + (uint32_t)(prng(&rng) % 400), &last);
		usleep((useconds_t)(prng(&rng) % 3000));
		kill_child(in, &last);
		expect_after_kill(f->dir, round % 2 == 0, r.seed, last);
	}
}

/* The same with checkpoints: before the batches, in the middle (every 64),
 * and concurrently, as the server runs them: store_sync looping on one
 * thread, store_checkpoint on another, store_checkpoint_begin on the
 * committing thread only while neither is in flight. */
struct bg {
	struct store *s;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int closed, inflight, checkpoint_due;
	int err_line;
};

static int bg_enter(struct bg *b)
{
	pthread_mutex_lock(&b->mu);
	while (b->closed)
		pthread_cond_wait(&b->cv, &b->mu);
	b->inflight++;
	pthread_mutex_unlock(&b->mu);
	return 1;
}

static void bg_leave(struct bg *b)
{
	pthread_mutex_lock(&b->mu);
	b->inflight--;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void *bg_sync(void *arg)
{
	struct bg *b = arg;
	for (;;) {
		bg_enter(b);
		int err = store_sync(b->s);
		bg_leave(b);
		if (err)
			b->err_line = __LINE__;
	}
	return NULL;
}

static void *bg_checkpoint(void *arg)
{
	struct bg *b = arg;
	for (;;) {
		pthread_mutex_lock(&b->mu);
		while (!b->checkpoint_due)
			pthread_cond_wait(&b->cv, &b->mu);
		b->checkpoint_due = 0;
		pthread_mutex_unlock(&b->mu);
		int err = store_checkpoint(b->s); /* entered by the committing thread */
		bg_leave(b);
		if (err)
			b->err_line = __LINE__;
	}
	return NULL;
}

static void threaded_child(void *arg, int out)
{
	struct batch_run *r = arg;
	static struct bg b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	if (open_store_err(r->dir, 1, &b.s) != 0)
		child_fail(out, __LINE__);
	pthread_t t1, t2;
	if (pthread_create(&t1, NULL, bg_sync, &b) || pthread_create(&t2, NULL, bg_checkpoint, &b))
		child_fail(out, __LINE__);
	struct prog *p = batch_prog(r);
	for (;;) {
		int line = gen_batch(p, b.s);
		if (line)
			child_fail(out, line);
		if (b.err_line)
			child_fail(out, b.err_line);
		child_send(out, MSG_COMMIT, p->commits);
		if (p->commits % r->checkpoint_every == 0) {
			pthread_mutex_lock(&b.mu);
			b.closed = 1;
			while (b.inflight)
				pthread_cond_wait(&b.cv, &b.mu);
			int err = store_checkpoint_begin(b.s);
			b.closed = 0;
			b.inflight++;
			b.checkpoint_due = 1;
			pthread_cond_broadcast(&b.cv);
			pthread_mutex_unlock(&b.mu);
			if (err)
				child_fail(out, __LINE__);
		}
	}
}

static void test_kill_after_checkpoints(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = test_seed("kill_after_checkpoints");
	for (int round = 0; round < 4; round++) {
		reset_dir(f);
		/* A history before this run's batches, which the next open
		 * replays and checkpoints into the tree. */
		struct batch_run pre = {.dir = f->dir, .seed = prng(&rng), .stop_at = 50};
		int in;
		spawn(batch_child, &pre, &in);
		uint32_t last = 0;
		wait_for(in, MSG_DONE, 0, &last);
		kill_child(in, &last);

		/* The same program goes on from batch 51. */
		struct batch_run r = {.dir = f->dir,
				      .seed = pre.seed,
				      .checkpoint_every = 64,
				      .sync_every = round % 2 ? 7 : 0,
				      .skip = 50};
		spawn(round < 2 ? batch_child : threaded_child, &r, &in);
		last = 0;
		wait_for(in, MSG_COMMIT, 200 + (uint32_t)(prng(&rng) % 400), &last);
		usleep((useconds_t)(prng(&rng) % 3000));
		kill_child(in, &last);
		expect_after_kill(f->dir, 1, r.seed, last);
	}
}

/* A record cut short at the end of the log, as SIGKILL during a large
 * write(2) leaves it: its batch never reached the tree (the log is
 * written first), so the store reopens with exactly the batches before. */
static void test_kill_during_append(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = test_seed("kill_during_append");
	struct batch_run r = {.dir = f->dir, .seed = prng(&rng), .stop_at = 300};
	int in;
	spawn(batch_child, &r, &in);
	uint32_t last = 0;
	wait_for(in, MSG_DONE, 0, &last);
	kill_child(in, &last);
	assert_int_equal(last, 300);

	char seg[200];
	long long before = newest_segment(f, seg, sizeof(seg));
	append_torn_record(seg, 4000);

	struct prog *p = model_after(r.seed, 300, NULL);
	struct state *got = hold(malloc(sizeof(*got)));
	FILE *logf = tu_log_capture_begin(SP_LOG_INFO);
	struct store *s = open_store(f->dir, 1);
	char *logged = tu_log_capture_end(logf);
	if (!strstr(logged, "unfinished record"))
		fail_msg("expected the recovery to say it dropped a record; logged '%s'", logged);
	free(logged);
	read_state(s, got);
	expect_state(got, &p->committed, "after a torn append");
	assert_int_equal(store_check(s), 0);
	close_store(s);
	/* The torn bytes are gone from the file that held them (or the file
	 * was retired with the rest of the replayed log). */
	struct stat st;
	assert_true(stat(seg, &st) != 0 || st.st_size == before);

	logf = tu_log_capture_begin(SP_LOG_INFO);
	s = open_store(f->dir, 1);
	logged = tu_log_capture_end(logf);
	if (strstr(logged, "dropped"))
		fail_msg("the second open dropped something again: '%s'", logged);
	free(logged);
	read_state(s, got);
	expect_state(got, &p->committed, "reopened");
	close_store(s);
	release(got);
	release(p);
}

/* After an open that cut a torn record, store_wal_bytes (which starts the
 * server's checkpoints) must agree with the log's files. */
static void test_wal_bytes_after_torn_open(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = test_seed("wal_bytes_after_torn_open");
	struct batch_run r = {.dir = f->dir, .seed = prng(&rng), .stop_at = 20};
	int in;
	spawn(batch_child, &r, &in);
	uint32_t last = 0;
	wait_for(in, MSG_DONE, 0, &last);
	kill_child(in, &last);
	char seg[200];
	newest_segment(f, seg, sizeof(seg));
	append_torn_record(seg, 200000);

	struct store *s = open_store(f->dir, 1);
	uint64_t files = log_bytes(f);
	if (store_wal_bytes(s) != files)
		fail_msg("after recovery: store_wal_bytes %" PRIu64 ", log files %" PRIu64
			 " bytes (a checkpoint is due every 10 s while this exceeds 4096, and "
			 "always once it exceeds 64 MiB)",
			 store_wal_bytes(s), files);
	assert_int_equal(store_checkpoint_begin(s), 0);
	assert_int_equal(store_checkpoint(s), 0);
	assert_int_equal(store_wal_bytes(s), log_bytes(f));
	close_store(s);
}

/*
 * The brief's torn-final-write check: after the kill, the last log segment
 * is cut at a random byte (a write that never completed), and the reopened
 * store must hold the state after some prefix of the committed batches.
 *
 * Note: the tree is not cut with the log. After SIGKILL it holds every
 * committed batch (MDB_WRITEMAP pages are in the page cache), as after a
 * power cut where the kernel had written the map back but not the log's
 * tail. Replaying a prefix of the log over a tree that is ahead of it puts
 * old values back on the keys that prefix touched and leaves the later
 * batches' other keys as they are.
 */
static void test_kill_torn_log_is_a_prefix(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = test_seed("kill_torn_log_is_a_prefix");
	struct state *got = hold(malloc(sizeof(*got)));
	for (int round = 0; round < 5; round++) {
		reset_dir(f);
		/* No FLUSH: one in the replayed prefix would hide the problem
		 * by rebuilding everything after it. */
		struct batch_run r = {.dir = f->dir, .seed = prng(&rng), .no_flush = 1};
		int in;
		spawn(batch_child, &r, &in);
		uint32_t last = 0;
		wait_for(in, MSG_COMMIT, 100 + (uint32_t)(prng(&rng) % 200), &last);
		kill_child(in, &last);

		char seg[200];
		long long size = newest_segment(f, seg, sizeof(seg));
		assert_true(size > 8);
		long long cut = 8 + (long long)(prng(&rng) % (uint64_t)(size - 8));
		assert_int_equal(truncate(seg, (off_t)cut), 0);

		struct store *s = open_store(f->dir, 1);
		read_state(s, got);
		assert_int_equal(store_check(s), 0);
		close_store(s);

		/* Compare with the state after each prefix; remember the closest. */
		struct prog *p = prog_new(r.seed);
		p->no_flush = 1;
		int best = NKEYS + 1, best_first = -1;
		uint32_t best_j = 0, match = UINT32_MAX;
		for (uint32_t j = 0; j <= last + 1; j++) {
			if (j > 0)
				assert_int_equal(gen_batch(p, NULL), 0);
			int first, d = state_diff(got, &p->committed, &first);
			if (d == 0) {
				match = j;
				break;
			}
			if (d < best)
				best = d, best_first = first, best_j = j;
		}
		release(p);
		if (match == UINT32_MAX)
			fail_msg(
			    "round %d: %" PRIu32 " batches committed, last segment cut at byte "
			    "%lld of %lld: the reopened store matches no prefix of the batches "
			    "(closest: after %" PRIu32 " batches, %d keys differ, e.g. key #%d) "
			    "(seed %" PRIu64 ")",
			    round, last, cut, size, best_j, best, best_first, base_seed);
	}
	release(got);
}

/* A kill while the store replays its log at open (again and again): the
 * replay is idempotent, so the next open still ends with every batch. */
static void open_child(void *arg, int out)
{
	const char *dir = arg;
	struct store *s;
	if (open_store_err(dir, 1, &s) != 0)
		child_fail(out, __LINE__);
	child_send(out, MSG_DONE, 0);
	child_wait_for_death();
}

static void test_kill_during_recovery(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = test_seed("kill_during_recovery");
	struct batch_run r = {.dir = f->dir, .seed = prng(&rng), .stop_at = 3000};
	int in;
	spawn(batch_child, &r, &in);
	uint32_t last = 0;
	wait_for(in, MSG_DONE, 0, &last);
	kill_child(in, &last);

	for (int round = 0; round < 5; round++) {
		spawn(open_child, f->dir, &in);
		usleep((useconds_t)(prng(&rng) % 40000));
		kill_child(in, &last);
	}
	expect_after_kill(f->dir, 1, r.seed, 3000);
}

/*
 * The active-expiry cycle's deletions are logged like any other, and must
 * name the key they removed. Keys of one length make index entries of one
 * size: deleting the first one in LMDB's page moves the neighbouring entry
 * into its bytes, so a key read from the index entry after the delete names
 * the neighbour. Here the neighbour of the second expired key is a live
 * key: after a crash the replay deletes it, and the expired key is back.
 */
static void expire_child(void *arg, int out)
{
	const char *dir = arg;
	struct store *s;
	if (open_store_err(dir, 1, &s) != 0)
		child_fail(out, __LINE__);
	char k[16];
	for (int i = 0; i < 8; i++) {
		/* k0 and k1 expired; k2..k7 live for a long time. */
		struct store_value v = {.data = "v",
					.len = 1,
					.expire_at_ms = i < 2 ? NOW - 10 + (uint64_t)i
							      : NOW + 1000000 + (uint64_t)i};
		snprintf(k, sizeof(k), "k%d", i);
		if (store_put(s, k, 2, &v) != 0)
			child_fail(out, __LINE__);
	}
	if (store_commit(s) != 0)
		child_fail(out, __LINE__);
	if (store_expire_cycle(s, NOW, 100) != 2 || store_commit(s) != 0)
		child_fail(out, __LINE__);
	struct store_value got;
	if (store_get(s, "k2", 2, NOW, &got) != 0)
		child_fail(out, __LINE__);
	child_send(out, MSG_DONE, 0);
	child_wait_for_death();
}

static void test_expire_cycle_logs_the_removed_key(void **state)
{
	struct fixture *f = *state;
	int in;
	spawn(expire_child, f->dir, &in);
	uint32_t last = 0;
	wait_for(in, MSG_DONE, 0, &last);
	kill_child(in, &last);

	struct store *s = open_store(f->dir, 1);
	struct store_value got;
	char k[16];
	int missing = 0;
	for (int i = 2; i < 8; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		if (store_get(s, k, 2, NOW, &got) != 0) {
			print_message("live key %s is gone after the replay\n", k);
			missing++;
		}
	}
	int back = 0;
	for (int i = 0; i < 2; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		if (store_get(s, k, 2, 0, &got) != SP_ERR_NOTFOUND) {
			print_message("expired key %s, removed before the kill, is back\n", k);
			back++;
		}
	}
	assert_int_equal(store_check(s), 0);
	close_store(s);
	if (missing || back)
		fail_msg("after the replay %d live keys are lost and %d removed keys are back: the "
			 "expiry cycle logged the wrong keys' deletions",
			 missing, back);
}

/* ---- a failed log write ---- */

/* A commit whose log append fails (write(2) returns EFBIG part-way, under
 * RLIMIT_FSIZE with SIGXFSZ ignored) loses that batch and only that batch:
 * nothing partial is left in the log, and later batches replay. */
static void efbig_child(void *arg, int out)
{
	const char *dir = arg;
	struct store *s;
	if (open_store_err(dir, 1, &s) != 0)
		child_fail(out, __LINE__);
	char k[16];
	struct store_value v = {.data = "value", .len = 5};
	for (int i = 0; i < 5; i++) {
		int kn = snprintf(k, sizeof(k), "k%d", i);
		if (store_put(s, k, (size_t)kn, &v) != 0 || store_commit(s) != 0)
			child_fail(out, __LINE__);
	}
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit saved, lim;
	getrlimit(RLIMIT_FSIZE, &saved);
	lim = saved;
	lim.rlim_cur = store_wal_bytes(s) + 100;
	static unsigned char big[1000];
	memset(big, 'b', sizeof(big));
	struct store_value bv = {.data = big, .len = sizeof(big)};
	if (store_put(s, "big", 3, &bv) != 0)
		child_fail(out, __LINE__);
	if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
		child_fail(out, __LINE__);
	int rc = store_commit(s);
	setrlimit(RLIMIT_FSIZE, &saved);
	child_send(out, MSG_RC, (uint32_t)-rc);
	struct store_value got;
	if (store_has_batch(s) || store_get(s, "big", 3, NOW, &got) != SP_ERR_NOTFOUND ||
	    store_get(s, "k4", 2, NOW, &got) != 0)
		child_fail(out, __LINE__);
	if (store_put(s, "after", 5, &v) != 0 || store_commit(s) != 0)
		child_fail(out, __LINE__);
	child_send(out, MSG_DONE, 0);
	child_wait_for_death();
}

static void test_commit_failure_leaves_no_partial_record(void **state)
{
	struct fixture *f = *state;
	int in;
	spawn(efbig_child, f->dir, &in);
	struct msg m;
	assert_true(read_msg(in, &m));
	assert_int_equal(m.tag, MSG_RC);
	assert_int_equal(m.val, EFBIG);
	uint32_t last = 0;
	wait_for(in, MSG_DONE, 0, &last);
	kill_child(in, &last);

	FILE *logf = tu_log_capture_begin(SP_LOG_INFO);
	struct store *s = open_store(f->dir, 1);
	char *logged = tu_log_capture_end(logf);
	if (strstr(logged, "dropped"))
		fail_msg("the failed append left a partial record: '%s'", logged);
	free(logged);
	struct store_value got;
	assert_int_equal(store_get(s, "big", 3, NOW, &got), SP_ERR_NOTFOUND);
	assert_int_equal(store_get(s, "after", 5, NOW, &got), 0);
	char k[16];
	for (int i = 0; i < 5; i++) {
		int kn = snprintf(k, sizeof(k), "k%d", i);
		assert_int_equal(store_get(s, k, (size_t)kn, NOW, &got), 0);
	}
	assert_int_equal(store_check(s), 0);
	close_store(s);
}

/* ---- an undecodable log at open ---- */

/* A log record whose checksum is right but whose payload does not decode
 * makes store_open fail with SP_ERR_CORRUPT, keeps the log for inspection,
 * and frees everything the partial replay allocated (under ASan the leak
 * check below runs; elsewhere this checks the error and the files). */
static void test_open_with_undecodable_log(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir, 1);
	struct store_value v = {.data = "value", .len = 5};
	assert_int_equal(store_put(s, "k", 1, &v), 0);
	assert_int_equal(store_commit(s), 0);
	close_store(s);

	/* A segment after the existing one: EXPIRE k (decodes, and makes the
	 * replay copy the value through the store's scratch buffer), then a
	 * record of one unknown operation. */
	unsigned char rec[64];
	size_t n = 0;
	static const unsigned char magic[8] = {'S', 'P', 'W', 'A', 'L', '0', '1', '\n'};
	unsigned char expire[14] = {'E', 0x40, 0x42, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'k'};
	unsigned char bad[1] = {'X'};
	memcpy(rec + n, magic, 8), n += 8;
	const unsigned char *payloads[2] = {expire, bad};
	size_t lens[2] = {sizeof(expire), sizeof(bad)};
	for (int i = 0; i < 2; i++) {
		uint32_t len = (uint32_t)lens[i];
		uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), payloads[i], (uInt)len);
		for (int b = 0; b < 4; b++)
			rec[n + (size_t)b] = (unsigned char)(len >> (8 * b));
		for (int b = 0; b < 4; b++)
			rec[n + 4 + (size_t)b] = (unsigned char)(crc >> (8 * b));
		memcpy(rec + n + 8, payloads[i], len);
		n += 8 + len;
	}
	char path[200];
	snprintf(path, sizeof(path), "%s/wal-00000000000000ff.log", f->wal);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, rec, n), (ssize_t)n);
	close(fd);

	for (int i = 0; i < 2; i++) {
		assert_int_equal(open_store_err(f->dir, i, &s), SP_ERR_CORRUPT);
		assert_null(s);
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, (off_t)n);
	}
#ifdef HAVE_LSAN
	if (__lsan_do_recoverable_leak_check() != 0)
		fail_msg("store_open leaked memory when the log's replay failed (see the report)");
#endif
	/* Without the bad segment the store opens, k's expiry untouched. */
	assert_int_equal(unlink(path), 0);
	s = open_store(f->dir, 1);
	struct store_value got;
	assert_int_equal(store_get(s, "k", 1, NOW, &got), 0);
	assert_int_equal(got.expire_at_ms, 0);
	close_store(s);
}

/* ---- sessions against the model ---- */

/*
 * prog_step is one step of a session: a write (most often), a commit, an
 * abort, a sync, a checkpoint, a clean close and reopen, or a full
 * comparison of the store's view with the model. With sp == NULL only the
 * model moves.
 */
static int prog_step(struct prog *p, struct store **sp, const char *dir, int wal)
{
	struct store *s = sp ? *sp : NULL;
	uint64_t r = prng(&p->rng) % 100;
	if (r < 70)
		return data_op(p, s);
	if (r < 82) {
		if (s && store_commit(s) != 0)
			return __LINE__;
		p->committed = p->cur;
	} else if (r < 85) {
		if (s)
			store_abort(s);
		p->cur = p->committed;
	} else if (r < 89) {
		if (s && store_sync(s) != 0)
			return __LINE__;
	} else if (r < 93) {
		if (s && (store_checkpoint_begin(s) != 0 || store_checkpoint(s) != 0))
			return __LINE__;
	} else if (r < 96) {
		if (s) {
			store_close(s); /* commits the open batch */
			if (open_store_err(dir, wal, sp) != 0)
				return __LINE__;
		}
		p->committed = p->cur;
	} else if (s) {
		static struct state got;
		memset(&got, 0, sizeof(got));
		struct read_ctx c = {&got, 0};
		int more;
		if (store_scan(s, NULL, 0, 1000, 0, read_cb, &c, &more) < 0 || c.bad)
			return __LINE__;
		int first;
		if (state_diff(&got, &p->cur, &first) != 0)
			return __LINE__;
		if (store_check(s) != 0)
			return __LINE__;
	}
	return 0;
}

struct session {
	const char *dir;
	struct prog *p;
	int wal;
	uint32_t steps;
	int crash; /* end with SIGKILL (else a clean store_close) */
};

static void session_child(void *arg, int out)
{
	struct session *se = arg;
	struct store *s;
	if (open_store_err(se->dir, se->wal, &s) != 0)
		child_fail(out, __LINE__);
	/* The state left by the previous session, crash or not. */
	static struct state got;
	struct read_ctx c = {&got, 0};
	int more, first;
	if (store_scan(s, NULL, 0, 1000, 0, read_cb, &c, &more) < 0 || c.bad ||
	    state_diff(&got, &se->p->committed, &first) != 0)
		child_fail(out, __LINE__);
	for (uint32_t i = 0; i < se->steps; i++) {
		int line = prog_step(se->p, &s, se->dir, se->wal);
		if (line)
			child_fail(out, line);
	}
	if (!se->crash)
		store_close(s);
	child_send(out, MSG_DONE, 0);
	if (se->crash)
		child_wait_for_death();
	_exit(0);
}

static void test_model_sessions(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = test_seed("model_sessions");
	struct prog *p = prog_new(prng(&rng));
	struct state *got = hold(malloc(sizeof(*got)));
	int crashes = 0, closes = 0;
	for (int round = 0; round < 16; round++) {
		struct session se = {.dir = f->dir,
				     .p = p,
				     .wal = prng(&rng) % 4 != 0,
				     .steps = 50 + (uint32_t)(prng(&rng) % 400),
				     .crash = prng(&rng) % 3 != 0};
		int in;
		spawn(session_child, &se, &in);
		uint32_t last = 0;
		wait_for(in, MSG_DONE, 0, &last);
		if (se.crash) {
			kill_child(in, &last);
			crashes++;
		} else {
			int status;
			assert_int_equal(waitpid(child_pid, &status, 0), child_pid);
			child_pid = 0;
			close(in);
			assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
			closes++;
		}
		/* The parent follows the same steps on the model alone. */
		for (uint32_t i = 0; i < se.steps; i++)
			assert_int_equal(prog_step(p, NULL, NULL, 0), 0);
		if (se.crash)
			p->cur = p->committed; /* the open batch died with the process */
		else
			p->committed = p->cur;

		/* Half the time the parent checks the state itself; otherwise the
		 * next session's child opens the store straight after the crash. */
		if (prng(&rng) % 2) {
			struct store *s = open_store(f->dir, (int)(prng(&rng) % 2));
			read_state(s, got);
			char what[64];
			snprintf(what, sizeof(what), "after session %d (%s)", round,
				 se.crash ? "killed" : "closed");
			expect_state(got, &p->committed, what);
			assert_int_equal(store_check(s), 0);
			close_store(s);
		}
	}
	print_message("%d sessions killed, %d closed\n", crashes, closes);
	release(got);
	release(p);
}

int main(void)
{
	sp_log_setup(SP_LOG_ERROR, NULL);
	init_keys();
	const char *env = getenv("SPECTRA_SEED");
	base_seed =
	    env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	print_message("test_store_wal seed %" PRIu64 " (SPECTRA_SEED=%" PRIu64 " replays it)\n",
		      base_seed, base_seed);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_kill_replays_committed, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_kill_after_checkpoints, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_kill_during_append, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_wal_bytes_after_torn_open, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_kill_torn_log_is_a_prefix, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_kill_during_recovery, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_expire_cycle_logs_the_removed_key, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_commit_failure_leaves_no_partial_record, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_open_with_undecodable_log, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_model_sessions, setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
