// Q4_K, 144 bytes per 256 values: d: f16 at 0, dmin: f16 at 2, scales: [u8; 12] at 4,
// qs: [u8; 128] at 16. Sub-block s (values 32s..32s+32) reads qs[32 (s / 2)..][..32], low
// nibbles for even s, high for odd s; value = (d * sc) * q - (dmin * m).
//!include "quant/kscale.wgsl"

fn dq8(row: u32, g: u32) -> F8 {
    let blk = row + 144u * (g >> 5u);
    let gi = g & 31u;
    let s = gi >> 2u;
    let part = gi & 3u;
    let sm = scale_min_k4(blk + 4u, s);
    let dl = w_f16(blk) * f32(sm.x);
    let ml = w_f16(blk + 2u) * f32(sm.y);
    let qs = blk + 16u + 32u * (s >> 1u) + 8u * part;
    let shift = 4u * (s & 1u);
    let lo = vec4<f32>(nib4(w_u32(qs), shift));
    let hi = vec4<f32>(nib4(w_u32(qs + 4u), shift));
    return F8(dl * lo - ml, dl * hi - ml);
}

fn dq1(row: u32, i: u32) -> f32 {
    return f8_at(dq8(row, i >> 3u), i & 7u);
}
