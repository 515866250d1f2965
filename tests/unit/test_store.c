/*
 * Tests for src/store: the LMDB-backed key/value store.
 *
 * Every test runs in its own fresh directory under /tmp, removed afterwards.
 * A few tests reach under the store with raw LMDB calls (on a closed store)
 * to plant data the store itself would never write: a foreign value header,
 * a stale index entry. test_model_random compares the store against an
 * in-memory model; set SPECTRA_SEED to replay a failing seed.
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

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOW	    1000000u /* a "current time" for tests that do not move it */
#define MAP_DEFAULT (256u << 20)

struct fixture {
	char dir[64];
};

static int setup_dir(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/spectra-store-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
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

static struct store *open_store_size(const char *dir, uint64_t map_size)
{
	struct store_options o = {.dir = dir, .map_size = map_size, .max_readers = 0};
	struct store *s = NULL;
	int err = store_open(&s, &o);
	if (err)
		fail_msg("store_open(%s): %s", dir, sp_strerror(err));
	return s;
}

static struct store *open_store(const char *dir)
{
	return open_store_size(dir, MAP_DEFAULT);
}

static struct store_value val(const void *data, size_t len, uint64_t exp)
{
	return (struct store_value){
	    .type = STORE_STRING, .data = data, .len = len, .expire_at_ms = exp};
}

static void put_str(struct store *s, const char *key, const char *v, uint64_t exp)
{
	struct store_value sv = val(v, strlen(v), exp);
	assert_int_equal(store_put(s, key, strlen(key), &sv), 0);
}

/* expect_str asserts key holds v (and is live at now). */
static void expect_str(struct store *s, const char *key, const char *v, uint64_t now)
{
	struct store_value out;
	int err = store_get(s, key, strlen(key), now, &out);
	if (err)
		fail_msg("get %s: %s", key, sp_strerror(err));
	assert_int_equal(out.len, strlen(v));
	assert_memory_equal(out.data, v, out.len);
}

static void expect_missing(struct store *s, const char *key, uint64_t now)
{
	struct store_value out;
	assert_int_equal(store_get(s, key, strlen(key), now, &out), SP_ERR_NOTFOUND);
}

/* raw_put writes straight into one of the store's LMDB databases; the store
 * must be closed. */
static void raw_put(const char *dir, const char *db, const void *k, size_t klen, const void *v,
		    size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 3), 0);
	assert_int_equal(mdb_env_set_mapsize(env, MAP_DEFAULT), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	MDB_val mk = {.mv_size = klen, .mv_data = (void *)k};
	MDB_val mv = {.mv_size = vlen, .mv_data = (void *)v};
	if (v)
		assert_int_equal(mdb_put(txn, dbi, &mk, &mv, 0), 0);
	else
		assert_int_equal(mdb_del(txn, dbi, &mk, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/* ---- open / close ---- */

static void test_open_close_fresh(void **state)
{
	struct fixture *f = *state;
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/a/b/c", f->dir);
	struct store *s = open_store(dir);
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(store_has_batch(s), 0);
	assert_int_equal(store_check(s), 0);
	store_close(s);
	s = open_store(dir); /* reopening an empty store works too */
	assert_int_equal(store_check(s), 0);
	store_close(s);
	store_close(NULL);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char path[128];

	assert_int_equal(store_open(&s, NULL), SP_ERR_INVAL);
	struct store_options o = {.dir = "", .map_size = MAP_DEFAULT};
	assert_int_equal(store_open(&s, &o), SP_ERR_INVAL);

	/* The directory is a regular file. */
	snprintf(path, sizeof(path), "%s/file", f->dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	o.dir = path;
	assert_true(store_open(&s, &o) < 0);

	/* Two opens of one directory. */
	snprintf(path, sizeof(path), "%s/twice", f->dir);
	struct store *a = open_store(path);
	o.dir = path;
	assert_int_equal(store_open(&s, &o), -EBUSY);
	store_close(a);

	/* Not an LMDB file. */
	snprintf(path, sizeof(path), "%s/garbage", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	char file[160];
	snprintf(file, sizeof(file), "%s/data.mdb", path);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	char junk[16384];
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	o.dir = path;
	assert_int_equal(store_open(&s, &o), SP_ERR_CORRUPT);

	/* An LMDB environment that belongs to someone else. */
	snprintf(path, sizeof(path), "%s/foreign", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "other", MDB_CREATE, &dbi), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	o.dir = path;
	assert_int_equal(store_open(&s, &o), SP_ERR_CORRUPT);

	/* A spectra store of a later format version. */
	snprintf(path, sizeof(path), "%s/future", f->dir);
	store_close(open_store(path));
	const unsigned char v99[4] = {0, 0, 0, 99};
	raw_put(path, "meta", "format", 6, v99, sizeof(v99));
	o.dir = path;
	FILE *cap = tu_log_capture_begin(SP_LOG_ERROR);
	assert_int_equal(store_open(&s, &o), SP_ERR_CORRUPT);
	char *logged = tu_log_capture_end(cap);
	assert_non_null(strstr(logged, "unknown format"));
	free(logged);
}

/* A format-1 directory (values without a revision) is refused at open with
 * a line that says why, and left as it was. */
static void test_open_old_format(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	put_str(s, "k", "v", 0);
	store_close(s);
	/* What format 1 wrote: the marker, and an 11-byte header. */
	const unsigned char v1[4] = {0, 0, 0, 1};
	raw_put(f->dir, "meta", "format", 6, v1, sizeof(v1));
	const unsigned char old[13] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'v', '1'};
	raw_put(f->dir, "keys", "kold", 4, old, sizeof(old));

	struct store_options o = {.dir = f->dir, .map_size = MAP_DEFAULT};
	FILE *cap = tu_log_capture_begin(SP_LOG_ERROR);
	assert_int_equal(store_open(&s, &o), SP_ERR_CORRUPT);
	char *logged = tu_log_capture_end(cap);
	assert_non_null(strstr(logged, f->dir));
	assert_non_null(strstr(logged, "format 1 store"));
	assert_non_null(strstr(logged, "does not migrate"));
	free(logged);
	/* Refusing it wrote nothing: it is refused again. */
	cap = tu_log_capture_begin(SP_LOG_ERROR);
	assert_int_equal(store_open(&s, &o), SP_ERR_CORRUPT);
	free(tu_log_capture_end(cap));
}

/* ---- basic operations ---- */

static void test_put_get_del(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	struct store_value out;

	expect_missing(s, "a", NOW);
	assert_int_equal(store_has_batch(s), 0);
	put_str(s, "a", "1", 0);
	assert_int_equal(store_has_batch(s), 1);
	expect_str(s, "a", "1", NOW);

	/* Type and flags come back as stored. */
	struct store_value tv = {.type = 7, .flags = 0xa5, .data = "x", .len = 1};
	assert_int_equal(store_put(s, "t", 1, &tv), 0);
	assert_int_equal(store_get(s, "t", 1, NOW, &out), 0);
	assert_int_equal(out.type, 7);
	assert_int_equal(out.flags, 0xa5);
	assert_int_equal(out.expire_at_ms, 0);

	/* Overwrite. */
	put_str(s, "a", "two", 0);
	expect_str(s, "a", "two", NOW);
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(store_has_batch(s), 0);
	expect_str(s, "a", "two", NOW);
	put_str(s, "a", "three!", 0);
	assert_int_equal(store_commit(s), 0);
	expect_str(s, "a", "three!", NOW); /* the reader sees the new commit */

	assert_int_equal(store_del(s, "a", 1, NOW), 1);
	expect_missing(s, "a", NOW);
	assert_int_equal(store_del(s, "a", 1, NOW), 0);
	assert_int_equal(store_commit(s), 0);
	/* A miss does not open a batch. */
	assert_int_equal(store_del(s, "nope", 4, NOW), 0);
	assert_int_equal(store_set_expire(s, "nope", 4, NOW + 5, NOW), 0);
	assert_int_equal(store_has_batch(s), 0);
	expect_missing(s, "a", NOW);
	expect_str(s, "t", "x", NOW);
	assert_int_equal(store_check(s), 0);
	store_close(s);
}

static void test_binary_keys_values(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	static const struct {
		const char *k;
		size_t klen;
		const char *v;
		size_t vlen;
	} kv[] = {
	    {"", 0, "empty key", 9}, {"\0", 1, "", 0},		 {"\0\0", 2, "a\0b", 3},
	    {"a\0", 2, "\0\0\0", 3}, {"\xff", 1, "\xff\x00", 2}, {"a", 1, "", 0},
	    {"\x01k", 2, "\x01", 1},
	};
	size_t n = sizeof(kv) / sizeof(kv[0]);
	for (size_t i = 0; i < n; i++) {
		struct store_value v = val(kv[i].v, kv[i].vlen, i % 2 ? NOW + 100 : 0);
		assert_int_equal(store_put(s, kv[i].k, kv[i].klen, &v), 0);
	}
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < n; i++) {
			struct store_value out;
			assert_int_equal(store_get(s, kv[i].k, kv[i].klen, NOW, &out), 0);
			assert_int_equal(out.len, kv[i].vlen);
			if (out.len)
				assert_memory_equal(out.data, kv[i].v, out.len);
		}
		assert_int_equal(store_check(s), 0);
		assert_int_equal(store_commit(s), 0);
		store_close(s);
		s = open_store(f->dir);
	}
	assert_int_equal(store_del(s, "", 0, NOW), 1);
	assert_int_equal(store_del(s, "", 0, NOW), 0);
	assert_int_equal(store_check(s), 0);
	store_close(s);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

static void test_large_values(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	size_t big = 6u << 20;
	unsigned char *a = malloc(big), *b = malloc(big);
	fill(a, big, 1);
	fill(b, big, 2);
	struct store_value v = val(a, big, 0), out;
	assert_int_equal(store_put(s, "big", 3, &v), 0);
	assert_int_equal(store_get(s, "big", 3, NOW, &out), 0);
	assert_int_equal(out.len, big);
	assert_memory_equal(out.data, a, big);
	assert_int_equal(store_commit(s), 0);

	/* Expiry on a multi-page value rewrites it whole. */
	assert_int_equal(store_set_expire(s, "big", 3, NOW + 10, NOW), 1);
	assert_int_equal(store_get(s, "big", 3, NOW, &out), 0);
	assert_int_equal(out.expire_at_ms, NOW + 10);
	assert_memory_equal(out.data, a, big);
	assert_int_equal(store_commit(s), 0);

	/* Copying a borrowed value to another key (a rename) is allowed,
	 * from the reader and from within a batch. */
	assert_int_equal(store_get(s, "big", 3, NOW, &out), 0);
	assert_int_equal(store_put(s, "copy", 4, &out), 0);
	assert_int_equal(store_get(s, "copy", 4, NOW, &out), 0);
	assert_int_equal(store_put(s, "copy2", 5, &out), 0);
	assert_int_equal(store_get(s, "copy2", 5, NOW, &out), 0);
	assert_int_equal(out.len, big);
	assert_memory_equal(out.data, a, big);
	assert_int_equal(out.expire_at_ms, NOW + 10);

	/* Overwrite with a different big value, then a small one. */
	v = val(b, big - 17, 0);
	assert_int_equal(store_put(s, "big", 3, &v), 0);
	assert_int_equal(store_commit(s), 0);
	store_close(s);
	s = open_store(f->dir);
	assert_int_equal(store_get(s, "big", 3, NOW, &out), 0);
	assert_int_equal(out.len, big - 17);
	assert_memory_equal(out.data, b, big - 17);
	assert_int_equal(out.expire_at_ms, 0);
	put_str(s, "big", "small", 0);
	expect_str(s, "big", "small", NOW);
	assert_int_equal(store_get(s, "copy", 4, NOW, &out), 0);
	assert_memory_equal(out.data, a, big);
	assert_int_equal(store_check(s), 0);
	store_close(s);
	free(a);
	free(b);
}

static void test_key_len_limit(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	size_t max = store_max_key_len(s);
	assert_true(max >= 256);
	/* The expiry index key (8 + klen) is the binding LMDB limit. */
	assert_int_equal(max + 8, 511);
	char *key = malloc(max + 10);
	memset(key, 'x', max + 10);
	struct store_value v = val("v", 1, NOW + 100), out;

	assert_int_equal(store_put(s, key, max, &v), 0);
	assert_int_equal(store_get(s, key, max, NOW, &out), 0);
	assert_int_equal(store_set_expire(s, key, max, NOW + 200, NOW), 1);
	assert_int_equal(store_put(s, key, max + 1, &v), SP_ERR_KEYLEN);
	assert_int_equal(store_get(s, key, max + 1, NOW, &out), SP_ERR_KEYLEN);
	assert_int_equal(store_del(s, key, max + 1, NOW), SP_ERR_KEYLEN);
	assert_int_equal(store_set_expire(s, key, max + 1, 0, NOW), SP_ERR_KEYLEN);
	assert_int_equal(store_commit(s), 0);
	store_close(s);
	s = open_store(f->dir);
	assert_int_equal(store_get(s, key, max, NOW, &out), 0);
	assert_int_equal(out.expire_at_ms, NOW + 200);
	assert_int_equal(store_expire_cycle(s, NOW + 200, 10), 1);
	assert_int_equal(store_check(s), 0);
	store_close(s);
	free(key);
}

/* ---- scan helpers ---- */

struct collected {
	char keys[4096][16];
	size_t lens[4096];
	size_t n;
	size_t stop_after; /* return non-zero after this many; 0 = never */
};

static int collect(void *ctx, const void *key, size_t klen, const struct store_value *v)
{
	struct collected *c = ctx;
	(void)v;
	assert_true(c->n < 4096);
	/* Long keys are kept truncated; lens has the real length. */
	memcpy(c->keys[c->n], key, klen < sizeof(c->keys[0]) ? klen : sizeof(c->keys[0]));
	c->lens[c->n] = klen;
	c->n++;
	return c->stop_after && c->n >= c->stop_after;
}

static int cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static void test_key_len_scan_after_long(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	size_t max = store_max_key_len(s);
	char *key = malloc(max + 10);
	memset(key, 'x', max + 10);
	struct store_value v = val("v", 1, 0);
	assert_int_equal(store_put(s, key, max, &v), 0); /* "xxx...x" (max) */
	put_str(s, "x", "short", 0);
	put_str(s, "y", "after", 0);
	struct collected *c = calloc(1, sizeof(*c));
	int more = -1;
	/* key[0..max+10) sorts after the max-length key and before "y". */
	assert_int_equal(store_scan(s, key, max + 10, 10, NOW, collect, c, &more), 1);
	assert_int_equal(c->lens[0], 1);
	assert_memory_equal(c->keys[0], "y", 1);
	assert_int_equal(more, 0);
	/* Exactly the max-length key: strictly after it is "y" too. */
	c->n = 0;
	assert_int_equal(store_scan(s, key, max, 10, NOW, collect, c, &more), 1);
	assert_memory_equal(c->keys[0], "y", 1);
	/* After max - 1 bytes of x: the max-length key, then "y". */
	c->n = 0;
	assert_int_equal(store_scan(s, key, max - 1, 1, NOW, collect, c, &more), 1);
	assert_int_equal(c->lens[0], max);
	assert_int_equal(more, 1);
	free(c);
	free(key);
	store_close(s);
}

/* ---- expiry ---- */

static void test_expiry(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	struct store_value out;
	struct store_stats st;

	put_str(s, "e", "v", NOW + 10);
	expect_str(s, "e", "v", NOW + 9);
	expect_missing(s, "e", NOW + 10);
	assert_int_equal(store_get(s, "e", 1, NOW, &out), 0);
	assert_int_equal(out.expire_at_ms, NOW + 10);

	/* set_expire on a live key; on an expired one it reports absent. */
	assert_int_equal(store_set_expire(s, "e", 1, NOW + 50, NOW), 1);
	expect_str(s, "e", "v", NOW + 49);
	expect_missing(s, "e", NOW + 50);
	assert_int_equal(store_set_expire(s, "e", 1, NOW + 90, NOW + 60), 0);
	expect_missing(s, "e", NOW + 60);
	/* Same expiry again is a no-op that still reports the key. */
	assert_int_equal(store_set_expire(s, "e", 1, NOW + 50, NOW), 1);

	/* Persist. */
	assert_int_equal(store_set_expire(s, "e", 1, 0, NOW), 1);
	expect_str(s, "e", "v", UINT64_MAX);
	store_get_stats(s, &st);
	assert_int_equal(st.expires, 0);
	assert_int_equal(store_check(s), 0);

	/* Overwrite drops the old expiry; and sets a new one. */
	put_str(s, "o", "1", NOW + 10);
	put_str(s, "o", "2", 0);
	expect_str(s, "o", "2", NOW + 1000);
	put_str(s, "o", "3", NOW + 20);
	store_get_stats(s, &st);
	assert_int_equal(st.expires, 1);
	assert_int_equal(st.keys, 2);
	assert_int_equal(store_check(s), 0);
	assert_int_equal(store_commit(s), 0);

	/* Deleting an expired key removes it but reports it absent. */
	assert_int_equal(store_del(s, "o", 1, NOW + 20), 0);
	store_get_stats(s, &st);
	assert_int_equal(st.keys, 1);
	assert_int_equal(st.expires, 0);
	assert_int_equal(store_check(s), 0);
	/* An already-expired value can be written; it reads as absent. */
	put_str(s, "past", "x", NOW - 1);
	expect_missing(s, "past", NOW);
	assert_int_equal(store_check(s), 0);
	store_close(s);
}

/* store_count_expired counts exactly the expired keys still stored, in a
 * batch or not, and respects its limit. */
static void test_count_expired(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	uint64_t n = 99;
	assert_int_equal(store_count_expired(s, NOW, 100, &n), 0);
	assert_int_equal(n, 0);
	put_str(s, "a", "1", NOW + 30);
	put_str(s, "b", "1", NOW + 10);
	put_str(s, "c", "1", NOW + 20);
	put_str(s, "keep", "1", 0);
	/* Seen through the open batch ... */
	assert_int_equal(store_count_expired(s, NOW + 20, 100, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(store_commit(s), 0);
	/* ... and through a read view after the commit. */
	assert_int_equal(store_count_expired(s, NOW + 9, 100, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_count_expired(s, NOW + 10, 100, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_count_expired(s, NOW + 1000, 100, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_count_expired(s, NOW + 1000, 2, &n), 0);
	assert_int_equal(n, 2);
	/* Once the cycle removes them, none are left to count. */
	assert_int_equal(store_expire_cycle(s, NOW + 1000, 10), 3);
	assert_int_equal(store_count_expired(s, NOW + 1000, 100, &n), 0);
	assert_int_equal(n, 0);
	store_close(s);
}

static void test_expire_cycle(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	struct store_stats st;
	/* Expiries out of key order; "b" and "b2" share one time. */
	put_str(s, "a", "1", NOW + 30);
	put_str(s, "b", "1", NOW + 10);
	put_str(s, "b2", "1", NOW + 10);
	put_str(s, "c", "1", NOW + 20);
	put_str(s, "d", "1", NOW + 40);
	put_str(s, "keep", "1", 0);
	assert_int_equal(store_commit(s), 0);

	/* Nothing due: no batch is opened. */
	assert_int_equal(store_expire_cycle(s, NOW, 10), 0);
	assert_int_equal(store_has_batch(s), 0);
	assert_int_equal(store_expire_cycle(s, NOW + 100, 0), 0);

	/* Oldest first, at most max_keys. */
	assert_int_equal(store_expire_cycle(s, NOW + 35, 1), 1);
	store_get_stats(s, &st);
	assert_int_equal(st.keys, 5);
	struct store_value out;
	assert_int_equal(store_get(s, "b", 1, 0, &out), SP_ERR_NOTFOUND); /* gone, not hidden */
	assert_int_equal(store_get(s, "b2", 2, 0, &out), 0);
	assert_int_equal(store_expire_cycle(s, NOW + 35, 2), 2);
	assert_int_equal(store_get(s, "b2", 2, 0, &out), SP_ERR_NOTFOUND);
	assert_int_equal(store_get(s, "c", 1, 0, &out), SP_ERR_NOTFOUND);
	assert_int_equal(store_get(s, "a", 1, 0, &out), 0);
	assert_int_equal(store_expire_cycle(s, NOW + 35, 10), 1); /* only "a" is due */
	assert_int_equal(store_get(s, "d", 1, 0, &out), 0);
	assert_int_equal(store_check(s), 0);
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(store_expire_cycle(s, NOW + 40, 10), 1);
	store_get_stats(s, &st);
	assert_int_equal(st.keys, 1);
	assert_int_equal(st.expires, 0);
	expect_str(s, "keep", "1", UINT64_MAX);
	assert_int_equal(store_check(s), 0);
	store_close(s);
}

/* test_check_detects planted inconsistencies, and the expiry cycle cleans
 * a stale index entry without touching the key it names. */
static void test_check_detects(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	put_str(s, "ghost", "g", 0);
	put_str(s, "timed", "t", NOW + 5);
	store_close(s);

	unsigned char ik[16];
	be64(ik, NOW - 100);
	memcpy(ik + 8, "ghost", 5);
	raw_put(f->dir, "expires", ik, 13, "", 0); /* index entry, key has no expiry */
	s = open_store(f->dir);
	assert_int_equal(store_check(s), SP_ERR_CORRUPT);
	assert_int_equal(store_expire_cycle(s, NOW, 10), 0);
	expect_str(s, "ghost", "g", NOW);
	assert_int_equal(store_check(s), 0);
	store_close(s);

	be64(ik, NOW + 5);
	memcpy(ik + 8, "timed", 5);
	raw_put(f->dir, "expires", ik, 13, NULL, 0); /* key's index entry lost */
	s = open_store(f->dir);
	assert_int_equal(store_check(s), SP_ERR_CORRUPT);
	/* A rewrite of the key repairs it. */
	assert_int_equal(store_set_expire(s, "timed", 5, NOW + 6, NOW), 1);
	assert_int_equal(store_check(s), 0);
	store_close(s);

	/* The meta database holds only the store's own entries and meta
	 * records ("app/" + name). */
	raw_put(f->dir, "meta", "bogus", 5, "x", 1);
	s = open_store(f->dir);
	assert_int_equal(store_check(s), SP_ERR_CORRUPT);
	store_close(s);
	raw_put(f->dir, "meta", "bogus", 5, NULL, 0);
	raw_put(f->dir, "meta", "app/ok", 6, "x", 1);
	s = open_store(f->dir);
	assert_int_equal(store_check(s), 0);
	const void *mv;
	size_t mlen;
	assert_int_equal(store_meta_get(s, "ok", &mv, &mlen), 0);
	store_close(s);
	raw_put(f->dir, "meta", "app/n\0l", 7, "x", 1);
	s = open_store(f->dir);
	assert_int_equal(store_check(s), SP_ERR_CORRUPT);
	store_close(s);
}

static void test_corrupt_header(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	put_str(s, "good", "fine", 0);
	store_close(s);
	raw_put(f->dir, "keys", "kbad", 4, "\x01\x00", 2);
	unsigned char alien[20] = {9, 0, 0};
	raw_put(f->dir, "keys", "kalien", 6, alien, sizeof(alien));

	s = open_store(f->dir);
	struct store_value out;
	assert_int_equal(store_get(s, "bad", 3, NOW, &out), SP_ERR_CORRUPT);
	assert_int_equal(store_get(s, "alien", 5, NOW, &out), SP_ERR_CORRUPT);
	assert_int_equal(store_set_expire(s, "bad", 3, NOW + 1, NOW), SP_ERR_CORRUPT);
	expect_str(s, "good", "fine", NOW);
	struct collected *c = calloc(1, sizeof(*c));
	int more;
	assert_int_equal(store_scan(s, NULL, 0, 100, NOW, collect, c, &more), SP_ERR_CORRUPT);
	assert_int_equal(store_check(s), SP_ERR_CORRUPT);
	/* The key can be overwritten or deleted. */
	put_str(s, "bad", "repaired", NOW + 100);
	expect_str(s, "bad", "repaired", NOW);
	assert_int_equal(store_del(s, "alien", 5, NOW), 1);
	assert_int_equal(store_check(s), 0);
	c->n = 0;
	assert_int_equal(store_scan(s, NULL, 0, 100, NOW, collect, c, &more), 2);
	free(c);
	store_close(s);
}

/* ---- scans ---- */

static void test_scan_order_and_resume(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	const char *keys[] = {"", "\x00", "a", "a\x00", "aa", "ab", "b", "ba", "\xff"};
	size_t lens[] = {0, 1, 1, 2, 2, 2, 1, 2, 1};
	size_t n = sizeof(lens) / sizeof(lens[0]);
	/* Insert in reverse, with an expired key in the middle. */
	for (size_t i = n; i-- > 0;) {
		struct store_value v = val("v", 1, 0);
		assert_int_equal(store_put(s, keys[i], lens[i], &v), 0);
	}
	put_str(s, "a\x01", "gone", NOW - 1);

	struct collected *c = calloc(1, sizeof(*c));
	int more = -1;
	assert_int_equal(store_scan(s, NULL, 0, 100, NOW, collect, c, &more), (int)n);
	assert_int_equal(more, 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(c->lens[i], lens[i]);
		assert_memory_equal(c->keys[i], keys[i], lens[i]);
	}
	/* Pages of 2, each resuming after the last key. */
	for (size_t page = 1; page <= 4; page++) {
		struct collected *p = calloc(1, sizeof(*p));
		size_t got = 0;
		const void *after = NULL;
		size_t after_len = 0;
		char last[16];
		for (;;) {
			size_t before = p->n;
			int r = store_scan(s, after, after_len, page, NOW, collect, p, &more);
			assert_true(r >= 0);
			assert_int_equal((size_t)r, p->n - before);
			got += (size_t)r;
			if (!more)
				break;
			assert_int_equal((size_t)r, page);
			memcpy(last, p->keys[p->n - 1], p->lens[p->n - 1]);
			after = last;
			after_len = p->lens[p->n - 1];
		}
		assert_int_equal(got, n);
		for (size_t i = 0; i < n; i++)
			assert_memory_equal(p->keys[i], keys[i], lens[i]);
		free(p);
	}
	/* The empty key as a cursor (non-NULL) means "after the empty key". */
	c->n = 0;
	assert_int_equal(store_scan(s, "", 0, 1, NOW, collect, c, &more), 1);
	assert_int_equal(c->lens[0], 1);
	assert_int_equal(more, 1);
	/* fn stopping early. */
	c->n = 0;
	c->stop_after = 3;
	assert_int_equal(store_scan(s, NULL, 0, 100, NOW, collect, c, &more), 3);
	assert_int_equal(more, 1);
	/* Stopping on the last live key: nothing more (the expired key after
	 * "a\0" is not counted). */
	c->n = 0;
	c->stop_after = 0;
	assert_int_equal(store_scan(s, "ba", 2, 1, NOW, collect, c, &more), 1);
	assert_int_equal(more, 0);
	c->n = 0;
	assert_int_equal(store_scan(s, "a\x00", 2, 0, NOW, collect, c, &more), 0);
	assert_int_equal(more, 1);
	free(c);
	store_close(s);
}

static void test_scan_with_deletes(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	enum { N = 1000 };
	static int stable[N], deleted[N], seen[N];
	memset(seen, 0, sizeof(seen));
	memset(deleted, 0, sizeof(deleted));
	char k[32];
	srand(7);
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "k%05d", i);
		put_str(s, k, k, 0);
		stable[i] = rand() % 3 != 0; /* never touched during the scan */
	}
	assert_int_equal(store_commit(s), 0);

	struct collected *c = calloc(1, sizeof(*c));
	char after[16];
	size_t after_len = 0;
	int more = 1, first = 1;
	while (more) {
		c->n = 0;
		int r = store_scan(s, first ? NULL : after, after_len, 37, NOW, collect, c, &more);
		assert_true(r >= 0);
		for (size_t i = 0; i < c->n; i++) {
			if (!first || i > 0)
				assert_true(cmp_bytes(c->keys[i], c->lens[i], after, after_len) >
					    0);
			if (c->lens[i] == 6) /* "k%05d"; the extras are longer */
				seen[atoi(c->keys[i] + 1)]++;
			memcpy(after, c->keys[i], c->lens[i]);
			after_len = c->lens[i];
			first = 0;
		}
		/* Between pages: delete and re-add unstable keys anywhere, and
		 * add keys between existing ones. */
		for (int j = 0; j < 20; j++) {
			int idx = rand() % N;
			if (stable[idx])
				continue;
			snprintf(k, sizeof(k), "k%05d", idx);
			if (deleted[idx]) {
				put_str(s, k, k, 0);
				deleted[idx] = 0;
			} else {
				store_del(s, k, strlen(k), NOW);
				deleted[idx] = 1;
			}
			snprintf(k, sizeof(k), "k%05d-x%d", rand() % N, j);
			put_str(s, k, "extra", 0);
		}
		if (rand() % 2)
			assert_int_equal(store_commit(s), 0);
	}
	for (int i = 0; i < N; i++)
		if (stable[i] && seen[i] != 1)
			fail_msg("stable key %d seen %d times", i, seen[i]);
	for (int i = 0; i < N; i++)
		assert_true(seen[i] <= 1);
	free(c);
	assert_int_equal(store_check(s), 0);
	store_close(s);
}

/* ---- batches ---- */

static void test_flush(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	char k[16];
	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "f%d", i);
		put_str(s, k, "v", i % 2 ? NOW + i : 0);
	}
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(store_flush(s), 0);
	struct store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.keys, 0);
	assert_int_equal(st.expires, 0);
	expect_missing(s, "f1", NOW);
	put_str(s, "after", "flush", 0);
	assert_int_equal(store_commit(s), 0);
	store_close(s);
	s = open_store(f->dir);
	store_get_stats(s, &st);
	assert_int_equal(st.keys, 1);
	expect_str(s, "after", "flush", NOW);
	assert_int_equal(store_expire_cycle(s, UINT64_MAX, 1000), 0);
	assert_int_equal(store_check(s), 0);
	/* An aborted flush loses nothing. */
	assert_int_equal(store_flush(s), 0);
	store_abort(s);
	expect_str(s, "after", "flush", NOW);
	store_close(s);
}

static void test_uncommitted_and_abort(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	put_str(s, "c", "committed", 0);
	assert_int_equal(store_commit(s), 0);
	expect_str(s, "c", "committed", NOW); /* reader is now live */

	put_str(s, "u", "uncommitted", 0);
	put_str(s, "c", "changed", 0);
	assert_int_equal(store_has_batch(s), 1);
	expect_str(s, "u", "uncommitted", NOW);
	expect_str(s, "c", "changed", NOW);
	struct collected *c = calloc(1, sizeof(*c));
	int more;
	assert_int_equal(store_scan(s, NULL, 0, 10, NOW, collect, c, &more), 2);
	store_abort(s);
	assert_int_equal(store_has_batch(s), 0);
	store_abort(s); /* no batch: a no-op */
	expect_missing(s, "u", NOW);
	expect_str(s, "c", "committed", NOW);
	assert_int_equal(store_commit(s), 0); /* no batch: a no-op */

	struct store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.commits, 1);
	assert_int_equal(st.keys, 1);
	assert_true(st.used_bytes > 0);
	assert_int_equal(st.map_size, MAP_DEFAULT);
	free(c);
	store_close(s);
}

static void test_commit_reopen(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	put_str(s, "a", "1", 0);
	put_str(s, "b", "2", NOW + 100);
	assert_int_equal(store_commit(s), 0);
	put_str(s, "c", "open batch at close", 0);
	store_close(s); /* commits the open batch */
	s = open_store(f->dir);
	expect_str(s, "a", "1", NOW);
	expect_str(s, "b", "2", NOW);
	expect_str(s, "c", "open batch at close", NOW);
	struct store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.keys, 3);
	assert_int_equal(st.expires, 1);
	assert_int_equal(st.commits, 0);
	assert_int_equal(store_check(s), 0);
	store_close(s);
}

/* ---- concurrency and durability ---- */

struct sync_thread {
	struct store *s;
	atomic_int stop;
	int calls;
	int failures;
};

static void *sync_loop(void *arg)
{
	struct sync_thread *t = arg;
	while (!atomic_load(&t->stop)) {
		if (store_sync(t->s) != 0)
			t->failures++;
		t->calls++;
	}
	return NULL;
}

static void test_sync_thread(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir);
	struct sync_thread t = {.s = s};
	atomic_init(&t.stop, 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, sync_loop, &t), 0);
	char k[32], v[64];
	for (int i = 0; i < 4000; i++) {
		snprintf(k, sizeof(k), "s%d", i % 500);
		snprintf(v, sizeof(v), "value-%d", i);
		put_str(s, k, v, i % 3 ? 0 : NOW + 1 + (uint64_t)i);
		expect_str(s, k, v, NOW);
		if (i % 2 == 0)
			assert_int_equal(store_commit(s), 0);
		if (i % 100 == 0) {
			struct store_stats st;
			store_get_stats(s, &st);
		}
	}
	assert_int_equal(store_commit(s), 0);
	/* Let the sync thread get a few calls in even on a slow machine. */
	for (;;) {
		struct store_stats st;
		store_get_stats(s, &st);
		if (st.syncs >= 3)
			break;
		usleep(1000);
	}
	atomic_store(&t.stop, 1);
	pthread_join(th, NULL);
	assert_int_equal(t.failures, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.syncs, (uint64_t)t.calls);
	assert_int_equal(st.commits, 2001);
	assert_int_equal(store_check(s), 0);
	store_close(s);
}

