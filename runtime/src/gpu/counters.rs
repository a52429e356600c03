//! What the host does to drive the GPU, counted: compute passes, dispatches, submits, bind
//! groups and buffers created, bytes uploaded and read back, the CPU time spent recording and
//! submitting steps and the time blocked waiting for a readback. `voyager bench` takes a
//! [`snapshot`] before and after its decode loop and reports the difference per token, so a
//! regression in per-token overhead (a buffer created on the hot path, a second submit) shows
//! up as a number on any adapter, the software one included.
//!
//! The counters are process-wide (relaxed atomics; a few nanoseconds each): with several
//! sessions running at once they add up all of them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

static PASSES: AtomicU64 = AtomicU64::new(0);
static DISPATCHES: AtomicU64 = AtomicU64::new(0);
static SUBMITS: AtomicU64 = AtomicU64::new(0);
static BIND_GROUPS: AtomicU64 = AtomicU64::new(0);
static BUFFERS: AtomicU64 = AtomicU64::new(0);
static UPLOAD_BYTES: AtomicU64 = AtomicU64::new(0);
static READBACK_BYTES: AtomicU64 = AtomicU64::new(0);
static RECORD_NS: AtomicU64 = AtomicU64::new(0);
static MAP_WAIT_NS: AtomicU64 = AtomicU64::new(0);
static STEPS: AtomicU64 = AtomicU64::new(0);

/// The counters at one moment, or the difference between two moments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Forward steps (one per decoded token, one per prefill batch).
    pub steps: u64,
    pub passes: u64,
    pub dispatches: u64,
    pub submits: u64,
    pub bind_groups: u64,
    pub buffers: u64,
    /// Bytes written to GPU buffers from the CPU (`write_buffer`, not initial contents).
    pub upload_bytes: u64,
    /// Bytes mapped and read back to the CPU.
    pub readback_bytes: u64,
    /// CPU nanoseconds from the start of a step to its submit returning (planning, uploads,
    /// recording every dispatch, submitting).
    pub record_ns: u64,
    /// Nanoseconds blocked waiting for a readback's map (the GPU working, and the driver's
    /// latency in telling).
    pub map_wait_ns: u64,
}

impl Counters {
    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            steps: self.steps - earlier.steps,
            passes: self.passes - earlier.passes,
            dispatches: self.dispatches - earlier.dispatches,
            submits: self.submits - earlier.submits,
            bind_groups: self.bind_groups - earlier.bind_groups,
            buffers: self.buffers - earlier.buffers,
            upload_bytes: self.upload_bytes - earlier.upload_bytes,
            readback_bytes: self.readback_bytes - earlier.readback_bytes,
            record_ns: self.record_ns - earlier.record_ns,
            map_wait_ns: self.map_wait_ns - earlier.map_wait_ns,
        }
    }
}

impl std::ops::Add for Counters {
    type Output = Counters;

    /// Field-by-field sum (totals over several measured spans).
    fn add(self, o: Counters) -> Counters {
        Counters {
            steps: self.steps + o.steps,
            passes: self.passes + o.passes,
            dispatches: self.dispatches + o.dispatches,
            submits: self.submits + o.submits,
            bind_groups: self.bind_groups + o.bind_groups,
            buffers: self.buffers + o.buffers,
            upload_bytes: self.upload_bytes + o.upload_bytes,
            readback_bytes: self.readback_bytes + o.readback_bytes,
            record_ns: self.record_ns + o.record_ns,
            map_wait_ns: self.map_wait_ns + o.map_wait_ns,
        }
    }
}

/// The counters now.
pub fn snapshot() -> Counters {
    Counters {
        steps: STEPS.load(Relaxed),
        passes: PASSES.load(Relaxed),
        dispatches: DISPATCHES.load(Relaxed),
        submits: SUBMITS.load(Relaxed),
        bind_groups: BIND_GROUPS.load(Relaxed),
        buffers: BUFFERS.load(Relaxed),
        upload_bytes: UPLOAD_BYTES.load(Relaxed),
        readback_bytes: READBACK_BYTES.load(Relaxed),
        record_ns: RECORD_NS.load(Relaxed),
        map_wait_ns: MAP_WAIT_NS.load(Relaxed),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Records `x * y * z` workgroups into `pass`, counted. Every kernel dispatches through here.
pub fn dispatch(pass: &mut wgpu::ComputePass<'_>, x: u32, y: u32, z: u32) {
    DISPATCHES.fetch_add(1, Relaxed);
    pass.dispatch_workgroups(x, y, z);
}

/// Begins a compute pass on `encoder`, counted.
pub fn begin_pass<'e>(encoder: &'e mut wgpu::CommandEncoder, label: &str) -> wgpu::ComputePass<'e> {
    PASSES.fetch_add(1, Relaxed);
    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    })
}

pub(crate) fn submitted() {
    SUBMITS.fetch_add(1, Relaxed);
}

pub(crate) fn bind_group_created() {
    BIND_GROUPS.fetch_add(1, Relaxed);
}

pub(crate) fn buffer_created() {
    BUFFERS.fetch_add(1, Relaxed);
}

pub(crate) fn uploaded(bytes: u64) {
    UPLOAD_BYTES.fetch_add(bytes, Relaxed);
}

pub(crate) fn read_back(bytes: u64, waited: Duration) {
    READBACK_BYTES.fetch_add(bytes, Relaxed);
    MAP_WAIT_NS.fetch_add(nanos(waited), Relaxed);
}

pub(crate) fn step_recorded(took: Duration) {
    STEPS.fetch_add(1, Relaxed);
    RECORD_NS.fetch_add(nanos(took), Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_per_field() {
        let a = Counters {
            dispatches: 5,
            map_wait_ns: 10,
            ..Counters::default()
        };
        let b = Counters {
            dispatches: 12,
            map_wait_ns: 15,
            steps: 1,
            ..Counters::default()
        };
        let d = b.since(&a);
        assert_eq!((d.dispatches, d.map_wait_ns, d.steps), (7, 5, 1));
    }
}
