//! The importance policy's scores: after a layer's attention, `kv_score` adds to each ring
//! slot's score the softmax weight the step's observed queries (its last
//! [`crate::kv::evict::OBSERVED`] tokens) gave the slot's key, summed over query heads
//! (`shaders/kv_score.wgsl`; the CPU twin is [`kv_score_ref`]). The host reads the scores back
//! and plans the next step's evictions ([`crate::kv::evict::Slots::plan`]).

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::attention::{AttentionParams, RefQuery};
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::gpu::kernels::step;
use crate::gpu::{pipeline, shaders};
use crate::kv::evict::{Slots, OBSERVED};
use crate::kv::LayerLayout;
use crate::{Error, Result};

/// Threads per workgroup; must match `shaders/kv_score.wgsl`.
const WORKGROUP_SIZE: u32 = 64;

/// Floats of the stats scratch for `n_heads` query heads: `[OBSERVED, n_heads, 4]`.
pub fn stats_floats(n_heads: u32) -> u64 {
    u64::from(OBSERVED) * u64::from(n_heads) * 4
}

/// The scores a step adds to each ring slot of `slots` (the table as planned for the step),
/// in f64: for each of the last `min(n_tokens, OBSERVED)` queries and each head, the softmax
/// over the keys the query sees (sinks, then the slots it sees) of scores computed as
/// attention does ([`crate::gpu::kernels::attention::attention_ref`]), each seen slot
/// receiving its weight. `q`, `q_sink`, `k`, `k_mean` and `pos` as there.
///
/// # Panics
/// On inputs shorter than the parameters say.
#[allow(clippy::too_many_arguments)]
pub fn kv_score_ref(
    q: &[f32],
    q_sink: &[f32],
    k: &[f32],
    k_mean: &[f32],
    pos: u32,
    layout: &LayerLayout,
    p: &AttentionParams,
    slots: &Slots,
) -> Vec<f32> {
    let nh = p.n_heads as usize;
    let hd = p.head_dim as usize;
    let n_tokens = q.len() / (nh * hd);
    let n_kv = pos + n_tokens as u32;
    let n_obs = n_tokens.min(OBSERVED as usize);
    let sinks = layout.policy.sinks;
    let query = RefQuery {
        q,
        q_sink,
        k,
        k_mean,
        n_kv,
        layout,
        p,
    };
    let mut add = vec![0f64; slots.pos.len()];
    for t in n_tokens - n_obs..n_tokens {
        let pt = pos + t as u32;
        // (position, slot) of every key the query sees; slot None for a sink.
        let mut keys: Vec<(u32, Option<usize>)> =
            (0..sinks.min(pt + 1)).map(|j| (j, None)).collect();
        keys.extend(
            (0..slots.pos.len())
                .filter(|&s| slots.visible(s, pt))
                .map(|s| (slots.pos[s] - 1, Some(s))),
        );
        for h in 0..nh {
            let scores: Vec<f64> = keys.iter().map(|&(j, _)| query.score(t, h, j)).collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = scores.iter().map(|s| (s - m).exp()).sum();
            for (&(_, slot), s) in keys.iter().zip(&scores) {
                if let Some(slot) = slot {
                    add[slot] += (s - m).exp() / sum;
                }
            }
        }
    }
    add.into_iter().map(|a| a as f32).collect()
}

/// The shader's `Params`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_heads: u32,
    head_dim: u32,
    max_obs: u32,
    _pad: u32,
    scale: f32,
    softcap: f32,
    _pad1: [u32; 2],
}

/// The `kv_score_stats` and `kv_score_add` pipelines.
pub struct KvScoreKernel {
    layout: wgpu::BindGroupLayout,
    stats: wgpu::ComputePipeline,
    add: wgpu::ComputePipeline,
}

/// One layer's scoring, bound once.
pub struct KvScoreBinding {
    bind_group: wgpu::BindGroup,
    n_heads: u32,
    ring_slots: u32,
    max_tokens: u32,
    _uniform: GpuBuffer,
}

impl KvScoreKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let source = shaders::kv_source(shaders::KV_SCORE_TEMPLATE)?;
        let (layout, mut pipelines) = pipeline::build_with_layout(
            ctx,
            "kv_score",
            &[
                pipeline::uniform_entry(0),
                pipeline::uniform_entry(1),
                pipeline::uniform_entry(2),
                pipeline::storage_entry(3, true),
                pipeline::storage_entry(4, true),
                pipeline::storage_entry(5, false),
                pipeline::storage_entry(6, false),
            ],
            &[(&source, &["kv_score_stats", "kv_score_add"])],
        )?;
        let add = pipelines.remove(1);
        Ok(Self {
            layout,
            stats: pipelines.remove(0),
            add,
        })
    }

    /// Binds the scoring of `cache` (a layer under the importance policy) for the queries
    /// `q`, `q_sink` attention read, with `stats` as scratch (at least
    /// [`stats_floats`] floats; the attention partials serve).
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        q: &GpuBuffer,
        q_sink: &GpuBuffer,
        cache: &KvLayerCache,
        stats: &GpuBuffer,
        params: &AttentionParams,
        max_tokens: u32,
    ) -> Result<KvScoreBinding> {
        const K: &str = "kv_score";
        let layout = &cache.layout;
        if layout.table.is_none() {
            return Err(Error::Gpu(format!(
                "{K}: the layer's cache keeps no slot table (window policy)"
            )));
        }
        let q_bytes = step::bytes4(
            K,
            u64::from(max_tokens) * u64::from(params.n_heads) * u64::from(params.head_dim),
        )?;
        step::check_storage(ctx, K, "q", q, q_bytes)?;
        step::check_storage(ctx, K, "q_sink", q_sink, q_bytes)?;
        step::check_storage(ctx, K, "cache", &cache.buffer, layout.bytes())?;
        step::check_storage(
            ctx,
            K,
            "stats",
            stats,
            step::bytes4(K, stats_floats(params.n_heads))?,
        )?;
        let uniform = step::uniform(
            ctx,
            "kv_score params",
            &Params {
                n_heads: params.n_heads,
                head_dim: params.head_dim,
                max_obs: OBSERVED,
                _pad: 0,
                scale: params.scale,
                softcap: params.softcap,
                _pad1: [0; 2],
            },
        )?;
        let bind_group = step::bind_group(
            ctx,
            K,
            &self.layout,
            &[
                &uniform,
                &cache.uniform,
                step_buf,
                q,
                q_sink,
                &cache.buffer,
                stats,
            ],
        );
        Ok(KvScoreBinding {
            bind_group,
            n_heads: params.n_heads,
            ring_slots: layout.policy.ring_slots,
            max_tokens,
            _uniform: uniform,
        })
    }

    /// Records the scoring of a step of `n_tokens` (after its attention).
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &KvScoreBinding,
        n_tokens: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens {
            return Err(Error::Gpu(format!(
                "kv_score: {n_tokens} tokens exceed the {} bound",
                binding.max_tokens
            )));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        pass.set_bind_group(0, &binding.bind_group, &[]);
        pass.set_pipeline(&self.stats);
        crate::gpu::counters::dispatch(pass, binding.n_heads, n_tokens.min(OBSERVED), 1);
        pass.set_pipeline(&self.add);
        crate::gpu::counters::dispatch(pass, binding.ring_slots.div_ceil(WORKGROUP_SIZE), 1, 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<Params>(), 32);
    }
}
