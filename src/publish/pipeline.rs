//! The publisher: runs the steps for every platform manifest behind a reference.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::existing::{Existing, Missing};
use super::report::SubjectReport;
use super::signable::{GrypeRun, Signable};
use super::{prune, stored};
use super::{PublishError, SignatureFormat, Step};
use crate::artifact::now_rfc3339;
use crate::artifact::Format;
use crate::catalog::platforms::{platform_manifests, resolve_fetched, PlatformManifest};
use crate::digest::Digest;
use crate::locks::{Held, KeyedLocks};
use crate::oci::Platform;
use crate::reference::Reference;
use crate::registry::{Client, FetchedManifest};
use crate::scan::{DbStatus, Grype, ImageSource, SbomToMatch, Sboms, ScannerVersion, Syft};
use crate::sign::KeyPair;
use crate::trust::Trust;

/// Choices for a publish run.
#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    /// Only platform manifests this filter selects.
    pub platform: Option<Platform>,
    /// Scan again even when complete, current artifacts exist.
    pub force: bool,
    /// Signature layout.
    pub signature_format: SignatureFormat,
    /// Store Syft JSON gzip-compressed.
    pub compress: bool,
    /// Abort the process right after this step (crash testing).
    pub abort_after: Option<String>,
    /// Keep only this many Grype artifacts per platform manifest, deleting older ones
    /// (with their signatures) once a new one is committed; `None` keeps all.
    pub keep: Option<std::num::NonZeroUsize>,
    /// Told when syft, grype and the commit begin, for a progress display.
    pub progress: Option<super::ProgressSink>,
    /// Where the subject index is (the aggregate's repository): before scanning, a
    /// complete set for the same digest in a repository it names is copied instead.
    /// `None` scans every time.
    pub reuse_from: Option<crate::reference::RepositoryName>,
}

/// Where `first_seen` dates come from: the subject's own earlier Grype artifacts, else
/// the previous release of its stream.
#[derive(Clone, Copy)]
struct Lineage<'a> {
    existing: &'a Existing,
    /// The same platform in the stream's previous release.
    predecessor: Option<&'a PlatformManifest>,
}

/// Publishes signed SBOM and vulnerability referrers.
pub struct Publisher {
    pub(super) client: Client,
    syft: Syft,
    grype: Grype,
    pub(super) key: KeyPair,
    /// Trusts only `key`: what proves an artifact is this publisher's.
    own: Trust,
    pub(super) options: PublishOptions,
    versions: OnceCell<(ScannerVersion, ScannerVersion)>,
    /// The Grype DB status, read once and again on [`Publisher::refresh_db`].
    db: tokio::sync::RwLock<Option<DbStatus>>,
    /// Time spent waiting for syft and grype, for the reports' timings.
    scanner_time: std::sync::Mutex<Duration>,
    /// Subjects being published, by `repository@digest`.
    publishing: KeyedLocks,
    /// Per step: how many times it ended, and the seconds it took in all.
    steps: std::sync::Mutex<BTreeMap<Step, (u64, f64)>>,
}

impl Publisher {
    /// A publisher writing through `client`, signing with `key`.
    pub fn new(
        client: Client,
        syft: Syft,
        grype: Grype,
        key: KeyPair,
        options: PublishOptions,
    ) -> Self {
        Publisher {
            client,
            syft,
            grype,
            own: Trust::own(key.public_key()),
            key,
            options,
            versions: OnceCell::new(),
            db: tokio::sync::RwLock::new(None),
            scanner_time: std::sync::Mutex::new(Duration::ZERO),
            publishing: KeyedLocks::default(),
            steps: Default::default(),
        }
    }

    /// Holds the subjects being published across every process sharing `locks`, not
    /// only in this process.
    pub fn share_locks(mut self, locks: std::sync::Arc<dyn crate::locks::SharedLocks>) -> Self {
        self.publishing = KeyedLocks::across(locks, "publish");
        self
    }

    /// What proves an artifact or stored document is this publisher's: its key.
    pub fn own_trust(&self) -> &Trust {
        &self.own
    }

