//! The GPU transformer against llama.cpp, on both models (golden files made by
//! `tests/scripts/make_llama_golden.py`; their README explains the referee).
//!
//! Over one 2048-token window of real prose (`tests/fixtures/text/alice-20k.txt`):
//! - the window's ids equal llama.cpp's (tokenized without special tokens);
//! - perplexity within 1% of llama.cpp's as shipped;
//! - top-1 agreement >= 93% with llama.cpp as shipped (which rounds activations to 8 bits
//!   before quantized mat-muls and disagrees with itself on 3-5% across harmless settings),
//!   and >= 98% with llama.cpp on an all-F32 copy of the same weights (the exact reference an
//!   f32 GPU implementation should sit next to).
//!
//! Greedy continuations: the first 16 tokens match the F32-copy reference, except that from
//! the first step where its top two logits are nearly tied the two may part. "Nearly tied" is
//! a margin below [`NEAR_TIE`] = 0.05 logits: our logprobs sit 0.0011 (mean) from that
//! reference, and llama.cpp itself moves them by up to 0.034 between an f16 and an f32 KV
//! cache (golden README), so closer calls are within the reference's own noise. Measured
//! (2026-11-22, lavapipe): 16/16 tokens on all three prompts of both models.

use serde_json::Value;
use voyager_e2e::{fixture_path, model_path};
use voyager_runtime::engine::perplexity::{evaluate, windows};
use voyager_runtime::engine::sampling::SamplingParams;
use voyager_runtime::engine::{Engine, EngineOptions, GenerateOptions, Prompt};
use voyager_runtime::kv::KvType;

const NEAR_TIE: f64 = 0.05;
const STEPS: usize = 16;

fn golden(model: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(&format!("llama/{model}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn agreement(model: &str) {
    let g = golden(model);
    let engine = Engine::load(
        &model_path(model),
        // The f16 cache, which llama.cpp's golden files used; the window holds the whole text.
        &EngineOptions {
            window: Some(2048),
            cache_type_k: KvType::F16,
            cache_type_v: KvType::F16,
            ..EngineOptions::default()
        },
        &mut |_| {},
    )
    .unwrap();
    let tok = &engine.model().tokenizer;

    // The same window llama.cpp scored.
    let text = std::fs::read_to_string(fixture_path("text/alice-20k.txt")).unwrap();
    let window = windows(tok, &text, 2048).unwrap().remove(0);
    assert_eq!(
        window,
        ids(&g["perplexity"]["window_ids"]),
        "{model}: window ids"
    );

    let mut session = engine.session().unwrap();
    let start = std::time::Instant::now();
    let report = evaluate(&mut session, std::slice::from_ref(&window), &mut |_, _| {}).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let ours = &report.windows[0];
    assert_eq!(ours.len(), 2047);

    let runs = &g["perplexity"]["runs"];
    let mut line = format!("{model}: ppl {:.4} in {seconds:.0} s", report.ppl);
    for run in ["shipped", "f32"] {
        let top1 = ids(&runs[run]["top1"]);
        let lp = floats(&runs[run]["target_logprob"]);
        let agree = ours
            .iter()
            .zip(&top1)
            .filter(|(a, b)| a.top1 == **b)
            .count() as f64
            / 2047.0;
        let mad = ours
            .iter()
            .zip(&lp)
            .map(|(a, b)| (f64::from(a.logprob) - b).abs())
            .sum::<f64>()
            / 2047.0;
        let ppl = runs[run]["ppl"].as_f64().unwrap();
        line += &format!(
            " | vs {run}: ppl {ppl:.4} ({:+.2}%), top-1 {:.2}%, mean |d logprob| {mad:.4}",
            (report.ppl / ppl - 1.0) * 100.0,
            agree * 100.0
        );
        let need = if run == "shipped" { 0.93 } else { 0.98 };
        assert!(
            agree >= need,
            "{line}: top-1 agreement with {run} below {need}"
        );
        if run == "shipped" {
            assert!(
                (report.ppl / ppl - 1.0).abs() <= 0.01,
                "{line}: ppl not within 1%"
            );
        }
    }
    eprintln!("{line}");

    // Greedy continuations.
    for prompt in g["greedy"]["prompts"].as_array().unwrap() {
        let name = prompt["name"].as_str().unwrap();
        let reference = &g["greedy"]["f32"][name];
        let want = ids(&reference["ids"]);
        let margins: Vec<f64> = reference["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["margin"].as_f64().unwrap())
            .collect();
        session.reset();
        let options = GenerateOptions {
            sampling: SamplingParams::greedy(),
            max_tokens: STEPS,
            stop_at_eog: false,
            cancel: None,
            logprobs: false,
            ..Default::default()
        };
        let gen = session
            .generate(Prompt::Tokens(&ids(&prompt["ids"])), &options, &mut |_| {
                true
            })
            .unwrap();
        let tie = margins
            .iter()
            .position(|&m| m < NEAR_TIE)
            .unwrap_or(STEPS)
            .min(STEPS);
        let agree = gen
            .tokens
            .iter()
            .zip(&want)
            .take_while(|(a, b)| a == b)
            .count();
        eprintln!(
            "{model} greedy `{name}`: {agree}/{STEPS} match, first near tie at step {tie}: {:?}",
            gen.text
        );
        assert!(
            agree >= tie,
            "{model} greedy `{name}`: parted at step {agree} (margin {:.3}) before the first \
             near tie at {tie}: got {:?}, want {:?}",
            margins[agree],
            &gen.tokens,
            &want[..STEPS]
        );
    }
}

#[test]
fn smollm2_agrees_with_llama_cpp() {
    agreement("smollm2-135m");
}

#[test]
fn gemma3_agrees_with_llama_cpp() {
    agreement("gemma3-270m");
}
