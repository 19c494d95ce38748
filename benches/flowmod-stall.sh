#!/usr/bin/env bash
# Does flow-table churn disturb forwarding? TCP throughput and forwarding
# stalls between two namespaces through the switch while a controller adds
# and deletes flows in tables other than table 0 (which the traffic uses).
#
# Usage (root):
#   benches/flowmod-stall.sh [-s SWITCHES] [-d SECS] [-R RATE] [-W WINDOW]
#                            [-N TABLES] [-b TICK_MS] [-P PHASES] [-r REPS]
#                            [-w WORKERS] [-i PROBE_US] [-o] [-k]
#     -s SWITCHES  comma list of rvs, ovs (OVS netdev), ovs-tso (OVS netdev
#                  with userspace-tso-enable, the closer match for rvs's
#                  offloading TAPs); default rvs
#     -d SECS      length of each phase (default 30)
#     -R RATE      flow adds per second, each flow deleted again WINDOW adds
#                  later: RATE adds + RATE deletes per second (default 20000)
#     -W WINDOW    flows alive at once (default 10000)
#     -N TABLES    spread the flows over tables 1..TABLES (default 4)
#     -b TICK_MS   the generator's batch period; one BARRIER per batch, at
#                  most 4 outstanding (default 10)
#     -P PHASES    comma list, run in this order, of
#                    idle    probe only
#                    fm      probe + flow-mod load
#                    tcp     probe + iperf3 TCP
#                    tcp+fm  probe + iperf3 TCP + flow-mod load
#                  (default idle,fm,tcp,tcp+fm)
#     -r REPS      repetitions (default 1); switches alternate order
#     -w WORKERS   rvsd --workers (default 1)
#     -i PROBE_US  probe interval in microseconds (default 1000)
#     -o           also write the table and raw JSON to
#                  benches/results/flowmod-stall-<date>.md
#     -k           keep the scratch directory (/tmp/fmb.*)
#   e.g. benches/flowmod-stall.sh -s rvs,ovs-tso -d 30
#        benches/flowmod-stall.sh -d 5 -R 2000 -P fm,tcp,tcp+fm   (quick)
#
# Topology: the switch (rvsd, or a private ovsdb-server + ovs-vswitchd with
# datapath_type=netdev) runs in namespace fmb<ID>s with TAPs fmb<ID>t1,
# fmb<ID>t2 (ofports 1, 2; table 0 holds only priority=0,actions=NORMAL),
# moved into namespaces fmb<ID>a (10.79.0.1/24) and fmb<ID>b (10.79.0.2/24).
# Per phase: benches/udp_probe.py sends a datagram every PROBE_US from a to
# b (one-way latency from kernel receive timestamps, inter-arrival gaps,
# loss); iperf3 -c from a to b (one stream); benches/flowmod_load.py talks
# OpenFlow 1.3 to the switch's ptcp listener (127.0.0.1:6653 in fmb<ID>s)
# and reports the rate it achieved (only flows whose barrier came back
# count) and its barrier round trips. Switch CPU % is utime+stime of the
# daemon over the phase (100 = one core).
# Every process is bounded by `timeout`; all is cleaned up on exit/Ctrl-C.
# Needs: iperf3 iproute2 iputils-ping python3, openvswitch-switch for -s ovs*, Rust.
set -euo pipefail
FMB_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/flowmod-common.sh
. "$FMB_ROOT/benches/flowmod-common.sh"

SWITCHES=rvs
DUR=30
RATE=20000
WINDOW=10000
TABLES=4
TICK=10
PHASES=idle,fm,tcp,tcp+fm
REPS=1
WORKERS=1
PROBE_US=1000
OUT=0
PY=${PYTHON:-python3}
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "s:d:R:W:N:b:P:r:w:i:okh" o; do
    case $o in
        s) SWITCHES=$OPTARG ;;
        d) DUR=$OPTARG ;;
        R) RATE=$OPTARG ;;
        W) WINDOW=$OPTARG ;;
        N) TABLES=$OPTARG ;;
        b) TICK=$OPTARG ;;
        P) PHASES=$OPTARG ;;
        r) REPS=$OPTARG ;;
        w) WORKERS=$OPTARG ;;
        i) PROBE_US=$OPTARG ;;
        o) OUT=1 ;;
        k) FMB_KEEP=1 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
