# Overlay SUTs for peerbench (sourced by suts/ovl-*.sh; see benches/overlay.sh).
#
# Two "hosts", each a namespace with one switch instance: host 1 is
# peerbench's switch namespace $PB_NS_SW, host 2 is $PB_NS_H2, made here.
# An underlay veth pair joins them (pbul0 10.77.1.1/30 in host 1, pbul1
# 10.77.1.2/30 in host 2); each switch has a tunnel port of type
# $OVL_TUNNEL (vxlan by default) with key $OVL_KEY to the other host and a
# TAP, pbtap0 on host 1 and pbtap1 on host 2, which are moved into
# peerbench's tenant namespaces pb-a / pb-b (setup.sh then addresses them
# 10.77.0.1/24 and 10.77.0.2/24 with PB_MTU, 1450 for the overlay).
# Everything is inside namespaces this suite creates; the second host's
# namespace is deleted by sut_teardown (peerbench deletes the others).

PB_IF_A=pbtap0
PB_IF_B=pbtap1
PB_NS_H2=${PB_NS_H2:-pb-ovl-h2}
OVL_TUNNEL=${OVL_TUNNEL:-vxlan}
OVL_KEY=${OVL_KEY:-42}
OVL_UL1=10.77.1.1
OVL_UL2=10.77.1.2

case "$PB_NS_H2" in pb-*) ;; *) pb_die "namespace must be pb-*: $PB_NS_H2";; esac

ovl_hosts() { echo "$PB_NS_SW $PB_NS_H2"; }

# Host 2's namespace and the underlay veth pair, addressed, up.
ovl_underlay() {
    pb_ns_exists "$PB_NS_H2" && ip netns del "$PB_NS_H2"
    ip netns add "$PB_NS_H2"
    ip -n "$PB_NS_H2" link set lo up
    ip netns exec "$PB_NS_H2" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
                                         net.ipv6.conf.default.disable_ipv6=1
    ip -n "$PB_NS_SW" link add pbul0 type veth peer name pbul1 netns "$PB_NS_H2"
    ip -n "$PB_NS_SW" link set pbul0 up
    ip -n "$PB_NS_H2" link set pbul1 up
}

# Underlay address on host N's device DEV.
ovl_underlay_addr() {   # $1 = ns, $2 = dev, $3 = ip
    ip -n "$1" addr add "$3/30" dev "$2"
    ip -n "$1" link set "$2" up
}

ovl_delete_h2() {
    pb_ns_exists "$PB_NS_H2" && ip netns del "$PB_NS_H2"
    return 0
}

# Waits (bounded, 5 s) until DEV exists in namespace NS.
ovl_wait_dev() {   # $1 = ns, $2 = dev
    local i
    for i in $(seq 1 50); do
        ip -n "$1" link show "$2" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    pb_die "$2 did not appear in $1"
}

# ---- Open vSwitch, one private instance per host ---------------------------
# OVS_TSO=0|1 (set by the plugin): other_config:userspace-tso-enable, which
# OVS 3.1 reads once at start, so it is set before ovs-vswitchd starts.

ovs_dir() { echo "$PB_STATE/ovs-$1"; }
ovs_vsctl() { local d; d=$(ovs_dir "$1"); shift; ovs-vsctl --db="unix:$d/db.sock" --timeout=30 "$@"; }
ovs_appctl() { local d; d=$(ovs_dir "$1"); shift; ovs-appctl -t "$d/ovs-vswitchd.ctl" --timeout=30 "$@"; }

