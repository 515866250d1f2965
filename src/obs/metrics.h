/*
 * metrics: a node's registry of counters, gauges and histograms, rendered in
 * the Prometheus text exposition format, version 0.0.4.
 *
 * The server owns one registry per node. At start-up it registers each metric
 * family (a name, its help text, its type and its label names) and resolves
 * the series it will update (a family plus label values) to pointers; on the
 * hot path it only calls metric_inc / metric_add / metric_set /
 * metric_observe on those pointers, which neither allocate nor touch strings.
 * metrics_render writes the whole registry into a buffer for the HTTP
 * endpoint to send; metric_hist_read and metrics_quantile let the server
 * report recent latency percentiles itself.
 *
 * This module is pure: it does no I/O, reads no clock and has no globals
 * other than the constant bucket sets below. It does no locking: a registry
 * and its series are used from one thread. Numbers are formatted with
 * snprintf, so the process must stay in the "C" numeric locale (spectra
 * never calls setlocale). The "# UNIT" line of OpenMetrics is not part of
 * 0.0.4 and is never written; a family's unit is only checked against its
 * name.
 *
 * Text format: https://prometheus.io/docs/instrumenting/exposition_formats/
 */
#ifndef SP_OBS_METRICS_H
#define SP_OBS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* The most label names a family may have. */
#define METRICS_MAX_LABELS 6

enum metric_type {
	METRIC_COUNTER = 1, /* only goes up; the name ends in "_total" */
	METRIC_GAUGE,	    /* goes up and down, or is set */
	METRIC_HISTOGRAM,   /* observations counted in buckets, with a sum */
};

struct metrics;	      /* a registry */
struct metric_family; /* one metric name: help, unit, type, label names */
struct metric;	      /* one series: a family plus label values */

/*
 * metrics_new returns an empty registry. Never returns NULL (allocation
 * failure aborts, as everywhere in spectra). Owned by the caller; release it
 * with metrics_free.
 */
struct metrics *metrics_new(void);

/*
 * metrics_free releases the registry with every family and series in it;
 * every pointer metrics_family and metrics_series returned for it becomes
 * invalid. m may be NULL.
 */
void metrics_free(struct metrics *m);

/*
 * metrics_family registers a metric family in m.
 *
 *   name     [a-zA-Z_:][a-zA-Z0-9_:]*; a counter's name must end in "_total".
 *            It must differ from every name already registered and, for
 *            histograms, from the series names they render (a histogram
 *            "x" owns "x_bucket", "x_sum" and "x_count").
 *   unit     NULL or "" for none, else [a-zA-Z0-9_]+ such as "seconds" or
 *            "bytes"; the name must then end in "_<unit>" or
 *            "_<unit>_total". Checked only, never rendered (see above).
 *   help     one line of text (NULL means ""); backslashes and newlines are
 *            escaped on render.
 *   type     METRIC_COUNTER, METRIC_GAUGE or METRIC_HISTOGRAM.
 *   labels   NULL, or a NULL-terminated array of 0..METRICS_MAX_LABELS
 *            distinct label names, each [a-zA-Z_][a-zA-Z0-9_]* and not
 *            starting with "__" (reserved by Prometheus). A histogram may
 *            not have a label "le", which its buckets use.
 *   buckets  for a histogram, nbuckets >= 1 finite upper bounds in strictly
 *            increasing order; the +Inf bucket is implicit and must not be
 *            given. Ignored (may be NULL) for other types.
 *
 * Returns the family, or NULL when m is NULL, the type is unknown, or the
 * name, unit, labels or buckets break the rules above, including a name
 * already registered. The caller registers fixed families at start-up, so
 * NULL is a programming error it asserts on. Every string and the bucket
 * array are copied; the family is owned by m and valid until metrics_free.
 */
struct metric_family *metrics_family(struct metrics *m, const char *name, const char *unit,
				     const char *help, enum metric_type type,
				     const char *const *labels, const double *buckets,
				     size_t nbuckets);

/*
 * metrics_series returns the series of family f with these label values,
 * creating it, at zero, on first use.
 *
 *   values  one value per label name of f, in the same order (NULL when f
 *           has no labels; ignored then). A value may hold any bytes except
 *           NUL; backslash, double quote and newline are escaped on render.
 *
 * Returns NULL when f is NULL, or f has labels and values is NULL or holds a
 * NULL entry. Series are found through a hash table; this is not meant for
 * the hot path: resolve once and keep the pointer. The values are copied;
 * the series is owned by f's registry and its address stays valid until
 * metrics_free, however many series are created after it.
 */
struct metric *metrics_series(struct metric_family *f, const char *const *values);

