//! The memory plan: everything Voyager causes in the process, within a budget or refused.
//!
//! The budget is the whole footprint, not just GPU buffers. [`Plan`] has a line for each part:
//! - shared by every session: weights (device buffers), upload staging, the tokenizer, the
//!   GGUF metadata and chat template, the GPU driver and compiled pipelines (measured at load,
//!   remembered per device, estimated before any device exists), and the driver's allocation
//!   rounding and upload heap;
//! - per session, times the sessions planned: the KV cache and scratch (device buffers) and
//!   the logits read back to the CPU with the sampler's candidates.
//!
//! [`plan`] sizes all of it from the same formulas the allocating code uses (or from
//! measurements), before anything is loaded; without an explicit window it picks the largest
//! one that fits. The GPU context's allocator then enforces what is left for device buffers
//! on every buffer, so a plan that was wrong fails loudly instead of overshooting. On a CPU
//! adapter (software Vulkan) and on unified-memory devices, device buffers are process memory
//! too; on a discrete GPU they are VRAM and the rest is RAM, and the budget covers the sum.

pub mod size;

use crate::arch::scratch::{partials_bytes, scratch_bytes};
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::gpu::kernels::strategy::Strategy;
use crate::gpu::weights::UPLOAD_SLICE;
use crate::kv::{KvConfig, KvType};
use crate::model::Model;
use crate::options::EngineOptions;
use crate::{Error, Result};

pub use size::{format_size, format_size_at_least, parse_size};

/// Where the plan's figure for the driver and pipelines comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverMemory {
    /// Measured on this device during this load (resident memory before the device was
    /// created and after every pipeline the model needs had run once).
    Measured,
    /// Measured at an earlier load on the named adapter.
    Remembered(String),
    /// A default: no device has been measured on this machine yet.
    Estimated,
    /// Given in the options.
    Given,
}

impl std::fmt::Display for DriverMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriverMemory::Measured => f.write_str("measured"),
            DriverMemory::Remembered(a) => write!(f, "measured at an earlier load on {a}"),
            DriverMemory::Estimated => f.write_str("estimated: no GPU measured here yet"),
            DriverMemory::Given => f.write_str("given"),
        }
    }
}

/// What a model needs under some options.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The budget asked for, if any.
    pub budget: Option<u64>,
    /// Weight bytes on the device.
    pub weights: u64,
    /// KV cache bytes of one session (all layers, K and V, every region).
    pub kv: u64,
    /// Activation buffers, logits, attention partials and uniforms of one session.
    pub scratch: u64,
    /// Upload staging: wgpu's copy of one slice of a tensor and the file's mapped pages of it.
    pub staging: u64,
    /// The tokenizer: vocabulary, decoded pieces, lookup tables.
    pub tokenizer: u64,
    /// GGUF metadata, the tensor table and the chat template.
    pub metadata: u64,
    /// Per session: the logits read back to the CPU and the sampler's candidates (and, when
    /// scoring, every row's logits of a batch).
    pub readback: u64,
    /// Per session: the bind groups of its forward pass, in the driver (descriptor sets).
    pub bindings: u64,
    /// The GPU driver and the compiled pipelines, in process memory.
    pub driver: u64,
    /// Where [`Plan::driver`] comes from.
    pub driver_source: DriverMemory,
    /// The driver's allocation rounding and the heap it keeps after uploads.
    pub slack: u64,
    /// Sessions planned for: each has its own cache, scratch and readback.
    pub sessions: usize,
    /// The cache chosen.
    pub kv_config: KvConfig,
    /// Ring bytes per token over all layers, for each cache type (K and V the same type).
    pub kv_bytes_per_token: Vec<(KvType, u64)>,
    /// Ring bytes per token over all layers for the chosen K and V types.
    pub kv_ring_bytes_per_token: u64,
    /// Of [`Plan::kv`], the bytes kept in f16 whatever the types: the sinks and the newest
    /// tokens' copies (with their tags), all layers, one session.
    pub kv_f16_bytes: u64,
}

