//! What refcat believes of what the registry holds, and why.
//!
//! Anyone with push access to a covered repository can attach look-alike artifacts,
//! rewrite a tag-schema index, retag `sha256-<hex>.sig`, and write any annotation or
//! `created` date. So content is never taken from a listing, a tag or an annotation:
//! it is read from an artifact whose manifest, read by digest, names the right
//! `subject` and whose signature verifies with a trusted key. Such content is a
//! [`Verified`], which only this room can build; what refcat signs, shows as verified,
//! deletes or pushes again is made from it.
//!
//! A [`Trust`] checks with keys ([`Trust::checking`], [`Trust::own`]), or, in the one
//! explicit mode meant for a catalog without keys, checks nothing and says so
//! ([`Trust::show_unverified`]). There is no default.

mod candidates;
mod content;
mod owned;
mod signatures;
mod verdicts;
mod verified;

use std::sync::Arc;
use std::time::Duration;

pub use candidates::{Candidate, Candidates, MAX_CANDIDATES};
pub use content::{ContentError, MAX_LAYER_BYTES};
pub use owned::Owned;
pub use verdicts::{Checking, Verdict, RECHECK};
pub use verified::{Origin, Proof, Shown, Unverified, Verified};

use crate::digest::Digest;
use crate::oci::{ImageIndex, ImageManifest, Manifest};
use crate::reference::{RepositoryName, Tag, Target};
use crate::registry::{Client, RegistryError};
use crate::sign::PublicKey;
use verdicts::Verdicts;

/// Why a trust policy could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Checking was asked for with no key to check with.
    #[error("no public key to verify signatures with: pass --key")]
    NoKeys,
}

#[derive(Clone)]
enum Mode {
    /// Signatures are checked with these keys; with `require`, what fails is hidden.
    Checked {
        keys: Arc<[PublicKey]>,
        require: bool,
    },
    /// Nothing is checked, and everything shown says so.
    Unverified,
}

/// Whose signatures count, and whether what fails is hidden. Clones share what they
/// remember.
#[derive(Clone)]
pub struct Trust {
    mode: Mode,
    verdicts: Verdicts,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mode {
            Mode::Checked { keys, require } => f
                .debug_struct("Trust")
                .field("keys", &keys.len())
                .field("require", require)
                .field("verdicts", &self.verdicts)
                .finish(),
            Mode::Unverified => f.write_str("Trust(unverified: nothing is checked)"),
        }
    }
}

/// What a trust knows of an artifact without asking, in the order candidates are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Known {
    /// Its signature verified before.
    Proved,
    /// Not judged yet (or judged too long ago).
    Unjudged,
    /// Judged, and not proved.
    FoundWanting,
}

/// A candidate and the verdict on it: its content when a view may show it.
#[derive(Clone, Debug)]
pub struct Judged {
    candidate: Candidate,
    verdict: Verdict,
    content: Option<Shown<Candidate>>,
}

impl Judged {
    /// The artifact judged.
    pub fn artifact(&self) -> &Digest {
        self.candidate.digest()
    }

    /// Its verdict (`not-checked` in the unverified mode).
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Its content, when a view may show it: verified, or in the unverified mode.
    /// Otherwise a view names the artifact and its verdict, and shows none of its numbers.
    pub fn content(&self) -> Option<&Shown<Candidate>> {
        self.content.as_ref()
    }

    /// [`Judged::content`], owned.
    pub fn into_content(self) -> Option<Shown<Candidate>> {
        self.content
    }
}

impl Trust {
    /// Checks signatures with `keys`; with `require`, hides what does not verify.
    pub fn checking(keys: Vec<PublicKey>, require: bool) -> Result<Trust, TrustError> {
        if keys.is_empty() {
            return Err(TrustError::NoKeys);
        }
        Ok(Trust {
            mode: Mode::Checked {
                keys: keys.into(),
                require,
            },
            verdicts: Verdicts::new(RECHECK),
        })
    }

    /// Trusts only `key`, and only what verifies with it: what proves an artifact or a
    /// stored document is this publisher's own.
    pub fn own(key: PublicKey) -> Trust {
        Trust::checking(vec![key], true).expect("one key")
    }

    /// The explicit unverified mode: nothing is checked, everything is shown, and every
    /// view marks it `not-checked`. For a catalog served without `--key` only.
    pub fn show_unverified() -> Trust {
        Trust {
            mode: Mode::Unverified,
            verdicts: Verdicts::new(RECHECK),
        }
    }

    /// Checks a verdict again once it is older than `recheck` (by default
    /// [`RECHECK`]), so that a deleted signature stops counting.
    pub fn recheck_after(mut self, recheck: Duration) -> Self {
        self.verdicts = Verdicts::new(recheck);
        self
    }

    /// Whether signatures are checked at all.
    pub fn checks(&self) -> bool {
        matches!(self.mode, Mode::Checked { .. })
    }

