//! The two side panels: the conversations (new, pick, rename, delete) on the left; the
//! current conversation's settings, how much of the context it uses, and the speed on the
//! right.

use voyager_runtime::budget::format_size;

use crate::app::ChatApp;
use crate::store::Settings;

pub fn conversations(app: &mut ChatApp, ui: &mut egui::Ui) {
    ui.add_space(4.0);
    if ui.button("New chat").clicked() {
        app.new_conversation();
    }
    ui.separator();
    egui::ScrollArea::vertical().show(ui, |ui| {
        let mut picked = None;
        for c in app.conversations() {
            let selected = app.current.as_deref() == Some(c.id.as_str());
            let busy = app.is_generating(&c.id);
            let title = if busy {
                format!("{} …", c.title)
            } else {
                c.title.clone()
            };
            if ui.selectable_label(selected, title).clicked() {
                picked = Some(c.id.clone());
            }
        }
        if let Some(id) = picked {
            app.select(&id);
        }
    });
}

pub fn settings(app: &mut ChatApp, ui: &mut egui::Ui) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        conversation_actions(app, ui);
        ui.separator();
        ui.strong("Settings");
        let Some(c) = app.current_mut() else { return };
        let before = c.settings.clone();
        settings_fields(&mut c.settings, ui);
        if c.settings != before {
            app.settings_changed();
        }
        ui.separator();
        memory(app, ui);
        ui.separator();
        context(app, ui);
        ui.separator();
        speed(app, ui);
    });
}

fn conversation_actions(app: &mut ChatApp, ui: &mut egui::Ui) {
    if let Some(title) = &mut app.renaming {
        let label = ui.label("Title");
        let r = ui
            .add(egui::TextEdit::singleline(title).desired_width(f32::INFINITY))
            .labelled_by(label.id);
        let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        ui.horizontal(|ui| {
            if ui.button("Save title").clicked() || enter {
                let title = app.renaming.take().unwrap_or_default();
                app.rename_current(&title);
            }
            if ui.button("Cancel rename").clicked() {
                app.renaming = None;
            }
        });
        return;
    }
    ui.horizontal(|ui| {
        if app.confirm_delete {
            if ui.button("Yes, delete it").clicked() {
                app.confirm_delete = false;
                app.delete_current();
            }
            if ui.button("Keep it").clicked() {
                app.confirm_delete = false;
            }
            return;
        }
        if ui.button("Rename").clicked() {
            app.renaming = app.current().map(|c| c.title.clone());
        }
        if ui.button("Delete chat").clicked() {
            app.confirm_delete = true;
        }
    });
}

fn settings_fields(s: &mut Settings, ui: &mut egui::Ui) {
    let label = ui.label("System prompt");
    ui.add(
        egui::TextEdit::multiline(&mut s.system_prompt)
            .desired_rows(3)
            .desired_width(f32::INFINITY)
            .hint_text("You are a helpful assistant."),
    )
    .labelled_by(label.id);
    egui::Grid::new("sampling").num_columns(2).show(ui, |ui| {
        let row = |ui: &mut egui::Ui, name: &str, widget: egui::DragValue| {
            let label = ui.label(name);
            ui.add(widget).labelled_by(label.id);
            ui.end_row();
        };
        row(
            ui,
            "Temperature",
            egui::DragValue::new(&mut s.temperature)
                .range(0.0..=2.0)
                .speed(0.01),
        );
        row(
            ui,
            "Top-k",
            egui::DragValue::new(&mut s.top_k).range(0..=1000),
        );
        row(
            ui,
            "Top-p",
            egui::DragValue::new(&mut s.top_p)
                .range(0.0..=1.0)
                .speed(0.01),
        );
        row(
            ui,
            "Min-p",
            egui::DragValue::new(&mut s.min_p)
                .range(0.0..=1.0)
                .speed(0.01),
        );
        row(ui, "Seed", egui::DragValue::new(&mut s.seed));
        row(
            ui,
            "Max tokens",
            egui::DragValue::new(&mut s.max_tokens).range(1..=32768),
        );
    });
}

