//! Drawing the window: the top bar (model, memory), the conversations on the left, the
//! conversation's settings and context on the right, and the chat (or the model picker) in
//! the middle. Each frame first takes in what the engine thread sent; nothing here waits on
//! the engine.

mod conversation;
mod models;
mod side;

use voyager_runtime::budget::format_size;

use crate::app::{ChatApp, ModelState};

impl eframe::App for ChatApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.poll();
        if self.generating.is_some() && ui.input(|i| i.key_pressed(egui::Key::Escape)) {
            self.stop();
        }
        top_bar(self, ui);
        notices(self, ui);
        egui::Panel::left("conversations")
            .resizable(true)
            .default_size(200.0)
            .show(ui, |ui| side::conversations(self, ui));
        egui::Panel::right("settings")
            .resizable(true)
            .default_size(250.0)
            .show(ui, |ui| side::settings(self, ui));
        egui::CentralPanel::default().show(ui, |ui| {
            if self.show_models || self.engine().is_none() {
                models::picker(self, ui);
            } else {
                conversation::chat(self, ui);
            }
        });
        if self.generating.is_some() || self.download.is_some() {
            // The speed figure moves even between tokens.
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(250));
        }
        if self.has_unsaved_settings() {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(200));
        }
    }
}

fn top_bar(app: &mut ChatApp, ui: &mut egui::Ui) {
    egui::Panel::top("top").show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            match &app.model {
                ModelState::None => {
                    ui.label("No model loaded");
                }
                ModelState::Loading { path, done, total } => {
                    ui.label(format!("Loading {}", file_name(path)));
                    let fraction = if *total > 0 {
                        *done as f32 / *total as f32
                    } else {
                        0.0
                    };
                    ui.add(
                        egui::ProgressBar::new(fraction)
                            .desired_width(160.0)
                            .show_percentage(),
                    );
                }
                ModelState::Ready { path, engine } => {
                    let m = engine.model();
                    let name = m
                        .config
                        .name
                        .clone()
                        .unwrap_or_else(|| file_name(path).to_string());
                    ui.strong(name);
                    ui.label(format!(
                        "{} · {} · context {} tokens",
                        m.config.arch,
                        format_size(m.file.file_size()),
                        engine.context_size()
                    ));
                }
            }
            let label = if app.show_models {
                "Back to chat"
            } else {
                "Models"
            };
            if app.engine().is_some() && ui.button(label).clicked() {
                app.show_models = !app.show_models;
            }
        });
    });
}

fn notices(app: &mut ChatApp, ui: &mut egui::Ui) {
    if app.notices.is_empty() {
        return;
    }
    egui::Panel::top("notices").show(ui, |ui| {
        let mut dismissed = None;
        for (i, n) in app.notices.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.colored_label(ui.visuals().warn_fg_color, n);
                if ui.small_button("Dismiss").clicked() {
                    dismissed = Some(i);
                }
            });
        }
        if let Some(i) = dismissed {
            app.notices.remove(i);
        }
    });
}

fn file_name(path: &std::path::Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("model")
}
