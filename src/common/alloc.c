#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t size)
{
	fprintf(stderr, "spectra: out of memory allocating %zu bytes\n", size);
	abort();
}

void *sp_malloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (!p)
		oom(size);
	return p;
}

void *sp_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *sp_realloc(void *p, size_t size)
{
	void *q = realloc(p, size ? size : 1);
	if (!q)
		oom(size);
	return q;
}

char *sp_strdup(const char *s)
{
	return sp_memdup(s, strlen(s));
}

char *sp_memdup(const void *p, size_t len)
{
	char *q = sp_malloc(len + 1);
	if (len)
		memcpy(q, p, len);
	q[len] = '\0';
	return q;
}
