//! Llama (SmolLM2, TinyLlama, Mistral-style models):
//!
//! ```text
//! x = embed(tokens)
//! for each layer:
//!     h = rms_norm(x) * attn_norm
//!     q, k, v = Wq h, Wk h, Wv h;  rope(q), rope(k)     (adjacent-pair layout)
//!     x = x + Wo attention(q, k, v)                       (causal, grouped KV heads)
//!     h = rms_norm(x) * ffn_norm
//!     x = x + Wdown (silu(Wgate h) * Wup h)
//! logits = W_out (rms_norm(x) * output_norm)              (W_out = token_embd when tied)
//! ```
//!
//! Every layer attends over the whole (bounded) cache with the model's one RoPE base.

use super::{Builder, LayerSpec, Op, Scratch};
use crate::gpu::kernels::ffn_act::Activation;
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::gpu::GpuBuffer;
use crate::model::{ModelConfig, RopeLayout};
use crate::Result;

/// Adjacent pairs (llama.cpp's `LLAMA_ROPE_TYPE_NORM`).
pub(super) const ROPE_LAYOUT: RopeLayout = RopeLayout::Normal;
/// No soft-capping of attention scores.
pub(super) const ATTENTION_SOFTCAP: f32 = 0.0;

pub(super) fn layers(cfg: &ModelConfig) -> Vec<LayerSpec> {
    let layer = LayerSpec {
        sliding_window: None,
        rope_base: cfg.rope_freq_base,
    };
    vec![layer; cfg.n_layers]
}

pub(super) fn body(b: &Builder<'_>, s: &Scratch, kv: &[KvLayerCache]) -> Result<Vec<Op>> {
    let cfg = b.config();
    let scale = 1.0 / (cfg.head_dim as f32).sqrt();
    let mut ops = vec![b.embedding(&s.ids, &s.x, 1.0)?];
    for (l, cache) in kv.iter().enumerate() {
        let w = |name: &str| format!("blk.{l}.{name}.weight");
        // Attention block.
        ops.push(b.rms_norm(&s.x, &w("attn_norm"), &s.h)?);
        ops.push(b.matmul(&w("attn_q"), &s.h, &s.q)?);
        ops.push(b.matmul(&w("attn_k"), &s.h, &s.k)?);
        ops.push(b.matmul(&w("attn_v"), &s.h, &s.v)?);
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
        ops.push(b.add(&s.x, &s.o, &s.x2)?);
        // Feed-forward block.
        ops.push(b.rms_norm(&s.x2, &w("ffn_norm"), &s.h)?);
        ops.push(b.matmul(&w("ffn_gate"), &s.h, &s.gate)?);
        ops.push(b.matmul(&w("ffn_up"), &s.h, &s.up)?);
        ops.push(b.ffn_act(&s.gate, &s.up, &s.act, Activation::Silu)?);
        ops.push(b.matmul(&w("ffn_down"), &s.act, &s.o)?);
        ops.push(b.add(&s.x2, &s.o, &s.x)?);
    }
    Ok(ops)
}

/// `logits = W_out rms_norm(x)`, with the token embedding as `W_out` when the model ties them.
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
