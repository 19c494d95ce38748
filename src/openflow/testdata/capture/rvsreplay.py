#!/usr/bin/env python3
"""Fake switch answering with the bytes rvs's codec encoded (fixture file).
Usage: rvsreplay.py PORT FIXTURE LOG"""
import socket, struct, sys
port, fix, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
msgs = {}; cur = None
for line in open(fix):
    line = line.rstrip("\n")
    if line.startswith("## "): cur = line[3:]; msgs[cur] = []
    elif line and not line.startswith("#") and cur: msgs[cur].append(bytes.fromhex(line))
def get(name, xid):
    return [m[:4] + struct.pack("!I", xid) + m[8:] for m in msgs[name]]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(5)
out = open(log, "a")
import threading
def serve(c):
    c.sendall(msgs["hello v4"][0])
    ver = None; buf = b""
    while True:
        d = c.recv(65536)
        if not d: break
        buf += d
        while len(buf) >= 8:
            v, t, l, x = struct.unpack("!BBHI", buf[:8])
            if len(buf) < l: break
            m, buf = buf[:l], buf[l:]
            out.write(m.hex() + "\n"); out.flush()
            if t == 0: ver = 4 if v >= 4 else 1; continue
            sfx = " v%d" % ver
            mp = struct.unpack("!H", m[8:10])[0] if len(m) >= 10 else None
            rep = []
            if t == 2: rep = [struct.pack("!BBHI", ver, 3, l, x) + m[8:]]
            elif t == 5: rep = get("features_reply" + sfx, x)
            elif t == 7: rep = get("get_config_reply" + sfx, x)
            elif t == 4: rep = [struct.pack("!BBHIHH", ver, 1, 12 + min(64, l), x, 1, 3) + m[:64]]
            elif (ver == 4 and t == 20) or (ver == 1 and t == 18): rep = [struct.pack("!BBHI", ver, t + 1, 8, x)]
            elif (ver == 4 and t == 18) or (ver == 1 and t == 16):
                name = {0: "desc_reply", 1: "flow_stats_reply", 2: "aggregate_reply", 3: "table_stats_reply",
                        4: "port_stats_reply", 13: "port_desc_reply", 12: "table_features_reply_part"}.get(mp)
                if name == "table_features_reply_part":
                    rep = get("table_features_reply_part0 v4", x) + get("table_features_reply_part1 v4", x) + get("table_features_reply_part2 v4", x)
                elif name: rep = get(name + sfx, x)
                else: rep = [struct.pack("!BBHIHH", ver, 1, 12 + min(64, l), x, 1, 2) + m[:64]]
            for r in rep: c.sendall(r)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
