#!/usr/bin/env bash
# Soak and fault injection: traffic between namespace pairs through rvsd for
# a long time while its configuration churns and it is killed with SIGKILL
# and restarted; counts probe loss, checks the restored state after every
# kill and watches rvsd's memory.
#
# Usage (root):
#   benches/soak.sh [-d SECS] [-p PAIRS] [-c CHURN] [-K KILL_S] [-R RATE]
#                   [-W WINDOW] [-C CHURN_S] [-u WARMUP_S] [-i PROBE_MS]
#                   [-w WORKERS] [-o] [-l LABEL] [-k]
#     -d SECS      length of the run (default 1800)
#     -p PAIRS     host pairs (default 8)
#     -c CHURN     of which churn pairs, the last CHURN (default 3; the
#                  others are stable: their config is never touched)
#     -K KILL_S    kill -9 and restart rvsd every KILL_S seconds (default
#                  180; 0: never)
#     -R RATE      controller flow adds per second, each deleted again
#                  WINDOW adds later: RATE adds + RATE deletes/s (default 1000)
#     -W WINDOW    controller flows alive at once (default 1000)
#     -C CHURN_S   one churn step every CHURN_S seconds (default 10)
#     -u WARMUP_S  RSS growth is measured from this point on (default 180)
#     -i PROBE_MS  probe interval per pair, milliseconds (default 10)
#     -w WORKERS   rvsd --workers (default 1)
#     -o           also write the summary and the run's records to
#                  benches/results/soak-<date>[-LABEL].md
#     -l LABEL     name the run in that file (e.g. validation)
#     -k           keep the scratch directory (/tmp/fmb.*)
#   e.g. benches/soak.sh -o                    (the 30-minute soak)
#        benches/soak.sh -d 240 -K 60 -u 60 -o -l validation   (short)
#
# Topology: rvsd runs in namespace sk<ID>s on a fresh state directory (one
# bridge sk<ID>br, controller ptcp:6653 on 127.0.0.1 in that namespace,
# table 0 = priority=0,actions=NORMAL). Pair i has two host namespaces
# sk<ID>a<i>, sk<ID>b<i> (10.80.i.1/24, 10.80.i.2/24), each on a veth pair
# whose other end, sk<ID>p<i>a / sk<ID>p<i>b in sk<ID>s, is a system port in
# VLAN 100+i (access), ofports 2i-1 and 2i. Every pair carries a one-way
# benches/udp_probe.py stream a -> b (one datagram every PROBE_MS, sequence
# numbers and send times), for the whole run.
#
# Churn (one step every CHURN_S, round robin over the churn pairs; never on
# a stable pair): churn pairs alternate between two kinds,
#   port    its b port is deleted (del-port) and, next time, added again
#   netdev  its b veth pair is deleted (the port must go down, `show`
#           saying why) and, next time, created again (the port must come
#           back up and the pair forward again)
# and every step also adds one flow in table 20 with `rvsctl add-flow`
# (deleting, with --strict, the one added 20 steps before) and every third
# step flips the bridge's mac-aging-time between 300 and 299.
# A controller (benches/flowmod_load.py, OpenFlow 1.3) connects, adds RATE
# flows/s and deletes as many in tables 1-2 for 20 s, deletes its flows,
# disconnects, and 5 s later connects again.
#
# Kills: every KILL_S (+- 25 %, random), at a point where no rvsctl command is running (the
# churn runs in this script's main loop), the script records `rvsctl
# export` and `dump-flows` (the last acknowledged state: every rvsctl
# command before it returned 0), kills rvsd with SIGKILL, restarts it on the
# same state directory and checks the restored state with
# benches/soak_check.py (exactly what is compared is in its header; in
# short: export and dump-flows equal outside the controller's tables, the
# script's model of ports, table-20 flows and aging time, and in the
# controller's tables a prefix of its flow mods holding every one that a
# BARRIER_REPLY acknowledged). The restart window runs from the kill until
# every stable pair pings again; probes lost inside a window are counted
# apart and are not failures.
#
# RSS (VmRSS) of rvsd is sampled every 5 s and right after each controller
# session that ended cleanly ("quiet" samples: the controller's tables are
# empty, so the flow table is the same size each time). Growth compares
# like with like, quiet samples only: across restarts every incarnation's
# RSS at the same age (its last quiet sample before the age the shortest
# full incarnation reached), the first incarnation that starts after
# WARMUP_S vs the last; without kills (or too few), the first quiet sample
# after WARMUP_S vs the last one. Per incarnation: its first quiet sample
# after a third of the kill interval (at most 60 s) vs its last.
#
# Targets (PASS/FAIL, exit 1 on FAIL): zero probes lost on stable pairs
# outside restart windows, every restore check and churn check passed, no
# OFPT_ERROR, RSS growth < 5 %.
# Every process is bounded by `timeout`; only processes started here are
# stopped (by PID); everything is cleaned up on exit, failure or Ctrl-C.
# Needs: iproute2 iputils-ping python3 (3.11+), Rust.
set -euo pipefail
FMB_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/flowmod-common.sh
. "$FMB_ROOT/benches/flowmod-common.sh"

