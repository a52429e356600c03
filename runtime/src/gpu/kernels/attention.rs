//! Grouped-query attention over one layer's KV cache: the sinks plus a sliding window, K and
//! V read in place in their stored format (f16, q8, q4; see [`crate::kv`]).
//!
//! Token `t` of the batch (position `p = step.pos + t`) with query head `h` attends with kv
//! head `h / (n_heads / n_kv_heads)` to the keys [`LayerLayout::keys`]`(p)`: the sinks, then
//! its window. `out = softmax_j(cap(q . k_j * scale)) . v`, with `cap(s) = softcap *
//! tanh(s / softcap)` when `softcap > 0`; softmax in f32. Sink keys are scored against
//! `q_sink`, the query roped at its position inside the cache
//! ([`LayerLayout::sink_query_pos`]).
//!
//! Paths (shaders `attention.wgsl`, `attention_rowwise.wgsl`):
//! - prefill, cooperative: one workgroup per (head, token), online softmax over tiles of 64;
//! - prefill, row per thread (CPU adapters): one thread per (token, head, [`ROW_SPLIT`] keys),
//!   then a merge;
//! - decode: the keys cut into splits of [`SPLIT`], one workgroup each, then a merge.

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::kv_cache::{stored_ref, KvLayerCache, Side};
use crate::gpu::kernels::step;
use crate::gpu::kernels::strategy::Strategy;
use crate::gpu::{pipeline, shaders};
use crate::kv::LayerLayout;
use crate::{Error, Result};

/// Keys per decode split; must match `SPLIT` in `shaders/attention.wgsl`.
pub const SPLIT: u32 = 256;
/// Keys per split of the row-per-thread prefill; must match `ROW_SPLIT` in the shader.
pub const ROW_SPLIT: u32 = 128;
/// Largest head width the shaders hold.
pub const MAX_HEAD_DIM: u32 = 512;

/// The static parameters of one layer's attention (the cache's layout gives the rest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionParams {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub head_dim_v: u32,
    /// Score scale, usually `1 / sqrt(head_dim)`.
    pub scale: f32,
    /// Soft-capping of scores; 0 disables it.
    pub softcap: f32,
}

impl AttentionParams {
    fn check(&self, layout: &LayerLayout) -> Result<()> {
        let ok = self.n_heads > 0
            && self.n_kv_heads > 0
            && self.n_heads % self.n_kv_heads == 0
            && self.head_dim <= MAX_HEAD_DIM
            && self.head_dim_v <= MAX_HEAD_DIM
            && self.softcap >= 0.0
            && layout.shape.n_kv_heads == self.n_kv_heads
            && layout.shape.head_dim == self.head_dim
            && layout.shape.head_dim_v == self.head_dim_v;
        if !ok {
            return Err(Error::Gpu(format!(
                "attention: unsupported parameters {self:?} for a cache of {:?} (n_heads a \
                 multiple of n_kv_heads, head dims <= {MAX_HEAD_DIM})",
                layout.shape
            )));
        }
        Ok(())
    }
}

/// The CPU reference. `q` and `q_sink` are `[n_tokens, n_heads, head_dim]`, token `t` at
/// position `pos + t`; `k` / `v` are f32 `[n_kv, n_kv_heads, head_dim(_v)]` for positions
/// `0..n_kv` with `n_kv = pos + n_tokens`, as written to the cache: each key and value is
/// rounded through the format of the region it is stored in (see [`stored_ref`]), keys
/// centered on `k_mean` (from `kv_cache::first_write_mean`) when the cache centers them. Dot
/// products and softmax in f64. Returns `[n_tokens, n_heads, head_dim_v]`.
///
/// # Panics
/// On bad parameters or too short inputs.
#[allow(clippy::too_many_arguments)]
pub fn attention_ref(
    q: &[f32],
    q_sink: &[f32],
    k: &[f32],
    v: &[f32],
    k_mean: &[f32],
    pos: u32,
    layout: &LayerLayout,
    p: &AttentionParams,
) -> Vec<f32> {
    attention_ref_over(q, q_sink, k, v, k_mean, pos, layout, p, |pt| {
        layout.keys(pt).collect()
    })
}

/// What the CPU twins of attention and of `kv_score` score keys against.
pub(crate) struct RefQuery<'a> {
    pub q: &'a [f32],
    pub q_sink: &'a [f32],
    pub k: &'a [f32],
    pub k_mean: &'a [f32],
    pub n_kv: u32,
    pub layout: &'a LayerLayout,
    pub p: &'a AttentionParams,
}

