/*
 * Tests for src/engine/strong/raft_log: the durable Raft log.
 *
 * The log's contract is what a reopen hands back (raft_log_load), so most
 * tests keep a model of what was written (struct model: entries by index,
 * hard state, snapshot marker) and compare every reload with it. The
 * on-disk format is checked with an encoder and a parser of our own,
 * written from the header's description: hand-made segments must open (or
 * be refused) as documented, and damage is planted by hand: files cut at
 * every byte of the last record, flipped bytes, records whose checksum
 * holds but whose payload is wrong, missing segments. Threads and a forked
 * child killed with SIGKILL exercise group commit and crash recovery.
 *
 * Every test runs in a fresh directory under /tmp that the teardown
 * removes. Randomised tests derive their numbers from one seed printed at
 * the start; SPECTRA_SEED=<n> replays it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../lib/testutil.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "engine/strong/raft_log.h"

#define MAGIC	  "SPRLOG1\n"
#define MAGIC_LEN 8u
#define REC_HDR	  8u

/* ---- fixture ---- */

struct fixture {
	char dir[64];  /* the test's temporary directory */
	char rlog[96]; /* <dir>/rlog: the log directory (created by raft_log_open) */
};

/* Logs a test opened and has not closed, and a child still running: the
 * teardown releases them when a test failed halfway, so leak reports
 * point at real leaks. */
static struct raft_log *held[8];
static pid_t child_pid;

static void free_models(void);

static int setup_dir(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/spectra-rlog-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->rlog, sizeof(f->rlog), "%s/rlog", f->dir);
	*state = f;
	return 0;
}

static int teardown_dir(void **state)
{
	struct fixture *f = *state;
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
		raft_log_close(held[i]);
		held[i] = NULL;
	}
	free_models();
	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
		child_pid = 0;
	}
	tu_remove_tree(f->dir);
	free(f);
	return 0;
}

static struct raft_log *open_log(const char *dir)
{
	struct raft_log *l = NULL;
	int err = raft_log_open(&l, dir);
	if (err)
		fail_msg("raft_log_open(%s): %s", dir, sp_strerror(err));
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
		if (!held[i]) {
			held[i] = l;
			return l;
		}
	fail_msg("too many open logs");
	return NULL;
}

