#include "cs_window.h"

#include <stdlib.h>
#include <string.h>

#include "cs_hmap.h"
#include "cs_idset.h"
#include "cs_intern.h"
#include "cs_time.h"

const char *const cs_agg_names[CS_AGG_COUNT] = {"trades", "avg_price", "vwap",   "open",       "high",
                                                "low",    "close",     "volume", "buy_volume", "sell_volume"};

/* A window's trade ids, as runs of consecutive ids of one product (one
 * run for a window whose trades came in id order). */
typedef struct win_run {
  int64_t from, to;
  uint32_t product;
} win_run;

typedef struct win {
  int64_t start_us;
  uint32_t key;
  uint64_t trades;
  double sum_price, sum_pv, volume, buy_volume, sell_volume, high, low, open, close;
  int64_t open_t, open_id, close_t, close_id;
  win_run *runs;
  size_t nruns, cap_runs;
  uint64_t ext; /* cs_window_ext handle */
  uint32_t revision;
} win;

typedef struct slot {
  int64_t start_us;
  win **wins;
  size_t n, cap;
} slot;

/* Slots sorted by start. */
typedef struct slot_list {
  slot *v;
  size_t n, cap;
} slot_list;

struct cs_window {
  cs_window_conf conf;
  cs_window_emit_fn emit;
  void *ud;
  cs_intern *keys;
  uint32_t all_key;  /* the key "*" when !by_product */
  cs_hmap open;      /* (start, key) -> win* */
  cs_idset *seen;    /* (product, trade_id) of every trade in an open (or kept) window */
  slot_list open_slots; /* windows not yet emitted */
  slot_list kept;       /* on_late = update: emitted windows still taking late trades */
  win **last;        /* per key: the window the key's last trade went to */
  size_t cap_last;
  size_t open_windows;
  int has_wm, has_max;
  int64_t wm, max_t; /* watermark; newest accepted event time */
};

cs_window *cs_window_create(const cs_window_conf *conf, cs_window_emit_fn emit, void *ud, cs_err *err) {
  if (conf->size_us <= 0 || conf->size_us % CS_US_PER_S != 0) {
    cs_err_set(err, "window size must be a whole number of seconds > 0");
    return NULL;
  }
  if (conf->lateness_us < 0 || conf->update_for_us < 0) {
    cs_err_set(err, "lateness and update_for must be >= 0");
    return NULL;
  }
  cs_window *w = calloc(1, sizeof *w);
  if (!w) goto nomem;
  w->conf = *conf;
  w->emit = emit;
  w->ud = ud;
  cs_hmap_init(&w->open);
  if (!(w->keys = cs_intern_create()) || !(w->seen = cs_idset_create())) goto nomem;
  if (!conf->by_product) {
    int64_t id = cs_intern_id(w->keys, "*", 1);
    if (id < 0) goto nomem;
    w->all_key = (uint32_t)id;
  }
  return w;
nomem:
  cs_window_destroy(w);
  cs_err_set(err, "out of memory");
  return NULL;
}

static void win_free(cs_window *w, win *x) {
  if (w->conf.ext) w->conf.ext->release(w->conf.ext->ud, x->ext);
  free(x->runs);
  free(x);
}

static void free_list(cs_window *w, slot_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    for (size_t j = 0; j < l->v[i].n; j++) win_free(w, l->v[i].wins[j]);
    free(l->v[i].wins);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

void cs_window_destroy(cs_window *w) {
  if (!w) return;
  free_list(w, &w->open_slots);
  free_list(w, &w->kept);
  free(w->last);
  cs_hmap_free(&w->open);
  cs_idset_destroy(w->seen);
  cs_intern_destroy(w->keys);
  free(w);
}

static inline int64_t window_start(const cs_window *w, int64_t t) {
  return cs_time_floor_div(t, w->conf.size_us) * w->conf.size_us;
}

static int cmp_key(const void *a, const void *b, void *keys) {
  const win *x = *(win *const *)a, *y = *(win *const *)b;
  return strcmp(cs_intern_name(keys, x->key), cs_intern_name(keys, y->key));
}

/* Insertion sort: a slot holds one window per product (tens), and sorting
 * with a context pointer is not in C11's qsort. */
static void sort_slot(slot *s, cs_intern *keys) {
  for (size_t i = 1; i < s->n; i++) {
    win *x = s->wins[i];
    size_t j = i;
    while (j > 0 && cmp_key(&s->wins[j - 1], &x, keys) > 0) {
      s->wins[j] = s->wins[j - 1];
      j--;
    }
    s->wins[j] = x;
  }
}

static void emit_window(cs_window *w, win *x) {
  cs_row row;
  memset(&row, 0, sizeof row);
  row.product_id = cs_intern_name(w->keys, x->key);
  row.window_start_us = x->start_us;
  row.window_end_us = x->start_us + w->conf.size_us;
  row.trades = x->trades;
  row.avg_price = x->sum_price / (double)x->trades;
  row.vwap = x->sum_pv / x->volume;
  row.open = x->open;
  row.high = x->high;
  row.low = x->low;
  row.close = x->close;
  row.volume = x->volume;
  row.buy_volume = x->buy_volume;
  row.sell_volume = x->sell_volume;
  row.aggs = w->conf.aggs;
  row.revision = x->revision++;
  char *ext = w->conf.ext ? w->conf.ext->result(w->conf.ext->ud, x->ext) : NULL;
  row.ext_json = ext;
  w->emit(w->ud, &row);
  free(ext);
}

/* Forgets a window: its trade ids, its map entry, the cache. */
static void drop_window(cs_window *w, win *x) {
  for (size_t k = 0; k < x->nruns; k++) cs_idset_del_run(w->seen, x->runs[k].product, x->runs[k].from, x->runs[k].to);
  cs_hmap_del(&w->open, (uint64_t)x->start_us, x->key);
  if (w->last[x->key] == x) w->last[x->key] = NULL;
  win_free(w, x);
}

static slot *find_or_add_slot(slot_list *l, int64_t start) {
  size_t lo = 0, hi = l->n;
  /* Most trades go to the newest slot: check it before searching. */
  if (hi && l->v[hi - 1].start_us == start) return &l->v[hi - 1];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (l->v[mid].start_us < start)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < l->n && l->v[lo].start_us == start) return &l->v[lo];
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 8;
    slot *ns = realloc(l->v, nc * sizeof *ns);
    if (!ns) return NULL;
    l->v = ns;
    l->cap = nc;
  }
  memmove(l->v + lo + 1, l->v + lo, (l->n - lo) * sizeof *l->v);
  l->n++;
  memset(&l->v[lo], 0, sizeof l->v[lo]);
  l->v[lo].start_us = start;
  return &l->v[lo];
}

