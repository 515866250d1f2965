/*
 * linearizable: the per-key search behind lin_check (see the header).
 *
 * Outline:
 *  1. Validate every op; intern keys and values to small integers (nil is
 *     value 0), so a register state is one uint32_t.
 *  2. Group the ops by key (P-compositionality: the history is
 *     linearizable iff each key's sub-history is) and, per key, turn every
 *     op into a model step "requires value E (or anything), then sets V
 *     (or leaves it)", leaving out the ops that cannot matter (the header
 *     says which, drop_useless adds a few) and ordering interchangeable
 *     ones (link_twins).
 *  3. Per key, run the Wing & Gong / Lowe search over a list of call and
 *     return events in time order, memoising every configuration seen.
 *
 * The search (Lowe 2017, "just-in-time linearisation"). The events sit in
 * a doubly linked list sorted by time, calls before returns at equal
 * times. Walking from the head, every call met before the first return
 * belongs to an op that may be placed next: nothing still unplaced
 * returned before it was called. Placing an op (its step is legal in the
 * current state, and the configuration it leads to is new) lifts its call
 * and return out of the list and restarts the walk at the head. Meeting a
 * return means that op had to be placed by now and was not: the last
 * placement is undone (its events go back where they were, dancing links
 * style) and the walk resumes just after its call. The history is
 * linearizable when every required op is placed; it is not when a return
 * is met with nothing left to undo.
 *
 * Ops that may never have happened (LIN_UNKNOWN) are optional: they have
 * a call event and no return event, so nothing ever forces them to be
 * placed, and success does not wait for them.
 *
 * Three rules cut the orders tried without losing any answer; each comes
 * with its argument where it is applied: reads are placed as soon as they
 * can be (search), interchangeable steps go in call order (link_twins),
 * and an optional step goes only right before a step that looks at the
 * value it wrote (place).
 *
 * The memo, as in Porcupine: a configuration is the set of placed steps
 * and the state. The required steps' set is a bitset in call order with
 * a Zobrist hash (XOR of a fixed random word per step) updated in O(1) per
 * placement, and is stored as (f, bits f..hi): every step before f is
 * placed and none at or after hi is. The search works close to the time
 * frontier, so the window is a word or two however long the history.
 * The optional steps' set, usually small, is stored whole.
 */
#include "check/linearizable.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

#define LIN_MAX_OPS ((size_t)1 << 30)
#define NONE	    UINT32_MAX /* a step with no requirement, or no write */
#define VALUE_NIL   0

/* ---------------------------------------------------------------------- */
/* Hashing and interning                                                   */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t hash_bytes(const uint8_t *p, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = mix64(h ^ w);
	}
	uint64_t tail = 0;
	for (size_t k = 0; i + k < len; k++)
		tail |= (uint64_t)p[i + k] << (8 * k);
	return mix64(h ^ tail ^ 0xff51afd7ed558ccdull);
}

/* An intern table maps byte strings to 0, 1, 2, ... in order of first
 * sight. The bytes are the caller's, borrowed for the call. */
struct intern_slot {
	const uint8_t *p;
	size_t len;
	uint64_t hash;
	uint32_t id; /* NONE: empty */
};

struct intern {
	struct intern_slot *slots;
	size_t cap; /* power of two */
	uint32_t n;
};

static void intern_init(struct intern *t)
{
	t->cap = 64;
	t->n = 0;
	t->slots = sp_malloc(t->cap * sizeof(*t->slots));
	for (size_t i = 0; i < t->cap; i++)
		t->slots[i].id = NONE;
}

static void intern_close(struct intern *t)
{
	free(t->slots);
	t->slots = NULL;
}

static void intern_grow(struct intern *t)
{
	struct intern_slot *old = t->slots;
	size_t old_cap = t->cap;

	t->cap *= 2;
	t->slots = sp_malloc(t->cap * sizeof(*t->slots));
	for (size_t i = 0; i < t->cap; i++)
		t->slots[i].id = NONE;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].id == NONE)
			continue;
		size_t j = old[i].hash & (t->cap - 1);
		while (t->slots[j].id != NONE)
			j = (j + 1) & (t->cap - 1);
		t->slots[j] = old[i];
	}
	free(old);
}

static uint32_t intern_get(struct intern *t, const uint8_t *p, size_t len)
{
	uint64_t h = hash_bytes(p, len);
	size_t j = h & (t->cap - 1);

	for (;; j = (j + 1) & (t->cap - 1)) {
		struct intern_slot *s = &t->slots[j];
		if (s->id == NONE)
			break;
		if (s->hash == h && s->len == len && (len == 0 || memcmp(s->p, p, len) == 0))
			return s->id;
	}
	struct intern_slot *s = &t->slots[j];
	s->p = p;
	s->len = len;
	s->hash = h;
	s->id = t->n++;
	if ((size_t)t->n * 2 > t->cap)
		intern_grow(t);
	return t->n - 1;
}

