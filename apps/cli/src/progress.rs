//! Progress bars for things a person waits on.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of bytes done out of a total, labelled `what`, on stderr.
pub fn bytes_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Shows a model pull: a spinner for each stage, a byte bar while the file is assembled.
pub struct PullProgress {
    bar: ProgressBar,
    name: String,
    /// Whether the bar has been started (it is created hidden).
    started: bool,
}

impl PullProgress {
    /// A bar that stays hidden until the pull has something to show (a model already on disk
    /// prints nothing).
    pub fn new(name: &str) -> Self {
        let bar = ProgressBar::hidden();
        Self {
            bar,
            name: name.to_string(),
            started: false,
        }
    }

    pub fn finish(&self, msg: &str) {
        self.bar.finish_and_clear();
        eprintln!("{msg}");
    }
}

impl voyager_models::Progress for PullProgress {
    fn stage(&mut self, msg: &str) {
        if !self.started {
            self.started = true;
            self.bar = ProgressBar::new_spinner();
            self.bar.enable_steady_tick(Duration::from_millis(120));
        }
        self.bar.set_message(format!("{}: {msg}", self.name));
    }

    fn bytes(&mut self, done: u64, total: u64) {
        if !self.started {
            self.started = true;
            self.bar = ProgressBar::new(total);
        }
        if self.bar.length() != Some(total) {
            self.bar.set_length(total);
            self.bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
        }
        self.bar.set_position(done);
    }
}

impl Drop for PullProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
