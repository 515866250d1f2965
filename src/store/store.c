/*
 * store: durable key/value storage on LMDB (see store.h for the contract).
 *
 * On-disk layout, format 2. One LMDB environment in opts->dir, opened with
 * MDB_NOSYNC | MDB_WRITEMAP | MDB_NOTLS, holding three named databases.
 * WRITEMAP: a commit writes no pages through pwrite (they are already in
 * the shared map), which measured 2.6x faster for pipelined writes to
 * random keys; the price is that a full disk shows as SIGBUS at a write
 * into the map (spectrad reports it and stops; nothing acknowledged is
 * lost) and that data.mdb is a sparse file as large as the map. NOSYNC:
 * durability comes from the write-ahead log (wal.c) and checkpoints.
 *
 *   "meta"     "format" -> 4-byte big-endian STORE_FORMAT. A format change
 *              bumps the number; a binary of another format then refuses
 *              the directory (SP_ERR_CORRUPT) instead of misreading it.
 *              Format 2 added the revision to the value header; format 1
 *              directories are refused, not migrated.
 *              "wal_pos" -> see below.
 *              "app/" name -> a meta record (store_meta_put). The store's
 *              own names are bare words with no '/', so no meta record
 *              can collide with them.
 *   "keys"     'k' key -> value. LMDB rejects zero-length keys and Redis
 *              allows the empty key, so every key carries a one-byte prefix.
 *              The prefix is constant, so LMDB's byte order is the keys'
 *              byte order.
 *   "expires"  8-byte big-endian expire_at_ms, then the key (unprefixed: the
 *              8 bytes already make it non-empty) -> empty value. Big-endian
 *              makes byte order equal time order, so the oldest expiry is
 *              the first entry.
 *
 * A value is a 19-byte header followed by the payload:
 *   [0] STORE_VALUE_VERSION  [1] type  [2] flags  [3..10] expire_at_ms (BE)
 *   [11..18] rev (BE)
 *
 * Key length: the index key is 8 + klen bytes and the keys-db key 1 + klen,
 * so the index is the tighter bound: klen <= mdb_env_get_maxkeysize() - 8
 * (503 with Debian's LMDB).
 *
 * Transactions. Writes go into one lazily begun write transaction (the
 * batch). Reads use the batch when one is open, so they see uncommitted
 * writes; otherwise they use one long-lived read-only transaction that is
 * renewed on the first read after it was parked. It is parked
 * (mdb_txn_reset) whenever a batch begins, and every commit happens in a
 * batch, so a live reader always sees the latest commit without renewing it
 * per read. This relies on being the only writer to the environment, which
 * the flock on "spectra.lock" guarantees.
 *
 * Snapshots (store_snap_*) each hold a read-only transaction of their own
 * for as long as they are open, beside the batch and the reader, all on
 * the loop thread: MDB_NOTLS ties reader slots to transactions rather than
 * threads, which is what lets one thread hold several read transactions
 * and a write transaction at once.
 */
#include "store/store.h"

#include "common/alloc.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "store/wal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define STORE_FORMAT	    2u	/* the "format" value in the meta database */
#define STORE_VALUE_VERSION 2u	/* first byte of every value */
#define STORE_HDR_LEN	    19u /* version, type, flags, 8-byte expiry, 8-byte rev */
#define STORE_HDR_EXPIRE    3u	/* offset of the expiry in the header */
#define STORE_HDR_REV	    11u /* offset of the revision in the header */
#define STORE_KEY_PREFIX    'k'
#define STORE_IDX_PREFIX    8u		/* bytes of expiry before the key in the index */
#define STORE_MAX_DATA	    0xffffffffu /* LMDB's limit on one value */
/* set_expire copies values through scratch; above this it is freed after use
 * so one huge value does not pin memory. */
#define STORE_SCRATCH_KEEP (64u * 1024u)

static const char format_key[] = "format";
/* "wal_pos": where in the write-ahead log the last batch committed to the
 * tree ends (u64 segment, u64 offset, big-endian); see wal_set_replay_floor. */
static const char wal_pos_key[] = "wal_pos";
/* Meta records are "app/" + name in the meta database. */
static const char meta_prefix[] = "app/";
#define META_PREFIX_LEN (sizeof(meta_prefix) - 1)

struct store {
	MDB_env *env;
	MDB_dbi meta_dbi;
	MDB_dbi keys_dbi;
	MDB_dbi expires_dbi;
	MDB_txn *batch;	 /* the open write transaction, or NULL */
	MDB_txn *reader; /* long-lived read-only transaction */
	int reader_live; /* reader renewed and not yet reset */
	size_t max_key_len;
	unsigned char *kbuf; /* 'k' + key; 1 + max_key_len bytes */
	unsigned char *ibuf; /* expiry + key; 8 + max_key_len bytes */
	unsigned char *mbuf; /* "app/" + meta name + NUL */
	size_t max_meta_name;
	unsigned char *scratch; /* value copy for store_set_expire */
	size_t scratch_cap;
	uintptr_t map_lo, map_hi; /* the memory map, to spot borrowed values */
	uint64_t commits;
	atomic_uint_fast64_t syncs;
	int lock_fd;
	struct wal *wal;       /* the write-ahead log */
	int use_wal;	       /* record batches in it (fsync always/batch) */
	int replaying;	       /* applying the log at open: do not record again */
	uint64_t batches_lost; /* batches dropped because a write or commit failed */
	int lost_err;	       /* why the last one was dropped */
	uint64_t rev;	       /* stamped on every put and expiry change */
	uint64_t rec_rev;      /* the revision the log record being built is at */
	unsigned snaps_open;   /* store_snap objects not yet closed */
};

/* Record an operation of the open batch in the log. */
#define LOGGING(s) ((s)->use_wal && !(s)->replaying)

/* ---- encoding ---- */

static void encode_header(unsigned char *p, uint8_t type, uint8_t flags, uint64_t expire_at_ms,
			  uint64_t rev)
{
	p[0] = STORE_VALUE_VERSION;
	p[1] = type;
	p[2] = flags;
	sp_put_be64(p + STORE_HDR_EXPIRE, expire_at_ms);
	sp_put_be64(p + STORE_HDR_REV, rev);
}

/* decode_value parses a stored value; the payload stays borrowed from LMDB.
 * Anything this version did not write is SP_ERR_CORRUPT, never a crash. */
static int decode_value(const MDB_val *v, struct store_value *out)
{
	const unsigned char *p = v->mv_data;
	if (v->mv_size < STORE_HDR_LEN || p[0] != STORE_VALUE_VERSION)
		return SP_ERR_CORRUPT;
	out->type = p[1];
	out->flags = p[2];
	out->expire_at_ms = sp_get_be64(p + STORE_HDR_EXPIRE);
	out->rev = sp_get_be64(p + STORE_HDR_REV);
	out->data = p + STORE_HDR_LEN;
	out->len = v->mv_size - STORE_HDR_LEN;
	return 0;
}

/* value_expiry reads only the expiry; a header it cannot read counts as
 * "no expiry", which is what the write paths need to keep going. */
static uint64_t value_expiry(const MDB_val *v)
{
	const unsigned char *p = v->mv_data;
	if (v->mv_size < STORE_HDR_LEN || p[0] != STORE_VALUE_VERSION)
		return 0;
	return sp_get_be64(p + STORE_HDR_EXPIRE);
}

static int is_expired(uint64_t expire_at_ms, uint64_t now_ms)
{
	return expire_at_ms != 0 && expire_at_ms <= now_ms;
}

/* key_val builds the keys-db key for key in s->kbuf. klen is checked. */
static MDB_val key_val(struct store *s, const void *key, size_t klen)
{
	s->kbuf[0] = STORE_KEY_PREFIX;
	if (klen)
		memcpy(s->kbuf + 1, key, klen);
	return (MDB_val){.mv_size = klen + 1, .mv_data = s->kbuf};
}

/* index_val builds the expiry-index key for (expire_at_ms, key) in s->ibuf. */
static MDB_val index_val(struct store *s, uint64_t expire_at_ms, const void *key, size_t klen)
{
	sp_put_be64(s->ibuf, expire_at_ms);
	if (klen)
		memcpy(s->ibuf + STORE_IDX_PREFIX, key, klen);
	return (MDB_val){.mv_size = klen + STORE_IDX_PREFIX, .mv_data = s->ibuf};
}

/* ---- errors and transactions ---- */

