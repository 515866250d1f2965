/*
 * clock: injectable time.
 *
 * Nothing in spectra reads the system clock directly; it asks a struct
 * sp_clock. The system clock is the default; tests install a manual clock
 * they move by hand, and later a simulated clock drives the engines. This
 * module does no I/O beyond clock_gettime.
 */
#ifndef SP_COMMON_CLOCK_H
#define SP_COMMON_CLOCK_H

#include <stdint.h>

struct sp_clock {
	/* Wall-clock time in milliseconds since the Unix epoch (may jump). */
	uint64_t (*wall_ms)(void *ctx);
	/* Monotonic time in nanoseconds from an arbitrary origin. */
	uint64_t (*mono_ns)(void *ctx);
	void *ctx;
};

/* sp_clock_system returns the process-wide system clock (never NULL). */
const struct sp_clock *sp_clock_system(void);

/* A clock that moves only when told; for tests. */
struct sp_clock_manual {
	struct sp_clock clock; /* pass &m->clock where a clock is wanted */
	uint64_t wall_ms;
	uint64_t mono_ns;
};

void sp_clock_manual_init(struct sp_clock_manual *m, uint64_t wall_ms);
/* Moves both wall and monotonic time forward by ms milliseconds. */
void sp_clock_manual_advance(struct sp_clock_manual *m, uint64_t ms);

static inline uint64_t sp_wall_ms(const struct sp_clock *c)
{
	return c->wall_ms(c->ctx);
}
/* sp_elapsed_ms is now - then for wall-clock times, or 0 when the clock
 * stepped back so that now < then (never an unsigned underflow). */
static inline uint64_t sp_elapsed_ms(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}
static inline uint64_t sp_mono_ns(const struct sp_clock *c)
{
	return c->mono_ns(c->ctx);
}

#endif