static void close_log(struct raft_log *l)
{
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
		if (held[i] == l)
			held[i] = NULL;
	raft_log_close(l);
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

/* ---- files ---- */

static void seg_path(char *out, size_t n, const char *dir, uint64_t id)
{
	snprintf(out, n, "%s/rlog-%016" PRIx64 ".seg", dir, id);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* list_segments fills ids (up to max, sorted) and returns how many
 * segment files dir holds. */
static size_t list_segments(const char *dir, uint64_t *ids, size_t max)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		unsigned long long id;
		char tail[8];
		if (strlen(e->d_name) == 25 &&
		    sscanf(e->d_name, "rlog-%16llx%4s", &id, tail) == 2 &&
		    strcmp(tail, ".seg") == 0) {
			if (n < max)
				ids[n] = id;
			n++;
		}
	}
	closedir(d);
	qsort(ids, n < max ? n : max, sizeof(*ids), cmp_u64);
	return n;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static uint64_t dir_bytes(const char *dir)
{
	uint64_t ids[4096], sum = 0;
	size_t n = list_segments(dir, ids, 4096);
	assert_true(n <= 4096);
	for (size_t i = 0; i < n; i++) {
		char p[160];
		seg_path(p, sizeof(p), dir, ids[i]);
		sum += file_size(p);
	}
	return sum;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	rewind(fp);
	uint8_t *b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return b;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	if (n)
		assert_int_equal(fwrite(p, 1, n, fp), n);
	fclose(fp);
}

/* ---- our own encoder of the documented format ---- */

static void le32(struct sp_buf *b, uint32_t v)
{
	uint8_t p[4];
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	sp_buf_append(b, p, 4);
}

static void le64(struct sp_buf *b, uint64_t v)
{
	uint8_t p[8];
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	sp_buf_append(b, p, 8);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void op_u8(struct sp_buf *b, uint8_t v)
{
	sp_buf_append(b, &v, 1);
}

static void op_truncate(struct sp_buf *b, uint64_t after)
{
	op_u8(b, 'T');
	le64(b, after);
}

static void op_entry(struct sp_buf *b, uint64_t term, uint64_t index, uint8_t type,
		     const void *data, uint32_t len)
{
	op_u8(b, 'E');
	le64(b, term);
	le64(b, index);
	op_u8(b, type);
	le32(b, len);
	sp_buf_append(b, data, len);
}

static void op_hs(struct sp_buf *b, uint64_t term, uint64_t vote, uint64_t commit)
{
	op_u8(b, 'H');
	le64(b, term);
	le64(b, vote);
	le64(b, commit);
}

static void op_snap(struct sp_buf *b, uint64_t index, uint64_t term, uint32_t n,
		    const uint64_t *ids, const uint8_t *roles)
{
	op_u8(b, 'S');
	le64(b, index);
	le64(b, term);
	le32(b, n);
	for (uint32_t i = 0; i < n; i++) {
		le64(b, ids[i]);
		op_u8(b, roles[i]);
	}
}

static void op_base(struct sp_buf *b, uint64_t last)
{
	op_u8(b, 'B');
	le64(b, last);
}

/* add_record frames payload as one record at the end of seg. */
static void add_record(struct sp_buf *seg, const struct sp_buf *payload)
{
	le32(seg, (uint32_t)payload->len);
	le32(seg, (uint32_t)crc32(0L, (const Bytef *)sp_buf_begin(payload), (uInt)payload->len));
	sp_buf_append(seg, sp_buf_begin(payload), payload->len);
}

/* A hand-made segment: the magic, then records added one payload at a time. */
struct handseg {
	struct sp_buf file, payload;
};

static void hs_begin(struct handseg *h)
{
	sp_buf_init(&h->file);
	sp_buf_init(&h->payload);
	sp_buf_append(&h->file, MAGIC, MAGIC_LEN);
}

/* hs_end_record closes the payload being built as a record. */
static void hs_end_record(struct handseg *h)
{
	add_record(&h->file, &h->payload);
	sp_buf_clear(&h->payload);
}

static void hs_save(struct handseg *h, const char *dir, uint64_t id)
{
	char p[160];
	mkdir(dir, 0700);
	seg_path(p, sizeof(p), dir, id);
	write_file(p, sp_buf_begin(&h->file), h->file.len);
	sp_buf_free(&h->file);
	sp_buf_free(&h->payload);
}

/* ---- our own parser: the records of a segment file ---- */

struct prec {
	size_t off, len;     /* record start and payload length */
	uint64_t last_entry; /* index of the last ENTRY op in it; 0 when none */
};

static size_t parse_records(const uint8_t *b, size_t n, struct prec *out, size_t max)
{
	assert_true(n >= MAGIC_LEN);
	assert_memory_equal(b, MAGIC, MAGIC_LEN);
	size_t pos = MAGIC_LEN, k = 0;
	while (pos + REC_HDR <= n) {
		uint32_t len = get32(b + pos);
		assert_true(pos + REC_HDR + len <= n);
		struct prec r = {pos, len, 0};
		const uint8_t *p = b + pos + REC_HDR, *end = p + len;
		while (p < end) {
			switch (*p) {
			case 'T':
			case 'B':
				p += 9;
				break;
			case 'H':
				p += 25;
				break;
			case 'E':
				r.last_entry = get64(p + 9);
				p += 22 + get32(p + 18);
				break;
			case 'S':
				p += 21 + 9 * (size_t)get32(p + 17);
				break;
			default:
				fail_msg("unknown op %c", *p);
			}
		}
		assert_true(p == end);
		if (k < max)
			out[k] = r;
		k++;
		pos += REC_HDR + len;
	}
	assert_int_equal(pos, n);
	return k;
}

/* base_last returns the 'B' value of the base record opening segment id. */
static uint64_t base_last(const char *dir, uint64_t id)
{
	char p[160];
	seg_path(p, sizeof(p), dir, id);
	size_t n;
	uint8_t *b = read_file(p, &n);
	struct prec recs[1];
	assert_true(parse_records(b, n, recs, 1) >= 1);
	const uint8_t *q = b + recs[0].off + REC_HDR, *end = q + recs[0].len;
	uint64_t last = UINT64_MAX;
	while (q < end) {
		if (*q == 'B')
			last = get64(q + 1);
		q += *q == 'H' ? 25 : *q == 'S' ? 21 + 9 * (size_t)get32(q + 17) : 9;
	}
	free(b);
	if (last == UINT64_MAX)
		fail_msg("segment %" PRIu64 " opens with no base", id);
	return last;
}

/* ---- the model ---- */

struct xentry {
	uint64_t term;
	uint8_t type;
	uint32_t len;
	uint8_t *data;
};

struct model {
	struct xentry *e; /* e[i] is index i + 1; meaningful after snap.index */
	uint64_t last, cap;
	struct raft_hard_state hs;
	bool has_snap;
	struct raft_snapshot_meta snap;
	uint64_t term; /* term of the next entries */
};

static void model_free(struct model *m)
{
	for (uint64_t i = 0; i < m->last; i++)
		free(m->e[i].data);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

static void model_grow(struct model *m, uint64_t last)
{
	if (last > m->cap) {
		uint64_t cap = m->cap ? m->cap : 64;
		while (cap < last)
			cap *= 2;
		m->e = realloc(m->e, cap * sizeof(*m->e));
		assert_non_null(m->e);
		memset(m->e + m->cap, 0, (cap - m->cap) * sizeof(*m->e));
		m->cap = cap;
	}
}

/* model_append buffers n random entries into l and the model. */
static void model_append(struct model *m, struct raft_log *l, size_t n, uint32_t maxlen)
{
	struct raft_entry *es = calloc(n ? n : 1, sizeof(*es));
	assert_non_null(es);
	if (m->term == 0)
		m->term = 1;
	model_grow(m, m->last + n);
	for (size_t i = 0; i < n; i++) {
		uint64_t index = m->last + 1 + i;
		struct xentry *x = &m->e[index - 1];
		free(x->data);
		x->term = m->term;
		x->type = (uint8_t)(1 + rnd_below(3));
		x->len = (uint32_t)rnd_below(maxlen + 1);
		x->data = malloc(x->len ? x->len : 1);
		assert_non_null(x->data);
		for (uint32_t k = 0; k < x->len; k++)
			x->data[k] = (uint8_t)rnd();
		es[i] =
		    (struct raft_entry){x->term, index, x->type, x->len, x->len ? x->data : NULL};
	}
	raft_log_append(l, es, n);
	m->last += n;
	free(es);
}

static void model_truncate(struct model *m, struct raft_log *l, uint64_t after)
{
	raft_log_truncate_after(l, after);
	while (m->last > after) {
		free(m->e[m->last - 1].data);
		m->e[m->last - 1].data = NULL;
		m->last--;
	}
}

static void model_hs(struct model *m, struct raft_log *l, uint64_t term, uint64_t vote,
		     uint64_t commit)
{
	m->hs = (struct raft_hard_state){term, vote, commit};
	raft_log_set_hard_state(l, &m->hs);
}

static void test_conf(struct raft_conf *c, uint32_t n, uint64_t salt)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	for (uint32_t i = 0; i < n; i++) {
		c->members[i].id = salt * 100 + i + 1;
		c->members[i].role = (i % 3 == 2) ? RAFT_LEARNER : RAFT_VOTER;
	}
}

static void model_snapshot(struct model *m, struct raft_log *l, uint64_t index, uint64_t term)
{
	struct raft_snapshot_meta meta;
	memset(&meta, 0, sizeof(meta));
	meta.index = index;
	meta.term = term;
	test_conf(&meta.conf, (uint32_t)(1 + index % RAFT_MAX_MEMBERS), index);
	raft_log_set_snapshot(l, &meta);
	m->has_snap = true;
	m->snap = meta;
	if (index > m->last) {
		model_grow(m, index);
		m->last = index;
	}
}

static void expect_conf(const struct raft_conf *got, const struct raft_conf *want)
{
	assert_int_equal(got->n, want->n);
	for (uint32_t i = 0; i < want->n; i++) {
		assert_int_equal(got->members[i].id, want->members[i].id);
		assert_int_equal(got->members[i].role, want->members[i].role);
	}
}

/* model_expect compares what l recovered with the model. */
static void model_expect(const struct model *m, struct raft_log *l, const char *when)
{
	struct raft_restore rs;
	memset(&rs, 0, sizeof(rs));
	struct raft_log_recovery st;
	int err = raft_log_load(l, &rs, &st);
	if (err)
		fail_msg("%s: load: %s", when, sp_strerror(err));
	if (rs.hs.term != m->hs.term || rs.hs.vote != m->hs.vote || rs.hs.commit != m->hs.commit)
		fail_msg("%s: hard state %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", want %" PRIu64
			 "/%" PRIu64 "/%" PRIu64 " (seed %" PRIu64 ")",
			 when, rs.hs.term, rs.hs.vote, rs.hs.commit, m->hs.term, m->hs.vote,
			 m->hs.commit, base_seed);
	assert_int_equal(rs.has_snapshot, m->has_snap);
	uint64_t first = 1;
	if (m->has_snap) {
		assert_int_equal(rs.snap.index, m->snap.index);
		assert_int_equal(rs.snap.term, m->snap.term);
		expect_conf(&rs.snap.conf, &m->snap.conf);
		first = m->snap.index + 1;
	}
	uint64_t want = m->last >= first ? m->last - first + 1 : 0;
	if (rs.n_entries != want)
		fail_msg("%s: %zu entries, want %" PRIu64 " (%" PRIu64 "..%" PRIu64
			 ") (seed %" PRIu64 ")",
			 when, rs.n_entries, want, first, m->last, base_seed);
	for (size_t i = 0; i < rs.n_entries; i++) {
		const struct raft_entry *g = &rs.entries[i];
		const struct xentry *x = &m->e[first - 1 + i];
		if (g->index != first + i || g->term != x->term || g->type != x->type ||
		    g->len != x->len || (x->len && memcmp(g->data, x->data, x->len) != 0))
			fail_msg("%s: entry %" PRIu64 " differs (seed %" PRIu64 ")", when,
				 first + i, base_seed);
	}
	assert_int_equal(raft_log_last_index(l), m->last);
}

static void must_write(struct raft_log *l)
{
	int err = raft_log_write(l);
	if (err)
		fail_msg("raft_log_write: %s", sp_strerror(err));
}

static void must_sync(struct raft_log *l)
{
	int err = raft_log_sync(l);
	if (err)
		fail_msg("raft_log_sync: %s", sp_strerror(err));
}

static struct raft_log *reopen(struct raft_log *l, const char *dir)
{
	close_log(l);
	return open_log(dir);
}

/* Models live here so the teardown frees them when a test fails halfway. */
static struct model models[2];
static bool model_used[2];

static struct model *new_model(void)
{
	for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
		if (!model_used[i]) {
			model_used[i] = true;
			memset(&models[i], 0, sizeof(models[i]));
			return &models[i];
		}
	fail_msg("too many models");
	return NULL;
}

/* drop_model frees m and gives its slot back. */
static void drop_model(struct model *m)
{
	model_free(m);
	model_used[m - models] = false;
}

static void free_models(void)
{
	for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
		model_free(&models[i]);
		model_used[i] = false;
	}
}

/* ---- basics ---- */

/* A missing directory is created and the new log is empty; each open adds
 * a segment opening with a base record; the recovered entries are gone
 * after the first buffering call. */
static void test_open_empty(void **state)
{
	struct fixture *f = *state;
	struct raft_log *l = open_log(f->rlog);
	struct raft_restore rs;
	memset(&rs, 0, sizeof(rs));
	rs.bootstrap.n = 7; /* not touched */
	struct raft_log_recovery st;
	assert_int_equal(raft_log_load(l, &rs, &st), 0);
	assert_int_equal(rs.hs.term, 0);
	assert_int_equal(rs.hs.vote, 0);
	assert_false(rs.has_snapshot);
	assert_int_equal(rs.n_entries, 0);
	assert_int_equal(rs.bootstrap.n, 7);
	assert_int_equal(st.segments, 0);
	assert_int_equal(st.torn_bytes, 0);
	assert_int_equal(raft_log_last_index(l), 0);
	uint64_t ids[4];
	assert_int_equal(list_segments(f->rlog, ids, 4), 1);
	assert_int_equal(ids[0], 1);
	assert_int_equal(raft_log_bytes(l), dir_bytes(f->rlog));

	/* The segment holds the magic and one base record: H + B(0). */
	char p[160];
	seg_path(p, sizeof(p), f->rlog, 1);
	size_t n;
	uint8_t *b = read_file(p, &n);
	assert_int_equal(n, MAGIC_LEN + REC_HDR + 25 + 9);
	assert_memory_equal(b, MAGIC, MAGIC_LEN);
	assert_int_equal(b[MAGIC_LEN + REC_HDR], 'H');
	assert_int_equal(b[MAGIC_LEN + REC_HDR + 25], 'B');
	free(b);

	/* Nothing buffered: writing is a no-op. */
	assert_int_equal(raft_log_write(l), 0);
	assert_int_equal(raft_log_load(l, &rs, NULL), SP_ERR_INVAL);
	assert_int_equal(raft_log_bytes(l), dir_bytes(f->rlog));

	l = reopen(l, f->rlog);
	assert_int_equal(raft_log_load(l, &rs, &st), 0);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.records, 1);
	assert_int_equal(list_segments(f->rlog, ids, 4), 2);
	assert_int_equal(ids[1], 2);
	close_log(l);

	/* A path that is a file is refused with its errno. */
	char file[128];
	snprintf(file, sizeof(file), "%s/plain", f->dir);
	write_file(file, "x", 1);
	struct raft_log *bad = NULL;
	assert_int_equal(raft_log_open(&bad, file), -ENOTDIR);
	assert_null(bad);
}

