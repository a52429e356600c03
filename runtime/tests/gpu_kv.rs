//! The KV cache's kernels on a real adapter (lavapipe in CI) against their CPU twins:
//! `kv_write` (quantizing f16 / q8 / q4 into sinks, recent copies and the ring) and attention
//! over sinks plus a sliding window, reading every format in place, for both prefill
//! strategies and the split decode.
//!
//! These tests need a GPU adapter and FAIL without one.

mod common;

use std::time::Instant;

use common::{check, context, XorShift};
use voyager_runtime::gpu::kernels::attention::{attention_ref, AttentionKernel, AttentionParams};
use voyager_runtime::gpu::kernels::kv_cache::{
    decode_at, first_write_mean, stored_ref, KvLayerCache, KvWriteKernel, Side,
};
use voyager_runtime::gpu::kernels::step::{create_step_buffer, write_step, Step};
use voyager_runtime::gpu::kernels::strategy::Strategy;
use voyager_runtime::gpu::GpuContext;
use voyager_runtime::kv::{HeadShape, KvConfig, KvType, LayerLayout};

/// A cache configuration; quantized keys are centered (as by default).
fn cfg(k: KvType, v: KvType, sinks: u32, window: u32, recent: u32) -> KvConfig {
    KvConfig {
        k_type: k,
        v_type: v,
        sinks,
        window,
        recent,
        rotate: false,
        center_keys: true,
    }
}

/// Every position a query at the end can see decodes, from the GPU's words, to what the CPU
/// twin stores: within half a quantization step (plus one f16 ulp of the scale, which WGSL may
/// round either way), exactly the f16 rounding for f16 regions (one f16 ulp either way).
#[test]
fn kv_write_stores_every_region_and_format() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0104);
    let shape = HeadShape {
        n_kv_heads: 3,
        head_dim: 64,
        head_dim_v: 32,
    };
    let writer = KvWriteKernel::new(&ctx).unwrap();
    for (k_ty, v_ty) in [
        (KvType::F16, KvType::F16),
        (KvType::Q4, KvType::Q8),
        (KvType::Q8, KvType::Q4),
    ] {
        let start = Instant::now();
        // Sinks 3, window 10, recent 4, batches of up to 12: 37 positions wrap the 21-slot
        // ring; the first batch sets the key mean (9 tokens after the sinks).
        let layout = LayerLayout::new(&cfg(k_ty, v_ty, 3, 10, 4), shape, None, 12).unwrap();
        let cache = KvLayerCache::new(&ctx, layout).unwrap();
        let kt = (shape.n_kv_heads * shape.head_dim) as usize;
        let vt = (shape.n_kv_heads * shape.head_dim_v) as usize;
        let n = 37usize;
        let k = rng.vec(n * kt, 3.0);
        let v = rng.vec(n * vt, 3.0);
        let mut pos = 0;
        for step in [12usize, 5, 1, 12, 2, 5] {
            writer
                .run(
                    &ctx,
                    &cache,
                    pos as u32,
                    &k[pos * kt..(pos + step) * kt],
                    &v[pos * vt..(pos + step) * vt],
                )
                .unwrap();
            pos += step;
        }
        assert_eq!(pos, n);
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(
            &ctx.read_bytes(&cache.buffer, 0, cache.buffer.size())
                .unwrap(),
        );
        let n_kv = n as u32;
        let mean = first_write_mean(&layout, &k[..12 * kt]);
        assert_eq!(mean.is_empty(), k_ty == KvType::F16);
        assert!(mean.iter().any(|&m| m != 0.0) || mean.is_empty());
        let mut worst = 0f32;
        for j in layout.keys(n_kv - 1) {
            for kvh in 0..shape.n_kv_heads {
                for (side, src, width) in [
                    (Side::K, &k, shape.head_dim),
                    (Side::V, &v, shape.head_dim_v),
                ] {
                    let w = width as usize;
                    let head =
                        &src[(j as usize * shape.n_kv_heads as usize + kvh as usize) * w..][..w];
                    let want = stored_ref(&layout, side, j, kvh, n_kv, head, &mean);
                    let got = decode_at(&layout, &words, side, j, kvh, n_kv);
                    let ty = if side == Side::K { k_ty } else { v_ty };
                    // One quantization step of this block (the block's range / 15 for q4,
                    // amax / 127 for q8), or an f16 ulp.
                    for (b, (g, c)) in got.chunks(32).zip(want.chunks(32)).enumerate() {
                        let x = &head[b * 32..][..32];
                        let range = x.iter().fold(f32::MIN, |a, &v| a.max(v))
                            - x.iter().fold(f32::MAX, |a, &v| a.min(v));
                        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
                        let in_f16 = j < layout.policy.sinks || j + 4 >= n_kv || ty == KvType::F16;
                        let step = if in_f16 {
                            amax / 1024.0
                        } else if ty == KvType::Q4 {
                            range / 15.0
                        } else {
                            amax / 127.0
                        };
                        for (gv, cv) in g.iter().zip(c) {
                            let err = (gv - cv).abs();
                            worst = worst.max(err / step);
                            assert!(err <= step * 1.01, "{k_ty}/{v_ty} {side:?} pos {j} head {kvh}: {gv} vs {cv} (step {step})");
                        }
                    }
                }
            }
        }
        eprintln!(
            "kv_write {k_ty}/{v_ty}: worst difference {worst:.3} of a step, in {:.2?}",
            start.elapsed()
        );
    }
}

