/* cs.clickhouse: writes window rows — or, in a pipeline without a window,
 * trades — into a ClickHouse table over its HTTP interface, in batches.
 *
 * Start-up (asynchronous, on the loop): SELECT version(), create the
 * database, the table and an argMax view if missing (create = true), then
 * check the table: every column present with the right type, engine
 * ReplacingMergeTree(version), the right ORDER BY. A mismatch is a
 * permanent failure naming the column; an unreachable server is retried
 * with backoff while rows are buffered.
 *
 * The table may instead be a Distributed table (made by the user, never
 * created here) over such tables on a sharded cluster: its sharding key
 * must depend on product_id alone (every version of a window on one shard,
 * where FINAL replaces it), its cluster must be known to the server, and
 * the table it points to is checked like a plain one on this server when it
 * is there (it must be, when this server is a shard) and its engine on
 * every shard through the cluster() table function (best effort: a shard
 * that does not answer is logged, not fatal). One log line says what was
 * checked and what was not. Inserts then carry insert_distributed_sync=1
 * (option insert_sync): acknowledged once every shard stored its rows.
 *
 * Rows: each record taken gets a version (UInt64, the wall clock in µs when
 * the sink took it, strictly increasing), so a window emitted again — late
 * update, restart, replay — replaces the earlier row under FINAL. Records
 * are formatted at once (RowBinary, exact doubles; or JSONEachRow, which
 * window rows with user aggregates always use) into the batch being
 * filled; a batch is sent when it holds
 * batch_rows rows or batch_bytes bytes, or batch_delay after its first row,
 * one insert at a time, in order. write() answers OK (the sink is
 * asynchronous: records are acknowledged with cs_sink_ack, in order, once
 * ClickHouse has said the insert succeeded, or once a record was written to
 * the dead-letter file); it answers CS_SINK_BUSY while the records not yet
 * acknowledged hold buffer_bytes or more (the pipeline then pauses the
 * source: back-pressure, bounded memory) and calls cs_sink_ready once half
 * of that is acknowledged.
 *
 * Failures are classified (ch_wire): transient ones (network, timeouts,
 * 5xx, too many parts, unknown codes) retry the same insert with
 * exponential backoff and equal jitter, without limit; a batch the server
 * refuses for its data is split (at the row the server names, else in
 * halves) until the refused row is alone, which goes to the dead-letter
 * file with the server's message while the rest is inserted; records that
 * ClickHouse would store wrongly without complaint (NaN, infinities, times
 * outside DateTime) never leave the sink and are dead-lettered too;
 * authentication, schema and configuration errors are permanent and stop
 * the pipeline (sink->on_fail). Every retry, split and dead letter is
 * counted and logged (rate-limited); a summary line is logged at stop.
 *
 * flush() sends what is buffered and answers OK once everything taken has
 * been acknowledged (and the table has been checked), RETRY with an empty
 * message while acknowledgements are pending, RETRY with a message while
 * ClickHouse is unreachable. stop() cancels the request in flight and
 * counts what was never acknowledged as given up.
 *
 * The password comes only from password_env or password_file; it is never
 * logged (and is scrubbed from any server message that would echo it).
 *
 * Uses cs_http (libcurl on the loop), ch_schema, ch_wire, cs_json (to read
 * user aggregate names), cs_log, cs_time. Loop thread only. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ch_schema.h"
#include "ch_wire.h"
#include "cs_buf.h"
#include "cs_http.h"
#include "cs_json.h"
#include "cs_log.h"
#include "cs_metrics.h"
#include "cs_plugin.h"
#include "cs_time.h"

#define BACKOFF_BASE_MS 100
#define BACKOFF_MAX_MS 30000
#define MAX_BATCH_ROWS 1000000 /* below max_insert_block_size: one insert is one block */
#define INSERT_SETTINGS "&wait_end_of_query=1&input_format_allow_errors_num=0&input_format_allow_errors_ratio=0"

/* A batch of formatted rows, in order. Rows [0, cur) are done (inserted or
 * dead-lettered), [cur, end) are being sent. */
typedef struct batch {
  struct batch *next;
  cs_buf body;
  size_t *off; /* off[i]: where row i starts; off[nrows] == body.len */
  size_t nrows, cap;
  uint64_t nrecs; /* records acknowledged when it completes (rows + records rejected before sending) */
  size_t cur, end;
} batch;

typedef enum { ST_NEW, ST_SETUP, ST_READY, ST_FAILED, ST_STOPPED } state;
enum {
  STEP_VERSION,
  STEP_DATABASE,
  STEP_TABLE,
  STEP_COLUMNS,
  STEP_ENGINE,
  STEP_CLUSTER,        /* Distributed only, from here to STEP_SHARDS */
  STEP_TARGET_COLUMNS, /* the table it points to, on this server */
  STEP_TARGET_ENGINE,
  STEP_SHARDS, /* its engine on every shard */
  STEP_VIEW,
  STEP_DONE
};
static const char *const step_names[] = {"SELECT version()",
                                         "CREATE DATABASE",
                                         "CREATE TABLE",
                                         "reading the columns",
                                         "reading the engine",
                                         "reading the cluster",
                                         "reading the columns of the Distributed table's target",
                                         "reading the engine of the Distributed table's target",
                                         "reading the engine on every shard",
                                         "CREATE VIEW",
                                         "done"};

typedef struct ch {
  cs_sink *sink;
  /* options */
  char *url, *db, *table_opt, *view_opt, *user, *password, *ca_file, *dead_path;
  char **extra;
  size_t nextra;
  int create, rowbinary, dist_sync;
  uint64_t batch_rows, batch_bytes, buffer_bytes;
  int64_t batch_delay_us, timeout_us, connect_timeout_us;
  /* run time */
  ch_kind kind;
  ch_schema schema;
  /* A Distributed table (found by the engine check) and what was checked of
   * the table it points to. */
  int dist;
  ch_distributed dinfo;
  ch_schema target;
  long shards, local_replicas; /* from system.clusters; -1: not known */
  int target_here;             /* the target table is on this server (checked) */
  long shards_checked;         /* shards whose target engine was checked; -1: not done */
  char shards_note[600];       /* why not */
  uv_loop_t *loop;
  cs_http *http;
  uv_timer_t t_delay, t_retry, t_fail;
  int timers_open;
  state st;
  int step, setup_done_once;
  cs_http_req *req; /* the one request in flight */
  cs_buf sql;       /* body of a setup request */
  cs_buf insert_url, req_url;
  ch_version ver;
  ch_features feat;
  batch *head, *tail, *fill;
  uint64_t held_bytes, held_recs; /* taken and not yet acknowledged */
  uint64_t backoff_ms;
  int waiting; /* the retry timer runs */
  int busy;    /* write answered CS_SINK_BUSY: cs_sink_ready once half the buffer is free */
  int down;    /* the last attempt failed transiently */
  int64_t down_since_us;
  uint64_t down_attempts;
  char last_err[1200];
  uint64_t last_version;
  int ext_checked, aggs_checked;
  int dl_fd;
  cs_buf dl;
  char *fail_msg;
  cs_log_limiter lim_retry, lim_dead;
  struct {
    uint64_t inserted, dead_server, dead_local, requests, retries, splits, bytes, given_up, buffer_full;
  } n;
} ch;

