//! Every compute pipeline the forward pass uses, built once per engine.

use crate::gpu::kernels::attention::AttentionKernel;
use crate::gpu::kernels::embedding::EmbeddingKernel;
use crate::gpu::kernels::ffn_act::FfnActKernel;
use crate::gpu::kernels::hadamard::HadamardKernel;
use crate::gpu::kernels::kv_cache::KvWriteKernel;
use crate::gpu::kernels::matmul::MatmulKernel;
use crate::gpu::kernels::rms_norm::RmsNormKernel;
use crate::gpu::kernels::rope::RopeKernel;
use crate::gpu::kernels::AddKernel;
use crate::gpu::GpuContext;
use crate::Result;

pub(crate) struct Kernels {
    pub embedding: EmbeddingKernel,
    pub matmul: MatmulKernel,
    pub rms_norm: RmsNormKernel,
    pub rope: RopeKernel,
    pub kv_write: KvWriteKernel,
    pub attention: AttentionKernel,
    pub ffn_act: FfnActKernel,
    pub hadamard: HadamardKernel,
    pub add: AddKernel,
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(Self {
            embedding: EmbeddingKernel::new(ctx)?,
            matmul: MatmulKernel::new(ctx)?,
            rms_norm: RmsNormKernel::new(ctx)?,
            rope: RopeKernel::new(ctx)?,
            kv_write: KvWriteKernel::new(ctx)?,
            attention: AttentionKernel::new(ctx)?,
            ffn_act: FfnActKernel::new(ctx)?,
            hadamard: HadamardKernel::new(ctx)?,
            add: AddKernel::new(ctx),
        })
    }
}