/* Entries, hard states and reopens: what was written comes back. */
static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	seed_test("round_trip");
	struct model *m = new_model();
	struct raft_log *l = open_log(f->rlog);
	for (int round = 0; round < 3; round++) {
		for (int b = 0; b < 40; b++) {
			model_append(m, l, 1 + rnd_below(50), 300);
			if (b % 7 == 0)
				m->term++;
			if (rnd_below(2))
				model_hs(m, l, m->term, rnd_below(5), m->last / 2);
			must_write(l);
			if (b % 5 == 0)
				must_sync(l);
		}
		/* One entry alone, with no data. */
		struct raft_entry e = {m->term, m->last + 1, RAFT_ENTRY_NOOP, 0, NULL};
		raft_log_append(l, &e, 1);
		model_grow(m, m->last + 1);
		m->e[m->last] = (struct xentry){m->term, RAFT_ENTRY_NOOP, 0, NULL};
		m->last++;
		must_write(l);
		l = reopen(l, f->rlog);
		model_expect(m, l, "after reopen");
		assert_int_equal(raft_log_bytes(l), dir_bytes(f->rlog));
	}
	close_log(l);
	drop_model(m);
}

/* The follower conflict case (§3.5): a suffix is replaced by entries of a
 * later term, in the same record and across records and reopens. */
static void test_truncate_then_append(void **state)
{
	struct fixture *f = *state;
	seed_test("truncate_then_append");
	struct model *m = new_model();
	struct raft_log *l = open_log(f->rlog);
	model_append(m, l, 10, 40);
	must_write(l);

	/* Truncate and append in one record. */
	m->term = 2;
	model_truncate(m, l, 6);
	model_append(m, l, 3, 40);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "truncate+append in one record");
	assert_int_equal(m->last, 9);
	assert_int_equal(m->e[6].term, 2);

	/* Truncation alone, then appends in the next record. */
	model_truncate(m, l, 4);
	must_write(l);
	m->term = 3;
	model_append(m, l, 5, 40);
	must_write(l);
	/* Truncating past the end changes nothing. */
	model_truncate(m, l, 100);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "truncation in its own record");

	/* Truncation across a reopen, down to an empty log. */
	model_truncate(m, l, 0);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "truncated to nothing");
	m->term = 4;
	model_append(m, l, 3, 40);
	must_write(l);
	/* Append, truncate within the same batch, append again. */
	model_append(m, l, 4, 40);
	model_truncate(m, l, 5);
	m->term = 5;
	model_append(m, l, 2, 40);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "within one batch");
	assert_int_equal(m->last, 7);
	close_log(l);
	drop_model(m);
}

/* The last hard state written wins: within a record, across records,
 * rotations and reopens. */
static void test_hard_state_last_wins(void **state)
{
	struct fixture *f = *state;
	seed_test("hard_state_last_wins");
	struct model *m = new_model();
	struct raft_log *l = open_log(f->rlog);
	model_hs(m, l, 1, 1, 0);
	model_hs(m, l, 2, 3, 0);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "two in one record");

	raft_log_set_segment_size(l, 512);
	for (uint64_t t = 3; t < 60; t++) {
		model_append(m, l, 1 + rnd_below(3), 30);
		model_hs(m, l, t, t % 3, m->last);
		must_write(l);
	}
	uint64_t ids[64];
	assert_true(list_segments(f->rlog, ids, 64) > 4); /* rotated a few times */
	l = reopen(l, f->rlog);
	model_expect(m, l, "across rotations");

	/* A hard state alone in the last record, after a reopen. */
	model_hs(m, l, 99, 0, 3);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "alone after reopen");
	close_log(l);
	drop_model(m);
}

/* ---- snapshots and compaction ---- */

/* A snapshot marker drops the entries it covers and keeps the rest; one
 * past the end leaves the log empty after it; followed by a truncation it
 * replaces the log. */
static void test_snapshot_marker(void **state)
{
	struct fixture *f = *state;
	seed_test("snapshot_marker");
	struct model *m = new_model();
	struct raft_log *l = open_log(f->rlog);
	model_append(m, l, 20, 50);
	model_snapshot(m, l, 15, 1);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "suffix kept");

	/* The same marker again (as a base repeats it) is fine. */
	model_snapshot(m, l, 15, 1);
	must_write(l);
	model_append(m, l, 3, 50);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "marker repeated");

	/* A received snapshot past the end: the log is empty after it. */
	model_snapshot(m, l, 50, 4);
	must_write(l);
	assert_int_equal(raft_log_last_index(l), 50);
	m->term = 4;
	model_append(m, l, 5, 50);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "past the end");

	/* Replacing the log: marker then truncation at its index. */
	model_snapshot(m, l, 52, 4);
	model_truncate(m, l, 52);
	m->term = 5;
	model_append(m, l, 2, 50);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "replaced");
	assert_int_equal(m->last, 54);
	close_log(l);
	drop_model(m);
}

/* Compaction deletes only the segments a durable marker covers; reloads
 * yield the hard state, the marker and the entries after it, and the log
 * goes on (and compacts again) after a reopen. */
