/*
 * store: durable key/value storage on LMDB.
 *
 * The one place spectra's data touches disk. Engines and the server call it
 * from the event-loop thread only; it never blocks on fsync there. Writes go
 * into one open write transaction (a "batch") that store_commit ends; the
 * environment is opened with MDB_NOSYNC so a commit only
 * writes to the OS page cache (which survives kill -9 of the process) and
 * does not wait for the disk. store_sync makes every committed batch durable
 * against power loss; it is the only call that may run on another thread,
 * and the server runs it on libuv's thread pool (group commit).
 *
 * Each value carries a small header: a type byte, flags, an absolute
 * expiry time and a revision. Expiry is judged against a time the caller
 * passes in (the store has no clock); a second LMDB database indexes keys
 * by expiry so expired keys can be removed in order. The revision is a
 * number the caller sets (store_set_revision): the strong engine uses the
 * Raft index of the entry that last wrote the value.
 *
 * The strong engine's state machine also keeps small named "meta records"
 * here (applied index, keyspace definitions, node addresses), and ships a
 * node's whole state to a lagging follower as a snapshot stream read from
 * one LMDB read transaction (store_snap_*), installed there by
 * store_restore. The strong engine runs the store with wal = 0: the Raft
 * log is its write-ahead log. The store's own log records key writes only;
 * meta records and restores are not in it, so with wal = 1 they are durable
 * against power loss only once a checkpoint has synced the tree (they
 * survive kill -9 of the process either way).
 *
 * It must not: call into the network, the engines or the clock; log on the
 * hot path; keep pointers into LMDB past the documented lifetime.
 */
#ifndef SP_STORE_STORE_H
#define SP_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

struct store_options {
	const char *dir;      /* data directory; created if missing (mode 0700) */
	uint64_t map_size;    /* LMDB map size, bytes (upper bound on data size) */
	unsigned max_readers; /* LMDB reader slots; 0 means LMDB's default */
	int wal;	      /* record batches in the write-ahead log, so that
			       * store_sync is one sequential fsync (see wal.h);
			       * a log left by an earlier run is replayed at open
			       * either way */
};

/* Value types. Only strings exist in the foundation; engines add more. */
enum store_type {
	STORE_STRING = 0,
	STORE_MODEL = 1, /* a model registry record (src/server/model.h) */
};

struct store_value {
	uint8_t type;	       /* enum store_type */
	uint8_t flags;	       /* reserved for engines; stored and returned as is */
	uint64_t expire_at_ms; /* absolute Unix ms; 0 = never expires */
	const void *data;      /* payload */
	size_t len;
	uint64_t rev; /* revision of the write that last set the value (see
		       * store_set_revision); filled by store_get and
		       * store_scan, ignored by store_put. Last, so that
		       * positional initialisers of the fields above stay
		       * short by exactly this one. */
};

struct store_stats {
	uint64_t keys;	     /* entries, expired-but-not-yet-removed included */
	uint64_t expires;    /* entries with an expiry */
	uint64_t commits;    /* batches committed since open */
	uint64_t syncs;	     /* completed store_sync calls since open */
	uint64_t map_size;   /* bytes */
	uint64_t used_bytes; /* pages in use * page size */
};

/*
 * store_open opens (creating if needed) the store in opts->dir.
 * Returns 0 and sets *out, or SP_ERR_IO (with the errno in the log line the
 * caller writes from sp_strerror) / a negated errno / SP_ERR_CORRUPT when
 * the files exist but are not a valid spectra store. *out is owned by the
 * caller and released with store_close.
 */
int store_open(struct store **out, const struct store_options *opts);

/* store_close commits any open batch, syncs, and releases everything.
 * Every snapshot (store_snap_open) must be closed before. NULL is
 * accepted. */
void store_close(struct store *s);

/* store_max_key_len is the longest key the store accepts (an LMDB limit,
 * less the expiry index's 8-byte prefix). */
size_t store_max_key_len(const struct store *s);

/*
 * store_get looks a key up, seeing every write made through s, committed or
 * not. A key whose expiry is <= now_ms is reported as missing.
 * Returns 0 and fills *out, SP_ERR_NOTFOUND, SP_ERR_KEYLEN, or SP_ERR_IO.
 * out->data is borrowed from the store until the next call on s.
 */
