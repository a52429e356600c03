//! `voyager run`, `chat`, `perplexity` and `bench` as a user runs them, on the real models
//! (pulled on first use) and the GPU adapter at hand (Mesa's software Vulkan in CI).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn voyager() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voyager"));
    cmd.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = voyager().args(args).output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
}

fn golden_greedy(model: &str, name: &str) -> Vec<u64> {
    let path = repo().join(format!("tests/fixtures/llama/{model}.json"));
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    g["greedy"]["f32"][name]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// Greedy `run --json` prints one object whose prompt ids are `tokenize`'s and whose tokens
/// are llama.cpp's greedy continuation (margins on these steps are far from ties).
#[test]
fn run_json_is_greedy_llama_cpp() {
    for model in ["smollm2-135m", "gemma3-270m"] {
        let prompt = "The capital of France is";
        let (ok, stdout, stderr) = run(&[
            "run", "-m", model, "--temp", "0", "-n", "4", "--json", prompt,
        ]);
        assert!(ok, "{model}: {stderr}");
        let v = json(&stdout);
        let (_, tokenized, _) = run(&["tokenize", "-m", model, "--json", prompt]);
        assert_eq!(v["prompt_tokens"], json(&tokenized), "{model}");
        let tokens: Vec<u64> = v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        assert_eq!(tokens, golden_greedy(model, "capital")[..4], "{model}: {v}");
        assert!(!v["text"].as_str().unwrap().is_empty());
        assert!(
            stderr.contains("tokens/s"),
            "{model}: no speed report: {stderr}"
        );
    }
}

#[test]
fn run_streams_text_and_seeds_repeat() {
    let args = [
        "run",
        "-m",
        "smollm2-135m",
        "-n",
        "6",
        "--temp",
        "0.9",
        "--seed",
        "42",
        "Once upon a time",
    ];
    let (ok, first, stderr) = run(&args);
    assert!(ok, "{stderr}");
    assert!(!first.trim().is_empty());
    let (_, second, _) = run(&args);
    assert_eq!(first, second, "the same seed gives the same text");
}

#[test]
fn chat_keeps_the_cache_between_turns() {
    let mut child = voyager()
        .args(["chat", "-m", "smollm2-135m", "--temp", "0", "-n", "6", "-v"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is 2+2?\nAnd 3+3?\n/exit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let turns: Vec<(usize, usize)> = stderr
        .lines()
        .filter_map(|l| {
            let rest = l.split("turn: ").nth(1)?;
            let n: Vec<usize> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            // "turn: P prompt tokens (R reused from the cache), ..."
            Some((n[0], n[1]))
        })
        .collect();
    assert_eq!(turns.len(), 2, "{stderr}");
    assert!(turns[0].1 == 0, "the first turn reuses nothing: {turns:?}");
    assert!(
        turns[1].1 > turns[0].0 / 2,
        "the second turn reuses the first: {turns:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .count()
            >= 1
    );
}

#[test]
fn perplexity_json_and_logprob_dump() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("logprobs.json");
    let text = repo().join("tests/fixtures/text/alice-20k.txt");
    let (ok, stdout, stderr) = run(&[
        "perplexity",
        "-m",
        "smollm2-135m",
        "-f",
        text.to_str().unwrap(),
        "-c",
        "64",
        "--chunks",
        "2",
        "--json",
        "--dump-logprobs",
        dump.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["windows"], 2);
    assert_eq!(v["n_scored"], 126);
    let ppl = v["ppl"].as_f64().unwrap();
    assert!(ppl.is_finite() && ppl > 1.0 && ppl < 1000.0, "{v}");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let windows = d.as_array().unwrap();
    assert_eq!(windows.len(), 2);
    let lps: Vec<f64> = windows
        .iter()
        .flat_map(|w| {
            w["target_logprob"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
        })
        .collect();
    assert_eq!(lps.len(), 126);
    assert_eq!(windows[0]["top1"].as_array().unwrap().len(), 63);
    let mean_nll = -lps.iter().sum::<f64>() / lps.len() as f64;
    assert!((mean_nll - v["mean_nll"].as_f64().unwrap()).abs() < 1e-4);
}

/// `--stream`: the whole file as one sequence through a 28-token window with 4 sinks; every
/// token after the first is scored, and the counted device peak is reported.
#[test]
fn perplexity_streams_a_file_through_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("text.txt");
    let text = std::fs::read_to_string(repo().join("tests/fixtures/text/alice-20k.txt")).unwrap();
    let text: String = text.chars().take(500).collect();
    std::fs::write(&file, &text).unwrap();
    let (ok, stdout, stderr) = run(&[
        "perplexity",
        "-m",
        "smollm2-135m",
        "-f",
        file.to_str().unwrap(),
        "--stream",
        "--window",
        "28",
        "--sinks",
        "4",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v = json(&stdout);
    let (_, ids, _) = run(&["tokenize", "-m", "smollm2-135m", "--json", &text]);
    let n = json(&ids).as_array().unwrap().len() as u64;
    assert!(n > 100, "{n} tokens");
    assert_eq!(v["stream"], true);
    assert_eq!(v["windows"], 1);
    assert_eq!(v["n_scored"].as_u64().unwrap(), n - 1, "{v}");
    assert_eq!(
        (v["window"].as_u64(), v["sinks"].as_u64()),
        (Some(28), Some(4))
    );
    assert_eq!(v["cache_type_k"], "tq4");
    let ppl = v["ppl"].as_f64().unwrap();
    assert!(ppl.is_finite() && ppl > 1.0 && ppl < 1000.0, "{v}");
    assert!(v["peak_device_bytes"].as_u64().unwrap() > 90 << 20, "{v}");
}

#[test]
fn bench_reports_speeds() {
    let (ok, stdout, stderr) = run(&[
        "bench",
        "-m",
        "smollm2-135m",
        "-p",
        "8",
        "-n",
        "2",
        "-r",
        "1",
        "--copy-mib",
        "16",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v = json(&stdout);
    assert!(v["prefill_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(v["decode_fraction_of_bandwidth"].as_f64().unwrap() > 0.0);
    assert!(v["decode_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(!v["adapter"].as_str().unwrap().is_empty());
}

/// A prompt longer than the attention span is not refused: it streams through the window, with
/// one warning line that says how much of it the model no longer sees.
#[test]
fn a_long_prompt_streams_through_the_window() {
    let long = "word ".repeat(40);
    let (ok, stdout, stderr) = run(&[
        "run",
        "-m",
        "smollm2-135m",
        "-c",
        "16",
        "-n",
        "2",
        "--temp",
        "0",
        "--json",
        &long,
    ]);
    assert!(ok, "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    let v = json(&stdout);
    let n = v["prompt_tokens"].as_array().unwrap().len();
    assert!(n > 16, "{n} prompt tokens");
    assert!(
        warnings[0].contains(&format!("the {} before those slid out", n - 16)),
        "{}",
        warnings[0]
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn assert_one_line_error(args: &[&str], expect: &str) {
    let (ok, _, stderr) = run(args);
    assert!(!ok, "{args:?} succeeded");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(lines[0].contains(expect), "{args:?}: {stderr}");
}

#[test]
fn bad_requests_are_one_line_errors() {
    assert_one_line_error(
        &["run", "-m", "smollm2-135m", "-c", "100000", "hi"],
        "exceed the model's context of 8192",
    );
    assert_one_line_error(
        &["run", "-m", "smollm2-135m", "--mem-budget", "64MiB", "hi"],
        "is too small for this model",
    );
    assert_one_line_error(
        &[
            "chat",
            "-m",
            "smollm2-135m",
            "--mem-budget",
            "120MiB",
            "--window",
            "8000",
        ],
        "cannot hold a 8000-token window",
    );
    assert_one_line_error(
        &["run", "-m", "smollm2-135m", "--top-p", "0", "hi"],
        "top_p",
    );
    assert_one_line_error(
        &["perplexity", "-m", "smollm2-135m", "-f", "/nonexistent.txt"],
        "cannot read",
    );
}

/// `run --prompt-cache FILE`: the first run evaluates the prompt and saves it, a second run of
/// the same prompt restores it instead (and says so), and both answer alike; a longer prompt
/// reuses the saved part. A file saved with another cache is refused in one line.
#[test]
fn run_prompt_cache_saves_then_reuses_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompt.vsession");
    let cache = file.to_str().unwrap();
    let prompt = "The capital of France is";
    let args = |p: &'static str| {
        vec![
            "run",
            "-m",
            "smollm2-135m",
            "--temp",
            "0",
            "-n",
            "4",
            "--json",
            "-c",
            "256",
            "--prompt-cache",
            cache,
            p,
        ]
    };
    let (ok, first, stderr) = run(&args(prompt));
    assert!(ok, "{stderr}");
    let n = json(&first)["prompt_tokens"].as_array().unwrap().len();
    assert!(
        stderr.contains(&format!("reused 0 of {n} prompt tokens")),
        "{stderr}"
    );
    assert!(file.exists());
    let (ok, second, stderr) = run(&args(prompt));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("reused {n} of {n} prompt tokens")),
        "{stderr}"
    );
    assert_eq!(json(&first)["tokens"], json(&second)["tokens"]);
    let (ok, _, stderr) = run(&args("The capital of France is Paris, and of Italy"));
    assert!(ok, "{stderr}");
    assert!(stderr.contains(&format!("reused {n} of ")), "{stderr}");
    // The same file with another window: refused, not overwritten.
    let before = std::fs::read(&file).unwrap();
    let (ok, _, stderr) = run(&[
        "run",
        "-m",
        "smollm2-135m",
        "-n",
        "1",
        "-c",
        "128",
        "--prompt-cache",
        cache,
        prompt,
    ]);
    assert!(!ok);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("saved with a cache of"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

/// `chat --session FILE` saves after every turn; a second process resumes the conversation
/// with its messages and cache and goes on.
#[test]
fn chat_session_resumes_in_a_new_process() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.vsession");
    let session = file.to_str().unwrap();
    let chat = |input: &[u8]| {
        let mut child = voyager()
            .args([
                "chat",
                "-m",
                "smollm2-135m",
                "--temp",
                "0",
                "-n",
                "6",
                "-c",
                "512",
                "--session",
                session,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };
    let (_, stderr) = chat(b"What is 2+2?\n/exit\n");
    assert!(!stderr.contains("resumed"), "{stderr}");
    assert!(file.exists());
    let (answer, stderr) = chat(b"And 3+3?\n/save\n/exit\n");
    assert!(stderr.contains("resumed 2 messages"), "{stderr}");
    assert!(stderr.contains("saved to"), "{stderr}");
    assert!(!answer.trim().is_empty());
    let (_, stderr) = chat(b"/exit\n");
    assert!(stderr.contains("resumed 4 messages"), "{stderr}");
}
