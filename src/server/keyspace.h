/*
 * keyspace: declared keyspaces (strong data, cached from the store's meta
 * records) and the routing of a key to its keyspace by the prefix before
 * its first ':'. Also the names of modes and read levels.
 *
 * It must not: change the table outside an entry's apply (every node must
 * see the same definitions in the same order) or keep store pointers.
 */
#ifndef SP_SERVER_KEYSPACE_H
#define SP_SERVER_KEYSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;

#define KEYSPACE_NAME_MAX 64

struct keyspace {
	char name[KEYSPACE_NAME_MAX];
	uint8_t mode;	    /* enum sp_mode */
	uint8_t read_level; /* enum read_level: its default (LEVEL_DEFAULT: linearizable) */
	/* eventual keyspaces */
	uint8_t rf;		   /* replication factor, 1..EV_MAX_RF */
	uint8_t ev_read, ev_write; /* default levels: enum ev_level (0: quorum) */
	bool sloppy;		   /* hinted writes count toward the write level */
	/* causal keyspaces */
	bool siblings; /* concurrent writes are kept side by side (MV-register) */
	/* feature views (causal keyspaces created with FEATURES yes): keys are
	 * entities holding FEATURE.* records (src/crdt fvec), nothing else */
	bool features;
	uint32_t feature_history; /* values kept per feature, by event time */
	uint64_t feature_ttl_ms;  /* a value older than this (event time) reads
				   * as absent; 0: never */
};

#define FEATURE_HISTORY_DEFAULT 16
#define FEATURE_HISTORY_MAX	1024

/* keyspace_load rebuilds the table from the store (at start and after a
 * snapshot install); keyspace_free releases it. */
void keyspace_load(struct server *srv);
void keyspace_free(struct server *srv);

/* keyspace_find returns the declared keyspace `name`, or NULL. Borrowed
 * until the table changes. */
const struct keyspace *keyspace_find(const struct server *srv, const char *name, size_t len);
/* keyspace_of_key copies the keyspace key belongs to into *out (the
 * default keyspace when its prefix is not declared). */
void keyspace_of_key(const struct server *srv, const char *key, size_t len, struct keyspace *out);
void keyspace_default(const struct server *srv, struct keyspace *out);
/* Names are 1..63 bytes of [A-Za-z0-9_.-]. */
bool keyspace_name_valid(const char *name, size_t len);
/* keyspace_create records a definition in the open batch and the table
 * (apply only). Returns 0 or a store error. */
int keyspace_create(struct server *srv, const struct keyspace *ks);

const char *mode_name(uint8_t mode);
const char *level_name(uint8_t level);
/* level_parse reads a strong read level (or "default"): 0, SP_ERR_RANGE
 * for a level of another mode (causal, local, one, quorum, all), or
 * SP_ERR_INVAL for an unknown word. */
int level_parse(const char *s, size_t len, uint8_t *out);
/* Levels of causal keyspaces. */
enum causal_level {
	CAUSAL_LEVEL_DEFAULT = 0, /* causal */
	CAUSAL_LEVEL_CAUSAL,
	CAUSAL_LEVEL_LOCAL,
};
/* causal_level_parse reads causal, local or default: 0, SP_ERR_RANGE for a
 * level of another mode, or SP_ERR_INVAL. */
int causal_level_parse(const char *s, size_t len, uint8_t *out);
const char *causal_level_name(uint8_t level);

/* ev_level_parse reads an eventual level (one, quorum, all, default): 0,
 * SP_ERR_RANGE for a level of another mode, or SP_ERR_INVAL. */
int ev_level_parse(const char *s, size_t len, uint8_t *out);

#endif
