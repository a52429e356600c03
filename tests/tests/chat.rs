//! One engine, many hosts, on SmolLM2-135M: sessions on several threads agree with single runs,
//! and `Chat` (the conversation API every host uses) feeds only new tokens, regenerates and
//! edits turns, stops from another thread within a token, and reports errors by kind.
//!
//! One engine is loaded for the whole file and shared by every test (they run in parallel
//! threads, which exercises the sharing too).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use voyager_e2e::model_path;
use voyager_runtime::engine::sampling::SamplingParams;
use voyager_runtime::engine::{Chat, Engine, EngineOptions, GenerateOptions, Prompt, StopReason};
use voyager_runtime::ErrorKind;

fn engine() -> &'static Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let options = EngineOptions {
            window: Some(508),
            ..EngineOptions::default()
        };
        Engine::load(&model_path("smollm2-135m"), &options, &mut |_| {}).unwrap()
    })
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        max_tokens,
        stop_at_eog: false,
        cancel: None,
        logprobs: false,
        ..Default::default()
    }
}

/// Four sessions on four threads at once, each greedy on its own prompt, produce exactly the
/// tokens the same prompt gives run alone: the GPU work of one session never mixes with
/// another's.
#[test]
fn four_sessions_on_four_threads_equal_single_runs() {
    let engine = engine();
    let prompts = [
        "The capital of France is",
        "def fibonacci(n):",
        "Once upon a time, in a small village,",
        "The three primary colours are",
    ];
    let options = greedy(8);
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            let mut s = engine.session().unwrap();
            s.generate(Prompt::Text(p), &options, &mut |_| true)
                .unwrap()
                .tokens
        })
        .collect();
    let together: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| {
                let engine = Arc::clone(engine);
                let options = options.clone();
                scope.spawn(move || {
                    let mut s = engine.session().unwrap();
                    s.generate(Prompt::Text(p), &options, &mut |_| true)
                        .unwrap()
                        .tokens
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a, t, "prompt {i} ({:?})", prompts[i]);
        assert_eq!(a.len(), 8);
    }
    // Distinct prompts gave distinct continuations: the comparison is not vacuous.
    assert_ne!(alone[0], alone[1]);
}

/// A conversation: the second turn evaluates only what is new, regenerating (greedy) repeats
/// the answer from the cache, and editing the first message rolls the conversation back to it.
#[test]
fn chat_feeds_only_new_tokens_regenerates_and_edits() {
    let engine = engine();
    let mut chat = Chat::new(engine, Some("You are a helpful assistant.")).unwrap();
    let options = greedy(6);
    let mut streamed = String::new();
    let first = chat
        .send("What is 2+2?", &options, &mut |t| {
            streamed.push_str(t);
            true
        })
        .unwrap();
    assert_eq!(first.text, streamed, "the reply is what was streamed");
    assert_eq!(first.stats.reused_tokens, 0);
    assert_eq!(first.stats.generated_tokens, 6);
    assert_eq!(chat.messages().len(), 3);

    let second = chat.send("And 3+3?", &options, &mut |_| true).unwrap();
    // Everything up to the first answer comes from the cache.
    assert!(
        second.stats.reused_tokens >= first.stats.prompt_tokens,
        "{:?} after {:?}",
        second.stats,
        first.stats
    );
    assert_eq!(chat.messages().len(), 5);

    let again = chat.regenerate(&options, &mut |_| true).unwrap();
    assert_eq!(
        again.text, second.text,
        "greedy regeneration repeats the answer"
    );
    assert_eq!(
        again.stats.reused_tokens,
        again.stats.prompt_tokens - 1,
        "only the prompt's last token is evaluated again"
    );
    assert_eq!(chat.messages().len(), 5);

    // Edit the first user message: the later turns go. What stays the same is the system
    // prompt, shorter than the first batch, whose keys set the cache's key mean: it is
    // evaluated again, so the answer is exactly a fresh chat's (a reused prefix always covers
    // the first batch).
    let edited = chat
        .edit(1, "What is 5+5?", &options, &mut |_| true)
        .unwrap();
    assert_eq!(chat.messages().len(), 3);
    assert_eq!(chat.messages()[1].content, "What is 5+5?");
    assert_eq!(edited.stats.reused_tokens, 0, "{:?}", edited.stats);
    // A fresh chat with the edited conversation answers the same.
    let mut fresh = Chat::new(engine, Some("You are a helpful assistant.")).unwrap();
    let want = fresh.send("What is 5+5?", &options, &mut |_| true).unwrap();
    assert_eq!(edited.text, want.text);

    let usage = chat.context_usage();
    assert_eq!(usage.tokens, chat.session().history().len());
    assert_eq!(usage.evicted, 0);
    assert_eq!(usage.context_size, 512);
}

