//! The gated feed-forward activation `out = act(gate) * up` (SwiGLU with silu, GeGLU with
//! gelu's tanh approximation), and the in-place scale `x *= s`, over `[n_tokens, width]`
//! f32. Shaders: `shaders/ffn_act.wgsl`, `shaders/scale.wgsl`. Kernel contract: see
//! [`super::step`].

use crate::gpu::alloc::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::step;
use crate::gpu::{pipeline, shaders};
use crate::{Error, Result};

/// Threads per workgroup; must match both shaders.
const WORKGROUP_SIZE: u32 = 256;

/// The activation applied to the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(x)` (Llama, Qwen).
    Silu,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (Gemma).
    GeluTanh,
}

impl Activation {
    /// The activation of one value, in f32 like ggml's CPU ops.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::GeluTanh => {
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                const GELU_COEF_A: f32 = 0.044_715;
                0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
            }
        }
    }
}

/// The CPU reference: `act(gate[i]) * up[i]`.
///
/// # Panics
/// When the lengths differ.
pub fn ffn_act_ref(gate: &[f32], up: &[f32], act: Activation) -> Vec<f32> {
    assert_eq!(
        gate.len(),
        up.len(),
        "ffn_act_ref: operands differ in length"
    );
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| act.apply(g) * u)
        .collect()
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ActParams {
    width: u32,
    act: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScaleParams {
    width: u32,
    s: f32,
    _pad: [u32; 2],
}

/// A bound elementwise op over `[n_tokens, width]`, built once.
pub struct ElementwiseBinding {
    bind_group: wgpu::BindGroup,
    width: u32,
    max_tokens: u32,
    _params: GpuBuffer,
}

/// The ffn_act and scale pipelines, built once per device.
pub struct FfnActKernel {
    act_layout: wgpu::BindGroupLayout,
    act_pipeline: wgpu::ComputePipeline,
    scale_layout: wgpu::BindGroupLayout,
    scale_pipeline: wgpu::ComputePipeline,
    max_groups: u32,
}

impl FfnActKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let (act_layout, mut act) = pipeline::build_with_layout(
            ctx,
            "ffn_act",
            &[
                pipeline::uniform_entry(0),
                pipeline::uniform_entry(1),
                pipeline::storage_entry(2, true),
                pipeline::storage_entry(3, true),
                pipeline::storage_entry(4, false),
            ],
            &[(shaders::get("ffn_act")?, &["ffn_act"])],
        )?;
        let (scale_layout, mut scale) = pipeline::build_with_layout(
            ctx,
            "scale",
            &[
                pipeline::uniform_entry(0),
                pipeline::uniform_entry(1),
                pipeline::storage_entry(2, false),
            ],
            &[(shaders::get("scale")?, &["scale"])],
        )?;
        Ok(Self {
            act_layout,
            act_pipeline: act.remove(0),
            scale_layout,
            scale_pipeline: scale.remove(0),
            max_groups: ctx.limits().max_compute_workgroups_per_dimension,
        })
    }

    /// Binds `out = act(gate) * up`, each f32 `[max_tokens, width]` at least; `out` distinct
    /// from the inputs.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        gate: &GpuBuffer,
        up: &GpuBuffer,
        out: &GpuBuffer,
        width: u32,
        act: Activation,
        max_tokens: u32,
    ) -> Result<ElementwiseBinding> {
        let bytes = step::bytes4("ffn_act", u64::from(max_tokens) * u64::from(width))?;
        step::check_storage(ctx, "ffn_act", "gate", gate, bytes)?;
        step::check_storage(ctx, "ffn_act", "up", up, bytes)?;
        step::check_storage(ctx, "ffn_act", "out", out, bytes)?;
        let params = step::uniform(
            ctx,
            "ffn_act params",
            &ActParams {
                width,
                act: match act {
                    Activation::Silu => 0,
                    Activation::GeluTanh => 1,
                },
                _pad: [0; 2],
            },
        )?;
        let bind_group = step::bind_group(
            ctx,
            "ffn_act",
            &self.act_layout,
            &[&params, step_buf, gate, up, out],
        );
        Ok(ElementwiseBinding {
            bind_group,
            width,
            max_tokens,
            _params: params,
        })
    }

    /// Binds the in-place `x *= s` over f32 `[max_tokens, width]` at least.
    pub fn bind_scale(
        &self,
        ctx: &GpuContext,
        step_buf: &GpuBuffer,
        x: &GpuBuffer,
        width: u32,
        s: f32,
        max_tokens: u32,
    ) -> Result<ElementwiseBinding> {
        let bytes = step::bytes4("scale", u64::from(max_tokens) * u64::from(width))?;
        step::check_storage(ctx, "scale", "x", x, bytes)?;
        let params = step::uniform(
            ctx,
            "scale params",
            &ScaleParams {
                width,
                s,
                _pad: [0; 2],
            },
        )?;
        let bind_group =
            step::bind_group(ctx, "scale", &self.scale_layout, &[&params, step_buf, x]);
        Ok(ElementwiseBinding {
            bind_group,
            width,
            max_tokens,
            _params: params,
        })
    }

    fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        pipeline: &wgpu::ComputePipeline,
        binding: &ElementwiseBinding,
        n_tokens: u32,
    ) -> Result<()> {
        if n_tokens > binding.max_tokens {
            return Err(Error::Gpu(format!(
                "ffn_act: {n_tokens} tokens exceed the {} bound",
                binding.max_tokens
            )));
        }
        let threads = u64::from(n_tokens) * u64::from(binding.width);
        if threads == 0 {
            return Ok(());
        }
        let (x, y) = step::thread_grid(self.max_groups, "ffn_act", threads, WORKGROUP_SIZE)?;
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &binding.bind_group, &[]);
        crate::gpu::counters::dispatch(pass, x, y, 1);
        Ok(())
    }

    /// Records `out = act(gate) * up` for `n_tokens` tokens (the step's n_tokens).
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &ElementwiseBinding,
        n_tokens: u32,
    ) -> Result<()> {
        self.dispatch(pass, &self.act_pipeline, binding, n_tokens)
    }

    /// Records `x *= s` for `n_tokens` tokens (a binding from [`FfnActKernel::bind_scale`]).
    pub fn encode_scale(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        binding: &ElementwiseBinding,
        n_tokens: u32,
    ) -> Result<()> {
        self.dispatch(pass, &self.scale_pipeline, binding, n_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_activations() {
        assert_eq!(Activation::Silu.apply(0.0), 0.0);
        assert!((Activation::Silu.apply(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((Activation::GeluTanh.apply(1.0) - 0.841_192).abs() < 1e-5);
        assert_eq!(Activation::GeluTanh.apply(-20.0), -0.0);
        assert_eq!(
            ffn_act_ref(&[0.0, 1.0], &[5.0, 2.0], Activation::Silu)[0],
            0.0
        );
    }

    #[test]
    fn params_match_the_shader_uniforms() {
        assert_eq!(size_of::<ActParams>(), 16);
        assert_eq!(size_of::<ScaleParams>(), 16);
    }
}
