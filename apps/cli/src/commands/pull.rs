//! `voyager pull NAME...`

use anyhow::{anyhow, Result};

use crate::progress::PullProgress;

#[derive(clap::Args)]
pub struct Args {
    /// Catalog names (see `voyager list`).
    #[arg(required = true)]
    names: Vec<String>,
    /// Re-hash an already installed file against the catalog's sha256.
    #[arg(long)]
    verify: bool,
}

pub fn run(args: Args) -> Result<()> {
    let catalog = voyager_models::catalog();
    let dir = voyager_models::models_dir();
    for name in &args.names {
        let entry = catalog
            .get(name)
            .ok_or_else(|| anyhow!("unknown model `{name}` (available: {})", catalog.names()))?;
        let mut progress = PullProgress::new(name);
        let path = voyager_models::pull(entry, &dir, &mut progress)?;
        if args.verify {
            voyager_models::verify(&path, entry)?;
        }
        progress.finish(&format!("{name}: {}", path.display()));
    }
    Ok(())
}
