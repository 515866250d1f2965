/*
 * bench_hist: a latency histogram for `spectra bench`, in microseconds.
 *
 * Log-linear, in the manner of HdrHistogram: values below 256 us each have
 * their own bucket; above that, every power of two is split into 128 equal
 * buckets, so a bucket is never wider than 1/128 of the values it holds and
 * any percentile it reports is within 1% of a recorded value (two
 * significant decimal digits). The range is 0 us to BENCH_HIST_MAX_US (60 s)
 * in 2,533 counters (20 KB); a larger value is counted in the last
 * bucket, while bench_hist_max still reports it exactly. Recording is O(1)
 * and never allocates, so it can sit in a load generator's hot path.
 *
 * Pure: no I/O, no clock, no globals. Not thread-safe: give each thread its
 * own histogram and merge them.
 */
#ifndef SP_TOOLS_BENCH_HIST_H
#define SP_TOOLS_BENCH_HIST_H

#include <stdint.h>

/* Highest value told apart from others: 60 s in microseconds. */
#define BENCH_HIST_MAX_US 60000000ull

struct bench_hist {
	uint64_t *counts;  /* owned; BENCH_HIST_BUCKETS counters */
	uint64_t total;	   /* values recorded */
	uint64_t min, max; /* exact smallest and largest value; 0 when empty */
};

/*
 * bench_hist_init makes h an empty histogram. It allocates the counters
 * (running out of memory aborts, as sp_malloc does), so every init needs a
 * bench_hist_close.
 */
void bench_hist_init(struct bench_hist *h);

/* bench_hist_close releases what h owns; h may be NULL or already closed. */
void bench_hist_close(struct bench_hist *h);

/* bench_hist_reset empties h, keeping its memory. */
void bench_hist_reset(struct bench_hist *h);

/* bench_hist_record counts one value of us microseconds. */
void bench_hist_record(struct bench_hist *h, uint64_t us);

/* bench_hist_merge adds every value counted in src to dst; src is only
 * read (both are borrowed). */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);

/*
 * bench_hist_percentile returns the value at or below which pct percent of
 * the recorded values lie (pct in [0, 100]; out of range is clamped): the
 * highest value of the bucket holding the ceil(pct/100 * count)-th smallest
 * value, clamped to [min, max]. So it is never below the true percentile
 * and at most 1/128 above it. Percentile 0 is min and 100 is max. Returns
 * 0 for an empty histogram.
 */
uint64_t bench_hist_percentile(const struct bench_hist *h, double pct);

/* bench_hist_count returns how many values h holds; bench_hist_max the
 * largest (0 when empty). */
uint64_t bench_hist_count(const struct bench_hist *h);
uint64_t bench_hist_max(const struct bench_hist *h);

/* bench_hist_bucket_bounds gives the first and last value counted in the
 * bucket that holds us (for tests: the stated precision is that
 * hi - lo + 1 <= max(1, lo / 128)). */
void bench_hist_bucket_bounds(uint64_t us, uint64_t *lo, uint64_t *hi);

#endif
