/*
 * client: one client connection, from accept to close.
 *
 * Reads bytes into the query buffer, parses and runs every complete
 * command in it, and keeps the replies in order in the output buffer
 * (replies that come later, from Raft, wait in reply slots: route.c).
 * Output is handed to the socket at the end of each loop iteration
 * (durability.c). A client whose pending output passes
 * max-output-buffer stops being read until it drains, so a client that
 * pipelines without reading cannot make the node grow without bound.
 */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "server/route.h"
#include "server/cmd.h"
#include "server/server.h"

static const char max_clients_msg[] = "-ERR max number of clients reached\r\n";

static void on_close(uv_handle_t *h)
{
	struct client *c = h->data;
	sp_buf_free(&c->query);
	sp_buf_free(&c->out);
	sp_buf_free(&c->wbuf);
	resp_request_parser_close(&c->parser);
	free(c->argv);
	free(c->name);
	free(c->lib_name);
	free(c->lib_ver);
	causal_client_gone(c);
	free(c);
}

void client_close(struct client *c)
{
	struct server *srv = c->srv;
	if (c->flags & CLIENT_CLOSING)
		return;
	c->flags |= CLIENT_CLOSING;
	route_client_gone(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nclients--;
	/* A client still on srv->pending stays linked there until the end of
	 * this iteration's flush, which skips closing clients; its memory is
	 * freed only in on_close, after that flush has run. */
	uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *c = h->data;
	(void)suggested;
	size_t want = 16 * 1024;
	/* A large bulk in progress: read it in bigger pieces. */
	if (c->parser.bulk_len > (int64_t)want)
		want = c->parser.bulk_len > (1 << 20) ? (1 << 20) : (size_t)c->parser.bulk_len;
	sp_buf_reserve(&c->query, want);
	buf->base = sp_buf_end(&c->query);
	buf->len = c->query.cap - c->query.start - c->query.len;
}

static void pause_reading(struct client *c)
{
	if (c->flags & CLIENT_READING) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->flags &= ~CLIENT_READING;
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void resume_reading(struct client *c)
{
	if (c->flags & (CLIENT_READING | CLIENT_CLOSING | CLIENT_CLOSE_AFTER_REPLY))
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
		c->flags |= CLIENT_READING;
}

static size_t pending_output(const struct client *c)
{
	return c->out.len + c->wbuf.len + c->slot_bytes;
}

static void protocol_error(struct client *c, const char *msg)
{
	struct server *srv = c->srv;
	srv->stats.protocol_errors++;
	sp_info("client %llu (%s): protocol error: %s", (unsigned long long)c->id, c->addr, msg);
	size_t mark = route_capture_begin(c);
	reply_errorf(c, "ERR Protocol error: %s", msg);
	route_capture_end(c, mark);
	c->flags |= CLIENT_CLOSE_AFTER_REPLY;
	pause_reading(c);
}

void client_process_input(struct client *c)
{
	struct server *srv = c->srv;
	while (c->query.len > 0 &&
	       !(c->flags & (CLIENT_CLOSING | CLIENT_CLOSE_AFTER_REPLY | CLIENT_READ_PAUSED))) {
		if (c->nslots >= ROUTE_MAX_SLOTS ||
		    (c->nslots && pending_output(c) > srv->cfg->max_output_buffer)) {
			/* Enough replies pending: the rest waits (durability.c
			 * resumes it as they drain). */
			c->flags |= CLIENT_STALLED;
			break;
		}
		size_t consumed = 0;
		struct resp_error err = {NULL};
		const char *base = sp_buf_begin(&c->query);
		int rc = resp_parse_request(&c->parser, base, c->query.len, &consumed, &err);
		if (rc == SP_ERR_AGAIN)
			break;
		if (rc < 0) {
			protocol_error(c, err.msg ? err.msg : "malformed request");
			break;
		}
		if (c->parser.argc > 0) {
			if (c->parser.argc > c->argv_cap) {
				c->argv_cap = c->parser.argc < 16 ? 16 : c->parser.argc;
				free(c->argv);
				c->argv = sp_malloc(c->argv_cap * sizeof(*c->argv));
			}
			for (size_t i = 0; i < c->parser.argc; i++) {
				c->argv[i].p = resp_arg_ptr(&c->parser, base, i);
				c->argv[i].len = c->parser.args[i].len;
			}
			c->argc = c->parser.argc;
			command_execute(c);
			c->argc = 0;
		}
		sp_buf_consume(&c->query, consumed);
		if (pending_output(c) > srv->cfg->max_output_buffer) {
			c->flags |= CLIENT_READ_PAUSED;
			pause_reading(c);
		}
	}
	if (c->query.len > srv->cfg->max_query_buffer && !(c->flags & CLIENT_CLOSE_AFTER_REPLY))
		protocol_error(c, "query buffer exceeds max-query-buffer");
	client_mark_pending(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = s->data;
	(void)buf;
	if (nread < 0) {
		if (nread != UV_EOF)
			sp_debug("client %llu: read: %s", (unsigned long long)c->id,
				 uv_strerror((int)nread));
		client_close(c);
		return;
	}
	if (nread == 0)
		return;
	sp_buf_commit(&c->query, (size_t)nread);
	c->srv->stats.net_in += (uint64_t)nread;
	server_tick(c->srv);
	c->last_active_ms = server_now_ms(c->srv);
	client_process_input(c);
}

void client_mark_pending(struct client *c)
{
	if (c->flags & (CLIENT_PENDING | CLIENT_CLOSING))
		return;
	c->flags |= CLIENT_PENDING;
	c->pending_next = c->srv->pending;
	c->srv->pending = c;
}

static void on_write(uv_write_t *req, int status);

/* start_write hands n bytes from the front of out to the socket: as many as
 * the kernel takes now, and the rest through uv_write from wbuf. */
static int start_write(struct client *c, size_t n)
{
	uv_buf_t b = uv_buf_init(sp_buf_begin(&c->out), (unsigned)n);
	int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (w == UV_EAGAIN || w == UV_ENOSYS)
		w = 0;
	if (w < 0)
		return w;
	sp_buf_consume(&c->out, (size_t)w);
	c->out_taken += (uint64_t)w;
	c->srv->stats.net_out += (uint64_t)w;
	size_t rest = n - (size_t)w;
	if (rest == 0)
		return 0;
	sp_buf_append(&c->wbuf, sp_buf_begin(&c->out), rest);
	sp_buf_consume(&c->out, rest);
	c->out_taken += rest;
	b = uv_buf_init(sp_buf_begin(&c->wbuf), (unsigned)c->wbuf.len);
	int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc < 0)
		return rc;
	c->writing = 1;
	return 0;
}

void client_flush(struct client *c)
{
	if (c->flags & CLIENT_CLOSING)
		return;
	if (c->writing)
		return; /* on_write flushes again */
	size_t n = c->out.len;
	while (n > 0) {
		/* uv_buf_t lengths are unsigned int: write huge replies in parts. */
		size_t part = n > (1u << 30) ? (1u << 30) : n;
		int rc = start_write(c, part);
		if (rc < 0) {
			sp_debug("client %llu: write: %s", (unsigned long long)c->id,
				 uv_strerror(rc));
			client_close(c);
			return;
		}
		n -= part;
		if (c->writing)
			break;
	}
	if (!c->writing && c->out.len == 0 && c->nslots == 0 &&
	    (c->flags & CLIENT_CLOSE_AFTER_REPLY)) {
		client_close(c);
		return;
	}
	if ((c->flags & CLIENT_READ_PAUSED) &&
	    pending_output(c) <= c->srv->cfg->max_output_buffer / 2) {
		c->flags &= ~CLIENT_READ_PAUSED;
		resume_reading(c);
		server_tick(c->srv);
		client_process_input(c);
	}
}

static void on_write(uv_write_t *req, int status)
{
	struct client *c = req->handle->data;
	c->writing = 0;
	if (status < 0) {
		if (!(c->flags & CLIENT_CLOSING))
			client_close(c);
		return;
	}
	c->srv->stats.net_out += c->wbuf.len;
	sp_buf_clear(&c->wbuf);
	client_flush(c);
}

static void format_addr(struct client *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char host[48] = "?";
	int port = 0;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			uv_ip4_name(a, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			uv_ip6_name(a, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(c->addr, sizeof(c->addr), "%s:%d", host, port);
}

static void on_reject_close(uv_handle_t *h)
{
	free(h);
}

void client_accept(struct server *srv)
{
	if (srv->nclients >= srv->cfg->maxclients) {
		/* Accept and answer, so the client learns why, then close. */
		uv_tcp_t *t = sp_malloc(sizeof(*t));
		uv_tcp_init(srv->loop, t);
		if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)t) == 0) {
			uv_buf_t b =
			    uv_buf_init((char *)max_clients_msg, sizeof(max_clients_msg) - 1);
			uv_try_write((uv_stream_t *)t, &b, 1);
		}
		srv->stats.rejected++;
		uv_close((uv_handle_t *)t, on_reject_close);
		return;
	}
	struct client *c = sp_calloc(1, sizeof(*c));
	c->srv = srv;
	uv_tcp_init(srv->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->tcp) != 0) {
		uv_close((uv_handle_t *)&c->tcp, on_close);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->id = ++srv->next_client_id;
	c->proto = 2;
	if (srv->cfg->requirepass[0] == '\0')
		c->flags |= CLIENT_AUTHED;
	c->created_ms = c->last_active_ms = server_now_ms(srv);
	sp_buf_init(&c->query);
	sp_buf_init(&c->out);
	sp_buf_init(&c->wbuf);
	sp_buf_init(&c->multi);
	resp_request_parser_init(&c->parser, &srv->limits);
	format_addr(c);
	c->next = srv->clients;
	if (srv->clients)
		srv->clients->prev = c;
	srv->clients = c;
	srv->nclients++;
	srv->stats.connections++;
	resume_reading(c);
}
