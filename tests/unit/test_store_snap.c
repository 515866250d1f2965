/*
 * Tests for what the store gives the strong engine: revisions on values,
 * meta records, and the snapshot stream out (store_snap_*) and back in
 * (store_restore).
 *
 * The snapshot tests fill a store from a seeded generator while keeping an
 * in-memory model of what it should hold, stream it out in random chunk
 * sizes while writing more to it between chunks, restore the stream into
 * a second store and compare everything, value headers (type, flags,
 * expiry even if past, revision) and meta records included. Damaged
 * streams (a flipped byte anywhere, a cut anywhere, bytes appended,
 * well-checksummed but malformed records) must be refused with the target
 * unchanged. Every test uses a fresh directory under /tmp, removed
 * afterwards; the seed is printed, and SPECTRA_SEED=<n> replays it.
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

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define NOW	    1000000u /* "now" for tests that do not move it */
#define MAP_DEFAULT (256u << 20)
#define ALL	    0 /* now_ms that sees every key, expired or not */

static uint64_t run_seed;

struct fixture {
	char dir[64];
	char a[96], b[96], file[96]; /* two stores and a stream file in dir */
};

static int setup_dir(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/spectra-snap-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->a, sizeof(f->a), "%s/a", f->dir);
	snprintf(f->b, sizeof(f->b), "%s/b", f->dir);
	snprintf(f->file, sizeof(f->file), "%s/stream.snap", f->dir);
	*state = f;
	return 0;
}

static int teardown_dir(void **state)
{
	struct fixture *f = *state;
	tu_remove_tree(f->dir);
	free(f);
	return 0;
}

static struct store *open_store_opts(const char *dir, uint64_t map_size, int wal)
{
	struct store_options o = {.dir = dir, .map_size = map_size, .wal = wal};
	struct store *s = NULL;
	int err = store_open(&s, &o);
	if (err)
		fail_msg("store_open(%s): %s", dir, sp_strerror(err));
	return s;
}

static struct store *open_store(const char *dir)
{
	return open_store_opts(dir, MAP_DEFAULT, 0);
}

static void put(struct store *s, const void *key, size_t klen, const void *data, size_t len,
		uint64_t exp)
{
	struct store_value v = {
	    .type = STORE_STRING, .data = data, .len = len, .expire_at_ms = exp};
	int err = store_put(s, key, klen, &v);
	if (err)
		fail_msg("store_put: %s", sp_strerror(err));
}

static void put_str(struct store *s, const char *key, const char *v, uint64_t exp)
{
	put(s, key, strlen(key), v, strlen(v), exp);
}

/* get_rev returns key's revision, failing the test if it is missing. */
static uint64_t get_rev(struct store *s, const char *key)
{
	struct store_value v;
	int err = store_get(s, key, strlen(key), ALL, &v);
	if (err)
		fail_msg("get %s: %s", key, sp_strerror(err));
	return v.rev;
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* ---- revisions ---- */

struct rev_seen {
	char key[8][8];
	uint64_t rev[8];
	int n;
};

static int collect_rev(void *ctx, const void *key, size_t klen, const struct store_value *v)
{
	struct rev_seen *c = ctx;
	assert_true(c->n < 8 && klen < 8);
	memcpy(c->key[c->n], key, klen);
	c->key[c->n][klen] = '\0';
	c->rev[c->n++] = v->rev;
	return 0;
}

static void test_revisions(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->a);

	/* The default is 0, and v->rev on input is ignored. */
	struct store_value in = {.type = STORE_STRING, .data = "x", .len = 1, .rev = 999};
	assert_int_equal(store_put(s, "zero", 4, &in), 0);
	assert_int_equal(get_rev(s, "zero"), 0);

	store_set_revision(s, 7);
	put_str(s, "a", "va", 0);
	put_str(s, "b", "vb", NOW + 50);
	assert_int_equal(get_rev(s, "a"), 7); /* seen in the open batch */
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(get_rev(s, "a"), 7);

	/* An expiry change stamps the revision and keeps the payload. */
	store_set_revision(s, 9);
	assert_int_equal(store_set_expire(s, "a", 1, NOW + 10, NOW), 1);
	struct store_value out;
	assert_int_equal(store_get(s, "a", 1, NOW, &out), 0);
	assert_int_equal(out.rev, 9);
	assert_int_equal(out.expire_at_ms, NOW + 10);
	assert_int_equal(out.len, 2);
	assert_memory_equal(out.data, "va", 2);
	/* Same expiry, new revision: still stamped; the index stays exact. */
	store_set_revision(s, 10);
	assert_int_equal(store_set_expire(s, "a", 1, NOW + 10, NOW), 1);
	assert_int_equal(get_rev(s, "a"), 10);
	/* Same expiry, same revision: nothing to write. */
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(store_set_expire(s, "a", 1, NOW + 10, NOW), 1);
	assert_int_equal(get_rev(s, "a"), 10);
	/* Absent and expired keys are not stamped. */
	assert_int_equal(store_set_expire(s, "nope", 4, 0, NOW), 0);
	assert_int_equal(store_set_expire(s, "b", 1, 0, NOW + 60), 0);
	assert_int_equal(get_rev(s, "b"), 7);
	/* Persisting stamps too. */
	store_set_revision(s, 11);
	assert_int_equal(store_set_expire(s, "a", 1, 0, NOW), 1);
	assert_int_equal(get_rev(s, "a"), 11);
	assert_int_equal(store_check(s), 0);

	/* A rewrite replaces the revision; delete and put start afresh. */
	store_set_revision(s, 12);
	put_str(s, "b", "vb2", 0);
	assert_int_equal(get_rev(s, "b"), 12);
	assert_int_equal(store_del(s, "b", 1, NOW), 1);
	store_set_revision(s, 13);
	put_str(s, "b", "vb3", 0);
	assert_int_equal(get_rev(s, "b"), 13);

	/* store_scan reports revisions. */
	struct rev_seen seen = {0};
	int more;
	assert_int_equal(store_scan(s, NULL, 0, 10, NOW, collect_rev, &seen, &more), 3);
	assert_string_equal(seen.key[0], "a");
	assert_int_equal(seen.rev[0], 11);
	assert_string_equal(seen.key[1], "b");
	assert_int_equal(seen.rev[1], 13);
	assert_string_equal(seen.key[2], "zero");
	assert_int_equal(seen.rev[2], 0);

	/* Revisions survive a reopen; the setting does not. */
	store_close(s);
	s = open_store(f->a);
	assert_int_equal(get_rev(s, "a"), 11);
	assert_int_equal(get_rev(s, "b"), 13);
	put_str(s, "c", "vc", 0);
	assert_int_equal(get_rev(s, "c"), 0);
	/* The largest revision round-trips. */
	store_set_revision(s, UINT64_MAX);
	put_str(s, "d", "vd", 0);
	assert_true(get_rev(s, "d") == UINT64_MAX);
	assert_int_equal(store_check(s), 0);
	store_close(s);
}

