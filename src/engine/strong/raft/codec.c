/*
 * codec: the wire form of Raft messages and membership configurations.
 *
 * Pure functions, no I/O and no allocation beyond the caller's sp_buf. The
 * transport frames each message (the frame gives the length); this file only
 * turns one struct raft_msg into bytes and back. Decoding treats the bytes
 * as hostile: every count and length is checked against what is left
 * before it is used, and the whole input must be consumed.
 *
 * Format, version 1. Every integer is fixed width and little-endian; u8
 * booleans are exactly 0 or 1.
 *
 *   conf (raft_conf_encode; also the data of a RAFT_ENTRY_CONF entry):
 *     u8  version      1
 *     u8  n            members, 0..RAFT_MAX_MEMBERS
 *     n × { u64 id     non-zero, no two alike
 *           u8  role } RAFT_VOTER (1) or RAFT_LEARNER (2)
 *
 *   entry:
 *     u64 term, u64 index
 *     u8  type         RAFT_ENTRY_NORMAL (1), _NOOP (2) or _CONF (3)
 *     u32 len
 *     len bytes        for a CONF entry, a valid conf as above
 *
 *   message: a common header, then the fields its type uses, in order:
 *     u8  version      1
 *     u8  type         enum raft_msg_type, 1..RAFT_MSG__LAST-1
 *     u64 from, u64 to, u64 term
 *
 *     APPEND           u64 prev_index, u64 prev_term, u64 commit, u64 ctx,
 *                      u32 n_entries, n_entries × entry
 *     APPEND_RESP      u64 index, u64 hint, u64 ctx, u8 reject
 *     VOTE, PREVOTE    u64 index (candidate's last index), u64 log_term,
 *                      u8 transfer
 *     VOTE_RESP,
 *     PREVOTE_RESP     u8 reject
 *     SNAPSHOT         u64 snap.index, u64 snap.term, conf (snap.conf),
 *                      u64 offset, u32 len, len bytes of data, u8 last
 *     SNAPSHOT_RESP    u64 snap.index, u64 snap.term, u64 offset, u64 hint,
 *                      u8 last, u8 reject
 *     TIMEOUT_NOW      (nothing more)
 *     READ_INDEX       u64 ctx
 *     READ_INDEX_RESP  u64 ctx, u64 index, u8 reject
 *
 * A heartbeat is an APPEND with n_entries 0: 62 bytes. Fields a type does
 * not list are not sent and decode as zero. A later version may add fields
 * or types; a decoder refuses any version it does not know rather than
 * guess.
 */
#include "engine/strong/raft/raft.h"

#include <assert.h>
#include <string.h>

#include "common/err.h"

#define CODEC_VERSION	  1
#define CONF_VERSION	  1
#define MSG_HEADER_SIZE	  (1 + 1 + 8 + 8 + 8)
#define ENTRY_HEADER_SIZE (8 + 8 + 1 + 4)
#define CONF_MEMBER_SIZE  (8 + 1)
#define CONF_MAX_SIZE	  (2 + RAFT_MAX_MEMBERS * CONF_MEMBER_SIZE)

/* ---------------------------------------------------------------------- */
/* Writing                                                                 */

/* A writer fills bytes already reserved in an sp_buf: the encoder sizes
 * the message first, so the writes below never grow the buffer. */
struct writer {
	uint8_t *p;
};

static void put_u8(struct writer *w, uint8_t v)
{
	*w->p++ = v;
}

static void put_u32(struct writer *w, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		*w->p++ = (uint8_t)(v >> (8 * i));
}

static void put_u64(struct writer *w, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		*w->p++ = (uint8_t)(v >> (8 * i));
}

static void put_bytes(struct writer *w, const uint8_t *p, size_t n)
{
	if (n) {
		memcpy(w->p, p, n);
		w->p += n;
	}
}

static size_t conf_size(const struct raft_conf *conf)
{
	return 2 + (size_t)conf->n * CONF_MEMBER_SIZE;
}

