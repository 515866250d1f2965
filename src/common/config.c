/*
 * config: the settings table and the parsers that read it.
 *
 * Every setting is one row of `settings` below: its name, its type, where
 * it lives in struct sp_config, its range, its default (as text, parsed by
 * the same code as user input, so a default can never be out of its own
 * range) and a line of help. Parsing a file, parsing flags, CONFIG GET and
 * --help all walk this one table; adding a setting means adding a field to
 * struct sp_config and a row here, nothing else.
 *
 * Text forms:
 *   string  taken as is; min..max bounds its length in bytes. A string
 *           row with `names` is a choice: the value must be one of them
 *           (case-insensitive) and is stored in its canonical spelling.
 *   int     decimal digits into an int (ports, backlogs).
 *   uint    decimal digits into a uint64_t.
 *   size    decimal digits with an optional suffix b, k/kb, m/mb, g/gb,
 *           t/tb (case-insensitive, powers of 1024) into a uint64_t byte
 *           count; formatted back as the plain byte count, as Redis's
 *           CONFIG GET does.
 *   enum    one of `names` (case-insensitive) into an int-sized enum whose
 *           values are the indexes of `names`.
 *   bool    yes|no into a bool.
 * No form accepts a sign, spaces, or a fraction: "1.5gb" and " 10" are
 * refused rather than guessed at.
 *
 * Flags: "--name value" or "--name=value". An argument after "--name" that
 * itself starts with "--" is taken as the next flag, so "--port --bind x"
 * reports port's missing value instead of parsing "--bind" as a port; a
 * value that really starts with "--" can be given as "--name=--value".
 */
#include "common/config.h"

#include "common/alloc.h"
#include "common/err.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum setting_type {
	TYPE_STRING,
	TYPE_INT,
	TYPE_UINT,
	TYPE_SIZE,
	TYPE_ENUM,
	TYPE_BOOL,
};

struct setting {
	const char *name; /* canonical: lower case, '-' between words */
	enum setting_type type;
	size_t offset;		  /* of the field in struct sp_config */
	uint64_t min, max;	  /* numbers: the range; strings: the length */
	const char *def;	  /* default, in the form sp_config_set takes */
	const char *const *names; /* enum and choice strings; NULL-terminated */
	const char *help;	  /* what it means; range and default are added */
};

#define KB (1024ull)
#define MB (1024ull * KB)
#define GB (1024ull * MB)
#define TB (1024ull * GB)

/* Paths and addresses longer than this are mistakes, not configuration. */
#define STRING_MAX 4096

/* Values quoted back in error messages are cut to this many bytes. */
#define QUOTE_MAX 64

static const char *const fsync_names[] = {"always", "batch", "off", NULL};
static const char *const loglevel_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const bool_names[] = {"no", "yes", NULL};
static const char *const mode_names[] = {"strong", "causal", "eventual", NULL};

/* The enum's values index fsync_names, and it is stored through an int. */
_Static_assert(SP_FSYNC_ALWAYS == 0 && SP_FSYNC_BATCH == 1 && SP_FSYNC_OFF == 2,
	       "fsync_names must follow enum sp_fsync");
_Static_assert(sizeof(enum sp_fsync) == sizeof(int), "enum sp_fsync is stored as an int");

#define FIELD(f) offsetof(struct sp_config, f)

