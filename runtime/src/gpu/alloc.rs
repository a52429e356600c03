//! Byte accounting for every GPU buffer the runtime creates.
//!
//! [`GpuContext::create_buffer`](super::GpuContext::create_buffer) hands out [`GpuBuffer`]s,
//! each carrying an [`Allocation`] ticket from the context's [`Allocator`]. Creating a buffer
//! adds its size to the live total (and raises the peak); dropping the `GpuBuffer` subtracts it.
//! The allocator knows how many bytes the runtime holds on the device right now and at most so
//! far, and can enforce a limit (the memory budget): with [`Allocator::set_limit`], every
//! [`Allocator::try_track`] that would take the live total past the limit is refused before
//! the buffer is created, so the peak never exceeds the limit, even with several threads
//! allocating at once.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{Error, Result};

/// The stored limit meaning "no limit".
const NO_LIMIT: u64 = u64::MAX;

#[derive(Debug)]
struct Counters {
    live_bytes: AtomicU64,
    peak_bytes: AtomicU64,
    live_buffers: AtomicU64,
    /// Most live bytes allowed; [`NO_LIMIT`] when unlimited.
    limit: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            live_bytes: AtomicU64::new(0),
            peak_bytes: AtomicU64::new(0),
            live_buffers: AtomicU64::new(0),
            limit: AtomicU64::new(NO_LIMIT),
        }
    }
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

/// Counts live and peak bytes, within an optional limit. Cheap to clone: clones share the same
/// counters and limit.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    counters: Arc<Counters>,
}

impl Allocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the most bytes that may be live at once (`None`: no limit). A limit below the live
    /// total frees nothing: it refuses every allocation until enough is dropped.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.counters
            .limit
            .store(limit.unwrap_or(NO_LIMIT), Ordering::Relaxed);
    }

    /// The limit, if one is set.
    pub fn limit(&self) -> Option<u64> {
        match self.counters.limit.load(Ordering::Relaxed) {
            NO_LIMIT => None,
            limit => Some(limit),
        }
    }

    /// Records `size` bytes as live until the returned ticket is dropped, ignoring the limit.
    /// Buffers go through [`Allocator::try_track`]; this is for counting what exists anyway.
    pub fn track(&self, size: u64) -> Allocation {
        let c = &self.counters;
        let live = c.live_bytes.fetch_add(size, Ordering::Relaxed) + size;
        self.ticket(live, size)
    }

    /// Records `size` bytes as live if that keeps the live total within the limit, else
    /// refuses with [`Error::Budget`] and counts nothing.
    pub fn try_track(&self, size: u64) -> Result<Allocation> {
        self.try_track_as("a buffer", size)
    }

    /// [`Allocator::try_track`] naming what is allocated in the refusal.
    pub fn try_track_as(&self, label: &str, size: u64) -> Result<Allocation> {
        let c = &self.counters;
        // Check and add in one step: two threads cannot both see room for one buffer.
        let mut live = c.live_bytes.load(Ordering::Relaxed);
        loop {
            let limit = c.limit.load(Ordering::Relaxed);
            let after = live.checked_add(size).filter(|after| *after <= limit);
            let Some(after) = after else {
                return Err(Error::budget(format!(
                    "allocating `{label}` ({}) would use {} of the {} budget",
                    human_bytes(size),
                    human_bytes(live.saturating_add(size)),
                    human_bytes(limit)
                )));
            };
            match c.live_bytes.compare_exchange_weak(
                live,
                after,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(self.ticket(after, size)),
                Err(now) => live = now,
            }
        }
    }

    /// The ticket for `size` bytes already added, `live` the total they made.
    fn ticket(&self, live: u64, size: u64) -> Allocation {
        let c = &self.counters;
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
    fn no_limit_by_default() {
        let alloc = Allocator::new();
        assert_eq!(alloc.limit(), None);
        let a = alloc.try_track(u64::MAX / 2).unwrap();
        let b = alloc.try_track(u64::MAX / 2).unwrap();
        assert!(
            alloc.try_track(2).is_err(),
            "the count itself cannot overflow"
        );
        drop((a, b));
        assert_eq!(alloc.live_bytes(), 0);
    }

    #[test]
    fn limit_refuses_what_would_pass_it() {
        let alloc = Allocator::new();
        alloc.set_limit(Some(1000));
        assert_eq!(alloc.limit(), Some(1000));

        let a = alloc.try_track(600).unwrap();
        let e = alloc.try_track_as("kv cache", 500).unwrap_err();
        assert!(matches!(e, Error::Budget { .. }));
        assert_eq!(
            e.to_string(),
            "memory budget: allocating `kv cache` (500 B) would use 1.07 KiB of the 1000 B budget"
        );
        assert_eq!(alloc.live_bytes(), 600, "a refusal counts nothing");
        assert_eq!(alloc.live_buffers(), 1);
        assert_eq!(alloc.peak_bytes(), 600);

        let b = alloc.try_track(400).unwrap();
        assert_eq!(alloc.live_bytes(), 1000, "exactly the limit is allowed");
        assert!(alloc.try_track(1).is_err());
        assert!(alloc.try_track(0).is_ok(), "nothing always fits");
        drop(b);
        let c = alloc.try_track(400).unwrap();
        assert_eq!(alloc.peak_bytes(), 1000);

        // Lowering the limit under the live total frees nothing and refuses everything.
        alloc.set_limit(Some(100));
        assert!(alloc.try_track(1).is_err());
        assert_eq!(alloc.live_bytes(), 1000);
        drop((a, c));
        assert!(alloc.try_track(100).is_ok());

        alloc.set_limit(None);
        assert_eq!(alloc.limit(), None);
        let _big = alloc.try_track(1 << 40).unwrap();
    }

    #[test]
    fn clones_share_the_limit() {
        let alloc = Allocator::new();
        alloc.clone().set_limit(Some(64));
        assert_eq!(alloc.limit(), Some(64));
        let _a = alloc.try_track(64).unwrap();
        assert!(alloc.clone().try_track(1).is_err());
    }

    #[test]
    fn track_counts_past_the_limit() {
        let alloc = Allocator::new();
        alloc.set_limit(Some(10));
        let _a = alloc.track(100);
        assert_eq!(alloc.live_bytes(), 100);
        assert!(alloc.try_track(1).is_err());
    }

    /// Many threads racing for a budget: the peak never passes it, and every byte comes back.
    /// The limit is below what one thread alone may hold (3 x up to 3000 bytes), so refusals
    /// happen however the threads happen to be scheduled.
    #[test]
    fn concurrent_allocations_never_overshoot() {
        const LIMIT: u64 = 6_000;
        let alloc = Allocator::new();
        alloc.set_limit(Some(LIMIT));
        let refused = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let (alloc, refused) = (alloc.clone(), &refused);
                s.spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..20_000u64 {
                        let size = 1 + (i * 7919 + t * 104_729) % 3000;
                        match alloc.try_track(size) {
                            Ok(a) => held.push(a),
                            Err(_) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        assert!(alloc.live_bytes() <= LIMIT);
                        if !held.is_empty() && (held.len() > 2 || i % 3 == 0) {
                            held.remove(0);
                        }
                    }
                });
            }
        });
        assert!(alloc.peak_bytes() <= LIMIT, "peak {}", alloc.peak_bytes());
        assert!(
            refused.load(Ordering::Relaxed) > 0,
            "the test never hit the limit"
        );
        assert_eq!(alloc.live_bytes(), 0);
        assert_eq!(alloc.live_buffers(), 0);
    }

    #[test]
    fn human_bytes_formats() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(128 << 20), "128.00 MiB");
    }
}
