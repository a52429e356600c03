//! Kernel cases: an op on chosen inputs, its CPU twin's answer, and how far the device may
//! stray from it, argued from rounding. [`Case::run`] is the one function that runs any op
//! on the device (through [`Harness`]) and compares; the self-check runs small cases for the
//! kernels a model needs, the tests run tables of them with odd sizes on both strategies.

use std::time::Instant;

use crate::gguf::{GgmlType, TensorInfo};
use crate::gpu::kernels::attention::{attention_ref, AttentionKernel, AttentionParams};
use crate::gpu::kernels::embedding::embedding_ref;
use crate::gpu::kernels::ffn_act::{ffn_act_ref, Activation};
use crate::gpu::kernels::kv_cache::{decode_at, first_write_mean, stored_ref, KvLayerCache, Side};
use crate::gpu::kernels::matmul::matmul_ref;
use crate::gpu::kernels::rms_norm::rms_norm_ref;
use crate::gpu::kernels::rope::{rope_ref, RopeParams};
use crate::gpu::kernels::{add_ref, Strategy};
use crate::gpu::weights::GpuWeight;
use crate::kv::quant::{hadamard, hadamard_size};
use crate::kv::{HeadShape, KvConfig, KvType, LayerLayout};
use crate::quant::{dequantize, random::random_tensor};
use crate::rng::XorShift;
use crate::selfcheck::Harness;
use crate::{Error, Result};

/// How far the device's answer may be from the CPU twin's.
#[derive(Debug, Clone, PartialEq)]
pub enum Tolerance {
    /// `max |gpu - cpu| / max |cpu| <= tol`.
    Relative(f32),
    /// `|gpu_i - cpu_i| <= bound_i` for every element: 0 asks for the same bits, and an
    /// expected NaN (an element the kernel must leave untouched) for a NaN.
    PerElement(Vec<f32>),
}

type GpuRun = Box<dyn Fn(&Harness<'_>) -> Result<Vec<f32>> + Send + Sync>;

/// One op on fixed inputs: the CPU twin's answer, and how to get the device's.
pub struct Case {
    pub name: String,
    pub expected: Vec<f32>,
    pub tolerance: Tolerance,
    gpu: GpuRun,
}

/// How a case went.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub name: String,
    /// The error as a fraction of what is allowed: `<= 1` passes.
    pub score: f64,
    pub passed: bool,
    /// The worst element: where, what each side computed, what was allowed.
    pub worst: String,
    pub seconds: f64,
}

impl Case {
    /// A case from its parts (tests build their own for special layouts).
    pub fn new(
        name: impl Into<String>,
        expected: Vec<f32>,
        tolerance: Tolerance,
        gpu: impl Fn(&Harness<'_>) -> Result<Vec<f32>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            expected,
            tolerance,
            gpu: Box::new(gpu),
        }
    }

    /// Runs the op on the device and compares with the CPU twin. A device error is an
    /// `Err`; a wrong answer is an [`Outcome`] that did not pass.
    pub fn run(&self, h: &Harness<'_>) -> Result<Outcome> {
        let start = Instant::now();
        let got = (self.gpu)(h)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(Outcome {
            seconds,
            ..self.judge(&got)
        })
    }

    /// Runs the op on the device without comparing (a warm-up of its pipelines).
    pub fn warm(&self, h: &Harness<'_>) -> Result<()> {
        (self.gpu)(h).map(drop)
    }

    /// Compares values the device produced some other way (a weight bound once and recorded
    /// for several steps) with this case's expectation.
    pub fn judge(&self, got: &[f32]) -> Outcome {
        let (score, worst) = if got.len() != self.expected.len() {
            (
                f64::INFINITY,
                format!("{} values, {} expected", got.len(), self.expected.len()),
            )
        } else {
            compare(got, &self.expected, &self.tolerance)
        };
        Outcome {
            name: self.name.clone(),
            passed: score <= 1.0,
            score,
            worst,
            seconds: 0.0,
        }
    }
}

