//! Named shapes of real models for synthetic benchmarks (`voyager bench --synthetic
//! SHAPE:TYPE`): the dimensions of Llama 3.2 1B and 3B, Llama 3.1 8B and Gemma 3 1B with
//! random weights in a chosen block format. Decode speed depends on the bytes a step reads and
//! the shapes of its kernels, not on the values, so these measure what the real models would,
//! on machines a model file cannot reach.

use crate::gguf::synthetic::{SyntheticArch, SyntheticLlama};
use crate::gguf::GgmlType;
use crate::{Error, Result};

/// A named shape: its name, what it copies, and the model.
pub struct Shape {
    pub name: &'static str,
    pub like: &'static str,
    build: fn() -> SyntheticLlama,
}

/// Llama 3's vocabulary.
const LLAMA3_VOCAB: u32 = 128_256;

fn llama(n_layers: u32, n_embd: u32, n_ff: u32, n_heads: u32, tied: bool) -> SyntheticLlama {
    SyntheticLlama {
        arch: SyntheticArch::Llama,
        n_layers,
        n_embd,
        n_ff,
        n_heads,
        n_kv_heads: 8,
        head_dim: Some(n_embd / n_heads),
        n_vocab: Some(LLAMA3_VOCAB),
        context_length: 131_072,
        rope_base: 500_000.0,
        // Untied: an `output.weight` (its type is set with the others).
        output_type: (!tied).then_some(GgmlType::F32),
        ..SyntheticLlama::default()
    }
}

/// Every named shape.
pub const SHAPES: &[Shape] = &[
    Shape {
        name: "tiny",
        like: "a 2-layer toy for tests (256 wide, 1024 tokens)",
        build: || SyntheticLlama {
            n_layers: 2,
            n_embd: 256,
            n_ff: 512,
            n_heads: 4,
            n_kv_heads: 2,
            n_vocab: Some(1024),
            context_length: 4096,
            ..SyntheticLlama::default()
        },
    },
    Shape {
        name: "llama-1b",
        like: "Llama 3.2 1B",
        build: || llama(16, 2048, 8192, 32, true),
    },
    Shape {
        name: "llama-3b",
        like: "Llama 3.2 3B",
        build: || llama(28, 3072, 8192, 24, true),
    },
    Shape {
        name: "llama-8b",
        like: "Llama 3.1 8B",
        build: || llama(32, 4096, 14336, 32, false),
    },
    Shape {
        name: "gemma3-1b",
        like: "Gemma 3 1B",
        build: || SyntheticLlama {
            arch: SyntheticArch::Gemma3,
            n_layers: 26,
            n_embd: 1152,
            n_ff: 6912,
            n_heads: 4,
            n_kv_heads: 1,
            head_dim: Some(256),
            n_vocab: Some(262_144),
            context_length: 32_768,
            rope_base: 1_000_000.0,
            sliding_window: 512,
            ..SyntheticLlama::default()
        },
    },
];

/// The model `SHAPE:TYPE` names (e.g. `llama-8b:q4_k`): every matrix, the embedding and
/// the output included, in `TYPE`; norms in F32. A clear error for an unknown shape or a type
/// the GPU kernels do not read.
pub fn parse(spec: &str) -> Result<SyntheticLlama> {
    let names = || SHAPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ");
    let (shape, ty) = spec.split_once(':').ok_or_else(|| {
        Error::InvalidArgument(format!(
            "synthetic model `{spec}`: expected SHAPE:TYPE, e.g. llama-1b:q4_k (shapes: {})",
            names()
        ))
    })?;
    let shape = SHAPES.iter().find(|s| s.name == shape).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "unknown synthetic shape `{shape}` (known: {})",
            names()
        ))
    })?;
    let ty = GgmlType::all()
        .find(|t| t.name().eq_ignore_ascii_case(ty))
        .filter(|t| t.runs_on_gpu())
        .ok_or_else(|| {
            let gpu: Vec<&str> = GgmlType::all()
                .filter(|t| t.runs_on_gpu())
                .map(|t| t.name())
                .collect();
            Error::InvalidArgument(format!(
                "weight type `{ty}` is not one the GPU reads (these are: {})",
                gpu.join(", ")
            ))
        })?;
    let mut model = (shape.build)();
    model.weight_type = ty;
    model.embedding_type = ty;
    if model.output_type.is_some() {
        model.output_type = Some(ty);
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shapes are the models they are named after: their parameter counts match the
    /// published sizes (Llama 3.2 1B: 1.24 B with tied embeddings; 3B: 3.21 B; Llama 3.1 8B:
    /// 8.03 B; Gemma 3 1B: 1.00 B).
    #[test]
    fn shapes_have_their_models_parameter_counts() {
        for (spec, billions) in [
            ("llama-1b:f32", 1.236),
            ("llama-3b:f32", 3.213),
            ("llama-8b:f32", 8.030),
            ("gemma3-1b:f32", 1.000),
        ] {
            let p = parse(spec).unwrap().parameters() as f64 / 1e9;
            assert!(
                (p - billions).abs() < 0.005,
                "{spec}: {p:.3} B parameters, {billions} B expected"
            );
        }
    }

    #[test]
    fn the_type_sets_every_matrix_and_sizes_follow_the_blocks() {
        let m = parse("llama-8b:Q4_K").unwrap();
        assert_eq!(m.weight_type, GgmlType::Q4_K);
        assert_eq!(m.output_type, Some(GgmlType::Q4_K));
        // 144 bytes per 256 values for the matrices, 4 bytes per norm value.
        let norms = 4096 * (2 * 32 + 1);
        let matrices = m.parameters() - norms;
        assert_eq!(m.weight_bytes(), matrices / 256 * 144 + 4 * norms);
    }

    #[test]
    fn bad_specs_get_clear_errors() {
        for (spec, says) in [
            ("llama-1b", "SHAPE:TYPE"),
            ("llama-70b:q4_k", "unknown synthetic shape `llama-70b`"),
            ("llama-1b:q9_z", "weight type `q9_z`"),
            ("llama-1b:q2_k", "not one the GPU reads"),
        ] {
            let e = parse(spec).err().unwrap().to_string();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn a_streamed_file_equals_the_built_one() {
        let m = parse("tiny:q4_0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        let mut last = (0, 0);
        m.write_file(&path, &mut |done, total| last = (done, total))
            .unwrap();
        let mut built = m.build();
        built
            .set(
                "tokenizer.ggml.merges",
                crate::gguf::writer::Value::Array(Vec::new()),
            )
            .set("tokenizer.ggml.pre", "default".into());
        assert_eq!(std::fs::read(&path).unwrap(), built.to_bytes());
        assert_eq!(last, (m.weight_bytes(), m.weight_bytes()));
    }
}
