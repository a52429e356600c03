//! The GGUF header, read in one bounded pass over the mapped bytes.
//!
//! Every count and length is checked against what remains of the file before it is believed,
//! strings must be UTF-8, value and tensor types must be known, so a hostile file costs at most
//! one linear pass over its own bytes and no allocation on its say-so. Scalars and strings are
//! decoded; arrays are not copied: the metadata keeps where each array starts in the file and
//! reads its elements from the map on request (a 262k-entry vocabulary stays the few MB of
//! bytes it is in the file, instead of a quarter million separate allocations).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::gguf::GgmlType;

/// A metadata value: scalars decoded, arrays located.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// `len` elements of value type `elem`, the first at byte `at` of the file.
    Array {
        elem: u32,
        len: u64,
        at: usize,
    },
}

/// A tensor info as the header states it (checked against the file by `GgufFile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset relative to the start of the tensor data.
    pub offset: u64,
}

/// What the header says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    pub version: u32,
    pub kv: BTreeMap<String, Entry>,
    pub tensors: Vec<RawTensor>,
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

/// Value type ids and what they are called, for messages.
pub(crate) fn type_name(ty: u32) -> &'static str {
    match ty {
        T_U8 => "u8",
        T_I8 => "i8",
        T_U16 => "u16",
        T_I16 => "i16",
        T_U32 => "u32",
        T_I32 => "i32",
        T_F32 => "f32",
        T_BOOL => "bool",
        T_STRING => "string",
        T_ARRAY => "array",
        T_U64 => "u64",
        T_I64 => "i64",
        T_F64 => "f64",
        _ => "unknown",
    }
}

/// Most dimensions a ggml tensor has.
pub const MAX_DIMS: u32 = 4;

/// Smallest encoding of one key/value pair: key length, an empty key, value type, one byte.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest encoding of one tensor info: name length, n_dims, one dim, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

pub(crate) struct Cursor<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
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

    pub fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub fn string(&mut self, what: &str) -> Result<&'a str> {
        let at = self.pos;
        let len = self.u64(what)?;
        let b = self.take(len, what)?;
        std::str::from_utf8(b)
            .map_err(|_| Error::Malformed(format!("{what} at byte {at} is not valid UTF-8")))
    }
}

pub(crate) fn fixed_size(ty: u32) -> Option<u64> {
    match ty {
        T_U8 | T_I8 | T_BOOL => Some(1),
        T_U16 | T_I16 => Some(2),
        T_U32 | T_I32 | T_F32 => Some(4),
        T_U64 | T_I64 | T_F64 => Some(8),
        _ => None,
    }
}

/// A scalar of fixed-size type `ty` from its little-endian bytes.
pub(crate) fn scalar(ty: u32, b: &[u8]) -> Entry {
    let le = |n: usize| {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(&b[..n]);
        u64::from_le_bytes(a)
    };
    match ty {
        T_U8 | T_U16 | T_U32 | T_U64 => Entry::Uint(le(b.len())),
        T_I8 => Entry::Int(i64::from(b[0] as i8)),
        T_I16 => Entry::Int(i64::from(le(2) as u16 as i16)),
        T_I32 => Entry::Int(i64::from(le(4) as u32 as i32)),
        T_I64 => Entry::Int(le(8) as i64),
        T_F32 => Entry::Float(f64::from(f32::from_bits(le(4) as u32))),
        T_F64 => Entry::Float(f64::from_bits(le(8))),
        _ => Entry::Bool(b[0] != 0),
    }
}

fn read_value(c: &mut Cursor<'_>, ty: u32, key: &str) -> Result<Entry> {
    if let Some(n) = fixed_size(ty) {
        let b = c.take(n, &format!("the value of `{key}`"))?;
        return Ok(scalar(ty, b));
    }
    match ty {
        T_STRING => Ok(Entry::Str(
            c.string(&format!("the string value of `{key}`"))?
                .to_string(),
        )),
        T_ARRAY => {
            let elem = c.u32(&format!("the array type of `{key}`"))?;
            let len = c.u64(&format!("the array length of `{key}`"))?;
            let at = c.pos;
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
            Ok(Entry::Array { elem, len, at })
        }
        _ => Err(Error::Malformed(format!(
            "`{key}` has unknown value type {ty}"
        ))),
    }
}

/// Reads and checks the header of `bytes` (the whole file).
pub(crate) fn read(bytes: &[u8]) -> Result<Header> {
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
    let mut kv = BTreeMap::new();
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key {i}"))?;
        let ty = c.u32(&format!("the type of `{key}`"))?;
        let value = read_value(&mut c, ty, key)?;
        if kv.insert(key.to_string(), value).is_some() {
            return Err(Error::Malformed(format!(
                "metadata key `{key}` appears twice"
            )));
        }
    }
    if n_tensors > c.remaining() / MIN_TENSOR_INFO_BYTES {
        return Err(Error::Malformed(format!(
            "header claims {n_tensors} tensors, more than the file can hold"
        )));
    }
    // Each info takes at least MIN_TENSOR_INFO_BYTES, so this reservation is bounded by the
    // file's size.
    let mut tensors = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name = c.string(&format!("the name of tensor {i}"))?;
        let n_dims = c.u32(&format!("the rank of `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(Error::Malformed(format!(
                "tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            )));
        }
        let mut n_elements: u64 = 1;
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            let dim = c.u64(&format!("dimension {d} of `{name}`"))?;
            dims.push(dim);
            n_elements = n_elements.checked_mul(dim).ok_or_else(|| {
                Error::Malformed(format!(
                    "tensor `{name}` has an element count that overflows"
                ))
            })?;
        }
        let ty_id = c.u32(&format!("the type of `{name}`"))?;
        let ty = GgmlType::from_id(ty_id).ok_or_else(|| {
            Error::UnsupportedModel(format!("tensor `{name}` has unknown type id {ty_id}"))
        })?;
        let offset = c.u64(&format!("the offset of `{name}`"))?;
        tensors.push(RawTensor {
            name: name.to_string(),
            dims,
            ty,
            offset,
        });
    }
    Ok(Header {
        version,
        kv,
        tensors,
        header_end: c.pos as u64,
    })
}