static void put_conf(struct writer *w, const struct raft_conf *conf)
{
	put_u8(w, CONF_VERSION);
	put_u8(w, (uint8_t)conf->n);
	for (uint32_t i = 0; i < conf->n; i++) {
		put_u64(w, conf->members[i].id);
		put_u8(w, conf->members[i].role);
	}
}

void raft_conf_encode(const struct raft_conf *conf, struct sp_buf *out)
{
	/* The core only encodes configurations it built; more members than
	 * the array holds is a bug, not input. */
	assert(conf->n <= RAFT_MAX_MEMBERS);
	size_t size = conf_size(conf);
	sp_buf_reserve(out, size);
	struct writer w = {(uint8_t *)sp_buf_end(out)};
	put_conf(&w, conf);
	assert((size_t)(w.p - (uint8_t *)sp_buf_end(out)) == size);
	sp_buf_commit(out, size);
}

/* msg_size is the exact length raft_msg_encode will write for msg. */
static size_t msg_size(const struct raft_msg *msg)
{
	size_t size = MSG_HEADER_SIZE;

	switch (msg->type) {
	case RAFT_MSG_APPEND:
		size += 8 * 4 + 4;
		for (uint32_t i = 0; i < msg->n_entries; i++)
			size += ENTRY_HEADER_SIZE + msg->entries[i].len;
		break;
	case RAFT_MSG_APPEND_RESP:
		size += 8 * 3 + 1;
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		size += 8 * 2 + 1;
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		size += 1;
		break;
	case RAFT_MSG_SNAPSHOT:
		size += 8 * 2 + conf_size(&msg->snap.conf) + 8 + 4 + msg->len + 1;
		break;
	case RAFT_MSG_SNAPSHOT_RESP:
		size += 8 * 4 + 1 + 1;
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		break;
	case RAFT_MSG_READ_INDEX:
		size += 8;
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		size += 8 * 2 + 1;
		break;
	}
	return size;
}

