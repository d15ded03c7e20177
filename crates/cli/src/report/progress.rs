//! Progress bars with rate and ETA, drawn only on a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `total` units (images, steps) with a message slot for live metrics; hidden when
/// stderr is not a terminal or `quiet` is set, so logs and CI output stay clean.
pub fn bar(total: u64, prefix: &str, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:30.cyan/blue}] {pos:>6}/{len:6} {per_sec:>12} ETA {eta:>4} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}
