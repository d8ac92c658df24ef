#!/usr/bin/env python3
"""Generate data/sample.jsonl: a synthetic but format-exact recording of the
Coinbase Exchange WebSocket feed (`matches` + `heartbeat` channels) for
BTC-USD and ETH-USD.

Deterministic: the same seed always gives byte-identical output.

    /usr/bin/python3 data/gen_sample.py                 # writes data/sample.jsonl
    /usr/bin/python3 data/gen_sample.py --minutes 12 --seed 20250822 --out data/sample.jsonl

Format (copied from the real capture coinbase-exchange-matches-2025-08-22.jsonl):
  {"type":"match","trade_id":N,"maker_order_id":UUID,"taker_order_id":UUID,
   "side":"buy|sell","size":"…","price":"…","product_id":"BTC-USD",
   "sequence":N,"time":"2025-08-22T20:11:30.012637Z"}
  - price: up to 2 decimals, size: up to 8 decimals, trailing zeros trimmed
    (the real feed sends "4825.3" and "1").
  - trade_id contiguous per product; sequence per product, increasing with gaps
    (the other channels consume the numbers in between).
  - time: 6 fractional digits and Z.
  - `side` is the maker's side: "sell" means the taker bought (price ticks up).
The recording starts with a `subscriptions` message and one `last_match` per
product, as the real feed does; a `heartbeat` per product arrives every second.
Only the standard library is used.
"""
import argparse
import datetime as dt
import json
import math
import os
import random
import uuid

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

PRODUCTS = {
    # product: (start price, trades/s base rate, first trade_id, first sequence,
    #           size log-mean, size log-sigma, price volatility per sqrt(s))
    "BTC-USD": (116827.85, 2.5, 865127782, 110614077300, math.log(0.002), 2.2, 6.0),
    "ETH-USD": (4825.29, 2.4, 689038652, 85742786194, math.log(0.05), 2.3, 0.45),
}


def fmt_time(us):
    s, frac = divmod(us, 1_000_000)
    t = EPOCH + dt.timedelta(seconds=s)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % frac


def fmt_dec(value, places):
    s = "%.*f" % (places, value)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def new_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


class Product:
    def __init__(self, name, rng):
        (price, rate, trade_id, seq, smu, ssig, vol) = PRODUCTS[name]
        self.name = name
        self.rng = rng
        self.price = price
        self.rate = rate
        self.trade_id = trade_id
        self.seq = seq
        self.smu = smu
        self.ssig = ssig
        self.vol = vol
        self.makers = [new_uuid(rng) for _ in range(40)]  # resting orders, reused
        self.last_t = 0

    def size(self):
        r = self.rng.random()
        if r < 0.06:  # round lots are common
            return self.rng.choice([0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0])
        if r < 0.14:  # dust
            return self.rng.randint(1, 5000) * 1e-8
        return max(1e-8, math.exp(self.rng.gauss(self.smu, self.ssig)))

    def next_seq(self):
        self.seq += self.rng.choice([1, 2, 2, 3, 5, 9, 14, 36, 120])
        return self.seq

    def maker(self):
        if self.rng.random() < 0.25:
            self.makers[self.rng.randrange(len(self.makers))] = new_uuid(self.rng)
        return self.makers[self.rng.randrange(len(self.makers))]

    def match(self, t_us, side, price, size, taker, typ="match"):
        m = {
            "type": typ,
            "trade_id": self.trade_id,
            "maker_order_id": self.maker(),
            "taker_order_id": taker,
            "side": side,
            "size": fmt_dec(size, 8),
            "price": fmt_dec(price, 2),
            "product_id": self.name,
            "sequence": self.next_seq(),
            "time": fmt_time(t_us),
        }
        self.trade_id += 1
        self.last_t = t_us
        return m


