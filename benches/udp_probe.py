#!/usr/bin/env python3
"""Forwarding-stall probe: one small UDP datagram every INTERVAL, one way.

Usage:
  udp_probe.py recv --bind IP [--port 9079] --duration S [--out FILE.json]
                    [--loss-out FILE.jsonl [--gap-ms 20]]
  udp_probe.py send --dst IP [--port 9079] --duration S [--interval-us 1000]

The sender stamps each datagram with a sequence number and its send time
(CLOCK_REALTIME, ns) and paces itself on CLOCK_MONOTONIC; when it falls
behind it skips ahead rather than bursting, and it reports its own largest
send gaps so sender hiccups can be told from switch stalls. It ends with a
few END datagrams that carry how many it sent.

The receiver takes the kernel's receive timestamp of each datagram
(SO_TIMESTAMPNS: when the frame entered the receiving namespace's stack,
i.e. when the switch wrote it), so a busy receiver does not distort the
numbers. Both ends run on one host (two network namespaces, one clock), so
receive time - send time is the one-way latency through the switch. It
prints a JSON summary (and writes it to --out): sent, received, lost,
reordered, one-way latency p50/p99/p99.9/max (ms), probes later than 10 ms
and stall episodes (runs of consecutive such probes), inter-arrival gap
p50/p99/max (ms), how many gaps exceeded 10 / 50 / 100 ms, and the sender's
own gaps > 10 ms (a gap the sender made is not the switch's stall).
With --loss-out it also writes one JSON line per run of lost probes (a
jump in the sequence numbers, or probes missing at the end): how many,
and the send times (CLOCK_REALTIME ns) of the probes received just before
and just after the run, so a caller can tell losses inside a known outage
window from the others (benches/soak.sh does).

Python 3 standard library only.
"""

import argparse
import json
import socket
import struct
import sys
import time

MAGIC = b"FMBP"
END = b"FMBE"
PKT = struct.Struct("!4sQQ")          # magic, seq, tx realtime ns
ENDPKT = struct.Struct("!4sQQd")      # magic, sent, tx gaps > 10 ms, max tx gap ms
TS = struct.Struct("qq")              # struct timespec
# Not exported by every Python build; 35 on Linux (asm-generic and x86).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def pct(v, p):
    if not v:
        return None
    return v[min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))]


def send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dst = (a.dst, a.port)
    interval = a.interval_us / 1e6
    n = int(a.duration / interval)
    start = time.monotonic()
    nxt = start
    last = None
    max_gap = 0.0
    big_gaps = 0
    errors = 0
    seq = 0
    while seq < n:
        now = time.monotonic()
        if now < nxt:
            time.sleep(nxt - now)
            now = time.monotonic()
        try:
            s.sendto(PKT.pack(MAGIC, seq, time.time_ns()), dst)
        except OSError:
            errors += 1
        if last is not None:
            g = now - last
            max_gap = max(max_gap, g)
            if g > 0.010:
                big_gaps += 1
        last = now
        seq += 1
        nxt += interval
        if nxt < now - interval:  # behind by more than one slot: skip ahead
            nxt = now
    for _ in range(5):
        s.sendto(ENDPKT.pack(END, seq, big_gaps, max_gap * 1000), dst)
        time.sleep(0.02)
    print(json.dumps({"sent": seq, "send_errors": errors, "tx_gaps_over_10ms": big_gaps,
                      "tx_max_gap_ms": round(max_gap * 1000, 3)}))
    return 0


