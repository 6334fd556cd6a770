//! How every report is shown: text for a terminal, Markdown for a review or a CI summary, JSON
//! for machines; the format a file's name asks for; and the words reports share.
use std::path::Path;

use crate::output::{self, OutputError};

/// A report that renders as text, Markdown and JSON.
pub trait Render {
    /// Plain text for a terminal.
    fn text(&self) -> String;
    /// Markdown, fit for a CI job summary or a review.
    fn markdown(&self) -> String;
    /// Stable JSON: fields in declaration order, two-space indent, a trailing newline.
    fn json(&self) -> serde_json::Result<String>;

    /// The report in the format `path`'s extension names: `.json`, `.md`, anything else text.
    fn for_file(&self, path: &Path) -> serde_json::Result<String> {
        Ok(match path.extension().and_then(|e| e.to_str()) {
            Some("json") => self.json()?,
            Some("md") | Some("markdown") => self.markdown(),
            _ => self.text(),
        })
    }
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    // Not transparent: the command line looks for a closed stdout in the chain.
    #[error("{0}")]
    Output(#[from] OutputError),
}

/// Writes `report` (atomically) to `path`, in the format its extension names.
pub fn write(path: &Path, report: &impl Render) -> Result<(), ReportError> {
    output::write_atomic(path, report.for_file(path)?.as_bytes())?;
    Ok(())
}

/// A reduction as words: `23.6% fewer`, or `23.6% more` when it is negative.
pub fn fewer_or_more(percent_less: f64) -> String {
    if percent_less < 0.0 {
        format!("{:.1}% more", -percent_less)
    } else {
        format!("{percent_less:.1}% fewer")
    }
}

/// How much smaller `part` is than `whole`, in percent to one decimal.
pub fn percent_less(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    tenths(100.0 * (1.0 - part as f64 / whole as f64))
}

/// `x` rounded to one decimal, as reports show percentages and durations.
pub fn tenths(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(percent_less(31, 309), 90.0);
        assert_eq!(percent_less(0, 0), 0.0);
        assert_eq!(fewer_or_more(90.0), "90.0% fewer");
        assert_eq!(fewer_or_more(-23.6), "23.6% more");
    }
}
