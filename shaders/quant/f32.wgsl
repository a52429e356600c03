// F32: 4 bytes per value; rows start on word boundaries (4k bytes each).

fn dq1(row: u32, i: u32) -> f32 {
    return bitcast<f32>(w[(row >> 2u) + i]);
}

fn dq8(row: u32, g: u32) -> F8 {
    let base = (row >> 2u) + 8u * g;
    return F8(
        bitcast<vec4<f32>>(vec4<u32>(w[base], w[base + 1u], w[base + 2u], w[base + 3u])),
        bitcast<vec4<f32>>(vec4<u32>(w[base + 4u], w[base + 5u], w[base + 6u], w[base + 7u])),
    );
}
