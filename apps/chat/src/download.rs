//! Catalog downloads on a thread of their own (the same fetching as `voyager pull`), with
//! progress the window shows and a Cancel that kills the download and leaves nothing behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use voyager_models::CatalogEntry;

pub enum DownloadEvent {
    Stage(String),
    Bytes { done: u64, total: u64 },
    Finished(PathBuf),
    Failed(String),
    Cancelled,
}

/// One model being downloaded.
pub struct Download {
    pub model: String,
    pub stage: String,
    pub done: u64,
    pub total: u64,
    cancel: Arc<AtomicBool>,
    events: Receiver<DownloadEvent>,
}

impl Download {
    /// Starts pulling `entry` into `dir`; `wake` is called after each event.
    pub fn start(entry: CatalogEntry, dir: &Path, wake: impl Fn() + Send + 'static) -> Self {
        let (tx, events) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let model = entry.name.clone();
        let dir = dir.to_path_buf();
        let flag = cancel.clone();
        std::thread::spawn(move || {
            let mut progress = Reporter {
                tx: tx.clone(),
                cancel: flag,
                wake: &wake,
            };
            let event = match voyager_models::pull(&entry, &dir, &mut progress) {
                Ok(path) => DownloadEvent::Finished(path),
                Err(voyager_models::Error::Cancelled) => DownloadEvent::Cancelled,
                Err(e) => DownloadEvent::Failed(e.to_string()),
            };
            let _ = tx.send(event);
            wake();
        });
        Self {
            model,
            stage: "Starting".into(),
            done: 0,
            total: 0,
            cancel,
            events,
        }
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Takes in what happened; returns the end, once it came.
    pub fn poll(&mut self) -> Option<DownloadEvent> {
        while let Ok(event) = self.events.try_recv() {
            match event {
                DownloadEvent::Stage(s) => self.stage = s,
                DownloadEvent::Bytes { done, total } => (self.done, self.total) = (done, total),
                end => return Some(end),
            }
        }
        None
    }
}

struct Reporter<'a> {
    tx: Sender<DownloadEvent>,
    cancel: Arc<AtomicBool>,
    wake: &'a (dyn Fn() + Send),
}

impl voyager_models::Progress for Reporter<'_> {
    fn stage(&mut self, msg: &str) {
        let _ = self.tx.send(DownloadEvent::Stage(msg.to_string()));
        (self.wake)();
    }

    fn bytes(&mut self, done: u64, total: u64) {
        let _ = self.tx.send(DownloadEvent::Bytes { done, total });
        (self.wake)();
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}
