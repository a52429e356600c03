//! Response bodies in OpenAI's shapes: whole responses, stream chunks, usage, log-probabilities,
//! plus Voyager's timings (named as llama-server names them).

use serde_json::{json, Value};
use voyager_runtime::engine::{Generation, StopReason, TokenLogprob};
use voyager_runtime::Engine;

/// Which endpoint a response is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    pub fn object(self, chunk: bool) -> &'static str {
        match (self, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }

    pub fn id_prefix(self) -> &'static str {
        match self {
            Endpoint::Chat => "chatcmpl",
            Endpoint::Completion => "cmpl",
        }
    }
}

/// What every response and chunk of one request has in common.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl Envelope {
    fn wrap(&self, chunk: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.endpoint.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": concat!("voyager-", env!("CARGO_PKG_VERSION")),
            "choices": choices,
        })
    }

    /// The whole response of a request that did not stream.
    pub fn response(&self, engine: &Engine, gen: &Generation, logprobs: bool) -> Value {
        let lp = logprobs.then(|| self.logprobs(engine, gen_tokens(gen), 0));
        let choice = match self.endpoint {
            Endpoint::Chat => json!({
                "index": 0,
                "message": { "role": "assistant", "content": gen.text },
                "logprobs": lp,
                "finish_reason": finish_reason(gen.stop),
            }),
            Endpoint::Completion => json!({
                "index": 0,
                "text": gen.text,
                "logprobs": lp,
                "finish_reason": finish_reason(gen.stop),
            }),
        };
        let mut body = self.wrap(false, json!([choice]));
        body["usage"] = usage(gen);
        body["timings"] = timings(gen);
        body
    }

    /// The first chunk of a chat stream: the assistant's role.
    pub fn role_chunk(&self) -> Value {
        self.wrap(
            true,
            json!([{
                "index": 0,
                "delta": { "role": "assistant", "content": "" },
                "logprobs": null,
                "finish_reason": null,
            }]),
        )
    }

    /// A chunk carrying `text`, and the tokens' log-probabilities when asked for.
    /// `text_offset` is where the tokens' text starts in the reply, in characters (for
    /// completions' logprobs).
    pub fn text_chunk(
        &self,
        engine: &Engine,
        text: &str,
        tokens: Option<Tokens<'_>>,
        text_offset: usize,
    ) -> Value {
        let lp = tokens.map(|t| self.logprobs(engine, t, text_offset));
        let choice = match self.endpoint {
            Endpoint::Chat => json!({
                "index": 0,
                "delta": { "content": text },
                "logprobs": lp,
                "finish_reason": null,
            }),
            Endpoint::Completion => json!({
                "index": 0,
                "text": text,
                "logprobs": lp,
                "finish_reason": null,
            }),
        };
        self.wrap(true, json!([choice]))
    }

    /// The chunk that ends the choice, with Voyager's timings.
    pub fn finish_chunk(&self, gen: &Generation) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => json!({
                "index": 0,
                "delta": {},
                "logprobs": null,
                "finish_reason": finish_reason(gen.stop),
            }),
            Endpoint::Completion => json!({
                "index": 0,
                "text": "",
                "logprobs": null,
                "finish_reason": finish_reason(gen.stop),
            }),
        };
        let mut body = self.wrap(true, json!([choice]));
        body["timings"] = timings(gen);
        body
    }

    /// The last chunk with `stream_options.include_usage`: no choices, the usage.
    pub fn usage_chunk(&self, gen: &Generation) -> Value {
        let mut body = self.wrap(true, json!([]));
        body["usage"] = usage(gen);
        body
    }

    fn logprobs(&self, engine: &Engine, t: Tokens<'_>, text_offset: usize) -> Value {
        let tok = &engine.model().tokenizer;
        // The end-of-generation token is not part of the text; OpenAI leaves it out too.
        let n = t
            .ids
            .iter()
            .take_while(|&&id| !tok.is_eog(id))
            .count()
            .min(t.logprobs.len());
        match self.endpoint {
            Endpoint::Chat => {
                let content: Vec<Value> = (0..n)
                    .map(|i| {
                        let top: Vec<Value> = t
                            .top
                            .get(i)
                            .map(|alts| {
                                alts.iter()
                                    .map(|a| token_entry(engine, a.id, a.logprob))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let mut e = token_entry(engine, t.ids[i], t.logprobs[i]);
                        e["top_logprobs"] = json!(top);
                        e
                    })
                    .collect();
                json!({ "content": content })
            }
            Endpoint::Completion => {
                let mut offset = text_offset;
                let mut offsets = Vec::with_capacity(n);
                let mut texts = Vec::with_capacity(n);
                for &id in &t.ids[..n] {
                    let text = token_text(engine, id).0;
                    offsets.push(offset);
                    offset += text.chars().count();
                    texts.push(text);
                }
                let top: Vec<Value> = (0..n)
                    .map(|i| {
                        let alts = t.top.get(i).map(Vec::as_slice).unwrap_or_default();
                        let map: serde_json::Map<String, Value> = alts
                            .iter()
                            .map(|a| (token_text(engine, a.id).0, json!(a.logprob)))
                            .collect();
                        Value::Object(map)
                    })
                    .collect();
                json!({
                    "tokens": texts,
                    "token_logprobs": &t.logprobs[..n],
                    "top_logprobs": if t.top.is_empty() { Value::Null } else { json!(top) },
                    "text_offset": offsets,
                })
            }
        }
    }
}

/// Tokens with their log-probabilities, as a piece or a whole generation carries them.
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a> {
    pub ids: &'a [u32],
    pub logprobs: &'a [f32],
    pub top: &'a [Vec<TokenLogprob>],
}

fn gen_tokens(gen: &Generation) -> Tokens<'_> {
    Tokens {
        ids: &gen.tokens,
        logprobs: &gen.logprobs,
        top: &gen.top_logprobs,
    }
}

