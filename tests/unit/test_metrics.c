/*
 * test_metrics: the metrics registry and its Prometheus text rendering.
 * Registration rules (names, units, labels, buckets, duplicates), exact
 * text for small registries, escaping, number formatting, the update rules
 * of each type, histogram buckets (le inclusive, cumulative, +Inf equal to
 * the count), quantile estimates against known cases and against the true
 * quantile of random samples, a parse-back of randomly built registries,
 * and that series pointers survive the registry's growth.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <inttypes.h>

#include <cmocka.h>

#include "../lib/testutil.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "obs/metrics.h"

static uint64_t base_seed;

/* render returns the registry's text, NUL-terminated, owned by the caller. */
static char *render(const struct metrics *m)
{
	struct sp_buf b;
	sp_buf_init(&b);
	metrics_render(m, &b);
	char *text = sp_memdup(sp_buf_begin(&b), b.len);
	sp_buf_free(&b);
	return text;
}

static void assert_render(const struct metrics *m, const char *want)
{
	char *got = render(m);
	if (strcmp(got, want) != 0)
		print_message("got:\n%s\nwant:\n%s\n", got, want);
	assert_string_equal(got, want);
	free(got);
}

static void assert_near(double got, double want)
{
	double d = got > want ? got - want : want - got;
	if (!(d <= 1e-9 * (1 + (want < 0 ? -want : want))))
		fail_msg("got %.17g, want %.17g", got, want);
}

/* The library needs no libm and the Makefile links none, so neither does
 * this test: the few float helpers it needs are written out. */

static double from_bits(uint64_t bits)
{
	double v;
	memcpy(&v, &bits, sizeof(v));
	return v;
}

/* next_up returns the next double above a positive finite x. */
static double next_up(double x)
{
	uint64_t bits;
	memcpy(&bits, &x, sizeof(bits));
	return from_bits(bits + 1);
}

/* random_spread returns a value spread over the decades 10^lo .. 10^hi: a
 * uniform mantissa in [1, 10) times a uniformly chosen power of ten, so
 * roughly log-uniform, as latencies are. */
static double random_spread(uint64_t *rng, int lo, int hi)
{
	double v = 1 + (double)tu_rnd(rng, 9000000) / 1000000;
	int e = lo + (int)tu_rnd(rng, (uint64_t)(hi - lo));
	for (; e > 0; e--)
		v *= 10;
	for (; e < 0; e++)
		v /= 10;
	return v;
}

/* ---- Registration -------------------------------------------------------- */

