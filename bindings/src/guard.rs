//! No panic crosses the boundary: each exported call runs inside `catch_unwind`, and a panic
//! becomes `VoyagerError::Internal` with its message.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::VoyagerError;

pub fn guarded<T>(f: impl FnOnce() -> Result<T, VoyagerError>) -> Result<T, VoyagerError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            log::error!("caught a panic at the SDK boundary: {what}");
            Err(VoyagerError::Internal {
                detail: format!("internal error (a bug in Voyager): {what}"),
            })
        }
    }
}
