#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store {
	sqlite3 *db;
	char *path;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS jobs("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" token TEXT NOT NULL, state TEXT NOT NULL, spec TEXT NOT NULL,"
	" gpus INTEGER NOT NULL DEFAULT 0,"
	" created REAL NOT NULL, started REAL NOT NULL DEFAULT 0, ended REAL NOT NULL DEFAULT 0,"
	" exit_code INTEGER, message TEXT NOT NULL DEFAULT '', host TEXT NOT NULL DEFAULT '',"
	" gpu TEXT NOT NULL DEFAULT '', backend_id TEXT NOT NULL DEFAULT '',"
	" runs INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, token);";

#define COLS "id, token, state, spec, gpus, created, started, ended, exit_code, message, host, gpu, backend_id, runs"

double store_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int db_fail(struct store *s, struct buf *err, const char *what)
{
	buf_printf(err, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
	return -EIO;
}

int store_open(struct store **out, const char *path, struct buf *err)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return -ENOMEM;
	}
	int r = 0;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		r = db_fail(s, err, "cannot open the job database");
	} else {
		sqlite3_busy_timeout(s->db, 5000);
		if (sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK)
			r = db_fail(s, err, "cannot create the jobs table");
	}
	if (r < 0) {
		store_close(s);
		return r;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	sqlite3_close(s->db);
	free(s->path);
	free(s);
}

static int prep(struct store *s, sqlite3_stmt **st, const char *sql, struct buf *err)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare");
	return 0;
}

static int step_done(struct store *s, sqlite3_stmt *st, struct buf *err)
{
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_DONE ? 0 : db_fail(s, err, "update");
	sqlite3_finalize(st);
	return r;
}

int store_insert(struct store *s, const char *token, const char *spec, unsigned gpus,
		 int64_t *id, struct buf *err)
{
	sqlite3_stmt *st;
	int r = prep(s, &st, "INSERT INTO jobs(token, state, spec, gpus, created) "
			     "VALUES(?, 'staging', ?, ?, ?)", err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, token, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, spec, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 3, (int)gpus);
	sqlite3_bind_double(st, 4, store_now());
	r = step_done(s, st, err);
	if (r == 0)
		*id = sqlite3_last_insert_rowid(s->db);
	return r;
}

