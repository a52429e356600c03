//! The memory file: a session's cache saved exactly as it is stored on the device (sinks, ring,
//! recent f16 copies and key means, already at 4 bits when the cache is q4), with its tokens,
//! the model's identity and the cache configuration, so that a conversation resumes without
//! re-reading it and continues bit for bit as it would have.
//!
//! Layout (little-endian):
//! ```text
//! magic "VOYAGER\x1aSESSION\0" (16 bytes)  format version u32  section count u32
//! sections: kind u32, reserved u32, payload length u64, SHA-256 of the payload (32 bytes),
//!           payload
//!   1 header   JSON: format, model identity, cache configuration, layer layouts, token count
//!   2 tokens   u32 per token
//!   3 layer    one per layer, in order: K's then V's bytes up to the last ring slot in use,
//!              then the key mean
//!   4 chat     JSON: the messages of a saved `Chat` (optional)
//! ```
//! Every length is checked against what the engine expects (and against the file's size)
//! before anything is allocated, every section against its checksum before it is used, and a
//! restore builds a new session, so a bad file changes nothing. Files are written through a
//! temporary file, fsynced and renamed.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::files::AtomicFile;
use crate::kv::{LayerLayout, SideLayout};

/// The file's first bytes.
pub const MAGIC: &[u8; 16] = b"VOYAGER\x1aSESSION\0";
/// The format this build writes and reads.
pub const VERSION: u32 = 1;

const HEADER: u32 = 1;
const TOKENS: u32 = 2;
const LAYER: u32 = 3;
const CHAT: u32 = 4;

/// Largest header or chat section read (they are JSON a person could read).
const MAX_JSON: u64 = 64 << 20;

fn bad(why: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("session file: {why}"))
}

/// Ranges (in words of the layer's buffer) a file holds for one layer after `n` positions were
/// written, for K then V: the sinks, the recent f16 copies in use (position `j` sits in slot
/// `j % recent`, so a prefix until they wrap), the recent slots' tags, the ring slots in use
/// (a prefix until the ring wraps) and the key mean. Slots not in use are zero in a fresh
/// session and never read before they are written, so they are not saved.
pub(crate) fn saved_ranges(l: &LayerLayout, n: u64) -> Vec<std::ops::Range<u64>> {
    let side = |s: &SideLayout, base: u64| {
        let region = |offset: u32, slots: u64, words: u32| {
            let start = base + u64::from(offset);
            start..start + slots * u64::from(words)
        };
        let recent = n.min(u64::from(s.recent.slots));
        let ring = n
            .saturating_sub(u64::from(l.policy.sinks))
            .min(u64::from(s.ring.slots));
        let mut r = vec![
            region(s.sinks.offset, u64::from(s.sinks.slots), s.sinks.words),
            region(s.recent.offset, recent, s.recent.words),
            region(s.tags.offset, u64::from(s.tags.slots), s.tags.words),
            region(s.ring.offset, ring, s.ring.words),
        ];
        if s.centered() {
            r.push(region(s.mean.offset, 1, s.mean.words));
        }
        r.retain(|r| !r.is_empty());
        r
    };
    let mut out = side(&l.k, 0);
    out.extend(side(&l.v, l.k.words()));
    if let Some(t) = l.table {
        // Under the importance policy slots are taken lowest-free-first, so the ring range
        // above covers every held slot; the table says which position each holds.
        let start = u64::from(t.offset);
        out.push(start..start + t.words());
    }
    out
}

/// Bytes one layer's section holds.
pub(crate) fn layer_section_bytes(l: &LayerLayout, n: u64) -> u64 {
    saved_ranges(l, n)
        .iter()
        .map(|r| 4 * (r.end - r.start))
        .sum()
}

/// A file being written: sections streamed, one by one, into the file's atomic replacement.
pub(crate) struct Writer {
    file: AtomicFile,
    sections: u32,
}

