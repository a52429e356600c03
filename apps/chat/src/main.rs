//! `voyager-chat`: the desktop chat app. `cargo run --release -p voyager-chat`.

use std::path::PathBuf;

use clap::Parser;
use voyager_chat::{AppOptions, ChatApp};

/// Chat with a local model, offline, within a memory budget.
#[derive(Parser)]
#[command(name = "voyager-chat", version)]
struct Args {
    /// Where conversations and settings are kept (default: voyager/chat in your data directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where catalog models are downloaded (default: the CLI's models directory,
    /// $VOYAGER_MODELS).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Open this GGUF file at start.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Save a picture of the window to this PNG once it has settled, then quit (for docs).
    #[arg(long)]
    screenshot: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let defaults = AppOptions::default();
    let options = AppOptions {
        data_dir: args.data_dir.unwrap_or(defaults.data_dir),
        models_dir: args.models_dir.unwrap_or(defaults.models_dir),
        model: args.model,
        ..defaults
    };
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Voyager")
            .with_inner_size([1100.0, 720.0]),
        ..Default::default()
    };
    let screenshot = args.screenshot;
    eframe::run_native(
        "Voyager",
        native,
        Box::new(move |cc| {
            let app = ChatApp::new(&cc.egui_ctx, options);
            Ok(match screenshot {
                Some(path) => Box::new(voyager_chat::screenshot::Capture::new(app, path)),
                None => Box::new(app),
            })
        }),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot open the window: {e}. The app draws with the GPU through Vulkan, Metal or \
             DX12; on Linux install your GPU's Vulkan driver (or Mesa's, e.g. \
             `apt install mesa-vulkan-drivers`)"
        )
    })
}