def generate(seed, minutes, start_us):
    rng = random.Random(seed)
    names = sorted(PRODUCTS)
    prods = {n: Product(n, rng) for n in names}
    end_us = start_us + minutes * 60 * 1_000_000
    events = []  # (time_us, order, message)
    order = 0

    # last_match: the last trade before the subscription, a few seconds earlier.
    lm = []
    for n in names:
        p = prods[n]
        p.trade_id -= 1
        t = start_us - rng.randint(200_000, 9_000_000)
        side = rng.choice(["buy", "sell"])
        lm.append(p.match(t, side, p.price, p.size(), new_uuid(rng), typ="last_match"))
    head = [{"type": "subscriptions",
             "channels": [{"name": "matches", "product_ids": names},
                          {"name": "heartbeat", "product_ids": names}]}] + lm

    for n in names:
        p = prods[n]
        t = start_us + rng.randint(20_000, 600_000)
        # regime: a slowly varying activity multiplier, with bursts and lulls
        activity = 1.0
        while True:
            if rng.random() < 0.02:
                activity = rng.choice([0.1, 0.3, 0.6, 1.0, 1.0, 1.5, 3.0, 6.0])
            gap = rng.expovariate(p.rate * activity)
            t += max(1, int(gap * 1_000_000))
            if t >= end_us:
                break
            # random walk, quantised to a cent
            dt_s = max(gap, 1e-3)
            p.price = max(1.0, p.price + rng.gauss(0, p.vol * math.sqrt(dt_s)))
            p.price = round(p.price, 2)
            side = "sell" if rng.random() < 0.5 else "buy"  # maker side
            taker = new_uuid(rng)
            fills = 1
            r = rng.random()
            if r < 0.18:
                fills = rng.randint(2, 4)
            elif r < 0.22:
                fills = rng.randint(5, 14)  # a sweep through the book
            price = p.price
            tt = t
            for i in range(fills):
                events.append((tt, order, p.match(tt, side, price, p.size(), taker)))
                order += 1
                if rng.random() < 0.35:
                    # the next fill of the same taker walks one or more ticks
                    step = 0.01 * rng.randint(1, 3 if n == "BTC-USD" else 2)
                    price = round(price + (step if side == "sell" else -step), 2)
                if rng.random() < 0.3:
                    tt += rng.randint(1, 400)  # same taker, matched a few µs later
            p.price = price
            t = tt
    # heartbeats once per second per product (a few ms jitter after the second)
    s = (start_us // 1_000_000) + 1
    while s * 1_000_000 < end_us:
        for n in names:
            ht = s * 1_000_000 + rng.randint(300, 9_000)
            events.append((ht, order, ("hb", n)))
            order += 1
        s += 1
    events.sort(key=lambda e: (e[0], e[1]))

    # heartbeats carry the last trade id seen so far: replay in time order
    last = {n: None for n in names}
    seqs = {n: None for n in names}
    for m in lm:
        last[m["product_id"]] = m["trade_id"]
        seqs[m["product_id"]] = m["sequence"]
    out = [dumps(m) for m in head]
    for t, _, m in events:
        if isinstance(m, tuple):
            n = m[1]
            seqs[n] += rng.randint(1, 300)
            hb = {"type": "heartbeat", "last_trade_id": last[n], "product_id": n,
                  "sequence": seqs[n], "time": fmt_time(t)}
            out.append(dumps(hb))
        else:
            n = m["product_id"]
            # keep sequence monotonic across heartbeats and matches
            if m["sequence"] <= seqs[n]:
                m["sequence"] = seqs[n] + rng.randint(1, 40)
            seqs[n] = m["sequence"]
            last[n] = m["trade_id"]
            out.append(dumps(m))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=20250822)
    ap.add_argument("--minutes", type=float, default=12)
    ap.add_argument("--start", default="2025-08-22T20:00:00Z")
    ap.add_argument("--out", default=os.path.join(here, "sample.jsonl"))
    a = ap.parse_args()
    start = dt.datetime.strptime(a.start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    start_us = int((start - EPOCH).total_seconds()) * 1_000_000
    lines = generate(a.seed, a.minutes, start_us)
    with open(a.out, "w", encoding="utf-8", newline="\n") as f:
        for l in lines:
            f.write(l + "\n")
    print("wrote %s: %d lines" % (a.out, len(lines)))


if __name__ == "__main__":
    main()