/*
 * Updating a series. These are the hot-path calls: no allocation, no string
 * work, O(1) except metric_observe, which is O(log nbuckets). s is a series
 * metrics_series returned (never NULL). A call that does not apply to the
 * series' type is ignored, so a wrong call cannot corrupt another type's
 * state.
 *
 * metric_inc adds 1 to a counter or gauge.
 * metric_add adds v to a gauge, or to a counter when v >= 0 (a negative or
 *   NaN v is ignored for a counter: counters only go up).
 * metric_set sets a gauge to v (ignored for counters and histograms).
 * metric_observe records one observation v in a histogram: its count, its
 *   sum, and the bucket of the smallest bound >= v (bounds are inclusive,
 *   as Prometheus's "le" says; v above every bound goes in +Inf). A NaN v
 *   is ignored, so one bad measurement cannot make _sum NaN for good.
 */
void metric_inc(struct metric *s);
void metric_add(struct metric *s, double v);
void metric_set(struct metric *s, double v);
void metric_observe(struct metric *s, double v);

/*
 * metric_value returns a counter's or gauge's value, or a histogram's count
 * of observations. Like the calls below, it reads s and does not keep it.
 */
double metric_value(const struct metric *s);

/*
 * metric_hist_read copies a histogram series' cumulative bucket counts into
 * out: one per finite bound, in order, then one for +Inf (which equals the
 * count), so nbuckets + 1 values. At most max are written. Returns how many
 * were written: 0 when s is not a histogram. Callers subtract two snapshots
 * to get the counts over the time between them.
 */
size_t metric_hist_read(const struct metric *s, uint64_t *out, size_t max);

/*
 * metric_hist_bounds returns the finite upper bounds of a histogram series'
 * family and sets *n to their number; for another type it returns NULL and
 * sets *n to 0. The array is owned by the registry (valid until
 * metrics_free) and must not be modified.
 */
const double *metric_hist_bounds(const struct metric *s, size_t *n);

/*
 * metrics_quantile estimates the q-quantile (0 <= q <= 1) of the
 * observations counted in cum, as Prometheus's histogram_quantile does.
 *
 *   bounds  n finite upper bounds, strictly increasing.
 *   cum     n + 1 cumulative counts: one per bound, then +Inf (the total).
 *           A count lower than the one before it is raised to it, as
 *           Prometheus does, so a torn snapshot gives no nonsense.
 *
 * The quantile's rank q * total falls in the first bucket whose cumulative
 * count reaches it; the estimate interpolates linearly inside that bucket,
 * from the previous bound (0 for the first bucket when its bound is > 0;
 * the bound itself when it is <= 0) to the bucket's own bound. If the rank
 * falls in the +Inf bucket, the highest finite bound is returned. For q = 0
 * the lower edge of the first non-empty bucket is returned (Prometheus
 * divides 0 by 0 there and gives NaN).
 *
 * Returns NaN when q is NaN, n is 0 or the total is 0; -Inf when q < 0 and
 * +Inf when q > 1, as Prometheus does. Borrows both arrays for the call.
 */
double metrics_quantile(const double *bounds, const uint64_t *cum, size_t n, double q);

/*
 * metrics_render appends the whole registry to b in the text format 0.0.4:
 * families in registration order, each one's series in creation order.
 *
 *   # HELP name help
 *   # TYPE name counter|gauge|histogram
 *   name{l1="v1",l2="v2"} value        (no braces when there are no labels)
 *
 * A histogram series renders as name_bucket{...,le="<bound>"} lines with
 * cumulative counts, the last with le="+Inf" and the count, then
 * name_sum{...} and name_count{...}. Numbers: an integer value prints
 * without a decimal point ("42", also "1000000000000000000": every integer
 * within int64); other values in %g form with the fewest of 15, 16 or 17
 * significant digits that read back as the same double, trailing zeros
 * dropped ("0.1", "5e-05", "0.30000000000000004"); NaN as "NaN" and
 * infinities as "+Inf" / "-Inf". Bounds in "le" print the same
 * way. A family with no series still prints its HELP and TYPE lines.
 * Never fails; b grows as needed and stays owned by the caller.
 */
void metrics_render(const struct metrics *m, struct sp_buf *b);

/*
 * Bucket sets the server uses, for metrics_family.
 *
 * metrics_latency_buckets: seconds, 50us to 10s in 1-2.5-5 steps.
 * metrics_staleness_ms_buckets: milliseconds, 1ms to 60s.
 * metrics_versions_buckets: small counts, such as how many versions (siblings)
 *   of a key a read saw, 1 to 1000.
 */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_nbuckets;
extern const double metrics_staleness_ms_buckets[];
extern const size_t metrics_staleness_ms_nbuckets;
extern const double metrics_versions_buckets[];
extern const size_t metrics_versions_nbuckets;

#endif