static void test_snapshot_compaction(void **state)
{
	struct fixture *f = *state;
	seed_test("snapshot_compaction");
	struct model *m = new_model();
	struct raft_log *l = open_log(f->rlog);
	raft_log_set_segment_size(l, 4096);
	while (m->last < 2000) {
		model_append(m, l, 10, 150);
		model_hs(m, l, m->term, 1, m->last - 5);
		must_write(l);
		if (m->last % 500 == 0)
			m->term++;
	}
	uint64_t ids[512];
	size_t before = list_segments(f->rlog, ids, 512);
	assert_true(before > 20);

	/* Nothing goes while no marker is durable. */
	must_sync(l);
	assert_int_equal(raft_log_compact(l), 0);
	assert_int_equal(list_segments(f->rlog, ids, 512), before);

	model_snapshot(m, l, 1500, m->e[1499].term);
	must_write(l);
	before = list_segments(f->rlog, ids, 512); /* the write may have rotated */
	assert_int_equal(raft_log_compact(l), 0);  /* written, not yet synced */
	assert_int_equal(list_segments(f->rlog, ids, 512), before);
	must_sync(l);
	assert_int_equal(raft_log_compact(l), 0);
	size_t after = list_segments(f->rlog, ids, 512);
	assert_true(after < before);
	assert_true(ids[0] > 1);
	assert_int_equal(raft_log_bytes(l), dir_bytes(f->rlog));
	/* Every segment whose successor's base is at or before 1500 went;
	 * the oldest left opens with a base at or before it. */
	assert_true(base_last(f->rlog, ids[0]) <= 1500);
	assert_true(base_last(f->rlog, ids[1]) > 1500);
	uint64_t first_kept = ids[0];

	l = reopen(l, f->rlog);
	model_expect(m, l, "after compaction");
	raft_log_set_segment_size(l, 4096);

	/* Keep going: more entries, a later marker, compaction after a
	 * reopen (the bases were read back at open). */
	while (m->last < 3000) {
		model_append(m, l, 10, 150);
		must_write(l);
	}
	model_snapshot(m, l, 2900, m->e[2899].term);
	model_hs(m, l, m->term + 1, 2, 2900);
	m->term++;
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "second marker");
	assert_int_equal(raft_log_compact(l), 0); /* synced at open */
	size_t third = list_segments(f->rlog, ids, 512);
	assert_true(third >= 2);
	assert_true(ids[0] > first_kept);
	/* Exactly the rule: the oldest segment left could not go, because
	 * the base after it lies beyond the snapshot. */
	assert_true(base_last(f->rlog, ids[1]) > 2900);
	l = reopen(l, f->rlog);
	model_expect(m, l, "second compaction");
	assert_int_equal(raft_log_bytes(l), dir_bytes(f->rlog));
	close_log(l);
	drop_model(m);
}

/* Buffering checks each operation; a spoiled batch writes nothing, and
 * the log takes the right batch afterwards. */
static void test_write_validation(void **state)
{
	struct fixture *f = *state;
	seed_test("write_validation");
	struct model *m = new_model();
	struct raft_log *l = open_log(f->rlog);
	model_append(m, l, 5, 20);
	model_snapshot(m, l, 3, 1);
	must_write(l);
	uint64_t bytes = raft_log_bytes(l);
	FILE *cap = tu_log_capture_begin(SP_LOG_ERROR);

	struct raft_entry e = {1, 7, RAFT_ENTRY_NORMAL, 0, NULL}; /* a gap: 6 is next */
	raft_log_append(l, &e, 1);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);
	e = (struct raft_entry){1, 5, RAFT_ENTRY_NORMAL, 0, NULL}; /* overlap */
	raft_log_append(l, &e, 1);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);
	e = (struct raft_entry){0, 6, RAFT_ENTRY_NORMAL, 0, NULL}; /* term 0 */
	raft_log_append(l, &e, 1);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);
	e = (struct raft_entry){1, 6, 9, 0, NULL}; /* unknown type */
	raft_log_append(l, &e, 1);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);
	e = (struct raft_entry){1, 6, RAFT_ENTRY_NORMAL, 4, NULL}; /* no data */
	raft_log_append(l, &e, 1);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);

	raft_log_truncate_after(l, 2); /* below the snapshot */
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);

	struct raft_snapshot_meta sm;
	memset(&sm, 0, sizeof(sm));
	sm.index = 2; /* backwards */
	sm.term = 1;
	raft_log_set_snapshot(l, &sm);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);
	sm.index = 3; /* same index, other term */
	sm.term = 2;
	raft_log_set_snapshot(l, &sm);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);
	sm.index = 0;
	sm.term = 1;
	raft_log_set_snapshot(l, &sm);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);
	sm.index = 4;
	test_conf(&sm.conf, 2, 1);
	sm.conf.members[1].id = sm.conf.members[0].id; /* duplicate id */
	raft_log_set_snapshot(l, &sm);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);
	test_conf(&sm.conf, 2, 1);
	sm.conf.members[0].role = 3;
	raft_log_set_snapshot(l, &sm);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);

	/* A good op then a bad one: the whole batch goes. */
	struct raft_hard_state hs = {9, 9, 9};
	raft_log_set_hard_state(l, &hs);
	raft_log_truncate_after(l, 1);
	assert_int_equal(raft_log_write(l), SP_ERR_INVAL);
	/* An empty append makes no record (an empty one would read as a
	 * hole a crash left). */
	raft_log_append(l, &e, 0);
	assert_int_equal(raft_log_write(l), 0);
	/* Discarded batches leave nothing either. */
	raft_log_set_hard_state(l, &hs);
	raft_log_discard(l);
	assert_int_equal(raft_log_write(l), 0);

	char *text = tu_log_capture_end(cap);
	assert_non_null(strstr(text, "refusing a batch"));
	free(text);
	assert_int_equal(raft_log_bytes(l), bytes);

	model_append(m, l, 2, 20);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "after refused batches");
	close_log(l);
	drop_model(m);
}

/* ---- damage ---- */

/* write_three_records makes a log whose active segment holds records
 * A (entries 1..5), B (6..10 and a hard state), C (11..13 and another
 * hard state), and returns C's start and end offsets in segment 1. */
static void write_three_records(const char *dir, struct model *m, size_t *c_start, size_t *c_end)
{
	struct raft_log *l = open_log(dir);
	model_append(m, l, 5, 30);
	must_write(l);
	model_append(m, l, 5, 30);
	model_hs(m, l, 1, 2, 4);
	must_write(l);
	*c_start = (size_t)raft_log_bytes(l);
	/* C stays out of the model: it is what the tests tear. */
	struct raft_entry es[3];
	uint8_t data[3][40];
	for (int i = 0; i < 3; i++) {
		memset(data[i], 0xc0 + i, sizeof(data[i]));
		es[i] = (struct raft_entry){2, 11 + (uint64_t)i, RAFT_ENTRY_NORMAL, 40, data[i]};
	}
	raft_log_append(l, es, 3);
	struct raft_hard_state hs = {2, 1, 10};
	raft_log_set_hard_state(l, &hs);
	must_write(l);
	*c_end = (size_t)raft_log_bytes(l);
	close_log(l);
}

/* A torn last record, cut at every byte: the earlier records survive, the
 * file is cut back, the cut is logged and counted, and the log goes on. */
static void test_torn_tail_every_offset(void **state)
{
	struct fixture *f = *state;
	seed_test("torn_tail_every_offset");
	struct model *m = new_model();
	size_t c_start, c_end;
	write_three_records(f->rlog, m, &c_start, &c_end);
	char p[160];
	seg_path(p, sizeof(p), f->rlog, 1);
	size_t whole_len;
	uint8_t *whole = read_file(p, &whole_len);
	assert_int_equal(whole_len, c_end);

	for (size_t cut = c_start; cut < c_end; cut++) {
		tu_remove_tree(f->rlog);
		assert_int_equal(mkdir(f->rlog, 0700), 0);
		write_file(p, whole, cut);
		FILE *cap = tu_log_capture_begin(SP_LOG_WARN);
		struct raft_log *l = open_log(f->rlog);
		char *text = tu_log_capture_end(cap);
		struct raft_log_recovery st;
		struct raft_restore rs;
		assert_int_equal(raft_log_load(l, &rs, &st), 0);
		if (st.torn_bytes != cut - c_start)
			fail_msg("cut at %zu: torn %" PRIu64 ", want %zu", cut, st.torn_bytes,
				 cut - c_start);
		assert_int_equal(st.records, 3); /* base, A, B */
		assert_int_equal(st.segments_removed, 0);
		if (cut > c_start)
			assert_non_null(strstr(text, "ends the log"));
		else
			assert_null(strstr(text, "ends the log"));
		free(text);
		model_expect(m, l, "torn tail");
		assert_int_equal(file_size(p), c_start);
		close_log(l);
	}

	/* After a cut, new records follow and survive the next open. */
	tu_remove_tree(f->rlog);
	assert_int_equal(mkdir(f->rlog, 0700), 0);
	write_file(p, whole, c_end - 3);
	struct raft_log *l = open_log(f->rlog);
	m->term = 3;
	model_append(m, l, 4, 30);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "appended after a cut");
	close_log(l);
	free(whole);
	drop_model(m);
}