/// `cancel` from another thread stops the answer within a token: after the cancel, at most
/// the token already being computed is added (and one whose text was held back as part of a
/// multi-byte character).
#[test]
fn cancel_from_another_thread_stops_within_a_token() {
    let engine = engine();
    let mut chat = Chat::new(engine, None).unwrap();
    let token = chat.cancel_token();
    let pieces = Arc::new(AtomicUsize::new(0));
    let at_cancel = Arc::new(AtomicUsize::new(usize::MAX));
    let (tx, rx) = std::sync::mpsc::channel();
    let canceller = {
        let (pieces, at_cancel) = (Arc::clone(&pieces), Arc::clone(&at_cancel));
        std::thread::spawn(move || {
            rx.recv().unwrap();
            at_cancel.store(pieces.load(Ordering::SeqCst), Ordering::SeqCst);
            token.cancel();
        })
    };
    let mut sent = false;
    let reply = chat
        .send(
            "Write a long story about a dragon.",
            &greedy(200),
            &mut |_| {
                let n = pieces.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 3 && !sent {
                    sent = true;
                    tx.send(()).unwrap();
                }
                true
            },
        )
        .unwrap();
    canceller.join().unwrap();
    assert_eq!(reply.stop, StopReason::Cancelled);
    let at = at_cancel.load(Ordering::SeqCst);
    assert!(
        reply.stats.generated_tokens <= at + 2,
        "{} tokens generated, {at} streamed when cancelled",
        reply.stats.generated_tokens
    );
    // The stopped answer is kept, and the chat goes on.
    assert_eq!(chat.messages().len(), 2);
    let next = chat.send("Thanks.", &greedy(2), &mut |_| true).unwrap();
    assert_eq!(next.stop, StopReason::TokenLimit);

    // The text callback can stop the answer too.
    let stopped = chat.send("Again?", &greedy(50), &mut |_| false).unwrap();
    assert_eq!(stopped.stop, StopReason::Cancelled);
    assert!(stopped.stats.generated_tokens <= 2);
}

/// Bad requests come back as typed errors that leave the conversation as it was.
#[test]
fn chat_errors_have_kinds_and_change_nothing() {
    let engine = engine();
    let mut chat = Chat::new(engine, Some("Be brief.")).unwrap();
    let options = greedy(2);
    let e = chat.regenerate(&options, &mut |_| true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = chat.edit(0, "x", &options, &mut |_| true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("system"), "{e}");
    let e = chat.edit(7, "x", &options, &mut |_| true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let bad = GenerateOptions {
        sampling: SamplingParams {
            top_p: 0.0,
            ..SamplingParams::default()
        },
        ..options.clone()
    };
    let e = chat.send("hi", &bad, &mut |_| true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(
        chat.messages().len(),
        1,
        "a refused turn leaves nothing behind"
    );
    let mut session = engine.session().unwrap();
    let e = session.feed(&[u32::MAX]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = session
        .generate(Prompt::Text(""), &options, &mut |_| true)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}