fmb_check_uint -d "$DUR" 1 3600
fmb_check_uint -R "$RATE" 1 10000000
fmb_check_uint -W "$WINDOW" 1 10000000
fmb_check_uint -N "$TABLES" 1 253
fmb_check_uint -b "$TICK" 1 1000
fmb_check_uint -r "$REPS" 1 100
fmb_check_uint -w "$WORKERS" 1 8
fmb_check_uint -i "$PROBE_US" 10 1000000
IFS=, read -r -a sw_list <<< "$SWITCHES"
need_ovs=0
need_rvs=0
for s in "${sw_list[@]}"; do
    case $s in
        rvs) need_rvs=1 ;;
        ovs | ovs-tso) need_ovs=1 ;;
        *) fmb_die "-s: unknown switch '$s' (rvs, ovs, ovs-tso)" ;;
    esac
done
IFS=, read -r -a phase_list <<< "$PHASES"
for p in "${phase_list[@]}"; do
    case $p in
        idle | fm | tcp | tcp+fm) ;;
        *) fmb_die "-P: unknown phase '$p' (idle, fm, tcp, tcp+fm)" ;;
    esac
done

fmb_need ip timeout awk ping iperf3 "$PY" ovs-ofctl
[ "$need_ovs" = 1 ] && fmb_need ovs-vsctl ovs-vswitchd ovsdb-server ovsdb-tool
fmb_init
[ "$need_rvs" = 1 ] && fmb_build_rvs

NS_SW=fmb${FMB_ID}s
NS_A=fmb${FMB_ID}a
NS_B=fmb${FMB_ID}b
BR=fmb${FMB_ID}br
T1=fmb${FMB_ID}t1
T2=fmb${FMB_ID}t2
IP_A=10.79.0.1
IP_B=10.79.0.2
TCP=6653
IPERF_PORT=5279
STALL_TIMEOUT=60
RAW=$FMB_WORK/raw.jsonl
: > "$RAW"
HZ=$(getconf CLK_TCK)

# bg NAME SECS CMD...: a bounded background job, tracked for cleanup; BG_PID.
BG_PID=""
bg() {
    local name=$1 secs=$2
    shift 2
    timeout -k 5 "$secs" "$@" > "$PH/$name.out" 2> "$PH/$name.err" < /dev/null &
    BG_PID=$!
    fmb_track "$BG_PID"
}
# wait_bg PID NAME: wait for a bg job; die with its stderr if it failed.
wait_bg() {
    local rc=0
    wait "$1" || rc=$?
    fmb_untrack "$1"
    [ "$rc" = 0 ] && return 0
    [ "$rc" = 124 ] && fmb_die "$SW/$PHASE: $2 timed out: $(tail -3 "$PH/$2.err")"
    fmb_die "$SW/$PHASE: $2 failed (exit $rc): $(tail -3 "$PH/$2.err") $(tail -c 400 "$PH/$2.out")${FMB_HINT:+; $FMB_HINT}"
}

# Bring up switch SW with its two TAPs in the end namespaces; sets SW_PID.
topo_up() {
    local sw=$1 dir=$FMB_WORK/$1-$2
    fmb_ns "$NS_SW"
    fmb_ns "$NS_A"
    fmb_ns "$NS_B"
    case $sw in
        rvs)
            rvs_start "$NS_SW" "$dir" "$BR" "$T1" "$T2" "$TCP" "$WORKERS"
            SW_PID=$RVSD_PID
            ;;
        ovs | ovs-tso)
            ovs_start "$NS_SW" "$dir" "$([ "$sw" = ovs-tso ] && echo 1 || echo 0)"
            ovs_bridge "$NS_SW" "$BR" "$T1" "$T2" "$TCP"
            SW_PID=$OVSD_PID
            ;;
    esac
    ip -n "$NS_SW" link set "$T1" netns "$NS_A"
    ip -n "$NS_SW" link set "$T2" netns "$NS_B"
    ip -n "$NS_A" addr add "$IP_A/24" dev "$T1"
    ip -n "$NS_B" addr add "$IP_B/24" dev "$T2"
    ip -n "$NS_A" link set "$T1" up
    ip -n "$NS_B" link set "$T2" up
    fmb_wait_for 30 "$sw: ping $IP_A -> $IP_B through the switch" \
        ip netns exec "$NS_A" ping -c 1 -W 1 "$IP_B"
}

