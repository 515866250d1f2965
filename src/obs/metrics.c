/*
 * metrics: the registry and the Prometheus text format 0.0.4. See metrics.h.
 *
 * A histogram series keeps one non-cumulative count per bucket, so an
 * observation increments exactly one counter; the cumulative counts the
 * format asks for are summed when they are read or rendered, which happens
 * a few times a minute rather than on every request.
 */
#include "obs/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

const double metrics_latency_buckets[] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,	    10,
};
const size_t metrics_latency_nbuckets =
    sizeof(metrics_latency_buckets) / sizeof(metrics_latency_buckets[0]);

const double metrics_staleness_ms_buckets[] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000,
};
const size_t metrics_staleness_ms_nbuckets =
    sizeof(metrics_staleness_ms_buckets) / sizeof(metrics_staleness_ms_buckets[0]);

const double metrics_versions_buckets[] = {1, 2, 3, 5, 10, 20, 50, 100, 1000};
const size_t metrics_versions_nbuckets =
    sizeof(metrics_versions_buckets) / sizeof(metrics_versions_buckets[0]);

struct metric {
	/* What the update calls read comes first. */
	enum metric_type type;
	size_t nbounds;			  /* histogram: the family's finite bounds */
	const double *bounds;		  /* the family's, not owned */
	double value;			  /* counter or gauge value; histogram: the sum */
	uint64_t count;			  /* histogram: observations */
	uint64_t hash;			  /* of the label values, for the family's index */
	char *values[METRICS_MAX_LABELS]; /* owned; one per label name */
	uint64_t buckets[];		  /* histogram: nbounds + 1 per-bucket counts, +Inf last */
};

struct metric_family {
	char *name; /* owned */
	char *help; /* owned, unescaped */
	enum metric_type type;
	size_t nlabels;
	char *labels[METRICS_MAX_LABELS]; /* owned */
	double *bounds;			  /* histogram: owned, nbounds of them */
	size_t nbounds;
	char **le_text;		/* histogram: each bound as rendered in "le", owned */
	struct metric **series; /* creation order; each owned */
	size_t nseries, series_cap;
	/* Open-addressed hash index over series (linear probing, a power of
	 * two slots, at most half full); entries borrow from series. */
	struct metric **index;
	size_t index_cap;
};

struct metrics {
	struct metric_family **families; /* registration order; each owned */
	size_t nfamilies, cap;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = sp_calloc(1, sizeof(*m));
	return m;
}

static void series_free(struct metric *s, size_t nlabels)
{
	for (size_t i = 0; i < nlabels; i++)
		free(s->values[i]);
	free(s);
}

static void family_free(struct metric_family *f)
{
	for (size_t i = 0; i < f->nseries; i++)
		series_free(f->series[i], f->nlabels);
	free(f->series);
	free(f->index);
	if (f->le_text) {
		for (size_t i = 0; i < f->nbounds; i++)
			free(f->le_text[i]);
		free(f->le_text);
	}
	free(f->bounds);
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->help);
	free(f->name);
	free(f);
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfamilies; i++)
		family_free(m->families[i]);
	free(m->families);
	free(m);
}

/* ---- Names ---------------------------------------------------------------- */

