/*
 * raft_log: the durable Raft log and hard state behind the strong engine.
 *
 * Why: the Raft core (raft/raft.h) is pure; each update asks the node to
 * persist a truncation, entries and the hard state, and to report when they
 * are durable. This module is that storage: an append-only, segmented log
 * in which each loop iteration's persist actions become one record written
 * with one write(2), and a thread-pool job makes everything written so far
 * durable with one fdatasync (group commit: many entries, many iterations,
 * one sync). At open it replays the log and hands the core what it held
 * (struct raft_restore), having cut away a tail that a crash left torn.
 *
 * Format. A directory of segment files "rlog-<16 lower-case hex digits>.seg"
 * with consecutive numbers, each starting with the 8-byte magic "SPRLOG1\n"
 * and holding records:  u32 payload length | u32 CRC-32 (zlib) of the
 * payload | payload. All integers are little-endian. A payload is a
 * sequence of operations, applied in order:
 *   'T' after:u64                          drop every entry with index > after
 *   'E' term:u64 index:u64 type:u8 len:u32 data[len]      append one entry
 *   'H' term:u64 vote:u64 commit:u64                      set the hard state
 *   'S' index:u64 term:u64 n:u32 n * (id:u64 role:u8)     snapshot marker
 *   'B' last:u64                                          segment base
 * An entry's index must be the log's last index + 1. A snapshot marker
 * says the state machine up to index is durable elsewhere: entries up to
 * index are dropped, later ones are kept (a log shorter than index becomes
 * empty after it), and markers never move back. A truncation may not reach
 * below the snapshot. The first record of every segment is its base: the
 * hard state, the snapshot marker (if any) and 'B' with the log's last
 * index at that point, so that once a snapshot covers every entry of the
 * older segments they can be deleted and replay can begin at the base
 * ('B' is accepted nowhere else; it must agree with the log before it,
 * unless it opens the oldest segment left).
 *
 * Threads. Everything runs on the loop thread except raft_log_sync and
 * raft_log_compact, which may each run on another thread (one call of each
 * at a time) while the loop keeps buffering and writing, and
 * raft_log_bytes, which any thread may call. raft_log_close runs when no
 * sync or compaction is in flight.
 *
 * It must not: know about the Raft core's state beyond what it is told,
 * trust a length or checksum it read, or serve anything that follows a
 * record it could not read.
 */
#ifndef SP_ENGINE_STRONG_RAFT_LOG_H
#define SP_ENGINE_STRONG_RAFT_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "engine/strong/raft/raft.h"

/* Segments rotate once a record would take them past this size. */
#define RAFT_LOG_SEGMENT_BYTES (64u << 20)

struct raft_log;

/* What recovery found and did at open. */
struct raft_log_recovery {
	uint64_t segments;	   /* segment files read */
	uint64_t records;	   /* whole records replayed */
	uint64_t entries;	   /* entry operations replayed (before truncations) */
	uint64_t torn_bytes;	   /* bytes cut: a record never completed, and all after it */
	uint64_t segments_removed; /* whole segment files removed with a torn tail */
};

/*
 * raft_log_open opens the log in dir, creating the directory (not its
 * parents) when missing, and recovers it: every segment is replayed oldest
 * first; a record that is cut short or fails its checksum ends the log, and
 * everything from it on (the rest of that segment and every later one) is
 * removed and logged as a warning, because it was never acknowledged as
 * durable in order. What remains is synced, and new records go to a fresh
 * segment. Returns 0 and sets *out; a negated errno; or SP_ERR_CORRUPT,
 * leaving the files untouched, for a record whose checksum holds but which
 * does not decode, entries that are not contiguous after truncations and
 * snapshots, a segment missing from the sequence, or a segment written in
 * another format version. Owned by the caller; release with raft_log_close.
 */
int raft_log_open(struct raft_log **out, const char *dir);

/* raft_log_close closes every file; buffered, unwritten operations are
 * dropped and nothing is synced. Accepts NULL. */
void raft_log_close(struct raft_log *l);

/*
 * raft_log_load fills out with what recovery found: the hard state, the
 * snapshot marker (has_snapshot and snap) and the entries after it,
 * contiguous and in order. out->bootstrap is not touched. stats, when not
 * NULL, receives the recovery counters. The entries and their data are
 * owned by the log and stay valid until the next loop-thread call that
 * buffers, discards or writes, or raft_log_close, which release them: call
 * it once, before the first write. Returns 0, or SP_ERR_INVAL once they
 * have been released.
 */
