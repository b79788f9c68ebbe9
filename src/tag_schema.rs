//! The tags that stand in for digests where a registry has no API for them: the referrers
//! tag schema's `<alg>-<ref>` index tag (OCI 1.1) and cosign's `<alg>-<hex>.sig` and
//! `.att` tags. Above both [`crate::digest`] and [`crate::reference`], which know
//! nothing of each other's grammar.

use crate::digest::{Digest, DigestError};
use crate::reference::Tag;

/// The tag under which the referrers tag schema keeps the referrers index of `subject`:
/// `<alg>-<ref>`, the algorithm cut to 32 characters and the encoded digest to 64, as
/// the distribution spec says (a sha512 digest in full would overrun the 128 characters
/// a tag may have).
pub fn referrers_tag(subject: &Digest) -> Result<Tag, DigestError> {
    let algorithm: String = subject.algorithm().as_ref().chars().take(32).collect();
    let encoded: String = subject.digest().chars().take(64).collect();
    as_tag(format!("{algorithm}-{encoded}"), subject)
}

/// cosign's `<alg>-<hex><suffix>` tag (`.sig`, `.att`). cosign does not truncate, so a
/// digest whose tag would not be a valid tag (sha512's is 139 characters) has none.
pub fn cosign_tag(subject: &Digest, suffix: &str) -> Result<Tag, DigestError> {
    as_tag(
        format!("{}-{}{suffix}", subject.algorithm(), subject.digest()),
        subject,
    )
}

fn as_tag(text: String, subject: &Digest) -> Result<Tag, DigestError> {
    text.parse()
        .map_err(|_| DigestError::NoTag(crate::text::shorten(subject.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{parse, sha256};

    #[test]
    fn referrers_tag_follows_the_tag_schema() {
        let d = sha256(b"{}");
        assert_eq!(
            referrers_tag(&d).unwrap().as_str(),
            format!("sha256-{}", d.digest())
        );
        let long = parse(&format!("sha512:{}", "ab".repeat(64))).unwrap();
        assert_eq!(
            referrers_tag(&long).unwrap().as_str(),
            format!("sha512-{}", "ab".repeat(32))
        );
        assert!(cosign_tag(&long, ".sig").is_err());
        assert_eq!(
            cosign_tag(&d, ".sig").unwrap().as_str(),
            format!("sha256-{}.sig", d.digest())
        );
    }
}