static const struct setting settings[] = {
    /* network */
    {"bind", TYPE_STRING, FIELD(bind), 1, STRING_MAX, "127.0.0.1", NULL,
     "address to listen on for clients"},
    {"port", TYPE_INT, FIELD(port), 1, 65535, "7379", NULL, "TCP port for clients"},
    {"tcp-backlog", TYPE_INT, FIELD(tcp_backlog), 1, 65535, "511", NULL,
     "length of the queue of connections not yet accepted"},
    {"maxclients", TYPE_UINT, FIELD(maxclients), 1, 100000, "10000", NULL,
     "most clients connected at once; more are refused"},
    {"timeout", TYPE_UINT, FIELD(timeout_s), 0, INT_MAX, "0", NULL,
     "seconds before an idle client is closed (0: never)"},
    /* storage */
    {"dir", TYPE_STRING, FIELD(dir), 1, STRING_MAX, "./spectra-data", NULL, "data directory"},
    {"map-size", TYPE_SIZE, FIELD(map_size), 1 * MB, 1 * TB, "8gb", NULL,
     "LMDB map size: the most data this node can hold"},
    {"fsync", TYPE_ENUM, FIELD(fsync), 0, 0, "always", fsync_names,
     "when the Raft log reaches the disk: before an entry counts (always), "
     "about every fsync-interval-ms while writes come (batch), or when the OS decides (off)"},
    {"fsync-interval-ms", TYPE_UINT, FIELD(fsync_interval_ms), 1, 60000, "100", NULL,
     "with fsync batch: milliseconds between syncs of the Raft log"},
    {"active-expire-hz", TYPE_UINT, FIELD(active_expire_hz), 1, 500, "10", NULL,
     "sweeps for expired keys per second"},
    /* limits */
    {"max-bulk-len", TYPE_SIZE, FIELD(max_bulk_len), 1 * KB, 2 * GB, "512mb", NULL,
     "largest bulk string a client may send (proto-max-bulk-len)"},
    {"max-args", TYPE_UINT, FIELD(max_args), 1, 8 * 1048576ull, "1048576", NULL,
     "most arguments in one command"},
    {"max-inline-len", TYPE_SIZE, FIELD(max_inline_len), 1 * KB, 16 * MB, "64kb", NULL,
     "longest inline (non-RESP) command line"},
    {"max-value-bytes", TYPE_SIZE, FIELD(max_value_bytes), 1, 2 * GB, "512mb", NULL,
     "largest value stored under one key"},
    {"max-query-buffer", TYPE_SIZE, FIELD(max_query_buffer), 1 * MB, 4 * GB, "1gb", NULL,
     "unparsed bytes kept per client before it is disconnected"},
    {"max-output-buffer", TYPE_SIZE, FIELD(max_output_buffer), 64 * KB, 4 * GB, "64mb", NULL,
     "pending reply bytes per client before its reads are paused"},
    /* security */
    {"requirepass", TYPE_STRING, FIELD(requirepass), 0, STRING_MAX, "", NULL,
     "password clients must AUTH with (empty: none)"},
    /* process */
    {"logfile", TYPE_STRING, FIELD(logfile), 0, STRING_MAX, "", NULL,
     "file to log to (empty: stderr)"},
    {"loglevel", TYPE_STRING, FIELD(loglevel), 0, STRING_MAX, "info", loglevel_names,
     "least severe messages logged"},
    {"pidfile", TYPE_STRING, FIELD(pidfile), 0, STRING_MAX, "", NULL,
     "file the process id is written to once listening (empty: none)"},
    /* cluster */
    {"node-id", TYPE_UINT, FIELD(node_id), 0, INT64_MAX, "0", NULL,
     "this node's id in the cluster file (0: standalone, a one-node cluster)"},
    {"cluster-file", TYPE_STRING, FIELD(cluster_file), 0, STRING_MAX, "", NULL,
     "cluster file naming every node and its addresses (empty: standalone)"},
    {"peer-port", TYPE_INT, FIELD(peer_port), 0, 65535, "0", NULL,
     "standalone: TCP port for peers (0: port + 10000); a cluster file names its own"},
    {"election-timeout-ms", TYPE_UINT, FIELD(election_timeout_ms), 10, 60000, "1000", NULL,
     "Raft: silence from a leader before a follower stands for election"},
    {"heartbeat-ms", TYPE_UINT, FIELD(heartbeat_ms), 1, 10000, "100", NULL,
     "Raft: how often a leader heartbeats (well under election-timeout-ms)"},
    {"max-clock-drift-ppm", TYPE_UINT, FIELD(max_clock_drift_ppm), 0, 500000, "100000", NULL,
     "assumed bound on clock rate error; lease reads are safe only under it (0: no leases)"},
    {"request-timeout-ms", TYPE_UINT, FIELD(request_timeout_ms), 10, 600000, "2000", NULL,
     "how long a request waits for a leader (-TRYAGAIN after) or a forwarded answer"},
    {"snapshot-every", TYPE_UINT, FIELD(snapshot_every), 0, INT64_MAX, "100000", NULL,
     "Raft entries applied between snapshots (0: never)"},
    {"snapshot-interval-ms", TYPE_UINT, FIELD(snapshot_interval_ms), 0, 3600000, "10000", NULL,
     "least time between snapshots, unless 8 x snapshot-every entries piled up (0: none)"},
    {"admin-commands", TYPE_BOOL, FIELD(admin_commands), 0, 0, "no", NULL,
     "allow DEBUG NET and other fault-injection commands"},
    {"default-mode", TYPE_ENUM, FIELD(default_mode), 0, 0, "strong", mode_names,
     "mode of the default keyspace (keys in no declared keyspace)"},
    /* eventual keyspaces */
    {"eventual-rf", TYPE_UINT, FIELD(eventual_rf), 1, 7, "3", NULL,
     "replication factor of the default keyspace when default-mode is eventual"},
    {"hint-max-age-ms", TYPE_UINT, FIELD(hint_max_age_ms), 0, INT64_MAX, "10800000", NULL,
     "hinted handoff: hints older than this are dropped, anti-entropy repairs instead (0: "
     "keep)"},
    {"hint-max-bytes", TYPE_SIZE, FIELD(hint_max_bytes), 0, 1 * TB, "1gb", NULL,
     "hinted handoff: hints beyond this total are dropped (0: no limit)"},
    {"anti-entropy-ms", TYPE_UINT, FIELD(anti_entropy_ms), 0, 3600000, "1000", NULL,
     "milliseconds between Merkle-tree exchanges with the next replica (0: off)"},
    {"anti-entropy-keys", TYPE_UINT, FIELD(anti_entropy_keys), 1, 1000000, "1000", NULL,
     "most keys sent each way in one anti-entropy exchange: the repair rate bound"},
    {"max-clock-skew-ms", TYPE_UINT, FIELD(max_clock_skew_ms), 0, INT64_MAX, "5000", NULL,
     "LWW timestamps this far ahead of the local clock are flagged and counted (0: no bound)"},
    {"max-set-members", TYPE_UINT, FIELD(max_set_members), 1, UINT32_MAX, "1000000", NULL,
     "most members (live and removed) of one CRDT set"},
    {"max-member-bytes", TYPE_SIZE, FIELD(max_member_bytes), 1, 512 * MB, "1mb", NULL,
     "largest set member or eventual register value"},
    {"max-siblings", TYPE_UINT, FIELD(max_siblings), 1, 65535, "64", NULL,
     "most concurrent values an MV-Register keeps before MVREG.SET must resolve them"},
    {"trace-file", TYPE_STRING, FIELD(trace_file), 0, STRING_MAX, "", NULL,
     "causal trace log, JSON lines for spectra trace merge/graph; relative to dir (empty: off)"},
    {"read-repair-percent", TYPE_UINT, FIELD(read_repair_percent), 0, 100, "10", NULL,
     "eventual reads that ask every replica (and repair behind) rather than just enough for "
     "their level"},
    /* observability */
    {"http-port", TYPE_INT, FIELD(http_port), 0, 65535, "0", NULL,
     "TCP port of the HTTP endpoint: /metrics, /status and the dashboard at / (0: off)"},
    {"http-bind", TYPE_STRING, FIELD(http_bind), 1, STRING_MAX, "127.0.0.1", NULL,
     "IPv4 address the HTTP endpoint listens on"},
    {"stale-sample-every", TYPE_UINT, FIELD(stale_sample_every), 0, UINT32_MAX, "100", NULL,
     "the stale-read sampler checks one weak read in this many against a stronger read "
     "issued at the same moment (0: off)"},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* errorf writes a message to errbuf, which callers may leave NULL. */
__attribute__((format(printf, 3, 4))) static void errorf(char *errbuf, size_t errlen,
							 const char *fmt, ...)
{
	if (!errbuf || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

static char lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Names compare case-insensitively, with '_' and '-' equal. */
static char name_char(char ch)
{
	return ch == '_' ? '-' : lower(ch);
}

static bool name_equal(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (name_char(*a) != name_char(*b))
			return false;
	return *a == *b;
}

static const struct setting *find_setting(const char *name)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (name_equal(settings[i].name, name))
			return &settings[i];
	return NULL;
}

/*
 * closest_name suggests the setting an unknown name was probably meant to
 * be: the one within edit distance 2 (Levenshtein) of it, if any. Returns
 * NULL when nothing is that close.
 */
static const char *closest_name(const char *name)
{
	enum { LONGEST = 40 };
	size_t n = strlen(name);
	if (n == 0 || n > LONGEST)
		return NULL;
	const char *best = NULL;
	size_t best_dist = 3;
	for (size_t i = 0; i < NSETTINGS; i++) {
		const char *cand = settings[i].name;
		size_t m = strlen(cand);
		size_t row[LONGEST + 1];
		if (m > LONGEST)
			continue;
		for (size_t j = 0; j <= m; j++)
			row[j] = j;
		for (size_t a = 1; a <= n; a++) {
			size_t diag = row[0];
			row[0] = a;
			for (size_t b = 1; b <= m; b++) {
				size_t up = row[b];
				size_t cost = name_char(name[a - 1]) == cand[b - 1] ? 0 : 1;
				size_t d = diag + cost;
				if (up + 1 < d)
					d = up + 1;
				if (row[b - 1] + 1 < d)
					d = row[b - 1] + 1;
				row[b] = d;
				diag = up;
			}
		}
		if (row[m] < best_dist && row[m] < n) {
			best_dist = row[m];
			best = cand;
		}
	}
	return best;
}

/* quote returns value for an error message, cut to QUOTE_MAX bytes. */
static const char *quote(const char *value, char *out, size_t outlen)
{
	if (strlen(value) <= QUOTE_MAX)
		return value;
	snprintf(out, outlen, "%.*s...", QUOTE_MAX, value);
	return out;
}

/*
 * parse_digits reads a run of decimal digits from *s, advancing it.
 * Returns 0, SP_ERR_INVAL if there is no digit, or SP_ERR_RANGE if the
 * number does not fit in 64 bits.
 */
static int parse_digits(const char **s, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	if (*p < '0' || *p > '9')
		return SP_ERR_INVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t digit = (uint64_t)(*p - '0');
		if (v > (UINT64_MAX - digit) / 10)
			return SP_ERR_RANGE;
		v = v * 10 + digit;
	}
	*s = p;
	*out = v;
	return 0;
}

static int parse_uint(const char *s, uint64_t *out)
{
	int rc = parse_digits(&s, out);
	if (rc)
		return rc;
	return *s ? SP_ERR_INVAL : 0;
}

/* parse_size is sp_parse_size telling bad syntax (SP_ERR_INVAL) apart from
 * overflow (SP_ERR_RANGE), so messages can say which. */
static int parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t unit;
	} units[] = {
	    {"", 1},	{"b", 1},  {"k", KB},  {"kb", KB}, {"m", MB},
	    {"mb", MB}, {"g", GB}, {"gb", GB}, {"t", TB},  {"tb", TB},
	};
	uint64_t n;
	int rc = parse_digits(&s, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		const char *a = s, *b = units[i].suffix;
		while (*a && *b && lower(*a) == *b)
			a++, b++;
		if (*a || *b)
			continue;
		if (n > UINT64_MAX / units[i].unit)
			return SP_ERR_RANGE;
		*out = n * units[i].unit;
		return 0;
	}
	return SP_ERR_INVAL;
}

