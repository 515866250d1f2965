/*
 * causal: the causal-consistency checker (see the header for the model).
 *
 * The steps of cc_check, in order:
 *  1. check the ops, and intern keys, sessions and written values to
 *     small integers (a value written twice is bad input);
 *  2. pick the ops that are in CO (ok reads and writes, info writes) and
 *     sort them by session, then invoke: a node's id is its place in that
 *     order, so a session's nodes are consecutive and its session order
 *     is the order of ids;
 *  3. resolve reads-from through the value table; a read of a value that
 *     no usable write of its key wrote is a ThinAirRead;
 *  4. topologically sort session order plus reads-from (Kahn); nodes
 *     left over lie on or behind a cycle, and walking back through
 *     predecessors that are left over finds one (CyclicCO, and stop);
 *  5. in topological order, give each node a vector clock over the
 *     sessions that write: vc[c] is the position of the latest op of
 *     writing session c in the node's causal past (its own included), 0
 *     for none. A node's clock is the maximum of its session
 *     predecessor's and, for a read, its write's. Only writes keep theirs
 *     (later reads look them up); each session keeps its latest;
 *  6. check each read as its clock is known: with w1 the write it read,
 *     some write of its key in its past is CO-after w1 iff, for some
 *     session, the latest write of the key in the read's past is
 *     CO-after w1 (any later write of that session is CO-after it too).
 *     That is one binary search per session that wrote the key. A bad
 *     read is then named (the order in enum cc_kind).
 */
#include "check/causal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/alloc.h"
#include "common/err.h"

#define NONE UINT32_MAX
/* Earlier reads examined when naming one bad read (steps 2 and 4 of the
 * order in enum cc_kind); a run of reads of one write counts once. */
#define NAME_BUDGET 4096
/* The longest decimal uint64_t, and a NUL. */
#define PROCESS_NAME_MAX 21

static const uint8_t empty_bytes[1];

/* ---------------------------------------------------------------------- */
/* Interning byte strings                                                  */

/* A set of byte strings, each given the next small id. Borrows the
 * bytes. */
struct intern {
	uint32_t *slot; /* id + 1, or 0 for an empty slot */
	size_t mask;	/* slots - 1 (a power of two minus one) */
	const uint8_t **p;
	size_t *len;
	uint32_t n;
};

/* intern_init makes t empty, with room for up to max strings. */
static void intern_init(struct intern *t, size_t max)
{
	size_t cap = 16;
	while (cap < 2 * max)
		cap *= 2;
	t->slot = sp_calloc(cap, sizeof(*t->slot));
	t->mask = cap - 1;
	t->p = sp_malloc((max ? max : 1) * sizeof(*t->p));
	t->len = sp_malloc((max ? max : 1) * sizeof(*t->len));
	t->n = 0;
}

static void intern_free(struct intern *t)
{
	free(t->slot);
	free(t->p);
	free(t->len);
	memset(t, 0, sizeof(*t));
}

/* intern_find returns the id of (p, len), or NONE when it is not in t. */
static uint32_t intern_find(const struct intern *t, const uint8_t *p, size_t len)
{
	if (p == NULL)
		p = empty_bytes;
	size_t i = (size_t)XXH3_64bits(p, len) & t->mask;
	for (;; i = (i + 1) & t->mask) {
		uint32_t s = t->slot[i];
		if (s == 0)
			return NONE;
		if (t->len[s - 1] == len && memcmp(t->p[s - 1], p, len) == 0)
			return s - 1;
	}
}

/* intern_id returns the id of (p, len), adding it when new (*added then
 * says so; it may be NULL). There must be room (intern_init's max). */
static uint32_t intern_id(struct intern *t, const uint8_t *p, size_t len, bool *added)
{
	if (p == NULL)
		p = empty_bytes;
	size_t i = (size_t)XXH3_64bits(p, len) & t->mask;
	for (;; i = (i + 1) & t->mask) {
		uint32_t s = t->slot[i];
		if (s == 0)
			break;
		if (t->len[s - 1] == len && memcmp(t->p[s - 1], p, len) == 0) {
			if (added)
				*added = false;
			return s - 1;
		}
	}
	uint32_t id = t->n++;
	t->p[id] = p;
	t->len[id] = len;
	t->slot[i] = id + 1;
	if (added)
		*added = true;
	return id;
}

