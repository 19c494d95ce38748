#!/usr/bin/env bash
# Flow-table programming speed and memory, rvs against Open vSwitch (netdev
# datapath), same machine, same flow file, one run.
#
# Usage (root):
#   benches/flowmod.sh [-n FLOWS] [-r REPS] [-w WORKERS] [-s SWITCHES]
#                      [-p PRIORITY] [-t SECS] [-D] [-o] [-k]
#     -n FLOWS     flows in the file (default 100000): priority=P,ip,
#                  nw_dst=10.X.Y.Z,actions=output:2, distinct /32 addresses
#     -r REPS      repetitions (default 3); each starts fresh daemons, and the
#                  switches alternate (odd reps OVS first, even reps rvs first)
#     -w WORKERS   rvsd --workers, one value or a list: -w 1,2 runs rvs with
#                  1 and with 2 workers (default: 1)
#     -s SWITCHES  ovs,rvs (default both)
#     -p PRIORITY  priority of the generated flows (default 100)
#     -t SECS      timeout of every single step (default 600)
#     -D           skip the del-flows steps
#     -b           ovs-ofctl --bundle add-flows (one atomic bundle, no
#                  barrier per flow mod) on both switches
#     -o           also write the table and raw numbers to
#                  benches/results/flowmod-<date>.md
#     -k           keep the scratch directory (/tmp/fmb.*)
#   e.g. benches/flowmod.sh -n 2000 -r 1        (a quick check)
#        benches/flowmod.sh -n 100000 -r 3 -w 1,2 -o
#
# Per repetition and switch, each daemon private and inside its own network
# namespace (bridge, two TAP ports as ofports 1 and 2, the default flow
# priority=0,actions=NORMAL, OpenFlow on ptcp 127.0.0.1):
#   OVS: start; `ovs-ofctl -O OpenFlow13 add-flows tcp:... FILE` (timed; ends
#        with ovs-ofctl's barrier, so the flows are in); dump-flows (timed,
#        count must be N + the base flows); del-flows ip (timed, count back
#        to base); ovs-vswitchd VmRSS before/after the add -> bytes per flow.
#   rvs: the same on a fresh rvsd through ovs-ofctl, plus `rvsctl dump-flows`
#        (timed, count); then a second fresh rvsd for `rvsctl add-flows BR
#        FILE` (timed), its RSS delta, and `rvsctl del-flows BR ip` (timed).
# Prints a markdown table of min / median / max over the repetitions.
# Needs: openvswitch-switch openvswitch-common iproute2, a Rust toolchain.
set -euo pipefail
FMB_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/flowmod-common.sh
. "$FMB_ROOT/benches/flowmod-common.sh"

N=100000
REPS=3
WORKERS=1
SWITCHES=ovs,rvs
PRIO=100
T=600
DEL=1
OUT=0
ADD=(add-flows)
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "n:r:w:s:p:t:Dbokh" o; do
    case $o in
        n) N=$OPTARG ;;
        r) REPS=$OPTARG ;;
        w) WORKERS=$OPTARG ;;
        s) SWITCHES=$OPTARG ;;
        p) PRIO=$OPTARG ;;
        t) T=$OPTARG ;;
        D) DEL=0 ;;
        b) ADD=(--bundle add-flows) ;;
        o) OUT=1 ;;
        k) FMB_KEEP=1 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
fmb_check_uint -n "$N" 1 8000000
fmb_check_uint -r "$REPS" 1 1000
fmb_check_uint -p "$PRIO" 1 65535
fmb_check_uint -t "$T" 1 86400
DO_OVS=0
DO_RVS=0
IFS=, read -r -a sw_list <<< "$SWITCHES"
for s in "${sw_list[@]}"; do
    case $s in
        ovs) DO_OVS=1 ;;
        rvs) DO_RVS=1 ;;
        *) fmb_die "-s: unknown switch '$s' (ovs, rvs)" ;;
    esac
done
IFS=, read -r -a worker_list <<< "$WORKERS"
for w in "${worker_list[@]}"; do
    fmb_check_uint -w "$w" 1 8
done

fmb_need ip timeout awk ovs-ofctl
[ "$DO_OVS" = 1 ] && fmb_need ovs-vsctl ovs-vswitchd ovsdb-server ovsdb-tool
fmb_init
[ "$DO_RVS" = 1 ] && fmb_build_rvs

