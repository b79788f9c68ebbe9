//! Content with its proof. [`Verified`] is content read from an artifact whose
//! signature verified with a trusted key, for the subject it names; only this room can
//! build one. [`Unverified`] is content shown in the explicit unverified mode
//! ([`super::Trust::show_unverified`]); [`Shown`] is either, as the views take it.
//!
//! Content is derived from verified content only through plain `fn` items
//! ([`Verified::map`]), which cannot capture anything: a parse of verified bytes stays
//! verified, while nothing read at run time (a listing, a tag, a look-alike's bytes)
//! can be slipped in.

use std::sync::Arc;

use crate::digest::Digest;
use crate::reference::RepositoryName;

/// Where content was read from: the artifact, its repository, and the manifest it is
/// about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    repository: RepositoryName,
    artifact: Digest,
    subject: Option<Digest>,
}

impl Origin {
    pub(super) fn new(
        repository: RepositoryName,
        artifact: Digest,
        subject: Option<Digest>,
    ) -> Self {
        Origin {
            repository,
            artifact,
            subject,
        }
    }

    /// The repository the artifact was read from.
    pub fn repository(&self) -> &RepositoryName {
        &self.repository
    }

    /// The artifact manifest.
    pub fn artifact(&self) -> &Digest {
        &self.artifact
    }

    /// The manifest the artifact is about (its `subject`), `None` for a catalog document.
    pub fn subject(&self) -> Option<&Digest> {
        self.subject.as_ref()
    }
}

/// Why content is trusted: where it was read from, and which signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    origin: Origin,
    signature: &'static str,
}

impl Proof {
    pub(super) fn new(origin: Origin, signature: &'static str) -> Self {
        Proof { origin, signature }
    }

    /// Where the content was read from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The repository the artifact was read from.
    pub fn repository(&self) -> &RepositoryName {
        &self.origin.repository
    }

    /// The artifact manifest whose signature verified.
    pub fn artifact(&self) -> &Digest {
        &self.origin.artifact
    }

    /// The manifest the artifact is about (its `subject`), `None` for a catalog document.
    pub fn subject(&self) -> Option<&Digest> {
        self.origin.subject.as_ref()
    }

    /// `bundle` or `legacy`: which signature verified.
    pub fn signature(&self) -> &'static str {
        self.signature
    }
}

/// Content whose signature verified with a trusted key; built only by the trust room.
#[derive(Clone, Debug)]
pub struct Verified<T> {
    value: T,
    proof: Arc<Proof>,
}

impl<T> Verified<T> {
    pub(super) fn new(value: T, proof: Arc<Proof>) -> Self {
        Verified { value, proof }
    }

    /// The content.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// The content, leaving its proof behind.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The content, and its proof alone (for a delete of what it came from, which needs
    /// the proof and no content).
    pub fn into_parts(self) -> (T, Verified<()>) {
        (
            self.value,
            Verified {
                value: (),
                proof: self.proof,
            },
        )
    }

    /// Why it is trusted.
    pub fn proof(&self) -> &Proof {
        &self.proof
    }

    /// Content derived from this content alone: `derive` is a plain function, so it
    /// cannot bring in anything else.
    pub fn map<U>(self, derive: fn(T) -> U) -> Verified<U> {
        Verified {
            value: derive(self.value),
            proof: self.proof,
        }
    }

    /// [`Verified::map`] for a derivation that can fail (a parse).
    pub fn try_map<U, E>(self, derive: fn(T) -> Result<U, E>) -> Result<Verified<U>, E> {
        Ok(Verified {
            value: derive(self.value)?,
            proof: self.proof,
        })
    }

    /// The same proof over a borrowed view of the content.
    pub fn as_ref(&self) -> Verified<&T> {
        Verified {
            value: &self.value,
            proof: self.proof.clone(),
        }
    }
}

/// Content shown without any signature check, in the explicit unverified mode; every
/// view that shows it says so.
#[derive(Clone, Debug)]
pub struct Unverified<T> {
    value: T,
    origin: Arc<Origin>,
}

impl<T> Unverified<T> {
    pub(super) fn new(value: T, origin: Arc<Origin>) -> Self {
        Unverified { value, origin }
    }
}

