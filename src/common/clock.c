#include "common/clock.h"

#include <time.h>

static uint64_t system_wall_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t system_mono_ns(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const struct sp_clock system_clock = {system_wall_ms, system_mono_ns, NULL};

const struct sp_clock *sp_clock_system(void)
{
	return &system_clock;
}

static uint64_t manual_wall_ms(void *ctx)
{
	return ((struct sp_clock_manual *)ctx)->wall_ms;
}

static uint64_t manual_mono_ns(void *ctx)
{
	return ((struct sp_clock_manual *)ctx)->mono_ns;
}

void sp_clock_manual_init(struct sp_clock_manual *m, uint64_t wall_ms)
{
	m->clock.wall_ms = manual_wall_ms;
	m->clock.mono_ns = manual_mono_ns;
	m->clock.ctx = m;
	m->wall_ms = wall_ms;
	m->mono_ns = 1000000000u;
}

void sp_clock_manual_advance(struct sp_clock_manual *m, uint64_t ms)
{
	m->wall_ms += ms;
	m->mono_ns += ms * 1000000u;
}
