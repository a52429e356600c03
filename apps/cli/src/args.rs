//! Flag groups shared by the commands that load a model, with llama.cpp's flag names.

use voyager_runtime::engine::sampling::SamplingParams;
use voyager_runtime::engine::EngineOptions;

/// Which model to load and how.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Model: a GGUF path or a catalog name (pulled on first use).
    #[arg(short, long)]
    pub model: String,
    /// Context size in tokens (default: the model's, capped at 4096).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Tokens per prefill batch.
    #[arg(short = 'b', long = "batch-size", default_value_t = EngineOptions::default().batch)]
    pub batch_size: usize,
}

impl ModelArgs {
    pub fn engine_options(&self) -> EngineOptions {
        let defaults = EngineOptions::default();
        EngineOptions {
            window: self
                .ctx_size
                .map(|c| (c as u32).saturating_sub(defaults.sinks).max(1)),
            batch: self.batch_size,
            ..defaults
        }
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
            seed: self.seed,
        };
        p.validate().map_err(anyhow::Error::msg)?;
        Ok(p)
    }
}
