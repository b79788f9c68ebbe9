//! What refcat stores in the registry besides its artifacts' scanner output: the
//! vulnerability record in each Grype artifact (when refcat first saw each match) and
//! the per-repository release log. The write side (publish, worker) makes them; the
//! catalog only reads them.

pub mod release_log;
pub mod vulnerability;

pub use vulnerability::VulnerabilityRecord;
