//! The engine's thread: loads models and answers, so the window never waits on the GPU.
//!
//! The UI sends [`Command`]s and reads [`Event`]s; every event wakes the UI (through the egui
//! context's repaint request). The thread keeps one [`Chat`] open, for the conversation that
//! spoke last: a turn of the same conversation reuses its cache, and a turn of another one
//! closes it (the engine is planned for one session) and opens a chat over that
//! conversation's messages, which the next answer evaluates. Answers are stopped through the
//! [`CancelToken`] the UI put in their options, from the UI thread, within one token.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use voyager_runtime::engine::GenerateOptions;
use voyager_runtime::engine::{ContextUsage, Reply};
use voyager_runtime::tokenizer::ChatMessage;
use voyager_runtime::{Chat, Engine, EngineOptions};

/// What an answer does to the conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A new user message.
    Send(String),
    /// Answer the last user message again.
    Regenerate,
    /// Replace user message `index` (of the engine's messages) and answer it.
    Edit { index: usize, text: String },
}

pub enum Command {
    Load {
        path: PathBuf,
        options: EngineOptions,
    },
    Answer {
        conversation: String,
        /// The conversation as the engine sees it before the action.
        messages: Vec<ChatMessage>,
        action: Action,
        options: GenerateOptions,
    },
    /// The conversation was deleted: close its chat if it is the open one.
    Forget { conversation: String },
}

pub enum Event {
    LoadProgress {
        done: u64,
        total: u64,
    },
    Loaded(Arc<Engine>),
    LoadFailed(String),
    /// A piece of the answer being streamed.
    Text {
        conversation: String,
        text: String,
    },
    Answered {
        conversation: String,
        reply: Reply,
        context: ContextUsage,
    },
    AnswerFailed {
        conversation: String,
        error: String,
    },
}

/// The UI's end of the engine thread.
pub struct Worker {
    commands: Sender<Command>,
    pub events: Receiver<Event>,
}

impl Worker {
    /// Starts the thread; `wake` is called after each event is sent.
    pub fn start(wake: impl Fn() + Send + 'static) -> Self {
        let (commands, command_rx) = channel();
        let (event_tx, events) = channel();
        std::thread::Builder::new()
            .name("voyager-engine".into())
            .spawn(move || run(command_rx, event_tx, wake))
            .expect("cannot start the engine thread");
        Self { commands, events }
    }

    pub fn send(&self, command: Command) {
        // The thread only ends when this sender is dropped.
        let _ = self.commands.send(command);
    }
}

fn run(commands: Receiver<Command>, events: Sender<Event>, wake: impl Fn()) {
    let emit = |event: Event| {
        let _ = events.send(event);
        wake();
    };
    let mut engine: Option<Arc<Engine>> = None;
    let mut open: Option<(String, Chat)> = None;
    while let Ok(command) = commands.recv() {
        match command {
            Command::Load { path, options } => {
                // The old model's sessions and weights go before the new ones come.
                open = None;
                engine = None;
                let loaded = guarded(|| {
                    Engine::load(&path, &options, &mut |p| {
                        emit(Event::LoadProgress {
                            done: p.done,
                            total: p.total,
                        })
                    })
                    .map_err(|e| e.to_string())
                });
                match loaded {
                    Ok(e) => {
                        engine = Some(e.clone());
                        emit(Event::Loaded(e));
                    }
                    Err(e) => emit(Event::LoadFailed(e)),
                }
            }
            Command::Forget { conversation } => {
                if open.as_ref().is_some_and(|(id, _)| *id == conversation) {
                    open = None;
                }
            }
            Command::Answer {
                conversation,
                messages,
                action,
                options,
            } => {
                let Some(engine) = engine.as_ref() else {
                    emit(Event::AnswerFailed {
                        conversation,
                        error: "no model is loaded".into(),
                    });
                    continue;
                };
                let result = guarded(|| {
                    let chat = chat_for(&mut open, engine, &conversation, messages)?;
                    let mut on_text = |text: &str| {
                        emit(Event::Text {
                            conversation: conversation.clone(),
                            text: text.to_string(),
                        });
                        true
                    };
                    let reply = match &action {
                        Action::Send(text) => chat.send(text, &options, &mut on_text),
                        Action::Regenerate => chat.regenerate(&options, &mut on_text),
                        Action::Edit { index, text } => {
                            chat.edit(*index, text, &options, &mut on_text)
                        }
                    };
                    reply
                        .map(|r| (r, chat.context_usage()))
                        .map_err(|e| e.to_string())
                });
                match result {
                    Ok((reply, context)) => emit(Event::Answered {
                        conversation,
                        reply,
                        context,
                    }),
                    Err(error) => {
                        // The chat may be anywhere after a failure: the next turn reopens it.
                        open = None;
                        emit(Event::AnswerFailed {
                            conversation,
                            error,
                        })
                    }
                }
            }
        }
    }
}

/// The open chat when it is `conversation`'s and holds exactly `messages`; otherwise a new
/// one over them (the old chat's session closed first, so it never needs room for two).
fn chat_for<'a>(
    open: &'a mut Option<(String, Chat)>,
    engine: &Arc<Engine>,
    conversation: &str,
    messages: Vec<ChatMessage>,
) -> Result<&'a mut Chat, String> {
    let reusable = matches!(open, Some((id, chat)) if id == conversation && chat.messages() == messages.as_slice());
    if !reusable {
        *open = None;
        let session = engine.session().map_err(|e| e.to_string())?;
        let chat = Chat::with_messages(session, messages).map_err(|e| e.to_string())?;
        *open = Some((conversation.to_string(), chat));
    }
    Ok(&mut open.as_mut().expect("just opened").1)
}

/// Runs `f`, turning a panic into an error message: a bug in one answer must not take the
/// user's window (and unsaved input) down with it.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(format!("internal error: {what}"))
    })
}
