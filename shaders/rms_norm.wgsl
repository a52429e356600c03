// RMS normalization over rows of f32:
//   dst[r][i] = src[r][i] / sqrt(mean_i(src[r][i]^2) + eps) * (weight[i] if has_weight)
//
// Rows are `rows_per_token` per token (1 for the residual stream, n_heads for per-head q/k
// norms), so n_rows = step.n_tokens * rows_per_token. One workgroup per row: each of the 128
// threads sums the squares of a strided slice in f32, then a tree reduction in workgroup
// memory gives the row's sum. The host dispatches a 2-D grid of workgroups (x * y >= n_rows);
// the row index is wg.y * num_workgroups.x + wg.x and extra workgroups return at once.

struct Params {
    width: u32,
    rows_per_token: u32,
    has_weight: u32,
    eps: f32,
}

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

const WG: u32 = 128u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(128, 1, 1)
fn rms_norm(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= step.n_tokens * params.rows_per_token) {
        return;
    }
    let width = params.width;
    let base = row * width;

    var sum = 0.0;
    for (var i = tid; i < width; i += WG) {
        let v = src[base + i];
        sum += v * v;
    }
    partial[tid] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (tid < s) {
            partial[tid] += partial[tid + s];
        }
        workgroupBarrier();
    }
    let scale = 1.0 / sqrt(partial[0] / f32(width) + params.eps);

    for (var i = tid; i < width; i += WG) {
        var y = src[base + i] * scale;
        if (params.has_weight != 0u) {
            y *= weight[i];
        }
        dst[base + i] = y;
    }
}
