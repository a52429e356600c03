//! The library's error type: every failure a user can cause is a variant with a one-line message,
//! and every variant belongs to one [`ErrorKind`] that hosts (the CLI, the SDK, the desktop app,
//! the server) map to their own error types.

use std::path::PathBuf;

/// What kind of failure an [`Error`] is, for hosts that map errors to their own types (a Swift
/// enum case, an HTTP status, a dialog). The message says the real cause; the kind says who can
/// fix it and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The model file is not a valid GGUF model: truncated, corrupt, inconsistent.
    InvalidModel,
    /// A valid model Voyager cannot run: its architecture, a tensor type, a feature.
    UnsupportedModel,
    /// The memory budget cannot hold what was asked ([`Error::smallest_budget`] says what would).
    Budget,
    /// A sequence or position the session cannot hold.
    Context,
    /// A bad option or input from the caller: a sampling setting, an empty prompt, a token id.
    InvalidArgument,
    /// The caller cancelled the operation.
    Cancelled,
    /// No usable GPU, a driver error, or a device whose kernels compute wrong results.
    Gpu,
    /// Reading or writing a file failed.
    Io,
}

impl ErrorKind {
    /// A stable lower-case name (`invalid_model`, `budget`, ...), for JSON and foreign bindings.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidModel => "invalid_model",
            ErrorKind::UnsupportedModel => "unsupported_model",
            ErrorKind::Budget => "budget",
            ErrorKind::Context => "context",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Gpu => "gpu",
            ErrorKind::Io => "io",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong in the runtime, each with a message fit for one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done: "open", "write", "rename", ...
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a GGUF file: {0}")]
    NotGguf(String),
    #[error("malformed GGUF file: {0}")]
    Malformed(String),
    #[error("missing or invalid metadata `{key}`: {why}")]
    Metadata { key: String, why: String },
    #[error("tensor `{0}` not found in the model")]
    MissingTensor(String),
    /// The model's vocabulary cannot be built into a tokenizer.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A well-formed model that needs something Voyager does not have.
    #[error("unsupported model: {0}")]
    UnsupportedModel(String),
    /// A memory budget that cannot be met; `smallest` is the smallest budget that would work,
    /// when one exists.
    #[error("memory budget: {message}")]
    Budget {
        message: String,
        smallest: Option<u64>,
    },
    /// A sequence or position a session cannot hold.
    #[error("context: {0}")]
    Context(String),
    /// A bad option or input: sampling settings, an empty prompt, a token id, a message list
    /// the chat template refuses.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("cancelled")]
    Cancelled,
    #[error("GPU: {0}")]
    Gpu(String),
}

impl Error {
    /// The kind of failure, for hosts that map errors to their own types.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::NotGguf(_)
            | Error::Malformed(_)
            | Error::Metadata { .. }
            | Error::MissingTensor(_)
            | Error::Tokenizer(_) => ErrorKind::InvalidModel,
            Error::UnsupportedModel(_) => ErrorKind::UnsupportedModel,
            Error::Budget { .. } => ErrorKind::Budget,
            Error::Context(_) => ErrorKind::Context,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Gpu(_) => ErrorKind::Gpu,
        }
    }

    /// A budget refusal without a known smallest budget.
    pub fn budget(message: impl Into<String>) -> Self {
        Error::Budget {
            message: message.into(),
            smallest: None,
        }
    }

    /// The smallest budget that would work, for a budget refusal that knows it.
    pub fn smallest_budget(&self) -> Option<u64> {
        match self {
            Error::Budget { smallest, .. } => *smallest,
            _ => None,
        }
    }

    /// The message without the kind's prefix ("memory budget: ", "invalid argument: "), for
    /// hosts that print the kind themselves.
    pub fn detail(&self) -> String {
        match self {
            Error::UnsupportedModel(m)
            | Error::Context(m)
            | Error::InvalidArgument(m)
            | Error::Gpu(m) => m.clone(),
            Error::Budget { message, .. } => message.clone(),
            e => e.to_string(),
        }
    }

    /// An I/O error while doing `action` on `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_kind_and_one_line() {
        let cases = [
            (
                Error::io("open", "/x")(std::io::Error::other("gone")),
                ErrorKind::Io,
            ),
            (Error::NotGguf("magic".into()), ErrorKind::InvalidModel),
            (Error::Malformed("short".into()), ErrorKind::InvalidModel),
            (
                Error::Metadata {
                    key: "k".into(),
                    why: "w".into(),
                },
                ErrorKind::InvalidModel,
            ),
            (Error::MissingTensor("t".into()), ErrorKind::InvalidModel),
            (Error::Tokenizer("v".into()), ErrorKind::InvalidModel),
            (
                Error::UnsupportedModel("a".into()),
                ErrorKind::UnsupportedModel,
            ),
            (Error::budget("too small"), ErrorKind::Budget),
            (Error::Context("long".into()), ErrorKind::Context),
            (
                Error::InvalidArgument("bad".into()),
                ErrorKind::InvalidArgument,
            ),
            (Error::Cancelled, ErrorKind::Cancelled),
            (Error::Gpu("none".into()), ErrorKind::Gpu),
        ];
        for (e, kind) in cases {
            assert_eq!(e.kind(), kind, "{e}");
            assert!(!e.to_string().contains('\n'));
            assert!(!kind.name().is_empty());
        }
        let e = Error::Budget {
            message: "m".into(),
            smallest: Some(7),
        };
        assert_eq!(e.smallest_budget(), Some(7));
        assert_eq!(e.detail(), "m");
        assert_eq!(e.to_string(), "memory budget: m");
    }
}
