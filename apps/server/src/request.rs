//! Request bodies of `/v1/chat/completions` and `/v1/completions`, read strictly: a wrong
//! type names its field, a value out of range says the range, and a feature Voyager does not
//! have is refused rather than ignored.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::Deserialize;
use serde_json::Value;
use voyager_runtime::engine::sampling::SamplingParams;
use voyager_runtime::engine::GenerateOptions;
use voyager_runtime::tokenizer::ChatMessage;

use crate::error::ApiError;

/// The most alternatives per token `top_logprobs` (chat) or `logprobs` (completions) may ask.
pub const MAX_TOP_LOGPROBS: i64 = 20;
/// The most stop sequences a request may give (OpenAI's limit).
pub const MAX_STOP: usize = 4;

/// The fields both endpoints read (each endpoint checks the ones that are its own).
#[derive(Debug, Default, Deserialize)]
pub struct Body {
    pub model: Option<String>,
    pub messages: Option<Vec<Message>>,
    pub prompt: Option<PromptInput>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i64>,
    pub min_p: Option<f32>,
    pub seed: Option<i64>,
    pub stop: Option<StopInput>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub repeat_last_n: Option<i64>,
    /// A boolean for chat, a count of alternatives for completions.
    pub logprobs: Option<Value>,
    pub top_logprobs: Option<i64>,
    pub n: Option<i64>,
    pub echo: Option<bool>,
    pub best_of: Option<i64>,
    pub suffix: Option<String>,
    pub tools: Option<Value>,
    pub functions: Option<Value>,
    pub response_format: Option<Value>,
    pub logit_bias: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<i64>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopInput {
    One(String),
    Many(Vec<String>),
}

/// A JSON body read with OpenAI-style errors (axum's own extractor answers in plain text).
/// The content type is not checked: `curl -d` sends a form type with JSON in it.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            let message = if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                "the request body is larger than the server accepts (--max-body)".to_string()
            } else {
                format!("cannot read the request body: {e}")
            };
            ApiError::body(status, message)
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a body, naming the field a type error is in.
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(None, format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid(
            None,
            "the request body must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = path.split(['.', '[']).next().unwrap_or_default().to_owned();
        ApiError::invalid(Some(&field), format!("`{path}`: {}", e.into_inner()))
    })
}

/// How a request wants its reply made.
#[derive(Debug, Clone)]
pub struct Job {
    pub options: GenerateOptions,
    pub stream: bool,
    pub include_usage: bool,
    /// Report each token's log-probability.
    pub logprobs: bool,
}

/// Limits the server applies to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Tokens generated when the request gives no `max_tokens`.
    pub default_max_tokens: usize,
    /// The most a request may ask for.
    pub max_tokens: usize,
}

