/*
 * cmd_model: the model registry's commands (MODEL.*), on keys of strong
 * keyspaces only (CMD_STRONG: route_submit refuses the others).
 *
 * A model is one key whose value (STORE_MODEL) is the record model.h
 * describes. The writes (REGISTER, ALIAS, UNALIAS) are Raft entries and
 * these handlers run them at the entry's apply, on every node, with
 * server_now_ms() the entry's time: so version numbers follow commit
 * order (dense and unique), an IFVERSION alias swap is a compare-and-set
 * every replica judges alike, and every replica stores the same bytes.
 * The reads (GET, VERSIONS, ALIASES) run wherever route.c serves the
 * request's level. Every handler appends exactly one reply.
 *
 * A record is at most min(16 x max-value-bytes, MODEL_MAX_RECORD_CAP)
 * bytes encoded: 16 values' worth of metadata, but never so much that
 * rewriting it stalls the event loop.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "common/err.h"
#include "server/cmd.h"
#include "server/model.h"
#include "server/server.h"

#define VERSIONS_DEFAULT_COUNT 1000

static const char wrongtype[] = "WRONGTYPE Operation against a key holding the wrong kind of value";

/* Keys are quoted in errors up to this many bytes. */
#define KEY_QUOTE 128
#define KEYF(s)	  (int)((s).len > KEY_QUOTE ? KEY_QUOTE : (s).len), (s).p

static uint64_t record_limit(const struct server *srv)
{
	uint64_t l = srv->cfg->max_value_bytes * 16;
	return l < MODEL_MAX_RECORD_CAP ? l : MODEL_MAX_RECORD_CAP;
}

/*
 * load_model decodes the model at key into *m (m's slices then borrow the
 * store's bytes until the next store call) and its expiry into
 * *expire_at. Returns 1 if the model exists, 0 if the key is absent (m
 * empty), or -1 after replying an error (the key holds another type, a
 * store error, a corrupt record).
 */
static int load_model(struct client *c, struct slice key, struct model *m, uint64_t *expire_at)
{
	struct store_value v;
	int rc = store_get(c->srv->store, key.p, key.len, server_now_ms(c->srv), &v);
	if (rc == SP_ERR_NOTFOUND) {
		*expire_at = 0;
		return 0;
	}
	if (rc < 0) {
		reply_store_error(c, rc);
		return -1;
	}
	if (v.type != STORE_MODEL) {
		reply_error(c, wrongtype);
		return -1;
	}
	rc = model_decode(m, v.data, v.len);
	if (rc) {
		reply_store_error(c, rc);
		return -1;
	}
	*expire_at = v.expire_at_ms;
	return 1;
}

/* save_model stores m at key with expiry expire_at. Returns 0, or -1
 * after replying an error (the record would pass its limit, a store
 * error). */
static int save_model(struct client *c, struct slice key, const struct model *m, uint64_t expire_at)
{
	uint64_t limit = record_limit(c->srv);
	if (model_encoded_len(m) > limit) {
		reply_errorf(c,
			     "ERR model '%.*s' would pass its size limit of %" PRIu64
			     " bytes (16 x max-value-bytes, at most 64mb)",
			     KEYF(key), limit);
		return -1;
	}
	struct sp_buf b;
	sp_buf_init(&b);
	model_encode(m, &b);
	struct store_value v = {STORE_MODEL, 0, expire_at, sp_buf_begin(&b), b.len, 0};
	int rc = store_put(c->srv->store, key.p, key.len, &v);
	sp_buf_free(&b);
	if (rc < 0) {
		reply_store_error(c, rc);
		return -1;
	}
	return 0;
}

/* parse_positive reads an integer >= 1 for option `what`; 0, or -1 after
 * replying "<what> must be an integer >= 1". */
static int parse_positive(struct client *c, struct slice a, const char *what, uint64_t *out)
{
	int64_t v;
	if (!sp_parse_int64(a.p, a.len, &v) || v < 1) {
		reply_errorf(c, "ERR %s must be an integer >= 1", what);
		return -1;
	}
	*out = (uint64_t)v;
	return 0;
}

/* reply_version answers version n as a map (RESP3) or flat array (RESP2)
 * of version, uri, meta, schema, registered_ms and, when reached through
 * alias a, the alias's schema and its name. */
static void reply_version(struct client *c, uint64_t n, const struct model_version *v,
			  const struct model_alias *a)
{
	reply_map(c, a ? 6 : 5);
	reply_bulk_str(c, "version");
	reply_integer(c, (int64_t)n);
	reply_bulk_str(c, "uri");
	reply_bulk(c, v->uri, v->uri_len);
	reply_bulk_str(c, "meta");
	reply_bulk(c, v->meta_len ? (const void *)v->meta : "", v->meta_len);
	reply_bulk_str(c, "schema");
	reply_integer(c, (int64_t)(a ? a->schema : v->schema));
	reply_bulk_str(c, "registered_ms");
	reply_integer(c, (int64_t)v->registered_ms);
	if (a) {
		reply_bulk_str(c, "alias");
		reply_bulk(c, a->name, a->name_len);
	}
}

