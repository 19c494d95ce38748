#!/usr/bin/env bash
# Side-by-side forwarding benchmark: rvsd against a direct veth pair, the
# Linux bridge and Open vSwitch's userspace datapath, in one peerbench run.
#
# Usage (root): benches/peerbench.sh [peerbench run.sh options]
#   e.g. benches/peerbench.sh -r 3 -t 10
# Defaults: all peerbench tests, 3 repetitions, SUTs below. Results land in
# ../shared/peerbench/results/<run-id>/; summarize with its summarize.py.
set -euo pipefail
RVS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
PB=${PB_DIR:-$RVS_ROOT/../shared/peerbench}
[ -x "$PB/run.sh" ] || { echo "peerbench not found at $PB (set PB_DIR)" >&2; exit 1; }
command -v iperf3 >/dev/null || apt-get install -y -qq iperf3 </dev/null
command -v ovs-vswitchd >/dev/null || apt-get install -y -qq openvswitch-switch </dev/null
(cd "$RVS_ROOT" && cargo build --release --bin rvsd)
export RVS_ROOT
export PB_CUSTOM_CMD="$RVS_ROOT/benches/peerbench-rvs.sh"
SUTS=${SUTS:-"veth-direct kbridge-veth ovs-netdev ovs-netdev-tso custom"}
exec "$PB/run.sh" -s "$SUTS" "$@"
