#include "slurm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "store.h"

void slurm_run_init(struct slurm_run *sr)
{
	memset(sr, 0, sizeof(*sr));
	pthread_mutex_init(&sr->lock, NULL);
}

/* The podman run line of the batch script; every job value is quoted. */
static int container_line(struct buf *b, const struct config *cfg, const struct run_req *req)
{
	const struct jobspec *js = req->spec;
	int r = buf_printf(b, "%s run --rm --name hermesd-slurm-%lld --label hermes.owner=%s"
			   " --network=none -w /workspace -v ", cfg->podman_command,
			   (long long)req->id, BACKEND_OWNER);
	struct buf vol = BUF_INIT;
	r = r ? r : buf_printf(&vol, "%s:/workspace", req->workspace);
	r = r ? r : buf_append(&vol, "", 1);
	r = r ? r : sh_quote(b, (char *)vol.data);
	buf_free(&vol);
	for (size_t i = 0; r == 0 && i < js->nenv; i++) {
		r = buf_append_str(b, " -e ");
		r = r ? r : sh_quote(b, js->env[i]);
	}
	if (r == 0 && js->gpus > 0) {
		r = buf_append_str(b, " --device ");
		r = r ? r : sh_quote(b, cfg->slurm_gpu_device);
		r = r ? r : buf_append_str(b, " -e CUDA_VISIBLE_DEVICES=\"$CUDA_VISIBLE_DEVICES\"");
	}
	if (r == 0 && js->memory_bytes)
		r = buf_printf(b, " --memory %llu", (unsigned long long)js->memory_bytes);
	if (r == 0 && js->pids)
		r = buf_printf(b, " --pids-limit %u", js->pids);
	r = r ? r : buf_append_str(b, " ");
	r = r ? r : sh_quote(b, js->image);
	r = r ? r : buf_append_str(b, " /bin/sh -c ");
	r = r ? r : sh_quote(b, js->command);
	return r;
}

