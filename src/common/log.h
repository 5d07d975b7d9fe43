/* log: user-facing messages on stderr, prefixed with the program name.
 *
 * Every message a user can see should name the file, host or command
 * involved; callers build that text, this module only prints it.
 */
#ifndef HERMES_LOG_H
#define HERMES_LOG_H

void log_init(const char *prog);
void log_set_verbose(int level);
int log_verbose(void);
/* "PROG: message\n" */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed only at verbosity >= 1. */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
