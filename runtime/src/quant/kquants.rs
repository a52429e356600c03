//! The k-quants: super-blocks of 256 values split into sub-blocks, whose scales are themselves
//! quantized against the super-block's f16 scale(s).
//!
//! Q2_K, Q3_K and Q6_K use 16 sub-blocks of 16 values; Q4_K and Q5_K use 8 sub-blocks of 32.
//! Each function takes one super-block and writes its 256 values, computing each value with the
//! same f32 operations in the same order as ggml's `dequantize_row_*`: first the sub-block scale
//! `d * sc` (and min `dmin * m`), then `scale * q` (minus the min).

use super::f16_at;

/// Q2_K, 84 bytes: `scales: [u8; 16]` at 0, `qs: [u8; 64]` at 16, `d: f16` at 80,
/// `dmin: f16` at 82.
///
/// Sub-block `g` (values `16g..16g + 16`) has scale `scales[g] & 0xf` and min `scales[g] >> 4`;
/// value = `(d * sc) * q - (dmin * m)` with the 2-bit `q`. The quants interleave: value
/// `128h + 32s + l` (half `h`, shift `s` in 0..4, `l` in 0..32) is bits `2s..2s + 2` of
/// `qs[32h + l]`.
pub(super) fn dequantize_q2_k(block: &[u8], out: &mut [f32]) {
    let scales = &block[0..16];
    let qs = &block[16..80];
    let d = f16_at(block, 80);
    let dmin = f16_at(block, 82);
    for (g, y) in out.chunks_exact_mut(16).enumerate() {
        let (half, shift, part) = (g / 8, 2 * ((g % 8) / 2), g % 2);
        let dl = d * (scales[g] & 0x0f) as f32;
        let ml = dmin * (scales[g] >> 4) as f32;
        let q = &qs[32 * half + 16 * part..][..16];
        for (y, &q) in y.iter_mut().zip(q) {
            *y = dl * ((q >> shift) & 3) as f32 - ml;
        }
    }
}

/// Q3_K, 110 bytes: `hmask: [u8; 32]` at 0, `qs: [u8; 64]` at 32, `scales: [u8; 12]` at 96,
/// `d: f16` at 108.
///
/// Sub-block `g` (16 values) has a signed 6-bit scale `sc - 32`: its low 4 bits are nibble
/// `g / 8` of `scales[g % 8]`, its high 2 bits are bits `2 * (g / 4)..` of `scales[8 + g % 4]`.
/// The 2-bit low quants interleave as in Q2_K: value `128h + 32s + l` takes bits `2s..2s + 2`
/// of `qs[32h + l]` and bit `4h + s` of `hmask[l]`; a clear hmask bit subtracts 4, so
/// `q` is in -4..=3. Value = `(d * (sc - 32)) * q`.
pub(super) fn dequantize_q3_k(block: &[u8], out: &mut [f32]) {
    let hmask = &block[0..32];
    let qs = &block[32..96];
    let scales = &block[96..108];
    let d = f16_at(block, 108);
    for (g, y) in out.chunks_exact_mut(16).enumerate() {
        let (half, s, part) = (g / 8, (g % 8) / 2, g % 2);
        let low = (scales[g % 8] >> (4 * (g / 8))) & 0x0f;
        let high = (scales[8 + g % 4] >> (2 * (g / 4))) & 0x03;
        let dl = d * ((low | high << 4) as i32 - 32) as f32;
        let first = 16 * part;
        let q = &qs[32 * half + first..][..16];
        let h = &hmask[first..first + 16];
        let bit = 4 * half + s;
        for ((y, &q), &h) in y.iter_mut().zip(q).zip(h) {
            let q = ((q >> (2 * s)) & 3) as i32 - if (h >> bit) & 1 == 1 { 0 } else { 4 };
            *y = dl * q as f32;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K super-block, from the 12
/// packed bytes: sub-blocks 0..4 keep their scale in the low 6 bits of byte `j` and their min in
/// the low 6 bits of byte `j + 4`; sub-blocks 4..8 take their low 4 bits from byte `j + 4`
/// (scale in the low nibble, min in the high one) and their top 2 bits from the spare top bits
/// of bytes `j - 4` (scale) and `j` (min).
fn scale_min_k4(j: usize, scales: &[u8]) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 0x3f, scales[j + 4] & 0x3f)
    } else {
        let sc = (scales[j + 4] & 0x0f) | (scales[j - 4] >> 6) << 4;
        let m = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4;
        (sc, m)
    }
}

