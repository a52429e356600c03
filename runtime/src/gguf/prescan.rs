//! A bounded structural walk over the GGUF header, run before anything is decoded.
//!
//! gguf-rs trusts the counts it reads and converts non-UTF-8 strings lossily. This walk reads the
//! header straight from the mapped bytes without allocating, and refuses a file whose counts or
//! lengths could not possibly fit in what remains of it, whose strings are not UTF-8, or whose
//! value and tensor types are unknown. Only a header that passes is handed to gguf-rs, so a
//! hostile file costs at most one linear pass over its own bytes.

use crate::error::{Error, Result};
use crate::gguf::GgmlType;

/// What the walk learned about the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderShape {
    pub version: u32,
    pub n_tensors: u64,
    pub n_kv: u64,
    /// Byte offset just past the last tensor info (before alignment padding).
    pub header_end: u64,
}

/// GGUF metadata value type ids.
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

/// Most dimensions a ggml tensor has.
pub const MAX_DIMS: u32 = 4;

/// Smallest encoding of one key/value pair: key length, an empty key, value type, one byte.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest encoding of one tensor info: name length, n_dims, one dim, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Malformed(format!(
                "file ends inside {what} at byte {} ({} bytes needed, {} left)",
                self.pos,
                n,
                self.remaining()
            )));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn string(&mut self, what: &str) -> Result<&'a str> {
        let at = self.pos;
        let len = self.u64(what)?;
        let b = self.take(len, what)?;
        std::str::from_utf8(b)
            .map_err(|_| Error::Malformed(format!("{what} at byte {at} is not valid UTF-8")))
    }
}

fn fixed_size(ty: u32) -> Option<u64> {
    match ty {
        T_U8 | T_I8 | T_BOOL => Some(1),
        T_U16 | T_I16 => Some(2),
        T_U32 | T_I32 | T_F32 => Some(4),
        T_U64 | T_I64 | T_F64 => Some(8),
        _ => None,
    }
}

fn skip_value(c: &mut Cursor<'_>, ty: u32, key: &str) -> Result<()> {
    if let Some(n) = fixed_size(ty) {
        c.take(n, &format!("the value of `{key}`"))?;
        return Ok(());
    }
    match ty {
        T_STRING => {
            c.string(&format!("the string value of `{key}`"))?;
        }
        T_ARRAY => {
            let elem = c.u32(&format!("the array type of `{key}`"))?;
            let len = c.u64(&format!("the array length of `{key}`"))?;
            if let Some(size) = fixed_size(elem) {
                let bytes = len.checked_mul(size).filter(|&b| b <= c.remaining());
                let Some(bytes) = bytes else {
                    return Err(Error::Malformed(format!(
                        "array `{key}` claims {len} elements, more than the file holds"
                    )));
                };
                c.take(bytes, &format!("the array `{key}`"))?;
            } else if elem == T_STRING {
                // Every string takes at least its 8-byte length.
                if len > c.remaining() / 8 {
                    return Err(Error::Malformed(format!(
                        "array `{key}` claims {len} strings, more than the file holds"
                    )));
                }
                for i in 0..len {
                    c.string(&format!("element {i} of `{key}`"))?;
                }
            } else if elem == T_ARRAY {
                return Err(Error::UnsupportedModel(format!(
                    "`{key}` is an array of arrays, which Voyager does not read"
                )));
            } else {
                return Err(Error::Malformed(format!(
                    "array `{key}` has unknown element type {elem}"
                )));
            }
        }
        _ => {
            return Err(Error::Malformed(format!(
                "`{key}` has unknown value type {ty}"
            )))
        }
    }
    Ok(())
}

/// Walks the header of `bytes` (the whole file) and checks its structure.
pub fn scan(bytes: &[u8]) -> Result<HeaderShape> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic = c
        .take(4, "the magic number")
        .map_err(|_| Error::NotGguf("file is shorter than the 4-byte magic".into()))?;
    if magic != b"GGUF" {
        return Err(Error::NotGguf(format!(
            "bad magic {:02x?} (expected \"GGUF\")",
            magic
        )));
    }
    let version = c.u32("the version")?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(Error::UnsupportedModel(
                "GGUF version 1 is obsolete: convert the model again with a current llama.cpp"
                    .into(),
            ))
        }
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(Error::UnsupportedModel(
                "big-endian GGUF files are not supported".into(),
            ))
        }
        v => {
            return Err(Error::UnsupportedModel(format!(
                "GGUF version {v} is not supported (2 or 3 are)"
            )))
        }
    }
    let n_tensors = c.u64("the tensor count")?;
    let n_kv = c.u64("the metadata count")?;
    if n_kv > c.remaining() / MIN_KV_BYTES {
        return Err(Error::Malformed(format!(
            "header claims {n_kv} metadata entries, more than the file can hold"
        )));
    }
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key {i}"))?;
        let ty = c.u32(&format!("the type of `{key}`"))?;
        skip_value(&mut c, ty, key)?;
    }
    if n_tensors > c.remaining() / MIN_TENSOR_INFO_BYTES {
        return Err(Error::Malformed(format!(
            "header claims {n_tensors} tensors, more than the file can hold"
        )));
    }
    for i in 0..n_tensors {
        let name = c.string(&format!("the name of tensor {i}"))?;
        let n_dims = c.u32(&format!("the rank of `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(Error::Malformed(format!(
                "tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            )));
        }
        let mut n_elements: u64 = 1;
        for d in 0..n_dims {
            let dim = c.u64(&format!("dimension {d} of `{name}`"))?;
            n_elements = n_elements.checked_mul(dim).ok_or_else(|| {
                Error::Malformed(format!(
                    "tensor `{name}` has an element count that overflows"
                ))
            })?;
        }
        let ty = c.u32(&format!("the type of `{name}`"))?;
        match GgmlType::from_id(ty) {
            None => {
                return Err(Error::UnsupportedModel(format!(
                    "tensor `{name}` has unknown type id {ty}"
                )))
            }
            // gguf-rs 0.1.8 predates these ids (it panics on 40); refuse them here.
            Some(t @ (GgmlType::NVFP4 | GgmlType::Q1_0)) => {
                return Err(Error::UnsupportedModel(format!(
                    "tensor `{name}` has type {t}, which Voyager cannot read yet"
                )))
            }
            Some(_) => {}
        }
        c.u64(&format!("the offset of `{name}`"))?;
    }
    Ok(HeaderShape {
        version,
        n_tensors,
        n_kv,
        header_end: c.pos as u64,
    })
}
