// Writes a batch's keys and values into one layer's KV cache (layout: kv/layout.wgsl),
// quantizing them on the way (formats: runtime/src/kv/quant.rs).
//
// k_src: [n_tokens, n_kv_heads * head_dim] f32 (roped, and rotated when the cache rotates),
// v_src: [n_tokens, n_kv_heads * head_dim_v] f32. Token t is position j = step.pos + t;
// after the write the cache holds step.n_kv positions.
//   j < sinks: the block goes to the sink region in f16;
//   otherwise to its ring slot (kv_write_slot: by position, or as the importance policy
//   planned) in the side's type, and also to the recent region in f16
//   when j + recent >= n_kv.
// A centered side quantizes ring values minus its mean (kv/layout.wgsl), which `kv_mean`
// sets first when a session starts (step.pos == 0): the mean over the batch's tokens after the
// sinks, or 0 when fewer than MIN_MEAN_TOKENS are there.
// One thread per (token, block of 32 values) over K's blocks then V's; flat index
// gid.y * (num_workgroups.x * 64) + gid.x. A codebook ring (tq4, tq3) is written by the
// threads of every 8th block of the slot, each quantizing the 4 groups of 64 values whose
// scale bytes share one word. kv_mean: one thread per (head, channel) of K.

//!include "kv/layout.wgsl"

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> lay: KvLayout;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> k_src: array<f32>;
@group(0) @binding(3) var<storage, read> v_src: array<f32>;
@group(0) @binding(4) var<storage, read_write> cache: array<u32>;

var<private> vals: array<f32, 32>;
// One group of a codebook format.
var<private> gvals: array<f32, 64>;

const MIN_MEAN_TOKENS: u32 = 8u;

@compute @workgroup_size(64, 1, 1)
fn kv_mean(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = lay.k;
    let i = gid.x;
    if (step.pos != 0u || s.mean_off == KV_NONE || i >= lay.n_kv_heads * s.head_dim) {
        return;
    }
    let first = min(lay.sinks, step.n_tokens);
    let count = step.n_tokens - first;
    var mean = 0.0;
    if (count >= MIN_MEAN_TOKENS) {
        let width = lay.n_kv_heads * s.head_dim;
        for (var t = first; t < step.n_tokens; t++) {
            mean += k_src[t * width + i];
        }
        mean /= f32(count);
    }
    cache[s.mean_off + i] = bitcast<u32>(mean);
}

fn write_f16(base: u32) {
    for (var w = 0u; w < 16u; w++) {
        cache[base + w] = pack2x16float(vec2<f32>(vals[2u * w], vals[2u * w + 1u]));
    }
}

fn write_q8(base: u32) {
    var amax = 0.0;
    for (var i = 0u; i < 32u; i++) {
        amax = max(amax, abs(vals[i]));
    }
    let d = unpack2x16float(pack2x16float(vec2<f32>(amax / 127.0, 0.0))).x;
    var inv = 0.0;
    if (d > 0.0) {
        inv = 1.0 / d;
    }
    cache[base] = pack2x16float(vec2<f32>(d, 0.0));
    for (var w = 0u; w < 8u; w++) {
        var word = 0u;
        for (var b = 0u; b < 4u; b++) {
            let q = i32(clamp(round(vals[4u * w + b] * inv), -127.0, 127.0));
            word |= (bitcast<u32>(q) & 255u) << (8u * b);
        }
        cache[base + 1u + w] = word;
    }
}

fn write_q4(base: u32) {
    var lo = vals[0];
    var hi = vals[0];
    for (var i = 1u; i < 32u; i++) {
        lo = min(lo, vals[i]);
        hi = max(hi, vals[i]);
    }
    let dm = unpack2x16float(pack2x16float(vec2<f32>((hi - lo) / 15.0, lo)));
    var inv = 0.0;
    if (dm.x > 0.0) {
        inv = 1.0 / dm.x;
    }
    cache[base] = pack2x16float(dm);
    for (var w = 0u; w < 4u; w++) {
        var word = 0u;
        for (var n = 0u; n < 8u; n++) {
            let q = u32(clamp(round((vals[8u * w + n] - dm.y) * inv), 0.0, 15.0));
            word |= q << (4u * n);
        }
        cache[base + 1u + w] = word;
    }
}

// Squared error of gvals coded at scale s with the `bits` codebook (nearest levels).
fn tq_error(bits: u32, s: f32) -> f32 {
    var err = 0.0;
    for (var i = 0u; i < 64u; i++) {
        let d = gvals[i] - s * tq_level(bits, tq_code(bits, gvals[i], s));
        err += d * d;
    }
    return err;
}

// The nearest level's code of v at scale s: how many midpoints s * m lie below v.
fn tq_code(bits: u32, v: f32, s: f32) -> u32 {
    var c = 0u;
    if (bits == 4u) {
        for (var k = 0u; k < 15u; k++) {
            c += u32(v > s * tq_mids4[k]);
        }
    } else {
        for (var k = 0u; k < 7u; k++) {
            c += u32(v > s * tq_mids3[k]);
        }
    }
    return c;
}

// The scale byte for gvals (runtime/src/kv/quant.rs, encode_group): the smallest byte whose
// outer level reaches the largest magnitude, or the next one if its squared error is less.
fn tq_encode(bits: u32) -> u32 {
    var ss = 0.0;
    var amax = 0.0;
    for (var i = 0u; i < 64u; i++) {
        ss += gvals[i] * gvals[i];
        amax = max(amax, abs(gvals[i]));
    }
    if (!(ss > 0.0 && ss <= 3.40282347e38)) {
        return 0u;
    }
    let top = tq_level(bits, (1u << bits) - 1u);
    var e0 = 255u;
    for (var step = 128u; step > 0u; step /= 2u) {
        if (e0 > step && tq_scale(e0 - step) * top >= amax) {
            e0 -= step;
        }
    }
    let e1 = min(e0 + 1u, 255u);
    if (tq_error(bits, tq_scale(e1)) < tq_error(bits, tq_scale(e0))) {
        return e1;
    }
    return e0;
}

