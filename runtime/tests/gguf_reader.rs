//! The GGUF reader on valid files, and on a corpus of broken and hostile ones: every broken file
//! must give a clean one-line error — no panic, no hang, no huge allocation.

use std::path::PathBuf;

use voyager_runtime::gguf::synthetic::SyntheticLlama;
use voyager_runtime::gguf::writer::Value;
use voyager_runtime::gguf::{GgmlType, GgufFile};
use voyager_runtime::model::{Architecture, ModelConfig};

fn tiny() -> Vec<u8> {
    SyntheticLlama::default().build().to_bytes()
}

/// Opens `bytes` as a model the way `voyager info` does: file, then configuration.
fn open_model(bytes: Vec<u8>) -> Result<(GgufFile, ModelConfig), voyager_runtime::Error> {
    let f = GgufFile::from_bytes(bytes)?;
    let cfg = ModelConfig::from_gguf(&f)?;
    Ok((f, cfg))
}

#[test]
fn synthetic_model_round_trips() {
    let shape = SyntheticLlama::default();
    let (f, cfg) = open_model(tiny()).expect("valid file");
    assert_eq!(f.version(), 3);
    assert_eq!(f.architecture().unwrap(), "llama");
    assert_eq!(cfg.arch, Architecture::Llama);
    assert_eq!(cfg.n_layers, shape.n_layers as usize);
    assert_eq!(cfg.n_embd, shape.n_embd as usize);
    assert_eq!(cfg.n_kv_heads, shape.n_kv_heads as usize);
    assert_eq!(cfg.head_dim, 16);
    assert_eq!(cfg.vocab_size, shape.vocab_size() as usize);
    assert!(cfg.tied_embeddings);
    assert_eq!(f.tensors().len(), 2 + 9 * shape.n_layers as usize);
    let t = f.tensor("blk.1.ffn_down.weight").unwrap();
    assert_eq!(t.dims, vec![128, 64]);
    assert_eq!(t.ggml_type, GgmlType::F32);
    assert_eq!(t.offset % 32, 0);
    assert_eq!(f.tensor_data(t).len(), 128 * 64 * 4);
    assert!(f.tensor("nope").is_err());
    let tokens = f.metadata().str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 259);
    // 2 kv heads x (16 + 16) dims x 2 layers x 2 bytes.
    assert_eq!(cfg.kv_bytes_per_token(16), 2 * 32 * 2 * 2);
}

#[test]
fn tensor_data_is_the_bytes_written() {
    let mut w = voyager_runtime::gguf::writer::GgufWriter::new();
    w.kv("general.architecture", "test".into());
    w.tensor("a", &[3], GgmlType::F32, vec![1; 12]);
    w.tensor("b", &[32, 2], GgmlType::Q8_0, (0..68).collect());
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(f.tensor_data(f.tensor("a").unwrap()), &[1; 12]);
    let b = f.tensor("b").unwrap();
    assert_eq!(b.n_bytes, 68);
    assert_eq!(f.tensor_data(b), (0..68).collect::<Vec<u8>>().as_slice());
}

/// Raw header building, to say exactly which byte is wrong.
struct Raw(Vec<u8>);

impl Raw {
    fn new(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut v = b"GGUF".to_vec();
        v.extend(version.to_le_bytes());
        v.extend(n_tensors.to_le_bytes());
        v.extend(n_kv.to_le_bytes());
        Raw(v)
    }
    fn u32(mut self, x: u32) -> Self {
        self.0.extend(x.to_le_bytes());
        self
    }
    fn u64(mut self, x: u64) -> Self {
        self.0.extend(x.to_le_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend(b);
        self
    }
    fn string(self, s: &[u8]) -> Self {
        self.u64(s.len() as u64).bytes(s)
    }
    fn kv_u32(self, key: &str, v: u32) -> Self {
        self.string(key.as_bytes()).u32(4).u32(v)
    }
    fn kv_str(self, key: &str, v: &[u8]) -> Self {
        self.string(key.as_bytes()).u32(8).string(v)
    }
    fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        let mut r = self.string(name.as_bytes()).u32(dims.len() as u32);
        for d in dims {
            r = r.u64(*d);
        }
        r.u32(ty).u64(offset)
    }
    /// Pads to the 32-byte data section and appends `n` data bytes.
    fn data(mut self, n: usize) -> Vec<u8> {
        self.0.resize(self.0.len().next_multiple_of(32), 0);
        self.0.extend(std::iter::repeat_n(0x3c, n));
        self.0
    }
}

/// The smallest valid model, for the committed corpus.
fn smallest() -> SyntheticLlama {
    SyntheticLlama {
        n_layers: 1,
        n_embd: 32,
        n_ff: 32,
        n_heads: 2,
        n_kv_heads: 1,
        ..SyntheticLlama::default()
    }
}