impl RefQuery<'_> {
    /// The score (in f64) of query head `h` of token `t` against the key at position `j` as
    /// the cache stores it: scaled, soft-capped when asked; the sinks against `q_sink`.
    pub fn score(&self, t: usize, h: usize, j: u32) -> f64 {
        let p = self.p;
        let (nh, nkv) = (p.n_heads as usize, p.n_kv_heads as usize);
        let hd = p.head_dim as usize;
        let kvh = h / (nh / nkv);
        let src = if j < self.layout.policy.sinks {
            self.q_sink
        } else {
            self.q
        };
        let qrow = &src[(t * nh + h) * hd..][..hd];
        let head = &self.k[(j as usize * nkv + kvh) * hd..][..hd];
        let kk = stored_ref(
            self.layout,
            Side::K,
            j,
            kvh as u32,
            self.n_kv,
            head,
            self.k_mean,
        );
        let dot: f64 = qrow
            .iter()
            .zip(&kk)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let s = dot * f64::from(p.scale);
        if p.softcap > 0.0 {
            let c = f64::from(p.softcap);
            c * (s / c).tanh()
        } else {
            s
        }
    }
}

/// [`attention_ref`] over the keys `keys(p)` gives a query at `p` (positions, sinks first):
/// the importance policy's (sinks, then [`crate::kv::evict::Slots::keys`]).
#[allow(clippy::too_many_arguments)]
pub fn attention_ref_over(
    q: &[f32],
    q_sink: &[f32],
    k: &[f32],
    v: &[f32],
    k_mean: &[f32],
    pos: u32,
    layout: &LayerLayout,
    p: &AttentionParams,
    keys_of: impl Fn(u32) -> Vec<u32>,
) -> Vec<f32> {
    p.check(layout).expect("attention_ref");
    let (nh, nkv) = (p.n_heads as usize, p.n_kv_heads as usize);
    let (hd, hdv) = (p.head_dim as usize, p.head_dim_v as usize);
    let n_tokens = q.len() / (nh * hd);
    let n_kv = pos + n_tokens as u32;
    assert!(k.len() >= n_kv as usize * nkv * hd && v.len() >= n_kv as usize * nkv * hdv);
    let group = nh / nkv;
    let mut out = vec![0.0f32; n_tokens * nh * hdv];
    for t in 0..n_tokens {
        let pt = pos + t as u32;
        for h in 0..nh {
            let kvh = h / group;
            let keys = keys_of(pt);
            let query = RefQuery {
                q,
                q_sink,
                k,
                k_mean,
                n_kv,
                layout,
                p,
            };
            let scores: Vec<f64> = keys.iter().map(|&j| query.score(t, h, j)).collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let sum: f64 = weights.iter().sum();
            let mut acc = vec![0f64; hdv];
            for (&j, w) in keys.iter().zip(&weights) {
                let head = &v[(j as usize * nkv + kvh) * hdv..][..hdv];
                let vv = stored_ref(layout, Side::V, j, kvh as u32, n_kv, head, &[]);
                for (a, x) in acc.iter_mut().zip(&vv) {
                    *a += w * f64::from(*x);
                }
            }
            let o = &mut out[(t * nh + h) * hdv..][..hdv];
            for (o, a) in o.iter_mut().zip(&acc) {
                *o = (a / sum) as f32;
            }
        }
    }
    out
}

/// The shaders' `Params` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
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

/// The attention pipelines, built once per device.
pub struct AttentionKernel {
    layout: wgpu::BindGroupLayout,
    prefill: wgpu::ComputePipeline,
    decode_split: wgpu::ComputePipeline,
    decode_combine: wgpu::ComputePipeline,
    prefill_rowwise: wgpu::ComputePipeline,
    prefill_rowwise_combine: wgpu::ComputePipeline,
    strategy: Strategy,
    max_groups: u32,
}

/// The bind group of one layer's attention, with its scratch, built once.
pub struct AttentionBinding {
    bind_group: wgpu::BindGroup,
    params: AttentionParams,
    layout: LayerLayout,
    max_splits: u32,
    row_splits: u32,
    max_tokens: u32,
    _uniform: GpuBuffer,
}

