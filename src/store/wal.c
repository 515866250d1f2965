/*
 * wal: the store's write-ahead log (see wal.h for the format and rules).
 *
 * Segments that existed at open are "old": they are replayed, then
 * retired once the tree is synced. The active segment takes new records.
 * Retiring deletes old segments oldest first, so a power cut in the middle
 * leaves a suffix of the history, and replaying a suffix of idempotent
 * operations over a tree that already holds the whole history changes
 * nothing.
 */
#include "store/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
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

#define WAL_MAGIC     "SPWAL01\n"
#define WAL_MAGIC_LEN 8u
#define WAL_REC_HDR   8u /* u32 length, u32 crc */
/* The revision entry: not an enum wal_op_kind, because replay consumes it
 * rather than passing it on. */
#define WAL_REV_ENTRY 'R'

struct segment {
	uint64_t id;
	int fd;
	uint64_t size;
	int unsynced; /* appended to since its last fdatasync */
};

struct wal {
	char *dir;
	int dirfd;
	struct segment active;
	/* Old segments, oldest first. wal_sync and wal_retire may run at the
	 * same time on two threads, so the list is guarded by `lock`. */
	pthread_mutex_t lock;
	struct segment *old;
	size_t nold;
	atomic_uint_fast64_t old_bytes;
	int dir_dirty;		      /* a segment was created since the directory's last fsync */
	int broken;		      /* a failed append could not be cut back: refuse appends */
	uint64_t floor_id, floor_off; /* replay skips records ending at or before */
	struct sp_buf rec;	      /* the record being built; starts with WAL_REC_HDR bytes */
};

/* ---- little-endian fields ---- */

/* ---- files ---- */

#define WAL_SEG_PREFIX "wal-"
#define WAL_SEG_SUFFIX ".log"

static void segment_name(char *out, size_t n, uint64_t id)
{
	snprintf(out, n, WAL_SEG_PREFIX "%016" PRIx64 WAL_SEG_SUFFIX, id);
}

static int create_segment(struct wal *w, uint64_t id, struct segment *seg)
{
	char name[64];
	segment_name(name, sizeof(name), id);
	int fd = openat(w->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int err = sp_write_all(fd, WAL_MAGIC, WAL_MAGIC_LEN);
	if (err) {
		close(fd);
		unlinkat(w->dirfd, name, 0);
		return err;
	}
	seg->id = id;
	seg->fd = fd;
	seg->size = WAL_MAGIC_LEN;
	seg->unsynced = 1;
	w->dir_dirty = 1;
	return 0;
}

/* parse_segment_name accepts exactly the names segment_name writes (16
 * lower-case hex digits), so wal_retire can delete by the same name. */
static int cmp_segment(const void *a, const void *b)
{
	const struct segment *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* find_segments lists the segment files in the directory, oldest first. */
static int find_segments(struct wal *w)
{
	int fd = dup(w->dirfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int err = -errno;
		close(fd);
		return err;
	}
	size_t cap = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		uint64_t id;
		if (!sp_parse_segment_name(e->d_name, WAL_SEG_PREFIX, WAL_SEG_SUFFIX, &id))
			continue;
		if (w->nold == cap) {
			cap = cap ? cap * 2 : 8;
			w->old = sp_realloc(w->old, cap * sizeof(*w->old));
		}
		int sfd = openat(w->dirfd, e->d_name, O_RDWR | O_CLOEXEC);
		if (sfd < 0) {
			int err = -errno;
			closedir(d);
			return err;
		}
		struct stat st;
		fstat(sfd, &st);
		w->old[w->nold++] = (struct segment){id, sfd, (uint64_t)st.st_size, 0};
	}
	closedir(d);
	if (w->nold)
		qsort(w->old, w->nold, sizeof(*w->old), cmp_segment);
	uint64_t bytes = 0;
	for (size_t i = 0; i < w->nold; i++)
		bytes += w->old[i].size;
	atomic_store(&w->old_bytes, bytes);
	return 0;
}

int wal_open(struct wal **out, const char *dir)
{
	struct wal *w = sp_calloc(1, sizeof(*w));
	w->dir = sp_strdup(dir);
	w->dirfd = -1;
	w->active.fd = -1;
	pthread_mutex_init(&w->lock, NULL);
	atomic_init(&w->old_bytes, 0);
	sp_buf_init(&w->rec);
	int err = 0;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		err = -errno;
		goto fail;
	}
	w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		err = -errno;
		goto fail;
	}
	err = find_segments(w);
	if (err)
		goto fail;
	uint64_t next = w->nold ? w->old[w->nold - 1].id + 1 : 1;
	err = create_segment(w, next, &w->active);
	if (err)
		goto fail;
	*out = w;
	return 0;
fail:
	wal_close(w);
	return err;
}

