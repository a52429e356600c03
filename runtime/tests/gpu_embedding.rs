//! The embedding kernel on a real adapter, against its CPU twin, for every weight type the GPU
//! reads, with ids only on the GPU and rows spread over several chunks.
//!
//! These tests need a GPU adapter and FAIL without one (CI installs Mesa's lavapipe).
//!
//! Tolerance: the GPU performs the CPU dequantizer's f32 operations in the same order and then
//! one multiply by `scale`, so results are bit-exact except where the shader compiler fuses
//! `q * d + m` (Q4_1, Q5_1) or `dl * q - ml` (Q4_K, Q5_K) into an fma: that skips one rounding
//! of the product, `|dl q| / 2^24 <= (|w| + max|row|) / 2^24`, then scaled (one more rounding
//! either way, identical on both sides). The check is `|gpu - ref| <= 2^-23 (|w| + max|row|)
//! |scale|`, and bit equality for the formats without an add (F32, F16, BF16, Q4_0, Q5_0,
//! Q8_0, Q6_K).

mod common;

use voyager_runtime::gguf::{GgmlType, TensorInfo};
use voyager_runtime::gpu::kernels::embedding::{embedding_ref, EmbeddingKernel};
use voyager_runtime::gpu::weights::GpuWeight;
use voyager_runtime::gpu::GpuContext;

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

fn random_weight(ty: GgmlType, k: usize, n: usize, rng: &mut XorShift) -> Vec<u8> {
    let count = k * n;
    let vals: Vec<f32> = (0..count).map(|_| rng.unit()).collect();
    match ty {
        GgmlType::F32 => vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => vals
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        GgmlType::BF16 => vals
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
                        0.001 + 0.03 * rng.unit().abs()
                    };
                    block[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
                }
            }
            data
        }
    }
}

fn fused(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K
    )
}

fn check(what: &str, ty: GgmlType, gpu: &[f32], cpu: &[f32], k: usize, scale: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    for (t, (g, c)) in gpu.chunks(k).zip(cpu.chunks(k)).enumerate() {
        let row_max = c.iter().fold(0f32, |m, v| m.max(v.abs())) / scale.abs();
        for i in 0..k {
            let (g, c) = (g[i], c[i]);
            if c.is_nan() {
                assert!(
                    g.is_nan(),
                    "{what}: token {t} [{i}]: written ({g}), its id is no row"
                );
                continue;
            }
            if fused(ty) {
                let bound = (c.abs() / scale.abs() + row_max) * scale.abs() / (1u32 << 23) as f32;
                assert!(
                    (g - c).abs() <= bound,
                    "{what}: token {t} [{i}]: GPU {g} CPU {c} > {bound:e}"
                );
            } else {
                assert_eq!(
                    g.to_bits(),
                    c.to_bits(),
                    "{what}: token {t} [{i}]: GPU {g} CPU {c}"
                );
            }
        }
    }
}

#[test]
fn embedding_matches_cpu_for_every_type() {
    let ctx = context();
    let kernel = EmbeddingKernel::new(&ctx).unwrap();
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for &ty in TYPES {
        let block = ty.block_len() as usize;
        for (k, n, chunk_rows) in [
            (if block == 1 { 3 } else { block }, 5, None),
            (if block == 1 { 2053 } else { 9 * block }, 37, Some(4)),
        ] {
            let bytes = random_weight(ty, k, n, &mut rng);
            let info = TensorInfo {
                name: "token_embd".into(),
                ggml_type: ty,
                dims: vec![k as u64, n as u64],
                offset: 0,
                n_bytes: bytes.len() as u64,
            };
            let row_bytes = ty.row_bytes(k as u64).unwrap();
            let weight = match chunk_rows {
                Some(r) => GpuWeight::upload_with_limit(
                    &ctx,
                    &info,
                    &bytes,
                    (r * row_bytes).next_multiple_of(4),
                ),
                None => GpuWeight::upload(&ctx, &info, &bytes),
            }
            .unwrap();
            // Repeated ids, the first and last rows, and ids past the end (left untouched).
            let mut ids: Vec<u32> = (0..11)
                .map(|_| (rng.next_u64() % n as u64) as u32)
                .collect();
            ids.extend([0, n as u32 - 1, ids[0], n as u32, u32::MAX]);
            for scale in [1.0f32, 25.298221] {
                let gpu = kernel.run_with(&ctx, &weight, &ids, scale).unwrap();
                let cpu = embedding_ref(ty, &bytes, k, n, &ids, scale, f32::NAN).unwrap();
                let what = format!(
                    "{ty} k={k} n={n} chunks={} scale={scale}",
                    weight.chunks().len()
                );
                check(&what, ty, &gpu, &cpu, k, scale);
            }
        }
        eprintln!("{ty}: ok");
    }
}

