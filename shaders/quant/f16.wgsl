// F16: 2 bytes per value, widened exactly with unpack2x16float. Rows start on even bytes.

fn dq1(row: u32, i: u32) -> f32 {
    return w_f16(row + 2u * i);
}

fn dq8(row: u32, g: u32) -> F8 {
    let b = row + 16u * g;
    return F8(
        vec4<f32>(unpack2x16float(w_u32(b)), unpack2x16float(w_u32(b + 4u))),
        vec4<f32>(unpack2x16float(w_u32(b + 8u)), unpack2x16float(w_u32(b + 12u))),
    );
}
