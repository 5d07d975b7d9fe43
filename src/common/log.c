#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static const char *log_prog = "hermes";
static int log_level;

void log_init(const char *prog) { log_prog = prog; }
void log_set_verbose(int level) { log_level = level; }
int log_verbose(void) { return log_level; }

static void log_print(const char *kind, const char *fmt, va_list ap)
{
	char line[4096];
	vsnprintf(line, sizeof(line), fmt, ap);
	/* One write per message so lines from agent and client do not interleave. */
	fprintf(stderr, "%s: %s%s\n", log_prog, kind, line);
}

void log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_print("", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_print("warning: ", fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	if (log_level < 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_print("debug: ", fmt, ap);
	va_end(ap);
}
