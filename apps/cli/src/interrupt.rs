//! Ctrl-C stops the current generation, not the program.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Ctrl-C as a cancel token for the runtime.
pub fn token() -> voyager_runtime::engine::CancelToken {
    voyager_runtime::engine::CancelToken::from_flag(flag())
}

/// The flag Ctrl-C sets; installs the handler on first use. A second Ctrl-C while the flag is
/// still set (nothing picked it up) exits.
pub fn flag() -> Arc<AtomicBool> {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = Arc::clone(&flag);
        let installed = ctrlc::set_handler(move || {
            if handler_flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
        if let Err(e) = installed {
            log::warn!("cannot install the Ctrl-C handler: {e}");
        }
        flag
    })
    .clone()
}
