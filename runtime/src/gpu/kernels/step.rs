//! The per-step uniform shared by the transformer kernels, and the small helpers they share
//! to build pipelines and bind groups.
//!
//! Kernel contract (every kernel):
//! - `Kernel::new(ctx)` compiles the shader and builds its pipelines once per device;
//! - `kernel.bind(ctx, buffers..., static params)` validates buffer sizes and creates the bind
//!   group and the static-parameter uniform once (per layer and buffer set);
//! - `kernel.encode(pass, &binding, n_tokens)` only records dispatches into a compute pass:
//!   no allocation, no bind-group creation, and a step larger than the binding's `max_tokens`
//!   is refused. A whole forward step is one encoder, one submit;
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
    ctx.write_buffer(buffer, 0, bytemuck::bytes_of(&step));
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
    crate::gpu::counters::bind_group_created();
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
