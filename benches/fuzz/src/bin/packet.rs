//! AFL++ harness for [`rvs::fuzzing::packet`].
fn main() {
    afl::fuzz!(|data: &[u8]| rvs::fuzzing::packet(data));
}
