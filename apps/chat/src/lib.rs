//! `voyager-chat`: Voyager's desktop chat app for offline assistants, on eframe/egui.
//!
//! - [`app`]: the state and what each action does (conversations, the model, answers);
//! - [`ui`]: drawing it, frame by frame, never waiting on the engine;
//! - [`worker`]: the engine's thread (loading, answering through the runtime's `Chat`);
//! - [`download`]: catalog downloads with progress and cancel;
//! - [`store`]: conversations and settings on disk, written atomically.

pub mod app;
pub mod download;
pub mod screenshot;
pub mod store;
mod ui;
pub mod worker;

pub use app::{AppOptions, ChatApp};