int sp_parse_size(const char *s, uint64_t *out)
{
	return parse_size(s, out) ? SP_ERR_RANGE : 0;
}

/* size_text writes a byte count in the largest unit that divides it
 * ("8gb", "1mb", "1536"): for help text and ranges, where it reads better
 * than the byte count. */
static void size_text(uint64_t v, char *out, size_t outlen)
{
	static const struct {
		const char *suffix;
		uint64_t unit;
	} units[] = {{"tb", TB}, {"gb", GB}, {"mb", MB}, {"kb", KB}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (v != 0 && v % units[i].unit == 0) {
			snprintf(out, outlen, "%llu%s", (unsigned long long)(v / units[i].unit),
				 units[i].suffix);
			return;
		}
	}
	snprintf(out, outlen, "%llu", (unsigned long long)v);
}

/* range_text writes "min..max" for a numeric setting. */
static void range_text(const struct setting *s, char *out, size_t outlen)
{
	if (s->type == TYPE_SIZE) {
		char lo[32], hi[32];
		size_text(s->min, lo, sizeof(lo));
		size_text(s->max, hi, sizeof(hi));
		snprintf(out, outlen, "%s..%s", lo, hi);
	} else {
		snprintf(out, outlen, "%llu..%llu", (unsigned long long)s->min,
			 (unsigned long long)s->max);
	}
}

