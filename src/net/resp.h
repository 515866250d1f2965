/*
 * resp: the RESP2/RESP3 codec (Redis serialization protocol).
 *
 * Pure: no I/O, no clock, no globals. Three parts:
 *
 *  - the request parser, for the server side: reads one client command,
 *    either a multibulk array of bulk strings ("*2\r\n$3\r\nGET\r\n...") or
 *    an inline command ("GET key\r\n"), incrementally from arbitrary chunk
 *    boundaries, with enforced limits. Arguments are returned as offsets into
 *    the caller's buffer, so nothing is copied;
 *  - the value reader, for the client side (CLI, tests, later peer relays):
 *    parses any RESP2/RESP3 value into a tree, incrementally, without
 *    rescanning bytes it has already parsed;
 *  - the writer: appends RESP replies to an sp_buf, choosing the RESP2 or
 *    RESP3 form of maps, sets, nulls, booleans, doubles and verbatim
 *    strings by protocol version.
 *
 * Spec: RESP3 specification (github.com/redis/redis-specifications,
 * protocol/RESP3.md) and the RESP2 section of the Redis protocol docs.
 */
#ifndef SP_NET_RESP_H
#define SP_NET_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* ---------------------------------------------------------------------- */
/* Request parser                                                          */

struct resp_limits {
	uint64_t max_bulk_len;	 /* largest bulk string argument, bytes */
	uint64_t max_args;	 /* largest multibulk argument count */
	uint64_t max_inline_len; /* longest inline command line, bytes before
				  * its "\n" (a "\r" counts), however it arrives */
};

/* One argument: bytes buf[off .. off+len) of the buffer passed to
 * resp_parse_request, counted from the start of the request. */
struct resp_arg {
	size_t off;
	size_t len;
};

struct resp_request_parser {
	struct resp_limits limits;
	/* Filled when a request is complete. args is owned by the parser and
	 * valid until the next resp_parse_request or resp_request_parser_close. */
	struct resp_arg *args;
	size_t argc;
	int is_inline; /* 1 when the complete request was an inline command */
	/* Private progress state (valid between RESP_AGAIN returns). */
	size_t args_cap;
	size_t pos; /* bytes of this request parsed so far */
	int state;
	int64_t nargs;	   /* expected argument count (multibulk) */
	int64_t bulk_len;  /* length of the bulk being read, -1 if none */
	size_t scan;	   /* where the search for the current line's end resumes */
	char *inline_buf;  /* owned: the last inline command's unquoted arguments */
	size_t inline_cap; /* bytes allocated at inline_buf */
};

/* Error detail returned with SP_ERR_PROTO / SP_ERR_TOOBIG: a static string
 * worded as Redis words it, without the "ERR Protocol error: " prefix
 * (e.g. "invalid multibulk length", "invalid bulk length",
 * "expected '$', got 'x'", "too big inline request", "unbalanced quotes in
 * request"). */
struct resp_error {
	const char *msg;
};

void resp_request_parser_init(struct resp_request_parser *p, const struct resp_limits *limits);
void resp_request_parser_close(struct resp_request_parser *p);

/*
 * resp_parse_request parses the request that starts at buf[0]. buf holds
 * every unconsumed byte the client sent: the bytes given to an earlier call
 * that returned SP_ERR_AGAIN, unchanged, followed by any new bytes. The
 * parser resumes where it stopped and never rescans.
 *
 * Returns:
 *   0               a request is complete: p->args[0..p->argc) locate its
 *                   arguments in buf; *consumed is its size in bytes. The
 *                   caller drops those bytes and calls again for the next.
 *                   An empty inline line or "*0\r\n" yields argc == 0, which
 *                   the caller skips (Redis ignores these).
 *   SP_ERR_AGAIN    incomplete; *consumed is 0.
 *   SP_ERR_PROTO    malformed input; err->msg says why. The connection
 *                   should be answered "-ERR Protocol error: <msg>" and closed.
 *   SP_ERR_TOOBIG   a limit was exceeded; err->msg says which ("invalid bulk
 *                   length", "invalid multibulk length", "too big inline
 *                   request"); handled as SP_ERR_PROTO.
 * As in Redis 7, a "*<n>" or "$<len>" line longer than 64KB is SP_ERR_PROTO
 * "too big mbulk count string" / "too big bulk count string", and a count
 * n <= 0 is an empty request. Unlike Redis, the parser checks the "\r\n"
 * after a header and after bulk data ("bulk data not followed by CRLF").
 * Every outcome depends only on the bytes, never on how they were chunked.
 * Inline commands split as Redis's sdssplitargs does (blanks between
 * arguments, "double" quotes with \n, \r, \t, \b, \a, \\, \", \xHH escapes,
 * 'single' quotes with \'; a closing quote must be followed by a blank),
 * except that a NUL byte is ordinary data. For an inline request, args
 * offsets point into a copy held by the parser (quotes change bytes), so use
 * resp_arg_ptr to read them.
 */
int resp_parse_request(struct resp_request_parser *p, const char *buf, size_t len, size_t *consumed,
		       struct resp_error *err);

/* resp_arg_ptr returns the first byte of argument i of the request just
 * parsed from buf (borrowed from buf or from the parser, as above). */
const char *resp_arg_ptr(const struct resp_request_parser *p, const char *buf, size_t i);

/* ---------------------------------------------------------------------- */
/* Values and the value reader                                             */

