// Rotary position embedding, in place on x: [n_tokens, n_heads, head_dim] f32.
//
// Token t has the absolute position p = step.pos + t. Pair i (i < rope_dim / 2) is rotated
// by theta = p * freqs[i], where the host fills freqs[i] = freq_scale * base^(-2i / rope_dim)
// (computed in f64 once). Layout "normal" rotates the adjacent dims (2i, 2i + 1); "neox"
// rotates (i, i + rope_dim / 2). Dims >= rope_dim are left untouched.
//
// One thread per (token, head, pair); 2-D grid, flat index gid.y * (num_workgroups.x * 256)
// + gid.x, bound-checked. theta is reduced to [-pi, pi] before sin/cos, the range where
// GPU sin/cos have a specified accuracy.

struct Params {
    n_heads: u32,
    head_dim: u32,
    rope_dim: u32,
    neox: u32,
}

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

const TAU: f32 = 6.283185307179586;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> freqs: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn rope(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let half_dim = params.rope_dim / 2u;
    let per_token = params.n_heads * half_dim;
    let idx = gid.y * (nwg.x * 256u) + gid.x;
    if (half_dim == 0u || idx >= step.n_tokens * per_token) {
        return;
    }
    let t = idx / per_token;
    let r = idx % per_token;
    let h = r / half_dim;
    let i = r % half_dim;

    var theta = f32(step.pos + t) * freqs[i];
    theta = theta - TAU * round(theta / TAU);
    let c = cos(theta);
    let s = sin(theta);

    let base = (t * params.n_heads + h) * params.head_dim;
    var i0 = base + 2u * i;
    var i1 = i0 + 1u;
    if (params.neox != 0u) {
        i0 = base + i;
        i1 = i0 + half_dim;
    }
    let x0 = x[i0];
    let x1 = x[i1];
    x[i0] = x0 * c - x1 * s;
    x[i1] = x0 * s + x1 * c;
}