impl Writer {
    /// Starts `path`'s replacement next to it.
    pub fn create(path: &Path, sections: u32) -> Result<Self> {
        let mut file = AtomicFile::create(path)?;
        let mut head = MAGIC.to_vec();
        head.extend(VERSION.to_le_bytes());
        head.extend(sections.to_le_bytes());
        file.write_all(&head)?;
        Ok(Self { file, sections })
    }

    pub fn section(&mut self, kind: u32, payload: &[u8]) -> Result<()> {
        let mut head = Vec::with_capacity(48);
        head.extend(kind.to_le_bytes());
        head.extend(0u32.to_le_bytes());
        head.extend((payload.len() as u64).to_le_bytes());
        head.extend(Sha256::digest(payload));
        self.file.write_all(&head)?;
        self.file.write_all(payload)?;
        self.sections = self.sections.saturating_sub(1);
        Ok(())
    }

    /// Makes the file durable and puts it in place of the target.
    pub fn finish(self) -> Result<()> {
        if self.sections != 0 {
            return Err(Error::Gpu(format!(
                "session file: {} sections were announced but not written",
                self.sections
            )));
        }
        self.file.commit()
    }
}

pub(crate) fn header_kind() -> u32 {
    HEADER
}
pub(crate) fn tokens_kind() -> u32 {
    TOKENS
}
pub(crate) fn layer_kind() -> u32 {
    LAYER
}
pub(crate) fn chat_kind() -> u32 {
    CHAT
}

/// A file being read, section by section, each checked before it is handed out.
pub(crate) struct Reader<R> {
    r: R,
    /// Bytes left in the file after what was read so far.
    left: u64,
    sections: u32,
}

impl Reader<std::io::BufReader<std::fs::File>> {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(Error::io("open", path))?;
        let len = file.metadata().map_err(Error::io("open", path))?.len();
        Self::new(std::io::BufReader::new(file), len)
    }
}

impl<R: Read> Reader<R> {
    /// Checks the magic and version of a file of `len` bytes read from `r`.
    pub fn new(mut r: R, len: u64) -> Result<Self> {
        let mut head = [0u8; 24];
        if len < head.len() as u64 {
            return Err(bad("too short to be a Voyager session file"));
        }
        r.read_exact(&mut head)
            .map_err(|e| bad(format!("cannot read the header: {e}")))?;
        if &head[..16] != MAGIC {
            return Err(bad("not a Voyager session file (bad magic)"));
        }
        let version = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(bad(format!(
                "format version {version}; this build reads version {VERSION} (a newer Voyager \
                 wrote it?)"
            )));
        }
        let sections = u32::from_le_bytes(head[20..24].try_into().expect("4 bytes"));
        Ok(Self {
            r,
            left: len - head.len() as u64,
            sections,
        })
    }

    pub fn sections_left(&self) -> u32 {
        self.sections
    }

    /// Refuses bytes after the last section.
    pub fn finish(&self) -> Result<()> {
        if self.sections != 0 {
            return Err(bad("more sections than this format has"));
        }
        if self.left != 0 {
            return Err(bad(format!("{} bytes after the last section", self.left)));
        }
        Ok(())
    }

    /// The next section, which must be of `kind` and at most `max` bytes long (`exact`: of
    /// exactly `max`), checked against its checksum.
    pub fn section(&mut self, kind: u32, max: u64, exact: bool) -> Result<Vec<u8>> {
        self.section_of(&[kind], max, exact).map(|(_, p)| p)
    }

    /// [`Reader::section`] accepting any of `kinds`; returns the kind found with the payload.
    pub fn section_of(&mut self, kinds: &[u32], max: u64, exact: bool) -> Result<(u32, Vec<u8>)> {
        if self.sections == 0 {
            return Err(bad("the file ends before all its sections"));
        }
        let mut head = [0u8; 48];
        if self.left < 48 {
            return Err(bad("truncated (inside a section header)"));
        }
        self.r
            .read_exact(&mut head)
            .map_err(|e| bad(format!("cannot read a section header: {e}")))?;
        self.left -= 48;
        let got = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let reserved = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
        let len = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        if reserved != 0 {
            return Err(bad("a damaged section header (reserved bits set)"));
        }
        if !kinds.contains(&got) {
            return Err(bad(format!(
                "expected section {kinds:?}, found {got} (damaged or written by another version)"
            )));
        }
        if len > self.left {
            return Err(bad(format!(
                "truncated: a section of {len} bytes with {} left",
                self.left
            )));
        }
        if len > max || (exact && len != max) {
            return Err(bad(format!(
                "a section of {len} bytes where this engine expects {}{max}",
                if exact { "" } else { "at most " }
            )));
        }
        let mut payload = vec![0u8; len as usize];
        self.r
            .read_exact(&mut payload)
            .map_err(|e| bad(format!("cannot read a section: {e}")))?;
        self.left -= len;
        if Sha256::digest(&payload).as_slice() != &head[16..48] {
            return Err(bad(
                "a section does not match its checksum (the file is damaged)",
            ));
        }
        self.sections -= 1;
        Ok((got, payload))
    }

    /// The header section as JSON.
    pub fn header(&mut self) -> Result<serde_json::Value> {
        let bytes = self.section(HEADER, MAX_JSON, false)?;
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("unreadable header: {e}")))
    }

    /// The chat section as JSON.
    pub fn chat(&mut self) -> Result<serde_json::Value> {
        let bytes = self.section(CHAT, MAX_JSON, false)?;
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("unreadable chat: {e}")))
    }
}

