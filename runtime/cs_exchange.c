/* cs_exchange: the replay exchange (see cs_exchange.h and docs/exchange.md).
 *
 * Reading order: the capture (scan, per-connection cursor), the stream of
 * one connection (heartbeat ticks and capture lines in capture-time order,
 * paced), the writer (one writable callback sends what is due, never more
 * than the socket takes), the protocol (subscribe/unsubscribe), the
 * connection's life, the server's life, and the `serve-replay` command. */
#define _GNU_SOURCE
#include "cs_exchange.h"

#include <errno.h>
#include <libwebsockets.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cs_buf.h"
#include "cs_intern.h"
#include "cs_json.h"
#include "cs_lines.h"
#include "cs_log.h"
#include "cs_lws.h"
#include "cs_time.h"

#define COMP "exchange"
#define US CS_US_PER_S
#define RX_MAX (1u << 20)   /* longest client request */
#define MAX_CTL 16          /* queued acks/errors per connection */
#define SEND_BUDGET 16      /* writes per writable callback (fairness) */
#define BATCH_BYTES 65536   /* data frames coalesced into one write */
#define BATCH_MSGS 512
#define SKIP_BUDGET 4096    /* unsent capture lines consumed per turn */
#define SLACK_US 1000       /* an item due within 1 ms is due */
#define MAX_SKIPS 64

/* ---- channels and message types ---------------------------------------- */

enum {
  CH_HEARTBEAT,
  CH_MATCHES,
  CH_TICKER,
  CH_TICKER_BATCH,
  CH_LEVEL2,
  CH_LEVEL2_BATCH,
  CH_LEVEL2_50,
  CH_FULL,
  CH_STATUS,
  CH_AUCTION,
  N_CHAN
};
static const char *const chan_names[N_CHAN] = {"heartbeat", "matches",      "ticker",    "ticker_batch", "level2",
                                               "level2_batch", "level2_50", "full",      "status",       "auctionfeed"};
#define BIT(c) (1u << (c))
#define GLOBAL_CHANS BIT(CH_STATUS) /* channels without product ids */
#define L2_CHANS (BIT(CH_LEVEL2) | BIT(CH_LEVEL2_BATCH) | BIT(CH_LEVEL2_50))

/* Which channels carry a capture message of each type. The capture's own
 * subscriptions, heartbeat and error messages are never forwarded: the
 * server makes its own. */
static const struct {
  const char *type;
  uint32_t chans;
} type_chans[] = {
    {"match", BIT(CH_MATCHES) | BIT(CH_FULL)},
    {"last_match", BIT(CH_MATCHES)},
    {"ticker", BIT(CH_TICKER) | BIT(CH_TICKER_BATCH)},
    {"snapshot", L2_CHANS},
    {"l2update", L2_CHANS},
    {"received", BIT(CH_FULL)},
    {"open", BIT(CH_FULL)},
    {"done", BIT(CH_FULL)},
    {"change", BIT(CH_FULL)},
    {"activate", BIT(CH_FULL)},
    {"status", BIT(CH_STATUS)},
    {"auction", BIT(CH_AUCTION)},
};

static int chan_of(const char *s, size_t n) {
  for (int i = 0; i < N_CHAN; i++)
    if (strlen(chan_names[i]) == n && memcmp(chan_names[i], s, n) == 0) return i;
  return -1;
}

/* ---- types ------------------------------------------------------------- */

/* What the server needs from one capture line. */
typedef struct msginfo {
  uint32_t chans;  /* channels that carry it; 0: not served */
  int control;     /* subscriptions/heartbeat/error: never forwarded */
  int trade;       /* match or last_match with a trade_id */
  int64_t prod;    /* product index, -1 none, -2 not a known product */
  int has_time, has_seq;
  int64_t time, tid, seq;
} msginfo;

typedef struct ctl_frame {
  struct ctl_frame *next;
  int close_code; /* > 0: close the connection with it once sent */
  size_t len;
  unsigned char data[]; /* LWS_PRE headroom, then the payload */
} ctl_frame;

typedef struct conn conn;

struct cs_exchange {
  cs_exchange_opts o; /* strings below are our copies */
  char *capture, *host, *cert, *key, *record_path;
  cs_exchange_skip *skips;
  int64_t *skip_prod;   /* product index of each skip, -1 unknown */
  cs_intern *prods;     /* capture products, then --products */
  size_t n_prods;
  uv_loop_t *loop;
  cs_lws *lws;
  struct lws_protocols protocols[2];
  uv_timer_t stop_timer;
  int started, stopping, lws_stopped;
  void (*on_stopping)(void *ud);
  void *ud;
  conn *conns;
  size_t n_conns;
  uint64_t next_id;
  FILE *record;
  int served_to_end; /* a client got the whole capture */
  int live_started;   /* --live: the capture clock runs */
  int64_t live_wall;  /* --live: when it started (monotonic µs): capture time cap_first is due then */
  int done_drop, done_close, done_stall, done_error, done_oversize;
  cs_log_limiter lim_inject, lim_capture;
  struct {
    uint64_t connections, subscribed, bad_requests, sub_timeouts, messages, heartbeats, frames, bytes, skipped_ids,
        drops, closes, stalls, garbage, binary, errors, oversize, loops, invalid_lines, long_lines;
  } n;
  uint64_t cap_lines, cap_msgs;
  int64_t cap_first, cap_last;
};

enum { C_WAIT_SUB, C_STREAM };

/* One client. Created at LWS_CALLBACK_ESTABLISHED and owned by the
 * server's list; the wsi (lws's) points back at it through its opaque user
 * data until conn_detach (CLOSED, WSI_DESTROY or server stop), which
 * unlinks it and closes its timer; the timer's close callback frees it. */
struct conn {
  cs_exchange *ex;
  conn *next;
  struct lws *wsi;
  uint64_t id;
  char peer[64];
  int state;
  int record; /* its text frames go to --record-sent */
  uv_timer_t timer;
  int64_t sub_deadline, linger_deadline, stall_until;
  int64_t join_wall; /* --live: when it subscribed; what was due before is consumed unsent */
  /* subscription */
  size_t n_prods;
  uint32_t *mask;      /* per product: subscribed channels */
  uint32_t *sub_order; /* products in the order first subscribed */
  uint8_t *in_order;
  size_t n_sub;
  uint8_t chan_order[N_CHAN];
  size_t n_chan_order;
  uint32_t global_mask, any_mask;
  /* capture cursor */
  cs_lines *lines;
  cs_json *json;
  int have; /* a line read and parsed, not yet consumed */
  msginfo m;
  const char *line; /* in the reader's buffer: valid until the next read */
  size_t line_len;
  uint64_t round_lines;
  int eof, done;
  /* capture clock and pacing */
  int clock_set, base_set;
  int64_t clock, hb_next, base_t, base_wall;
  size_t hb_cursor;
  int64_t *last_trade, *last_seq;
  /* output */
  cs_buf out; /* LWS_PRE bytes, then the frame (or batch of frames) being sent */
  cs_buf msg; /* a heartbeat being built, or a message kept for the next turn */
  const char *cur; /* the message produce() returned */
  size_t cur_len;
  int msg_pending; /* c->msg holds a produced message not sent yet */
  size_t frag_off, frag_len;
  int frag_binary;
  ctl_frame *ctl_head, *ctl_tail;
  size_t n_ctl;
  cs_buf rx;
  /* misbehaviour and closing */
  int pend_garbage, pend_binary, pend_error, pend_oversize, pend_stall, pend_close, pend_drop;
  int want_close, close_started;
  char close_why[96];
  uint64_t skip_logged; /* bit per --skip-ids range */
  int peer_close_code;
  const char *end_reason;
  /* counters */
  uint64_t sent, heartbeats, frames, bytes, skipped;
};

static int64_t now_us(void) { return cs_time_mono_us(); }

/* ---- the capture ------------------------------------------------------- */

enum { K_TYPE, K_PRODUCT, K_TIME, K_TRADE, K_SEQ };

static int key_index(const char *k, size_t n) {
  switch (n) {
  case 4:
    if (memcmp(k, "type", 4) == 0) return K_TYPE;
    if (memcmp(k, "time", 4) == 0) return K_TIME;
    break;
  case 8:
    if (memcmp(k, "trade_id", 8) == 0) return K_TRADE;
    if (memcmp(k, "sequence", 8) == 0) return K_SEQ;
    break;
  case 10:
    if (memcmp(k, "product_id", 10) == 0) return K_PRODUCT;
    break;
  }
  return -1;
}

/* Parses a capture line. Returns -1 when it is not a JSON object with a
 * string `type` (such lines are skipped and counted). When `add` is set, a
 * new product id is added to the product table (the scan). */
static int parse_line(cs_exchange *ex, cs_json *js, const char *line, size_t len, int padded, int add, msginfo *m) {
  memset(m, 0, sizeof *m);
  m->prod = -1;
  cs_json_val root, v[5];
  const char *why;
  if (cs_json_parse(js, line, len, padded, &root, &why) != 0 || cs_json_type_of(&root) != CS_JSON_OBJECT) return -1;
  uint32_t seen = 0, dup = 0;
  cs_json_obj_pick(&root, key_index, v, &seen, &dup);
  if (!(seen & BIT(K_TYPE)) || cs_json_type_of(&v[K_TYPE]) != CS_JSON_STRING) return -1;
  size_t tl;
  const char *t = cs_json_str(&v[K_TYPE], &tl);
  for (size_t i = 0; i < sizeof type_chans / sizeof type_chans[0]; i++)
    if (strlen(type_chans[i].type) == tl && memcmp(type_chans[i].type, t, tl) == 0) {
      m->chans = type_chans[i].chans;
      m->trade = i < 2;
      break;
    }
  if ((tl == 13 && memcmp(t, "subscriptions", 13) == 0) || (tl == 9 && memcmp(t, "heartbeat", 9) == 0) ||
      (tl == 5 && memcmp(t, "error", 5) == 0))
    m->control = 1;
  if ((seen & BIT(K_PRODUCT)) && cs_json_type_of(&v[K_PRODUCT]) == CS_JSON_STRING) {
    size_t pl;
    const char *p = cs_json_str(&v[K_PRODUCT], &pl);
    /* The scan adds every capture product; later lookups find them (a
     * product the scan did not see is not servable: -2). */
    int64_t id = cs_intern_id(ex->prods, p, pl);
    m->prod = id >= 0 && (add || (size_t)id < ex->n_prods) ? id : -2;
  }
  if ((seen & BIT(K_TIME)) && cs_json_type_of(&v[K_TIME]) == CS_JSON_STRING) {
    size_t sl;
    const char *s = cs_json_str(&v[K_TIME], &sl);
    m->has_time = cs_time_parse_rfc3339(s, sl, &m->time, &why) == 0;
  }
  if ((seen & BIT(K_SEQ)) && cs_json_type_of(&v[K_SEQ]) == CS_JSON_INT) {
    m->has_seq = 1;
    m->seq = cs_json_int(&v[K_SEQ]);
  }
  if (m->trade) {
    if ((seen & BIT(K_TRADE)) && cs_json_type_of(&v[K_TRADE]) == CS_JSON_INT)
      m->tid = cs_json_int(&v[K_TRADE]);
    else
      m->trade = 0;
  }
  return 0;
}

