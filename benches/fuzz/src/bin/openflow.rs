//! AFL++ harness for [`rvs::fuzzing::openflow`].
fn main() {
    afl::fuzz!(|data: &[u8]| rvs::fuzzing::openflow(data));
}
