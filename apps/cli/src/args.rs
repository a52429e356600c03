//! Flag groups shared by the commands that load a model, with llama.cpp's flag names.

use anyhow::{bail, Result};
use voyager_runtime::budget::parse_size;
use voyager_runtime::engine::sampling::SamplingParams;
use voyager_runtime::engine::{EngineOptions, SelfCheck};
use voyager_runtime::kv::{KvPolicy, KvType};

/// Which model to load and how: context, KV cache and memory budget.
#[derive(clap::Args, Debug, Default)]
pub struct ModelArgs {
    /// Model: a GGUF path or a catalog name (pulled on first use).
    #[arg(short, long)]
    pub model: String,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// The flags of [`ModelArgs`] are read through it as if they were its own.
impl std::ops::Deref for ModelArgs {
    type Target = EngineArgs;

    fn deref(&self) -> &EngineArgs {
        &self.engine
    }
}

impl std::ops::DerefMut for ModelArgs {
    fn deref_mut(&mut self) -> &mut EngineArgs {
        &mut self.engine
    }
}

/// How to load a model: context, KV cache and memory budget (every flag of [`ModelArgs`] but
/// the model; `voyager bench` pairs these with `--synthetic`).
#[derive(clap::Args, Debug, Default)]
pub struct EngineArgs {
    /// Attention span in tokens, sinks included (the window is N minus --sinks).
    /// Default: the largest that fits --mem-budget, else the model's context capped at 4096.
    #[arg(short = 'c', long = "ctx-size", value_name = "N")]
    pub ctx_size: Option<usize>,
    /// Tokens per prefill batch.
    #[arg(short = 'b', long = "batch-size", default_value_t = EngineOptions::default().batch)]
    pub batch_size: usize,
    /// Device memory for everything (weights, KV cache, scratch, staging), e.g. 300MiB, 1.5GB,
    /// 512M (K/M/G alone are binary). Loading is refused if the model cannot fit.
    #[arg(long = "mem-budget", value_name = "SIZE", value_parser = parse_budget)]
    pub mem_budget: Option<u64>,
    /// KV cache type for keys: f16, q8, q4, tq4 or tq3 [default: tq4] (also -ctk).
    #[arg(long = "cache-type-k", alias = "ctk", value_name = "TYPE", value_parser = parse_kv_type)]
    pub cache_type_k: Option<KvType>,
    /// KV cache type for values: f16, q8, q4, tq4 or tq3 [default: tq3] (also -ctv).
    #[arg(long = "cache-type-v", alias = "ctv", value_name = "TYPE", value_parser = parse_kv_type)]
    pub cache_type_v: Option<KvType>,
    /// Newest tokens each query attends to beyond the sinks (instead of -c).
    #[arg(long, value_name = "W", value_parser = clap::value_parser!(u32).range(1..))]
    pub window: Option<u32>,
    /// First tokens kept in the cache forever (attention sinks) [default: 4].
    #[arg(long, value_name = "S")]
    pub sinks: Option<u32>,
    /// Which older tokens a full cache keeps: `window` (the newest W) or `importance` (the
    /// newest W/2 and the W/2 older ones attention used most) [default: window].
    #[arg(long = "kv-policy", value_name = "POLICY", value_parser = parse_kv_policy)]
    pub kv_policy: Option<KvPolicy>,
    /// Newest tokens also kept in f16 beside a quantized cache.
    #[arg(long = "kv-recent", value_name = "N", hide = true)]
    pub kv_recent: Option<u32>,
    /// Store a quantized cache without the Hadamard rotation.
    #[arg(long = "no-kv-rotate", hide = true)]
    pub no_kv_rotate: bool,
    /// Quantize keys without subtracting their per-channel mean.
    #[arg(long = "no-kv-center", hide = true)]
    pub no_kv_center: bool,
    /// Conversations open at once; the budget is planned for each one's cache and scratch.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=EngineOptions::MAX_SESSIONS as i64))]
    pub sessions: u32,
    /// Skip the check of the GPU's kernels against their CPU twins (for measurements: a
    /// broken driver then gives wrong output silently).
    #[arg(long = "no-self-check", hide = true)]
    pub no_self_check: bool,
}

/// `--mem-budget`: a size as [`parse_size`] reads it.
fn parse_budget(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(message)
}

/// `-ctk`, `-ctv`: a cache type.
fn parse_kv_type(s: &str) -> Result<KvType, String> {
    KvType::parse(s).map_err(message)
}

/// `--kv-policy`: a cache policy.
fn parse_kv_policy(s: &str) -> Result<KvPolicy, String> {
    KvPolicy::parse(s).map_err(message)
}

/// A runtime error's message without the kind's prefix, for clap's "invalid value" line.
fn message(e: voyager_runtime::Error) -> String {
    e.detail()
}

impl EngineArgs {
    /// Whether any flag about memory or the KV cache was given (`voyager info` then plans).
    pub fn has_memory_flags(&self) -> bool {
        self.mem_budget.is_some()
            || self.ctx_size.is_some()
            || self.window.is_some()
            || self.cache_type_k.is_some()
            || self.cache_type_v.is_some()
            || self.sinks.is_some()
            || self.kv_policy.is_some()
            || self.kv_recent.is_some()
            || self.no_kv_rotate
            || self.sessions != 1
    }

