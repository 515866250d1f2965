/*
 * heap: the event queue, a binary min-heap ordered by (time, seq).
 *
 * seq is the order in which events were scheduled, so two events at the
 * same microsecond run in a fixed order and a run is a pure function of
 * its seed.
 */
#include "sim.h"

#include <stdlib.h>

#include "common/alloc.h"

static bool before(const struct sim_event *a, const struct sim_event *b)
{
	return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

void sim_heap_init(struct sim_heap *h)
{
	h->v = NULL;
	h->n = h->cap = 0;
	h->next_seq = 0;
}

void sim_heap_free(struct sim_heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->v[i].ptr);
	free(h->v);
	sim_heap_init(h);
}

void sim_heap_push(struct sim_heap *h, struct sim_event *ev)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 256;
		h->v = sp_realloc(h->v, h->cap * sizeof(*h->v));
	}
	ev->seq = h->next_seq++;
	size_t i = h->n++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!before(ev, &h->v[parent]))
			break;
		h->v[i] = h->v[parent];
		i = parent;
	}
	h->v[i] = *ev;
}

bool sim_heap_pop(struct sim_heap *h, struct sim_event *ev)
{
	if (h->n == 0)
		return false;
	*ev = h->v[0];
	struct sim_event last = h->v[--h->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const struct sim_event *best = &last;
		if (l < h->n && before(&h->v[l], best)) {
			m = l;
			best = &h->v[l];
		}
		if (r < h->n && before(&h->v[r], best))
			m = r;
		if (m == i)
			break;
		h->v[i] = h->v[m];
		i = m;
	}
	if (h->n > 0)
		h->v[i] = last;
	return true;
}
