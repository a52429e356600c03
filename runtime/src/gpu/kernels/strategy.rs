//! How kernels spread work over threads, chosen per device.

use crate::gpu::GpuContext;

/// Two ways to organise the heavy kernels (matmul, attention prefill).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Threads of a workgroup cooperate on one output and combine partial results through
    /// workgroup memory and barriers: coalesced reads, the right choice on GPUs.
    Cooperative,
    /// Each thread owns whole outputs: no workgroup memory, no barriers. The right choice on
    /// CPU adapters (software Vulkan), where barriers and per-thread loads are what costs.
    RowPerThread,
}

impl Strategy {
    /// The strategy for this device: `VOYAGER_STRATEGY=cooperative|rowwise` when set, else
    /// row-per-thread on CPU adapters and cooperative elsewhere.
    pub fn for_device(ctx: &GpuContext) -> Self {
        match std::env::var("VOYAGER_STRATEGY").as_deref() {
            Ok("cooperative") => Strategy::Cooperative,
            Ok("rowwise") => Strategy::RowPerThread,
            _ if ctx.adapter_info().device_type == wgpu::DeviceType::Cpu => Strategy::RowPerThread,
            _ => Strategy::Cooperative,
        }
    }

    /// Both strategies, for tests that check each on the adapter at hand.
    pub const ALL: [Strategy; 2] = [Strategy::Cooperative, Strategy::RowPerThread];
}
