// The importance policy's attention scores (runtime/src/kv/evict.rs): after a layer's
// attention, adds to each ring slot's score (the slot table, kv/layout.wgsl) the softmax
// weight the step's observed queries gave its key, summed over query heads. The observed
// queries are the step's last n_obs = min(step.n_tokens, params.max_obs) tokens.
//
// q, q_sink: the queries attention read (attention_io.wgsl); cache: the layer's K, V and slot
// table; stats: [n_obs, n_heads, 4] f32 scratch (the attention partials, free by now).
//
// kv_score_stats: one workgroup per (head h, observed query o): over the keys that query sees
//   (kv_key, as attention walks them), the score's max m and sum l = sum exp(s - m), and the
//   query's dot with the key mean (kv/read.wgsl), into stats[(o * n_heads + h) * 4 ..].
// kv_score_add: one thread per ring slot: sum over o and h of exp(s - m) / l for each query
//   that sees the slot, added to the slot's score.

//!include "kv/layout.wgsl"

struct Params {
    n_heads: u32,
    head_dim: u32,
    max_obs: u32,
    _pad: u32,
    scale: f32,
    softcap: f32,
    _pad1: u32,
    _pad2: u32,
}

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

const WG: u32 = 64u;
const NEG_BIG: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> lay: KvLayout;
@group(0) @binding(2) var<uniform> step: Step;
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> q_sink: array<f32>;
@group(0) @binding(5) var<storage, read_write> cache: array<u32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;

// The query (token t, head h) the dot products read: set before kv_key_dot.
var<private> q_base: u32;

fn q_at(i: u32, sink: bool) -> f32 {
    if (sink) {
        return q_sink[q_base + i];
    }
    return q[q_base + i];
}

//!include "kv/read.wgsl"

fn score(raw: f32) -> f32 {
    var s = raw * params.scale;
    if (params.softcap > 0.0) {
        s = params.softcap * tanh(clamp(s / params.softcap, -10.0, 10.0));
    }
    return s;
}

fn n_obs() -> u32 {
    return min(step.n_tokens, params.max_obs);
}

var<workgroup> m_sh: array<f32, WG>;
var<workgroup> l_sh: array<f32, WG>;

@compute @workgroup_size(64, 1, 1)
fn kv_score_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let h = wg.x;
    let o = wg.y;
    if (h >= params.n_heads || o >= n_obs()) {
        return;
    }
    let t = step.n_tokens - n_obs() + o;
    let p = step.pos + t;
    let kvh = h / (params.n_heads / lay.n_kv_heads);
    q_base = (t * params.n_heads + h) * params.head_dim;
    kv_q_mu = kv_query_mean_dot(kvh);
    var m = NEG_BIG;
    var l = 0.0;
    for (var i = tid; i < kv_span(p, lay); i += WG) {
        let key = kv_key(i, p, lay);
        if (key.x == KV_NONE) {
            continue;
        }
        let loc = kv_locate(lay.k, key.x, key.y, kvh, step.n_kv, lay);
        let s = score(kv_key_dot(loc, params.head_dim, key.x < lay.sinks));
        let m_new = max(m, s);
        l = l * exp(m - m_new) + exp(s - m_new);
        m = m_new;
    }
    m_sh[tid] = m;
    l_sh[tid] = l;
    workgroupBarrier();
    if (tid == 0u) {
        var mm = NEG_BIG;
        for (var i = 0u; i < WG; i++) {
            mm = max(mm, m_sh[i]);
        }
        var ll = 0.0;
        for (var i = 0u; i < WG; i++) {
            ll += l_sh[i] * exp(m_sh[i] - mm);
        }
        let b = (o * params.n_heads + h) * 4u;
        stats[b] = mm;
        stats[b + 1u] = ll;
        stats[b + 2u] = kv_q_mu;
    }
}

@compute @workgroup_size(64, 1, 1)
fn kv_score_add(@builtin(global_invocation_id) gid: vec3<u32>) {
    let slot = gid.x;
    if (lay.table_off == KV_NONE || slot >= lay.ring_slots) {
        return;
    }
    let group = params.n_heads / lay.n_kv_heads;
    var acc = 0.0;
    for (var o = 0u; o < n_obs(); o++) {
        let t = step.n_tokens - n_obs() + o;
        let p = step.pos + t;
        let key = kv_key(min(lay.sinks, p + 1u) + slot, p, lay);
        if (key.x == KV_NONE) {
            continue;
        }
        for (var h = 0u; h < params.n_heads; h++) {
            let kvh = h / group;
            let b = (o * params.n_heads + h) * 4u;
            q_base = (t * params.n_heads + h) * params.head_dim;
            kv_q_mu = stats[b + 2u];
            let loc = kv_locate(lay.k, key.x, slot, kvh, step.n_kv, lay);
            let s = score(kv_key_dot(loc, params.head_dim, false));
            acc += exp(s - stats[b]) / stats[b + 1u];
        }
    }
    let at = lay.score_off + slot;
    cache[at] = bitcast<u32>(bitcast<f32>(cache[at]) + acc);
}
