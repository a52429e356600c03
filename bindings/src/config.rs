//! The records and enums the SDK exchanges: configuration in, replies, plans and figures out.

use voyager_runtime::engine::sampling::{SamplingParams, DEFAULT_SEED};
use voyager_runtime::engine::{EngineOptions, GenerateOptions};
use voyager_runtime::kv::{KvPolicy, KvType};

use crate::error::{invalid, VoyagerError};

/// How to load a model. Every field is optional: absent, the engine's default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct EngineConfig {
    /// Memory for everything the engine causes in the process (weights, cache, scratch, driver,
    /// tokenizer). On a phone, what the OS says the app may still use.
    #[uniffi(default = None)]
    pub mem_budget_bytes: Option<u64>,
    /// `f16`, `q8`, `q4`, `tq4` or `tq3` (default `tq4` for keys, `tq3` for values).
    #[uniffi(default = None)]
    pub cache_type_k: Option<String>,
    #[uniffi(default = None)]
    pub cache_type_v: Option<String>,
    /// Newest tokens each query sees beyond the sinks (default: the largest that fits).
    #[uniffi(default = None)]
    pub window: Option<u32>,
    /// First tokens kept forever (default 4).
    #[uniffi(default = None)]
    pub sinks: Option<u32>,
    /// Which older tokens a full cache keeps: `window` (the newest; default) or `importance`
    /// (the newest half of the window and the older tokens attention used most).
    #[uniffi(default = None)]
    pub kv_policy: Option<String>,
    /// Chats and completions open at once, each with its own cache (default 1).
    #[uniffi(default = None)]
    pub max_sessions: Option<u32>,
    /// The GPU driver's own memory and compiled pipelines, when the app knows it (default:
    /// measured at load where the OS allows, else remembered from the last load on this
    /// device). Setting it makes `plan` and the load count the same figure.
    #[uniffi(default = None)]
    pub driver_memory_bytes: Option<u64>,
}

impl EngineConfig {
    pub fn options(&self) -> Result<EngineOptions, VoyagerError> {
        let d = EngineOptions::default();
        let kv = |t: &Option<String>, default: KvType| match t {
            None => Ok(default),
            Some(s) => KvType::parse(s).map_err(VoyagerError::from),
        };
        let max_sessions = self.max_sessions.unwrap_or(1) as usize;
        if max_sessions == 0 || max_sessions > EngineOptions::MAX_SESSIONS {
            return Err(invalid(format!(
                "maxSessions must be between 1 and {}, got {max_sessions}",
                EngineOptions::MAX_SESSIONS
            )));
        }
        if self.window == Some(0) {
            return Err(invalid("window must be at least 1"));
        }
        Ok(EngineOptions {
            mem_budget: self.mem_budget_bytes,
            cache_type_k: kv(&self.cache_type_k, d.cache_type_k)?,
            cache_type_v: kv(&self.cache_type_v, d.cache_type_v)?,
            window: self.window,
            sinks: self.sinks.unwrap_or(d.sinks),
            kv_policy: match &self.kv_policy {
                None => d.kv_policy,
                Some(s) => KvPolicy::parse(s)?,
            },
            max_sessions,
            driver_memory: self.driver_memory_bytes.or(d.driver_memory),
            ..d
        })
    }
}

/// How the next token is chosen, and how long an answer may be. The defaults are llama.cpp's.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SamplingConfig {
    /// 0 is greedy.
    #[uniffi(default = 0.8)]
    pub temperature: f32,
    /// Keep the K most likely tokens (0: off).
    #[uniffi(default = 40)]
    pub top_k: u32,
    /// Keep the smallest set of tokens whose probability reaches P (1: off).
    #[uniffi(default = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than P times the most likely one (0: off).
    #[uniffi(default = 0.05)]
    pub min_p: f32,
    /// Penalise recently seen tokens (1: off).
    #[uniffi(default = 1.0)]
    pub repeat_penalty: f32,
    /// The same seed gives the same answer.
    #[uniffi(default = 12648430)]
    pub seed: u64,
    /// Tokens an answer may have at most.
    #[uniffi(default = 512)]
    pub max_tokens: u32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        let d = SamplingParams::default();
        Self {
            temperature: d.temperature,
            top_k: d.top_k as u32,
            top_p: d.top_p,
            min_p: d.min_p,
            repeat_penalty: d.repeat_penalty,
            seed: DEFAULT_SEED,
            max_tokens: 512,
        }
    }
}

