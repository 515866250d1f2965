/*
 * args: parsing of command arguments with Redis's rules and error texts.
 */
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "server/server.h"

int arg_to_int64(struct client *c, struct slice a, int64_t *out)
{
	if (sp_parse_int64(a.p, a.len, out))
		return 0;
	reply_error(c, "ERR value is not an integer or out of range");
	return -1;
}

int arg_equals(struct slice a, const char *lit)
{
	size_t n = strlen(lit);
	return a.len == n && strncasecmp(a.p, lit, n) == 0;
}
