//! Running one kernel on the device outside a forward pass: upload inputs, bind, record one
//! pass, submit, read the output back. The self-check and the kernel tests both go through
//! here, so every op is exercised the same way everywhere.

use crate::gpu::kernels::attention::{AttentionKernel, AttentionParams};
use crate::gpu::kernels::ffn_act::Activation;
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::gpu::kernels::rope::RopeParams;
use crate::gpu::kernels::step::{create_step_buffer, Step};
use crate::gpu::kernels::Kernels;
use crate::gpu::weights::GpuWeight;
use crate::gpu::{GpuBuffer, GpuContext};
use crate::kv::LayerLayout;
use crate::{Error, Result};

/// A device and a set of kernels to run single ops with.
pub struct Harness<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
}

fn ragged(op: &str) -> Error {
    Error::InvalidArgument(format!("{op}: the inputs do not divide into whole tokens"))
}

fn tokens(op: &str, len: usize, per_token: usize) -> Result<u32> {
    if per_token == 0 || len % per_token != 0 {
        return Err(ragged(op));
    }
    u32::try_from(len / per_token).map_err(|_| ragged(op))
}

impl<'a> Harness<'a> {
    pub fn new(ctx: &'a GpuContext, kernels: &'a Kernels) -> Self {
        Self { ctx, kernels }
    }

    /// A storage buffer holding `data` (at least 4 bytes), readable back.
    pub fn input(&self, label: &str, data: &[f32]) -> Result<GpuBuffer> {
        self.input_bytes(label, bytemuck::cast_slice(data))
    }

    /// A storage buffer holding `data` as u32 (token ids).
    pub fn input_u32(&self, label: &str, data: &[u32]) -> Result<GpuBuffer> {
        self.input_bytes(label, bytemuck::cast_slice(data))
    }

    fn input_bytes(&self, label: &str, data: &[u8]) -> Result<GpuBuffer> {
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        if data.is_empty() {
            return self.ctx.create_buffer(label, 4, usage);
        }
        self.ctx.create_buffer_init(label, data, usage)
    }

    /// An output buffer of `len` f32 filled with NaN, so what a kernel leaves untouched reads
    /// back as NaN.
    pub fn output(&self, label: &str, len: usize) -> Result<GpuBuffer> {
        self.input(label, &vec![f32::NAN; len.max(1)])
    }

    /// A step uniform for `n_tokens` tokens from position `pos`.
    pub fn step(&self, pos: u32, n_tokens: u32) -> Result<GpuBuffer> {
        create_step_buffer(self.ctx, Step::new(pos, n_tokens))
    }

    /// Records `record` in one compute pass of one encoder and submits it.
    pub fn submit(
        &self,
        label: &str,
        record: impl FnOnce(&mut wgpu::ComputePass<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut encoder = self
            .ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
            let mut pass = crate::gpu::counters::begin_pass(&mut encoder, label);
            record(&mut pass)?;
        }
        self.ctx.submit([encoder.finish()]);
        Ok(())
    }

    /// The first `len` f32 of `buffer`.
    pub fn read(&self, buffer: &GpuBuffer, len: usize) -> Result<Vec<f32>> {
        self.ctx.read_f32(buffer, len)
    }

    /// `a + b`.
    pub fn add(&self, a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
        if a.len() != b.len() {
            return Err(Error::InvalidArgument(format!(
                "add: operands differ in length ({} vs {})",
                a.len(),
                b.len()
            )));
        }
        if a.is_empty() {
            return Ok(Vec::new());
        }
        let width = u32::try_from(a.len()).map_err(|_| ragged("add"))?;
        let k = &self.kernels.add;
        let step = self.step(0, 1)?;
        let (ga, gb) = (self.input("add a", a)?, self.input("add b", b)?);
        let out = self.output("add out", a.len())?;
        let binding = k.bind(self.ctx, &step, &ga, &gb, &out, width, 1)?;
        self.submit("add", |pass| k.encode(pass, &binding, 1))?;
        self.read(&out, a.len())
    }

    /// `rms_norm(x) * weight` over rows of `width` (one row a token).
    pub fn rms_norm(
        &self,
        x: &[f32],
        width: usize,
        weight: Option<&[f32]>,
        eps: f32,
    ) -> Result<Vec<f32>> {
        let rows = tokens("rms_norm", x.len(), width)?;
        if rows == 0 {
            return Ok(Vec::new());
        }
        let k = &self.kernels.rms_norm;
        let step = self.step(0, rows)?;
        let gx = self.input("rms_norm x", x)?;
        let gw = weight
            .map(|w| self.input("rms_norm weight", w))
            .transpose()?;
        let out = self.output("rms_norm out", x.len())?;
        let b = k.bind(
            self.ctx,
            &step,
            &gx,
            gw.as_ref(),
            &out,
            width as u32,
            1,
            eps,
            rows,
        )?;
        self.submit("rms_norm", |pass| k.encode(pass, &b, rows))?;
        self.read(&out, x.len())
    }

