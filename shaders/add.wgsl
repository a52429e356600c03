// Elementwise residual add over f32: dst[i] = a[i] + b[i] for i < n_tokens * width.
//
// One thread per element, 256 threads per workgroup. The host dispatches a 2-D grid of
// workgroups (x * y) so that the element count may exceed 65535 * 256; `row_stride` is the
// number of threads in one row of the grid (x * 256), which turns the 2-D invocation id back
// into a flat element index. The element count comes from the step uniform, so one bind group
// serves every batch size; threads past the end do nothing.

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

struct Params {
    width: u32,
    row_stride: u32,
    max_tokens: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn add_f32(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = min(step.n_tokens, params.max_tokens) * params.width;
    let i = gid.y * params.row_stride + gid.x;
    if (i < n) {
        dst[i] = a[i] + b[i];
    }
}
