//! rvsctl (being written).
fn main() {}
