/*
 * Tests for the Raft core (src/engine/strong/raft) driven by hand: a tiny
 * in-process cluster whose network and disks the test controls step by
 * step. The deterministic simulator (tests/sim) explores schedules at
 * random; these tests pin down named scenarios: a first election, a
 * committed write, the Figure 8 case (§5.4.2), pre-vote keeping a
 * partitioned node from disrupting, votes and acknowledgements held until
 * persisted, ReadIndex batching, leases, leadership transfer, membership
 * changes and snapshots.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "engine/strong/raft/raft.h"

#define MAXN 5

/* A message in flight, deep-copied. */
struct wire {
	struct raft_msg m;
	struct raft_entry *entries;
	uint8_t *data;
	bool dropped;
};

struct tnode {
	struct raft *r;
	uint64_t now;
	bool down;
	/* the "disk" */
	struct raft_hard_state hs;
	struct raft_entry *log; /* owned copies, index i at log[i-1] */
	uint64_t log_n;
	uint64_t pending_seq; /* latest seq handed out, not yet persisted */
	bool auto_persist;
	/* state machine: sum of applied NORMAL entries' first byte */
	uint64_t applied_n;
	uint64_t applied_sum;
	uint64_t last_applied;
	/* snapshot */
	bool has_snap;
	struct raft_snapshot_meta snap;
	uint8_t snap_bytes[64];
	uint32_t snap_len;
	uint8_t rx[64];
	uint32_t rx_len;
	/* reads answered */
	uint64_t read_ids[64];
	uint64_t read_idx[64];
	int read_err[64];
	int nreads;
};

struct tcluster {
	int n;
	struct tnode nodes[MAXN + 1]; /* 1-based */
	struct wire *q;
	size_t qn, qcap;
	bool cut[MAXN + 1][MAXN + 1];
	/* when non-zero, APPENDs lose every entry at or past this index (a
	 * leader that sent a shorter batch): the rest of the message, with
	 * its heartbeat, still arrives */
	uint64_t hold_from;
};

static uint32_t g_max_entries = 8;

static struct raft_config cfg_for(uint64_t id)
{
	struct raft_config c;
	raft_config_default(&c, id);
	c.seed = id * 7919;
	c.max_entries_per_msg = g_max_entries;
	c.compaction_trail = 2;
	return c;
}

static void node_open(struct tcluster *c, int id, bool bootstrap)
{
	struct tnode *n = &c->nodes[id];
	struct raft_restore rs = {0};
	rs.hs = n->hs;
	if (n->has_snap) {
		rs.has_snapshot = true;
		rs.snap = n->snap;
	}
	rs.entries = n->log;
	rs.n_entries = n->log_n;
	if (n->has_snap) {
		/* the disk keeps only entries after the snapshot in this harness */
		uint64_t skip = 0;
		while (skip < n->log_n && n->log[skip].index <= n->snap.index)
			skip++;
		rs.entries = n->log + skip;
		rs.n_entries = n->log_n - skip;
	}
	if (bootstrap) {
		for (int i = 1; i <= c->n; i++) {
			rs.bootstrap.members[rs.bootstrap.n].id = (uint64_t)i;
			rs.bootstrap.members[rs.bootstrap.n].role = RAFT_VOTER;
			rs.bootstrap.n++;
		}
	}
	struct raft_config cfg = cfg_for((uint64_t)id);
	assert_int_equal(raft_open(&n->r, &cfg, &rs, n->now), 0);
	n->down = false;
	n->applied_sum = 0;
	n->applied_n = 0;
	n->last_applied = n->has_snap ? n->snap.index : 0;
	if (n->has_snap) {
		n->applied_sum = n->snap_bytes[0];
		n->applied_n = n->snap_bytes[1];
	}
}

static void cluster_init(struct tcluster *c, int n)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	for (int i = 1; i <= n; i++) {
		c->nodes[i].auto_persist = true;
		c->nodes[i].now = 1000;
		node_open(c, i, true);
	}
}

static void free_log(struct tnode *n)
{
	for (uint64_t i = 0; i < n->log_n; i++)
		free((void *)n->log[i].data);
	free(n->log);
	n->log = NULL;
	n->log_n = 0;
}

static void cluster_free(struct tcluster *c)
{
	for (int i = 1; i <= c->n; i++) {
		raft_close(c->nodes[i].r); /* NULL after a crash: fine */
		free_log(&c->nodes[i]);
	}
	for (size_t i = 0; i < c->qn; i++) {
		free(c->q[i].entries);
		free(c->q[i].data);
	}
	free(c->q);
}

