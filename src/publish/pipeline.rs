//! The publisher: runs the steps for every platform manifest behind a reference.

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::OnceCell;

use super::artifacts;
use super::existing::{Existing, Format, Missing};
use super::record::{RecordInput, VulnerabilityRecord};
use super::{PublishError, SignatureFormat, Step};
use crate::artifact::media_types::{OCI_MANIFEST, VULNERABILITY_RECORD};
use crate::artifact::{now_rfc3339, BuiltArtifact};
use crate::catalog::platforms::{platform_manifests, PlatformManifest};
use crate::digest::Digest;
use crate::oci::{Descriptor, Manifest, Platform};
use crate::reference::{Reference, Target};
use crate::registry::Client;
use crate::scan::{report, DbStatus, Grype, ImageSource, ScannerVersion, Syft};
use crate::sign::{bundle, legacy, KeyPair};

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
}

/// An artifact a run committed.
#[derive(Clone, Debug, Serialize)]
pub struct Published {
    /// Its format.
    pub format: Format,
    /// Its manifest digest.
    pub digest: Digest,
}

/// What happened to one platform manifest.
#[derive(Clone, Debug, Serialize)]
pub struct SubjectReport {
    /// `registry/repository@digest` of the platform manifest.
    pub subject: String,
    /// Its platform.
    pub platform: String,
    /// What CheckExisting found missing.
    pub missing: Missing,
    /// What this run committed.
    pub published: Vec<Published>,
}

