/*
 * http: a node's HTTP endpoint, on the node's own libuv loop.
 *
 * libmicrohttpd (Debian libmicrohttpd-dev) parses HTTP; it runs with no
 * thread of its own, in its epoll mode, and the loop polls its epoll
 * descriptor and calls it when there is work, so every handler runs on
 * the loop's thread and may read the node's state without locks. The
 * endpoint serves only GET and HEAD (405 otherwise); what each path
 * answers is the caller's handler (the server's: /metrics, /status, /).
 *
 * It must not: block the loop (a handler builds its whole answer at
 * once, from memory), or serve anything but what the handler returns.
 */
#ifndef SP_OBS_HTTP_H
#define SP_OBS_HTTP_H

#include <stdint.h>
#include <uv.h>

#include "common/buf.h"

/* What a handler answers: status 200 by default, a content type (a
 * static string) and the body. */
struct http_response {
	int status;
	const char *content_type;
	struct sp_buf body;
};

/* http_handler_fn answers one request. path is the URL's path without
 * its query (borrowed for the call); out arrives with status 200, type
 * "text/plain; charset=utf-8" and an empty body. */
typedef void (*http_handler_fn)(void *ctx, const char *path, struct http_response *out);

struct http_server;

/*
 * http_server_start listens on bind:port (an IPv4 address; port 0 picks
 * a free one, see http_server_port) and serves requests with fn(ctx).
 * loop, fn and ctx are borrowed for the server's life. Returns 0, or
 * SP_ERR_INVAL (a bad address) or SP_ERR_IO (libmicrohttpd could not
 * listen: the port is taken, say), with a message logged.
 */
int http_server_start(struct http_server **out, uv_loop_t *loop, const char *bind, uint16_t port,
		      http_handler_fn fn, void *ctx);

/* http_server_port: the port it listens on. */
uint16_t http_server_port(const struct http_server *h);

/* http_server_stop stops listening, closes its connections and frees h
 * once the loop has closed its handles (so the loop must run on). NULL
 * accepted. */
void http_server_stop(struct http_server *h);

#endif
