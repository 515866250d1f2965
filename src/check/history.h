/*
 * history: the file format of recorded histories, between the tools that
 * write them (`spectra chaos`) and the checker that reads them (`spectra
 * check`, src/check/linearizable.h).
 *
 * A history is JSON lines: one object per operation, for example
 *
 *   {"process":3,"op":"read","key":"k1","value":"v1","invoke":1200,
 *    "complete":1350,"result":"ok"}
 *
 * (on one line). The fields:
 *  - "process": the client that issued the op, an integer >= 0.
 *  - "op": "read", "write", "cas" or "delete".
 *  - "key": a string.
 *  - "value": for a write, the string written; for a read whose result
 *    is "ok", the string read, or null when the key was absent. A read
 *    that failed or whose outcome is unknown saw nothing to rely on: its
 *    "value" is not needed, and ignored.
 *  - "expected", "new": for a cas, the value it compares with and the
 *    value it sets, each a string or null (absent).
 *  - "invoke", "complete": when the op was called and when it returned,
 *    integers in [0, 2^63) on one clock (microseconds, any origin), with
 *    complete >= invoke. "complete" may be null or left out when the
 *    result is "info".
 *  - "result": "ok"; "fail", the op certainly did not take effect (for a
 *    cas: its compare was unequal, or it never ran); or "info", the
 *    outcome is unknown (a timeout, a lost connection).
 * Two more fields are read only when asked for (history_parse_ex with
 * HISTORY_SESSIONS, as the causal checker does, src/check/causal.h):
 *  - "session": the client session the op belongs to, a string (null or
 *    absent: none, the process is the session).
 *  - "node": the node that served the op, an integer >= 0 (null or
 *    absent: unknown).
 * Other fields are ignored, so writers may add their own. Strings are
 * JSON strings and may hold any character JSON can escape, \u0000
 * included; the bytes the checker compares are their UTF-8.
 *
 * This module parses and formats that text and nothing else: no I/O (the
 * caller reads the file and writes the lines), no clock, no globals.
 */
#ifndef SP_CHECK_HISTORY_H
#define SP_CHECK_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "check/linearizable.h"
#include "common/buf.h"

struct history_chunk;

/*
 * A history in memory: ops[0..n) in the order parsed or added, ready for
 * lin_check. Every key and value an op points to is owned by the history.
 * line[i] is the line of the text ops[i] was parsed from (1-based, as
 * counted in the history_parse call that read it), or 0 for an op added
 * with history_add. session[i] and node[i] are ops[i]'s "session" and
 * "node" when it was parsed with HISTORY_SESSIONS and had them, else a
 * nil value and -1. The other fields are the module's own.
 */
struct history {
	struct lin_op *ops;
	size_t n;
	size_t *line;
	struct lin_value *session;
	int64_t *node;
	size_t cap;		      /* private: slots in ops and line */
	struct history_chunk *chunks; /* private: the owned bytes */
};

/* history_init makes h an empty history. */
void history_init(struct history *h);

/*
 * history_parse appends the ops of `len` bytes of JSON lines to h. Lines
 * end in "\n" (a "\r" before it is dropped); the last one may end without
 * it; lines of only blanks are skipped. text need not be NUL-terminated
 * and is borrowed for the call: h copies what it keeps.
 *
 * Returns 0, or SP_ERR_INVAL when a line is not an op as the header above
 * describes: not JSON, not an object, a field missing or of the wrong
 * type, an unknown "op" or "result", a time that is not an integer in
 * range, complete < invoke. Then err (errlen bytes, always
 * NUL-terminated when errlen > 0; may be NULL) says "line N: why", and h
 * is as it was before the call.
 */
int history_parse(struct history *h, const char *text, size_t len, char *err, size_t errlen);

/* Flags of history_parse_ex. */
enum history_parse_flags {
	/* Read "session" and "node" into h->session and h->node, and refuse
	 * a line where they are present but of the wrong type. */
	HISTORY_SESSIONS = 1,
};

/*
 * history_parse_ex is history_parse with flags (enum
 * history_parse_flags, or-ed; 0 is history_parse). Its errors and
 * ownership are history_parse's; with HISTORY_SESSIONS a "session" that
 * is not a string or null, or a "node" that is not an integer in
 * [0, 2^63) or null, is also SP_ERR_INVAL, with the line named.
 */
int history_parse_ex(struct history *h, const char *text, size_t len, unsigned flags, char *err,
		     size_t errlen);

/*
 * history_add appends a copy of op, with its key and the values its kind
 * uses, to h. Returns 0, or SP_ERR_INVAL when op is not one lin_check
 * accepts (kind or outcome out of range, call > ret for an op whose
 * outcome is known, a NULL pointer with a non-zero length); h is then
 * unchanged. op and what it points to are borrowed for the call. Memory
 * is not a failure here: spectra aborts when it runs out (common/alloc).
 */
int history_add(struct history *h, const struct lin_op *op);

/* history_free releases everything h owns and leaves it empty, as after
 * history_init; h may be NULL. */
void history_free(struct history *h);

/*
 * history_format_op appends op to out as one JSON line, ending in "\n",
 * that history_parse reads back as the same op. The exceptions: an op
 * whose outcome is LIN_UNKNOWN and whose ret is before its call or is
 * UINT64_MAX gets "complete":null (ret then reads back as UINT64_MAX);
 * times of 2^63 or more are written but not read back; and bytes of a
 * key or value that are not valid UTF-8 are written as \u00XX escapes of
 * their Latin-1 reading, so they read back as other bytes. Fields the
 * op's kind and outcome do not use (a read's result unless LIN_OK) are
 * not written, and read back nil. op is borrowed for the call.
 */
void history_format_op(const struct lin_op *op, struct sp_buf *out);

/* history_op_name and history_result_name return the format's word for
 * a kind ("read", ...) and an outcome ("ok", "fail", "info"), or "?" for
 * a value out of range (static strings). */
const char *history_op_name(enum lin_kind kind);
const char *history_result_name(enum lin_outcome outcome);

#endif
