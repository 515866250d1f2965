/*
 * num: number parsing shared by the protocol codec and the commands.
 * Pure: no I/O, no locale.
 */
#ifndef SP_COMMON_NUM_H
#define SP_COMMON_NUM_H

#include <stddef.h>
#include <stdint.h>

/*
 * sp_parse_int64 reads a decimal int64 exactly as Redis's string2ll does:
 * an optional '-', then "0" alone or a digit 1-9 followed by digits, at
 * most 20 characters, within int64. "-0", "+1", "01", " 1" and "" are
 * refused. Returns 1 and sets *out on success, 0 otherwise.
 */
int sp_parse_int64(const char *s, size_t n, int64_t *out);

#endif
