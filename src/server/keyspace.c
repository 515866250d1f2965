/*
 * keyspace: the table of declared keyspaces, and which one a key is in.
 *
 * Definitions are strong data: KEYSPACE CREATE is a Raft entry, and its
 * apply writes a meta record "ks.<name>" into the store and the entry
 * here, on every node in the same order. The table is a cache of those
 * records, reloaded when a snapshot replaces the store. A key belongs to
 * the keyspace named by its bytes before the first ':'; a key without a
 * declared prefix belongs to `default`, whose mode is a setting.
 */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/endian.h"
#include "common/err.h"
#include "server/keyspace.h"
#include "engine/eventual/eventual.h"
#include "server/server.h"

#define META_PREFIX "ks."

static int load_one(void *ctx, const char *name, const void *val, size_t len)
{
	struct server *srv = ctx;
	const uint8_t *v = val;
	size_t plen = strlen(META_PREFIX);
	if (len < 2 || strlen(name) <= plen || strlen(name) - plen >= KEYSPACE_NAME_MAX)
		return 0;
	srv->keyspaces =
	    sp_realloc(srv->keyspaces, (srv->nkeyspaces + 1) * sizeof(struct keyspace));
	struct keyspace *ks = &srv->keyspaces[srv->nkeyspaces++];
	memset(ks, 0, sizeof(*ks));
	strcpy(ks->name, name + plen);
	ks->mode = v[0];
	ks->read_level = v[1];
	/* Eventual settings came later: records of two bytes have none. */
	ks->rf = len >= 3 && v[2] ? v[2] : 3;
	ks->ev_read = len >= 4 ? v[3] : 0;
	ks->ev_write = len >= 5 ? v[4] : 0;
	ks->sloppy = len >= 6 && (v[5] & 1);
	ks->siblings = len >= 6 && (v[5] & 2);
	/* Feature views came later still: 18 bytes. */
	ks->features = len >= 18 && (v[5] & 4);
	ks->feature_ttl_ms = len >= 18 ? sp_get_le64(v + 6) : 0;
	ks->feature_history = len >= 18 ? sp_get_le32(v + 14) : 0;
	return 0;
}

void keyspace_load(struct server *srv)
{
	free(srv->keyspaces);
	srv->keyspaces = NULL;
	srv->nkeyspaces = 0;
	(void)store_meta_scan(srv->store, META_PREFIX, load_one, srv);
}

void keyspace_free(struct server *srv)
{
	free(srv->keyspaces);
	srv->keyspaces = NULL;
	srv->nkeyspaces = 0;
}

const struct keyspace *keyspace_find(const struct server *srv, const char *name, size_t len)
{
	for (size_t i = 0; i < srv->nkeyspaces; i++)
		if (strlen(srv->keyspaces[i].name) == len &&
		    memcmp(srv->keyspaces[i].name, name, len) == 0)
			return &srv->keyspaces[i];
	return NULL;
}

void keyspace_default(const struct server *srv, struct keyspace *out)
{
	memset(out, 0, sizeof(*out));
	strcpy(out->name, "default");
	out->mode = (uint8_t)srv->cfg->default_mode;
	out->read_level = LEVEL_DEFAULT;
	out->rf = (uint8_t)srv->cfg->eventual_rf;
}

void keyspace_of_key(const struct server *srv, const char *key, size_t len, struct keyspace *out)
{
	const char *colon = memchr(key, ':', len);
	if (colon) {
		const struct keyspace *ks = keyspace_find(srv, key, (size_t)(colon - key));
		if (ks) {
			*out = *ks;
			return;
		}
	}
	keyspace_default(srv, out);
}