static int slot_push(slot *s, win *x) {
  if (s->n == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 4;
    win **nw = realloc(s->wins, nc * sizeof *nw);
    if (!nw) return -1;
    s->wins = nw;
    s->cap = nc;
  }
  s->wins[s->n++] = x;
  return 0;
}

/* Emits the oldest open slot; frees it, or keeps it for late updates. */
static void close_first_slot(cs_window *w) {
  slot s = w->open_slots.v[0];
  memmove(w->open_slots.v, w->open_slots.v + 1, (w->open_slots.n - 1) * sizeof(slot));
  w->open_slots.n--;
  sort_slot(&s, w->keys);
  for (size_t j = 0; j < s.n; j++) emit_window(w, s.wins[j]);
  w->open_windows -= s.n;
  if (w->conf.update_for_us > 0) {
    slot *k = find_or_add_slot(&w->kept, s.start_us);
    size_t j = 0;
    for (; k && j < s.n; j++)
      if (slot_push(k, s.wins[j]) != 0) break;
    for (; j < s.n; j++) drop_window(w, s.wins[j]); /* out of memory: no more updates for these */
  } else {
    for (size_t j = 0; j < s.n; j++) drop_window(w, s.wins[j]);
  }
  free(s.wins);
}

/* Frees kept windows that can no longer take late trades. */
static void purge_kept(cs_window *w, int all) {
  while (w->kept.n && (all || w->kept.v[0].start_us + w->conf.size_us + w->conf.update_for_us <= w->wm)) {
    slot s = w->kept.v[0];
    memmove(w->kept.v, w->kept.v + 1, (w->kept.n - 1) * sizeof(slot));
    w->kept.n--;
    for (size_t j = 0; j < s.n; j++) drop_window(w, s.wins[j]);
    free(s.wins);
  }
}

static void emit_closed(cs_window *w) {
  while (w->open_slots.n && w->open_slots.v[0].start_us + w->conf.size_us <= w->wm) close_first_slot(w);
  if (w->kept.n) purge_kept(w, 0);
}

/* The window (start, key), created in `list` if new. */
static win *get_window(cs_window *w, slot_list *list, int64_t start, uint32_t key) {
  if (key >= w->cap_last) {
    size_t nc = w->cap_last ? w->cap_last : 16;
    while (nc <= key) nc *= 2;
    win **nl = realloc(w->last, nc * sizeof *nl);
    if (!nl) return NULL;
    memset(nl + w->cap_last, 0, (nc - w->cap_last) * sizeof *nl);
    w->last = nl;
    w->cap_last = nc;
  }
  win *x = w->last[key];
  if (x && x->start_us == start) return x;
  uint64_t *found = cs_hmap_get(&w->open, (uint64_t)start, key);
  if (found) {
    x = (win *)(uintptr_t)*found;
    w->last[key] = x;
    return x;
  }
  slot *s = find_or_add_slot(list, start);
  if (!s) return NULL;
  x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->start_us = start;
  x->key = key;
  if (w->conf.ext && w->conf.ext->init(w->conf.ext->ud, &x->ext) != 0) {
    free(x);
    return NULL;
  }
  if (cs_hmap_put(&w->open, (uint64_t)start, key, (uint64_t)(uintptr_t)x) != 0) {
    win_free(w, x);
    return NULL;
  }
  if (slot_push(s, x) != 0) {
    cs_hmap_del(&w->open, (uint64_t)start, key);
    win_free(w, x);
    return NULL;
  }
  w->last[key] = x;
  if (list == &w->open_slots) w->open_windows++;
  return x;
}

