//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`) on top of the `tokenizers` crate: the
//! pre-tokenizer regexes llama.cpp uses for each `tokenizer.ggml.pre`, GPT-2's byte-to-unicode
//! mapping, and the ranked merges from the GGUF.

use std::collections::HashMap;

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{SplitDelimiterBehavior, Tokenizer as HfTokenizer};

use crate::error::{Error, Result};

/// GPT-2's word regex (as in llama.cpp: without the trailing `|\s+`; the text that alternative
/// would match is never matched by the others, so it becomes its own piece either way).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's regex with the case-insensitive contractions spelled out (as llama.cpp does).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a `tokenizer.ggml.pre` value pre-tokenizes and decodes.
pub(crate) struct PreConfig {
    /// Regexes applied one after the other, each splitting the pieces of the previous one
    /// (matches and the text between matches both become pieces), like llama.cpp's
    /// `unicode_regex_split`.
    pub regexes: Vec<&'static str>,
    /// Whether a whole pre-token that is in the vocabulary skips the merges.
    pub ignore_merges: bool,
    /// llama.cpp's `clean_spaces` (drops the space before `.,!?` etc. when detokenizing).
    pub clean_spaces: bool,
    /// Whether llama.cpp turns `add_bos` on for this pre-tokenizer before reading the GGUF flag.
    pub add_bos_default: bool,
}

/// The pre-tokenizer configuration for a `tokenizer.ggml.pre` value (llama.cpp's
/// `llm_tokenizer_bpe` constructor and `llama_vocab::impl::load`). Unknown values fall back to
/// llama.cpp's "default" with a warning (llama.cpp itself refuses them).
pub(crate) fn pre_config(pre: Option<&str>) -> PreConfig {
    let cfg =
        |regexes: Vec<&'static str>, ignore_merges, clean_spaces, add_bos_default| PreConfig {
            regexes,
            ignore_merges,
            clean_spaces,
            add_bos_default,
        };
    let default = || {
        cfg(
            vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
            false,
            true,
            false,
        )
    };
    let Some(pre) = pre else {
        log::warn!("GGUF has no tokenizer.ggml.pre; using llama.cpp's default pre-tokenizer");
        return default();
    };
    match pre {
        "default" => default(),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" => cfg(vec![LLAMA3], true, true, true),
        "dbrx" | "smaug-bpe" => cfg(vec![LLAMA3], false, true, false),
        "chatglm-bpe" | "glm4" => cfg(vec![LLAMA3], false, true, false),
        "qwen2" | "deepseek-r1-qwen" => cfg(vec![QWEN2], false, false, false),
        "stablelm2" | "hunyuan" => cfg(vec![QWEN2], false, pre == "stablelm2", false),
        "megrez" => cfg(vec![QWEN2], false, true, false),
        "smollm" => cfg(vec![r"\p{N}", GPT2], false, false, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" => {
            cfg(vec![r"\p{N}", GPT2], false, true, false)
        }
        "command-r" => cfg(vec![r"\p{N}", GPT2], false, false, false),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "mpt" | "olmo" | "jais" | "exaone4" | "roberta-bpe" | "jina-v1-en" | "jina-v2-code" => {
            cfg(vec![GPT2], false, true, false)
        }
        "trillion" | "granite-docling" => cfg(vec![GPT2], false, false, false),
        "falcon" => cfg(
            vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
            false,
            true,
            false,
        ),
        other => {
            log::warn!(
                "unknown tokenizer.ggml.pre `{other}`: falling back to llama.cpp's default \
                 pre-tokenizer; tokenization may differ from the model's training"
            );
            default()
        }
    }
}

/// GPT-2's reversible byte <-> printable character mapping: printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100 onwards, in byte order.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        *slot = if printable {
            char::from_u32(b as u32).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    table
}

/// The inverse of [`byte_to_char_table`].
pub(crate) fn char_to_byte_map() -> HashMap<char, u8> {
    byte_to_char_table()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

/// Builds the `tokenizers` pipeline for one raw-text fragment: no normalizer; the `pre`
/// regexes as isolated splits, then the byte-level mapping (no regex of its own, no prefix
/// space); the BPE model with the GGUF merges (rank = position in the list; ties by position in
/// the word, as in llama.cpp). Special tokens are not registered: they are split out before.
pub(crate) fn build<T: AsRef<str>>(
    tokens: &[T],
    merges: &[&str],
    pre: &PreConfig,
) -> Result<HfTokenizer> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| Error::Tokenizer(e.to_string());
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_ref().to_string(), i as u32))
        .collect();
    let merges = merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // llama.cpp splits at the first space after the first byte.
            let pos = m
                .bytes()
                .skip(1)
                .position(|b| b == b' ')
                .map(|p| p + 1)
                .ok_or_else(|| Error::Tokenizer(format!("merge {i} `{m}` has no space")))?;
            Ok((m[..pos].to_string(), m[pos + 1..].to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(err)?;
    let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
    for re in &pre.regexes {
        let split = Split::new(
            SplitPattern::Regex(re.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(err)?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());
    let mut tk = HfTokenizer::new(bpe);
    tk.with_pre_tokenizer(Some(Sequence::new(steps)));
    Ok(tk)
}

/// Bytes the `tokenizers` BPE model holds for this vocabulary and these merges: its
/// `HashMap<String, u32>` vocabulary and reverse map (an owned string, a hash entry and
/// allocator overhead each, ~80 bytes beyond the text), and its merge map (~48 bytes a merge).
/// An estimate: the crate does not report its size; measured on SmolLM2 (49k tokens, 49k
/// merges) it is within 15% of the resident growth while building.
pub(crate) fn estimated_bytes<T: AsRef<str>>(tokens: &[T], merges: &[&str]) -> u64 {
    let text: u64 = tokens.iter().map(|t| t.as_ref().len() as u64).sum();
    2 * (text + 80 * tokens.len() as u64) + 48 * merges.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2s() {
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(char_to_byte_map().len(), 256);
    }

    #[test]
    fn unknown_pre_falls_back_to_default() {
        assert_eq!(pre_config(Some("no-such-pre")).regexes.len(), 4);
        assert_eq!(pre_config(Some("smollm")).regexes, vec![r"\p{N}", GPT2]);
    }
}
