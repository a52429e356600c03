//! The kernel self-check: every kernel a model needs, run once on small random inputs on the
//! device at hand and compared with its CPU twin, before the engine trusts the device.
//!
//! Some drivers compile WGSL into code that silently computes wrong results (llama.cpp users
//! on some phone GPUs get gibberish). On the first load on an adapter and driver version the
//! engine runs the cases for the model's kernels and weight types ([`model_cases`]) and
//! refuses a device that disagrees, naming the kernel; the cases that passed are remembered
//! per adapter, driver and Voyager version (in the user's cache directory), so later loads
//! skip them. `voyager selfcheck` runs every case ([`all_cases`]) on demand.
//!
//! The same cases, with larger and odder sizes, are the kernel tests (`runtime/tests/gpu_*`):
//! [`cases`] holds each op's CPU twin call and its tolerance, [`Harness`] runs an op on the
//! device.

pub mod cases;
mod harness;

use std::collections::BTreeSet;
use std::time::Instant;

pub use cases::{Case, Outcome, Tolerance};
pub use harness::Harness;

use crate::device_record::DeviceRecord;
use crate::gguf::GgmlType;
use crate::gpu::kernels::ffn_act::Activation;
use crate::gpu::kernels::rope::RopeParams;
use crate::gpu::kernels::{Kernels, Strategy};
use crate::gpu::GpuContext;
use crate::kv::{HeadShape, KvConfig, KvType};
use crate::model::{Model, ModelConfig, RopeLayout};
use crate::options::{EngineOptions, SelfCheck};
use crate::rng::XorShift;
use crate::{Error, Result};

/// The outcome of a self-check on one device.
#[derive(Debug, Clone)]
pub struct Report {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub strategy: Strategy,
    /// The cases run now.
    pub outcomes: Vec<Outcome>,
    /// Cases skipped because an earlier check on this adapter and driver passed them.
    pub remembered: usize,
    pub seconds: f64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.passed)
    }

    /// The cases that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| !o.passed)
    }

    /// The refusal for a device that failed, naming the first failing kernel; `None` when
    /// every case passed.
    pub fn error(&self) -> Option<Error> {
        let first = self.failures().next()?;
        let how = if first.score.is_finite() {
            format!("is off by {:.1}x what rounding allows", first.score)
        } else {
            "differs where it must match exactly".to_string()
        };
        Some(Error::Gpu(format!(
            "the self-check found wrong results on {} ({}, driver {}): {} {how} ({}); {} of \
             {} checks failed. Update the GPU driver, or run `voyager selfcheck` for the full \
             list",
            self.adapter,
            self.backend,
            self.driver,
            first.name,
            first.worst,
            self.failures().count(),
            self.outcomes.len()
        )))
    }
}

