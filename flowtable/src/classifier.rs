//! Flow classifier (being written).

/// Tuple-space classifier (stub).
#[derive(Debug, Default)]
pub struct Classifier<T> {
    rules: Vec<T>,
}
