/*
 * cmd_keys: string and keyspace commands, with Redis 7's semantics and
 * error texts. Every handler appends exactly one reply. Values the store
 * lends are used before the next store call or copied.
 */
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "server/cmd.h"

static const char wrongtype[] = "WRONGTYPE Operation against a key holding the wrong kind of value";

static uint64_t now_ms(struct client *c)
{
	return server_now_ms(c->srv);
}

/*
 * lookup_string finds a live string value. Returns 1 and fills *v, 0 if the
 * key is absent, or -1 after replying with an error (wrong type, store).
 */
static int lookup_string(struct client *c, struct slice key, struct store_value *v)
{
	int rc = store_get(c->srv->store, key.p, key.len, now_ms(c), v);
	if (rc == SP_ERR_NOTFOUND) {
		c->srv->stats.misses++;
		return 0;
	}
	if (rc < 0) {
		reply_store_error(c, rc);
		return -1;
	}
	if (v->type != STORE_STRING) {
		reply_error(c, wrongtype);
		return -1;
	}
	c->srv->stats.hits++;
	return 1;
}

/* put_string stores a string value; returns 0 or -1 after replying. */
static int put_string(struct client *c, struct slice key, const void *data, size_t len,
		      uint64_t expire_at_ms)
{
	if (len > c->srv->cfg->max_value_bytes) {
		reply_error(c, "ERR string exceeds maximum allowed size (max-value-bytes)");
		return -1;
	}
	struct store_value v = {STORE_STRING, 0, expire_at_ms, data, len, 0};
	int rc = store_put(c->srv->store, key.p, key.len, &v);
	if (rc < 0) {
		reply_store_error(c, rc);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* SET and its relatives                                                */

enum {
	SET_NX = 1 << 0,
	SET_XX = 1 << 1,
	SET_GET = 1 << 2,
	SET_KEEPTTL = 1 << 3,
	SET_EX = 1 << 4,
	SET_PX = 1 << 5,
	SET_EXAT = 1 << 6,
	SET_PXAT = 1 << 7,
	SET_PERSIST = 1 << 8,
	SET_DELETE = 1 << 9, /* GETDEL */
};
#define SET_ANY_EXPIRE (SET_EX | SET_PX | SET_EXAT | SET_PXAT)

/*
 * expire_to_abs turns an EX/PX/EXAT/PXAT argument into absolute Unix ms,
 * with Redis's checks. Returns 0, or -1 after replying.
 */
static int expire_to_abs(struct client *c, struct slice arg, int kind, const char *cmdname,
			 uint64_t *out)
{
	int64_t v;
	if (arg_to_int64(c, arg, &v) < 0)
		return -1;
	int seconds = kind == SET_EX || kind == SET_EXAT;
	if (v <= 0 || (seconds && v > INT64_MAX / 1000)) {
		reply_errorf(c, "ERR invalid expire time in '%s' command", cmdname);
		return -1;
	}
	if (seconds)
		v *= 1000;
	if (kind == SET_EX || kind == SET_PX) {
		int64_t now = (int64_t)now_ms(c);
		if (v > INT64_MAX - now) {
			reply_errorf(c, "ERR invalid expire time in '%s' command", cmdname);
			return -1;
		}
		v += now;
	}
	*out = (uint64_t)v;
	return 0;
}

/*
 * parse_set_options reads SET/GETEX options from argv[first..]. getex
 * selects GETEX's set (EX PX EXAT PXAT PERSIST). Returns 0 or -1 after
 * replying "syntax error" (or an expire error).
 */
static int parse_set_options(struct client *c, size_t first, int getex, int *flags,
			     uint64_t *expire_at)
{
	const char *name = getex ? "getex" : "set";
	for (size_t i = first; i < c->argc; i++) {
		struct slice a = c->argv[i];
		int has_next = i + 1 < c->argc;
		int f = *flags;
		if (!getex && arg_equals(a, "nx") && !(f & SET_XX)) {
			*flags |= SET_NX;
		} else if (!getex && arg_equals(a, "xx") && !(f & SET_NX)) {
			*flags |= SET_XX;
		} else if (!getex && arg_equals(a, "get")) {
			*flags |= SET_GET;
		} else if (!getex && arg_equals(a, "keepttl") && !(f & SET_ANY_EXPIRE)) {
			*flags |= SET_KEEPTTL;
		} else if (getex && arg_equals(a, "persist") && !(f & SET_ANY_EXPIRE)) {
			*flags |= SET_PERSIST;
		} else {
			int kind = arg_equals(a, "ex")	   ? SET_EX
				   : arg_equals(a, "px")   ? SET_PX
				   : arg_equals(a, "exat") ? SET_EXAT
				   : arg_equals(a, "pxat") ? SET_PXAT
							   : 0;
			int others = (SET_ANY_EXPIRE & ~kind) | SET_KEEPTTL | SET_PERSIST;
			if (!kind || (f & others) || !has_next) {
				reply_syntax_error(c);
				return -1;
			}
			if (expire_to_abs(c, c->argv[i + 1], kind, name, expire_at) < 0)
				return -1;
			*flags |= kind;
			i++;
		}
	}
	return 0;
}

/* set_generic implements SET with parsed flags. */
static void set_generic(struct client *c, struct slice key, struct slice val, int flags,
			uint64_t expire_at)
{
	struct store_value old;
	int found = 0;
	char *old_copy = NULL;
	size_t old_len = 0;
	if (flags & (SET_NX | SET_XX | SET_GET | SET_KEEPTTL)) {
		found = store_get(c->srv->store, key.p, key.len, now_ms(c), &old);
		if (found == SP_ERR_NOTFOUND) {
			found = 0;
		} else if (found < 0) {
			reply_store_error(c, found);
			return;
		} else {
			found = 1;
			if ((flags & SET_GET) && old.type != STORE_STRING) {
				reply_error(c, wrongtype);
				return;
			}
			if (flags & SET_KEEPTTL)
				expire_at = old.expire_at_ms;
			if (flags & SET_GET) {
				old_copy = sp_memdup(old.data, old.len);
				old_len = old.len;
			}
		}
	}
	int skip = ((flags & SET_NX) && found) || ((flags & SET_XX) && !found);
	if (!skip && put_string(c, key, val.p, val.len, expire_at) < 0)
		goto free_old;
	if (flags & SET_GET) {
		if (found)
			reply_bulk(c, old_copy, old_len);
		else
			reply_null(c);
	} else if (skip) {
		reply_null(c);
	} else {
		reply_ok(c);
	}
free_old:
	free(old_copy);
}

/* rev_matches checks SET's IFREV: the key's revision (0 when absent)
 * must be rev. Returns 1, 0 (answered nil), or -1 (answered an error). */
static int rev_matches(struct client *c, struct slice key, uint64_t rev)
{
	struct store_value v;
	int rc = store_get(c->srv->store, key.p, key.len, now_ms(c), &v);
	if (rc < 0 && rc != SP_ERR_NOTFOUND) {
		reply_store_error(c, rc);
		return -1;
	}
	uint64_t have = rc == 0 ? v.rev : 0;
	if (have != rev) {
		reply_null(c);
		return 0;
	}
	return 1;
}

void cmd_set(struct client *c)
{
	int flags = 0;
	uint64_t expire_at = 0;
	/* IFREV n (spectra's): take it out, then parse Redis's options. */
	struct slice *argv = c->argv;
	size_t argc = c->argc;
	struct slice opts[16];
	int64_t ifrev = -1;
	if (argc > 3 && argc - 3 <= 16) {
		size_t n = 0;
		for (size_t i = 3; i < argc; i++) {
			if (arg_equals(argv[i], "ifrev") && i + 1 < argc && ifrev < 0) {
				if (arg_to_int64(c, argv[i + 1], &ifrev) < 0)
					return;
				if (ifrev < 0) {
					reply_error(c, "ERR IFREV needs a revision >= 0");
					return;
				}
				i++;
				continue;
			}
			opts[n++] = argv[i];
		}
		if (ifrev >= 0) {
			memcpy(c->argv + 3, opts, n * sizeof(*opts));
			c->argc = 3 + n;
		}
	}
	int rc = 0;
	if (c->argc > 3)
		rc = parse_set_options(c, 3, 0, &flags, &expire_at);
	c->argc = argc; /* argv's tail stays reordered: only this command reads it */
	if (rc < 0)
		return;
	if (ifrev >= 0 && rev_matches(c, c->argv[1], (uint64_t)ifrev) != 1)
		return;
	set_generic(c, c->argv[1], c->argv[2], flags, expire_at);
}

void cmd_setnx(struct client *c)
{
	struct store_value v;
	int rc = store_get(c->srv->store, c->argv[1].p, c->argv[1].len, now_ms(c), &v);
	if (rc < 0 && rc != SP_ERR_NOTFOUND) {
		reply_store_error(c, rc);
		return;
	}
	if (rc == 0) {
		reply_integer(c, 0);
		return;
	}
	if (put_string(c, c->argv[1], c->argv[2].p, c->argv[2].len, 0) == 0)
		reply_integer(c, 1);
}

static void setex_generic(struct client *c, int kind, const char *name)
{
	uint64_t expire_at;
	if (expire_to_abs(c, c->argv[2], kind, name, &expire_at) < 0)
		return;
	if (put_string(c, c->argv[1], c->argv[3].p, c->argv[3].len, expire_at) == 0)
		reply_ok(c);
}

void cmd_setex(struct client *c)
{
	setex_generic(c, SET_EX, "setex");
}

void cmd_psetex(struct client *c)
{
	setex_generic(c, SET_PX, "psetex");
}

void cmd_getset(struct client *c)
{
	set_generic(c, c->argv[1], c->argv[2], SET_GET, 0);
}

void cmd_get(struct client *c)
{
	struct store_value v;
	int rc = lookup_string(c, c->argv[1], &v);
	if (rc > 0)
		reply_bulk(c, v.data, v.len);
	else if (rc == 0)
		reply_null(c);
}

/*
 * get_and_update replies with a key's value after changing it: deleting it
 * (SET_DELETE), removing its expiry (SET_PERSIST) or setting one (any
 * expire flag; a time already past deletes). The value is copied first:
 * the store lends its bytes only until the change.
 */
static void get_and_update(struct client *c, int flags, uint64_t expire_at)
{
	struct store_value v;
	int rc = lookup_string(c, c->argv[1], &v);
	if (rc <= 0) {
		if (rc == 0)
			reply_null(c);
		return;
	}
	if (!(flags & (SET_ANY_EXPIRE | SET_PERSIST | SET_DELETE))) {
		reply_bulk(c, v.data, v.len);
		return;
	}
	char *copy = sp_memdup(v.data, v.len);
	size_t len = v.len;
	struct slice key = c->argv[1];
	uint64_t now = now_ms(c);
	if (flags & SET_PERSIST)
		rc = store_set_expire(c->srv->store, key.p, key.len, 0, now);
	else if ((flags & SET_DELETE) || expire_at <= now)
		rc = store_del(c->srv->store, key.p, key.len, now);
	else
		rc = store_set_expire(c->srv->store, key.p, key.len, expire_at, now);
	if (rc < 0)
		reply_store_error(c, rc);
	else
		reply_bulk(c, copy, len);
	free(copy);
}

void cmd_getdel(struct client *c)
{
	get_and_update(c, SET_DELETE, 0);
}

void cmd_getex(struct client *c)
{
	int flags = 0;
	uint64_t expire_at = 0;
	if (parse_set_options(c, 2, 1, &flags, &expire_at) == 0)
		get_and_update(c, flags, expire_at);
}

/* ------------------------------------------------------------------ */
/* Multi-key                                                            */

void cmd_del(struct client *c)
{
	int64_t n = 0;
	for (size_t i = 1; i < c->argc; i++) {
		int rc = store_del(c->srv->store, c->argv[i].p, c->argv[i].len, now_ms(c));
		if (rc < 0) {
			reply_store_error(c, rc);
			return;
		}
		n += rc;
	}
	reply_integer(c, n);
}

void cmd_exists(struct client *c)
{
	int64_t n = 0;
	struct store_value v;
	for (size_t i = 1; i < c->argc; i++) {
		int rc = store_get(c->srv->store, c->argv[i].p, c->argv[i].len, now_ms(c), &v);
		if (rc == 0)
			n++;
		else if (rc != SP_ERR_NOTFOUND && rc != SP_ERR_KEYLEN) {
			reply_store_error(c, rc);
			return;
		}
	}
	reply_integer(c, n);
}

void cmd_mget(struct client *c)
{
	/* Check every key first, so an error is the whole reply. */
	for (size_t i = 1; i < c->argc; i++) {
		if (c->argv[i].len > c->srv->max_key_len) {
			reply_store_error(c, SP_ERR_KEYLEN);
			return;
		}
	}
	reply_array(c, c->argc - 1);
	struct store_value v;
	for (size_t i = 1; i < c->argc; i++) {
		int rc = store_get(c->srv->store, c->argv[i].p, c->argv[i].len, now_ms(c), &v);
		if (rc == 0 && v.type == STORE_STRING) {
			c->srv->stats.hits++;
			reply_bulk(c, v.data, v.len);
		} else {
			/* Missing, another type, or unreadable: nil, as Redis
			 * answers MGET for keys that hold no string. */
			c->srv->stats.misses++;
			reply_null(c);
		}
	}
}

static int check_pairs(struct client *c)
{
	if (c->argc % 2 == 0) {
		reply_arity_error(c);
		return -1;
	}
	for (size_t i = 1; i < c->argc; i += 2) {
		if (c->argv[i].len > c->srv->max_key_len) {
			reply_store_error(c, SP_ERR_KEYLEN);
			return -1;
		}
		if (c->argv[i + 1].len > c->srv->cfg->max_value_bytes) {
			reply_error(c, "ERR string exceeds maximum allowed size (max-value-bytes)");
			return -1;
		}
	}
	return 0;
}

static int mset_all(struct client *c)
{
	for (size_t i = 1; i < c->argc; i += 2)
		if (put_string(c, c->argv[i], c->argv[i + 1].p, c->argv[i + 1].len, 0) < 0)
			return -1;
	return 0;
}

void cmd_mset(struct client *c)
{
	if (check_pairs(c) < 0)
		return;
	if (mset_all(c) == 0)
		reply_ok(c);
}

void cmd_msetnx(struct client *c)
{
	if (check_pairs(c) < 0)
		return;
	struct store_value v;
	for (size_t i = 1; i < c->argc; i += 2) {
		int rc = store_get(c->srv->store, c->argv[i].p, c->argv[i].len, now_ms(c), &v);
		if (rc == 0) {
			reply_integer(c, 0);
			return;
		}
		if (rc != SP_ERR_NOTFOUND) {
			reply_store_error(c, rc);
			return;
		}
	}
	if (mset_all(c) == 0)
		reply_integer(c, 1);
}

/* ------------------------------------------------------------------ */
/* Counters and string length                                           */

static void incr_by(struct client *c, int64_t by)
{
	struct store_value v;
	int rc = lookup_string(c, c->argv[1], &v);
	if (rc < 0)
		return;
	int64_t cur = 0;
	uint64_t expire_at = 0;
	if (rc > 0) {
		if (!sp_parse_int64(v.data, v.len, &cur)) {
			reply_error(c, "ERR value is not an integer or out of range");
			return;
		}
		expire_at = v.expire_at_ms;
	}
	if ((by < 0 && cur < 0 && by < INT64_MIN - cur) ||
	    (by > 0 && cur > 0 && by > INT64_MAX - cur)) {
		reply_error(c, "ERR increment or decrement would overflow");
		return;
	}
	int64_t next = cur + by;
	char text[24];
	int n = snprintf(text, sizeof(text), "%" PRId64, next);
	if (put_string(c, c->argv[1], text, (size_t)n, expire_at) == 0)
		reply_integer(c, next);
}

void cmd_incr(struct client *c)
{
	incr_by(c, 1);
}

void cmd_decr(struct client *c)
{
	incr_by(c, -1);
}

void cmd_incrby(struct client *c)
{
	int64_t by;
	if (arg_to_int64(c, c->argv[2], &by) == 0)
		incr_by(c, by);
}

void cmd_decrby(struct client *c)
{
	int64_t by;
	if (arg_to_int64(c, c->argv[2], &by) < 0)
		return;
	if (by == INT64_MIN) {
		reply_error(c, "ERR decrement would overflow");
		return;
	}
	incr_by(c, -by);
}

void cmd_append(struct client *c)
{
	struct store_value v;
	int rc = lookup_string(c, c->argv[1], &v);
	if (rc < 0)
		return;
	struct slice add = c->argv[2];
	if (rc == 0) {
		if (put_string(c, c->argv[1], add.p, add.len, 0) == 0)
			reply_integer(c, (int64_t)add.len);
		return;
	}
	size_t total = v.len + add.len;
	if (total > c->srv->cfg->max_value_bytes) {
		reply_error(c, "ERR string exceeds maximum allowed size (max-value-bytes)");
		return;
	}
	char *joined = sp_malloc(total);
	memcpy(joined, v.data, v.len);
	memcpy(joined + v.len, add.p, add.len);
	if (put_string(c, c->argv[1], joined, total, v.expire_at_ms) == 0)
		reply_integer(c, (int64_t)total);
	free(joined);
}

void cmd_strlen(struct client *c)
{
	struct store_value v;
	int rc = lookup_string(c, c->argv[1], &v);
	if (rc >= 0)
		reply_integer(c, rc > 0 ? (int64_t)v.len : 0);
}

/* ------------------------------------------------------------------ */
/* Expiry                                                               */

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

static void expire_generic(struct client *c, int64_t basetime, int seconds, const char *name)
{
	int flags = 0;
	for (size_t i = 3; i < c->argc; i++) {
		struct slice a = c->argv[i];
		if (arg_equals(a, "nx"))
			flags |= EXP_NX;
		else if (arg_equals(a, "xx"))
			flags |= EXP_XX;
		else if (arg_equals(a, "gt"))
			flags |= EXP_GT;
		else if (arg_equals(a, "lt"))
			flags |= EXP_LT;
		else {
			reply_errorf(c, "ERR Unsupported option %.*s",
				     (int)(a.len > 128 ? 128 : a.len), a.p);
			return;
		}
	}
	if ((flags & EXP_NX) && (flags & (EXP_XX | EXP_GT | EXP_LT))) {
		reply_error(c,
			    "ERR NX and XX, GT or LT options at the same time are not compatible");
		return;
	}
	if ((flags & EXP_GT) && (flags & EXP_LT)) {
		reply_error(c, "ERR GT and LT options at the same time are not compatible");
		return;
	}
	int64_t when;
	if (arg_to_int64(c, c->argv[2], &when) < 0)
		return;
	if (seconds) {
		if (when > INT64_MAX / 1000 || when < INT64_MIN / 1000) {
			reply_errorf(c, "ERR invalid expire time in '%s' command", name);
			return;
		}
		when *= 1000;
	}
	if (when > INT64_MAX - basetime) {
		reply_errorf(c, "ERR invalid expire time in '%s' command", name);
		return;
	}
	when += basetime;

	struct slice key = c->argv[1];
	struct store_value v;
	uint64_t now = now_ms(c);
	int rc = store_get(c->srv->store, key.p, key.len, now, &v);
	if (rc == SP_ERR_NOTFOUND || rc == SP_ERR_KEYLEN) {
		reply_integer(c, 0);
		return;
	}
	if (rc < 0) {
		reply_store_error(c, rc);
		return;
	}
	int has = v.expire_at_ms != 0;
	int64_t cur = (int64_t)v.expire_at_ms;
	if (((flags & EXP_NX) && has) || ((flags & EXP_XX) && !has) ||
	    ((flags & EXP_GT) && (!has || when <= cur)) ||
	    ((flags & EXP_LT) && has && when >= cur)) {
		reply_integer(c, 0);
		return;
	}
	if (when <= (int64_t)now)
		rc = store_del(c->srv->store, key.p, key.len, now);
	else
		rc = store_set_expire(c->srv->store, key.p, key.len, (uint64_t)when, now);
	if (rc < 0)
		reply_store_error(c, rc);
	else
		reply_integer(c, 1);
}

void cmd_expire(struct client *c)
{
	expire_generic(c, (int64_t)now_ms(c), 1, "expire");
}

void cmd_pexpire(struct client *c)
{
	expire_generic(c, (int64_t)now_ms(c), 0, "pexpire");
}

void cmd_expireat(struct client *c)
{
	expire_generic(c, 0, 1, "expireat");
}

void cmd_pexpireat(struct client *c)
{
	expire_generic(c, 0, 0, "pexpireat");
}

/* ttl_generic: TTL/PTTL (time left) and EXPIRETIME/PEXPIRETIME (absolute
 * Unix time); -2 for a missing key, -1 for one without expiry. */
static void ttl_generic(struct client *c, int seconds, int absolute)
{
	struct store_value v;
	uint64_t now = now_ms(c);
	int rc = store_get(c->srv->store, c->argv[1].p, c->argv[1].len, now, &v);
	if (rc == SP_ERR_NOTFOUND || rc == SP_ERR_KEYLEN) {
		reply_integer(c, -2);
		return;
	}
	if (rc < 0) {
		reply_store_error(c, rc);
		return;
	}
	if (v.expire_at_ms == 0) {
		reply_integer(c, -1);
		return;
	}
	if (absolute) {
		reply_integer(c, (int64_t)(seconds ? v.expire_at_ms / 1000 : v.expire_at_ms));
		return;
	}
	int64_t left = (int64_t)(v.expire_at_ms - now);
	reply_integer(c, seconds ? (left + 500) / 1000 : left);
}

void cmd_ttl(struct client *c)
{
	ttl_generic(c, 1, 0);
}

void cmd_pttl(struct client *c)
{
	ttl_generic(c, 0, 0);
}

void cmd_expiretime(struct client *c)
{
	ttl_generic(c, 1, 1);
}

void cmd_pexpiretime(struct client *c)
{
	ttl_generic(c, 0, 1);
}

void cmd_persist(struct client *c)
{
	struct store_value v;
	uint64_t now = now_ms(c);
	struct slice key = c->argv[1];
	int rc = store_get(c->srv->store, key.p, key.len, now, &v);
	if (rc == SP_ERR_NOTFOUND || rc == SP_ERR_KEYLEN || (rc == 0 && v.expire_at_ms == 0)) {
		reply_integer(c, 0);
		return;
	}
	if (rc == 0)
		rc = store_set_expire(c->srv->store, key.p, key.len, 0, now);
	if (rc < 0)
		reply_store_error(c, rc);
	else
		reply_integer(c, 1);
}

static const char *type_name(uint8_t type)
{
	switch (type) {
	case STORE_STRING:
		return "string";
	case STORE_MODEL:
		return "model";
	default:
		return "unknown";
	}
}

void cmd_type(struct client *c)
{
	struct store_value v;
	int rc = store_get(c->srv->store, c->argv[1].p, c->argv[1].len, now_ms(c), &v);
	if (rc == SP_ERR_NOTFOUND || rc == SP_ERR_KEYLEN)
		reply_simple(c, "none");
	else if (rc < 0)
		reply_store_error(c, rc);
	else
		reply_simple(c, type_name(v.type));
}

/* ------------------------------------------------------------------ */
/* Iteration                                                            */

int glob_match(const char *pat, size_t plen, const char *s, size_t slen)
{
	if (plen == 1 && pat[0] == '*')
		return 1;
	if (memchr(pat, '\0', plen) || memchr(s, '\0', slen))
		return 0;
	char pbuf[256], sbuf[512];
	char *p = plen < sizeof(pbuf) ? pbuf : sp_malloc(plen + 1);
	char *k = slen < sizeof(sbuf) ? sbuf : sp_malloc(slen + 1);
	memcpy(p, pat, plen);
	p[plen] = '\0';
	memcpy(k, s, slen);
	k[slen] = '\0';
	int m = fnmatch(p, k, 0) == 0;
	if (p != pbuf)
		free(p);
	if (k != sbuf)
		free(k);
	return m;
}

struct scan_ctx {
	struct slice match;
	struct slice type;
	int has_match, has_type;
	struct sp_buf keys; /* matching keys, as RESP bulk strings */
	size_t nkeys;
	char last[1024]; /* the last key visited, where the next call resumes */
	size_t last_len;
};

static int scan_visit(void *arg, const void *key, size_t klen, const struct store_value *v)
{
	struct scan_ctx *sc = arg;
	if (klen <= sizeof(sc->last)) {
		memcpy(sc->last, key, klen);
		sc->last_len = klen;
	}
	if (sc->has_type && !arg_equals(sc->type, type_name(v->type)))
		return 0;
	if (sc->has_match && !glob_match(sc->match.p, sc->match.len, key, klen))
		return 0;
	resp_write_bulk(&sc->keys, key, klen);
	sc->nkeys++;
	return 0;
}

void cmd_scan(struct client *c)
{
	struct server *srv = c->srv;
	struct slice cur = c->argv[1];
	uint64_t id = 0;
	int64_t signed_id;
	/* Cursors are unsigned decimal numbers; 0 starts a new iteration. */
	if (!sp_parse_int64(cur.p, cur.len, &signed_id) || signed_id < 0) {
		reply_error(c, "ERR invalid cursor");
		return;
	}
	id = (uint64_t)signed_id;
	struct scan_ctx sc;
	memset(&sc, 0, sizeof(sc));
	int64_t count = 10;
	for (size_t i = 2; i < c->argc; i += 2) {
		if (i + 1 >= c->argc) {
			reply_syntax_error(c);
			return;
		}
		struct slice a = c->argv[i], v = c->argv[i + 1];
		if (arg_equals(a, "count")) {
			if (arg_to_int64(c, v, &count) < 0)
				return;
			if (count < 1) {
				reply_syntax_error(c);
				return;
			}
		} else if (arg_equals(a, "match")) {
			sc.match = v;
			sc.has_match = 1;
		} else if (arg_equals(a, "type")) {
			sc.type = v;
			sc.has_type = 1;
		} else {
			reply_syntax_error(c);
			return;
		}
	}
	const void *after = NULL;
	size_t after_len = 0;
	if (id != 0) {
		struct scan_cursor *sl = &srv->cursors[id % SCAN_CURSORS];
		if (sl->id != id) {
			reply_error(c,
				    "ERR invalid cursor (unknown or expired; start again from 0)");
			return;
		}
		after = sl->key;
		after_len = sl->len;
	}
	sp_buf_init(&sc.keys);
	int more = 0;
	int n = store_scan(srv->store, after, after_len, (size_t)count, server_now_ms(srv),
			   scan_visit, &sc, &more);
	if (n < 0) {
		sp_buf_free(&sc.keys);
		reply_store_error(c, n);
		return;
	}
	char next[24] = "0";
	if (more && n > 0) {
		uint64_t nid = srv->next_cursor++;
		struct scan_cursor *sl = &srv->cursors[nid % SCAN_CURSORS];
		free(sl->key);
		sl->id = nid;
		sl->key = sp_memdup(sc.last, sc.last_len);
		sl->len = sc.last_len;
		snprintf(next, sizeof(next), "%" PRIu64, nid);
	}
	reply_array(c, 2);
	reply_bulk_str(c, next);
	reply_array(c, sc.nkeys);
	sp_buf_append(&c->out, sp_buf_begin(&sc.keys), sc.keys.len);
	sp_buf_free(&sc.keys);
}

void cmd_keys(struct client *c)
{
	struct scan_ctx sc;
	memset(&sc, 0, sizeof(sc));
	sc.match = c->argv[1];
	sc.has_match = 1;
	sp_buf_init(&sc.keys);
	int more = 0;
	int n = store_scan(c->srv->store, NULL, 0, SIZE_MAX, server_now_ms(c->srv), scan_visit, &sc,
			   &more);
	if (n < 0) {
		sp_buf_free(&sc.keys);
		reply_store_error(c, n);
		return;
	}
	reply_array(c, sc.nkeys);
	sp_buf_append(&c->out, sp_buf_begin(&sc.keys), sc.keys.len);
	sp_buf_free(&sc.keys);
}

int live_key_counts(struct server *srv, uint64_t *keys, uint64_t *expires)
{
	struct store_stats st;
	store_get_stats(srv->store, &st);
	uint64_t dead = 0;
	int rc = store_count_expired(srv->store, server_now_ms(srv), st.keys, &dead);
	if (rc < 0)
		return rc;
	*keys = st.keys - dead;
	*expires = st.expires - dead;
	return 0;
}

void cmd_dbsize(struct client *c)
{
	/* Live keys: Redis deletes an expired key when a command touches it,
	 * so its count drops then; here reads stay reads (no write, no sync
	 * to wait for) and the count leaves out expired keys instead. */
	uint64_t keys, expires;
	int rc = live_key_counts(c->srv, &keys, &expires);
	if (rc < 0)
		reply_store_error(c, rc);
	else
		reply_integer(c, (int64_t)keys);
}

void cmd_flushall(struct client *c)
{
	if (c->argc > 2 ||
	    (c->argc == 2 && !arg_equals(c->argv[1], "async") && !arg_equals(c->argv[1], "sync"))) {
		reply_syntax_error(c);
		return;
	}
	int rc = store_flush(c->srv->store);
	if (rc < 0) {
		reply_store_error(c, rc);
		return;
	}
	reply_ok(c);
}
