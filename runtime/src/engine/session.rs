//! A conversation: its KV cache, the tokens in it, generation and scoring.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::graph::{Graph, Logits};
use crate::engine::sampling::{Sampler, SamplingParams};
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
}

impl StopReason {
    /// A stable lower-case name: `eog`, `length`, `cancelled`.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::EndOfGeneration => "eog",
            StopReason::TokenLimit => "length",
            StopReason::Cancelled => "cancelled",
        }
    }
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
        };
        if prompt_tokens.is_empty() {
            return Err(Error::InvalidArgument("the prompt is empty".into()));
        }
        // Reuse the cached prefix; always evaluate at least the prompt's last token, whose
        // logits start the reply. Rolling back (a chat turn edited or regenerated) keeps the
        // cache only when the ring still holds every key the next queries need; otherwise
        // evaluate from the start.
        let mut common = self
            .common_prefix(&prompt_tokens)
            .min(prompt_tokens.len() - 1);
        if !self.graph.can_roll_back(self.history.len(), common) {
            common = 0;
        }
        self.history.truncate(common);
        let new = &prompt_tokens[common..];
        let prefilled = new.len();
        let prompt_evicted = prompt_tokens.len().saturating_sub(self.context_size());
        if prompt_evicted > 0 && prefilled > 0 {
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

        let start = Instant::now();
        let mut sampler = Sampler::new(options.sampling.clone());
        let mut decoder = StreamDecoder::new(tok);
        let mut tokens = Vec::new();
        let mut text = String::new();
        let mut go_on = true;
        let stop = match fed {
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
                if options.stop_at_eog && tok.is_eog(next) {
                    break StopReason::EndOfGeneration;
                }
                let piece = decoder.push(next)?;
                if !piece.is_empty() {
                    text.push_str(&piece);
                    go_on = on_text(&piece);
                }
                logits = self.feed(&[next])?;
            },
        };
        let rest = decoder.finish();
        if !rest.is_empty() {
            text.push_str(&rest);
            on_text(&rest);
        }
        Ok(Generation {
            prompt_tokens,
            prefilled,
            prompt_evicted,
            tokens,
            text,
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
