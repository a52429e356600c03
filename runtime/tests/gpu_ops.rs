//! The transformer's non-weight ops on a real adapter (lavapipe in CI), against their CPU
//! twins: rms_norm, rope, ffn_act / scale, kv_write and attention.
//!
//! These tests need a GPU adapter and FAIL without one. Errors are measured as the max
//! absolute difference normalized by the max |reference| (`rel_err`); each bound is argued
//! where it is checked. Inputs come from a fixed-seed xorshift.

use std::time::Instant;

use voyager_runtime::gpu::kernels::attention::{attention_ref, AttentionKernel, AttentionParams};
use voyager_runtime::gpu::kernels::ffn_act::{ffn_act_ref, Activation, FfnActKernel};
use voyager_runtime::gpu::kernels::kv_cache::{
    pack_f16, KvCache, KvLayerCache, KvShape, KvWriteKernel,
};
use voyager_runtime::gpu::kernels::rms_norm::{rms_norm_ref, RmsNormKernel};
use voyager_runtime::gpu::kernels::rope::{rope_ref, RopeKernel, RopeParams};
use voyager_runtime::gpu::kernels::step::{create_step_buffer, write_step, Step};
use voyager_runtime::gpu::kernels::strategy::Strategy;
use voyager_runtime::gpu::GpuContext;
use voyager_runtime::model::RopeLayout;

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
    fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
    }

    fn vec(&mut self, n: usize, amplitude: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * amplitude).collect()
    }
}

/// max |gpu - cpu| / max |cpu|.
fn rel_err(gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "length");
    let scale = cpu
        .iter()
        .fold(0f32, |m, x| m.max(x.abs()))
        .max(f32::MIN_POSITIVE);
    let diff = gpu
        .iter()
        .zip(cpu)
        .fold(0f32, |m, (g, c)| m.max((g - c).abs()));
    assert!(gpu.iter().all(|x| x.is_finite()), "non-finite GPU output");
    diff / scale
}

fn check(what: &str, gpu: &[f32], cpu: &[f32], tol: f32, start: Instant) {
    let err = rel_err(gpu, cpu);
    eprintln!(
        "{what}: rel err {err:.2e} (tol {tol:.0e}) in {:.2?}",
        start.elapsed()
    );
    assert!(err <= tol, "{what}: rel err {err:e} > {tol:e}");
}

// rms_norm: the sum of n squares is accumulated by 128 threads in strides, then by a
// 7-level tree; each partial sum carries at most (n/128 + 7) roundings, i.e. a relative
// error <= (n/128 + 7) * 2^-24 ~ 1e-6 for n = 1000, halved by the square root, plus ~3
// roundings for 1/sqrt, x * scale and * w. 1e-5 leaves room for GPU sqrt (a few ulp).
#[test]
fn rms_norm_matches_cpu() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0001);
    for (width, rows, weighted) in [
        (1usize, 3usize, true),
        (7, 3, false),
        (576, 3, true),
        (640, 1, true),
        (1000, 17, true),
        (64, 17 * 9, false), // per-head q norm: 17 tokens x 9 heads
        (256, 3 * 4, true),
    ] {
        let start = Instant::now();
        let x = rng.vec(width * rows, 3.0);
        let w = rng.vec(width, 2.0);
        let weight = weighted.then_some(w.as_slice());
        let gpu = RmsNormKernel::run(&ctx, &x, width, weight, 1e-6).unwrap();
        let cpu = rms_norm_ref(&x, width, weight, 1e-6);
        check(
            &format!("rms_norm width {width} rows {rows}"),
            &gpu,
            &cpu,
            1e-5,
            start,
        );
    }
}

