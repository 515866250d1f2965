/*
 * hlc: the hybrid logical clock (Kulkarni, Demirbas et al., "Logical
 * Physical Clocks", 2014) that stamps the eventual and causal engines' writes, so
 * that last-write-wins picks the later write as a person would see it
 * while never contradicting causality.
 *
 * A timestamp is one uint64: wall-clock milliseconds in the top 48 bits
 * (enough until the year 10889) and a logical counter in the low 16. As in
 * the paper, the millisecond part never runs behind the wall clock that
 * was passed in and stays close to it, and the counter orders events that
 * share a millisecond: a node's own events get strictly increasing
 * timestamps, and a timestamp observed from another node is exceeded by
 * every later local one (happens-before implies a smaller timestamp).
 * Equal timestamps of two nodes are broken by node id, by the caller.
 *
 * It is pure: the wall clock is read by the caller (src/common/clock) and
 * passed in, so tests can step it back or skew it. It must not read the
 * clock or keep any global state; one struct hlc per node.
 */
#ifndef SP_COMMON_HLC_H
#define SP_COMMON_HLC_H

#include <stddef.h>
#include <stdint.h>

/* The parts of a timestamp, and a timestamp from its parts (ms is cut to
 * 48 bits and l to 16). */
#define HLC_LOGICAL_BITS 16
#define HLC_LOGICAL_MAX	 0xFFFFu
#define HLC_MS(ts)	 ((uint64_t)(ts) >> HLC_LOGICAL_BITS)
#define HLC_LOGICAL(ts)	 (((uint64_t)(ts)) & HLC_LOGICAL_MAX)
#define HLC_MAKE(ms, l)	 (((uint64_t)(ms) << HLC_LOGICAL_BITS) | (((uint64_t)(l)) & HLC_LOGICAL_MAX))
/* The largest millisecond value a timestamp holds (2^48 - 1). */
#define HLC_MS_MAX (UINT64_MAX >> HLC_LOGICAL_BITS)
/* Room hlc_format needs for any timestamp: 15 digits, '.', 5 digits, NUL. */
#define HLC_FORMAT_SIZE 24

struct hlc {
	uint64_t last; /* the greatest timestamp returned or observed */
};

/* hlc_init starts a clock that has seen nothing (last = 0). */
void hlc_init(struct hlc *h);

/*
 * hlc_now returns the timestamp of a local event (a write this node
 * coordinates, or a message it sends), given the wall clock's reading
 * wall_ms. Following the paper's send rule: when wall_ms is past the
 * millisecond of the last timestamp the result is HLC_MAKE(wall_ms, 0);
 * otherwise (the wall clock stood still, stepped back, or trails a
 * timestamp observed from a node whose clock is ahead) it is last + 1. The
 * logical counter thus overflows after 65,536 events in one millisecond;
 * it then carries into the millisecond part, which runs ahead of the wall
 * clock by that one millisecond until the wall clock catches up. The
 * result is strictly greater than every timestamp hlc_now returned or
 * hlc_observe accepted before, with one exception that the skew bound of
 * hlc_observe keeps out of reach: once last is UINT64_MAX it stays there.
 * A wall_ms above HLC_MS_MAX counts as HLC_MS_MAX.
 *
 *   h       the node's clock; updated.
 *   wall_ms the wall clock in milliseconds since the Unix epoch.
 *
 * Cannot fail.
 */
uint64_t hlc_now(struct hlc *h, uint64_t wall_ms);

/*
 * hlc_observe merges a timestamp received from another node (on a write
 * or a read repair it carries), so that every later hlc_now exceeds it:
 * the paper's receive rule, with the receive event's own timestamp left to
 * the next hlc_now.
 *
 *   h            the node's clock; updated unless refused.
 *   remote       the timestamp received.
 *   wall_ms      this node's wall clock now.
 *   max_skew_ms  how far ahead of wall_ms a remote millisecond may be; 0
 *                means no bound.
 *
 * Returns 0, or SP_ERR_RANGE when HLC_MS(remote) > wall_ms + max_skew_ms:
 * the clock is then left as it was, so one node whose clock runs far ahead
 * cannot drag every clock in the cluster forward with it; the caller
 * counts or flags the write (it may still store it).
 */
int hlc_observe(struct hlc *h, uint64_t remote, uint64_t wall_ms, uint64_t max_skew_ms);

/*
 * hlc_format writes ts as "ms.logical" in decimal (e.g. "1700000000000.3")
 * into buf, which holds size bytes (HLC_FORMAT_SIZE is always enough;
 * shorter is cut and still NUL-terminated when size > 0). Returns buf,
 * which stays the caller's.
 */
char *hlc_format(uint64_t ts, char *buf, size_t size);

#endif
