/*
 * net: the simulated network between nodes.
 *
 * A message is its encoded bytes travelling for base + jitter µs (plus,
 * rarely and on some seeds, a long tail of up to hundreds of ms), so
 * random delays reorder messages, except on seeds whose links are FIFO
 * (as TCP connections are); it may be lost or duplicated. A
 * partition is a matrix of blocked directed links, checked when a message
 * is sent and again when it would arrive. The shapes are the ones that
 * have broken real Raft implementations: a random split, an isolated
 * leader, a bridge (two sides that both see one node), a ring (each node
 * hears only its neighbours) and one-way loss.
 */
#include "sim.h"

#include <string.h>

#include "common/alloc.h"

bool sim_net_blocked(const struct sim_world *w, uint64_t from, uint64_t to)
{
	if (from > SIM_MAX_NODES || to > SIM_MAX_NODES)
		return true;
	return w->blocked[from][to];
}

static uint64_t delay(struct sim_world *w)
{
	const struct sim_params *p = &w->p;
	uint64_t d = p->net_base_us + sim_rng_below(&w->rng_net, p->net_jitter_us + 1);
	if (w->phase == PHASE_FAULTS && p->p_tail > 0 && sim_rng_chance(&w->rng_net, p->p_tail))
		d += sim_rng_logrange(&w->rng_net, 1000, p->tail_max_us);
	return d;
}

/* More messages in 100 ms of simulated time than any healthy seed sends
 * (the busiest of 1,000 seeds peaked at 0.4 million, a backlog released
 * at once after a pause): something multiplies them. */
#define STORM_WINDOW_US 100000
#define STORM_MSGS	2000000

void sim_net_send(struct sim_world *w, uint64_t from, uint64_t to, const uint8_t *p, size_t len)
{
	w->st.msgs++;
	if (w->now - w->storm_window_start >= STORM_WINDOW_US) {
		w->storm_window_start = w->now;
		w->storm_msgs = 0;
	}
	if (w->storm_msgs + 1 > w->st.max_msgs_window)
		w->st.max_msgs_window = w->storm_msgs + 1;
	if (++w->storm_msgs > STORM_MSGS)
		sim_fail(w, "event-storm",
			 "more than %d messages sent within %d ms (now from %llu to %llu)",
			 STORM_MSGS, STORM_WINDOW_US / 1000, (unsigned long long)from,
			 (unsigned long long)to);
	bool faults = w->phase == PHASE_FAULTS;
	if (sim_net_blocked(w, from, to) || (faults && sim_rng_chance(&w->rng_net, w->p.p_loss))) {
		w->st.msgs_lost++;
		return;
	}
	int copies = 1;
	if (faults && sim_rng_chance(&w->rng_net, w->p.p_dup)) {
		copies = 2;
		w->st.msgs_dup++;
	}
	for (int i = 0; i < copies; i++) {
		struct sim_event ev = {0};
		ev.time = w->now + delay(w);
		if (w->p.fifo && from <= SIM_MAX_NODES && to <= SIM_MAX_NODES) {
			if (ev.time <= w->link_last[from][to])
				ev.time = w->link_last[from][to] + 1;
			w->link_last[from][to] = ev.time;
		}
		ev.type = EV_DELIVER;
		ev.node = (uint32_t)to;
		ev.a = from;
		ev.b = w->now; /* sent at */
		ev.inc = from <= SIM_MAX_NODES ? w->nodes[from].inc : 0;
		ev.ptr = sp_malloc(len ? len : 1);
		memcpy(ev.ptr, p, len);
		ev.len = (uint32_t)len;
		sim_heap_push(&w->heap, &ev);
	}
}

void sim_net_heal(struct sim_world *w)
{
	memset(w->blocked, 0, sizeof(w->blocked));
	w->partitioned = false;
}

const char *sim_shape_name(int shape)
{
	switch (shape) {
	case SHAPE_SPLIT:
		return "split";
	case SHAPE_ISOLATE:
		return "isolate";
	case SHAPE_BRIDGE:
		return "bridge";
	case SHAPE_RING:
		return "ring";
	case SHAPE_ONEWAY:
		return "one-way";
	}
	return "?";
}

static void block_both(struct sim_world *w, uint64_t a, uint64_t b)
{
	w->blocked[a][b] = w->blocked[b][a] = true;
}

static void shuffle(uint64_t *v, size_t n, struct sim_rng *rng)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)sim_rng_below(rng, i);
		uint64_t t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

void sim_net_partition(struct sim_world *w, int shape, const uint64_t *ids, size_t n,
		       uint64_t focus, struct sim_rng *rng)
{
	sim_net_heal(w);
	if (n < 2)
		return;
	uint64_t v[SIM_MAX_NODES];
	memcpy(v, ids, n * sizeof(*v));
	shuffle(v, n, rng);
	if (focus) {
		/* Put the focus node first. */
		for (size_t i = 0; i < n; i++) {
			if (v[i] == focus) {
				v[i] = v[0];
				v[0] = focus;
			}
		}
	}
	if ((shape == SHAPE_BRIDGE && n < 3) || (shape == SHAPE_RING && n < 4))
		shape = SHAPE_SPLIT;
	w->partitioned = true;
	switch (shape) {
	case SHAPE_SPLIT: {
		/* v[0..k) on one side, the rest on the other. */
		size_t k = (size_t)sim_rng_range(rng, 1, n - 1);
		for (size_t i = 0; i < k; i++)
			for (size_t j = k; j < n; j++)
				block_both(w, v[i], v[j]);
		break;
	}
	case SHAPE_ISOLATE:
		for (size_t j = 1; j < n; j++)
			block_both(w, v[0], v[j]);
		break;
	case SHAPE_BRIDGE: {
		/* v[0] is the bridge; v[1..k) and v[k..n) do not see each
		 * other. */
		size_t k = (size_t)sim_rng_range(rng, 2, n - 1);
		for (size_t i = 1; i < k; i++)
			for (size_t j = k; j < n; j++)
				block_both(w, v[i], v[j]);
		break;
	}
	case SHAPE_RING:
		/* v is the ring order; only neighbours hear each other. */
		for (size_t i = 0; i < n; i++) {
			for (size_t j = i + 1; j < n; j++) {
				size_t d = j - i;
				if (d != 1 && d != n - 1)
					block_both(w, v[i], v[j]);
			}
		}
		break;
	case SHAPE_ONEWAY: {
		/* v[0] can hear everyone but nobody hears it, or the
		 * reverse. */
		bool deaf = sim_rng_chance(rng, 0.5);
		for (size_t j = 1; j < n; j++) {
			if (deaf)
				w->blocked[v[j]][v[0]] = true;
			else
				w->blocked[v[0]][v[j]] = true;
		}
		break;
	}
	}
}

bool sim_net_lost_in_crash(const struct sim_world *w, uint64_t from, uint64_t inc, uint64_t sent_at)
{
	if (from > SIM_MAX_NODES)
		return false;
	const struct sim_node *n = &w->nodes[from];
	return n->inc != inc && n->crashed_at >= sent_at &&
	       n->crashed_at - sent_at < w->p.crash_drop_us;
}
