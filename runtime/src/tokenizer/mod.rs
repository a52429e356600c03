//! The tokenizer, built from GGUF metadata so that it reproduces llama.cpp's token ids exactly,
//! plus incremental (streaming) decoding and chat templates.
//!
//! How a prompt becomes ids (llama.cpp's `llama_vocab::impl::tokenize`):
//! 1. special tokens written in the text (CONTROL, USER_DEFINED and UNKNOWN vocabulary entries,
//!    e.g. `<|im_start|>`, `<start_of_turn>`, Gemma's `"\n\n"` and multi-space tokens) are split
//!    out first, longest first ([`special::SpecialMatcher`]);
//! 2. every remaining text fragment goes through the model:
//!    - `gpt2` (byte-level BPE): a `tokenizers::Tokenizer` with the `tokenizer.ggml.pre` regexes,
//!      the GPT-2 byte mapping and the GGUF merges ([`gpt2`]);
//!    - `llama` (SentencePiece BPE): spaces become U+2581 (after a `' '` prefix when
//!      `add_space_prefix` and the fragment follows a special or starts the text), then
//!      llama.cpp's score-driven merge with byte fallback, written by hand ([`spm`]);
//! 3. BOS/EOS are added per `tokenizer.ggml.add_bos_token` / `add_eos_token` when asked.
//!
//! Decoding follows llama.cpp's `llama_detokenize` (piece per token, optional space clean-up).

pub mod chat;
mod gpt2;
mod special;
mod spm;
mod stream;
mod vocab;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

pub use chat::{ChatMessage, ChatTemplate};
pub use stream::StreamDecoder;

use crate::error::{Error, Result};
use crate::gguf::Metadata;
use special::{attr, Fragment, SpecialMatcher};
use vocab::{Strings, Vocab};

/// Which tokenizer algorithm the model uses (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// `gpt2`: byte-level BPE with ranked merges.
    Gpt2Bpe,
    /// `llama`: SentencePiece-style BPE driven by token scores, with byte fallback.
    SentencePieceBpe,
}

impl fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenizerKind::Gpt2Bpe => "byte-level BPE (gpt2)",
            TokenizerKind::SentencePieceBpe => "SentencePiece BPE (llama)",
        })
    }
}

enum Engine {
    Bpe {
        hf: Box<tokenizers::Tokenizer>,
        /// GPT-2 printable character -> byte, for decoding.
        char_to_byte: HashMap<char, u8>,
    },
    Spm(Box<spm::SpmModel>),
}

/// A tokenizer reproducing llama.cpp's for the same GGUF.
pub struct Tokenizer {
    kind: TokenizerKind,
    engine: Engine,
    tokens: Vocab,
    attrs: Vec<u8>,
    specials: SpecialMatcher,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    eog: Vec<u32>,
    /// Decoded bytes of every token with specials rendered (llama.cpp's piece cache).
    pieces: Strings,
    /// Estimated bytes of the `tokenizers` BPE pipeline (byte-level BPE models only).
    bpe_bytes: u64,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("vocab_size", &self.tokens.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("eog", &self.eog)
            .finish_non_exhaustive()
    }
}

