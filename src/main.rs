//! rvsd (being written).
#![allow(dead_code)]

mod bridge;
mod datapath;
mod netdev;
mod packet;
mod port;

fn main() {
    println!("rvsd {}", env!("CARGO_PKG_VERSION"));
}
