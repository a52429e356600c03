//! Token attributes, end-of-generation ids, and splitting special tokens out of raw text, all
//! following llama.cpp's `llama-vocab.cpp` so that token ids match it exactly.

use std::collections::{HashMap, HashSet};

/// Per-token attribute bits (llama.cpp's `llama_token_attr`).
pub(crate) mod attr {
    pub const UNKNOWN: u8 = 1 << 0;
    pub const UNUSED: u8 = 1 << 1;
    pub const NORMAL: u8 = 1 << 2;
    pub const CONTROL: u8 = 1 << 3;
    pub const USER_DEFINED: u8 = 1 << 4;
    pub const BYTE: u8 = 1 << 5;
}

/// GGUF `tokenizer.ggml.token_type` value to attribute bits
/// (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; anything else undefined).
pub(crate) fn attr_from_type(t: i64) -> u8 {
    match t {
        1 => attr::NORMAL,
        2 => attr::UNKNOWN,
        3 => attr::CONTROL,
        4 => attr::USER_DEFINED,
        5 => attr::UNUSED,
        6 => attr::BYTE,
        _ => 0,
    }
}

/// Texts llama.cpp auto-detects as the end-of-turn token when the GGUF has no `eot_token_id`.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts that llama.cpp always treats as end-of-generation.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Explicit special-token ids from the GGUF metadata (already range-checked).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ExplicitIds {
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// Computes llama.cpp's end-of-generation set and applies the attribute overrides it makes on
/// the way (a token llama.cpp treats as EOT/EOG is forced to CONTROL; gpt-oss channel tokens
/// become USER_DEFINED; `<|end|>` and `</s>` are dropped from EOG in the two known tokenizers
/// where they are not terminators). Returns the sorted EOG ids.
pub(crate) fn resolve_eog<T: AsRef<str>>(
    tokens: &[T],
    attrs: &mut [u8],
    ids: ExplicitIds,
) -> Vec<u32> {
    let find_first = |texts: &[&str]| -> Option<u32> {
        // llama.cpp walks an unordered map and keeps the first hit; with several candidates
        // present the choice is arbitrary there too. All of them end generation anyway.
        texts.iter().find_map(|t| {
            tokens
                .iter()
                .position(|x| x.as_ref() == *t)
                .map(|i| i as u32)
        })
    };
    let find_all = |texts: &[&str]| -> Vec<u32> {
        let set: HashSet<&str> = texts.iter().copied().collect();
        tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| set.contains(t.as_ref()))
            .map(|(i, _)| i as u32)
            .collect()
    };

    let eot = ids.eot.or_else(|| find_first(EOT_TEXTS));
    if ids.eot.is_none() {
        if let Some(e) = eot {
            attrs[e as usize] |= attr::CONTROL;
        }
    }
    let eom = ids.eom.or_else(|| find_first(&["<|eom_id|>"]));
    if ids.eom.is_none() {
        if let Some(e) = eom {
            attrs[e as usize] |= attr::CONTROL;
        }
    }
    let mut fim = Vec::new();
    for (explicit, texts) in [
        (ids.fim_pad, FIM_PAD_TEXTS),
        (ids.fim_rep, FIM_REP_TEXTS),
        (ids.fim_sep, FIM_SEP_TEXTS),
    ] {
        let id = explicit.or_else(|| find_first(texts));
        if explicit.is_none() {
            if let Some(i) = id {
                attrs[i as usize] |= attr::CONTROL;
            }
        }
        fim.extend(id);
    }

    // "unused" control tokens get the UNUSED bit (kept special; they just never render).
    for (i, t) in tokens.iter().enumerate() {
        if attrs[i] & attr::CONTROL != 0 && t.as_ref().contains("unused") {
            attrs[i] |= attr::UNUSED;
        }
    }

    let mut eog: HashSet<u32> = fim.into_iter().collect();
    for id in find_all(EOG_TEXTS) {
        eog.insert(id);
        attrs[id as usize] |= attr::CONTROL;
    }
    for (i, t) in tokens.iter().enumerate() {
        if matches!(
            t.as_ref(),
            "<|channel|>" | "<|message|>" | "<|start|>" | "<|constrain|>"
        ) {
            attrs[i] = attr::USER_DEFINED;
        }
    }
    eog.extend(ids.eos);
    eog.extend(eot);
    eog.extend(eom);

    let text_of = |id: u32| tokens.get(id as usize).map(AsRef::as_ref);
    let has = |eog: &HashSet<u32>, t: &str| eog.iter().any(|&i| text_of(i) == Some(t));
    let (has_return, has_call, has_flush) = (
        has(&eog, "<|return|>"),
        has(&eog, "<|call|>") || has(&eog, "<|calls|>"),
        has(&eog, "<|flush|>"),
    );
    if let Some(end) = eog.iter().copied().find(|&i| text_of(i) == Some("<|end|>")) {
        if has_call && (has_return || has_flush) {
            eog.remove(&end);
            attrs[end as usize] = attr::USER_DEFINED;
        }
    }
    if has(&eog, "<|tool_response>") {
        if let Some(s) = eog.iter().copied().find(|&i| text_of(i) == Some("</s>")) {
            eog.remove(&s);
            attrs[s as usize] = attr::NORMAL;
        }
    }

    let mut v: Vec<u32> = eog.into_iter().collect();
    v.sort_unstable();
    v
}

/// A piece of the input after special tokens were split out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// A byte range of the input to run through the tokenizer model.
    Text(usize, usize),
    /// A special token written literally in the text.
    Token(u32),
}