static void test_map_full(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store_size(f->dir, 1u << 20);
	char k[32];
	unsigned char v[1000];
	int committed = 0, i, err = 0;
	int why = 0;
	assert_int_equal(store_batches_lost(s, &why), 0);
	/* Errors that leave the batch alone are not counted as losses. */
	struct store_value miss;
	assert_int_equal(store_get(s, "none", 4, NOW, &miss), SP_ERR_NOTFOUND);
	char longkey[1024];
	memset(longkey, 'x', sizeof(longkey));
	assert_int_equal(store_get(s, longkey, sizeof(longkey), NOW, &miss), SP_ERR_KEYLEN);
	assert_int_equal(store_put(s, longkey, sizeof(longkey), &(struct store_value){0}),
			 SP_ERR_KEYLEN);
	assert_int_equal(store_batches_lost(s, NULL), 0);
	for (i = 0; i < 5000 && !err; i++) {
		snprintf(k, sizeof(k), "m%06d", i);
		fill(v, sizeof(v), (unsigned)i);
		struct store_value sv = val(v, sizeof(v), i % 2 ? NOW + 1000 : 0);
		err = store_put(s, k, strlen(k), &sv);
		if (!err && i % 10 == 9) {
			err = store_commit(s);
			if (!err)
				committed = i + 1;
		}
	}
	assert_int_equal(err, SP_ERR_FULL);
	assert_true(committed > 100);
	assert_int_equal(store_has_batch(s), 0); /* the failed batch is gone */
	/* ... and the store says so, with the reason: the server relies on
	 * this to answer the batch's earlier writes with an error. */
	assert_int_equal(store_batches_lost(s, &why), 1);
	assert_int_equal(why, SP_ERR_FULL);
	/* store_commit_checked reports the dropped batch once, with its
	 * reason, though there is nothing left to commit. */
	uint64_t lost_seen = 0;
	assert_int_equal(store_commit_checked(s, &lost_seen), SP_ERR_FULL);
	assert_int_equal(lost_seen, 1);
	assert_int_equal(store_commit_checked(s, &lost_seen), 0);
	for (i = 0; i < committed + 10; i++) {
		struct store_value out;
		snprintf(k, sizeof(k), "m%06d", i);
		int r = store_get(s, k, strlen(k), NOW, &out);
		if (i < committed) {
			assert_int_equal(r, 0);
			fill(v, sizeof(v), (unsigned)i);
			assert_memory_equal(out.data, v, sizeof(v));
		} else {
			assert_int_equal(r, SP_ERR_NOTFOUND);
		}
	}
	assert_int_equal(store_check(s), 0);
	/* Deleting makes room again. */
	for (i = 0; i < committed / 2; i++) {
		snprintf(k, sizeof(k), "m%06d", i);
		assert_int_equal(store_del(s, k, strlen(k), NOW), 1);
	}
	assert_int_equal(store_commit(s), 0);
	put_str(s, "room", "again", 0);
	assert_int_equal(store_commit(s), 0);
	store_close(s);
	s = open_store_size(f->dir, 1u << 20);
	expect_str(s, "room", "again", NOW);
	snprintf(k, sizeof(k), "m%06d", committed - 1);
	struct store_value out;
	assert_int_equal(store_get(s, k, strlen(k), NOW, &out), 0);
	assert_int_equal(store_check(s), 0);
	store_close(s);
}