    /// The engine options these flags ask for; `-c N` means a window of `N - sinks`.
    pub fn engine_options(&self) -> Result<EngineOptions> {
        let defaults = EngineOptions::default();
        let sinks = self.sinks.unwrap_or(defaults.sinks);
        let window = match (self.ctx_size, self.window) {
            (Some(c), Some(w)) => bail!(
                "-c {c} and --window {w} both set the attention span: give one \
                 (-c N means --window N-{sinks} with {sinks} sinks)"
            ),
            (Some(c), None) if c <= sinks as usize => bail!(
                "-c {c} leaves no room beyond the {sinks} attention sinks: \
                 give -c larger than {sinks} or fewer --sinks"
            ),
            (Some(c), None) => match u32::try_from(c - sinks as usize) {
                Ok(w) => Some(w),
                Err(_) => bail!("-c {c} is too large (at most {})", u32::MAX),
            },
            (None, w) => w,
        };
        Ok(EngineOptions {
            window,
            sinks,
            cache_type_k: self.cache_type_k.unwrap_or(defaults.cache_type_k),
            cache_type_v: self.cache_type_v.unwrap_or(defaults.cache_type_v),
            recent_f16: self.kv_recent.unwrap_or(defaults.recent_f16),
            rotate: defaults.rotate && !self.no_kv_rotate,
            center_keys: defaults.center_keys && !self.no_kv_center,
            kv_policy: self.kv_policy.unwrap_or(defaults.kv_policy),
            mem_budget: self.mem_budget,
            batch: self.batch_size,
            max_sessions: self.sessions as usize,
            self_check: if self.no_self_check {
                SelfCheck::Off
            } else {
                defaults.self_check
            },
            ..defaults
        })
    }
}

/// How the next token is chosen.
#[derive(clap::Args, Debug)]
pub struct SamplingArgs {
    /// Temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = SamplingParams::default().temperature)]
    pub temperature: f32,
    /// Keep the K most likely tokens (0: off).
    #[arg(long = "top-k", default_value_t = SamplingParams::default().top_k)]
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches P (1: off).
    #[arg(long = "top-p", default_value_t = SamplingParams::default().top_p)]
    pub top_p: f32,
    /// Drop tokens less likely than P times the most likely one (0: off).
    #[arg(long = "min-p", default_value_t = SamplingParams::default().min_p)]
    pub min_p: f32,
    /// Penalise tokens seen in the last --repeat-last-n tokens (1: off).
    #[arg(long = "repeat-penalty", default_value_t = SamplingParams::default().repeat_penalty)]
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    #[arg(long = "repeat-last-n", default_value_t = SamplingParams::default().repeat_last_n)]
    pub repeat_last_n: usize,
    /// Lower a recent token's logit by this much per time it occurs in the last
    /// --repeat-last-n tokens (0: off).
    #[arg(
        long = "frequency-penalty",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub frequency_penalty: f32,
    /// Lower the logit of every token seen in the last --repeat-last-n tokens by this much,
    /// once (0: off).
    #[arg(
        long = "presence-penalty",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub presence_penalty: f32,
    /// Random seed: the same seed gives the same output.
    #[arg(short = 's', long, default_value_t = SamplingParams::default().seed)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn params(&self) -> anyhow::Result<SamplingParams> {
        let p = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            seed: self.seed,
        };
        p.validate().map_err(anyhow::Error::msg)?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: Option<usize>, window: Option<u32>, sinks: Option<u32>) -> EngineArgs {
        EngineArgs {
            ctx_size: c,
            window,
            sinks,
            batch_size: 32,
            sessions: 1,
            ..EngineArgs::default()
        }
    }

    #[test]
    fn defaults_are_the_engines() {
        let o = args(None, None, None).engine_options().unwrap();
        assert_eq!(o, EngineOptions::default());
        assert!(!args(None, None, None).has_memory_flags());
    }

    #[test]
    fn ctx_size_is_sinks_plus_window() {
        let o = args(Some(512), None, None).engine_options().unwrap();
        assert_eq!(o.window, Some(512 - EngineOptions::default().sinks));
        let o = args(Some(512), None, Some(0)).engine_options().unwrap();
        assert_eq!((o.window, o.sinks), (Some(512), 0));
        let o = args(None, Some(100), Some(8)).engine_options().unwrap();
        assert_eq!((o.window, o.sinks), (Some(100), 8));
        assert!(args(Some(5), None, None).has_memory_flags());
    }

    #[test]
    fn conflicting_spans_are_refused() {
        let e = args(Some(512), Some(100), None)
            .engine_options()
            .unwrap_err();
        assert!(e.to_string().contains("give one"), "{e}");
        for (c, s) in [(4, None), (3, None), (8, Some(8)), (0, Some(0))] {
            let e = args(Some(c), None, s).engine_options().unwrap_err();
            assert!(e.to_string().contains("no room"), "{e}");
        }
        assert!(args(Some(usize::MAX), None, None).engine_options().is_err());
    }

    #[test]
    fn cache_flags_reach_the_options() {
        let a = EngineArgs {
            cache_type_k: Some(KvType::Q8),
            cache_type_v: Some(KvType::F16),
            mem_budget: Some(300 << 20),
            kv_recent: Some(0),
            no_kv_rotate: true,
            no_kv_center: false,
            kv_policy: Some(KvPolicy::Importance),
            ..args(None, None, None)
        };
        let o = a.engine_options().unwrap();
        assert_eq!(o.kv_policy, KvPolicy::Importance);
        assert_eq!((o.cache_type_k, o.cache_type_v), (KvType::Q8, KvType::F16));
        assert_eq!(o.mem_budget, Some(300 << 20));
        assert_eq!((o.recent_f16, o.rotate), (0, false));
        assert!(a.has_memory_flags());
    }

    #[test]
    fn value_parsers_give_bare_messages() {
        assert_eq!(parse_kv_type("Q8_0"), Ok(KvType::Q8));
        let e = parse_kv_type("q3").unwrap_err();
        assert_eq!(e, "cache type `q3` (choose f16, q8, q4, tq4 or tq3)");
        assert_eq!(parse_budget("1.5GB"), Ok(1_500_000_000));
        let e = parse_budget("banana").unwrap_err();
        assert!(e.starts_with("invalid size `banana`"), "{e}");
    }
}
