#!/usr/bin/env python3
"""Checks and report of benches/soak.sh (not meant to be run by hand).

Usage:
  soak_check.py restore --before-export F --after-export F
                        --before-flows F.json --after-flows F.json
                        --ctl-tables 1,2 [--ctl-result F.json]
                        --ports a,b,... --table20 c1,c2,... --aging N
  soak_check.py report  --dir WORKDIR

`restore` compares the state rvsd restored after a kill -9 with the last
acknowledged one and prints one line per failed comparison (exit 1 if
any; nothing and exit 0 when all hold). The comparison, exactly:

1. `rvsctl export` after == before (taken when every rvsctl command had
   returned and none was running), parsed as TOML, with the flows of the
   controller's tables left out on both sides and the remaining flows
   compared as a multiset (the export's flow order is not part of the
   state).
2. `rvsctl dump-flows --format json` after == before, as the multiset of
   (table, priority, cookie, flow text), controller tables left out.
3. The script's own model: the bridge's ports (list in --ports), the
   cookies of the rvsctl-managed flows in table 20 (--table20) and
   `mac_aging_time` (--aging) are what the acknowledged commands made them.
4. The controller's tables (--ctl-tables) hold a prefix of the flow mods
   the controller sent that includes every one acknowledged by a
   BARRIER_REPLY. flowmod_load.py sends, for k = 0, 1, ...: ADD flow k
   (cookie k, table 1 + k % TABLES), then from k >= WINDOW the
   DELETE_STRICT of flow k - WINDOW. A prefix therefore leaves the cookies
   lo..hi-1 with hi in [adds_acked, adds_sent], lo in {hi - WINDOW - 1,
   hi - WINDOW} (clamped at 0) and lo >= deletes_acked, every flow in its
   table; empty tables pass when nothing was acknowledged or when the
   session had got through its load and was deleting its flows (its
   summary then has no "fatal"). Without a controller session at the kill
   (--ctl-result absent)
   the controller tables are empty (a session that ends normally deletes
   its flows; after a kill the script deletes them once checked).

`report` reads the files soak.sh wrote into WORKDIR and prints the
markdown summary; exit status 1 when a target is missed.

Python 3.11+ standard library only (tomllib).
"""

import argparse
import json
import os
import sys
import tomllib
from collections import Counter


def load_json(p):
    with open(p) as f:
        return json.load(f)


def split_flows(export, ctl_tables):
    """(export without flows, per bridge Counter of flows outside the
    controller tables)."""
    flows = {}
    for b in export.get("bridge", []):
        keep = []
        for f in b.pop("flow", []):
            text = f["flow"] if isinstance(f, dict) else f
            if table_of(text) not in ctl_tables:
                keep.append(json.dumps(f, sort_keys=True))
        flows[b["name"]] = Counter(keep)
    export.pop("format_version", None)
    export.pop("journal", None)
    return export, flows


def table_of(text):
    for part in text.replace(" ", ",").split(","):
        if part.startswith("table="):
            return int(part[6:])
    return 0