enum resp_type {
	RESP_SIMPLE = '+', /* simple string */
	RESP_ERROR = '-',  /* simple error */
	RESP_INTEGER = ':',
	RESP_BULK = '$', /* bulk string */
	RESP_ARRAY = '*',
	RESP_NULL = '_', /* RESP3 null; also RESP2 "$-1" and "*-1" */
	RESP_BOOL = '#',
	RESP_DOUBLE = ',',
	RESP_BIGNUM = '(',
	RESP_BLOBERR = '!', /* bulk error */
	RESP_VERBATIM = '=',
	RESP_MAP = '%',
	RESP_SET = '~',
	RESP_ATTR = '|', /* attribute: a map that precedes a reply */
	RESP_PUSH = '>',
};

struct resp_value {
	enum resp_type type;
	/* RESP_SIMPLE, ERROR, BULK, BLOBERR, VERBATIM (str includes the
	 * "txt:" prefix), BIGNUM (decimal digits), DOUBLE (its text as sent):
	 * str is NUL-terminated and owned by the value. */
	char *str;
	size_t len;
	int64_t integer; /* RESP_INTEGER; RESP_BOOL (0 or 1) */
	double dbl;	 /* RESP_DOUBLE, parsed from str ("inf", "-inf", "nan") */
	/* RESP_ARRAY, SET, PUSH: n elements. RESP_MAP, ATTR: n pairs stored as
	 * 2n elements, key then value. Owned by the value. */
	struct resp_value *elems;
	size_t n;
	/* Attribute that preceded this value (RESP3), or NULL. Owned. */
	struct resp_value *attr;
};

/* resp_value_free releases everything v owns (not v itself). NULL is ok. */
void resp_value_free(struct resp_value *v);
/* resp_value_equal compares two trees structurally (types, bytes, counts,
 * attributes). Doubles compare by their text when both have one, else by
 * value with NaN equal to NaN. */
int resp_value_equal(const struct resp_value *a, const struct resp_value *b);

struct resp_reader_limits {
	uint64_t max_bulk_len; /* largest string, bytes */
	uint64_t max_elems;    /* largest aggregate count */
	uint32_t max_depth;    /* deepest nesting of aggregates */
};

struct resp_reader {
	struct resp_reader_limits limits;
	/* Private: input not yet parsed and a stack of partly built aggregates. */
	struct sp_buf in;
	void *stack;
	size_t depth, stack_cap;
	size_t scan; /* bytes of in already examined for the current token */
	struct resp_value *pending_attr;
	int64_t bulk_len;	  /* length of the string being read, -1 if none */
	enum resp_type bulk_type; /* its type ($, ! or =) */
};

void resp_reader_init(struct resp_reader *r, const struct resp_reader_limits *limits);
void resp_reader_close(struct resp_reader *r);
/* resp_reader_feed copies n bytes into the reader. */
void resp_reader_feed(struct resp_reader *r, const void *data, size_t n);
/*
 * resp_reader_next takes the next complete value, if any.
 * Returns 0 and fills *out (owned by the caller, release with
 * resp_value_free), SP_ERR_AGAIN when more bytes are needed, or
 * SP_ERR_PROTO / SP_ERR_TOOBIG with err->msg when the input is malformed or
 * over a limit; after an error the reader must be closed.
 * Limits: strings and every line (simple strings, numbers) are at most
 * max_bulk_len bytes; aggregates at most max_elems entries (pairs for maps
 * and attributes) and max_depth deep (attributes and empty aggregates count).
 * Rejected with SP_ERR_PROTO: streamed strings and aggregates ("$?", ";",
 * "."), an attribute directly followed by another one, and any line or
 * number RESP3 does not allow.
 */
int resp_reader_next(struct resp_reader *r, struct resp_value *out, struct resp_error *err);

/* ---------------------------------------------------------------------- */
/* Writer                                                                  */

/* Protocol version of the connection a reply is for: 2 or 3. */
void resp_write_simple(struct sp_buf *b, const char *s); /* +s */
/* resp_write_error writes "-msg\r\n"; msg starts with its code ("ERR ...",
 * "WRONGTYPE ..."). CR and LF in msg are replaced by spaces. */
void resp_write_error(struct sp_buf *b, const char *msg);
void resp_write_errorf(struct sp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void resp_write_integer(struct sp_buf *b, int64_t v);
void resp_write_bulk(struct sp_buf *b, const void *p, size_t len);
void resp_write_bulk_str(struct sp_buf *b, const char *s);
void resp_write_bulk_int(struct sp_buf *b, int64_t v);	 /* integer as bulk text */
void resp_write_null(struct sp_buf *b, int proto);	 /* _ or $-1 */
void resp_write_null_array(struct sp_buf *b, int proto); /* _ or *-1 */
void resp_write_array_len(struct sp_buf *b, size_t n);
void resp_write_map_len(struct sp_buf *b, size_t pairs, int proto); /* % or *2n */
void resp_write_set_len(struct sp_buf *b, size_t n, int proto);	    /* ~ or * */
void resp_write_bool(struct sp_buf *b, int v, int proto);	    /* # or :1/:0 */
void resp_write_double(struct sp_buf *b, double v, int proto);	    /* , or bulk */
/* Verbatim string: RESP3 "=len\r\ntxt:..." with a 3-letter format; RESP2 a
 * bulk string of the text alone. */
void resp_write_verbatim(struct sp_buf *b, const char *fmt3, const void *p, size_t len, int proto);
/* resp_write_value serialises a value tree exactly (RESP3 forms; used for
 * relaying and by the round-trip tests). A double with str is written as that
 * text. An attribute must not carry an attribute of its own (the reader
 * rejects two in a row). */
void resp_write_value(struct sp_buf *b, const struct resp_value *v);

#endif