/// Publishes signed SBOM and vulnerability referrers.
pub struct Publisher {
    client: Client,
    syft: Syft,
    grype: Grype,
    key: KeyPair,
    options: PublishOptions,
    versions: OnceCell<(ScannerVersion, ScannerVersion)>,
    db: OnceCell<DbStatus>,
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
            key,
            options,
            versions: OnceCell::new(),
            db: OnceCell::new(),
        }
    }

    async fn db(&self) -> Result<&DbStatus, PublishError> {
        Ok(self.db.get_or_try_init(|| self.grype.db_status()).await?)
    }

    async fn versions(&self) -> Result<&(ScannerVersion, ScannerVersion), PublishError> {
        self.versions
            .get_or_try_init(|| async {
                Ok::<_, PublishError>((self.syft.version().await?, self.grype.version().await?))
            })
            .await
    }

    fn reached(&self, step: Step) {
        tracing::debug!(%step, "step done");
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
        let subjects =
            platform_manifests(&self.client, reference, self.options.platform.as_ref()).await?;
        self.reached(Step::Resolve);
        let db_built = self.db().await?.built.clone();
        let mut out = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let referrers = self
                .client
                .referrers(&reference.repository, &subject.descriptor.digest, None)
                .await?;
            let existing = Existing::from_referrers(&referrers);
            let missing = if self.options.force {
                Missing::ALL
            } else {
                existing.missing(&db_built)
            };
            out.push((subject, existing, missing));
        }
        self.reached(Step::CheckExisting);
        Ok(out)
    }

    /// Publishes whatever is missing for every platform manifest behind `reference`.
    pub async fn publish(&self, reference: &Reference) -> Result<Vec<SubjectReport>, PublishError> {
        let mut reports = Vec::new();
        for (subject, existing, missing) in self.plan(reference).await? {
            let mut report = SubjectReport {
                subject: reference
                    .with_digest(subject.descriptor.digest.clone())
                    .to_string(),
                platform: subject.platform.to_string(),
                missing,
                published: Vec::new(),
            };
            if missing.any() {
                self.publish_subject(reference, &subject, &existing, missing, &mut report)
                    .await?;
            }
            self.reached(Step::Done);
            reports.push(report);
        }
        Ok(reports)
    }

    async fn publish_subject(
        &self,
        reference: &Reference,
        subject: &PlatformManifest,
        existing: &Existing,
        missing: Missing,
        report: &mut SubjectReport,
    ) -> Result<(), PublishError> {
        let (syft_version, grype_version) = self.versions().await?;
        let mut syft_json: Option<(Bytes, usize)> = None;
        if missing.syft || missing.spdx {
            let plain_http = self.client.plain_http();
            let sboms = self
                .syft
                .scan(&ImageSource {
                    registry: &reference.registry,
                    repository: reference.repository.as_str(),
                    digest: &subject.descriptor.digest,
                    platform: &subject.platform,
                    credentials: self.client.credentials(),
                    plain_http,
                })
                .await?;
            self.reached(Step::Syft);
            let created = now_rfc3339();
            let mut built = Vec::new();
            for (format, wanted, data) in [
                (Format::SyftJson, missing.syft, sboms.syft_json.clone()),
                (Format::SpdxJson, missing.spdx, sboms.spdx_json.clone()),
            ] {
                if wanted {
                    let artifact = artifacts::sbom(
                        format,
                        data,
                        subject,
                        syft_version,
                        sboms.packages,
                        self.options.compress,
                        &created,
                    );
                    built.push((format, artifact));
                }
            }
            self.commit(reference, &built, report).await?;
            syft_json = Some((sboms.syft_json, sboms.packages));
        }
        if missing.grype {
            let (sbom, packages) = match syft_json {
                Some(found) => found,
                None => self.stored_syft_json(reference, existing).await?,
            };
            let db = self.db().await?;
            let what = format!("{}@{}", reference.repository, subject.descriptor.digest);
            let grype_json = self.grype.scan_sbom(&sbom, &what).await?;
            self.reached(Step::Grype);
            let matches = report::matches(&grype_json)?;
            let previous = self.previous_record(reference, existing).await;
            let now = now_rfc3339();
            let record = VulnerabilityRecord::new(
                RecordInput {
                    subject: &subject.descriptor.digest,
                    platform: subject.platform.to_string(),
                    grype: grype_version,
                    db,
                    matches: &matches,
                    now: &now,
                },
                previous.as_ref(),
            );
            let artifact = artifacts::grype(
                grype_json,
                &record,
                subject,
                grype_version,
                db,
                packages,
                &now,
            );
            self.commit(reference, &[(Format::GrypeJson, artifact)], report)
                .await?;
        }
        Ok(())
    }

    /// Attach, Sign, Commit for a set of artifacts of one platform manifest.
    async fn commit(
        &self,
        reference: &Reference,
        built: &[(Format, BuiltArtifact)],
        report: &mut SubjectReport,
    ) -> Result<(), PublishError> {
        let repository = &reference.repository;
        for (_, artifact) in built {
            for (digest, data) in &artifact.blobs {
                self.client
                    .push_blob_if_missing(repository, digest, data)
                    .await?;
            }
        }
        self.reached(Step::Attach);
        for (_, artifact) in built {
            let signed = Descriptor::new(
                OCI_MANIFEST,
                artifact.digest.clone(),
                artifact.manifest.len() as u64,
            );
            match self.options.signature_format {
                SignatureFormat::Bundle => {
                    let signature = bundle::artifact(&self.key, &signed, &now_rfc3339());
                    self.client.push_artifact(repository, &signature).await?;
                }
                SignatureFormat::Legacy => {
                    let docker_reference = format!("{}/{repository}", reference.registry);
                    let (layer, payload) =
                        legacy::layer(&self.key, &docker_reference, &artifact.digest);
                    let (manifest, config) = legacy::manifest(std::slice::from_ref(&layer));
                    for blob in [payload, config] {
                        let digest = crate::digest::sha256(&blob);
                        self.client
                            .push_blob_if_missing(repository, &digest, &blob)
                            .await?;
                    }
                    self.client
                        .put_manifest(
                            repository,
                            &Target::Tag(legacy::signature_tag(&artifact.digest)),
                            OCI_MANIFEST,
                            manifest,
                        )
                        .await?;
                }
            }
        }
        self.reached(Step::Sign);
        for (format, artifact) in built {
            self.client
                .push_artifact_manifest(repository, artifact)
                .await?;
            report.published.push(Published {
                format: *format,
                digest: artifact.digest.clone(),
            });
        }
        self.reached(Step::Commit);
        Ok(())
    }

    /// The layers of a stored artifact manifest.
    async fn layers(
        &self,
        reference: &Reference,
        artifact: &Descriptor,
    ) -> Result<Vec<Descriptor>, PublishError> {
        let fetched = self
            .client
            .get_manifest(
                &reference.repository,
                &Target::Digest(artifact.digest.clone()),
            )
            .await?;
        match fetched.manifest {
            Manifest::Image(m) => Ok(m.layers),
            Manifest::Index(_) => Err(PublishError::Stored(format!(
                "{} is an index, not an artifact manifest",
                artifact.digest
            ))),
        }
    }

    /// The newest stored Syft JSON and its package count, for re-running grype alone.
    async fn stored_syft_json(
        &self,
        reference: &Reference,
        existing: &Existing,
    ) -> Result<(Bytes, usize), PublishError> {
        let newest = existing
            .syft
            .first()
            .ok_or_else(|| PublishError::Stored("no Syft JSON artifact to run grype on".into()))?;
        let layer = self
            .layers(reference, newest)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| PublishError::Stored(format!("{} has no layer", newest.digest)))?;
        let data = self
            .client
            .get_blob(&reference.repository, &layer.digest, None)
            .await?;
        let json = artifacts::syft_json_from_layer(&layer.media_type, data)?;
        let packages = newest
            .annotations
            .get(crate::artifact::annotations::PACKAGES)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok((json, packages))
    }

    /// The record of the newest earlier Grype artifact, for `first_seen`. A record that
    /// cannot be read only costs the carried-over dates, so it is logged, not fatal.
    async fn previous_record(
        &self,
        reference: &Reference,
        existing: &Existing,
    ) -> Option<VulnerabilityRecord> {
        let newest = existing.grype.first()?;
        let result = async {
            let layer = self
                .layers(reference, newest)
                .await?
                .into_iter()
                .find(|l| l.media_type == VULNERABILITY_RECORD)
                .ok_or_else(|| PublishError::Stored("no record layer".into()))?;
            let data = self
                .client
                .get_blob(&reference.repository, &layer.digest, Some(64 * 1024 * 1024))
                .await?;
            serde_json::from_slice::<VulnerabilityRecord>(&data)
                .map_err(|e| PublishError::Stored(format!("the record does not parse: {e}")))
        }
        .await;
        match result {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(artifact = %newest.digest, error = %e, "previous vulnerability record unreadable; first_seen starts over");
                None
            }
        }
    }
}
