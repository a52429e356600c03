//! The device's f32 multiply-add peak, measured with chains of fused multiply-adds: the
//! ceiling prefill (matrix-times-matrix, bound by arithmetic) is compared to. Not part of the
//! forward pass. Shader: `shaders/fma.wgsl`.

use std::time::Instant;

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::step;
use crate::gpu::{counters, pipeline, shaders};
use crate::Result;

/// Threads per workgroup; must match `@workgroup_size` in `shaders/fma.wgsl`.
pub const WORKGROUP_SIZE: u32 = 256;
/// Multiply-adds per thread per iteration (8 chains of vec4).
pub const FMAS_PER_ITER: u64 = 32;

/// The shader's `Params` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    row_stride: u32,
    iters: u32,
    _pad: u32,
    b: f32,
    c: f32,
    _pad1: [u32; 2],
}

/// Chain factors that keep values bounded: `a -> a * B + C` converges to `C / (1 - B)`.
const B: f32 = 0.999;
const C: f32 = 0.001;

/// The CPU reference: what thread `i` writes after `iters` iterations with factors `b`, `c`.
pub fn fma_ref(i: u32, iters: u32, b: f32, c: f32) -> f32 {
    let s = (i & 1023) as f32 * 0.000_976_562_5;
    // Chain k, component c starts at (s + 0.01c) + 0.1k, each constant an f32 literal, as
    // the shader builds it.
    const COMP: [f32; 4] = [0.0, 0.01, 0.02, 0.03];
    const CHAIN: [f32; 8] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
    let mut lanes = [0f32; 32];
    for (j, lane) in lanes.iter_mut().enumerate() {
        *lane = (s + COMP[j % 4]) + CHAIN[j / 4];
        for _ in 0..iters {
            *lane = lane.mul_add(b, c);
        }
    }
    let v = |k: usize| -> [f32; 4] { std::array::from_fn(|c| lanes[4 * k + c]) };
    let add = |x: [f32; 4], y: [f32; 4]| -> [f32; 4] { std::array::from_fn(|c| x[c] + y[c]) };
    let t = add(
        add(add(v(0), v(1)), add(v(2), v(3))),
        add(add(v(4), v(5)), add(v(6), v(7))),
    );
    (t[0] + t[1]) + (t[2] + t[3])
}

/// An arithmetic-rate measurement.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FmaRate {
    /// Floating-point operations per second (a multiply-add is two).
    pub flops_per_second: f64,
    pub threads: u64,
    pub iters: u32,
}

/// The FMA pipeline.
pub struct FmaKernel {
    max_groups: u32,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl FmaKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let (layout, mut pipelines) = pipeline::build_with_layout(
            ctx,
            "fma",
            &[
                pipeline::uniform_entry(0),
                pipeline::storage_entry(1, false),
            ],
            &[(shaders::get("fma")?, &["fma_chains"])],
        )?;
        Ok(Self {
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
            layout,
            pipeline: pipelines.remove(0),
        })
    }

    /// Runs `threads` threads of `iters` iterations once and returns what each wrote, and
    /// the wall time of the submit (warm-up excluded by the caller).
    pub fn run(&self, ctx: &GpuContext, threads: u32, iters: u32) -> Result<(Vec<f32>, f64)> {
        let (out, seconds) = self.timed(ctx, threads, iters)?;
        Ok((ctx.read_f32(&out, threads as usize)?, seconds))
    }

    /// One run, timed from record to completion; returns its output buffer unread.
    fn timed(&self, ctx: &GpuContext, threads: u32, iters: u32) -> Result<(GpuBuffer, f64)> {
        const K: &str = "fma";
        let grid = step::thread_grid(self.max_groups, K, u64::from(threads), WORKGROUP_SIZE)?;
        let params = step::uniform(
            ctx,
            "fma params",
            &Params {
                n: threads,
                row_stride: grid.0 * WORKGROUP_SIZE,
                iters,
                _pad: 0,
                b: B,
                c: C,
                _pad1: [0; 2],
            },
        )?;
        let out = ctx.create_buffer(
            "fma out",
            step::bytes4(K, u64::from(threads.max(1)))?,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        )?;
        let bind_group = step::bind_group(ctx, K, &self.layout, &[&params, &out]);
        let start = Instant::now();
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(K) });
        {
            let mut pass = counters::begin_pass(&mut encoder, K);
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            counters::dispatch(&mut pass, grid.0, grid.1, 1);
        }
        ctx.submit([encoder.finish()]);
        ctx.wait_idle()?;
        Ok((out, start.elapsed().as_secs_f64()))
    }

    /// The f32 multiply-add rate: `threads` threads of `iters` iterations, the median of
    /// `rounds` runs after a warm-up.
    pub fn measure(
        &self,
        ctx: &GpuContext,
        threads: u32,
        iters: u32,
        rounds: u32,
    ) -> Result<FmaRate> {
        self.timed(ctx, threads, 1)?;
        let mut times: Vec<f64> = (0..rounds.max(1))
            .map(|_| self.timed(ctx, threads, iters).map(|r| r.1))
            .collect::<Result<_>>()?;
        times.sort_by(f64::total_cmp);
        let flops = 2.0 * (FMAS_PER_ITER * u64::from(threads) * u64::from(iters)) as f64;
        Ok(FmaRate {
            flops_per_second: flops / times[times.len() / 2],
            threads: u64::from(threads),
            iters,
        })
    }

    /// The chain factors the shader is run with (for tests comparing with [`fma_ref`]).
    pub fn factors() -> (f32, f32) {
        (B, C)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_match_the_shader_uniform() {
        assert_eq!(size_of::<Params>(), 32);
    }

    #[test]
    fn chains_stay_bounded() {
        let v = fma_ref(5, 10_000, B, C);
        assert!(v.is_finite() && v > 0.0 && v < 64.0, "{v}");
    }
}
