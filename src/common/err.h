/*
 * err: spectra's error codes and their messages.
 *
 * Every fallible function in spectra returns int: 0 on success, a negative
 * SP_ERR_* code otherwise. Codes below SP_ERR__BASE are negated errno values
 * (as libuv does), so a system call's failure keeps its errno. This module
 * only names errors; it does not log or allocate.
 */
#ifndef SP_COMMON_ERR_H
#define SP_COMMON_ERR_H

#define SP_ERR__BASE (-10000)

enum sp_err {
	SP_OK = 0,
	SP_ERR_NOMEM = SP_ERR__BASE - 1,      /* allocation failed */
	SP_ERR_INVAL = SP_ERR__BASE - 2,      /* invalid argument or setting */
	SP_ERR_NOTFOUND = SP_ERR__BASE - 3,   /* no such key or item */
	SP_ERR_EXISTS = SP_ERR__BASE - 4,     /* item already exists */
	SP_ERR_TOOBIG = SP_ERR__BASE - 5,     /* a configured limit was exceeded */
	SP_ERR_PROTO = SP_ERR__BASE - 6,      /* malformed protocol input */
	SP_ERR_AGAIN = SP_ERR__BASE - 7,      /* incomplete input; call again with more */
	SP_ERR_IO = SP_ERR__BASE - 8,	      /* storage or network I/O failed */
	SP_ERR_CORRUPT = SP_ERR__BASE - 9,    /* stored data failed a consistency check */
	SP_ERR_FULL = SP_ERR__BASE - 10,      /* storage map or a queue is full */
	SP_ERR_KEYLEN = SP_ERR__BASE - 11,    /* key longer than the store accepts */
	SP_ERR_RANGE = SP_ERR__BASE - 12,     /* number out of range or not a number */
	SP_ERR_NOTLEADER = SP_ERR__BASE - 13, /* not the leader (strong engine) */
	SP_ERR_UNKNOWN = SP_ERR__BASE - 14,   /* the outcome cannot be known here */
	SP_ERR__LAST = SP_ERR__BASE - 15,
};

/*
 * sp_strerror returns a static, human-readable message for an error code:
 * an SP_ERR_* code or a negated errno. Never returns NULL; the string is
 * owned by the library and must not be freed.
 */
const char *sp_strerror(int err);

#endif
