//! Rotary position embedding, in place on `[n_tokens, n_heads, head_dim]` f32, matching
//! ggml's `rope` with no YaRN extension: pair `i < rope_dim / 2` of token `t` is rotated by
//! `theta = (pos + t) * freq_scale * base^(-2i / rope_dim)`. [`RopeLayout::Normal`] rotates
//! dims `(2i, 2i + 1)`, [`RopeLayout::Neox`] rotates `(i, i + rope_dim / 2)`; dims
//! `>= rope_dim` are untouched. Shader: `shaders/rope.wgsl`. Kernel contract: see
//! [`super::step`].

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::step;
use crate::gpu::{pipeline, shaders};
use crate::model::RopeLayout;
use crate::{Error, Result};

/// Threads per workgroup; must match `shaders/rope.wgsl`.
const WORKGROUP_SIZE: u32 = 256;

/// The static shape and frequencies of one RoPE use (q or k of a layer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeParams {
    pub n_heads: u32,
    pub head_dim: u32,
    /// Dimensions rotated, even and `<= head_dim`.
    pub rope_dim: u32,
    pub base: f32,
    /// Linear position scaling (1 when the model has none).
    pub freq_scale: f32,
    pub layout: RopeLayout,
    /// Positions are capped here (`u32::MAX`: no cap); see `sink_query_pos` in [`crate::kv`].
    pub max_pos: u32,
}

impl RopeParams {
    pub(crate) fn check(&self) -> Result<()> {
        if self.n_heads == 0
            || self.head_dim == 0
            || self.rope_dim % 2 != 0
            || self.rope_dim > self.head_dim
            || self.head_dim % 2 != 0
        {
            return Err(Error::Gpu(format!(
                "rope: bad shape {self:?} (rope_dim must be even and <= head_dim)"
            )));
        }
        Ok(())
    }

    /// `freq_scale * base^(-2i / rope_dim)` for each pair, computed in f64.
    pub fn freqs(&self) -> Vec<f32> {
        (0..self.rope_dim / 2)
            .map(|i| {
                let e = -2.0 * f64::from(i) / f64::from(self.rope_dim);
                (f64::from(self.freq_scale) * f64::from(self.base).powf(e)) as f32
            })
            .collect()
    }
}

/// The shader's `Params` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_heads: u32,
    head_dim: u32,
    rope_dim: u32,
    neox: u32,
    max_pos: u32,
    _pad: [u32; 3],
}

/// The CPU reference: `x` is `[n_tokens, n_heads, head_dim]`, token `t` at position
/// `pos + t`; angles in f64.
///
/// # Panics
/// On a bad shape or when `x` is not a whole number of tokens.
pub fn rope_ref(x: &[f32], pos: u32, p: &RopeParams) -> Vec<f32> {
    p.check().expect("rope_ref");
    let token = (p.n_heads * p.head_dim) as usize;
    assert_eq!(x.len() % token, 0, "rope_ref: ragged tokens");
    let half = (p.rope_dim / 2) as usize;
    let mut out = x.to_vec();
    for (t, tok) in out.chunks_exact_mut(token).enumerate() {
        let position = f64::from((pos + t as u32).min(p.max_pos));
        for head in tok.chunks_exact_mut(p.head_dim as usize) {
            for i in 0..half {
                let e = -2.0 * i as f64 / f64::from(p.rope_dim);
                let theta = position * f64::from(p.freq_scale) * f64::from(p.base).powf(e);
                let (s, c) = theta.sin_cos();
                let (i0, i1) = match p.layout {
                    RopeLayout::Normal => (2 * i, 2 * i + 1),
                    RopeLayout::Neox => (i, i + half),
                };
                let (x0, x1) = (f64::from(head[i0]), f64::from(head[i1]));
                head[i0] = (x0 * c - x1 * s) as f32;
                head[i1] = (x0 * s + x1 * c) as f32;
            }
        }
    }
    out
}

/// The rope pipeline, built once per device.
pub struct RopeKernel {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
    layout_from: wgpu::BindGroupLayout,
    pipeline_from: wgpu::ComputePipeline,
    max_groups: u32,
}

/// The bind group of one use of the kernel, built once.
pub struct RopeBinding {
    bind_group: wgpu::BindGroup,
    /// Out of place (`rope_from`).
    from: bool,
    pairs_per_token: u32,
    max_tokens: u32,
    _params: GpuBuffer,
    _freqs: GpuBuffer,
}