/* build_segments writes batches with a small segment size until the log
 * has at least nseg segments; returns the model. */
static void build_segments(const char *dir, struct model *m, size_t nseg)
{
	struct raft_log *l = open_log(dir);
	raft_log_set_segment_size(l, 2048);
	uint64_t ids[256];
	while (list_segments(dir, ids, 256) < nseg) {
		model_append(m, l, 1 + rnd_below(6), 60);
		if (rnd_below(3) == 0)
			model_hs(m, l, m->term, 1, m->last);
		must_write(l);
	}
	close_log(l);
}

/* A flipped byte in a record in the middle of the log cuts it there: the
 * rest of that segment and every later segment go; the earlier records
 * survive. */
static void test_flipped_byte_middle(void **state)
{
	struct fixture *f = *state;
	seed_test("flipped_byte_middle");
	for (int round = 0; round < 6; round++) {
		tu_remove_tree(f->rlog);
		struct model *m = new_model();
		build_segments(f->rlog, m, 6);
		uint64_t ids[256];
		size_t nseg = list_segments(f->rlog, ids, 256);
		size_t k = 1 + (size_t)rnd_below(nseg - 2); /* neither first nor last */
		char p[160];
		seg_path(p, sizeof(p), f->rlog, ids[k]);
		size_t n;
		uint8_t *b = read_file(p, &n);
		struct prec recs[256];
		size_t nr = parse_records(b, n, recs, 256);
		assert_true(nr >= 3);
		size_t victim = nr / 2; /* past the base */

		/* What survives: every entry before the victim record. */
		uint64_t keep_last = 0;
		for (size_t s = 0; s <= k; s++) {
			char q[160];
			seg_path(q, sizeof(q), f->rlog, ids[s]);
			size_t qn;
			uint8_t *qb = read_file(q, &qn);
			struct prec qr[256];
			size_t qnr = parse_records(qb, qn, qr, 256);
			for (size_t r = 0; r < (s == k ? victim : qnr); r++)
				if (qr[r].last_entry)
					keep_last = qr[r].last_entry;
			free(qb);
		}
		uint64_t later = 0;
		for (size_t s = k + 1; s < nseg; s++) {
			char q[160];
			seg_path(q, sizeof(q), f->rlog, ids[s]);
			later += file_size(q);
		}
		size_t at = recs[victim].off + (size_t)rnd_below(REC_HDR + recs[victim].len);
		b[at] ^= (uint8_t)(1u << rnd_below(8));
		write_file(p, b, n);
		free(b);

		FILE *cap = tu_log_capture_begin(SP_LOG_WARN);
		struct raft_log *l = open_log(f->rlog);
		char *text = tu_log_capture_end(cap);
		assert_non_null(strstr(text, "ends the log"));
		free(text);
		struct raft_log_recovery st;
		struct raft_restore rs;
		assert_int_equal(raft_log_load(l, &rs, &st), 0);
		assert_int_equal(st.segments_removed, nseg - k - 1);
		assert_int_equal(st.torn_bytes, n - recs[victim].off + later);
		assert_int_equal(st.segments, k + 1);
		assert_int_equal(rs.n_entries, keep_last);
		/* The model's hard state may have come later: compare entries. */
		for (size_t i = 0; i < rs.n_entries; i++) {
			const struct xentry *x = &m->e[i];
			assert_int_equal(rs.entries[i].index, i + 1);
			assert_int_equal(rs.entries[i].term, x->term);
			assert_int_equal(rs.entries[i].len, x->len);
			if (x->len)
				assert_memory_equal(rs.entries[i].data, x->data, x->len);
		}
		assert_int_equal(file_size(p), recs[victim].off);
		uint64_t now[256];
		size_t nnow = list_segments(f->rlog, now, 256);
		assert_int_equal(nnow, k + 2); /* kept ones and the new active one */
		assert_int_equal(now[k + 1], ids[k] + 1);
		close_log(l);
		drop_model(m);
	}
}

/* A last segment whose header a crash cut short is removed. */
static void test_segment_header_torn(void **state)
{
	struct fixture *f = *state;
	seed_test("segment_header_torn");
	struct model *m = new_model();
	struct raft_log *l = open_log(f->rlog);
	model_append(m, l, 4, 10);
	must_write(l);
	close_log(l);
	char p[160];
	seg_path(p, sizeof(p), f->rlog, 2);
	write_file(p, "SPRL", 4);
	l = open_log(f->rlog);
	struct raft_log_recovery st;
	struct raft_restore rs;
	assert_int_equal(raft_log_load(l, &rs, &st), 0);
	assert_int_equal(st.torn_bytes, 4);
	assert_int_equal(st.segments_removed, 1);
	model_expect(m, l, "header torn");
	uint64_t ids[8];
	assert_int_equal(list_segments(f->rlog, ids, 8), 2);
	assert_int_equal(ids[1], 2); /* the new active segment took the id */
	close_log(l);
	drop_model(m);
}

/* expect_corrupt checks that opening dir fails with SP_ERR_CORRUPT and
 * leaves every segment file as it was. */
static void expect_corrupt(const char *dir, const char *what)
{
	uint64_t ids[64];
	size_t n = list_segments(dir, ids, 64);
	uint64_t bytes = dir_bytes(dir);
	FILE *cap = tu_log_capture_begin(SP_LOG_ERROR);
	struct raft_log *l = NULL;
	int err = raft_log_open(&l, dir);
	char *text = tu_log_capture_end(cap);
	if (err != SP_ERR_CORRUPT)
		fail_msg("%s: open returned %s, want SP_ERR_CORRUPT", what, sp_strerror(err));
	assert_null(l);
	assert_true(strstr(text, "corrupt") || strstr(text, "another format"));
	free(text);
	uint64_t now[64];
	assert_int_equal(list_segments(dir, now, 64), n);
	assert_int_equal(dir_bytes(dir), bytes);
}

/* hand_base starts a hand-made segment with a base record. */
static void hand_base(struct handseg *h, uint64_t last)
{
	hs_begin(h);
	op_hs(&h->payload, 0, 0, 0);
	op_base(&h->payload, last);
	hs_end_record(h);
}

