/* hermes: the command-line client. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "remote.h"

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
		"  run [-C DIR] -- CMD...         run CMD on the mount's host, output streamed here\n"
		"  status [--json] [ID]           state of the current (or given) job\n"
		"  logs [-f] [ID]                 output of the current (or given) job\n"
		"  cancel                         cancel the running job\n"
		"\n"
		"with a hermesd server (--url URL or HERMES_URL; --token or HERMES_TOKEN):\n"
		"  submit [OPTIONS] -- CMD...      send the current directory as a job\n"
		"  jobs                           list your jobs\n"
		"  logs [-f] ID, cancel ID        a job's output; cancel it\n"
		"  version                        print the version\n"
		"\n"
		"See hermes(1), or `hermes COMMAND --help`.\n");
}

/* logs and cancel talk to a hermesd when given a URL (option or
 * HERMES_URL), else to the mount holding the current directory. */
static bool wants_server(int argc, char **argv)
{
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--url") || !strncmp(argv[i], "--url=", 6))
			return true;
	const char *env = getenv("HERMES_URL");
	return env && *env;
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
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "submit"))
		return cmd_submit(argc - 1, argv + 1);
	if (!strcmp(cmd, "jobs"))
		return cmd_jobs(argc - 1, argv + 1);
	if (!strcmp(cmd, "logs"))
		return wants_server(argc, argv) ? cmd_remote_logs(argc - 1, argv + 1)
						: cmd_logs(argc - 1, argv + 1);
	if (!strcmp(cmd, "cancel"))
		return wants_server(argc, argv) ? cmd_remote_cancel(argc - 1, argv + 1)
						: cmd_cancel(argc - 1, argv + 1);
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
