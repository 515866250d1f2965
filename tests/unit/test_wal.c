/*
 * Tests for src/store/wal: the write-ahead log on its own, with no store.
 *
 * The log's contract is about bytes on disk, so these tests keep their own
 * model of what was appended (struct xrec: one record's operations) and
 * their own encoder of the documented format (wal.h), and compare three
 * things against it: the files the log writes, what wal_replay hands back,
 * and what is left on disk after a replay had to cut damage away. Damage is
 * made by hand: files truncated at every byte of the last record, flipped
 * bytes, records whose checksum is right but whose payload is not, segment
 * files with a wrong or missing header, and stray files.
 *
 * Every test runs in a fresh directory under /tmp that the teardown
 * removes. Randomised tests derive their numbers from one seed printed at
 * the start; SPECTRA_SEED=<n> replays it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "../lib/testutil.h"
#include "common/log.h"
#include "store/wal.h"

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
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC	  "SPWAL01\n"
#define MAGIC_LEN 8u
#define REC_HDR	  8u

/* ---- fixture ---- */

struct fixture {
	char dir[64]; /* the test's temporary directory */
	char wal[96]; /* <dir>/wal: the log directory (created by wal_open) */
};

static int setup_dir(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/spectra-wal-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->wal, sizeof(f->wal), "%s/wal", f->dir);
	*state = f;
	return 0;
}

/* Logs a test opened and has not closed: the teardown closes them when the
 * test failed halfway, so leak reports point at real leaks. */
static struct wal *open_wals[8];

static int teardown_dir(void **state)
{
	struct fixture *f = *state;
	for (size_t i = 0; i < sizeof(open_wals) / sizeof(open_wals[0]); i++) {
		wal_close(open_wals[i]);
		open_wals[i] = NULL;
	}
	tu_remove_tree(f->dir);
	free(f);
	return 0;
}

/* ---- random numbers ---- */

static uint64_t base_seed; /* printed once; SPECTRA_SEED replays */
static uint64_t rng;

/* seed_test gives each test its own stream (tu_stream). */
static void seed_test(const char *name)
{
	rng = tu_stream(base_seed, name);
}

static uint64_t rnd(void)
{
	return tu_splitmix(&rng);
}

static uint64_t rnd_below(uint64_t n)
{
	return tu_rnd(&rng, n);
}

/* ---- the model: records as lists of operations ---- */

struct xop {
	enum wal_op_kind kind;
	uint8_t type, flags;
	uint64_t exp;
	unsigned char *key;
	size_t klen;
	unsigned char *data;
	size_t len;
};

struct xrec {
	struct xop *ops;
	size_t n;
};

/* A flat list of operations: what a replay handed back, or what it should. */
struct oplist {
	struct xop *ops;
	size_t n, cap;
};

/* dup_bytes copies n bytes and adds a NUL after them, so a key that holds
 * text can be read as a string (strtoul below). */
static unsigned char *dup_bytes(const void *p, size_t n)
{
	unsigned char *d = malloc(n + 1);
	assert_non_null(d);
	if (n)
		memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

static struct xop op_copy(const struct xop *o)
{
	struct xop c = *o;
	c.key = dup_bytes(o->key, o->klen);
	c.data = dup_bytes(o->data, o->len);
	return c;
}

static void op_free(struct xop *o)
{
	free(o->key);
	free(o->data);
	o->key = o->data = NULL;
}

static void rec_add(struct xrec *r, const struct xop *o)
{
	r->ops = realloc(r->ops, (r->n + 1) * sizeof(*r->ops));
	assert_non_null(r->ops);
	r->ops[r->n++] = op_copy(o);
}

static void rec_free(struct xrec *r)
{
	for (size_t i = 0; i < r->n; i++)
		op_free(&r->ops[i]);
	free(r->ops);
	r->ops = NULL;
	r->n = 0;
}

static void list_add(struct oplist *l, const struct xop *o)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->ops = realloc(l->ops, l->cap * sizeof(*l->ops));
		assert_non_null(l->ops);
	}
	l->ops[l->n++] = op_copy(o);
}

static void list_add_rec(struct oplist *l, const struct xrec *r)
{
	for (size_t i = 0; i < r->n; i++)
		list_add(l, &r->ops[i]);
}

static void list_free(struct oplist *l)
{
	for (size_t i = 0; i < l->n; i++)
		op_free(&l->ops[i]);
	free(l->ops);
	memset(l, 0, sizeof(*l));
}

/* Short constructors for hand-written records. */
static void add_put(struct xrec *r, const void *k, size_t klen, const void *v, size_t vlen,
		    uint8_t type, uint8_t flags, uint64_t exp)
{
	struct xop o = {WAL_PUT, type, flags, exp, (unsigned char *)k, klen, (unsigned char *)v,
			vlen};
	rec_add(r, &o);
}

static void add_del(struct xrec *r, const void *k, size_t klen)
{
	struct xop o = {.kind = WAL_DEL, .key = (unsigned char *)k, .klen = klen};
	rec_add(r, &o);
}

static void add_expire(struct xrec *r, const void *k, size_t klen, uint64_t exp)
{
	struct xop o = {.kind = WAL_EXPIRE, .exp = exp, .key = (unsigned char *)k, .klen = klen};
	rec_add(r, &o);
}

static void add_flush(struct xrec *r)
{
	struct xop o = {.kind = WAL_FLUSH};
	rec_add(r, &o);
}

static void fill_random(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)rnd();
}

/* random_rec makes a record of 1..max_ops random operations. Keys and values
 * are binary (NUL bytes are as likely as any), sometimes empty; with
 * big != 0 one value is about a megabyte. */
static void random_rec(struct xrec *r, size_t max_ops, int big)
{
	size_t n = 1 + rnd_below(max_ops);
	for (size_t i = 0; i < n; i++) {
		unsigned char key[64], *val = NULL;
		size_t klen = rnd_below(4) == 0 ? 0 : 1 + rnd_below(sizeof(key) - 1);
		fill_random(key, klen);
		unsigned pick = big && i == 0 ? 0 : (unsigned)rnd_below(100);
		if (pick < 55) {
			size_t len;
			if (big && i == 0)
				len = (1u << 20) + rnd_below(4096);
			else if (rnd_below(8) == 0)
				len = 0;
			else
				len = 1 + rnd_below(rnd_below(10) == 0 ? 4096 : 64);
			val = malloc(len ? len : 1);
			assert_non_null(val);
			fill_random(val, len);
			uint64_t exp = rnd_below(3) == 0 ? 0 : rnd();
			add_put(r, key, klen, val, len, (uint8_t)rnd(), (uint8_t)rnd(), exp);
			free(val);
		} else if (pick < 75) {
			add_del(r, key, klen);
		} else if (pick < 95) {
			add_expire(r, key, klen, rnd_below(2) ? 0 : rnd());
		} else {
			add_flush(r);
		}
	}
}

/* ---- the documented format, encoded independently of wal.c ---- */

static size_t op_size(const struct xop *o)
{
	switch (o->kind) {
	case WAL_PUT:
		return 1 + 1 + 1 + 8 + 4 + o->klen + 4 + o->len;
	case WAL_DEL:
		return 1 + 4 + o->klen;
	case WAL_EXPIRE:
		return 1 + 8 + 4 + o->klen;
	case WAL_FLUSH:
		return 1;
	}
	return 0;
}

static size_t payload_size(const struct xrec *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += op_size(&r->ops[i]);
	return n;
}

static size_t rec_size(const struct xrec *r)
{
	return REC_HDR + payload_size(r);
}

static unsigned char *le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		*p++ = (unsigned char)(v >> (8 * i));
	return p;
}

static unsigned char *le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		*p++ = (unsigned char)(v >> (8 * i));
	return p;
}

static uint32_t crc(const void *p, size_t n)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

/* frame writes a record header for payload [p, p+n) at out (8 bytes). */
static void frame(unsigned char *out, const unsigned char *payload, size_t n)
{
	le32(le32(out, (uint32_t)n), crc(payload, n));
}

/* encode_rec writes r as a framed record at out (rec_size(r) bytes). */
static void encode_rec(unsigned char *out, const struct xrec *r)
{
	unsigned char *p = out + REC_HDR;
	for (size_t i = 0; i < r->n; i++) {
		const struct xop *o = &r->ops[i];
		*p++ = (unsigned char)o->kind;
		switch (o->kind) {
		case WAL_PUT:
			*p++ = o->type;
			*p++ = o->flags;
			p = le64(p, o->exp);
			p = le32(p, (uint32_t)o->klen);
			memcpy(p, o->key, o->klen), p += o->klen;
			p = le32(p, (uint32_t)o->len);
			memcpy(p, o->data, o->len), p += o->len;
			break;
		case WAL_DEL:
			p = le32(p, (uint32_t)o->klen);
			memcpy(p, o->key, o->klen), p += o->klen;
			break;
		case WAL_EXPIRE:
			p = le64(p, o->exp);
			p = le32(p, (uint32_t)o->klen);
			memcpy(p, o->key, o->klen), p += o->klen;
			break;
		case WAL_FLUSH:
			break;
		}
	}
	frame(out, out + REC_HDR, (size_t)(p - out) - REC_HDR);
}

