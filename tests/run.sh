#!/usr/bin/env bash
# The test command (README, set-up step 2): installs what the integration
# tests need on a Debian machine, then runs every test of the workspace.
# Run as root: the integration tests create TAPs, veth pairs and network
# namespaces (outside CI they skip with a message when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" = 0 ]; then
    # Packages the integration tests use: ip/netns/veth, ping, tcpdump, iperf3,
    # ovs-ofctl (openvswitch-common), a private Open vSwitch as the os-ken
    # switch tester's "tester" switch and as the reference NORMAL of
    # netns_vlan_ovs and the tunnel peer of netns_tunnel_ovs
    # (openvswitch-switch; the tests start their own daemons
    # in their own namespaces; ovsdb-client, ovsdb-server and ovsdb-tool of
    # both as the OVSDB clients and reference server of ovsdb_clients), venvs
    # for os-ken and Faucet in the OpenFlow tests and for ovsdbapp in
    # ovsdb_clients; systemd-analyze checks config/rvsd.service and
    # setpriv (util-linux) runs rvsctl as a non-root --socket-group member.
    # libvirt_ovs runs a private libvirtd and a TCG QEMU guest whose
    # initramfs is busybox-static packed with cpio (tests/guest/build.sh
    # fetches the guest kernel .deb with apt-get download, unpacked, never
    # installed).
    pkgs=(iproute2 iputils-ping tcpdump iperf3 procps openvswitch-common openvswitch-switch python3-venv systemd util-linux
          libvirt-daemon-system libvirt-clients qemu-system-x86 busybox-static cpio)
    missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "ci: installing ${missing[*]}"
        apt-get update -qq </dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    fi
    # TAP ports need /dev/net/tun.
    if [ ! -e /dev/net/tun ]; then
        mkdir -p /dev/net
        mknod /dev/net/tun c 10 200
        chmod 0666 /dev/net/tun
    fi
else
    echo "tests/run.sh: not root; skipping package installation (integration tests will skip)" >&2
fi

exec cargo test --workspace --no-fail-fast "$@" </dev/null
