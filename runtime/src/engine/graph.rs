//! A session's forward pass: its scratch buffers and KV caches, the ops the architecture
//! file binds to them once (`crate::arch`), and the step that records them all into one
//! command encoder, submits once and reads back only the logits sampling or scoring needs.

use crate::arch::{Op, Scratch, StepInfo};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::gpu::kernels::step::{write_step, Step};
use crate::gpu::kernels::Kernels;
use crate::gpu::GpuBuffer;
use crate::kv::evict::{self, Slots};
use crate::kv::LayerLayout;

/// The head that turns every row of the batch into logits (perplexity), built on first use.
struct HeadAll {
    ops: Vec<Op>,
    logits: GpuBuffer,
    staging: GpuBuffer,
}

/// The GPU time of one op of a profiled step ([`crate::Session::feed_profiled`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpTime {
    /// The kernel (`matmul`, `attention`, ...).
    pub op: &'static str,
    /// What it worked on (a weight's name), when it says.
    pub on: String,
    /// Nanoseconds between the timestamps written before and after its dispatches.
    pub ns: f64,
}

/// Timestamp queries for profiled steps, built on first use.
struct Stamps {
    set: wgpu::QuerySet,
    capacity: u32,
    resolve: GpuBuffer,
    staging: GpuBuffer,
}

/// The timestamps of the step being recorded: the next free query, and for each op the
/// queries written before and after it.
struct Stamping<'a> {
    set: &'a wgpu::QuerySet,
    capacity: u32,
    next: u32,
    ops: Vec<(u32, u32, &'static str, String)>,
}

impl Stamping<'_> {
    fn write(&mut self, pass: &mut wgpu::ComputePass<'_>) -> Result<u32> {
        if self.next >= self.capacity {
            return Err(Error::Gpu(format!(
                "a profiled step needs more than {} timestamps",
                self.capacity
            )));
        }
        pass.write_timestamp(self.set, self.next);
        self.next += 1;
        Ok(self.next - 1)
    }
}

/// A session's bound forward pass.
pub(crate) struct Graph {
    pub scratch: Scratch,
    /// The layers' caches, which `body` is bound to.
    kv: Vec<KvLayerCache>,
    /// Embedding and every layer; leaves the residual stream in `scratch.x`.
    body: Vec<Op>,
    /// Final norm and logits of the last row, through `step_one`.
    head_last: Vec<Op>,
    head_all: Option<HeadAll>,
    /// The importance policy's slot tables, one per layer (`None` for a layer without one).
    slots: Vec<Option<Slots>>,
    /// Whether `slots` mirrors the caches (false after a restore wrote them).
    slots_current: bool,
    /// Where a step's slot scores are read back (importance policy only).
    score_staging: Option<GpuBuffer>,
    /// Timestamp queries of profiled steps.
    stamps: Option<Stamps>,
}

/// Bytes of the staging buffer a session reads its slot scores back through (0 under the
/// window policy).
pub(crate) fn score_staging_bytes(layouts: &[LayerLayout]) -> u64 {
    layouts
        .iter()
        .filter_map(|l| l.table)
        .map(|t| 4 * u64::from(t.ring_slots))
        .sum()
}

/// Which logits a step reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logits {
    /// The last token's row: `[vocab]`.
    Last,
    /// Every token's row: `[n_tokens, vocab]`.
    All,
}

impl Graph {
    /// Allocates a session's cache and scratch on `engine`'s device and binds its forward pass.
    pub fn new(engine: &Engine) -> Result<Self> {
        let m = engine.loaded();
        let max_tokens = engine.batch_size() as u32;
        let layouts = layer_layouts(engine)?;
        let scratch = Scratch::new(&m, max_tokens, &layouts)?;
        let kv = layouts
            .into_iter()
            .map(|layout| KvLayerCache::new(&engine.gpu, layout))
            .collect::<Result<Vec<_>>>()?;
        let body = crate::arch::build_body(&m, &scratch, &kv)?;
        let s = &scratch;
        let head_last =
            crate::arch::build_head(&m, &s.step_one, 1, &s.x_last, &s.h_last, &s.logits_last)?;
        let slots = kv
            .iter()
            .map(|c| c.layout.table.map(|t| Slots::new(t.ring_slots)))
            .collect();
        let staging_bytes = score_staging_bytes(&kv.iter().map(|c| c.layout).collect::<Vec<_>>());
        let score_staging = match staging_bytes {
            0 => None,
            bytes => Some(engine.gpu.create_buffer(
                "slot scores staging",
                bytes,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )?),
        };
        Ok(Self {
            scratch,
            kv,
            body,
            head_last,
            head_all: None,
            slots,
            slots_current: true,
            score_staging,
            stamps: None,
        })
    }