static void enqueue(struct tcluster *c, const struct raft_msg *m)
{
	if (c->qn == c->qcap) {
		c->qcap = c->qcap ? c->qcap * 2 : 64;
		c->q = sp_realloc(c->q, c->qcap * sizeof(*c->q));
	}
	struct wire *w = &c->q[c->qn++];
	memset(w, 0, sizeof(*w));
	w->m = *m;
	if (m->n_entries) {
		w->entries = sp_calloc(m->n_entries, sizeof(*w->entries));
		size_t total = 0;
		for (uint32_t i = 0; i < m->n_entries; i++)
			total += m->entries[i].len;
		w->data = sp_malloc(total + 1);
		size_t off = 0;
		for (uint32_t i = 0; i < m->n_entries; i++) {
			w->entries[i] = m->entries[i];
			if (m->entries[i].len)
				memcpy(w->data + off, m->entries[i].data, m->entries[i].len);
			w->entries[i].data = w->data + off;
			off += m->entries[i].len;
		}
		w->m.entries = w->entries;
	}
}

static void disk_apply(struct tnode *n, const struct raft_update *u)
{
	if (u->truncate_after != UINT64_MAX) {
		while (n->log_n && n->log[n->log_n - 1].index > u->truncate_after) {
			free((void *)n->log[n->log_n - 1].data);
			n->log_n--;
		}
	}
	if (u->n_entries) {
		n->log = sp_realloc(n->log, (n->log_n + u->n_entries) * sizeof(*n->log));
		for (size_t i = 0; i < u->n_entries; i++) {
			struct raft_entry e = u->entries[i];
			uint8_t *d = NULL;
			if (e.len) {
				d = sp_malloc(e.len);
				memcpy(d, e.data, e.len);
			}
			e.data = d;
			/* a replaced suffix with no explicit truncate never happens */
			assert_true(n->log_n == 0 || n->log[n->log_n - 1].index + 1 == e.index ||
				    (n->has_snap && n->log_n == 0));
			n->log[n->log_n++] = e;
		}
	}
	if (u->hs_changed)
		n->hs = u->hs;
}

/* pump drains node id's updates: persist (if auto), enqueue messages,
 * apply, record reads. */
static void pump(struct tcluster *c, int id)
{
	struct tnode *n = &c->nodes[id];
	struct raft_update u;
	while (!n->down && raft_take_update(n->r, &u)) {
		if (u.persist_seq) {
			disk_apply(n, &u);
			n->pending_seq = u.persist_seq;
		}
		if (u.snap_chunk_len) {
			if (u.snap_offset == 0)
				n->rx_len = 0;
			memcpy(n->rx + n->rx_len, u.snap_chunk, u.snap_chunk_len);
			n->rx_len += u.snap_chunk_len;
		}
		for (size_t i = 0; i < u.n_msgs; i++) {
			struct raft_msg m = u.msgs[i];
			if (m.type == RAFT_MSG_SNAPSHOT) {
				assert_true(n->has_snap);
				uint32_t left = n->snap_len - (uint32_t)m.offset;
				m.len = left > 4 ? 4 : left; /* tiny chunks */
				m.data = n->snap_bytes + m.offset;
				m.last = m.offset + m.len == n->snap_len;
			}
			enqueue(c, &m);
		}
		for (size_t i = 0; i < u.n_committed; i++) {
			const struct raft_entry *e = &u.committed[i];
			assert_int_equal(e->index, n->last_applied + 1);
			n->last_applied = e->index;
			if (e->type == RAFT_ENTRY_NORMAL) {
				n->applied_sum += e->data[0];
				n->applied_n++;
			}
		}
		for (size_t i = 0; i < u.n_reads && n->nreads < 64; i++) {
			n->read_ids[n->nreads] = u.reads[i].id;
			n->read_idx[n->nreads] = u.reads[i].index;
			n->read_err[n->nreads] = u.reads[i].err;
			n->nreads++;
		}
		if (u.snap_complete) {
			n->snap = u.snap_meta;
			n->has_snap = true;
			memcpy(n->snap_bytes, n->rx, n->rx_len);
			n->snap_len = n->rx_len;
			free_log(n);
			n->applied_sum = n->snap_bytes[0];
			n->applied_n = n->snap_bytes[1];
			n->last_applied = u.snap_meta.index;
			raft_snapshot_installed(n->r, u.snap_meta.index);
		}
		if (u.persist_seq && n->auto_persist)
			raft_persisted(n->r, u.persist_seq);
	}
}