/* copy_file copies src to dst (a closed store's data.mdb). */
static void copy_file(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY);
	assert_true(in >= 0);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(out >= 0);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	close(out);
}

/* Revisions written with the write-ahead log come back when the log is
 * replayed: the child commits through the log and exits without closing,
 * and the tree is then put back to its state from before those commits, so
 * only the log holds them. */
static void test_revision_wal_replay(void **state)
{
	struct fixture *f = *state;
	char tree[160], saved[160];
	snprintf(tree, sizeof(tree), "%s/data.mdb", f->a);
	snprintf(saved, sizeof(saved), "%s/saved.mdb", f->dir);

	struct store *s = open_store_opts(f->a, MAP_DEFAULT, 1);
	put_str(s, "old", "o", 0);
	store_close(s);
	copy_file(tree, saved);

	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store_options o = {.dir = f->a, .map_size = MAP_DEFAULT, .wal = 1};
		struct store *c;
		if (store_open(&c, &o) != 0)
			_exit(2);
		struct store_value v = {.type = STORE_STRING, .data = "v", .len = 1};
		store_set_revision(c, 5);
		int bad = store_put(c, "a", 1, &v) || store_put(c, "b", 1, &v);
		store_set_revision(c, 6);
		bad = bad || store_put(c, "b", 1, &v) || store_commit(c);
		/* A record that starts with a delete, then a put at 0 (which
		 * must not inherit the previous record's 6), then an expiry
		 * change at 8. */
		store_set_revision(c, 0);
		bad = bad || store_del(c, "old", 3, NOW) != 1 || store_put(c, "c", 1, &v);
		store_set_revision(c, 8);
		bad = bad || store_set_expire(c, "a", 1, NOW + 5, NOW) != 1 || store_commit(c);
		_exit(bad ? 3 : 0); /* no close: no checkpoint */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	copy_file(saved, tree);
	s = open_store(f->a); /* the log is replayed whatever opts.wal says */
	struct store_value out;
	assert_int_equal(store_get(s, "old", 3, NOW, &out), SP_ERR_NOTFOUND);
	assert_int_equal(store_get(s, "a", 1, ALL, &out), 0);
	assert_int_equal(out.rev, 8);
	assert_int_equal(out.expire_at_ms, NOW + 5);
	assert_int_equal(get_rev(s, "b"), 6);
	assert_int_equal(get_rev(s, "c"), 0);
	assert_int_equal(store_check(s), 0);
	/* Replay leaves the caller's setting at its default. */
	put_str(s, "d", "v", 0);
	assert_int_equal(get_rev(s, "d"), 0);
	store_close(s);
}

/* ---- meta records ---- */

struct meta_seen {
	char names[16][64];
	char vals[16][64];
	int n, stop_after;
};

static int collect_meta(void *ctx, const char *name, const void *val, size_t len)
{
	struct meta_seen *m = ctx;
	assert_true(m->n < 16 && strlen(name) < 64 && len < 64);
	strcpy(m->names[m->n], name);
	memcpy(m->vals[m->n], val, len);
	m->vals[m->n][len] = '\0';
	m->n++;
	return m->stop_after && m->n == m->stop_after;
}

static int count_meta(void *ctx, const char *name, const void *val, size_t len)
{
	(void)ctx;
	(void)val;
	(void)len;
	assert_true(strlen(name) > 0);
	return 0;
}

static void expect_meta(struct store *s, const char *name, const char *val)
{
	const void *v;
	size_t len;
	int err = store_meta_get(s, name, &v, &len);
	if (err)
		fail_msg("meta %s: %s", name, sp_strerror(err));
	assert_int_equal(len, strlen(val));
	assert_memory_equal(v, val, len);
}

