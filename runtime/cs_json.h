/* cs_json: a thin C interface to simdjson's DOM parser (libsimdjson-dev).
 *
 * simdjson was chosen for the hot path by measurement (docs/json.md): it
 * validates the whole document (grammar and UTF-8) at about 180 ns per
 * Coinbase match line here, where cJSON takes ~1,200 ns and jansson ~5,900.
 *
 * A cs_json parser owns reusable buffers; values it returns (strings too)
 * point into them and stay valid until the next cs_json_parse on the same
 * parser. Values are small opaque handles copied by value. Not thread-safe:
 * one parser per thread. */
#ifndef CS_JSON_H
#define CS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes that must be readable after the end of the input given to
 * cs_json_parse without copying (their content does not matter). */
#define CS_JSON_PADDING 64

typedef enum {
  CS_JSON_NULL,
  CS_JSON_BOOL,
  CS_JSON_INT,    /* fits int64 */
  CS_JSON_UINT,   /* above INT64_MAX, fits uint64 */
  CS_JSON_DOUBLE, /* has a fraction or exponent */
  CS_JSON_STRING,
  CS_JSON_ARRAY,
  CS_JSON_OBJECT
} cs_json_type;

typedef struct cs_json cs_json;
typedef struct cs_json_val {
  uint64_t opaque[2];
} cs_json_val;
typedef struct cs_json_iter {
  uint64_t opaque[4];
} cs_json_iter;

cs_json *cs_json_create(void);
void cs_json_destroy(cs_json *json); /* NULL is a no-op */

/* Parses buf[0..len). Note: simdjson's DOM rejects a document holding an
 * integer literal outside the 64-bit range (no fraction or exponent), so
 * such a line fails to parse — cstream counts it invalid (docs/json.md). If `padded` is true, CS_JSON_PADDING bytes after
 * buf+len are readable and the input is not copied. Returns 0 and the root,
 * or -1 with simdjson's description of the error in *why. */
int cs_json_parse(cs_json *json, const char *buf, size_t len, bool padded, cs_json_val *root, const char **why);

cs_json_type cs_json_type_of(const cs_json_val *v);
const char *cs_json_type_name(cs_json_type t);
/* Accessors: valid only for the matching type. */
int64_t cs_json_int(const cs_json_val *v);
bool cs_json_bool(const cs_json_val *v);
double cs_json_double(const cs_json_val *v);
/* Unescaped string bytes (not NUL-terminated in general). */
const char *cs_json_str(const cs_json_val *v, size_t *len);

/* Iterates an object's members in document order (duplicates included). */
void cs_json_obj_iter(const cs_json_val *obj, cs_json_iter *it);
bool cs_json_obj_next(cs_json_iter *it, const char **key, size_t *klen, cs_json_val *val);
/* Picks members out of an object in one pass: `index` maps a key to a slot
 * in [0, 32) or -1 to skip it. vals[slot] gets the first occurrence, bit
 * `slot` of *seen is set, and bit `slot` of *dup when the key occurs again.
 * Faster than iterating member by member from C. */
void cs_json_obj_pick(const cs_json_val *obj, int (*index)(const char *key, size_t len), cs_json_val *vals,
                      uint32_t *seen, uint32_t *dup);

/* Iterates an array's elements in order. */
void cs_json_arr_iter(const cs_json_val *arr, cs_json_iter *it);
bool cs_json_arr_next(cs_json_iter *it, cs_json_val *val);

#ifdef __cplusplus
}
#endif
#endif
