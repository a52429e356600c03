//! `Engine`: a loaded model, shared by its chats and completions on any thread.

use std::path::Path;
use std::sync::Arc;

use voyager_runtime::engine::Prompt;

use crate::chat::{Chat, ListenerAdapter, TokenListener};
use crate::config::{
    EngineConfig, MemoryPlan, MemoryUse, ModelInfo, Reply, ReplyStats, SamplingConfig,
};
use crate::error::{invalid, VoyagerError};
use crate::guard::guarded;

/// Says whether and how the model at `model_path` fits `config` (weights, KV window, scratch,
/// total) without loading it or touching the GPU. A budget too small is
/// `VoyagerError.Budget`, with the smallest budget that works.
#[uniffi::export]
pub fn plan(model_path: String, config: EngineConfig) -> Result<MemoryPlan, VoyagerError> {
    guarded(|| {
        let options = config.options()?;
        let plan = voyager_runtime::Engine::plan(Path::new(&model_path), &options)?;
        Ok(MemoryPlan::from(&plan))
    })
}

/// A model loaded onto the GPU, inside its memory budget.
#[derive(uniffi::Object)]
pub struct Engine {
    pub(crate) inner: Arc<voyager_runtime::Engine>,
}

#[uniffi::export]
impl Engine {
    /// Loads the GGUF model at `model_path`: checks the file, plans the memory, checks the
    /// GPU's kernels (once per device) and uploads the weights.
    #[uniffi::constructor]
    pub fn new(model_path: String, config: EngineConfig) -> Result<Arc<Self>, VoyagerError> {
        guarded(|| {
            let options = config.options()?;
            let inner =
                voyager_runtime::Engine::load(Path::new(&model_path), &options, &mut |_| {})?;
            Ok(Arc::new(Self { inner }))
        })
    }

    /// What the model is, and the span this engine gives it.
    pub fn model_info(&self) -> ModelInfo {
        let m = self.inner.model();
        let c = &m.config;
        ModelInfo {
            name: c.name.clone(),
            architecture: c.arch.to_string(),
            file_size_bytes: m.file.file_size(),
            layers: c.n_layers as u32,
            vocab_size: c.vocab_size as u32,
            trained_context: c.context_length as u32,
            context_size: self.inner.context_size() as u32,
        }
    }

    /// The plan the engine was loaded with.
    pub fn memory_plan(&self) -> MemoryPlan {
        MemoryPlan::from(self.inner.memory_plan())
    }

    /// Memory the engine holds now.
    pub fn memory_in_use(&self) -> MemoryUse {
        let stats = self.inner.gpu().memory_stats();
        let plan = self.inner.memory_plan();
        MemoryUse {
            device_bytes: stats.live_bytes,
            device_peak_bytes: stats.peak_bytes,
            planned_bytes: plan.total(),
            budget_bytes: plan.budget,
        }
    }

    /// A new conversation, opened by `system_prompt` when given, answering with `sampling`.
    /// Each chat holds one of the engine's `maxSessions` sessions until it is closed.
    pub fn chat(
        &self,
        system_prompt: Option<String>,
        sampling: SamplingConfig,
    ) -> Result<Arc<Chat>, VoyagerError> {
        guarded(|| Chat::open(&self.inner, system_prompt.as_deref(), sampling))
    }

    /// Continues `prompt` (raw text, no chat template) by up to `max_tokens` tokens, streaming
    /// the text to `listener`. Uses a session of its own for the call.
    pub fn complete(
        &self,
        prompt: String,
        sampling: SamplingConfig,
        max_tokens: u32,
        listener: Arc<dyn TokenListener>,
    ) -> Result<Reply, VoyagerError> {
        guarded(|| {
            if prompt.is_empty() {
                return Err(invalid("the prompt is empty"));
            }
            let options = sampling.options(max_tokens)?;
            let mut session = self.inner.session()?;
            let mut adapter = ListenerAdapter::new(listener);
            let gen = session.generate(Prompt::Text(&prompt), &options, &mut |piece| {
                adapter.on_token(piece)
            })?;
            adapter.result()?;
            Ok(Reply {
                stats: ReplyStats {
                    prompt_tokens: gen.prompt_tokens.len() as u32,
                    reused_tokens: (gen.prompt_tokens.len() - gen.prefilled) as u32,
                    generated_tokens: gen.tokens.len() as u32,
                    prefill_tokens_per_second: gen.prefill_tokens_per_second(),
                    decode_tokens_per_second: gen.decode_tokens_per_second(),
                    tokens_in_window: session.tokens_in_window() as u32,
                    tokens_evicted: session.tokens_evicted() as u64,
                },
                text: gen.text,
                stop_reason: gen.stop.into(),
            })
        })
    }
}
