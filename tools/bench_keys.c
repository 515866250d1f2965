/*
 * bench_keys: key distributions and random numbers. See bench_keys.h.
 */
#include "bench_keys.h"

#include <string.h>

#include "common/err.h"

/* ---- random numbers ----------------------------------------------------- */

uint64_t bench_rng_next(uint64_t *state)
{
	/* splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom
	 * number generators", 2014). */
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t bench_rng_below(uint64_t *state, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)bench_rng_next(state) * n) >> 64);
}

double bench_rng_unit(uint64_t *state)
{
	return (double)(bench_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- exp and log without libm --------------------------------------------- */

/* ln 2 split in two so that n * LN2_HI is exact for |n| < 2^20 (fdlibm's
 * constants). */
#define LN2_HI	0x1.62e42feep-1
#define LN2_LO	0x1.a39ef35793c76p-33
#define SQRT2	1.4142135623730951
#define INV_LN2 1.4426950408889634

static double abs_of(double x)
{
	return x < 0 ? -x : x;
}

/* scale2 returns v * 2^e for |e| small enough that the result is a normal
 * double or underflows to 0 (all the callers need). */
static double scale2(double v, int e)
{
	while (e > 1000) {
		v *= 0x1p1000;
		e -= 1000;
	}
	while (e < -1000) {
		v *= 0x1p-1000;
		e += 1000;
	}
	uint64_t bits = (uint64_t)(e + 1023) << 52;
	double f;
	memcpy(&f, &bits, sizeof(f));
	return v * f;
}

/*
 * math_log: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then
 * ln m = 2 atanh(z) = 2 (z + z^3/3 + z^5/5 + ...) with z = (m-1)/(m+1),
 * |z| <= 0.172, so each term is 34 times smaller than the one before.
 * x must be positive and finite.
 */
static double math_log(double x)
{
	uint64_t bits;
	memcpy(&bits, &x, sizeof(bits));
	int e = (int)((bits >> 52) & 0x7ff);
	if (e == 0) { /* subnormal: make it normal first */
		x *= 0x1p54;
		memcpy(&bits, &x, sizeof(bits));
		e = (int)((bits >> 52) & 0x7ff) - 54;
	}
	e -= 1023;
	bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
	double m;
	memcpy(&m, &bits, sizeof(m));
	if (m > SQRT2) {
		m *= 0.5;
		e++;
	}
	double z = (m - 1.0) / (m + 1.0), z2 = z * z, power = z, sum = 0;
	for (int k = 1; k < 64; k += 2) {
		double term = power / k;
		sum += term;
		if (abs_of(term) <= 1e-18 * abs_of(sum))
			break;
		power *= z2;
	}
	return e * LN2_HI + (e * LN2_LO + 2.0 * sum);
}

/*
 * math_exp: x = n ln 2 + r with |r| <= ln 2 / 2, e^r by its Taylor series
 * (18 terms at most), then scaled by 2^n.
 */
static double math_exp(double x)
{
	if (x > 709.0)
		return 0x1p1023 * 2.0; /* overflow: +inf */
	if (x < -745.0)
		return 0.0;
	double nd = x * INV_LN2;
	int n = (int)(nd + (nd >= 0 ? 0.5 : -0.5));
	double r = (x - n * LN2_HI) - n * LN2_LO;
	double term = 1.0, sum = 1.0;
	for (int k = 1; k < 40; k++) {
		term *= r / k;
		sum += term;
		if (abs_of(term) <= 1e-18 * sum)
			break;
	}
	return scale2(sum, n);
}

/* expm1_over(t) = (e^t - 1) / t, and 1 at t = 0; by series near 0, where
 * the subtraction would cancel. */
static double expm1_over(double t)
{
	if (abs_of(t) >= 0.5)
		return (math_exp(t) - 1.0) / t;
	double term = 1.0, sum = 1.0;
	for (int k = 2; k < 40; k++) {
		term *= t / k;
		sum += term;
		if (abs_of(term) <= 1e-18 * sum)
			break;
	}
	return sum;
}

/* log1p_over(t) = ln(1 + t) / t, and 1 at t = 0 (t > -1); by series near 0. */
static double log1p_over(double t)
{
	if (abs_of(t) >= 0.1)
		return math_log(1.0 + t) / t;
	double power = 1.0, sum = 0.0;
	for (int k = 1; k < 40; k++) {
		double term = power / k;
		sum += term;
		if (abs_of(term) <= 1e-18 * abs_of(sum))
			break;
		power *= -t;
	}
	return sum;
}

double bench_pow(double x, double y)
{
	return math_exp(y * math_log(x));
}

/* ---- zipf by rejection-inversion ---------------------------------------- */

/*
 * With h(x) = x^-s on ranks 1..n, H is an antiderivative of h:
 * H(x) = (x^(1-s) - 1) / (1-s), which is ln x at s = 1; written through
 * expm1_over so that it stays exact as s approaches 1. H_inv is its inverse.
 */
static double zipf_h(double s, double x)
{
	return math_exp(-s * math_log(x));
}

static double zipf_H(double s, double x)
{
	double lx = math_log(x);
	return expm1_over((1.0 - s) * lx) * lx;
}

static double zipf_H_inv(double s, double y)
{
	double t = y * (1.0 - s);
	/* H's range keeps t above -1; rounding must not reach log(0). */
	if (t <= -1.0)
		t = -1.0 + 0x1p-52;
	return math_exp(log1p_over(t) * y);
}

int bench_keys_init(struct bench_keys *k, enum bench_dist dist, uint64_t n, double s)
{
	if (n == 0)
		return SP_ERR_INVAL;
	if (dist != BENCH_DIST_UNIFORM && dist != BENCH_DIST_ZIPF && dist != BENCH_DIST_SEQ)
		return SP_ERR_INVAL;
	if (dist == BENCH_DIST_ZIPF && !(s > 0 && s <= 100))
		return SP_ERR_INVAL;
	*k = (struct bench_keys){.dist = dist, .n = n, .s = s};
	if (dist == BENCH_DIST_ZIPF) {
		/* Rank 1 owns [H(1.5) - h(1), H(1.5)] = [H(1.5) - 1, H(1.5)];
		 * rank j owns [H(j + 0.5) - h(j), H(j + 0.5)]. Every such
		 * interval has length h(j) and, h being convex, they do not
		 * overlap, so a uniform point of [H(1.5) - 1, H(n + 0.5)]
		 * that lands in one picks rank j with probability
		 * proportional to h(j); a point in a gap is drawn again. */
		k->h_x1 = zipf_H(s, 1.5) - 1.0;
		k->h_n = zipf_H(s, (double)n + 0.5);
		k->squeeze = 2.0 - zipf_H_inv(s, zipf_H(s, 2.5) - zipf_h(s, 2.0));
	}
	return 0;
}

void bench_keys_close(struct bench_keys *k)
{
	(void)k;
}

static uint64_t zipf_rank(const struct bench_keys *k, uint64_t *rng)
{
	for (;;) {
		double u = k->h_n + bench_rng_unit(rng) * (k->h_x1 - k->h_n);
		double x = zipf_H_inv(k->s, u);
		double rounded = x + 0.5;
		uint64_t rank = rounded < 1.0 ? 1 : (uint64_t)rounded;
		if (rank > k->n)
			rank = k->n;
		/* Accept at once when x lies close enough left of the rank's
		 * centre that u must be inside its interval (the paper's
		 * squeeze); else test u against the interval's left end. */
		if ((double)rank - x <= k->squeeze ||
		    u >= zipf_H(k->s, (double)rank + 0.5) - zipf_h(k->s, (double)rank))
			return rank;
	}
}

uint64_t bench_keys_next(struct bench_keys *k, uint64_t *rng)
{
	switch (k->dist) {
	case BENCH_DIST_ZIPF:
		return zipf_rank(k, rng) - 1;
	case BENCH_DIST_SEQ: {
		uint64_t key = k->next;
		k->next = key + 1 == k->n ? 0 : key + 1;
		return key;
	}
	case BENCH_DIST_UNIFORM:
	default:
		return bench_rng_below(rng, k->n);
	}
}

int bench_keys_parse_dist(const char *text, enum bench_dist *out)
{
	static const struct {
		const char *name;
		enum bench_dist dist;
	} names[] = {
	    {"uniform", BENCH_DIST_UNIFORM},
	    {"zipf", BENCH_DIST_ZIPF},
	    {"seq", BENCH_DIST_SEQ},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(text, names[i].name) == 0) {
			*out = names[i].dist;
			return 0;
		}
	}
	return SP_ERR_INVAL;
}