static void pump_all(struct tcluster *c)
{
	for (int i = 1; i <= c->n; i++)
		pump(c, i);
}

/* deliver everything queued (and what it causes) until quiet */
static void deliver_all(struct tcluster *c)
{
	pump_all(c);
	for (int rounds = 0; rounds < 1000 && c->qn; rounds++) {
		struct wire *q = c->q;
		size_t qn = c->qn;
		c->q = NULL;
		c->qn = c->qcap = 0;
		for (size_t i = 0; i < qn; i++) {
			struct raft_msg *m = &q[i].m;
			struct tnode *to = &c->nodes[m->to];
			if (c->hold_from && m->type == RAFT_MSG_APPEND && m->n_entries &&
			    m->prev_index + m->n_entries >= c->hold_from)
				m->n_entries = m->prev_index + 1 >= c->hold_from
						   ? 0
						   : (uint32_t)(c->hold_from - 1 - m->prev_index);
			bool ok = !to->down && !c->cut[m->from][m->to];
			if (getenv("TRACE"))
				fprintf(stderr,
					"%s %lu->%lu t%lu prev %lu/%lu n %u idx %lu rej %d %s\n",
					raft_msg_type_name(m->type), (unsigned long)m->from,
					(unsigned long)m->to, (unsigned long)m->term,
					(unsigned long)m->prev_index, (unsigned long)m->prev_term,
					m->n_entries, (unsigned long)m->index, m->reject,
					ok ? "" : "DROP");
			if (ok)
				raft_step(to->r, m);
			pump(c, (int)m->to);
			free(q[i].entries);
			free(q[i].data);
		}
		free(q);
		pump_all(c);
	}
}

static void advance(struct tcluster *c, uint64_t ms)
{
	for (uint64_t t = 0; t < ms; t += 5) {
		for (int i = 1; i <= c->n; i++) {
			struct tnode *n = &c->nodes[i];
			if (n->down)
				continue;
			n->now += 5;
			raft_tick(n->r, n->now);
		}
		deliver_all(c);
	}
}

static int leader_of(struct tcluster *c)
{
	int l = 0;
	for (int i = 1; i <= c->n; i++)
		if (!c->nodes[i].down && raft_role_of(c->nodes[i].r) == RAFT_LEADER) {
			if (!l || raft_term(c->nodes[i].r) > raft_term(c->nodes[l].r))
				l = i;
		}
	return l;
}

static void isolate(struct tcluster *c, int id, bool on)
{
	for (int i = 1; i <= c->n; i++) {
		c->cut[id][i] = on;
		c->cut[i][id] = on;
	}
}

static uint64_t propose(struct tcluster *c, int id, uint8_t v)
{
	uint64_t idx = 0, term = 0;
	assert_int_equal(raft_propose(c->nodes[id].r, &v, 1, &idx, &term), 0);
	return idx;
}

static void test_elects_and_commits(void **state)
{
	(void)state;
	struct tcluster c;
	cluster_init(&c, 3);
	advance(&c, 600);
	int l = leader_of(&c);
	assert_true(l > 0);
	for (int i = 0; i < 20; i++)
		propose(&c, l, 1);
	deliver_all(&c);
	advance(&c, 100);
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(c.nodes[i].applied_n, 20);
		assert_int_equal(raft_commit_index(c.nodes[i].r), raft_last_index(c.nodes[l].r));
	}
	cluster_free(&c);
}

static void test_prevote_partitioned_node_does_not_disrupt(void **state)
{
	(void)state;
	struct tcluster c;
	cluster_init(&c, 3);
	advance(&c, 600);
	int l = leader_of(&c);
	uint64_t term = raft_term(c.nodes[l].r);
	int f = l % 3 + 1;
	isolate(&c, f, true);
	advance(&c, 2000);
	/* The isolated node pre-votes forever but never bumps its term. */
	assert_int_equal(raft_term(c.nodes[f].r), term);
	isolate(&c, f, false);
	advance(&c, 300);
	assert_int_equal(leader_of(&c), l);
	assert_int_equal(raft_term(c.nodes[l].r), term);
	cluster_free(&c);
}

