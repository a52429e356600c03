// Reading the KV cache inside attention. The including shader defines
//   var<storage, read> cache: array<u32>;   the layer's K and V (kv/layout.wgsl)
//   fn q_at(i: u32, sink: bool) -> f32;      element i of the query (the sink query when
//                                            `sink`: the query re-roped at its position
//                                            inside the cache)
// and sets kv_q_mu = kv_query_mean_dot(kvh) once the query is loaded.

// q . (the key mean of head kvh): added to every dot with a centered ring key.
var<private> kv_q_mu: f32;

fn kv_query_mean_dot(kvh: u32) -> f32 {
    let s = lay.k;
    if (s.mean_off == KV_NONE) {
        return 0.0;
    }
    var dot = 0.0;
    let base = s.mean_off + kvh * s.head_dim;
    for (var c = 0u; c < s.head_dim; c++) {
        dot += q_at(c, false) * bitcast<f32>(cache[base + c]);
    }
    return dot;
}

fn kv_f16_dot(base: u32, hd: u32, sink: bool) -> f32 {
    var dot = 0.0;
    for (var w = 0u; w < hd / 2u; w++) {
        let kk = unpack2x16float(cache[base + w]);
        dot += q_at(2u * w, sink) * kk.x + q_at(2u * w + 1u, sink) * kk.y;
    }
    return dot;
}

// Byte b (0..3) of w as a signed value.
fn kv_i8(w: u32, b: u32) -> f32 {
    return f32(bitcast<i32>(w << (24u - 8u * b)) >> 24u);
}

// Scale byte g of the groups a codebook head at `loc` starts (kv_locate).
fn kv_tq_scale(loc: vec4<u32>, g: u32) -> f32 {
    let byte = loc.w + g;
    return tq_scale((cache[loc.z + byte / 4u] >> (8u * (byte % 4u))) & 255u);
}

// q . k for a key head in a codebook format (bits 4 or 3), without the mean term.
fn kv_tq_key_dot(loc: vec4<u32>, bits: u32, hd: u32, sink: bool) -> f32 {
    var dot = 0.0;
    let gw = tq_group_words(bits);
    for (var g = 0u; g < hd / KV_TQ_GROUP; g++) {
        let gb = loc.x + g * gw;
        let i0 = g * KV_TQ_GROUP;
        var s = 0.0;
        if (bits == 4u) {
            for (var w = 0u; w < 8u; w++) {
                let word = cache[gb + w];
                for (var n = 0u; n < 8u; n++) {
                    s += q_at(i0 + 8u * w + n, sink) * tq_levels4[(word >> (4u * n)) & 15u];
                }
            }
        } else {
            for (var h = 0u; h < 2u; h++) {
                let p0 = cache[gb + 3u * h];
                let p1 = cache[gb + 3u * h + 1u];
                let p2 = cache[gb + 3u * h + 2u];
                for (var i = 0u; i < 32u; i++) {
                    s += q_at(i0 + 32u * h + i, sink) * tq_levels3[tq3_code(p0, p1, p2, i)];
                }
            }
        }
        dot += kv_tq_scale(loc, g) * s;
    }
    return dot;
}

// q . k for the key head at `loc` (kv_locate) of width hd.
fn kv_key_dot(loc: vec4<u32>, hd: u32, sink: bool) -> f32 {
    let base = loc.x;
    if (loc.y == KV_F16) {
        return kv_f16_dot(base, hd, sink);
    }
    // Ring keys are never sinks; a centered ring stored k - mean.
    var dot = kv_q_mu;
    if (loc.y == KV_TQ4) {
        return dot + kv_tq_key_dot(loc, 4u, hd, sink);
    }
    if (loc.y == KV_TQ3) {
        return dot + kv_tq_key_dot(loc, 3u, hd, sink);
    }
    if (loc.y == KV_Q8) {
        for (var b = 0u; b < hd / 32u; b++) {
            let bb = base + b * 9u;
            let d = unpack2x16float(cache[bb]).x;
            var s = 0.0;
            for (var w = 0u; w < 8u; w++) {
                let word = cache[bb + 1u + w];
                let i = b * 32u + 4u * w;
                s += q_at(i, sink) * kv_i8(word, 0u) + q_at(i + 1u, sink) * kv_i8(word, 1u)
                    + q_at(i + 2u, sink) * kv_i8(word, 2u) + q_at(i + 3u, sink) * kv_i8(word, 3u);
            }
            dot += d * s;
        }
        return dot;
    }
    for (var b = 0u; b < hd / 32u; b++) {
        let bb = base + b * 5u;
        let dm = unpack2x16float(cache[bb]);
        var s = 0.0;
        var qs = 0.0;
        for (var w = 0u; w < 4u; w++) {
            let word = cache[bb + 1u + w];
            for (var n = 0u; n < 8u; n++) {
                let qv = q_at(b * 32u + 8u * w + n, sink);
                s += qv * f32((word >> (4u * n)) & 15u);
                qs += qv;
            }
        }
        dot += dm.x * s + dm.y * qs;
    }
    return dot;
}

// Values 2w and 2w + 1 of the value head at `loc` (kv_locate).
fn kv_value_pair(loc: vec4<u32>, w: u32) -> vec2<f32> {
    if (loc.y == KV_F16) {
        return unpack2x16float(cache[loc.x + w]);
    }
    let i = 2u * w;
    if (loc.y == KV_TQ4 || loc.y == KV_TQ3) {
        let g = i / KV_TQ_GROUP;
        let r = i % KV_TQ_GROUP;
        let s = kv_tq_scale(loc, g);
        if (loc.y == KV_TQ4) {
            let word = cache[loc.x + g * 8u + r / 8u];
            let sh = 4u * (r % 8u);
            return s * vec2<f32>(
                tq_levels4[(word >> sh) & 15u],
                tq_levels4[(word >> (sh + 4u)) & 15u],
            );
        }
        let pb = loc.x + g * 6u + 3u * (r / 32u);
        let b = r % 32u;
        let p0 = cache[pb];
        let p1 = cache[pb + 1u];
        let p2 = cache[pb + 2u];
        return s * vec2<f32>(
            tq_levels3[tq3_code(p0, p1, p2, b)],
            tq_levels3[tq3_code(p0, p1, p2, b + 1u)],
        );
    }
    let b = i / 32u;
    let r = i % 32u;
    if (loc.y == KV_Q8) {
        let bb = loc.x + b * 9u;
        let d = unpack2x16float(cache[bb]).x;
        let word = cache[bb + 1u + r / 4u];
        return d * vec2<f32>(kv_i8(word, r % 4u), kv_i8(word, r % 4u + 1u));
    }
    let bb = loc.x + b * 5u;
    let dm = unpack2x16float(cache[bb]);
    let word = cache[bb + 1u + r / 8u];
    let sh = 4u * (r % 8u);
    let codes = vec2<f32>(f32((word >> sh) & 15u), f32((word >> (sh + 4u)) & 15u));
    return dm.x * codes + dm.y;
}