    /// The caches were written from outside (a restored session): read the slot tables back
    /// before the next step.
    pub fn caches_replaced(&mut self) {
        self.slots_current = false;
    }

    /// Plans the importance layers' slot tables for a step of `n` tokens at `pos` and uploads
    /// them (with each token's ring slot).
    fn plan_slots(&mut self, engine: &Engine, pos: u32, n: u32) -> Result<()> {
        if self.score_staging.is_none() {
            return Ok(());
        }
        if !self.slots_current {
            for (cache, slots) in self.kv.iter().zip(&mut self.slots) {
                if let Some(t) = cache.layout.table {
                    let bytes = engine.gpu.read_bytes(
                        &cache.buffer,
                        4 * u64::from(t.offset),
                        4 * t.words(),
                    )?;
                    *slots = Some(Slots::from_words(
                        &t,
                        &bytemuck::pod_collect_to_vec(&bytes),
                    )?);
                }
            }
            self.slots_current = true;
        }
        let horizon = match engine.model.config.context_length {
            0 => evict::NEVER,
            c => u32::try_from(c).unwrap_or(evict::NEVER),
        };
        for (cache, slots) in self.kv.iter().zip(&mut self.slots) {
            let (Some(t), Some(slots)) = (cache.layout.table, slots.as_mut()) else {
                continue;
            };
            let p = &cache.layout.policy;
            let bounds = evict::Bounds {
                sinks: p.sinks,
                window: p.window,
                protect: evict::protected(p.window),
                horizon,
            };
            let wmap = slots.plan(evict::Step { p0: pos, n }, bounds)?;
            for (at, words) in slots.uploads(&t, &wmap) {
                engine.gpu.write_buffer(
                    &cache.buffer,
                    4 * u64::from(at),
                    bytemuck::cast_slice(&words),
                );
            }
        }
        Ok(())
    }

    /// Records copies of every importance layer's scores into the staging buffer.
    fn copy_scores(&self, encoder: &mut wgpu::CommandEncoder) {
        let Some(staging) = &self.score_staging else {
            return;
        };
        let mut at = 0;
        for cache in &self.kv {
            if let Some(t) = cache.layout.table {
                let bytes = 4 * u64::from(t.ring_slots);
                encoder.copy_buffer_to_buffer(
                    &cache.buffer,
                    4 * u64::from(t.score_off()),
                    staging,
                    at,
                    bytes,
                );
                at += bytes;
            }
        }
    }

    /// Takes the scores [`Graph::copy_scores`] staged into the slot tables.
    fn read_scores(&mut self, engine: &Engine) -> Result<()> {
        let Some(staging) = &self.score_staging else {
            return Ok(());
        };
        let mut tables: Vec<&mut [f32]> = self
            .slots
            .iter_mut()
            .flatten()
            .map(|s| s.score.as_mut_slice())
            .collect();
        engine.gpu.map_read_f32_into(staging, &mut tables)
    }

    /// Whether a session of `len` positions can go back to `to` and go on from there: the
    /// ring's spare slots (one batch) cover a rollback that short, and nothing is lost before
    /// the ring first wraps. (Recent f16 copies are tagged, so they never mislead.)
    pub fn can_roll_back(&self, len: usize, to: usize) -> bool {
        let back = len.saturating_sub(to);
        if self.score_staging.is_some() {
            // The importance policy's evictions and scores cannot be undone.
            return back == 0;
        }
        back <= self.scratch.max_tokens as usize
            || self.kv.iter().all(|c| {
                let p = &c.layout.policy;
                len <= (p.sinks + p.ring_slots) as usize
            })
    }

    /// The layers' caches.
    pub fn caches(&self) -> &[KvLayerCache] {
        &self.kv
    }