/// What a view may show: verified content, or, only in the unverified mode, unchecked
/// content.
#[derive(Clone, Debug)]
pub enum Shown<T> {
    /// Its signature verified.
    Verified(Verified<T>),
    /// Nothing was checked (serve without `--key`).
    Unverified(Unverified<T>),
}

impl<T> Shown<T> {
    /// The content.
    pub fn get(&self) -> &T {
        match self {
            Shown::Verified(v) => &v.value,
            Shown::Unverified(u) => &u.value,
        }
    }

    /// Where it was read from.
    pub fn origin(&self) -> &Origin {
        match self {
            Shown::Verified(v) => &v.proof.origin,
            Shown::Unverified(u) => &u.origin,
        }
    }

    /// The artifact it was read from.
    pub fn artifact(&self) -> &Digest {
        self.origin().artifact()
    }

    /// Other content from the same artifact (one of its layers), shown as it is.
    pub(super) fn with<U>(&self, value: U) -> Shown<U> {
        match self {
            Shown::Verified(v) => Shown::Verified(Verified {
                value,
                proof: v.proof.clone(),
            }),
            Shown::Unverified(u) => Shown::Unverified(Unverified {
                value,
                origin: u.origin.clone(),
            }),
        }
    }

    /// The verdict a view states for it.
    pub fn verdict(&self) -> super::Verdict {
        match self {
            Shown::Verified(v) => super::Verdict::Verified {
                format: v.proof.signature,
            },
            Shown::Unverified(_) => super::Verdict::NotChecked,
        }
    }

    /// The verified content, `None` when it was not checked.
    pub fn verified(self) -> Option<Verified<T>> {
        match self {
            Shown::Verified(v) => Some(v),
            Shown::Unverified(_) => None,
        }
    }

    /// See [`Verified::map`].
    pub fn map<U>(self, derive: fn(T) -> U) -> Shown<U> {
        match self {
            Shown::Verified(v) => Shown::Verified(v.map(derive)),
            Shown::Unverified(u) => Shown::Unverified(Unverified {
                value: derive(u.value),
                origin: u.origin,
            }),
        }
    }

    /// See [`Verified::try_map`].
    pub fn try_map<U, E>(self, derive: fn(T) -> Result<U, E>) -> Result<Shown<U>, E> {
        Ok(match self {
            Shown::Verified(v) => Shown::Verified(v.try_map(derive)?),
            Shown::Unverified(u) => Shown::Unverified(Unverified {
                value: derive(u.value)?,
                origin: u.origin,
            }),
        })
    }

    /// [`Shown::try_map`] on a blocking thread, for a parse that takes a while (a Syft
    /// JSON of tens of MB) and must not hold up the runtime.
    pub async fn try_map_blocking<U, E>(
        self,
        derive: fn(T) -> Result<U, E>,
    ) -> Result<Result<Shown<U>, E>, tokio::task::JoinError>
    where
        T: Send + 'static,
        U: Send + 'static,
        E: Send + 'static,
    {
        tokio::task::spawn_blocking(move || self.try_map(derive)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin::new(
            "a/b".parse().unwrap(),
            crate::digest::sha256(b"artifact"),
            Some(crate::digest::sha256(b"subject")),
        )
    }

    fn proof() -> Arc<Proof> {
        Arc::new(Proof::new(origin(), "bundle"))
    }

    #[test]
    fn derived_content_keeps_its_proof() {
        let verified = Verified::new(b"[1,2]".to_vec(), proof());
        let parsed: Verified<Vec<u8>> = verified
            .try_map(|b| serde_json::from_slice::<Vec<u8>>(&b))
            .unwrap();
        assert_eq!(parsed.get(), &[1, 2]);
        assert_eq!(parsed.proof().signature(), "bundle");
        assert_eq!(
            parsed.proof().subject(),
            Some(&crate::digest::sha256(b"subject"))
        );
        let shown = Shown::Verified(parsed).map(|v| v.len());
        assert_eq!(*shown.get(), 2);
        assert!(shown.verdict().is_verified());
    }

    #[test]
    fn unverified_content_says_so() {
        let shown = Shown::Unverified(Unverified::new(1, Arc::new(origin())));
        assert_eq!(shown.verdict(), super::super::Verdict::NotChecked);
        assert!(shown.verified().is_none());
    }
}
