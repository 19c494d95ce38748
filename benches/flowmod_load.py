#!/usr/bin/env python3
"""Paced OpenFlow 1.3 FLOW_MOD load: a controller that adds and deletes flows.

Usage:
  flowmod_load.py [--host 127.0.0.1] [--port 6653] [--rate 20000]
                  [--window 10000] [--tables 4] [--duration 30]
                  [--tick-ms 10] [--max-inflight 4] [--out FILE.json]

Connects to a switch listening for OpenFlow (rvs `set-controller BR
ptcp:PORT`, OVS `set-controller BR ptcp:PORT:127.0.0.1`), says HELLO
(version 1.3) and then, every tick, sends the FLOW_MODs that are due:
flow k (k = 0, 1, 2 ...) is an ADD of
    table=1 + k % TABLES, priority=100, ip, nw_dst=10.192.0.0 + k (a /32),
    cookie=k, actions=output:2
and, once WINDOW flows are in, each ADD comes with the DELETE_STRICT of
flow k - WINDOW, so the tables hold at most WINDOW flows and the switch
gets RATE adds and RATE deletes per second. Table 0 is never touched: the
flows match no traffic the bench sends, and ideally cost forwarding nothing.

Each tick's batch ends with a BARRIER_REQUEST; at most MAX_INFLIGHT
barriers are outstanding, so a switch that cannot keep up slows the
generator down (bounded queue, no unbounded backlog) instead of being
buried. A batch never carries more than one tick's worth of flows, so a
generator that fell behind catches up in ticks, not in one burst. The
achieved rate counts only flows whose barrier was answered.

At the end all flows the run added are deleted (DELETE, tables 1..TABLES,
empty match), and a JSON summary is printed (and written to --out):
adds/deletes sent and acknowledged, achieved rates, barrier round trips
(p50/p99/max ms), OFPT_ERRORs (count, first few), the generator's CPU time.
Exit status 0, also when the switch was too slow for the rate (the
summary says how fast it was) or stopped answering barriers for
--stall-timeout seconds (then "fatal" says so); 1 when the connection
could not be made or was lost, or the switch answered with OFPT_ERRORs.

Python 3 standard library only.
"""

import argparse
import json
import math
import resource
import socket
import struct
import sys
import threading
import time

OFP_VERSION = 4
T_HELLO, T_ERROR, T_ECHO_REQUEST, T_ECHO_REPLY = 0, 1, 2, 3
T_FLOW_MOD, T_BARRIER_REQUEST, T_BARRIER_REPLY = 14, 20, 21
FC_ADD, FC_DELETE, FC_DELETE_STRICT = 0, 3, 4
OFPP_ANY = 0xFFFFFFFF
OFPG_ANY = 0xFFFFFFFF
NO_BUFFER = 0xFFFFFFFF
OXM_ETH_TYPE = (0x8000 << 16) | (5 << 9) | 2
OXM_IPV4_DST = (0x8000 << 16) | (12 << 9) | 4
BASE_ADDR = (10 << 24) | (192 << 16)  # 10.192.0.0, never used by traffic

HDR = struct.Struct("!BBHI")
# header, flow_mod body, match (OXM: eth_type=0x0800, ipv4_dst, 6 pad bytes)
FM_DEL = struct.Struct("!BBHI QQBBHHHIIIH2x HHIHII6x")
# ... then an APPLY_ACTIONS instruction with one OUTPUT action
FM_ADD = struct.Struct("!BBHI QQBBHHHIIIH2x HHIHII6x HH4x HHIH6x")
# header, flow_mod body, empty match
FM_DEL_ALL = struct.Struct("!BBHI QQBBHHHIIIH2x HH4x")
assert FM_ADD.size == 96 and FM_DEL.size == 72 and FM_DEL_ALL.size == 56


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


class Stalled(Exception):
    """No barrier reply in time; closed says why the connection ended, if it did."""

    def __init__(self, closed):
        super().__init__(closed)
        self.closed = closed


