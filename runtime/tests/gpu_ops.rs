//! The transformer's non-weight ops on a real adapter (lavapipe in CI), against their CPU
//! twins: rms_norm, rope, ffn_act / scale and the Hadamard rotation (the KV cache's kernels
//! are in gpu_kv.rs).
//!
//! These tests need a GPU adapter and FAIL without one. Errors are measured as the max
//! absolute difference normalized by the max |reference| (`rel_err`); each bound is argued
//! where it is checked. Inputs come from a fixed-seed xorshift.

use std::time::Instant;

use voyager_runtime::gpu::kernels::ffn_act::{ffn_act_ref, Activation, FfnActKernel};
use voyager_runtime::gpu::kernels::hadamard::HadamardKernel;
use voyager_runtime::gpu::kernels::rms_norm::{rms_norm_ref, RmsNormKernel};
use voyager_runtime::gpu::kernels::rope::{rope_ref, RopeKernel, RopeParams};
use voyager_runtime::kv::quant::hadamard;
use voyager_runtime::model::RopeLayout;

mod common;
use common::{check, context, XorShift};

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
            max_pos: u32::MAX,
        };
        let x = rng.vec((n_tokens * n_heads * head_dim) as usize, 2.0);
        let gpu = RopeKernel::run(&ctx, &x, pos, &p).unwrap();
        let cpu = rope_ref(&x, pos, &p);
        // Out of place, and with positions capped (the sink query): the same bound.
        let capped = RopeParams {
            max_pos: pos + n_tokens / 2,
            ..p
        };
        let from = RopeKernel::run_from(&ctx, &x, pos, &capped).unwrap();
        let what_from = format!("rope_from capped at {} ({layout})", capped.max_pos);
        check(&what_from, &from, &rope_ref(&x, pos, &capped), 1e-3, start);
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

// hadamard: log2(n) butterfly levels of one add each, then one scale: each output carries
// about log2(n) + 1 roundings of values up to sqrt(n) * max|x|, ~9 * 2^-24 * 16 ~ 1e-5 of
// the max for n = 256; a wrong pairing or scale is O(1).
#[test]
fn hadamard_matches_cpu() {
    let ctx = context();
    let mut rng = XorShift(0x5eed_0008);
    // (width, rows per token, tokens): SmolLM2's and Gemma's heads, a width whose power-of-two
    // part is 32 (96 = 3 x 32), and odd token counts.
    for (width, rows, tokens) in [(64u32, 3u32, 17usize), (256, 4, 3), (96, 5, 7), (512, 1, 2)] {
        let start = Instant::now();
        let x = rng.vec(tokens * (width * rows) as usize, 3.0);
        let gpu = HadamardKernel::run(&ctx, &x, width, rows).unwrap();
        let mut cpu = x.clone();
        hadamard(
            &mut cpu,
            voyager_runtime::kv::quant::hadamard_size(width) as usize,
        );
        check(
            &format!("hadamard width {width} rows {rows} tokens {tokens}"),
            &gpu,
            &cpu,
            1e-5,
            start,
        );
        // Applied twice, it is the identity.
        let back = HadamardKernel::run(&ctx, &gpu, width, rows).unwrap();
        check("hadamard twice", &back, &x, 1e-5, start);
    }
}
