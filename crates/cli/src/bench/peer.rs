//! How a Ventral-to-peer ratio is reported: only between runs on the same number of threads.

/// The line saying how many threads each side runs on, and whether ratios are shown.
pub fn threads_note(ours: usize, peer: usize) -> String {
    if ours == peer {
        format!("threads: ventral {ours}, matrixmultiply {peer}")
    } else {
        format!(
            "threads: ventral {ours}, matrixmultiply {peer} (it runs on 1, 2 or 4): ratios withheld (—)"
        )
    }
}

/// `speedup` (Ventral's speed over the peer's) if both ran on as many threads, else `None`.
pub fn ratio(speedup: f64, ours: usize, peer: usize) -> Option<f64> {
    (ours == peer).then_some(speedup)
}

/// A ratio for the table: `1.23x`, or `—` when withheld.
pub fn ratio_cell(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "—".to_string(), |r| format!("{r:.2}x"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_withheld_when_thread_counts_differ() {
        assert_eq!(ratio(1.5, 2, 2), Some(1.5));
        assert_eq!(ratio(1.5, 8, 4), None);
        assert_eq!(ratio_cell(Some(1.5)), "1.50x");
        assert_eq!(ratio_cell(None), "—");
        assert!(threads_note(8, 4).contains("withheld"));
        assert!(!threads_note(2, 2).contains("withheld"));
    }
}