/* names_text writes "a|b|c". */
static void names_text(const char *const *names, char *out, size_t outlen)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; names[i]; i++) {
		int n = snprintf(out + used, outlen - used, "%s%s", i ? "|" : "", names[i]);
		if (n < 0 || (size_t)n >= outlen - used)
			return;
		used += (size_t)n;
	}
}

static int find_name(const char *const *names, const char *value)
{
	for (int i = 0; names[i]; i++) {
		const char *a = names[i], *b = value;
		while (*a && *b && *a == lower(*b))
			a++, b++;
		if (!*a && !*b)
			return i;
	}
	return -1;
}

static void *field(struct sp_config *c, const struct setting *s)
{
	return (char *)c + s->offset;
}

static const void *const_field(const struct sp_config *c, const struct setting *s)
{
	return (const char *)c + s->offset;
}

/*
 * set_value parses `value` for setting s and stores it in c. `label` is
 * how the setting is named in messages ("port", or "--port" for a flag).
 * On error c is unchanged and errbuf says what was wrong and what is
 * allowed.
 */
static int set_value(struct sp_config *c, const struct setting *s, const char *label,
		     const char *value, char *errbuf, size_t errlen)
{
	char shown[QUOTE_MAX + 4], allowed[128];
	const char *v = quote(value, shown, sizeof(shown));
	uint64_t n;
	int rc, idx;

	switch (s->type) {
	case TYPE_STRING: {
		size_t len = strlen(value);
		if (s->names) {
			idx = find_name(s->names, value);
			if (idx < 0) {
				names_text(s->names, allowed, sizeof(allowed));
				errorf(errbuf, errlen, "%s: '%s' is not one of %s", label, v,
				       allowed);
				return SP_ERR_INVAL;
			}
			value = s->names[idx];
		} else if (len < s->min) {
			errorf(errbuf, errlen, "%s: must not be empty", label);
			return SP_ERR_INVAL;
		} else if (len > s->max) {
			errorf(errbuf, errlen, "%s: '%s' is too long (%zu bytes; at most %llu)",
			       label, v, len, (unsigned long long)s->max);
			return SP_ERR_RANGE;
		}
		char **slot = field(c, s);
		char *copy = sp_strdup(value);
		free(*slot);
		*slot = copy;
		return 0;
	}
	case TYPE_INT:
	case TYPE_UINT:
	case TYPE_SIZE:
		range_text(s, allowed, sizeof(allowed));
		rc = s->type == TYPE_SIZE ? parse_size(value, &n) : parse_uint(value, &n);
		if (rc == SP_ERR_INVAL) {
			if (s->type == TYPE_SIZE)
				errorf(errbuf, errlen,
				       "%s: '%s' is not a size (%s; a number with an optional "
				       "suffix b, kb, mb, gb or tb)",
				       label, v, allowed);
			else
				errorf(errbuf, errlen, "%s: '%s' is not an integer (%s)", label, v,
				       allowed);
			return SP_ERR_INVAL;
		}
		if (rc == SP_ERR_RANGE || n < s->min || n > s->max) {
			errorf(errbuf, errlen, "%s: '%s' is out of range (%s)", label, v, allowed);
			return SP_ERR_RANGE;
		}
		if (s->type == TYPE_INT)
			*(int *)field(c, s) = (int)n;
		else
			*(uint64_t *)field(c, s) = n;
		return 0;
	case TYPE_ENUM:
	case TYPE_BOOL: {
		const char *const *names = s->type == TYPE_BOOL ? bool_names : s->names;
		idx = find_name(names, value);
		if (idx < 0) {
			names_text(names, allowed, sizeof(allowed));
			errorf(errbuf, errlen, "%s: '%s' is not one of %s", label, v, allowed);
			return SP_ERR_INVAL;
		}
		if (s->type == TYPE_BOOL)
			*(bool *)field(c, s) = idx == 1;
		else
			*(int *)field(c, s) = idx;
		return 0;
	}
	}
	assert(0 && "unknown setting type");
	return SP_ERR_INVAL;
}

