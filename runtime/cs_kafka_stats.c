#include "cs_kafka_stats.h"

#include <string.h>

#include "cs_json.h"

static uint64_t as_u64(const cs_json_val *v) {
  cs_json_type t = cs_json_type_of(v);
  if (t == CS_JSON_INT) return cs_json_int(v) > 0 ? (uint64_t)cs_json_int(v) : 0;
  return 0;
}

int cs_kafka_stats_parse(const char *json, size_t len, cs_kafka_stats *out) {
  cs_json *j = cs_json_create();
  if (!j) return -1;
  cs_json_val root, v, b;
  cs_json_iter it, bit;
  const char *why, *key;
  size_t klen;
  cs_kafka_stats st = {0, 0, 0};
  int found = 0;
  if (cs_json_parse(j, json, len, false, &root, &why) != 0 || cs_json_type_of(&root) != CS_JSON_OBJECT) {
    cs_json_destroy(j);
    return -1;
  }
  cs_json_obj_iter(&root, &it);
  while (cs_json_obj_next(&it, &key, &klen, &v)) {
    if (klen == 7 && memcmp(key, "msg_cnt", 7) == 0) {
      st.msg_cnt = as_u64(&v);
      found = 1;
    } else if (klen == 7 && memcmp(key, "brokers", 7) == 0 && cs_json_type_of(&v) == CS_JSON_OBJECT) {
      cs_json_obj_iter(&v, &bit);
      while (cs_json_obj_next(&bit, &key, &klen, &b)) {
        if (cs_json_type_of(&b) != CS_JSON_OBJECT) continue;
        cs_json_iter f;
        cs_json_val fv;
        cs_json_obj_iter(&b, &f);
        while (cs_json_obj_next(&f, &key, &klen, &fv)) {
          if (klen == 9 && memcmp(key, "txretries", 9) == 0) st.txretries += as_u64(&fv);
          if (klen == 6 && memcmp(key, "txerrs", 6) == 0) st.txerrs += as_u64(&fv);
        }
      }
    }
  }
  cs_json_destroy(j);
  if (!found) return -1;
  *out = st;
  return 0;
}
