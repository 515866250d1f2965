/*
 * args: parsing of command arguments with Redis's rules and error texts.
 */
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "server/server.h"

/*
 * parse_int64 accepts exactly what Redis's string2ll accepts: an optional
 * '-', then "0" alone or a digit 1-9 followed by digits, fitting in int64;
 * no spaces, no '+', no leading zeros, at most 20 characters.
 */
int parse_int64(const char *p, size_t len, int64_t *out)
{
	if (len == 0 || len > 20)
		return 0;
	if (len == 1 && p[0] == '0') {
		*out = 0;
		return 1;
	}
	size_t i = 0;
	int neg = 0;
	if (p[0] == '-') {
		neg = 1;
		i = 1;
		if (len == 1)
			return 0;
	}
	if (p[i] < '1' || p[i] > '9')
		return 0;
	uint64_t v = 0;
	for (; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return 0;
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > (uint64_t)INT64_MAX)
			return 0;
		*out = (int64_t)v;
	}
	return 1;
}

int arg_to_int64(struct client *c, struct slice a, int64_t *out)
{
	if (parse_int64(a.p, a.len, out))
		return 0;
	reply_error(c, "ERR value is not an integer or out of range");
	return -1;
}

int arg_equals(struct slice a, const char *lit)
{
	size_t n = strlen(lit);
	return a.len == n && strncasecmp(a.p, lit, n) == 0;
}
