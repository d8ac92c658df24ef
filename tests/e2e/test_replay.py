#!/usr/bin/env python3
"""End-to-end tests: run the cstream binary on captures and compare its rows
and summary counters with the independent reference implementation
(reference.py). Standard library only.

    /usr/bin/python3 tests/e2e/test_replay.py --cstream build/cstream
    /usr/bin/python3 tests/e2e/test_replay.py --cstream build/cstream -v ReplayGenerated
    CSTREAM=/path/to/cstream /usr/bin/python3 tests/e2e/test_replay.py

The binary comes from --cstream PATH, else $CSTREAM, else build/cstream under
the repository root. Set CSTREAM_E2E_KEEP=1 to keep the temporary files, and
CSTREAM_E2E_DIAG=0 to skip the per-line diagnosis printed when counters differ.
Exit status is non-zero when any test fails.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen_capture  # noqa: E402
import reference as ref  # noqa: E402

REL_TOL = 1e-9
TIMEOUT = 300
CSTREAM = None  # set in main()

PIPELINE_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "t",
  source = cs.replay { path = cs.args.input, rate = 0 },
  window = cs.tumbling { size = cs.args.size .. "s", lateness = cs.args.lateness, by = "product_id" },
  sink   = cs.jsonl { path = cs.args.out },
}
"""

# The example script, byte for byte: it must run unchanged.
EXACT_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "btc-30s",
  source = cs.replay { path = "data/sample.jsonl", rate = 0 },   -- rate 0: as fast as possible; 1: real time; N: N times faster
  window = cs.tumbling { size = "30s", lateness = "5s", by = "product_id" },
  sink   = cs.jsonl { path = "-" },                              -- "-" is stdout; a list of sinks is allowed
}
"""

TWO_PIPELINES_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "first",
  source = cs.replay { path = cs.args.in1, rate = 0 },
  window = cs.tumbling { size = "30s", lateness = "5s", by = "product_id" },
  sink   = cs.jsonl { path = cs.args.out1 },
}
cs.pipeline {
  name   = "second",
  source = cs.replay { path = cs.args.in2, rate = 0 },
  window = cs.tumbling { size = "60s", lateness = "0s", by = "product_id" },
  sink   = cs.jsonl { path = cs.args.out2 },
}
"""

SINK_LIST_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "fanout",
  source = cs.replay { path = cs.args.input, rate = 0 },
  window = cs.tumbling { size = "30s", lateness = "5s", by = "product_id" },
  sink   = { cs.jsonl { path = cs.args.out1 }, cs.jsonl { path = cs.args.out2 } },
}
"""

# (name, script, accepted lines (the option's line or the line of the call that
# gets the table), wrong option, suggestion)
TYPO_SCRIPTS = [
    ("replay_pth", """\
local cs = require "cstream"
cs.pipeline {
  name   = "typo",
  source = cs.replay { pth = "data/sample.jsonl", rate = 0 },
  window = cs.tumbling { size = "30s", lateness = "5s", by = "product_id" },
  sink   = cs.jsonl { path = "-" },
}
""", (4,), "pth", "path"),
    ("tumbling_latenes", """\
