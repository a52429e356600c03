//! `voyager-chat --screenshot PATH`: the real window, once the model is loaded and nothing
//! moves, saved as a PNG (the picture in the README), and then the app quits.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::app::ChatApp;

pub struct Capture {
    app: ChatApp,
    path: PathBuf,
    settled_since: Option<Instant>,
    asked: bool,
}

impl Capture {
    pub fn new(app: ChatApp, path: PathBuf) -> Self {
        Self {
            app,
            path,
            settled_since: None,
            asked: false,
        }
    }
}

impl eframe::App for Capture {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.app.ui(ui, frame);
        let ctx = ui.ctx().clone();
        let settled = self.app.model_ready() && self.app.streamed_pieces().is_none();
        match (settled, self.settled_since) {
            (false, _) => self.settled_since = None,
            (true, None) => self.settled_since = Some(Instant::now()),
            (true, Some(t)) if !self.asked && t.elapsed() > Duration::from_secs(2) => {
                self.asked = true;
                let path = self.path.clone();
                let window = ctx.clone();
                let save = egui::ScreenshotCallback::new(move |image| {
                    let [w, h] = image.size;
                    let bytes: Vec<u8> = image.pixels.iter().flat_map(|p| p.to_array()).collect();
                    match image::RgbaImage::from_raw(w as u32, h as u32, bytes)
                        .map(|i| i.save(&path))
                    {
                        Some(Ok(())) => eprintln!("saved {}", path.display()),
                        Some(Err(e)) => eprintln!("cannot save {}: {e}", path.display()),
                        None => eprintln!("the screenshot has the wrong size"),
                    }
                    window.send_viewport_cmd(egui::ViewportCommand::Close);
                    window.request_repaint();
                });
                ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(save));
            }
            _ => {}
        }
        ctx.request_repaint_after(Duration::from_millis(100));
    }
}
