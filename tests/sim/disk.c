/*
 * disk: the simulated disk of one node.
 *
 * Durable state is a hard state, a contiguous log and at most one
 * snapshot. Writes are queued unsynced, in order; an fsync makes a prefix
 * of them durable. A crash loses the unsynced writes, except that a random
 * prefix of them may survive and the last survivor may be torn: a torn
 * log append fails its CRC and a torn hard-state or snapshot write keeps
 * the old copy (written aside and renamed), so a torn write reads back as
 * never written. What survives a crash is therefore always a prefix of
 * what was written, which is the model an fsync-based log gives.
 *
 * The disk does no checking of what the core asks for beyond keeping
 * written_last; node.c checks the core's contract against it.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

struct sim_snapfile *sim_snapfile_new(const struct raft_snapshot_meta *meta, const void *data,
				      size_t len)
{
	struct sim_snapfile *s = sp_calloc(1, sizeof(*s));
	s->meta = *meta;
	s->data = sp_malloc(len ? len : 1);
	if (len)
		memcpy(s->data, data, len);
	s->len = len;
	s->refs = 1;
	return s;
}

struct sim_snapfile *sim_snapfile_ref(struct sim_snapfile *s)
{
	if (s)
		s->refs++;
	return s;
}

void sim_snapfile_unref(struct sim_snapfile *s)
{
	if (!s || --s->refs > 0)
		return;
	free(s->data);
	free(s);
}

void sim_disk_init(struct sim_disk *d)
{
	memset(d, 0, sizeof(*d));
}

void sim_write_free(struct sim_write *w)
{
	free(w->e.data);
	w->e.data = NULL;
	sim_snapfile_unref(w->snap);
	w->snap = NULL;
}

void sim_disk_free(struct sim_disk *d)
{
	for (size_t i = 0; i < d->n_log; i++)
		free(d->log[i].data);
	free(d->log);
	for (size_t i = 0; i < d->n_q; i++)
		sim_write_free(&d->q[i]);
	free(d->q);
	sim_snapfile_unref(d->snap);
	sim_disk_init(d);
}

uint64_t sim_disk_snap_index(const struct sim_disk *d)
{
	return d->snap ? d->snap->meta.index : 0;
}

uint64_t sim_disk_last(const struct sim_disk *d)
{
	if (d->n_log)
		return d->log[d->n_log - 1].index;
	return sim_disk_snap_index(d);
}

uint64_t sim_disk_term_at(const struct sim_disk *d, uint64_t index)
{
	if (d->n_log && index >= d->log[0].index && index <= d->log[d->n_log - 1].index)
		return d->log[index - d->log[0].index].term;
	if (d->snap && d->snap->meta.index == index)
		return d->snap->meta.term;
	return 0;
}

uint64_t sim_disk_write(struct sim_disk *d, struct sim_write *w)
{
	if (d->n_q == d->cap_q) {
		d->cap_q = d->cap_q ? d->cap_q * 2 : 64;
		d->q = sp_realloc(d->q, d->cap_q * sizeof(*d->q));
	}
	switch (w->kind) {
	case W_TRUNC:
		if (d->written_last > w->after)
			d->written_last = w->after;
		break;
	case W_APPEND:
		d->written_last = w->e.index;
		break;
	case W_SNAP_INSTALL:
		d->written_last = w->snap->meta.index;
		break;
	default:
		break;
	}
	d->q[d->n_q++] = *w;
	memset(w, 0, sizeof(*w));
	return d->n_issued++;
}

static void log_drop_last(struct sim_disk *d)
{
	free(d->log[d->n_log - 1].data);
	d->n_log--;
}

/* Drop log entries with index <= upto from the front. */
static void log_drop_upto(struct sim_disk *d, uint64_t upto)
{
	size_t k = 0;
	while (k < d->n_log && d->log[k].index <= upto)
		free(d->log[k++].data);
	if (k) {
		memmove(d->log, d->log + k, (d->n_log - k) * sizeof(*d->log));
		d->n_log -= k;
	}
}