/// The smallest model with one metadata value replaced.
fn with_kv(key: &str, value: Value) -> Vec<u8> {
    let mut w = smallest().build();
    w.set(key, value);
    w.to_bytes()
}

/// (name, file, a piece of the expected message). Every case must fail to open as a model.
fn corrupt_cases() -> Vec<(String, Vec<u8>, &'static str)> {
    let mut cases: Vec<(String, Vec<u8>, &'static str)> = vec![
        ("empty".into(), vec![], "shorter than the 4-byte magic"),
        (
            "three-bytes".into(),
            b"GGU".to_vec(),
            "shorter than the 4-byte magic",
        ),
        ("bad-magic".into(), b"GGML\x03\0\0\0".to_vec(), "bad magic"),
        ("version-1".into(), Raw::new(1, 0, 0).0, "obsolete"),
        ("version-99".into(), Raw::new(99, 0, 0).0, "version 99"),
        (
            "big-endian".into(),
            Raw::new(3u32.swap_bytes(), 0, 0).0,
            "big-endian",
        ),
        (
            "huge-kv-count".into(),
            Raw::new(3, 0, 1 << 60).0,
            "metadata entries",
        ),
        (
            "huge-tensor-count".into(),
            Raw::new(3, 1 << 60, 0).0,
            "tensors, more than",
        ),
        (
            "huge-key-length".into(),
            Raw::new(3, 0, 1).u64(1 << 62).bytes(&[b'k'; 32]).0,
            "file ends inside metadata key 0",
        ),
        (
            "huge-string-value".into(),
            Raw::new(3, 0, 1).string(b"k").u32(8).u64(u64::MAX).0,
            "file ends inside",
        ),
        (
            "huge-array".into(),
            Raw::new(3, 0, 1).string(b"k").u32(9).u32(4).u64(1 << 61).0,
            "claims",
        ),
        (
            "huge-string-array".into(),
            Raw::new(3, 0, 1).string(b"k").u32(9).u32(8).u64(1 << 40).0,
            "claims",
        ),
        (
            "non-utf8-key".into(),
            Raw::new(3, 0, 1).string(b"gen\xffral").u32(4).u32(1).0,
            "not valid UTF-8",
        ),
        (
            "non-utf8-value".into(),
            Raw::new(3, 0, 1)
                .kv_str("general.architecture", b"lla\xc3ma")
                .0,
            "not valid UTF-8",
        ),
        (
            "non-utf8-in-array".into(),
            Raw::new(3, 0, 1)
                .string(b"tokenizer.ggml.tokens")
                .u32(9)
                .u32(8)
                .u64(2)
                .string(b"ok")
                .string(b"\xed\xa0\x80")
                .0,
            "not valid UTF-8",
        ),
        (
            "unknown-value-type".into(),
            Raw::new(3, 0, 1).string(b"k").u32(13).u32(0).0,
            "unknown value type 13",
        ),
        (
            "nested-array".into(),
            Raw::new(3, 0, 1).string(b"k").u32(9).u32(9).u64(1).0,
            "array of arrays",
        ),
        (
            "unknown-tensor-type".into(),
            Raw::new(3, 1, 0).tensor("w", &[32], 4, 0).data(64),
            "unknown type id 4",
        ),
        (
            "tensor-type-id-huge".into(),
            Raw::new(3, 1, 0)
                .tensor("w", &[32], 0xdead_beef, 0)
                .data(64),
            "unknown type id",
        ),
        // NVFP4 (id 40) is read like any other type (gguf-rs used to panic on it); no kernel
        // runs it, and this file has no architecture, so the model is refused.
        (
            "tensor-type-newer-than-reader".into(),
            Raw::new(3, 1, 0).tensor("w", &[64], 40, 0).data(64),
            "general.architecture",
        ),
        (
            "tensor-past-end".into(),
            Raw::new(3, 1, 0).tensor("w", &[64], 0, 0).data(128),
            "past the end",
        ),
        (
            "tensor-offset-huge".into(),
            Raw::new(3, 1, 0)
                .tensor("w", &[8], 0, u64::MAX - 31)
                .data(32),
            "past the end",
        ),
        (
            "tensor-misaligned".into(),
            Raw::new(3, 1, 0).tensor("w", &[8], 0, 4).data(64),
            "not aligned",
        ),
        (
            "tensor-zero-dims".into(),
            Raw::new(3, 1, 0).tensor("w", &[], 0, 0).data(32),
            "0 dimensions",
        ),
        (
            "tensor-five-dims".into(),
            Raw::new(3, 1, 0)
                .tensor("w", &[1, 1, 1, 1, 1], 0, 0)
                .data(32),
            "5 dimensions",
        ),
        (
            "tensor-dims-overflow".into(),
            Raw::new(3, 1, 0)
                .tensor("w", &[1 << 40, 1 << 40], 0, 0)
                .data(32),
            "overflows",
        ),
        (
            "tensor-partial-block".into(),
            Raw::new(3, 1, 0).tensor("w", &[10], 2, 0).data(32),
            "whole number",
        ),
        (
            "tensor-duplicate".into(),
            Raw::new(3, 2, 0)
                .tensor("w", &[8], 0, 0)
                .tensor("w", &[8], 0, 32)
                .data(64),
            "appears twice",
        ),
        (
            "bad-alignment".into(),
            Raw::new(3, 0, 1).kv_u32("general.alignment", 3).0,
            "power of two",
        ),
        (
            "no-architecture".into(),
            Raw::new(3, 0, 1).kv_u32("general.file_type", 1).0,
            "general.architecture",
        ),
        (
            "unknown-architecture".into(),
            Raw::new(3, 0, 1)
                .kv_str("general.architecture", b"mamba9")
                .0,
            "architecture `mamba9` is not supported",
        ),
    ];
    let config_cases = [
        (
            "block-count-huge",
            "llama.block_count",
            Value::U32(1 << 31),
            "out of range",
        ),
        (
            "head-count-zero",
            "llama.attention.head_count",
            Value::U32(0),
            "out of range",
        ),
        (
            "kv-heads-not-dividing",
            "llama.attention.head_count_kv",
            Value::U32(3),
            "does not divide",
        ),
        (
            "block-count-string",
            "llama.block_count",
            Value::from("30"),
            "expected an unsigned integer",
        ),
        (
            "embedding-mismatch",
            "llama.embedding_length",
            Value::U32(64),
            "token_embd.weight has shape",
        ),
        (
            "rope-dim-odd",
            "llama.rope.dimension_count",
            Value::U32(15),
            "rope.dimension_count",
        ),
        (
            "rope-scaling-unknown",
            "llama.rope.scaling.type",
            Value::from("yarn9"),
            "RoPE scaling",
        ),
    ];
    for (name, key, value, msg) in config_cases {
        cases.push((name.to_string(), with_kv(key, value), msg));
    }
    let mut dup = Raw::new(3, 0, 2).kv_u32("a", 1).kv_u32("a", 2).0;
    dup.extend([0; 8]);
    cases.push(("duplicate-key".into(), dup, "appears twice"));
    let good = smallest().build().to_bytes();
    for cut in [
        4,
        8,
        20,
        24,
        60,
        200,
        1000,
        3000,
        good.len() / 2,
        good.len() - 1,
    ] {
        cases.push((format!("truncated-at-{cut}"), good[..cut].to_vec(), ""));
    }
    cases
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/corrupt-gguf")
}