impl Plan {
    /// Everything: the shared part and every session's.
    pub fn total(&self) -> u64 {
        self.shared() + self.sessions as u64 * self.per_session()
    }

    /// What the engine holds whatever the number of sessions.
    pub fn shared(&self) -> u64 {
        self.weights + self.staging + self.tokenizer + self.metadata + self.driver + self.slack
    }

    /// What each open session holds: its KV cache, scratch, readback and bindings.
    pub fn per_session(&self) -> u64 {
        self.kv + self.scratch + self.readback + self.bindings
    }

    /// Device buffers of one session (what the allocator counts when a session opens).
    pub fn session_buffers(&self) -> u64 {
        self.kv + self.scratch
    }

    /// Device buffers in all: what the allocator counts.
    pub fn device_buffers(&self) -> u64 {
        self.weights + self.sessions as u64 * self.session_buffers()
    }

    /// Everything that is not a device buffer: the allocator's limit is the budget less this.
    pub fn outside_buffers(&self) -> u64 {
        self.total() - self.device_buffers()
    }

    /// Every line, as (name, bytes, per session), in the order `voyager info` shows them.
    pub fn lines(&self) -> Vec<(&'static str, u64, bool)> {
        vec![
            ("weights", self.weights, false),
            ("driver and pipelines", self.driver, false),
            ("tokenizer", self.tokenizer, false),
            ("metadata and template", self.metadata, false),
            ("upload staging", self.staging, false),
            ("allocation slack", self.slack, false),
            ("KV cache", self.kv, true),
            ("scratch", self.scratch, true),
            ("logits readback", self.readback, true),
            ("bindings", self.bindings, true),
        ]
    }
}

/// Driver and pipeline memory assumed before any device has been measured on this machine:
/// lavapipe measured 95-110 MiB here (docs/MEMORY.md); GPU drivers vary, and the first load
/// measures the real figure.
pub const DEFAULT_DRIVER_BYTES: u64 = 128 << 20;

/// The driver's rounding of buffer allocations and the heap it keeps after uploads, as a
/// fixed part plus a share of the weights (lavapipe: 5-7 MiB over 92-235 MiB of weights, and
/// under 1 MiB at a session's first step; docs/MEMORY.md).
const SLACK_FIXED: u64 = 8 << 20;
const SLACK_PER_MILLE: u64 = 20;

/// A session's bind groups (hundreds: one per op and weight chunk) live in the driver as
/// descriptor sets; lavapipe took 1.8 MiB for Gemma 3's 18 layers and 3 MiB for SmolLM2's 30
/// when a session opened (docs/MEMORY.md).
const BINDINGS_PER_LAYER: u64 = 128 << 10;
const BINDINGS_FIXED: u64 = 256 << 10;

/// Plans `model` under `options`; refuses a budget that cannot hold the weights and a cache of
/// [`EngineOptions::MIN_WINDOW`] tokens (or the window asked for), naming the smallest budget
/// that would.
pub fn plan(model: &Model, options: &EngineOptions) -> Result<Plan> {
    let (driver, source) = match options.driver_memory {
        Some(bytes) => (bytes, DriverMemory::Given),
        None => {
            let pipelines =
                crate::device_record::pipelines_key(model.weight_types(), options.kv_policy);
            match crate::device_record::records_dir(options.cache_dir.as_deref())
                .and_then(|d| crate::device_record::remembered_driver_bytes(&d, &pipelines))
            {
                Some((bytes, adapter)) => (bytes, DriverMemory::Remembered(adapter)),
                None => (DEFAULT_DRIVER_BYTES, DriverMemory::Estimated),
            }
        }
    };
    plan_with_driver(model, options, driver, source)
}