static void kick(ch *c);
static void setup_send(ch *c);
static void log_distributed(ch *c);

/* --------------------------------------------------------------- batches */
static batch *batch_new(void) {
  batch *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  cs_buf_init(&b->body);
  if (!(b->off = malloc(64 * sizeof *b->off))) {
    free(b);
    return NULL;
  }
  b->cap = 64;
  b->off[0] = 0;
  return b;
}

static void batch_free(batch *b) {
  if (!b) return;
  cs_buf_free(&b->body);
  free(b->off);
  free(b);
}

/* Records the end of the row just formatted. */
static int batch_row_done(batch *b) {
  if (b->nrows + 2 > b->cap) {
    size_t nc = b->cap * 2;
    size_t *no = realloc(b->off, nc * sizeof *no);
    if (!no) return -1;
    b->off = no;
    b->cap = nc;
  }
  b->off[++b->nrows] = b->body.len;
  return 0;
}

/* ------------------------------------------------------------ utilities */
static uint64_t next_version(ch *c) {
  uint64_t v = (uint64_t)cs_time_wall_us();
  if (v <= c->last_version) v = c->last_version + 1;
  return c->last_version = v;
}

static uint64_t jitter(uint64_t ms) { return ms / 2 + (uint64_t)rand() % (ms / 2 + 1); }

static void timer_close(uv_timer_t *t) {
  uv_timer_stop(t);
  if (!uv_is_closing((uv_handle_t *)t)) uv_close((uv_handle_t *)t, NULL);
}

static const char *fail_text(ch *c) { return c->fail_msg ? c->fail_msg : "failed (out of memory)"; }

static void on_fail_timer(uv_timer_t *t) {
  ch *c = t->data;
  if (c->sink->on_fail) c->sink->on_fail(c->sink->ud, c->sink, fail_text(c));
}

/* A permanent failure. `notify`: report it to the pipeline (sink->on_fail),
 * from a timer — never from inside an HTTP callback; 0 when the caller
 * answers ERROR to a write() itself. */