/* A growable byte string, for building segment files by hand. */
struct bytes {
	unsigned char *p;
	size_t n, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void bytes_add_rec(struct bytes *b, const struct xrec *r)
{
	size_t n = rec_size(r);
	unsigned char *tmp = malloc(n);
	assert_non_null(tmp);
	encode_rec(tmp, r);
	bytes_add(b, tmp, n);
	free(tmp);
}

/* bytes_add_raw adds a record with a correct header around any payload. */
static void bytes_add_raw(struct bytes *b, const void *payload, size_t n)
{
	unsigned char hdr[REC_HDR];
	frame(hdr, payload, n);
	bytes_add(b, hdr, sizeof(hdr));
	bytes_add(b, payload, n);
}

/* ---- files ---- */

static void seg_path(char *out, size_t n, const char *dir, uint64_t id)
{
	snprintf(out, n, "%s/wal-%016" PRIx64 ".log", dir, id);
}

static int is_segment_name(const char *name, uint64_t *id)
{
	if (strlen(name) != 24 || strncmp(name, "wal-", 4) != 0 || strcmp(name + 20, ".log") != 0)
		return 0;
	uint64_t v = 0;
	for (int i = 4; i < 20; i++) {
		char c = name[i];
		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return 0;
	}
	*id = v;
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* list_segments fills ids (oldest first) with the segment files in dir, as
 * named by the log itself (lower-case hex), and returns how many. */
static size_t list_segments(const char *dir, uint64_t *ids, size_t max)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		uint64_t id;
		if (is_segment_name(e->d_name, &id)) {
			assert_true(n < max);
			ids[n++] = id;
		}
	}
	closedir(d);
	qsort(ids, n, sizeof(*ids), cmp_u64);
	return n;
}

static long long file_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return -1;
	return (long long)st.st_size;
}

/* segments_bytes is the size of every segment file in dir. */
static uint64_t segments_bytes(const char *dir)
{
	uint64_t ids[256], total = 0;
	size_t n = list_segments(dir, ids, 256);
	char path[160];
	for (size_t i = 0; i < n; i++) {
		seg_path(path, sizeof(path), dir, ids[i]);
		total += (uint64_t)file_size(path);
	}
	return total;
}

static unsigned char *read_file(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	unsigned char *p = malloc((size_t)st.st_size + 1);
	assert_non_null(p);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	close(fd);
	*n = got;
	return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		fail_msg("create %s: %s", path, strerror(errno));
	const unsigned char *b = p;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		assert_true(w > 0);
		b += w;
		n -= (size_t)w;
	}
	close(fd);
}

/* reset_dir makes dir an existing, empty directory. */
static void reset_dir(const char *dir)
{
	tu_remove_tree(dir);
	assert_int_equal(mkdir(dir, 0700), 0);
}

/* ---- the log under test ---- */

static struct wal *open_wal(const char *dir)
{
	struct wal *w = NULL;
	int err = wal_open(&w, dir);
	if (err)
		fail_msg("wal_open(%s): %s", dir, sp_strerror(err));
	assert_non_null(w);
	for (size_t i = 0; i < sizeof(open_wals) / sizeof(open_wals[0]); i++) {
		if (!open_wals[i]) {
			open_wals[i] = w;
			return w;
		}
	}
	fail_msg("too many open logs");
	return NULL;
}

static void close_wal(struct wal *w)
{
	for (size_t i = 0; i < sizeof(open_wals) / sizeof(open_wals[0]); i++)
		if (w && open_wals[i] == w)
			open_wals[i] = NULL;
	wal_close(w);
}

/* emit buffers r's operations in w (the caller appends or discards). */
static void emit(struct wal *w, const struct xrec *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct xop *o = &r->ops[i];
		switch (o->kind) {
		case WAL_PUT:
			wal_put(w, o->key, o->klen, o->type, o->flags, o->exp, o->data, o->len);
			break;
		case WAL_DEL:
			wal_del(w, o->key, o->klen);
			break;
		case WAL_EXPIRE:
			wal_expire(w, o->key, o->klen, o->exp);
			break;
		case WAL_FLUSH:
			wal_flush_all(w);
			break;
		}
	}
}

static void append(struct wal *w, const struct xrec *r)
{
	emit(w, r);
	assert_int_equal(wal_pending(w), r->n > 0);
	int err = wal_append(w);
	if (err)
		fail_msg("wal_append: %s", sp_strerror(err));
	assert_int_equal(wal_pending(w), 0);
}

/* A replay callback that keeps a copy of every operation; with stop_at > 0
 * it returns stop_rc at that (1-based) operation instead. */
struct collect {
	struct oplist got;
	size_t calls, stop_at;
	int stop_rc;
};

static int collect_op(void *ctx, const struct wal_op *op)
{
	struct collect *c = ctx;
	c->calls++;
	if (c->stop_at && c->calls == c->stop_at)
		return c->stop_rc;
	struct xop o = {op->kind,
			op->type,
			op->flags,
			op->expire_at_ms,
			(unsigned char *)op->key,
			op->klen,
			(unsigned char *)op->data,
			op->len};
	/* Fields the format does not carry for this kind come back zeroed. */
	if (op->kind != WAL_PUT) {
		assert_int_equal(op->type, 0);
		assert_int_equal(op->flags, 0);
		assert_int_equal(op->len, 0);
	}
	if (op->kind != WAL_PUT && op->kind != WAL_EXPIRE)
		assert_int_equal(op->expire_at_ms, 0);
	list_add(&c->got, &o);
	return 0;
}

static const char *kind_name(enum wal_op_kind k)
{
	switch (k) {
	case WAL_PUT:
		return "PUT";
	case WAL_DEL:
		return "DEL";
	case WAL_EXPIRE:
		return "EXPIRE";
	case WAL_FLUSH:
		return "FLUSH";
	}
	return "?";
}

/* expect_ops asserts that got holds exactly want, in order, byte for byte. */
static void expect_ops(const struct oplist *got, const struct oplist *want)
{
	size_t n = got->n < want->n ? got->n : want->n;
	for (size_t i = 0; i < n; i++) {
		const struct xop *g = &got->ops[i], *w = &want->ops[i];
		int same = g->kind == w->kind && g->klen == w->klen &&
			   memcmp(g->key, w->key, w->klen) == 0;
		if (same && w->kind == WAL_PUT)
			same = g->type == w->type && g->flags == w->flags && g->exp == w->exp &&
			       g->len == w->len && memcmp(g->data, w->data, w->len) == 0;
		if (same && w->kind == WAL_EXPIRE)
			same = g->exp == w->exp;
		if (!same)
			fail_msg(
			    "replayed op %zu: got %s klen %zu len %zu, want %s klen %zu len %zu "
			    "(seed %" PRIu64 ")",
			    i, kind_name(g->kind), g->klen, g->len, kind_name(w->kind), w->klen,
			    w->len, base_seed);
	}
	if (got->n != want->n)
		fail_msg("replay gave %zu operations, want %zu (seed %" PRIu64 ")", got->n, want->n,
			 base_seed);
}

/* replay_into runs wal_replay, asserting it returns want_rc. */
static void replay_into(struct wal *w, struct collect *c, struct wal_replay_stats *st, int want_rc)
{
	int rc = wal_replay(w, collect_op, c, st);
	if (rc != want_rc)
		fail_msg("wal_replay returned %d (%s), want %d (seed %" PRIu64 ")", rc,
			 sp_strerror(rc), want_rc, base_seed);
}

/* ---- round trip ---- */

/* Random records of random operations, across rotations, closed and
 * reopened: the files hold exactly the documented encoding, and the replay
 * gives back every operation in order with every byte. */