/* A log made by hand from the header's description opens as described. */
static void test_format_by_hand(void **state)
{
	struct fixture *f = *state;
	struct handseg h;
	hand_base(&h, 0);
	op_entry(&h.payload, 1, 1, RAFT_ENTRY_NORMAL, "one", 3);
	op_entry(&h.payload, 1, 2, RAFT_ENTRY_NOOP, NULL, 0);
	op_entry(&h.payload, 1, 3, RAFT_ENTRY_NORMAL, "three", 5);
	op_hs(&h.payload, 1, 1, 2);
	hs_end_record(&h);
	op_truncate(&h.payload, 2);
	op_entry(&h.payload, 2, 3, RAFT_ENTRY_CONF, "conf", 4);
	hs_end_record(&h);
	uint64_t ids[2] = {7, 9};
	uint8_t roles[2] = {RAFT_VOTER, RAFT_LEARNER};
	op_snap(&h.payload, 1, 1, 2, ids, roles);
	op_hs(&h.payload, 2, 7, 3);
	hs_end_record(&h);
	hs_save(&h, f->rlog, 1);
	/* A second segment whose base agrees. */
	hs_begin(&h);
	op_hs(&h.payload, 2, 7, 3);
	op_snap(&h.payload, 1, 1, 2, ids, roles);
	op_base(&h.payload, 3);
	hs_end_record(&h);
	op_entry(&h.payload, 2, 4, RAFT_ENTRY_NORMAL, "four", 4);
	hs_end_record(&h);
	hs_save(&h, f->rlog, 2);

	struct raft_log *l = open_log(f->rlog);
	struct raft_restore rs;
	struct raft_log_recovery st;
	assert_int_equal(raft_log_load(l, &rs, &st), 0);
	assert_int_equal(st.segments, 2);
	assert_int_equal(st.records, 6);
	assert_int_equal(st.entries, 5);
	assert_int_equal(rs.hs.term, 2);
	assert_int_equal(rs.hs.vote, 7);
	assert_int_equal(rs.hs.commit, 3);
	assert_true(rs.has_snapshot);
	assert_int_equal(rs.snap.index, 1);
	assert_int_equal(rs.snap.conf.n, 2);
	assert_int_equal(rs.snap.conf.members[1].id, 9);
	assert_int_equal(rs.snap.conf.members[1].role, RAFT_LEARNER);
	assert_int_equal(rs.n_entries, 3);
	assert_int_equal(rs.entries[0].index, 2);
	assert_int_equal(rs.entries[0].type, RAFT_ENTRY_NOOP);
	assert_int_equal(rs.entries[1].index, 3);
	assert_int_equal(rs.entries[1].term, 2);
	assert_int_equal(rs.entries[1].type, RAFT_ENTRY_CONF);
	assert_memory_equal(rs.entries[1].data, "conf", 4);
	assert_int_equal(rs.entries[2].index, 4);
	assert_memory_equal(rs.entries[2].data, "four", 4);
	close_log(l);

	/* Stray files are none of the log's business. */
	char p[160];
	const char *strays[] = {"notes.txt", "rlog-1.seg", "rlog-000000000000000G.seg",
				"rlog-0000000000000003.seg.tmp", "RLOG-0000000000000003.seg"};
	for (size_t i = 0; i < sizeof(strays) / sizeof(strays[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", f->rlog, strays[i]);
		write_file(p, "junk", 4);
	}
	l = open_log(f->rlog);
	assert_int_equal(raft_log_load(l, &rs, &st), 0);
	assert_int_equal(rs.n_entries, 3);
	assert_int_equal(st.torn_bytes, 0);
	close_log(l);
}

/* A record whose checksum holds but whose payload is wrong is corruption,
 * not a torn write: the open fails and changes nothing. */
static void test_crc_valid_bad_payload(void **state)
{
	struct fixture *f = *state;
	static const uint64_t ids[17] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
	static const uint8_t roles[17] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	for (int kind = 0; kind < 10; kind++) {
		tu_remove_tree(f->rlog);
		struct handseg h;
		hand_base(&h, 0);
		op_entry(&h.payload, 1, 1, RAFT_ENTRY_NORMAL, "a", 1);
		hs_end_record(&h);
		switch (kind) {
		case 0: /* unknown operation */
			op_u8(&h.payload, 'Z');
			break;
		case 1: /* an entry whose length runs past the record */
			op_u8(&h.payload, 'E');
			le64(&h.payload, 1);
			le64(&h.payload, 2);
			op_u8(&h.payload, 1);
			le32(&h.payload, 100);
			sp_buf_append(&h.payload, "short", 5);
			break;
		case 2: /* a hard state cut short inside the record */
			op_u8(&h.payload, 'H');
			le64(&h.payload, 1);
			break;
		case 3: /* a configuration with too many members */
			op_snap(&h.payload, 1, 1, 17, ids, roles);
			break;
		case 4: /* a base that is not a segment's first record */
			op_base(&h.payload, 1);
			break;
		case 5: /* an unknown entry type */
			op_entry(&h.payload, 1, 2, 9, "x", 1);
			break;
		case 6: /* a member role that does not exist */
			op_snap(&h.payload, 1, 1, 1, ids, (const uint8_t[]){3});
			break;
		case 7: /* a marker that moves back */
			op_snap(&h.payload, 1, 1, 1, ids, roles);
			op_snap(&h.payload, 0 + 1, 2, 1, ids, roles);
			break;
		case 8: /* a truncation below the snapshot */
			op_snap(&h.payload, 1, 1, 1, ids, roles);
			op_truncate(&h.payload, 0);
			break;
		case 9: /* an entry with term 0 */
			op_entry(&h.payload, 0, 2, 1, "x", 1);
			break;
		}
		hs_end_record(&h);
		/* A good record after it: the refusal must not be a cut. */
		op_hs(&h.payload, 5, 5, 5);
		hs_end_record(&h);
		hs_save(&h, f->rlog, 1);
		char what[32];
		snprintf(what, sizeof(what), "bad payload %d", kind);
		expect_corrupt(f->rlog, what);
	}

	/* A segment of another format version is refused too. */
	tu_remove_tree(f->rlog);
	struct handseg h;
	hand_base(&h, 0);
	memcpy(sp_buf_begin(&h.file), "SPRLOG2\n", 8);
	hs_save(&h, f->rlog, 1);
	expect_corrupt(f->rlog, "another version");
}

/* Entries that do not follow one another, a missing segment, and a base
 * whose hole no snapshot covers are corruption. */
static void test_noncontiguous(void **state)
{
	struct fixture *f = *state;
	struct handseg h;

	hand_base(&h, 0);
	op_entry(&h.payload, 1, 1, 1, "a", 1);
	op_entry(&h.payload, 1, 3, 1, "c", 1);
	hs_end_record(&h);
	hs_save(&h, f->rlog, 1);
	expect_corrupt(f->rlog, "gap");

	tu_remove_tree(f->rlog);
	hand_base(&h, 0);
	for (uint64_t i = 1; i <= 5; i++)
		op_entry(&h.payload, 1, i, 1, "a", 1);
	hs_end_record(&h);
	op_truncate(&h.payload, 3);
	op_entry(&h.payload, 2, 5, 1, "b", 1); /* 4 is next */
	hs_end_record(&h);
	hs_save(&h, f->rlog, 1);
	expect_corrupt(f->rlog, "gap after truncation");

	tu_remove_tree(f->rlog);
	hand_base(&h, 2); /* the oldest segment left: entries 1..2 deleted... */
	op_entry(&h.payload, 1, 3, 1, "a", 1);
	hs_end_record(&h); /* ...and no snapshot covers them */
	hs_save(&h, f->rlog, 1);
	expect_corrupt(f->rlog, "uncovered hole");

	/* The same with a marker covering them is a compacted log. */
	tu_remove_tree(f->rlog);
	hand_base(&h, 2);
	op_entry(&h.payload, 1, 3, 1, "a", 1);
	op_snap(&h.payload, 2, 1, 0, NULL, NULL);
	hs_end_record(&h);
	hs_save(&h, f->rlog, 1);
	struct raft_log *l = open_log(f->rlog);
	struct raft_restore rs;
	assert_int_equal(raft_log_load(l, &rs, NULL), 0);
	assert_int_equal(rs.n_entries, 1);
	assert_int_equal(rs.entries[0].index, 3);
	close_log(l);

	/* A base that disagrees with the log before it. */
	tu_remove_tree(f->rlog);
	hand_base(&h, 0);
	op_entry(&h.payload, 1, 1, 1, "a", 1);
	hs_end_record(&h);
	hs_save(&h, f->rlog, 1);
	hand_base(&h, 5);
	hs_save(&h, f->rlog, 2);
	expect_corrupt(f->rlog, "base disagrees");

	/* A segment missing from the sequence. */
	tu_remove_tree(f->rlog);
	hand_base(&h, 0);
	hs_save(&h, f->rlog, 1);
	hand_base(&h, 0);
	hs_save(&h, f->rlog, 3);
	expect_corrupt(f->rlog, "missing segment");

	/* Deleting the oldest segment by hand, with no snapshot. */
	tu_remove_tree(f->rlog);
	struct model *m = new_model();
	seed_test("noncontiguous");
	build_segments(f->rlog, m, 4);
	drop_model(m);
	char p[160];
	seg_path(p, sizeof(p), f->rlog, 1);
	assert_int_equal(unlink(p), 0);
	expect_corrupt(f->rlog, "oldest segment deleted by hand");
}

/* A write that fails half-way (RLIMIT_FSIZE, then EFBIG) leaves no partial
 * record behind, and the log goes on once writes work again. */
static void test_write_failure_leaves_no_partial_record(void **state)
{
	struct fixture *f = *state;
	seed_test("write_failure");
	struct model *m = new_model();
	struct raft_log *l = open_log(f->rlog);
	model_append(m, l, 3, 20);
	must_write(l);
	must_sync(l);
	char p[160];
	seg_path(p, sizeof(p), f->rlog, 1);
	uint64_t size0 = file_size(p);

	struct sigaction ign = {.sa_handler = SIG_IGN}, old_sa;
	sigemptyset(&ign.sa_mask);
	assert_int_equal(sigaction(SIGXFSZ, &ign, &old_sa), 0);
	struct rlimit saved, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	lim = saved;
	lim.rlim_cur = size0 + 100;

	struct raft_entry e = {1, 4, RAFT_ENTRY_NORMAL, 4000, NULL};
	uint8_t *big = calloc(1, 4000);
	assert_non_null(big);
	e.data = big;
	raft_log_append(l, &e, 1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int err = raft_log_write(l);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);
	free(big);
	assert_int_equal(err, -EFBIG);
	assert_int_equal(file_size(p), size0);
	assert_int_equal(raft_log_last_index(l), 3);

	model_append(m, l, 2, 20);
	must_write(l);
	l = reopen(l, f->rlog);
	model_expect(m, l, "after a failed write");
	close_log(l);
	drop_model(m);
}

/* ---- a random mix, checked after every reopen ---- */

static void test_property_random(void **state)
{
	struct fixture *f = *state;
	seed_test("property_random");
	struct model *m = new_model();
	struct raft_log *l = open_log(f->rlog);
	raft_log_set_segment_size(l, 1 + rnd_below(8192));
	for (int step = 0; step < 400; step++) {
		uint64_t snap = m->has_snap ? m->snap.index : 0;
		int ops = 1 + (int)rnd_below(4);
		for (int o = 0; o < ops; o++) {
			switch (rnd_below(8)) {
			case 0:
			case 1:
			case 2:
				model_append(m, l, rnd_below(20), 200);
				break;
			case 3:
				if (m->last > snap)
					model_truncate(m, l, snap + rnd_below(m->last - snap + 1));
				m->term++;
				break;
			case 4:
				model_hs(m, l, m->term, rnd_below(4), snap);
				break;
			case 5:
				if (rnd_below(4) == 0) {
					uint64_t at = snap + 1 + rnd_below(m->last - snap + 5);
					uint64_t term = at <= m->last ? m->e[at - 1].term : m->term;
					if (at > m->last)
						m->term++;
					model_snapshot(m, l, at, term ? term : 1);
					snap = at;
				}
				break;
			case 6:
				if (m->last > snap + 1 && rnd_below(3) == 0) {
					/* Replace the log with a snapshot inside it. */
					uint64_t at = snap + 1 + rnd_below(m->last - snap);
					model_snapshot(m, l, at, m->e[at - 1].term);
					model_truncate(m, l, at);
					snap = at;
					m->term++;
				}
				break;
			default:
				break;
			}
		}
		must_write(l);
		switch (rnd_below(10)) {
		case 0:
		case 1:
			must_sync(l);
			assert_int_equal(raft_log_compact(l), 0);
			break;
		case 2:
			l = reopen(l, f->rlog);
			model_expect(m, l, "random reopen");
			raft_log_set_segment_size(l, 1 + rnd_below(8192));
			break;
		default:
			break;
		}
		assert_int_equal(raft_log_bytes(l), dir_bytes(f->rlog));
	}
	l = reopen(l, f->rlog);
	model_expect(m, l, "end");
	close_log(l);
	drop_model(m);
}

/* ---- group commit: threads ---- */

/* The deterministic content of entry i, so a reader needs no model. */
static uint64_t term_for(uint64_t i)
{
	return 1 + i / 777;
}

static uint32_t len_for(uint64_t i)
{
	if (i % 4999 == 0)
		return 200000 + (uint32_t)(i % 1000); /* now and then a big one */
	return (uint32_t)((i * 7) % 97);
}

static uint8_t byte_for(uint64_t i, uint32_t k)
{
	return (uint8_t)(i * 131 + k * 7);
}

/* gen_append buffers entries from..to with their deterministic content
 * and a hard state naming the last one. */
static void gen_append(struct raft_log *l, uint64_t from, uint64_t to)
{
	size_t n = (size_t)(to - from + 1), total = 0;
	for (uint64_t i = from; i <= to; i++)
		total += len_for(i);
	uint8_t *data = malloc(total ? total : 1);
	struct raft_entry *es = malloc(n * sizeof(*es));
	if (!data || !es)
		abort();
	uint8_t *p = data;
	for (uint64_t i = from; i <= to; i++) {
		uint32_t len = len_for(i);
		for (uint32_t k = 0; k < len; k++)
			p[k] = byte_for(i, k);
		es[i - from] = (struct raft_entry){term_for(i), i, RAFT_ENTRY_NORMAL, len, p};
		p += len;
	}
	raft_log_append(l, es, n);
	struct raft_hard_state hs = {term_for(to), 1, to};
	raft_log_set_hard_state(l, &hs);
	free(es);
	free(data);
}

static struct raft_snapshot_meta gen_snapshot(uint64_t index)
{
	struct raft_snapshot_meta sm;
	memset(&sm, 0, sizeof(sm));
	sm.index = index;
	sm.term = term_for(index);
	test_conf(&sm.conf, 3, 1);
	return sm;
}

/* gen_check verifies a reloaded log holds exactly the deterministic
 * content, and returns its last index. Failures are returned as a line
 * number so a child can report them. */
static int gen_check(const struct raft_restore *rs, uint64_t *last)
{
	uint64_t first = rs->has_snapshot ? rs->snap.index + 1 : 1;
	if (rs->has_snapshot && rs->snap.term != term_for(rs->snap.index))
		return __LINE__;
	for (size_t i = 0; i < rs->n_entries; i++) {
		const struct raft_entry *e = &rs->entries[i];
		uint64_t want = first + i;
		if (e->index != want || e->term != term_for(want) || e->len != len_for(want))
			return __LINE__;
		for (uint32_t k = 0; k < e->len; k++)
			if (e->data[k] != byte_for(want, k))
				return __LINE__;
	}
	*last = first + rs->n_entries - 1;
	if (rs->hs.commit != *last && (rs->n_entries > 0 || rs->hs.commit != 0))
		return __LINE__; /* the hard state rides in the same record */
	if (rs->n_entries > 0 && rs->hs.term != term_for(*last))
		return __LINE__;
	return 0;
}

struct syncer {
	struct raft_log *l;
	atomic_uint_fast64_t written; /* last index raft_log_write returned */
	atomic_uint_fast64_t durable; /* last index a sync covered */
	atomic_int stop;
	atomic_int err;
	int compact; /* also compact after syncs */
	int report_fd;
	uint64_t syncs;
};

static void *sync_loop(void *arg)
{
	struct syncer *s = arg;
	while (!atomic_load(&s->stop)) {
		uint64_t w = atomic_load(&s->written);
		int err = raft_log_sync(s->l);
		if (err) {
			atomic_store(&s->err, err);
			break;
		}
		s->syncs++;
		atomic_store(&s->durable, w);
		if (s->report_fd >= 0 && write(s->report_fd, &w, sizeof(w)) != sizeof(w))
			_exit(4);
		if (s->compact && s->syncs % 8 == 0) {
			err = raft_log_compact(s->l);
			if (err) {
				atomic_store(&s->err, err);
				break;
			}
		}
	}
	return NULL;
}

/* The loop writes while another thread syncs and compacts, through many
 * rotations: every sync succeeds and a reopen holds everything. */
static void test_concurrent_write_sync(void **state)
{
	struct fixture *f = *state;
	seed_test("concurrent_write_sync");
	struct raft_log *l = open_log(f->rlog);
	raft_log_set_segment_size(l, 64 << 10);
	struct syncer s = {.l = l, .compact = 1, .report_fd = -1};
	atomic_init(&s.written, 0);
	atomic_init(&s.durable, 0);
	atomic_init(&s.stop, 0);
	atomic_init(&s.err, 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, sync_loop, &s), 0);
	uint64_t last = 0, snapped = 0;
	while (last < 30000 && !atomic_load(&s.err)) {
		uint64_t n = 1 + rnd_below(64);
		gen_append(l, last + 1, last + n);
		last += n;
		if (last - snapped > 3000) {
			/* The core snapshots what is applied, keeping a trail. */
			snapped = last - 500;
			struct raft_snapshot_meta sm = gen_snapshot(snapped);
			raft_log_set_snapshot(l, &sm);
		}
		assert_int_equal(raft_log_write(l), 0);
		atomic_store(&s.written, last);
	}
	atomic_store(&s.stop, 1);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&s.err), 0);
	must_sync(l);
	assert_int_equal(raft_log_compact(l), 0);
	print_message("concurrent: %" PRIu64 " syncs for %" PRIu64 " entries, %zu segments left\n",
		      s.syncs, last, list_segments(f->rlog, (uint64_t[1]){0}, 0));
	assert_true(s.syncs > 0);
	assert_int_equal(raft_log_bytes(l), dir_bytes(f->rlog));
	l = reopen(l, f->rlog);
	struct raft_restore rs;
	assert_int_equal(raft_log_load(l, &rs, NULL), 0);
	uint64_t got;
	int line = gen_check(&rs, &got);
	if (line)
		fail_msg("reloaded log differs (check at line %d)", line);
	assert_int_equal(got, last);
	assert_int_equal(rs.snap.index, snapped);
	close_log(l);
}

