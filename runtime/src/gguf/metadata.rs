//! Typed access to GGUF key/value metadata.
//!
//! Scalars and strings were decoded by the header reader; arrays are read from the mapped file
//! when asked for (strings as `&str` slices of the map, numbers decoded on the fly), so the
//! metadata of a model costs a few small allocations, not one per vocabulary entry. "Missing"
//! and "present but of the wrong type" are distinct, named errors, so a caller never silently
//! reads a default from a malformed file.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::header::{fixed_size, scalar, type_name, Cursor, Entry};
use super::Source;
use crate::error::{Error, Result};

/// GGUF's string value type id.
const T_STRING: u32 = 8;

/// The metadata of one GGUF file.
pub struct Metadata {
    source: Arc<Source>,
    kv: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata")
            .field("keys", &self.kv.len())
            .finish_non_exhaustive()
    }
}

fn bad(key: &str, why: impl Into<String>) -> Error {
    Error::Metadata {
        key: key.to_string(),
        why: why.into(),
    }
}

fn kind(v: &Entry) -> String {
    match v {
        Entry::Uint(_) | Entry::Int(_) => "an integer".into(),
        Entry::Float(_) => "a float".into(),
        Entry::Bool(_) => "a bool".into(),
        Entry::Str(_) => "a string".into(),
        Entry::Array { elem, .. } => format!("an array of {}", type_name(*elem)),
    }
}

impl Metadata {
    pub(super) fn new(source: Arc<Source>, kv: BTreeMap<String, Entry>) -> Self {
        Self { source, kv }
    }

