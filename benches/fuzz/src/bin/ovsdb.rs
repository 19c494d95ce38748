//! AFL++ harness for [`rvs::fuzzing::ovsdb`].
fn main() {
    afl::fuzz!(|data: &[u8]| rvs::fuzzing::ovsdb(data));
}
