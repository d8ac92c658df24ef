#include "cs_gaps.h"

#include <stdlib.h>
#include <string.h>

#include "cs_intern.h"

typedef struct range {
  int64_t from, to, deadline;
} range;

typedef struct product {
  int has_last;
  int64_t last; /* highest id seen (or announced by a heartbeat) */
  range *pending;
  size_t n, cap;
  /* for metrics (cs_gaps_product_info) */
  uint64_t trades, gaps, missing;
  int64_t last_time; /* INT64_MIN: no trade yet */
} product;

struct cs_gaps {
  cs_intern *names;
  product *products;
  size_t nproducts;
  uint64_t pending;
};

cs_gaps *cs_gaps_create(void) {
  cs_gaps *g = calloc(1, sizeof *g);
  if (!g || !(g->names = cs_intern_create())) {
    free(g);
    return NULL;
  }
  return g;
}

void cs_gaps_destroy(cs_gaps *g) {
  if (!g) return;
  for (size_t i = 0; i < g->nproducts; i++) free(g->products[i].pending);
  free(g->products);
  cs_intern_destroy(g->names);
  free(g);
}

static product *get(cs_gaps *g, const char *name, size_t len) {
  int64_t id = cs_intern_id(g->names, name, len);
  if (id < 0) return NULL;
  if ((size_t)id >= g->nproducts) {
    product *np = realloc(g->products, ((size_t)id + 1) * sizeof *np);
    if (!np) return NULL;
    memset(np + g->nproducts, 0, ((size_t)id + 1 - g->nproducts) * sizeof *np);
    for (size_t k = g->nproducts; k <= (size_t)id; k++) np[k].last_time = INT64_MIN;
    g->products = np;
    g->nproducts = (size_t)id + 1;
  }
  return &g->products[id];
}

/* Missing ids right after the newest: one range with the pending range
 * that ends at the newest id, if any (heartbeats announce ids second by
 * second while a stretch is missing: that is one gap, not one per second).
 * The later deadline holds for the whole range. */
static int extend_range(product *pr, int64_t from, int64_t to, int64_t deadline);

static int add_range(product *pr, int64_t from, int64_t to, int64_t deadline) {
  if (pr->n == pr->cap) {
    size_t nc = pr->cap ? pr->cap * 2 : 4;
    range *nr = realloc(pr->pending, nc * sizeof *nr);
    if (!nr) return -1;
    pr->pending = nr;
    pr->cap = nc;
  }
  pr->pending[pr->n++] = (range){from, to, deadline};
  return 0;
}

static int extend_range(product *pr, int64_t from, int64_t to, int64_t deadline) {
  for (size_t i = 0; i < pr->n; i++)
    if (pr->pending[i].to == from - 1) {
      pr->pending[i].to = to;
      if (deadline > pr->pending[i].deadline) pr->pending[i].deadline = deadline;
      return 0;
    }
  return add_range(pr, from, to, deadline);
}

/* Moves the high mark to `id`, leaving what lies between pending. An id
 * more than CS_GAPS_MAX_JUMP beyond the mark is not believed: it is left
 * out of gap tracking (2) rather than declaring billions of trades missing
 * and hiding every later gap behind it. */
static int advance(cs_gaps *g, product *pr, int64_t id, int64_t deadline) {
  if (!pr->has_last) {
    pr->has_last = 1;
    pr->last = id;
    return 0;
  }
  if (id <= pr->last) return 1;
  if ((uint64_t)id - (uint64_t)pr->last > CS_GAPS_MAX_JUMP) return 2;
  if (id > pr->last + 1) {
    if (extend_range(pr, pr->last + 1, id - 1, deadline) != 0) return -1;
    g->pending += (uint64_t)(id - 1 - pr->last);
  }
  pr->last = id;
  return 0;
}

/* A valid trade of product pr. */
static int trade(cs_gaps *g, product *pr, int64_t id, int64_t deadline) {
  int r = advance(g, pr, id, deadline);
  if (r != 1) return r;
  /* An older id: it may fill a pending range. Ranges are few. */
  for (size_t i = 0; i < pr->n; i++) {
    range *x = &pr->pending[i];
    if (id < x->from || id > x->to) continue;
    g->pending--;
    if (x->from == x->to) {
      pr->pending[i] = pr->pending[--pr->n];
    } else if (id == x->from) {
      x->from++;
    } else if (id == x->to) {
      x->to--;
    } else {
      range rest = {id + 1, x->to, x->deadline};
      x->to = id - 1;
      if (add_range(pr, rest.from, rest.to, rest.deadline) != 0) return -1;
    }
    break;
  }
  return 0;
}

int cs_gaps_trade(cs_gaps *g, const char *name, size_t len, int64_t id, int64_t deadline) {
  product *pr = get(g, name, len);
  return pr ? trade(g, pr, id, deadline) : -1;
}

int cs_gaps_trade_at(cs_gaps *g, const char *name, size_t len, int64_t id, int64_t time_us, int64_t deadline) {
  product *pr = get(g, name, len);
  if (!pr) return -1;
  pr->trades++;
  if (time_us > pr->last_time) pr->last_time = time_us;
  return trade(g, pr, id, deadline);
}

int cs_gaps_heartbeat(cs_gaps *g, const char *name, size_t len, int64_t last_trade_id, int64_t deadline) {
  product *pr = get(g, name, len);
  if (!pr) return -1;
  if (!pr->has_last) {
    pr->has_last = 1;
    pr->last = last_trade_id;
    return 0;
  }
  if (last_trade_id <= pr->last) return 0;
  if ((uint64_t)last_trade_id - (uint64_t)pr->last > CS_GAPS_MAX_JUMP) return 2;
  /* The announced trade itself has not arrived either. */
  if (extend_range(pr, pr->last + 1, last_trade_id, deadline) != 0) return -1;
  g->pending += (uint64_t)(last_trade_id - pr->last);
  pr->last = last_trade_id;
  return 0;
}

static void expire(cs_gaps *g, int all, int64_t clock, cs_gaps_fn fn, void *ud) {
  for (size_t p = 0; p < g->nproducts; p++) {
    product *pr = &g->products[p];
    for (size_t i = 0; i < pr->n;) {
      range x = pr->pending[i];
      if (!all && x.deadline > clock) {
        i++;
        continue;
      }
      g->pending -= (uint64_t)(x.to - x.from + 1);
      pr->gaps++;
      pr->missing += (uint64_t)(x.to - x.from + 1);
      pr->pending[i] = pr->pending[--pr->n];
      fn(ud, cs_intern_name(g->names, (uint32_t)p), x.from, x.to);
    }
  }
}

void cs_gaps_expire(cs_gaps *g, int64_t clock_us, cs_gaps_fn fn, void *ud) { expire(g, 0, clock_us, fn, ud); }
void cs_gaps_flush(cs_gaps *g, cs_gaps_fn fn, void *ud) { expire(g, 1, 0, fn, ud); }
uint64_t cs_gaps_pending(const cs_gaps *g) { return g->pending; }

size_t cs_gaps_product_count(const cs_gaps *g) { return g->nproducts; }

void cs_gaps_product_info(const cs_gaps *g, size_t i, cs_gaps_product *out) {
  const product *pr = &g->products[i];
  out->name = cs_intern_name(g->names, (uint32_t)i);
  out->trades = pr->trades;
  out->last_time_us = pr->last_time;
  out->last_id = pr->has_last ? pr->last : -1;
  out->gaps = pr->gaps;
  out->missing = pr->missing;
}