static void test_check_quorum_steps_down(void **state)
{
	(void)state;
	struct tcluster c;
	cluster_init(&c, 3);
	advance(&c, 600);
	int l = leader_of(&c);
	isolate(&c, l, true);
	advance(&c, 400);
	assert_int_not_equal(raft_role_of(c.nodes[l].r), RAFT_LEADER);
	int l2 = leader_of(&c);
	assert_true(l2 > 0 && l2 != l);
	uint64_t idx = 0;
	assert_int_equal(raft_read_lease(c.nodes[l].r, &idx), SP_ERR_NOTLEADER);
	cluster_free(&c);
}

static void test_vote_and_ack_wait_for_persistence(void **state)
{
	(void)state;
	struct tcluster c;
	cluster_init(&c, 3);
	for (int i = 1; i <= 3; i++)
		c.nodes[i].auto_persist = false;
	advance(&c, 1000);
	/* Nothing is durable anywhere: no vote can have been granted. */
	assert_int_equal(leader_of(&c), 0);
	for (int i = 1; i <= 3; i++) {
		c.nodes[i].auto_persist = true;
		if (c.nodes[i].pending_seq)
			raft_persisted(c.nodes[i].r, c.nodes[i].pending_seq);
	}
	advance(&c, 1000);
	int l = leader_of(&c);
	assert_true(l > 0);
	/* A follower that has not persisted does not acknowledge: with both
	 * followers holding back, nothing commits. */
	uint64_t commit = raft_commit_index(c.nodes[l].r);
	for (int i = 1; i <= 3; i++)
		if (i != l)
			c.nodes[i].auto_persist = false;
	propose(&c, l, 7);
	deliver_all(&c);
	assert_int_equal(raft_commit_index(c.nodes[l].r), commit);
	int f = l % 3 + 1;
	raft_persisted(c.nodes[f].r, c.nodes[f].pending_seq);
	deliver_all(&c);
	assert_int_equal(raft_commit_index(c.nodes[l].r), commit + 1);
	cluster_free(&c);
}

static void crash(struct tcluster *c, int id)
{
	raft_close(c->nodes[id].r);
	c->nodes[id].r = NULL;
	c->nodes[id].down = true;
}

static void restart(struct tcluster *c, int id)
{
	node_open(c, id, true);
}

/*
 * Figure 8 of the Raft paper (§5.4.2), played out on five nodes. The
 * leader L writes X at index 2 and reaches only A, then crashes. L2 is
 * elected without them and writes its no-op at index 2, reaching nobody,
 * then crashes. L comes back, L or A is elected (L3) and copies X to the
 * others while its own no-op at index 3 is held back: X now sits on a
 * majority, but it is of an earlier term and a node holding L2's index 2
 * could still win. L3 must not commit it by counting; it commits only
 * once its no-op reaches a majority.
 */
static void test_figure8_no_commit_by_counting(void **state)
{
	(void)state;
	g_max_entries = 1;
	struct tcluster c;
	cluster_init(&c, 5);
	advance(&c, 600);
	int l = leader_of(&c);
	assert_int_equal(raft_commit_index(c.nodes[l].r), 1);
	int others[4], k = 0;
	for (int i = 1; i <= 5; i++)
		if (i != l)
			others[k++] = i;
	int a = others[0];
	/* (a) X at index 2 reaches only A. */
	for (int i = 1; i <= 4; i++)
		if (others[i - 1] != a) {
			c.cut[l][others[i - 1]] = true;
			c.cut[others[i - 1]][l] = true;
		}
	propose(&c, l, 42);
	deliver_all(&c);
	assert_int_equal(raft_last_index(c.nodes[a].r), 2);
	/* (b) L crashes; A is cut off; B, C, D elect L2, whose no-op at
	 * index 2 reaches nobody. */
	crash(&c, l);
	isolate(&c, a, true);
	memset(c.cut[l], 0, sizeof(c.cut[l]));
	for (int i = 1; i <= 5; i++)
		c.cut[i][l] = false;
	c.hold_from = 2;
	int l2 = 0;
	for (int t = 0; t < 200 && !l2; t++) {
		advance(&c, 5);
		l2 = leader_of(&c);
	}
	assert_true(l2 && l2 != a);
	assert_int_equal(raft_term_at(c.nodes[l2].r, 2), raft_term(c.nodes[l2].r));
	/* (c) L2 crashes; L restarts; A rejoins. L or A leads; X (index 2,
	 * old term) is copied to everyone up, the new no-op is held back. */
	crash(&c, l2);
	restart(&c, l);
	isolate(&c, a, false);
	c.hold_from = 3;
	int l3 = 0;
	for (int t = 0; t < 400 && !l3; t++) {
		advance(&c, 5);
		l3 = leader_of(&c);
	}
	assert_true(l3 == l || l3 == a);
	advance(&c, 200);
	int holding = 0;
	for (int i = 1; i <= 5; i++)
		if (!c.nodes[i].down && raft_last_index(c.nodes[i].r) >= 2 &&
		    raft_term_at(c.nodes[i].r, 2) == raft_term_at(c.nodes[l3].r, 2))
			holding++;
	if (holding < 3)
		for (int i = 1; i <= 5; i++)
			if (!c.nodes[i].down)
				print_message(
				    "node %d role %d term %lu last %lu t2 %lu commit %lu\n", i,
				    raft_role_of(c.nodes[i].r),
				    (unsigned long)raft_term(c.nodes[i].r),
				    (unsigned long)raft_last_index(c.nodes[i].r),
				    (unsigned long)raft_term_at(c.nodes[i].r, 2),
				    (unsigned long)raft_commit_index(c.nodes[i].r));
	assert_true(holding >= 3);			       /* X is on a majority ... */
	assert_int_equal(raft_commit_index(c.nodes[l3].r), 1); /* ... and not committed */
	/* Once the no-op flows, both commit. */
	c.hold_from = 0;
	advance(&c, 200);
	assert_int_equal(raft_commit_index(c.nodes[l3].r), 3);
	g_max_entries = 8;
	cluster_free(&c);
}