topo_down() {
    rvs_stop
    ovs_stop
    fmb_ns_del "$NS_A"
    fmb_ns_del "$NS_B"
    fmb_ns_del "$NS_SW"
}

# One phase: probe (+ iperf3) (+ flow-mod load) for DUR seconds.
run_phase() {
    local rep=$1 tcp=0 fm=0 rcv srv gen snd cli c0 c1 t0 t1
    case $PHASE in
        fm) fm=1 ;;
        tcp) tcp=1 ;;
        tcp+fm) tcp=1 fm=1 ;;
    esac
    PH=$FMB_WORK/$SW-$rep-$PHASE
    mkdir -p "$PH"
    local idle
    idle=$(fmb_wait_quiet)
    fmb_log "  $SW rep $rep: phase $PHASE (${DUR}s; machine ${idle}% idle before)"
    bg probe-recv $((DUR + 25)) ip netns exec "$NS_B" "$PY" "$FMB_ROOT/benches/udp_probe.py" recv \
        --bind "$IP_B" --duration $((DUR + 20)) --out "$PH/probe.json"
    rcv=$BG_PID
    if [ "$tcp" = 1 ]; then
        bg iperf3-s $((DUR + 30)) ip netns exec "$NS_B" iperf3 -s -1 -B "$IP_B" -p "$IPERF_PORT"
        srv=$BG_PID
    fi
    if [ "$fm" = 1 ]; then
        bg flowmod-load $((DUR + 3 * STALL_TIMEOUT + 20)) ip netns exec "$NS_SW" "$PY" \
            "$FMB_ROOT/benches/flowmod_load.py" --port "$TCP" --rate "$RATE" --window "$WINDOW" \
            --tables "$TABLES" --tick-ms "$TICK" --duration $((DUR + 1)) \
            --stall-timeout "$STALL_TIMEOUT" --out "$PH/load.json"
        gen=$BG_PID
    fi
    sleep 0.5
    c0=$(fmb_cpu_ticks "$SW_PID")
    t0=$EPOCHREALTIME
    bg probe-send $((DUR + 15)) ip netns exec "$NS_A" "$PY" "$FMB_ROOT/benches/udp_probe.py" send \
        --dst "$IP_B" --duration "$DUR" --interval-us "$PROBE_US"
    snd=$BG_PID
    if [ "$tcp" = 1 ]; then
        bg iperf3-c $((DUR + 20)) ip netns exec "$NS_A" iperf3 -c "$IP_B" -p "$IPERF_PORT" \
            -t "$DUR" -J --connect-timeout 5000
        cli=$BG_PID
    fi
    wait_bg "$snd" probe-send
    [ "$tcp" = 1 ] && wait_bg "$cli" iperf3-c
    c1=$(fmb_cpu_ticks "$SW_PID")
    t1=$EPOCHREALTIME
    [ "$fm" = 1 ] && wait_bg "$gen" flowmod-load
    wait_bg "$rcv" probe-recv
    [ "$tcp" = 1 ] && wait_bg "$srv" iperf3-s
    "$PY" - "$SW" "$rep" "$PHASE" "$PH" "$c0" "$c1" "$t0" "$t1" "$HZ" "$idle" >> "$RAW" <<'PYEOF'
import json, os, sys
sw, rep, phase, ph, c0, c1, t0, t1, hz, idle = sys.argv[1:]
def load(name):
    p = os.path.join(ph, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)
r = {"switch": sw, "rep": int(rep), "phase": phase, "idle_pct_before": int(idle),
     "switch_cpu_pct": round(100.0 * (int(c1) - int(c0)) / int(hz) / (float(t1) - float(t0)), 1),
     "probe": load("probe.json"), "load": load("load.json")}
ip = load("iperf3-c.out")
if ip is not None:
    r["tcp_gbps"] = round(ip["end"]["sum_received"]["bits_per_second"] / 1e9, 2)
    r["tcp_retransmits"] = ip["end"]["sum_sent"].get("retransmits")
print(json.dumps(r, sort_keys=True))
PYEOF
}

