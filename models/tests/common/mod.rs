//! Helpers shared by the integration tests: fake wheels and fake entries.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use voyager_models::{CatalogEntry, Progress, WheelPart};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// Writes a zip file at `path` holding `members` (name, content).
pub fn make_wheel(path: &Path, members: &[(&str, &[u8])], method: CompressionMethod) {
    let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
    let opts = SimpleFileOptions::default().compression_method(method);
    zip.start_file("pkg-1.0.dist-info/METADATA", opts).unwrap();
    zip.write_all(b"Metadata-Version: 2.1\nName: pkg\n")
        .unwrap();
    for (name, data) in members {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// A fake entry named `name` whose file is the concatenation of `chunks`, each
/// chunk `i` living in package `fake-<name>-part<i>` as `data/chunk<i>`.
pub fn entry(name: &str, chunks: &[&[u8]]) -> CatalogEntry {
    let whole: Vec<u8> = chunks.concat();
    CatalogEntry {
        name: name.into(),
        description: "test model".into(),
        architecture: "llama".into(),
        licence: "MIT".into(),
        file: format!("{name}.gguf"),
        size: whole.len() as u64,
        sha256: sha256_hex(&whole),
        parts: (0..chunks.len())
            .map(|i| WheelPart {
                package: format!("fake-{name}-part{i}"),
                version: "1.0.0".into(),
                member: format!("fake_{}_part{i}/data/chunk{i}", name.replace('-', "_")),
            })
            .collect(),
    }
}

/// Builds one wheel per chunk of `entry` in `dir`, returning their paths.
pub fn wheels_for(entry: &CatalogEntry, chunks: &[&[u8]], dir: &Path) -> Vec<PathBuf> {
    entry
        .parts
        .iter()
        .zip(chunks)
        .map(|(part, chunk)| {
            let path = dir.join(format!("{}-1.0.0-py3-none-any.whl", part.package));
            make_wheel(
                &path,
                &[(part.member.as_str(), chunk)],
                CompressionMethod::Deflated,
            );
            path
        })
        .collect()
}

/// Names of everything in `dir`.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Records what it is told.
#[derive(Default)]
pub struct Recorder {
    pub stages: Vec<String>,
    pub bytes: Vec<(u64, u64)>,
}

impl Progress for Recorder {
    fn stage(&mut self, msg: &str) {
        self.stages.push(msg.to_string());
    }
    fn bytes(&mut self, done: u64, total: u64) {
        self.bytes.push((done, total));
    }
}