ovs_host_start() {   # $1 = ns
    local ns=$1 d; d=$(ovs_dir "$1")
    rm -rf "$d"; mkdir -p "$d"
    (
        export OVS_RUNDIR=$d OVS_LOGDIR=$d OVS_DBDIR=$d OVS_SYSCONFDIR=$d
        ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
        ip netns exec "$ns" ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" \
            --unixctl="$d/ovsdb-server.ctl" --pidfile="$d/ovsdb-server.pid" \
            --log-file="$d/ovsdb-server.log" -vconsole:off --detach --no-chdir
        pb_track_pid "$(cat "$d/ovsdb-server.pid")"
        ovs_vsctl "$ns" --no-wait init
        if [ "${OVS_TSO:-0}" = 1 ]; then
            ovs_vsctl "$ns" --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
        fi
        ip netns exec "$ns" ovs-vswitchd "unix:$d/db.sock" \
            --unixctl="$d/ovs-vswitchd.ctl" --pidfile="$d/ovs-vswitchd.pid" \
            --log-file="$d/ovs-vswitchd.log" -vconsole:off --detach --no-chdir
        pb_track_pid "$(cat "$d/ovs-vswitchd.pid")"
    )
    cat "$d/ovs-vswitchd.pid" "$d/ovsdb-server.pid" >> "$PB_STATE/sut.pids"
}

# OVS's userspace tunnels: the underlay veth end on netdev bridge br-phy,
# the underlay IP on br-phy's internal port; br-int with the tunnel port and
# the tenant tap.
ovs_host_setup() {   # $1 = ns, $2 = underlay dev, $3 = local ip, $4 = remote ip, $5 = tap
    local ns=$1 ul=$2 lip=$3 rip=$4 tap=$5
    ovs_vsctl "$ns" add-br br-phy -- set bridge br-phy datapath_type=netdev \
        -- add-port br-phy "$ul"
    ovl_underlay_addr "$ns" br-phy "$lip"
    ovs_vsctl "$ns" add-br br-int -- set bridge br-int datapath_type=netdev \
        -- add-port br-int ovltun -- set interface ovltun type="$OVL_TUNNEL" \
               options:remote_ip="$rip" options:key="$OVL_KEY" \
        -- add-port br-int "$tap" -- set interface "$tap" type=tap
}

ovs_sut_setup() {
    : > "$PB_STATE/sut.pids"
    ovl_underlay
    ovs_host_start "$PB_NS_SW"
    ovs_host_start "$PB_NS_H2"
    ovs_host_setup "$PB_NS_SW" pbul0 "$OVL_UL1" "$OVL_UL2" "$PB_IF_A"
    ovs_host_setup "$PB_NS_H2" pbul1 "$OVL_UL2" "$OVL_UL1" "$PB_IF_B"
    ip -n "$PB_NS_SW" link set "$PB_IF_A" netns "$PB_NS_A"
    ip -n "$PB_NS_H2" link set "$PB_IF_B" netns "$PB_NS_B"
}

ovs_sut_teardown() {
    local ns d p
    for ns in $(ovl_hosts); do
        d=$(ovs_dir "$ns")
        for p in ovs-vswitchd ovsdb-server; do
            [ -f "$d/$p.pid" ] && pb_kill_pid "$(cat "$d/$p.pid")"
        done
        rm -rf "$d"
    done
    ovl_delete_h2
}

ovs_sut_collect() {   # $1 = output file
    local ns
    {
        for ns in $(ovl_hosts); do
            echo "##### host $ns"
            echo "### other_config"; ovs_vsctl "$ns" get Open_vSwitch . other_config
            echo "### tnl/arp/show"; ovs_appctl "$ns" tnl/arp/show
            echo "### ovs/route/show"; ovs_appctl "$ns" ovs/route/show
            echo "### dpif-netdev/pmd-stats-show"; ovs_appctl "$ns" dpif-netdev/pmd-stats-show
            echo "### dpctl/dump-flows"; ovs_appctl "$ns" dpctl/dump-flows -m 2>&1 | head -20
            echo "### coverage/show (drops)"; ovs_appctl "$ns" coverage/show | grep -i -E 'drop|tnl|push|pop|tso|csum' | head -30
            echo "### vswitchd log (warnings)"; grep -E 'WARN|ERR' "$(ovs_dir "$ns")/ovs-vswitchd.log" | tail -15
        done
    } > "$1" 2>&1
}

