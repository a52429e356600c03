//! Loading a model onto the GPU, and the engine that holds it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::arch::Loaded;
use crate::budget::{format_size, format_size_at_least, Plan};
use crate::engine::Session;
use crate::error::{Error, Result};
use crate::gpu::kernels::Kernels;
use crate::gpu::weights::{GpuWeight, Weights};
use crate::gpu::GpuContext;
use crate::kv::KvConfig;
use crate::model::Model;
use crate::options::EngineOptions;

/// Where loading stands, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    /// Weight bytes uploaded so far.
    pub done: u64,
    /// Weight bytes in all.
    pub total: u64,
}

/// One model loaded on one GPU: configuration, tokenizer, weights and pipelines, shared by
/// every conversation ([`Session`]) opened on it.
///
/// An engine is `Send + Sync` and lives in an [`Arc`]: hosts keep one per model and open
/// sessions from any thread. Sessions share the weights and pipelines; each has its own cache
/// and activations, so sessions on different threads run side by side (their GPU work is
/// submitted separately and never touches another session's buffers).
pub struct Engine {
    pub(crate) model: Model,
    pub(crate) gpu: GpuContext,
    pub(crate) kernels: Kernels,
    weights: Weights,
    kv: KvConfig,
    batch: usize,
    plan: Plan,
    /// Sessions open now; the lock is held while one is opened, so two threads cannot both
    /// take the last room in the budget.
    open: Mutex<usize>,
}

impl Engine {
    /// The memory plan of the model at `path` under `options`, without touching the GPU:
    /// whether and how it fits (weights, KV window, scratch, total), or the refusal a load
    /// would give.
    pub fn plan(path: &Path, options: &EngineOptions) -> Result<Plan> {
        crate::budget::plan(&Model::open(path)?, options)
    }

    /// Opens the GGUF at `path`, plans its memory ([`crate::budget::plan`], which also
    /// validates the options and refuses tensor types no kernel reads), creates the GPU
    /// device, checks its kernels ([`crate::selfcheck`]) and uploads the weights, tensor by
    /// tensor (staging at most one slice of one tensor at a time).
    pub fn load(
        path: &Path,
        options: &EngineOptions,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Arc<Self>> {
        let model = Model::open(path)?;
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
            model.config.name.as_deref().unwrap_or("model"),
            gpu.adapter_name(),
            gpu.backend()
        );
        let kernels = Kernels::new(&gpu)?;
        crate::selfcheck::before_load(&gpu, &kernels, &model, &kv, options)?;
        let total: u64 = model.file.tensors().iter().map(|t| t.n_bytes).sum();
        let mut done = 0;
        progress(LoadProgress { done, total });
        let mut weights = Weights::new();
        for info in model.file.tensors() {
            let weight = GpuWeight::upload(&gpu, info, model.file.tensor_data(info))?;
            if info.dims.len() > 1 {
                kernels.matmul.prepare(info.ggml_type)?;
            }
            model.file.release_pages(info);
            weights.insert(weight);
            done += info.n_bytes;
            progress(LoadProgress { done, total });
        }
        log::info!(
            "memory plan: {} ({})",
            format_size(plan.total()),
            plan.breakdown()
        );
        Ok(Arc::new(Self {
            model,
            gpu,
            kernels,
            weights,
            kv,
            batch: options.batch,
            plan,
            open: Mutex::new(0),
        }))
    }

    /// The model: configuration, tokenizer, chat template.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The GPU device the engine runs on.
    pub fn gpu(&self) -> &GpuContext {
        &self.gpu
    }

    /// The memory plan the engine was loaded with.
    pub fn memory_plan(&self) -> &Plan {
        &self.plan
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

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        *self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new conversation with an empty KV cache. Refused with [`Error::Budget`] when the
    /// memory budget has no room for another session's cache and scratch.
    pub fn session(self: &Arc<Self>) -> Result<Session> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        self.check_room_for_session(*open)?;
        let session = Session::new(Arc::clone(self))?;
        *open += 1;
        Ok(session)
    }

    /// Called by a closing session: its buffers are already dropped.
    pub(crate) fn session_closed(&self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        *open = open.saturating_sub(1);
    }

    /// Refuses a session the budget cannot hold, saying what would.
    fn check_room_for_session(&self, open: usize) -> Result<()> {
        let Some(limit) = self.gpu.allocator().limit() else {
            return Ok(());
        };
        let need = self.plan.per_session();
        let free = limit.saturating_sub(self.gpu.allocator().live_bytes());
        if free >= need {
            return Ok(());
        }
        let wanted = Plan {
            sessions: open + 1,
            ..self.plan.clone()
        };
        Err(Error::Budget {
            message: format!(
                "another session needs {} (KV {} + scratch {}) but {} of the {} budget is free \
                 with {open} open: close a session, or load with --sessions {} and \
                 --mem-budget {}",
                format_size(need),
                format_size(self.plan.kv),
                format_size(self.plan.scratch),
                format_size(free),
                format_size(limit + self.plan.staging),
                open + 1,
                format_size_at_least(wanted.total())
            ),
            smallest: Some(wanted.total()),
        })
    }

    /// The engine as the architecture files and kernels see it.
    pub(crate) fn loaded(&self) -> Loaded<'_> {
        Loaded {
            gpu: &self.gpu,
            kernels: &self.kernels,
            weights: &self.weights,
            cfg: &self.model.config,
            kv: &self.kv,
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model", &self.model.config.name)
            .field("gpu", &self.gpu)
            .field("kv", &self.kv)
            .finish_non_exhaustive()
    }
}