impl AttentionKernel {
    /// The kernel with this device's [`Strategy`] for prefill.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Self::with_strategy(ctx, Strategy::for_device(ctx))
    }

    /// The kernel with a chosen prefill [`Strategy`] (tests run both on any device).
    pub fn with_strategy(ctx: &GpuContext, strategy: Strategy) -> Result<Self> {
        let coop = shaders::kv_source(shaders::ATTENTION_TEMPLATE)?;
        let rowwise = shaders::kv_source(shaders::ATTENTION_ROWWISE_TEMPLATE)?;
        let (layout, pipelines) = pipeline::build_with_layout(
            ctx,
            "attention",
            &[
                pipeline::uniform_entry(0),
                pipeline::uniform_entry(1),
                pipeline::uniform_entry(2),
                pipeline::storage_entry(3, true),
                pipeline::storage_entry(4, true),
                pipeline::storage_entry(5, true),
                pipeline::storage_entry(6, false),
                pipeline::storage_entry(7, false),
            ],
            &[
                (
                    &coop,
                    &["attn_prefill", "attn_decode_split", "attn_decode_combine"],
                ),
                (
                    &rowwise,
                    &["attn_prefill_rowwise", "attn_prefill_rowwise_combine"],
                ),
            ],
        )?;
        let [prefill, decode_split, decode_combine, prefill_rowwise, prefill_rowwise_combine]: [wgpu::ComputePipeline; 5] =
            pipelines.try_into().expect("five pipelines");
        Ok(Self {
            layout,
            prefill,
            decode_split,
            decode_combine,
            prefill_rowwise,
            prefill_rowwise_combine,
            strategy,
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
        })
    }

    /// Bytes of the partials buffer a binding with `layout` needs (split decode, and the
    /// row-per-thread prefill's splits). Layers run one after another, so one buffer of the
    /// largest size serves them all.
    pub fn partials_bytes(
        strategy: Strategy,
        params: &AttentionParams,
        layout: &LayerLayout,
        max_tokens: u32,
    ) -> u64 {
        let (max_splits, row_splits) = splits(strategy, layout);
        let stride = u64::from(params.head_dim_v) + 2;
        let nh = u64::from(params.n_heads);
        let decode = nh * u64::from(max_splits) * stride;
        let rows = match strategy {
            Strategy::Cooperative => 0,
            Strategy::RowPerThread => u64::from(max_tokens) * nh * u64::from(row_splits) * stride,
        };
        let score_stats = match layout.table {
            Some(_) => crate::gpu::kernels::kv_score::stats_floats(params.n_heads),
            None => 0,
        };
        decode.max(rows).max(score_stats) * 4
    }

    /// Tokens in the first write step when a history of `n_kv` positions, `n_tokens` of them
    /// queries, is written in steps of at most the layout's batch, the queries last (as
    /// `crate::selfcheck::Harness::attention` does): the step that sets the key mean.
    pub fn first_step(layout: &LayerLayout, n_kv: u32, n_tokens: u32) -> u32 {
        let pos = n_kv - n_tokens;
        if pos == 0 {
            n_tokens
        } else {
            pos.min(layout.max_batch())
        }
    }

    /// The strategy this kernel prefills with.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Binds `q` and `q_sink` (f32 `[max_tokens, n_heads, head_dim]`), the layer's `cache`,
    /// `out` (f32 `[max_tokens, n_heads, head_dim_v]`) and `partials` (at least
    /// [`AttentionKernel::partials_bytes`]).
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        q: &GpuBuffer,
        q_sink: &GpuBuffer,
        cache: &KvLayerCache,
        out: &GpuBuffer,
        partials: &GpuBuffer,
        params: &AttentionParams,
        max_tokens: u32,
    ) -> Result<AttentionBinding> {
        const K: &str = "attention";
        let layout = cache.layout;
        params.check(&layout)?;
        let mt = u64::from(max_tokens);
        let nh = u64::from(params.n_heads);
        let q_bytes = step::bytes4(K, mt * nh * u64::from(params.head_dim))?;
        step::check_storage(ctx, K, "q", q, q_bytes)?;
        step::check_storage(ctx, K, "q_sink", q_sink, q_bytes)?;
        step::check_storage(
            ctx,
            K,
            "out",
            out,
            step::bytes4(K, mt * nh * u64::from(params.head_dim_v))?,
        )?;
        step::check_storage(ctx, K, "cache", &cache.buffer, layout.bytes())?;
        let (max_splits, row_splits) = splits(self.strategy, &layout);
        let partial_bytes = Self::partials_bytes(self.strategy, params, &layout, max_tokens);
        step::check_storage(ctx, K, "partials", partials, partial_bytes.max(4))?;
        let uniform = step::uniform(
            ctx,
            "attention params",
            &Params {
                n_heads: params.n_heads,
                head_dim: params.head_dim,
                head_dim_v: params.head_dim_v,
                max_splits,
                scale: params.scale,
                softcap: params.softcap,
                row_splits,
                _pad: 0,
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
                out,
                partials,
            ],
        );
        Ok(AttentionBinding {
            bind_group,
            params: *params,
            layout,
            max_splits,
            row_splits,
            max_tokens,
            _uniform: uniform,
        })
    }

    /// Records attention for the step's `n_tokens` tokens, the last at position `n_kv - 1`
    /// (after this batch's KV write). One token takes the split decode path, more the
    /// prefill path.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &AttentionBinding,
        n_tokens: u32,
        n_kv: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens || n_tokens > n_kv {
            return Err(Error::Gpu(format!(
                "attention: {n_tokens} tokens over {n_kv} positions exceed the bound of {} tokens",
                binding.max_tokens
            )));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        let nh = binding.params.n_heads;
        if nh > self.max_groups || n_tokens > self.max_groups {
            return Err(Error::Gpu(format!(
                "attention: {nh} heads x {n_tokens} tokens exceed the dispatch grid"
            )));
        }
        pass.set_bind_group(0, &binding.bind_group, &[]);
        if n_tokens == 1 {
            let span = binding.layout.span_at(n_kv - 1);
            let splits = span.div_ceil(SPLIT).min(binding.max_splits);
            pass.set_pipeline(&self.decode_split);
            crate::gpu::counters::dispatch(pass, nh, splits, 1);
            pass.set_pipeline(&self.decode_combine);
            crate::gpu::counters::dispatch(pass, nh, 1, 1);
            return Ok(());
        }
        match self.strategy {
            Strategy::Cooperative => {
                pass.set_pipeline(&self.prefill);
                crate::gpu::counters::dispatch(pass, nh, n_tokens, 1);
            }
            Strategy::RowPerThread => {
                let threads = u64::from(nh * n_tokens) * u64::from(binding.row_splits);
                let groups = u32::try_from(threads.div_ceil(64))
                    .ok()
                    .filter(|&g| g <= self.max_groups)
                    .ok_or_else(|| {
                        Error::Gpu(format!(
                            "attention: {n_tokens} tokens x {nh} heads exceed one dispatch"
                        ))
                    })?;
                pass.set_pipeline(&self.prefill_rowwise);
                crate::gpu::counters::dispatch(pass, groups, 1, 1);
                pass.set_pipeline(&self.prefill_rowwise_combine);
                crate::gpu::counters::dispatch(pass, (nh * n_tokens).div_ceil(64), 1, 1);
            }
        }
        Ok(())
    }
}

