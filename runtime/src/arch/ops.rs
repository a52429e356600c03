//! The op builder: binds a kernel to a session's buffers once and returns an [`Op`] that
//! records its dispatches at every step. The architecture files read as a list of these calls.

use crate::arch::LayerSpec;
use crate::gpu::kernels::ffn_act::Activation;
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::gpu::kernels::rope::RopeParams;
use crate::gpu::kernels::Kernels;
use crate::gpu::weights::Weights;
use crate::gpu::{GpuBuffer, GpuContext};
use crate::kv::KvConfig;
use crate::model::ModelConfig;
use crate::Result;

/// What an op needs to know about the step being recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepInfo {
    pub n_tokens: u32,
    /// Cache entries valid after this step's write.
    pub n_kv: u32,
}

/// Records a bound kernel's dispatches for one step, with the kernels it was bound with.
type Record = Box<
    dyn Fn(&Kernels, &mut wgpu::ComputePass<'_>, StepInfo) -> Result<()> + Send + Sync + 'static,
>;

/// One bound kernel invocation: owns its bind groups and records its dispatches into a
/// compute pass. Owning everything it binds (wgpu keeps the buffers alive), an op outlives the
/// builder and can move to another thread with its session.
pub(crate) struct Op {
    /// The kernel's name, for profiles.
    pub label: &'static str,
    /// What it works on (a weight's name), for profiles.
    pub detail: String,
    record: Record,
}

impl Op {
    fn new(
        label: &'static str,
        record: impl Fn(&Kernels, &mut wgpu::ComputePass<'_>, StepInfo) -> Result<()>
            + Send
            + Sync
            + 'static,
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

    /// Records the op's dispatches for a step; `kernels` must be those it was bound with.
    pub fn record(
        &self,
        kernels: &Kernels,
        pass: &mut wgpu::ComputePass<'_>,
        info: StepInfo,
    ) -> Result<()> {
        (self.record)(kernels, pass, info)
    }
}

/// A loaded model as the builder sees it: the device, the pipelines, the weights, the
/// configuration and the cache configuration.
#[derive(Clone, Copy)]
pub(crate) struct Loaded<'a> {
    pub gpu: &'a GpuContext,
    pub kernels: &'a Kernels,
    pub weights: &'a Weights,
    pub cfg: &'a ModelConfig,
    pub kv: &'a KvConfig,
}

/// Binds kernels to a session's buffers; each method returns one [`Op`] (or a few).
pub(crate) struct Builder<'a> {
    m: &'a Loaded<'a>,
    step: &'a GpuBuffer,
    max_tokens: u32,
    layers: Vec<LayerSpec>,
}

impl<'a> Builder<'a> {
    /// Ops that read the step uniform `step` and handle at most `max_tokens` tokens a step.
    pub fn new(m: &'a Loaded<'a>, step: &'a GpuBuffer, max_tokens: u32) -> Self {
        Self {
            m,
            step,
            max_tokens,
            layers: super::layer_specs(m.cfg),
        }
    }

    pub fn config(&self) -> &'a ModelConfig {
        self.m.cfg
    }

    /// The LM head's weight: `output.weight`, or the token embedding when the file has no
    /// output matrix (tied embeddings).
    pub fn output_weight(&self) -> &'static str {
        if self.config().tied_embeddings {
            "token_embd.weight"
        } else {
            "output.weight"
        }
    }

    fn gpu(&self) -> &'a GpuContext {
        self.m.gpu
    }

    fn kernels(&self) -> &'a Kernels {
        self.m.kernels
    }

    /// `out = embedding rows of ids * scale`.
    pub fn embedding(&self, ids: &GpuBuffer, out: &GpuBuffer, scale: f32) -> Result<Op> {
        let w = self.m.weights.get("token_embd.weight")?;
        let b = self.kernels().embedding.bind(
            self.gpu(),
            w,
            ids,
            out,
            self.step,
            scale,
            self.max_tokens,
        )?;
        Ok(Op::new("embedding", move |k, pass, s| {
            k.embedding.encode(pass, &b, s.n_tokens)
        }))
    }

    /// `y = W x` for the weight called `name`.
    pub fn matmul(&self, name: &str, x: &GpuBuffer, y: &GpuBuffer) -> Result<Op> {
        let w = self.m.weights.get(name)?;
        let b = self
            .kernels()
            .matmul
            .bind(self.gpu(), w, x, y, self.step, self.max_tokens)?;
        Ok(Op::new("matmul", move |k, pass, s| {
            k.matmul.encode(pass, &b, s.n_tokens)
        })
        .on(name))
    }

    /// `out = rms_norm(x) * weight` over rows of the residual width.
    pub fn rms_norm(&self, x: &GpuBuffer, weight: &str, out: &GpuBuffer) -> Result<Op> {
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
    ) -> Result<Op> {
        let w = self.m.weights.vector(weight, width)?;
        let eps = self.config().rms_eps;
        let b = self.kernels().rms_norm.bind(
            self.gpu(),
            self.step,
            x,
            Some(w),
            out,
            width as u32,
            rows_per_token as u32,
            eps,
            self.max_tokens,
        )?;
        Ok(Op::new("rms_norm", move |k, pass, s| {
            k.rms_norm.encode(pass, &b, s.n_tokens)
        }))
    }

    fn rope_params(&self, n_heads: usize, layer: usize, max_pos: u32) -> RopeParams {
        let cfg = self.config();
        RopeParams {
            n_heads: n_heads as u32,
            head_dim: cfg.head_dim as u32,
            rope_dim: cfg.rope_dim as u32,
            base: self.layers[layer].rope_base,
            freq_scale: 1.0 / cfg.rope_scale,
            layout: super::rope_layout(cfg.arch),
            max_pos,
        }
    }

    /// Rotates `x` (`n_heads` heads per token) in place with layer `layer`'s RoPE.
    pub fn rope(&self, x: &GpuBuffer, n_heads: usize, layer: usize) -> Result<Op> {
        let params = self.rope_params(n_heads, layer, u32::MAX);
        let b = self
            .kernels()
            .rope
            .bind(self.gpu(), self.step, x, &params, self.max_tokens)?;
        Ok(Op::new("rope", move |k, pass, s| {
            k.rope.encode(pass, &b, s.n_tokens)
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
    ) -> Result<Vec<Op>> {
        let n_heads = self.config().n_heads;
        let mut ops = Vec::new();
        let l = &cache.layout;
        if l.policy.sinks > 0 {
            let cap = l.sink_query_pos(u32::MAX);
            let params = self.rope_params(n_heads, layer, cap);
            let b = self.kernels().rope.bind_from(
                self.gpu(),
                self.step,
                q,
                q_sink,
                &params,
                self.max_tokens,
            )?;
            ops.push(Op::new("rope", move |k, pass, s| {
                k.rope.encode(pass, &b, s.n_tokens)
            }));
        }
        ops.push(self.rope(q, n_heads, layer)?);
        Ok(ops)
    }

    /// Rotates `x` (`rows` heads of `width` per token) with the Hadamard transform in place.
    fn hadamard(&self, x: &GpuBuffer, width: usize, rows: usize) -> Result<Op> {
        let b = self.kernels().hadamard.bind(
            self.gpu(),
            self.step,
            x,
            width as u32,
            rows as u32,
            self.max_tokens,
        )?;
        Ok(Op::new("hadamard", move |k, pass, s| {
            k.hadamard.encode(pass, &b, s.n_tokens)
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
    ) -> Result<Vec<Op>> {
        let cfg = self.config();
        let sinks = cache.layout.policy.sinks > 0;
        let q_sink = if sinks { q_sink } else { q };
        let rotate = self.m.kv.rotates();
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
        if cache.layout.table.is_some() {
            ops.push(self.kv_score(q, q_sink, cache, partials, scale)?);
        }
        if rotate {
            ops.push(self.hadamard(out, cfg.head_dim_v, cfg.n_heads)?);
        }
        Ok(ops)
    }

    /// Writes the step's keys and values into the layer's cache.
    fn kv_write(&self, k_buf: &GpuBuffer, v_buf: &GpuBuffer, cache: &KvLayerCache) -> Result<Op> {
        let b = self.kernels().kv_write.bind(
            self.gpu(),
            self.step,
            k_buf,
            v_buf,
            cache,
            self.max_tokens,
        )?;
        Ok(Op::new("kv_write", move |k, pass, s| {
            k.kv_write.encode(pass, &b, s.n_tokens, s.n_kv - s.n_tokens)
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
    ) -> Result<Op> {
        let params = super::attention_params(self.config(), scale);
        let b = self.kernels().attention.bind(
            self.gpu(),
            self.step,
            q,
            q_sink,
            cache,
            out,
            partials,
            &params,
            self.max_tokens,
        )?;
        Ok(Op::new("attention", move |k, pass, s| {
            k.attention.encode(pass, &b, s.n_tokens, s.n_kv)
        }))
    }

    /// Adds the attention each ring slot received to its score (importance policy), with
    /// `stats` (the attention partials, free once attention is done) as scratch.
    fn kv_score(
        &self,
        q: &GpuBuffer,
        q_sink: &GpuBuffer,
        cache: &KvLayerCache,
        stats: &GpuBuffer,
        scale: f32,
    ) -> Result<Op> {
        let params = super::attention_params(self.config(), scale);
        let b = self.kernels().kv_score(self.gpu())?.bind(
            self.gpu(),
            self.step,
            q,
            q_sink,
            cache,
            stats,
            &params,
            self.max_tokens,
        )?;
        Ok(Op::new("kv_score", move |k, pass, s| {
            k.kv_score_built()?.encode(pass, &b, s.n_tokens)
        }))
    }

    /// `out = act(gate) * up` over the feed-forward width.
    pub fn ffn_act(
        &self,
        gate: &GpuBuffer,
        up: &GpuBuffer,
        out: &GpuBuffer,
        act: Activation,
    ) -> Result<Op> {
        let width = self.config().n_ff as u32;
        let b = self.kernels().ffn_act.bind(
            self.gpu(),
            self.step,
            gate,
            up,
            out,
            width,
            act,
            self.max_tokens,
        )?;
        Ok(Op::new("ffn_act", move |k, pass, s| {
            k.ffn_act.encode(pass, &b, s.n_tokens)
        }))
    }

    /// `out = a + b` over the residual width.
    pub fn add(&self, a: &GpuBuffer, b_buf: &GpuBuffer, out: &GpuBuffer) -> Result<Op> {
        let width = self.config().n_embd as u32;
        let b = self.kernels().add.bind(
            self.gpu(),
            self.step,
            a,
            b_buf,
            out,
            width,
            self.max_tokens,
        )?;
        Ok(Op::new("add", move |k, pass, s| {
            k.add.encode(pass, &b, s.n_tokens)
        }))
    }
}