void raft_msg_encode(const struct raft_msg *msg, struct sp_buf *out)
{
	/* Messages come from the core, never from a peer: a bad type, an
	 * oversized conf or a length without data is a bug in the caller. */
	assert(msg->type >= RAFT_MSG_APPEND && msg->type < RAFT_MSG__LAST);
	assert(msg->type != RAFT_MSG_APPEND || msg->n_entries == 0 || msg->entries);
	assert(msg->type != RAFT_MSG_SNAPSHOT || msg->len == 0 || msg->data);
	assert(msg->type != RAFT_MSG_SNAPSHOT || msg->snap.conf.n <= RAFT_MAX_MEMBERS);

	size_t size = msg_size(msg);
	sp_buf_reserve(out, size);
	uint8_t *start = (uint8_t *)sp_buf_end(out);
	struct writer w = {start};

	put_u8(&w, CODEC_VERSION);
	put_u8(&w, msg->type);
	put_u64(&w, msg->from);
	put_u64(&w, msg->to);
	put_u64(&w, msg->term);

	switch (msg->type) {
	case RAFT_MSG_APPEND:
		put_u64(&w, msg->prev_index);
		put_u64(&w, msg->prev_term);
		put_u64(&w, msg->commit);
		put_u64(&w, msg->ctx);
		put_u32(&w, msg->n_entries);
		for (uint32_t i = 0; i < msg->n_entries; i++) {
			const struct raft_entry *e = &msg->entries[i];
			assert(e->len == 0 || e->data);
			put_u64(&w, e->term);
			put_u64(&w, e->index);
			put_u8(&w, e->type);
			put_u32(&w, e->len);
			put_bytes(&w, e->data, e->len);
		}
		break;
	case RAFT_MSG_APPEND_RESP:
		put_u64(&w, msg->index);
		put_u64(&w, msg->hint);
		put_u64(&w, msg->ctx);
		put_u8(&w, msg->reject);
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		put_u64(&w, msg->index);
		put_u64(&w, msg->log_term);
		put_u8(&w, msg->transfer);
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		put_u8(&w, msg->reject);
		break;
	case RAFT_MSG_SNAPSHOT:
		put_u64(&w, msg->snap.index);
		put_u64(&w, msg->snap.term);
		put_conf(&w, &msg->snap.conf);
		put_u64(&w, msg->offset);
		put_u32(&w, msg->len);
		put_bytes(&w, msg->data, msg->len);
		put_u8(&w, msg->last);
		break;
	case RAFT_MSG_SNAPSHOT_RESP:
		put_u64(&w, msg->snap.index);
		put_u64(&w, msg->snap.term);
		put_u64(&w, msg->offset);
		put_u64(&w, msg->hint);
		put_u8(&w, msg->last);
		put_u8(&w, msg->reject);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		break;
	case RAFT_MSG_READ_INDEX:
		put_u64(&w, msg->ctx);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		put_u64(&w, msg->ctx);
		put_u64(&w, msg->index);
		put_u8(&w, msg->reject);
		break;
	}
	assert((size_t)(w.p - start) == size);
	sp_buf_commit(out, size);
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

/* A reader walks untrusted bytes. Every get checks what is left first, so
 * no read goes past end whatever a length field claims. */
struct reader {
	const uint8_t *p, *end;
};

static size_t left(const struct reader *r)
{
	return (size_t)(r->end - r->p);
}

static int get_u8(struct reader *r, uint8_t *v)
{
	if (left(r) < 1)
		return SP_ERR_PROTO;
	*v = *r->p++;
	return 0;
}

static int get_u32(struct reader *r, uint32_t *v)
{
	if (left(r) < 4)
		return SP_ERR_PROTO;
	uint32_t x = 0;
	for (int i = 0; i < 4; i++)
		x |= (uint32_t)r->p[i] << (8 * i);
	r->p += 4;
	*v = x;
	return 0;
}

static int get_u64(struct reader *r, uint64_t *v)
{
	if (left(r) < 8)
		return SP_ERR_PROTO;
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x |= (uint64_t)r->p[i] << (8 * i);
	r->p += 8;
	*v = x;
	return 0;
}

/* get_bool accepts only 0 and 1, so every valid message has exactly one
 * encoding and a flipped bit in a flag is caught rather than read as true. */
static int get_bool(struct reader *r, bool *v)
{
	uint8_t x;
	if (get_u8(r, &x) != 0 || x > 1)
		return SP_ERR_PROTO;
	*v = x == 1;
	return 0;
}

/* get_bytes points *p at the next n bytes of the input (no copy). */
static int get_bytes(struct reader *r, size_t n, const uint8_t **p)
{
	if (left(r) < n)
		return SP_ERR_PROTO;
	*p = r->p;
	r->p += n;
	return 0;
}

static int get_conf(struct reader *r, struct raft_conf *conf)
{
	uint8_t version, n;

	memset(conf, 0, sizeof(*conf));
	if (get_u8(r, &version) != 0 || version != CONF_VERSION)
		return SP_ERR_PROTO;
	if (get_u8(r, &n) != 0 || n > RAFT_MAX_MEMBERS)
		return SP_ERR_PROTO;
	if (left(r) < (size_t)n * CONF_MEMBER_SIZE)
		return SP_ERR_PROTO;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id;
		uint8_t role;
		if (get_u64(r, &id) != 0 || get_u8(r, &role) != 0)
			return SP_ERR_PROTO;
		if (id == RAFT_NONE || (role != RAFT_VOTER && role != RAFT_LEARNER))
			return SP_ERR_PROTO;
		/* A quorum counts ids; a member listed twice would count twice. */
		for (uint32_t j = 0; j < i; j++)
			if (conf->members[j].id == id)
				return SP_ERR_PROTO;
		conf->members[i].id = id;
		conf->members[i].role = role;
	}
	conf->n = n;
	return 0;
}