/* map_err turns an LMDB return code into a spectra error. */
static int map_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return SP_ERR_NOTFOUND;
	case MDB_MAP_FULL:
		return SP_ERR_FULL;
	case MDB_BAD_VALSIZE:
		return SP_ERR_TOOBIG;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
		return SP_ERR_CORRUPT;
	case ENOMEM:
		return SP_ERR_NOMEM;
	default:
		return SP_ERR_IO;
	}
}

/* map_open_err is map_err for store_open, which keeps system errnos. */
static int map_open_err(int rc)
{
	if (rc > 0)
		return -rc;
	return map_err(rc);
}

static void reader_park(struct store *s)
{
	if (s->reader_live) {
		mdb_txn_reset(s->reader);
		s->reader_live = 0;
	}
}

/* view returns the transaction reads go through: the batch if open, else
 * the reader, renewed if it was parked. On failure it returns NULL and sets
 * *err. */
static MDB_txn *view(struct store *s, int *err)
{
	if (s->batch)
		return s->batch;
	if (!s->reader_live) {
		int rc = mdb_txn_renew(s->reader);
		if (rc) {
			*err = map_err(rc);
			return NULL;
		}
		s->reader_live = 1;
	}
	return s->reader;
}

static int batch_begin(struct store *s)
{
	if (s->batch)
		return 0;
	/* The reader is parked so it never pins pages this batch frees, and so
	 * the next read after the commit renews it and sees the commit. */
	reader_park(s);
	int rc = mdb_txn_begin(s->env, NULL, 0, &s->batch);
	if (rc) {
		s->batch = NULL;
		return map_err(rc);
	}
	return 0;
}

/* lose_batch drops the open batch after a failure and counts it, so the
 * caller learns from store_batches_lost that earlier writes went too. */
static int lose_batch(struct store *s, int err)
{
	if (s->batch || wal_pending(s->wal)) {
		s->batches_lost++;
		s->lost_err = err;
	}
	store_abort(s);
	return err;
}

/* batch_fail aborts the batch after a failed write: LMDB forbids further
 * use of a transaction that failed, and the contract says the batch's
 * writes are then lost. */
static int batch_fail(struct store *s, int rc)
{
	return lose_batch(s, map_err(rc));
}

/* ---- open and close ---- */

/* mkdir_p creates dir and its missing parents with mode 0700. */
static int mkdir_p(const char *dir)
{
	char *path = sp_strdup(dir);
	int err = 0;
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			err = -errno;
			break;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	free(path);
	if (err)
		return err;
	struct stat st;
	if (stat(dir, &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return 0;
}

/* lock_dir takes an exclusive flock on dir/spectra.lock so that two
 * processes (or two opens in one process) never share an environment:
 * LMDB would allow it, but the reader's freshness rule above would break. */
static int lock_dir(const char *dir, int *fd_out)
{
	size_t n = strlen(dir) + sizeof("/spectra.lock");
	char *path = sp_malloc(n);
	snprintf(path, n, "%s/spectra.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	int err = fd < 0 ? -errno : 0;
	free(path);
	if (err)
		return err;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

/* setup_dbs opens (creating on a fresh environment) the three databases and
 * checks the format marker. An environment that holds anything other than a
 * spectra store of this format is SP_ERR_CORRUPT. */
static int setup_dbs(struct store *s, const char *dir)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc)
		return map_open_err(rc);

	MDB_val fk = {.mv_size = sizeof(format_key) - 1, .mv_data = (void *)format_key};
	MDB_val fv;
	unsigned char fbuf[4] = {0, 0, 0, STORE_FORMAT};
	rc = mdb_dbi_open(txn, "meta", 0, &s->meta_dbi);
	if (rc == MDB_NOTFOUND) {
		/* Fresh only if the main database is empty: an environment
		 * with other contents belongs to someone else. */
		MDB_dbi main_dbi;
		MDB_stat st;
		rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
		if (rc == 0)
			rc = mdb_stat(txn, main_dbi, &st);
		if (rc)
			goto abort_txn;
		if (st.ms_entries != 0) {
			mdb_txn_abort(txn);
			return SP_ERR_CORRUPT;
		}
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta_dbi);
		if (rc == 0)
			rc = mdb_dbi_open(txn, "keys", MDB_CREATE, &s->keys_dbi);
		if (rc == 0)
			rc = mdb_dbi_open(txn, "expires", MDB_CREATE, &s->expires_dbi);
		if (rc)
			goto abort_txn;
		fv = (MDB_val){.mv_size = sizeof(fbuf), .mv_data = fbuf};
		rc = mdb_put(txn, s->meta_dbi, &fk, &fv, 0);
		if (rc)
			goto abort_txn;
	} else if (rc) {
		goto abort_txn;
	} else {
		rc = mdb_get(txn, s->meta_dbi, &fk, &fv);
		if (rc == 0 && (fv.mv_size != 4 || sp_get_be32(fv.mv_data) != STORE_FORMAT)) {
			if (fv.mv_size == 4 && sp_get_be32(fv.mv_data) < STORE_FORMAT)
				sp_error("store: %s holds a format %u store; this build reads "
					 "format %u only and does not migrate (format 2 added "
					 "revisions): move the directory aside and let the "
					 "node fetch a snapshot",
					 dir, (unsigned)sp_get_be32(fv.mv_data), STORE_FORMAT);
			else
				sp_error("store: %s holds a store of an unknown format (a "
					 "%zu-byte marker%s); this build reads format %u",
					 dir, fv.mv_size,
					 fv.mv_size == 4 ? " of a newer version" : "",
					 STORE_FORMAT);
			rc = MDB_INCOMPATIBLE;
		}
		if (rc == 0)
			rc = mdb_dbi_open(txn, "keys", 0, &s->keys_dbi);
		if (rc == 0)
			rc = mdb_dbi_open(txn, "expires", 0, &s->expires_dbi);
		if (rc == MDB_NOTFOUND)
			rc = MDB_INCOMPATIBLE;
		if (rc)
			goto abort_txn;
	}
	/* Committing makes the handles usable in every later transaction. */
	rc = mdb_txn_commit(txn);
	return map_open_err(rc);

abort_txn:
	mdb_txn_abort(txn);
	return map_open_err(rc);
}

static int replay_op(void *ctx, const struct wal_op *op)
{
	struct store *s = ctx;
	int rc;
	switch (op->kind) {
	case WAL_PUT: {
		struct store_value v = {.type = op->type,
					.flags = op->flags,
					.expire_at_ms = op->expire_at_ms,
					.data = op->data,
					.len = op->len};
		s->rev = op->rev;
		rc = store_put(s, op->key, op->klen, &v);
		break;
	}
	case WAL_DEL:
		rc = store_del(s, op->key, op->klen, 0);
		break;
	case WAL_EXPIRE:
		s->rev = op->rev;
		rc = store_set_expire(s, op->key, op->klen, op->expire_at_ms, 0);
		break;
	case WAL_FLUSH:
		rc = store_flush(s);
		break;
	default:
		rc = SP_ERR_CORRUPT;
	}
	return rc < 0 ? rc : 0;
}

/*
 * recover opens the write-ahead log in <dir>/wal and applies what it holds
 * that the tree may lack (every operation is idempotent, so applying what
 * the tree already has is harmless), then syncs the tree and empties the
 * log, so the node starts from one durable state.
 */
static int recover(struct store *s, const char *dir)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/wal", dir) >= sizeof(path))
		return SP_ERR_INVAL;
	int err = wal_open(&s->wal, path);
	if (err)
		return err;
	MDB_txn *txn = view(s, &err);
	if (!txn)
		return err;
	MDB_val pk = {sizeof(wal_pos_key) - 1, (void *)wal_pos_key}, pv;
	int rc = mdb_get(txn, s->meta_dbi, &pk, &pv);
	if (rc == 0 && pv.mv_size == 16)
		err = wal_set_replay_floor(s->wal, sp_get_be64(pv.mv_data),
					   sp_get_be64((unsigned char *)pv.mv_data + 8));
	else if (rc != 0 && rc != MDB_NOTFOUND)
		err = map_err(rc);
	if (err)
		return err;
	struct wal_replay_stats st;
	s->replaying = 1;
	err = wal_replay(s->wal, replay_op, s, &st);
	s->replaying = 0;
	s->rev = 0; /* the replayed records' revisions are not the caller's */
	if (err == 0)
		err = store_commit(s);
	if (err) {
		store_abort(s);
		sp_error("store: replaying the write-ahead log in %s failed: %s", path,
			 sp_strerror(err));
		return err;
	}
	if (st.records || st.torn_bytes)
		sp_info("store: replayed %llu records (%llu operations) from %llu log segments%s",
			(unsigned long long)st.records, (unsigned long long)st.ops,
			(unsigned long long)st.segments,
			st.torn_bytes ? "; an unfinished record at the end was dropped" : "");
	err = store_checkpoint_begin(s);
	if (err == 0)
		err = store_checkpoint(s);
	return err;
}

