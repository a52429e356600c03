// Rotary position embedding, in place on x: [n_tokens, n_heads, head_dim] f32.
//
// Token t has the absolute position p = step.pos + t. Pair i (i < rope_dim / 2) is rotated
// by theta = p * freqs[i], where the host fills freqs[i] = freq_scale * base^(-2i / rope_dim)
// (computed in f64 once). Layout "normal" rotates the adjacent dims (2i, 2i + 1); "neox"
// rotates (i, i + rope_dim / 2). Dims >= rope_dim are left untouched.
//
// The position is capped at max_pos: a query scored against the attention sinks is roped at
// its position inside the cache (runtime/src/kv/mod.rs `sink_query_pos`).
// Entry points: `rope` rotates x in place; `rope_from` reads src and writes its rotation to
// x (dims >= rope_dim copied).
//
// One thread per (token, head, pair); 2-D grid, flat index gid.y * (num_workgroups.x * 256)
// + gid.x, bound-checked. theta is reduced to [-pi, pi] before sin/cos, the range where
// GPU sin/cos have a specified accuracy.

struct Params {
    n_heads: u32,
    head_dim: u32,
    rope_dim: u32,
    neox: u32,
    max_pos: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
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
@group(0) @binding(4) var<storage, read> src: array<f32>;

// Cosine and sine of pair i's angle for token t.
fn angle(t: u32, i: u32) -> vec2<f32> {
    var theta = f32(min(step.pos + t, params.max_pos)) * freqs[i];
    theta = theta - TAU * round(theta / TAU);
    return vec2<f32>(cos(theta), sin(theta));
}

// (first, second) element of pair i of head h of token t.
fn pair_index(t: u32, h: u32, i: u32) -> vec2<u32> {
    let base = (t * params.n_heads + h) * params.head_dim;
    if (params.neox != 0u) {
        return vec2<u32>(base + i, base + i + params.rope_dim / 2u);
    }
    return vec2<u32>(base + 2u * i, base + 2u * i + 1u);
}

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
    let cs = angle(t, r % half_dim);
    let ix = pair_index(t, r / half_dim, r % half_dim);
    let x0 = x[ix.x];
    let x1 = x[ix.y];
    x[ix.x] = x0 * cs.x - x1 * cs.y;
    x[ix.y] = x0 * cs.y + x1 * cs.x;
}

// Out of place: one thread per (token, head, element pair of the head), so dims past
// rope_dim are copied.
@compute @workgroup_size(256, 1, 1)
fn rope_from(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let half_dim = params.rope_dim / 2u;
    let half_head = params.head_dim / 2u;
    let per_token = params.n_heads * half_head;
    let idx = gid.y * (nwg.x * 256u) + gid.x;
    if (idx >= step.n_tokens * per_token) {
        return;
    }
    let t = idx / per_token;
    let r = idx % per_token;
    let h = r / half_head;
    let i = r % half_head;
    if (i < half_dim) {
        let cs = angle(t, i);
        let ix = pair_index(t, h, i);
        let x0 = src[ix.x];
        let x1 = src[ix.y];
        x[ix.x] = x0 * cs.x - x1 * cs.y;
        x[ix.y] = x0 * cs.y + x1 * cs.x;
    } else {
        // A pair past rope_dim (both layouts leave dims >= rope_dim alone).
        let base = (t * params.n_heads + h) * params.head_dim;
        x[base + 2u * i] = src[base + 2u * i];
        x[base + 2u * i + 1u] = src[base + 2u * i + 1u];
    }
}
