//! Gemma 3:
//!
//! ```text
//! x = embed(tokens) * sqrt(n_embd)
//! for each layer (every sixth global, the others over a sliding window):
//!     h = rms_norm(x) * attn_norm
//!     q = rms_norm_per_head(Wq h) * q_norm;  k = rms_norm_per_head(Wk h) * k_norm;  v = Wv h
//!     rope(q), rope(k)          (halves layout; base 10 000 on sliding layers, the model's on global)
//!     a = Wo attention(q, k, v) (scale 1/sqrt(head_dim))
//!     x = x + rms_norm(a) * post_attention_norm
//!     h = rms_norm(x) * ffn_norm
//!     f = Wdown (gelu(Wgate h) * Wup h)
//!     x = x + rms_norm(f) * post_ffw_norm
//! logits = token_embd (rms_norm(x) * output_norm)   (tied embeddings, no soft-capping)
//! ```
//!
//! The norm weights in GGUF already include Gemma's `1 +` offset (the converter adds it).
//! Layers 5, 11, 17, ... (every sixth) are global: they see the whole (bounded) cache with the
//! model's RoPE base (1 000 000). The others attend over the model's own sliding window
//! (`gemma3.attention.sliding_window`, 512) with base 10 000, as llama.cpp's gemma3 graph does.

use super::{Builder, LayerSpec, Op, Scratch};
use crate::gpu::kernels::ffn_act::Activation;
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::gpu::GpuBuffer;
use crate::model::{ModelConfig, RopeLayout};
use crate::Result;

/// Halves (llama.cpp's `LLAMA_ROPE_TYPE_NEOX`).
pub(super) const ROPE_LAYOUT: RopeLayout = RopeLayout::Neox;
/// Gemma 3 dropped Gemma 2's attention soft-capping (it normalizes q and k instead).
pub(super) const ATTENTION_SOFTCAP: f32 = 0.0;
/// One layer in this many attends globally; the others slide.
const GLOBAL_EVERY: usize = 6;
/// RoPE base of the sliding layers.
const SLIDING_ROPE_BASE: f32 = 10_000.0;

pub(super) fn layers(cfg: &ModelConfig) -> Vec<LayerSpec> {
    (0..cfg.n_layers)
        .map(|l| match cfg.sliding_window {
            Some(w) if l % GLOBAL_EVERY < GLOBAL_EVERY - 1 => LayerSpec {
                sliding_window: Some(u32::try_from(w).unwrap_or(u32::MAX)),
                rope_base: SLIDING_ROPE_BASE,
            },
            _ => LayerSpec {
                sliding_window: None,
                rope_base: cfg.rope_freq_base,
            },
        })
        .collect()
}

pub(super) fn body(b: &Builder<'_>, s: &Scratch, kv: &[KvLayerCache]) -> Result<Vec<Op>> {
    let cfg = b.config();
    let scale = 1.0 / (cfg.head_dim as f32).sqrt();
    let mut ops = vec![b.embedding(&s.ids, &s.x, (cfg.n_embd as f32).sqrt())?];
    for (l, cache) in kv.iter().enumerate() {
        let w = |name: &str| format!("blk.{l}.{name}.weight");
        // Attention block.
        ops.push(b.rms_norm(&s.x, &w("attn_norm"), &s.h)?);
        ops.push(b.matmul(&w("attn_q"), &s.h, &s.q_raw)?);
        ops.push(b.matmul(&w("attn_k"), &s.h, &s.k_raw)?);
        ops.push(b.matmul(&w("attn_v"), &s.h, &s.v)?);
        ops.push(b.rms_norm_rows(&s.q_raw, &w("attn_q_norm"), &s.q, cfg.head_dim, cfg.n_heads)?);
        ops.push(b.rms_norm_rows(
            &s.k_raw,
            &w("attn_k_norm"),
            &s.k,
            cfg.head_dim,
            cfg.n_kv_heads,
        )?);
        ops.extend(b.rope_query(&s.q, &s.q_sink, cache, l)?);
        ops.push(b.rope(&s.k, cfg.n_kv_heads, l)?);
        ops.extend(b.cached_attention(
            &s.q,
            &s.q_sink,
            &s.k,
            &s.v,
            cache,
            &s.attn,
            &s.partials,
            scale,
        )?);
        ops.push(b.matmul(&w("attn_output"), &s.attn, &s.o)?);
        ops.push(b.rms_norm(&s.o, &w("post_attention_norm"), &s.o2)?);
        ops.push(b.add(&s.x, &s.o2, &s.x2)?);
        // Feed-forward block.
        ops.push(b.rms_norm(&s.x2, &w("ffn_norm"), &s.h)?);
        ops.push(b.matmul(&w("ffn_gate"), &s.h, &s.gate)?);
        ops.push(b.matmul(&w("ffn_up"), &s.h, &s.up)?);
        ops.push(b.ffn_act(&s.gate, &s.up, &s.act, Activation::GeluTanh)?);
        ops.push(b.matmul(&w("ffn_down"), &s.act, &s.o)?);
        ops.push(b.rms_norm(&s.o, &w("post_ffw_norm"), &s.o2)?);
        ops.push(b.add(&s.x2, &s.o2, &s.x)?);
    }
    Ok(ops)
}

/// `logits = token_embd rms_norm(x)`: Gemma 3 ties its output to the embedding (a converted
/// file that carries `output.weight` uses it).
pub(super) fn head(
    b: &Builder<'_>,
    x: &GpuBuffer,
    h: &GpuBuffer,
    logits: &GpuBuffer,
) -> Result<Vec<Op>> {
    Ok(vec![
        b.rms_norm(x, "output_norm.weight", h)?,
        b.matmul(b.output_weight(), h, logits)?,
    ])
}
