#include "path.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

int path_check(const char *p, size_t len)
{
	if (len == 0 || len >= PATH_MAX || p[0] == '/' || p[len - 1] == '/')
		return -EINVAL;
	if (memchr(p, '\0', len))
		return -EINVAL;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && p[i] != '/')
			continue;
		size_t n = i - start;
		if (n == 0 || n > NAME_MAX)
			return -EINVAL;
		if (p[start] == '.' && (n == 1 || (n == 2 && p[start + 1] == '.')))
			return -EINVAL;
		start = i + 1;
	}
	return 0;
}

size_t path_dir_len(const char *p)
{
	const char *slash = strrchr(p, '/');
	return slash ? (size_t)(slash - p) : 0;
}

const char *path_base(const char *p)
{
	const char *slash = strrchr(p, '/');
	return slash ? slash + 1 : p;
}

bool path_is_under(const char *p, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 0)
		return p[0] != '\0';
	return strncmp(p, dir, n) == 0 && p[n] == '/' && p[n + 1] != '\0';
}
