//! The memory plan: weights + KV cache + scratch + staging, within a budget or refused.
//!
//! [`plan`] sizes everything an engine and one session allocate, from the same formulas the
//! allocating code uses, before anything is loaded; without an explicit window it picks the
//! largest one that fits. The GPU context's allocator then enforces the budget on every
//! buffer, so a plan that was wrong fails loudly instead of overshooting.

pub mod size;

use crate::engine::EngineOptions;
use crate::kv::{KvConfig, KvType};
use crate::model::Model;
use crate::{Error, Result};

pub use size::{format_size, parse_size};

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
    /// The cache chosen.
    pub kv_config: KvConfig,
    /// Ring bytes per token over all layers, for each cache type (K and V the same type).
    pub kv_bytes_per_token: Vec<(KvType, u64)>,
}

impl Plan {
    pub fn total(&self) -> u64 {
        self.weights + self.kv + self.scratch + self.staging
    }
}

/// Plans `model` under `options`; refuses a budget that cannot hold the weights and a cache of
/// [`EngineOptions::MIN_WINDOW`] tokens (or the window asked for), naming the smallest budget
/// that would.
pub fn plan(model: &Model, options: &EngineOptions) -> Result<Plan> {
    let _ = (model, options);
    Err(Error::Unsupported(
        "memory planning is not wired yet".into(),
    ))
}