class Conn:
    """One OpenFlow connection: a reader thread answers echoes and
    collects barrier replies and errors."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self.wlock = threading.Lock()
        self.cv = threading.Condition()
        self.acked = {}  # barrier xid -> reply time
        self.errors = []
        self.nerrors = 0
        self.peer_version = None
        self.closed = None
        self.xid = 0
        self.t = threading.Thread(target=self._reader, daemon=True)

    def next_xid(self):
        self.xid = (self.xid + 1) & 0xFFFFFFFF or 1
        return self.xid

    def send(self, data):
        with self.wlock:
            self.sock.sendall(data)

    def hello(self, timeout):
        self.send(HDR.pack(OFP_VERSION, T_HELLO, 8, self.next_xid()))
        self.t.start()
        with self.cv:
            if not self.cv.wait_for(lambda: self.peer_version is not None or self.closed, timeout):
                raise RuntimeError("no HELLO from the switch within %ss" % timeout)
        if self.closed:
            raise RuntimeError("connection closed during HELLO: %s" % self.closed)
        if self.peer_version < OFP_VERSION:
            raise RuntimeError("switch speaks OpenFlow version %d, not 1.3 (4)" % self.peer_version)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            b = self.sock.recv(n - len(buf))
            if not b:
                raise EOFError("connection closed by the switch")
            buf += b
        return bytes(buf)

    def _reader(self):
        try:
            while True:
                h = self._recv_exact(8)
                ver, typ, length, xid = HDR.unpack(h)
                body = self._recv_exact(length - 8) if length > 8 else b""
                if typ == T_HELLO:
                    with self.cv:
                        self.peer_version = ver
                        self.cv.notify_all()
                elif typ == T_ECHO_REQUEST:
                    self.send(HDR.pack(ver, T_ECHO_REPLY, 8 + len(body), xid) + body)
                elif typ == T_BARRIER_REPLY:
                    with self.cv:
                        self.acked[xid] = time.monotonic()
                        self.cv.notify_all()
                elif typ == T_ERROR:
                    et, ec = struct.unpack("!HH", body[:4]) if len(body) >= 4 else (0, 0)
                    with self.cv:
                        self.nerrors += 1
                        if len(self.errors) < 5:
                            self.errors.append({"xid": xid, "type": et, "code": ec})
                        self.cv.notify_all()
                # anything else (PORT_STATUS, PACKET_IN ...) is ignored
        except (OSError, EOFError, struct.error) as e:
            with self.cv:
                self.closed = str(e) or type(e).__name__
                self.cv.notify_all()


def add_msg(xid, k, tables, prio, out_port):
    return FM_ADD.pack(
        OFP_VERSION, T_FLOW_MOD, FM_ADD.size, xid,
        k, 0, 1 + k % tables, FC_ADD, 0, 0, prio, NO_BUFFER, OFPP_ANY, OFPG_ANY, 0,
        1, 18, OXM_ETH_TYPE, 0x0800, OXM_IPV4_DST, (BASE_ADDR + (k & 0x3FFFFF)) & 0xFFFFFFFF,
        4, 24, 0, 16, out_port, 0xFFFF)


def del_msg(xid, k, tables, prio):
    return FM_DEL.pack(
        OFP_VERSION, T_FLOW_MOD, FM_DEL.size, xid,
        0, 0, 1 + k % tables, FC_DELETE_STRICT, 0, 0, prio, NO_BUFFER, OFPP_ANY, OFPG_ANY, 0,
        1, 18, OXM_ETH_TYPE, 0x0800, OXM_IPV4_DST, (BASE_ADDR + (k & 0x3FFFFF)) & 0xFFFFFFFF)


def del_table_msg(xid, table):
    return FM_DEL_ALL.pack(
        OFP_VERSION, T_FLOW_MOD, FM_DEL_ALL.size, xid,
        0, 0, table, FC_DELETE, 0, 0, 0, NO_BUFFER, OFPP_ANY, OFPG_ANY, 0, 1, 4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6653)
    ap.add_argument("--rate", type=float, default=20000, help="flow adds per second (and as many deletes)")
    ap.add_argument("--window", type=int, default=10000, help="flows alive at once")
    ap.add_argument("--tables", type=int, default=4, help="use tables 1..TABLES")
    ap.add_argument("--duration", type=float, default=30, help="seconds of load")
    ap.add_argument("--tick-ms", type=float, default=10, help="one batch + barrier per tick")
    ap.add_argument("--max-inflight", type=int, default=4, help="outstanding barriers at most")
    ap.add_argument("--priority", type=int, default=100)
    ap.add_argument("--out-port", type=int, default=2)
    ap.add_argument("--connect-timeout", type=float, default=10)
    ap.add_argument("--stall-timeout", type=float, default=60,
                    help="give up when no barrier is answered for this long")
    ap.add_argument("--out", help="also write the JSON summary here")
    a = ap.parse_args()
    if not (1 <= a.tables <= 253 and a.window >= 1 and a.rate > 0 and a.duration > 0
            and a.tick_ms > 0 and a.max_inflight >= 1):
        ap.error("bad arguments")

    res = {"rate_target": a.rate, "window": a.window, "tables": a.tables,
           "duration_target_s": a.duration, "tick_ms": a.tick_ms}
    ok = True
    try:
        c = Conn(a.host, a.port, a.connect_timeout)
        c.hello(a.connect_timeout)
    except (OSError, RuntimeError) as e:
        res["fatal"] = "connect to %s:%d: %s" % (a.host, a.port, e)
        finish(res, a.out)
        return 1

    tick = a.tick_ms / 1000.0
    max_batch = max(1, int(math.ceil(a.rate * tick)))
    inflight = []  # (xid, send time, adds covered, deletes covered)
    rtts = []
    adds = dels = 0  # sent
    adds_acked = dels_acked = 0
    t_acked = None
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)

    def reap(block_until_len, deadline):
        """Take answered barriers off the front; wait while more than
        block_until_len are outstanding. False on stall or close."""
        nonlocal adds_acked, dels_acked, t_acked
        with c.cv:
            while True:
                while inflight and inflight[0][0] in c.acked:
                    xid, ts, na, nd = inflight.pop(0)
                    t = c.acked.pop(xid)
                    rtts.append(t - ts)
                    adds_acked, dels_acked, t_acked = na, nd, t
                if len(inflight) <= block_until_len:
                    return True
                if c.closed:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                c.cv.wait(min(left, 0.5))

    start = time.monotonic()
    next_tick = start
    try:
        while True:
            now = time.monotonic()
            if now - start >= a.duration:
                break
            if not reap(a.max_inflight - 1, time.monotonic() + a.stall_timeout):
                raise Stalled(c.closed)
            due = int(a.rate * (time.monotonic() - start)) - adds
            n = min(due, max_batch)
            if n > 0:
                parts = []
                for k in range(adds, adds + n):
                    parts.append(add_msg(c.next_xid(), k, a.tables, a.priority, a.out_port))
                    if k >= a.window:
                        parts.append(del_msg(c.next_xid(), k - a.window, a.tables, a.priority))
                        dels += 1
                adds += n
                bx = c.next_xid()
                parts.append(HDR.pack(OFP_VERSION, T_BARRIER_REQUEST, 8, bx))
                inflight.append((bx, time.monotonic(), adds, dels))
                c.send(b"".join(parts))
            next_tick += tick
            d = next_tick - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                next_tick = time.monotonic()  # behind: no catch-up burst
        if not reap(0, time.monotonic() + a.stall_timeout):
            raise Stalled(c.closed)
    except Stalled as e:
        if e.closed:
            res["fatal"] = "connection lost: %s" % e.closed
            ok = False
        else:
            res["fatal"] = "switch answered no barrier for %ss" % a.stall_timeout
    except OSError as e:
        res["fatal"] = str(e)
        ok = False
    elapsed_sent = time.monotonic() - start
    elapsed_acked = (t_acked - start) if t_acked else elapsed_sent
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)

    # Leave the tables as found (bounded by the same stall timeout; after a
    # stall this waits behind whatever the switch still has queued).
    if ok:
        try:
            parts = [del_table_msg(c.next_xid(), t) for t in range(1, a.tables + 1)]
            bx = c.next_xid()
            parts.append(HDR.pack(OFP_VERSION, T_BARRIER_REQUEST, 8, bx))
            c.send(b"".join(parts))
            with c.cv:
                if not c.cv.wait_for(lambda: bx in c.acked or c.closed, a.stall_timeout):
                    res["cleanup"] = "no barrier reply to the final deletes"
        except OSError as e:
            res["cleanup"] = str(e)

    rtts.sort()
    res.update({
        "adds_sent": adds, "deletes_sent": dels,
        "adds_acked": adds_acked, "deletes_acked": dels_acked,
        "elapsed_s": round(elapsed_acked, 3),
        "elapsed_sending_s": round(elapsed_sent, 3),
        "add_rate": round(adds_acked / elapsed_acked, 1) if elapsed_acked > 0 else 0,
        "delete_rate": round(dels_acked / elapsed_acked, 1) if elapsed_acked > 0 else 0,
        "flow_mods_per_s": round((adds_acked + dels_acked) / elapsed_acked, 1) if elapsed_acked > 0 else 0,
        "barriers": len(rtts),
        "barrier_rtt_ms": {k: (round(percentile(rtts, p) * 1000, 2) if rtts else None)
                           for k, p in (("p50", 50), ("p99", 99), ("max", 100))},
        "errors": c.nerrors, "first_errors": c.errors,
        "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 3),
    })
    if c.nerrors:
        ok = False
    try:
        c.sock.close()
    except OSError:
        pass
    finish(res, a.out)
    return 0 if ok else 1


def finish(res, out):
    text = json.dumps(res, sort_keys=True)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
