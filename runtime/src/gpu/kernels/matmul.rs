//! `y[t][r] = sum_i W[r][i] * x[t][i]`: a weight in its GGUF block encoding times f32
//! activations, for every projection of the transformer and the logits.
//! Shader: the `shaders/matmul.wgsl` template with a `shaders/quant/` snippet per weight type.
//!
//! One kernel family, two tilings of the same source: decode (`n_tokens == 1`, `matvec_<type>`:
//! a workgroup of 64 threads cooperates on [`ROWS`] rows) and prefill (`matmul_<type>`: the same
//! rows times a tile of [`PREFILL_TILE`] tokens, so each dequantized weight group is reused for
//! every token of the tile and weights are read once per tile, not once per token).
//! Accumulation is f32. A chunked weight is one dispatch per chunk, each writing its rows of y.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::gguf::GgmlType;
use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::dispatch_grid;
use crate::gpu::kernels::step;
use crate::gpu::weights::GpuWeight;
use crate::gpu::{pipeline, shaders};
use crate::{Error, Result};

pub use crate::gpu::shaders::matmul_tiles::{
    DECODE_TILE, PREFILL_TILE, ROWS, ROWWISE_PREFILL_TILE,
};

/// Tokens per workgroup in prefill for each strategy.
pub fn prefill_tile(strategy: Strategy) -> u32 {
    match strategy {
        Strategy::Cooperative => PREFILL_TILE,
        Strategy::RowPerThread => ROWWISE_PREFILL_TILE,
    }
}
/// Threads per workgroup; must match `@workgroup_size` in `shaders/matmul.wgsl`.
pub const WORKGROUP_SIZE: u32 = 64;

pub use crate::gpu::kernels::strategy::Strategy;
pub use crate::gpu::shaders::Reduction;

/// Rows one workgroup covers when the shader was built with `rows` rows.
fn rows_per_workgroup(strategy: Strategy, rows: u32) -> u32 {
    match strategy {
        Strategy::Cooperative => rows,
        Strategy::RowPerThread => WORKGROUP_SIZE * rows,
    }
}

/// Rows per workgroup the decode mat-vec may be built with ([`MatmulKernel::with_options`]).
pub const DECODE_ROWS_CHOICES: [u32; 4] = [1, 2, 4, 8];

/// The decode mat-vec's rows per workgroup: `VOYAGER_DECODE_ROWS` when it names one of
/// [`DECODE_ROWS_CHOICES`] (to measure the others on a device), else [`ROWS`].
pub fn decode_rows_from_env() -> u32 {
    std::env::var("VOYAGER_DECODE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|r| DECODE_ROWS_CHOICES.contains(r))
        .unwrap_or(ROWS)
}

/// The shader entry point of each strategy.
fn entry_point(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Cooperative => "main",
        Strategy::RowPerThread => "rowwise",
    }
}

/// The shader's `Params` uniform, one per chunk, written at bind time.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k: u32,
    n: u32,
    first_row: u32,
    chunk_rows: u32,
    row_bytes: u32,
    grid_x: u32,
    max_tokens: u32,
    _pad: u32,
}

/// The CPU reference: dequantizes the `n` rows of `k` values of `w_bytes` with
/// [`crate::quant::dequantize`] and returns `y[t * n + r] = sum_i W[r][i] * x[t * k + i]`
/// (summed in f64, rounded once) for `t < n_tokens`.
pub fn matmul_ref(
    ty: GgmlType,
    w_bytes: &[u8],
    k: usize,
    n: usize,
    x: &[f32],
    n_tokens: usize,
) -> Result<Vec<f32>> {
    let w = crate::quant::dequantize(ty, w_bytes, k * n)?;
    if x.len() < k * n_tokens {
        return Err(Error::Gpu(format!(
            "matmul_ref: x holds {} values, {n_tokens} tokens of {k} need {}",
            x.len(),
            k * n_tokens
        )));
    }
    let mut y = vec![0.0; n * n_tokens];
    for t in 0..n_tokens {
        let xt = &x[t * k..][..k];
        for (r, wr) in w.chunks_exact(k).enumerate() {
            let s: f64 = wr.iter().zip(xt).map(|(&a, &b)| a as f64 * b as f64).sum();
            y[t * n + r] = s as f32;
        }
    }
    Ok(y)
}