struct Case {
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    head_dim_v: u32,
    n_tokens: u32,
    n_kv: u32,
    kv: KvConfig,
    softcap: f32,
    q_amp: f32,
}

// Tolerance: the CPU reference stores K/V through the CPU twin of each format, the GPU through
// kv_write; they agree to f16 rounding of the scales (either direction, 2^-11 relative) and
// to ties in the code rounding, so scores differ by < 1e-3 of |q||k| and the output by about
// as much of max|v|; the f32 arithmetic adds ~1e-5 (argued in gpu_ops.rs for the f16 path).
// 2e-3 of max|out| bounds it; a wrong slot, region, format or window is O(1).
fn attention_case(ctx: &GpuContext, rng: &mut XorShift, c: &Case) {
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
    // History is written in steps of 16: the first sets the key mean.
    let layout = LayerLayout::new(&c.kv, shape, None, c.n_tokens.max(16)).unwrap();
    let q = rng.vec((c.n_tokens * c.n_heads * c.head_dim) as usize, c.q_amp);
    let q_sink = rng.vec(q.len(), c.q_amp);
    let k = rng.vec((c.n_kv * c.n_kv_heads * c.head_dim) as usize, 1.0);
    let v = rng.vec((c.n_kv * c.n_kv_heads * c.head_dim_v) as usize, 1.0);
    let pos = c.n_kv - c.n_tokens;
    let first = AttentionKernel::first_step(&layout, c.n_kv, c.n_tokens) as usize;
    let kt = (c.n_kv_heads * c.head_dim) as usize;
    let mean = first_write_mean(&layout, &k[..first * kt]);
    let cpu = attention_ref(&q, &q_sink, &k, &v, &mean, pos, &layout, &p);
    // Prefill has a cooperative and a row-per-thread kernel: check both.
    for strategy in Strategy::ALL {
        let start = Instant::now();
        let kernel = AttentionKernel::with_strategy(ctx, strategy).unwrap();
        let gpu = kernel
            .run_with(ctx, &q, &q_sink, &k, &v, &layout, &p)
            .unwrap();
        let what = format!(
            "{strategy:?} {} {}/{} heads {}/{} dims, {} tokens ending at {}, K {} V {} sinks {} window {} recent {} softcap {}",
            if c.n_tokens == 1 { "decode" } else { "prefill" },
            c.n_heads, c.n_kv_heads, c.head_dim, c.head_dim_v, c.n_tokens, c.n_kv,
            c.kv.k_type, c.kv.v_type, c.kv.sinks, c.kv.window, c.kv.recent, c.softcap
        );
        check(&what, &gpu, &cpu, 2e-3, start);
        if c.n_tokens == 1 {
            break; // decode does not depend on the strategy
        }
    }
}

fn base() -> Case {
    Case {
        n_heads: 9,
        n_kv_heads: 3,
        head_dim: 64,
        head_dim_v: 64,
        n_tokens: 17,
        n_kv: 17,
        kv: cfg(KvType::F16, KvType::F16, 0, 4096, 0),
        softcap: 0.0,
        q_amp: 1.0,
    }
}

#[test]
fn attention_prefill_matches_cpu() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0105);
    for c in [
        // A first batch, f16, nothing evicted.
        base(),
        // The default cache (q4/q4 with sinks and recent f16 copies) past eviction, Gemma's
        // heads: each query sees 4 sinks, then a window of 100 that started long ago.
        Case {
            n_heads: 4,
            n_kv_heads: 1,
            head_dim: 256,
            head_dim_v: 256,
            n_tokens: 3,
            n_kv: 143,
            kv: cfg(KvType::Q4, KvType::Q4, 4, 100, 8),
            q_amp: 4.0,
            ..base()
        },
        // Long key ranges (a 2048-token window): more keys than one thread may loop over on
        // software Vulkan (gallivm stops a loop after 65535 iterations), so the row-per-thread
        // kernel splits; K8 V4.
        Case {
            n_tokens: 5,
            n_kv: 2005,
            kv: cfg(KvType::Q8, KvType::Q4, 4, 2044, 32),
            ..base()
        },
        Case {
            n_heads: 4,
            n_kv_heads: 1,
            head_dim: 256,
            head_dim_v: 256,
            n_tokens: 3,
            n_kv: 1503,
            kv: cfg(KvType::Q4, KvType::F16, 0, 4096, 16),
            ..base()
        },
        // Sharp scores, soft-capped, V narrower than K, a tiny window right after the sinks.
        Case {
            n_kv: 87,
            head_dim_v: 32,
            q_amp: 16.0,
            softcap: 3.0,
            kv: cfg(KvType::Q8, KvType::Q8, 2, 9, 3),
            ..base()
        },
    ] {
        attention_case(&ctx, &mut rng, &c);
    }
}

