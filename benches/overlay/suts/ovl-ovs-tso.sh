# Two OVS netdev switches with other_config:userspace-tso-enable=true (benches/overlay.sh).
OVS_TSO=1
. "${OVL_DIR:?set by benches/overlay.sh}/common.sh"
sut_setup() { ovs_sut_setup; }
sut_teardown() { ovs_sut_teardown; }
sut_collect() { ovs_sut_collect "$1"; }
sut_describe() { ovs_sut_describe; }
