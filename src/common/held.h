/*
 * held: messages that may leave only after a store commit.
 *
 * A replica must not acknowledge a write before the batch holding it is
 * committed, or a crash between the two would lose a write some other
 * node counted. The engines queue such messages here as they go and send
 * them all once the commit succeeded (held_flush), or drop them when it
 * failed (held_drop). A queue is one byte buffer of (to u64 | len u32 |
 * bytes) records, so queuing costs a copy and no allocation per message.
 * It must not send anything itself outside held_flush.
 */
#ifndef SP_COMMON_HELD_H
#define SP_COMMON_HELD_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* The send function messages go out through: to a node id, the bytes
 * (borrowed for the call). Its result is ignored: peers treat the network
 * as lossy. */
typedef int (*held_send_fn)(void *ctx, uint64_t to, const void *p, size_t len);

struct held {
	struct sp_buf buf;
};

void held_init(struct held *h);
void held_free(struct held *h);
/* held_add queues a copy of len bytes at p for node `to`. */
void held_add(struct held *h, uint64_t to, const void *p, size_t len);
/* held_flush sends every queued message, in order, and empties the queue. */
void held_flush(struct held *h, held_send_fn send, void *ctx);
/* held_drop empties the queue without sending. */
void held_drop(struct held *h);

#endif
