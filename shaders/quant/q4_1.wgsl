// Q4_1, 20 bytes per 32 values: d: f16 at 0, m: f16 at 2, qs: [u8; 16] at 4.
// Nibbles as in Q4_0; value = q * d + m.

fn dq8(row: u32, g: u32) -> F8 {
    let blk = row + 20u * (g >> 2u);
    let sub = g & 3u;
    let d = w_f16(blk);
    let m = w_f16(blk + 2u);
    let qs = blk + 4u + 8u * (sub & 1u);
    let shift = 4u * (sub >> 1u);
    let lo = vec4<f32>(nib4(w_u32(qs), shift));
    let hi = vec4<f32>(nib4(w_u32(qs + 4u), shift));
    return F8(lo * d + m, hi * d + m);
}

fn dq1(row: u32, i: u32) -> f32 {
    return f8_at(dq8(row, i >> 3u), i & 7u);
}
