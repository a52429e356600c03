// Causal (optionally sliding-window) grouped-query attention over one layer's f16 KV cache.
//
// q:   [n_tokens, n_heads, head_dim] f32 (already roped, normed)
// K/V: the cache, [capacity, n_kv_heads, head_dim(_v)] f16 packed in pairs in u32; slot j
//      holds position j (written by kv_write before this kernel runs)
// out: [n_tokens, n_heads, head_dim_v] f32
//
// Token t (absolute position p = step.pos + t) with query head h reads kv head
// h / (n_heads / n_kv_heads) over cache positions j in [lo, p], lo = max(0, p - window + 1)
// when window > 0, else 0. score_j = (q . k_j) * scale, optionally soft-capped
// (softcap * tanh(score / softcap)), softmax in f32, out = sum_j softmax_j * v_j.
//
// All entry points run 64 threads and walk their key range in tiles of 64 keys with an
// online softmax (running max m, running sum l, rescaled accumulator):
//   1. thread i scores key tile_start + i (a dot product over head_dim against q held in
//      workgroup memory) and stores it in s_sh;                                  barrier
//   2. every thread reads the tile's max from s_sh, thread i stores p_i = exp(s_i - m_new);
//                                                                                barrier
//   3. thread i accumulates the tile's p-weighted values for its value pairs i, i + 64, ...
//      (coalesced reads of V rows), and every thread keeps the same l.
// Two barriers a tile; nothing is bounded by the context length except loop counts.
//
// attn_prefill: one workgroup per (head, token): wg = (h, t).
// attn_prefill_rowwise + attn_prefill_rowwise_combine: the same result with one thread per
// (token, head, split of ROW_SPLIT keys) walking its keys serially (online softmax in
// registers, no workgroup memory, no barriers), writing a partial (m, l, acc) to `partials`
// [max_tokens, n_heads, row_splits, 2 + head_dim_v]; then one thread per (token, head)
// merges its splits. For CPU adapters, where the tile loop above costs O(64^2) per-thread
// loads and two barriers a tile. Splits keep each thread's loops short: software Vulkan
// (gallivm) stops a shader loop after 65535 iterations, which an unsplit walk over ~1000
// keys of 64 dims already reaches.
// attn_decode_split + attn_decode_combine (one token, flash-decoding): the key range is cut
// into splits of SPLIT keys, one workgroup per (head, split) writes its partial (m, l, acc)
// to `partials` [n_heads, max_splits, 2 + head_dim_v]; then one workgroup per head merges
// the splits. This spreads a long context over many workgroups when there is one query.

struct Params {
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    head_dim_v: u32,
    window: u32,
    capacity: u32,
    max_splits: u32,
    _pad0: u32,
    scale: f32,
    softcap: f32,
    row_splits: u32,
    _pad1: u32,
}

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

const WG: u32 = 64u;
// Keys per decode split (a multiple of WG).
const SPLIT: u32 = 256u;
// Value pairs per thread: head_dim_v <= 2 * WG * MAX_PAIRS = 512.
const MAX_PAIRS: u32 = 4u;
const MAX_HEAD_DIM: u32 = 512u;
// Stands in for -inf (which WGSL cannot spell): exp(NEG_BIG - finite) is 0.
const NEG_BIG: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k_cache: array<u32>;
@group(0) @binding(4) var<storage, read> v_cache: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;

var<workgroup> q_sh: array<f32, MAX_HEAD_DIM>;
var<workgroup> s_sh: array<f32, WG>;
var<workgroup> p_sh: array<f32, WG>;

struct State {
    m: f32,
    l: f32,
    acc: array<vec2<f32>, MAX_PAIRS>,
}

// First attended position for a query at absolute position p.
fn window_lo(p: u32) -> u32 {
    if (params.window > 0u && p + 1u > params.window) {
        return p + 1u - params.window;
    }
    return 0u;
}

// Loads query (t, h) into q_sh. The caller places a barrier before using it.
fn load_q(t: u32, h: u32, tid: u32) {
    let base = (t * params.n_heads + h) * params.head_dim;
    for (var d = tid; d < params.head_dim; d += WG) {
        q_sh[d] = q[base + d];
    }
}

