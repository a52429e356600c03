// Q4_0, 18 bytes per 32 values: d: f16 at 0, qs: [u8; 16] at 2.
// Value j < 16 is the low nibble of qs[j], value j + 16 its high nibble; value = (q - 8) * d.

fn dq8(row: u32, g: u32) -> F8 {
    let blk = row + 18u * (g >> 2u);
    let sub = g & 3u;
    let d = w_f16(blk);
    let qs = blk + 2u + 8u * (sub & 1u);
    let shift = 4u * (sub >> 1u);
    let lo = vec4<f32>(nib4(w_u32(qs), shift)) - 8.0;
    let hi = vec4<f32>(nib4(w_u32(qs + 4u), shift)) - 8.0;
    return F8(lo * d, hi * d);
}

fn dq1(row: u32, i: u32) -> f32 {
    return f8_at(dq8(row, i >> 3u), i & 7u);
}