static void test_meta(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->a);
	const void *v;
	size_t len;

	assert_int_equal(store_meta_get(s, "applied", &v, &len), SP_ERR_NOTFOUND);
	assert_int_equal(store_meta_put(s, "applied", "42", 2), 0);
	assert_int_equal(store_has_batch(s), 1);
	expect_meta(s, "applied", "42"); /* seen in the open batch */
	store_abort(s);
	assert_int_equal(store_meta_get(s, "applied", &v, &len), SP_ERR_NOTFOUND);

	assert_int_equal(store_meta_put(s, "applied", "42", 2), 0);
	assert_int_equal(store_meta_put(s, "ks/model", "strong", 6), 0);
	assert_int_equal(store_meta_put(s, "ks/feat", "eventual", 8), 0);
	assert_int_equal(store_meta_put(s, "ks", "bare", 4), 0);
	assert_int_equal(store_meta_put(s, "node/1", "10.0.0.1:7001", 13), 0);
	assert_int_equal(store_meta_put(s, "empty", NULL, 0), 0);
	/* Names the store uses for itself are ordinary meta names. */
	assert_int_equal(store_meta_put(s, "format", "mine", 4), 0);
	assert_int_equal(store_meta_put(s, "wal_pos", "also", 4), 0);
	assert_int_equal(store_commit(s), 0);
	expect_meta(s, "empty", "");
	expect_meta(s, "format", "mine");

	/* A value borrowed from store_meta_get may be written back. */
	assert_int_equal(store_meta_get(s, "node/1", &v, &len), 0);
	assert_int_equal(store_meta_put(s, "node/2", v, len), 0);
	expect_meta(s, "node/2", "10.0.0.1:7001");
	/* Replace. */
	assert_int_equal(store_meta_put(s, "applied", "43", 2), 0);
	expect_meta(s, "applied", "43");

	/* Scans: by prefix, in byte order, seeing the batch. */
	struct meta_seen m = {0};
	assert_int_equal(store_meta_scan(s, "ks/", collect_meta, &m), 2);
	assert_string_equal(m.names[0], "ks/feat");
	assert_string_equal(m.vals[0], "eventual");
	assert_string_equal(m.names[1], "ks/model");
	memset(&m, 0, sizeof(m));
	assert_int_equal(store_meta_scan(s, "ks", collect_meta, &m), 3);
	assert_string_equal(m.names[0], "ks");
	memset(&m, 0, sizeof(m));
	assert_int_equal(store_meta_scan(s, NULL, collect_meta, &m), 9);
	const char *order[] = {"applied",  "empty",  "format", "ks",	 "ks/feat",
			       "ks/model", "node/1", "node/2", "wal_pos"};
	for (int i = 0; i < 9; i++)
		assert_string_equal(m.names[i], order[i]);
	memset(&m, 0, sizeof(m));
	assert_int_equal(store_meta_scan(s, "", collect_meta, &m), 9);
	memset(&m, 0, sizeof(m));
	m.stop_after = 2;
	assert_int_equal(store_meta_scan(s, NULL, collect_meta, &m), 2);
	memset(&m, 0, sizeof(m));
	assert_int_equal(store_meta_scan(s, "zz", collect_meta, &m), 0);
	assert_int_equal(store_meta_scan(s, "node/3", collect_meta, &m), 0);
	/* Meta records are not keys. */
	struct store_value kv;
	assert_int_equal(store_get(s, "applied", 7, NOW, &kv), SP_ERR_NOTFOUND);
	struct store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.keys, 0);

	/* Delete: 1, then 0; an absent name opens no batch. */
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(store_meta_del(s, "missing"), 0);
	assert_int_equal(store_has_batch(s), 0);
	assert_int_equal(store_meta_del(s, "node/2"), 1);
	assert_int_equal(store_meta_del(s, "node/2"), 0);
	assert_int_equal(store_meta_get(s, "node/2", &v, &len), SP_ERR_NOTFOUND);
	/* A record put and deleted in one batch. */
	assert_int_equal(store_meta_put(s, "tmp", "t", 1), 0);
	assert_int_equal(store_meta_del(s, "tmp"), 1);

	/* Bad names. */
	size_t max = store_meta_max_name_len(s);
	assert_true(max >= 256);
	char *longname = malloc(max + 2);
	memset(longname, 'n', max + 1);
	longname[max + 1] = '\0';
	assert_int_equal(store_meta_put(s, longname, "x", 1), SP_ERR_KEYLEN);
	assert_int_equal(store_meta_get(s, longname, &v, &len), SP_ERR_KEYLEN);
	assert_int_equal(store_meta_del(s, longname), SP_ERR_KEYLEN);
	assert_int_equal(store_meta_scan(s, longname, collect_meta, &m), 0);
	longname[max] = '\0';
	assert_int_equal(store_meta_put(s, longname, "x", 1), 0);
	expect_meta(s, longname, "x");
	assert_int_equal(store_meta_put(s, "", "x", 1), SP_ERR_INVAL);
	assert_int_equal(store_meta_put(s, NULL, "x", 1), SP_ERR_INVAL);
	assert_int_equal(store_meta_get(s, "", &v, &len), SP_ERR_INVAL);
	assert_int_equal(store_meta_del(s, NULL), SP_ERR_INVAL);
	assert_int_equal(store_check(s), 0);

	/* Everything survives close and open, and the store's own format
	 * marker was never touched by the "format" record. */
	store_close(s);
	s = open_store(f->a);
	assert_int_equal(store_check(s), 0);
	expect_meta(s, "applied", "43");
	expect_meta(s, "format", "mine");
	expect_meta(s, "wal_pos", "also");
	expect_meta(s, longname, "x");
	assert_int_equal(store_meta_get(s, "tmp", &v, &len), SP_ERR_NOTFOUND);
	/* applied, empty, format, ks, ks/feat, ks/model, node/1, wal_pos and
	 * the long name. */
	assert_int_equal(store_meta_scan(s, NULL, count_meta, NULL), 9);
	assert_int_equal(store_meta_scan(s, "nnn", count_meta, NULL), 1);
	assert_int_equal(store_meta_del(s, "format"), 1);
	store_close(s);
	s = open_store(f->a); /* the marker is still there */
	assert_int_equal(store_check(s), 0);
	store_close(s);
	free(longname);
}

/* ---- a model of a store's contents ---- */

struct mkey {
	unsigned char *key;
	size_t klen;
	uint8_t type, flags;
	uint64_t exp, rev;
	unsigned char *data;
	size_t len;
};

struct mmeta {
	char *name;
	unsigned char *val;
	size_t len;
};

struct model {
	struct mkey *keys;
	size_t nkeys, capkeys;
	struct mmeta *metas;
	size_t nmetas, capmetas;
};

static unsigned char *rnd_bytes(uint64_t *rng, size_t n)
{
	unsigned char *p = malloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)tu_rnd(rng, 256);
	return p;
}

static struct mkey *model_key(struct model *m, const void *key, size_t klen)
{
	for (size_t i = 0; i < m->nkeys; i++)
		if (m->keys[i].klen == klen && memcmp(m->keys[i].key, key, klen) == 0)
			return &m->keys[i];
	if (m->nkeys == m->capkeys) {
		m->capkeys = m->capkeys ? 2 * m->capkeys : 64;
		m->keys = realloc(m->keys, m->capkeys * sizeof(*m->keys));
	}
	struct mkey *k = &m->keys[m->nkeys++];
	memset(k, 0, sizeof(*k));
	k->key = malloc(klen ? klen : 1);
	memcpy(k->key, key, klen);
	k->klen = klen;
	return k;
}

static struct mmeta *model_meta(struct model *m, const char *name)
{
	for (size_t i = 0; i < m->nmetas; i++)
		if (strcmp(m->metas[i].name, name) == 0)
			return &m->metas[i];
	if (m->nmetas == m->capmetas) {
		m->capmetas = m->capmetas ? 2 * m->capmetas : 16;
		m->metas = realloc(m->metas, m->capmetas * sizeof(*m->metas));
	}
	struct mmeta *r = &m->metas[m->nmetas++];
	memset(r, 0, sizeof(*r));
	r->name = strdup(name);
	return r;
}

static void model_free(struct model *m)
{
	for (size_t i = 0; i < m->nkeys; i++) {
		free(m->keys[i].key);
		free(m->keys[i].data);
	}
	for (size_t i = 0; i < m->nmetas; i++) {
		free(m->metas[i].name);
		free(m->metas[i].val);
	}
	free(m->keys);
	free(m->metas);
	memset(m, 0, sizeof(*m));
}

