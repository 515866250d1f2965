/*
 * test_bench_hist: the pure parts of `spectra bench`.
 *
 *  - bench_hist: bucket bounds cover every value once and are never wider
 *    than the stated precision (1/128 of the value); percentiles of known
 *    and random distributions lie between the exact order statistic and
 *    1/128 above it; merge equals recording everything in one histogram;
 *    values past 60 s keep an exact maximum.
 *  - bench_keys: the libm-free pow against known values; uniform keys
 *    fill their range evenly; zipf keys follow 1/k^s within a few standard
 *    errors, rank by rank, for s below, at and above 1; seq cycles.
 *  - bench_resp: templates encode to the exact RESP bytes, and random
 *    templates come back word for word through the server's request parser;
 *    the reply skipper agrees with the repo's full reader (resp_reader) on
 *    random RESP3 values, needs every byte of them, names error words, skips
 *    pushes and attributes, and rejects malformed framing.
 *
 * Randomised tests print their seed; set SPECTRA_SEED to replay one.
 * tools/ is linked only into bin/spectra, so the Makefile links these
 * modules' objects into this binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/bench_hist.h"
#include "../../tools/bench_keys.h"
#include "../../tools/bench_resp.h"
#include "common/buf.h"
#include "common/err.h"
#include "net/resp.h"

/* ---- bench_hist ------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* exact_percentile: the ceil(pct% * n)-th smallest of sorted v[0..n). */
static uint64_t exact_percentile(const uint64_t *v, size_t n, double pct)
{
	long double want = (long double)pct / 100.0L * (long double)n;
	size_t rank = (size_t)want;
	if ((long double)rank < want)
		rank++;
	if (rank == 0)
		rank = 1;
	return v[rank - 1];
}

/* within_precision: got is the percentile reported for exact. */
static void assert_within_precision(uint64_t got, uint64_t exact)
{
	if (got < exact || got > exact + exact / 128) {
		fprintf(stderr, "percentile %llu, exact %llu\n", (unsigned long long)got,
			(unsigned long long)exact);
		fail();
	}
}

static void test_hist_empty(void **state)
{
	(void)state;
	struct bench_hist h;
	bench_hist_init(&h);
	assert_int_equal(bench_hist_count(&h), 0);
	assert_int_equal(bench_hist_max(&h), 0);
	assert_int_equal(bench_hist_percentile(&h, 50), 0);
	assert_int_equal(bench_hist_percentile(&h, 100), 0);
	bench_hist_close(&h);
	bench_hist_close(&h); /* twice is fine */
	bench_hist_close(NULL);
}

static void test_hist_bucket_bounds(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "hist_bucket_bounds");
	/* Walk every bucket from 0 up: each starts where the last ended. */
	uint64_t v = 0, buckets = 0, lo, hi;
	while (v <= BENCH_HIST_MAX_US) {
		bench_hist_bucket_bounds(v, &lo, &hi);
		assert_int_equal(lo, v);
		assert_true(hi >= lo);
		uint64_t width = hi - lo + 1, allowed = lo / 128 > 1 ? lo / 128 : 1;
		assert_true(width <= allowed);
		v = hi + 1;
		buckets++;
	}
	assert_true(buckets > 2000 && buckets < 3000);
	/* Random values land in a bucket that holds them. */
	for (int i = 0; i < 100000; i++) {
		uint64_t x = tu_rnd(&rng, BENCH_HIST_MAX_US + 1) >> tu_rnd(&rng, 26);
		bench_hist_bucket_bounds(x, &lo, &hi);
		assert_true(lo <= x && x <= hi);
	}
}