int store_delete(struct store *s, int64_t id, struct buf *err)
{
	sqlite3_stmt *st;
	int r = prep(s, &st, "DELETE FROM jobs WHERE id = ?", err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	return step_done(s, st, err);
}

int store_enqueue(struct store *s, int64_t id, struct buf *err)
{
	sqlite3_stmt *st;
	int r = prep(s, &st, "UPDATE jobs SET state = 'queued' WHERE id = ? AND state = 'staging'",
		     err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	r = step_done(s, st, err);
	if (r == 0 && sqlite3_changes(s->db) != 1) {
		buf_printf(err, "job %lld was cancelled before it was queued", (long long)id);
		return -ESTALE;
	}
	return r;
}

int store_start(struct store *s, int64_t id, const char *host, const char *gpu, struct buf *err)
{
	sqlite3_stmt *st;
	int r = prep(s, &st, "UPDATE jobs SET state = 'running', started = ?, host = ?, gpu = ?,"
			     " runs = runs + 1 WHERE id = ? AND state = 'queued'", err);
	if (r < 0)
		return r;
	sqlite3_bind_double(st, 1, store_now());
	sqlite3_bind_text(st, 2, host, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, gpu, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, id);
	r = step_done(s, st, err);
	if (r == 0 && sqlite3_changes(s->db) != 1) {
		buf_printf(err, "%s: job %lld is no longer queued", s->path, (long long)id);
		return -ESTALE;
	}
	return r;
}

int store_set_placement(struct store *s, int64_t id, const char *backend_id, const char *host,
			struct buf *err)
{
	sqlite3_stmt *st;
	int r = prep(s, &st, "UPDATE jobs SET backend_id = ?, host = coalesce(?, host) WHERE id = ?",
		     err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, backend_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, host, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, id);
	return step_done(s, st, err);
}

int store_finish(struct store *s, int64_t id, const char *state, bool has_exit, int exit_code,
		 const char *message, struct buf *err)
{
	sqlite3_stmt *st;
	/* Invariant 3: only a live job can end. */
	int r = prep(s, &st, "UPDATE jobs SET state = ?, ended = ?, exit_code = ?, message = ?"
			     " WHERE id = ? AND state IN ('staging', 'queued', 'running')", err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 2, store_now());
	if (has_exit)
		sqlite3_bind_int(st, 3, exit_code);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_text(st, 4, message ? message : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 5, id);
	return step_done(s, st, err);
}

static char *col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return strdup(t ? (const char *)t : "");
}

static int row_read(sqlite3_stmt *st, struct job_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	r->token = col_str(st, 1);
	r->state = col_str(st, 2);
	r->spec = col_str(st, 3);
	r->gpus = (unsigned)sqlite3_column_int(st, 4);
	r->created = sqlite3_column_double(st, 5);
	r->started = sqlite3_column_double(st, 6);
	r->ended = sqlite3_column_double(st, 7);
	r->has_exit = sqlite3_column_type(st, 8) != SQLITE_NULL;
	r->exit_code = sqlite3_column_int(st, 8);
	r->message = col_str(st, 9);
	r->host = col_str(st, 10);
	r->gpu = col_str(st, 11);
	r->backend_id = col_str(st, 12);
	r->runs = (unsigned)sqlite3_column_int(st, 13);
	if (!r->token || !r->state || !r->spec || !r->message || !r->host || !r->gpu ||
	    !r->backend_id) {
		store_row_free(r);
		return -ENOMEM;
	}
	return 0;
}

void store_row_free(struct job_row *r)
{
	free(r->token);
	free(r->state);
	free(r->spec);
	free(r->message);
	free(r->host);
	free(r->gpu);
	free(r->backend_id);
	memset(r, 0, sizeof(*r));
}

void store_rows_free(struct job_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_row_free(&rows[i]);
	free(rows);
}

int store_get(struct store *s, int64_t id, struct job_row *out, struct buf *err)
{
	sqlite3_stmt *st;
	int r = prep(s, &st, "SELECT " COLS " FROM jobs WHERE id = ?", err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = row_read(st, out);
	else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		r = db_fail(s, err, "read job");
	sqlite3_finalize(st);
	return r;
}

int store_list(struct store *s, const char *token, const char *state,
	       struct job_row **rows, size_t *n, struct buf *err)
{
	sqlite3_stmt *st;
	int r = prep(s, &st, "SELECT " COLS " FROM jobs WHERE (?1 IS NULL OR token = ?1)"
			     " AND (?2 IS NULL OR state = ?2) ORDER BY id", err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, token, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_TRANSIENT);
	struct job_row *v = NULL;
	size_t len = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct job_row *nv = realloc(v, ncap * sizeof(*nv));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		if ((r = row_read(st, &v[len])) < 0)
			break;
		len++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_fail(s, err, "list jobs");
	sqlite3_finalize(st);
	if (r < 0) {
		store_rows_free(v, len);
		return r;
	}
	*rows = v;
	*n = len;
	return 0;
}

int store_count(struct store *s, const char *token, const char *state, int64_t *n,
		struct buf *err)
{
	sqlite3_stmt *st;
	int r = prep(s, &st, "SELECT count(*) FROM jobs WHERE (?1 IS NULL OR token = ?1)"
			     " AND (?2 IS NULL OR state = ?2)", err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, token, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else
		r = db_fail(s, err, "count jobs");
	sqlite3_finalize(st);
	return r;
}

int store_recover(struct store *s, const char *message, struct buf *err)
{
	sqlite3_stmt *st;
	int r = prep(s, &st, "UPDATE jobs SET state = 'failed', ended = ?, message = ?"
			     " WHERE state IN ('staging', 'running')", err);
	if (r < 0)
		return r;
	sqlite3_bind_double(st, 1, store_now());
	sqlite3_bind_text(st, 2, message, -1, SQLITE_TRANSIENT);
	r = step_done(s, st, err);
	return r < 0 ? r : sqlite3_changes(s->db);
}
