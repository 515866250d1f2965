#include "common/err.h"

#include <string.h>

static const char *const messages[] = {
    [0] = "success",
    [-(SP_ERR_NOMEM - SP_ERR__BASE)] = "out of memory",
    [-(SP_ERR_INVAL - SP_ERR__BASE)] = "invalid argument",
    [-(SP_ERR_NOTFOUND - SP_ERR__BASE)] = "not found",
    [-(SP_ERR_EXISTS - SP_ERR__BASE)] = "already exists",
    [-(SP_ERR_TOOBIG - SP_ERR__BASE)] = "limit exceeded",
    [-(SP_ERR_PROTO - SP_ERR__BASE)] = "protocol error",
    [-(SP_ERR_AGAIN - SP_ERR__BASE)] = "incomplete input",
    [-(SP_ERR_IO - SP_ERR__BASE)] = "I/O error",
    [-(SP_ERR_CORRUPT - SP_ERR__BASE)] = "data corrupt",
    [-(SP_ERR_FULL - SP_ERR__BASE)] = "storage full",
    [-(SP_ERR_KEYLEN - SP_ERR__BASE)] = "key too long",
    [-(SP_ERR_RANGE - SP_ERR__BASE)] = "value is not an integer or out of range",
    [-(SP_ERR_NOTLEADER - SP_ERR__BASE)] = "not the leader",
    [-(SP_ERR_UNKNOWN - SP_ERR__BASE)] = "outcome unknown",
};

const char *sp_strerror(int err)
{
	if (err == 0)
		return messages[0];
	if (err < SP_ERR__BASE && err > SP_ERR__LAST) {
		const char *m = messages[-(err - SP_ERR__BASE)];
		return m ? m : "unknown error";
	}
	if (err < 0 && err > SP_ERR__BASE)
		return strerror(-err);
	return "unknown error";
}