void wal_close(struct wal *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->nold; i++)
		close(w->old[i].fd);
	free(w->old);
	if (w->active.fd >= 0)
		close(w->active.fd);
	if (w->dirfd >= 0)
		close(w->dirfd);
	sp_buf_free(&w->rec);
	pthread_mutex_destroy(&w->lock);
	free(w->dir);
	free(w);
}

/* ---- replay ---- */

/* A bounds-checked reader over one record's payload. */
struct cursor {
	const unsigned char *p, *end;
};

static int take(struct cursor *c, size_t n, const unsigned char **out)
{
	if ((size_t)(c->end - c->p) < n)
		return -1;
	*out = c->p;
	c->p += n;
	return 0;
}

static int take_u8(struct cursor *c, uint8_t *v)
{
	const unsigned char *p;
	if (take(c, 1, &p))
		return -1;
	*v = p[0];
	return 0;
}

static int take_u64(struct cursor *c, uint64_t *v)
{
	const unsigned char *p;
	if (take(c, 8, &p))
		return -1;
	*v = sp_get_le64(p);
	return 0;
}

static int take_bytes(struct cursor *c, const void **data, size_t *len)
{
	const unsigned char *p;
	if (take(c, 4, &p))
		return -1;
	uint32_t n = sp_get_le32(p);
	if (take(c, n, &p))
		return -1;
	*data = p;
	*len = n;
	return 0;
}

/* apply_record decodes and applies one checksummed payload. A payload
 * that passed its checksum but does not decode is a bug or tampering,
 * not a torn write: SP_ERR_CORRUPT. */
static int apply_record(const unsigned char *p, size_t n, wal_apply_fn fn, void *ctx,
			struct wal_replay_stats *st)
{
	struct cursor c = {p, p + n};
	uint64_t rev = 0; /* set by 'R'; every record starts at 0 */
	while (c.p < c.end) {
		struct wal_op op;
		memset(&op, 0, sizeof(op));
		uint8_t kind;
		if (take_u8(&c, &kind))
			return SP_ERR_CORRUPT;
		op.kind = (enum wal_op_kind)kind;
		int bad = 0;
		switch (kind) {
		case WAL_PUT:
			bad = take_u8(&c, &op.type) || take_u8(&c, &op.flags) ||
			      take_u64(&c, &op.expire_at_ms) || take_bytes(&c, &op.key, &op.klen) ||
			      take_bytes(&c, &op.data, &op.len);
			break;
		case WAL_DEL:
			bad = take_bytes(&c, &op.key, &op.klen);
			break;
		case WAL_EXPIRE:
			bad = take_u64(&c, &op.expire_at_ms) || take_bytes(&c, &op.key, &op.klen);
			break;
		case WAL_FLUSH:
			break;
		case WAL_REV_ENTRY:
			if (take_u64(&c, &rev))
				return SP_ERR_CORRUPT;
			continue;
		default:
			bad = 1;
		}
		if (bad)
			return SP_ERR_CORRUPT;
		op.rev = rev;
		int rc = fn(ctx, &op);
		if (rc)
			return rc;
		st->ops++;
	}
	st->records++;
	return 0;
}

/* cut_from removes everything from segment i at offset `at` on: the rest of
 * segment i and every later old segment. */
static int cut_from(struct wal *w, size_t i, uint64_t at, struct wal_replay_stats *st)
{
	char name[64];
	st->torn_bytes += w->old[i].size - at;
	atomic_fetch_sub(&w->old_bytes, w->old[i].size - at);
	size_t keep = i + 1;
	if (at < WAL_MAGIC_LEN) {
		/* Not even a whole header: remove the file, so that records
		 * appended after this open are not cut off by it next time. */
		atomic_fetch_sub(&w->old_bytes, at);
		close(w->old[i].fd);
		segment_name(name, sizeof(name), w->old[i].id);
		if (unlinkat(w->dirfd, name, 0) != 0)
			return -errno;
		keep = i;
	} else {
		if (ftruncate(w->old[i].fd, (off_t)at) != 0)
			return -errno;
		if (fdatasync(w->old[i].fd) != 0)
			return -errno;
		w->old[i].size = at;
	}
	for (size_t j = i + 1; j < w->nold; j++) {
		st->torn_bytes += w->old[j].size;
		atomic_fetch_sub(&w->old_bytes, w->old[j].size);
		close(w->old[j].fd);
		segment_name(name, sizeof(name), w->old[j].id);
		if (unlinkat(w->dirfd, name, 0) != 0)
			return -errno;
	}
	w->nold = keep;
	if (fsync(w->dirfd) != 0)
		return -errno;
	return 0;
}