/// The score (error over allowance, worst element) and a description of the worst element.
fn compare(got: &[f32], want: &[f32], tol: &Tolerance) -> (f64, String) {
    let mut worst = (0f64, String::from("exact"));
    let mut note = |score: f64, i: usize, allowed: f64| {
        if score > worst.0 || (score.is_nan() && !worst.0.is_nan()) {
            worst = (
                if score.is_nan() { f64::INFINITY } else { score },
                format!(
                    "element {i}: GPU {} CPU {} (allowed {allowed:.3e})",
                    got[i], want[i]
                ),
            );
        }
    };
    match tol {
        Tolerance::Relative(t) => {
            let scale = want
                .iter()
                .fold(0f64, |m, x| m.max(f64::from(x.abs())))
                .max(f64::from(f32::MIN_POSITIVE));
            let allowed = f64::from(*t) * scale;
            for (i, (&g, &c)) in got.iter().zip(want).enumerate() {
                let err = if g.is_finite() {
                    f64::from((g - c).abs())
                } else {
                    f64::INFINITY
                };
                note(err / allowed, i, allowed);
            }
        }
        Tolerance::PerElement(bounds) => {
            for (i, ((&g, &c), &b)) in got.iter().zip(want).zip(bounds).enumerate() {
                let score = if c.is_nan() {
                    if g.is_nan() {
                        0.0
                    } else {
                        f64::INFINITY
                    }
                } else if b == 0.0 {
                    if g.to_bits() == c.to_bits() {
                        0.0
                    } else {
                        f64::INFINITY
                    }
                } else if !g.is_finite() {
                    f64::INFINITY
                } else {
                    f64::from((g - c).abs()) / f64::from(b)
                };
                note(score, i, f64::from(b));
            }
        }
    }
    worst
}

/// `a + b`: one f32 addition, bit-exact.
pub fn add(rng: &mut XorShift, n: usize) -> Case {
    let a = rng.vec(n, 1000.0);
    let b = rng.vec(n, 1000.0);
    let want = add_ref(&a, &b);
    Case::new(
        format!("add n={n}"),
        want,
        Tolerance::PerElement(vec![0.0; n]),
        move |h| h.add(&a, &b),
    )
}

/// RMS norm. The sum of n squares is accumulated by 128 threads in strides, then by a 7-level
/// tree; each partial sum carries at most (n/128 + 7) roundings, a relative error <= (n/128 +
/// 7) 2^-24 ~ 1e-6 for n = 1000, halved by the square root, plus ~3 roundings for 1/sqrt,
/// x * scale and * w. 1e-5 leaves room for GPU sqrt (a few ulp).
pub fn rms_norm(rng: &mut XorShift, width: usize, rows: usize, weighted: bool) -> Case {
    let x = rng.vec(width * rows, 3.0);
    let w = weighted.then(|| rng.vec(width, 2.0));
    let want = rms_norm_ref(&x, width, w.as_deref(), 1e-6);
    Case::new(
        format!("rms_norm width={width} rows={rows} weighted={weighted}"),
        want,
        Tolerance::Relative(1e-5),
        move |h| h.rms_norm(&x, width, w.as_deref(), 1e-6),
    )
}

/// RoPE in place, or (`from`) out of place into the sink query's buffer. Vulkan and Metal only
/// promise sin/cos to an absolute 2^-11 on [-pi, pi] (the shader range-reduces to it), so a
/// rotated pair may differ by (|x0| + |x1|) 2^-11 <= 2 max|x| 4.9e-4 ~ 1e-3 of the max.
/// Rounding of theta = pos * freq is far below that; a wrong pairing, frequency or position is
/// O(1). Dimensions past `rope_dim` must come back unchanged, bit for bit.
pub fn rope(rng: &mut XorShift, p: RopeParams, n_tokens: u32, pos: u32, from: bool) -> Case {
    let x = rng.vec((n_tokens * p.n_heads * p.head_dim) as usize, 2.0);
    let want = rope_ref(&x, pos, &p);
    let max = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let bounds = (0..want.len())
        .map(|i| {
            if (i as u32) % p.head_dim < p.rope_dim {
                1e-3 * max
            } else {
                0.0
            }
        })
        .collect();
    Case::new(
        format!(
            "rope{} {} heads={} dim={}/{} tokens={n_tokens} pos={pos} max_pos={}",
            if from { "_from" } else { "" },
            p.layout,
            p.n_heads,
            p.head_dim,
            p.rope_dim,
            p.max_pos
        ),
        want,
        Tolerance::PerElement(bounds),
        move |h| h.rope(&x, pos, &p, from),
    )
}

