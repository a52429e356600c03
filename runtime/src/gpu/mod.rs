//! The wgpu device and the compute kernels.
//!
//! - [`context`]: [`GpuContext`], the adapter and device (created with the adapter's own
//!   limits and the optional features f16 and subgroups when available), tracked buffer
//!   creation and readback;
//! - [`counters`]: what the host does per step (passes, dispatches, submits, creations,
//!   bytes moved, time recording and waiting), for `voyager bench`;
//! - [`alloc`]: the byte-counting [`Allocator`] behind every [`GpuBuffer`];
//! - [`shaders`]: the registry of every WGSL file in `shaders/`;
//! - [`kernels`]: one kernel per file, each with its CPU reference twin.

pub mod alloc;
pub mod context;
pub mod counters;
pub mod kernels;
pub(crate) mod pipeline;
pub mod preprocess;
pub mod shaders;
pub mod weights;

pub use alloc::{Allocation, Allocator, GpuBuffer, MemoryStats};
pub use context::{GpuContext, NO_ADAPTER_HELP, WANTED_FEATURES};
