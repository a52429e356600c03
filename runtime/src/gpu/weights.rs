//! Weights on the GPU: one GGUF tensor uploaded in its original block bytes.
//!
//! A weight of GGUF dims `[k, n, ...]` is `rows = n * ...` rows of `cols = k` values, each row a
//! whole number of blocks stored contiguously. The bytes are not converted: GPU memory equals
//! the file size, and the kernels decode blocks in WGSL (`shaders/quant/`).
//!
//! A tensor may exceed what one storage binding can address (Gemma 3's 262144 x 640 Q8_0 token
//! embedding is 178 MB, lavapipe binds at most 128 MiB), so it is split into row-range chunks,
//! each its own buffer of at most `min(max_storage_buffer_binding_size, max_buffer_size)` bytes
//! (rounded down to a multiple of 4), holding whole rows, padded with zeros to a multiple of 4
//! bytes because WGSL reads it as `array<u32>`. Kernels dispatch once per chunk.

use crate::gguf::{GgmlType, TensorInfo};
use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::{Error, Result};

/// One buffer of a [`GpuWeight`]: rows `first_row .. first_row + n_rows`.
#[derive(Debug)]
pub struct WeightChunk {
    /// The rows' block bytes, zero-padded to a multiple of 4 bytes (`STORAGE | COPY_DST`).
    pub buffer: GpuBuffer,
    /// The chunk's first row in the whole tensor.
    pub first_row: u32,
    /// Rows in this chunk.
    pub n_rows: u32,
    /// Bytes of weight data in the chunk (without the padding).
    pub n_bytes: u64,
}

/// A GGUF tensor on the GPU in its original block encoding, split into row chunks.
#[derive(Debug)]
pub struct GpuWeight {
    name: String,
    ty: GgmlType,
    rows: u32,
    cols: u32,
    row_bytes: u64,
    chunks: Vec<WeightChunk>,
}

/// The largest chunk this device can bind: the smaller of the storage binding and buffer size
/// limits, rounded down to a multiple of 4 and kept below 4 GiB (WGSL byte addresses are u32).
pub fn max_chunk_bytes(limits: &wgpu::Limits) -> u64 {
    limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
        .min(u64::from(u32::MAX))
        & !3
}

/// The most bytes of weights staged for upload at once.
pub const UPLOAD_SLICE: u64 = 1 << 20;

/// Submits pending queue writes and waits for them.
fn flush(ctx: &GpuContext, name: &str) -> Result<()> {
    ctx.submit([]);
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("uploading `{name}`: {e}")))?;
    Ok(())
}

/// Device bytes [`GpuWeight::upload`] allocates for a tensor of `n_bytes` bytes in rows of
/// `row_bytes`, with chunks of at most `max_chunk` bytes (each padded to 4 bytes). Smaller
/// chunks only add padding, so planning with the smallest limit a device may have
/// (WebGPU's 128 MiB) bounds every device.
pub fn planned_bytes(n_bytes: u64, row_bytes: u64, max_chunk: u64) -> u64 {
    if row_bytes == 0 || n_bytes == 0 {
        return n_bytes;
    }
    let rows = n_bytes / row_bytes;
    let per_chunk = (max_chunk / row_bytes).max(1);
    let full = rows / per_chunk;
    let rest = rows % per_chunk;
    full * (per_chunk * row_bytes).next_multiple_of(4) + (rest * row_bytes).next_multiple_of(4)
}

impl GpuWeight {
    /// Uploads `bytes`, the data of tensor `info` (e.g. [`crate::gguf::GgufFile::tensor_data`]),
    /// in chunks of at most [`max_chunk_bytes`].
    pub fn upload(ctx: &GpuContext, info: &TensorInfo, bytes: &[u8]) -> Result<Self> {
        Self::upload_with_limit(ctx, info, bytes, max_chunk_bytes(ctx.limits()))
    }

    /// As [`GpuWeight::upload`], with chunks of at most `max_chunk_bytes` (itself capped by the
    /// device's limit): tests force multi-chunk splitting of small tensors with it.
    ///
    /// Staging is bounded: each chunk is written with `queue.write_buffer` straight from `bytes`
    /// in slices of at most [`UPLOAD_SLICE`] bytes (only a final partial word is copied, to pad
    /// it), each submitted and waited for before the next, so wgpu stages at most one slice at
    /// a time (the memory plan reserves it).
    /// Errors for a type no kernel reads, a byte size that does not match the shape, or a row
    /// larger than a chunk may be.
    pub fn upload_with_limit(
        ctx: &GpuContext,
        info: &TensorInfo,
        bytes: &[u8],
        max_chunk_bytes: u64,
    ) -> Result<Self> {
        Self::upload_releasing(ctx, info, bytes, max_chunk_bytes, &mut |_| {})
    }