// rope: Vulkan/Metal only promise sin/cos to an absolute 2^-11 on [-pi, pi] (the shader
// range-reduces to it), so a rotated pair may differ by (|x0| + |x1|) * 2^-11 <= 2 max|x|
// * 4.9e-4 ~ 1e-3 of the max. Rounding of theta = pos * freq (<= 2^-24 * 60 rad here) is
// far below that. lavapipe is much better (see the printed errors); a wrong pairing,
// frequency or position is O(1).
#[test]
fn rope_matches_cpu() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0002);
    let cases = [
        // (n_heads, head_dim, rope_dim, n_tokens, pos, layout, base, freq_scale)
        (
            9u32,
            64u32,
            64u32,
            1u32,
            0u32,
            RopeLayout::Normal,
            10000.0f32,
            1.0f32,
        ),
        (9, 64, 64, 17, 5, RopeLayout::Neox, 1_000_000.0, 1.0),
        (4, 256, 256, 3, 40, RopeLayout::Neox, 10000.0, 0.125),
        (3, 64, 32, 3, 11, RopeLayout::Normal, 10000.0, 1.0),
        (3, 64, 32, 17, 2, RopeLayout::Neox, 500000.0, 1.0),
    ];
    for (n_heads, head_dim, rope_dim, n_tokens, pos, layout, base, freq_scale) in cases {
        let start = Instant::now();
        let p = RopeParams {
            n_heads,
            head_dim,
            rope_dim,
            base,
            freq_scale,
            layout,
        };
        let x = rng.vec((n_tokens * n_heads * head_dim) as usize, 2.0);
        let gpu = RopeKernel::run(&ctx, &x, pos, &p).unwrap();
        let cpu = rope_ref(&x, pos, &p);
        let what = format!(
            "rope {layout} heads {n_heads} dim {head_dim}/{rope_dim} tokens {n_tokens} pos {pos}"
        );
        check(&what, &gpu, &cpu, 1e-3, start);
        if rope_dim < head_dim {
            for (i, (g, x)) in gpu.iter().zip(&x).enumerate() {
                if i as u32 % head_dim >= rope_dim {
                    assert_eq!(
                        g.to_bits(),
                        x.to_bits(),
                        "{what}: dim {i} past rope_dim changed"
                    );
                }
            }
        }
    }
}

// ffn_act: one exp (or tanh) and 2-4 roundings an element; Vulkan's exp is accurate to
// 3 + 2|x| ulp, <= 19 ulp ~ 1.1e-6 relative for |gate| <= 8, so 1e-5 of the max is ample.
// scale is one multiplication: bit-exact.
#[test]
fn ffn_act_and_scale_match_cpu() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0003);
    for width in [1usize, 7, 1000] {
        for act in [Activation::Silu, Activation::GeluTanh] {
            let start = Instant::now();
            let n = width * 3;
            let gate = rng.vec(n, 8.0);
            let up = rng.vec(n, 2.0);
            let gpu = FfnActKernel::run(&ctx, &gate, &up, width, act).unwrap();
            let cpu = ffn_act_ref(&gate, &up, act);
            check(
                &format!("ffn_act {act:?} width {width}"),
                &gpu,
                &cpu,
                1e-5,
                start,
            );
        }
    }
    let x = rng.vec(7 * 17, 100.0);
    let s = 24.0f32.sqrt();
    let gpu = FfnActKernel::run_scale(&ctx, &x, 7, s).unwrap();
    for (g, x) in gpu.iter().zip(&x) {
        assert_eq!(g.to_bits(), (x * s).to_bits());
    }
}

/// WGSL lets an f32 -> f16 conversion round either way: accept the nearest-even f16 or an
/// adjacent one, and count how many were not the nearest.
fn f16_words_close(gpu: &[u32], cpu: &[u32]) -> usize {
    let mut off = 0;
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        for shift in [0, 16] {
            let (a, b) = ((g >> shift) as u16, (c >> shift) as u16);
            if a != b {
                assert!(
                    (i32::from(a) - i32::from(b)).abs() == 1,
                    "word {i}: f16 {a:#06x} vs {b:#06x}"
                );
                off += 1;
            }
        }
    }
    off
}

#[test]
fn kv_write_appends_f16() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0004);
    let shape = KvShape {
        n_kv_heads: 3,
        head_dim: 64,
        head_dim_v: 32,
    };
    let capacity = 24;
    let cache = KvLayerCache::new(&ctx, shape, capacity).unwrap();
    assert_eq!(cache.bytes_per_token(), 3 * (64 + 32) * 2);
    let kt = (shape.n_kv_heads * shape.head_dim) as usize;
    let vt = (shape.n_kv_heads * shape.head_dim_v) as usize;
    // A 17-token prefill, then a 3-token batch appended after it.
    let k = rng.vec(20 * kt, 4.0);
    let v = rng.vec(20 * vt, 4.0);
    let start = Instant::now();
    KvWriteKernel::run(&ctx, &cache, 0, &k[..17 * kt], &v[..17 * vt]).unwrap();
    KvWriteKernel::run(&ctx, &cache, 17, &k[17 * kt..], &v[17 * vt..]).unwrap();
    let read = |b: &voyager_runtime::gpu::GpuBuffer| -> Vec<u32> {
        bytemuck::pod_collect_to_vec(&ctx.read_bytes(b, 0, b.size()).unwrap())
    };
    let (gk, gv) = (read(&cache.k), read(&cache.v));
    let mut k_want = pack_f16(&k);
    k_want.resize(capacity as usize * kt / 2, 0);
    let mut v_want = pack_f16(&v);
    v_want.resize(capacity as usize * vt / 2, 0);
    let off = f16_words_close(&gk, &k_want) + f16_words_close(&gv, &v_want);
    eprintln!(
        "kv_write: {off} f16 values not nearest-even, in {:.2?}",
        start.elapsed()
    );
    // Slots 20.. were never written.
    assert!(gk[20 * kt / 2..].iter().all(|&w| w == 0));
    assert!(KvWriteKernel::run(&ctx, &cache, 22, &k[..3 * kt], &v[..3 * vt]).is_err());
}

