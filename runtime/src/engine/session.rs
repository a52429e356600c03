//! A conversation: its KV cache, the tokens in it, generation and scoring.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::graph::{Graph, Logits, OpTime};
use crate::engine::sampling::{Sampler, SamplingParams};
use crate::engine::stop_text::StopText;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::tokenizer::{ChatMessage, StreamDecoder};

/// What to generate from.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    /// Raw text, tokenized as `voyager tokenize` does (BOS when the session is empty and the
    /// model adds one; special tokens written in the text are recognised).
    Text(&'a str),
    /// A whole conversation, rendered with the model's chat template and a generation prompt.
    /// Tokens already in the session's cache are not evaluated again.
    Chat(&'a [ChatMessage]),
    /// Token ids, appended to the session as they are.
    Tokens(&'a [u32]),
    /// The whole sequence, as token ids: the part the cache already holds (a restored prompt
    /// cache) is reused, the rest evaluated.
    Sequence(&'a [u32]),
}

/// How to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub sampling: SamplingParams,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Stop at an end-of-generation token (on by default).
    pub stop_at_eog: bool,
    /// Cancelled from another thread to stop after the current token (or prefill batch).
    pub cancel: Option<CancelToken>,
    /// Record each generated token's log-probability ([`Generation::logprobs`]).
    pub logprobs: bool,
    /// Also record the this many most likely tokens at each step, with their
    /// log-probabilities ([`Generation::top_logprobs`]); implies `logprobs`.
    pub top_logprobs: usize,
    /// Texts that end the reply where they first appear; the reply stops before them and
    /// never shows them, not even in part while streaming ([`StopReason::StopSequence`]).
    pub stop: Vec<String>,
}

/// Stops a generation from any thread, within one token (or one prefill batch). Clones share
/// the same flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token over an existing flag (a Ctrl-C handler's).
    pub fn from_flag(flag: Arc<AtomicBool>) -> Self {
        Self(flag)
    }

    /// Asks the generation to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Whether `other` is a clone of this token (shares its flag).
    pub fn same_as(&self, other: &CancelToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Clears the request, before a new generation starts.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            sampling: SamplingParams::default(),
            max_tokens: 256,
            stop_at_eog: true,
            cancel: None,
            logprobs: false,
            top_logprobs: 0,
            stop: Vec::new(),
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// `max_tokens` were generated.
    TokenLimit,
    /// The cancel token was cancelled, or the text callback asked to stop.
    Cancelled,
    /// The text reached one of [`GenerateOptions::stop`].
    StopSequence,
}

impl StopReason {
    /// A stable lower-case name: `eog`, `length`, `cancelled`, `stop`.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::EndOfGeneration => "eog",
            StopReason::TokenLimit => "length",
            StopReason::Cancelled => "cancelled",
            StopReason::StopSequence => "stop",
        }
    }
}

/// A token and its natural log-probability under the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    pub logprob: f32,
}

/// A piece of a reply as [`Session::generate_pieces`] streams it: text that is complete UTF-8
/// (and clear of any stop sequence), with the tokens generated since the previous piece.
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    pub text: &'a str,
    /// Tokens generated since the previous piece (an end-of-generation token included).
    pub tokens: &'a [u32],
    /// Their log-probabilities, with [`GenerateOptions::logprobs`] (else empty).
    pub logprobs: &'a [f32],
    /// Their most likely alternatives, with [`GenerateOptions::top_logprobs`] (else empty).
    pub top_logprobs: &'a [Vec<TokenLogprob>],
}

/// The result of [`Session::generate`].
#[derive(Debug, Clone)]
pub struct Generation {
    /// The prompt's token ids (the whole prompt, including any part already cached).
    pub prompt_tokens: Vec<u32>,
    /// Prompt tokens actually evaluated (the rest were reused from the cache).
    pub prefilled: usize,
    /// Prompt tokens the model could no longer see when the reply began: past the sinks and
    /// the window, they slid out of the cache (a prompt longer than the attention span).
    pub prompt_evicted: usize,
    /// Generated ids (an end-of-generation token included when it ended the turn).
    pub tokens: Vec<u32>,
    /// Generated text, without the end-of-generation token.
    pub text: String,
    /// With [`GenerateOptions::logprobs`]: each generated token's natural log-probability
    /// under the model (before sampling's temperature and filters).
    pub logprobs: Vec<f32>,
    /// With [`GenerateOptions::top_logprobs`]: at each step, the most likely tokens, most
    /// likely first.
    pub top_logprobs: Vec<Vec<TokenLogprob>>,
    pub stop: StopReason,
    pub prefill_time: Duration,
    pub decode_time: Duration,
}