/* value_id interns a value: nil is VALUE_NIL, anything else 1 + its
 * string's id. */
static uint32_t value_id(struct intern *values, const struct lin_value *v)
{
	if (v->nil)
		return VALUE_NIL;
	return 1 + intern_get(values, v->p, v->len);
}

/* intern_values interns the values op o's kind uses (and only those: the
 * others may hold anything). */
static void intern_values(struct intern *values, const struct lin_op *o)
{
	switch (o->kind) {
	case LIN_READ:
		(void)value_id(values, &o->result);
		break;
	case LIN_CAS:
		(void)value_id(values, &o->expect);
		(void)value_id(values, &o->arg);
		break;
	case LIN_WRITE:
		(void)value_id(values, &o->arg);
		break;
	case LIN_DELETE:
		break;
	}
}

/* ---------------------------------------------------------------------- */
/* Model steps                                                             */

/* One op of one key as the search sees it: a register step, and the
 * interval it may take effect in. */
struct step {
	size_t op;	 /* index in the caller's ops */
	uint64_t call;	 /* real time */
	uint64_t ret;	 /* real time; unused when optional */
	uint32_t expect; /* the value the register must hold, or NONE */
	uint32_t set;	 /* the value it holds afterwards, or NONE to keep */
	uint32_t twin;	 /* a step that goes first (see link_twins), or NONE */
	bool optional;	 /* may be placed anywhere after call, or nowhere */
};

static int step_by_call(const void *a, const void *b)
{
	const struct step *x = a, *y = b;
	if (x->call != y->call)
		return x->call < y->call ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op;
}

static bool value_ok(const struct lin_value *v)
{
	return v->nil || v->len == 0 || v->p != NULL;
}

static bool op_ok(const struct lin_op *o)
{
	if (o->kind < LIN_READ || o->kind > LIN_DELETE)
		return false;
	if (o->outcome < LIN_OK || o->outcome > LIN_UNKNOWN)
		return false;
	if (o->outcome != LIN_UNKNOWN && o->call > o->ret)
		return false;
	if (o->klen != 0 && o->key == NULL)
		return false;
	switch (o->kind) {
	case LIN_READ:
		return o->outcome != LIN_OK || value_ok(&o->result);
	case LIN_WRITE:
		return value_ok(&o->arg);
	case LIN_CAS:
		return value_ok(&o->arg) && value_ok(&o->expect);
	case LIN_DELETE:
		return true;
	}
	return false;
}

/* constrains says whether an op can rule out any linearization: ops that
 * certainly did nothing, and reads whose result is unknown, cannot. */
static bool constrains(const struct lin_op *o)
{
	if (o->outcome == LIN_FAIL)
		return false;
	return !(o->kind == LIN_READ && o->outcome == LIN_UNKNOWN);
}

/* ---------------------------------------------------------------------- */
/* The memo                                                                */

/*
 * The memo remembers every configuration the search has been in: the set
 * of required steps placed (as a window, see struct search), the state
 * (register value and need bit, see place) and the set of optional steps
 * placed. A configuration seen before is one the search finished with
 * and found failing (had it succeeded, the search would have stopped),
 * so it is not explored again.
 */
struct memo_entry {
	uint64_t hash;
	uint64_t state;
	uint32_t f, nbits; /* the required set's window */
	size_t off;	   /* window words, then the optional set's, in words */
};

struct memo {
	struct memo_entry *entries;
	size_t n, cap;
	uint32_t *slots; /* entry index + 1, 0 when empty */
	size_t nslots;	 /* power of two */
	uint64_t *words;
	size_t nwords, cap_words;
	size_t opt_words; /* words in an optional set */
};

static void memo_init(struct memo *m, size_t opt_words)
{
	memset(m, 0, sizeof(*m));
	m->opt_words = opt_words;
	m->nslots = 1024;
	m->slots = sp_calloc(m->nslots, sizeof(*m->slots));
	/* Never NULL, even before the first word: entries point into it. */
	m->cap_words = 1024;
	m->words = sp_malloc(m->cap_words * sizeof(*m->words));
}

static void memo_close(struct memo *m)
{
	free(m->entries);
	free(m->slots);
	free(m->words);
}

static void memo_rehash(struct memo *m)
{
	free(m->slots);
	m->nslots *= 2;
	m->slots = sp_calloc(m->nslots, sizeof(*m->slots));
	for (size_t i = 0; i < m->n; i++) {
		size_t j = m->entries[i].hash & (m->nslots - 1);
		while (m->slots[j])
			j = (j + 1) & (m->nslots - 1);
		m->slots[j] = (uint32_t)(i + 1);
	}
}

/* memo_store copies n words into memo.words. */
static void memo_store(struct memo *m, const uint64_t *w, size_t n)
{
	if (m->nwords + n > m->cap_words) {
		while (m->nwords + n > m->cap_words)
			m->cap_words = m->cap_words ? m->cap_words * 2 : 1024;
		m->words = sp_realloc(m->words, m->cap_words * sizeof(*m->words));
	}
	if (n)
		memcpy(m->words + m->nwords, w, n * sizeof(*w));
	m->nwords += n;
}

