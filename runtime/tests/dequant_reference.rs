//! Checks the CPU dequantizers against gguf-py, the outside referee.
//!
//! The fixtures in `tests/fixtures/dequant/` (written by `tests/scripts/make_dequant_fixtures.py`)
//! hold raw blocks, taken from real models or made with a recorded seed, and the values gguf-py's
//! numpy dequantizer produced for them, as f32 bit patterns.
//!
//! The comparison is exact, bit for bit, with zero tolerance. Both sides widen the f16 scales
//! exactly and then do the same f32 operations in the same order (ggml's, which gguf-py follows).
//! Moreover every product involved is exact in f32, whatever its grouping: an f16 scale has at
//! most 11 significant bits and the integer factors at most 12 between them (worst case Q6_K:
//! |scale| <= 127 and |q| <= 32, where 32 is a power of two), so `d * sc * q` fits in f32's 24.
//! The only rounding is the single add/subtract of a min (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K), the
//! same on both sides and unchanged by FMA contraction since the product before it is exact.
//! So any difference, even one ulp, is a bug in the layout, not floating-point noise.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use voyager_runtime::gguf::GgmlType;
use voyager_runtime::quant::{dequantize, dequantize_into};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dequant")
}

fn decode_hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd-length hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("valid hex"))
        .collect()
}

fn type_by_name(name: &str) -> GgmlType {
    GgmlType::all()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("fixture names unknown type {name}"))
}

struct Case {
    ty: GgmlType,
    source: String,
    bytes: Vec<u8>,
    want: Vec<f32>,
}

/// Every case in every fixture file, checked for internal consistency.
fn load_cases() -> Vec<Case> {
    let dir = fixture_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());

    let mut cases = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: bad JSON: {e}", path.display()));
        let file_ty = type_by_name(doc["type"].as_str().expect("type"));
        let list = doc["cases"].as_array().expect("cases");
        assert!(!list.is_empty(), "{}: no cases", path.display());
        for c in list {
            let ty = type_by_name(c["type"].as_str().expect("case type"));
            assert_eq!(ty, file_ty, "{}: mixed types", path.display());
            let source = c["source"].as_str().expect("source").to_string();
            let bytes = decode_hex(c["bytes_hex"].as_str().expect("bytes_hex"));
            let bits = c["values_bits"].as_array().expect("values_bits");
            let want: Vec<f32> = bits
                .iter()
                .map(|b| f32::from_bits(u32::from_str_radix(b.as_str().unwrap(), 16).unwrap()))
                .collect();
            // The readable numbers must say the same as the bit patterns (null = not finite).
            let numbers = c["values"].as_array().expect("values");
            assert_eq!(numbers.len(), want.len(), "{source}");
            for (n, w) in numbers.iter().zip(&want) {
                match n.as_f64() {
                    Some(x) => assert_eq!((x as f32).to_bits(), w.to_bits(), "{source}"),
                    None => assert!(n.is_null() && !w.is_finite(), "{source}"),
                }
            }
            let blocks = want.len() as u64 / ty.block_len();
            assert_eq!(blocks * ty.block_len(), want.len() as u64, "{source}");
            assert_eq!(blocks * ty.block_bytes(), bytes.len() as u64, "{source}");
            cases.push(Case {
                ty,
                source,
                bytes,
                want,
            });
        }
    }
    cases
}

#[test]
fn matches_gguf_py_bit_for_bit() {
    let cases = load_cases();
    // Per type: (values compared, max |difference|, values differing in bits).
    let mut stats: BTreeMap<GgmlType, (usize, f32, usize)> = BTreeMap::new();
    for case in &cases {
        let got = dequantize(case.ty, &case.bytes, case.want.len())
            .unwrap_or_else(|e| panic!("{}: {e}", case.source));
        let mut into = vec![f32::NAN; case.want.len()];
        dequantize_into(case.ty, &case.bytes, &mut into).unwrap();
        assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            into.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{}: dequantize and dequantize_into disagree",
            case.source
        );
        let entry = stats.entry(case.ty).or_default();
        for (i, (g, w)) in got.iter().zip(&case.want).enumerate() {
            entry.0 += 1;
            if g.to_bits() != w.to_bits() {
                entry.2 += 1;
                let diff = if g == w { 0.0 } else { (g - w).abs() };
                entry.1 = entry
                    .1
                    .max(if diff.is_nan() { f32::INFINITY } else { diff });
                if entry.2 <= 5 {
                    eprintln!("{}: value {i}: got {g:e}, gguf-py {w:e}", case.source);
                }
            }
        }
    }
    for (ty, (n, max_diff, bad)) in &stats {
        eprintln!("{ty:5}: {n:5} values, max |diff| {max_diff:e}, {bad} differ in bits");
    }
    let bad: Vec<_> = stats
        .iter()
        .filter(|(_, s)| s.2 > 0)
        .map(|(t, _)| *t)
        .collect();
    assert!(bad.is_empty(), "values differ from gguf-py for {bad:?}");
}

#[test]
fn every_supported_type_has_a_fixture() {
    let cases = load_cases();
    for ty in GgmlType::all().filter(|t| t.can_dequantize()) {
        let n = cases.iter().filter(|c| c.ty == ty).count();
        assert!(n > 0, "no dequantization fixture for supported type {ty}");
    }
    for case in &cases {
        assert!(
            case.ty.can_dequantize(),
            "{}: fixture for unsupported type",
            case.source
        );
    }
}
