#!/usr/bin/env bash
# rvsd as peerbench's "custom" switch under test.
#
# peerbench (../shared/peerbench, suts/custom.sh) runs this inside its switch
# namespace as PB_CUSTOM_CMD, with RVS_ROOT set to the project root. It execs
# the release rvsd on a private state dir and socket, with a config that
# creates bridge pbrvs0 and the TAP ports pbtap0 (ofport 1) and pbtap1
# (ofport 2); peerbench then moves the taps into its endpoint namespaces.
#
# Knobs (environment):
#   RVS_PB_FLOWS=N    install N extra exact-match flows (priority 100,
#                     matching no benchmark traffic) beside NORMAL, to show the
#                     classifier does not slow forwarding down.
#   RVS_PB_VLAN=1     both taps are access ports of VLAN 10 (NORMAL with VLAN
#                     rules on every packet).
#   RVS_PB_WORKERS=N  datapath worker threads (rvsd --workers; default: rvsd's).
# The binary must be built first (benches/peerbench.sh does it).
set -euo pipefail
: "${RVS_ROOT:?set RVS_ROOT to the rvs project root}"
BIN="$RVS_ROOT/target/release/rvsd"
[ -x "$BIN" ] || { echo "peerbench-rvs: $BIN missing; run: cargo build --release" >&2; exit 1; }
D=$(mktemp -d /tmp/rvs-pb.XXXXXX)
tag=""
[ "${RVS_PB_VLAN:-0}" = 1 ] && tag="tag = 10"
{
    echo '[[bridge]]'
    echo 'name = "pbrvs0"'
    echo '[[bridge.port]]'
    echo 'name = "pbtap0"'
    echo 'type = "tap"'
    echo 'ofport = 1'
    echo "$tag"
    echo '[[bridge.port]]'
    echo 'name = "pbtap1"'
    echo 'type = "tap"'
    echo 'ofport = 2'
    echo "$tag"
    n=${RVS_PB_FLOWS:-0}
    i=0
    while [ "$i" -lt "$n" ]; do
        # 172.16.0.0/12 sources never appear in peerbench traffic.
        printf '[[bridge.flow]]\nflow = "priority=100,udp,nw_src=172.%d.%d.%d,tp_dst=%d,actions=drop"\n' \
            $((16 + i / 65536 % 16)) $((i / 256 % 256)) $((i % 256)) $((1000 + i % 1000))
        i=$((i + 1))
    done
    echo '[[bridge.flow]]'
    echo 'flow = "priority=0,actions=NORMAL"'
} > "$D/pb.toml"
workers=()
[ -n "${RVS_PB_WORKERS:-}" ] && workers=(--workers "$RVS_PB_WORKERS")
exec "$BIN" --config "$D/pb.toml" --state-dir "$D/state" --socket "$D/rvsd.sock" --log-level warn "${workers[@]}"