/// The gated activation: one exp (or tanh) and 2-4 roundings an element; Vulkan's exp is
/// accurate to 3 + 2|x| ulp, <= 19 ulp ~ 1.1e-6 relative for |gate| <= 8, so 1e-5 of the
/// max is ample.
pub fn ffn_act(rng: &mut XorShift, width: usize, n_tokens: usize, act: Activation) -> Case {
    let gate = rng.vec(width * n_tokens, 8.0);
    let up = rng.vec(width * n_tokens, 2.0);
    let want = ffn_act_ref(&gate, &up, act);
    Case::new(
        format!("ffn_act {act:?} width={width} tokens={n_tokens}"),
        want,
        Tolerance::Relative(1e-5),
        move |h| h.ffn_act(&gate, &up, width, act),
    )
}

/// `x * s`: one multiplication, bit-exact.
pub fn scale(rng: &mut XorShift, width: usize, n_tokens: usize, s: f32) -> Case {
    let x = rng.vec(width * n_tokens, 100.0);
    let want: Vec<f32> = x.iter().map(|v| v * s).collect();
    Case::new(
        format!("scale width={width} tokens={n_tokens}"),
        want,
        Tolerance::PerElement(vec![0.0; x.len()]),
        move |h| h.scale(&x, width, s),
    )
}

/// The Hadamard rotation: log2(n) butterfly levels of one add each, then one scale, so each
/// output carries about log2(n) + 1 roundings of values up to sqrt(n) max|x|, ~9 2^-24 16 ~
/// 1e-5 of the max for n = 256; a wrong pairing or scale is O(1).
pub fn hadamard_rotation(rng: &mut XorShift, width: u32, rows: u32, n_tokens: usize) -> Case {
    let x = rng.vec(n_tokens * (width * rows) as usize, 3.0);
    let mut want = x.clone();
    hadamard(&mut want, hadamard_size(width) as usize);
    Case::new(
        format!("hadamard width={width} rows={rows} tokens={n_tokens}"),
        want,
        Tolerance::Relative(1e-5),
        move |h| h.hadamard(&x, width, rows),
    )
}

/// Depth of the GPU's f32 sum of one matmul output: a thread's serial sum over its 8-value
/// groups, each a dot4 + dot4 + add, then (cooperative) a 6-level tree over 64 threads, plus
/// the `k % 8` tail of float rows. Row-per-thread has no tree: one thread adds all of a row's
/// groups in order.
fn matmul_depth(strategy: Strategy, k: usize) -> usize {
    let groups = k / 8;
    match strategy {
        Strategy::Cooperative => groups.div_ceil(64) + 3 + 6 + (k % 8).div_ceil(64),
        Strategy::RowPerThread => groups + 3 + k % 8,
    }
}