/// Runs `cases` on `kernels` and reports each.
pub fn run(ctx: &GpuContext, kernels: &Kernels, cases: &[Case]) -> Result<Report> {
    let start = Instant::now();
    let h = Harness::new(ctx, kernels);
    let outcomes = cases
        .iter()
        .map(|c| c.run(&h))
        .collect::<Result<Vec<_>>>()?;
    let info = ctx.adapter_info();
    Ok(Report {
        adapter: info.name.clone(),
        backend: ctx.backend().to_string(),
        driver: crate::device_record::driver(info),
        strategy: kernels.strategy(),
        outcomes,
        remembered: 0,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The cases for the kernels `model` uses under the cache configuration `kv`: a matmul (decode
/// and prefill) per weight type, the embedding of its token table's type, the norms, RoPE in
/// its layout, both activations, the residual add, the Hadamard rotation when the cache
/// rotates, and the cache's write and attention (prefill and decode) in its formats. Small
/// sizes: the point is the device's arithmetic, not the shapes.
pub fn model_cases(model: &Model, kv: &KvConfig, strategy: Strategy) -> Result<Vec<Case>> {
    let cfg = &model.config;
    let mut matmul_types = BTreeSet::new();
    let mut embd_type = GgmlType::F32;
    for t in model.file.tensors() {
        if t.name == "token_embd.weight" {
            embd_type = t.ggml_type;
        }
        if t.dims.len() > 1 {
            matmul_types.insert(t.ggml_type);
        }
    }
    cases_for(cfg, &matmul_types, embd_type, kv, strategy)
}

/// Every case: every weight type the GPU reads, both activations, both RoPE layouts, every
/// cache format, on shapes like SmolLM2's and Gemma 3's heads.
pub fn all_cases(strategy: Strategy) -> Result<Vec<Case>> {
    let types: BTreeSet<GgmlType> = GgmlType::all().filter(|t| t.runs_on_gpu()).collect();
    let mut out = Vec::new();
    let mut rng = XorShift::new(0x5e1f_c4ec);
    for &ty in &types {
        out.extend(weight_cases(&mut rng, ty, true, strategy)?);
    }
    for layout in [RopeLayout::Normal, RopeLayout::Neox] {
        out.extend(rope_cases(&mut rng, layout, 64, 64, 10_000.0));
    }
    out.extend(elementwise_cases(&mut rng, 576, 1536));
    for head_dim in [64, 256] {
        out.push(cases::hadamard_rotation(&mut rng, head_dim, 2, 3));
        for (k, v) in [
            (KvType::F16, KvType::F16),
            (KvType::Q4, KvType::Q4),
            (KvType::Q8, KvType::Q4),
            (KvType::Tq4, KvType::Tq3),
        ] {
            out.extend(cache_cases(&mut rng, head_dim, head_dim, k, v)?);
        }
    }
    Ok(out)
}

fn cases_for(
    cfg: &ModelConfig,
    matmul_types: &BTreeSet<GgmlType>,
    embd_type: GgmlType,
    kv: &KvConfig,
    strategy: Strategy,
) -> Result<Vec<Case>> {
    let mut rng = XorShift::new(0x5e1f_c4ec);
    let mut out = Vec::new();
    for &ty in matmul_types {
        out.extend(weight_cases(&mut rng, ty, false, strategy)?);
    }
    if embd_type.runs_on_gpu() {
        out.push(embedding_case(&mut rng, embd_type)?);
    }
    let layout = crate::arch::rope_layout(cfg.arch);
    out.extend(rope_cases(
        &mut rng,
        layout,
        cfg.head_dim as u32,
        cfg.rope_dim as u32,
        cfg.rope_freq_base,
    ));
    out.extend(elementwise_cases(&mut rng, cfg.n_embd, cfg.n_ff.min(4096)));
    let (hd, hdv) = (cfg.head_dim as u32, cfg.head_dim_v as u32);
    if kv.rotates() {
        out.push(cases::hadamard_rotation(&mut rng, hd, 2, 3));
    }
    out.extend(cache_cases(&mut rng, hd, hdv, kv.k_type, kv.v_type)?);
    Ok(out)
}

/// A decode and a prefill matmul for `ty` (and, with `embedding`, its embedding gather).
fn weight_cases(
    rng: &mut XorShift,
    ty: GgmlType,
    embedding: bool,
    strategy: Strategy,
) -> Result<Vec<Case>> {
    let block = ty.block_len() as usize;
    // Float rows of odd length exercise the k % 8 tail; quantized rows are whole blocks.
    let k = if block == 1 { 203 } else { 2 * block };
    let mut out = vec![
        cases::matmul(rng, ty, (k, 9, 1), None, strategy)?,
        cases::matmul(rng, ty, (k, 9, 5), None, strategy)?,
    ];
    if embedding {
        out.push(embedding_case(rng, ty)?);
    }
    Ok(out)
}

fn embedding_case(rng: &mut XorShift, ty: GgmlType) -> Result<Case> {
    let block = ty.block_len() as usize;
    let k = if block == 1 { 67 } else { block };
    cases::embedding(rng, ty, (k, 7), vec![3, 0, 6, 3, 7], 2.5, None)
}

fn rope_cases(
    rng: &mut XorShift,
    layout: RopeLayout,
    head_dim: u32,
    rope_dim: u32,
    base: f32,
) -> Vec<Case> {
    let p = RopeParams {
        n_heads: 2,
        head_dim,
        rope_dim,
        base,
        freq_scale: 1.0,
        layout,
        max_pos: u32::MAX,
    };
    let capped = RopeParams { max_pos: 8, ..p };
    vec![
        cases::rope(rng, p, 3, 7, false),
        cases::rope(rng, capped, 3, 7, true),
    ]
}

fn elementwise_cases(rng: &mut XorShift, n_embd: usize, n_ff: usize) -> Vec<Case> {
    vec![
        cases::rms_norm(rng, n_embd, 2, true),
        cases::add(rng, n_embd * 2),
        cases::ffn_act(rng, n_ff, 2, Activation::Silu),
        cases::ffn_act(rng, n_ff, 2, Activation::GeluTanh),
    ]
}

/// The cache's write over a wrapping ring, and attention (prefill and decode) over sinks, the
/// ring and recent copies, in formats `k` / `v`.
fn cache_cases(
    rng: &mut XorShift,
    head_dim: u32,
    head_dim_v: u32,
    k: KvType,
    v: KvType,
) -> Result<Vec<Case>> {
    let shape = HeadShape {
        n_kv_heads: 1,
        head_dim,
        head_dim_v,
    };
    let attention = |n_tokens, n_kv, window| cases::AttentionShape {
        n_heads: 2,
        n_kv_heads: 1,
        head_dim,
        head_dim_v,
        n_tokens,
        n_kv,
        kv: cases::kv_config(k, v, 2, window, 4),
        softcap: 0.0,
        q_amp: 2.0,
    };
    Ok(vec![
        cases::kv_write(
            rng,
            shape,
            cases::kv_config(k, v, 2, 10, 4),
            8,
            vec![8, 3, 1, 8, 5],
        )?,
        cases::attention(rng, attention(5, 41, 20))?,
        cases::attention(rng, attention(1, 300, 290))?,
    ])
}

/// What the engine runs before uploading a model's weights: the model's cases that have not
/// passed on this device yet are checked (all of them with [`SelfCheck::Always`]), and a
/// device that fails one is refused. Cases that passed before (and every case with
/// [`SelfCheck::Off`]) still run once, unchecked: each pipeline's first dispatch is where a
/// driver compiles and allocates what it keeps, and the memory plan measures the driver after
/// this warm-up rather than at the first generated token.
pub(crate) fn before_load(
    ctx: &GpuContext,
    kernels: &Kernels,
    model: &Model,
    kv: &KvConfig,
    options: &EngineOptions,
    record: Option<&mut DeviceRecord>,
) -> Result<()> {
    let cases = model_cases(model, kv, kernels.strategy())?;
    let known = match (options.self_check, &record) {
        (SelfCheck::FirstRun, Some(r)) => r.passed.clone(),
        _ => BTreeSet::new(),
    };
    let (check, warm): (Vec<Case>, Vec<Case>) = cases
        .into_iter()
        .partition(|c| options.self_check != SelfCheck::Off && !known.contains(&c.name));
    let h = Harness::new(ctx, kernels);
    for case in &warm {
        case.warm(&h)?;
    }
    if check.is_empty() {
        log::debug!(
            "self-check: {} kernels passed before on this adapter and driver (warmed up)",
            warm.len()
        );
        return Ok(());
    }
    let report = Report {
        remembered: warm.len(),
        ..run(ctx, kernels, &check)?
    };
    if let Some(e) = report.error() {
        return Err(e);
    }
    log::info!(
        "self-check: {} kernels agree with their CPU twins on {} in {:.2} s",
        report.outcomes.len(),
        report.adapter,
        report.seconds
    );
    if let (SelfCheck::FirstRun | SelfCheck::Always, Some(record)) = (options.self_check, record) {
        record
            .passed
            .extend(report.outcomes.iter().map(|o| o.name.clone()));
    }
    Ok(())
}
