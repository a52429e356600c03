//! Unquantized formats: every "block" is one value, stored little-endian.

/// F32: 4 bytes per value, IEEE binary32.
pub(super) fn dequantize_f32(data: &[u8], out: &mut [f32]) {
    for (b, y) in data.chunks_exact(4).zip(out.iter_mut()) {
        *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// F16: 2 bytes per value, IEEE binary16; widening to f32 is exact (subnormals included).
pub(super) fn dequantize_f16(data: &[u8], out: &mut [f32]) {
    for (b, y) in data.chunks_exact(2).zip(out.iter_mut()) {
        *y = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}

/// BF16: 2 bytes per value, the high half of an f32; widening puts the 16 bits on top of zeros.
pub(super) fn dequantize_bf16(data: &[u8], out: &mut [f32]) {
    for (b, y) in data.chunks_exact(2).zip(out.iter_mut()) {
        *y = half::bf16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}