static void test_hist_small_values_exact(void **state)
{
	(void)state;
	struct bench_hist h;
	bench_hist_init(&h);
	for (uint64_t v = 1; v <= 100; v++)
		bench_hist_record(&h, v);
	assert_int_equal(bench_hist_count(&h), 100);
	assert_int_equal(bench_hist_percentile(&h, 0), 1);
	assert_int_equal(bench_hist_percentile(&h, 1), 1);
	assert_int_equal(bench_hist_percentile(&h, 50), 50);
	assert_int_equal(bench_hist_percentile(&h, 50.5), 51);
	assert_int_equal(bench_hist_percentile(&h, 95), 95);
	assert_int_equal(bench_hist_percentile(&h, 99), 99);
	assert_int_equal(bench_hist_percentile(&h, 99.9), 100);
	assert_int_equal(bench_hist_percentile(&h, 100), 100);
	assert_int_equal(bench_hist_percentile(&h, 250), 100); /* clamped */
	assert_int_equal(bench_hist_max(&h), 100);
	bench_hist_reset(&h);
	assert_int_equal(bench_hist_count(&h), 0);
	bench_hist_record(&h, 7);
	assert_int_equal(bench_hist_percentile(&h, 50), 7);
	bench_hist_close(&h);
}

static void test_hist_uniform_distribution(void **state)
{
	(void)state;
	/* Every value 1..1,000,000 once: the p-th percentile is p% of 1e6. */
	struct bench_hist h;
	bench_hist_init(&h);
	const uint64_t n = 1000000;
	for (uint64_t v = 1; v <= n; v++)
		bench_hist_record(&h, v);
	const double pcts[] = {1, 10, 50, 90, 95, 99, 99.9, 99.99};
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
		uint64_t exact = (uint64_t)(pcts[i] / 100.0 * (double)n + 0.5);
		assert_within_precision(bench_hist_percentile(&h, pcts[i]), exact);
	}
	assert_int_equal(bench_hist_percentile(&h, 100), n);
	bench_hist_close(&h);
}

static void test_hist_random_distributions(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "hist_random");
	const size_t n = 200000;
	uint64_t *v = malloc(n * sizeof(*v));
	for (int round = 0; round < 6; round++) {
		struct bench_hist h;
		bench_hist_init(&h);
		for (size_t i = 0; i < n; i++) {
			switch (round % 3) {
			case 0: /* log-uniform over the whole range */
				v[i] = tu_rnd(&rng, BENCH_HIST_MAX_US) >> tu_rnd(&rng, 26);
				break;
			case 1: /* a latency-like body with a long tail */
				v[i] = 200 + tu_rnd(&rng, 300) +
				       (tu_rnd(&rng, 100) == 0 ? tu_rnd(&rng, 50000) : 0);
				break;
			default: /* two modes */
				v[i] = tu_rnd(&rng, 2) ? 90 + tu_rnd(&rng, 20)
						       : 40000 + tu_rnd(&rng, 1000);
				break;
			}
			bench_hist_record(&h, v[i]);
		}
		qsort(v, n, sizeof(*v), cmp_u64);
		const double pcts[] = {0.1, 25, 50, 75, 90, 95, 99, 99.9, 99.99};
		for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
			assert_within_precision(bench_hist_percentile(&h, pcts[i]),
						exact_percentile(v, n, pcts[i]));
		assert_int_equal(bench_hist_max(&h), v[n - 1]);
		assert_int_equal(bench_hist_percentile(&h, 0), v[0]);
		assert_int_equal(bench_hist_count(&h), n);
		bench_hist_close(&h);
	}
	free(v);
}

static void test_hist_merge(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "hist_merge");
	struct bench_hist a, b, all, empty;
	bench_hist_init(&a);
	bench_hist_init(&b);
	bench_hist_init(&all);
	bench_hist_init(&empty);
	for (int i = 0; i < 50000; i++) {
		uint64_t x = tu_rnd(&rng, 1000000) >> tu_rnd(&rng, 20);
		bench_hist_record(i % 3 ? &a : &b, x);
		bench_hist_record(&all, x);
	}
	bench_hist_merge(&a, &empty); /* merging nothing changes nothing */
	bench_hist_merge(&empty, &b); /* into an empty one: a copy */
	assert_int_equal(bench_hist_count(&empty), bench_hist_count(&b));
	assert_int_equal(bench_hist_percentile(&empty, 0), bench_hist_percentile(&b, 0));
	bench_hist_merge(&a, &b);
	assert_int_equal(bench_hist_count(&a), bench_hist_count(&all));
	assert_int_equal(bench_hist_max(&a), bench_hist_max(&all));
	for (double p = 0; p <= 100; p += 0.5)
		assert_int_equal(bench_hist_percentile(&a, p), bench_hist_percentile(&all, p));
	bench_hist_close(&a);
	bench_hist_close(&b);
	bench_hist_close(&all);
	bench_hist_close(&empty);
}

