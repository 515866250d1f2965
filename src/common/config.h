/*
 * config: spectrad's settings.
 *
 * Every setting has a name, a type, a range and a default, in one table
 * (config.c) that parsing, CONFIG GET and --help share. Settings come from
 * a file of "name value" lines (blank lines and lines starting with # are
 * skipped; a value may be "double-quoted") and from --name value flags,
 * flags winning. A bad setting is refused with a message naming the file,
 * line, setting and allowed range. Pure: reads only the file it is given.
 */
#ifndef SP_COMMON_CONFIG_H
#define SP_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sp_fsync { SP_FSYNC_ALWAYS, SP_FSYNC_BATCH, SP_FSYNC_OFF };

struct sp_config {
	/* network */
	char *bind;	     /* listen address, default "127.0.0.1" */
	int port;	     /* client port, 1..65535, default 7379 */
	int tcp_backlog;     /* 1..65535, default 511 */
	uint64_t maxclients; /* 1..100000, default 10000 */
	uint64_t timeout_s;  /* idle client timeout, 0 = never, default 0 */
	/* storage */
	char *dir;		    /* data directory, default "./spectra-data" */
	uint64_t map_size;	    /* LMDB map size, 1mb..1tb, default 8gb */
	enum sp_fsync fsync;	    /* always|batch|off, default always */
	uint64_t fsync_interval_ms; /* batch: ms between syncs, 1..60000, default 100 */
	uint64_t active_expire_hz;  /* expiry sweeps per second, 1..500, default 10 */
	/* limits */
	uint64_t max_bulk_len;	    /* 1kb..2gb, default 512mb (proto-max-bulk-len) */
	uint64_t max_args;	    /* 1..1048576*8, default 1048576 */
	uint64_t max_inline_len;    /* 1kb..16mb, default 64kb */
	uint64_t max_value_bytes;   /* largest value stored under one key, 1..2gb, default 512mb */
	uint64_t max_query_buffer;  /* unparsed bytes kept per client, 1mb..4gb, default 1gb */
	uint64_t max_output_buffer; /* pending reply bytes per client before it is
				     * paused (reads stop) 64kb..4gb, default 64mb */
	/* security */
	char *requirepass; /* "" = no password, default "" */
	/* process */
	char *logfile;	/* "" = stderr, default "" */
	char *loglevel; /* debug|info|warn|error, default "info" */
	char *pidfile;	/* "" = none, default "" */
	/* cluster */
	uint64_t node_id;	       /* 0: standalone (a one-node cluster, id 1) */
	char *cluster_file;	       /* "" = standalone; else the cluster file */
	int peer_port;		       /* standalone peer port; 0 = port + 10000 */
	uint64_t election_timeout_ms;  /* Raft election timeout (minimum) */
	uint64_t heartbeat_ms;	       /* Raft heartbeat interval */
	uint64_t max_clock_drift_ppm;  /* bound on clock drift; shortens leases */
	uint64_t request_timeout_ms;   /* wait for a leader / a forwarded answer */
	uint64_t snapshot_every;       /* entries applied between snapshots */
	uint64_t snapshot_interval_ms; /* and at least this long between them */
	bool admin_commands;	       /* DEBUG NET and other fault hooks allowed */
	int default_mode;	       /* mode of keys in no declared keyspace */
	/* eventual keyspaces */
	uint64_t eventual_rf;	      /* rf of the default keyspace when eventual */
	uint64_t hint_max_age_ms;     /* hints older than this are dropped */
	uint64_t hint_max_bytes;      /* hints beyond this total are dropped */
	uint64_t anti_entropy_ms;     /* one Merkle exchange per interval (0: off) */
	uint64_t anti_entropy_keys;   /* keys repaired per exchange, at most */
	uint64_t max_clock_skew_ms;   /* LWW timestamps further ahead are flagged */
	uint64_t max_set_members;     /* members of one CRDT set */
	uint64_t max_member_bytes;    /* one set member or register value */
	uint64_t max_siblings;	      /* concurrent values of one MV-Register */
	uint64_t read_repair_percent; /* eventual reads that ask every replica */
	char *trace_file;	      /* causal trace log ("" = off) */
	/* observability */
	int http_port;		     /* HTTP endpoint (0 = off) */
	char *http_bind;	     /* its address, default 127.0.0.1 */
	uint64_t stale_sample_every; /* one weak read in this many is checked (0 = off) */
};

enum sp_mode { SP_MODE_STRONG, SP_MODE_CAUSAL, SP_MODE_EVENTUAL };

/*
 * sp_config_init fills every field with its default. Strings are owned by
 * the config and released by sp_config_free.
 */
void sp_config_init(struct sp_config *c);
void sp_config_free(struct sp_config *c);

/*
 * sp_config_set sets one setting by name from its text form ("10mb",
 * "yes", "always"...). Names are case-insensitive; '_' and '-' are equal.
 * Returns 0, or SP_ERR_NOTFOUND for an unknown name, or SP_ERR_INVAL /
 * SP_ERR_RANGE with a message in errbuf (size errlen) that names the
 * setting, the bad value and what is allowed.
 */
int sp_config_set(struct sp_config *c, const char *name, const char *value, char *errbuf,
		  size_t errlen);

/*
 * sp_config_load_file applies a settings file. Returns 0, a negated errno
 * if the file cannot be read, or the first error from sp_config_set; errbuf
 * then starts with "<path>:<line>: ".
 */
int sp_config_load_file(struct sp_config *c, const char *path, char *errbuf, size_t errlen);

/*
 * sp_config_load_args applies argv[0..argc): "--config <file>" loads a
 * file first (wherever it appears), then every "--name value" pair is set
 * in order. "--help" is not handled here. Returns 0 or an error with errbuf
 * as above (mentioning the flag).
 */
int sp_config_load_args(struct sp_config *c, int argc, char **argv, char *errbuf, size_t errlen);

/*
 * sp_config_format returns the current value of setting `name` in the text
 * form sp_config_set accepts (owned by the caller, free()), or NULL if no
 * such setting exists.
 */
char *sp_config_format(const struct sp_config *c, const char *name);

/* Iteration over the settings table (for CONFIG GET and --help):
 * sp_config_count() entries, each with a canonical name and help line. */
size_t sp_config_count(void);
const char *sp_config_name(size_t i);
const char *sp_config_help(size_t i); /* one line: type, range, default, meaning */

/* sp_parse_size parses "123", "64kb", "10mb", "8gb", "1tb" (case-insensitive,
 * also "k", "m", "g") into bytes. Returns 0 or SP_ERR_RANGE. */
int sp_parse_size(const char *s, uint64_t *out);

#endif
