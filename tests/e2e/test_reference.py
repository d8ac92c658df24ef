#!/usr/bin/env python3
"""Unit tests of reference.py on tiny hand-made captures whose expected rows
were worked out by hand (see the comments). Standard library only.

    /usr/bin/python3 tests/e2e/test_reference.py
"""
import gzip
import json
import math
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

T0 = 1755892800 * ref.US  # 2025-08-22T20:00:00Z, a multiple of 60 s


def at(sec):
    """Event time T0 + sec seconds, as the `time` string of a trade."""
    return ref.fmt_time(T0 + round(sec * ref.US))


def trade(pid, tid, sec, price, size, side, typ="match", time=None):
    return json.dumps({
        "type": typ, "trade_id": tid,
        "maker_order_id": "5f4bb11b-f065-4025-ad53-2091b10ad2cf",
        "taker_order_id": "66715b57-0167-4ae9-8b2b-75a064a923f4",
        "side": side, "size": size, "price": price, "product_id": pid,
        "sequence": 110614077300 + tid, "time": time if time is not None else at(sec),
    }, separators=(",", ":")).encode()


def run(lines, size_s, lateness_s):
    return ref.run_lines(lines, int(size_s * ref.US), int(lateness_s * ref.US))


def row(pid, start_s, end_s, n, avg, vwap, o, h, l, c, vol, buy, sell):
    return {"product_id": pid, "window_start": ref.fmt_time(T0 + start_s * ref.US),
            "window_end": ref.fmt_time(T0 + end_s * ref.US), "trades": n, "avg_price": avg,
            "vwap": vwap, "open": o, "high": h, "low": l, "close": c, "volume": vol,
            "buy_volume": buy, "sell_volume": sell}


