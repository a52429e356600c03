//! The desktop app driven like a user drives it, by its labels, with egui_kittest on the
//! software Vulkan driver and the real SmolLM2: load from the catalog, send, stop (button and
//! Esc), new conversation, switch back, regenerate, edit, rename, delete, a budget too small,
//! a corrupt file; then the app closed and reopened with everything still there. Snapshot
//! images of the main screens are compared with the committed ones (tests/snapshots;
//! `UPDATE_SNAPSHOTS=1` rewrites them). One test, so the model is loaded twice in all.

use std::path::Path;
use std::time::Duration;

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use voyager_chat::store::{Conversation, Settings, Store};
use voyager_chat::{AppOptions, ChatApp};
use voyager_runtime::EngineOptions;

mod common;
use common::*;

/// The longest any step of this test may take.
const LIMIT: Duration = Duration::from_secs(240);

fn options(data: &Path) -> AppOptions {
    AppOptions {
        data_dir: data.to_path_buf(),
        models_dir: voyager_models::models_dir(),
        // A fixed driver figure: the plans shown are the same on every run and machine.
        engine: EngineOptions {
            driver_memory: Some(128 << 20),
            ..EngineOptions::default()
        },
        model: None,
        defaults: Some(Settings {
            temperature: 0.0,
            max_tokens: 6,
            ..Settings::default()
        }),
    }
}

fn harness(data: &Path) -> App {
    let options = options(data);
    Harness::builder()
        .with_size([1100.0, 720.0])
        .wgpu()
        .build_eframe(move |cc| ChatApp::new(&cc.egui_ctx, options))
}

fn idle(h: &App) -> bool {
    h.state().streamed_pieces().is_none()
}

fn saved(data: &Path) -> Vec<Conversation> {
    let (found, problems) = Store::open(data).unwrap().load_conversations();
    assert!(problems.is_empty(), "{problems:?}");
    found
}

fn by_title(data: &Path, title: &str) -> Conversation {
    saved(data)
        .into_iter()
        .find(|c| c.title == title)
        .unwrap_or_else(|| panic!("no saved conversation “{title}”"))
}

fn send(h: &mut App, text: &str) {
    h.get_by_label("Message").focus();
    h.step();
    h.get_by_label("Message").type_text(text);
    h.step();
    h.key_press(egui::Key::Enter);
    h.step();
}

/// Covers every figure that changes from run to run (speeds, the process's memory).
fn mask_moving_figures(h: &mut App) {
    let rects: Vec<egui::Rect> = ["tok/s", "Process:"]
        .iter()
        .flat_map(|t| {
            h.query_all_by_label_contains(t)
                .map(|n| n.rect())
                .collect::<Vec<_>>()
        })
        // As wide whatever the figure's digits, so masked pictures compare equal.
        .map(|r| {
            let right = (r.min.x + 300.0).min(1100.0);
            egui::Rect::from_min_max(r.min, egui::pos2(right, r.max.y))
        })
        .collect();
    for r in rects {
        h.mask(r);
    }
}