static int key_order(const void *a, const void *b)
{
	const struct mkey *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = n ? memcmp(x->key, y->key, n) : 0;
	if (c)
		return c;
	return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static int meta_order(const void *a, const void *b)
{
	return strcmp(((const struct mmeta *)a)->name, ((const struct mmeta *)b)->name);
}

/* gen_put writes a random value for key into s (at a random revision) and
 * the model: sometimes large (over any chunk size), some with an expiry
 * in the past or future, random type and flags. */
static void gen_put(struct store *s, struct model *m, uint64_t *rng, const void *key, size_t klen)
{
	size_t len;
	switch (tu_rnd(rng, 10)) {
	case 0:
		len = 100000 + tu_rnd(rng, 300000);
		break;
	case 1:
		len = 0;
		break;
	default:
		len = tu_rnd(rng, 300);
	}
	uint64_t exp = 0;
	switch (tu_rnd(rng, 4)) {
	case 0:
		exp = 1 + tu_rnd(rng, NOW); /* already past */
		break;
	case 1:
		exp = NOW + 1 + tu_rnd(rng, 1000000);
		break;
	}
	unsigned char *data = rnd_bytes(rng, len);
	uint64_t rev = tu_splitmix(rng);
	struct store_value v = {.type = (uint8_t)tu_rnd(rng, 256),
				.flags = (uint8_t)tu_rnd(rng, 256),
				.expire_at_ms = exp,
				.data = data,
				.len = len};
	store_set_revision(s, rev);
	int err = store_put(s, key, klen, &v);
	if (err)
		fail_msg("store_put: %s", sp_strerror(err));
	struct mkey *k = model_key(m, key, klen);
	free(k->data);
	k->type = v.type;
	k->flags = v.flags;
	k->exp = exp;
	k->rev = rev;
	k->data = data;
	k->len = len;
}

static void gen_meta(struct store *s, struct model *m, uint64_t *rng, const char *name)
{
	size_t len = tu_rnd(rng, 8) == 0 ? 5000 + tu_rnd(rng, 100000) : tu_rnd(rng, 64);
	unsigned char *val = rnd_bytes(rng, len);
	assert_int_equal(store_meta_put(s, name, val, len), 0);
	struct mmeta *r = model_meta(m, name);
	free(r->val);
	r->val = val;
	r->len = len;
}

/* fill puts n random keys and about n/10 meta records into s and m. Keys
 * are binary and unique (a 2-byte number first), of every length up to
 * the store's limit; the empty key and a longest key are among them. */
static void fill(struct store *s, struct model *m, uint64_t *rng, size_t n)
{
	size_t max = store_max_key_len(s);
	unsigned char *key = malloc(max);
	gen_put(s, m, rng, "", 0);
	for (size_t i = 0; i < n; i++) {
		size_t klen = i == 0 ? max : 2 + tu_rnd(rng, tu_rnd(rng, 4) ? 40 : max - 1);
		key[0] = (unsigned char)(i >> 8);
		key[1] = (unsigned char)i;
		for (size_t j = 2; j < klen; j++)
			key[j] = (unsigned char)tu_rnd(rng, 256);
		gen_put(s, m, rng, key, klen);
		if (tu_rnd(rng, 50) == 0)
			assert_int_equal(store_commit(s), 0);
	}
	free(key);
	for (size_t i = 0; i < n / 10 + 1; i++) {
		char name[48];
		snprintf(name, sizeof(name), "%s/%zu/%x", tu_rnd(rng, 2) ? "ks" : "node", i,
			 (unsigned)tu_rnd(rng, 1u << 20));
		gen_meta(s, m, rng, name);
	}
}

/* ---- comparing a store with a model ---- */

struct got {
	struct mkey *keys;
	size_t n, cap;
};

static int collect_all(void *ctx, const void *key, size_t klen, const struct store_value *v)
{
	struct got *g = ctx;
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 64;
		g->keys = realloc(g->keys, g->cap * sizeof(*g->keys));
	}
	struct mkey *k = &g->keys[g->n++];
	k->key = malloc(klen ? klen : 1);
	memcpy(k->key, key, klen);
	k->klen = klen;
	k->type = v->type;
	k->flags = v->flags;
	k->exp = v->expire_at_ms;
	k->rev = v->rev;
	k->data = malloc(v->len ? v->len : 1);
	memcpy(k->data, v->data, v->len);
	k->len = v->len;
	return 0;
}

struct got_meta {
	struct model *m;
	size_t i;
};

static int compare_meta(void *ctx, const char *name, const void *val, size_t len)
{
	struct got_meta *g = ctx;
	assert_true(g->i < g->m->nmetas);
	struct mmeta *want = &g->m->metas[g->i++];
	if (strcmp(name, want->name) != 0)
		fail_msg("meta record %zu is %s, want %s", g->i - 1, name, want->name);
	assert_int_equal(len, want->len);
	if (len)
		assert_memory_equal(val, want->val, len);
	return 0;
}

/* expect_model asserts that s holds exactly what m says: every key with
 * its whole header (expired ones too), and every meta record. */
static void expect_model(struct store *s, struct model *m)
{
	if (m->nkeys)
		qsort(m->keys, m->nkeys, sizeof(*m->keys), key_order);
	if (m->nmetas)
		qsort(m->metas, m->nmetas, sizeof(*m->metas), meta_order);
	struct got g = {0};
	int more;
	int n = store_scan(s, NULL, 0, SIZE_MAX, ALL, collect_all, &g, &more);
	if (n < 0)
		fail_msg("scan: %s", sp_strerror(n));
	assert_int_equal((size_t)n, m->nkeys);
	for (size_t i = 0; i < m->nkeys; i++) {
		struct mkey *a = &g.keys[i], *b = &m->keys[i];
		if (key_order(a, b) != 0)
			fail_msg("key %zu differs (lengths %zu and %zu)", i, a->klen, b->klen);
		assert_int_equal(a->type, b->type);
		assert_int_equal(a->flags, b->flags);
		assert_int_equal(a->exp, b->exp);
		assert_true(a->rev == b->rev);
		assert_int_equal(a->len, b->len);
		if (a->len)
			assert_memory_equal(a->data, b->data, a->len);
	}
	for (size_t i = 0; i < g.n; i++) {
		free(g.keys[i].key);
		free(g.keys[i].data);
	}
	free(g.keys);
	struct got_meta gm = {m, 0};
	assert_int_equal(store_meta_scan(s, NULL, compare_meta, &gm), (int)m->nmetas);
	assert_int_equal(store_check(s), 0);
	/* The expiry index was rebuilt: it counts what the model says has
	 * expired. */
	uint64_t expired = 0, want = 0;
	for (size_t i = 0; i < m->nkeys; i++)
		want += m->keys[i].exp && m->keys[i].exp <= NOW;
	assert_int_equal(store_count_expired(s, NOW, UINT64_MAX, &expired), 0);
	assert_int_equal(expired, want);
}

/* ---- streaming ---- */

struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* chunk_size picks a read size: mostly moderate, sometimes tiny, sometimes
 * larger than any value. */
