/* hermesd: the job API daemon. See man/hermesd.8.
 *
 * hermesd [-c CONFIG] [--port-file FILE] [-v]
 * Runs until SIGTERM or SIGINT; then stops taking requests, cancels the
 * running jobs (recorded as failed: "hermesd stopped while the job ran")
 * and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "queue.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hermesd [-c CONFIG] [--port-file FILE] [-v]\n"
		   "  -c, --config FILE   configuration (default /etc/hermes/hermesd.conf)\n"
		   "  --port-file FILE    write the bound port there once listening\n"
		   "  -v, --verbose       more messages\n");
}

static int write_port(const char *path, unsigned port)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		return -errno;
	return 0;
}

static int wait_for_signal(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	int sig;
	sigwait(&set, &sig);
	return sig;
}

int main(int argc, char **argv)
{
	log_init("hermesd");
	const char *cfg_path = "/etc/hermes/hermesd.conf", *port_file = NULL;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	for (int o; (o = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1;) {
		switch (o) {
		case 'c': cfg_path = optarg; break;
		case 'p': port_file = optarg; break;
		case 'v': log_set_verbose(log_verbose() + 1); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	/* Signals are taken by sigwait in the main thread only; every thread
	 * started below inherits the mask. A dead client must not kill us. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct config cfg;
	struct buf err = BUF_INIT;
	struct queue *q = NULL;
	struct http *h = NULL;
	unsigned port = 0;
	int r = config_load(&cfg, cfg_path, &err);
	struct stat st;
	if (r == 0 && stat(cfg_path, &st) == 0 && (st.st_mode & 007))
		log_warn("%s can be read by every user, and it holds the tokens: chmod o-rwx %s",
			 cfg_path, cfg_path);
	if (r == 0)
		r = queue_open(&q, &cfg, &err);
	if (r == 0)
		r = http_start(&h, &cfg, q, &port, &err);
	if (r == 0 && port_file && (r = write_port(port_file, port)) < 0)
		buf_printf(&err, "%s: %s", port_file, strerror(-r));
	if (r < 0) {
		log_error("%.*s", (int)err.len, (char *)err.data);
		http_stop(h);
		if (q)
			queue_close(q);
		config_free(&cfg);
		buf_free(&err);
		return 1;
	}
	log_warn("listening on http://%s:%u (%s backend, state in %s)", cfg.listen_host, port,
		 cfg.backend == BACKEND_SLURM ? "slurm" : "podman", cfg.state_dir);
	int sig = wait_for_signal();
	log_debug("signal %d: stopping", sig);
	http_stop(h);
	queue_close(q);
	config_free(&cfg);
	buf_free(&err);
	return 0;
}