int store_open(struct store **out, const struct store_options *opts)
{
	int err, rc;
	if (!out || !opts || !opts->dir || !opts->dir[0])
		return SP_ERR_INVAL;

	struct store *s = sp_calloc(1, sizeof(*s));
	s->lock_fd = -1;
	atomic_init(&s->syncs, 0);

	err = mkdir_p(opts->dir);
	if (err)
		goto free_store;
	err = lock_dir(opts->dir, &s->lock_fd);
	if (err)
		goto free_store;

	rc = mdb_env_create(&s->env);
	if (rc) {
		err = map_open_err(rc);
		goto unlock;
	}
	rc = mdb_env_set_maxdbs(s->env, 3);
	if (rc == 0 && opts->map_size)
		rc = mdb_env_set_mapsize(s->env, (size_t)opts->map_size);
	if (rc == 0 && opts->max_readers)
		rc = mdb_env_set_maxreaders(s->env, opts->max_readers);
	if (rc == 0)
		rc = mdb_env_open(s->env, opts->dir, MDB_NOSYNC | MDB_WRITEMAP | MDB_NOTLS, 0600);
	if (rc) {
		err = map_open_err(rc);
		goto close_env;
	}

	/* Clear reader slots left by a killed process; they would pin pages
	 * and make the file grow. The flock means none of them is alive. */
	int dead;
	mdb_reader_check(s->env, &dead);

	int maxkey = mdb_env_get_maxkeysize(s->env);
	if (maxkey <= (int)STORE_IDX_PREFIX) {
		err = SP_ERR_INVAL;
		goto close_env;
	}
	s->max_key_len = (size_t)maxkey - STORE_IDX_PREFIX;
	s->kbuf = sp_malloc(1 + s->max_key_len);
	s->ibuf = sp_malloc(STORE_IDX_PREFIX + s->max_key_len);
	s->max_meta_name = (size_t)maxkey - META_PREFIX_LEN;
	s->mbuf = sp_malloc(META_PREFIX_LEN + s->max_meta_name + 1);

	err = setup_dbs(s, opts->dir);
	if (err)
		goto close_env;

	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->reader);
	if (rc) {
		err = map_open_err(rc);
		goto close_env;
	}
	mdb_txn_reset(s->reader);

	MDB_envinfo info;
	mdb_env_info(s->env, &info);
	s->map_lo = (uintptr_t)info.me_mapaddr;
	s->map_hi = s->map_lo + info.me_mapsize;

	err = recover(s, opts->dir);
	if (err)
		goto close_wal;
	s->use_wal = opts->wal;

	*out = s;
	return 0;

close_wal:
	wal_close(s->wal);
	mdb_txn_abort(s->reader);
close_env:
	mdb_env_close(s->env);
unlock:
	close(s->lock_fd);
free_store:
	free(s->kbuf);
	free(s->ibuf);
	free(s->mbuf);
	free(s->scratch); /* a replayed EXPIRE may have used it */
	free(s);
	return err;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	/* A snapshot's transaction and cursor would outlive the environment. */
	assert(s->snaps_open == 0);
	int err = store_commit(s);
	if (err)
		sp_error("store: final commit failed: %s", sp_strerror(err));
	mdb_txn_abort(s->reader);
	/* A clean close leaves the tree synced and the log empty. */
	err = store_checkpoint_begin(s);
	if (err == 0)
		err = store_checkpoint(s);
	if (err)
		sp_error("store: final checkpoint failed: %s", sp_strerror(err));
	wal_close(s->wal);
	mdb_env_close(s->env);
	close(s->lock_fd);
	free(s->kbuf);
	free(s->ibuf);
	free(s->mbuf);
	free(s->scratch);
	free(s);
}

size_t store_max_key_len(const struct store *s)
{
	return s->max_key_len;
}

/* ---- reads ---- */

int store_get(struct store *s, const void *key, size_t klen, uint64_t now_ms,
	      struct store_value *out)
{
	if (klen > s->max_key_len)
		return SP_ERR_KEYLEN;
	int err = 0;
	MDB_txn *txn = view(s, &err);
	if (!txn)
		return err;
	MDB_val k = key_val(s, key, klen), v;
	int rc = mdb_get(txn, s->keys_dbi, &k, &v);
	if (rc)
		return map_err(rc);
	err = decode_value(&v, out);
	if (err)
		return err;
	if (is_expired(out->expire_at_ms, now_ms))
		return SP_ERR_NOTFOUND;
	return 0;
}

/* lookup_for_write finds key for a write that only happens if the key
 * exists: it looks in the current view first so a miss opens no batch, then
 * opens the batch and returns the value as the batch sees it. */
static int lookup_for_write(struct store *s, const void *key, size_t klen, MDB_val *k, MDB_val *v)
{
	int err = 0;
	MDB_txn *txn = view(s, &err);
	if (!txn)
		return err;
	*k = key_val(s, key, klen);
	int rc = mdb_get(txn, s->keys_dbi, k, v);
	if (rc)
		return map_err(rc);
	if (txn == s->batch)
		return 0;
	err = batch_begin(s);
	if (err)
		return err;
	rc = mdb_get(s->batch, s->keys_dbi, k, v);
	if (rc && rc != MDB_NOTFOUND)
		return batch_fail(s, rc);
	return map_err(rc);
}

/* ---- writes ---- */

/* index_del removes (expire_at_ms, key) from the expiry index; an entry that
 * is already gone is fine. */
