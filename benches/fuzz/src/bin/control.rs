//! AFL++ harness for [`rvs::fuzzing::control`].
fn main() {
    afl::fuzz!(|data: &[u8]| rvs::fuzzing::control(data));
}