static int is_alpha_(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Metric names are [a-zA-Z_:][a-zA-Z0-9_:]* (the data model's rule). */
static int valid_metric_name(const char *s)
{
	if (!is_alpha_(*s) && *s != ':')
		return 0;
	for (s++; *s; s++)
		if (!is_alpha_(*s) && !is_digit(*s) && *s != ':')
			return 0;
	return 1;
}

/* Label names are [a-zA-Z_][a-zA-Z0-9_]*; those starting "__" are reserved
 * for Prometheus's own use. */
static int valid_label_name(const char *s)
{
	if (!is_alpha_(*s) || (s[0] == '_' && s[1] == '_'))
		return 0;
	for (s++; *s; s++)
		if (!is_alpha_(*s) && !is_digit(*s))
			return 0;
	return 1;
}

/* ends_with_n reports whether the first n bytes of s end with suffix and
 * something comes before it. */
static int ends_with_n(const char *s, size_t n, const char *suffix, size_t slen)
{
	return n > slen && memcmp(s + n - slen, suffix, slen) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
	return ends_with_n(s, strlen(s), suffix, strlen(suffix));
}

/* ends_with_unit reports whether the first n bytes of name end with "_" and
 * the unit, with something before that. */
static int ends_with_unit(const char *name, size_t n, const char *unit, size_t ulen)
{
	return n > ulen + 1 && name[n - ulen - 1] == '_' &&
	       memcmp(name + n - ulen, unit, ulen) == 0;
}

/* The unit must be a name fragment and end the name, before any "_total"
 * (the naming practice Prometheus documents and OpenMetrics enforces). */
static int valid_unit(const char *name, const char *unit)
{
	for (const char *p = unit; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p))
			return 0;
	size_t n = strlen(name), ulen = strlen(unit);
	if (ends_with_unit(name, n, unit, ulen))
		return 1;
	return ends_with_n(name, n, "_total", 6) && ends_with_unit(name, n - 6, unit, ulen);
}

static const char *const hist_suffixes[] = {"_bucket", "_sum", "_count"};

/* derived reports whether full is base followed by one of the suffixes a
 * histogram renders. */
static int derived(const char *full, const char *base)
{
	size_t n = strlen(base);
	if (strncmp(full, base, n) != 0)
		return 0;
	for (size_t i = 0; i < 3; i++)
		if (strcmp(full + n, hist_suffixes[i]) == 0)
			return 1;
	return 0;
}

/* name_taken reports whether a family called name, of this type, would
 * render a series name another family already renders. */
static int name_taken(const struct metrics *m, const char *name, enum metric_type type)
{
	for (size_t i = 0; i < m->nfamilies; i++) {
		const struct metric_family *f = m->families[i];
		if (strcmp(f->name, name) == 0)
			return 1;
		if (f->type == METRIC_HISTOGRAM && derived(name, f->name))
			return 1;
		if (type == METRIC_HISTOGRAM && derived(f->name, name))
			return 1;
	}
	return 0;
}

/* ---- Numbers -------------------------------------------------------------- */

/* format_number writes v as the text format wants it into out (at least 32
 * bytes) and returns its length. Integers within int64 print as integers;
 * other values use the fewest of 15, 16 or 17 significant digits that read
 * back as v (15 always suffices for a value that was written with 15 or
 * fewer, DBL_DIG; 17 always round-trips). */
static size_t format_number(char *out, size_t size, double v)
{
	int n;
	if (isnan(v))
		n = snprintf(out, size, "NaN");
	else if (isinf(v))
		n = snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
	else if (v >= -9223372036854775808.0 && v < 9223372036854775808.0 &&
		 (double)(int64_t)v == v)
		n = snprintf(out, size, "%" PRId64, (int64_t)v);
	else
		for (int prec = 15;; prec++) {
			n = snprintf(out, size, "%.*g", prec, v);
			if (prec == 17 || strtod(out, NULL) == v)
				break;
		}
	return n > 0 ? (size_t)n : 0;
}

/* ---- Families and series ------------------------------------------------------ */

struct metric_family *metrics_family(struct metrics *m, const char *name, const char *unit,
				     const char *help, enum metric_type type,
				     const char *const *labels, const double *buckets,
				     size_t nbuckets)
{
	if (!m || !name || type < METRIC_COUNTER || type > METRIC_HISTOGRAM)
		return NULL;
	if (!valid_metric_name(name))
		return NULL;
	if (type == METRIC_COUNTER && !ends_with(name, "_total"))
		return NULL;
	if (unit && *unit && !valid_unit(name, unit))
		return NULL;
	size_t nlabels = 0;
	for (; labels && labels[nlabels]; nlabels++) {
		const char *l = labels[nlabels];
		if (nlabels == METRICS_MAX_LABELS || !valid_label_name(l))
			return NULL;
		if (type == METRIC_HISTOGRAM && strcmp(l, "le") == 0)
			return NULL;
		for (size_t j = 0; j < nlabels; j++)
			if (strcmp(labels[j], l) == 0)
				return NULL;
	}
	if (type == METRIC_HISTOGRAM) {
		if (!buckets || nbuckets == 0)
			return NULL;
		for (size_t i = 0; i < nbuckets; i++) {
			if (!isfinite(buckets[i]))
				return NULL;
			if (i > 0 && !(buckets[i] > buckets[i - 1]))
				return NULL;
		}
	}
	if (name_taken(m, name, type))
		return NULL;

	struct metric_family *f = sp_calloc(1, sizeof(*f));
	f->name = sp_strdup(name);
	f->help = sp_strdup(help ? help : "");
	f->type = type;
	f->nlabels = nlabels;
	for (size_t i = 0; i < nlabels; i++)
		f->labels[i] = sp_strdup(labels[i]);
	if (type == METRIC_HISTOGRAM) {
		f->nbounds = nbuckets;
		f->bounds = sp_malloc(nbuckets * sizeof(*f->bounds));
		memcpy(f->bounds, buckets, nbuckets * sizeof(*f->bounds));
		f->le_text = sp_calloc(nbuckets, sizeof(*f->le_text));
		for (size_t i = 0; i < nbuckets; i++) {
			char num[32];
			size_t len = format_number(num, sizeof(num), buckets[i]);
			f->le_text[i] = sp_memdup(num, len);
		}
	}
	if (m->nfamilies == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->families = sp_realloc(m->families, m->cap * sizeof(*m->families));
	}
	m->families[m->nfamilies++] = f;
	return f;
}

/* FNV-1a over the values, each followed by a NUL (which no value holds), so
 * ("ab","c") and ("a","bc") differ. */
static uint64_t values_hash(const char *const *values, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
			h = (h ^ *p) * 1099511628211ull;
		h = (h ^ 0) * 1099511628211ull;
	}
	return h;
}

