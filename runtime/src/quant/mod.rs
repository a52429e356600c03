//! ggml tensor types ([`GgmlType`], one row of facts per type in [`types`]) and their CPU
//! dequantization: the reference the GPU kernels are tested against.
//!
//! Every format ggml stores is a sequence of fixed-size blocks, each expanding to a fixed number of
//! values ([`GgmlType::block_len`] values from [`GgmlType::block_bytes`] bytes). The functions here
//! reproduce ggml's `dequantize_row_*` in plain scalar code, performing the same f32 operations in
//! the same order, so their output is bit-for-bit what ggml (and gguf-py) produce.
//!
//! - [`float`]: F32, F16, BF16 (blocks of one value);
//! - [`legacy`]: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (blocks of 32 values);
//! - [`kquants`]: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (super-blocks of 256 values).

mod float;
mod kquants;
mod legacy;
pub mod random;
mod types;

pub use types::{file_type_name, GgmlType};

use crate::error::{Error, Result};

/// Dequantizes `n = out.len()` values of type `ty` from the start of `data` into `out`.
///
/// `data` may be longer than the `n` values need; the rest is ignored. Errors (never panics) if
/// the type has no CPU decoder ([`GgmlType::can_dequantize`]), `n` is not a whole number of blocks,
/// or `data` is too short.
pub fn dequantize_into(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<()> {
    let need = check(ty, data, out.len())?;
    ty.decode(&data[..need], out)
        .ok_or_else(|| unsupported(ty))?;
    Ok(())
}

/// Dequantizes `n` values of type `ty` from the start of `data` into a new vector.
///
/// Errors as [`dequantize_into`] does; the input is validated before anything is allocated.
pub fn dequantize(ty: GgmlType, data: &[u8], n: usize) -> Result<Vec<f32>> {
    check(ty, data, n)?;
    let mut out = vec![0.0; n];
    dequantize_into(ty, data, &mut out)?;
    Ok(out)
}

fn unsupported(ty: GgmlType) -> Error {
    Error::UnsupportedModel(format!("cannot dequantize tensor type {ty}"))
}

/// Validates a request for `n` values of `ty` from `data`; returns the number of bytes they take.
fn check(ty: GgmlType, data: &[u8], n: usize) -> Result<usize> {
    if !ty.can_dequantize() {
        return Err(unsupported(ty));
    }
    let need = ty.row_bytes(n as u64).ok_or_else(|| {
        Error::Malformed(format!(
            "{n} values of type {ty} are not a whole number of {}-value blocks",
            ty.block_len()
        ))
    })?;
    match usize::try_from(need) {
        Ok(need) if need <= data.len() => Ok(need),
        _ => Err(Error::Malformed(format!(
            "{n} values of type {ty} need {need} bytes, only {} present",
            data.len()
        ))),
    }
}

/// The f16 stored little-endian at `b[at..at + 2]`, widened to f32 (exactly).
fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(x: f32) -> [u8; 2] {
        half::f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn unsupported_types_are_refused() {
        for ty in GgmlType::all().filter(|t| !t.can_dequantize()) {
            let data = vec![0u8; ty.block_bytes() as usize * 2];
            let n = ty.block_len() as usize;
            let err = dequantize(ty, &data, n).unwrap_err();
            assert!(matches!(err, Error::UnsupportedModel(_)), "{ty}: {err}");
            let mut out = vec![0.0; n];
            assert!(dequantize_into(ty, &data, &mut out).is_err(), "{ty}");
        }
        assert!(dequantize(GgmlType::IQ2_XXS, &[0; 66], 256).is_err());
    }

    #[test]
    fn partial_blocks_are_refused() {
        let data = vec![0u8; 1024];
        for (ty, n) in [
            (GgmlType::Q4_0, 31),
            (GgmlType::Q4_0, 33),
            (GgmlType::Q8_0, 48),
            (GgmlType::Q4_K, 128),
            (GgmlType::Q6_K, 257),
        ] {
            let err = dequantize(ty, &data, n).unwrap_err();
            assert!(matches!(err, Error::Malformed(_)), "{ty} {n}: {err}");
        }
    }

    #[test]
    fn short_data_is_refused_and_long_data_is_fine() {
        for ty in GgmlType::all().filter(|t| t.can_dequantize()) {
            let n = ty.block_len() as usize * 2;
            let bytes = ty.block_bytes() as usize * 2;
            let mut data = vec![0u8; bytes + 5];
            // Bytes past the requested blocks are ignored; all-zero blocks decode to zeros.
            data[bytes..].fill(0xff);
            let err = dequantize(ty, &data[..bytes - 1], n).unwrap_err();
            assert!(matches!(err, Error::Malformed(_)), "{ty}: {err}");
            assert!(dequantize(ty, &[], n).is_err(), "{ty}");
            let out = dequantize(ty, &data, n).unwrap();
            assert_eq!(out, vec![0.0; n], "{ty}");
        }
        // A huge n is refused before anything is allocated.
        assert!(dequantize(GgmlType::F32, &[0; 4], usize::MAX / 8).is_err());
        assert!(dequantize(GgmlType::Q8_0, &[0; 34], usize::MAX).is_err());
    }

    #[test]
    fn zero_values_are_fine() {
        assert_eq!(
            dequantize(GgmlType::Q4_K, &[], 0).unwrap(),
            Vec::<f32>::new()
        );
        dequantize_into(GgmlType::F16, &[], &mut []).unwrap();
    }

    #[test]
    fn floats() {
        let data: Vec<u8> = [1.5f32, -0.0, 3.25e-3]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            dequantize(GgmlType::F32, &data, 3).unwrap(),
            [1.5, -0.0, 3.25e-3]
        );
        // f16 0x3c00 = 1.0, 0xc000 = -2.0, 0x0001 = 2^-24 (smallest subnormal).
        let out = dequantize(GgmlType::F16, &[0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00], 3).unwrap();
        assert_eq!(out, [1.0, -2.0, 2f32.powi(-24)]);
        // bf16 0x3f80 = 1.0, 0xc040 = -3.0.
        let out = dequantize(GgmlType::BF16, &[0x80, 0x3f, 0x40, 0xc0], 2).unwrap();
        assert_eq!(out, [1.0, -3.0]);
    }

    /// Nibble `i` of a 32-value Q4/Q5 block: the low nibbles of qs[0..16] hold values 0..16, the
    /// high nibbles values 16..32.
    fn pack_nibbles(q: &[u8; 32]) -> [u8; 16] {
        std::array::from_fn(|j| (q[j] & 0xf) | (q[j + 16] & 0xf) << 4)
    }

    fn high_bits(q: &[u8; 32]) -> [u8; 4] {
        let qh = (0..32).fold(0u32, |acc, i| acc | (((q[i] >> 4) & 1) as u32) << i);
        qh.to_le_bytes()
    }

    #[test]
    fn q4_0_block() {
        let q: [u8; 32] = std::array::from_fn(|i| (i % 16) as u8);
        let mut block = f16_bytes(0.5).to_vec();
        block.extend(pack_nibbles(&q));
        let out = dequantize(GgmlType::Q4_0, &block, 32).unwrap();
        let want: Vec<f32> = q.iter().map(|&v| (v as f32 - 8.0) * 0.5).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn q4_1_block() {
        let q: [u8; 32] = std::array::from_fn(|i| (15 - i % 16) as u8);
        let mut block = f16_bytes(0.25).to_vec();
        block.extend(f16_bytes(-1.0));
        block.extend(pack_nibbles(&q));
        let out = dequantize(GgmlType::Q4_1, &block, 32).unwrap();
        let want: Vec<f32> = q.iter().map(|&v| v as f32 * 0.25 - 1.0).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn q5_0_block() {
        let q: [u8; 32] = std::array::from_fn(|i| ((i * 7) % 32) as u8);
        let mut block = f16_bytes(2.0).to_vec();
        block.extend(high_bits(&q));
        block.extend(pack_nibbles(&q));
        let out = dequantize(GgmlType::Q5_0, &block, 32).unwrap();
        let want: Vec<f32> = q.iter().map(|&v| (v as f32 - 16.0) * 2.0).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn q5_1_block() {
        let q: [u8; 32] = std::array::from_fn(|i| ((i * 11 + 3) % 32) as u8);
        let mut block = f16_bytes(0.125).to_vec();
        block.extend(f16_bytes(0.5));
        block.extend(high_bits(&q));
        block.extend(pack_nibbles(&q));
        let out = dequantize(GgmlType::Q5_1, &block, 32).unwrap();
        let want: Vec<f32> = q.iter().map(|&v| v as f32 * 0.125 + 0.5).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn q8_0_block() {
        let q: [i8; 32] = std::array::from_fn(|i| ((i as i32 - 16) * 8 + (i % 3) as i32) as i8);
        let mut block = f16_bytes(-0.5).to_vec();
        block.extend(q.iter().map(|&v| v as u8));
        let out = dequantize(GgmlType::Q8_0, &block, 32).unwrap();
        let want: Vec<f32> = q.iter().map(|&v| v as f32 * -0.5).collect();
        assert_eq!(out, want);
        assert_eq!(out[0], 64.0); // q = -128, the full i8 range
        assert_eq!(out[31], -60.5); // q = 121
    }

    #[test]
    fn two_blocks_use_their_own_scales() {
        let mut data = Vec::new();
        for d in [1.0, 3.0] {
            data.extend(f16_bytes(d));
            data.extend([1u8; 32]);
        }
        let out = dequantize(GgmlType::Q8_0, &data, 64).unwrap();
        assert_eq!(&out[..32], &[1.0; 32]);
        assert_eq!(&out[32..], &[3.0; 32]);
    }

    #[test]
    fn kquant_blocks_with_hand_built_scales() {
        // Q4_K: d = 1, dmin = 0.5, sub-block scales 1..=8 and mins 0..8 (using the packed high
        // bits for sub-blocks 4..8 via values >= 16 would need 6 bits; keep them small here).
        let mut b = vec![0u8; 144];
        b[0..2].copy_from_slice(&f16_bytes(1.0));
        b[2..4].copy_from_slice(&f16_bytes(0.5));
        let sc = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let mn = [0u8, 1, 2, 3, 4, 5, 6, 7];
        for j in 0..4 {
            b[4 + j] = sc[j];
            b[8 + j] = mn[j];
            b[12 + j] = sc[j + 4] | mn[j + 4] << 4;
        }
        b[16..].fill(0x53); // low nibble 3, high nibble 5
        let out = dequantize(GgmlType::Q4_K, &b, 256).unwrap();
        for (s, chunk) in out.chunks(32).enumerate() {
            let q = if s % 2 == 0 { 3.0 } else { 5.0 };
            let want = sc[s] as f32 * q - 0.5 * mn[s] as f32;
            assert!(
                chunk.iter().all(|&v| v == want),
                "sub-block {s}: {chunk:?} != {want}"
            );
        }

        // Q6_K: all 6-bit quants 33 (value 1), scales 1..=16, d = 0.25.
        let mut b = vec![0u8; 210];
        b[..128].fill(0x11); // low nibbles 1
        b[128..192].fill(0b1010_1010); // high 2 bits = 2 for every value: q = 1 | 2 << 4 = 33
        for i in 0..16 {
            b[192 + i] = (i + 1) as u8;
        }
        b[208..210].copy_from_slice(&f16_bytes(0.25));
        let out = dequantize(GgmlType::Q6_K, &b, 256).unwrap();
        for (s, chunk) in out.chunks(16).enumerate() {
            let want = 0.25 * (s + 1) as f32;
            assert!(
                chunk.iter().all(|&v| v == want),
                "group {s}: {chunk:?} != {want}"
            );
        }
    }
}
