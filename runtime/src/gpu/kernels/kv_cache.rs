//! One layer's KV cache and the `kv_write` kernel that appends a batch to it.
//!
//! Layout ([`KvFormat::F16`]): K `[capacity, n_kv_heads, head_dim]` and V `[capacity,
//! n_kv_heads, head_dim_v]` as IEEE f16, two to a `u32` (`pack2x16float`: even element in
//! the low half), so no shader needs the optional f16 feature. Slot `j` holds absolute
//! position `j`; a batch at `step.pos` fills slots `pos .. pos + n_tokens`.
//!
//! Other cache formats (a 4-bit, sliding-window ring buffer is next) implement [`KvCache`]:
//! attention binds a cache through the trait and checks [`KvCache::format`], so a new format
//! comes with its own write and attention shader variants. Shader: `shaders/kv_write.wgsl`.

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::step::{self, Step};
use crate::gpu::shaders;
use crate::{Error, Result};

/// Threads per workgroup; must match `shaders/kv_write.wgsl`.
const WORKGROUP_SIZE: u32 = 256;

/// How a cache stores its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvFormat {
    /// f16 pairs packed in u32, slot = position.
    F16,
}

/// The head shape of one layer's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvShape {
    pub n_kv_heads: u32,
    /// Width of a key head (even).
    pub head_dim: u32,
    /// Width of a value head (even).
    pub head_dim_v: u32,
}

impl KvShape {
    /// u32 words of one token's keys: `n_kv_heads * head_dim / 2`.
    pub fn k_words(&self) -> u32 {
        self.n_kv_heads * self.head_dim / 2
    }

    /// u32 words of one token's values.
    pub fn v_words(&self) -> u32 {
        self.n_kv_heads * self.head_dim_v / 2
    }

    fn check(&self) -> Result<()> {
        if self.n_kv_heads == 0
            || self.head_dim == 0
            || self.head_dim_v == 0
            || self.head_dim % 2 != 0
            || self.head_dim_v % 2 != 0
        {
            return Err(Error::Gpu(format!(
                "kv cache: bad shape {self:?} (head dims must be even and nonzero)"
            )));
        }
        Ok(())
    }
}

/// One layer's KV cache on the device, as the attention kernels see it.
pub trait KvCache {
    /// The element format; kernels refuse formats they do not read.
    fn format(&self) -> KvFormat;
    fn shape(&self) -> KvShape;
    /// Positions the cache holds.
    fn capacity(&self) -> u32;
    /// Device bytes one token takes in this layer (K and V).
    fn bytes_per_token(&self) -> u64;
    /// The key storage buffer.
    fn keys(&self) -> &GpuBuffer;
    /// The value storage buffer.
    fn values(&self) -> &GpuBuffer;
}

/// The f16 KV cache of one layer (see the module docs for the layout).
pub struct KvLayerCache {
    pub k: GpuBuffer,
    pub v: GpuBuffer,
    pub capacity: u32,
    pub shape: KvShape,
}

impl KvLayerCache {
    /// Allocates (through the counting allocator) a zeroed cache of `capacity` positions.
    pub fn new(ctx: &GpuContext, shape: KvShape, capacity: u32) -> Result<Self> {
        shape.check()?;
        if capacity == 0 {
            return Err(Error::Gpu("kv cache: zero capacity".into()));
        }
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let k_bytes = u64::from(capacity) * u64::from(shape.k_words()) * 4;
        let v_bytes = u64::from(capacity) * u64::from(shape.v_words()) * 4;
        Ok(Self {
            k: ctx.create_buffer("kv cache k", k_bytes, usage)?,
            v: ctx.create_buffer("kv cache v", v_bytes, usage)?,
            capacity,
            shape,
        })
    }

