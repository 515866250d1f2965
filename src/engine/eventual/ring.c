/*
 * ring: consistent hashing with virtual nodes. See ring.h for the token
 * rule and the definition of ranges.
 *
 * The ring is kept as one array of (token, node id) pairs sorted by token
 * then id, plus one entry per distinct token value (the ranges) naming the
 * first pair with that value. A walk starts at that pair and steps through
 * the array, wrapping, collecting ids it has not met yet; since every node
 * owns at least one pair, a walk that wants at most ring_nodes() ids always
 * finds them within one turn.
 */
#include "engine/eventual/ring.h"

#include <assert.h>
#include <stdlib.h>
#include <xxhash.h>

#include "common/alloc.h"
#include "common/endian.h"
#include "common/err.h"

struct ring_token {
	uint64_t token;
	uint64_t id;
};

struct ring {
	size_t nnodes;		   /* distinct node ids */
	size_t ntokens;		   /* entries of tokens[] */
	struct ring_token *tokens; /* sorted by (token, id), no duplicate pairs */
	size_t nranges;		   /* distinct token values */
	uint64_t *range_token;	   /* range i ends at range_token[i], ascending */
	size_t *range_first;	   /* index in tokens[] of range i's first pair */
};

static int cmp_token(const void *a, const void *b)
{
	const struct ring_token *x = a, *y = b;
	if (x->token != y->token)
		return x->token < y->token ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* count_distinct_ids counts the distinct ids among the pairs, with a sorted
 * copy of them (ids repeat once per token). */
static size_t count_distinct_ids(const struct ring_token *t, size_t m)
{
	uint64_t *ids = sp_malloc(m * sizeof(*ids));
	for (size_t k = 0; k < m; k++)
		ids[k] = t[k].id;
	qsort(ids, m, sizeof(*ids), cmp_u64);
	size_t n = 0;
	for (size_t k = 0; k < m; k++)
		if (k == 0 || ids[k] != ids[k - 1])
			n++;
	free(ids);
	return n;
}

/* finish sorts the pairs (taking ownership of them), drops repeated pairs
 * and indexes the ranges. */
static struct ring *finish(struct ring_token *t, size_t m)
{
	qsort(t, m, sizeof(*t), cmp_token);
	size_t kept = 0;
	for (size_t k = 0; k < m; k++)
		if (kept == 0 || cmp_token(&t[kept - 1], &t[k]) != 0)
			t[kept++] = t[k];
	m = kept;

	struct ring *r = sp_calloc(1, sizeof(*r));
	r->tokens = t;
	r->ntokens = m;
	r->nnodes = count_distinct_ids(t, m);
	r->range_token = sp_malloc(m * sizeof(*r->range_token));
	r->range_first = sp_malloc(m * sizeof(*r->range_first));
	for (size_t k = 0; k < m; k++) {
		if (r->nranges > 0 && r->range_token[r->nranges - 1] == t[k].token)
			continue;
		r->range_token[r->nranges] = t[k].token;
		r->range_first[r->nranges] = k;
		r->nranges++;
	}
	return r;
}

int ring_build(struct ring **out, const uint64_t *ids, size_t n, unsigned vnodes)
{
	*out = NULL;
	if (n == 0 || vnodes == 0 || n > SIZE_MAX / sizeof(struct ring_token) / vnodes)
		return SP_ERR_INVAL;

	uint64_t *sorted = sp_malloc(n * sizeof(*sorted));
	for (size_t k = 0; k < n; k++)
		sorted[k] = ids[k];
	qsort(sorted, n, sizeof(*sorted), cmp_u64);
	for (size_t k = 0; k < n; k++) {
		if (sorted[k] == 0 || (k > 0 && sorted[k] == sorted[k - 1])) {
			free(sorted);
			return SP_ERR_INVAL;
		}
	}
	free(sorted);

	size_t m = n * vnodes;
	struct ring_token *t = sp_malloc(m * sizeof(*t));
	for (size_t k = 0; k < n; k++) {
		uint8_t le[8];
		sp_put_le64(le, ids[k]);
		for (unsigned j = 0; j < vnodes; j++) {
			t[k * vnodes + j].token = XXH3_64bits_withSeed(le, sizeof(le), (uint64_t)j);
			t[k * vnodes + j].id = ids[k];
		}
	}
	*out = finish(t, m);
	return 0;
}

int ring__build_tokens(struct ring **out, const uint64_t *tokens, const uint64_t *owners, size_t m)
{
	*out = NULL;
	if (m == 0 || m > SIZE_MAX / sizeof(struct ring_token))
		return SP_ERR_INVAL;
	for (size_t k = 0; k < m; k++)
		if (owners[k] == 0)
			return SP_ERR_INVAL;
	struct ring_token *t = sp_malloc(m * sizeof(*t));
	for (size_t k = 0; k < m; k++) {
		t[k].token = tokens[k];
		t[k].id = owners[k];
	}
	*out = finish(t, m);
	return 0;
}

void ring_free(struct ring *r)
{
	if (!r)
		return;
	free(r->range_first);
	free(r->range_token);
	free(r->tokens);
	free(r);
}

uint64_t ring_key_hash(const void *key, size_t len)
{
	return XXH3_64bits(key, len);
}

size_t ring_nodes(const struct ring *r)
{
	return r->nnodes;
}

size_t ring_nranges(const struct ring *r)
{
	return r->nranges;
}

size_t ring_range_of(const struct ring *r, uint64_t hash)
{
	/* The first range whose token is >= hash; past the top token the
	 * walk wraps to range 0. */
	size_t lo = 0, hi = r->nranges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->range_token[mid] < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == r->nranges ? 0 : lo;
}

uint64_t ring_range_token(const struct ring *r, size_t i)
{
	assert(i < r->nranges);
	return r->range_token[i];
}

int ring_range_find(const struct ring *r, uint64_t t, size_t *i)
{
	size_t k = ring_range_of(r, t);
	if (r->range_token[k] != t)
		return SP_ERR_NOTFOUND;
	*i = k;
	return 0;
}

static int seen(const uint64_t *out, size_t n, uint64_t id)
{
	for (size_t k = 0; k < n; k++)
		if (out[k] == id)
			return 1;
	return 0;
}

size_t ring_range_walk(const struct ring *r, size_t i, unsigned want, uint64_t *out)
{
	assert(i < r->nranges);
	size_t limit = want < r->nnodes ? want : r->nnodes;
	size_t n = 0, pos = r->range_first[i];
	for (size_t step = 0; n < limit && step < r->ntokens; step++) {
		uint64_t id = r->tokens[pos].id;
		if (!seen(out, n, id))
			out[n++] = id;
		if (++pos == r->ntokens)
			pos = 0;
	}
	/* One full turn meets every node. */
	assert(n == limit);
	return n;
}

size_t ring_walk(const struct ring *r, uint64_t hash, unsigned want, uint64_t *out)
{
	return ring_range_walk(r, ring_range_of(r, hash), want, out);
}