    /// RoPE of `x` (`[n_tokens, n_heads, head_dim]`, token `t` at position `pos + t`): in
    /// place, or (`from`) out of place into a second buffer as the sink query is.
    pub fn rope(&self, x: &[f32], pos: u32, params: &RopeParams, from: bool) -> Result<Vec<f32>> {
        params.check()?;
        let n_tokens = tokens("rope", x.len(), (params.n_heads * params.head_dim) as usize)?;
        if n_tokens == 0 {
            return Ok(Vec::new());
        }
        let k = &self.kernels.rope;
        let step = self.step(pos, n_tokens)?;
        let gx = self.input("rope x", x)?;
        if from {
            let out = self.output("rope out", x.len())?;
            let b = k.bind_from(self.ctx, &step, &gx, &out, params, n_tokens)?;
            self.submit("rope", |pass| k.encode(pass, &b, n_tokens))?;
            self.read(&out, x.len())
        } else {
            let b = k.bind(self.ctx, &step, &gx, params, n_tokens)?;
            self.submit("rope", |pass| k.encode(pass, &b, n_tokens))?;
            self.read(&gx, x.len())
        }
    }

    /// `act(gate) * up`, `width` values a token.
    pub fn ffn_act(
        &self,
        gate: &[f32],
        up: &[f32],
        width: usize,
        act: Activation,
    ) -> Result<Vec<f32>> {
        let n_tokens = tokens("ffn_act", gate.len(), width)?;
        if up.len() != gate.len() {
            return Err(ragged("ffn_act"));
        }
        if n_tokens == 0 {
            return Ok(Vec::new());
        }
        let k = &self.kernels.ffn_act;
        let step = self.step(0, n_tokens)?;
        let (g, u) = (self.input("ffn gate", gate)?, self.input("ffn up", up)?);
        let out = self.output("ffn out", gate.len())?;
        let b = k.bind(self.ctx, &step, &g, &u, &out, width as u32, act, n_tokens)?;
        self.submit("ffn_act", |pass| k.encode(pass, &b, n_tokens))?;
        self.read(&out, gate.len())
    }

    /// `x * s` in place, `width` values a token.
    pub fn scale(&self, x: &[f32], width: usize, s: f32) -> Result<Vec<f32>> {
        let n_tokens = tokens("scale", x.len(), width)?;
        if n_tokens == 0 {
            return Ok(Vec::new());
        }
        let k = &self.kernels.ffn_act;
        let step = self.step(0, n_tokens)?;
        let gx = self.input("scale x", x)?;
        let b = k.bind_scale(self.ctx, &step, &gx, width as u32, s, n_tokens)?;
        self.submit("scale", |pass| k.encode_scale(pass, &b, n_tokens))?;
        self.read(&gx, x.len())
    }

    /// The Hadamard rotation of `x` (`[n_tokens, rows_per_token, width]`) in place.
    pub fn hadamard(&self, x: &[f32], width: u32, rows_per_token: u32) -> Result<Vec<f32>> {
        let n_tokens = tokens("hadamard", x.len(), (width * rows_per_token) as usize)?;
        if n_tokens == 0 {
            return Ok(Vec::new());
        }
        let k = &self.kernels.hadamard;
        let step = self.step(0, n_tokens)?;
        let gx = self.input("hadamard x", x)?;
        let b = k.bind(self.ctx, &step, &gx, width, rows_per_token, n_tokens)?;
        self.submit("hadamard", |pass| k.encode(pass, &b, n_tokens))?;
        self.read(&gx, x.len())
    }

    /// `W x` for `n_tokens` rows of `x`; returns `[n_tokens, weight.rows()]`.
    pub fn matmul(&self, weight: &GpuWeight, x: &[f32], n_tokens: u32) -> Result<Vec<f32>> {
        let (k, n) = (weight.cols() as usize, weight.rows() as usize);
        if n_tokens == 0 {
            return Ok(Vec::new());
        }
        if x.len() != k * n_tokens as usize {
            return Err(ragged("matmul"));
        }
        // Whole vec4s, as the shader reads x.
        let mut padded = x.to_vec();
        padded.resize(x.len().next_multiple_of(4), 0.0);
        let gx = self.input("matmul x", &padded)?;
        let len = n * n_tokens as usize;
        let gy = self.output("matmul y", len)?;
        let step = self.step(0, n_tokens)?;
        let kernel = &self.kernels.matmul;
        let b = kernel.bind(self.ctx, weight, &gx, &gy, &step, n_tokens)?;
        self.submit("matmul", |pass| kernel.encode(pass, &b, n_tokens))?;
        self.read(&gy, len)
    }