static int index_del(struct store *s, uint64_t expire_at_ms, const void *key, size_t klen)
{
	MDB_val ik = index_val(s, expire_at_ms, key, klen);
	int rc = mdb_del(s->batch, s->expires_dbi, &ik, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int index_put(struct store *s, uint64_t expire_at_ms, const void *key, size_t klen)
{
	MDB_val ik = index_val(s, expire_at_ms, key, klen);
	MDB_val empty = {.mv_size = 0, .mv_data = NULL};
	return mdb_put(s->batch, s->expires_dbi, &ik, &empty, 0);
}

/* borrowed_from_map reports whether [p, p+len) lies in LMDB's map, i.e. is a
 * value borrowed from this store that a write could move under us. */
static int borrowed_from_map(const struct store *s, const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;
	return len && a >= s->map_lo && a < s->map_hi;
}

static unsigned char *scratch_reserve(struct store *s, size_t n)
{
	if (n > s->scratch_cap) {
		free(s->scratch);
		s->scratch = sp_malloc(n);
		s->scratch_cap = n;
	}
	return s->scratch;
}

static void scratch_trim(struct store *s)
{
	if (s->scratch_cap > STORE_SCRATCH_KEEP) {
		free(s->scratch);
		s->scratch = NULL;
		s->scratch_cap = 0;
	}
}

void store_set_revision(struct store *s, uint64_t rev)
{
	s->rev = rev;
}

/* log_revision records the current revision in the log record being built
 * unless that record is already at it: replay gives each put and expiry
 * change the revision of the record's last 'R' before it (0 if none). */
static void log_revision(struct store *s)
{
	if (s->rec_rev == s->rev)
		return;
	wal_revision(s->wal, s->rev);
	s->rec_rev = s->rev;
}

int store_put(struct store *s, const void *key, size_t klen, const struct store_value *v)
{
	if (klen > s->max_key_len)
		return SP_ERR_KEYLEN;
	if (v->len > STORE_MAX_DATA - STORE_HDR_LEN)
		return SP_ERR_TOOBIG;
	const void *data = v->data;
	if (borrowed_from_map(s, data, v->len)) {
		/* The put below may rewrite the page the payload lives on. */
		data = memcpy(scratch_reserve(s, v->len), data, v->len);
	}
	int err = batch_begin(s);
	if (err)
		return err;

	MDB_val k = key_val(s, key, klen), old;
	uint64_t old_exp = 0;
	int rc = mdb_get(s->batch, s->keys_dbi, &k, &old);
	if (rc == 0)
		old_exp = value_expiry(&old);
	else if (rc != MDB_NOTFOUND)
		goto fail;

	MDB_val nv = {.mv_size = STORE_HDR_LEN + v->len, .mv_data = NULL};
	rc = mdb_put(s->batch, s->keys_dbi, &k, &nv, MDB_RESERVE);
	if (rc)
		goto fail;
	encode_header(nv.mv_data, v->type, v->flags, v->expire_at_ms, s->rev);
	if (v->len)
		memcpy((unsigned char *)nv.mv_data + STORE_HDR_LEN, data, v->len);
	/* Logged now, while the payload is known good: LMDB does not promise
	 * the reserved space stays put across the index updates below (if
	 * they fail, the batch and this log entry are dropped together). */
	if (LOGGING(s)) {
		log_revision(s);
		wal_put(s->wal, key, klen, v->type, v->flags, v->expire_at_ms, data, v->len);
	}
	if (data != v->data)
		scratch_trim(s);

	if (old_exp != v->expire_at_ms) {
		if (old_exp)
			rc = index_del(s, old_exp, key, klen);
		if (rc == 0 && v->expire_at_ms)
			rc = index_put(s, v->expire_at_ms, key, klen);
		if (rc)
			goto fail;
	}
	return 0;

fail:
	if (data != v->data)
		scratch_trim(s);
	return batch_fail(s, rc);
}

int store_del(struct store *s, const void *key, size_t klen, uint64_t now_ms)
{
	if (klen > s->max_key_len)
		return SP_ERR_KEYLEN;
	MDB_val k, v;
	int err = lookup_for_write(s, key, klen, &k, &v);
	if (err == SP_ERR_NOTFOUND)
		return 0;
	if (err)
		return err;
	uint64_t exp = value_expiry(&v);
	int rc = mdb_del(s->batch, s->keys_dbi, &k, NULL);
	if (rc == 0 && exp)
		rc = index_del(s, exp, key, klen);
	if (rc)
		return batch_fail(s, rc);
	if (LOGGING(s))
		wal_del(s->wal, key, klen);
	return is_expired(exp, now_ms) ? 0 : 1;
}

int store_set_expire(struct store *s, const void *key, size_t klen, uint64_t expire_at_ms,
		     uint64_t now_ms)
{
	if (klen > s->max_key_len)
		return SP_ERR_KEYLEN;
	MDB_val k, v;
	int err = lookup_for_write(s, key, klen, &k, &v);
	if (err == SP_ERR_NOTFOUND)
		return 0;
	if (err)
		return err;
	struct store_value cur;
	err = decode_value(&v, &cur);
	if (err)
		return err;
	if (is_expired(cur.expire_at_ms, now_ms))
		return 0;
	if (cur.expire_at_ms == expire_at_ms && cur.rev == s->rev)
		return 1;
	/* The value is copied out and written back whole: rewriting LMDB's
	 * memory in place is not allowed, and a reserved region is not
	 * guaranteed to hold the old bytes (overflow pages may move). */
	size_t n = v.mv_size;
	unsigned char *copy = memcpy(scratch_reserve(s, n), v.mv_data, n);
	sp_put_be64(copy + STORE_HDR_EXPIRE, expire_at_ms);
	sp_put_be64(copy + STORE_HDR_REV, s->rev);
	MDB_val nv = {.mv_size = n, .mv_data = copy};
	int rc = mdb_put(s->batch, s->keys_dbi, &k, &nv, 0);
	scratch_trim(s);
	if (cur.expire_at_ms != expire_at_ms) {
		if (rc == 0 && cur.expire_at_ms)
			rc = index_del(s, cur.expire_at_ms, key, klen);
		if (rc == 0 && expire_at_ms)
			rc = index_put(s, expire_at_ms, key, klen);
	}
	if (rc)
		return batch_fail(s, rc);
	if (LOGGING(s)) {
		log_revision(s);
		wal_expire(s->wal, key, klen, expire_at_ms);
	}
	return 1;
}

int store_flush(struct store *s)
{
	int err = batch_begin(s);
	if (err)
		return err;
	int rc = mdb_drop(s->batch, s->keys_dbi, 0);
	if (rc == 0)
		rc = mdb_drop(s->batch, s->expires_dbi, 0);
	if (rc)
		return batch_fail(s, rc);
	if (LOGGING(s))
		wal_flush_all(s->wal);
	return 0;
}

/* ---- scan ---- */

int store_scan(struct store *s, const void *after, size_t after_len, size_t limit, uint64_t now_ms,
	       store_scan_fn fn, void *ctx, int *more)
{
	MDB_cursor *cur;
	int err = 0;
	MDB_txn *txn = view(s, &err);
	if (!txn)
		return err;
	int rc = mdb_cursor_open(txn, s->keys_dbi, &cur);
	if (rc)
		return map_err(rc);

	MDB_val k, v;
	if (!after && after_len == 0) {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	} else {
		/* No stored key is longer than max_key_len, so "after the first
		 * max_key_len bytes of `after`" is the same set of keys. */
		size_t alen = after_len < s->max_key_len ? after_len : s->max_key_len;
		MDB_val a = key_val(s, after, alen);
		k = a;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == a.mv_size &&
		    memcmp(k.mv_data, a.mv_data, a.mv_size) == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}

	size_t visited = 0;
	int stopped = 0, has_more = 0;
	for (;; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (rc == MDB_NOTFOUND)
			break;
		if (rc) {
			err = map_err(rc);
			goto close_cursor;
		}
		struct store_value sv;
		const unsigned char *kp = k.mv_data;
		if (k.mv_size < 1 || kp[0] != STORE_KEY_PREFIX) {
			err = SP_ERR_CORRUPT;
			goto close_cursor;
		}
		err = decode_value(&v, &sv);
		if (err)
			goto close_cursor;
		if (is_expired(sv.expire_at_ms, now_ms))
			continue;
		if (visited == limit || stopped) {
			has_more = 1;
			break;
		}
		visited++;
		if (fn(ctx, kp + 1, k.mv_size - 1, &sv))
			stopped = 1;
	}
	err = 0;

close_cursor:
	mdb_cursor_close(cur);
	if (err)
		return err;
	if (more)
		*more = has_more;
	return (int)visited;
}

/* ---- expiry ---- */

/* first_index_entry reads the oldest expiry-index entry in txn. */
static int first_index_entry(struct store *s, MDB_txn *txn, MDB_val *ik)
{
	MDB_cursor *cur;
	MDB_val iv;
	int rc = mdb_cursor_open(txn, s->expires_dbi, &cur);
	if (rc)
		return rc;
	rc = mdb_cursor_get(cur, ik, &iv, MDB_FIRST);
	mdb_cursor_close(cur);
	return rc;
}

int store_count_expired(struct store *s, uint64_t now_ms, uint64_t limit, uint64_t *out)
{
	/* The index is exact and in expiry order, so the keys that have
	 * expired but are still stored are its first entries. */
	*out = 0;
	int err = 0;
	MDB_txn *txn = view(s, &err);
	if (!txn)
		return err;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, s->expires_dbi, &cur);
	if (rc)
		return map_err(rc);
	MDB_val ik, iv;
	uint64_t n = 0;
	for (rc = mdb_cursor_get(cur, &ik, &iv, MDB_FIRST); rc == 0 && n < limit;
	     rc = mdb_cursor_get(cur, &ik, &iv, MDB_NEXT)) {
		if (ik.mv_size < STORE_IDX_PREFIX || sp_get_be64(ik.mv_data) > now_ms)
			break;
		n++;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return map_err(rc);
	*out = n;
	return 0;
}

int store_expire_cycle(struct store *s, uint64_t now_ms, size_t max_keys)
{
	MDB_val ik, iv, k, v;
	if (max_keys == 0)
		return 0;
	/* Peek first so that an idle cycle opens no batch. */
	int err = 0;
	MDB_txn *txn = view(s, &err);
	if (!txn)
		return err;
	int rc = first_index_entry(s, txn, &ik);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return map_err(rc);
	if (ik.mv_size >= STORE_IDX_PREFIX && sp_get_be64(ik.mv_data) > now_ms)
		return 0;

	err = batch_begin(s);
	if (err)
		return err;
	MDB_cursor *cur;
	rc = mdb_cursor_open(s->batch, s->expires_dbi, &cur);
	if (rc)
		return batch_fail(s, rc);
	size_t removed = 0;
	for (size_t work = 0; work < max_keys; work++) {
		rc = mdb_cursor_get(cur, &ik, &iv, MDB_FIRST);
		if (rc)
			break;
		const unsigned char *ip = ik.mv_data;
		size_t klen = ik.mv_size - STORE_IDX_PREFIX;
		uint64_t exp = 0;
		int valid = ik.mv_size >= STORE_IDX_PREFIX && klen <= s->max_key_len;
		if (valid) {
			exp = sp_get_be64(ip);
			if (exp > now_ms)
				break;
			k = key_val(s, ip + STORE_IDX_PREFIX, klen);
		}
		/* The index entry goes whatever it pointed at: a malformed or
		 * stale entry is garbage, and a matching one is consumed. */
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		if (!valid || exp == 0)
			continue;
		rc = mdb_get(s->batch, s->keys_dbi, &k, &v);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
		if (value_expiry(&v) != exp)
			continue;
		rc = mdb_del(s->batch, s->keys_dbi, &k, NULL);
		if (rc)
			break;
		/* Log the key from kbuf (k), not from the index page: the
		 * cursor delete above may have rewritten that page. */
		if (LOGGING(s))
			wal_del(s->wal, (const unsigned char *)k.mv_data + 1, klen);
		removed++;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return batch_fail(s, rc);
	return (int)removed;
}

/* ---- batches and durability ---- */

int store_has_batch(const struct store *s)
{
	return s->batch != NULL;
}

int store_commit(struct store *s)
{
	if (!s->batch)
		return 0;
	/* The log first: if the append fails the batch is dropped everywhere;
	 * if the tree's commit then fails, the record is replayed at the next
	 * open, and the caller reports the batch's outcome as unknown. */
	if (wal_pending(s->wal)) {
		uint64_t seg, off;
		unsigned char pos[16];
		wal_next_end(s->wal, &seg, &off);
		sp_put_be64(pos, seg);
		sp_put_be64(pos + 8, off);
		MDB_val pk = {sizeof(wal_pos_key) - 1, (void *)wal_pos_key};
		MDB_val pv = {sizeof(pos), pos};
		int rc = mdb_put(s->batch, s->meta_dbi, &pk, &pv, 0);
		if (rc)
			return batch_fail(s, rc);
		int err = wal_append(s->wal);
		if (err)
			return lose_batch(s, err);
		s->rec_rev = 0;
	}
	/* mdb_txn_commit frees the transaction whether or not it succeeds. */
	int rc = mdb_txn_commit(s->batch);
	s->batch = NULL;
	if (rc) {
		s->batches_lost++;
		s->lost_err = map_err(rc);
		return s->lost_err;
	}
	s->commits++;
	return 0;
}

uint64_t store_batches_lost(const struct store *s, int *last_err)
{
	if (last_err)
		*last_err = s->lost_err;
	return s->batches_lost;
}

int store_commit_checked(struct store *s, uint64_t *lost_seen)
{
	int rc = store_commit(s);
	if (rc == 0 && s->batches_lost != *lost_seen) {
		*lost_seen = s->batches_lost;
		rc = s->lost_err ? s->lost_err : SP_ERR_IO;
	}
	return rc;
}

void store_abort(struct store *s)
{
	wal_discard(s->wal);
	s->rec_rev = 0;
	if (s->batch) {
		mdb_txn_abort(s->batch);
		s->batch = NULL;
	}
}

int store_sync(struct store *s)
{
	/* With the log, syncing it is enough: the tree catches up at the next
	 * checkpoint. Without it, sync the tree's file (LMDB allows that from
	 * any thread while another thread writes and commits; it covers every
	 * commit that returned before it). */
	int rc;
	if (s->use_wal)
		rc = wal_sync(s->wal);
	else
		rc = mdb_env_sync(s->env, 1) ? SP_ERR_IO : 0;
	if (rc)
		return rc;
	atomic_fetch_add_explicit(&s->syncs, 1, memory_order_relaxed);
	return 0;
}

int store_checkpoint_begin(struct store *s)
{
	return s->use_wal ? wal_rotate(s->wal) : 0;
}

int store_checkpoint(struct store *s)
{
	if (mdb_env_sync(s->env, 1) != 0)
		return SP_ERR_IO;
	/* Every batch in the retired segments was committed before the sync
	 * began, so the tree on disk now holds them. */
	return wal_retire(s->wal);
}

uint64_t store_wal_bytes(const struct store *s)
{
	return wal_total_bytes(s->wal);
}

void store_get_stats(struct store *s, struct store_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->commits = s->commits;
	st->syncs = atomic_load_explicit(&s->syncs, memory_order_relaxed);

	MDB_txn *txn;
	MDB_stat ms;
	int err = 0;
	if ((txn = view(s, &err)) != NULL) {
		if (mdb_stat(txn, s->keys_dbi, &ms) == 0)
			st->keys = ms.ms_entries;
		if (mdb_stat(txn, s->expires_dbi, &ms) == 0)
			st->expires = ms.ms_entries;
	}
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &ms) == 0) {
		st->map_size = info.me_mapsize;
		st->used_bytes = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
	}
}

/* ---- meta records ---- */

size_t store_meta_max_name_len(const struct store *s)
{
	return s->max_meta_name;
}

/* meta_key builds the meta-db key "app/" + name in s->mbuf. */
static int meta_key(struct store *s, const char *name, MDB_val *out)
{
	if (!name || !name[0])
		return SP_ERR_INVAL;
	size_t n = strnlen(name, s->max_meta_name + 1);
	if (n > s->max_meta_name)
		return SP_ERR_KEYLEN;
	memcpy(s->mbuf, meta_prefix, META_PREFIX_LEN);
	memcpy(s->mbuf + META_PREFIX_LEN, name, n);
	*out = (MDB_val){.mv_size = META_PREFIX_LEN + n, .mv_data = s->mbuf};
	return 0;
}

/* is_meta_key reports whether a meta-db key is a meta record's. */
static int is_meta_key(const MDB_val *k)
{
	return k->mv_size > META_PREFIX_LEN &&
	       memcmp(k->mv_data, meta_prefix, META_PREFIX_LEN) == 0;
}

int store_meta_put(struct store *s, const char *name, const void *val, size_t len)
{
	MDB_val k;
	int err = meta_key(s, name, &k);
	if (err)
		return err;
	if (len > STORE_MAX_DATA)
		return SP_ERR_TOOBIG;
	const void *data = val;
	if (borrowed_from_map(s, data, len))
		data = memcpy(scratch_reserve(s, len), data, len);
	err = batch_begin(s);
	if (err == 0) {
		MDB_val v = {.mv_size = len, .mv_data = (void *)data};
		int rc = mdb_put(s->batch, s->meta_dbi, &k, &v, 0);
		if (rc)
			err = batch_fail(s, rc);
	}
	if (data != val)
		scratch_trim(s);
	return err;
}

int store_meta_get(struct store *s, const char *name, const void **val, size_t *len)
{
	MDB_val k, v;
	int err = meta_key(s, name, &k);
	if (err)
		return err;
	MDB_txn *txn = view(s, &err);
	if (!txn)
		return err;
	int rc = mdb_get(txn, s->meta_dbi, &k, &v);
	if (rc)
		return map_err(rc);
	*val = v.mv_data;
	*len = v.mv_size;
	return 0;
}

int store_meta_del(struct store *s, const char *name)
{
	MDB_val k, v;
	int err = meta_key(s, name, &k);
	if (err)
		return err;
	/* Look first, so that deleting an absent record opens no batch. */
	MDB_txn *txn = view(s, &err);
	if (!txn)
		return err;
	int rc = mdb_get(txn, s->meta_dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return map_err(rc);
	err = batch_begin(s);
	if (err)
		return err;
	rc = mdb_del(s->batch, s->meta_dbi, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return batch_fail(s, rc);
	return 1;
}

int store_meta_scan(struct store *s, const char *prefix, store_meta_fn fn, void *ctx)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	if (plen > s->max_meta_name)
		return 0; /* no name is that long */
	int err = 0;
	MDB_txn *txn = view(s, &err);
	if (!txn)
		return err;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, s->meta_dbi, &cur);
	if (rc)
		return map_err(rc);
	/* "app/" + prefix is both where the range starts and what every
	 * name in it begins with. */
	unsigned char *sp = sp_malloc(META_PREFIX_LEN + plen);
	memcpy(sp, meta_prefix, META_PREFIX_LEN);
	if (plen)
		memcpy(sp + META_PREFIX_LEN, prefix, plen);
	size_t slen = META_PREFIX_LEN + plen;
	MDB_val k = {.mv_size = slen, .mv_data = sp}, v;
	int visited = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < slen || memcmp(k.mv_data, sp, slen) != 0)
			break;
		size_t nlen = k.mv_size - META_PREFIX_LEN;
		if (nlen == 0 || nlen > s->max_meta_name) {
			rc = MDB_CORRUPTED;
			break;
		}
		/* The name is handed out NUL-terminated, so it is copied. */
		char *name = (char *)s->mbuf;
		memcpy(name, (const unsigned char *)k.mv_data + META_PREFIX_LEN, nlen);
		name[nlen] = '\0';
		visited++;
		if (fn(ctx, name, v.mv_data, v.mv_size))
			break;
	}
	mdb_cursor_close(cur);
	free(sp);
	if (rc && rc != MDB_NOTFOUND)
		return map_err(rc);
	return visited;
}

