//! The transformer's non-weight, non-cache ops on a real adapter (lavapipe in CI) against
//! their CPU twins: add, rms_norm, rope, ffn_act, scale and the Hadamard rotation, as tables of
//! cases (`voyager_runtime::selfcheck::cases`, where each tolerance is argued), plus what the
//! forward pass relies on around them: bindings reused across steps and counted buffers.
//!
//! These tests need a GPU adapter and FAIL without one. Inputs come from a fixed-seed
//! xorshift, sizes are odd on purpose.

mod common;

use common::{check_all, check_both_strategies, context};
use voyager_runtime::gpu::kernels::ffn_act::Activation;
use voyager_runtime::gpu::kernels::rope::RopeParams;
use voyager_runtime::gpu::kernels::step::{create_step_buffer, Step};
use voyager_runtime::gpu::kernels::{add_ref, Kernels, Strategy};
use voyager_runtime::model::RopeLayout;
use voyager_runtime::rng::XorShift;
use voyager_runtime::selfcheck::{cases, Harness};

#[test]
fn elementwise_ops_match_cpu() {
    let ctx = context();
    let kernels = Kernels::new(&ctx).unwrap();
    let mut rng = XorShift::new(0x5eed_0001);
    let mut table = Vec::new();
    // add: bit-exact; 16_777_300 > 256 * 65535 needs the 2-D dispatch grid.
    for n in [1usize, 7, 255, 256, 257, 1000, 65_537, 16_777_300] {
        table.push(cases::add(&mut rng, n));
    }
    // rms_norm: (width, rows, weighted), per-head norms as rows of head_dim.
    for (width, rows, weighted) in [
        (1usize, 3usize, true),
        (7, 3, false),
        (576, 3, true),
        (640, 1, true),
        (1000, 17, true),
        (64, 17 * 9, false),
        (256, 3 * 4, true),
    ] {
        table.push(cases::rms_norm(&mut rng, width, rows, weighted));
    }
    // rope: in place and out of place with capped positions (the sink query).
    for (n_heads, head_dim, rope_dim, n_tokens, pos, layout, base, freq_scale) in [
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
    ] {
        let p = RopeParams {
            n_heads,
            head_dim,
            rope_dim,
            base,
            freq_scale,
            layout,
            max_pos: u32::MAX,
        };
        table.push(cases::rope(&mut rng, p, n_tokens, pos, false));
        let capped = RopeParams {
            max_pos: pos + n_tokens / 2,
            ..p
        };
        table.push(cases::rope(&mut rng, capped, n_tokens, pos, true));
    }
    for width in [1usize, 7, 1000] {
        for act in [Activation::Silu, Activation::GeluTanh] {
            table.push(cases::ffn_act(&mut rng, width, 3, act));
        }
    }
    table.push(cases::scale(&mut rng, 7, 17, 24.0f32.sqrt()));
    check_all(&ctx, &kernels, &table);
    // hadamard, both strategies (a thread per run, a workgroup per run): SmolLM2's and Gemma's
    // heads, a width whose power-of-two part is 32 (96 = 3 x 32), odd token counts.
    check_both_strategies(&ctx, |_| {
        let mut rng = XorShift::new(0x5eed_0002);
        [(64u32, 3u32, 17usize), (256, 4, 3), (96, 5, 7), (512, 1, 2)]
            .into_iter()
            .map(|(width, rows, tokens)| cases::hadamard_rotation(&mut rng, width, rows, tokens))
            .collect()
    });
    let stats = ctx.memory_stats();
    assert_eq!(stats.live_bytes, 0, "every buffer was dropped: {stats}");
    assert!(stats.peak_bytes >= 4 * 4 * 16_777_300, "peak: {stats}");
}

