#!/usr/bin/env python3
"""Reference implementation of cstream's tumbling-window semantics.

Independent of the C code: written from the specification only, in plain
Python (standard library), to check cstream's output row by row.

    from reference import run_file
    rows, counters = run_file("data/sample.jsonl", size_us=30_000_000, lateness_us=5_000_000)

or from the command line (rows on stdout, a summary line on stderr):

    /usr/bin/python3 tests/e2e/reference.py data/sample.jsonl --size 30s --lateness 5s

Semantics
---------
Input lines (split on "\\n"; a final line without "\\n" counts; an empty line
is counted in `lines` only). A line is
  * a trade: a JSON object whose `type` is "match" or "last_match" and whose
    fields are valid (see `classify`);
  * invalid: bad UTF-8, bad JSON, a JSON value that is not an object, a
    match/last_match object with a missing or bad field, or one of the fields
    a trade uses (type, product_id, trade_id, price, size, side, time,
    sequence) given
    twice in the object (a duplicated `type` makes the line invalid when any
    of its values is match/last_match; duplicates of other keys do not
    matter);
  * ignored: any other JSON object (subscriptions, heartbeat, ticker, no
    `type`, a `type` that is not a string, ...).
Windows are [floor(t/size)*size, +size) per product_id, aligned to the Unix
epoch. The watermark is the largest event time of an accepted trade minus the
lateness (none before the first accepted trade). For each trade:
  1. window end <= watermark           -> late
  2. (product_id, trade_id) already in any open window -> duplicate
  3. otherwise accepted; then every open window with end <= watermark is
     emitted, ordered by (window end, product_id).
At end of input every open window is emitted in the same order.
"""
import argparse
import gzip
import heapq
import json
import math
import re
import sys
from decimal import Decimal, getcontext

getcontext().prec = 80

INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1

TRADE_TYPES = ("match", "last_match")
TRADE_FIELDS = ("type", "product_id", "trade_id", "price", "size", "side", "time", "sequence")

# [0-9] and not \d: Python's \d also matches non-ASCII digits.
DEC_RE = re.compile(r"[0-9]+(\.[0-9]+)?")
TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z")

ROW_KEYS = ("product_id", "window_start", "window_end", "trades", "avg_price", "vwap",
            "open", "high", "low", "close", "volume", "buy_volume", "sell_volume")
COUNTER_KEYS = ("lines", "trades", "windows", "late", "duplicates", "invalid", "ignored",
                "open_windows")

US = 1_000_000


# ---------------------------------------------------------------- calendar
def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_in_month(y, m):
    if m == 2:
        return 29 if is_leap(y) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def parse_time(s):
    """RFC 3339 UTC time string -> integer microseconds since the epoch, or None."""
    if not isinstance(s, str):
        return None
    mo = TIME_RE.fullmatch(s)
    if not mo:
        return None
    y, mon, d, hh, mm, ss = (int(mo.group(i)) for i in range(1, 7))
    frac = mo.group(7) or ""
    if not (1 <= mon <= 12) or not (1 <= d <= days_in_month(y, mon)):
        return None
    if hh >= 24 or mm >= 60 or ss >= 60:
        return None
    us = int((frac[:6]).ljust(6, "0"))  # truncate, do not round
    days = days_from_civil(y, mon, d)
    return ((days * 86400 + hh * 3600 + mm * 60 + ss) * US) + us


def fmt_time(us):
    """Microseconds since the epoch -> RFC 3339 UTC, second precision when whole."""
    secs, frac = divmod(us, US)
    days, rem = divmod(secs, 86400)
    y, m, d = civil_from_days(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    s = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, m, d, hh, mm, ss)
    if frac:
        s += (".%06d" % frac).rstrip("0")
    return s + "Z"


def parse_duration(s):
    """'500ms', '5s', '1m', '1h', '250us', '5' (seconds) -> microseconds."""
    if isinstance(s, (int, float)):
        return int(round(s * US))
    mo = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|m|h)?\s*", s)
    if not mo:
        raise ValueError("bad duration %r" % s)
    v = Decimal(mo.group(1))
    mult = {"us": 1, "ms": 1000, "s": US, "m": 60 * US, "h": 3600 * US, None: US}[mo.group(2)]
    return int(v * mult)


