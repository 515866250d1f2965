/*
 * raft_log: the durable Raft log (see raft_log.h for the format and rules).
 *
 * One set of rules, two users. struct log_state is the shape of the log
 * (hard state, snapshot marker, last index); the state_* functions apply
 * one operation to it and say why when it does not fit. The loop applies
 * them while buffering, so it never writes a record recovery would refuse;
 * recovery applies them while replaying, and also keeps the entries.
 *
 * Segments and threads. struct segment objects are listed oldest first in
 * segs[], the last one being the active segment. The loop writes to the
 * active segment without a lock and publishes its size atomically; it
 * takes `lock` only to append a new segment at a rotation. raft_log_sync
 * holds `lock` for its whole run, so the list, each segment's `synced`
 * mark and the directory's state cannot change under it, and no file it
 * syncs can be closed. raft_log_compact takes the doomed segments out of
 * the list under `lock` and deletes them after releasing it.
 *
 * Base records and holes. After a compaction the oldest segment left opens
 * with a base saying the log reached index L although the entries after
 * the snapshot up to L are not there. Replay tracks such a hole (entries
 * (snap.index, hole_end] exist but are unknown) and requires a snapshot
 * marker to cover it by the end; the compaction rule (raft_log_compact)
 * guarantees one does.
 */
#include "engine/strong/raft_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"

#define RLOG_MAGIC	  "SPRLOG1\n"
#define RLOG_MAGIC_LEN	  8u
#define RLOG_MAGIC_FAMILY 6u /* "SPRLOG": ours, whatever the version */
#define RLOG_REC_HDR	  8u /* u32 length, u32 crc */

enum op_kind {
	OP_TRUNCATE = 'T',
	OP_ENTRY = 'E',
	OP_HARD_STATE = 'H',
	OP_SNAPSHOT = 'S',
	OP_BASE = 'B',
};

/* Encoded sizes. */
#define OP_TRUNCATE_LEN	  9u
#define OP_ENTRY_FIXED	  22u /* kind, term, index, type, len */
#define OP_HARD_STATE_LEN 25u
#define OP_SNAPSHOT_FIXED 21u /* kind, index, term, n */
#define OP_MEMBER_LEN	  9u  /* id, role */
#define OP_BASE_LEN	  9u

/* The shape of the log after some operations. Invariant:
 * snap.index <= hole_end <= last (snap.index is 0 without a snapshot). */
struct log_state {
	struct raft_hard_state hs;
	bool has_snap;
	struct raft_snapshot_meta snap;
	uint64_t hole_end; /* recovery only: entries (snap.index, hole_end] are unknown */
	uint64_t last;	   /* last index; snap.index when no entry follows it */
};

struct segment {
	uint64_t id;
	int fd;
	_Atomic uint64_t size; /* bytes in the file: the loop stores, sync loads */
	uint64_t synced;       /* bytes known durable, directory entry included; under lock */
	uint64_t base_end;     /* end of the base record; 0 when the segment has none */
	uint64_t start_last;   /* the base's last index */
};

struct raft_log {
	char *dir;
	int dirfd;

	/* Guards segs, nsegs, every segment's synced, dir_dirty and
	 * durable_snap (see the comment at the top). */
	pthread_mutex_t lock;
	struct segment **segs;
	size_t nsegs, cap;
	bool dir_dirty;		       /* a segment was created since the directory's last fsync */
	uint64_t durable_snap;	       /* snapshot index the last successful sync covered */
	_Atomic uint64_t written_snap; /* snapshot index of the written log */
	_Atomic int failed;	       /* a sync failed: every later call fails with it */
	_Atomic uint64_t bytes;

	/* Loop thread only. */
	struct segment *active;
	uint64_t segment_bytes;
	struct log_state state;	  /* what the written records amount to */
	struct log_state pending; /* state plus the buffered operations */
	int pending_err;	  /* the batch was spoiled */
	bool broken;		  /* a failed write could not be cut back */
	struct sp_buf rec;	  /* the record being built; starts with RLOG_REC_HDR bytes */

	/* What recovery found, until the first loop-thread mutation. */
	bool restore_valid;
	struct raft_entry *entries;
	size_t n_entries;
	uint8_t *arena;
	struct raft_log_recovery recovery;
};

/* ---- the rules: one operation applied to the log's shape ---- */

static bool conf_valid(const struct raft_conf *c)
{
	if (c->n > RAFT_MAX_MEMBERS)
		return false;
	for (uint32_t i = 0; i < c->n; i++) {
		if (c->members[i].id == RAFT_NONE ||
		    (c->members[i].role != RAFT_VOTER && c->members[i].role != RAFT_LEARNER))
			return false;
		for (uint32_t j = 0; j < i; j++)
			if (c->members[j].id == c->members[i].id)
				return false;
	}
	return true;
}

