//! What a model is: its architecture and sizes, read from GGUF metadata, and the bundle of
//! file, configuration, tokenizer and chat template that an engine loads.

mod bundle;
mod config;

pub use bundle::Model;
pub use config::{Architecture, ModelConfig, RopeLayout};