bool keyspace_name_valid(const char *name, size_t len)
{
	if (len == 0 || len >= KEYSPACE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

int keyspace_create(struct server *srv, const struct keyspace *ks)
{
	const char *name = ks->name;
	size_t len = strlen(name);
	char meta[KEYSPACE_NAME_MAX + 8];
	memcpy(meta, META_PREFIX, strlen(META_PREFIX));
	memcpy(meta + strlen(META_PREFIX), name, len);
	meta[strlen(META_PREFIX) + len] = '\0';
	uint8_t v[18] = {
	    ks->mode,
	    ks->read_level,
	    ks->rf,
	    ks->ev_read,
	    ks->ev_write,
	    (uint8_t)((ks->sloppy ? 1 : 0) | (ks->siblings ? 2 : 0) | (ks->features ? 4 : 0))};
	sp_put_le64(v + 6, ks->feature_ttl_ms);
	sp_put_le32(v + 14, ks->feature_history);
	int rc = store_meta_put(srv->store, meta, v, sizeof(v));
	if (rc)
		return rc;
	return load_one(srv, meta, v, sizeof(v));
}

const char *mode_name(uint8_t mode)
{
	switch (mode) {
	case SP_MODE_STRONG:
		return "strong";
	case SP_MODE_CAUSAL:
		return "causal";
	case SP_MODE_EVENTUAL:
		return "eventual";
	}
	return "?";
}

const char *level_name(uint8_t level)
{
	switch (level) {
	case LEVEL_LINEARIZABLE:
		return "linearizable";
	case LEVEL_LEASE:
		return "lease";
	case LEVEL_STALE:
		return "stale";
	}
	return "default";
}

int level_parse(const char *s, size_t len, uint8_t *out)
{
	static const struct {
		const char *name;
		uint8_t level;
	} levels[] = {{"linearizable", LEVEL_LINEARIZABLE},
		      {"lease", LEVEL_LEASE},
		      {"stale", LEVEL_STALE},
		      {"default", LEVEL_DEFAULT}};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strlen(levels[i].name) == len && strncasecmp(levels[i].name, s, len) == 0) {
			*out = levels[i].level;
			return 0;
		}
	/* Levels of the other modes are known words: the caller says they do
	 * not apply, rather than that they do not exist. */
	static const char *const other[] = {"causal", "local", "one", "quorum", "all"};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		if (strlen(other[i]) == len && strncasecmp(other[i], s, len) == 0)
			return SP_ERR_RANGE;
	return SP_ERR_INVAL;
}

int causal_level_parse(const char *s, size_t len, uint8_t *out)
{
	static const struct {
		const char *name;
		uint8_t level;
	} levels[] = {{"causal", CAUSAL_LEVEL_CAUSAL},
		      {"local", CAUSAL_LEVEL_LOCAL},
		      {"default", CAUSAL_LEVEL_DEFAULT}};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strlen(levels[i].name) == len && strncasecmp(levels[i].name, s, len) == 0) {
			*out = levels[i].level;
			return 0;
		}
	static const char *const other[] = {"linearizable", "lease",  "stale",
					    "one",	    "quorum", "all"};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		if (strlen(other[i]) == len && strncasecmp(other[i], s, len) == 0)
			return SP_ERR_RANGE;
	return SP_ERR_INVAL;
}

const char *causal_level_name(uint8_t level)
{
	return level == CAUSAL_LEVEL_LOCAL ? "local" : "causal";
}

int ev_level_parse(const char *s, size_t len, uint8_t *out)
{
	static const struct {
		const char *name;
		uint8_t level;
	} levels[] = {{"one", EV_LEVEL_ONE},
		      {"quorum", EV_LEVEL_QUORUM},
		      {"all", EV_LEVEL_ALL},
		      {"default", EV_LEVEL_DEFAULT}};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strlen(levels[i].name) == len && strncasecmp(levels[i].name, s, len) == 0) {
			*out = levels[i].level;
			return 0;
		}
	static const char *const other[] = {"linearizable", "lease", "stale", "causal", "local"};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		if (strlen(other[i]) == len && strncasecmp(other[i], s, len) == 0)
			return SP_ERR_RANGE;
	return SP_ERR_INVAL;
}
