#include "testutil.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

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