static void test_read_index_batches_reads(void **state)
{
	(void)state;
	struct tcluster c;
	cluster_init(&c, 3);
	advance(&c, 600);
	int l = leader_of(&c);
	struct raft_stats s0, s1;
	raft_get_stats(c.nodes[l].r, &s0);
	for (uint64_t id = 1; id <= 10; id++)
		assert_int_equal(raft_read_index(c.nodes[l].r, id), 0);
	deliver_all(&c);
	raft_get_stats(c.nodes[l].r, &s1);
	assert_int_equal(c.nodes[l].nreads, 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(c.nodes[l].read_err[i], 0);
		assert_int_equal(c.nodes[l].read_idx[i], raft_commit_index(c.nodes[l].r));
	}
	assert_true(s1.read_rounds - s0.read_rounds <= 2);
	/* A follower's read goes through the leader. */
	int f = l % 3 + 1;
	assert_int_equal(raft_read_index(c.nodes[f].r, 77), 0);
	deliver_all(&c);
	assert_int_equal(c.nodes[f].nreads, 1);
	assert_int_equal(c.nodes[f].read_ids[0], 77);
	assert_int_equal(c.nodes[f].read_err[0], 0);
	cluster_free(&c);
}

static void test_lease_holds_then_expires(void **state)
{
	(void)state;
	struct tcluster c;
	cluster_init(&c, 3);
	advance(&c, 600);
	int l = leader_of(&c);
	uint64_t idx = 0;
	assert_int_equal(raft_read_lease(c.nodes[l].r, &idx), 0);
	assert_int_equal(idx, raft_commit_index(c.nodes[l].r));
	/* Cut the leader off: the lease runs out before anyone could elect
	 * another leader (ET * 0.9/1.1 < ET). */
	isolate(&c, l, true);
	uint64_t t0 = c.nodes[l].now;
	while (raft_read_lease(c.nodes[l].r, &idx) == 0)
		advance(&c, 5);
	assert_true(c.nodes[l].now - t0 <= 150);
	cluster_free(&c);
}

static void test_transfer_leadership(void **state)
{
	(void)state;
	struct tcluster c;
	cluster_init(&c, 3);
	advance(&c, 600);
	int l = leader_of(&c);
	int t = l % 3 + 1;
	propose(&c, l, 3);
	deliver_all(&c);
	assert_int_equal(raft_transfer_leadership(c.nodes[l].r, (uint64_t)t), 0);
	uint64_t idx;
	assert_int_equal(raft_propose(c.nodes[l].r, "x", 1, &idx, NULL), SP_ERR_NOTLEADER);
	deliver_all(&c);
	advance(&c, 50);
	assert_int_equal(leader_of(&c), t);
	cluster_free(&c);
}