class ReferenceTest(unittest.TestCase):
    def assertRowsEqual(self, got, want):
        self.assertEqual(len(got), len(want), "row count\n got %r\nwant %r" % (got, want))
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertEqual(list(g), list(ref.ROW_KEYS), "key order of row %d" % i)
            for k in ref.ROW_KEYS:
                if isinstance(w[k], float):
                    self.assertTrue(math.isclose(g[k], w[k], rel_tol=1e-12, abs_tol=1e-15),
                                    "row %d %s: got %r want %r" % (i, k, g[k], w[k]))
                else:
                    self.assertEqual(g[k], w[k], "row %d %s" % (i, k))

    def test_walkthrough(self):
        # size 10 s, lateness 2 s; times are seconds after T0.
        lines = [
            b'{"type":"subscriptions","channels":[{"name":"matches","product_ids":["BTC-USD"]}]}',
            trade("BTC-USD", 1, 100.5, "100", "1", "sell"),   # A  BTC[100,110) wm 98.5
            trade("BTC-USD", 2, 105, "110", "3", "buy"),      # B  wm 103
            trade("ETH-USD", 1, 109.999999, "10", "2", "sell"),  # C ETH[100,110) wm 107.999999
            trade("BTC-USD", 2, 105, "110", "3", "buy"),      # D  duplicate of B
            trade("BTC-USD", 3, 111, "120", "1", "sell"),     # E  BTC[110,120) wm 109
            trade("BTC-USD", 4, 101, "90", "1", "buy"),       # F  out of order, end 110 > 109: ok
            b"",                                             #    empty: lines only
            b"\x00\xffgarbage",                              #    invalid
            trade("ETH-USD", 2, 112, "11", "1", "buy"),       # G  wm 110: emit BTC[100,110), ETH[100,110)
            trade("BTC-USD", 5, 108, "1", "1", "buy"),        # H  end 110 <= 110: late
            trade("BTC-USD", 3, 113, "120", "1", "sell"),     # I  duplicate of E (same window)
            trade("ETH-USD", 1, 115, "12", "0.5", "sell"),    # J  id 1 only in an emitted window: ok; wm 113
            trade("BTC-USD", 6, 0, "130.5", "2", "buy",       # K  121.000000999 -> 121.000000; wm 119
                  time=at(121)[:-1] + ".000000999Z"),
            trade("ETH-USD", 2, 121.5, "5", "5", "sell"),     # M  duplicate of G, in another open window
            trade("BTC-USD", 7, 122, "129.5", "2", "sell"),   # L  wm 120: emit BTC[110,120), ETH[110,120)
        ]
        self.assertEqual(ref.parse_time(at(121)[:-1] + ".000000999Z"), T0 + 121 * ref.US)
        rows, c = run(lines, 10, 2)
        self.assertRowsEqual(rows, [
            # A, B, F: avg 300/3, vwap (100+330+90)/5; open A (earliest), close B (latest)
            row("BTC-USD", 100, 110, 3, 100.0, 104.0, 100.0, 110.0, 90.0, 110.0, 5.0, 1.0, 4.0),
            row("ETH-USD", 100, 110, 1, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 2.0, 2.0, 0.0),
            row("BTC-USD", 110, 120, 1, 120.0, 120.0, 120.0, 120.0, 120.0, 120.0, 1.0, 1.0, 0.0),
            # G (11 x 1, buy) and J (12 x 0.5, sell): vwap (11 + 6) / 1.5
            row("ETH-USD", 110, 120, 2, 11.5, 17 / 1.5, 11.0, 12.0, 11.0, 12.0, 1.5, 0.5, 1.0),
            # K (130.5 x 2, buy) and L (129.5 x 2, sell), flushed at end of input
            row("BTC-USD", 120, 130, 2, 130.0, 130.0, 130.5, 130.5, 129.5, 129.5, 4.0, 2.0, 2.0),
        ])
        self.assertEqual(c, {"lines": 16, "trades": 9, "windows": 5, "late": 1,
                             "duplicates": 3, "invalid": 1, "ignored": 1, "open_windows": 0})

    def test_boundaries_lateness_zero(self):
        # size 30 s, lateness 0: a trade at exactly k*30 s belongs to [k*30, +30)
        # and closes the previous window at once; 1 µs before is in the previous one.
        lines = [
            trade("X", 1, 29.999999, "1", "1", "buy"),
            trade("X", 2, 30, "2", "1", "buy"),          # wm 30: emits [0,30)
            trade("X", 3, 29.999999, "3", "1", "buy"),   # late
            trade("X", 4, 30, "4", "1", "buy"),          # same time: fine
            trade("X", 5, 59.999999, "5", "1", "buy"),
        ]
        rows, c = run(lines, 30, 0)
        self.assertRowsEqual(rows, [
            row("X", 0, 30, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0),
            row("X", 30, 60, 3, 11 / 3, 11 / 3, 2.0, 5.0, 2.0, 5.0, 3.0, 0.0, 3.0),
        ])
        self.assertEqual((c["trades"], c["late"], c["windows"]), (4, 1, 2))

    def test_open_close_ties_and_order(self):
        # Same time: open/close are decided by trade_id, not by arrival.
        lines = [
            trade("B", 20, 5, "20", "1", "sell"),
            trade("B", 10, 5, "10", "1", "sell"),
            trade("B", 30, 5, "30", "1", "sell"),
            trade("A", 7, 7, "7", "1", "buy"),
            trade("B", 5, 9, "5", "2", "buy"),   # later time, lowest id: close
        ]
        rows, c = run(lines, 60, 0)
        # End of input: same window end, ordered by product_id.
        self.assertRowsEqual(rows, [
            row("A", 0, 60, 1, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 1.0, 0.0, 1.0),
            row("B", 0, 60, 4, 65 / 4, 70 / 5, 10.0, 30.0, 5.0, 5.0, 5.0, 3.0, 2.0),
        ])

    def test_emission_order_many(self):
        # One trade far ahead closes windows of several ends and products.
        lines = [
            trade("b", 1, 1, "1", "1", "buy"),
            trade("a", 1, 2, "1", "1", "buy"),
            trade("b", 2, 11, "1", "1", "buy"),
            trade("a", 2, 12, "1", "1", "buy"),
            trade("B", 1, 13, "1", "1", "buy"),
            trade("a", 3, 100, "1", "1", "buy"),
        ]
        rows, _ = run(lines, 10, 0)
        got = [(r["product_id"], r["window_start"]) for r in rows]
        want = [("a", at(0)), ("b", at(0)), ("B", at(10)), ("a", at(10)), ("b", at(10)),
                ("a", at(100))]
        self.assertEqual(got, want)

    def test_watermark_never_moves_back_and_non_trades_do_not_move_it(self):
        lines = [
            trade("X", 1, 50, "1", "1", "buy"),      # wm 45
            trade("X", 2, 20, "1", "1", "buy"),      # [0..30) end 30 <= 45: late
            b'{"type":"heartbeat","last_trade_id":1,"product_id":"X","sequence":9,"time":"2099-01-01T00:00:00.000000Z"}',
            trade("X", 3, 10**6, "1", "1", "BUY"),  # invalid: does not move wm
            trade("X", 4, 40, "1", "1", "buy"),      # [30,60) still open: ok
        ]
        rows, c = run(lines, 30, 5)
        self.assertEqual([r["trades"] for r in rows], [2])
        self.assertEqual((c["late"], c["invalid"], c["ignored"]), (1, 1, 1))

    def test_classify(self):
        good = trade("BTC-USD", 1, 0, "116827.85", "0.00004147", "buy").decode()
        g = json.loads(good)

        def variant(**kw):
            d = dict(g)
            for k, v in kw.items():
                if v is KeyError:
                    del d[k]
                else:
                    d[k] = v
            return json.dumps(d).encode()

        cases = [
            (good.encode(), "trade"),
            (variant(type="last_match"), "trade"),
            (good.replace(",", " ,\t ").encode() + b"\r", "trade"),  # JSON whitespace
            (variant(extra={"nested": [1, 2, {"price": 1}]}), "trade"),
            (variant(trade_id=INT64_MAX), "trade"),
            (variant(trade_id=INT64_MAX + 1), "invalid"),
            (variant(trade_id="1"), "invalid"),
            (variant(trade_id=1.0), "invalid"),
            (good.replace('"trade_id":1,', '"trade_id":1e0,').encode(), "invalid"),
            (variant(trade_id=True), "invalid"),
            (variant(trade_id=KeyError), "invalid"),
            (variant(price="1e5"), "invalid"),
            (variant(price="-1"), "invalid"),
            (variant(price="0"), "invalid"),
            (variant(price="0.000"), "invalid"),
            (variant(price=""), "invalid"),
            (variant(price=" 1.0"), "invalid"),
            (variant(price="1."), "invalid"),
            (variant(price=".5"), "invalid"),
            (variant(price="\uff11\uff12"), "invalid"),  # full-width digits
            (variant(price="1" + "0" * 400), "invalid"),  # inf as a double
            (variant(price="0." + "0" * 400 + "1"), "invalid"),  # 0 as a double
            (variant(price=100.5), "invalid"),
            (variant(size="0"), "invalid"),
            (variant(side="BUY"), "invalid"),
            (variant(side=None), "invalid"),
            (variant(product_id=""), "invalid"),
            (variant(product_id=5), "invalid"),
            (variant(time="2025-02-30T00:00:00Z"), "invalid"),
            (variant(time="2025-08-22T20:00:00.123456"), "invalid"),
            (variant(time="2025-08-22T24:00:00Z"), "invalid"),
            (variant(time="2025-08-22T23:59:60Z"), "invalid"),
            (variant(time="2025-08-22T20:00:00.Z"), "invalid"),
            (variant(time="2025-08-22T20:00:00.1234567890Z"), "invalid"),
            (variant(time="2025-08-22T20:00:00+00:00"), "invalid"),
            (variant(time="2023-02-29T00:00:00Z"), "invalid"),
            (variant(time="1900-02-29T00:00:00Z"), "invalid"),
            (variant(time="2024-02-29T00:00:00Z"), "trade"),
            (variant(time="2000-02-29T23:59:59.999999999Z"), "trade"),
            (good.replace('"price":', '"price":"1","price":').encode(), "invalid"),
            (good.replace('"type":"match"', '"type":"match","type":"match"').encode(), "invalid"),
            (good.replace('"sequence":', '"sequence":1,"sequence":').encode(), "invalid"),  # sequence is a member cstream uses
            (good.replace('"sequence":', '"maker_order_id":"x","sequence":').encode(), "trade"),
            (good.replace('{"type":"match"', '{"type":"heartbeat","type":"match"').encode(),
             "invalid"),
            (b'{"type":"heartbeat","type":"heartbeat"}', "ignored"),
            (b'{"type":"heartbeat","type":"last_match"}', "invalid"),
            (good[:-1].encode(), "invalid"),  # truncated
            (good.encode() + b" x", "invalid"),
            (good.encode() + good.encode(), "invalid"),
            (b"[" + good.encode() + b"]", "invalid"),
            (b'"match"', "invalid"),
            (b"null", "invalid"),
            (b" ", "invalid"),
            (good.encode().replace(b"5f4bb11b", b"5f4b\xff1b"), "invalid"),
            (good.encode().replace(b"5f4bb11b", b"5f4\xed\xa0\x80b"), "invalid"),  # surrogate
            (good.encode().replace(b"5f4bb11b", b"5f4\xc0\xafb"), "invalid"),  # overlong
            (good.encode().replace(b"5f4bb11b", b"5f\xc3\xa9b"), "trade"),  # valid UTF-8
            (good.replace('"sequence":110614077301', '"sequence":NaN').encode(), "invalid"),
            (b'{"type":"heartbeat","last_trade_id":1,"product_id":"BTC-USD","sequence":1,"time":"x"}',
             "ignored"),
            (b'{"type":"error","message":"Failed to subscribe"}', "ignored"),
            (b'{"type":"Match","trade_id":1}', "ignored"),
            (b'{"type":5}', "ignored"),
            (b"{}", "ignored"),
            (b"", "empty"),
        ]
        for line, want in cases:
            kind, t, reason = ref.classify(line)
            self.assertEqual(kind, want, "%r: %s" % (line[:200], reason))

    def test_time(self):
        p = ref.parse_time
        self.assertEqual(p("1970-01-01T00:00:00Z"), 0)
        self.assertEqual(p("1970-01-01T00:00:01.5Z"), 1_500_000)
        self.assertEqual(p("2025-08-22T20:11:30.012637Z"), 1755893490_012637)
        self.assertEqual(p("2025-08-22T20:11:30.0126379Z"), 1755893490_012637)  # truncated
        self.assertEqual(p("2025-08-22T20:11:30.999999999Z"), 1755893490_999999)
        self.assertEqual(p("2024-12-31T23:59:59Z"), 1735689599 * ref.US)
        self.assertEqual(p("2000-03-01T00:00:00Z"), 951868800 * ref.US)
        self.assertEqual(ref.fmt_time(1764064830 * ref.US), "2025-11-25T10:00:30Z")
        for s in range(0, 4102444800, 86400 * 37 + 3601):  # to 2100, cross-check civil math
            self.assertEqual(p(ref.fmt_time(s * ref.US)), s * ref.US)

    def test_duration(self):
        d = ref.parse_duration
        self.assertEqual(d("500ms"), 500_000)
        self.assertEqual(d("5s"), 5_000_000)
        self.assertEqual(d("1m"), 60_000_000)
        self.assertEqual(d("1h"), 3_600_000_000)
        self.assertEqual(d("5"), 5_000_000)
        self.assertEqual(d("0s"), 0)

    def test_file_reading(self):
        lines = [trade("X", 1, 1, "1", "1", "buy"), b"", trade("X", 2, 2, "1", "1", "buy")]
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "c.jsonl")
            with open(p, "wb") as f:
                f.write(b"\n".join(lines))  # no final newline: still 3 lines
            pg = p + ".gz"
            with gzip.open(pg, "wb") as f:
                f.write(b"\n".join(lines) + b"\n")
            for path in (p, pg):
                rows, c = ref.run_file(path, 30 * ref.US, 0)
                self.assertEqual(c["lines"], 3)
                self.assertEqual(c["trades"], 2)

    def test_real_capture(self):
        # The real 30 s recording: 447 matches between 20:11:30 and 20:11:59, so
        # one window per product at size 30 s and none late.
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        p = os.path.join(root, "data", "coinbase-exchange-matches-2025-08-22.jsonl")
        if not os.path.exists(p):
            self.skipTest("data/ not populated")
        rows, c = ref.run_file(p, 30 * ref.US, 5 * ref.US)
        self.assertEqual([(r["product_id"], r["trades"]) for r in rows],
                         [("BTC-USD", 143), ("ETH-USD", 284), ("LTC-USD", 20)])
        self.assertEqual(c["trades"], 447)
        self.assertEqual(rows[0]["window_start"], "2025-08-22T20:11:30Z")
        self.assertEqual(rows[0]["open"], 116827.85)


INT64_MAX = 2 ** 63 - 1

if __name__ == "__main__":
    unittest.main()
