// Appends a batch's keys and values to one layer's f16 KV cache.
//
// k_src: [n_tokens, n_kv_heads * head_dim] f32 (already roped), v_src: [n_tokens,
// n_kv_heads * head_dim_v] f32. The cache holds K [capacity, n_kv_heads, head_dim] and V
// [capacity, n_kv_heads, head_dim_v] as f16 pairs packed in u32 (pack2x16float: element 2w
// in the low half, 2w + 1 in the high half), so a cache row is k_row = n_kv_heads *
// head_dim / 2 words. Token t goes to slot step.pos + t; slots >= capacity are dropped (the
// host refuses such steps).
//
// One thread per (token, word) over max(k_row, v_row) words a token; 2-D grid, flat index
// gid.y * (num_workgroups.x * 256) + gid.x, bound-checked.

struct Params {
    k_row: u32,
    v_row: u32,
    capacity: u32,
    _pad: u32,
}

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> k_src: array<f32>;
@group(0) @binding(3) var<storage, read> v_src: array<f32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<u32>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn kv_write(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = max(params.k_row, params.v_row);
    let idx = gid.y * (nwg.x * 256u) + gid.x;
    let t = idx / row;
    let w = idx % row;
    if (t >= step.n_tokens) {
        return;
    }
    let slot = step.pos + t;
    if (slot >= params.capacity) {
        return;
    }
    if (w < params.k_row) {
        let s = 2u * (t * params.k_row + w);
        k_cache[slot * params.k_row + w] = pack2x16float(vec2<f32>(k_src[s], k_src[s + 1u]));
    }
    if (w < params.v_row) {
        let s = 2u * (t * params.v_row + w);
        v_cache[slot * params.v_row + w] = pack2x16float(vec2<f32>(v_src[s], v_src[s + 1u]));
    }
}
