//! Elementwise f32 add, `out[i] = a[i] + b[i]`: the transformer's residual connection.
//! Shader: `shaders/add.wgsl`.

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::step;
use crate::gpu::{pipeline, shaders};
use crate::{Error, Result};

/// Threads per workgroup; must match `@workgroup_size` in `shaders/add.wgsl`.
pub const WORKGROUP_SIZE: u32 = 256;

/// The shader's `Params` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    row_stride: u32,
    max_tokens: u32,
    _pad: u32,
}

/// The CPU reference: `a[i] + b[i]`.
///
/// # Panics
/// When the lengths differ.
pub fn add_ref(a: &[f32], b: &[f32]) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "add_ref: operands differ in length");
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// The add pipeline, built once per device.
pub struct AddKernel {
    max_groups: u32,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

/// One add over fixed buffers, built once by [`AddKernel::bind`].
pub struct AddBinding {
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
    width: u32,
    max_tokens: u32,
    _params: GpuBuffer,
}

impl AddKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let (layout, mut pipelines) = pipeline::build_with_layout(
            ctx,
            "add",
            &[
                pipeline::uniform_entry(0),
                pipeline::uniform_entry(1),
                pipeline::storage_entry(2, true),
                pipeline::storage_entry(3, true),
                pipeline::storage_entry(4, false),
            ],
            &[(shaders::get("add")?, &["add_f32"])],
        )?;
        Ok(Self {
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
            layout,
            pipeline: pipelines.remove(0),
        })
    }

    /// Binds `out = a + b` over rows of `width` values, up to `max_tokens` rows; the row count
    /// of each step comes from `step`. `out` must not alias `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        a: &GpuBuffer,
        b: &GpuBuffer,
        out: &GpuBuffer,
        width: u32,
        max_tokens: u32,
    ) -> Result<AddBinding> {
        const K: &str = "add";
        let n = u64::from(width) * u64::from(max_tokens);
        let bytes = step::bytes4(K, n)?;
        for (name, buf) in [("a", a), ("b", b), ("out", out)] {
            step::check_storage(ctx, K, name, buf, bytes)?;
        }
        let grid = step::thread_grid(self.max_groups, K, n, WORKGROUP_SIZE)?;
        let params = step::uniform(
            ctx,
            "add params",
            &Params {
                width,
                row_stride: grid.0 * WORKGROUP_SIZE,
                max_tokens,
                _pad: 0,
            },
        )?;
        let bind_group = step::bind_group(ctx, K, &self.layout, &[&params, step_buf, a, b, out]);
        Ok(AddBinding {
            bind_group,
            grid,
            width,
            max_tokens,
            _params: params,
        })
    }

    /// Records the add for `n_tokens` rows into `pass`; nothing is allocated.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &AddBinding,
        n_tokens: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens {
            return Err(Error::Gpu(format!(
                "add: {n_tokens} rows exceed the {} bound",
                binding.max_tokens
            )));
        }
        let n = u64::from(n_tokens) * u64::from(binding.width);
        if n == 0 {
            return Ok(());
        }
        let (x, y) = step::thread_grid(self.max_groups, "add", n, WORKGROUP_SIZE)?;
        // The row stride is fixed at bind time, so keep the bound grid's width.
        let (x, y) = if y == 1 { (x, 1) } else { (binding.grid.0, y) };
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
    fn reference_adds() {
        assert_eq!(
            add_ref(&[1.0, -2.5, 0.0], &[0.5, 2.5, -0.0]),
            [1.5, 0.0, 0.0]
        );
        assert!(add_ref(&[], &[]).is_empty());
    }

    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<Params>(), 16);
    }
}
