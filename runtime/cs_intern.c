#include "cs_intern.h"

#include <stdlib.h>
#include <string.h>

struct cs_intern {
  char **names;
  uint32_t *lens;
  size_t count, names_cap;
  int32_t *table; /* id + 1, 0 = empty */
  uint64_t *hashes;
  size_t cap;
};

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  return h;
}

cs_intern *cs_intern_create(void) { return calloc(1, sizeof(cs_intern)); }

void cs_intern_destroy(cs_intern *in) {
  if (!in) return;
  for (size_t i = 0; i < in->count; i++) free(in->names[i]);
  free(in->names);
  free(in->lens);
  free(in->table);
  free(in->hashes);
  free(in);
}

static int rehash(cs_intern *in) {
  size_t ncap = in->cap ? in->cap * 2 : 64;
  int32_t *nt = calloc(ncap, sizeof *nt);
  if (!nt) return -1;
  for (size_t id = 0; id < in->count; id++) {
    size_t j = in->hashes[id] & (ncap - 1);
    while (nt[j]) j = (j + 1) & (ncap - 1);
    nt[j] = (int32_t)id + 1;
  }
  free(in->table);
  in->table = nt;
  in->cap = ncap;
  return 0;
}

int64_t cs_intern_id(cs_intern *in, const char *s, size_t len) {
  uint64_t h = fnv1a(s, len);
  if (in->cap) {
    for (size_t j = h & (in->cap - 1); in->table[j]; j = (j + 1) & (in->cap - 1)) {
      size_t id = (size_t)in->table[j] - 1;
      if (in->hashes[id] == h && in->lens[id] == len && memcmp(in->names[id], s, len) == 0) return (int64_t)id;
    }
  }
  if (in->count >= INT32_MAX - 1) return -1;
  if (in->count == in->names_cap) {
    size_t nc = in->names_cap ? in->names_cap * 2 : 16;
    char **nn = realloc(in->names, nc * sizeof *nn);
    if (!nn) return -1;
    in->names = nn;
    uint32_t *nl = realloc(in->lens, nc * sizeof *nl);
    if (!nl) return -1;
    in->lens = nl;
    uint64_t *nh = realloc(in->hashes, nc * sizeof *nh);
    if (!nh) return -1;
    in->hashes = nh;
    in->names_cap = nc;
  }
  char *copy = malloc(len + 1);
  if (!copy) return -1;
  memcpy(copy, s, len);
  copy[len] = 0;
  size_t id = in->count;
  in->names[id] = copy;
  in->lens[id] = (uint32_t)len;
  in->hashes[id] = h;
  in->count++;
  if (in->count * 2 > in->cap) {
    if (rehash(in) != 0) {
      in->count--;
      free(copy);
      return -1;
    }
  } else {
    size_t j = h & (in->cap - 1);
    while (in->table[j]) j = (j + 1) & (in->cap - 1);
    in->table[j] = (int32_t)id + 1;
  }
  return (int64_t)id;
}

const char *cs_intern_name(const cs_intern *in, uint32_t id) { return id < in->count ? in->names[id] : NULL; }
size_t cs_intern_count(const cs_intern *in) { return in->count; }