/// Checks a whole file's structure (magic, version, every section's length and checksum)
/// without an engine: what the fuzz target and `voyager` tools run on untrusted bytes.
pub fn check_bytes(bytes: &[u8]) -> Result<serde_json::Value> {
    let mut r = Reader::new(bytes, bytes.len() as u64)?;
    let header = r.header()?;
    let n = header["tokens"]
        .as_u64()
        .ok_or_else(|| bad("the header has no token count"))?;
    if n.checked_mul(4).is_none_or(|b| b > r.left) {
        return Err(bad(format!("{n} tokens cannot fit in the file")));
    }
    r.section(TOKENS, 4 * n, true)?;
    while r.sections_left() > 0 {
        // Layer and chat sections: bounded by what is left of the file.
        let left = r.left;
        r.section_of(&[LAYER, CHAT], left, false)?;
    }
    r.finish()?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sections: &[(u32, &[u8])]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.vsession");
        let mut w = Writer::create(&path, sections.len() as u32).unwrap();
        for (k, p) in sections {
            w.section(*k, p).unwrap();
        }
        w.finish().unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn sections_round_trip_and_damage_is_refused() {
        let header = br#"{"tokens": 2}"#;
        let toks: Vec<u8> = [7u32, 9].iter().flat_map(|t| t.to_le_bytes()).collect();
        let good = file(&[(HEADER, header), (TOKENS, &toks), (LAYER, &[1, 2, 3, 4])]);
        let h = check_bytes(&good).unwrap();
        assert_eq!(h["tokens"], 2);
        // Every single flipped bit, truncation and appended byte is refused, never a panic.
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x10;
            assert!(check_bytes(&b).is_err(), "bit flip at {i} accepted");
            assert!(check_bytes(&good[..i]).is_err(), "cut at {i} accepted");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(check_bytes(&longer).is_err());
        let msg = check_bytes(b"GGUF and something else entirely").unwrap_err();
        assert!(
            msg.to_string().contains("not a Voyager session file"),
            "{msg}"
        );
        let mut future = good.clone();
        future[16] = 2;
        let msg = check_bytes(&future).unwrap_err().to_string();
        assert!(msg.contains("version 2"), "{msg}");
    }
}
