//! The bounded cache end to end on SmolLM2-135M: a stream longer than the window is scored
//! token by token through the ring (identical to the dense cache until eviction starts), and
//! generation runs past the window at constant device memory.

use std::sync::Arc;

use voyager_e2e::{fixture_path, model_path};
use voyager_runtime::engine::perplexity::windows;
use voyager_runtime::engine::sampling::SamplingParams;
use voyager_runtime::engine::{Engine, EngineOptions, GenerateOptions, Prompt, StopReason};
use voyager_runtime::tokenizer::ChatMessage;

const MODEL: &str = "smollm2-135m";

fn engine(window: u32, sinks: u32) -> Arc<Engine> {
    let options = EngineOptions {
        window: Some(window),
        sinks,
        batch: 16,
        ..EngineOptions::default()
    };
    Engine::load(&model_path(MODEL), &options, &mut |_| {}).unwrap()
}

/// 200 tokens through 4 sinks and a 60-token window: every position is scored; before the
/// window is full the scores equal a cache that holds everything (the same kernels see the
/// same keys); after it, they differ (old keys are gone) but stay sane.
#[test]
fn a_stream_longer_than_the_window_scores_every_token() {
    let text = std::fs::read_to_string(fixture_path("text/alice-20k.txt")).unwrap();
    let bounded = engine(60, 4);
    let ids = windows(&bounded.model().tokenizer, &text, 200)
        .unwrap()
        .remove(0);
    assert_eq!(ids.len(), 200);
    let stream = bounded.session().unwrap().score(&ids).unwrap();
    let dense = engine(2048, 4).session().unwrap().score(&ids).unwrap();
    assert_eq!(stream.len(), 199);
    // Positions 0..64 see every earlier key in both caches.
    for (i, (s, d)) in stream.iter().zip(&dense).enumerate().take(64) {
        assert!(
            (s.logprob - d.logprob).abs() < 1e-3,
            "position {i}: {} vs {}",
            s.logprob,
            d.logprob
        );
    }
    let nll = |s: &[voyager_runtime::engine::TokenScore]| {
        -s.iter().map(|x| f64::from(x.logprob)).sum::<f64>() / s.len() as f64
    };
    let (late_s, late_d) = (nll(&stream[100..]), nll(&dense[100..]));
    eprintln!(
        "positions 100..199: ppl {:.2} with a 60-token window, {:.2} dense",
        late_s.exp(),
        late_d.exp()
    );
    assert!(stream.iter().all(|s| s.logprob.is_finite()));
    assert!(
        stream[100..]
            .iter()
            .zip(&dense[100..])
            .any(|(s, d)| (s.logprob - d.logprob).abs() > 1e-3),
        "eviction changed nothing"
    );
    // A window keeps most of the local context: within 25% of dense on this prose.
    assert!(late_s < late_d * 1.25, "{late_s} vs {late_d}");
}

/// Greedy generation of 3x the attention span: the cache wraps and no buffer grows.
#[test]
fn generation_runs_past_the_window_at_constant_memory() {
    let engine = engine(24, 4);
    let mut session = engine.session().unwrap();
    let options = GenerateOptions {
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        max_tokens: 84,
        stop_at_eog: false,
        cancel: None,
        logprobs: false,
        ..Default::default()
    };
    let before = engine.gpu().memory_stats();
    let mut text = String::new();
    let g = session
        .generate(Prompt::Text("Once upon a time"), &options, &mut |t| {
            text.push_str(t);
            true
        })
        .unwrap();
    let after = engine.gpu().memory_stats();
    assert_eq!(g.stop, StopReason::TokenLimit);
    assert_eq!(g.tokens.len(), 84);
    assert!(session.history().len() > 3 * engine.context_size());
    assert_eq!(before.live_bytes, after.live_bytes, "device memory grew");
    assert!(!text.trim().is_empty());
    eprintln!(
        "{} tokens past a {}-token span: {text:?}",
        g.tokens.len(),
        engine.context_size()
    );
}

/// Regenerating an answer rolls the session back past tokens whose f16 recent copies were
/// overwritten by the first answer: the copies are tagged, so the second answer reads the
/// right keys and, greedy, repeats the first one (a fresh session agrees too).
#[test]
fn regenerating_an_answer_repeats_it() {
    let engine = engine(4096, 4);
    let greedy = GenerateOptions {
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        max_tokens: 6,
        stop_at_eog: false,
        cancel: None,
        logprobs: false,
        ..Default::default()
    };
    let chat = [ChatMessage {
        role: "user".into(),
        content: "Name three colours of the rainbow.".into(),
    }];
    let mut session = engine.session().unwrap();
    let first = session
        .generate(Prompt::Chat(&chat), &greedy, &mut |_| true)
        .unwrap();
    let again = session
        .generate(Prompt::Chat(&chat), &greedy, &mut |_| true)
        .unwrap();
    assert_eq!(again.prefilled, 1, "the prompt should come from the cache");
    let fresh = engine
        .session()
        .unwrap()
        .generate(Prompt::Chat(&chat), &greedy, &mut |_| true)
        .unwrap();
    assert_eq!(
        first.tokens, again.tokens,
        "{:?} vs {:?}",
        first.text, again.text
    );
    assert_eq!(first.tokens, fresh.tokens);
}
