/*
 * chaos_plan: the pure decisions of `spectra chaos`. See chaos_plan.h.
 */
#include "chaos_plan.h"

#include "common/err.h"

#include <string.h>

uint64_t chaos_rand(uint64_t *state)
{
	/* splitmix64 (Steele, Lea & Flood 2014), as tests/lib uses. */
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t chaos_rand_below(uint64_t *state, uint64_t n)
{
	return n ? chaos_rand(state) % n : 0;
}

int chaos_popcount(uint64_t set)
{
	return __builtin_popcountll(set);
}

/* all_nodes is the set of nodes 0..n-1. */
static uint64_t all_nodes(size_t n)
{
	return n >= 64 ? UINT64_MAX : (1ull << n) - 1;
}

/* ---- the workload ------------------------------------------------------ */

enum lin_kind chaos_pick_op(uint64_t *rng, bool can_cas)
{
	uint64_t r = chaos_rand_below(rng, 100);
	if (r < 30)
		return LIN_WRITE;
	if (r < 50 && can_cas)
		return LIN_CAS;
	return LIN_READ;
}

/* error_is says whether an error reply's first word is `code`. */
static bool error_is(const struct chaos_reply *reply, const char *code)
{
	size_t n = strlen(code);
	return reply->str && reply->len >= n && memcmp(reply->str, code, n) == 0 &&
	       (reply->len == n || reply->str[n] == ' ');
}

bool chaos_reply_expected(enum lin_kind kind, const struct chaos_reply *reply)
{
	switch (reply->type) {
	case CHAOS_REPLY_NONE:
	case CHAOS_REPLY_ERROR:
		return true;
	case CHAOS_REPLY_STRING:
	case CHAOS_REPLY_NIL:
		return kind == LIN_READ;
	case CHAOS_REPLY_STATUS:
		return kind == LIN_WRITE && reply->len == 2 && memcmp(reply->str, "OK", 2) == 0;
	case CHAOS_REPLY_INTEGER:
		return (kind == LIN_CAS || kind == LIN_DELETE) &&
		       (reply->integer == 0 || reply->integer == 1);
	case CHAOS_REPLY_OTHER:
		return false;
	}
	return false;
}

enum lin_outcome chaos_classify(enum lin_kind kind, const struct chaos_reply *reply)
{
	if (reply->type == CHAOS_REPLY_NONE)
		return LIN_UNKNOWN;
	if (reply->type == CHAOS_REPLY_ERROR)
		return error_is(reply, "UNKNOWN") ? LIN_UNKNOWN : LIN_FAIL;
	if (!chaos_reply_expected(kind, reply))
		return LIN_UNKNOWN;
	if (kind == LIN_CAS)
		return reply->integer == 1 ? LIN_OK : LIN_FAIL;
	return LIN_OK;
}

/* ---- partitions ------------------------------------------------------- */

const char *chaos_split_name(enum chaos_split kind)
{
	switch (kind) {
	case CHAOS_SPLIT_HALVES:
		return "halves";
	case CHAOS_SPLIT_ISOLATE:
		return "isolate";
	case CHAOS_SPLIT_BRIDGE:
		return "bridge";
	case CHAOS_SPLIT_COUNT:
		break;
	}
	return "?";
}

/* shuffle fills order with 0..n-1 in a random order (Fisher-Yates). */
static void shuffle(size_t *order, size_t n, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)chaos_rand_below(rng, i);
		size_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
}

int chaos_plan_partition(enum chaos_split kind, size_t n, size_t leader, uint64_t *rng,
			 struct chaos_partition *out)
{
	if (n < 2 || n > CHAOS_MAX_NODES)
		return SP_ERR_INVAL;
	size_t order[CHAOS_MAX_NODES];
	shuffle(order, n, rng);
	struct chaos_partition p = {.kind = kind};
	switch (kind) {
	case CHAOS_SPLIT_HALVES: {
		size_t most = n >= 3 ? (n - 1) / 2 : 1;
		size_t minority = 1 + (size_t)chaos_rand_below(rng, most);
		for (size_t i = 0; i < n; i++) {
			if (i < minority)
				p.a |= 1ull << order[i];
			else
				p.b |= 1ull << order[i];
		}
		break;
	}
	case CHAOS_SPLIT_ISOLATE: {
		size_t alone = leader < n ? leader : order[0];
		p.a = 1ull << alone;
		p.b = all_nodes(n) & ~p.a;
		break;
	}
	case CHAOS_SPLIT_BRIDGE:
		if (n < 3)
			return SP_ERR_INVAL;
		/* order[0] is the bridge; the others alternate between sides,
		 * so the sides differ by at most one. */
		for (size_t i = 1; i < n; i++) {
			if (i % 2)
				p.a |= 1ull << order[i];
			else
				p.b |= 1ull << order[i];
		}
		break;
	default:
		return SP_ERR_INVAL;
	}
	*out = p;
	return 0;
}