DUR=1800
PAIRS=8
NCHURN=3
KILL_S=180
RATE=1000
WINDOW=1000
CHURN_S=10
WARMUP=180
PROBE_MS=10
WORKERS=1
OUT=0
LABEL=""
PY=${PYTHON:-python3}
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "d:p:c:K:R:W:C:u:i:w:ol:kh" o; do
    case $o in
        d) DUR=$OPTARG ;;
        p) PAIRS=$OPTARG ;;
        c) NCHURN=$OPTARG ;;
        K) KILL_S=$OPTARG ;;
        R) RATE=$OPTARG ;;
        W) WINDOW=$OPTARG ;;
        C) CHURN_S=$OPTARG ;;
        u) WARMUP=$OPTARG ;;
        i) PROBE_MS=$OPTARG ;;
        w) WORKERS=$OPTARG ;;
        o) OUT=1 ;;
        l) LABEL=$OPTARG ;;
        k) FMB_KEEP=1 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
fmb_check_uint -d "$DUR" 30 86400
fmb_check_uint -p "$PAIRS" 2 32
fmb_check_uint -c "$NCHURN" 1 $((PAIRS - 1))
fmb_check_uint -K "$KILL_S" 0 86400
[ "$KILL_S" = 0 ] || fmb_check_uint -K "$KILL_S" 20 86400
fmb_check_uint -R "$RATE" 1 100000
fmb_check_uint -W "$WINDOW" 1 100000
fmb_check_uint -C "$CHURN_S" 1 3600
fmb_check_uint -u "$WARMUP" 0 86400
fmb_check_uint -i "$PROBE_MS" 1 1000
fmb_check_uint -w "$WORKERS" 1 8
[[ $LABEL =~ ^[a-z0-9-]*$ ]] || fmb_die "-l $LABEL: lower-case letters, digits and - only"

fmb_need ip timeout awk ping "$PY"
"$PY" -c 'import tomllib' 2>/dev/null || fmb_die "$PY has no tomllib (needs Python 3.11+)"
fmb_init
fmb_build_rvs

P=sk${FMB_ID}
NS_SW=${P}s
BR=${P}br
TCP=6653
CTL_TABLES=1,2
CTL_ON=20
CTL_OFF=5
RSS_EVERY=5
GAP_MS=50
W=$FMB_WORK
RVS_DIR=$W/rvs
mkdir -p "$RVS_DIR"
: > "$W/checks.tsv"
: > "$W/windows.tsv"
: > "$W/rss.tsv"
: > "$W/sessions.jsonl"
: > "$W/events.log"
FIRST_CHURN=$((PAIRS - NCHURN + 1))

now_ns() { local t=$EPOCHREALTIME; echo "${t/./}000"; }
T0_NS=$(now_ns)
# Seconds since the start of the run, one decimal.
t_rel() { awk -v a="$T0_NS" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
event() {
    echo "$(t_rel) $*" >> "$W/events.log"
    fmb_log "$*"
}
# check KIND PASS|FAIL DETAIL: one line of checks.tsv.
check() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$(t_rel)" "${3:-}" >> "$W/checks.tsv"
    [ "$2" = PASS ] || event "CHECK FAILED ($1): ${3:-}"
}