# ------------------------------------------------------------------ parsing
class _Obj(dict):
    """A JSON object that remembers its key/value pairs in order (duplicates too)."""
    __slots__ = ("pairs",)


def _pairs_hook(pairs):
    o = _Obj(pairs)
    o.pairs = pairs
    return o


def _bad_constant(name):
    raise ValueError("not JSON: %s" % name)


_decoder = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_constant=_bad_constant)


class Trade:
    __slots__ = ("product_id", "trade_id", "price", "size", "price_s", "size_s", "side",
                 "time", "type")

    def __repr__(self):
        return "Trade(%s #%d %s %s@%s t=%s)" % (self.product_id, self.trade_id, self.side,
                                               self.size_s, self.price_s, fmt_time(self.time))


def _valid_decimal(v):
    if not isinstance(v, str) or not DEC_RE.fullmatch(v):
        return None
    f = float(v)
    if not math.isfinite(f) or f <= 0.0:
        return None
    return f


def classify(line):
    """bytes (without the newline) -> (kind, trade_or_None, reason).

    kind is one of 'empty', 'invalid', 'ignored', 'trade'."""
    if len(line) == 0:
        return "empty", None, ""
    try:
        text = line.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return "invalid", None, "invalid UTF-8"
    try:
        obj = _decoder.decode(text)
    except ValueError as e:  # JSONDecodeError is a ValueError; so is NaN/Infinity
        return "invalid", None, "bad JSON: %s" % e
    except RecursionError:
        return "invalid", None, "bad JSON: too deep"
    if not isinstance(obj, _Obj):
        return "invalid", None, "not an object"
    counts = {}
    for k, _ in obj.pairs:
        if k in TRADE_FIELDS:
            counts[k] = counts.get(k, 0) + 1
    if counts.get("type", 0) > 1:
        # Which type is it? If any of the values says it is a trade, it is a
        # trade with a duplicated field: invalid. Otherwise it is not a trade.
        if any(k == "type" and isinstance(v, str) and v in TRADE_TYPES for k, v in obj.pairs):
            return "invalid", None, "duplicated key type"
        return "ignored", None, ""
    typ = obj.get("type")
    if not isinstance(typ, str):
        # No string `type`: cstream's own trade record ("v"), an Advanced
        # Trade frame ("channel"), or nothing it reads.
        if "v" in obj:
            for k, n in counts.items():
                if n > 1:
                    return "invalid", None, "duplicated key %s" % k
            return _record(obj)
        if obj.get("channel") == "market_trades" and "events" in obj:
            return _advanced(obj)
        return "ignored", None, ""
    if typ not in TRADE_TYPES:
        return "ignored", None, ""
    for k, n in counts.items():
        if n > 1:
            return "invalid", None, "duplicated key %s" % k
    t = Trade()
    t.type = typ
    pid = obj.get("product_id")
    if not isinstance(pid, str) or pid == "":
        return "invalid", None, "bad product_id"
    t.product_id = pid
    tid = obj.get("trade_id")
    if type(tid) is not int or not (INT64_MIN <= tid <= INT64_MAX):
        return "invalid", None, "bad trade_id"
    t.trade_id = tid
    p = _valid_decimal(obj.get("price"))
    if p is None:
        return "invalid", None, "bad price"
    s = _valid_decimal(obj.get("size"))
    if s is None:
        return "invalid", None, "bad size"
    t.price, t.size = p, s
    t.price_s, t.size_s = obj["price"], obj["size"]
    side = obj.get("side")
    if side not in ("buy", "sell") or not isinstance(side, str):
        return "invalid", None, "bad side"
    t.side = side
    tm = parse_time(obj.get("time"))
    if tm is None:
        return "invalid", None, "bad time"
    t.time = tm
    return "trade", t, ""


def _common(obj, t):
    """product_id, price, size, time; -> reason or None."""
    pid = obj.get("product_id")
    if not isinstance(pid, str) or pid == "":
        return "bad product_id"
    t.product_id = pid
    p = _valid_decimal(obj.get("price"))
    s = _valid_decimal(obj.get("size"))
    if p is None:
        return "bad price"
    if s is None:
        return "bad size"
    t.price, t.size = p, s
    t.price_s, t.size_s = obj["price"], obj["size"]
    tm = parse_time(obj.get("time"))
    if tm is None:
        return "bad time"
    t.time = tm
    return None


