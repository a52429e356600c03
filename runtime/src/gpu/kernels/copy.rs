//! `dst = src` in 16-byte elements, and the device's copy bandwidth measured with it: the
//! ceiling decode is compared to (decode reads every weight once per token, so bytes per token
//! over this bandwidth is the fastest a step can be). Not part of the forward pass.
//! Shader: `shaders/copy.wgsl`.

use std::time::{Duration, Instant};

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::step;
use crate::gpu::{counters, pipeline, shaders};
use crate::{Error, Result};

/// Threads per workgroup; must match `@workgroup_size` in `shaders/copy.wgsl`.
pub const WORKGROUP_SIZE: u32 = 256;
/// Bytes one thread copies.
pub const ELEMENT_BYTES: u64 = 16;

/// The shader's `Params` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    row_stride: u32,
    _pad: [u32; 2],
}

/// The CPU reference: the bytes, unchanged.
pub fn copy_ref(src: &[u8]) -> Vec<u8> {
    src.to_vec()
}

/// The copy pipeline.
pub struct CopyKernel {
    max_groups: u32,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

/// One copy between fixed buffers, built once by [`CopyKernel::bind`].
pub struct CopyBinding {
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
    _params: GpuBuffer,
}

/// A bandwidth measurement.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Bandwidth {
    /// Bytes read plus bytes written by one copy.
    pub bytes_per_copy: u64,
    /// The median time of one copy.
    pub seconds_per_copy: f64,
    /// `bytes_per_copy / seconds_per_copy`, in bytes per second.
    pub bytes_per_second: f64,
}

impl CopyKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let (layout, mut pipelines) = pipeline::build_with_layout(
            ctx,
            "copy",
            &[
                pipeline::uniform_entry(0),
                pipeline::storage_entry(1, true),
                pipeline::storage_entry(2, false),
            ],
            &[(shaders::get("copy")?, &["copy_vec4"])],
        )?;
        Ok(Self {
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
            layout,
            pipeline: pipelines.remove(0),
        })
    }

    /// Binds `dst[..bytes] = src[..bytes]`; `bytes` must be a multiple of 16 and both buffers
    /// must hold it.
    pub fn bind(
        &self,
        ctx: &GpuContext,
        src: &GpuBuffer,
        dst: &GpuBuffer,
        bytes: u64,
    ) -> Result<CopyBinding> {
        const K: &str = "copy";
        if bytes == 0 || bytes % ELEMENT_BYTES != 0 {
            return Err(Error::Gpu(format!(
                "{K}: {bytes} bytes is not a positive multiple of {ELEMENT_BYTES}"
            )));
        }
        step::check_storage(ctx, K, "src", src, bytes)?;
        step::check_storage(ctx, K, "dst", dst, bytes)?;
        let n = bytes / ELEMENT_BYTES;
        let grid = step::thread_grid(self.max_groups, K, n, WORKGROUP_SIZE)?;
        let params = step::uniform(
            ctx,
            "copy params",
            &Params {
                n: u32::try_from(n).map_err(|_| Error::Gpu(format!("{K}: too many bytes")))?,
                row_stride: grid.0 * WORKGROUP_SIZE,
                _pad: [0; 2],
            },
        )?;
        let bind_group = step::bind_group(ctx, K, &self.layout, &[&params, src, dst]);
        Ok(CopyBinding {
            bind_group,
            grid,
            _params: params,
        })
    }

    /// Records the copy into `pass`.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, binding: &CopyBinding) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &binding.bind_group, &[]);
        counters::dispatch(pass, binding.grid.0, binding.grid.1, 1);
    }

    /// Copies `bytes` (rounded down to 16, capped by one storage binding) from one buffer to
    /// another `copies` times per submit, `rounds` times, and returns the median time of one
    /// copy. The buffers (2 x `bytes`) are allocated for the measurement and freed after it;
    /// they should be far larger than the GPU's last-level cache.
    pub fn measure(
        &self,
        ctx: &GpuContext,
        bytes: u64,
        copies: u32,
        rounds: u32,
    ) -> Result<Bandwidth> {
        let bytes =
            bytes.min(ctx.limits().max_storage_buffer_binding_size) / ELEMENT_BYTES * ELEMENT_BYTES;
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let src = ctx.create_buffer("bandwidth src", bytes, usage)?;
        let dst = ctx.create_buffer("bandwidth dst", bytes, usage)?;
        // Real bytes, not zeros (some hardware compresses zeros).
        let mut rng = crate::rng::XorShift::new(0xc0b1);
        let piece: Vec<u8> = (0..(1u64 << 20).min(bytes))
            .map(|_| rng.next_u64() as u8)
            .collect();
        let mut at = 0;
        while at < bytes {
            let n = (bytes - at).min(piece.len() as u64);
            ctx.write_buffer(&src, at, &piece[..n as usize]);
            at += n;
        }
        let binding = self.bind(ctx, &src, &dst, bytes)?;
        let run = |copies: u32| -> Result<Duration> {
            let start = Instant::now();
            let mut encoder =
                ctx.device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("bandwidth"),
                    });
            {
                let mut pass = counters::begin_pass(&mut encoder, "bandwidth");
                for _ in 0..copies {
                    self.encode(&mut pass, &binding);
                }
            }
            ctx.submit([encoder.finish()]);
            ctx.wait_idle()?;
            Ok(start.elapsed())
        };
        run(1)?; // warm-up: the pipeline compiles at its first dispatch on some drivers
        let mut times: Vec<f64> = (0..rounds.max(1))
            .map(|_| run(copies.max(1)).map(|t| t.as_secs_f64() / f64::from(copies.max(1))))
            .collect::<Result<_>>()?;
        times.sort_by(f64::total_cmp);
        let seconds = times[times.len() / 2];
        Ok(Bandwidth {
            bytes_per_copy: 2 * bytes,
            seconds_per_copy: seconds,
            bytes_per_second: (2 * bytes) as f64 / seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<Params>(), 16);
    }

    #[test]
    fn reference_is_the_identity() {
        assert_eq!(copy_ref(&[1, 2, 3]), [1, 2, 3]);
    }
}
