#!/usr/bin/env bash
# Overlay benchmark: two tenant namespaces across a tunnel (VXLAN by
# default) between two "hosts", each a namespace with one switch, joined by
# an underlay veth pair; rvs–rvs against OVS netdev–OVS netdev and OVS
# netdev with userspace TSO on both sides.
#
#   pb-ovl-a [pbtap0 10.77.0.1] ─ switch (host 1, pb-ovl-h1) ─ pbul0 10.77.1.1
#                                                               │ underlay veth
#   pb-ovl-b [pbtap1 10.77.0.2] ─ switch (host 2, pb-ovl-h2) ─ pbul1 10.77.1.2
#
# It is peerbench (../shared/peerbench) with three more switches under test
# (benches/overlay/suts/): run.sh's loop (SUTs round robin within each
# repetition, quiet-machine wait, CPU accounting), its tests and its
# summarize.py, run from a staging directory that links peerbench's scripts
# beside our SUT plugins. benches/overlay/ratios.py adds rvs/OVS ratios
# paired by repetition.
#   ovl-rvs      two release rvsd; tunnel port on the kernel's UDP socket
#                (underlay address on the veth)
#   ovl-ovs      two OVS netdev datapaths; br-phy with the veth and the
#                underlay address, br-int with the tunnel and the tap
#   ovl-ovs-tso  the same with other_config:userspace-tso-enable=true
# "switch CPU %" adds up both hosts' switch processes (% of one core).
#
# Usage (root): benches/overlay.sh [-r REPS] [-t SECONDS] [-T TESTS] [-s SUTS] [-o]
#   -r REPS     repetitions (default 3)
#   -t SECONDS  length of each load test (default 10, at most 60)
#   -T TESTS    peerbench tests (default "tcp1 udp64 udpflood ping")
#   -s SUTS     default "ovl-rvs ovl-ovs ovl-ovs-tso"
#   -o          also write benches/results/overlay-<date>.md
#   -S DIR      no run: summarize the results in DIR again (with -o: write
#               the report), e.g. after an interrupted run
#   -p LOAD     no run: profile the first SUT of -s (perf + strace, with
#               peerbench's profile.sh) under LOAD, tcp1 or udpflood
# A test that failed (iperf3 timed out: OVS 3.1 with userspace TSO drops
# every offloaded frame it should encapsulate, so no TCP connection, not
# even iperf3's control connection, gets through) is listed as failed and
# left out of the tables, not counted as 0.
# Env: OVL_TUNNEL=vxlan|geneve|gre (default vxlan; both switches must have
#      the type), OVL_KEY (default 42), RVS_PB_WORKERS (rvsd --workers),
#      PB_QUIET_IDLE / PB_QUIET_MAX (peerbench's quiet wait before each test;
#      default here 85 % / 10 s), PB_DIR (peerbench; default ../shared/peerbench).
# Bounded: every test is time-limited by peerbench; at most REPS x SUTS x
# TESTS tests. Only namespaces pb-ovl-* and devices inside them; everything
# is removed on exit (trap), also on failure or Ctrl-C.
set -euo pipefail
RVS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
PB=${PB_DIR:-$RVS_ROOT/../shared/peerbench}
[ -x "$PB/run.sh" ] || { echo "peerbench not found at $PB (set PB_DIR)" >&2; exit 1; }
PB=$(cd "$PB" && pwd)
[ "$(id -u)" = 0 ] || { echo "overlay.sh: needs root (namespaces, TAPs)" >&2; exit 1; }

REPS=3 DUR=10 TESTS="tcp1 udp64 udpflood ping" SUTS="ovl-rvs ovl-ovs ovl-ovs-tso" WRITE=0
AGAIN="" PROFILE=""
while getopts "r:t:T:s:oS:p:" o; do
    case $o in
        r) REPS=$OPTARG;; t) DUR=$OPTARG;; T) TESTS=$OPTARG;; s) SUTS=$OPTARG;; o) WRITE=1;;
        S) AGAIN=$(cd "$OPTARG" && pwd);; p) PROFILE=$OPTARG;;
        *) sed -n 2,45p "$0"; exit 2;;
    esac
done
[ "$REPS" -ge 1 ] && [ "$REPS" -le 20 ] || { echo "-r: 1..20" >&2; exit 2; }

# Private names and state, so that another peerbench run is not disturbed.
export PB_NS_A=pb-ovl-a PB_NS_B=pb-ovl-b PB_NS_SW=pb-ovl-h1 PB_NS_H2=pb-ovl-h2
export PB_STATE=/tmp/pb-ovl-state PB_MTU=${PB_MTU:-1450}
export PB_QUIET_IDLE=${PB_QUIET_IDLE:-85} PB_QUIET_MAX=${PB_QUIET_MAX:-10}
export RVS_ROOT OVL_DIR=$RVS_ROOT/benches/overlay
export OVL_TUNNEL=${OVL_TUNNEL:-vxlan} OVL_KEY=${OVL_KEY:-42}

