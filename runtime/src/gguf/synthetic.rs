//! Synthetic models: valid GGUF files of a chosen llama shape with deterministic pseudo-random
//! weights and a byte-level vocabulary. Tests use tiny ones; benchmarks can use realistic shapes
//! where a real model cannot be carried.

use crate::gguf::writer::{GgufWriter, Value};
use crate::gguf::GgmlType;

/// The architecture a synthetic model is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntheticArch {
    Llama,
    /// Gemma 3: per-head q/k norms, post-attention and post-FFN norms, sliding layers.
    Gemma3,
}

impl SyntheticArch {
    fn name(self) -> &'static str {
        match self {
            SyntheticArch::Llama => "llama",
            SyntheticArch::Gemma3 => "gemma3",
        }
    }
}

/// The shape of a synthetic model.
#[derive(Debug, Clone)]
pub struct SyntheticLlama {
    pub arch: SyntheticArch,
    pub n_layers: u32,
    pub n_embd: u32,
    pub n_ff: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    /// Values per attention head (`None`: `n_embd / n_heads`).
    pub head_dim: Option<u32>,
    /// Tokens in the vocabulary (`None`: the 256 bytes and [`SyntheticLlama::SPECIALS`]);
    /// tokens past those are fillers no text encodes to.
    pub n_vocab: Option<u32>,
    pub context_length: u32,
    pub rope_base: f32,
    /// Gemma 3's sliding window (unused for llama).
    pub sliding_window: u32,
    pub seed: u64,
    /// Storage of the projection matrices.
    pub weight_type: GgmlType,
    /// Storage of the token embedding.
    pub embedding_type: GgmlType,
    /// Storage of `output.weight`; `None` ties the output to the embedding.
    pub output_type: Option<GgmlType>,
}

impl Default for SyntheticLlama {
    /// A model small enough to build in microseconds.
    fn default() -> Self {
        Self {
            arch: SyntheticArch::Llama,
            n_layers: 2,
            n_embd: 64,
            n_ff: 128,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: None,
            n_vocab: None,
            context_length: 256,
            rope_base: 10_000.0,
            sliding_window: 512,
            seed: 7,
            weight_type: GgmlType::F32,
            embedding_type: GgmlType::F32,
            output_type: None,
        }
    }
}

/// The 256 characters byte-level BPE uses for the bytes 0..=255 (GPT-2's mapping: printable
/// bytes map to themselves, the rest to code points from U+0100 on).
pub fn byte_level_chars() -> Vec<char> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut next = 0x100;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("printable byte")
            } else {
                let c = char::from_u32(next).expect("valid code point");
                next += 1;
                c
            }
        })
        .collect()
}

struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
    }
}

/// Largest piece of a tensor generated at once (whole rows), so that streaming a model of
/// several gigabytes holds only this much.
const PIECE_BYTES: u64 = 16 << 20;

/// One tensor of the file: name, dimensions, type.
struct Spec {
    name: String,
    dims: [u64; 2],
    ty: GgmlType,
}

impl Spec {
    /// The dimensions as GGUF lists them: a vector (one row) has one.
    fn gguf_dims(&self) -> &[u64] {
        if self.dims[1] == 1 {
            &self.dims[..1]
        } else {
            &self.dims
        }
    }

    /// Bytes of its data.
    fn bytes(&self) -> u64 {
        self.ty.row_bytes(self.dims[0]).unwrap_or(0) * self.dims[1]
    }
}

/// `ty`, or the type llama.cpp's quantizer falls back to when rows of `k` values are not whole
/// blocks of it (a K-quant's 256 values do not divide Gemma 3 1B's 1152): Q4_K to Q5_0, Q5_K
/// to Q5_1, Q6_K to Q8_0, Q2_K and Q3_K to Q4_0; F32 when even those do not fit.
fn fitted(ty: GgmlType, k: u64) -> GgmlType {
    if k % ty.block_len() == 0 {
        return ty;
    }
    let fallback = match ty {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        _ => GgmlType::F32,
    };
    if k % fallback.block_len() == 0 {
        fallback
    } else {
        GgmlType::F32
    }
}

/// The weights' bytes, drawn in a fixed order.
struct Data {
    floats: Rng,
    blocks: crate::rng::XorShift,
}

impl Data {
    fn new(seed: u64) -> Self {
        Self {
            floats: Rng(seed | 1),
            blocks: crate::rng::XorShift::new(seed),
        }
    }

