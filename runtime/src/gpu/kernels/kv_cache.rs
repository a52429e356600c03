//! One layer's KV cache on the device and the `kv_write` kernel that stores a batch in it.
//!
//! The cache is one storage buffer, K then V, laid out as [`crate::kv::LayerLayout`] says
//! (sinks, recent f16 copies, the typed ring), plus a uniform describing that layout which
//! `kv_write` and attention both read (`shaders/kv/layout.wgsl`). `kv_write` quantizes on the
//! GPU as it stores (`shaders/kv_write.wgsl`; CPU twins in [`crate::kv::quant`]).

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::step;
use crate::gpu::{pipeline, shaders};
use crate::kv::quant::{decode_block, decode_group, round_trip};
use crate::kv::{KvType, LayerLayout, SideLayout, BLOCK, TQ_GROUP};
use crate::{Error, Result};

/// Threads per workgroup; must match `shaders/kv_write.wgsl`.
const WORKGROUP_SIZE: u32 = 64;

/// The shader's `KvSide`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SideUniform {
    ty: u32,
    head_dim: u32,
    recent: u32,
    sink_off: u32,
    recent_off: u32,
    ring_off: u32,
    ring_head_words: u32,
    mean_off: u32,
    tag_off: u32,
    ring_slot_words: u32,
    _pad: [u32; 2],
}

/// The shader's `KvLayout`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LayoutUniform {
    n_kv_heads: u32,
    sinks: u32,
    window: u32,
    ring_slots: u32,
    k: SideUniform,
    v: SideUniform,
    table_off: u32,
    score_off: u32,
    _pad: [u32; 2],
}

/// The shader's code for a type (`KV_F16`, `KV_Q8`, `KV_Q4`, `KV_TQ4`, `KV_TQ3`).
fn type_code(ty: KvType) -> u32 {
    match ty {
        KvType::F16 => 0,
        KvType::Q8 => 1,
        KvType::Q4 => 2,
        KvType::Tq4 => 3,
        KvType::Tq3 => 4,
    }
}

fn side_uniform(s: &SideLayout, base: u32) -> SideUniform {
    SideUniform {
        ty: type_code(s.ty),
        head_dim: s.head_dim,
        recent: s.recent.slots,
        sink_off: base + s.sinks.offset,
        recent_off: base + s.recent.offset,
        ring_off: base + s.ring.offset,
        ring_head_words: s.ty.words_per_head(s.head_dim),
        mean_off: if s.centered() {
            base + s.mean.offset
        } else {
            u32::MAX
        },
        tag_off: base + s.tags.offset,
        ring_slot_words: s.ring.words,
        _pad: [0; 2],
    }
}

fn layout_uniform(l: &LayerLayout) -> Result<LayoutUniform> {
    let n = l.shape.n_kv_heads;
    let v_base = u32::try_from(l.k.words())
        .ok()
        .filter(|_| l.k.words() + l.v.words() <= u64::from(u32::MAX))
        .ok_or_else(|| Error::InvalidArgument("kv cache: one layer exceeds 16 GiB".into()))?;
    Ok(LayoutUniform {
        n_kv_heads: n,
        sinks: l.policy.sinks,
        window: l.policy.window,
        ring_slots: l.policy.ring_slots,
        k: side_uniform(&l.k, 0),
        v: side_uniform(&l.v, v_base),
        table_off: l.table.map_or(u32::MAX, |t| t.offset),
        score_off: l.table.map_or(u32::MAX, |t| t.score_off()),
        _pad: [0; 2],
    })
}

/// Bytes of the uniform a cache keeps beside its buffer.
pub const LAYOUT_UNIFORM_BYTES: u64 = size_of::<LayoutUniform>() as u64;

/// One layer's KV cache on the device.
pub struct KvLayerCache {
    /// K then V.
    pub buffer: GpuBuffer,
    /// The layout uniform the kernels read.
    pub uniform: GpuBuffer,
    pub layout: LayerLayout,
}