static void test_membership_add_remove(void **state)
{
	(void)state;
	struct tcluster c;
	cluster_init(&c, 3);
	c.n = 4; /* node 4 exists but is not in the configuration */
	c.nodes[4].now = c.nodes[1].now;
	c.nodes[4].auto_persist = true;
	node_open(&c, 4, false);
	advance(&c, 600);
	int l = leader_of(&c);
	assert_int_equal(raft_add_server(c.nodes[l].r, 4), 0);
	assert_int_equal(raft_add_server(c.nodes[l].r, 4), SP_ERR_AGAIN);
	advance(&c, 300);
	/* Learner caught up and was promoted to voter. */
	assert_int_equal(raft_conf_role(raft_configuration(c.nodes[l].r), 4), RAFT_VOTER);
	assert_int_equal(raft_conf_role(raft_configuration(c.nodes[4].r), 4), RAFT_VOTER);
	for (int i = 0; i < 5; i++)
		propose(&c, l, 1);
	advance(&c, 100);
	assert_int_equal(c.nodes[4].applied_n, 5);
	/* The leader removes itself and steps down once that commits. */
	assert_int_equal(raft_remove_server(c.nodes[l].r, (uint64_t)l), 0);
	advance(&c, 800);
	assert_int_not_equal(raft_role_of(c.nodes[l].r), RAFT_LEADER);
	int l2 = leader_of(&c);
	assert_true(l2 > 0 && l2 != l);
	assert_int_equal(raft_conf_role(raft_configuration(c.nodes[l2].r), (uint64_t)l), 0);
	cluster_free(&c);
}

static void test_snapshot_catches_up_lagging_node(void **state)
{
	(void)state;
	struct tcluster c;
	cluster_init(&c, 3);
	advance(&c, 600);
	int l = leader_of(&c);
	int f = l % 3 + 1;
	isolate(&c, f, true);
	for (int i = 0; i < 30; i++)
		propose(&c, l, 2);
	advance(&c, 100);
	/* Snapshot on the leader; its log is compacted past f's. */
	struct tnode *ln = &c.nodes[l];
	ln->snap_bytes[0] = (uint8_t)ln->applied_sum;
	ln->snap_bytes[1] = (uint8_t)ln->applied_n;
	memset(ln->snap_bytes + 2, 0xab, 20);
	ln->snap_len = 22;
	ln->has_snap = true;
	assert_int_equal(raft_snapshot_saved(ln->r, ln->last_applied), 0);
	ln->snap.index = raft_snapshot_index(ln->r);
	assert_true(raft_first_index(ln->r) > 2);
	isolate(&c, f, false);
	advance(&c, 500);
	assert_int_equal(raft_snapshot_index(c.nodes[f].r), ln->snap.index);
	assert_int_equal(c.nodes[f].applied_n, 30);
	assert_int_equal(raft_commit_index(c.nodes[f].r), raft_commit_index(ln->r));
	struct raft_stats st;
	raft_get_stats(ln->r, &st);
	assert_true(st.snapshot_chunks_sent >= 6); /* 22 bytes in 4-byte chunks */
	cluster_free(&c);
}

static void test_restart_keeps_term_and_log(void **state)
{
	(void)state;
	struct tcluster c;
	cluster_init(&c, 3);
	advance(&c, 600);
	int l = leader_of(&c);
	for (int i = 0; i < 5; i++)
		propose(&c, l, 1);
	advance(&c, 100);
	int f = l % 3 + 1;
	uint64_t term = raft_term(c.nodes[f].r), last = raft_last_index(c.nodes[f].r);
	raft_close(c.nodes[f].r);
	c.nodes[f].down = true;
	advance(&c, 100);
	node_open(&c, f, true);
	assert_int_equal(raft_term(c.nodes[f].r), term);
	assert_int_equal(raft_last_index(c.nodes[f].r), last);
	advance(&c, 300);
	assert_int_equal(c.nodes[f].applied_n, 5);
	cluster_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_elects_and_commits),
	    cmocka_unit_test(test_prevote_partitioned_node_does_not_disrupt),
	    cmocka_unit_test(test_check_quorum_steps_down),
	    cmocka_unit_test(test_vote_and_ack_wait_for_persistence),
	    cmocka_unit_test(test_figure8_no_commit_by_counting),
	    cmocka_unit_test(test_read_index_batches_reads),
	    cmocka_unit_test(test_lease_holds_then_expires),
	    cmocka_unit_test(test_transfer_leadership),
	    cmocka_unit_test(test_membership_add_remove),
	    cmocka_unit_test(test_snapshot_catches_up_lagging_node),
	    cmocka_unit_test(test_restart_keeps_term_and_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