static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	seed_test("round_trip");
	enum { NREC = 260 };
	struct xrec recs[NREC];
	int seg_of[NREC]; /* 0-based segment index of each record */
	memset(recs, 0, sizeof(recs));

	/* Edge cases first: empty key and value, NUL bytes, extreme fields. */
	add_put(&recs[0], "", 0, "", 0, 0, 0, 0);
	add_put(&recs[1], "\0", 1, "a\0b", 3, 0xff, 0xff, UINT64_MAX);
	add_del(&recs[1], "", 0);
	add_expire(&recs[1], "\0\0", 2, 1);
	add_expire(&recs[1], "k", 1, 0);
	add_flush(&recs[1]);
	add_flush(&recs[2]);
	unsigned char longkey[1000];
	memset(longkey, 0, sizeof(longkey));
	add_del(&recs[3], longkey, sizeof(longkey));
	add_put(&recs[3], longkey, sizeof(longkey), longkey, 999, 1, 2, 3);
	for (int i = 4; i < NREC; i++)
		random_rec(&recs[i], 12, i == 10 || i == 100 || i == NREC - 1);

	struct wal *w = open_wal(f->wal);
	struct stat st;
	assert_int_equal(stat(f->wal, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(wal_active_bytes(w), MAGIC_LEN);
	assert_int_equal(wal_total_bytes(w), MAGIC_LEN);
	uint64_t total = MAGIC_LEN, active = MAGIC_LEN;
	int segments = 1;
	size_t nops = 0;
	for (int i = 0; i < NREC; i++) {
		if (i > 4 && rnd_below(25) == 0) {
			assert_int_equal(wal_rotate(w), 0);
			segments++;
			active = MAGIC_LEN;
			total += MAGIC_LEN;
		}
		append(w, &recs[i]);
		seg_of[i] = segments - 1;
		active += rec_size(&recs[i]);
		total += rec_size(&recs[i]);
		nops += recs[i].n;
		assert_int_equal(wal_active_bytes(w), active);
		assert_int_equal(wal_total_bytes(w), total);
	}
	assert_int_equal(wal_sync(w), 0);
	assert_int_equal(segments_bytes(f->wal), total);
	close_wal(w);

	/* The files are the documented format, byte for byte. */
	uint64_t ids[64];
	assert_int_equal(list_segments(f->wal, ids, 64), (size_t)segments);
	for (int s = 0; s < segments; s++) {
		assert_int_equal(ids[s], (uint64_t)s + 1);
		struct bytes want = {0};
		bytes_add(&want, MAGIC, MAGIC_LEN);
		for (int i = 0; i < NREC; i++)
			if (seg_of[i] == s)
				bytes_add_rec(&want, &recs[i]);
		char path[160];
		seg_path(path, sizeof(path), f->wal, ids[s]);
		size_t n;
		unsigned char *got = read_file(path, &n);
		assert_int_equal(n, want.n);
		assert_memory_equal(got, want.p, n);
		free(got);
		free(want.p);
	}

	w = open_wal(f->wal);
	assert_int_equal(wal_active_bytes(w), MAGIC_LEN);
	assert_int_equal(wal_total_bytes(w), total + MAGIC_LEN);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	assert_int_equal(rs.segments, (uint64_t)segments);
	assert_int_equal(rs.records, NREC);
	assert_int_equal(rs.ops, nops);
	assert_int_equal(rs.torn_bytes, 0);
	struct oplist want = {0};
	for (int i = 0; i < NREC; i++)
		list_add_rec(&want, &recs[i]);
	expect_ops(&c.got, &want);
	/* A replay with nothing to cut leaves the files alone. */
	assert_int_equal(segments_bytes(f->wal), total + MAGIC_LEN);
	assert_int_equal(wal_total_bytes(w), total + MAGIC_LEN);
	close_wal(w);
	wal_close(NULL);

	list_free(&want);
	list_free(&c.got);
	for (int i = 0; i < NREC; i++)
		rec_free(&recs[i]);
}

/* Buffered operations are written by wal_append as one record, or dropped
 * by wal_discard; an append with nothing buffered writes nothing. */
static void test_pending_discard(void **state)
{
	struct fixture *f = *state;
	struct wal *w = open_wal(f->wal);
	assert_int_equal(wal_pending(w), 0);
	assert_int_equal(wal_append(w), 0);
	assert_int_equal(wal_active_bytes(w), MAGIC_LEN);

	struct xrec kept = {0}, dropped = {0};
	add_put(&kept, "a", 1, "1", 1, 0, 0, 0);
	add_del(&kept, "b", 1);
	add_put(&dropped, "never", 5, "seen", 4, 0, 0, 0);
	add_flush(&dropped);

	emit(w, &dropped);
	assert_int_equal(wal_pending(w), 1);
	wal_discard(w);
	assert_int_equal(wal_pending(w), 0);
	assert_int_equal(wal_append(w), 0);
	assert_int_equal(wal_active_bytes(w), MAGIC_LEN);
	append(w, &kept);
	assert_int_equal(wal_active_bytes(w), MAGIC_LEN + rec_size(&kept));
	emit(w, &dropped); /* left buffered at close: dropped too */
	close_wal(w);

	w = open_wal(f->wal);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	assert_int_equal(rs.records, 1);
	struct oplist want = {0};
	list_add_rec(&want, &kept);
	expect_ops(&c.got, &want);
	close_wal(w);
	list_free(&want);
	list_free(&c.got);
	rec_free(&kept);
	rec_free(&dropped);
}

/* ---- torn tails ---- */

/*
 * torn_case writes a one-segment log holding the first `len` bytes of
 * `full` (whose records are recs[0..nrec), the last starting at byte
 * `last_start`), and checks that the replay returns 0 with exactly the
 * records that are complete, counts the rest as torn, cuts the file back to
 * the last complete record, and that a record appended afterwards replays
 * cleanly after the next open.
 */
static void torn_case(struct fixture *f, const struct bytes *full, const struct xrec *recs,
		      size_t nrec, size_t last_start, size_t len)
{
	char seg1[160];
	seg_path(seg1, sizeof(seg1), f->wal, 1);
	reset_dir(f->wal);
	write_file(seg1, full->p, len);

	int whole = len == full->n;
	size_t complete = whole ? nrec : nrec - 1;
	struct oplist want = {0};
	for (size_t i = 0; i < complete; i++)
		list_add_rec(&want, &recs[i]);

	struct wal *w = open_wal(f->wal);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	if (rs.records != complete || rs.torn_bytes != (whole ? 0 : len - last_start))
		fail_msg("cut at %zu of %zu: %" PRIu64 " records, %" PRIu64
			 " torn bytes; want %zu, %zu",
			 len, full->n, rs.records, rs.torn_bytes, complete,
			 whole ? 0 : len - last_start);
	assert_int_equal(rs.segments, 1);
	expect_ops(&c.got, &want);
	assert_int_equal(file_size(seg1), whole ? (long long)full->n : (long long)last_start);
	list_free(&c.got);

	/* The log goes on from there, and the next open is clean. */
	char val[32];
	int vlen = snprintf(val, sizeof(val), "cut-at-%zu", len);
	struct xrec after = {0};
	add_put(&after, "after", 5, val, (size_t)vlen, 0, 0, 0);
	append(w, &after);
	assert_int_equal(wal_sync(w), 0);
	close_wal(w);
	list_add_rec(&want, &after);

	w = open_wal(f->wal);
	replay_into(w, &c, &rs, 0);
	assert_int_equal(rs.torn_bytes, 0);
	assert_int_equal(rs.records, complete + 1);
	assert_int_equal(rs.segments, 2);
	expect_ops(&c.got, &want);
	close_wal(w);
	list_free(&c.got);
	list_free(&want);
	rec_free(&after);
}

/* Truncate the segment at every byte offset of its last record. */
static void test_torn_tail_every_offset(void **state)
{
	struct fixture *f = *state;
	struct xrec recs[4] = {{0}};
	add_put(&recs[0], "a", 1, "1", 1, 0, 0, 0);
	add_del(&recs[1], "b", 1);
	add_expire(&recs[2], "c", 1, 77);
	unsigned char v[120];
	for (size_t i = 0; i < sizeof(v); i++)
		v[i] = (unsigned char)(i * 7);
	add_put(&recs[3], "last\0key", 8, v, sizeof(v), 3, 4, 123456789);
	add_expire(&recs[3], "last\0key", 8, 5);
	add_del(&recs[3], "x", 1);
	add_flush(&recs[3]);
	add_put(&recs[3], "", 0, "", 0, 0, 0, 0);

	struct bytes full = {0};
	bytes_add(&full, MAGIC, MAGIC_LEN);
	for (int i = 0; i < 3; i++)
		bytes_add_rec(&full, &recs[i]);
	size_t last_start = full.n;
	bytes_add_rec(&full, &recs[3]);

	for (size_t len = last_start; len <= full.n; len++)
		torn_case(f, &full, recs, 4, last_start, len);

	free(full.p);
	for (int i = 0; i < 4; i++)
		rec_free(&recs[i]);
}

/* The same for a last record of about a megabyte, at the offsets that
 * matter: inside the header, just after it, mid-payload, one byte short. */
static void test_torn_tail_big_record(void **state)
{
	struct fixture *f = *state;
	seed_test("torn_tail_big_record");
	struct xrec recs[2] = {{0}};
	add_put(&recs[0], "small", 5, "v", 1, 0, 0, 0);
	size_t big = (1u << 20) + 17;
	unsigned char *v = malloc(big);
	assert_non_null(v);
	fill_random(v, big);
	add_put(&recs[1], "big", 3, v, big, 0, 0, 0);
	free(v);

	struct bytes full = {0};
	bytes_add(&full, MAGIC, MAGIC_LEN);
	bytes_add_rec(&full, &recs[0]);
	size_t s = full.n;
	bytes_add_rec(&full, &recs[1]);
	size_t cuts[] = {s,	s + 1,	s + 4,	     s + 7,	 s + 8,
			 s + 9, s + 30, s + big / 2, full.n - 1, full.n};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		torn_case(f, &full, recs, 2, s, cuts[i]);
	free(full.p);
	rec_free(&recs[0]);
	rec_free(&recs[1]);
}

/* ---- damage before the end ---- */

/* make_three_segments writes three segments of five records each (the
 * third active at close) and returns their records (recs[15]) and files. */
static void make_three_segments(struct fixture *f, struct xrec *recs, struct bytes *files)
{
	struct wal *w = open_wal(f->wal);
	for (int s = 0; s < 3; s++) {
		if (s > 0)
			assert_int_equal(wal_rotate(w), 0);
		bytes_add(&files[s], MAGIC, MAGIC_LEN);
		for (int i = 0; i < 5; i++) {
			struct xrec *r = &recs[s * 5 + i];
			random_rec(r, 4, 0);
			append(w, r);
			bytes_add_rec(&files[s], r);
		}
	}
	assert_int_equal(wal_sync(w), 0);
	close_wal(w);
	char path[160];
	for (int s = 0; s < 3; s++) {
		seg_path(path, sizeof(path), f->wal, (uint64_t)s + 1);
		size_t n;
		unsigned char *got = read_file(path, &n);
		assert_int_equal(n, files[s].n);
		assert_memory_equal(got, files[s].p, n);
		free(got);
	}
}

/* offset_of returns where record i (0..4) of a segment starts. */
static size_t offset_of(const struct xrec *seg_recs, int i)
{
	size_t off = MAGIC_LEN;
	for (int j = 0; j < i; j++)
		off += rec_size(&seg_recs[j]);
	return off;
}

/*
 * A flipped byte inside a record that is not the last: the replay stops
 * there, cuts that segment back and deletes every later one, logs it, and
 * the next open starts from a clean log.
 */
static void test_corrupt_record_drops_rest(void **state)
{
	struct fixture *f = *state;
	seed_test("corrupt_record_drops_rest");
	struct xrec recs[15];
	struct bytes files[3];
	memset(recs, 0, sizeof(recs));
	memset(files, 0, sizeof(files));
	make_three_segments(f, recs, files);

	/* Which record, and where in it: 0 payload, 1 crc, 2 length. */
	static const struct {
		int seg, rec, where;
	} cases[] = {
	    {0, 2, 0}, {0, 2, 1}, {0, 2, 2}, {0, 0, 0}, {1, 0, 0}, {1, 3, 1}, {2, 4, 0}, {0, 4, 0},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		int cs = cases[k].seg, cr = cases[k].rec;
		reset_dir(f->wal);
		char path[3][160];
		for (int s = 0; s < 3; s++) {
			seg_path(path[s], sizeof(path[s]), f->wal, (uint64_t)s + 1);
			write_file(path[s], files[s].p, files[s].n);
		}
		size_t start = offset_of(&recs[cs * 5], cr);
		size_t payload = payload_size(&recs[cs * 5 + cr]);
		size_t at = cases[k].where == 0	  ? start + REC_HDR + rnd_below(payload)
			    : cases[k].where == 1 ? start + 4 + rnd_below(4)
						  : start;
		unsigned char *damaged = dup_bytes(files[cs].p, files[cs].n);
		damaged[at] ^= (unsigned char)(1u << rnd_below(8));
		write_file(path[cs], damaged, files[cs].n);
		free(damaged);

		int good = cs * 5 + cr;
		struct oplist want = {0};
		for (int i = 0; i < good; i++)
			list_add_rec(&want, &recs[i]);
		uint64_t torn = files[cs].n - start;
		for (int s = cs + 1; s < 3; s++)
			torn += files[s].n;

		FILE *logf = tu_log_capture_begin(SP_LOG_WARN);
		struct wal *w = open_wal(f->wal);
		struct collect c = {0};
		struct wal_replay_stats rs;
		replay_into(w, &c, &rs, 0);
		char *logged = tu_log_capture_end(logf);
		assert_int_equal(rs.records, (uint64_t)good);
		assert_int_equal(rs.torn_bytes, torn);
		expect_ops(&c.got, &want);
		assert_int_equal(file_size(path[cs]), (long long)start);
		for (int s = cs + 1; s < 3; s++)
			assert_int_equal(file_size(path[s]), -1);
		if (!strstr(logged, "dropping the rest") ||
		    (!strstr(logged, "checksum mismatch") && !strstr(logged, "cut short")))
			fail_msg("case %zu: expected a warning, logged: '%s'", k, logged);
		free(logged);
		list_free(&c.got);

		struct xrec after = {0};
		add_put(&after, "after", 5, "damage", 6, 0, 0, 0);
		append(w, &after);
		close_wal(w);
		list_add_rec(&want, &after);
		rec_free(&after);

		logf = tu_log_capture_begin(SP_LOG_WARN);
		w = open_wal(f->wal);
		replay_into(w, &c, &rs, 0);
		logged = tu_log_capture_end(logf);
		assert_int_equal(rs.torn_bytes, 0);
		assert_int_equal(rs.records, (uint64_t)good + 1);
		expect_ops(&c.got, &want);
		if (logged[0])
			fail_msg("case %zu: a clean log logged '%s'", k, logged);
		free(logged);
		close_wal(w);
		list_free(&c.got);
		list_free(&want);
	}
	for (int i = 0; i < 15; i++)
		rec_free(&recs[i]);
	for (int s = 0; s < 3; s++)
		free(files[s].p);
}

/* A record whose checksum is right but whose payload does not decode is
 * not a torn write: SP_ERR_CORRUPT, and nothing is cut. */
static void test_valid_crc_bad_payload(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *what;
		const char *p;
		size_t n;
	} bad[] = {
	    {"unknown kind", "X", 1},
	    {"kind 0", "\0", 1},
	    {"PUT cut after its type", "P\x01", 2},
	    {"PUT value longer than the payload", "P\0\0\0\0\0\0\0\0\0\0\1\0\0\0k\5\0\0\0ab", 22},
	    {"DEL with a 4 GiB key", "D\xff\xff\xff\xff", 5},
	    {"DEL with no key length", "D\1\0", 3},
	    {"EXPIRE with no key", "E\1\2\3\4\5\6\7\x08", 9},
	    {"good op, then junk", "FZ", 2},
	    {"good DEL, then half an op", "D\1\0\0\0kE\0", 8},
	};
	struct xrec first = {0}, later = {0};
	add_put(&first, "a", 1, "1", 1, 0, 0, 0);
	add_put(&later, "z", 1, "26", 2, 0, 0, 0);
	char seg1[160];
	seg_path(seg1, sizeof(seg1), f->wal, 1);
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		reset_dir(f->wal);
		struct bytes b = {0};
		bytes_add(&b, MAGIC, MAGIC_LEN);
		bytes_add_rec(&b, &first);
		bytes_add_raw(&b, bad[k].p, bad[k].n);
		bytes_add_rec(&b, &later);
		write_file(seg1, b.p, b.n);

		struct wal *w = open_wal(f->wal);
		struct collect c = {0};
		struct wal_replay_stats rs;
		int rc = wal_replay(w, collect_op, &c, &rs);
		if (rc != SP_ERR_CORRUPT)
			fail_msg("%s: wal_replay returned %d (%s), want SP_ERR_CORRUPT",
				 bad[k].what, rc, sp_strerror(rc));
		/* The record before it was handed over; the file is left for
		 * whoever investigates. */
		assert_true(c.got.n >= 1);
		assert_int_equal(c.got.ops[0].kind, WAL_PUT);
		size_t n;
		unsigned char *now = read_file(seg1, &n);
		assert_int_equal(n, b.n);
		assert_memory_equal(now, b.p, n);
		free(now);
		close_wal(w);
		list_free(&c.got);
		free(b.p);
	}
	rec_free(&first);
	rec_free(&later);
}