uint64_t chaos_partition_drops(const struct chaos_partition *p, size_t i)
{
	if (!p || i >= 64)
		return 0;
	uint64_t bit = 1ull << i;
	if (p->a & bit)
		return p->b;
	if (p->b & bit)
		return p->a;
	return 0;
}

bool chaos_has_quorum(size_t n, uint64_t down, const struct chaos_partition *p)
{
	uint64_t live = all_nodes(n) & ~down;
	int need = (int)(n / 2) + 1;
	if (!p)
		return chaos_popcount(live) >= need;
	/*
	 * Nodes outside b see each other (a's nodes see a and the bridge, the
	 * bridge sees all), and likewise outside a; any connected group lies
	 * within one of these two, so they are the largest candidates.
	 */
	return chaos_popcount(live & ~p->b) >= need || chaos_popcount(live & ~p->a) >= need;
}

/* ---- the nemesis -------------------------------------------------------- */

const char *chaos_fault_name(enum chaos_fault fault)
{
	switch (fault) {
	case CHAOS_FAULT_KILL:
		return "kill";
	case CHAOS_FAULT_PAUSE:
		return "pause";
	case CHAOS_FAULT_PARTITION:
		return "partition";
	case CHAOS_FAULT_COUNT:
		break;
	}
	return "?";
}

int chaos_parse_faults(const char *text, unsigned *mask)
{
	unsigned m = 0;
	const char *p = text;
	while (*p) {
		size_t len = strcspn(p, ",");
		bool known = false;
		if (len == 3 && memcmp(p, "all", 3) == 0) {
			m |= CHAOS_FAULTS_ALL;
			known = true;
		} else if (len == 4 && memcmp(p, "none", 4) == 0) {
			known = true;
		}
		for (int f = 0; f < CHAOS_FAULT_COUNT && !known; f++) {
			const char *name = chaos_fault_name((enum chaos_fault)f);
			if (strlen(name) == len && memcmp(p, name, len) == 0) {
				m |= 1u << f;
				known = true;
			}
		}
		if (!known)
			return SP_ERR_INVAL;
		p += len;
		if (*p == ',')
			p++;
	}
	*mask = m;
	return 0;
}

/* pick_node picks the target of a kill or pause in w: the leader half the
 * time when it is known and live, else a random live node whose loss
 * keeps a quorum. Returns n when there is none. */
static size_t pick_node(const struct chaos_world *w, uint64_t *rng)
{
	const struct chaos_partition *p = w->partitioned ? &w->part : NULL;
	if (w->leader < w->n && !(w->down & (1ull << w->leader)) && chaos_rand_below(rng, 2) == 0 &&
	    chaos_has_quorum(w->n, w->down | (1ull << w->leader), p))
		return w->leader;
	size_t candidates[CHAOS_MAX_NODES], k = 0;
	for (size_t i = 0; i < w->n; i++) {
		uint64_t bit = 1ull << i;
		if (!(w->down & bit) && chaos_has_quorum(w->n, w->down | bit, p))
			candidates[k++] = i;
	}
	return k ? candidates[chaos_rand_below(rng, k)] : w->n;
}

/* pick_partition draws a partition that keeps a quorum given w's down
 * nodes, trying each kind a few times; false if none does. */
static bool pick_partition(const struct chaos_world *w, uint64_t *rng, struct chaos_partition *out)
{
	if (w->partitioned || w->n < 2)
		return false;
	int kinds = w->n >= 3 ? CHAOS_SPLIT_COUNT : CHAOS_SPLIT_BRIDGE;
	for (int attempt = 0; attempt < 16; attempt++) {
		enum chaos_split kind = (enum chaos_split)chaos_rand_below(rng, (uint64_t)kinds);
		struct chaos_partition p;
		if (chaos_plan_partition(kind, w->n, w->leader, rng, &p) != 0)
			continue;
		if (chaos_has_quorum(w->n, w->down, &p)) {
			*out = p;
			return true;
		}
	}
	return false;
}

int chaos_choose_fault(unsigned enabled, const struct chaos_world *w, uint64_t *rng,
		       struct chaos_choice *out)
{
	/* Try the enabled faults in a random order; the first that fits
	 * wins, so a fault that cannot go now does not starve the others. */
	size_t order[CHAOS_FAULT_COUNT];
	shuffle(order, CHAOS_FAULT_COUNT, rng);
	for (size_t i = 0; i < CHAOS_FAULT_COUNT; i++) {
		enum chaos_fault f = (enum chaos_fault)order[i];
		if (!(enabled & (1u << f)))
			continue;
		struct chaos_choice c = {.fault = f};
		if (f == CHAOS_FAULT_PARTITION) {
			if (!pick_partition(w, rng, &c.part))
				continue;
			c.duration_ms = 2000 + (uint32_t)chaos_rand_below(rng, 3001);
		} else {
			c.target = pick_node(w, rng);
			if (c.target >= w->n)
				continue;
			c.duration_ms = 1000 + (uint32_t)chaos_rand_below(rng, 2001);
		}
		*out = c;
		return 0;
	}
	return SP_ERR_AGAIN;
}
