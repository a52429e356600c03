//! The add kernel on a real adapter, against its CPU twin.
//!
//! These tests need a GPU adapter and FAIL without one (CI installs Mesa's software Vulkan
//! driver, lavapipe). `WGPU_BACKEND` is honoured when set; otherwise wgpu picks the platform's
//! backends.

use std::time::Instant;

use voyager_runtime::gpu::kernels::step::{create_step_buffer, Step};
use voyager_runtime::gpu::kernels::{add_ref, AddKernel};
use voyager_runtime::gpu::GpuContext;

fn context() -> GpuContext {
    let ctx = GpuContext::new().unwrap_or_else(|e| panic!("{e}"));
    let (sg_min, sg_max) = ctx.subgroup_sizes();
    eprintln!(
        "adapter: {} ({}), f16 {}, subgroups {} ({sg_min}..={sg_max})",
        ctx.adapter_name(),
        ctx.backend(),
        ctx.has_f16(),
        ctx.has_subgroups(),
    );
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

    /// A float in [-1000, 1000) with a full 24-bit mantissa, never subnormal.
    fn next_f32(&mut self) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (unit - 0.5) * 2000.0
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
}

fn assert_bits_eq(gpu: &[f32], cpu: &[f32], what: &str) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    if let Some(i) = (0..gpu.len()).find(|&i| gpu[i].to_bits() != cpu[i].to_bits()) {
        panic!("{what}: element {i}: GPU {} != CPU {}", gpu[i], cpu[i]);
    }
}

#[test]
fn add_matches_cpu_at_every_size() {
    let ctx = context();
    // 16_777_300 > 256 * 65535 = 16_776_960: needs the 2-D dispatch grid.
    for (k, n) in [1usize, 7, 255, 256, 257, 1000, 65_537, 16_777_300]
        .into_iter()
        .enumerate()
    {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ k as u64);
        let a = rng.vec(n);
        let b = rng.vec(n);
        let start = Instant::now();
        let gpu = AddKernel::run(&ctx, &a, &b).unwrap_or_else(|e| panic!("n = {n}: {e}"));
        let elapsed = start.elapsed();
        assert_bits_eq(&gpu, &add_ref(&a, &b), &format!("n = {n}"));
        eprintln!("add n = {n}: ok in {elapsed:.2?}");
    }
    let stats = ctx.memory_stats();
    assert_eq!(stats.live_bytes, 0, "every buffer was dropped: {stats}");
    assert!(stats.peak_bytes >= 4 * 4 * 16_777_300, "peak: {stats}");
}

#[test]
fn add_empty_and_mismatched() {
    let ctx = context();
    assert!(AddKernel::run(&ctx, &[], &[]).unwrap().is_empty());
    let err = AddKernel::run(&ctx, &[1.0, 2.0], &[1.0]).unwrap_err();
    assert!(err.to_string().contains("differ in length"), "{err}");
}

/// Two adds bound once and recorded into one pass, the way a forward pass runs:
/// h = x + r1; y = h + r2 over rows of `width`, for a batch smaller than the bound.
#[test]
fn chained_adds_in_one_pass() {
    let ctx = context();
    let kernel = AddKernel::new(&ctx);
    let (width, max_tokens, n_tokens) = (777u32, 9u32, 7u32);
    let n = (width * max_tokens) as usize;
    let used = (width * n_tokens) as usize;
    let mut rng = XorShift(42);
    let (x, r1, r2) = (rng.vec(n), rng.vec(n), rng.vec(n));
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let bytes = (n * 4) as u64;
    let up = |label, data: &[f32]| {
        ctx.create_buffer_init(label, bytemuck::cast_slice(data), storage)
            .unwrap()
    };
    let (gx, g1, g2) = (up("x", &x), up("r1", &r1), up("r2", &r2));
    let h = ctx.create_buffer("h", bytes, storage).unwrap();
    let y = up("y", &vec![-1.0; n]);
    let step_buf = create_step_buffer(&ctx, Step::new(0, n_tokens)).unwrap();
    let first = kernel
        .bind(&ctx, &step_buf, &gx, &g1, &h, width, max_tokens)
        .unwrap();
    let second = kernel
        .bind(&ctx, &step_buf, &h, &g2, &y, width, max_tokens)
        .unwrap();
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        kernel.encode(&mut pass, &first, n_tokens).unwrap();
        kernel.encode(&mut pass, &second, n_tokens).unwrap();
    }
    ctx.queue().submit([encoder.finish()]);
    let gpu = ctx.read_f32(&y, n).unwrap();
    let want = add_ref(&add_ref(&x[..used], &r1[..used]), &r2[..used]);
    assert_bits_eq(&gpu[..used], &want, "chained");
    assert!(
        gpu[used..].iter().all(|&v| v == -1.0),
        "rows past the batch are untouched"
    );

    // Too-small buffers are refused at bind time.
    let Err(err) = kernel.bind(&ctx, &step_buf, &gx, &g1, &h, width, max_tokens + 1) else {
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
