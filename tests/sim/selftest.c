/*
 * selftest: checks of the simulator's own parts (raft_sim --selftest).
 *
 * A simulator that is wrong proves nothing, so its pieces are tested on
 * their own: the event queue orders by (time, seq); the disk loses exactly
 * the unsynced suffix on a crash and a torn write reads back as never
 * written; partitions have the shapes they claim; the state machine and its
 * snapshots round-trip; and the invariant checker flags hand-made bad
 * states (two leaders in a term, a committed entry changed, a log that
 * differs under the same (index, term), a leader missing a committed
 * entry).
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

static int failures;

#define EXPECT(cond)                                                                               \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "selftest: %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static void test_rng(void)
{
	struct sim_rng a, b, c;
	sim_rng_seed(&a, 42, 1);
	sim_rng_seed(&b, 42, 1);
	sim_rng_seed(&c, 42, 2);
	bool differs = false;
	for (int i = 0; i < 100; i++) {
		uint64_t x = sim_rng_next(&a), y = sim_rng_next(&b), z = sim_rng_next(&c);
		EXPECT(x == y);
		differs |= x != z;
	}
	EXPECT(differs);
	for (int i = 0; i < 1000; i++) {
		uint64_t v = sim_rng_range(&a, 5, 9);
		EXPECT(v >= 5 && v <= 9);
		uint64_t l = sim_rng_logrange(&a, 10, 1000);
		EXPECT(l >= 10 && l <= 1000);
	}
}

static void test_heap(void)
{
	struct sim_heap h;
	sim_heap_init(&h);
	struct sim_rng r;
	sim_rng_seed(&r, 7, 0);
	for (uint64_t i = 0; i < 2000; i++) {
		struct sim_event ev = {0};
		ev.time = sim_rng_below(&r, 50);
		ev.a = i;
		sim_heap_push(&h, &ev);
	}
	struct sim_event prev = {0}, ev;
	bool first = true;
	size_t n = 0;
	while (sim_heap_pop(&h, &ev)) {
		if (!first) {
			EXPECT(ev.time > prev.time || (ev.time == prev.time && ev.seq > prev.seq));
			/* Same time: scheduling order (a was assigned in order). */
			if (ev.time == prev.time)
				EXPECT(ev.a > prev.a);
		}
		prev = ev;
		first = false;
		n++;
	}
	EXPECT(n == 2000);
	sim_heap_free(&h);
}

static void append(struct sim_disk *d, uint64_t index, uint64_t term)
{
	struct sim_write w = {0};
	w.kind = W_APPEND;
	w.e.index = index;
	w.e.term = term;
	w.e.type = RAFT_ENTRY_NOOP;
	w.e.data = sp_malloc(1);
	sim_disk_write(d, &w);
}

static void hs(struct sim_disk *d, uint64_t term, uint64_t vote)
{
	struct sim_write w = {0};
	w.kind = W_HS;
	w.hs.term = term;
	w.hs.vote = vote;
	sim_disk_write(d, &w);
}

