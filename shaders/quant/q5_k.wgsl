// Q5_K, 176 bytes per 256 values: d: f16 at 0, dmin: f16 at 2, scales: [u8; 12] at 4,
// qh: [u8; 32] at 16, qs: [u8; 128] at 48. Sub-block s takes its low 4 bits as Q4_K does and
// its fifth bit from bit s of qh[l] (l in 0..32); value = (d * sc) * q - (dmin * m).
//!include "quant/kscale.wgsl"

// Bit `s` of each byte of `q`, moved to bit 4.
fn bit4(q: u32, s: u32) -> vec4<u32> {
    return ((vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u) >> vec4<u32>(s)) & vec4<u32>(1u)) << vec4<u32>(4u);
}

fn dq8(row: u32, g: u32) -> F8 {
    let blk = row + 176u * (g >> 5u);
    let gi = g & 31u;
    let s = gi >> 2u;
    let part = gi & 3u;
    let sm = scale_min_k4(blk + 4u, s);
    let dl = w_f16(blk) * f32(sm.x);
    let ml = w_f16(blk + 2u) * f32(sm.y);
    let qh = blk + 16u + 8u * part;
    let qs = blk + 48u + 32u * (s >> 1u) + 8u * part;
    let shift = 4u * (s & 1u);
    let lo = vec4<f32>(nib4(w_u32(qs), shift) | bit4(w_u32(qh), s));
    let hi = vec4<f32>(nib4(w_u32(qs + 4u), shift) | bit4(w_u32(qh + 4u), s));
    return F8(dl * lo - ml, dl * hi - ml);
}

fn dq1(row: u32, i: u32) -> f32 {
    return f8_at(dq8(row, i >> 3u), i & 7u);
}