static void test_hist_beyond_range(void **state)
{
	(void)state;
	struct bench_hist h;
	bench_hist_init(&h);
	bench_hist_record(&h, 0);
	bench_hist_record(&h, 100000000); /* 100 s */
	bench_hist_record(&h, UINT64_MAX);
	assert_int_equal(bench_hist_count(&h), 3);
	assert_int_equal(bench_hist_max(&h), UINT64_MAX);
	assert_int_equal(bench_hist_percentile(&h, 100), UINT64_MAX);
	assert_int_equal(bench_hist_percentile(&h, 0), 0);
	/* The middle value is past the range: reported at the range's top,
	 * which is at least 60 s, never less. */
	uint64_t mid = bench_hist_percentile(&h, 50);
	assert_true(mid >= BENCH_HIST_MAX_US);
	bench_hist_close(&h);
}

/* ---- bench_keys ------------------------------------------------------------ */

static void assert_close(double got, double want, double rel)
{
	double diff = got > want ? got - want : want - got;
	double scale = want < 0 ? -want : want;
	if (diff > rel * scale) {
		fprintf(stderr, "got %.17g, want %.17g\n", got, want);
		fail();
	}
}

static void test_keys_pow(void **state)
{
	(void)state;
	/* Reference values computed to 17 digits elsewhere. */
	assert_close(bench_pow(2, 0.5), 1.4142135623730951, 1e-14);
	assert_close(bench_pow(10, -0.99), 0.10232929922807542, 1e-14);
	assert_close(bench_pow(100000.5, 0.01), 1.1220185104027474, 1e-14);
	assert_close(bench_pow(3, 4), 81.0, 1e-14);
	assert_close(bench_pow(1e-300, 0.5), 1e-150, 1e-13);
	assert_close(bench_pow(1e300, -1), 1e-300, 1e-13);
	assert_close(bench_pow(7.25, 1.0), 7.25, 1e-14);
	assert_close(bench_pow(0.3, 2.5), 0.049295030175464945, 1e-14);
	assert_close(bench_pow(123456789, -1.2), 1.9506620163785914e-10, 1e-13);
}

static void test_keys_init_errors(void **state)
{
	(void)state;
	struct bench_keys k;
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_UNIFORM, 0, 0), SP_ERR_INVAL);
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_ZIPF, 10, 0), SP_ERR_INVAL);
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_ZIPF, 10, -1), SP_ERR_INVAL);
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_ZIPF, 10, 101), SP_ERR_INVAL);
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_ZIPF, 10, 0.5), 0);
	bench_keys_close(&k);
	bench_keys_close(NULL);
	enum bench_dist d;
	assert_int_equal(bench_keys_parse_dist("zipf", &d), 0);
	assert_int_equal(d, BENCH_DIST_ZIPF);
	assert_int_equal(bench_keys_parse_dist("uniform", &d), 0);
	assert_int_equal(d, BENCH_DIST_UNIFORM);
	assert_int_equal(bench_keys_parse_dist("seq", &d), 0);
	assert_int_equal(d, BENCH_DIST_SEQ);
	assert_int_equal(bench_keys_parse_dist("Zipf", &d), SP_ERR_INVAL);
	assert_int_equal(bench_keys_parse_dist("", &d), SP_ERR_INVAL);
}

static void test_keys_uniform(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "keys_uniform");
	struct bench_keys k;
	const uint64_t n = 1000;
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_UNIFORM, n, 0), 0);
	uint64_t tenths[10] = {0};
	const int draws = 1000000;
	for (int i = 0; i < draws; i++) {
		uint64_t key = bench_keys_next(&k, &rng);
		assert_true(key < n);
		tenths[key * 10 / n]++;
	}
	/* Each tenth: 100,000 expected, standard error 300. */
	for (int t = 0; t < 10; t++)
		assert_true(tenths[t] > 98500 && tenths[t] < 101500);
	/* A one-key space has one key. */
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_UNIFORM, 1, 0), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(bench_keys_next(&k, &rng), 0);
}