ovs_sut_describe() {
    echo "OVS $(ovs-vswitchd --version | head -1 | awk '{print $NF}') netdev x2, $OVL_TUNNEL key $OVL_KEY, br-phy underlay, tso=${OVS_TSO:-0}"
}

# ---- rvs, one rvsd per host -----------------------------------------------

rvs_host_start() {   # $1 = ns, $2 = tap, $3 = local ip, $4 = remote ip
    local ns=$1 tap=$2 lip=$3 rip=$4 d="$PB_STATE/rvs-$1"
    local bin="$RVS_ROOT/target/release/rvsd"
    [ -x "$bin" ] || pb_die "$bin missing: cargo build --release --bin rvsd"
    rm -rf "$d"; mkdir -p "$d"
    cat > "$d/ovl.toml" <<TOML
[[bridge]]
name = "pbovl0"
[[bridge.port]]
name = "$tap"
type = "tap"
ofport = 1
[[bridge.port]]
name = "pbtun0"
type = "$OVL_TUNNEL"
ofport = 2
options = { remote_ip = "$rip", local_ip = "$lip", key = "$OVL_KEY" }
TOML
    local workers=()
    [ -n "${RVS_PB_WORKERS:-}" ] && workers=(--workers "$RVS_PB_WORKERS")
    ip netns exec "$ns" "$bin" --config "$d/ovl.toml" --state-dir "$d/state" \
        --socket "$d/rvsd.sock" --log-level warn "${workers[@]}" > "$d/rvsd.log" 2>&1 &
    local pid=$!
    pb_track_pid "$pid"
    echo "$pid" >> "$PB_STATE/sut.pids"
    local i
    for i in $(seq 1 100); do
        [ -S "$d/rvsd.sock" ] && ip -n "$ns" link show "$tap" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || pb_die "rvsd in $ns exited: $(tail -5 "$d/rvsd.log")"
        sleep 0.1
    done
    pb_die "rvsd in $ns did not come up: $(tail -5 "$d/rvsd.log")"
}

rvs_sut_setup() {
    : > "$PB_STATE/sut.pids"
    ovl_underlay
    # rvs's underlay is the host's own IP stack: the address on the veth.
    ovl_underlay_addr "$PB_NS_SW" pbul0 "$OVL_UL1"
    ovl_underlay_addr "$PB_NS_H2" pbul1 "$OVL_UL2"
    rvs_host_start "$PB_NS_SW" "$PB_IF_A" "$OVL_UL1" "$OVL_UL2"
    rvs_host_start "$PB_NS_H2" "$PB_IF_B" "$OVL_UL2" "$OVL_UL1"
    ip -n "$PB_NS_SW" link set "$PB_IF_A" netns "$PB_NS_A"
    ip -n "$PB_NS_H2" link set "$PB_IF_B" netns "$PB_NS_B"
}

rvs_ctl() { "$RVS_ROOT/target/release/rvsctl" --socket "$PB_STATE/rvs-$1/rvsd.sock" "${@:2}"; }

rvs_sut_teardown() {
    local p
    for p in $(cat "$PB_STATE/sut.pids" 2>/dev/null); do pb_kill_pid "$p"; done
    rm -rf "$PB_STATE/rvs-$PB_NS_SW" "$PB_STATE/rvs-$PB_NS_H2"
    ovl_delete_h2
}

rvs_sut_collect() {
    local ns
    {
        for ns in $(ovl_hosts); do
            echo "##### host $ns"
            if [ -x "$RVS_ROOT/target/release/rvsctl" ]; then
                echo "### dump-ports"; rvs_ctl "$ns" dump-ports pbovl0
            fi
            echo "### rvsd log (tail)"; tail -20 "$PB_STATE/rvs-$ns/rvsd.log"
        done
    } > "$1" 2>&1
}

rvs_sut_describe() {
    echo "rvs $(git -C "$RVS_ROOT" rev-parse --short HEAD 2>/dev/null) release x2, $OVL_TUNNEL key $OVL_KEY, kernel UDP underlay, workers=${RVS_PB_WORKERS:-default}"
}
