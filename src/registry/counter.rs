//! Counts every request sent to a registry, by method and kind, so that benchmarks
//! and tests can assert how much traffic an operation costs.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What a request is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestKind {
    /// `/v2/`, the API version check.
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags,
    /// `/v2/<name>/manifests/<ref>`
    Manifest,
    /// `/v2/<name>/blobs/<digest>`
    Blob,
    /// `/v2/<name>/blobs/uploads/`
    Upload,
    /// `/v2/<name>/referrers/<digest>`
    Referrers,
    /// The bearer-token realm.
    Token,
}

impl RequestKind {
    /// A short lower-case name, for reports and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Base => "base",
            RequestKind::Catalog => "catalog",
            RequestKind::Tags => "tags",
            RequestKind::Manifest => "manifest",
            RequestKind::Blob => "blob",
            RequestKind::Upload => "upload",
            RequestKind::Referrers => "referrers",
            RequestKind::Token => "token",
        }
    }
}

/// Request counts by (method, kind). Cheap to share: one mutex, touched once per request.
#[derive(Debug, Default)]
pub struct RequestCounter {
    counts: Mutex<BTreeMap<(String, RequestKind), u64>>,
}

impl RequestCounter {
    pub(super) fn record(&self, method: &reqwest::Method, kind: RequestKind) {
        let mut counts = self.counts.lock().expect("counter lock");
        *counts.entry((method.to_string(), kind)).or_default() += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<(String, RequestKind), u64> {
        self.counts.lock().expect("counter lock").clone()
    }

    /// Requests of one kind so far, any method.
    pub fn of_kind(&self, kind: RequestKind) -> u64 {
        self.counts
            .lock()
            .expect("counter lock")
            .iter()
            .filter(|((_, k), _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    /// The counts in the Prometheus text format, as `refcat_registry_requests_total`.
    pub fn write_prometheus(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str(
            "# HELP refcat_registry_requests_total Requests sent to the registry, by method and kind.\n",
        );
        out.push_str("# TYPE refcat_registry_requests_total counter\n");
        for ((method, kind), n) in self.snapshot() {
            let _ = writeln!(
                out,
                "refcat_registry_requests_total{{method=\"{method}\",kind=\"{}\"}} {n}",
                kind.as_str()
            );
        }
    }
}
