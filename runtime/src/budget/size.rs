//! Byte sizes as people write them: `300MiB`, `1.5GB`, `512M`, `2g`, `1 GiB`, `4096`.
//!
//! A size is a non-negative decimal number (digits, at most one `.`; no sign, no exponent)
//! followed by an optional unit, with optional spaces between. Units are case-insensitive:
//!
//! | unit                          | bytes   |
//! |-------------------------------|---------|
//! | none, `B`, `byte`, `bytes`    | 1       |
//! | `K`, `Ki`, `KiB`              | 1024    |
//! | `M`, `Mi`, `MiB`              | 1024²   |
//! | `G`, `Gi`, `GiB`              | 1024³   |
//! | `T`, `Ti`, `TiB`              | 1024⁴   |
//! | `kB`, `KB`                    | 1000    |
//! | `MB`                          | 1000²   |
//! | `GB`                          | 1000³   |
//! | `TB`                          | 1000⁴   |
//!
//! A bare letter (`512M`, `2g`) is binary, as in `ulimit`, `dd`, `docker --memory` and
//! llama.cpp; with a `B` the SI spelling (`GB`) is decimal and the IEC one (`GiB`) binary.
//! Fractions are exact and round down to whole bytes (`0.1KiB` is 102 bytes); a fraction of
//! a single byte (`1.5`, `1.5B`) is refused, as are zero, signs, exponents (`1e3`), `inf`,
//! `NaN` and anything beyond `u64::MAX` bytes.

use crate::{Error, Result};

/// An example for error messages.
const EXAMPLE: &str = "write it like 300MiB, 1.5GB, 512M or 4096";

/// Fraction digits beyond this many cannot change the result by a whole byte (the largest
/// multiplier is 1024⁴ < 10¹³), and keeping them bounded keeps the arithmetic in `u128`.
const MAX_FRACTION_DIGITS: usize = 20;

