/*
 * snapshot: sending and receiving snapshots in chunks (§5.3, Figure 5.3:
 * InstallSnapshot with offset and done), streamed from the state machine
 * by the node rather than built in one buffer: the core sends a SNAPSHOT
 * message with an offset and no data, and the node fills the bytes from
 * its snapshot reader as it sends. One chunk is in flight per follower;
 * each answer says how many bytes the follower holds.
 */
#include "engine/strong/raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

void raft__send_snapshot_chunk(struct raft *r, struct progress *pr)
{
	if (!r->has_snap)
		return;
	/* A transfer finishes the snapshot it started with, even when a newer
	 * one was saved meanwhile: restarting at each new snapshot would
	 * starve a follower when snapshots come faster than a transfer takes.
	 * A transfer (re)starting at offset 0 takes the latest. */
	if (pr->snap_offset == 0 || pr->snap_meta.index == 0) {
		pr->snap_meta = r->snap;
		pr->snap_index = r->snap.index;
		pr->snap_offset = 0;
	}
	struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT,
			     .to = pr->id,
			     .snap = pr->snap_meta,
			     .offset = pr->snap_offset};
	raft__send(r, &m);
	pr->snap_chunk_out = true;
	pr->snap_sent_ms = r->now;
	r->stats.snapshot_chunks_sent++;
	if (pr->snap_offset == 0)
		r->stats.snapshots_sent++;
}

static void reply(struct raft *r, const struct raft_msg *m, struct raft_msg *resp, bool held)
{
	resp->type = RAFT_MSG_SNAPSHOT_RESP;
	resp->to = m->from;
	resp->snap.index = m->snap.index;
	resp->snap.term = m->snap.term;
	if (held)
		raft__send_held(r, resp);
	else
		raft__send(r, resp);
}

void raft__step_snapshot(struct raft *r, const struct raft_msg *m)
{
	raft__accept_leader(r, m->from);
	struct raft_msg resp = {0};
	const struct raft_snapshot_meta *meta = &m->snap;
	if (r->snap_rx_active && r->snap_rx_complete) {
		/* A whole snapshot, handed (or about to be handed) to the node,
		 * is being made durable and
		 * loaded; it cannot be taken back, and it will replace the
		 * log. Answer "installing": the leader waits for the
		 * installed answer (or a timeout). */
		resp.hint = 1;
		resp.offset = r->snap_rx_bytes;
		reply(r, m, &resp, false);
		return;
	}
	if (meta->index <= r->commit ||
	    (meta->index <= raft_last_index(r) && raft_term_at(r, meta->index) == meta->term)) {
		/* Figure 5.3 step 6: the log already holds the snapshot's last
		 * entry; keep the log and treat the prefix as committed. */
		if (meta->index > r->commit)
			r->commit = meta->index;
		resp.last = true;
		reply(r, m, &resp, true);
		return;
	}
	bool same =
	    r->snap_rx_active && r->snap_rx.index == meta->index && r->snap_rx.term == meta->term;
	if (!same) {
		if (m->offset != 0) {
			resp.reject = true;
			reply(r, m, &resp, false);
			return;
		}
		r->snap_rx_active = true;
		r->snap_rx_complete = false;
		r->snap_rx_handed = false;
		r->snap_rx = *meta;
		r->snap_rx_bytes = 0;
		r->snap_rx_chunk_offset = 0;
		r->snap_rx_leader = m->from;
		sp_buf_clear(&r->snap_rx_chunk);
	}
	if (m->offset != r->snap_rx_bytes) {
		resp.offset = r->snap_rx_bytes; /* resend from here */
		reply(r, m, &resp, false);
		return;
	}
	if (!r->snap_rx_chunk.len)
		r->snap_rx_chunk_offset = r->snap_rx_bytes;
	sp_buf_append(&r->snap_rx_chunk, m->data, m->len);
	r->snap_rx_bytes += m->len;
	r->snap_rx_leader = m->from;
	if (m->last) {
		r->snap_rx_complete = true;
		resp.hint = 1;
	}
	resp.offset = r->snap_rx_bytes;
	reply(r, m, &resp, false);
}

