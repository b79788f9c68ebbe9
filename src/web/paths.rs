//! The path grammar the API and the pages share.

use super::Problem;
use crate::reference::Target;

/// `from...to`, each a tag or a digest.
pub fn compared(range: &str) -> Result<(Target, Target), Problem> {
    let (from, to) = range
        .split_once("...")
        .ok_or_else(|| Problem::bad_request(format!("compare {range:?}: write it as FROM...TO")))?;
    let side = |s: &str| -> Result<Target, Problem> {
        if s.contains(':') {
            crate::digest::parse(s)
                .map(Target::Digest)
                .map_err(|e| Problem::bad_request(format!("invalid digest: {e}")))
        } else {
            s.parse()
                .map(Target::Tag)
                .map_err(|e| Problem::bad_request(format!("invalid tag: {e}")))
        }
    };
    Ok((side(from)?, side(to)?))
}