/* ---------------------------------------------------------------------- */
/* The state of one check                                                  */

/* An op in CO. */
struct node {
	uint32_t op;	 /* index in ops */
	uint32_t sess;	 /* session id */
	uint32_t pos;	 /* 1-based place in its session */
	uint32_t key;	 /* key id */
	uint32_t writer; /* a read: the node it read from; NONE: initial or thin air */
	uint32_t lastw;	 /* the latest write node of its session at or before it */
	uint32_t row;	 /* a write: its row of wvc; a read: its place in reads */
	bool is_write;
	bool ok;
	bool thin; /* a read that reads from no write in CO */
};

/* The writes of one key by one session, in session order: kw[beg..end). */
struct group {
	uint32_t key, sess;
	uint32_t beg, end;
};

struct check {
	const struct cc_op *ops;
	size_t n;
	struct node *node;
	uint32_t m;	   /* nodes */
	uint32_t *sbeg;	   /* session s's nodes are [sbeg[s], sbeg[s + 1]) */
	uint32_t sessions; /* distinct sessions */
	uint32_t keys;

	uint32_t *col;	   /* session -> column of the clocks, or NONE */
	uint32_t *colsess; /* column -> session */
	uint32_t w;	   /* columns: sessions with a write in CO */
	uint32_t *wvc;	   /* a clock (w entries) per write node */
	uint32_t *cur;	   /* the clock of each session's latest node so far */

	uint32_t *kw;	     /* write nodes by (key, session, position) */
	struct group *group; /* their runs of one key and session */
	uint32_t *kbeg;	     /* key k's groups are [kbeg[k], kbeg[k + 1]) */
	uint32_t *reads;     /* read nodes by (session, key, position) */
	uint32_t *run_start; /* where the run of reads of one write that holds reads[j] starts */
	uint32_t n_reads;

	struct cc_report *out;
	size_t vcap;
};

static void add_violation(struct check *c, const struct cc_violation *v)
{
	struct cc_report *r = c->out;
	if (r->n_violations == c->vcap) {
		c->vcap = c->vcap ? 2 * c->vcap : 16;
		r->v = sp_realloc(r->v, c->vcap * sizeof(*r->v));
	}
	r->v[r->n_violations++] = *v;
	r->count[v->kind]++;
}

static size_t op_of(const struct check *c, uint32_t node)
{
	return node == NONE ? SIZE_MAX : c->node[node].op;
}

/* wvc_of returns write node x's clock. */
static const uint32_t *wvc_of(const struct check *c, uint32_t x)
{
	return c->wvc + (size_t)c->node[x].row * c->w;
}

/* co_before says whether write node a is CO-before write node x. */
static bool co_before(const struct check *c, uint32_t a, uint32_t x)
{
	if (a == x)
		return false;
	return wvc_of(c, x)[c->col[c->node[a].sess]] >= c->node[a].pos;
}

/* newer_than says whether write node x overwrites what a read that
 * returned w1 saw: x is CO-after w1, or w1 is NONE (the initial value)
 * and x is any write. */
static bool newer_than(const struct check *c, uint32_t w1, uint32_t x)
{
	if (x == NONE)
		return false;
	return w1 == NONE || co_before(c, w1, x);
}

/* find_group returns the group of key k's writes by session s, or NULL. */
static const struct group *find_group(const struct check *c, uint32_t k, uint32_t s)
{
	uint32_t lo = c->kbeg[k], hi = c->kbeg[k + 1];
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (c->group[mid].sess < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < c->kbeg[k + 1] && c->group[lo].sess == s)
		return &c->group[lo];
	return NULL;
}

/* last_upto returns the last write of group g at a position <= pos, or
 * NONE. */
