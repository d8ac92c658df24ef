#!/usr/bin/env python3
"""Generate an adversarial capture in the Coinbase Exchange `matches` format.

Deterministic for a given --seed (the gzip output too: mtime 0).

    /usr/bin/python3 tests/e2e/gen_capture.py --seed 7 --out /tmp/c.jsonl
    /usr/bin/python3 tests/e2e/gen_capture.py --seed 7 --out /tmp/c.jsonl.gz   # gzip
    /usr/bin/python3 tests/e2e/gen_capture.py --seed 7 --gzip --out -        # gzip on stdout

What is in it (see `generate`):
  * several products (two share trade_id ranges: not duplicates of each other),
    Poisson trades with bursts, a random-walk price, real key order/format;
  * out-of-order trades delayed by up to 4.5 s (within a 5 s lateness), late
    trades delayed by 6-90 s, exact duplicate lines, re-delivered trade_ids with
    the same time but other values, re-delivered trade_ids with another time
    (possibly in another window), `last_match` messages;
  * trades exactly on window boundaries (t = k*size) and 1 µs before, for each
    of --sizes;
  * times with 0-9 fractional digits (7-9 digits are truncated to µs);
  * valid but unusual trades: extra/nested fields, key order shuffled, JSON
    whitespace, escapes in unused fields, leading zeros in price, leap days,
    trade_id 0 and INT64_MAX, a duplicated key the trade does not use
    (`maker_order_id`; a duplicated `sequence` is invalid);
  * ignored messages: subscriptions, heartbeat, ticker, l2update, snapshot,
    error, full-channel messages, objects with no/odd `type`, a duplicated
    `type` whose values are both `heartbeat`;
  * invalid lines: bad JSON, truncated lines, binary garbage, invalid UTF-8,
    bad trade_id/price/size/side/time/product_id, duplicated keys a trade uses
    (including `type` given as heartbeat then match), JSON arrays
    and scalars, a huge line (--huge-mb, 2 MB by default), and for some seeds a
    truncated last line without a newline;
  * empty lines;
  * for seeds % 3 == 2, a clock jump (a trade an hour ahead) near the end.

`margins=True` (generate(..., margins=True), --margins) keeps the same kinds
of disorder but every arrival far from the lateness boundary, for tests whose
pipeline judges lateness with a clock that is only known within a few
seconds (the multi-process stack, tests/e2e/test_stack.py): out-of-order
trades at most 1.5 s behind, late trades at least 20 s after their 30 s
window's end and 12 s after the next trade of their product (so that their
id was surely missing for 5 s first), duplicates and re-deliveries within
1.5 s, re-deliveries with another time in the original's 30 s window, and
invalid lines that carry a time arriving at that time.
"""
import argparse
import datetime as dt
import gzip
import io
import json
import math
import random
import re
import sys
import uuid

US = 1_000_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
INT64_MAX = 2 ** 63 - 1

TIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z")

KEY_ORDER = ("type", "trade_id", "maker_order_id", "taker_order_id", "side", "size", "price",
             "product_id", "sequence", "time")

# product: (start price, price decimals, size decimals, trades/s, trade_id base, volatility)
PRODUCTS = {
    "BTC-USD": (116827.85, 2, 8, 3.0, 865127782, 6.0),
    "BTC-EUR": (99812.4, 2, 8, 1.0, 865127782, 5.0),   # same ids as BTC-USD on purpose
    "ETH-USD": (4825.29, 2, 8, 3.5, 689038652, 0.5),
    "LTC-USD": (122.63, 2, 8, 0.7, 173026396, 0.05),
    "eth-btc": (0.04131, 5, 8, 0.2, 42, 0.00002),      # lower case: byte order sorts it last
}


