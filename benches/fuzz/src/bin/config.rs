//! AFL++ harness for [`rvs::fuzzing::config`].
fn main() {
    afl::fuzz!(|data: &[u8]| rvs::fuzzing::config(data));
}
