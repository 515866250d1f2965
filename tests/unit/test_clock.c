/*
 * test_clock: the injectable clock and wall-clock arithmetic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/clock.h"

static void test_manual_clock(void **state)
{
	(void)state;
	struct sp_clock_manual m;
	sp_clock_manual_init(&m, 1000);
	const struct sp_clock *c = &m.clock;
	uint64_t mono0 = sp_mono_ns(c);
	assert_int_equal(sp_wall_ms(c), 1000);
	sp_clock_manual_advance(&m, 250);
	assert_int_equal(sp_wall_ms(c), 1250);
	assert_int_equal(sp_mono_ns(c) - mono0, 250u * 1000000u);
	/* A test may step the wall clock back; monotonic time never moves back. */
	m.wall_ms = 900;
	assert_int_equal(sp_wall_ms(c), 900);
	assert_true(sp_mono_ns(c) >= mono0);
}

static void test_system_clock(void **state)
{
	(void)state;
	const struct sp_clock *c = sp_clock_system();
	uint64_t a = sp_mono_ns(c), b = sp_mono_ns(c);
	assert_true(b >= a);
	assert_true(sp_wall_ms(c) > 1600000000000ull); /* after 2020 */
}

/* Regression: the idle timeout computed now - last_active as unsigned, so a
 * wall clock stepping back made every client look idle for ~584 million
 * years and closed it. sp_elapsed_ms saturates at 0 instead. */
static void test_elapsed_never_underflows(void **state)
{
	(void)state;
	assert_int_equal(sp_elapsed_ms(1500, 1000), 500);
	assert_int_equal(sp_elapsed_ms(1000, 1000), 0);
	assert_int_equal(sp_elapsed_ms(999, 1000), 0);
	assert_int_equal(sp_elapsed_ms(0, UINT64_MAX), 0);
	struct sp_clock_manual m;
	sp_clock_manual_init(&m, 10000);
	uint64_t last_active = sp_wall_ms(&m.clock);
	m.wall_ms -= 5000; /* NTP steps the clock back */
	assert_true(sp_elapsed_ms(sp_wall_ms(&m.clock), last_active) < 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_manual_clock),
	    cmocka_unit_test(test_system_clock),
	    cmocka_unit_test(test_elapsed_never_underflows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
