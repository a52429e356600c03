//! A session's forward pass: scratch buffers, the bound kernel invocations ("ops") that an
//! architecture file lays out once, and the step that records them all into one command
//! encoder, submits once and reads back only the logits sampling or scoring needs.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gpu::kernels::attention::{AttentionKernel, AttentionParams};
use crate::gpu::kernels::ffn_act::Activation;
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::gpu::kernels::rope::RopeParams;
use crate::gpu::kernels::step::{create_step_buffer, write_step, Step};
use crate::gpu::GpuBuffer;
use crate::kv::{HeadShape, LayerLayout};
use crate::model::ModelConfig;

/// What an op needs to know about the step being recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepInfo {
    pub n_tokens: u32,
    /// Cache entries valid after this step's write.
    pub n_kv: u32,
}

/// Records a bound kernel's dispatches for one step.
type Record<'e> = Box<dyn Fn(&mut wgpu::ComputePass<'_>, StepInfo) -> Result<()> + 'e>;

/// One bound kernel invocation: records its dispatches into a compute pass.
pub(crate) struct Op<'e> {
    /// The kernel's name, for profiles.
    pub label: &'static str,
    /// What it works on (a weight's name), for profiles.
    pub detail: String,
    record: Record<'e>,
}

impl<'e> Op<'e> {
    fn new(
        label: &'static str,
        record: impl Fn(&mut wgpu::ComputePass<'_>, StepInfo) -> Result<()> + 'e,
    ) -> Self {
        Self {
            label,
            detail: String::new(),
            record: Box::new(record),
        }
    }

    fn on(mut self, detail: &str) -> Self {
        self.detail = detail.to_string();
        self
    }
}

/// The activation buffers of one session, sized for `max_tokens` tokens per step.
pub(crate) struct Scratch {
    pub max_tokens: u32,
    /// The per-step uniform of the body and of the all-rows head.
    pub step: GpuBuffer,
    /// A uniform fixed at one token, for the last-row head.
    pub step_one: GpuBuffer,
    pub ids: GpuBuffer,
    /// The residual stream, and its value half-way through a layer.
    pub x: GpuBuffer,
    pub x2: GpuBuffer,
    /// Normalized input of a projection.
    pub h: GpuBuffer,
    /// Query, key, value projections and (where q/k are normalized) their raw form.
    pub q: GpuBuffer,
    /// The query roped at its position inside the cache, for the attention sinks.
    pub q_sink: GpuBuffer,
    pub k: GpuBuffer,
    pub v: GpuBuffer,
    pub q_raw: GpuBuffer,
    pub k_raw: GpuBuffer,
    pub attn: GpuBuffer,
    /// Attention's split partials, shared by every layer.
    pub partials: GpuBuffer,
    /// Output of a block (attention or feed-forward projection) and its normalized form.
    pub o: GpuBuffer,
    pub o2: GpuBuffer,
    pub gate: GpuBuffer,
    pub up: GpuBuffer,
    pub act: GpuBuffer,
    /// The last token's residual, normalized residual and logits.
    pub x_last: GpuBuffer,
    pub h_last: GpuBuffer,
    pub logits_last: GpuBuffer,
    pub staging_last: GpuBuffer,
}

impl Scratch {
    pub fn new(engine: &Engine, max_tokens: u32) -> Result<Self> {
        let ctx = &engine.gpu;
        let cfg = &engine.model.config;
        let t = max_tokens as u64;
        let storage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let buf =
            |label: &str, width: usize| ctx.create_buffer(label, t * width as u64 * 4, storage);
        let q_width = cfg.n_heads * cfg.head_dim;
        let k_width = cfg.n_kv_heads * cfg.head_dim;
        let v_width = cfg.n_kv_heads * cfg.head_dim_v;
        let attn_width = cfg.n_heads * cfg.head_dim_v;
        let one = |label: &str, width: usize| ctx.create_buffer(label, width as u64 * 4, storage);
        Ok(Self {
            max_tokens,
            step: create_step_buffer(ctx, Step::new(0, max_tokens))?,
            step_one: create_step_buffer(ctx, Step::new(0, 1))?,
            ids: ctx.create_buffer("token ids", t * 4, storage)?,
            x: buf("x", cfg.n_embd)?,
            x2: buf("x2", cfg.n_embd)?,
            h: buf("h", cfg.n_embd)?,
            q: buf("q", q_width)?,
            q_sink: buf("q sink", q_width)?,
            k: buf("k", k_width)?,
            v: buf("v", v_width)?,
            q_raw: buf("q raw", q_width)?,
            k_raw: buf("k raw", k_width)?,
            attn: buf("attn", attn_width)?,
            partials: ctx.create_buffer(
                "attention partials",
                partials_bytes(engine)?,
                wgpu::BufferUsages::STORAGE,
            )?,
            o: buf("o", cfg.n_embd)?,
            o2: buf("o2", cfg.n_embd)?,
            gate: buf("gate", cfg.n_ff)?,
            up: buf("up", cfg.n_ff)?,
            act: buf("act", cfg.n_ff)?,
            x_last: one("x last", cfg.n_embd)?,
            h_last: one("h last", cfg.n_embd)?,
            logits_last: one("logits last", cfg.vocab_size)?,
            staging_last: ctx.create_buffer(
                "logits staging",
                cfg.vocab_size as u64 * 4,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )?,
        })
    }
}

/// Bytes [`Scratch::new`] allocates without the partials, plus (when `scoring`) the all-rows
/// head's logits and their staging, for `max_tokens` tokens a step. Keep in step with
/// [`Scratch::new`] and [`Graph::ensure_head_all`]; the budget test checks the sum.
pub(crate) fn scratch_bytes(cfg: &ModelConfig, max_tokens: u32, scoring: bool) -> u64 {
    let t = u64::from(max_tokens);
    let f = 4u64;
    let q = (cfg.n_heads * cfg.head_dim) as u64;
    let k = (cfg.n_kv_heads * cfg.head_dim) as u64;
    let v = (cfg.n_kv_heads * cfg.head_dim_v) as u64;
    let attn = (cfg.n_heads * cfg.head_dim_v) as u64;
    let (e, ff, vocab) = (cfg.n_embd as u64, cfg.n_ff as u64, cfg.vocab_size as u64);
    let steps = 2 * size_of::<Step>() as u64;
    let ids = t * f;
    let per_token = 5 * e + 3 * q + 2 * k + v + attn + 3 * ff;
    let last = 2 * e + 2 * vocab;
    let head_all = if scoring { 2 * t * vocab } else { 0 };
    steps + ids + (t * per_token + last + head_all) * f
}

/// The head that turns every row of the batch into logits (perplexity), built on first use.
struct HeadAll<'e> {
    ops: Vec<Op<'e>>,
    logits: GpuBuffer,
    staging: GpuBuffer,
}