int wal_replay(struct wal *w, wal_apply_fn fn, void *ctx, struct wal_replay_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < w->nold; i++) {
		struct segment *seg = &w->old[i];
		unsigned char *buf = NULL;
		int err = sp_read_whole(seg->fd, seg->size, &buf);
		if (err)
			return err;
		st->segments++;
		uint64_t pos = 0;
		const char *why = NULL;
		if (seg->size >= WAL_MAGIC_LEN && memcmp(buf, WAL_MAGIC, 5) == 0 &&
		    memcmp(buf, WAL_MAGIC, WAL_MAGIC_LEN) != 0) {
			/* A whole header of another format version: not damage,
			 * a log this binary cannot read. Refuse, like the tree. */
			sp_error("wal: segment %016" PRIx64 " is in another log format (%.7s)",
				 seg->id, (const char *)buf);
			free(buf);
			return SP_ERR_CORRUPT;
		}
		if (seg->size < WAL_MAGIC_LEN || memcmp(buf, WAL_MAGIC, WAL_MAGIC_LEN) != 0) {
			why = "segment header";
		} else {
			pos = WAL_MAGIC_LEN;
			while (pos < seg->size) {
				if (seg->size - pos < WAL_REC_HDR) {
					why = "record header cut short";
					break;
				}
				uint64_t len = sp_get_le32(buf + pos);
				uint32_t crc = sp_get_le32(buf + pos + 4);
				if (len == 0) {
					/* wal_append never writes an empty record: zeros
					 * here are a hole a crash left, not data. */
					why = "zeroed record header";
					break;
				}
				if (seg->size - pos - WAL_REC_HDR < len) {
					why = "record cut short";
					break;
				}
				const unsigned char *payload = buf + pos + WAL_REC_HDR;
				if (sp_crc32(payload, len) != crc) {
					why = "checksum mismatch";
					break;
				}
				uint64_t end = pos + WAL_REC_HDR + len;
				int applied = seg->id > w->floor_id ||
					      (seg->id == w->floor_id && end > w->floor_off);
				if (applied) {
					err = apply_record(payload, len, fn, ctx, st);
					if (err) {
						free(buf);
						return err;
					}
				} else {
					st->skipped++;
				}
				pos = end;
			}
		}
		free(buf);
		if (why) {
			uint64_t later = 0;
			for (size_t j = i + 1; j < w->nold; j++)
				later += w->old[j].size;
			sp_warn("wal: %s in segment %016" PRIx64 " at byte %" PRIu64
				": dropping the rest of that segment (%" PRIu64
				" bytes) and %zu later segments (%" PRIu64
				" bytes); a write a crash left unfinished ends the log",
				why, seg->id, pos, seg->size - pos, w->nold - i - 1, later);
			return cut_from(w, i, pos, st);
		}
	}
	return 0;
}

/* ---- recording ---- */

static void begin_record(struct wal *w)
{
	if (w->rec.len == 0) {
		sp_buf_reserve(&w->rec, WAL_REC_HDR);
		sp_buf_commit(&w->rec, WAL_REC_HDR);
	}
}

static void add_u8(struct wal *w, uint8_t v)
{
	sp_buf_append(&w->rec, &v, 1);
}

static void add_u64(struct wal *w, uint64_t v)
{
	unsigned char b[8];
	sp_put_le64(b, v);
	sp_buf_append(&w->rec, b, 8);
}

static void add_bytes(struct wal *w, const void *p, size_t n)
{
	unsigned char b[4];
	sp_put_le32(b, (uint32_t)n);
	sp_buf_append(&w->rec, b, 4);
	sp_buf_append(&w->rec, p, n);
}

void wal_put(struct wal *w, const void *key, size_t klen, uint8_t type, uint8_t flags,
	     uint64_t expire_at_ms, const void *data, size_t len)
{
	begin_record(w);
	add_u8(w, WAL_PUT);
	add_u8(w, type);
	add_u8(w, flags);
	add_u64(w, expire_at_ms);
	add_bytes(w, key, klen);
	add_bytes(w, data, len);
}

void wal_del(struct wal *w, const void *key, size_t klen)
{
	begin_record(w);
	add_u8(w, WAL_DEL);
	add_bytes(w, key, klen);
}

void wal_expire(struct wal *w, const void *key, size_t klen, uint64_t expire_at_ms)
{
	begin_record(w);
	add_u8(w, WAL_EXPIRE);
	add_u64(w, expire_at_ms);
	add_bytes(w, key, klen);
}

void wal_flush_all(struct wal *w)
{
	begin_record(w);
	add_u8(w, WAL_FLUSH);
}

void wal_revision(struct wal *w, uint64_t rev)
{
	begin_record(w);
	add_u8(w, WAL_REV_ENTRY);
	add_u64(w, rev);
}

void wal_discard(struct wal *w)
{
	sp_buf_clear(&w->rec);
}

int wal_pending(const struct wal *w)
{
	return w->rec.len > 0;
}