struct AttnCase {
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    head_dim_v: u32,
    n_tokens: u32,
    pos: u32,
    window: u32,
    softcap: f32,
    q_amp: f32,
}

// attention: K/V are rounded to f16 identically on both sides (the cache is filled with the
// CPU's f16 here), so the difference is f32 arithmetic only. A score's dot product over
// head_dim terms is off by about sqrt(head_dim) * 2^-24 * |q||k| (worst case head_dim *
// 2^-24 * sum|q_i k_i| * scale <~ 1e-4 absolute for these inputs); a score error d scales a
// softmax weight by (1 + d), so the output moves by at most ~d of max|v|; the running sums
// over <= 8.4k keys and exp (a few ulp) add ~1e-6. 2e-4 of max|out| bounds it.
fn attention_case(ctx: &GpuContext, rng: &mut XorShift, c: &AttnCase) {
    let p = AttentionParams {
        n_heads: c.n_heads,
        n_kv_heads: c.n_kv_heads,
        head_dim: c.head_dim,
        head_dim_v: c.head_dim_v,
        window: c.window,
        scale: 1.0 / (c.head_dim as f32).sqrt(),
        softcap: c.softcap,
    };
    let n_kv = c.pos + c.n_tokens;
    let capacity = n_kv + 5;
    let q = rng.vec((c.n_tokens * c.n_heads * c.head_dim) as usize, c.q_amp);
    let k = rng.vec((n_kv * c.n_kv_heads * c.head_dim) as usize, 1.0);
    let v = rng.vec((n_kv * c.n_kv_heads * c.head_dim_v) as usize, 1.0);
    let cpu = attention_ref(&q, &k, &v, c.pos, &p);
    // Prefill has a cooperative and a row-per-thread kernel: check both. The bound holds for
    // either order of summation: the serial sum over a split of at most 128 keys, then over
    // at most 16 splits, adds at most (128 + 16) * 2^-24 (9e-6) relative error to the softmax
    // weights.
    for strategy in Strategy::ALL {
        let start = Instant::now();
        let kernel = AttentionKernel::with_strategy(ctx, strategy).unwrap();
        let gpu = kernel
            .run_with(ctx, &q, &k, &v, c.pos, capacity, &p)
            .unwrap();
        let what = format!(
            "{strategy:?} attention {} heads {}/{} dim {}/{} tokens {} pos {} window {} softcap {}",
            if c.n_tokens == 1 { "decode" } else { "prefill" },
            c.n_heads,
            c.n_kv_heads,
            c.head_dim,
            c.head_dim_v,
            c.n_tokens,
            c.pos,
            c.window,
            c.softcap
        );
        check(&what, &gpu, &cpu, 2e-4, start);
    }
}

#[test]
fn attention_prefill_matches_cpu() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0005);
    let base = AttnCase {
        n_heads: 9,
        n_kv_heads: 3,
        head_dim: 64,
        head_dim_v: 64,
        n_tokens: 17,
        pos: 0,
        window: 0,
        softcap: 0.0,
        q_amp: 1.0,
    };
    for c in [
        AttnCase { ..base },
        // A batch appended after cached tokens, with a sliding window shorter than the context.
        AttnCase {
            n_heads: 4,
            n_kv_heads: 1,
            head_dim: 256,
            head_dim_v: 256,
            n_tokens: 3,
            pos: 140,
            window: 100,
            q_amp: 4.0,
            ..base
        },
        // Long key ranges late in a 2048-token window (SmolLM2's and Gemma's global layers):
        // each query walks ~2000 keys, more than one thread may loop over on software Vulkan
        // (gallivm stops a loop after 65535 iterations), so the row-per-thread kernel splits.
        AttnCase {
            n_tokens: 5,
            pos: 2000,
            ..base
        },
        AttnCase {
            n_heads: 4,
            n_kv_heads: 1,
            head_dim: 256,
            head_dim_v: 256,
            n_tokens: 3,
            pos: 1500,
            ..base
        },
        // Sharp scores, soft-capped; V narrower than K.
        AttnCase {
            pos: 70,
            head_dim_v: 32,
            q_amp: 16.0,
            softcap: 3.0,
            window: 9,
            ..base
        },
    ] {
        attention_case(&ctx, &mut rng, &c);
    }
}

