/* cs_window: the event-time tumbling-window engine — the core of cstream.
 *
 * Windows are [floor(t/size)*size, +size) aligned to the Unix epoch, one per
 * key (the product id, or one key "*" for all). The watermark is the largest
 * event time of an accepted trade minus `lateness`, global across keys; it
 * never moves back. A trade is checked, in this order: late (its window's
 * end <= watermark: dropped), then duplicate (its (product_id, trade_id) is
 * already in any open window: dropped); otherwise it is accepted into its
 * window. A window is emitted once the watermark reaches its end; windows
 * are emitted in order of end, then key (byte order). Memory is bounded by
 * the open windows: a window's trade ids are forgotten when it is emitted.
 *
 * With update_for > 0 (on_late = "update"), a late trade whose window
 * ended less than update_for before the watermark is taken into that
 * window instead, and the window is emitted again (row.revision + 1);
 * emitted windows are kept that long, and their trade ids still count for
 * duplicates.
 *
 * Live sources also move the watermark by the wall clock
 * (cs_window_advance), so quiet markets still close windows.
 *
 * Uses cs_hmap, cs_intern, cs_time. Single-threaded. */
#ifndef CS_WINDOW_H
#define CS_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "cs_err.h"
#include "cs_record.h"

/* Optional user aggregates (the Lua hooks implement these). A handle is
 * whatever the extension wants to keep per window. */
typedef struct cs_window_ext {
  void *ud;
  int (*init)(void *ud, uint64_t *handle);                         /* new window; 0 or -1 */
  void (*add)(void *ud, uint64_t handle, const cs_trade *trade);   /* accepted trade */
  char *(*result)(void *ud, uint64_t handle);                      /* malloc'd JSON members, or NULL */
  void (*release)(void *ud, uint64_t handle);                      /* window emitted or dropped */
} cs_window_ext;

typedef struct cs_window_conf {
  int64_t size_us;     /* a whole number of seconds, > 0 */
  int64_t lateness_us; /* >= 0 */
  int by_product;      /* 1: one window per product_id; 0: one window "*" */
  uint32_t aggs;       /* CS_AGG_* bits the rows carry */
  /* on_late = "update": for this long (event time, by the watermark) after
   * its end, an emitted window still takes late trades and is emitted
   * again with them. 0 = late trades are dropped. */
  int64_t update_for_us;
  const cs_window_ext *ext; /* NULL, or kept by the caller for the window's life */
  /* 1: trades do not move the watermark, only cs_window_advance does (a
   * source with its own event clock, cs_source.external_clock). */
  int external_wm;
} cs_window_conf;

typedef enum {
  CS_WIN_ACCEPTED = 0,
  CS_WIN_LATE = 1,
  CS_WIN_DUPLICATE = 2,
  CS_WIN_UPDATED = 3, /* late, taken into its emitted window, re-emitted */
  CS_WIN_NOMEM = -1
} cs_window_verdict;

/* Receives each emitted row. The row (and its ext_json) is valid only during
 * the call: copy what you keep. */
typedef void (*cs_window_emit_fn)(void *ud, const cs_row *row);

typedef struct cs_window cs_window;

cs_window *cs_window_create(const cs_window_conf *conf, cs_window_emit_fn emit, void *ud, cs_err *err);
/* Frees everything; open windows are dropped without being emitted.
 * NULL is a no-op. */
void cs_window_destroy(cs_window *w);

/* Checks and adds one trade; emits the windows the new watermark closes. */
cs_window_verdict cs_window_add(cs_window *w, const cs_trade *trade);
/* Checks a trade without adding it (for hooks that run only on trades that
 * will count): the verdict cs_window_add would give. */
cs_window_verdict cs_window_check(cs_window *w, const cs_trade *trade);
/* Moves the watermark to at least `watermark_us` (never back) and emits
 * what that closes. */
void cs_window_advance(cs_window *w, int64_t watermark_us);
/* End of a finite input: emits every open window, in order. */
void cs_window_finish(cs_window *w);

size_t cs_window_open_count(const cs_window *w);
/* Returns 1 and sets *wm when there is a watermark yet, else 0. */
int cs_window_watermark(const cs_window *w, int64_t *wm);

#endif
