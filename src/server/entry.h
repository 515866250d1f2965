/*
 * entry: the bytes of a strong keyspace's Raft entries and of the
 * requests a follower forwards to its leader.
 *
 * A Raft entry carries client commands as they came (argument vectors),
 * not their effects: every node runs them against its own store when the
 * entry commits, with the leader's clock reading carried in the entry, so
 * every replica computes the same state (expiry times included) and the
 * node that proposed it computes the client's reply. Layout, integers
 * little-endian:
 *
 *   u8 type | u8 proto | u64 origin node | u64 request id | u64 time ms |
 *   u32 ncmds | ncmds x (u32 argc | argc x (u32 len | bytes))
 *
 * A forwarded request is the same body behind its own header:
 *
 *   u8 FWD_REQUEST | u64 request id | u8 class | u8 level | u8 type |
 *   u8 proto | u32 ncmds | commands
 *   u8 FWD_REPLY | u64 request id | u8 status | reply bytes (RESP)
 *
 * Pure: no I/O, no globals. Decoding never trusts a length.
 */
#ifndef SP_SERVER_ENTRY_H
#define SP_SERVER_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum entry_type {
	ENTRY_COMMAND = 1, /* one command; its reply is the client's */
	ENTRY_MULTI = 2,   /* MULTI/EXEC: the reply is an array of replies */
	ENTRY_EXPIRE = 3,  /* remove keys expired at the entry's time */
};

struct entry_hdr {
	uint8_t type;
	uint8_t proto;
	uint64_t origin; /* node that proposed it (0: nobody waits) */
	uint64_t req_id;
	uint64_t time_ms;
	uint32_t ncmds;
};

#define ENTRY_HDR_LEN 30

enum fwd_kind { FWD_REQUEST = 1, FWD_REPLY = 2 };

enum fwd_status {
	FWD_OK = 0,    /* reply bytes follow */
	FWD_RETRY = 1, /* not executed (no longer leader): route again */
};

/* A borrowed argument, as struct slice in server.h. */
struct entry_arg {
	const char *p;
	size_t len;
};

/* entry_put_hdr appends h; entry_put_cmd appends one command. */
void entry_put_hdr(struct sp_buf *out, const struct entry_hdr *h);
void entry_put_cmd(struct sp_buf *out, const struct entry_arg *argv, size_t argc);

/* entry_get_hdr reads a header: 0 and *body, *body_len set to what
 * follows, or SP_ERR_PROTO. */
int entry_get_hdr(const uint8_t *p, size_t len, struct entry_hdr *h, const uint8_t **body,
		  size_t *body_len);

/*
 * entry_next_cmd decodes the next command at *p (len *left), growing
 * *argv (capacity *cap, realloc'd) as needed, and advances *p and *left.
 * Arguments point into the input. Returns 0, or SP_ERR_PROTO when the
 * bytes do not hold a whole command (argc 0 included).
 */
int entry_next_cmd(const uint8_t **p, size_t *left, struct entry_arg **argv, size_t *cap,
		   size_t *argc);

#endif
