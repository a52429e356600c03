// Elementwise residual add over f32: dst[i] = a[i] + b[i] for i < n.
//
// One thread per element, 256 threads per workgroup. The host dispatches a
// 2-D grid of workgroups (x * y) so that n may exceed 65535 * 256 elements;
// `row_stride` is the number of threads in one row of the grid (x * 256),
// which turns the 2-D invocation id back into a flat element index. Threads
// past the end (n not a multiple of 256, or the last partial row) do nothing.

struct Params {
    n: u32,
    row_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn add_f32(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * params.row_stride + gid.x;
    if (i < params.n) {
        dst[i] = a[i] + b[i];
    }
}
