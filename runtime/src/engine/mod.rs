//! The engine: one loaded model ([`Engine`]) and its conversations ([`Session`]).
//!
//! - [`Engine::load`] opens and validates the GGUF, creates the GPU device, builds every
//!   pipeline once and uploads the weights with progress reporting;
//! - [`Engine::session`] allocates a session's KV cache and scratch buffers and binds the
//!   architecture's forward pass once (`crate::arch`);
//! - a [`Session`] prefills prompts in batches, decodes token by token, samples, streams text,
//!   keeps its cache between turns and scores texts for perplexity.

mod graph;
mod kernels;
mod load;
mod options;
pub mod perplexity;
pub mod sampling;
mod session;

pub use load::{Engine, LoadProgress};
pub use options::EngineOptions;
pub use session::{GenerateOptions, Generation, Prompt, Session, StopReason, TokenScore};

pub(crate) use graph::{
    attention_params, layouts_for, scratch_bytes, Builder, Graph, Logits, Op, Scratch,
};
pub(crate) use kernels::Kernels;