static const char *state_truncate(struct log_state *s, uint64_t after)
{
	if (after < s->snap.index)
		return "truncation below the snapshot";
	if (after < s->last)
		s->last = after;
	if (after < s->hole_end)
		s->hole_end = after;
	return NULL;
}

static const char *state_entry(struct log_state *s, uint64_t term, uint64_t index, uint8_t type)
{
	if (index != s->last + 1)
		return "entry index does not follow the log";
	if (term == 0)
		return "entry with term 0";
	if (type != RAFT_ENTRY_NORMAL && type != RAFT_ENTRY_NOOP && type != RAFT_ENTRY_CONF)
		return "unknown entry type";
	s->last = index;
	return NULL;
}

static const char *state_snapshot(struct log_state *s, const struct raft_snapshot_meta *m)
{
	if (m->index == 0)
		return "snapshot marker at index 0";
	if (s->has_snap && m->index < s->snap.index)
		return "snapshot marker before the previous one";
	if (s->has_snap && m->index == s->snap.index && m->term != s->snap.term)
		return "snapshot marker at the same index with another term";
	if (!conf_valid(&m->conf))
		return "bad snapshot configuration";
	s->has_snap = true;
	s->snap = *m;
	if (s->last < m->index)
		s->last = m->index;
	if (s->hole_end < m->index)
		s->hole_end = m->index;
	return NULL;
}

/* ---- encoding ---- */

static void enc_hard_state(struct sp_buf *b, const struct raft_hard_state *hs)
{
	sp_buf_reserve(b, OP_HARD_STATE_LEN);
	uint8_t *p = (uint8_t *)sp_buf_end(b);
	p[0] = OP_HARD_STATE;
	sp_put_le64(p + 1, hs->term);
	sp_put_le64(p + 9, hs->vote);
	sp_put_le64(p + 17, hs->commit);
	sp_buf_commit(b, OP_HARD_STATE_LEN);
}

static void enc_snapshot(struct sp_buf *b, const struct raft_snapshot_meta *m)
{
	size_t len = OP_SNAPSHOT_FIXED + (size_t)m->conf.n * OP_MEMBER_LEN;
	sp_buf_reserve(b, len);
	uint8_t *p = (uint8_t *)sp_buf_end(b);
	p[0] = OP_SNAPSHOT;
	sp_put_le64(p + 1, m->index);
	sp_put_le64(p + 9, m->term);
	sp_put_le32(p + 17, m->conf.n);
	p += OP_SNAPSHOT_FIXED;
	for (uint32_t i = 0; i < m->conf.n; i++, p += OP_MEMBER_LEN) {
		sp_put_le64(p, m->conf.members[i].id);
		p[8] = m->conf.members[i].role;
	}
	sp_buf_commit(b, len);
}

static void enc_u64_op(struct sp_buf *b, uint8_t kind, uint64_t v)
{
	sp_buf_reserve(b, 9);
	uint8_t *p = (uint8_t *)sp_buf_end(b);
	p[0] = kind;
	sp_put_le64(p + 1, v);
	sp_buf_commit(b, 9);
}

/* begin_record reserves the header of a record about to be built in b. */
static void begin_record(struct sp_buf *b)
{
	sp_buf_reserve(b, RLOG_REC_HDR);
	sp_buf_commit(b, RLOG_REC_HDR);
}

/* seal_record fills in the header of the record that starts at rec and
 * runs to the end of b. */
static void seal_record(uint8_t *rec, size_t total)
{
	size_t len = total - RLOG_REC_HDR;
	sp_put_le32(rec, (uint32_t)len);
	sp_put_le32(rec + 4, sp_crc32(rec + RLOG_REC_HDR, len));
}

/* ---- files ---- */

#define RLOG_SEG_PREFIX "rlog-"
#define RLOG_SEG_SUFFIX ".seg"

static void segment_name(char *out, size_t n, uint64_t id)
{
	snprintf(out, n, RLOG_SEG_PREFIX "%016" PRIx64 RLOG_SEG_SUFFIX, id);
}

static void segment_free(struct segment *seg)
{
	if (!seg)
		return;
	if (seg->fd >= 0)
		close(seg->fd);
	free(seg);
}

static struct segment *segment_new(uint64_t id, int fd, uint64_t size)
{
	struct segment *seg = sp_calloc(1, sizeof(*seg));
	seg->id = id;
	seg->fd = fd;
	atomic_init(&seg->size, size);
	return seg;
}

/* push_segment appends seg to the list (the caller holds the lock, or no
 * other thread can see the log yet). */
static void push_segment(struct raft_log *l, struct segment *seg)
{
	if (l->nsegs == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->segs = sp_realloc(l->segs, l->cap * sizeof(*l->segs));
	}
	l->segs[l->nsegs++] = seg;
}

/*
 * create_segment makes segment id holding the magic and a base record for
 * st, written with one write(2), and sets *out. The directory is not
 * synced: the caller marks it dirty (or syncs it). Returns 0 or a negated
 * errno, leaving no file behind.
 */
