//! ggml tensor types, one row per type: the GGUF id and name, the block geometry, the CPU
//! dequantizer (the reference) and the WGSL snippet that decodes it on the GPU. Loading,
//! planning, `voyager info`, the weight upload, the shader registry and the tests all read this
//! one table, so "can Voyager run this tensor?" has one answer everywhere.

use std::fmt;

use super::{float, kquants, legacy};

/// A ggml tensor storage type, as numbered in the GGUF format.
///
/// Every type llama.cpp writes today is known here so that `voyager info` can describe any
/// well-formed file; [`GgmlType::can_dequantize`] and [`GgmlType::runs_on_gpu`] say what the
/// runtime can do with it.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
    Q1_0,
}

/// How the CPU reference decodes a type.
#[derive(Clone, Copy)]
enum Codec {
    /// No CPU decoder.
    None,
    /// A function over any number of one-value blocks (the float types).
    Values(fn(&[u8], &mut [f32])),
    /// A function over one block of `block_len` values.
    Blocks(fn(&[u8], &mut [f32])),
}

/// One type's facts.
struct Row {
    ty: GgmlType,
    id: u32,
    name: &'static str,
    block_len: u64,
    block_bytes: u64,
    cpu: Codec,
    /// The snippet in `shaders/quant/` (`quant/<name>.wgsl`) that decodes it on the GPU.
    gpu: Option<&'static str>,
}

const fn row(
    ty: GgmlType,
    id: u32,
    name: &'static str,
    block_len: u64,
    block_bytes: u64,
    cpu: Codec,
    gpu: Option<&'static str>,
) -> Row {
    Row {
        ty,
        id,
        name,
        block_len,
        block_bytes,
        cpu,
        gpu,
    }
}

/// Every type llama.cpp defines: (type, id, name, values per block, bytes per block) as gguf-py's
/// GGML_QUANT_SIZES has them, then the CPU decoder and the GPU snippet Voyager has for it.
#[rustfmt::skip]
const TABLE: &[Row] = &[
    row(GgmlType::F32, 0, "F32", 1, 4, Codec::Values(float::dequantize_f32), Some("f32")),
    row(GgmlType::F16, 1, "F16", 1, 2, Codec::Values(float::dequantize_f16), Some("f16")),
    row(GgmlType::Q4_0, 2, "Q4_0", 32, 18, Codec::Blocks(legacy::dequantize_q4_0), Some("q4_0")),
    row(GgmlType::Q4_1, 3, "Q4_1", 32, 20, Codec::Blocks(legacy::dequantize_q4_1), Some("q4_1")),
    row(GgmlType::Q5_0, 6, "Q5_0", 32, 22, Codec::Blocks(legacy::dequantize_q5_0), Some("q5_0")),
    row(GgmlType::Q5_1, 7, "Q5_1", 32, 24, Codec::Blocks(legacy::dequantize_q5_1), Some("q5_1")),
    row(GgmlType::Q8_0, 8, "Q8_0", 32, 34, Codec::Blocks(legacy::dequantize_q8_0), Some("q8_0")),
    row(GgmlType::Q8_1, 9, "Q8_1", 32, 40, Codec::None, None),
    row(GgmlType::Q2_K, 10, "Q2_K", 256, 84, Codec::Blocks(kquants::dequantize_q2_k), None),
    row(GgmlType::Q3_K, 11, "Q3_K", 256, 110, Codec::Blocks(kquants::dequantize_q3_k), None),
    row(GgmlType::Q4_K, 12, "Q4_K", 256, 144, Codec::Blocks(kquants::dequantize_q4_k), Some("q4_k")),
    row(GgmlType::Q5_K, 13, "Q5_K", 256, 176, Codec::Blocks(kquants::dequantize_q5_k), Some("q5_k")),
    row(GgmlType::Q6_K, 14, "Q6_K", 256, 210, Codec::Blocks(kquants::dequantize_q6_k), Some("q6_k")),
    row(GgmlType::Q8_K, 15, "Q8_K", 256, 292, Codec::None, None),
    row(GgmlType::IQ2_XXS, 16, "IQ2_XXS", 256, 66, Codec::None, None),
    row(GgmlType::IQ2_XS, 17, "IQ2_XS", 256, 74, Codec::None, None),
    row(GgmlType::IQ3_XXS, 18, "IQ3_XXS", 256, 98, Codec::None, None),
    row(GgmlType::IQ1_S, 19, "IQ1_S", 256, 50, Codec::None, None),
    row(GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 18, Codec::None, None),
    row(GgmlType::IQ3_S, 21, "IQ3_S", 256, 110, Codec::None, None),
    row(GgmlType::IQ2_S, 22, "IQ2_S", 256, 82, Codec::None, None),
    row(GgmlType::IQ4_XS, 23, "IQ4_XS", 256, 136, Codec::None, None),
    row(GgmlType::I8, 24, "I8", 1, 1, Codec::None, None),
    row(GgmlType::I16, 25, "I16", 1, 2, Codec::None, None),
    row(GgmlType::I32, 26, "I32", 1, 4, Codec::None, None),
    row(GgmlType::I64, 27, "I64", 1, 8, Codec::None, None),
    row(GgmlType::F64, 28, "F64", 1, 8, Codec::None, None),
    row(GgmlType::IQ1_M, 29, "IQ1_M", 256, 56, Codec::None, None),
    row(GgmlType::BF16, 30, "BF16", 1, 2, Codec::Values(float::dequantize_bf16), Some("bf16")),
    row(GgmlType::TQ1_0, 34, "TQ1_0", 256, 54, Codec::None, None),
    row(GgmlType::TQ2_0, 35, "TQ2_0", 256, 66, Codec::None, None),
    row(GgmlType::MXFP4, 39, "MXFP4", 32, 17, Codec::None, None),
    row(GgmlType::NVFP4, 40, "NVFP4", 64, 36, Codec::None, None),
    row(GgmlType::Q1_0, 41, "Q1_0", 128, 18, Codec::None, None),
];