static void test_disk(void)
{
	struct sim_disk d;
	sim_disk_init(&d);
	for (uint64_t i = 1; i <= 5; i++)
		append(&d, i, 1);
	hs(&d, 1, 2);
	struct sim_write *done;
	size_t k;
	sim_disk_sync(&d, 3, &done, &k); /* entries 1..3 durable */
	EXPECT(k == 3);
	for (size_t i = 0; i < k; i++)
		sim_write_free(&done[i]);
	free(done);
	EXPECT(sim_disk_last(&d) == 3);
	EXPECT(d.written_last == 5);

	/* Crash, nothing kept: exactly the unsynced suffix is gone. */
	sim_disk_crash(&d, 0, false);
	EXPECT(sim_disk_last(&d) == 3);
	EXPECT(d.hs.term == 0);
	EXPECT(d.written_last == 3);

	/* Keep a prefix of two writes (entries 4 and 5) out of three; the
	 * hard state is lost. */
	append(&d, 4, 2);
	append(&d, 5, 2);
	hs(&d, 2, 1);
	sim_disk_crash(&d, 2, false);
	EXPECT(sim_disk_last(&d) == 5);
	EXPECT(sim_disk_term_at(&d, 5) == 2);
	EXPECT(d.hs.term == 0);

	/* Keep three, the last torn: the hard state reads back as old. */
	hs(&d, 3, 0);
	sim_disk_sync(&d, 1, &done, &k);
	for (size_t i = 0; i < k; i++)
		sim_write_free(&done[i]);
	free(done);
	EXPECT(d.hs.term == 3);
	append(&d, 6, 3);
	hs(&d, 4, 4);
	sim_disk_crash(&d, 2, true);
	EXPECT(sim_disk_last(&d) == 6);
	EXPECT(d.hs.term == 3);
	/* A torn append is dropped. */
	append(&d, 7, 3);
	sim_disk_crash(&d, 1, true);
	EXPECT(sim_disk_last(&d) == 6);

	/* Truncate, install and save. */
	struct sim_write w = {0};
	w.kind = W_TRUNC;
	w.after = 4;
	sim_disk_write(&d, &w);
	EXPECT(d.written_last == 4);
	struct raft_snapshot_meta meta = {.index = 10, .term = 5};
	w.kind = W_SNAP_INSTALL;
	w.snap = sim_snapfile_new(&meta, "abc", 3);
	sim_disk_write(&d, &w);
	EXPECT(d.written_last == 10);
	append(&d, 11, 5);
	append(&d, 12, 5);
	meta.index = 11;
	w.kind = W_SNAP_SAVE;
	w.snap = sim_snapfile_new(&meta, "abcd", 4);
	sim_disk_write(&d, &w);
	sim_disk_sync(&d, d.n_issued, &done, &k);
	for (size_t i = 0; i < k; i++)
		sim_write_free(&done[i]);
	free(done);
	EXPECT(sim_disk_snap_index(&d) == 11);
	EXPECT(sim_disk_last(&d) == 12);
	struct raft_restore rs;
	struct raft_entry *entries;
	char why[128];
	EXPECT(sim_disk_restore(&d, &rs, &entries, why, sizeof(why)) == 0);
	EXPECT(rs.has_snapshot && rs.snap.index == 11 && rs.n_entries == 1 &&
	       rs.entries[0].index == 12);
	free(entries);
	sim_disk_free(&d);
}

static size_t count_blocked(struct sim_world *w, size_t n)
{
	size_t k = 0;
	for (size_t a = 1; a <= n; a++)
		for (size_t b = 1; b <= n; b++)
			k += w->blocked[a][b];
	return k;
}

/* Whether a reaches b over unblocked links in both directions. */
static bool linked(struct sim_world *w, uint64_t a, uint64_t b)
{
	return !w->blocked[a][b] && !w->blocked[b][a];
}

static void test_partitions(void)
{
	struct sim_world *w = sp_calloc(1, sizeof(*w));
	struct sim_rng r;
	sim_rng_seed(&r, 3, 0);
	uint64_t ids[5] = {1, 2, 3, 4, 5};
	for (int round = 0; round < 50; round++) {
		/* Split: two groups, connected inside, cut across. */
		sim_net_partition(w, SHAPE_SPLIT, ids, 5, 0, &r);
		for (uint64_t a = 1; a <= 5; a++)
			for (uint64_t b = 1; b <= 5; b++)
				EXPECT(w->blocked[a][b] == w->blocked[b][a]);
		size_t cut = count_blocked(w, 5) / 2;
		EXPECT(cut == 4 || cut == 6); /* 1x4 or 2x3 */

		/* Isolate: the focus hears nobody, the rest all hear each
		 * other. */
		sim_net_partition(w, SHAPE_ISOLATE, ids, 5, 3, &r);
		for (uint64_t a = 1; a <= 5; a++)
			for (uint64_t b = 1; b <= 5; b++)
				if (a != b)
					EXPECT(linked(w, a, b) == (a != 3 && b != 3));

		/* Bridge: the focus sees everyone; others see their side
		 * only, both sides non-empty. */
		sim_net_partition(w, SHAPE_BRIDGE, ids, 5, 2, &r);
		for (uint64_t b = 1; b <= 5; b++)
			EXPECT(linked(w, 2, b));
		size_t cut_links = count_blocked(w, 5) / 2;
		EXPECT(cut_links == 3 || cut_links == 4); /* 1x3 or 2x2 */

		/* Ring: everyone hears exactly two others. */
		sim_net_partition(w, SHAPE_RING, ids, 5, 0, &r);
		for (uint64_t a = 1; a <= 5; a++) {
			int heard = 0;
			for (uint64_t b = 1; b <= 5; b++)
				heard += a != b && linked(w, a, b);
			EXPECT(heard == 2);
		}

		/* One way: only links to or only links from the focus. */
		sim_net_partition(w, SHAPE_ONEWAY, ids, 5, 4, &r);
		EXPECT(count_blocked(w, 5) == 4);
		for (uint64_t a = 1; a <= 5; a++)
			for (uint64_t b = 1; b <= 5; b++)
				if (w->blocked[a][b])
					EXPECT(a == 4 || b == 4);
	}
	sim_net_heal(w);
	EXPECT(count_blocked(w, 5) == 0);
	free(w);
}