/// Parses a size in bytes; see the [module docs](self) for the accepted forms.
pub fn parse_size(s: &str) -> Result<u64> {
    let text = s.trim();
    let bad = |why: &str| {
        let shown = s.escape_debug();
        Error::InvalidArgument(format!("invalid size `{shown}`: {why}; {EXAMPLE}"))
    };
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    if text.starts_with('-') {
        return Err(bad("a size cannot be negative"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = (
        &text[..split],
        text[split..].trim_start_matches([' ', '\t']),
    );
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        return Err(bad("it does not start with a number"));
    }
    let (int, frac) = match number.split_once('.') {
        Some((_, f)) if f.contains('.') => return Err(bad("the number has two dots")),
        Some((_, "")) => return Err(bad("the number ends with a dot")),
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    let multiplier = unit_multiplier(unit).ok_or_else(|| {
        bad(&format!(
            "unknown unit `{}` (use B, KiB, MiB, GiB, TiB, K, M, G, T, kB, MB, GB or TB)",
            unit.escape_debug()
        ))
    })?;

    let too_large = || bad("it is more than 16 EiB, the most a u64 holds");
    let mut whole: u128 = 0;
    for d in int.bytes() {
        whole = whole
            .checked_mul(10)
            .and_then(|w| w.checked_add(u128::from(d - b'0')))
            .filter(|w| *w <= u128::from(u64::MAX))
            .ok_or_else(too_large)?;
    }
    let frac = &frac[..frac.len().min(MAX_FRACTION_DIGITS)];
    let (mut numerator, mut denominator) = (0u128, 1u128);
    for d in frac.bytes() {
        numerator = numerator * 10 + u128::from(d - b'0');
        denominator *= 10;
    }
    let fraction = numerator * u128::from(multiplier);
    if multiplier == 1 && numerator != 0 {
        return Err(bad("a fraction of a byte"));
    }
    let bytes = whole
        .checked_mul(u128::from(multiplier))
        .and_then(|b| b.checked_add(fraction / denominator))
        .filter(|b| *b <= u128::from(u64::MAX))
        .ok_or_else(too_large)?;
    if bytes == 0 {
        return Err(bad("a size must be more than zero bytes"));
    }
    Ok(bytes as u64)
}

/// Bytes per unit, `None` for an unknown unit.
fn unit_multiplier(unit: &str) -> Option<u64> {
    const KI: u64 = 1 << 10;
    const KB: u64 = 1000;
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "b" | "byte" | "bytes" => 1,
        "k" | "ki" | "kib" => KI,
        "m" | "mi" | "mib" => KI.pow(2),
        "g" | "gi" | "gib" => KI.pow(3),
        "t" | "ti" | "tib" => KI.pow(4),
        "kb" => KB,
        "mb" => KB.pow(2),
        "gb" => KB.pow(3),
        "tb" => KB.pow(4),
        _ => return None,
    })
}

/// Formats bytes for people, with a binary unit: `512 B`, `1.50 GiB`.
pub fn format_size(bytes: u64) -> String {
    crate::gpu::alloc::human_bytes(bytes)
}

/// A size to suggest to a user: `bytes` rounded *up* to 0.01 of a MiB (or GiB from 1 GiB on),
/// so that the text, read back with [`parse_size`], is never less than `bytes`.
pub fn format_size_at_least(bytes: u64) -> String {
    let (unit, name) = if bytes >= 1 << 30 {
        (1u64 << 30, "GiB")
    } else {
        (1u64 << 20, "MiB")
    };
    // hundredths = ceil(bytes * 100 / unit); parse_size gives floor(hundredths * unit / 100),
    // which is >= bytes because hundredths * unit / 100 >= bytes and bytes is whole.
    let hundredths = (u128::from(bytes) * 100).div_ceil(u128::from(unit));
    format!("{}.{:02} {name}", hundredths / 100, hundredths % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KI: u64 = 1024;

    #[test]
    fn suggestions_read_back_at_least_as_large() {
        for bytes in [
            1,
            1023,
            1 << 20,
            (1 << 20) + 1,
            109_471_334,
            109_471_335,
            (1 << 30) - 1,
        ]
        .into_iter()
        .chain([1 << 30, (3 << 30) + 12_345, u64::MAX / 200])
        {
            let text = format_size_at_least(bytes);
            let back = parse_size(&text).unwrap();
            assert!(back >= bytes, "{bytes} -> {text} -> {back}");
            // And not wastefully more: within 0.01 of the unit.
            assert!(back - bytes <= (1 << 30) / 100, "{bytes} -> {text}");
        }
        assert_eq!(format_size_at_least(104 << 20), "104.00 MiB");
        assert_eq!(format_size_at_least((104 << 20) + 1), "104.01 MiB");
    }

    #[test]
    fn parses_the_documented_forms() {
        let cases: &[(&str, u64)] = &[
            ("4096", 4096),
            ("1", 1),
            ("300MiB", 300 * KI * KI),
            ("1.5GB", 1_500_000_000),
            ("512M", 512 * KI * KI),
            ("2g", 2 * KI * KI * KI),
            ("64KiB", 64 * KI),
            ("1 GiB", KI * KI * KI),
            ("  1   GiB  ", KI * KI * KI),
            ("1gib", KI * KI * KI),
            ("1GIB", KI * KI * KI),
            ("1Gi", KI * KI * KI),
            ("8k", 8 * KI),
            ("8K", 8 * KI),
            ("8kB", 8000),
            ("8KB", 8000),
            ("8kb", 8000),
            ("3MB", 3_000_000),
            ("2TB", 2_000_000_000_000),
            ("2T", 2 * KI.pow(4)),
            ("2TiB", 2 * KI.pow(4)),
            ("100B", 100),
            ("100 bytes", 100),
            ("1 byte", 1),
            ("0.5KiB", 512),
            (".5K", 512),
            ("0.1KiB", 102),
            ("1.5G", 3 * KI * KI * KI / 2),
            ("007M", 7 * KI * KI),
            ("1.000", 1),
            ("18446744073709551615", u64::MAX),
            ("16777215.999999T", 16777215 * KI.pow(4) + 1_099_510_528_264),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_size(s).unwrap(), want, "{s:?}");
        }
    }

    #[test]
    fn refuses_hostile_strings_with_one_line() {
        for s in [
            "",
            "   ",
            "0",
            "0MiB",
            "0.0G",
            "0.0000000000000000000000001G",
            "-1MiB",
            "-0",
            "+1G",
            "inf",
            "infinity",
            "NaN",
            "nan",
            "1e400GB",
            "1e3",
            "1E3",
            "1.5",
            "1.5B",
            "1..5G",
            "1.5.5G",
            "1.G",
            ".",
            "G",
            "MiB",
            "banana",
            "12 apples",
            "1 2 G",
            "1,5G",
            "0x10",
            "1_000",
            "18446744073709551616",
            "16777216T",
            "17EB",
            "99999999999999999999999999999999999999999999999999",
            "1MiBB",
            "1 PiB",
            "1\tG\t\tx",
            "5\u{2009}G",
            "٣G",
            "1\nG",
        ] {
            let e = parse_size(s).expect_err(s);
            let msg = e.to_string();
            assert!(matches!(e, Error::InvalidArgument(_)), "{s:?}: {e:?}");
            assert!(!msg.contains('\n'), "{s:?}: {msg:?}");
            assert!(msg.contains("300MiB"), "{s:?} gives no example: {msg}");
        }
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let msg = |s: &str| parse_size(s).unwrap_err().to_string();
        assert!(msg("-1MiB").contains("negative"), "{}", msg("-1MiB"));
        assert!(msg("0").contains("zero"), "{}", msg("0"));
        assert!(msg("1e400GB").contains("unknown unit `e400GB`"));
        assert!(msg("banana").contains("number"), "{}", msg("banana"));
        assert!(msg("99999999999999999999T").contains("u64"));
        assert!(msg("1.5").contains("fraction of a byte"));
        assert_eq!(
            msg("0"),
            "invalid argument: invalid size `0`: a size must be more than zero bytes; \
             write it like 300MiB, 1.5GB, 512M or 4096"
        );
    }

    /// Tiny deterministic generator for the round trips.
    fn numbers() -> impl Iterator<Item = u64> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let edges = [1, 2, 1023, 1024, 1025, 999, 1000, u64::MAX, u64::MAX - 1];
        edges.into_iter().chain((0..2000).map(move |i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> (i % 64)).max(1)
        }))
    }

    #[test]
    fn integers_round_trip_in_every_unit() {
        for n in numbers() {
            assert_eq!(parse_size(&n.to_string()).unwrap(), n);
            assert_eq!(parse_size(&format!("{n}B")).unwrap(), n);
            assert_eq!(parse_size(&format!(" {n} bytes ")).unwrap(), n);
            for (units, base) in [
                (["K", "Ki", "KiB", "kib"], KI),
                (["M", "Mi", "MiB", "m"], KI.pow(2)),
                (["G", "Gi", "GiB", "g"], KI.pow(3)),
                (["T", "Ti", "TiB", "t"], KI.pow(4)),
                (["kB", "KB", "kb", "Kb"], 1000),
                (["MB", "mb", "mB", "Mb"], 1000u64.pow(2)),
                (["GB", "gb", "gB", "Gb"], 1000u64.pow(3)),
                (["TB", "tb", "tB", "Tb"], 1000u64.pow(4)),
            ] {
                // The largest count of this unit that fits, so every case is in range.
                let count = n % (u64::MAX / base) + 1;
                for unit in units {
                    for s in [format!("{count}{unit}"), format!("{count} {unit}")] {
                        assert_eq!(parse_size(&s).unwrap(), count * base, "{s}");
                    }
                }
            }
        }
    }

    #[test]
    fn one_more_than_u64_max_is_refused_in_every_unit() {
        for (unit, base) in [("K", KI), ("G", KI.pow(3)), ("TB", 1000u64.pow(4))] {
            let max = u64::MAX / base;
            assert_eq!(parse_size(&format!("{max}{unit}")).unwrap(), max * base);
            assert!(parse_size(&format!("{}{unit}", max + 1)).is_err());
        }
    }

    #[test]
    fn fractions_are_exact_and_round_down() {
        for n in numbers().take(500) {
            // n / 1024 KiB written with its exact decimal expansion gives back n.
            let (whole, rest) = (n / KI, n % KI);
            let digits = format!("{:010}", rest * 9_765_625); // rest / 1024 = rest * 5^10 / 10^10
            let s = format!("{whole}.{digits}KiB");
            assert_eq!(parse_size(&s).unwrap(), n, "{s}");
            // A hair less than the exact value rounds down by one byte (when that is > 0).
            if rest > 0 && n > 1 {
                let less = format!("{whole}.{:010}KiB", rest * 9_765_625 - 1);
                assert_eq!(parse_size(&less).unwrap(), n - 1, "{less}");
            }
        }
        // More fraction digits than matter are accepted and ignored.
        assert_eq!(
            parse_size("1.99999999999999999999999999999999999KiB").unwrap(),
            2047
        );
    }

    #[test]
    fn format_then_parse_is_close() {
        for n in numbers() {
            let shown = format_size(n);
            let Ok(back) = parse_size(&shown) else {
                // Rounded up past u64::MAX ("16777216.00 TiB").
                assert!(n > u64::MAX / 201 * 200, "{n} -> {shown}");
                continue;
            };
            // Two decimals of the unit: within half a hundredth of it, relative.
            let err = back.abs_diff(n) as f64 / n as f64;
            assert!(err <= 0.01, "{n} -> {shown} -> {back}");
        }
        assert_eq!(format_size(1536), "1.50 KiB");
        assert_eq!(parse_size(&format_size(300 << 20)).unwrap(), 300 << 20);
    }
}