/// The five-binding layout shared by matmul and embedding: step and params uniforms, the weight
/// chunk, the input and the output.
pub(crate) fn weight_kernel_layout(device: &wgpu::Device, label: &str) -> wgpu::BindGroupLayout {
    pipeline::layout(
        device,
        label,
        &[
            pipeline::uniform_entry(0),
            pipeline::uniform_entry(1),
            pipeline::storage_entry(2, true),
            pipeline::storage_entry(3, true),
            pipeline::storage_entry(4, false),
        ],
    )
}

/// A bind group of [`weight_kernel_layout`]: the step and params uniforms, one weight chunk,
/// and the input and output ranges (from [`bind_range`]).
pub(crate) fn weight_bind_group(
    ctx: &GpuContext,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    [step, params, chunk]: [&wgpu::Buffer; 3],
    input: wgpu::BindingResource<'_>,
    output: wgpu::BindingResource<'_>,
) -> wgpu::BindGroup {
    crate::gpu::counters::bind_group_created();
    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: step.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: params.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: chunk.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: input,
            },
            wgpu::BindGroupEntry {
                binding: 4,
                resource: output,
            },
        ],
    })
}

/// `buffer` bound from 0 for `bytes` bytes, after checking it is large enough and bindable.
pub(crate) fn bind_range<'a>(
    ctx: &GpuContext,
    what: &str,
    buffer: &'a GpuBuffer,
    bytes: u64,
) -> Result<wgpu::BindingResource<'a>> {
    if buffer.size() < bytes {
        return Err(Error::Gpu(format!(
            "{what}: buffer `{}` holds {} bytes, {bytes} are needed",
            buffer.label(),
            buffer.size()
        )));
    }
    if bytes > ctx.limits().max_storage_buffer_binding_size {
        return Err(Error::Gpu(format!(
            "{what}: {bytes} bytes exceed this device's storage binding limit of {} bytes",
            ctx.limits().max_storage_buffer_binding_size
        )));
    }
    Ok(wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: wgpu::BufferSize::new(bytes.max(4)),
    }))
}

fn checked_bytes(what: &str, values: &[u32]) -> Result<u64> {
    values
        .iter()
        .try_fold(4u64, |acc, &v| acc.checked_mul(u64::from(v)))
        .ok_or_else(|| Error::Gpu(format!("{what}: size overflows")))
}

#[derive(Clone)]
struct Pipelines {
    decode: wgpu::ComputePipeline,
    prefill: wgpu::ComputePipeline,
}

/// The matmul pipelines, built once per device and weight type (lazily, at the first
/// [`MatmulKernel::bind`] of a type, or with [`MatmulKernel::prepare`]).
pub struct MatmulKernel {
    device: wgpu::Device,
    strategy: Strategy,
    reduction: Reduction,
    /// Rows per workgroup of the decode pipeline (prefill uses [`ROWS`]).
    decode_rows: u32,
    max_groups_per_dim: u32,
    layout: wgpu::BindGroupLayout,
    pipelines: Mutex<HashMap<GgmlType, Pipelines>>,
}

/// One weight chunk's bindings: for prefill, and for decode when its rows per workgroup
/// differ (the grid, and so the `grid_x` its uniform holds, differs with them).
struct ChunkBinding {
    prefill: Dispatch,
    decode: Option<Dispatch>,
}

struct Dispatch {
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
    _params: GpuBuffer,
}

/// The bind groups of one weight with fixed x, y and step buffers, built once by
/// [`MatmulKernel::bind`] and recorded any number of times by [`MatmulKernel::encode`].
pub struct MatmulBinding {
    pipelines: Pipelines,
    chunks: Vec<ChunkBinding>,
    max_tokens: u32,
}

impl MatmulBinding {
    /// The most tokens one step may hold (what x and y were sized for).
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }
}

