/*
 * bench_tmpl: a parsed op template, shared by the drivers of `spectra bench`
 * (bench_resp.h, bench_http.h).
 *
 * A template is one or more commands separated by ';', each a list of words
 * separated by blanks (spaces and tabs). A word may hold placeholders: {key}
 * (the op's key, in decimal), {value} (value_size bytes of filler) and
 * {rand} (a random u32, in decimal). Braces around any other name (letters,
 * digits, '_') are an error; other braces are literal. Parsing cuts each word
 * into pieces (literal text and placeholders) and counts its fixed bytes and
 * its {key}s and {rand}s, so a driver knows how long a word will be as soon
 * as it has formatted the op's key and rand, before writing a byte of it.
 *
 * This module knows no verbs and no wire format: what a command means and
 * how it is sent are the driver's. Pure: no I/O, no globals; it allocates
 * while parsing only, never per op.
 */
#ifndef SP_TOOLS_BENCH_TMPL_H
#define SP_TOOLS_BENCH_TMPL_H

#include <stddef.h>
#include <stdint.h>

#include "bench_driver.h"

#define BENCH_TMPL_U64_DIGITS 20 /* decimal digits of the largest uint64_t */
#define BENCH_TMPL_U32_DIGITS 10 /* ... and of the largest uint32_t */

enum bench_tmpl_piece_kind {
	BENCH_TMPL_TEXT,
	BENCH_TMPL_KEY,
	BENCH_TMPL_VALUE,
	BENCH_TMPL_RAND,
};

struct bench_tmpl_piece {
	enum bench_tmpl_piece_kind kind;
	size_t off, len; /* BENCH_TMPL_TEXT: bytes text[off .. off+len) */
};

struct bench_tmpl_word {
	size_t src_off, src_len; /* the word as written: text[src_off .. +src_len) */
	size_t first, n;	 /* pieces[first .. first+n), n >= 1 */
	size_t fixed;		 /* bytes of text and value */
	unsigned nkey, nrand;	 /* placeholders whose length varies */
};

struct bench_tmpl_command {
	size_t first, n; /* words[first .. first+n), n >= 1 */
};

struct bench_tmpl {
	char *text; /* owned copy of the template; pieces and words point into it */
	struct bench_tmpl_piece *pieces;
	size_t npieces, pieces_cap;
	struct bench_tmpl_word *words;
	size_t nwords, words_cap;
	struct bench_tmpl_command *cmds;
	size_t ncmds, cmds_cap;
	char *value; /* owned: value_size bytes of filler, the same for every driver */
	size_t value_size;
};

/* An op's {key} and {rand} in decimal, formatted once per op. */
struct bench_tmpl_vars {
	char key[BENCH_TMPL_U64_DIGITS];
	size_t key_len;
	char rand[BENCH_TMPL_U32_DIGITS];
	size_t rand_len;
};

/*
 * bench_tmpl_parse parses text into t for value_size-byte values, cutting it
 * into commands, words and pieces. check, when not NULL, is called on each
 * command as soon as it is parsed (cmd is its index in t->cmds, arg is passed
 * through), so that a driver's own errors come in template order with the
 * parser's; a negative return from it stops the parse and is returned.
 *
 * Returns 0, or SP_ERR_INVAL with a message in err (errlen bytes,
 * NUL-terminated, starting with err_prefix) for an empty template or command
 * or an unknown placeholder, or check's error. text and err_prefix are
 * borrowed; t owns what it holds until bench_tmpl_free. On failure t holds
 * nothing.
 */
int bench_tmpl_parse(struct bench_tmpl *t, const char *text, size_t value_size,
		     const char *err_prefix,
		     int (*check)(void *arg, const struct bench_tmpl *t, size_t cmd, char *err,
				  size_t errlen),
		     void *arg, char *err, size_t errlen);

/* bench_tmpl_free releases what t holds and leaves it empty; NULL is ok, and
 * so is a t that holds nothing. */
void bench_tmpl_free(struct bench_tmpl *t);

/* bench_tmpl_dec writes v in decimal at dst (no NUL), which must have room
 * for its digits (at most BENCH_TMPL_U64_DIGITS), and returns their count. */
size_t bench_tmpl_dec(char *dst, uint64_t v);

/* bench_tmpl_vars_format formats vars (borrowed) into out. */
void bench_tmpl_vars_format(struct bench_tmpl_vars *out, const struct bench_vars *vars);

/* bench_tmpl_word_max_len returns the most bytes word w can take. */
size_t bench_tmpl_word_max_len(const struct bench_tmpl_word *w);

/* bench_tmpl_word_len returns how many bytes word w takes with a key
 * key_len digits long and a rand rand_len digits long. Inline, as it is
 * called for every word of every request. */
static inline size_t bench_tmpl_word_len(const struct bench_tmpl_word *w, size_t key_len,
					 size_t rand_len)
{
	return w->fixed + w->nkey * key_len + w->nrand * rand_len;
}

/*
 * bench_tmpl_piece_bytes returns the bytes piece pc of t stands for, with
 * vars substituted, and sets *len to their length. The bytes are borrowed
 * from t (text and value) or vars: valid while both are. Inline, because a
 * driver calls it for every piece of every request.
 */
static inline const char *bench_tmpl_piece_bytes(const struct bench_tmpl *t,
						 const struct bench_tmpl_piece *pc,
						 const struct bench_tmpl_vars *vars, size_t *len)
{
	switch (pc->kind) {
	case BENCH_TMPL_KEY:
		*len = vars->key_len;
		return vars->key;
	case BENCH_TMPL_RAND:
		*len = vars->rand_len;
		return vars->rand;
	case BENCH_TMPL_VALUE:
		*len = t->value_size;
		return t->value;
	case BENCH_TMPL_TEXT:
	default:
		*len = pc->len;
		return t->text + pc->off;
	}
}

#endif