static void test_keys_seq(void **state)
{
	(void)state;
	uint64_t rng = 0;
	struct bench_keys k;
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_SEQ, 3, 0), 0);
	const uint64_t want[] = {0, 1, 2, 0, 1, 2, 0};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(bench_keys_next(&k, &rng), want[i]);
}

/* check_zipf draws keys from a zipf(n, s) and compares how often each of
 * the first ranks comes up, and the rest together, with 1/k^s normalised. */
static void check_zipf(uint64_t *rng, uint64_t n, double s, int draws)
{
	struct bench_keys k;
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_ZIPF, n, s), 0);
	double norm = 0;
	for (uint64_t r = 1; r <= n; r++)
		norm += bench_pow((double)r, -s);
	enum { HEAD = 20 };
	uint64_t counts[HEAD] = {0}, rest = 0;
	for (int i = 0; i < draws; i++) {
		uint64_t key = bench_keys_next(&k, rng);
		assert_true(key < n);
		if (key < HEAD)
			counts[key]++;
		else
			rest++;
	}
	double head_p = 0;
	for (uint64_t r = 1; r <= HEAD && r <= n; r++) {
		double p = bench_pow((double)r, -s) / norm;
		head_p += p;
		double expect = p * draws, sd = bench_pow(draws * p * (1 - p), 0.5);
		double got = (double)counts[r - 1];
		if (got < expect - 5 * sd - 1 || got > expect + 5 * sd + 1) {
			fprintf(stderr,
				"zipf n=%llu s=%g: rank %llu drawn %.0f times, expected %.0f\n",
				(unsigned long long)n, s, (unsigned long long)r, got, expect);
			fail();
		}
	}
	double p = 1 - head_p;
	double expect = p * draws, sd = bench_pow(draws * p * (1 - p), 0.5);
	assert_true((double)rest >= expect - 5 * sd - 1 && (double)rest <= expect + 5 * sd + 1);
}

static void test_keys_zipf(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "keys_zipf");
	check_zipf(&rng, 1000, 0.99, 1000000);
	check_zipf(&rng, 100000, 0.99, 1000000);
	check_zipf(&rng, 1000, 1.0, 500000);
	check_zipf(&rng, 10, 1.5, 500000);
	check_zipf(&rng, 50, 0.5, 500000);
	check_zipf(&rng, 1, 0.99, 1000);
	check_zipf(&rng, 2, 3.0, 200000);

	/* The skew people expect from s = 0.99 over 100,000 keys: the top 1%
	 * of keys take about 60% of the draws, key 0 about 8%. */
	struct bench_keys k;
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_ZIPF, 100000, 0.99), 0);
	int top = 0, first = 0;
	const int draws = 200000;
	for (int i = 0; i < draws; i++) {
		uint64_t key = bench_keys_next(&k, &rng);
		top += key < 1000;
		first += key == 0;
	}
	assert_true(top > draws * 55 / 100 && top < draws * 66 / 100);
	assert_true(first > draws * 7 / 100 && first < draws * 9 / 100);

	/* A huge key space costs nothing to set up and stays in range. */
	assert_int_equal(bench_keys_init(&k, BENCH_DIST_ZIPF, UINT64_C(1) << 62, 0.99), 0);
	for (int i = 0; i < 10000; i++)
		assert_true(bench_keys_next(&k, &rng) < UINT64_C(1) << 62);
}

/* ---- bench_resp: templates ------------------------------------------------- */

static char *encode(const char *tmpl, size_t value_size, size_t step, uint64_t key, uint32_t rnd,
		    size_t *steps)
{
	void *op;
	char err[256];
	assert_int_equal(bench_resp_compile(tmpl, value_size, &op, err, sizeof(err)), 0);
	if (steps)
		*steps = bench_resp_steps(op);
	struct sp_buf b;
	sp_buf_init(&b);
	struct bench_vars vars = {.key = key, .rand = rnd};
	bench_resp_encode(op, step, &vars, &b);
	char *out = strndup(sp_buf_begin(&b), b.len);
	sp_buf_free(&b);
	bench_resp_free(op);
	return out;
}

