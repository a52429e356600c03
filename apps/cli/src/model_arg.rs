//! The `-m MODEL` argument: a GGUF path or a catalog name (pulled on first use).

use std::path::PathBuf;

use anyhow::Result;

use crate::progress::PullProgress;

/// Resolves `arg` to a GGUF file on disk, pulling a catalog model that is not there yet.
pub fn resolve(arg: &str) -> Result<PathBuf> {
    let dir = voyager_models::models_dir();
    let mut progress = PullProgress::new(arg);
    let path = voyager_models::resolve(arg, &dir, &mut progress)?;
    Ok(path)
}
