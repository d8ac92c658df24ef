#include "cs_idset.h"

#include <stdlib.h>
#include <string.h>

#include "cs_hmap.h"

#define MIN_WORDS 16
#define MAX_WORDS (CS_IDSET_MAX_SPAN / 64)

/* One product: a ring of `cap` words (a power of two) covering the word
 * indices lo .. lo + cap - 1; word index i lives at w[i & (cap - 1)].
 * Every word outside that range is zero. */
typedef struct bits {
  uint64_t *w;
  uint64_t lo;
  size_t cap;
  uint64_t count;   /* ids held in the bitmap */
  uint64_t nsparse; /* ids of this product held in the hash set */
} bits;

struct cs_idset {
  bits *p;
  size_t np;
  cs_hmap sparse; /* (product, key) -> 1 */
  size_t count;
};

/* Ids as unsigned keys in the same order (negative ids sort first). */
static inline uint64_t key_of(int64_t id) { return (uint64_t)id ^ (UINT64_C(1) << 63); }

cs_idset *cs_idset_create(void) {
  cs_idset *s = calloc(1, sizeof *s);
  if (s) cs_hmap_init(&s->sparse);
  return s;
}

void cs_idset_destroy(cs_idset *s) {
  if (!s) return;
  for (size_t i = 0; i < s->np; i++) free(s->p[i].w);
  free(s->p);
  cs_hmap_free(&s->sparse);
  free(s);
}

size_t cs_idset_count(const cs_idset *s) { return s->count; }

static inline int in_ring(const bits *b, uint64_t wi) { return b->w && wi - b->lo < b->cap; }

int cs_idset_has(const cs_idset *s, uint32_t product, int64_t id) {
  if (product >= s->np) return 0;
  const bits *b = &s->p[product];
  uint64_t k = key_of(id), wi = k >> 6;
  if (b->count && in_ring(b, wi) && (b->w[wi & (b->cap - 1)] >> (k & 63) & 1)) return 1;
  return b->nsparse && cs_hmap_get(&s->sparse, product, k) != NULL;
}

/* Makes the ring cover word index wi, sliding it over zero words or
 * growing it. 0, or -1 when it cannot (too wide, or out of memory). */
static int cover(bits *b, uint64_t wi) {
  if (in_ring(b, wi)) return 0;
  size_t mask = b->cap - 1;
  if (!b->count) { /* empty: start afresh around wi, with room below */
    b->lo = wi - (wi < b->cap / 4 ? wi : b->cap / 4);
    return 0;
  }
  /* The words in use: first .. last. */
  uint64_t first = b->lo, last = b->lo + b->cap - 1;
  while (!b->w[first & mask]) first++;
  while (!b->w[last & mask]) last--;
  uint64_t lo = wi < first ? wi : first, hi = wi > last ? wi : last;
  uint64_t need = hi - lo + 1;
  if (need > MAX_WORDS) return -1;
  size_t cap = b->cap;
  /* Keep half the ring free, so that the scans above stay rare. */
  while (cap < MAX_WORDS && cap < 2 * need) cap *= 2;
  if (cap != b->cap) {
    uint64_t *nw = calloc(cap, sizeof *nw);
    if (!nw) return -1;
    for (uint64_t i = first; i <= last; i++) nw[i & (cap - 1)] = b->w[i & mask];
    free(b->w);
    b->w = nw;
    b->cap = cap;
  }
  /* Room below for ids a little older, the rest above. */
  uint64_t below = (cap - need) / 4;
  b->lo = lo - (lo < below ? lo : below);
  return 0;
}

static bits *product_bits(cs_idset *s, uint32_t product) {
  if (product >= s->np) {
    size_t n = s->np ? s->np : 8;
    while (n <= product) n *= 2;
    bits *np = realloc(s->p, n * sizeof *np);
    if (!np) return NULL;
    memset(np + s->np, 0, (n - s->np) * sizeof *np);
    s->p = np;
    s->np = n;
  }
  bits *b = &s->p[product];
  if (!b->w) {
    if (!(b->w = calloc(MIN_WORDS, sizeof *b->w))) return NULL;
    b->cap = MIN_WORDS;
  }
  return b;
}

int cs_idset_add(cs_idset *s, uint32_t product, int64_t id) {
  bits *b = product_bits(s, product);
  if (!b) return -1;
  uint64_t k = key_of(id), wi = k >> 6;
  if (cover(b, wi) == 0) {
    b->w[wi & (b->cap - 1)] |= UINT64_C(1) << (k & 63);
    b->count++;
  } else {
    if (cs_hmap_put(&s->sparse, product, k, 1) != 0) return -1;
    b->nsparse++;
  }
  s->count++;
  return 0;
}

void cs_idset_del_run(cs_idset *s, uint32_t product, int64_t from, int64_t to) {
  if (product >= s->np || from > to) return;
  bits *b = &s->p[product];
  uint64_t kf = key_of(from), kt = key_of(to);
  if (!b->nsparse) { /* all in the bitmap: whole words at a time */
    for (uint64_t wi = kf >> 6; wi <= kt >> 6; wi++) {
      if (!in_ring(b, wi)) continue; /* cannot happen when the caller keeps the contract */
      uint64_t m = ~UINT64_C(0);
      if (wi == kf >> 6) m &= ~UINT64_C(0) << (kf & 63);
      if (wi == kt >> 6) m &= ~UINT64_C(0) >> (63 - (kt & 63));
      uint64_t *w = &b->w[wi & (b->cap - 1)];
      uint64_t n = (uint64_t)__builtin_popcountll(*w & m);
      *w &= ~m;
      b->count -= n;
      s->count -= n;
    }
    return;
  }
  for (uint64_t k = kf;; k++) { /* some in the hash set: id by id */
    uint64_t wi = k >> 6, bit = UINT64_C(1) << (k & 63);
    uint64_t *w = in_ring(b, wi) ? &b->w[wi & (b->cap - 1)] : NULL;
    if (w && (*w & bit)) {
      *w &= ~bit;
      b->count--;
      s->count--;
    } else if (cs_hmap_del(&s->sparse, product, k)) {
      b->nsparse--;
      s->count--;
    }
    if (k == kt) break;
  }
}
