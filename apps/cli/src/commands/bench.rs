//! `voyager bench (-m MODEL | --synthetic SHAPE:TYPE) [-p 512] [-n 128] [-r 3] [--json]`
//!
//! Prefill and decode speed, and what bounds them: the bytes a decode step reads against the
//! device's copy bandwidth and the operations of a prefill token against its multiply-add
//! peak, both measured by kernels in the same run (`--no-ceilings` skips them, and so does
//! `--mem-budget`: their buffers and pipelines are outside the plan), and the host's
//! work per decoded token (CPU time to record and submit, time blocked on the readback,
//! passes, dispatches, submits, bind groups and buffers created, bytes moved).
//!
//! `--synthetic llama-8b:q4_k` benchmarks a model of a real shape with random weights in a
//! real block format, written to a temporary file first (speed does not depend on the values).
//!
//! With `--sessions N`, N sessions of one engine run the benchmark at the same time, each on
//! its own thread, inside one memory plan: the figures are per session and in all (the host
//! counters are then left out: they would mix the sessions).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;
use voyager_runtime::engine::EngineOptions;
use voyager_runtime::gpu::counters::{self, Counters};
use voyager_runtime::gpu::kernels::copy::{Bandwidth, CopyKernel};
use voyager_runtime::gpu::kernels::fma::{FmaKernel, FmaRate};
use voyager_runtime::Engine;

use crate::args::EngineArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Model: a GGUF path or a catalog name (pulled on first use).
    #[arg(short, long, required_unless_present = "synthetic")]
    model: Option<String>,
    /// Instead of a model file: a synthetic model of a real shape with random weights in
    /// TYPE, e.g. llama-1b:q4_k, llama-3b:q4_0, llama-8b:q4_k, gemma3-1b:q4_k, llama-1b:f16
    /// (shapes: tiny, llama-1b, llama-3b, llama-8b, gemma3-1b).
    #[arg(long, value_name = "SHAPE:TYPE", conflicts_with = "model")]
    synthetic: Option<String>,
    /// Keep the synthetic model in DIR (as SHAPE-TYPE.gguf) and reuse it when it is there,
    /// instead of a temporary file removed after the run.
    #[arg(long, value_name = "DIR", requires = "synthetic")]
    synthetic_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Prompt tokens to prefill.
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    n_prompt: usize,
    /// Tokens to decode after the prompt.
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    n_gen: usize,
    /// Repetitions; the median is reported.
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    repetitions: usize,
    /// Bytes each buffer of the bandwidth copy holds, in MiB (capped by one storage binding).
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    copy_mib: u64,
    /// Skip measuring the device's copy bandwidth and multiply-add peak.
    #[arg(long)]
    no_ceilings: bool,
    /// Also time every op of PROFILE decode steps on the GPU (timestamps between dispatches;
    /// needs an adapter with timestamps inside passes) and report where a step goes.
    #[arg(long, value_name = "STEPS", num_args = 0..=1, default_missing_value = "8")]
    profile: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// One kind of op in a GPU profile: the kernel and what it works on, with layer numbers
/// dropped (`matmul ffn_down`), and its time per step.
#[derive(serde::Serialize)]
struct ProfileRow {
    op: &'static str,
    on: String,
    /// Microseconds per step, all layers.
    us: f64,
    /// Ops of this kind per step.
    count: usize,
    /// For weight reads: the weight bytes over the time, in GB/s.
    gb_per_s: Option<f64>,
}

/// `blk.12.ffn_down.weight` -> `ffn_down`; other names lose only `.weight`.
fn kind_of(name: &str) -> String {
    let name = name.strip_suffix(".weight").unwrap_or(name);
    match name.strip_prefix("blk.") {
        Some(rest) => rest.split_once('.').map_or(rest, |(_, k)| k).to_string(),
        None => name.to_string(),
    }
}

