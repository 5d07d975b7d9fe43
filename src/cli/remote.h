/* remote: the `hermes` commands that talk to a hermesd over HTTP
 * (cmd_remote.c). Each takes argc/argv after the command name (argv[0] is
 * the command) and returns the exit code. The server is --url URL or
 * $HERMES_URL, the token --token T or $HERMES_TOKEN.
 *
 *   hermes submit [--url U] [--token T] [--image I] [--gpus N] [-C DIR]
 *                 [-e NAME=VALUE]... [--wall-time S] [--wait|-f] -- CMD...
 *       packs DIR (default .) as tar.zst, leaving out what .gitignore and
 *       .hermesignore exclude (as hermes sync does) and .git and .hermes,
 *       submits it, prints the job id;
 *       with --wait/-f follows the output and exits with the job's code
 *   hermes jobs [--url U] [--token T]
 *   hermes logs [-f] [--url U] [--token T] ID      (cmd_remote_logs)
 *   hermes cancel [--url U] [--token T] ID         (cmd_remote_cancel)
 *
 * Exit codes of a followed job: its own, or 124 timed out, 125 failed to
 * run, 130 cancelled (as `hermes run`).
 */
#ifndef HERMES_CLI_REMOTE_H
#define HERMES_CLI_REMOTE_H

int cmd_submit(int argc, char **argv);
int cmd_jobs(int argc, char **argv);
int cmd_remote_logs(int argc, char **argv);
int cmd_remote_cancel(int argc, char **argv);

#endif
