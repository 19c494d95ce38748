//! rvsd (being written).
fn main() {
    println!("rvsd {}", env!("CARGO_PKG_VERSION"));
}