static int create_segment(struct raft_log *l, uint64_t id, const struct log_state *st,
			  struct segment **out)
{
	struct sp_buf b;
	sp_buf_init(&b);
	sp_buf_append(&b, RLOG_MAGIC, RLOG_MAGIC_LEN);
	begin_record(&b);
	enc_hard_state(&b, &st->hs);
	if (st->has_snap)
		enc_snapshot(&b, &st->snap);
	enc_u64_op(&b, OP_BASE, st->last);
	seal_record((uint8_t *)sp_buf_begin(&b) + RLOG_MAGIC_LEN, b.len - RLOG_MAGIC_LEN);

	char name[64];
	segment_name(name, sizeof(name), id);
	int err = 0;
	int fd = openat(l->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		goto free_buf;
	}
	err = sp_write_all(fd, sp_buf_begin(&b), b.len);
	if (err)
		goto remove_file;
	struct segment *seg = segment_new(id, fd, b.len);
	seg->base_end = b.len;
	seg->start_last = st->last;
	atomic_fetch_add(&l->bytes, b.len);
	*out = seg;
	sp_buf_free(&b);
	return 0;
remove_file:
	close(fd);
	unlinkat(l->dirfd, name, 0);
free_buf:
	sp_buf_free(&b);
	return err;
}

/* ---- recovery ---- */

/* A segment file found at open. */
struct found {
	uint64_t id;
	int fd;
	uint64_t size;
	uint64_t base_end, start_last; /* as struct segment */
};

static int cmp_found(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void found_free(struct found *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].fd >= 0)
			close(f[i].fd);
	free(f);
}

/* list_segments opens every segment file in the directory, oldest first. */
static int list_segments(struct raft_log *l, struct found **out, size_t *nout)
{
	int fd = dup(l->dirfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int err = -errno;
		close(fd);
		return err;
	}
	struct found *f = NULL;
	size_t n = 0, cap = 0;
	int err = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		uint64_t id;
		if (!sp_parse_segment_name(e->d_name, RLOG_SEG_PREFIX, RLOG_SEG_SUFFIX, &id))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			f = sp_realloc(f, cap * sizeof(*f));
		}
		int sfd = openat(l->dirfd, e->d_name, O_RDWR | O_CLOEXEC);
		if (sfd < 0) {
			err = -errno;
			break;
		}
		struct stat st;
		if (fstat(sfd, &st) != 0) {
			err = -errno;
			close(sfd);
			break;
		}
		f[n++] = (struct found){id, sfd, (uint64_t)st.st_size, 0, 0};
	}
	closedir(d);
	if (err) {
		found_free(f, n);
		return err;
	}
	if (n)
		qsort(f, n, sizeof(*f), cmp_found);
	*out = f;
	*nout = n;
	return 0;
}

/* The replay's model: the log's shape, and its entries (hole_end, last]
 * as v[head .. n), pointing into the segment contents in bufs. */
struct replay {
	struct log_state st;
	bool pristine; /* no record applied yet */
	struct raft_entry *v;
	size_t head, n, cap;
	uint8_t **bufs;
	size_t nbufs;
	struct raft_log_recovery stats;
};

static void replay_free(struct replay *r)
{
	for (size_t i = 0; i < r->nbufs; i++)
		free(r->bufs[i]);
	free(r->bufs);
	free(r->v);
}

/* replay_sync_entries makes v match st after a truncation or a snapshot:
 * entries at or before hole_end go from the front, entries after last
 * from the back. */
static void replay_sync_entries(struct replay *r)
{
	size_t want = (size_t)(r->st.last - r->st.hole_end);
	size_t have = r->n - r->head;
	if (want < have) {
		/* Either the back was cut (truncation) or the front (snapshot):
		 * both keep the entries whose index is in (hole_end, last]. */
		uint64_t first = r->head < r->n ? r->v[r->head].index : 0;
		uint64_t drop_front = r->st.hole_end + 1 > first ? r->st.hole_end + 1 - first : 0;
		if (drop_front > have)
			drop_front = have;
		r->head += (size_t)drop_front;
		r->n = r->head + want;
	}
	if (r->head == r->n)
		r->head = r->n = 0;
}

static void replay_push_entry(struct replay *r, const struct raft_entry *e)
{
	if (r->n == r->cap) {
		if (r->head > r->cap / 2) {
			memmove(r->v, r->v + r->head, (r->n - r->head) * sizeof(*r->v));
			r->n -= r->head;
			r->head = 0;
		} else {
			r->cap = r->cap ? r->cap * 2 : 1024;
			r->v = sp_realloc(r->v, r->cap * sizeof(*r->v));
		}
	}
	r->v[r->n++] = *e;
}

/* A bounds-checked reader over one payload. */
struct cursor {
	const uint8_t *p, *end;
};

static const uint8_t *take(struct cursor *c, size_t n)
{
	if ((size_t)(c->end - c->p) < n)
		return NULL;
	const uint8_t *p = c->p;
	c->p += n;
	return p;
}

