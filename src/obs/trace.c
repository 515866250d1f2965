/*
 * trace: the causal trace log. See trace.h.
 */
#include "obs/trace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

struct trace {
	FILE *f;
	int dirty;
};

int trace_open(struct trace **out, const char *path)
{
	*out = NULL;
	FILE *f = fopen(path, "a");
	if (!f)
		return -errno;
	struct trace *t = sp_calloc(1, sizeof(*t));
	t->f = f;
	*out = t;
	return 0;
}

void trace_close(struct trace *t)
{
	if (!t)
		return;
	fclose(t->f);
	free(t);
}

static void put_json_string(FILE *f, const void *p, size_t len)
{
	const unsigned char *s = p;
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = s[i];
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

void trace_event(struct trace *t, const struct trace_event *e)
{
	if (!t)
		return;
	FILE *f = t->f;
	fprintf(f, "{\"node\":%" PRIu64 ",\"ms\":%" PRIu64 ",\"ev\":\"%s\",\"key\":", e->node,
		e->ms, e->ev);
	put_json_string(f, e->key, e->klen);
	if (e->session)
		fprintf(f, ",\"session\":\"%016" PRIx64 "\"", e->session);
	else
		fputs(",\"session\":\"\"", f);
	fprintf(f, ",\"origin\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"vc\":{", e->origin, e->seq);
	for (uint32_t i = 0; e->vc && i < e->vc->n; i++)
		fprintf(f, "%s\"%" PRIu64 "\":%" PRIu64, i ? "," : "", e->vc->e[i].node,
			e->vc->e[i].count);
	fputc('}', f);
	if (e->traceparent && e->traceparent[0]) {
		fputs(",\"traceparent\":", f);
		put_json_string(f, e->traceparent, strlen(e->traceparent));
	}
	fputs("}\n", f);
	t->dirty = 1;
}

void trace_flush(struct trace *t)
{
	if (t && t->dirty) {
		fflush(t->f);
		t->dirty = 0;
	}
}
