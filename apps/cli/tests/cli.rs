//! The `voyager` binary as a user runs it: real models (pulled on first use), real files.

use std::path::PathBuf;

use assert_cmd::Command;

mod common;
use common::{tiny_model, tiny_model_of};

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

/// Runs voyager expecting one `error: ` line on stderr; returns it and the exit code.
fn one_line_error(args: &[&str]) -> (String, Option<i32>) {
    assert_one_line_error(args, &format!("{args:?}"));
    let out = voyager().args(args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    (stderr, out.status.code())
}

/// Every command that loads a model takes the memory and cache flags: with a model that does
/// not exist, the error is about the model, not the flags.
#[test]
fn memory_flags_parse_in_every_model_command() {
    let flags = [
        "--mem-budget",
        "300MiB",
        "-ctk",
        "q8",
        "-ctv",
        "f16",
        "--window",
        "100",
        "--sinks",
        "2",
        "--kv-recent",
        "0",
        "--no-kv-rotate",
    ];
    let missing = "/nonexistent/dir/model.gguf";
    for cmd in [
        &["info"][..],
        &["run"],
        &["chat"],
        &["perplexity", "-f", "/nonexistent.txt"],
        &["bench"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["-m", missing]);
        args.extend(flags);
        if cmd[0] == "run" {
            args.push("hello");
        }
        let (err, code) = one_line_error(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(
            err.contains("nonexistent"),
            "{args:?}: not a model error: {err}"
        );
    }
    // The long spellings, llama.cpp's `-ctk=TYPE` and `-c` instead of --window.
    for extra in [
        &["--cache-type-k", "f16", "--cache-type-v", "q8_0"][..],
        &["-ctk=q4_0", "-ctv=Q8"],
        &[
            "--ctk",
            "q4",
            "--ctv",
            "f16",
            "-c",
            "512",
            "--mem-budget",
            "1 GiB",
        ],
        &["--mem-budget", "2g", "--sinks", "0", "-c", "1"],
    ] {
        let mut args = vec!["run", "-m", missing];
        args.extend(extra);
        args.push("hello");
        let (err, code) = one_line_error(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains("nonexistent"), "{args:?}: {err}");
    }
}

#[test]
fn bad_cache_types_are_one_line_errors() {
    for flag in ["-ctk", "-ctv", "--cache-type-k", "--cache-type-v"] {
        let (err, code) = one_line_error(&["run", "-m", "x", flag, "q3", "hi"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("`q3`"), "{err}");
        assert!(err.contains("f16, q8, q4, tq4 or tq3"), "{err}");
    }
    let (err, _) = one_line_error(&["info", "-m", "x", "-ctk"]);
    assert!(err.contains("cache-type-k"), "{err}");
}

#[test]
fn bad_budgets_are_one_line_errors() {
    for (budget, why) in [
        ("0", "zero"),
        ("0MiB", "zero"),
        ("banana", "number"),
        ("-1MiB", "negative"),
        ("-0", "negative"),
        ("1e400GB", "unit"),
        ("inf", "number"),
        ("99999999999999999999999GB", "u64"),
        ("1.5", "fraction"),
        ("", "empty"),
    ] {
        // `=`: clap takes a value that starts with `-` for a flag otherwise.
        let flag = format!("--mem-budget={budget}");
        let (err, code) = one_line_error(&["run", "-m", "x", &flag, "hi"]);
        assert_eq!(code, Some(2), "{budget:?}: {err}");
        assert!(err.contains(why), "{budget:?}: {err}");
        assert!(err.contains("300MiB"), "{budget:?} gives no example: {err}");
    }
}

#[test]
fn spans_that_leave_no_window_are_refused() {
    let missing = "/nonexistent/dir/model.gguf";
    for args in [
        &["-c", "4", "--sinks", "4"][..],
        &["-c", "4"],
        &["-c", "0", "--sinks", "0"],
    ] {
        for cmd in ["info", "run", "bench"] {
            let mut argv = vec![cmd, "-m", missing];
            argv.extend(args);
            if cmd == "run" {
                argv.push("hi");
            }
            let (err, code) = one_line_error(&argv);
            assert_eq!(code, Some(1), "{argv:?}: {err}");
            assert!(err.contains("no room"), "{argv:?}: {err}");
        }
    }
    let (err, _) = one_line_error(&["run", "-m", missing, "-c", "64", "--window", "60", "hi"]);
    assert!(err.contains("give one"), "{err}");
    let (err, code) = one_line_error(&["run", "-m", missing, "--window", "0", "hi"]);
    assert_eq!(code, Some(2), "{err}");
    let (err, _) = one_line_error(&["run", "-m", missing, "--sinks=-1", "hi"]);
    assert!(err.contains("--sinks"), "{err}");
}

#[test]
fn perplexity_stream_flag() {
    let (err, code) = one_line_error(&[
        "perplexity",
        "-m",
        "x",
        "-f",
        "t.txt",
        "--stream",
        "--chunks",
        "2",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--chunks"), "{err}");
    let (err, _) = one_line_error(&[
        "perplexity",
        "-m",
        "x",
        "-f",
        "/nonexistent.txt",
        "--stream",
        "--mem-budget",
        "64MiB",
    ]);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn help_lists_the_memory_flags_and_hides_the_expert_ones() {
    for cmd in ["run", "chat", "perplexity", "bench", "info"] {
        let (ok, stdout, _) = run(&[cmd, "--help"]);
        assert!(ok, "{cmd} --help");
        for flag in [
            "--mem-budget <SIZE>",
            "--cache-type-k <TYPE>",
            "--cache-type-v <TYPE>",
            "--window <W>",
            "--sinks <S>",
            "--ctx-size <N>",
        ] {
            assert!(
                stdout.contains(flag),
                "{cmd} --help lacks {flag}:\n{stdout}"
            );
        }
        for hidden in ["--kv-recent", "--no-kv-rotate", "--no-kv-center"] {
            assert!(!stdout.contains(hidden), "{cmd} --help shows {hidden}");
        }
    }
    let (_, stdout, _) = run(&["perplexity", "--help"]);
    assert!(stdout.contains("--stream"), "{stdout}");
}

#[test]
fn info_lists_kv_bytes_per_token_for_every_cache_type() {
    let (_dir, model) = tiny_model();
    let v = info_json(&model);
    // 2 layers x 2 KV heads x (K + V) of 32 values: f16 16 words a head, q8 9, q4 5; the
    // codebook types need heads of 64 and are not offered.
    assert_eq!(v["kv_bytes_per_token_f16"], 512);
    assert_eq!(
        v["kv_bytes_per_token"],
        serde_json::json!({"f16": 512, "q8": 288, "q4": 160})
    );
    assert!(v.get("plan").is_none(), "no plan without memory flags");
    let (ok, stdout, stderr) = run(&["info", "-m", &model]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("KV bytes/token  512 at f16, 288 at q8, 160 at q4"),
        "{stdout}"
    );
    assert!(!stdout.contains("memory plan"), "{stdout}");
}

#[test]
fn info_prints_the_memory_plan() {
    let (_dir, model) = tiny_model();
    let (ok, stdout, stderr) = run(&[
        "info",
        "-m",
        &model,
        "--json",
        "--mem-budget",
        "512MiB",
        "-ctk",
        "q8",
        "-ctv",
        "q4",
        "--sinks",
        "4",
    ]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    let plan = &v["plan"];
    assert_eq!(plan["budget"], 512 << 20);
    assert_eq!(plan["cache_type_k"], "q8");
    assert_eq!(plan["cache_type_v"], "q4");
    assert_eq!(plan["sinks"], 4);
    let n = |k: &str| {
        plan[k]
            .as_u64()
            .unwrap_or_else(|| panic!("plan.{k} is not an integer: {plan}"))
    };
    assert!(n("weights") > 0, "{plan}");
    assert!(n("kv") > 0 && n("scratch") > 0);
    // Every line adds up to the total.
    let lines: u64 = plan["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let bytes = l["bytes"].as_u64().unwrap();
            if l["per_session"] == true {
                bytes * n("sessions")
            } else {
                bytes
            }
        })
        .sum();
    assert_eq!(n("total"), lines, "{plan}");
    assert_eq!(n("device_buffers"), n("weights") + n("kv") + n("scratch"));
    assert!(
        n("driver") > 0 && n("tokenizer") > 0 && n("readback") > 0,
        "{plan}"
    );
    assert!(n("total") <= 512 << 20, "{plan}");
    assert!(n("window") >= 64, "{plan}");
    // The model's context (256) caps the window when the budget allows more.
    assert!(n("window") + n("sinks") <= 256, "{plan}");
    assert_eq!(plan["kv_bytes_per_token"], v["kv_bytes_per_token"]);
    // Everything describe printed before is still there.
    assert_eq!(v["kv_bytes_per_token_f16"], 512);
    assert_eq!(v["n_layers"], 2);

    // An explicit window is kept, and costs what bytes_per_token says.
    let (ok, stdout, stderr) = run(&[
        "info", "-m", &model, "--json", "-ctk", "f16", "-ctv", "f16", "--window", "100",
    ]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["plan"]["window"], 100);
    assert_eq!(v["plan"]["budget"], serde_json::Value::Null);

    let (ok, stdout, stderr) = run(&["info", "-m", &model, "--mem-budget", "512MiB"]);
    assert!(ok, "{stderr}");
    for line in [
        "memory plan",
        "weights",
        "driver",
        "tokenizer",
        "metadata",
        "staging",
        "slack",
        "KV cache",
        "scratch",
        "readback",
        "bindings",
        "total",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
    assert!(stdout.contains("of 512.00 MiB"), "{stdout}");
}

#[test]
fn info_refuses_a_budget_too_small_in_one_line() {
    let (_dir, model) = tiny_model();
    let (err, code) = one_line_error(&["info", "-m", &model, "--mem-budget", "1KiB"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("memory budget"), "{err}");
}

/// A model with tensors no GPU kernel reads (Q3_K) is refused from its header alone: with a
/// GPU backend that has no adapter at all, the error is still about the tensor type, so no
/// device was ever asked for. `info` says which tensors cannot run.
#[test]
fn q3_k_models_are_refused_before_any_device() {
    let (_dir, model) = tiny_model_of(voyager_runtime::gguf::GgmlType::Q3_K);
    for args in [
        &["run", "-m", &model, "-n", "1", "hi"][..],
        &["info", "-m", &model, "--mem-budget", "64MiB"],
    ] {
        let out = voyager()
            .args(args)
            .env("WGPU_BACKEND", "dx12")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr
                .starts_with("error: unsupported model: no GPU kernel reads tensors of type Q3_K"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    let (ok, stdout, stderr) = run(&["info", "-m", &model]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("cannot run      14 Q3_K tensors have no GPU kernel (blk.0.attn_q.weight"),
        "{stdout}"
    );
    let v = info_json(&model);
    assert_eq!(v["unsupported_tensor_types"], serde_json::json!(["Q3_K"]));
    assert_eq!(v["tensors_without_gpu_kernel"][0]["count"], 14);
}

#[test]
fn info_plans_several_sessions() {
    let (_dir, model) = tiny_model();
    let plan = |sessions: &str| {
        let (ok, stdout, stderr) = run(&[
            "info",
            "-m",
            &model,
            "--json",
            "--window",
            "100",
            "--sessions",
            sessions,
        ]);
        assert!(ok, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        v["plan"].clone()
    };
    let (one, three) = (plan("1"), plan("3"));
    let n = |p: &serde_json::Value, k: &str| p[k].as_u64().unwrap();
    assert_eq!(n(&three, "sessions"), 3);
    assert_eq!(n(&three, "shared"), n(&one, "shared"));
    assert_eq!(n(&three, "per_session"), n(&one, "per_session"));
    assert_eq!(
        n(&three, "total"),
        n(&three, "shared") + 3 * n(&three, "per_session")
    );
    let (ok, stdout, _) = run(&["info", "-m", &model, "--sessions", "3"]);
    assert!(ok);
    assert!(stdout.contains("per session x 3"), "{stdout}");
    let (err, _) = one_line_error(&["info", "-m", &model, "--sessions", "0"]);
    assert!(err.contains("--sessions"), "{err}");
}

/// `voyager selfcheck` runs every kernel case on this machine's adapter and says so.
#[test]
fn selfcheck_passes_on_this_device() {
    let (ok, stdout, stderr) = run(&["selfcheck", "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let report = &v["reports"][0];
    assert_eq!(report["passed"], true);
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.len() > 40, "{} cases", cases.len());
    assert!(stderr.contains("agree with their CPU twins"), "{stderr}");
}

/// `bench --synthetic` writes a model of the named shape, runs it, and reports what a decode
/// step reads (the shape's every weight: its embedding is tied, so the head reads it whole)
/// and what the host does per token: one submit, two passes, nothing created, only the logits
/// read back. A bad spec is one error line.
#[test]
fn bench_synthetic_reports_bytes_and_host_work_per_token() {
    let (ok, stdout, stderr) = run(&[
        "bench",
        "--synthetic",
        "tiny:q4_0",
        "-p",
        "40",
        "-n",
        "3",
        "-r",
        "1",
        "--copy-mib",
        "1",
        "--profile",
        "2",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let shape = voyager_runtime::gguf::shapes::parse("tiny:q4_0").unwrap();
    assert_eq!(v["model"], "tiny:q4_0");
    assert_eq!(v["decode_weight_bytes_per_token"], shape.weight_bytes());
    assert!(v["decode_kv_bytes_per_token"].as_u64().unwrap() > 0, "{v}");
    for key in [
        "decode_tokens_per_second",
        "copy_bytes_per_second",
        "fma_flops_per_second",
        "decode_fraction_of_bandwidth",
        "prefill_fraction_of_fma_peak",
    ] {
        let x = v[key].as_f64().unwrap_or(-1.0);
        assert!(x > 0.0 && x.is_finite(), "{key}: {v}");
    }
    let host = &v["host_per_decode_token"];
    assert_eq!(host["submits"], 1.0, "{host}");
    assert_eq!(host["passes"], 2.0, "{host}");
    assert_eq!(host["buffers_created"], 0.0, "{host}");
    assert_eq!(host["bind_groups_created"], 0.0, "{host}");
    let vocab = shape.vocab_size() as f64;
    assert_eq!(host["readback_bytes"], 4.0 * vocab, "{host}");
    assert!(host["dispatches"].as_f64().unwrap() > 10.0, "{host}");
    assert!(
        host["cpu_record_submit_us"].as_f64().unwrap() > 0.0,
        "{host}"
    );

    // The GPU profile: every op of a step timed, by kind, one projection of each layer.
    let profile = &v["gpu_profile"];
    let ops = profile["ops"].as_array().unwrap();
    let find = |op: &str, on: &str| ops.iter().find(|r| r["op"] == op && r["on"] == on);
    let attn_q = find("matmul", "attn_q").expect("attn_q is profiled");
    assert_eq!(attn_q["count"], 2, "one per layer: {attn_q}");
    assert!(attn_q["gb_per_s"].as_f64().unwrap() > 0.0, "{attn_q}");
    assert!(find("attention", "").is_some(), "{profile}");
    let sum: f64 = ops.iter().map(|r| r["us"].as_f64().unwrap()).sum();
    let step = profile["step_us"].as_f64().unwrap();
    assert!(
        step > 0.0 && (sum - step).abs() <= 1e-6 * step,
        "{sum} vs {step}"
    );

    // Under a memory budget the ceilings (buffers and pipelines outside the plan) are skipped.
    let (ok, stdout, stderr) = run(&[
        "bench",
        "--synthetic",
        "tiny:q4_0",
        "-p",
        "8",
        "-n",
        "1",
        "-r",
        "1",
        "--mem-budget",
        "300MiB",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["copy_bytes_per_second"].is_null(), "{v}");
    assert!(v["decode_tokens_per_second"].as_f64().unwrap() > 0.0, "{v}");

    assert_one_line_error(&["bench", "--synthetic", "llama-70b:q4_k"], "unknown shape");
    assert_one_line_error(
        &["bench", "--synthetic", "tiny:q2_k"],
        "type the GPU cannot read",
    );
    let out = voyager()
        .args(["bench", "-m", "x", "--synthetic", "tiny:q4_0"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "-m and --synthetic together are refused"
    );
}
