//! The budget is the whole process: for both models at three budgets (the smallest a load
//! accepts, a middle one, a large one), the peak resident memory of `voyager run` stays at or
//! under the budget plus the binary's own baseline (the peak of `voyager info` on a tiny
//! model); so does a `perplexity --stream` run and a bench of two sessions on one engine.
//!
//! On the software driver (lavapipe) GPU buffers are process memory, so peak RSS sees every
//! byte the plan names. Peaks come from the kernel (`wait4`'s `ru_maxrss`) for each child.

#![cfg(target_os = "linux")]

use std::path::PathBuf;
use std::process::Command;

use common::{baseline, run_measured};

const MIB: u64 = 1 << 20;

mod common;

fn voyager() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("voyager"))
}

/// The smallest budget `info` says works for these flags (from its one-line refusal).
fn smallest(model: &str, flags: &[&str]) -> u64 {
    let mut args = vec!["info", "-m", model, "--mem-budget", "1MiB"];
    args.extend_from_slice(flags);
    let out = voyager().args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // "... use --mem-budget X or more" or "... raise --mem-budget to X or lower --window".
    let size = err
        .split("--mem-budget ")
        .nth(1)
        .map(|r| r.trim_start_matches("to "))
        .and_then(|r| r.split(" or ").next())
        .unwrap_or_else(|| panic!("no smallest budget in {err}"));
    voyager_runtime::budget::parse_size(&size.replace(' ', "")).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/text")
        .join(name)
}

fn check(what: &str, budget: u64, base: u64, args: &[&str]) {
    let flag = format!("--mem-budget={budget}");
    let mut all = args.to_vec();
    all.push(&flag);
    let (ok, _, err, peak) = run_measured(&all);
    assert!(ok, "{what} at {budget} bytes: {err}");
    eprintln!(
        "{what}: budget {:.1} MiB, peak {:.1} MiB (baseline {:.1} MiB, margin {:.1} MiB)",
        budget as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        base as f64 / MIB as f64,
        (budget + base) as f64 / MIB as f64 - peak as f64 / MIB as f64
    );
    assert!(
        peak <= budget + base,
        "{what}: peak {peak} bytes over the budget {budget} + baseline {base}"
    );
}

#[test]
fn peak_resident_memory_stays_inside_the_budget() {
    let base = baseline();
    eprintln!("baseline: {:.1} MiB", base as f64 / MIB as f64);
    let prompt = ["-n", "4", "--temp", "0", "The capital of France is"];
    for model in ["smollm2-135m", "gemma3-270m"] {
        // A first load measures this device's driver and pipelines; plans made afterwards
        // (including `info`'s) use that figure.
        let (ok, _, err, _) = run_measured(&["run", "-m", model, "-n", "1", "hi"]);
        assert!(ok, "{err}");
        let least = smallest(model, &[]);
        for (name, budget) in [
            ("smallest", least),
            ("middle", least + 48 * MIB),
            ("large", least + 512 * MIB),
        ] {
            let mut args = vec!["run", "-m", model];
            args.extend_from_slice(&prompt);
            check(&format!("{model} run, {name} budget"), budget, base, &args);
        }
    }

    // Scoring a text through the sliding window: the plan includes every row's logits.
    let text = fixture("alice-20k.txt");
    let head: String = std::fs::read_to_string(&text).unwrap()[..1500].to_string();
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, head).unwrap();
    let least = smallest("smollm2-135m", &["--window", "96"]);
    check(
        "smollm2-135m perplexity --stream",
        least + 96 * MIB,
        base,
        &[
            "perplexity",
            "-m",
            "smollm2-135m",
            "--stream",
            "--window",
            "96",
            "--json",
            "-f",
            short.to_str().unwrap(),
        ],
    );

    // Two sessions on one engine at once, in the smallest budget planned for two.
    let least = smallest("smollm2-135m", &["--sessions", "2"]);
    check(
        "smollm2-135m two sessions",
        least,
        base,
        &[
            "bench",
            "-m",
            "smollm2-135m",
            "--sessions",
            "2",
            "-p",
            "8",
            "-n",
            "2",
            "-r",
            "1",
        ],
    );
}
