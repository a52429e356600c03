//! Voyager's engine library.
//!
//! The pieces, in the order data flows through them:
//! - [`gguf`]: the memory-mapped model file, validated before anything is trusted;
//! - [`model`]: the typed architecture configuration read from GGUF metadata;
//! - [`quant`]: CPU dequantization, the reference the GPU kernels are tested against;
//! - [`tokenizer`]: a `tokenizers::Tokenizer` built from the GGUF vocabulary, and the chat template;
//! - [`gpu`]: the wgpu device and the compute kernels.

pub(crate) mod arch;
pub mod budget;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod gpu;
pub mod kv;
pub mod model;
pub mod quant;
pub mod tokenizer;

pub use error::{Error, Result};