NS=fmb${FMB_ID}s
BR=fmb${FMB_ID}br
P1=fmb${FMB_ID}p1
P2=fmb${FMB_ID}p2
TCP=6653
OF=tcp:127.0.0.1:$TCP
FLOWS=$FMB_WORK/flows.txt
RAW=$FMB_WORK/raw.tsv
: > "$RAW"
awk -v n="$N" -v p="$PRIO" 'BEGIN {
    for (i = 0; i < n; i++)
        printf "priority=%d,ip,nw_dst=10.%d.%d.%d,actions=output:2\n", p, 128 + int(i / 65536), int(i / 256) % 256, i % 256
}' > "$FLOWS"
fmb_log "$N flows in $FLOWS ($(head -1 "$FLOWS") ...)"

# record SWITCH REP METRIC VALUE
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RAW"; }
nflows() { grep -c 'actions=' "$FMB_WORK/step.out" || true; }
ofctl_step() { # NAME ARGS...: ovs-ofctl -O OpenFlow13 inside the namespace
    local name=$1
    shift
    fmb_step "$name" "$T" ip netns exec "$NS" ovs-ofctl -O OpenFlow13 "$@"
}
expect_flows() { # WHAT EXPECTED: the flow count in step.out
    local got
    got=$(nflows)
    [ "$got" = "$2" ] || fmb_die "$1: $got flows, expected $2"
}
bpf() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# One OVS repetition.
run_ovs() {
    local rep=$1 sw=ovs base r0 r1 r2
    record $sw "$rep" idle_pct "$(fmb_wait_quiet)"
    fmb_log "rep $rep: OVS netdev"
    fmb_ns "$NS"
    ovs_start "$NS" "$FMB_WORK/ovs-$rep"
    ovs_bridge "$NS" "$BR" "$P1" "$P2" "$TCP"
    ofctl_step "OVS: dump-flows (base)" dump-flows "$OF"
    base=$(nflows)
    sleep 1
    r0=$(fmb_rss_kb "$OVSD_PID")
    ofctl_step "OVS: ovs-ofctl add-flows" "${ADD[@]}" "$OF" "$FLOWS"
    record $sw "$rep" add_ofctl_s "$STEP_S"
    local add=$STEP_S
    r1=$(fmb_rss_kb "$OVSD_PID")
    ofctl_step "OVS: ovs-ofctl dump-flows" dump-flows "$OF"
    record $sw "$rep" dump_ofctl_s "$STEP_S"
    expect_flows "OVS: dump-flows after add-flows" $((N + base))
    record $sw "$rep" rss0_kb "$r0"
    record $sw "$rep" rss1_kb "$r1"
    record $sw "$rep" bpf_ofctl "$(bpf "$r0" "$r1")"
    if [ "$DEL" = 1 ]; then
        ofctl_step "OVS: ovs-ofctl del-flows ip" del-flows "$OF" ip
        record $sw "$rep" del_ofctl_s "$STEP_S"
        ofctl_step "OVS: dump-flows after del-flows" dump-flows "$OF"
        expect_flows "OVS: dump-flows after del-flows" "$base"
        r2=$(fmb_rss_kb "$OVSD_PID")
        record $sw "$rep" rss_del_kb "$r2"
    fi
    fmb_log "  OVS: ovs-ofctl add ${add}s, RSS $(mib "$r0") -> $(mib "$r1") MiB"
    ovs_stop
    fmb_ns_del "$NS"
}