/* Reads the whole capture once at create: its products, its time span. */
static int scan_capture(cs_exchange *ex, cs_err *err) {
  cs_lines *lr = cs_lines_open(ex->capture, ex->o.max_line, err);
  if (!lr) return -1;
  cs_json *js = cs_json_create();
  if (!js) {
    cs_lines_close(lr);
    return cs_err_set(err, "out of memory");
  }
  const char *line;
  size_t len;
  uint64_t lineno;
  cs_lines_result r;
  while ((r = cs_lines_next(lr, &line, &len, &lineno, err)) != CS_LINES_EOF) {
    if (r == CS_LINES_ERROR) {
      cs_warn(COMP, "%s: the capture ends early after line %llu: %s", ex->capture,
              (unsigned long long)cs_lines_count(lr), err->msg);
      break;
    }
    ex->cap_lines++;
    if (r == CS_LINES_TOO_LONG || len == 0) continue;
    msginfo m;
    if (parse_line(ex, js, line, len, 1, 1, &m) != 0) continue;
    ex->cap_msgs++;
    if (m.has_time) {
      if (!ex->cap_first) ex->cap_first = m.time;
      ex->cap_last = m.time;
    }
  }
  cs_json_destroy(js);
  cs_lines_close(lr);
  return 0;
}

/* ---- one connection's stream ------------------------------------------- */

static void conn_close_reader(conn *c) {
  cs_lines_close(c->lines);
  c->lines = NULL;
  c->have = 0;
}

static int conn_open_reader(conn *c, cs_err *err) {
  conn_close_reader(c);
  if (!(c->lines = cs_lines_open(c->ex->capture, c->ex->o.max_line, err))) return -1;
  c->eof = 0;
  c->round_lines = 0;
  c->clock_set = c->base_set = 0;
  c->hb_cursor = 0;
  for (size_t i = 0; i < c->n_prods; i++) c->last_trade[i] = c->last_seq[i] = 0;
  return 0;
}

/* Reads the next usable capture line into c->m; 0 at the end. */
static int read_line(conn *c) {
  cs_exchange *ex = c->ex;
  cs_err err;
  for (;;) {
    const char *line;
    size_t len;
    uint64_t lineno;
    cs_lines_result r = cs_lines_next(c->lines, &line, &len, &lineno, &err);
    if (r == CS_LINES_EOF) return 0;
    if (r == CS_LINES_ERROR) {
      cs_log_limited(&ex->lim_capture, CS_LOG_WARN, COMP, "client %llu: the capture ends early after line %llu: %s",
                     (unsigned long long)c->id, (unsigned long long)cs_lines_count(c->lines), err.msg);
      return 0;
    }
    c->round_lines++;
    if (len == 0) continue;
    if (r == CS_LINES_TOO_LONG) {
      ex->n.long_lines++;
      cs_log_limited(&ex->lim_capture, CS_LOG_WARN, COMP,
                     "capture line %llu: %zu bytes, longer than --max-line: skipped", (unsigned long long)lineno, len);
      continue;
    }
    if (parse_line(ex, c->json, line, len, 1, 0, &c->m) != 0) {
      ex->n.invalid_lines++;
      cs_log_limited(&ex->lim_capture, CS_LOG_WARN, COMP, "capture line %llu is not a JSON object with a type: skipped",
                     (unsigned long long)lineno);
      continue;
    }
    c->line = line;
    c->line_len = len;
    c->have = 1;
    return 1;
  }
}

/* The wall time (monotonic µs) when capture time t is due. */
static int64_t pace(conn *c, int64_t t, int64_t now) {
  cs_exchange *ex = c->ex;
  if (ex->o.live) { /* one clock for every connection, from the first subscribe on */
    double due = (double)ex->live_wall + (double)(t - ex->cap_first) / ex->o.speed;
    return due < (double)(INT64_MAX / 2) ? (int64_t)due : INT64_MAX / 2;
  }
  if (!c->base_set) {
    c->base_set = 1;
    c->base_t = t;
    c->base_wall = now;
  }
  double speed = c->ex->o.speed;
  if (c->eof && speed <= 0) speed = 1; /* after the end the clock runs with the wall clock */
  if (speed <= 0) return now;
  double due = (double)c->base_wall + (double)(t - c->base_t) / speed;
  return due < (double)(INT64_MAX / 2) ? (int64_t)due : INT64_MAX / 2; /* a tiny speed: "never" */
}

static void set_clock(conn *c, int64_t t) {
  if (!c->clock_set) {
    c->clock_set = 1;
    c->clock = t;
    c->hb_next = t + US;
  } else if (t > c->clock) {
    c->clock = t;
  }
  /* Without a heartbeat subscription the ticks keep step with the clock. */
  if (!(c->any_mask & BIT(CH_HEARTBEAT)) && c->hb_next < c->clock)
    c->hb_next += ((c->clock - c->hb_next) / US + 1) * US;
}

static void at_eof(conn *c, int64_t now) {
  cs_exchange *ex = c->ex;
  if (ex->o.loop && c->round_lines > 0) {
    cs_err err;
    ex->n.loops++;
    cs_debug(COMP, "client %llu: end of capture, starting again (--loop)", (unsigned long long)c->id);
    if (conn_open_reader(c, &err) == 0 && read_line(c)) return;
    if (!c->lines) cs_warn(COMP, "client %llu: cannot reopen the capture: %s", (unsigned long long)c->id, err.msg);
  }
  c->eof = 1;
  /* From now on the capture clock advances with the wall clock × speed
   * (live: it always did, on the server's one clock). */
  if (!c->clock_set) set_clock(c, ex->o.live ? ex->cap_last : cs_time_wall_us());
  if (!ex->o.live) {
    c->base_set = 1;
    c->base_t = c->clock;
    c->base_wall = now;
  }
  if (!c->done) {
    c->done = 1;
    if (ex->o.linger_s >= 0) c->linger_deadline = now + (int64_t)(ex->o.linger_s * US);
    cs_info(COMP, "client %llu: end of capture after %llu messages%s", (unsigned long long)c->id,
            (unsigned long long)c->sent,
            c->any_mask & BIT(CH_HEARTBEAT) ? "; heartbeats go on" : "");
  }
}

/* The next item of the stream: a heartbeat tick or the pending capture
 * line, whichever comes first in capture time (tick T follows every line
 * stamped <= T). Returns 0 when there is none (end of capture, no
 * heartbeats), else 1 with its due time and kind. */
static int next_item(conn *c, int64_t now, int64_t *due, int *is_hb) {
  if (!c->have && !c->eof && !read_line(c)) at_eof(c, now);
  int hb = (c->any_mask & BIT(CH_HEARTBEAT)) && c->clock_set;
  if (c->have) {
    int timed = c->m.has_time || c->clock_set;
    int64_t t = 0;
    if (c->m.has_time)
      t = c->clock_set && c->clock > c->m.time ? c->clock : c->m.time;
    else if (c->clock_set)
      t = c->clock;
    if (!hb || !timed || t <= c->hb_next) {
      *is_hb = 0;
      /* Live: a line before the capture's first time is due at the start. */
      *due = timed ? pace(c, t, now) : c->ex->o.live ? c->ex->live_wall : now;
      return 1;
    }
  }
  if (!hb) return 0;
  *is_hb = 1;
  *due = pace(c, c->hb_next, now);
  return 1;
}

/* Zero bytes for LWS_PRE headroom and simdjson padding. */
static const unsigned char pre_zero[LWS_PRE > CS_JSON_PADDING ? LWS_PRE : CS_JSON_PADDING];

static void out_begin(conn *c) {
  cs_buf_reset(&c->out);
  cs_buf_append(&c->out, pre_zero, LWS_PRE);
}

static void buf_time(cs_buf *b, int64_t us) {
  int64_t s = cs_time_floor_div(us, US);
  char t[CS_TIME_RFC3339_LEN + 1];
  size_t n = cs_time_format_rfc3339(s * US, t);
  cs_buf_printf(b, "\"%.*s.%06lldZ\"", (int)(n - 1), t, (long long)(us - s * US));
}

static int skipped_id(conn *c, const msginfo *m) {
  cs_exchange *ex = c->ex;
  for (size_t i = 0; i < ex->o.n_skips; i++) {
    if (ex->skip_prod[i] != m->prod || m->tid < ex->skips[i].from || m->tid > ex->skips[i].to) continue;
    if (!(c->skip_logged & (UINT64_C(1) << i))) {
      c->skip_logged |= UINT64_C(1) << i;
      cs_info(COMP, "client %llu: misbehaving: not sending %s trade ids %lld-%lld (--skip-ids)",
              (unsigned long long)c->id, ex->skips[i].product, (long long)ex->skips[i].from,
              (long long)ex->skips[i].to);
    }
    return 1;
  }
  return 0;
}

enum { P_NONE, P_FRAME, P_WAIT, P_YIELD };

/* Consumes what is due: the next message in c->cur/cur_len (P_FRAME: the
 * capture line in the reader's buffer, or a heartbeat built in c->msg;
 * valid until the next produce), or says
 * when to come back (P_WAIT, *wake), or that there is nothing more (P_NONE),
 * or that it consumed many unsent lines and should yield (P_YIELD). */