static uint32_t last_upto(const struct check *c, const struct group *g, uint32_t pos)
{
	uint32_t lo = g->beg, hi = g->end;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (c->node[c->kw[mid]].pos <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == g->beg ? NONE : c->kw[lo - 1];
}

/* reads_before returns the place in c->reads just after the last read of
 * session s and key k that comes before node `before` (of session s) in
 * session order; the reads of (s, k) before it are then found by
 * stepping back. */
static uint32_t reads_before(const struct check *c, uint32_t s, uint32_t k, uint32_t before)
{
	uint32_t lo = 0, hi = c->n_reads;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct node *x = &c->node[c->reads[mid]];
		bool less = x->sess != s  ? x->sess < s
			    : x->key != k ? x->key < k
					  : c->reads[mid] < before;
		if (less)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* scan_reads steps back through the reads of session s and key k from
 * place `from` (exclusive) and returns the first one that read a write
 * newer_than w1, or NONE; spends *budget. */
static uint32_t scan_reads(const struct check *c, uint32_t s, uint32_t k, uint32_t from,
			   uint32_t w1, int *budget)
{
	/* A run of reads that returned one write needs one look. */
	for (uint32_t j = from; j > 0 && *budget > 0; j = c->run_start[j - 1], (*budget)--) {
		const struct node *r1 = &c->node[c->reads[j - 1]];
		if (r1->sess != s || r1->key != k)
			break;
		if (!r1->thin && newer_than(c, w1, r1->writer))
			return c->reads[j - 1];
	}
	return NONE;
}

/* ---------------------------------------------------------------------- */
/* Checking a read                                                         */

/* name_violation fills v with the most specific name for bad read r (of
 * session s, clock vc), which read w1 and has `newer` in its past. */
static void name_violation(const struct check *c, uint32_t r, const uint32_t *vc, uint32_t newer,
			   struct cc_violation *v)
{
	const struct node *rn = &c->node[r];
	uint32_t w1 = rn->writer, k = rn->key, s = rn->sess;
	int budget = NAME_BUDGET;

	v->read = rn->op;
	v->write = op_of(c, w1);
	v->via_read = v->via_write = SIZE_MAX;

	/* read-your-writes: the session's own latest ok write of k before r. */
	const struct group *g = find_group(c, k, s);
	if (g != NULL) {
		uint32_t o = last_upto(c, g, rn->pos - 1);
		while (o != NONE && !c->node[o].ok && budget-- > 0)
			o = last_upto(c, g, c->node[o].pos - 1);
		if (o != NONE && c->node[o].ok && newer_than(c, w1, o)) {
			v->kind = CC_READ_YOUR_WRITES;
			v->newer = op_of(c, o);
			return;
		}
	}

	/* monotonic-reads: an earlier read of k in the session saw newer. */
	uint32_t r1 = scan_reads(c, s, k, rn->row, w1, &budget);
	if (r1 != NONE) {
		v->kind = CC_MONOTONIC_READS;
		v->newer = op_of(c, c->node[r1].writer);
		v->via_read = op_of(c, r1);
		return;
	}

	/* monotonic-writes: w1's session wrote k again, and r saw it. */
	if (w1 != NONE) {
		uint32_t s1 = c->node[w1].sess;
		const struct group *g1 = find_group(c, k, s1);
		uint32_t last = g1 ? last_upto(c, g1, vc[c->col[s1]]) : NONE;
		if (last != NONE && c->node[last].pos > c->node[w1].pos) {
			v->kind = CC_MONOTONIC_WRITES;
			v->newer = op_of(c, last);
			return;
		}
	}

	/* writes-follow-reads: another session read newer, then wrote w2,
	 * and w2 is in r's past. The latest write of each session in r's
	 * past has the most reads before it. */
	for (uint32_t col = 0; col < c->w && budget > 0; col++) {
		uint32_t s2 = c->colsess[col];
		if (s2 == s || vc[col] == 0)
			continue;
		uint32_t w2 = c->node[c->sbeg[s2] + vc[col] - 1].lastw;
		if (w2 == NONE)
			continue;
		uint32_t from = reads_before(c, s2, k, w2);
		uint32_t x = scan_reads(c, s2, k, from, w1, &budget);
		if (x != NONE) {
			v->kind = CC_WRITES_FOLLOW_READS;
			v->newer = op_of(c, c->node[x].writer);
			v->via_read = op_of(c, x);
			v->via_write = op_of(c, w2);
			return;
		}
	}

	v->kind = w1 == NONE ? CC_WRITE_CO_INIT_READ : CC_WRITE_CO_READ;
	v->newer = op_of(c, newer);
}

/* check_read looks for a write of r's key in r's causal past (clock vc)
 * that is CO-after what r read, and reports r if there is one. */
static void check_read(struct check *c, uint32_t r, const uint32_t *vc)
{
	const struct node *rn = &c->node[r];
	uint32_t w1 = rn->writer, newer = NONE;

	for (uint32_t gi = c->kbeg[rn->key]; gi < c->kbeg[rn->key + 1]; gi++) {
		const struct group *g = &c->group[gi];
		uint32_t upto = vc[c->col[g->sess]];
		if (upto == 0)
			continue;
		uint32_t last = last_upto(c, g, upto);
		if (newer_than(c, w1, last)) {
			newer = last;
			break;
		}
	}
	if (newer == NONE)
		return;
	struct cc_violation v;
	name_violation(c, r, vc, newer, &v);
	add_violation(c, &v);
}

/* ---------------------------------------------------------------------- */
/* Cycles                                                                  */

/* so_next says whether node b follows node a in session order directly. */
static bool so_next(const struct check *c, uint32_t a, uint32_t b)
{
	return b == a + 1 && c->node[a].sess == c->node[b].sess;
}

/* report_cycle finds a cycle among the nodes not done (every one of
 * which has a predecessor not done) and reports it. */
static void report_cycle(struct check *c, const bool *done)
{
	uint32_t *seen = sp_calloc(c->m, sizeof(*seen)); /* place in path + 1 */
	uint32_t *path = sp_malloc(c->m * sizeof(*path));
	uint32_t len = 0, u = 0;

	while (done[u])
		u++;
	while (seen[u] == 0) {
		seen[u] = ++len;
		path[len - 1] = u;
		const struct node *x = &c->node[u];
		if (x->pos > 1 && !done[u - 1])
			u = u - 1;
		else
			u = x->writer; /* not done, or u would have been */
	}
	/* path[seen[u] - 1 .. len) walks the cycle backwards. */
	uint32_t first = seen[u] - 1, k = len - first;
	uint32_t *cyc = sp_malloc(k * sizeof(*cyc));
	for (uint32_t i = 0; i < k; i++)
		cyc[i] = path[len - 1 - i];
	/* Start at a node its cycle predecessor does not directly precede in
	 * session order, so that no run of one session wraps around. */
	uint32_t start = 0;
	for (uint32_t i = 0; i < k; i++) {
		if (!so_next(c, cyc[(i + k - 1) % k], cyc[i])) {
			start = i;
			break;
		}
	}
	struct cc_report *r = c->out;
	r->cycle = sp_malloc(k * sizeof(*r->cycle));
	for (uint32_t i = 0; i < k; i++) {
		uint32_t x = cyc[(start + i) % k];
		uint32_t prev = cyc[(start + i + k - 1) % k], next = cyc[(start + i + 1) % k];
		/* Keep a run's first and last op only. */
		if (i > 0 && i + 1 < k && so_next(c, prev, x) && so_next(c, x, next))
			continue;
		r->cycle[r->n_cycle++] = c->node[x].op;
	}
	struct cc_violation v = {.kind = CC_CYCLIC_CO,
				 .read = SIZE_MAX,
				 .write = SIZE_MAX,
				 .newer = SIZE_MAX,
				 .via_read = SIZE_MAX,
				 .via_write = SIZE_MAX};
	add_violation(c, &v);
	free(cyc);
	free(path);
	free(seen);
}

/* ---------------------------------------------------------------------- */
/* cc_check                                                                */

static const char *const kind_names[] = {
    [CC_CYCLIC_CO] = "CyclicCO",
    [CC_WRITE_CO_READ] = "WriteCORead",
    [CC_WRITE_CO_INIT_READ] = "WriteCOInitRead",
    [CC_THIN_AIR_READ] = "ThinAirRead",
    [CC_READ_YOUR_WRITES] = "read-your-writes",
    [CC_MONOTONIC_READS] = "monotonic-reads",
    [CC_MONOTONIC_WRITES] = "monotonic-writes",
    [CC_WRITES_FOLLOW_READS] = "writes-follow-reads",
};

const char *cc_kind_name(enum cc_kind kind)
{
	if (kind < CC_CYCLIC_CO || kind > CC_KIND_MAX)
		return "?";
	return kind_names[kind];
}

void cc_report_free(struct cc_report *r)
{
	if (r == NULL)
		return;
	free(r->v);
	free(r->cycle);
	memset(r, 0, sizeof(*r));
	r->bad_op = r->bad_other = SIZE_MAX;
}

/* in_co says whether op o is in CO: ok ops, and info writes that some ok
 * read returned (read_by). An info write nobody read may never have been
 * applied, and assuming it was could only invent violations. */
static bool in_co(const struct cc_op *o, bool read_by)
{
	return o->result == CC_OK || (o->kind == CC_WRITE && o->result == CC_INFO && read_by);
}

/* op_error says why op o is malformed, or NULL. */
static const char *op_error(const struct cc_op *o)
{
	if (o->kind != CC_READ && o->kind != CC_WRITE)
		return "kind is not read or write";
	if (o->result < CC_OK || o->result > CC_INFO)
		return "result is not ok, fail or info";
	if (o->kind == CC_WRITE && o->value == NULL)
		return "a write without a value";
	if ((o->key == NULL && o->klen != 0) || (o->session == NULL && o->slen != 0))
		return "a NULL string with a non-zero length";
	return NULL;
}

/* For sorting the nodes by session, then invoke, then index. */
struct node_key {
	uint32_t sess;
	uint32_t op;
	uint64_t invoke;
};

static int cmp_node_key(const void *pa, const void *pb)
{
	const struct node_key *a = pa, *b = pb;
	if (a->sess != b->sess)
		return a->sess < b->sess ? -1 : 1;
	if (a->invoke != b->invoke)
		return a->invoke < b->invoke ? -1 : 1;
	return a->op < b->op ? -1 : a->op > b->op;
}

/* qsort has no context argument; these sort node ids through a table
 * of (major, minor) pairs packed beside each id. */
struct ranked {
	uint64_t major; /* key << 32 | session, or session << 32 | key */
	uint32_t id;
};

static int cmp_ranked(const void *pa, const void *pb)
{
	const struct ranked *a = pa, *b = pb;
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static int cmp_violation(const void *pa, const void *pb)
{
	const struct cc_violation *a = pa, *b = pb;
	return a->read < b->read ? -1 : a->read > b->read;
}

static int fail_input(struct cc_report *out, size_t bad, size_t other, const char *why)
{
	out->bad_op = bad;
	out->bad_other = other;
	out->why = why;
	return SP_ERR_INVAL;
}

int cc_check(const struct cc_op *ops, size_t n, struct cc_report *out)
{
	memset(out, 0, sizeof(*out));
	out->bad_op = out->bad_other = SIZE_MAX;
	if (n > (size_t)INT32_MAX)
		return SP_ERR_TOOBIG;
	for (size_t i = 0; i < n; i++) {
		const char *why = op_error(&ops[i]);
		if (why != NULL)
			return fail_input(out, i, SIZE_MAX, why);
	}

	int rc = 0;
	struct check c = {.ops = ops, .n = n, .out = out};
	struct intern keys, sessions, values;
	uint32_t *kid = sp_malloc((n ? n : 1) * sizeof(*kid));
	uint32_t *sid = sp_malloc((n ? n : 1) * sizeof(*sid));
	uint32_t *value_op = sp_malloc((n ? n : 1) * sizeof(*value_op));
	uint32_t *node_of = sp_malloc((n ? n : 1) * sizeof(*node_of));
	char *names = NULL;
	intern_init(&keys, n);
	intern_init(&sessions, n);
	intern_init(&values, n);

	/* 1. Keys, sessions, written values. */
	size_t unnamed = 0;
	for (size_t i = 0; i < n; i++)
		unnamed += ops[i].session == NULL;
	names = sp_malloc((unnamed ? unnamed : 1) * PROCESS_NAME_MAX);
	unnamed = 0;
	for (size_t i = 0; i < n; i++) {
		const struct cc_op *o = &ops[i];
		kid[i] = intern_id(&keys, o->key, o->klen, NULL);
		if (o->session != NULL) {
			sid[i] = intern_id(&sessions, o->session, o->slen, NULL);
		} else {
			char *name = names + unnamed++ * PROCESS_NAME_MAX;
			int len = snprintf(name, PROCESS_NAME_MAX, "%" PRIu64, o->process);
			sid[i] = intern_id(&sessions, (const uint8_t *)name, (size_t)len, NULL);
		}
		if (o->kind == CC_WRITE) {
			bool added;
			uint32_t v = intern_id(&values, o->value, o->vlen, &added);
			if (!added) {
				rc = fail_input(out, i, value_op[v],
						"a value written twice (each write must write a "
						"value of its own)");
				goto free_tables;
			}
			value_op[v] = (uint32_t)i;
		}
	}
	c.keys = keys.n;
	c.sessions = sessions.n;
	out->keys = keys.n;
	out->sessions = sessions.n;

	/* Which writes an ok read returned (of their own key). */
	bool *read_by = sp_calloc(n ? n : 1, sizeof(*read_by));
	for (size_t i = 0; i < n; i++) {
		const struct cc_op *o = &ops[i];
		if (o->kind != CC_READ || o->result != CC_OK || o->value == NULL)
			continue;
		uint32_t vid = intern_find(&values, o->value, o->vlen);
		if (vid != NONE && kid[value_op[vid]] == kid[i])
			read_by[value_op[vid]] = true;
	}

	/* 2. The nodes, by session and invoke. */
	struct node_key *nk = sp_malloc((n ? n : 1) * sizeof(*nk));
	uint32_t m = 0;
	for (size_t i = 0; i < n; i++) {
		node_of[i] = NONE;
		if (in_co(&ops[i], read_by[i]))
			nk[m++] = (struct node_key){sid[i], (uint32_t)i, ops[i].invoke};
	}
	qsort(nk, m, sizeof(*nk), cmp_node_key);
	c.m = m;
	out->in_co = m;
	c.node = sp_calloc(m ? m : 1, sizeof(*c.node));
	c.sbeg = sp_calloc((size_t)c.sessions + 1, sizeof(*c.sbeg));
	for (uint32_t u = 0; u < m; u++) {
		const struct cc_op *o = &ops[nk[u].op];
		struct node *x = &c.node[u];
		x->op = nk[u].op;
		x->sess = nk[u].sess;
		x->pos = u > 0 && c.node[u - 1].sess == x->sess ? c.node[u - 1].pos + 1 : 1;
		x->key = kid[x->op];
		x->writer = NONE;
		x->is_write = o->kind == CC_WRITE;
		x->ok = o->result == CC_OK;
		x->lastw = x->is_write ? u : x->pos > 1 ? c.node[u - 1].lastw : NONE;
		node_of[x->op] = u;
		c.sbeg[x->sess + 1]++;
	}
	free(nk);
	free(read_by);
	for (uint32_t s = 0; s < c.sessions; s++)
		c.sbeg[s + 1] += c.sbeg[s];

	/* 3. Reads-from; thin-air reads are reported here. */
	uint32_t *indeg = sp_calloc(m ? m : 1, sizeof(*indeg));
	uint32_t *rstart = sp_calloc((size_t)m + 1, sizeof(*rstart));
	uint32_t n_writes = 0;
	for (uint32_t u = 0; u < m; u++) {
		struct node *x = &c.node[u];
		const struct cc_op *o = &ops[x->op];
		if (x->pos > 1)
			indeg[u]++;
		if (x->is_write) {
			x->row = n_writes++;
			continue;
		}
		if (o->value == NULL)
			continue;
		uint32_t vid = intern_find(&values, o->value, o->vlen);
		uint32_t w = vid == NONE ? NONE : value_op[vid];
		x->thin = true;
		if (w != NONE && node_of[w] != NONE && kid[w] == x->key) {
			x->thin = false;
			x->writer = node_of[w];
			indeg[u]++;
			rstart[x->writer + 1]++;
		}
		if (x->thin) {
			struct cc_violation v = {.kind = CC_THIN_AIR_READ,
						 .read = x->op,
						 .write = w == NONE ? SIZE_MAX : w,
						 .newer = SIZE_MAX,
						 .via_read = SIZE_MAX,
						 .via_write = SIZE_MAX};
			add_violation(&c, &v);
		}
	}
	for (uint32_t u = 0; u < m; u++)
		rstart[u + 1] += rstart[u];
	uint32_t *readers = sp_malloc((rstart[m] ? rstart[m] : 1) * sizeof(*readers));
	uint32_t *fill = sp_malloc((m ? m : 1) * sizeof(*fill));
	memcpy(fill, rstart, m * sizeof(*fill));
	for (uint32_t u = 0; u < m; u++)
		if (c.node[u].writer != NONE)
			readers[fill[c.node[u].writer]++] = u;
	free(fill);

	/* 4. Topological order (Kahn's algorithm, depth first). */
	uint32_t *topo = sp_malloc((m ? m : 1) * sizeof(*topo));
	uint32_t *stack = sp_malloc((m ? m : 1) * sizeof(*stack));
	bool *done = sp_calloc(m ? m : 1, sizeof(*done));
	uint32_t ntopo = 0, sp = 0;
	for (uint32_t u = m; u-- > 0;)
		if (indeg[u] == 0)
			stack[sp++] = u;
	while (sp > 0) {
		uint32_t u = stack[--sp];
		topo[ntopo++] = u;
		done[u] = true;
		for (uint32_t j = rstart[u]; j < rstart[u + 1]; j++)
			if (--indeg[readers[j]] == 0)
				stack[sp++] = readers[j];
		if (u + 1 < m && so_next(&c, u, u + 1) && --indeg[u + 1] == 0)
			stack[sp++] = u + 1;
	}
	free(stack);
	if (ntopo < m) {
		/* A cycle: only it is reported. */
		out->n_violations = 0;
		memset(out->count, 0, sizeof(out->count));
		report_cycle(&c, done);
		goto free_graph;
	}

	/* 5. Clock columns: the sessions with a write in CO. */
	c.col = sp_malloc(((size_t)c.sessions + 1) * sizeof(*c.col));
	c.colsess = sp_malloc(((size_t)c.sessions + 1) * sizeof(*c.colsess));
	for (uint32_t s = 0; s < c.sessions; s++)
		c.col[s] = NONE;
	for (uint32_t u = 0; u < m; u++) {
		uint32_t s = c.node[u].sess;
		if (c.node[u].is_write && c.col[s] == NONE) {
			c.col[s] = c.w;
			c.colsess[c.w++] = s;
		}
	}
	size_t rows = (size_t)n_writes + c.sessions;
	if (c.w > 0 && rows > CC_MAX_CLOCK_BYTES / sizeof(uint32_t) / c.w) {
		rc = SP_ERR_TOOBIG;
		goto free_graph;
	}
	c.wvc = sp_malloc(((size_t)n_writes * c.w + 1) * sizeof(*c.wvc));
	c.cur = sp_calloc((size_t)c.sessions * c.w + 1, sizeof(*c.cur));

	/* The writes of each key by each session, and the reads by session
	 * and key. */
	struct ranked *rk = sp_malloc((m ? m : 1) * sizeof(*rk));
	uint32_t nk_w = 0, nk_r = 0;
	for (uint32_t u = 0; u < m; u++)
		if (c.node[u].is_write)
			rk[nk_w++] =
			    (struct ranked){(uint64_t)c.node[u].key << 32 | c.node[u].sess, u};
	qsort(rk, nk_w, sizeof(*rk), cmp_ranked);
	c.kw = sp_malloc((nk_w ? nk_w : 1) * sizeof(*c.kw));
	c.group = sp_malloc((nk_w ? nk_w : 1) * sizeof(*c.group));
	c.kbeg = sp_calloc((size_t)c.keys + 1, sizeof(*c.kbeg));
	uint32_t ngroups = 0;
	for (uint32_t j = 0; j < nk_w; j++) {
		uint32_t u = rk[j].id;
		c.kw[j] = u;
		if (j == 0 || rk[j].major != rk[j - 1].major) {
			c.group[ngroups++] =
			    (struct group){c.node[u].key, c.node[u].sess, j, j + 1};
			c.kbeg[c.node[u].key + 1]++;
		} else {
			c.group[ngroups - 1].end = j + 1;
		}
	}
	for (uint32_t k = 0; k < c.keys; k++)
		c.kbeg[k + 1] += c.kbeg[k];
	for (uint32_t u = 0; u < m; u++)
		if (!c.node[u].is_write)
			rk[nk_r++] =
			    (struct ranked){(uint64_t)c.node[u].sess << 32 | c.node[u].key, u};
	qsort(rk, nk_r, sizeof(*rk), cmp_ranked);
	c.reads = sp_malloc((nk_r ? nk_r : 1) * sizeof(*c.reads));
	c.n_reads = nk_r;
	c.run_start = sp_malloc((nk_r ? nk_r : 1) * sizeof(*c.run_start));
	for (uint32_t j = 0; j < nk_r; j++) {
		const struct node *x = &c.node[rk[j].id];
		c.reads[j] = rk[j].id;
		c.node[rk[j].id].row = j;
		bool same_run = j > 0 && rk[j].major == rk[j - 1].major &&
				c.node[rk[j - 1].id].writer == x->writer;
		c.run_start[j] = same_run ? c.run_start[j - 1] : j;
	}
	free(rk);

	/* 5, 6. Clocks in topological order; each read checked as its clock
	 * is known. */
	for (uint32_t t = 0; t < m; t++) {
		uint32_t u = topo[t];
		const struct node *x = &c.node[u];
		uint32_t *vc = c.cur + (size_t)x->sess * c.w;
		if (x->writer != NONE) {
			const uint32_t *from = wvc_of(&c, x->writer);
			for (uint32_t k = 0; k < c.w; k++)
				if (from[k] > vc[k])
					vc[k] = from[k];
		}
		if (c.col[x->sess] != NONE)
			vc[c.col[x->sess]] = x->pos;
		if (x->is_write)
			memcpy(c.wvc + (size_t)x->row * c.w, vc, c.w * sizeof(*vc));
		else if (!x->thin)
			check_read(&c, u, vc);
	}
	if (out->n_violations > 1)
		qsort(out->v, out->n_violations, sizeof(*out->v), cmp_violation);

free_graph:
	free(topo);
	free(done);
	free(readers);
	free(rstart);
	free(indeg);
	free(c.run_start);
	free(c.reads);
	free(c.kbeg);
	free(c.group);
	free(c.kw);
	free(c.cur);
	free(c.wvc);
	free(c.colsess);
	free(c.col);
	free(c.sbeg);
	free(c.node);
free_tables:
	intern_free(&values);
	intern_free(&sessions);
	intern_free(&keys);
	free(names);
	free(node_of);
	free(value_op);
	free(sid);
	free(kid);
	if (rc != 0) {
		size_t bad = out->bad_op, other = out->bad_other;
		const char *why = out->why;
		cc_report_free(out);
		out->bad_op = bad;
		out->bad_other = other;
		out->why = why;
	} else {
		out->causal = out->n_violations == 0;
	}
	return rc;
}

/* ---------------------------------------------------------------------- */
/* From a parsed history                                                   */

int cc_ops_from_history(const struct history *h, struct cc_op **out, size_t *bad)
{
	struct cc_op *ops = sp_calloc(h->n ? h->n : 1, sizeof(*ops));
	for (size_t i = 0; i < h->n; i++) {
		const struct lin_op *o = &h->ops[i];
		struct cc_op *c = &ops[i];
		if (o->kind != LIN_READ && o->kind != LIN_WRITE) {
			free(ops);
			*out = NULL;
			if (bad != NULL)
				*bad = i;
			return SP_ERR_INVAL;
		}
		const struct lin_value *v = o->kind == LIN_WRITE ? &o->arg : &o->result;
		c->kind = o->kind == LIN_WRITE ? CC_WRITE : CC_READ;
		c->process = o->client;
		c->node = h->node[i];
		if (!h->session[i].nil) {
			c->session = h->session[i].p;
			c->slen = h->session[i].len;
		}
		c->key = o->key;
		c->klen = o->klen;
		if (!v->nil && (o->kind == LIN_WRITE || o->outcome == LIN_OK)) {
			c->value = v->p ? v->p : empty_bytes;
			c->vlen = v->len;
		}
		c->invoke = o->call;
		c->complete = o->ret;
		c->result = o->outcome == LIN_OK     ? CC_OK
			    : o->outcome == LIN_FAIL ? CC_FAIL
						     : CC_INFO;
	}
	*out = ops;
	return 0;
}
