// What both attention kernels (attention.wgsl, attention_rowwise.wgsl) bind and share: one
// bind group layout serves all their pipelines (runtime/src/gpu/kernels/attention.rs, whose
// `Params` mirrors the struct here).
//
// q:      [n_tokens, n_heads, head_dim] f32 (roped, normed, rotated when the cache rotates)
// q_sink: the same queries roped at their position inside the cache (for the sink keys)
// cache:  the layer's K and V (kv/layout.wgsl)
// out:    [n_tokens, n_heads, head_dim_v] f32
// partials: per-split (m, l, acc) of the split kernels

//!include "kv/layout.wgsl"

struct Params {
    n_heads: u32,
    head_dim: u32,
    head_dim_v: u32,
    max_splits: u32,
    scale: f32,
    softcap: f32,
    row_splits: u32,
    _pad: u32,
}

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 512u;
// Stands in for -inf (which WGSL cannot spell): exp(NEG_BIG - finite) is 0.
const NEG_BIG: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> lay: KvLayout;
@group(0) @binding(2) var<uniform> step: Step;
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> q_sink: array<f32>;
@group(0) @binding(5) var<storage, read> cache: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;

// A raw dot product as a score: scaled, and soft-capped when softcap > 0.
fn score(raw: f32) -> f32 {
    var s = raw * params.scale;
    if (params.softcap > 0.0) {
        s = params.softcap * tanh(clamp(s / params.softcap, -10.0, 10.0));
    }
    return s;
}
