//! Voyager's engine library.
//!
//! The pieces, in the order data flows through them:
//! - [`gguf`]: the memory-mapped model file, validated before anything is trusted;
//! - [`model`]: the typed architecture configuration read from GGUF metadata;
//! - [`quant`]: CPU dequantization, the reference the GPU kernels are tested against;
//! - [`tokenizer`]: a `tokenizers::Tokenizer` built from the GGUF vocabulary, and the chat template;
//! - [`gpu`]: the wgpu device and the compute kernels;
//! - [`kv`]: the KV cache's layout (sinks, window, 4-bit storage);
//! - [`arch`]: one file per architecture, building its forward pass from the kernels;
//! - [`budget`]: the memory plan, before anything is loaded;
//! - [`selfcheck`]: every kernel against its CPU twin, on the device at hand;
//! - [`engine`]: the loaded model, its sessions and the chat API the hosts use.
//!
//! Modules only use the ones above them in this list (options and errors aside), so there are
//! no import cycles.

pub mod arch;
pub mod budget;
pub mod device_record;
pub mod engine;
pub mod error;
pub mod files;
pub mod gguf;
pub mod gpu;
pub mod kv;
pub mod model;
pub mod options;
pub mod process_memory;
pub mod quant;
pub mod rng;
pub mod selfcheck;
pub mod tokenizer;

pub use engine::{Chat, Engine, EngineOptions, Session};
pub use error::{Error, ErrorKind, Result};