/// A workgroup per run (GPUs) and a thread per run (CPU adapters) add the same pairs in the
/// same order: the same bits.
#[test]
fn hadamard_strategies_agree_to_the_bit() {
    let ctx = context();
    let x = XorShift::new(9).vec(5 * 9 * 64, 3.0);
    let outs: Vec<Vec<f32>> = [Strategy::Cooperative, Strategy::RowPerThread]
        .into_iter()
        .map(|s| {
            let kernels = Kernels::with_strategy(&ctx, s).unwrap();
            Harness::new(&ctx, &kernels).hadamard(&x, 64, 9).unwrap()
        })
        .collect();
    assert!(outs[0]
        .iter()
        .zip(&outs[1])
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn hadamard_twice_is_the_identity() {
    let ctx = context();
    let kernels = Kernels::new(&ctx).unwrap();
    let h = Harness::new(&ctx, &kernels);
    let x = XorShift::new(8).vec(3 * 4 * 256, 3.0);
    let once = h.hadamard(&x, 256, 4).unwrap();
    let twice = h.hadamard(&once, 256, 4).unwrap();
    let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = twice
        .iter()
        .zip(&x)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-5 * scale, "{err}");
}

#[test]
fn bad_inputs_are_refused() {
    let ctx = context();
    let kernels = Kernels::new(&ctx).unwrap();
    let h = Harness::new(&ctx, &kernels);
    assert!(h.add(&[], &[]).unwrap().is_empty());
    let err = h.add(&[1.0, 2.0], &[1.0]).unwrap_err();
    assert!(err.to_string().contains("differ in length"), "{err}");
    assert!(h.rms_norm(&[1.0; 7], 3, None, 1e-6).is_err());
}

/// Two adds bound once and recorded into one pass, the way a forward pass runs:
/// h = x + r1; y = h + r2 over rows of `width`, for a batch smaller than the bound; a step
/// larger than the bound is refused at record time.
#[test]
fn chained_adds_in_one_pass() {
    let ctx = context();
    let kernels = Kernels::new(&ctx).unwrap();
    let kernel = &kernels.add;
    let (width, max_tokens, n_tokens) = (777u32, 9u32, 7u32);
    let n = (width * max_tokens) as usize;
    let used = (width * n_tokens) as usize;
    let mut rng = XorShift::new(42);
    let (x, r1, r2) = (rng.vec(n, 1000.0), rng.vec(n, 1000.0), rng.vec(n, 1000.0));
    let h = Harness::new(&ctx, &kernels);
    let (gx, g1, g2) = (
        h.input("x", &x).unwrap(),
        h.input("r1", &r1).unwrap(),
        h.input("r2", &r2).unwrap(),
    );
    let hb = h.output("h", n).unwrap();
    let y = h.input("y", &vec![-1.0; n]).unwrap();
    let step_buf = create_step_buffer(&ctx, Step::new(0, n_tokens)).unwrap();
    let first = kernel
        .bind(&ctx, &step_buf, &gx, &g1, &hb, width, max_tokens)
        .unwrap();
    let second = kernel
        .bind(&ctx, &step_buf, &hb, &g2, &y, width, max_tokens)
        .unwrap();
    h.submit("chained", |pass| {
        kernel.encode(pass, &first, n_tokens)?;
        kernel.encode(pass, &second, n_tokens)
    })
    .unwrap();
    let gpu = ctx.read_f32(&y, n).unwrap();
    let want = add_ref(&add_ref(&x[..used], &r1[..used]), &r2[..used]);
    for (i, (g, w)) in gpu[..used].iter().zip(&want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "element {i}");
    }
    assert!(
        gpu[used..].iter().all(|&v| v == -1.0),
        "rows past the batch are untouched"
    );
    let too_many = h.submit("too many", |pass| {
        kernel.encode(pass, &first, max_tokens + 1)
    });
    assert!(too_many.is_err());

    // Too-small buffers are refused at bind time.
    let Err(err) = kernel.bind(&ctx, &step_buf, &gx, &g1, &hb, width, max_tokens + 1) else {
        panic!("a too-small buffer was bound");
    };
    assert!(err.to_string().contains("needs"), "{err}");
}

#[test]
fn buffers_are_counted() {
    let ctx = context();
    let base = ctx.memory_stats();
    assert_eq!(base.live_bytes, 0);
    let usage = wgpu::BufferUsages::STORAGE;
    let a = ctx.create_buffer("a", 4096, usage).unwrap();
    let b = ctx.create_buffer_init("b", &[1u8; 10], usage).unwrap();
    assert_eq!(b.size(), 12, "init contents are padded to 4 bytes");
    assert_eq!(ctx.memory_stats().live_bytes, 4096 + 12);
    assert_eq!(ctx.memory_stats().live_buffers, 2);
    drop(a);
    let stats = ctx.memory_stats();
    assert_eq!(stats.live_bytes, 12);
    assert_eq!(stats.live_buffers, 1);
    assert_eq!(stats.peak_bytes, 4096 + 12, "the peak stays");
    drop(b);
    assert_eq!(ctx.memory_stats().live_bytes, 0);

    let too_big = ctx.limits().max_buffer_size + 4;
    let err = ctx.create_buffer("huge", too_big, usage).unwrap_err();
    assert!(err.to_string().contains("maximum buffer size"), "{err}");
    assert_eq!(ctx.memory_stats().live_bytes, 0);
}