/// A session's bound forward pass.
pub(crate) struct Graph<'e> {
    engine: &'e Engine,
    pub scratch: Scratch,
    /// The layers' caches, which `body` is bound to.
    kv: Vec<KvLayerCache>,
    /// Embedding and every layer; leaves the residual stream in `scratch.x`.
    body: Vec<Op<'e>>,
    /// Final norm and logits of the last row, through `step_one`.
    head_last: Vec<Op<'e>>,
    head_all: Option<HeadAll<'e>>,
}

/// Which logits a step reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logits {
    /// The last token's row: `[vocab]`.
    Last,
    /// Every token's row: `[n_tokens, vocab]`.
    All,
}

impl<'e> Graph<'e> {
    pub fn new(engine: &'e Engine) -> Result<Self> {
        let cfg = &engine.model.config;
        let max_tokens = engine.batch_size() as u32;
        let scratch = Scratch::new(engine, max_tokens)?;
        let kv = layer_layouts(engine)?
            .into_iter()
            .map(|layout| KvLayerCache::new(&engine.gpu, layout))
            .collect::<Result<Vec<_>>>()?;
        let body = crate::arch::build(engine, &scratch, &kv)?;
        let b = Builder::new(engine, &scratch.step_one, 1);
        let head_last = vec![
            b.rms_norm(&scratch.x_last, "output_norm.weight", &scratch.h_last)?,
            b.matmul(
                output_weight_name(cfg),
                &scratch.h_last,
                &scratch.logits_last,
            )?,
        ];
        Ok(Self {
            engine,
            scratch,
            kv,
            body,
            head_last,
            head_all: None,
        })
    }

