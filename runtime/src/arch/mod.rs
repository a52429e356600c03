//! One file per architecture, each owning its whole model the way mlx-lm's `llama.py` and
//! `gemma3_text.py` do: which layers slide and their RoPE base and layout ([`LayerSpec`]), the
//! forward pass laid out as a list of bound kernel invocations read top to bottom (the body),
//! and the output head (final norm, LM head or tied embedding, soft-capping).
//!
//! - [`ops`]: the op builder the architecture files call, and the [`Op`] it returns;
//! - [`scratch`]: the activation buffers a session's forward pass binds, and their size;
//! - `llama.rs`, `gemma3.rs`: the models.
//!
//! The engine (`crate::engine`) allocates a session's scratch and cache, asks this module for
//! the ops once, and records them every step.

mod gemma3;
mod llama;
pub(crate) mod ops;
pub(crate) mod scratch;

pub(crate) use ops::{Builder, Loaded, Op, StepInfo};
pub(crate) use scratch::Scratch;

use crate::gpu::kernels::attention::AttentionParams;
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::gpu::GpuBuffer;
use crate::kv::{HeadShape, KvConfig, LayerLayout};
use crate::model::{Architecture, ModelConfig, RopeLayout};
use crate::Result;

/// What one layer's attention looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerSpec {
    /// The model's own sliding window, when this layer attends over one (Gemma 3's local
    /// layers); `None` for a layer that sees the whole (bounded) cache.
    pub sliding_window: Option<u32>,
    /// The RoPE base of this layer.
    pub rope_base: f32,
}

/// Every layer of a model, in order.
pub fn layer_specs(cfg: &ModelConfig) -> Vec<LayerSpec> {
    match cfg.arch {
        Architecture::Llama => llama::layers(cfg),
        Architecture::Gemma3 => gemma3::layers(cfg),
    }
}

/// How an architecture pairs dimensions when rotating by RoPE.
pub fn rope_layout(arch: Architecture) -> RopeLayout {
    match arch {
        Architecture::Llama => llama::ROPE_LAYOUT,
        Architecture::Gemma3 => gemma3::ROPE_LAYOUT,
    }
}

/// Soft-capping of attention scores (0: none).
fn attention_softcap(arch: Architecture) -> f32 {
    match arch {
        Architecture::Llama => llama::ATTENTION_SOFTCAP,
        Architecture::Gemma3 => gemma3::ATTENTION_SOFTCAP,
    }
}

/// The shape of a model's KV heads (every layer's is the same).
pub(crate) fn head_shape(cfg: &ModelConfig) -> HeadShape {
    HeadShape {
        n_kv_heads: cfg.n_kv_heads as u32,
        head_dim: cfg.head_dim as u32,
        head_dim_v: cfg.head_dim_v as u32,
    }
}

/// The KV layout of every layer under a cache configuration: `kv` on the layers that see the
/// whole cache, the model's own window (and no sinks) on its sliding layers.
pub(crate) fn layer_layouts(
    cfg: &ModelConfig,
    kv: &KvConfig,
    batch: u32,
) -> Result<Vec<LayerLayout>> {
    let shape = head_shape(cfg);
    layer_specs(cfg)
        .iter()
        .map(|l| LayerLayout::new(kv, shape, l.sliding_window, batch))
        .collect()
}

/// The attention parameters of a model (the cache layout gives the window).
pub(crate) fn attention_params(cfg: &ModelConfig, scale: f32) -> AttentionParams {
    AttentionParams {
        n_heads: cfg.n_heads as u32,
        n_kv_heads: cfg.n_kv_heads as u32,
        head_dim: cfg.head_dim as u32,
        head_dim_v: cfg.head_dim_v as u32,
        scale,
        softcap: attention_softcap(cfg.arch),
    }
}

/// The embedding and every layer of the model, bound to a session's buffers; the residual
/// stream ends in `scratch.x`.
pub(crate) fn build_body(m: &Loaded<'_>, s: &Scratch, kv: &[KvLayerCache]) -> Result<Vec<Op>> {
    let b = Builder::new(m, &s.step, s.max_tokens);
    match m.cfg.arch {
        Architecture::Llama => llama::body(&b, s, kv),
        Architecture::Gemma3 => gemma3::body(&b, s, kv),
    }
}

/// The output head over `rows` rows of the residual stream `x` (through the step uniform
/// `step`): `logits = head(norm(x))`, using `h` for the normalized rows.
pub(crate) fn build_head(
    m: &Loaded<'_>,
    step: &GpuBuffer,
    rows: u32,
    x: &GpuBuffer,
    h: &GpuBuffer,
    logits: &GpuBuffer,
) -> Result<Vec<Op>> {
    let b = Builder::new(m, step, rows);
    match m.cfg.arch {
        Architecture::Llama => llama::head(&b, x, h, logits),
        Architecture::Gemma3 => gemma3::head(&b, x, h, logits),
    }
}
