/*
 * pncounter.c: the positive-negative counter (Shapiro et al. 2011,
 * Specification 7): two G-Counters, P for increments and N for
 * decrements; the value is P - N and merge is the G-Counter merge of each
 * half. The halves are stored side by side, one entry per actor (u64 actor
 * | u64 p | u64 n), actors strictly ascending, p and n in [0, INT64_MAX]
 * and not both 0.
 */
#include "crdt/crdt.h"

#include "crdt/crdt_int.h"

#define ENTRY 24

int crdt__pncounter_check(const uint8_t *s, size_t len)
{
	if (len % ENTRY != 0)
		return SP_ERR_CORRUPT;
	uint64_t prev = 0;
	for (size_t off = 0; off < len; off += ENTRY) {
		uint64_t actor = sp_get_le64(s + off);
		uint64_t p = sp_get_le64(s + off + 8), n = sp_get_le64(s + off + 16);
		if (actor <= prev || p > INT64_MAX || n > INT64_MAX || (p == 0 && n == 0))
			return SP_ERR_CORRUPT;
		prev = actor;
	}
	return 0;
}

/* half_sum sums one half (at byte `at` of each entry) of a checked state;
 * *over is set when the sum passes INT64_MAX (it stops there, so cannot
 * wrap). */
static uint64_t half_sum(const uint8_t *s, size_t len, size_t at, bool *over)
{
	uint64_t sum = 0;
	*over = false;
	for (size_t off = 0; off < len; off += ENTRY) {
		sum += sp_get_le64(s + off + at);
		if (sum > INT64_MAX) {
			*over = true;
			break;
		}
	}
	return sum;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

int crdt__pncounter_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
			  struct sp_buf *out)
{
	if (crdt__pncounter_check(a, alen) < 0 || crdt__pncounter_check(b, blen) < 0)
		return SP_ERR_CORRUPT;
	size_t i = 0, j = 0;
	while (i < alen || j < blen) {
		int c = i == alen   ? 1
			: j == blen ? -1
				    : crdt__cmp_u64(sp_get_le64(a + i), sp_get_le64(b + j));
		if (c < 0) {
			sp_buf_append(out, a + i, ENTRY);
			i += ENTRY;
		} else if (c > 0) {
			sp_buf_append(out, b + j, ENTRY);
			j += ENTRY;
		} else {
			sp_buf_put_le64(out, sp_get_le64(a + i));
			sp_buf_put_le64(out,
					max_u64(sp_get_le64(a + i + 8), sp_get_le64(b + j + 8)));
			sp_buf_put_le64(out,
					max_u64(sp_get_le64(a + i + 16), sp_get_le64(b + j + 16)));
			i += ENTRY;
			j += ENTRY;
		}
	}
	return 0;
}

int crdt_pncounter_add(const uint8_t *s, size_t len, uint64_t actor, int64_t delta,
		       struct sp_buf *out)
{
	s = crdt__nn(s);
	if (actor == 0)
		return SP_ERR_INVAL;
	if (crdt__pncounter_check(s, len) < 0)
		return SP_ERR_CORRUPT;
	if (delta == INT64_MIN)
		return SP_ERR_RANGE;
	if (delta == 0) {
		sp_buf_append(out, s, len);
		return 0;
	}
	/* The half the delta raises: P at byte 8 of an entry, N at 16. */
	size_t at = delta > 0 ? 8 : 16;
	uint64_t n = delta > 0 ? (uint64_t)delta : (uint64_t)-delta;
	bool over;
	uint64_t sum = half_sum(s, len, at, &over);
	if (over || n > (uint64_t)INT64_MAX - sum)
		return SP_ERR_RANGE;
	size_t off = 0;
	while (off < len && sp_get_le64(s + off) < actor)
		off += ENTRY;
	bool present = off < len && sp_get_le64(s + off) == actor;
	uint64_t halves[2] = {0, 0};
	if (present) {
		halves[0] = sp_get_le64(s + off + 8);
		halves[1] = sp_get_le64(s + off + 16);
	}
	halves[at == 8 ? 0 : 1] += n;
	sp_buf_append(out, s, off);
	sp_buf_put_le64(out, actor);
	sp_buf_put_le64(out, halves[0]);
	sp_buf_put_le64(out, halves[1]);
	size_t rest = off + (present ? ENTRY : 0);
	sp_buf_append(out, s + rest, len - rest);
	return 0;
}

int crdt_pncounter_value(const uint8_t *s, size_t len, int64_t *out)
{
	s = crdt__nn(s);
	if (crdt__pncounter_check(s, len) < 0)
		return SP_ERR_CORRUPT;
	/* Each half is summed in full here (half_sum stops at INT64_MAX):
	 * P - N may fit even when P alone does not. */
	uint64_t p = 0, n = 0;
	for (size_t off = 0; off < len; off += ENTRY) {
		if (__builtin_add_overflow(p, sp_get_le64(s + off + 8), &p) ||
		    __builtin_add_overflow(n, sp_get_le64(s + off + 16), &n))
			return SP_ERR_RANGE;
	}
	if (p >= n) {
		if (p - n > INT64_MAX)
			return SP_ERR_RANGE;
		*out = (int64_t)(p - n);
	} else {
		/* -(n - p) must be >= INT64_MIN, i.e. n - p <= 2^63. */
		uint64_t d = n - p;
		if (d > (uint64_t)INT64_MAX + 1)
			return SP_ERR_RANGE;
		*out = d == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)d;
	}
	return 0;
}

/* describe_half appends "{actor:count,...}" for the non-zero counts of one
 * half. */
static void describe_half(const uint8_t *s, size_t len, size_t at, struct sp_buf *out)
{
	sp_buf_append_str(out, "{");
	size_t shown = 0, total = 0;
	for (size_t off = 0; off < len; off += ENTRY) {
		uint64_t count = sp_get_le64(s + off + at);
		if (count == 0)
			continue;
		total++;
		if (shown == CRDT__DESC_ENTRIES)
			continue;
		sp_buf_appendf(out, "%s%llu:%llu", shown ? "," : "",
			       (unsigned long long)sp_get_le64(s + off), (unsigned long long)count);
		shown++;
	}
	if (total > shown)
		sp_buf_appendf(out, ",...+%zu", total - shown);
	sp_buf_append_str(out, "}");
}

int crdt__pncounter_describe(const uint8_t *s, size_t len, struct sp_buf *out)
{
	sp_buf_append_str(out, "pncounter p=");
	describe_half(s, len, 8, out);
	sp_buf_append_str(out, " n=");
	describe_half(s, len, 16, out);
	return 0;
}