/// Per-output bounds of `W x`: the reference sums exactly (f64, rounded once); the GPU adds in
/// f32 along a tree of depth `L` ([`matmul_depth`]), so by the recursive-summation bound
/// `|gpu - exact| <= (L + 1) u sum |w x|` (u = 2^-24, +1 for the product's rounding). The
/// dequantized weight may differ from the CPU's by one rounding where the compiler fuses
/// `q * d + m` into an fma: at most `u (|w| + max|row|)`. So `|gpu - ref| <= (L + 2) u
/// sum_k |x_k| (|w_k| + max|row|) + u |ref|` (the last term: the reference's own rounding).
fn matmul_bounds(
    strategy: Strategy,
    w: &[f32],
    x: &[f32],
    k: usize,
    n: usize,
    want: &[f32],
) -> Vec<f32> {
    let u = f64::from(f32::EPSILON) / 2.0;
    let depth = matmul_depth(strategy, k) as f64;
    let row_max: Vec<f64> = w
        .chunks_exact(k)
        .map(|r| r.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs())))
        .collect();
    let n_tokens = want.len() / n.max(1);
    let mut bounds = Vec::with_capacity(want.len());
    for t in 0..n_tokens {
        let xt = &x[t * k..][..k];
        for r in 0..n {
            let wr = &w[r * k..][..k];
            let mag: f64 = wr
                .iter()
                .zip(xt)
                .map(|(&a, &b)| f64::from(b).abs() * (f64::from(a).abs() + row_max[r]))
                .sum();
            let c = f64::from(want[t * n + r]).abs();
            bounds.push(((depth + 2.0) * u * mag + u * c) as f32);
        }
    }
    bounds
}

/// The description of an `n x k` tensor of type `ty` called `name`, as the GGUF reader makes one.
pub fn tensor_info(name: &str, ty: GgmlType, k: usize, n: usize, n_bytes: usize) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        ggml_type: ty,
        dims: vec![k as u64, n as u64],
        offset: 0,
        n_bytes: n_bytes as u64,
    }
}

/// Uploads a weight, in chunks of `chunk_rows` rows when given (to exercise multi-chunk
/// weights on any device).
fn upload(
    h: &Harness<'_>,
    info: &TensorInfo,
    bytes: &[u8],
    chunk_rows: Option<usize>,
) -> Result<GpuWeight> {
    match chunk_rows {
        Some(rows) => {
            let row_bytes = info
                .ggml_type
                .row_bytes(info.dims[0])
                .ok_or_else(|| Error::InvalidArgument("rows are not whole blocks".into()))?;
            GpuWeight::upload_with_limit(
                h.ctx,
                info,
                bytes,
                (rows as u64 * row_bytes).next_multiple_of(4),
            )
        }
        None => GpuWeight::upload(h.ctx, info, bytes),
    }
}

/// `W x` for a random `n x k` weight of type `ty` and `n_tokens` random rows of `x`, with the
/// weight split into chunks of `chunk_rows` rows when given, for kernels of `strategy`.
pub fn matmul(
    rng: &mut XorShift,
    ty: GgmlType,
    (k, n, n_tokens): (usize, usize, usize),
    chunk_rows: Option<usize>,
    strategy: Strategy,
) -> Result<Case> {
    let bytes = random_tensor(ty, k * n, rng)
        .ok_or_else(|| Error::InvalidArgument(format!("no random {ty} rows of {k} values")))?;
    let x = rng.vec(k * n_tokens, 1.0);
    let name =
        format!("matmul {ty} k={k} n={n} tokens={n_tokens} chunk_rows={chunk_rows:?} {strategy:?}");
    matmul_of(name, ty, bytes, (k, n), x, n_tokens, chunk_rows, strategy)
}

/// `W x` for given weight bytes (a real model's tensor) and activations.
#[allow(clippy::too_many_arguments)]
pub fn matmul_of(
    name: String,
    ty: GgmlType,
    bytes: Vec<u8>,
    (k, n): (usize, usize),
    x: Vec<f32>,
    n_tokens: usize,
    chunk_rows: Option<usize>,
    strategy: Strategy,
) -> Result<Case> {
    let want = matmul_ref(ty, &bytes, k, n, &x, n_tokens)?;
    let w = dequantize(ty, &bytes, k * n)?;
    let bounds = matmul_bounds(strategy, &w, &x, k, n, &want);
    let info = tensor_info("w", ty, k, n, bytes.len());
    Ok(Case::new(
        name,
        want,
        Tolerance::PerElement(bounds),
        move |h| {
            if h.kernels.strategy() != strategy {
                return Err(Error::InvalidArgument(format!(
                    "a {strategy:?} matmul case run on {:?} kernels",
                    h.kernels.strategy()
                )));
            }
            let weight = upload(h, &info, &bytes, chunk_rows)?;
            if let Some(rows) = chunk_rows {
                if weight.chunks().len() != n.div_ceil(rows) {
                    return Err(Error::Gpu(format!(
                        "{} chunks for {n} rows of {rows}",
                        weight.chunks().len()
                    )));
                }
            }
            h.matmul(&weight, &x, n_tokens as u32)
        },
    ))
}