static void test_kv(void)
{
	struct sim_kv kv, back;
	sim_kv_init(&kv, 4);
	uint64_t empty = kv.digest;
	struct sim_cmd c = {.op = CMD_PUT, .key = 1, .client = 2, .op_id = 9};
	memcpy(c.a.p, "hello", 5);
	c.a.len = 5;
	c.b.nil = true;
	uint8_t buf[SIM_CMD_MAX];
	size_t len;
	sim_cmd_encode(&c, buf, &len);
	struct sim_cmd d;
	EXPECT(sim_cmd_decode(buf, len, &d) == 0);
	EXPECT(d.op == CMD_PUT && d.key == 1 && d.op_id == 9 && sim_val_eq(&d.a, &c.a));
	EXPECT(sim_cmd_decode(buf, len - 1, &d) != 0);
	EXPECT(sim_kv_apply(&kv, &c));
	EXPECT(kv.digest != empty);
	/* CAS against the wrong value fails and changes nothing. */
	struct sim_cmd cas = {.op = CMD_CAS, .key = 1};
	cas.a.nil = true;
	memcpy(cas.b.p, "x", 1);
	cas.b.len = 1;
	uint64_t before = kv.digest;
	EXPECT(!sim_kv_apply(&kv, &cas));
	EXPECT(kv.digest == before);
	cas.a = c.a;
	EXPECT(sim_kv_apply(&kv, &cas));
	size_t slen;
	uint8_t *snap = sim_kv_serialise(&kv, 500, &slen);
	sim_kv_init(&back, 4);
	EXPECT(sim_kv_load(&back, snap, slen) == 0);
	EXPECT(back.digest == kv.digest);
	snap[slen / 2] ^= 1;
	EXPECT(sim_kv_load(&back, snap, slen) != 0);
	free(snap);
	struct sim_cmd del = {.op = CMD_DEL, .key = 1};
	del.a.nil = del.b.nil = true;
	EXPECT(sim_kv_apply(&kv, &del));
	EXPECT(kv.digest == empty);
}

/* A world with no nodes running, to feed the checker by hand. */
static struct sim_world *bare_world(struct sim_opts *o, struct sim_result *res)
{
	struct sim_world *w = sp_calloc(1, sizeof(*w));
	memset(o, 0, sizeof(*o));
	o->contract = true;
	memset(res, 0, sizeof(*res));
	w->opts = o;
	w->res = res;
	sim_check_init(w);
	return w;
}

static void test_checker(void)
{
	struct sim_opts o;
	struct sim_result res;
	struct sim_node a = {.id = 1}, b = {.id = 2};

	/* Two leaders in one term. */
	struct sim_world *w = bare_world(&o, &res);
	w->term_leader[3] = 1;
	sim_check_leader_seen(w, &b, 3);
	EXPECT(res.failed && !strcmp(res.check, "election-safety"));
	sim_check_free(w);
	free(w);

	/* Same (index, term), different content. */
	w = bare_world(&o, &res);
	struct raft_entry e1 = {.term = 2,
				.index = 5,
				.type = RAFT_ENTRY_NORMAL,
				.len = 1,
				.data = (const uint8_t *)"a"};
	struct raft_entry e2 = e1;
	e2.data = (const uint8_t *)"b";
	sim_check_persist_entry(w, &a, &e1, 2);
	EXPECT(!res.failed);
	sim_check_persist_entry(w, &a, &e1, 2);
	EXPECT(!res.failed);
	sim_check_persist_entry(w, &b, &e2, 2);
	EXPECT(res.failed && !strcmp(res.check, "log-matching"));
	sim_check_free(w);
	free(w);

	/* Same (index, term), same content, different predecessor. */
	w = bare_world(&o, &res);
	sim_check_persist_entry(w, &a, &e1, 1);
	sim_check_persist_entry(w, &b, &e1, 2);
	EXPECT(res.failed && !strcmp(res.check, "log-matching"));
	sim_check_free(w);
	free(w);

	/* A vote sent before it is on disk. */
	w = bare_world(&o, &res);
	sim_disk_init(&a.disk);
	a.disk.hs.term = 4;
	a.disk.hs.vote = 3;
	struct raft_msg m = {.type = RAFT_MSG_VOTE_RESP, .from = 1, .to = 3, .term = 4};
	sim_check_send(w, &a, &m);
	EXPECT(!res.failed);
	m.to = 2;
	sim_check_send(w, &a, &m);
	EXPECT(res.failed && !strcmp(res.check, "vote-not-durable"));
	sim_check_free(w);
	free(w);
}

