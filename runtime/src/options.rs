//! How an engine is loaded: its cache, its memory budget, how many sessions share it, and
//! whether the device's kernels are checked first. The memory plan ([`crate::budget`]) and the
//! engine ([`crate::engine`]) both read these.

use std::path::PathBuf;

use crate::kv::{KvConfig, KvPolicy, KvType};

/// When the engine checks the device's kernels against their CPU twins before trusting them
/// ([`crate::selfcheck`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelfCheck {
    /// On the first load on an adapter and driver version; the verdict is kept on disk and
    /// later loads on the same adapter and driver skip the check.
    #[default]
    FirstRun,
    /// On every load.
    Always,
    /// Never (for measurements; a broken driver then gives wrong output silently).
    Off,
}

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
    /// Which positions a full cache keeps: the newest (the sliding window), or the most
    /// attended beside the newest half (importance).
    pub kv_policy: KvPolicy,
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
    /// Sessions that may be open at once; the plan reserves a cache and scratch for each,
    /// and opening one more than the budget holds is refused.
    pub max_sessions: usize,
    /// When to check the device's kernels.
    pub self_check: SelfCheck,
    /// Where the self-check keeps its verdicts (and the driver memory measured per device);
    /// `None`: `voyager/selfcheck` in the user's cache directory (`$VOYAGER_CACHE_DIR`
    /// overrides it).
    pub cache_dir: Option<PathBuf>,
    /// Process memory of the GPU driver and compiled pipelines; `None`: measured at load
    /// (and, before any device exists, the figure remembered from the last load here).
    pub driver_memory: Option<u64>,
}

impl EngineOptions {
    /// Attention span (sinks + window) used when none is asked for, no budget is set and the
    /// model allows more.
    pub const DEFAULT_CONTEXT: usize = 4096;
    /// The smallest window the planner will choose.
    pub const MIN_WINDOW: u32 = 64;
    /// The most sessions one engine plans for.
    pub const MAX_SESSIONS: usize = 256;

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
            policy: self.kv_policy,
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
            kv_policy: kv.policy,
            mem_budget: None,
            batch: 32,
            scoring: false,
            max_sessions: 1,
            self_check: SelfCheck::default(),
            cache_dir: None,
            driver_memory: None,
        }
    }
}