static void kill9_child(const char *dir, int wfd)
{
	struct store_options o = {.dir = dir, .map_size = MAP_DEFAULT};
	struct store *s;
	if (store_open(&s, &o) != 0)
		_exit(2);
	char k[32], v[32];
	for (uint32_t n = 0; n < 10000000;) {
		for (int j = 0; j < 50; j++, n++) {
			snprintf(k, sizeof(k), "kill%08" PRIu32, n);
			snprintf(v, sizeof(v), "v%" PRIu32, n);
			struct store_value sv = val(v, strlen(v), n % 5 ? 0 : UINT64_MAX - n);
			if (store_put(s, k, strlen(k), &sv) != 0)
				_exit(3);
		}
		if (store_commit(s) != 0)
			_exit(4);
		if (write(wfd, &n, sizeof(n)) != sizeof(n))
			_exit(5);
	}
	_exit(0);
}

static void test_kill9(void **state)
{
	struct fixture *f = *state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		kill9_child(f->dir, p[1]);
	}
	close(p[1]);
	uint32_t n, reported = 0;
	while (read(p[0], &n, sizeof(n)) == sizeof(n)) {
		reported = n;
		if (reported >= 20000)
			break;
	}
	kill(pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	while (read(p[0], &n, sizeof(n)) == sizeof(n))
		reported = n;
	close(p[0]);
	assert_true(reported >= 20000);

	struct store *s = open_store(f->dir);
	char k[32], v[32];
	for (uint32_t i = 0; i < reported; i++) {
		snprintf(k, sizeof(k), "kill%08" PRIu32, i);
		snprintf(v, sizeof(v), "v%" PRIu32, i);
		expect_str(s, k, v, NOW);
	}
	assert_int_equal(store_check(s), 0);
	store_close(s);
}

