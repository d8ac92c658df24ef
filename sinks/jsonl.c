/* cs.jsonl: writes each window row — or, in a pipeline without a window,
 * each trade as a version-1 trade record (cs_row.h) — as one JSON line to a
 * file or stdout.
 *
 * Lines are never torn: a batch is written with one buffer and, if a write
 * fails part-way into a regular file, the file is cut back to where the
 * batch began (ftruncate) so no partial line stays. The file is opened for
 * appending and never truncated unless `truncate = true`. A row counts as
 * acknowledged once the write of its complete line has returned
 * (`fsync = true`: once it has been fsync'ed). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cs_buf.h"
#include "cs_log.h"
#include "cs_metrics.h"
#include "cs_plugin.h"
#include "cs_row.h"

typedef struct jsonl {
  char *path;
  int fd, own_fd, regular, do_fsync, truncate;
  cs_buf buf;
  uint64_t batches, bytes, failed_writes; /* for metrics */
  int tty; /* a terminal: keep clear of the progress line (cs_log_status) */
} jsonl;

static int jsonl_init(cs_sink *sink, const cs_opts *opts, cs_err *err) {
  jsonl *j = calloc(1, sizeof *j);
  if (!j || !(j->path = strdup(cs_opts_str(opts, "path")))) {
    free(j);
    return cs_err_set(err, "out of memory");
  }
  j->do_fsync = (int)cs_opts_int(opts, "fsync");
  j->truncate = (int)cs_opts_int(opts, "truncate");
  j->fd = -1;
  cs_buf_init(&j->buf);
  sink->ctx = j;
  return 0;
}

static int jsonl_start(cs_sink *sink, uv_loop_t *loop, cs_err *err) {
  jsonl *j = sink->ctx;
  if (strcmp(j->path, "-") == 0) {
    j->fd = 1;
  } else {
    int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (j->truncate ? O_TRUNC : 0);
    j->fd = open(j->path, flags, 0644);
    if (j->fd < 0) return cs_err_set(err, "cannot open '%s' for writing: %s", j->path, strerror(errno));
    j->own_fd = 1;
  }
  struct stat st;
  j->regular = fstat(j->fd, &st) == 0 && S_ISREG(st.st_mode);
  j->tty = isatty(j->fd) == 1;
  return 0;
}

static int transient(int e) { return e == ENOSPC || e == EDQUOT || e == EAGAIN || e == EIO; }

static cs_sink_status write_buf(jsonl *j, size_t n, cs_err *err);

/* On a terminal, rows scroll above the progress line. */
static cs_sink_status write_out(jsonl *j, size_t n, cs_err *err) {
  if (!j->tty) return write_buf(j, n, err);
  cs_log_status_hide();
  cs_sink_status st = write_buf(j, n, err);
  cs_log_status_show();
  return st;
}

static cs_sink_status jsonl_write(cs_sink *sink, const cs_row *rows, size_t n, cs_err *err) {
  jsonl *j = sink->ctx;
  cs_buf_reset(&j->buf);
  for (size_t i = 0; i < n; i++) {
    cs_row_to_json(&rows[i], &j->buf);
    cs_buf_append(&j->buf, "\n", 1);
  }
  return write_out(j, n, err);
}

static cs_sink_status jsonl_write_trades(cs_sink *sink, const cs_trade *trades, size_t n, cs_err *err) {
  jsonl *j = sink->ctx;
  cs_buf_reset(&j->buf);
  for (size_t i = 0; i < n; i++) {
    cs_trade_to_json(&trades[i], &j->buf);
    cs_buf_append(&j->buf, "\n", 1);
  }
  return write_out(j, n, err);
}

/* Writes the formatted batch in j->buf: whole lines or nothing. */
static cs_sink_status write_buf(jsonl *j, size_t n, cs_err *err) {
  if (j->buf.oom) {
    j->buf.oom = 0;
    cs_err_set(err, "out of memory formatting %zu records", n);
    return CS_SINK_RETRY;
  }
  off_t before = j->regular ? lseek(j->fd, 0, SEEK_END) : -1;
  size_t done = 0;
  while (done < j->buf.len) {
    ssize_t w = write(j->fd, j->buf.data + done, j->buf.len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int e = errno;
      j->failed_writes++;
      if (done > 0 && before >= 0 && ftruncate(j->fd, before) != 0) {
        cs_err_set(err, "write to '%s' failed after %zu bytes (%s) and the partial line could not be removed: %s",
                   j->path, done, strerror(e), strerror(errno));
        return CS_SINK_ERROR;
      }
      if (done > 0 && before < 0) {
        /* A pipe or terminal cannot be cut back: finish the line or fail. */
        cs_err_set(err, "write to '%s' failed mid-line: %s", j->path, strerror(e));
        return CS_SINK_ERROR;
      }
      cs_err_set(err, "write to '%s' failed: %s", j->path, strerror(e));
      return transient(e) ? CS_SINK_RETRY : CS_SINK_ERROR;
    }
    done += (size_t)w;
  }
  j->batches++;
  j->bytes += done;
  if (j->do_fsync && j->regular && fsync(j->fd) != 0) {
    cs_err_set(err, "fsync of '%s' failed: %s", j->path, strerror(errno));
    return CS_SINK_RETRY;
  }
  return CS_SINK_OK;
}

static cs_sink_status jsonl_flush(cs_sink *sink, cs_err *err) {
  jsonl *j = sink->ctx;
  if (j->do_fsync && j->regular && fsync(j->fd) != 0) {
    cs_err_set(err, "fsync of '%s' failed: %s", j->path, strerror(errno));
    return CS_SINK_RETRY;
  }
  return CS_SINK_OK;
}

static void jsonl_stop(cs_sink *sink) {
  jsonl *j = sink->ctx;
  if (j->own_fd && j->fd >= 0) close(j->fd);
  j->fd = -1;
}

static void jsonl_destroy(cs_sink *sink) {
  jsonl *j = sink->ctx;
  if (!j) return;
  if (j->own_fd && j->fd >= 0) close(j->fd);
  cs_buf_free(&j->buf);
  free(j->path);
  free(j);
}

static void jsonl_metrics(const cs_sink *sink, cs_metrics_page *pg, const char *labels) {
  const jsonl *j = sink->ctx;
  cs_metrics_counter(pg, "cstream_sink_batches_total", "Batches the sink wrote or sent", labels,
                     (double)j->batches);
  cs_metrics_counter(pg, "cstream_sink_written_bytes_total", "Bytes the sink wrote", labels, (double)j->bytes);
  cs_metrics_counter(pg, "cstream_sink_failed_writes_total", "Writes that failed (retried or fatal)", labels,
                     (double)j->failed_writes);
}

static const cs_optdef jsonl_options[] = {
    {"path", CS_OPT_STRING, NULL, 0, NULL, "output file, appended to; \"-\" is stdout"},
    {"fsync", CS_OPT_BOOLEAN, "false", 0, NULL, "fsync after every batch: a row is acknowledged once on disk"},
    {"truncate", CS_OPT_BOOLEAN, "false", 0, NULL, "empty the file at start instead of appending"},
    {NULL, 0, NULL, 0, NULL, NULL}};

const cs_sink_vt cs_sink_jsonl = {
    .name = "jsonl",
    .help = "writes rows as JSON lines to a file or stdout",
    .options = jsonl_options,
    .init = jsonl_init,
    .start = jsonl_start,
    .write = jsonl_write,
    .write_trades = jsonl_write_trades,
    .flush = jsonl_flush,
    .stop = jsonl_stop,
    .destroy = jsonl_destroy,
    .metrics = jsonl_metrics,
};
