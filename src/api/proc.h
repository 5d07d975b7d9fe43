/* proc: run a program (no shell) and collect what it prints.
 *
 * proc_run spawns argv[0] (searched in PATH) with stdin from /dev/null,
 * reads its stdout into out (when not NULL) and its stderr into err_out
 * (when not NULL; else discarded), and waits for it. Returns the exit
 * status (0..255), 128+signal when killed, or -errno when it could not be
 * started (-ENOENT: not installed).
 */
#ifndef HERMES_API_PROC_H
#define HERMES_API_PROC_H

#include "buf.h"

int proc_run(char *const argv[], struct buf *out, struct buf *err_out);

/* Append s to b quoted for /bin/sh ('...' with embedded quotes escaped). */
int sh_quote(struct buf *b, const char *s);

#endif
