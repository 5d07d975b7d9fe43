/* hermes: the command-line client. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "log.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: hermes COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  sync [OPTIONS] LOCALDIR DEST   mirror LOCALDIR to DEST ([user@]host:/path or a local path)\n"
		"  mount [OPTIONS] LOCALDIR MOUNTPOINT DEST\n"
		"                                 a FUSE mount of LOCALDIR, mirrored live to DEST\n"
		"  umount MOUNTPOINT              flush and unmount\n"
		"  version                        print the version\n"
		"\n"
		"See hermes(1), or `hermes COMMAND --help`.\n");
}

int main(int argc, char **argv)
{
	log_init("hermes");
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "sync"))
		return cmd_sync(argc - 1, argv + 1);
	if (!strcmp(cmd, "mount"))
		return cmd_mount(argc - 1, argv + 1);
	if (!strcmp(cmd, "umount"))
		return cmd_umount(argc - 1, argv + 1);
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("hermes %s\n", HERMES_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	log_error("unknown command '%s' (try 'hermes --help')", cmd);
	return 2;
}
