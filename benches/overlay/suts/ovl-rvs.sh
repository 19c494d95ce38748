# Two rvsd (release) joined by a tunnel over an underlay veth (benches/overlay.sh).
. "${OVL_DIR:?set by benches/overlay.sh}/common.sh"
sut_setup() { rvs_sut_setup; }
sut_teardown() { rvs_sut_teardown; }
sut_collect() { rvs_sut_collect "$1"; }
sut_describe() { rvs_sut_describe; }