static uint32_t chunk_size(uint64_t *rng)
{
	switch (tu_rnd(rng, 6)) {
	case 0:
		return 1 + (uint32_t)tu_rnd(rng, 8);
	case 1:
		return 400000 + (uint32_t)tu_rnd(rng, 400000);
	default:
		return 1000 + (uint32_t)tu_rnd(rng, 60000);
	}
}

typedef void (*between_fn)(void *ctx);

/* read_all streams snap out in random chunks, calling between (if set)
 * after each, and returns the bytes. */
static struct bytes read_all(struct store_snap *snap, uint64_t *rng, between_fn between, void *ctx)
{
	struct bytes b = {0};
	uint8_t *buf = malloc(800000);
	bool last = false;
	while (!last) {
		uint32_t cap = chunk_size(rng);
		int n = store_snap_read(snap, b.len, buf, cap, &last);
		if (n < 0)
			fail_msg("snap read at %zu: %s", b.len, sp_strerror(n));
		assert_true((uint32_t)n <= cap);
		assert_true(n == (int)cap || last); /* short only at the end */
		bytes_add(&b, buf, (size_t)n);
		assert_int_equal(store_snap_bytes_sent(snap), b.len);
		if (between)
			between(ctx);
	}
	/* At the end: nothing more, and still "last". */
	assert_int_equal(store_snap_read(snap, b.len, buf, 100, &last), 0);
	assert_true(last);
	free(buf);
	return b;
}

/* snapshot_bytes streams s's committed state out whole. */
static struct bytes snapshot_bytes(struct store *s, uint64_t *rng)
{
	struct store_snap *snap;
	assert_int_equal(store_snap_open(s, &snap), 0);
	struct bytes b = read_all(snap, rng, NULL, NULL);
	store_snap_close(snap);
	return b;
}

/* The writer that runs between chunks: changes keys, deletes, expires,
 * flushes once, rewrites meta records, commits now and then. None of it
 * may show in the stream. */
struct churn {
	struct store *s;
	uint64_t *rng;
	struct model *m; /* read for existing keys; not changed */
	int flushed;
	int steps;
};

static void churn_step(void *ctx)
{
	struct churn *c = ctx;
	struct store *s = c->s;
	c->steps++;
	for (int i = 0; i < 5; i++) {
		struct mkey *k = &c->m->keys[tu_rnd(c->rng, c->m->nkeys)];
		unsigned char v[64];
		size_t len = tu_rnd(c->rng, sizeof(v));
		memset(v, 0xab, len);
		struct store_value sv = {.type = 1, .data = v, .len = len, .expire_at_ms = 0};
		store_set_revision(s, 1u << 30);
		switch (tu_rnd(c->rng, 6)) {
		case 0:
			assert_true(store_del(s, k->key, k->klen, NOW) >= 0);
			break;
		case 1:
			assert_true(store_set_expire(s, k->key, k->klen, NOW + 7, NOW) >= 0);
			break;
		case 2:
			assert_int_equal(store_meta_put(s, "ks/churn", v, len), 0);
			if (c->m->nmetas)
				assert_true(store_meta_del(s, c->m->metas[0].name) >= 0);
			break;
		case 3: {
			unsigned char nk[3] = {0xfe, (unsigned char)c->steps, (unsigned char)i};
			assert_int_equal(store_put(s, nk, sizeof(nk), &sv), 0);
			break;
		}
		default:
			assert_int_equal(store_put(s, k->key, k->klen, &sv), 0);
		}
	}
	assert_true(store_expire_cycle(s, NOW, 3) >= 0);
	if (!c->flushed && c->steps == 20) {
		assert_int_equal(store_flush(s), 0);
		c->flushed = 1;
	}
	if (tu_rnd(c->rng, 3) == 0)
		assert_int_equal(store_commit(s), 0);
}

/* test_snap_roundtrip: fill A (part committed, part in the open batch,
 * which snap_open commits), stream it out while A keeps changing,
 * restore into B (which held other things), compare, and check that B's
 * own stream is the same bytes. */
static void test_snap_roundtrip(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = tu_stream(run_seed, "snap_roundtrip");
	struct store *a = open_store(f->a);
	struct store *b = open_store(f->b);
	struct model m = {0}, junk = {0};

	fill(a, &m, &rng, 600);
	assert_int_equal(store_has_batch(a), 1);
	fill(b, &junk, &rng, 50);
	assert_int_equal(store_meta_put(b, "only-in-b", "x", 1), 0);
	assert_int_equal(store_commit(b), 0);

	struct store_snap *snap;
	assert_int_equal(store_snap_open(a, &snap), 0);
	assert_int_equal(store_has_batch(a), 0);
	struct churn c = {.s = a, .rng = &rng, .m = &m};
	struct bytes out = read_all(snap, &rng, churn_step, &c);
	store_snap_close(snap);
	assert_true(c.flushed);
	assert_true(out.len > 5u << 20);
	write_file(f->file, out.p, out.len);
	assert_int_equal(store_snap_verify_file(f->file), 0);

	/* B's open batch is committed first, then replaced. */
	put_str(b, "uncommitted", "u", 0);
	uint64_t lost = store_batches_lost(b, NULL);
	assert_int_equal(store_restore(b, f->file), 0);
	assert_int_equal(store_has_batch(b), 0);
	assert_int_equal(store_batches_lost(b, NULL), lost);
	expect_model(b, &m);
	const void *v;
	size_t len;
	assert_int_equal(store_meta_get(b, "only-in-b", &v, &len), SP_ERR_NOTFOUND);

	/* The same state streams to the same bytes. */
	struct bytes again = snapshot_bytes(b, &rng);
	assert_int_equal(again.len, out.len);
	assert_memory_equal(again.p, out.p, out.len);
	free(again.p);

	/* It stays after a reopen, and works as a store: the restored
	 * expiry index drives the expiry cycle. */
	store_close(b);
	b = open_store(f->b);
	expect_model(b, &m);
	uint64_t expired;
	assert_int_equal(store_count_expired(b, NOW, UINT64_MAX, &expired), 0);
	assert_int_equal(store_expire_cycle(b, NOW, SIZE_MAX), (int)expired);
	assert_int_equal(store_count_expired(b, NOW, UINT64_MAX, &expired), 0);
	assert_int_equal(expired, 0);
	put_str(b, "after", "restore", 0);
	assert_int_equal(store_check(b), 0);

	free(out.p);
	model_free(&m);
	model_free(&junk);
	store_close(a);
	store_close(b);
}

/* test_snap_offsets: rereading from 0 or from any earlier offset gives the
 * same bytes again; a gap is refused and leaves the stream where it was. */