/* ---- randomized model test ---- */

#define MODEL_KEYS 48
#define MODEL_VMAX 40

struct mentry {
	int present;
	uint64_t exp;
	uint8_t type, flags;
	size_t len;
	unsigned char data[MODEL_VMAX];
};

struct model {
	unsigned char keys[MODEL_KEYS][6];
	size_t klens[MODEL_KEYS];
	int order[MODEL_KEYS]; /* slots in key byte order */
	struct mentry cur[MODEL_KEYS], committed[MODEL_KEYS];
	uint64_t seed, rng, now;
	long step;
};

static struct model *order_model; /* for qsort */

static uint64_t rnd(struct model *m)
{
	m->rng ^= m->rng >> 12;
	m->rng ^= m->rng << 25;
	m->rng ^= m->rng >> 27;
	return m->rng * 2685821657736338717ull;
}

static unsigned rndn(struct model *m, unsigned n)
{
	return (unsigned)(rnd(m) % n);
}

static int cmp_slot(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return cmp_bytes(order_model->keys[x], order_model->klens[x], order_model->keys[y],
			 order_model->klens[y]);
}

#define MCHECK(m, cond)                                                                            \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fail_msg("model: %s failed at step %ld (replay: SPECTRA_SEED=%" PRIu64     \
				 ")",                                                              \
				 #cond, (m)->step, (m)->seed);                                     \
	} while (0)

