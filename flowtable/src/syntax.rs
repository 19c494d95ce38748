//! OVS flow syntax parser and printer (being written).
