//! The wgpu device and the compute kernels.
//!
//! - [`context`]: [`GpuContext`], the adapter and device (created with the adapter's own
//!   limits and the optional features f16 and subgroups when available), tracked buffer
//!   creation and readback;
//! - [`alloc`]: the byte-counting [`Allocator`] behind every [`GpuBuffer`];
//! - [`shaders`]: the registry of every WGSL file in `shaders/`;
//! - [`kernels`]: one kernel per file, each with its CPU reference twin.

pub mod alloc;
pub mod context;
pub mod kernels;
pub(crate) mod pipeline;
pub mod preprocess;
pub mod shaders;
pub mod weights;

pub use alloc::{Allocation, Allocator, GpuBuffer, MemoryStats};
pub use context::{GpuContext, NO_ADAPTER_HELP, WANTED_FEATURES};
