/*
 * test_trace_model: the happens-before model of `spectra trace`
 * (tools/trace_model.c).
 *
 * On small hand-made traces: the event clocks, exactly (a write, its
 * applies and a read on another node; a session hopping from node to node
 * and back); the happens-before relation they give, including concurrent
 * events; a read and an apply whose write is not in the trace (tolerated,
 * counted, no edge); a session edge that contradicts reads-from (dropped,
 * not a cycle); a cycle of hard edges (refused); bad lines named by file
 * and line; the topological order, checked as a property (every edge goes
 * forward); and descriptions with escaped keys.
 *
 * tools/ is linked only into bin/spectra, so the module under test is
 * linked into this binary on its own (the Makefile names its object).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/trace_model.h"
#include "common/err.h"

/* load builds a model from text and computes it; fails the test if either
 * step fails. */
static void load(struct trace_model *m, const char *text)
{
	char why[256] = "";
	trace_model_init(m);
	int rc = trace_model_load_text(m, "t.jsonl", text, strlen(text), why, sizeof(why));
	if (rc != 0)
		fail_msg("load: %s", why);
	rc = trace_model_compute(m, why, sizeof(why));
	if (rc != 0)
		fail_msg("compute: %s", why);
}

/* expect_clock checks event i's clock against want (one per lane). */
static void expect_clock(const struct trace_model *m, size_t i, const uint64_t *want)
{
	for (size_t l = 0; l < m->nnodes; l++)
		if (m->ev[i].clock[l] != want[l])
			fail_msg("event %zu, lane %zu: clock %llu, want %llu", i, l,
				 (unsigned long long)m->ev[i].clock[l],
				 (unsigned long long)want[l]);
}

/* expect_topological checks that m->order is a permutation in which every
 * edge goes forward. */
static void expect_topological(const struct trace_model *m)
{
	size_t *pos = calloc(m->n, sizeof(*pos));
	bool *seen = calloc(m->n, sizeof(*seen));
	for (size_t k = 0; k < m->n; k++) {
		assert_true(m->order[k] < m->n);
		assert_false(seen[m->order[k]]);
		seen[m->order[k]] = true;
		pos[m->order[k]] = k;
	}
	for (size_t i = 0; i < m->n; i++) {
		const struct trace_event *e = &m->ev[i];
		size_t p[3] = {e->node_prev, e->write_of, e->session_prev};
		for (int k = 0; k < 3; k++) {
			if (p[k] == TRACE_NONE)
				continue;
			assert_true(pos[p[k]] < pos[i]);
			assert_true(trace_model_happens_before(m, p[k], i));
			assert_false(trace_model_happens_before(m, i, p[k]));
		}
	}
	free(seen);
	free(pos);
}

/* The sample of the task: a session writes cz:a on node 1, reads it on
 * node 2 and writes cz:b there. */
static const char sample[] =
    "{\"node\":1,\"ms\":100,\"ev\":\"write\",\"key\":\"cz:a\",\"session\":\"aa\",\"origin\":1,"
    "\"seq\":1,\"vc\":{\"1\":1},\"traceparent\":\"00-0af7-b7ad-01\"}\n"
    "{\"node\":2,\"ms\":101,\"ev\":\"apply\",\"key\":\"cz:a\",\"session\":\"\",\"origin\":1,"
    "\"seq\":1,\"vc\":{\"1\":1}}\n"
    "{\"node\":3,\"ms\":101,\"ev\":\"apply\",\"key\":\"cz:a\",\"session\":\"\",\"origin\":1,"
    "\"seq\":1,\"vc\":{\"1\":1}}\n"
    "{\"node\":2,\"ms\":120,\"ev\":\"read\",\"key\":\"cz:a\",\"session\":\"aa\",\"origin\":1,"
    "\"seq\":1,\"vc\":{\"1\":1}}\n"
    "{\"node\":2,\"ms\":120,\"ev\":\"write\",\"key\":\"cz:b\",\"session\":\"aa\",\"origin\":2,"
    "\"seq\":1,\"vc\":{\"1\":1,\"2\":1}}\n"
    "\n"
    "{\"node\":1,\"ms\":121,\"ev\":\"apply\",\"key\":\"cz:b\",\"session\":\"\",\"origin\":2,"
    "\"seq\":1,\"vc\":{\"1\":1,\"2\":1}}\n"
    "{\"node\":3,\"ms\":121,\"ev\":\"apply\",\"key\":\"cz:b\",\"session\":\"\",\"origin\":2,"
    "\"seq\":1,\"vc\":{\"1\":1,\"2\":1}}\n";

