//! Loading a model onto the GPU.

use std::collections::HashMap;
use std::path::Path;

use crate::engine::{EngineOptions, Kernels, Session};
use crate::error::{Error, Result};
use crate::gpu::weights::GpuWeight;
use crate::gpu::{GpuBuffer, GpuContext};
use crate::kv::KvConfig;
use crate::model::Model;

/// Where loading stands, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    /// Weight bytes uploaded so far.
    pub done: u64,
    /// Weight bytes in all.
    pub total: u64,
}

/// One model loaded on one GPU: configuration, tokenizer, weights and pipelines.
/// Conversations are [`Session`]s created from it.
pub struct Engine {
    pub(crate) model: Model,
    pub(crate) gpu: GpuContext,
    pub(crate) kernels: Kernels,
    weights: HashMap<String, GpuWeight>,
    kv: KvConfig,
    batch: usize,
}

impl Engine {
    /// Opens the GGUF at `path`, plans its memory ([`crate::budget::plan`], which also
    /// validates the options), creates the GPU device and uploads the weights, tensor by
    /// tensor (staging at most one slice of one tensor at a time).
    pub fn load(
        path: &Path,
        options: &EngineOptions,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Self> {
        let model = Model::open(path)?;
        let cfg = &model.config;
        if let Some(t) = model
            .file
            .tensors()
            .iter()
            .find(|t| !t.ggml_type.is_supported())
        {
            return Err(Error::Unsupported(format!(
                "tensor `{}` has type {}, which Voyager cannot compute with",
                t.name, t.ggml_type
            )));
        }
        // The memory plan, before anything is allocated: refuses a budget that cannot work.
        let plan = crate::budget::plan(&model, options)?;
        let kv = plan.kv_config;

        let gpu = GpuContext::new()?;
        // Every buffer is counted against the budget, less what wgpu stages for uploads.
        if let Some(budget) = options.mem_budget {
            gpu.allocator()
                .set_limit(Some(budget.saturating_sub(plan.staging)));
        }
        log::info!(
            "loading {} on {} ({})",
            cfg.name.as_deref().unwrap_or("model"),
            gpu.adapter_name(),
            gpu.backend()
        );
        let kernels = Kernels::new(&gpu)?;
        let total: u64 = model.file.tensors().iter().map(|t| t.n_bytes).sum();
        let mut done = 0;
        progress(LoadProgress { done, total });
        let mut weights = HashMap::with_capacity(model.file.tensors().len());
        for info in model.file.tensors() {
            let weight = GpuWeight::upload(&gpu, info, model.file.tensor_data(info))?;
            if info.dims.len() > 1 {
                kernels.matmul.prepare(info.ggml_type)?;
            }
            model.file.release_pages(info);
            weights.insert(info.name.clone(), weight);
            done += info.n_bytes;
            progress(LoadProgress { done, total });
        }
        log::info!(
            "memory plan: {} ({})",
            crate::budget::format_size(plan.total()),
            plan.breakdown()
        );
        Ok(Self {
            model,
            gpu,
            kernels,
            weights,
            kv,
            batch: options.batch,
        })
    }

    /// The model: configuration, tokenizer, chat template.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The GPU device the engine runs on.
    pub fn gpu(&self) -> &GpuContext {
        &self.gpu
    }

    /// Positions a query of this engine's sessions can see (sinks + window).
    pub fn context_size(&self) -> usize {
        self.kv.span() as usize
    }

    /// The KV cache of this engine's sessions.
    pub fn kv_config(&self) -> &KvConfig {
        &self.kv
    }

    /// Most tokens per prefill step.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// A new conversation with an empty KV cache.
    pub fn session(&self) -> Result<Session<'_>> {
        Session::new(self)
    }

    /// The weight called `name`.
    pub(crate) fn weight(&self, name: &str) -> Result<&GpuWeight> {
        self.weights
            .get(name)
            .ok_or_else(|| Error::MissingTensor(name.to_string()))
    }

    /// The f32 vector called `name` (a norm weight), as one buffer of `len` values.
    pub(crate) fn vector(&self, name: &str, len: usize) -> Result<&GpuBuffer> {
        let w = self.weight(name)?;
        match w.chunks() {
            [chunk]
                if w.ty() == crate::gguf::GgmlType::F32
                    && (w.rows() * w.cols()) as usize == len =>
            {
                Ok(&chunk.buffer)
            }
            _ => Err(Error::Malformed(format!(
                "`{name}` should be {len} f32 values, found {} x {} {}",
                w.rows(),
                w.cols(),
                w.ty()
            ))),
        }
    }
}