/* ---- kill -9 ---- */

struct kill_run {
	const char *dir;
	int out;
};

/* kill_child_main reopens the log, checks it, and then writes and syncs
 * (on a second thread) until killed, reporting each durable index. */
static void kill_child_main(const struct kill_run *r)
{
	struct raft_log *l = NULL;
	if (raft_log_open(&l, r->dir) != 0)
		_exit(10);
	struct raft_restore rs;
	if (raft_log_load(l, &rs, NULL) != 0)
		_exit(11);
	uint64_t last = 0;
	int line = gen_check(&rs, &last);
	if (line)
		_exit(12);
	raft_log_set_segment_size(l, 256 << 10);
	struct syncer s = {.l = l, .compact = 1, .report_fd = r->out};
	atomic_init(&s.written, last);
	atomic_init(&s.durable, 0);
	atomic_init(&s.stop, 0);
	atomic_init(&s.err, 0);
	pthread_t th;
	if (pthread_create(&th, NULL, sync_loop, &s) != 0)
		_exit(13);
	uint64_t snapped = rs.has_snapshot ? rs.snap.index : 0;
	uint64_t x = last * 2654435761u + 1;
	for (;;) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t n = 1 + (x >> 33) % 48;
		gen_append(l, last + 1, last + n);
		last += n;
		if (last - snapped > 2000) {
			snapped = last - 300;
			struct raft_snapshot_meta sm = gen_snapshot(snapped);
			raft_log_set_snapshot(l, &sm);
		}
		if (raft_log_write(l) != 0 || atomic_load(&s.err))
			_exit(14);
		atomic_store(&s.written, last);
	}
}

