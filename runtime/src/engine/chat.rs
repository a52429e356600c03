//! [`Chat`]: the one conversation API every host uses (the CLI, the SDK, the desktop app, the
//! server). It keeps the messages, renders them with the model's chat template, feeds only the
//! tokens the session's cache does not already hold, regenerates or edits turns (rolling the
//! cache back where the ring still holds what is needed, re-reading the conversation where it
//! does not), streams text in whole UTF-8 characters, and can be cancelled from any thread.

use std::sync::Arc;

use crate::engine::session::{CancelToken, GenerateOptions, Generation, Prompt, StopReason};
use crate::engine::{Engine, Session};
use crate::error::{Error, Result};
use crate::tokenizer::ChatMessage;

/// The roles a message may have.
pub const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// Figures about one turn.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TurnStats {
    /// Tokens of the whole rendered conversation the reply answers.
    pub prompt_tokens: usize,
    /// Of those, tokens reused from the cache (not evaluated again).
    pub reused_tokens: usize,
    /// Tokens generated (an end-of-generation token included).
    pub generated_tokens: usize,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    /// Tokens the model sees now (sinks + window, at most).
    pub tokens_in_window: usize,
    /// Tokens of the conversation that have slid out of the cache so far.
    pub tokens_evicted: usize,
    /// Tokens of this turn's prompt that were already out of sight when the reply began.
    pub prompt_evicted: usize,
}

/// One answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The assistant's text (what was streamed, in full).
    pub text: String,
    pub stop: StopReason,
    pub stats: TurnStats,
}

/// How much of the attention span a conversation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextUsage {
    /// Tokens in the session's history.
    pub tokens: usize,
    /// Tokens the model sees now.
    pub in_window: usize,
    /// Tokens that have slid out.
    pub evicted: usize,
    /// The span: sinks + window.
    pub context_size: usize,
}

/// A conversation: messages over a [`Session`].
pub struct Chat {
    session: Session,
    messages: Vec<ChatMessage>,
    cancel: CancelToken,
}

impl Chat {
    /// A conversation on a new session of `engine`, opened by `system` when given.
    pub fn new(engine: &Arc<Engine>, system: Option<&str>) -> Result<Self> {
        let messages = system
            .map(|s| vec![ChatMessage::new("system", s)])
            .unwrap_or_default();
        Self::with_messages(engine.session()?, messages)
    }

    /// A conversation that goes on from `messages` (a saved one, reopened) on `session`.
    /// Nothing is evaluated until the next turn.
    pub fn with_messages(session: Session, messages: Vec<ChatMessage>) -> Result<Self> {
        for (i, m) in messages.iter().enumerate() {
            check_role(&m.role)?;
            if m.role == "system" && i > 0 {
                return Err(Error::InvalidArgument(format!(
                    "message {i} is a system message; only the first may be"
                )));
            }
        }
        Ok(Self {
            session,
            messages,
            cancel: CancelToken::new(),
        })
    }

    /// The messages so far (the system message first, when there is one).
    pub fn messages(&self) -> &[ChatMessage] {
        &self.messages
    }

    /// The session under the conversation.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// A handle that stops the current answer from any thread, within one token (unless the
    /// answer was given a token of its own in [`GenerateOptions::cancel`]).
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Uses `token` to stop answers from now on (a host's own, such as a Ctrl-C handler's).
    /// It is cleared when an answer starts.
    pub fn set_cancel_token(&mut self, token: CancelToken) {
        self.cancel = token;
    }

    /// Stops the current answer (the same as `cancel_token().cancel()`).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// How much of the span the conversation uses.
    pub fn context_usage(&self) -> ContextUsage {
        ContextUsage {
            tokens: self.session.history().len(),
            in_window: self.session.tokens_in_window(),
            evicted: self.session.tokens_evicted(),
            context_size: self.session.context_size(),
        }
    }