impl MatmulKernel {
    /// The kernel with this device's [`Strategy`].
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Self::with_strategy(ctx, Strategy::for_device(ctx))
    }

    /// The kernel with a chosen [`Strategy`] (tests run both on any device), adding partial
    /// sums through subgroups where the device allows ([`Reduction::for_device`]).
    pub fn with_strategy(ctx: &GpuContext, strategy: Strategy) -> Result<Self> {
        let reduction = match strategy {
            Strategy::Cooperative => Reduction::for_device(ctx),
            Strategy::RowPerThread => Reduction::Tree,
        };
        Self::with_options(ctx, strategy, reduction, decode_rows_from_env())
    }

    /// The kernel with every choice made by the caller (tests check each on any device):
    /// strategy, reduction (a subgroup reduction needs subgroups of at most 64 lanes), and
    /// the decode mat-vec's rows per workgroup (one of [`DECODE_ROWS_CHOICES`]).
    pub fn with_options(
        ctx: &GpuContext,
        strategy: Strategy,
        reduction: Reduction,
        decode_rows: u32,
    ) -> Result<Self> {
        if !DECODE_ROWS_CHOICES.contains(&decode_rows) {
            return Err(Error::InvalidArgument(format!(
                "{decode_rows} decode rows per workgroup (choose one of {DECODE_ROWS_CHOICES:?})"
            )));
        }
        if reduction == Reduction::Subgroup && ctx.subgroup_sizes().1 > 64 {
            return Err(Error::Gpu(format!(
                "subgroups of up to {} lanes do not divide the matmul's 64-thread workgroup",
                ctx.subgroup_sizes().1
            )));
        }
        if reduction == Reduction::Subgroup && !ctx.has_subgroups() {
            return Err(Error::Gpu("this device has no subgroup operations".into()));
        }
        let device = ctx.device().clone();
        let layout = weight_kernel_layout(&device, "matmul");
        Ok(Self {
            device,
            strategy,
            reduction,
            decode_rows,
            max_groups_per_dim: ctx.limits().max_compute_workgroups_per_dimension,
            layout,
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    fn pipelines(&self, ty: GgmlType) -> Result<Pipelines> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&ty) {
            return Ok(p.clone());
        }
        let name = ty.gpu_snippet().ok_or_else(|| {
            Error::UnsupportedModel(format!("no GPU matmul for weights of type {ty}"))
        })?;
        let entry = entry_point(self.strategy);
        let p = Pipelines {
            decode: pipeline::build_one(
                &self.device,
                &format!("matvec_{name}"),
                &self.layout,
                &shaders::matmul_source(ty, DECODE_TILE, self.decode_rows, self.reduction)?,
                entry,
            )?,
            prefill: pipeline::build_one(
                &self.device,
                &format!("matmul_{name}"),
                &self.layout,
                &shaders::matmul_source(ty, prefill_tile(self.strategy), ROWS, self.reduction)?,
                entry,
            )?,
        };
        cache.insert(ty, p.clone());
        Ok(p)
    }

    /// Rows per workgroup of the decode mat-vec.
    pub fn decode_rows(&self) -> u32 {
        self.decode_rows
    }

    /// How the cooperative entry point adds partial sums.
    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    /// Builds the pipelines for weights of type `ty` now rather than at their first bind.
    pub fn prepare(&self, ty: GgmlType) -> Result<()> {
        self.pipelines(ty).map(drop)
    }

    /// Builds the bind groups (one per weight chunk, with its static-parameter uniform) for
    /// `y = W x` with `x`: f32 `[max_tokens, weight.cols()]` and `y`: f32
    /// `[max_tokens, weight.rows()]`, both `STORAGE` (y must not alias x), and `step` the
    /// caller's `Step` uniform (`{ n_tokens, pos, n_kv, _pad }`, 16 bytes), read at every
    /// submit. Done once per buffer set; [`MatmulKernel::encode`] then only records.
    pub fn bind(
        &self,
        ctx: &GpuContext,
        weight: &GpuWeight,
        x: &GpuBuffer,
        y: &GpuBuffer,
        step: &GpuBuffer,
        max_tokens: u32,
    ) -> Result<MatmulBinding> {
        let what = format!("matmul `{}`", weight.name());
        if max_tokens == 0
            || max_tokens.div_ceil(prefill_tile(self.strategy)) > self.max_groups_per_dim
        {
            return Err(Error::Gpu(format!(
                "{what}: max_tokens = {max_tokens} is out of range"
            )));
        }
        if step.size() < 16 {
            return Err(Error::Gpu(format!(
                "{what}: the step uniform needs 16 bytes"
            )));
        }
        let pipelines = self.pipelines(weight.ty())?;
        let (k, n) = (weight.cols(), weight.rows());
        // x is read as vec4s: its binding covers whole 16-byte elements.
        let x_bytes = checked_bytes(&what, &[max_tokens, k])?.next_multiple_of(16);
        let y_bytes = checked_bytes(&what, &[max_tokens, n])?;
        let row_bytes = u32::try_from(weight.row_bytes())
            .map_err(|_| Error::Gpu(format!("{what}: rows too large")))?;
        let mut chunks = Vec::with_capacity(weight.chunks().len());
        for chunk in weight.chunks() {
            let dispatch = |rows: u32| -> Result<Dispatch> {
                let grid = dispatch_grid(
                    chunk
                        .n_rows
                        .div_ceil(rows_per_workgroup(self.strategy, rows)),
                    self.max_groups_per_dim,
                )?;
                let params = Params {
                    k,
                    n,
                    first_row: chunk.first_row,
                    chunk_rows: chunk.n_rows,
                    row_bytes,
                    grid_x: grid.0,
                    max_tokens,
                    _pad: 0,
                };
                let params = step::uniform(ctx, "matmul params", &params)?;
                let bind_group = weight_bind_group(
                    ctx,
                    "matmul",
                    &self.layout,
                    [step, &params, &chunk.buffer],
                    bind_range(ctx, &format!("{what} x"), x, x_bytes)?,
                    bind_range(ctx, &format!("{what} y"), y, y_bytes)?,
                );
                Ok(Dispatch {
                    bind_group,
                    grid,
                    _params: params,
                })
            };
            chunks.push(ChunkBinding {
                prefill: dispatch(ROWS)?,
                decode: match self.decode_rows {
                    ROWS => None,
                    rows => Some(dispatch(rows)?),
                },
            });
        }
        Ok(MatmulBinding {
            pipelines,
            chunks,
            max_tokens,
        })
    }

    /// Records `y = W x` for `n_tokens` tokens (at most the binding's `max_tokens`; more are
    /// refused) into `pass`: one dispatch per weight chunk, nothing allocated. `n_tokens` must
    /// equal the `n_tokens` the step uniform will hold at submit (the dispatch is sized from
    /// it, the shader bound-checks against the uniform).
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass,
        binding: &MatmulBinding,
        n_tokens: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens {
            return Err(Error::Gpu(format!(
                "matmul: {n_tokens} tokens exceed the {} bound",
                binding.max_tokens
            )));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        let (pipeline, tiles) = if n_tokens == 1 {
            (&binding.pipelines.decode, 1)
        } else {
            (
                &binding.pipelines.prefill,
                n_tokens.div_ceil(prefill_tile(self.strategy)),
            )
        };
        pass.set_pipeline(pipeline);
        for chunk in &binding.chunks {
            let d = match (&chunk.decode, n_tokens) {
                (Some(d), 1) => d,
                _ => &chunk.prefill,
            };
            pass.set_bind_group(0, &d.bind_group, &[]);
            crate::gpu::counters::dispatch(pass, d.grid.0, d.grid.1, tiles);
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
    fn reference_multiplies() {
        // W = [[1, 2], [3, 4], [5, 6]] (3 rows of k = 2), x = [[1, 1], [0, 2]].
        let w: Vec<u8> = [1f32, 2., 3., 4., 5., 6.]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let y = matmul_ref(GgmlType::F32, &w, 2, 3, &[1., 1., 0., 2.], 2).unwrap();
        assert_eq!(y, [3., 7., 11., 4., 8., 12.]);
    }
}
