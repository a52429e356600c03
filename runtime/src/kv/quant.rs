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
//!
//! The codebook formats (`tq4`, `tq3`) quantize a group of [`TQ_GROUP`] values `x` (a rotated
//! head is close to normal) as `x_i ~ s * C[c_i]`, where `C` is the Lloyd–Max codebook of the
//! standard normal ([`codebook`]) and `s = 2^(e/8 - 16)` is coded in one byte `e` (0: a zero
//! group). The byte is the smallest whose outer level reaches the group's largest magnitude
//! (nothing is clipped), or the next one up when its squared error is less: a clipped
//! component of a key moves every score the key takes part in, and picking the least-error
//! scale instead (which clips) cost more perplexity on both sides (docs/KV_CACHE.md). Codes
//! are the nearest level:
//! `c = #{k : x > s * M[k]}` over the midpoints `M` between levels. Every step is exact f32
//! arithmetic (products, sums in order, comparisons), so `kv_write.wgsl` picks the same bytes
//! and codes. Layout of a group's codes:
//! - tq4: 8 words, value `8w + n` in nibble `n` of word `w`;
//! - tq3: 6 words, 3 bit planes per 32 values: bit `p` of value `32h + i` is bit `i` of word
//!   `3h + p`.

use super::{KvType, BLOCK, TQ_GROUP};
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
/// When `x` is not one block long, or `ty` is a codebook type (see [`encode_group`]).
pub fn encode_block(ty: KvType, x: &[f32]) -> Vec<u32> {
    assert_eq!(x.len(), BLOCK as usize, "encode_block: one block at a time");
    match ty {
        KvType::Tq4 | KvType::Tq3 => panic!("encode_block: {ty} is coded by groups"),
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
/// When `words` is not one block of `ty`, or `ty` is a codebook type (see [`decode_group`]).
pub fn decode_block(ty: KvType, words: &[u32]) -> Vec<f32> {
    assert_eq!(words.len(), ty.words_per_block() as usize, "decode_block");
    match ty {
        KvType::Tq4 | KvType::Tq3 => panic!("decode_block: {ty} is coded by groups"),
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

/// `x` (a whole number of blocks, or of groups for a codebook format) stored as `ty` and read
/// back.
pub fn round_trip(ty: KvType, x: &[f32]) -> Vec<f32> {
    if let Some(bits) = ty.codebook_bits() {
        return x
            .chunks(TQ_GROUP as usize)
            .flat_map(|g| {
                let (codes, e) = encode_group(bits, g);
                decode_group(bits, &codes, e)
            })
            .collect();
    }
    x.chunks(BLOCK as usize)
        .flat_map(|b| decode_block(ty, &encode_block(ty, b)))
        .collect()
}

/// Levels of the 3-bit codebook (Lloyd–Max for the standard normal), ascending.
const LEVELS3: [f32; 8] = [-2.152, -1.344, -0.756, -0.2451, 0.2451, 0.756, 1.344, 2.152];
/// Midpoints between consecutive 3-bit levels.
const MIDS3: [f32; 7] = [-1.748, -1.05, -0.50055, 0.0, 0.50055, 1.05, 1.748];
/// Levels of the 4-bit codebook (Lloyd–Max for the standard normal), ascending.
const LEVELS4: [f32; 16] = [
    -2.7326, -2.069, -1.6181, -1.2562, -0.9424, -0.6568, -0.3881, -0.1284, 0.1284, 0.3881, 0.6568,
    0.9424, 1.2562, 1.6181, 2.069, 2.7326,
];
/// Midpoints between consecutive 4-bit levels.
const MIDS4: [f32; 15] = [
    -2.4008, -1.84355, -1.43715, -1.0993, -0.7996, -0.52245, -0.25825, 0.0, 0.25825, 0.52245,
    0.7996, 1.0993, 1.43715, 1.84355, 2.4008,
];

/// The levels and the midpoints between them of the `bits`-bit codebook (3 or 4).
///
/// # Panics
/// On other widths.
pub fn codebook(bits: u32) -> (&'static [f32], &'static [f32]) {
    match bits {
        3 => (&LEVELS3, &MIDS3),
        4 => (&LEVELS4, &MIDS4),
        _ => panic!("no {bits}-bit codebook"),
    }
}

/// `2^(r/8)` for r in 0..8 (the same literals as `shaders/kv/codebook.wgsl`).
const EIGHTHS: [f32; 8] = [
    1.0,
    1.0905077,
    1.1892071,
    1.2968396,
    std::f32::consts::SQRT_2,
    1.5422108,
    1.6817929,
    1.8340081,
];

/// The scale a byte codes: `2^(e/8 - 16)`, exactly (0 for byte 0).
pub fn group_scale(e: u32) -> f32 {
    if e == 0 {
        return 0.0;
    }
    let exp = (e / 8) as i32 - 16;
    EIGHTHS[(e % 8) as usize] * f32::from_bits(((exp + 127) as u32) << 23)
}

/// The codes of `x` at scale `s` (nearest level) and their squared error.
fn group_codes(mids: &[f32], levels: &[f32], x: &[f32], s: f32) -> (Vec<u32>, f32) {
    let mut err = 0f32;
    let codes = x
        .iter()
        .map(|&v| {
            let c = mids.iter().filter(|&&m| v > s * m).count();
            let d = v - s * levels[c];
            err += d * d;
            c as u32
        })
        .collect();
    (codes, err)
}

/// Encodes one group of [`TQ_GROUP`] values with the `bits`-bit codebook: its code words (see
/// the module docs) and its scale byte.
///
/// # Panics
/// When `x` is not one group long.
pub fn encode_group(bits: u32, x: &[f32]) -> (Vec<u32>, u32) {
    assert_eq!(
        x.len(),
        TQ_GROUP as usize,
        "encode_group: one group at a time"
    );
    let (levels, mids) = codebook(bits);
    let mut ss = 0f32;
    let mut amax = 0f32;
    for v in x {
        ss += v * v;
        amax = amax.max(v.abs());
    }
    let mut best: (u32, Vec<u32>) = (0, vec![0; x.len()]);
    if ss > 0.0 && ss <= f32::MAX {
        let top = levels[levels.len() - 1];
        // The smallest e in 1..=255 whose outer level reaches amax (255 if none does).
        let mut e0 = 255u32;
        for step in [128u32, 64, 32, 16, 8, 4, 2, 1] {
            if e0 > step && group_scale(e0 - step) * top >= amax {
                e0 -= step;
            }
        }
        let e1 = (e0 + 1).min(255);
        let (c0, err0) = group_codes(mids, levels, x, group_scale(e0));
        let (c1, err1) = group_codes(mids, levels, x, group_scale(e1));
        best = if err1 < err0 { (e1, c1) } else { (e0, c0) };
    }
    let (e, codes) = best;
    (pack_codes(bits, &codes), e)
}

fn pack_codes(bits: u32, codes: &[u32]) -> Vec<u32> {
    let mut words = vec![0u32; codes.len() * bits as usize / 32];
    for (i, &c) in codes.iter().enumerate() {
        if bits == 4 {
            words[i / 8] |= c << (4 * (i % 8));
        } else {
            for p in 0..3 {
                words[3 * (i / 32) + p] |= ((c >> p) & 1) << (i % 32);
            }
        }
    }
    words
}

/// The code of value `i` in a group's code words.
pub fn group_code(bits: u32, words: &[u32], i: usize) -> u32 {
    if bits == 4 {
        (words[i / 8] >> (4 * (i % 8))) & 15
    } else {
        (0..3).fold(0, |c, p| {
            c | (((words[3 * (i / 32) + p] >> (i % 32)) & 1) << p)
        })
    }
}

/// Decodes one group's code words with scale byte `e`.
pub fn decode_group(bits: u32, words: &[u32], e: u32) -> Vec<f32> {
    let (levels, _) = codebook(bits);
    let s = group_scale(e);
    let n = words.len() * 32 / bits as usize;
    (0..n)
        .map(|i| s * levels[group_code(bits, words, i) as usize])
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
            for ty in [KvType::F16, KvType::Q8, KvType::Q4] {
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
    fn codebook_groups_lose_what_a_normal_quantizer_should() {
        // Normal-ish values (a sum of uniforms): Lloyd-Max loses ~0.0095 (4 bits) and ~0.0345
        // (3 bits) of the energy at the best scale; covering the group's largest value costs
        // some of that at 3 bits (its outer level is only 2.15 sigma out).
        let mut s = 12345u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as f32 / u32::MAX as f32 - 0.5
        };
        let x: Vec<f32> = (0..64 * 200)
            .map(|_| (0..12).map(|_| next()).sum::<f32>() * 3.0)
            .collect();
        for (ty, lo, hi) in [(KvType::Tq4, 0.005, 0.011), (KvType::Tq3, 0.03, 0.045)] {
            let y = round_trip(ty, &x);
            let e: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
            let n: f32 = x.iter().map(|a| a * a).sum();
            assert!(e / n > lo && e / n < hi, "{ty}: {}", e / n);
        }
    }

    #[test]
    fn codebook_scales_are_exact_and_codes_pack_back() {
        assert_eq!(group_scale(128), 1.0);
        assert_eq!(group_scale(136), 2.0);
        assert_eq!(group_scale(0), 0.0);
        for e in 1..256 {
            let want = 2f64.powf(f64::from(e) / 8.0 - 16.0);
            assert!((f64::from(group_scale(e)) / want - 1.0).abs() < 1e-6, "{e}");
        }
        for bits in [3, 4] {
            let codes: Vec<u32> = (0..64).map(|i| (i * 7 + 3) % (1 << bits)).collect();
            let words = pack_codes(bits, &codes);
            assert_eq!(words.len(), 2 * bits as usize);
            for (i, &c) in codes.iter().enumerate() {
                assert_eq!(group_code(bits, &words, i), c);
            }
            let (levels, mids) = codebook(bits);
            for k in 0..mids.len() {
                assert!((mids[k] - (levels[k] + levels[k + 1]) / 2.0).abs() < 1e-6);
            }
        }
        // A zero group, and one far outside any scale, both stay finite.
        assert_eq!(round_trip(KvType::Tq3, &[0.0; 64]), vec![0.0; 64]);
        let big = round_trip(KvType::Tq4, &[1e9; 64]);
        assert!(big.iter().all(|v| v.is_finite() && *v > 1e4));
    }

    #[test]
    fn covering_scales_clip_nothing() {
        // A group with one large component: the scale covers it, and every value is within
        // half the widest gap.
        let mut x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 - 31.5) / 20.0)
            .collect();
        x[5] = 9.0;
        for bits in [3, 4] {
            let (levels, _) = codebook(bits);
            let widest = levels[levels.len() - 1] - levels[levels.len() - 2];
            let (codes, e) = encode_group(bits, &x);
            let y = decode_group(bits, &codes, e);
            let s = group_scale(e);
            assert!(s * levels[levels.len() - 1] >= 9.0);
            assert!(
                group_scale(e - 2) * levels[levels.len() - 1] < 9.0,
                "{bits}: not the least"
            );
            for (a, b) in x.iter().zip(&y) {
                assert!(
                    (a - b).abs() <= s * widest / 2.0 + 1e-6,
                    "{bits}: {a} vs {b}"
                );
            }
        }
    }

    /// The numbers of the WGSL array `name` in `shaders/kv/codebook.wgsl`.
    fn wgsl_array(name: &str) -> Vec<f32> {
        let src = include_str!("../../../shaders/kv/codebook.wgsl");
        let start = src.find(&format!("var<private> {name}:")).expect(name);
        let body = &src[start..];
        let body = &body[body.find(">(").expect(name) + 2..body.find(");").expect(name)];
        body.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().expect(t))
            .collect()
    }

    #[test]
    fn the_shader_has_the_same_codebooks() {
        assert_eq!(wgsl_array("tq_levels3"), LEVELS3);
        assert_eq!(wgsl_array("tq_mids3"), MIDS3);
        assert_eq!(wgsl_array("tq_levels4"), LEVELS4);
        assert_eq!(wgsl_array("tq_mids4"), MIDS4);
        assert_eq!(wgsl_array("tq_eighths"), EIGHTHS);
    }

    #[test]
    fn constant_and_zero_blocks_survive() {
        for ty in [KvType::F16, KvType::Q8, KvType::Q4] {
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
