// Q6_K, 210 bytes per 256 values: ql: [u8; 128] at 0, qh: [u8; 64] at 128,
// scales: [i8; 16] at 192, d: f16 at 208. Value i = 128 h + 32 k + l takes its low 4 bits from
// ql[64 h + 32 (k % 2) + l] (low nibble for k < 2, high for k >= 2) and its high 2 bits from
// bits 2k..2k+2 of qh[32 h + l]; q is that 6-bit number minus 32, and value = (d * sc) * q with
// sc = scales[i / 16].

// Bits shift..shift+2 of each byte of `q`, moved to bits 4..6.
fn bits2(q: u32, shift: u32) -> vec4<u32> {
    return ((vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u) >> vec4<u32>(shift)) & vec4<u32>(3u)) << vec4<u32>(4u);
}

fn dq8(row: u32, g: u32) -> F8 {
    let blk = row + 210u * (g >> 5u);
    let gi = g & 31u;
    let h = gi >> 4u;
    let k = (gi >> 2u) & 3u;
    let l0 = 8u * (gi & 3u);
    let ql = blk + 64u * h + 32u * (k & 1u) + l0;
    let qh = blk + 128u + 32u * h + l0;
    let lshift = 4u * (k >> 1u);
    let hshift = 2u * k;
    let sc = f32(bitcast<i32>(w_u8(blk + 192u + (gi >> 1u)) << 24u) >> 24u);
    let dl = w_f16(blk + 208u) * sc;
    let lo = vec4<f32>(vec4<i32>(nib4(w_u32(ql), lshift) | bits2(w_u32(qh), hshift)) - vec4<i32>(32));
    let hi = vec4<f32>(vec4<i32>(nib4(w_u32(ql + 4u), lshift) | bits2(w_u32(qh + 4u), hshift)) - vec4<i32>(32));
    return F8(dl * lo, dl * hi);
}

fn dq1(row: u32, i: u32) -> f32 {
    return f8_at(dq8(row, i >> 3u), i & 7u);
}
