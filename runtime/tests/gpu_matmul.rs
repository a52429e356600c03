//! The matmul kernel on a real adapter, against its CPU twin, for every weight type the GPU
//! reads, odd shapes, decode and prefill tilings, and weights split over several chunks.
//!
//! These tests need a GPU adapter and FAIL without one (CI installs Mesa's lavapipe).
//!
//! Tolerance, per output element: the reference sums exactly (f64, rounded once). The GPU adds
//! in f32 along a tree of depth at most `L = ceil(groups / 64) + 3 + 6` (a thread's serial sum
//! over its 8-value groups, each group a dot4 + dot4 + add, then a 6-level tree over the 64
//! threads; plus the k % 8 tail for float rows), so by the standard recursive-summation bound
//! `|gpu - exact| <= (L + 1) u sum |w x|` (u = 2^-24; +1 for the product's rounding). The
//! dequantized weight itself may differ from the CPU's by one rounding when the GPU compiler
//! fuses `q * d + m` / `dl * q - ml` into an fma: at most `u (|w| + max|row|)`. The check is
//! `|gpu - ref| <= (L + 2) u sum_k |x_k| (|w_k| + max|row|) + u |ref|` (the last term: the
//! reference's own final rounding). For k = 2048 that is about 16 u relative to the magnitude
//! sum: a bound from the summation order, not a loose constant. Also printed: the observed
//! normalized error `max |gpu - ref| / max |ref|`.
//!
//! The row-per-thread strategy (chosen on CPU adapters) has no tree: one thread adds all of a
//! row's groups in order, so `L = groups + 3 + k % 8`, the depth of that serial sum. Every test
//! below runs both strategies on the adapter at hand.

mod common;

use std::time::Instant;

use voyager_runtime::gguf::{GgmlType, TensorInfo};
use voyager_runtime::gpu::kernels::matmul::{matmul_ref, MatmulKernel, Strategy};
use voyager_runtime::gpu::weights::GpuWeight;
use voyager_runtime::gpu::GpuContext;
use voyager_runtime::quant::dequantize;

fn context() -> GpuContext {
    let ctx = GpuContext::new().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("adapter: {} ({})", ctx.adapter_name(), ctx.backend());
    ctx
}

/// xorshift64*: deterministic test data without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.unit()).collect()
    }
}

const TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Byte offsets of the f16 scale fields in one block, and whether each is a (signed) min.
fn f16_fields(ty: GgmlType) -> &'static [(usize, bool)] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[(0, false)],
        GgmlType::Q4_1 | GgmlType::Q5_1 => &[(0, false), (2, true)],
        GgmlType::Q4_K | GgmlType::Q5_K => &[(0, false), (2, false)],
        GgmlType::Q6_K => &[(208, false)],
        _ => &[],
    }
}

/// `n` valid rows of `k` values: floats from random values in [-1, 1); quantized blocks from
/// random bytes with their f16 scales overwritten by sane finite values.
fn random_weight(ty: GgmlType, k: usize, n: usize, rng: &mut XorShift) -> Vec<u8> {
    let count = k * n;
    match ty {
        GgmlType::F32 => rng
            .vec(count)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        GgmlType::F16 => rng
            .vec(count)
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        GgmlType::BF16 => rng
            .vec(count)
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        _ => {
            let bytes = ty.row_bytes(count as u64).unwrap() as usize;
            let mut data: Vec<u8> = (0..bytes).map(|_| rng.next_u64() as u8).collect();
            for block in data.chunks_exact_mut(ty.block_bytes() as usize) {
                for &(at, is_min) in f16_fields(ty) {
                    let v = if is_min {
                        rng.unit() * 0.1
                    } else {
                        // Scales in [0.001, 0.031]: normal f16 values, products far from overflow.
                        0.001 + 0.03 * rng.unit().abs()
                    };
                    block[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
                }
            }
            data
        }
    }
}

fn info(name: &str, ty: GgmlType, k: usize, n: usize, n_bytes: usize) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        ggml_type: ty,
        dims: vec![k as u64, n as u64],
        offset: 0,
        n_bytes: n_bytes as u64,
    }
}

const STRATEGIES: [Strategy; 2] = Strategy::ALL;

/// Depth of the GPU's f32 sum of one output (see the top of the file).
fn depth(strategy: Strategy, k: usize) -> usize {
    let groups = k / 8;
    match strategy {
        Strategy::Cooperative => groups.div_ceil(64) + 3 + 6 + (k % 8).div_ceil(64),
        Strategy::RowPerThread => groups + 3 + k % 8,
    }
}