def restore(a):
    bad = []
    ctl_tables = {int(t) for t in a.ctl_tables.split(",") if t}
    with open(a.before_export, "rb") as f:
        eb = tomllib.load(f)
    with open(a.after_export, "rb") as f:
        ea = tomllib.load(f)
    eb, fb = split_flows(eb, ctl_tables)
    ea, fa = split_flows(ea, ctl_tables)
    if eb != ea:
        bad.append("export (without flows) differs: before %s after %s"
                   % (json.dumps(eb, sort_keys=True)[:600], json.dumps(ea, sort_keys=True)[:600]))
    if fb != fa:
        bad.append("export flows differ: missing %s, extra %s"
                   % (list((fb.get(k, Counter()) - fa.get(k, Counter())) for k in fb)[:3],
                      list((fa.get(k, Counter()) - fb.get(k, Counter())) for k in fa)[:3]))

    def flowset(p):
        fl = load_json(p)["flows"]
        return Counter((x["table"], x["priority"], x["cookie"], x["flow"])
                       for x in fl if x["table"] not in ctl_tables), fl

    db, _ = flowset(a.before_flows)
    da, all_after = flowset(a.after_flows)
    if db != da:
        bad.append("dump-flows differ: missing %s, extra %s"
                   % (list(db - da)[:3], list(da - db)[:3]))

    ports = sorted(p for p in a.ports.split(",") if p)
    have = sorted(p["name"] for b in ea.get("bridge", []) for p in b.get("port", []))
    if have != ports:
        bad.append("ports %s, expected %s" % (have, ports))
    t20 = sorted(int(c) for c in a.table20.split(",") if c)
    got20 = sorted(x["cookie"] for x in all_after if x["table"] == 20)
    if got20 != t20:
        bad.append("table 20 cookies %s, expected %s" % (got20[:10], t20[:10]))
    aging = [b.get("mac_aging_time", 300) for b in ea.get("bridge", [])]
    if aging != [a.aging]:
        bad.append("mac_aging_time %s, expected %d" % (aging, a.aging))

    ctl = [x for x in all_after if x["table"] in ctl_tables]
    if a.ctl_result:
        r = load_json(a.ctl_result)
        w, nt = r["window"], r["tables"]
        cookies = sorted(x["cookie"] for x in ctl)
        why = None
        if len(set(cookies)) != len(cookies):
            why = "duplicate cookies"
        elif any(x["table"] != 1 + x["cookie"] % nt for x in ctl):
            why = "a flow in the wrong table"
        elif cookies and cookies != list(range(cookies[0], cookies[-1] + 1)):
            why = "cookies not contiguous"
        else:
            lo, hi = (cookies[0], cookies[-1] + 1) if cookies else (None, None)
            if not cookies:
                # nothing acknowledged, or the session had reached its
                # final delete of all its flows (no "fatal" then)
                ok = r["adds_acked"] == 0 or "fatal" not in r
            else:
                ok = (r["adds_acked"] <= hi <= r["adds_sent"]
                      and lo in {max(0, hi - w - 1), max(0, hi - w)}
                      and lo >= r["deletes_acked"])
            if not ok:
                why = "cookies %s..%s (%d) not a prefix with adds acked/sent %d/%d, deletes acked %d" % (
                    lo, hi, len(cookies), r["adds_acked"], r["adds_sent"], r["deletes_acked"])
        if why:
            bad.append("controller tables: " + why)
    elif ctl:
        bad.append("controller tables hold %d flows, expected none" % len(ctl))
    for b in bad:
        print(b)
    return 1 if bad else 0


# ---- report ---------------------------------------------------------------------