void sp_config_init(struct sp_config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NSETTINGS; i++) {
		int rc = set_value(c, &settings[i], settings[i].name, settings[i].def, NULL, 0);
		assert(rc == 0 && "a default is out of its own range");
		(void)rc;
	}
}

void sp_config_free(struct sp_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < NSETTINGS; i++) {
		if (settings[i].type != TYPE_STRING)
			continue;
		char **slot = field(c, &settings[i]);
		free(*slot);
		*slot = NULL;
	}
}

/* unknown_setting writes "unknown setting 'x'", with a suggestion when a
 * real name is close; prefix is "" or "--" to match how it was written. */
static int unknown_setting(const char *prefix, const char *name, char *errbuf, size_t errlen)
{
	char shown[QUOTE_MAX + 4];
	const char *near = closest_name(name);
	const char *v = quote(name, shown, sizeof(shown));
	if (near)
		errorf(errbuf, errlen, "unknown setting '%s%s' (did you mean '%s%s'?)", prefix, v,
		       prefix, near);
	else
		errorf(errbuf, errlen, "unknown setting '%s%s'", prefix, v);
	return SP_ERR_NOTFOUND;
}

int sp_config_set(struct sp_config *c, const char *name, const char *value, char *errbuf,
		  size_t errlen)
{
	const struct setting *s = find_setting(name);
	if (!s)
		return unknown_setting("", name, errbuf, errlen);
	if (!value) {
		errorf(errbuf, errlen, "%s: missing value", s->name);
		return SP_ERR_INVAL;
	}
	return set_value(c, s, s->name, value, errbuf, errlen);
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\v' || ch == '\f';
}

