//! Token embedding lookup: `out[t][:] = dequant(W row ids[t]) * scale` for `t < n_tokens`.
//! Shader: the `shaders/embedding.wgsl` template with a `shaders/quant/` snippet per type.
//!
//! The ids live on the GPU only (they may come from sampling): each weight chunk's dispatch
//! handles the tokens whose id falls in its rows and leaves the others untouched, so one
//! dispatch per chunk fills every token. Ids past the last row are never written.
//! `scale` is 1 for most models; Gemma multiplies embeddings by `sqrt(n_embd)`.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::gguf::GgmlType;
use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::matmul::{bind_range, weight_bind_group, weight_kernel_layout};
use crate::gpu::kernels::step;
use crate::gpu::weights::GpuWeight;
use crate::gpu::{pipeline, shaders};
use crate::{Error, Result};

/// Threads per workgroup; must match `@workgroup_size` in `shaders/embedding.wgsl`.
pub const WORKGROUP_SIZE: u32 = 256;
/// Row values each thread writes.
const VALUES_PER_THREAD: u32 = 8;

/// The shader's `Params` uniform, one per chunk, written at bind time.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k: u32,
    first_row: u32,
    chunk_rows: u32,
    row_bytes: u32,
    scale: f32,
    max_tokens: u32,
    _pad: [u32; 2],
}

/// The CPU reference: `out[t * k + i] = W[ids[t]][i] * scale` with the `n` rows of `k` values
/// of `w_bytes` dequantized by [`crate::quant::dequantize`]. Tokens whose id is not a row
/// (`>= n`) keep `fill`.
pub fn embedding_ref(
    ty: GgmlType,
    w_bytes: &[u8],
    k: usize,
    n: usize,
    ids: &[u32],
    scale: f32,
    fill: f32,
) -> Result<Vec<f32>> {
    let row_bytes = ty
        .row_bytes(k as u64)
        .ok_or_else(|| Error::Malformed(format!("{k} values of {ty} are not whole blocks")))?
        as usize;
    let mut out = vec![fill; k * ids.len()];
    for (t, &id) in ids.iter().enumerate() {
        if (id as usize) < n {
            let row = w_bytes
                .get(id as usize * row_bytes..(id as usize + 1) * row_bytes)
                .ok_or_else(|| Error::Malformed("embedding_ref: weight bytes too short".into()))?;
            let values = crate::quant::dequantize(ty, row, k)?;
            for (o, v) in out[t * k..][..k].iter_mut().zip(values) {
                *o = v * scale;
            }
        }
    }
    Ok(out)
}

/// The embedding pipelines, built once per device and weight type (lazily at the first bind).
pub struct EmbeddingKernel {
    device: wgpu::Device,
    max_groups_per_dim: u32,
    layout: wgpu::BindGroupLayout,
    pipelines: Mutex<HashMap<GgmlType, wgpu::ComputePipeline>>,
}

struct ChunkBinding {
    bind_group: wgpu::BindGroup,
    _params: GpuBuffer,
}

/// Bind groups of one embedding table with fixed ids, out and step buffers, built once by
/// [`EmbeddingKernel::bind`].
pub struct EmbeddingBinding {
    pipeline: wgpu::ComputePipeline,
    chunks: Vec<ChunkBinding>,
    groups_x: u32,
    max_tokens: u32,
}

impl EmbeddingBinding {
    /// The most tokens one step may hold.
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }
}