def read_lines(p):
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def report(a):
    d = a.dir
    cfg = load_json(os.path.join(d, "config.json"))
    interval_ns = cfg["probe_ms"] * 1e6
    windows = []  # (t_kill_ns, t_back_ns)
    for l in read_lines(os.path.join(d, "windows.tsv")):
        k, b = l.split()[:2]
        windows.append((int(k), int(b)))

    def in_window(t):
        return any(k - interval_ns <= t <= b + interval_ns for k, b in windows)

    rows = []
    fail = []
    for p in cfg["pairs"]:
        i, kind = p["pair"], p["kind"]
        pj = os.path.join(d, "probe-%d.json" % i)
        probe = load_json(pj) if os.path.exists(pj) else None
        lost_in = lost_out = 0
        max_gap_out = 0.0
        max_gap_in = 0.0
        for l in read_lines(os.path.join(d, "loss-%d.jsonl" % i)):
            r = json.loads(l)
            if "gap_ms" in r:
                t0, t1 = r["rx_from_ns"], r["rx_to_ns"]
                overl = any(t0 <= b + interval_ns and t1 >= k - interval_ns for k, b in windows)
                if overl:
                    max_gap_in = max(max_gap_in, r["gap_ms"])
                else:
                    max_gap_out = max(max_gap_out, r["gap_ms"])
                continue
            n = r["lost"]
            ta, tb = r["t_after_ns"], r["t_before_ns"]
            if ta is None and tb is None:
                lost_out += n
                continue
            if ta is None:
                ta = tb - (n + 1) * interval_ns
            if tb is None:
                tb = ta + (n + 1) * interval_ns
            for j in range(1, n + 1):
                t = ta + j * (tb - ta) / (n + 1)
                if in_window(t):
                    lost_in += 1
                else:
                    lost_out += 1
        sent = probe["sent"] if probe else 0
        rows.append((i, kind, sent, lost_out, lost_in, max_gap_out, max_gap_in,
                     probe.get("tx_max_gap_ms") if probe else None))
        if kind == "stable" and (probe is None or lost_out != 0 or sent == 0):
            fail.append("pair %d (stable): %s" % (i, "no probe result" if probe is None
                                                   else "%d probes lost outside restart windows" % lost_out))

    checks = [l.split("\t") for l in read_lines(os.path.join(d, "checks.tsv"))]
    kinds = {}
    for c in checks:
        k = kinds.setdefault(c[0], [0, 0])
        k[0 if c[1] == "PASS" else 1] += 1
    rk = kinds.get("restore", [0, 0])
    if rk[1]:
        fail.append("%d of %d restore checks failed" % (rk[1], sum(rk)))
    for k, (p, f) in kinds.items():
        if k != "restore" and f:
            fail.append("%d of %d %s checks failed" % (f, p + f, k))

    # RSS: (t_s, incarnation, age_s, kb, quiet); compared: quiet samples
    allrss = [tuple(float(x) for x in l.split()) for l in read_lines(os.path.join(d, "rss.tsv"))]
    rss = [r for r in allrss if len(r) > 4 and r[4] == 1]
    incs = sorted({int(r[1]) for r in allrss})
    per_inc = []
    for n in incs:
        s = [r for r in rss if int(r[1]) == n]
        warm = [r for r in s if r[2] >= cfg["inc_warmup_s"]]
        if len(warm) >= 2:
            per_inc.append((n, s[0][0], s[-1][0], warm[0][3], warm[-1][3]))
    growth = None
    rss_start = rss_end = None
    how = ""
    if len(incs) > 1:
        ages = [max(r[2] for r in allrss if int(r[1]) == n) for n in incs[:-1]]
        age = min(ages)
        at_age = []
        for n in incs:
            s = [r for r in rss if int(r[1]) == n and r[2] <= age]
            first = [r for r in allrss if int(r[1]) == n]
            # incarnations that start after the warm-up, with a quiet
            # sample in the last quarter of that age
            if s and first[0][0] >= cfg["warmup_s"] - 1 and s[-1][2] >= 0.75 * age:
                at_age.append((n, s[-1][3], s[-1][2]))
        if len(at_age) >= 2:
            rss_start, rss_end = at_age[0][1], at_age[-1][1]
            how = "quiet samples at incarnation age <= %.0f s: incarnation %d (%.0f s) vs %d (%.0f s)" % (
                age, at_age[0][0], at_age[0][2], at_age[-1][0], at_age[-1][2])
    if rss_start is None and rss:
        warm = [r for r in rss if r[0] >= cfg["warmup_s"]] or rss
        rss_start, rss_end = warm[0][3], rss[-1][3]
        how = "quiet samples, t = %.0f s vs %.0f s" % (warm[0][0], rss[-1][0])
    if rss_start:
        growth = 100.0 * (rss_end - rss_start) / rss_start
    if growth is None:
        fail.append("no RSS samples")
    elif growth >= 5.0:
        fail.append("RSS grew %.1f %% (target < 5 %%)" % growth)

    sessions = [json.loads(l) for l in read_lines(os.path.join(d, "sessions.jsonl"))]
    acked = sum(s.get("adds_acked", 0) + s.get("deletes_acked", 0) for s in sessions)
    el = sum(s.get("elapsed_s", 0) for s in sessions)
    errs = sum(s.get("errors", 0) for s in sessions)
    p99 = max((s.get("barrier_rtt_ms", {}).get("p99") or 0 for s in sessions), default=0)
    ctl_errs = [s for s in sessions if s.get("errors")]
    if ctl_errs:
        fail.append("controller sessions got %d OFPT_ERRORs" % errs)

    out = []
    out.append("| | |")
    out.append("|---|---|")
    out.append("| duration | %d s (%d pairs: %d stable, %d churn) |" % (
        cfg["duration_s"], len(cfg["pairs"]), sum(p["kind"] == "stable" for p in cfg["pairs"]),
        sum(p["kind"] != "stable" for p in cfg["pairs"])))
    idle = read_lines(os.path.join(d, "idle.txt"))
    if idle:
        out.append("| machine idle during the run | %s %% (other load makes gaps, not loss) |" % idle[0])
    wl = [(b - k) / 1e9 for k, b in windows]
    out.append("| kill -9 + restart | %d (restart window min / max %s s) |" % (
        len(windows), "%.1f / %.1f" % (min(wl), max(wl)) if wl else "–"))
    out.append("| restore checks | %d passed, %d failed |" % (rk[0], rk[1]))
    for k, (p, f) in sorted(kinds.items()):
        if k != "restore":
            out.append("| %s checks | %d passed, %d failed |" % (k, p, f))
    out.append("| controller sessions | %d (connect, flow mods, disconnect); %d flow mods acknowledged, %.0f/s while connected; barrier p99 max %.1f ms; %d errors |" % (
        len(sessions), acked, acked / el if el else 0, p99, errs))
    out.append("| RSS start / end / growth | %s / %s KiB / %s (%s) |" % (
        "%.0f" % rss_start if rss_start else "–", "%.0f" % rss_end if rss_end else "–",
        "%+.1f %%" % growth if growth is not None else "–", how))
    if per_inc:
        g = [100.0 * (x[4] - x[3]) / x[3] for x in per_inc]
        out.append("| RSS growth within an incarnation (quiet samples) | %+.1f %% to %+.1f %% |" % (min(g), max(g)))
    held = [r for r in rss if len(r) > 6 and r[5] >= 0]
    if len(held) >= 2:
        h0, h1 = held[0], held[-1]
        out.append("| held by rvsd / allocator committed, first vs last quiet sample | %.0f → %.0f KiB / %.0f → %.0f KiB (RSS %.0f → %.0f) |" % (
            h0[5], h1[5], h0[6], h1[6], h0[3], h1[3]))
    if allrss:
        out.append("| RSS min / max, all samples | %.0f / %.0f KiB |" % (
            min(r[3] for r in allrss), max(r[3] for r in allrss)))
    out.append("")
    out.append("| pair | kind | probes sent | lost outside restart windows | lost inside | max gap outside (ms) | max gap inside (ms) | sender's own max gap (ms) |")
    out.append("|---|---|---|---|---|---|---|---|")
    thr = cfg["gap_ms"]
    for i, kind, sent, lo, li, go, gi, txg in rows:
        out.append("| %d | %s | %d | %d | %d | %s | %s | %s |" % (
            i, kind, sent, lo, li, "%.0f" % go if go else "< %d" % thr, "%.0f" % gi if gi else "–",
            "%.0f" % txg if txg is not None else "–"))
    out.append("")
    out.append("")
    out.append("| incarnation | quiet samples t (s) | RSS first after warm-up / last (KiB) | growth |")
    out.append("|---|---|---|---|")
    for n, t0, t1, r0, r1 in per_inc:
        out.append("| %d | %.0f – %.0f | %.0f / %.0f | %+.1f %% |" % (n, t0, t1, r0, r1, 100.0 * (r1 - r0) / r0))
    out.append("")
    bad_checks = [c for c in checks if c[1] != "PASS"]
    for c in bad_checks[:20]:
        out.append("- FAILED %s check at t = %s s: %s" % (c[0], c[2], c[3] if len(c) > 3 else ""))
    out.append("**%s**%s" % ("PASS" if not fail else "FAIL",
                             "" if not fail else ": " + "; ".join(fail)))
    print("\n".join(out))
    return 1 if fail else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("restore")
    for o in ("--before-export", "--after-export", "--before-flows", "--after-flows"):
        r.add_argument(o, required=True)
    r.add_argument("--ctl-tables", required=True)
    r.add_argument("--ctl-result")
    r.add_argument("--ports", required=True)
    r.add_argument("--table20", default="")
    r.add_argument("--aging", type=int, required=True)
    p = sub.add_parser("report")
    p.add_argument("--dir", required=True)
    a = ap.parse_args()
    return restore(a) if a.cmd == "restore" else report(a)


if __name__ == "__main__":
    sys.exit(main())