/* MODEL.REGISTER key uri [META meta] [SCHEMA n]: the new version's number. */
void cmd_model_register(struct client *c)
{
	struct slice key = c->argv[1], uri = c->argv[2], meta = {"", 0};
	bool has_meta = false, has_schema = false;
	uint64_t schema = 0;
	for (size_t i = 3; i < c->argc; i += 2) {
		struct slice opt = c->argv[i];
		if (i + 1 >= c->argc) {
			reply_syntax_error(c);
			return;
		}
		if (arg_equals(opt, "meta") && !has_meta) {
			meta = c->argv[i + 1];
			has_meta = true;
		} else if (arg_equals(opt, "schema") && !has_schema) {
			if (parse_positive(c, c->argv[i + 1], "SCHEMA", &schema))
				return;
			has_schema = true;
		} else {
			reply_syntax_error(c);
			return;
		}
	}
	if (uri.len == 0 || uri.len > MODEL_MAX_URI) {
		reply_errorf(c, "ERR uri must be 1..%d bytes", MODEL_MAX_URI);
		return;
	}
	if (meta.len > c->srv->cfg->max_value_bytes) {
		reply_error(c, "ERR META is larger than max-value-bytes");
		return;
	}
	struct model m;
	uint64_t expire_at;
	model_init(&m);
	if (load_model(c, key, &m, &expire_at) < 0)
		goto close_model;
	struct model_version v = {server_now_ms(c->srv),   schema,  (const uint8_t *)uri.p, uri.len,
				  (const uint8_t *)meta.p, meta.len};
	uint64_t number;
	int rc = model_append_version(&m, &v, &number);
	if (rc == SP_ERR_FULL) {
		reply_errorf(c, "ERR model '%.*s' has the most versions a model may hold (%d)",
			     KEYF(key), MODEL_MAX_VERSIONS);
		goto close_model;
	}
	if (rc) {
		reply_syntax_error(c); /* cannot happen: the arguments were checked */
		goto close_model;
	}
	if (save_model(c, key, &m, expire_at) == 0)
		reply_integer(c, (int64_t)number);
close_model:
	model_close(&m);
}

/* MODEL.GET key [VERSION n | ALIAS name]: the version's record, or nil. */
void cmd_model_get(struct client *c)
{
	struct slice key = c->argv[1];
	uint64_t want = 0;
	bool by_alias = false;
	if (c->argc == 4 && arg_equals(c->argv[2], "version")) {
		if (parse_positive(c, c->argv[3], "VERSION", &want))
			return;
	} else if (c->argc == 4 && arg_equals(c->argv[2], "alias")) {
		by_alias = true;
	} else if (c->argc != 2) {
		reply_syntax_error(c);
		return;
	}
	struct model m;
	uint64_t expire_at;
	model_init(&m);
	int found = load_model(c, key, &m, &expire_at);
	if (found < 0)
		goto close_model;
	const struct model_alias *a = NULL;
	if (by_alias) {
		a = model_alias_find(&m, c->argv[3].p, c->argv[3].len);
		want = a ? a->version : 0;
	} else if (want == 0) {
		want = m.nversions;
	}
	const struct model_version *v = model_version(&m, want);
	if (v)
		reply_version(c, want, v, a);
	else
		reply_null(c);
close_model:
	model_close(&m);
}

/* MODEL.VERSIONS key [FROM n] [COUNT c]: the records of versions >= n,
 * ascending, at most c of them. */
void cmd_model_versions(struct client *c)
{
	struct slice key = c->argv[1];
	uint64_t from = 1, count = VERSIONS_DEFAULT_COUNT;
	bool has_from = false, has_count = false;
	for (size_t i = 2; i < c->argc; i += 2) {
		struct slice opt = c->argv[i];
		if (i + 1 >= c->argc) {
			reply_syntax_error(c);
			return;
		}
		if (arg_equals(opt, "from") && !has_from) {
			if (parse_positive(c, c->argv[i + 1], "FROM", &from))
				return;
			has_from = true;
		} else if (arg_equals(opt, "count") && !has_count) {
			int64_t n;
			if (!sp_parse_int64(c->argv[i + 1].p, c->argv[i + 1].len, &n) || n < 1 ||
			    n > MODEL_MAX_VERSIONS) {
				reply_errorf(c, "ERR COUNT must be 1..%d", MODEL_MAX_VERSIONS);
				return;
			}
			count = (uint64_t)n;
			has_count = true;
		} else {
			reply_syntax_error(c);
			return;
		}
	}
	struct model m;
	uint64_t expire_at;
	model_init(&m);
	if (load_model(c, key, &m, &expire_at) < 0)
		goto close_model;
	uint64_t n = from > m.nversions ? 0 : m.nversions - from + 1;
	if (n > count)
		n = count;
	reply_array(c, (size_t)n);
	for (uint64_t i = 0; i < n; i++)
		reply_version(c, from + i, model_version(&m, from + i), NULL);
close_model:
	model_close(&m);
}

