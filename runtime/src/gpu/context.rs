//! The wgpu device: adapter selection, device creation, tracked buffers and readback.

use std::sync::mpsc;

use super::alloc::{Allocator, GpuBuffer, MemoryStats};
use crate::{Error, Result};

/// What to tell a user whose machine has no usable GPU adapter.
pub const NO_ADAPTER_HELP: &str = "install your GPU's Vulkan/Metal/DX12 driver; on a machine \
without a GPU install Mesa's software Vulkan driver (Debian/Ubuntu: apt-get install \
mesa-vulkan-drivers)";

/// Optional device features the kernels can use, requested when the adapter has them: f16
/// and subgroups for the kernels, timestamps inside passes for `voyager bench --profile`.
pub const WANTED_FEATURES: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);

/// A GPU device and queue with the adapter's own limits, and the allocator that counts
/// every buffer created through [`GpuContext::create_buffer`].
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter_info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    features: wgpu::Features,
    alloc: Allocator,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.adapter_info.name)
            .field("backend", &self.backend())
            .field("features", &self.features)
            .field("memory", &self.alloc.stats())
            .finish_non_exhaustive()
    }
}

/// Flattens a message onto one line.
pub(crate) fn one_line(s: impl std::fmt::Display) -> String {
    s.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl GpuContext {
    /// Opens the high-performance adapter (backends chosen by `WGPU_BACKEND` when set, else
    /// Vulkan, Metal and DX12) and creates a device with the adapter's full limits
    /// and the [`WANTED_FEATURES`] it supports. Blocks until done.
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::new_async())
    }

    /// The async form of [`GpuContext::new`].
    pub async fn new_async() -> Result<Self> {
        // Vulkan, Metal and DX12 unless WGPU_BACKEND says otherwise: the GL backend is not a
        // target, and probing it prints driver errors on machines without a display.
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = wgpu::Backends::PRIMARY;
        let instance = wgpu::Instance::new(descriptor.with_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env()
                    .unwrap_or(wgpu::PowerPreference::HighPerformance),
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| {
                Error::Gpu(format!(
                    "no GPU adapter found ({}): {NO_ADAPTER_HELP}",
                    one_line(e).trim_end_matches(['.', ';'])
                ))
            })?;

        let adapter_info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features() & WANTED_FEATURES;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("voyager"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::Gpu(format!(
                    "cannot open GPU device on {} ({}): {}",
                    adapter_info.name,
                    adapter_info.backend,
                    one_line(e)
                ))
            })?;

        log::info!(
            "GPU: {} ({}, {:?}, driver {} {}), f16 {}, subgroups {} (size {}..={}), \
             max storage binding {} MiB, max buffer {} MiB",
            adapter_info.name,
            adapter_info.backend,
            adapter_info.device_type,
            adapter_info.driver,
            adapter_info.driver_info,
            if features.contains(wgpu::Features::SHADER_F16) {
                "yes"
            } else {
                "no"
            },
            if features.contains(wgpu::Features::SUBGROUP) {
                "yes"
            } else {
                "no"
            },
            adapter_info.subgroup_min_size,
            adapter_info.subgroup_max_size,
            limits.max_storage_buffer_binding_size >> 20,
            limits.max_buffer_size >> 20,
        );

        Ok(Self {
            device,
            queue,
            adapter_info,
            limits,
            features,
            alloc: Allocator::new(),
        })
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.adapter_info
    }

    pub fn adapter_name(&self) -> &str {
        &self.adapter_info.name
    }

    /// The backend in words: "vulkan", "metal", "dx12", "gl", ...
    pub fn backend(&self) -> &'static str {
        self.adapter_info.backend.to_str()
    }

    /// The device's limits (the adapter's own, not wgpu's defaults).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The optional features granted (a subset of [`WANTED_FEATURES`]).
    pub fn features(&self) -> wgpu::Features {
        self.features
    }

    /// Whether shaders may use `enable f16;`.
    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Whether shaders may use subgroup operations.
    pub fn has_subgroups(&self) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP)
    }

    /// The adapter's (min, max) subgroup size.
    pub fn subgroup_sizes(&self) -> (u32, u32) {
        (
            self.adapter_info.subgroup_min_size,
            self.adapter_info.subgroup_max_size,
        )
    }

    /// Whether GPU timestamps can be written between the dispatches of a pass.
    pub fn has_timestamps(&self) -> bool {
        self.features.contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
        )
    }

    /// The allocator counting this context's buffers.
    pub fn allocator(&self) -> &Allocator {
        &self.alloc
    }

    pub fn memory_stats(&self) -> MemoryStats {
        self.alloc.stats()
    }

    fn check_size(&self, label: &str, size: u64) -> Result<()> {
        if size > self.limits.max_buffer_size {
            return Err(Error::Gpu(format!(
                "buffer `{label}` of {size} bytes exceeds this device's maximum buffer size of {} bytes",
                self.limits.max_buffer_size
            )));
        }
        Ok(())
    }

    fn create_tracked(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
        mapped_at_creation: bool,
    ) -> Result<GpuBuffer> {
        self.check_size(label, size)?;
        // Counted (and refused when over the budget) before wgpu is asked for anything.
        let allocation = self.alloc.try_track_as(label, size)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "out of GPU memory creating buffer `{label}` of {size} bytes ({}): {}",
                self.alloc.stats(),
                one_line(e)
            )));
        }
        crate::gpu::counters::buffer_created();
        Ok(GpuBuffer::new(buffer, label, allocation))
    }

    /// Submits command buffers, counted ([`crate::gpu::counters`]).
    pub fn submit(&self, commands: impl IntoIterator<Item = wgpu::CommandBuffer>) {
        crate::gpu::counters::submitted();
        self.queue.submit(commands);
    }

    /// Blocks until the GPU has finished everything submitted (measurements, readbacks).
    pub fn wait_idle(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(drop)
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {}", one_line(e))))
    }

    /// Writes `data` into `buffer` at `offset` (staged by wgpu until the next submit),
    /// counted.
    pub fn write_buffer(&self, buffer: &GpuBuffer, offset: u64, data: &[u8]) {
        crate::gpu::counters::uploaded(data.len() as u64);
        self.queue.write_buffer(buffer, offset, data);
    }

    /// Creates a buffer counted by the allocator. Every storage, uniform and staging buffer of
    /// the runtime goes through here (or [`GpuContext::create_buffer_init`]). A buffer that
    /// would take the live total past the allocator's limit is refused with
    /// [`Error::Budget`] before wgpu is asked for it.
    pub fn create_buffer(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<GpuBuffer> {
        self.create_tracked(label, size, usage, false)
    }

    /// Creates a counted buffer holding `contents` (padded with zeros to a multiple of 4 bytes).
    pub fn create_buffer_init(
        &self,
        label: &str,
        contents: &[u8],
        usage: wgpu::BufferUsages,
    ) -> Result<GpuBuffer> {
        let size = (contents.len() as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        if size == 0 {
            return self.create_buffer(label, 0, usage);
        }
        let buffer = self.create_tracked(label, size, usage, true)?;
        buffer
            .get_mapped_range_mut(..)
            .map_err(|e| Error::Gpu(format!("cannot map buffer `{label}`: {}", one_line(e))))?
            .slice(..contents.len())
            .copy_from_slice(contents);
        buffer.unmap();
        Ok(buffer)
    }

    /// Reads `size` bytes at `offset` of `src` (which needs `COPY_SRC`) back to the CPU through
    /// a staging buffer. Submits and waits; for tests and final outputs, not the hot path.
    pub fn read_bytes(&self, src: &GpuBuffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        if size == 0 {
            return Ok(Vec::new());
        }
        let align = wgpu::COPY_BUFFER_ALIGNMENT;
        if offset % align != 0 || size % align != 0 || offset + size > src.size() {
            return Err(Error::Gpu(format!(
                "cannot read {size} bytes at {offset} from buffer `{}` of {} bytes \
                 (offset and size must be multiples of {align})",
                src.label(),
                src.size()
            )));
        }
        let staging = self.create_buffer(
            "readback staging",
            size,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_buffer_to_buffer(src, offset, &staging, 0, size);
        self.submit([encoder.finish()]);
        self.map_read(&staging)
    }

    /// Maps a `MAP_READ` buffer whose copy has been submitted, waits, and returns its bytes.
    pub fn map_read(&self, staging: &GpuBuffer) -> Result<Vec<u8>> {
        self.map_read_prefix(staging, staging.size())
    }

    /// [`GpuContext::map_read`] of the first `bytes` bytes only (a staging buffer sized for the
    /// largest step, filled for a smaller one).
    pub fn map_read_prefix(&self, staging: &GpuBuffer, bytes: u64) -> Result<Vec<u8>> {
        self.map_with(staging, bytes, |b| b.to_vec())
    }

    /// The first `len` f32 of a `MAP_READ` buffer whose copy has been submitted, copied once
    /// (logits: a 262k vocabulary is 1 MiB a row, so no second copy through bytes).
    pub fn map_read_f32(&self, staging: &GpuBuffer, len: usize) -> Result<Vec<f32>> {
        self.map_with(staging, (len * 4) as u64, |b| {
            // The mapped range is 4-aligned (wgpu maps at COPY_BUFFER_ALIGNMENT offsets); read
            // it as f32 without assuming more alignment than that.
            b.chunks_exact(4)
                .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect()
        })
    }

    /// Maps `staging` and fills `outs` from its floats, in order (no intermediate copy).
    pub fn map_read_f32_into(&self, staging: &GpuBuffer, outs: &mut [&mut [f32]]) -> Result<()> {
        let floats: usize = outs.iter().map(|o| o.len()).sum();
        self.map_with(staging, (floats * 4) as u64, |b| {
            let mut words = b.chunks_exact(4);
            for out in outs.iter_mut() {
                for (x, w) in out.iter_mut().zip(&mut words) {
                    *x = f32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                }
            }
        })
    }

    /// Maps the first `bytes` bytes of `staging`, waits, and hands them to `read`.
    fn map_with<T>(
        &self,
        staging: &GpuBuffer,
        bytes: u64,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<T> {
        let waiting = std::time::Instant::now();
        let slice = staging.slice(..bytes);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait_idle()?;
        rx.recv()
            .map_err(|_| Error::Gpu("GPU readback was never completed".into()))?
            .map_err(|e| Error::Gpu(format!("cannot map readback buffer: {}", one_line(e))))?;
        crate::gpu::counters::read_back(bytes, waiting.elapsed());
        let data = read(
            &slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("cannot read mapped buffer: {}", one_line(e))))?,
        );
        staging.unmap();
        Ok(data)
    }

    /// Reads the first `len` f32 values of `src` (which needs `COPY_SRC`).
    pub fn read_f32(&self, src: &GpuBuffer, len: usize) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(src, 0, (len * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}