static void test_resp_encode_exact(void **state)
{
	(void)state;
	size_t steps;
	char *s = encode("SET k:{key} {value}", 5, 0, 42, 7, &steps);
	assert_int_equal(steps, 1);
	assert_string_equal(s, "*3\r\n$3\r\nSET\r\n$4\r\nk:42\r\n$5\r\n01234\r\n");
	free(s);

	s = encode("SET k:{key} {value};WAIT 2 0", 3, 1, 42, 7, &steps);
	assert_int_equal(steps, 2);
	assert_string_equal(s, "*3\r\n$4\r\nWAIT\r\n$1\r\n2\r\n$1\r\n0\r\n");
	free(s);

	/* Several placeholders in one word, blanks around words, {rand}. */
	s = encode("  GET\t x{key}-{key}{rand}  ", 0, 0, 0, 4294967295u, NULL);
	assert_string_equal(s, "*2\r\n$3\r\nGET\r\n$14\r\nx0-04294967295\r\n");
	free(s);

	/* A zero-byte value and the biggest key. */
	s = encode("SET {key} {value}", 0, 0, UINT64_MAX, 0, NULL);
	assert_string_equal(s, "*3\r\n$3\r\nSET\r\n$20\r\n18446744073709551615\r\n$0\r\n\r\n");
	free(s);

	/* Braces that are not a placeholder are text. */
	s = encode("GET { {} {a-b} x{", 0, 0, 1, 1, NULL);
	assert_string_equal(
	    s, "*5\r\n$3\r\nGET\r\n$1\r\n{\r\n$2\r\n{}\r\n$5\r\n{a-b}\r\n$2\r\nx{\r\n");
	free(s);
}

static void test_resp_compile_errors(void **state)
{
	(void)state;
	const char *bad[] = {"",	  "   ",	";",
			     "GET a;",	  ";GET a",	"SET a;;GET b",
			     "GET {foo}", "GET x{KEY}", "SET {key} {values}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *op = (void *)1;
		char err[256] = "";
		assert_int_equal(bench_resp_compile(bad[i], 8, &op, err, sizeof(err)),
				 SP_ERR_INVAL);
		assert_true(err[0] != '\0');
	}
	bench_resp_free(NULL);
}

/* Random templates come back through the server's own request parser with
 * every word as it should be. */
static void test_resp_encode_roundtrip(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "resp_encode_roundtrip");
	static const char *const parts[] = {"{key}", "{value}", "{rand}", "a",	"SET",
					    ":",     "{",	"}",	  "xyz"};
	enum { MAX_WORDS = 6, MAX_WORD = 10000 };
	char(*want_words)[MAX_WORD] = malloc(MAX_WORDS * sizeof(*want_words));
	for (int round = 0; round < 2000; round++) {
		char tmpl[512] = "";
		size_t nwords = 1 + tu_rnd(&rng, MAX_WORDS),
		       value_size = tu_rnd(&rng, 4) ? tu_rnd(&rng, 40) : 3000;
		uint64_t key = tu_splitmix(&rng) >> tu_rnd(&rng, 64);
		uint32_t rnd = (uint32_t)tu_splitmix(&rng);
		char value[3001];
		for (size_t i = 0; i < value_size; i++)
			value[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i % 36];
		value[value_size] = '\0';
		size_t want_len[MAX_WORDS];
		for (size_t w = 0; w < nwords; w++) {
			size_t nparts = 1 + tu_rnd(&rng, 3);
			struct sp_buf word;
			sp_buf_init(&word);
			strcat(tmpl, w ? " " : "");
			for (size_t p = 0; p < nparts; p++) {
				const char *part =
				    parts[tu_rnd(&rng, sizeof(parts) / sizeof(parts[0]))];
				strcat(tmpl, part);
				if (strcmp(part, "{key}") == 0)
					sp_buf_appendf(&word, "%llu", (unsigned long long)key);
				else if (strcmp(part, "{rand}") == 0)
					sp_buf_appendf(&word, "%u", rnd);
				else if (strcmp(part, "{value}") == 0)
					sp_buf_append_str(&word, value);
				else
					sp_buf_append_str(&word, part);
			}
			want_len[w] = word.len;
			memcpy(want_words[w], sp_buf_begin(&word), word.len);
			sp_buf_free(&word);
		}
		void *op;
		char err[256];
		/* "{", "a" and "}" in a row make an unknown placeholder, which
		 * must be refused; every other template must compile. */
		if (bench_resp_compile(tmpl, value_size, &op, err, sizeof(err)) < 0) {
			assert_non_null(strstr(err, "unknown placeholder"));
			continue;
		}
		struct sp_buf b;
		sp_buf_init(&b);
		struct bench_vars vars = {.key = key, .rand = rnd};
		bench_resp_encode(op, 0, &vars, &b);
		struct resp_limits limits = {1 << 20, 1024, 1 << 16};
		struct resp_request_parser p;
		resp_request_parser_init(&p, &limits);
		size_t consumed;
		struct resp_error perr;
		assert_int_equal(resp_parse_request(&p, sp_buf_begin(&b), b.len, &consumed, &perr),
				 0);
		assert_int_equal(consumed, b.len);
		assert_int_equal(p.argc, nwords);
		for (size_t w = 0; w < nwords; w++) {
			assert_int_equal(p.args[w].len, want_len[w]);
			assert_memory_equal(resp_arg_ptr(&p, sp_buf_begin(&b), w), want_words[w],
					    want_len[w]);
		}
		resp_request_parser_close(&p);
		sp_buf_free(&b);
		bench_resp_free(op);
	}
	free(want_words);
}