impl EmbeddingKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let device = ctx.device().clone();
        let layout = weight_kernel_layout(&device, "embedding");
        Ok(Self {
            device,
            max_groups_per_dim: ctx.limits().max_compute_workgroups_per_dimension,
            layout,
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    fn pipeline(&self, ty: GgmlType) -> Result<wgpu::ComputePipeline> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&ty) {
            return Ok(p.clone());
        }
        let name = ty.gpu_snippet().ok_or_else(|| {
            Error::UnsupportedModel(format!("no GPU embedding for weights of type {ty}"))
        })?;
        let p = pipeline::build_one(
            &self.device,
            &format!("embedding_{name}"),
            &self.layout,
            &shaders::embedding_source(ty)?,
            "main",
        )?;
        cache.insert(ty, p.clone());
        Ok(p)
    }

    /// Builds the bind groups (one per weight chunk) gathering rows of `weight` for the token
    /// ids in `ids` (u32 `[max_tokens]`, `STORAGE`) into `out` (f32 `[max_tokens,
    /// weight.cols()]`, `STORAGE`), multiplied by `scale`. `step` is the caller's `Step`
    /// uniform (`{ n_tokens, pos, n_kv, _pad }`).
    #[allow(clippy::too_many_arguments)] // the buffers and static values of one binding
    pub fn bind(
        &self,
        ctx: &GpuContext,
        weight: &GpuWeight,
        ids: &GpuBuffer,
        out: &GpuBuffer,
        step: &GpuBuffer,
        scale: f32,
        max_tokens: u32,
    ) -> Result<EmbeddingBinding> {
        let what = format!("embedding `{}`", weight.name());
        if max_tokens == 0 || max_tokens > self.max_groups_per_dim {
            return Err(Error::Gpu(format!(
                "{what}: max_tokens = {max_tokens} is out of range"
            )));
        }
        if step.size() < 16 {
            return Err(Error::Gpu(format!(
                "{what}: the step uniform needs 16 bytes"
            )));
        }
        let pipeline = self.pipeline(weight.ty())?;
        let k = weight.cols();
        let groups_x = k.div_ceil(VALUES_PER_THREAD).div_ceil(WORKGROUP_SIZE);
        let out_bytes = 4 * u64::from(max_tokens) * u64::from(k);
        let ids_bytes = 4 * u64::from(max_tokens);
        let row_bytes = u32::try_from(weight.row_bytes())
            .map_err(|_| Error::Gpu(format!("{what}: rows too large")))?;
        let mut chunks = Vec::new();
        for chunk in weight.chunks() {
            let params = Params {
                k,
                first_row: chunk.first_row,
                chunk_rows: chunk.n_rows,
                row_bytes,
                scale,
                max_tokens,
                _pad: [0; 2],
            };
            let params = step::uniform(ctx, "embedding params", &params)?;
            let bind_group = weight_bind_group(
                ctx,
                "embedding",
                &self.layout,
                [step, &params, &chunk.buffer],
                bind_range(ctx, &format!("{what} ids"), ids, ids_bytes)?,
                bind_range(ctx, &format!("{what} out"), out, out_bytes)?,
            );
            chunks.push(ChunkBinding {
                bind_group,
                _params: params,
            });
        }
        Ok(EmbeddingBinding {
            pipeline,
            chunks,
            groups_x,
            max_tokens,
        })
    }

    /// Records the gather for `n_tokens` tokens (clamped to the binding's `max_tokens`) into
    /// `pass`: one dispatch per weight chunk, nothing allocated.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass,
        binding: &EmbeddingBinding,
        n_tokens: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens {
            return Err(Error::Gpu(format!(
                "embedding: {n_tokens} tokens exceed the {} bound",
                binding.max_tokens
            )));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        pass.set_pipeline(&binding.pipeline);
        for chunk in &binding.chunks {
            pass.set_bind_group(0, &chunk.bind_group, &[]);
            crate::gpu::counters::dispatch(pass, binding.groups_x, n_tokens, 1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<Params>(), 32);
    }

    #[test]
    fn reference_gathers_and_scales() {
        let w: Vec<u8> = [1f32, 2., 3., 4.]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let out = embedding_ref(GgmlType::F32, &w, 2, 2, &[1, 5, 0], 2.0, -1.0).unwrap();
        assert_eq!(out, [6., 8., -1., -1., 2., 4.]);
    }
}
