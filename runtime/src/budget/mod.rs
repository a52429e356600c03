//! The memory plan: weights + staging (shared by every session) + N x (KV cache + scratch),
//! within a budget or refused.
//!
//! [`plan`] sizes everything an engine and its sessions allocate, from the same formulas the
//! allocating code uses, before anything is loaded; without an explicit window it picks the
//! largest one that fits. The GPU context's allocator then enforces the budget on every
//! buffer, so a plan that was wrong fails loudly instead of overshooting.

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
    /// The largest temporary upload or readback buffer.
    pub staging: u64,
    /// Sessions planned for: each has its own cache and scratch.
    pub sessions: usize,
    /// The cache chosen.
    pub kv_config: KvConfig,
    /// Ring bytes per token over all layers, for each cache type (K and V the same type).
    pub kv_bytes_per_token: Vec<(KvType, u64)>,
}

impl Plan {
    /// Everything: the shared part and every session's.
    pub fn total(&self) -> u64 {
        self.shared() + self.sessions as u64 * self.per_session()
    }

    /// What the engine holds whatever the number of sessions: weights and staging.
    pub fn shared(&self) -> u64 {
        self.weights + self.staging
    }

    /// What each open session holds: its KV cache and scratch.
    pub fn per_session(&self) -> u64 {
        self.kv + self.scratch
    }
}

/// Plans `model` under `options`; refuses a budget that cannot hold the weights and a cache of
/// [`EngineOptions::MIN_WINDOW`] tokens (or the window asked for), naming the smallest budget
/// that would.
pub fn plan(model: &Model, options: &EngineOptions) -> Result<Plan> {
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
    let sized = |window: u32| plan_window(model, options, weights, window);
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
    /// `weights A + staging D + KV B + scratch C` (times N sessions), for messages.
    pub fn breakdown(&self) -> String {
        let per = format!(
            "KV {} + scratch {}",
            format_size(self.kv),
            format_size(self.scratch)
        );
        let sessions = if self.sessions == 1 {
            per
        } else {
            format!("{} sessions x ({per})", self.sessions)
        };
        format!(
            "weights {} + staging {} + {sessions}",
            format_size(self.weights),
            format_size(self.staging),
        )
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
    let kv_config = options.kv_config(window);
    let batch = options.batch as u32;
    let layouts = crate::arch::layer_layouts(cfg, &kv_config, batch)?;
    let kv: u64 = layouts.iter().map(KvLayerCache::device_bytes).sum();
    // The row-per-thread partials are the larger: plan for them whatever the device.
    let partials = partials_bytes(cfg, Strategy::RowPerThread, &layouts, batch);
    let scratch = scratch_bytes(cfg, batch, options.scoring)
        + partials
        + UNIFORMS_FIXED
        + UNIFORMS_PER_LAYER * cfg.n_layers as u64;
    let shapes: Vec<_> = layouts.iter().map(|l| l.shape).collect();
    Ok(Plan {
        budget: None,
        weights,
        kv,
        scratch,
        staging: UPLOAD_SLICE,
        sessions: options.max_sessions,
        kv_config,
        kv_bytes_per_token: KvType::ALL
            .iter()
            .map(|&t| (t, crate::kv::bytes_per_token(t, t, &shapes)))
            .collect(),
    })
}
