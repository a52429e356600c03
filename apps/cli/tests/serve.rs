//! `voyager serve` against the official `openai` Python client: the real SmolLM2 behind a
//! server on a free loopback port, driven by `tests/openai/test_server.py` (chat and
//! completions, streamed or not, equal to `voyager run --temp 0`; 8 concurrent streams on 4
//! sessions equal to their sequential runs, and a 503 past the queue; a disconnect that frees
//! its session; prompt reuse; every bad request an OpenAI-style 4xx). Then the server's peak
//! resident memory is checked against the budget, as `memory.rs` does for `voyager run`.
//!
//! The client is pinned in `tests/openai/requirements.txt`; `scripts/test` installs it into
//! `target/openai-venv` (or set `VOYAGER_TEST_PYTHON` to a Python that has it).

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

const MIB: u64 = 1 << 20;
const BUDGET_MIB: u64 = 300;
const PARALLEL: usize = 4;
const QUEUE: usize = 4;
const MAX_BODY: u64 = 64 * 1024;
const MAX_TOKENS: usize = 64;
const CTX: usize = 512;
const KEY: &str = "sk-voyager-test";
const ALIAS: &str = "voyager-test-alias";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Python with the pinned `openai` client.
fn python() -> PathBuf {
    let python = std::env::var_os("VOYAGER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/openai-venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import openai: run scripts/test (it installs tests/openai/requirements.txt \
         into target/openai-venv), or set VOYAGER_TEST_PYTHON",
        python.display()
    );
    python
}

/// Peak resident bytes of a process (VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

#[test]
fn openai_client_against_voyager_serve() {
    let python = python();
    let model = "smollm2-135m".to_string();
    let mut server = Command::new(assert_cmd::cargo::cargo_bin("voyager"))
        .args([
            "serve",
            "-m",
            &model,
            "--port",
            "0",
            "--api-key",
            KEY,
            "--alias",
            ALIAS,
        ])
        .args(["-c", &CTX.to_string(), "--parallel", &PARALLEL.to_string()])
        .args([
            "--queue",
            &QUEUE.to_string(),
            "--max-tokens",
            &MAX_TOKENS.to_string(),
        ])
        .args(["--max-body", &format!("{MAX_BODY}"), "--mem-budget"])
        .arg(format!("{BUDGET_MIB}MiB"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let base = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = server.kill();
            panic!("the server stopped before listening:\n{seen}");
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap();
            break url.trim_end_matches("/v1").to_string();
        }
    };
    // Keep draining the server's log so that it never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let out = Command::new(&python)
        .arg(workspace().join("tests/openai/test_server.py"))
        .env("VOYAGER_BASE_URL", &base)
        .env("VOYAGER_API_KEY", KEY)
        .env("VOYAGER_BIN", assert_cmd::cargo::cargo_bin("voyager"))
        .env("VOYAGER_MODEL", &model)
        .env("VOYAGER_ALIAS", ALIAS)
        .env("VOYAGER_CTX", CTX.to_string())
        .env("VOYAGER_PARALLEL", PARALLEL.to_string())
        .env("VOYAGER_QUEUE", QUEUE.to_string())
        .env("VOYAGER_MAX_BODY", MAX_BODY.to_string())
        .env("VOYAGER_MAX_TOKENS", MAX_TOKENS.to_string())
        .output()
        .unwrap();
    let peak = peak_rss(pid);
    // SAFETY: a signal to our own child; SIGTERM asks for a graceful shutdown.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let status = server.wait().unwrap();
    let log = log.join().unwrap().join("\n");
    let report = format!(
        "{}\n{}\nserver log:\n{seen}{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the client tests failed:\n{report}");
    assert!(
        status.success(),
        "the server did not shut down cleanly: {status}\n{report}"
    );
    let base_rss = common::baseline();
    eprintln!(
        "server peak RSS {} MiB, budget {BUDGET_MIB} MiB, baseline {} MiB",
        peak / MIB,
        base_rss / MIB
    );
    assert!(
        peak <= BUDGET_MIB * MIB + base_rss,
        "the server's peak RSS {} MiB is over the budget {BUDGET_MIB} MiB + the binary's {} MiB",
        peak / MIB,
        base_rss / MIB
    );
}
