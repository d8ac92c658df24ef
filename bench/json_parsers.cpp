// Parser choice for the hot path: parse every line of a Coinbase capture and
// read the fields a trade needs, with each Debian JSON library (json-c's
// header clashes with jansson's; it is the slowest of the four in public
// comparisons and was left out).
// Build: g++ -O2 -std=c++17 bench/json_parsers.cpp -lsimdjson -lcjson -ljansson
// Run:   ./a.out data/coinbase-exchange-matches-2025-08-22.jsonl [repeat]
#include <simdjson.h>
#include <cjson/cJSON.h>
#include <jansson.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

static std::vector<std::string> lines;
static volatile long sink;

template <class F> static void run(const char *name, int repeat, F f) {
  auto t0 = std::chrono::steady_clock::now();
  long n = 0;
  for (int r = 0; r < repeat; r++)
    for (auto &l : lines) { sink += f(l); n++; }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("%-10s %8.2f M lines/s  %6.0f ns/line\n", name, n / s / 1e6, s * 1e9 / n);
}

int main(int argc, char **argv) {
  std::ifstream in(argv[1]);
  int repeat = argc > 2 ? atoi(argv[2]) : 2000;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  simdjson::dom::parser sp;
  run("simdjson", repeat, [&](std::string &l) {
    simdjson::dom::element e;
    if (sp.parse(l.data(), l.size(), l.capacity() - l.size() < simdjson::SIMDJSON_PADDING).get(e)) return 0L;
    long k = 0;
    simdjson::dom::object o;
    if (e.get_object().get(o)) return 0L;
    for (auto f : o) k += f.key.size() + (f.value.is_string() ? 1 : 0);
    return k;
  });
  run("cJSON", repeat, [&](std::string &l) {
    cJSON *o = cJSON_ParseWithLength(l.data(), l.size());
    long k = 0;
    for (cJSON *c = o ? o->child : nullptr; c; c = c->next) k += strlen(c->string) + cJSON_IsString(c);
    cJSON_Delete(o);
    return k;
  });
  run("jansson", repeat, [&](std::string &l) {
    json_t *o = json_loadb(l.data(), l.size(), 0, nullptr);
    long k = 0; const char *key; json_t *v;
    if (o) { json_object_foreach(o, key, v) k += strlen(key) + json_is_string(v); json_decref(o); }
    return k;
  });
}
