//! What the worker has done, for `/metrics`: artifacts attached by format, and the
//! Grype DB it scans with.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use super::exposure::ExposureMetrics;

/// Shared counters; updated by jobs and the DB watcher.
#[derive(Debug, Default)]
pub struct WorkerStats {
    artifacts: Mutex<BTreeMap<&'static str, u64>>,
    pruned: Mutex<u64>,
    reused: Mutex<u64>,
    db_built: Mutex<Option<String>>,
    scanner_seconds: Mutex<f64>,
    exposure: Mutex<ExposureMetrics>,
    walks: Mutex<u64>,
    aggregates: Mutex<BTreeMap<&'static str, u64>>,
}

impl WorkerStats {
    /// Counts an attached artifact of `format` (`syft-json`, `spdx-json`, `grype-json`).
    pub fn attached(&self, format: &'static str) {
        *self
            .artifacts
            .lock()
            .expect("stats")
            .entry(format)
            .or_default() += 1;
    }

    /// Counts older Grype artifacts deleted under `--keep`.
    pub fn pruned(&self, n: usize) {
        *self.pruned.lock().expect("stats") += n as u64;
    }

    /// Counts artifacts copied from another repository's set instead of made.
    pub fn reused(&self, n: usize) {
        *self.reused.lock().expect("stats") += n as u64;
    }

    /// Adds time spent waiting for syft and grype.
    pub fn scanned_for(&self, seconds: f64) {
        *self.scanner_seconds.lock().expect("stats") += seconds;
    }

    /// Counts a reconcile walk this process made.
    pub fn walked(&self) {
        *self.walks.lock().expect("stats") += 1;
    }

    /// Counts an aggregate computed `how`: `folded` from the repository summaries, or
    /// `walked` from every default and floating tag.
    pub fn aggregated(&self, how: &'static str) {
        *self
            .aggregates
            .lock()
            .expect("stats")
            .entry(how)
            .or_default() += 1;
    }

    /// Replaces the exposure metrics with those of the latest walk.
    pub fn exposed(&self, metrics: ExposureMetrics) {
        *self.exposure.lock().expect("stats") = metrics;
    }

    /// Records the built time (RFC 3339) of the Grype DB in use.
    pub fn db_built(&self, built: &str) {
        *self.db_built.lock().expect("stats") = Some(built.to_string());
    }

    /// The counters in the Prometheus text format.
    pub fn write_prometheus(&self, out: &mut String) {
        out.push_str("# HELP refcat_worker_aggregates_total Catalog aggregates computed: folded from the repository summaries, or walked from every default and floating tag.\n# TYPE refcat_worker_aggregates_total counter\n");
        for how in ["folded", "walked"] {
            let n = self.aggregates.lock().expect("stats").get(how).copied();
            let _ = writeln!(
                out,
                "refcat_worker_aggregates_total{{how=\"{how}\"}} {}",
                n.unwrap_or(0)
            );
        }
        out.push_str("# HELP refcat_worker_artifacts_total Artifacts attached, by format.\n# TYPE refcat_worker_artifacts_total counter\n");
        for (format, n) in self.artifacts.lock().expect("stats").iter() {
            let _ = writeln!(
                out,
                "refcat_worker_artifacts_total{{format=\"{format}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP refcat_worker_pruned_total Older Grype artifacts deleted (--keep).\n# TYPE refcat_worker_pruned_total counter\nrefcat_worker_pruned_total {}",
            *self.pruned.lock().expect("stats")
        );
        let _ = writeln!(
            out,
            "# HELP refcat_worker_reused_total Artifacts copied, signatures and all, from another repository's set for the same digest instead of scanning.\n# TYPE refcat_worker_reused_total counter\nrefcat_worker_reused_total {}",
            *self.reused.lock().expect("stats")
        );
        let _ = writeln!(
            out,
            "# HELP refcat_worker_scanner_seconds_total Time jobs spent waiting for syft and grype.\n# TYPE refcat_worker_scanner_seconds_total counter\nrefcat_worker_scanner_seconds_total {:.3}",
            *self.scanner_seconds.lock().expect("stats")
        );
        let _ = writeln!(
            out,
            "# HELP refcat_worker_walks_total Reconcile walks this process made.\n# TYPE refcat_worker_walks_total counter\nrefcat_worker_walks_total {}",
            *self.walks.lock().expect("stats")
        );
        self.exposure.lock().expect("stats").write_prometheus(out);
        let built = self.db_built.lock().expect("stats").clone();
        let seconds = built.as_deref().and_then(|b| {
            time::OffsetDateTime::parse(b, &time::format_description::well_known::Rfc3339).ok()
        });
        if let Some(at) = seconds {
            let _ = writeln!(
                out,
                "# HELP refcat_worker_grype_db_built_seconds When the Grype DB in use was built (Unix time).\n# TYPE refcat_worker_grype_db_built_seconds gauge\nrefcat_worker_grype_db_built_seconds {}",
                at.unix_timestamp()
            );
        }
    }
}
