//! A save killed midway (SIGKILL while the new file is half written) leaves the previous
//! conversation file intact, and the app's loader ignores and removes the torn temporary.
//! The writer is this test binary run again as a child process that saves a large
//! conversation over and over; the parent kills it once a temporary is partly written.
#![cfg(unix)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use voyager_chat::store::{Conversation, Message, Settings, Store};

const CHILD: &str = "VOYAGER_CHAT_SAVE_CHILD";
const LEN: usize = 24 << 20;

fn conversation(fill: char) -> Conversation {
    let mut c = Conversation::new(Settings::default());
    c.id = "big".into();
    c.messages
        .push(Message::user(&fill.to_string().repeat(LEN)));
    c
}

fn partial_temporary(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir.join("conversations"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .find(|&len| len > 0 && len < LEN as u64)
}

#[test]
fn a_save_killed_midway_leaves_the_previous_file() {
    if let Some(dir) = std::env::var_os(CHILD) {
        let store = Store::open(Path::new(&dir)).unwrap();
        loop {
            for fill in ['B', 'C'] {
                store.save_conversation(&conversation(fill)).unwrap();
            }
        }
    }

    let data = tempfile::tempdir().unwrap();
    let store = Store::open(data.path()).unwrap();
    store.save_conversation(&conversation('A')).unwrap();

    // Kill the writer once a temporary is partly written; again, in the rare case the kill
    // landed between two saves.
    for attempt in 0.. {
        assert!(attempt < 5, "the kill never landed midway through a save");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "a_save_killed_midway_leaves_the_previous_file"])
            .env(CHILD, data.path())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while partial_temporary(data.path()).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the child never wrote"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if partial_temporary(data.path()).is_some() {
            break;
        }
    }

    // The file is one whole version (the first, or one the child finished), never a mix.
    let (found, problems) = store.load_conversations();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(found.len(), 1);
    let text = &found[0].messages[0].content;
    assert_eq!(text.len(), LEN);
    let first = text.chars().next().unwrap();
    assert!(text.chars().all(|c| c == first));
    // The torn temporary is gone after loading.
    assert!(partial_temporary(data.path()).is_none());
    let left: Vec<_> = std::fs::read_dir(data.path().join("conversations"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec!["big.json"]);
}