    /// Whether a session of `len` positions can go back to `to` and go on from there: the
    /// ring's spare slots (one batch) cover a rollback that short, and nothing is lost before
    /// the ring first wraps. (Recent f16 copies are tagged, so they never mislead.)
    pub fn can_roll_back(&self, len: usize, to: usize) -> bool {
        let back = len.saturating_sub(to);
        back <= self.scratch.max_tokens as usize
            || self.kv.iter().all(|c| {
                let p = &c.layout.policy;
                len <= (p.sinks + p.ring_slots) as usize
            })
    }

    /// Layer `layer`'s layout and cache words, read back.
    pub fn read_cache(&self, layer: usize) -> Result<(LayerLayout, Vec<u32>)> {
        let cache = self
            .kv
            .get(layer)
            .ok_or_else(|| Error::Unsupported(format!("no layer {layer}")))?;
        let bytes = self
            .engine
            .gpu
            .read_bytes(&cache.buffer, 0, cache.buffer.size())?;
        Ok((cache.layout, bytemuck::pod_collect_to_vec(&bytes)))
    }

    fn ensure_head_all(&mut self) -> Result<()> {
        if self.head_all.is_some() {
            return Ok(());
        }
        let ctx = &self.engine.gpu;
        let cfg = &self.engine.model.config;
        let bytes = u64::from(self.scratch.max_tokens) * cfg.vocab_size as u64 * 4;
        let logits = ctx.create_buffer(
            "logits all",
            bytes,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        )?;
        let staging = ctx.create_buffer(
            "logits all staging",
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let s = &self.scratch;
        let b = Builder::new(self.engine, &s.step, s.max_tokens);
        let ops = vec![
            b.rms_norm(&s.x, "output_norm.weight", &s.h)?,
            b.matmul(output_weight_name(cfg), &s.h, &logits)?,
        ];
        self.head_all = Some(HeadAll {
            ops,
            logits,
            staging,
        });
        Ok(())
    }

    /// Evaluates `ids` at positions `pos..pos + ids.len()` (at most `max_tokens` of them) in
    /// one submit, writing their keys and values into the cache, and returns the logits asked
    /// for: `[vocab]` for [`Logits::Last`], `[ids.len(), vocab]` for [`Logits::All`].
    pub fn step(&mut self, ids: &[u32], pos: u32, which: Logits) -> Result<Vec<f32>> {
        let n = ids.len() as u32;
        if n == 0 || n > self.scratch.max_tokens {
            return Err(Error::Gpu(format!(
                "a step of {n} tokens (1 to {} allowed)",
                self.scratch.max_tokens
            )));
        }
        if pos.checked_add(n).is_none_or(|end| end == u32::MAX) {
            return Err(Error::Unsupported(format!(
                "position {pos} is past the last one a session can reach"
            )));
        }
        if which == Logits::All {
            self.ensure_head_all()?;
        }
        let ctx = &self.engine.gpu;
        let cfg = &self.engine.model.config;
        let s = &self.scratch;
        write_step(ctx, &s.step, Step::new(pos, n));
        ctx.queue()
            .write_buffer(&s.ids, 0, bytemuck::cast_slice(ids));
        let info = StepInfo {
            n_tokens: n,
            n_kv: pos + n,
        };
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward"),
            });
        if std::env::var_os("VOYAGER_PROFILE").is_some() {
            profile(ctx, &self.body, info)?;
        } else {
            record(&mut encoder, "body", &self.body, info)?;
        }
        let row = cfg.n_embd as u64 * 4;
        let vocab_bytes = cfg.vocab_size as u64 * 4;
        let (staging, bytes) = match which {
            Logits::Last => {
                encoder.copy_buffer_to_buffer(&s.x, u64::from(n - 1) * row, &s.x_last, 0, row);
                let one = StepInfo {
                    n_tokens: 1,
                    n_kv: 1,
                };
                record(&mut encoder, "head", &self.head_last, one)?;
                encoder.copy_buffer_to_buffer(&s.logits_last, 0, &s.staging_last, 0, vocab_bytes);
                (&s.staging_last, vocab_bytes)
            }
            Logits::All => {
                let head = self.head_all.as_ref().expect("built above");
                record(&mut encoder, "head", &head.ops, info)?;
                let bytes = u64::from(n) * vocab_bytes;
                encoder.copy_buffer_to_buffer(&head.logits, 0, &head.staging, 0, bytes);
                (&head.staging, bytes)
            }
        };
        ctx.queue().submit([encoder.finish()]);
        Ok(bytemuck::pod_collect_to_vec(
            &ctx.map_read_prefix(staging, bytes)?,
        ))
    }
}

