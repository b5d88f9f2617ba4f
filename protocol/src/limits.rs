//! Sizes both sides of the agent protocol keep to, so that no line or batch
//! of a log can make the control plane refuse it: the agent cuts long lines
//! and ships batches no larger than these, and the control plane checks them.

use std::borrow::Cow;

/// A task log's (a build's) longest line; longer ones are cut.
pub const MAX_TASK_LOG_LINE_BYTES: usize = 16 * 1024;
/// A task log batch's most bytes (lines joined).
pub const MAX_LOG_BATCH_BYTES: usize = 256 * 1024;
/// An application log's longest line; longer ones are cut.
pub const MAX_APP_LOG_LINE_BYTES: usize = 8 * 1024;
/// An application log batch's most lines.
pub const MAX_APP_LOG_LINES: usize = 5000;
/// An application log batch's most bytes of lines.
pub const MAX_APP_LOG_BATCH_BYTES: usize = 512 * 1024;

/// `text` cut to at most `max` bytes on a character boundary, saying how
/// much was cut (the marker fits within `max`).
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let marker = |cut: usize| format!(" …[{cut} bytes cut]");
    let mut end = max.saturating_sub(marker(text.len()).len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{}", &text[..end], marker(text.len() - end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_within_the_limit_and_say_so() {
        assert_eq!(clip("short", 10), "short");
        let long = "é".repeat(10_000);
        let cut = clip(&long, 1000);
        assert!(cut.len() <= 1000, "{}", cut.len());
        assert!(cut.ends_with("bytes cut]"), "{cut}");
        assert!(cut.starts_with('é'));
    }
}