/* MODEL.ALIAS key alias version [IFVERSION v | IFNONE] [SCHEMA n]: 1 if
 * the alias now points at version, 0 if its condition did not hold. */
void cmd_model_alias(struct client *c)
{
	struct slice key = c->argv[1], name = c->argv[2];
	uint64_t version, if_version = 0, schema = 0;
	bool if_none = false, has_schema = false;
	if (name.len == 0 || name.len > MODEL_MAX_ALIAS_LEN) {
		reply_errorf(c, "ERR alias names are 1..%d bytes", MODEL_MAX_ALIAS_LEN);
		return;
	}
	if (parse_positive(c, c->argv[3], "version", &version))
		return;
	for (size_t i = 4; i < c->argc; i++) {
		struct slice opt = c->argv[i];
		bool cond = if_version || if_none;
		if (arg_equals(opt, "ifnone") && !cond) {
			if_none = true;
			continue;
		}
		if (i + 1 >= c->argc) {
			reply_syntax_error(c);
			return;
		}
		if (arg_equals(opt, "ifversion") && !cond) {
			if (parse_positive(c, c->argv[i + 1], "IFVERSION", &if_version))
				return;
		} else if (arg_equals(opt, "schema") && !has_schema) {
			if (parse_positive(c, c->argv[i + 1], "SCHEMA", &schema))
				return;
			has_schema = true;
		} else {
			reply_syntax_error(c);
			return;
		}
		i++;
	}
	struct model m;
	uint64_t expire_at;
	model_init(&m);
	int found = load_model(c, key, &m, &expire_at);
	if (found < 0)
		goto close_model;
	const struct model_version *v = model_version(&m, version);
	if (!v) {
		reply_errorf(c, "ERR model '%.*s' has no version %" PRIu64, KEYF(key), version);
		goto close_model;
	}
	const struct model_alias *cur = model_alias_find(&m, name.p, name.len);
	if ((if_version && (!cur || cur->version != if_version)) || (if_none && cur)) {
		reply_integer(c, 0);
		goto close_model;
	}
	if (!has_schema)
		schema = v->schema;
	/* Pointing an alias where it points already keeps the time it was
	 * set; only a new schema is recorded. */
	uint64_t set_ms = server_now_ms(c->srv);
	if (cur && cur->version == version) {
		if (cur->schema == schema) {
			reply_integer(c, 1);
			goto close_model;
		}
		set_ms = cur->set_ms;
	}
	int rc = model_alias_set(&m, name.p, name.len, version, schema, set_ms);
	if (rc == SP_ERR_FULL) {
		reply_errorf(c, "ERR model '%.*s' has the most aliases a model may hold (%d)",
			     KEYF(key), MODEL_MAX_ALIASES);
		goto close_model;
	}
	if (rc) {
		reply_syntax_error(c); /* cannot happen: the arguments were checked */
		goto close_model;
	}
	if (save_model(c, key, &m, expire_at) == 0)
		reply_integer(c, 1);
close_model:
	model_close(&m);
}

/* MODEL.UNALIAS key alias [IFVERSION v]: 1 if removed, 0 if absent or the
 * alias did not point at v. */
void cmd_model_unalias(struct client *c)
{
	struct slice key = c->argv[1], name = c->argv[2];
	uint64_t if_version = 0;
	if (c->argc == 5 && arg_equals(c->argv[3], "ifversion")) {
		if (parse_positive(c, c->argv[4], "IFVERSION", &if_version))
			return;
	} else if (c->argc != 3) {
		reply_syntax_error(c);
		return;
	}
	struct model m;
	uint64_t expire_at;
	model_init(&m);
	int found = load_model(c, key, &m, &expire_at);
	if (found < 0)
		goto close_model;
	const struct model_alias *cur = model_alias_find(&m, name.p, name.len);
	if (!cur || (if_version && cur->version != if_version)) {
		reply_integer(c, 0);
		goto close_model;
	}
	model_alias_remove(&m, name.p, name.len);
	if (save_model(c, key, &m, expire_at) == 0)
		reply_integer(c, 1);
close_model:
	model_close(&m);
}

/* MODEL.ALIASES key: [alias, version, schema, set_ms] for every alias, by
 * name. */
void cmd_model_aliases(struct client *c)
{
	struct model m;
	uint64_t expire_at;
	model_init(&m);
	if (load_model(c, c->argv[1], &m, &expire_at) < 0)
		goto close_model;
	reply_array(c, m.naliases);
	for (size_t i = 0; i < m.naliases; i++) {
		const struct model_alias *a = &m.aliases[i];
		reply_array(c, 4);
		reply_bulk(c, a->name, a->name_len);
		reply_integer(c, (int64_t)a->version);
		reply_integer(c, (int64_t)a->schema);
		reply_integer(c, (int64_t)a->set_ms);
	}
close_model:
	model_close(&m);
}
