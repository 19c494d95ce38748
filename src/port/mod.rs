//! Ports: the only place that touches file descriptors (being written).