/// Finds special tokens written in raw text the way llama.cpp's `tokenizer_st_partition` does
/// (with `parse_special = true`): every CONTROL, USER_DEFINED and UNKNOWN token is a special;
/// specials are tried longest first, and each one splits every remaining text fragment at all
/// of its non-overlapping occurrences, left to right.
///
/// That is not the "leftmost-longest" rule of `tokenizers`' added-token matcher (a longer special
/// later in the text wins over a shorter one that starts earlier and overlaps it), which is one
/// reason this is done here rather than with `tokenizers` added tokens.
pub(crate) struct SpecialMatcher {
    /// Special token texts and their ids.
    by_text: HashMap<String, u32>,
    /// Distinct byte lengths of special texts, longest first.
    lengths: Vec<usize>,
    /// Whether a byte can start some special token.
    first_byte: [bool; 256],
    /// Ids of the USER_DEFINED specials: the only ones matched without `parse_special`.
    user_defined: HashSet<u32>,
}

impl SpecialMatcher {
    pub fn new<T: AsRef<str>>(tokens: &[T], attrs: &[u8]) -> Self {
        let mut by_text = HashMap::new();
        let mut first_byte = [false; 256];
        let mut lengths = Vec::new();
        let mut user_defined = HashSet::new();
        for (i, t) in tokens.iter().enumerate() {
            let t = t.as_ref();
            if attrs[i] & attr::USER_DEFINED != 0 && attrs[i] & (attr::CONTROL | attr::UNKNOWN) == 0
            {
                user_defined.insert(i as u32);
            }
            if attrs[i] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0 && !t.is_empty()
            {
                // Duplicate texts cannot happen (llama.cpp rejects such vocabularies).
                by_text.entry(t.to_string()).or_insert(i as u32);
                first_byte[t.as_bytes()[0] as usize] = true;
                lengths.push(t.len());
            }
        }
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        Self {
            by_text,
            lengths,
            first_byte,
            user_defined,
        }
    }

    /// Bytes held (hash entries estimated at 48 bytes beyond the text).
    pub fn heap_bytes(&self) -> u64 {
        let texts: u64 = self.by_text.keys().map(|t| t.len() as u64 + 48).sum();
        texts + 8 * self.lengths.capacity() as u64 + 16 * self.user_defined.len() as u64
    }

    /// Splits `text` into text fragments and special tokens. Without `parse_special`, control
    /// and unknown tokens written in the text stay text (llama.cpp's `parse_special = false`);
    /// user-defined tokens are split out either way, as llama.cpp does.
    pub fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        // Which specials occur at all? (Fragments are substrings of `text`, so no other special
        // can ever match.) One pass over the text instead of one search per special: Gemma has
        // ~6400 specials.
        let bytes = text.as_bytes();
        let mut present: Vec<(usize, u32, &str)> = Vec::new();
        let mut seen = HashSet::new();
        for (i, &b) in bytes.iter().enumerate() {
            if !self.first_byte[b as usize] || !text.is_char_boundary(i) {
                continue;
            }
            for &len in &self.lengths {
                if let Some(s) = text.get(i..i + len) {
                    if let Some(&id) = self.by_text.get(s) {
                        if !parse_special && !self.user_defined.contains(&id) {
                            continue;
                        }
                        if seen.insert(id) {
                            present.push((len, id, s));
                        }
                    }
                }
            }
        }
        let mut frags = vec![Fragment::Text(0, text.len())];
        if present.is_empty() {
            return frags;
        }
        // Longest first; llama.cpp's std::sort leaves equal lengths unordered, we use the id.
        present.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, id, special) in present {
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(start, end) = f else {
                    next.push(f);
                    continue;
                };
                let mut pos = start;
                for (off, m) in text[start..end].match_indices(special) {
                    let at = start + off;
                    if at > pos {
                        next.push(Fragment::Text(pos, at));
                    }
                    next.push(Fragment::Token(id));
                    pos = at + m.len();
                }
                if pos < end {
                    next.push(Fragment::Text(pos, end));
                }
            }
            frags = next;
        }
        frags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(items: &[(&str, u8)]) -> (Vec<String>, Vec<u8>) {
        (
            items.iter().map(|(t, _)| t.to_string()).collect(),
            items.iter().map(|(_, a)| *a).collect(),
        )
    }

    #[test]
    fn longest_special_wins_even_if_it_starts_later() {
        let (t, a) = vocab(&[
            ("ab", attr::CONTROL),
            ("bcd", attr::USER_DEFINED),
            ("x", attr::NORMAL),
        ]);
        let m = SpecialMatcher::new(&t, &a);
        // "abcd": "bcd" (longer) is split out first, leaving "a".
        assert_eq!(
            m.partition("abcdab", true),
            vec![Fragment::Text(0, 1), Fragment::Token(1), Fragment::Token(0)]
        );
        assert_eq!(m.partition("xx", true), vec![Fragment::Text(0, 2)]);
        assert!(m.partition("", true).is_empty());
        // Without parse_special the control token "ab" stays text; "bcd" still splits.
        assert_eq!(
            m.partition("abcdab", false),
            vec![
                Fragment::Text(0, 1),
                Fragment::Token(1),
                Fragment::Text(4, 6)
            ]
        );
    }

    #[test]
    fn eog_follows_llama_cpp_rules() {
        let (t, mut a) = vocab(&[
            ("<|endoftext|>", attr::CONTROL),
            ("<|im_start|>", attr::CONTROL),
            ("<|im_end|>", attr::NORMAL),
            ("<reponame>", attr::CONTROL),
            ("hello", attr::NORMAL),
        ]);
        let eog = resolve_eog(
            &t,
            &mut a,
            ExplicitIds {
                eos: Some(0),
                ..Default::default()
            },
        );
        assert_eq!(eog, vec![0, 2, 3]);
        assert_ne!(a[2] & attr::CONTROL, 0, "EOG tokens are forced to control");
    }
}
