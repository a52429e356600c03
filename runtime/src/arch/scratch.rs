//! The activation buffers of one session's forward pass, sized for `max_tokens` tokens a step,
//! and the bytes they take (which the memory plan adds up before anything is allocated).

use crate::arch::{attention_params, Loaded};
use crate::gpu::kernels::attention::AttentionKernel;
use crate::gpu::kernels::step::{create_step_buffer, Step};
use crate::gpu::kernels::strategy::Strategy;
use crate::gpu::GpuBuffer;
use crate::kv::LayerLayout;
use crate::model::ModelConfig;
use crate::Result;

/// The activation buffers of one session.
pub(crate) struct Scratch {
    pub max_tokens: u32,
    /// The per-step uniform of the body and of the all-rows head.
    pub step: GpuBuffer,
    /// A uniform fixed at one token, for the last-row head.
    pub step_one: GpuBuffer,
    pub ids: GpuBuffer,
    /// The residual stream, and its value half-way through a layer.
    pub x: GpuBuffer,
    pub x2: GpuBuffer,
    /// Normalized input of a projection.
    pub h: GpuBuffer,
    /// Query, key, value projections and (where q/k are normalized) their raw form.
    pub q: GpuBuffer,
    /// The query roped at its position inside the cache, for the attention sinks.
    pub q_sink: GpuBuffer,
    pub k: GpuBuffer,
    pub v: GpuBuffer,
    pub q_raw: GpuBuffer,
    pub k_raw: GpuBuffer,
    pub attn: GpuBuffer,
    /// Attention's split partials, shared by every layer.
    pub partials: GpuBuffer,
    /// Output of a block (attention or feed-forward projection) and its normalized form.
    pub o: GpuBuffer,
    pub o2: GpuBuffer,
    pub gate: GpuBuffer,
    pub up: GpuBuffer,
    pub act: GpuBuffer,
    /// The last token's residual, normalized residual and logits.
    pub x_last: GpuBuffer,
    pub h_last: GpuBuffer,
    pub logits_last: GpuBuffer,
    pub staging_last: GpuBuffer,
}

impl Scratch {
    /// Allocates the buffers for steps of up to `max_tokens` tokens over caches laid out as
    /// `layouts`.
    pub fn new(m: &Loaded<'_>, max_tokens: u32, layouts: &[LayerLayout]) -> Result<Self> {
        let ctx = m.gpu;
        let cfg = m.cfg;
        let t = max_tokens as u64;
        let storage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let buf =
            |label: &str, width: usize| ctx.create_buffer(label, t * width as u64 * 4, storage);
        let q_width = cfg.n_heads * cfg.head_dim;
        let k_width = cfg.n_kv_heads * cfg.head_dim;
        let v_width = cfg.n_kv_heads * cfg.head_dim_v;
        let attn_width = cfg.n_heads * cfg.head_dim_v;
        let one = |label: &str, width: usize| ctx.create_buffer(label, width as u64 * 4, storage);
        let strategy = m.kernels.attention.strategy();
        Ok(Self {
            max_tokens,
            step: create_step_buffer(ctx, Step::new(0, max_tokens))?,
            step_one: create_step_buffer(ctx, Step::new(0, 1))?,
            ids: ctx.create_buffer("token ids", t * 4, storage)?,
            x: buf("x", cfg.n_embd)?,
            x2: buf("x2", cfg.n_embd)?,
            h: buf("h", cfg.n_embd)?,
            q: buf("q", q_width)?,
            q_sink: buf("q sink", q_width)?,
            k: buf("k", k_width)?,
            v: buf("v", v_width)?,
            q_raw: buf("q raw", q_width)?,
            k_raw: buf("k raw", k_width)?,
            attn: buf("attn", attn_width)?,
            partials: ctx.create_buffer(
                "attention partials",
                partials_bytes(cfg, strategy, layouts, max_tokens),
                wgpu::BufferUsages::STORAGE,
            )?,
            o: buf("o", cfg.n_embd)?,
            o2: buf("o2", cfg.n_embd)?,
            gate: buf("gate", cfg.n_ff)?,
            up: buf("up", cfg.n_ff)?,
            act: buf("act", cfg.n_ff)?,
            x_last: one("x last", cfg.n_embd)?,
            h_last: one("h last", cfg.n_embd)?,
            logits_last: one("logits last", cfg.vocab_size)?,
            staging_last: ctx.create_buffer(
                "logits staging",
                cfg.vocab_size as u64 * 4,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )?,
        })
    }
}

/// Bytes of the all-rows logits of a batch of `max_tokens` rows and of their staging buffer:
/// what a session that scores texts allocates on top of [`scratch_bytes`].
pub(crate) fn head_all_bytes(cfg: &ModelConfig, max_tokens: u32) -> u64 {
    2 * u64::from(max_tokens) * cfg.vocab_size as u64 * 4
}

/// Bytes [`Scratch::new`] allocates without the partials, plus (when `scoring`) the all-rows
/// head's logits and their staging ([`head_all_bytes`]). Keep in step with [`Scratch::new`];
/// the budget test checks the sum against the counting allocator.
pub(crate) fn scratch_bytes(cfg: &ModelConfig, max_tokens: u32, scoring: bool) -> u64 {
    let t = u64::from(max_tokens);
    let f = 4u64;
    let q = (cfg.n_heads * cfg.head_dim) as u64;
    let k = (cfg.n_kv_heads * cfg.head_dim) as u64;
    let v = (cfg.n_kv_heads * cfg.head_dim_v) as u64;
    let attn = (cfg.n_heads * cfg.head_dim_v) as u64;
    let (e, ff, vocab) = (cfg.n_embd as u64, cfg.n_ff as u64, cfg.vocab_size as u64);
    let steps = 2 * size_of::<Step>() as u64;
    let ids = t * f;
    let per_token = 5 * e + 3 * q + 2 * k + v + attn + 3 * ff;
    let last = 2 * e + 2 * vocab;
    let head_all = if scoring {
        head_all_bytes(cfg, max_tokens)
    } else {
        0
    };
    steps + ids + (t * per_token + last) * f + head_all
}

/// Bytes of the attention partials buffer a session shares across its layers.
pub(crate) fn partials_bytes(
    cfg: &ModelConfig,
    strategy: Strategy,
    layouts: &[LayerLayout],
    max_tokens: u32,
) -> u64 {
    let params = attention_params(cfg, 1.0);
    layouts
        .iter()
        .map(|l| AttentionKernel::partials_bytes(strategy, &params, l, max_tokens))
        .max()
        .unwrap_or(0)
        .max(4)
}
