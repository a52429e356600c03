// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K super-block whose 12 packed
// scale bytes start at byte `sc`: sub-blocks 0..4 keep their scale in the low 6 bits of byte j
// and their min in the low 6 bits of byte j + 4; sub-blocks 4..8 take their low 4 bits from
// byte j + 4 (scale low nibble, min high nibble) and their top 2 bits from the spare top bits of
// bytes j - 4 (scale) and j (min). Returns (scale, min).
fn scale_min_k4(sc: u32, j: u32) -> vec2<u32> {
    if (j < 4u) {
        return vec2<u32>(w_u8(sc + j) & 63u, w_u8(sc + j + 4u) & 63u);
    }
    let packed = w_u8(sc + j + 4u);
    let s = (packed & 0xfu) | ((w_u8(sc + j - 4u) >> 6u) << 4u);
    let m = (packed >> 4u) | ((w_u8(sc + j) >> 6u) << 4u);
    return vec2<u32>(s, m);
}
