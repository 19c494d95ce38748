# Two OVS netdev (userspace) switches joined by a tunnel, no TSO (benches/overlay.sh).
OVS_TSO=0
. "${OVL_DIR:?set by benches/overlay.sh}/common.sh"
sut_setup() { ovs_sut_setup; }
sut_teardown() { ovs_sut_teardown; }
sut_collect() { ovs_sut_collect "$1"; }
sut_describe() { ovs_sut_describe; }
