//! Voyager's SDK: the engine, its chats and completions, exported with UniFFI to Swift,
//! Kotlin and Python (one library, `cdylib` + `staticlib`).
//!
//! A thin layer over `voyager_runtime`: `Engine` wraps `Arc<runtime::Engine>`, `Chat` wraps the
//! runtime's `Chat`, errors are the runtime's kinds. Every call runs behind a panic guard, so
//! a bug surfaces as `VoyagerError.Internal`, never as a crash of the app.

mod chat;
mod config;
mod engine;
mod error;
mod guard;

pub use chat::{Chat, TokenListener};
pub use config::{
    ContextUsage, EngineConfig, MemoryPlan, MemoryUse, Message, ModelInfo, Reply, ReplyStats,
    SamplingConfig, StopReason,
};
pub use engine::{plan, Engine};
pub use error::VoyagerError;

uniffi::setup_scaffolding!("voyager");

/// Panics inside the library, behind the same guard as every other call: for the SDK's tests
/// (and an app's) that a bug in Voyager becomes `VoyagerError.Internal`, not a crash.
#[uniffi::export]
pub fn debug_panic(message: String) -> Result<(), VoyagerError> {
    guard::guarded(|| -> Result<(), VoyagerError> { panic!("{message}") })
}

/// The version of the Voyager library.
#[uniffi::export]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
