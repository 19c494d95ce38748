# Shared helpers of benches/flowmod.sh and benches/flowmod-stall.sh (sourced,
# not run). Everything made here is named fmb<ID>* (ID = the script's PID):
# network namespaces, TAPs, a scratch directory /tmp/fmb.XXXXXX. The switches
# run inside their own namespace, so OVS never sees a kernel datapath, the
# TAPs die with the namespace and OpenFlow listeners on 127.0.0.1 are private.
# Only processes started here are stopped, by PID (checked against the start
# time recorded when they were started), on exit, failure or Ctrl-C.
#
# Needs: FMB_ROOT (project root) set by the caller.
# shellcheck shell=bash

# shellcheck disable=SC2034 # FMB_ID, STEP_S and others are the callers'
export LC_ALL=C                      # EPOCHREALTIME and printf with a '.'
FMB_ID=$$
FMB_WORK=""
FMB_KEEP=${FMB_KEEP:-0}              # 1: keep the scratch directory
FMB_PIDS=()                          # "pid starttime" of what we started
FMB_NETNS=()                         # namespaces we created
FMB_STEP_PID=""                      # the step running in the background
FMB_CLEANED=0

fmb_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
fmb_die() {
    echo "$(basename "$0"): FAILED: $*" >&2
    exit 1
}

fmb_need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || fmb_die "missing command '$c' (apt-get install -y openvswitch-switch openvswitch-common iperf3 iproute2 iputils-ping)"
    done
}

# fmb_check_uint OPTION VALUE MIN MAX
fmb_check_uint() {
    [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] && return 0
    fmb_die "$1 $2: expected an integer $3..$4"
}

# Start time (clock ticks since boot) of a PID: guards against PID reuse.
fmb_pid_start() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

fmb_track() { FMB_PIDS+=("$1 $(fmb_pid_start "$1")"); }

# Forget a tracked PID (a job that has been waited for).
fmb_untrack() {
    local i
    for i in "${!FMB_PIDS[@]}"; do
        [ "${FMB_PIDS[i]%% *}" = "$1" ] && unset 'FMB_PIDS[i]'
    done
    FMB_PIDS=("${FMB_PIDS[@]}")
}

# Stop a PID we started: TERM, up to 5 s, then KILL. Skips a reused PID.
fmb_kill() {
    local pid=$1 st=${2:-} i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    if [ -n "$st" ] && [ "$(fmb_pid_start "$pid")" != "$st" ]; then
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 0
}