impl RopeKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let (layout, mut pipelines) = pipeline::build_with_layout(
            ctx,
            "rope",
            &[
                pipeline::uniform_entry(0),
                pipeline::uniform_entry(1),
                pipeline::storage_entry(2, true),
                pipeline::storage_entry(3, false),
            ],
            &[(shaders::get("rope")?, &["rope"])],
        )?;
        let (layout_from, mut from) = pipeline::build_with_layout(
            ctx,
            "rope_from",
            &[
                pipeline::uniform_entry(0),
                pipeline::uniform_entry(1),
                pipeline::storage_entry(2, true),
                pipeline::storage_entry(3, false),
                pipeline::storage_entry(4, true),
            ],
            &[(shaders::get("rope")?, &["rope_from"])],
        )?;
        Ok(Self {
            layout,
            pipeline: pipelines.remove(0),
            layout_from,
            pipeline_from: from.remove(0),
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
        })
    }

    /// Binds `x` (f32 `[max_tokens, n_heads, head_dim]` at least), rotated in place.
    pub fn bind(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        x: &GpuBuffer,
        params: &RopeParams,
        max_tokens: u32,
    ) -> Result<RopeBinding> {
        self.bind_with(ctx, step_buf, None, x, params, max_tokens)
    }

    /// Binds `src` to be rotated into `dst` (both f32 `[max_tokens, n_heads, head_dim]`).
    pub fn bind_from(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        src: &GpuBuffer,
        dst: &GpuBuffer,
        params: &RopeParams,
        max_tokens: u32,
    ) -> Result<RopeBinding> {
        self.bind_with(ctx, step_buf, Some(src), dst, params, max_tokens)
    }

    fn bind_with(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        src: Option<&GpuBuffer>,
        x: &GpuBuffer,
        params: &RopeParams,
        max_tokens: u32,
    ) -> Result<RopeBinding> {
        params.check()?;
        let bytes = step::bytes4(
            "rope",
            u64::from(max_tokens) * u64::from(params.n_heads) * u64::from(params.head_dim),
        )?;
        step::check_storage(ctx, "rope", "x", x, bytes)?;
        if let Some(src) = src {
            step::check_storage(ctx, "rope", "src", src, bytes)?;
        }
        let mut freqs = params.freqs();
        if freqs.is_empty() {
            freqs.push(0.0);
        }
        let freqs = ctx.create_buffer_init(
            "rope freqs",
            bytemuck::cast_slice(&freqs),
            wgpu::BufferUsages::STORAGE,
        )?;
        let uniform = step::uniform(
            ctx,
            "rope params",
            &Params {
                n_heads: params.n_heads,
                head_dim: params.head_dim,
                rope_dim: params.rope_dim,
                neox: u32::from(params.layout == RopeLayout::Neox),
                max_pos: params.max_pos,
                _pad: [0; 3],
            },
        )?;
        let (bind_group, pairs) = match src {
            None => (
                step::bind_group(ctx, "rope", &self.layout, &[&uniform, step_buf, &freqs, x]),
                params.rope_dim / 2,
            ),
            Some(src) => (
                step::bind_group(
                    ctx,
                    "rope_from",
                    &self.layout_from,
                    &[&uniform, step_buf, &freqs, x, src],
                ),
                params.head_dim / 2,
            ),
        };
        Ok(RopeBinding {
            bind_group,
            from: src.is_some(),
            pairs_per_token: params.n_heads * pairs,
            max_tokens,
            _params: uniform,
            _freqs: freqs,
        })
    }

    /// Records the rotation of `n_tokens` tokens (the step's n_tokens).
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &RopeBinding,
        n_tokens: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens {
            return Err(Error::Gpu(format!(
                "rope: {n_tokens} tokens exceed the {} bound",
                binding.max_tokens
            )));
        }
        let threads = u64::from(n_tokens) * u64::from(binding.pairs_per_token);
        if threads == 0 {
            return Ok(());
        }
        let (x, y) = step::thread_grid(self.max_groups, "rope", threads, WORKGROUP_SIZE)?;
        pass.set_pipeline(if binding.from {
            &self.pipeline_from
        } else {
            &self.pipeline
        });
        pass.set_bind_group(0, &binding.bind_group, &[]);
        crate::gpu::counters::dispatch(pass, x, y, 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_rotates_pairs() {
        let p = RopeParams {
            n_heads: 1,
            head_dim: 4,
            rope_dim: 4,
            base: 10000.0,
            freq_scale: 1.0,
            layout: RopeLayout::Normal,
            max_pos: u32::MAX,
        };
        // Position 0 is the identity.
        assert_eq!(rope_ref(&[1.0, 2.0, 3.0, 4.0], 0, &p), [1.0, 2.0, 3.0, 4.0]);
        // Pair 0 turns by 1 radian at position 1.
        let y = rope_ref(&[1.0, 0.0, 0.0, 0.0], 1, &p);
        assert!((y[0] - 1f32.cos()).abs() < 1e-6 && (y[1] - 1f32.sin()).abs() < 1e-6);
        let neox = RopeParams {
            layout: RopeLayout::Neox,
            ..p
        };
        let y = rope_ref(&[1.0, 0.0, 0.0, 0.0], 1, &neox);
        assert!((y[0] - 1f32.cos()).abs() < 1e-6 && (y[2] - 1f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<Params>(), 32);
    }
}