#[test]
fn attention_decode_matches_cpu() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0106);
    let one = Case {
        n_tokens: 1,
        n_kv: 1,
        ..base()
    };
    for c in [
        Case { ..one },
        // Three splits, the last one partial, q4/q4 with recent copies.
        Case {
            n_kv: 701,
            q_amp: 8.0,
            kv: cfg(KvType::Q4, KvType::Q4, 4, 4096, 32),
            ..one
        },
        // A window of 300 (two splits) long after eviction began, wide heads.
        Case {
            n_heads: 4,
            n_kv_heads: 1,
            head_dim: 256,
            head_dim_v: 256,
            n_kv: 901,
            kv: cfg(KvType::Q4, KvType::Q8, 4, 300, 32),
            q_amp: 4.0,
            ..one
        },
        // A long window: 8.3k keys in 33 splits, f16.
        Case {
            n_heads: 4,
            n_kv_heads: 1,
            n_kv: 8301,
            q_amp: 8.0,
            softcap: 5.0,
            kv: cfg(KvType::F16, KvType::F16, 4, 8400, 0),
            ..one
        },
    ] {
        attention_case(&ctx, &mut rng, &c);
    }
}

/// The forward-step pattern over a ring that wraps: bindings built once, then for each step
/// one write of the step uniform, one encoder with one pass (kv_write then attention), one
/// submit; batches of up to 12 and single tokens run 60 positions through 2 sinks and a window
/// of 12 (q4 K, centered on the first batch's mean, q8 V, 3 recent f16 copies), each step
/// checked against the reference.
#[test]
fn kv_write_then_attention_over_a_wrapping_ring() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0107);
    let p = AttentionParams {
        n_heads: 4,
        n_kv_heads: 1,
        head_dim: 64,
        head_dim_v: 64,
        scale: 0.125,
        softcap: 0.0,
    };
    let shape = HeadShape {
        n_kv_heads: 1,
        head_dim: 64,
        head_dim_v: 64,
    };
    let max_tokens = 12u32;
    let layout = LayerLayout::new(
        &cfg(KvType::Q4, KvType::Q8, 2, 12, 3),
        shape,
        None,
        max_tokens,
    )
    .unwrap();
    let total = 60usize;
    let qt = (p.n_heads * p.head_dim) as usize;
    let kt = (shape.n_kv_heads * shape.head_dim) as usize;
    let q = rng.vec(total * qt, 2.0);
    let q_sink = rng.vec(total * qt, 2.0);
    let k = rng.vec(total * kt, 1.0);
    let v = rng.vec(total * kt, 1.0);

    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
    let mt = max_tokens as usize;
    let buf = |label: &str, floats: usize| {
        ctx.create_buffer(label, (floats * 4) as u64, storage)
            .unwrap()
    };
    let (gq, gqs, gk, gv) = (
        buf("q", mt * qt),
        buf("q sink", mt * qt),
        buf("k", mt * kt),
        buf("v", mt * kt),
    );
    let out = ctx
        .create_buffer(
            "out",
            (mt * qt * 4) as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        )
        .unwrap();
    let step_buf = create_step_buffer(&ctx, Step::default()).unwrap();
    let cache = KvLayerCache::new(&ctx, layout).unwrap();
    let writer = KvWriteKernel::new(&ctx).unwrap();
    let attn = AttentionKernel::new(&ctx).unwrap();
    let wb = writer
        .bind(&ctx, &step_buf, &gk, &gv, &cache, max_tokens)
        .unwrap();
    let partials = ctx
        .create_buffer(
            "partials",
            AttentionKernel::partials_bytes(attn.strategy(), &p, &layout, max_tokens),
            wgpu::BufferUsages::STORAGE,
        )
        .unwrap();
    let ab = attn
        .bind(
            &ctx, &step_buf, &gq, &gqs, &cache, &out, &partials, &p, max_tokens,
        )
        .unwrap();

    let start = Instant::now();
    let mut pos = 0usize;
    let mean = first_write_mean(&layout, &k[..12 * kt]);
    for n in std::iter::repeat([12usize, 1, 5, 12, 1, 3]).flatten() {
        let n = n.min(total - pos);
        if n == 0 {
            break;
        }
        let step = Step::new(pos as u32, n as u32);
        write_step(&ctx, &step_buf, step);
        let upload = |b: &voyager_runtime::gpu::GpuBuffer, x: &[f32], row: usize| {
            ctx.queue()
                .write_buffer(b, 0, bytemuck::cast_slice(&x[pos * row..(pos + n) * row]));
        };
        upload(&gq, &q, qt);
        upload(&gqs, &q_sink, qt);
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
        let end = (pos + n) * kt;
        let cpu = attention_ref(
            &q[pos * qt..(pos + n) * qt],
            &q_sink[pos * qt..(pos + n) * qt],
            &k[..end],
            &v[..end],
            &mean,
            pos as u32,
            &layout,
            &p,
        );
        check(
            &format!("step at {pos}, {n} tokens"),
            &gpu,
            &cpu,
            2e-3,
            start,
        );
        pos += n;
    }
}