    /// Layer `layer`'s layout and cache words, read back.
    pub fn read_cache(&self, engine: &Engine, layer: usize) -> Result<(LayerLayout, Vec<u32>)> {
        let cache = self
            .kv
            .get(layer)
            .ok_or_else(|| Error::InvalidArgument(format!("no layer {layer}")))?;
        let bytes = engine
            .gpu
            .read_bytes(&cache.buffer, 0, cache.buffer.size())?;
        Ok((cache.layout, bytemuck::pod_collect_to_vec(&bytes)))
    }

    fn ensure_head_all(&mut self, engine: &Engine) -> Result<()> {
        if self.head_all.is_some() {
            return Ok(());
        }
        let ctx = &engine.gpu;
        let cfg = &engine.model.config;
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
        let ops =
            crate::arch::build_head(&engine.loaded(), &s.step, s.max_tokens, &s.x, &s.h, &logits)?;
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
    pub fn step(
        &mut self,
        engine: &Engine,
        ids: &[u32],
        pos: u32,
        which: Logits,
    ) -> Result<Vec<f32>> {
        self.step_with(engine, ids, pos, which, false)
            .map(|(logits, _)| logits)
    }

    /// [`Graph::step`] of the last token's logits with a GPU timestamp written before and
    /// after every op, and the time of each (on devices with timestamps inside passes).
    pub fn step_profiled(
        &mut self,
        engine: &Engine,
        ids: &[u32],
        pos: u32,
    ) -> Result<(Vec<f32>, Vec<OpTime>)> {
        let ctx = &engine.gpu;
        if !ctx.has_timestamps() {
            return Err(Error::Gpu(format!(
                "{} cannot write timestamps inside compute passes, so it cannot be profiled",
                ctx.adapter_name()
            )));
        }
        if self.stamps.is_none() {
            // Two per op is more than enough: one before each pass, one after each op.
            let capacity = (2 * (self.body.len() + self.head_last.len()) as u32)
                .min(wgpu::QUERY_SET_MAX_QUERIES);
            let set = ctx.device().create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count: capacity,
            });
            let bytes = 8 * u64::from(capacity);
            self.stamps = Some(Stamps {
                set,
                capacity,
                resolve: ctx.create_buffer(
                    "profile timestamps",
                    bytes,
                    wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                )?,
                staging: ctx.create_buffer(
                    "profile timestamps staging",
                    bytes,
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                )?,
            });
        }
        let (logits, ops) = self.step_with(engine, ids, pos, Logits::Last, true)?;
        let stamps = self.stamps.as_ref().expect("built above");
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&ctx.map_read(&stamps.staging)?);
        let period = f64::from(ctx.queue().get_timestamp_period());
        let times = ops
            .into_iter()
            .map(|(before, after, op, on)| OpTime {
                op,
                on,
                ns: ticks[after as usize].saturating_sub(ticks[before as usize]) as f64 * period,
            })
            .collect();
        Ok((logits, times))
    }

    /// The step, with timestamps around every op when `profiled` (the stamps built); returns
    /// the logits and which queries bracket each op.
    #[allow(clippy::type_complexity)]
    fn step_with(
        &mut self,
        engine: &Engine,
        ids: &[u32],
        pos: u32,
        which: Logits,
        profiled: bool,
    ) -> Result<(Vec<f32>, Vec<(u32, u32, &'static str, String)>)> {
        let n = ids.len() as u32;
        if n == 0 || n > self.scratch.max_tokens {
            return Err(Error::InvalidArgument(format!(
                "a step of {n} tokens (1 to {} allowed)",
                self.scratch.max_tokens
            )));
        }
        if pos.checked_add(n).is_none_or(|end| end == u32::MAX) {
            return Err(Error::Context(format!(
                "position {pos} is past the last one a session can reach"
            )));
        }
        if which == Logits::All {
            self.ensure_head_all(engine)?;
        }
        let started = std::time::Instant::now();
        self.plan_slots(engine, pos, n)?;
        let ctx = &engine.gpu;
        let cfg = &engine.model.config;
        let kernels = &engine.kernels;
        let s = &self.scratch;
        write_step(ctx, &s.step, Step::new(pos, n));
        ctx.write_buffer(&s.ids, 0, bytemuck::cast_slice(ids));
        let info = StepInfo {
            n_tokens: n,
            n_kv: pos + n,
        };
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward"),
            });
        let mut stamping = match (&self.stamps, profiled) {
            (Some(s), true) => Some(Stamping {
                set: &s.set,
                capacity: s.capacity,
                next: 0,
                ops: Vec::new(),
            }),
            _ => None,
        };
        if std::env::var_os("VOYAGER_PROFILE").is_some() {
            profile(ctx, kernels, &self.body, info)?;
        } else {
            record(
                &mut encoder,
                kernels,
                "body",
                &self.body,
                info,
                stamping.as_mut(),
            )?;
        }
        let row = cfg.n_embd as u64 * 4;
        let vocab_bytes = cfg.vocab_size as u64 * 4;
        let (staging, floats) = match which {
            Logits::Last => {
                encoder.copy_buffer_to_buffer(&s.x, u64::from(n - 1) * row, &s.x_last, 0, row);
                let one = StepInfo {
                    n_tokens: 1,
                    n_kv: 1,
                };
                record(
                    &mut encoder,
                    kernels,
                    "head",
                    &self.head_last,
                    one,
                    stamping.as_mut(),
                )?;
                encoder.copy_buffer_to_buffer(&s.logits_last, 0, &s.staging_last, 0, vocab_bytes);
                (&s.staging_last, cfg.vocab_size)
            }
            Logits::All => {
                let head = self
                    .head_all
                    .as_ref()
                    .ok_or_else(|| Error::Gpu("the all-rows head was not built".into()))?;
                record(&mut encoder, kernels, "head", &head.ops, info, None)?;
                let bytes = u64::from(n) * vocab_bytes;
                encoder.copy_buffer_to_buffer(&head.logits, 0, &head.staging, 0, bytes);
                (&head.staging, n as usize * cfg.vocab_size)
            }
        };
        self.copy_scores(&mut encoder);
        let ops = match (stamping, &self.stamps) {
            (Some(st), Some(s)) => {
                encoder.resolve_query_set(&s.set, 0..st.next, &s.resolve, 0);
                encoder.copy_buffer_to_buffer(&s.resolve, 0, &s.staging, 0, 8 * u64::from(st.next));
                st.ops
            }
            _ => Vec::new(),
        };
        ctx.submit([encoder.finish()]);
        crate::gpu::counters::step_recorded(started.elapsed());
        let logits = ctx.map_read_f32(staging, floats)?;
        self.read_scores(engine)?;
        Ok((logits, ops))
    }
}