    /// [`GpuWeight::upload_with_limit`] that calls `uploaded` with each range of `bytes` once
    /// the device has it, so the caller can drop those pages of a mapped file (a 178 MB
    /// embedding then never has more than one slice resident twice).
    pub fn upload_releasing(
        ctx: &GpuContext,
        info: &TensorInfo,
        bytes: &[u8],
        max_chunk_bytes: u64,
        uploaded: &mut dyn FnMut(std::ops::Range<usize>),
    ) -> Result<Self> {
        let name = &info.name;
        let ty = info.ggml_type;
        if !ty.runs_on_gpu() {
            return Err(Error::UnsupportedModel(format!(
                "tensor `{name}`: no GPU kernel reads weights of type {ty}"
            )));
        }
        let (&cols, outer) = info
            .dims
            .split_first()
            .ok_or_else(|| Error::Malformed(format!("tensor `{name}` has no dimensions")))?;
        let rows = outer
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::Malformed(format!("tensor `{name}`: shape overflows")))?;
        let row_bytes = ty.row_bytes(cols).ok_or_else(|| {
            Error::Malformed(format!(
                "tensor `{name}`: rows of {cols} values are not whole {ty} blocks of {}",
                ty.block_len()
            ))
        })?;
        let total = row_bytes
            .checked_mul(rows)
            .ok_or_else(|| Error::Malformed(format!("tensor `{name}`: size overflows")))?;
        if total != info.n_bytes || bytes.len() as u64 != total {
            return Err(Error::Malformed(format!(
                "tensor `{name}`: {rows} rows of {cols} {ty} values take {total} bytes, \
                 the tensor info says {} and {} bytes were given",
                info.n_bytes,
                bytes.len()
            )));
        }
        let (rows32, cols32) = match (u32::try_from(rows), u32::try_from(cols)) {
            (Ok(r), Ok(c)) => (r, c),
            _ => {
                return Err(Error::UnsupportedModel(format!(
                    "tensor `{name}`: {rows} rows of {cols} values exceed the GPU's u32 indices"
                )))
            }
        };
        if rows == 0 || cols == 0 {
            return Err(Error::Malformed(format!(
                "tensor `{name}` is empty ({rows} rows of {cols} values)"
            )));
        }
        let limit = (max_chunk_bytes & !3).min(self::max_chunk_bytes(ctx.limits()));
        if row_bytes > limit {
            return Err(Error::Gpu(format!(
                "tensor `{name}`: one row takes {row_bytes} bytes, more than the {limit} bytes \
                 one storage binding may hold on {}",
                ctx.adapter_name()
            )));
        }
        let rows_per_chunk = limit / row_bytes; // >= 1: row_bytes is in 1..=limit

        let mut chunks = Vec::new();
        let mut first = 0u64;
        let multi = rows > rows_per_chunk;
        while first < rows {
            let n_rows = rows_per_chunk.min(rows - first);
            let start = (first * row_bytes) as usize;
            let n_bytes = n_rows * row_bytes;
            let data = &bytes[start..start + n_bytes as usize];
            let padded = n_bytes.next_multiple_of(4);
            let label = if multi {
                format!("{name} rows {first}..{}", first + n_rows)
            } else {
                name.clone()
            };
            let buffer = ctx.create_buffer(
                &label,
                padded,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            )?;
            // Bound staging: copy at most UPLOAD_SLICE bytes at a time and wait for each copy,
            // so wgpu never holds more than one slice of the model in its staging memory.
            let whole = data.len() & !3;
            let mut off = 0;
            while off < whole {
                let end = (off + UPLOAD_SLICE as usize).min(whole);
                ctx.write_buffer(&buffer, off as u64, &data[off..end]);
                flush(ctx, name)?;
                uploaded(start + off..start + end);
                off = end;
            }
            if whole < data.len() {
                let mut tail = [0u8; 4];
                tail[..data.len() - whole].copy_from_slice(&data[whole..]);
                ctx.write_buffer(&buffer, whole as u64, &tail);
                flush(ctx, name)?;
                uploaded(start + whole..start + data.len());
            }
            chunks.push(WeightChunk {
                buffer,
                first_row: first as u32,
                n_rows: n_rows as u32,
                n_bytes,
            });
            first += n_rows;
        }
        Ok(Self {
            name: name.clone(),
            ty,
            rows: rows32,
            cols: cols32,
            row_bytes,
            chunks,
        })
    }

    /// The tensor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The storage type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Rows (`n`: the output dimension of a matmul, the vocabulary of an embedding).
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Values per row (`k`: the input dimension).
    pub fn cols(&self) -> u32 {
        self.cols
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> u64 {
        self.row_bytes
    }

    /// The chunks, in row order.
    pub fn chunks(&self) -> &[WeightChunk] {
        &self.chunks
    }

    /// Bytes of weight data (the tensor's size in the file; padding excluded).
    pub fn n_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.n_bytes).sum()
    }

    /// Bytes of GPU memory the chunks take (padding included).
    pub fn gpu_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.buffer.size()).sum()
    }
}

/// A model's weights on the device, by tensor name.
#[derive(Debug, Default)]
pub struct Weights {
    by_name: std::collections::HashMap<String, GpuWeight>,
}

impl Weights {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, weight: GpuWeight) {
        self.by_name.insert(weight.name.clone(), weight);
    }

    /// The weight called `name`.
    pub fn get(&self, name: &str) -> Result<&GpuWeight> {
        self.by_name
            .get(name)
            .ok_or_else(|| Error::MissingTensor(name.to_string()))
    }

    /// The f32 vector called `name` (a norm weight), as one buffer of `len` values.
    pub fn vector(&self, name: &str, len: usize) -> Result<&GpuBuffer> {
        let w = self.get(name)?;
        match w.chunks() {
            [chunk] if w.ty() == GgmlType::F32 && (w.rows() * w.cols()) as usize == len => {
                Ok(&chunk.buffer)
            }
            _ => Err(Error::Malformed(format!(
                "`{name}` should be {len} f32 values, found {} x {} {}",
                w.rows(),
                w.cols(),
                w.ty()
            ))),
        }
    }

    /// Every weight, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &GpuWeight> {
        self.by_name.values()
    }
}