# One rvs repetition with W workers: two fresh rvsd, one per loading path.
run_rvs() {
    local rep=$1 w=$2 sw=rvs-w$2 base r0 r1 r2 dir=$FMB_WORK/rvs-$1-w$2
    record "$sw" "$rep" idle_pct "$(fmb_wait_quiet)"
    fmb_log "rep $rep: rvs, $w worker(s)"
    # 1. through OpenFlow (ovs-ofctl), as OVS.
    fmb_ns "$NS"
    rvs_start "$NS" "$dir-of" "$BR" "$P1" "$P2" "$TCP" "$w"
    ofctl_step "rvs: dump-flows (base)" dump-flows "$OF"
    base=$(nflows)
    sleep 1
    r0=$(fmb_rss_kb "$RVSD_PID")
    ofctl_step "rvs: ovs-ofctl add-flows" "${ADD[@]}" "$OF" "$FLOWS"
    record "$sw" "$rep" add_ofctl_s "$STEP_S"
    local add=$STEP_S
    r1=$(fmb_rss_kb "$RVSD_PID")
    ofctl_step "rvs: ovs-ofctl dump-flows" dump-flows "$OF"
    record "$sw" "$rep" dump_ofctl_s "$STEP_S"
    expect_flows "rvs: ovs-ofctl dump-flows after add-flows" $((N + base))
    fmb_step "rvs: rvsctl dump-flows" "$T" "$RVSCTL" --socket "$RVS_DIR/rvsd.sock" --timeout "$T" dump-flows "$BR"
    record "$sw" "$rep" dump_rvsctl_s "$STEP_S"
    expect_flows "rvs: rvsctl dump-flows after add-flows" $((N + base))
    record "$sw" "$rep" rss0_kb "$r0"
    record "$sw" "$rep" rss1_kb "$r1"
    record "$sw" "$rep" bpf_ofctl "$(bpf "$r0" "$r1")"
    if [ "$DEL" = 1 ]; then
        ofctl_step "rvs: ovs-ofctl del-flows ip" del-flows "$OF" ip
        record "$sw" "$rep" del_ofctl_s "$STEP_S"
        ofctl_step "rvs: dump-flows after del-flows" dump-flows "$OF"
        expect_flows "rvs: dump-flows after del-flows" "$base"
        r2=$(fmb_rss_kb "$RVSD_PID")
        record "$sw" "$rep" rss_del_kb "$r2"
    fi
    fmb_log "  rvs: ovs-ofctl add ${add}s, RSS $(mib "$r0") -> $(mib "$r1") MiB"
    rvs_stop
    fmb_ns_del "$NS"
    # 2. through rvsctl, on a fresh rvsd.
    fmb_ns "$NS"
    rvs_start "$NS" "$dir-ctl" "$BR" "$P1" "$P2" "$TCP" "$w"
    sleep 1
    r0=$(fmb_rss_kb "$RVSD_PID")
    fmb_step "rvs: rvsctl add-flows" "$T" "$RVSCTL" --socket "$RVS_DIR/rvsd.sock" --timeout "$T" add-flows "$BR" "$FLOWS"
    record "$sw" "$rep" add_rvsctl_s "$STEP_S"
    add=$STEP_S
    r1=$(fmb_rss_kb "$RVSD_PID")
    record "$sw" "$rep" bpf_rvsctl "$(bpf "$r0" "$r1")"
    fmb_step "rvs: rvsctl dump-flows after rvsctl add-flows" "$T" "$RVSCTL" --socket "$RVS_DIR/rvsd.sock" --timeout "$T" dump-flows "$BR"
    expect_flows "rvs: rvsctl dump-flows after rvsctl add-flows" $((N + base))
    if [ "$DEL" = 1 ]; then
        fmb_step "rvs: rvsctl del-flows ip" "$T" "$RVSCTL" --socket "$RVS_DIR/rvsd.sock" --timeout "$T" del-flows "$BR" ip
        record "$sw" "$rep" del_rvsctl_s "$STEP_S"
        fmb_step "rvs: rvsctl dump-flows after del-flows" "$T" "$RVSCTL" --socket "$RVS_DIR/rvsd.sock" --timeout "$T" dump-flows "$BR"
        expect_flows "rvs: rvsctl dump-flows after rvsctl del-flows" "$base"
    fi
    fmb_log "  rvs: rvsctl add ${add}s, RSS $(mib "$r0") -> $(mib "$r1") MiB"
    rvs_stop
    fmb_ns_del "$NS"
}

# Column order, and each repetition's order (alternating).
COLS=()
[ "$DO_OVS" = 1 ] && COLS+=(ovs)
if [ "$DO_RVS" = 1 ]; then
    for w in "${worker_list[@]}"; do COLS+=("rvs-w$w"); done