local cs = require "cstream"
cs.pipeline {
  name   = "typo",
  source = cs.replay { path = "data/sample.jsonl", rate = 0 },
  window = cs.tumbling { size = "30s",
                         latenes = "5s", by = "product_id" },
  sink   = cs.jsonl { path = "-" },
}
""", (5, 6), "latenes", "lateness"),
]


# ------------------------------------------------------------------ helpers
def run_cstream(args, cwd=None, timeout=TIMEOUT):
    return subprocess.run([CSTREAM] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def parse_summaries(stderr):
    """stderr bytes -> {pipeline name: {key: int or float}}"""
    out = {}
    for line in stderr.decode("utf-8", "replace").splitlines():
        i = line.find("summary pipeline=")
        if i < 0:
            continue
        kv = {}
        for tok in line[i + len("summary "):].split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                kv[k] = v
        name = kv.pop("pipeline", "")
        vals = {}
        for k, v in kv.items():
            try:
                vals[k] = int(v)
            except ValueError:
                try:
                    vals[k] = float(v)
                except ValueError:
                    vals[k] = v
        out[name] = vals
    return out


def parse_rows(data, what="output"):
    """jsonl bytes -> list of rows as lists of (key, value) pairs."""
    rows = []
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    for i, line in enumerate(parts):
        try:
            rows.append(json.loads(line.decode("utf-8"), object_pairs_hook=list))
        except ValueError as e:
            raise AssertionError("%s line %d is not JSON (%s): %r" % (what, i + 1, e, line[:300]))
        if not isinstance(rows[-1], list):
            raise AssertionError("%s line %d is not a JSON object: %r" % (what, i + 1, line[:300]))
    return rows


def _num_ok(g, w):
    if isinstance(g, bool) or not isinstance(g, (int, float)):
        return False
    if w == 0:
        return g == 0 or abs(g) < 1e-300
    return math.isclose(g, w, rel_tol=REL_TOL, abs_tol=0.0)


def row_diff(got_pairs, want):
    """-> list of problems in one row (empty when equal)."""
    probs = []
    keys = [k for k, _ in got_pairs]
    if keys != list(ref.ROW_KEYS):
        probs.append("keys %s, want %s" % (keys, list(ref.ROW_KEYS)))
    got = dict(got_pairs)
    for k in ref.ROW_KEYS:
        if k not in got:
            continue
        g, w = got[k], want[k]
        if k in ("product_id", "window_start", "window_end"):
            ok = g == w
        elif k == "trades":
            ok = type(g) is int and g == w
        else:
            ok = _num_ok(g, w)
        if not ok:
            probs.append("%s: got %r, want %r" % (k, g, w))
    return probs


def rows_mismatch(got, want, label=""):
    """-> None when equal, else a readable description of the first difference."""
    n = min(len(got), len(want))
    for i in range(n):
        probs = row_diff(got[i], want[i])
        if probs:
            return ("%srow %d of %d (want %d rows) differs:\n  %s\n  got : %s\n  want: %s%s" % (
                label, i + 1, len(got), len(want), "\n  ".join(probs),
                json.dumps(dict(got[i])), json.dumps(want[i]), _context(got, want, i)))
    if len(got) != len(want):
        extra = got[n] if len(got) > n else None
        missing = want[n] if len(want) > n else None
        return "%sgot %d rows, want %d; first extra row: %s; first missing row: %s" % (
            label, len(got), len(want), json.dumps(dict(extra)) if extra else "-",
            json.dumps(missing) if missing else "-")
    return None


def _context(got, want, i):
    lines = []
    for j in range(max(0, i - 2), min(max(len(got), len(want)), i + 3)):
        g = got[j] if j < len(got) else None
        w = want[j] if j < len(want) else None
        gk = (dict(g).get("product_id"), dict(g).get("window_start")) if g else None
        wk = (w["product_id"], w["window_start"]) if w else None
        lines.append("    #%d got %s want %s%s" % (j + 1, gk, wk, "" if gk == wk else "  <--"))
    return "\n  nearby rows (product_id, window_start):\n" + "\n".join(lines)


def counters_mismatch(summary, want):
    probs = []
    for k in ref.COUNTER_KEYS:
        if summary.get(k) != want[k]:
            probs.append("%s=%s (want %s)" % (k, summary.get(k), want[k]))
    for k in ("elapsed_s", "trades_per_s"):
        v = summary.get(k)
        if not isinstance(v, (int, float)) or v < 0:
            probs.append("%s=%r is not a number >= 0" % (k, v))
    return ", ".join(probs) or None


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write_capture(path, data):
    if path.endswith(".gz"):
        gen_capture.write(data, path, True)
    else:
        with open(path, "wb") as f:
            f.write(data)


def _canonical(line):
    try:
        return json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False).encode()
    except Exception:
        return None


def diagnose(lines, tmp, limit=400):
    """Run cstream on single lines the reference finds unusual and report those
    it classifies differently. -> text (may be empty)."""
    if os.environ.get("CSTREAM_E2E_DIAG", "1") == "0":
        return ""
    cand, seen = [], set()
    for raw in lines:
        if raw in seen or len(raw) > 100000:
            continue
        kind, t, reason = ref.classify(raw)
        pick = kind == "invalid"
        if kind == "ignored":
            try:
                pick = json.loads(raw).get("type") not in ("heartbeat", "ticker")
            except Exception:
                pick = True
        if kind == "trade":
            pick = _canonical(raw) != raw or t.type != "match"
        if pick:
            seen.add(raw)
            cand.append((raw, kind, reason))
        if len(cand) >= limit:
            break
    script = os.path.join(tmp, "diag.lua")
    with open(script, "w") as f:
        f.write(PIPELINE_LUA)
    out = []
    for raw, kind, reason in cand:
        got = _DIAG_CACHE.get(raw)
        if got is None:
            got = _DIAG_CACHE[raw] = _classify_with_cstream(raw, script, tmp)
        if got != kind:
            out.append("    cstream: %-8s reference: %-8s (%s)  %r" % (
                got, kind, reason, raw[:160]))
    if not out:
        return ""
    return ("\n  per-line diagnosis (%d lines checked one by one, %d disagree):\n" % (
        len(cand), len(out)) + "\n".join(out[:40]))


_DIAG_CACHE = {}


def _classify_with_cstream(raw, script, tmp):
    inp = os.path.join(tmp, "diag_line.jsonl")
    with open(inp, "wb") as f:
        f.write(raw + b"\n")
    res = os.path.join(tmp, "diag_out.jsonl")
    if os.path.exists(res):
        os.unlink(res)
    p = run_cstream(["run", script, "input=" + inp, "size=30", "lateness=0s", "out=" + res])
    s = parse_summaries(p.stderr).get("t", {})
    return ("trade" if s.get("trades") == 1 else "invalid" if s.get("invalid") == 1
            else "ignored" if s.get("ignored") == 1 else "?(exit %d, %s)" % (
                p.returncode, " ".join("%s=%s" % kv for kv in sorted(s.items()) if kv[1])))


class CstreamCase(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cstream-e2e-")

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("CSTREAM_E2E_KEEP"):
            sys.stderr.write("kept %s\n" % cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def script(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def check_run(self, proc, name, what):
        """Exit status 0 and a summary line for pipeline `name` -> its counters."""
        err = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, "%s: exit status %d, stderr:\n%s" % (
            what, proc.returncode, err[-3000:]))
        sums = parse_summaries(proc.stderr)
        self.assertIn(name, sums, "%s: no 'summary pipeline=%s' line on stderr:\n%s" % (
            what, name, err[-3000:]))
        return sums[name]

    def compare(self, what, got_bytes, want_rows, summary, want_counters, lines=None):
        problems = []
        try:
            got = parse_rows(got_bytes)
            m = rows_mismatch(got, want_rows)
        except AssertionError as e:
            m = str(e)
        if m:
            problems.append("rows: " + m)
        c = counters_mismatch(summary, want_counters)
        if c:
            problems.append("summary counters: " + c)
            if lines is not None:
                d = diagnose(lines, self.tmp)
                if d:
                    problems.append(d)
        if problems:
            self.fail("%s\n  %s" % (what, "\n  ".join(problems)))

    def run_pipeline(self, capture, size_s, lateness, what):
        out = self.path("out_%d.jsonl" % abs(hash((capture, size_s, lateness))))
        if os.path.exists(out):
            os.unlink(out)
        script = self.script("pipeline.lua", PIPELINE_LUA)
        p = run_cstream(["run", script, "input=" + capture, "size=%d" % size_s,
                         "lateness=" + lateness, "out=" + out])
        summary = self.check_run(p, "t", what)
        self.assertTrue(os.path.exists(out) or summary.get("windows") == 0,
                        "%s: output file %s was not written" % (what, out))
        got = read(out) if os.path.exists(out) else b""
        lines = ref.split_lines(ref.read_bytes(capture))
        want_rows, want_c = ref.run_lines(lines, size_s * ref.US, ref.parse_duration(lateness))
        self.compare(what, got, want_rows, summary, want_c, lines)
        return want_c


# ------------------------------------------------------------------ tests
GEN_CONFIGS = [
    # (size s, lateness, gzip)
    (30, "5s", False),
    (30, "0s", True),
    (1, "0s", False),
    (1, "5s", True),
    (60, "5s", False),
    (60, "0s", True),
    (7, "500ms", False),
]
GEN_SEEDS = [1, 2, 3, 4]


class ReplayGenerated(CstreamCase):
    """Adversarial generated captures against the reference."""

    def test_generated(self):
        for seed in GEN_SEEDS:
            data = gen_capture.generate(seed)
            for gz in (False, True):
                write_capture(self.path("gen%d.jsonl%s" % (seed, ".gz" if gz else "")), data)
            for size_s, lateness, gz in GEN_CONFIGS:
                cap = self.path("gen%d.jsonl%s" % (seed, ".gz" if gz else ""))
                what = "seed %d, size %ds, lateness %s, %s" % (
                    seed, size_s, lateness, "gzip" if gz else "plain")
                with self.subTest(seed=seed, size=size_s, lateness=lateness, gz=gz):
                    self.run_pipeline(cap, size_s, lateness, what)


class ReplayReal(CstreamCase):
    """The real captures and the generated sample in data/."""

    CASES = [
        ("coinbase-exchange-matches-2025-08-22.jsonl", [(30, "5s"), (1, "0s"), (7, "500ms")]),
        ("coinbase-exchange-mixed-2021-04-17.jsonl.gz", [(30, "5s"), (1, "0s"), (60, "1m")]),
        ("coinbase-advanced-trade-2026-08-09.jsonl.gz", [(30, "5s")]),
        ("sample.jsonl", [(30, "5s"), (60, "0s"), (1, "0s")]),
    ]

    def test_data_files(self):
        for name, configs in self.CASES:
            cap = os.path.join(ROOT, "data", name)
            for size_s, lateness in configs:
                with self.subTest(file=name, size=size_s, lateness=lateness):
                    self.assertTrue(os.path.exists(cap), "missing " + cap)
                    self.run_pipeline(cap, size_s, lateness,
                                      "data/%s, size %ds, lateness %s" % (name, size_s, lateness))

    def test_real_matches_sanity(self):
        # Independent of the reference: the real 30 s capture is one window per product.
        cap = os.path.join(ROOT, "data", "coinbase-exchange-matches-2025-08-22.jsonl")
        c = self.run_pipeline(cap, 30, "5s", "real matches sanity")
        self.assertEqual((c["lines"], c["trades"], c["windows"]), (447, 447, 3))


class ExactScript(CstreamCase):
    """The example script, unchanged, from a directory holding data/sample.jsonl."""

    def run_exact(self, sample_bytes, label):
        d = tempfile.mkdtemp(dir=self.tmp)
        os.makedirs(os.path.join(d, "data"))
        with open(os.path.join(d, "data", "sample.jsonl"), "wb") as f:
            f.write(sample_bytes)
        with open(os.path.join(d, "btc-30s.lua"), "w") as f:
            f.write(EXACT_LUA)
        p = run_cstream(["run", "btc-30s.lua"], cwd=d)
        summary = self.check_run(p, "btc-30s", label)
        lines = ref.split_lines(sample_bytes)
        want_rows, want_c = ref.run_lines(lines, 30 * ref.US, 5 * ref.US)
        self.assertTrue(len(want_rows) > 0)
        self.compare(label + " (rows on stdout)", p.stdout, want_rows, summary, want_c, lines)

    def test_exact_script_sample(self):
        with open(os.path.join(ROOT, "data", "sample.jsonl"), "rb") as f:
            self.run_exact(f.read(), "exact script on data/sample.jsonl")

    def test_exact_script_generated(self):
        self.run_exact(gen_capture.generate(5), "exact script on generated capture seed 5")


class ScriptErrors(CstreamCase):
    def test_typo_in_option(self):
        for name, text, lines, wrong, right in TYPO_SCRIPTS:
            fname = "typo_%s.lua" % name
            p_script = self.script(fname, text)
            for cmd in ("run", "check"):
                with self.subTest(script=name, command=cmd):
                    p = run_cstream([cmd, p_script], cwd=self.tmp)
                    err = p.stderr.decode("utf-8", "replace")
                    self.assertNotEqual(p.returncode, 0,
                                        "cstream %s %s exited 0; stderr:\n%s" % (cmd, fname, err))
                    locs = ["%s:%d" % (fname, n) for n in lines]
                    self.assertTrue(any(l in err for l in locs),
                                    "cstream %s: stderr lacks %s:\n%s" % (
                                        cmd, " or ".join(locs), err[-2000:]))
                    for needle in (wrong, right):
                        self.assertIn(needle, err, "cstream %s: stderr lacks %r:\n%s" % (
                            cmd, needle, err[-2000:]))

    def test_check_valid_script(self):
        s = self.script("ok.lua", PIPELINE_LUA)
        p = run_cstream(["check", s, "input=" + os.path.join(ROOT, "data", "sample.jsonl"),
                         "size=30", "lateness=5s", "out=" + self.path("check_out.jsonl")])
        self.assertEqual(p.returncode, 0, "cstream check on a valid script: exit %d\n%s" % (
            p.returncode, p.stderr.decode("utf-8", "replace")[-2000:]))


class Robustness(CstreamCase):
    def test_invalid_lines_never_stop_the_run(self):
        t = lambda tid, sec, price="100.5": ('{"type":"match","trade_id":%d,"maker_order_id":"a",'  # noqa
                                             '"taker_order_id":"b","side":"buy","size":"1",'
                                             '"price":"%s","product_id":"BTC-USD","sequence":1,'
                                             '"time":"2025-08-22T20:00:%02d.000000Z"}' % (
                                                 tid, price, sec)).encode()
        lines = [
            b"\xff\xfe\x00garbage", b"{", b"[1,2,3]", b"",
            t(1, 1),
            b'{"type":"match","trade_id":"2"}',
            b"\x00" * 100,
            b'{"type":"match","pad":"' + b"y" * (3 * 1024 * 1024),  # 3 MB, unterminated
            t(2, 2),
            t(3, 3).replace(b'"a"', b'"\xc3\x28"'),
            t(4, 4, price="1e5"),
            b"\x1f\x8b\x08\x00",  # a gzip magic inside a plain file
            t(5, 5),
            b"}}}}",
        ]
        data = b"\n".join(lines)  # no final newline either
        cap = self.path("robust.jsonl")
        write_capture(cap, data)
        c = self.run_pipeline(cap, 30, "5s", "invalid lines")
        self.assertEqual(c["trades"], 3)
        self.assertEqual(c["lines"], 14)

    def test_output_file_is_appended(self):
        cap = os.path.join(ROOT, "data", "coinbase-exchange-matches-2025-08-22.jsonl")
        out = self.path("append.jsonl")
        before = b'{"previous":"content, must survive"}\n'
        with open(out, "wb") as f:
            f.write(before)
        script = self.script("append.lua", PIPELINE_LUA)
        args = ["run", script, "input=" + cap, "size=30", "lateness=5s", "out=" + out]
        want_rows, want_c = ref.run_file(cap, 30 * ref.US, 5 * ref.US)
        for n in (1, 2):
            p = run_cstream(args)
            summary = self.check_run(p, "t", "append run %d" % n)
            data = read(out)
            self.assertTrue(data.startswith(before),
                            "run %d: the existing content was not kept: %r" % (n, data[:200]))
            self.compare("append run %d" % n, data[len(before):], want_rows * n, summary, want_c)

    def test_two_pipelines(self):
        in1 = os.path.join(ROOT, "data", "sample.jsonl")
        in2 = self.path("two_in2.jsonl.gz")
        write_capture(in2, gen_capture.generate(6))
        out1, out2 = self.path("two_out1.jsonl"), self.path("two_out2.jsonl")
        s = self.script("two.lua", TWO_PIPELINES_LUA)
        p = run_cstream(["run", s, "in1=" + in1, "in2=" + in2, "out1=" + out1, "out2=" + out2])
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, err[-3000:])
        sums = parse_summaries(p.stderr)
        for name, inp, out, size_s, lat in (("first", in1, out1, 30, 5), ("second", in2, out2, 60, 0)):
            with self.subTest(pipeline=name):
                self.assertIn(name, sums, "no summary for pipeline %s:\n%s" % (name, err[-3000:]))
                self.assertTrue(os.path.exists(out), "pipeline %s wrote no %s" % (name, out))
                want_rows, want_c = ref.run_file(inp, size_s * ref.US, lat * ref.US)
                self.compare("pipeline %s" % name, read(out), want_rows,
                             sums[name], want_c)

    def test_list_of_sinks(self):
        cap = os.path.join(ROOT, "data", "sample.jsonl")
        out1, out2 = self.path("fan1.jsonl"), self.path("fan2.jsonl")
        s = self.script("fanout.lua", SINK_LIST_LUA)
        p = run_cstream(["run", s, "input=" + cap, "out1=" + out1, "out2=" + out2])
        summary = self.check_run(p, "fanout", "list of sinks")
        want_rows, want_c = ref.run_file(cap, 30 * ref.US, 5 * ref.US)
        for out in (out1, out2):
            self.assertTrue(os.path.exists(out), "no " + out)
            self.compare("sink " + os.path.basename(out), read(out), want_rows,
                         summary, want_c)


# ------------------------------------------------------------------ main
def _take_cstream_arg(argv):
    """Remove --cstream PATH / --cstream=PATH from argv; -> (path or None, argv)."""
    rest, path, i = [argv[0]], None, 1
    while i < len(argv):
        a = argv[i]
        if a == "--cstream" and i + 1 < len(argv):
            path = argv[i + 1]
            i += 2
            continue
        if a.startswith("--cstream="):
            path = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return path, rest


def main():
    global CSTREAM
    path, argv = _take_cstream_arg(sys.argv)
    path = path or os.environ.get("CSTREAM") or os.path.join(ROOT, "build", "cstream")
    CSTREAM = os.path.abspath(path)
    if not (os.path.isfile(CSTREAM) and os.access(CSTREAM, os.X_OK)):
        sys.stderr.write("test_replay: cstream binary not found or not executable: %s\n"
                         "  build it (cmake -B build && cmake --build build) or pass --cstream PATH\n"
                         % CSTREAM)
        sys.exit(2)
    sys.stderr.write("test_replay: using %s\n" % CSTREAM)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