/*
 * apply_line applies one line of a settings file (NUL-terminated, its
 * line ending already removed): "name value", "name \"quoted value\"",
 * a comment or a blank line. The line is modified in place. Messages are
 * written without the "<path>:<line>: " prefix, which the caller adds.
 */
static int apply_line(struct sp_config *c, char *line, char *errbuf, size_t errlen)
{
	char *p = line;
	while (is_space(*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;

	char *name = p;
	while (*p && !is_space(*p))
		p++;
	if (*p)
		*p++ = '\0';
	const struct setting *s = find_setting(name);
	if (!s)
		return unknown_setting("", name, errbuf, errlen);

	while (is_space(*p))
		p++;
	if (*p == '\0') {
		errorf(errbuf, errlen, "%s: missing value", s->name);
		return SP_ERR_INVAL;
	}

	char *value = p, *end;
	if (*p == '"') {
		/* A quoted value may hold spaces and '#'; inside it \" is a quote
		 * and \\ a backslash. It is unquoted in place. */
		char *out = value;
		for (p++;; p++) {
			if (*p == '\0') {
				errorf(errbuf, errlen, "%s: unterminated quoted value", s->name);
				return SP_ERR_INVAL;
			}
			if (*p == '"')
				break;
			if (*p == '\\') {
				if (p[1] != '"' && p[1] != '\\') {
					errorf(errbuf, errlen,
					       "%s: unknown escape '\\%c' in quoted value "
					       "(only \\\" and \\\\ are allowed)",
					       s->name, p[1] ? p[1] : ' ');
					return SP_ERR_INVAL;
				}
				p++;
			}
			*out++ = *p;
		}
		end = out;
		p++;
	} else {
		while (*p && !is_space(*p))
			p++;
		end = p;
	}
	while (is_space(*p))
		p++;
	if (*p) {
		char shown[QUOTE_MAX + 4];
		errorf(errbuf, errlen,
		       "%s: unexpected text after the value: '%s' (quote a value that "
		       "contains spaces)",
		       s->name, quote(p, shown, sizeof(shown)));
		return SP_ERR_INVAL;
	}
	*end = '\0';
	return set_value(c, s, s->name, value, errbuf, errlen);
}

int sp_config_load_file(struct sp_config *c, const char *path, char *errbuf, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int err = -errno;
		errorf(errbuf, errlen, "%s: %s", path, sp_strerror(err));
		return err;
	}

	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	int rc = 0;
	char msg[512];
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		size_t n = (size_t)len;
		if (memchr(line, '\0', n)) {
			errorf(errbuf, errlen, "%s:%lu: line contains a NUL byte", path, lineno);
			rc = SP_ERR_INVAL;
			goto close_file;
		}
		/* Files written on Windows end lines with CRLF. */
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		char *text = line;
		/* ...and some editors open them with a UTF-8 byte order mark. */
		if (lineno == 1 && strncmp(text, "\xef\xbb\xbf", 3) == 0)
			text += 3;
		rc = apply_line(c, text, msg, sizeof(msg));
		if (rc) {
			errorf(errbuf, errlen, "%s:%lu: %s", path, lineno, msg);
			goto close_file;
		}
	}
	if (ferror(f)) {
		rc = -(errno ? errno : EIO);
		errorf(errbuf, errlen, "%s: %s", path, sp_strerror(rc));
	}
close_file:
	free(line);
	fclose(f);
	return rc;
}

