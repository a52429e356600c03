//! `voyager list`

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON array.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let dir = voyager_models::models_dir();
    let entries = voyager_models::catalog().entries();
    if args.json {
        let list: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name,
                    "architecture": e.architecture,
                    "size": e.size,
                    "licence": e.licence,
                    "description": e.description,
                    "path": voyager_models::installed_path(&dir, e),
                })
            })
            .collect();
        crate::outln!("{}", serde_json::to_string(&list)?);
        return Ok(());
    }
    crate::outln!("models directory: {}", dir.display());
    for e in entries {
        let state = if voyager_models::installed_path(&dir, e).is_some() {
            "installed"
        } else {
            "not pulled"
        };
        crate::outln!(
            "{:<14} {:<8} {:>7.1} MiB  {:<10}  {}",
            e.name,
            e.architecture,
            e.size as f64 / (1 << 20) as f64,
            state,
            e.description
        );
    }
    Ok(())
}