# rvsctl, bounded; the global flags first.
ctl() { timeout -k 2 40 "$RVSCTL" --socket "$RVS_DIR/rvsd.sock" --timeout 30 "$@"; }

# ---- pairs -----------------------------------------------------------------------

pair_kind() {
    local i=$1
    if [ "$i" -lt "$FIRST_CHURN" ]; then
        echo stable
    elif [ $(((i - FIRST_CHURN) % 2)) = 0 ]; then
        echo port
    else
        echo netdev
    fi
}
port_of() { echo "${P}p$1$2"; }   # in NS_SW: the rvs port
host_ns() { echo "${P}$2$1"; }    # sk<ID>a<i>, sk<ID>b<i>
host_dev() { echo "${P}h$1$2"; }  # the host end of the veth
host_ip() { [ "$2" = a ] && echo "10.80.$1.1" || echo "10.80.$1.2"; }
# A fixed MAC per host, so that a veth created again looks like the same
# host (as a VM's NIC does): the peers' ARP caches stay right.
host_mac() { printf '02:80:00:00:%02x:%s\n' "$1" "$([ "$2" = a ] && echo 01 || echo 02)"; }
ofport_of() { [ "$2" = a ] && echo $((2 * $1 - 1)) || echo $((2 * $1)); }

declare -A PORT_ON    # rvs port configured (model)
declare -A NETDEV_ON  # its veth exists

# veth_up I SIDE: the veth pair of pair I's host SIDE, addressed and up.
veth_up() {
    local i=$1 s=$2 port ns dev
    port=$(port_of "$i" "$s")
    ns=$(host_ns "$i" "$s")
    dev=$(host_dev "$i" "$s")
    ip -n "$NS_SW" link add "$port" type veth peer name "$dev" netns "$ns"
    ip -n "$NS_SW" link set "$port" up
    ip -n "$ns" link set "$dev" address "$(host_mac "$i" "$s")"
    ip -n "$ns" addr add "$(host_ip "$i" "$s")/24" dev "$dev"
    ip -n "$ns" link set "$dev" up
    NETDEV_ON[$port]=1
}

port_add() {
    local i=$1 s=$2 port
    port=$(port_of "$i" "$s")
    ctl add-port "$BR" "$port" "tag=$((100 + i))" "ofport_request=$(ofport_of "$i" "$s")" > /dev/null
    PORT_ON[$port]=1
}

pair_ping() {
    timeout 5 ip netns exec "$(host_ns "$1" a)" ping -n -c 1 -W 1 "$(host_ip "$1" b)" > /dev/null 2>&1
}

# wait_pair_ping I SECS: true once pair I forwards (ping a -> b).
wait_pair_ping() {
    local end=$((SECONDS + $2))
    while [ "$SECONDS" -lt "$end" ]; do
        pair_ping "$1" && return 0
        sleep 0.2
    done
    return 1
}

# port_up PORT: prints true/false/absent from `show --format json`.
port_state() {
    ctl --format json show 2>/dev/null | "$PY" -c '
import json, sys
port = sys.argv[1]
for b in json.load(sys.stdin)["bridges"]:
    for p in b["ports"]:
        if p["name"] == port:
            print("up" if p["up"] else "down:%s" % (p.get("down_reason") or ""))
            sys.exit(0)
print("absent")' "$1"
}

# wait_port_state PORT WANT(up|down) SECS
wait_port_state() {
    local end=$((SECONDS + $3)) st=""
    while [ "$SECONDS" -lt "$end" ]; do
        st=$(port_state "$1")
        [ "${st%%:*}" = "$2" ] && { PORT_STATE=$st; return 0; }
        sleep 0.2
    done
    PORT_STATE=$st
    return 1
}

# ---- rvsd ------------------------------------------------------------------------

INCARNATION=0
INC_T0=0
soak_rvsd_start() {
    echo "# soak: no bridges at first, the script makes them" > "$RVS_DIR/empty.toml"
    ip netns exec "$NS_SW" "$RVSD" --foreground --config "$RVS_DIR/empty.toml" \
        --state-dir "$RVS_DIR/state" --socket "$RVS_DIR/rvsd.sock" --log-level warn \
        --workers "$WORKERS" >> "$RVS_DIR/rvsd.log" 2>&1 &
    RVSD_PID=$!
    fmb_track "$RVSD_PID"
    INCARNATION=$((INCARNATION + 1))
    INC_T0=$SECONDS
    FMB_HINT="rvsd log: $RVS_DIR/rvsd.log"
    fmb_wait_for 60 "rvsd control socket" ctl list-br
    kill -0 "$RVSD_PID" 2>/dev/null || fmb_die "rvsd exited: $(tail -5 "$RVS_DIR/rvsd.log")"
}