/* A callback that returns non-zero stops the replay with its value, and
 * nothing is cut. */
static void test_callback_stops_replay(void **state)
{
	struct fixture *f = *state;
	seed_test("callback_stops_replay");
	struct xrec recs[15];
	struct bytes files[3];
	memset(recs, 0, sizeof(recs));
	memset(files, 0, sizeof(files));
	make_three_segments(f, recs, files);
	uint64_t before = segments_bytes(f->wal);

	struct wal *w = open_wal(f->wal);
	struct collect c = {.stop_at = 7, .stop_rc = 42};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 42);
	assert_int_equal(c.got.n, 6);
	close_wal(w);
	/* The three segments, plus the empty one that open made. */
	assert_int_equal(segments_bytes(f->wal), before + MAGIC_LEN);
	list_free(&c.got);

	w = open_wal(f->wal);
	struct collect all = {0};
	replay_into(w, &all, &rs, 0);
	assert_int_equal(rs.records, 15);
	assert_int_equal(rs.torn_bytes, 0);
	close_wal(w);
	list_free(&all.got);
	for (int i = 0; i < 15; i++)
		rec_free(&recs[i]);
	for (int s = 0; s < 3; s++)
		free(files[s].p);
}

/*
 * A checksum of zero over an empty payload is valid CRC-32, so eight zero
 * bytes read as a complete empty record. wal_append never writes one (it
 * returns early with nothing buffered), so a zero header can only be a
 * hole: the zero-filled tail some filesystems leave after a crash, before
 * the data blocks of an extending write reached the disk. Records after
 * such a hole were written later than the lost ones; replaying them and
 * not the lost ones is not a prefix of the history.
 */
