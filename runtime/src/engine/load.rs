//! Loading a model onto the GPU, and the engine that holds it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::arch::Loaded;
use crate::budget::{format_size, format_size_at_least, DriverMemory, Plan};
use crate::device_record::DeviceRecord;
use crate::engine::Session;
use crate::error::{Error, Result};
use crate::gpu::kernels::Kernels;
use crate::gpu::weights::{max_chunk_bytes, GpuWeight, Weights};
use crate::gpu::GpuContext;
use crate::kv::{KvConfig, KvType};
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
    /// The model's identity for session files, computed when first needed.
    identity: std::sync::OnceLock<String>,
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
    /// device and every pipeline the model needs, checks them against their CPU twins
    /// ([`crate::selfcheck`]), measures what the driver and pipelines took and plans again
    /// with that figure, then uploads the weights tensor by tensor (staging one slice at a
    /// time and dropping the file's pages of each slice once it is on the device).
    pub fn load(
        path: &Path,
        options: &EngineOptions,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Arc<Self>> {
        trace_memory("nothing (before loading)");
        let model = Model::open(path)?;
        // The memory plan before the device exists: refuses early a budget that cannot work
        // with the driver figure remembered from the last load (or the default).
        let first = crate::budget::plan(&model, options)?;
        trace_memory("model opened");

        // The driver is measured as the process's growth from here to the end of the warm-up;
        // two loads at once in one process would measure each other, so they take turns.
        let measuring = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
        let before_device = crate::process_memory::now();
        let gpu = GpuContext::new()?;
        log::info!(
            "loading {} on {} ({})",
            model.config.name.as_deref().unwrap_or("model"),
            gpu.adapter_name(),
            gpu.backend()
        );
        let kernels = Kernels::new(&gpu)?;
        for ty in model.weight_types() {
            kernels.matmul.prepare(ty)?;
        }
        if options.kv_policy == crate::kv::KvPolicy::Importance {
            // Built now so that the driver measurement below counts its pipelines.
            kernels.kv_score(&gpu)?;
        }
        let mut record = crate::device_record::records_dir(options.cache_dir.as_deref())
            .map(|dir| DeviceRecord::open(&dir, &gpu, kernels.strategy()));
        crate::selfcheck::before_load(
            &gpu,
            &kernels,
            &model,
            &first.kv_config,
            options,
            record.as_mut(),
        )?;
        trace_memory("device, pipelines and self-check");

        // What the device and pipelines took, now that every pipeline has run once.
        let measured = match (before_device, crate::process_memory::now()) {
            (Some(a), Some(b)) => Some(b.resident.saturating_sub(a.resident)),
            _ => None,
        };
        drop(measuring);
        // The remembered figure stands when this measurement is within run-to-run noise of it
        // (so the smallest budget a plan made before loading names is one the load accepts);
        // otherwise this measurement does, and is remembered: a figure inflated by something
        // else the process did meanwhile is corrected by the next clean load.
        let pipelines =
            crate::device_record::pipelines_key(model.weight_types(), options.kv_policy);
        let remembered = record
            .as_ref()
            .and_then(|r| r.driver_bytes.get(&pipelines).copied());
        let plan = match (options.driver_memory, measured) {
            (Some(_), _) | (None, None) => first,
            (None, Some(bytes)) => {
                log::debug!("the driver and pipelines take {}", format_size(bytes));
                let (driver, source) = match remembered {
                    Some(r) if bytes <= r + NOISE + r / 100 => {
                        (r, DriverMemory::Remembered(gpu.adapter_name().to_string()))
                    }
                    _ => (bytes, DriverMemory::Measured),
                };
                crate::budget::plan_with_driver(&model, options, driver, source)?
            }
        };
        if let (Some(r), Some(m)) = (record.as_mut(), measured) {
            let kept = match remembered {
                Some(old) if m <= old && m + NOISE + old / 100 >= old => old,
                Some(old) if m > old && m <= old + NOISE + old / 100 => old,
                _ => m,
            };
            r.driver_bytes.insert(pipelines, kept);
        }
        if let Some(r) = record.as_ref() {
            if let Err(e) = r.save() {
                log::warn!("cannot remember what this GPU was measured at: {e}");
            }
        }
        let kv = plan.kv_config;
        if (kv.k_type, kv.v_type) != (options.cache_type_k, options.cache_type_v) {
            log::warn!(
                "cache type {} needs heads of a multiple of {} values, and this model's are {}: \
                 using {}",
                KvType::pair_name(options.cache_type_k, options.cache_type_v),
                crate::kv::TQ_GROUP,
                model.config.head_dim,
                KvType::pair_name(kv.k_type, kv.v_type)
            );
        }
        // Device buffers get what the budget leaves after everything else in the plan.
        if let Some(budget) = options.mem_budget {
            gpu.allocator()
                .set_limit(Some(budget.saturating_sub(plan.outside_buffers())));
        }

        let total: u64 = model.file.tensors().iter().map(|t| t.n_bytes).sum();
        let mut done = 0;
        progress(LoadProgress { done, total });
        let mut weights = Weights::new();
        for info in model.file.tensors() {
            let weight = GpuWeight::upload_releasing(
                &gpu,
                info,
                model.file.tensor_data(info),
                max_chunk_bytes(gpu.limits()),
                &mut |range| model.file.release_tensor_range(info, range),
            )?;
            model.file.release_pages(info);
            weights.insert(weight);
            done += info.n_bytes;
            progress(LoadProgress { done, total });
        }
        crate::process_memory::return_free_heap();
        trace_memory("weights uploaded");
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
            identity: std::sync::OnceLock::new(),
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
        // The allocator counts device buffers; the readback of a planned session lies outside
        // them, in what the limit already reserved, while a session beyond the planned ones
        // must find room for its readback among the buffers' bytes.
        let need = if open < self.plan.sessions {
            self.plan.session_buffers()
        } else {
            self.plan.per_session()
        };
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
                format_size(limit + self.plan.outside_buffers()),
                open + 1,
                format_size_at_least(wanted.total())
            ),
            smallest: Some(wanted.total()),
        })
    }

    /// The token ids of `messages` rendered with the model's chat template, ending with the
    /// prompt for the assistant's answer: what a chat turn evaluates (a host that picks a
    /// session by the prefix it already holds compares these).
    pub fn chat_tokens(&self, messages: &[crate::tokenizer::ChatMessage]) -> Result<Vec<u32>> {
        self.model
            .template
            .encode(&self.model.tokenizer, messages, true)
    }

    /// The model's identity: the SHA-256 of its GGUF header (metadata and tensor table), which a
    /// session file must match. Hashing the header, not the weights, takes milliseconds.
    pub fn model_identity(&self) -> &str {
        self.identity.get_or_init(|| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(self.model.file.header_bytes());
            digest.iter().map(|b| format!("{b:02x}")).collect()
        })
    }

    /// A session restored from a file [`Session::save`] wrote: its cache as it was stored, its
    /// tokens, ready to go on. Refused in one line (and nothing changes) when the file is not
    /// one, is damaged, or was saved with another model or cache configuration.
    pub fn restore_session(self: &Arc<Self>, path: &Path) -> Result<Session> {
        Session::restore(self, path).map(|(s, _)| s)
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

/// Run-to-run noise of the driver measurement that a remembered figure absorbs.
const NOISE: u64 = 1 << 20;

/// Held while a load measures the driver.
static MEASURING: Mutex<()> = Mutex::new(());

/// Logs the process's resident and peak memory at a point of the load (`-vv`).
fn trace_memory(what: &str) {
    if let Some(m) = crate::process_memory::now() {
        log::debug!(
            "memory after {what}: resident {}, peak {}",
            format_size(m.resident),
            format_size(m.peak)
        );
    }
}