    /// A copy with the string `key` set to `value` (as llama.cpp's `--override-kv` does); the
    /// arrays still read from the same file.
    pub fn with_string(&self, key: &str, value: &str) -> Self {
        let mut kv = self.kv.clone();
        kv.insert(key.to_string(), Entry::Str(value.to_string()));
        Self {
            source: Arc::clone(&self.source),
            kv,
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.kv.contains_key(key)
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.kv.keys().map(String::as_str)
    }

    /// Bytes this metadata holds in memory (keys, scalars, strings; arrays stay in the file).
    pub fn heap_bytes(&self) -> u64 {
        self.kv
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Entry::Str(s) => s.capacity(),
                    _ => 0,
                };
                (k.capacity() + value + 64) as u64
            })
            .sum()
    }

    fn required<T>(&self, key: &str, v: Result<Option<T>>) -> Result<T> {
        v?.ok_or_else(|| bad(key, "missing"))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(Entry::Str(s)) => Ok(Some(s)),
            Some(v) => Err(bad(key, format!("expected a string, found {}", kind(v)))),
        }
    }

    pub fn str(&self, key: &str) -> Result<&str> {
        self.required(key, self.opt_str(key))
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(Entry::Uint(v)) => Ok(Some(*v)),
            Some(Entry::Int(v)) if *v >= 0 => Ok(Some(*v as u64)),
            Some(Entry::Int(v)) => {
                Err(bad(key, format!("expected an unsigned integer, found {v}")))
            }
            Some(v) => Err(bad(
                key,
                format!("expected an unsigned integer, found {}", kind(v)),
            )),
        }
    }

    pub fn u64(&self, key: &str) -> Result<u64> {
        self.required(key, self.opt_u64(key))
    }

    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.opt_u64(key)? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| bad(key, format!("{v} does not fit in 32 bits"))),
        }
    }

    pub fn u32(&self, key: &str) -> Result<u32> {
        self.required(key, self.opt_u32(key))
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(Entry::Float(f)) => Ok(Some(*f as f32)),
            Some(Entry::Uint(u)) => Ok(Some(*u as f32)),
            Some(Entry::Int(i)) => Ok(Some(*i as f32)),
            Some(v) => Err(bad(key, format!("expected a number, found {}", kind(v)))),
        }
    }

    pub fn f32(&self, key: &str) -> Result<f32> {
        self.required(key, self.opt_f32(key))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(Entry::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(bad(key, format!("expected a bool, found {}", kind(v)))),
        }
    }

    /// The array at `key` as (element type, length, first byte).
    fn opt_array(&self, key: &str) -> Result<Option<(u32, u64, usize)>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(Entry::Array { elem, len, at }) => Ok(Some((*elem, *len, *at))),
            Some(v) => Err(bad(key, format!("expected an array, found {}", kind(v)))),
        }
    }

    /// Length of the array at `key`, if present.
    pub fn array_len(&self, key: &str) -> Result<Option<usize>> {
        Ok(self.opt_array(key)?.map(|(_, len, _)| len as usize))
    }

    /// The strings of the array at `key`: slices of the mapped file, nothing copied.
    pub fn opt_str_array(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some((elem, len, at)) = self.opt_array(key)? else {
            return Ok(None);
        };
        // An empty array is empty whatever element type its writer declared.
        if elem != T_STRING && len > 0 {
            return Err(bad(
                key,
                format!(
                    "expected an array of strings, found an array of {}",
                    type_name(elem)
                ),
            ));
        }
        let mut c = Cursor {
            bytes: self.source.bytes(),
            pos: at,
        };
        // The header reader checked every string fits, so `len` is bounded by the file.
        let mut out = Vec::with_capacity(len as usize);
        for i in 0..len {
            out.push(c.string(&format!("element {i} of `{key}`"))?);
        }
        Ok(Some(out))
    }

    pub fn str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.required(key, self.opt_str_array(key))
    }

    /// The numbers of the array at `key`, decoded one by one.
    fn numbers(&self, key: &str) -> Result<Option<Vec<Entry>>> {
        let Some((elem, len, at)) = self.opt_array(key)? else {
            return Ok(None);
        };
        if len == 0 {
            return Ok(Some(Vec::new()));
        }
        let Some(size) = fixed_size(elem) else {
            return Err(bad(
                key,
                format!(
                    "expected an array of numbers, found an array of {}",
                    type_name(elem)
                ),
            ));
        };
        let size = size as usize;
        let bytes = &self.source.bytes()[at..at + size * len as usize];
        Ok(Some(
            bytes.chunks_exact(size).map(|b| scalar(elem, b)).collect(),
        ))
    }

    pub fn opt_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>> {
        let Some(values) = self.numbers(key)? else {
            return Ok(None);
        };
        values
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Entry::Float(f) => Ok(*f as f32),
                Entry::Uint(u) => Ok(*u as f32),
                Entry::Int(n) => Ok(*n as f32),
                v => Err(bad(
                    key,
                    format!("element {i} is {}, not a number", kind(v)),
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    pub fn opt_i64_array(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(values) = self.numbers(key)? else {
            return Ok(None);
        };
        values
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Entry::Int(n) => Ok(*n),
                Entry::Uint(u) => {
                    i64::try_from(*u).map_err(|_| bad(key, format!("element {i} is {u}")))
                }
                v => Err(bad(
                    key,
                    format!("element {i} is {}, not an integer", kind(v)),
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A per-layer count that GGUF stores either as one number or as an array with one entry
    /// per layer (Gemma-style heterogeneous models); always returns `n_layers` entries.
    pub fn per_layer_u32(&self, key: &str, n_layers: usize) -> Result<Option<Vec<u32>>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(Entry::Array { .. }) => {
                let v = self.opt_i64_array(key)?.unwrap_or_default();
                if v.len() != n_layers {
                    return Err(bad(
                        key,
                        format!("has {} entries for {n_layers} layers", v.len()),
                    ));
                }
                v.into_iter()
                    .map(|x| u32::try_from(x).map_err(|_| bad(key, format!("bad value {x}"))))
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            }
            Some(_) => Ok(Some(vec![self.u32(key)?; n_layers])),
        }
    }
}

#[cfg(test)]
impl Metadata {
    /// Metadata written from a JSON object through a real GGUF file (unit tests): integers
    /// become i32 (u32 when positive and named like an id or count), floats f32.
    pub(crate) fn from_json(v: serde_json::Value) -> Self {
        use crate::gguf::writer::{GgufWriter, Value};
        fn value(v: &serde_json::Value) -> Value {
            match v {
                serde_json::Value::Bool(b) => Value::Bool(*b),
                serde_json::Value::String(s) => Value::Str(s.clone()),
                serde_json::Value::Number(n) if n.is_f64() => {
                    Value::F32(n.as_f64().unwrap() as f32)
                }
                serde_json::Value::Number(n) => match n.as_u64() {
                    Some(u) => Value::U32(u as u32),
                    None => Value::I32(n.as_i64().unwrap() as i32),
                },
                serde_json::Value::Array(a) => {
                    // One element type per array: floats win over integers, signed over unsigned.
                    let any_float = a.iter().any(|x| x.is_f64());
                    Value::Array(
                        a.iter()
                            .map(|x| match x {
                                serde_json::Value::Number(n) if any_float => {
                                    Value::F32(n.as_f64().unwrap() as f32)
                                }
                                serde_json::Value::Number(n) => {
                                    Value::I32(n.as_i64().unwrap() as i32)
                                }
                                other => value(other),
                            })
                            .collect(),
                    )
                }
                other => panic!("no GGUF value for {other}"),
            }
        }
        let serde_json::Value::Object(m) = v else {
            panic!("metadata must be a JSON object")
        };
        let mut w = GgufWriter::new();
        for (k, v) in &m {
            w.kv(k, value(v));
        }
        let f = crate::gguf::GgufFile::from_bytes(w.to_bytes()).unwrap();
        Metadata {
            source: Arc::clone(&f.source),
            kv: f.metadata().kv.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::gguf::writer::{GgufWriter, Value};
    use crate::gguf::GgufFile;

    fn file(kv: Vec<(&str, Value)>) -> GgufFile {
        let mut w = GgufWriter::new();
        for (k, v) in kv {
            w.kv(k, v);
        }
        GgufFile::from_bytes(w.to_bytes()).unwrap()
    }

    #[test]
    fn typed_accessors_distinguish_missing_from_wrong_type() {
        let f = file(vec![
            ("a", Value::U32(3)),
            ("s", "x".into()),
            ("f", Value::F32(1.5)),
            ("b", Value::Bool(true)),
            ("arr", Value::Array(vec!["p".into(), "q".into()])),
            ("neg", Value::I32(-1)),
            (
                "nums",
                Value::Array(vec![Value::F32(0.5), Value::F32(-2.0)]),
            ),
            ("ints", Value::Array(vec![Value::I32(-3), Value::I32(7)])),
        ]);
        let m = f.metadata();
        assert_eq!(m.u32("a").unwrap(), 3);
        assert_eq!(m.str("s").unwrap(), "x");
        assert_eq!(m.f32("f").unwrap(), 1.5);
        assert_eq!(m.opt_bool("b").unwrap(), Some(true));
        assert_eq!(m.str_array("arr").unwrap(), vec!["p", "q"]);
        assert_eq!(m.opt_f32_array("nums").unwrap(), Some(vec![0.5, -2.0]));
        assert_eq!(m.opt_i64_array("ints").unwrap(), Some(vec![-3, 7]));
        assert_eq!(m.array_len("arr").unwrap(), Some(2));
        assert!(m
            .u32("missing")
            .unwrap_err()
            .to_string()
            .contains("missing"));
        assert!(m
            .str("a")
            .unwrap_err()
            .to_string()
            .contains("expected a string"));
        assert!(m.u32("neg").is_err());
        assert!(m.str_array("nums").is_err());
        assert!(m.opt_i64_array("arr").is_err());
        assert!(m.opt_i64_array("nums").is_err());
        assert_eq!(m.opt_u32("missing").unwrap(), None);
        assert!(m.heap_bytes() < 4096);
    }

    #[test]
    fn per_layer_values_broadcast_or_check_length() {
        let f = file(vec![
            ("one", Value::U32(4)),
            (
                "many",
                Value::Array(vec![Value::U32(1), Value::U32(2), Value::U32(3)]),
            ),
            ("short", Value::Array(vec![Value::U32(1)])),
        ]);
        let m = f.metadata();
        assert_eq!(m.per_layer_u32("one", 3).unwrap(), Some(vec![4, 4, 4]));
        assert_eq!(m.per_layer_u32("many", 3).unwrap(), Some(vec![1, 2, 3]));
        assert!(m.per_layer_u32("short", 3).is_err());
    }
}
