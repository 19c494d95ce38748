#!/usr/bin/env bash
# UDP flood through rvsd between two *system* ports (AF_PACKET on veth
# pairs), the path peerbench's TAP setup does not cover: shows what batched
# receive (recvmmsg) and batched send (sendmmsg through the per-worker
# transmit queues) buy. Run as root:
#   benches/system-flood.sh [SECONDS] [RVSD_BINARY]
# Prints delivered kpps (the receiving namespace's netdev rx counter) and
# the receiver's app kpps, for 3 runs. Traffic stays inside two namespaces
# made here (10.77.0.1 -> 10.77.0.2, udpblast refuses anything else).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
BIN=${2:-target/release/rvsd}
BLAST=${UDPBLAST:-../shared/peerbench/tools/udpblast}
[ -x "$BIN" ] || cargo build --release --bin rvsd
[ -x "$BLAST" ] || { echo "udpblast not found at $BLAST (set UDPBLAST)" >&2; exit 1; }
P=rvsf$$
D=$(mktemp -d /tmp/rvs-sf.XXXXXX)
RVSD=""
cleanup() {
    [ -n "$RVSD" ] && kill "$RVSD" 2>/dev/null && wait "$RVSD" 2>/dev/null
    ip netns del ${P}a 2>/dev/null || true
    ip netns del ${P}b 2>/dev/null || true
    ip link del ${P}x 2>/dev/null || true
    ip link del ${P}y 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT
for s in a b; do ip netns add $P$s; done
ip link add ${P}x type veth peer name ${P}xi
ip link add ${P}y type veth peer name ${P}yi
ip link set ${P}xi netns ${P}a
ip link set ${P}yi netns ${P}b
ip -n ${P}a addr add 10.77.0.1/24 dev ${P}xi
ip -n ${P}b addr add 10.77.0.2/24 dev ${P}yi
for s in a b; do ip -n $P$s link set lo up; done
ip -n ${P}a link set ${P}xi up
ip -n ${P}b link set ${P}yi up
ip link set ${P}x up
ip link set ${P}y up
cat > "$D/sf.toml" <<TOML
[[bridge]]
name = "${P}br"
[[bridge.port]]
name = "${P}x"
type = "system"
[[bridge.port]]
name = "${P}y"
type = "system"
[[bridge.flow]]
flow = "priority=0,actions=NORMAL"
TOML
"$BIN" --config "$D/sf.toml" --state-dir "$D/state" --socket "$D/rvsd.sock" --log-level warn &
RVSD=$!
sleep 1
ip netns exec ${P}a ping -c 3 -i 0.2 -q 10.77.0.2 >/dev/null
for r in 1 2 3; do
    rx0=$(ip netns exec ${P}b cat /sys/class/net/${P}yi/statistics/rx_packets)
    ip netns exec ${P}b timeout $((SECS + 5)) "$BLAST" recv 10.77.0.2 9000 $((SECS + 2)) > "$D/recv" &
    rp=$!
    sleep 0.3
    s=$(ip netns exec ${P}a timeout $((SECS + 5)) "$BLAST" send 10.77.0.2 9000 "$SECS" 64)
    wait $rp || true
    rx1=$(ip netns exec ${P}b cat /sys/class/net/${P}yi/statistics/rx_packets)
    off=$(sed -E 's/.*tx_kpps=([0-9.]+).*/\1/' <<<"$s")
    app=$(sed -E 's/.*rx_kpps=([0-9.]+).*/\1/' "$D/recv")
    echo "run $r: offered ${off} kpps, delivered $(( (rx1 - rx0) / SECS / 1000 )) kpps, app received ${app} kpps"
done
