/* Without libFuzzer (gcc builds): run the fuzz target once over each file
 * named on the command line, so the seed corpus is a regression test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	uint8_t *buf = malloc(1 << 20);
	size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
	fclose(f);
	if (!buf)
		return -1;
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 1;
}

/* Arguments are files, or directories whose files are all run. */
int main(int argc, char **argv)
{
	int ran = 0;
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		if (!d) {
			int r = run_file(argv[i]);
			if (r < 0)
				return 1;
			ran += r;
			continue;
		}
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			int r = run_file(path);
			if (r < 0) {
				closedir(d);
				return 1;
			}
			ran += r;
		}
		closedir(d);
	}
	printf("ran %d inputs\n", ran);
	return ran > 0 ? 0 : 1;
}
