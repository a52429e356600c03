//! The per-step uniform shared by the transformer kernels, and the small helpers they share
//! to build pipelines and bind groups.
//!
//! Kernel contract (rms_norm, rope, ffn_act, kv_cache, attention):
//! - `Kernel::new(ctx)` compiles the shader and builds its pipelines once per device;
//! - `kernel.bind(ctx, buffers..., static params)` validates buffer sizes and creates the bind
//!   group and the static-parameter uniform once (per layer and buffer set);
//! - `kernel.encode(pass, &binding, n_tokens)` only records dispatches into a compute pass:
//!   no allocation, no bind-group creation. A whole forward step is one encoder, one submit;
//! - per-step values (batch size, position) are read by the shaders from the caller's
//!   [`Step`] uniform buffer, written with `queue.write_buffer` before each submit.

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::dispatch_grid;
use crate::{Error, Result};

/// Values that change every forward step, read by the kernels from one uniform buffer.
/// Matches the WGSL `struct Step { n_tokens: u32, pos: u32, n_kv: u32, _pad: u32 }`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Step {
    /// Tokens in this batch.
    pub n_tokens: u32,
    /// Absolute position of the batch's first token.
    pub pos: u32,
    /// Valid KV cache entries after this batch's write: `pos + n_tokens`.
    pub n_kv: u32,
    pub _pad: u32,
}

impl Step {
    /// The step for a batch of `n_tokens` tokens starting at absolute position `pos`.
    pub fn new(pos: u32, n_tokens: u32) -> Self {
        Self {
            n_tokens,
            pos,
            n_kv: pos + n_tokens,
            _pad: 0,
        }
    }
}

/// Creates a [`Step`] uniform buffer (`UNIFORM | COPY_DST`) holding `step`.
pub fn create_step_buffer(ctx: &GpuContext, step: Step) -> Result<GpuBuffer> {
    ctx.create_buffer_init(
        "step",
        bytemuck::bytes_of(&step),
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    )
}

/// Writes `step` into `buffer` (made by [`create_step_buffer`]); takes effect at the next submit.
pub fn write_step(ctx: &GpuContext, buffer: &GpuBuffer, step: Step) {
    ctx.queue()
        .write_buffer(buffer, 0, bytemuck::bytes_of(&step));
}

pub(crate) fn uniform_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

pub(crate) fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
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

/// Compiles `source` and builds one pipeline per entry point, all sharing one bind group
/// layout made of `entries`.
pub(crate) fn build_pipelines(
    ctx: &GpuContext,
    label: &str,
    source: &str,
    entries: &[wgpu::BindGroupLayoutEntry],
    entry_points: &[&str],
) -> (wgpu::BindGroupLayout, Vec<wgpu::ComputePipeline>) {
    build_pipelines_from(ctx, label, &[(source, entry_points)], entries)
}

/// [`build_pipelines`] over several shader modules, given as (source, entry points): every
/// pipeline shares one bind group layout, so one bind group serves them all.
pub(crate) fn build_pipelines_from(
    ctx: &GpuContext,
    label: &str,
    modules: &[(&str, &[&str])],
    entries: &[wgpu::BindGroupLayoutEntry],
) -> (wgpu::BindGroupLayout, Vec<wgpu::ComputePipeline>) {
    let device = ctx.device();
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let mut pipelines = Vec::new();
    for (source, entry_points) in modules {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl((*source).into()),
        });
        for entry in entry_points.iter() {
            pipelines.push(
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                }),
            );
        }
    }
    (layout, pipelines)
}

/// A bind group binding each buffer whole, at bindings 0, 1, 2, ... in order.
pub(crate) fn bind_group(
    ctx: &GpuContext,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffers: &[&GpuBuffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// A uniform buffer holding `value`, counted by the allocator.
pub(crate) fn uniform<T: bytemuck::Pod>(
    ctx: &GpuContext,
    label: &str,
    value: &T,
) -> Result<GpuBuffer> {
    ctx.create_buffer_init(
        label,
        bytemuck::bytes_of(value),
        wgpu::BufferUsages::UNIFORM,
    )
}

/// Refuses a storage buffer smaller than `min_bytes` or larger than one binding may be.
pub(crate) fn check_storage(
    ctx: &GpuContext,
    kernel: &str,
    name: &str,
    buffer: &GpuBuffer,
    min_bytes: u64,
) -> Result<()> {
    if buffer.size() < min_bytes {
        return Err(Error::Gpu(format!(
            "{kernel}: buffer `{name}` ({}) holds {} bytes, needs {min_bytes}",
            buffer.label(),
            buffer.size()
        )));
    }
    let max = ctx.limits().max_storage_buffer_binding_size;
    if buffer.size() > max {
        return Err(Error::Gpu(format!(
            "{kernel}: buffer `{name}` ({}) of {} bytes exceeds this device's storage binding \
             limit of {max} bytes",
            buffer.label(),
            buffer.size()
        )));
    }
    Ok(())
}

/// Bytes of `count` elements of 4 bytes, refusing overflow.
pub(crate) fn bytes4(kernel: &str, count: u64) -> Result<u64> {
    count
        .checked_mul(4)
        .ok_or_else(|| Error::Gpu(format!("{kernel}: size overflow")))
}

/// A 2-D grid of `wg_size`-thread workgroups covering `threads` threads. Shaders recover the
/// flat index as `gid.y * (num_workgroups.x * wg_size) + gid.x` and bound-check it.
pub(crate) fn thread_grid(
    max_groups: u32,
    kernel: &str,
    threads: u64,
    wg_size: u32,
) -> Result<(u32, u32)> {
    let groups = u32::try_from(threads.div_ceil(u64::from(wg_size)))
        .map_err(|_| Error::Gpu(format!("{kernel}: {threads} threads is too many")))?;
    dispatch_grid(groups, max_groups)
}

/// A buffer with `STORAGE | COPY_SRC` for outputs read back by `run` helpers.
pub(crate) fn output_buffer(ctx: &GpuContext, label: &str, bytes: u64) -> Result<GpuBuffer> {
    ctx.create_buffer(
        label,
        bytes.max(4),
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    )
}

/// A read-only input buffer holding `data` (at least 4 bytes).
pub(crate) fn input_buffer(ctx: &GpuContext, label: &str, data: &[f32]) -> Result<GpuBuffer> {
    if data.is_empty() {
        return ctx.create_buffer(label, 4, wgpu::BufferUsages::STORAGE);
    }
    ctx.create_buffer_init(
        label,
        bytemuck::cast_slice(data),
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    )
}

/// Runs `record` in one compute pass of one encoder and submits it.
pub(crate) fn submit_pass(
    ctx: &GpuContext,
    label: &str,
    record: impl FnOnce(&mut wgpu::ComputePass<'_>) -> Result<()>,
) -> Result<()> {
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        record(&mut pass)?;
    }
    ctx.queue().submit([encoder.finish()]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Step;

    #[test]
    fn step_matches_the_shader_uniform() {
        assert_eq!(size_of::<Step>(), 16);
        let s = Step::new(5, 3);
        assert_eq!((s.pos, s.n_tokens, s.n_kv), (5, 3, 8));
    }
}
