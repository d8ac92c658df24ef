#!/usr/bin/env python3
"""End-to-end test of the README's first command, the main job (`./dev.sh
main`, without its install and build steps: `dev.sh main-run`), offline:

    the bundled capture -> cstream serve-replay -> scripts/pipeline.lua
    (cs.coinbase -> embedded Kafka -> 30 s windows -> cs.clickhouse)
    -> the candles printed back from ClickHouse

Checked against windows computed here independently (reference.py) from
data/sample.jsonl:
  * with the job's own clickhouse-server (no CLICKHOUSE_URL): every candle
    it prints, field by field as printed, the count line, and that the
    server it started is stopped again at the end;
  * with CLICKHOUSE_URL (a server of this test's): the table, read with
    FINAL, holds exactly the reference's windows, every field.

    /usr/bin/python3 tests/e2e/test_main.py --cstream build/cstream

Skips (exit 0) when clickhouse-server is not installed.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import reference as ref  # noqa: E402
import test_replay as tr  # noqa: E402
from clickhouse_server import ClickHouseServer, available  # noqa: E402
from test_clickhouse import as_pairs, ch_window_rows  # noqa: E402

CSTREAM = None
SAMPLE = os.path.join(ROOT, "data", "sample.jsonl")
ROW = re.compile(r"^│ (.+) │$")


def reference_rows():
    rows, counters = ref.run_file(SAMPLE, 30 * ref.US, 5 * ref.US)
    rows.sort(key=lambda r: (r["window_end"], r["product_id"]))
    return rows, counters


def run_main(env_extra, workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "KAFKA_"))}
    env.update({"CSTREAM": CSTREAM, "CSTREAM_OFFLINE": "1", "CSTREAM_WORK": workdir})
    env.update(env_extra)
    p = subprocess.run(["bash", os.path.join(ROOT, "dev.sh"), "main-run"], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def printed_candles(out):
    """The PrettyCompact table dev.sh prints: [{column: text}]."""
    header, rows = None, []
    for line in out.splitlines():
        if line.startswith("┌─"):
            header = [c.strip("─") for c in line.strip().strip("┌┐").split("┬")]
            continue
        m = ROW.match(line)
        if m and header:
            cells = [c.strip() for c in m.group(1).split("│")]
            rows.append(dict(zip(header, cells)))
    return header, rows


class MainJob(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cstream-main-")

    def tearDown(self):
        if not os.environ.get("CSTREAM_E2E_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def test_own_clickhouse_prints_the_reference_candles(self):
        work = os.path.join(self.tmp, "work")
        rc, out, err = run_main({}, work)
        self.assertEqual(rc, 0, "dev.sh main-run failed (rc %d):\n%s" % (rc, err[-4000:]))
        self.assertIn("is not reachable", err, "the offline path must say why it replays the bundled capture")
        want, counters = reference_rows()
        header, got = printed_candles(out)
        self.assertEqual(header, ["product_id", "window_start", "trades", "open", "high", "low", "close", "vwap",
                                  "volume", "buy_volume", "sell_volume"], out[:2000])
        self.assertEqual(len(got), len(want), "printed %d candles, want %d:\n%s" % (len(got), len(want), out[-3000:]))
        for g, w in zip(got, want):
            what = "candle %s %s" % (w["product_id"], w["window_start"])
            self.assertEqual(g["product_id"], w["product_id"], what)
            self.assertEqual(g["window_start"], w["window_start"].replace("T", " ").rstrip("Z"), what)
            self.assertEqual(int(g["trades"]), w["trades"], what)
            for k in ("open", "high", "low", "close"):
                self.assertEqual(float(g[k]), w[k], "%s: %s" % (what, k))
            self.assertAlmostEqual(float(g["vwap"]), w["vwap"], delta=0.005 + 1e-9, msg=what + ": vwap")
            for k in ("volume", "buy_volume", "sell_volume"):
                self.assertAlmostEqual(float(g[k]), w[k], delta=5e-9 + 1e-12, msg="%s: %s" % (what, k))
        products = len({w["product_id"] for w in want})
        self.assertIn("%d candles of %d product(s), %d trades" % (len(want), products, counters["trades"]), out)
        # The server the job started is gone, its data kept for the next run.
        self.assertTrue(os.path.isdir(os.path.join(work, "clickhouse", "data")))
        ps = subprocess.run(["pgrep", "-f", os.path.join(work, "clickhouse")], stdout=subprocess.PIPE)
        self.assertEqual(ps.stdout.strip(), b"", "the job's clickhouse-server is still running")

    def test_clickhouse_url_table_holds_exactly_the_reference_windows(self):
        with ClickHouseServer(os.path.join(self.tmp, "ch")) as ch:
            rc, out, err = run_main({"CLICKHOUSE_URL": ch.url, "CLICKHOUSE_DATABASE": "main_job"},
                                    os.path.join(self.tmp, "work"))
            self.assertEqual(rc, 0, "dev.sh main-run failed (rc %d):\n%s" % (rc, err[-4000:]))
            self.assertIn("using ClickHouse at %s" % ch.url, err)
            want, counters = reference_rows()
            got = ch_window_rows(ch, "main_job", "candles_30s")
            m = tr.rows_mismatch([as_pairs(r) for r in got], want, "main_job.candles_30s FINAL: ")
            if m:
                self.fail(m)
            # The ingest and aggregate stages agree with the reference's counters.
            for name, keys in (("ingest", ("trades", "invalid")), ("aggregate-30s", ("trades", "windows", "late"))):
                line = [l for l in err.splitlines() if l.startswith("summary pipeline=%s " % name)]
                self.assertEqual(len(line), 1, err[-3000:])
                fields = dict(kv.split("=", 1) for kv in line[0].split()[1:])
                for k in keys:
                    self.assertEqual(int(fields[k]), counters[k], "%s: %s" % (name, k))
                self.assertEqual(fields["status"], "ok")


def main():
    global CSTREAM
    path, argv = tr._take_cstream_arg(sys.argv)
    CSTREAM = os.path.abspath(path or os.environ.get("CSTREAM") or os.path.join(ROOT, "build", "cstream"))
    tr.CSTREAM = CSTREAM
    if not (os.path.isfile(CSTREAM) and os.access(CSTREAM, os.X_OK)):
        sys.exit("test_main: cstream binary not found: %s" % CSTREAM)
    why = available()
    if why:
        sys.stderr.write("test_main: SKIPPED: %s\n" % why)
        sys.exit(0)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