impl GgmlType {
    fn row(self) -> &'static Row {
        TABLE
            .iter()
            .find(|r| r.ty == self)
            .expect("every variant has a row in TABLE")
    }

    /// The type for a GGUF type id, or `None` for an id no ggml version defines.
    pub fn from_id(id: u32) -> Option<Self> {
        TABLE.iter().find(|r| r.id == id).map(|r| r.ty)
    }

    /// The GGUF type id.
    pub fn id(self) -> u32 {
        self.row().id
    }

    /// The name llama.cpp prints for this type.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// Number of values in one block.
    pub fn block_len(self) -> u64 {
        self.row().block_len
    }

    /// Number of bytes one block occupies.
    pub fn block_bytes(self) -> u64 {
        self.row().block_bytes
    }

    /// Bytes taken by a row of `n` values, or `None` when `n` is not a whole number of blocks
    /// or the size overflows.
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        if n % self.block_len() != 0 {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }

    /// Whether the CPU reference can dequantize this type ([`crate::quant::dequantize`]).
    pub fn can_dequantize(self) -> bool {
        !matches!(self.row().cpu, Codec::None)
    }

    /// The name of the WGSL snippet (`shaders/quant/<name>.wgsl`) that decodes this type on the
    /// GPU, or `None` when no kernel reads it.
    pub fn gpu_snippet(self) -> Option<&'static str> {
        self.row().gpu
    }

    /// Whether the GPU kernels (matmul, embedding) read weights of this type, so a model whose
    /// tensors are all of such types can run.
    pub fn runs_on_gpu(self) -> bool {
        self.gpu_snippet().is_some()
    }

    /// Decodes whole blocks of `data` into `out` (as many values as `out` holds); `None` when
    /// the type has no CPU decoder. The caller has checked the lengths.
    pub(super) fn decode(self, data: &[u8], out: &mut [f32]) -> Option<()> {
        match self.row().cpu {
            Codec::None => return None,
            Codec::Values(f) => f(data, out),
            Codec::Blocks(f) => {
                let (bytes, len) = (self.block_bytes() as usize, self.block_len() as usize);
                for (b, y) in data.chunks_exact(bytes).zip(out.chunks_exact_mut(len)) {
                    f(b, y);
                }
            }
        }
        Some(())
    }

    /// Every known type, in id order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|r| r.ty)
    }
}

/// The name of a `general.file_type` value (llama.cpp's `llama_ftype`), e.g. 15 -> "Q4_K_M".
pub fn file_type_name(ftype: u32) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ids_are_refused() {
        for t in GgmlType::all() {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 42, 1000, u32::MAX] {
            assert_eq!(GgmlType::from_id(id), None, "id {id}");
        }
    }

    #[test]
    fn what_runs_where() {
        // Every type the GPU reads has a CPU reference to be checked against.
        for t in GgmlType::all().filter(|t| t.runs_on_gpu()) {
            assert!(t.can_dequantize(), "{t}");
        }
        // Q2_K and Q3_K dequantize on the CPU but no kernel reads them.
        for t in [GgmlType::Q2_K, GgmlType::Q3_K] {
            assert!(t.can_dequantize() && !t.runs_on_gpu(), "{t}");
        }
        assert!(!GgmlType::IQ2_XXS.can_dequantize());
    }

    #[test]
    fn row_bytes_needs_whole_blocks() {
        assert_eq!(GgmlType::Q4_K.row_bytes(512), Some(288));
        assert_eq!(GgmlType::Q4_K.row_bytes(100), None);
        assert_eq!(GgmlType::F32.row_bytes(3), Some(12));
        assert_eq!(GgmlType::Q8_0.row_bytes(u64::MAX - 31), None);
    }
}
