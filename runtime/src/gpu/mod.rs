//! wgpu device and compute kernels (owned by the GPU work; stub).