# Moves the raw output of failed tests (rc != 0) aside (peerbench's
# summarize.py would count a timed-out TCP test as 0 Gbit/s and stops on a
# UDP test that never started) and lists them in $1/failed.md.
set_aside_failed() {
    local run=$1 f t rc
    : > "$run/failed.md"
    for f in "$run"/*/rep*/*.cpu; do
        [ -f "$f" ] || continue
        rc=$(sed -n 's/^rc=//p' "$f")
        [ "$rc" = 0 ] && continue
        t=$(basename "$f" .cpu)
        for x in "${f%.cpu}".json "${f%.cpu}".txt; do
            [ -f "$x" ] && mv "$x" "$x.failed"
        done
        echo "- $(basename "$(dirname "$(dirname "$f")")") $(basename "$(dirname "$f")") $t: rc=$rc$([ "$rc" = 124 ] && echo ' (timed out)')" >> "$run/failed.md"
    done
}

report() {   # $1 = results dir, $2 = stamp
    local run=$1 stamp=$2 md
    set_aside_failed "$run"
    python3 "$PB/summarize.py" "$run" --suts "$SUTS" > "$run/summary.md"
    python3 "$OVL_DIR/ratios.py" "$run" $SUTS > "$run/ratios.md"
    cat "$run/ratios.md"
    if [ -s "$run/failed.md" ]; then echo; echo "Failed tests:"; cat "$run/failed.md"; fi
    [ "$WRITE" = 1 ] || return 0
    md=$RVS_ROOT/benches/results/overlay-$(date +%Y-%m-%d).md
    [ -e "$md" ] && md=$RVS_ROOT/benches/results/overlay-$stamp.md
    {
        echo "# Overlay bench, $(sed -n 's/^date: //p' "$run/env.txt")"
        echo
        echo "Command: \`benches/overlay.sh -r $(sed -n 's/^reps: //p' "$run/env.txt") -t $(sed -n 's/^dur: //p' "$run/env.txt") -T \"$(sed -n 's/^tests: //p' "$run/env.txt")\" -s \"$SUTS\" -o\`"
        echo "(OVL_TUNNEL=$OVL_TUNNEL OVL_KEY=$OVL_KEY PB_MTU=$PB_MTU PB_QUIET_IDLE=$PB_QUIET_IDLE PB_QUIET_MAX=$PB_QUIET_MAX)"
        echo
        echo '```'
        cat "$run/env.txt"
        echo "rvs: $(git -C "$RVS_ROOT" log -1 --format='%h %s')"
        local s
        for s in $SUTS; do
            [ -f "$run/$s/rep1/describe.txt" ] && echo "$s: $(cat "$run/$s/rep1/describe.txt")"
        done
        echo '```'
        cat "$run/ratios.md"
        if [ -s "$run/failed.md" ]; then
            echo
            echo "### Failed tests (left out of the tables)"
            echo
            cat "$run/failed.md"
        fi
        echo
        sed 's|^Results: .*|Raw results: target/overlay/'"$stamp"' (cells: min / median / max over repetitions)|' "$run/summary.md"
    } > "$md"
    echo "overlay: wrote $md"
}

if [ -n "$AGAIN" ]; then
    report "$AGAIN" "$(basename "$AGAIN")"
    exit 0
fi

for p in iperf3 jq bc; do
    command -v "$p" >/dev/null || apt-get install -y -qq "$p" </dev/null
done
command -v ovs-vswitchd >/dev/null || apt-get install -y -qq openvswitch-switch </dev/null
(cd "$RVS_ROOT" && cargo build --release --bin rvsd -p rvs && cargo build --release -p rvs-ctl --bin rvsctl)

# One run at a time: the names and the state directory are fixed.
exec 9>/tmp/pb-ovl.lock
flock -n 9 || { echo "overlay.sh: another run holds /tmp/pb-ovl.lock" >&2; exit 1; }

STAGE=$(mktemp -d /tmp/pb-ovl-stage.XXXXXX)
export PB_DIR=$STAGE
mkdir -p "$STAGE/tools"
for f in lib.sh run.sh setup.sh teardown.sh summarize.py profile.sh; do ln -s "$PB/$f" "$STAGE/$f"; done
ln -s "$PB/tools/udpblast.c" "$STAGE/tools/udpblast.c"
ln -s "$OVL_DIR/suts" "$STAGE/suts"

cleanup() {
    "$STAGE/teardown.sh" >/dev/null 2>&1 || true
    # Host 2 and anything a killed run left (only our own names).
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep '^pb-ovl-' || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$STAGE" "$PB_STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup_stale() {
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep '^pb-ovl-' || true); do
        echo "overlay: removing stale namespace $ns" >&2; ip netns del "$ns"
    done
}
cleanup_stale

STAMP=$(date +%Y-%m-%d-%H%M%S)
if [ -n "$PROFILE" ]; then
    OUT=$RVS_ROOT/target/overlay/profile-${SUTS%% *}-$PROFILE-$STAMP
    mkdir -p "$OUT"
    "$STAGE/profile.sh" "${SUTS%% *}" "$PROFILE" "$OUT"
    exit $?
fi
OUT=$RVS_ROOT/target/overlay/$STAMP
mkdir -p "$OUT"
# run.sh's own summary at the end may fail on a failed test; report() redoes it.
"$STAGE/run.sh" -s "$SUTS" -r "$REPS" -t "$DUR" -T "$TESTS" -o "$OUT" || true
report "$OUT" "$STAMP"
