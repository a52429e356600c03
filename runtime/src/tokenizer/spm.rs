//! SentencePiece-style BPE (`tokenizer.ggml.model = "llama"`), written by hand to match
//! llama.cpp's `llm_tokenizer_spm` exactly.
//!
//! Why not a `tokenizers` BPE model with merges derived from the scores (what Hugging Face's
//! SentencePiece converter does)? llama.cpp does not use a merge list at all: starting from the
//! UTF-8 characters of a fragment, it repeatedly joins the adjacent pair whose concatenation is a
//! vocabulary entry with the highest score, breaking score ties by the leftmost position, and
//! falls back to `<0xXX>` byte tokens for a character that never became a vocabulary entry. A
//! derived merge list ranks every (left, right) split of a piece separately, so the two disagree
//! whenever ties are broken differently; and deriving merges for a 262k vocabulary costs load
//! time for nothing. The algorithm itself is forty lines, so it lives here.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;

/// What the SPM algorithm needs beside the vocabulary's text -> id lookup.
pub(crate) struct SpmModel {
    pub scores: Vec<f32>,
    /// `<0xXX>` token for each byte (or the byte itself as a one-character token).
    pub byte_tokens: [Option<u32>; 256],
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl SpmModel {
    pub fn new(vocab: &Vocab, scores: Vec<f32>) -> Self {
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = vocab.id(&format!("<0x{b:02X}>")).or_else(|| {
                char::from_u32(b as u32)
                    .filter(|_| b < 0x80)
                    .and_then(|c| vocab.id(c.to_string().as_str()))
            });
        }
        Self {
            scores,
            byte_tokens,
        }
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> u64 {
        4 * self.scores.capacity() as u64
    }

    /// Tokenizes one text fragment whose spaces were already escaped to U+2581.
    pub fn tokenize(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        let n_chars = text.chars().count();
        for (i, (start, c)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: (i + 1 < n_chars).then_some(i + 1),
            });
        }
        let mut queue = BinaryHeap::new();
        let try_add = |symbols: &[Symbol],
                       queue: &mut BinaryHeap<Bigram>,
                       l: Option<usize>,
                       r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (a, b) = (symbols[l], symbols[r]);
            let piece = &text[a.start..a.start + a.len + b.len];
            if let Some(id) = vocab.id(piece) {
                queue.push(Bigram {
                    score: self.scores[id as usize],
                    left: l,
                    right: r,
                    size: piece.len(),
                });
            }
        };
        for i in 1..symbols.len() {
            try_add(&symbols, &mut queue, Some(i - 1), Some(i));
        }
        while let Some(bg) = queue.pop() {
            let (l, r) = (symbols[bg.left], symbols[bg.right]);
            // Stale: one side was merged away or grew since this pair was queued.
            if l.len == 0 || r.len == 0 || l.len + r.len != bg.size {
                continue;
            }
            symbols[bg.left].len += r.len;
            symbols[bg.right].len = 0;
            symbols[bg.left].next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(bg.left);
            }
            try_add(&symbols, &mut queue, symbols[bg.left].prev, Some(bg.left));
            try_add(&symbols, &mut queue, Some(bg.left), symbols[bg.left].next);
        }
        // Every merged symbol is a vocabulary entry by construction, so llama.cpp's
        // re-segmentation of unknown merged symbols never triggers; what is left to handle is a
        // single character that is not in the vocabulary: its UTF-8 bytes as byte tokens.
        let mut i = if symbols.is_empty() { None } else { Some(0) };
        while let Some(k) = i {
            let s = symbols[k];
            let piece = &text[s.start..s.start + s.len];
            match vocab.id(piece) {
                Some(id) => out.push(id),
                None => out.extend(piece.bytes().filter_map(|b| self.byte_tokens[b as usize])),
            }
            i = s.next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(v: &[(&str, f32)]) -> (SpmModel, Vocab) {
        let mut tokens: Vec<String> = v.iter().map(|(t, _)| t.to_string()).collect();
        let mut scores: Vec<f32> = v.iter().map(|(_, s)| *s).collect();
        for b in 0..256 {
            tokens.push(format!("<0x{b:02X}>"));
            scores.push(0.0);
        }
        let vocab = Vocab::new(tokens.iter().map(String::as_str));
        (SpmModel::new(&vocab, scores), vocab)
    }

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        let (m, vocab) = model(&[
            ("a", -1.0),
            ("b", -1.0),
            ("ab", -2.0),
            ("bc", -1.5),
            ("c", -1.0),
            ("abc", -3.0),
        ]);
        let mut out = vec![];
        // "bc" scores higher than "ab", so a + bc; "abc" is then reachable from (a, bc).
        m.tokenize(&vocab, "abc", &mut out);
        assert_eq!(out, vec![5]);
        out.clear();
        m.tokenize(&vocab, "a€", &mut out);
        let b = |x: u32| 6 + x;
        assert_eq!(out, vec![0, b(0xE2), b(0x82), b(0xAC)]);
    }
}