/*
 * replay_record decodes and applies one payload whose checksum holds. A
 * payload that does not decode, or does not fit the log, is a bug or
 * tampering rather than a torn write: *why says what, and the caller
 * reports SP_ERR_CORRUPT. first says the record opens its segment (the
 * only place a base may stand).
 */
static int replay_record(struct replay *r, const uint8_t *payload, size_t len, bool first,
			 uint64_t *base_last, const char **why)
{
	struct cursor c = {payload, payload + len};
	const uint8_t *p;
	while (c.p < c.end) {
		uint8_t kind = *c.p++;
		switch (kind) {
		case OP_TRUNCATE:
			if (!(p = take(&c, 8)))
				goto short_op;
			if ((*why = state_truncate(&r->st, sp_get_le64(p))))
				return SP_ERR_CORRUPT;
			replay_sync_entries(r);
			break;
		case OP_ENTRY: {
			if (!(p = take(&c, OP_ENTRY_FIXED - 1)))
				goto short_op;
			struct raft_entry e = {.term = sp_get_le64(p),
					       .index = sp_get_le64(p + 8),
					       .type = p[16],
					       .len = sp_get_le32(p + 17)};
			if (!(p = take(&c, e.len)))
				goto short_op;
			e.data = e.len ? p : NULL;
			if ((*why = state_entry(&r->st, e.term, e.index, e.type)))
				return SP_ERR_CORRUPT;
			replay_push_entry(r, &e);
			r->stats.entries++;
			break;
		}
		case OP_HARD_STATE:
			if (!(p = take(&c, OP_HARD_STATE_LEN - 1)))
				goto short_op;
			r->st.hs.term = sp_get_le64(p);
			r->st.hs.vote = sp_get_le64(p + 8);
			r->st.hs.commit = sp_get_le64(p + 16);
			break;
		case OP_SNAPSHOT: {
			if (!(p = take(&c, OP_SNAPSHOT_FIXED - 1)))
				goto short_op;
			struct raft_snapshot_meta m;
			memset(&m, 0, sizeof(m));
			m.index = sp_get_le64(p);
			m.term = sp_get_le64(p + 8);
			uint32_t n = sp_get_le32(p + 16);
			if (n > RAFT_MAX_MEMBERS) {
				*why = "snapshot configuration with too many members";
				return SP_ERR_CORRUPT;
			}
			m.conf.n = n;
			if (!(p = take(&c, (size_t)n * OP_MEMBER_LEN)))
				goto short_op;
			for (uint32_t i = 0; i < n; i++, p += OP_MEMBER_LEN) {
				m.conf.members[i].id = sp_get_le64(p);
				m.conf.members[i].role = p[8];
			}
			if ((*why = state_snapshot(&r->st, &m)))
				return SP_ERR_CORRUPT;
			replay_sync_entries(r);
			break;
		}
		case OP_BASE: {
			if (!(p = take(&c, 8)))
				goto short_op;
			uint64_t last = sp_get_le64(p);
			if (!first) {
				*why = "segment base inside a segment";
				return SP_ERR_CORRUPT;
			}
			if (r->pristine && last != r->st.last) {
				/* The oldest segment left after a compaction: the
				 * entries up to last were in the deleted ones. */
				if (last < r->st.last || r->n != r->head) {
					*why = "segment base behind its own record";
					return SP_ERR_CORRUPT;
				}
				r->st.last = r->st.hole_end = last;
			} else if (last != r->st.last) {
				*why = "segment base disagrees with the log before it";
				return SP_ERR_CORRUPT;
			}
			*base_last = last;
			break;
		}
		default:
			*why = "unknown operation";
			return SP_ERR_CORRUPT;
		}
	}
	r->pristine = false;
	r->stats.records++;
	return 0;
short_op:
	*why = "operation runs past the end of its record";
	return SP_ERR_CORRUPT;
}

/*
 * replay_segment replays one segment's contents. It returns 0 with *torn
 * set to the offset where the segment stops being readable (the size when
 * it is whole) and *torn_why saying why, or SP_ERR_CORRUPT.
 */
