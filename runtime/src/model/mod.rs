//! What a model is: its architecture and sizes, read from GGUF metadata.

mod config;

pub use config::{Architecture, ModelConfig, RopeLayout};