int wal_append(struct wal *w)
{
	if (w->rec.len == 0)
		return 0;
	if (w->broken) {
		sp_buf_clear(&w->rec);
		return SP_ERR_IO;
	}
	if (w->rec.len - WAL_REC_HDR > UINT32_MAX) {
		/* The length field is 32 bits: refuse rather than write a
		 * record that replay would misread. */
		sp_buf_clear(&w->rec);
		return SP_ERR_TOOBIG;
	}
	unsigned char *rec = (unsigned char *)sp_buf_begin(&w->rec);
	size_t len = w->rec.len - WAL_REC_HDR;
	sp_put_le32(rec, (uint32_t)len);
	sp_put_le32(rec + 4, sp_crc32(rec + WAL_REC_HDR, len));
	int err = sp_write_all(w->active.fd, rec, w->rec.len);
	if (err) {
		/* Leave no partial record behind: the next append must start
		 * where a reader expects a record header. */
		if (ftruncate(w->active.fd, (off_t)w->active.size) != 0) {
			sp_error("wal: cannot cut a failed append back: %s; refusing further "
				 "appends",
				 strerror(errno));
			w->broken = 1;
		}
		sp_buf_clear(&w->rec);
		return err;
	}
	w->active.size += w->rec.len;
	w->active.unsynced = 1;
	/* Keep a big buffer only while batches stay big. */
	if (w->rec.cap > (4u << 20))
		sp_buf_free(&w->rec);
	else
		sp_buf_clear(&w->rec);
	return 0;
}

/* ---- durability ---- */

int wal_sync(struct wal *w)
{
	if (w->dir_dirty) {
		if (fsync(w->dirfd) != 0)
			return -errno;
		w->dir_dirty = 0;
	}
	/* A segment rotated out may still hold records never synced. */
	int err = 0;
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->nold && !err; i++) {
		if (w->old[i].unsynced && fdatasync(w->old[i].fd) != 0)
			err = -errno;
		else
			w->old[i].unsynced = 0;
	}
	pthread_mutex_unlock(&w->lock);
	if (err)
		return err;
	/* The loop may append while this runs: fdatasync covers at least
	 * every write that completed before it was called. */
	if (fdatasync(w->active.fd) != 0)
		return -errno;
	return 0;
}

int wal_rotate(struct wal *w)
{
	struct segment next;
	int err = create_segment(w, w->active.id + 1, &next);
	if (err)
		return err;
	pthread_mutex_lock(&w->lock);
	w->old = sp_realloc(w->old, (w->nold + 1) * sizeof(*w->old));
	w->old[w->nold++] = w->active;
	pthread_mutex_unlock(&w->lock);
	atomic_fetch_add(&w->old_bytes, w->active.size);
	w->active = next;
	return 0;
}

int wal_retire(struct wal *w)
{
	char name[64];
	size_t i = 0;
	int err = 0;
	/* Holding the lock keeps a concurrent wal_sync off these files. Oldest
	 * first: a cut in the middle leaves a suffix (see above). */
	pthread_mutex_lock(&w->lock);
	for (; i < w->nold; i++) {
		segment_name(name, sizeof(name), w->old[i].id);
		if (unlinkat(w->dirfd, name, 0) != 0 && errno != ENOENT) {
			err = -errno;
			break;
		}
		close(w->old[i].fd);
		atomic_fetch_sub(&w->old_bytes, w->old[i].size);
	}
	if (i > 0 && w->nold > i)
		memmove(w->old, w->old + i, (w->nold - i) * sizeof(*w->old));
	w->nold -= i;
	pthread_mutex_unlock(&w->lock);
	if (err == 0 && fsync(w->dirfd) != 0)
		err = -errno;
	return err;
}

void wal_next_end(const struct wal *w, uint64_t *segment, uint64_t *offset)
{
	*segment = w->active.id;
	*offset = w->active.size + w->rec.len;
}

int wal_set_replay_floor(struct wal *w, uint64_t segment, uint64_t offset)
{
	w->floor_id = segment;
	w->floor_off = offset;
	if (w->active.id > segment)
		return 0;
	/* The log directory was emptied by hand while the tree remembers a
	 * later position: renumber the new (still empty) active segment past
	 * it, so that its records are not taken for ones the tree has. */
	char from[64], to[64];
	segment_name(from, sizeof(from), w->active.id);
	segment_name(to, sizeof(to), segment + 1);
	if (renameat(w->dirfd, from, w->dirfd, to) != 0)
		return -errno;
	w->active.id = segment + 1;
	w->dir_dirty = 1;
	return 0;
}

uint64_t wal_active_bytes(const struct wal *w)
{
	return w->active.size;
}

uint64_t wal_total_bytes(const struct wal *w)
{
	return w->active.size + atomic_load(&w->old_bytes);
}
