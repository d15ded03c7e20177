//! What training shows a person and leaves behind: progress bars, JSON-lines metrics and PNG
//! plots.

pub mod metrics;
pub mod plot;
pub mod progress;