/* Make one write durable. The write keeps ownership of nothing it gave
 * to the durable state. */
static void apply_write(struct sim_disk *d, struct sim_write *w)
{
	switch (w->kind) {
	case W_TRUNC:
		while (d->n_log && d->log[d->n_log - 1].index > w->after)
			log_drop_last(d);
		break;
	case W_APPEND:
		if (d->n_log == d->cap_log) {
			d->cap_log = d->cap_log ? d->cap_log * 2 : 64;
			d->log = sp_realloc(d->log, d->cap_log * sizeof(*d->log));
		}
		/* An append must follow the log: node.c refuses any other
		 * before it reaches the disk. Should a gap appear anyway
		 * the log restarts at the entry, which recovery reports. */
		d->log[d->n_log++] = w->e;
		w->e.data = NULL;
		break;
	case W_HS:
		d->hs = w->hs;
		break;
	case W_SNAP_SAVE:
		if (!d->snap || d->snap->meta.index < w->snap->meta.index) {
			sim_snapfile_unref(d->snap);
			d->snap = sim_snapfile_ref(w->snap);
			log_drop_upto(d, w->snap->meta.index);
		}
		break;
	case W_SNAP_INSTALL:
		sim_snapfile_unref(d->snap);
		d->snap = sim_snapfile_ref(w->snap);
		while (d->n_log)
			log_drop_last(d);
		break;
	default:
		break;
	}
}

void sim_disk_sync(struct sim_disk *d, uint64_t upto, struct sim_write **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (upto > d->n_issued)
		upto = d->n_issued;
	if (upto <= d->n_synced)
		return;
	size_t k = (size_t)(upto - d->n_synced);
	struct sim_write *done = sp_malloc(k * sizeof(*done));
	for (size_t i = 0; i < k; i++) {
		apply_write(d, &d->q[i]);
		done[i] = d->q[i];
	}
	memmove(d->q, d->q + k, (d->n_q - k) * sizeof(*d->q));
	d->n_q -= k;
	d->n_synced = upto;
	*out = done;
	*n_out = k;
}

void sim_disk_crash(struct sim_disk *d, size_t keep, bool torn)
{
	if (keep > d->n_q)
		keep = d->n_q;
	/* A torn last survivor reads back as not written. */
	if (keep > 0 && torn)
		keep--;
	for (size_t i = 0; i < keep; i++) {
		apply_write(d, &d->q[i]);
		sim_write_free(&d->q[i]);
	}
	for (size_t i = keep; i < d->n_q; i++)
		sim_write_free(&d->q[i]);
	d->n_synced = d->n_issued = 0;
	d->n_q = 0;
	d->written_last = sim_disk_last(d);
}

int sim_disk_restore(const struct sim_disk *d, struct raft_restore *r, struct raft_entry **entries,
		     char *why, size_t why_len)
{
	memset(r, 0, sizeof(*r));
	*entries = NULL;
	r->hs = d->hs;
	uint64_t base = 0;
	if (d->snap) {
		r->has_snapshot = true;
		r->snap = d->snap->meta;
		base = d->snap->meta.index;
	}
	size_t first = 0;
	while (first < d->n_log && d->log[first].index <= base)
		first++;
	size_t n = d->n_log - first;
	if (n == 0)
		return 0;
	struct raft_entry *e = sp_calloc(n, sizeof(*e));
	for (size_t i = 0; i < n; i++) {
		const struct sim_dentry *de = &d->log[first + i];
		if (de->index != base + 1 + i) {
			snprintf(why, why_len,
				 "durable log does not follow: entry %zu has index %llu, want %llu",
				 i, (unsigned long long)de->index,
				 (unsigned long long)(base + 1 + i));
			free(e);
			return -1;
		}
		e[i].index = de->index;
		e[i].term = de->term;
		e[i].type = de->type;
		e[i].len = de->len;
		e[i].data = de->data;
	}
	r->entries = e;
	r->n_entries = n;
	*entries = e;
	return 0;
}
