// Q8_0, 34 bytes per 32 values: d: f16 at 0, qs: [i8; 32] at 2; value = q * d.

fn dq8(row: u32, g: u32) -> F8 {
    let blk = row + 34u * (g >> 2u);
    let d = w_f16(blk);
    let qs = blk + 2u + 8u * (g & 3u);
    return F8(i8x4(w_u32(qs)) * d, i8x4(w_u32(qs + 4u)) * d);
}

fn dq1(row: u32, i: u32) -> f32 {
    return f8_at(dq8(row, i >> 3u), i & 7u);
}