// Online softmax attention of q_sh against cache positions [j0, j1) of kv head kvh.
// j0 < j1 and both workgroup-uniform.
fn attend(kvh: u32, j0: u32, j1: u32, tid: u32) -> State {
    var st: State;
    st.m = NEG_BIG;
    st.l = 0.0;
    for (var r = 0u; r < MAX_PAIRS; r++) {
        st.acc[r] = vec2<f32>(0.0);
    }
    let k_row = params.head_dim / 2u;
    let v_row = params.head_dim_v / 2u;
    let k_stride = params.n_kv_heads * k_row;
    let v_stride = params.n_kv_heads * v_row;

    for (var t0 = j0; t0 < j1; t0 += WG) {
        let n_in = min(WG, j1 - t0);
        let j = t0 + tid;
        var s = NEG_BIG;
        if (tid < n_in) {
            let kb = j * k_stride + kvh * k_row;
            var dot = 0.0;
            for (var w = 0u; w < k_row; w++) {
                let kk = unpack2x16float(k_cache[kb + w]);
                dot += q_sh[2u * w] * kk.x + q_sh[2u * w + 1u] * kk.y;
            }
            s = dot * params.scale;
            if (params.softcap > 0.0) {
                s = params.softcap * tanh(clamp(s / params.softcap, -10.0, 10.0));
            }
        }
        s_sh[tid] = s;
        workgroupBarrier();

        var m_tile = NEG_BIG;
        for (var i = 0u; i < n_in; i++) {
            m_tile = max(m_tile, s_sh[i]);
        }
        let m_new = max(st.m, m_tile);
        let alpha = exp(st.m - m_new);
        var p = 0.0;
        if (tid < n_in) {
            p = exp(s - m_new);
        }
        p_sh[tid] = p;
        workgroupBarrier();

        var l_tile = 0.0;
        for (var r = 0u; r < MAX_PAIRS; r++) {
            st.acc[r] *= alpha;
        }
        for (var i = 0u; i < n_in; i++) {
            let pi = p_sh[i];
            l_tile += pi;
            let vb = (t0 + i) * v_stride + kvh * v_row;
            for (var r = 0u; r < MAX_PAIRS; r++) {
                let w = tid + r * WG;
                if (w < v_row) {
                    st.acc[r] += pi * unpack2x16float(v_cache[vb + w]);
                }
            }
        }
        st.l = st.l * alpha + l_tile;
        st.m = m_new;
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
    let j1 = min(p + 1u, params.capacity);
    let j0 = window_lo(p);
    if (j0 >= j1) {
        return;
    }
    let kvh = h / (params.n_heads / params.n_kv_heads);
    load_q(t, h, tid);
    workgroupBarrier();
    let st = attend(kvh, j0, j1, tid);

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

// Number of decode splits for the query at position p.
fn n_splits(p: u32) -> u32 {
    let j1 = min(p + 1u, params.capacity);
    let j0 = window_lo(p);
    if (j0 >= j1) {
        return 0u;
    }
    return (j1 - j0 + SPLIT - 1u) / SPLIT;
}

@compute @workgroup_size(64, 1, 1)
fn attn_decode_split(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let h = wg.x;
    let s = wg.y;
    let p = step.pos;
    if (h >= params.n_heads || s >= min(n_splits(p), params.max_splits)) {
        return;
    }
    let j0 = window_lo(p) + s * SPLIT;
    let j1 = min(j0 + SPLIT, min(p + 1u, params.capacity));
    let kvh = h / (params.n_heads / params.n_kv_heads);
    load_q(0u, h, tid);
    workgroupBarrier();
    let st = attend(kvh, j0, j1, tid);

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
    let ns = min(n_splits(step.pos), params.max_splits);
    if (ns == 0u) {
        return;
    }
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

// Keys per row-wise split: at most 128 keys x 256 dims of inner iterations per loop.
const ROW_SPLIT: u32 = 128u;

// Key range [j0, j1) of the query at position p, and its number of row-wise splits.
fn row_split_count(p: u32) -> u32 {
    let j1 = min(p + 1u, params.capacity);
    let j0 = window_lo(p);
    if (j0 >= j1) {
        return 0u;
    }
    return min((j1 - j0 + ROW_SPLIT - 1u) / ROW_SPLIT, params.row_splits);
}

// One thread per (token, head, split): thread i of the dispatch takes s = i % row_splits,
// then h and t from the rest; it keeps its running max, sum and values in registers.
@compute @workgroup_size(64, 1, 1)
fn attn_prefill_rowwise(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let i = wg.x * WG + tid;
    let sp = i % params.row_splits;
    let th = i / params.row_splits;
    let h = th % params.n_heads;
    let t = th / params.n_heads;
    if (t >= step.n_tokens) {
        return;
    }
    let p = step.pos + t;
    if (sp >= row_split_count(p)) {
        return;
    }
    let j0 = window_lo(p) + sp * ROW_SPLIT;
    let j1 = min(j0 + ROW_SPLIT, min(p + 1u, params.capacity));
    let kvh = h / (params.n_heads / params.n_kv_heads);
    let k_row = params.head_dim / 2u;
    let v_row = params.head_dim_v / 2u;
    let k_stride = params.n_kv_heads * k_row;
    let v_stride = params.n_kv_heads * v_row;
    let qb = (t * params.n_heads + h) * params.head_dim;
    var acc: array<vec2<f32>, MAX_HEAD_DIM / 2u>;
    for (var w = 0u; w < v_row; w++) {
        acc[w] = vec2<f32>(0.0);
    }
    var m = NEG_BIG;
    var l = 0.0;
    for (var j = j0; j < j1; j++) {
        let kb = j * k_stride + kvh * k_row;
        var dot = 0.0;
        for (var w = 0u; w < k_row; w++) {
            let kk = unpack2x16float(k_cache[kb + w]);
            dot += q[qb + 2u * w] * kk.x + q[qb + 2u * w + 1u] * kk.y;
        }
        var s = dot * params.scale;
        if (params.softcap > 0.0) {
            s = params.softcap * tanh(clamp(s / params.softcap, -10.0, 10.0));
        }
        let m_new = max(m, s);
        let alpha = exp(m - m_new);
        let pj = exp(s - m_new);
        l = l * alpha + pj;
        m = m_new;
        let vb = j * v_stride + kvh * v_row;
        for (var w = 0u; w < v_row; w++) {
            acc[w] = acc[w] * alpha + pj * unpack2x16float(v_cache[vb + w]);
        }
    }
    let pb = (th * params.row_splits + sp) * (2u + params.head_dim_v);
    partials[pb] = m;
    partials[pb + 1u] = l;
    for (var w = 0u; w < v_row; w++) {
        partials[pb + 2u + 2u * w] = acc[w].x;
        partials[pb + 3u + 2u * w] = acc[w].y;
    }
}

// One thread per (token, head): merges the splits written by attn_prefill_rowwise.
@compute @workgroup_size(64, 1, 1)
fn attn_prefill_rowwise_combine(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let th = wg.x * WG + tid;
    let h = th % params.n_heads;
    let t = th / params.n_heads;
    if (t >= step.n_tokens) {
        return;
    }
    let ns = row_split_count(step.pos + t);
    if (ns == 0u) {
        return;
    }
    let stride = 2u + params.head_dim_v;
    let hb = th * params.row_splits * stride;
    var m = NEG_BIG;
    for (var sp = 0u; sp < ns; sp++) {
        m = max(m, partials[hb + sp * stride]);
    }
    var l = 0.0;
    for (var sp = 0u; sp < ns; sp++) {
        l += exp(partials[hb + sp * stride] - m) * partials[hb + sp * stride + 1u];
    }
    let inv_l = 1.0 / l;
    let ob = (t * params.n_heads + h) * params.head_dim_v;
    for (var d = 0u; d < params.head_dim_v; d++) {
        var o = 0.0;
        for (var sp = 0u; sp < ns; sp++) {
            let sb = hb + sp * stride;
            o += exp(partials[sb] - m) * partials[sb + 2u + d];
        }
        out[ob + d] = o * inv_l;
    }
}