    /// Saves the conversation (messages and the session's cache) to `path`, atomically.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let messages = serde_json::to_value(&self.messages)
            .map_err(|e| Error::InvalidArgument(format!("cannot save the messages: {e}")))?;
        self.session
            .save_with(path, Some(&serde_json::json!({ "messages": messages })))
    }

    /// A conversation restored from a file [`Chat::save`] wrote, on a new session of
    /// `engine`: the next message reuses the restored cache.
    pub fn restore(engine: &Arc<Engine>, path: &std::path::Path) -> Result<Self> {
        let (session, chat) = Session::restore(engine, path)?;
        let chat = chat.ok_or_else(|| {
            Error::InvalidArgument(
                "session file: it holds a session, not a chat (no messages)".into(),
            )
        })?;
        let messages: Vec<ChatMessage> = chat["messages"]
            .as_array()
            .ok_or_else(|| Error::InvalidArgument("session file: no messages".into()))?
            .iter()
            .map(|m| match (m["role"].as_str(), m["content"].as_str()) {
                (Some(r), Some(c)) => Ok(ChatMessage::new(r, c)),
                _ => Err(Error::InvalidArgument(
                    "session file: a message without a role or content".into(),
                )),
            })
            .collect::<Result<_>>()?;
        Self::with_messages(session, messages)
    }

    /// Keeps the first `len` messages and drops the rest (a host undoing a turn that failed
    /// midway). The cache keeps what the next turn can reuse.
    pub fn truncate(&mut self, len: usize) {
        self.messages.truncate(len);
    }

    /// Forgets every message but the system one, and the cache.
    pub fn reset(&mut self) {
        self.messages.retain(|m| m.role == "system");
        self.session.reset();
    }

    /// Sends a user message and streams the answer to `on_text` (which returns `false` to
    /// stop). The answer is added to the messages, also when it was stopped early; on an
    /// error the conversation is left as it was.
    pub fn send(
        &mut self,
        text: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Reply> {
        self.messages.push(ChatMessage::new("user", text));
        self.answer(options, on_text).inspect_err(|_| {
            self.messages.pop();
        })
    }

    /// Answers the last user message again: the last answer is dropped and a new one
    /// generated (with a different seed or temperature, a different one).
    pub fn regenerate(
        &mut self,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Reply> {
        let last = self
            .messages
            .last()
            .ok_or_else(|| Error::InvalidArgument("there is no answer to regenerate".into()))?;
        let removed = match last.role.as_str() {
            "assistant" => self.messages.pop(),
            "user" => None,
            _ => {
                return Err(Error::InvalidArgument(
                    "there is no answer to regenerate".into(),
                ))
            }
        };
        self.answer(options, on_text).inspect_err(|_| {
            self.messages.extend(removed);
        })
    }

    /// Replaces user message `index` with `text`, drops every message after it, and answers
    /// it. The cache is rolled back to where the conversation changed.
    pub fn edit(
        &mut self,
        index: usize,
        text: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Reply> {
        match self.messages.get(index) {
            Some(m) if m.role == "user" => {}
            Some(m) => {
                return Err(Error::InvalidArgument(format!(
                    "message {index} is a {} message; only user messages can be edited",
                    m.role
                )))
            }
            None => {
                return Err(Error::InvalidArgument(format!(
                    "there is no message {index} (the conversation has {})",
                    self.messages.len()
                )))
            }
        }
        let removed = self.messages.split_off(index);
        self.messages.push(ChatMessage::new("user", text));
        self.answer(options, on_text).inspect_err(|_| {
            self.messages.pop();
            self.messages.extend(removed.iter().cloned());
        })
    }

    /// Generates the assistant's answer to the messages as they stand and appends it.
    fn answer(
        &mut self,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Reply> {
        // A token in `options` belongs to this one call (a host's per-request token) and is
        // used as it is; the chat's own token is cleared at each answer.
        let cancel = match &options.cancel {
            Some(token) => token.clone(),
            None => {
                self.cancel.reset();
                self.cancel.clone()
            }
        };
        let options = GenerateOptions {
            cancel: Some(cancel),
            ..options.clone()
        };
        let gen = self
            .session
            .generate(Prompt::Chat(&self.messages), &options, on_text)?;
        self.messages
            .push(ChatMessage::new("assistant", gen.text.as_str()));
        Ok(Reply {
            stats: self.stats(&gen),
            text: gen.text,
            stop: gen.stop,
        })
    }

    fn stats(&self, gen: &Generation) -> TurnStats {
        TurnStats {
            prompt_tokens: gen.prompt_tokens.len(),
            reused_tokens: gen.prompt_tokens.len() - gen.prefilled,
            generated_tokens: gen.tokens.len(),
            prefill_tokens_per_second: gen.prefill_tokens_per_second(),
            decode_tokens_per_second: gen.decode_tokens_per_second(),
            tokens_in_window: self.session.tokens_in_window(),
            tokens_evicted: self.session.tokens_evicted(),
            prompt_evicted: gen.prompt_evicted,
        }
    }
}

fn check_role(role: &str) -> Result<()> {
    if ROLES.contains(&role) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "unknown role `{role}` (system, user or assistant)"
        )))
    }
}
