/*
 * model: the record of one model in the model registry (MODEL.* commands,
 * cmd_model.c), as the bytes of a store value of type STORE_MODEL.
 *
 * A model is one key of a strong keyspace. Its whole history lives in one
 * value: the versions registered so far (numbered 1, 2, 3, ... in the
 * order the Raft log applied them) and the aliases ("production",
 * "canary") that point at one version each. Every MODEL write is a Raft
 * entry whose apply decodes the record, changes it here and stores the
 * new encoding, so every replica holds the same bytes.
 *
 * Layout, integers little-endian (one encoding per record: what decodes
 * re-encodes to the same bytes):
 *
 *   u8 format (1) | u32 nversions | u32 naliases |
 *   nversions x (u64 registered_ms | u64 schema | u32 uri_len | uri |
 *                u32 meta_len | meta)                    version 1 first
 *   naliases  x (u8 name_len | name | u64 version | u64 schema |
 *                u64 set_ms)                  by name, strictly ascending
 *
 * A version's number is its position (1-based), so numbers are dense and
 * unique by construction. A schema of 0 means "none". Times and schemas
 * are at most INT64_MAX (they are answered as RESP integers).
 *
 * Pure: no I/O, no store, no clock, no globals. Decoding never trusts a
 * length: anything that is not a record this module could have written
 * is SP_ERR_CORRUPT.
 */
#ifndef SP_SERVER_MODEL_H
#define SP_SERVER_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define MODEL_FORMAT	    1
#define MODEL_MAX_VERSIONS  100000 /* versions one model may hold */
#define MODEL_MAX_ALIASES   256	   /* aliases one model may hold */
#define MODEL_MAX_URI	    4096   /* bytes of a version's uri (at least 1) */
#define MODEL_MAX_ALIAS_LEN 128	   /* bytes of an alias name (at least 1) */
/* The largest encoded record (MODEL_MAX_RECORD_CAP) the registry writes,
 * whatever max-value-bytes says: every write to a model rewrites its whole
 * record inside an entry's apply, on the event loop, so a record must stay
 * small enough to copy there in milliseconds. cmd_model.c allows
 * min(16 x max-value-bytes, this). */
#define MODEL_MAX_RECORD_CAP (64u << 20)

/* One registered version. uri and meta are borrowed (from the bytes a
 * record was decoded from, or from the caller of model_append_version). */
struct model_version {
	uint64_t registered_ms; /* the apply time of the entry that registered it */
	uint64_t schema;	/* feature-schema version it needs; 0: none */
	const uint8_t *uri;
	size_t uri_len;
	const uint8_t *meta; /* may be NULL when meta_len is 0 */
	size_t meta_len;
};

/* One alias. name is borrowed like a version's uri. */
struct model_alias {
	const uint8_t *name;
	size_t name_len;
	uint64_t version; /* 1..nversions */
	uint64_t schema;  /* the schema to read features with when using it */
	uint64_t set_ms;  /* the apply time of the entry that pointed it here */
};

/*
 * A model in memory: versions[i] is version i + 1; aliases are sorted by
 * name (memcmp order, a prefix first). The arrays are owned by the model;
 * the bytes they point to are not (see above).
 */
struct model {
	struct model_version *versions;
	size_t nversions, versions_cap;
	struct model_alias *aliases;
	size_t naliases, aliases_cap;
};

/* model_init makes m an empty model (no versions, no aliases). */
void model_init(struct model *m);

/* model_close frees m's arrays and leaves it empty, as after model_init.
 * NULL is accepted. The bytes its slices pointed to are the caller's. */
void model_close(struct model *m);

/*
 * model_decode replaces m's contents with the record in p[0..len).
 * Returns 0, or SP_ERR_CORRUPT when the bytes are not exactly one record
 * as laid out above: a wrong format byte, no versions, more than
 * MODEL_MAX_VERSIONS versions or MODEL_MAX_ALIASES aliases, a uri of 0 or
 * more than MODEL_MAX_URI bytes, an alias name of 0 or more than
 * MODEL_MAX_ALIAS_LEN bytes, aliases out of order or repeated, an alias
 * pointing at no version, a time or schema above INT64_MAX, a length past
 * the end, or bytes left after the last alias. On error m is empty.
 * m's slices borrow p: they are valid while p is.
 */
int model_decode(struct model *m, const void *p, size_t len);

/* model_encoded_len is how many bytes model_encode would append. */
uint64_t model_encoded_len(const struct model *m);

/* model_encode appends m's record to out. A model that model_decode
 * produced, changed only through the calls below, encodes to bytes that
 * model_decode accepts (an empty model encodes, but does not decode:
 * the registry never stores one). m is borrowed for the call. */
void model_encode(const struct model *m, struct sp_buf *out);

/* model_version returns version n (1-based), or NULL when m has no
 * version n. Borrowed from m until it changes. */
const struct model_version *model_version(const struct model *m, uint64_t n);

/* model_alias_find returns the alias named name[0..len), or NULL.
 * Borrowed from m until it changes. */
const struct model_alias *model_alias_find(const struct model *m, const void *name, size_t len);

/*
 * model_append_version adds v as the next version and sets *number to its
 * number. v is copied; the bytes its uri and meta point to stay borrowed
 * (keep them until m is encoded). Returns 0; SP_ERR_FULL when m already
 * holds MODEL_MAX_VERSIONS versions; SP_ERR_INVAL when v's uri is not
 * 1..MODEL_MAX_URI bytes or its time or schema is above INT64_MAX (m is
 * unchanged on error).
 */
int model_append_version(struct model *m, const struct model_version *v, uint64_t *number);

/*
 * model_alias_set points the alias name[0..len) at version, with schema
 * and set_ms, adding it in name order if it is new. Returns 0;
 * SP_ERR_INVAL when the name is not 1..MODEL_MAX_ALIAS_LEN bytes, version
 * is not one of m's, or schema or set_ms is above INT64_MAX; SP_ERR_FULL
 * when the alias is new and m already holds MODEL_MAX_ALIASES (m is
 * unchanged on error). name stays borrowed as a version's uri does.
 */
int model_alias_set(struct model *m, const void *name, size_t len, uint64_t version,
		    uint64_t schema, uint64_t set_ms);

/* model_alias_remove removes the alias name[0..len). Returns 1 if it was
 * there, 0 if not. */
int model_alias_remove(struct model *m, const void *name, size_t len);

#endif
