/*
 * bench_keys: which key an op of `spectra bench` touches, and the random
 * numbers it draws.
 *
 * Keys are numbers in [0, n). Three distributions:
 *   uniform  every key equally likely;
 *   zipf     key k (0-based) with probability proportional to 1/(k+1)^s,
 *            drawn by rejection-inversion (Hörmann and Derflinger, "Rejection-
 *            inversion to generate variates from monotone discrete
 *            distributions", 1996): O(1) memory and time per draw for any n,
 *            so a billion-key space costs nothing to set up;
 *   seq      0, 1, 2, ... n-1, 0, ... in turn (for a write pass that loads
 *            every key once).
 * The generator is splitmix64, seeded by the caller, so a run's keys can be
 * replayed. The binary links no libm, so the few exp/log evaluations zipf
 * needs are done here in plain arithmetic (accurate to about 1e-15).
 *
 * Pure: no I/O, no clock, no globals.
 */
#ifndef SP_TOOLS_BENCH_KEYS_H
#define SP_TOOLS_BENCH_KEYS_H

#include <stdint.h>

enum bench_dist {
	BENCH_DIST_UNIFORM,
	BENCH_DIST_ZIPF,
	BENCH_DIST_SEQ,
};

struct bench_keys {
	enum bench_dist dist;
	uint64_t n;    /* key space size */
	double s;      /* zipf exponent */
	uint64_t next; /* seq: the next key */
	/* zipf, precomputed: H(1.5) - 1, H(n + 0.5) and the squeeze
	 * constant of the paper's algorithm ZRI. */
	double h_x1, h_n, squeeze;
};

/* bench_rng_next steps the splitmix64 generator whose state is *state and
 * returns 64 random bits. */
uint64_t bench_rng_next(uint64_t *state);

/* bench_rng_below returns a number in [0, n) (0 when n is 0), by
 * multiplying rather than dividing (bias below 2^-64 * n). */
uint64_t bench_rng_below(uint64_t *state, uint64_t n);

/* bench_rng_unit returns a double in [0, 1) with 53 random bits. */
double bench_rng_unit(uint64_t *state);

/*
 * bench_keys_init prepares k to draw keys in [0, n) from dist; s is the
 * zipf exponent (ignored by the others).
 * Returns 0, or SP_ERR_INVAL when n is 0, or dist is zipf and s is not in
 * (0, 100]. k holds no resources (bench_keys_close is for symmetry).
 */
int bench_keys_init(struct bench_keys *k, enum bench_dist dist, uint64_t n, double s);

/* bench_keys_close does nothing; k may be NULL. */
void bench_keys_close(struct bench_keys *k);

/* bench_keys_next draws the next key in [0, k->n), using *rng for random
 * bits (seq uses none). */
uint64_t bench_keys_next(struct bench_keys *k, uint64_t *rng);

/* bench_keys_parse_dist reads "uniform", "zipf" or "seq". Returns 0 or
 * SP_ERR_INVAL. */
int bench_keys_parse_dist(const char *text, enum bench_dist *out);

/* bench_pow returns x^y for x > 0 (finite y), for tests and for callers
 * that, like this module, cannot use libm. */
double bench_pow(double x, double y);

#endif