static int write_script(const char *path, const struct config *cfg, const struct run_req *req,
			struct buf *err)
{
	const struct jobspec *js = req->spec;
	struct buf s = BUF_INIT;
	int r = buf_printf(&s, "#!/bin/sh\n# hermesd job %lld\n#SBATCH --job-name=hermes-%lld\n"
			   "#SBATCH --time=%u\n", (long long)req->id, (long long)req->id,
			   (js->wall_time_s + 59) / 60);
	if (r == 0 && js->gpus > 0)
		r = buf_printf(&s, "#SBATCH --gres=gpu:%u\n", js->gpus);
	if (r == 0 && cfg->slurm_partition)
		r = buf_printf(&s, "#SBATCH --partition=%s\n", cfg->slurm_partition);
	/* scancel sends SIGTERM to the script and podman, but the container's
	 * PID 1 may ignore it: the trap removes the container. podman runs in
	 * the background so that `wait` returns to the trap at once. */
	r = r ? r : buf_printf(&s, "rm -f exit_code\ntrap '%s rm -f -t 0 hermesd-slurm-%lld >/dev/null 2>&1;"
			       " exit 143' TERM INT\n", cfg->podman_command, (long long)req->id);
	r = r ? r : container_line(&s, cfg, req);
	/* The exit code reaches hermesd through a file: sacct needs an
	 * accounting database a cluster may not have. */
	r = r ? r : buf_append_str(&s, " &\nwait $!\ncode=$?\n"
				   "echo $code >exit_code.tmp && mv exit_code.tmp exit_code\nexit $code\n");
	if (r < 0) {
		buf_free(&s);
		return r;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (fd < 0 || write(fd, s.data, s.len) != (ssize_t)s.len) {
		r = -errno;
		buf_printf(err, "%s: cannot write the batch script: %s", path, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	buf_free(&s);
	return r;
}

static int submit(struct slurm_run *sr, const char *script, const struct run_req *req,
		  struct buf *err)
{
	char chdir_opt[4200], out_opt[4200];
	snprintf(chdir_opt, sizeof(chdir_opt), "--chdir=%s", req->job_dir);
	snprintf(out_opt, sizeof(out_opt), "--output=%s", req->log_path);
	char *argv[] = { "sbatch", "--parsable", "--open-mode=append", chdir_opt, out_opt,
			 (char *)script, NULL };
	struct buf o = BUF_INIT, e = BUF_INIT;
	int rc = proc_run(argv, &o, &e);
	int r = 0;
	/* --parsable prints "ID" or "ID;CLUSTER" */
	size_t idlen = o.len ? strspn((char *)o.data, "0123456789") : 0;
	if (rc != 0 || idlen == 0 || idlen >= sizeof(sr->slurm_id)) {
		buf_printf(err, "sbatch %s failed (status %d): %.*s", script, rc, (int)e.len,
			   (char *)e.data);
		r = rc < 0 ? rc : -EIO;
	} else {
		pthread_mutex_lock(&sr->lock);
		memcpy(sr->slurm_id, o.data, idlen);
		sr->slurm_id[idlen] = '\0';
		pthread_mutex_unlock(&sr->lock);
	}
	buf_free(&o);
	buf_free(&e);
	return r;
}

/* squeue's state and node of the job into state[32], node[256]; state ""
 * once it left the queue. -EAGAIN when squeue could not answer (the
 * controller is busy or restarting), -ENOENT without squeue. */
static int poll_queue(const char *id, char *state, char *node)
{
	char *argv[] = { "squeue", "-h", "-j", (char *)id, "-o", "%T %N", NULL };
	struct buf o = BUF_INIT, e = BUF_INIT;
	int rc = proc_run(argv, &o, &e);
	state[0] = node[0] = '\0';
	int r = 0;
	if (rc < 0)
		r = rc;
	else if (buf_append(&o, "", 1) < 0 || buf_append(&e, "", 1) < 0)
		r = -ENOMEM;
	else if (rc == 0)
		sscanf((char *)o.data, "%31s %255s", state, node);
	else if (!strstr((char *)e.data, "Invalid job id")) /* a purged job is "invalid" */
		r = -EAGAIN;
	buf_free(&o);
	buf_free(&e);
	return r;
}

static bool read_exit_code(const char *job_dir, int *code)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/exit_code", job_dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool ok = fscanf(f, "%d", code) == 1;
	fclose(f);
	return ok;
}

static bool is_cancelled(struct slurm_run *sr)
{
	pthread_mutex_lock(&sr->lock);
	bool c = sr->cancelled;
	pthread_mutex_unlock(&sr->lock);
	return c;
}

/* What Slurm still remembers of a finished job (scontrol keeps it for
 * MinJobAge; no accounting database needed): "STATE EXIT:SIGNAL" in out. */
static void slurm_outcome(const char *id, char *state, size_t ssz, char *code, size_t csz)
{
	char *argv[] = { "scontrol", "-o", "show", "job", (char *)id, NULL };
	struct buf o = BUF_INIT;
	state[0] = code[0] = '\0';
	if (proc_run(argv, &o, NULL) == 0 && buf_append(&o, "", 1) == 0) {
		const char *js = strstr((char *)o.data, "JobState="), *ec = strstr((char *)o.data, " ExitCode=");
		if (js)
			snprintf(state, ssz, "%.*s", (int)strcspn(js + 9, " \n"), js + 9);
		if (ec)
			snprintf(code, csz, "%.*s", (int)strcspn(ec + 10, " \n"), ec + 10);
	}
	buf_free(&o);
}

static void finish(struct slurm_run *sr, const struct run_req *req, double t0,
		   struct job_result *res)
{
	int code;
	res->duration_s = store_now() - t0;
	if (is_cancelled(sr)) {
		res->state = JOB_CANCELLED;
		snprintf(res->message, sizeof(res->message), "cancelled (scancel %s)", sr->slurm_id);
		return;
	}
	if (read_exit_code(req->job_dir, &code)) {
		res->state = JOB_EXITED;
		res->exit_code = code;
		return;
	}
	char state[32], ec[32];
	slurm_outcome(sr->slurm_id, state, sizeof(state), ec, sizeof(ec));
	if (!strcmp(state, "TIMEOUT") || (!state[0] && res->duration_s >= req->spec->wall_time_s)) {
		res->state = JOB_TIMED_OUT;
		snprintf(res->message, sizeof(res->message), "Slurm job %s passed its wall time of %u s",
			 sr->slurm_id, req->spec->wall_time_s);
	} else if (!strcmp(state, "CANCELLED")) {
		res->state = JOB_CANCELLED;
		snprintf(res->message, sizeof(res->message),
			 "Slurm job %s was cancelled outside hermesd (scancel)", sr->slurm_id);
	} else {
		res->state = JOB_FAILED;
		snprintf(res->message, sizeof(res->message),
			 "Slurm job %s ended without an exit code (JobState=%s ExitCode=%s); see %s",
			 sr->slurm_id, state[0] ? state : "unknown", ec[0] ? ec : "unknown", req->log_path);
	}
}

int slurm_run(struct slurm_run *sr, const struct config *cfg, const struct run_req *req,
	      backend_placed_fn placed, void *ctx, struct job_result *res)
{
	memset(res, 0, sizeof(*res));
	char script[4200];
	snprintf(script, sizeof(script), "%s/slurm.sh", req->job_dir);
	struct buf err = BUF_INIT;
	double t0 = store_now();
	int r = write_script(script, cfg, req, &err);
	if (r == 0 && !is_cancelled(sr))
		r = submit(sr, script, req, &err);
	if (r < 0) {
		res->state = JOB_FAILED;
		snprintf(res->message, sizeof(res->message), "%.*s", (int)err.len, (char *)err.data);
		buf_free(&err);
		return r;
	}
	buf_free(&err);
	/* A cancel that came before sbatch answered found no id to scancel. */
	if (is_cancelled(sr))
		slurm_cancel(sr);
	bool placed_done = false;
	for (;;) {
		char state[32], node[256];
		int pr = poll_queue(sr->slurm_id, state, node);
		if (pr == -EAGAIN) {
			nanosleep(&(struct timespec){ 1, 0 }, NULL);
			continue;
		}
		if (pr < 0)
			break; /* no squeue: judge by the exit code file */
		if (!placed_done && (!strcmp(state, "RUNNING") || !state[0])) {
			placed(ctx, sr->slurm_id, node[0] && strcmp(node, "(null)") ? node : NULL);
			placed_done = true;
		}
		if (!state[0])
			break;
		nanosleep(&(struct timespec){ 0, 500 * 1000 * 1000 }, NULL);
	}
	finish(sr, req, t0, res);
	return 0;
}

void slurm_cancel(struct slurm_run *sr)
{
	pthread_mutex_lock(&sr->lock);
	sr->cancelled = true;
	char id[sizeof(sr->slurm_id)];
	memcpy(id, sr->slurm_id, sizeof(id));
	pthread_mutex_unlock(&sr->lock);
	if (!id[0])
		return;
	struct buf err = BUF_INIT;
	/* The poll loop sees the job leave the queue either way; a failed
	 * scancel only delays that until the wall time. */
	slurm_scancel(id, &err);
	buf_free(&err);
}

int slurm_scancel(const char *id, struct buf *err)
{
	char *argv[] = { "scancel", (char *)id, NULL };
	struct buf e = BUF_INIT;
	int rc = proc_run(argv, NULL, &e);
	if (rc != 0)
		buf_printf(err, "scancel %s failed (status %d): %.*s", id, rc, (int)e.len, (char *)e.data);
	buf_free(&e);
	return rc == 0 ? 0 : rc < 0 ? rc : -EIO;
}