for ((rep = 1; rep <= REPS; rep++)); do
    order=("${sw_list[@]}")
    if ((rep % 2 == 0)); then
        order=()
        for ((i = ${#sw_list[@]} - 1; i >= 0; i--)); do order+=("${sw_list[i]}"); done
    fi
    for SW in "${order[@]}"; do
        fmb_log "rep $rep: $SW"
        topo_up "$SW" "$rep"
        for PHASE in "${phase_list[@]}"; do run_phase "$rep"; done
        topo_down
    done
done

# ---- report ------------------------------------------------------------------
summary() {
    "$PY" - "$RAW" "$WORKERS" "$RATE" "$WINDOW" "$TABLES" "$DUR" <<'PYEOF'
import json, sys
raw, workers, rate, window, tables, dur = sys.argv[1:]
rows = [json.loads(l) for l in open(raw) if l.strip()]
def label(sw):
    return {"rvs": "rvs (%s worker%s)" % (workers, "" if workers == "1" else "s"),
            "ovs": "OVS netdev", "ovs-tso": "OVS netdev + TSO"}.get(sw, sw)
def get(r, path):
    for k in path.split("."):
        if r is None:
            return None
        r = r.get(k)
    return r
def cell(vals, fmt):
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return "–"
    n = len(vals)
    med = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    if n == 1:
        return fmt % vals[0]
    return " / ".join(fmt % v for v in (vals[0], med, vals[-1]))
cols = [("TCP Gbit/s", "tcp_gbps", "%.2f"),
        ("flow adds/s", "load.add_rate", "%.0f"),
        ("deletes/s", "load.delete_rate", "%.0f"),
        ("barrier RTT p99 ms", "load.barrier_rtt_ms.p99", "%.1f"),
        ("probe latency p50 ms", "probe.latency_ms.p50", "%.3f"),
        ("p99 ms", "probe.latency_ms.p99", "%.2f"),
        ("max ms", "probe.latency_ms.max", "%.1f"),
        ("stalls > 10 ms", "probe.stalls_over_10ms", "%d"),
        ("gaps > 10 ms", "probe.gaps_over_10ms", "%d"),
        ("sender gaps > 10 ms", "probe.tx_gaps_over_10ms", "%d"),
        ("max gap ms", "probe.gap_ms.max", "%.1f"),
        ("probes lost", "probe.lost", "%d"),
        ("switch CPU %", "switch_cpu_pct", "%.0f"),
        ("machine idle % before", "idle_pct_before", "%d")]
reps = len({r["rep"] for r in rows})
print("Flow-mod load: %s adds/s + as many deletes, %s flows alive, tables 1..%s; %s s per phase; %d rep(s)%s."
      % (rate, window, tables, dur, reps, " (min / median / max)" if reps > 1 else ""))
print()
print("| switch | phase | " + " | ".join(c[0] for c in cols) + " |")
print("|---|---|" + "---|" * len(cols))
seen = []
for r in rows:
    if (r["switch"], r["phase"]) not in seen:
        seen.append((r["switch"], r["phase"]))
for sw, ph in seen:
    rs = [r for r in rows if r["switch"] == sw and r["phase"] == ph]
    print("| %s | %s | " % (label(sw), ph) + " | ".join(cell([get(r, c[1]) for r in rs], c[2]) for c in cols) + " |")
for r in rows:
    for k, what in (("fatal", "the flow-mod generator stopped early"),
                    ("cleanup", "the generator's final delete failed, later phases had its flows")):
        if get(r, "load." + k):
            print("\n%s rep %d %s: %s: %s" % (label(r["switch"]), r["rep"], r["phase"], what, r["load"][k]))
PYEOF
}
echo
summary
if [ "$OUT" = 1 ]; then
    mkdir -p "$FMB_ROOT/benches/results"
    f=$FMB_ROOT/benches/results/flowmod-stall-$(date +%F).md
    [ -e "$f" ] && f=$FMB_ROOT/benches/results/flowmod-stall-$(date +%F-%H%M%S).md
    {
        echo "# benches/flowmod-stall.sh -s $SWITCHES -d $DUR -R $RATE -W $WINDOW -N $TABLES -b $TICK -P $PHASES -r $REPS -w $WORKERS -i $PROBE_US"
        echo
        fmb_env_md
        echo "- iperf3: $(iperf3 --version | head -1)"
        echo
        summary
        echo
        echo "Raw (one JSON object per switch, repetition and phase):"
        echo
        echo '```'
        cat "$RAW"
        echo '```'
    } > "$f"
    fmb_log "wrote $f"
fi