int raft_log_load(struct raft_log *l, struct raft_restore *out, struct raft_log_recovery *stats);

/*
 * Buffering one batch (loop thread). Operations accumulate in memory, in
 * call order, until raft_log_write writes them as one record or
 * raft_log_discard drops them. Each is checked against the log as it
 * stands after the operations before it; the first that does not fit (an
 * entry whose index is not the last index + 1, a zero term, an unknown
 * type, a truncation below the snapshot, a snapshot marker at index 0 or
 * before the current one, a bad configuration) spoils the batch: nothing
 * of it is written and raft_log_write returns SP_ERR_INVAL.
 *
 * raft_log_truncate_after drops every entry with index > index (Raft §3.5:
 * a follower's conflicting suffix). raft_log_append copies n entries (data
 * included; the caller keeps its own). raft_log_set_hard_state records hs
 * (the last one written wins). raft_log_set_snapshot records that the
 * state machine up to m->index, with m->conf, is durable elsewhere, so
 * entries up to it may go; entries after it are kept. To replace the whole
 * log with a received snapshot, follow it with
 * raft_log_truncate_after(m->index). Every argument is borrowed for the call.
 */
void raft_log_truncate_after(struct raft_log *l, uint64_t index);
void raft_log_append(struct raft_log *l, const struct raft_entry *e, size_t n);
void raft_log_set_hard_state(struct raft_log *l, const struct raft_hard_state *hs);
void raft_log_set_snapshot(struct raft_log *l, const struct raft_snapshot_meta *m);
/* raft_log_discard drops the buffered operations. */
void raft_log_discard(struct raft_log *l);

/*
 * raft_log_write appends the buffered operations as one CRC-framed record
 * with one write(2) (loop thread; no fsync: after it returns the record
 * survives kill -9, not power loss). When the record would take the active
 * segment past the segment size, a new segment is started first, opening
 * with a base record. Returns 0 (also with nothing buffered), SP_ERR_INVAL
 * for a spoiled batch, SP_ERR_TOOBIG for a record over 4 GiB, SP_ERR_IO
 * after a failed write that could not be cut back, the error of an earlier
 * failed raft_log_sync (which is final), or a negated errno after cutting
 * the segment back, so a failed write leaves no partial record. The batch
 * is gone either way.
 */
int raft_log_write(struct raft_log *l);

/*
 * raft_log_sync makes every record that raft_log_write had returned before
 * the call durable: the directory when a segment was created since the
 * last sync, each segment a rotation completed, and the active segment
 * (fdatasync). Any thread, one call at a time, concurrent with the loop's
 * writes; it blocks a rotation for as long as it runs. Returns 0 or a
 * negated errno. A failure is final: the kernel may have dropped the pages
 * it could not write, so every later sync and write returns the same error
 * and the node must reopen the log (recovery then shows what is on disk).
 */
int raft_log_sync(struct raft_log *l);

/*
 * raft_log_compact deletes the oldest segments whose entries a durable
 * snapshot marker covers: a segment goes when the base of the one after it
 * is durable and that base's last index is at or before the snapshot index
 * of the last successful raft_log_sync. The active segment is never
 * deleted. Segments are removed oldest first, syncing the directory after
 * each, so a crash leaves a suffix the base records explain. Any thread,
 * one call at a time, concurrent with writes and syncs. Returns 0 or a
 * negated errno (segments not yet removed stay).
 */
int raft_log_compact(struct raft_log *l);

/* raft_log_bytes returns the size of every segment file; any thread. */
uint64_t raft_log_bytes(const struct raft_log *l);

/* raft_log_last_index returns the last index of the written log (the
 * snapshot's when it holds no entries after it; 0 when empty). Loop thread. */
uint64_t raft_log_last_index(const struct raft_log *l);

/* raft_log_set_segment_size changes the rotation size (default
 * RAFT_LOG_SEGMENT_BYTES; at least 1) for tests and tuning. Loop thread. */
void raft_log_set_segment_size(struct raft_log *l, uint64_t bytes);

#endif