/// Asserts the bound described at the top of the file; returns the normalized error.
#[allow(clippy::too_many_arguments)]
fn check(
    what: &str,
    strategy: Strategy,
    gpu: &[f32],
    cpu: &[f32],
    w: &[f32],
    x: &[f32],
    k: usize,
    n: usize,
) -> f64 {
    let u = f64::from(f32::EPSILON) / 2.0;
    let depth = depth(strategy, k);
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    let n_tokens = cpu.len() / n;
    let row_max: Vec<f64> = w
        .chunks_exact(k)
        .map(|r| r.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs())))
        .collect();
    let mut max_err = 0f64;
    let mut max_ref = 0f64;
    for t in 0..n_tokens {
        let xt = &x[t * k..][..k];
        for r in 0..n {
            let wr = &w[r * k..][..k];
            let mag: f64 = wr
                .iter()
                .zip(xt)
                .map(|(&a, &b)| f64::from(b).abs() * (f64::from(a).abs() + row_max[r]))
                .sum();
            let (g, c) = (f64::from(gpu[t * n + r]), f64::from(cpu[t * n + r]));
            let bound = (depth as f64 + 2.0) * u * mag + u * c.abs();
            let err = (g - c).abs();
            assert!(
                err <= bound,
                "{what}: token {t} row {r}: GPU {g} CPU {c}, error {err:e} > bound {bound:e}"
            );
            max_err = max_err.max(err);
            max_ref = max_ref.max(c.abs());
        }
    }
    max_err / (max_ref + 1e-30)
}

fn case(
    ctx: &GpuContext,
    (kernel, strategy): (&MatmulKernel, Strategy),
    ty: GgmlType,
    (k, n, n_tokens): (usize, usize, usize),
    chunk_rows: Option<usize>,
    rng: &mut XorShift,
) -> f64 {
    let bytes = random_weight(ty, k, n, rng);
    let ti = info("w", ty, k, n, bytes.len());
    let row_bytes = ty.row_bytes(k as u64).unwrap();
    let weight = match chunk_rows {
        Some(rows) => GpuWeight::upload_with_limit(
            ctx,
            &ti,
            &bytes,
            (rows as u64 * row_bytes).next_multiple_of(4),
        ),
        None => GpuWeight::upload(ctx, &ti, &bytes),
    }
    .unwrap_or_else(|e| panic!("{ty} upload: {e}"));
    if let Some(rows) = chunk_rows {
        assert_eq!(weight.chunks().len(), n.div_ceil(rows), "{ty}: chunk count");
    }
    assert_eq!(weight.n_bytes(), bytes.len() as u64);
    let x = rng.vec(k * n_tokens);
    let gpu = kernel
        .run_with(ctx, &weight, &x, n_tokens as u32)
        .unwrap_or_else(|e| panic!("{ty}: {e}"));
    let cpu = matmul_ref(ty, &bytes, k, n, &x, n_tokens).unwrap();
    let w = dequantize(ty, &bytes, k * n).unwrap();
    let what = format!(
        "{strategy:?} {ty} k={k} n={n} tokens={n_tokens} chunks={}",
        weight.chunks().len()
    );
    check(&what, strategy, &gpu, &cpu, &w, &x, k, n)
}

#[test]
fn matmul_matches_cpu_for_every_type() {
    let ctx = context();
    for strategy in STRATEGIES {
        let kernel = MatmulKernel::with_strategy(&ctx, strategy).unwrap();
        every_type(&ctx, (&kernel, strategy));
    }
}

