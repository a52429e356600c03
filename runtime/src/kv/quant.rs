//! CPU twins of the cache's block formats and of the Hadamard rotation; the GPU kernels
//! (`shaders/kv_write.wgsl`, `shaders/kv/read.wgsl`, `shaders/hadamard.wgsl`) are tested
//! against these.
//!
//! A block is [`BLOCK`] values of one head, stored as `u32` words:
//! - f16: 16 words, value `2w` in the low half of word `w`, `2w + 1` in the high half;
//! - q8: word 0 = `pack2x16float(d, 0)`, words 1..=8 hold values as i8, four to a word,
//!   value `4w + b` in byte `b` of word `1 + w`; `x = d * q`, `d = max|x| / 127`;
//! - q4: word 0 = `pack2x16float(d, m)`, words 1..=4 hold values as nibbles, eight to a word,
//!   value `8w + n` in nibble `n` of word `1 + w`; `x = d * q + m`, `m = min x`,
//!   `d = (max x - min x) / 15`.
//!
//! Scales are rounded to f16 first, then codes are `round((x - m) / d)` (ties to even, as
//! WGSL's `round`) clamped to the code range, so a value is never more than `d / 2` off
//! (plus the f16 rounding of `m`).

use super::{KvType, BLOCK};
use half::f16;

fn f16_bits(x: f32) -> u32 {
    u32::from(f16::from_f32(x).to_bits())
}

fn f16_of(bits: u32) -> f32 {
    f16::from_bits(bits as u16).to_f32()
}

/// Encodes one block of [`BLOCK`] values as `ty` (see the module docs).
///
/// # Panics
/// When `x` is not one block long.
pub fn encode_block(ty: KvType, x: &[f32]) -> Vec<u32> {
    assert_eq!(x.len(), BLOCK as usize, "encode_block: one block at a time");
    match ty {
        KvType::F16 => x
            .chunks_exact(2)
            .map(|p| f16_bits(p[0]) | (f16_bits(p[1]) << 16))
            .collect(),
        KvType::Q8 => {
            let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = f16_of(f16_bits(amax / 127.0));
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut words = vec![f16_bits(d); 1 + BLOCK as usize / 4];
            for (w, chunk) in x.chunks_exact(4).enumerate() {
                words[1 + w] = chunk.iter().enumerate().fold(0u32, |acc, (b, &v)| {
                    let q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i32;
                    acc | (((q as u32) & 0xff) << (8 * b))
                });
            }
            words
        }
        KvType::Q4 => {
            let (lo, hi) = x
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let d = f16_of(f16_bits((hi - lo) / 15.0));
            let m = f16_of(f16_bits(lo));
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut words = vec![f16_bits(d) | (f16_bits(m) << 16); 1 + BLOCK as usize / 8];
            for (w, chunk) in x.chunks_exact(8).enumerate() {
                words[1 + w] = chunk.iter().enumerate().fold(0u32, |acc, (n, &v)| {
                    let q = ((v - m) * inv).round_ties_even().clamp(0.0, 15.0) as u32;
                    acc | (q << (4 * n))
                });
            }
            words
        }
    }
}

/// Decodes one block of `ty` words back to [`BLOCK`] values.
///
/// # Panics
/// When `words` is not one block of `ty`.
pub fn decode_block(ty: KvType, words: &[u32]) -> Vec<f32> {
    assert_eq!(words.len(), ty.words_per_block() as usize, "decode_block");
    match ty {
        KvType::F16 => words
            .iter()
            .flat_map(|&w| [f16_of(w & 0xffff), f16_of(w >> 16)])
            .collect(),
        KvType::Q8 => {
            let d = f16_of(words[0] & 0xffff);
            words[1..]
                .iter()
                .flat_map(|&w| (0..4).map(move |b| f32::from((w >> (8 * b)) as u8 as i8) * d))
                .collect()
        }
        KvType::Q4 => {
            let (d, m) = (f16_of(words[0] & 0xffff), f16_of(words[0] >> 16));
            words[1..]
                .iter()
                .flat_map(|&w| (0..8).map(move |n| ((w >> (4 * n)) & 0xf) as f32 * d + m))
                .collect()
        }
    }
}

/// `x` (a whole number of blocks) stored as `ty` and read back.
pub fn round_trip(ty: KvType, x: &[f32]) -> Vec<f32> {
    x.chunks(BLOCK as usize)
        .flat_map(|b| decode_block(ty, &encode_block(ty, b)))
        .collect()
}

/// The size of the Hadamard rotation for heads of `head_dim` values: the largest power of
/// two that divides it, at most 512. Each run of that many values is rotated on its own.
pub fn hadamard_size(head_dim: u32) -> u32 {
    (1u32 << head_dim.trailing_zeros()).min(512)
}

/// Rotates `x` in place with the orthonormal Walsh–Hadamard transform over consecutive runs
/// of `size` values (`size` a power of two dividing `x.len()`). The transform is its own
/// inverse.
///
/// # Panics
/// On a bad `size`.
pub fn hadamard(x: &mut [f32], size: usize) {
    assert!(
        size.is_power_of_two() && x.len() % size == 0,
        "hadamard: bad size"
    );
    let norm = 1.0 / (size as f32).sqrt();
    for run in x.chunks_exact_mut(size) {
        let mut h = 1;
        while h < size {
            for i in (0..size).step_by(2 * h) {
                for j in i..i + h {
                    let (a, b) = (run[j], run[j + h]);
                    run[j] = a + b;
                    run[j + h] = a - b;
                }
            }
            h *= 2;
        }
        for v in run.iter_mut() {
            *v *= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..BLOCK)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32 - 0.3) * 4.0
            })
            .collect()
    }

    #[test]
    fn errors_stay_within_half_a_step() {
        for seed in 1..50 {
            let x = block(seed);
            for ty in KvType::ALL {
                let y = round_trip(ty, &x);
                let words = encode_block(ty, &x);
                let step = match ty {
                    KvType::F16 => x.iter().fold(0f32, |a, v| a.max(v.abs())) / 1024.0,
                    _ => f16_of(words[0] & 0xffff),
                };
                for (a, b) in x.iter().zip(&y) {
                    assert!((a - b).abs() <= step * 0.5 + 2e-3, "{ty}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn constant_and_zero_blocks_survive() {
        for ty in KvType::ALL {
            assert_eq!(round_trip(ty, &[0.0; 32]), vec![0.0; 32]);
            let c = round_trip(ty, &[1.5; 32]);
            assert!(c.iter().all(|&v| (v - 1.5).abs() < 1e-2), "{ty}: {c:?}");
        }
    }

    #[test]
    fn hadamard_is_orthonormal_and_self_inverse() {
        let x = block(7);
        let mut y = x.clone();
        hadamard(&mut y, 32);
        let n0: f32 = x.iter().map(|v| v * v).sum();
        let n1: f32 = y.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-3 * n0);
        hadamard(&mut y, 32);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-5);
        }
        let mut e = vec![0.0; 4];
        e[0] = 1.0;
        hadamard(&mut e, 4);
        assert_eq!(e, [0.5; 4]);
        assert_eq!(hadamard_size(64), 64);
        assert_eq!(hadamard_size(96), 32);
        assert_eq!(hadamard_size(1024), 512);
    }
}
