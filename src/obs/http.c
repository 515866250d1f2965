/*
 * http: libmicrohttpd driven by the node's libuv loop (see http.h).
 *
 * The daemon runs in "external select" mode with epoll: it keeps its
 * listening socket and connections in an epoll set of its own, whose one
 * descriptor the loop polls. When it is readable, or when the daemon's
 * own timeout (idle connections) comes, MHD_run does the work, and the
 * timer is set again from MHD_get_timeout.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "obs/http.h"

/* Connections at once and how long one may idle: a dashboard or two and
 * a scraper need few, and a stuck client must not hold one for long. */
#define HTTP_MAX_CONNECTIONS 64
#define HTTP_IDLE_TIMEOUT_S  10

struct http_server {
	struct MHD_Daemon *daemon;
	uv_poll_t poll;
	uv_timer_t timer;
	int open_handles; /* closes still to come before h is freed */
	http_handler_fn fn;
	void *ctx;
	uint16_t port;
};

static void run_daemon(struct http_server *h);

static void on_poll(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	run_daemon(p->data);
}

static void on_timer(uv_timer_t *t)
{
	run_daemon(t->data);
}

/* run_daemon lets the daemon do what is ready, then arms the timer for
 * its next deadline (none: the poll alone wakes it). */
static void run_daemon(struct http_server *h)
{
	MHD_run(h->daemon);
	MHD_UNSIGNED_LONG_LONG ms = 0;
	if (MHD_get_timeout(h->daemon, &ms) == MHD_YES)
		uv_timer_start(&h->timer, on_timer, ms, 0);
	else
		uv_timer_stop(&h->timer);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	(void)version;
	(void)upload_data;
	(void)con_cls;
	struct http_server *h = cls;
	struct http_response r = {.status = MHD_HTTP_OK,
				  .content_type = "text/plain; charset=utf-8"};
	sp_buf_init(&r.body);
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
		r.status = MHD_HTTP_METHOD_NOT_ALLOWED;
		sp_buf_append_str(&r.body, "only GET and HEAD are served here\n");
		*upload_data_size = 0;
	} else {
		h->fn(h->ctx, url, &r);
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    r.body.len, r.body.len ? sp_buf_begin(&r.body) : (void *)"", MHD_RESPMEM_MUST_COPY);
	sp_buf_free(&r.body);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (r.status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[256];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	sp_warn("http: %s", msg);
}

int http_server_start(struct http_server **out, uv_loop_t *loop, const char *bind, uint16_t port,
		      http_handler_fn fn, void *ctx)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, bind, &sa.sin_addr) != 1) {
		sp_error("http: '%s' is not an IPv4 address", bind);
		return SP_ERR_INVAL;
	}
	struct http_server *h = sp_calloc(1, sizeof(*h));
	h->fn = fn;
	h->ctx = ctx;
	/* The logger first: libmicrohttpd logs the options after it. */
	h->daemon = MHD_start_daemon(
	    MHD_USE_EPOLL | MHD_USE_ERROR_LOG, port, NULL, NULL, answer, h,
	    MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S, MHD_OPTION_END);
	if (!h->daemon) {
		sp_error("http: cannot listen on %s:%u (is the port taken?)", bind, port);
		free(h);
		return SP_ERR_IO;
	}
	const union MHD_DaemonInfo *fd = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	const union MHD_DaemonInfo *pi = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = pi ? pi->port : port;
	int rc = fd ? uv_poll_init(loop, &h->poll, fd->epoll_fd) : UV_EINVAL;
	if (rc) {
		sp_error("http: cannot poll the daemon: %s", uv_strerror(rc));
		MHD_stop_daemon(h->daemon);
		free(h);
		return SP_ERR_IO;
	}
	uv_timer_init(loop, &h->timer);
	h->poll.data = h;
	h->timer.data = h;
	h->open_handles = 2;
	uv_poll_start(&h->poll, UV_READABLE, on_poll);
	run_daemon(h);
	*out = h;
	return 0;
}

uint16_t http_server_port(const struct http_server *h)
{
	return h->port;
}

static void on_closed(uv_handle_t *handle)
{
	struct http_server *h = handle->data;
	if (--h->open_handles > 0)
		return;
	/* Only now: the poll no longer watches the daemon's epoll descriptor,
	 * which stopping the daemon closes. */
	MHD_stop_daemon(h->daemon);
	free(h);
}

void http_server_stop(struct http_server *h)
{
	if (!h)
		return;
	uv_close((uv_handle_t *)&h->poll, on_closed);
	uv_close((uv_handle_t *)&h->timer, on_closed);
}
