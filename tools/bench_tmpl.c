/*
 * bench_tmpl: a parsed op template, shared by the drivers. See bench_tmpl.h.
 *
 * The parser walks the text once: ';' ends a command, a blank ends a word,
 * and within a word every '{' is tried as a placeholder. Literal runs
 * between placeholders become TEXT pieces that point into the owned copy of
 * the text, so nothing is copied per piece.
 */
#include "bench_tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

/* grow makes room for one more element in a growable array. */
static void *grow(void *arr, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return arr;
	*cap = *cap ? *cap * 2 : 8;
	return sp_realloc(arr, *cap * size);
}

/* add_piece appends a piece to the last word of t. */
static void add_piece(struct bench_tmpl *t, enum bench_tmpl_piece_kind kind, size_t off, size_t len)
{
	t->pieces = grow(t->pieces, t->npieces, &t->pieces_cap, sizeof(*t->pieces));
	t->pieces[t->npieces++] = (struct bench_tmpl_piece){kind, off, len};
	struct bench_tmpl_word *w = &t->words[t->nwords - 1];
	w->n++;
	if (kind == BENCH_TMPL_TEXT)
		w->fixed += len;
	else if (kind == BENCH_TMPL_VALUE)
		w->fixed += t->value_size;
	else if (kind == BENCH_TMPL_KEY)
		w->nkey++;
	else
		w->nrand++;
}

static const struct {
	const char *name; /* with its braces */
	enum bench_tmpl_piece_kind kind;
} placeholders[] = {
    {"{key}", BENCH_TMPL_KEY},
    {"{value}", BENCH_TMPL_VALUE},
    {"{rand}", BENCH_TMPL_RAND},
};

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* placeholder_at says whether text[i] starts a placeholder: returns its
 * length and sets *kind, returns 0 for a literal '{', or -1 (with a
 * message in err, after prefix) for braces around an unknown name. */
static long placeholder_at(const char *text, size_t i, size_t end, enum bench_tmpl_piece_kind *kind,
			   const char *prefix, char *err, size_t errlen)
{
	for (size_t p = 0; p < sizeof(placeholders) / sizeof(placeholders[0]); p++) {
		size_t n = strlen(placeholders[p].name);
		if (end - i >= n && memcmp(text + i, placeholders[p].name, n) == 0) {
			*kind = placeholders[p].kind;
			return (long)n;
		}
	}
	size_t j = i + 1;
	while (j < end && is_name_char(text[j]))
		j++;
	if (j > i + 1 && j < end && text[j] == '}') {
		snprintf(err, errlen,
			 "%sunknown placeholder '%.*s' (known: {key}, {value}, {rand})", prefix,
			 (int)(j + 1 - i), text + i);
		return -1;
	}
	return 0;
}

/* parse_word adds the word that starts at text[*i] (not a blank) and ends
 * before the next blank or end, and moves *i past it. */
static int parse_word(struct bench_tmpl *t, size_t *i, size_t end, const char *prefix, char *err,
		      size_t errlen)
{
	const char *text = t->text;
	size_t at = *i, lit = at;
	t->words = grow(t->words, t->nwords, &t->words_cap, sizeof(*t->words));
	t->words[t->nwords++] = (struct bench_tmpl_word){.src_off = at, .first = t->npieces};
	while (at < end && !is_blank(text[at])) {
		enum bench_tmpl_piece_kind kind;
		long n =
		    text[at] == '{' ? placeholder_at(text, at, end, &kind, prefix, err, errlen) : 0;
		if (n < 0)
			return SP_ERR_INVAL;
		if (n == 0) {
			at++;
			continue;
		}
		if (at > lit)
			add_piece(t, BENCH_TMPL_TEXT, lit, at - lit);
		add_piece(t, kind, 0, 0);
		at += (size_t)n;
		lit = at;
	}
	if (at > lit)
		add_piece(t, BENCH_TMPL_TEXT, lit, at - lit);
	t->words[t->nwords - 1].src_len = at - t->words[t->nwords - 1].src_off;
	*i = at;
	return 0;
}

/* parse_command adds the command text[start .. end) to t. */
static int parse_command(struct bench_tmpl *t, size_t start, size_t end, const char *prefix,
			 char *err, size_t errlen)
{
	size_t first = t->nwords, i = start;
	for (;;) {
		while (i < end && is_blank(t->text[i]))
			i++;
		if (i == end)
			break;
		int rc = parse_word(t, &i, end, prefix, err, errlen);
		if (rc < 0)
			return rc;
	}
	if (t->nwords == first) {
		snprintf(err, errlen, "%sempty command in template '%s'", prefix, t->text);
		return SP_ERR_INVAL;
	}
	t->cmds = grow(t->cmds, t->ncmds, &t->cmds_cap, sizeof(*t->cmds));
	t->cmds[t->ncmds++] = (struct bench_tmpl_command){first, t->nwords - first};
	return 0;
}

int bench_tmpl_parse(struct bench_tmpl *t, const char *text, size_t value_size,
		     const char *err_prefix,
		     int (*check)(void *arg, const struct bench_tmpl *t, size_t cmd, char *err,
				  size_t errlen),
		     void *arg, char *err, size_t errlen)
{
	*t = (struct bench_tmpl){.text = sp_strdup(text), .value_size = value_size};
	t->value = sp_malloc(value_size + 1);
	/* Filler that is plainly filler when someone reads a key by hand. */
	for (size_t i = 0; i < value_size; i++)
		t->value[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i % 36];

	size_t len = strlen(text), start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && text[i] != ';')
			continue;
		int rc = parse_command(t, start, i, err_prefix, err, errlen);
		if (rc == 0 && check)
			rc = check(arg, t, t->ncmds - 1, err, errlen);
		if (rc < 0) {
			bench_tmpl_free(t);
			return rc;
		}
		start = i + 1;
	}
	return 0;
}

void bench_tmpl_free(struct bench_tmpl *t)
{
	if (!t)
		return;
	free(t->text);
	free(t->pieces);
	free(t->words);
	free(t->cmds);
	free(t->value);
	*t = (struct bench_tmpl){0};
}

size_t bench_tmpl_dec(char *dst, uint64_t v)
{
	char tmp[BENCH_TMPL_U64_DIGITS];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

void bench_tmpl_vars_format(struct bench_tmpl_vars *out, const struct bench_vars *vars)
{
	out->key_len = bench_tmpl_dec(out->key, vars->key);
	out->rand_len = bench_tmpl_dec(out->rand, vars->rand);
}

size_t bench_tmpl_word_max_len(const struct bench_tmpl_word *w)
{
	return bench_tmpl_word_len(w, BENCH_TMPL_U64_DIGITS, BENCH_TMPL_U32_DIGITS);
}