/* ---- snapshot stream out ---- */

#define SNAP_MAGIC	 "SPSNAPv1"
#define SNAP_MAGIC_LEN	 8u
#define SNAP_VERSION	 1u
#define SNAP_HEADER_LEN	 16u /* magic, version, reserved */
#define SNAP_KEY_FIXED	 23u /* 'K' type flags expiry rev klen */
#define SNAP_KEY_HDR	 18u /* type flags expiry rev: after 'K', before klen */
#define SNAP_META_FIXED	 5u  /* 'M' nlen */
#define SNAP_TRAILER_LEN 21u /* 'E' keys metas crc */
#define SNAP_MAX_SPANS	 4

enum snap_phase { SNAP_BEGIN, SNAP_KEYS, SNAP_META, SNAP_TRAILER, SNAP_DONE };

/* One stretch of stream bytes: fixed fields built in the snap, or a key,
 * name or value borrowed from the snapshot's read transaction (valid until
 * it ends: a read-only transaction sees no updates). */
struct snap_span {
	const unsigned char *p;
	size_t len;
};

struct store_snap {
	struct store *s;
	MDB_txn *txn;
	MDB_cursor *cur;
	enum snap_phase phase; /* what the next record will be */
	int first;	       /* the cursor has not been positioned yet */
	uint64_t pos;	       /* stream bytes produced */
	uint32_t crc;	       /* CRC-32 of those bytes */
	uint64_t keys, metas;  /* records produced */
	int err;	       /* a failed read: the stream's place is lost, for good */
	struct snap_span span[SNAP_MAX_SPANS]; /* the record being produced */
	unsigned nspan, at;		       /* its spans; the one being produced */
	size_t span_off;		       /* bytes of span[at] produced */
	unsigned char fixed[SNAP_KEY_FIXED];   /* fixed fields before the key or name */
	unsigned char vlen[4];		       /* the value's length */
};