impl Generation {
    /// Prompt tokens evaluated per second.
    pub fn prefill_tokens_per_second(&self) -> f64 {
        rate(self.prefilled, self.prefill_time)
    }

    /// Generated tokens per second (each one after the first needs a forward step).
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(self.tokens.len().saturating_sub(1), self.decode_time)
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    if t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

/// One scored position of [`Session::score`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenScore {
    /// The most likely next token.
    pub top1: u32,
    /// Natural log-probability of the actual next token.
    pub logprob: f32,
}

/// One conversation over an [`Engine`]: a KV cache and the tokens in it. A session owns a
/// handle to its engine, can move to another thread, and gives its cache and scratch back to
/// the budget when dropped.
pub struct Session {
    engine: Arc<Engine>,
    graph: Graph,
    /// Tokens whose keys and values are in the cache, in position order.
    history: Vec<u32>,
    /// Tokens in the batch written at position 0: the cache's key mean was measured over
    /// them, so a reused prefix must cover them to give what a fresh evaluation gives.
    first_batch: usize,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.engine.session_closed();
    }
}

impl Session {
    /// Allocates a session on `engine`; [`Engine::session`] counts it.
    pub(crate) fn new(engine: Arc<Engine>) -> Result<Self> {
        let graph = Graph::new(&engine)?;
        Ok(Self {
            engine,
            graph,
            history: Vec::new(),
            first_batch: 0,
        })
    }

    /// The engine this session runs on.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Layer `layer`'s cache layout and its K/V words, read back from the device (for
    /// diagnostics such as `runtime/examples/kv_stats.rs`; decode with
    /// [`crate::gpu::kernels::kv_cache::decode_at`]).
    #[doc(hidden)]
    pub fn read_cache(&self, layer: usize) -> Result<(crate::kv::LayerLayout, Vec<u32>)> {
        self.graph.read_cache(&self.engine, layer)
    }

