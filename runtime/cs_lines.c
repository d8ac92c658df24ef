#include "cs_lines.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cs_json.h"

#define CHUNK (256 * 1024)

struct cs_lines {
  gzFile gz;
  char *buf;
  size_t cap, start, end, scan; /* data is buf[start, end); no '\n' in [start, scan) */
  size_t max_line;
  uint64_t lineno, size;
  int eof, skipping;
  size_t skipped; /* bytes of the overlong line skipped so far */
};

cs_lines *cs_lines_open(const char *path, size_t max_line, cs_err *err) {
  cs_lines *lr = calloc(1, sizeof *lr);
  if (!lr) {
    cs_err_set(err, "out of memory");
    return NULL;
  }
  int fd = strcmp(path, "-") == 0 ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    cs_err_set(err, "cannot open '%s': %s", path, strerror(errno));
    free(lr);
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) lr->size = (uint64_t)st.st_size;
  if (!(lr->gz = gzdopen(fd, "rb"))) {
    close(fd);
    free(lr);
    cs_err_set(err, "cannot open '%s': out of memory", path);
    return NULL;
  }
  gzbuffer(lr->gz, CHUNK);
  lr->max_line = max_line ? max_line : 1;
  lr->cap = CHUNK < lr->max_line + 1 ? CHUNK : lr->max_line + 1;
  if (!(lr->buf = malloc(lr->cap + CS_JSON_PADDING))) {
    cs_lines_close(lr);
    cs_err_set(err, "out of memory");
    return NULL;
  }
  return lr;
}

void cs_lines_close(cs_lines *lr) {
  if (!lr) return;
  if (lr->gz) gzclose(lr->gz);
  free(lr->buf);
  free(lr);
}

/* Reads more input after the data, moving or growing the buffer first. */
static int fill(cs_lines *lr, cs_err *err) {
  if (lr->start > 0) {
    memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
    lr->end -= lr->start;
    lr->scan -= lr->start;
    lr->start = 0;
  }
  if (lr->end == lr->cap) {
    size_t ncap = lr->cap * 2;
    if (ncap > lr->max_line + 1) ncap = lr->max_line + 1;
    if (ncap <= lr->cap) return 1; /* full: the line is too long */
    char *nb = realloc(lr->buf, ncap + CS_JSON_PADDING);
    if (!nb) return cs_err_set(err, "out of memory");
    lr->buf = nb;
    lr->cap = ncap;
  }
  size_t want = lr->cap - lr->end;
  if (want > (size_t)1 << 30) want = (size_t)1 << 30;
  int n = gzread(lr->gz, lr->buf + lr->end, (unsigned)want);
  if (n < 0) {
    int zerr;
    const char *msg = gzerror(lr->gz, &zerr);
    return cs_err_set(err, "read error: %s", zerr == Z_ERRNO ? strerror(errno) : msg);
  }
  if (n == 0) {
    /* gzread also returns 0 at a truncated gzip stream: tell that apart. */
    int zerr;
    const char *msg = gzerror(lr->gz, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) return cs_err_set(err, "read error: %s", msg);
    if (!gzeof(lr->gz)) return cs_err_set(err, "read error: unexpected end of input");
    lr->eof = 1;
  }
  lr->end += (size_t)n;
  return 0;
}

cs_lines_result cs_lines_next(cs_lines *lr, const char **line, size_t *len, uint64_t *lineno, cs_err *err) {
  for (;;) {
    char *nl = memchr(lr->buf + lr->scan, '\n', lr->end - lr->scan);
    if (nl) {
      size_t at = (size_t)(nl - lr->buf);
      *lineno = ++lr->lineno;
      if (lr->skipping) {
        *len = lr->skipped + (at - lr->start);
        lr->skipping = 0;
        lr->skipped = 0;
        lr->start = lr->scan = at + 1;
        *line = NULL;
        return CS_LINES_TOO_LONG;
      }
      *line = lr->buf + lr->start;
      *len = at - lr->start;
      lr->start = lr->scan = at + 1;
      return CS_LINES_OK;
    }
    lr->scan = lr->end;
    if (lr->eof) {
      if (lr->start == lr->end && !lr->skipping) return CS_LINES_EOF;
      *lineno = ++lr->lineno;
      if (lr->skipping) {
        *len = lr->skipped + (lr->end - lr->start);
        lr->skipping = 0;
        lr->skipped = 0;
        lr->start = lr->scan = lr->end;
        *line = NULL;
        return CS_LINES_TOO_LONG;
      }
      *line = lr->buf + lr->start;
      *len = lr->end - lr->start;
      lr->start = lr->scan = lr->end;
      return CS_LINES_OK;
    }
    int r = fill(lr, err);
    if (r < 0) return CS_LINES_ERROR;
    if (r == 1) {
      /* The buffer holds max_line bytes and no newline: skip to the next. */
      lr->skipping = 1;
      lr->skipped += lr->end - lr->start;
      lr->start = lr->scan = lr->end = 0;
    }
  }
}

uint64_t cs_lines_offset(const cs_lines *lr) {
  z_off_t off = gzoffset(lr->gz);
  return off < 0 ? 0 : (uint64_t)off;
}

uint64_t cs_lines_count(const cs_lines *lr) { return lr->lineno; }

uint64_t cs_lines_size(const cs_lines *lr) { return lr->size; }