fn opt_token_id(md: &Metadata, key: &str, n: usize) -> Result<Option<u32>> {
    Ok(match md.opt_u32(key)? {
        Some(id) if (id as usize) < n => Some(id),
        Some(id) => {
            log::warn!("{key} = {id} is outside the {n}-token vocabulary; ignoring it");
            None
        }
        None => None,
    })
}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata.
    pub fn from_metadata(md: &Metadata) -> Result<Self> {
        let model = md.str("tokenizer.ggml.model")?;
        let kind = match model {
            "gpt2" => TokenizerKind::Gpt2Bpe,
            "llama" => TokenizerKind::SentencePieceBpe,
            other => {
                return Err(Error::UnsupportedModel(format!(
                    "unsupported tokenizer.ggml.model `{other}` (supported: gpt2, llama)"
                )))
            }
        };
        // Slices of the mapped file; only empty entries get a name of their own.
        let tokens: Vec<Cow<'_, str>> = md
            .str_array("tokenizer.ggml.tokens")?
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                if t.is_empty() {
                    Cow::Owned(format!("[EMPTY_{i}]"))
                } else {
                    Cow::Borrowed(t)
                }
            })
            .collect();
        let n = tokens.len();
        if n == 0 {
            return Err(Error::Tokenizer("the vocabulary is empty".into()));
        }
        let mut attrs = match md.opt_i64_array("tokenizer.ggml.token_type")? {
            Some(types) if types.len() >= n => types[..n]
                .iter()
                .map(|&t| special::attr_from_type(t))
                .collect(),
            Some(types) => {
                return Err(Error::Metadata {
                    key: "tokenizer.ggml.token_type".into(),
                    why: format!("{} entries for {n} tokens", types.len()),
                })
            }
            None => vec![attr::NORMAL; n],
        };

        let vocab = Vocab::new(tokens.iter().map(|t| t.as_ref()));
        let pre_name = md.opt_str("tokenizer.ggml.pre")?;
        let mut bpe_bytes = 0;
        let (engine, mut add_bos, add_space_prefix_default, clean_spaces, default_ids) = match kind
        {
            TokenizerKind::Gpt2Bpe => {
                let pre = gpt2::pre_config(pre_name);
                let merges = md.str_array("tokenizer.ggml.merges")?;
                let hf = gpt2::build(&tokens, &merges, &pre)?;
                bpe_bytes = gpt2::estimated_bytes(&tokens, &merges);
                let engine = Engine::Bpe {
                    hf: Box::new(hf),
                    char_to_byte: gpt2::char_to_byte_map(),
                };
                (
                    engine,
                    pre.add_bos_default,
                    false,
                    pre.clean_spaces,
                    (11, 11),
                )
            }
            TokenizerKind::SentencePieceBpe => {
                let scores = match md.opt_f32_array("tokenizer.ggml.scores")? {
                    Some(s) if s.len() >= n => s[..n].to_vec(),
                    Some(s) => {
                        return Err(Error::Metadata {
                            key: "tokenizer.ggml.scores".into(),
                            why: format!("{} entries for {n} tokens", s.len()),
                        })
                    }
                    None => vec![0.0; n],
                };
                (
                    Engine::Spm(Box::new(spm::SpmModel::new(&vocab, scores))),
                    true,
                    true,
                    false,
                    (1, 2),
                )
            }
        };
        let in_range = |id: u32| ((id as usize) < n).then_some(id);
        let bos = match md.opt_u32("tokenizer.ggml.bos_token_id")? {
            Some(_) => opt_token_id(md, "tokenizer.ggml.bos_token_id", n)?,
            None => in_range(default_ids.0),
        };
        let eos = match md.opt_u32("tokenizer.ggml.eos_token_id")? {
            Some(_) => opt_token_id(md, "tokenizer.ggml.eos_token_id", n)?,
            None => in_range(default_ids.1),
        };
        if let Some(b) = md.opt_bool("tokenizer.ggml.add_bos_token")? {
            add_bos = b;
        }
        let add_eos = md
            .opt_bool("tokenizer.ggml.add_eos_token")?
            .unwrap_or(false);
        if add_bos && bos.is_none() {
            return Err(Error::Tokenizer(
                "add_bos_token is true but there is no BOS token".into(),
            ));
        }
        if add_eos && eos.is_none() {
            return Err(Error::Tokenizer(
                "add_eos_token is true but there is no EOS token".into(),
            ));
        }
        let add_space_prefix = md
            .opt_bool("tokenizer.ggml.add_space_prefix")?
            .unwrap_or(add_space_prefix_default);

        let ids = special::ExplicitIds {
            eos,
            eot: opt_token_id(md, "tokenizer.ggml.eot_token_id", n)?,
            eom: opt_token_id(md, "tokenizer.ggml.eom_token_id", n)?,
            fim_pad: opt_token_id(md, "tokenizer.ggml.fim_pad_token_id", n)?,
            fim_rep: opt_token_id(md, "tokenizer.ggml.fim_rep_token_id", n)?,
            fim_sep: opt_token_id(md, "tokenizer.ggml.fim_sep_token_id", n)?,
        };
        let eog = special::resolve_eog(&tokens, &mut attrs, ids);
        let specials = SpecialMatcher::new(&tokens, &attrs);

        drop(tokens);
        let mut tok = Self {
            kind,
            engine,
            tokens: vocab,
            attrs,
            specials,
            bos,
            eos,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
            eog,
            pieces: Strings::default(),
            bpe_bytes,
        };
        let mut pieces = Strings::with_capacity(n, tok.tokens.heap_bytes() as usize / 2);
        for id in 0..n as u32 {
            pieces.push(&tok.compute_piece(id));
        }
        tok.pieces = pieces;
        Ok(tok)
    }

    /// Ids the model sees for `text` as a raw prompt: BOS/EOS added per add_bos/add_eos when
    /// `add_special`; special tokens written in the text (e.g. `<|im_start|>`,
    /// `<start_of_turn>`) are recognised as specials (llama.cpp's `parse_special = true`).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        self.encode_with(text, add_special, true)
    }

    /// [`Tokenizer::encode`] with llama.cpp's `parse_special` made explicit: with `false`,
    /// control tokens written in the text are tokenized as plain text (perplexity over a
    /// document uses this, as llama.cpp's does).
    pub fn encode_with(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let mut prev_special = true;
        for frag in self.specials.partition(text, parse_special) {
            match frag {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(a, b) => {
                    let piece = &text[a..b];
                    match &self.engine {
                        Engine::Bpe { hf, .. } => {
                            let enc = hf
                                .encode(piece, false)
                                .map_err(|e| Error::Tokenizer(e.to_string()))?;
                            out.extend_from_slice(enc.get_ids());
                        }
                        Engine::Spm(m) => {
                            let mut s = String::with_capacity(piece.len() + 4);
                            if self.add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(piece);
                            m.tokenize(&self.tokens, &s.replace(' ', "\u{2581}"), &mut out);
                        }
                    }
                    prev_special = false;
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        Ok(out)
    }

    /// Text for `ids`, as llama.cpp's `llama_detokenize`: with `skip_special`, a leading BOS and
    /// (when the model adds one) a trailing EOS are dropped and control tokens render as nothing
    /// (`remove_special = true, unparse_special = false`); otherwise every token renders
    /// (`false, true`). Bytes that do not form valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids, skip_special)?).into_owned())
    }

    /// [`Tokenizer::decode`] before the UTF-8 conversion.
    pub fn decode_bytes(&self, ids: &[u32], skip_special: bool) -> Result<Vec<u8>> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if skip_special && self.add_bos && !ids.is_empty() && Some(ids[0]) == self.bos {
            remove_space = false;
            ids = &ids[1..];
        }
        if skip_special && self.add_eos && !ids.is_empty() && Some(ids[ids.len() - 1]) == self.eos {
            ids = &ids[..ids.len() - 1];
        }
        let mut out = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.piece(id, !skip_special)?;
            let piece = if i == 0 && remove_space {
                piece.strip_prefix(b" ").unwrap_or(piece)
            } else {
                piece
            };
            out.extend_from_slice(piece);
        }
        if self.clean_spaces {
            out = clean_spaces(&out);
        }
        Ok(out)
    }

    /// The bytes token `id` decodes to (llama.cpp's `token_to_piece` without lstrip): with
    /// `special` false, control and unknown tokens are empty.
    pub(crate) fn piece(&self, id: u32, special: bool) -> Result<&[u8]> {
        let a = *self.attrs.get(id as usize).ok_or_else(|| {
            Error::InvalidArgument(format!("token id {id} is outside the vocabulary"))
        })?;
        if !special && a & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return Ok(&[]);
        }
        Ok(self.pieces.get(id as usize).unwrap_or_default())
    }

    fn compute_piece(&self, id: u32) -> Vec<u8> {
        let a = self.attrs[id as usize];
        let text = self.tokens.text(id).unwrap_or_default();
        if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
            return text.as_bytes().to_vec();
        }
        if a & attr::NORMAL != 0 {
            return match &self.engine {
                Engine::Spm(_) => text.replace('\u{2581}', " ").into_bytes(),
                Engine::Bpe { char_to_byte, .. } => {
                    let mut v = Vec::with_capacity(text.len());
                    for c in text.chars() {
                        match char_to_byte.get(&c) {
                            Some(&b) => v.push(b),
                            // llama.cpp writes an "[UNK_BYTE_..]" marker here; a valid
                            // byte-level vocabulary never has such a character.
                            None => v.extend_from_slice(c.to_string().as_bytes()),
                        }
                    }
                    v
                }
            };
        }
        if a & attr::BYTE != 0 {
            if let Some(b) = text
                .strip_prefix("<0x")
                .and_then(|h| h.strip_suffix('>'))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                return vec![b];
            }
        }
        // Unused/undefined tokens render as nothing (llama.cpp suppresses them like controls).
        Vec::new()
    }

    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether `encode(_, true)` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// End-of-generation ids, sorted: EOS, EOT, `<|im_end|>`, `<end_of_turn>`, ... exactly the
    /// set llama.cpp's `llama_vocab_is_eog` accepts.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// Whether `id` is a control token (never shown to a user).
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|a| a & attr::CONTROL != 0)
    }

    /// The vocabulary entry of `id`, as stored in the GGUF.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.text(id)
    }

    /// Bytes the tokenizer holds in memory: the vocabulary's texts and index, the decoded
    /// pieces, the attributes and (SentencePiece) the scores. For byte-level BPE models, the
    /// `tokenizers` pipeline's own tables are estimated from the vocabulary and merges
    /// (hash maps of owned strings, ~100 bytes an entry).
    pub fn heap_bytes(&self) -> u64 {
        let own =
            self.tokens.heap_bytes() + self.pieces.heap_bytes() + self.attrs.capacity() as u64;
        let engine = match &self.engine {
            Engine::Spm(m) => m.heap_bytes(),
            Engine::Bpe { .. } => self.bpe_bytes,
        };
        own + engine + self.specials.heap_bytes()
    }
}

