/*
 * msg: the eventual engine's messages between replicas, and their codec.
 *
 * Pure: no I/O, no clock, no globals. A message is one peer-transport
 * frame payload on channel EV_CHANNEL (the frame already carries length,
 * version, checksum and sender). Integers are little-endian; byte strings
 * are a u32 length then the bytes. Every message starts with its type byte:
 *
 *   PING / PONG    type                         (liveness, both ways)
 *   WRITE          type | id u64 | hint_for u64 | seen_ts u64 | item
 *                  merge item into the store (hint_for 0), or keep it
 *                  durably as a hint for node hint_for (sloppy quorum)
 *   WRITE_ACK      type | id u64 | status u8    (0 done, 1 refused)
 *   READ           type | id u64 | rf u8 | key
 *   READ_REPLY     type | id u64 | status u8 | item-state
 *                  (status 0 found, 1 not found, 2 failed)
 *   PROXY          type | id u64 | op           a write for a replica to
 *                  coordinate (this node is not one of the key's)
 *   PROXY_REPLY    type | id u64 | status i32 | n i64 | acks u8 |
 *                  replicas u8 | type u8 | state | msg
 *   AE_ROOTS       type | rf u8 | count u32 | (token u64 | root u64)*
 *   AE_LEAVES      type | rf u8 | count u32 | (token u64 | leaf u64 * 64)*
 *   AE_ITEMS       type | rf u8 | token u64 | leafmask u64 |
 *                  want_reply u8 | count u32 | item*
 *
 *   item  = key | rf u8 | type u8 | state  (a key's whole CRDT state, and
 *           the replication factor of its keyspace, which places it)
 *   op    = kind u8 | level u8 | rf u8 | flags u8 | n i64 |
 *           expires_ms u64 | key | nargs u32 | arg*
 *
 * Decoding never reads past the payload, and returns SP_ERR_PROTO for
 * anything malformed, so a bad peer costs one dropped message.
 */
#ifndef SP_ENGINE_EVENTUAL_MSG_H
#define SP_ENGINE_EVENTUAL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* The peer-transport channel of the eventual engine (Raft is 1, forwarded
 * strong requests 2). */
#define EV_CHANNEL 3

enum ev_msg_type {
	EVM_PING = 1,
	EVM_PONG,
	EVM_WRITE,
	EVM_WRITE_ACK,
	EVM_READ,
	EVM_READ_REPLY,
	EVM_PROXY,
	EVM_PROXY_REPLY,
	EVM_AE_ROOTS,
	EVM_AE_LEAVES,
	EVM_AE_ITEMS,
};

/* The most ranges one AE message may carry, and arguments one op. */
#define EV_MSG_MAX_RANGES 4096
#define EV_MSG_MAX_ARGS	  65536
#define EV_AE_LEAVES	  64

/* A borrowed byte string inside a message. */
struct ev_bytes {
	const uint8_t *p;
	size_t len;
};

struct ev_item {
	struct ev_bytes key;
	uint8_t rf;
	uint8_t type; /* enum crdt_type; 0 with an empty state: absent */
	struct ev_bytes state;
};

/* A client operation as it travels to a replica (PROXY). args points at
 * the encoded argument list: ev_op_arg walks it. */
struct ev_wire_op {
	uint8_t kind, level, rf, flags;
	int64_t n;
	uint64_t expires_ms; /* wall-clock ms after which it must not run */
	struct ev_bytes key;
	uint32_t nargs;
	struct ev_bytes args;
};

struct ev_root {
	uint64_t token, root;
};

/* One decoded message; which fields are set depends on type. Every
 * pointer borrows from the payload given to ev_msg_decode. */
struct ev_msg {
	uint8_t type;
	uint64_t id;
	uint64_t hint_for, seen_ts;
	uint8_t status;
	struct ev_item item; /* WRITE; READ (rf, key); READ_REPLY (type, state) */
	struct ev_wire_op op;
	/* PROXY_REPLY */
	int32_t rstatus;
	int64_t n;
	uint8_t acks, replicas;
	struct ev_bytes text;
	/* AE_*: count entries at body (roots: 16 bytes each; leaves: 8 + 8*64;
	 * items: decode with ev_msg_next_item) */
	uint32_t count;
	uint8_t rf;
	uint64_t token, leafmask;
	uint8_t want_reply;
	const uint8_t *body;
	size_t body_len;
};

/* ev_msg_decode parses one payload into *m. Returns 0 or SP_ERR_PROTO.
 * For AE_ITEMS the items are checked here, so ev_msg_next_item cannot
 * fail afterwards. */
int ev_msg_decode(const uint8_t *p, size_t len, struct ev_msg *m);

/* ev_msg_next_item reads the item at *pos of an AE_ITEMS body (decoded by
 * ev_msg_decode) and advances *pos. Returns 0 or SP_ERR_PROTO. */
int ev_msg_next_item(const struct ev_msg *m, size_t *pos, struct ev_item *out);

/* ev_op_arg reads argument *pos of an op's args and advances *pos.
 * Returns 0 or SP_ERR_PROTO. */
int ev_op_arg(const struct ev_bytes *args, size_t *pos, struct ev_bytes *out);

/* Encoders: each appends one whole message to out (caller-owned). */
void ev_msg_ping(struct sp_buf *out, bool pong);
void ev_msg_write(struct sp_buf *out, uint64_t id, uint64_t hint_for, uint64_t seen_ts,
		  const struct ev_item *it);
void ev_msg_write_ack(struct sp_buf *out, uint64_t id, uint8_t status);
void ev_msg_read(struct sp_buf *out, uint64_t id, uint8_t rf, const void *key, size_t klen);
void ev_msg_read_reply(struct sp_buf *out, uint64_t id, uint8_t status, uint8_t type,
		       const void *state, size_t slen);
void ev_msg_proxy(struct sp_buf *out, uint64_t id, const struct ev_wire_op *op);
void ev_msg_proxy_reply(struct sp_buf *out, uint64_t id, int32_t status, int64_t n, uint8_t acks,
			uint8_t replicas, uint8_t type, const void *state, size_t slen,
			const char *text);
/* AE_ROOTS / AE_LEAVES: the caller appends the entries after the header,
 * then patches the count with ev_msg_set_count at the offset returned. */
size_t ev_msg_ae_begin(struct sp_buf *out, uint8_t type, uint8_t rf);
void ev_msg_set_count(struct sp_buf *out, size_t at, uint32_t count);
/* AE_ITEMS: header, then ev_msg_put_item per item, then the count. */
size_t ev_msg_ae_items_begin(struct sp_buf *out, uint8_t rf, uint64_t token, uint64_t leafmask,
			     bool want_reply);
void ev_msg_put_item(struct sp_buf *out, const struct ev_item *it);
/* An op's argument list: ev_op_put_arg per argument. */
void ev_op_put_arg(struct sp_buf *out, const void *p, size_t len);

#endif