/// Decodes `steps` tokens after the prompt with every op timed, and sums the times by kind.
fn gpu_profile(engine: &Arc<Engine>, prompt: &[u32], steps: u32) -> Result<(f64, Vec<ProfileRow>)> {
    let mut session = engine.session()?;
    let mut logits = session.feed(prompt)?;
    let mut rows: Vec<ProfileRow> = Vec::new();
    let mut total = 0.0;
    for _ in 0..steps.max(1) {
        let (next, ops) = session.feed_profiled(argmax(&logits))?;
        logits = next;
        for t in ops {
            let on = kind_of(&t.on);
            let us = t.ns / 1e3 / f64::from(steps.max(1));
            total += us;
            match rows.iter_mut().find(|r| r.op == t.op && r.on == on) {
                Some(r) => {
                    r.us += us;
                    r.count += 1;
                }
                None => rows.push(ProfileRow {
                    op: t.op,
                    on,
                    us,
                    count: 1,
                    gb_per_s: None,
                }),
            }
        }
    }
    let mut weight_bytes = std::collections::HashMap::<String, u64>::new();
    for t in engine.model().file.tensors() {
        *weight_bytes.entry(kind_of(&t.name)).or_default() += t.n_bytes;
    }
    for r in &mut rows {
        r.count /= steps.max(1) as usize;
        if r.op == "matmul" {
            r.gb_per_s = weight_bytes.get(&r.on).map(|&b| b as f64 / (r.us * 1e3));
        }
    }
    rows.sort_by(|a, b| b.us.total_cmp(&a.us));
    Ok((total, rows))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The host's work per decoded token (from [`Counters`] over the decode loops).
#[derive(serde::Serialize)]
struct PerToken {
    cpu_record_submit_us: f64,
    map_wait_us: f64,
    passes: f64,
    dispatches: f64,
    submits: f64,
    bind_groups_created: f64,
    buffers_created: f64,
    upload_bytes: f64,
    readback_bytes: f64,
}

impl PerToken {
    fn of(c: &Counters, tokens: u64) -> Self {
        let per = |v: u64| v as f64 / tokens.max(1) as f64;
        PerToken {
            cpu_record_submit_us: per(c.record_ns) / 1e3,
            map_wait_us: per(c.map_wait_ns) / 1e3,
            passes: per(c.passes),
            dispatches: per(c.dispatches),
            submits: per(c.submits),
            bind_groups_created: per(c.bind_groups),
            buffers_created: per(c.buffers),
            upload_bytes: per(c.upload_bytes),
            readback_bytes: per(c.readback_bytes),
        }
    }
}

/// One session's results.
struct SessionRun {
    /// Median tokens per second.
    prefill: f64,
    decode: f64,
    /// The host's work over every decode loop, and the tokens decoded.
    counters: Counters,
    decoded: u64,
}

fn bench_session(engine: &Arc<Engine>, prompt: &[u32], args: &Args) -> Result<SessionRun> {
    let mut session = engine.session()?;
    // Warm-up: pipelines compile on first dispatch on some drivers.
    session.feed(&prompt[..prompt.len().min(engine.batch_size())])?;
    session.reset();
    session.feed(&prompt[..1])?;
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    let mut host = Counters::default();
    for _ in 0..args.repetitions {
        session.reset();
        let start = Instant::now();
        let mut logits = session.feed(prompt)?;
        pp.push(prompt.len() as f64 / start.elapsed().as_secs_f64());
        if args.n_gen > 0 {
            let before = counters::snapshot();
            let start = Instant::now();
            for _ in 0..args.n_gen {
                let next = argmax(&logits);
                logits = session.feed(&[next])?;
            }
            tg.push(args.n_gen as f64 / start.elapsed().as_secs_f64());
            let d = counters::snapshot().since(&before);
            host = host + d;
        }
    }
    Ok(SessionRun {
        prefill: median(pp),
        decode: if tg.is_empty() { 0.0 } else { median(tg) },
        counters: host,
        decoded: (args.n_gen * args.repetitions) as u64,
    })
}

/// The engine to benchmark and its name: the model `-m` names, or a synthetic one written to
/// a temporary directory that is removed when the returned guard drops.
fn load(args: &Args) -> Result<(Arc<Engine>, String, Option<tempfile::TempDir>)> {
    let options = EngineOptions {
        scoring: false,
        ..args.engine.engine_options()?
    };
    if let Some(spec) = &args.synthetic {
        let shape = voyager_runtime::gguf::shapes::parse(spec)?;
        let (path, temporary) = match &args.synthetic_dir {
            Some(dir) => (dir.join(format!("{}.gguf", spec.replace(':', "-"))), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("voyager-synthetic-")
                    .tempdir()
                    .context("creating a directory for the synthetic model")?;
                (dir.path().join("model.gguf"), Some(dir))
            }
        };
        if !path.exists() {
            let bar = crate::progress::bytes_bar(&format!("writing synthetic {spec}"));
            shape.write_file(&path, &mut |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
        }
        let engine = crate::load::engine_at(&path, spec, &options)?;
        return Ok((engine, spec.clone(), temporary));
    }
    let name = args.model.clone().unwrap_or_default();
    let path = crate::model_arg::resolve(&name)?;
    Ok((crate::load::engine_at(&path, &name, &options)?, name, None))
}

/// The device's ceilings: copy bandwidth, and the f32 multiply-add rate (its iterations sized
/// so that one run takes about 50 ms on any device).
fn ceilings(engine: &Engine, copy_mib: u64) -> Result<(Bandwidth, FmaRate)> {
    let gpu = engine.gpu();
    let threads: u32 = 1 << 20;
    let copy = CopyKernel::new(gpu)?.measure(gpu, copy_mib << 20, 4, 5)?;
    let fma = FmaKernel::new(gpu)?;
    let probe = fma.measure(gpu, threads, 64, 1)?;
    let flops_per_iter = 2.0 * 32.0 * f64::from(threads);
    let iters = (0.05 * probe.flops_per_second / flops_per_iter).clamp(64.0, 65_536.0) as u32;
    Ok((copy, fma.measure(gpu, threads, iters, 3)?))
}

pub fn run(args: Args) -> Result<()> {
    if args.n_prompt == 0 || args.repetitions == 0 {
        bail!("-p and -r must be at least 1");
    }
    let (engine, name, _synthetic) = load(&args)?;
    let vocab = engine.model().config.vocab_size as u32;
    // A fixed, varied prompt: ids spread over the vocabulary, no special meaning needed. A
    // prompt longer than the span streams through the window.
    let prompt: Vec<u32> = (0..args.n_prompt as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) % vocab)
        .collect();
    let n = args.engine.sessions as usize;
    let results: Vec<SessionRun> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| scope.spawn(|| bench_session(&engine, &prompt, &args)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a benchmark thread failed")))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let pp = results.iter().map(|r| r.prefill).sum::<f64>() / n as f64;
    let tg = results.iter().map(|r| r.decode).sum::<f64>() / n as f64;
    // The ceilings' buffers and pipelines are not in the memory plan: under a budget they are
    // not measured.
    let ceilings = if args.no_ceilings {
        None
    } else if args.engine.mem_budget.is_some() {
        log::warn!(
            "the device's ceilings are not measured under --mem-budget (their buffers and \
             pipelines are outside the plan)"
        );
        None
    } else {
        Some(ceilings(&engine, args.copy_mib)?)
    };

    // What a step moves: decode at the middle of the generated span, prefill at the middle of
    // the prompt.
    let depth = (args.n_prompt + args.n_gen / 2) as u64;
    let bytes = engine.decode_bytes(depth)?;
    let decode_bytes_per_second = bytes.total() as f64 * tg;
    let flops = engine.token_flops(args.n_prompt as u64 / 2, false)?;
    let prefill_flops_per_second = flops as f64 * pp;
    // Fractions of the ceilings, all sessions together.
    let decode_fraction =
        ceilings.map(|c| decode_bytes_per_second * n as f64 / c.0.bytes_per_second);
    let prefill_fraction =
        ceilings.map(|c| prefill_flops_per_second * n as f64 / c.1.flops_per_second);
    let host = (n == 1).then(|| PerToken::of(&results[0].counters, results[0].decoded));
    // A device that cannot profile (no timestamps inside passes) still gets its figures.
    let profile = match args
        .profile
        .map(|steps| gpu_profile(&engine, &prompt, steps))
    {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            log::warn!("no GPU profile: {e}");
            None
        }
        None => None,
    };
    let gpu = engine.gpu();
    if args.json {
        let v = json!({
            "model": name,
            "synthetic": args.synthetic.is_some(),
            "adapter": gpu.adapter_name(),
            "backend": gpu.backend(),
            "driver": gpu.adapter_info().driver_info,
            "n_prompt": args.n_prompt,
            "n_gen": args.n_gen,
            "repetitions": args.repetitions,
            "sessions": n,
            "prefill_tokens_per_second": pp,
            "decode_tokens_per_second": tg,
            "decode_tokens_per_second_all_sessions": tg * n as f64,
            "batch": engine.batch_size(),
            "memory_plan": engine.memory_plan().total(),
            "decode_bytes_per_token": bytes.total(),
            "decode_weight_bytes_per_token": bytes.weights,
            "decode_kv_bytes_per_token": bytes.kv,
            "decode_bytes_per_second": decode_bytes_per_second,
            "copy_bytes_per_second": ceilings.map(|c| c.0.bytes_per_second),
            "decode_fraction_of_bandwidth": decode_fraction,
            "prefill_flops_per_token": flops,
            "prefill_flops_per_second": prefill_flops_per_second,
            "fma_flops_per_second": ceilings.map(|c| c.1.flops_per_second),
            "prefill_fraction_of_fma_peak": prefill_fraction,
            "host_per_decode_token": host,
            "gpu_profile": profile.as_ref().map(|(total, rows)| json!({
                "step_us": total,
                "ops": rows,
            })),
        });
        crate::outln!("{v}");
        return Ok(());
    }
    crate::outln!("adapter  {} ({})", gpu.adapter_name(), gpu.backend());
    let each = if n > 1 {
        format!(" per session, {n} sessions at once")
    } else {
        String::new()
    };
    crate::outln!(
        "prefill  {pp:.1} tokens/s{each} ({} tokens, batch {})",
        args.n_prompt,
        engine.batch_size()
    );
    crate::outln!("decode   {tg:.1} tokens/s{each} ({} tokens)", args.n_gen);
    if n > 1 {
        crate::outln!("decode   {:.1} tokens/s in all", tg * n as f64);
    }
    let gb = |b: f64| b / 1e9;
    crate::outln!(
        "reads    {:.1} MB per decoded token ({:.1} MB weights, {:.1} MB cache): {:.2} GB/s",
        bytes.total() as f64 / 1e6,
        bytes.weights as f64 / 1e6,
        bytes.kv as f64 / 1e6,
        gb(decode_bytes_per_second * n as f64)
    );
    if let (Some((copy, fma)), Some(df), Some(pf)) = (ceilings, decode_fraction, prefill_fraction) {
        crate::outln!(
            "ceiling  copy {:.2} GB/s: decode at {:.1}% of it; f32 FMA {:.1} GFLOP/s: prefill \
             at {:.1}% of it ({:.2} GFLOP/s)",
            gb(copy.bytes_per_second),
            100.0 * df,
            gb(fma.flops_per_second),
            100.0 * pf,
            gb(prefill_flops_per_second * n as f64)
        );
    }
    if let Some(h) = host {
        crate::outln!(
            "host     per decoded token: {:.0} µs CPU to record and submit, {:.0} µs waiting \
             for the readback; {:.0} passes, {:.0} dispatches, {:.0} submits, {:.0} bind \
             groups and {:.0} buffers created, {:.0} B uploaded, {:.0} B read back",
            h.cpu_record_submit_us,
            h.map_wait_us,
            h.passes,
            h.dispatches,
            h.submits,
            h.bind_groups_created,
            h.buffers_created,
            h.upload_bytes,
            h.readback_bytes
        );
    }
    if let Some((total, rows)) = profile {
        crate::outln!("gpu      {total:.0} µs per decode step, by op:");
        for r in rows.iter().take(16) {
            let bw = r
                .gb_per_s
                .map_or(String::new(), |g| format!(", {g:.1} GB/s"));
            crate::outln!(
                "  {:>8.1} µs {:>5.1}%  {} {} (x{}{bw})",
                r.us,
                100.0 * r.us / total,
                r.op,
                r.on,
                r.count
            );
        }
    }
    Ok(())
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}
