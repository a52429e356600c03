//! The `voyager` binary as a user runs it: real models (pulled on first use), real files.

use std::path::PathBuf;

use assert_cmd::Command;

fn voyager() -> Command {
    Command::cargo_bin("voyager").expect("binary built")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs voyager and returns (exit success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = voyager().args(args).output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], what: &str) {
    let out = voyager().args(args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: exited 0");
    assert_ne!(out.status.code(), Some(101), "{what}: panicked: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
        "{what}: stderr is not one error line: {stderr:?}"
    );
}

#[test]
fn info_on_every_corrupt_file_prints_one_line_and_fails() {
    let dir = repo().join("tests/fixtures/corrupt-gguf");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "broken") {
            assert_one_line_error(
                &["info", "-m", path.to_str().unwrap()],
                &path.display().to_string(),
            );
            n += 1;
        }
    }
    assert!(n >= 40, "only {n} corrupt files");
}

#[test]
fn bad_model_arguments_are_one_line_errors() {
    assert_one_line_error(&["info", "-m", "no-such-model"], "unknown name");
    assert_one_line_error(
        &["info", "-m", "/nonexistent/dir/model.gguf"],
        "missing path",
    );
    let dir = tempfile::tempdir().unwrap();
    assert_one_line_error(&["info", "-m", dir.path().to_str().unwrap()], "a directory");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a model\n").unwrap();
    assert_one_line_error(&["info", "-m", text.to_str().unwrap()], "a text file");
    assert_one_line_error(&["pull", "no-such-model"], "pull of an unknown name");
}

fn info_json(model: &str) -> serde_json::Value {
    let (ok, stdout, stderr) = run(&["info", "-m", model, "--json"]);
    assert!(ok, "info failed: {stderr}");
    serde_json::from_str(&stdout).expect("one JSON object")
}

#[test]
fn info_describes_smollm2() {
    let v = info_json("smollm2-135m");
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["n_layers"], 30);
    assert_eq!(v["n_heads"], 9);
    assert_eq!(v["n_kv_heads"], 3);
    assert_eq!(v["head_dim"], 64);
    assert_eq!(v["context_length"], 8192);
    assert_eq!(v["vocab_size"], 49152);
    assert_eq!(v["file_type"], "Q4_1");
    assert_eq!(v["tensor_types"]["Q4_1"], 210);
    assert_eq!(v["tensor_types"]["Q8_0"], 1);
    assert_eq!(v["tensor_types"]["F32"], 61);
    assert_eq!(v["parameters"], 134_515_008);
    assert_eq!(v["tokenizer"]["kind"], "byte-level BPE (gpt2)");
    assert_eq!(v["chat_template"], "model");
    assert_eq!(v["kv_bytes_per_token_f16"], 23040);
    assert_eq!(v["rope"]["layout"], "normal");
}

#[test]
fn info_describes_gemma3() {
    let v = info_json("gemma3-270m");
    assert_eq!(v["architecture"], "gemma3");
    assert_eq!(v["n_layers"], 18);
    assert_eq!(v["n_heads"], 4);
    assert_eq!(v["n_kv_heads"], 1);
    assert_eq!(v["head_dim"], 256);
    assert_eq!(v["vocab_size"], 262144);
    assert_eq!(v["file_type"], "Q4_K_M");
    assert_eq!(v["sliding_window"], 512);
    assert_eq!(v["n_sliding_layers"], 15);
    assert_eq!(v["rope"]["layout"], "neox");
    assert_eq!(v["tokenizer"]["add_bos"], true);
    assert_eq!(v["chat_template"], "built-in (gemma)");
    assert_eq!(v["kv_bytes_per_token_f16"], 18432);
    assert!(v["unsupported_tensor_types"].as_array().unwrap().is_empty());
}

#[test]
fn info_text_output_is_readable() {
    let (ok, stdout, _) = run(&["info", "-m", "smollm2-135m"]);
    assert!(ok);
    assert!(stdout.contains("architecture    llama"), "{stdout}");
    assert!(stdout.contains("KV bytes/token  23040 at f16"), "{stdout}");
}

/// `voyager tokenize --json` prints llama.cpp's ids: checked on the golden strings.
#[test]
fn tokenize_json_matches_llama_cpp() {
    for model in ["smollm2-135m", "gemma3-270m"] {
        let golden = repo().join(format!("tests/fixtures/tokenizer/{model}.json"));
        let golden: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(golden).unwrap()).unwrap();
        // A spread of the golden strings (the library test checks all of them).
        for case in golden["cases"].as_array().unwrap().iter().step_by(17) {
            let text = case["text"].as_str().unwrap();
            if text.is_empty() {
                continue;
            }
            let (ok, stdout, stderr) = run(&["tokenize", "-m", model, "--json", text]);
            assert!(ok, "{model} {text:?}: {stderr}");
            let ids: serde_json::Value =
                serde_json::from_str(stdout.trim()).expect("one JSON array");
            assert_eq!(stdout.trim().lines().count(), 1);
            assert_eq!(ids, case["ids"], "{model} {text:?}");
        }
    }
}

#[test]
fn list_shows_the_catalog() {
    let (ok, stdout, _) = run(&["list", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["smollm2-135m", "gemma3-270m"]);
}
