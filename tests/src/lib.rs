//! Shared helpers for the end-to-end tests (model paths, fixture paths).

use std::path::PathBuf;

/// Catalog name -> GGUF file name of the models the e2e tests use.
const MODELS: &[(&str, &str)] = &[
    ("smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("gemma3-270m", "gemma-3-270m-q4_k_m.gguf"),
];

/// Directory holding the test models: `$VOYAGER_TEST_MODELS_DIR`, else `/tmp/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("VOYAGER_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/models"))
}

/// Path of the GGUF for catalog model `name`; panics with how to get it when it is absent.
pub fn model_path(name: &str) -> PathBuf {
    let file = MODELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("unknown test model `{name}`"));
    let path = models_dir().join(file);
    if !path.is_file() {
        panic!(
            "model {name} not found at {}: run `voyager pull {name}`",
            path.display()
        );
    }
    path
}

/// Path of a file under `tests/fixtures/`.
pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}
