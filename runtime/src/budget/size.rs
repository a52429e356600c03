//! Byte sizes as people write them: `300MiB`, `1.5GB`, `512M`, `2g`, `1048576`.

use crate::{Error, Result};

/// Parses a size (to be written by the budget work).
pub fn parse_size(s: &str) -> Result<u64> {
    s.trim()
        .parse()
        .map_err(|_| Error::Unsupported(format!("size `{s}`")))
}

/// Formats bytes for people.
pub fn format_size(bytes: u64) -> String {
    crate::gpu::alloc::human_bytes(bytes)
}
