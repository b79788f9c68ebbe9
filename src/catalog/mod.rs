//! Read views resolved from the registry: the referrers tree, signature verdicts.

pub mod platforms;
pub mod referrers_tree;
pub mod signatures;
