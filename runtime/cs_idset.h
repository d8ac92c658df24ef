/* cs_idset: the window engine's duplicate index — a set of (product, trade
 * id) pairs, built for ids that are dense per product, as Coinbase trade
 * ids are (consecutive per product).
 *
 * Each product keeps a bitmap, one bit per id, over a sliding range of ids:
 * a ring of 64-bit words that follows the ids held and grows as they
 * spread, up to CS_IDSET_MAX_SPAN ids. An id the bitmap cannot cover (an
 * implausible jump, or ids spread wider than that) goes to a hash set
 * instead. Look-up, insertion and removal are O(1); removing a run of
 * consecutive ids clears whole words. Memory: about one bit per id between
 * a product's lowest and highest held id, where the hash set takes 32
 * bytes per id and a cache miss per operation.
 *
 * Uses cs_hmap. Single-threaded. */
#ifndef CS_IDSET_H
#define CS_IDSET_H

#include <stddef.h>
#include <stdint.h>

/* The widest range of ids one product's bitmap covers (1 MiB of bits). */
#define CS_IDSET_MAX_SPAN (UINT64_C(1) << 23)

typedef struct cs_idset cs_idset;

cs_idset *cs_idset_create(void); /* NULL when out of memory */
void cs_idset_destroy(cs_idset *s); /* NULL is a no-op */

/* 1 when (product, id) is in the set. */
int cs_idset_has(const cs_idset *s, uint32_t product, int64_t id);
/* Adds (product, id), which must not be in the set. 0, or -1 when out of
 * memory (the set is unchanged). */
int cs_idset_add(cs_idset *s, uint32_t product, int64_t id);
/* Removes the ids from..to (inclusive) of product, each of which must be
 * in the set. */
void cs_idset_del_run(cs_idset *s, uint32_t product, int64_t from, int64_t to);
/* Pairs in the set. */
size_t cs_idset_count(const cs_idset *s);

#endif