static void test_zero_header_ends_replay(void **state)
{
	struct fixture *f = *state;
	struct xrec a = {0}, b = {0};
	add_put(&a, "a", 1, "1", 1, 0, 0, 0);
	add_del(&b, "a", 1);
	struct bytes file = {0};
	bytes_add(&file, MAGIC, MAGIC_LEN);
	bytes_add_rec(&file, &a);
	size_t hole = file.n;
	static const unsigned char zeros[16];
	bytes_add(&file, zeros, sizeof(zeros));
	bytes_add_rec(&file, &b);
	char seg1[160];
	seg_path(seg1, sizeof(seg1), f->wal, 1);
	reset_dir(f->wal);
	write_file(seg1, file.p, file.n);

	struct wal *w = open_wal(f->wal);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	struct oplist want = {0};
	list_add_rec(&want, &a);
	if (rs.records != 1 || c.got.n != 1)
		fail_msg("a zero-filled hole was read as %" PRIu64 " records and the record after "
			 "it (DEL a) was replayed: %zu ops, want 1 record, 1 op",
			 rs.records, c.got.n);
	expect_ops(&c.got, &want);
	assert_int_equal(rs.torn_bytes, file.n - hole);
	close_wal(w);
	list_free(&c.got);
	list_free(&want);
	free(file.p);
	rec_free(&a);
	rec_free(&b);
}

/* ---- segment headers, empty files, directories ---- */

/* write_seg writes segment `id` of dir: `head` (n bytes) then recs. */
static void write_seg(const char *dir, uint64_t id, const void *head, size_t n,
		      const struct xrec *recs, size_t nrec)
{
	struct bytes b = {0};
	bytes_add(&b, head, n);
	for (size_t i = 0; i < nrec; i++)
		bytes_add_rec(&b, &recs[i]);
	char path[160];
	seg_path(path, sizeof(path), dir, id);
	write_file(path, b.p, b.n);
	free(b.p);
}

/* The last segment's header is wrong, cut short or missing: the records of
 * the segments before it are replayed, the damaged one is dropped and
 * logged. */
static void test_segment_header(void **state)
{
	struct fixture *f = *state;
	struct xrec recs[2] = {{0}};
	add_put(&recs[0], "k", 1, "v", 1, 0, 0, 0);
	add_del(&recs[1], "k", 1);
	struct oplist want = {0};
	list_add_rec(&want, &recs[0]);
	list_add_rec(&want, &recs[1]);
	static const struct {
		const char *what;
		const char *head;
		size_t n;
		int with_records;
	} cases[] = {
	    {"garbage magic", "\0\0\0\0\0\0\0\0", 8, 1},
	    {"magic cut short", "SPW", 3, 0},
	    {"empty file", "", 0, 0},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		reset_dir(f->wal);
		write_seg(f->wal, 1, MAGIC, MAGIC_LEN, recs, 2);
		write_seg(f->wal, 2, cases[k].head, cases[k].n, recs,
			  cases[k].with_records ? 2 : 0);
		char seg2[160];
		seg_path(seg2, sizeof(seg2), f->wal, 2);
		long long size2 = file_size(seg2);

		FILE *logf = tu_log_capture_begin(SP_LOG_WARN);
		struct wal *w = open_wal(f->wal);
		struct collect c = {0};
		struct wal_replay_stats rs;
		replay_into(w, &c, &rs, 0);
		char *logged = tu_log_capture_end(logf);
		assert_int_equal(rs.records, 2);
		assert_int_equal(rs.segments, 2);
		assert_int_equal(rs.torn_bytes, (uint64_t)size2);
		expect_ops(&c.got, &want);
		if (!strstr(logged, "segment header"))
			fail_msg("%s: expected a warning, logged '%s'", cases[k].what, logged);
		free(logged);
		/* A segment without a whole header is removed, not kept empty
		 * (it would cut off records appended after this open). */
		assert_true(file_size(seg2) < 0);
		/* The new active segment comes after the damaged one. */
		uint64_t ids[8];
		assert_int_equal(list_segments(f->wal, ids, 8), 2);
		assert_int_equal(ids[0], 1);
		assert_int_equal(ids[1], 3);
		close_wal(w);
		list_free(&c.got);
	}

	/* A whole header of another format version is not damage but a log
	 * this binary cannot read: replay refuses it and deletes nothing. */
	reset_dir(f->wal);
	write_seg(f->wal, 1, MAGIC, MAGIC_LEN, recs, 2);
	write_seg(f->wal, 2, "SPWAL99\n", 8, recs, 2);
	{
		char seg2[160];
		seg_path(seg2, sizeof(seg2), f->wal, 2);
		long long size2 = file_size(seg2);
		FILE *logf = tu_log_capture_begin(SP_LOG_WARN);
		struct wal *w2 = open_wal(f->wal);
		struct collect c2 = {0};
		struct wal_replay_stats rs2;
		replay_into(w2, &c2, &rs2, SP_ERR_CORRUPT);
		free(tu_log_capture_end(logf));
		assert_int_equal(file_size(seg2), size2);
		close_wal(w2);
		list_free(&c2.got);
	}

	/* A log whose only segment is empty. */
	reset_dir(f->wal);
	write_seg(f->wal, 1, "", 0, NULL, 0);
	struct wal *w = open_wal(f->wal);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	assert_int_equal(rs.records, 0);
	assert_int_equal(c.got.n, 0);
	assert_int_equal(rs.torn_bytes, 0);
	close_wal(w);

	list_free(&want);
	rec_free(&recs[0]);
	rec_free(&recs[1]);
}

/*
 * A segment with no header (empty, or its magic cut short: a crash between
 * creating the file and writing its first 8 bytes) ends the replay at byte
 * 0. It is cut to nothing but stays a segment; records appended after that
 * open, and synced, must still be there at the next open.
 */
static void test_header_cut_then_append_survives(void **state)
{
	struct fixture *f = *state;
	struct xrec before = {0}, after = {0};
	add_put(&before, "before", 6, "1", 1, 0, 0, 0);
	add_put(&after, "after", 5, "2", 1, 0, 0, 0);
	static const char *heads[] = {"", "SPWAL"};
	for (size_t k = 0; k < 2; k++) {
		reset_dir(f->wal);
		write_seg(f->wal, 1, MAGIC, MAGIC_LEN, &before, 1);
		write_seg(f->wal, 2, heads[k], strlen(heads[k]), NULL, 0);

		struct wal *w = open_wal(f->wal);
		struct collect c = {0};
		struct wal_replay_stats rs;
		replay_into(w, &c, &rs, 0);
		assert_int_equal(rs.records, 1);
		list_free(&c.got);
		append(w, &after);
		assert_int_equal(wal_sync(w), 0);
		close_wal(w);

		w = open_wal(f->wal);
		replay_into(w, &c, &rs, 0);
		struct oplist want = {0};
		list_add_rec(&want, &before);
		list_add_rec(&want, &after);
		if (c.got.n != 2)
			fail_msg(
			    "header '%s': after a clean append + sync + close, the next replay "
			    "gave %zu of 2 operations (%" PRIu64 " bytes dropped as torn)",
			    heads[k], c.got.n, rs.torn_bytes);
		expect_ops(&c.got, &want);
		close_wal(w);
		list_free(&c.got);
		list_free(&want);
	}
	rec_free(&before);
	rec_free(&after);
}

/* wal_open creates the directory (0700) and works on an empty one; a
 * missing parent or a file in the way is an error. */