// Writes gvals' codes at scale s (runtime/src/kv/quant.rs has the layout).
fn tq_write_codes(bits: u32, base: u32, s: f32) {
    if (bits == 4u) {
        for (var w = 0u; w < 8u; w++) {
            var word = 0u;
            for (var n = 0u; n < 8u; n++) {
                word |= tq_code(4u, gvals[8u * w + n], s) << (4u * n);
            }
            cache[base + w] = word;
        }
        return;
    }
    for (var h = 0u; h < 2u; h++) {
        var p0 = 0u;
        var p1 = 0u;
        var p2 = 0u;
        for (var i = 0u; i < 32u; i++) {
            let c = tq_code(3u, gvals[32u * h + i], s);
            p0 |= (c & 1u) << i;
            p1 |= ((c >> 1u) & 1u) << i;
            p2 |= ((c >> 2u) & 1u) << i;
        }
        cache[base + 3u * h] = p0;
        cache[base + 3u * h + 1u] = p1;
        cache[base + 3u * h + 2u] = p2;
    }
}

// Quantizes token t's groups g0 .. g0 + 3 of side s into ring slot `slot` and their scale
// bytes into one word (g0 a multiple of 4).
fn write_tq_groups(s: KvSide, is_k: bool, t: u32, g0: u32, slot: u32) {
    var bits = 3u;
    if (s.ty == KV_TQ4) {
        bits = 4u;
    }
    let width = lay.n_kv_heads * s.head_dim;
    let n_groups = width / KV_TQ_GROUP;
    let slot_base = s.ring_off + slot * s.ring_slot_words;
    var scales = 0u;
    for (var k = 0u; k < 4u; k++) {
        let g = g0 + k;
        if (g >= n_groups) {
            break;
        }
        for (var i = 0u; i < 64u; i++) {
            let c = g * KV_TQ_GROUP + i;
            if (is_k) {
                gvals[i] = k_src[t * width + c];
            } else {
                gvals[i] = v_src[t * width + c];
            }
            if (s.mean_off != KV_NONE) {
                gvals[i] -= bitcast<f32>(cache[s.mean_off + c]);
            }
        }
        let e = tq_encode(bits);
        tq_write_codes(bits, slot_base + g * tq_group_words(bits), tq_scale(e));
        scales |= e << (8u * k);
    }
    cache[slot_base + lay.n_kv_heads * s.ring_head_words + g0 / 4u] = scales;
}

fn write_block(ty: u32, base: u32) {
    if (ty == KV_Q8) {
        write_q8(base);
    } else if (ty == KV_Q4) {
        write_q4(base);
    } else {
        write_f16(base);
    }
}

@compute @workgroup_size(64, 1, 1)
fn kv_write(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let k_blocks = lay.n_kv_heads * (lay.k.head_dim / 32u);
    let v_blocks = lay.n_kv_heads * (lay.v.head_dim / 32u);
    let per_token = k_blocks + v_blocks;
    let idx = gid.y * (nwg.x * 64u) + gid.x;
    let t = idx / per_token;
    if (t >= step.n_tokens) {
        return;
    }
    var b = idx % per_token;
    let is_k = b < k_blocks;
    var s = lay.k;
    if (!is_k) {
        s = lay.v;
        b -= k_blocks;
    }
    let blocks_per_head = s.head_dim / 32u;
    let head = b / blocks_per_head;
    let blk = b % blocks_per_head;
    let src = (t * lay.n_kv_heads + head) * s.head_dim + blk * 32u;
    for (var i = 0u; i < 32u; i++) {
        if (is_k) {
            vals[i] = k_src[src + i];
        } else {
            vals[i] = v_src[src + i];
        }
    }
    let j = step.pos + t;
    let f16_head = s.head_dim / 2u;
    if (j < lay.sinks) {
        write_f16(s.sink_off + (j * lay.n_kv_heads + head) * f16_head + blk * 16u);
        return;
    }
    let slot = kv_write_slot(j, t, lay);
    if (lay.table_off != KV_NONE && is_k && head == 0u && blk == 0u) {
        // The importance policy's score of a slot starts again with its new position.
        cache[lay.score_off + slot] = 0u;
    }
    if (j + s.recent >= step.n_kv) {
        let r = j % s.recent;
        write_f16(s.recent_off + (r * lay.n_kv_heads + head) * f16_head + blk * 16u);
        if (head == 0u && blk == 0u) {
            cache[s.tag_off + r] = j + 1u;
        }
    }
    if (s.ty == KV_TQ4 || s.ty == KV_TQ3) {
        let flat = head * blocks_per_head + blk;
        if (flat % 8u == 0u) {
            write_tq_groups(s, is_k, t, flat / 2u, slot);
        }
        return;
    }
    if (s.mean_off != KV_NONE) {
        let mb = s.mean_off + head * s.head_dim + blk * 32u;
        for (var i = 0u; i < 32u; i++) {
            vals[i] -= bitcast<f32>(cache[mb + i]);
        }
    }
    let ring = s.ring_off + slot * s.ring_slot_words + head * s.ring_head_words
        + blk * kv_block_words(s.ty);
    write_block(s.ty, ring);
}
