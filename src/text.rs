//! Text helpers shared by every layer, importing nothing of the crate.

/// Shortens user input for error messages so a megabyte of garbage stays out of logs.
pub fn shorten(input: &str) -> String {
    const LIMIT: usize = 80;
    if input.chars().count() <= LIMIT {
        return input.to_string();
    }
    let head: String = input.chars().take(LIMIT).collect();
    format!("{head}… ({} bytes)", input.len())
}