static void test_open_dirs(void **state)
{
	struct fixture *f = *state;
	struct wal *w = open_wal(f->wal);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	assert_int_equal(rs.segments, 0);
	assert_int_equal(rs.records, 0);
	assert_int_equal(wal_active_bytes(w), MAGIC_LEN);
	assert_int_equal(wal_total_bytes(w), MAGIC_LEN);
	close_wal(w);

	/* An existing, empty directory. */
	reset_dir(f->wal);
	w = open_wal(f->wal);
	replay_into(w, &c, &rs, 0);
	assert_int_equal(rs.segments, 0);
	uint64_t ids[4];
	assert_int_equal(list_segments(f->wal, ids, 4), 1);
	assert_int_equal(ids[0], 1);
	close_wal(w);

	char path[160];
	snprintf(path, sizeof(path), "%s/no/such/parent", f->dir);
	w = NULL;
	assert_int_equal(wal_open(&w, path), -ENOENT);
	assert_null(w);
	snprintf(path, sizeof(path), "%s/file", f->dir);
	write_file(path, "x", 1);
	assert_int_equal(wal_open(&w, path), -ENOTDIR);
}

/* Files that are not segments are neither replayed, nor deleted, nor
 * counted, and do not move the numbering. */
static void test_stray_files_ignored(void **state)
{
	struct fixture *f = *state;
	struct xrec rec = {0};
	add_put(&rec, "real", 4, "1", 1, 0, 0, 0);
	reset_dir(f->wal);
	write_seg(f->wal, 5, MAGIC, MAGIC_LEN, &rec, 1);
	static const char *strays[] = {
	    "README",
	    "wal-1.log",
	    "wal-0000000000000001.log.tmp",
	    "wal-0000000000000009.lo",
	    "wal-000000000000000g.log",
	    "wal-00000000000000099.log",
	    "xwal-000000000000009.log",
	    "wal-0000000000000009-log",
	    ".wal-000000000000009.log",
	};
	char path[200];
	size_t nstray = sizeof(strays) / sizeof(strays[0]);
	for (size_t i = 0; i < nstray; i++) {
		snprintf(path, sizeof(path), "%s/%s", f->wal, strays[i]);
		write_file(path, "not a segment\n", 14);
	}
	snprintf(path, sizeof(path), "%s/wal-0000000000000007.log.d", f->wal);
	assert_int_equal(mkdir(path, 0700), 0);

	struct wal *w = open_wal(f->wal);
	assert_int_equal(wal_total_bytes(w), MAGIC_LEN + rec_size(&rec) + MAGIC_LEN);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	assert_int_equal(rs.segments, 1);
	assert_int_equal(rs.records, 1);
	assert_int_equal(rs.torn_bytes, 0);
	uint64_t ids[8];
	assert_int_equal(list_segments(f->wal, ids, 8), 2);
	assert_int_equal(ids[0], 5);
	assert_int_equal(ids[1], 6);
	assert_int_equal(wal_rotate(w), 0);
	assert_int_equal(wal_retire(w), 0);
	close_wal(w);
	for (size_t i = 0; i < nstray; i++) {
		snprintf(path, sizeof(path), "%s/%s", f->wal, strays[i]);
		assert_int_equal(file_size(path), 14);
	}
	list_free(&c.got);
	rec_free(&rec);
}

/*
 * A name the log would never write but that its parser takes for a segment
 * (upper-case hex, a "0x" prefix, a sign: sscanf's %llx accepts them all) is
 * either not a segment at all, or a segment that wal_retire deletes. It must
 * not be replayed again at every open after its records were retired: that
 * would put old values back over newer ones on each restart.
 */
static void test_segment_name_round_trip(void **state)
{
	struct fixture *f = *state;
	struct xrec stale = {0};
	add_put(&stale, "k", 1, "stale", 5, 0, 0, 0);
	static const char *names[] = {
	    "wal-000000000000000A.log",
	    "wal-0x0000000000000a.log",
	    "wal-+00000000000000a.log",
	};
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		reset_dir(f->wal);
		struct bytes b = {0};
		bytes_add(&b, MAGIC, MAGIC_LEN);
		bytes_add_rec(&b, &stale);
		char path[200];
		snprintf(path, sizeof(path), "%s/%s", f->wal, names[k]);
		write_file(path, b.p, b.n);
		free(b.p);

		/* Open, replay, retire what was replayed: the store's recovery. */
		struct wal *w = open_wal(f->wal);
		struct collect c = {0};
		struct wal_replay_stats rs;
		replay_into(w, &c, &rs, 0);
		list_free(&c.got);
		assert_int_equal(wal_rotate(w), 0);
		assert_int_equal(wal_retire(w), 0);
		close_wal(w);

		w = open_wal(f->wal);
		replay_into(w, &c, &rs, 0);
		if (c.got.n != 0)
			fail_msg("'%s': its record was replayed again after wal_retire (%zu ops, "
				 "file still there: %s)",
				 names[k], c.got.n, file_size(path) >= 0 ? "yes" : "no");
		close_wal(w);
		list_free(&c.got);
	}
	rec_free(&stale);
}

/* ---- rotate and retire ---- */

static void test_rotate_retire(void **state)
{
	struct fixture *f = *state;
	seed_test("rotate_retire");
	struct wal *w = open_wal(f->wal);
	/* Retiring with only the active segment deletes nothing. */
	assert_int_equal(wal_retire(w), 0);
	assert_int_equal(wal_total_bytes(w), MAGIC_LEN);

	struct xrec recs[9];
	memset(recs, 0, sizeof(recs));
	uint64_t total = MAGIC_LEN, active = MAGIC_LEN;
	for (int i = 0; i < 9; i++) {
		random_rec(&recs[i], 5, 0);
		if (i == 3 || i == 6) {
			assert_int_equal(wal_rotate(w), 0);
			total += MAGIC_LEN;
			active = MAGIC_LEN;
		}
		append(w, &recs[i]);
		total += rec_size(&recs[i]);
		active += rec_size(&recs[i]);
		assert_int_equal(wal_active_bytes(w), active);
		assert_int_equal(wal_total_bytes(w), total);
		assert_int_equal(segments_bytes(f->wal), total);
	}
	uint64_t ids[8];
	assert_int_equal(list_segments(f->wal, ids, 8), 3);

	assert_int_equal(wal_retire(w), 0);
	assert_int_equal(list_segments(f->wal, ids, 8), 1);
	assert_int_equal(ids[0], 3);
	assert_int_equal(wal_total_bytes(w), active);
	assert_int_equal(wal_active_bytes(w), active);
	assert_int_equal(segments_bytes(f->wal), active);

	/* The active segment keeps growing. */
	struct xrec more = {0};
	add_put(&more, "more", 4, "x", 1, 0, 0, 0);
	append(w, &more);
	active += rec_size(&more);
	assert_int_equal(wal_active_bytes(w), active);
	assert_int_equal(wal_total_bytes(w), active);
	assert_int_equal(wal_retire(w), 0); /* nothing old: a no-op */
	assert_int_equal(wal_total_bytes(w), active);
	assert_int_equal(wal_sync(w), 0);
	close_wal(w);

	/* Only what was not retired comes back, and a reopen's replayed
	 * segments are retired like any other. */
	w = open_wal(f->wal);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	struct oplist want = {0};
	for (int i = 6; i < 9; i++)
		list_add_rec(&want, &recs[i]);
	list_add_rec(&want, &more);
	expect_ops(&c.got, &want);
	assert_int_equal(rs.segments, 1);
	assert_int_equal(wal_total_bytes(w), active + MAGIC_LEN);
	assert_int_equal(wal_retire(w), 0);
	assert_int_equal(wal_total_bytes(w), MAGIC_LEN);
	assert_int_equal(list_segments(f->wal, ids, 8), 1);
	assert_int_equal(ids[0], 4);
	close_wal(w);

	list_free(&c.got);
	list_free(&want);
	rec_free(&more);
	for (int i = 0; i < 9; i++)
		rec_free(&recs[i]);
}

/* After a replay cut damage away, the sizes the log reports agree with the
 * files, before and after the cut segments are retired. (The server starts
 * checkpoints from wal_total_bytes.) */