impl KvLayerCache {
    /// Allocates (through the counting allocator) a zeroed cache with `layout`.
    pub fn new(ctx: &GpuContext, layout: LayerLayout) -> Result<Self> {
        let uniform = step::uniform(ctx, "kv layout", &layout_uniform(&layout)?)?;
        let bytes = layout.bytes();
        let max = ctx.limits().max_storage_buffer_binding_size;
        if bytes > max {
            return Err(Error::Gpu(format!(
                "one layer's KV cache needs {bytes} bytes, over this device's {max}-byte binding \
                 limit: use a smaller --window or a smaller cache type"
            )));
        }
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        Ok(Self {
            buffer: ctx.create_buffer("kv cache", bytes, usage)?,
            uniform,
            layout,
        })
    }

    /// Device bytes of a cache with `layout` (buffer and uniform).
    pub fn device_bytes(layout: &LayerLayout) -> u64 {
        layout.bytes() + LAYOUT_UNIFORM_BYTES
    }
}

/// Which half of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    K,
    V,
}

/// What the cache holds for head `kvh` of position `j` after `n_kv` positions were written,
/// decoded from the cache's words (read back from the device). For tests and tools.
pub fn decode_at(
    layout: &LayerLayout,
    words: &[u32],
    side: Side,
    j: u32,
    kvh: u32,
    n_kv: u32,
) -> Vec<f32> {
    let (s, base) = match side {
        Side::K => (&layout.k, 0usize),
        Side::V => (&layout.v, layout.k.words() as usize),
    };
    let n = layout.shape.n_kv_heads;
    let tags = &words[base + s.tags.offset as usize..][..s.tags.slots as usize];
    let slot = ring_slot(layout, words, j);
    let (region, ty) = region_of(layout, s, j, slot, n_kv, Some(tags));
    let head_words = ty.words_per_head(s.head_dim);
    let slot = base + region.0 as usize;
    let start = slot + (kvh * head_words) as usize;
    let codes = &words[start..start + head_words as usize];
    let mut values: Vec<f32> = match ty.codebook_bits() {
        Some(bits) => {
            let groups = s.head_dim / TQ_GROUP;
            let scales = slot + (n * head_words) as usize;
            codes
                .chunks_exact(codes.len() / groups as usize)
                .enumerate()
                .flat_map(|(g, c)| {
                    let byte = (kvh * groups) as usize + g;
                    let e = (words[scales + byte / 4] >> (8 * (byte % 4))) & 0xff;
                    decode_group(bits, c, e)
                })
                .collect()
        }
        None => codes
            .chunks_exact(ty.words_per_block() as usize)
            .flat_map(|b| decode_block(ty, b))
            .collect(),
    };
    if s.centered() && ty == s.ty && ty.is_quantized() {
        let mb = base + (s.mean.offset + kvh * s.head_dim) as usize;
        for (v, m) in values.iter_mut().zip(&words[mb..mb + s.head_dim as usize]) {
            *v += f32::from_bits(*m);
        }
    }
    values
}

/// The ring slot position `j` is in: by position, or under the importance policy the slot
/// the table in `words` (the layer's buffer) gives it (0 if it holds no such position).
fn ring_slot(l: &LayerLayout, words: &[u32], j: u32) -> u32 {
    match l.table {
        None => j.wrapping_sub(l.policy.sinks) % l.policy.ring_slots,
        Some(t) => words[t.offset as usize..][..2 * t.ring_slots as usize]
            .chunks_exact(2)
            .position(|pair| pair[0] == j + 1)
            .unwrap_or(0) as u32,
    }
}