/*
 * memo_add records a configuration: the required set given by the hash
 * of both sets and its window (f, nbits, win), the state, the optional
 * set opt. Returns true when it is new, false when the search has been
 * there before.
 */
static bool memo_add(struct memo *m, uint64_t hash, uint64_t state, uint32_t f, uint32_t nbits,
		     const uint64_t *win, const uint64_t *opt)
{
	size_t nw = ((size_t)nbits + 63) / 64, ow = m->opt_words;
	size_t j = hash & (m->nslots - 1);

	for (; m->slots[j]; j = (j + 1) & (m->nslots - 1)) {
		const struct memo_entry *e = &m->entries[m->slots[j] - 1];
		const uint64_t *w = m->words + e->off;
		if (e->hash == hash && e->state == state && e->f == f && e->nbits == nbits &&
		    (nw == 0 || memcmp(w, win, nw * sizeof(*win)) == 0) &&
		    (ow == 0 || memcmp(w + nw, opt, ow * sizeof(*opt)) == 0))
			return false;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 1024;
		m->entries = sp_realloc(m->entries, m->cap * sizeof(*m->entries));
	}
	m->entries[m->n] = (struct memo_entry){
	    .hash = hash, .state = state, .f = f, .nbits = nbits, .off = m->nwords};
	memo_store(m, win, nw);
	memo_store(m, opt, ow);
	m->slots[j] = (uint32_t)++m->n;
	if (m->n * 2 > m->nslots)
		memo_rehash(m);
	return true;
}

/* ---------------------------------------------------------------------- */
/* Bitsets                                                                 */

static void bit_flip(uint64_t *bits, uint32_t i)
{
	bits[i / 64] ^= (uint64_t)1 << (i % 64);
}

/* next_clear returns the first clear bit at or after from, or m. Bits at
 * m and beyond in the last word are always clear. */
static uint32_t next_clear(const uint64_t *bits, uint32_t from, uint32_t m)
{
	if (from >= m)
		return m;
	size_t w = from / 64, nw = ((size_t)m + 63) / 64;
	uint64_t x = ~bits[w] & (~(uint64_t)0 << (from % 64));
	while (x == 0) {
		if (++w == nw)
			return m;
		x = ~bits[w];
	}
	uint64_t r = (uint64_t)w * 64 + (uint64_t)__builtin_ctzll(x);
	return r < m ? (uint32_t)r : m;
}

/* window copies bits [f, f+nbits) of bits to win, packed from bit 0. */
static void window(const uint64_t *bits, size_t nw_bits, uint32_t f, uint32_t nbits, uint64_t *win)
{
	size_t nw = ((size_t)nbits + 63) / 64;
	for (size_t k = 0; k < nw; k++) {
		size_t pos = (size_t)f + 64 * k, w = pos / 64, s = pos % 64;
		uint64_t lo = w < nw_bits ? bits[w] >> s : 0;
		uint64_t hi = s && w + 1 < nw_bits ? bits[w + 1] << (64 - s) : 0;
		win[k] = lo | hi;
	}
	/* Bits past the window are placed ops beyond hi: there are none. */
}