impl Body {
    /// The messages of a chat request, as the engine's chat template takes them.
    pub fn chat_messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        let messages = self
            .messages
            .as_ref()
            .ok_or_else(|| ApiError::invalid(Some("messages"), "`messages` is required"))?;
        if messages.is_empty() {
            return Err(ApiError::invalid(
                Some("messages"),
                "`messages` is empty: send at least one message",
            ));
        }
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let param = format!("messages[{i}]");
                let role = match m.role.as_str() {
                    "system" | "developer" => "system",
                    "user" => "user",
                    "assistant" => "assistant",
                    other => {
                        return Err(ApiError::invalid(
                            Some(&param),
                            format!(
                                "messages[{i}].role `{other}` is not supported (system, \
                                 developer, user or assistant; no tools)"
                            ),
                        ))
                    }
                };
                let content = match &m.content {
                    Some(Content::Text(t)) => t.clone(),
                    Some(Content::Parts(parts)) => parts
                        .iter()
                        .map(|p| match (p.kind.as_str(), &p.text) {
                            ("text", Some(t)) => Ok(t.as_str()),
                            (kind, _) => Err(ApiError::invalid(
                                Some(&param),
                                format!(
                                    "messages[{i}].content has a `{kind}` part; only text parts \
                                     are supported"
                                ),
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .join("\n"),
                    None => {
                        return Err(ApiError::invalid(
                            Some(&param),
                            format!("messages[{i}] has no content"),
                        ))
                    }
                };
                Ok(ChatMessage::new(role, content))
            })
            .collect()
    }

    /// What a chat request asks of the generation.
    pub fn chat_job(&self, limits: &Limits) -> Result<Job, ApiError> {
        self.refuse_unsupported()?;
        let logprobs = match &self.logprobs {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::invalid(
                    Some("logprobs"),
                    "`logprobs` must be true or false",
                ))
            }
        };
        let top = match self.top_logprobs {
            None => 0,
            Some(_) if !logprobs => {
                return Err(ApiError::invalid(
                    Some("top_logprobs"),
                    "`top_logprobs` needs `logprobs: true`",
                ))
            }
            Some(n) => top_count("top_logprobs", n)?,
        };
        self.job(limits, logprobs, top)
    }

    /// What a completions request asks of the generation.
    pub fn completion_job(&self, limits: &Limits) -> Result<Job, ApiError> {
        self.refuse_unsupported()?;
        if self.echo == Some(true) {
            return Err(ApiError::invalid(Some("echo"), "`echo` is not supported"));
        }
        if self.best_of.is_some_and(|b| b != 1) {
            return Err(ApiError::invalid(
                Some("best_of"),
                "`best_of` other than 1 is not supported",
            ));
        }
        if self.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::invalid(
                Some("suffix"),
                "`suffix` (fill in the middle) is not supported",
            ));
        }
        let top = match &self.logprobs {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(n) => Some(top_count("logprobs", n)?),
                None => {
                    return Err(ApiError::invalid(
                        Some("logprobs"),
                        "`logprobs` must be an integer",
                    ))
                }
            },
            Some(_) => {
                return Err(ApiError::invalid(
                    Some("logprobs"),
                    "`logprobs` must be an integer (how many alternatives per token)",
                ))
            }
        };
        self.job(limits, top.is_some(), top.unwrap_or(0))
    }

    fn refuse_unsupported(&self) -> Result<(), ApiError> {
        if let Some(n) = self.n.filter(|&n| n != 1) {
            return Err(ApiError::invalid(
                Some("n"),
                format!("`n` = {n} is not supported: Voyager returns one choice per request"),
            ));
        }
        for (name, v) in [("tools", &self.tools), ("functions", &self.functions)] {
            if v.as_ref().is_some_and(non_empty) {
                return Err(ApiError::invalid(
                    Some(name),
                    format!("`{name}` (tool calling) is not supported"),
                ));
            }
        }
        if self.logit_bias.as_ref().is_some_and(non_empty) {
            return Err(ApiError::invalid(
                Some("logit_bias"),
                "`logit_bias` is not supported",
            ));
        }
        if let Some(f) = &self.response_format {
            if !f.is_null() && f["type"] != "text" {
                return Err(ApiError::invalid(
                    Some("response_format"),
                    "only `response_format` {\"type\": \"text\"} is supported",
                ));
            }
        }
        Ok(())
    }

    fn job(&self, limits: &Limits, logprobs: bool, top_logprobs: usize) -> Result<Job, ApiError> {
        let (name, asked) = match (self.max_completion_tokens, self.max_tokens) {
            (Some(n), _) => ("max_completion_tokens", Some(n)),
            (None, n) => ("max_tokens", n),
        };
        let max_tokens = match asked {
            None => limits.default_max_tokens,
            Some(n) if n >= 1 && n as u64 <= limits.max_tokens as u64 => n as usize,
            Some(n) => {
                return Err(ApiError::out_of_range(
                    name,
                    format!(
                        "`{name}` must be between 1 and {} (the server's --max-tokens), got {n}",
                        limits.max_tokens
                    ),
                ))
            }
        };
        let defaults = SamplingParams::default();
        let mut sampling = SamplingParams {
            seed: match self.seed {
                Some(s) => s as u64,
                None => fresh_seed(),
            },
            ..defaults.clone()
        };
        if let Some(t) = self.temperature {
            in_range("temperature", t, 0.0, 2.0)?;
            sampling.temperature = t;
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(ApiError::out_of_range(
                    "top_p",
                    format!("`top_p` must be in (0, 1], got {p}"),
                ));
            }
            sampling.top_p = p;
        }
        if let Some(k) = self.top_k {
            if k < 0 {
                return Err(ApiError::out_of_range(
                    "top_k",
                    format!("`top_k` must be 0 (off) or more, got {k}"),
                ));
            }
            sampling.top_k = k as usize;
        }
        if let Some(p) = self.min_p {
            in_range("min_p", p, 0.0, 1.0)?;
            sampling.min_p = p;
        }
        if let Some(p) = self.frequency_penalty {
            in_range("frequency_penalty", p, -2.0, 2.0)?;
            sampling.frequency_penalty = p;
        }
        if let Some(p) = self.presence_penalty {
            in_range("presence_penalty", p, -2.0, 2.0)?;
            sampling.presence_penalty = p;
        }
        if let Some(p) = self.repeat_penalty {
            if !(p > 0.0 && p.is_finite()) {
                return Err(ApiError::out_of_range(
                    "repeat_penalty",
                    format!("`repeat_penalty` must be a number > 0 (1 = off), got {p}"),
                ));
            }
            sampling.repeat_penalty = p;
        }
        if let Some(n) = self.repeat_last_n {
            sampling.repeat_last_n = match n {
                -1 => usize::MAX,
                n if n >= 0 => n as usize,
                n => {
                    return Err(ApiError::out_of_range(
                        "repeat_last_n",
                        format!("`repeat_last_n` must be -1 (all), 0 (off) or more, got {n}"),
                    ))
                }
            };
        }
        sampling
            .validate()
            .map_err(|e| ApiError::invalid(None, e))?;
        let stop = match &self.stop {
            None => Vec::new(),
            Some(StopInput::One(s)) => vec![s.clone()],
            Some(StopInput::Many(v)) if v.len() <= MAX_STOP => v.clone(),
            Some(StopInput::Many(v)) => {
                return Err(ApiError::out_of_range(
                    "stop",
                    format!("`stop` takes at most {MAX_STOP} sequences, got {}", v.len()),
                ))
            }
        };
        let stream = self.stream.unwrap_or(false);
        if self.stream_options.is_some() && !stream {
            return Err(ApiError::invalid(
                Some("stream_options"),
                "`stream_options` is only allowed with `stream: true`",
            ));
        }
        let include_usage = self
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Ok(Job {
            options: GenerateOptions {
                sampling,
                max_tokens,
                logprobs,
                top_logprobs,
                stop,
                ..GenerateOptions::default()
            },
            stream,
            include_usage,
            logprobs,
        })
    }
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn top_count(name: &str, n: i64) -> Result<usize, ApiError> {
    if (0..=MAX_TOP_LOGPROBS).contains(&n) {
        Ok(n as usize)
    } else {
        Err(ApiError::out_of_range(
            name,
            format!("`{name}` must be between 0 and {MAX_TOP_LOGPROBS}, got {n}"),
        ))
    }
}

