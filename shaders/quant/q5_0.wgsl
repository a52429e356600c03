// Q5_0, 22 bytes per 32 values: d: f16 at 0, qh: u32 at 2, qs: [u8; 16] at 6.
// The 5-bit q of value j = its Q4_0 nibble | (bit j of qh) << 4; value = (q - 16) * d.

// Bits 0..4 and 4..8 of the byte `h`, each moved to bit 4.
fn high4(h: u32, first: u32) -> vec4<u32> {
    return ((vec4<u32>(h) >> vec4<u32>(first, first + 1u, first + 2u, first + 3u)) & vec4<u32>(1u)) << vec4<u32>(4u);
}

fn dq8(row: u32, g: u32) -> F8 {
    let blk = row + 22u * (g >> 2u);
    let sub = g & 3u;
    let d = w_f16(blk);
    let h = (w_u32(blk + 2u) >> (8u * sub)) & 0xffu;
    let qs = blk + 6u + 8u * (sub & 1u);
    let shift = 4u * (sub >> 1u);
    let lo = vec4<f32>(nib4(w_u32(qs), shift) | high4(h, 0u)) - 16.0;
    let hi = vec4<f32>(nib4(w_u32(qs + 4u), shift) | high4(h, 4u)) - 16.0;
    return F8(lo * d, hi * d);
}

fn dq1(row: u32, i: u32) -> f32 {
    return f8_at(dq8(row, i >> 3u), i & 7u);
}
