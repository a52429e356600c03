//! Incremental detokenization for streaming generated text.

use super::Tokenizer;
use crate::error::Result;

/// Streams text out of generated ids without ever emitting half a UTF-8 character: a token can
/// end in the middle of one (SentencePiece byte-fallback tokens `<0xE2><0x82><0xAC>`, or
/// byte-level BPE pieces that split an emoji), so the bytes of an incomplete trailing character
/// are held back until the token that completes it arrives.
///
/// Pieces are rendered like [`Tokenizer::decode`] with `skip_special = true` (control tokens
/// produce nothing), except that llama.cpp's optional `clean_spaces` post-pass, which needs to
/// see the following text, is not applied (it is off for SentencePiece models and for the
/// `smollm`, `qwen2` and similar pre-tokenizers). Bytes that can never become valid UTF-8 are
/// emitted as U+FFFD as soon as that is certain.
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    pending: Vec<u8>,
}

impl<'a> StreamDecoder<'a> {
    pub fn new(tok: &'a Tokenizer) -> Self {
        Self {
            tok,
            pending: Vec::new(),
        }
    }

    /// Adds one generated id and returns the text that is now complete (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.pending.extend_from_slice(self.tok.piece(id, false)?);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: the prefix was just validated.
                    out.push_str(std::str::from_utf8(&rest[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An invalid sequence: it will never complete.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &rest[valid + bad..];
                        }
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            rest = &rest[valid..];
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        Ok(out)
    }

    /// Whether bytes of an incomplete character are being held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Flushes whatever is held back (an incomplete character becomes U+FFFD).
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}