fn every_type(ctx: &GpuContext, kernel: (&MatmulKernel, Strategy)) {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for &ty in TYPES {
        let start = Instant::now();
        let block = ty.block_len() as usize;
        // Float rows of odd length exercise the k % 8 tail; quantized rows are whole blocks.
        let (one, several) = if block == 1 {
            (5, 203)
        } else {
            (block, 5 * block)
        };
        let mut worst = 0f64;
        for (shape, chunks) in [
            ((one, 1, 1), None),
            ((one, 3, 2), None),
            ((several, 37, 1), None),
            ((several, 37, 7), None),
            ((one, 129, 1), Some(10)),
            ((several, 129, 67), Some(50)),
            ((2 * block.max(8), 130, 9), Some(1)),
        ] {
            worst = worst.max(case(ctx, kernel, ty, shape, chunks, &mut rng));
        }
        eprintln!(
            "{:?} {ty}: ok, worst normalized error {worst:.2e}, {:.2} s",
            kernel.1,
            start.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn uploads_refuse_bad_weights() {
    let ctx = context();
    let q8 = vec![0u8; 34 * 4];
    // A type no kernel reads.
    let bad = info("q2k", GgmlType::Q2_K, 256, 1, 84);
    assert!(GpuWeight::upload(&ctx, &bad, &[0; 84]).is_err());
    // Byte size that does not match the shape or the tensor info.
    assert!(GpuWeight::upload(&ctx, &info("w", GgmlType::Q8_0, 64, 2, 136), &q8[..100]).is_err());
    assert!(GpuWeight::upload(&ctx, &info("w", GgmlType::Q8_0, 64, 2, 100), &q8).is_err());
    // Rows that are not whole blocks.
    assert!(GpuWeight::upload(&ctx, &info("w", GgmlType::Q8_0, 48, 2, 102), &q8[..102]).is_err());
    // A row larger than a chunk may be.
    let ok = info("w", GgmlType::Q8_0, 64, 2, 136);
    let err = GpuWeight::upload_with_limit(&ctx, &ok, &q8[..136], 64).unwrap_err();
    assert!(err.to_string().contains("one row"), "{err}");
    let w = GpuWeight::upload_with_limit(&ctx, &ok, &q8[..136], 68).unwrap();
    assert_eq!(
        (w.rows(), w.cols(), w.chunks().len(), w.n_bytes()),
        (2, 64, 2, 136)
    );
    // Odd-sized rows are padded to whole words.
    assert_eq!(w.chunks()[0].buffer.size(), 68);
    let q40 = info("w", GgmlType::Q4_0, 32, 3, 54);
    let w = GpuWeight::upload_with_limit(&ctx, &q40, &[0; 54], 20).unwrap();
    assert_eq!(w.chunks().len(), 3);
    assert!(w
        .chunks()
        .iter()
        .all(|c| c.buffer.size() == 20 && c.n_bytes == 18));
}

/// Real tensors of the real models (pulled through the catalog when missing).
#[test]
fn matmul_matches_cpu_on_real_model_tensors() {
    let ctx = context();
    let kernel_strategy = Strategy::for_device(&ctx);
    let kernel = MatmulKernel::with_strategy(&ctx, kernel_strategy).unwrap();
    let mut rng = XorShift(42);
    let cases = [
        ("smollm2-135m", "blk.0.ffn_down.weight"),
        ("smollm2-135m", "blk.0.attn_norm.weight"),
        ("gemma3-270m", "blk.0.attn_q.weight"),
        ("gemma3-270m", "blk.0.attn_output.weight"),
        ("gemma3-270m", "blk.0.ffn_down.weight"),
        ("gemma3-270m", "blk.0.attn_v.weight"),
    ];
    for (model, name) in cases {
        let file = common::model(model);
        let t = file.tensor(name).unwrap().clone();
        let bytes = file.tensor_data(&t);
        let start = Instant::now();
        let weight = GpuWeight::upload(&ctx, &t, bytes).unwrap();
        let (k, n) = (weight.cols() as usize, weight.rows() as usize);
        for n_tokens in [1usize, 5] {
            let x = rng.vec(k * n_tokens);
            let gpu = kernel.run_with(&ctx, &weight, &x, n_tokens as u32).unwrap();
            let cpu = matmul_ref(t.ggml_type, bytes, k, n, &x, n_tokens).unwrap();
            let w = dequantize(t.ggml_type, bytes, k * n).unwrap();
            let what = format!("{name} ({}, {k} x {n}) tokens={n_tokens}", t.ggml_type);
            let e = check(&what, kernel_strategy, &gpu, &cpu, &w, &x, k, n);
            eprintln!(
                "{what}: normalized error {e:.2e}, {:.2} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
}

/// Gemma 3's tied output projection: the 262144 x 640 Q8_0 token embedding (178 MB, more than
/// lavapipe's 128 MiB binding) as the logits matmul, over several chunks. Checked on rows
/// around each chunk boundary and the ends (the CPU reference of all 262144 rows is too slow).
#[test]
fn logits_over_a_chunked_real_weight() {
    let file = common::model("gemma3-270m");
    let ctx = context();
    let t = file.tensor("token_embd.weight").unwrap().clone();
    let bytes = file.tensor_data(&t);
    let weight = GpuWeight::upload(&ctx, &t, bytes).unwrap();
    let (k, n) = (weight.cols() as usize, weight.rows() as usize);
    let mut rng = XorShift(7);
    let n_tokens = 1;
    let x = rng.vec(k * n_tokens);
    let start = Instant::now();
    let strategy = Strategy::for_device(&ctx);
    let gpu = MatmulKernel::run(&ctx, &weight, &x, n_tokens as u32).unwrap();
    eprintln!(
        "logits: {n} x {k} {} in {} chunks, {n_tokens} tokens, {:.2} s",
        t.ggml_type,
        weight.chunks().len(),
        start.elapsed().as_secs_f64()
    );
    let row_bytes = weight.row_bytes() as usize;
    let mut rows: Vec<usize> = vec![0, 1, n - 2, n - 1];
    for c in weight.chunks().iter().skip(1) {
        let b = c.first_row as usize;
        rows.extend(b - 3..b + 3);
    }
    for r in rows {
        let wb = &bytes[r * row_bytes..][..row_bytes];
        let cpu = matmul_ref(t.ggml_type, wb, k, 1, &x, n_tokens).unwrap();
        let w = dequantize(t.ggml_type, wb, k).unwrap();
        let g: Vec<f32> = (0..n_tokens).map(|tok| gpu[tok * n + r]).collect();
        check(&format!("logits row {r}"), strategy, &g, &cpu, &w, &x, k, 1);
    }
}

/// The engine's usage: bind once for `max_tokens`, then per step write the `Step` uniform and
/// record into one encoder; a smaller batch leaves the rows of later tokens untouched.
#[test]
fn one_binding_serves_steps_of_any_size() {
    let ctx = context();
    for strategy in STRATEGIES {
        let kernel = MatmulKernel::with_strategy(&ctx, strategy).unwrap();
        steps_of_any_size(&ctx, &kernel, strategy);
    }
}

fn steps_of_any_size(ctx: &GpuContext, kernel: &MatmulKernel, strategy: Strategy) {
    let mut rng = XorShift(99);
    let (ty, k, n, max_tokens) = (GgmlType::Q4_K, 512, 45, 16usize);
    let bytes = random_weight(ty, k, n, &mut rng);
    let ti = info("w", ty, k, n, bytes.len());
    let weight = GpuWeight::upload_with_limit(ctx, &ti, &bytes, 20 * 288).unwrap();
    assert_eq!(weight.chunks().len(), 3);
    let x = rng.vec(k * max_tokens);
    let storage = wgpu::BufferUsages::STORAGE;
    let gx = ctx
        .create_buffer_init("x", bytemuck::cast_slice(&x), storage)
        .unwrap();
    let nan = vec![f32::NAN; n * max_tokens];
    let gy = ctx
        .create_buffer_init(
            "y",
            bytemuck::cast_slice(&nan),
            storage | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        )
        .unwrap();
    let step = ctx
        .create_buffer_init(
            "step",
            bytemuck::cast_slice(&[0u32; 4]),
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )
        .unwrap();
    let binding = kernel
        .bind(ctx, &weight, &gx, &gy, &step, max_tokens as u32)
        .unwrap();
    let w = dequantize(ty, &bytes, k * n).unwrap();
    for n_tokens in [1usize, 9, 16, 2] {
        ctx.queue().write_buffer(&gy, 0, bytemuck::cast_slice(&nan));
        ctx.queue().write_buffer(
            &step,
            0,
            bytemuck::cast_slice(&[n_tokens as u32, 0, n_tokens as u32, 0]),
        );
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            kernel.encode(&mut pass, &binding, n_tokens as u32);
        }
        ctx.queue().submit([encoder.finish()]);
        let y = ctx.read_f32(&gy, n * max_tokens).unwrap();
        let cpu = matmul_ref(ty, &bytes, k, n, &x, n_tokens).unwrap();
        check(
            &format!("{strategy:?} step of {n_tokens}"),
            strategy,
            &y[..n * n_tokens],
            &cpu,
            &w,
            &x,
            k,
            n,
        );
        assert!(
            y[n * n_tokens..].iter().all(|v| v.is_nan()),
            "step of {n_tokens}: rows of later tokens were written"
        );
    }
}
