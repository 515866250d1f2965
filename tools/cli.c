/*
 * cli: subcommand dispatch, flag parsing and usage text. See cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static bool is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int cli_usage_error(const char *path, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nRun '%s --help' for usage.\n", path);
	return CLI_EXIT_USAGE;
}

void cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("spectra: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void group_usage(FILE *out, const char *path, const char *about,
			const struct cli_command *cmds, size_t n)
{
	fprintf(out, "usage: %s <command> [flags]\n\n%s\n\ncommands:\n", path, about);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(out, "\nRun '%s <command> --help' for a command's flags.\n", path);
}

int cli_dispatch(const char *path, const char *about, const struct cli_command *cmds, size_t n,
		 int argc, char **argv)
{
	if (argc == 0) {
		group_usage(stderr, path, about, cmds, n);
		return CLI_EXIT_USAGE;
	}
	if (is_help(argv[0])) {
		group_usage(stdout, path, about, cmds, n);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(argv[0], cmds[i].name) != 0)
			continue;
		char sub[256];
		snprintf(sub, sizeof(sub), "%s %s", path, cmds[i].name);
		return cmds[i].run(sub, argc - 1, argv + 1);
	}
	if (argv[0][0] == '-')
		return cli_usage_error(path, "unknown flag '%s'", argv[0]);
	return cli_usage_error(path, "unknown command '%s'", argv[0]);
}

void cli_usage(const struct cli_spec *spec)
{
	printf("usage: %s %s\n\n%s\n", spec->path, spec->synopsis, spec->description);
	if (spec->nflags == 0)
		return;
	printf("\nflags:\n");
	for (size_t i = 0; i < spec->nflags; i++) {
		const struct cli_flag *f = &spec->flags[i];
		char left[64];
		if (f->metavar)
			snprintf(left, sizeof(left), "--%s %s", f->name, f->metavar);
		else
			snprintf(left, sizeof(left), "--%s", f->name);
		printf("  %-20s %s\n", left, f->help);
	}
	printf("  %-20s %s\n", "-h, --help", "show this help");
	if (spec->rest)
		printf("  %-20s %s\n", "-- ...", spec->rest);
}

static const struct cli_flag *find_flag(const struct cli_spec *spec, const char *name, size_t len)
{
	for (size_t i = 0; i < spec->nflags; i++)
		if (strlen(spec->flags[i].name) == len &&
		    strncmp(spec->flags[i].name, name, len) == 0)
			return &spec->flags[i];
	return NULL;
}

bool cli_parse(const struct cli_spec *spec, int argc, char **argv, int *rest, int *exit_code)
{
	*rest = argc;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (is_help(arg)) {
			cli_usage(spec);
			*exit_code = CLI_EXIT_OK;
			return false;
		}
		if (strcmp(arg, "--") == 0) {
			if (!spec->rest && i + 1 < argc) {
				*exit_code = cli_usage_error(spec->path, "unexpected argument '%s'",
							     argv[i + 1]);
				return false;
			}
			*rest = i + 1;
			return true;
		}
		if (strncmp(arg, "--", 2) != 0) {
			*exit_code = cli_usage_error(spec->path, "unexpected argument '%s'", arg);
			return false;
		}
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct cli_flag *f = find_flag(spec, name, len);
		if (!f) {
			*exit_code =
			    cli_usage_error(spec->path, "unknown flag '--%.*s'", (int)len, name);
			return false;
		}
		if (!f->metavar) {
			if (eq) {
				*exit_code =
				    cli_usage_error(spec->path, "--%s takes no value", f->name);
				return false;
			}
			*f->on = true;
			continue;
		}
		if (eq) {
			*f->value = eq + 1;
			continue;
		}
		/* "--dir --json" is a forgotten value, not a directory named
		 * "--json"; "--dir=--json" says otherwise. */
		if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
			*exit_code = cli_usage_error(spec->path, "--%s needs a value (%s)", f->name,
						     f->metavar);
			return false;
		}
		*f->value = argv[++i];
	}
	return true;
}

bool cli_parse_seconds(const char *text, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || end == text || *end || !(v > 0) || v > 86400)
		return false;
	*out = v;
	return true;
}

bool cli_is_flag(const char *arg, const char *name)
{
	if (strncmp(arg, "--", 2) != 0)
		return false;
	for (arg += 2; *name; arg++, name++) {
		char a = *arg == '_' ? '-' : (char)(*arg >= 'A' && *arg <= 'Z' ? *arg + 32 : *arg);
		if (a != *name)
			return false;
	}
	return *arg == '\0' || *arg == '=';
}

void cli_json_string(const char *s)
{
	if (!s || !*s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

void cli_json_number(long long v)
{
	if (v < 0)
		fputs("null", stdout);
	else
		printf("%lld", v);
}
