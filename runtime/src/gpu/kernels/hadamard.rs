//! In-place Walsh–Hadamard rotation of heads (`shaders/hadamard.wgsl`; CPU twin:
//! [`crate::kv::quant::hadamard`]). A quantized KV cache stores rotated keys and values:
//! rotation spreads a few large channels over the whole head, so 4-bit blocks lose less. The
//! query gets the same rotation (dot products are unchanged, the transform being orthonormal)
//! and attention's output is rotated back (the transform is its own inverse).

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{dispatch_grid, step, Strategy};
use crate::gpu::{pipeline, shaders};
use crate::kv::quant::hadamard_size;
use crate::{Error, Result};

/// Threads per workgroup; must match the shader.
const WORKGROUP_SIZE: u32 = 64;

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    rows_per_token: u32,
    size: u32,
    _pad: u32,
}

/// The hadamard pipeline, built once per device: a thread per run (row per thread) or a
/// workgroup per run (cooperative).
pub struct HadamardKernel {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
    strategy: Strategy,
    max_groups: u32,
}

/// One bound use: `rows_per_token` heads of `width` values per token.
pub struct HadamardBinding {
    bind_group: wgpu::BindGroup,
    runs_per_token: u32,
    max_tokens: u32,
    _params: GpuBuffer,
}

impl HadamardKernel {
    /// The kernel with this device's [`Strategy`].
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Self::with_strategy(ctx, Strategy::for_device(ctx))
    }

    /// The kernel with a chosen [`Strategy`] (tests check both on any device).
    pub fn with_strategy(ctx: &GpuContext, strategy: Strategy) -> Result<Self> {
        let entry = match strategy {
            Strategy::Cooperative => "hadamard_wg",
            Strategy::RowPerThread => "hadamard",
        };
        let (layout, mut pipelines) = pipeline::build_with_layout(
            ctx,
            "hadamard",
            &[
                pipeline::uniform_entry(0),
                pipeline::uniform_entry(1),
                pipeline::storage_entry(2, false),
            ],
            &[(shaders::get("hadamard")?, &[entry])],
        )?;
        Ok(Self {
            layout,
            pipeline: pipelines.remove(0),
            strategy,
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
        })
    }

    /// Binds `x` (f32 `[max_tokens, rows_per_token, width]`), rotated in place in runs of
    /// [`hadamard_size`]`(width)`.
    pub fn bind(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        x: &GpuBuffer,
        width: u32,
        rows_per_token: u32,
        max_tokens: u32,
    ) -> Result<HadamardBinding> {
        if width == 0 || rows_per_token == 0 {
            return Err(Error::Gpu("hadamard: empty rows".into()));
        }
        let size = hadamard_size(width);
        let bytes = step::bytes4(
            "hadamard",
            u64::from(max_tokens) * u64::from(rows_per_token) * u64::from(width),
        )?;
        step::check_storage(ctx, "hadamard", "x", x, bytes)?;
        let params = step::uniform(
            ctx,
            "hadamard params",
            &Params {
                width,
                rows_per_token,
                size,
                _pad: 0,
            },
        )?;
        let bind_group = step::bind_group(ctx, "hadamard", &self.layout, &[&params, step_buf, x]);
        Ok(HadamardBinding {
            bind_group,
            runs_per_token: rows_per_token * (width / size),
            max_tokens,
            _params: params,
        })
    }

    /// Records the rotation of the step's `n_tokens` tokens.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &HadamardBinding,
        n_tokens: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens {
            return Err(Error::Gpu(format!(
                "hadamard: {n_tokens} tokens exceed the {} bound",
                binding.max_tokens
            )));
        }
        let runs = u64::from(n_tokens) * u64::from(binding.runs_per_token);
        if runs == 0 {
            return Ok(());
        }
        let (x, y) = match self.strategy {
            Strategy::RowPerThread => {
                step::thread_grid(self.max_groups, "hadamard", runs, WORKGROUP_SIZE)?
            }
            Strategy::Cooperative => dispatch_grid(
                u32::try_from(runs)
                    .map_err(|_| Error::Gpu(format!("hadamard: {runs} runs is too many")))?,
                self.max_groups,
            )?,
        };
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &binding.bind_group, &[]);
        crate::gpu::counters::dispatch(pass, x, y, 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<super::Params>(), 16);
    }
}
