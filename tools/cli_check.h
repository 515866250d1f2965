/*
 * cli_check: `spectra check`, which reads a recorded history (JSON lines,
 * src/check/history.h) and says whether it is linearizable
 * (src/check/linearizable.h), within a time bound.
 *
 * Its exit status is its answer, so scripts can branch on it: 0
 * linearizable, 1 a violation, 2 unknown (the time bound ran out first),
 * 64 a usage error or input that is not a history. Note that 2 is not a
 * usage error here, as it is for the other commands (tools/cli.h).
 *
 * It only reads, checks and reports: it does not record histories (that
 * is `spectra chaos`) and does not touch a cluster.
 */
#ifndef SP_TOOLS_CLI_CHECK_H
#define SP_TOOLS_CLI_CHECK_H

enum cli_check_exit {
	CLI_CHECK_LINEARIZABLE = 0,
	CLI_CHECK_VIOLATION = 1,
	CLI_CHECK_UNKNOWN = 2,
	CLI_CHECK_BAD_INPUT = 64, /* as sysexits.h's EX_USAGE */
};

/* cli_check_main runs `spectra check ...` (argv after "check") and returns
 * one of enum cli_check_exit. */
int cli_check_main(const char *path, int argc, char **argv);

#endif