static int produce(conn *c, int64_t now, int64_t *wake) {
  cs_exchange *ex = c->ex;
  for (int budget = SKIP_BUDGET; budget > 0; budget--) {
    int64_t due;
    int is_hb;
    if (!next_item(c, now, &due, &is_hb)) return P_NONE;
    if (due > now + SLACK_US) {
      *wake = due;
      return P_WAIT;
    }
    /* Live: what was due before this client subscribed went by without it
     * (the heartbeats' last ids still count those trades: a gap). */
    int joining = ex->o.live && due < c->join_wall;
    if (is_hb && joining) {
      c->hb_cursor = 0;
      set_clock(c, c->hb_next);
      c->hb_next += US;
      continue;
    }
    if (is_hb) {
      /* One heartbeat per subscribed product per tick, in subscription order. */
      while (c->hb_cursor < c->n_sub && !(c->mask[c->sub_order[c->hb_cursor]] & BIT(CH_HEARTBEAT))) c->hb_cursor++;
      if (c->hb_cursor >= c->n_sub) {
        c->hb_cursor = 0;
        set_clock(c, c->hb_next);
        c->hb_next += US;
        continue;
      }
      uint32_t p = c->sub_order[c->hb_cursor++];
      set_clock(c, c->hb_next);
      const char *name = cs_intern_name(ex->prods, p);
      cs_buf *b = &c->msg;
      cs_buf_reset(b);
      cs_buf_printf(b, "{\"type\":\"heartbeat\",\"last_trade_id\":%lld,\"product_id\":", (long long)c->last_trade[p]);
      cs_buf_json_str(b, name, strlen(name));
      cs_buf_printf(b, ",\"sequence\":%lld,\"time\":", (long long)c->last_seq[p]);
      buf_time(b, c->hb_next);
      cs_buf_puts(b, "}");
      c->heartbeats++;
      ex->n.heartbeats++;
      c->cur = b->data;
      c->cur_len = b->len;
      return b->oom ? P_NONE : P_FRAME;
    }
    msginfo *m = &c->m;
    c->have = 0;
    if (m->has_time) set_clock(c, m->time);
    int known = m->prod >= 0 && (size_t)m->prod < c->n_prods;
    if (known && m->has_seq && m->seq > c->last_seq[m->prod]) c->last_seq[m->prod] = m->seq;
    uint32_t subs = known ? c->mask[m->prod] : (m->prod == -1 ? c->global_mask : 0);
    int send = !joining && !m->control && (m->chans & subs);
    if (known && m->trade) {
      /* Skipped ids count as passed: they were "lost in transit". */
      if (m->tid > c->last_trade[m->prod]) c->last_trade[m->prod] = m->tid;
      if (send && ex->o.n_skips && skipped_id(c, m)) {
        c->skipped++;
        ex->n.skipped_ids++;
        send = 0;
      }
    }
    if (!send) continue;
    c->cur = c->line;
    c->cur_len = c->line_len;
    return P_FRAME;
  }
  return P_YIELD;
}

/* ---- writing ----------------------------------------------------------- */

static void record_frame(conn *c, const void *p, size_t len) {
  FILE *f = c->ex->record;
  if (!c->record || !f) return;
  fwrite(p, 1, len, f);
  fputc('\n', f);
  fflush(f);
}

static int write_piece(conn *c, unsigned char *p, size_t len, int flags) {
  int n = lws_write(c->wsi, p, len, (enum lws_write_protocol)flags);
  if (n < 0) {
    cs_info(COMP, "client %llu: write failed: connection lost", (unsigned long long)c->id);
    return -1;
  }
  return 0;
}

/* Sends the next fragment of the frame in c->out. */
static int send_fragment(conn *c) {
  size_t step = c->ex->o.fragment_size, left = c->frag_len - c->frag_off;
  size_t n = left < step ? left : step;
  int first = c->frag_off == 0, last = n == left;
  /* lws writes each fragment's header into the LWS_PRE bytes before it:
   * payload already sent (or copied by lws), so that is safe. */
  unsigned char *p = (unsigned char *)c->out.data + LWS_PRE + c->frag_off;
  if (write_piece(c, p, n, lws_write_ws_flags(c->frag_binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT, first, last)) != 0)
    return -1;
  c->frag_off += n;
  if (last) c->frag_off = c->frag_len = 0;
  return 0;
}

