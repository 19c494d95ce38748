//! AFL++ harness for [`rvs::fuzzing::flow_syntax`].
fn main() {
    afl::fuzz!(|data: &[u8]| rvs::fuzzing::flow_syntax(data));
}