    /// [`Trust::checks`], as views state it.
    pub fn signatures(&self) -> Checking {
        match self.mode {
            Mode::Checked { .. } => Checking::Checked,
            Mode::Unverified => Checking::NotChecked,
        }
    }

    /// The keys signatures are checked with (none in the unverified mode).
    pub fn keys(&self) -> &[PublicKey] {
        match &self.mode {
            Mode::Checked { keys, .. } => keys,
            Mode::Unverified => &[],
        }
    }

    /// Whether what does not verify is hidden.
    pub fn requires(&self) -> bool {
        matches!(self.mode, Mode::Checked { require: true, .. })
    }

    /// The verdict on `artifact` (`not-checked` in the unverified mode).
    pub async fn verdict(
        &self,
        client: &Client,
        repository: &RepositoryName,
        artifact: &Digest,
    ) -> Result<Verdict, RegistryError> {
        let Mode::Checked { keys, .. } = &self.mode else {
            return Ok(Verdict::NotChecked);
        };
        let key = format!("{repository}@{artifact}");
        if let Some(known) = self.verdicts.get(&key).await {
            return Ok(known);
        }
        let before = self.verdicts.prover(&key).await;
        let checked =
            signatures::check(client, repository, artifact, keys, false, before.as_ref()).await?;
        if let Some(prover) = checked.proving.first() {
            self.verdicts
                .remember_prover(key.clone(), &prover.digest)
                .await;
        }
        self.verdicts.remember(key, &checked.verdict).await;
        Ok(checked.verdict)
    }

    /// What this trust knows of `artifact` without asking the registry, for choosing
    /// which candidates to read: one proved before stays first even once its verdict is
    /// due a recheck, so that look-alikes never crowd it out.
    pub(crate) async fn known(&self, repository: &RepositoryName, artifact: &Digest) -> Known {
        let key = format!("{repository}@{artifact}");
        match self.verdicts.get(&key).await {
            Some(v) if v.is_verified() => Known::Proved,
            Some(_) => Known::FoundWanting,
            None if self.verdicts.manifest(&key).await.is_some() => Known::Proved,
            None => Known::Unjudged,
        }
    }

    /// The verdict on `candidate`, and its content when a view may show it.
    pub async fn judge(
        &self,
        client: &Client,
        repository: &RepositoryName,
        candidate: &Candidate,
    ) -> Result<Judged, RegistryError> {
        let subject = candidate
            .manifest()
            .subject
            .as_ref()
            .map(|s| s.digest.clone());
        let (verdict, content) = self
            .vouch(
                client,
                repository,
                candidate.digest(),
                subject,
                candidate.clone(),
            )
            .await?;
        if content
            .as_ref()
            .is_some_and(|c| matches!(c, Shown::Verified(_)))
        {
            self.verdicts
                .remember_manifest(
                    format!("{repository}@{}", candidate.digest()),
                    candidate.manifest(),
                )
                .await;
        }
        Ok(Judged {
            candidate: candidate.clone(),
            verdict,
            content,
        })
    }

    /// The verdict on `artifact`, and `content` shown as it may be. Private to this
    /// room: its callers pass only content they read from `artifact` itself (its
    /// manifest, read by digest), never anything else.
    async fn vouch<T>(
        &self,
        client: &Client,
        repository: &RepositoryName,
        artifact: &Digest,
        subject: Option<Digest>,
        content: T,
    ) -> Result<(Verdict, Option<Shown<T>>), RegistryError> {
        let verdict = self.verdict(client, repository, artifact).await?;
        let origin = Origin::new(repository.clone(), artifact.clone(), subject);
        let shown = match &verdict {
            Verdict::NotChecked => Some(Shown::Unverified(Unverified::new(
                content,
                Arc::new(origin),
            ))),
            Verdict::Verified { format } => Some(Shown::Verified(Verified::new(
                content,
                Arc::new(Proof::new(origin, format)),
            ))),
            Verdict::Invalid { .. } | Verdict::Unsigned => None,
        };
        Ok((verdict, shown))
    }

    /// The candidate a view shows, of `candidates` (newest first): the newest whose
    /// content may be shown, so a newer forgery cannot hide a signed result; when none
    /// may, the newest with its verdict (or nothing, when this trust requires
    /// signatures).
    pub async fn newest(
        &self,
        client: &Client,
        repository: &RepositoryName,
        candidates: &[Candidate],
    ) -> Result<Option<Judged>, RegistryError> {
        let mut first_failure = None;
        for candidate in candidates {
            let judged = self.judge(client, repository, candidate).await?;
            if judged.content.is_some() {
                return Ok(Some(judged));
            }
            tracing::debug!(%repository, artifact = %candidate.digest(), verdict = ?judged.verdict, "not shown");
            first_failure.get_or_insert(judged);
        }
        Ok(first_failure.filter(|_| !self.requires()))
    }

