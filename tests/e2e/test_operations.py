#!/usr/bin/env python3
"""End-to-end tests of operating cstream (docs/operations.md):

* /metrics, parsed by a strict Prometheus text-format (0.0.4) parser written
  here (and, when python3-prometheus-client is installed, by its parser
  too), during a replay and during a live run against a WebSocket server on
  loopback (tests/e2e/ws_scenario_server.py);
* /healthz: 200 while the source is connected, 503 with a JSON reason once
  the server is killed, 200 again after the reconnect; 503 while a sink
  cannot write;
* the HTTP endpoints' edges (HEAD, 404, 405, 400, 431, several clients);
* log formats (logfmt, json), the progress line and the live status line on
  a terminal (a pty), nothing of them when not a terminal;
* `cstream check` and `cstream test` on good and broken scripts and specs.

    /usr/bin/python3 tests/e2e/test_operations.py --cstream build/cstream
"""
import json
import math
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_replay import _take_cstream_arg, parse_summaries  # noqa: E402

CSTREAM = None
PY = "/usr/bin/python3"
SAMPLE = os.path.join(ROOT, "data", "sample.jsonl")

# ---------------------------------------------------------------- a strict parser

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ParseError(AssertionError):
    pass


def _value(s, where):
    if s in ("NaN", "+Inf", "-Inf"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", s):
        raise ParseError("%s: bad value %r" % (where, s))
    return float(s)


def _labels(text, where):
    """Parses `a="x",b="y"` (inside the braces); returns a dict."""
    out, i = {}, 0
    while i < len(text):
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", text[i:])
        if not m:
            raise ParseError("%s: bad label at %r" % (where, text[i:]))
        name = m.group(1)
        i += m.end()
        val = []
        while True:
            if i >= len(text):
                raise ParseError("%s: unterminated label value" % where)
            c = text[i]
            if c == "\\":
                if i + 1 >= len(text) or text[i + 1] not in '\\"n':
                    raise ParseError("%s: bad escape in a label value" % where)
                val.append({"\\": "\\", '"': '"', "n": "\n"}[text[i + 1]])
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ParseError("%s: newline in a label value" % where)
            else:
                val.append(c)
                i += 1
        if name in out:
            raise ParseError("%s: label %s twice" % (where, name))
        out[name] = "".join(val)
        if i < len(text):
            if text[i] != ",":
                raise ParseError("%s: expected ',' between labels" % where)
            i += 1
            if i == len(text):
                raise ParseError("%s: trailing comma in labels" % where)
    return out


def parse_prometheus(text):
    """Strict Prometheus text format 0.0.4 -> {family: {"type", "help", "samples": [(name, labels, value)]}}.

    Checks: the text ends with a newline and has no blank lines; names and
    label names are valid; label values correctly escaped and quoted; no
    label twice; values are floats (or NaN/+Inf/-Inf); at most one HELP and
    TYPE per family, TYPE before its samples; a family's samples are
    contiguous; no series twice; histograms have ascending `le` buckets,
    cumulative counts, a +Inf bucket equal to _count, and _sum; counters
    are >= 0."""
    if not text.endswith("\n"):
        raise ParseError("the page does not end with a newline")
    fams, order, series = {}, [], set()
    current = None

    def family_of(name):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in fams and fams[base]["type"] in ("histogram", "summary"):
                return base
        return name

    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d" % n
        if line == "":
            raise ParseError("%s: blank line" % where)
        if line.startswith("#"):
            m = re.match(r"# (HELP|TYPE) (\S+)(?: (.*))?\Z", line)
            if not m:
                continue  # a comment
            kind, name, rest = m.group(1), m.group(2), m.group(3) or ""
            if not NAME.match(name):
                raise ParseError("%s: bad metric name %r" % (where, name))
            f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
            if name not in order:
                order.append(name)
            if f["samples"]:
                raise ParseError("%s: %s of %s after its samples" % (where, kind, name))
            if current is not None and current != name and name in order[:-1] and fams[name]["samples"]:
                raise ParseError("%s: %s reappears" % (where, name))
            if kind == "HELP":
                if f["help"] is not None:
                    raise ParseError("%s: second HELP for %s" % (where, name))
                if re.search(r"\\[^\\n]", rest) or rest.endswith("\\") and not rest.endswith("\\\\"):
                    raise ParseError("%s: bad escape in HELP" % where)
                f["help"] = rest
            else:
                if f["type"] is not None:
                    raise ParseError("%s: second TYPE for %s" % (where, name))
                if rest not in TYPES:
                    raise ParseError("%s: unknown type %r" % (where, rest))
                f["type"] = rest
            current = name
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?\Z", line)
        if not m:
            raise ParseError("%s: not a sample: %r" % (where, line))
        name, labels = m.group(1), _labels(m.group(3) or "", where)
        value = _value(m.group(4), where)
        fam = family_of(name)
        if fam not in fams:
            fams[fam] = {"type": "untyped", "help": None, "samples": []}
            order.append(fam)
        f = fams[fam]
        if f["type"] is None:
            f["type"] = "untyped"
        if current != fam and f["samples"]:
            raise ParseError("%s: samples of %s are not together" % (where, fam))
        current = fam
        if f["type"] in ("counter", "gauge", "untyped") and name != fam:
            raise ParseError("%s: sample %s in family %s" % (where, name, fam))
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ParseError("%s: series %s%s twice" % (where, name, labels))
        series.add(key)
        if f["type"] == "counter" and not value >= 0:
            raise ParseError("%s: counter %s is %r" % (where, name, value))
        f["samples"].append((name, labels, value))
    for name, f in fams.items():
        if f["type"] == "histogram":
            _check_histogram(name, f["samples"])
    return fams


def _check_histogram(name, samples):
    groups = {}
    for s, labels, v in samples:
        base = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups.setdefault(base, {"buckets": [], "sum": None, "count": None})
        if s == name + "_bucket":
            if "le" not in labels:
                raise ParseError("%s: bucket without le" % name)
            g["buckets"].append((_value(labels["le"], name), v))
        elif s == name + "_sum":
            g["sum"] = v
        elif s == name + "_count":
            g["count"] = v
        else:
            raise ParseError("%s: unexpected sample %s" % (name, s))
    for base, g in groups.items():
        les = [le for le, _ in g["buckets"]]
        if not les or les[-1] != math.inf:
            raise ParseError("%s%s: no +Inf bucket" % (name, base))
        if les != sorted(les) or len(set(les)) != len(les):
            raise ParseError("%s%s: buckets not in ascending order" % (name, base))
        counts = [c for _, c in g["buckets"]]
        if counts != sorted(counts):
            raise ParseError("%s%s: bucket counts are not cumulative" % (name, base))
        if g["count"] is None or g["sum"] is None:
            raise ParseError("%s%s: _count or _sum missing" % (name, base))
        if counts[-1] != g["count"]:
            raise ParseError("%s%s: +Inf bucket %r != _count %r" % (name, base, counts[-1], g["count"]))


def check_conventions(tc, fams):
    """cstream's naming conventions (docs/operations.md)."""
    for name, f in fams.items():
        tc.assertTrue(name.startswith("cstream_") or name.startswith("process_"), name)
        tc.assertTrue(f["help"], "%s has no HELP" % name)
        if f["type"] == "counter":
            tc.assertTrue(name.endswith("_total"), "counter %s does not end in _total" % name)
        if f["type"] == "histogram":
            tc.assertTrue(name.endswith("_seconds"), "histogram %s is not in seconds" % name)
        for _, labels, _ in f["samples"]:
            for k in labels:
                tc.assertIn(k, ("pipeline", "product", "source", "sink", "le", "version", "topic", "partition"),
                            "%s: label %s" % (name, k))


def cross_check(tc, text):
    """The reference parser agrees, when it is installed."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return
    n = sum(len(f.samples) for f in text_string_to_metric_families(text))
    tc.assertGreater(n, 0)


def value(fams, name, **labels):
    f = fams.get(name)
    if f is None:
        return None
    for s, l, v in f["samples"]:
        if s == name and all(l.get(k) == x for k, x in labels.items()):
            return v
    return None


def hist_count(fams, name, **labels):
    for s, l, v in fams.get(name, {"samples": []})["samples"]:
        if s == name + "_count" and all(l.get(k) == x for k, x in labels.items()):
            return v
    return None


class ParserSelfTest(unittest.TestCase):
    """The strict parser refuses what it must."""

    GOOD = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1\\"\\\\\\n"} 3\n' \
           '# TYPE h_seconds histogram\nh_seconds_bucket{le="0.1"} 1\nh_seconds_bucket{le="+Inf"} 2\n' \
           'h_seconds_sum 0.3\nh_seconds_count 2\n'

    def test_good(self):
        f = parse_prometheus(self.GOOD)
        self.assertEqual(f["a_total"]["samples"][0][1]["x"], '1"\\\n')

    def test_bad(self):
        bad = [
            "a 1",                                               # no final newline
            "a 1\n\nb 2\n",                                      # blank line
            "a{x=1} 1\n",                                        # unquoted
            'a{x="1",x="2"} 1\n',                                # label twice
            'a{x="\\q"} 1\n',                                    # bad escape
            "a 1\na 2\n",                                        # series twice
            "a one\n",                                           # bad value
            "# TYPE a counter\na -1\n",                          # negative counter
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n",   # not contiguous
            "# TYPE a gauge\n# TYPE a gauge\na 1\n",             # TYPE twice
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",  # not cumulative
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",   # no +Inf
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",  # +Inf != count
        ]
        for b in bad:
            with self.subTest(page=b):
                with self.assertRaises(ParseError):
                    parse_prometheus(b)


# ---------------------------------------------------------------- helpers

def http(port, path, method="GET", timeout=5):
    """(status, headers, body) of one request."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def raw_http(port, data, timeout=5):
    """Sends raw bytes, returns everything the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b


class Proc:
    """A cstream process whose stderr is read as it comes."""

    def __init__(self, args, cwd=ROOT, env=None):
        self.p = subprocess.Popen([CSTREAM] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                                  env=env)
        self._err = b""

    def err_so_far(self):
        import fcntl
        fd = self.p.stderr.fileno()
        fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        try:
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                self._err += chunk
        except BlockingIOError:
            pass
        return self._err.decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, self.err_so_far())
            if m:
                return m
            if self.p.poll() is not None:
                return re.search(pattern, self.err_so_far())
            time.sleep(0.05)
        return None

    def metrics_port(self):
        m = self.wait_log(r"serving http://127\.0\.0\.1:(\d+)/metrics")
        if not m:
            raise AssertionError("no metrics port in the log:\n" + self.err_so_far())
        return int(m.group(1))

    def stop(self, sig=signal.SIGINT):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        out, err = self.p.communicate(timeout=60)
        self.err = (self._err + err).decode("utf-8", "replace")
        self.out = out.decode("utf-8", "replace")
        return self.p.returncode


def wait_for(fn, timeout=20, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


class Case(unittest.TestCase):
    def setUp(self):
        self.tmpd = tempfile.TemporaryDirectory()
        self.tmp = self.tmpd.name
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            try:
                if isinstance(p, Proc):
                    p.stop(signal.SIGKILL)
                else:
                    p.p.kill()
                    p.p.wait()
                    p.close()
            except Exception:
                pass
        self.tmpd.cleanup()

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def cstream(self, args, **kw):
        p = Proc(args, **kw)
        self.procs.append(p)
        return p

    def scrape(self, port):
        st, headers, body = http(port, "/metrics")
        self.assertEqual(st, 200)
        self.assertEqual(headers.get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        fams = parse_prometheus(body)
        check_conventions(self, fams)
        cross_check(self, body)
        return fams


REPLAY = """local cs = require "cstream"
cs.pipeline { name = "r", source = cs.replay { path = cs.arg("input"), rate = cs.arg("rate", 0) },
  window = cs.tumbling { size = "30s", lateness = "5s" }, sink = cs.jsonl { path = cs.arg("out", "-") } }
"""


# ---------------------------------------------------------------- metrics during a replay

class ReplayMetrics(Case):
    def test_metrics_during_a_replay(self):
        script = self.write("r.lua", REPLAY)
        out = os.path.join(self.tmp, "rows.jsonl")
        c = self.cstream(["--metrics-port", "0", "run", script, "input=" + SAMPLE, "rate=400", "out=" + out])
        port = c.metrics_port()
        pages, prev = [], None
        while c.p.poll() is None:
            try:
                fams = self.scrape(port)
            except (ConnectionError, urllib.error.URLError):
                break  # the run ended meanwhile
            msgs = value(fams, "cstream_messages_total", pipeline="r")
            if prev is not None:
                self.assertGreaterEqual(msgs, prev, "a counter went back")
            prev = msgs
            pages.append(fams)
            time.sleep(0.15)
        c.p.wait(timeout=60)  # the server closes when the replay has ended
        self.assertEqual(c.stop(), 0, c.err[-2000:])
        self.assertGreaterEqual(len(pages), 2, "too few scrapes during the replay")
        mid = [f for f in pages if value(f, "cstream_messages_total", pipeline="r") < 4416]
        self.assertTrue(mid, "no scrape while the replay was under way")
        f = pages[-1]
        s = parse_summaries(c.err.encode())["r"]
        for name, key in (("cstream_messages_total", "lines"), ("cstream_trades_total", "trades"),
                          ("cstream_windows_emitted_total", "windows"), ("cstream_invalid_total", "invalid"),
                          ("cstream_late_trades_total", "late"), ("cstream_duplicate_trades_total", "duplicates"),
                          ("cstream_ignored_messages_total", "ignored")):
            v = value(f, name, pipeline="r")
            self.assertIsNotNone(v, name)
            self.assertLessEqual(v, s[key], name)
        self.assertEqual(value(f, "cstream_pipeline_running", pipeline="r"), 1)
        self.assertGreater(value(f, "cstream_product_trades_total", pipeline="r", product="BTC-USD"), 0)
        self.assertGreater(value(f, "cstream_last_trade_timestamp_seconds", pipeline="r", product="ETH-USD"),
                           1.7e9)
        self.assertGreater(value(f, "cstream_watermark_lag_seconds", pipeline="r"), 0)
        self.assertEqual(value(f, "cstream_source_size_bytes", pipeline="r", source="replay"),
                         os.path.getsize(SAMPLE))
        self.assertEqual(value(f, "cstream_sink_acknowledging", pipeline="r", sink="jsonl"), 1)
        self.assertIsNotNone(value(f, "cstream_sink_batches_total", pipeline="r", sink="jsonl"))
        self.assertGreater(value(f, "process_resident_memory_bytes"), 1e6)
        self.assertEqual(f["cstream_build_info"]["samples"][0][2], 1)
        # No live-only histograms on a replay.
        self.assertNotIn("cstream_exchange_to_window_seconds", f)

    def test_endpoints_and_their_edges(self):
        script = self.write("r.lua", REPLAY)
        c = self.cstream(["--metrics-port", "0", "run", script, "input=" + SAMPLE, "rate=20", "out=/dev/null"])
        port = c.metrics_port()
        st, h, body = http(port, "/healthz")
        self.assertEqual(st, 200, body)
        self.assertEqual(h.get("Content-Type"), "application/json")
        health = json.loads(body)
        self.assertEqual(health["status"], "ok")
        comps = {x["component"]: x for x in health["checks"]}
        self.assertTrue(comps["source replay.r"]["ok"])
        self.assertEqual(comps["sink jsonl.r"]["detail"], "acknowledging")
        st, h, body = http(port, "/metrics", method="HEAD")
        self.assertEqual(st, 200)
        self.assertEqual(body, "")
        self.assertGreater(int(h["Content-Length"]), 1000)
        self.assertEqual(http(port, "/nope")[0], 404)
        self.assertEqual(http(port, "/metrics?x=1")[0], 200)
        self.assertEqual(http(port, "/metrics", method="POST")[0], 405)
        self.assertIn(b"400 Bad Request", raw_http(port, b"garbage\r\n\r\n"))
        self.assertIn(b"505", raw_http(port, b"GET /metrics HTTP/2.0\r\n\r\n"))
        self.assertIn(b"431", raw_http(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n"))
        # An HTTP/1.0 client, and a client that sends more than it should.
        r = raw_http(port, b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 200 OK\r\n"), r[:100])
        self.assertTrue(r.endswith(b"}\n"))
        r = raw_http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n")
        self.assertTrue(r.endswith(b"\n") and r.count(b"HTTP/1.1 200") == 1, r[-200:])
        # Several clients at once, one of them silent.
        silent = socket.create_connection(("127.0.0.1", port))
        results = []
        import threading
        ts = [threading.Thread(target=lambda: results.append(http(port, "/metrics")[0])) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        silent.close()
        self.assertEqual(results, [200] * 8)
        self.assertEqual(c.stop(), 0, c.err[-2000:])

    def test_metrics_declared_in_the_script_and_port_in_use(self):
        script = self.write("m.lua", REPLAY + 'cs.metrics { port = 0, host = "127.0.0.1" }\n')
        c = self.cstream(["run", script, "input=" + SAMPLE, "rate=50", "out=/dev/null"])
        port = c.metrics_port()
        self.scrape(port)
        # A second cstream on the same port cannot start.
        d = subprocess.run([CSTREAM, "--metrics-port", str(port), "run", script, "input=" + SAMPLE],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(d.returncode, 1, d.stderr)
        self.assertIn(b"cannot listen on 127.0.0.1:%d" % port, d.stderr)
        self.assertEqual(c.stop(), 0)

    def test_healthz_503_while_a_sink_cannot_write(self):
        script = self.write("r.lua", REPLAY)
        c = self.cstream(["--metrics-port", "0", "run", script, "input=" + SAMPLE, "out=/dev/full"])
        port = c.metrics_port()

        def unhealthy():
            st, _, body = http(port, "/healthz")
            return body if st == 503 else None
        body = wait_for(unhealthy, timeout=15)
        self.assertIsNotNone(body, c.err_so_far())
        h = json.loads(body)
        self.assertEqual(h["status"], "unhealthy")
        self.assertIn("sink jsonl.r", h["reason"])
        self.assertIn("retrying", h["reason"])
        self.assertIn("No space left on device", h["reason"])
        f = self.scrape(port)
        self.assertEqual(value(f, "cstream_sink_acknowledging", pipeline="r", sink="jsonl"), 0)
        self.assertGreater(value(f, "cstream_sink_queued_records", pipeline="r", sink="jsonl"), 0)
        self.assertGreater(value(f, "cstream_sink_retries_total", pipeline="r", sink="jsonl"), 0)
        self.assertEqual(value(f, "cstream_source_paused", pipeline="r", source="replay"), 1)
        c.p.send_signal(signal.SIGINT)
        time.sleep(0.3)
        self.assertEqual(c.stop(), 1)  # the second signal gives up the rows
        self.assertNotIn("Sanitizer", c.err)


# ---------------------------------------------------------------- metrics and health of a live run

class Server:
    def __init__(self, tmp, scenario, port=0):
        self.p = subprocess.Popen([PY, os.path.join(HERE, "ws_scenario_server.py"), "--capture", SAMPLE,
                                   "--scenario", json.dumps(scenario), "--port", str(port)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        m = re.match(r"listening port=(\d+)", line)
        if not m:
            raise RuntimeError("server did not start: %r %s" % (line, self.p.stderr.read()))
        self.port = int(m.group(1))

    def kill(self):
        self.p.kill()
        self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()

    def close(self):
        for f in (self.p.stdout, self.p.stderr):
            if not f.closed:
                f.close()


LIVE = """local cs = require "cstream"
cs.pipeline { name = "live",
  source = cs.coinbase { url = cs.arg("url"), products = { "BTC-USD", "ETH-USD" }, idle_timeout = "60s",
                         reconnect_max = "1s" },
  window = cs.tumbling { size = "30s", lateness = "5s" },
  sink = cs.jsonl { path = cs.arg("out") } }
"""


class LiveMetrics(Case):
    def server(self, scenario, port=0):
        s = Server(self.tmp, scenario, port)
        self.procs.append(s)
        return s

    def health(self, port):
        st, _, body = http(port, "/healthz")
        return st, json.loads(body)

    def test_live_metrics_and_healthz_across_a_reconnect(self):
        s = self.server([{"final_heartbeat_ahead": 60}])
        script = self.write("live.lua", LIVE)
        out = os.path.join(self.tmp, "rows.jsonl")
        c = self.cstream(["--metrics-port", "0", "run", script, "url=ws://127.0.0.1:%d" % s.port, "out=" + out])
        port = c.metrics_port()
        self.assertIsNotNone(wait_for(lambda: self.health(port)[0] == 200), c.err_so_far())
        st, h = self.health(port)
        comps = {x["component"]: x for x in h["checks"]}
        self.assertEqual(comps["source coinbase.live"]["detail"], "connected")
        # Windows close (the final heartbeat moves the feed clock 60 s on).
        self.assertIsNotNone(wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 0), c.err_so_far())
        f = self.scrape(port)
        self.assertEqual(value(f, "cstream_source_connected", pipeline="live", source="coinbase"), 1)
        self.assertGreater(value(f, "cstream_trades_total", pipeline="live"), 0)
        self.assertGreater(value(f, "cstream_windows_emitted_total", pipeline="live"), 0)
        self.assertGreater(hist_count(f, "cstream_exchange_to_window_seconds", pipeline="live"), 0)
        self.assertGreater(hist_count(f, "cstream_frame_to_window_seconds", pipeline="live"), 0)
        self.assertGreater(hist_count(f, "cstream_window_to_ack_seconds", pipeline="live", sink="jsonl"), 0)
        self.assertIsNotNone(value(f, "cstream_last_trade_age_seconds", pipeline="live", product="BTC-USD"))
        self.assertIsNotNone(value(f, "cstream_watermark_lag_seconds", pipeline="live"))
        r0 = value(f, "cstream_source_reconnects_total", pipeline="live", source="coinbase")
        # The exchange goes away: 503 with the reason.
        s.kill()

        def down():
            st, h = self.health(port)
            return h if st == 503 else None
        h = wait_for(down, timeout=15)
        self.assertIsNotNone(h, c.err_so_far())
        self.assertEqual(h["status"], "unhealthy")
        self.assertIn("source coinbase.live: not connected", h["reason"])
        f = self.scrape(port)
        self.assertEqual(value(f, "cstream_source_connected", pipeline="live", source="coinbase"), 0)
        self.assertGreater(value(f, "cstream_source_reconnects_total", pipeline="live", source="coinbase"), r0)
        # It comes back on the same port: 200 again after the reconnect.
        s2 = self.server([{"start": 4000, "final_heartbeat_ahead": 60}], port=s.port)
        self.assertIsNotNone(wait_for(lambda: self.health(port)[0] == 200, timeout=30), c.err_so_far())
        f = self.scrape(port)
        self.assertEqual(value(f, "cstream_source_connected", pipeline="live", source="coinbase"), 1)
        self.assertIn("subscribing again", c.err_so_far())
        self.assertEqual(c.stop(), 0, c.err[-3000:])
        s2.kill()

    def test_status_line_on_a_terminal(self):
        s = self.server([{"final_heartbeat_ahead": 60}])
        script = self.write("live.lua", LIVE)
        out = os.path.join(self.tmp, "rows.jsonl")
        text, rc = run_in_pty([CSTREAM, "--status-interval", "0.5", "run", script,
                               "url=ws://127.0.0.1:%d" % s.port, "out=" + out],
                              until=rb"status: connected, \d+ trades", timeout=20)
        self.assertRegex(text, r"\[pipeline live\] status: connected, \d+ trades \([0-9.]+/s\), \d+ windows")
        self.assertEqual(rc, 0)


# ---------------------------------------------------------------- terminal and log formats

def run_in_pty(argv, until=None, timeout=20):
    """Runs argv with stderr (and stdout) on a pseudo-terminal; stops it with
    SIGINT once `until` (bytes regex) has appeared. Returns (text, status)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execv(argv[0], argv)
    buf, end, sent = b"", time.time() + timeout, False
    while True:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        if until is not None and not sent and re.search(until, buf):
            os.kill(pid, signal.SIGINT)
            sent = True
        if time.time() > end and not sent:
            os.kill(pid, signal.SIGINT)
            sent = True
    _, status = os.waitpid(pid, 0)
    return buf.decode("utf-8", "replace"), os.waitstatus_to_exitcode(status)


class Terminal(Case):
    def test_progress_line_on_a_terminal_only(self):
        script = self.write("r.lua", REPLAY)
        text, rc = run_in_pty([CSTREAM, "run", script, "input=" + SAMPLE, "rate=300", "out=/dev/null"])
        self.assertEqual(rc, 0, text[-2000:])
        m = re.search(r"\r\x1b\[Kreplay r (\d+\.\d)% [0-9.]+ [kMG]B/[0-9.]+ [kMG]B [0-9.]+ (k |M )?trades/s( ETA \d+:\d\d)?",
                      text)
        self.assertIsNotNone(m, repr(text[-2000:]))
        self.assertIn("ETA", text)
        self.assertIn("summary pipeline=r", text)
        # The progress line is erased before the summary.
        self.assertRegex(text, r"\r\x1b\[K(\r?\n)?summary pipeline=r|\r\x1b\[Ksummary pipeline=r|\x1b\[K\r?\n?.*summary")
        for args in (["--no-progress"], ["-q"]):
            text, rc = run_in_pty([CSTREAM] + args + ["run", script, "input=" + SAMPLE, "rate=300", "out=/dev/null"])
            self.assertEqual(rc, 0)
            self.assertNotIn("trades/s ETA", text, args)
        # Not a terminal: nothing of it.
        p = subprocess.run([CSTREAM, "run", script, "input=" + SAMPLE, "rate=300", "out=/dev/null"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
        self.assertNotIn(b"\x1b[K", p.stderr)
        self.assertNotIn(b"trades/s ETA", p.stderr)


def parse_logfmt(line):
    """key=value pairs; values bare or "quoted" with \\" \\\\ \\n escapes."""
    out, i = {}, 0
    while i < len(line):
        m = re.match(r'([a-zA-Z_][a-zA-Z0-9_]*)=', line[i:])
        if not m:
            raise AssertionError("not logfmt at %r: %r" % (line[i:], line))
        k = m.group(1)
        i += m.end()
        if i < len(line) and line[i] == '"':
            i += 1
            v = []
            while line[i] != '"':
                if line[i] == "\\":
                    v.append({"n": "\n"}.get(line[i + 1], line[i + 1]))
                    i += 2
                else:
                    v.append(line[i])
                    i += 1
            i += 1
            out[k] = "".join(v)
        else:
            j = line.find(" ", i)
            j = len(line) if j < 0 else j
            out[k] = line[i:j]
            i = j
        if i < len(line):
            if line[i] != " ":
                raise AssertionError("no space after %s in %r" % (k, line))
            i += 1
    return out


class LogFormats(Case):
    def run_bad(self, fmt):
        with open(SAMPLE) as f:
            cap = self.write("cap.jsonl", f.read() + 'not "json" at all\\ \n')
        script = self.write("r.lua", REPLAY)
        return subprocess.run([CSTREAM, "--log-format", fmt, "run", script, "input=" + cap, "out=/dev/null"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, timeout=60)

    def test_logfmt(self):
        p = self.run_bad("logfmt")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stderr.decode().splitlines()
        recs = [parse_logfmt(l) for l in lines]
        for r in recs:
            self.assertRegex(r["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(r["level"], ("debug", "info", "warn", "error"))
            self.assertIn("msg", r)
        bad = [r for r in recs if r.get("level") == "warn"]
        self.assertEqual(bad[0]["component"], "pipeline r")
        self.assertIn("invalid: bad JSON", bad[0]["msg"])
        summ = [r for r in recs if r.get("msg") == "summary"][0]
        self.assertEqual(summ["pipeline"], "r")
        self.assertEqual(summ["invalid"], "1")
        self.assertEqual(parse_summaries(p.stderr)["r"]["trades"], 2977)  # the summary parser still works

    def test_json(self):
        p = self.run_bad("json")
        self.assertEqual(p.returncode, 0, p.stderr)
        recs = [json.loads(l) for l in p.stderr.decode().splitlines()]
        for r in recs:
            self.assertEqual(list(r)[:4], ["ts", "level", "component", "msg"])
        warn = [r for r in recs if r["level"] == "warn"][0]
        self.assertIn("invalid: bad JSON", warn["msg"])
        summ = [r for r in recs if r["msg"] == "summary"][0]
        self.assertEqual(summ["pipeline"], "r")
        self.assertEqual(summ["trades"], 2977)
        self.assertEqual(summ["status"], "ok")

    def test_bad_format_is_a_usage_error(self):
        p = subprocess.run([CSTREAM, "--log-format", "xml", "version"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--log-format", p.stderr)


# ---------------------------------------------------------------- cstream check

class Check(Case):
    def check(self, text, *args):
        path = self.write("s.lua", text)
        p = subprocess.run([CSTREAM, "check", path] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           cwd=self.tmp, timeout=60)
        self.assertNotIn(b"Sanitizer", p.stderr)  # an ASan/UBSan build reports there
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_good_scripts_print_the_topology_and_touch_nothing(self):
        # A listener that must never see a connection, files that must never be made.
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(5)
        ls.setblocking(False)
        port = ls.getsockname()[1]
        text = """local cs = require "cstream"
cs.pipeline { name = "a", source = cs.coinbase { url = "ws://127.0.0.1:%d", products = { "BTC-USD" } },
  filter = function(t) return true end,
  window = cs.tumbling { size = "1m", lateness = "10s" },
  sink = { cs.jsonl { path = "out/never.jsonl" }, cs.discard {} } }
cs.pipeline { name = "b", source = cs.replay { path = "/nonexistent/capture.jsonl" }, sink = cs.jsonl { path = "raw.jsonl" } }
cs.metrics { port = 9100 }
""" % port
        rc, out, err = self.check(text)
        self.assertEqual(rc, 0, err)
        for s in ("pipeline a", "cs.coinbase -> Lua filter -> cs.tumbling 1m (lateness 10s) -> cs.jsonl, cs.discard",
                  "pipeline b", "cs.replay -> cs.jsonl", "no window", "url", "(default)", "(not set:",
                  "ca_file", "metrics  (", "port", "9100", "host", "\"127.0.0.1\"  (default)", "ok: 2 pipeline(s)"):
            self.assertIn(s, out)
        time.sleep(0.3)
        with self.assertRaises(BlockingIOError):
            ls.accept()
        ls.close()
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "out")))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "raw.jsonl")))

    def test_shipped_scripts(self):
        for s in ("replay.lua", "live.lua", "hooks.lua"):
            p = subprocess.run([CSTREAM, "check", os.path.join(ROOT, "scripts", s)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
            self.assertEqual(p.returncode, 0, (s, p.stderr))
            self.assertIn(b" -> ", p.stdout)

    def test_broken_scripts_exit_3_with_file_line(self):
        head = 'local cs = require "cstream"\n'
        ok_src = 'cs.replay { path = "x" }'
        cases = [
            ("syntax", head + "cs.pipeline {\n", "s.lua:3:", "unexpected symbol near '<eof>'"),
            ("typo", head + "cs.pipeline { source = cs.replay { pth = \"x\" }, sink = cs.discard {} }\n", "s.lua:2:",
             "did you mean 'path'"),
            ("runtime", head + "local x = nil\nx.y = 1\n", "s.lua:3:", "attempt to index"),
            ("plugin init", head + "cs.pipeline { source = cs.replay { path = \"x\", rate = -1 },\n"
             "  sink = cs.discard {} }\n", "s.lua:2:", "'rate': must be >= 0"),
            ("metrics port", head + "cs.pipeline { source = %s, sink = cs.discard {} }\n"
             "cs.metrics { port = 70000 }\n" % ok_src, "s.lua:3:", "port"),
            ("metrics twice", head + "cs.pipeline { source = %s, sink = cs.discard {} }\n"
             "cs.metrics { port = 1 }\ncs.metrics { port = 2 }\n" % ok_src, "s.lua:4:", "already declared"),
            ("metrics host", head + "cs.pipeline { source = %s, sink = cs.discard {} }\n"
             "cs.metrics { port = 1, host = \"localhost\" }\n" % ok_src, "s.lua:3:", "not a numeric"),
            ("window sink", head + "cs.pipeline { source = %s, sink = cs.nosuch {} }\n" % ok_src, "s.lua:2:",
             "nosuch"),
            ("no pipeline", head, "declares no pipeline", "cs.pipeline"),
        ]
        for name, text, loc, needle in cases:
            with self.subTest(case=name):
                rc, out, err = self.check(text)
                self.assertEqual(rc, 3, (out, err))
                self.assertIn(loc, err)
                self.assertIn(needle, err)
                self.assertEqual(len(err.strip().splitlines()), 1, "one line: " + err)


# ---------------------------------------------------------------- cstream test

class TestCommand(Case):
    def test_the_shipped_example_passes(self):
        p = subprocess.run([CSTREAM, "test", "scripts/replay_test.lua"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, cwd=ROOT, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        out = p.stdout.decode()
        n = int(re.match(r"1\.\.(\d+)\n", out).group(1))
        self.assertGreaterEqual(n, 5)
        self.assertEqual(len(re.findall(r"^ok \d+ - ", out, re.M)), n)
        self.assertIn("# %d cases: %d passed, 0 failed" % (n, n), out)
        self.assertEqual(p.stderr, b"")

    def spec(self, text):
        script = self.write("pipe.lua", """local cs = require "cstream"
cs.pipeline { name = "p", source = cs.replay { path = "never-opened.jsonl" },
  window = cs.tumbling { size = "10s", lateness = "2s" }, sink = cs.jsonl { path = "never-written.jsonl" } }
""")
        spec = self.write("pipe_test.lua", text.replace("SCRIPT", json.dumps(script)))
        p = subprocess.run([CSTREAM, "test", spec], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.tmp,
                           timeout=60)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "never-written.jsonl")))
        self.assertNotIn(b"Sanitizer", p.stderr)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_rows_late_and_duplicates_with_a_virtual_clock(self):
        rc, out, err = self.spec("""local T = require "cstream.test"
T.case("rows, late, duplicates", function()
  local p = T.pipeline(SCRIPT)
  p:trade { trade_id = 1, price = 10, size = 1, time = 100.5 }
  p:trade { trade_id = 2, price = 20, size = 3, time = 105 }
  p:advance(112)                -- watermark 112 - 2 - 1 = 109: [100, 110) still open
  T.eq(#p.rows, 0)
  p:advance(113)                -- 110: closed
  T.eq(#p.rows, 1)
  T.eq(p.rows[1].vwap, 17.5)
  p:trade { trade_id = 3, time = 101 }       -- late
  p:trade { trade_id = 4, time = 115 }
  p:trade { trade_id = 4, time = 116 }       -- duplicate
  p:finish()
  T.eq(p.stats.late, 1)
  T.eq(p.stats.duplicates, 1)
  T.eq(#p.rows, 2)
end)
""")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("ok 1 - rows, late, duplicates", out)

    def test_a_failing_case_says_where_and_exits_1(self):
        rc, out, err = self.spec("""local T = require "cstream.test"
T.case("passes", function() T.eq(1, 1) end)
T.case("fails", function()
  local p = T.pipeline(SCRIPT)
  p:trade { time = 1 }
  p:finish()
  T.eq(#p.rows, 2)
end)
T.case("raises", function() error("boom") end)
""")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("ok 1 - passes", out)
        self.assertRegex(out, r"not ok 2 - fails\n#   .*pipe_test\.lua:7: expected 2, got 1")
        self.assertRegex(out, r"not ok 3 - raises\n#   .*pipe_test\.lua:9: boom")
        self.assertIn("# 3 cases: 1 passed, 2 failed", out)

    def test_broken_specs(self):
        rc, out, err = self.spec('local T = require "cstream.test"\nT.case("x", function()\n')
        self.assertEqual(rc, 3)
        self.assertIn("pipe_test.lua:3:", err)
        rc, out, err = self.spec('local T = require "cstream.test"\nlocal x = nil + 1\n')
        self.assertEqual(rc, 3)
        self.assertIn("pipe_test.lua:2:", err)
        rc, out, err = self.spec('local T = require "cstream.test"\n')
        self.assertEqual(rc, 3)
        self.assertIn("no test case", err)
        # A broken pipeline script fails the case with the script's file:line.
        bad = self.write("bad.lua", 'local cs = require "cstream"\ncs.pipeline { source = cs.replay { path = 1 } }\n')
        rc, out, err = self.spec('local T = require "cstream.test"\nT.case("loads", function() T.pipeline(%s) end)\n'
                                 % json.dumps(bad))
        self.assertEqual(rc, 1)
        self.assertIn("bad.lua:2: cs.replay: option 'path' must be a string", out)
        p = subprocess.run([CSTREAM, "test", "/nonexistent_test.lua"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 2)


def main():
    global CSTREAM
    path, argv = _take_cstream_arg(sys.argv)
    CSTREAM = os.path.abspath(path or os.environ.get("CSTREAM") or os.path.join(ROOT, "build", "cstream"))
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