static void test_snap_offsets(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = tu_stream(run_seed, "snap_offsets");
	struct store *a = open_store(f->a);
	struct model m = {0};
	fill(a, &m, &rng, 150);
	struct bytes whole = snapshot_bytes(a, &rng);

	struct store_snap *snap;
	assert_int_equal(store_snap_open(a, &snap), 0);
	uint8_t *buf = malloc(whole.len + 1);
	bool last = true;
	uint64_t pos = 0;
	for (int round = 0; round < 60; round++) {
		uint32_t cap = chunk_size(&rng);
		int n;
		switch (tu_rnd(&rng, 4)) {
		case 0: /* a gap, or beyond the end */
			n = store_snap_read(snap, pos + 1 + tu_rnd(&rng, 1000), buf, cap, &last);
			assert_int_equal(n, SP_ERR_INVAL);
			assert_int_equal(store_snap_bytes_sent(snap), pos);
			continue;
		case 1: /* back to anywhere before */
			pos = tu_rnd(&rng, pos + 1);
			break;
		case 2:
			pos = 0;
			break;
		}
		n = store_snap_read(snap, pos, buf, cap, &last);
		if (n < 0)
			fail_msg("read at %" PRIu64 ": %s", pos, sp_strerror(n));
		uint64_t want = whole.len - pos < cap ? whole.len - pos : cap;
		assert_int_equal(n, want);
		if (n)
			assert_memory_equal(buf, whole.p + pos, (size_t)n);
		pos += (uint64_t)n;
		assert_int_equal(last, pos == whole.len);
		assert_int_equal(store_snap_bytes_sent(snap), pos);
	}
	/* Beyond the end is a gap too. */
	assert_int_equal(store_snap_read(snap, 0, buf, 10, &last), 10);
	assert_int_equal(store_snap_read(snap, whole.len + 1, buf, 10, &last), SP_ERR_INVAL);
	/* Byte by byte over the trailer: "last" comes with the final byte. */
	uint64_t at = whole.len - 30;
	assert_int_equal(store_snap_read(snap, 10, buf, (uint32_t)(at - 10), &last), at - 10);
	assert_int_equal(store_snap_read(snap, at, buf, 1, &last), 1);
	for (at++; at < whole.len; at++) {
		assert_false(last);
		assert_int_equal(store_snap_read(snap, at, buf, 1, &last), 1);
		assert_int_equal(buf[0], whole.p[at]);
	}
	assert_true(last);
	store_snap_close(snap);
	store_snap_close(NULL);
	free(buf);
	free(whole.p);
	model_free(&m);
	store_close(a);
}

/* test_snap_many_and_sync: several snapshots of different states open at
 * once, read interleaved with writes and commits, while another thread
 * keeps running store_sync; each restores to its own state. */
struct syncer {
	struct store *s;
	atomic_int stop;
	int err;
	int syncs;
};

static void *sync_thread(void *arg)
{
	struct syncer *y = arg;
	while (!atomic_load(&y->stop)) {
		int err = store_sync(y->s);
		if (err && !y->err)
			y->err = err;
		y->syncs++;
	}
	return NULL;
}

static void test_snap_many_and_sync(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = tu_stream(run_seed, "snap_many_and_sync");
	struct store *a = open_store(f->a);
	struct syncer y = {.s = a};
	atomic_init(&y.stop, 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, sync_thread, &y), 0);

	enum { NSNAP = 4 };
	struct model m[NSNAP] = {{0}};
	struct store_snap *snap[NSNAP];
	struct bytes got[NSNAP] = {{0}};
	bool done[NSNAP] = {false};
	/* Each model is the one before plus more keys and meta records. */
	for (int i = 0; i < NSNAP; i++) {
		fill(a, &m[i], &rng, 80);
		for (int j = i - 1; j >= 0; j--) { /* newest first */
			for (size_t k = 0; k < m[j].nkeys; k++) {
				struct mkey *src = &m[j].keys[k];
				struct mkey *dst = model_key(&m[i], src->key, src->klen);
				if (dst->data)
					continue; /* refilled since: the newer value stands */
				unsigned char *key = dst->key; /* model_key made it */
				*dst = *src;
				dst->key = key;
				dst->data = malloc(src->len ? src->len : 1);
				memcpy(dst->data, src->data, src->len);
			}
			for (size_t k = 0; k < m[j].nmetas; k++) {
				struct mmeta *r = model_meta(&m[i], m[j].metas[k].name);
				if (r->val)
					continue;
				r->len = m[j].metas[k].len;
				r->val = malloc(r->len ? r->len : 1);
				memcpy(r->val, m[j].metas[k].val, r->len);
			}
		}
		assert_int_equal(store_snap_open(a, &snap[i]), 0);
	}
	/* Interleave the reads, writing between them. */
	uint8_t *buf = malloc(800000);
	int left = NSNAP;
	while (left) {
		int i = (int)tu_rnd(&rng, NSNAP);
		if (done[i])
			continue;
		uint32_t cap = chunk_size(&rng);
		int n = store_snap_read(snap[i], got[i].len, buf, cap, &done[i]);
		assert_true(n >= 0);
		bytes_add(&got[i], buf, (size_t)n);
		left -= done[i];
		put_str(a, "between", "reads", 0);
		assert_int_equal(store_meta_put(a, "ks/0/between", "x", 1), 0);
		if (tu_rnd(&rng, 2))
			assert_int_equal(store_commit(a), 0);
	}
	free(buf);
	atomic_store(&y.stop, 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(y.err, 0);
	assert_true(y.syncs > 0);

	for (int i = 0; i < NSNAP; i++) {
		store_snap_close(snap[i]);
		write_file(f->file, got[i].p, got[i].len);
		struct store *b = open_store(f->b);
		assert_int_equal(store_restore(b, f->file), 0);
		expect_model(b, &m[i]);
		store_close(b);
		free(got[i].p);
		model_free(&m[i]);
	}
	store_close(a);
}

/* Snapshots take reader slots; when none is left, opening one fails
 * cleanly, and closing one frees its slot. */
static void test_snap_readers_full(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.dir = f->a, .map_size = MAP_DEFAULT, .max_readers = 4};
	struct store *s;
	assert_int_equal(store_open(&s, &o), 0);
	put_str(s, "k", "v", 0);
	struct store_snap *snap[8];
	int n = 0, err;
	while ((err = store_snap_open(s, &snap[n])) == 0) {
		n++;
		assert_true(n < 8);
	}
	assert_int_equal(err, SP_ERR_IO);
	assert_true(n >= 1 && n <= 3); /* the store's own reader has one */
	/* The store goes on working, reads and writes. */
	put_str(s, "k2", "v2", 0);
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(get_rev(s, "k2"), 0);
	store_snap_close(snap[--n]);
	assert_int_equal(store_snap_open(s, &snap[n]), 0);
	n++;
	uint8_t buf[256];
	bool last;
	for (int i = 0; i < n; i++) {
		assert_true(store_snap_read(snap[i], 0, buf, sizeof(buf), &last) > 0);
		assert_true(last);
		store_snap_close(snap[i]);
	}
	store_close(s);
}

