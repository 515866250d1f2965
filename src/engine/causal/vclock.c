/*
 * vclock: vector clocks; see vclock.h for the model and the encodings.
 *
 * Entries are kept sorted by node so that get is a binary search and
 * merge, compare and covers are one linear walk over both clocks.
 */
#include "engine/causal/vclock.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "common/err.h"

#define TOKEN_PREFIX	 "v1."
#define TOKEN_PREFIX_LEN 3

void vclock_init(struct vclock *v)
{
	v->n = 0;
}

/* lower_bound returns the index of the first entry whose node is >= node
 * (v->n when there is none). */
static uint32_t lower_bound(const struct vclock *v, uint64_t node)
{
	uint32_t lo = 0, hi = v->n;
	assert(v->n <= VCLOCK_MAX);
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (v->e[mid].node < node)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t vclock_get(const struct vclock *v, uint64_t node)
{
	uint32_t i = lower_bound(v, node);
	return i < v->n && v->e[i].node == node ? v->e[i].count : 0;
}

int vclock_set(struct vclock *v, uint64_t node, uint64_t count)
{
	if (node == 0)
		return SP_ERR_INVAL;
	uint32_t i = lower_bound(v, node);
	bool present = i < v->n && v->e[i].node == node;
	if (present) {
		if (count > 0) {
			v->e[i].count = count;
		} else {
			memmove(&v->e[i], &v->e[i + 1], (v->n - i - 1) * sizeof(v->e[0]));
			v->n--;
		}
		return 0;
	}
	if (count == 0)
		return 0;
	if (v->n == VCLOCK_MAX)
		return SP_ERR_FULL;
	memmove(&v->e[i + 1], &v->e[i], (v->n - i) * sizeof(v->e[0]));
	v->e[i].node = node;
	v->e[i].count = count;
	v->n++;
	return 0;
}

int vclock_increment(struct vclock *v, uint64_t node, uint64_t *out)
{
	if (node == 0)
		return SP_ERR_INVAL;
	uint64_t c = vclock_get(v, node);
	if (c == UINT64_MAX)
		return SP_ERR_RANGE;
	int rc = vclock_set(v, node, c + 1);
	if (rc != 0)
		return rc;
	if (out)
		*out = c + 1;
	return 0;
}

int vclock_merge(struct vclock *into, const struct vclock *other)
{
	/* Built aside so that a result that does not fit leaves into as it
	 * was, and so that into == other is harmless. */
	struct vclock r;
	uint32_t i = 0, j = 0;
	assert(into->n <= VCLOCK_MAX && other->n <= VCLOCK_MAX);
	r.n = 0;
	while (i < into->n || j < other->n) {
		struct vclock_entry x;
		if (j == other->n || (i < into->n && into->e[i].node < other->e[j].node)) {
			x = into->e[i++];
		} else if (i == into->n || other->e[j].node < into->e[i].node) {
			x = other->e[j++];
		} else {
			x = into->e[i];
			if (other->e[j].count > x.count)
				x.count = other->e[j].count;
			i++;
			j++;
		}
		if (r.n == VCLOCK_MAX)
			return SP_ERR_FULL;
		r.e[r.n++] = x;
	}
	into->n = r.n;
	memcpy(into->e, r.e, r.n * sizeof(r.e[0]));
	return 0;
}

enum vclock_order vclock_compare(const struct vclock *a, const struct vclock *b)
{
	/* a_more: some node counts more in a than in b; b_more likewise. */
	bool a_more = false, b_more = false;
	uint32_t i = 0, j = 0;
	assert(a->n <= VCLOCK_MAX && b->n <= VCLOCK_MAX);
	while (i < a->n || j < b->n) {
		if (j == b->n || (i < a->n && a->e[i].node < b->e[j].node)) {
			a_more = true; /* absent in b, count > 0 in a */
			i++;
		} else if (i == a->n || b->e[j].node < a->e[i].node) {
			b_more = true;
			j++;
		} else {
			if (a->e[i].count > b->e[j].count)
				a_more = true;
			else if (a->e[i].count < b->e[j].count)
				b_more = true;
			i++;
			j++;
		}
		if (a_more && b_more)
			return VCLOCK_CONCURRENT;
	}
	if (a_more)
		return VCLOCK_AFTER;
	return b_more ? VCLOCK_BEFORE : VCLOCK_EQUAL;
}

bool vclock_covers(const struct vclock *a, const struct vclock *b)
{
	uint32_t i = 0;
	assert(a->n <= VCLOCK_MAX && b->n <= VCLOCK_MAX);
	for (uint32_t j = 0; j < b->n; j++) {
		while (i < a->n && a->e[i].node < b->e[j].node)
			i++;
		if (i == a->n || a->e[i].node != b->e[j].node || a->e[i].count < b->e[j].count)
			return false;
	}
	return true;
}

const char *vclock_order_name(enum vclock_order o)
{
	switch (o) {
	case VCLOCK_EQUAL:
		return "equal";
	case VCLOCK_BEFORE:
		return "before";
	case VCLOCK_AFTER:
		return "after";
	case VCLOCK_CONCURRENT:
		return "concurrent";
	}
	return "invalid";
}

/* put_varint writes x as unsigned LEB128 into p (room for 10 bytes) and
 * returns the number of bytes written. */
static size_t put_varint(uint8_t *p, uint64_t x)
{
	size_t k = 0;
	while (x >= 0x80) {
		p[k++] = (uint8_t)(x | 0x80);
		x >>= 7;
	}
	p[k++] = (uint8_t)x;
	return k;
}

/* get_varint reads one canonical varint from p[*pos..len) into *x and
 * advances *pos. Refuses truncation, more than 64 bits, and a final group
 * of 0 after the first byte (the same value fits in fewer bytes). */
static int get_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *x)
{
	uint64_t v = 0;
	for (unsigned k = 0; k < 10; k++) {
		if (*pos == len)
			return SP_ERR_PROTO;
		uint8_t b = p[(*pos)++];
		/* The 10th byte holds bit 63 only. */
		if (k == 9 && b > 1)
			return SP_ERR_PROTO;
		v |= (uint64_t)(b & 0x7f) << (7 * k);
		if (!(b & 0x80)) {
			if (b == 0 && k > 0)
				return SP_ERR_PROTO;
			*x = v;
			return 0;
		}
	}
	return SP_ERR_PROTO; /* unreachable: the 10th byte has no high bit */
}