/* ---- bench_resp: replies --------------------------------------------------- */

struct reply_case {
	const char *bytes;
	bool error, skip;
	const char *word;
};

static void test_resp_reply_cases(void **state)
{
	(void)state;
	const struct reply_case cases[] = {
	    {"+OK\r\n", false, false, NULL},
	    {"-ERR unknown command 'FOO'\r\n", true, false, "ERR"},
	    {"-TRYAGAIN\r\n", true, false, "TRYAGAIN"},
	    {"-\r\n", true, false, ""},
	    {":1234\r\n", false, false, NULL},
	    {"$5\r\nhello\r\n", false, false, NULL},
	    {"$6\r\nab\r\ncd\r\n", false, false, NULL},
	    {"$0\r\n\r\n", false, false, NULL},
	    {"$-1\r\n", false, false, NULL},
	    {"*-1\r\n", false, false, NULL},
	    {"*0\r\n", false, false, NULL},
	    {"*2\r\n$1\r\na\r\n-ERR inside\r\n", false, false, NULL},
	    {"_\r\n", false, false, NULL},
	    {"#t\r\n", false, false, NULL},
	    {",3.14\r\n", false, false, NULL},
	    {"(12345678901234567890\r\n", false, false, NULL},
	    {"!21\r\nSYNTAX invalid syntax\r\n", true, false, "SYNTAX"},
	    {"=8\r\ntxt:abcd\r\n", false, false, NULL},
	    {"%1\r\n+k\r\n:1\r\n", false, false, NULL},
	    {"~2\r\n+a\r\n+b\r\n", false, false, NULL},
	    {">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n", false, true, NULL},
	    {"|1\r\n+ttl\r\n:3\r\n+OK\r\n", false, false, NULL},
	    {"|1\r\n+ttl\r\n:3\r\n-WRONGTYPE bad\r\n", true, false, "WRONGTYPE"},
	    {"*1\r\n|1\r\n+a\r\n+b\r\n:5\r\n", false, false, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct reply_case *c = &cases[i];
		size_t len = strlen(c->bytes), consumed = 0;
		struct bench_reply r;
		/* Followed by another reply: only the first is taken. */
		char twice[256];
		snprintf(twice, sizeof(twice), "%s+NEXT\r\n", c->bytes);
		assert_int_equal(bench_resp_skip_reply(twice, strlen(twice), &consumed, &r), 0);
		assert_int_equal(consumed, len);
		assert_int_equal(r.error, c->error);
		assert_int_equal(r.skip, c->skip);
		if (c->word) {
			assert_int_equal(r.word_len, strlen(c->word));
			assert_memory_equal(r.word, c->word, r.word_len);
		}
		/* Every proper prefix is incomplete. */
		for (size_t cut = 0; cut < len; cut++)
			assert_int_equal(bench_resp_skip_reply(c->bytes, cut, &consumed, &r),
					 SP_ERR_AGAIN);
	}
}

static void test_resp_reply_malformed(void **state)
{
	(void)state;
	const char *bad[] = {
	    "?x\r\n",	      "+OK\rX",	 "$3\r\nabcd\r\n", "$?\r\n",   "*?\r\n",
	    "$-2\r\n",	      "!-1\r\n", "*-2\r\n",	   "%-1\r\n",  "$x\r\n",
	    "*1x\r\n",	      "$\r\n",	 "*\r\n",	   ":1\r\r\n", "$1234567890123456789\r\n",
	    ";4\r\nabcd\r\n", ".\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t consumed;
		struct bench_reply r;
		int rc = bench_resp_skip_reply(bad[i], strlen(bad[i]), &consumed, &r);
		if (rc != SP_ERR_PROTO) {
			fprintf(stderr, "case %zu: %d\n", i, rc);
			fail();
		}
	}
	/* Nesting: BENCH_RESP_MAX_DEPTH levels are fine, one more is not. */
	struct sp_buf b;
	sp_buf_init(&b);
	for (int d = 0; d < BENCH_RESP_MAX_DEPTH; d++)
		sp_buf_append_str(&b, "*1\r\n");
	sp_buf_append_str(&b, ":1\r\n");
	size_t consumed;
	struct bench_reply r;
	assert_int_equal(bench_resp_skip_reply(sp_buf_begin(&b), b.len, &consumed, &r), 0);
	assert_int_equal(consumed, b.len);
	sp_buf_clear(&b);
	for (int d = 0; d <= BENCH_RESP_MAX_DEPTH; d++)
		sp_buf_append_str(&b, "*1\r\n");
	sp_buf_append_str(&b, ":1\r\n");
	assert_int_equal(bench_resp_skip_reply(sp_buf_begin(&b), b.len, &consumed, &r),
			 SP_ERR_PROTO);
	sp_buf_free(&b);
}

static char *rand_text(uint64_t *rng, size_t n, bool crlf_ok)
{
	char *s = malloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		s[i] = (char)(' ' + tu_rnd(rng, 95));
		if (crlf_ok && tu_rnd(rng, 10) == 0)
			s[i] = tu_rnd(rng, 2) ? '\r' : '\n';
	}
	s[n] = '\0';
	return s;
}

