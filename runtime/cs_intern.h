/* cs_intern: gives every distinct key string (a product id) a small
 * integer and one stable NUL-terminated copy, so the window engine compares
 * and hashes integers. Strings live until cs_intern_destroy. */
#ifndef CS_INTERN_H
#define CS_INTERN_H

#include <stddef.h>
#include <stdint.h>

typedef struct cs_intern cs_intern;

cs_intern *cs_intern_create(void);
void cs_intern_destroy(cs_intern *in); /* NULL is a no-op */

/* Returns the id of s[0..len) (adding it if new), or -1 when out of memory. */
int64_t cs_intern_id(cs_intern *in, const char *s, size_t len);
const char *cs_intern_name(const cs_intern *in, uint32_t id);
size_t cs_intern_count(const cs_intern *in);

#endif
