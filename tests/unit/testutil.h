/* Helpers shared by the cmocka tests that drive real programs. Include
 * after <cmocka.h>. */
#ifndef HERMES_TESTUTIL_H
#define HERMES_TESTUTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Run a shell command built like printf; the test fails unless it exits 0. */
static inline void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

#endif
