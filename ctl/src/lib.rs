//! rvs control protocol types and client (being written).
#![deny(unsafe_code)]