impl SamplingConfig {
    /// The engine's options, checked (a bad value is `InvalidArgument` before any work).
    pub fn options(&self, max_tokens: u32) -> Result<GenerateOptions, VoyagerError> {
        let sampling = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k as usize,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            ..SamplingParams::default()
        };
        sampling
            .validate()
            .map_err(|e| invalid(format!("sampling: {e}")))?;
        Ok(GenerateOptions {
            sampling,
            max_tokens: max_tokens as usize,
            ..GenerateOptions::default()
        })
    }
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum StopReason {
    /// The model ended its turn.
    EndOfGeneration,
    /// `maxTokens` were generated.
    TokenLimit,
    /// `cancel()` was called, or the listener returned false.
    Cancelled,
    /// A stop sequence appeared.
    StopSequence,
}

impl From<voyager_runtime::engine::StopReason> for StopReason {
    fn from(s: voyager_runtime::engine::StopReason) -> Self {
        use voyager_runtime::engine::StopReason as S;
        match s {
            S::EndOfGeneration => Self::EndOfGeneration,
            S::TokenLimit => Self::TokenLimit,
            S::Cancelled => Self::Cancelled,
            S::StopSequence => Self::StopSequence,
        }
    }
}

/// Figures about one answer.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ReplyStats {
    /// Tokens of the prompt (for a chat, the whole rendered conversation).
    pub prompt_tokens: u32,
    /// Of those, tokens reused from the cache rather than evaluated again.
    pub reused_tokens: u32,
    pub generated_tokens: u32,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    /// Tokens the model sees now (sinks + window at most).
    pub tokens_in_window: u32,
    /// Tokens that have slid out of the cache so far.
    pub tokens_evicted: u64,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Reply {
    pub text: String,
    pub stop_reason: StopReason,
    pub stats: ReplyStats,
}

/// A message of a conversation: role `system`, `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// How much of the attention span a conversation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ContextUsage {
    pub tokens: u64,
    pub tokens_in_window: u32,
    pub tokens_evicted: u64,
    /// The span: sinks + window.
    pub context_size: u32,
}

/// What a loaded (or planned) model is.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ModelInfo {
    pub name: Option<String>,
    pub architecture: String,
    pub file_size_bytes: u64,
    pub layers: u32,
    pub vocab_size: u32,
    /// The context the model was trained for.
    pub trained_context: u32,
    /// The span this engine attends to (sinks + window).
    pub context_size: u32,
}

/// How a model fits a budget, before loading (`plan`) or as loaded (`Engine.memoryPlan`).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct MemoryPlan {
    pub weights_bytes: u64,
    /// KV cache of one session.
    pub kv_bytes_per_session: u64,
    /// Activation buffers of one session.
    pub scratch_bytes_per_session: u64,
    /// Driver and pipelines, tokenizer, metadata, staging, readback, slack.
    pub other_bytes: u64,
    pub total_bytes: u64,
    pub budget_bytes: Option<u64>,
    pub window: u32,
    pub sinks: u32,
    pub sessions: u32,
    pub cache_type_k: String,
    pub cache_type_v: String,
    /// `window` or `importance`.
    pub kv_policy: String,
    /// What one more token of window costs in the cache (all layers, K and V).
    pub kv_bytes_per_token: u64,
    /// Of the cache, what stays in f16 whatever the types (sinks and the newest tokens).
    pub kv_f16_bytes_per_session: u64,
}

impl From<&voyager_runtime::budget::Plan> for MemoryPlan {
    fn from(p: &voyager_runtime::budget::Plan) -> Self {
        let sessions = p.sessions as u64;
        let total = p.total();
        Self {
            weights_bytes: p.weights,
            kv_bytes_per_session: p.kv,
            scratch_bytes_per_session: p.scratch,
            other_bytes: total - p.weights - sessions * (p.kv + p.scratch),
            total_bytes: total,
            budget_bytes: p.budget,
            window: p.kv_config.window,
            sinks: p.kv_config.sinks,
            sessions: p.sessions as u32,
            cache_type_k: p.kv_config.k_type.name().to_owned(),
            cache_type_v: p.kv_config.v_type.name().to_owned(),
            kv_policy: p.kv_config.policy.name().to_owned(),
            kv_bytes_per_token: p.kv_ring_bytes_per_token,
            kv_f16_bytes_per_session: p.kv_f16_bytes,
        }
    }
}

/// Memory the engine holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct MemoryUse {
    /// Device buffers alive (weights, caches, scratch), as counted.
    pub device_bytes: u64,
    /// The most device bytes alive at once so far.
    pub device_peak_bytes: u64,
    /// Everything the plan holds (device buffers and the rest).
    pub planned_bytes: u64,
    pub budget_bytes: Option<u64>,
}
