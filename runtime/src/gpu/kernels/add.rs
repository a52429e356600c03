//! Elementwise f32 add, `out[i] = a[i] + b[i]`: the transformer's residual connection.
//! Shader: `shaders/add.wgsl`.

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::dispatch_grid;
use crate::gpu::shaders;
use crate::{Error, Result};

/// Threads per workgroup; must match `@workgroup_size` in `shaders/add.wgsl`.
pub const WORKGROUP_SIZE: u32 = 256;

/// The shader's `Params` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    row_stride: u32,
    _pad: [u32; 2],
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
    device: wgpu::Device,
    allocator: crate::gpu::alloc::Allocator,
    max_groups_per_dim: u32,
    max_binding: u64,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

impl AddKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        let device = ctx.device().clone();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("add.wgsl"),
            source: wgpu::ShaderSource::Wgsl(shaders::ADD.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("add"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(size_of::<Params>() as u64),
                    },
                    count: None,
                },
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("add"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("add"),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("add_f32"),
            compilation_options: Default::default(),
            cache: None,
        });
        Self {
            device,
            allocator: ctx.allocator().clone(),
            max_groups_per_dim: ctx.limits().max_compute_workgroups_per_dimension,
            max_binding: ctx.limits().max_storage_buffer_binding_size,
            layout,
            pipeline,
        }
    }

    /// Records `out[i] = a[i] + b[i]` for `i < n` into `encoder`. `a` and `b` need `STORAGE`,
    /// `out` needs `STORAGE` and must not alias `a` or `b`; each must hold at least `n` f32s.
    /// Nothing runs until the caller submits the encoder.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        a: &GpuBuffer,
        b: &GpuBuffer,
        out: &GpuBuffer,
        n: usize,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let bytes = (n as u64)
            .checked_mul(4)
            .filter(|&b| b <= self.max_binding)
            .ok_or_else(|| {
                Error::Gpu(format!(
                    "add of {n} elements exceeds this device's storage binding limit of {} bytes",
                    self.max_binding
                ))
            })?;
        for (name, buf) in [("a", a), ("b", b), ("out", out)] {
            if buf.size() < bytes {
                return Err(Error::Gpu(format!(
                    "add: buffer `{name}` ({}) holds {} bytes, {n} elements need {bytes}",
                    buf.label(),
                    buf.size()
                )));
            }
        }
        let n32 = u32::try_from(n).map_err(|_| Error::Gpu(format!("add: n = {n} too large")))?;
        let (x, y) = dispatch_grid(n32.div_ceil(WORKGROUP_SIZE), self.max_groups_per_dim)?;
        let params = Params {
            n: n32,
            row_stride: x * WORKGROUP_SIZE,
            _pad: [0; 2],
        };

        // A 16-byte uniform per dispatch, written at creation; wgpu keeps it alive until the
        // submitted work completes even though our handle is dropped at the end of this call.
        let uniform = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("add params"),
            size: size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM,
            mapped_at_creation: true,
        });
        uniform
            .get_mapped_range_mut(..)
            .map_err(|e| Error::Gpu(format!("add: cannot map params: {e}")))?
            .copy_from_slice(bytemuck::bytes_of(&params));
        uniform.unmap();
        let uniform = GpuBuffer::new(
            uniform,
            "add params",
            self.allocator.track(size_of::<Params>() as u64),
        );

        let size = wgpu::BufferSize::new(bytes);
        fn binding(
            buffer: &GpuBuffer,
            size: Option<wgpu::BufferSize>,
        ) -> wgpu::BindingResource<'_> {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer,
                offset: 0,
                size,
            })
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("add"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: binding(a, size),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: binding(b, size),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: binding(out, size),
                },
            ],
        });

        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("add"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
        Ok(())
    }

    /// Uploads `a` and `b`, adds them on the GPU in one submit and reads the sum back.
    /// For tests and tools; a forward pass uses [`AddKernel::encode`].
    pub fn run(ctx: &GpuContext, a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
        if a.len() != b.len() {
            return Err(Error::Gpu(format!(
                "add: operands differ in length ({} vs {})",
                a.len(),
                b.len()
            )));
        }
        let n = a.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let kernel = AddKernel::new(ctx);
        let input = wgpu::BufferUsages::STORAGE;
        let ga = ctx.create_buffer_init("add a", bytemuck::cast_slice(a), input)?;
        let gb = ctx.create_buffer_init("add b", bytemuck::cast_slice(b), input)?;
        let bytes = (n * 4) as u64;
        let out = ctx.create_buffer(
            "add out",
            bytes,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        )?;
        let staging = ctx.create_buffer(
            "add staging",
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("add") });
        kernel.encode(&mut encoder, &ga, &gb, &out, n)?;
        encoder.copy_buffer_to_buffer(&out, 0, &staging, 0, bytes);
        ctx.queue().submit([encoder.finish()]);
        let result = ctx.map_read(&staging)?;
        Ok(bytemuck::pod_collect_to_vec(&result))
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
