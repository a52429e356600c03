//! The library's error type: every failure a user can cause is a variant with a one-line message.

use std::path::PathBuf;

/// Everything that can go wrong in the runtime, each with a message fit for one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a GGUF file: {0}")]
    NotGguf(String),
    #[error("malformed GGUF file: {0}")]
    Malformed(String),
    #[error("unsupported GGUF: {0}")]
    Unsupported(String),
    #[error("missing or invalid metadata `{key}`: {why}")]
    Metadata { key: String, why: String },
    #[error("tensor `{0}` not found in the model")]
    MissingTensor(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("GPU: {0}")]
    Gpu(String),
    /// A memory budget that cannot be met, or a size that cannot be read.
    #[error("memory budget: {0}")]
    Budget(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
