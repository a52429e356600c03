//! Helpers shared by the CLI's test binaries.

#![allow(dead_code)]

/// A tiny synthetic llama (2 layers, 2 KV heads of 32) written to a temporary file.
pub fn tiny_model() -> (tempfile::TempDir, String) {
    tiny_model_of(voyager_runtime::gguf::GgmlType::F32)
}

/// [`tiny_model`] with its projections stored as `ty`.
pub fn tiny_model_of(ty: voyager_runtime::gguf::GgmlType) -> (tempfile::TempDir, String) {
    use voyager_runtime::gguf::synthetic::SyntheticLlama;
    use voyager_runtime::gguf::writer::Value;
    // Rows of a k-quant are whole 256-value blocks.
    let width = (ty.block_len() as u32).max(128);
    let shape = SyntheticLlama {
        n_embd: width,
        n_ff: width,
        n_heads: 4,
        n_kv_heads: 2,
        weight_type: ty,
        ..SyntheticLlama::default()
    };
    let mut gguf = shape.build();
    // No merges (the synthetic "Ġ t" merges into a token the byte vocabulary lacks) and a
    // pre-tokenizer Voyager knows, so that opening the model prints nothing on stderr.
    gguf.set("tokenizer.ggml.merges", Value::Array(Vec::new()))
        .set("tokenizer.ggml.pre", "default".into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    std::fs::write(&path, gguf.to_bytes()).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}
