//! The first-run self-check: a device whose kernel computes wrong results is refused with a
//! clear error, and verdicts are remembered per adapter and driver so later loads skip what
//! passed. The wrong kernel is injected by replacing a shader for this test process (which is
//! why this is its own test binary, with one test).

use voyager_runtime::engine::{Engine, EngineOptions, SelfCheck};
use voyager_runtime::gguf::synthetic::SyntheticLlama;
use voyager_runtime::gguf::writer::Value;
use voyager_runtime::gpu::shaders;
use voyager_runtime::ErrorKind;

#[test]
fn a_wrong_kernel_is_refused_and_verdicts_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    let shape = SyntheticLlama {
        n_embd: 128,
        ..SyntheticLlama::default()
    };
    let mut gguf = shape.build();
    gguf.set("tokenizer.ggml.merges", Value::Array(Vec::new()));
    std::fs::write(&model, gguf.to_bytes()).unwrap();
    let cache = dir.path().join("verdicts");
    let options = |self_check| EngineOptions {
        self_check,
        cache_dir: Some(cache.clone()),
        window: Some(64),
        ..EngineOptions::default()
    };

    // A sound device: the check passes and its verdicts are kept.
    Engine::load(&model, &options(SelfCheck::FirstRun), &mut |_| {}).unwrap();
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(files.len(), 1, "one verdict file per adapter and driver");
    let path = files[0].as_ref().unwrap().path();
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let passed = verdict["passed"].as_array().unwrap();
    assert!(
        passed
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("add ")),
        "{verdict}"
    );
    assert!(
        passed
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("attention ")),
        "{verdict}"
    );

    // Now the residual add subtracts: a driver bug, as far as the engine can tell.
    let broken = shaders::ADD.replace("dst[i] = a[i] + b[i];", "dst[i] = a[i] - b[i];");
    assert_ne!(broken, shaders::ADD);
    shaders::replace_for_testing("add", &broken);

    // A first-run check remembers that `add` passed on this adapter and driver: skipped.
    Engine::load(&model, &options(SelfCheck::FirstRun), &mut |_| {}).unwrap();
    // Checked again, it is caught and the device refused, naming the kernel.
    let err = Engine::load(&model, &options(SelfCheck::Always), &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Gpu, "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains("self-check found wrong results"), "{msg}");
    assert!(msg.contains("add n="), "{msg}");
    assert!(msg.contains("Update the GPU driver"), "{msg}");
    eprintln!("{msg}");
    // Without a remembered verdict (another cache directory), the first run catches it too.
    let fresh = EngineOptions {
        cache_dir: Some(dir.path().join("elsewhere")),
        ..options(SelfCheck::FirstRun)
    };
    let err = Engine::load(&model, &fresh, &mut |_| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Gpu, "{err}");
    // Turned off, nothing is checked (and the model loads, computing wrong sums).
    Engine::load(&model, &options(SelfCheck::Off), &mut |_| {}).unwrap();
}
