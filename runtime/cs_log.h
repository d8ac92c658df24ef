/* cs_log: one line per event on stderr, with a level and the component
 * that speaks ("[source replay.btc-30s]").
 *
 * Three formats (--log-format): `text` (the default, for people:
 * `2026-11-25T10:00:00.123Z info  [pipeline btc-30s] message`), `logfmt`
 * (`ts=... level=info component="pipeline btc-30s" msg="message"`) and
 * `json` (one object per line: ts, level, component, msg). Credentials in
 * URLs (`scheme://user:password@host`) are masked in every message, as a
 * safety net: plugins never log secrets in the first place.
 *
 * On a terminal, a status line (progress) can stay at the bottom: it is
 * erased before each log line and drawn again after it.
 *
 * Repeated warnings from one place (an invalid input line, a retry) go
 * through a cs_log_limiter: the first few are printed, then at most one per
 * second with the number suppressed meanwhile, so a flood of bad input never
 * floods the log yet every event is counted. Only the loop thread logs. */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdint.h>

typedef enum { CS_LOG_DEBUG = 0, CS_LOG_INFO, CS_LOG_WARN, CS_LOG_ERROR } cs_log_level;

void cs_log_set_level(cs_log_level level);
cs_log_level cs_log_get_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int cs_log_parse_level(const char *s, cs_log_level *out);

void cs_log(cs_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef enum { CS_LOG_TEXT = 0, CS_LOG_LOGFMT, CS_LOG_JSON } cs_log_format;
void cs_log_set_format(cs_log_format f);
cs_log_format cs_log_get_format(void);
/* Parses "text", "logfmt", "json"; returns -1 on anything else. */
int cs_log_parse_format(const char *s, cs_log_format *out);

/* Writes a record given as `key=value ...` pairs (values without spaces,
 * such as the end-of-run summary), whatever the level: as is (text), after
 * ts, level and msg (logfmt), or as one JSON object whose numeric values
 * are numbers (json). */
void cs_log_record(const char *msg, const char *kv);

/* Is stderr a terminal? (cached) */
int cs_log_is_tty(void);
/* Draws `line` as the terminal's status line (cut to the terminal's width),
 * or erases it (NULL). Nothing happens when stderr is not a terminal. */
void cs_log_status(const char *line);
/* Around other output to the same terminal (rows written to a terminal
 * stdout): hide erases the status line, show draws it again. */
void cs_log_status_hide(void);
void cs_log_status_show(void);

typedef struct cs_log_limiter {
  uint32_t burst;      /* lines printed before limiting starts */
  uint32_t printed;
  uint64_t suppressed; /* not printed since the last printed line */
  int64_t last_ms;     /* when the last line was printed (monotonic) */
} cs_log_limiter;

#define CS_LOG_LIMITER_INIT {10, 0, 0, 0}

void cs_log_limited(cs_log_limiter *lim, cs_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prints how many lines were suppressed since the last one, if any. */
void cs_log_limiter_flush(cs_log_limiter *lim, cs_log_level level, const char *component, const char *what);

#define cs_debug(comp, ...)                                        \
  do {                                                             \
    if (cs_log_get_level() <= CS_LOG_DEBUG) cs_log(CS_LOG_DEBUG, comp, __VA_ARGS__); \
  } while (0)
#define cs_info(comp, ...) cs_log(CS_LOG_INFO, comp, __VA_ARGS__)
#define cs_warn(comp, ...) cs_log(CS_LOG_WARN, comp, __VA_ARGS__)
#define cs_error(comp, ...) cs_log(CS_LOG_ERROR, comp, __VA_ARGS__)

#endif
