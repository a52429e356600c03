// out[t][:] = dequant(W row ids[t]) * params.scale for t < step.n_tokens, for the ids whose
// row lies in this weight chunk (first_row .. first_row + chunk_rows); other tokens are left
// untouched, so one dispatch per chunk fills every token, and ids past the last row are never
// written. The ids live only on the GPU.
//
// A template (see matmul.wgsl): {{QUANT}} names the format snippet in shaders/quant/.
// One thread per 8 values of a row: workgroup (x, t) covers values 2048 x .. 2048 (x + 1) of
// token t's row (256 threads x 8 values); a row whose length is not a multiple of 8 (only
// F32/F16/BF16) ends value by value.

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

struct Params {
    k: u32,          // values per row
    first_row: u32,  // the chunk's first row
    chunk_rows: u32, // rows in this chunk
    row_bytes: u32,  // bytes per row
    scale: f32,      // multiplies every value
    max_tokens: u32, // ids and out hold this many tokens
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

//!include "quant/common.wgsl"
//!include "quant/{{QUANT}}.wgsl"

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.y;
    if (t >= min(step.n_tokens, params.max_tokens)) {
        return;
    }
    let id = ids[t];
    if (id < params.first_row || id - params.first_row >= params.chunk_rows) {
        return;
    }
    let row = (id - params.first_row) * params.row_bytes;
    let k = params.k;
    let g = gid.x;
    let base = t * k;
    if (8u * g + 8u <= k) {
        let v = dq8(row, g);
        let o = base + 8u * g;
        out[o] = v.a.x * params.scale;
        out[o + 1u] = v.a.y * params.scale;
        out[o + 2u] = v.a.z * params.scale;
        out[o + 3u] = v.a.w * params.scale;
        out[o + 4u] = v.b.x * params.scale;
        out[o + 5u] = v.b.y * params.scale;
        out[o + 6u] = v.b.z * params.scale;
        out[o + 7u] = v.b.w * params.scale;
    } else {
        for (var i = 8u * g; i < k; i++) {
            out[base + i] = dq1(row, i) * params.scale;
        }
    }
}