int store_get(struct store *s, const void *key, size_t klen, uint64_t now_ms,
	      struct store_value *out);

/*
 * store_set_revision sets the revision that every later store_put and
 * store_set_expire through s stamps on the value it writes (0 until
 * called; it is not stored, so it is 0 again after store_open). Loop
 * thread only.
 */
void store_set_revision(struct store *s, uint64_t rev);

/*
 * store_put writes a key into the open batch (opening one if needed),
 * replacing any old value and keeping the expiry index in step; the value
 * gets the current revision (store_set_revision), whatever v->rev holds.
 * Returns 0, SP_ERR_KEYLEN, SP_ERR_TOOBIG (v->len over LMDB's 4 GiB value
 * limit less the 19-byte header; the batch is untouched), SP_ERR_FULL (map
 * size reached; the batch is aborted and every uncommitted write in it is
 * lost, so callers commit before replying), or SP_ERR_IO. v->data is
 * copied; it may be a value just borrowed from store_get on s (as a copy or
 * rename does).
 */
int store_put(struct store *s, const void *key, size_t klen, const struct store_value *v);

/*
 * store_del removes a key in the open batch. An expired key is removed too
 * but reported as absent. Returns 1 if a live key was removed, 0 if there
 * was none, or a negative error as store_put.
 */
int store_del(struct store *s, const void *key, size_t klen, uint64_t now_ms);

/* store_set_expire changes only the expiry of a live key (0 = persist) and
 * stamps it with the current revision (a call that changes neither writes
 * nothing). Returns 1 if the key exists and was updated, 0 if absent, or
 * an error. */
int store_set_expire(struct store *s, const void *key, size_t klen, uint64_t expire_at_ms,
		     uint64_t now_ms);

/* store_flush removes every key in the open batch. Returns 0 or an error. */
int store_flush(struct store *s);

/*
 * store_scan visits live keys in byte order strictly after `after` (or from
 * the first key when after_len is 0 and after is NULL), calling fn for each
 * until fn returns non-zero or `limit` keys were visited. Key and value are
 * borrowed for the duration of the callback; fn must not call the store.
 * Sets *more to 1 if keys remain after the last visited one.
 * Returns the number of keys visited or a negative error.
 */
typedef int (*store_scan_fn)(void *ctx, const void *key, size_t klen, const struct store_value *v);
int store_scan(struct store *s, const void *after, size_t after_len, size_t limit, uint64_t now_ms,
	       store_scan_fn fn, void *ctx, int *more);

/*
 * store_expire_cycle removes up to max_keys keys whose expiry is <= now_ms,
 * oldest expiry first, in the open batch. Returns the number removed or a
 * negative error.
 */
int store_expire_cycle(struct store *s, uint64_t now_ms, size_t max_keys);

/*
 * store_count_expired counts keys whose expiry is <= now_ms but that the
 * expiry cycle has not removed yet (at most `limit`; they are the first
 * entries of the expiry index, so this is short while the cycle keeps up).
 * store_stats counts them; subtract this for live keys. Returns 0 or an
 * error.
 */
int store_count_expired(struct store *s, uint64_t now_ms, uint64_t limit, uint64_t *out);

/* store_has_batch returns 1 if a write batch is open (uncommitted writes). */
int store_has_batch(const struct store *s);

/*
 * store_commit commits the open batch, if any: after it returns 0 the writes
 * survive kill -9 of the process (they are in the OS page cache) but not yet
 * power loss; store_sync does that. Returns 0, SP_ERR_FULL, or SP_ERR_IO; on
 * error the batch's writes are lost and the caller must fail their replies.
 */
int store_commit(struct store *s);

/* store_batches_lost counts the batches the store dropped because a write
 * or a commit failed (every write in them is gone, including those of
 * earlier calls that returned 0); *last_err, if not NULL, gets the reason
 * for the last one. A caller that saw the count move must not answer the
 * dropped writes as done. */
uint64_t store_batches_lost(const struct store *s, int *last_err);