/* gen_value builds a random RESP3 value tree (owned by v). */
static void gen_value(uint64_t *rng, struct resp_value *v, int depth)
{
	static const enum resp_type types[] = {
	    RESP_SIMPLE, RESP_ERROR,   RESP_INTEGER,  RESP_BULK,  RESP_NULL, RESP_BOOL, RESP_DOUBLE,
	    RESP_BIGNUM, RESP_BLOBERR, RESP_VERBATIM, RESP_ARRAY, RESP_MAP,  RESP_SET,	RESP_PUSH,
	};
	size_t ntypes = sizeof(types) / sizeof(types[0]);
	memset(v, 0, sizeof(*v));
	v->type = types[tu_rnd(rng, depth < 4 ? ntypes : 10)];
	size_t n = tu_rnd(rng, 5) == 0 ? 200 + tu_rnd(rng, 2000) : tu_rnd(rng, 12);
	switch (v->type) {
	case RESP_SIMPLE:
	case RESP_ERROR:
		v->str = rand_text(rng, n, false);
		v->len = n;
		break;
	case RESP_BULK:
	case RESP_BLOBERR:
		v->str = rand_text(rng, n, true);
		v->len = n;
		break;
	case RESP_VERBATIM:
		v->str = rand_text(rng, n + 4, true);
		memcpy(v->str, "txt:", 4);
		v->len = n + 4;
		break;
	case RESP_DOUBLE:
		v->str = strdup("-1.25e3");
		v->len = strlen(v->str);
		v->dbl = -1250;
		break;
	case RESP_BIGNUM:
		v->str = strdup("-123456789012345678901234567890");
		v->len = strlen(v->str);
		break;
	case RESP_INTEGER:
		v->integer = (int64_t)tu_splitmix(rng);
		break;
	case RESP_BOOL:
		v->integer = (int64_t)tu_rnd(rng, 2);
		break;
	case RESP_NULL:
		break;
	case RESP_ARRAY:
	case RESP_SET:
	case RESP_PUSH:
	case RESP_MAP: {
		v->n = tu_rnd(rng, 5);
		size_t count = v->type == RESP_MAP ? 2 * v->n : v->n;
		v->elems = count ? calloc(count, sizeof(*v->elems)) : NULL;
		for (size_t i = 0; i < count; i++)
			gen_value(rng, &v->elems[i], depth + 1);
		break;
	}
	default:
		break;
	}
	if (depth < 4 && tu_rnd(rng, 8) == 0) {
		v->attr = calloc(1, sizeof(*v->attr));
		v->attr->type = RESP_ATTR;
		v->attr->n = 1;
		v->attr->elems = calloc(2, sizeof(*v->attr->elems));
		gen_value(rng, &v->attr->elems[0], 4);
		gen_value(rng, &v->attr->elems[1], 4);
	}
}