static int replay_segment(struct replay *r, struct found *seg, const uint8_t *buf, uint64_t *torn,
			  const char **torn_why)
{
	uint64_t size = seg->size;
	*torn = size;
	*torn_why = NULL;
	if (size >= RLOG_MAGIC_LEN && memcmp(buf, RLOG_MAGIC, RLOG_MAGIC_FAMILY) == 0 &&
	    memcmp(buf, RLOG_MAGIC, RLOG_MAGIC_LEN) != 0) {
		/* A whole header of another version: not damage, a log this
		 * binary cannot read. */
		sp_error("raft_log: segment %016" PRIx64 " is in another format (%.7s)", seg->id,
			 (const char *)buf);
		return SP_ERR_CORRUPT;
	}
	if (size < RLOG_MAGIC_LEN || memcmp(buf, RLOG_MAGIC, RLOG_MAGIC_LEN) != 0) {
		*torn = 0;
		*torn_why = "segment header";
		return 0;
	}
	seg->start_last = r->st.last;
	uint64_t pos = RLOG_MAGIC_LEN;
	while (pos < size) {
		if (size - pos < RLOG_REC_HDR) {
			*torn_why = "record header cut short";
			break;
		}
		uint64_t len = sp_get_le32(buf + pos);
		uint32_t crc = sp_get_le32(buf + pos + 4);
		if (len == 0) {
			/* raft_log_write never writes an empty record: zeros
			 * here are a hole a crash left, not data. */
			*torn_why = "zeroed record header";
			break;
		}
		if (size - pos - RLOG_REC_HDR < len) {
			*torn_why = "record cut short";
			break;
		}
		const uint8_t *payload = buf + pos + RLOG_REC_HDR;
		if (sp_crc32(payload, len) != crc) {
			*torn_why = "checksum mismatch";
			break;
		}
		const char *why = NULL;
		uint64_t base_last = UINT64_MAX;
		bool first = pos == RLOG_MAGIC_LEN;
		if (replay_record(r, payload, len, first, &base_last, &why) != 0) {
			sp_error("raft_log: segment %016" PRIx64 ", record at byte %" PRIu64
				 ": %s; the log is corrupt, refusing to guess",
				 seg->id, pos, why);
			return SP_ERR_CORRUPT;
		}
		pos += RLOG_REC_HDR + len;
		if (first && base_last != UINT64_MAX) {
			seg->base_end = pos;
			seg->start_last = base_last;
		}
	}
	if (*torn_why)
		*torn = pos;
	return 0;
}

static int fsync_dir(struct raft_log *l)
{
	return fsync(l->dirfd) != 0 ? -errno : 0;
}

/*
 * cut_tail removes everything from segment i at offset `at` on. Later
 * segments go first, newest first, syncing the directory after each, and
 * the torn segment is cut last: a crash half-way leaves the same torn
 * record in place for the next open to cut again, never a segment whose
 * base disagrees with a shortened log before it.
 */
static int cut_tail(struct raft_log *l, struct found *f, size_t nf, size_t i, uint64_t at,
		    struct raft_log_recovery *stats)
{
	char name[64];
	for (size_t j = nf; j-- > i + 1;) {
		segment_name(name, sizeof(name), f[j].id);
		if (unlinkat(l->dirfd, name, 0) != 0)
			return -errno;
		int err = fsync_dir(l);
		if (err)
			return err;
		stats->torn_bytes += f[j].size;
		stats->segments_removed++;
	}
	stats->torn_bytes += f[i].size - at;
	if (at < RLOG_MAGIC_LEN) {
		/* Not even a whole header: remove the file, so that a later
		 * segment is not cut off by it next time. */
		segment_name(name, sizeof(name), f[i].id);
		if (unlinkat(l->dirfd, name, 0) != 0)
			return -errno;
		stats->segments_removed++;
		return fsync_dir(l);
	}
	if (ftruncate(f[i].fd, (off_t)at) != 0 || fsync(f[i].fd) != 0)
		return -errno;
	f[i].size = at;
	return 0;
}

/* keep_restore copies the replayed entries into one arena owned by the
 * log, so the segment contents can go. */
static void keep_restore(struct raft_log *l, struct replay *r)
{
	size_t n = r->n - r->head;
	size_t data = 0;
	for (size_t i = r->head; i < r->n; i++)
		data += r->v[i].len;
	l->entries = n ? sp_malloc(n * sizeof(*l->entries)) : NULL;
	l->arena = data ? sp_malloc(data) : NULL;
	uint8_t *p = l->arena;
	for (size_t i = 0; i < n; i++) {
		l->entries[i] = r->v[r->head + i];
		if (l->entries[i].len) {
			memcpy(p, l->entries[i].data, l->entries[i].len);
			l->entries[i].data = p;
			p += l->entries[i].len;
		}
	}
	l->n_entries = n;
	l->recovery = r->stats;
	l->restore_valid = true;
}

/*
 * recover replays the segments found at open, cuts a torn tail, syncs what
 * is left (a killed process may have left it in the page cache only, and
 * the core is about to act on it) and makes it the log's segment list.
 * The segments' contents stay in memory until the replay ends; the
 * entries that survive are then copied into one arena (the core holds
 * every entry after the snapshot in memory too).
 */
