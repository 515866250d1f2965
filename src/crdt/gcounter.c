/*
 * gcounter.c: the grow-only counter (Shapiro et al. 2011, Specification
 * 6): one count per actor, the value is their sum, and merge takes each
 * actor's maximum. Entries are (u64 actor | u64 count), actors strictly
 * ascending, counts in [1, INT64_MAX]; an actor that never counted has no
 * entry, so equal counters have equal bytes.
 */
#include "crdt/crdt.h"

#include "crdt/crdt_int.h"

#define ENTRY 16

int crdt__gcounter_check(const uint8_t *s, size_t len)
{
	if (len % ENTRY != 0)
		return SP_ERR_CORRUPT;
	uint64_t prev = 0;
	for (size_t off = 0; off < len; off += ENTRY) {
		uint64_t actor = sp_get_le64(s + off), count = sp_get_le64(s + off + 8);
		/* Strictly ascending from 0 also refuses actor 0. */
		if (actor <= prev || count == 0 || count > INT64_MAX)
			return SP_ERR_CORRUPT;
		prev = actor;
	}
	return 0;
}

/* total sums the counts of a checked state; *over is set when the sum
 * passes INT64_MAX (the sum stops growing there, so it cannot wrap: each
 * count is at most INT64_MAX). */
static uint64_t total(const uint8_t *s, size_t len, bool *over)
{
	uint64_t sum = 0;
	*over = false;
	for (size_t off = 0; off < len; off += ENTRY) {
		sum += sp_get_le64(s + off + 8);
		if (sum > INT64_MAX) {
			*over = true;
			break;
		}
	}
	return sum;
}

int crdt__gcounter_merge(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
			 struct sp_buf *out)
{
	if (crdt__gcounter_check(a, alen) < 0 || crdt__gcounter_check(b, blen) < 0)
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
			bool a_wins = sp_get_le64(a + i + 8) >= sp_get_le64(b + j + 8);
			sp_buf_append(out, a_wins ? a + i : b + j, ENTRY);
			i += ENTRY;
			j += ENTRY;
		}
	}
	return 0;
}

int crdt_gcounter_add(const uint8_t *s, size_t len, uint64_t actor, uint64_t n, struct sp_buf *out)
{
	s = crdt__nn(s);
	if (actor == 0)
		return SP_ERR_INVAL;
	if (crdt__gcounter_check(s, len) < 0)
		return SP_ERR_CORRUPT;
	bool over;
	uint64_t sum = total(s, len, &over);
	if (over || n > (uint64_t)INT64_MAX - sum)
		return SP_ERR_RANGE;
	/* The actor's count is part of the sum, so it cannot pass
	 * INT64_MAX either. */
	size_t off = 0;
	while (off < len && sp_get_le64(s + off) < actor)
		off += ENTRY;
	bool present = off < len && sp_get_le64(s + off) == actor;
	if (n == 0) {
		sp_buf_append(out, s, len);
		return 0;
	}
	uint64_t count = (present ? sp_get_le64(s + off + 8) : 0) + n;
	sp_buf_append(out, s, off);
	sp_buf_put_le64(out, actor);
	sp_buf_put_le64(out, count);
	size_t rest = off + (present ? ENTRY : 0);
	sp_buf_append(out, s + rest, len - rest);
	return 0;
}

int crdt_gcounter_value(const uint8_t *s, size_t len, int64_t *out)
{
	s = crdt__nn(s);
	if (crdt__gcounter_check(s, len) < 0)
		return SP_ERR_CORRUPT;
	bool over;
	uint64_t sum = total(s, len, &over);
	if (over)
		return SP_ERR_RANGE;
	*out = (int64_t)sum;
	return 0;
}

int crdt__gcounter_describe(const uint8_t *s, size_t len, struct sp_buf *out)
{
	sp_buf_append_str(out, "gcounter {");
	size_t n = len / ENTRY;
	for (size_t i = 0; i < n; i++) {
		if (i == CRDT__DESC_ENTRIES) {
			sp_buf_appendf(out, ",...+%zu", n - i);
			break;
		}
		const uint8_t *e = s + i * ENTRY;
		sp_buf_appendf(out, "%s%llu:%llu", i ? "," : "", (unsigned long long)sp_get_le64(e),
			       (unsigned long long)sp_get_le64(e + 8));
	}
	sp_buf_append_str(out, "}");
	return 0;
}