/// Counted device buffers against the plan and the budget, and the process as the OS sees it.
fn memory(app: &mut ChatApp, ui: &mut egui::Ui) {
    ui.strong("Memory");
    let process = app.process_memory();
    if let Some(engine) = app.engine() {
        let plan = engine.memory_plan();
        let live = engine.gpu().memory_stats().live_bytes;
        ui.label(format!(
            "Device buffers: {} of {} planned",
            format_size(live),
            format_size(plan.device_buffers())
        ));
        ui.label(format!(
            "Plan: {} of a {} budget",
            format_size(plan.total()),
            plan.budget
                .map(format_size)
                .unwrap_or_else(|| "unlimited".into()),
        ));
    }
    if let Some(p) = process {
        ui.add(egui::Label::new(format!("Process: {}", format_size(p.resident))).truncate())
            .on_hover_text("Resident memory of the whole app, the window's own renderer included");
    }
}

/// How much of the attention span the conversation uses, and how much has slid out of it.
fn context(app: &mut ChatApp, ui: &mut egui::Ui) {
    ui.strong("Context");
    let Some(engine) = app.engine().cloned() else {
        ui.label("No model loaded.");
        return;
    };
    let Some(c) = app.current() else { return };
    let usage = match app.context.get(&c.id) {
        Some(u) => *u,
        None => {
            // Not evaluated in this run yet: what the next answer will find.
            let tokens = engine
                .chat_tokens(&c.chat_messages())
                .map(|t| t.len())
                .unwrap_or(0);
            let span = engine.context_size();
            let usage = voyager_runtime::engine::ContextUsage {
                tokens,
                in_window: tokens.min(span),
                evicted: tokens.saturating_sub(span),
                context_size: span,
            };
            let id = c.id.clone();
            app.context.insert(id, usage);
            usage
        }
    };
    let kv = engine.kv_config();
    ui.add(
        egui::ProgressBar::new(usage.in_window as f32 / usage.context_size.max(1) as f32).text(
            format!("{} of {} tokens", usage.in_window, usage.context_size),
        ),
    );
    let types = voyager_runtime::kv::KvType::pair_name(kv.k_type, kv.v_type);
    let importance = kv.policy == voyager_runtime::kv::KvPolicy::Importance;
    if importance {
        ui.label(format!(
            "Window: the first {} tokens, the last {} and the {} older ones the model \
             attended to most, {types} cache.",
            kv.sinks,
            voyager_runtime::kv::evict::protected(kv.window),
            kv.window - voyager_runtime::kv::evict::protected(kv.window),
        ));
    } else {
        ui.label(format!(
            "Window: the first {} and the last {} tokens, {types} cache.",
            kv.sinks, kv.window,
        ));
    }
    if usage.evicted > 0 && importance {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "{} tokens have left the cache: the model no longer sees them (the least \
                 attended ones past the first {}).",
                usage.evicted, kv.sinks
            ),
        );
    } else if usage.evicted > 0 {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "{} tokens have slid out of the window: the model no longer sees them \
                 (the start of the chat, past its first {} tokens).",
                usage.evicted, kv.sinks
            ),
        );
    } else {
        ui.label("Nothing evicted yet.");
    }
}

fn speed(app: &ChatApp, ui: &mut egui::Ui) {
    ui.strong("Speed");
    if let Some(g) = &app.generating {
        let text = match g.tokens_per_second() {
            Some(tps) => format!("Generating: {tps:.1} tok/s"),
            None => format!(
                "Reading the prompt… {:.1} s",
                g.started.elapsed().as_secs_f32()
            ),
        };
        ui.add(egui::Label::new(text).truncate());
    } else if let Some(info) = app
        .current()
        .and_then(|c| c.messages.iter().rev().find_map(|m| m.answer.clone()))
    {
        ui.add(
            egui::Label::new(format!(
                "Last answer: {} tokens at {:.1} tok/s",
                info.tokens, info.tokens_per_second
            ))
            .truncate(),
        );
    }
}
