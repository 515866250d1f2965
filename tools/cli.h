/*
 * cli: what every `spectra` subcommand shares.
 *
 * A command is a name in a table (struct cli_command) that either runs or
 * dispatches to a table of its own, so `spectra node start` is found the
 * same way `spectra node` is. Each leaf command describes its flags in a
 * table (struct cli_spec); parsing and --help text both come from that
 * table, so they cannot disagree. Exit codes are the same everywhere:
 * 0 success, 1 failure, 2 a usage error (with a message and a hint on
 * stderr). This module knows nothing about what any command does.
 */
#ifndef SP_TOOLS_CLI_H
#define SP_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "common/version.h"

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_NOT_RUNNING = 3, /* `status` of a stopped node, as LSB init scripts do */
};

/*
 * A subcommand. run gets the command's full path ("spectra node start", for
 * messages and usage) and the arguments after its name; it returns an exit
 * code.
 */
struct cli_command {
	const char *name;
	const char *summary; /* one line for the parent's usage */
	int (*run)(const char *path, int argc, char **argv);
};

/*
 * cli_dispatch runs the command in cmds (n entries) named by argv[0].
 * `path` is the parent's path ("spectra node"), `about` a sentence on what
 * the group is for. "--help"/"-h" print the group's usage on stdout (exit
 * 0); no argument, an unknown name or a flag print a message and a hint on
 * stderr (exit 2).
 */
int cli_dispatch(const char *path, const char *about, const struct cli_command *cmds, size_t n,
		 int argc, char **argv);

/*
 * One flag of a leaf command: "--name VALUE" or "--name=VALUE" when
 * metavar is set (the value is stored in *value, borrowed from argv), or
 * a switch "--name" (sets *on) when metavar is NULL.
 */
struct cli_flag {
	const char *name;    /* without the leading "--" */
	const char *metavar; /* "DIR"; NULL for a switch */
	const char *help;    /* one line */
	const char **value;  /* for flags with a value */
	bool *on;	     /* for switches */
};

struct cli_spec {
	const char *path;	 /* "spectra node start" */
	const char *synopsis;	 /* what follows the path in the usage line */
	const char *description; /* paragraphs printed after the usage line */
	const struct cli_flag *flags;
	size_t nflags;
	/* If set, "--" ends the flags and the arguments after it are passed
	 * on (see cli_parse's *rest); this names them in the usage text. */
	const char *rest;
};

/*
 * cli_parse parses argv[0..argc) against spec's flags, storing values
 * through the table's pointers. Returns true if the command should go on,
 * with *rest set to the index of the first argument after "--" (argc if
 * none). Returns false when the command should exit at once with
 * *exit_code: after printing usage for --help/-h (0), or after printing a
 * message and a hint for an unknown flag, a missing value or a stray
 * argument (2).
 */
bool cli_parse(const struct cli_spec *spec, int argc, char **argv, int *rest, int *exit_code);

/* cli_usage prints spec's usage text to stdout. */
void cli_usage(const struct cli_spec *spec);

/*
 * cli_usage_error prints "<path>: <message>" and a pointer to --help on
 * stderr and returns CLI_EXIT_USAGE.
 */
int cli_usage_error(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* cli_error prints "spectra: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cli_parse_seconds reads a positive number of seconds ("10", "0.5"), at
 * most a day. Returns false if text is not one. */
bool cli_parse_seconds(const char *text, double *out);

/* cli_is_flag says whether argument arg is the flag --name (or --name=...),
 * comparing as spectrad does: case-insensitive, '_' equal to '-'. */
bool cli_is_flag(const char *arg, const char *name);

/* cli_json_string prints s on stdout as a JSON string, or null for NULL or
 * ""; cli_json_number prints v, or null when it is negative (unknown). */
void cli_json_string(const char *s);
void cli_json_number(long long v);

#endif