/* Sends the frame in c->out (whole, or its first fragment). */
static int send_out(conn *c, int binary) {
  cs_exchange *ex = c->ex;
  if (c->out.oom) {
    cs_error(COMP, "client %llu: out of memory building a frame", (unsigned long long)c->id);
    return -1;
  }
  size_t len = c->out.len - LWS_PRE;
  unsigned char *p = (unsigned char *)c->out.data + LWS_PRE;
  if (!binary) record_frame(c, p, len);
  c->frames++;
  c->bytes += len;
  ex->n.frames++;
  ex->n.bytes += len;
  if (ex->o.fragment_size && len > ex->o.fragment_size) {
    c->frag_off = 0;
    c->frag_len = len;
    c->frag_binary = binary;
    return send_fragment(c);
  }
  return write_piece(c, p, len, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
}

static int oneshot(conn *c, int *done) {
  if (c->ex->o.every_connection) return 1;
  if (*done) return 0;
  *done = 1;
  return 1;
}

/* Appends one complete text frame as a server sends it (FIN, opcode 1, no
 * mask) to a batch. */
static void batch_frame(cs_buf *b, const char *p, size_t n) {
  unsigned char h[10];
  size_t hl;
  h[0] = 0x81;
  if (n < 126) {
    h[1] = (unsigned char)n;
    hl = 2;
  } else if (n <= 0xffff) {
    h[1] = 126;
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    hl = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    hl = 10;
  }
  cs_buf_append(b, h, hl);
  cs_buf_append(b, p, n);
}

static void after_message(conn *c);

static int misbehaviour_pending(const conn *c) {
  return c->pend_garbage || c->pend_binary || c->pend_error || c->pend_oversize || c->pend_drop || c->pend_close ||
         c->pend_stall;
}

static void count_message(conn *c) {
  c->sent++;
  c->ex->n.messages++;
  after_message(c);
}

/* Sends the data messages due now. They are framed here and coalesced: up
 * to BATCH_BYTES of frames go out in one lws_write (LWS_WRITE_HTTP: raw
 * bytes on the connection), one system call instead of one per message.
 * (Frames of the capture are never compressed: the server offers no
 * extension.) With --fragment-size, a longer message goes alone, in
 * fragments. Returns -1 (connection lost), 0 (nothing due), 1 (sent), 2
 * (consumed many unsent lines: yield). */
static int send_data(conn *c, int64_t now) {
  cs_exchange *ex = c->ex;
  size_t frag = ex->o.fragment_size;
  if (c->msg_pending) {
    c->msg_pending = 0;
    out_begin(c);
    cs_buf_append(&c->out, c->msg.data, c->msg.len);
    if (send_out(c, 0) != 0) return -1;
    count_message(c);
    return 1;
  }
  out_begin(c);
  size_t n = 0;
  int r = P_NONE;
  int64_t wake;
  while (c->out.len - LWS_PRE < BATCH_BYTES && n < BATCH_MSGS && !misbehaviour_pending(c)) {
    if ((r = produce(c, now, &wake)) != P_FRAME) break;
    if (frag && c->cur_len > frag) {
      if (n == 0) {
        cs_buf_append(&c->out, c->cur, c->cur_len);
        if (send_out(c, 0) != 0) return -1;
        count_message(c);
        return 1;
      }
      if (c->cur != c->msg.data) {
        cs_buf_reset(&c->msg);
        cs_buf_append(&c->msg, c->cur, c->cur_len);
      }
      c->msg_pending = 1;
      break;
    }
    record_frame(c, c->cur, c->cur_len);
    batch_frame(&c->out, c->cur, c->cur_len);
    c->frames++;
    c->bytes += c->cur_len;
    ex->n.frames++;
    ex->n.bytes += c->cur_len;
    n++;
    count_message(c);
  }
  if (c->out.oom || c->msg.oom) {
    cs_error(COMP, "client %llu: out of memory building frames", (unsigned long long)c->id);
    return -1;
  }
  if (n && write_piece(c, (unsigned char *)c->out.data + LWS_PRE, c->out.len - LWS_PRE, LWS_WRITE_HTTP) != 0)
    return -1;
  if (r == P_YIELD) return 2;
  return n || c->msg_pending ? 1 : 0;
}

/* After data message number c->sent: arm the misbehaviours due now. */
static void after_message(conn *c) {
  cs_exchange *ex = c->ex;
  const cs_exchange_opts *o = &ex->o;
  uint64_t k = c->sent;
  if (o->garbage_every && k % o->garbage_every == 0) c->pend_garbage++;
  if (o->binary_every && k % o->binary_every == 0) c->pend_binary++;
  if (o->error_after == k && oneshot(c, &ex->done_error)) c->pend_error = 1;
  if (o->oversize_after == k && oneshot(c, &ex->done_oversize)) c->pend_oversize = 1;
  if (o->stall_after == k && oneshot(c, &ex->done_stall)) c->pend_stall = 1;
  if (o->close_after == k && oneshot(c, &ex->done_close)) c->pend_close = 1;
  if (o->drop_after == k && (o->drop_every || oneshot(c, &ex->done_drop))) c->pend_drop = 1;
}

/* Builds the next injected frame, if one is pending; returns 1 (text),
 * 2 (binary) or 0. */
static int inject(conn *c) {
  cs_exchange *ex = c->ex;
  unsigned long long id = (unsigned long long)c->id, k = (unsigned long long)c->sent;
  out_begin(c);
  if (c->pend_garbage) {
    c->pend_garbage--;
    ex->n.garbage++;
    cs_buf_printf(&c->out, "garbage frame after message %llu: this is not JSON {", k);
    cs_log_limited(&ex->lim_inject, CS_LOG_INFO, COMP,
                   "client %llu: misbehaving: garbage text frame after message %llu", id, k);
    return 1;
  }
  if (c->pend_binary) {
    static const unsigned char bin[] = {0x00, 0x01, 0xfe, 0xff, 'b', 'i', 'n', 'a', 'r', 'y', 0x80, 0xc0};
    c->pend_binary--;
    ex->n.binary++;
    cs_buf_append(&c->out, bin, sizeof bin);
    cs_log_limited(&ex->lim_inject, CS_LOG_INFO, COMP, "client %llu: misbehaving: binary frame after message %llu", id,
                   k);
    return 2;
  }
  if (c->pend_error) {
    c->pend_error = 0;
    ex->n.errors++;
    cs_buf_printf(&c->out,
                  "{\"type\":\"error\",\"message\":\"injected error\",\"reason\":\"--error-after %llu "
                  "(cstream replay exchange)\"}",
                  k);
    cs_info(COMP, "client %llu: misbehaving: error message after message %llu", id, k);
    return 1;
  }
  if (c->pend_oversize) {
    c->pend_oversize = 0;
    ex->n.oversize++;
    static const char head[] = "{\"type\":\"oversize\",\"padding\":\"", tail[] = "\"}";
    size_t total = ex->o.oversize_bytes, pad = total - (sizeof head - 1) - (sizeof tail - 1);
    cs_buf_puts(&c->out, head);
    char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    for (size_t left = pad; left > 0;) {
      size_t n = left < sizeof chunk ? left : sizeof chunk;
      cs_buf_append(&c->out, chunk, n);
      left -= n;
    }
    cs_buf_puts(&c->out, tail);
    cs_info(COMP, "client %llu: misbehaving: one %zu-byte text frame after message %llu", id, total, k);
    return 1;
  }
  return 0;
}

static void conn_schedule(conn *c);

/* Closes the connection at once, without a close frame. */
static int drop_now(conn *c) {
  cs_exchange *ex = c->ex;
  ex->n.drops++;
  c->end_reason = "dropped (--drop-after, no close frame)";
  cs_info(COMP, "client %llu: misbehaving: dropping the TCP connection after %llu messages, no close frame",
          (unsigned long long)c->id, (unsigned long long)c->sent);
  int fd = lws_get_socket_fd(c->wsi);
  if (fd >= 0) shutdown(fd, SHUT_RDWR);
  return -1;
}

/* A clean close: the close frame, then (next writable callback, once the
 * frame is on the wire) the TCP connection. lws 4.1.6's own polite close
 * does not help here: returning -1 from the WRITEABLE callback, or a
 * timeout (even PENDING_TIMEOUT_USER_OK), marks the socket unusable and
 * lws drops it without sending the close frame set by lws_close_reason. So
 * the frame is written as opcode 8 with lws_write (LWS_WRITE_CLOSE, which
 * lws-write.h keeps out of its public enum). */
#define CS_LWS_WRITE_CLOSE 4
static int close_now(conn *c, int code, const char *why) {
  if (c->close_started) return -1; /* the close frame went out: now the TCP connection */
  c->close_started = 1;
  uv_timer_stop(&c->timer);
  unsigned char buf[LWS_PRE + 125];
  size_t wl = strlen(why);
  if (wl > 123) wl = 123;
  buf[LWS_PRE] = (unsigned char)(code >> 8);
  buf[LWS_PRE + 1] = (unsigned char)code;
  memcpy(buf + LWS_PRE + 2, why, wl);
  if (lws_write(c->wsi, buf + LWS_PRE, wl + 2, (enum lws_write_protocol)CS_LWS_WRITE_CLOSE) < 0) return -1;
  if (!c->end_reason) c->end_reason = "closed by the server";
  lws_callback_on_writable(c->wsi);
  return 0;
}

/* LWS_CALLBACK_SERVER_WRITEABLE: sends what is due, as long as the socket
 * takes it without lws having to buffer. Returns -1 to close. */
static int on_writable(conn *c) {
  cs_exchange *ex = c->ex;
  if (c->close_started) return close_now(c, 0, "");
  for (int budget = SEND_BUDGET; budget > 0; budget--) {
    int64_t now = now_us();
    if (c->frag_len) {
      if (send_fragment(c) != 0) return -1;
    } else if (c->ctl_head) {
      ctl_frame *f = c->ctl_head;
      c->ctl_head = f->next;
      if (!c->ctl_head) c->ctl_tail = NULL;
      c->n_ctl--;
      record_frame(c, f->data + LWS_PRE, f->len);
      c->frames++;
      c->bytes += f->len;
      ex->n.frames++;
      ex->n.bytes += f->len;
      int rc = write_piece(c, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT);
      int code = f->close_code;
      free(f);
      if (rc != 0) return -1;
      if (code > 0) {
        c->want_close = code;
        if (!c->close_why[0]) snprintf(c->close_why, sizeof c->close_why, "Failed to subscribe");
      }
    } else if (c->want_close) {
      return close_now(c, c->want_close, c->close_why);
    } else if (c->state != C_STREAM) {
      break;
    } else if (c->pend_garbage || c->pend_binary || c->pend_error || c->pend_oversize) {
      int kind = inject(c);
      if (send_out(c, kind == 2) != 0) return -1;
    } else if (c->pend_drop) {
      return drop_now(c);
    } else if (c->pend_close) {
      ex->n.closes++;
      c->pend_close = 0;
      cs_info(COMP, "client %llu: misbehaving: closing with code %d after %llu messages (--close-after)",
              (unsigned long long)c->id, ex->o.close_code, (unsigned long long)c->sent);
      c->end_reason = "closed (--close-after)";
      return close_now(c, ex->o.close_code, "closed by the replay exchange (--close-after)");
    } else if (c->pend_stall) {
      c->pend_stall = 0;
      ex->n.stalls++;
      c->stall_until = now + (int64_t)(ex->o.stall_s * US);
      cs_info(COMP, "client %llu: misbehaving: stalling %.3g s after %llu messages (no data, no heartbeats)",
              (unsigned long long)c->id, ex->o.stall_s, (unsigned long long)c->sent);
      break;
    } else if (c->stall_until > now) {
      break;
    } else {
      if (c->stall_until) {
        c->stall_until = 0;
        cs_info(COMP, "client %llu: stall over, sending again", (unsigned long long)c->id);
      }
      int r = send_data(c, now);
      if (r < 0) return -1;
      if (r == 2) {
        lws_callback_on_writable(c->wsi);
        return 0;
      }
      if (r == 0) break;
    }
    /* lws kept what the socket did not take: wait until it is out. */
    if (lws_partial_buffered(c->wsi)) {
      lws_callback_on_writable(c->wsi);
      return 0;
    }
  }
  conn_schedule(c);
  return 0;
}

/* ---- timers and scheduling --------------------------------------------- */

static void on_conn_timer(uv_timer_t *t);

/* Decides what the connection waits for: the socket (something is due) or
 * the timer (the next due time, a stall's end, a deadline). */
static void conn_schedule(conn *c) {
  if (!c->wsi || c->close_started) return;
  int64_t now = now_us(), wake = INT64_MAX;
  int writable = c->frag_len || c->ctl_head || c->want_close;
  if (!writable && c->state == C_STREAM) {
    if (misbehaviour_pending(c))
      writable = 1;
    else if (c->stall_until > now)
      wake = c->stall_until;
    else {
      int64_t due;
      int is_hb;
      if (c->stall_until || c->msg_pending) writable = 1; /* the stall is over: say so; a message waits */
      else if (next_item(c, now, &due, &is_hb)) {
        if (due <= now + SLACK_US)
          writable = 1;
        else
          wake = due;
      }
    }
  }
  if (writable) {
    uv_timer_stop(&c->timer);
    lws_callback_on_writable(c->wsi);
    return;
  }
  if (c->state == C_WAIT_SUB && c->sub_deadline && c->sub_deadline < wake) wake = c->sub_deadline;
  if (c->linger_deadline && c->linger_deadline < wake) wake = c->linger_deadline;
  if (wake == INT64_MAX) {
    uv_timer_stop(&c->timer);
    return;
  }
  uint64_t ms = wake > now ? (uint64_t)((wake - now + 999) / 1000) : 0;
  uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

static void on_conn_timer(uv_timer_t *t) {
  conn *c = t->data;
  cs_exchange *ex = c->ex;
  if (!c->wsi) return;
  int64_t now = now_us();
  if (c->state == C_WAIT_SUB && c->sub_deadline && now >= c->sub_deadline && !c->want_close) {
    ex->n.sub_timeouts++;
    cs_warn(COMP, "client %llu: no subscribe message within %.3g s: closing", (unsigned long long)c->id,
            ex->o.subscribe_timeout_s);
    c->want_close = LWS_CLOSE_STATUS_POLICY_VIOLATION;
    snprintf(c->close_why, sizeof c->close_why, "no subscribe message within %.3g s", ex->o.subscribe_timeout_s);
    c->end_reason = "subscribe timeout";
  }
  if (c->linger_deadline && now >= c->linger_deadline && !c->want_close) {
    cs_info(COMP, "client %llu: --linger over: closing", (unsigned long long)c->id);
    c->want_close = LWS_CLOSE_STATUS_NORMAL;
    snprintf(c->close_why, sizeof c->close_why, "end of the capture");
    c->end_reason = "linger over";
  }
  conn_schedule(c);
}

/* ---- the protocol ------------------------------------------------------ */

static int queue_ctl(conn *c, const char *p, size_t len, int close_code) {
  if (c->n_ctl >= MAX_CTL) return -1;
  ctl_frame *f = malloc(sizeof *f + LWS_PRE + len);
  if (!f) return -1;
  f->next = NULL;
  f->close_code = close_code;
  f->len = len;
  memcpy(f->data + LWS_PRE, p, len);
  if (c->ctl_tail)
    c->ctl_tail->next = f;
  else
    c->ctl_head = f;
  c->ctl_tail = f;
  c->n_ctl++;
  return 0;
}

/* An error message in the real feed's words, then a normal close. */
static void reject(conn *c, const char *message, const char *reason) {
  cs_exchange *ex = c->ex;
  ex->n.bad_requests++;
  cs_warn(COMP, "client %llu: %s: %s", (unsigned long long)c->id, message, reason);
  cs_buf b;
  cs_buf_init(&b);
  cs_buf_puts(&b, "{\"type\":\"error\",\"message\":");
  cs_buf_json_str(&b, message, strlen(message));
  cs_buf_puts(&b, ",\"reason\":");
  cs_buf_json_str(&b, reason, strlen(reason));
  cs_buf_puts(&b, "}");
  snprintf(c->close_why, sizeof c->close_why, "%s", message);
  c->end_reason = "bad request";
  if (b.oom || queue_ctl(c, b.data, b.len, LWS_CLOSE_STATUS_NORMAL) != 0) c->want_close = LWS_CLOSE_STATUS_NORMAL;
  cs_buf_free(&b);
}

static void send_ack(conn *c) {
  cs_exchange *ex = c->ex;
  cs_buf b;
  cs_buf_init(&b);
  cs_buf_puts(&b, "{\"type\":\"subscriptions\",\"channels\":[");
  int first = 1;
  for (size_t k = 0; k < c->n_chan_order; k++) {
    int ch = c->chan_order[k];
    uint32_t bit = BIT(ch);
    int any = (bit & GLOBAL_CHANS) ? (c->global_mask & bit) != 0 : 0;
    for (size_t i = 0; i < c->n_sub && !any; i++) any = (c->mask[c->sub_order[i]] & bit) != 0;
    if (!any) continue;
    cs_buf_printf(&b, "%s{\"name\":\"%s\",\"product_ids\":[", first ? "" : ",", chan_names[ch]);
    first = 0;
    int pf = 1;
    for (size_t i = 0; i < c->n_sub; i++) {
      uint32_t p = c->sub_order[i];
      if (!(c->mask[p] & bit)) continue;
      const char *name = cs_intern_name(ex->prods, p);
      if (!pf) cs_buf_puts(&b, ",");
      pf = 0;
      cs_buf_json_str(&b, name, strlen(name));
    }
    cs_buf_puts(&b, "]}");
  }
  cs_buf_puts(&b, "]}");
  if (b.oom || queue_ctl(c, b.data, b.len, 0) != 0) {
    cs_warn(COMP, "client %llu: cannot queue the subscriptions message: closing", (unsigned long long)c->id);
    c->want_close = LWS_CLOSE_STATUS_UNEXPECTED_CONDITION;
  } else {
    cs_info(COMP, "client %llu: %.*s", (unsigned long long)c->id, (int)(b.len > 400 ? 400 : b.len), b.data);
  }
  cs_buf_free(&b);
}

static int64_t find_product(cs_exchange *ex, const char *s, size_t n) {
  for (size_t i = 0; i < ex->n_prods; i++) {
    const char *name = cs_intern_name(ex->prods, (uint32_t)i);
    if (strlen(name) == n && memcmp(name, s, n) == 0) return (int64_t)i;
  }
  return -1;
}

typedef struct pairs {
  int32_t (*v)[2]; /* (channel, product or -1) */
  size_t n, cap;
} pairs;

static int pairs_add(pairs *ps, int ch, int64_t p) {
  if (ps->n == ps->cap) {
    size_t nc = ps->cap ? ps->cap * 2 : 32;
    void *nv = realloc(ps->v, nc * sizeof ps->v[0]);
    if (!nv) return -1;
    ps->v = nv;
    ps->cap = nc;
  }
  ps->v[ps->n][0] = ch;
  ps->v[ps->n][1] = (int32_t)p;
  ps->n++;
  return 0;
}

/* Reads a product_ids array into `prods` (indices); -1 with `why` set. */
static int read_products(cs_exchange *ex, const cs_json_val *arr, int64_t **prods, size_t *n, char *why, size_t wl) {
  if (cs_json_type_of(arr) != CS_JSON_ARRAY) {
    snprintf(why, wl, "product_ids must be an array of strings");
    return -1;
  }
  cs_json_iter it;
  cs_json_val v;
  cs_json_arr_iter(arr, &it);
  while (cs_json_arr_next(&it, &v)) {
    if (cs_json_type_of(&v) != CS_JSON_STRING) {
      snprintf(why, wl, "product_ids must be an array of strings");
      return -1;
    }
    size_t sl;
    const char *s = cs_json_str(&v, &sl);
    int64_t p = find_product(ex, s, sl);
    if (p < 0) {
      snprintf(why, wl, "%.*s is not a valid product", (int)(sl > 64 ? 64 : sl), s);
      return -1;
    }
    int64_t *np = realloc(*prods, (*n + 1) * sizeof **prods);
    if (!np) {
      snprintf(why, wl, "out of memory");
      return -1;
    }
    *prods = np;
    (*prods)[(*n)++] = p;
  }
  return 0;
}

static void apply(conn *c, const pairs *ps, int subscribe) {
  for (size_t i = 0; i < ps->n; i++) {
    int ch = ps->v[i][0];
    int64_t p = ps->v[i][1];
    uint32_t bit = BIT(ch);
    if (subscribe) {
      size_t k = 0;
      while (k < c->n_chan_order && c->chan_order[k] != ch) k++;
      if (k == c->n_chan_order) c->chan_order[c->n_chan_order++] = (uint8_t)ch;
      if (p < 0) {
        c->global_mask |= bit;
        continue;
      }
      if (!c->in_order[p]) {
        c->in_order[p] = 1;
        c->sub_order[c->n_sub++] = (uint32_t)p;
      }
      c->mask[p] |= bit;
    } else if (p < 0) {
      c->global_mask &= ~bit;
    } else if (p == INT32_MAX) { /* every product */
      for (size_t k = 0; k < c->n_prods; k++) c->mask[k] &= ~bit;
    } else {
      c->mask[p] &= ~bit;
    }
  }
  c->any_mask = c->global_mask;
  for (size_t i = 0; i < c->n_prods; i++) c->any_mask |= c->mask[i];
}

/* A complete client message. */
static void handle_request(conn *c, char *buf, size_t len) {
  cs_exchange *ex = c->ex;
  char why[160] = "";
  cs_json_val root, v, type = {{0}}, products = {{0}}, channels = {{0}};
  int has_type = 0, has_products = 0, has_channels = 0;
  int64_t *top = NULL;
  size_t n_top = 0;
  pairs ps = {0};
  const char *perr;
  if (cs_json_parse(c->json, buf, len, 1, &root, &perr) != 0 || cs_json_type_of(&root) != CS_JSON_OBJECT) {
    reject(c, "Malformed JSON", "the message is not a JSON object");
    goto done;
  }
  cs_json_iter it;
  const char *k;
  size_t kl;
  cs_json_obj_iter(&root, &it);
  while (cs_json_obj_next(&it, &k, &kl, &v)) {
    if (kl == 4 && memcmp(k, "type", 4) == 0) type = v, has_type = 1;
    else if (kl == 11 && memcmp(k, "product_ids", 11) == 0) products = v, has_products = 1;
    else if (kl == 8 && memcmp(k, "channels", 8) == 0) channels = v, has_channels = 1;
  }
  size_t tl = 0;
  const char *t = has_type && cs_json_type_of(&type) == CS_JSON_STRING ? cs_json_str(&type, &tl) : NULL;
  int subscribe = t && tl == 9 && memcmp(t, "subscribe", 9) == 0;
  int unsubscribe = t && tl == 11 && memcmp(t, "unsubscribe", 11) == 0;
  if (!subscribe && !unsubscribe) {
    reject(c, "Failed to subscribe", "type must be subscribe or unsubscribe");
    goto done;
  }
  if (has_products && read_products(ex, &products, &top, &n_top, why, sizeof why) != 0) {
    reject(c, "Failed to subscribe", why);
    goto done;
  }
  if (!has_channels || cs_json_type_of(&channels) != CS_JSON_ARRAY) {
    if (unsubscribe && !has_channels && n_top) { /* unsubscribe products from every channel */
      for (int ch = 0; ch < N_CHAN; ch++)
        for (size_t i = 0; i < n_top; i++)
          if (pairs_add(&ps, ch, top[i]) != 0) goto oom;
      goto apply;
    }
    reject(c, "Failed to subscribe", "channels must be an array");
    goto done;
  }
  cs_json_arr_iter(&channels, &it);
  while (cs_json_arr_next(&it, &v)) {
    cs_json_val name = v, own = {{0}};
    int has_own = 0;
    if (cs_json_type_of(&v) == CS_JSON_OBJECT) {
      int has_name = 0;
      cs_json_iter oi;
      cs_json_val ov;
      cs_json_obj_iter(&v, &oi);
      while (cs_json_obj_next(&oi, &k, &kl, &ov)) {
        if (kl == 4 && memcmp(k, "name", 4) == 0) name = ov, has_name = 1;
        else if (kl == 11 && memcmp(k, "product_ids", 11) == 0) own = ov, has_own = 1;
      }
      if (!has_name) {
        reject(c, "Failed to subscribe", "a channel object needs a name");
        goto done;
      }
    }
    if (cs_json_type_of(&name) != CS_JSON_STRING) {
      reject(c, "Failed to subscribe", "a channel is a name or an object with a name");
      goto done;
    }
    size_t nl;
    const char *nm = cs_json_str(&name, &nl);
    int ch = chan_of(nm, nl);
    if (ch < 0) {
      snprintf(why, sizeof why, "%.*s is not a valid channel", (int)(nl > 64 ? 64 : nl), nm);
      reject(c, "Failed to subscribe", why);
      goto done;
    }
    int64_t *mine = NULL;
    size_t n_mine = 0;
    if (has_own && read_products(ex, &own, &mine, &n_mine, why, sizeof why) != 0) {
      free(mine);
      reject(c, "Failed to subscribe", why);
      goto done;
    }
    int rc = 0;
    if (BIT(ch) & GLOBAL_CHANS) {
      rc = pairs_add(&ps, ch, -1);
    } else if (n_top + n_mine == 0) {
      if (unsubscribe)
        rc = pairs_add(&ps, ch, INT32_MAX);
      else {
        free(mine);
        snprintf(why, sizeof why, "no product ids given for channel %s", chan_names[ch]);
        reject(c, "Failed to subscribe", why);
        goto done;
      }
    } else {
      for (size_t i = 0; i < n_top && rc == 0; i++) rc = pairs_add(&ps, ch, top[i]);
      for (size_t i = 0; i < n_mine && rc == 0; i++) rc = pairs_add(&ps, ch, mine[i]);
    }
    free(mine);
    if (rc != 0) goto oom;
  }
  if (ps.n == 0) {
    reject(c, "Failed to subscribe", "no channels given");
    goto done;
  }
apply:
  apply(c, &ps, subscribe);
  if (subscribe && c->state == C_WAIT_SUB) {
    cs_err err;
    if (conn_open_reader(c, &err) != 0) {
      cs_error(COMP, "client %llu: %s", (unsigned long long)c->id, err.msg);
      reject(c, "Failed to subscribe", "the capture cannot be read");
      goto done;
    }
    c->state = C_STREAM;
    c->sub_deadline = 0;
    ex->n.subscribed++;
    if (ex->o.live) {
      c->join_wall = now_us();
      if (!ex->live_started) {
        ex->live_started = 1;
        ex->live_wall = c->join_wall;
        cs_info(COMP, "client %llu: the live capture clock starts", (unsigned long long)c->id);
      } else {
        cs_info(COMP, "client %llu joins the live stream at capture time +%.3f s", (unsigned long long)c->id,
                (double)(c->join_wall - ex->live_wall) * ex->o.speed / 1e6);
      }
    }
  }
  if (!ex->o.no_ack)
    send_ack(c);
  else
    cs_info(COMP, "client %llu: misbehaving: no subscriptions message (--no-ack)", (unsigned long long)c->id);
  goto done;
oom:
  reject(c, "Failed to subscribe", "out of memory");
done:
  free(top);
  free(ps.v);
}

/* LWS_CALLBACK_RECEIVE: assembles a message that may come in pieces. */
static int on_receive(conn *c, const void *in, size_t len) {
  if (lws_frame_is_binary(c->wsi)) {
    if (lws_is_first_fragment(c->wsi)) reject(c, "Malformed JSON", "binary frames are not accepted");
    conn_schedule(c);
    return 0;
  }
  if (c->rx.len + len > RX_MAX) {
    cs_buf_reset(&c->rx);
    reject(c, "Malformed JSON", "message too long");
    conn_schedule(c);
    return 0;
  }
  cs_buf_append(&c->rx, in, len);
  if (!lws_is_final_fragment(c->wsi) || lws_remaining_packet_payload(c->wsi)) return 0;
  size_t n = c->rx.len;
  cs_buf_append(&c->rx, pre_zero, CS_JSON_PADDING); /* simdjson reads past the end */
  if (c->rx.oom) {
    cs_buf_free(&c->rx);
    reject(c, "Malformed JSON", "out of memory");
  } else if (!c->want_close) {
    handle_request(c, c->rx.data, n);
  }
  cs_buf_reset(&c->rx);
  conn_schedule(c);
  return 0;
}

/* ---- a connection's life ----------------------------------------------- */

/* Frees a connection's state; also one that was never fully set up (its
 * members are zero then). */
static void conn_destroy(conn *c) {
  conn_close_reader(c);
  cs_json_destroy(c->json);
  cs_buf_free(&c->out);
  cs_buf_free(&c->msg);
  cs_buf_free(&c->rx);
  while (c->ctl_head) {
    ctl_frame *f = c->ctl_head;
    c->ctl_head = f->next;
    free(f);
  }
  free(c->mask);
  free(c->sub_order);
  free(c->in_order);
  free(c->last_trade);
  free(c->last_seq);
  free(c);
}

static void conn_free(uv_handle_t *h) { conn_destroy(h->data); }

static void server_maybe_done(cs_exchange *ex);

/* The connection is gone (or the server is going): unlink, log, free once
 * the timer has closed. */
static void conn_detach(conn *c) {
  cs_exchange *ex = c->ex;
  if (c->wsi) lws_set_opaque_user_data(c->wsi, NULL);
  c->wsi = NULL;
  for (conn **pp = &ex->conns; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  ex->n_conns--;
  if (c->done) ex->served_to_end = 1;
  char peer[32] = "";
  if (c->peer_close_code) snprintf(peer, sizeof peer, " (client close code %d)", c->peer_close_code);
  cs_info(COMP,
          "client %llu closed: %s%s; messages=%llu heartbeats=%llu frames=%llu bytes=%llu skipped_ids=%llu "
          "end_of_capture=%s",
          (unsigned long long)c->id, c->end_reason ? c->end_reason : "connection closed", peer,
          (unsigned long long)c->sent, (unsigned long long)c->heartbeats, (unsigned long long)c->frames,
          (unsigned long long)c->bytes, (unsigned long long)c->skipped, c->done ? "yes" : "no");
  uv_close((uv_handle_t *)&c->timer, conn_free);
  server_maybe_done(ex);
}

static int on_established(cs_exchange *ex, struct lws *wsi) {
  if (ex->stopping) return -1;
  conn *c = calloc(1, sizeof *c);
  if (!c) return -1;
  c->ex = ex;
  c->wsi = wsi;
  c->id = ++ex->next_id;
  c->n_prods = ex->n_prods;
  size_t np = c->n_prods ? c->n_prods : 1;
  c->mask = calloc(np, sizeof *c->mask);
  c->sub_order = calloc(np, sizeof *c->sub_order);
  c->in_order = calloc(np, 1);
  c->last_trade = calloc(np, sizeof *c->last_trade);
  c->last_seq = calloc(np, sizeof *c->last_seq);
  c->json = cs_json_create();
  if (!c->mask || !c->sub_order || !c->in_order || !c->last_trade || !c->last_seq || !c->json) goto error;
  cs_buf_init(&c->out);
  cs_buf_init(&c->msg);
  cs_buf_init(&c->rx);
  uv_timer_init(ex->loop, &c->timer);
  c->timer.data = c;
  c->record = ex->record && (ex->o.live || c->id == 1);
  lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
  if (ex->o.subscribe_timeout_s > 0) c->sub_deadline = now_us() + (int64_t)(ex->o.subscribe_timeout_s * US);
  lws_set_opaque_user_data(wsi, c);
  c->next = ex->conns;
  ex->conns = c;
  ex->n_conns++;
  ex->n.connections++;
  cs_info(COMP, "client %llu connected from %s", (unsigned long long)c->id, c->peer[0] ? c->peer : "?");
  conn_schedule(c);
  return 0;
error:
  cs_error(COMP, "out of memory accepting a client");
  conn_destroy(c);
  return -1;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  struct lws_context *ctx = lws_get_context(wsi);
  cs_exchange *ex = ctx ? lws_context_user(ctx) : NULL;
  conn *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED:
    return ex ? on_established(ex, wsi) : -1;
  case LWS_CALLBACK_RECEIVE:
    return c ? on_receive(c, in, len) : -1;
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return c ? on_writable(c) : -1;
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    if (c && len >= 2) c->peer_close_code = ((const unsigned char *)in)[0] << 8 | ((const unsigned char *)in)[1];
    if (c && !c->end_reason) c->end_reason = "closed by the client";
    return c && c->close_started; /* our close frame is out: no echo */
  case LWS_CALLBACK_CLOSED:
  case LWS_CALLBACK_WSI_DESTROY:
    if (c) conn_detach(c);
    return 0;
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

/* ---- the server's life ------------------------------------------------- */

void cs_exchange_opts_init(cs_exchange_opts *o) {
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->speed = 1;
  o->linger_s = -1;
  o->subscribe_timeout_s = 5;
  o->max_line = 64u << 20;
  o->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
  o->stall_s = 5;
  o->oversize_bytes = 5u << 20;
}

static char *dup_or_null(const char *s, int *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = 1;
  return d;
}

cs_exchange *cs_exchange_create(const cs_exchange_opts *o, cs_err *err) {
  if (!o->capture) {
    cs_err_set(err, "no capture given");
    return NULL;
  }
  if (o->speed < 0) {
    cs_err_set(err, "--speed must be >= 0");
    return NULL;
  }
  if ((o->cert_file == NULL) != (o->key_file == NULL)) {
    cs_err_set(err, "TLS needs both --cert and --key");
    return NULL;
  }
  if (o->oversize_after && o->oversize_bytes < 32) {
    cs_err_set(err, "--oversize-bytes must be at least 32");
    return NULL;
  }
  if (o->live && (o->speed <= 0 || o->loop)) {
    cs_err_set(err, "--live needs --speed > 0 and no --loop");
    return NULL;
  }
  if (o->n_skips > MAX_SKIPS) {
    cs_err_set(err, "at most %d --skip-ids ranges", MAX_SKIPS);
    return NULL;
  }
  cs_exchange *ex = calloc(1, sizeof *ex);
  if (!ex) {
    cs_err_set(err, "out of memory");
    return NULL;
  }
  int oom = 0;
  ex->o = *o;
  ex->capture = dup_or_null(o->capture, &oom);
  ex->host = dup_or_null(o->host, &oom);
  ex->cert = dup_or_null(o->cert_file, &oom);
  ex->key = dup_or_null(o->key_file, &oom);
  ex->record_path = dup_or_null(o->record_sent, &oom);
  ex->o.capture = ex->capture;
  ex->o.host = ex->host;
  ex->o.cert_file = ex->cert;
  ex->o.key_file = ex->key;
  ex->o.record_sent = ex->record_path;
  ex->o.products = NULL; /* folded into the product table below */
  ex->prods = cs_intern_create();
  ex->skips = o->n_skips ? calloc(o->n_skips, sizeof *ex->skips) : NULL;
  ex->skip_prod = o->n_skips ? calloc(o->n_skips, sizeof *ex->skip_prod) : NULL;
  if (oom || !ex->prods || (o->n_skips && (!ex->skips || !ex->skip_prod))) {
    cs_err_set(err, "out of memory");
    goto error;
  }
  if (o->n_skips) memcpy(ex->skips, o->skips, o->n_skips * sizeof *ex->skips);
  ex->o.skips = ex->skips;
  ex->lim_inject = (cs_log_limiter)CS_LOG_LIMITER_INIT;
  ex->lim_capture = (cs_log_limiter)CS_LOG_LIMITER_INIT;

  if (scan_capture(ex, err) != 0) goto error;
  size_t in_capture = cs_intern_count(ex->prods);
  for (size_t i = 0; i < o->n_products; i++)
    if (cs_intern_id(ex->prods, o->products[i], strlen(o->products[i])) < 0) {
      cs_err_set(err, "out of memory");
      goto error;
    }
  ex->n_prods = cs_intern_count(ex->prods);
  for (size_t i = 0; i < o->n_skips; i++) {
    ex->skip_prod[i] = find_product(ex, ex->skips[i].product, strlen(ex->skips[i].product));
    if (ex->skip_prod[i] < 0)
      cs_warn(COMP, "--skip-ids: %s is not a product of the capture: nothing to skip", ex->skips[i].product);
  }
  if (ex->record_path && !(ex->record = fopen(ex->record_path, "w"))) {
    cs_err_set(err, "--record-sent: cannot open '%s': %s", ex->record_path, strerror(errno));
    goto error;
  }
  {
    char first[CS_TIME_RFC3339_LEN + 1] = "-", last[CS_TIME_RFC3339_LEN + 1] = "-";
    if (ex->cap_first) cs_time_format_rfc3339(ex->cap_first, first);
    if (ex->cap_last) cs_time_format_rfc3339(ex->cap_last, last);
    cs_buf names;
    cs_buf_init(&names);
    for (size_t i = 0; i < ex->n_prods && i < 20; i++)
      cs_buf_printf(&names, "%s%s", i ? "," : "", cs_intern_name(ex->prods, (uint32_t)i));
    if (ex->n_prods > 20) cs_buf_puts(&names, ",...");
    cs_info(COMP, "capture %s: %llu lines, %llu messages, %zu products in it (%zu valid: %s), %s to %s", ex->capture,
            (unsigned long long)ex->cap_lines, (unsigned long long)ex->cap_msgs, in_capture, ex->n_prods,
            names.data ? names.data : "none", first, last);
    cs_buf_free(&names);
  }
  return ex;
error:
  cs_exchange_destroy(ex);
  return NULL;
}

static void on_stop_timer(uv_timer_t *t);

int cs_exchange_start(cs_exchange *ex, uv_loop_t *loop, void (*on_stopping)(void *ud), void *ud, cs_err *err) {
  ex->loop = loop;
  ex->on_stopping = on_stopping;
  ex->ud = ud;
  memset(ex->protocols, 0, sizeof ex->protocols);
  ex->protocols[0].name = "coinbase-exchange";
  ex->protocols[0].callback = ws_callback;
  ex->protocols[0].rx_buffer_size = 65536;
  cs_lws_opts lo = {0};
  lo.protocols = ex->protocols;
  lo.user = ex;
  lo.name = COMP;
  lo.listen = 1;
  lo.host = ex->o.host;
  lo.port = ex->o.port;
  lo.cert_file = ex->o.cert_file;
  lo.key_file = ex->o.key_file;
  if (!(ex->lws = cs_lws_create(loop, &lo, err))) return -1;
  uv_timer_init(loop, &ex->stop_timer);
  ex->stop_timer.data = ex;
  ex->started = 1;
  const cs_exchange_opts *o = &ex->o;
  cs_info(COMP, "serving %s on %s://%s:%d speed=%g%s%s", ex->capture, o->cert_file ? "wss" : "ws", o->host,
          cs_lws_port(ex->lws), o->speed, o->loop ? " loop" : "", o->live ? " live" : "");
  if (o->drop_after || o->close_after || o->stall_after || o->garbage_every || o->binary_every || o->error_after ||
      o->oversize_after || o->n_skips || o->no_ack)
    cs_info(COMP,
            "misbehaving on request: drop_after=%llu%s close_after=%llu (code %d) stall_after=%llu (%.3g s) "
            "garbage_every=%llu binary_every=%llu error_after=%llu oversize_after=%llu (%zu bytes) skip_ranges=%zu "
            "no_ack=%d every_connection=%d",
            (unsigned long long)o->drop_after, o->drop_every ? " (every connection)" : "",
            (unsigned long long)o->close_after, o->close_code, (unsigned long long)o->stall_after, o->stall_s,
            (unsigned long long)o->garbage_every, (unsigned long long)o->binary_every,
            (unsigned long long)o->error_after, (unsigned long long)o->oversize_after, o->oversize_bytes,
            o->n_skips, o->no_ack, o->every_connection);
  return 0;
}

int cs_exchange_port(const cs_exchange *ex) { return ex->lws ? cs_lws_port(ex->lws) : -1; }

/* Runs on the loop (a timer), never inside an lws callback. */
static void finish_stop(cs_exchange *ex) {
  if (ex->lws_stopped) return;
  ex->lws_stopped = 1;
  while (ex->conns) conn_detach(ex->conns);
  uv_close((uv_handle_t *)&ex->stop_timer, NULL);
  cs_lws_stop(ex->lws);
}

static void on_stop_timer(uv_timer_t *t) { finish_stop(t->data); }

static void server_maybe_done(cs_exchange *ex) {
  if (ex->lws_stopped) return;
  if (!ex->stopping && ex->o.exit_when_done && ex->served_to_end && ex->n_conns == 0) {
    cs_info(COMP, "a client was served to the end and none is left: stopping (--exit-when-done)");
    cs_exchange_stop(ex);
  } else if (ex->stopping && ex->n_conns == 0) {
    uv_timer_start(&ex->stop_timer, on_stop_timer, 0, 0);
  }
}

void cs_exchange_stop(cs_exchange *ex) {
  if (!ex || ex->stopping) return;
  ex->stopping = 1;
  if (ex->on_stopping) ex->on_stopping(ex->ud);
  if (!ex->started) return;
  for (conn *c = ex->conns; c; c = c->next) {
    if (!c->want_close) {
      c->want_close = LWS_CLOSE_STATUS_GOINGAWAY;
      snprintf(c->close_why, sizeof c->close_why, "server shutting down");
      c->end_reason = "server shutting down";
    }
    c->frag_len = 0; /* no half-sent message before the close frame */
    lws_callback_on_writable(c->wsi);
  }
  /* Clients get a second to take their close frame. */
  uv_timer_start(&ex->stop_timer, on_stop_timer, ex->n_conns ? 1000 : 0, 0);
}

void cs_exchange_destroy(cs_exchange *ex) {
  if (!ex) return;
  cs_lws_destroy(ex->lws);
  if (ex->record) fclose(ex->record);
  cs_intern_destroy(ex->prods);
  free(ex->capture);
  free(ex->host);
  free(ex->cert);
  free(ex->key);
  free(ex->record_path);
  free(ex->skips);
  free(ex->skip_prod);
  free(ex);
}

void cs_exchange_print_summary(const cs_exchange *ex, FILE *f) {
  fprintf(f,
          "exchange connections=%llu subscribed=%llu bad_requests=%llu subscribe_timeouts=%llu messages=%llu "
          "heartbeats=%llu frames=%llu bytes=%llu skipped_ids=%llu drops=%llu closes=%llu stalls=%llu garbage=%llu "
          "binary=%llu errors=%llu oversize=%llu loops=%llu invalid_lines=%llu long_lines=%llu\n",
          (unsigned long long)ex->n.connections, (unsigned long long)ex->n.subscribed,
          (unsigned long long)ex->n.bad_requests, (unsigned long long)ex->n.sub_timeouts,
          (unsigned long long)ex->n.messages, (unsigned long long)ex->n.heartbeats, (unsigned long long)ex->n.frames,
          (unsigned long long)ex->n.bytes, (unsigned long long)ex->n.skipped_ids, (unsigned long long)ex->n.drops,
          (unsigned long long)ex->n.closes, (unsigned long long)ex->n.stalls, (unsigned long long)ex->n.garbage,
          (unsigned long long)ex->n.binary, (unsigned long long)ex->n.errors, (unsigned long long)ex->n.oversize,
          (unsigned long long)ex->n.loops, (unsigned long long)ex->n.invalid_lines,
          (unsigned long long)ex->n.long_lines);
}

/* ---- the `serve-replay` command ---------------------------------------- */

enum { A_FLAG, A_STR, A_INT, A_U64, A_SIZE, A_DBL, A_PRODUCTS, A_SKIP };

typedef struct cmd_state {
  cs_exchange_opts o;
  cs_exchange *ex;
  uv_signal_t sigint, sigterm;
  int signals_closed;
  const char **products;
  cs_exchange_skip skips[MAX_SKIPS];
} cmd_state;

typedef struct cmd_opt {
  const char *name, *arg, *help;
  int kind;
  size_t off; /* in cs_exchange_opts */
} cmd_opt;

#define OFF(f) offsetof(cs_exchange_opts, f)
static const cmd_opt cmd_opts[] = {
    {"--host", "ADDR", "listen address (default 127.0.0.1)", A_STR, OFF(host)},
    {"--port", "N", "listen port; 0 (default) picks a free one", A_INT, OFF(port)},
    {"--cert", "FILE", "TLS certificate (PEM): serve wss://", A_STR, OFF(cert_file)},
    {"--key", "FILE", "TLS private key (PEM)", A_STR, OFF(key_file)},
    {"--speed", "X", "1 real time (default), N times faster, 0 as fast as the client reads", A_DBL, OFF(speed)},
    {"--loop", NULL, "start the capture again when it ends", A_FLAG, OFF(loop)},
    {"--linger", "SECONDS", "after the end, close a client after this long (default: never)", A_DBL, OFF(linger_s)},
    {"--exit-when-done", NULL, "exit once a client was served to the end and none is left", A_FLAG,
     OFF(exit_when_done)},
    {"--subscribe-timeout", "SECONDS", "close clients that do not subscribe in time (default 5; 0 never)", A_DBL,
     OFF(subscribe_timeout_s)},
    {"--products", "A,B,...", "also valid product ids (besides the capture's)", A_PRODUCTS, 0},
    {"--max-line", "BYTES", "longest capture line served (default 64 MiB)", A_SIZE, OFF(max_line)},
    {"--fragment-size", "BYTES", "send longer messages as fragments of this size (default 0: whole frames)", A_SIZE,
     OFF(fragment_size)},
    {"--record-sent", "FILE", "write every text frame sent to the first client (--live: to every client), one per line",
     A_STR, OFF(record_sent)},
    {"--live", NULL, "one capture clock from the first subscribe on; clients join at the current position", A_FLAG,
     OFF(live)},
    {"--drop-after", "N", "drop the TCP connection (no close frame) after N messages", A_U64, OFF(drop_after)},
    {"--drop-every", NULL, "drop every connection, not only the first one", A_FLAG, OFF(drop_every)},
    {"--close-after", "N", "close cleanly (close frame) after N messages", A_U64, OFF(close_after)},
    {"--close-code", "CODE", "close code for --close-after (default 1001)", A_INT, OFF(close_code)},
    {"--stall-after", "N", "send nothing, heartbeats included, after N messages ...", A_U64, OFF(stall_after)},
    {"--stall-seconds", "S", "... for S seconds (default 5)", A_DBL, OFF(stall_s)},
    {"--garbage-every", "N", "send a non-JSON text frame after every N messages", A_U64, OFF(garbage_every)},
    {"--binary-every", "N", "send a binary frame after every N messages", A_U64, OFF(binary_every)},
    {"--error-after", "N", "send an error message after N messages", A_U64, OFF(error_after)},
    {"--oversize-after", "N", "send one huge text frame after N messages ...", A_U64, OFF(oversize_after)},
    {"--oversize-bytes", "B", "... of B bytes (default 5 MiB)", A_SIZE, OFF(oversize_bytes)},
    {"--skip-ids", "P:FROM-TO", "do not send product P's trade ids FROM..TO (repeatable)", A_SKIP, 0},
    {"--no-ack", NULL, "never send the subscriptions message", A_FLAG, OFF(no_ack)},
    {"--every-connection", NULL, "one-shot misbehaviours happen on every connection", A_FLAG,
     OFF(every_connection)},
};

static void cmd_usage(FILE *f) {
  fputs("usage: cstream serve-replay CAPTURE [options]\n"
        "\n"
        "Serves CAPTURE (.jsonl or .jsonl.gz, one Coinbase Exchange message per line) over WebSocket,\n"
        "speaking the Exchange feed protocol (docs/exchange.md). Prints 'listening port=N' once ready.\n"
        "N in the misbehaviour options counts the data messages (capture messages and heartbeats)\n"
        "sent on a connection; one-shot misbehaviours happen once per server run.\n"
        "\noptions:\n",
        f);
  for (size_t i = 0; i < sizeof cmd_opts / sizeof cmd_opts[0]; i++) {
    char head[64];
    snprintf(head, sizeof head, "%s%s%s", cmd_opts[i].name, cmd_opts[i].arg ? " " : "",
             cmd_opts[i].arg ? cmd_opts[i].arg : "");
    fprintf(f, "  %-30s %s\n", head, cmd_opts[i].help);
  }
}

static int parse_num(const char *s, int kind, void *dst) {
  char *end;
  errno = 0;
  if (kind == A_DBL) {
    double d = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(d) || d > 1e12) return -1;
    *(double *)dst = d;
    return 0;
  }
  if (*s == '-' && kind != A_INT) return -1;
  long long v = kind == A_INT ? strtoll(s, &end, 10) : (long long)strtoull(s, &end, 10);
  if (end == s || *end || errno) return -1;
  if (kind == A_INT) {
    if (v < -2147483647LL || v > 2147483647LL) return -1;
    *(int *)dst = (int)v;
  } else if (kind == A_U64) {
    *(uint64_t *)dst = (uint64_t)v;
  } else {
    *(size_t *)dst = (size_t)v;
  }
  return 0;
}

/* P:FROM-TO */
static int parse_skip(const char *s, cs_exchange_skip *sk) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || (size_t)(colon - s) >= sizeof sk->product) return -1;
  memcpy(sk->product, s, (size_t)(colon - s));
  sk->product[colon - s] = 0;
  char *end;
  errno = 0;
  long long a = strtoll(colon + 1, &end, 10);
  if (end == colon + 1 || *end != '-' || errno) return -1;
  const char *b0 = end + 1;
  long long b = strtoll(b0, &end, 10);
  if (end == b0 || *end || errno || b < a) return -1;
  sk->from = a;
  sk->to = b;
  return 0;
}

static int add_products(cmd_state *st, const char *list) {
  const char *p = list;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n) {
      const char **np = realloc(st->products, (st->o.n_products + 1) * sizeof *np);
      char *d = strndup(p, n);
      if (!np || !d) {
        free(d);
        if (np) st->products = np;
        return -1;
      }
      st->products = np;
      st->products[st->o.n_products++] = d;
    }
    p += n + (e != NULL);
  }
  st->o.products = st->products;
  return 0;
}

