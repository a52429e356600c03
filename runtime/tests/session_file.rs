//! The memory file: a session saved at its stored precision resumes exactly (the next greedy
//! tokens and their log-probabilities equal the saving session's, bit for bit), for f16, q4 and
//! tq4/tq3 caches and the importance policy, before and after the ring wrapped; a chat resumes with its messages; and every
//! broken file (another model, another cache, truncated, flipped bits, a future version, not a
//! session file at all) is refused in one line without touching anything.

mod common;

use std::path::Path;
use std::sync::Arc;

use voyager_runtime::engine::sampling::SamplingParams;
use voyager_runtime::engine::session_file::check_bytes;
use voyager_runtime::engine::{Chat, Engine, EngineOptions, GenerateOptions, Prompt};
use voyager_runtime::gguf::synthetic::SyntheticLlama;
use voyager_runtime::gguf::writer::Value;
use voyager_runtime::kv::{KvPolicy, KvType};
use voyager_runtime::ErrorKind;

const PROMPT: &str = "Alice was beginning to get very tired of sitting by her sister on the \
                      bank, and of having nothing to do: once or twice she had peeped into the \
                      book her sister was reading, but it had no pictures or conversations in it";

fn smollm2(cache: KvType, window: u32) -> Arc<Engine> {
    let recent = EngineOptions::default().recent_f16;
    smollm2_with(cache, cache, window, recent, KvPolicy::Window)
}

/// SmolLM2 with K and V stored as `k` and `v`, the newest `recent` tokens also in f16, and
/// `policy` choosing what a full cache keeps.
fn smollm2_with(k: KvType, v: KvType, window: u32, recent: u32, policy: KvPolicy) -> Arc<Engine> {
    let options = EngineOptions {
        window: Some(window),
        cache_type_k: k,
        cache_type_v: v,
        recent_f16: recent,
        kv_policy: policy,
        batch: 8,
        ..EngineOptions::default()
    };
    Engine::load(&common::model_path("smollm2-135m"), &options, &mut |_| {}).unwrap()
}

fn greedy(n: usize) -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_tokens: n,
        stop_at_eog: false,
        logprobs: true,
        ..GenerateOptions::default()
    }
}

/// Saves after `n_prompt` tokens, then compares what the saving session and the restored one
/// generate next.
fn resumes_exactly(engine: &Arc<Engine>, n_prompt: usize, dir: &Path) {
    let ids = engine.model().tokenizer.encode(PROMPT, true).unwrap();
    assert!(ids.len() > n_prompt, "{} prompt tokens", ids.len());
    let mut a = engine.session().unwrap();
    a.feed(&ids[..n_prompt]).unwrap();
    let path = dir.join(format!("s{n_prompt}.vsession"));
    a.save(&path).unwrap();
    // Both continue from the same state, then 8 greedy tokens. Under the window policy the
    // last token is evaluated again (a rollback the ring allows); the importance policy's
    // evictions cannot be rolled back, so there both take the prompt's next token.
    let next: &[u32] = match engine.kv_config().policy {
        KvPolicy::Window => &[],
        KvPolicy::Importance => &ids[n_prompt..n_prompt + 1],
    };
    let next_a = a
        .generate(Prompt::Tokens(next), &greedy(8), &mut |_| true)
        .unwrap();
    let mut b = engine.restore_session(&path).unwrap();
    assert_eq!(b.history(), &ids[..n_prompt]);
    let next_b = b
        .generate(Prompt::Tokens(next), &greedy(8), &mut |_| true)
        .unwrap();
    assert_eq!(next_a.prefilled, 1);
    assert_eq!(next_b.prefilled, 1, "the restored cache was reused");
    assert_eq!(next_a.tokens, next_b.tokens);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&next_a.logprobs), bits(&next_b.logprobs));
    let kv = engine.kv_config();
    eprintln!(
        "{} / {} cache, {n_prompt} tokens (span {}): file {} bytes, resumed {:?}",
        kv.k_type,
        kv.v_type,
        kv.span(),
        std::fs::metadata(&path).unwrap().len(),
        next_b.text
    );
}

#[test]
fn sessions_resume_exactly_before_and_after_the_ring_wraps() {
    let dir = tempfile::tempdir().unwrap();
    // A span of 4 sinks + 24: 20 tokens fill part of the ring, 40 wrap it (31 slots); only
    // the newest 6 have f16 copies, so the quantized ring is read back too. Under the
    // importance policy 40 tokens have evicted by score, so the slot table must come back.
    for (k, v, policy) in [
        (KvType::F16, KvType::F16, KvPolicy::Window),
        (KvType::Q4, KvType::Q4, KvPolicy::Window),
        (KvType::Tq4, KvType::Tq3, KvPolicy::Window),
        (KvType::Tq4, KvType::Tq3, KvPolicy::Importance),
    ] {
        let engine = smollm2_with(k, v, 24, 6, policy);
        for n in [20, 40] {
            resumes_exactly(&engine, n, dir.path());
        }
    }
}

#[test]
fn a_chat_resumes_with_its_messages_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.vsession");
    let engine = smollm2(KvType::Q4, 252);
    let mut chat = Chat::new(&engine, Some("You are brief.")).unwrap();
    let first = chat
        .send("Name a colour.", &greedy(4), &mut |_| true)
        .unwrap();
    chat.save(&path).unwrap();
    let mut resumed = Chat::restore(&engine, &path).unwrap();
    assert_eq!(resumed.messages(), chat.messages());
    let a = chat.send("Another?", &greedy(4), &mut |_| true).unwrap();
    let b = resumed.send("Another?", &greedy(4), &mut |_| true).unwrap();
    assert_eq!(a.text, b.text);
    assert_eq!(a.stats.reused_tokens, b.stats.reused_tokens);
    assert!(b.stats.reused_tokens >= first.stats.prompt_tokens);
    // A session file without messages is not a chat.
    let plain = dir.path().join("plain.vsession");
    engine.session().unwrap().save(&plain).unwrap();
    let e = Chat::restore(&engine, &plain).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