static void test_sizes_after_cut(void **state)
{
	struct fixture *f = *state;
	struct xrec recs[3] = {{0}};
	add_put(&recs[0], "a", 1, "1", 1, 0, 0, 0);
	unsigned char v[3000];
	memset(v, 'v', sizeof(v));
	add_put(&recs[1], "b", 1, v, sizeof(v), 0, 0, 0);
	add_put(&recs[2], "c", 1, v, sizeof(v), 0, 0, 0);
	reset_dir(f->wal);
	/* Segment 1: a complete record, then the second cut in half.
	 * Segment 2: complete, but after the damage, so dropped too. */
	struct bytes b = {0};
	bytes_add(&b, MAGIC, MAGIC_LEN);
	bytes_add_rec(&b, &recs[0]);
	size_t keep = b.n;
	bytes_add_rec(&b, &recs[1]);
	char seg1[160];
	seg_path(seg1, sizeof(seg1), f->wal, 1);
	write_file(seg1, b.p, keep + rec_size(&recs[1]) / 2);
	write_seg(f->wal, 2, MAGIC, MAGIC_LEN, &recs[2], 1);
	free(b.p);

	struct wal *w = open_wal(f->wal);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	assert_int_equal(rs.records, 1);
	assert_true(rs.torn_bytes > 0);
	uint64_t on_disk = segments_bytes(f->wal);
	assert_int_equal(on_disk, keep + MAGIC_LEN);
	if (wal_total_bytes(w) != on_disk)
		fail_msg("after the cut: wal_total_bytes %" PRIu64 ", segment files %" PRIu64
			 " bytes (torn %" PRIu64 ")",
			 wal_total_bytes(w), on_disk, rs.torn_bytes);
	assert_int_equal(wal_retire(w), 0);
	if (wal_total_bytes(w) != wal_active_bytes(w))
		fail_msg("after retiring every old segment: wal_total_bytes %" PRIu64
			 ", wal_active_bytes %" PRIu64,
			 wal_total_bytes(w), wal_active_bytes(w));
	close_wal(w);
	list_free(&c.got);
	for (int i = 0; i < 3; i++)
		rec_free(&recs[i]);
}

/* ---- threads ---- */

/*
 * wal.h: wal_sync and wal_retire may each run on another thread, at the
 * same time as each other, while the loop appends; wal_rotate only while
 * neither is in flight. The gate below enforces exactly that rule: workers
 * enter it around each call, and the appending thread closes it (waiting
 * for calls in flight) to rotate.
 */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int closed, inflight;
	atomic_int stop;
	struct wal *w;
	int sync_err, retire_err;
	atomic_long syncs, retires;
};

static int gate_enter(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	while (g->closed && !atomic_load(&g->stop))
		pthread_cond_wait(&g->cv, &g->mu);
	int open = !atomic_load(&g->stop);
	if (open)
		g->inflight++;
	pthread_mutex_unlock(&g->mu);
	return open;
}

static void gate_leave(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->inflight--;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static void *sync_loop(void *arg)
{
	struct gate *g = arg;
	while (gate_enter(g)) {
		int err = wal_sync(g->w);
		gate_leave(g);
		if (err && !g->sync_err)
			g->sync_err = err;
		g->syncs++;
	}
	return NULL;
}

static void *retire_loop(void *arg)
{
	struct gate *g = arg;
	while (gate_enter(g)) {
		int err = wal_retire(g->w);
		gate_leave(g);
		if (err && !g->retire_err)
			g->retire_err = err;
		g->retires++;
		usleep(200);
	}
	return NULL;
}

static void test_concurrent_sync_retire(void **state)
{
	struct fixture *f = *state;
	seed_test("concurrent_sync_retire");
	enum { N = 20000, ROTATE_EVERY = 250 };
	struct gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	atomic_init(&g.stop, 0);
	atomic_init(&g.syncs, 0);
	atomic_init(&g.retires, 0);
	g.w = open_wal(f->wal);
	pthread_t syncer, retirer;
	assert_int_equal(pthread_create(&syncer, NULL, sync_loop, &g), 0);
	assert_int_equal(pthread_create(&retirer, NULL, retire_loop, &g), 0);

	static uint32_t starts[N / ROTATE_EVERY + 2]; /* first record of each segment */
	size_t nstarts = 0;
	starts[nstarts++] = 0;
	unsigned char val[256];
	for (uint32_t i = 0; i < N; i++) {
		if (i > 0 && i % ROTATE_EVERY == 0) {
			pthread_mutex_lock(&g.mu);
			g.closed = 1;
			while (g.inflight)
				pthread_cond_wait(&g.cv, &g.mu);
			pthread_mutex_unlock(&g.mu);
			int err = wal_rotate(g.w);
			pthread_mutex_lock(&g.mu);
			g.closed = 0;
			pthread_cond_broadcast(&g.cv);
			pthread_mutex_unlock(&g.mu);
			assert_int_equal(err, 0);
			starts[nstarts++] = i;
		}
		char key[16];
		int klen = snprintf(key, sizeof(key), "seq%08" PRIu32, i);
		size_t vlen = rnd_below(sizeof(val));
		fill_random(val, vlen);
		wal_put(g.w, key, (size_t)klen, 0, 0, 0, val, vlen);
		assert_int_equal(wal_append(g.w), 0);
		assert_true(wal_total_bytes(g.w) >= wal_active_bytes(g.w));
	}
	/* Let both threads get some calls in even on a slow machine. */
	while (atomic_load(&g.syncs) < 3 || atomic_load(&g.retires) < 3)
		usleep(1000);
	pthread_mutex_lock(&g.mu);
	atomic_store(&g.stop, 1);
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	pthread_join(syncer, NULL);
	pthread_join(retirer, NULL);
	if (g.sync_err || g.retire_err)
		fail_msg("wal_sync: %s, wal_retire: %s", sp_strerror(g.sync_err),
			 sp_strerror(g.retire_err));
	print_message("%ld syncs, %ld retires, %zu segments\n", atomic_load(&g.syncs),
		      atomic_load(&g.retires), nstarts);
	assert_int_equal(wal_total_bytes(g.w), segments_bytes(f->wal));
	assert_int_equal(wal_sync(g.w), 0);
	close_wal(g.w);

	/* What is left is every record from the start of some segment on. */
	struct wal *w = open_wal(f->wal);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	assert_int_equal(rs.torn_bytes, 0);
	assert_true(c.got.n > 0);
	uint32_t first = (uint32_t)strtoul((const char *)c.got.ops[0].key + 3, NULL, 10);
	int at_start = 0;
	for (size_t i = 0; i < nstarts; i++)
		at_start |= starts[i] == first;
	if (!at_start)
		fail_msg("the replay starts at record %" PRIu32 ", not at a segment start", first);
	assert_int_equal(c.got.n, N - first);
	for (size_t i = 0; i < c.got.n; i++) {
		char key[16];
		snprintf(key, sizeof(key), "seq%08" PRIu32, first + (uint32_t)i);
		assert_int_equal(c.got.ops[i].klen, 11);
		assert_memory_equal(c.got.ops[i].key, key, 11);
	}
	close_wal(w);
	list_free(&c.got);
	pthread_mutex_destroy(&g.mu);
	pthread_cond_destroy(&g.cv);
}

/* ---- failed writes ---- */

/* With RLIMIT_FSIZE just above the segment, write(2) stores part of the
 * record and then fails with EFBIG (SIGXFSZ ignored): wal_append must cut
 * the partial record away, and the log must go on once writes work again.
 * A failed rotation keeps the old active segment. */
static void test_append_failure_leaves_no_partial_record(void **state)
{
	struct fixture *f = *state;
	struct wal *w = open_wal(f->wal);
	struct xrec recs[8];
	memset(recs, 0, sizeof(recs));
	for (int i = 0; i < 8; i++) {
		char k[16];
		int kn = snprintf(k, sizeof(k), "k%d", i);
		add_put(&recs[i], k, (size_t)kn, "value", 5, 0, 0, 0);
	}
	for (int i = 0; i < 5; i++)
		append(w, &recs[i]);
	uint64_t size0 = wal_active_bytes(w);
	char seg1[160];
	seg_path(seg1, sizeof(seg1), f->wal, 1);
	assert_int_equal(file_size(seg1), (long long)size0);

	struct xrec big = {0};
	unsigned char v[1000];
	memset(v, 'b', sizeof(v));
	add_put(&big, "big", 3, v, sizeof(v), 0, 0, 0);

	struct sigaction ign = {.sa_handler = SIG_IGN}, old_sa;
	assert_int_equal(sigaction(SIGXFSZ, &ign, &old_sa), 0);
	struct rlimit saved, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);

	/* Room for 100 bytes of the record: a partial write, then EFBIG.
	 * Then no room at all. Limits are put back before asserting. */
	static const uint64_t room[] = {100, 0};
	for (int k = 0; k < 2; k++) {
		emit(w, &big);
		lim = saved;
		lim.rlim_cur = size0 + room[k];
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
		int err = wal_append(w);
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
		assert_int_equal(err, -EFBIG);
		assert_int_equal(wal_pending(w), 0);
		assert_int_equal(wal_active_bytes(w), size0);
		assert_int_equal(file_size(seg1), (long long)size0);
	}

	/* A rotation whose new segment cannot take its header. */
	lim = saved;
	lim.rlim_cur = 4;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int err = wal_rotate(w);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);
	assert_int_equal(err, -EFBIG);
	uint64_t ids[4];
	assert_int_equal(list_segments(f->wal, ids, 4), 1);

	for (int i = 5; i < 8; i++)
		append(w, &recs[i]);
	assert_int_equal(wal_total_bytes(w), (uint64_t)file_size(seg1));
	assert_int_equal(wal_sync(w), 0);
	close_wal(w);

	w = open_wal(f->wal);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	assert_int_equal(rs.torn_bytes, 0);
	assert_int_equal(rs.records, 8);
	struct oplist want = {0};
	for (int i = 0; i < 8; i++)
		list_add_rec(&want, &recs[i]);
	expect_ops(&c.got, &want);
	close_wal(w);
	list_free(&c.got);
	list_free(&want);
	rec_free(&big);
	for (int i = 0; i < 8; i++)
		rec_free(&recs[i]);
}