#[test]
fn a_user_chats_stops_edits_and_finds_everything_after_reopening() {
    smollm2(); // fails first, saying how to get the model
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let mut h = harness(data);
    h.run_steps(3);

    // No model yet: the picker, with the catalog and the plan under the default budget.
    h.get_by_label("Load smollm2-135m");
    assert!(shown(&h, "weights"));
    mask_moving_figures(&mut h);
    h.snapshot("models");

    // A budget too small is refused, with the smallest that works, before anything loads.
    h.get_by_label("Memory budget (MiB)")
        .set_value_accesskit(40.0);
    h.run_steps(2);
    assert!(shown(&h, "is too small for this model"), "no refusal shown");
    assert!(shown(&h, "use a budget of"), "the refusal names no size");
    h.get_by_label("Memory budget (MiB)")
        .set_value_accesskit(600.0);
    h.run_steps(2);

    // A file that is not a GGUF: a message, and no way to load it.
    let junk = data.join("junk.gguf");
    std::fs::write(&junk, b"not a model at all").unwrap();
    h.get_by_label("Path").focus();
    h.step();
    h.get_by_label("Path").type_text(junk.to_str().unwrap());
    h.run_steps(2);
    assert!(shown(&h, "not a GGUF file"));

    // Keep the most attended tokens rather than only the newest: the chat below runs under
    // the importance policy, and the Context panel says so.
    h.get_by_label("Keeps").click();
    h.run_steps(2);
    h.get_by_label("importance").click();
    h.run_steps(2);

    // Load from the catalog.
    h.get_by_label("Load smollm2-135m").click();
    h.run_steps(2);

    wait(&mut h, "the model", LIMIT, |h| h.state().model_ready());
    assert!(shown(&h, "llama"));
    assert_eq!(
        h.state().loaded_kv_config().map(|k| k.policy),
        Some(voyager_runtime::kv::KvPolicy::Importance)
    );
    assert!(
        shown(&h, "attended to most"),
        "the Context panel names no policy"
    );

    // Send with Enter; Shift+Enter adds a line first.
    h.get_by_label("Message").focus();
    h.step();
    h.get_by_label("Message").type_text("What is the capital");
    h.step();
    h.key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::Enter);
    h.step();
    assert_eq!(
        h.get_by_label("Message").value().as_deref(),
        Some("What is the capital\n")
    );
    h.get_by_label("Message").type_text("of France?");
    h.step();
    h.key_press(egui::Key::Enter);
    h.step();
    wait(&mut h, "the first answer", LIMIT, idle);
    let first_title = "What is the capital";
    let c = by_title(data, first_title);
    assert_eq!(c.messages.len(), 2, "{c:?}");
    assert_eq!(c.messages[0].content, "What is the capital\nof France?");
    let answer = c.messages[1].content.clone();
    assert!(!answer.trim().is_empty());
    let first_words: String = answer
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(shown(&h, &first_words), "answer `{answer}` not shown");

    // Copy puts a message's text on the clipboard.
    h.get_all_by_label("Copy").next().unwrap().click();
    h.step();
    let copied = h.output().platform_output.commands.iter().any(
        |c| matches!(c, egui::OutputCommand::CopyText(t) if t == "What is the capital\nof France?"),
    );
    assert!(copied, "{:?}", h.output().platform_output.commands);

    // A second conversation.
    h.get_by_label("New chat").click();
    h.run_steps(2);
    send(&mut h, "Hello! Who are you?");
    wait(&mut h, "the second answer", LIMIT, idle);
    assert_eq!(by_title(data, "Hello! Who are you?").messages.len(), 2);
    assert!(!shown(&h, "of France?"));

    // Back to the first: its messages; regenerating at temperature 0 gives the same answer.
    h.get_by_label(first_title).click();
    h.run_steps(2);
    assert!(shown(&h, &first_words));
    h.get_by_label("Regenerate").click();
    h.step();
    wait(&mut h, "the regenerated answer", LIMIT, idle);
    let c = by_title(data, first_title);
    assert_eq!(c.messages.len(), 2);
    assert_eq!(c.messages[1].content, answer);

    // Edit the question and resend from there.
    h.get_by_label("Edit").click();
    h.run_steps(2);
    h.get_by_value("What is the capital\nof France?").focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_value("What is the capital\nof France?")
        .type_text("Name three colors.");
    h.step();
    h.get_by_label("Resend").click();
    h.step();
    wait(&mut h, "the edited answer", LIMIT, idle);
    let c = by_title(data, first_title);
    assert_eq!(c.messages.len(), 2, "{c:?}");
    assert_eq!(c.messages[0].content, "Name three colors.");
    assert_ne!(c.messages[1].content, answer);

    // Stop mid-answer, with the button and with Esc: within a token of asking.
    h.get_by_label("Max tokens").set_value_accesskit(200.0);
    h.run_steps(2);
    for (i, how) in ["button", "escape"].iter().enumerate() {
        send(
            &mut h,
            &format!("Tell me a long story about a dragon, part {}.", i + 1),
        );
        wait(&mut h, "the first pieces", LIMIT, |h| {
            h.state().streamed_pieces().is_some_and(|n| n >= 2)
        });
        let at_stop = h.state().streamed_pieces().unwrap();
        if *how == "button" {
            h.get_by_label("Stop").click();
        } else {
            h.key_press(egui::Key::Escape);
        }
        h.step();
        wait(&mut h, "the stop", LIMIT, idle);
        let c = by_title(data, first_title);
        let info = c.messages.last().unwrap().answer.clone().unwrap();
        assert_eq!(info.stop, "stopped", "{how}");
        assert!(
            info.tokens <= at_stop + 3,
            "{how}: {} tokens after stopping at {at_stop}",
            info.tokens
        );
    }
    assert!(shown(&h, "stopped"));

    // Rename; a third conversation, deleted.
    h.get_by_label("Rename").click();
    h.run_steps(2);
    h.get_by_label("Title").focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label("Title").type_text("Colors and dragons");
    h.get_by_label("Save title").click();
    h.run_steps(2);
    let renamed = by_title(data, "Colors and dragons");
    assert_eq!(renamed.settings.max_tokens, 200);
    h.get_by_label("New chat").click();
    h.run_steps(2);
    assert_eq!(saved(data).len(), 3);
    h.get_by_label("Delete chat").click();
    h.run_steps(2);
    h.get_by_label("Keep it").click();
    h.run_steps(2);
    assert_eq!(saved(data).len(), 3);
    h.get_by_label("Delete chat").click();
    h.run_steps(2);
    h.get_by_label("Yes, delete it").click();
    h.run_steps(2);
    assert_eq!(saved(data).len(), 2);
    h.get_by_label("Colors and dragons").click();
    h.run_steps(3);
    let before_close = saved(data);
    // Both harnesses' snapshots are reported together at the end.
    let mut snapshots = h.take_snapshot_results();
    drop(h);

    // A file another program broke is reported, not fatal, and left alone.
    let broken = data.join("conversations").join("broken.json");
    std::fs::write(&broken, b"{ not json").unwrap();

    // Reopen: every conversation, its settings, and the model last used, loaded again.
    let mut h = harness(data);
    wait(&mut h, "the model, again", LIMIT, |h| {
        h.state().model_ready()
    });
    assert_eq!(h.state().conversations().len(), 2);
    assert_eq!(saved_without(data, "broken"), before_close);
    assert!(h
        .state()
        .notices()
        .iter()
        .any(|n| n.contains("broken.json")));
    assert!(broken.exists());
    h.get_by_label("Dismiss").click();
    h.run_steps(3);
    assert!(shown(&h, "Name three colors"));
    assert!(h.query_by_label("Hello! Who are you?").is_some());
    assert_eq!(h.get_by_label("Max tokens").value().as_deref(), Some("200"));
    mask_moving_figures(&mut h);
    h.snapshot("chat");
    snapshots.extend(h.take_snapshot_results());
}

fn saved_without(data: &Path, stem: &str) -> Vec<Conversation> {
    let (found, problems) = Store::open(data).unwrap().load_conversations();
    assert!(problems.iter().all(|p| p.starts_with(stem)), "{problems:?}");
    found
}
