// Q5_1, 24 bytes per 32 values: d: f16 at 0, m: f16 at 2, qh: u32 at 4, qs: [u8; 16] at 8.
// The 5-bit q as in Q5_0; value = q * d + m.

// Bits first..first+4 of the byte `h`, each moved to bit 4.
fn high4(h: u32, first: u32) -> vec4<u32> {
    return ((vec4<u32>(h) >> vec4<u32>(first, first + 1u, first + 2u, first + 3u)) & vec4<u32>(1u)) << vec4<u32>(4u);
}

fn dq8(row: u32, g: u32) -> F8 {
    let blk = row + 24u * (g >> 2u);
    let sub = g & 3u;
    let d = w_f16(blk);
    let m = w_f16(blk + 2u);
    let h = (w_u32(blk + 4u) >> (8u * sub)) & 0xffu;
    let qs = blk + 8u + 8u * (sub & 1u);
    let shift = 4u * (sub >> 1u);
    let lo = vec4<f32>(nib4(w_u32(qs), shift) | high4(h, 0u));
    let hi = vec4<f32>(nib4(w_u32(qs + 4u), shift) | high4(h, 4u));
    return F8(lo * d + m, hi * d + m);
}

fn dq1(row: u32, i: u32) -> f32 {
    return f8_at(dq8(row, i >> 3u), i & 7u);
}
