//! Long-context retrieval, honestly: a five-digit pass key stated at the start of ~390 tokens
//! of filler, asked for at the end, on SmolLM2-135M at three memory budgets (the two smaller
//! ones under both cache policies). With a budget whose window holds the whole prompt the
//! model must answer it; with smaller budgets the key slides out of the cache and the answer is
//! reported, not asserted (information can still reach the end through the keys of tokens that
//! saw it, layer by layer, so losing it is not certain). docs/KV_CACHE.md has the wider table.

use voyager_e2e::model_path;
use voyager_runtime::budget::{format_size, plan};
use voyager_runtime::engine::sampling::SamplingParams;
use voyager_runtime::engine::{Engine, EngineOptions, GenerateOptions, Prompt};
use voyager_runtime::kv::KvPolicy;
use voyager_runtime::model::Model;

const KEY: &str = "68351";

fn prompt() -> String {
    let filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and \
                  back again. ";
    format!(
        "There is important info hidden inside a lot of irrelevant text. Find it and memorize \
         it. The pass key is {KEY}. Remember it. {KEY} is the pass key. {}What is the pass \
         key? The pass key is",
        filler.repeat(14)
    )
}

/// The driver and pipelines' memory, fixed so that the budget a plan names here gives the
/// same window at load (a load otherwise measures it).
const DRIVER: u64 = 100 << 20;

/// The budget whose plan gives a window of `window` tokens.
fn budget_for(model: &Model, window: u32) -> u64 {
    let options = EngineOptions {
        window: Some(window),
        driver_memory: Some(DRIVER),
        ..EngineOptions::default()
    };
    plan(model, &options).unwrap().total()
}

#[test]
fn passkey_at_three_budgets() {
    let path = model_path("smollm2-135m");
    let model = Model::open(&path).unwrap();
    let n_prompt = model.tokenizer.encode(&prompt(), true).unwrap().len();
    assert!((350..450).contains(&n_prompt), "{n_prompt} prompt tokens");
    let generate = GenerateOptions {
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        max_tokens: 6,
        ..GenerateOptions::default()
    };
    // Windows of 508 (the prompt fits), 252 and 124 tokens, given as budgets; at the two
    // smaller budgets the importance policy too, in the same bytes (its slot table leaves it
    // a smaller window).
    let mut windows_at = std::collections::HashMap::new();
    for (window, policy, must_find) in [
        (508u32, KvPolicy::Window, true),
        (252, KvPolicy::Window, false),
        (252, KvPolicy::Importance, false),
        (124, KvPolicy::Window, false),
        (124, KvPolicy::Importance, false),
    ] {
        let budget = budget_for(&model, window);
        let options = EngineOptions {
            mem_budget: Some(budget),
            driver_memory: Some(DRIVER),
            kv_policy: policy,
            ..EngineOptions::default()
        };
        let engine = Engine::load(&path, &options, &mut |_| {}).unwrap();
        let chosen = engine.kv_config().window;
        match policy {
            KvPolicy::Window => {
                assert!(
                    chosen >= window,
                    "{} gave a window of {chosen}",
                    format_size(budget)
                );
                windows_at.insert(window, chosen);
            }
            KvPolicy::Importance => {
                assert!(
                    chosen < windows_at[&window],
                    "the slot table took no memory"
                );
                assert!(engine.memory_plan().total() <= budget);
            }
        }
        let mut session = engine.session().unwrap();
        // A prompt longer than the span streams through the window: the model sees the
        // sinks and the newest tokens when it answers, and the session says how many fell out.
        let g = session
            .generate(Prompt::Text(&prompt()), &generate, &mut |_| true)
            .unwrap();
        let span = engine.context_size();
        assert_eq!(g.prompt_evicted, n_prompt.saturating_sub(span));
        assert_eq!(g.prefilled, n_prompt);
        let found = g.text.contains(KEY);
        eprintln!(
            "budget {} -> {policy} window {chosen} (+4 sinks): key {} tokens back, answer {:?} \
             -> {}",
            format_size(budget),
            n_prompt - 25,
            g.text,
            if found { "found" } else { "lost" }
        );
        if must_find {
            assert!(
                found,
                "the key was inside the window but the answer was {:?}",
                g.text
            );
        }
    }
}