/*
 * store_commit_checked is store_commit for a caller that acknowledges
 * writes once they are committed: it also fails when a batch was dropped
 * since the last call (store_batches_lost moved past *lost_seen, which it
 * then updates), because writes made before that failure and already
 * answered were in it. Returns 0 or the error (the last drop's reason,
 * or SP_ERR_IO).
 */
int store_commit_checked(struct store *s, uint64_t *lost_seen);

/* store_abort discards the open batch, if any. */
void store_abort(struct store *s);

/*
 * store_sync flushes every batch committed before the call to stable
 * storage (fdatasync of the write-ahead log, or of the tree without it).
 * Safe to call from one other thread while the loop thread keeps reading,
 * writing and committing, and while a store_checkpoint runs on a third.
 * Returns 0 or an error.
 */
int store_sync(struct store *s);

/*
 * Checkpoints keep the write-ahead log short. store_checkpoint_begin (loop
 * thread, with no store_sync or store_checkpoint in flight) starts a new
 * log segment;
 * store_checkpoint (may run on another thread, like store_sync) syncs the
 * tree's file, which then holds every batch committed before it, and
 * deletes the segments that came before the one begun. Without the log,
 * store_checkpoint is a sync of the tree. Both return 0 or an error.
 */
int store_checkpoint_begin(struct store *s);
int store_checkpoint(struct store *s);
/* store_wal_bytes is the size of the write-ahead log (loop thread). */
uint64_t store_wal_bytes(const struct store *s);

/* store_stats fills *st. Loop thread only. */
void store_get_stats(struct store *s, struct store_stats *st);

/* ---- meta records ----
 *
 * Named records (a name is 1 to store_meta_max_name_len bytes, no NUL)
 * holding small values that are replicated state rather than keys: the
 * strong engine's applied index, keyspace definitions, node addresses.
 * They live in the store's "meta" database under their own namespace, so
 * no name collides with the store's own records (its format marker), are
 * written in the open batch like keys, are seen by the reads below through
 * that batch, and travel in snapshots. Expiry and revisions do not apply.
 * The write-ahead log does not record them (see the top of this file).
 */

/* store_meta_max_name_len is the longest meta record name accepted. */
size_t store_meta_max_name_len(const struct store *s);

/*
 * store_meta_put sets name to the len bytes at val (val may be NULL when
 * len is 0) in the open batch, opening one if needed. val is copied; it may
 * be a value just borrowed from store_meta_get on s. Returns 0,
 * SP_ERR_INVAL (name NULL or empty), SP_ERR_KEYLEN (name too long),
 * SP_ERR_TOOBIG (len over 4 GiB - 1), or a batch error as store_put
 * (SP_ERR_FULL, SP_ERR_IO: the batch is lost).
 */
int store_meta_put(struct store *s, const char *name, const void *val, size_t len);

/*
 * store_meta_get looks a meta record up, seeing the open batch. Returns 0
 * and sets *val and *len, SP_ERR_NOTFOUND, SP_ERR_INVAL, SP_ERR_KEYLEN, or
 * SP_ERR_IO. *val is borrowed from the store until the next call on s.
 */
int store_meta_get(struct store *s, const char *name, const void **val, size_t *len);

/* store_meta_del removes a meta record in the open batch (opening one only
 * if the record exists). Returns 1 if removed, 0 if absent, or an error as
 * store_meta_put. */
int store_meta_del(struct store *s, const char *name);

/*
 * store_meta_scan calls fn for every meta record whose name starts with
 * prefix (NULL or "" for all), in byte order of the names, until fn
 * returns non-zero, seeing the open batch. name (NUL-terminated) and val
 * are borrowed for the duration of the callback; fn must not call the
 * store. Returns the number of records fn was called for, or SP_ERR_IO /
 * SP_ERR_CORRUPT.
 */
typedef int (*store_meta_fn)(void *ctx, const char *name, const void *val, size_t len);
int store_meta_scan(struct store *s, const char *prefix, store_meta_fn fn, void *ctx);

