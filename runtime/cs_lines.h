/* cs_lines: reads a capture one line at a time, streaming, from a plain or
 * gzip file (zlib reads both) or "-" for standard input.
 *
 * Memory is bounded by `max_line`: a longer line is skipped without being
 * held (reported as CS_LINES_TOO_LONG with its length). Every returned line
 * is followed by CS_JSON_PADDING readable bytes, so the JSON parser needs no
 * copy. A final line without '\n' is returned too. Lines are valid until the
 * next call. Blocking reads: meant for local files. */
#ifndef CS_LINES_H
#define CS_LINES_H

#include <stddef.h>
#include <stdint.h>

#include "cs_err.h"

typedef enum { CS_LINES_EOF = 0, CS_LINES_OK = 1, CS_LINES_TOO_LONG = 2, CS_LINES_ERROR = -1 } cs_lines_result;

typedef struct cs_lines cs_lines;

cs_lines *cs_lines_open(const char *path, size_t max_line, cs_err *err);
void cs_lines_close(cs_lines *lr); /* NULL is a no-op */

/* *lineno counts from 1. On CS_LINES_ERROR, err says why (a corrupt gzip
 * stream, an I/O error). */
cs_lines_result cs_lines_next(cs_lines *lr, const char **line, size_t *len, uint64_t *lineno, cs_err *err);

/* Lines returned so far. */
uint64_t cs_lines_count(const cs_lines *lr);

/* Bytes of the file consumed so far (compressed bytes for gzip), and the
 * file's size (0 when unknown, e.g. stdin): for progress. */
uint64_t cs_lines_offset(const cs_lines *lr);
uint64_t cs_lines_size(const cs_lines *lr);

#endif
