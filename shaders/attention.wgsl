// Causal grouped-query attention over one layer's KV cache (kv/layout.wgsl): sinks plus a
// sliding window, each side f16 / q8 / q4, read in place (kv/read.wgsl).
//
// Buffers: kv/attention_io.wgsl.
//
// Token t (position p = step.pos + t) with query head h reads kv head
// h / (n_heads / n_kv_heads) over its keys: the sinks 0 .. kv_sink_count(p), then its window
// kv_window_lo(p) ..= p, or under the importance policy the ring slots it sees (kv_key maps
// key index i to a position and slot, and masks the slots not seen). score = (q . k) * scale,
// optionally soft-capped (softcap * tanh(score / softcap)); softmax in f32.
//
// All entry points run 64 threads and walk their keys in tiles of 64 with an online softmax
// (running max m, running sum l, rescaled accumulator):
//   1. thread i scores key tile_start + i against q held in workgroup memory;     barrier
//   2. every thread reads the tile's max, thread i stores p_i = exp(s_i - m_new); barrier
//   3. thread i accumulates the tile's p-weighted values for its value pairs i, i + 64, ...
//
// attn_prefill: one workgroup per (head, token): wg = (h, t).
// attn_decode_split + attn_decode_combine (one token, flash-decoding): the keys are cut into
// splits of SPLIT, one workgroup per (head, split) writes its partial (m, l, acc) to
// `partials` [n_heads, max_splits, 2 + head_dim_v]; then one workgroup per head merges them.
// The row-per-thread variant for CPU adapters is attention_rowwise.wgsl.

//!include "kv/attention_io.wgsl"

// Keys per decode split (a multiple of WG).
const SPLIT: u32 = 256u;
// Value pairs per thread: head_dim_v <= 2 * WG * MAX_PAIRS = 512.
const MAX_PAIRS: u32 = 4u;

var<workgroup> q_sh: array<f32, MAX_HEAD_DIM>;
var<workgroup> qs_sh: array<f32, MAX_HEAD_DIM>;
var<workgroup> s_sh: array<f32, WG>;
var<workgroup> p_sh: array<f32, WG>;
// Each tile key's (position, ring slot); position KV_NONE: not seen.
var<workgroup> key_sh: array<vec2<u32>, WG>;

fn q_at(i: u32, sink: bool) -> f32 {
    if (sink) {
        return qs_sh[i];
    }
    return q_sh[i];
}

//!include "kv/read.wgsl"

struct State {
    m: f32,
    l: f32,
    acc: array<vec2<f32>, MAX_PAIRS>,
}

fn empty_state() -> State {
    var st: State;
    st.m = NEG_BIG;
    st.l = 0.0;
    for (var r = 0u; r < MAX_PAIRS; r++) {
        st.acc[r] = vec2<f32>(0.0);
    }
    return st;
}

// Loads query (t, h) and its sink twin into workgroup memory. The caller places a barrier.
fn load_q(t: u32, h: u32, tid: u32) {
    let base = (t * params.n_heads + h) * params.head_dim;
    for (var d = tid; d < params.head_dim; d += WG) {
        q_sh[d] = q[base + d];
        qs_sh[d] = q_sink[base + d];
    }
}

// Online softmax over key indices [i0, i1) of the query at position p (kv head kvh),
// continuing from `st`. i0 < i1, both workgroup-uniform.
fn attend(st_in: State, kvh: u32, p: u32, i0: u32, i1: u32, tid: u32) -> State {
    var st = st_in;
    let v_row = params.head_dim_v / 2u;
    for (var t0 = i0; t0 < i1; t0 += WG) {
        let n_in = min(WG, i1 - t0);
        var s = NEG_BIG;
        var key = vec2<u32>(KV_NONE, 0u);
        if (tid < n_in) {
            key = kv_key(t0 + tid, p, lay);
        }
        if (key.x != KV_NONE) {
            let loc = kv_locate(lay.k, key.x, key.y, kvh, step.n_kv, lay);
            s = score(kv_key_dot(loc, params.head_dim, key.x < lay.sinks));
        }
        s_sh[tid] = s;
        key_sh[tid] = key;
        workgroupBarrier();

        var m_tile = NEG_BIG;
        for (var i = 0u; i < n_in; i++) {
            m_tile = max(m_tile, s_sh[i]);
        }
        let m_new = max(st.m, m_tile);
        let alpha = exp(st.m - m_new);
        var pr = 0.0;
        if (key.x != KV_NONE) {
            pr = exp(s - m_new);
        }
        p_sh[tid] = pr;
        workgroupBarrier();

        var l_tile = 0.0;
        for (var r = 0u; r < MAX_PAIRS; r++) {
            st.acc[r] *= alpha;
        }
        for (var i = 0u; i < n_in; i++) {
            let pi = p_sh[i];
            let ki = key_sh[i];
            if (ki.x == KV_NONE) {
                continue;
            }
            l_tile += pi;
            let loc = kv_locate(lay.v, ki.x, ki.y, kvh, step.n_kv, lay);
            for (var r = 0u; r < MAX_PAIRS; r++) {
                let w = tid + r * WG;
                if (w < v_row) {
                    st.acc[r] += pi * kv_value_pair(loc, w);
                }
            }
        }
        st.l = st.l * alpha + l_tile;
        st.m = m_new;
        // s_sh, p_sh and key_sh are rewritten by the next tile.
        workgroupBarrier();
    }
    return st;
}