/*
 * split_flag reads the flag at argv[*i]: its name (after "--", up to any
 * '=') into name (size namelen) and its value, from after the '=' or from
 * the next argument, advancing *i past what it used. Returns 0 or
 * SP_ERR_INVAL with a message.
 */
static int split_flag(int argc, char **argv, int *i, char *name, size_t namelen, const char **value,
		      char *errbuf, size_t errlen)
{
	const char *arg = argv[*i];
	char shown[QUOTE_MAX + 4];
	if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0' || arg[2] == '=') {
		errorf(errbuf, errlen,
		       "unexpected argument '%s' (settings are given as --name value)",
		       quote(arg, shown, sizeof(shown)));
		return SP_ERR_INVAL;
	}
	const char *eq = strchr(arg + 2, '=');
	size_t n = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
	if (n >= namelen)
		n = namelen - 1; /* too long to be any setting; still reported as unknown */
	memcpy(name, arg + 2, n);
	name[n] = '\0';
	(*i)++;
	if (eq) {
		*value = eq + 1;
		return 0;
	}
	if (*i >= argc || strncmp(argv[*i], "--", 2) == 0) {
		const struct setting *s = find_setting(name);
		if (!s && strcmp(name, "config") != 0)
			return unknown_setting("--", name, errbuf, errlen);
		errorf(errbuf, errlen, "--%s: missing value", s ? s->name : name);
		return SP_ERR_INVAL;
	}
	*value = argv[(*i)++];
	return 0;
}