/* zobrist is step i's fixed random word in the set hash. */
static uint64_t zobrist(uint32_t i)
{
	return mix64((uint64_t)i * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
}

/* ---------------------------------------------------------------------- */
/* The search                                                              */

/* An event in the list: node 0 is the sentinel of a circular list. */
struct node {
	uint32_t step;	/* index into the key's steps */
	uint32_t match; /* for a call: its return's node, 0 if none */
	uint32_t prev, next;
	bool is_call;
};

struct event {
	uint64_t time;
	uint32_t is_return;
	uint32_t step;
};

static int event_order(const void *a, const void *b)
{
	const struct event *x = a, *y = b;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	/* Calls first: equal times are concurrent. */
	if (x->is_return != y->is_return)
		return x->is_return < y->is_return ? -1 : 1;
	return x->step < y->step ? -1 : x->step > y->step;
}

/* A placement to undo: the call's node and what it changed. forced marks
 * a read placed because it had to be (see search), which is never
 * swapped for another choice. */
struct frame {
	uint32_t node;
	uint32_t state, need, f, hi;
	uint64_t zhash;
	bool forced;
};

static void lift(struct node *nodes, uint32_t i)
{
	struct node *n = &nodes[i];
	nodes[n->prev].next = n->next;
	nodes[n->next].prev = n->prev;
	if (n->match) {
		struct node *r = &nodes[n->match];
		nodes[r->prev].next = r->next;
		nodes[r->next].prev = r->prev;
	}
}

/* unlift puts back what lift(i) took out, in reverse order. */
static void unlift(struct node *nodes, uint32_t i)
{
	struct node *n = &nodes[i];
	if (n->match) {
		struct node *r = &nodes[n->match];
		nodes[r->prev].next = n->match;
		nodes[r->next].prev = n->match;
	}
	nodes[n->prev].next = i;
	nodes[n->next].prev = i;
}

/*
 * The search of one key. Required and optional steps are numbered apart
 * (slot), each in call order, and their placed sets kept apart: the
 * required set as a bitset whose set bits all sit below hi and which has
 * every bit below f set, so the memo stores only bits f..hi; the optional
 * set whole.
 */
struct search {
	const struct step *steps;
	uint32_t m;
	struct node *nodes; /* m calls and the required steps' returns, + sentinel */
	uint32_t *slot;	    /* per step: its number among required or optional */
	uint8_t *done;	    /* per step: placed */
	uint64_t *req;	    /* placed required steps, by slot */
	uint32_t n_req;
	size_t req_words;
	uint64_t *opt; /* placed optional steps, by slot */
	uint64_t *win; /* scratch for memo windows */
	struct frame *stack;
	uint32_t depth;
	uint32_t state; /* the register's value */
	uint32_t need;	/* the next step must expect this, or NONE */
	uint32_t f, hi; /* required-set window bounds */
	uint64_t zhash; /* Zobrist hash of both placed sets */
	uint32_t left;	/* required steps not placed */
	struct memo memo;
};

/* state_preserving says s, tried in state v, must find v and leaves it:
 * a read, or a CAS from v to v. */
static bool state_preserving(const struct step *s, uint32_t v)
{
	return s->expect == v && (s->set == NONE || s->set == v);
}

/*
 * place tries to linearize the step of call node i next. It fails when
 * the step's requirement does not hold, when it breaks the rule for
 * optional steps below, or when the memo shows where it leads fails;
 * otherwise it lifts the step's events out of the list and pushes what
 * is needed to undo it.
 *
 * The rule for optional steps: one is placed only where it changes the
 * value, and the step placed right after it must expect the new value
 * (need). A linearization that breaks the rule has an optional step
 * whose value nobody sees before it is overwritten, or that changed
 * nothing; dropping that step leaves a linearization. The need bit is
 * part of the memo's state, since a configuration reached under the rule
 * has fewer ways on than the same one reached without it.
 */
static bool place(struct search *x, uint32_t i, bool forced)
{
	uint32_t k = x->nodes[i].step;
	const struct step *s = &x->steps[k];

	if (s->expect != NONE && s->expect != x->state)
		return false;
	if (x->need != NONE && s->expect != x->need)
		return false;
	uint32_t new_state = s->set == NONE ? x->state : s->set;
	if (s->optional && new_state == x->state)
		return false;
	uint32_t new_need = s->optional ? new_state : NONE;
	uint64_t key = (uint64_t)new_state << 1 | (new_need != NONE);

	uint32_t r = x->slot[k], new_f = x->f, new_hi = x->hi;
	uint64_t zhash = x->zhash ^ zobrist(k);
	if (s->optional) {
		bit_flip(x->opt, r);
	} else {
		bit_flip(x->req, r);
		if (r == x->f)
			new_f = next_clear(x->req, r + 1, x->n_req);
		if (r + 1 > new_hi)
			new_hi = r + 1;
	}
	uint32_t nbits = new_hi > new_f ? new_hi - new_f : 0;
	window(x->req, x->req_words, new_f, nbits, x->win);
	uint64_t h = mix64(zhash ^ (key + 1) * 0xd6e8feb86659fd93ull);
	if (!memo_add(&x->memo, h, key, new_f, nbits, x->win, x->opt)) {
		bit_flip(s->optional ? x->opt : x->req, r);
		return false;
	}
	x->stack[x->depth++] = (struct frame){.node = i,
					      .state = x->state,
					      .need = x->need,
					      .f = x->f,
					      .hi = x->hi,
					      .zhash = x->zhash,
					      .forced = forced};
	x->zhash = zhash;
	x->state = new_state;
	x->need = new_need;
	x->f = new_f;
	x->hi = new_hi;
	x->done[k] = 1;
	lift(x->nodes, i);
	x->left -= !s->optional;
	return true;
}

/* unplace undoes the last placement and returns its frame. */
static struct frame unplace(struct search *x)
{
	struct frame fr = x->stack[--x->depth];
	uint32_t k = x->nodes[fr.node].step;
	const struct step *s = &x->steps[k];

	bit_flip(s->optional ? x->opt : x->req, x->slot[k]);
	x->zhash = fr.zhash;
	x->state = fr.state;
	x->need = fr.need;
	x->f = fr.f;
	x->hi = fr.hi;
	x->done[k] = 0;
	unlift(x->nodes, fr.node);
	x->left += !s->optional;
	return fr;
}

/* waits says step k must not go yet: its twin has not gone. */
static bool waits(const struct search *x, uint32_t k)
{
	uint32_t t = x->steps[k].twin;
	return t != NONE && !x->done[t];
}

/* forced_read returns the call node of an op that may go next and leaves
 * the current state as it is (see search), or 0. */
static uint32_t forced_read(const struct search *x)
{
	for (uint32_t i = x->nodes[0].next; i != 0 && x->nodes[i].is_call; i = x->nodes[i].next) {
		uint32_t k = x->nodes[i].step;
		if (state_preserving(&x->steps[k], x->state) && !waits(x, k))
			return i;
	}
	return 0;
}

struct key_result {
	enum lin_verdict verdict;
	uint32_t bad_step;
	uint64_t steps;
	bool stopped; /* gave up because opts->should_stop said so */
};

/*
 * search decides one key: steps[0..m) sorted by call time. Fills *out.
 *
 * Besides the search described at the top of this file it applies one
 * more rule that is always safe: an op that may go next and leaves the
 * state as it is (a read of the current value, a CAS from it to itself)
 * is placed at once, and when that leads nowhere the search backs up
 * past it rather than trying something else in its place. If some
 * linearization places other ops X before such a read R, placing R first
 * gives another: R changes nothing X sees, it sees the same value, and
 * nothing in X must precede R (every op that returned before R's call is
 * already placed, or R would not be among the ops that may go next).
 * Reads are most of a history; this keeps them from multiplying the
 * orders the search tries.
 */
static void search(const struct step *steps, uint32_t m, const struct lin_options *opts,
		   struct key_result *out)
{
	uint64_t max_steps = opts->max_steps;
	uint64_t poll = opts->poll_steps ? opts->poll_steps : LIN_POLL_STEPS;
	uint32_t n_events, n_required = 0;
	for (uint32_t i = 0; i < m; i++)
		n_required += !steps[i].optional;
	n_events = m + n_required;

	memset(out, 0, sizeof(*out));
	out->bad_step = NONE;
	out->verdict = LIN_LINEARIZABLE;
	if (n_required == 0)
		return;

	/* The event list, in time order. */
	struct event *events = sp_malloc(n_events * sizeof(*events));
	uint32_t k = 0;
	for (uint32_t i = 0; i < m; i++) {
		events[k++] = (struct event){.time = steps[i].call, .is_return = 0, .step = i};
		if (!steps[i].optional)
			events[k++] =
			    (struct event){.time = steps[i].ret, .is_return = 1, .step = i};
	}
	qsort(events, n_events, sizeof(*events), event_order);

	struct search x = {.steps = steps, .m = m, .left = n_required};
	x.nodes = sp_calloc((size_t)n_events + 1, sizeof(*x.nodes));
	uint32_t *call_node = sp_malloc(m * sizeof(*call_node));
	for (uint32_t e = 0; e < n_events; e++) {
		struct node *n = &x.nodes[e + 1];
		n->step = events[e].step;
		n->is_call = !events[e].is_return;
		n->prev = e;
		n->next = e + 2 <= n_events ? e + 2 : 0;
		if (n->is_call)
			call_node[n->step] = e + 1;
		else
			x.nodes[call_node[n->step]].match = e + 1;
	}
	x.nodes[0].next = 1;
	x.nodes[0].prev = n_events;
	free(call_node);
	free(events);

	uint32_t n_opt = 0;
	x.slot = sp_malloc(m * sizeof(*x.slot));
	for (uint32_t i = 0; i < m; i++)
		x.slot[i] = steps[i].optional ? n_opt++ : x.n_req++;
	x.done = sp_calloc(m, 1);
	x.req_words = ((size_t)x.n_req + 63) / 64;
	x.req = sp_calloc(x.req_words, sizeof(*x.req));
	size_t opt_words = ((size_t)n_opt + 63) / 64;
	x.opt = sp_calloc(opt_words ? opt_words : 1, sizeof(*x.opt));
	x.win = sp_malloc((x.req_words + 1) * sizeof(*x.win));
	x.stack = sp_malloc(m * sizeof(*x.stack));
	x.state = VALUE_NIL;
	x.need = NONE;
	memo_init(&x.memo, opt_words);

	uint32_t best_depth = 0, cur = 0;
	uint64_t nsteps = 0;
	bool fresh = true; /* just placed an op: the walk starts over */

	while (x.left > 0) {
		if (max_steps && nsteps >= max_steps) {
			out->verdict = LIN_GAVE_UP;
			break;
		}
		/* The caller's time bound. Never before the first step, so a
		 * key that needs few steps is decided even past it. */
		if (opts->should_stop && nsteps > 0 && nsteps % poll == 0 &&
		    opts->should_stop(opts->stop_ctx)) {
			out->verdict = LIN_GAVE_UP;
			out->stopped = true;
			break;
		}
		nsteps++;

		bool back = false;
		if (fresh) {
			fresh = false;
			uint32_t r = forced_read(&x);
			if (r != 0 && place(&x, r, true)) {
				fresh = true;
				continue;
			}
			/* A forced read that leads somewhere known to fail:
			 * so does this configuration. */
			back = r != 0;
			cur = x.nodes[0].next;
		}
		if (!back) {
			/* Some required op's return is still in the list and
			 * every call sits before its return: the walk meets
			 * one before it runs off the end. */
			assert(cur != 0);
			const struct node *n = &x.nodes[cur];
			if (n->is_call) {
				if (waits(&x, n->step))
					cur = n->next;
				else if (place(&x, cur, false))
					fresh = true;
				else
					cur = n->next;
				continue;
			}
			/* n's op had to take effect before now, and cannot. */
			if (out->bad_step == NONE || x.depth > best_depth) {
				best_depth = x.depth;
				out->bad_step = n->step;
			}
		}
		/* Back up to the last free choice and try the next one. */
		struct frame fr = {.forced = true};
		while (fr.forced && x.depth > 0)
			fr = unplace(&x);
		if (fr.forced) {
			out->verdict = LIN_VIOLATION;
			break;
		}
		cur = x.nodes[fr.node].next;
	}
	if (out->verdict != LIN_VIOLATION)
		out->bad_step = NONE;
	out->steps = nsteps;

	memo_close(&x.memo);
	free(x.stack);
	free(x.win);
	free(x.opt);
	free(x.req);
	free(x.done);
	free(x.slot);
	free(x.nodes);
}

/* ---------------------------------------------------------------------- */
/* lin_check                                                               */

/* Who looks at a value, for drop_useless: stamp says the entry is current,
 * until is the latest return of a required op that reads or expects the
 * value (UINT64_MAX when an optional one does). */
struct observer {
	uint32_t stamp;
	uint64_t until;
};

static struct step make_step(const struct lin_op *o, size_t op, struct intern *values)
{
	struct step s = {.op = op, .call = o->call, .ret = o->ret, .twin = NONE};
	s.optional = o->outcome == LIN_UNKNOWN;
	s.expect = NONE;
	s.set = NONE;
	switch (o->kind) {
	case LIN_READ:
		s.expect = value_id(values, &o->result);
		break;
	case LIN_WRITE:
		s.set = value_id(values, &o->arg);
		break;
	case LIN_DELETE:
		s.set = VALUE_NIL;
		break;
	case LIN_CAS:
		s.expect = value_id(values, &o->expect);
		s.set = value_id(values, &o->arg);
		break;
	}
	return s;
}

/*
 * drop_useless removes optional steps no linearization needs: one that
 * changes nothing (a CAS from a value to itself), and one whose new value
 * no other step that may come after it looks at (every op that reads or
 * expects the value returned before it was called). Placing such a step
 * can only make a later step fail, so a linearization that places it is
 * still one without it. Dropping one step can make another useless (it
 * was the only one looking), so this runs until nothing changes.
 */
static uint32_t drop_useless(struct step *steps, uint32_t m, struct observer *obs, uint32_t *stamp)
{
	for (bool changed = true; changed;) {
		changed = false;
		++*stamp;
		for (uint32_t i = 0; i < m; i++) {
			const struct step *s = &steps[i];
			if (s->expect == NONE)
				continue;
			struct observer *o = &obs[s->expect];
			uint64_t until = s->optional ? UINT64_MAX : s->ret;
			if (o->stamp != *stamp) {
				o->stamp = *stamp;
				o->until = until;
			} else if (until > o->until) {
				o->until = until;
			}
		}
		uint32_t kept = 0;
		for (uint32_t i = 0; i < m; i++) {
			const struct step *s = &steps[i];
			bool useless =
			    s->optional && (s->set == s->expect || obs[s->set].stamp != *stamp ||
					    obs[s->set].until < s->call);
			if (useless)
				changed = true;
			else
				steps[kept++] = *s;
		}
		m = kept;
	}
	return m;
}

/* For linking twins: a step's class and its place in call order. */
struct twin_key {
	bool optional;
	uint32_t expect, set;
	uint32_t pos;
};

static int twin_order(const void *a, const void *b)
{
	const struct twin_key *x = a, *y = b;
	if (x->optional != y->optional)
		return x->optional < y->optional ? -1 : 1;
	if (x->expect != y->expect)
		return x->expect < y->expect ? -1 : 1;
	if (x->set != y->set)
		return x->set < y->set ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * link_twins orders interchangeable steps. Two steps that do the same
 * thing (same requirement, same effect, both required or both optional),
 * A called no later than B and returning no later than B, can always
 * trade places in a linearization: A fits wherever B was and B wherever A
 * was. So if there is a linearization there is one that places A first,
 * and the search only looks at those: B gets twin = A and waits for it.
 * With values that repeat (few distinct values, retried writes, a pile
 * of timed-out writes of one value) this removes most of the orders there
 * are to try.
 */
static void link_twins(struct step *steps, uint32_t m)
{
	struct twin_key *keys = sp_malloc((m ? m : 1) * sizeof(*keys));
	for (uint32_t i = 0; i < m; i++)
		keys[i] = (struct twin_key){.optional = steps[i].optional,
					    .expect = steps[i].expect,
					    .set = steps[i].set,
					    .pos = i};
	qsort(keys, m, sizeof(*keys), twin_order);
	for (uint32_t j = 1; j < m; j++) {
		const struct twin_key *a = &keys[j - 1], *b = &keys[j];
		if (a->optional != b->optional || a->expect != b->expect || a->set != b->set)
			continue;
		if (a->optional || steps[a->pos].ret <= steps[b->pos].ret)
			steps[b->pos].twin = a->pos;
	}
	free(keys);
}

/* key_steps builds the model steps of one key's ops (their indices in
 * ops) into out, in call order, and returns how many. */
static uint32_t key_steps(const struct lin_op *ops, const size_t *idx, size_t count,
			  struct intern *values, struct observer *obs, uint32_t *stamp,
			  struct step *out)
{
	uint32_t m = 0;
	for (size_t j = 0; j < count; j++)
		out[m++] = make_step(&ops[idx[j]], idx[j], values);
	qsort(out, m, sizeof(*out), step_by_call);
	m = drop_useless(out, m, obs, stamp);
	link_twins(out, m);
	return m;
}

int lin_check(const struct lin_op *ops, size_t n, uint64_t max_steps, struct lin_result *res)
{
	const struct lin_options opts = {.max_steps = max_steps};
	return lin_check_ex(ops, n, &opts, res);
}

int lin_check_ex(const struct lin_op *ops, size_t n, const struct lin_options *opts,
		 struct lin_result *res)
{
	static const struct lin_options no_options;
	assert(res != NULL);
	if (opts == NULL)
		opts = &no_options;
	memset(res, 0, sizeof(*res));
	res->bad_op = SIZE_MAX;
	if (n > LIN_MAX_OPS)
		return SP_ERR_TOOBIG;
	for (size_t i = 0; i < n; i++) {
		if (!op_ok(&ops[i])) {
			res->bad_op = i;
			return SP_ERR_INVAL;
		}
	}
	res->verdict = LIN_LINEARIZABLE;
	if (n == 0)
		return 0;

	/* Keys to ids in order of first appearance; then each key's ops in
	 * a contiguous run of by_key (counting sort, stable). */
	struct intern keys, values;
	intern_init(&keys);
	intern_init(&values);
	uint32_t *key_of = sp_malloc(n * sizeof(*key_of));
	size_t *first_op = sp_malloc(n * sizeof(*first_op));
	for (size_t i = 0; i < n; i++) {
		uint32_t seen = keys.n;
		key_of[i] = intern_get(&keys, ops[i].key, ops[i].klen);
		if (keys.n != seen)
			first_op[key_of[i]] = i;
	}
	uint32_t n_keys = keys.n;
	res->keys = n_keys;

	size_t *start = sp_calloc((size_t)n_keys + 1, sizeof(*start));
	size_t *by_key = sp_malloc(n * sizeof(*by_key));
	size_t n_used = 0;
	for (size_t i = 0; i < n; i++) {
		if (constrains(&ops[i])) {
			start[key_of[i] + 1]++;
			n_used++;
		}
	}
	for (uint32_t k = 0; k < n_keys; k++)
		start[k + 1] += start[k];
	size_t *fill = sp_malloc(((size_t)n_keys + 1) * sizeof(*fill));
	memcpy(fill, start, ((size_t)n_keys + 1) * sizeof(*fill));
	for (size_t i = 0; i < n; i++)
		if (constrains(&ops[i]))
			by_key[fill[key_of[i]]++] = i;
	free(fill);

	/* Intern every value up front so observed[] can be sized once. */
	for (size_t j = 0; j < n_used; j++)
		intern_values(&values, &ops[by_key[j]]);
	struct observer *obs = sp_calloc((size_t)values.n + 1, sizeof(*obs));
	uint32_t stamp = 0;
	struct step *steps = sp_malloc((n_used ? n_used : 1) * sizeof(*steps));

	for (uint32_t k = 0; k < n_keys; k++) {
		if (res->stopped) {
			/* Stopped: the keys left are not searched. */
			res->keys_gave_up++;
			res->keys_skipped++;
			continue;
		}
		size_t count = start[k + 1] - start[k];
		uint32_t m = key_steps(ops, by_key + start[k], count, &values, obs, &stamp, steps);
		struct key_result kr;
		search(steps, m, opts, &kr);
		res->steps += kr.steps;
		res->stopped = kr.stopped;
		const struct lin_op *first = &ops[first_op[k]];
		if (kr.verdict == LIN_VIOLATION) {
			res->keys_violated++;
			if (res->verdict != LIN_VIOLATION) {
				res->verdict = LIN_VIOLATION;
				res->key = first->key;
				res->klen = first->klen;
				res->bad_op = steps[kr.bad_step].op;
			}
		} else if (kr.verdict == LIN_GAVE_UP) {
			res->keys_gave_up++;
			if (res->verdict == LIN_LINEARIZABLE) {
				res->verdict = LIN_GAVE_UP;
				res->key = first->key;
				res->klen = first->klen;
			}
		}
	}

	free(steps);
	free(obs);
	free(by_key);
	free(start);
	free(first_op);
	free(key_of);
	intern_close(&values);
	intern_close(&keys);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* lin_explain                                                             */

static bool value_eq(const struct lin_value *a, const struct lin_value *b)
{
	if (a->nil || b->nil)
		return a->nil == b->nil;
	return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* needs says which value op o must find in the register to be placed:
 * false for ops that find anything. */
static bool needs(const struct lin_op *o, struct lin_value *v)
{
	if (o->kind == LIN_READ && o->outcome == LIN_OK) {
		*v = o->result;
		return true;
	}
	if (o->kind == LIN_CAS && o->outcome != LIN_FAIL) {
		*v = o->expect;
		return true;
	}
	return false;
}

/* sets says whether op o, if it took effect, left v in the register. */
static bool sets(const struct lin_op *o, const struct lin_value *v)
{
	switch (o->kind) {
	case LIN_WRITE:
	case LIN_CAS:
		return value_eq(&o->arg, v);
	case LIN_DELETE:
		return v->nil;
	case LIN_READ:
		break;
	}
	return false;
}

/* ret_of is when o certainly returned: never, for an op whose outcome is
 * unknown. */
static uint64_t ret_of(const struct lin_op *o)
{
	return o->outcome == LIN_UNKNOWN ? UINT64_MAX : o->ret;
}

/* The ops lin_explain looks at: the violating key's, and only those that
 * constrain the register. */
static bool explains(const struct lin_op *o, const struct lin_result *res)
{
	return constrains(o) && o->klen == res->klen &&
	       (o->klen == 0 || memcmp(o->key, res->key, o->klen) == 0);
}

/* take counts op i into the explanation, and writes it while there is
 * room. */
static void take(size_t *out_idx, size_t cap, size_t *total, size_t i)
{
	if (*total < cap)
		out_idx[*total] = i;
	++*total;
}

static int by_call_then_index(const void *a, const void *b, void *ctx)
{
	const struct lin_op *ops = ctx;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	if (ops[x].call != ops[y].call)
		return ops[x].call < ops[y].call ? -1 : 1;
	return x < y ? -1 : x > y;
}

size_t lin_explain(const struct lin_op *ops, size_t n, const struct lin_result *res,
		   size_t *out_idx, size_t cap)
{
	if (res == NULL || res->verdict != LIN_VIOLATION || res->bad_op >= n || res->key == NULL)
		return 0;
	size_t b = res->bad_op, total = 0;
	const struct lin_op *bad = &ops[b];
	uint64_t bad_ret = ret_of(bad);

	/* 1. The op that could not be placed. */
	take(out_idx, cap, &total, b);

	/* 2. The last op that could have given it the value it needed. */
	size_t writer = SIZE_MAX;
	struct lin_value need;
	if (needs(bad, &need)) {
		for (size_t i = 0; i < n; i++) {
			const struct lin_op *o = &ops[i];
			if (i == b || !explains(o, res) || !sets(o, &need) || o->call > bad_ret)
				continue;
			if (writer == SIZE_MAX || o->call >= ops[writer].call)
				writer = i;
		}
		if (writer != SIZE_MAX)
			take(out_idx, cap, &total, writer);
	}

	/*
	 * 3. Its immediate predecessors. Among the ops that returned before
	 * bad was called, p has nothing wholly between it and bad when no
	 * other such op was called after p returned: when p's return is at
	 * or after the latest call among them.
	 */
	bool any_before = false;
	uint64_t latest_call = 0;
	for (size_t i = 0; i < n; i++) {
		const struct lin_op *o = &ops[i];
		if (i == b || !explains(o, res) || ret_of(o) >= bad->call)
			continue;
		if (!any_before || o->call > latest_call)
			latest_call = o->call;
		any_before = true;
	}
	for (size_t i = 0; any_before && i < n; i++) {
		const struct lin_op *o = &ops[i];
		if (i == b || i == writer || !explains(o, res))
			continue;
		if (ret_of(o) < bad->call && ret_of(o) >= latest_call)
			take(out_idx, cap, &total, i);
	}

	/* 4. The ops that overlap it. */
	for (size_t i = 0; i < n; i++) {
		const struct lin_op *o = &ops[i];
		if (i == b || i == writer || !explains(o, res))
			continue;
		if (o->call <= bad_ret && ret_of(o) >= bad->call)
			take(out_idx, cap, &total, i);
	}

	size_t written = total < cap ? total : cap;
	if (written > 1)
		qsort_r(out_idx, written, sizeof(*out_idx), by_call_then_index, (void *)ops);
	return total;
}

const char *lin_verdict_name(enum lin_verdict verdict)
{
	switch (verdict) {
	case LIN_LINEARIZABLE:
		return "linearizable";
	case LIN_VIOLATION:
		return "violation";
	case LIN_GAVE_UP:
		return "gave up";
	}
	return "unknown";
}
