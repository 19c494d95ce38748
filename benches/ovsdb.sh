#!/usr/bin/env bash
# Port configuration over OVSDB, rvs against Open vSwitch (ovsdb-server +
# ovs-vswitchd, netdev datapath), the real ovs-vsctl driving both, same
# machine, one run.
#
# Usage (root):
#   benches/ovsdb.sh [-n PORTS] [-r REPS] [-s SWITCHES] [-t SECS] [-o] [-k]
#     -n PORTS     ports per step (default 200)
#     -r REPS      repetitions (default 3); each starts fresh daemons, and the
#                  switches alternate (odd reps OVS first, even reps rvs first)
#     -s SWITCHES  ovs,rvs (default both)
#     -t SECS      timeout of every single step (default 600)
#     -o           also write the table and raw numbers to
#                  benches/results/ovsdb-<date>.md
#     -k           keep the scratch directory (/tmp/fmb.*)
#   e.g. benches/ovsdb.sh -n 50 -r 1       (a quick check)
#
# Per repetition and switch, each daemon private and inside its own network
# namespace, bridge br0 (datapath_type=netdev), every ovs-vsctl without
# --no-wait (so each returns once the switch applied the change and set
# cur_cfg), timed:
#   add-port x N   N ovs-vsctl runs, one `add-port br0 pI -- set Interface
#                  pI type=internal` each (N transactions; each creates a TAP)
#   list-ports     one `list-ports br0` (count must be N)
#   set tag x N    one ovs-vsctl run setting `tag` on all N ports (one
#                  transaction of N updates)
#   del-br         `del-br br0` (N ports go)
#   add-port 1 txn one ovs-vsctl run adding N internal ports to a new bridge
#                  (one transaction)
#   rvs only: rvsd VmRSS at the end.
# Prints a markdown table of min / median / max over the repetitions and the
# rvs/OVS ratio of medians.
# Needs: openvswitch-switch openvswitch-common iproute2, a Rust toolchain.
set -euo pipefail
FMB_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/flowmod-common.sh
. "$FMB_ROOT/benches/flowmod-common.sh"

N=200
REPS=3
SWITCHES=ovs,rvs
T=600
OUT=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "n:r:s:t:okh" o; do
    case $o in
        n) N=$OPTARG ;;
        r) REPS=$OPTARG ;;
        s) SWITCHES=$OPTARG ;;
        t) T=$OPTARG ;;
        o) OUT=1 ;;
        k) FMB_KEEP=1 ;;
        *) usage ;;
    esac
done
fmb_check_uint -n "$N" 1 4000
fmb_check_uint -r "$REPS" 1 50
fmb_check_uint -t "$T" 1 7200
fmb_need ip ovs-vsctl ovsdb-server ovs-vswitchd ovsdb-tool
fmb_init
fmb_build_rvs

STEPS=("add-port x N" "list-ports" "set tag x N" "del-br" "add-port 1 txn")
declare -A R=()      # "switch|step" -> space-separated seconds
RSS=()

# The ovs-vsctl of the switch under test ($DB: its socket).
v() { ovs-vsctl --db="unix:$DB" --timeout="$T" "$@"; }

# add_each: N transactions of one internal port each.
add_each() {
    local i
    for ((i = 1; i <= N; i++)); do
        v add-port br0 "p$i" -- set Interface "p$i" type=internal || return 1
    done
}

# one_txn VERB...: one ovs-vsctl run with N commands built by VERB.
tags() {
    local i a=()
    for ((i = 1; i <= N; i++)); do a+=(-- set Port "p$i" "tag=$((i % 4000 + 1))"); done
    v "${a[@]}"
}
add_txn() {
    local i a=(-- add-br br1 -- set bridge br1 datapath_type=netdev)
    for ((i = 1; i <= N; i++)); do a+=(-- add-port br1 "q$i" -- set Interface "q$i" type=internal); done
    v "${a[@]}"
}
# fmb_step runs programs: the functions above run in a child bash.
export -f v add_each tags add_txn
export N T
count_ports() { [ "$(wc -l < "$FMB_WORK/step.out")" = "$N" ] || fmb_die "list-ports: $(wc -l < "$FMB_WORK/step.out") ports, expected $N"; }

