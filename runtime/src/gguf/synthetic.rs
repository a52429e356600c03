//! Synthetic models: valid GGUF files of a chosen llama shape with deterministic pseudo-random
//! weights and a byte-level vocabulary. Tests use tiny ones; benchmarks can use realistic shapes
//! where a real model cannot be carried.

use crate::gguf::writer::{GgufWriter, Value};
use crate::gguf::GgmlType;

/// The shape of a synthetic llama-architecture model.
#[derive(Debug, Clone)]
pub struct SyntheticLlama {
    pub n_layers: u32,
    pub n_embd: u32,
    pub n_ff: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub context_length: u32,
    pub seed: u64,
    /// Storage of the projection matrices (the token embedding and norms stay F32).
    pub weight_type: GgmlType,
}

impl Default for SyntheticLlama {
    /// A model small enough to build in microseconds.
    fn default() -> Self {
        Self {
            n_layers: 2,
            n_embd: 64,
            n_ff: 128,
            n_heads: 4,
            n_kv_heads: 2,
            context_length: 256,
            seed: 7,
            weight_type: GgmlType::F32,
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

/// The weights' bytes, drawn in a fixed order.
struct Data {
    floats: Rng,
    blocks: crate::rng::XorShift,
    ty: GgmlType,
}

impl Data {
    fn f32s(&mut self, n: u64) -> Vec<u8> {
        (0..n)
            .flat_map(|_| self.floats.next_f32().to_le_bytes())
            .collect()
    }

    /// `n` rows of `k` values in the weight type: random blocks with sane scales (zero bytes
    /// of the right size for a type whose block layout is not known here).
    fn matrix(&mut self, k: u64, n: u64) -> Vec<u8> {
        if self.ty == GgmlType::F32 {
            return self.f32s(k * n);
        }
        crate::quant::random::random_tensor(self.ty, (k * n) as usize, &mut self.blocks)
            .unwrap_or_else(|| vec![0; self.ty.row_bytes(k).map_or(0, |r| (r * n) as usize)])
    }
}

impl SyntheticLlama {
    /// Special tokens appended after the 256 byte tokens.
    pub const SPECIALS: [&'static str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

    pub fn vocab_size(&self) -> u32 {
        256 + Self::SPECIALS.len() as u32
    }

    /// The file as a writer, ready for [`GgufWriter::to_bytes`].
    pub fn build(&self) -> GgufWriter {
        let head_dim = self.n_embd / self.n_heads;
        let n_vocab = self.vocab_size();
        let mut w = GgufWriter::new();
        w.kv("general.architecture", "llama".into())
            .kv("general.name", "synthetic llama".into())
            .kv("general.alignment", Value::U32(32))
            .kv("llama.block_count", Value::U32(self.n_layers))
            .kv("llama.context_length", Value::U32(self.context_length))
            .kv("llama.embedding_length", Value::U32(self.n_embd))
            .kv("llama.feed_forward_length", Value::U32(self.n_ff))
            .kv("llama.attention.head_count", Value::U32(self.n_heads))
            .kv("llama.attention.head_count_kv", Value::U32(self.n_kv_heads))
            .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
            .kv("llama.rope.freq_base", Value::F32(10_000.0))
            .kv("llama.rope.dimension_count", Value::U32(head_dim))
            .kv("tokenizer.ggml.model", "gpt2".into())
            .kv("tokenizer.ggml.pre", "gpt2".into());
        let mut tokens: Vec<Value> = byte_level_chars()
            .into_iter()
            .map(|c| Value::Str(c.to_string()))
            .collect();
        let mut types = vec![Value::I32(1); 256];
        for s in Self::SPECIALS {
            tokens.push(s.into());
            types.push(Value::I32(3));
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

        let mut data = Data {
            floats: Rng(self.seed | 1),
            blocks: crate::rng::XorShift::new(self.seed),
            ty: self.weight_type,
        };
        let wt = self.weight_type;
        let (e, f, kv) = (
            self.n_embd as u64,
            self.n_ff as u64,
            (self.n_kv_heads * head_dim) as u64,
        );
        w.tensor(
            "token_embd.weight",
            &[e, n_vocab as u64],
            GgmlType::F32,
            data.f32s(e * n_vocab as u64),
        );
        w.tensor("output_norm.weight", &[e], GgmlType::F32, data.f32s(e));
        for l in 0..self.n_layers {
            let name = |t: &str| format!("blk.{l}.{t}.weight");
            w.tensor(&name("attn_norm"), &[e], GgmlType::F32, data.f32s(e));
            w.tensor(&name("attn_q"), &[e, e], wt, data.matrix(e, e));
            w.tensor(&name("attn_k"), &[e, kv], wt, data.matrix(e, kv));
            w.tensor(&name("attn_v"), &[e, kv], wt, data.matrix(e, kv));
            w.tensor(&name("attn_output"), &[e, e], wt, data.matrix(e, e));
            w.tensor(&name("ffn_norm"), &[e], GgmlType::F32, data.f32s(e));
            w.tensor(&name("ffn_gate"), &[e, f], wt, data.matrix(e, f));
            w.tensor(&name("ffn_up"), &[e, f], wt, data.matrix(e, f));
            w.tensor(&name("ffn_down"), &[f, e], wt, data.matrix(f, e));
        }
        w
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