#[test]
fn attention_decode_matches_cpu() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0006);
    let base = AttnCase {
        n_heads: 9,
        n_kv_heads: 3,
        head_dim: 64,
        head_dim_v: 64,
        n_tokens: 1,
        pos: 0,
        window: 0,
        softcap: 0.0,
        q_amp: 1.0,
    };
    for c in [
        AttnCase { ..base },
        // Three splits, the last one partial.
        AttnCase {
            pos: 700,
            q_amp: 8.0,
            ..base
        },
        // A window of 300 (two splits) starting past 0, wide heads.
        AttnCase {
            n_heads: 4,
            n_kv_heads: 1,
            head_dim: 256,
            head_dim_v: 256,
            pos: 900,
            window: 300,
            q_amp: 4.0,
            ..base
        },
        // A long context: 8.3k keys in 33 splits.
        AttnCase {
            n_heads: 4,
            n_kv_heads: 1,
            pos: 8300,
            q_amp: 8.0,
            softcap: 5.0,
            ..base
        },
    ] {
        attention_case(&ctx, &mut rng, &c);
    }
}

/// The forward-step pattern: bind groups built once, then for each step one write of the
/// step uniform, one encoder with one pass (kv_write then attention), one submit. A 17-token
/// prefill, then two decode steps, over the same bindings.
#[test]
fn kv_write_then_attention_over_steps() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0007);
    let p = AttentionParams {
        n_heads: 4,
        n_kv_heads: 1,
        head_dim: 64,
        head_dim_v: 64,
        window: 12,
        scale: 0.125,
        softcap: 0.0,
    };
    let shape = KvShape {
        n_kv_heads: 1,
        head_dim: 64,
        head_dim_v: 64,
    };
    let (max_tokens, capacity) = (17u32, 32u32);
    let total = 19usize;
    let qt = (p.n_heads * p.head_dim) as usize;
    let kt = (shape.n_kv_heads * shape.head_dim) as usize;
    let q = rng.vec(total * qt, 2.0);
    let k = rng.vec(total * kt, 1.0);
    let v = rng.vec(total * kt, 1.0);

    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
    let buf = |label: &str, floats: usize| {
        ctx.create_buffer(label, (floats * 4) as u64, storage)
            .unwrap()
    };
    let (gq, gk, gv) = (buf("q", 17 * qt), buf("k", 17 * kt), buf("v", 17 * kt));
    let out = ctx
        .create_buffer(
            "out",
            (17 * qt * 4) as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        )
        .unwrap();
    let step_buf = create_step_buffer(&ctx, Step::default()).unwrap();
    let cache = KvLayerCache::new(&ctx, shape, capacity).unwrap();
    let writer = KvWriteKernel::new(&ctx).unwrap();
    let attn = AttentionKernel::new(&ctx).unwrap();
    let wb = writer
        .bind(&ctx, &step_buf, &gk, &gv, &cache, max_tokens)
        .unwrap();
    let ab = attn
        .bind(&ctx, &step_buf, &gq, &cache, &out, &p, max_tokens)
        .unwrap();

    let start = Instant::now();
    for (pos, n) in [(0usize, 17usize), (17, 1), (18, 1)] {
        let step = Step::new(pos as u32, n as u32);
        write_step(&ctx, &step_buf, step);
        let upload = |b: &voyager_runtime::gpu::GpuBuffer, x: &[f32], row: usize| {
            ctx.queue()
                .write_buffer(b, 0, bytemuck::cast_slice(&x[pos * row..(pos + n) * row]));
        };
        upload(&gq, &q, qt);
        upload(&gk, &k, kt);
        upload(&gv, &v, kt);
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            writer.encode(&mut pass, &wb, step.n_tokens).unwrap();
            attn.encode(&mut pass, &ab, step.n_tokens, step.n_kv)
                .unwrap();
        }
        ctx.queue().submit([encoder.finish()]);
        let gpu = ctx.read_f32(&out, n * qt).unwrap();
        let cpu = attention_ref(&q[pos * qt..(pos + n) * qt], &k, &v, pos as u32, &p);
        // The GPU's f32 -> f16 rounding of K/V may differ from the CPU's by one f16 ulp
        // (2^-11 relative) on some values, which moves scores and values by <= ~5e-4.
        check(&format!("step pos {pos} n {n}"), &gpu, &cpu, 2e-3, start);
    }
}
