//! The one way kernels build compute pipelines: inside a validation error scope, so a shader
//! the driver or wgpu refuses comes back as [`Error::Gpu`] naming the pipeline, never through
//! wgpu's uncaptured-error handler (which panics by default).

use crate::gpu::GpuContext;
use crate::{Error, Result};

/// A layout entry for a uniform buffer at `binding`.
pub(crate) fn uniform_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// A layout entry for a storage buffer at `binding`.
pub(crate) fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// A bind group layout made of `entries`.
pub(crate) fn layout(
    device: &wgpu::Device,
    label: &str,
    entries: &[wgpu::BindGroupLayoutEntry],
) -> wgpu::BindGroupLayout {
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries,
    })
}

/// Compiles each `(source, entry points)` module and builds one pipeline per entry point, in
/// order, all over `layout` (so one bind group serves them all).
pub(crate) fn build(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    modules: &[(&str, &[&str])],
) -> Result<Vec<wgpu::ComputePipeline>> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    let mut pipelines = Vec::new();
    for (source, entry_points) in modules {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl((*source).into()),
        });
        for entry in entry_points.iter() {
            pipelines.push(
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                }),
            );
        }
    }
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(Error::Gpu(format!(
            "cannot build pipeline `{label}`: {}",
            super::context::one_line(e)
        )));
    }
    Ok(pipelines)
}

/// A new layout of `entries` and the pipelines of [`build`] over it.
pub(crate) fn build_with_layout(
    ctx: &GpuContext,
    label: &str,
    entries: &[wgpu::BindGroupLayoutEntry],
    modules: &[(&str, &[&str])],
) -> Result<(wgpu::BindGroupLayout, Vec<wgpu::ComputePipeline>)> {
    let layout = layout(ctx.device(), label, entries);
    let pipelines = build(ctx.device(), label, &layout, modules)?;
    Ok((layout, pipelines))
}

/// One pipeline: `source`'s entry point `entry` over `layout`.
pub(crate) fn build_one(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    source: &str,
    entry: &str,
) -> Result<wgpu::ComputePipeline> {
    Ok(build(device, label, layout, &[(source, &[entry])])?.remove(0))
}