    fn f32s(&mut self, n: u64) -> Vec<u8> {
        (0..n)
            .flat_map(|_| self.floats.next_f32().to_le_bytes())
            .collect()
    }

    /// The bytes of `spec`, handed to `out` in pieces of whole rows: F32 tensors from the
    /// small-float generator, others as random blocks with sane scales (zero bytes of the
    /// right size for a type whose block layout is not known here).
    fn generate(
        &mut self,
        spec: &Spec,
        out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let [k, n] = spec.dims;
        let row_bytes = spec.ty.row_bytes(k).unwrap_or(0).max(1);
        let rows_per_piece = (PIECE_BYTES / row_bytes).max(1);
        let mut r = 0;
        while r < n {
            let rows = rows_per_piece.min(n - r);
            let piece = if spec.ty == GgmlType::F32 {
                self.f32s(k * rows)
            } else {
                crate::quant::random::random_tensor(spec.ty, (k * rows) as usize, &mut self.blocks)
                    .unwrap_or_else(|| vec![0; (row_bytes * rows) as usize])
            };
            out(&piece)?;
            r += rows;
        }
        Ok(())
    }
}

impl SyntheticLlama {
    /// Special tokens appended after the 256 byte tokens.
    pub const SPECIALS: [&'static str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

    pub fn vocab_size(&self) -> u32 {
        self.n_vocab
            .unwrap_or(0)
            .max(256 + Self::SPECIALS.len() as u32)
    }

    fn head_dim(&self) -> u32 {
        self.head_dim.unwrap_or(self.n_embd / self.n_heads.max(1))
    }

    /// Every tensor, in file order.
    fn specs(&self) -> Vec<Spec> {
        let hd = self.head_dim() as u64;
        let (e, f) = (self.n_embd as u64, self.n_ff as u64);
        let (q, kv) = (self.n_heads as u64 * hd, self.n_kv_heads as u64 * hd);
        let (wt, f32) = (self.weight_type, GgmlType::F32);
        let spec = |name: String, dims: [u64; 2], ty| Spec {
            name,
            ty: fitted(ty, dims[0]),
            dims,
        };
        let mut out = vec![spec(
            "token_embd.weight".into(),
            [e, self.vocab_size() as u64],
            self.embedding_type,
        )];
        out.push(spec("output_norm.weight".into(), [e, 1], f32));
        if let Some(ty) = self.output_type {
            out.push(spec(
                "output.weight".into(),
                [e, self.vocab_size() as u64],
                ty,
            ));
        }
        let gemma = self.arch == SyntheticArch::Gemma3;
        for l in 0..self.n_layers {
            let name = |t: &str| format!("blk.{l}.{t}.weight");
            out.push(spec(name("attn_norm"), [e, 1], f32));
            out.push(spec(name("attn_q"), [e, q], wt));
            out.push(spec(name("attn_k"), [e, kv], wt));
            out.push(spec(name("attn_v"), [e, kv], wt));
            if gemma {
                out.push(spec(name("attn_q_norm"), [hd, 1], f32));
                out.push(spec(name("attn_k_norm"), [hd, 1], f32));
            }
            out.push(spec(name("attn_output"), [q, e], wt));
            if gemma {
                out.push(spec(name("post_attention_norm"), [e, 1], f32));
            }
            out.push(spec(name("ffn_norm"), [e, 1], f32));
            out.push(spec(name("ffn_gate"), [e, f], wt));
            out.push(spec(name("ffn_up"), [e, f], wt));
            out.push(spec(name("ffn_down"), [f, e], wt));
            if gemma {
                out.push(spec(name("post_ffw_norm"), [e, 1], f32));
            }
        }
        out
    }

    /// The metadata, with every tensor declared (no data yet).
    fn declared(&self, specs: &[Spec]) -> GgufWriter {
        let arch = self.arch.name();
        let key = |k: &str| format!("{arch}.{k}");
        let n_vocab = self.vocab_size();
        let mut w = GgufWriter::new();
        w.kv("general.architecture", arch.into())
            .kv("general.name", format!("synthetic {arch}").as_str().into())
            .kv("general.alignment", Value::U32(32))
            .kv(&key("block_count"), Value::U32(self.n_layers))
            .kv(&key("context_length"), Value::U32(self.context_length))
            .kv(&key("embedding_length"), Value::U32(self.n_embd))
            .kv(&key("feed_forward_length"), Value::U32(self.n_ff))
            .kv(&key("attention.head_count"), Value::U32(self.n_heads))
            .kv(&key("attention.head_count_kv"), Value::U32(self.n_kv_heads))
            .kv(&key("attention.key_length"), Value::U32(self.head_dim()))
            .kv(&key("attention.value_length"), Value::U32(self.head_dim()))
            .kv(
                &key("attention.layer_norm_rms_epsilon"),
                Value::F32(if self.arch == SyntheticArch::Gemma3 {
                    1e-6
                } else {
                    1e-5
                }),
            )
            .kv(&key("rope.freq_base"), Value::F32(self.rope_base))
            .kv(&key("rope.dimension_count"), Value::U32(self.head_dim()))
            .kv("tokenizer.ggml.model", "gpt2".into())
            .kv("tokenizer.ggml.pre", "gpt2".into());
        if self.arch == SyntheticArch::Gemma3 {
            w.kv(
                &key("attention.sliding_window"),
                Value::U32(self.sliding_window),
            );
        }
        let mut tokens: Vec<Value> = byte_level_chars()
            .into_iter()
            .map(|c| Value::Str(c.to_string()))
            .collect();
        let mut types = vec![Value::I32(1); 256];
        for s in Self::SPECIALS {
            tokens.push(s.into());
            types.push(Value::I32(3));
        }
        for i in tokens.len() as u32..n_vocab {
            tokens.push(Value::Str(format!("<filler {i}>")));
            types.push(Value::I32(1));
        }
        w.kv("tokenizer.ggml.tokens", Value::Array(tokens))
            .kv("tokenizer.ggml.token_type", Value::Array(types))
            .kv(
                "tokenizer.ggml.merges",
                Value::Array(vec![Value::from("Ġ t")]),
            )
            .kv("tokenizer.ggml.bos_token_id", Value::U32(256))
            .kv("tokenizer.ggml.eos_token_id", Value::U32(258))
            .kv("tokenizer.ggml.add_bos_token", Value::Bool(false));
        for s in specs {
            w.declare(&s.name, s.gguf_dims(), s.ty);
        }
        w
    }

    /// The file as a writer holding every tensor's bytes, ready for [`GgufWriter::to_bytes`].
    pub fn build(&self) -> GgufWriter {
        let specs = self.specs();
        let mut data = Data::new(self.seed);
        // The metadata, then each tensor with its data, in the order `write_file` streams
        // them (so both give the same bytes).
        let mut w = self.declared(&[]);
        for s in &specs {
            let mut bytes = Vec::new();
            data.generate(s, &mut |piece| {
                bytes.extend_from_slice(piece);
                Ok(())
            })
            .expect("writing to memory");
            w.tensor(&s.name, s.gguf_dims(), s.ty, bytes);
        }
        w
    }

    /// Writes the model to `path` without holding it in memory (a synthetic 8B model is
    /// several gigabytes), with empty merges and the default pre-tokenizer so that loading it
    /// logs nothing. `progress` gets (bytes written, bytes in all) after each tensor. The file
    /// is written to a temporary name, synced and renamed.
    pub fn write_file(
        &self,
        path: &std::path::Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> crate::Result<()> {
        use std::io::Write;
        let specs = self.specs();
        let mut w = self.declared(&specs);
        w.set("tokenizer.ggml.merges", Value::Array(Vec::new()))
            .set("tokenizer.ggml.pre", "default".into());
        let total: u64 = w.tensor_bytes().sum();
        let mut done = 0;
        let mut data = Data::new(self.seed);
        let mut file = crate::files::AtomicFile::create(path)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut file);
        w.write_to(&mut out, &mut |i, out| {
            data.generate(&specs[i], &mut |piece| {
                done += piece.len() as u64;
                out.write_all(piece)
            })?;
            progress(done, total);
            Ok(())
        })
        .and_then(|()| out.flush())
        .map_err(crate::Error::io("write", path))?;
        drop(out);
        file.commit()
    }

    /// Bytes of the tensors' data.
    pub fn weight_bytes(&self) -> u64 {
        self.specs().iter().map(Spec::bytes).sum()
    }

    /// Parameters (values in every tensor).
    pub fn parameters(&self) -> u64 {
        self.specs().iter().map(|s| s.dims[0] * s.dims[1]).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_chars_are_a_bijection_onto_256_distinct_chars() {
        let chars = byte_level_chars();
        let mut sorted = chars.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
        assert_eq!(chars[b'a' as usize], 'a');
        assert_eq!(chars[b' ' as usize], 'Ġ');
        assert_eq!(chars[b'\n' as usize], 'Ċ');
    }
}