/// The KV layout of every layer of `engine`'s sessions: the engine's cache configuration,
/// with the model's own window on its sliding-window layers.
pub(crate) fn layer_layouts(engine: &Engine) -> Result<Vec<LayerLayout>> {
    layouts_for(
        &engine.model.config,
        engine.kv_config(),
        engine.batch_size() as u32,
    )
}

/// [`layer_layouts`] from a configuration, for the memory plan.
pub(crate) fn layouts_for(
    cfg: &ModelConfig,
    kv: &crate::kv::KvConfig,
    batch: u32,
) -> Result<Vec<LayerLayout>> {
    let shape = HeadShape {
        n_kv_heads: cfg.n_kv_heads as u32,
        head_dim: cfg.head_dim as u32,
        head_dim_v: cfg.head_dim_v as u32,
    };
    (0..cfg.n_layers)
        .map(|l| {
            let native = match cfg.sliding_window {
                Some(w) if cfg.layer_is_sliding[l] => Some(w as u32),
                _ => None,
            };
            LayerLayout::new(kv, shape, native, batch)
        })
        .collect()
}

fn record(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    ops: &[Op<'_>],
    info: StepInfo,
) -> Result<()> {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    for op in ops {
        (op.record)(&mut pass, info)?;
    }
    Ok(())
}

/// With `VOYAGER_PROFILE` set, runs every op of a step in its own submit and logs the time
/// spent per kind of op (a debugging aid: the normal path submits once per step).
fn profile(ctx: &crate::gpu::GpuContext, ops: &[Op<'_>], info: StepInfo) -> Result<()> {
    let mut totals: Vec<(&'static str, std::time::Duration)> = Vec::new();
    let mut each = Vec::new();
    for op in ops {
        let start = std::time::Instant::now();
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(op.label),
            });
        record(&mut encoder, op.label, std::slice::from_ref(op), info)?;
        ctx.queue().submit([encoder.finish()]);
        ctx.device()
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        let t = start.elapsed();
        each.push((t, op.label, op.detail.as_str()));
        match totals.iter_mut().find(|(l, _)| *l == op.label) {
            Some(slot) => slot.1 += t,
            None => totals.push((op.label, t)),
        }
    }
    let all: std::time::Duration = totals.iter().map(|(_, t)| *t).sum();
    let parts: Vec<String> = totals
        .iter()
        .map(|(l, t)| format!("{l} {:.1}ms", t.as_secs_f64() * 1e3))
        .collect();
    log::warn!(
        "profile of {} tokens: {:.1}ms = {}",
        info.n_tokens,
        all.as_secs_f64() * 1e3,
        parts.join(", ")
    );
    each.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (t, label, detail) in each.iter().take(8) {
        log::warn!("  {:.2}ms {label} {detail}", t.as_secs_f64() * 1e3);
    }
    Ok(())
}

/// The weight the logits are computed with: `output.weight`, or the token embedding when the
/// model ties them.
fn output_weight_name(cfg: &ModelConfig) -> &'static str {
    if cfg.tied_embeddings {
        "token_embd.weight"
    } else {
        "output.weight"
    }
}