/// A tiny synthetic model called `name` (deterministic bytes, so its identity is too: the
/// identity hashes the metadata and tensor table).
fn tiny(dir: &Path, name: &str) -> std::path::PathBuf {
    let shape = SyntheticLlama {
        n_embd: 128,
        ..SyntheticLlama::default()
    };
    let mut gguf = shape.build();
    gguf.set("tokenizer.ggml.merges", Value::Array(Vec::new()))
        .set("general.name", name.into());
    let path = dir.join(format!("{name}.gguf"));
    std::fs::write(&path, gguf.to_bytes()).unwrap();
    path
}

fn tiny_engine(path: &Path, window: u32) -> Arc<Engine> {
    let options = EngineOptions {
        window: Some(window),
        batch: 4,
        ..EngineOptions::default()
    };
    Engine::load(path, &options, &mut |_| {}).unwrap()
}

fn refused(engine: &Arc<Engine>, path: &Path, expect: &str) {
    let before = engine.gpu().memory_stats().live_bytes;
    let e = engine.restore_session(path).err().unwrap_or_else(|| {
        panic!("{} was restored", path.display());
    });
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains(expect), "{}: {msg}", path.display());
    assert_eq!(
        engine.gpu().memory_stats().live_bytes,
        before,
        "a refused file left buffers behind"
    );
    assert_eq!(engine.open_sessions(), 0);
}

/// The broken files, from a good one: (name, bytes, what the refusal says).
fn broken(good: &[u8]) -> Vec<(String, Vec<u8>, &'static str)> {
    let mut cases = Vec::new();
    for cut in [0, 10, 23, 24, 40, 71, 100, good.len() / 2, good.len() - 1] {
        cases.push((
            format!("truncated-at-{cut}"),
            good[..cut].to_vec(),
            "session file",
        ));
    }
    // A flipped bit in the header, the tokens, the first and the last layer.
    for at in [80, 200, good.len() / 3, good.len() - 10] {
        let mut b = good.to_vec();
        b[at] ^= 0x04;
        cases.push((format!("bit-flipped-at-{at}"), b, "session file"));
    }
    let mut future = good.to_vec();
    future[16] = 9;
    cases.push(("future-version".into(), future, "format version 9"));
    cases.push((
        "not-a-session".into(),
        b"GGUF\x03\x00\x00\x00 this is a model, not a session".to_vec(),
        "not a Voyager session file",
    ));
    let mut longer = good.to_vec();
    longer.extend([0; 64]);
    cases.push(("trailing-bytes".into(), longer, "session file"));
    cases
}

#[test]
fn broken_or_foreign_files_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), "tiny");
    let engine = tiny_engine(&model, 12);
    let ids: Vec<u32> = (0..30u32).map(|i| (i * 37) % 256).collect();
    let good_path = dir.path().join("good.vsession");
    {
        let mut s = engine.session().unwrap();
        s.feed(&ids).unwrap();
        s.save(&good_path).unwrap();
    }
    let good = std::fs::read(&good_path).unwrap();
    check_bytes(&good).unwrap();
    engine.restore_session(&good_path).unwrap();

    let corpus = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/corrupt-session");
    if std::env::var_os("VOYAGER_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(&corpus).unwrap();
    }
    for (name, bytes, expect) in broken(&good) {
        let path = dir.path().join(&name);
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            check_bytes(&bytes).is_err(),
            "{name} passed the structure check"
        );
        refused(&engine, &path, expect);
        if std::env::var_os("VOYAGER_UPDATE_CORPUS").is_some() {
            std::fs::write(corpus.join(format!("{name}.broken")), &bytes).unwrap();
        }
    }
    // The committed corpus (these cases as once written, and what fuzzing found).
    let mut n = 0;
    for entry in std::fs::read_dir(&corpus).expect("tests/fixtures/corrupt-session") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(check_bytes(&bytes).is_err(), "{}", path.display());
        refused(&engine, &path, "session file");
        n += 1;
    }
    assert!(n >= 10, "only {n} files in the corpus");

    // Another model (of the same shape, another name: another header, another identity).
    let other = tiny_engine(&tiny(dir.path(), "other"), 12);
    refused(&other, &good_path, "saved with another model");
    // Another cache configuration of the same model.
    let narrower = tiny_engine(&model, 10);
    refused(&narrower, &good_path, "saved with a cache of");
    // The same cache under the other policy: its ring slots mean other positions.
    let importance = Engine::load(
        &model,
        &EngineOptions {
            window: Some(12),
            batch: 4,
            kv_policy: KvPolicy::Importance,
            ..EngineOptions::default()
        },
        &mut |_| {},
    )
    .unwrap();
    refused(&importance, &good_path, "importance policy");
    // A missing file is an I/O error.
    let e = engine
        .restore_session(&dir.path().join("missing.vsession"))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
}

/// Saving over an existing file replaces it whole: the old file stays readable until the
/// rename, and no temporary file is left behind.
#[test]
fn saving_replaces_the_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let engine = tiny_engine(&tiny(dir.path(), "tiny"), 12);
    let path = dir.path().join("s.vsession");
    let mut s = engine.session().unwrap();
    s.feed(&[1, 2, 3]).unwrap();
    s.save(&path).unwrap();
    s.feed(&[4, 5]).unwrap();
    s.save(&path).unwrap();
    let restored = engine.restore_session(&path).unwrap();
    assert_eq!(restored.history(), &[1, 2, 3, 4, 5]);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}