/// Formats whose dequantization has an add after a product the compiler may fuse.
fn fused(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K
    )
}

/// Per-element bounds of an embedding gather: the GPU performs the CPU dequantizer's f32
/// operations in the same order and then one multiply by `scale`, so results are bit-exact
/// except where the compiler fuses `q * d + m` (Q4_1, Q5_1) or `dl * q - ml` (Q4_K, Q5_K) into
/// an fma: that skips one rounding of the product, `|dl q| 2^-24 <= (|w| + max|row|) 2^-24`,
/// then scaled. So `|gpu - ref| <= 2^-23 (|w| + max|row|) |scale|` for those, equal bits for
/// the rest. Rows whose id is no row are expected NaN (left untouched).
fn embedding_bounds(ty: GgmlType, want: &[f32], k: usize, scale: f32) -> Vec<f32> {
    let s = scale.abs();
    let mut bounds = Vec::with_capacity(want.len());
    for row in want.chunks(k) {
        let row_max = row.iter().fold(0f32, |m, v| m.max(v.abs())) / s;
        for &c in row {
            bounds.push(if fused(ty) {
                (c.abs() / s + row_max) * s / (1u32 << 23) as f32
            } else {
                0.0
            });
        }
    }
    bounds
}

/// The rows of `ids` of a random `n x k` table of type `ty` times `scale`.
pub fn embedding(
    rng: &mut XorShift,
    ty: GgmlType,
    (k, n): (usize, usize),
    ids: Vec<u32>,
    scale: f32,
    chunk_rows: Option<usize>,
) -> Result<Case> {
    let bytes = random_tensor(ty, k * n, rng)
        .ok_or_else(|| Error::InvalidArgument(format!("no random {ty} rows of {k} values")))?;
    let name = format!(
        "embedding {ty} k={k} n={n} ids={} scale={scale} chunk_rows={chunk_rows:?}",
        ids.len()
    );
    embedding_of(name, ty, bytes, (k, n), ids, scale, chunk_rows)
}

/// An embedding gather over given table bytes (a real model's token embedding).
pub fn embedding_of(
    name: String,
    ty: GgmlType,
    bytes: Vec<u8>,
    (k, n): (usize, usize),
    ids: Vec<u32>,
    scale: f32,
    chunk_rows: Option<usize>,
) -> Result<Case> {
    let want = embedding_ref(ty, &bytes, k, n, &ids, scale, f32::NAN)?;
    let bounds = embedding_bounds(ty, &want, k, scale);
    let info = tensor_info("token_embd", ty, k, n, bytes.len());
    Ok(Case::new(
        name,
        want,
        Tolerance::PerElement(bounds),
        move |h| {
            let weight = upload(h, &info, &bytes, chunk_rows)?;
            h.embedding(&weight, &ids, scale)
        },
    ))
}

/// A cache configuration for the cases (quantized keys centered, no rotation: the rotation is
/// its own kernel).
pub fn kv_config(k: KvType, v: KvType, sinks: u32, window: u32, recent: u32) -> KvConfig {
    KvConfig {
        k_type: k,
        v_type: v,
        sinks,
        window,
        recent,
        rotate: false,
        center_keys: true,
        policy: crate::kv::KvPolicy::Window,
    }
}

