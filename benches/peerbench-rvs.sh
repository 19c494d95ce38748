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
#   RVS_PB_MASKS=M    spread those flows over M masks (prefix lengths), the
#                     case the exact-match cache is for.
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
    m=${RVS_PB_MASKS:-1}
    i=0
    while [ "$i" -lt "$n" ]; do
        # 172.16.0.0/12 sources never appear in peerbench traffic. With
        # RVS_PB_MASKS=M, flow i matches a /(32 - i % M) source prefix and
        # its own tp_dst, so the table has M masks (and no duplicates).
        k=$((i % m))
        ip=$(( ((172 << 24) | ((16 + i / 65536 % 16) << 16) | (i & 0xffff)) & ~((1 << k) - 1) ))
        tp=$((1000 + i % 1000))
        [ "$m" -gt 1 ] && tp=$((1 + i))
        printf '[[bridge.flow]]\nflow = "priority=100,udp,nw_src=%d.%d.%d.%d/%d,tp_dst=%d,actions=drop"\n' \
            $((ip >> 24 & 255)) $((ip >> 16 & 255)) $((ip >> 8 & 255)) $((ip & 255)) $((32 - k)) "$tp"
        i=$((i + 1))
    done
    echo '[[bridge.flow]]'
    echo 'flow = "priority=0,actions=NORMAL"'
} > "$D/pb.toml"
workers=()
[ -n "${RVS_PB_WORKERS:-}" ] && workers=(--workers "$RVS_PB_WORKERS")
exec "$BIN" --config "$D/pb.toml" --state-dir "$D/state" --socket "$D/rvsd.sock" --log-level warn "${workers[@]}"