    /// Saves the session (its cache as stored, its tokens) to `path`, atomically: the file is
    /// written beside it, synced and renamed over it, so a crash leaves the previous file.
    /// [`Engine::restore_session`] reads it back.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        self.save_with(path, None)
    }

    /// [`Session::save`] with a chat section (a [`crate::engine::Chat`]'s messages).
    pub(crate) fn save_with(
        &self,
        path: &std::path::Path,
        chat: Option<&serde_json::Value>,
    ) -> Result<()> {
        use crate::engine::session_file as f;
        let engine = &self.engine;
        let caches = self.graph.caches();
        let n = self.history.len() as u64;
        let header = serde_json::json!({
            "format": f::VERSION,
            "voyager": env!("CARGO_PKG_VERSION"),
            "model": {
                "identity": engine.model_identity(),
                "name": engine.model().config.name,
            },
            "cache": cache_json(engine),
            "layers": caches.len(),
            "tokens": n,
        });
        let sections = 2 + caches.len() as u32 + u32::from(chat.is_some());
        let mut w = f::Writer::create(path, sections)?;
        w.section(f::header_kind(), header.to_string().as_bytes())?;
        let tokens: Vec<u8> = self.history.iter().flat_map(|t| t.to_le_bytes()).collect();
        w.section(f::tokens_kind(), &tokens)?;
        for cache in caches {
            let mut bytes = Vec::with_capacity(f::layer_section_bytes(&cache.layout, n) as usize);
            for r in f::saved_ranges(&cache.layout, n) {
                bytes.extend(engine.gpu.read_bytes(
                    &cache.buffer,
                    4 * r.start,
                    4 * (r.end - r.start),
                )?);
            }
            w.section(f::layer_kind(), &bytes)?;
        }
        if let Some(chat) = chat {
            w.section(f::chat_kind(), chat.to_string().as_bytes())?;
        }
        w.finish()
    }

    /// A new session of `engine` holding what `path` saved, and the file's chat section.
    pub(crate) fn restore(
        engine: &Arc<Engine>,
        path: &std::path::Path,
    ) -> Result<(Session, Option<serde_json::Value>)> {
        use crate::engine::session_file as f;
        let bad = |why: String| Error::InvalidArgument(format!("session file: {why}"));
        let mut r = f::Reader::open(path)?;
        let header = r.header()?;
        if header["model"]["identity"].as_str() != Some(engine.model_identity()) {
            return Err(bad(format!(
                "saved with another model ({}); this engine runs {}",
                header["model"]["name"].as_str().unwrap_or("unnamed"),
                engine
                    .model()
                    .config
                    .name
                    .as_deref()
                    .unwrap_or("an unnamed model")
            )));
        }
        let want = cache_json(engine);
        if header["cache"] != want {
            return Err(bad(format!(
                "saved with a cache of {}; this engine's is {} (load it with the same cache \
                 type, window, sinks and batch)",
                describe_cache(&header["cache"]),
                describe_cache(&want)
            )));
        }
        let mut session = engine.session()?;
        let caches = session.graph.caches();
        if header["layers"].as_u64() != Some(caches.len() as u64) {
            return Err(bad("the layer count does not match the model".into()));
        }
        let n = header["tokens"]
            .as_u64()
            .filter(|&n| n < u64::from(u32::MAX))
            .ok_or_else(|| bad("the header has no valid token count".into()))?;
        let tokens = r.section(f::tokens_kind(), 4 * n, true)?;
        let history: Vec<u32> = tokens
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        session.check_ids(&history)?;
        for cache in caches {
            let bytes = r.section(
                f::layer_kind(),
                f::layer_section_bytes(&cache.layout, n),
                true,
            )?;
            let mut at = 0usize;
            for range in f::saved_ranges(&cache.layout, n) {
                let len = 4 * (range.end - range.start) as usize;
                engine
                    .gpu
                    .write_buffer(&cache.buffer, 4 * range.start, &bytes[at..at + len]);
                at += len;
            }
            engine.gpu.submit([]);
        }
        let chat = match r.sections_left() {
            0 => None,
            _ => Some(r.chat()?),
        };
        r.finish()?;
        engine
            .gpu
            .device()
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("restoring a session: {e}")))?;
        // Saved sessions were evaluated from position 0 in whole batches.
        session.first_batch = history.len().min(engine.batch_size());
        session.history = history;
        session.graph.caches_replaced();
        Ok((session, chat))
    }

    /// The tokens in the cache.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Forgets the conversation (the cache is overwritten from position 0).
    pub fn reset(&mut self) {
        self.history.clear();
    }

    /// Positions a query sees (sinks + window); older ones slide out of the cache.
    pub fn context_size(&self) -> usize {
        self.engine.context_size()
    }

    /// Tokens of the history a query at the next position can see (the sinks and the window).
    pub fn tokens_in_window(&self) -> usize {
        self.history.len().min(self.context_size())
    }

    /// Tokens of the history that have slid out of the cache so far.
    pub fn tokens_evicted(&self) -> usize {
        self.history.len().saturating_sub(self.context_size())
    }

    /// Evaluates `tokens` after the history, in batches, and returns the logits that follow
    /// the last one.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.feed_until(tokens, None)?
            .ok_or_else(|| Error::Gpu("a prefill without a cancel token was cancelled".into()))
    }

    /// Feeds one token like [`Session::feed`] and times every op of its step on the GPU
    /// (timestamps written between dispatches; devices without timestamps inside passes get
    /// an error). For profiling: the times show where a decode step goes.
    pub fn feed_profiled(&mut self, token: u32) -> Result<(Vec<f32>, Vec<OpTime>)> {
        self.check_room(1)?;
        self.check_ids(&[token])?;
        let pos = self.history.len() as u32;
        let out = self.graph.step_profiled(&self.engine, &[token], pos)?;
        if pos == 0 {
            self.first_batch = 1;
        }
        self.history.push(token);
        Ok(out)
    }

    /// [`Session::feed`] that stops between batches once `cancel` is cancelled (`None`: the
    /// tokens fed so far stay in the history).
    fn feed_until(
        &mut self,
        tokens: &[u32],
        cancel: Option<&CancelToken>,
    ) -> Result<Option<Vec<f32>>> {
        if tokens.is_empty() {
            return Err(Error::InvalidArgument(
                "nothing to evaluate: the prompt is empty".into(),
            ));
        }
        self.check_room(tokens.len())?;
        self.check_ids(tokens)?;
        let batch = self.engine.batch_size();
        let mut logits = Vec::new();
        for chunk in tokens.chunks(batch) {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return Ok(None);
            }
            let pos = self.history.len() as u32;
            logits = self.graph.step(&self.engine, chunk, pos, Logits::Last)?;
            if pos == 0 {
                self.first_batch = chunk.len();
            }
            self.history.extend_from_slice(chunk);
        }
        Ok(Some(logits))
    }

    /// Evaluates `tokens` from an empty cache and scores every position after the first: for
    /// each `i` in `0..tokens.len() - 1`, how position `i` predicts `tokens[i + 1]`.
    pub fn score(&mut self, tokens: &[u32]) -> Result<Vec<TokenScore>> {
        self.reset();
        self.check_room(tokens.len())?;
        self.check_ids(tokens)?;
        let vocab = self.engine.model.config.vocab_size;
        let batch = self.engine.batch_size();
        let mut scores = Vec::with_capacity(tokens.len().saturating_sub(1));
        for (c, chunk) in tokens.chunks(batch).enumerate() {
            let pos = (c * batch) as u32;
            let logits = self.graph.step(&self.engine, chunk, pos, Logits::All)?;
            if pos == 0 {
                self.first_batch = chunk.len();
            }
            self.history.extend_from_slice(chunk);
            for (i, row) in logits.chunks_exact(vocab).enumerate() {
                let Some(&next) = tokens.get(c * batch + i + 1) else {
                    break;
                };
                scores.push(score_row(row, next));
            }
        }
        Ok(scores)
    }

    /// Generates a reply to `prompt`, calling `on_text` with each piece of text as soon as it
    /// is complete UTF-8; `on_text` returning `false` stops the reply (as a cancel does).
    ///
    /// A prompt longer than the attention span is not refused: it streams through the
    /// window like a long conversation, and [`Generation::prompt_evicted`] says how many of
    /// its tokens the model no longer sees when the reply begins (logged as a warning).
    pub fn generate(
        &mut self,
        prompt: Prompt<'_>,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation> {
        self.generate_pieces(prompt, options, &mut |piece| {
            piece.text.is_empty() || on_text(piece.text)
        })
    }

    /// [`Session::generate`] that streams each [`Piece`] with its tokens and, when asked for,
    /// their log-probabilities (what an API reporting per-token details while streaming
    /// needs). The last piece may have empty text: it carries the tokens not yet reported.
    pub fn generate_pieces(
        &mut self,
        prompt: Prompt<'_>,
        options: &GenerateOptions,
        on_piece: &mut dyn FnMut(Piece<'_>) -> bool,
    ) -> Result<Generation> {
        options
            .sampling
            .validate()
            .map_err(|e| Error::InvalidArgument(format!("sampling: {e}")))?;
        let engine = Arc::clone(&self.engine);
        let tok = &engine.model.tokenizer;
        let prompt_tokens = match prompt {
            Prompt::Text(text) => {
                let mut ids = self.history.clone();
                ids.extend(tok.encode(text, self.history.is_empty())?);
                ids
            }
            Prompt::Chat(messages) => engine.model.template.encode(tok, messages, true)?,
            Prompt::Tokens(ids) => {
                let mut all = self.history.clone();
                all.extend_from_slice(ids);
                all
            }
            Prompt::Sequence(ids) => ids.to_vec(),
        };
        if prompt_tokens.is_empty() {
            return Err(Error::InvalidArgument("the prompt is empty".into()));
        }
        // Reuse the cached prefix; always evaluate at least the prompt's last token, whose
        // logits start the reply. Rolling back (a chat turn edited or regenerated) keeps the
        // cache only when the ring still holds every key the next queries need; otherwise
        // evaluate from the start. A prefix shorter than the first batch is evaluated again
        // too: the keys' mean was measured over that batch, and a fresh evaluation of this
        // prompt would measure it over its own, so reusing it would make the reply depend on
        // what the session held before (another conversation sharing a system prompt).
        let shared = self.common_prefix(&prompt_tokens);
        let mut common = shared.min(prompt_tokens.len() - 1);
        if shared < self.first_batch || !self.graph.can_roll_back(self.history.len(), common) {
            common = 0;
        }
        self.history.truncate(common);
        let new = &prompt_tokens[common..];
        let prompt_evicted = prompt_tokens.len().saturating_sub(self.context_size());
        if prompt_evicted > 0 && !new.is_empty() {
            log::warn!(
                "the prompt has {} tokens and the model sees {} at a time (the first {} and \
                 the newest {}): the {prompt_evicted} before those slid out of the window",
                prompt_tokens.len(),
                self.context_size(),
                self.engine.kv_config().sinks,
                self.engine.kv_config().window,
            );
        }

        let start = Instant::now();
        let cancel = options.cancel.as_ref();
        let fed = self.feed_until(new, cancel)?;
        let prefill_time = start.elapsed();
        // Tokens actually evaluated (fewer than asked when the prefill was cancelled).
        let prefilled = self.history.len() - common;

        let start = Instant::now();
        let mut sampler = Sampler::new(options.sampling.clone());
        let mut decoder = StreamDecoder::new(tok);
        let mut stop_text = StopText::new(&options.stop);
        let want_logprobs = options.logprobs || options.top_logprobs > 0;
        let mut tokens = Vec::new();
        let mut logprobs = Vec::new();
        let mut top_logprobs = Vec::new();
        let mut text = String::new();
        // Tokens up to here have been reported in a piece.
        let mut reported = 0;
        let mut report = |text_piece: &str,
                          tokens: &[u32],
                          logprobs: &[f32],
                          top: &[Vec<TokenLogprob>],
                          reported: &mut usize| {
            let from = *reported;
            *reported = tokens.len();
            on_piece(Piece {
                text: text_piece,
                tokens: &tokens[from..],
                logprobs: logprobs.get(from..).unwrap_or_default(),
                top_logprobs: top.get(from..).unwrap_or_default(),
            })
        };
        let mut go_on = true;
        let mut stop = match fed {
            None => StopReason::Cancelled,
            Some(mut logits) => loop {
                if !go_on || cancel.is_some_and(CancelToken::is_cancelled) {
                    break StopReason::Cancelled;
                }
                if tokens.len() >= options.max_tokens {
                    break StopReason::TokenLimit;
                }
                let next = sampler.sample(&logits, &self.history);
                tokens.push(next);
                if want_logprobs {
                    logprobs.push(score_row(&logits, next).logprob);
                }
                if options.top_logprobs > 0 {
                    top_logprobs.push(top_tokens(&logits, options.top_logprobs));
                }
                if options.stop_at_eog && tok.is_eog(next) {
                    break StopReason::EndOfGeneration;
                }
                let released = stop_text.push(&decoder.push(next)?);
                if !released.text.is_empty() || released.stopped {
                    text.push_str(&released.text);
                    go_on = report(
                        &released.text,
                        &tokens,
                        &logprobs,
                        &top_logprobs,
                        &mut reported,
                    );
                }
                if released.stopped {
                    break StopReason::StopSequence;
                }
                // The reply is over: the last token needs no forward step of its own (the
                // next turn evaluates it, as part of its prompt).
                if !go_on {
                    break StopReason::Cancelled;
                }
                if tokens.len() >= options.max_tokens {
                    break StopReason::TokenLimit;
                }
                logits = self.feed(&[next])?;
            },
        };
        if stop != StopReason::StopSequence {
            let flushed = stop_text.push(&decoder.finish());
            let mut rest = flushed.text;
            if flushed.stopped {
                stop = StopReason::StopSequence;
            } else {
                rest.push_str(&stop_text.finish());
            }
            text.push_str(&rest);
            // A callback that asked to stop is not called again.
            if go_on && (!rest.is_empty() || reported < tokens.len()) {
                report(&rest, &tokens, &logprobs, &top_logprobs, &mut reported);
            }
        }
        Ok(Generation {
            prompt_tokens,
            prefilled,
            prompt_evicted,
            tokens,
            text,
            logprobs,
            top_logprobs,
            stop,
            prefill_time,
            decode_time: start.elapsed(),
        })
    }

    /// Tokens of `prompt` already in the cache, in order from the start.
    fn common_prefix(&self, prompt: &[u32]) -> usize {
        self.history
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// Positions are `u32`: refuses a sequence that would run past them. The cache itself is
    /// a sliding window, so any length below that fits.
    fn check_room(&self, n: usize) -> Result<()> {
        if self.history.len() + n >= u32::MAX as usize {
            return Err(Error::Context(format!(
                "{n} more tokens would run past the longest sequence a session can hold"
            )));
        }
        Ok(())
    }

    fn check_ids(&self, tokens: &[u32]) -> Result<()> {
        let vocab = self.engine.model.config.vocab_size as u32;
        match tokens.iter().find(|&&t| t >= vocab) {
            Some(t) => Err(Error::InvalidArgument(format!(
                "token id {t} is outside the vocabulary of {vocab}"
            ))),
            None => Ok(()),
        }
    }
}

/// What a session file records of the engine's cache: a restored cache must be laid out the
/// same way to be read the same way.
fn cache_json(engine: &Engine) -> serde_json::Value {
    let kv = engine.kv_config();
    let mut v = serde_json::json!({
        "k_type": kv.k_type.name(),
        "v_type": kv.v_type.name(),
        "sinks": kv.sinks,
        "window": kv.window,
        "recent": kv.recent,
        "rotate": kv.rotate,
        "center_keys": kv.center_keys,
        "batch": engine.batch_size(),
    });
    // Only named when not the default, so files saved before policies existed still load.
    if kv.policy != crate::kv::KvPolicy::Window {
        v["policy"] = kv.policy.name().into();
    }
    v
}

fn describe_cache(v: &serde_json::Value) -> String {
    format!(
        "K {} V {}, {} policy, window {} + {} sinks, newest {} in f16, batch {}",
        v["k_type"].as_str().unwrap_or("?"),
        v["v_type"].as_str().unwrap_or("?"),
        v["policy"].as_str().unwrap_or("window"),
        v["window"],
        v["sinks"],
        v["recent"],
        v["batch"]
    )
}

/// The `n` most likely tokens of one row of logits with their log-probabilities, most likely
/// first (ties to the lower id).
fn top_tokens(row: &[f32], n: usize) -> Vec<TokenLogprob> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = row
        .iter()
        .map(|&v| f64::from(v - max).exp())
        .sum::<f64>()
        .ln();
    let mut ids: Vec<u32> = (0..row.len() as u32).collect();
    let rank = |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
    let n = n.min(ids.len());
    if n < ids.len() {
        ids.select_nth_unstable_by(n, rank);
        ids.truncate(n);
    }
    ids.sort_unstable_by(rank);
    ids.into_iter()
        .map(|id| TokenLogprob {
            id,
            logprob: (f64::from(row[id as usize] - max) - log_sum) as f32,
        })
        .collect()
}

/// The top-1 id and the log-softmax of `target` in one row of logits, in f64.
fn score_row(row: &[f32], target: u32) -> TokenScore {
    let mut top1 = 0;
    let mut max = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > max {
            max = v;
            top1 = i as u32;
        }
    }
    let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
    let logprob = f64::from(row[target as usize] - max) - sum.ln();
    TokenScore {
        top1,
        logprob: logprob as f32,
    }
}
