//! Helpers shared by the runtime's integration tests.

use std::path::PathBuf;
use std::sync::Mutex;

use voyager_runtime::gguf::GgufFile;

static PULL: Mutex<()> = Mutex::new(());

/// The GGUF of catalog model `name`, from the models directory, pulled on first use. Panics
/// (the test fails) when it cannot be had: these tests never skip.
#[allow(dead_code)]
pub fn model(name: &str) -> GgufFile {
    let _guard = PULL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = voyager_models::models_dir();
    let path: PathBuf = voyager_models::resolve(name, &dir, &mut voyager_models::NoProgress)
        .unwrap_or_else(|e| panic!("model {name}: {e} (run `voyager pull {name}`)"));
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