    /// The rows of `ids` times `scale`; a token whose id is no row reads back as NaN.
    pub fn embedding(&self, weight: &GpuWeight, ids: &[u32], scale: f32) -> Result<Vec<f32>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let n_tokens = u32::try_from(ids.len()).map_err(|_| ragged("embedding"))?;
        let gids = self.input_u32("embedding ids", ids)?;
        let len = ids.len() * weight.cols() as usize;
        let out = self.output("embedding out", len)?;
        let step = self.step(0, n_tokens)?;
        let k = &self.kernels.embedding;
        let b = k.bind(self.ctx, weight, &gids, &out, &step, scale, n_tokens)?;
        self.submit("embedding", |pass| k.encode(pass, &b, n_tokens))?;
        self.read(&out, len)
    }

    /// Writes `k` / `v` (f32, `n` tokens) into `cache` at positions `pos..pos + n`.
    pub fn kv_write(&self, cache: &KvLayerCache, pos: u32, k: &[f32], v: &[f32]) -> Result<()> {
        let sh = cache.layout.shape;
        let n_tokens = tokens("kv_write", k.len(), (sh.n_kv_heads * sh.head_dim) as usize)?;
        if tokens(
            "kv_write",
            v.len(),
            (sh.n_kv_heads * sh.head_dim_v) as usize,
        )? != n_tokens
        {
            return Err(ragged("kv_write"));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        let step = self.step(pos, n_tokens)?;
        let (gk, gv) = (self.input("kv_write k", k)?, self.input("kv_write v", v)?);
        let w = &self.kernels.kv_write;
        let b = w.bind(self.ctx, &step, &gk, &gv, cache, n_tokens)?;
        self.submit("kv_write", |pass| w.encode(pass, &b, n_tokens, pos))
    }

    /// The cache's words, as stored on the device.
    pub fn cache_words(&self, cache: &KvLayerCache) -> Result<Vec<u32>> {
        let bytes = self.ctx.read_bytes(&cache.buffer, 0, cache.buffer.size())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Attention as a forward pass runs it: `k` / `v` (f32 `[n_kv, n_kv_heads, head_dim(_v)]`,
    /// positions `0..n_kv`) are written into a fresh cache laid out as `layout` in steps of at
    /// most its batch, the queries' own step last and recorded in the same pass as the
    /// attention over `q` / `q_sink` (`[n_tokens, n_heads, head_dim]`, the last `n_tokens`
    /// positions). Returns `[n_tokens, n_heads, head_dim_v]`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &[f32],
        q_sink: &[f32],
        k: &[f32],
        v: &[f32],
        layout: &LayerLayout,
        params: &AttentionParams,
    ) -> Result<Vec<f32>> {
        let qt = (params.n_heads * params.head_dim) as usize;
        let kt = (params.n_kv_heads * params.head_dim) as usize;
        let vt = (params.n_kv_heads * params.head_dim_v) as usize;
        let n_tokens = tokens("attention", q.len(), qt)?;
        let n_kv = tokens("attention", k.len(), kt)?;
        if n_tokens == 0
            || q_sink.len() != q.len()
            || tokens("attention", v.len(), vt)? != n_kv
            || n_kv < n_tokens
            || n_tokens > layout.max_batch()
        {
            return Err(ragged("attention"));
        }
        let cache = KvLayerCache::new(self.ctx, *layout)?;
        let pos = n_kv - n_tokens;
        let mut p = 0;
        while p < pos {
            let n = (pos - p).min(layout.max_batch());
            let (a, b) = (p as usize, (p + n) as usize);
            self.kv_write(&cache, p, &k[a * kt..b * kt], &v[a * vt..b * vt])?;
            p += n;
        }
        let step = self.step(pos, n_tokens)?;
        let gk = self.input("attention k", &k[pos as usize * kt..])?;
        let gv = self.input("attention v", &v[pos as usize * vt..])?;
        let writer = &self.kernels.kv_write;
        let wb = writer.bind(self.ctx, &step, &gk, &gv, &cache, n_tokens)?;
        let gq = self.input("attention q", q)?;
        let gqs = self.input("attention q sink", q_sink)?;
        let out_len = n_tokens as usize * (params.n_heads * params.head_dim_v) as usize;
        let out = self.output("attention out", out_len)?;
        let attn = &self.kernels.attention;
        let partials = self.ctx.create_buffer(
            "attention partials",
            AttentionKernel::partials_bytes(attn.strategy(), params, layout, n_tokens).max(4),
            wgpu::BufferUsages::STORAGE,
        )?;
        let b = attn.bind(
            self.ctx, &step, &gq, &gqs, &cache, &out, &partials, params, n_tokens,
        )?;
        self.submit("attention", |pass| {
            writer.encode(pass, &wb, n_tokens, pos)?;
            attn.encode(pass, &b, n_tokens, n_kv)
        })?;
        self.read(&out, out_len)
    }
}
