//! Causal, optionally sliding-window, grouped-query attention over one layer's f16 KV cache.
//!
//! Token `t` of the batch (absolute position `p = step.pos + t`) with query head `h` attends
//! with kv head `h / (n_heads / n_kv_heads)` to cache positions `j` in `[lo, p]`, where
//! `lo = max(0, p - window + 1)` for a sliding-window layer (`window > 0`) and 0 otherwise:
//! `out = softmax_j(cap(q . k_j * scale)) . v`, with `cap(s) = softcap * tanh(s / softcap)`
//! when `softcap > 0` (Gemma 2). Softmax in f32.
//!
//! Two paths (shader `shaders/attention.wgsl`):
//! - prefill (`n_tokens > 1`): one workgroup per (head, token), online softmax over tiles of
//!   64 keys;
//! - decode (`n_tokens == 1`): the key range is cut into splits of [`SPLIT`] keys, one
//!   workgroup per (head, split) writes a partial (max, sum, weighted values) to a scratch
//!   buffer, then one workgroup per head merges them (flash-decoding), so a long context is
//!   spread over many workgroups.
//!
//! Kernel contract: see [`super::step`]; `encode` also takes `n_kv` (= `step.n_kv`) to size
//! the decode grid.

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::kv_cache::{f16_round, KvCache, KvFormat, KvLayerCache, KvShape};
use crate::gpu::kernels::step::{self, Step};
use crate::gpu::kernels::strategy::Strategy;
use crate::gpu::shaders;
use crate::{Error, Result};

/// Keys per decode split; must match `SPLIT` in `shaders/attention.wgsl`.
pub const SPLIT: u32 = 256;
/// Largest head width the shader holds (q in workgroup memory, value pairs per thread).
pub const MAX_HEAD_DIM: u32 = 512;

/// The static parameters of one layer's attention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionParams {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub head_dim_v: u32,
    /// Sliding window in positions (the query's own included); 0 = full causal attention.
    pub window: u32,
    /// Score scale, usually `1 / sqrt(head_dim)`.
    pub scale: f32,
    /// Soft-capping of scores; 0 disables it.
    pub softcap: f32,
}

impl AttentionParams {
    fn check(&self) -> Result<()> {
        let ok = self.n_heads > 0
            && self.n_kv_heads > 0
            && self.n_heads % self.n_kv_heads == 0
            && self.head_dim > 0
            && self.head_dim_v > 0
            && self.head_dim % 2 == 0
            && self.head_dim_v % 2 == 0
            && self.head_dim <= MAX_HEAD_DIM
            && self.head_dim_v <= MAX_HEAD_DIM
            && self.softcap >= 0.0;
        if !ok {
            return Err(Error::Gpu(format!(
                "attention: unsupported parameters {self:?} (n_heads a multiple of n_kv_heads, \
                 even head dims <= {MAX_HEAD_DIM})"
            )));
        }
        Ok(())
    }

    fn kv_shape(&self) -> KvShape {
        KvShape {
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
            head_dim_v: self.head_dim_v,
        }
    }

    /// First position a query at `p` attends to.
    pub fn window_lo(&self, p: u32) -> u32 {
        if self.window > 0 && p + 1 > self.window {
            p + 1 - self.window
        } else {
            0
        }
    }
}