# sample_rss [QUIET]: QUIET=1 when taken right after a controller session
# ended cleanly (its tables empty): the samples compared across the run.
# Quiet samples also record what rvsd holds through its allocator and what
# the allocator has committed (`rvsctl memory-show`, KiB; -1 unknown), so a
# leak (held grows) can be told from allocator retention (only committed
# or RSS grows).
sample_rss() {
    local kb held=-1 committed=-1 mem
    kb=$(fmb_rss_kb "$RVSD_PID" 2>/dev/null) || return 0
    [ -n "$kb" ] || return 0
    if [ "${1:-0}" = 1 ] && mem=$(ctl --format json memory-show 2>/dev/null); then
        read -r held committed < <(python3 -c '
import json, sys
m = json.load(sys.stdin).get("memory", {})
k = lambda v: -1 if v is None else v // 1024
print(k(m.get("allocated_bytes")), k(m.get("committed_bytes")))' <<<"$mem") || true
    fi
    echo "$(t_rel) $INCARNATION $((SECONDS - INC_T0)) $kb ${1:-0} $held $committed" >> "$W/rss.tsv"
}

# ---- the controller ----------------------------------------------------------------

CTL_PID=""
CTL_N=0
CTL_OUT=""
CTL_NEXT=0
ctl_start() {
    CTL_N=$((CTL_N + 1))
    CTL_OUT=$W/ctl-$CTL_N.json
    timeout -k 5 $((CTL_ON + 90)) ip netns exec "$NS_SW" "$PY" "$FMB_ROOT/benches/flowmod_load.py" \
        --port "$TCP" --rate "$RATE" --window "$WINDOW" --tables 2 --duration "$CTL_ON" \
        --stall-timeout 30 --out "$CTL_OUT" > "$W/ctl-$CTL_N.out" 2> "$W/ctl-$CTL_N.err" < /dev/null &
    CTL_PID=$!
    fmb_track "$CTL_PID"
}
# ctl_reap [EXPECT_LOST]: wait for the session (it has ended or is ending);
# appends its summary to sessions.jsonl. A session cut by a kill (1) must
# say "connection lost"; any other must end cleanly.
ctl_reap() {
    local rc=0 lost=${1:-0}
    wait "$CTL_PID" || rc=$?
    fmb_untrack "$CTL_PID"
    CTL_PID=""
    CTL_NEXT=$((SECONDS + CTL_OFF))
    if [ ! -s "$CTL_OUT" ]; then
        check controller FAIL "session $CTL_N: no summary (exit $rc): $(tail -2 "$W/ctl-$CTL_N.err")"
        return 0
    fi
    cat "$CTL_OUT" >> "$W/sessions.jsonl"
    if [ "$lost" = 1 ]; then
        return 0
    fi
    if [ "$rc" = 0 ] && ! grep -q '"fatal"\|"cleanup"' "$CTL_OUT"; then
        check controller PASS "session $CTL_N"
        sample_rss 1
    else
        check controller FAIL "session $CTL_N exit $rc: $(head -c 300 "$CTL_OUT")"
    fi
}
ctl_running() { [ -n "$CTL_PID" ] && [ ! -s "$CTL_OUT" ] && kill -0 "$CTL_PID" 2>/dev/null; }

# ---- churn ---------------------------------------------------------------------------

CHURN_I=0
T20_NEXT=0
T20=()        # cookies of the table-20 flows, oldest first
AGING=300
t20_flow() { echo "table=20,priority=10,cookie=$1,udp,tp_dst=$((1 + $1 % 65000))"; }

churn_step() {
    local i s=b port ns kind
    i=$((FIRST_CHURN + CHURN_I % NCHURN))
    CHURN_I=$((CHURN_I + 1))
    kind=$(pair_kind "$i")
    port=$(port_of "$i" "$s")
    ns=$(host_ns "$i" "$s")
    case $kind in
        port)
            if [ "${PORT_ON[$port]}" = 1 ]; then
                ctl del-port "$BR" "$port" > /dev/null
                PORT_ON[$port]=0
                event "churn: del-port $port"
            else
                port_add "$i" "$s"
                if wait_pair_ping "$i" 15; then
                    check churn PASS "add-port $port: pair $i forwards"
                else
                    check churn FAIL "add-port $port: pair $i does not forward"
                fi
                event "churn: add-port $port"
            fi
            ;;
        netdev)
            if [ "${NETDEV_ON[$port]}" = 1 ]; then
                ip -n "$NS_SW" link del "$port"
                NETDEV_ON[$port]=0
                if wait_port_state "$port" down 10; then
                    check churn PASS "netdev $port deleted: port $PORT_STATE"
                else
                    check churn FAIL "netdev $port deleted: port still $PORT_STATE"
                fi
                event "churn: netdev $port deleted"
            else
                veth_up "$i" "$s"
                if wait_port_state "$port" up 10 && wait_pair_ping "$i" 15; then
                    check churn PASS "netdev $port back: port up, pair $i forwards"
                else
                    check churn FAIL "netdev $port back: port $PORT_STATE, pair $i forwarding: $(pair_ping "$i" && echo yes || echo no)"
                fi
                event "churn: netdev $port created again"
            fi
            ;;
    esac
    ctl add-flow "$BR" "$(t20_flow "$T20_NEXT"),actions=drop" > /dev/null
    T20+=("$T20_NEXT")
    T20_NEXT=$((T20_NEXT + 1))
    if [ "${#T20[@]}" -gt 20 ]; then
        ctl del-flows "$BR" "$(t20_flow "${T20[0]}")" --strict > /dev/null
        T20=("${T20[@]:1}")
    fi
    if [ $((CHURN_I % 3)) = 0 ]; then
        AGING=$((AGING == 300 ? 299 : 300))
        ctl set bridge "$BR" "mac-aging-time=$AGING" > /dev/null
    fi
}

