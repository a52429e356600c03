//! `voyager selfcheck [--json] [--both]`: every kernel, for every weight type and cache format,
//! run on this machine's GPU against its CPU twin. The engine runs the subset a model needs on
//! the first load on an adapter and driver; this runs all of it on demand, for a bug report
//! or after a driver update.

use anyhow::{bail, Result};
use serde_json::json;
use voyager_runtime::gpu::kernels::{Kernels, Strategy};
use voyager_runtime::gpu::GpuContext;
use voyager_runtime::selfcheck::{all_cases, run as run_cases, Report};

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Check both kernel strategies (cooperative and row-per-thread), not just the one this
    /// device uses.
    #[arg(long)]
    both: bool,
}

pub fn run(args: Args) -> Result<()> {
    let ctx = GpuContext::new()?;
    let strategies = if args.both {
        Strategy::ALL.to_vec()
    } else {
        vec![Strategy::for_device(&ctx)]
    };
    let mut reports = Vec::new();
    for strategy in strategies {
        let kernels = Kernels::with_strategy(&ctx, strategy)?;
        let cases = all_cases(strategy)?;
        reports.push(run_cases(&ctx, &kernels, &cases)?);
    }
    if args.json {
        let v: Vec<serde_json::Value> = reports.iter().map(report_json).collect();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "reports": v }))?
        );
    } else {
        for r in &reports {
            crate::outln!(
                "{} ({}, driver {}), {:?} kernels",
                r.adapter,
                r.backend,
                r.driver,
                r.strategy
            );
            for o in &r.outcomes {
                crate::outln!(
                    "  {}  {:<90} {:>8.2e} of allowed  {:>6.1} ms",
                    if o.passed { "ok  " } else { "FAIL" },
                    o.name,
                    o.score,
                    o.seconds * 1e3
                );
            }
        }
    }
    let failed: usize = reports.iter().map(|r| r.failures().count()).sum();
    let total: usize = reports.iter().map(|r| r.outcomes.len()).sum();
    if let Some(e) = reports.iter().find_map(Report::error) {
        bail!("{failed} of {total} kernel checks failed: {e}");
    }
    eprintln!(
        "all {total} kernel checks agree with their CPU twins ({:.1} s)",
        reports.iter().map(|r| r.seconds).sum::<f64>()
    );
    Ok(())
}

fn report_json(r: &Report) -> serde_json::Value {
    json!({
        "adapter": r.adapter,
        "backend": r.backend,
        "driver": r.driver,
        "strategy": format!("{:?}", r.strategy),
        "passed": r.passed(),
        "seconds": r.seconds,
        "cases": r.outcomes.iter().map(|o| json!({
            "name": o.name,
            "passed": o.passed,
            "score": if o.score.is_finite() { json!(o.score) } else { json!(null) },
            "worst": o.worst,
            "seconds": o.seconds,
        })).collect::<Vec<_>>(),
    })
}
