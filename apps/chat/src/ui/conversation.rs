//! The conversation: messages rendered as markdown (code blocks included), each with Copy,
//! user messages with Edit (resend from there), the last answer with Regenerate, the answer
//! streaming in, and the input box (Enter sends, Shift+Enter adds a line, Esc or Stop stops).

use egui_commonmark::CommonMarkViewer;

use crate::app::ChatApp;

const INPUT_ID: &str = "message input";

pub fn chat(app: &mut ChatApp, ui: &mut egui::Ui) {
    egui::Panel::bottom("input")
        .resizable(false)
        .show(ui, |ui| input(app, ui));
    egui::ScrollArea::vertical()
        .stick_to_bottom(true)
        .auto_shrink([false, false])
        .show(ui, |ui| messages(app, ui));
}

fn messages(app: &mut ChatApp, ui: &mut egui::Ui) {
    let Some(c) = app.current().cloned() else {
        return;
    };
    let busy = app.generating.is_some();
    let last_answer = c.messages.iter().rposition(|m| m.role == "assistant");
    let mut edit_start = None;
    let mut resend = None;
    let mut regenerate = false;
    for (i, m) in c.messages.iter().enumerate() {
        let user = m.role == "user";
        egui::Frame::group(ui.style())
            .fill(if user {
                ui.visuals().faint_bg_color
            } else {
                ui.visuals().extreme_bg_color
            })
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.horizontal(|ui| {
                    ui.strong(if user { "You" } else { "Assistant" });
                    if let Some(a) = &m.answer {
                        let note = match a.stop.as_str() {
                            "stopped" => " · stopped",
                            "limit" => " · token limit",
                            _ => "",
                        };
                        ui.label(
                            egui::RichText::new(format!(
                                "{} tokens · {:.1} tok/s{note}",
                                a.tokens, a.tokens_per_second
                            ))
                            .small()
                            .weak(),
                        );
                    }
                });
                if let Some((index, text)) = app.editing.as_mut().filter(|(index, _)| *index == i) {
                    ui.add(
                        egui::TextEdit::multiline(text)
                            .desired_width(f32::INFINITY)
                            .desired_rows(2),
                    );
                    ui.horizontal(|ui| {
                        if ui.add_enabled(!busy, egui::Button::new("Resend")).clicked() {
                            resend = Some((*index, text.clone()));
                        }
                        if ui.button("Cancel edit").clicked() {
                            edit_start = Some(None);
                        }
                    });
                } else {
                    CommonMarkViewer::new().show(ui, &mut app.markdown, &m.content);
                    ui.horizontal(|ui| {
                        if ui.small_button("Copy").clicked() {
                            ui.ctx().copy_text(m.content.clone());
                        }
                        if user
                            && ui
                                .add_enabled(!busy, egui::Button::new("Edit").small())
                                .clicked()
                        {
                            edit_start = Some(Some((i, m.content.clone())));
                        }
                        if Some(i) == last_answer
                            && i + 1 == c.messages.len()
                            && ui
                                .add_enabled(!busy, egui::Button::new("Regenerate").small())
                                .clicked()
                        {
                            regenerate = true;
                        }
                    });
                }
            });
    }
    if let Some(g) = app.generating.as_ref().filter(|g| g.conversation == c.id) {
        egui::Frame::group(ui.style())
            .fill(ui.visuals().extreme_bg_color)
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.horizontal(|ui| {
                    ui.strong("Assistant");
                    ui.spinner();
                });
                let text = g.text.clone();
                CommonMarkViewer::new().show(ui, &mut app.markdown, &text);
            });
    }
    if let Some(e) = edit_start {
        app.editing = e;
    }
    if let Some((index, text)) = resend {
        app.resend_edit(index, text);
    }
    if regenerate {
        app.regenerate();
    }
}

fn input(app: &mut ChatApp, ui: &mut egui::Ui) {
    ui.add_space(4.0);
    let id = egui::Id::unique(INPUT_ID);
    // Enter sends; Shift+Enter falls through to the text box as a new line.
    let focused = ui.memory(|m| m.has_focus(id));
    // While an answer streams, Enter does nothing (the text waits for the next send).
    let enter = focused
        && ui.input_mut(|i| {
            // consume_key matches shortcuts "logically", ignoring Shift: check it here.
            !i.modifiers.shift && i.consume_key(egui::Modifiers::NONE, egui::Key::Enter)
        });
    ui.horizontal(|ui| {
        let label = ui.label("Message");
        let width = ui.available_width() - 80.0;
        ui.add(
            egui::TextEdit::multiline(&mut app.input)
                .id(id)
                .desired_rows(2)
                .desired_width(width.max(100.0))
                .hint_text("Ask anything (Enter sends, Shift+Enter adds a line)"),
        )
        .labelled_by(label.id);
        if app.generating.is_some() {
            if ui.button("Stop").clicked() {
                app.stop();
            }
        } else if ui
            .add_enabled(!app.input.trim().is_empty(), egui::Button::new("Send"))
            .clicked()
            || enter
        {
            app.send_input();
            ui.memory_mut(|m| m.request_focus(id));
        }
    });
    ui.add_space(4.0);
}