static void test_sample_clocks(void **state)
{
	(void)state;
	struct trace_model m;
	load(&m, sample);
	assert_int_equal(m.n, 7);
	assert_int_equal(m.nnodes, 3);
	assert_int_equal(m.ev[5].line, 7); /* the blank line is counted */
	const uint64_t want[7][3] = {
	    {1, 0, 0}, {1, 1, 0}, {1, 0, 1}, {1, 2, 0}, {1, 3, 0}, {2, 3, 0}, {1, 3, 2},
	};
	for (size_t i = 0; i < 7; i++)
		expect_clock(&m, i, want[i]);
	assert_int_equal(m.ev[1].write_of, 0);
	assert_int_equal(m.ev[3].write_of, 0);	   /* reads-from, across nodes */
	assert_int_equal(m.ev[3].session_prev, 0); /* the hop: node 1 -> node 2 */
	assert_int_equal(m.ev[5].write_of, 4);
	assert_int_equal(m.missing_writes, 0);
	assert_int_equal(m.dropped_session_edges, 0);

	/* happens-before and concurrency */
	assert_true(trace_model_happens_before(&m, 0, 6));
	assert_true(trace_model_happens_before(&m, 1, 5)); /* via node 2's write */
	assert_false(trace_model_happens_before(&m, 1, 2));
	assert_false(trace_model_happens_before(&m, 2, 1)); /* the two applies: concurrent */
	assert_false(trace_model_happens_before(&m, 5, 6));
	assert_false(trace_model_happens_before(&m, 6, 5));
	assert_false(trace_model_happens_before(&m, 4, 4));
	expect_topological(&m);
	/* Ties are broken by ms, then load order. */
	const size_t order[7] = {0, 1, 2, 3, 4, 5, 6};
	assert_memory_equal(m.order, order, sizeof(order));
	trace_model_close(&m);
}

/* A session that hops 1 -> 2 -> 1 with no replication between: session
 * order alone links the nodes. */
static void test_session_hops(void **state)
{
	(void)state;
	struct trace_model m;
	load(&m, "{\"node\":1,\"ms\":10,\"ev\":\"write\",\"key\":\"k\",\"session\":\"s1\","
		 "\"origin\":1,\"seq\":1,\"vc\":{}}\n"
		 "{\"node\":2,\"ms\":5,\"ev\":\"write\",\"key\":\"x\",\"session\":\"s2\","
		 "\"origin\":2,\"seq\":1,\"vc\":{}}\n"
		 "{\"node\":2,\"ms\":20,\"ev\":\"read\",\"key\":\"q\",\"session\":\"s1\","
		 "\"origin\":0,\"seq\":0,\"vc\":{}}\n"
		 "{\"node\":1,\"ms\":30,\"ev\":\"read\",\"key\":\"q\",\"session\":\"s1\","
		 "\"origin\":0,\"seq\":0,\"vc\":{}}\n");
	const uint64_t want[4][2] = {{1, 0}, {0, 1}, {1, 2}, {2, 2}};
	for (size_t i = 0; i < 4; i++)
		expect_clock(&m, i, want[i]);
	assert_int_equal(m.ev[2].session_prev, 0);
	assert_int_equal(m.ev[3].session_prev, 2);
	assert_true(trace_model_happens_before(&m, 1, 3)); /* node 2's past came back */
	assert_false(trace_model_happens_before(&m, 0, 1));
	assert_int_equal(m.missing_writes, 0); /* 0/0 is "nothing", not missing */
	expect_topological(&m);
	/* node 2's write (ms 5) is ready first */
	assert_int_equal(m.order[0], 1);
	trace_model_close(&m);
}

static void test_missing_write(void **state)
{
	(void)state;
	struct trace_model m;
	/* Node 1's file is lost: node 2 applied and read updates of it. */
	load(&m, "{\"node\":2,\"ms\":1,\"ev\":\"apply\",\"key\":\"k\",\"session\":\"\","
		 "\"origin\":1,\"seq\":4,\"vc\":{}}\n"
		 "{\"node\":2,\"ms\":2,\"ev\":\"read\",\"key\":\"k\",\"session\":\"ab\","
		 "\"origin\":1,\"seq\":4,\"vc\":{}}\n");
	assert_int_equal(m.nnodes, 1);
	assert_int_equal(m.missing_writes, 2);
	assert_int_equal(m.ev[0].write_of, TRACE_NONE);
	const uint64_t a[1] = {1}, b[1] = {2};
	expect_clock(&m, 0, a);
	expect_clock(&m, 1, b);
	trace_model_close(&m);
}