run_steps() {
    local sw=$1
    fmb_step "$sw add-br" "$T" bash -c 'v add-br br0 -- set bridge br0 datapath_type=netdev'
    :  -- set bridge br0 datapath_type=netdev
    fmb_step "$sw add-port x $N" "$T" bash -c add_each
    R["$sw|add-port x N"]+="$STEP_S "
    fmb_step "$sw list-ports" "$T" bash -c 'v list-ports br0'
    count_ports
    R["$sw|list-ports"]+="$STEP_S "
    fmb_step "$sw set tag x $N" "$T" bash -c tags
    R["$sw|set tag x N"]+="$STEP_S "
    fmb_step "$sw del-br" "$T" bash -c 'v del-br br0'
    R["$sw|del-br"]+="$STEP_S "
    fmb_step "$sw add-port 1 txn" "$T" bash -c add_txn
    R["$sw|add-port 1 txn"]+="$STEP_S "
    fmb_log "$sw: add-port x N ${R["$sw|add-port x N"]}; set tag ${R["$sw|set tag x N"]}; 1 txn ${R["$sw|add-port 1 txn"]}"
}

one_ovs() {
    local ns=fmb${FMB_ID}o$1
    fmb_ns "$ns"
    ovs_start "$ns" "$FMB_WORK/ovs$1"
    export DB=$OVS_DIR/db.sock
    fmb_wait_quiet > /dev/null
    run_steps ovs
    ovs_stop
    fmb_ns_del "$ns"
}

one_rvs() {
    local ns=fmb${FMB_ID}r$1 dir=$FMB_WORK/rvs$1
    fmb_ns "$ns"
    mkdir -p "$dir"
    echo "# no bridges" > "$dir/config.toml"
    RVS_DIR=$dir
    ip netns exec "$ns" "$RVSD" --foreground --config "$dir/config.toml" \
        --state-dir "$dir/state" --socket "$dir/rvsd.sock" --log-level warn \
        --ovsdb-remote "punix:$dir/db.sock" > "$dir/rvsd.log" 2>&1 &
    RVSD_PID=$!
    fmb_track "$RVSD_PID"
    FMB_HINT="rvsd log: $dir/rvsd.log"
    fmb_wait_for 20 "rvsd OVSDB socket" test -S "$dir/db.sock"
    export DB=$dir/db.sock
    fmb_wait_quiet > /dev/null
    run_steps rvs
    RSS+=("$(fmb_rss_kb "$RVSD_PID")")
    rvs_stop
    fmb_ns_del "$ns"
}

IDLE=$(fmb_wait_quiet)
for ((rep = 1; rep <= REPS; rep++)); do
    order=(ovs rvs)
    [ $((rep % 2)) = 0 ] && order=(rvs ovs)
    for sw in "${order[@]}"; do
        [[ ,$SWITCHES, == *,$sw,* ]] || continue
        fmb_log "rep $rep/$REPS: $sw"
        "one_$sw" "$rep"
    done
done

med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
{
    echo "### OVSDB port configuration, $N ports, $REPS reps (seconds, min / median / max; machine ${IDLE}% idle at start)"
    echo
    echo "| step | Open vSwitch 3.1 | rvs | rvs / OVS (median) |"
    echo "|---|---|---|---|"
    for s in "${STEPS[@]}"; do
        o=$(echo "${R["ovs|$s"]:-}" | tr ' ' '\n' | grep -v '^$' | fmb_minmedmax || true)
        r=$(echo "${R["rvs|$s"]:-}" | tr ' ' '\n' | grep -v '^$' | fmb_minmedmax || true)
        om=$(echo "${R["ovs|$s"]:-}" | med)
        rm=$(echo "${R["rvs|$s"]:-}" | med)
        ratio=$(awk -v a="${rm:-0}" -v b="${om:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f×", a / b; else print "–" }')
        echo "| $s | ${o:-–} | ${r:-–} | $ratio |"
    done
    echo
    echo "rvsd VmRSS at the end (KiB): ${RSS[*]:-–}"
    echo
    echo "raw: $(for k in "${!R[@]}"; do printf '%s=[%s] ' "$k" "${R[$k]}"; done)"
} | tee "$FMB_WORK/table.md"
if [ "$OUT" = 1 ]; then
    f=$FMB_ROOT/benches/results/ovsdb-$(date +%Y-%m-%d-%H%M%S).md
    { cat "$FMB_WORK/table.md"; echo; fmb_env_md; } > "$f"
    fmb_log "wrote $f"
fi