/* ---- snapshots ----
 *
 * A snapshot stream is the store's whole committed state as bytes: every
 * key with its full value header (type, flags, expiry even if past,
 * revision) and every meta record, self-describing and checksummed:
 *
 *   header   "SPSNAPv1" | version:u32 (1) | reserved:u32 (0)
 *   key      'K' | type:u8 | flags:u8 | expire_at_ms:u64 | rev:u64 |
 *            klen:u32 | key | vlen:u32 | value
 *   meta     'M' | nlen:u32 | name | vlen:u32 | value
 *   trailer  'E' | keys:u64 | metas:u64 | crc:u32
 *
 * Integers are little-endian; keys come in strictly ascending byte order,
 * then meta records likewise; crc is the CRC-32 (zlib's) of every byte
 * before it, and the trailer ends the stream. The expiry index is not in
 * it: store_restore rebuilds it.
 */
struct store_snap;

/*
 * store_snap_open commits the open batch (returning its error, if any) and
 * opens a read transaction on the committed state, which the stream then
 * shows however the store is written afterwards. Several may be open at
 * once, on the loop thread, each holding an LMDB reader slot
 * (opts->max_readers) and keeping the pages of its state from reuse until
 * closed, so the map grows while one stays open under writes. Returns 0
 * and sets *out, SP_ERR_FULL / SP_ERR_IO from the commit, or an error
 * opening the transaction (SP_ERR_IO when no reader slot is free). *out is
 * owned by the caller, released with store_snap_close before store_close.
 */
int store_snap_open(struct store *s, struct store_snap **out);

/*
 * store_snap_read copies up to cap bytes of the stream, starting at offset,
 * into buf, and sets *last to whether they reach the stream's end. A read
 * at the offset where the previous one ended costs what it copies; an
 * earlier offset rewinds (the stream is rebuilt from its start up to
 * offset, so it costs the offset too); a later one is SP_ERR_INVAL. At
 * most INT_MAX bytes are copied per call. Returns the number of bytes
 * copied (0 only at the end), SP_ERR_INVAL, SP_ERR_CORRUPT (a stored value
 * this version cannot read), or SP_ERR_IO; after an error other than
 * SP_ERR_INVAL every later call returns it again (close the snapshot).
 * Loop thread; buf is the caller's.
 */
int store_snap_read(struct store_snap *snap, uint64_t offset, uint8_t *buf, uint32_t cap,
		    bool *last);

/* store_snap_bytes_sent is the stream position after the last
 * store_snap_read (the offset the next sequential read starts at). */
uint64_t store_snap_bytes_sent(const struct store_snap *snap);

/* store_snap_close ends the snapshot's read transaction and frees it.
 * NULL is accepted. */
void store_snap_close(struct store_snap *snap);

/*
 * store_snap_verify_file checks that the file at path holds one complete,
 * well-formed snapshot stream (header, every record's lengths and order,
 * trailer counts, CRC, nothing after the trailer). Key and name lengths
 * are checked only against the stream's own bounds: a store with a lower
 * limit can still refuse it at store_restore. Returns 0, SP_ERR_CORRUPT,
 * SP_ERR_INVAL (not a regular file), or a negated errno when the file
 * cannot be read.
 */
int store_snap_verify_file(const char *path);

/*
 * store_restore replaces the store's whole contents (keys, expiry index,
 * meta records; the store's own format marker stays) with the snapshot
 * stream in the file at path. The stream is verified completely first (as
 * store_snap_verify_file, and against this store's key and name limits):
 * a bad one is SP_ERR_CORRUPT and changes nothing. Then the open batch is
 * committed, and the contents replaced in one write transaction that is
 * committed before return; if that fails (SP_ERR_FULL: the map must hold
 * the old and the new state at once; SP_ERR_IO) the store keeps its old
 * contents. Durable once store_sync returns after it (wal = 0). Returns 0
 * or an error as listed, SP_ERR_INVAL when path is not a regular file, or
 * a negated errno when it cannot be read. The file is only read.
 */
int store_restore(struct store *s, const char *path);

/*
 * store_check walks the whole store in the current view (the open batch, if
 * any) and verifies its invariants: the format marker, every value's header
 * (version, length), that the meta database holds only the store's own
 * records and well-named meta records, and that the expiry index holds exactly one entry per key
 * with an expiry, with the same time. It is O(n log n) and meant for tests and `spectra check`, not
 * the serving path. Returns 0, SP_ERR_CORRUPT (the first problem found is logged at warn level), or
 * SP_ERR_IO.
 */
int store_check(struct store *s);

#endif
