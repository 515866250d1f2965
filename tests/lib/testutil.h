/*
 * testutil: small helpers every test binary shares (the Makefile links
 * every tests/lib source into each): removing a temporary tree, and
 * capturing what spectra logs while a test runs.
 */
#ifndef SP_TESTS_TESTUTIL_H
#define SP_TESTS_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>

#include "common/log.h"

/* tu_remove_tree deletes root and everything under it (no symlinks are
 * followed); an empty string or a missing path is fine. */
void tu_remove_tree(const char *root);

/* tu_log_capture_begin sends spectra's log at `level` and above to a
 * temporary file; tu_log_capture_end returns what was written since (owned
 * by the caller, free()) and puts logging back to errors on stderr. */
FILE *tu_log_capture_begin(enum sp_log_level level);
char *tu_log_capture_end(FILE *f);

/* Seeds and random numbers for randomised tests. tu_seed returns
 * SPECTRA_SEED when it is set, else a fresh seed, and prints it on stderr
 * ("seed: SPECTRA_SEED=n") so a failing run can be replayed. tu_splitmix
 * steps the splitmix64 generator whose state is *s; tu_rnd returns a
 * number in [0, n) from it (0 when n is 0). */
uint64_t tu_seed(void);
uint64_t tu_splitmix(uint64_t *s);
uint64_t tu_rnd(uint64_t *s, uint64_t n);
/* tu_stream derives a test's own generator state from the run's seed and
 * the test's name, so one test's failure replays with the run's seed
 * whichever tests ran before it. */
uint64_t tu_stream(uint64_t seed, const char *name);

#endif
