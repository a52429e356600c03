//! How an engine is loaded.

/// Options for [`crate::engine::Engine::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Context size in tokens; `None` takes the model's, capped at [`EngineOptions::DEFAULT_CONTEXT`].
    pub context: Option<usize>,
    /// Most tokens evaluated in one prefill step.
    pub batch: usize,
}

impl EngineOptions {
    /// Context used when none is asked for and the model allows more.
    pub const DEFAULT_CONTEXT: usize = 4096;
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            context: None,
            batch: 32,
        }
    }
}