static void snap_add(struct store_snap *sn, const void *p, size_t len)
{
	sn->span[sn->nspan++] = (struct snap_span){.p = p, .len = len};
}

/* snap_key_record makes the next record the key the cursor is on. */
static int snap_key_record(struct store_snap *sn, const MDB_val *k, const MDB_val *v)
{
	const unsigned char *kp = k->mv_data;
	struct store_value sv;
	if (k->mv_size < 1 || kp[0] != STORE_KEY_PREFIX || decode_value(v, &sv) != 0)
		return SP_ERR_CORRUPT;
	unsigned char *f = sn->fixed;
	f[0] = 'K';
	f[1] = sv.type;
	f[2] = sv.flags;
	sp_put_le64(f + 3, sv.expire_at_ms);
	sp_put_le64(f + 11, sv.rev);
	sp_put_le32(f + 19, (uint32_t)(k->mv_size - 1));
	sp_put_le32(sn->vlen, (uint32_t)sv.len);
	snap_add(sn, f, SNAP_KEY_FIXED);
	snap_add(sn, kp + 1, k->mv_size - 1);
	snap_add(sn, sn->vlen, 4);
	snap_add(sn, sv.data, sv.len);
	sn->keys++;
	return 0;
}

static void snap_meta_record(struct store_snap *sn, const MDB_val *k, const MDB_val *v)
{
	unsigned char *f = sn->fixed;
	f[0] = 'M';
	sp_put_le32(f + 1, (uint32_t)(k->mv_size - META_PREFIX_LEN));
	sp_put_le32(sn->vlen, (uint32_t)v->mv_size);
	snap_add(sn, f, SNAP_META_FIXED);
	snap_add(sn, (const unsigned char *)k->mv_data + META_PREFIX_LEN,
		 k->mv_size - META_PREFIX_LEN);
	snap_add(sn, sn->vlen, 4);
	snap_add(sn, v->mv_data, v->mv_size);
	sn->metas++;
}

/* snap_next builds the stream's next record once the previous one has
 * been produced whole (so sn->crc covers every byte before it). */
static int snap_next(struct store_snap *sn)
{
	struct store *s = sn->s;
	MDB_val k, v;
	int rc;
	sn->nspan = 0;
	sn->at = 0;
	sn->span_off = 0;
	switch (sn->phase) {
	case SNAP_BEGIN:
		memcpy(sn->fixed, SNAP_MAGIC, SNAP_MAGIC_LEN);
		sp_put_le32(sn->fixed + 8, SNAP_VERSION);
		sp_put_le32(sn->fixed + 12, 0);
		snap_add(sn, sn->fixed, SNAP_HEADER_LEN);
		rc = mdb_cursor_open(sn->txn, s->keys_dbi, &sn->cur);
		if (rc)
			return map_err(rc);
		sn->phase = SNAP_KEYS;
		sn->first = 1;
		return 0;
	case SNAP_KEYS:
		rc = mdb_cursor_get(sn->cur, &k, &v, sn->first ? MDB_FIRST : MDB_NEXT);
		sn->first = 0;
		if (rc == 0)
			return snap_key_record(sn, &k, &v);
		if (rc != MDB_NOTFOUND)
			return map_err(rc);
		mdb_cursor_close(sn->cur);
		sn->cur = NULL;
		rc = mdb_cursor_open(sn->txn, s->meta_dbi, &sn->cur);
		if (rc)
			return map_err(rc);
		sn->phase = SNAP_META;
		sn->first = 1;
		/* fall through */
	case SNAP_META:
		if (sn->first) {
			k = (MDB_val){.mv_size = META_PREFIX_LEN, .mv_data = (void *)meta_prefix};
			rc = mdb_cursor_get(sn->cur, &k, &v, MDB_SET_RANGE);
		} else {
			rc = mdb_cursor_get(sn->cur, &k, &v, MDB_NEXT);
		}
		sn->first = 0;
		/* "app/" itself (an empty name) is never written; skip it if
		 * present rather than emit what restore would refuse. */
		while (rc == 0 && k.mv_size == META_PREFIX_LEN &&
		       memcmp(k.mv_data, meta_prefix, META_PREFIX_LEN) == 0)
			rc = mdb_cursor_get(sn->cur, &k, &v, MDB_NEXT);
		if (rc == 0 && is_meta_key(&k)) {
			snap_meta_record(sn, &k, &v);
			return 0;
		}
		if (rc && rc != MDB_NOTFOUND)
			return map_err(rc);
		mdb_cursor_close(sn->cur);
		sn->cur = NULL;
		sn->phase = SNAP_TRAILER;
		/* fall through */
	case SNAP_TRAILER: {
		unsigned char *f = sn->fixed;
		f[0] = 'E';
		sp_put_le64(f + 1, sn->keys);
		sp_put_le64(f + 9, sn->metas);
		uint32_t crc = (uint32_t)crc32(sn->crc, f, 17);
		sp_put_le32(f + 17, crc);
		snap_add(sn, f, SNAP_TRAILER_LEN);
		sn->phase = SNAP_DONE;
		return 0;
	}
	case SNAP_DONE:
		break;
	}
	return 0;
}

static int snap_at_end(const struct store_snap *sn)
{
	return sn->phase == SNAP_DONE && sn->at == sn->nspan;
}

/* snap_produce advances the stream by up to n bytes, copying them to dst
 * unless it is NULL, and sets *done to how many it advanced. */
static int snap_produce(struct store_snap *sn, uint8_t *dst, uint64_t n, uint64_t *done)
{
	uint64_t got = 0;
	while (got < n) {
		if (sn->at == sn->nspan) {
			if (sn->phase == SNAP_DONE)
				break;
			int err = snap_next(sn);
			if (err) {
				*done = got;
				return err;
			}
			continue;
		}
		struct snap_span *sp = &sn->span[sn->at];
		size_t left = sp->len - sn->span_off;
		size_t take = left < n - got ? left : (size_t)(n - got);
		if (take) {
			const unsigned char *src = sp->p + sn->span_off;
			/* zlib's crc32 takes a uInt length: feed it in parts. */
			for (size_t off = 0; off < take;) {
				size_t part = take - off < (1u << 30) ? take - off : (1u << 30);
				sn->crc = (uint32_t)crc32(sn->crc, src + off, (uInt)part);
				off += part;
			}
			if (dst)
				memcpy(dst + got, src, take);
			got += take;
			sn->pos += take;
			sn->span_off += take;
		}
		if (sn->span_off == sp->len) {
			sn->at++;
			sn->span_off = 0;
		}
	}
	*done = got;
	return 0;
}