static int live(const struct model *m, int i)
{
	const struct mentry *e = &m->cur[i];
	return e->present && (e->exp == 0 || e->exp > m->now);
}

struct model_scan {
	struct model *m;
	int got[MODEL_KEYS * 2];
	int n;
	int bad;
};

static int model_collect(void *ctx, const void *key, size_t klen, const struct store_value *v)
{
	struct model_scan *ms = ctx;
	struct model *m = ms->m;
	for (int i = 0; i < MODEL_KEYS; i++) {
		if (m->klens[i] == klen && (klen == 0 || memcmp(m->keys[i], key, klen) == 0)) {
			const struct mentry *e = &m->cur[i];
			if (v->len != e->len || v->expire_at_ms != e->exp || v->type != e->type ||
			    v->flags != e->flags || (e->len && memcmp(v->data, e->data, e->len)))
				ms->bad = 1;
			ms->got[ms->n++] = i;
			return 0;
		}
	}
	ms->bad = 1;
	return 0;
}

static void model_scan_check(struct model *m, struct store *s)
{
	struct model_scan ms = {.m = m};
	unsigned page = 1 + rndn(m, 8);
	int more = 1, first = 1;
	while (more) {
		const void *after = NULL;
		size_t after_len = 0;
		if (!first) {
			int last = ms.got[ms.n - 1];
			after = m->keys[last];
			after_len = m->klens[last];
		}
		int before = ms.n;
		int r = store_scan(s, after, after_len, page, m->now, model_collect, &ms, &more);
		MCHECK(m, r >= 0 && r == ms.n - before && (unsigned)r <= page);
		MCHECK(m, !more || (unsigned)r == page);
		MCHECK(m, ms.n <= MODEL_KEYS);
		if (r == 0)
			break;
		first = 0;
	}
	MCHECK(m, !ms.bad);
	int j = 0;
	for (int o = 0; o < MODEL_KEYS; o++) {
		int i = m->order[o];
		if (!live(m, i))
			continue;
		MCHECK(m, j < ms.n && ms.got[j] == i);
		j++;
	}
	MCHECK(m, j == ms.n);
}