    /// A cache whose first positions hold `k` and `v` (f32 `[n, n_kv_heads, head_dim(_v)]`),
    /// rounded to f16 on the CPU. For tests and tools.
    pub fn from_host(
        ctx: &GpuContext,
        shape: KvShape,
        capacity: u32,
        k: &[f32],
        v: &[f32],
    ) -> Result<Self> {
        let cache = Self::new(ctx, shape, capacity)?;
        if k.len() > cache.k.size() as usize / 2 || v.len() > cache.v.size() as usize / 2 {
            return Err(Error::Gpu("kv cache: more positions than capacity".into()));
        }
        if k.len() % 2 != 0 || v.len() % 2 != 0 {
            return Err(Error::Gpu("kv cache: odd element count".into()));
        }
        ctx.queue()
            .write_buffer(&cache.k, 0, bytemuck::cast_slice(&pack_f16(k)));
        ctx.queue()
            .write_buffer(&cache.v, 0, bytemuck::cast_slice(&pack_f16(v)));
        Ok(cache)
    }
}

impl KvCache for KvLayerCache {
    fn format(&self) -> KvFormat {
        KvFormat::F16
    }
    fn shape(&self) -> KvShape {
        self.shape
    }
    fn capacity(&self) -> u32 {
        self.capacity
    }
    fn bytes_per_token(&self) -> u64 {
        u64::from(self.shape.k_words() + self.shape.v_words()) * 4
    }
    fn keys(&self) -> &GpuBuffer {
        &self.k
    }
    fn values(&self) -> &GpuBuffer {
        &self.v
    }
}