/* Leader completeness and state machine safety need a core to look at:
 * one restored with the log (1, term 1), (2, term 1) at term 2. */
static void test_checker_core(void)
{
	struct raft_config cfg;
	raft_config_default(&cfg, 1);
	struct raft_entry es[2] = {{.term = 1, .index = 1, .type = RAFT_ENTRY_NOOP},
				   {.term = 1, .index = 2, .type = RAFT_ENTRY_NOOP}};
	struct raft_restore rs;
	memset(&rs, 0, sizeof(rs));
	rs.hs.term = 2;
	rs.entries = es;
	rs.n_entries = 2;
	rs.bootstrap.n = 1;
	rs.bootstrap.members[0].id = 1;
	rs.bootstrap.members[0].role = RAFT_VOTER;
	struct raft *r;
	EXPECT(raft_open(&r, &cfg, &rs, 0) == 0);
	if (!r)
		return;
	struct sim_opts o;
	struct sim_result res;
	struct sim_node a = {.id = 1, .up = true, .core = r};

	/* Holding everything committed before its term: fine. */
	struct sim_world *w = bare_world(&o, &res);
	struct raft_entry probe = es[1];
	uint64_t h = sim_entry_hash(&probe);
	for (uint64_t i = 1; i <= 2; i++) {
		w->committed[i] =
		    (struct sim_committed){.term = 1, .hash = h, .commit_term = 1, .valid = true};
	}
	w->max_committed = 2;
	sim_check_leader_completeness(w, &a);
	EXPECT(!res.failed);
	/* Index 3 committed in term 1 and missing here. */
	w->committed[3] =
	    (struct sim_committed){.term = 1, .hash = h, .commit_term = 1, .valid = true};
	w->max_committed = 3;
	sim_check_leader_completeness(w, &a);
	EXPECT(res.failed && !strcmp(res.check, "leader-completeness"));
	sim_check_free(w);
	free(w);

	/* Index 2 committed with other content. */
	w = bare_world(&o, &res);
	w->committed[2] =
	    (struct sim_committed){.term = 1, .hash = h ^ 1, .commit_term = 1, .valid = true};
	w->max_committed = 2;
	sim_check_leader_completeness(w, &a);
	EXPECT(res.failed && !strcmp(res.check, "leader-completeness"));
	sim_check_free(w);
	free(w);

	/* Two different entries applied at the same index. */
	w = bare_world(&o, &res);
	sim_kv_init(&a.kv, 2);
	sim_check_apply(w, &a, &es[0]);
	EXPECT(!res.failed);
	struct raft_entry other = es[0];
	other.term = 2;
	sim_check_apply(w, &a, &other);
	EXPECT(res.failed && !strcmp(res.check, "state-machine-safety"));
	sim_check_free(w);
	free(w);
	raft_close(r);
}

/* The history path end to end: a short run checks clean, and the same
 * run with a corrupted history does not. */
static void test_history(void)
{
	struct sim_opts o;
	memset(&o, 0, sizeof(o));
	o.sim_seconds = 4;
	o.quiet_seconds = 3;
	o.contract = true;
	o.lin_steps = 1000000;
	struct sim_result res;
	sim_run_seed(1, &o, &res);
	EXPECT(!res.failed);
	EXPECT(res.st.ops_checked > 100);
	for (int k = 1; k <= 2; k++) {
		o.corrupt_history = k;
		sim_run_seed(1, &o, &res);
		EXPECT(res.failed && !strcmp(res.check, "linearizability"));
	}
}

int sim_selftest(void)
{
	test_rng();
	test_heap();
	test_disk();
	test_partitions();
	test_kv();
	test_checker();
	test_checker_core();
	test_history();
	if (failures) {
		fprintf(stderr, "selftest: %d failed\n", failures);
		return 1;
	}
	printf("selftest: ok\n");
	return 0;
}
