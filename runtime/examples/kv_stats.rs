//! How much of each key and value a cache type loses, layer by layer, under the storage
//! schemes docs/KV_CACHE.md compares: the relative squared error `|x - q(x)|^2 / |x|^2` over
//! the first N tokens of a text, read back from an f16 cache.
//!
//! ```text
//! cargo run --example kv_stats -- MODEL.gguf TEXT N [TYPE]
//! ```
//! TYPE: the cache type measured (default q4).
//! Schemes: `token` (blocks of 32 along the head, as stored), `rotated` (Hadamard first),
//! `centered` (the per-channel mean over the text subtracted, then rotated), `channel` (KIVI:
//! blocks of 32 tokens along each channel).

use std::path::Path;

use voyager_runtime::engine::perplexity::windows;
use voyager_runtime::engine::{Engine, EngineOptions};
use voyager_runtime::gpu::kernels::kv_cache::{decode_at, Side};
use voyager_runtime::kv::quant::{hadamard, hadamard_size, round_trip};
use voyager_runtime::kv::KvType;

fn rel(x: &[f32], y: &[f32]) -> (f64, f64) {
    let e: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let n: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
    (e, n)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .get(2)
        .ok_or("usage: kv_stats MODEL TEXT N [TYPE]")?
        .parse()?;
    let ty = KvType::parse(args.get(3).map_or("q4", String::as_str))?;
    let opts = EngineOptions {
        cache_type_k: KvType::F16,
        cache_type_v: KvType::F16,
        window: Some(n as u32 + 8),
        ..EngineOptions::default()
    };
    let engine = Engine::load(Path::new(&args[0]), &opts, &mut |_| {})?;
    let text = std::fs::read_to_string(&args[1])?;
    let ids = windows(&engine.model().tokenizer, &text, n)?.remove(0);
    let mut session = engine.session()?;
    session.score(&ids)?;
    let cfg = &engine.model().config;
    let n_kv = ids.len() as u32;
    println!("layer side   token  rotated centered channel");
    let mut totals = [[(0f64, 0f64); 4]; 2];
    for layer in 0..cfg.n_layers {
        let (layout, words) = session.read_cache(layer)?;
        for (s, side) in [Side::K, Side::V].into_iter().enumerate() {
            let mut acc = [(0f64, 0f64); 4];
            for h in 0..layout.shape.n_kv_heads {
                // Tokens after the sinks, as stored.
                let rows: Vec<Vec<f32>> = (layout.policy.sinks..n_kv)
                    .map(|j| decode_at(&layout, &words, side, j, h, n_kv))
                    .collect();
                let d = rows[0].len();
                let size = hadamard_size(d as u32) as usize;
                // The mean of the first batch's tokens after the sinks (what a session can know
                // when it starts), or of every token with VOYAGER_STATS_ORACLE set.
                let m = if std::env::var_os("VOYAGER_STATS_ORACLE").is_some() {
                    rows.len()
                } else {
                    28.min(rows.len())
                };
                let mean: Vec<f32> = (0..d)
                    .map(|c| rows[..m].iter().map(|r| r[c]).sum::<f32>() / m as f32)
                    .collect();
                for r in &rows {
                    let mut add = |i: usize, (e, m): (f64, f64)| {
                        acc[i].0 += e;
                        acc[i].1 += m;
                    };
                    add(0, rel(r, &round_trip(ty, r)));
                    let mut rot = r.clone();
                    hadamard(&mut rot, size);
                    add(1, rel(&rot, &round_trip(ty, &rot)));
                    let mut cen: Vec<f32> = r.iter().zip(&mean).map(|(a, b)| a - b).collect();
                    hadamard(&mut cen, size);
                    let q = round_trip(ty, &cen);
                    // The error is relative to the key itself (the mean is kept exactly).
                    let e: f64 = cen
                        .iter()
                        .zip(&q)
                        .map(|(a, b)| f64::from(a - b).powi(2))
                        .sum();
                    add(2, (e, r.iter().map(|a| f64::from(*a).powi(2)).sum()));
                }
                // Per channel, blocks of consecutive tokens.
                for group in rows.chunks_exact(ty.granule() as usize) {
                    for c in 0..d {
                        let col: Vec<f32> = group.iter().map(|r| r[c]).collect();
                        let q = round_trip(ty, &col);
                        let (e, m) = rel(&col, &q);
                        acc[3].0 += e;
                        acc[3].1 += m;
                    }
                }
            }
            for i in 0..4 {
                totals[s][i].0 += acc[i].0;
                totals[s][i].1 += acc[i].1;
            }
            let r: Vec<String> = acc.iter().map(|(e, m)| format!("{:.5}", e / m)).collect();
            println!("{layer:5} {:?}    {}", side, r.join("  "));
        }
    }
    for (s, name) in ["K", "V"].iter().enumerate() {
        let r: Vec<String> = totals[s]
            .iter()
            .map(|(e, m)| format!("{:.5}", e / m))
            .collect();
        println!("all   {name}    {}", r.join("  "));
    }
    Ok(())
}
