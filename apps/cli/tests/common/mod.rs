//! Helpers shared by the CLI's test binaries.

#![allow(dead_code)]

/// A tiny synthetic llama (2 layers, 2 KV heads of 32) written to a temporary file.
pub fn tiny_model() -> (tempfile::TempDir, String) {
    tiny_model_of(voyager_runtime::gguf::GgmlType::F32)
}

/// [`tiny_model`] with its projections stored as `ty`.
pub fn tiny_model_of(ty: voyager_runtime::gguf::GgmlType) -> (tempfile::TempDir, String) {
    use voyager_runtime::gguf::synthetic::SyntheticLlama;
    use voyager_runtime::gguf::writer::Value;
    // Rows of a k-quant are whole 256-value blocks.
    let width = (ty.block_len() as u32).max(128);
    let shape = SyntheticLlama {
        n_embd: width,
        n_ff: width,
        n_heads: 4,
        n_kv_heads: 2,
        weight_type: ty,
        ..SyntheticLlama::default()
    };
    let mut gguf = shape.build();
    // No merges (the synthetic "Ġ t" merges into a token the byte vocabulary lacks) and a
    // pre-tokenizer Voyager knows, so that opening the model prints nothing on stderr.
    gguf.set("tokenizer.ggml.merges", Value::Array(Vec::new()))
        .set("tokenizer.ggml.pre", "default".into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    std::fs::write(&path, gguf.to_bytes()).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

/// Runs `voyager args`, returning (success, stdout, stderr, peak resident bytes).
#[cfg(target_os = "linux")]
pub fn run_measured(args: &[&str]) -> (bool, String, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("voyager"))
        .args(args)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a plain call on a zeroed struct; the child is ours and not waited for elsewhere
    // (`child` is never waited on, so std does not reap it first).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    std::mem::forget(child);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (
        ok,
        std::fs::read_to_string(out).unwrap(),
        std::fs::read_to_string(err).unwrap(),
        usage.ru_maxrss as u64 * 1024,
    )
}

/// The binary's own footprint: the peak resident memory of `voyager info` on a tiny model.
#[cfg(target_os = "linux")]
pub fn baseline() -> u64 {
    let (_dir, path) = tiny_model();
    let (ok, _, err, peak) = run_measured(&["info", "-m", &path]);
    assert!(ok, "{err}");
    peak
}
