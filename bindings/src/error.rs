//! `VoyagerError`: the engine's error kinds, each with its one-line message (Swift `throws`,
//! Kotlin and Python exceptions).

use voyager_runtime::{Error, ErrorKind};

#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum VoyagerError {
    /// The file is not a valid GGUF model (truncated, corrupt, inconsistent).
    #[error("{detail}")]
    InvalidModel { detail: String },
    /// A valid model Voyager cannot run (its architecture, a tensor type).
    #[error("{detail}")]
    UnsupportedModel { detail: String },
    /// The memory budget cannot hold what was asked; `smallest_budget_bytes` would.
    #[error("{detail}")]
    Budget {
        detail: String,
        smallest_budget_bytes: Option<u64>,
    },
    /// A sequence or position the session cannot hold.
    #[error("{detail}")]
    Context { detail: String },
    /// A bad option or input: a sampling value, an empty prompt, an unknown cache type.
    #[error("{detail}")]
    InvalidArgument { detail: String },
    /// The operation was cancelled.
    #[error("{detail}")]
    Cancelled { detail: String },
    /// No usable GPU, or a driver error (the message says how to install one).
    #[error("{detail}")]
    Gpu { detail: String },
    /// Reading or writing a file failed (a missing model file, a full disk).
    #[error("{detail}")]
    Io { detail: String },
    /// The app's token listener threw; the answer stopped there.
    #[error("{detail}")]
    Listener { detail: String },
    /// A bug in Voyager, caught at the boundary.
    #[error("{detail}")]
    Internal { detail: String },
}

impl From<Error> for VoyagerError {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match e.kind() {
            ErrorKind::InvalidModel => Self::InvalidModel { detail },
            ErrorKind::UnsupportedModel => Self::UnsupportedModel { detail },
            ErrorKind::Budget => Self::Budget {
                smallest_budget_bytes: e.smallest_budget(),
                detail,
            },
            ErrorKind::Context => Self::Context { detail },
            ErrorKind::InvalidArgument => Self::InvalidArgument { detail },
            ErrorKind::Cancelled => Self::Cancelled { detail },
            ErrorKind::Gpu => Self::Gpu { detail },
            ErrorKind::Io => Self::Io { detail },
        }
    }
}

/// A failure inside the app's callback, which UniFFI reports as this.
impl From<uniffi::UnexpectedUniFFICallbackError> for VoyagerError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Listener {
            detail: format!("the token listener threw: {}", e.reason),
        }
    }
}

pub fn invalid(message: impl Into<String>) -> VoyagerError {
    VoyagerError::InvalidArgument {
        detail: message.into(),
    }
}