/// `kv_write` in steps of `steps` tokens into a cache of `kv` with batches of `batch`: every
/// position a query at the end can see decodes, from the device's words, to what the CPU twin
/// stores, within one quantization step of its block (the block's range / 15 for q4, amax /
/// 127 for q8: the two sides may round a code differently when the f16 scale rounds either
/// way) or one f16 ulp (amax / 1024) for f16 regions. The codebook formats get the f16 bound
/// too: their encoder is exact f32 arithmetic, so the device picks the twin's scale byte and
/// codes (only the key mean, summed in another order, may differ by rounding).
pub fn kv_write(
    rng: &mut XorShift,
    shape: HeadShape,
    kv: KvConfig,
    batch: u32,
    steps: Vec<usize>,
) -> Result<Case> {
    let layout = LayerLayout::new(&kv, shape, None, batch)?;
    let kt = (shape.n_kv_heads * shape.head_dim) as usize;
    let vt = (shape.n_kv_heads * shape.head_dim_v) as usize;
    let n: usize = steps.iter().sum();
    let k = rng.vec(n * kt, 3.0);
    let v = rng.vec(n * vt, 3.0);
    let n_kv = n as u32;
    let first = steps.first().copied().unwrap_or(0);
    let mean = first_write_mean(&layout, &k[..first * kt]);
    let mut want = Vec::new();
    let mut bounds = Vec::new();
    for j in layout.keys(n_kv.saturating_sub(1)) {
        for kvh in 0..shape.n_kv_heads {
            for (side, src, width, ty) in [
                (Side::K, &k, shape.head_dim, kv.k_type),
                (Side::V, &v, shape.head_dim_v, kv.v_type),
            ] {
                let w = width as usize;
                let head = &src[(j as usize * shape.n_kv_heads as usize + kvh as usize) * w..][..w];
                want.extend(stored_ref(&layout, side, j, kvh, n_kv, head, &mean));
                let in_f16 = j < layout.policy.sinks
                    || (kv.recent > 0 && j + kv.recent >= n_kv)
                    || ty == KvType::F16
                    || ty.codebook_bits().is_some();
                for block in head.chunks(32) {
                    let hi = block.iter().fold(f32::MIN, |a, &x| a.max(x));
                    let lo = block.iter().fold(f32::MAX, |a, &x| a.min(x));
                    let amax = block.iter().fold(0f32, |a, x| a.max(x.abs()));
                    let step = if in_f16 {
                        amax / 1024.0
                    } else if ty == KvType::Q4 {
                        (hi - lo) / 15.0
                    } else {
                        amax / 127.0
                    };
                    bounds.extend(std::iter::repeat_n(step * 1.01, block.len()));
                }
            }
        }
    }
    let name = format!(
        "kv_write K {} V {} heads={}x{}/{} sinks={} window={} recent={} steps={steps:?}",
        kv.k_type,
        kv.v_type,
        shape.n_kv_heads,
        shape.head_dim,
        shape.head_dim_v,
        kv.sinks,
        kv.window,
        kv.recent
    );
    Ok(Case::new(
        name,
        want,
        Tolerance::PerElement(bounds),
        move |h| {
            let cache = KvLayerCache::new(h.ctx, layout)?;
            let mut pos = 0;
            for &step in &steps {
                let (a, b) = (pos, pos + step);
                h.kv_write(&cache, pos as u32, &k[a * kt..b * kt], &v[a * vt..b * vt])?;
                pos = b;
            }
            let words = h.cache_words(&cache)?;
            let mut got = Vec::new();
            for j in layout.keys(n_kv.saturating_sub(1)) {
                for kvh in 0..shape.n_kv_heads {
                    for side in [Side::K, Side::V] {
                        got.extend(decode_at(&layout, &words, side, j, kvh, n_kv));
                    }
                }
            }
            Ok(got)
        },
    ))
}

/// The shape of an attention case.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub head_dim_v: u32,
    /// Queries (1: decode).
    pub n_tokens: u32,
    /// Positions written, the queries' own included.
    pub n_kv: u32,
    pub kv: KvConfig,
    pub softcap: f32,
    /// Amplitude of the queries: larger gives sharper scores.
    pub q_amp: f32,
}