def recv(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((a.bind, a.port))
    deadline = time.monotonic() + a.duration
    seqs = []
    lat = []   # ns
    rx = []    # ns
    sender = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(min(left, 0.5))
        try:
            data, anc, _flags, _addr = s.recvmsg(64, socket.CMSG_SPACE(TS.size))
        except socket.timeout:
            continue
        t = None
        for lvl, typ, d in anc:
            if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                sec, nsec = TS.unpack(d[:TS.size])
                t = sec * 1_000_000_000 + nsec
        if t is None:
            t = time.time_ns()
        if len(data) == PKT.size and data[:4] == MAGIC:
            _, seq, tx = PKT.unpack(data)
            seqs.append(seq)
            rx.append(t)
            lat.append(t - tx)
        elif len(data) == ENDPKT.size and data[:4] == END:
            _, sent, big, maxg = ENDPKT.unpack(data)
            sender = {"sent": sent, "tx_gaps_over_10ms": big, "tx_max_gap_ms": round(maxg, 3)}
            break
    sent = sender["sent"] if sender else (max(seqs) + 1 if seqs else 0)
    uniq = len(set(seqs))
    reordered = sum(1 for i in range(1, len(seqs)) if seqs[i] < seqs[i - 1])
    gaps = sorted((rx[i] - rx[i - 1]) / 1e6 for i in range(1, len(rx)))
    # Stall episodes: runs of consecutive probes delayed > 10 ms (lost ones
    # in between do not end a run). Immune to the sender's own hiccups,
    # since each probe carries its send time.
    stalls = 0
    in_stall = False
    for x in lat:
        if x > 10_000_000:
            if not in_stall:
                stalls += 1
            in_stall = True
        else:
            in_stall = False
    lat_ms = sorted(x / 1e6 for x in lat)
    r = lambda x: None if x is None else round(x, 3)
    res = {
        "sent": sent, "received": len(seqs), "lost": max(0, sent - uniq),
        "reordered": reordered, "sender_end_seen": sender is not None,
        "latency_ms": {"p50": r(pct(lat_ms, 50)), "p99": r(pct(lat_ms, 99)),
                       "p999": r(pct(lat_ms, 99.9)), "max": r(lat_ms[-1] if lat_ms else None)},
        "gap_ms": {"p50": r(pct(gaps, 50)), "p99": r(pct(gaps, 99)),
                   "max": r(gaps[-1] if gaps else None)},
        "late_over_10ms": sum(1 for x in lat_ms if x > 10),
        "stalls_over_10ms": stalls,
        "gaps_over_10ms": sum(1 for g in gaps if g > 10),
        "gaps_over_50ms": sum(1 for g in gaps if g > 50),
        "gaps_over_100ms": sum(1 for g in gaps if g > 100),
        "tx_gaps_over_10ms": sender["tx_gaps_over_10ms"] if sender else None,
        "tx_max_gap_ms": sender["tx_max_gap_ms"] if sender else None,
    }
    if a.loss_out:
        write_loss_runs(a.loss_out, seqs, lat, rx, sent, a.gap_ms)
    text = json.dumps(res, sort_keys=True)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0 if seqs else 1


def write_loss_runs(path, seqs, lat, rx, sent, gap_ms):
    """Runs of lost probes, in sequence order: {"lost", "after_seq",
    "before_seq", "t_after_ns", "t_before_ns"} (send times of the received
    neighbours; None where the run is at the start or the end); then the
    inter-arrival gaps longer than gap_ms: {"gap_ms", "rx_from_ns",
    "rx_to_ns"} (kernel receive times)."""
    tx = {}
    for s, l, t in zip(seqs, lat, rx):
        tx.setdefault(s, t - l)
    got = sorted(tx)
    with open(path, "w") as f:
        prev = None
        for s in got + [None]:
            lo = -1 if prev is None else prev
            hi = sent if s is None else s
            if hi - lo > 1:
                f.write(json.dumps({
                    "lost": hi - lo - 1, "after_seq": None if prev is None else prev,
                    "before_seq": s, "t_after_ns": None if prev is None else tx[prev],
                    "t_before_ns": None if s is None else tx[s]}) + "\n")
            prev = s
        for i in range(1, len(rx)):
            g = (rx[i] - rx[i - 1]) / 1e6
            if g > gap_ms:
                f.write(json.dumps({"gap_ms": round(g, 3), "rx_from_ns": rx[i - 1],
                                    "rx_to_ns": rx[i]}) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--bind", required=True)
    r.add_argument("--port", type=int, default=9079)
    r.add_argument("--duration", type=float, required=True, help="give up after S seconds")
    r.add_argument("--out")
    r.add_argument("--loss-out", help="also write runs of lost probes here (JSON lines)")
    r.add_argument("--gap-ms", type=float, default=20,
                   help="with --loss-out: also write inter-arrival gaps longer than this")
    s = sub.add_parser("send")
    s.add_argument("--dst", required=True)
    s.add_argument("--port", type=int, default=9079)
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--interval-us", type=float, default=1000)
    a = ap.parse_args()
    if a.cmd == "send" and not (a.interval_us >= 10 and 0 < a.duration <= 3600):
        ap.error("send: --interval-us >= 10, 0 < --duration <= 3600")
    return send(a) if a.cmd == "send" else recv(a)


if __name__ == "__main__":
    sys.exit(main())
