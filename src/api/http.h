/* http: hermesd's REST API on libmicrohttpd, one thread per connection.
 *
 *   GET    /healthz                        no token
 *   GET    /metrics                        no token (Prometheus text)
 *   GET    /v1/gpus
 *   POST   /v1/jobs                        body: tar / tar.gz / tar.zst of the
 *                                          code; header X-Hermes-Job: job JSON
 *                                          (jobspec.h) -> 201 {"id": "N"}
 *   GET    /v1/jobs                        this token's jobs
 *   GET    /v1/jobs/ID                     state, exit code, times, host, GPUs
 *   DELETE /v1/jobs/ID                     cancel
 *   GET    /v1/jobs/ID/logs[?follow=1]     output; follow streams until the end
 *   GET    /v1/jobs/ID/files/PATH          a file of the workspace
 *
 * /v1 needs "Authorization: Bearer SECRET" (401 without a known one). Every
 * error is {"error": "..."} with a fitting status: 400 bad request or
 * archive, 403 over the token's GPU allowance, 404 unknown (or another
 * token's) job, 405, 413 body over max_upload, 429 over max_queued.
 */
#ifndef HERMES_API_HTTP_H
#define HERMES_API_HTTP_H

#include "buf.h"
#include "config.h"
#include "queue.h"

struct http;

/* Listen on cfg->listen_host:listen_port; *port gets the bound port. */
int http_start(struct http **out, const struct config *cfg, struct queue *q, unsigned *port,
	       struct buf *err);
void http_stop(struct http *h);

#endif