/// (decode splits, row-per-thread splits) for the longest span of `layout`.
fn splits(strategy: Strategy, layout: &LayerLayout) -> (u32, u32) {
    let span = layout.max_span();
    let rows = match strategy {
        Strategy::Cooperative => 1,
        Strategy::RowPerThread => span.div_ceil(ROW_SPLIT),
    };
    (span.div_ceil(SPLIT), rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{HeadShape, KvConfig};

    #[test]
    fn reference_sees_sinks_and_window() {
        let shape = HeadShape {
            n_kv_heads: 1,
            head_dim: 32,
            head_dim_v: 32,
        };
        let cfg = KvConfig {
            sinks: 1,
            ..KvConfig::f16(2)
        };
        let layout = LayerLayout::new(&cfg, shape, None, 1).unwrap();
        let params = AttentionParams {
            n_heads: 1,
            n_kv_heads: 1,
            head_dim: 32,
            head_dim_v: 32,
            scale: 1.0,
            softcap: 0.0,
        };
        // Values 0, 1, 2, 3 at positions 0..4; zero keys give equal scores.
        let k = vec![0.0; 4 * 32];
        let v: Vec<f32> = (0..4).flat_map(|p| [p as f32; 32]).collect();
        let q = vec![0.0; 32];
        // Position 3 sees the sink 0 and the window 2, 3: mean (0 + 2 + 3) / 3.
        let y = attention_ref(&q, &q, &k, &v, &[], 3, &layout, &params);
        assert!((y[0] - 5.0 / 3.0).abs() < 1e-6, "{y:?}");
    }

    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<Params>(), 32);
    }
}
