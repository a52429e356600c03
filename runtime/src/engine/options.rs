//! How an engine is loaded.

use crate::kv::{KvConfig, KvType};

/// Options for [`crate::engine::Engine::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Newest tokens each query sees beyond the sinks (the sliding window). `None`: the
    /// largest that fits the memory budget, at most the model's context (and at most
    /// [`EngineOptions::DEFAULT_CONTEXT`] without a budget).
    pub window: Option<u32>,
    /// First tokens kept forever (attention sinks).
    pub sinks: u32,
    /// Storage of keys and of values.
    pub cache_type_k: KvType,
    pub cache_type_v: KvType,
    /// Newest tokens also kept in f16 beside a quantized cache.
    pub recent_f16: u32,
    /// Hadamard-rotate heads before quantizing them.
    pub rotate: bool,
    /// Quantize keys minus their per-channel mean.
    pub center_keys: bool,
    /// Bytes of device memory the engine may use in all (weights, cache, scratch, staging);
    /// `None`: no limit.
    pub mem_budget: Option<u64>,
    /// Most tokens evaluated in one prefill step.
    pub batch: usize,
    /// Sessions will score texts ([`crate::engine::Session::score`], perplexity): plan the
    /// logits of every row of a batch (`2 x batch x vocab x 4` bytes, 64 MiB for Gemma 3's
    /// vocabulary). Without it a session that scores allocates them anyway, counted against
    /// the budget like everything else.
    pub scoring: bool,
}

impl EngineOptions {
    /// Attention span (sinks + window) used when none is asked for, no budget is set and the
    /// model allows more.
    pub const DEFAULT_CONTEXT: usize = 4096;
    /// The smallest window the planner will choose.
    pub const MIN_WINDOW: u32 = 64;

    /// The cache configuration for a window of `window` tokens.
    pub fn kv_config(&self, window: u32) -> KvConfig {
        KvConfig {
            k_type: self.cache_type_k,
            v_type: self.cache_type_v,
            sinks: self.sinks,
            window,
            recent: self.recent_f16,
            rotate: self.rotate,
            center_keys: self.center_keys,
        }
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        let kv = KvConfig::quantized(0);
        Self {
            window: None,
            sinks: kv.sinks,
            cache_type_k: kv.k_type,
            cache_type_v: kv.v_type,
            recent_f16: kv.recent,
            rotate: kv.rotate,
            center_keys: kv.center_keys,
            mem_budget: None,
            batch: 32,
            scoring: false,
        }
    }
}
