/*
 * reply: the server's reply helpers. Each appends one RESP reply (or the
 * header of an aggregate) to the client's output in the form of the
 * client's protocol version, and counts output bytes. Error replies are
 * counted in the server's stats.
 */
#include <stdarg.h>
#include <stdio.h>

#include "common/err.h"
#include "common/log.h"
#include "server/server.h"

void reply_ok(struct client *c)
{
	sp_buf_append(&c->out, "+OK\r\n", 5);
}

void reply_simple(struct client *c, const char *s)
{
	resp_write_simple(&c->out, s);
}

void reply_error(struct client *c, const char *msg)
{
	c->srv->stats.errors++;
	resp_write_error(&c->out, msg);
}

void reply_errorf(struct client *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_error(c, msg);
}

void reply_integer(struct client *c, int64_t v)
{
	resp_write_integer(&c->out, v);
}

void reply_bulk(struct client *c, const void *p, size_t len)
{
	resp_write_bulk(&c->out, p, len);
}

void reply_bulk_str(struct client *c, const char *s)
{
	resp_write_bulk_str(&c->out, s);
}

void reply_null(struct client *c)
{
	resp_write_null(&c->out, c->proto);
}

void reply_null_array(struct client *c)
{
	resp_write_null_array(&c->out, c->proto);
}

void reply_array(struct client *c, size_t n)
{
	resp_write_array_len(&c->out, n);
}

void reply_map(struct client *c, size_t pairs)
{
	resp_write_map_len(&c->out, pairs, c->proto);
}

void reply_verbatim(struct client *c, const char *text, size_t len)
{
	resp_write_verbatim(&c->out, "txt", text, len, c->proto);
}

void reply_arity_error(struct client *c)
{
	reply_errorf(c, "ERR wrong number of arguments for '%s' command", c->cmd->name);
}

void reply_syntax_error(struct client *c)
{
	reply_error(c, "ERR syntax error");
}

void reply_store_error(struct client *c, int err)
{
	switch (err) {
	case SP_ERR_KEYLEN:
		reply_errorf(c, "ERR key too long (the longest key is %zu bytes)",
			     c->srv->max_key_len);
		return;
	case SP_ERR_FULL:
		reply_error(c, "OOM command not allowed: the store is full (raise map-size)");
		return;
	case SP_ERR_CORRUPT:
		sp_error("store: corrupt value read for client %llu", (unsigned long long)c->id);
		reply_error(c, "ERR stored value is corrupt; see the node's log");
		return;
	default:
		reply_errorf(c, "ERR storage error: %s", sp_strerror(err));
		return;
	}
}
