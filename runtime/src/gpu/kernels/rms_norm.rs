//! RMS normalization, `y = x / sqrt(mean(x^2) + eps) * w`, over rows of f32: the residual
//! stream (one row a token) and per-head q/k norms (`n_heads` rows a token, width `head_dim`).
//! Shader: `shaders/rms_norm.wgsl`. Kernel contract: see [`super::step`].

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::step;
use crate::gpu::{pipeline, shaders};
use crate::{Error, Result};

/// The shader's `Params` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    rows_per_token: u32,
    has_weight: u32,
    eps: f32,
}

/// The CPU reference: each row of `width` values of `x` normalized (sum of squares in f64,
/// like ggml), then multiplied elementwise by `weight` when given.
///
/// # Panics
/// When `x.len()` is not a multiple of `width` or `weight` is not `width` long.
pub fn rms_norm_ref(x: &[f32], width: usize, weight: Option<&[f32]>, eps: f32) -> Vec<f32> {
    assert!(
        width > 0 && x.len() % width == 0,
        "rms_norm_ref: ragged rows"
    );
    if let Some(w) = weight {
        assert_eq!(w.len(), width, "rms_norm_ref: weight length");
    }
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(width) {
        let sum: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let scale = 1.0 / ((sum / width as f64) as f32 + eps).sqrt();
        for (i, &v) in row.iter().enumerate() {
            let y = v * scale;
            out.push(weight.map_or(y, |w| y * w[i]));
        }
    }
    out
}

/// The rms_norm pipeline, built once per device.
pub struct RmsNormKernel {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
    max_groups: u32,
}

/// The bind group of one use of the kernel (static shape and buffers), built once.
pub struct RmsNormBinding {
    bind_group: wgpu::BindGroup,
    rows_per_token: u32,
    max_tokens: u32,
    _params: GpuBuffer,
    _dummy_weight: Option<GpuBuffer>,
}

impl RmsNormKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let (layout, mut pipelines) = pipeline::build_with_layout(
            ctx,
            "rms_norm",
            &[
                pipeline::uniform_entry(0),
                pipeline::uniform_entry(1),
                pipeline::storage_entry(2, true),
                pipeline::storage_entry(3, true),
                pipeline::storage_entry(4, false),
            ],
            &[(shaders::get("rms_norm")?, &["rms_norm"])],
        )?;
        Ok(Self {
            layout,
            pipeline: pipelines.remove(0),
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
        })
    }

    /// Binds `x` and `out` (f32 `[n_tokens * rows_per_token, width]`, at least `max_tokens`
    /// tokens, distinct buffers) and the optional `weight` (f32 `[width]`).
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        x: &GpuBuffer,
        weight: Option<&GpuBuffer>,
        out: &GpuBuffer,
        width: u32,
        rows_per_token: u32,
        eps: f32,
        max_tokens: u32,
    ) -> Result<RmsNormBinding> {
        const K: &str = "rms_norm";
        if width == 0 || rows_per_token == 0 {
            return Err(Error::Gpu(format!("{K}: empty rows")));
        }
        let bytes = step::bytes4(
            K,
            u64::from(max_tokens) * u64::from(rows_per_token) * u64::from(width),
        )?;
        step::check_storage(ctx, K, "x", x, bytes)?;
        step::check_storage(ctx, K, "out", out, bytes)?;
        let dummy = match weight {
            Some(w) => {
                step::check_storage(ctx, K, "weight", w, u64::from(width) * 4)?;
                None
            }
            None => {
                Some(ctx.create_buffer("rms_norm no weight", 4, wgpu::BufferUsages::STORAGE)?)
            }
        };
        let params = step::uniform(
            ctx,
            "rms_norm params",
            &Params {
                width,
                rows_per_token,
                has_weight: u32::from(weight.is_some()),
                eps,
            },
        )?;
        let w = weight.or(dummy.as_ref()).expect("weight or dummy");
        let bind_group = step::bind_group(ctx, K, &self.layout, &[&params, step_buf, x, w, out]);
        Ok(RmsNormBinding {
            bind_group,
            rows_per_token,
            max_tokens,
            _params: params,
            _dummy_weight: dummy,
        })
    }

    /// Records the normalization of `n_tokens` tokens (which must equal the step's n_tokens).
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &RmsNormBinding,
        n_tokens: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens {
            return Err(Error::Gpu(format!(
                "rms_norm: {n_tokens} tokens exceed the {} bound",
                binding.max_tokens
            )));
        }
        let rows = n_tokens * binding.rows_per_token;
        if rows == 0 {
            return Ok(());
        }
        let (x, y) = crate::gpu::kernels::dispatch_grid(rows, self.max_groups)?;
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &binding.bind_group, &[]);
        crate::gpu::counters::dispatch(pass, x, y, 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_normalizes() {
        let y = rms_norm_ref(&[3.0, 4.0], 2, None, 0.0);
        let s = (12.5f32).sqrt();
        assert!((y[0] - 3.0 / s).abs() < 1e-6 && (y[1] - 4.0 / s).abs() < 1e-6);
        let y = rms_norm_ref(&[3.0, 4.0], 2, Some(&[2.0, 0.5]), 0.0);
        assert!((y[0] - 6.0 / s).abs() < 1e-6 && (y[1] - 2.0 / s).abs() < 1e-6);
    }

    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<Params>(), 16);
    }
}