/* Node 2's wall clock is behind: its read of node 1's write is stamped
 * before the write, so session order (by ms) contradicts reads-from. */
static void test_skewed_session_edge_dropped(void **state)
{
	(void)state;
	struct trace_model m;
	load(&m, "{\"node\":1,\"ms\":100,\"ev\":\"write\",\"key\":\"k\",\"session\":\"s\","
		 "\"origin\":1,\"seq\":1,\"vc\":{}}\n"
		 "{\"node\":2,\"ms\":90,\"ev\":\"read\",\"key\":\"k\",\"session\":\"s\","
		 "\"origin\":1,\"seq\":1,\"vc\":{}}\n");
	assert_int_equal(m.dropped_session_edges, 1);
	assert_true(trace_model_happens_before(&m, 0, 1));
	expect_topological(&m);
	trace_model_close(&m);
}

/* Each node applied the other's write before writing its own: no trace of
 * a real run looks like this. */
static void test_impossible_cycle(void **state)
{
	(void)state;
	const char text[] = "{\"node\":1,\"ms\":1,\"ev\":\"apply\",\"key\":\"k\",\"origin\":2,"
			    "\"seq\":1,\"vc\":{}}\n"
			    "{\"node\":1,\"ms\":2,\"ev\":\"write\",\"key\":\"k\",\"session\":\"a\","
			    "\"origin\":1,\"seq\":1,\"vc\":{}}\n"
			    "{\"node\":2,\"ms\":1,\"ev\":\"apply\",\"key\":\"k\",\"origin\":1,"
			    "\"seq\":1,\"vc\":{}}\n"
			    "{\"node\":2,\"ms\":2,\"ev\":\"write\",\"key\":\"k\",\"session\":\"b\","
			    "\"origin\":2,\"seq\":1,\"vc\":{}}\n";
	struct trace_model m;
	char why[256] = "";
	trace_model_init(&m);
	assert_int_equal(trace_model_load_text(&m, "c.jsonl", text, strlen(text), why, sizeof(why)),
			 0);
	assert_int_equal(trace_model_compute(&m, why, sizeof(why)), SP_ERR_INVAL);
	assert_non_null(strstr(why, "c.jsonl:"));
	assert_non_null(strstr(why, "cycle"));
	trace_model_close(&m);
}

static void expect_bad(const char *text, const char *want)
{
	struct trace_model m;
	char why[256] = "";
	trace_model_init(&m);
	assert_int_equal(
	    trace_model_load_text(&m, "n2.jsonl", text, strlen(text), why, sizeof(why)),
	    SP_ERR_INVAL);
	if (strstr(why, want) == NULL)
		fail_msg("want '%s' in '%s'", want, why);
	trace_model_close(&m);
}

static void test_bad_lines(void **state)
{
	(void)state;
	const char good[] = "{\"node\":1,\"ms\":1,\"ev\":\"apply\",\"key\":\"k\",\"origin\":2,"
			    "\"seq\":1,\"vc\":{}}\n";
	char text[512];
	snprintf(text, sizeof(text), "%s%s", good, "{\"node\":1,\n");
	expect_bad(text, "n2.jsonl:2: not JSON");
	snprintf(text, sizeof(text), "%s\n%s", good, "[1,2]\n");
	expect_bad(text, "n2.jsonl:3: not a JSON object");
	expect_bad("{\"node\":-1,\"ms\":1,\"ev\":\"apply\",\"key\":\"k\",\"origin\":2,\"seq\":1}",
		   "n2.jsonl:1: \"node\"");
	expect_bad("{\"node\":1,\"ms\":1,\"ev\":\"delete\",\"key\":\"k\",\"origin\":2,\"seq\":1}",
		   "\"ev\"");
	expect_bad("{\"node\":1,\"ms\":1,\"ev\":\"read\",\"key\":7,\"origin\":2,\"seq\":1}",
		   "\"key\"");
	expect_bad("{\"node\":1,\"ms\":1,\"ev\":\"read\",\"key\":\"k\",\"seq\":1}", "\"origin\"");
	expect_bad("{\"node\":1,\"ms\":1,\"ev\":\"read\",\"key\":\"k\",\"session\":3,\"origin\":0,"
		   "\"seq\":0}",
		   "\"session\"");
}

