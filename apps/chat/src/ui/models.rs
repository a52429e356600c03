//! The model picker: catalog models (download with progress and Cancel, or load), any GGUF
//! file by path, and the memory budget with the plan it gives before anything is loaded.

use std::path::PathBuf;

use voyager_runtime::budget::format_size;
use voyager_runtime::kv::{KvPolicy, KvType};

use crate::app::{ChatApp, ModelState};

pub fn picker(app: &mut ChatApp, ui: &mut egui::Ui) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.heading("Models");
        budget(app, ui);
        ui.add_space(8.0);
        catalog(app, ui);
        ui.add_space(8.0);
        open_file(app, ui);
    });
}

fn budget(app: &mut ChatApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        let label = ui.label("Memory budget (MiB)");
        let r = ui
            .add(egui::DragValue::new(&mut app.settings.budget_mib).range(16..=1 << 20))
            .labelled_by(label.id);
        if r.changed() {
            app.settings_changed();
        }
        let label = ui.label("KV cache");
        egui::ComboBox::from_id_salt("cache type")
            .selected_text(app.settings.cache_type.clone())
            .show_ui(ui, |ui| {
                for name in cache_choices() {
                    if ui
                        .selectable_label(app.settings.cache_type == name, &name)
                        .clicked()
                    {
                        app.settings.cache_type = name;
                        app.settings_changed();
                    }
                }
            })
            .response
            .labelled_by(label.id);
        let label = ui.label("Keeps");
        egui::ComboBox::from_id_salt("cache policy")
            .selected_text(app.settings.kv_policy.clone())
            .show_ui(ui, |ui| {
                for policy in KvPolicy::ALL {
                    let name = policy.name();
                    if ui
                        .selectable_label(app.settings.kv_policy == name, name)
                        .on_hover_text(policy_help(policy))
                        .clicked()
                    {
                        app.settings.kv_policy = name.to_owned();
                        app.settings_changed();
                    }
                }
            })
            .response
            .labelled_by(label.id);
    });
    ui.label(
        egui::RichText::new(
            "The budget covers the weights, the KV window, scratch and what the GPU driver takes; \
             the window slides (keeping the first tokens) when a chat grows past it.",
        )
        .small(),
    );
}

/// What a cache policy keeps, in a user's words.
fn policy_help(p: KvPolicy) -> &'static str {
    match p {
        KvPolicy::Window => "The newest tokens: the oldest leave first.",
        KvPolicy::Importance => {
            "The newest half of the window, and the older tokens the model attended to most."
        }
    }
}

/// The cache types offered: the default pair first, then each type for both K and V.
fn cache_choices() -> Vec<String> {
    let o = voyager_runtime::engine::EngineOptions::default();
    let default = KvType::pair_name(o.cache_type_k, o.cache_type_v);
    std::iter::once(default.clone())
        .chain(
            KvType::ALL
                .iter()
                .map(|t| t.name().to_owned())
                .filter(|n| *n != default),
        )
        .collect()
}

fn catalog(app: &mut ChatApp, ui: &mut egui::Ui) {
    ui.strong("Catalog");
    let loading = matches!(app.model, ModelState::Loading { .. });
    for entry in voyager_models::catalog().entries() {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal_wrapped(|ui| {
                ui.strong(&entry.name);
                ui.label(format!(
                    "{} · {} · {} · {}",
                    entry.description,
                    entry.architecture,
                    format_size(entry.size),
                    entry.licence
                ));
            });
            let installed = voyager_models::installed_path(&app.models_dir, entry);
            let downloading = app.download.as_ref().is_some_and(|d| d.model == entry.name);
            match installed {
                _ if downloading => {
                    ui.horizontal_wrapped(|ui| download_progress(app, ui));
                }
                Some(path) => {
                    let ok = app.plan_for(&path).is_ok();
                    if ui
                        .add_enabled(
                            ok && !loading,
                            egui::Button::new(format!("Load {}", entry.name)),
                        )
                        .clicked()
                    {
                        app.load_model(path.clone());
                    }
                    plan_line(app, ui, &path);
                }
                None => {
                    if ui
                        .add_enabled(
                            app.download.is_none(),
                            egui::Button::new(format!("Download {}", entry.name)),
                        )
                        .clicked()
                    {
                        app.start_download(&entry.name);
                    }
                }
            }
        });
    }
}

fn download_progress(app: &mut ChatApp, ui: &mut egui::Ui) {
    let Some(d) = &app.download else { return };
    let bar = if d.total > 0 {
        egui::ProgressBar::new(d.done as f32 / d.total as f32).show_percentage()
    } else {
        egui::ProgressBar::new(0.0).animate(true)
    };
    ui.add(bar.desired_width(140.0));
    ui.label(egui::RichText::new(&d.stage).small());
    if ui.button("Cancel download").clicked() {
        d.cancel();
    }
}

fn open_file(app: &mut ChatApp, ui: &mut egui::Ui) {
    ui.strong("Open GGUF file…");
    let loading = matches!(app.model, ModelState::Loading { .. });
    ui.horizontal(|ui| {
        let label = ui.label("Path");
        ui.add(
            egui::TextEdit::singleline(&mut app.model_path_input)
                .desired_width(360.0)
                .hint_text("/path/to/model.gguf"),
        )
        .labelled_by(label.id);
    });
    let path = PathBuf::from(app.model_path_input.trim());
    if app.model_path_input.trim().is_empty() {
        return;
    }
    if !path.is_file() {
        ui.colored_label(ui.visuals().warn_fg_color, "No file at this path.");
        return;
    }
    let ok = app.plan_for(&path).is_ok();
    if ui
        .add_enabled(ok && !loading, egui::Button::new("Load file"))
        .clicked()
    {
        app.load_model(path.clone());
    }
    plan_line(app, ui, &path);
}

/// The plan under the budget chosen, in one line (and every line on hover), or the refusal.
fn plan_line(app: &mut ChatApp, ui: &mut egui::Ui, path: &std::path::Path) {
    match app.plan_for(path) {
        Ok(plan) => {
            let kv = &plan.kv_config;
            ui.add(
                egui::Label::new(format!(
                    "weights {} + KV {} (window {} + {} sinks, {}/{}) + other {} = {}",
                    format_size(plan.weights),
                    format_size(plan.kv),
                    kv.window,
                    kv.sinks,
                    kv.k_type,
                    kv.v_type,
                    format_size(plan.total() - plan.weights - plan.kv),
                    format_size(plan.total()),
                ))
                .wrap(),
            )
            .on_hover_text(
                plan.lines()
                    .iter()
                    .map(|(name, bytes, _)| format!("{name}: {}", format_size(*bytes)))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        Err(e) => {
            ui.add(
                egui::Label::new(
                    egui::RichText::new(e.as_str()).color(ui.visuals().error_fg_color),
                )
                .wrap(),
            );
        }
    }
}
