//! The original ggml formats: blocks of 32 values with one f16 scale (and, for `_1`, an f16 min).
//!
//! In all of them quant `j` of `0..16` is the low nibble of `qs[j]` and value `j + 16` is its
//! high nibble; the 5-bit formats add a fifth bit for value `i` from bit `i` of the little-endian
//! u32 `qh`. Every function takes one block (`block.len()` is the type's block size) and writes
//! its 32 values.

use super::f16_at;

/// Q4_0, 18 bytes: `d: f16` at 0, `qs: [u8; 16]` at 2.
/// Value = `(q - 8) * d` with `q` the 4-bit quant.
pub(super) fn dequantize_q4_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qs = &block[2..18];
    for (j, &q) in qs.iter().enumerate() {
        out[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
        out[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1, 20 bytes: `d: f16` at 0, `m: f16` at 2, `qs: [u8; 16]` at 4.
/// Value = `q * d + m`.
pub(super) fn dequantize_q4_1(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let m = f16_at(block, 2);
    let qs = &block[4..20];
    for (j, &q) in qs.iter().enumerate() {
        out[j] = (q & 0x0f) as f32 * d + m;
        out[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// Q5_0, 22 bytes: `d: f16` at 0, `qh: u32` (little-endian) at 2, `qs: [u8; 16]` at 6.
/// Value = `(q - 16) * d` with the 5-bit `q` = nibble | (bit `i` of `qh`) << 4.
pub(super) fn dequantize_q5_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let qs = &block[6..22];
    for (j, &q) in qs.iter().enumerate() {
        let lo = (q & 0x0f) as u32 | ((qh >> j) & 1) << 4;
        let hi = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        out[j] = (lo as i32 - 16) as f32 * d;
        out[j + 16] = (hi as i32 - 16) as f32 * d;
    }
}

/// Q5_1, 24 bytes: `d: f16` at 0, `m: f16` at 2, `qh: u32` (little-endian) at 4, `qs: [u8; 16]`
/// at 8. Value = `q * d + m` with the 5-bit `q` built as in Q5_0.
pub(super) fn dequantize_q5_1(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let m = f16_at(block, 2);
    let qh = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
    let qs = &block[8..24];
    for (j, &q) in qs.iter().enumerate() {
        let lo = (q & 0x0f) as u32 | ((qh >> j) & 1) << 4;
        let hi = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        out[j] = lo as f32 * d + m;
        out[j + 16] = hi as f32 * d + m;
    }
}

/// Q8_0, 34 bytes: `d: f16` at 0, `qs: [i8; 32]` at 2, one signed byte per value in order.
/// Value = `q * d`.
pub(super) fn dequantize_q8_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    for (y, &q) in out.iter_mut().zip(&block[2..34]) {
        *y = q as i8 as f32 * d;
    }
}