static void index_put(struct metric **index, size_t cap, struct metric *s)
{
	size_t i = (size_t)s->hash & (cap - 1);
	while (index[i])
		i = (i + 1) & (cap - 1);
	index[i] = s;
}

static void index_grow(struct metric_family *f)
{
	size_t cap = f->index_cap ? f->index_cap * 2 : 8;
	struct metric **index = sp_calloc(cap, sizeof(*index));
	for (size_t i = 0; i < f->nseries; i++)
		index_put(index, cap, f->series[i]);
	free(f->index);
	f->index = index;
	f->index_cap = cap;
}

static int series_matches(const struct metric *s, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->values[i], values[i]) != 0)
			return 0;
	return 1;
}

struct metric *metrics_series(struct metric_family *f, const char *const *values)
{
	if (!f)
		return NULL;
	if (f->nlabels > 0) {
		if (!values)
			return NULL;
		for (size_t i = 0; i < f->nlabels; i++)
			if (!values[i])
				return NULL;
	}
	uint64_t hash = values_hash(values, f->nlabels);
	if (f->index_cap) {
		for (size_t i = (size_t)hash & (f->index_cap - 1); f->index[i];
		     i = (i + 1) & (f->index_cap - 1)) {
			struct metric *s = f->index[i];
			if (s->hash == hash && series_matches(s, values, f->nlabels))
				return s;
		}
	}

	size_t nb = f->type == METRIC_HISTOGRAM ? f->nbounds + 1 : 0;
	struct metric *s = sp_calloc(1, sizeof(*s) + nb * sizeof(s->buckets[0]));
	s->type = f->type;
	s->nbounds = f->nbounds;
	s->bounds = f->bounds;
	s->hash = hash;
	for (size_t i = 0; i < f->nlabels; i++)
		s->values[i] = sp_strdup(values[i]);
	if (f->nseries == f->series_cap) {
		f->series_cap = f->series_cap ? f->series_cap * 2 : 4;
		f->series = sp_realloc(f->series, f->series_cap * sizeof(*f->series));
	}
	f->series[f->nseries++] = s;
	if (f->nseries * 2 > f->index_cap)
		index_grow(f); /* re-inserts every series, s included */
	else
		index_put(f->index, f->index_cap, s);
	return s;
}

/* ---- Updates (the hot path) ------------------------------------------------ */

void metric_inc(struct metric *s)
{
	if (s->type != METRIC_HISTOGRAM)
		s->value += 1;
}

void metric_add(struct metric *s, double v)
{
	if (s->type == METRIC_GAUGE || (s->type == METRIC_COUNTER && v >= 0))
		s->value += v;
}

void metric_set(struct metric *s, double v)
{
	if (s->type == METRIC_GAUGE)
		s->value = v;
}

