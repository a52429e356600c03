//! The tokenizer against llama.cpp: golden ids, detokenization, streaming and chat templates.
//!
//! Golden files come from `tests/scripts/make_tokenizer_golden.py` (see its docstring).

use std::time::Instant;

use serde::Deserialize;
use voyager_e2e::{fixture_path, model_path};
use voyager_runtime::gguf::GgufFile;
use voyager_runtime::tokenizer::{ChatMessage, ChatTemplate, StreamDecoder, Tokenizer};

#[derive(Deserialize)]
struct Golden {
    bos: i64,
    eos: i64,
    add_bos: bool,
    n_vocab: usize,
    eog_ids: Vec<u32>,
    has_chat_template: bool,
    chats: Vec<Chat>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    decoded: String,
    decoded_utf8_ok: bool,
    decoded_skip_special: String,
}

#[derive(Deserialize)]
struct Chat {
    messages: Vec<Msg>,
    add_generation_prompt: bool,
    rendered: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Msg {
    role: String,
    content: String,
}

struct Loaded {
    gguf: GgufFile,
    tok: Tokenizer,
    golden: Golden,
}

fn load(name: &str) -> Loaded {
    let t_open = Instant::now();
    let gguf = GgufFile::open(&model_path(name)).expect("open gguf");
    let open_ms = t_open.elapsed().as_secs_f64() * 1e3;
    let t0 = Instant::now();
    let tok = Tokenizer::from_metadata(gguf.metadata()).expect("build tokenizer");
    eprintln!(
        "{name}: {} tokenizer with {} tokens built in {:.0} ms (GGUF opened in {open_ms:.0} ms)",
        tok.kind(),
        tok.vocab_size(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    let path = fixture_path(&format!("tokenizer/{name}.json"));
    let golden: Golden =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read golden")).unwrap();
    Loaded { gguf, tok, golden }
}

fn id(v: i64) -> Option<u32> {
    u32::try_from(v).ok()
}

fn check_model(name: &str) {
    let Loaded { tok, golden, .. } = load(name);
    assert_eq!(tok.vocab_size(), golden.n_vocab);
    assert_eq!(tok.bos(), id(golden.bos));
    assert_eq!(tok.eos(), id(golden.eos));
    assert_eq!(tok.add_bos(), golden.add_bos);
    assert_eq!(tok.eog_ids(), &golden.eog_ids[..], "end-of-generation ids");

    let mut failures = Vec::new();
    let t0 = Instant::now();
    for c in &golden.cases {
        let ids = tok.encode(&c.text, true).unwrap();
        if ids != c.ids {
            failures.push(format!(
                "encode {:?}:\n    llama.cpp {:?}\n    voyager   {:?}",
                c.text, c.ids, ids
            ));
            continue;
        }
        let full = tok.decode(&ids, false).unwrap();
        if c.decoded_utf8_ok && full != c.decoded {
            failures.push(format!(
                "decode {:?}: llama.cpp {:?}, voyager {:?}",
                c.text, c.decoded, full
            ));
        }
        let skipped = tok.decode(&ids, true).unwrap();
        if c.decoded_utf8_ok && skipped != c.decoded_skip_special {
            failures.push(format!(
                "decode(skip_special) {:?}: llama.cpp {:?}, voyager {:?}",
                c.text, c.decoded_skip_special, skipped
            ));
        }

        // Streaming the ids as if generated (without the prompt's BOS) gives the full text.
        let gen: &[u32] = match ids.first() {
            Some(&b) if Some(b) == tok.bos() => &ids[1..],
            _ => &ids,
        };
        let mut sd = StreamDecoder::new(&tok);
        let mut streamed = String::new();
        for &i in gen {
            streamed.push_str(&sd.push(i).unwrap());
        }
        streamed.push_str(&sd.finish());
        let expect = tok.decode(gen, true).unwrap();
        if streamed != expect {
            failures.push(format!(
                "stream {:?}: streamed {streamed:?}, decode {expect:?}",
                c.text
            ));
        }
    }
    eprintln!(
        "{name}: {} strings encoded/decoded/streamed in {:.0} ms",
        golden.cases.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert!(
        failures.is_empty(),
        "{name}: {} of {} golden checks failed:\n{}",
        failures.len(),
        golden.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_model("smollm2-135m");
}

#[test]
fn gemma3_matches_llama_cpp() {
    check_model("gemma3-270m");
}

/// Pushes ids one at a time and checks every chunk is emitted as soon as, and only when, the
/// characters it holds are complete.
/// Returns how many pushes had to hold bytes back.
fn check_stream_boundaries(tok: &Tokenizer, text: &str) -> usize {
    let mut held = 0;
    let ids = tok.encode(text, false).unwrap();
    let mut sd = StreamDecoder::new(tok);
    let mut out = String::new();
    let mut bytes = Vec::new();
    for &i in &ids {
        let chunk = sd.push(i).unwrap();
        out.push_str(&chunk);
        bytes.extend_from_slice(&tok.decode_bytes(&[i], true).unwrap());
        // Everything that forms complete characters so far has been emitted...
        let complete = match std::str::from_utf8(&bytes) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        assert_eq!(out.len(), complete, "chunk emitted too late for {text:?}");
        assert_eq!(sd.has_pending(), complete < bytes.len());
        held += usize::from(sd.has_pending());
    }
    out.push_str(&sd.finish());
    assert_eq!(out, text);
    held
}

#[test]
fn stream_decoder_never_splits_characters() {
    for name in ["smollm2-135m", "gemma3-270m"] {
        let Loaded { tok, .. } = load(name);
        let mut held = 0;
        for text in [
            "€ 👨‍👩‍👧‍👦 🇯🇵 日本語 한국어 👍🏽",
            "a😀b€c",
            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∮ ⅞",
            // Rare CJK extension B and private-use characters: byte-fallback tokens in Gemma.
            "𠀋𡈽𣗄 \u{F0001}\u{10FFFD}",
        ] {
            held += check_stream_boundaries(&tok, text);
        }
        assert!(
            held > 0,
            "{name}: no test string split a character across tokens"
        );
        // The multi-byte tests above must actually exercise partial characters.
        let ids = tok.encode("😀", false).unwrap();
        let mut sd = StreamDecoder::new(&tok);
        let first = sd.push(ids[0]).unwrap();
        if ids.len() > 1 {
            assert_eq!(first, "", "{name}: half an emoji was emitted");
            assert!(sd.has_pending());
        }
    }
}

#[test]
fn smollm2_chat_template_matches_jinja2() {
    let Loaded { gguf, tok, golden } = load("smollm2-135m");
    assert!(golden.has_chat_template);
    let tmpl = ChatTemplate::from_metadata(gguf.metadata(), &tok).unwrap();
    assert!(!tmpl.is_builtin());
    assert!(!golden.chats.is_empty());
    for chat in &golden.chats {
        let msgs: Vec<ChatMessage> = chat
            .messages
            .iter()
            .map(|m| ChatMessage::new(&m.role, &m.content))
            .collect();
        let text = tmpl.render(&msgs, chat.add_generation_prompt).unwrap();
        assert_eq!(text, chat.rendered);
        assert_eq!(tok.encode(&text, true).unwrap(), chat.ids);
        assert_eq!(
            tmpl.encode(&tok, &msgs, chat.add_generation_prompt)
                .unwrap(),
            chat.ids
        );
    }
}

#[test]
fn gemma3_uses_builtin_turn_format() {
    let Loaded { gguf, tok, golden } = load("gemma3-270m");
    assert!(!golden.has_chat_template);
    let tmpl = ChatTemplate::from_metadata(gguf.metadata(), &tok).unwrap();
    assert!(tmpl.is_builtin());
    let msgs = [
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", " Hi! "),
        ChatMessage::new("assistant", "Hello."),
        ChatMessage::new("user", "Bye"),
    ];
    let text = tmpl.render(&msgs, true).unwrap();
    assert_eq!(
        text,
        "<start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n\
         <start_of_turn>model\nHello.<end_of_turn>\n\
         <start_of_turn>user\nBye<end_of_turn>\n\
         <start_of_turn>model\n"
    );
    let one = [ChatMessage::new("user", "hi")];
    assert_eq!(
        tmpl.render(&one, false).unwrap(),
        "<start_of_turn>user\nhi<end_of_turn>\n"
    );
    // Exactly one BOS, then the turn markers as single special tokens.
    let ids = tmpl.encode(&tok, &one, true).unwrap();
    let bos = tok.bos().unwrap();
    assert_eq!(ids[0], bos);
    assert_ne!(ids[1], bos);
    assert_eq!(tok.token_text(ids[1]), Some("<start_of_turn>"));
    assert!(
        tok.is_eog(ids[ids.len() - 5]),
        "<end_of_turn> ends generation"
    );
    // A template that writes bos_token itself does not give two BOS tokens.
    let with_bos = ChatTemplate::from_source(
        "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}",
        &tok,
    )
    .unwrap();
    let ids = with_bos.encode(&tok, &one, false).unwrap();
    assert_eq!(ids.iter().filter(|&&i| i == bos).count(), 1);
}

#[test]
fn templates_support_pycompat_and_raise_exception() {
    let Loaded { tok, .. } = load("smollm2-135m");
    let t = ChatTemplate::from_source(
        "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}\
         {{ raise_exception('bad role ' + m.role) }}{% endif %}[{{ m.content.strip() }}]{% endfor %}",
        &tok,
    )
    .unwrap();
    assert_eq!(
        t.render(&[ChatMessage::new("user", "  x  ")], false)
            .unwrap(),
        "[x]"
    );
    let err = t
        .render(&[ChatMessage::new("tool", "x")], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad role tool"), "{err}");
}

#[test]
fn long_prompts_encode_in_reasonable_time() {
    let para = "It was a bright cold day in April, and the clocks were striking thirteen. \
                <b>Winston</b> Smith — 1984 — 日本語 😀\n\n";
    let text = para.repeat(1000);
    for name in ["smollm2-135m", "gemma3-270m"] {
        let Loaded { tok, .. } = load(name);
        let t0 = Instant::now();
        let ids = tok.encode(&text, true).unwrap();
        let dt = t0.elapsed().as_secs_f64();
        eprintln!(
            "{name}: {} bytes -> {} ids in {:.0} ms",
            text.len(),
            ids.len(),
            dt * 1e3
        );
        assert_eq!(tok.decode(&ids, true).unwrap(), text);
        assert!(
            dt < 10.0,
            "{name}: encoding {} bytes took {dt:.1} s",
            text.len()
        );
    }
}

#[derive(Deserialize)]
struct PreVariants {
    strings: Vec<String>,
    variants: Vec<PreVariant>,
}

#[derive(Deserialize)]
struct PreVariant {
    pre: String,
    ids: Vec<Vec<u32>>,
    decoded_skip_special: Vec<String>,
}

/// SmolLM2's vocabulary and merges with other `tokenizer.ggml.pre` values: checks the
/// pre-tokenizer regexes (and clean-up rules) of those families against llama.cpp.
#[test]
fn pre_tokenizer_variants_match_llama_cpp() {
    let gguf = GgufFile::open(&model_path("smollm2-135m")).unwrap();
    let path = fixture_path("tokenizer/smollm2-135m-pre-variants.json");
    let golden: PreVariants =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for v in &golden.variants {
        let md = gguf.metadata().with_string("tokenizer.ggml.pre", &v.pre);
        let tok = Tokenizer::from_metadata(&md).unwrap();
        for (i, text) in golden.strings.iter().enumerate() {
            checked += 1;
            let ids = tok.encode(text, true).unwrap();
            if ids != v.ids[i] {
                failures.push(format!(
                    "pre {} encode {text:?}:\n    llama.cpp {:?}\n    voyager   {ids:?}",
                    v.pre, v.ids[i]
                ));
                continue;
            }
            let dec = tok.decode(&ids, true).unwrap();
            if dec != v.decoded_skip_special[i] {
                failures.push(format!(
                    "pre {} decode {text:?}: llama.cpp {:?}, voyager {dec:?}",
                    v.pre, v.decoded_skip_special[i]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} pre-tokenizer checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