/* The skipper and the repo's full reader agree on where every random value
 * ends; the skipper needs every byte and reads errors as the reader does. */
static void test_resp_reply_matches_reader(void **state)
{
	(void)state;
	uint64_t rng = tu_stream(tu_seed(), "resp_reply_matches_reader");
	struct resp_reader_limits limits = {1 << 20, 1 << 20, 64};
	for (int round = 0; round < 3000; round++) {
		struct resp_value v;
		gen_value(&rng, &v, 0);
		struct sp_buf b;
		sp_buf_init(&b);
		resp_write_value(&b, &v);
		size_t len = b.len;
		/* The reader takes exactly one value from these bytes. */
		struct resp_reader rd;
		resp_reader_init(&rd, &limits);
		resp_reader_feed(&rd, sp_buf_begin(&b), len);
		struct resp_value got;
		struct resp_error err;
		assert_int_equal(resp_reader_next(&rd, &got, &err), 0);
		assert_int_equal(resp_reader_next(&rd, &got, &err) == SP_ERR_AGAIN, 1);
		resp_reader_close(&rd);

		sp_buf_append_str(&b, "+NEXT\r\n");
		size_t consumed;
		struct bench_reply r;
		assert_int_equal(bench_resp_skip_reply(sp_buf_begin(&b), b.len, &consumed, &r), 0);
		assert_int_equal(consumed, len);
		bool is_error = v.type == RESP_ERROR || v.type == RESP_BLOBERR;
		assert_int_equal(r.error, is_error);
		assert_int_equal(r.skip, v.type == RESP_PUSH);
		if (is_error) {
			size_t w = 0;
			while (w < v.len && v.str[w] != ' ')
				w++;
			assert_int_equal(r.word_len, w);
			assert_memory_equal(r.word, v.str, w);
		}
		/* A cut anywhere leaves it incomplete (a sample of cuts for
		 * long values). */
		size_t step = len > 300 ? len / 97 + 1 : 1;
		for (size_t cut = 0; cut < len; cut += step)
			assert_int_equal(
			    bench_resp_skip_reply(sp_buf_begin(&b), cut, &consumed, &r),
			    SP_ERR_AGAIN);
		assert_int_equal(bench_resp_skip_reply(sp_buf_begin(&b), len - 1, &consumed, &r),
				 SP_ERR_AGAIN);
		sp_buf_free(&b);
		resp_value_free(&v);
		resp_value_free(&got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hist_empty),
	    cmocka_unit_test(test_hist_bucket_bounds),
	    cmocka_unit_test(test_hist_small_values_exact),
	    cmocka_unit_test(test_hist_uniform_distribution),
	    cmocka_unit_test(test_hist_random_distributions),
	    cmocka_unit_test(test_hist_merge),
	    cmocka_unit_test(test_hist_beyond_range),
	    cmocka_unit_test(test_keys_pow),
	    cmocka_unit_test(test_keys_init_errors),
	    cmocka_unit_test(test_keys_uniform),
	    cmocka_unit_test(test_keys_seq),
	    cmocka_unit_test(test_keys_zipf),
	    cmocka_unit_test(test_resp_encode_exact),
	    cmocka_unit_test(test_resp_compile_errors),
	    cmocka_unit_test(test_resp_encode_roundtrip),
	    cmocka_unit_test(test_resp_reply_cases),
	    cmocka_unit_test(test_resp_reply_malformed),
	    cmocka_unit_test(test_resp_reply_matches_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