#[test]
fn device_uses_adapter_limits() {
    let ctx = context();
    assert_eq!(ctx.device().limits(), *ctx.limits());
    // Real adapters exceed WebGPU's default 256 MiB buffer size (lavapipe: 2 GiB).
    assert!(ctx.limits().max_buffer_size >= wgpu::Limits::default().max_buffer_size);
    assert!(!ctx.adapter_name().is_empty());
    assert!(!ctx.backend().is_empty());
    assert_eq!(ctx.device().features(), ctx.features());
}

/// The bandwidth kernel copies exactly the bytes it was bound for (odd element counts, the
/// rest of `dst` left as it was), and its measurement reports what it moved.
#[test]
fn copy_kernel_matches_cpu_and_measures() {
    use voyager_runtime::gpu::kernels::copy::{copy_ref, CopyKernel};
    let ctx = context();
    let kernel = CopyKernel::new(&ctx).unwrap();
    let mut rng = XorShift::new(0x5eed_c0b1);
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    for elements in [1u64, 7, 255, 257, 4097] {
        let bytes = 16 * elements;
        let data: Vec<u8> = (0..bytes).map(|_| rng.next_u64() as u8).collect();
        let src = ctx.create_buffer_init("src", &data, usage).unwrap();
        // Poisoned destination, one element longer than the copy.
        let dst = ctx
            .create_buffer_init("dst", &vec![0xa5; (bytes + 16) as usize], usage)
            .unwrap();
        let binding = kernel.bind(&ctx, &src, &dst, bytes).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut pass = voyager_runtime::gpu::counters::begin_pass(&mut encoder, "copy");
            kernel.encode(&mut pass, &binding);
        }
        ctx.submit([encoder.finish()]);
        let got = ctx.read_bytes(&dst, 0, bytes + 16).unwrap();
        assert_eq!(
            got[..bytes as usize],
            copy_ref(&data)[..],
            "{elements} elements"
        );
        assert!(
            got[bytes as usize..].iter().all(|&b| b == 0xa5),
            "wrote past the end"
        );
    }
    let err = kernel
        .bind(
            &ctx,
            &ctx.create_buffer("s", 64, usage).unwrap(),
            &ctx.create_buffer("d", 64, usage).unwrap(),
            20,
        )
        .err()
        .unwrap();
    assert!(err.to_string().contains("multiple of 16"), "{err}");

    let live = ctx.memory_stats().live_bytes;
    let bw = kernel.measure(&ctx, 1 << 20, 2, 1).unwrap();
    assert_eq!(bw.bytes_per_copy, 2 << 20, "read once and written once");
    assert!(bw.seconds_per_copy > 0.0 && bw.bytes_per_second.is_finite());
    assert_eq!(ctx.memory_stats().live_bytes, live, "its buffers are freed");
}

/// The arithmetic-rate kernel computes its chains as the CPU does (odd thread counts; fused
/// multiply-adds converge to a fixed point, so rounding differences stay at a few ulps), and
/// its measurement reports a rate.
#[test]
fn fma_kernel_matches_cpu_and_measures() {
    use voyager_runtime::gpu::kernels::fma::{fma_ref, FmaKernel};
    let ctx = context();
    let kernel = FmaKernel::new(&ctx).unwrap();
    let (b, c) = FmaKernel::factors();
    for (threads, iters) in [(1u32, 0u32), (7, 3), (300, 50), (1029, 200)] {
        let (got, _) = kernel.run(&ctx, threads, iters).unwrap();
        for (i, g) in got.iter().enumerate() {
            let want = fma_ref(i as u32, iters, b, c);
            assert!(
                (g - want).abs() <= 1e-5 * want.abs(),
                "thread {i} of {threads}, {iters} iterations: {g} vs {want}"
            );
        }
    }
    let rate = kernel.measure(&ctx, 512, 16, 1).unwrap();
    assert!(rate.flops_per_second > 0.0 && rate.flops_per_second.is_finite());
}
