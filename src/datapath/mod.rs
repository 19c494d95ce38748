//! Datapath workers (being written).
