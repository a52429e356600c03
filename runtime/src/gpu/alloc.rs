//! Byte accounting for every GPU buffer the runtime creates.
//!
//! [`GpuContext::create_buffer`](super::GpuContext::create_buffer) hands out [`GpuBuffer`]s,
//! each carrying an [`Allocation`] ticket from the context's [`Allocator`]. Creating a buffer
//! adds its size to the live total (and raises the peak); dropping the `GpuBuffer` subtracts it.
//! This is the seed of the memory budget: the allocator knows how many bytes the runtime holds
//! on the device right now and at most so far.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
struct Counters {
    live_bytes: AtomicU64,
    peak_bytes: AtomicU64,
    live_buffers: AtomicU64,
}

/// A snapshot of the allocator's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes held by buffers that are still alive.
    pub live_bytes: u64,
    /// The most bytes ever live at once (since creation or the last [`Allocator::reset_peak`]).
    pub peak_bytes: u64,
    /// How many tracked buffers are alive.
    pub live_buffers: u64,
}

impl fmt::Display for MemoryStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} live in {} buffers, peak {}",
            human_bytes(self.live_bytes),
            self.live_buffers,
            human_bytes(self.peak_bytes)
        )
    }
}

/// Formats a byte count with a binary unit, e.g. `1.50 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Counts live and peak bytes. Cheap to clone: clones share the same counters.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    counters: Arc<Counters>,
}

impl Allocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `size` bytes as live until the returned ticket is dropped.
    pub fn track(&self, size: u64) -> Allocation {
        let c = &self.counters;
        let live = c.live_bytes.fetch_add(size, Ordering::Relaxed) + size;
        c.peak_bytes.fetch_max(live, Ordering::Relaxed);
        c.live_buffers.fetch_add(1, Ordering::Relaxed);
        Allocation {
            size,
            counters: Arc::clone(&self.counters),
        }
    }

    pub fn live_bytes(&self) -> u64 {
        self.counters.live_bytes.load(Ordering::Relaxed)
    }

    pub fn peak_bytes(&self) -> u64 {
        self.counters.peak_bytes.load(Ordering::Relaxed)
    }

    pub fn live_buffers(&self) -> u64 {
        self.counters.live_buffers.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            live_bytes: self.live_bytes(),
            peak_bytes: self.peak_bytes(),
            live_buffers: self.live_buffers(),
        }
    }

    /// Lowers the peak to the current live total, to measure the peak of a later phase.
    pub fn reset_peak(&self) {
        self.counters
            .peak_bytes
            .store(self.live_bytes(), Ordering::Relaxed);
    }
}

/// A ticket for `size` live bytes; dropping it gives them back to the [`Allocator`].
#[derive(Debug)]
pub struct Allocation {
    size: u64,
    counters: Arc<Counters>,
}

impl Allocation {
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        self.counters
            .live_bytes
            .fetch_sub(self.size, Ordering::Relaxed);
        self.counters.live_buffers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A `wgpu::Buffer` whose bytes are counted by the context's [`Allocator`] while it lives.
///
/// Derefs to [`wgpu::Buffer`], so it can be bound and copied like one. wgpu keeps the
/// underlying buffer alive while submitted work still uses it, so dropping a `GpuBuffer`
/// right after recording it into an encoder is safe (the count drops a little early).
#[derive(Debug)]
pub struct GpuBuffer {
    buffer: wgpu::Buffer,
    label: String,
    _allocation: Allocation,
}

impl GpuBuffer {
    pub(crate) fn new(buffer: wgpu::Buffer, label: &str, allocation: Allocation) -> Self {
        Self {
            buffer,
            label: label.to_owned(),
            _allocation: allocation,
        }
    }

    /// The underlying wgpu buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// The size in bytes, as created.
    pub fn size(&self) -> u64 {
        self.buffer.size()
    }

    pub fn label(&self) -> &str {
        &self.label
    }
}

impl Deref for GpuBuffer {
    type Target = wgpu::Buffer;

    fn deref(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_live_and_peak() {
        let alloc = Allocator::new();
        assert_eq!(alloc.stats(), MemoryStats::default());

        let a = alloc.track(1000);
        let b = alloc.track(24);
        assert_eq!(alloc.live_bytes(), 1024);
        assert_eq!(alloc.live_buffers(), 2);
        assert_eq!(alloc.peak_bytes(), 1024);

        drop(a);
        assert_eq!(alloc.live_bytes(), 24);
        assert_eq!(alloc.live_buffers(), 1);
        assert_eq!(alloc.peak_bytes(), 1024, "the peak stays after a drop");

        let c = alloc.track(500);
        assert_eq!(alloc.live_bytes(), 524);
        assert_eq!(
            alloc.peak_bytes(),
            1024,
            "a smaller total does not raise the peak"
        );
        assert_eq!(c.size(), 500);

        let d = alloc.track(2000);
        assert_eq!(alloc.peak_bytes(), 2524);

        drop((b, c, d));
        assert_eq!(alloc.live_bytes(), 0);
        assert_eq!(alloc.live_buffers(), 0);
        assert_eq!(alloc.peak_bytes(), 2524);

        alloc.reset_peak();
        assert_eq!(alloc.peak_bytes(), 0);
    }

    #[test]
    fn clones_share_counters() {
        let alloc = Allocator::new();
        let other = alloc.clone();
        let t = other.track(64);
        assert_eq!(alloc.live_bytes(), 64);
        drop(t);
        assert_eq!(alloc.live_bytes(), 0);
        assert_eq!(alloc.peak_bytes(), 64);
    }

    #[test]
    fn human_bytes_formats() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(128 << 20), "128.00 MiB");
    }
}