static void set_failed(ch *c, int notify, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_failed(ch *c, int notify, const char *fmt, ...) {
  if (c->st == ST_FAILED || c->st == ST_STOPPED) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ch_scrub(msg, c->password);
  c->st = ST_FAILED;
  free(c->fail_msg);
  c->fail_msg = strdup(msg);
  if (notify && c->timers_open) uv_timer_start(&c->t_fail, on_fail_timer, 0, 0);
}
#define fail(c, ...) set_failed(c, 1, __VA_ARGS__)

/* ------------------------------------------------------------ dead letter */
/* Appends one JSON line: when, where, why, and the row as it would have
 * been inserted (JSONEachRow). Returns 0, or -1 with a message. */
static int dead_letter(ch *c, const char *row, size_t len, int code, const char *why, cs_err *err) {
  if (c->dl_fd < 0) {
    c->dl_fd = open(c->dead_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (c->dl_fd < 0)
      return cs_err_set(err, "cannot open the dead-letter file '%s': %s", c->dead_path, strerror(errno));
  }
  while (len && (row[len - 1] == '\n')) len--;
  char ts[CS_TIME_RFC3339_LEN + 1];
  int64_t now = cs_time_wall_us();
  cs_time_format_rfc3339(now, ts);
  cs_buf_reset(&c->dl);
  cs_buf_printf(&c->dl, "{\"time\":\"%.19s.%06lldZ\",\"sink\":", ts,
                (long long)(now - cs_time_floor_div(now, CS_US_PER_S) * CS_US_PER_S));
  const char *label = strncmp(c->sink->label, "sink ", 5) == 0 ? c->sink->label + 5 : c->sink->label;
  cs_buf_json_str(&c->dl, label, strlen(label));
  cs_buf_printf(&c->dl, ",\"table\":\"%s.%s\",\"code\":", c->schema.db, c->schema.table);
  if (code)
    cs_buf_printf(&c->dl, "%d", code);
  else
    cs_buf_puts(&c->dl, "null");
  cs_buf_puts(&c->dl, ",\"error\":");
  cs_buf_json_str(&c->dl, why, strlen(why));
  cs_buf_puts(&c->dl, ",\"row\":");
  cs_buf_append(&c->dl, row, len);
  cs_buf_puts(&c->dl, "}\n");
  if (c->dl.oom) {
    c->dl.oom = 0;
    return cs_err_set(err, "out of memory writing the dead-letter file");
  }
  size_t done = 0;
  while (done < c->dl.len) {
    ssize_t w = write(c->dl_fd, c->dl.data + done, c->dl.len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return cs_err_set(err, "cannot write the dead-letter file '%s': %s", c->dead_path, strerror(errno));
    done += (size_t)w;
  }
  cs_log_limited(&c->lim_dead, CS_LOG_WARN, c->sink->label, "record not stored (%s): written to %s", why, c->dead_path);
  return 0;
}

/* ------------------------------------------------------------ requests */
static int post(ch *c, const char *url, const void *body, size_t len, cs_http_done_fn done) {
  cs_http_request rq = {0};
  rq.url = url;
  rq.user = c->user;
  rq.password = c->password;
  rq.ca_file = c->ca_file;
  rq.body = body;
  rq.body_len = len;
  rq.timeout_ms = (long)(c->timeout_us / 1000);
  rq.connect_timeout_ms = (long)(c->connect_timeout_us / 1000);
  rq.max_response = 1u << 20;
  cs_err err = {{0}};
  c->req = cs_http_post(c->http, &rq, done, c, &err);
  if (!c->req) {
    fail(c, "cannot start a request to ClickHouse: %s", err.msg);
    return -1;
  }
  c->n.requests++;
  return 0;
}

/* The answer as an error (0: success). */
static int answer_error(ch *c, const cs_http_response *resp, ch_error *e) {
  if (resp->transport != CS_HTTP_OK) {
    ch_error_from_transport(resp->transport, resp->error, e);
  } else {
    char code[32];
    int has = cs_http_header(resp, "X-ClickHouse-Exception-Code", code, sizeof code);
    if (ch_error_from_answer(resp->status, resp->body, resp->body_len, has ? code : NULL, e) == 0) return 0;
  }
  ch_scrub(e->msg, c->password);
  return -1;
}

static void on_retry_timer(uv_timer_t *t) {
  ch *c = t->data;
  c->waiting = 0;
  if (c->st == ST_SETUP) {
    c->step = STEP_VERSION; /* the server may have been replaced meanwhile: from the start */
    setup_send(c);
  } else {
    kick(c);
  }
}

/* A transient failure: the same request again after a backoff. */
static void retry_later(ch *c, const ch_error *e, const char *what) {
  c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_BASE_MS;
  if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
  uint64_t delay = jitter(c->backoff_ms);
  if (!c->down) {
    c->down = 1;
    c->down_since_us = cs_time_mono_us();
    c->down_attempts = 0;
  }
  c->down_attempts++;
  c->n.retries++;
  snprintf(c->last_err, sizeof c->last_err, "%s", e->msg);
  cs_log_limited(&c->lim_retry, CS_LOG_WARN, c->sink->label,
                 "%s at %s failed (%s): %s; retrying in %llu ms (attempt %llu, %llu records waiting)", what, c->url,
                 e->code ? "ClickHouse error" : "no answer", e->msg, (unsigned long long)delay,
                 (unsigned long long)c->down_attempts, (unsigned long long)c->held_recs);
  c->waiting = 1;
  uv_timer_start(&c->t_retry, on_retry_timer, delay, 0);
}

/* The server answered: whatever was down is up again. */
static void answered(ch *c) {
  c->backoff_ms = 0;
  if (c->down) {
    cs_info(c->sink->label, "ClickHouse at %s answers again after %.1f s (%llu failed attempts)", c->url,
            (double)(cs_time_mono_us() - c->down_since_us) / 1e6, (unsigned long long)c->down_attempts);
    cs_log_limiter_flush(&c->lim_retry, CS_LOG_WARN, c->sink->label, "retry messages");
    c->down = 0;
  }
}

/* ---------------------------------------------------------------- setup */
static int build_insert_url(ch *c) {
  cs_buf q;
  cs_buf_init(&q);
  ch_sql_insert(&c->schema, c->rowbinary ? "RowBinary" : "JSONEachRow", &q);
  cs_buf_reset(&c->insert_url);
  cs_buf_puts(&c->insert_url, c->url);
  cs_buf_puts(&c->insert_url, strchr(c->url, '?') ? "&query=" : "?query=");
  ch_url_encode(&c->insert_url, q.data, q.len);
  cs_buf_puts(&c->insert_url, INSERT_SETTINGS);
  cs_buf_printf(&c->insert_url, "&max_insert_block_size=%llu",
                (unsigned long long)(c->batch_rows < 1048576 ? 1048576 : c->batch_rows + 1));
  /* Alias of distributed_foreground_insert on current servers. */
  if (c->dist && c->dist_sync) cs_buf_puts(&c->insert_url, "&insert_distributed_sync=1");
  int oom = q.oom || c->insert_url.oom;
  cs_buf_free(&q);
  return oom ? -1 : 0;
}

static void setup_finished(ch *c) {
  if (build_insert_url(c) != 0) {
    fail(c, "out of memory");
    return;
  }
  c->st = ST_READY;
  c->setup_done_once = 1;
  if (c->dist) log_distributed(c);
  cs_info(c->sink->label, "ClickHouse %d.%d.%d at %s: writing %s to %s.%s%s%s%s", c->ver.major, c->ver.minor,
          c->ver.patch, c->url, c->kind == CH_KIND_TRADES ? "trades" : "window rows", c->schema.db, c->schema.table,
          c->schema.view ? " (latest rows: view " : "", c->schema.view ? c->schema.view : "",
          c->schema.view ? ")" : "");
  kick(c);
}

static void on_setup_answer(void *ud, const cs_http_response *resp);

static void setup_send(ch *c) {
  for (;;) {
    if (!c->create && (c->step == STEP_DATABASE || c->step == STEP_TABLE || c->step == STEP_VIEW)) {
      c->step++;
      continue;
    }
    if (c->step == STEP_VIEW && !c->schema.view) {
      c->step++;
      continue;
    }
    if (c->step >= STEP_CLUSTER && c->step <= STEP_SHARDS && !c->dist) {
      c->step++;
      continue;
    }
    if ((c->step == STEP_CLUSTER || c->step == STEP_SHARDS) && strchr(c->dinfo.cluster, '{')) {
      /* A macro ({cluster}): its value is in the server's configuration. */
      snprintf(c->shards_note, sizeof c->shards_note, "the cluster name '%s' is a macro", c->dinfo.cluster);
      c->step++;
      continue;
    }
    if (c->step == STEP_TARGET_ENGINE && !c->target_here) {
      c->step++;
      continue;
    }
    break;
  }
  cs_buf_reset(&c->sql);
  switch (c->step) {
    case STEP_VERSION: cs_buf_puts(&c->sql, "SELECT version()"); break;
    case STEP_DATABASE: ch_sql_create_database(&c->schema, &c->sql); break;
    case STEP_TABLE: ch_sql_create_table(&c->schema, &c->feat, &c->sql); break;
    case STEP_COLUMNS: ch_sql_columns(&c->schema, &c->sql); break;
    case STEP_ENGINE: ch_sql_engine(&c->schema, &c->sql); break;
    case STEP_CLUSTER: ch_sql_cluster(c->dinfo.cluster, &c->sql); break;
    case STEP_TARGET_COLUMNS: ch_sql_columns(&c->target, &c->sql); break;
    case STEP_TARGET_ENGINE: ch_sql_engine(&c->target, &c->sql); break;
    case STEP_SHARDS: ch_sql_engine_on_shards(&c->target, c->dinfo.cluster, &c->sql); break;
    case STEP_VIEW: ch_sql_create_view(&c->schema, &c->sql); break;
    default: setup_finished(c); return;
  }
  if (c->sql.oom) {
    fail(c, "out of memory");
    return;
  }
  cs_debug(c->sink->label, "setup: %s", c->sql.data);
  const char *url = c->url;
  if (c->step == STEP_VIEW && !c->feat.low_cardinality) {
    /* A view over a LowCardinality column (a table made by a newer server,
     * or by hand) needs this flag before 20.1 (sent to those servers only). */
    cs_buf_reset(&c->req_url);
    cs_buf_printf(&c->req_url, "%s%sallow_experimental_low_cardinality_type=1", c->url,
                  strchr(c->url, '?') ? "&" : "?");
    if (c->req_url.oom) {
      fail(c, "out of memory");
      return;
    }
    url = c->req_url.data;
  }
  post(c, url, c->sql.data, c->sql.len, on_setup_answer);
}

/* STEP_ENGINE: a fitting ReplacingMergeTree, or a Distributed table whose
 * target is then checked (its schema made here). 0, or -1 when failed. */
static int engine_checked(ch *c, const cs_http_response *resp) {
  cs_err err = {{0}};
  c->dist = 0;
  c->target_here = 0;
  c->shards = c->local_replicas = c->shards_checked = -1;
  c->shards_note[0] = 0;
  ch_schema_free(&c->target);
  int rc = ch_schema_check_engine_dist(&c->schema, resp->body, resp->body_len, &c->dinfo, &err);
  if (rc < 0) {
    fail(c, "%s", err.msg);
    return -1;
  }
  if (rc == 0) return 0;
  /* currentDatabase() as the target's database: the Distributed table's own. */
  const char *db = strcmp(c->dinfo.db, "currentDatabase()") == 0 ? c->schema.db : c->dinfo.db;
  if (ch_schema_init(&c->target, c->kind, db, c->dinfo.table, "", c->extra, c->nextra, &err) != 0) {
    fail(c, "Distributed table %s.%s over %s.%s: %s", c->schema.db, c->schema.table, c->dinfo.db, c->dinfo.table,
         err.msg);
    return -1;
  }
  c->dist = 1;
  return 0;
}

/* STEP_CLUSTER: "shards\tlocal replicas". */
static int cluster_read(ch *c, const cs_http_response *resp) {
  long shards = -1, local = -1;
  char buf[64];
  snprintf(buf, sizeof buf, "%.*s", (int)(resp->body_len < 63 ? resp->body_len : 63), resp->body ? resp->body : "");
  if (sscanf(buf, "%ld\t%ld", &shards, &local) != 2) {
    fail(c, "ClickHouse at %s: unexpected answer reading cluster '%s': '%.80s'", c->url, c->dinfo.cluster, buf);
    return -1;
  }
  if (shards == 0) {
    fail(c,
         "Distributed table %s.%s: cluster '%s' is not defined on the ClickHouse at %s (remote_servers in its "
         "configuration): every insert would fail",
         c->schema.db, c->schema.table, c->dinfo.cluster, c->url);
    return -1;
  }
  c->shards = shards;
  c->local_replicas = local;
  return 0;
}

/* STEP_SHARDS: one line per shard that has the target table. */
static int shards_read(ch *c, const cs_http_response *resp) {
  const char *p = resp->body, *end = resp->body + resp->body_len;
  long n = 0;
  cs_err err = {{0}};
  while (p && p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (len) {
      if (ch_schema_check_engine(&c->target, p, len, &err) != 0) {
        fail(c, "Distributed table %s.%s: on a shard of cluster '%s': %s", c->schema.db, c->schema.table,
             c->dinfo.cluster, err.msg);
        return -1;
      }
      n++;
    }
    p = nl ? nl + 1 : end;
  }
  if (c->shards > 0 && n < c->shards) {
    fail(c,
         "Distributed table %s.%s: its table %s.%s exists on %ld of the %ld shards of cluster '%s': create it on "
         "every shard",
         c->schema.db, c->schema.table, c->target.db, c->target.table, n, c->shards, c->dinfo.cluster);
    return -1;
  }
  c->shards_checked = n;
  return 0;
}

/* What was checked of a Distributed table's target, and what not: one
 * line (a warning when something could not be checked). */
static void log_distributed(ch *c) {
  char what[1500];
  const char *tgt_db = c->target.db, *tgt = c->target.table;
  int partial = 0;
  int n = snprintf(what, sizeof what, "%s.%s is a Distributed table over %s.%s on cluster '%s' (", c->schema.db,
                   c->schema.table, tgt_db, tgt, c->dinfo.cluster);
  if (c->shards > 0)
    n += snprintf(what + n, sizeof what - (size_t)n, "%ld shard%s, ", c->shards, c->shards == 1 ? "" : "s");
  n += snprintf(what + n, sizeof what - (size_t)n, "sharding key %s): ", c->dinfo.key);
  if (c->target_here)
    n += snprintf(what + n, sizeof what - (size_t)n, "columns and engine of %s.%s checked on this server", tgt_db,
                  tgt);
  else {
    n += snprintf(what + n, sizeof what - (size_t)n,
                  "%s.%s is not on this server: its columns were NOT checked (only the Distributed table's)", tgt_db,
                  tgt);
    partial = 1;
  }
  if (c->shards_checked >= 0)
    n += snprintf(what + n, sizeof what - (size_t)n, "; its engine checked on every shard (%ld)", c->shards_checked);
  else {
    n += snprintf(what + n, sizeof what - (size_t)n, "; its engine on the other shards NOT checked (%s)",
                  c->shards_note[0] ? c->shards_note : "not tried");
    partial = 1;
  }
  snprintf(what + n, sizeof what - (size_t)n, "; inserts %s",
           c->dist_sync ? "synchronous (insert_distributed_sync=1: acknowledged once every shard has its rows)"
                        : "asynchronous (insert_sync = false: acknowledged once queued on this server's disk, "
                          "sent to the shards in the background)");
  if (partial)
    cs_warn(c->sink->label, "%s", what);
  else
    cs_info(c->sink->label, "%s", what);
}

static void on_setup_answer(void *ud, const cs_http_response *resp) {
  ch *c = ud;
  c->req = NULL;
  if (c->st != ST_SETUP) return;
  ch_error e;
  if (answer_error(c, resp, &e) != 0) {
    if (c->step == STEP_SHARDS && e.status != 0) {
      /* The server answered, a shard did not (or cluster() is refused):
       * not fatal; what was not checked is logged. */
      snprintf(c->shards_note, sizeof c->shards_note, "the query over the shards failed: %.500s", e.msg);
      answered(c);
      c->step++;
      setup_send(c);
      return;
    }
    switch (e.cls) {
      case CH_RETRY: retry_later(c, &e, "connecting"); return;
      case CH_AUTH:
        if (c->step != STEP_VERSION && (e.code == 497 || e.code == 164 || e.code == 291))
          fail(c, "ClickHouse at %s: user '%s' may not run %s (%s): create it beforehand, or use create = false",
               c->url, c->user, step_names[c->step], e.msg);
        else
          fail(c, "ClickHouse at %s refused user '%s' (%s): check user and password_env/password_file", c->url, c->user,
               e.msg);
        return;
      default: fail(c, "ClickHouse at %s: %s failed: %s", c->url, step_names[c->step], e.msg); return;
    }
  }
  answered(c);
  cs_err err = {{0}};
  switch (c->step) {
    case STEP_VERSION:
      if (ch_version_parse(resp->body, resp->body_len, &c->ver) != 0) {
        fail(c, "ClickHouse at %s: unexpected answer to SELECT version(): '%.80s'", c->url, resp->body);
        return;
      }
      ch_features_of(&c->ver, &c->feat);
      break;
    case STEP_COLUMNS:
      if (ch_schema_check_columns(&c->schema, resp->body, resp->body_len, &err) != 0) {
        fail(c, "%s%s", err.msg, c->create ? "" : " (create = false)");
        return;
      }
      break;
    case STEP_ENGINE:
      if (engine_checked(c, resp) != 0) return;
      break;
    case STEP_CLUSTER:
      if (cluster_read(c, resp) != 0) return;
      break;
    case STEP_TARGET_COLUMNS:
      if (resp->body_len == 0 || (resp->body_len == 1 && resp->body[0] == '\n')) {
        if (c->local_replicas > 0) {
          fail(c,
               "Distributed table %s.%s: its table %s.%s does not exist on the ClickHouse at %s, which is a shard "
               "of cluster '%s': create it there (and on every shard) before starting",
               c->schema.db, c->schema.table, c->target.db, c->target.table, c->url, c->dinfo.cluster);
          return;
        }
        c->target_here = 0;
      } else if (ch_schema_check_columns(&c->target, resp->body, resp->body_len, &err) != 0) {
        fail(c, "Distributed table %s.%s: %s", c->schema.db, c->schema.table, err.msg);
        return;
      } else {
        c->target_here = 1;
      }
      break;
    case STEP_TARGET_ENGINE:
      if (ch_schema_check_engine(&c->target, resp->body, resp->body_len, &err) != 0) {
        fail(c, "Distributed table %s.%s: %s", c->schema.db, c->schema.table, err.msg);
        return;
      }
      break;
    case STEP_SHARDS:
      if (shards_read(c, resp) != 0) return;
      break;
    default: break;
  }
  c->step++;
  setup_send(c);
}

/* --------------------------------------------------------------- inserts */
static void on_insert_answer(void *ud, const cs_http_response *resp);

static void send_head(ch *c) {
  batch *b = c->head;
  const char *url = c->insert_url.data;
  const char *body = b->body.data + b->off[b->cur];
  size_t len = b->off[b->end] - b->off[b->cur];
  if (c->feat.dedup_token) {
    /* Same rows, same token: a retried insert that had in fact succeeded
     * is dropped by servers that deduplicate (replicated tables). */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)body[i]) * 1099511628211ull;
    cs_buf_reset(&c->req_url);
    cs_buf_printf(&c->req_url, "%s&insert_deduplication_token=cs-%016llx-%zu", url, (unsigned long long)h,
                  b->end - b->cur);
    if (c->req_url.oom) {
      fail(c, "out of memory");
      return;
    }
    url = c->req_url.data;
  }
  post(c, url, body, len, on_insert_answer);
}

/* The head batch is done: acknowledge its records. */
static void complete_head(ch *c) {
  batch *b = c->head;
  c->head = b->next;
  if (!c->head) c->tail = NULL;
  c->held_recs -= b->nrecs;
  c->held_bytes -= b->body.len;
  uint64_t n = b->nrecs;
  batch_free(b);
  cs_sink_ack(c->sink, n);
  if (c->busy && c->held_bytes <= c->buffer_bytes / 2) {
    c->busy = 0;
    cs_sink_ready(c->sink); /* the pipeline writes what it holds (from a timer) */
  }
}

static void kick(ch *c) {
  while (c->st == ST_READY && !c->req && !c->waiting && c->head) {
    batch *b = c->head;
    if (b->cur >= b->nrows) {
      complete_head(c);
      continue;
    }
    send_head(c);
    return;
  }
}

static void on_insert_answer(void *ud, const cs_http_response *resp) {
  ch *c = ud;
  c->req = NULL;
  if (c->st != ST_READY) return;
  batch *b = c->head;
  size_t size = b->end - b->cur;
  ch_error e;
  if (answer_error(c, resp, &e) == 0) {
    answered(c);
    c->n.inserted += size;
    c->n.bytes += b->off[b->end] - b->off[b->cur];
    b->cur = b->end;
    b->end = b->nrows;
    kick(c);
    return;
  }
  switch (e.cls) {
    case CH_RETRY: retry_later(c, &e, "insert"); return;
    case CH_AUTH:
      fail(c, "ClickHouse at %s refused user '%s' (%s): check user and password_env/password_file", c->url, c->user,
           e.msg);
      return;
    case CH_FATAL:
      fail(c, "ClickHouse at %s refused the insert into %s.%s: %s", c->url, c->schema.db, c->schema.table, e.msg);
      return;
    case CH_ROW: break;
  }
  answered(c);
  if (size == 1) {
    /* The row alone is refused: it goes to the dead-letter file. */
    cs_buf row;
    cs_buf_init(&row);
    const char *p = b->body.data + b->off[b->cur];
    size_t len = b->off[b->cur + 1] - b->off[b->cur];
    if (c->rowbinary) {
      int bad =
          c->kind == CH_KIND_TRADES ? ch_trade_rowbinary_to_json(p, len, &row) : ch_row_rowbinary_to_json(p, len, &row);
      if (bad) cs_buf_puts(&row, "null");
      p = row.data;
      len = row.len;
    }
    cs_err err = {{0}};
    int rc = dead_letter(c, p, len, e.code, e.msg, &err);
    cs_buf_free(&row);
    if (rc != 0) {
      fail(c, "%s", err.msg);
      return;
    }
    c->n.dead_server++;
    b->cur++;
    b->end = b->nrows;
  } else {
    /* Split: the rows before the one the server names, or half. */
    c->n.splits++;
    size_t k = (e.row >= 1 && (size_t)e.row <= size) ? (e.row > 1 ? (size_t)e.row - 1 : 1) : size / 2;
    b->end = b->cur + k;
    cs_debug(c->sink->label, "insert of %zu rows refused (%s); trying %zu rows", size, e.msg, k);
  }
  kick(c);
}

/* --------------------------------------------------------------- taking */
static void seal(ch *c) {
  batch *b = c->fill;
  if (!b) return;
  c->fill = NULL;
  uv_timer_stop(&c->t_delay);
  b->end = b->nrows;
  if (c->tail)
    c->tail->next = b;
  else
    c->head = b;
  c->tail = b;
}

static void on_delay(uv_timer_t *t) {
  ch *c = t->data;
  seal(c);
  kick(c);
}

/* Window rows carry user aggregates as extra members: each needs a column
 * (extra_columns), or every insert would be refused. Checked on the first
 * row that has them (every row of a pipeline has the same ones). */
static int check_ext(ch *c, const cs_row *row, cs_err *err) {
  if (!row->ext_json || !row->ext_json[0]) return 0;
  c->ext_checked = 1;
  cs_buf obj;
  cs_buf_init(&obj);
  cs_buf_append(&obj, "{", 1);
  cs_buf_puts(&obj, row->ext_json);
  cs_buf_append(&obj, "}", 1);
  cs_json *js = cs_json_create();
  cs_json_val root;
  const char *why = NULL;
  int rc = 0;
  if (obj.oom || !js) {
    rc = cs_err_set(err, "out of memory");
  } else if (cs_json_parse(js, obj.data, obj.len, false, &root, &why) != 0) {
    rc = cs_err_set(err, "user aggregates are not valid JSON (%s)", why ? why : "?");
  } else {
    cs_json_iter it;
    const char *k;
    size_t kl;
    cs_json_val v;
    cs_json_obj_iter(&root, &it);
    while (rc == 0 && cs_json_obj_next(&it, &k, &kl, &v)) {
      if (!ch_schema_has_column(&c->schema, k, kl))
        rc = cs_err_set(err,
                        "user aggregate '%.*s' has no column in %s.%s: declare it, e.g. extra_columns = { \"%.*s "
                        "Float64\" }",
                        (int)kl, k, c->schema.db, c->schema.table, (int)kl, k);
    }
  }
  cs_json_destroy(js);
  cs_buf_free(&obj);
  return rc;
}

static void check_aggs(ch *c, const cs_row *row) {
  c->aggs_checked = 1;
  if ((row->aggs & CS_AGG_ALL) == CS_AGG_ALL) return;
  char miss[256] = "";
  for (int i = 0; i < CS_AGG_COUNT; i++)
    if (!(row->aggs & (1u << i))) {
      size_t l = strlen(miss);
      snprintf(miss + l, sizeof miss - l, "%s%s", l ? ", " : "", cs_agg_names[i]);
    }
  cs_warn(c->sink->label, "window rows carry no %s: ClickHouse stores its default (0) in those columns", miss);
}

/* Not a failure: the pipeline keeps the records, pauses the source without
 * counting a retry, and writes again when the sink calls cs_sink_ready. */
static cs_sink_status buffer_full(ch *c, cs_err *err) {
  c->busy = 1;
  c->n.buffer_full++;
  if (c->down)
    cs_err_set(err,
               "%llu records (%llu bytes) wait for ClickHouse, which has not answered for %.1f s (%s); buffer full",
               (unsigned long long)c->held_recs, (unsigned long long)c->held_bytes,
               (double)(cs_time_mono_us() - c->down_since_us) / 1e6, c->last_err);
  else
    cs_err_set(err, "%llu records (%llu bytes) wait for ClickHouse to acknowledge them; buffer full",
               (unsigned long long)c->held_recs, (unsigned long long)c->held_bytes);
  return CS_SINK_BUSY;
}

/* Takes n records (rows or trades): all of them, or none. */
static cs_sink_status take(ch *c, const cs_row *rows, const cs_trade *trades, size_t n, cs_err *err) {
  if (c->st == ST_FAILED) {
    cs_err_set(err, "%s", fail_text(c));
    return CS_SINK_ERROR;
  }
  if (n == 0) return CS_SINK_OK;
  if (c->held_recs > 0 && c->held_bytes >= c->buffer_bytes) return buffer_full(c, err);
  for (size_t i = 0; rows && !c->ext_checked && i < n; i++)
    if (check_ext(c, &rows[i], err) != 0) return CS_SINK_ERROR;
  if (rows && n && !c->aggs_checked) check_aggs(c, &rows[0]);
  if (c->fill && c->fill->nrows + n > c->batch_rows) seal(c);
  if (!c->fill && !(c->fill = batch_new())) {
    cs_err_set(err, "out of memory");
    return CS_SINK_RETRY;
  }
  batch *b = c->fill;
  size_t len0 = b->body.len, rows0 = b->nrows, rejected = 0;
  char why[256];
  for (size_t i = 0; i < n; i++) {
    if (rows ? ch_row_check(&rows[i], why, sizeof why) : ch_trade_check(&trades[i], why, sizeof why)) {
      rejected++;
      continue;
    }
    uint64_t v = next_version(c);
    if (rows)
      c->rowbinary ? ch_row_rowbinary(&rows[i], v, &b->body) : ch_row_json(&rows[i], v, &b->body);
    else
      c->rowbinary ? ch_trade_rowbinary(&trades[i], v, &b->body) : ch_trade_json(&trades[i], v, &b->body);
    if (b->body.oom || batch_row_done(b) != 0) {
      b->body.oom = 0;
      b->body.len = len0;
      b->nrows = rows0;
      cs_err_set(err, "out of memory formatting %zu records", n);
      return CS_SINK_RETRY;
    }
  }
  if (rejected) {
    /* Formatted for the dead-letter file as they would have been sent. */
    cs_buf tmp;
    cs_buf_init(&tmp);
    for (size_t i = 0; i < n; i++) {
      if (rows ? !ch_row_check(&rows[i], why, sizeof why) : !ch_trade_check(&trades[i], why, sizeof why)) continue;
      cs_buf_reset(&tmp);
      if (rows)
        ch_row_json(&rows[i], next_version(c), &tmp);
      else
        ch_trade_json(&trades[i], next_version(c), &tmp);
      if (dead_letter(c, tmp.data ? tmp.data : "null", tmp.data ? tmp.len : 4, 0, why, err) != 0) {
        cs_buf_free(&tmp);
        set_failed(c, 0, "%s", err->msg);
        return CS_SINK_ERROR;
      }
      c->n.dead_local++;
    }
    cs_buf_free(&tmp);
  }
  b->nrecs += n;
  c->held_recs += n;
  c->held_bytes += b->body.len - len0;
  if (b->nrows >= c->batch_rows || b->body.len >= c->batch_bytes || b->nrows == 0) {
    seal(c);
  } else if (!uv_is_active((uv_handle_t *)&c->t_delay)) {
    uv_timer_start(&c->t_delay, on_delay, (uint64_t)(c->batch_delay_us / 1000), 0);
  }
  kick(c);
  return CS_SINK_OK;
}

/* ------------------------------------------------------------ the vtable */
static cs_sink_status ch_write(cs_sink *sink, const cs_row *rows, size_t n, cs_err *err) {
  return take(sink->ctx, rows, NULL, n, err);
}

static cs_sink_status ch_write_trades(cs_sink *sink, const cs_trade *trades, size_t n, cs_err *err) {
  return take(sink->ctx, NULL, trades, n, err);
}

static cs_sink_status ch_flush(cs_sink *sink, cs_err *err) {
  ch *c = sink->ctx;
  if (c->st == ST_FAILED) {
    cs_err_set(err, "%s", fail_text(c));
    return CS_SINK_ERROR;
  }
  seal(c);
  kick(c);
  if (c->st == ST_READY && c->held_recs == 0) return CS_SINK_OK;
  if (c->down)
    cs_err_set(err, "ClickHouse at %s has not answered for %.1f s (%s); %llu records not yet acknowledged", c->url,
               (double)(cs_time_mono_us() - c->down_since_us) / 1e6, c->last_err, (unsigned long long)c->held_recs);
  /* else: only acknowledgements (or the table check) to wait for: empty message */
  return CS_SINK_RETRY;
}

static int read_password(ch *c, const cs_opts *opts, cs_err *err) {
  const cs_optval *env = cs_opts_get(opts, "password_env"), *file = cs_opts_get(opts, "password_file");
  if (env->set && file->set) return cs_err_set(err, "give password_env or password_file, not both");
  if (env->set) {
    const char *v = getenv(env->str);
    if (!v) return cs_err_set(err, "password_env: the environment variable %s is not set", env->str);
    if (!(c->password = strdup(v))) return cs_err_set(err, "out of memory");
  } else if (file->set) {
    int fd = open(file->str, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cs_err_set(err, "password_file: cannot open '%s': %s", file->str, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
      cs_warn(c->sink->label, "password_file '%s' is readable by other users (mode %03o)", file->str,
              (unsigned)(st.st_mode & 0777));
    char buf[4096];
    ssize_t r;
    do r = read(fd, buf, sizeof buf - 1);
    while (r < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (r < 0) return cs_err_set(err, "password_file: cannot read '%s': %s", file->str, strerror(e));
    buf[r] = 0;
    buf[strcspn(buf, "\r\n")] = 0; /* the first line */
    c->password = strdup(buf);
    memset(buf, 0, sizeof buf);
    if (!c->password) return cs_err_set(err, "out of memory");
  }
  return 0;
}

static int check_url(const char *url, cs_err *err) {
  const char *rest;
  if (strncmp(url, "http://", 7) == 0)
    rest = url + 7;
  else if (strncmp(url, "https://", 8) == 0)
    rest = url + 8;
  else
    return cs_err_set(err, "url '%s' must start with http:// or https://", url);
  size_t host = strcspn(rest, "/?#");
  if (memchr(rest, '@', host))
    return cs_err_set(err, "url must not hold credentials: give user, and password_env or password_file");
  if (host == 0) return cs_err_set(err, "url '%s' has no host", url);
  if (strchr(url, '#')) return cs_err_set(err, "url '%s' must not have a fragment", url);
  return 0;
}

static char *opt_dup(const cs_opts *opts, const char *name) {
  const cs_optval *v = cs_opts_get(opts, name);
  return v->set && v->str ? strdup(v->str) : NULL;
}

static void ch_destroy(cs_sink *sink);

static int ch_init(cs_sink *sink, const cs_opts *opts, cs_err *err) {
  ch *c = calloc(1, sizeof *c);
  if (!c) return cs_err_set(err, "out of memory");
  sink->ctx = c;
  c->sink = sink;
  c->dl_fd = -1;
  cs_buf_init(&c->sql);
  cs_buf_init(&c->insert_url);
  cs_buf_init(&c->req_url);
  cs_buf_init(&c->dl);
  cs_log_limiter lim = CS_LOG_LIMITER_INIT;
  c->lim_retry = c->lim_dead = lim;
  if (!(c->url = opt_dup(opts, "url")) || !(c->db = opt_dup(opts, "database")) || !(c->user = opt_dup(opts, "user")) ||
      !(c->dead_path = opt_dup(opts, "dead_letter"))) {
    cs_err_set(err, "out of memory");
    goto error;
  }
  c->table_opt = opt_dup(opts, "table");
  c->view_opt = opt_dup(opts, "view");
  c->ca_file = opt_dup(opts, "ca_file");
  if (cs_opts_list_copy(cs_opts_get(opts, "extra_columns"), &c->extra, &c->nextra) != 0) {
    cs_err_set(err, "out of memory");
    goto error;
  }
  c->create = (int)cs_opts_int(opts, "create");
  c->dist_sync = (int)cs_opts_int(opts, "insert_sync");
  c->rowbinary = strcmp(cs_opts_str(opts, "format"), "RowBinary") == 0;
  int64_t rows = cs_opts_int(opts, "batch_rows"), bytes = cs_opts_int(opts, "batch_bytes"),
          buffer = cs_opts_int(opts, "buffer_bytes");
  c->batch_delay_us = cs_opts_int(opts, "batch_delay");
  c->timeout_us = cs_opts_int(opts, "timeout");
  c->connect_timeout_us = cs_opts_int(opts, "connect_timeout");
  if (check_url(c->url, err) != 0) goto error;
  if (rows < 1 || rows > MAX_BATCH_ROWS) {
    cs_err_set(err, "batch_rows must be between 1 and %d", MAX_BATCH_ROWS);
    goto error;
  }
  if (bytes < 1024) {
    cs_err_set(err, "batch_bytes must be at least 1024");
    goto error;
  }
  if (buffer < bytes) {
    cs_err_set(err, "buffer_bytes (%lld) must be at least batch_bytes (%lld)", (long long)buffer, (long long)bytes);
    goto error;
  }
  if (c->batch_delay_us < 1000 || c->timeout_us < 1000 || c->connect_timeout_us < 1000) {
    cs_err_set(err, "batch_delay, timeout and connect_timeout must be at least 1ms");
    goto error;
  }
  if (!c->dead_path[0]) {
    cs_err_set(err, "dead_letter must name a file");
    goto error;
  }
  c->batch_rows = (uint64_t)rows;
  c->batch_bytes = (uint64_t)bytes;
  c->buffer_bytes = (uint64_t)buffer;
  if (read_password(c, opts, err) != 0) goto error;
  /* Names checked now, so that `cstream check` reports them; the kind of
   * record (rows or trades) is known at start. */
  ch_schema probe;
  if (ch_schema_init(&probe, CH_KIND_WINDOWS, c->db, c->table_opt ? c->table_opt : "candles_30s", c->view_opt, c->extra,
                     c->nextra, err) != 0)
    goto error;
  ch_schema_free(&probe);
  return 0;
error:
  ch_destroy(sink);
  sink->ctx = NULL;
  return -1;
}

static int ch_start(cs_sink *sink, uv_loop_t *loop, cs_err *err) {
  ch *c = sink->ctx;
  c->loop = loop;
  c->kind = sink->trades ? CH_KIND_TRADES : CH_KIND_WINDOWS;
  /* User aggregates have types only the script knows: JSON carries them. */
  if (c->kind == CH_KIND_WINDOWS && c->nextra) c->rowbinary = 0;
  const char *table = c->table_opt ? c->table_opt : (c->kind == CH_KIND_TRADES ? "trades" : "candles_30s");
  if (ch_schema_init(&c->schema, c->kind, c->db, table, c->view_opt, c->extra, c->nextra, err) != 0) return -1;
  if (!(c->http = cs_http_create(loop, err))) return -1;
  uv_timer_init(loop, &c->t_delay);
  uv_timer_init(loop, &c->t_retry);
  uv_timer_init(loop, &c->t_fail);
  c->t_delay.data = c->t_retry.data = c->t_fail.data = c;
  c->timers_open = 1;
  c->st = ST_SETUP;
  c->step = STEP_VERSION;
  setup_send(c);
  return 0;
}

static void ch_stop(cs_sink *sink) {
  ch *c = sink->ctx;
  if (!c || c->st == ST_STOPPED) return;
  if (c->held_recs) {
    c->n.given_up = c->held_recs;
    cs_error(sink->label,
             "stopping with %llu records not acknowledged by ClickHouse: given up (the insert in flight, if any, "
             "may or may not have been stored)",
             (unsigned long long)c->held_recs);
  } else if (!c->setup_done_once && c->st != ST_FAILED) {
    cs_warn(sink->label, "stopping before ClickHouse at %s answered: the table was not checked", c->url);
  }
  cs_http_close(c->http);
  c->http = NULL;
  c->req = NULL;
  if (c->timers_open) {
    timer_close(&c->t_delay);
    timer_close(&c->t_retry);
    timer_close(&c->t_fail);
  }
  if (c->dl_fd >= 0) close(c->dl_fd);
  c->dl_fd = -1;
  cs_log_limiter_flush(&c->lim_retry, CS_LOG_WARN, sink->label, "retry messages");
  cs_log_limiter_flush(&c->lim_dead, CS_LOG_WARN, sink->label, "dead-letter messages");
  cs_info(sink->label,
          "clickhouse summary: inserted=%llu dead_lettered=%llu refused_by_server=%llu rejected_before_sending=%llu "
          "requests=%llu retries=%llu splits=%llu bytes_sent=%llu buffer_full=%llu given_up=%llu",
          (unsigned long long)c->n.inserted, (unsigned long long)(c->n.dead_server + c->n.dead_local),
          (unsigned long long)c->n.dead_server, (unsigned long long)c->n.dead_local, (unsigned long long)c->n.requests,
          (unsigned long long)c->n.retries, (unsigned long long)c->n.splits, (unsigned long long)c->n.bytes,
          (unsigned long long)c->n.buffer_full, (unsigned long long)c->n.given_up);
  c->st = ST_STOPPED;
}

static void ch_destroy(cs_sink *sink) {
  ch *c = sink->ctx;
  if (!c) return;
  cs_http_close(c->http); /* only when stop() was never called */
  while (c->head) {
    batch *b = c->head;
    c->head = b->next;
    batch_free(b);
  }
  batch_free(c->fill);
  if (c->dl_fd >= 0) close(c->dl_fd);
  ch_schema_free(&c->schema);
  ch_schema_free(&c->target);
  cs_buf_free(&c->sql);
  cs_buf_free(&c->insert_url);
  cs_buf_free(&c->req_url);
  cs_buf_free(&c->dl);
  if (c->password) {
    memset(c->password, 0, strlen(c->password));
    free(c->password);
  }
  cs_opts_list_free(c->extra, c->nextra);
  free(c->url);
  free(c->db);
  free(c->table_opt);
  free(c->view_opt);
  free(c->user);
  free(c->ca_file);
  free(c->dead_path);
  free(c->fail_msg);
  free(c);
  sink->ctx = NULL;
}

/* The sink's own figures on the metrics page (scrape time only). */
static void ch_metrics(const cs_sink *sink, cs_metrics_page *pg, const char *labels) {
  const ch *c = sink->ctx;
  char lb[512];
#define C(name, help, v) cs_metrics_counter(pg, "cstream_clickhouse_" name, help, labels, (double)(v))
#define G(name, help, v) cs_metrics_gauge(pg, "cstream_clickhouse_" name, help, labels, (double)(v))
  C("inserted_rows_total", "Rows ClickHouse confirmed inserted", c->n.inserted);
  snprintf(lb, sizeof lb, "%s", labels ? labels : "");
  cs_metrics_label_add(lb, sizeof lb, "reason", "refused_by_server");
  cs_metrics_counter(pg, "cstream_clickhouse_dead_letter_rows_total",
                     "Rows written to the dead-letter file instead of ClickHouse", lb, (double)c->n.dead_server);
  snprintf(lb, sizeof lb, "%s", labels ? labels : "");
  cs_metrics_label_add(lb, sizeof lb, "reason", "not_storable");
  cs_metrics_counter(pg, "cstream_clickhouse_dead_letter_rows_total",
                     "Rows written to the dead-letter file instead of ClickHouse", lb, (double)c->n.dead_local);
  C("requests_total", "HTTP requests sent to ClickHouse (set-up and inserts)", c->n.requests);
  C("failed_requests_total", "Requests that failed transiently and were retried", c->n.retries);
  C("splits_total", "Inserts split to isolate a row the server refused", c->n.splits);
  C("sent_bytes_total", "Bytes of rows ClickHouse confirmed", c->n.bytes);
  C("buffer_full_total", "Writes answered BUSY because the buffer was full (back-pressure)", c->n.buffer_full);
  G("buffered_bytes", "Bytes of rows taken and not yet acknowledged", c->held_bytes);
  G("up", "1 when the table is checked and the last request got an answer", c->st == ST_READY && !c->down);
#undef C
#undef G
}

static const cs_optdef ch_options[] = {
    {"url", CS_OPT_STRING, "http://127.0.0.1:8123", 0, NULL,
     "ClickHouse HTTP interface, http:// or https:// (certificates are verified; no credentials in the URL)"},
    {"database", CS_OPT_STRING, "cstream", 0, NULL, "database (created if missing, with create = true)"},
    {"table", CS_OPT_STRING, NULL, 1, NULL,
     "table; default candles_30s for window rows, trades for a pipeline without a window"},
    {"view", CS_OPT_STRING, NULL, 1, NULL,
     "view giving the latest version of each row (argMax); default <table>_latest, \"\" for none"},
    {"user", CS_OPT_STRING, "default", 0, NULL, "ClickHouse user"},
    {"password_env", CS_OPT_STRING, NULL, 1, NULL, "name of the environment variable that holds the password"},
    {"password_file", CS_OPT_STRING, NULL, 1, NULL, "file whose first line is the password"},
    {"ca_file", CS_OPT_STRING, NULL, 1, NULL,
     "https: CA certificates (PEM) to verify the server; default: the system's"},
    {"create", CS_OPT_BOOLEAN, "true", 0, NULL,
     "create the database, table and view if missing (else they must exist); a Distributed table is never created"},
    {"insert_sync", CS_OPT_BOOLEAN, "true", 0, NULL,
     "a Distributed table: inserts return once every shard stored its rows (insert_distributed_sync=1); false: "
     "once the server queued them"},
    {"extra_columns", CS_OPT_STRINGS, NULL, 1, NULL,
     "window rows: \"name Type\" columns for user aggregates (cs.aggregate), e.g. { \"max_size Float64\" }"},
    {"format", CS_OPT_ENUM, "RowBinary", 0, "RowBinary|JSONEachRow",
     "insert format; RowBinary sends the exact doubles (window rows with extra_columns use JSONEachRow)"},
    {"batch_rows", CS_OPT_INTEGER, "100000", 0, NULL, "rows per insert at most (1..1000000)"},
    {"batch_bytes", CS_OPT_INTEGER, "4194304", 0, NULL, "bytes per insert: a batch is sent once it holds this much"},
    {"batch_delay", CS_OPT_DURATION, "500ms", 0, NULL, "a batch is sent at the latest this long after its first row"},
    {"buffer_bytes", CS_OPT_INTEGER, "33554432", 0, NULL,
     "records held until ClickHouse acknowledges them; beyond, the source is paused (back-pressure)"},
    {"timeout", CS_OPT_DURATION, "30s", 0, NULL, "one HTTP request, from connect to the last byte of the answer"},
    {"connect_timeout", CS_OPT_DURATION, "5s", 0, NULL, "connecting to ClickHouse"},
    {"dead_letter", CS_OPT_STRING, "clickhouse-dead-letter.jsonl", 0, NULL,
     "JSON-lines file (appended to, created on first use) for records ClickHouse refuses or cannot store"},
    {NULL, 0, NULL, 0, NULL, NULL}};

const cs_sink_vt cs_sink_clickhouse = {
    .name = "clickhouse",
    .help = "inserts window rows or trades into ClickHouse over HTTP, in batches (idempotent, no silent loss)",
    .options = ch_options,
    .init = ch_init,
    .start = ch_start,
    .write = ch_write,
    .write_trades = ch_write_trades,
    .flush = ch_flush,
    .stop = ch_stop,
    .destroy = ch_destroy,
    .async_ack = 1,
    .metrics = ch_metrics,
};