/// The CPU reference. `q` is `[n_tokens, n_heads, head_dim]` with token `t` at position
/// `pos + t`; `k` / `v` are f32 `[n, n_kv_heads, head_dim(_v)]` for positions `0..n`
/// (`n >= pos + n_tokens`), rounded through f16 here exactly as the cache stores them.
/// Dot products and softmax in f64. Returns `[n_tokens, n_heads, head_dim_v]`.
///
/// # Panics
/// On bad parameters or too short `k` / `v`.
pub fn attention_ref(q: &[f32], k: &[f32], v: &[f32], pos: u32, p: &AttentionParams) -> Vec<f32> {
    p.check().expect("attention_ref");
    let (nh, nkv) = (p.n_heads as usize, p.n_kv_heads as usize);
    let (hd, hdv) = (p.head_dim as usize, p.head_dim_v as usize);
    assert_eq!(q.len() % (nh * hd), 0, "attention_ref: ragged q");
    let n_tokens = q.len() / (nh * hd);
    let n = pos as usize + n_tokens;
    assert!(
        k.len() >= n * nkv * hd && v.len() >= n * nkv * hdv,
        "attention_ref: short k/v"
    );
    let k: Vec<f32> = k.iter().map(|&x| f16_round(x)).collect();
    let v: Vec<f32> = v.iter().map(|&x| f16_round(x)).collect();
    let group = nh / nkv;
    let mut out = vec![0.0f32; n_tokens * nh * hdv];
    for t in 0..n_tokens {
        let pt = pos + t as u32;
        let lo = p.window_lo(pt) as usize;
        for h in 0..nh {
            let kvh = h / group;
            let qrow = &q[(t * nh + h) * hd..][..hd];
            let scores: Vec<f64> = (lo..=pt as usize)
                .map(|j| {
                    let krow = &k[(j * nkv + kvh) * hd..][..hd];
                    let dot: f64 = qrow
                        .iter()
                        .zip(krow)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    let s = dot * f64::from(p.scale);
                    if p.softcap > 0.0 {
                        let c = f64::from(p.softcap);
                        c * (s / c).tanh()
                    } else {
                        s
                    }
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let sum: f64 = weights.iter().sum();
            let o = &mut out[(t * nh + h) * hdv..][..hdv];
            for d in 0..hdv {
                let acc: f64 = weights
                    .iter()
                    .enumerate()
                    .map(|(i, w)| w * f64::from(v[((lo + i) * nkv + kvh) * hdv + d]))
                    .sum();
                o[d] = (acc / sum) as f32;
            }
        }
    }
    out
}

/// The shader's `Params` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    head_dim_v: u32,
    window: u32,
    capacity: u32,
    max_splits: u32,
    _pad0: u32,
    scale: f32,
    softcap: f32,
    row_splits: u32,
    _pad1: u32,
}

/// The attention pipelines, built once per device.
pub struct AttentionKernel {
    layout: wgpu::BindGroupLayout,
    prefill: wgpu::ComputePipeline,
    prefill_rowwise: wgpu::ComputePipeline,
    prefill_rowwise_combine: wgpu::ComputePipeline,
    strategy: Strategy,
    decode_split: wgpu::ComputePipeline,
    decode_combine: wgpu::ComputePipeline,
    max_groups: u32,
}

/// The bind group of one layer's attention, with its decode scratch, built once.
pub struct AttentionBinding {
    bind_group: wgpu::BindGroup,
    params: AttentionParams,
    capacity: u32,
    max_splits: u32,
    row_splits: u32,
    max_tokens: u32,
    _uniform: GpuBuffer,
    _partials: GpuBuffer,
}

/// Keys per split of the row-per-thread prefill; must match `ROW_SPLIT` in the shader.
pub const ROW_SPLIT: u32 = 128;

impl AttentionKernel {
    /// The kernel with this device's [`Strategy`] for prefill.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Self::with_strategy(ctx, Strategy::for_device(ctx))
    }

    /// The kernel with a chosen prefill [`Strategy`] (tests run both on any device).
    pub fn with_strategy(ctx: &GpuContext, strategy: Strategy) -> Result<Self> {
        let (layout, pipelines) = step::build_pipelines(
            ctx,
            "attention",
            shaders::ATTENTION,
            &[
                step::uniform_entry(0),
                step::uniform_entry(1),
                step::storage_entry(2, true),
                step::storage_entry(3, true),
                step::storage_entry(4, true),
                step::storage_entry(5, false),
                step::storage_entry(6, false),
            ],
            &[
                "attn_prefill",
                "attn_prefill_rowwise",
                "attn_prefill_rowwise_combine",
                "attn_decode_split",
                "attn_decode_combine",
            ],
        );
        let [prefill, prefill_rowwise, prefill_rowwise_combine, decode_split, decode_combine]: [wgpu::ComputePipeline; 5] =
            pipelines.try_into().expect("five pipelines");
        Ok(Self {
            layout,
            prefill,
            prefill_rowwise,
            prefill_rowwise_combine,
            strategy,
            decode_split,
            decode_combine,
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
        })
    }

    /// Binds `q` (f32 `[max_tokens, n_heads, head_dim]`), the layer's `cache` and `out`
    /// (f32 `[max_tokens, n_heads, head_dim_v]`), and allocates the decode scratch
    /// (`n_heads * ceil(min(capacity, window) / SPLIT) * (head_dim_v + 2)` f32).
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        q: &GpuBuffer,
        cache: &dyn KvCache,
        out: &GpuBuffer,
        params: &AttentionParams,
        max_tokens: u32,
    ) -> Result<AttentionBinding> {
        const K: &str = "attention";
        params.check()?;
        if cache.format() != KvFormat::F16 || cache.shape() != params.kv_shape() {
            return Err(Error::Gpu(format!(
                "{K}: cache {:?} {:?} does not match {params:?}",
                cache.format(),
                cache.shape()
            )));
        }
        let mt = u64::from(max_tokens);
        let nh = u64::from(params.n_heads);
        step::check_storage(
            ctx,
            K,
            "q",
            q,
            step::bytes4(K, mt * nh * u64::from(params.head_dim))?,
        )?;
        step::check_storage(
            ctx,
            K,
            "out",
            out,
            step::bytes4(K, mt * nh * u64::from(params.head_dim_v))?,
        )?;
        let capacity = cache.capacity();
        let shape = cache.shape();
        step::check_storage(
            ctx,
            K,
            "cache k",
            cache.keys(),
            u64::from(capacity) * u64::from(shape.k_words()) * 4,
        )?;
        step::check_storage(
            ctx,
            K,
            "cache v",
            cache.values(),
            u64::from(capacity) * u64::from(shape.v_words()) * 4,
        )?;
        let span = if params.window > 0 {
            params.window.min(capacity)
        } else {
            capacity
        };
        let max_splits = span.div_ceil(SPLIT);
        let stride = u64::from(params.head_dim_v) + 2;
        // The decode splits, and for the row-per-thread prefill one partial per (token, head,
        // split of ROW_SPLIT keys); one scratch buffer serves both.
        let row_splits = match self.strategy {
            Strategy::Cooperative => 1,
            Strategy::RowPerThread => span.div_ceil(ROW_SPLIT),
        };
        let decode_floats = nh * u64::from(max_splits) * stride;
        let row_floats = match self.strategy {
            Strategy::Cooperative => 0,
            Strategy::RowPerThread => mt * nh * u64::from(row_splits) * stride,
        };
        let partial_bytes = step::bytes4(K, decode_floats.max(row_floats))?;
        let partials = ctx.create_buffer(
            "attention partials",
            partial_bytes,
            wgpu::BufferUsages::STORAGE,
        )?;
        step::check_storage(ctx, K, "partials", &partials, partial_bytes)?;
        let uniform = step::uniform(
            ctx,
            "attention params",
            &Params {
                n_heads: params.n_heads,
                n_kv_heads: params.n_kv_heads,
                head_dim: params.head_dim,
                head_dim_v: params.head_dim_v,
                window: params.window,
                capacity,
                max_splits,
                _pad0: 0,
                scale: params.scale,
                softcap: params.softcap,
                row_splits,
                _pad1: 0,
            },
        )?;
        let bind_group = step::bind_group(
            ctx,
            K,
            &self.layout,
            &[
                &uniform,
                step_buf,
                q,
                cache.keys(),
                cache.values(),
                out,
                &partials,
            ],
        );
        Ok(AttentionBinding {
            bind_group,
            params: *params,
            capacity,
            max_splits,
            row_splits,
            max_tokens,
            _uniform: uniform,
            _partials: partials,
        })
    }

    /// Records attention for `n_tokens` tokens (the step's n_tokens) over `n_kv` cache
    /// entries (the step's n_kv: `pos + n_tokens`, after this batch's KV write). One token
    /// takes the split decode path, more the prefill path.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &AttentionBinding,
        n_tokens: u32,
        n_kv: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens || n_kv > binding.capacity || n_tokens > n_kv {
            return Err(Error::Gpu(format!(
                "attention: {n_tokens} tokens over {n_kv} cache entries exceed the bounds \
                 ({} tokens, capacity {})",
                binding.max_tokens, binding.capacity
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
            let p = n_kv - 1;
            let span = p + 1 - binding.params.window_lo(p);
            let splits = span.div_ceil(SPLIT).min(binding.max_splits);
            pass.set_pipeline(&self.decode_split);
            pass.dispatch_workgroups(nh, splits, 1);
            pass.set_pipeline(&self.decode_combine);
            pass.dispatch_workgroups(nh, 1, 1);
        } else {
            match self.strategy {
                Strategy::Cooperative => {
                    pass.set_pipeline(&self.prefill);
                    pass.dispatch_workgroups(nh, n_tokens, 1);
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
                    pass.dispatch_workgroups(groups, 1, 1);
                    pass.set_pipeline(&self.prefill_rowwise_combine);
                    pass.dispatch_workgroups((nh * n_tokens).div_ceil(64), 1, 1);
                }
            }
        }
        Ok(())
    }

    /// Attention of `q` (`[n_tokens, n_heads, head_dim]`, token `t` at position `pos + t`)
    /// over `k` / `v` (f32 for positions `0..pos + n_tokens`, stored to an f16 cache of
    /// `capacity` positions on the CPU), in one submit. For tests and tools.
    pub fn run(
        ctx: &GpuContext,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        pos: u32,
        capacity: u32,
        params: &AttentionParams,
    ) -> Result<Vec<f32>> {
        Self::new(ctx)?.run_with(ctx, q, k, v, pos, capacity, params)
    }

    /// [`AttentionKernel::run`] with this kernel's strategy.
    #[allow(clippy::too_many_arguments)]
    pub fn run_with(
        &self,
        ctx: &GpuContext,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        pos: u32,
        capacity: u32,
        params: &AttentionParams,
    ) -> Result<Vec<f32>> {
        params.check()?;
        let qt = (params.n_heads * params.head_dim) as usize;
        if q.len() % qt != 0 {
            return Err(Error::Gpu("attention: ragged q".into()));
        }
        let n_tokens = (q.len() / qt) as u32;
        let n_kv = pos + n_tokens;
        let shape = params.kv_shape();
        let (kn, vn) = (
            n_kv as usize * shape.k_words() as usize * 2,
            n_kv as usize * shape.v_words() as usize * 2,
        );
        if n_kv > capacity || k.len() < kn || v.len() < vn {
            return Err(Error::Gpu(
                "attention: k/v shorter than pos + n_tokens or over capacity".into(),
            ));
        }
        if n_tokens == 0 {
            return Ok(Vec::new());
        }
        let kernel = self;
        let cache = KvLayerCache::from_host(ctx, shape, capacity, &k[..kn], &v[..vn])?;
        let step_buf = step::create_step_buffer(ctx, Step::new(pos, n_tokens))?;
        let gq = step::input_buffer(ctx, "attention q", q)?;
        let out_len = n_tokens as usize * (params.n_heads * params.head_dim_v) as usize;
        let out = step::output_buffer(ctx, "attention out", (out_len * 4) as u64)?;
        let b = kernel.bind(ctx, &step_buf, &gq, &cache, &out, params, n_tokens)?;
        step::submit_pass(ctx, "attention", |pass| {
            kernel.encode(pass, &b, n_tokens, n_kv)
        })?;
        ctx.read_f32(&out, out_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(window: u32) -> AttentionParams {
        AttentionParams {
            n_heads: 2,
            n_kv_heads: 1,
            head_dim: 2,
            head_dim_v: 2,
            window,
            scale: 1.0,
            softcap: 0.0,
        }
    }

    #[test]
    fn reference_is_causal_and_windowed() {
        let k = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        // The first position sees only itself.
        let q = [0.3, -0.2, 0.1, 0.9];
        assert_eq!(
            attention_ref(&q, &k, &v, 0, &params(0)),
            [1.0, 2.0, 1.0, 2.0]
        );
        // A window of 1 sees only the query's own position.
        assert_eq!(
            attention_ref(&q, &k, &v, 2, &params(1)),
            [5.0, 6.0, 5.0, 6.0]
        );
        // Equal scores average the values.
        let y = attention_ref(&[0.0; 4], &k, &v, 1, &params(0));
        assert_eq!(y, [2.0, 3.0, 2.0, 3.0]);
    }

    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<Params>(), 48);
    }
}
