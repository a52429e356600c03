//! What the app's test binaries share: running frames until something holds, finding text on
//! screen, and the catalog's SmolLM2.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use voyager_chat::ChatApp;

pub type App = Harness<'static, ChatApp>;

/// Runs frames until `done` holds (the engine works on its own thread meanwhile), failing
/// after `limit`; then one more frame, so the screen shows what `done` saw.
pub fn wait(h: &mut App, what: &str, limit: Duration, done: impl Fn(&App) -> bool) {
    let start = Instant::now();
    while !done(h) {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; notices: {:?}",
            h.state().notices()
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
}

/// Whether some visible text contains `text`.
pub fn shown(h: &App, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

/// The installed SmolLM2 (scripts/test pulls it before the tests).
pub fn smollm2() -> PathBuf {
    let dir = voyager_models::models_dir();
    let entry = voyager_models::catalog().get("smollm2-135m").unwrap();
    voyager_models::installed_path(&dir, entry).unwrap_or_else(|| {
        panic!(
            "run `voyager pull smollm2-135m` first (models dir {})",
            dir.display()
        )
    })
}
