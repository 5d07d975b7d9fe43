/* cli: the `hermes` command's subcommands. Each takes argc/argv after the
 * subcommand name (argv[0] is the subcommand) and returns the exit code. */
#ifndef HERMES_CLI_H
#define HERMES_CLI_H

int cmd_sync(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
/* Jobs of a mount, through its .hermes files (cmd_run.c). */
int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_cancel(int argc, char **argv);

#endif
