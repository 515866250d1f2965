/*
 * testutil: small helpers every test binary shares (the Makefile links
 * every tests/lib source into each): removing a temporary tree, and
 * capturing what spectra logs while a test runs.
 */
#ifndef SP_TESTS_TESTUTIL_H
#define SP_TESTS_TESTUTIL_H

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

#endif