static int recover(struct raft_log *l)
{
	struct found *f = NULL;
	size_t nf = 0;
	int err = list_segments(l, &f, &nf);
	if (err)
		return err;
	struct replay r;
	memset(&r, 0, sizeof(r));
	r.pristine = true;
	r.bufs = sp_calloc(nf ? nf : 1, sizeof(*r.bufs));

	size_t torn_seg = nf, nkeep = nf;
	uint64_t torn_at = 0;
	const char *torn_why = NULL;
	for (size_t i = 0; i < nf; i++) {
		if (i > 0 && f[i].id != f[i - 1].id + 1) {
			sp_error("raft_log: segment %016" PRIx64 " follows %016" PRIx64
				 ": segments are missing; the log is corrupt",
				 f[i].id, f[i - 1].id);
			err = SP_ERR_CORRUPT;
			goto free_replay;
		}
		err = sp_read_whole(f[i].fd, f[i].size, &r.bufs[r.nbufs]);
		if (err)
			goto free_replay;
		r.stats.segments++;
		err = replay_segment(&r, &f[i], r.bufs[r.nbufs++], &torn_at, &torn_why);
		if (err)
			goto free_replay;
		if (torn_why) {
			torn_seg = i;
			break;
		}
	}
	if (r.st.hole_end > r.st.snap.index) {
		sp_error("raft_log: entries %" PRIu64 "..%" PRIu64
			 " are in no segment and no snapshot covers them; the log is corrupt",
			 r.st.snap.index + 1, r.st.hole_end);
		err = SP_ERR_CORRUPT;
		goto free_replay;
	}

	if (torn_seg < nf) {
		uint64_t later = 0;
		for (size_t j = torn_seg + 1; j < nf; j++)
			later += f[j].size;
		sp_warn("raft_log: %s in segment %016" PRIx64 " at byte %" PRIu64
			": dropping the rest of that segment (%" PRIu64 " bytes) and %zu later "
			"segments (%" PRIu64
			" bytes); a write a crash left unfinished ends the log",
			torn_why, f[torn_seg].id, torn_at, f[torn_seg].size - torn_at,
			nf - torn_seg - 1, later);
		err = cut_tail(l, f, nf, torn_seg, torn_at, &r.stats);
		if (err)
			goto free_replay;
		nkeep = torn_at < RLOG_MAGIC_LEN ? torn_seg : torn_seg + 1;
	}

	for (size_t i = 0; i < nkeep; i++) {
		if (fdatasync(f[i].fd) != 0) {
			err = -errno;
			goto free_replay;
		}
		struct segment *seg = segment_new(f[i].id, f[i].fd, f[i].size);
		f[i].fd = -1;
		seg->synced = f[i].size;
		seg->base_end = f[i].base_end;
		seg->start_last = f[i].start_last;
		push_segment(l, seg);
		atomic_fetch_add(&l->bytes, f[i].size);
	}
	l->state = r.st;
	keep_restore(l, &r);
free_replay:
	replay_free(&r);
	/* Closes the files cut away, and all of them on failure; those moved
	 * into the list were marked with fd -1. */
	found_free(f, nf);
	return err;
}

/* ---- open and close ---- */

int raft_log_open(struct raft_log **out, const char *dir)
{
	struct raft_log *l = sp_calloc(1, sizeof(*l));
	l->dirfd = -1;
	l->segment_bytes = RAFT_LOG_SEGMENT_BYTES;
	pthread_mutex_init(&l->lock, NULL);
	atomic_init(&l->written_snap, 0);
	atomic_init(&l->failed, 0);
	atomic_init(&l->bytes, 0);
	sp_buf_init(&l->rec);
	l->dir = sp_strdup(dir);
	int err = 0;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		err = -errno;
		goto fail;
	}
	l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dirfd < 0) {
		err = -errno;
		goto fail;
	}
	err = recover(l);
	if (err)
		goto fail;
	uint64_t next = l->nsegs ? l->segs[l->nsegs - 1]->id + 1 : 1;
	struct segment *seg;
	err = create_segment(l, next, &l->state, &seg);
	if (err)
		goto fail;
	push_segment(l, seg);
	l->active = seg;
	/* Make the fresh segment durable now, so every segment starts out
	 * synced and compaction may lean on its base at once. */
	if (fdatasync(seg->fd) != 0 || fsync(l->dirfd) != 0) {
		err = -errno;
		goto fail;
	}
	seg->synced = seg->base_end;
	l->pending = l->state;
	l->durable_snap = l->state.snap.index;
	atomic_store(&l->written_snap, l->state.snap.index);
	*out = l;
	return 0;
fail:
	raft_log_close(l);
	return err;
}

static void release_restore(struct raft_log *l)
{
	if (!l->restore_valid)
		return;
	free(l->entries);
	free(l->arena);
	l->entries = NULL;
	l->arena = NULL;
	l->n_entries = 0;
	l->restore_valid = false;
}

void raft_log_close(struct raft_log *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nsegs; i++)
		segment_free(l->segs[i]);
	free(l->segs);
	if (l->dirfd >= 0)
		close(l->dirfd);
	release_restore(l);
	sp_buf_free(&l->rec);
	pthread_mutex_destroy(&l->lock);
	free(l->dir);
	free(l);
}