/// Q4_K, 144 bytes: `d: f16` at 0, `dmin: f16` at 2, `scales: [u8; 12]` at 4 (see
/// [`scale_min_k4`]), `qs: [u8; 128]` at 16.
///
/// Sub-block `s` (values `32s..32s + 32`) reads `qs[32 * (s / 2)..][..32]`, the low nibbles for
/// even `s` and the high nibbles for odd `s`. Value = `(d * sc) * q - (dmin * m)`.
pub(super) fn dequantize_q4_k(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let dmin = f16_at(block, 2);
    let scales = &block[4..16];
    let qs = &block[16..144];
    for (s, y) in out.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(s, scales);
        let dl = d * sc as f32;
        let ml = dmin * m as f32;
        let shift = 4 * (s % 2);
        for (y, &q) in y.iter_mut().zip(&qs[32 * (s / 2)..][..32]) {
            *y = dl * ((q >> shift) & 0x0f) as f32 - ml;
        }
    }
}

/// Q5_K, 176 bytes: `d: f16` at 0, `dmin: f16` at 2, `scales: [u8; 12]` at 4 (see
/// [`scale_min_k4`]), `qh: [u8; 32]` at 16, `qs: [u8; 128]` at 48.
///
/// Sub-block `s` takes its low 4 bits as Q4_K does and its fifth bit from bit `s` of `qh[l]`
/// (`l` in 0..32). Value = `(d * sc) * q - (dmin * m)`.
pub(super) fn dequantize_q5_k(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let dmin = f16_at(block, 2);
    let scales = &block[4..16];
    let qh = &block[16..48];
    let qs = &block[48..176];
    for (s, y) in out.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(s, scales);
        let dl = d * sc as f32;
        let ml = dmin * m as f32;
        let shift = 4 * (s % 2);
        let ql = &qs[32 * (s / 2)..][..32];
        for ((y, &lo), &hi) in y.iter_mut().zip(ql).zip(qh) {
            let q = ((lo >> shift) & 0x0f) | ((hi >> s) & 1) << 4;
            *y = dl * q as f32 - ml;
        }
    }
}

/// Q6_K, 210 bytes: `ql: [u8; 128]` at 0, `qh: [u8; 64]` at 128, `scales: [i8; 16]` at 192,
/// `d: f16` at 208.
///
/// Each half `h` of 128 values uses `ql[64h..][..64]`, `qh[32h..][..32]` and
/// `scales[8h..][..8]`. Its quarter `k` (values `128h + 32k + l`, `l` in 0..32) takes the low 4
/// bits from `ql[64h + 32 * (k % 2) + l]` (low nibble for `k < 2`, high for `k >= 2`) and the
/// high 2 bits from bits `2k..2k + 2` of `qh[32h + l]`; `q` is that 6-bit number minus 32.
/// Each 16 values share a scale: value `i` uses `scales[i / 16]`. Value = `(d * sc) * q`.
pub(super) fn dequantize_q6_k(block: &[u8], out: &mut [f32]) {
    let ql = &block[0..128];
    let qh = &block[128..192];
    let scales = &block[192..208];
    let d = f16_at(block, 208);
    for (i, y) in out.iter_mut().enumerate() {
        let (half, k, l) = (i / 128, (i % 128) / 32, i % 32);
        let lo = (ql[64 * half + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0f;
        let hi = (qh[32 * half + l] >> (2 * k)) & 0x03;
        let q = (lo | hi << 4) as i32 - 32;
        let sc = scales[i / 16] as i8;
        *y = d * sc as f32 * q as f32;
    }
}