/// The KV layout of every layer of `engine`'s sessions.
fn layer_layouts(engine: &Engine) -> Result<Vec<LayerLayout>> {
    crate::arch::layer_layouts(
        &engine.model.config,
        engine.kv_config(),
        engine.batch_size() as u32,
    )
}

/// Records `ops` into one compute pass; with `stamping`, a timestamp before the first op and
/// after each.
fn record(
    encoder: &mut wgpu::CommandEncoder,
    kernels: &Kernels,
    label: &str,
    ops: &[Op],
    info: StepInfo,
    mut stamping: Option<&mut Stamping<'_>>,
) -> Result<()> {
    let mut pass = crate::gpu::counters::begin_pass(encoder, label);
    let mut last = match stamping.as_deref_mut() {
        Some(s) => s.write(&mut pass)?,
        None => 0,
    };
    for op in ops {
        op.record(kernels, &mut pass, info)?;
        if let Some(s) = stamping.as_deref_mut() {
            let now = s.write(&mut pass)?;
            s.ops.push((last, now, op.label, op.detail.clone()));
            last = now;
        }
    }
    Ok(())
}

/// With `VOYAGER_PROFILE` set, runs every op of a step in its own submit and logs the time
/// spent per kind of op (a debugging aid: the normal path submits once per step).
fn profile(
    ctx: &crate::gpu::GpuContext,
    kernels: &Kernels,
    ops: &[Op],
    info: StepInfo,
) -> Result<()> {
    let mut totals: Vec<(&'static str, std::time::Duration)> = Vec::new();
    let mut each = Vec::new();
    for op in ops {
        let start = std::time::Instant::now();
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(op.label),
            });
        record(
            &mut encoder,
            kernels,
            op.label,
            std::slice::from_ref(op),
            info,
            None,
        )?;
        ctx.submit([encoder.finish()]);
        ctx.wait_idle()?;
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
