/* ignore: .gitignore / .hermesignore rules, with git's semantics.
 *
 * A rule set is a stack of per-directory pattern lists. The tree walker pushes
 * a directory when it enters it (reading that directory's .gitignore, then its
 * .hermesignore, so the latter wins on conflict) and pops it when it leaves.
 * Matching follows gitignore(5): blank lines and '#' comments skipped, trailing
 * unescaped spaces trimmed, '\' escapes, '!' negates, a trailing '/' matches
 * directories only, a pattern with a '/' at the start or in the middle is
 * anchored to the directory of its file, otherwise it matches the basename at
 * any depth below; '*', '?', '[...]' (with '!'/'^' negation and ranges) never
 * match '/', and '**' matches across directories ("**\/x", "x/\**", "a/\**\/b").
 * The last matching rule decides; deeper files override shallower ones; a
 * directory that is ignored is never entered, so nothing beneath it can be
 * re-included (the walker simply does not descend).
 * The root level also takes the `ignore = PATTERN` lines of the root's
 * hermes.conf (after its .hermesignore), as hermes.conf(5) documents.
 * Besides the files, the VCS directory ".git" is always ignored unless
 * include_vcs is set. Paths are relative to the root, '/'-separated, with no
 * leading or trailing slash.
 */
#ifndef HERMES_IGNORE_H
#define HERMES_IGNORE_H

#include <stdbool.h>

struct ignore;

struct ignore *ignore_new(bool include_vcs);
void ignore_free(struct ignore *ig);

/* Enter directory `dir_rel` ("" for the root), opened as dirfd: reads its
 * .gitignore and .hermesignore if present. Returns 0 or -errno (a missing file
 * is not an error; an unreadable one is). Must be balanced by ignore_pop_dir. */
int ignore_push_dir(struct ignore *ig, int dirfd, const char *dir_rel);
void ignore_pop_dir(struct ignore *ig);

/* Add rules from text as if they were a file in directory `dir_rel`, at the
 * current top of the stack (used for tests and command-line --exclude). */
int ignore_add_text(struct ignore *ig, const char *dir_rel, const char *text);

/* True if `path` (relative to the root) is ignored by the rules currently on
 * the stack. is_dir tells whether it names a directory. */
bool ignore_match(const struct ignore *ig, const char *path, bool is_dir);

/* git's wildmatch with WM_PATHNAME: '*' and '?' do not match '/', '**' does.
 * Exposed for tests. */
bool ignore_wildmatch(const char *pattern, const char *text);

#endif