int raft_conf_decode(const uint8_t *p, size_t len, struct raft_conf *conf)
{
	struct reader r = {p, p + len};
	struct raft_conf parsed;

	if (len > CONF_MAX_SIZE || get_conf(&r, &parsed) != 0 || left(&r) != 0)
		return SP_ERR_PROTO;
	*conf = parsed;
	return 0;
}

int raft_conf_role(const struct raft_conf *conf, uint64_t id)
{
	if (id == RAFT_NONE)
		return 0;
	for (uint32_t i = 0; i < conf->n && i < RAFT_MAX_MEMBERS; i++)
		if (conf->members[i].id == id)
			return conf->members[i].role;
	return 0;
}

/* get_entry reads one log entry into *e. A CONF entry's data must itself
 * be a valid conf: a follower would otherwise persist an entry it can
 * never apply. */
static int get_entry(struct reader *r, struct raft_entry *e)
{
	struct raft_conf conf;

	memset(e, 0, sizeof(*e));
	if (get_u64(r, &e->term) != 0 || get_u64(r, &e->index) != 0 || get_u8(r, &e->type) != 0 ||
	    get_u32(r, &e->len) != 0)
		return SP_ERR_PROTO;
	if (e->type < RAFT_ENTRY_NORMAL || e->type > RAFT_ENTRY_CONF)
		return SP_ERR_PROTO;
	if (get_bytes(r, e->len, &e->data) != 0)
		return SP_ERR_PROTO;
	if (e->type == RAFT_ENTRY_CONF && raft_conf_decode(e->data, e->len, &conf) != 0)
		return SP_ERR_PROTO;
	return 0;
}

/*
 * get_entries reads n_entries entries. Every entry is parsed and checked
 * even past max_entries, so SP_ERR_TOOBIG means "well formed, but more
 * than you have room for" and any malformed message is SP_ERR_PROTO.
 */
static int get_entries(struct reader *r, struct raft_msg *msg, struct raft_entry *entries_buf,
		       uint32_t max_entries)
{
	/* Each entry takes at least its header: a count that cannot fit in
	 * what is left is refused before the loop runs 4 billion times. */
	if (msg->n_entries > left(r) / ENTRY_HEADER_SIZE)
		return SP_ERR_PROTO;
	for (uint32_t i = 0; i < msg->n_entries; i++) {
		struct raft_entry e;
		if (get_entry(r, &e) != 0)
			return SP_ERR_PROTO;
		if (i < max_entries)
			entries_buf[i] = e;
	}
	if (msg->n_entries > max_entries)
		return SP_ERR_TOOBIG;
	msg->entries = msg->n_entries ? entries_buf : NULL;
	return 0;
}

