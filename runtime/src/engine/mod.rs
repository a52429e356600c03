//! The engine: one loaded model ([`Engine`], shared as `Arc<Engine>`), its conversations
//! ([`Session`]), and the conversation API every host uses ([`Chat`]).
//!
//! - [`Engine::load`] opens and validates the GGUF, plans its memory, creates the GPU device,
//!   checks its kernels, builds every pipeline once and uploads the weights with progress
//!   reporting;
//! - [`Engine::session`] allocates a session's KV cache and scratch buffers (refused when the
//!   budget has no room) and binds the architecture's forward pass once (`crate::arch`);
//! - a [`Session`] prefills prompts in batches, decodes token by token, samples, streams text,
//!   keeps its cache between turns and scores texts for perplexity;
//! - a [`Chat`] keeps the messages of a conversation over a session.

mod chat;
pub(crate) mod graph;
mod load;
pub mod perplexity;
pub mod sampling;
mod session;
pub mod session_file;
mod stop_text;
pub mod traffic;

pub use crate::options::{EngineOptions, SelfCheck};
pub use chat::{Chat, ContextUsage, Reply, TurnStats, ROLES};
pub use graph::OpTime;
pub use load::{Engine, LoadProgress};
pub use session::{
    CancelToken, GenerateOptions, Generation, Piece, Prompt, Session, StopReason, TokenLogprob,
    TokenScore,
};

/// Compile-time proof of what hosts rely on: an engine shared across threads, sessions and
/// chats moved to worker threads.
#[allow(dead_code)]
fn thread_safety() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Engine>();
    send::<Session>();
    send::<Chat>();
    send_sync::<CancelToken>();
}