static int cmp_due(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	const struct mentry *ex = &order_model->cur[x], *ey = &order_model->cur[y];
	if (ex->exp != ey->exp)
		return ex->exp < ey->exp ? -1 : 1;
	return cmp_bytes(order_model->keys[x], order_model->klens[x], order_model->keys[y],
			 order_model->klens[y]);
}

static void test_model_random(void **state)
{
	struct fixture *f = *state;
	struct model *m = calloc(1, sizeof(*m));
	const char *env = getenv("SPECTRA_SEED");
	m->seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	m->rng = m->seed ? m->seed : 1;
	print_message("model seed %" PRIu64 "\n", m->seed);
	order_model = m;

	/* Distinct short binary keys, the empty key included. */
	static const unsigned char alphabet[] = {0x00, 0x01, 'a', 'b', 0xff};
	for (int i = 0; i < MODEL_KEYS; i++) {
		for (;;) {
			m->klens[i] = i == 0 ? 0 : 1 + rndn(m, 5);
			for (size_t j = 0; j < m->klens[i]; j++)
				m->keys[i][j] = alphabet[rndn(m, sizeof(alphabet))];
			int dup = 0;
			for (int j = 0; j < i; j++)
				dup |= cmp_bytes(m->keys[i], m->klens[i], m->keys[j],
						 m->klens[j]) == 0;
			if (!dup)
				break;
		}
		m->order[i] = i;
	}
	qsort(m->order, MODEL_KEYS, sizeof(int), cmp_slot);

	struct store *s = open_store(f->dir);
	m->now = 1000;
	long steps = 20000;
	for (m->step = 0; m->step < steps; m->step++) {
		int i = (int)rndn(m, MODEL_KEYS);
		struct mentry *e = &m->cur[i];
		unsigned op = rndn(m, 1000);
		if (rndn(m, 4) == 0)
			m->now += rndn(m, 20);
		if (op < 300) { /* put */
			struct mentry ne = {.present = 1};
			ne.len = rndn(m, MODEL_VMAX + 1);
			for (size_t j = 0; j < ne.len; j++)
				ne.data[j] = (unsigned char)rnd(m);
			ne.type = (uint8_t)rndn(m, 3);
			ne.flags = (uint8_t)rnd(m);
			if (rndn(m, 2))
				ne.exp = m->now - 20 + rndn(m, 200);
			struct store_value v = {.type = ne.type,
						.flags = ne.flags,
						.expire_at_ms = ne.exp,
						.data = ne.data,
						.len = ne.len};
			MCHECK(m, store_put(s, m->keys[i], m->klens[i], &v) == 0);
			*e = ne;
		} else if (op < 500) { /* get */
			struct store_value out;
			int r = store_get(s, m->keys[i], m->klens[i], m->now, &out);
			if (live(m, i)) {
				MCHECK(m, r == 0);
				MCHECK(m, out.len == e->len && out.expire_at_ms == e->exp &&
					      out.type == e->type && out.flags == e->flags);
				MCHECK(m, e->len == 0 || memcmp(out.data, e->data, e->len) == 0);
			} else {
				MCHECK(m, r == SP_ERR_NOTFOUND);
			}
		} else if (op < 600) { /* del */
			int want = live(m, i);
			MCHECK(m, store_del(s, m->keys[i], m->klens[i], m->now) == want);
			e->present = 0;
		} else if (op < 700) { /* set_expire */
			uint64_t exp = rndn(m, 3) == 0 ? 0 : m->now - 20 + rndn(m, 200);
			int want = live(m, i);
			MCHECK(m,
			       store_set_expire(s, m->keys[i], m->klens[i], exp, m->now) == want);
			if (want)
				e->exp = exp;
		} else if (op < 750) { /* scan */
			model_scan_check(m, s);
		} else if (op < 800) { /* expire cycle */
			int due[MODEL_KEYS], nd = 0;
			for (int j = 0; j < MODEL_KEYS; j++)
				if (m->cur[j].present && m->cur[j].exp && m->cur[j].exp <= m->now)
					due[nd++] = j;
			qsort(due, (size_t)nd, sizeof(int), cmp_due);
			int max = 1 + (int)rndn(m, 5);
			int want = nd < max ? nd : max;
			MCHECK(m, store_expire_cycle(s, m->now, (size_t)max) == want);
			for (int j = 0; j < want; j++)
				m->cur[due[j]].present = 0;
		} else if (op < 900) { /* commit */
			MCHECK(m, store_commit(s) == 0);
			memcpy(m->committed, m->cur, sizeof(m->cur));
		} else if (op < 940) { /* abort */
			store_abort(s);
			memcpy(m->cur, m->committed, sizeof(m->cur));
		} else if (op < 955) { /* reopen: close commits */
			store_close(s);
			s = open_store(f->dir);
			memcpy(m->committed, m->cur, sizeof(m->cur));
		} else if (op < 960) { /* flush */
			MCHECK(m, store_flush(s) == 0);
			for (int j = 0; j < MODEL_KEYS; j++)
				m->cur[j].present = 0;
		} else { /* check and stats */
			MCHECK(m, store_check(s) == 0);
			struct store_stats st;
			store_get_stats(s, &st);
			uint64_t keys = 0, expires = 0;
			for (int j = 0; j < MODEL_KEYS; j++) {
				keys += m->cur[j].present;
				expires += m->cur[j].present && m->cur[j].exp;
			}
			MCHECK(m, st.keys == keys && st.expires == expires);
		}
	}
	model_scan_check(m, s);
	MCHECK(m, store_check(s) == 0);
	store_close(s);
	free(m);
}

int main(void)
{
	/* store_check's warnings are expected where tests plant corruption. */
	sp_log_setup(SP_LOG_ERROR, NULL);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_close_fresh, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_open_old_format, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_put_get_del, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_binary_keys_values, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_large_values, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_key_len_limit, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_key_len_scan_after_long, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_expiry, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_count_expired, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_expire_cycle, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_check_detects, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_corrupt_header, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_scan_order_and_resume, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_scan_with_deletes, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_flush, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_uncommitted_and_abort, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_commit_reopen, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_sync_thread, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_map_full, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_kill9, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_model_random, setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
