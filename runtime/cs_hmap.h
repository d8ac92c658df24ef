/* cs_hmap: an open-addressing hash map from a pair of 64-bit integers to a
 * 64-bit value, with linear probing and backward-shift deletion (no
 * tombstones, so a map that churns — window ids added and removed for every
 * trade — never degrades). Used by the window engine for its open windows
 * and its duplicate-trade index. Allocates as it grows; never shrinks. */
#ifndef CS_HMAP_H
#define CS_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cs_hmap_slot {
  uint64_t a, b, val;
  uint8_t used;
} cs_hmap_slot;

typedef struct cs_hmap {
  cs_hmap_slot *slots;
  size_t cap; /* power of two, 0 before the first insert */
  size_t len;
} cs_hmap;

void cs_hmap_init(cs_hmap *m);
void cs_hmap_free(cs_hmap *m);

/* Returns a pointer to the value for (a, b), or NULL. */
uint64_t *cs_hmap_get(const cs_hmap *m, uint64_t a, uint64_t b);
/* Inserts or overwrites; returns 0, or -1 when out of memory. */
int cs_hmap_put(cs_hmap *m, uint64_t a, uint64_t b, uint64_t val);
/* Removes (a, b); returns 1 if it was there. */
int cs_hmap_del(cs_hmap *m, uint64_t a, uint64_t b);

#endif