int raft_log_load(struct raft_log *l, struct raft_restore *out, struct raft_log_recovery *stats)
{
	if (!l->restore_valid)
		return SP_ERR_INVAL;
	out->hs = l->state.hs;
	out->has_snapshot = l->state.has_snap;
	memset(&out->snap, 0, sizeof(out->snap));
	if (l->state.has_snap)
		out->snap = l->state.snap;
	out->entries = l->entries;
	out->n_entries = l->n_entries;
	if (stats)
		*stats = l->recovery;
	return 0;
}

/* ---- buffering ---- */

/* begin_op starts the batch's record on its first operation and says
 * whether the batch can still take operations. */
static bool begin_op(struct raft_log *l)
{
	release_restore(l);
	if (l->rec.len == 0) {
		begin_record(&l->rec);
		l->pending = l->state;
		l->pending_err = 0;
	}
	return l->pending_err == 0;
}

static void spoil_batch(struct raft_log *l, const char *why)
{
	sp_error("raft_log: refusing a batch: %s (last index %" PRIu64 ", snapshot %" PRIu64 ")",
		 why, l->pending.last, l->pending.snap.index);
	l->pending_err = SP_ERR_INVAL;
}

void raft_log_truncate_after(struct raft_log *l, uint64_t index)
{
	if (!begin_op(l))
		return;
	const char *why = state_truncate(&l->pending, index);
	if (why) {
		spoil_batch(l, why);
		return;
	}
	enc_u64_op(&l->rec, OP_TRUNCATE, index);
}

void raft_log_append(struct raft_log *l, const struct raft_entry *e, size_t n)
{
	if (!begin_op(l) || n == 0)
		return;
	size_t need = 0;
	for (size_t i = 0; i < n; i++) {
		const char *why = state_entry(&l->pending, e[i].term, e[i].index, e[i].type);
		if (!why && e[i].len > 0 && !e[i].data)
			why = "entry without its data";
		if (why) {
			spoil_batch(l, why);
			return;
		}
		need += OP_ENTRY_FIXED + e[i].len;
	}
	/* One reservation for the whole run, then plain stores. */
	sp_buf_reserve(&l->rec, need);
	uint8_t *p = (uint8_t *)sp_buf_end(&l->rec);
	for (size_t i = 0; i < n; i++) {
		p[0] = OP_ENTRY;
		sp_put_le64(p + 1, e[i].term);
		sp_put_le64(p + 9, e[i].index);
		p[17] = e[i].type;
		sp_put_le32(p + 18, e[i].len);
		if (e[i].len)
			memcpy(p + OP_ENTRY_FIXED, e[i].data, e[i].len);
		p += OP_ENTRY_FIXED + e[i].len;
	}
	sp_buf_commit(&l->rec, need);
}

void raft_log_set_hard_state(struct raft_log *l, const struct raft_hard_state *hs)
{
	if (!begin_op(l))
		return;
	l->pending.hs = *hs;
	enc_hard_state(&l->rec, hs);
}

void raft_log_set_snapshot(struct raft_log *l, const struct raft_snapshot_meta *m)
{
	if (!begin_op(l))
		return;
	const char *why = state_snapshot(&l->pending, m);
	if (why) {
		spoil_batch(l, why);
		return;
	}
	enc_snapshot(&l->rec, m);
}

static void end_batch(struct raft_log *l)
{
	/* Keep a big buffer only while batches stay big. */
	if (l->rec.cap > (4u << 20))
		sp_buf_free(&l->rec);
	else
		sp_buf_clear(&l->rec);
	l->pending = l->state;
	l->pending_err = 0;
}

void raft_log_discard(struct raft_log *l)
{
	release_restore(l);
	end_batch(l);
}

/* ---- writing ---- */

/* rotate starts a new active segment opening with the written log's base. */
static int rotate(struct raft_log *l)
{
	struct segment *seg;
	int err = create_segment(l, l->active->id + 1, &l->state, &seg);
	if (err)
		return err;
	pthread_mutex_lock(&l->lock);
	push_segment(l, seg);
	l->dir_dirty = true;
	pthread_mutex_unlock(&l->lock);
	l->active = seg;
	return 0;
}