fn in_range(name: &str, v: f32, lo: f32, hi: f32) -> Result<(), ApiError> {
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err(ApiError::out_of_range(
            name,
            format!("`{name}` must be between {lo} and {hi}, got {v}"),
        ))
    }
}

/// A seed for a request that gives none: different each time, as OpenAI's API behaves.
fn fresh_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        default_max_tokens: 64,
        max_tokens: 1000,
    };

    fn body(json: &str) -> Result<Body, ApiError> {
        parse(json.as_bytes())
    }

    #[test]
    fn type_errors_name_their_field() {
        let e = body(r#"{"temperature": "hot"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        assert_eq!(e.status, 400);
        let e = body(r#"{"messages": [{"role": 3}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.contains("messages[0].role"), "{}", e.message);
        assert!(body("[1, 2]").unwrap_err().message.contains("object"));
        assert!(body("{").unwrap_err().message.contains("not valid JSON"));
    }

    #[test]
    fn ranges_and_unsupported_features_are_refused() {
        let check = |json: &str, param: &str| {
            let e = body(json)
                .and_then(|b| b.chat_job(&LIMITS))
                .expect_err(json);
            assert_eq!(e.param.as_deref(), Some(param), "{json}: {}", e.message);
            assert_eq!(e.status, 400);
        };
        check(r#"{"max_tokens": 0}"#, "max_tokens");
        check(r#"{"max_tokens": 1001}"#, "max_tokens");
        check(
            r#"{"max_completion_tokens": -5, "max_tokens": 4}"#,
            "max_completion_tokens",
        );
        check(r#"{"temperature": 2.5}"#, "temperature");
        check(r#"{"top_p": 0}"#, "top_p");
        check(r#"{"n": 2}"#, "n");
        check(r#"{"stop": ["a", "b", "c", "d", "e"]}"#, "stop");
        check(r#"{"top_logprobs": 3}"#, "top_logprobs");
        check(r#"{"logprobs": true, "top_logprobs": 21}"#, "top_logprobs");
        check(r#"{"tools": [{"type": "function"}]}"#, "tools");
        check(r#"{"frequency_penalty": 3}"#, "frequency_penalty");
        check(
            r#"{"response_format": {"type": "json_object"}}"#,
            "response_format",
        );
        let e = body(r#"{"logprobs": true}"#)
            .unwrap()
            .completion_job(&LIMITS)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("logprobs"));
    }

    #[test]
    fn a_full_request_becomes_generate_options() {
        let b = body(
            r#"{"model": "m", "messages": [{"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                "max_completion_tokens": 7, "max_tokens": 99, "temperature": 0, "seed": 5,
                "stop": "\n", "logprobs": true, "top_logprobs": 2, "stream": true,
                "stream_options": {"include_usage": true}, "presence_penalty": 0.5,
                "tools": [], "n": 1, "user": "ignored"}"#,
        )
        .unwrap();
        let job = b.chat_job(&LIMITS).unwrap();
        assert_eq!(job.options.max_tokens, 7);
        assert_eq!(job.options.sampling.temperature, 0.0);
        assert_eq!(job.options.sampling.seed, 5);
        assert_eq!(job.options.sampling.presence_penalty, 0.5);
        assert_eq!(job.options.stop, vec!["\n".to_string()]);
        assert_eq!(job.options.top_logprobs, 2);
        assert!(job.stream && job.include_usage && job.logprobs);
        let m = b.chat_messages().unwrap();
        assert_eq!(m[0], ChatMessage::new("system", "be brief"));
        assert_eq!(m[1], ChatMessage::new("user", "hi"));
        let plain = body("{}").unwrap().completion_job(&LIMITS).unwrap();
        assert_eq!(plain.options.max_tokens, 64);
        assert!(!plain.stream && !plain.logprobs);
    }

    #[test]
    fn bad_messages() {
        let msg = |json: &str| body(json).unwrap().chat_messages().unwrap_err().message;
        assert!(msg(r#"{"messages": []}"#).contains("empty"));
        assert!(msg("{}").contains("required"));
        assert!(msg(r#"{"messages": [{"role": "tool", "content": "x"}]}"#).contains("tool"));
        assert!(msg(r#"{"messages": [{"role": "user"}]}"#).contains("no content"));
        assert!(
            msg(r#"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#)
                .contains("image_url")
        );
    }
}