void raft_snapshot_installed(struct raft *r, uint64_t index)
{
	if (!r->snap_rx_active || !r->snap_rx_complete || r->snap_rx.index != index)
		return;
	const struct raft_snapshot_meta meta = r->snap_rx;
	/* Figure 5.3 steps 6-7: if the log holds the snapshot's last entry,
	 * keep what follows it; otherwise discard the entire log. (Appends
	 * are refused while a whole snapshot waits, so this is the log as it
	 * was when the last chunk arrived.) */
	uint64_t keep_from = meta.index + 1;
	bool keep = meta.index >= r->base_index && meta.index <= raft_last_index(r) &&
		    raft_term_at(r, meta.index) == meta.term;
	size_t first_kept = keep ? (size_t)(keep_from - r->base_index - 1) : r->n_entries;
	for (size_t i = 0; i < first_kept; i++)
		free((void *)r->entries[i].data);
	if (r->n_entries > first_kept)
		memmove(r->entries, r->entries + first_kept,
			(r->n_entries - first_kept) * sizeof(*r->entries));
	r->n_entries -= first_kept;
	r->base_index = meta.index;
	r->base_term = meta.term;
	r->snap = meta;
	r->has_snap = true;
	r->confs.n = 0;
	struct conf_at c = {.index = meta.index, .conf = meta.conf};
	VEC_PUSH(r->confs, c);
	for (size_t i = 0; i < r->n_entries; i++) {
		const struct raft_entry *e = &r->entries[i];
		if (e->type == RAFT_ENTRY_CONF && raft_conf_decode(e->data, e->len, &c.conf) == 0) {
			c.index = e->index;
			VEC_PUSH(r->confs, c);
		}
	}
	/* The node replaced its stored log with the snapshot: entries kept
	 * here are handed out for persistence again. */
	if (r->commit < meta.index)
		r->commit = meta.index;
	r->applied = meta.index;
	r->stable_index = meta.index;
	r->unstable_from = meta.index + 1;
	r->trunc_after = UINT64_MAX;
	for (size_t i = 0; i < r->marks.n; i++)
		if (r->marks.v[i].last_index > meta.index)
			r->marks.v[i].last_index = meta.index;
	r->snap_rx_active = false;
	r->snap_rx_complete = false;
	r->snap_rx_handed = false;
	struct raft_msg resp = {.type = RAFT_MSG_SNAPSHOT_RESP,
				.to = r->snap_rx_leader,
				.last = true,
				.offset = r->snap_rx_bytes};
	resp.snap.index = meta.index;
	resp.snap.term = meta.term;
	raft__send(r, &resp);
}

void raft__step_snapshot_resp(struct raft *r, const struct raft_msg *m)
{
	struct progress *pr = raft__responder(r, m);
	if (!pr)
		return;
	if (m->last) {
		if (m->snap.index > pr->match)
			pr->match = m->snap.index;
		if (pr->state == PR_SNAPSHOT) {
			pr->state = PR_PROBE;
			pr->next = pr->match + 1;
			pr->probe_sent = false;
		}
		pr->snap_chunk_out = false;
		pr->snap_installing = false;
		raft__maybe_commit(r);
		if (r->role == RAFT_LEADER) {
			raft__maybe_transfer(r, pr);
			raft__maybe_promote(r, pr); /* last: may rebuild progress */
		}
		return;
	}
	if (pr->state != PR_SNAPSHOT || m->snap.index != pr->snap_index)
		return;
	/* One chunk is in flight per follower, and only an answer that moves
	 * the transfer forward releases the next: a duplicated or stale
	 * answer releasing another chunk would start a second stream, and
	 * every duplication would add one. */
	if (m->reject) {
		if (pr->snap_offset == 0 && !pr->snap_chunk_out)
			return;
		pr->snap_offset = 0;
		pr->snap_chunk_out = false;
		pr->snap_stalls = 0;
	} else if (m->hint == 1) {
		pr->snap_chunk_out = false;
		pr->snap_installing = true;
		pr->snap_sent_ms = r->now;
	} else if (m->offset > pr->snap_offset) {
		pr->snap_offset = m->offset;
		pr->snap_chunk_out = false;
		pr->snap_stalls = 0;
	}
}
