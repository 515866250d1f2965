#include "common/log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum sp_log_level threshold = SP_LOG_INFO;
static FILE *stream;

void sp_log_setup(enum sp_log_level level, FILE *out)
{
	threshold = level;
	stream = out;
}

void sp_log(enum sp_log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	if (level < threshold)
		return;
	char line[1024];
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	localtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%d ", (int)getpid());
	n += (int)strftime(line + n, sizeof(line) - (size_t)n, "%Y-%m-%d %H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03d %-5s ", (int)(tv.tv_usec / 1000),
		      names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	FILE *out = stream ? stream : stderr;
	fwrite(line, 1, len, out);
	fflush(out);
}