/* ---- property: a random life of the log against a model ---- */

/* The model: the segments on disk, oldest first, each with its records. */
struct mseg {
	uint64_t id;
	struct xrec *recs;
	size_t n;
};

struct mlog {
	struct mseg segs[512];
	size_t nsegs;
	uint64_t last_id; /* the newest segment ever created: ids never go back */
};

static void mseg_free(struct mseg *s)
{
	for (size_t i = 0; i < s->n; i++)
		rec_free(&s->recs[i]);
	free(s->recs);
	s->recs = NULL;
	s->n = 0;
}

static uint64_t mseg_bytes(const struct mseg *s)
{
	uint64_t n = MAGIC_LEN;
	for (size_t i = 0; i < s->n; i++)
		n += rec_size(&s->recs[i]);
	return n;
}

/* mlog_cut keeps `keep` records of segment i and drops every later one. */
static void mlog_cut(struct mlog *m, size_t i, size_t keep)
{
	struct mseg *s = &m->segs[i];
	for (size_t j = keep; j < s->n; j++)
		rec_free(&s->recs[j]);
	s->n = keep;
	for (size_t j = i + 1; j < m->nsegs; j++)
		mseg_free(&m->segs[j]);
	m->nsegs = i + 1;
}

static void mlog_new_segment(struct mlog *m)
{
	assert_true(m->nsegs < sizeof(m->segs) / sizeof(m->segs[0]));
	m->segs[m->nsegs++] = (struct mseg){.id = ++m->last_id};
}

/* reopen closes w, opens the log again and checks the replay against the
 * model; the open adds a new active segment to it. */
static struct wal *reopen(struct fixture *f, struct wal *w, struct mlog *m, long step, int *cut)
{
	close_wal(w);
	w = open_wal(f->wal);
	struct collect c = {0};
	struct wal_replay_stats rs;
	replay_into(w, &c, &rs, 0);
	struct oplist want = {0};
	uint64_t records = 0;
	for (size_t i = 0; i < m->nsegs; i++) {
		for (size_t j = 0; j < m->segs[i].n; j++)
			list_add_rec(&want, &m->segs[i].recs[j]);
		records += m->segs[i].n;
	}
	if (rs.records != records || rs.segments != m->nsegs)
		fail_msg("step %ld: replayed %" PRIu64 " records from %" PRIu64
			 " segments, want %" PRIu64 " from %zu (seed %" PRIu64 ")",
			 step, rs.records, rs.segments, records, m->nsegs, base_seed);
	expect_ops(&c.got, &want);
	list_free(&c.got);
	list_free(&want);
	*cut = rs.torn_bytes != 0;
	mlog_new_segment(m);
	return w;
}

static void test_property_random(void **state)
{
	struct fixture *f = *state;
	seed_test("property_random");
	struct mlog *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	struct wal *w = open_wal(f->wal);
	mlog_new_segment(m);
	int cut = 0; /* a cut since open: sizes are checked separately */
	long steps = 1500;
	for (long step = 0; step < steps; step++) {
		unsigned op = (unsigned)rnd_below(1000);
		struct mseg *act = &m->segs[m->nsegs - 1];
		if (op < 700) { /* append */
			struct xrec r = {0};
			random_rec(&r, 6, rnd_below(400) == 0);
			append(w, &r);
			act->recs = realloc(act->recs, (act->n + 1) * sizeof(*act->recs));
			assert_non_null(act->recs);
			act->recs[act->n++] = r;
		} else if (op < 740) { /* buffered, then discarded */
			struct xrec r = {0};
			random_rec(&r, 3, 0);
			emit(w, &r);
			wal_discard(w);
			rec_free(&r);
		} else if (op < 790) {
			assert_int_equal(wal_rotate(w), 0);
			mlog_new_segment(m);
		} else if (op < 830) {
			assert_int_equal(wal_retire(w), 0);
			for (size_t i = 0; i + 1 < m->nsegs; i++)
				mseg_free(&m->segs[i]);
			m->segs[0] = m->segs[m->nsegs - 1];
			m->nsegs = 1;
		} else if (op < 860) {
			assert_int_equal(wal_sync(w), 0);
		} else if (op < 920) { /* clean reopen */
			w = reopen(f, w, m, step, &cut);
		} else if (op < 970) { /* a torn tail: cut a segment at a random byte */
			close_wal(w);
			w = NULL;
			size_t i = (size_t)(m->nsegs - 1 - rnd_below(rnd_below(3) ? 1 : m->nsegs));
			struct mseg *s = &m->segs[i];
			uint64_t bytes = mseg_bytes(s);
			/* Never into the header: see test_header_cut_then_append_survives. */
			uint64_t len = MAGIC_LEN + rnd_below(bytes - MAGIC_LEN + 1);
			char path[160];
			seg_path(path, sizeof(path), f->wal, s->id);
			assert_int_equal(truncate(path, (off_t)len), 0);
			size_t keep = 0;
			uint64_t end = MAGIC_LEN;
			while (keep < s->n && end + rec_size(&s->recs[keep]) <= len)
				end += rec_size(&s->recs[keep++]);
			if (len == end) {
				/* A cut between records is not detectable: the
				 * segment just holds fewer of them. */
				for (size_t j = keep; j < s->n; j++)
					rec_free(&s->recs[j]);
				s->n = keep;
			} else {
				mlog_cut(m, i, keep);
			}
			w = reopen(f, NULL, m, step, &cut);
		} else { /* a flipped byte in a random record */
			size_t i = (size_t)rnd_below(m->nsegs);
			struct mseg *s = &m->segs[i];
			if (s->n == 0 || i + 1 == m->nsegs)
				continue; /* only closed segments are stable on disk */
			size_t j = (size_t)rnd_below(s->n);
			uint64_t off = MAGIC_LEN;
			for (size_t k = 0; k < j; k++)
				off += rec_size(&s->recs[k]);
			off += rnd_below(rec_size(&s->recs[j]));
			char path[160];
			seg_path(path, sizeof(path), f->wal, s->id);
			int fd = open(path, O_RDWR | O_CLOEXEC);
			assert_true(fd >= 0);
			unsigned char byte;
			assert_int_equal(pread(fd, &byte, 1, (off_t)off), 1);
			byte ^= (unsigned char)(1u << rnd_below(8));
			assert_int_equal(pwrite(fd, &byte, 1, (off_t)off), 1);
			close(fd);
			close_wal(w);
			mlog_cut(m, i, j);
			w = reopen(f, NULL, m, step, &cut);
		}
		act = &m->segs[m->nsegs - 1];
		if (wal_active_bytes(w) != mseg_bytes(act))
			fail_msg("step %ld: wal_active_bytes %" PRIu64 ", model %" PRIu64
				 " (seed %" PRIu64 ")",
				 step, wal_active_bytes(w), mseg_bytes(act), base_seed);
		if (!cut && wal_total_bytes(w) != segments_bytes(f->wal))
			fail_msg("step %ld: wal_total_bytes %" PRIu64 ", files %" PRIu64
				 " (seed %" PRIu64 ")",
				 step, wal_total_bytes(w), segments_bytes(f->wal), base_seed);
	}
	w = reopen(f, w, m, steps, &cut);
	close_wal(w);
	for (size_t i = 0; i < m->nsegs; i++)
		mseg_free(&m->segs[i]);
	free(m);
}

int main(void)
{
	/* The log's warnings are expected where tests plant damage; tests that
	 * check them capture them. */
	sp_log_setup(SP_LOG_ERROR, NULL);
	base_seed = tu_seed();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_pending_discard, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_torn_tail_big_record, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_corrupt_record_drops_rest, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_valid_crc_bad_payload, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_callback_stops_replay, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_zero_header_ends_replay, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_segment_header, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_header_cut_then_append_survives, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_open_dirs, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_stray_files_ignored, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_segment_name_round_trip, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_rotate_retire, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_sizes_after_cut, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_concurrent_sync_retire, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_append_failure_leaves_no_partial_record, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_property_random, setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