/* snap_rewind puts the stream back at its start (same transaction, so the
 * same bytes come out again). */
static void snap_rewind(struct store_snap *sn)
{
	if (sn->cur) {
		mdb_cursor_close(sn->cur);
		sn->cur = NULL;
	}
	sn->phase = SNAP_BEGIN;
	sn->first = 0;
	sn->pos = 0;
	sn->crc = (uint32_t)crc32(0L, Z_NULL, 0);
	sn->keys = sn->metas = 0;
	sn->nspan = sn->at = 0;
	sn->span_off = 0;
}

int store_snap_open(struct store *s, struct store_snap **out)
{
	int err = store_commit(s);
	if (err)
		return err;
	struct store_snap *sn = sp_calloc(1, sizeof(*sn));
	sn->s = s;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &sn->txn);
	if (rc) {
		free(sn);
		return map_err(rc); /* MDB_READERS_FULL is SP_ERR_IO */
	}
	snap_rewind(sn);
	s->snaps_open++;
	*out = sn;
	return 0;
}

static int snap_read(struct store_snap *sn, uint64_t offset, uint8_t *buf, uint32_t cap, bool *last)
{
	uint64_t done;
	int err;
	if (offset > sn->pos)
		return SP_ERR_INVAL;
	if (offset < sn->pos) {
		snap_rewind(sn);
		err = snap_produce(sn, NULL, offset, &done);
		if (err)
			return err;
		if (done != offset)
			return SP_ERR_INVAL; /* past the end of the stream */
	}
	if (cap > INT_MAX)
		cap = INT_MAX;
	err = snap_produce(sn, buf, cap, &done);
	if (err)
		return err;
	/* Peek at the next record so that the read which copies the last
	 * byte is the one that says so. */
	if (sn->at == sn->nspan && sn->phase != SNAP_DONE) {
		err = snap_next(sn);
		if (err)
			return err;
	}
	*last = snap_at_end(sn);
	return (int)done;
}

int store_snap_read(struct store_snap *sn, uint64_t offset, uint8_t *buf, uint32_t cap, bool *last)
{
	if (sn->err)
		return sn->err;
	int n = snap_read(sn, offset, buf, cap, last);
	/* A gap asks for bytes not produced yet and leaves the stream as it
	 * was; any other failure may have moved a cursor past a record. */
	if (n < 0 && n != SP_ERR_INVAL)
		sn->err = n;
	return n;
}

uint64_t store_snap_bytes_sent(const struct store_snap *sn)
{
	return sn->pos;
}

void store_snap_close(struct store_snap *sn)
{
	if (!sn)
		return;
	if (sn->cur)
		mdb_cursor_close(sn->cur);
	mdb_txn_abort(sn->txn);
	sn->s->snaps_open--;
	free(sn);
}

/* ---- snapshot stream in ---- */

/* A mapped stream file. */
struct snap_file {
	const unsigned char *p;
	size_t size;
};

static int snap_file_map(const char *path, struct snap_file *f)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int err = 0;
	if (fstat(fd, &st) != 0) {
		err = -errno;
		goto close_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		err = SP_ERR_INVAL;
		goto close_fd;
	}
	if ((uint64_t)st.st_size < SNAP_HEADER_LEN + SNAP_TRAILER_LEN) {
		err = SP_ERR_CORRUPT;
		goto close_fd;
	}
	f->size = (size_t)st.st_size;
	void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		goto close_fd;
	}
	madvise(p, f->size, MADV_SEQUENTIAL);
	f->p = p;
close_fd:
	close(fd);
	return err;
}

static void snap_file_unmap(struct snap_file *f)
{
	if (f->p)
		munmap((void *)f->p, f->size);
	f->p = NULL;
}

/* One record of a stream, as snap_parse_next returns it (pointers into the
 * mapped file). */
struct snap_rec {
	uint8_t kind; /* 'K' or 'M' */
	uint8_t type, flags;
	uint64_t expire_at_ms, rev;
	const unsigned char *key; /* key, or meta name */
	size_t klen;
	const unsigned char *val;
	size_t vlen;
};

struct snap_parser {
	const unsigned char *p, *end; /* records, up to the trailer */
	size_t max_klen, max_name;
	const unsigned char *prev; /* previous key or name, for the order check */
	size_t prev_len;
	uint8_t prev_kind;
	uint64_t keys, metas;
};

/* less reports whether a sorts strictly before b in LMDB's default order. */
static int less(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	return c < 0 || (c == 0 && alen < blen);
}

static int parse_bytes(struct snap_parser *ps, const unsigned char **data, size_t *len)
{
	if ((size_t)(ps->end - ps->p) < 4)
		return -1;
	uint32_t n = sp_get_le32(ps->p);
	ps->p += 4;
	if ((size_t)(ps->end - ps->p) < n)
		return -1;
	*data = ps->p;
	*len = n;
	ps->p += n;
	return 0;
}

/* snap_parse_next reads the next record into *r: 1 if there was one, 0 at
 * the end of the records, SP_ERR_CORRUPT when a record is malformed, too
 * long for the limits, or out of order. */
static int snap_parse_next(struct snap_parser *ps, struct snap_rec *r)
{
	if (ps->p == ps->end)
		return 0;
	memset(r, 0, sizeof(*r));
	r->kind = *ps->p++;
	if (r->kind == 'K') {
		if ((size_t)(ps->end - ps->p) < SNAP_KEY_HDR)
			return SP_ERR_CORRUPT;
		r->type = ps->p[0];
		r->flags = ps->p[1];
		r->expire_at_ms = sp_get_le64(ps->p + 2);
		r->rev = sp_get_le64(ps->p + 10);
		ps->p += SNAP_KEY_HDR;
		if (parse_bytes(ps, &r->key, &r->klen) || parse_bytes(ps, &r->val, &r->vlen))
			return SP_ERR_CORRUPT;
		if (r->klen > ps->max_klen || r->vlen > STORE_MAX_DATA - STORE_HDR_LEN)
			return SP_ERR_CORRUPT;
		/* Keys first, in strictly ascending order. */
		if (ps->prev_kind == 'M' ||
		    (ps->prev_kind == 'K' && !less(ps->prev, ps->prev_len, r->key, r->klen)))
			return SP_ERR_CORRUPT;
		ps->keys++;
	} else if (r->kind == 'M') {
		if (parse_bytes(ps, &r->key, &r->klen) || parse_bytes(ps, &r->val, &r->vlen))
			return SP_ERR_CORRUPT;
		if (r->klen == 0 || r->klen > ps->max_name || memchr(r->key, 0, r->klen))
			return SP_ERR_CORRUPT;
		if (ps->prev_kind == 'M' && !less(ps->prev, ps->prev_len, r->key, r->klen))
			return SP_ERR_CORRUPT;
		ps->metas++;
	} else {
		return SP_ERR_CORRUPT;
	}
	ps->prev = r->key;
	ps->prev_len = r->klen;
	ps->prev_kind = r->kind;
	return 1;
}

/* snap_parser_start readies ps to walk the records of a mapped stream
 * whose size snap_file_map checked. */
static void snap_parser_start(const struct snap_file *f, size_t max_klen, size_t max_name,
			      struct snap_parser *ps)
{
	memset(ps, 0, sizeof(*ps));
	ps->p = f->p + SNAP_HEADER_LEN;
	ps->end = f->p + f->size - SNAP_TRAILER_LEN;
	ps->max_klen = max_klen;
	ps->max_name = max_name;
}

/* snap_verify checks a whole mapped stream: header, CRC, every record, and
 * that the trailer's counts match and it ends the file. */
static int snap_verify(const struct snap_file *f, size_t max_klen, size_t max_name)
{
	const unsigned char *p = f->p;
	const unsigned char *t = p + f->size - SNAP_TRAILER_LEN;
	if (memcmp(p, SNAP_MAGIC, SNAP_MAGIC_LEN) != 0 || sp_get_le32(p + 8) != SNAP_VERSION ||
	    sp_get_le32(p + 12) != 0 || t[0] != 'E')
		return SP_ERR_CORRUPT;
	uLong crc = crc32(0L, Z_NULL, 0);
	for (size_t off = 0, n = f->size - 4; off < n;) {
		size_t part = n - off < (1u << 30) ? n - off : (1u << 30);
		crc = crc32(crc, p + off, (uInt)part);
		off += part;
	}
	if ((uint32_t)crc != sp_get_le32(t + 17))
		return SP_ERR_CORRUPT;

	struct snap_parser ps;
	struct snap_rec r;
	int rc;
	snap_parser_start(f, max_klen, max_name, &ps);
	while ((rc = snap_parse_next(&ps, &r)) == 1)
		;
	if (rc)
		return rc;
	if (sp_get_le64(t + 1) != ps.keys || sp_get_le64(t + 9) != ps.metas)
		return SP_ERR_CORRUPT;
	return 0;
}

