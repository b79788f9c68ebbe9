pub mod referrers_tree;
