/*
 * hlc: hybrid logical clock. See hlc.h for the timestamp layout and the
 * rules; this file quotes the paper's algorithm where it follows it.
 *
 * Kulkarni et al. keep (l, c): l the greatest physical time heard of, c a
 * counter for events at the same l. Packing them into one integer as
 * l << 16 | c makes "l' = max(l, pt); c' = (l' == l) ? c + 1 : 0" the same
 * as "pt > l ? (pt, 0) : last + 1", and makes the receive rule's
 * comparison of (l, c) pairs an integer max.
 */
#include "common/hlc.h"

#include <inttypes.h>
#include <stdio.h>

#include "common/err.h"

void hlc_init(struct hlc *h)
{
	h->last = 0;
}

uint64_t hlc_now(struct hlc *h, uint64_t wall_ms)
{
	if (wall_ms > HLC_MS_MAX)
		wall_ms = HLC_MS_MAX;
	/* Send or local event: l' = max(l, pt); c' = 0 when l moved, else c + 1. */
	if (wall_ms > HLC_MS(h->last))
		h->last = HLC_MAKE(wall_ms, 0);
	else if (h->last != UINT64_MAX)
		h->last++; /* a full counter carries into the milliseconds */
	return h->last;
}

int hlc_observe(struct hlc *h, uint64_t remote, uint64_t wall_ms, uint64_t max_skew_ms)
{
	uint64_t rms = HLC_MS(remote);
	/* Written as a difference so wall_ms + max_skew_ms cannot wrap. */
	if (max_skew_ms != 0 && rms > wall_ms && rms - wall_ms > max_skew_ms)
		return SP_ERR_RANGE;
	/* Receive event: l' = max(l, l_m, pt) with the counter to match; the
	 * pt term is applied by the next hlc_now. */
	if (remote > h->last)
		h->last = remote;
	return 0;
}

char *hlc_format(uint64_t ts, char *buf, size_t size)
{
	if (size > 0)
		snprintf(buf, size, "%" PRIu64 ".%" PRIu64, HLC_MS(ts), HLC_LOGICAL(ts));
	return buf;
}
