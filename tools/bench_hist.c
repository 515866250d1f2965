/*
 * bench_hist: log-linear latency histogram. See bench_hist.h.
 *
 * Bucket layout: values 0..255 map to buckets 0..255 one to one. A value v
 * of 256 or more, with its highest set bit at position m (m >= 8), is
 * shifted right by m - 7 so that exactly its top 8 bits remain (128..255);
 * the bucket is 256 + 128 * (m - 8) + (those bits - 128). Each power of two
 * from 256 up thus gets 128 buckets of width 2^(m-7).
 */
#include "bench_hist.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

#define LINEAR	 256u /* values with a bucket of their own */
#define SUB	 128u /* buckets per power of two above LINEAR */
#define SUB_BITS 7u   /* log2(SUB) */

static unsigned bucket_of(uint64_t v)
{
	if (v > BENCH_HIST_MAX_US)
		v = BENCH_HIST_MAX_US;
	if (v < LINEAR)
		return (unsigned)v;
	unsigned m = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = m - SUB_BITS;
	return LINEAR + (shift - 1u) * SUB + (unsigned)((v >> shift) - SUB);
}

/* The bucket count follows from where the largest tracked value lands:
 * 60 s is 2^25.8 us, whose highest bit is bit 25, so it is shifted by 18
 * (bench_hist_init checks this). */
#define MAX_SHIFT 18u
#define BUCKETS                                                                                    \
	(LINEAR + (MAX_SHIFT - 1u) * SUB + (unsigned)(BENCH_HIST_MAX_US >> MAX_SHIFT) - SUB + 1u)

static void bounds_of(unsigned b, uint64_t *lo, uint64_t *hi)
{
	if (b < LINEAR) {
		*lo = *hi = b;
		return;
	}
	unsigned k = b - LINEAR;
	unsigned shift = k / SUB + 1u;
	*lo = (uint64_t)(k % SUB + SUB) << shift;
	*hi = *lo + ((uint64_t)1 << shift) - 1u;
}

void bench_hist_init(struct bench_hist *h)
{
	assert(bucket_of(BENCH_HIST_MAX_US) == BUCKETS - 1u);
	h->counts = sp_calloc(BUCKETS, sizeof(*h->counts));
	h->total = h->min = h->max = 0;
}

void bench_hist_close(struct bench_hist *h)
{
	if (!h)
		return;
	free(h->counts);
	h->counts = NULL;
	h->total = h->min = h->max = 0;
}

void bench_hist_reset(struct bench_hist *h)
{
	memset(h->counts, 0, BUCKETS * sizeof(*h->counts));
	h->total = h->min = h->max = 0;
}

void bench_hist_record(struct bench_hist *h, uint64_t us)
{
	h->counts[bucket_of(us)]++;
	if (h->total == 0 || us < h->min)
		h->min = us;
	if (us > h->max)
		h->max = us;
	h->total++;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	if (src->total == 0)
		return;
	for (unsigned b = 0; b < BUCKETS; b++)
		dst->counts[b] += src->counts[b];
	if (dst->total == 0 || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->total += src->total;
}

uint64_t bench_hist_percentile(const struct bench_hist *h, double pct)
{
	if (h->total == 0)
		return 0;
	if (!(pct > 0))
		return h->min;
	if (pct >= 100)
		return h->max;
	/* The rank of the value sought, 1-based: ceil(pct% of total). The
	 * product is computed in long double so that 99.9% of a large count
	 * does not round down past an integer. */
	long double want = (long double)pct / 100.0L * (long double)h->total;
	uint64_t rank = (uint64_t)want;
	if ((long double)rank < want)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned b = 0; b < BUCKETS; b++) {
		seen += h->counts[b];
		if (seen >= rank) {
			uint64_t lo, hi;
			bounds_of(b, &lo, &hi);
			if (hi > h->max)
				hi = h->max;
			return hi < h->min ? h->min : hi;
		}
	}
	return h->max;
}

uint64_t bench_hist_count(const struct bench_hist *h)
{
	return h->total;
}

uint64_t bench_hist_max(const struct bench_hist *h)
{
	return h->max;
}

void bench_hist_bucket_bounds(uint64_t us, uint64_t *lo, uint64_t *hi)
{
	bounds_of(bucket_of(us), lo, hi);
}
