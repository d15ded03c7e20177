//! Gradient buckets: the parameters, in module order, grouped into runs whose gradients are
//! flattened into one buffer each, so a step makes a few large all-reduces instead of one
//! per tensor (a ResNet-20 has 65 parameter tensors, most of them small).

use std::ops::Range;

/// The most `f32`s in one bucket (4 MiB), unless a single parameter is larger: large enough
/// that per-message latency is negligible, small enough that a model makes several buckets.
pub const BUCKET_FLOATS: usize = 1 << 20;

/// Groups consecutive parameters of `sizes` (in their fixed order, so every process and every
/// run makes the same buckets) into index ranges whose sizes sum to at most `limit`; a
/// parameter larger than `limit` gets a bucket of its own.
pub fn plan(sizes: &[usize], limit: usize) -> Vec<Range<usize>> {
    let mut buckets = Vec::new();
    let (mut start, mut filled) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && filled + size > limit {
            buckets.push(start..i);
            (start, filled) = (i, 0);
        }
        filled += size;
    }
    if start < sizes.len() {
        buckets.push(start..sizes.len());
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn buckets_cover_every_parameter_once_in_order() {
        assert_eq!(plan(&[3, 3, 3, 3], 6), [0..2, 2..4]);
        assert_eq!(plan(&[3, 3, 3], 7), [0..2, 2..3]);
        assert_eq!(plan(&[10, 1, 1], 4), [0..1, 1..3]); // too large: alone
        assert_eq!(plan(&[1, 10, 1], 4), [0..1, 1..2, 2..3]);
        assert_eq!(plan(&[2; 5], 100).len(), 1);
        assert_eq!(plan(&[2; 5], 100)[0], 0..5);
        assert!(plan(&[], 4).is_empty());
    }
}
