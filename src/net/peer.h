/*
 * peer: the node-to-node transport, with fault hooks.
 *
 * Carries opaque frames (net/frame.h) between nodes named by non-zero
 * uint64 ids over TCP on a libuv loop. It knows channels, not engines: the
 * Raft binding uses channel FRAME_CHANNEL_RAFT today and the eventual
 * engine will take another, and nothing here may learn what a payload
 * means. It never blocks the loop and never aborts on what a peer sends.
 *
 * Connections. Traffic to a peer goes only on a connection this node
 * dialed; accepted connections are only read from. So every pair of nodes
 * has up to two connections, one per direction, and there is never a
 * choice of which to use. A peer is dialed lazily on the first send to it;
 * after a failed dial or a lost connection it is redialed after a backoff
 * that starts at reconnect_min_ms and doubles (with jitter: each wait is
 * drawn from [backoff/2, backoff]) up to reconnect_max_ms, and goes back
 * to the minimum once a connection has stayed up for reconnect_max_ms.
 * Each connection opens with a hello frame (cluster name, dialer's id, the
 * id it means to reach); the acceptor closes a connection whose hello is
 * wrong. A malformed frame closes the connection it came on (counted in
 * decode_errors, logged at warn). TCP_NODELAY and keepalive are set on
 * every connection.
 *
 * Sending. peer_net_send copies a frame into the peer's queue (a byte
 * buffer of encoded frames). Queues are flushed once per loop iteration
 * (a uv_prepare handle, so everything sent from one callback goes in one
 * write) or as soon as the previous write completes, so many small frames
 * share a uv_write. A queue holds at most max_queue_bytes (with the bytes
 * in flight); beyond that frames are dropped and counted: Raft, the first
 * user, tolerates loss, and a slow peer must not eat the node's memory.
 * Frames queued while a peer is unreachable are sent when it comes back;
 * frames in flight on a connection that fails are lost (frames_lost).
 * Frames are delivered in the order sent unless a fault hook says not.
 *
 * Fault hooks (drop, duplicate, delay, reorder, partition) are for tests
 * and the chaos tool. They cost nothing while off, which is the default;
 * whether a node lets an operator turn them on is the server's decision.
 * Randomness comes from a PRNG seeded by cfg->seed, so a run can be
 * replayed; delays are measured on cfg->clock.
 *
 * Lifetime: peer_net_close starts closing every handle and returns; the
 * caller must then run the loop until it has no active handles (e.g.
 * uv_run(loop, UV_RUN_DEFAULT)) before closing the loop. The peer_net's
 * memory is released by the last close callback.
 */
#ifndef SP_NET_PEER_H
#define SP_NET_PEER_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/clock.h"
#include "net/frame.h"

#define PEER_RECONNECT_MIN_MS_DEFAULT 10
#define PEER_RECONNECT_MAX_MS_DEFAULT 1000
#define PEER_MAX_QUEUE_DEFAULT	      ((size_t)64 << 20)
#define PEER_CLUSTER_DEFAULT	      "spectra"
#define PEER_BIND_DEFAULT	      "127.0.0.1"
/* Keepalive: first probe after this many seconds of silence. */
#define PEER_KEEPALIVE_S 15
/* A frame held back by the reorder hook waits 1..PEER_REORDER_MAX_MS ms. */
#define PEER_REORDER_MAX_MS 10

/*
 * The receive callback: one data frame from node `from` on `channel`.
 * payload is borrowed for the duration of the call only. The callback may
 * call any peer_net_* function, including peer_net_close.
 */
typedef void (*peer_frame_cb)(void *ctx, uint64_t from, uint8_t channel, const uint8_t *payload,
			      size_t len);

struct peer_net_config {
	uint64_t self_id;      /* this node's id, non-zero */
	const char *cluster;   /* cluster name in hellos; NULL: PEER_CLUSTER_DEFAULT */
	const char *bind_host; /* numeric IPv4/IPv6 address; NULL: "127.0.0.1" */
	int port;	       /* 0: ephemeral (see peer_net_port) */
	peer_frame_cb on_frame;
	void *ctx;		      /* passed to on_frame */
	uint32_t reconnect_min_ms;    /* 0: PEER_RECONNECT_MIN_MS_DEFAULT */
	uint32_t reconnect_max_ms;    /* 0: PEER_RECONNECT_MAX_MS_DEFAULT */
	size_t max_queue_bytes;	      /* per peer; 0: PEER_MAX_QUEUE_DEFAULT */
	size_t max_payload;	      /* largest frame payload sent or accepted;
				       * 0: FRAME_MAX_PAYLOAD_DEFAULT */
	const struct sp_clock *clock; /* NULL: the system clock; borrowed */
	uint64_t seed;		      /* seeds the fault hooks' PRNG */
};

struct peer_net_stats {
	uint64_t frames_sent;	    /* data frames written to a socket */
	uint64_t bytes_sent;	    /* bytes written to sockets, headers and hellos included */
	uint64_t writes;	    /* uv_write calls: frames_sent / writes shows the batching */
	uint64_t frames_received;   /* data frames handed to on_frame */
	uint64_t bytes_received;    /* bytes read from accepted connections */
	uint64_t frames_dropped;    /* refused because the peer's queue was full */
	uint64_t frames_lost;	    /* in flight on a failed connection, or queued
				     * for a peer that was removed */
	uint64_t dials;		    /* connection attempts */
	uint64_t connects;	    /* dials that connected */
	uint64_t reconnects;	    /* connects to a peer that had been connected before */
	uint64_t accepts;	    /* incoming connections whose hello was accepted */
	uint64_t disconnects;	    /* established outgoing connections that failed or closed */
	uint64_t decode_errors;	    /* incoming connections closed for a bad frame or hello */
	uint64_t fault_dropped;	    /* dropped by the drop hook */
	uint64_t fault_delayed;	    /* held by the delay hook */
	uint64_t fault_duplicated;  /* extra copies made by the duplicate hook */
	uint64_t fault_reordered;   /* held back by the reorder hook */
	uint64_t partition_dropped; /* dropped, sent or received, by a partition */
};

