// BF16: 2 bytes per value, the high half of an f32.

fn bf16x2(q: u32) -> vec2<f32> {
    return bitcast<vec2<f32>>(vec2<u32>(q << 16u, q & 0xffff0000u));
}

fn dq1(row: u32, i: u32) -> f32 {
    return bitcast<f32>(w_u16(row + 2u * i) << 16u);
}

fn dq8(row: u32, g: u32) -> F8 {
    let b = row + 16u * g;
    return F8(
        vec4<f32>(bf16x2(w_u32(b)), bf16x2(w_u32(b + 4u))),
        vec4<f32>(bf16x2(w_u32(b + 8u)), bf16x2(w_u32(b + 12u))),
    );
}