static void test_describe(void **state)
{
	(void)state;
	struct trace_model m;
	/* The key's bytes: 'a', 0x00, 0xff, ' ', '\' as spectrad escapes them. */
	load(&m,
	     "{\"node\":3,\"ms\":1,\"ev\":\"write\",\"key\":\"a\\u0000\\u00ff \\\\\","
	     "\"session\":\"70aaab7dbe949b38\",\"origin\":3,\"seq\":9,\"vc\":{},"
	     "\"traceparent\":\"00-ab-cd-01\"}\n"
	     "{\"node\":3,\"ms\":2,\"ev\":\"apply\",\"key\":\"k\",\"session\":\"\",\"origin\":1,"
	     "\"seq\":2,\"vc\":{}}\n");
	assert_int_equal(m.ev[0].klen, 5);
	char out[256];
	size_t n = trace_model_describe(&m, 0, out, sizeof(out));
	assert_string_equal(out, "node3 write a\\x00\\xff\\x20\\x5c session=70aaab7dbe949b38 "
				 "origin=3 seq=9 traceparent=00-ab-cd-01");
	assert_int_equal(n, strlen(out));
	trace_model_describe(&m, 1, out, sizeof(out));
	assert_string_equal(out, "node3 apply k origin=1 seq=2");
	/* Truncated, still terminated, the wanted length returned. */
	char small[8];
	assert_int_equal(trace_model_describe(&m, 1, small, sizeof(small)), strlen(out));
	assert_string_equal(small, "node3 a");
	assert_string_equal(trace_kind_name(TRACE_READ), "read");
	trace_model_close(&m);
}

/* A random trace (several nodes, sessions hopping, reads of random
 * earlier writes) must always give a topological order and clocks in which
 * a node's own component counts its events. */
static void test_random_traces(void **state)
{
	(void)state;
	unsigned seed = 12345;
	const char *env = getenv("SPECTRA_SEED");
	if (env != NULL)
		seed = (unsigned)strtoul(env, NULL, 10);
	printf("# seed %u (SPECTRA_SEED to replay)\n", seed);
	srand(seed);
	for (int round = 0; round < 50; round++) {
		char *text = malloc(64 * 1024);
		size_t len = 0;
		uint64_t seqs[5] = {0}, ms = 1000;
		for (int k = 0; k < 200; k++) {
			int node = 1 + rand() % 5, what = rand() % 3, session = rand() % 4;
			ms += (uint64_t)(rand() % 3);
			int origin = 1 + rand() % 5;
			if (what == 0) {
				seqs[node - 1]++;
				len += (size_t)snprintf(
				    text + len, 64 * 1024 - len,
				    "{\"node\":%d,\"ms\":%llu,\"ev\":\"write\",\"key\":\"k\","
				    "\"session\":\"s%d\",\"origin\":%d,\"seq\":%llu}\n",
				    node, (unsigned long long)ms, session, node,
				    (unsigned long long)seqs[node - 1]);
			} else if (seqs[origin - 1] > 0 && origin != node) {
				uint64_t seq = 1 + (uint64_t)rand() % seqs[origin - 1];
				len += (size_t)snprintf(
				    text + len, 64 * 1024 - len,
				    "{\"node\":%d,\"ms\":%llu,\"ev\":\"%s\",\"key\":\"k\","
				    "\"session\":\"%s%d\",\"origin\":%d,\"seq\":%llu}\n",
				    node, (unsigned long long)ms, what == 1 ? "apply" : "read",
				    what == 1 ? "" : "s", what == 1 ? 0 : session, origin,
				    (unsigned long long)seq);
			}
		}
		struct trace_model m;
		char why[256] = "";
		trace_model_init(&m);
		assert_int_equal(trace_model_load_text(&m, "r", text, len, why, sizeof(why)), 0);
		if (trace_model_compute(&m, why, sizeof(why)) != 0)
			fail_msg("seed %u round %d: %s", seed, round, why);
		expect_topological(&m);
		for (size_t i = 0; i < m.n; i++) {
			const struct trace_event *e = &m.ev[i];
			uint64_t own =
			    e->node_prev == TRACE_NONE ? 1 : m.ev[e->node_prev].clock[e->lane] + 1;
			assert_int_equal(e->clock[e->lane], own);
		}
		trace_model_close(&m);
		free(text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sample_clocks),
	    cmocka_unit_test(test_session_hops),
	    cmocka_unit_test(test_missing_write),
	    cmocka_unit_test(test_skewed_session_edge_dropped),
	    cmocka_unit_test(test_impossible_cycle),
	    cmocka_unit_test(test_bad_lines),
	    cmocka_unit_test(test_describe),
	    cmocka_unit_test(test_random_traces),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
