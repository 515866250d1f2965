/*
 * wal: the store's write-ahead log.
 *
 * Why: LMDB is a copy-on-write B+tree, so one 64-byte write to a random key
 * dirties at least one 4 KiB page; making every batch durable by syncing
 * the tree meant flushing hundreds of scattered pages per fsync. The log
 * turns that into one sequential append: each committed batch is one
 * record, and `fsync always` syncs only the log. The tree's file is synced
 * in the background at checkpoints, after which the log segments it covers
 * are deleted. etcd pairs its WAL with bbolt the same way.
 *
 * Format. A directory of segment files "wal-<16 hex digits>.log", numbered
 * in order, each starting with the 8-byte magic "SPWAL01\n" and holding
 * records:  u32 payload length | u32 CRC-32 of the payload | payload
 * (little-endian). A payload is a sequence of operations:
 *   'P' type:u8 flags:u8 expire_at_ms:u64 klen:u32 key vlen:u32 value
 *   'D' klen:u32 key
 *   'E' expire_at_ms:u64 klen:u32 key
 *   'F'                                   (remove every key)
 *   'R' rev:u64                           (the revision of the 'P' and
 *                                          'E' after it in this record)
 * Every operation is idempotent given the ones before it, so replaying a
 * record the tree already holds is harmless. The revision is 0 at the
 * start of every record, so a record replays the same whichever records
 * before it are skipped. 'R' is not an operation of its own: replay hands
 * its value to the callback in wal_op.rev. It came with store format 2
 * (before it, a record without one meant the same: revision 0).
 *
 * Threads: everything runs on the loop thread except wal_sync and
 * wal_retire, which may each run on another thread (at the same time as
 * each other) while the loop keeps appending. The caller runs at most one
 * of each at a time, and wal_rotate only while neither is in flight.
 *
 * It must not: know about LMDB, or trust a length or checksum it read.
 */
#ifndef SP_STORE_WAL_H
#define SP_STORE_WAL_H

#include <stddef.h>
#include <stdint.h>

struct wal;

enum wal_op_kind { WAL_PUT = 'P', WAL_DEL = 'D', WAL_EXPIRE = 'E', WAL_FLUSH = 'F' };

/* One operation read back by wal_replay; pointers are borrowed for the
 * duration of the callback. 'R' entries are not passed on: they set rev. */
struct wal_op {
	enum wal_op_kind kind;
	const void *key;
	size_t klen;
	uint8_t type, flags;   /* WAL_PUT */
	uint64_t expire_at_ms; /* WAL_PUT, WAL_EXPIRE */
	const void *data;      /* WAL_PUT */
	size_t len;
	uint64_t rev; /* WAL_PUT, WAL_EXPIRE: the record's last 'R', or 0 */
};

struct wal_replay_stats {
	uint64_t segments, records, ops;
	uint64_t torn_bytes; /* bytes cut from the end: a record never completed */
	uint64_t skipped;    /* records at or before the replay floor */
};

/*
 * wal_open opens (creating) the log in dir. Existing segments are kept for
 * wal_replay; new records go to a fresh segment. Returns 0 and sets *out,
 * or a negated errno. Owned by the caller; release with wal_close.
 */
int wal_open(struct wal **out, const char *dir);
/* wal_close closes every file. Buffered, unappended ops are dropped. */
void wal_close(struct wal *w);

/*
 * wal_replay calls fn for every operation of every complete record in the
 * segments that existed at open, oldest first. A record that is cut short
 * or fails its checksum ends the replay: what follows it (in that segment
 * and any later one) was never acknowledged as durable in order, and is
 * removed, counted in st->torn_bytes and logged. fn returning non-zero
 * stops the replay with that value. Returns 0, fn's value, or a negated
 * errno, or SP_ERR_CORRUPT for a record whose checksum holds but which does
 * not decode, or a segment written in another format version.
 */
typedef int (*wal_apply_fn)(void *ctx, const struct wal_op *op);
int wal_replay(struct wal *w, wal_apply_fn fn, void *ctx, struct wal_replay_stats *st);

/* Recording the open batch: operations are buffered in memory until
 * wal_append writes them as one record, or wal_discard drops them. */
void wal_put(struct wal *w, const void *key, size_t klen, uint8_t type, uint8_t flags,
	     uint64_t expire_at_ms, const void *data, size_t len);
void wal_del(struct wal *w, const void *key, size_t klen);
void wal_expire(struct wal *w, const void *key, size_t klen, uint64_t expire_at_ms);
void wal_flush_all(struct wal *w);
/* wal_revision sets the revision of the puts and expiry changes recorded
 * after it in the same record (each record starts at 0). */
void wal_revision(struct wal *w, uint64_t rev);
void wal_discard(struct wal *w);
/* wal_pending returns 1 when operations are buffered. */
int wal_pending(const struct wal *w);

/*
 * wal_append writes the buffered operations as one record to the active
 * segment with write(2) (no fsync: after it returns the record survives
 * kill -9 of the process, not power loss). Returns 0, or a negated errno
 * after cutting the segment back to its previous end, so a failed append
 * leaves no partial record.
 */
int wal_append(struct wal *w);

/* wal_sync makes every appended record durable (fdatasync, and the
 * directory after a rotation). Other-thread safe as described above.
 * Returns 0 or a negated errno. */
int wal_sync(struct wal *w);

/* wal_rotate starts a new active segment; the older ones stay until
 * wal_retire. Returns 0 or a negated errno (the old segment stays active). */
int wal_rotate(struct wal *w);
/* wal_retire deletes every segment but the active one: call it only once
 * what they hold is durable elsewhere (the tree was synced after the
 * rotation). Returns 0 or a negated errno. */
int wal_retire(struct wal *w);

/*
 * Positions. wal_next_end gives where the record being built will end once
 * appended (segment id, byte offset); the store keeps it in the tree in
 * the same transaction as the batch. wal_set_replay_floor (before
 * wal_replay) makes replay skip records ending at or before that position:
 * the tree already holds them, and replaying them over a tree that is
 * ahead of a log cut short by a crash would move keys back in time. It
 * returns 0 or a negated errno.
 */
void wal_next_end(const struct wal *w, uint64_t *segment, uint64_t *offset);
int wal_set_replay_floor(struct wal *w, uint64_t segment, uint64_t offset);

/* Bytes in the active segment, and in all segments. */
uint64_t wal_active_bytes(const struct wal *w);
uint64_t wal_total_bytes(const struct wal *w);

#endif
