#!/usr/bin/env bash
# Ingress policing, configured against achieved: rvs and Open vSwitch
# (netdev datapath) in the same run.
#
# Usage: benches/qos.sh [-t SECS] [-r RATES_KBPS] [-o] [-k]
#     -t SECS    seconds per iperf3 run (default 3, 1..30)
#     -r RATES   comma-separated ingress_policing_rate values in kbit/s
#                (default 10000,100000,1000000)
#     -o         also write the table to benches/results/qos-<date>.md
#     -k         keep the scratch directory
#
# Each switch runs in its own namespace with two system ports (veth ends);
# the other ends are in namespaces h1 and h2 (10.77.0.1, 10.77.0.2). For
# each rate, port 1 (h1's) is policed and h1 sends to h2:
#   - UDP, 1400-byte datagrams at twice the rate (as L2 frames), burst =
#     rate/20 (50 ms of traffic, so the initial burst barely counts);
#   - UDP, 64-byte datagrams likewise;
#   - TCP, one stream, default burst (ingress_policing_burst=0: 8000 kbit).
# Rates are L2 (Ethernet header to end of payload: what rvs's policer
# counts): a UDP datagram of L payload bytes is a frame of L + 42, a full
# TCP segment 1514 bytes for 1448 of payload. "offered" is what iperf3
# managed to send (it may fall short of 2x for small datagrams).
#
# Switches: rvs from target/release (built here), OVS with
# `ovs-vsctl set interface P ingress_policing_rate=R ingress_policing_burst=B`
# (Linux tc on the port; see the README's QoS section for what that means
# for an AF_PACKET datapath). Namespaces are named fmb<PID>*; only
# processes started here are stopped, by PID.
set -euo pipefail

FMB_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/flowmod-common.sh
source "$FMB_ROOT/benches/flowmod-common.sh"

SECS=3
RATES=10000,100000,1000000
WRITE=0
while getopts "t:r:ok" o; do
    case $o in
    t) SECS=$OPTARG ;;
    r) RATES=$OPTARG ;;
    o) WRITE=1 ;;
    k) FMB_KEEP=1 ;;
    *) sed -n '2,9p' "$0" >&2; exit 2 ;;
    esac
done
fmb_check_uint -t "$SECS" 1 30
IFS=, read -r -a RATE_LIST <<< "$RATES"
for r in "${RATE_LIST[@]}"; do fmb_check_uint -r "$r" 1 100000000; done

fmb_need ip iperf3 python3 ovsdb-server ovs-vswitchd ovs-vsctl ovsdb-tool
fmb_init
fmb_build_rvs

ID=$FMB_ID
H1=fmb${ID}h1
H2=fmb${ID}h2
ROWS=$FMB_WORK/rows.md

# hosts_up SWNS: veth pairs fmb<ID>a/b (in SWNS) <-> fmb<ID>x/y (in h1/h2).
hosts_up() {
    local sw=$1
    fmb_ns "$H1"
    fmb_ns "$H2"
    ip link add "fmb${ID}a" netns "$sw" type veth peer name "fmb${ID}x" netns "$H1"
    ip link add "fmb${ID}b" netns "$sw" type veth peer name "fmb${ID}y" netns "$H2"
    ip -n "$sw" link set "fmb${ID}a" up
    ip -n "$sw" link set "fmb${ID}b" up
    ip -n "$H1" addr add 10.77.0.1/24 dev "fmb${ID}x"
    ip -n "$H2" addr add 10.77.0.2/24 dev "fmb${ID}y"
    ip -n "$H1" link set "fmb${ID}x" up
    ip -n "$H2" link set "fmb${ID}y" up
}

hosts_down() {
    fmb_ns_del "$H1"
    fmb_ns_del "$H2"
}

# iperf_run OUT ARGS...: one-shot server in h2, client in h1 (JSON to OUT).
iperf_run() {
    local out=$1
    shift
    ip netns exec "$H2" iperf3 -s -1 -B 10.77.0.2 -p 5201 > /dev/null 2>&1 &
    local srv=$!
    fmb_track "$srv"
    sleep 0.3
    ip netns exec "$H1" timeout $((SECS + 15)) iperf3 -c 10.77.0.2 -p 5201 -t "$SECS" -J "$@" \
        > "$out" 2> /dev/null || true
    fmb_kill "$srv"
    fmb_untrack "$srv"
}

