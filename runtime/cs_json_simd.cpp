// The one C++ file: cs_json.h on top of simdjson's DOM API. dom::element
// and the iterators are trivially copyable (a document pointer and a tape
// index), so they are stored by value in the opaque C handles.
#include "cs_json.h"

#include <simdjson.h>

#include <cstring>
#include <new>
#include <type_traits>

using namespace simdjson;

struct cs_json {
  dom::parser parser;
};

static_assert(sizeof(dom::element) <= sizeof(cs_json_val), "dom::element fits the C handle");
static_assert(std::is_trivially_copyable<dom::element>::value, "dom::element is copyable as bytes");
struct obj_state {
  dom::object::iterator cur, end;
};
struct arr_state {
  dom::array::iterator cur, end;
};
static_assert(sizeof(obj_state) <= sizeof(cs_json_iter), "object iterators fit the C handle");
static_assert(sizeof(arr_state) <= sizeof(cs_json_iter), "array iterators fit the C handle");
static_assert(std::is_trivially_copyable<obj_state>::value, "iterators are copyable as bytes");
static_assert(std::is_trivially_copyable<arr_state>::value, "iterators are copyable as bytes");

static dom::element el(const cs_json_val *v) {
  dom::element e;
  std::memcpy(static_cast<void *>(&e), v->opaque, sizeof e);
  return e;
}
static void put(cs_json_val *v, dom::element e) { std::memcpy(v->opaque, static_cast<void *>(&e), sizeof e); }

extern "C" {

cs_json *cs_json_create(void) { return new (std::nothrow) cs_json(); }

void cs_json_destroy(cs_json *json) { delete json; }

int cs_json_parse(cs_json *json, const char *buf, size_t len, bool padded, cs_json_val *root, const char **why) {
  dom::element e;
  error_code ec = json->parser.parse(buf, len, !padded).get(e);
  if (ec) {
    *why = error_message(ec);
    return -1;
  }
  put(root, e);
  return 0;
}

cs_json_type cs_json_type_of(const cs_json_val *v) {
  switch (el(v).type()) {
    case dom::element_type::ARRAY: return CS_JSON_ARRAY;
    case dom::element_type::OBJECT: return CS_JSON_OBJECT;
    case dom::element_type::INT64: return CS_JSON_INT;
    case dom::element_type::UINT64: return CS_JSON_UINT;
    case dom::element_type::DOUBLE: return CS_JSON_DOUBLE;
    case dom::element_type::STRING: return CS_JSON_STRING;
    case dom::element_type::BOOL: return CS_JSON_BOOL;
    case dom::element_type::NULL_VALUE: return CS_JSON_NULL;
  }
  return CS_JSON_NULL;
}

const char *cs_json_type_name(cs_json_type t) {
  static const char *const names[] = {"null", "boolean", "integer", "integer", "number", "string", "array", "object"};
  return names[t];
}

int64_t cs_json_int(const cs_json_val *v) { return el(v).get_int64().value_unsafe(); }
bool cs_json_bool(const cs_json_val *v) { return el(v).get_bool().value_unsafe(); }
double cs_json_double(const cs_json_val *v) {
  dom::element e = el(v);
  double d;
  if (!e.get_double().get(d)) return d;
  int64_t i;
  if (!e.get_int64().get(i)) return (double)i;
  uint64_t u;
  if (!e.get_uint64().get(u)) return (double)u;
  return 0;
}

const char *cs_json_str(const cs_json_val *v, size_t *len) {
  std::string_view s = el(v).get_string().value_unsafe();
  *len = s.size();
  return s.data();
}

void cs_json_obj_iter(const cs_json_val *obj, cs_json_iter *it) {
  dom::object o = el(obj).get_object().value_unsafe();
  obj_state st{o.begin(), o.end()};
  std::memcpy(it->opaque, static_cast<void *>(&st), sizeof st);
}

bool cs_json_obj_next(cs_json_iter *it, const char **key, size_t *klen, cs_json_val *val) {
  obj_state st;
  std::memcpy(static_cast<void *>(&st), it->opaque, sizeof st);
  if (st.cur == st.end) return false;
  std::string_view k = st.cur.key();
  *key = k.data();
  *klen = k.size();
  put(val, st.cur.value());
  ++st.cur;
  std::memcpy(it->opaque, static_cast<void *>(&st), sizeof st);
  return true;
}

void cs_json_obj_pick(const cs_json_val *obj, int (*index)(const char *key, size_t len), cs_json_val *vals,
                      uint32_t *seen, uint32_t *dup) {
  uint32_t s = 0, d = 0;
  dom::object o = el(obj).get_object().value_unsafe();
  for (dom::key_value_pair kv : o) {
    int i = index(kv.key.data(), kv.key.size());
    if (i < 0) continue;
    uint32_t bit = 1u << i;
    if (s & bit) {
      d |= bit;
      continue;
    }
    s |= bit;
    put(&vals[i], kv.value);
  }
  *seen = s;
  *dup = d;
}

void cs_json_arr_iter(const cs_json_val *arr, cs_json_iter *it) {
  dom::array a = el(arr).get_array().value_unsafe();
  arr_state st{a.begin(), a.end()};
  std::memcpy(it->opaque, static_cast<void *>(&st), sizeof st);
}

bool cs_json_arr_next(cs_json_iter *it, cs_json_val *val) {
  arr_state st;
  std::memcpy(static_cast<void *>(&st), it->opaque, sizeof st);
  if (st.cur == st.end) return false;
  put(val, *st.cur);
  ++st.cur;
  std::memcpy(it->opaque, static_cast<void *>(&st), sizeof st);
  return true;
}

}  // extern "C"