/// Characters the tokens' texts take, as completions' `text_offset` counts them.
pub fn text_chars(engine: &Engine, ids: &[u32]) -> usize {
    ids.iter()
        .map(|&id| token_text(engine, id).0.chars().count())
        .sum()
}

/// A token's text (lossy where it is part of a UTF-8 character) and its bytes.
fn token_text(engine: &Engine, id: u32) -> (String, Vec<u8>) {
    let bytes = engine
        .model()
        .tokenizer
        .decode_bytes(&[id], false)
        .unwrap_or_default();
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

fn token_entry(engine: &Engine, id: u32, logprob: f32) -> Value {
    let (text, bytes) = token_text(engine, id);
    json!({ "token": text, "logprob": logprob, "bytes": bytes })
}

/// OpenAI's finish reasons: an end token or a stop sequence is `stop`, the token limit
/// `length`.
pub fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::TokenLimit => "length",
        StopReason::EndOfGeneration | StopReason::StopSequence | StopReason::Cancelled => "stop",
    }
}

pub fn usage(gen: &Generation) -> Value {
    let prompt = gen.prompt_tokens.len();
    let completion = gen.tokens.len();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": prompt - gen.prefilled },
    })
}

/// Voyager's timings, named as llama-server names them: `prompt_n` tokens evaluated (the
/// rest, `cache_n`, were reused from the session's cache), `predicted_n` generated.
pub fn timings(gen: &Generation) -> Value {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    json!({
        "cache_n": gen.prompt_tokens.len() - gen.prefilled,
        "prompt_n": gen.prefilled,
        "prompt_ms": ms(gen.prefill_time),
        "prompt_per_second": gen.prefill_tokens_per_second(),
        "predicted_n": gen.tokens.len(),
        "predicted_ms": ms(gen.decode_time),
        "predicted_per_second": gen.decode_tokens_per_second(),
        "prompt_evicted": gen.prompt_evicted,
    })
}
