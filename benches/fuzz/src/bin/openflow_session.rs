//! AFL++ harness for [`rvs::fuzzing::openflow_session`].
fn main() {
    afl::fuzz!(|data: &[u8]| rvs::fuzzing::openflow_session(data));
}