/// Attention of the last `n_tokens` positions over a cache holding `n_kv`. The CPU twin
/// stores K/V through the CPU twin of each format, the device through `kv_write`; they agree
/// to f16 rounding of the scales (2^-11 relative, either way) and to ties in the code
/// rounding, so scores differ by < 1e-3 of |q||k| and the output by about as much of max|v|;
/// the f32 arithmetic adds ~1e-5. 2e-3 of max|out| bounds it; a wrong slot, region, format or
/// window is O(1).
pub fn attention(rng: &mut XorShift, c: AttentionShape) -> Result<Case> {
    let p = AttentionParams {
        n_heads: c.n_heads,
        n_kv_heads: c.n_kv_heads,
        head_dim: c.head_dim,
        head_dim_v: c.head_dim_v,
        scale: 1.0 / (c.head_dim as f32).sqrt(),
        softcap: c.softcap,
    };
    let shape = HeadShape {
        n_kv_heads: c.n_kv_heads,
        head_dim: c.head_dim,
        head_dim_v: c.head_dim_v,
    };
    // History is written in steps of 16 (or the queries' batch): the first sets the key mean.
    let layout = LayerLayout::new(&c.kv, shape, None, c.n_tokens.max(16))?;
    let q = rng.vec((c.n_tokens * c.n_heads * c.head_dim) as usize, c.q_amp);
    let q_sink = rng.vec(q.len(), c.q_amp);
    let k = rng.vec((c.n_kv * c.n_kv_heads * c.head_dim) as usize, 1.0);
    let v = rng.vec((c.n_kv * c.n_kv_heads * c.head_dim_v) as usize, 1.0);
    let pos = c.n_kv - c.n_tokens;
    let first = AttentionKernel::first_step(&layout, c.n_kv, c.n_tokens) as usize;
    let kt = (c.n_kv_heads * c.head_dim) as usize;
    let mean = first_write_mean(&layout, &k[..first * kt]);
    let want = attention_ref(&q, &q_sink, &k, &v, &mean, pos, &layout, &p);
    let name = format!(
        "attention {} heads={}/{} dims={}/{} tokens={} n_kv={} K {} V {} sinks={} window={} \
         recent={} softcap={}",
        if c.n_tokens == 1 { "decode" } else { "prefill" },
        c.n_heads,
        c.n_kv_heads,
        c.head_dim,
        c.head_dim_v,
        c.n_tokens,
        c.n_kv,
        c.kv.k_type,
        c.kv.v_type,
        c.kv.sinks,
        c.kv.window,
        c.kv.recent,
        c.softcap
    );
    Ok(Case::new(name, want, Tolerance::Relative(2e-3), move |h| {
        h.attention(&q, &q_sink, &k, &v, &layout, &p)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons() {
        let rel = Tolerance::Relative(0.1);
        assert!(compare(&[1.0, 2.05], &[1.0, 2.0], &rel).0 <= 1.0);
        assert!(compare(&[1.0, 2.5], &[1.0, 2.0], &rel).0 > 1.0);
        assert!(compare(&[f32::NAN, 2.0], &[1.0, 2.0], &rel).0 > 1.0);
        let exact = Tolerance::PerElement(vec![0.0, 0.0]);
        assert_eq!(compare(&[1.0, -0.0], &[1.0, -0.0], &exact).0, 0.0);
        assert!(compare(&[1.0, 0.0], &[1.0, -0.0], &exact).0 > 1.0);
        let untouched = Tolerance::PerElement(vec![0.0, 1.0]);
        assert_eq!(
            compare(&[f32::NAN, 1.5], &[f32::NAN, 1.0], &untouched).0,
            0.5
        );
        assert!(compare(&[3.0, 1.0], &[f32::NAN, 1.0], &untouched).0 > 1.0);
    }
}
