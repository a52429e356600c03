//! The add kernel on a real adapter, against its CPU twin.
//!
//! These tests need a GPU adapter and FAIL without one (CI installs Mesa's software Vulkan
//! driver, lavapipe). `WGPU_BACKEND` is honoured when set; otherwise wgpu picks the platform's
//! backends.

use std::time::Instant;

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

/// Two adds recorded into one encoder and submitted once, the way a forward pass runs:
/// h = x + r1; y = h + r2, read back from `y`.
#[test]
fn chained_adds_in_one_encoder() {
    let ctx = context();
    let kernel = AddKernel::new(&ctx);
    let n = 5000;
    let mut rng = XorShift(42);
    let (x, r1, r2) = (rng.vec(n), rng.vec(n), rng.vec(n));
    let storage = wgpu::BufferUsages::STORAGE;
    let bytes = (n * 4) as u64;
    let gx = ctx
        .create_buffer_init("x", bytemuck::cast_slice(&x), storage)
        .unwrap();
    let g1 = ctx
        .create_buffer_init("r1", bytemuck::cast_slice(&r1), storage)
        .unwrap();
    let g2 = ctx
        .create_buffer_init("r2", bytemuck::cast_slice(&r2), storage)
        .unwrap();
    let h = ctx.create_buffer("h", bytes, storage).unwrap();
    let y = ctx
        .create_buffer("y", bytes, storage | wgpu::BufferUsages::COPY_SRC)
        .unwrap();
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    kernel.encode(&mut encoder, &gx, &g1, &h, n).unwrap();
    kernel.encode(&mut encoder, &h, &g2, &y, n).unwrap();
    ctx.queue().submit([encoder.finish()]);
    let gpu = ctx.read_f32(&y, n).unwrap();
    assert_bits_eq(&gpu, &add_ref(&add_ref(&x, &r1), &r2), "chained");

    // Too-small buffers are refused before anything is recorded.
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    let err = kernel
        .encode(&mut encoder, &gx, &g1, &h, n + 1)
        .unwrap_err();
    assert!(err.to_string().contains("need"), "{err}");
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