int store_snap_verify_file(const char *path)
{
	struct snap_file f = {0};
	int err = snap_file_map(path, &f);
	if (err)
		return err;
	err = snap_verify(&f, UINT32_MAX, UINT32_MAX);
	snap_file_unmap(&f);
	return err;
}

/* restore_clear empties the keys, the expiry index and the meta records in
 * the batch, keeping the store's own meta entries. */
static int restore_clear(struct store *s)
{
	int rc = mdb_drop(s->batch, s->keys_dbi, 0);
	if (rc == 0)
		rc = mdb_drop(s->batch, s->expires_dbi, 0);
	if (rc)
		return rc;
	MDB_cursor *cur;
	rc = mdb_cursor_open(s->batch, s->meta_dbi, &cur);
	if (rc)
		return rc;
	/* Seek afresh after each delete rather than trust where the delete
	 * left the cursor; there are few meta records. */
	for (;;) {
		MDB_val k = {.mv_size = META_PREFIX_LEN, .mv_data = (void *)meta_prefix}, v;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc || k.mv_size < META_PREFIX_LEN ||
		    memcmp(k.mv_data, meta_prefix, META_PREFIX_LEN) != 0)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* restore_record writes one verified record into the batch. Keys arrive
 * in order into an emptied database, so they are appended. */
static int restore_record(struct store *s, const struct snap_rec *r)
{
	int rc;
	if (r->kind == 'M') {
		memcpy(s->mbuf, meta_prefix, META_PREFIX_LEN);
		memcpy(s->mbuf + META_PREFIX_LEN, r->key, r->klen);
		MDB_val k = {.mv_size = META_PREFIX_LEN + r->klen, .mv_data = s->mbuf};
		MDB_val v = {.mv_size = r->vlen, .mv_data = (void *)r->val};
		return mdb_put(s->batch, s->meta_dbi, &k, &v, 0);
	}
	MDB_val k = key_val(s, r->key, r->klen);
	MDB_val v = {.mv_size = STORE_HDR_LEN + r->vlen, .mv_data = NULL};
	rc = mdb_put(s->batch, s->keys_dbi, &k, &v, MDB_RESERVE | MDB_APPEND);
	if (rc)
		return rc;
	encode_header(v.mv_data, r->type, r->flags, r->expire_at_ms, r->rev);
	if (r->vlen)
		memcpy((unsigned char *)v.mv_data + STORE_HDR_LEN, r->val, r->vlen);
	if (r->expire_at_ms)
		rc = index_put(s, r->expire_at_ms, r->key, r->klen);
	return rc;
}

int store_restore(struct store *s, const char *path)
{
	struct snap_file f = {0};
	int err = snap_file_map(path, &f);
	if (err)
		return err;
	/* Verify all of it before anything changes. */
	err = snap_verify(&f, s->max_key_len, s->max_meta_name);
	if (err)
		goto unmap;
	err = store_commit(s);
	if (err)
		goto unmap;
	err = batch_begin(s);
	if (err)
		goto unmap;

	struct snap_parser ps;
	struct snap_rec r;
	snap_parser_start(&f, s->max_key_len, s->max_meta_name, &ps);
	int rc = restore_clear(s); /* an LMDB code */
	while (rc == 0 && (err = snap_parse_next(&ps, &r)) == 1)
		rc = restore_record(s, &r);
	if (rc || err) {
		/* The batch holds nothing but this restore: dropping it leaves
		 * the store as it was, and loses no caller's write. */
		err = rc ? map_err(rc) : err;
		store_abort(s);
		goto unmap;
	}
	err = store_commit(s);
unmap:
	snap_file_unmap(&f);
	return err;
}

/* ---- consistency check ---- */

static int check_fail(MDB_cursor *cur, const char *what, const MDB_val *key)
{
	char hex[2 * 32 + 1];
	size_t n = key->mv_size < 32 ? key->mv_size : 32;
	for (size_t i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)key->mv_data)[i]);
	hex[2 * n] = '\0';
	sp_warn("store check: %s (entry of %zu bytes, starting %s)", what, key->mv_size, hex);
	mdb_cursor_close(cur);
	return SP_ERR_CORRUPT;
}

int store_check(struct store *s)
{
	MDB_cursor *cur;
	MDB_val k, v, x;
	int err = 0;
	MDB_txn *txn = view(s, &err);
	if (!txn)
		return err;

	MDB_val fk = {.mv_size = sizeof(format_key) - 1, .mv_data = (void *)format_key};
	int rc = mdb_get(txn, s->meta_dbi, &fk, &v);
	if (rc || v.mv_size != 4 || sp_get_be32(v.mv_data) != STORE_FORMAT) {
		sp_warn("store check: format marker missing or wrong");
		return rc && rc != MDB_NOTFOUND ? map_err(rc) : SP_ERR_CORRUPT;
	}

	/* The meta database: the store's own records and meta records with
	 * a name store_meta_put would accept, nothing else. */
	rc = mdb_cursor_open(txn, s->meta_dbi, &cur);
	if (rc)
		return map_err(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (is_meta_key(&k)) {
			size_t nlen = k.mv_size - META_PREFIX_LEN;
			const unsigned char *name =
			    (const unsigned char *)k.mv_data + META_PREFIX_LEN;
			if (nlen > s->max_meta_name || memchr(name, 0, nlen))
				return check_fail(cur, "malformed meta record name", &k);
			continue;
		}
		int own = (k.mv_size == sizeof(format_key) - 1 &&
			   memcmp(k.mv_data, format_key, k.mv_size) == 0) ||
			  (k.mv_size == sizeof(wal_pos_key) - 1 &&
			   memcmp(k.mv_data, wal_pos_key, k.mv_size) == 0);
		if (!own)
			return check_fail(cur, "unknown entry in the meta database", &k);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return map_err(rc);

	/* Every key: well-formed, and its expiry (if any) indexed. */
	uint64_t with_expiry = 0;
	rc = mdb_cursor_open(txn, s->keys_dbi, &cur);
	if (rc)
		return map_err(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const unsigned char *kp = k.mv_data;
		struct store_value sv;
		if (k.mv_size < 1 || kp[0] != STORE_KEY_PREFIX || k.mv_size - 1 > s->max_key_len)
			return check_fail(cur, "malformed key", &k);
		if (decode_value(&v, &sv) != 0)
			return check_fail(cur, "malformed value header", &k);
		if (sv.expire_at_ms == 0)
			continue;
		with_expiry++;
		MDB_val ik = index_val(s, sv.expire_at_ms, kp + 1, k.mv_size - 1);
		int r = mdb_get(txn, s->expires_dbi, &ik, &x);
		if (r == MDB_NOTFOUND)
			return check_fail(cur, "expiry not in the index", &k);
		if (r) {
			mdb_cursor_close(cur);
			return map_err(r);
		}
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return map_err(rc);

	/* Every index entry: names a key whose header has the same expiry.
	 * With the walk above this makes the index exact. */
	uint64_t entries = 0;
	rc = mdb_cursor_open(txn, s->expires_dbi, &cur);
	if (rc)
		return map_err(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		entries++;
		if (k.mv_size < STORE_IDX_PREFIX || k.mv_size - STORE_IDX_PREFIX > s->max_key_len)
			return check_fail(cur, "malformed index entry", &k);
		uint64_t exp = sp_get_be64(k.mv_data);
		MDB_val kk = key_val(s, (const unsigned char *)k.mv_data + STORE_IDX_PREFIX,
				     k.mv_size - STORE_IDX_PREFIX);
		int r = mdb_get(txn, s->keys_dbi, &kk, &x);
		if (r == MDB_NOTFOUND)
			return check_fail(cur, "index entry for a missing key", &k);
		if (r) {
			mdb_cursor_close(cur);
			return map_err(r);
		}
		if (exp == 0 || value_expiry(&x) != exp)
			return check_fail(cur, "index entry disagrees with the value", &k);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return map_err(rc);
	if (entries != with_expiry) {
		sp_warn("store check: %llu index entries for %llu keys with an expiry",
			(unsigned long long)entries, (unsigned long long)with_expiry);
		return SP_ERR_CORRUPT;
	}
	return 0;
}
