/*
 * log: leveled, line-oriented logging to a stream (stderr by default).
 *
 * One line per event: "<pid>:<role> <date time.ms> <level> message". The
 * log is process-wide configuration set once at start; writing a line is a
 * single fwrite so lines from threads do not interleave.
 */
#ifndef SP_COMMON_LOG_H
#define SP_COMMON_LOG_H

#include <stdio.h>

enum sp_log_level { SP_LOG_DEBUG, SP_LOG_INFO, SP_LOG_WARN, SP_LOG_ERROR };

/* sp_log_setup sets the threshold and destination (NULL: stderr). The
 * stream is borrowed and must outlive all logging. */
void sp_log_setup(enum sp_log_level level, FILE *out);
void sp_log(enum sp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sp_debug(...) sp_log(SP_LOG_DEBUG, __VA_ARGS__)
#define sp_info(...)  sp_log(SP_LOG_INFO, __VA_ARGS__)
#define sp_warn(...)  sp_log(SP_LOG_WARN, __VA_ARGS__)
#define sp_error(...) sp_log(SP_LOG_ERROR, __VA_ARGS__)

#endif