/// llama.cpp's `clean_spaces` passes over detokenized bytes: drop the space before `?!.,`,
/// around a lone `'`, and before `'s`, `'m`, `'re`, `'ve`.
fn clean_spaces(text: &[u8]) -> Vec<u8> {
    let pass1: Vec<u8> = {
        let mut out: Vec<u8> = Vec::with_capacity(text.len());
        for (i, &x) in text.iter().enumerate() {
            if i > 0 && text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
                out.pop();
            }
            out.push(x);
        }
        out
    };
    // In place, as llama.cpp does it: the space after a lone `'` is overwritten with NUL
    // before being skipped, which the next iteration then sees as its previous byte.
    let pass2: Vec<u8> = {
        let mut t = pass1;
        let n = t.len();
        let mut total = usize::from(n > 0);
        let mut i = 1;
        while i < n {
            let x = t[i];
            if x == b'\'' && i + 1 < n && t[i - 1] == b' ' && t[i + 1] == b' ' {
                total -= 1;
                i += 1;
                t[i] = 0;
            }
            t[total] = x;
            total += 1;
            i += 1;
        }
        t.truncate(total);
        t
    };
    let t = &pass2;
    let mut out: Vec<u8> = Vec::with_capacity(t.len());
    for (i, &x) in t.iter().enumerate() {
        if i > 0 && t[i - 1] == b' ' && x == b'\'' && i + 1 < t.len() {
            let x1 = t[i + 1];
            let x2 = t.get(i + 2).copied();
            let drop = matches!(x1, b's' | b'm')
                || (i + 2 < t.len() && matches!((x1, x2), (b'r', Some(b'e')) | (b'v', Some(b'e'))));
            if drop {
                out.pop();
            }
        }
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn md(v: Value) -> Metadata {
        Metadata::from_json(v)
    }

    /// A tiny SentencePiece vocabulary: controls, a user-defined "\n\n", words with scores and
    /// the 256 byte tokens.
    fn spm_md() -> Metadata {
        let mut tokens = vec!["<unk>", "<s>", "</s>", "\n\n"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        let mut types = vec![2, 3, 3, 4];
        let mut scores = vec![0.0, 0.0, 0.0, 0.0];
        for (t, sc) in [
            ("\u{2581}", -1.0),
            ("h", -2.0),
            ("i", -2.0),
            ("hi", -1.5),
            ("\u{2581}hi", -1.0),
        ] {
            tokens.push(t.to_string());
            types.push(1);
            scores.push(sc);
        }
        for b in 0..256 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
            scores.push(0.0);
        }
        md(json!({
            "general.architecture": "llama",
            "tokenizer.ggml.model": "llama",
            "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": types,
            "tokenizer.ggml.scores": scores,
            "tokenizer.ggml.bos_token_id": 1,
            "tokenizer.ggml.eos_token_id": 2,
        }))
    }

    #[test]
    fn spm_from_metadata_encodes_like_llama_cpp() {
        let tok = Tokenizer::from_metadata(&spm_md()).unwrap();
        assert_eq!(tok.kind(), TokenizerKind::SentencePieceBpe);
        assert!(tok.add_bos(), "SPM adds BOS by default");
        assert_eq!(tok.eog_ids(), &[2]);
        // add_space_prefix defaults to true for SPM: "hi" is encoded as "▁hi".
        assert_eq!(tok.encode("hi", true).unwrap(), vec![1, 8]);
        // "€" is not in the vocabulary: byte fallback; "\n\n" is a user-defined special.
        let byte = |b: u32| 9 + b;
        assert_eq!(
            tok.encode("hi\n\n€", false).unwrap(),
            vec![8, 3, 4, byte(0xE2), byte(0x82), byte(0xAC)]
        );
        assert_eq!(tok.decode(&[1, 8, 3], true).unwrap(), " hi\n\n");
        assert_eq!(tok.decode(&[8, 3], true).unwrap(), "hi\n\n");
        assert_eq!(tok.decode(&[1, 8, 2], false).unwrap(), "<s> hi</s>");
    }

    #[test]
    fn gpt2_from_metadata_uses_merges_and_byte_level() {
        let table = gpt2::byte_to_char_table();
        let mut tokens: Vec<String> = vec!["<|endoftext|>".into()];
        tokens.extend(table.iter().map(|c| c.to_string()));
        tokens.extend(["he", "hel", "hell", "hello", "\u{120}w"].map(String::from));
        let mut types = vec![1; tokens.len()];
        types[0] = 3;
        let tok = Tokenizer::from_metadata(&md(json!({
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.pre": "some-new-pre",
            "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": types,
            "tokenizer.ggml.merges": ["h e", "he l", "hel l", "hell o", "\u{120} w"],
            "tokenizer.ggml.eos_token_id": 0,
        })))
        .unwrap();
        assert_eq!(tok.kind(), TokenizerKind::Gpt2Bpe);
        assert!(!tok.add_bos());
        let ids = tok.encode("hello w<|endoftext|>", true).unwrap();
        assert_eq!(ids, vec![260, 261, 0]);
        assert_eq!(tok.decode(&ids, true).unwrap(), "hello w");
        assert_eq!(tok.decode(&ids, false).unwrap(), "hello w<|endoftext|>");
    }

    #[test]
    fn unknown_tokenizer_model_is_an_error() {
        let err = Tokenizer::from_metadata(&md(json!({
            "tokenizer.ggml.model": "t5",
            "tokenizer.ggml.tokens": ["a"],
        })))
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("unsupported tokenizer.ggml.model `t5`"));
    }

    #[test]
    fn clean_spaces_matches_llama_cpp() {
        let c = |s: &str| String::from_utf8(clean_spaces(s.as_bytes())).unwrap();
        assert_eq!(c("Hello , world !"), "Hello, world!");
        assert_eq!(c("it 's a ' quote ' they 're"), "it's a'quote'they're");
        assert_eq!(c("a ' ' b"), "a'' b");
        assert_eq!(c("don 't"), "don 't");
    }
}