# Stop every tracked PID, newest first, and forget them.
fmb_kill_all() {
    local i e
    for ((i = ${#FMB_PIDS[@]} - 1; i >= 0; i--)); do
        e=${FMB_PIDS[i]}
        # shellcheck disable=SC2086 # "pid starttime"
        fmb_kill ${e}
    done
    FMB_PIDS=()
}

fmb_cleanup() {
    local rc=$? ns
    [ "$FMB_CLEANED" = 1 ] && return 0
    FMB_CLEANED=1
    trap - INT TERM
    [ -n "$FMB_STEP_PID" ] && fmb_kill "$FMB_STEP_PID"
    fmb_kill_all
    for ns in "${FMB_NETNS[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ -n "$FMB_WORK" ] && [ -d "$FMB_WORK" ]; then
        # kept after a failure (logs), not after Ctrl-C (130) or success
        if [ "$FMB_KEEP" = 1 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ]; }; then
            echo "$(basename "$0"): scratch files kept in $FMB_WORK" >&2
        else
            rm -rf "$FMB_WORK"
        fi
    fi
    return "$rc"
}

fmb_init() {
    [ "$(id -u)" = 0 ] || fmb_die "needs root (network namespaces, TAPs)"
    FMB_WORK=$(mktemp -d /tmp/fmb.XXXXXX)
    trap fmb_cleanup EXIT
    trap 'echo "$(basename "$0"): interrupted" >&2; exit 130' INT TERM
}

# fmb_ns NAME: a new namespace with lo up and IPv6 off (no DAD/RA noise).
fmb_ns() {
    ip netns add "$1"
    FMB_NETNS+=("$1")
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

fmb_ns_del() {
    local ns=$1 i
    ip netns del "$ns" 2>/dev/null || true
    for i in "${!FMB_NETNS[@]}"; do
        [ "${FMB_NETNS[i]}" = "$ns" ] && unset 'FMB_NETNS[i]'
    done
    FMB_NETNS=("${FMB_NETNS[@]}")
}

# fmb_step NAME SECS CMD...: run CMD bounded by SECS, stdout to
# $FMB_WORK/step.out, stderr to step.err; sets STEP_S to the wall time in
# seconds. Runs in the background and waits, so Ctrl-C is handled at once.
# On failure or timeout: says which step and shows the end of its stderr.
STEP_S=0
fmb_step() {
    local name=$1 secs=$2 t0 t1 rc=0
    shift 2
    t0=$EPOCHREALTIME
    timeout -k 5 "$secs" "$@" > "$FMB_WORK/step.out" 2> "$FMB_WORK/step.err" < /dev/null &
    FMB_STEP_PID=$!
    wait "$FMB_STEP_PID" || rc=$?
    FMB_STEP_PID=""
    t1=$EPOCHREALTIME
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        fmb_die "$name: timed out after ${secs}s ($*)${FMB_HINT:+; $FMB_HINT}"
    elif [ "$rc" != 0 ]; then
        fmb_die "$name: exit $rc ($*): $(tail -5 "$FMB_WORK/step.err")${FMB_HINT:+; $FMB_HINT}"
    fi
    STEP_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}

# fmb_wait_for SECS WHAT CMD...: poll CMD every 0.1 s until it succeeds.
fmb_wait_for() {
    local secs=$1 what=$2 end=$((SECONDS + $1))
    shift 2
    while [ "$SECONDS" -lt "$end" ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fmb_die "$what: not ready after ${secs}s${FMB_HINT:+; $FMB_HINT}"
}

# fmb_wait_quiet: wait (at most FMB_QUIET_MAX s, default 30) until the
# machine is at least FMB_QUIET_IDLE % idle (default 80) over one second, as
# it may be shared; prints the idle % last seen.
fmb_wait_quiet() {
    local max=${FMB_QUIET_MAX:-30} want=${FMB_QUIET_IDLE:-80} end idle a b
    end=$((SECONDS + max))
    while :; do
        a=$(awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
        sleep 1
        b=$(awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
        idle=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[1] - x[1]; printf "%d", (t > 0) ? 100 * (y[2] - x[2]) / t : 100 }')
        if [ "$idle" -ge "$want" ] || [ "$SECONDS" -ge "$end" ]; then
            [ "$idle" -ge "$want" ] || fmb_log "warning: machine only ${idle}% idle (other load); numbers will be noisy"
            echo "$idle"
            return 0
        fi
    done
}

fmb_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# utime + stime of a process (all threads), in clock ticks.
fmb_cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# ---- rvsd ---------------------------------------------------------------------

RVSD_PID=""
RVS_DIR=""
RVSD=""
RVSCTL=""

fmb_build_rvs() {
    fmb_log "cargo build --release (rvsd, rvsctl)"
    (cd "$FMB_ROOT" && timeout 1800 cargo build --release -q --bin rvsd --bin rvsctl) ||
        fmb_die "cargo build --release failed"
    RVSD=$FMB_ROOT/target/release/rvsd
    RVSCTL=$FMB_ROOT/target/release/rvsctl
}

rvsctl() { "$RVSCTL" --socket "$RVS_DIR/rvsd.sock" "$@"; }

# rvs_start NS DIR BR PORT1 PORT2 OFPORT_TCP WORKERS: rvsd inside NS on a
# private state dir and socket, bridge BR with TAPs PORT1, PORT2 as ofports
# 1 and 2 and the flow priority=0,actions=NORMAL, listening for OpenFlow on
# 127.0.0.1:OFPORT_TCP (in NS).
rvs_start() {
    local ns=$1 br=$3 p1=$4 p2=$5 tcp=$6 workers=$7
    RVS_DIR=$2
    mkdir -p "$RVS_DIR"
    cat > "$RVS_DIR/config.toml" <<TOML
[[bridge]]
name = "$br"
[[bridge.port]]
name = "$p1"
type = "tap"
ofport = 1
[[bridge.port]]
name = "$p2"
type = "tap"
ofport = 2
TOML
    local w=()
    [ -n "$workers" ] && w=(--workers "$workers")
    ip netns exec "$ns" "$RVSD" --foreground --config "$RVS_DIR/config.toml" \
        --state-dir "$RVS_DIR/state" --socket "$RVS_DIR/rvsd.sock" --log-level warn "${w[@]}" \
        > "$RVS_DIR/rvsd.log" 2>&1 &
    RVSD_PID=$!
    fmb_track "$RVSD_PID"
    FMB_HINT="rvsd log: $RVS_DIR/rvsd.log"
    fmb_wait_for 20 "rvsd control socket" rvsctl list-br
    kill -0 "$RVSD_PID" 2>/dev/null || fmb_die "rvsd exited: $(tail -5 "$RVS_DIR/rvsd.log")"
    fmb_step "rvsctl set-controller" 30 "$RVSCTL" --socket "$RVS_DIR/rvsd.sock" set-controller "$br" "ptcp:$tcp"
    fmb_wait_for 20 "rvsd OpenFlow listener on 127.0.0.1:$tcp" \
        ip netns exec "$ns" ovs-ofctl -O OpenFlow13 --timeout=2 show "tcp:127.0.0.1:$tcp"
}

rvs_stop() {
    [ -n "$RVSD_PID" ] || return 0
    fmb_kill "$RVSD_PID"
    fmb_untrack "$RVSD_PID"
    RVSD_PID=""
    FMB_HINT=""
}

# ---- Open vSwitch (private, netdev datapath) -----------------------------------

OVSD_PID=""       # ovs-vswitchd
OVSDB_PID=""      # ovsdb-server
OVS_DIR=""

ovs_env() {
    env OVS_RUNDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" OVS_SYSCONFDIR="$OVS_DIR" "$@"
}
vsctl() { ovs_env ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=30 "$@"; }

# ovs_start NS DIR [TSO]: ovsdb-server and ovs-vswitchd in the foreground of
# background jobs (their PIDs are ours), everything under DIR, vswitchd
# inside NS. TSO=1 sets other_config:userspace-tso-enable before vswitchd starts.
ovs_start() {
    local ns=$1 tso=${3:-0}
    OVS_DIR=$2
    mkdir -p "$OVS_DIR"
    FMB_HINT="OVS logs: $OVS_DIR/*.log"
    ovsdb-tool create "$OVS_DIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema > /dev/null
    # A plain command (not a shell function) in the background, so that $!
    # is ovsdb-server itself (env execs it) and not a subshell around it.
    env OVS_RUNDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" OVS_SYSCONFDIR="$OVS_DIR" \
        ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" \
        --unixctl="$OVS_DIR/ovsdb-server.ctl" --pidfile="$OVS_DIR/ovsdb-server.pid" \
        --log-file="$OVS_DIR/ovsdb-server.log" -vconsole:off --no-chdir \
        > "$OVS_DIR/ovsdb-server.out" 2>&1 &
    OVSDB_PID=$!
    fmb_track "$OVSDB_PID"
    fmb_wait_for 20 "ovsdb-server socket" test -S "$OVS_DIR/db.sock"
    ovs_check_pid ovsdb-server "$OVSDB_PID"
    fmb_step "ovs-vsctl init" 30 ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=20 --no-wait init
    if [ "$tso" = 1 ]; then
        vsctl --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
    fi
    ip netns exec "$ns" env OVS_RUNDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" \
        OVS_SYSCONFDIR="$OVS_DIR" ovs-vswitchd "unix:$OVS_DIR/db.sock" \
        --unixctl="$OVS_DIR/ovs-vswitchd.ctl" --pidfile="$OVS_DIR/ovs-vswitchd.pid" \
        --log-file="$OVS_DIR/ovs-vswitchd.log" -vconsole:off --no-chdir \
        > "$OVS_DIR/ovs-vswitchd.out" 2>&1 &
    OVSD_PID=$!
    fmb_track "$OVSD_PID"
    fmb_wait_for 20 "ovs-vswitchd control socket" test -S "$OVS_DIR/ovs-vswitchd.ctl"
    kill -0 "$OVSD_PID" 2>/dev/null || fmb_die "ovs-vswitchd exited: $(tail -5 "$OVS_DIR/ovs-vswitchd.log")"
    ovs_check_pid ovs-vswitchd "$OVSD_PID"
}

# ovs_check_pid NAME PID: the daemon's own pidfile names the PID we track
# (else stopping PID would leave the daemon running).
ovs_check_pid() {
    fmb_wait_for 20 "$1 pidfile" test -s "$OVS_DIR/$1.pid"
    [ "$(cat "$OVS_DIR/$1.pid")" = "$2" ] ||
        fmb_die "$1 runs as PID $(cat "$OVS_DIR/$1.pid"), not $2 as started: would not be stopped"
}

# ovs_bridge NS BR PORT1 PORT2 OFPORT_TCP: a netdev bridge (its default flow
# is priority=0,actions=NORMAL) with TAPs PORT1, PORT2 as ofports 1 and 2,
# OpenFlow 1.0 and 1.3, listening on 127.0.0.1:OFPORT_TCP inside NS.
ovs_bridge() {
    local ns=$1 br=$2 p1=$3 p2=$4 tcp=$5
    fmb_step "ovs-vsctl add-br" 60 ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=30 \
        add-br "$br" -- set bridge "$br" datapath_type=netdev protocols=OpenFlow10,OpenFlow13 \
        -- add-port "$br" "$p1" -- set Interface "$p1" type=tap ofport_request=1 \
        -- add-port "$br" "$p2" -- set Interface "$p2" type=tap ofport_request=2 \
        -- set-controller "$br" "ptcp:$tcp:127.0.0.1"
    fmb_wait_for 20 "OVS OpenFlow listener on 127.0.0.1:$tcp" \
        ip netns exec "$ns" ovs-ofctl -O OpenFlow13 --timeout=2 show "tcp:127.0.0.1:$tcp"
    local p
    for p in "$p1" "$p2"; do
        fmb_wait_for 20 "OVS port $p" ip -n "$ns" link show "$p"
    done
}

ovs_stop() {
    local p
    for p in "$OVSD_PID" "$OVSDB_PID"; do
        [ -n "$p" ] || continue
        fmb_kill "$p"
        fmb_untrack "$p"
    done
    OVSD_PID=""
    OVSDB_PID=""
    FMB_HINT=""
}

# ---- summaries -------------------------------------------------------------------

# fmb_minmedmax: numbers on stdin -> "min / median / max" (1 value: itself).
fmb_minmedmax() {
    sort -g | awk -v fmt="${1:-%.3f}" '
        { v[n++] = $1 }
        END {
            if (n == 0) { print "–"; exit }
            m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            if (n == 1) printf fmt "\n", v[0]
            else printf fmt " / " fmt " / " fmt "\n", v[0], m, v[n - 1]
        }'
}

# fmb_env_md: a few lines describing the machine and the build, markdown.
fmb_env_md() {
    echo "- date: $(date -u +%FT%TZ)"
    echo "- host: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    local dirty
    dirty=$(cd "$FMB_ROOT" && git diff --quiet HEAD -- src ctl flowtable Cargo.toml Cargo.lock 2>/dev/null || echo ' (uncommitted changes to the daemon)')
    echo "- rvs: $(cd "$FMB_ROOT" && git rev-parse --short HEAD 2>/dev/null)$dirty on $(cd "$FMB_ROOT" && git rev-parse --abbrev-ref HEAD 2>/dev/null), release build"
    echo "- OVS: $(ovs-vswitchd --version 2>/dev/null | head -1)"
}
