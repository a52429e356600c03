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
//! logits = W_out (rms_norm(x) * output_norm)              (in the session's head)
//! ```

use crate::engine::Builder;
use crate::engine::{Engine, Op, Scratch};
use crate::gpu::kernels::ffn_act::Activation;
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::Result;

pub(crate) fn build<'e>(e: &'e Engine, s: &Scratch, kv: &[KvLayerCache]) -> Result<Vec<Op<'e>>> {
    let b = Builder::new(e, &s.step, s.max_tokens);
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