# ---- kill -9, restart, check -------------------------------------------------------------

KILLS=0
kill_restart() {
    local k=$((KILLS + 1)) d=$W/kill-$((KILLS + 1)) t_kill t_back i ports="" p ctlres=() had_ctl=0 out rc
    mkdir -p "$d"
    ctl export > "$d/before.toml"
    ctl --format json dump-flows "$BR" > "$d/before-flows.json"
    for p in "${!PORT_ON[@]}"; do
        [ "${PORT_ON[$p]}" = 1 ] && ports+="$p,"
    done
    t_kill=$(now_ns)
    kill -KILL "$RVSD_PID"
    wait "$RVSD_PID" 2>/dev/null || true
    fmb_untrack "$RVSD_PID"
    KILLS=$k
    event "kill -9 #$k (pid $RVSD_PID, incarnation $INCARNATION)"
    if [ -n "$CTL_PID" ]; then
        had_ctl=1
        ctl_reap 1
        ctlres=(--ctl-result "$CTL_OUT")
    fi
    soak_rvsd_start
    for ((i = 1; i < FIRST_CHURN; i++)); do
        wait_pair_ping "$i" 60 || check restore FAIL "kill $k: stable pair $i does not forward 60 s after the restart"
    done
    t_back=$(now_ns)
    echo "$t_kill $t_back" >> "$W/windows.tsv"
    event "rvsd back (forwarding on all stable pairs) after $(awk -v a="$t_kill" -v b="$t_back" 'BEGIN { printf "%.2f", (b - a) / 1e9 }') s"
    ctl export > "$d/after.toml"
    ctl --format json dump-flows "$BR" > "$d/after-flows.json"
    rc=0
    out=$("$PY" "$FMB_ROOT/benches/soak_check.py" restore --before-export "$d/before.toml" \
        --after-export "$d/after.toml" --before-flows "$d/before-flows.json" \
        --after-flows "$d/after-flows.json" --ctl-tables "$CTL_TABLES" "${ctlres[@]}" \
        --ports "$ports" --table20 "$(IFS=,; echo "${T20[*]}")" --aging "$AGING" 2>&1) || rc=$?
    if [ "$rc" = 0 ]; then
        check restore PASS "kill $k (controller session at the kill: $had_ctl)"
    else
        check restore FAIL "kill $k: $(echo "$out" | tr '\n' ' ' | head -c 1500)"
    fi
    # Ports whose netdev is gone must be down again after the restore.
    for p in "${!NETDEV_ON[@]}"; do
        if [ "${NETDEV_ON[$p]}" = 0 ] && [ "${PORT_ON[$p]:-1}" = 1 ]; then
            if wait_port_state "$p" down 5; then
                check restore PASS "kill $k: $p (netdev missing) restored down: $PORT_STATE"
            else
                check restore FAIL "kill $k: $p (netdev missing) is $PORT_STATE after the restore"
            fi
        fi
    done
    # The controller's leftovers go, so that its next session starts empty.
    for i in ${CTL_TABLES//,/ }; do
        ctl del-flows "$BR" "table=$i" > /dev/null
    done
}

# ---- set up --------------------------------------------------------------------------------

fmb_ns "$NS_SW"
for ((i = 1; i <= PAIRS; i++)); do
    fmb_ns "$(host_ns "$i" a)"
    fmb_ns "$(host_ns "$i" b)"
    veth_up "$i" a
    veth_up "$i" b
done
soak_rvsd_start
ctl add-br "$BR" > /dev/null
ctl set-controller "$BR" "ptcp:$TCP" > /dev/null
for ((i = 1; i <= PAIRS; i++)); do
    port_add "$i" a
    port_add "$i" b
done
for ((i = 1; i <= PAIRS; i++)); do
    wait_pair_ping "$i" 30 || fmb_die "pair $i: no ping $(host_ip "$i" a) -> $(host_ip "$i" b) through rvsd"
done
fmb_wait_for 20 "OpenFlow listener 127.0.0.1:$TCP" \
    ip netns exec "$NS_SW" "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $TCP), 2).close()"
fmb_log "topology up: $PAIRS pairs ($((FIRST_CHURN - 1)) stable), rvsd pid $RVSD_PID; ${DUR}s"

{
    echo "{\"duration_s\": $DUR, \"probe_ms\": $PROBE_MS, \"warmup_s\": $WARMUP, \"kill_s\": $KILL_S,"
    echo " \"inc_warmup_s\": $((KILL_S > 0 && KILL_S / 3 < 60 ? KILL_S / 3 : 60)), \"rss_every_s\": $RSS_EVERY,"
    echo " \"gap_ms\": $GAP_MS, \"rate\": $RATE, \"window\": $WINDOW, \"pairs\": ["
    for ((i = 1; i <= PAIRS; i++)); do
        echo "  {\"pair\": $i, \"kind\": \"$(pair_kind "$i")\"}$([ "$i" -lt "$PAIRS" ] && echo ,)"
    done
    echo "]}"
} > "$W/config.json"

# Probes: receivers first, then senders; they run the whole time.
PROBES=()
for ((i = 1; i <= PAIRS; i++)); do
    timeout -k 5 $((DUR + 60)) ip netns exec "$(host_ns "$i" b)" "$PY" "$FMB_ROOT/benches/udp_probe.py" recv \
        --bind "$(host_ip "$i" b)" --duration $((DUR + 40)) --out "$W/probe-$i.json" \
        --loss-out "$W/loss-$i.jsonl" --gap-ms "$GAP_MS" > "$W/recv-$i.out" 2> "$W/recv-$i.err" < /dev/null &
    fmb_track $!
    PROBES+=($!)
done
sleep 1
for ((i = 1; i <= PAIRS; i++)); do
    timeout -k 5 $((DUR + 30)) ip netns exec "$(host_ns "$i" a)" "$PY" "$FMB_ROOT/benches/udp_probe.py" send \
        --dst "$(host_ip "$i" b)" --duration "$DUR" --interval-us $((PROBE_MS * 1000)) \
        > "$W/send-$i.out" 2> "$W/send-$i.err" < /dev/null &
    fmb_track $!
    PROBES+=($!)
done

# ---- main loop -----------------------------------------------------------------------------

CPU0=$(awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
START=$SECONDS
END=$((START + DUR))
# Kills come every KILL_S +- 25 % (random), so that they land at every
# point of the churn cycle (a port deleted, a netdev missing, ...).
next_kill() {
    if [ "$KILL_S" = 0 ]; then
        NEXT_KILL=$((END + 1))
    else
        NEXT_KILL=$((SECONDS + KILL_S * 3 / 4 + RANDOM % (KILL_S / 2 + 1)))
    fi
}
next_kill
NEXT_CHURN=$((START + CHURN_S))
NEXT_RSS=$START
CTL_NEXT=$((START + 2))
while [ "$SECONDS" -lt "$END" ]; do
    now=$SECONDS
    if [ "$now" -ge "$NEXT_RSS" ]; then
        sample_rss
        NEXT_RSS=$((now + RSS_EVERY))
    fi
    if [ -n "$CTL_PID" ] && ! ctl_running; then
        ctl_reap
    fi
    if [ -z "$CTL_PID" ] && [ "$now" -ge "$CTL_NEXT" ] && [ $((END - now)) -gt $((CTL_ON + 10)) ]; then
        ctl_start
    fi
    # No kill in the last 30 s: the probes' last window must close in time.
    if [ "$now" -ge "$NEXT_KILL" ] && [ $((END - now)) -gt 30 ]; then
        kill_restart
        next_kill
        NEXT_RSS=$SECONDS
    fi
    if [ "$now" -ge "$NEXT_CHURN" ]; then
        churn_step
        NEXT_CHURN=$((SECONDS + CHURN_S))
    fi
    sleep 0.5
done
sample_rss
CPU1=$(awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
awk -v a="$CPU0" -v b="$CPU1" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[1] - x[1];
    printf "%d\n", (t > 0) ? 100 * (y[2] - x[2]) / t : 100 }' > "$W/idle.txt"
[ -n "$CTL_PID" ] && ctl_reap
fmb_log "run over; waiting for the probes"
rc_probes=0
for p in "${PROBES[@]}"; do
    wait "$p" || rc_probes=$?
    fmb_untrack "$p"
done
[ "$rc_probes" = 0 ] || event "a probe process exited with $rc_probes (see $W/recv-*.err, send-*.err)"
ctl export > "$W/final.toml"
kill -0 "$RVSD_PID" 2>/dev/null || check restore FAIL "rvsd not running at the end: $(tail -3 "$RVS_DIR/rvsd.log")"
rvs_stop
grep -E -i 'panic|error' "$RVS_DIR/rvsd.log" | head -20 > "$W/rvsd-errors.txt" || true

# ---- report -------------------------------------------------------------------------------------
rc=0
"$PY" "$FMB_ROOT/benches/soak_check.py" report --dir "$W" > "$W/summary.md" || rc=$?
echo
cat "$W/summary.md"
if [ "$OUT" = 1 ]; then
    mkdir -p "$FMB_ROOT/benches/results"
    f=$FMB_ROOT/benches/results/soak-$(date +%F)${LABEL:+-$LABEL}.md
    [ -e "$f" ] && f=$FMB_ROOT/benches/results/soak-$(date +%F-%H%M%S)${LABEL:+-$LABEL}.md
    {
        echo "# benches/soak.sh -d $DUR -p $PAIRS -c $NCHURN -K $KILL_S -R $RATE -W $WINDOW -C $CHURN_S -u $WARMUP -i $PROBE_MS -w $WORKERS${LABEL:+ ($LABEL run)}"
        echo
        fmb_env_md | grep -v '^- OVS'
        echo
        cat "$W/summary.md"
        echo
        echo "Events (seconds since the start):"
        echo
        echo '```'
        cat "$W/events.log"
        echo '```'
        echo
        echo "Checks:"
        echo
        echo '```'
        cat "$W/checks.tsv"
        echo '```'
        if [ -s "$W/rvsd-errors.txt" ]; then
            echo
            echo "rvsd log lines with 'error' or 'panic' (first 20):"
            echo
            echo '```'
            cat "$W/rvsd-errors.txt"
            echo '```'
        fi
    } > "$f"
    fmb_log "wrote $f"
fi
exit "$rc"