@compute @workgroup_size(64, 1, 1)
fn attn_prefill(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let h = wg.x;
    let t = wg.y;
    if (h >= params.n_heads || t >= step.n_tokens) {
        return;
    }
    let p = step.pos + t;
    let kvh = h / (params.n_heads / lay.n_kv_heads);
    load_q(t, h, tid);
    workgroupBarrier();
    kv_q_mu = kv_query_mean_dot(kvh);
    let st = attend(empty_state(), kvh, p, 0u, kv_span(p, lay), tid);

    let inv_l = 1.0 / st.l;
    let v_row = params.head_dim_v / 2u;
    let ob = (t * params.n_heads + h) * params.head_dim_v;
    for (var r = 0u; r < MAX_PAIRS; r++) {
        let w = tid + r * WG;
        if (w < v_row) {
            let o = st.acc[r] * inv_l;
            out[ob + 2u * w] = o.x;
            out[ob + 2u * w + 1u] = o.y;
        }
    }
}

// Number of decode splits of the query at position p.
fn n_splits(p: u32) -> u32 {
    return min((kv_span(p, lay) + SPLIT - 1u) / SPLIT, params.max_splits);
}

@compute @workgroup_size(64, 1, 1)
fn attn_decode_split(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let h = wg.x;
    let s = wg.y;
    let p = step.pos;
    if (h >= params.n_heads || s >= n_splits(p)) {
        return;
    }
    let i0 = s * SPLIT;
    let i1 = min(i0 + SPLIT, kv_span(p, lay));
    let kvh = h / (params.n_heads / lay.n_kv_heads);
    load_q(0u, h, tid);
    workgroupBarrier();
    kv_q_mu = kv_query_mean_dot(kvh);
    let st = attend(empty_state(), kvh, p, i0, i1, tid);

    let v_row = params.head_dim_v / 2u;
    let pb = (h * params.max_splits + s) * (2u + params.head_dim_v);
    if (tid == 0u) {
        partials[pb] = st.m;
        partials[pb + 1u] = st.l;
    }
    for (var r = 0u; r < MAX_PAIRS; r++) {
        let w = tid + r * WG;
        if (w < v_row) {
            partials[pb + 2u + 2u * w] = st.acc[r].x;
            partials[pb + 3u + 2u * w] = st.acc[r].y;
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn attn_decode_combine(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let h = wg.x;
    if (h >= params.n_heads) {
        return;
    }
    let ns = n_splits(step.pos);
    let stride = 2u + params.head_dim_v;
    let hb = h * params.max_splits * stride;
    var m = NEG_BIG;
    for (var s = 0u; s < ns; s++) {
        m = max(m, partials[hb + s * stride]);
    }
    var l = 0.0;
    for (var s = 0u; s < ns; s++) {
        l += exp(partials[hb + s * stride] - m) * partials[hb + s * stride + 1u];
    }
    let inv_l = 1.0 / l;
    let ob = h * params.head_dim_v;
    for (var d = tid; d < params.head_dim_v; d += WG) {
        var o = 0.0;
        for (var s = 0u; s < ns; s++) {
            let sb = hb + s * stride;
            o += exp(partials[sb] - m) * partials[sb + 2u + d];
        }
        out[ob + d] = o * inv_l;
    }
}