int raft_log_write(struct raft_log *l)
{
	release_restore(l);
	if (l->rec.len == 0)
		return 0;
	int err = l->pending_err;
	if (!err && l->rec.len == RLOG_REC_HDR)
		goto end; /* no operations: an empty record would read as a hole */
	if (!err)
		err = atomic_load(&l->failed);
	if (!err && l->broken)
		err = SP_ERR_IO;
	size_t total = l->rec.len;
	if (!err && total - RLOG_REC_HDR > UINT32_MAX)
		err = SP_ERR_TOOBIG;
	if (err)
		goto end;
	struct segment *seg = l->active;
	uint64_t size = atomic_load_explicit(&seg->size, memory_order_relaxed);
	if (size > seg->base_end && size + total > l->segment_bytes) {
		err = rotate(l);
		if (err)
			goto end;
		seg = l->active;
		size = atomic_load_explicit(&seg->size, memory_order_relaxed);
	}
	uint8_t *rec = (uint8_t *)sp_buf_begin(&l->rec);
	seal_record(rec, total);
	err = sp_write_all(seg->fd, rec, total);
	if (err) {
		/* Leave no partial record behind: the next record must start
		 * where a reader expects a header. */
		if (ftruncate(seg->fd, (off_t)size) != 0) {
			sp_error("raft_log: cannot cut a failed write back: %s; refusing "
				 "further writes",
				 strerror(errno));
			l->broken = true;
		}
		goto end;
	}
	/* Size before snapshot index: a sync that sees the index sees the
	 * bytes holding it (release here, acquire in raft_log_sync). */
	atomic_store_explicit(&seg->size, size + total, memory_order_release);
	atomic_fetch_add(&l->bytes, total);
	l->state = l->pending;
	atomic_store_explicit(&l->written_snap, l->state.snap.index, memory_order_release);
end:
	end_batch(l);
	return err;
}

/* ---- durability ---- */

int raft_log_sync(struct raft_log *l)
{
	int err = atomic_load(&l->failed);
	if (err)
		return err;
	pthread_mutex_lock(&l->lock);
	uint64_t snap = atomic_load_explicit(&l->written_snap, memory_order_acquire);
	if (l->dir_dirty) {
		if (fsync(l->dirfd) != 0) {
			err = -errno;
			goto fail;
		}
		l->dir_dirty = false;
	}
	/* Older segments need it only after a rotation; the loop may write
	 * to the active one meanwhile: fdatasync covers at least every write
	 * that completed before it started, which includes `size`. */
	for (size_t i = 0; i < l->nsegs; i++) {
		struct segment *seg = l->segs[i];
		uint64_t size = atomic_load_explicit(&seg->size, memory_order_acquire);
		if (seg->synced >= size)
			continue;
		if (fdatasync(seg->fd) != 0) {
			err = -errno;
			goto fail;
		}
		seg->synced = size;
	}
	if (snap > l->durable_snap)
		l->durable_snap = snap;
	pthread_mutex_unlock(&l->lock);
	return 0;
fail:
	atomic_store(&l->failed, err);
	pthread_mutex_unlock(&l->lock);
	sp_error("raft_log: sync failed: %s; the log refuses further writes", sp_strerror(err));
	return err;
}

int raft_log_compact(struct raft_log *l)
{
	/* Segment i may go with all before it when the base of segment i+1
	 * is durable and a durable snapshot covers the log up to that base:
	 * replay can then start at i+1 (see the top of the file). */
	pthread_mutex_lock(&l->lock);
	size_t drop = 0;
	for (size_t i = 0; i + 1 < l->nsegs; i++) {
		const struct segment *next = l->segs[i + 1];
		if (next->base_end > 0 && next->synced >= next->base_end &&
		    next->start_last <= l->durable_snap)
			drop = i + 1;
	}
	struct segment **doomed = NULL;
	if (drop) {
		doomed = sp_malloc(drop * sizeof(*doomed));
		memcpy(doomed, l->segs, drop * sizeof(*doomed));
		memmove(l->segs, l->segs + drop, (l->nsegs - drop) * sizeof(*l->segs));
		l->nsegs -= drop;
	}
	pthread_mutex_unlock(&l->lock);

	int err = 0;
	size_t done = 0;
	char name[64];
	for (; done < drop; done++) {
		struct segment *seg = doomed[done];
		segment_name(name, sizeof(name), seg->id);
		if (unlinkat(l->dirfd, name, 0) != 0 && errno != ENOENT) {
			err = -errno;
			break;
		}
		/* One at a time: a crash must leave a suffix, never a gap. */
		err = fsync_dir(l);
		atomic_fetch_sub(&l->bytes, atomic_load(&seg->size));
		segment_free(seg);
		if (err) {
			done++;
			break;
		}
	}
	if (done < drop) {
		/* Put back what is still on disk, in front of the rest. */
		size_t back = drop - done;
		pthread_mutex_lock(&l->lock);
		if (l->nsegs + back > l->cap) {
			l->cap = l->nsegs + back;
			l->segs = sp_realloc(l->segs, l->cap * sizeof(*l->segs));
		}
		memmove(l->segs + back, l->segs, l->nsegs * sizeof(*l->segs));
		memcpy(l->segs, doomed + done, back * sizeof(*l->segs));
		l->nsegs += back;
		pthread_mutex_unlock(&l->lock);
	}
	free(doomed);
	if (err)
		sp_error("raft_log: compaction stopped: %s", sp_strerror(err));
	return err;
}

uint64_t raft_log_bytes(const struct raft_log *l)
{
	return atomic_load(&l->bytes);
}

uint64_t raft_log_last_index(const struct raft_log *l)
{
	return l->state.last;
}

void raft_log_set_segment_size(struct raft_log *l, uint64_t bytes)
{
	l->segment_bytes = bytes ? bytes : 1;
}
