#include "cs_hmap.h"

#include <stdlib.h>

static inline uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

void cs_hmap_init(cs_hmap *m) {
  m->slots = NULL;
  m->cap = m->len = 0;
}

void cs_hmap_free(cs_hmap *m) {
  free(m->slots);
  cs_hmap_init(m);
}

uint64_t *cs_hmap_get(const cs_hmap *m, uint64_t a, uint64_t b) {
  if (!m->cap) return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = mix(a, b) & mask;; i = (i + 1) & mask) {
    cs_hmap_slot *s = &m->slots[i];
    if (!s->used) return NULL;
    if (s->a == a && s->b == b) return &s->val;
  }
}

static int grow(cs_hmap *m) {
  size_t ncap = m->cap ? m->cap * 2 : 64;
  cs_hmap_slot *ns = calloc(ncap, sizeof *ns);
  if (!ns) return -1;
  for (size_t i = 0; i < m->cap; i++) {
    cs_hmap_slot *s = &m->slots[i];
    if (!s->used) continue;
    size_t j = mix(s->a, s->b) & (ncap - 1);
    while (ns[j].used) j = (j + 1) & (ncap - 1);
    ns[j] = *s;
  }
  free(m->slots);
  m->slots = ns;
  m->cap = ncap;
  return 0;
}

int cs_hmap_put(cs_hmap *m, uint64_t a, uint64_t b, uint64_t val) {
  if ((m->len + 1) * 4 > m->cap * 3 && grow(m) != 0) return -1; /* load <= 3/4 */
  size_t mask = m->cap - 1;
  for (size_t i = mix(a, b) & mask;; i = (i + 1) & mask) {
    cs_hmap_slot *s = &m->slots[i];
    if (!s->used) {
      s->used = 1;
      s->a = a;
      s->b = b;
      s->val = val;
      m->len++;
      return 0;
    }
    if (s->a == a && s->b == b) {
      s->val = val;
      return 0;
    }
  }
}

int cs_hmap_del(cs_hmap *m, uint64_t a, uint64_t b) {
  if (!m->cap) return 0;
  size_t mask = m->cap - 1, i = mix(a, b) & mask;
  for (;; i = (i + 1) & mask) {
    if (!m->slots[i].used) return 0;
    if (m->slots[i].a == a && m->slots[i].b == b) break;
  }
  /* Backward shift: pull later members of the probe chain into the hole
   * when their home slot is not between the hole and themselves. */
  size_t hole = i;
  for (size_t j = (i + 1) & mask; m->slots[j].used; j = (j + 1) & mask) {
    size_t home = mix(m->slots[j].a, m->slots[j].b) & mask;
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      m->slots[hole] = m->slots[j];
      hole = j;
    }
  }
  m->slots[hole].used = 0;
  m->len--;
  return 1;
}