int sp_config_load_args(struct sp_config *c, int argc, char **argv, char *errbuf, size_t errlen)
{
	char name[128], label[sizeof(name) + 2];
	const char *value;
	int rc;

	/* First pass: check the shape of every flag and load the files named
	 * by --config, so that flags win over files wherever they appear. */
	for (int i = 0; i < argc;) {
		rc = split_flag(argc, argv, &i, name, sizeof(name), &value, errbuf, errlen);
		if (rc)
			return rc;
		if (strcmp(name, "config") != 0)
			continue;
		rc = sp_config_load_file(c, value, errbuf, errlen);
		if (rc)
			return rc;
	}
	/* Second pass: every other flag, in order; the last of a name wins. */
	for (int i = 0; i < argc;) {
		rc = split_flag(argc, argv, &i, name, sizeof(name), &value, errbuf, errlen);
		assert(rc == 0); /* the first pass has seen the same arguments */
		if (strcmp(name, "config") == 0)
			continue;
		const struct setting *s = find_setting(name);
		if (!s)
			return unknown_setting("--", name, errbuf, errlen);
		snprintf(label, sizeof(label), "--%s", s->name);
		rc = set_value(c, s, label, value, errbuf, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* format_value writes setting s's value in the form set_value takes. */
static char *format_value(const struct sp_config *c, const struct setting *s)
{
	char num[32];
	const void *p = const_field(c, s);
	switch (s->type) {
	case TYPE_STRING: {
		const char *v = *(char *const *)p;
		return sp_strdup(v ? v : "");
	}
	case TYPE_INT:
		snprintf(num, sizeof(num), "%d", *(const int *)p);
		return sp_strdup(num);
	case TYPE_UINT:
	case TYPE_SIZE:
		snprintf(num, sizeof(num), "%llu", (unsigned long long)*(const uint64_t *)p);
		return sp_strdup(num);
	case TYPE_ENUM: {
		int v = *(const int *)p;
		int count = 0;
		while (s->names[count])
			count++;
		assert(v >= 0 && v < count);
		return sp_strdup(v >= 0 && v < count ? s->names[v] : "");
	}
	case TYPE_BOOL:
		return sp_strdup(*(const bool *)p ? "yes" : "no");
	}
	assert(0 && "unknown setting type");
	return NULL;
}

char *sp_config_format(const struct sp_config *c, const char *name)
{
	const struct setting *s = find_setting(name);
	return s ? format_value(c, s) : NULL;
}

size_t sp_config_count(void)
{
	return NSETTINGS;
}

const char *sp_config_name(size_t i)
{
	return i < NSETTINGS ? settings[i].name : NULL;
}

/* Help lines are composed once, from the table, on first use. */
static char help_lines[NSETTINGS][320];
static pthread_once_t help_once = PTHREAD_ONCE_INIT;

static void build_help(void)
{
	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];
		char kind[128], range[64], def[64];
		switch (s->type) {
		case TYPE_STRING:
			if (s->names)
				names_text(s->names, kind, sizeof(kind));
			else
				snprintf(kind, sizeof(kind), "string");
			break;
		case TYPE_INT:
		case TYPE_UINT:
			range_text(s, range, sizeof(range));
			snprintf(kind, sizeof(kind), "integer %s", range);
			break;
		case TYPE_SIZE:
			range_text(s, range, sizeof(range));
			snprintf(kind, sizeof(kind), "size %s", range);
			break;
		case TYPE_ENUM:
			names_text(s->names, kind, sizeof(kind));
			break;
		case TYPE_BOOL:
			snprintf(kind, sizeof(kind), "yes|no");
			break;
		}
		if (s->def[0] == '\0')
			snprintf(def, sizeof(def), "\"\"");
		else
			snprintf(def, sizeof(def), "%s", s->def);
		snprintf(help_lines[i], sizeof(help_lines[i]), "%s, default %s: %s", kind, def,
			 s->help);
	}
}

const char *sp_config_help(size_t i)
{
	if (i >= NSETTINGS)
		return NULL;
	pthread_once(&help_once, build_help);
	return help_lines[i];
}
