//! Typed access to GGUF key/value metadata.
//!
//! gguf-rs decodes every value into a `serde_json::Value`; this wrapper turns "missing" and
//! "present but of the wrong type" into distinct, named errors so a caller never silently reads
//! a default from a malformed file.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};

/// The metadata of one GGUF file.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    kv: BTreeMap<String, Value>,
}

fn bad(key: &str, why: impl Into<String>) -> Error {
    Error::Metadata {
        key: key.to_string(),
        why: why.into(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Metadata {
    pub fn new(kv: BTreeMap<String, Value>) -> Self {
        Self { kv }
    }

    /// The raw value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.kv.contains_key(key)
    }

    /// All keys with their values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.kv.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn required<T>(&self, key: &str, v: Result<Option<T>>) -> Result<T> {
        v?.ok_or_else(|| bad(key, "missing"))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(bad(key, format!("expected a string, found {}", kind(v)))),
        }
    }

    pub fn str(&self, key: &str) -> Result<&str> {
        self.required(key, self.opt_str(key))
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(key, format!("expected an unsigned integer, found {v}"))),
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
            Some(v) => v
                .as_f64()
                .map(|f| Some(f as f32))
                .ok_or_else(|| bad(key, format!("expected a number, found {}", kind(v)))),
        }
    }

    pub fn f32(&self, key: &str) -> Result<f32> {
        self.required(key, self.opt_f32(key))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(bad(key, format!("expected a bool, found {}", kind(v)))),
        }
    }

    fn opt_array(&self, key: &str) -> Result<Option<&[Value]>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(bad(key, format!("expected an array, found {}", kind(v)))),
        }
    }

    /// Length of the array at `key`, if present.
    pub fn array_len(&self, key: &str) -> Result<Option<usize>> {
        Ok(self.opt_array(key)?.map(|a| a.len()))
    }

    pub fn opt_str_array(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(a) = self.opt_array(key)? else {
            return Ok(None);
        };
        a.iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .ok_or_else(|| bad(key, format!("element {i} is a {}, not a string", kind(v))))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    pub fn str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.required(key, self.opt_str_array(key))
    }

    pub fn opt_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>> {
        let Some(a) = self.opt_array(key)? else {
            return Ok(None);
        };
        a.iter()
            .enumerate()
            .map(|(i, v)| match v {
                // gguf-rs maps a NaN float to null; keep it as the NaN it was.
                Value::Null => Ok(f32::NAN),
                _ => v
                    .as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| bad(key, format!("element {i} is a {}, not a number", kind(v)))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    pub fn opt_i64_array(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(a) = self.opt_array(key)? else {
            return Ok(None);
        };
        a.iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_i64()
                    .ok_or_else(|| bad(key, format!("element {i} is not an integer: {v}")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A per-layer count that GGUF stores either as one number or as an array with one entry
    /// per layer (Gemma-style heterogeneous models); always returns `n_layers` entries.
    pub fn per_layer_u32(&self, key: &str, n_layers: usize) -> Result<Option<Vec<u32>>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(Value::Array(_)) => {
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
mod tests {
    use super::*;
    use serde_json::json;

    fn md(v: Value) -> Metadata {
        let Value::Object(m) = v else { unreachable!() };
        Metadata::new(m.into_iter().collect())
    }

    #[test]
    fn typed_accessors_distinguish_missing_from_wrong_type() {
        let m = md(json!({"a": 3, "s": "x", "f": 1.5, "b": true, "arr": ["p", "q"], "neg": -1}));
        assert_eq!(m.u32("a").unwrap(), 3);
        assert_eq!(m.str("s").unwrap(), "x");
        assert_eq!(m.f32("f").unwrap(), 1.5);
        assert_eq!(m.opt_bool("b").unwrap(), Some(true));
        assert_eq!(m.str_array("arr").unwrap(), vec!["p", "q"]);
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
        assert_eq!(m.opt_u32("missing").unwrap(), None);
    }

    #[test]
    fn per_layer_values_broadcast_or_check_length() {
        let m = md(json!({"one": 4, "many": [1, 2, 3], "short": [1]}));
        assert_eq!(m.per_layer_u32("one", 3).unwrap(), Some(vec![4, 4, 4]));
        assert_eq!(m.per_layer_u32("many", 3).unwrap(), Some(vec![1, 2, 3]));
        assert!(m.per_layer_u32("short", 3).is_err());
    }
}
