//! Shared helpers for the end-to-end tests (model paths, fixture paths).

use std::path::PathBuf;
use std::sync::Mutex;

/// Serializes pulls within one test binary so parallel tests don't download a model twice.
static PULL: Mutex<()> = Mutex::new(());

/// Path of the GGUF for catalog model `name`, resolved the way `voyager -m NAME` does: from the
/// models directory (`$VOYAGER_MODELS`, else the user cache), pulled on first use.
///
/// # Panics
/// When the model cannot be had, with the reason and how to get it.
pub fn model_path(name: &str) -> PathBuf {
    let _guard = PULL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = voyager_models::models_dir();
    voyager_models::resolve(name, &dir, &mut voyager_models::NoProgress).unwrap_or_else(|e| {
        panic!(
            "model {name} is not in {} and could not be pulled ({e}): run `voyager pull {name}`",
            dir.display()
        )
    })
}

/// Path of a file under `tests/fixtures/`.
pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}
