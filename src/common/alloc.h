/*
 * alloc: allocation that does not return NULL.
 *
 * spectra treats running out of memory as fatal, as Redis does: a node that
 * cannot allocate logs and aborts rather than serving with half-built state.
 * Limits on client input (bulk length, argument count, query buffer) keep a
 * client from driving a node there. Memory from these functions is released
 * with free().
 */
#ifndef SP_COMMON_ALLOC_H
#define SP_COMMON_ALLOC_H

#include <stddef.h>

void *sp_malloc(size_t size);
void *sp_calloc(size_t n, size_t size);
void *sp_realloc(void *p, size_t size);
char *sp_strdup(const char *s);
/* sp_memdup copies len bytes and adds a NUL after them. */
char *sp_memdup(const void *p, size_t len);

#endif
