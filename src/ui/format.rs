//! How values read in a page: severity counts, verdicts, digests, links that keep the
//! other parameters.

use std::collections::BTreeMap;

use crate::scan::report::Severity;
use crate::trust::Verdict;
use crate::web::Problem;

/// Matches per severity, as table cells show them (`—` when there is no result).
#[derive(Clone, Debug)]
pub struct Counts {
    /// Critical, high, medium, low, and everything else.
    pub cells: [String; 5],
    /// Each cell's CSS class: its severity's colour when it is not zero.
    pub classes: [&'static str; 5],
}

impl Counts {
    /// The counts of a result, or dashes without one.
    pub fn of(counts: Option<&BTreeMap<Severity, usize>>) -> Counts {
        let Some(counts) = counts else {
            return Counts {
                cells: std::array::from_fn(|_| "—".to_string()),
                classes: [""; 5],
            };
        };
        let n = |s: Severity| counts.get(&s).copied().unwrap_or(0);
        let other = n(Severity::Negligible) + n(Severity::Unknown);
        let class = |count: usize, class: &'static str| if count > 0 { class } else { "" };
        Counts {
            cells: [
                n(Severity::Critical).to_string(),
                n(Severity::High).to_string(),
                n(Severity::Medium).to_string(),
                n(Severity::Low).to_string(),
                other.to_string(),
            ],
            classes: [
                class(n(Severity::Critical), "sev-critical"),
                class(n(Severity::High), "sev-high"),
                class(n(Severity::Medium), "sev-medium"),
                class(n(Severity::Low), "sev-low"),
                "",
            ],
        }
    }
}

/// A signed state as a CSS class and words; `None` when the catalog checks nothing.
pub fn signed(state: Option<bool>) -> Option<(&'static str, &'static str)> {
    state.map(|s| {
        if s {
            ("verified", "signed")
        } else {
            ("unsigned", "not signed")
        }
    })
}

/// A verdict as a CSS class and words.
pub fn verdict(verdict: Option<&Verdict>) -> (&'static str, String) {
    match verdict {
        None => ("muted", "none".into()),
        Some(Verdict::NotChecked) => ("unsigned", "not checked (no keys)".into()),
        Some(Verdict::Verified { format }) => ("verified", format!("verified ({format})")),
        Some(Verdict::Invalid { reason }) => ("invalid", format!("invalid: {reason}")),
        Some(Verdict::Unsigned) => ("unsigned", "unsigned".into()),
    }
}

/// A form's severity field: empty means any.
pub fn severity_field(text: &str) -> Result<Option<Severity>, Problem> {
    if text.is_empty() {
        return Ok(None);
    }
    Severity::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .map(Some)
        .ok_or_else(|| Problem::bad_request(format!("unknown severity {text:?}")))
}

/// A form's page field: empty means the first.
pub fn page_field(text: &str) -> Result<Option<usize>, Problem> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| Problem::bad_request(format!("page must be a number, not {text:?}")))
}

/// A form's text field: empty means not given.
pub fn text_field(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// How long ago RFC 3339 time `then` was, in the largest whole unit: `3 d`, `5 h`,
/// `< 1 h` (empty when it does not parse).
pub fn since(then: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(then) = time::OffsetDateTime::parse(then, &Rfc3339) else {
        return String::new();
    };
    let hours = (time::OffsetDateTime::now_utc() - then)
        .whole_hours()
        .max(0);
    match hours {
        0 => "< 1 h".into(),
        h if h < 48 => format!("{h} h"),
        h => format!("{} d", h / 24),
    }
}

/// `path?query` from the non-empty `pairs`.
pub fn link(path: &str, pairs: &[(&str, String)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(key, value);
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// The page path of a repository (its name's `/` kept, each component escaped).
pub fn image_path(name: &str) -> String {
    let escaped: Vec<String> = name
        .split('/')
        .map(|c| url::form_urlencoded::byte_serialize(c.as_bytes()).collect())
        .collect();
    format!("/images/{}", escaped.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_only_set_parameters() {
        let pairs = [("q", "a b".to_string()), ("page", String::new())];
        assert_eq!(link("/", &pairs), "/?q=a+b");
        assert_eq!(link("/", &[]), "/");
    }

    #[test]
    fn counts_fold_the_rare_severities_together() {
        let counts = BTreeMap::from([
            (Severity::Medium, 2),
            (Severity::Negligible, 1),
            (Severity::Unknown, 3),
        ]);
        let shown = Counts::of(Some(&counts));
        assert_eq!(shown.cells, ["0", "0", "2", "0", "4"]);
        assert_eq!(Counts::of(None).cells[0], "—");
    }
}
