#include "testutil.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void tu_remove_tree(const char *root)
{
	if (root[0] != '\0')
		nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

FILE *tu_log_capture_begin(enum sp_log_level level)
{
	FILE *f = tmpfile();
	assert_non_null(f);
	sp_log_setup(level, f);
	return f;
}

char *tu_log_capture_end(FILE *f)
{
	sp_log_setup(SP_LOG_ERROR, NULL);
	fflush(f);
	long n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	char *text = calloc(1, (size_t)n + 1);
	assert_non_null(text);
	if (n > 0)
		assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return text;
}

uint64_t tu_seed(void)
{
	const char *env = getenv("SPECTRA_SEED");
	uint64_t seed;
	if (env && *env)
		seed = strtoull(env, NULL, 0);
	else
		seed =
		    (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid() << 20 ^ (uint64_t)clock();
	fprintf(stderr, "    seed: SPECTRA_SEED=%" PRIu64 "\n", seed);
	return seed;
}

uint64_t tu_splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t tu_rnd(uint64_t *s, uint64_t n)
{
	return n ? tu_splitmix(s) % n : 0;
}

uint64_t tu_stream(uint64_t seed, const char *name)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return seed ^ h;
}