    /// Up to `limit` of `candidates` (newest first) that verify with this trust's keys,
    /// newest first; none in the unverified mode.
    pub async fn verified(
        &self,
        client: &Client,
        repository: &RepositoryName,
        candidates: &[Candidate],
        limit: usize,
    ) -> Result<Vec<Verified<Candidate>>, RegistryError> {
        let mut out = Vec::new();
        for candidate in candidates {
            if out.len() >= limit {
                break;
            }
            let judged = self.judge(client, repository, candidate).await?;
            if let Some(verified) = judged.content.and_then(Shown::verified) {
                out.push(verified);
            }
        }
        Ok(out)
    }

    /// The manifest of an artifact this trust proved before.
    pub(crate) async fn proved_manifest(
        &self,
        repository: &RepositoryName,
        artifact: &Digest,
    ) -> Option<Arc<ImageManifest>> {
        self.verdicts
            .manifest(&format!("{repository}@{artifact}"))
            .await
    }

    /// The catalog document of `artifact_type` tagged `tag` in `repository`: `None` when
    /// there is none, or when its signature does not verify (logged): a forged document
    /// must not stand in for a signed one.
    pub async fn document(
        &self,
        client: &Client,
        repository: &RepositoryName,
        tag: &Tag,
        artifact_type: &str,
    ) -> Result<Option<Shown<Candidate>>, RegistryError> {
        let Some(fetched) = tagged(client, repository, tag).await? else {
            return Ok(None);
        };
        let Manifest::Image(manifest) = &fetched.manifest else {
            return Ok(None);
        };
        if manifest.artifact_type.as_deref() != Some(artifact_type) || manifest.subject.is_some() {
            return Ok(None);
        }
        let candidate = Candidate::tagged(fetched.descriptor(), manifest.clone());
        let judged = self.judge(client, repository, &candidate).await?;
        if judged.content.is_none() {
            tracing::warn!(%repository, %tag, verdict = ?judged.verdict, "a stored catalog document's signature does not verify; not used");
        }
        Ok(judged.content)
    }
}

impl Trust {
    /// An index refcat keeps under a tag of its own (`artifact_type` says which), with
    /// every index it names by digest as `follow` picks them (the release log's sealed
    /// segments): `None` when there is none, or when its signature does not verify
    /// (logged). What it names by digest is covered by its signature, and read by
    /// digest.
    pub async fn tagged_index(
        &self,
        client: &Client,
        repository: &RepositoryName,
        tag: &Tag,
        artifact_type: &str,
        follow: fn(&ImageIndex) -> Vec<Digest>,
    ) -> Result<Option<Shown<(ImageIndex, Vec<ImageIndex>)>>, RegistryError> {
        let Some(fetched) = tagged(client, repository, tag).await? else {
            return Ok(None);
        };
        let Manifest::Index(head) = fetched.manifest else {
            return Ok(None);
        };
        if head.artifact_type.as_deref() != Some(artifact_type) {
            return Ok(None);
        }
        // The head's signature first: nothing it names is read before it is believed.
        let (verdict, shown) = self
            .vouch(client, repository, &fetched.digest, None, ())
            .await?;
        let Some(shown) = shown else {
            tracing::warn!(%repository, %tag, ?verdict, "its signature does not verify; not used");
            return Ok(None);
        };
        let mut seen = std::collections::HashSet::new();
        let mut named = follow(&head);
        named.retain(|d| seen.insert(d.clone()));
        if named.len() > MAX_FOLLOWED {
            tracing::warn!(%repository, %tag, named = named.len(), "names more indexes than refcat writes; only {MAX_FOLLOWED} are read");
            named.truncate(MAX_FOLLOWED);
        }
        let mut followed = Vec::new();
        for digest in named {
            match client
                .get_manifest(repository, &Target::Digest(digest.clone()))
                .await
            {
                Ok(part) => match part.manifest {
                    Manifest::Index(index) => followed.push(index),
                    Manifest::Image(_) => tracing::warn!(%repository, %tag, %digest,
                        "names a manifest where an index was expected; left out"),
                },
                Err(e) if e.is_not_found() => {
                    tracing::warn!(%repository, %tag, %digest, "names an index that is gone; left out")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some(shown.with((head, followed))))
    }
}

/// Indexes a tagged index may name that are read: 1,000 release-log segments of 500
/// releases each.
const MAX_FOLLOWED: usize = 1000;

/// What `tag` names, `None` when it names nothing.
async fn tagged(
    client: &Client,
    repository: &RepositoryName,
    tag: &Tag,
) -> Result<Option<crate::registry::FetchedManifest>, RegistryError> {
    match client
        .get_manifest(repository, &Target::Tag(tag.clone()))
        .await
    {
        Ok(fetched) => Ok(Some(fetched)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checking_needs_a_key() {
        assert!(matches!(
            Trust::checking(Vec::new(), false),
            Err(TrustError::NoKeys)
        ));
        let own = Trust::own(crate::sign::KeyPair::generate().public_key());
        assert!(own.checks() && own.requires());
        let open = Trust::show_unverified();
        assert!(!open.checks() && !open.requires() && open.keys().is_empty());
    }
}