fn assert_clean_error(name: &str, bytes: Vec<u8>, expected: &str) {
    let result = std::panic::catch_unwind(|| open_model(bytes));
    let Ok(result) = result else {
        panic!("{name}: opening panicked");
    };
    let Err(e) = result else {
        panic!("{name}: a broken file opened without error");
    };
    let msg = e.to_string();
    assert!(
        !msg.is_empty() && !msg.contains('\n'),
        "{name}: message is not one line: {msg:?}"
    );
    assert!(
        msg.contains(expected),
        "{name}: expected {expected:?} in {msg:?}"
    );
}

#[test]
fn every_corrupt_case_gives_its_clean_error() {
    for (name, bytes, expected) in corrupt_cases() {
        assert_clean_error(&name, bytes, expected);
    }
}

#[test]
fn truncation_at_every_header_offset_is_a_clean_error() {
    let good = tiny();
    let data_offset = GgufFile::from_bytes(good.clone()).unwrap().data_offset() as usize;
    // Every cut inside the header, then a stride through the tensor data.
    let cuts = (0..data_offset + 64).chain((data_offset + 64..good.len()).step_by(997));
    for cut in cuts {
        assert_clean_error(&format!("cut at {cut}"), good[..cut].to_vec(), "");
    }
}

/// The committed corpus (generated cases plus anything fuzzing found) all fail cleanly.
/// `VOYAGER_UPDATE_CORPUS=1 cargo test -p voyager-runtime --test gguf_reader` rewrites the
/// generated part.
#[test]
fn committed_corpus_gives_clean_errors() {
    let dir = corpus_dir();
    if std::env::var_os("VOYAGER_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes, _) in corrupt_cases() {
            std::fs::write(dir.join(format!("{name}.broken")), bytes).unwrap();
        }
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "broken") {
            let bytes = std::fs::read(&path).unwrap();
            assert_clean_error(&path.display().to_string(), bytes, "");
            n += 1;
        }
    }
    assert!(
        n >= corrupt_cases().len(),
        "corpus has {n} files; regenerate it"
    );
}