def _record(obj):
    """cstream's trade record, version 1: taker_side is the taker's."""
    if type(obj.get("v")) is not int or obj.get("v") != 1:
        return "invalid", None, "bad v"
    t = Trade()
    t.type = "record"
    why = _common(obj, t)
    if why:
        return "invalid", None, why
    tid = obj.get("trade_id")
    if type(tid) is not int or not (INT64_MIN <= tid <= INT64_MAX):
        return "invalid", None, "bad trade_id"
    t.trade_id = tid
    ts = obj.get("taker_side")
    if ts not in ("buy", "sell") or not isinstance(ts, str):
        return "invalid", None, "bad taker_side"
    t.side = "sell" if ts == "buy" else "buy"  # stored as the maker's side
    return "trade", t, ""


def _advanced_trade(tr):
    if not isinstance(tr, _Obj):
        return None
    seen = {}
    for k, _ in tr.pairs:
        if k in TRADE_FIELDS:
            seen[k] = seen.get(k, 0) + 1
    if any(n > 1 for n in seen.values()):
        return None
    t = Trade()
    t.type = "market_trades"
    if _common(tr, t):
        return None
    tid = tr.get("trade_id")
    if not isinstance(tid, str) or not re.fullmatch(r"[0-9]{1,19}", tid) or int(tid) > INT64_MAX:
        return None
    t.trade_id = int(tid)
    side = tr.get("side")
    if side not in ("BUY", "SELL") or not isinstance(side, str):
        return None
    t.side = side.lower()  # the maker's side, as on the Exchange feed
    return t


def _advanced(obj):
    """Advanced Trade market_trades: events[].trades[], processed oldest first."""
    evs = obj.get("events")
    if not isinstance(evs, list):
        return "invalid", None, "events is not an array"
    trades, bad = [], 0
    for ev in evs:
        if not isinstance(ev, _Obj) or not isinstance(ev.get("trades"), list):
            continue
        for tr in ev.get("trades"):
            t = _advanced_trade(tr)
            if t is None:
                bad += 1
            else:
                trades.append(t)
    if not trades:
        return ("invalid", bad, "bad trades") if bad else ("ignored", None, "")
    trades.sort(key=lambda t: (t.time, t.trade_id, t.product_id.encode("utf-8", "surrogatepass")))
    return "batch", (trades, bad), ""


# ------------------------------------------------------------------ windows
class _Agg:
    __slots__ = ("product_id", "start", "end", "n", "sum_p", "sum_pq", "sum_q", "buy_q",
                 "sell_q", "open_k", "open_p", "close_k", "close_p", "high", "low", "ids")

    def __init__(self, product_id, start, end):
        self.product_id, self.start, self.end = product_id, start, end
        self.n = 0
        self.sum_p = self.sum_pq = self.sum_q = self.buy_q = self.sell_q = Decimal(0)
        self.open_k = self.close_k = None
        self.open_p = self.close_p = self.high = self.low = None
        self.ids = []

    def add(self, t):
        p, q = Decimal(t.price_s), Decimal(t.size_s)
        self.n += 1
        self.sum_p += p
        self.sum_pq += p * q
        self.sum_q += q
        if t.side == "sell":   # maker sold: the taker bought
            self.buy_q += q
        else:
            self.sell_q += q
        k = (t.time, t.trade_id)
        if self.open_k is None or k < self.open_k:
            self.open_k, self.open_p = k, t.price
        if self.close_k is None or k > self.close_k:
            self.close_k, self.close_p = k, t.price
        self.high = t.price if self.high is None else max(self.high, t.price)
        self.low = t.price if self.low is None else min(self.low, t.price)
        self.ids.append(t.trade_id)

    def row(self):
        return {
            "product_id": self.product_id,
            "window_start": fmt_time(self.start),
            "window_end": fmt_time(self.end),
            "trades": self.n,
            "avg_price": float(self.sum_p / self.n),
            "vwap": float(self.sum_pq / self.sum_q),
            "open": self.open_p,
            "high": self.high,
            "low": self.low,
            "close": self.close_p,
            "volume": float(self.sum_q),
            "buy_volume": float(self.buy_q),
            "sell_volume": float(self.sell_q),
        }


