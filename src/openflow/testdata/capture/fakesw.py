#!/usr/bin/env python3
"""Fake OpenFlow switch: logs every message ovs-ofctl sends as hex.
Usage: fakesw.py PORT VERSION(1|4) LOGFILE"""
import socket, struct, sys
port, ver, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(5)
out = open(log, "a")
def prop(t, data):
    l = 4 + len(data)
    return (struct.pack("!HH", t, l) + data + b"\0" * ((l + 7) // 8 * 8 - l))
def tf_entry(tid, ntab):
    insts = b"".join(struct.pack("!HH", i, 4) for i in [1, 3, 4, 5])
    acts = b"".join(struct.pack("!HH", a, 4) for a in [0, 17, 18, 24, 25])
    oxms = b"".join(struct.pack("!I", 0x80000000 | f << 9 | w) for f, w in [(0,4),(3,6),(4,6),(5,2),(6,2),(11,4),(12,4)])
    nxt = bytes(range(tid + 1, ntab))
    props = b""
    for t, d in [(0, insts), (2, nxt), (4, acts), (6, acts), (8, oxms), (10, oxms), (12, oxms), (14, oxms)]:
        props += prop(t, d) + prop(t + 1, d) if t < 8 or t >= 12 else prop(t, d)
    body = struct.pack("!B5x32sQQII", tid, b"table%d" % tid, 0, 0, 0, 1000000) + props
    return struct.pack("!H", 2 + len(body)) + body
def tf_replies(x):
    N = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    out = []
    for i in range(N):
        flags = 1 if i + 1 < N else 0
        body = struct.pack("!HH4x", 12, flags) + tf_entry(i, N)
        out.append(struct.pack("!BBHI", 4, 19, 8 + len(body), x) + body)
    return out
while True:
    c, _ = s.accept()
    if ver == 4:
        c.sendall(bytes.fromhex("04000010000000010001000800000012"))
    else:
        c.sendall(bytes.fromhex("0100000800000001"))
    buf = b""
    while True:
        d = c.recv(65536)
        if not d: break
        buf += d
        while len(buf) >= 8:
            v, t, l, x = struct.unpack("!BBHI", buf[:8])
            if len(buf) < l: break
            m, buf = buf[:l], buf[l:]
            out.write(m.hex() + "\n"); out.flush()
            hdr = lambda tt, body: struct.pack("!BBHI", ver, tt, 8 + len(body), x) + body
            if t == 2:  # echo
                c.sendall(hdr(3, m[8:]))
            elif (ver == 4 and t == 20) or (ver == 1 and t == 18):
                c.sendall(hdr(t + 1, b""))
            elif t == 4 or (ver == 1 and t == 16 and m[8:10] == b"\xff\xff") or (ver == 4 and t == 18 and m[8:10] == b"\xff\xff"):
                # vendor/experimenter: BAD_REQUEST / BAD_VENDOR(3)
                c.sendall(hdr(1, struct.pack("!HH", 1, 3) + m[:64]))
            elif ver == 4 and t == 18 and m[8:10] == b"\x00\x0c":
                for r in tf_replies(x):
                    c.sendall(r)
            elif ver == 4 and t == 18:
                c.sendall(hdr(19, m[8:12] + b"\0\0\0\0"))
            elif ver == 1 and t == 16:
                c.sendall(hdr(17, m[8:10] + b"\0\0"))
            elif t == 5:  # features request
                body = struct.pack("!QIBB2xII", 1, 0, 254, 0, 7, 0) if ver == 4 else struct.pack("!QIB3xII", 1, 0, 254, 7, 0x7ff)
                c.sendall(hdr(6, body))
    c.close()
