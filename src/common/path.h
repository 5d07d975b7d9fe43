/* path: checks for the relative paths that travel between client and agent.
 *
 * A valid path is non-empty, shorter than PATH_MAX, relative ('/' never
 * first or last), without empty, "." or ".." components, without NUL bytes,
 * with every component shorter than NAME_MAX + 1. Such a path can be
 * resolved beneath a root without ever leaving it lexically; symlinks are
 * the agent's concern (openat2 RESOLVE_BENEATH).
 */
#ifndef HERMES_PATH_H
#define HERMES_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* 0 if p[0..len) is a valid relative path, else -EINVAL. */
int path_check(const char *p, size_t len);

/* Length of the directory part of a valid path ("a/b/c" -> 3, "c" -> 0). */
size_t path_dir_len(const char *p);
/* The last component of a valid path. */
const char *path_base(const char *p);
/* True if `p` lies strictly beneath directory `dir` ("" is the root). */
bool path_is_under(const char *p, const char *dir);

#endif
