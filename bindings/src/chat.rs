//! `Chat`: a conversation over one of the engine's sessions (the runtime's `Chat`: the model's
//! template, only new tokens fed, regenerate, cancel from any thread), and the listener that
//! receives the answer as it streams.

use std::sync::{Arc, Mutex, MutexGuard};

use voyager_runtime::engine::CancelToken;

use crate::config::{ContextUsage, Message, Reply, ReplyStats, SamplingConfig};
use crate::error::VoyagerError;
use crate::guard::guarded;

/// Receives an answer's text as it streams, in pieces that never split a UTF-8 character.
/// Returning false stops the answer (as `cancel()` does). If it throws, the answer stops and
/// the call fails with `VoyagerError.Listener`.
#[uniffi::export(with_foreign)]
pub trait TokenListener: Send + Sync {
    fn on_token(&self, piece: String) -> Result<bool, VoyagerError>;
}

/// Calls the app's listener and keeps the first error it throws.
pub(crate) struct ListenerAdapter {
    listener: Arc<dyn TokenListener>,
    error: Option<VoyagerError>,
}

impl ListenerAdapter {
    pub fn new(listener: Arc<dyn TokenListener>) -> Self {
        Self {
            listener,
            error: None,
        }
    }

    pub fn on_token(&mut self, piece: &str) -> bool {
        match self.listener.on_token(piece.to_owned()) {
            Ok(go_on) => go_on,
            Err(e) => {
                self.error.get_or_insert(match e {
                    VoyagerError::Listener { .. } => e,
                    other => VoyagerError::Listener {
                        detail: format!("the token listener threw: {other}"),
                    },
                });
                false
            }
        }
    }

    pub fn result(self) -> Result<(), VoyagerError> {
        self.error.map_or(Ok(()), Err)
    }
}

/// A conversation. Its methods may be called from any thread; `cancel()` stops the answer in
/// progress (and any waiting for it) within one token. Reading the messages or the context
/// usage never waits for an answer: they are kept as of the last finished one.
#[derive(uniffi::Object)]
pub struct Chat {
    inner: Mutex<voyager_runtime::Chat>,
    /// The tokens of the calls in progress or waiting for `inner`: `cancel()` stops them all.
    calls: Mutex<Vec<CancelToken>>,
    /// Messages and context usage after the last finished call.
    snapshot: Mutex<(Vec<Message>, ContextUsage)>,
    sampling: SamplingConfig,
}

/// Takes a call's token off the list when the call ends.
struct Registered<'a> {
    calls: &'a Mutex<Vec<CancelToken>>,
    token: CancelToken,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(self.calls).retain(|t| !t.same_as(&self.token));
    }
}

