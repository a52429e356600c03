// Row-per-thread attention prefill for CPU adapters: the same result as attn_prefill in
// attention.wgsl (read its header for the contract), with one thread per (token, head, split
// of ROW_SPLIT keys) walking its keys serially (online softmax in registers, no workgroup
// memory, no barriers) and writing a partial (m, l, acc) to `partials`
// [max_tokens, n_heads, row_splits, 2 + head_dim_v]; then one thread per (token, head)
// merges its splits. Splits keep each thread's loops short: software Vulkan (gallivm) stops
// a shader loop after 65535 iterations.

//!include "kv/attention_io.wgsl"

// Keys per split: at most 128 keys x 256 dims of inner iterations per loop.
const ROW_SPLIT: u32 = 128u;

// The thread's query and sink query, loaded once: every key's dot product reads them again,
// and software Vulkan issues a real load for each read of a storage buffer.
var<private> qv: array<f32, MAX_HEAD_DIM>;
var<private> qsv: array<f32, MAX_HEAD_DIM>;

fn q_at(i: u32, sink: bool) -> f32 {
    if (sink) {
        return qsv[i];
    }
    return qv[i];
}

//!include "kv/read.wgsl"

fn row_split_count(p: u32) -> u32 {
    return min((kv_span(p, lay) + ROW_SPLIT - 1u) / ROW_SPLIT, params.row_splits);
}

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
    let i0 = sp * ROW_SPLIT;
    let i1 = min(i0 + ROW_SPLIT, kv_span(p, lay));
    let kvh = h / (params.n_heads / lay.n_kv_heads);
    let v_row = params.head_dim_v / 2u;
    let q_base = (t * params.n_heads + h) * params.head_dim;
    for (var c = 0u; c < params.head_dim; c++) {
        qv[c] = q[q_base + c];
    }
    if (lay.sinks > 0u && i0 < lay.sinks) {
        for (var c = 0u; c < params.head_dim; c++) {
            qsv[c] = q_sink[q_base + c];
        }
    }
    kv_q_mu = kv_query_mean_dot(kvh);
    var acc: array<vec2<f32>, MAX_HEAD_DIM / 2u>;
    for (var w = 0u; w < v_row; w++) {
        acc[w] = vec2<f32>(0.0);
    }
    var m = NEG_BIG;
    var l = 0.0;
    for (var k = i0; k < i1; k++) {
        let key = kv_key(k, p, lay);
        if (key.x == KV_NONE) {
            continue;
        }
        let j = key.x;
        let kloc = kv_locate(lay.k, j, key.y, kvh, step.n_kv, lay);
        let s = score(kv_key_dot(kloc, params.head_dim, j < lay.sinks));
        let m_new = max(m, s);
        let alpha = exp(m - m_new);
        let pj = exp(s - m_new);
        l = l * alpha + pj;
        m = m_new;
        let vloc = kv_locate(lay.v, j, key.y, kvh, step.n_kv, lay);
        for (var w = 0u; w < v_row; w++) {
            acc[w] = acc[w] * alpha + pj * kv_value_pair(vloc, w);
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
