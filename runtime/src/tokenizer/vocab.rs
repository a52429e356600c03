//! The vocabulary in compact form: every token's text in one string, and every token's decoded
//! bytes in one buffer, each with an end offset per id; lookups by text go through an index of
//! ids sorted by text. A 262k-entry vocabulary (Gemma 3) costs about its text plus 12 bytes a
//! token, where a `Vec<String>` and a `HashMap<String, u32>` of it cost over 100 bytes a token.

/// Byte strings by id, in one buffer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Strings {
    bytes: Vec<u8>,
    /// `ends[i]`: where string `i` ends in `bytes` (it starts where `i - 1` ends).
    ends: Vec<u32>,
}

impl Strings {
    pub fn with_capacity(n: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(n),
        }
    }

    /// Appends string `len()`. Panics past 4 GiB of text, which no vocabulary approaches (the
    /// GGUF reader bounds it by the file first).
    pub fn push(&mut self, s: &[u8]) {
        self.bytes.extend_from_slice(s);
        self.ends
            .push(u32::try_from(self.bytes.len()).expect("vocabulary text under 4 GiB"));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.bytes[start..end])
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> u64 {
        (self.bytes.capacity() + 4 * self.ends.capacity()) as u64
    }
}

/// Token texts by id, and ids by text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Vocab {
    texts: Strings,
    /// Ids sorted by text (for binary search).
    sorted: Vec<u32>,
}

impl Vocab {
    pub fn new<'a>(tokens: impl ExactSizeIterator<Item = &'a str> + Clone) -> Self {
        let total: usize = tokens.clone().map(str::len).sum();
        let mut texts = Strings::with_capacity(tokens.len(), total);
        for t in tokens {
            texts.push(t.as_bytes());
        }
        let mut sorted: Vec<u32> = (0..texts.len() as u32).collect();
        sorted.sort_by(|&a, &b| texts.get(a as usize).cmp(&texts.get(b as usize)));
        Self { texts, sorted }
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// The text of token `id`.
    pub fn text(&self, id: u32) -> Option<&str> {
        // Built from `&str`s, so every entry is UTF-8.
        self.texts
            .get(id as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The id of the token whose text is `text` (the highest, should two share it, as
    /// llama.cpp's `token_to_id` map keeps the last one written).
    pub fn id(&self, text: &str) -> Option<u32> {
        let text = text.as_bytes();
        let i = self
            .sorted
            .partition_point(|&id| self.texts.get(id as usize).unwrap_or_default() <= text);
        let id = *self.sorted.get(i.checked_sub(1)?)?;
        (self.texts.get(id as usize)? == text).then_some(id)
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> u64 {
        self.texts.heap_bytes() + 4 * self.sorted.capacity() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_ids_round_trip() {
        let tokens = ["b", "a", "", "\u{2581}hi", "ab", "a"];
        let v = Vocab::new(tokens.iter().copied());
        assert_eq!(v.len(), 6);
        for (i, t) in tokens.iter().enumerate() {
            assert_eq!(v.text(i as u32), Some(*t));
        }
        assert_eq!(v.id("ab"), Some(4));
        assert_eq!(v.id("\u{2581}hi"), Some(3));
        assert_eq!(v.id(""), Some(2));
        // A duplicate text finds the last id (the sort is stable).
        assert_eq!(v.id("a"), Some(5));
        assert_eq!(v.id("zz"), None);
        assert_eq!(v.text(6), None);
        assert!(v.heap_bytes() < 200);
    }
}