static int get_body(struct reader *r, struct raft_msg *msg, struct raft_entry *entries_buf,
		    uint32_t max_entries)
{
	switch (msg->type) {
	case RAFT_MSG_APPEND:
		if (get_u64(r, &msg->prev_index) != 0 || get_u64(r, &msg->prev_term) != 0 ||
		    get_u64(r, &msg->commit) != 0 || get_u64(r, &msg->ctx) != 0 ||
		    get_u32(r, &msg->n_entries) != 0)
			return SP_ERR_PROTO;
		return get_entries(r, msg, entries_buf, max_entries);
	case RAFT_MSG_APPEND_RESP:
		if (get_u64(r, &msg->index) != 0 || get_u64(r, &msg->hint) != 0 ||
		    get_u64(r, &msg->ctx) != 0 || get_bool(r, &msg->reject) != 0)
			return SP_ERR_PROTO;
		return 0;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		if (get_u64(r, &msg->index) != 0 || get_u64(r, &msg->log_term) != 0 ||
		    get_bool(r, &msg->transfer) != 0)
			return SP_ERR_PROTO;
		return 0;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		return get_bool(r, &msg->reject);
	case RAFT_MSG_SNAPSHOT:
		if (get_u64(r, &msg->snap.index) != 0 || get_u64(r, &msg->snap.term) != 0 ||
		    get_conf(r, &msg->snap.conf) != 0 || get_u64(r, &msg->offset) != 0 ||
		    get_u32(r, &msg->len) != 0 || get_bytes(r, msg->len, &msg->data) != 0 ||
		    get_bool(r, &msg->last) != 0)
			return SP_ERR_PROTO;
		if (msg->len == 0)
			msg->data = NULL;
		return 0;
	case RAFT_MSG_SNAPSHOT_RESP:
		if (get_u64(r, &msg->snap.index) != 0 || get_u64(r, &msg->snap.term) != 0 ||
		    get_u64(r, &msg->offset) != 0 || get_u64(r, &msg->hint) != 0 ||
		    get_bool(r, &msg->last) != 0 || get_bool(r, &msg->reject) != 0)
			return SP_ERR_PROTO;
		return 0;
	case RAFT_MSG_TIMEOUT_NOW:
		return 0;
	case RAFT_MSG_READ_INDEX:
		return get_u64(r, &msg->ctx);
	case RAFT_MSG_READ_INDEX_RESP:
		if (get_u64(r, &msg->ctx) != 0 || get_u64(r, &msg->index) != 0 ||
		    get_bool(r, &msg->reject) != 0)
			return SP_ERR_PROTO;
		return 0;
	}
	return SP_ERR_PROTO;
}

int raft_msg_decode(const uint8_t *p, size_t len, struct raft_msg *msg,
		    struct raft_entry *entries_buf, uint32_t max_entries)
{
	struct reader r = {p, p + len};
	uint8_t version;
	int rc;

	memset(msg, 0, sizeof(*msg));
	if (get_u8(&r, &version) != 0 || version != CODEC_VERSION)
		goto refuse;
	if (get_u8(&r, &msg->type) != 0 || msg->type < RAFT_MSG_APPEND ||
	    msg->type >= RAFT_MSG__LAST)
		goto refuse;
	if (get_u64(&r, &msg->from) != 0 || get_u64(&r, &msg->to) != 0 ||
	    get_u64(&r, &msg->term) != 0)
		goto refuse;
	rc = get_body(&r, msg, entries_buf, max_entries);
	if (rc == SP_ERR_TOOBIG && left(&r) != 0)
		rc = SP_ERR_PROTO;
	if (rc != 0)
		goto clear;
	if (left(&r) != 0)
		goto refuse;
	return 0;

refuse:
	rc = SP_ERR_PROTO;
clear:
	/* A refused message leaves no half-parsed fields (or pointers into
	 * the input) behind for a careless caller to act on. */
	memset(msg, 0, sizeof(*msg));
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Names                                                                   */

const char *raft_msg_type_name(int type)
{
	switch (type) {
	case RAFT_MSG_APPEND:
		return "append";
	case RAFT_MSG_APPEND_RESP:
		return "append_resp";
	case RAFT_MSG_VOTE:
		return "vote";
	case RAFT_MSG_VOTE_RESP:
		return "vote_resp";
	case RAFT_MSG_PREVOTE:
		return "prevote";
	case RAFT_MSG_PREVOTE_RESP:
		return "prevote_resp";
	case RAFT_MSG_SNAPSHOT:
		return "snapshot";
	case RAFT_MSG_SNAPSHOT_RESP:
		return "snapshot_resp";
	case RAFT_MSG_TIMEOUT_NOW:
		return "timeout_now";
	case RAFT_MSG_READ_INDEX:
		return "read_index";
	case RAFT_MSG_READ_INDEX_RESP:
		return "read_index_resp";
	}
	return "unknown";
}

const char *raft_role_name(enum raft_role role)
{
	switch (role) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_PRECANDIDATE:
		return "precandidate";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	}
	return "unknown";
}
