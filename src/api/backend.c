#include "backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slurm.h"

struct backend_job {
	const struct config *cfg;
	struct job *podman;     /* backend podman */
	struct slurm_run slurm; /* backend slurm */
	char host[256];
	backend_placed_fn placed;
	void *ctx;
	int log_fd;
};

struct backend_job *backend_job_new(const struct config *cfg)
{
	struct backend_job *bj = calloc(1, sizeof(*bj));
	if (!bj)
		return NULL;
	bj->cfg = cfg;
	if (gethostname(bj->host, sizeof(bj->host) - 1) < 0)
		snprintf(bj->host, sizeof(bj->host), "localhost");
	if (cfg->backend == BACKEND_PODMAN) {
		if (!(bj->podman = job_new())) {
			free(bj);
			return NULL;
		}
	} else {
		slurm_run_init(&bj->slurm);
	}
	return bj;
}

void backend_job_free(struct backend_job *bj)
{
	if (!bj)
		return;
	if (bj->podman)
		job_free(bj->podman);
	else
		pthread_mutex_destroy(&bj->slurm.lock);
	free(bj);
}

void backend_job_cancel(struct backend_job *bj)
{
	if (bj->podman)
		job_cancel(bj->podman);
	else
		slurm_cancel(&bj->slurm);
}

static void podman_started(void *ctx, const char *container_id)
{
	struct backend_job *bj = ctx;
	if (bj->placed)
		bj->placed(bj->ctx, container_id, bj->host);
}

/* Output goes to the log file as it comes; a short write (disk full) loses
 * log bytes but must not stop the job. */
static void podman_output(void *ctx, int stream, const void *data, size_t len)
{
	struct backend_job *bj = ctx;
	(void)stream;
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(bj->log_fd, p, len);
		if (n <= 0 && errno != EINTR)
			return;
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
	}
}

static int podman_run(struct backend_job *bj, const struct run_req *req, struct job_result *res)
{
	const struct jobspec *js = req->spec;
	char name[64];
	snprintf(name, sizeof(name), "hermesd-job-%lld", (long long)req->id);
	char cdi[CONFIG_MAX_GPUS][40];
	const char *gpus[CONFIG_MAX_GPUS];
	size_t ng = req->ngpus < CONFIG_MAX_GPUS ? req->ngpus : CONFIG_MAX_GPUS;
	for (size_t i = 0; i < ng; i++) {
		snprintf(cdi[i], sizeof(cdi[i]), "nvidia.com/gpu=%s", req->gpus[i]);
		gpus[i] = cdi[i];
	}
	struct job_spec spec = {
		.podman_socket = bj->cfg->podman_socket,
		.name = name,
		.owner = BACKEND_OWNER,
		.image = js->image,
		.workspace = req->workspace,
		.command = js->command,
		.gpus = gpus,
		.ngpus = ng,
		.env = (const char *const *)js->env,
		.nenv = js->nenv,
		.network = false,
		.wall_time_s = js->wall_time_s,
		.memory_bytes = js->memory_bytes,
		.pids = js->pids,
		.output_bytes = js->output_bytes,
	};
	struct buf err = BUF_INIT;
	int r = 0;
	if (ng > 0)
		r = job_check_gpus(gpus, ng, &err);
	if (r == 0) {
		struct job_callbacks cb = { podman_started, podman_output, bj };
		r = job_run(bj->podman, &spec, &cb, res, &err);
	} else {
		memset(res, 0, sizeof(*res));
		res->state = JOB_FAILED;
	}
	if (r < 0 && !res->message[0])
		snprintf(res->message, sizeof(res->message), "%.*s", (int)err.len, (char *)err.data);
	buf_free(&err);
	return r;
}

int backend_job_run(struct backend_job *bj, const struct run_req *req, backend_placed_fn placed,
		    void *ctx, struct job_result *res)
{
	bj->placed = placed;
	bj->ctx = ctx;
	bj->log_fd = req->log_fd;
	if (bj->podman)
		return podman_run(bj, req, res);
	return slurm_run(&bj->slurm, bj->cfg, req, placed, ctx, res);
}

int backend_sweep(const struct config *cfg, struct buf *err)
{
	if (cfg->backend != BACKEND_PODMAN)
		return 0;
	return job_sweep(cfg->podman_socket, BACKEND_OWNER, err);
}

int backend_abandon(const struct config *cfg, const char *backend_id, struct buf *err)
{
	if (cfg->backend != BACKEND_SLURM || !*backend_id)
		return 0;
	return slurm_scancel(backend_id, err);
}