def dumps(obj, spaced=False):
    if spaced:
        return json.dumps(obj, separators=(" , ", " : "), ensure_ascii=False)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def fmt_dec(v, places):
    s = "%.*f" % (places, v)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def fmt_time_digits(us, digits, rng):
    """Time string with `digits` fractional digits (0-9). For digits < 6 the caller
    has already truncated `us`; for digits > 6 random extra digits are appended."""
    secs, frac = divmod(us, US)
    s = (EPOCH + dt.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    f6 = "%06d" % frac
    if digits == 0:
        assert frac == 0
        return s + "Z"
    if digits < 6:
        assert f6[digits:] == "0" * (6 - digits)
        return s + "." + f6[:digits] + "Z"
    extra = "".join(rng.choice("0123456789") for _ in range(digits - 6))
    return s + "." + f6 + extra + "Z"


class Gen:
    def __init__(self, seed, minutes, sizes, huge_mb, jump, margins=False):
        self.margins = margins
        self.rng = random.Random(seed)
        self.seed = seed
        self.minutes = minutes
        self.sizes = sizes
        self.huge_mb = huge_mb
        self.jump = jump
        self.events = []  # (arrival_us, order, bytes)
        self.order = 0
        self.seqno = {}

    # ------------------------------------------------------------- helpers
    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def put(self, arrival, line):
        if isinstance(line, str):
            line = line.encode("utf-8")
        assert b"\n" not in line
        self.events.append((arrival, self.order, line))
        self.order += 1

    def seq(self, pid):
        self.seqno[pid] = self.seqno.get(pid, 10 ** 10 + self.rng.randrange(10 ** 11)) + \
            self.rng.choice([1, 2, 3, 7, 30, 112])
        return self.seqno[pid]

    def digits(self):
        r = self.rng.random()
        if r < 0.80:
            return 6
        return self.rng.choice([0, 1, 2, 3, 4, 5, 7, 8, 9])

    def trade_obj(self, tr, typ="match", time_s=None):
        o = {
            "type": typ,
            "trade_id": tr["trade_id"],
            "maker_order_id": self.uuid(),
            "taker_order_id": tr["taker"],
            "side": tr["side"],
            "size": tr["size"],
            "price": tr["price"],
            "product_id": tr["product_id"],
            "sequence": self.seq(tr["product_id"]),
            "time": time_s if time_s is not None else tr["time_s"],
        }
        return o

    def line_of(self, o, style=None):
        """Serialise a trade object, sometimes in an unusual but valid way."""
        style = style or self.rng.choices(
            ["plain", "shuffled", "spaced", "extra", "escapes"], [90, 3, 3, 3, 1])[0]
        if style == "plain":
            return dumps(o)
        if style == "shuffled":
            items = list(o.items())
            self.rng.shuffle(items)
            return dumps(dict(items))
        if style == "spaced":
            return "  " + dumps(o, spaced=True) + " \t"
        if style == "extra":
            o = dict(o)
            o["maker_profile_id"] = self.uuid()
            o["meta"] = {"price": "not-this-one", "trade_id": [1, 2.5, None, True],
                         "nested": {"time": "2099-01-01T00:00:00Z"}}
            o["ratio"] = 1.5e-7
            return dumps(o)
        if style == "escapes":
            s = dumps(o)
            return s.replace('"maker_order_id":"', '"maker_order_id":"\\/\\u00e9\\"\\\\\\t é ')
        raise ValueError(style)

    # --------------------------------------------------------- the trades
    def make_trades(self):
        rng = self.rng
        start = 1755892800 + 600 * rng.randrange(0, 6)  # 2025-08-22T20:00Z + k*10 min
        self.t0 = start * US + rng.randrange(0, 3 * US)
        self.t_end = self.t0 + int(self.minutes * 60 * US)
        products = list(PRODUCTS)
        if self.seed % 2:
            products.remove("BTC-EUR")
        self.products = products
        trades = {p: [] for p in products}
        for p in products:
            price, pdec, sdec, rate, _, vol = PRODUCTS[p]
            t = self.t0 + rng.randrange(0, US)
            activity = 1.0
            while True:
                if rng.random() < 0.03:
                    activity = rng.choice([0.05, 0.3, 1.0, 1.0, 2.0, 5.0])
                gap = rng.expovariate(rate * activity)
                t += max(1, int(gap * US))
                if t >= self.t_end:
                    break
                price = max(10 ** -pdec, price + rng.gauss(0, vol * math.sqrt(max(gap, 1e-3))))
                side = rng.choice(["buy", "sell"])
                taker = self.uuid()
                for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 6)):
                    trades[p].append(self.new_trade(p, t, price, side, taker))
                    if rng.random() < 0.3:
                        t += rng.randint(1, 300)
        # trades on window boundaries: t = k*size exactly and 1 µs before
        for size in self.sizes:
            k0 = -(-self.t0 // (size * US))
            k1 = self.t_end // (size * US)
            ks = list(range(k0, k1 + 1))
            for k in rng.sample(ks, min(3, len(ks))):
                for delta in (0, -1):
                    p = rng.choice(products)
                    t = k * size * US + delta
                    price = float(trades[p][len(trades[p]) // 2]["price"]) if trades[p] else 100.0
                    tr = self.new_trade(p, t, price, rng.choice(["buy", "sell"]), self.uuid())
                    if delta == 0:
                        tr["digits"] = rng.choice([0, 6, 9])
                    else:
                        tr["digits"] = rng.choice([6, 9])
                    trades[p].append(tr)
        # contiguous trade ids per product, in time order
        for p in products:
            trades[p].sort(key=lambda tr: tr["t"])
            base = PRODUCTS[p][4]
            for i, tr in enumerate(trades[p]):
                tr["trade_id"] = base + i
                self.finish_trade(tr)
        self.trades = trades
        return trades

    def new_trade(self, p, t, price, side, taker):
        _, pdec, sdec, _, _, _ = PRODUCTS[p]
        r = self.rng.random()
        if r < 0.1:
            size = self.rng.choice([0.001, 0.01, 0.1, 0.5, 1, 2])
        else:
            size = max(10 ** -sdec, math.exp(self.rng.gauss(math.log(0.01), 2.0)))
        size_s = fmt_dec(size, sdec)
        if float(size_s) <= 0:
            size_s = "0.00000001"
        price_s = fmt_dec(price, pdec)
        if float(price_s) <= 0:
            price_s = "0." + "0" * (pdec - 1) + "1"
        return {"product_id": p, "t": t, "price": price_s, "size": size_s, "side": side,
                "taker": taker, "digits": None}

    def finish_trade(self, tr):
        d = tr["digits"] if tr["digits"] is not None else self.digits()
        if d < 6:
            q = 10 ** (6 - d)
            tr["t"] -= tr["t"] % q  # the value the string really says
        tr["digits"] = d
        tr["time_s"] = fmt_time_digits(tr["t"], d, self.rng)

    # ------------------------------------------------------------ emitters
    def emit_trades(self):
        rng = self.rng
        all_trades = sorted((tr for p in self.products for tr in self.trades[p]),
                            key=lambda tr: (tr["t"], tr["product_id"]))
        self.all_trades = all_trades
        following = {}  # id(trade) -> time of the next trade of its product
        for p in self.products:
            for a, b in zip(self.trades[p], self.trades[p][1:]):
                following[id(a)] = b["t"]
        jump_at = None
        if self.jump:
            jump_at = self.t0 + int((self.t_end - self.t0) * 0.93)
        for tr in all_trades:
            o = self.trade_obj(tr)
            line = self.line_of(o)
            r = rng.random()
            arrival = tr["t"]
            m = self.margins
            if r < 0.08:
                arrival += rng.randint(1, int((1.5 if m else 4.5) * US))  # out of order, within 5 s
            elif r < 0.10:
                if m:  # late, far from the boundary: 20-60 s after the window's end
                    end = (tr["t"] // (30 * US) + 1) * 30 * US
                    after = max(end + 20 * US, following.get(id(tr), tr["t"]) + 12 * US)
                    arrival = after + rng.randint(0, 40 * US)
                else:
                    arrival += rng.randint(6 * US, 90 * US)        # late
            self.put(arrival, line)
            r = rng.random()
            if r < 0.03:                                           # exact duplicate line
                self.put(arrival + rng.randint(0, int((1.5 if m else 20) * US)), line)
            elif r < 0.04:                                         # re-delivered, same time
                o2 = dict(o)
                o2["price"] = fmt_dec(float(o["price"]) * 1.01, 2)
                o2["size"] = "1"
                o2["sequence"] = self.seq(tr["product_id"])
                self.put(arrival + rng.randint(0, int((1.5 if m else 10) * US)), self.line_of(o2, "shuffled"))
            elif r < 0.045:                                        # re-delivered, another time
                if m:  # ... within 1 s, in the original's 30 s window
                    end = (tr["t"] // (30 * US) + 1) * 30 * US
                    t2 = min(tr["t"] + rng.randint(1, US), end - 1)
                else:
                    t2 = tr["t"] + rng.randint(1 * US, 40 * US)
                o2 = dict(o)
                o2["time"] = fmt_time_digits(t2, 6, rng)
                self.put(t2, dumps(o2))
            if rng.random() < 0.25:                                # a ticker for the trade
                self.put(arrival, self.ticker(tr))
        if jump_at is not None:
            p = rng.choice(self.products)
            tr = self.new_trade(p, self.t_end + 3600 * US, 100.0, "buy", self.uuid())
            tr["trade_id"] = 10 ** 12 + self.seed
            self.finish_trade(tr)
            self.put(jump_at, dumps(self.trade_obj(tr)))

    def ticker(self, tr):
        return dumps({
            "type": "ticker", "sequence": self.seq(tr["product_id"]),
            "product_id": tr["product_id"], "price": tr["price"], "open_24h": "4700.01",
            "volume_24h": "94381.28000000", "low_24h": "4650", "high_24h": "4900.5",
            "volume_30d": "2295579.57000000", "best_bid": tr["price"], "best_ask": tr["price"],
            "side": tr["side"], "time": tr["time_s"], "trade_id": tr["trade_id"],
            "last_size": tr["size"]})

    def emit_preamble(self):
        rng = self.rng
        ps = self.products
        self.put(self.t0 - 10 * US, dumps({"type": "subscriptions", "channels": [
            {"name": "matches", "product_ids": ps}, {"name": "heartbeat", "product_ids": ps},
            {"name": "ticker", "product_ids": ps}]}))
        for p in ps:  # last_match: the trade before the first one
            first = self.trades[p][0] if self.trades[p] else None
            tid = (first["trade_id"] if first else PRODUCTS[p][4]) - 1
            price = first["price"] if first else "100"
            tr = {"product_id": p, "trade_id": tid, "price": price, "size": "0.5",
                  "side": rng.choice(["buy", "sell"]), "taker": self.uuid(),
                  "time_s": fmt_time_digits(self.t0 - rng.randint(1, 3 * US), 6, rng)}
            self.put(self.t0 - 9 * US, dumps(self.trade_obj(tr, typ="last_match")))

    def emit_ignored(self):
        rng = self.rng
        last = {p: PRODUCTS[p][4] for p in self.products}
        s = self.t0 // US + 1
        while s * US < self.t_end:
            for p in self.products:
                t = s * US + rng.randint(100, 5000)
                self.put(t, dumps({"type": "heartbeat", "last_trade_id": last[p], "product_id": p,
                                   "sequence": self.seq(p), "time": fmt_time_digits(t, 6, rng)}))
            s += 1
        span = self.t_end - self.t0
        pick = lambda: self.t0 + rng.randrange(span)  # noqa: E731
        tr = self.all_trades[len(self.all_trades) // 3]
        full = self.trade_obj(tr)
        odd = [
            {"type": "subscriptions", "channels": [{"name": "matches", "product_ids": ["BTC-USD"]}]},
            {"type": "error", "message": "Failed to subscribe", "reason": "ETH-XYZ is not a valid product"},
            {"type": "l2update", "product_id": "BTC-USD", "changes": [["buy", "116827.85", "0.1"]],
             "time": "2025-08-22T20:00:01.000000Z"},
            {"type": "snapshot", "product_id": "BTC-USD", "bids": [["116827.85", "0.1"]],
             "asks": [["116827.86", "0.2"]]},
            {"type": "received", "time": tr["time_s"], "product_id": tr["product_id"],
             "sequence": 1, "order_id": self.uuid(), "size": "1.34", "price": "502.1",
             "side": "buy", "order_type": "limit"},
            {"type": "done", "time": tr["time_s"], "product_id": tr["product_id"], "sequence": 2,
             "price": "200.2", "order_id": self.uuid(), "reason": "filled", "side": "sell",
             "remaining_size": "0"},
            {"type": "status", "products": [], "currencies": []},
            dict(full, type="MATCH"),
            dict(full, type="Match"),
            dict(full, type="matches"),
            dict(full, type=5),
            dict(full, type=None),
            dict(full, type=["match"]),
            dict((k, v) for k, v in full.items() if k != "type"),
            {},
            {"type": "ticker", "price": "-1", "trade_id": "x", "time": "garbage"},
        ]
        for o in odd:
            self.put(pick(), dumps(o))
        # a duplicated type that never says match/last_match: not a trade
        self.put(pick(), '{"type":"heartbeat","type":"heartbeat","product_id":"BTC-USD"}')
        for _ in range(5):
            self.put(pick(), dumps(rng.choice(odd)))
        # other duplicated keys in objects that are not trades are left out on
        # purpose: the spec defines duplicates for trades only.

    def emit_unusual_valid(self):
        """Valid trades that look odd. Fresh trade ids (no clash with the stream)."""
        rng = self.rng
        span = self.t_end - self.t0
        base = 5 * 10 ** 11
        p = self.products[0]
        specs = [
            dict(price="00116800.50"),                           # leading zeros are digits
            dict(price="116800.123456789012345678"),
            dict(size="0.00000001"),
            dict(size="12345"),
            dict(trade_id=0),
            dict(trade_id=INT64_MAX),
            dict(typ="last_match"),
            dict(time_s="2024-02-29T12:00:00.5Z"),                # valid leap day (late)
            dict(time_s="2000-02-29T23:59:59.999999999Z"),        # valid leap day (late)
            # a duplicated key: maker_order_id is not used (valid), sequence is (invalid)
            dict(dup='"sequence":1,"sequence":'),
            dict(dup='"maker_order_id":"x","sequence":'),
        ]
        for i, sp in enumerate(specs):
            t = self.t0 + rng.randrange(span // 10, span)
            tr = self.new_trade(p, t, 116800.0, rng.choice(["buy", "sell"]), self.uuid())
            tr["trade_id"] = sp.get("trade_id", base + i)
            tr["digits"] = 6
            self.finish_trade(tr)
            for k in ("price", "size", "time_s"):
                if k in sp:
                    tr[k] = sp[k]
            o = self.trade_obj(tr, typ=sp.get("typ", "match"))
            if "dup" in sp:
                line = dumps(o).replace('"sequence":', sp["dup"], 1)
            else:
                line = self.line_of(o, rng.choice(["plain", "shuffled", "spaced", "extra",
                                                   "escapes"]))
            self.put(t, line)

    def emit_invalid(self):
        rng = self.rng
        span = self.t_end - self.t0
        pick = lambda: self.t0 + rng.randrange(span)  # noqa: E731
        tmpl_tr = self.all_trades[len(self.all_trades) // 2]
        if self.margins:
            # Their `time` is the template's: arriving elsewhere, they would
            # move a feed's clock (and a replay exchange's pacing) far ahead.
            pick = lambda: tmpl_tr["t"] + rng.randrange(US)  # noqa: E731

        def good(**kw):
            o = self.trade_obj(tmpl_tr)
            o["trade_id"] = 9 * 10 ** 11 + rng.randrange(10 ** 6)
            for k, v in kw.items():
                if v is KeyError:
                    o.pop(k, None)
                else:
                    o[k] = v
            return o

        bad = []
        # bad JSON
        g = dumps(good())
        bad += [
            b'{"type":"match","trade_id":1,',
            b'{type:"match",trade_id:1}',
            g[:-1].encode() + b',}',
            b"not json at all",
            g.encode() + b"}",
            g.encode() + b" " + g.encode(),
            g.replace('"type":"match"', "'type':'match'").encode(),
            g.replace('"trade_id":', '"trade_id":0').encode(),  # leading zero number
            b'{"type":"heartbeat","product_id":"BTC-USD"',        # not a trade, still bad JSON
            b"{",
            b"}",
            b"\\",
            # bad JSON in a field the trade does not use
            g.replace('"sequence":', '"sequence":NaN,"x":').encode(),
            g.replace('"sequence":', '"sequence":tru,"x":').encode(),
            g.replace('"sequence":', '"sequence":-,"x":').encode(),
            g.replace('"sequence":', '"sequence":1.,"x":').encode(),
            g.replace('"maker_order_id":"', '"maker_order_id":"\x01').encode(),
            g.replace('"maker_order_id":"', '"maker_order_id":"\\x').encode(),
        ]
        # truncated lines
        for _ in range(4):
            s = dumps(good()).encode()
            bad.append(s[:rng.randrange(1, len(s))])
        # binary garbage
        for _ in range(4):
            first = bytes([rng.choice(list(range(0, 9)) + list(range(0x80, 0x100)))])
            rest = bytes(b for b in (rng.randrange(256) for _ in range(rng.randint(0, 200)))
                         if b != 0x0a)
            bad.append(first + rest)
        # invalid UTF-8 inside otherwise good trades
        for seqb in (b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                     b"\xe2\x82", b"\x80"):
            s = dumps(good()).encode()
            field = rng.choice([b'"maker_order_id":"', b'"product_id":"', b'"taker_order_id":"'])
            bad.append(s.replace(field, field + seqb, 1))
        # bad fields
        fields = {
            "trade_id": ["123", 123.0, 1e3, INT64_MAX + 1, -(2 ** 63) - 1, 2 ** 64, True, None,
                         [1], {"id": 1}, KeyError],
            "price": ["1e5", "-1", "0", "", " 1.0", 100.5, "1.", ".5", "0.000", "1,000.00", "NaN",
                      "inf", "1.0 ", "+1", "0x10", "\uff11\uff12", "1" + "0" * 400,
                      "0." + "0" * 400 + "1", None, KeyError],
            "size": ["0", "-0.5", 0.5, "", "1e-3", "0.0", KeyError],
            "side": ["BUY", "SELL", "Sell", "", None, 1, KeyError],
            "time": ["2025-02-30T20:00:00.000000Z", "2023-02-29T20:00:00.000000Z",
                     "2025-04-31T20:00:00.000000Z", "2025-13-01T20:00:00.000000Z",
                     "2025-00-10T20:00:00.000000Z", "2025-08-00T20:00:00.000000Z",
                     "2025-08-32T20:00:00.000000Z", "2025-08-22T24:00:00.000000Z",
                     "2025-08-22T23:60:00.000000Z", "2025-08-22T23:59:60.000000Z",
                     "2025-08-22T20:00:00.123456", "2025-08-22T20:00:00.123456z",
                     "2025-08-22 20:00:00.123456Z", "2025-08-22T20:00:00+00:00",
                     "2025-08-22T20:00:00.Z", "2025-08-22T20:00:00.1234567890Z",
                     "2025-8-22T20:00:00Z", "12025-08-22T20:00:00Z", "2025-08-22T20:00:00Z ",
                     "2025-08-22T20:00Z", "", 1755892800, None, KeyError],
            "product_id": ["", 5, None, ["BTC-USD"], KeyError],
        }
        for k, vals in fields.items():
            for v in vals:
                bad.append(dumps(good(**{k: v})).encode())
        # duplicated keys
        g = dumps(good())
        for k, extra in (("price", '"price":"1",'), ("price", '"price":"%s",' % good()["price"]),
                         ("type", '"type":"match",'), ("trade_id", '"trade_id":5,'),
                         ("time", '"time":"2025-08-22T20:00:00Z",'), ("side", '"side":"buy",'),
                         ("product_id", '"product_id":"BTC-USD",'), ("size", '"size":"1",')):
            bad.append(g.replace('{"type"', "{" + extra + '"type"', 1).encode())
        bad.append(g.replace('"time":', '"type":"heartbeat","time":').encode())  # 2nd type
        bad.append(g.replace('{"type":"match"', '{"type":"heartbeat","type":"match"').encode())
        # not objects
        bad += [b"[" + g.encode() + b"]", b"[]", b"[1,2]", b'"match"', b"42", b"null", b"true"]
        for line in bad:
            self.put(pick(), line)
        # a huge line: a trade with a 2 MB unterminated string
        if self.huge_mb > 0:
            s = dumps(good())[:-1] + ',"pad":"' + "x" * int(self.huge_mb * 1024 * 1024)
            self.put(pick(), s.encode())
        # empty lines
        for _ in range(3):
            self.put(pick(), b"")

    def no_future_times(self):
        """A line never arrives before its own `time`: a replay exchange's
        clock (and pacing) would jump ahead with it, the whole stream would
        wait and then come in a burst."""
        for i, (arrival, order, line) in enumerate(self.events):
            try:
                o = json.loads(line)
            except ValueError:
                continue
            t = o.get("time") if isinstance(o, dict) else None
            m = TIME_RE.fullmatch(t) if isinstance(t, str) else None
            if not m:
                continue
            try:
                d = dt.datetime(*(int(x) for x in m.groups()[:6]), tzinfo=dt.timezone.utc)
            except ValueError:
                continue
            us = int((d - EPOCH).total_seconds()) * US + int((m.group(7) or "0")[:6].ljust(6, "0"))
            if us > arrival:
                self.events[i] = (us, order, line)

    def build(self):
        self.make_trades()
        self.emit_preamble()
        self.emit_trades()
        self.emit_ignored()
        self.emit_unusual_valid()
        self.emit_invalid()
        if self.margins:
            self.no_future_times()
        self.events.sort(key=lambda e: (e[0], e[1]))
        lines = [e[2] for e in self.events]
        truncated_tail = self.seed % 2 == 1
        return lines, truncated_tail


def generate(seed, minutes=5.0, sizes=(1, 7, 30, 60), huge_mb=2.0, jump=None, margins=False):
    """-> bytes of the whole capture (uncompressed)."""
    if jump is None:
        jump = seed % 3 == 2
    g = Gen(seed, minutes, sizes, huge_mb, jump, margins)
    lines, truncated_tail = g.build()
    data = b"\n".join(lines) + b"\n"
    if truncated_tail:
        # the recorder died mid-line: a partial trade and no final newline
        s = dumps(g.trade_obj(g.all_trades[-1])).encode()
        data += s[: len(s) // 2]
    return data


def write(data, out, gz):
    if gz:
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as f:
            f.write(data)
        data = buf.getvalue()
    if out == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(out, "wb") as f:
            f.write(data)


def main():
    ap = argparse.ArgumentParser(description="Adversarial Coinbase `matches` capture generator.")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="-", help="file, or - for stdout; .gz implies --gzip")
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--sizes", default="1,7,30,60",
                    help="window sizes (s) whose boundaries get trades")
    ap.add_argument("--huge-mb", type=float, default=2.0, help="size of the huge line, 0: none")
    ap.add_argument("--jump", choices=["auto", "yes", "no"], default="auto")
    ap.add_argument("--margins", action="store_true", help="arrivals far from the lateness boundary (see above)")
    a = ap.parse_args()
    jump = None if a.jump == "auto" else a.jump == "yes"
    data = generate(a.seed, a.minutes, [int(x) for x in a.sizes.split(",") if x], a.huge_mb, jump, a.margins)
    write(data, a.out, a.gzip or a.out.endswith(".gz"))


if __name__ == "__main__":
    main()