/* A child writes and syncs on two threads and is killed at an arbitrary
 * moment, several times over: after each kill, everything a sync covered
 * before the kill is there, and nothing is out of place. */
static void test_kill_keeps_synced(void **state)
{
	struct fixture *f = *state;
	seed_test("kill_keeps_synced");
	uint64_t prev = 0;
	for (int round = 0; round < 5; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			struct kill_run r = {f->rlog, p[1]};
			kill_child_main(&r);
			_exit(0);
		}
		close(p[1]);
		child_pid = pid;
		/* Let it get some way past the last round, then kill it at a
		 * random moment. */
		uint64_t target = prev + 2000 + rnd_below(6000), durable = 0, v;
		while (durable < target) {
			ssize_t got = read(p[0], &v, sizeof(v));
			if (got != sizeof(v)) {
				int status = 0;
				waitpid(pid, &status, 0);
				child_pid = 0;
				fail_msg("round %d: the child ended early (status 0x%x)", round,
					 status);
			}
			durable = v;
		}
		usleep((useconds_t)rnd_below(20000));
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		child_pid = 0;
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		while (read(p[0], &v, sizeof(v)) == sizeof(v))
			durable = v;
		close(p[0]);

		struct raft_log *l = open_log(f->rlog);
		struct raft_restore rs;
		struct raft_log_recovery st;
		assert_int_equal(raft_log_load(l, &rs, &st), 0);
		uint64_t last = 0;
		int line = gen_check(&rs, &last);
		if (line)
			fail_msg(
			    "round %d: the reloaded log differs (check at line %d, seed %" PRIu64
			    ")",
			    round, line, base_seed);
		if (last < durable)
			fail_msg("round %d: synced up to %" PRIu64 " but reloaded only %" PRIu64,
				 round, durable, last);
		print_message("kill round %d: synced %" PRIu64 ", reloaded %" PRIu64
			      " (snapshot %" PRIu64 ", %" PRIu64 " segments, %" PRIu64
			      " torn bytes)\n",
			      round, durable, last, rs.snap.index, st.segments, st.torn_bytes);
		prev = last;
		close_log(l);
	}
}

/* ---- throughput (printed, not asserted) ---- */

static void test_throughput(void **state)
{
	struct fixture *f = *state;
	struct raft_log *l = open_log(f->rlog);
	enum { PER_SYNC = 64, PER_WRITE = 8, LEN = 128 };
	uint8_t data[PER_WRITE][LEN];
	memset(data, 0x5a, sizeof(data));
	struct raft_entry es[PER_WRITE];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t last = 0, syncs = 0;
	double secs = 0;
	while (secs < 1.0 && last < 1000000) {
		for (int w = 0; w < PER_SYNC / PER_WRITE; w++) {
			for (int i = 0; i < PER_WRITE; i++)
				es[i] =
				    (struct raft_entry){1, ++last, RAFT_ENTRY_NORMAL, LEN, data[i]};
			raft_log_append(l, es, PER_WRITE);
			must_write(l);
		}
		must_sync(l);
		syncs++;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	}
	print_message("throughput: %" PRIu64 " entries of %d bytes in %.2f s: %.0f entries/s, "
		      "%.1f MB/s, %.0f syncs/s (%d entries per sync, %d per write)\n",
		      last, LEN, secs, (double)last / secs, (double)raft_log_bytes(l) / secs / 1e6,
		      (double)syncs / secs, PER_SYNC, PER_WRITE);
	close_log(l);
}

int main(void)
{
	/* The log's warnings are expected where tests plant damage; tests that
	 * check them capture them. */
	sp_log_setup(SP_LOG_ERROR, NULL);
	base_seed = tu_seed();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_empty, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_round_trip, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_truncate_then_append, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_hard_state_last_wins, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_snapshot_marker, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_snapshot_compaction, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_write_validation, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_flipped_byte_middle, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_segment_header_torn, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_format_by_hand, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_crc_valid_bad_payload, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_noncontiguous, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_write_failure_leaves_no_partial_record, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_property_random, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_concurrent_write_sync, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_kill_keeps_synced, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_throughput, setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
