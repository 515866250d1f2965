/*
 * kv: the state machine the simulated cluster replicates.
 *
 * A map of a few keys (k0..k{n-1}) to short byte strings, changed by
 * client commands carried in NORMAL entries: put, compare-and-set and
 * delete. Its digest (XOR over keys of a hash of key and value) is kept
 * up to date at every apply so that check.c can compare the state of two
 * nodes at the same index in O(1). Snapshots serialise the map, plus
 * filler bytes so that a snapshot spans several chunks, and end in a
 * checksum so that a snapshot assembled wrongly from chunks is noticed.
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

#define KV_MAGIC 0x314b5653u /* "SVK1" */

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static size_t put_val(uint8_t *p, const struct sim_val *v)
{
	p[0] = v->nil ? 1 : 0;
	p[1] = v->nil ? 0 : v->len;
	if (!v->nil)
		memcpy(p + 2, v->p, v->len);
	return 2 + (v->nil ? 0 : v->len);
}

static int get_val(const uint8_t *p, size_t len, size_t *at, struct sim_val *v)
{
	if (*at + 2 > len)
		return -1;
	memset(v, 0, sizeof(*v));
	v->nil = p[*at] != 0;
	v->len = p[*at + 1];
	if (p[*at] > 1 || v->len > SIM_MAX_VAL || (v->nil && v->len) || *at + 2 + v->len > len)
		return -1;
	memcpy(v->p, p + *at + 2, v->len);
	*at += 2 + v->len;
	return 0;
}

bool sim_val_eq(const struct sim_val *a, const struct sim_val *b)
{
	if (a->nil || b->nil)
		return a->nil == b->nil;
	return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

void sim_cmd_encode(const struct sim_cmd *c, uint8_t *out, size_t *len)
{
	size_t at = 0;
	out[at++] = c->op;
	out[at++] = c->key;
	put_u32(out + at, c->client);
	at += 4;
	put_u64(out + at, c->op_id);
	at += 8;
	at += put_val(out + at, &c->a);
	at += put_val(out + at, &c->b);
	*len = at;
}

int sim_cmd_decode(const uint8_t *p, size_t len, struct sim_cmd *c)
{
	memset(c, 0, sizeof(*c));
	if (len < 14)
		return -1;
	c->op = p[0];
	c->key = p[1];
	c->client = get_u32(p + 2);
	c->op_id = get_u64(p + 6);
	size_t at = 14;
	if (get_val(p, len, &at, &c->a) || get_val(p, len, &at, &c->b) || at != len)
		return -1;
	if (c->op < CMD_PUT || c->op > CMD_DEL || c->key >= SIM_MAX_KEYS)
		return -1;
	return 0;
}

static uint64_t slot_hash(uint32_t key, const struct sim_val *v)
{
	if (v->nil)
		return 0;
	uint8_t buf[4 + SIM_MAX_VAL];
	put_u32(buf, key);
	memcpy(buf + 4, v->p, v->len);
	return sim_hash64(buf, 4 + (size_t)v->len, 0x6b76);
}

void sim_kv_init(struct sim_kv *kv, uint32_t n_keys)
{
	memset(kv, 0, sizeof(*kv));
	kv->n_keys = n_keys;
	for (uint32_t i = 0; i < SIM_MAX_KEYS; i++)
		kv->vals[i].nil = true;
}

static void set_val(struct sim_kv *kv, uint32_t key, const struct sim_val *v)
{
	kv->digest ^= slot_hash(key, &kv->vals[key]);
	kv->vals[key] = *v;
	kv->digest ^= slot_hash(key, &kv->vals[key]);
}

bool sim_kv_apply(struct sim_kv *kv, const struct sim_cmd *c)
{
	struct sim_val nil = {.nil = true};
	switch (c->op) {
	case CMD_PUT:
		set_val(kv, c->key, &c->a);
		return true;
	case CMD_CAS:
		if (!sim_val_eq(&kv->vals[c->key], &c->a))
			return false;
		set_val(kv, c->key, &c->b);
		return true;
	case CMD_DEL:
		set_val(kv, c->key, &nil);
		return true;
	}
	return false;
}

uint8_t *sim_kv_serialise(const struct sim_kv *kv, uint32_t pad, size_t *len)
{
	size_t cap = 4 + 1 + kv->n_keys * (2 + SIM_MAX_VAL) + 4 + pad + 8;
	uint8_t *p = sp_malloc(cap);
	size_t at = 0;
	put_u32(p, KV_MAGIC);
	at += 4;
	p[at++] = (uint8_t)kv->n_keys;
	for (uint32_t k = 0; k < kv->n_keys; k++)
		at += put_val(p + at, &kv->vals[k]);
	put_u32(p + at, pad);
	at += 4;
	for (uint32_t i = 0; i < pad; i++)
		p[at++] = (uint8_t)(i * 31 + 7);
	put_u64(p + at, sim_hash64(p, at, 0x736e6170));
	at += 8;
	*len = at;
	return p;
}

int sim_kv_load(struct sim_kv *kv, const uint8_t *p, size_t len)
{
	if (len < 4 + 1 + 4 + 8 || get_u32(p) != KV_MAGIC)
		return -1;
	if (get_u64(p + len - 8) != sim_hash64(p, len - 8, 0x736e6170))
		return -1;
	uint32_t n_keys = p[4];
	if (n_keys > SIM_MAX_KEYS)
		return -1;
	struct sim_kv tmp;
	sim_kv_init(&tmp, n_keys);
	size_t at = 5;
	for (uint32_t k = 0; k < n_keys; k++) {
		struct sim_val v;
		if (get_val(p, len - 8, &at, &v))
			return -1;
		set_val(&tmp, k, &v);
	}
	if (at + 4 > len - 8 || at + 4 + get_u32(p + at) != len - 8)
		return -1;
	/* Keep what the caller tracks outside the map itself. */
	tmp.applied = kv->applied;
	tmp.applied_term = kv->applied_term;
	tmp.conf = kv->conf;
	*kv = tmp;
	return 0;
}