/// `x` rounded to the nearest f16 (ties to even) and back.
pub fn f16_round(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// Packs f32 values as f16 pairs, the even element in the low half (like `pack2x16float`).
///
/// # Panics
/// On an odd length.
pub fn pack_f16(values: &[f32]) -> Vec<u32> {
    assert!(values.len() % 2 == 0, "pack_f16: odd length");
    values
        .chunks_exact(2)
        .map(|p| {
            u32::from(half::f16::from_f32(p[0]).to_bits())
                | (u32::from(half::f16::from_f32(p[1]).to_bits()) << 16)
        })
        .collect()
}

/// Unpacks f16 pairs to f32.
pub fn unpack_f16(words: &[u32]) -> Vec<f32> {
    words
        .iter()
        .flat_map(|&w| {
            [
                half::f16::from_bits(w as u16).to_f32(),
                half::f16::from_bits((w >> 16) as u16).to_f32(),
            ]
        })
        .collect()
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k_row: u32,
    v_row: u32,
    capacity: u32,
    _pad: u32,
}

/// The kv_write pipeline, built once per device.
pub struct KvWriteKernel {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
    max_groups: u32,
}

/// The bind group of one layer's write, built once.
pub struct KvWriteBinding {
    bind_group: wgpu::BindGroup,
    words_per_token: u32,
    max_tokens: u32,
    _params: GpuBuffer,
}

impl KvWriteKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let (layout, mut pipelines) = step::build_pipelines(
            ctx,
            "kv_write",
            shaders::KV_WRITE,
            &[
                step::uniform_entry(0),
                step::uniform_entry(1),
                step::storage_entry(2, true),
                step::storage_entry(3, true),
                step::storage_entry(4, false),
                step::storage_entry(5, false),
            ],
            &["kv_write"],
        );
        Ok(Self {
            layout,
            pipeline: pipelines.remove(0),
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
        })
    }

    /// Binds the batch's `k` (f32 `[max_tokens, n_kv_heads * head_dim]`, roped) and `v`
    /// (f32 `[max_tokens, n_kv_heads * head_dim_v]`) to `cache`. The caller keeps
    /// `step.pos + n_tokens <= capacity`; slots past the capacity are not written.
    pub fn bind(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        k: &GpuBuffer,
        v: &GpuBuffer,
        cache: &dyn KvCache,
        max_tokens: u32,
    ) -> Result<KvWriteBinding> {
        if cache.format() != KvFormat::F16 {
            return Err(Error::Gpu(format!(
                "kv_write: cache format {:?} not supported",
                cache.format()
            )));
        }
        let shape = cache.shape();
        shape.check()?;
        let (kw, vw) = (u64::from(shape.k_words()), u64::from(shape.v_words()));
        let mt = u64::from(max_tokens);
        step::check_storage(
            ctx,
            "kv_write",
            "k",
            k,
            step::bytes4("kv_write", mt * kw * 2)?,
        )?;
        step::check_storage(
            ctx,
            "kv_write",
            "v",
            v,
            step::bytes4("kv_write", mt * vw * 2)?,
        )?;
        let cap = u64::from(cache.capacity());
        step::check_storage(ctx, "kv_write", "cache k", cache.keys(), cap * kw * 4)?;
        step::check_storage(ctx, "kv_write", "cache v", cache.values(), cap * vw * 4)?;
        let params = step::uniform(
            ctx,
            "kv_write params",
            &Params {
                k_row: shape.k_words(),
                v_row: shape.v_words(),
                capacity: cache.capacity(),
                _pad: 0,
            },
        )?;
        let bind_group = step::bind_group(
            ctx,
            "kv_write",
            &self.layout,
            &[&params, step_buf, k, v, cache.keys(), cache.values()],
        );
        Ok(KvWriteBinding {
            bind_group,
            words_per_token: shape.k_words().max(shape.v_words()),
            max_tokens,
            _params: params,
        })
    }

    /// Records the write of `n_tokens` tokens (the step's n_tokens) at slot `step.pos`.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &KvWriteBinding,
        n_tokens: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens {
            return Err(Error::Gpu(format!(
                "kv_write: {n_tokens} tokens exceed the {} bound",
                binding.max_tokens
            )));
        }
        let threads = u64::from(n_tokens) * u64::from(binding.words_per_token);
        if threads == 0 {
            return Ok(());
        }
        let (x, y) = step::thread_grid(self.max_groups, "kv_write", threads, WORKGROUP_SIZE)?;
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &binding.bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
        Ok(())
    }

    /// Writes `k`/`v` (f32, one batch) at position `pos` into `cache` in one submit.
    /// For tests and tools; read the cache back with [`GpuContext::read_bytes`].
    pub fn run(
        ctx: &GpuContext,
        cache: &KvLayerCache,
        pos: u32,
        k: &[f32],
        v: &[f32],
    ) -> Result<()> {
        let shape = cache.shape;
        let kt = (shape.k_words() * 2) as usize;
        let vt = (shape.v_words() * 2) as usize;
        if k.len() % kt != 0 || v.len() % vt != 0 || k.len() / kt != v.len() / vt {
            return Err(Error::Gpu("kv_write: ragged k/v".into()));
        }
        let n_tokens = (k.len() / kt) as u32;
        if pos + n_tokens > cache.capacity {
            return Err(Error::Gpu(format!(
                "kv_write: positions {pos}..{} exceed the capacity {}",
                pos + n_tokens,
                cache.capacity
            )));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        let kernel = Self::new(ctx)?;
        let step_buf = step::create_step_buffer(ctx, Step::new(pos, n_tokens))?;
        let gk = step::input_buffer(ctx, "kv_write k", k)?;
        let gv = step::input_buffer(ctx, "kv_write v", v)?;
        let b = kernel.bind(ctx, &step_buf, &gk, &gv, cache, n_tokens)?;
        step::submit_pass(ctx, "kv_write", |pass| kernel.encode(pass, &b, n_tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        let v = [1.0, -2.5, 65504.0, 1e-3];
        let back = unpack_f16(&pack_f16(&v));
        for (a, b) in v.iter().zip(&back) {
            assert_eq!(f16_round(*a), *b);
        }
        assert_eq!(pack_f16(&[1.0, 0.0])[0], 0x3c00);
    }

    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<Params>(), 16);
    }
}