/* encode writes v's encoding into p (room for VCLOCK_ENCODED_MAX bytes)
 * and returns its length. */
static size_t encode(const struct vclock *v, uint8_t *p)
{
	size_t k = 0;
	uint64_t prev = 0;
	assert(v->n <= VCLOCK_MAX);
	k += put_varint(p + k, v->n);
	for (uint32_t i = 0; i < v->n; i++) {
		k += put_varint(p + k, v->e[i].node - prev);
		k += put_varint(p + k, v->e[i].count);
		prev = v->e[i].node;
	}
	return k;
}

void vclock_encode(const struct vclock *v, struct sp_buf *out)
{
	uint8_t tmp[VCLOCK_ENCODED_MAX];
	sp_buf_append(out, tmp, encode(v, tmp));
}

int vclock_decode(const uint8_t *p, size_t len, struct vclock *out, size_t *used)
{
	struct vclock r;
	size_t pos = 0;
	uint64_t n, prev = 0;
	if (get_varint(p, len, &pos, &n) != 0 || n > VCLOCK_MAX)
		return SP_ERR_PROTO;
	r.n = (uint32_t)n;
	for (uint32_t i = 0; i < r.n; i++) {
		uint64_t delta, count;
		if (get_varint(p, len, &pos, &delta) != 0 || get_varint(p, len, &pos, &count) != 0)
			return SP_ERR_PROTO;
		/* A zero delta is node 0 first, a repeated node after. */
		if (delta == 0 || count == 0 || delta > UINT64_MAX - prev)
			return SP_ERR_PROTO;
		prev += delta;
		r.e[i].node = prev;
		r.e[i].count = count;
	}
	out->n = r.n;
	memcpy(out->e, r.e, r.n * sizeof(r.e[0]));
	if (used)
		*used = pos;
	return 0;
}

static const char hex_digits[] = "0123456789abcdef";

void vclock_to_token(const struct vclock *v, struct sp_buf *out)
{
	uint8_t enc[VCLOCK_ENCODED_MAX];
	size_t n = encode(v, enc);
	char text[TOKEN_PREFIX_LEN + 2 * VCLOCK_ENCODED_MAX];
	size_t k = TOKEN_PREFIX_LEN;
	memcpy(text, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
	for (size_t i = 0; i < n; i++) {
		text[k++] = hex_digits[enc[i] >> 4];
		text[k++] = hex_digits[enc[i] & 0xf];
	}
	sp_buf_append(out, text, k);
}

/* hex_value returns c's value as a lowercase hex digit, -1 otherwise
 * (uppercase too: a token has one spelling). */
static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int vclock_from_token(const char *s, size_t len, struct vclock *out)
{
	uint8_t bytes[VCLOCK_ENCODED_MAX];
	if (len < TOKEN_PREFIX_LEN || memcmp(s, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0)
		return SP_ERR_PROTO;
	size_t digits = len - TOKEN_PREFIX_LEN;
	if (digits % 2 != 0 || digits / 2 > sizeof(bytes))
		return SP_ERR_PROTO;
	size_t nbytes = digits / 2;
	for (size_t i = 0; i < nbytes; i++) {
		int hi = hex_value(s[TOKEN_PREFIX_LEN + 2 * i]);
		int lo = hex_value(s[TOKEN_PREFIX_LEN + 2 * i + 1]);
		if (hi < 0 || lo < 0)
			return SP_ERR_PROTO;
		bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	struct vclock r;
	size_t used;
	if (vclock_decode(bytes, nbytes, &r, &used) != 0 || used != nbytes)
		return SP_ERR_PROTO;
	out->n = r.n;
	memcpy(out->e, r.e, r.n * sizeof(r.e[0]));
	return 0;
}

void vclock_format(const struct vclock *v, struct sp_buf *out)
{
	assert(v->n <= VCLOCK_MAX);
	sp_buf_put_u8(out, '{');
	for (uint32_t i = 0; i < v->n; i++)
		sp_buf_appendf(out, "%s%" PRIu64 ":%" PRIu64, i ? "," : "", v->e[i].node,
			       v->e[i].count);
	sp_buf_put_u8(out, '}');
}