void metric_observe(struct metric *s, double v)
{
	if (s->type != METRIC_HISTOGRAM || isnan(v))
		return;
	/* The first bound >= v: buckets are "less than or equal". */
	size_t lo = 0, hi = s->nbounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->bounds[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	s->buckets[lo]++;
	s->count++;
	s->value += v;
}

/* ---- Reading --------------------------------------------------------------- */

double metric_value(const struct metric *s)
{
	return s->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
}

size_t metric_hist_read(const struct metric *s, uint64_t *out, size_t max)
{
	if (s->type != METRIC_HISTOGRAM)
		return 0;
	size_t n = s->nbounds + 1 < max ? s->nbounds + 1 : max;
	uint64_t cum = 0;
	for (size_t i = 0; i < n; i++) {
		cum += s->buckets[i];
		out[i] = cum;
	}
	return n;
}

const double *metric_hist_bounds(const struct metric *s, size_t *n)
{
	if (s->type != METRIC_HISTOGRAM) {
		*n = 0;
		return NULL;
	}
	*n = s->nbounds;
	return s->bounds;
}

/* As Prometheus's bucketQuantile (promql/quantile.go): find the first bucket
 * whose cumulative count reaches rank = q * total and interpolate linearly
 * inside it. Counts are taken through a running maximum, Prometheus's
 * ensureMonotonic. */
double metrics_quantile(const double *bounds, const uint64_t *cum, size_t n, double q)
{
	if (isnan(q))
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	if (n == 0)
		return NAN;
	uint64_t total = 0;
	for (size_t i = 0; i <= n; i++)
		if (cum[i] > total)
			total = cum[i];
	if (total == 0)
		return NAN;
	double rank = q * (double)total;
	uint64_t below = 0; /* observations in the buckets before b */
	for (size_t b = 0; b < n; b++) {
		uint64_t c = cum[b] > below ? cum[b] : below;
		/* c > 0 matters only for q = 0, where rank 0 would otherwise
		 * stop in an empty bucket and divide 0 by 0. */
		if (c > 0 && (double)c >= rank) {
			if (b == 0 && bounds[0] <= 0)
				return bounds[0];
			double start = b > 0 ? bounds[b - 1] : 0;
			double in = (double)(c - below);
			return start + (bounds[b] - start) * ((rank - (double)below) / in);
		}
		below = c;
	}
	return bounds[n - 1];
}

/* ---- Rendering ------------------------------------------------------------- */

/* put_escaped appends s with backslash and newline escaped, and the double
 * quote too inside a label value, as the text format requires. */
static void put_escaped(struct sp_buf *b, const char *s, int in_quotes)
{
	const char *run = s;
	for (; *s; s++) {
		const char *esc;
		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && in_quotes)
			esc = "\\\"";
		else
			continue;
		sp_buf_append(b, run, (size_t)(s - run));
		sp_buf_append(b, esc, 2);
		run = s + 1;
	}
	sp_buf_append(b, run, (size_t)(s - run));
}

/* put_sample appends one sample line: the family's name with suffix (may
 * be ""), the series' labels plus le when it is not NULL, and the value,
 * already formatted. */
static void put_sample(struct sp_buf *b, const struct metric_family *f, const char *suffix,
		       const struct metric *s, const char *le, const char *value)
{
	sp_buf_append_str(b, f->name);
	sp_buf_append_str(b, suffix);
	if (f->nlabels > 0 || le) {
		sp_buf_append(b, "{", 1);
		for (size_t i = 0; i < f->nlabels; i++) {
			if (i > 0)
				sp_buf_append(b, ",", 1);
			sp_buf_append_str(b, f->labels[i]);
			sp_buf_append(b, "=\"", 2);
			put_escaped(b, s->values[i], 1);
			sp_buf_append(b, "\"", 1);
		}
		if (le) {
			if (f->nlabels > 0)
				sp_buf_append(b, ",", 1);
			sp_buf_append(b, "le=\"", 4);
			sp_buf_append_str(b, le);
			sp_buf_append(b, "\"", 1);
		}
		sp_buf_append(b, "}", 1);
	}
	sp_buf_append(b, " ", 1);
	sp_buf_append_str(b, value);
	sp_buf_append(b, "\n", 1);
}

static const char *type_name(enum metric_type t)
{
	switch (t) {
	case METRIC_COUNTER:
		return "counter";
	case METRIC_GAUGE:
		return "gauge";
	case METRIC_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

static void render_histogram(struct sp_buf *b, const struct metric_family *f,
			     const struct metric *s)
{
	char num[32];
	uint64_t cum = 0;
	for (size_t i = 0; i <= f->nbounds; i++) {
		cum += s->buckets[i];
		snprintf(num, sizeof(num), "%" PRIu64, cum);
		put_sample(b, f, "_bucket", s, i < f->nbounds ? f->le_text[i] : "+Inf", num);
	}
	format_number(num, sizeof(num), s->value);
	put_sample(b, f, "_sum", s, NULL, num);
	snprintf(num, sizeof(num), "%" PRIu64, s->count);
	put_sample(b, f, "_count", s, NULL, num);
}

void metrics_render(const struct metrics *m, struct sp_buf *b)
{
	for (size_t i = 0; i < m->nfamilies; i++) {
		const struct metric_family *f = m->families[i];
		/* The HELP line always has the space after the name, as the
		 * Go client writes it, even when the help is empty. */
		sp_buf_append_str(b, "# HELP ");
		sp_buf_append_str(b, f->name);
		sp_buf_append(b, " ", 1);
		put_escaped(b, f->help, 0);
		sp_buf_appendf(b, "\n# TYPE %s %s\n", f->name, type_name(f->type));
		for (size_t j = 0; j < f->nseries; j++) {
			const struct metric *s = f->series[j];
			if (f->type == METRIC_HISTOGRAM) {
				render_histogram(b, f, s);
			} else {
				char num[32];
				format_number(num, sizeof(num), s->value);
				put_sample(b, f, "", s, NULL, num);
			}
		}
	}
}