static void test_invalid_families(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const double b3[] = {1, 2, 3};

	/* Names. */
	const char *bad_names[] = {"", "1abc", "a-b", "a b", "a.b", "caf\xc3\xa9", "a{b}"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
		assert_null(
		    metrics_family(m, bad_names[i], NULL, "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_null(metrics_family(m, NULL, NULL, "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_null(metrics_family(NULL, "ok", NULL, "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_non_null(metrics_family(m, ":colon_9:x", NULL, "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_non_null(metrics_family(m, "_under", NULL, NULL, METRIC_GAUGE, NULL, NULL, 0));

	/* Types. */
	assert_null(metrics_family(m, "t0", NULL, "h", (enum metric_type)0, NULL, NULL, 0));
	assert_null(metrics_family(m, "t4", NULL, "h", (enum metric_type)4, NULL, NULL, 0));

	/* A counter's name ends in _total. */
	assert_null(metrics_family(m, "requests", NULL, "h", METRIC_COUNTER, NULL, NULL, 0));
	assert_null(metrics_family(m, "requests_totals", NULL, "h", METRIC_COUNTER, NULL, NULL, 0));
	assert_non_null(
	    metrics_family(m, "requests_total", NULL, "h", METRIC_COUNTER, NULL, NULL, 0));

	/* Units end the name, before any _total. */
	assert_null(metrics_family(m, "size_bytes", "seconds", "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_null(metrics_family(m, "read_total", "bytes", "h", METRIC_COUNTER, NULL, NULL, 0));
	assert_null(metrics_family(m, "xbytes", "bytes", "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_null(metrics_family(m, "_bytes", "bytes", "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_null(metrics_family(m, "bytes", "bytes", "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_null(metrics_family(m, "a_b:s", "b:s", "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_non_null(metrics_family(m, "size_bytes", "bytes", "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_non_null(
	    metrics_family(m, "read_bytes_total", "bytes", "h", METRIC_COUNTER, NULL, NULL, 0));
	assert_non_null(metrics_family(m, "up_seconds", "", "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_non_null(
	    metrics_family(m, "wait_seconds", "seconds", "h", METRIC_HISTOGRAM, NULL, b3, 3));

	/* Labels. */
	const char *l_reserved[] = {"__name", NULL};
	const char *l_digit[] = {"1a", NULL};
	const char *l_dash[] = {"a-b", NULL};
	const char *l_empty[] = {"", NULL};
	const char *l_colon[] = {"a:b", NULL};
	const char *l_dup[] = {"a", "b", "a", NULL};
	const char *l_seven[] = {"a", "b", "c", "d", "e", "f", "g", NULL};
	const char *l_six[] = {"a", "b", "c", "d", "e", "_f", NULL};
	const char *l_le[] = {"op", "le", NULL};
	const char *const *bad_labels[] = {l_reserved, l_digit, l_dash, l_empty,
					   l_colon,    l_dup,	l_seven};
	for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++) {
		assert_null(
		    metrics_family(m, "lab", NULL, "h", METRIC_GAUGE, bad_labels[i], NULL, 0));
		assert_null(
		    metrics_family(m, "lab_h", NULL, "h", METRIC_HISTOGRAM, bad_labels[i], b3, 3));
	}
	assert_non_null(metrics_family(m, "lab", NULL, "h", METRIC_GAUGE, l_six, NULL, 0));
	/* "le" belongs to histograms' buckets; other types may use it. */
	assert_null(metrics_family(m, "lab_h", NULL, "h", METRIC_HISTOGRAM, l_le, b3, 3));
	assert_non_null(metrics_family(m, "lab_le", NULL, "h", METRIC_GAUGE, l_le, NULL, 0));

	/* Buckets. */
	const double eq[] = {1, 1};
	const double down[] = {2, 1};
	const double with_nan[] = {1, NAN};
	const double with_inf[] = {1, INFINITY};
	const double ninf[] = {-INFINITY, 1};
	assert_null(metrics_family(m, "h0", NULL, "h", METRIC_HISTOGRAM, NULL, NULL, 0));
	assert_null(metrics_family(m, "h0", NULL, "h", METRIC_HISTOGRAM, NULL, b3, 0));
	assert_null(metrics_family(m, "h0", NULL, "h", METRIC_HISTOGRAM, NULL, NULL, 3));
	assert_null(metrics_family(m, "h0", NULL, "h", METRIC_HISTOGRAM, NULL, eq, 2));
	assert_null(metrics_family(m, "h0", NULL, "h", METRIC_HISTOGRAM, NULL, down, 2));
	assert_null(metrics_family(m, "h0", NULL, "h", METRIC_HISTOGRAM, NULL, with_nan, 2));
	assert_null(metrics_family(m, "h0", NULL, "h", METRIC_HISTOGRAM, NULL, with_inf, 2));
	assert_null(metrics_family(m, "h0", NULL, "h", METRIC_HISTOGRAM, NULL, ninf, 2));
	const double neg[] = {-5, -0.5, 0, 0.5};
	assert_non_null(metrics_family(m, "h0", NULL, "h", METRIC_HISTOGRAM, NULL, neg, 4));
	/* Buckets are ignored for other types. */
	assert_non_null(metrics_family(m, "g_ignores", NULL, "h", METRIC_GAUGE, NULL, down, 2));

	/* Duplicates, including the names a histogram renders. */
	assert_null(metrics_family(m, "requests_total", NULL, "h", METRIC_COUNTER, NULL, NULL, 0));
	assert_null(metrics_family(m, "size_bytes", NULL, "other", METRIC_HISTOGRAM, NULL, b3, 3));
	assert_non_null(metrics_family(m, "lat", NULL, "h", METRIC_HISTOGRAM, NULL, b3, 3));
	assert_null(metrics_family(m, "lat_count", NULL, "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_null(metrics_family(m, "lat_sum", NULL, "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_null(metrics_family(m, "lat_bucket", NULL, "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_non_null(metrics_family(m, "lat_max", NULL, "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_non_null(metrics_family(m, "lat2_sum", NULL, "h", METRIC_GAUGE, NULL, NULL, 0));
	assert_null(metrics_family(m, "lat2", NULL, "h", METRIC_HISTOGRAM, NULL, b3, 3));
	assert_non_null(metrics_family(m, "lat2", NULL, "h", METRIC_GAUGE, NULL, NULL, 0));

	/* Series need all their label values. */
	struct metric_family *f = metrics_family(m, "two", NULL, "h", METRIC_GAUGE,
						 (const char *[]){"a", "b", NULL}, NULL, 0);
	assert_non_null(f);
	assert_null(metrics_series(NULL, NULL));
	assert_null(metrics_series(f, NULL));
	assert_null(metrics_series(f, (const char *[]){"x", NULL}));
	assert_non_null(metrics_series(f, (const char *[]){"x", ""}));
	metrics_free(m);
}

/* ---- Rendering ----------------------------------------------------------- */

static void test_render_counter_gauge(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const char *cmd[] = {"cmd", NULL};
	struct metric_family *req = metrics_family(
	    m, "spectra_requests_total", NULL, "Requests served.", METRIC_COUNTER, cmd, NULL, 0);
	struct metric_family *temp = metrics_family(m, "temp_celsius", "celsius", "Temperature.",
						    METRIC_GAUGE, NULL, NULL, 0);
	struct metric_family *empty =
	    metrics_family(m, "empty_family", NULL, "", METRIC_GAUGE, NULL, NULL, 0);
	struct metric_family *up = metrics_family(m, "up", NULL, "Is it up.", METRIC_GAUGE,
						  (const char *[]){NULL}, NULL, 0);
	assert_non_null(req);
	assert_non_null(temp);
	assert_non_null(empty);
	assert_non_null(up);

	struct metric *get = metrics_series(req, (const char *[]){"get"});
	struct metric *set = metrics_series(req, (const char *[]){"set"});
	assert_ptr_equal(metrics_series(req, (const char *[]){"get"}), get);
	assert_ptr_not_equal(get, set);
	metric_inc(get);
	metric_inc(get);
	metric_inc(get);
	metric_add(set, 2.5);
	struct metric *t = metrics_series(temp, NULL);
	assert_ptr_equal(metrics_series(temp, NULL), t);
	metric_set(t, -3.25);
	metric_inc(metrics_series(up, NULL));

	assert_render(m, "# HELP spectra_requests_total Requests served.\n"
			 "# TYPE spectra_requests_total counter\n"
			 "spectra_requests_total{cmd=\"get\"} 3\n"
			 "spectra_requests_total{cmd=\"set\"} 2.5\n"
			 "# HELP temp_celsius Temperature.\n"
			 "# TYPE temp_celsius gauge\n"
			 "temp_celsius -3.25\n"
			 "# HELP empty_family \n"
			 "# TYPE empty_family gauge\n"
			 "# HELP up Is it up.\n"
			 "# TYPE up gauge\n"
			 "up 1\n");

	/* Rendering appends: an empty registry adds nothing. */
	struct metrics *none = metrics_new();
	assert_render(none, "");
	metrics_free(none);
	metrics_free(m);
}

static void test_render_histogram(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const double bounds[] = {0.25, 1, 4};
	struct metric_family *lat = metrics_family(m, "lat_seconds", "seconds", "Latency.",
						   METRIC_HISTOGRAM, NULL, bounds, 3);
	struct metric_family *rpc =
	    metrics_family(m, "rpc_seconds", "seconds", "RPC time.", METRIC_HISTOGRAM,
			   (const char *[]){"op", "node", NULL}, bounds, 3);
	struct metric_family *idle = metrics_family(m, "idle_seconds", "seconds", "Unused.",
						    METRIC_HISTOGRAM, NULL, bounds, 3);
	assert_non_null(lat);
	assert_non_null(rpc);
	assert_non_null(idle);

	struct metric *s = metrics_series(lat, NULL);
	metric_observe(s, 0.125);
	metric_observe(s, 0.25); /* on the bound: in le="0.25" */
	metric_observe(s, 2);
	metric_observe(s, 8);
	struct metric *g = metrics_series(rpc, (const char *[]){"get", "1"});
	metric_observe(g, 0.5);
	metrics_series(rpc, (const char *[]){"set", "2"});

	assert_render(m, "# HELP lat_seconds Latency.\n"
			 "# TYPE lat_seconds histogram\n"
			 "lat_seconds_bucket{le=\"0.25\"} 2\n"
			 "lat_seconds_bucket{le=\"1\"} 2\n"
			 "lat_seconds_bucket{le=\"4\"} 3\n"
			 "lat_seconds_bucket{le=\"+Inf\"} 4\n"
			 "lat_seconds_sum 10.375\n"
			 "lat_seconds_count 4\n"
			 "# HELP rpc_seconds RPC time.\n"
			 "# TYPE rpc_seconds histogram\n"
			 "rpc_seconds_bucket{op=\"get\",node=\"1\",le=\"0.25\"} 0\n"
			 "rpc_seconds_bucket{op=\"get\",node=\"1\",le=\"1\"} 1\n"
			 "rpc_seconds_bucket{op=\"get\",node=\"1\",le=\"4\"} 1\n"
			 "rpc_seconds_bucket{op=\"get\",node=\"1\",le=\"+Inf\"} 1\n"
			 "rpc_seconds_sum{op=\"get\",node=\"1\"} 0.5\n"
			 "rpc_seconds_count{op=\"get\",node=\"1\"} 1\n"
			 "rpc_seconds_bucket{op=\"set\",node=\"2\",le=\"0.25\"} 0\n"
			 "rpc_seconds_bucket{op=\"set\",node=\"2\",le=\"1\"} 0\n"
			 "rpc_seconds_bucket{op=\"set\",node=\"2\",le=\"4\"} 0\n"
			 "rpc_seconds_bucket{op=\"set\",node=\"2\",le=\"+Inf\"} 0\n"
			 "rpc_seconds_sum{op=\"set\",node=\"2\"} 0\n"
			 "rpc_seconds_count{op=\"set\",node=\"2\"} 0\n"
			 "# HELP idle_seconds Unused.\n"
			 "# TYPE idle_seconds histogram\n");

	/* The server's latency buckets print their small bounds the way
	 * Go's strconv does. */
	struct metrics *m2 = metrics_new();
	struct metric_family *f =
	    metrics_family(m2, "op_seconds", "seconds", "x", METRIC_HISTOGRAM, NULL,
			   metrics_latency_buckets, metrics_latency_nbuckets);
	assert_non_null(f);
	metrics_series(f, NULL);
	char *text = render(m2);
	assert_non_null(strstr(text, "op_seconds_bucket{le=\"5e-05\"} 0\n"
				     "op_seconds_bucket{le=\"0.0001\"} 0\n"
				     "op_seconds_bucket{le=\"0.00025\"} 0\n"));
	assert_non_null(strstr(text, "op_seconds_bucket{le=\"2.5\"} 0\n"
				     "op_seconds_bucket{le=\"5\"} 0\n"
				     "op_seconds_bucket{le=\"10\"} 0\n"
				     "op_seconds_bucket{le=\"+Inf\"} 0\n"));
	free(text);
	metrics_free(m2);
	metrics_free(m);
}

static void test_escaping(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	struct metric_family *f =
	    metrics_family(m, "esc", NULL, "Line one\nback\\slash \"quoted\"", METRIC_GAUGE,
			   (const char *[]){"k", "other", NULL}, NULL, 0);
	assert_non_null(f);
	metric_set(metrics_series(f, (const char *[]){"a\\b\"c\nd", "\t\xff{},="}), 1);
	metric_set(metrics_series(f, (const char *[]){"", "\\\\\"\"\n\n"}), 2);
	assert_render(m, "# HELP esc Line one\\nback\\\\slash \"quoted\"\n"
			 "# TYPE esc gauge\n"
			 "esc{k=\"a\\\\b\\\"c\\nd\",other=\"\t\xff{},=\"} 1\n"
			 "esc{k=\"\",other=\"\\\\\\\\\\\"\\\"\\n\\n\"} 2\n");
	metrics_free(m);
}

/* Each value renders as the line "g <text>". */
static void test_number_format(void **state)
{
	(void)state;
	const struct {
		double v;
		const char *text;
	} cases[] = {
	    {42, "42"},
	    {-7, "-7"},
	    {0, "0"},
	    {-0.0, "0"},
	    {0.1, "0.1"},
	    {-3.25, "-3.25"},
	    {1.0 / 3, "0.3333333333333333"},
	    {0.1 + 0.2, "0.30000000000000004"},
	    {123456.789, "123456.789"},
	    {5e-05, "5e-05"},
	    {1e-300, "1e-300"},
	    {1e300, "1e+300"},
	    {1e18, "1000000000000000000"},
	    {9007199254740993.0, "9007199254740992"},
	    {-9223372036854775808.0, "-9223372036854775808"},
	    {9223372036854775808.0, "9.223372036854776e+18"},
	    {NAN, "NaN"},
	    {INFINITY, "+Inf"},
	    {-INFINITY, "-Inf"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct metrics *m = metrics_new();
		struct metric_family *f =
		    metrics_family(m, "g", NULL, "", METRIC_GAUGE, NULL, NULL, 0);
		metric_set(metrics_series(f, NULL), cases[i].v);
		char want[128];
		snprintf(want, sizeof(want), "# HELP g \n# TYPE g gauge\ng %s\n", cases[i].text);
		assert_render(m, want);
		metrics_free(m);
	}
}

/* ---- Updates ------------------------------------------------------------- */

static void test_type_rules(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const double b[] = {1, 2};
	struct metric *c = metrics_series(
	    metrics_family(m, "c_total", NULL, "", METRIC_COUNTER, NULL, NULL, 0), NULL);
	struct metric *g =
	    metrics_series(metrics_family(m, "g", NULL, "", METRIC_GAUGE, NULL, NULL, 0), NULL);
	struct metric *h =
	    metrics_series(metrics_family(m, "h", NULL, "", METRIC_HISTOGRAM, NULL, b, 2), NULL);

	/* Counters only go up. */
	metric_inc(c);
	metric_add(c, 2);
	metric_add(c, -5);
	metric_add(c, NAN);
	metric_set(c, 100);
	metric_observe(c, 1);
	assert_true(metric_value(c) == 3);
	metric_add(c, 0.5);
	assert_true(metric_value(c) == 3.5);

	/* Gauges go both ways and can be set. */
	metric_inc(g);
	metric_add(g, -5);
	assert_true(metric_value(g) == -4);
	metric_set(g, 7.5);
	metric_observe(g, 1);
	assert_true(metric_value(g) == 7.5);

	/* Histograms take observations only; their value is the count. */
	metric_inc(h);
	metric_add(h, 3);
	metric_set(h, 9);
	assert_true(metric_value(h) == 0);
	metric_observe(h, 1.5);
	metric_observe(h, NAN); /* ignored */
	assert_true(metric_value(h) == 1);

	uint64_t out[8];
	assert_int_equal(metric_hist_read(c, out, 8), 0);
	assert_int_equal(metric_hist_read(g, out, 8), 0);
	size_t n = 99;
	assert_null(metric_hist_bounds(c, &n));
	assert_int_equal(n, 0);
	const double *bounds = metric_hist_bounds(h, &n);
	assert_int_equal(n, 2);
	assert_true(bounds[0] == 1 && bounds[1] == 2);
	assert_int_equal(metric_hist_read(h, out, 8), 3);
	assert_int_equal(out[0], 0);
	assert_int_equal(out[1], 1);
	assert_int_equal(out[2], 1);
	/* A short out gets a prefix. */
	out[1] = 77;
	assert_int_equal(metric_hist_read(h, out, 1), 1);
	assert_int_equal(out[1], 77);
	assert_int_equal(metric_hist_read(h, out, 0), 0);
	metrics_free(m);
}

static void test_histogram_buckets(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const double *lb = metrics_latency_buckets;
	size_t nb = metrics_latency_nbuckets;
	assert_true(nb >= 15 && nb <= 20);
	struct metric_family *f = metrics_family(m, "t_seconds", "seconds", "", METRIC_HISTOGRAM,
						 (const char *[]){"i", NULL}, lb, nb);
	assert_non_null(f);
	uint64_t cum[32];

	/* An observation exactly on a bound counts in that bound's bucket;
	 * the next double above it counts in the next one. */
	for (size_t i = 0; i < nb; i++) {
		char id[32];
		snprintf(id, sizeof(id), "on%zu", i);
		struct metric *s = metrics_series(f, (const char *[]){id});
		metric_observe(s, lb[i]);
		assert_int_equal(metric_hist_read(s, cum, 32), nb + 1);
		for (size_t j = 0; j <= nb; j++)
			assert_int_equal(cum[j], j >= i ? 1 : 0);
		snprintf(id, sizeof(id), "above%zu", i);
		s = metrics_series(f, (const char *[]){id});
		metric_observe(s, next_up(lb[i]));
		metric_hist_read(s, cum, 32);
		for (size_t j = 0; j <= nb; j++)
			assert_int_equal(cum[j], j >= i + 1 ? 1 : 0);
	}
	struct metric *s = metrics_series(f, (const char *[]){"edges"});
	metric_observe(s, -INFINITY);
	metric_observe(s, -1);
	metric_observe(s, 0);
	metric_observe(s, INFINITY);
	metric_hist_read(s, cum, 32);
	assert_int_equal(cum[0], 3);
	assert_int_equal(cum[nb - 1], 3);
	assert_int_equal(cum[nb], 4);

	/* Random observations: cumulative counts never decrease, +Inf is the
	 * count, and the sum is the sum. */
	uint64_t rng = tu_stream(base_seed, "histogram_buckets");
	s = metrics_series(f, (const char *[]){"random"});
	double sum = 0;
	uint64_t below_1ms = 0;
	for (int k = 0; k < 10000; k++) {
		double v = random_spread(&rng, -6, 2);
		if (tu_rnd(&rng, 10) == 0)
			v = lb[tu_rnd(&rng, nb)];
		metric_observe(s, v);
		sum += v;
		below_1ms += v <= 0.001;
	}
	assert_int_equal(metric_hist_read(s, cum, 32), nb + 1);
	for (size_t j = 1; j <= nb; j++)
		assert_true(cum[j] >= cum[j - 1]);
	assert_int_equal(cum[nb], 10000);
	assert_true(metric_value(s) == 10000);
	assert_true(lb[4] == 0.001);
	assert_int_equal(cum[4], below_1ms);

	/* And the rendered _sum is that sum, _count and +Inf the count. */
	char *text = render(m);
	char line[128];
	snprintf(line, sizeof(line), "t_seconds_sum{i=\"random\"} ");
	char *p = strstr(text, line);
	assert_non_null(p);
	assert_true(strtod(p + strlen(line), NULL) == sum);
	assert_non_null(strstr(text, "t_seconds_count{i=\"random\"} 10000\n"));
	assert_non_null(strstr(text, "t_seconds_bucket{i=\"random\",le=\"+Inf\"} 10000\n"));
	free(text);
	metrics_free(m);

	/* The other bucket sets are valid histogram bounds too. */
	m = metrics_new();
	assert_non_null(metrics_family(m, "a", NULL, "", METRIC_HISTOGRAM, NULL,
				       metrics_staleness_ms_buckets,
				       metrics_staleness_ms_nbuckets));
	assert_non_null(metrics_family(m, "b", NULL, "", METRIC_HISTOGRAM, NULL,
				       metrics_versions_buckets, metrics_versions_nbuckets));
	assert_int_equal(metrics_staleness_ms_nbuckets, 15);
	assert_int_equal(metrics_versions_nbuckets, 9);
	assert_true(metrics_latency_buckets[0] == 0.00005);
	assert_true(metrics_latency_buckets[metrics_latency_nbuckets - 1] == 10);
	metrics_free(m);
}

/* ---- Quantiles ----------------------------------------------------------- */

static void test_quantile_known(void **state)
{
	(void)state;
	const double b[] = {1, 2, 4};

	/* Nothing counted, nothing to estimate. */
	assert_true(isnan(metrics_quantile(b, (const uint64_t[]){0, 0, 0, 0}, 3, 0.5)));
	assert_true(isnan(metrics_quantile(b, (const uint64_t[]){7}, 0, 0.5)));
	assert_true(isnan(metrics_quantile(b, (const uint64_t[]){1, 1, 1, 1}, 3, NAN)));
	assert_true(metrics_quantile(b, (const uint64_t[]){1, 1, 1, 1}, 3, -0.1) == -INFINITY);
	assert_true(metrics_quantile(b, (const uint64_t[]){1, 1, 1, 1}, 3, 1.1) == INFINITY);

	/* All in (1, 2]: interpolate from 1 to 2. */
	const uint64_t one[] = {0, 10, 10, 10};
	assert_near(metrics_quantile(b, one, 3, 0.5), 1.5);
	assert_near(metrics_quantile(b, one, 3, 0.25), 1.25);
	assert_near(metrics_quantile(b, one, 3, 1), 2);
	assert_near(metrics_quantile(b, one, 3, 0), 1);

	/* All in the first bucket: from 0. */
	const uint64_t first[] = {4, 4, 4, 4};
	assert_near(metrics_quantile(b, first, 3, 0.5), 0.5);
	assert_near(metrics_quantile(b, first, 3, 0), 0);

	/* Spread over buckets: rank 9 of 12 is 1 into (2, 4]'s 4. */
	const uint64_t spread[] = {4, 8, 12, 12};
	assert_near(metrics_quantile(b, spread, 3, 0.75), 2.5);
	assert_near(metrics_quantile(b, spread, 3, 0.5), 1.5);

	/* In the +Inf bucket: the highest finite bound. */
	assert_near(metrics_quantile(b, (const uint64_t[]){0, 0, 0, 5}, 3, 0.5), 4);
	assert_near(metrics_quantile(b, (const uint64_t[]){5, 5, 5, 10}, 3, 0.9), 4);
	assert_near(metrics_quantile(b, (const uint64_t[]){5, 5, 5, 10}, 3, 0.5), 1);

	/* A first bound <= 0 is returned as is. */
	const double nb[] = {-1, 0, 1};
	assert_near(metrics_quantile(nb, (const uint64_t[]){3, 3, 6, 6}, 3, 0.5), -1);
	assert_near(metrics_quantile(nb, (const uint64_t[]){3, 3, 6, 6}, 3, 0.25), -1);
	assert_near(metrics_quantile(nb, (const uint64_t[]){3, 3, 6, 6}, 3, 0.75), 0.5);

	/* A count lower than the one before is raised to it. */
	const uint64_t torn[] = {5, 3, 10, 10};
	assert_near(metrics_quantile(b, torn, 3, 0.5), 1);
	assert_near(metrics_quantile(b, torn, 3, 0.6), 2.4);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* check_in_bucket checks that est lies in the closed bucket holding the
 * true q-quantile of the sorted sample (the ceil(q*n)-th smallest), the
 * bucket Prometheus's estimate is confined to. */
static void check_in_bucket(const double *sorted, size_t n, const double *bounds, size_t nb,
			    double q, double est, const char *what, int trial)
{
	size_t k = (size_t)(q * (double)n);
	if ((double)k < q * (double)n)
		k++; /* ceil */
	double truth = sorted[k - 1];
	size_t i = 0;
	while (i < nb && bounds[i] < truth)
		i++;
	double lo = i > 0 ? bounds[i - 1] : 0;
	double hi = i < nb ? bounds[i] : INFINITY;
	if (!(lo <= est && est <= hi))
		fail_msg("SPECTRA_SEED=%" PRIu64
			 " trial %d %s q=%g: estimate %.17g outside [%g, %g] "
			 "holding the true quantile %.17g",
			 base_seed, trial, what, q, est, lo, hi, truth);
}

/* For random samples, spread over decades from 10us..10ms up to at most
 * 100s (past the last bound), with some observations exactly on bounds, p50/p95/p99 estimated from
 * the buckets lie in the bucket of the true sample quantile; and the same holds over a window, from
 * the difference of two snapshots. */
static void test_quantile_property(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "quantile_property");
	const double *lb = metrics_latency_buckets;
	size_t nb = metrics_latency_nbuckets;
	struct metrics *m = metrics_new();
	struct metric_family *f = metrics_family(m, "q_seconds", "seconds", "", METRIC_HISTOGRAM,
						 (const char *[]){"trial", NULL}, lb, nb);
	assert_non_null(f);
	const double qs[] = {0.5, 0.95, 0.99};
	enum { N = 1000 };
	for (int trial = 0; trial < 50; trial++) {
		char id[16];
		snprintf(id, sizeof(id), "%d", trial);
		struct metric *s = metrics_series(f, (const char *[]){id});
		/* Each trial skews differently so quantiles land all over. */
		int lo = -5 + (int)tu_rnd(&rng, 4);
		int hi = lo + 1 + (int)tu_rnd(&rng, (uint64_t)(2 - lo));
		static double sample[N], window[N / 2];
		uint64_t half[32], full[32], diff[32];
		for (int k = 0; k < N; k++) {
			double v = random_spread(&rng, lo, hi);
			if (tu_rnd(&rng, 8) == 0)
				v = lb[tu_rnd(&rng, nb)];
			sample[k] = v;
			metric_observe(s, v);
			if (k == N / 2 - 1)
				metric_hist_read(s, half, 32);
		}
		metric_hist_read(s, full, 32);
		for (size_t j = 0; j <= nb; j++)
			diff[j] = full[j] - half[j];
		memcpy(window, sample + N / 2, sizeof(window));
		qsort(sample, N, sizeof(double), cmp_double);
		qsort(window, N / 2, sizeof(double), cmp_double);
		for (size_t i = 0; i < 3; i++) {
			double est = metrics_quantile(lb, full, nb, qs[i]);
			check_in_bucket(sample, N, lb, nb, qs[i], est, "all", trial);
			est = metrics_quantile(lb, diff, nb, qs[i]);
			check_in_bucket(window, N / 2, lb, nb, qs[i], est, "window", trial);
		}
	}
	metrics_free(m);
}

/* ---- Parse-back ---------------------------------------------------------- */

/* A parsed sample line: name{l="v",...} value. */
struct sample {
	char name[256];
	size_t nlabels;
	char lname[METRICS_MAX_LABELS + 1][64];
	char lvalue[METRICS_MAX_LABELS + 1][256];
	double value;
};

static int name_char(char c, int first, int colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':'))
		return 1;
	return !first && c >= '0' && c <= '9';
}

/* parse_value accepts NaN, +Inf, -Inf or a finite decimal number that
 * strtod reads completely. */
static int parse_value(const char *p, const char *end, double *out)
{
	size_t n = (size_t)(end - p);
	if (n == 3 && memcmp(p, "NaN", 3) == 0) {
		*out = NAN;
		return 1;
	}
	if (n == 4 && (memcmp(p, "+Inf", 4) == 0 || memcmp(p, "-Inf", 4) == 0)) {
		*out = p[0] == '+' ? INFINITY : -INFINITY;
		return 1;
	}
	if (n == 0 || n >= 64)
		return 0;
	for (const char *c = p; c < end; c++)
		if (!strchr("0123456789.eE+-", *c))
			return 0;
	char tmp[64], *stop;
	memcpy(tmp, p, n);
	tmp[n] = 0;
	*out = strtod(tmp, &stop);
	return stop == tmp + n && isfinite(*out);
}

/* parse_sample is a small validator for the sample lines of the text format
 * 0.0.4: a metric name, optionally labels in braces (label names, "=",
 * quoted values where only \\, \" and \n are escapes), one space, a value.
 * It unescapes the label values. Returns 1 when the line is valid. */
static int parse_sample(const char *p, const char *end, struct sample *out)
{
	size_t n = 0;
	out->nlabels = 0;
	if (p == end || !name_char(*p, 1, 1))
		return 0;
	while (p < end && name_char(*p, 0, 1) && n + 1 < sizeof(out->name))
		out->name[n++] = *p++;
	out->name[n] = 0;
	if (p < end && *p == '{') {
		p++;
		while (p < end && *p != '}') {
			if (out->nlabels > 0) {
				if (*p != ',')
					return 0;
				p++;
			}
			if (out->nlabels == METRICS_MAX_LABELS + 1)
				return 0;
			char *ln = out->lname[out->nlabels], *lv = out->lvalue[out->nlabels];
			n = 0;
			if (p == end || !name_char(*p, 1, 0))
				return 0;
			while (p < end && name_char(*p, 0, 0) && n + 1 < 64)
				ln[n++] = *p++;
			ln[n] = 0;
			if (end - p < 2 || p[0] != '=' || p[1] != '"')
				return 0;
			p += 2;
			n = 0;
			while (p < end && *p != '"') {
				char c = *p++;
				if (c == '\\') {
					if (p == end)
						return 0;
					c = *p++;
					if (c == 'n')
						c = '\n';
					else if (c != '\\' && c != '"')
						return 0;
				}
				if (n + 1 >= 256)
					return 0;
				lv[n++] = c;
			}
			if (p == end)
				return 0;
			p++; /* the closing quote */
			lv[n] = 0;
			out->nlabels++;
		}
		if (p == end)
			return 0;
		p++; /* the closing brace */
	}
	if (p == end || *p != ' ')
		return 0;
	return parse_value(p + 1, end, &out->value);
}

/* The test's own record of what it put in the registry. */
struct model_series {
	char values[METRICS_MAX_LABELS][24];
	struct metric *s;
	double sum; /* histogram: the observations' sum */
};

struct model_family {
	char name[64];
	char help[32];
	enum metric_type type;
	size_t nlabels;
	char labels[METRICS_MAX_LABELS][48];
	double bounds[8];
	size_t nbounds;
	size_t nseries;
	struct model_series series[6];
};

static void random_text(uint64_t *rng, char *out, size_t max_len)
{
	/* Mostly bytes that need escaping or look like syntax. */
	static const char tricky[] = "\\\"\n{},= #";
	size_t len = tu_rnd(rng, max_len + 1);
	for (size_t i = 0; i < len; i++)
		out[i] = tu_rnd(rng, 2) ? tricky[tu_rnd(rng, sizeof(tricky) - 1)]
					: (char)(1 + tu_rnd(rng, 255));
	out[len] = 0;
}

static void random_name_tail(uint64_t *rng, char *out, size_t max_len, int colon)
{
	static const char cs[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:";
	size_t len = tu_rnd(rng, max_len + 1);
	for (size_t i = 0; i < len; i++)
		out[i] = cs[tu_rnd(rng, sizeof(cs) - 1 - (colon ? 0 : 1))];
	out[len] = 0;
}

static double random_value(uint64_t *rng)
{
	switch (tu_rnd(rng, 10)) {
	case 0:
		return NAN;
	case 1:
		return tu_rnd(rng, 2) ? INFINITY : -INFINITY;
	case 2:
		return (double)tu_rnd(rng, 1000000) - 500000;
	case 3:
		/* Magnitudes 2^-900 .. 2^900. */
		return from_bits((1023 - 900 + tu_rnd(rng, 1800)) << 52 | tu_splitmix(rng) >> 12);
	case 4:
		return -from_bits((1023 - 40 + tu_rnd(rng, 80)) << 52 | tu_splitmix(rng) >> 12);
	default:
		return from_bits(tu_splitmix(rng)); /* any double, NaN payloads too */
	}
}

static int same_double(double a, double b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

/* next_line returns the next line of text at *p (without its newline) and
 * moves *p past it; NULL at the end. Every line must end in a newline. */
static const char *next_line(const char **p, const char **end)
{
	*end = NULL;
	if (**p == 0)
		return NULL;
	const char *line = *p, *nl = strchr(line, '\n');
	assert_non_null(nl);
	*end = nl;
	*p = nl + 1;
	return line;
}

static void expect_sample(const char **p, const struct model_family *mf,
			  const struct model_series *ms, const char *suffix, const double *le,
			  double value)
{
	const char *end = NULL, *line = next_line(p, &end);
	assert_non_null(line);
	struct sample smp;
	if (!parse_sample(line, end, &smp))
		fail_msg("SPECTRA_SEED=%" PRIu64 " invalid sample line: %.*s", base_seed,
			 (int)(end - line), line);
	char name[128];
	snprintf(name, sizeof(name), "%s%s", mf->name, suffix);
	assert_string_equal(smp.name, name);
	assert_int_equal(smp.nlabels, mf->nlabels + (le ? 1 : 0));
	for (size_t i = 0; i < mf->nlabels; i++) {
		assert_string_equal(smp.lname[i], mf->labels[i]);
		assert_string_equal(smp.lvalue[i], ms->values[i]);
	}
	if (le) {
		assert_string_equal(smp.lname[mf->nlabels], "le");
		double got;
		const char *v = smp.lvalue[mf->nlabels];
		assert_true(parse_value(v, v + strlen(v), &got));
		assert_true(got == *le);
	}
	if (!same_double(smp.value, value))
		fail_msg("SPECTRA_SEED=%" PRIu64 " %s: rendered %.17g, want %.17g", base_seed, name,
			 smp.value, value);
}

/* Build registries of random families, series and values; render; read
 * every line back with the validator above and check it says exactly what
 * the registry holds, in registration and creation order. */
static void test_render_parse_back(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(base_seed, "render_parse_back");
	static struct model_family fams[12];
	for (int round = 0; round < 300; round++) {
		struct metrics *m = metrics_new();
		size_t nfam = 1 + tu_rnd(&rng, 12);
		for (size_t i = 0; i < nfam; i++) {
			struct model_family *mf = &fams[i];
			memset(mf, 0, sizeof(*mf));
			static const char first[] = "abcxyzABCXYZ_:";
			char tail[16];
			random_name_tail(&rng, tail, 10, 1);
			mf->type = (enum metric_type)(1 + tu_rnd(&rng, 3));
			/* The index after the first letter keeps names unique. */
			snprintf(mf->name, sizeof(mf->name), "%cf%zu_%s%s",
				 first[tu_rnd(&rng, sizeof(first) - 1)], i, tail,
				 mf->type == METRIC_COUNTER ? "_total" : "");
			random_text(&rng, mf->help, sizeof(mf->help) - 1);
			mf->nlabels = tu_rnd(&rng, METRICS_MAX_LABELS + 1);
			const char *labels[METRICS_MAX_LABELS + 1] = {0};
			for (size_t k = 0; k < mf->nlabels; k++) {
				random_name_tail(&rng, tail, 8, 0);
				snprintf(mf->labels[k], sizeof(mf->labels[k]), "%c%zu%s",
					 "abcXYZ"[tu_rnd(&rng, 6)], k, tail);
				labels[k] = mf->labels[k];
			}
			if (mf->type == METRIC_HISTOGRAM) {
				mf->nbounds = 1 + tu_rnd(&rng, 8);
				double v = ((double)tu_rnd(&rng, 2001) - 1000) / 7;
				for (size_t k = 0; k < mf->nbounds; k++) {
					mf->bounds[k] = v;
					v += (double)(1 + tu_rnd(&rng, 1000)) / 13;
				}
			}
			struct metric_family *f = metrics_family(
			    m, mf->name, NULL, mf->help, mf->type, labels, mf->bounds, mf->nbounds);
			if (!f)
				fail_msg("SPECTRA_SEED=%" PRIu64 " refused family %s", base_seed,
					 mf->name);

			size_t want = tu_rnd(&rng, 7);
			for (size_t k = 0; k < want; k++) {
				struct model_series *ms = &mf->series[mf->nseries];
				const char *values[METRICS_MAX_LABELS] = {0};
				for (size_t l = 0; l < mf->nlabels; l++) {
					/* Short values so some tuples repeat. */
					random_text(&rng, ms->values[l], tu_rnd(&rng, 3) ? 1 : 20);
					values[l] = ms->values[l];
				}
				struct metric *s = metrics_series(f, values);
				assert_non_null(s);
				size_t j = 0;
				while (j < mf->nseries && mf->series[j].s != s)
					j++;
				if (j == mf->nseries) {
					ms->s = s;
					ms->sum = 0;
					mf->nseries++;
				}
				ms = &mf->series[j];
				/* Update it a few times. */
				for (int u = (int)tu_rnd(&rng, 5); u > 0; u--) {
					if (mf->type == METRIC_COUNTER) {
						double v = random_value(&rng);
						metric_add(s, v < 0 ? -v : v);
						metric_inc(s);
					} else if (mf->type == METRIC_GAUGE) {
						metric_set(s, random_value(&rng));
					} else {
						double v =
						    tu_rnd(&rng, 3)
							? mf->bounds[tu_rnd(&rng, mf->nbounds)]
							: ((double)tu_rnd(&rng, 4001) - 2000) / 11;
						metric_observe(s, v);
						ms->sum += v;
					}
				}
			}
		}

		char *text = render(m);
		const char *p = text, *end = NULL, *line;
		for (size_t i = 0; i < nfam; i++) {
			const struct model_family *mf = &fams[i];
			/* # HELP name help, with the help unescaped. */
			line = next_line(&p, &end);
			assert_non_null(line);
			size_t hn = strlen(mf->name);
			assert_true(strncmp(line, "# HELP ", 7) == 0);
			assert_true(strncmp(line + 7, mf->name, hn) == 0 && line[7 + hn] == ' ');
			char help[64];
			size_t n = 0;
			for (const char *c = line + 8 + hn; c < end; c++) {
				char ch = *c;
				if (ch == '\\') {
					assert_true(c + 1 < end);
					ch = *++c;
					assert_true(ch == '\\' || ch == 'n');
					if (ch == 'n')
						ch = '\n';
				}
				assert_true(n + 1 < sizeof(help));
				help[n++] = ch;
			}
			help[n] = 0;
			assert_string_equal(help, mf->help);
			line = next_line(&p, &end);
			assert_non_null(line);
			static const char *const types[] = {"", "counter", "gauge", "histogram"};
			const char *type = types[mf->type];
			assert_true(strncmp(line, "# TYPE ", 7) == 0);
			assert_true(strncmp(line + 7, mf->name, hn) == 0 && line[7 + hn] == ' ');
			assert_int_equal((size_t)(end - line), 8 + hn + strlen(type));
			assert_memory_equal(line + 8 + hn, type, strlen(type));

			for (size_t k = 0; k < mf->nseries; k++) {
				const struct model_series *ms = &mf->series[k];
				if (mf->type != METRIC_HISTOGRAM) {
					expect_sample(&p, mf, ms, "", NULL, metric_value(ms->s));
					continue;
				}
				uint64_t cum[9];
				assert_int_equal(metric_hist_read(ms->s, cum, 9), mf->nbounds + 1);
				for (size_t b = 0; b <= mf->nbounds; b++) {
					double inf = INFINITY;
					expect_sample(&p, mf, ms, "_bucket",
						      b < mf->nbounds ? &mf->bounds[b] : &inf,
						      (double)cum[b]);
				}
				expect_sample(&p, mf, ms, "_sum", NULL, ms->sum);
				expect_sample(&p, mf, ms, "_count", NULL, (double)cum[mf->nbounds]);
			}
		}
		assert_null(next_line(&p, &end)); /* nothing else */
		free(text);
		metrics_free(m);
	}
}

/* ---- Lifetime ------------------------------------------------------------ */

static void test_free_and_stable_pointers(void **state)
{
	(void)state;
	metrics_free(NULL);

	struct metrics *m = metrics_new();
	const double b[] = {1, 10};
	struct metric_family *g = metrics_family(m, "conn", NULL, "", METRIC_GAUGE,
						 (const char *[]){"peer", NULL}, NULL, 0);
	struct metric_family *h = metrics_family(m, "size", NULL, "", METRIC_HISTOGRAM,
						 (const char *[]){"peer", NULL}, b, 2);
	struct metric_family *one = metrics_family(m, "one", NULL, "", METRIC_GAUGE, NULL, NULL, 0);
	struct metric *first = metrics_series(g, (const char *[]){"first"});
	struct metric *hfirst = metrics_series(h, (const char *[]){"first"});
	struct metric *single = metrics_series(one, NULL);
	metric_inc(first);
	metric_observe(hfirst, 5);
	metric_set(single, 9);

	static struct metric *made[1000];
	for (int i = 0; i < 1000; i++) {
		char id[16];
		snprintf(id, sizeof(id), "n%d", i);
		made[i] = metrics_series(g, (const char *[]){id});
		metric_add(made[i], i);
		metric_observe(metrics_series(h, (const char *[]){id}), i);
		/* More families too, so the registry's own array grows. */
		if (i % 10 == 0) {
			char name[32];
			snprintf(name, sizeof(name), "extra_%d", i);
			assert_non_null(
			    metrics_family(m, name, NULL, "", METRIC_GAUGE, NULL, NULL, 0));
		}
	}
	assert_ptr_equal(metrics_series(g, (const char *[]){"first"}), first);
	assert_ptr_equal(metrics_series(h, (const char *[]){"first"}), hfirst);
	assert_ptr_equal(metrics_series(one, NULL), single);
	metric_inc(first);
	assert_true(metric_value(first) == 2);
	metric_observe(hfirst, 0.5);
	assert_true(metric_value(hfirst) == 2);
	assert_true(metric_value(single) == 9);
	for (int i = 0; i < 1000; i++) {
		char id[16];
		snprintf(id, sizeof(id), "n%d", i);
		assert_ptr_equal(metrics_series(g, (const char *[]){id}), made[i]);
		assert_true(metric_value(made[i]) == i);
	}
	metrics_free(m);
}

int main(void)
{
	base_seed = tu_seed();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_invalid_families),
	    cmocka_unit_test(test_render_counter_gauge),
	    cmocka_unit_test(test_render_histogram),
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_number_format),
	    cmocka_unit_test(test_type_rules),
	    cmocka_unit_test(test_histogram_buckets),
	    cmocka_unit_test(test_quantile_known),
	    cmocka_unit_test(test_quantile_property),
	    cmocka_unit_test(test_render_parse_back),
	    cmocka_unit_test(test_free_and_stable_pointers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
