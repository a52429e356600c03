//! Random tensors in real block formats, for synthetic models, the self-check and the tests:
//! random quants with sane f16 scales, so every value is finite and of a realistic size.

use super::GgmlType;
use crate::rng::XorShift;

/// Byte offsets of the f16 scale fields in one block, and whether each is a (signed) min.
fn f16_fields(ty: GgmlType) -> &'static [(usize, bool)] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[(0, false)],
        GgmlType::Q4_1 | GgmlType::Q5_1 => &[(0, false), (2, true)],
        GgmlType::Q4_K | GgmlType::Q5_K => &[(0, false), (2, false)],
        GgmlType::Q2_K => &[(80, false), (82, false)],
        GgmlType::Q3_K => &[(108, false)],
        GgmlType::Q6_K => &[(208, false)],
        _ => &[],
    }
}

/// `count` values of type `ty` (a whole number of blocks): floats uniform in [-1, 1);
/// quantized blocks of random bytes with their f16 scales set to values in [0.001, 0.031]
/// (and mins in [-0.1, 0.1)), far from overflow. `None` for a type whose layout is unknown
/// here or a `count` that is not whole blocks.
pub fn random_tensor(ty: GgmlType, count: usize, rng: &mut XorShift) -> Option<Vec<u8>> {
    let bytes = usize::try_from(ty.row_bytes(count as u64)?).ok()?;
    Some(match ty {
        GgmlType::F32 => rng
            .vec(count, 1.0)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        GgmlType::F16 => rng
            .vec(count, 1.0)
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        GgmlType::BF16 => rng
            .vec(count, 1.0)
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        _ if ty.block_len() > 1 && ty.can_dequantize() => {
            let mut data: Vec<u8> = (0..bytes).map(|_| rng.next_u64() as u8).collect();
            for block in data.chunks_exact_mut(ty.block_bytes() as usize) {
                for &(at, is_min) in f16_fields(ty) {
                    let v = if is_min {
                        rng.next_f32() * 0.1
                    } else {
                        0.001 + 0.03 * rng.next_f32().abs()
                    };
                    block[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
                }
            }
            data
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gpu_type_gives_finite_values() {
        let mut rng = XorShift::new(3);
        for ty in GgmlType::all().filter(|t| t.can_dequantize()) {
            let n = ty.block_len() as usize * 3;
            let bytes = random_tensor(ty, n, &mut rng).unwrap();
            let v = crate::quant::dequantize(ty, &bytes, n).unwrap();
            assert!(v.iter().all(|x| x.is_finite() && x.abs() < 100.0), "{ty}");
        }
        assert!(random_tensor(GgmlType::Q4_0, 31, &mut rng).is_none());
        assert!(random_tensor(GgmlType::IQ2_XXS, 256, &mut rng).is_none());
    }
}