class Engine:
    """Feed lines one at a time with `line()`, then call `finish()`."""

    def __init__(self, size_us, lateness_us):
        if size_us <= 0:
            raise ValueError("window size must be > 0")
        if lateness_us < 0:
            raise ValueError("lateness must be >= 0")
        self.size = size_us
        self.lateness = lateness_us
        self.watermark = None
        self.max_time = None
        self.open = {}        # (product_id, start) -> _Agg
        self.heap = []        # (end, product_id, start)
        self.open_ids = set() # (product_id, trade_id) in open windows
        self.rows = []
        self.c = dict.fromkeys(COUNTER_KEYS, 0)
        self.c["empty"] = 0
        self.trace = None     # optional list: (line_no, kind, reason)

    def line(self, raw):
        self.c["lines"] += 1
        kind, t, reason = classify(raw)
        if kind == "empty":
            self.c["empty"] += 1
        elif kind == "invalid":
            # A batch whose trades are all bad counts each of them.
            self.c["invalid"] += t if isinstance(t, int) and t > 0 else 1
        elif kind == "batch":
            trades, bad = t
            self.c["invalid"] += bad
            for one in trades:
                self.trade(one)
            kind = "trade"
        elif kind == "ignored":
            self.c["ignored"] += 1
        else:
            kind = self.trade(t)
        if self.trace is not None:
            self.trace.append((self.c["lines"], kind, reason))
        return kind

    def trade(self, t):
        start = (t.time // self.size) * self.size  # floor, also before 1970
        end = start + self.size
        if self.watermark is not None and end <= self.watermark:
            self.c["late"] += 1
            return "late"
        if (t.product_id, t.trade_id) in self.open_ids:
            self.c["duplicates"] += 1
            return "duplicate"
        key = (t.product_id, start)
        w = self.open.get(key)
        if w is None:
            w = self.open[key] = _Agg(t.product_id, start, end)
            heapq.heappush(self.heap, (end, t.product_id.encode("utf-8", "surrogatepass"), start,
                                       t.product_id))
        w.add(t)
        self.open_ids.add((t.product_id, t.trade_id))
        self.c["trades"] += 1
        if self.max_time is None or t.time > self.max_time:
            self.max_time = t.time
            wm = t.time - self.lateness
            if self.watermark is None or wm > self.watermark:
                self.watermark = wm
        self._emit(self.watermark)
        return "trade"

    def _emit(self, upto):
        while self.heap and (upto is None or self.heap[0][0] <= upto):
            end, _, start, pid = heapq.heappop(self.heap)
            w = self.open.pop((pid, start))
            for tid in w.ids:
                self.open_ids.discard((pid, tid))
            self.rows.append(w.row())
            self.c["windows"] += 1

    def finish(self):
        self._emit(None)
        self.c["open_windows"] = len(self.open)
        return self.rows, self.counters()

    def counters(self):
        return {k: self.c[k] for k in COUNTER_KEYS}


# ------------------------------------------------------------------ input
def read_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return data


def split_lines(data):
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start another
    return lines


def run_lines(lines, size_us, lateness_us, trace=None):
    e = Engine(size_us, lateness_us)
    e.trace = trace
    for raw in lines:
        e.line(raw)
    return e.finish()


def run_file(path, size_us, lateness_us, trace=None):
    return run_lines(split_lines(read_bytes(path)), size_us, lateness_us, trace)


def summary_line(name, c):
    return "summary pipeline=%s %s" % (name, " ".join("%s=%d" % (k, c[k]) for k in COUNTER_KEYS))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Reference tumbling windows for a capture.")
    ap.add_argument("capture")
    ap.add_argument("--size", default="30s", help="window size (30s, 1m, ...)")
    ap.add_argument("--lateness", default="5s")
    ap.add_argument("--trace", action="store_true", help="print each line's classification")
    a = ap.parse_args(argv)
    trace = [] if a.trace else None
    rows, c = run_file(a.capture, parse_duration(a.size), parse_duration(a.lateness), trace)
    out = sys.stdout
    if trace is not None:
        for n, kind, reason in trace:
            out.write("line %d: %s %s\n" % (n, kind, reason))
    for r in rows:
        out.write(json.dumps(r, separators=(",", ":")) + "\n")
    sys.stderr.write(summary_line("reference", c) + "\n")


if __name__ == "__main__":
    main()