    /// Awaits a scanner, adding the wait to the scanner time.
    async fn timed<T>(&self, run: impl std::future::Future<Output = T>) -> T {
        let start = Instant::now();
        let out = run.await;
        *self.scanner_time.lock().expect("timer lock") += start.elapsed();
        out
    }

    fn scanner_time(&self) -> Duration {
        *self.scanner_time.lock().expect("timer lock")
    }

    /// Per step: how many times it ended and the seconds it took in all, for metrics.
    pub fn step_seconds(&self) -> BTreeMap<Step, (u64, f64)> {
        self.steps.lock().expect("step lock").clone()
    }

    /// The Grype DB status, as read last.
    pub async fn grype_db(&self) -> Result<DbStatus, PublishError> {
        if let Some(known) = self.db.read().await.as_ref() {
            return Ok(known.clone());
        }
        let status = self.timed(self.grype.db_status()).await?;
        *self.db.write().await = Some(status.clone());
        Ok(status)
    }

    /// Reads the Grype DB status again; the new status when the DB changed since it was
    /// last read. Plans made afterwards see Grype artifacts of the old DB as stale.
    pub async fn refresh_db(&self) -> Result<Option<DbStatus>, PublishError> {
        let status = self.timed(self.grype.db_status()).await?;
        let mut known = self.db.write().await;
        if known.as_ref() == Some(&status) {
            return Ok(None);
        }
        let changed = known.is_some();
        *known = Some(status.clone());
        Ok(changed.then_some(status))
    }

    async fn versions(&self) -> Result<&(ScannerVersion, ScannerVersion), PublishError> {
        self.versions
            .get_or_try_init(|| async {
                let syft = self.timed(self.syft.version()).await?;
                let grype = self.timed(self.grype.version()).await?;
                Ok::<_, PublishError>((syft, grype))
            })
            .await
    }

    /// A long step begins for `subject`.
    fn begin(&self, subject: &PlatformManifest, step: Step) {
        if let Some(progress) = &self.options.progress {
            progress.tell(&subject.platform, step);
        }
    }

    /// Step `step`, begun at `started`, is done: its latency is counted, and a crash test
    /// may end the process here.
    pub(super) fn reached(&self, step: Step, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        tracing::debug!(%step, seconds, "step done");
        let mut steps = self.steps.lock().expect("step lock");
        let (count, sum) = steps.entry(step).or_default();
        *count += 1;
        *sum += seconds;
        drop(steps);
        if self.options.abort_after.as_deref() == Some(step.as_str()) {
            eprintln!("refcat: aborting after step {step} (REFCAT_ABORT_AFTER)");
            std::process::abort();
        }
    }

    /// The platform manifests of `reference` and what each is missing: the dry-run plan.
    pub async fn plan(
        &self,
        reference: &Reference,
    ) -> Result<Vec<(PlatformManifest, Existing, Missing)>, PublishError> {
        let subjects = self.resolve(reference, None).await?;
        self.check(reference, subjects).await
    }

    /// [`Publisher::plan`] for a manifest the caller has already fetched.
    pub async fn plan_fetched(
        &self,
        reference: &Reference,
        top: &FetchedManifest,
    ) -> Result<Vec<(PlatformManifest, Existing, Missing)>, PublishError> {
        let subjects = self.resolve(reference, Some(top)).await?;
        self.check(reference, subjects).await
    }

    /// The platform manifests behind `reference`, from `top` when the caller already
    /// fetched it.
    async fn resolve(
        &self,
        reference: &Reference,
        top: Option<&FetchedManifest>,
    ) -> Result<Vec<PlatformManifest>, PublishError> {
        let started = Instant::now();
        let platform = self.options.platform.as_ref();
        let subjects = match top {
            Some(top) => {
                resolve_fetched(&self.client, reference, top, platform)
                    .await?
                    .1
            }
            None => platform_manifests(&self.client, reference, platform).await?,
        };
        self.reached(Step::Resolve, started);
        Ok(subjects)
    }