/* ---- damaged streams ---- */

/* fingerprint is the target store's whole state as a stream. */
static struct bytes fingerprint(struct store *s, uint64_t *rng)
{
	return snapshot_bytes(s, rng);
}

static void expect_unchanged(struct store *s, const struct bytes *before, uint64_t *rng)
{
	struct bytes now = fingerprint(s, rng);
	assert_int_equal(now.len, before->len);
	assert_memory_equal(now.p, before->p, now.len);
	free(now.p);
}

/* refused writes p to the stream file and asserts both the verifier and
 * store_restore refuse it. */
static void refused(struct fixture *f, struct store *b, const uint8_t *p, size_t n,
		    const char *what, size_t at)
{
	write_file(f->file, p, n);
	int v = store_snap_verify_file(f->file);
	int r = store_restore(b, f->file);
	if (v != SP_ERR_CORRUPT || r != SP_ERR_CORRUPT)
		fail_msg("%s at %zu of %zu: verify %s, restore %s", what, at, n, sp_strerror(v),
			 sp_strerror(r));
}

/* reseal recomputes a stream's CRC, so that a change to it is seen by the
 * record checks rather than the checksum. */
static void reseal(uint8_t *p, size_t n)
{
	uint32_t crc = (uint32_t)crc32(0L, p, (uInt)(n - 4));
	for (int i = 0; i < 4; i++)
		p[n - 4 + i] = (uint8_t)(crc >> (8 * i));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_snap_corrupt(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = tu_stream(run_seed, "snap_corrupt");
	struct store *a = open_store(f->a);
	struct store *b = open_store(f->b);
	struct model m = {0}, bm = {0};

	/* A small stream (every position is tried) with short values. */
	put_str(a, "k1", "v1", NOW + 5);
	store_set_revision(a, 77);
	put_str(a, "k2", "value two", 0);
	put(a, "", 0, "", 0, 0);
	assert_int_equal(store_meta_put(a, "applied", "12345678", 8), 0);
	assert_int_equal(store_meta_put(a, "ks/x", "strong", 6), 0);
	struct bytes good = snapshot_bytes(a, &rng);
	assert_true(good.len < 400);
	fill(b, &bm, &rng, 40);
	struct bytes before = fingerprint(b, &rng);

	uint8_t *p = malloc(good.len + 200);
	for (size_t i = 0; i < good.len; i++) {
		memcpy(p, good.p, good.len);
		p[i] ^= (uint8_t)(1u << tu_rnd(&rng, 8));
		refused(f, b, p, good.len, "flipped bit", i);
		memcpy(p, good.p, good.len);
		p[i] ^= 0xff;
		refused(f, b, p, good.len, "flipped byte", i);
	}
	for (size_t n = 0; n < good.len; n++)
		refused(f, b, good.p, n, "cut", n);
	for (size_t n = 1; n <= 64; n++) {
		memcpy(p, good.p, good.len);
		for (size_t i = 0; i < n; i++)
			p[good.len + i] = (uint8_t)tu_rnd(&rng, 256);
		refused(f, b, p, good.len + n, "garbage appended", n);
	}
	/* The stream twice over. */
	memcpy(p, good.p, good.len);
	uint8_t *twice = malloc(2 * good.len);
	memcpy(twice, good.p, good.len);
	memcpy(twice + good.len, good.p, good.len);
	refused(f, b, twice, 2 * good.len, "stream twice", 0);
	free(twice);

	/* Records with a good checksum but wrong insides. Layout: header (16),
	 * then key "" (23 + 0 + 4 + 0), "k1", "k2", then the meta records. */
	size_t k0 = 16, k1 = k0 + 27, k2 = k1 + 27 + 2 + 2;
	/* Keys out of order: swap "k1" and "k2"'s names... */
	memcpy(p, good.p, good.len);
	p[k1 + 23 + 1] = '3'; /* "k3" before "k2" */
	reseal(p, good.len);
	refused(f, b, p, good.len, "keys out of order", k1);
	/* ...a duplicate key... */
	memcpy(p, good.p, good.len);
	p[k2 + 23 + 1] = '1';
	reseal(p, good.len);
	refused(f, b, p, good.len, "duplicate key", k2);
	/* ...an unknown record kind... */
	memcpy(p, good.p, good.len);
	p[k1] = 'X';
	reseal(p, good.len);
	refused(f, b, p, good.len, "unknown kind", k1);
	/* ...a key length running past the end... */
	memcpy(p, good.p, good.len);
	put_le32(p + k1 + 19, 0x7fffffff);
	reseal(p, good.len);
	refused(f, b, p, good.len, "key length", k1);
	/* ...a trailer that miscounts... */
	memcpy(p, good.p, good.len);
	p[good.len - 21 + 1]++;
	reseal(p, good.len);
	refused(f, b, p, good.len, "trailer key count", 0);
	memcpy(p, good.p, good.len);
	p[good.len - 21 + 9]--;
	reseal(p, good.len);
	refused(f, b, p, good.len, "trailer meta count", 0);
	/* ...another version, a reserved field set. */
	memcpy(p, good.p, good.len);
	p[8] = 2;
	reseal(p, good.len);
	refused(f, b, p, good.len, "version", 8);
	memcpy(p, good.p, good.len);
	p[12] = 1;
	reseal(p, good.len);
	refused(f, b, p, good.len, "reserved", 12);
	/* A meta record before a key: move "k2" after the meta records by
	 * building the stream by hand from the good one's pieces. */
	{
		size_t metas = k2 + 27 + 2 + 9, tr = good.len - 21;
		uint8_t *q = malloc(good.len);
		size_t n = 0;
		memcpy(q, good.p, k2);
		n = k2;
		memcpy(q + n, good.p + metas, tr - metas);
		n += tr - metas;
		memcpy(q + n, good.p + k2, metas - k2);
		n += metas - k2;
		memcpy(q + n, good.p + tr, 21);
		n += 21;
		assert_int_equal(n, good.len);
		reseal(q, n);
		refused(f, b, q, n, "meta before key", k2);
		free(q);
	}
	/* A NUL in a meta name. */
	{
		size_t meta0 = k2 + 27 + 2 + 9; /* 'M' nlen "applied" */
		memcpy(p, good.p, good.len);
		assert_int_equal(p[meta0], 'M');
		/* Rename "applied" to "\0pplied": a NUL in a name. */
		p[meta0 + 5] = 0;
		reseal(p, good.len);
		refused(f, b, p, good.len, "NUL in a meta name", meta0);
	}
	/* Not there, a directory, empty. */
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/none", f->dir);
	assert_true(store_restore(b, missing) < 0);
	assert_true(store_snap_verify_file(missing) < 0);
	assert_true(store_restore(b, f->dir) < 0);
	refused(f, b, good.p, 0, "empty", 0);

	/* None of it changed b; an open batch there is kept too. */
	expect_unchanged(b, &before, &rng);
	put_str(b, "pending", "p", 0);
	refused(f, b, good.p, good.len - 1, "cut", good.len - 1);
	assert_int_equal(store_has_batch(b), 1);
	assert_int_equal(store_get(b, "pending", 7, NOW, &(struct store_value){0}), 0);
	store_abort(b);
	expect_unchanged(b, &before, &rng);

	/* The good stream still restores. */
	write_file(f->file, good.p, good.len);
	assert_int_equal(store_restore(b, f->file), 0);
	const void *v;
	size_t len;
	assert_int_equal(store_meta_get(b, "applied", &v, &len), 0);
	assert_int_equal(get_rev(b, "k2"), 77);
	assert_int_equal(get_rev(b, "k1"), 0);
	free(p);

	/* A large stream: flips and cuts at random positions. */
	fill(a, &m, &rng, 200);
	struct bytes big = snapshot_bytes(a, &rng);
	free(before.p);
	before = fingerprint(b, &rng);
	p = malloc(big.len + 16);
	for (int i = 0; i < 40; i++) {
		size_t at = tu_rnd(&rng, big.len);
		memcpy(p, big.p, big.len);
		p[at] ^= (uint8_t)(1 + tu_rnd(&rng, 255));
		refused(f, b, p, big.len, "flipped byte", at);
		at = tu_rnd(&rng, big.len);
		refused(f, b, big.p, at, "cut", at);
		memcpy(p, big.p, big.len);
		p[big.len] = (uint8_t)tu_rnd(&rng, 256);
		refused(f, b, p, big.len + 1, "garbage appended", 1);
	}
	expect_unchanged(b, &before, &rng);

	free(p);
	free(big.p);
	free(before.p);
	free(good.p);
	model_free(&m);
	model_free(&bm);
	store_close(a);
	store_close(b);
}

/* A stream whose keys are longer than the target store takes verifies as
 * a stream but is refused by that store, unchanged. */
static void test_restore_key_too_long(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = tu_stream(run_seed, "restore_key_too_long");
	struct store *a = open_store(f->a);
	put_str(a, "k", "v", 0);
	struct bytes good = snapshot_bytes(a, &rng);
	store_close(a);
	/* Rebuild the one key record with a key of 4000 bytes. */
	size_t klen = 4000, n = good.len + klen - 1;
	uint8_t *p = malloc(n);
	memcpy(p, good.p, 16 + 23);
	put_le32(p + 16 + 19, (uint32_t)klen);
	memset(p + 16 + 23, 'k', klen);
	memcpy(p + 16 + 23 + klen, good.p + 16 + 23 + 1, good.len - (16 + 23 + 1));
	reseal(p, n);
	write_file(f->file, p, n);
	assert_int_equal(store_snap_verify_file(f->file), 0);
	struct store *b = open_store(f->b);
	put_str(b, "mine", "m", 0);
	assert_int_equal(store_restore(b, f->file), SP_ERR_CORRUPT);
	struct store_value v;
	assert_int_equal(store_get(b, "mine", 4, NOW, &v), 0);
	store_close(b);
	free(p);
	free(good.p);
}

/* An empty store streams to a header and a trailer; restoring that empties
 * a store of keys, index and meta records, and keeps it a store. */
static void test_snap_empty(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = tu_stream(run_seed, "snap_empty");
	struct store *a = open_store(f->a);
	struct bytes e = snapshot_bytes(a, &rng);
	assert_int_equal(e.len, 16 + 21);
	assert_memory_equal(e.p, "SPSNAPv1", 8);
	write_file(f->file, e.p, e.len);
	assert_int_equal(store_snap_verify_file(f->file), 0);

	struct store *b = open_store(f->b);
	struct model m = {0};
	fill(b, &m, &rng, 30);
	assert_int_equal(store_restore(b, f->file), 0);
	struct model none = {0};
	expect_model(b, &none);
	struct store_stats st;
	store_get_stats(b, &st);
	assert_int_equal(st.keys, 0);
	assert_int_equal(st.expires, 0);
	store_close(b);
	b = open_store(f->b);
	assert_int_equal(store_check(b), 0);
	store_close(b);
	store_close(a);
	model_free(&m);
	free(e.p);
}

/* A restore that does not fit the map fails whole: the store keeps its
 * old contents and goes on working. */
static void test_restore_map_full(void **state)
{
	struct fixture *f = *state;
	uint64_t rng = tu_stream(run_seed, "restore_map_full");
	struct store *a = open_store(f->a);
	unsigned char key[4];
	for (uint32_t i = 0; i < 64; i++) {
		key[0] = (unsigned char)(i >> 24);
		key[1] = (unsigned char)(i >> 16);
		key[2] = (unsigned char)(i >> 8);
		key[3] = (unsigned char)i;
		unsigned char *data = rnd_bytes(&rng, 65536);
		put(a, key, sizeof(key), data, 65536, 0);
		free(data);
	}
	struct bytes big = snapshot_bytes(a, &rng);
	write_file(f->file, big.p, big.len);
	store_close(a);

	struct store *b = open_store_opts(f->b, 1u << 20, 0);
	put_str(b, "small", "s", NOW + 9);
	assert_int_equal(store_meta_put(b, "applied", "7", 1), 0);
	assert_int_equal(store_commit(b), 0);
	struct bytes before = fingerprint(b, &rng);
	assert_int_equal(store_restore(b, f->file), SP_ERR_FULL);
	assert_int_equal(store_has_batch(b), 0);
	expect_unchanged(b, &before, &rng);
	assert_int_equal(store_check(b), 0);
	put_str(b, "still", "works", 0);
	assert_int_equal(store_commit(b), 0);
	store_close(b);
	free(before.p);
	free(big.p);
}

int main(void)
{
	run_seed = tu_seed();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_revisions, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_revision_wal_replay, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_meta, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_snap_roundtrip, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_snap_offsets, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_snap_many_and_sync, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_snap_readers_full, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_snap_corrupt, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_restore_key_too_long, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_snap_empty, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_restore_map_full, setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