/// [`plan`] with the driver and pipelines taking `driver` bytes (measured at load).
pub fn plan_with_driver(
    model: &Model,
    options: &EngineOptions,
    driver: u64,
    source: DriverMemory,
) -> Result<Plan> {
    let cfg = &model.config;
    model.check_runs_on_gpu()?;
    if options.batch == 0 || options.batch > 4096 {
        return Err(Error::InvalidArgument(format!(
            "a batch of {} tokens (1 to 4096 are allowed)",
            options.batch
        )));
    }
    if options.max_sessions == 0 || options.max_sessions > EngineOptions::MAX_SESSIONS {
        return Err(Error::InvalidArgument(format!(
            "{} sessions (1 to {} are allowed)",
            options.max_sessions,
            EngineOptions::MAX_SESSIONS
        )));
    }
    let weights = weight_bytes(model);
    let trained = u32::try_from(cfg.context_length).unwrap_or(u32::MAX);
    let max_window = trained.saturating_sub(options.sinks).max(1);
    let sized = |window: u32| {
        let mut p = plan_window(model, options, weights, window)?;
        p.driver = driver;
        p.driver_source = source.clone();
        Ok(p)
    };
    match (options.window, options.mem_budget) {
        (Some(0), _) => Err(Error::InvalidArgument("a window of 0 tokens".into())),
        (Some(w), _) if u64::from(w) + u64::from(options.sinks) > u64::from(trained) => {
            Err(Error::InvalidArgument(format!(
                "{} sinks + a {w}-token window exceed the model's context of {trained} tokens",
                options.sinks
            )))
        }
        (Some(w), None) => sized(w),
        (Some(w), Some(budget)) => {
            let p = sized(w)?;
            if p.total() > budget {
                return Err(Error::Budget {
                    message: format!(
                        "{} cannot hold a {w}-token window{}: it needs {} ({}); raise \
                         --mem-budget to {} or lower --window",
                        format_size(budget),
                        sessions_phrase(p.sessions),
                        format_size(p.total()),
                        p.breakdown(),
                        format_size_at_least(p.total())
                    ),
                    smallest: Some(rounded_up(p.total())),
                });
            }
            Ok(Plan {
                budget: Some(budget),
                ..p
            })
        }
        (None, None) => {
            let span = cfg.context_length.min(EngineOptions::DEFAULT_CONTEXT) as u32;
            sized(span.saturating_sub(options.sinks).max(1))
        }
        (None, Some(budget)) => {
            let smallest = sized(EngineOptions::MIN_WINDOW.min(max_window))?;
            if smallest.total() > budget {
                return Err(Error::Budget {
                    message: format!(
                        "{} is too small for this model: the weights and the smallest cache \
                         ({}-token window{}) need {} ({}); use --mem-budget {} or more",
                        format_size(budget),
                        smallest.kv_config.window,
                        sessions_phrase(smallest.sessions),
                        format_size(smallest.total()),
                        smallest.breakdown(),
                        format_size_at_least(smallest.total())
                    ),
                    smallest: Some(rounded_up(smallest.total())),
                });
            }
            // The total grows with the window: find the largest that fits.
            let (mut lo, mut hi) = (smallest.kv_config.window, max_window);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if sized(mid)?.total() <= budget {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            Ok(Plan {
                budget: Some(budget),
                ..sized(lo)?
            })
        }
    }
}

impl Plan {
    /// `weights A + driver B + ... + KV C + ...` (per session times N), for messages.
    pub fn breakdown(&self) -> String {
        let part = |per: bool| {
            self.lines()
                .into_iter()
                .filter(|l| l.2 == per)
                .map(|(name, bytes, _)| format!("{name} {}", format_size(bytes)))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let per = part(true);
        let sessions = if self.sessions == 1 {
            per
        } else {
            format!("{} sessions x ({per})", self.sessions)
        };
        format!("{} + {sessions}", part(false))
    }
}

/// `" for N sessions"` when there are several, for messages.
fn sessions_phrase(n: usize) -> String {
    if n == 1 {
        String::new()
    } else {
        format!(" for {n} sessions")
    }
}

/// `bytes` rounded up as [`format_size_at_least`] shows it, so the size a refusal names is
/// really enough when typed back.
fn rounded_up(bytes: u64) -> u64 {
    parse_size(&format_size_at_least(bytes).replace(' ', "")).unwrap_or(bytes)
}

/// The smallest storage binding limit a device may have (WebGPU's minimum), which gives the
/// most chunks and so an upper bound of the weights' padding on any device.
const MIN_BINDING: u64 = 128 << 20;

/// Device bytes of every tensor as [`crate::gpu::weights::GpuWeight::upload`] lays it out.
fn weight_bytes(model: &Model) -> u64 {
    model
        .file
        .tensors()
        .iter()
        .map(|t| {
            let cols = t.dims.first().copied().unwrap_or(0);
            let row = t.ggml_type.row_bytes(cols).unwrap_or(t.n_bytes);
            crate::gpu::weights::planned_bytes(t.n_bytes, row, MIN_BINDING)
        })
        .sum()
}

/// Small uniforms (kernel parameters, RoPE frequencies): an allowance per layer and per
/// session, well above what the kernels allocate (a few hundred bytes a layer).
const UNIFORMS_PER_LAYER: u64 = 4 << 10;
const UNIFORMS_FIXED: u64 = 16 << 10;

fn plan_window(model: &Model, options: &EngineOptions, weights: u64, window: u32) -> Result<Plan> {
    let cfg = &model.config;
    let kv_config = options
        .kv_config(window)
        .fitted(crate::arch::head_shape(cfg));
    let batch = options.batch as u32;
    let layouts = crate::arch::layer_layouts(cfg, &kv_config, batch)?;
    let kv: u64 = layouts.iter().map(KvLayerCache::device_bytes).sum();
    // The row-per-thread partials are the larger: plan for them whatever the device.
    let partials = partials_bytes(cfg, Strategy::RowPerThread, &layouts, batch);
    // The importance policy reads its slot scores back each step through a staging buffer,
    // keeps each layer's table on the host (position, drop, score and a changed flag: 13 bytes
    // a slot), and uploads what a step changed (at most three slots' two words per token, and
    // the batch's slots, in the uploads' own vectors and wgpu's staging).
    let score_staging = crate::engine::graph::score_staging_bytes(&layouts);
    let slot_tables: u64 = layouts
        .iter()
        .filter_map(|l| l.table)
        .map(|t| 13 * u64::from(t.ring_slots) + 2 * 4 * 7 * u64::from(t.max_batch))
        .sum();
    let scratch = scratch_bytes(cfg, batch, options.scoring)
        + score_staging
        + partials
        + UNIFORMS_FIXED
        + UNIFORMS_PER_LAYER * cfg.n_layers as u64;
    let shapes: Vec<_> = layouts.iter().map(|l| l.shape).collect();
    let vocab = cfg.vocab_size as u64;
    // A step's logits (read back once, into their own vector), the previous step's still held
    // while the next is read, and the sampler's candidates (id, logit, p: 12 bytes each); when
    // scoring, a whole batch's rows as well.
    let readback = slot_tables
        + vocab * (4 + 4 + 12)
        + if options.scoring {
            u64::from(batch) * vocab * 4
        } else {
            0
        };
    Ok(Plan {
        budget: None,
        weights,
        kv,
        scratch,
        // wgpu copies each slice into a staging buffer while the file's pages of it are
        // mapped: two slices at most.
        staging: 2 * UPLOAD_SLICE,
        tokenizer: model.tokenizer.heap_bytes(),
        metadata: model.heap_bytes(),
        readback,
        bindings: BINDINGS_FIXED + BINDINGS_PER_LAYER * cfg.n_layers as u64,
        driver: 0,
        driver_source: DriverMemory::Estimated,
        slack: SLACK_FIXED + weights * SLACK_PER_MILLE / 1000,
        sessions: options.max_sessions,
        kv_config,
        kv_bytes_per_token: crate::kv::bytes_per_token_by_type(&shapes),
        kv_ring_bytes_per_token: crate::kv::bytes_per_token(
            kv_config.k_type,
            kv_config.v_type,
            &shapes,
        ),
        kv_f16_bytes: layouts.iter().map(|l| l.f16_bytes()).sum(),
    })
}
