//! Compute kernels, one per file: each holds its pipelines (built once per device), a `bind`
//! that validates buffers and builds bind groups once, an `encode` that only records into a
//! caller's compute pass (and refuses a step larger than it was bound for), and its CPU
//! reference twin. [`Kernels`] is the set an engine builds once.

pub mod add;
pub mod attention;
pub mod copy;
pub mod embedding;
pub mod ffn_act;
pub mod fma;
pub mod hadamard;
pub mod kv_cache;
pub mod kv_score;
pub mod matmul;
pub mod rms_norm;
pub mod rope;
pub mod step;
pub mod strategy;

pub use add::{add_ref, AddKernel};
pub use strategy::Strategy;

use crate::gpu::GpuContext;
use crate::{Error, Result};

/// Every compute pipeline the forward pass uses, built once per engine.
pub struct Kernels {
    pub embedding: embedding::EmbeddingKernel,
    pub matmul: matmul::MatmulKernel,
    pub rms_norm: rms_norm::RmsNormKernel,
    pub rope: rope::RopeKernel,
    pub kv_write: kv_cache::KvWriteKernel,
    pub attention: attention::AttentionKernel,
    /// Built on first use ([`Kernels::kv_score`]): only the importance policy runs it, and
    /// its pipelines would otherwise cost every engine driver memory.
    kv_score: std::sync::OnceLock<kv_score::KvScoreKernel>,
    pub ffn_act: ffn_act::FfnActKernel,
    pub hadamard: hadamard::HadamardKernel,
    pub add: AddKernel,
}

impl Kernels {
    /// The kernels with this device's [`Strategy`].
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Self::with_strategy(ctx, Strategy::for_device(ctx))
    }

    /// The kernels with a chosen [`Strategy`] for matmul and attention (tests and the
    /// self-check run both on any device).
    pub fn with_strategy(ctx: &GpuContext, strategy: Strategy) -> Result<Self> {
        Ok(Self {
            embedding: embedding::EmbeddingKernel::new(ctx)?,
            matmul: matmul::MatmulKernel::with_strategy(ctx, strategy)?,
            rms_norm: rms_norm::RmsNormKernel::new(ctx)?,
            rope: rope::RopeKernel::new(ctx)?,
            kv_write: kv_cache::KvWriteKernel::new(ctx)?,
            attention: attention::AttentionKernel::with_strategy(ctx, strategy)?,
            kv_score: std::sync::OnceLock::new(),
            ffn_act: ffn_act::FfnActKernel::new(ctx)?,
            hadamard: hadamard::HadamardKernel::with_strategy(ctx, strategy)?,
            add: AddKernel::new(ctx)?,
        })
    }

    /// The importance policy's scoring kernel, built on the first call.
    pub fn kv_score(&self, ctx: &GpuContext) -> Result<&kv_score::KvScoreKernel> {
        if let Some(k) = self.kv_score.get() {
            return Ok(k);
        }
        let built = kv_score::KvScoreKernel::new(ctx)?;
        Ok(self.kv_score.get_or_init(|| built))
    }

    /// The scoring kernel if [`Kernels::kv_score`] built it.
    pub fn kv_score_built(&self) -> Result<&kv_score::KvScoreKernel> {
        self.kv_score
            .get()
            .ok_or_else(|| Error::Gpu("kv_score: recorded before it was built".into()))
    }

    /// The strategy of the heavy kernels.
    pub fn strategy(&self) -> Strategy {
        self.attention.strategy()
    }
}

/// Splits `groups` workgroups into an (x, y) grid with x, y <= `max_per_dim`, for kernels
/// that index elements as `gid.y * (x * workgroup_size) + gid.x`. A 1-D grid when it fits.
/// The grid may hold up to `x - 1` workgroups more than asked; shaders bound-check.
pub fn dispatch_grid(groups: u32, max_per_dim: u32) -> Result<(u32, u32)> {
    if groups <= max_per_dim {
        return Ok((groups, 1));
    }
    let y = groups.div_ceil(max_per_dim);
    if y > max_per_dim {
        return Err(Error::Gpu(format!(
            "{groups} workgroups exceed the {max_per_dim} x {max_per_dim} dispatch grid"
        )));
    }
    // The narrowest row count that still fits, to waste as few workgroups as possible.
    Ok((groups.div_ceil(y), y))
}

#[cfg(test)]
mod tests {
    use super::dispatch_grid;

    #[test]
    fn grid_covers_and_stays_within_limits() {
        let max = 65535;
        assert_eq!(dispatch_grid(0, max).unwrap(), (0, 1));
        assert_eq!(dispatch_grid(1, max).unwrap(), (1, 1));
        assert_eq!(dispatch_grid(max, max).unwrap(), (max, 1));
        for groups in [max + 1, 2 * max, 2 * max + 1, 65_537 * 3, max * max] {
            let (x, y) = dispatch_grid(groups, max).unwrap();
            assert!(x <= max && y <= max, "{groups}: ({x}, {y})");
            assert!(u64::from(x) * u64::from(y) >= u64::from(groups), "{groups}");
            assert!(
                u64::from(x) * u64::from(y - 1) < u64::from(groups),
                "{groups}"
            );
        }
        assert!(dispatch_grid(max * max + 1, max).is_err());
    }
}