/* Records a trade id accepted into window x: in the duplicate index and
 * in the window's runs (to forget it when the window goes). */
static int add_id(cs_window *w, win *x, uint32_t product, int64_t id) {
  win_run *r = x->nruns ? &x->runs[x->nruns - 1] : NULL;
  int up = r && r->product == product && r->to < INT64_MAX && id == r->to + 1;
  int down = r && r->product == product && r->from > INT64_MIN && id == r->from - 1;
  if (!up && !down && x->nruns == x->cap_runs) {
    size_t nc = x->cap_runs ? x->cap_runs * 2 : 2;
    win_run *nr = realloc(x->runs, nc * sizeof *nr);
    if (!nr) return -1;
    x->runs = nr;
    x->cap_runs = nc;
  }
  if (cs_idset_add(w->seen, product, id) != 0) return -1;
  if (up)
    r->to = id;
  else if (down)
    r->from = id;
  else
    x->runs[x->nruns++] = (win_run){id, id, product};
  return 0;
}

static cs_window_verdict check(cs_window *w, const cs_trade *t, int64_t *start, int64_t *product) {
  *start = window_start(w, t->time_us);
  int late = w->has_wm && *start + w->conf.size_us <= w->wm;
  if (late && *start + w->conf.size_us + w->conf.update_for_us <= w->wm) return CS_WIN_LATE;
  *product = cs_intern_id(w->keys, t->product_id, t->product_len);
  if (*product < 0) return CS_WIN_NOMEM;
  if (cs_idset_has(w->seen, (uint32_t)*product, t->trade_id)) return CS_WIN_DUPLICATE;
  return late ? CS_WIN_UPDATED : CS_WIN_ACCEPTED;
}

cs_window_verdict cs_window_check(cs_window *w, const cs_trade *t) {
  int64_t start, product;
  return check(w, t, &start, &product);
}

cs_window_verdict cs_window_add(cs_window *w, const cs_trade *t) {
  int64_t start, product;
  cs_window_verdict v = check(w, t, &start, &product);
  if (v != CS_WIN_ACCEPTED && v != CS_WIN_UPDATED) return v;
  uint32_t key = w->conf.by_product ? (uint32_t)product : w->all_key;
  win *x = get_window(w, v == CS_WIN_UPDATED ? &w->kept : &w->open_slots, start, key);
  if (!x) return CS_WIN_NOMEM;
  if (add_id(w, x, (uint32_t)product, t->trade_id) != 0) return CS_WIN_NOMEM;

  double p = t->price, q = t->size;
  if (x->trades == 0) {
    x->open = x->close = x->high = x->low = p;
    x->open_t = x->close_t = t->time_us;
    x->open_id = x->close_id = t->trade_id;
  } else {
    if (p > x->high) x->high = p;
    if (p < x->low) x->low = p;
    if (t->time_us < x->open_t || (t->time_us == x->open_t && t->trade_id < x->open_id)) {
      x->open = p;
      x->open_t = t->time_us;
      x->open_id = t->trade_id;
    }
    if (t->time_us > x->close_t || (t->time_us == x->close_t && t->trade_id > x->close_id)) {
      x->close = p;
      x->close_t = t->time_us;
      x->close_id = t->trade_id;
    }
  }
  x->trades++;
  x->sum_price += p;
  x->sum_pv += p * q;
  x->volume += q;
  if (t->taker_side == CS_SIDE_BUY)
    x->buy_volume += q;
  else
    x->sell_volume += q;
  if (w->conf.ext) w->conf.ext->add(w->conf.ext->ud, x->ext, t);

  if (v == CS_WIN_UPDATED) {
    /* A late trade within update_for: the window was emitted already (or
     * never held a trade); emit it again, now with this trade. */
    emit_window(w, x);
    return CS_WIN_UPDATED;
  }
  if (!w->conf.external_wm && (!w->has_max || t->time_us > w->max_t)) {
    w->has_max = 1;
    w->max_t = t->time_us;
    int64_t wm = t->time_us - w->conf.lateness_us;
    if (!w->has_wm || wm > w->wm) {
      w->wm = wm;
      w->has_wm = 1;
      emit_closed(w);
    }
  }
  return CS_WIN_ACCEPTED;
}

void cs_window_advance(cs_window *w, int64_t watermark_us) {
  if (w->has_wm && watermark_us <= w->wm) return;
  w->wm = watermark_us;
  w->has_wm = 1;
  emit_closed(w);
}

void cs_window_finish(cs_window *w) {
  while (w->open_slots.n) close_first_slot(w);
  purge_kept(w, 1);
}

size_t cs_window_open_count(const cs_window *w) { return w->open_windows; }

int cs_window_watermark(const cs_window *w, int64_t *wm) {
  if (w->has_wm) *wm = w->wm;
  return w->has_wm;
}
