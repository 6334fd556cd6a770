//! The live progress line of a recorded run: elapsed time and what was seen so far, drawn on
//! stderr when it is a terminal and hidden otherwise (indicatif decides).
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const TEMPLATE: &str = "{prefix}: {elapsed:>4}, {msg}";

/// One progress line; cleared when finished or dropped.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A line for `label` (e.g. `training profile-123`) on stderr.
    pub fn new(label: &str) -> Self {
        Self::with_target(label, ProgressDrawTarget::stderr())
    }

    fn with_target(label: &str, target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(None, target);
        // The template is a constant: a bad one is caught by the tests, not by users.
        bar.set_style(
            ProgressStyle::with_template(TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_string());
        Progress { bar }
    }

    /// Whether nothing is drawn (stderr is not a terminal): callers can skip the work of
    /// updating it.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// Shows how many distinct syscalls and calls the recording has seen.
    pub fn update(&self, distinct: usize, calls: u64) {
        self.bar
            .set_message(format!("{distinct} distinct syscalls, {calls} calls"));
    }

    /// Shows `message` after the elapsed time.
    pub fn message(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Prints `line` on stderr without tearing the progress line.
    pub fn eprintln(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Removes the line.
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use std::io::IsTerminal as _;

    use indicatif::InMemoryTerm;

    use super::*;

    #[test]
    fn the_line_shows_progress_and_is_cleared() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
        let term = InMemoryTerm::new(4, 100);
        let progress = Progress::with_target(
            "training profile-1",
            ProgressDrawTarget::term_like(Box::new(term.clone())),
        );
        assert!(!progress.is_hidden());
        progress.update(3, 1234);
        progress.bar.tick();
        assert_eq!(
            term.contents(),
            "training profile-1:   0s, 3 distinct syscalls, 1234 calls"
        );
        progress.finish();
        assert_eq!(term.contents(), "");
    }

    #[test]
    fn hidden_off_a_terminal() {
        assert_eq!(
            Progress::new("x").is_hidden(),
            !std::io::stderr().is_terminal()
        );
    }
}