# row SWITCH KIND RATE_KBPS JSON: one markdown table row.
row() {
    python3 - "$@" >> "$ROWS" <<'PY'
import json, sys
sw, kind, rate, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
try:
    v = json.load(open(path))
    e = v["end"]
    if kind.startswith("udp"):
        ln = int(kind.split()[1])
        s = e["sum"]
        secs = s["seconds"]
        off = s["packets"] * (ln + 42) * 8 / secs
        got = (s["packets"] - s["lost_packets"]) * (ln + 42) * 8 / secs
    else:
        off = e["sum_sent"]["bits_per_second"] * 1514 / 1448
        got = e["sum_received"]["bits_per_second"] * 1514 / 1448
    conf = rate * 1000
    print(f"| {sw} | {kind} | {conf/1e6:.0f} | {off/1e6:.1f} | {got/1e6:.2f} | {100*got/conf:.1f} % |")
except Exception as ex:  # a failed run is a row too
    print(f"| {sw} | {kind} | {rate/1000:.0f} | – | – | failed ({type(ex).__name__}) |")
PY
    tail -1 "$ROWS" >&2
}

# measure SWITCH SETFN: the runs for every rate; SETFN RATE BURST polices
# port 1.
measure() {
    local sw=$1 set=$2 r ln
    ip netns exec "$H1" ping -c 3 -i 0.2 -W 1 10.77.0.2 > /dev/null ||
        fmb_die "$sw: h1 cannot ping h2"
    for r in "${RATE_LIST[@]}"; do
        "$set" "$r" $((r / 20))
        for ln in 1400 64; do
            local bw=$((r * 2000 * ln / (ln + 42)))
            iperf_run "$FMB_WORK/$sw-$r-$ln.json" -u -l "$ln" -b "$bw"
            row "$sw" "udp $ln" "$r" "$FMB_WORK/$sw-$r-$ln.json"
        done
        "$set" "$r" 0
        iperf_run "$FMB_WORK/$sw-$r-tcp.json"
        row "$sw" "tcp" "$r" "$FMB_WORK/$sw-$r-tcp.json"
    done
}

rvs_police() { rvsctl set port "fmb${ID}a" "ingress_policing_rate=$1" "ingress_policing_burst=$2" > /dev/null; }
ovs_police() { vsctl set interface "fmb${ID}a" "ingress_policing_rate=$1" "ingress_policing_burst=$2"; }

# ---- rvs ----
SW=fmb${ID}rs
fmb_ns "$SW"
hosts_up "$SW"
RVS_DIR=$FMB_WORK/rvs
mkdir -p "$RVS_DIR"
cat > "$RVS_DIR/config.toml" <<TOML
[[bridge]]
name = "fmb${ID}br"
[[bridge.port]]
name = "fmb${ID}a"
ofport = 1
[[bridge.port]]
name = "fmb${ID}b"
ofport = 2
TOML
ip netns exec "$SW" "$RVSD" --foreground --config "$RVS_DIR/config.toml" \
    --state-dir "$RVS_DIR/state" --socket "$RVS_DIR/rvsd.sock" --log-level warn \
    > "$RVS_DIR/rvsd.log" 2>&1 &
RVSD_PID=$!
fmb_track "$RVSD_PID"
fmb_wait_for 20 "rvsd control socket" rvsctl list-br
fmb_log "rvs: measuring"
measure rvs rvs_police
rvs_stop
hosts_down
fmb_ns_del "$SW"

# ---- OVS ----
SW=fmb${ID}os
fmb_ns "$SW"
hosts_up "$SW"
ovs_start "$SW" "$FMB_WORK/ovs"
fmb_step "ovs-vsctl add-br" 60 ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=30 \
    add-br "fmb${ID}br" -- set bridge "fmb${ID}br" datapath_type=netdev \
    -- add-port "fmb${ID}br" "fmb${ID}a" -- set Interface "fmb${ID}a" ofport_request=1 \
    -- add-port "fmb${ID}br" "fmb${ID}b" -- set Interface "fmb${ID}b" ofport_request=2
sleep 1
fmb_log "OVS: measuring"
measure ovs ovs_police
OVS_NOTE=$(grep -m1 -o 'adding cls_[a-z]* policing action failed: .*' "$OVS_DIR/ovs-vswitchd.log" || true)
ovs_stop
hosts_down

TABLE=$FMB_WORK/table.md
{
    echo "Ingress policing on port 1 (h1 → h2), ${SECS} s per run; L2 rates in Mbit/s."
    echo
    echo "| switch | traffic | configured | offered | delivered | delivered/configured |"
    echo "|---|---|---:|---:|---:|---:|"
    cat "$ROWS"
    echo
    if [ -n "${OVS_NOTE:-}" ]; then
        echo "OVS could not police here (ovs-vswitchd.log: \"$OVS_NOTE\"; this kernel has no tc matchall/basic classifier); a failed row is an iperf3 run that did not complete."
        echo
    fi
    fmb_env_md 2>/dev/null || true
} > "$TABLE"
cat "$TABLE"
if [ "$WRITE" = 1 ]; then
    mkdir -p "$FMB_ROOT/benches/results"
    out=$FMB_ROOT/benches/results/qos-$(date +%Y-%m-%d).md
    cp "$TABLE" "$out"
    fmb_log "wrote $out"
fi