/* Per-frame faults, each decided independently for every outgoing frame
 * with probability ppm / 1,000,000. All zero means no faults. */
struct peer_faults {
	uint32_t drop_ppm;	  /* drop the frame */
	uint32_t dup_ppm;	  /* send it twice */
	uint32_t reorder_ppm;	  /* hold it back 1..PEER_REORDER_MAX_MS ms so that
				   * later frames overtake it */
	uint32_t delay_ms;	  /* hold every frame this long ... */
	uint32_t delay_jitter_ms; /* ... plus a uniform 0..jitter ms */
};

struct peer_net;

/*
 * peer_net_open binds and listens on cfg->bind_host:cfg->port and returns
 * the transport in *out.
 *   loop  borrowed; must outlive the peer_net (until its handles closed)
 *   cfg   copied, strings included; cfg->clock is borrowed
 * Returns 0, SP_ERR_INVAL (self_id 0, no on_frame, a bind_host that is not
 * a numeric address, a cluster name over FRAME_CLUSTER_MAX bytes,
 * reconnect_min_ms > reconnect_max_ms), or a negated errno from binding
 * (UV_EADDRINUSE...). On error nothing is left open: *out is NULL and the
 * loop may have a closing handle to run down.
 */
int peer_net_open(struct peer_net **out, uv_loop_t *loop, const struct peer_net_config *cfg);

/* peer_net_close closes every connection, timer and the listener; queued
 * and held frames are discarded. Run the loop until it has no active
 * handles afterwards; net is freed then. NULL is accepted. Must not be
 * called twice on one net. */
void peer_net_close(struct peer_net *net);

/* peer_net_port is the bound TCP port (useful after binding port 0). */
int peer_net_port(const struct peer_net *net);

/*
 * peer_net_add_peer makes node `id` reachable at host:port (host numeric,
 * copied). No connection is made until the first send.
 * Returns 0, SP_ERR_INVAL (id 0 or self, a non-numeric host, a port outside
 * 1..65535), or SP_ERR_EXISTS when id is already a peer.
 */
int peer_net_add_peer(struct peer_net *net, uint64_t id, const char *host, int port);

/* peer_net_remove_peer forgets node `id`: its connection is closed and
 * its queued frames are lost. Returns 0 or SP_ERR_NOTFOUND. Frames already
 * received from it are unaffected, and connections it dials in are still
 * read from. */
int peer_net_remove_peer(struct peer_net *net, uint64_t id);

/*
 * peer_net_send queues one frame for node `to` on `channel` (not
 * FRAME_CHANNEL_HELLO). payload is copied; the call never blocks.
 * Returns:
 *   0                the frame was accepted -- or dropped by a fault hook
 *                    or a full queue, which is counted, not reported:
 *                    senders treat the network as lossy
 *   SP_ERR_NOTFOUND  `to` is not a peer
 *   SP_ERR_INVAL     `to` is this node, or channel is FRAME_CHANNEL_HELLO
 *   SP_ERR_TOOBIG    len exceeds cfg->max_payload
 */
int peer_net_send(struct peer_net *net, uint64_t to, uint8_t channel, const void *payload,
		  size_t len);

/*
 * peer_net_link_down says whether the last outgoing connection to node id
 * failed to connect or broke (refused, reset, closed by the peer) and no
 * connection has come up since: a strong hint that the node is down or
 * restarting, known at once rather than after a failure detector's
 * timeout. False for an unknown id, for a peer not dialled yet, and while
 * a connection is up -- also one whose frames a fault hook or partition
 * drops (those look healthy here).
 */
bool peer_net_link_down(const struct peer_net *net, uint64_t id);

/* peer_net_get_stats copies the counters into *out. */
void peer_net_get_stats(const struct peer_net *net, struct peer_net_stats *out);

/*
 * peer_net_set_faults sets the faults applied to frames sent to `peer_id`,
 * or, with peer_id 0, the default for every peer without its own. faults
 * is copied; NULL (or all zero) clears the setting, so a peer falls back to
 * the default. Frames already held keep their schedule.
 * Returns 0 or SP_ERR_NOTFOUND for an unknown peer_id.
 */
int peer_net_set_faults(struct peer_net *net, uint64_t peer_id, const struct peer_faults *faults);

/*
 * peer_net_partition drops every frame to or from the n nodes in ids, on
 * send and on receive (including frames held by a delay), until
 * peer_net_heal. It replaces any earlier partition; this node's own id in
 * ids is ignored. The ids need not be peers (yet). ids is copied.
 * For a split into groups, give each node the set of nodes on the other
 * side.
 */
void peer_net_partition(struct peer_net *net, const uint64_t *ids, size_t n);

/* peer_net_heal clears the partition and every fault setting. */
void peer_net_heal(struct peer_net *net);

#endif