    async fn check(
        &self,
        reference: &Reference,
        subjects: Vec<PlatformManifest>,
    ) -> Result<Vec<(PlatformManifest, Existing, Missing)>, PublishError> {
        let started = Instant::now();
        let db_built = self.grype_db().await?.built;
        let mut out = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let (repository, digest) = (&reference.repository, &subject.descriptor.digest);
            // Only what verifies with this publisher's key is its own to reuse, scan
            // again or prune; another tool's or key's artifacts are left alone.
            // --force makes every format again: only the Grype artifacts still matter, for
            // first_seen and --keep.
            let formats: &[Format] = if self.options.force {
                &[Format::GrypeJson]
            } else {
                &Format::ALL
            };
            let every_grype = self.options.keep.is_some();
            let existing = Existing::owned(
                &self.client,
                repository,
                digest,
                &self.own,
                formats,
                every_grype,
            )
            .await?;
            let missing = if self.options.force {
                Missing::ALL
            } else {
                existing.missing(&db_built)
            };
            out.push((subject, existing, missing));
        }
        self.reached(Step::CheckExisting, started);
        Ok(out)
    }

    /// Holds every subject of `subjects` against concurrent publishes through this
    /// publisher (an index and its platform manifests may arrive as separate jobs), in
    /// digest order so that two overlapping jobs cannot deadlock.
    async fn hold(
        &self,
        reference: &Reference,
        subjects: &[PlatformManifest],
    ) -> Vec<crate::locks::Held> {
        let mut keys: Vec<String> = subjects
            .iter()
            .map(|s| format!("{}@{}", reference.repository, s.descriptor.digest))
            .collect();
        keys.sort();
        keys.dedup();
        let mut guards = Vec::with_capacity(keys.len());
        for key in keys {
            guards.push(self.publishing.lock(key).await);
        }
        guards
    }

    /// Publishes whatever is missing for every platform manifest behind `reference`.
    pub async fn publish(&self, reference: &Reference) -> Result<Vec<SubjectReport>, PublishError> {
        self.publish_from(reference, None, std::future::ready(Ok(None)))
            .await
    }

    /// [`Publisher::publish`] for a manifest the caller has already fetched. A digest
    /// new to its stream names the stream's previous release as `predecessor`: its
    /// first Grype artifacts carry `first_seen` over from that release's. It is awaited
    /// only when a Grype artifact is made with nothing of its own to carry over from, so
    /// finding it (a release log's write) runs alongside the checks and copies; when it
    /// fails, nothing is made without it.
    pub async fn publish_fetched(
        &self,
        reference: &Reference,
        top: &FetchedManifest,
        predecessor: impl std::future::Future<Output = Result<Option<Digest>, String>>,
    ) -> Result<Vec<SubjectReport>, PublishError> {
        self.publish_from(reference, Some(top), predecessor).await
    }

    async fn publish_from(
        &self,
        reference: &Reference,
        top: Option<&FetchedManifest>,
        predecessor: impl std::future::Future<Output = Result<Option<Digest>, String>>,
    ) -> Result<Vec<SubjectReport>, PublishError> {
        let (start, scanners_before) = (Instant::now(), self.scanner_time());
        let subjects = self.resolve(reference, top).await?;
        // What exists is checked under the hold, so a concurrent job's work is seen.
        let held = self.hold(reference, &subjects).await;
        let mut plan = self.check(reference, subjects.clone()).await?;
        if plan.iter().any(|(_, _, missing)| missing.any()) {
            self.client
                .check_writable(&reference.repository)
                .await
                .map_err(|source| PublishError::NotWritable {
                    repository: reference.repository.to_string(),
                    source,
                })?;
        }
        // What CheckExisting found, before any copy: what the reports say was missing.
        let before: BTreeMap<String, Missing> = plan
            .iter()
            .map(|(s, _, missing)| (s.descriptor.digest.to_string(), *missing))
            .collect();
        let mut reused = BTreeMap::new();
        if let Some(copied) = self.reuse_where_lacking(reference, &plan, &held).await? {
            reused = copied;
            let left: Vec<Missing> = plan
                .iter()
                .map(|(s, _, missing)| {
                    let copied = reused.get(&s.descriptor.digest.to_string());
                    missing.without(copied.iter().flat_map(|c| &c.artifacts).map(|a| a.format))
                })
                .collect();
            if left.iter().any(Missing::any) {
                // What is still missing after a copy: a stale Grype result, say, or what a
                // copy that failed halfway did not bring.
                plan = self.check(reference, subjects).await?;
            } else {
                // Every copy landed whole (by digest, from a proven set): reading the
                // sets back would only say so again.
                for ((_, _, missing), left) in plan.iter_mut().zip(left) {
                    *missing = left;
                }
            }
        }
        // The shared checks are split evenly across the platform manifests.
        let share = plan.len().max(1) as u32;
        let (shared, shared_scanners) = (
            start.elapsed() / share,
            (self.scanner_time() - scanners_before) / share,
        );
        // The previous release is read once, and only when a platform has no Grype
        // artifact of its own to carry first_seen over from.
        let orphaned = plan
            .iter()
            .any(|(_, existing, missing)| missing.grype && existing.grype.is_empty());
        let predecessor = match orphaned {
            true => predecessor.await.map_err(PublishError::Predecessor)?,
            false => None,
        };
        let previous = match &predecessor {
            Some(release) => stored::release_platforms(&self.client, reference, release).await,
            None => Vec::new(),
        };
        let mut reports = Vec::new();
        for (subject, existing, missing) in plan {
            let (start, scanners_before) = (Instant::now(), self.scanner_time());
            let copied = reused.remove(&subject.descriptor.digest.to_string());
            let mut report = SubjectReport {
                subject: reference
                    .with_digest(subject.descriptor.digest.clone())
                    .to_string(),
                platform: subject.platform.to_string(),
                missing: before
                    .get(&subject.descriptor.digest.to_string())
                    .copied()
                    .unwrap_or(missing),
                published: Vec::new(),
                reused: Vec::new(),
                reused_from: None,
                digest: subject.descriptor.digest.clone(),
                pruned: Vec::new(),
                elapsed_seconds: 0.0,
                scanner_seconds: 0.0,
            };
            if let Some(copied) = copied {
                report.reused = copied.artifacts;
                report.reused_from = Some(copied.from.to_string());
            }
            if missing.any() {
                let lineage = Lineage {
                    existing: &existing,
                    predecessor: previous.iter().find(|p| p.platform == subject.platform),
                };
                self.publish_subject(reference, &subject, lineage, missing, &mut report, &held)
                    .await?;
            }
            report.elapsed_seconds = (shared + start.elapsed()).as_secs_f64();
            report.scanner_seconds =
                (shared_scanners + self.scanner_time() - scanners_before).as_secs_f64();
            self.reached(Step::Done, start);
            reports.push(report);
        }
        Ok(reports)
    }

    async fn publish_subject(
        &self,
        reference: &Reference,
        subject: &PlatformManifest,
        lineage: Lineage<'_>,
        missing: Missing,
        report: &mut SubjectReport,
        held: &[Held],
    ) -> Result<(), PublishError> {
        let (syft_version, _) = self.versions().await?;
        let mut sbom_set = None;
        if missing.syft || missing.spdx {
            self.begin(subject, Step::Syft);
            let started = Instant::now();
            let plain_http = self.client.plain_http();
            let sboms = self
                .timed(self.syft.scan(&ImageSource {
                    registry: &reference.registry,
                    repository: reference.repository.as_str(),
                    digest: &subject.descriptor.digest,
                    platform: &subject.platform,
                    credentials: self.client.credentials(),
                    plain_http,
                    tls: self.client.tls(),
                }))
                .await?;
            self.reached(Step::Syft, started);
            let created = now_rfc3339();
            let mut built = Vec::new();
            for (format, wanted) in [
                (Format::SyftJson, missing.syft),
                (Format::SpdxJson, missing.spdx),
            ] {
                if wanted {
                    let compress = self.options.compress;
                    let artifact =
                        Signable::sbom(format, &sboms, subject, syft_version, compress, &created);
                    built.push(artifact);
                }
            }
            sbom_set = Some((built, sboms));
        }
        let grype_artifact =
            |sboms: Option<Sboms>| self.grype_artifact(reference, subject, lineage, sboms);
        match (sbom_set, missing.grype) {
            // grype runs while the SBOMs are committed, and all three are listed at once
            // (one read-modify-write of a tag-schema index, not two); a grype failure
            // keeps the SBOMs, listed.
            (Some((built, sboms)), true) => {
                let (committed, grype) = tokio::join!(
                    self.commit_unlisted(reference, &built, report, held),
                    grype_artifact(Some(sboms))
                );
                let mut unlisted = committed?;
                let grype_committed = match grype {
                    Ok(artifact) => self
                        .commit_unlisted(reference, &[artifact], report, held)
                        .await
                        .map(|grype| unlisted.extend(grype)),
                    Err(e) => Err(e),
                };
                self.list(reference, unlisted).await?;
                grype_committed?;
                self.prune(lineage.existing, report).await?;
            }
            (Some((built, _)), false) => self.commit(reference, &built, report, held).await?,
            (None, true) => {
                let artifact = grype_artifact(None).await?;
                self.commit_grype(reference, lineage.existing, artifact, report, held)
                    .await?;
            }
            (None, false) => {}
        }
        Ok(())
    }

    /// Commits a new Grype artifact, then deletes those in `existing` beyond `--keep`
    /// (the new one counts).
    async fn commit_grype(
        &self,
        reference: &Reference,
        existing: &Existing,
        artifact: Signable,
        report: &mut SubjectReport,
        held: &[Held],
    ) -> Result<(), PublishError> {
        self.commit(reference, &[artifact], report, held).await?;
        self.prune(existing, report).await
    }

    /// Deletes the Grype artifacts in `existing` beyond `--keep`, once a new one is
    /// committed (it counts).
    async fn prune(
        &self,
        existing: &Existing,
        report: &mut SubjectReport,
    ) -> Result<(), PublishError> {
        let Some(keep) = self.options.keep else {
            return Ok(());
        };
        let stale = existing.grype.get(keep.get() - 1..).unwrap_or_default();
        if !stale.is_empty() {
            report.pruned = prune::artifacts(&self.client, &self.own, stale).await?;
        }
        Ok(())
    }

    /// Runs grype on this run's Syft JSON, or on refcat's own in the registry, and
    /// builds the Grype artifact with refcat's record.
    async fn grype_artifact(
        &self,
        reference: &Reference,
        subject: &PlatformManifest,
        lineage: Lineage<'_>,
        sboms: Option<Sboms>,
    ) -> Result<Signable, PublishError> {
        self.begin(subject, Step::Grype);
        let started = Instant::now();
        let (_, grype_version) = self.versions().await?;
        let stored;
        let (sbom, packages) = match &sboms {
            Some(fresh) => (SbomToMatch::Fresh(fresh), fresh.packages()),
            None => {
                stored = stored::syft_json(&self.client, lineage.existing).await?;
                (SbomToMatch::Stored(&stored.0), stored.1)
            }
        };
        let db = self.grype_db().await?;
        let what = format!("{}@{}", reference.repository, subject.descriptor.digest);
        let result = self
            .timed(self.grype.scan_sbom(sbom, &what, self.client.tls()))
            .await?;
        self.reached(Step::Grype, started);
        let previous = match (
            stored::newest_record(&self.client, lineage.existing).await,
            lineage.predecessor,
        ) {
            (Some(own), _) => Some(own),
            (None, Some(previous)) => {
                stored::release_record(&self.client, reference, previous, &self.own).await
            }
            (None, None) => None,
        };
        let now = now_rfc3339();
        let run = GrypeRun {
            subject,
            grype: grype_version,
            db: &db,
            packages,
            created: &now,
        };
        Ok(Signable::grype(&result, previous.as_ref(), run)?)
    }
}