/// A lock that survives a panic caught while it was held (the data is repaired by the caller).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn snapshot_of(chat: &voyager_runtime::Chat) -> (Vec<Message>, ContextUsage) {
    let u = chat.context_usage();
    (
        chat.messages()
            .iter()
            .map(|m| Message {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect(),
        ContextUsage {
            tokens: u.tokens as u64,
            tokens_in_window: u.in_window as u32,
            tokens_evicted: u.evicted as u64,
            context_size: u.context_size as u32,
        },
    )
}

impl Chat {
    pub(crate) fn open(
        engine: &Arc<voyager_runtime::Engine>,
        system: Option<&str>,
        sampling: SamplingConfig,
    ) -> Result<Arc<Self>, VoyagerError> {
        // Bad sampling values are refused now, not at the first message.
        sampling.options(sampling.max_tokens)?;
        let chat = voyager_runtime::Chat::new(engine, system)?;
        Ok(Arc::new(Self {
            snapshot: Mutex::new(snapshot_of(&chat)),
            inner: Mutex::new(chat),
            calls: Mutex::new(Vec::new()),
            sampling,
        }))
    }

    /// A token for a new call, registered so that `cancel()` reaches it.
    fn register(&self) -> CancelToken {
        let token = CancelToken::new();
        lock(&self.calls).push(token.clone());
        token
    }

    fn answer(
        &self,
        token: CancelToken,
        listener: Arc<dyn TokenListener>,
        turn: impl FnOnce(
            &mut voyager_runtime::Chat,
            &voyager_runtime::engine::GenerateOptions,
            &mut dyn FnMut(&str) -> bool,
        ) -> voyager_runtime::Result<voyager_runtime::engine::Reply>,
    ) -> Result<Reply, VoyagerError> {
        let _registered = Registered {
            calls: &self.calls,
            token: token.clone(),
        };
        let mut chat = lock(&self.inner);
        let before = chat.messages().len();
        let result = guarded(|| {
            let options = voyager_runtime::engine::GenerateOptions {
                cancel: Some(token),
                ..self.sampling.options(self.sampling.max_tokens)?
            };
            let mut adapter = ListenerAdapter::new(listener);
            let reply = turn(&mut chat, &options, &mut |piece| adapter.on_token(piece))?;
            adapter.result()?;
            Ok(reply_of(reply))
        });
        if matches!(result, Err(VoyagerError::Internal { .. })) {
            // A panic midway: drop what the failed turn added, so the conversation goes on.
            chat.truncate(before);
        }
        *lock(&self.snapshot) = snapshot_of(&chat);
        result
    }
}

fn reply_of(r: voyager_runtime::engine::Reply) -> Reply {
    let s = r.stats;
    Reply {
        text: r.text,
        stop_reason: r.stop.into(),
        stats: ReplyStats {
            prompt_tokens: s.prompt_tokens as u32,
            reused_tokens: s.reused_tokens as u32,
            generated_tokens: s.generated_tokens as u32,
            prefill_tokens_per_second: s.prefill_tokens_per_second,
            decode_tokens_per_second: s.decode_tokens_per_second,
            tokens_in_window: s.tokens_in_window as u32,
            tokens_evicted: s.tokens_evicted as u64,
        },
    }
}

#[uniffi::export]
impl Chat {
    /// Sends a user message and streams the answer to `listener`; returns it whole.
    pub fn send(
        &self,
        text: String,
        listener: Arc<dyn TokenListener>,
    ) -> Result<Reply, VoyagerError> {
        let token = self.register();
        self.answer(token, listener, |chat, options, on_text| {
            chat.send(&text, options, on_text)
        })
    }

    /// [`Chat::send`] as a coroutine (Kotlin `suspend`, Swift `async`, Python `await`). The
    /// answer is computed on a thread of its own; dropping the future cancels it.
    pub async fn send_async(
        self: Arc<Self>,
        text: String,
        listener: Arc<dyn TokenListener>,
    ) -> Result<Reply, VoyagerError> {
        let token = self.register();
        let mut guard = CancelOnDrop {
            token: token.clone(),
            armed: true,
        };
        let (sender, answer) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("voyager-chat".into())
            .spawn(move || {
                let reply = self.answer(token, listener, |chat, options, on_text| {
                    chat.send(&text, options, on_text)
                });
                sender.send(reply)
            });
        if let Err(e) = spawned {
            return Err(VoyagerError::Internal {
                detail: format!("cannot start a thread for the answer: {e}"),
            });
        }
        let reply = answer.await.unwrap_or_else(|_| {
            Err(VoyagerError::Internal {
                detail: "the answer's thread ended without a reply".into(),
            })
        });
        guard.armed = false;
        reply
    }

    /// Answers the last user message again (the last answer is dropped).
    pub fn regenerate(&self, listener: Arc<dyn TokenListener>) -> Result<Reply, VoyagerError> {
        let token = self.register();
        self.answer(token, listener, |chat, options, on_text| {
            chat.regenerate(options, on_text)
        })
    }

    /// Stops the answer in progress, and any waiting to start, from any thread, within one
    /// token.
    pub fn cancel(&self) {
        for token in lock(&self.calls).iter() {
            token.cancel();
        }
    }

    /// The messages as of the last finished answer (the system message first, when there is
    /// one). Never waits for an answer in progress.
    pub fn messages(&self) -> Vec<Message> {
        lock(&self.snapshot).0.clone()
    }

    /// Forgets every message but the system one (an answer in progress is cancelled first).
    pub fn reset(&self) {
        self.cancel();
        let mut chat = lock(&self.inner);
        chat.reset();
        *lock(&self.snapshot) = snapshot_of(&chat);
    }

    /// How much of the attention span the conversation uses, as of the last finished answer.
    pub fn context_usage(&self) -> ContextUsage {
        lock(&self.snapshot).1
    }
}

/// Cancels the answer when the future awaiting it is dropped (the caller's task was
/// cancelled) before the answer arrived.
struct CancelOnDrop {
    token: CancelToken,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.token.cancel();
        }
    }
}