/// Gemma 3's 262144 x 640 Q8_0 token embedding (178 MB) is larger than lavapipe's 128 MiB
/// storage binding: it is uploaded in several chunks and looked up across them.
#[test]
fn embedding_of_a_real_model_spans_chunks() {
    let file = common::model("gemma3-270m");
    let ctx = context();
    let t = file.tensor("token_embd.weight").unwrap().clone();
    let bytes = file.tensor_data(&t);
    let start = std::time::Instant::now();
    let weight = GpuWeight::upload(&ctx, &t, bytes).unwrap();
    eprintln!(
        "{}: {} x {} {}, {} bytes in {} chunks, uploaded in {:.2} s",
        t.name,
        weight.rows(),
        weight.cols(),
        weight.ty(),
        weight.n_bytes(),
        weight.chunks().len(),
        start.elapsed().as_secs_f64()
    );
    assert_eq!(weight.n_bytes(), t.n_bytes);
    let max_chunk = ctx
        .limits()
        .max_storage_buffer_binding_size
        .min(ctx.limits().max_buffer_size);
    assert!(weight.chunks().iter().all(|c| c.buffer.size() <= max_chunk));
    if t.n_bytes > max_chunk {
        assert!(weight.chunks().len() > 1);
    }
    let (k, n) = (weight.cols() as usize, weight.rows() as usize);
    let boundary = weight.chunks().last().unwrap().first_row;
    let ids = [
        2,
        0,
        boundary - 1,
        boundary,
        106,
        n as u32 - 1,
        262_000,
        1000,
    ];
    let scale = (k as f32).sqrt();
    let gpu = EmbeddingKernel::run(&ctx, &weight, &ids, scale).unwrap();
    let cpu = embedding_ref(t.ggml_type, bytes, k, n, &ids, scale, f32::NAN).unwrap();
    check("gemma token_embd", t.ggml_type, &gpu, &cpu, k, scale);
}

/// The engine's usage: bind once, then per step write new ids (on the GPU only) and the
/// `Step` uniform; tokens past `n_tokens` are left untouched.
#[test]
fn one_binding_serves_steps_with_new_ids() {
    let ctx = context();
    let kernel = EmbeddingKernel::new(&ctx).unwrap();
    let mut rng = XorShift(5);
    let (ty, k, n, max_tokens) = (GgmlType::Q6_K, 256, 30, 8usize);
    let bytes = random_weight(ty, k, n, &mut rng);
    let info = TensorInfo {
        name: "token_embd".into(),
        ggml_type: ty,
        dims: vec![k as u64, n as u64],
        offset: 0,
        n_bytes: bytes.len() as u64,
    };
    let weight = GpuWeight::upload_with_limit(&ctx, &info, &bytes, 7 * 210 + 2).unwrap();
    assert_eq!(weight.chunks().len(), 5);
    let dst = wgpu::BufferUsages::COPY_DST;
    let ids = ctx
        .create_buffer_init("ids", &[0; 32], wgpu::BufferUsages::STORAGE | dst)
        .unwrap();
    let nan = vec![f32::NAN; k * max_tokens];
    let out = ctx
        .create_buffer_init(
            "out",
            bytemuck::cast_slice(&nan),
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | dst,
        )
        .unwrap();
    let step = ctx
        .create_buffer_init("step", &[0; 16], wgpu::BufferUsages::UNIFORM | dst)
        .unwrap();
    let binding = kernel
        .bind(&ctx, &weight, &ids, &out, &step, 2.0, max_tokens as u32)
        .unwrap();
    for batch in [vec![29u32, 0, 7], vec![1, 2, 3, 4, 5, 6, 28, 14], vec![13]] {
        let m = batch.len() as u32;
        ctx.queue()
            .write_buffer(&out, 0, bytemuck::cast_slice(&nan));
        ctx.queue()
            .write_buffer(&ids, 0, bytemuck::cast_slice(&batch));
        ctx.queue()
            .write_buffer(&step, 0, bytemuck::cast_slice(&[m, 0, m, 0]));
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            kernel.encode(&mut pass, &binding, m);
        }
        ctx.queue().submit([encoder.finish()]);
        let got = ctx.read_f32(&out, k * max_tokens).unwrap();
        let mut want = embedding_ref(ty, &bytes, k, n, &batch, 2.0, f32::NAN).unwrap();
        want.resize(k * max_tokens, f32::NAN);
        check(&format!("batch {batch:?}"), ty, &got, &want, k, 2.0);
    }
}