/// Binds kernels to a session's buffers; each method returns one [`Op`]. The architecture
/// files (`crate::arch`) read as a list of these calls.
pub(crate) struct Builder<'a, 'e> {
    e: &'e Engine,
    step: &'a GpuBuffer,
    max_tokens: u32,
}

impl<'a, 'e> Builder<'a, 'e> {
    pub fn new(e: &'e Engine, step: &'a GpuBuffer, max_tokens: u32) -> Self {
        Self {
            e,
            step,
            max_tokens,
        }
    }

    pub fn config(&self) -> &'e ModelConfig {
        &self.e.model.config
    }

    /// `out = embedding rows of ids * scale`.
    pub fn embedding(&self, ids: &GpuBuffer, out: &GpuBuffer, scale: f32) -> Result<Op<'e>> {
        let k = &self.e.kernels.embedding;
        let w = self.e.weight("token_embd.weight")?;
        let b = k.bind(&self.e.gpu, w, ids, out, self.step, scale, self.max_tokens)?;
        Ok(Op::new("embedding", move |pass, s| {
            k.encode(pass, &b, s.n_tokens);
            Ok(())
        }))
    }

    /// `y = W x` for the weight called `name`.
    pub fn matmul(&self, name: &str, x: &GpuBuffer, y: &GpuBuffer) -> Result<Op<'e>> {
        let k = &self.e.kernels.matmul;
        let w = self.e.weight(name)?;
        let b = k.bind(&self.e.gpu, w, x, y, self.step, self.max_tokens)?;
        Ok(Op::new("matmul", move |pass, s| {
            k.encode(pass, &b, s.n_tokens);
            Ok(())
        })
        .on(name))
    }

    /// `out = rms_norm(x) * weight` over rows of the residual width.
    pub fn rms_norm(&self, x: &GpuBuffer, weight: &str, out: &GpuBuffer) -> Result<Op<'e>> {
        let width = self.config().n_embd;
        self.rms_norm_rows(x, weight, out, width, 1)
    }

    /// `out = rms_norm(x) * weight` over `rows_per_token` rows of `width` per token (per-head
    /// q/k norms use `n_heads` rows of `head_dim`).
    pub fn rms_norm_rows(
        &self,
        x: &GpuBuffer,
        weight: &str,
        out: &GpuBuffer,
        width: usize,
        rows_per_token: usize,
    ) -> Result<Op<'e>> {
        let k = &self.e.kernels.rms_norm;
        let w = self.e.vector(weight, width)?;
        let eps = self.config().rms_eps;
        let b = k.bind(
            &self.e.gpu,
            self.step,
            x,
            Some(w),
            out,
            width as u32,
            rows_per_token as u32,
            eps,
            self.max_tokens,
        )?;
        Ok(Op::new("rms_norm", move |pass, s| {
            k.encode(pass, &b, s.n_tokens)
        }))
    }

    fn rope_params(&self, n_heads: usize, layer: usize, max_pos: u32) -> RopeParams {
        let cfg = self.config();
        let base = if cfg.layer_is_sliding[layer] {
            cfg.rope_freq_base_swa
        } else {
            cfg.rope_freq_base
        };
        RopeParams {
            n_heads: n_heads as u32,
            head_dim: cfg.head_dim as u32,
            rope_dim: cfg.rope_dim as u32,
            base,
            freq_scale: 1.0 / cfg.rope_scale,
            layout: cfg.rope_layout,
            max_pos,
        }
    }

    /// Rotates `x` (`n_heads` heads per token) in place for layer `layer`'s RoPE base.
    pub fn rope(&self, x: &GpuBuffer, n_heads: usize, layer: usize) -> Result<Op<'e>> {
        let k = &self.e.kernels.rope;
        let params = self.rope_params(n_heads, layer, u32::MAX);
        let b = k.bind(&self.e.gpu, self.step, x, &params, self.max_tokens)?;
        Ok(Op::new("rope", move |pass, s| {
            k.encode(pass, &b, s.n_tokens)
        }))
    }

    /// Ropes the query `q` in place and, when the layer's cache keeps sinks, first ropes it
    /// into `q_sink` at its position inside the cache: sinks are never farther than the
    /// window from a query, however long the sequence (StreamingLLM's positions).
    pub fn rope_query(
        &self,
        q: &GpuBuffer,
        q_sink: &GpuBuffer,
        cache: &KvLayerCache,
        layer: usize,
    ) -> Result<Vec<Op<'e>>> {
        let n_heads = self.config().n_heads;
        let mut ops = Vec::new();
        let l = &cache.layout;
        if l.policy.sinks > 0 {
            let k = &self.e.kernels.rope;
            let cap = l.sink_query_pos(u32::MAX);
            let params = self.rope_params(n_heads, layer, cap);
            let b = k.bind_from(&self.e.gpu, self.step, q, q_sink, &params, self.max_tokens)?;
            ops.push(Op::new("rope", move |pass, s| {
                k.encode(pass, &b, s.n_tokens)
            }));
        }
        ops.push(self.rope(q, n_heads, layer)?);
        Ok(ops)
    }

    /// Rotates `x` (`rows` heads of `width` per token) with the Hadamard transform in place.
    fn hadamard(&self, x: &GpuBuffer, width: usize, rows: usize) -> Result<Op<'e>> {
        let k = &self.e.kernels.hadamard;
        let b = k.bind(
            &self.e.gpu,
            self.step,
            x,
            width as u32,
            rows as u32,
            self.max_tokens,
        )?;
        Ok(Op::new("hadamard", move |pass, s| {
            k.encode(pass, &b, s.n_tokens)
        }))
    }

    /// Attention through the layer's cache: stores the step's keys `k` and values `v`
    /// (quantizing them as the cache's types say), then attends with the roped query `q`
    /// (and `q_sink` for the sinks) into `out`. When the cache rotates, q, k and v are
    /// Hadamard-rotated first and `out` is rotated back.
    #[allow(clippy::too_many_arguments)]
    pub fn cached_attention(
        &self,
        q: &GpuBuffer,
        q_sink: &GpuBuffer,
        k_buf: &GpuBuffer,
        v_buf: &GpuBuffer,
        cache: &KvLayerCache,
        out: &GpuBuffer,
        partials: &GpuBuffer,
        scale: f32,
    ) -> Result<Vec<Op<'e>>> {
        let cfg = self.config();
        let sinks = cache.layout.policy.sinks > 0;
        let q_sink = if sinks { q_sink } else { q };
        let rotate = self.e.kv_config().rotates();
        let mut ops = Vec::new();
        if rotate {
            ops.push(self.hadamard(q, cfg.head_dim, cfg.n_heads)?);
            if sinks {
                ops.push(self.hadamard(q_sink, cfg.head_dim, cfg.n_heads)?);
            }
            ops.push(self.hadamard(k_buf, cfg.head_dim, cfg.n_kv_heads)?);
            ops.push(self.hadamard(v_buf, cfg.head_dim_v, cfg.n_kv_heads)?);
        }
        ops.push(self.kv_write(k_buf, v_buf, cache)?);
        ops.push(self.attention(q, q_sink, cache, out, partials, scale)?);
        if rotate {
            ops.push(self.hadamard(out, cfg.head_dim_v, cfg.n_heads)?);
        }
        Ok(ops)
    }

    /// Writes the step's keys and values into the layer's cache.
    fn kv_write(
        &self,
        k_buf: &GpuBuffer,
        v_buf: &GpuBuffer,
        cache: &KvLayerCache,
    ) -> Result<Op<'e>> {
        let k = &self.e.kernels.kv_write;
        let b = k.bind(&self.e.gpu, self.step, k_buf, v_buf, cache, self.max_tokens)?;
        Ok(Op::new("kv_write", move |pass, s| {
            k.encode(pass, &b, s.n_tokens)
        }))
    }

    /// `out = softmax(q k^T * scale) v` over the layer's cache: its sinks and its window.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        q: &GpuBuffer,
        q_sink: &GpuBuffer,
        cache: &KvLayerCache,
        out: &GpuBuffer,
        partials: &GpuBuffer,
        scale: f32,
    ) -> Result<Op<'e>> {
        let k = &self.e.kernels.attention;
        let params = attention_params(self.config(), scale);
        let b = k.bind(
            &self.e.gpu,
            self.step,
            q,
            q_sink,
            cache,
            out,
            partials,
            &params,
            self.max_tokens,
        )?;
        Ok(Op::new("attention", move |pass, s| {
            k.encode(pass, &b, s.n_tokens, s.n_kv)
        }))
    }

    /// `out = act(gate) * up` over the feed-forward width.
    pub fn ffn_act(
        &self,
        gate: &GpuBuffer,
        up: &GpuBuffer,
        out: &GpuBuffer,
        act: Activation,
    ) -> Result<Op<'e>> {
        let k = &self.e.kernels.ffn_act;
        let width = self.config().n_ff as u32;
        let b = k.bind(
            &self.e.gpu,
            self.step,
            gate,
            up,
            out,
            width,
            act,
            self.max_tokens,
        )?;
        Ok(Op::new("ffn_act", move |pass, s| {
            k.encode(pass, &b, s.n_tokens)
        }))
    }

    /// `out = a + b` over the residual width.
    pub fn add(&self, a: &GpuBuffer, b_buf: &GpuBuffer, out: &GpuBuffer) -> Result<Op<'e>> {
        let k = &self.e.kernels.add;
        let width = self.config().n_embd as u32;
        let b = k.bind(
            &self.e.gpu,
            self.step,
            a,
            b_buf,
            out,
            width,
            self.max_tokens,
        )?;
        Ok(Op::new("add", move |pass, s| {
            k.encode(pass, &b, s.n_tokens)
        }))
    }
}

/// Bytes of the attention partials buffer an engine's sessions share across layers.
fn partials_bytes(engine: &Engine) -> Result<u64> {
    let cfg = &engine.model.config;
    let params = attention_params(cfg, 1.0);
    let strategy = engine.kernels.attention.strategy();
    let batch = engine.batch_size() as u32;
    Ok(layer_layouts(engine)?
        .iter()
        .map(|l| AttentionKernel::partials_bytes(strategy, &params, l, batch))
        .max()
        .unwrap_or(0)
        .max(4))
}

/// The attention parameters of a model (the cache layout gives the window).
pub(crate) fn attention_params(cfg: &ModelConfig, scale: f32) -> AttentionParams {
    AttentionParams {
        n_heads: cfg.n_heads as u32,
        n_kv_heads: cfg.n_kv_heads as u32,
        head_dim: cfg.head_dim as u32,
        head_dim_v: cfg.head_dim_v as u32,
        scale,
        softcap: 0.0,
    }
}