static void cmd_close_signals(void *ud) {
  cmd_state *st = ud;
  if (st->signals_closed) return;
  st->signals_closed = 1;
  uv_close((uv_handle_t *)&st->sigint, NULL);
  uv_close((uv_handle_t *)&st->sigterm, NULL);
}

static void cmd_on_signal(uv_signal_t *h, int signum) {
  cmd_state *st = h->data;
  cs_info(COMP, "%s received: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
  cs_exchange_stop(st->ex);
}

static void cmd_free(cmd_state *st) {
  for (size_t i = 0; i < st->o.n_products; i++) free((char *)st->products[i]);
  free(st->products);
}

int cs_exchange_command(int argc, char **argv) {
  cmd_state st;
  memset(&st, 0, sizeof st);
  cs_exchange_opts_init(&st.o);
  st.o.skips = st.skips;
  int rc = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      cmd_usage(stdout);
      cmd_free(&st);
      return 0;
    }
    if (a[0] != '-' || a[1] != '-') {
      if (st.o.capture) {
        fprintf(stderr, "cstream: serve-replay: more than one capture ('%s', '%s')\n", st.o.capture, a);
        goto usage;
      }
      st.o.capture = a;
      continue;
    }
    const char *eq = strchr(a, '=');
    size_t nl = eq ? (size_t)(eq - a) : strlen(a);
    const cmd_opt *opt = NULL;
    for (size_t k = 0; k < sizeof cmd_opts / sizeof cmd_opts[0]; k++)
      if (strlen(cmd_opts[k].name) == nl && memcmp(cmd_opts[k].name, a, nl) == 0) opt = &cmd_opts[k];
    if (!opt) {
      fprintf(stderr, "cstream: serve-replay: unknown option '%.*s'\n", (int)nl, a);
      goto usage;
    }
    char *dst = (char *)&st.o + opt->off;
    if (opt->kind == A_FLAG) {
      if (eq) {
        fprintf(stderr, "cstream: serve-replay: %s takes no value\n", opt->name);
        goto usage;
      }
      *(int *)dst = 1;
      continue;
    }
    const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!val) {
      fprintf(stderr, "cstream: serve-replay: %s needs a value (%s)\n", opt->name, opt->arg);
      goto usage;
    }
    int bad = 0;
    switch (opt->kind) {
    case A_STR:
      *(const char **)dst = val;
      break;
    case A_PRODUCTS:
      if (add_products(&st, val) != 0) {
        fprintf(stderr, "cstream: out of memory\n");
        cmd_free(&st);
        return 1;
      }
      break;
    case A_SKIP:
      if (st.o.n_skips >= MAX_SKIPS || parse_skip(val, &st.skips[st.o.n_skips]) != 0)
        bad = 1;
      else
        st.o.n_skips++;
      break;
    default:
      bad = parse_num(val, opt->kind, dst) != 0;
    }
    if (bad) {
      fprintf(stderr, "cstream: serve-replay: %s: bad value '%s' (expected %s)\n", opt->name, val, opt->arg);
      goto usage;
    }
  }
  if (!st.o.capture) {
    fprintf(stderr, "cstream: serve-replay: missing CAPTURE\n");
    goto usage;
  }
  const char *bad = NULL;
  if (st.o.port < 0 || st.o.port > 65535) bad = "--port must be 0..65535";
  else if (st.o.close_code < 1000 || st.o.close_code > 4999) bad = "--close-code must be 1000..4999";
  else if (st.o.stall_after && st.o.stall_s <= 0) bad = "--stall-seconds must be > 0";
  else if (st.o.speed < 0) bad = "--speed must be >= 0";
  else if ((st.o.cert_file == NULL) != (st.o.key_file == NULL)) bad = "TLS needs both --cert and --key";
  else if (st.o.oversize_after && st.o.oversize_bytes < 32) bad = "--oversize-bytes must be at least 32";
  else if (st.o.max_line < 1024) bad = "--max-line must be at least 1024";
  else if (st.o.live && st.o.speed <= 0) bad = "--live needs --speed > 0";
  else if (st.o.live && st.o.loop) bad = "--live and --loop do not combine";
  if (bad) {
    fprintf(stderr, "cstream: serve-replay: %s\n", bad);
    goto usage;
  }

  cs_err err;
  if (!(st.ex = cs_exchange_create(&st.o, &err))) {
    fprintf(stderr, "cstream: serve-replay: %s\n", err.msg);
    cmd_free(&st);
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_signal_init(&loop, &st.sigint);
  uv_signal_init(&loop, &st.sigterm);
  st.sigint.data = st.sigterm.data = &st;
  uv_signal_start(&st.sigint, cmd_on_signal, SIGINT);
  uv_signal_start(&st.sigterm, cmd_on_signal, SIGTERM);
  if (cs_exchange_start(st.ex, &loop, cmd_close_signals, &st, &err) != 0) {
    fprintf(stderr, "cstream: serve-replay: %s\n", err.msg);
    rc = 1;
    cmd_close_signals(&st);
  } else {
    printf("listening port=%d\n", cs_exchange_port(st.ex));
    fflush(stdout);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if (rc == 0) cs_exchange_print_summary(st.ex, stderr);
  cs_exchange_destroy(st.ex);
  if (uv_loop_close(&loop) != 0) cs_warn(COMP, "event loop closed with handles still open");
  cmd_free(&st);
  return rc;
usage:
  fputs("(cstream serve-replay --help lists the options)\n", stderr);
  cmd_free(&st);
  return 2;
}
