//! One module per page: what it reads from the catalog, and the template it fills.

pub mod artifacts;
pub mod compare;
pub mod directory;
pub mod download;
pub mod error;
pub mod history;
pub mod overview;
pub mod tag;
pub mod vulnerabilities;

use super::assets;

/// What every page's frame needs.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The `<title>`.
    pub title: String,
    /// The stylesheet's URL.
    pub style: &'static str,
    /// The script's URL.
    pub script: &'static str,
    /// The icon's URL.
    pub icon: &'static str,
    /// Which top-level section is current, for `aria-current`.
    pub section: &'static str,
    /// Whether the catalog checks no signatures (served without `--key`): every page
    /// then says so.
    pub unverified: bool,
}

impl Layout {
    /// The frame of a page titled `title` in `section`.
    pub fn new(title: impl Into<String>, section: &'static str) -> Layout {
        Layout {
            title: title.into(),
            style: assets::style(),
            script: assets::script(),
            icon: assets::icon(),
            section,
            unverified: false,
        }
    }

    /// The frame as `trust` reads the catalog: marked when it checks nothing.
    pub fn checked_by(mut self, trust: &crate::trust::Trust) -> Layout {
        self.unverified = !trust.checks();
        self
    }
}

/// Renders a template; askama fails only on a formatter error, which ours never give.
pub fn render(template: &impl askama::Template) -> String {
    template.render().expect("templates render")
}