fi
run_col() {
    case $1 in
        ovs) run_ovs "$2" ;;
        rvs-w*) run_rvs "$2" "${1#rvs-w}" ;;
    esac
}
for ((rep = 1; rep <= REPS; rep++)); do
    if ((rep % 2)); then
        for c in "${COLS[@]}"; do run_col "$c" "$rep"; done
    else
        for ((i = ${#COLS[@]} - 1; i >= 0; i--)); do run_col "${COLS[i]}" "$rep"; done
    fi
done

# ---- report ------------------------------------------------------------------
label() {
    case $1 in
        ovs) echo "OVS $(ovs-vswitchd --version | awk 'NR == 1 { print $NF }') netdev" ;;
        rvs-w1) echo "rvs (1 worker)" ;;
        rvs-w*) echo "rvs (${1#rvs-w} workers)" ;;
    esac
}
vals() { awk -F'\t' -v s="$1" -v m="$2" '$1 == s && $3 == m { print $4 }' "$RAW"; }
cell() { # SWITCH METRIC [FORMAT] [DIVISOR]
    local v
    v=$(vals "$1" "$2")
    [ -n "$v" ] || { echo "–"; return; }
    awk -v d="${4:-1}" '{ print $1 / d }' <<< "$v" | fmb_minmedmax "${3:-%.3f}"
}
rate_cell() { # SWITCH METRIC: flows per second
    local v
    v=$(vals "$1" "$2")
    [ -n "$v" ] || { echo "–"; return; }
    awk -v n="$N" '{ r = 0; if ($1 > 0) r = n / $1; print r }' <<< "$v" | fmb_minmedmax "%.0f"
}
row() { # LABEL FUNC METRIC [FORMAT] [DIVISOR]
    local l=$1 f=$2 c line
    shift 2
    line="| $l |"
    for c in "${COLS[@]}"; do line+=" $($f "$c" "$@") |"; done
    echo "$line"
}
# shellcheck disable=SC2016 # the backquotes are markdown
table() {
    local head="| $N flows, $REPS rep(s): min / median / max |" sep="|---|" c
    for c in "${COLS[@]}"; do
        head+=" $(label "$c") |"
        sep+="---|"
    done
    echo "$head"
    echo "$sep"
    row '`ovs-ofctl add-flows` s' cell add_ofctl_s
    row 'flows/s through `ovs-ofctl`' rate_cell add_ofctl_s
    row '`rvsctl add-flows` s' cell add_rvsctl_s
    row 'flows/s through `rvsctl`' rate_cell add_rvsctl_s
    row '`ovs-ofctl dump-flows` s' cell dump_ofctl_s
    row '`rvsctl dump-flows` s' cell dump_rvsctl_s
    if [ "$DEL" = 1 ]; then
        row '`ovs-ofctl del-flows ip` s' cell del_ofctl_s
        row '`rvsctl del-flows ip` s' cell del_rvsctl_s
    fi
    row 'VmRSS before, MiB' cell rss0_kb "%.1f" 1024
    row 'VmRSS after `ovs-ofctl add-flows`, MiB' cell rss1_kb "%.1f" 1024
    [ "$DEL" = 1 ] && row 'VmRSS after `del-flows`, MiB' cell rss_del_kb "%.1f" 1024
    row 'bytes per flow (`ovs-ofctl add-flows`)' cell bpf_ofctl "%.0f"
    row 'bytes per flow (`rvsctl add-flows`)' cell bpf_rvsctl "%.0f"
    row 'machine idle % before' cell idle_pct "%.0f"
}
echo
table
if [ "$OUT" = 1 ]; then
    mkdir -p "$FMB_ROOT/benches/results"
    f=$FMB_ROOT/benches/results/flowmod-$(date +%F).md
    [ -e "$f" ] && f=$FMB_ROOT/benches/results/flowmod-$(date +%F-%H%M%S).md
    {
        echo "# benches/flowmod.sh -n $N -r $REPS -w $WORKERS -s $SWITCHES -p $PRIO"
        echo
        fmb_env_md
        echo "- /tmp (rvsd state dir): $(df -T /tmp | awk 'NR == 2 { print $2 }')"
        echo "- flow file: \`$(head -1 "$FLOWS")\` ... (N distinct /32)"
        echo
        table
        echo
        echo "Raw (switch, repetition, metric, value; times in s, RSS in KiB):"
        echo
        echo '```'
        cat "$RAW"
        echo '```'
    } > "$f"
    fmb_log "wrote $f"
fi
