//! What Voyager remembers about a GPU between runs, per adapter, driver version, Voyager version
//! and kernel strategy: the self-check cases that passed on it, and the process memory its
//! driver and compiled pipelines took at the last load. One small JSON file per device in
//! `~/.cache/voyager/selfcheck` (`$VOYAGER_CACHE_DIR/selfcheck`), written atomically.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::gpu::kernels::Strategy;
use crate::gpu::GpuContext;
use crate::Result;

/// The directory records live in: `dir` when given, else the user's cache directory.
pub fn records_dir(dir: Option<&Path>) -> Option<PathBuf> {
    dir.map(Path::to_path_buf)
        .or_else(|| crate::files::cache_dir("selfcheck"))
}

/// One device's record.
pub(crate) struct DeviceRecord {
    path: PathBuf,
    key: serde_json::Value,
    /// Self-check cases that passed.
    pub passed: BTreeSet<String>,
    /// Bytes of process memory the driver and pipelines took, the most measured, per set of
    /// weight types (each type has its own matmul pipelines), keyed by [`pipelines_key`].
    pub driver_bytes: BTreeMap<String, u64>,
}

/// The key of a set of pipelines: the weight types' names, sorted, joined by commas, and
/// `+importance` when the importance policy's scoring pipelines are built too (so a load
/// under one policy never inflates the figure the other is planned with).
pub fn pipelines_key(
    types: impl IntoIterator<Item = crate::gguf::GgmlType>,
    policy: crate::kv::KvPolicy,
) -> String {
    let set: BTreeSet<&str> = types.into_iter().map(|t| t.name()).collect();
    let key = set.into_iter().collect::<Vec<_>>().join(",");
    match policy {
        crate::kv::KvPolicy::Window => key,
        crate::kv::KvPolicy::Importance => format!("{key}+importance"),
    }
}

/// The adapter's driver in words.
pub(crate) fn driver(info: &wgpu::AdapterInfo) -> String {
    match (info.driver.trim(), info.driver_info.trim()) {
        ("", "") => "unknown".into(),
        (d, "") => d.into(),
        ("", i) => i.into(),
        (d, i) => format!("{d} {i}"),
    }
}

impl DeviceRecord {
    /// The record of `ctx`'s adapter in `dir` (empty when there is none yet, or it cannot be
    /// read, or it belongs to another key: a hash collision).
    pub fn open(dir: &Path, ctx: &GpuContext, strategy: Strategy) -> Self {
        let info = ctx.adapter_info();
        let key = serde_json::json!({
            "adapter": info.name,
            "vendor": info.vendor,
            "device": info.device,
            "backend": ctx.backend(),
            "driver": driver(info),
            "voyager": env!("CARGO_PKG_VERSION"),
            "strategy": format!("{strategy:?}"),
        });
        let hash = fnv1a(key.to_string().as_bytes());
        let path = dir.join(format!("{hash:016x}.json"));
        let mut record = Self {
            path,
            key,
            passed: BTreeSet::new(),
            driver_bytes: BTreeMap::new(),
        };
        if let Some(v) = read(&record.path).filter(|v| v["key"] == record.key) {
            record.passed = strings(&v["passed"]);
            record.driver_bytes = sizes(&v["driver_bytes"]);
        }
        record
    }

    pub fn save(&self) -> Result<()> {
        let v = serde_json::json!({
            "key": self.key,
            "passed": self.passed,
            "driver_bytes": self.driver_bytes,
        });
        crate::files::write_atomic(&self.path, v.to_string().as_bytes())
    }
}

/// The most driver memory any device recorded in `dir` took with the pipelines of
/// `pipelines` (a [`pipelines_key`]), or with any pipelines when none was measured with
/// those, and that device's name: what a plan made before any device exists assumes.
pub fn remembered_driver_bytes(dir: &Path, pipelines: &str) -> Option<(u64, String)> {
    let records: Vec<serde_json::Value> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| read(&e.ok()?.path()))
        .collect();
    let best = |exact: bool| {
        records
            .iter()
            .flat_map(|v| {
                let name = v["key"]["adapter"].as_str().unwrap_or("a GPU").to_string();
                sizes(&v["driver_bytes"])
                    .into_iter()
                    .filter(move |(k, _)| !exact || k == pipelines)
                    .map(move |(_, b)| (b, name.clone()))
            })
            .max_by_key(|(b, _)| *b)
    };
    best(true).or_else(|| best(false))
}

fn sizes(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, b)| Some((k.clone(), b.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn read(path: &Path) -> Option<serde_json::Value> {
    if path.extension().is_none_or(|e| e != "json") {
        return None;
    }
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn strings(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// 64-bit FNV-1a: a stable file name for a key (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