/// (first word of the slot, words per slot) and the type position `j`, in ring slot `slot`,
/// is stored in.
/// `tags`: the side's recent-slot tags as stored; a recent copy whose tag is not `j + 1` is
/// not read (as in `kv_locate`). `None`: every copy in range holds its position (a cache
/// written in order, never rolled back).
fn region_of(
    l: &LayerLayout,
    s: &SideLayout,
    j: u32,
    slot: u32,
    n_kv: u32,
    tags: Option<&[u32]>,
) -> ((u32, u32), KvType) {
    if j < l.policy.sinks {
        return (
            (s.sinks.offset + j * s.sinks.words, s.sinks.words),
            KvType::F16,
        );
    }
    let recent = j.checked_rem(s.recent.slots);
    let tagged = |r: u32| tags.is_none_or(|t| t[r as usize] == j + 1);
    if let Some(r) = recent.filter(|&r| j + s.recent.slots >= n_kv && tagged(r)) {
        return (
            (s.recent.offset + r * s.recent.words, s.recent.words),
            KvType::F16,
        );
    }
    ((s.ring.offset + slot * s.ring.words, s.ring.words), s.ty)
}

/// The values attention reads for head `kvh` of position `j` (given as f32, as written) after
/// `n_kv` positions: rounded through the format of the region `j` lives in, centered on
/// `mean` (all heads, from [`first_write_mean`]) when the side is. The CPU twin of `kv_write`
/// followed by a read.
pub fn stored_ref(
    layout: &LayerLayout,
    side: Side,
    j: u32,
    kvh: u32,
    n_kv: u32,
    head: &[f32],
    mean: &[f32],
) -> Vec<f32> {
    let s = match side {
        Side::K => &layout.k,
        Side::V => &layout.v,
    };
    let (_, ty) = region_of(layout, s, j, 0, n_kv, None);
    if ty.is_quantized() && s.centered() {
        let mu = &mean[(kvh * s.head_dim) as usize..][..s.head_dim as usize];
        let centered: Vec<f32> = head.iter().zip(mu).map(|(x, m)| x - m).collect();
        round_trip(ty, &centered)
            .iter()
            .zip(mu)
            .map(|(x, m)| x + m)
            .collect()
    } else {
        round_trip(ty, head)
    }
}

/// Tokens after the sinks the first batch needs for a key mean; fewer give a mean of 0.
/// Must match `MIN_MEAN_TOKENS` in `shaders/kv_write.wgsl`.
pub const MIN_MEAN_TOKENS: u32 = 8;

/// The CPU twin of `kv_mean`: the per-channel key mean (f32 `[n_kv_heads, head_dim]`) a
/// session's first batch sets, from that batch's keys `k` (`[n, n_kv_heads, head_dim]`,
/// positions `0..n`): the mean over positions `sinks..n`, or zeros when fewer than
/// [`MIN_MEAN_TOKENS`] of them. Empty when keys are not centered.
pub fn first_write_mean(layout: &LayerLayout, k: &[f32]) -> Vec<f32> {
    if !layout.k.centered() {
        return Vec::new();
    }
    let width = (layout.shape.n_kv_heads * layout.shape.head_dim) as usize;
    let n = k.len() / width;
    let first = (layout.policy.sinks as usize).min(n);
    let count = n - first;
    let mut mean = vec![0f32; width];
    if count >= MIN_MEAN_TOKENS as usize {
        for row in k[first * width..n * width].chunks_exact(width) {
            for (m, x) in mean.iter_mut().zip(row) {
                *m += x;
            }
        }
        for m in &mut mean {
            *m /= count as f32;
        }
    }
    mean
}

/// The kv_write pipeline, built once per device.
pub struct KvWriteKernel {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
    mean: wgpu::ComputePipeline,
    max_groups: u32,
}

/// The bind group of one layer's write, built once.
pub struct KvWriteBinding {
    bind_group: wgpu::BindGroup,
    blocks_per_token: u32,
    /// Threads of `kv_mean` (K's channels), 0 when keys are not centered.
    mean_threads: u32,
    max_tokens: u32,
}

impl KvWriteKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let source = shaders::kv_source(shaders::KV_WRITE_TEMPLATE)?;
        let (layout, mut pipelines) = pipeline::build_with_layout(
            ctx,
            "kv_write",
            &[
                pipeline::uniform_entry(0),
                pipeline::uniform_entry(1),
                pipeline::storage_entry(2, true),
                pipeline::storage_entry(3, true),
                pipeline::storage_entry(4, false),
            ],
            &[(&source, &["kv_write", "kv_mean"])],
        )?;
        let mean = pipelines.remove(1);
        Ok(Self {
            layout,
            mean,
            pipeline: pipelines.remove(0),
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
        })
    }

    /// Binds the batch's `k` (f32 `[max_tokens, n_kv_heads * head_dim]`) and `v` (f32
    /// `[max_tokens, n_kv_heads * head_dim_v]`) to `cache`. A step may hold at most
    /// `ring_slots - window + 1` tokens (the batch the layout was planned for).
    pub fn bind(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        k: &GpuBuffer,
        v: &GpuBuffer,
        cache: &KvLayerCache,
        max_tokens: u32,
    ) -> Result<KvWriteBinding> {
        const K: &str = "kv_write";
        let l = &cache.layout;
        let batch = l.policy.ring_slots - l.policy.window + 1;
        if max_tokens > batch {
            return Err(Error::Gpu(format!(
                "{K}: batches of {max_tokens} tokens, but the cache was planned for {batch}"
            )));
        }
        let sh = l.shape;
        let mt = u64::from(max_tokens);
        let kw = u64::from(sh.n_kv_heads * sh.head_dim);
        let vw = u64::from(sh.n_kv_heads * sh.head_dim_v);
        step::check_storage(ctx, K, "k", k, step::bytes4(K, mt * kw)?)?;
        step::check_storage(ctx, K, "v", v, step::bytes4(K, mt * vw)?)?;
        step::check_storage(ctx, K, "cache", &cache.buffer, l.bytes())?;
        let bind_group = step::bind_group(
            ctx,
            K,
            &self.layout,
            &[&cache.uniform, step_buf, k, v, &cache.buffer],
        );
        Ok(KvWriteBinding {
            bind_group,
            blocks_per_token: sh.n_kv_heads * (sh.head_dim + sh.head_dim_v) / BLOCK,
            mean_threads: if l.k.centered() {
                sh.n_kv_heads * sh.head_dim
            } else {
                0
            },
            max_tokens,
        })
    }

    /// Records the write of the step's `n_tokens` tokens at position `pos` (the step
    /// uniform's), after setting the key mean when the step starts a session (`pos == 0`) and
    /// keys are centered. Other steps record no mean dispatch at all: the shader would do
    /// nothing, but a decode step would still pay for recording and launching it.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &KvWriteBinding,
        n_tokens: u32,
        pos: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens {
            return Err(Error::Gpu(format!(
                "kv_write: {n_tokens} tokens exceed the {} bound",
                binding.max_tokens
            )));
        }
        let threads = u64::from(n_tokens) * u64::from(binding.blocks_per_token);
        if threads == 0 {
            return Ok(());
        }
        pass.set_bind_group(0, &binding.bind_group, &[]);
        if binding.mean_threads > 0 && pos == 0 {
            pass.set_pipeline(&self.mean);
            crate::gpu::counters::dispatch(
                pass,
                binding.mean_threads.div_ceil(WORKGROUP_SIZE),
                1,
                1,
            );
        }
        let (x, y) = step::thread_grid(self.max_groups, "kv_write", threads, WORKGROUP_SIZE)?;
        pass.set_pipeline(&self.pipeline);
        crate::gpu::counters::dispatch(pass, x, y, 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniforms_match_the_shader() {
        assert_eq!(size_of::<SideUniform>(), 48);
        assert_eq!(size_of::<LayoutUniform>(), 128);
    }
}
